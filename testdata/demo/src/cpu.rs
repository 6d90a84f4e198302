//! CPU work of a given length on any machine: the work is sized at start against this machine's
//! speed, so a workload's polls cost the CPU time asked whether the machine is fast, slow or
//! loaded.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rounds of [`rounds`] per millisecond of CPU on this machine, measured at start.
static ROUNDS_PER_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Sizes the work at start: the fastest of a few probes (the one least disturbed by other work),
/// so that `spin` costs the CPU time asked on a slow machine or a fast one, loaded or not. (By the
/// clock instead, a poll preempted half the time did half the work: 20 ms of wall time, 10 of
/// CPU, one sample.)
pub fn calibrate() {
    const PROBE: u64 = 2_000;
    let fastest = (0..5)
        .map(|_| {
            let started = Instant::now();
            black_box(rounds(PROBE));
            started.elapsed()
        })
        .min()
        .expect("probes");
    let per_ms = (PROBE as f64 / (fastest.as_secs_f64() * 1e3).max(1e-6)) as u64;
    let _ = ROUNDS_PER_MS.set(per_ms.max(1));
}

/// `length` of CPU time (as measured at start).
#[inline(never)]
pub fn spin(length: Duration) -> u64 {
    let per_ms = *ROUNDS_PER_MS.get().expect("calibrated in main");
    rounds((length.as_secs_f64() * 1e3 * per_ms as f64) as u64)
}

/// Pure CPU work: `n` rounds of 1,000 multiply-adds.
fn rounds(n: u64) -> u64 {
    let mut x = 1u64;
    for _ in 0..n {
        for _ in 0..1000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    x
}
