//! Command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hud_format::units::parse_duration;

/// Record what a running Tokio process does, on and off CPU, into a capture for hud-analyze.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "hud-record",
    version,
    after_help = "EXAMPLES:
    hud-record my-service -o service.hudcap --duration 30
    hud-record --pid 4242 -o - | ssh laptop 'cat > prod.hudcap'
    hud-record --pid 4242 -F 199 --offcpu-threshold 500us --embed-binaries
    sudo hud-record my-service --live

Needs root, or CAP_BPF + CAP_PERFMON. Stop with Ctrl-C; the capture is closed cleanly.
Analyze with: hud-analyze report CAPTURE"
)]
pub struct Args {
    /// Process to record, by name (its comm, or its executable's file name).
    #[arg(
        value_name = "NAME",
        required_unless_present = "pid",
        conflicts_with = "pid"
    )]
    pub name: Option<String>,

    /// Process to record, by id.
    #[arg(long, short = 'p', value_name = "PID")]
    pub pid: Option<u32>,

    /// Capture file, or `-` for standard output. Default: hud-PID.hudcap.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Stop after this many seconds (default: until Ctrl-C or the target exits).
    #[arg(long, short = 'd', value_name = "SECS")]
    pub duration: Option<f64>,

    /// cpu-clock samples per second per CPU (0 turns sampling off).
    #[arg(
        long = "frequency",
        short = 'F',
        value_name = "HZ",
        default_value_t = 99
    )]
    pub frequency: u32,

    /// Shortest off-CPU episode recorded with its stack, e.g. 1ms, 500us.
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = parse_duration)]
    pub offcpu_threshold: Duration,

    /// Also record kernel stacks with samples and off-CPU episodes.
    #[arg(long)]
    pub kernel_stacks: bool,

    /// Attach the scheduler programs to the classic tracepoints even where the kernel's BTF
    /// allows raw ones (which cost less per context switch): for comparison and diagnosis.
    #[arg(long, hide = true)]
    pub classic_tracepoints: bool,

    /// Embed the target's executable and other mapped objects with debug info in the capture,
    /// so it can be analyzed anywhere, later.
    #[arg(long)]
    pub embed_binaries: bool,

    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,

    /// Ring buffer size in MiB (power of two). Raise it if the capture reports lost records.
    #[arg(long, value_name = "MIB", default_value_t = 4)]
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

    /// Longest time events wait in memory before they are written: what a follower of the
    /// capture (the live cockpit) lags behind at most.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_duration)]
    pub flush_interval: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
