//! Command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hud_format::units::{parse_duration, parse_size};

/// Record what a running Tokio process does, on and off CPU, into a capture for hud-analyze.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "hud-record",
    version,
    after_help = "EXAMPLES:
    hud-record my-service -o service.hudcap --duration 30
    hud-record --pid 4242 -o - | ssh laptop 'cat > prod.hudcap'
    hud-record --pid 4242 -F 199 --offcpu-threshold 500us --embed-binaries
    hud-record my-service --unwind dwarf -o service.hudcap    (built without frame pointers)
    sudo hud-record my-service --live
    hud-record my-service --flight-recorder /var/lib/hud --keep 5m --trigger-blocked 200ms
    hud-record --dump /var/lib/hud

Needs root, or CAP_BPF + CAP_PERFMON + CAP_DAC_READ_SEARCH (to read tracefs), and CAP_SYS_PTRACE
to record another user's process. Stop with Ctrl-C (or SIGTERM, SIGHUP); the capture is closed
cleanly.
Analyze with: hud-analyze report CAPTURE"
)]
pub struct Args {
    /// Process to record, by name (its comm, or its executable's file name).
    #[arg(
        value_name = "NAME",
        required_unless_present_any = ["pid", "dump"],
        conflicts_with = "pid"
    )]
    pub name: Option<String>,

    /// Process to record, by id.
    #[arg(long, short = 'p', value_name = "PID", value_parser = parse_pid, allow_negative_numbers = true)]
    pub pid: Option<u32>,

    /// Capture file, or `-` for standard output. Default: hud-PID.hudcap.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Stop after this long: seconds (30, 1.5) or with a unit (500ms, 2m, 1h). Default: until
    /// Ctrl-C or the target exits.
    #[arg(long, short = 'd', value_name = "DURATION", value_parser = parse_run_time, allow_negative_numbers = true)]
    pub duration: Option<Duration>,

    /// cpu-clock samples per second per CPU (0 turns sampling off).
    #[arg(
        long = "frequency",
        short = 'F',
        value_name = "HZ",
        default_value_t = 99
    )]
    pub frequency: u32,

    /// Shortest off-CPU episode recorded with its stack, e.g. 1ms, 500us (at most 1h).
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = parse_threshold)]
    pub offcpu_threshold: Duration,

    /// How user stacks are taken. `leaf` (default): unwound whole in the kernel with a table
    /// built at attach from the .eh_frame of the target's objects, with or without frame
    /// pointers. Where the table stops (code loaded later), walked by frame pointers, plus 256
    /// bytes of stack with each kept off-CPU episode and each sample taken in a system call, to
    /// unwind offline the caller a leaf without a frame pointer (a libc wrapper) hides, and the
    /// thread's whole stack (up to 64KiB - 8) where the walk stops at once; a target whose code
    /// sets up no frame pointers gets whole stacks there, unwound offline.
    /// `dwarf[=SIZE]`: the whole stack (or SIZE bytes of it) with every sample and kept episode.
    /// `fp`: frame pointers only.
    #[arg(long, value_name = "MODE", default_value = "leaf", value_parser = parse_unwind)]
    pub unwind: Unwind,

    /// Most stack bytes the kernel copies per second, all CPUs together (--unwind): a copy over
    /// it is left out and counted, and its event keeps its frame-pointer stack. (The capture
    /// grows far less: equal copies, like a worker parking again and again, are written once.)
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_budget)]
    pub stack_budget: u64,

    /// Also record kernel stacks with samples and off-CPU episodes.
    #[arg(long)]
    pub kernel_stacks: bool,

    /// Do not read the Tokio task id and scheduler tick with samples and blocking episodes (read
    /// by default where the target's debug info says where they are; see docs/RECORD.md).
    #[arg(long)]
    pub no_task_ids: bool,

    /// Exact poll durations: a uprobe at the entry and the return of each task poll function
    /// (`tokio::runtime::task::raw::poll::<T, S>`, one per spawned future type) whose future
    /// matches FILTER: `own` (default: the futures of the program's own crates), `all` (every
    /// future but spawn_blocking closures), or comma-separated parts of future type names.
    /// Counted per future type in the kernel; polls past --threshold are kept one by one. Needs
    /// the target's symbols and debug info. Stopped, and said, when it would cost the target more
    /// than --poll-budget (see docs/RECORD.md).
    #[arg(long, value_name = "FILTER", num_args = 0..=1, require_equals = true, default_missing_value = "own")]
    pub poll_probes: Option<String>,

    /// With --poll-probes: the most the probes may cost, as a percentage of the CPU time the
    /// target itself uses (about 1.1 µs per probed poll, measured in docs/RECORD.md); `none`
    /// never stops them.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0, value_parser = parse_percent, requires = "poll_probes")]
    pub poll_budget: f64,

    /// Attach the scheduler programs to the classic tracepoints even where the kernel's BTF
    /// allows raw ones (which cost less per context switch): for comparison and diagnosis.
    #[arg(long, hide = true)]
    pub classic_tracepoints: bool,

    /// Which mapped objects go into the capture. `auto` (default): those the analyzer could not
    /// find at the same path with the same build-id on this machine (a container's files, seen
    /// through /proc/PID/root), up to --embed-limit. `all` (or the flag alone): the executable
    /// and every object with debug info, so the capture analyzes anywhere, later. `none`.
    #[arg(long, value_name = "WHEN", num_args = 0..=1, require_equals = true, default_value = "auto", default_missing_value = "all", value_parser = parse_embed)]
    pub embed_binaries: Embed,

    /// With --embed-binaries=auto: the most object bytes embedded; an object past it is left
    /// out and said.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub embed_limit: u64,

    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,

    /// Ring buffer size in MiB: a power of two from 1 to 1024. Raise it if the capture reports
    /// lost records (it costs that much locked memory).
    #[arg(long, value_name = "MIB", default_value_t = 4, value_parser = parse_buffer_mib)]
    pub buffer_mib: u32,

    /// Don't print the live status line.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Watch it live: record to the capture file as usual and open the cockpit
    /// (`hud-analyze tui --follow`) on it in this terminal. Under sudo the cockpit runs as the
    /// invoking user. Quitting it stops the recording, unless --keep-recording.
    #[arg(long, conflicts_with = "quiet")]
    pub live: bool,

    /// With --live: keep recording after the cockpit is closed (until --duration, Ctrl-C or the
    /// target's exit). By default closing the cockpit ends the session: a recorder running on
    /// as root after its screen is gone would surprise.
    #[arg(long, requires = "live")]
    pub keep_recording: bool,

    /// Flight recorder: record without end into a ring of segment files in DIR that keeps the
    /// last --keep (within --max-disk), and write a dump (DIR/hud-TIME-REASON.hudcap, an
    /// ordinary capture of the window around a moment) on SIGUSR1 (`hud-record --dump DIR`) or
    /// when a runtime thread is blocked at least --trigger-blocked. SIGHUP starts a new segment
    /// instead of stopping. `hud-analyze report DIR` reads the ring as one capture. See
    /// docs/FLIGHT.md.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["output", "live"])]
    pub flight_recorder: Option<PathBuf>,

    /// With --flight-recorder: how much of the recent past the ring keeps.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration, requires = "flight_recorder")]
    pub keep: Duration,

    /// With --flight-recorder: the most disk the ring uses; the oldest segments go first.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_disk, requires = "flight_recorder")]
    pub max_disk: u64,

    /// With --flight-recorder: how much before the moment a dump holds (at most --keep).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, requires = "flight_recorder")]
    pub before: Duration,

    /// With --flight-recorder: how long after the moment (or after the end of the blocking
    /// that triggered it) a dump waits before it is written.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, requires = "flight_recorder")]
    pub after: Duration,

    /// With --flight-recorder: the most dumps kept in DIR; the oldest go first.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        requires = "flight_recorder"
    )]
    pub max_dumps: usize,

    /// With --flight-recorder: dump when a Tokio worker is blocked at least this long inside a
    /// task (off CPU in a task's poll, or on CPU in one poll), e.g. 100ms. Needs Tokio task ids
    /// (the target's debug info).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "flight_recorder")]
    pub trigger_blocked: Option<Duration>,

    /// With --trigger-blocked: the shortest time between two automatic dumps.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration, requires = "flight_recorder")]
    pub trigger_cooldown: Duration,

    /// Ask the flight recorder writing DIR for a dump now (it gets SIGUSR1), wait for it, and
    /// print its path.
    #[arg(long, value_name = "DIR", exclusive = true)]
    pub dump: Option<PathBuf>,

    /// Longest time events wait in memory before they are written: what a follower of the
    /// capture (the live cockpit) lags behind at most.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_duration)]
    pub flush_interval: Duration,
}

/// A disk budget: at least 4 MiB (a ring needs room for a few segments).
fn parse_disk(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < 4 << 20 {
        return Err(format!(
            "`{text}` is under 4MiB: the ring needs room for a few segments"
        ));
    }
    Ok(bytes)
}

/// Which objects are embedded (`--embed-binaries`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embed {
    /// Those not visible at the same path with the same build-id in the recorder's root.
    Auto,
    /// The executable and every object with debug info.
    All,
    None,
}

fn parse_embed(text: &str) -> Result<Embed, String> {
    match text.trim() {
        "auto" => Ok(Embed::Auto),
        "all" => Ok(Embed::All),
        "none" => Ok(Embed::None),
        _ => Err(format!("`{text}`: use auto, all or none")),
    }
}

/// A percentage above 0 and at most 100, or `none` (no budget: infinite).
fn parse_percent(text: &str) -> Result<f64, String> {
    if text.trim() == "none" {
        return Ok(f64::INFINITY);
    }
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!(
            "`{text}` is not a percentage above 0 and at most 100 (or `none`)"
        )),
    }
}

/// A process id: a positive number (clap's advice for `-5`, "use -- -5", would mislead).
fn parse_pid(text: &str) -> Result<u32, String> {
    match text.trim().parse::<i64>() {
        Ok(pid) if pid > 0 && pid <= i64::from(i32::MAX) => Ok(pid as u32),
        Ok(_) => Err(format!("{text} is not a process id (a positive number)")),
        Err(_) => Err(format!("`{text}` is not a process id (a positive number)")),
    }
}

/// The longest recording a duration may ask for: a year (a typo like 1e30 is refused, not
/// wrapped or panicked on).
const LONGEST_RUN: Duration = Duration::from_secs(366 * 24 * 3600);

/// A recording's length: bare seconds ("30", "1.5") or a duration with a unit ("500ms", "2m").
fn parse_run_time(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let value = match trimmed.parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds).map_err(|_| {
            format!("`{text}` is not a usable duration (a positive number of seconds)")
        })?,
        Err(_) => parse_duration(trimmed)?,
    };
    if value.is_zero() {
        return Err("a recording must last longer than 0 s".into());
    }
    if value > LONGEST_RUN {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(value)
}

/// An off-CPU threshold: past an hour it would record nothing (and past 584 years it would wrap).
fn parse_threshold(text: &str) -> Result<Duration, String> {
    let value = parse_duration(text)?;
    if value > Duration::from_secs(3600) {
        return Err(format!(
            "`{text}` is over an hour: no episode would be recorded"
        ));
    }
    Ok(value)
}

/// How user stacks are taken (`--unwind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unwind {
    /// Frame pointers only: no stack bytes.
    FramePointers,
    /// The kernel's `.eh_frame` table; frame pointers and stack bytes where it stops.
    Leaf,
    /// This many stack bytes, for unwinding offline.
    Dwarf(u32),
}

impl Unwind {
    /// The most one copy holds: the kernel copies no further than the top of the thread's
    /// stack, so `dwarf` copies whole stacks (perf's fixed 8 KiB stops short of the task's poll
    /// in real async services).
    pub const DEFAULT_DWARF_BYTES: u32 = hud_format::wire::MAX_STACK_COPY as u32 - 8;

    /// Stack bytes copied with each kept event.
    pub fn copy_bytes(self) -> u32 {
        match self {
            Unwind::FramePointers => 0,
            Unwind::Leaf => hud_format::wire::LEAF_WINDOW,
            Unwind::Dwarf(bytes) => bytes,
        }
    }
}

fn parse_unwind(text: &str) -> Result<Unwind, String> {
    let text = text.trim();
    let (mode, size) = match text.split_once('=') {
        Some((mode, size)) => (mode, Some(size)),
        None => (text, None),
    };
    match (mode, size) {
        ("fp", None) => Ok(Unwind::FramePointers),
        ("leaf", None) => Ok(Unwind::Leaf),
        ("dwarf", None) => Ok(Unwind::Dwarf(Unwind::DEFAULT_DWARF_BYTES)),
        ("dwarf", Some(size)) => {
            let bytes = parse_size(size)?;
            let most = hud_format::wire::MAX_STACK_COPY as u64 - 8;
            if !(64..=most).contains(&bytes) {
                return Err(format!(
                    "{bytes} bytes of stack: give from 64 bytes to {most} (64KiB - 8)"
                ));
            }
            // Whole words: the unwinder reads 8 bytes at a time.
            Ok(Unwind::Dwarf((bytes / 8 * 8) as u32))
        }
        _ => Err(format!(
            "`{text}` is not an unwinding mode: use leaf, dwarf, dwarf=SIZE (e.g. dwarf=16K) or fp"
        )),
    }
}

fn parse_budget(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text.trim_end_matches("/s"))?;
    if bytes < 64 << 10 {
        return Err(format!(
            "`{text}`: a stack budget under 64KiB a second would leave out most copies"
        ));
    }
    Ok(bytes)
}

fn parse_buffer_mib(text: &str) -> Result<u32, String> {
    let mib: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of MiB"))?;
    if !(1..=1024).contains(&mib) || !mib.is_power_of_two() {
        return Err(format!(
            "{mib} MiB: the ring buffer is a power of two from 1 to 1024 MiB"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_refused_with_a_reason() {
        for bad in [
            "1e30",
            "inf",
            "18446744073709551616",
            "-1",
            "nan",
            "0",
            "5 parsecs",
        ] {
            assert!(parse_run_time(bad).is_err(), "--duration {bad}");
        }
        assert_eq!(parse_run_time("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_run_time("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_run_time("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_threshold("18446744074s").is_err());
        assert_eq!(
            parse_threshold("500us").unwrap(),
            Duration::from_micros(500)
        );
        let err = parse_pid("-5").unwrap_err();
        assert!(err.contains("not a process id"), "{err}");
        assert!(parse_pid("0").is_err());
        assert_eq!(parse_pid("42").unwrap(), 42);
        assert!(parse_buffer_mib("4096").is_err());
        assert!(parse_buffer_mib("3").is_err());
        assert_eq!(parse_buffer_mib("64").unwrap(), 64);
        assert_eq!(parse_unwind("dwarf").unwrap(), Unwind::Dwarf(65528));
        assert_eq!(parse_unwind("dwarf=16K").unwrap(), Unwind::Dwarf(16384));
        assert_eq!(parse_unwind("fp").unwrap().copy_bytes(), 0);
        assert!(parse_unwind("dwarf=1M").is_err());
        assert!(parse_unwind("dwarf=").is_err());
        assert!(parse_unwind("lbr").is_err());
        assert_eq!(parse_budget("8MiB/s").unwrap(), 8 << 20);
        assert!(parse_budget("1K").is_err());
    }

    #[test]
    fn negative_values_reach_the_parsers() {
        use clap::Parser;
        let err = Args::try_parse_from(["hud-record", "--pid", "-5"]).unwrap_err();
        assert!(err.to_string().contains("not a process id"), "{err}");
        let err =
            Args::try_parse_from(["hud-record", "--pid", "1", "--duration", "-1"]).unwrap_err();
        assert!(err.to_string().contains("duration"), "{err}");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
