//! hud-stress: `--pairs N` thread pairs pass a token back and forth through a Mutex + Condvar, so
//! every hand-off is two context switches. Prints `round_trips_per_second: X` at exit.
//!
//! Usage: hud-stress [--pairs N] [--seconds S] [--work N] [--ticks]
//! `--work` adds N iterations of arithmetic per hand-off to lower the switch rate.
//! `--ticks` also prints `tick UNIX_MS TRIPS` (round trips so far) every 100 ms, so a benchmark
//! can take the rate over exactly the time a profiler was attached.
//! `--churn` also starts and joins short-lived threads back to back, four at a time (each sleeps 1 ms, so it
//! leaves the CPU once), and prints `threads_started: N` at exit: thousands of thread births
//! and deaths a second, for the recorder's per-thread bookkeeping.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct Token {
    turn: Mutex<bool>,
    changed: Condvar,
}

fn main() {
    let mut pairs = 1usize;
    let mut seconds = 10.0f64;
    let mut work = 0u64;
    let mut ticks = false;
    let mut churn = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--ticks" {
            ticks = true;
            continue;
        }
        if arg == "--churn" {
            churn = true;
            continue;
        }
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--pairs" => pairs = value.parse().expect("--pairs N"),
            "--seconds" => seconds = value.parse().expect("--seconds S"),
            "--work" => work = value.parse().expect("--work N"),
            other => panic!("unknown argument {other}"),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let trips = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..pairs {
        let token = Arc::new(Token {
            turn: Mutex::new(false),
            changed: Condvar::new(),
        });
        for side in [false, true] {
            let (token, stop, trips) = (Arc::clone(&token), Arc::clone(&stop), Arc::clone(&trips));
            threads.push(std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut turn = token.turn.lock().unwrap();
                    while *turn != side && !stop.load(Ordering::Relaxed) {
                        turn = token
                            .changed
                            .wait_timeout(turn, Duration::from_millis(10))
                            .unwrap()
                            .0;
                    }
                    for i in 0..work {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
                    }
                    *turn = !side;
                    token.changed.notify_one();
                    if side {
                        trips.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::hint::black_box(x);
            }));
        }
    }
    let started_threads = Arc::new(AtomicU64::new(0));
    for _ in 0..if churn { 4 } else { 0 } {
        let (stop, started_threads) = (Arc::clone(&stop), Arc::clone(&started_threads));
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = std::thread::Builder::new()
                    .name("churn".into())
                    .spawn(|| std::thread::sleep(Duration::from_millis(1)));
                if let Ok(t) = t {
                    started_threads.fetch_add(1, Ordering::Relaxed);
                    let _ = t.join();
                }
            }
        }));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
        if ticks {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            println!("tick {unix_ms} {}", trips.load(Ordering::Relaxed));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let rate = trips.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("round_trips_per_second: {rate:.0}");
    if churn {
        println!(
            "threads_started: {}",
            started_threads.load(Ordering::Relaxed)
        );
    }
}
