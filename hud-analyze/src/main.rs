//! hud-analyze: read a capture, anywhere, without root.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use hud_analyze::analysis::detect::Thresholds;
use hud_analyze::analysis::hotspots::Ranking;
use hud_analyze::analysis::{Options, Window};
use hud_analyze::objects::SearchPaths;
use hud_analyze::observer::{Observer, Phase};
use hud_analyze::view::info::Summary;
use hud_analyze::view::report::{text, Report};
use hud_analyze::{pipeline, AnalyzeError};
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
    2  usage            4  not a capture, corrupt, or newer  6  export: cannot write the output
                                                             10 --fail-on-blocking exceeded"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What blocks the runtime, CPU hotspots, and threads.
    Report(ReportArgs),
    /// The glass cockpit: blockers, hotspots, workers and a timeline, for any window.
    Tui(TuiArgs),
    /// Files for other tools: Perfetto and Chrome timelines, pprof, folded stacks, SVG flame graphs.
    Export(ExportArgs),
    /// What changed between two captures: blockers new, gone, grown or shrunk (judged against
    /// noise), CPU hotspots that moved, runtime threads; a CI gate on new blockers.
    Diff(DiffArgs),
    /// What a capture holds: target, host, duration, threads, event counts, losses.
    Info {
        /// The capture file (`-` for standard input, read as it arrives).
        capture: PathBuf,
        #[command(flatten)]
        read: ReadArgs,
    },
}

/// How a capture is read: shared by every command.
#[derive(clap::Args)]
struct ReadArgs {
    /// Refuse a damaged capture (exit 4) instead of skipping its damaged frames. By default a
    /// damaged frame is skipped, like the cut end of a capture, and the time it held is reported
    /// as missing.
    #[arg(long)]
    strict: bool,
    /// The most the capture may decompress to (e.g. 64G). By default: 32 times its size (real
    /// captures are 3 to 5), at most 16G, which bounds what a crafted file can make the analyzer
    /// allocate.
    #[arg(long, value_name = "SIZE", value_parser = hud_format::units::parse_size)]
    max_decompressed: Option<u64>,
}

impl ReadArgs {
    fn options(&self) -> hud_format::reader::ReadOptions {
        hud_format::reader::ReadOptions {
            salvage: !self.strict,
            max_decompressed: self.max_decompressed,
        }
    }
}

/// A path given on the command line that must exist (a typo would otherwise be ignored).
fn existing_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match std::fs::metadata(&path) {
        Ok(_) => Ok(path),
        Err(e) => Err(format!("{text}: {e}")),
    }
}

/// A capture, where symbols come from and what counts as blocking: shared by `report` and `tui`.
#[derive(clap::Args)]
struct AnalysisArgs {
    /// The capture file (`-` for standard input, read as it arrives).
    capture: PathBuf,
    #[command(flatten)]
    how: HowArgs,
}

impl AnalysisArgs {
    fn options(&self) -> Options {
        self.how.options()
    }
}

/// Where symbols come from and what counts as blocking.
#[derive(clap::Args)]
struct HowArgs {
    /// Use this file for an object (matched by build-id, or by file name). Repeatable.
    #[arg(long = "binary", value_name = "PATH", value_parser = existing_path)]
    binaries: Vec<PathBuf>,
    /// Look for `.build-id/ab/cdef….debug` and debuglink files here too. Repeatable.
    #[arg(long = "debug-dir", value_name = "DIR", value_parser = existing_path)]
    debug_dirs: Vec<PathBuf>,
    /// Do not read or write the symbol cache (`HUD_SYMBOL_CACHE`, else
    /// `~/.cache/hud/symbols`: symbolization results per object build, so the next analysis of
    /// the same builds starts warm; `HUD_SYMBOL_CACHE=off` does the same).
    #[arg(long)]
    no_symbol_cache: bool,
    /// Shortest blocked time off CPU inside a poll that counts as blocking.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = parse_duration)]
    threshold: Duration,
    /// Shortest on-CPU poll that counts as blocking (measured by sampling).
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_duration)]
    long_poll: Duration,
    #[command(flatten)]
    read: ReadArgs,
}

impl HowArgs {
    fn options(&self) -> Options {
        Options {
            search: SearchPaths {
                binaries: self.binaries.clone(),
                debug_dirs: self.debug_dirs.clone(),
                process_root: None,
                debuginfod: hud_analyze::debuginfod::Debuginfod::from_env()
                    .map(std::sync::Arc::new),
                symbol_cache: if self.no_symbol_cache {
                    None
                } else {
                    hud_analyze::symbols::CacheDir::from_env()
                },
            },
            thresholds: Thresholds {
                off_cpu_ns: nanos(self.threshold),
                long_poll_ns: nanos(self.long_poll),
            },
            read: self.read.options(),
            sources: Default::default(),
        }
    }
}

#[derive(clap::Args)]
struct TuiArgs {
    #[command(flatten)]
    analysis: AnalysisArgs,
    /// Follow a capture that a recorder is still writing: live until the recorder closes it or
    /// is gone, then a replay. (A capture whose recorder holds its lock is followed anyway, and
    /// `-` reads a pipe live.)
    #[arg(long)]
    follow: bool,
    /// Live: events held in detail (older ones are kept as session totals, shown with `a`).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    window: Duration,
    /// Compare every window with this capture (blockers new, grown, gone: docs/DIFF.md).
    #[arg(long, value_name = "CAPTURE")]
    base: Option<PathBuf>,
    /// Look for the target's source files under DIR too (a checkout of the built tree
    /// anywhere: the recorded paths are tried with their leading folders dropped). Repeatable.
    #[arg(long = "source-root", value_name = "DIR", value_parser = existing_path)]
    source_roots: Vec<PathBuf>,
    /// Time the cockpit on a headless WIDTHxHEIGHT terminal instead (for `cargo xtask bench tui`).
    #[arg(long, hide = true, value_name = "WxH")]
    bench_headless: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    /// A Perfetto protobuf trace (ui.perfetto.dev): the compact timeline, with samples.
    Perfetto,
    /// Trace Event Format JSON (chrome://tracing, ui.perfetto.dev).
    Chrome,
    /// Folded stacks: `frame;frame;… weight` lines.
    Folded,
    /// A flame graph (or, with --flame-chart, a flame chart).
    Svg,
    /// pprof's profile.proto, gzipped.
    Pprof,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WeightArg {
    /// CPU samples.
    Cpu,
    /// Time blocked off CPU (microseconds in folded and SVG, nanoseconds in pprof).
    Blocked,
    /// Poll durations per future type, from `hud-record --poll-probes` (pprof only).
    Polls,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RootArg {
    None,
    /// The thread's name and tid.
    Thread,
    /// The thread's role.
    Role,
    /// The Tokio task's kind (captures with task ids).
    Task,
}

#[derive(clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    analysis: AnalysisArgs,
    /// The format; by default from the output file's extension (.pftrace, .json, .folded, .svg,
    /// .pb.gz).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The output file (`-`: standard output). Default: the capture's name with the format's
    /// extension, in the current directory.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Export only from this time after the recording's start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    from: Option<Duration>,
    /// Export only until this time after the recording's start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    to: Option<Duration>,
    /// Only these threads (comma-separated tids).
    #[arg(long, value_delimiter = ',', value_name = "TID,...")]
    threads: Vec<u32>,
    /// What profiles count.
    #[arg(long, value_enum, default_value = "cpu")]
    weight: WeightArg,
    /// The root frame of folded stacks and flame graphs.
    #[arg(long, value_enum, default_value = "none")]
    root: RootArg,
    /// SVG: a flame chart (time order) instead of a flame graph.
    #[arg(long)]
    flame_chart: bool,
    /// Folded and SVG: keep the runtime's plumbing (thread start, catch_unwind, Tokio's
    /// scheduler and harness) instead of folding it into one frame per thread role.
    #[arg(long)]
    all_frames: bool,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The capture compared against (before the change).
    base: PathBuf,
    /// The capture after the change.
    new: PathBuf,
    #[command(flatten)]
    how: HowArgs,
    /// The base's window: from this time after its start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    base_from: Option<Duration>,
    /// The base's window: until this time after its start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    base_to: Option<Duration>,
    /// The new capture's window: from this time after its start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    from: Option<Duration>,
    /// The new capture's window: until this time after its start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    to: Option<Duration>,
    /// Print JSON (schema hud.diff/1, docs/DIFF.md) instead of text.
    #[arg(long)]
    json: bool,
    /// Exit 12 when a blocker is new beyond noise with at least --min-total of blocking in the
    /// new window (a CI gate).
    #[arg(long)]
    fail_on_new_blocker: bool,
    /// Exit 13 when a blocker grew beyond noise by at least this many percent of blocked time
    /// per second.
    #[arg(long, value_name = "PERCENT")]
    fail_on_growth: Option<f64>,
    /// The least blocking in the new window a new blocker needs to fail the gate.
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = parse_duration)]
    min_total: Duration,
    /// Compare captures of two different programs (by function names).
    #[arg(long)]
    force: bool,
    /// Also write differential flame graphs: PATH on the new capture's stacks, and PATH's name
    /// with `-base` on the base's (where vanished stacks show); red grew, blue shrank.
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,
    /// What the flame graphs weigh.
    #[arg(long, value_enum, default_value = "cpu")]
    weight: WeightArg,
}

#[derive(clap::Args)]
struct ReportArgs {
    #[command(flatten)]
    analysis: AnalysisArgs,
    /// Report only from this time after the recording's start (e.g. 2s, 1500ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    from: Option<Duration>,
    /// Report only until this time after the recording's start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    to: Option<Duration>,
    /// Rows per table and list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Keep library frames present in nearly every sample (thread start, the runtime's loop) in
    /// the inclusive tables.
    #[arg(long)]
    all_frames: bool,
    /// Print JSON (schema hud.report/2, docs/REPORT.md) instead of text.
    #[arg(long)]
    json: bool,
    /// Exit 10 when any blocker's total or worst episode exceeds this (a CI gate); exit 11 when
    /// none does but the blocking could not be judged (status UNKNOWN: no runtime thread found,
    /// or stacks cut short), so a gate never passes on no data.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    fail_on_blocking: Option<Duration>,
}

/// Progress on stderr: a bar when stderr is a terminal; phase timings when `HUD_TIMINGS` is set
/// (read by `cargo xtask bench analyze`).
struct Terminal {
    bar: Option<indicatif::ProgressBar>,
    timings: bool,
}

impl Terminal {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Terminal {
            bar,
            timings: std::env::var_os("HUD_TIMINGS").is_some(),
        }
    }
}

impl Observer for Terminal {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        let Some(bar) = &self.bar else { return };
        match total {
            Some(total) => {
                let style = indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {pos}/{len} ({eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_position(0);
                bar.set_length(total);
            }
            None => bar.set_style(indicatif::ProgressStyle::default_spinner()),
        }
        bar.set_message(phase.to_string());
    }

    fn advance(&self, steps: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(steps);
        }
    }

    fn timing(&self, name: &str, elapsed: Duration) {
        if self.timings {
            // With the heap resident at the phase's end: which phase holds the memory.
            eprintln!(
                "timing {name} {:.6} s (heap {})",
                elapsed.as_secs_f64(),
                resident("RssAnon:").unwrap_or_default()
            );
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.timings {
            // Resident memory after the analysis, heap and mapped files apart: what a cold
            // analysis costs is mostly one or the other.
            for field in ["RssAnon:", "RssFile:"] {
                if let Some(kb) = resident(field) {
                    eprintln!("memory {} {kb}", field.trim_end_matches(':'));
                }
            }
        }
    }
}

/// A `/proc/self/status` memory field (`RssAnon:`, …) as the kernel writes it (`123 kB`).
fn resident(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|kb| kb.trim().to_string())
}

/// The base side of a `diff`, analyzed beside the new one: its timings named `base.…`, and no
/// progress bar of its own (the bar follows the new side).
struct Prefixed<'a> {
    inner: &'a dyn Observer,
    prefix: &'static str,
}

impl Observer for Prefixed<'_> {
    fn timing(&self, name: &str, elapsed: Duration) {
        self.inner
            .timing(&format!("{}{name}", self.prefix), elapsed);
    }
}

fn main() -> ExitCode {
    // Hidden: `--generate man|man:SUBCOMMAND|bash|zsh|fish`, for `cargo xtask dist`.
    if let Some(status) = hud_format::cli_docs::handle_flag(Cli::command) {
        return status;
    }
    match Cli::parse().command {
        Command::Info { capture, read } => match pipeline::model_of(&capture, &read.options()) {
            Ok(model) => {
                emit(&Summary::of(&model).render());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Report(args) => report(args),
        Command::Tui(args) => tui(args),
        Command::Export(args) => export(args),
        Command::Diff(args) => diff(args),
    }
}

/// A Chrome trace past this size makes chrome://tracing struggle (it loads the whole JSON).
const CHROME_COMFORTABLE_BYTES: u64 = 256 << 20;

fn export(args: ExportArgs) -> ExitCode {
    use hud_analyze::analysis::profile::Weight;
    use hud_analyze::view::export::{self, ExportOptions, Format, Root};
    let format = match (args.format, &args.output) {
        (Some(f), _) => match f {
            FormatArg::Perfetto => Format::Perfetto,
            FormatArg::Chrome => Format::Chrome,
            FormatArg::Folded => Format::Folded,
            FormatArg::Svg => Format::Svg,
            FormatArg::Pprof => Format::Pprof,
        },
        (None, Some(path)) if path.as_os_str() != "-" => match Format::from_path(path) {
            Some(f) => f,
            None => {
                eprintln!(
                    "hud-analyze: cannot tell the format from {}: pass --format ({})",
                    path.display(),
                    Format::NAMES
                );
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!(
                "hud-analyze: pass --format ({}) or an output file with one of these extensions",
                Format::NAMES
            );
            return ExitCode::from(2);
        }
    };
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from >= to {
            eprintln!("hud-analyze: --from must be before --to");
            return ExitCode::from(2);
        }
    }
    let output = args.output.clone().unwrap_or_else(|| {
        let stem = args
            .analysis
            .capture
            .file_stem()
            .map_or_else(|| "capture".into(), |s| s.to_string_lossy().into_owned());
        let ext = match format {
            Format::Perfetto => "pftrace",
            Format::Chrome => "json",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Pprof => "pb.gz",
        };
        PathBuf::from(format!("{stem}.{ext}"))
    });
    let observer = Terminal::new();
    let analysis =
        match pipeline::analyze_path(&args.analysis.capture, args.analysis.options(), &observer) {
            Ok(a) => a,
            Err(e) => return fail(e),
        };
    let options = ExportOptions {
        window: Window::relative(&analysis.model, args.from.map(nanos), args.to.map(nanos)),
        threads: (!args.threads.is_empty()).then(|| args.threads.clone()),
        weight: match args.weight {
            WeightArg::Cpu => Weight::Cpu,
            WeightArg::Blocked => Weight::Blocked,
            WeightArg::Polls => Weight::Polls,
        },
        root: match args.root {
            RootArg::None => Root::None,
            RootArg::Thread => Root::Thread,
            RootArg::Role => Root::Role,
            RootArg::Task => Root::Task,
        },
        flame_chart: args.flame_chart,
        all_frames: args.all_frames,
        capture: (args.analysis.capture.as_os_str() != "-").then(|| {
            args.analysis
                .capture
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        }),
    };
    let written = if output.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        export::export(&analysis, format, &options, &mut out)
            .and_then(|w| std::io::Write::flush(&mut out).map(|()| w))
    } else {
        write_atomically(&output, |out| {
            export::export(&analysis, format, &options, out)
        })
    };
    let written = match written {
        Ok(w) => w,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hud-analyze: cannot write {}: {e}", output.display());
            return ExitCode::from(6);
        }
    };
    if written.events == 0 {
        eprintln!(
            "hud-analyze: warning: nothing to export in this window (the file is valid and empty)"
        );
    }
    if output.as_os_str() != "-" {
        let size = std::fs::metadata(&output).map_or(0, |m| m.len());
        eprintln!(
            "hud-analyze: wrote {} ({:.1} MB, {} events)",
            output.display(),
            size as f64 / 1e6,
            written.events
        );
        if format == Format::Chrome && size > CHROME_COMFORTABLE_BYTES {
            eprintln!(
                "hud-analyze: warning: Chrome traces this large load slowly or not at all in \
                 chrome://tracing; narrow it with --from/--to or --threads (ui.perfetto.dev copes \
                 with more)"
            );
        }
    }
    std::mem::forget(analysis);
    ExitCode::SUCCESS
}

/// Writes through a temporary file beside `path`, renamed into place when complete: a failed
/// export leaves no partial file under the final name.
fn write_atomically<T>(
    path: &std::path::Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the output names no file"))?;
    let temporary = dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = std::fs::File::create(&temporary)?;
        let mut out = std::io::BufWriter::new(file);
        let value = write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn tui(args: TuiArgs) -> ExitCode {
    use hud_analyze::view::tui::{self, TuiError};
    let mut options = args.analysis.options();
    options.sources.roots = args.source_roots.clone();
    let path = &args.analysis.capture;
    // Opened here, so a missing or corrupt capture is reported on the normal screen.
    // A capture a recorder is still writing is followed even without --follow: replaying the
    // part written so far would show a recording that stops at an arbitrary point.
    let being_written = path.as_os_str() != "-"
        && hud_format::reader::open_nonblocking(path).is_ok_and(|f| {
            f.metadata().is_ok_and(|m| m.is_file())
                && hud_analyze::source::follow::writer_present(&f)
        });
    let opened = if (args.follow || being_written) && path.as_os_str() != "-" {
        hud_analyze::live::open_follow(path, &options.read)
    } else {
        hud_analyze::source::open(path, &options.read)
    };
    let opened = match opened {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    if let Some(size) = &args.bench_headless {
        let (w, h) = size
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
            .unwrap_or((200, 60));
        return match tui::bench_headless(opened, options, (w, h)) {
            Ok(out) => {
                emit(&out);
                ExitCode::SUCCESS
            }
            Err(TuiError::Analyze(e)) => fail(e),
            Err(e) => {
                eprintln!("hud-analyze: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let base = match &args.base {
        Some(base_path) => {
            let observer = Terminal::new();
            match pipeline::analyze_path(base_path, args.analysis.options(), &observer) {
                Ok(a) => Some(std::sync::Arc::new(
                    hud_analyze::analysis::diff::Baseline::new(a),
                )),
                Err(e) => return fail(e),
            }
        }
        None => None,
    };
    let name = path.display().to_string();
    match tui::run(opened, options, &name, args.window, base) {
        Ok(()) => ExitCode::SUCCESS,
        Err(TuiError::Analyze(e)) => fail(e),
        Err(e @ TuiError::NotATerminal) => {
            eprintln!("hud-analyze: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("hud-analyze: {e}");
            ExitCode::FAILURE
        }
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

/// The exit code of an error (documented in `--help` and docs/REPORT.md).
fn exit_code(e: &AnalyzeError) -> u8 {
    match e {
        AnalyzeError::Capture(hud_format::Error::Io { .. }) => 3,
        AnalyzeError::Capture(_) => 4,
        AnalyzeError::WrongBinary(_) => 5,
    }
}

fn fail(e: AnalyzeError) -> ExitCode {
    eprintln!("hud-analyze: {e}");
    ExitCode::from(exit_code(&e))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn diff(args: DiffArgs) -> ExitCode {
    use hud_analyze::analysis::diff::{self, Change, DiffOptions, Side};
    use hud_analyze::view::diff::{render, DiffOut};
    for (from, to, which) in [
        (
            args.base_from,
            args.base_to,
            "--base-from must be before --base-to",
        ),
        (args.from, args.to, "--from must be before --to"),
    ] {
        if from.zip(to).is_some_and(|(from, to)| from >= to) {
            eprintln!("hud-analyze: {which}");
            return ExitCode::from(2);
        }
    }
    // Both sides at once: most of an analysis (reading, detection) runs on one thread, so two
    // side by side take about the time of one on two cores.
    let observer = Terminal::new();
    let base_observer = Prefixed {
        inner: &observer,
        prefix: "base.",
    };
    let analyze = |path: &PathBuf, from: Option<Duration>, to: Option<Duration>, observer| {
        let a = pipeline::analyze_path(path, args.how.options(), observer)?;
        let findings = a.findings(
            Window::relative(&a.model, from.map(nanos), to.map(nanos)),
            diff::RANKING,
        );
        Ok::<_, hud_analyze::AnalyzeError>((a, findings))
    };
    let (base, new) = std::thread::scope(|s| {
        let base = s.spawn(|| analyze(&args.base, args.base_from, args.base_to, &base_observer));
        let new = analyze(&args.new, args.from, args.to, &observer);
        (base.join(), new)
    });
    let ((base, base_findings), (new, new_findings)) = match (base, new) {
        (Ok(Ok(b)), Ok(n)) => (b, n),
        (Ok(Err(e)), _) | (_, Err(e)) => return fail(e),
        (Err(panic), _) => std::panic::resume_unwind(panic),
    };
    let program = |a: &hud_analyze::analysis::Analysis| {
        std::path::Path::new(&a.model.header.target.exe_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut notes = Vec::new();
    if program(&base) != program(&new) {
        if !args.force {
            eprintln!(
                "hud-analyze: the captures are of two programs ({} and {}): compare them anyway \
                 with --force (blockers are then matched by function names only)",
                program(&base),
                program(&new)
            );
            return ExitCode::from(2);
        }
        notes.push(format!(
            "two programs ({} and {}), compared by function names (--force)",
            program(&base),
            program(&new)
        ));
    }
    let options = DiffOptions::default();
    let mut d = diff::diff(
        Side::of(&base, &base_findings),
        Side::of(&new, &new_findings),
        &options,
    );
    d.notes.extend(notes);
    let out = DiffOut::build(
        &d,
        &options,
        &args.base.display().to_string(),
        &args.new.display().to_string(),
    );
    if args.json {
        emit(&(out.to_json() + "\n"));
    } else {
        emit(&render(&out));
    }
    if let Some(path) = &args.svg {
        if let Err(e) =
            differential_svgs(path, &args, (&base, &base_findings), (&new, &new_findings))
        {
            eprintln!("hud-analyze: {e}");
            return ExitCode::from(2);
        }
    }
    let min_total = nanos(args.min_total);
    if args.fail_on_new_blocker {
        let new: Vec<_> = d
            .changed(Change::New)
            .filter(|b| b.new.as_ref().is_some_and(|s| s.total_ns >= min_total))
            .collect();
        for b in &new {
            eprintln!(
                "hud-analyze: new blocker: {} {} ({} episodes)",
                b.kind.name(),
                b.function,
                b.new.as_ref().map_or(0, |s| s.count)
            );
        }
        if !new.is_empty() {
            return ExitCode::from(12);
        }
    }
    if let Some(percent) = args.fail_on_growth {
        let grown: Vec<_> = d
            .changed(Change::Grown)
            .filter(|b| {
                let (Some(base), Some(new)) = (&b.base, &b.new) else {
                    return false;
                };
                new.ms_per_second >= base.ms_per_second * (1.0 + percent / 100.0)
            })
            .collect();
        for b in &grown {
            eprintln!(
                "hud-analyze: blocker grew past {percent} %: {} {}",
                b.kind.name(),
                b.function
            );
        }
        if !grown.is_empty() {
            return ExitCode::from(13);
        }
    }
    ExitCode::SUCCESS
}

/// `diff --svg PATH`: the differential flame graphs on the new capture's stacks (PATH) and on
/// the base's (PATH with `-base`), each side in its compared window.
fn differential_svgs(
    path: &std::path::Path,
    args: &DiffArgs,
    (base, base_findings): (
        &hud_analyze::analysis::Analysis,
        &hud_analyze::analysis::Findings,
    ),
    (new, new_findings): (
        &hud_analyze::analysis::Analysis,
        &hud_analyze::analysis::Findings,
    ),
) -> Result<(), String> {
    use hud_analyze::analysis::profile::Weight;
    use hud_analyze::view::export::svg::{write_differential, DiffShape};
    use hud_analyze::view::export::ExportOptions;
    let weight = match args.weight {
        WeightArg::Cpu => Weight::Cpu,
        WeightArg::Blocked => Weight::Blocked,
        WeightArg::Polls => return Err("--svg weighs cpu or blocked, not polls".into()),
    };
    let options = |w: Window| ExportOptions {
        window: w,
        weight,
        ..ExportOptions::default()
    };
    let (base_options, new_options) = (options(base_findings.window), options(new_findings.window));
    let stem = path
        .file_stem()
        .map_or_else(|| "diff".into(), |s| s.to_string_lossy());
    let ext = path
        .extension()
        .map_or_else(|| "svg".into(), |s| s.to_string_lossy());
    let base_path = path.with_file_name(format!("{stem}-base.{ext}"));
    for (target, shape) in [
        (path.to_path_buf(), DiffShape::New),
        (base_path, DiffShape::Base),
    ] {
        let file = std::fs::File::create(&target)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        let mut out = std::io::BufWriter::new(file);
        write_differential((base, &base_options), (new, &new_options), shape, &mut out)
            .and_then(|_| std::io::Write::flush(&mut out))
            .map_err(|e| format!("writing {}: {e}", target.display()))?;
        eprintln!("hud-analyze: wrote {}", target.display());
    }
    Ok(())
}

fn report(args: ReportArgs) -> ExitCode {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from >= to {
            eprintln!("hud-analyze: --from must be before --to");
            return ExitCode::from(2);
        }
    }
    let options = args.analysis.options();
    let observer = Terminal::new();
    let analysis = match pipeline::analyze_path(&args.analysis.capture, options, &observer) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let started = std::time::Instant::now();
    let window = Window::relative(&analysis.model, args.from.map(nanos), args.to.map(nanos));
    let ranking = Ranking {
        top: args.top,
        all_frames: args.all_frames,
    };
    let findings = analysis.findings(window, ranking);
    let report = Report::build(&analysis, &findings, args.top);
    observer.timing("report", started.elapsed());
    if args.json {
        emit(&(report.to_json() + "\n"));
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        emit(&text::render(&report, args.top, color));
    }
    // Freeing millions of frames takes longer than the OS reclaiming the process: skip it.
    std::mem::forget(findings);
    std::mem::forget(analysis);
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
        if report.summary.status == hud_analyze::analysis::Status::Unknown {
            eprintln!(
                "hud-analyze: the blocking could not be judged: {}",
                report.summary.verdict
            );
            return ExitCode::from(11);
        }
    }
    ExitCode::SUCCESS
}
