//! Finding the process to record.

use std::fs;
use std::path::Path;

use crate::error::{RecordError, Result};

/// A process as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: Vec<String>,
}

impl ProcessInfo {
    /// Reads /proc/PID. `None` when the process does not exist (or vanished meanwhile).
    pub fn read(pid: u32) -> Option<Self> {
        let dir = format!("/proc/{pid}");
        let comm = fs::read_to_string(format!("{dir}/comm")).ok()?;
        let exe = fs::read_link(format!("{dir}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cmdline = fs::read(format!("{dir}/cmdline"))
            .map(|bytes| {
                bytes
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            pid,
            comm: comm.trim_end().to_owned(),
            exe,
            cmdline,
        })
    }

    fn matches(&self, name: &str) -> bool {
        let base = |p: &str| {
            Path::new(p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        };
        self.comm == name
            || base(&self.exe).as_deref() == Some(name)
            || base(&self.exe)
                .as_deref()
                .map(|b| b.trim_end_matches(" (deleted)"))
                == Some(name)
            || self.cmdline.first().and_then(|c| base(c)).as_deref() == Some(name)
    }
}

/// Resolves `--pid` or a name to exactly one process.
pub fn resolve(pid: Option<u32>, name: Option<&str>) -> Result<ProcessInfo> {
    if let Some(pid) = pid {
        let info = ProcessInfo::read(pid).ok_or_else(|| {
            let namespaced =
                crate::pidns::PidNamespace::of("self").is_ok_and(|ns| !ns.is_initial());
            RecordError::NoSuchProcess(if namespaced {
                format!(
                    "no process with pid {pid} in this PID namespace (hud-record runs in a \
                     container: it sees only that container's processes, by their ids there; \
                     record from the host, or from a container sharing the target's PID \
                     namespace)"
                )
            } else {
                format!("no process with pid {pid}")
            })
        })?;
        // /proc/TID exists for every thread, though it is not listed: a thread id is not a
        // process (the eBPF filter and the pidfd take the process's id).
        if let Some(tgid) = thread_group_of(pid).filter(|&tgid| tgid != pid) {
            return Err(RecordError::Usage(format!(
                "{pid} is a thread of process {tgid} ({}): record it with --pid {tgid}",
                ProcessInfo::read(tgid).map_or_else(String::new, |p| p.comm)
            )));
        }
        if is_kernel_thread(pid) {
            return Err(RecordError::Usage(format!(
                "{pid} ({}) is a kernel thread: it runs no user-space code for hud to record",
                info.comm
            )));
        }
        return Ok(info);
    }
    let name = name.unwrap_or_default();
    let me = std::process::id();
    let mut found: Vec<ProcessInfo> = fs::read_dir("/proc")
        .map_err(|e| RecordError::Other(format!("cannot list /proc: {e}")))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(ProcessInfo::read)
        .filter(|p| p.matches(name) && !is_kernel_thread(p.pid))
        .collect();
    found.sort_by_key(|p| p.pid);
    match found.len() {
        0 => Err(RecordError::NoSuchProcess(format!(
            "no process named `{name}` (give --pid PID, or check `pgrep -l {name}`)"
        ))),
        1 => Ok(found.remove(0)),
        _ => {
            let list: Vec<String> = found
                .iter()
                .map(|p| format!("  {:>8}  {}", p.pid, p.cmdline.join(" ")))
                .collect();
            Err(RecordError::Ambiguous(format!(
                "{} processes are named `{name}`; choose one with --pid:\n{}",
                found.len(),
                list.join("\n")
            )))
        }
    }
}

/// Whether `pid` is a kernel thread (PF_KTHREAD in the flags of /proc/PID/stat).
fn is_kernel_thread(pid: u32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The fields after the command name, which may itself hold spaces and parentheses.
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_comm
        .split_whitespace()
        .nth(6)
        .and_then(|flags| flags.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// Bytes every program built with Tokio carries, stripped or not: the default worker thread
/// name, and the source paths of Tokio's panic locations.
const TOKIO_MARKERS: [&[u8]; 2] = [b"tokio-runtime-worker", b"/tokio-1."];

/// Whether the process looks like a Tokio program: its executable, or a library it maps from
/// outside the system's directories, holds Tokio's marks. `None` when its executable cannot be
/// read. Only for a warning: hud records any process, but finds blocking only in Tokio runtimes.
pub fn looks_like_tokio(pid: u32) -> Option<bool> {
    let root = format!("/proc/{pid}/root");
    if file_contains_any(Path::new(&format!("/proc/{pid}/exe")), &TOKIO_MARKERS)? {
        return Some(true);
    }
    let mut objects = Vec::new();
    if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let perms = fields.nth(1).unwrap_or_default();
            let Some(path) = fields.nth(3).filter(|p| p.starts_with('/')) else {
                continue;
            };
            let system = ["/usr/lib", "/lib", "/usr/lib64", "/lib64"]
                .iter()
                .any(|dir| path.starts_with(dir));
            if perms.contains('x') && !system {
                let in_target = format!("{root}{path}");
                if !objects.contains(&in_target) {
                    objects.push(in_target);
                }
            }
        }
    }
    Some(
        objects
            .iter()
            .any(|path| file_contains_any(Path::new(path), &TOKIO_MARKERS) == Some(true)),
    )
}

/// Whether the regular file at `path` holds any of `needles` in its `.rodata` (all of it when
/// it is not an ELF file with one), read through a small buffer: a map would count what it reads
/// in the recorder's RSS, and reading a whole binary with its debug info (hundreds of MiB, maybe
/// not in the page cache) would delay the recording. `None` when it cannot be read.
fn file_contains_any(path: &Path, needles: &[&[u8]]) -> Option<bool> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    // Non-blocking, and only regular files: a mapped device must not stall the recorder.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() {
        return None;
    }
    let (mut at, end) = match rodata_range(&file) {
        Some((offset, size)) => (offset, offset.saturating_add(size)),
        None => (0, metadata.len()),
    };
    let finders: Vec<memchr::memmem::Finder<'_>> =
        needles.iter().map(memchr::memmem::Finder::new).collect();
    let longest = needles.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut buffer = vec![0u8; (256 << 10) + longest];
    // The last bytes of each read are kept, so a needle across two reads is found.
    let mut kept = 0;
    while at < end {
        let room = (buffer.len() - kept).min(usize::try_from(end - at).unwrap_or(usize::MAX));
        let n = match file.read_at(&mut buffer[kept..kept + room], at) {
            Ok(0) => break,
            Err(_) => return None,
            Ok(n) => n,
        };
        at += n as u64;
        let seen = kept + n;
        if finders.iter().any(|f| f.find(&buffer[..seen]).is_some()) {
            return Some(true);
        }
        let keep = longest.saturating_sub(1).min(seen);
        buffer.copy_within(seen - keep..seen, 0);
        kept = keep;
    }
    Some(false)
}

/// Where `.rodata` lies in an ELF file: its headers are read, nothing else.
fn rodata_range(file: &fs::File) -> Option<(u64, u64)> {
    use object::{Object, ObjectSection};
    let cache = object::read::ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    elf.section_by_name(".rodata")?.file_range()
}

/// The process a thread belongs to (`Tgid:` in /proc/TID/status).
fn thread_group_of(tid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_id_names_its_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (_done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = wait.recv();
        });
        let tid = rx.recv().unwrap();
        let err = resolve(Some(tid), None).unwrap_err();
        let me = std::process::id();
        assert!(err.to_string().contains(&format!("--pid {me}")), "{err}");
        drop(_done);
        thread.join().unwrap();
    }

    #[test]
    fn kernel_threads_are_refused_and_tokio_is_recognised() {
        // kthreadd is pid 2 on Linux.
        assert!(is_kernel_thread(2));
        let err = resolve(Some(2), None).unwrap_err();
        assert!(err.to_string().contains("kernel thread"), "{err}");
        assert!(!is_kernel_thread(std::process::id()));
        // sleep(1) has no Tokio in it (this test binary holds the markers themselves).
        let mut sleep = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        assert_eq!(looks_like_tokio(sleep.id()), Some(false));
        sleep.kill().unwrap();
        sleep.wait().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bin");
        std::fs::write(&file, b"\0\0thread tokio-runtime-worker\0").unwrap();
        assert_eq!(file_contains_any(&file, &TOKIO_MARKERS), Some(true));
        // Across two reads of the buffer.
        let mut big = vec![0u8; (256 << 10) - 5];
        big.extend_from_slice(b"/tokio-1.47.1/src/lib.rs");
        std::fs::write(&file, &big).unwrap();
        assert_eq!(file_contains_any(&file, &TOKIO_MARKERS), Some(true));
        big.truncate((256 << 10) - 5);
        std::fs::write(&file, &big).unwrap();
        assert_eq!(file_contains_any(&file, &TOKIO_MARKERS), Some(false));
    }

    #[test]
    fn finds_itself_by_pid_and_rejects_a_bad_pid() {
        let me = resolve(Some(std::process::id()), None).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.exe.is_empty());
        let err = resolve(Some(u32::MAX - 1), None).unwrap_err();
        assert!(matches!(err, RecordError::NoSuchProcess(_)));
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let err = resolve(None, Some("surely-no-such-process-hud")).unwrap_err();
        assert!(err.to_string().contains("no process named"));
    }
}
