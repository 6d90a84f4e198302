//! One line per blocking call, `KIND START_NS END_NS TID`, in CLOCK_MONOTONIC nanoseconds: the
//! clock the recorder stamps its events with, so a test can match an off-CPU episode or a long
//! poll to the call (and the thread) that made it.
//!
//! Each line is one `write` on a file opened for appending: a workload killed at any moment
//! leaves whole lines (tests stop the workloads with SIGKILL).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

static LOG: OnceLock<File> = OnceLock::new();

/// Starts logging to `path` (created or truncated). Called once, before the runtime starts.
pub fn open(path: &Path) {
    let _ = std::fs::remove_file(path);
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("--timings {}: {e}", path.display()));
    let _ = LOG.set(file);
}

/// CLOCK_MONOTONIC now, in nanoseconds (what `bpf_ktime_get_ns` reads).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Logs a call of `kind` that started at `start_ns` (from [`now_ns`]) and ends now, when
/// logging is on. Plain calls around the blocking call, not a closure wrapping it: the blocking
/// line's frames stay exactly those of the ground truth.
pub fn log(kind: &str, start_ns: u64) {
    if let Some(mut file) = LOG.get() {
        let end_ns = now_ns();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let _ = file.write_all(format!("{kind} {start_ns} {end_ns} {tid}\n").as_bytes());
    }
}
