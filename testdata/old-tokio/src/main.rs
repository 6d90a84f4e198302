//! hud-old-tokio: hud-tasks' sessions on tokio 1.38 (testdata/demo/GROUND_TRUTH.md): six tasks
//! of one future type on two workers (`old-worker`); session 3 sleeps 8 ms with
//! `std::thread::sleep` after each 10 ms wait (`blocking_pause`). tokio 1.38 cannot print task
//! ids (`tokio::task::id` needs `tokio_unstable` there): a test checks that one task id, and no
//! other, is named for the blocker, and that six tasks of the kind `session` are seen.
//!
//! Usage: hud-old-tokio [--seconds N] [--quiet].

use std::hint::black_box;
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--quiet" => {}
            other => {
                eprintln!("hud-old-tokio: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("old-worker")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    runtime.block_on(async move {
        let handles: Vec<_> = (0..6)
            .map(|index| tokio::spawn(session(index == 3, deadline)))
            .collect();
        for h in handles {
            let _ = h.await;
        }
    });
}

async fn session(blocks: bool, deadline: Instant) {
    let mut total = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        total = total.wrapping_add(work(200));
        if blocks {
            blocking_pause();
        }
    }
    black_box(total);
}

#[inline(never)]
fn blocking_pause() {
    std::thread::sleep(Duration::from_millis(8)); // GROUND TRUTH: blocking_pause
}

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
