//! `cargo xtask <task>`: everything the project needs, installed and run from here.
//!
//! - `setup`: installs what is missing (apt llvm-22-dev, musl-tools, rust-src, bpf-linker, the
//!   musl target, tracefs), idempotently.
//! - `build`: hud-record, hud-analyze, and the demo workload (frame pointers, full debug info).
//! - `demo`: setup + build, run the demo, record it, print what hud found.
//! - `test`: setup + fmt + clippy (host and BPF target) + every test, eBPF end-to-end included;
//!   `--repeat N` runs the tests N times and lists those that failed in any run.
//! - `dist`: the release archive: static hud-record and hud-analyze, man pages, completions.
//! - `bench`: benchmarks (format, record) with ratios against peers measured in the same run.
//! - `fuzz`: the analyzer's pipeline (or the reader alone) under cargo-fuzz (not in CI).

mod bench;
mod bench_flight;
mod bench_live;
mod bench_polls;
mod bench_switch;
mod bench_unwind;
mod build;
mod demo;
mod dist;
mod repeat;
mod setup;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing: llvm-22-dev, rust-src, bpf-linker; mount tracefs.
    Setup,
    /// Build the recorder, the analyzer and the demo workload.
    Build,
    /// Run the demo workload, record it, and print what hud found.
    Demo {
        /// Seconds to record.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Also record the demo's next release (a blocker fixed, one added, one grown, one
        /// moved) and print `hud-analyze diff` of the two, with its CI gate.
        #[arg(long)]
        diff: bool,
    },
    /// fmt, clippy and every test (eBPF end-to-end included, the release archive's too).
    Test {
        /// Run every test N times in a row and list the ones that failed in any run (their
        /// logs in target/repeat).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        repeat: Option<u32>,
    },
    /// The release archive: static hud-record (eBPF inside) and hud-analyze, man pages and
    /// shell completions, with a SHA-256, in target/dist.
    Dist,
    /// Benchmarks: `format` (criterion), `record` (overhead, size and capacity vs perf),
    /// `analyze` (report speed and memory vs perf report), `tui` (the cockpit, headless),
    /// `export` (each format, time and size), `live` (the live cockpit: latency, CPU, memory on a
    /// storm for --seconds, flush-interval cost), `switch` (per-switch cost: ns per run of each
    /// eBPF program, storm throughput alone / hud / perf), `unwind` (stack copies: leaf windows'
    /// size, `--unwind dwarf` against `perf record --call-graph dwarf`, offline unwinding speed),
    /// `flight` (the flight recorder's CPU and memory against a plain recording, side by side on
    /// the busy demo for --seconds; its dumps' latency and size).
    Bench {
        #[arg(default_value = "format")]
        which: String,
        /// Seconds per run for `record`.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Alternating rounds for `record`.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Fuzz with cargo-fuzz for the given seconds: `analyze` (the default) runs the analyzer's
    /// whole pipeline over structure-aware mutations of captures; `read` the capture reader alone.
    Fuzz {
        #[arg(default_value = "analyze")]
        target: String,
        #[arg(long, default_value_t = 600)]
        seconds: u32,
        /// Fuzzing processes in parallel.
        #[arg(long, default_value_t = 2)]
        jobs: u32,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Build => {
            setup::run()?;
            build::all()
        }
        Task::Demo { seconds, diff } => {
            setup::run()?;
            build::all()?;
            if diff {
                demo::diff(seconds)
            } else {
                demo::run(seconds)
            }
        }
        Task::Dist => {
            setup::run()?;
            dist::run().map(drop)
        }
        Task::Test { repeat } => {
            setup::run()?;
            build::test(repeat)
        }
        Task::Bench {
            which,
            seconds,
            rounds,
        } => {
            setup::run()?;
            bench::run(&which, seconds, rounds)
        }
        Task::Fuzz {
            target,
            seconds,
            jobs,
        } => {
            setup::run()?;
            build::fuzz(&target, seconds, jobs)
        }
    }
}
