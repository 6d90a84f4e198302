//! hud-record: attach to a running process and write a capture. See `hud-record --help`.

mod btf;
mod cli;
mod error;
mod flight;
mod output;
mod pidns;
mod polls;
mod privileges;
mod probes;
mod procfs;
mod scrub;
mod session;
mod target;
mod tasks;
mod tracefs;
mod unwind_table;
mod viewer;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::output::Destination;
use crate::session::StopReason;

/// The recorder's niceness: it must not starve behind the target. Under a context-switch storm
/// (16 busy threads on 2 CPUs) it got a seventeenth of the CPUs: loading and attaching took
/// seconds, and `--duration 3` took 6 s. It runs about 5 % of a core.
const NICENESS: i32 = -10;

fn main() -> ExitCode {
    // Before any thread starts (each thread has its own niceness, inherited by those it starts).
    // Best effort: without CAP_SYS_NICE it keeps the niceness it has.
    // SAFETY: setpriority on this thread, no memory involved.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS) };
    // Hidden: `--generate man|bash|zsh|fish`, for `cargo xtask dist`.
    if let Some(status) = hud_format::cli_docs::handle_flag(cli::Args::command) {
        return status;
    }
    let args = cli::Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hud-record: {e}");
            e.exit_code()
        }
    }
}

/// The kernel refuses sampling past kernel.perf_event_max_sample_rate with a bare EINVAL: say so
/// before attaching anything.
fn check_sample_rate(hz: u32) -> error::Result<()> {
    let limit = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match limit {
        Some(max) if hz > max => Err(error::RecordError::Usage(format!(
            "-F {hz} is over kernel.perf_event_max_sample_rate ({max}): pass a lower -F, or \
             raise the limit (sysctl kernel.perf_event_max_sample_rate={hz})"
        ))),
        _ => Ok(()),
    }
}

fn run(args: &cli::Args) -> error::Result<()> {
    if let Some(dir) = &args.dump {
        let dump = flight::request_dump(dir, std::time::Duration::from_secs(60))?;
        println!("{}", dump.display());
        return Ok(());
    }
    let target = target::resolve(args.pid, args.name.as_deref())?;
    let dest = match args.output.as_deref() {
        _ if args.flight_recorder.is_some() => {
            Destination::Ring(args.flight_recorder.clone().expect("checked"))
        }
        Some(p) if p.as_os_str() == "-" => Destination::Stdout,
        Some(p) => Destination::File(p.to_path_buf()),
        None => Destination::File(format!("hud-{}.hudcap", target.pid).into()),
    };
    // Refused before anything is attached (checked again when the capture takes its name).
    output::check(&dest, args.force)?;
    check_sample_rate(args.frequency)?;
    // Found before anything is attached, so a missing analyzer is reported at once.
    let viewer = if args.live {
        Some(viewer::locate()?)
    } else {
        None
    };
    if args.live {
        if matches!(dest, Destination::Stdout) {
            return Err(error::RecordError::Other(
                "--live shows the cockpit on this terminal: write the capture to a file (-o FILE), \
                 or pipe -o - into `hud-analyze tui -`"
                    .into(),
            ));
        }
        if !std::io::stdout().is_terminal() {
            return Err(error::RecordError::Other(
                "--live needs a terminal for the cockpit (standard output is not one)".into(),
            ));
        }
    }
    // Attaching takes a moment, seconds on a loaded machine: say what is going on.
    eprintln!(
        "hud-record: attaching to pid {} ({})…",
        target.pid, target.comm
    );
    if target::looks_like_tokio(target.pid) == Some(false) {
        eprintln!(
            "hud-record: warning: pid {} ({}) does not look like a Tokio program (no Tokio in its \
             executable or its own libraries): it is recorded, but hud finds blocking only on \
             Tokio runtime threads",
            target.pid, target.comm
        );
    }
    let summary = session::record(args, &target, &dest, viewer.as_deref())?;
    let why = match summary.reason {
        StopReason::Signal => "stopped",
        StopReason::Duration => "done",
        StopReason::TargetExited => "the target exited; capture closed",
        StopReason::ViewerClosed => "the cockpit was closed; capture closed",
        StopReason::ReaderGone => "the reader of standard output closed the pipe; stopped",
    };
    let size = if summary.bytes > 0 {
        format!(", {:.2} MiB", summary.bytes as f64 / (1 << 20) as f64)
    } else {
        String::new()
    };
    eprintln!(
        "hud-record: {why} after {:.1}s: {} switches, {} samples, {} off-CPU episodes, {} lost{size}",
        summary.elapsed.as_secs_f64(),
        summary.switches,
        summary.samples,
        summary.off_cpu,
        summary.lost,
    );
    if let Some(failure) = &summary.viewer_failure {
        eprintln!("hud-record: {failure}");
    }
    if summary.lost > 0 {
        let recorded = summary.switches + summary.samples + summary.off_cpu;
        let share = summary.lost as f64 / (summary.lost + recorded).max(1) as f64;
        let advice = if args.buffer_mib < 1024 {
            format!(
                "record with --buffer-mib {} (now {})",
                (args.buffer_mib * 4).min(1024),
                args.buffer_mib
            )
        } else {
            "the ring buffer is at its largest: sample less (-F) or raise --offcpu-threshold"
                .to_owned()
        };
        eprintln!(
            "hud-record: warning: {:.1} % of records were lost (the ring buffer filled): counts \
             and times are low by about that much; {advice}",
            share * 100.0,
        );
    }
    Ok(())
}
