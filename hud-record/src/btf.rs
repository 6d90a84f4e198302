//! What the programs need from the kernel's BTF (`/sys/kernel/btf/vmlinux`): where `pid` is in
//! `struct task_struct` (raw tracepoints hand over task pointers, not pids), whether
//! `sched_switch` passes `prev_state` (Linux 5.18 on), and where a task keeps its user FS base
//! (`thread.fsbase`: above a thread's stack, so the top a stack copy reaches).
//!
//! Raw tracepoints skip the classic tracepoints' record formatting, which on a context-switch storm
//! cost more than hud's own programs. The file (5 MB) is streamed twice through a small buffer,
//! names first, then types, and nothing else of it is kept: parsing all of BTF (as aya can) costs
//! the recorder tens of MB of memory.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

/// What the raw-tracepoint programs need to know about this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskLayout {
    /// Byte offset of `pid` in `struct task_struct`.
    pub pid_offset: u32,
    /// Byte offset of `thread.fsbase` in `struct task_struct` (x86-64), when BTF has both.
    pub fsbase_offset: Option<u32>,
}

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_PTR: u8 = 2;
const KIND_STRUCT: u8 = 4;
const KIND_TYPEDEF: u8 = 8;
const KIND_FUNC_PROTO: u8 = 13;
/// Arguments of `btf_trace_sched_switch` with `prev_state`: the context, preempt, prev, next,
/// prev_state.
const SWITCH_ARGS: u16 = 5;

/// The kernel's task layout, or why the raw tracepoints cannot be used (the recorder then uses the
/// classic ones).
pub fn task_layout() -> Result<TaskLayout, String> {
    let file = std::fs::File::open(VMLINUX).map_err(|e| format!("{VMLINUX}: {e}"))?;
    parse(file).map_err(|e| format!("{VMLINUX}: {e}"))
}

/// Reads the layout from a BTF blob.
pub fn parse(mut file: impl Read + Seek) -> Result<TaskLayout, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut header = [0u8; 24];
    file.read_exact(&mut header).map_err(io)?;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if u16::from_le_bytes([header[0], header[1]]) != MAGIC {
        return Err("not little-endian BTF".into());
    }
    let base = u64::from(u32_at(&header, 4));
    let (type_off, type_len) = (u32_at(&header, 8), u32_at(&header, 12));
    let (str_off, str_len) = (u32_at(&header, 16), u32_at(&header, 20));

    // The names looked for, by their offset in the string section.
    const NAMES: [&[u8]; 6] = [
        b"task_struct",
        b"pid",
        b"btf_trace_sched_switch",
        b"thread",
        b"thread_struct",
        b"fsbase",
    ];
    let mut found: [Option<u32>; 6] = [None; 6];
    file.seek(SeekFrom::Start(base + u64::from(str_off)))
        .map_err(io)?;
    let mut strings = BufReader::with_capacity(1 << 16, (&mut file).take(u64::from(str_len)));
    let mut name = Vec::new();
    let mut at = 0u32;
    loop {
        name.clear();
        let n = strings.read_until(0, &mut name).map_err(io)?;
        if n == 0 {
            break;
        }
        let text = name.strip_suffix(&[0]).unwrap_or(&name);
        for (i, wanted) in NAMES.iter().enumerate() {
            if found[i].is_none() && text == *wanted {
                found[i] = Some(at);
            }
        }
        at += n as u32;
    }
    drop(strings);
    let [Some(task_struct), Some(pid), Some(trace_switch), thread, thread_struct, fsbase] = found
    else {
        return Err("no task_struct, pid or btf_trace_sched_switch in its names".into());
    };

    file.seek(SeekFrom::Start(base + u64::from(type_off)))
        .map_err(io)?;
    let mut types = BufReader::with_capacity(1 << 16, (&mut file).take(u64::from(type_len)));
    let mut word = || -> Result<u32, String> {
        let mut b = [0u8; 4];
        types.read_exact(&mut b).map_err(io)?;
        Ok(u32::from_le_bytes(b))
    };
    // Per type id (from 1): its kind, vlen and referenced type, to follow the typedef.
    let mut kinds: Vec<(u8, u16, u32)> = vec![(0, 0, 0)];
    let mut pid_offset = None;
    // `thread` in task_struct, `fsbase` in thread_struct.
    let (mut thread_offset, mut fsbase_in_thread) = (None, None);
    let mut switch_typedef = None;
    let mut remaining = type_len as usize;
    while remaining >= 12 {
        let name_off = word()?;
        let info = word()?;
        let size_or_type = word()?;
        remaining -= 12;
        let kind = ((info >> 24) & 0x1f) as u8;
        let vlen = (info & 0xffff) as u16;
        let kind_flag = info >> 31 != 0;
        // Kind-specific data after the common part, in 4-byte words.
        let extra = match kind {
            1 | 14 | 17 => 1,                     // INT, VAR, DECL_TAG
            3 => 3,                               // ARRAY
            4 | 5 | 15 | 19 => 3 * vlen as usize, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 2 * vlen as usize,          // ENUM, FUNC_PROTO
            _ => 0,
        };
        let is_task = name_off == task_struct && pid_offset.is_none();
        let is_thread = Some(name_off) == thread_struct && fsbase_in_thread.is_none();
        if kind == KIND_STRUCT && (is_task || is_thread) && vlen > 0 {
            for _ in 0..vlen {
                let (member, _type, offset) = (word()?, word()?, word()?);
                // With kind_flag, the low 24 bits are the bit offset (the top, a bitfield size).
                let bytes = if kind_flag {
                    offset & 0xff_ffff
                } else {
                    offset
                } / 8;
                if is_task && member == pid {
                    pid_offset = Some(bytes);
                } else if is_task && Some(member) == thread {
                    thread_offset = Some(bytes);
                } else if is_thread && Some(member) == fsbase {
                    fsbase_in_thread = Some(bytes);
                }
            }
        } else {
            for _ in 0..extra {
                word()?;
            }
        }
        remaining = remaining.saturating_sub(4 * extra);
        if kind == KIND_TYPEDEF && name_off == trace_switch {
            switch_typedef = Some(size_or_type);
        }
        kinds.push((kind, vlen, size_or_type));
    }
    let pid_offset = pid_offset.ok_or("struct task_struct has no pid member")?;
    let fsbase_offset = thread_offset.zip(fsbase_in_thread).map(|(t, f)| t + f);
    // btf_trace_sched_switch: a typedef of a pointer to the probe's prototype.
    let proto = switch_typedef
        .and_then(|t| kinds.get(t as usize))
        .filter(|(kind, _, _)| *kind == KIND_PTR)
        .and_then(|(_, _, t)| kinds.get(*t as usize))
        .filter(|(kind, _, _)| *kind == KIND_FUNC_PROTO);
    match proto {
        Some((_, args, _)) if *args == SWITCH_ARGS => Ok(TaskLayout {
            pid_offset,
            fsbase_offset,
        }),
        Some((_, args, _)) => Err(format!(
            "sched_switch passes {args} arguments, not the {SWITCH_ARGS} of Linux 5.18 and later"
        )),
        None => Err("no prototype for the sched_switch tracepoint".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: strings, then types given as words.
    fn blob(strings: &[&str], types: &[u32]) -> Vec<u8> {
        let mut strs = vec![0u8];
        for s in strings {
            strs.extend_from_slice(s.as_bytes());
            strs.push(0);
        }
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strs.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&type_bytes);
        out.extend_from_slice(&strs);
        out
    }

    fn info(kind: u32, vlen: u32) -> u32 {
        kind << 24 | vlen
    }

    /// Offsets in the string section of `blob(NAMES, …)`.
    const NAMES: [&str; 7] = [
        "task_struct",
        "pid",
        "btf_trace_sched_switch",
        "comm",
        "thread",
        "thread_struct",
        "fsbase",
    ];
    const TASK_STRUCT: u32 = 1;
    const PID: u32 = 13;
    const TRACE_SWITCH: u32 = 17;
    const COMM: u32 = 40;
    const THREAD: u32 = 45;
    const THREAD_STRUCT: u32 = 52;
    const FSBASE: u32 = 66;

    /// A kernel whose sched_switch prototype has `switch_args` arguments; with `fsbase`,
    /// `thread.fsbase` is at byte 5040 of task_struct.
    fn kernel(switch_args: u32, fsbase: bool) -> Vec<u8> {
        blob(
            &NAMES,
            &[
                // 1: INT
                0,
                info(1, 0),
                4,
                0,
                // 2: STRUCT task_struct { comm at byte 8, pid at byte 2456, thread at 5000 }
                TASK_STRUCT,
                info(4, 3),
                8192,
                COMM,
                1,
                64,
                PID,
                1,
                2456 * 8,
                THREAD,
                6,
                5000 * 8,
                // 3: FUNC_PROTO with `switch_args` params
                0,
                info(13, switch_args),
                0,
            ]
            .into_iter()
            .chain((0..switch_args).flat_map(|_| [0, 1]))
            .chain([
                // 4: PTR to 3, 5: TYPEDEF btf_trace_sched_switch → 4
                0,
                info(2, 0),
                3,
                TRACE_SWITCH,
                info(8, 0),
                4,
                // 6: STRUCT thread_struct { fsbase (or another member) at byte 40 }
                THREAD_STRUCT,
                info(4, 1),
                128,
                if fsbase { FSBASE } else { COMM },
                1,
                40 * 8,
            ])
            .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn finds_the_pid_and_the_switch_arguments() {
        let layout = parse(std::io::Cursor::new(kernel(5, true))).unwrap();
        assert_eq!(
            layout,
            TaskLayout {
                pid_offset: 2456,
                fsbase_offset: Some(5040)
            }
        );
        let layout = parse(std::io::Cursor::new(kernel(5, false))).unwrap();
        assert_eq!(
            layout.fsbase_offset, None,
            "no fsbase: copies use their window"
        );
    }

    #[test]
    fn an_old_switch_prototype_is_refused() {
        let err = parse(std::io::Cursor::new(kernel(4, true))).unwrap_err();
        assert!(err.contains("4 arguments"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(std::io::Cursor::new(vec![0u8; 10])).is_err());
        let mut cut = kernel(5, true);
        cut.truncate(60);
        assert!(parse(std::io::Cursor::new(cut)).is_err());
        assert!(parse(std::io::Cursor::new(b"\x9f\xeb\x01\x00".repeat(8))).is_err());
    }

    #[test]
    fn reads_this_kernel() {
        // Every kernel hud records on has BTF (see DESIGN); where it has none, say so.
        match task_layout() {
            Ok(layout) => {
                assert!(layout.pid_offset > 0 && layout.pid_offset < 16384);
                let fsbase = layout.fsbase_offset.expect("x86-64 has thread.fsbase");
                assert!(fsbase > layout.pid_offset && fsbase < 16384, "{fsbase}");
            }
            Err(e) => eprintln!("skipping: {e}"),
        }
    }
}
