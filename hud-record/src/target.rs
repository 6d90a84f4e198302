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
        let info = ProcessInfo::read(pid)
            .ok_or_else(|| RecordError::NoSuchProcess(format!("no process with pid {pid}")))?;
        // /proc/TID exists for every thread, though it is not listed: a thread id is not a
        // process (the eBPF filter and the pidfd take the process's id).
        if let Some(tgid) = thread_group_of(pid).filter(|&tgid| tgid != pid) {
            return Err(RecordError::Usage(format!(
                "{pid} is a thread of process {tgid} ({}): record it with --pid {tgid}",
                ProcessInfo::read(tgid).map_or_else(String::new, |p| p.comm)
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
        .filter(|p| p.matches(name))
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
