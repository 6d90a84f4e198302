//! What the demo's workloads share: `--timings PATH`, each workload's own measure of its
//! blocking calls, for end-to-end tests to compare what hud recorded against.
//!
//! Timings are what the workload measured on this machine, under this load: a test that
//! compares against them holds on a faster machine and on a busy one, where a test that compares
//! against a constant ("15 ms ± 20 %") does not. And the number after an option, for their small
//! command lines.

pub mod cpu;
pub mod timings;

/// The number after an option (`--seconds 5`), for the workloads' small command lines.
pub fn number(args: &mut dyn Iterator<Item = String>, option: &str) -> f64 {
    args.next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{option} N"))
}
