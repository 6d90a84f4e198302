//! hud-polls: tasks of three future types whose polls take known, different times, each poll
//! timed by the workload itself, to check `hud-record --poll-probes` against.
//!
//! - `quick_ticker` (4 tasks): each poll computes about 150 µs, then sleeps 2 ms.
//! - `steady_worker` (2 tasks): each poll computes about 600 µs, then sleeps 1 ms.
//! - `heavy_batch` (1 task): each poll computes about 3 ms, then sleeps 20 ms.
//!
//! Every task is wrapped in `Timed`, which measures each `poll` of the task's future with the
//! monotonic clock; each second the workload appends the polls since the last second to
//! `--polls PATH`, a line `KIND END_UNIX_NS TOOK_NS` each (so a test compares the polls of the
//! recorded stretch only). Threads are named `poll-runner`; `--current-thread` runs
//! everything on one current_thread runtime (thread `polls-main`).
//!
//! `--yield-loop` instead runs one task that yields in a loop on a current_thread runtime and
//! prints how many polls it made per second: what a probe costs per poll (`cargo xtask bench
//! polls`, docs/RECORD.md).
//!
//! Usage: hud-polls [--seconds N] [--polls PATH] [--current-thread] [--yield-loop] [--quiet].

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Polls not written yet: future type, when it ended (Unix time, ns), how long it took (ns).
type Log = Arc<Mutex<Vec<(&'static str, u64, u64)>>>;

/// A future that times each of its inner future's polls.
struct Timed<F> {
    kind: &'static str,
    log: Log,
    inner: Pin<Box<F>>,
}

impl<F: Future<Output = ()>> Future for Timed<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let started = Instant::now();
        let done = self.inner.as_mut().poll(cx);
        let took = started.elapsed().as_nanos() as u64;
        let ended = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let kind = self.kind;
        self.log.lock().unwrap().push((kind, ended, took));
        done
    }
}

/// Computes for about `micros` microseconds.
fn spin(micros: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(micros);
    let mut x = 1u64;
    while Instant::now() < until {
        for _ in 0..64 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}

async fn quick_ticker() {
    loop {
        black_box(spin(150));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn steady_worker() {
    loop {
        black_box(spin(600));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn heavy_batch() {
    loop {
        black_box(spin(3000));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a task that only yields for `seconds`, and prints the polls made per second.
fn yield_loop(seconds: f64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let polls = runtime.block_on(async move {
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs_f64(seconds);
            let mut polls = 0u64;
            while Instant::now() < until {
                polls += 1;
                tokio::task::yield_now().await;
            }
            polls
        })
        .await
        .expect("the yield loop")
    });
    println!("polls/s {:.0}", polls as f64 / seconds);
}

/// Appends the polls logged since the last call to `path`, a line `KIND END_UNIX_NS TOOK_NS`
/// each, in one write (a reader sees whole lines, but maybe not the last).
fn write_log(log: &Log, path: &str) {
    use std::io::Write;
    let polls = std::mem::take(&mut *log.lock().unwrap());
    let mut out = String::with_capacity(polls.len() * 40);
    for (kind, ended, took) in polls {
        out.push_str(&format!("{kind} {ended} {took}\n"));
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(out.as_bytes());
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    let mut polls: Option<String> = None;
    let mut current_thread = false;
    let mut yield_only = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = hud_demo::number(&mut args, "--seconds"),
            "--polls" => polls = Some(args.next().expect("--polls PATH")),
            "--current-thread" => current_thread = true,
            "--yield-loop" => yield_only = true,
            "--quiet" => {}
            other => {
                eprintln!("hud-polls: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if yield_only {
        return yield_loop(seconds);
    }
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("poll-runner")
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    let log: Log = Arc::default();
    let run = {
        let log = log.clone();
        async move {
            for _ in 0..4 {
                tokio::spawn(Timed {
                    kind: "quick_ticker",
                    log: log.clone(),
                    inner: Box::pin(quick_ticker()),
                });
            }
            for _ in 0..2 {
                tokio::spawn(Timed {
                    kind: "steady_worker",
                    log: log.clone(),
                    inner: Box::pin(steady_worker()),
                });
            }
            tokio::spawn(Timed {
                kind: "heavy_batch",
                log: log.clone(),
                inner: Box::pin(heavy_batch()),
            });
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        }
    };
    // The log is written each second (and at the end): a test reads it while the workload runs.
    if let Some(path) = polls.clone() {
        let log = log.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            write_log(&log, &path);
        });
    }
    // The runtime is driven from a thread of the workload's own name, not `main`.
    let name = if current_thread {
        "polls-main"
    } else {
        "polls-driver"
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || runtime.block_on(run))
        .expect("thread")
        .join()
        .expect("the runtime's thread");
    if let Some(path) = polls {
        write_log(&log, &path);
    }
    // The runtime's tasks loop forever: leave without waiting for them.
    std::process::exit(0);
}
