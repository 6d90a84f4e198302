//! hud-tasks: six tasks of one future type (`session`), of which one blocks its worker.
//!
//! Every session loops: waits 10 ms (asynchronously), computes about 0.2 ms, and, for the session
//! numbered `--blocker N` (3 by default; one past the sessions: none) only, sleeps `--pause-ms`
//! (8 by default) with `std::thread::sleep` (`blocking_pause`). Threads are named `conn-worker` (or one `tasks-loop` thread with
//! `--current-thread`). With `--two-runtimes`, both at once in one process: sessions 0–5 on the
//! multi-thread runtime (`conn-worker`), sessions 6–11 on a current_thread runtime on a thread
//! named `side-loop`. With `--ids PATH`, each session writes `session INDEX TASK_ID` when it
//! starts (`tokio::task::id()`), so a test can tell which task blocked.
//!
//! Ground truth (testdata/demo/GROUND_TRUTH.md): one sleep blocker blamed on `blocking_pause`,
//! in the task of session `--blocker` and no other.
//!
//! Usage: hud-tasks [--seconds N] [--blocker N] [--pause-ms N] [--ids PATH]
//! [--current-thread | --two-runtimes] [--quiet].

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

/// Sessions spawned (all of one future type).
const SESSIONS: usize = 6;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    let mut blocker = 3usize;
    let mut ids: Option<String> = None;
    let mut current_thread = false;
    let mut two_runtimes = false;
    let mut pause_ms = 8u64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = hud_demo::number(&mut args, "--seconds"),
            "--blocker" => blocker = hud_demo::number(&mut args, "--blocker") as usize,
            "--ids" => ids = Some(args.next().expect("--ids PATH")),
            "--current-thread" => current_thread = true,
            "--two-runtimes" => two_runtimes = true,
            "--pause-ms" => pause_ms = hud_demo::number(&mut args, "--pause-ms") as u64,
            "--quiet" => {}
            other => {
                eprintln!("hud-tasks: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let multi_thread = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("conn-worker")
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    let current = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let sessions = move |runtime: tokio::runtime::Runtime, first: usize, ids: Option<String>| {
        move || {
            runtime.block_on(async move {
                let handles: Vec<_> = (first..first + SESSIONS)
                    .map(|index| {
                        let pause = (index == blocker).then_some(Duration::from_millis(pause_ms));
                        tokio::spawn(session(index, pause, ids.clone(), deadline))
                    })
                    .collect();
                for h in handles {
                    let _ = h.await;
                }
            })
        }
    };
    let on_thread = |name: &str, run: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(run)
            .expect("the runtime's thread")
    };
    if two_runtimes {
        let side = on_thread(
            "side-loop",
            Box::new(sessions(current(), SESSIONS, ids.clone())),
        );
        sessions(multi_thread(), 0, ids)();
        side.join().expect("the side runtime ran");
    } else if current_thread {
        on_thread("tasks-loop", Box::new(sessions(current(), 0, ids)))
            .join()
            .expect("the runtime's thread ran");
    } else {
        sessions(multi_thread(), 0, ids)();
    }
}

/// One session: all are this future type; only the blocker's sleeps block.
async fn session(index: usize, pause: Option<Duration>, ids: Option<String>, deadline: Instant) {
    if let Some(path) = ids {
        let line = format!("session {index} {}\n", tokio::task::id());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("the ids file");
        file.write_all(line.as_bytes()).expect("write an id");
    }
    let mut total = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        total = total.wrapping_add(work(200));
        if let Some(pause) = pause {
            blocking_pause(pause);
        }
    }
    black_box(total);
}

/// The blocker: a synchronous sleep inside the task.
#[inline(never)]
fn blocking_pause(pause: Duration) {
    std::thread::sleep(pause); // GROUND TRUTH: blocking_pause
}

/// About `micros` µs of CPU.
#[inline(never)]
fn work(micros: u64) -> u64 {
    let started = Instant::now();
    let mut x = 1u64;
    while started.elapsed() < Duration::from_micros(micros) {
        for _ in 0..100 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}
