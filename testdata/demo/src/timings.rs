//! One line per blocking call, `KIND START_NS END_NS TID`, in CLOCK_MONOTONIC nanoseconds: the
//! clock the recorder stamps its events with, so a test can match an off-CPU episode or a long
//! poll to the call (and the thread) that made it.
//!
//! The task that made the call only stores four words in a fixed table, without a lock or a
//! system call; a thread of its own (`hud-timings`) writes the lines. Anything more is a blocker
//! of the demo's own making under load: a `write` to the file waited 5 ms for the disk in one
//! test run, and an mpsc channel's internal mutex 7 ms in another. Each line is one `write` on a
//! file opened for appending, so a workload killed at any moment leaves whole lines (tests stop
//! the workloads with SIGKILL); lines reach the file within `FLUSH_EVERY`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// What was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `std::thread::sleep` in `sleepy_handler`.
    Sleep,
    /// `cpu_heavy_checksum`'s computation.
    Cpu,
    /// hud-tailcall's `normalize`.
    Normalize,
    /// The demo's planted stall (`--stall-at`).
    Stall,
}

impl Call {
    const ALL: [Call; 4] = [Call::Sleep, Call::Cpu, Call::Normalize, Call::Stall];

    pub fn name(self) -> &'static str {
        match self {
            Call::Sleep => "sleep",
            Call::Cpu => "cpu",
            Call::Normalize => "normalize",
            Call::Stall => "stall",
        }
    }
}

/// Calls kept; later ones are dropped (hours of the demo's blocking calls).
const CAPACITY: usize = 1 << 16;
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// A call's words: kind and thread, start, end; `ready` is set last.
struct Entry {
    kind_tid: AtomicU64,
    start_ns: AtomicU64,
    end_ns: AtomicU64,
    ready: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Entry = Entry {
    kind_tid: AtomicU64::new(0),
    start_ns: AtomicU64::new(0),
    end_ns: AtomicU64::new(0),
    ready: AtomicBool::new(false),
};

static ENTRIES: [Entry; CAPACITY] = [EMPTY; CAPACITY];
static NEXT: AtomicUsize = AtomicUsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);

/// Starts logging to `path` (created or truncated). Called once, before the runtime starts.
pub fn open(path: &Path) {
    let _ = std::fs::remove_file(path);
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("--timings {}: {e}", path.display()));
    std::thread::Builder::new()
        .name("hud-timings".into())
        .spawn(move || write_lines(file))
        .expect("the timings thread");
    ON.store(true, Ordering::Release);
}

/// Writes each entry once it is ready, in the order calls ended.
fn write_lines(file: std::fs::File) {
    let mut next = 0;
    loop {
        while next < CAPACITY && ENTRIES[next].ready.load(Ordering::Acquire) {
            let e = &ENTRIES[next];
            let kind_tid = e.kind_tid.load(Ordering::Relaxed);
            let kind = Call::ALL[(kind_tid >> 32) as usize].name();
            let line = format!(
                "{kind} {} {} {}\n",
                e.start_ns.load(Ordering::Relaxed),
                e.end_ns.load(Ordering::Relaxed),
                kind_tid as u32
            );
            let _ = (&file).write_all(line.as_bytes());
            next += 1;
        }
        std::thread::sleep(FLUSH_EVERY);
    }
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
pub fn log(kind: Call, start_ns: u64) {
    if !ON.load(Ordering::Acquire) {
        return;
    }
    let end_ns = now_ns();
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    let Some(e) = ENTRIES.get(i) else {
        return;
    };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    e.kind_tid
        .store((kind as u64) << 32 | u64::from(tid), Ordering::Relaxed);
    e.start_ns.store(start_ns, Ordering::Relaxed);
    e.end_ns.store(end_ns, Ordering::Relaxed);
    e.ready.store(true, Ordering::Release);
}
