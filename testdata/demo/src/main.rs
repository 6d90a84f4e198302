//! hud-demo: a small Tokio service with documented blockers (see GROUND_TRUTH.md beside this crate).
//!
//! Every blocker is an `async fn` whose blocking line is marked `GROUND TRUTH`, as it would be in
//! a real service: the blocking call sits directly in the task's code. Build with frame pointers and debug info (`cargo xtask demo` does).
//!
//! Usage: hud-demo [--seconds N] [--workers N] [--thread-name NAME] [--busy] [--quiet]
//! [--timings PATH] [--stall-at SECONDS [--stall-ms MS]]. `--stall-at` plants one long blocker
//! (`planted_stall`, a 300 ms sleep by default) that many seconds after the start, for the
//! flight recorder's trigger. `--timings` logs each sleep and checksum as the demo measured them
//! (`sleep|cpu START_NS END_NS TID`, CLOCK_MONOTONIC, see `hud_demo::timings`).
//! Prints `iterations: N` (healthy request loop iterations) and `per_second: X` at exit, so the
//! overhead of a profiler can be measured as the drop in throughput.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hud_demo::timings::{self, Call};

/// Shared state the mutex blocker contends on.
static CACHE: Mutex<u64> = Mutex::new(0);
/// Cache updates made (the next release counts them).
static CACHE_UPDATES: AtomicU64 = AtomicU64::new(0);
/// Healthy request-loop iterations: the demo's throughput.
static ITERATIONS: AtomicU64 = AtomicU64::new(0);

/// How long `sleepy_handler` sleeps, in ms. Tests check off-CPU durations against it.
const SLEEP_MS: u64 = 15;
/// How long the background thread holds the cache lock, in ms.
const LOCK_HOLD_MS: u64 = 30;
/// How long each `cpu_heavy_checksum` hashes, in ms (longer in the next release).
const CHECKSUM_MS: u64 = if cfg!(feature = "next-release") {
    45
} else {
    20
};

struct Options {
    seconds: f64,
    workers: usize,
    thread_name: Option<String>,
    quiet: bool,
    /// Healthy tasks yield instead of sleeping, keeping the workers busy: throughput then drops
    /// with any CPU a profiler takes, which is what the overhead benchmark wants to see.
    busy: bool,
    timings: Option<std::path::PathBuf>,
    /// `--stall-at`: when the planted stall happens, and how long it lasts.
    stall_at: Option<f64>,
    stall_ms: u64,
}

fn parse_options() -> Options {
    let mut options = Options {
        seconds: 3600.0,
        workers: 2,
        thread_name: None,
        quiet: false,
        busy: false,
        timings: None,
        stall_at: None,
        stall_ms: 300,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                options.seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--workers" => {
                options.workers = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--workers N")
            }
            "--thread-name" => options.thread_name = args.next(),
            "--quiet" => options.quiet = true,
            "--busy" => options.busy = true,
            "--timings" => options.timings = Some(args.next().expect("--timings PATH").into()),
            "--stall-at" => {
                options.stall_at = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--stall-at SECONDS"),
                )
            }
            "--stall-ms" => {
                options.stall_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--stall-ms MS")
            }
            other => {
                eprintln!("hud-demo: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    options
}

fn main() {
    let options = parse_options();
    if let Some(path) = &options.timings {
        timings::open(path);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(options.workers).enable_all();
    if let Some(name) = &options.thread_name {
        builder.thread_name(name.clone());
    }
    let runtime = builder.build().expect("tokio runtime");
    let data_file = prepare_data_file();
    start_lock_holder();
    let started = Instant::now();
    if let Some(at) = options.stall_at {
        let stall = Duration::from_millis(options.stall_ms);
        runtime.spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(at)).await;
            planted_stall(stall).await;
        });
    }
    runtime.block_on(serve(
        Duration::from_secs_f64(options.seconds),
        data_file.clone(),
        options.busy,
    ));
    let elapsed = started.elapsed().as_secs_f64();
    let iterations = ITERATIONS.load(Ordering::Relaxed);
    if !options.quiet {
        println!("iterations: {iterations}");
        println!("per_second: {:.1}", iterations as f64 / elapsed);
    }
    let _ = std::fs::remove_file(&data_file);
}

async fn serve(run_for: Duration, data_file: std::path::PathBuf, busy: bool) {
    let deadline = tokio::time::Instant::now() + run_for;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(every(
        Duration::from_millis(100),
        deadline,
        || cpu_heavy_checksum(CHECKSUM_MS),
    )));
    tasks.push(tokio::spawn(every(
        Duration::from_millis(100),
        deadline,
        sleepy_handler,
    )));
    tasks.push(tokio::spawn(every(
        Duration::from_millis(150),
        deadline,
        locked_cache_update,
    )));
    if cfg!(feature = "next-release") {
        // The next release audits every request, synchronously.
        tasks.push(tokio::spawn(every(
            Duration::from_millis(100),
            deadline,
            audit_request,
        )));
    }
    let file = Arc::new(data_file);
    tasks.push(tokio::spawn(every(
        Duration::from_millis(200),
        deadline,
        move || read_data_file(Arc::clone(&file)),
    )));
    tasks.push(tokio::spawn(every(
        Duration::from_millis(100),
        deadline,
        offloaded_compression,
    )));
    for _ in 0..8 {
        tasks.push(tokio::spawn(healthy_requests(deadline, busy)));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Runs `work` every `period` until `deadline`.
async fn every<F, Fut>(period: Duration, deadline: tokio::time::Instant, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    while tokio::time::Instant::now() < deadline {
        ticker.tick().await;
        work().await;
    }
}

/// Healthy async work: short timers and a little computation. Counts the demo's throughput.
async fn healthy_requests(deadline: tokio::time::Instant, busy: bool) {
    let mut x = 1u64;
    while tokio::time::Instant::now() < deadline {
        if busy {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for i in 0..200u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        ITERATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// BLOCKER (on-CPU): about `millis` ms of hashing inside an async fn.
async fn cpu_heavy_checksum(millis: u64) {
    let start = timings::now_ns();
    let until = Instant::now() + Duration::from_millis(millis);
    let mut hash = 0xcbf29ce484222325u64;
    while Instant::now() < until {
        for i in 0..10_000u64 {
            hash = (hash ^ i).wrapping_mul(0x100000001b3); // GROUND TRUTH: cpu_heavy_checksum
        }
    }
    std::hint::black_box(hash);
    timings::log(Call::Cpu, start);
}

/// BLOCKER (off-CPU, sleep): a synchronous sleep inside an async fn. The next release fixed it:
/// the sleep is awaited.
async fn sleepy_handler() {
    let start = timings::now_ns();
    if cfg!(feature = "next-release") {
        tokio::time::sleep(Duration::from_millis(SLEEP_MS)).await;
    } else {
        std::thread::sleep(Duration::from_millis(SLEEP_MS)); // GROUND TRUTH: sleepy_handler
    }
    timings::log(Call::Sleep, start);
}

/// BLOCKER, next release only (off-CPU, sleep): a synchronous call to an audit service, 6 ms.
async fn audit_request() {
    std::thread::sleep(Duration::from_millis(6)); // NEXT RELEASE: audit_request
}

/// BLOCKER (off-CPU, sleep, once, only with `--stall-at`): the intermittent stall a flight
/// recorder is left running to catch.
async fn planted_stall(length: Duration) {
    let start = timings::now_ns();
    std::thread::sleep(length); // GROUND TRUTH: planted_stall
    timings::log(Call::Stall, start);
}

/// BLOCKER (off-CPU, lock): a std::sync::Mutex that a background thread holds for 30 ms. In the
/// next release, the same lock three lines up (the code around it edited).
async fn locked_cache_update() {
    if cfg!(feature = "next-release") {
        std::hint::black_box(CACHE_UPDATES.fetch_add(1, Ordering::Relaxed));
        let mut guard = CACHE.lock().unwrap(); // NEXT RELEASE: locked_cache_update
        *guard += 1;
    } else {
        let mut guard = CACHE.lock().unwrap(); // GROUND TRUTH: locked_cache_update
        *guard += 1;
    }
}

/// BLOCKER (off-CPU, io): a synchronous file read, its page cache dropped first so it hits disk.
async fn read_data_file(path: Arc<std::path::PathBuf>) {
    drop_page_cache(&path);
    let mut buf = Vec::new();
    let mut file = std::fs::File::open(&*path).expect("data file");
    file.read_to_end(&mut buf).expect("read data file"); // GROUND TRUTH: read_data_file
    std::hint::black_box(buf.len());
}

/// NOT A BLOCKER: CPU work handed to spawn_blocking, where it belongs.
async fn offloaded_compression() {
    let _ = tokio::task::spawn_blocking(|| compress_batch(20)).await;
}

/// Runs on the blocking pool (see `offloaded_compression`).
#[inline(never)]
fn compress_batch(millis: u64) -> u64 {
    let until = Instant::now() + Duration::from_millis(millis);
    let mut acc = 0u64;
    while Instant::now() < until {
        for i in 0..10_000u64 {
            acc = acc.rotate_left(5) ^ i; // GROUND TRUTH: compress_batch (spawn_blocking)
        }
    }
    std::hint::black_box(acc)
}

fn drop_page_cache(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    if let Ok(file) = std::fs::File::open(path) {
        // SAFETY: valid fd; advice only.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}

/// The lock holder: a plain thread that takes the cache lock for 30 ms every 77 ms. Not every
/// 100 ms: against updates every 150 ms that cycle is phase-locked (150 = 1.5 × 100), and for two
/// fifths of the starting phases no update ever met the lock (a CI run counted 2 in 4 s). 150
/// mod 77 moves the phase 4 ms an update, so every phase comes round within 3 s.
fn start_lock_holder() {
    std::thread::Builder::new()
        .name("cache-janitor".into())
        .spawn(|| loop {
            {
                let _guard = CACHE.lock().unwrap();
                std::thread::sleep(Duration::from_millis(LOCK_HOLD_MS));
            }
            std::thread::sleep(Duration::from_millis(77 - LOCK_HOLD_MS));
        })
        .expect("lock holder thread");
}

/// An 8 MiB file for the sync-read blocker. Its name is removed at once and the file is reached
/// through our open descriptor (`/proc/self/fd/N`): the demo is usually ended by a signal, and a
/// named file outlived every run (a thousand runs left 8 GiB in /tmp and a CI machine's disk filled).
fn prepare_data_file() -> std::path::PathBuf {
    use std::os::fd::IntoRawFd;
    let named = std::env::temp_dir().join(format!("hud-demo-{}.dat", std::process::id()));
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&named, data).expect("write data file");
    let file = std::fs::File::open(&named).expect("open data file");
    let _ = std::fs::remove_file(&named);
    // Flush it to disk so dropping the page cache makes reads real I/O.
    let _ = file.sync_all();
    // Kept open for the life of the process: the descriptor is the file's only name.
    std::path::PathBuf::from(format!("/proc/self/fd/{}", file.into_raw_fd()))
}
