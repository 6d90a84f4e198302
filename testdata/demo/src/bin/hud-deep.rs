//! hud-deep: an actix-style service whose blocking call is made deep in the stack.
//!
//! `--arbiters N` threads named `arbiter-K`, each running its own current_thread runtime and a
//! `LocalSet` (as actix-web's workers do). On each, a spawned local task handles a "request"
//! every 25 ms: it hands a checksum to `spawn_blocking` and awaits it (the blocking pool's job,
//! not blocking), then calls a recursion of 24 frames that each hold a 1 KiB buffer, at whose
//! bottom `deep_wait` sleeps 4 ms: the blocking call is made about 26 KiB of stack below the
//! task's poll, as deep as in real async services (mini-redis 13 KiB, actix-web 26 KiB), where a
//! fixed 8 KiB stack copy never reaches the runtime's frames.
//!
//! Ground truth (testdata/demo/GROUND_TRUTH.md): one sleep blocker on every arbiter, blamed on
//! `deep_wait` at its ground-truth marker; roles: the arbiters current_thread,
//! the pool's threads blocking pool (they are named like Tokio's workers, as Tokio names them).
//!
//! Usage: hud-deep [--seconds N] [--arbiters N] [--quiet]. Built with the demo, with and without
//! frame pointers (`cargo xtask build`).

use std::hint::black_box;
use std::time::Duration;

/// Frames of the recursion, 1 KiB of buffer each.
const LEVELS: u32 = 24;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    let mut arbiters = 2usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = hud_demo::number(&mut args, "--seconds"),
            "--arbiters" => arbiters = hud_demo::number(&mut args, "--arbiters") as usize,
            "--quiet" => {}
            other => {
                eprintln!("hud-deep: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..arbiters)
        .map(|k| {
            std::thread::Builder::new()
                .name(format!("arbiter-{k}"))
                .spawn(move || arbiter(deadline))
                .expect("arbiter thread")
        })
        .collect();
    for t in threads {
        t.join().expect("arbiter");
    }
}

/// One arbiter: a current_thread runtime and a local task set, as actix-rt builds them.
fn arbiter(deadline: std::time::Instant) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let _ = tokio::task::spawn_local(serve(deadline)).await;
    });
}

/// The request loop of one arbiter.
async fn serve(deadline: std::time::Instant) {
    let mut ticker = tokio::time::interval(Duration::from_millis(25));
    let mut total = 0u64;
    while std::time::Instant::now() < deadline {
        ticker.tick().await;
        let data = vec![7u8; 1 << 16];
        total = total.wrapping_add(
            tokio::task::spawn_blocking(move || checksum(&data))
                .await
                .expect("checksum"),
        );
        total = total.wrapping_add(descend(LEVELS));
    }
    black_box(total);
}

/// Pool work: CPU on a blocking-pool thread.
fn checksum(data: &[u8]) -> u64 {
    let mut sum = 0u64;
    for _ in 0..40 {
        for &b in data {
            sum = sum.wrapping_mul(31).wrapping_add(u64::from(b));
        }
        sum = black_box(sum);
    }
    sum
}

/// One frame of the recursion, holding a buffer the compiler must keep.
#[inline(never)]
fn descend(levels: u32) -> u64 {
    let mut buffer = [levels as u8; 1024];
    black_box(&mut buffer);
    let below = if levels == 0 {
        deep_wait();
        0
    } else {
        descend(levels - 1)
    };
    black_box(&buffer);
    below.wrapping_add(u64::from(buffer[levels as usize % 1024]))
}

#[inline(never)]
fn deep_wait() {
    std::thread::sleep(Duration::from_millis(4)); // GROUND TRUTH: deep_wait
}
