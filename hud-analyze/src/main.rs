//! hud-analyze: read a capture, anywhere, without root.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hud_analyze::analysis::{self, Options};
use hud_analyze::detect::Thresholds;
use hud_analyze::objects::SearchPaths;
use hud_analyze::report::Report;
use hud_analyze::summary::Summary;
use hud_format::units::parse_duration;

/// Symbolization allocates many small objects from every thread: glibc's per-thread arenas grow by
/// thousands of mprotect calls, mimalloc does not (measured: 2,102 mprotect calls on a small
/// capture).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hud-analyze",
    version,
    about = "Analyze hud captures: what blocks the Tokio runtime, where, how long, how often",
    after_help = "EXIT CODES:
    0  fine             3  capture missing or unreadable     5  wrong binary (build-id mismatch)
    2  usage            4  not a capture, corrupt, or newer  10 --fail-on-blocking exceeded"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What blocks the runtime, CPU hotspots, and threads.
    Report(ReportArgs),
    /// What a capture holds: target, host, duration, threads, event counts, losses.
    Info {
        /// The capture file (`-` for standard input).
        capture: PathBuf,
    },
}

#[derive(clap::Args)]
struct ReportArgs {
    /// The capture file (`-` for standard input).
    capture: PathBuf,
    /// Use this file for an object (matched by build-id, or by file name). Repeatable.
    #[arg(long = "binary", value_name = "PATH")]
    binaries: Vec<PathBuf>,
    /// Look for `.build-id/ab/cdef….debug` and debuglink files here too. Repeatable.
    #[arg(long = "debug-dir", value_name = "DIR")]
    debug_dirs: Vec<PathBuf>,
    /// Shortest blocked time off CPU inside a poll that counts as blocking.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = parse_duration)]
    threshold: Duration,
    /// Shortest on-CPU poll that counts as blocking (measured by sampling).
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_duration)]
    long_poll: Duration,
    /// Rows per table.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Print JSON (schema hud.report/1, docs/REPORT.md) instead of text.
    #[arg(long)]
    json: bool,
    /// Exit 10 when any blocker's total or worst episode exceeds this (a CI gate).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    fail_on_blocking: Option<Duration>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Info { capture } => {
            let model = analysis::open(&capture)
                .and_then(|c| hud_analyze::model::Model::build(&c).map_err(Into::into));
            match model.map(|m| Summary::of(&m)) {
                Ok(summary) => {
                    emit(&summary.render());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Report(args) => report(args),
    }
}

/// Writes to stdout; a closed pipe (`| head`) ends quietly instead of panicking.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("hud-analyze: cannot write the report: {e}");
        std::process::exit(1);
    }
}

fn fail(e: analysis::AnalyzeError) -> ExitCode {
    eprintln!("hud-analyze: {e}");
    ExitCode::from(e.exit_code())
}

fn report(args: ReportArgs) -> ExitCode {
    let options = Options {
        search: SearchPaths {
            binaries: args.binaries,
            debug_dirs: args.debug_dirs,
        },
        thresholds: Thresholds {
            off_cpu_ns: args.threshold.as_nanos() as u64,
            long_poll_ns: args.long_poll.as_nanos() as u64,
        },
    };
    let capture = match analysis::open(&args.capture) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let analysis = match analysis::analyze(&capture, &options) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let mut laps = hud_analyze::progress::Laps::new("");
    let mut report = Report::build(&analysis, args.top);
    laps.lap("report");
    report.summary.blocking_threshold_ms = args.threshold.as_secs_f64() * 1e3;
    report.summary.long_poll_threshold_ms = args.long_poll.as_secs_f64() * 1e3;
    if args.json {
        emit(&(report.to_json() + "\n"));
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        emit(&report.to_text(color));
    }
    // Freeing millions of frames takes longer than the OS reclaiming the process: skip it.
    std::mem::forget(analysis);
    std::mem::forget(capture);
    if let Some(limit) = args.fail_on_blocking {
        let limit_ms = limit.as_secs_f64() * 1e3;
        let over = report.exceeds(limit_ms);
        if !over.is_empty() {
            for b in &over {
                eprintln!(
                    "hud-analyze: blocking over {limit_ms} ms: {} ({}:{}) total {:.1} ms, worst {:.1} ms",
                    b.function,
                    b.file.as_deref().unwrap_or("?"),
                    b.line,
                    b.total_ms,
                    b.max_ms
                );
            }
            return ExitCode::from(10);
        }
    }
    ExitCode::SUCCESS
}
