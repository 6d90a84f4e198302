//! tracefs: where the tracepoints' record layouts are described.

use std::path::{Path, PathBuf};

use crate::error::{RecordError, Result};

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Finds tracefs, mounting it at /sys/kernel/tracing when it is missing and we may.
pub fn locate() -> Result<PathBuf> {
    if let Some(found) = find() {
        return Ok(found);
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: valid C strings; mount(2) fails cleanly without privileges.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        if let Some(found) = find() {
            return Ok(found);
        }
    }
    if let Some(path) = unreadable() {
        return Err(RecordError::NotPermitted(format!(
            "{} is mounted but not readable by this process (it needs CAP_DAC_READ_SEARCH, or root)",
            path.display()
        )));
    }
    Err(RecordError::Tracefs(
        "tracefs is not mounted; mount it with `mount -t tracefs nodev /sys/kernel/tracing`".into(),
    ))
}

/// A tracefs that is there but refuses us: "missing" would send the user mounting it again.
fn unreadable() -> Option<PathBuf> {
    CANDIDATES.iter().map(Path::new).find_map(|p| {
        match std::fs::metadata(p.join("events/sched/sched_switch/format")) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(p.to_path_buf()),
            _ => None,
        }
    })
}

fn find() -> Option<PathBuf> {
    CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.join("events/sched/sched_switch/format").exists())
        .map(Path::to_path_buf)
}

/// Offset of `field` in a tracepoint's `format` file text.
pub fn field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        // "char prev_comm[16]" / "pid_t prev_pid" / "__data_loc char[] child_comm"
        let name = decl.split_whitespace().last()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        let offset = line
            .split(';')
            .find_map(|p| p.trim().strip_prefix("offset:"))?;
        offset.trim().parse().ok()
    })
}

/// Reads every field offset the programs need; falls back to the defaults with a warning.
pub fn offsets(root: &Path) -> Vec<(&'static str, u32)> {
    hud_format::wire::offsets::FIELDS
        .iter()
        .map(|(global, tracepoint, field, default)| {
            let path = root.join("events").join(tracepoint).join("format");
            let found = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| field_offset(&text, field));
            if found.is_none() {
                eprintln!(
                    "hud-record: warning: no `{field}` in {}; assuming offset {default}",
                    path.display()
                );
            }
            (*global, found.unwrap_or(*default))
        })
        .collect()
}

/// Checks that the sched_switch fields end within the bytes the switch program copies (they end
/// at 60 on Linux 6.x; a kernel that moved them is refused rather than misread).
pub fn check_switch_layout(offsets: &[(&'static str, u32)]) -> Result<()> {
    use hud_format::wire::offsets::{SWITCH_FIELDS, SWITCH_RECORD_BYTES};
    for (global, size) in SWITCH_FIELDS {
        let Some((_, offset)) = offsets.iter().find(|(g, _)| *g == global) else {
            continue;
        };
        if *offset as usize + size as usize > SWITCH_RECORD_BYTES {
            return Err(RecordError::Tracefs(format!(
                "this kernel's sched_switch record has a field at offset {offset}, past the \
                 {SWITCH_RECORD_BYTES} bytes hud reads; this hud does not support its layout"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: &str = "name: sched_switch
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:char prev_comm[16];	offset:8;	size:16;	signed:0;
	field:pid_t prev_pid;	offset:24;	size:4;	signed:1;
	field:long prev_state;	offset:32;	size:8;	signed:1;
	field:__data_loc char[] child_comm;	offset:16;	size:4;	signed:0;
	field:pid_t next_pid;	offset:56;	size:4;	signed:1;
";

    #[test]
    fn a_switch_record_laid_out_past_what_is_copied_is_refused() {
        use hud_format::wire::offsets::{SWITCH_NEXT_PID, SWITCH_PREV_PID};
        assert!(check_switch_layout(&[(SWITCH_PREV_PID, 24), (SWITCH_NEXT_PID, 56)]).is_ok());
        assert!(check_switch_layout(&[(SWITCH_NEXT_PID, 64)]).is_err());
    }

    #[test]
    fn reads_offsets() {
        assert_eq!(field_offset(SWITCH, "prev_pid"), Some(24));
        assert_eq!(field_offset(SWITCH, "prev_state"), Some(32));
        assert_eq!(field_offset(SWITCH, "next_pid"), Some(56));
        assert_eq!(field_offset(SWITCH, "prev_comm"), Some(8));
        assert_eq!(field_offset(SWITCH, "child_comm"), Some(16));
        assert_eq!(field_offset(SWITCH, "nope"), None);
    }
}
