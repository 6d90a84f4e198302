//! hud-tailcall: a current_thread Tokio service whose only blocker hides behind a tail call.
//!
//! `normalize` returns what the standard library's `str::to_lowercase` returns, so it compiles
//! to a jump into it: its frame is gone while the conversion runs, and a frame-pointer stack goes
//! from the task straight into the standard library. Two tasks call it, every 100 and 150 ms, on
//! 1 MiB of text (tens of ms of CPU on the project's machine). The ground truth: one long-poll
//! blocker, blamed on `normalize` (put back as a tail call), at the line marked `GROUND TRUTH`.
//!
//! Usage: hud-tailcall [--seconds N] [--quiet]. Built with the demo (frame pointers, debug
//! info).

use std::time::Duration;

/// Text converted per call.
const TEXT_BYTES: usize = 1 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--quiet" => {}
            other => {
                eprintln!("hud-tailcall: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
        let a = tokio::spawn(reindex(Duration::from_millis(100), deadline, 1));
        let b = tokio::spawn(reindex(Duration::from_millis(150), deadline, 2));
        let _ = tokio::join!(a, b);
    });
}

/// A task that converts its text on the runtime thread, every `period`.
async fn reindex(period: Duration, deadline: tokio::time::Instant, seed: u64) {
    // Two-byte upper-case letters: each is converted, not copied.
    let text = "É".repeat(TEXT_BYTES / 2);
    let mut ticker = tokio::time::interval(period);
    let mut total = seed;
    while tokio::time::Instant::now() < deadline {
        ticker.tick().await;
        total += normalize(std::hint::black_box(&text)).len() as u64;
    }
    std::hint::black_box(total);
}

/// Lower-cases `text`; the conversion is its last act, so the compiler leaves by a jump.
#[inline(never)]
fn normalize(text: &str) -> String {
    text.to_lowercase() // GROUND TRUTH: normalize (tail call)
}
