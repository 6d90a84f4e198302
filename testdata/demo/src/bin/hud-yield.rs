//! hud-yield: a busy multi-thread runtime whose tasks are short and never park, and optionally
//! one long poll planted among them.
//!
//! Two workers (named `yield-worker`) run `--tasks N` tasks (8 by default) that each compute
//! 1 ms of CPU (work sized at start) in `short_step` and yield, back to back, so the workers are always busy and never park:
//! consecutive samples of a worker land in the same code across many polls of many tasks, and
//! none of those polls is long. With `--planted-ms M`, one more task computes M ms in a single
//! poll (`planted_poll`) every 500 ms.
//!
//! Ground truth (testdata/demo/GROUND_TRUTH.md): without `--planted-ms`, no long poll; with it,
//! one long-poll blocker blamed on `planted_poll`, each poll M ms (`--timings PATH` logs each as
//! `cpu START_NS END_NS TID`).
//!
//! Usage: hud-yield [--seconds N] [--tasks N] [--planted-ms M] [--timings PATH] [--quiet].

use std::hint::black_box;
use std::time::{Duration, Instant};

use hud_demo::cpu;
use hud_demo::timings::{self, Call};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    let mut tasks = 8usize;
    let mut planted_ms = 0.0f64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = hud_demo::number(&mut args, "--seconds"),
            "--tasks" => tasks = hud_demo::number(&mut args, "--tasks") as usize,
            "--planted-ms" => planted_ms = hud_demo::number(&mut args, "--planted-ms"),
            "--timings" => timings::open(args.next().expect("--timings PATH").as_ref()),
            "--quiet" => {}
            other => {
                eprintln!("hud-yield: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    cpu::calibrate();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("yield-worker")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    runtime.block_on(async move {
        let mut handles: Vec<_> = (0..tasks)
            .map(|_| tokio::spawn(stepper(deadline)))
            .collect();
        if planted_ms > 0.0 {
            let poll = Duration::from_secs_f64(planted_ms / 1e3);
            handles.push(tokio::spawn(planted(deadline, poll)));
        }
        for h in handles {
            let _ = h.await;
        }
    });
}

/// A task of 1 ms steps, yielding between them.
async fn stepper(deadline: Instant) {
    let mut total = 0u64;
    while Instant::now() < deadline {
        total = total.wrapping_add(short_step(Duration::from_millis(1)));
        tokio::task::yield_now().await;
    }
    black_box(total);
}

/// One poll's worth of a stepper's work.
#[inline(never)]
fn short_step(length: Duration) -> u64 {
    cpu::spin(length)
}

/// The planted task: one long poll every 500 ms.
async fn planted(deadline: Instant, poll: Duration) {
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut total = 0u64;
    while Instant::now() < deadline {
        ticker.tick().await;
        let started = timings::now_ns();
        total = total.wrapping_add(planted_poll(poll)); // GROUND TRUTH: planted_poll
        timings::log(Call::Cpu, started);
    }
    black_box(total);
}

/// Not a tail call of `spin`: with the same body as `short_step`, the two were folded into one.
#[inline(never)]
fn planted_poll(length: Duration) -> u64 {
    black_box(cpu::spin(length)).rotate_left(1)
}
