//! hud-tailcall: a current_thread Tokio service whose only blocker hides behind a tail call.
//!
//! `normalize` returns what the standard library's `str::to_lowercase` returns, so it compiles
//! to a jump into it: its frame is gone while the conversion runs, and a frame-pointer stack goes
//! from the task straight into the standard library. A task calls it every 150 ms on a text sized
//! at start so that one call takes `--poll-ms` (40 by default: four samples at 99 Hz, four times
//! the long-poll threshold, on a slow machine or a fast one). One task: two periodic tasks on one
//! thread run back to back whenever their ticks meet, and samples cannot tell their polls apart. The ground truth:
//! one long-poll blocker, blamed on `normalize` (put back as a tail call), at the line marked
//! `GROUND TRUTH`.
//!
//! Usage: hud-tailcall [--seconds N] [--poll-ms N] [--timings PATH] [--quiet]. `--timings` logs
//! each call as `normalize START_NS END_NS TID` (see `hud_demo::timings`). Built with the demo
//! (frame pointers, debug info).

use std::time::{Duration, Instant};

use hud_demo::timings::{self, Call};

/// Text converted per call while calibrating.
const PROBE_BYTES: usize = 1 << 18;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    let mut poll_ms = 40.0f64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = hud_demo::number(&mut args, "--seconds"),
            "--poll-ms" => poll_ms = hud_demo::number(&mut args, "--poll-ms"),
            "--timings" => timings::open(args.next().expect("--timings PATH").as_ref()),
            "--quiet" => {}
            other => {
                eprintln!("hud-tailcall: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let text_bytes = calibrate(Duration::from_secs_f64(poll_ms / 1e3));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
        let _ = tokio::spawn(reindex(Duration::from_millis(150), deadline, text_bytes)).await;
    });
}

/// Two-byte upper-case letters: each is converted, not copied.
fn text(bytes: usize) -> String {
    "É".repeat(bytes / 2)
}

/// Bytes of text one `normalize` call takes `target` to convert on this machine: the fastest of
/// a few probes (the one least disturbed by other work), scaled.
fn calibrate(target: Duration) -> usize {
    let probe = text(PROBE_BYTES);
    let fastest = (0..5)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(normalize(std::hint::black_box(&probe)));
            started.elapsed()
        })
        .min()
        .expect("probes");
    let scale = target.as_secs_f64() / fastest.as_secs_f64().max(1e-6);
    ((PROBE_BYTES as f64 * scale) as usize).clamp(2, 1 << 30)
}

/// A task that converts its text on the runtime thread, every `period`.
async fn reindex(period: Duration, deadline: tokio::time::Instant, bytes: usize) {
    let text = text(bytes);
    let mut ticker = tokio::time::interval(period);
    let mut total = 0u64;
    while tokio::time::Instant::now() < deadline {
        ticker.tick().await;
        let start = timings::now_ns();
        total += normalize(std::hint::black_box(&text)).len() as u64;
        timings::log(Call::Normalize, start);
    }
    std::hint::black_box(total);
}

/// Lower-cases `text`; the conversion is its last act, so the compiler leaves by a jump.
#[inline(never)]
fn normalize(text: &str) -> String {
    text.to_lowercase() // GROUND TRUTH: normalize (tail call)
}
