//! One recording: header, embedded objects, probes, the drain loop, and a clean close.
//! `record` reads as its steps; each job has its file: `start` (header, embedded objects, the
//! target's pidfd), `drain` (ring buffer → capture), `status` (the terminal line), `shutdown`
//! (detaching without waiting for the kernel).

mod drain;
mod shutdown;
mod start;
mod status;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hud_format::types::{ThreadEvent, ThreadEventKind};
use hud_format::writer::{CaptureWriter, WriterOptions};

use crate::cli::Args;
use crate::error::{RecordError, Result};
use crate::output::{self, Destination};
use crate::probes::{ProbeConfig, Probes};
use crate::procfs::{self, MappingTracker};
use crate::target::ProcessInfo;
use crate::tracefs;
use drain::Drain;
use shutdown::{detach, file_size, wait_for};
use start::{build_header, embed_binaries, open_pidfd, wait_readable};
use status::Status;

/// How often the ring buffer is drained. Records wait at most this long in the kernel.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);
/// Why recording stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Duration,
    TargetExited,
    /// `--live`: the user closed the cockpit.
    ViewerClosed,
    /// Writing to standard output: its reader closed the pipe (the cockpit was closed).
    ReaderGone,
}

/// What a finished recording reports.
pub struct Summary {
    pub reason: StopReason,
    pub bytes: u64,
    pub switches: u64,
    pub samples: u64,
    pub off_cpu: u64,
    pub lost: u64,
    pub elapsed: Duration,
    /// `--live`: how the viewer ended, when it failed.
    pub viewer_failure: Option<String>,
}

pub(super) type Writer = CaptureWriter<Box<dyn Write + Send>>;

pub(super) fn write_error(e: hud_format::Error) -> RecordError {
    if let hud_format::Error::Io { source, .. } = &e {
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            return RecordError::ReaderGone;
        }
    }
    RecordError::Output(format!(
        "{e}; the capture keeps everything up to its last complete frame"
    ))
}

/// A write that failed before recording started: the capture was never given its name, so
/// nothing is left behind (see `output`).
pub(super) fn start_error(e: hud_format::Error) -> RecordError {
    match write_error(e) {
        RecordError::Output(message) => RecordError::Output(message.replace(
            "the capture keeps everything up to its last complete frame",
            "nothing was recorded yet, and no file is left",
        )),
        other => other,
    }
}

/// Records `target` into `dest`; with `viewer` (the hud-analyze binary, `--live`), the cockpit
/// follows the capture in this terminal.
pub fn record(
    args: &Args,
    target: &ProcessInfo,
    dest: &Destination,
    viewer: Option<&Path>,
) -> Result<Summary> {
    crate::privileges::check()?;
    let mut attach = AttachTimes::default();
    let tracefs = tracefs::locate()?;
    let offsets = tracefs::offsets(&tracefs);
    tracefs::check_switch_layout(&offsets)?;
    let cpus = aya::util::online_cpus()
        .map_err(|(what, e)| RecordError::Other(format!("reading {what}: {e}")))?;
    let stop = stop_on_signals(args.flight_recorder.is_none())?;
    // Watch the target through a pidfd: it becomes readable when the process exits, and it can
    // not be confused with a new process reusing the pid.
    let pidfd = open_pidfd(target.pid)?;
    let task_ids = if args.no_task_ids {
        Err("recorded with --no-task-ids".to_owned())
    } else {
        crate::tasks::resolve(Path::new(&procfs::file_in_target(target.pid, &target.exe)))
    };
    attach.lap("setup and task ids");
    if let (Err(why), false) = (&task_ids, args.quiet || args.no_task_ids) {
        eprintln!("hud-record: note: recording without Tokio task ids: {why}");
    }
    if let (Err(why), Some(_)) = (&task_ids, args.trigger_blocked) {
        // Said even with --quiet: an unattended recorder's trigger that can never fire.
        eprintln!(
            "hud-record: warning: --trigger-blocked tells blocking by Tokio task ids, which are \
             not read ({why}): only SIGUSR1 (hud-record --dump) will write dumps"
        );
    }
    let exe_in_target = procfs::file_in_target(target.pid, &target.exe);
    let poll_fns = match &args.poll_probes {
        Some(filter) => Some(crate::polls::select(
            Path::new(&exe_in_target),
            &target.exe,
            filter,
        )?),
        None => None,
    };
    // The kernel's id of the target, which the programs compare (another one when the recorder
    // runs in a PID namespace of its own).
    let mut ids = crate::pidns::KernelIds::resolve(target.pid, &offsets)?;
    let (mut writer, maps, publication, flight) = open_capture(args, target, ids.pid, dest, &cpus)?;
    attach.lap("capture");
    writer.set_task_source(&crate::tasks::source(&task_ids));
    let table = match args.unwind {
        crate::cli::Unwind::Leaf => crate::unwind_table::build(target.pid),
        _ => crate::unwind_table::Table::default(),
    };
    attach.lap("unwinding table");
    if table.rows.is_empty() && !table.skipped.is_empty() && !args.quiet {
        let why: Vec<String> = table
            .skipped
            .iter()
            .take(3)
            .map(|(path, why)| format!("{path}: {why}"))
            .collect();
        eprintln!(
            "hud-record: note: no unwinding table for the kernel ({}): stacks are walked with \
             frame pointers and copied",
            why.join("; ")
        );
    }
    let mut config = probe_config(args, target, ids.pid, offsets, task_ids.ok(), &table);
    config.unwind_rows = table.rows;
    let (poll_fns, poll_task_ids) = match poll_fns {
        Some((fns, ids)) => (Some(fns), ids),
        None => (None, None),
    };
    config.poll_task_ids = poll_task_ids;
    config.poll_probes = poll_fns.as_ref().map(|fns| {
        let offsets = fns.iter().map(|f| f.file_offset).collect();
        (std::path::PathBuf::from(&exe_in_target), offsets)
    });
    let mut probes = Probes::load(&config)?;
    attach.lap("programs");
    let mut drain = begin(
        args,
        target,
        &mut ids,
        dest,
        &mut probes,
        (writer, flight),
        maps,
        publication,
    )?;
    attach.lap("threads");
    if !args.quiet {
        attach.say_if_slow();
    }
    if let Some(fns) = &poll_fns {
        if !args.quiet {
            eprintln!(
                "hud-record: --poll-probes: timing the polls of {} task future type{}",
                fns.len(),
                if fns.len() == 1 { "" } else { "s" }
            );
        }
        drain.polls = Some(crate::polls::PollAccount::new(
            fns,
            &target.exe,
            config.poll_event_ns,
            args.poll_budget,
            target.pid,
        ));
    }
    let mut viewer = match (viewer, dest) {
        (Some(binary), Destination::File(path)) => {
            Some(crate::viewer::Viewer::spawn(binary, path)?)
        }
        _ => None,
    };
    // Attached, named, and the viewer started (as the invoking user): from here on the recorder
    // needs only to read the target's maps and files (docs/RECORD.md, least privilege).
    crate::privileges::keep_only(&crate::privileges::KEPT_AFTER_ATTACH)?;
    let started = Instant::now();
    let mut viewer_failure = None;
    let reason = match run(
        args,
        &mut drain,
        &mut probes,
        &Watch {
            pidfd,
            stop,
            // Bounded to a year by the parser: no overflow.
            deadline: args.duration.map(|d| started + d),
            started,
        },
        &mut viewer,
        &mut viewer_failure,
    ) {
        Ok(reason) => reason,
        Err(e) => {
            // Closing the file lets the cockpit show what it has; the error waits for it.
            drop(drain);
            wait_for(viewer);
            return Err(e);
        }
    };
    let (closed, lost, totals) = finish(reason, drain, &mut probes);
    let elapsed = started.elapsed();
    detach(probes);
    // The cockpit shows the finished capture until the user closes it.
    if let Some(failure) = wait_for(viewer) {
        viewer_failure = Some(failure);
    }
    closed?;
    Ok(Summary {
        reason,
        bytes: file_size(dest),
        switches: totals.switches,
        samples: totals.samples,
        off_cpu: totals.off_cpu,
        lost,
        elapsed,
        viewer_failure,
    })
}

/// How long each step of attaching took: said when attaching was slow (a clean-clone CI run
/// once took 29 s to start recording under a switch storm, and nothing told which step).
struct AttachTimes {
    started: Instant,
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl Default for AttachTimes {
    fn default() -> Self {
        let now = Instant::now();
        AttachTimes {
            started: now,
            last: now,
            laps: Vec::new(),
        }
    }
}

impl AttachTimes {
    /// Attaching this long is said, step by step.
    const SLOW: Duration = Duration::from_secs(1);

    fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.laps.push((step, now - self.last));
        self.last = now;
    }

    fn say_if_slow(&self) {
        let total = self.last - self.started;
        if total < Self::SLOW {
            return;
        }
        let steps: Vec<String> = self
            .laps
            .iter()
            .map(|(step, d)| format!("{step} {:.2} s", d.as_secs_f64()))
            .collect();
        eprintln!(
            "hud-record: attaching took {:.1} s ({})",
            total.as_secs_f64(),
            steps.join(", ")
        );
    }
}

/// The capture, opened under its temporary name: the header (from the target's first maps),
/// the mappings, the vDSO and the objects `--embed-binaries` asks for. For the flight recorder,
/// its ring, whose base holds all of that.
fn open_capture(
    args: &Args,
    target: &ProcessInfo,
    kernel_pid: u32,
    dest: &Destination,
    cpus: &[u32],
) -> Result<(
    Writer,
    MappingTracker,
    output::Publication,
    Option<crate::flight::FlightRecorder>,
)> {
    let start_ns = procfs::monotonic_ns();
    let mut maps = MappingTracker::default();
    let initial_maps = maps.rescan(target.pid, start_ns).map_err(|e| {
        let what = format!("cannot read /proc/{}/maps: {e}", target.pid);
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            // It exists: reading another user's maps needs root or CAP_SYS_PTRACE.
            RecordError::NotPermitted(what)
        } else {
            RecordError::NoSuchProcess(what)
        }
    })?;
    let header = build_header(args, target, kernel_pid, cpus, start_ns, &initial_maps);
    let mut flight = match dest {
        Destination::Ring(dir) => Some(crate::flight::FlightRecorder::create(
            flight_options(args, dir),
            &header,
        )?),
        _ => None,
    };
    let (out, publication): (Box<dyn Write + Send>, _) = match &flight {
        // A frame's header and payload in one write (the writer flushes after each frame, so
        // a segment always ends on a whole frame when the ring turns).
        Some(f) => (
            Box::new(std::io::BufWriter::with_capacity(1 << 16, f.ring.output())),
            output::Publication::nothing(),
        ),
        None => output::open(dest, args.force)?,
    };
    let options = WriterOptions {
        flush_interval: args.flush_interval,
        ..WriterOptions::default()
    };
    let mut writer = CaptureWriter::new(out, &header, options).map_err(start_error)?;
    for mapping in initial_maps {
        writer.push_mapping(mapping).map_err(start_error)?;
    }
    // The vDSO exists only in memory: always embed it (a few KiB) so its frames get names.
    if let Some(image) = maps.vdso.take() {
        let id = hud_format::elf::build_id_of(&image).unwrap_or_default();
        writer
            .embed_object(procfs::VDSO, &id, &image)
            .map_err(start_error)?;
    }
    embed_binaries(&mut writer, args, target, &maps)?;
    if let Some(f) = &mut flight {
        // The ring's base ends here: every dump starts with these frames.
        f.ring
            .files()
            .seal_base(procfs::monotonic_ns())
            .map_err(|e| RecordError::Output(format!("the flight recorder's ring: {e}")))?;
    }
    Ok((writer, maps, publication, flight))
}

/// `--flight-recorder`'s options (`--before` at most `--keep`).
fn flight_options(args: &Args, dir: &Path) -> crate::flight::FlightOptions {
    crate::flight::FlightOptions {
        dir: dir.to_path_buf(),
        keep: args.keep,
        max_disk: args.max_disk,
        before: args.before.min(args.keep),
        after: args.after,
        max_dumps: args.max_dumps.max(1),
        trigger_blocked: args.trigger_blocked,
        trigger_cooldown: args.trigger_cooldown,
    }
}

/// Stack bytes copied with each kept event, and whether samples of user code get copies too.
/// The default (`--unwind leaf`) copies small windows and repairs walks that stop at once; but
/// a walk through code without frame pointers can follow stale frame pointers for several
/// frames, so its length cannot tell it is wrong (actix-web's workers, sleeping 27 KiB deep:
/// 1,381 of 1,415 events per worker cut short). A target whose own code sets up no frame
/// pointers (read from its prologues) gets whole stacks with every kept event, as `--unwind
/// dwarf` would. With the kernel's unwinding table these copies are taken only for the stacks
/// the table could not finish.
fn copy_mode(args: &Args, target: &ProcessInfo, table: &crate::unwind_table::Table) -> (u32, bool) {
    use crate::cli::Unwind;
    match args.unwind {
        Unwind::Dwarf(bytes) => (bytes, true),
        Unwind::FramePointers => (0, false),
        Unwind::Leaf => {
            let exe = crate::procfs::file_in_target(target.pid, &target.exe);
            let share = crate::procfs::frame_pointer_share(std::path::Path::new(&exe));
            match share {
                Some(share) if share < hud_format::elf::frame_pointers::WITH_FRAME_POINTERS => {
                    if !args.quiet && !table.rows.is_empty() {
                        eprintln!(
                            "hud-record: {} sets up no frame pointers ({:.0} % of its functions \
                             do): unwinding in the kernel with the .eh_frame of {} objects \
                             ({} rules), copying stacks only where that stops",
                            target.exe,
                            share * 100.0,
                            table.objects,
                            table.rows.len()
                        );
                    } else if !args.quiet {
                        eprintln!(
                            "hud-record: {} sets up no frame pointers ({:.0} % of its functions \
                             do): copying whole stacks to unwind offline",
                            target.exe,
                            share * 100.0
                        );
                    }
                    (Unwind::DEFAULT_DWARF_BYTES, true)
                }
                _ => (Unwind::Leaf.copy_bytes(), false),
            }
        }
    }
}

/// What the programs are loaded with, from the options and the kernel.
fn probe_config(
    args: &Args,
    target: &ProcessInfo,
    kernel_pid: u32,
    offsets: Vec<(&'static str, u32)>,
    task_ids: Option<hud_format::elf::task_id::TaskIdLayout>,
    table: &crate::unwind_table::Table,
) -> ProbeConfig {
    let layout = crate::btf::task_layout();
    let (stack_copy_bytes, copy_user_samples) = copy_mode(args, target, table);
    ProbeConfig {
        tgid: kernel_pid,
        seen_pid: target.pid,
        offcpu_threshold_ns: nanos(args.offcpu_threshold),
        kernel_stacks: args.kernel_stacks,
        sample_hz: args.frequency,
        ring_bytes: ring_bytes(args.buffer_mib),
        stack_copy_bytes,
        copy_user_samples,
        stack_budget: args.stack_budget,
        offsets,
        fsbase_offset: layout.as_ref().ok().and_then(|l| l.fsbase_offset),
        main_stack_top: crate::procfs::read_main_stack_top(target.pid).unwrap_or(0),
        task_ids,
        poll_probes: None,
        unwind_rows: Vec::new(),
        poll_event_ns: nanos(args.offcpu_threshold),
        poll_task_ids: None,
        task_layout: match layout {
            Ok(_) if args.classic_tracepoints => None,
            Ok(layout) => Some(layout),
            Err(why) => {
                if !args.quiet {
                    eprintln!(
                        "hud-record: note: using the classic scheduler tracepoints, which cost \
                         more per context switch ({why})"
                    );
                }
                None
            }
        },
    }
}

/// Recording begins, the probes attached: the threads that existed before get their slots, the
/// capture takes its name, and its first chunk carries the threads and mappings (a viewer
/// starts with something).
#[allow(clippy::too_many_arguments)]
fn begin(
    args: &Args,
    target: &ProcessInfo,
    ids: &mut crate::pidns::KernelIds,
    dest: &Destination,
    probes: &mut Probes,
    (mut writer, mut flight): (Writer, Option<crate::flight::FlightRecorder>),
    maps: MappingTracker,
    mut publication: output::Publication,
) -> Result<Drain> {
    // Threads that existed before the fork tracepoint was attached; later ones arrive by themselves.
    // By the kernel's ids (the recorder's, in a PID namespace, are asked for once).
    let mut threads = Vec::new();
    let mut pairs = Vec::new();
    for (seen, name) in procfs::threads(target.pid) {
        if let Some(tid) = ids.thread(seen)? {
            threads.push((tid, name));
            pairs.push((tid, seen));
        }
    }
    ids.finish();
    probes.add_threads(threads.iter().map(|(tid, _)| *tid))?;
    let provenance = crate::pidns::provenance(target.pid, ids, &pairs);
    let first = match &flight {
        // The ring's first segment starts here, marked like the others.
        Some(_) => crate::flight::segment_mark(&provenance, 0, procfs::monotonic_ns()),
        None => provenance.clone(),
    };
    writer.write_provenance(&first).map_err(write_error)?;
    if let Some(f) = &mut flight {
        f.set_place(provenance);
    }
    // Recording: the capture takes its name (until now a failure left nothing behind).
    publication.publish()?;
    eprintln!(
        "hud-record: recording pid {} ({}) into {}{}",
        target.pid,
        target.comm,
        dest.describe(),
        if args.duration.is_none() {
            "; Ctrl-C to stop"
        } else {
            ""
        }
    );
    // The header was stamped before the probes were loaded and attached, which under load takes
    // seconds: the first chunk says when recording really began (docs/FORMAT.md, counters).
    writer.set_counter(
        hud_format::types::PROBES_ATTACHED_COUNTER,
        procfs::monotonic_ns(),
    );
    let now = procfs::monotonic_ns();
    for (tid, name) in threads {
        writer
            .push_thread(ThreadEvent {
                ts_ns: now,
                tid,
                kind: ThreadEventKind::New,
                name,
            })
            .map_err(write_error)?;
    }
    // (A target without frame pointers gets whole stacks in leaf mode: never left out.)
    let mut drain = Drain::new(writer, maps, target.pid, probes.leaf_windows);
    drain.flight = flight;
    drain.writer.flush_chunk().map_err(write_error)?;
    Ok(drain)
}

/// What ends the drain loop besides an error: the target's exit, a signal, the deadline.
struct Watch {
    pidfd: std::os::fd::OwnedFd,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    started: Instant,
}

/// The drain loop: every [`DRAIN_INTERVAL`], or sooner when the target exits, records move into
/// the capture, until something says stop. A viewer that exits ends it too, unless
/// `--keep-recording`; how it failed goes into `viewer_failure`.
fn run(
    args: &Args,
    drain: &mut Drain,
    probes: &mut Probes,
    watch: &Watch,
    viewer: &mut Option<crate::viewer::Viewer>,
    viewer_failure: &mut Option<String>,
) -> Result<StopReason> {
    let on_terminal = || !args.quiet && std::io::stderr().is_terminal();
    let mut status = Status::new(on_terminal());
    // The viewer owns the terminal while it runs.
    status.enabled &= viewer.is_none();
    let reason = loop {
        let exited = wait_readable(&watch.pidfd, DRAIN_INTERVAL);
        match drain.drain(probes).and_then(|()| drain.tick(probes)) {
            Ok(()) => {}
            Err(RecordError::ReaderGone) => break StopReason::ReaderGone,
            Err(e) => return Err(e),
        }
        status.show(watch.started, &drain.writer, drain.lost);
        if let Some(code) = viewer.as_mut().and_then(|v| v.exited()) {
            *viewer = None;
            if !code.success() {
                *viewer_failure = Some(format!("the cockpit ended with {code}"));
            }
            if !args.keep_recording {
                break StopReason::ViewerClosed;
            }
            // The terminal is ours again.
            status.enabled = on_terminal();
        }
        if exited {
            break StopReason::TargetExited;
        }
        if watch.stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if watch.deadline.is_some_and(|d| Instant::now() >= d) {
            break StopReason::Duration;
        }
    };
    status.clear();
    Ok(reason)
}

/// Closes the capture: events already in the ring buffer, and the switches the CPUs still hold,
/// belong to it. Returns whether it closed, and the records lost and written.
fn finish(
    reason: StopReason,
    mut drain: Drain,
    probes: &mut Probes,
) -> (Result<()>, u64, hud_format::types::Totals) {
    let drained = if reason == StopReason::ReaderGone {
        Ok(())
    } else {
        probes.stop().and_then(|batches| {
            drain.drain(probes)?;
            for batch in &batches {
                drain.push_batch(batch)?;
            }
            // The counters' last word, whenever they were read before.
            drain.read_counters(probes);
            drain.tick(probes)?;
            drain.write_polls(probes, true)
        })
    };
    let lost = drain.lost;
    let totals = drain.writer.totals();
    // The capture is closed before the probes are detached: under a context-switch storm a
    // detach waits seconds in the kernel (synchronize_rcu_tasks_trace), and a recorder killed
    // while it waits must not lose what it recorded. The programs are already stopped (the
    // control flag), so nothing is recorded meanwhile.
    let closed = drained.and_then(|()| {
        if reason == StopReason::ReaderGone {
            return Ok(());
        }
        if let Some(mut flight) = drain.flight.take() {
            // A dump whose window was still open is written with what there is.
            let result = flight.write_pending(&mut drain.writer).and_then(|()| {
                let mut out = drain.writer.finish_without_index().map_err(write_error)?;
                out.flush()
                    .map_err(|e| RecordError::Output(format!("finishing the ring: {e}")))
            });
            flight.close();
            return result;
        }
        // Dropping `out` closes the file and lets go of its lock: a follower then knows the
        // capture is complete.
        let mut out = drain.writer.finish().map_err(write_error)?;
        out.flush()
            .map_err(|e| RecordError::Output(format!("finishing the capture: {e}")))
    });
    (closed, lost, totals)
}

/// A flag the signals that mean "stop" set: SIGINT, SIGTERM, and SIGHUP too (an ssh session
/// dropping must close the capture, not kill the recorder) unless `hup_stops` is false (the
/// flight recorder, where SIGHUP starts a new segment, as daemons reopen their files).
fn stop_on_signals(hup_stops: bool) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = vec![signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
    if hup_stops {
        signals.push(signal_hook::consts::SIGHUP);
    }
    for signal in signals {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| RecordError::Other(format!("cannot handle signals: {e}")))?;
    }
    Ok(stop)
}

/// Ring buffer size in bytes: a power of two number of pages, as the kernel requires.
/// The ring's size: `--buffer-mib` is checked by the parser (a power of two, 1 to 1024).
fn ring_bytes(mib: u32) -> u32 {
    mib << 20
}

/// Nanoseconds of a duration the parser bounded (an hour at most).
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
