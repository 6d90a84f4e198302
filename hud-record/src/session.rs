//! One recording: header, embedded objects, probes, the drain loop, and a clean close.

use std::io::{IsTerminal, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hud_format::types::{
    Header, RecorderOptions, Target, ThreadEvent, ThreadEventKind, COPY_OF_OFF_CPU, COPY_OF_SAMPLE,
};
use hud_format::wire::{
    self, kind, RecordHeader, StackCopyHeader, StackRecord, SwitchBatch, ThreadRecord,
};
use hud_format::writer::{CaptureWriter, StackCopyRow, WriterOptions};

use crate::cli::Args;
use crate::error::{RecordError, Result};
use crate::output::{self, Destination};
use crate::probes::{ProbeConfig, Probes};
use crate::procfs::{self, MappingTracker};
use crate::target::ProcessInfo;
use crate::tracefs;

/// How often the ring buffer is drained. Records wait at most this long in the kernel.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);
/// How often /proc/PID/maps is rescanned even when no stack points outside known mappings.
const MAPS_RESCAN_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest gap between two rescans triggered by unknown addresses.
const MAPS_RESCAN_MIN_GAP: Duration = Duration::from_millis(200);

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

type Writer = CaptureWriter<Box<dyn Write + Send>>;

fn write_error(e: hud_format::Error) -> RecordError {
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
fn start_error(e: hud_format::Error) -> RecordError {
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
    let tracefs = tracefs::locate()?;
    let offsets = tracefs::offsets(&tracefs);
    tracefs::check_switch_layout(&offsets)?;
    let cpus = aya::util::online_cpus()
        .map_err(|(what, e)| RecordError::Other(format!("reading {what}: {e}")))?;

    let stop = Arc::new(AtomicBool::new(false));
    // SIGHUP too: an ssh session dropping must close the capture, not kill the recorder.
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| RecordError::Other(format!("cannot handle signals: {e}")))?;
    }
    // Watch the target through a pidfd: it becomes readable when the process exits, and it can
    // not be confused with a new process reusing the pid.
    let pidfd = open_pidfd(target.pid)?;

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
    let header = build_header(args, target, &cpus, start_ns, &initial_maps);

    let (out, mut publication) = output::open(dest, args.force)?;
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
    if args.embed_binaries {
        embed_binaries(&mut writer, target, &maps)?;
    }

    let mut probes = Probes::load(&ProbeConfig {
        tgid: target.pid,
        offcpu_threshold_ns: nanos(args.offcpu_threshold),
        kernel_stacks: args.kernel_stacks,
        sample_hz: args.frequency,
        ring_bytes: ring_bytes(args.buffer_mib),
        stack_copy_bytes: args.unwind.copy_bytes(),
        copy_user_samples: matches!(args.unwind, crate::cli::Unwind::Dwarf(_)),
        stack_budget: args.stack_budget,
        offsets,
        task_layout: match crate::btf::task_layout() {
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
    })?;
    // Threads that existed before the fork tracepoint was attached; later ones arrive by themselves.
    let threads = procfs::threads(target.pid);
    probes.add_threads(threads.iter().map(|(tid, _)| *tid))?;
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

    let mut drain = Drain {
        writer,
        maps,
        pid: target.pid,
        last_rescan: Instant::now(),
        unknown_records: 0,
        lost: 0,
        code: Default::default(),
        scratch: Vec::new(),
        leaf_only: args.unwind == crate::cli::Unwind::Leaf,
        walked_caller: Default::default(),
    };
    drain.code = drain.maps.code_ranges();
    // The first chunk carries the threads and mappings: the viewer starts with something.
    drain.writer.flush_chunk().map_err(write_error)?;
    let mut viewer = match (viewer, dest) {
        (Some(binary), Destination::File(path)) => {
            Some(crate::viewer::Viewer::spawn(binary, path)?)
        }
        _ => None,
    };
    // Attached, named, and the viewer started (as the invoking user): from here on the recorder
    // needs only to read the target's maps and files (docs/RECORD.md, least privilege).
    crate::privileges::keep_only(&crate::privileges::KEPT_AFTER_ATTACH)?;
    let mut viewer_failure = None;
    let mut status = Status::new(!args.quiet && std::io::stderr().is_terminal());
    // The viewer owns the terminal while it runs.
    status.enabled &= viewer.is_none();
    let started = Instant::now();
    // Bounded to a year by the parser: no overflow.
    let deadline = args.duration.map(|d| started + d);
    let reason = loop {
        let exited = wait_readable(&pidfd, DRAIN_INTERVAL);
        match drain.drain(&mut probes).and_then(|()| drain.tick(&probes)) {
            Ok(()) => {}
            Err(RecordError::ReaderGone) => break StopReason::ReaderGone,
            Err(e) => {
                // Closing the file lets the cockpit show what it has; the error waits for it.
                drop(drain);
                wait_for(viewer);
                return Err(e);
            }
        }
        status.show(started, &drain.writer, drain.lost);
        if let Some(code) = viewer.as_mut().and_then(|v| v.exited()) {
            viewer = None;
            if !code.success() {
                viewer_failure = Some(format!("the cockpit ended with {code}"));
            }
            if !args.keep_recording {
                break StopReason::ViewerClosed;
            }
            // The terminal is ours again.
            status.enabled = !args.quiet && std::io::stderr().is_terminal();
        }
        if exited {
            break StopReason::TargetExited;
        }
        if stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break StopReason::Duration;
        }
    };
    status.clear();
    // Events already in the ring buffer, and the switches the CPUs still hold, belong to the
    // capture.
    let drained = if reason == StopReason::ReaderGone {
        Ok(())
    } else {
        probes.stop().and_then(|batches| {
            drain.drain(&mut probes)?;
            for batch in &batches {
                drain.push_batch(batch)?;
            }
            drain.tick(&probes)
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
        // Dropping `out` closes the file and lets go of its lock: a follower then knows the
        // capture is complete.
        let mut out = drain.writer.finish().map_err(write_error)?;
        out.flush()
            .map_err(|e| RecordError::Output(format!("finishing the capture: {e}")))
    });
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

/// Detaches the probes without making the user wait for the kernel. Releasing a link waits for
/// an RCU-tasks grace period (`synchronize_rcu_tasks_trace`), seconds under a context-switch
/// storm, once per link: a `--duration 3` recording took 6.6 s. The programs are stopped already
/// (the control flag) and the capture is closed, so the release is left to a forked child that
/// holds copies of the descriptors: the recorder closes its own (not the last reference, so
/// nothing waits), lets the child go, and exits; the child's exit releases them.
fn detach(probes: Probes) {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        drop(probes);
        return;
    }
    // SAFETY: the child only calls async-signal-safe functions (close, read, _exit).
    match unsafe { libc::fork() } {
        0 => unsafe {
            // The child: no standard streams (a reader of a pipe must see its end now), then
            // wait until the parent has closed its copies, so that this exit drops the last.
            libc::close(pipe[1]);
            for fd in 0..3 {
                libc::close(fd);
            }
            let mut byte = 0u8;
            while libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1) < 0 {}
            libc::_exit(0);
        },
        -1 => {
            // SAFETY: our two pipe descriptors.
            unsafe {
                libc::close(pipe[0]);
                libc::close(pipe[1]);
            }
            drop(probes);
        }
        _ => {
            drop(probes);
            // SAFETY: our pipe descriptors; closing the write end lets the child exit.
            unsafe {
                libc::close(pipe[0]);
                libc::close(pipe[1]);
            }
        }
    }
}

/// Waits until the user closes the cockpit, if one runs; says how it failed, if it did.
fn wait_for(viewer: Option<crate::viewer::Viewer>) -> Option<String> {
    let code = viewer?.wait()?;
    (!code.success()).then(|| format!("the cockpit ended with {code}"))
}

/// Size of the finished capture file (0 for standard output).
fn file_size(dest: &Destination) -> u64 {
    match dest {
        Destination::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        Destination::Stdout => 0,
    }
}

/// Ring buffer size in bytes: a power of two number of pages, as the kernel requires.
/// The ring's size: `--buffer-mib` is checked by the parser (a power of two, 1 to 1024).
fn ring_bytes(mib: u32) -> u32 {
    mib << 20
}

/// Nanoseconds of a duration the parser bounded (an hour at most).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn build_header(
    args: &Args,
    target: &ProcessInfo,
    cpus: &[u32],
    start_ns: u64,
    maps: &[hud_format::types::Mapping],
) -> Header {
    let host = procfs::host_info(cpus.len() as u32);
    let exe_build_id = maps
        .iter()
        .find(|m| m.path == target.exe)
        .map(|m| m.build_id.clone())
        .unwrap_or_default();
    Header {
        hud_version: env!("CARGO_PKG_VERSION").into(),
        host_name: host.host_name,
        kernel_release: host.kernel_release,
        arch: host.arch,
        page_size: host.page_size,
        cpu_count: host.cpu_count,
        clock: procfs::clock_offsets(),
        boot_id: host.boot_id,
        start_ns,
        sample_hz: args.frequency,
        offcpu_threshold_ns: nanos(args.offcpu_threshold),
        target: Target {
            pid: target.pid,
            exe_path: target.exe.clone(),
            cmdline: target.cmdline.clone(),
            build_id: exe_build_id,
        },
        options: RecorderOptions {
            kernel_stacks: args.kernel_stacks,
            embed_binaries: args.embed_binaries,
            command_line: std::env::args().collect(),
        },
    }
}

/// Embeds the target's executable and every other mapped object that has DWARF line info.
fn embed_binaries(writer: &mut Writer, target: &ProcessInfo, maps: &MappingTracker) -> Result<()> {
    for (path, build_id) in maps.executable_files() {
        let on_disk = procfs::file_in_target(target.pid, &path);
        let is_exe = path == target.exe;
        if !is_exe && !procfs::has_debug_info(Path::new(&on_disk)) {
            continue;
        }
        match std::fs::read(&on_disk) {
            Ok(bytes) => writer
                .embed_object(&path, &build_id, &bytes)
                .map_err(start_error)?,
            Err(e) => eprintln!("hud-record: warning: cannot embed {path}: {e}"),
        }
    }
    Ok(())
}

fn open_pidfd(pid: u32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(RecordError::NoSuchProcess(format!(
            "process {pid} is gone ({e})"
        )));
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits up to `timeout`; true when the pidfd says the process exited.
fn wait_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
    n > 0 && poll.revents & libc::POLLIN != 0
}

/// Moves records from the ring buffer into the capture.
struct Drain {
    writer: Writer,
    maps: MappingTracker,
    pid: u32,
    last_rescan: Instant,
    unknown_records: u64,
    /// Records lost so far (kernel counters plus unreadable records), updated each tick.
    lost: u64,
    /// The target's code, for scrubbing stack copies (kept up with the rescans).
    code: crate::scrub::CodeRanges,
    /// A stack copy being scrubbed.
    scratch: Vec<u8>,
    /// `--unwind leaf`: a copy is kept only when it can add a frame to the walk (below).
    leaf_only: bool,
    /// Per thread, the first return address of its latest walked user stack.
    walked_caller: std::collections::HashMap<u32, u64>,
}

impl Drain {
    fn drain(&mut self, probes: &mut Probes) -> Result<()> {
        while let Some(item) = probes.ring.next() {
            let bytes: &[u8] = &item;
            match wire::record_kind(bytes) {
                Some(kind::SWITCH_BATCH) => {
                    let Some(batch) = wire::read_record::<SwitchBatch>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    drop(item);
                    self.push_batch(&batch)?;
                }
                Some(kind::SAMPLE) | Some(kind::OFF_CPU) => {
                    let Some(r) = wire::read_record::<StackRecord>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    drop(item);
                    self.push_stack_record(&r)?;
                }
                Some(kind::STACK_COPY) => {
                    let Some(head) = wire::read_record::<StackCopyHeader>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    let start = std::mem::size_of::<StackCopyHeader>();
                    let Some(stack) = bytes.get(start..start + head.len as usize) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    self.scratch.clear();
                    self.scratch.extend_from_slice(stack);
                    drop(item);
                    self.push_stack_copy(&head)?;
                }
                Some(kind::THREAD_NEW) | Some(kind::THREAD_EXIT) | Some(kind::THREAD_RENAME) => {
                    let Some(r) = wire::read_record::<ThreadRecord>(bytes) else {
                        self.unknown_records += 1;
                        continue;
                    };
                    self.push_thread(&r)?;
                }
                _ => self.unknown_records += 1,
            }
        }
        Ok(())
    }

    /// A CPU's switches.
    fn push_batch(&mut self, batch: &SwitchBatch) -> Result<()> {
        let cpu = batch.header.cpu;
        for e in batch.valid() {
            let on_cpu = e.state & wire::ENTRY_SWITCH_IN != 0;
            let state = if on_cpu { 0 } else { e.state };
            self.writer
                .push_switch(e.ts_ns, e.tid, cpu, on_cpu, state)
                .map_err(write_error)?;
        }
        Ok(())
    }

    /// A stack copy (its bytes in `scratch`): scrubbed to the words unwinding reads
    /// (scrub.rs), and written unless it is a leaf window that adds nothing.
    fn push_stack_copy(&mut self, head: &StackCopyHeader) -> Result<()> {
        crate::scrub::scrub(&mut self.scratch, head.sp, &self.code);
        let h = head.header;
        // A leaf window whose first return address is the walk's first one adds nothing: the
        // leaf set up its frame and the walk missed no caller.
        if self.leaf_only
            && crate::scrub::first_code_address(&self.scratch, &self.code)
                == self.walked_caller.get(&h.tid).copied()
        {
            return Ok(());
        }
        let of = if h.flags == kind::SAMPLE {
            COPY_OF_SAMPLE
        } else {
            COPY_OF_OFF_CPU
        };
        self.writer
            .push_stack_copy(&StackCopyRow {
                ts_ns: h.ts_ns,
                span_ns: head.last_ns.saturating_sub(h.ts_ns),
                tid: h.tid,
                of,
                ip: head.ip,
                sp: head.sp,
                bp: head.bp,
                bytes: &self.scratch,
            })
            .map_err(write_error)
    }

    fn push_stack_record(&mut self, r: &StackRecord) -> Result<()> {
        let user = &r.user[..usize::from(r.user_len).min(wire::MAX_USER_FRAMES)];
        let kernel = &r.kernel[..usize::from(r.kernel_len).min(wire::MAX_KERNEL_FRAMES)];
        // A stack into code we have no mapping for: the target loaded something (dlopen).
        if user.iter().any(|a| !self.maps.covers(*a))
            && self.last_rescan.elapsed() >= MAPS_RESCAN_MIN_GAP
        {
            self.rescan_maps()?;
        }
        let h: RecordHeader = r.header;
        // Only leaf windows are compared with the walk (push_stack_copy).
        if self.leaf_only {
            if let Some(&caller) = user.get(1) {
                self.walked_caller.insert(h.tid, caller);
            } else {
                self.walked_caller.remove(&h.tid);
            }
        }
        if h.kind == kind::SAMPLE {
            self.writer.push_sample(h.ts_ns, h.tid, h.cpu, user, kernel)
        } else {
            self.writer.push_off_cpu(
                h.ts_ns,
                h.tid,
                h.cpu,
                r.duration_ns,
                r.runnable_ns,
                r.state,
                user,
                kernel,
            )
        }
        .map_err(write_error)
    }

    fn push_thread(&mut self, r: &ThreadRecord) -> Result<()> {
        let len = r.comm.iter().position(|b| *b == 0).unwrap_or(r.comm.len());
        let name = String::from_utf8_lossy(&r.comm[..len]).into_owned();
        let kind = match r.header.kind {
            kind::THREAD_NEW => ThreadEventKind::New,
            kind::THREAD_EXIT => ThreadEventKind::Exited,
            _ => ThreadEventKind::Renamed,
        };
        self.writer
            .push_thread(ThreadEvent {
                ts_ns: r.header.ts_ns,
                tid: r.header.tid,
                kind,
                name,
            })
            .map_err(write_error)
    }

    fn rescan_maps(&mut self) -> Result<()> {
        self.last_rescan = Instant::now();
        // The target may be exiting: a failed rescan is not an error, the exit is noticed next.
        if let Ok(fresh) = self.maps.rescan(self.pid, procfs::monotonic_ns()) {
            for mapping in fresh {
                self.writer.push_mapping(mapping).map_err(write_error)?;
            }
            self.maps.vdso = None;
            self.code = self.maps.code_ranges();
        }
        Ok(())
    }

    /// Periodic work: counters, rescans, time-based flush.
    fn tick(&mut self, probes: &Probes) -> Result<()> {
        if self.last_rescan.elapsed() >= MAPS_RESCAN_INTERVAL {
            self.rescan_maps()?;
        }
        let mut lost = self.unknown_records;
        for (counter, value) in probes.counters() {
            self.writer.set_counter(counter.name(), value);
            if counter.is_lost_record() {
                lost += value;
            }
        }
        self.lost = lost;
        self.writer
            .set_counter("unknown_record", self.unknown_records);
        self.writer.set_now(procfs::monotonic_ns());
        self.writer.maybe_flush().map_err(write_error)?;
        Ok(())
    }
}

/// Whether the terminal on standard error is in its usual line mode. A full-screen program on
/// the same terminal (the cockpit reading our pipe: `hud-record -o - | hud-analyze tui -`)
/// switches it to raw mode, and a status line would then be drawn over its screen.
fn terminal_is_line_mode() -> bool {
    // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 2 and a valid termios pointer.
    let ok = unsafe { libc::tcgetattr(2, &mut t) } == 0;
    !ok || t.c_lflag & libc::ICANON != 0
}

/// The one-line live status on a terminal.
struct Status {
    enabled: bool,
    last: std::cell::Cell<Option<Instant>>,
}

impl Status {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            last: std::cell::Cell::new(None),
        }
    }

    fn show(&self, started: Instant, writer: &Writer, lost: u64) {
        if !self.enabled
            || self
                .last
                .get()
                .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
            || !terminal_is_line_mode()
        {
            return;
        }
        self.last.set(Some(Instant::now()));
        let t = writer.totals();
        eprint!(
            "\r\x1b[2Krecording {:>6.1}s  switches {}  samples {}  off-cpu {}  lost {}  {:.1} MiB",
            started.elapsed().as_secs_f64(),
            t.switches,
            t.samples,
            t.off_cpu,
            lost,
            writer.bytes_written() as f64 / (1 << 20) as f64
        );
    }

    fn clear(&self) {
        if self.enabled && terminal_is_line_mode() {
            eprint!("\r\x1b[2K");
        }
    }
}
