//! The flight recorder (`--flight-recorder DIR`): records without end into a ring of segment
//! files that keeps the last `--keep` within `--max-disk`, and writes a dump, an ordinary
//! capture of the window around a moment, on SIGUSR1 (`hud-record --dump DIR`), or when a
//! runtime thread is blocked at least `--trigger-blocked`.
//!
//! `ring` (the files and their bounds), `dump` (a capture from the ring's files), `trigger`
//! (what counts as blocked, read from the events as they pass).
//!
//! Memory stays bounded: at each segment the writer forgets its interned stacks and copies
//! (`CaptureWriter::start_segment`); nothing else grows with time.

pub mod dump;
pub mod ring;
pub mod trigger;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hud_format::types::{Dump, Header, Provenance};

use crate::error::{RecordError, Result};
use crate::procfs;
use dump::DumpRequest;
use ring::Ring;
use trigger::BlockWatch;

/// What `--flight-recorder` was given.
#[derive(Clone, Debug)]
pub struct FlightOptions {
    pub dir: PathBuf,
    pub keep: Duration,
    pub max_disk: u64,
    pub before: Duration,
    pub after: Duration,
    pub max_dumps: usize,
    pub trigger_blocked: Option<Duration>,
    pub trigger_cooldown: Duration,
}

impl FlightOptions {
    /// How long a segment lasts: an eighth of what is kept (the ring keeps up to one segment
    /// more than `--keep`), between 1 s and 30 s.
    pub fn segment_ns(&self) -> u64 {
        let eighth = self.keep / 8;
        nanos(eighth.clamp(Duration::from_secs(1), Duration::from_secs(30)))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One log line a collector can parse: `hud-record: flight event=NAME key=value …`.
pub fn log(event: &str, fields: &[(&str, String)]) {
    let mut line = format!("hud-record: flight event={event}");
    for (key, value) in fields {
        if value.contains(' ') || value.contains('"') || value.is_empty() {
            line.push_str(&format!(" {key}={value:?}"));
        } else {
            line.push_str(&format!(" {key}={value}"));
        }
    }
    eprintln!("{line}");
}

/// The ring, the pending dumps and the trigger.
pub struct FlightRecorder {
    pub options: FlightOptions,
    pub ring: Ring,
    header: Header,
    place: Provenance,
    segment_ns: u64,
    /// Set by SIGUSR1: a dump is asked for.
    asked: Arc<AtomicBool>,
    /// Set by SIGHUP: start a new segment (its files are opened afresh).
    reopen: Arc<AtomicBool>,
    pub watch: Option<BlockWatch>,
    pending: Option<DumpRequest>,
    /// The last automatic dump's trigger, for the cooldown.
    last_trigger_ns: Option<u64>,
    /// Free bytes on the ring's volume, and when they were looked at.
    free: u64,
    space_checked: Option<std::time::Instant>,
}

impl FlightRecorder {
    /// A ring in `options.dir` (created), and the signals that ask for a dump.
    pub fn create(options: FlightOptions, header: &Header) -> Result<Self> {
        std::fs::create_dir_all(&options.dir).map_err(|e| {
            RecordError::Output(format!("cannot create {}: {e}", options.dir.display()))
        })?;
        check_not_in_use(&options.dir)?;
        let ring = Ring::create(&options.dir, options.max_disk).map_err(|e| {
            RecordError::Output(format!(
                "cannot start the ring in {}: {e}",
                options.dir.display()
            ))
        })?;
        std::fs::write(
            ring.files().dir.join(ring::PID_FILE),
            format!("{}\n", std::process::id()),
        )
        .map_err(|e| RecordError::Output(format!("cannot write the ring's pid file: {e}")))?;
        let asked = Arc::new(AtomicBool::new(false));
        let reopen = Arc::new(AtomicBool::new(false));
        let register = |signal, flag: &Arc<AtomicBool>| {
            signal_hook::flag::register(signal, Arc::clone(flag))
                .map_err(|e| RecordError::Other(format!("cannot handle signals: {e}")))
        };
        register(signal_hook::consts::SIGUSR1, &asked)?;
        register(signal_hook::consts::SIGHUP, &reopen)?;
        let watch = options.trigger_blocked.map(|d| BlockWatch::new(nanos(d)));
        Ok(FlightRecorder {
            segment_ns: options.segment_ns(),
            options,
            ring,
            header: header.clone(),
            place: Provenance::default(),
            asked,
            reopen,
            watch,
            pending: None,
            last_trigger_ns: None,
            free: u64::MAX,
            space_checked: None,
        })
    }

    /// What the capture says of where the target ran (repeated at each segment and in dumps).
    pub fn set_place(&mut self, place: Provenance) {
        self.place = place;
    }

    /// Periodic work, after the drain: a new segment when the current one is old or large (or
    /// SIGHUP asked), the ring trimmed, and dumps asked for or due.
    pub fn tick(&mut self, writer: &mut crate::session::Writer) -> Result<()> {
        let now = procfs::monotonic_ns();
        let (age, bytes) = {
            let files = self.ring.files();
            let current = files.current();
            (
                current.map_or(0, |s| now.saturating_sub(s.start_ns)),
                current.map_or(0, |s| s.bytes),
            )
        };
        let reopen = self.reopen.swap(false, Ordering::Relaxed);
        // The file system filling up (other writers, a small volume): the ring shrinks before
        // a write fails, keeping room for a segment to grow; its cap is then what the volume
        // can hold.
        let used = self.ring.files().disk_bytes();
        // Looked at twice a second (statvfs at every 20 ms drain was a tenth of what the
        // flight recorder costs over a plain recording).
        if self
            .space_checked
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            self.space_checked = Some(std::time::Instant::now());
            self.free = free_bytes(&self.options.dir).unwrap_or(u64::MAX);
        }
        let free = self.free;
        let room = self.options.max_disk.min(used.saturating_add(free)) / 8;
        let short = room.saturating_sub(free);
        if reopen || age >= self.segment_ns || bytes >= room || (short > 0 && bytes > 0) {
            self.rotate(writer, now)?;
        }
        if short > 0 {
            let mut files = self.ring.files();
            let before = files.closed.len();
            let target = files.disk_bytes().saturating_sub(short);
            while files.disk_bytes() > target && !files.closed.is_empty() {
                files.drop_oldest();
            }
            let removed = before - files.closed.len();
            if removed > 0 {
                files.dropped_for_space += removed as u64;
            }
        }
        if self.asked.swap(false, Ordering::Relaxed) {
            self.ask(DumpRequest {
                reason: "signal",
                trigger_ns: now,
                detail: String::new(),
                from_ns: now.saturating_sub(nanos(self.options.before)),
                due_ns: now.saturating_add(nanos(self.options.after)),
            });
        }
        if let Some(blocked) = self.watch.as_mut().and_then(BlockWatch::take) {
            let cooled = self.last_trigger_ns.is_none_or(|t| {
                blocked.start_ns >= t.saturating_add(nanos(self.options.trigger_cooldown))
            });
            if cooled && self.pending.is_none() {
                self.last_trigger_ns = Some(blocked.start_ns);
                let how = if blocked.on_cpu {
                    "polled on CPU"
                } else {
                    "blocked off CPU"
                };
                let detail = format!(
                    "thread {} {how} for {:.1} ms in task {}",
                    blocked.tid,
                    blocked.duration_ns as f64 / 1e6,
                    blocked.task
                );
                log(
                    "trigger",
                    &[
                        ("tid", blocked.tid.to_string()),
                        ("task", blocked.task.to_string()),
                        (
                            "blocked_ms",
                            format!("{:.1}", blocked.duration_ns as f64 / 1e6),
                        ),
                        ("on_cpu", blocked.on_cpu.to_string()),
                    ],
                );
                let end = blocked.start_ns.saturating_add(blocked.duration_ns);
                self.ask(DumpRequest {
                    reason: "blocked",
                    trigger_ns: blocked.start_ns,
                    detail,
                    from_ns: blocked.start_ns.saturating_sub(nanos(self.options.before)),
                    due_ns: end.max(now).saturating_add(nanos(self.options.after)),
                });
            }
        }
        if self.pending.as_ref().is_some_and(|p| now >= p.due_ns) {
            self.write_pending(writer)?;
        }
        let shrunk = std::mem::take(&mut self.ring.files().dropped_for_space);
        if shrunk > 0 {
            log("disk_full", &[("segments_removed", shrunk.to_string())]);
        }
        Ok(())
    }

    /// A dump is asked for: kept until due (one at a time; a second request while one waits is
    /// part of its window).
    fn ask(&mut self, request: DumpRequest) {
        if self.pending.is_none() {
            self.pending = Some(request);
        }
    }

    /// Starts a new segment: the writer writes what it holds and forgets what later frames
    /// could refer to; the file changes; the new segment opens with a mark of where it starts.
    fn rotate(&mut self, writer: &mut crate::session::Writer, now: u64) -> Result<()> {
        writer
            .start_segment()
            .map_err(crate::session::write_error)?;
        let first_seq = writer.next_chunk_seq();
        {
            let mut files = self.ring.files();
            files.rotate(now, first_seq).map_err(ring_error)?;
            // Room for the new segment to grow to its rotation size.
            files.trim(
                now.saturating_sub(nanos(self.options.keep)),
                self.options.max_disk / 8,
            );
        }
        writer
            .write_provenance(&segment_mark(&self.place, first_seq, now))
            .map_err(crate::session::write_error)
    }

    /// Writes the pending dump now (its window closes here).
    pub fn write_pending(&mut self, writer: &mut crate::session::Writer) -> Result<()> {
        let Some(request) = self.pending.take() else {
            return Ok(());
        };
        let now = procfs::monotonic_ns();
        self.rotate(writer, now)?;
        let wall = procfs::clock_offsets();
        let wall_ns = wall
            .realtime_ns
            .saturating_add(now.saturating_sub(wall.monotonic_ns));
        let written = dump::write(
            &self.options.dir,
            &self.ring.files(),
            &self.header,
            &self.place,
            &request,
            wall_ns,
        );
        match written {
            Ok(w) => {
                log(
                    "dump",
                    &[
                        ("reason", request.reason.to_owned()),
                        ("file", w.path.display().to_string()),
                        ("bytes", w.bytes.to_string()),
                        (
                            "window_s",
                            format!("{:.1}", w.to_ns.saturating_sub(w.from_ns) as f64 / 1e9),
                        ),
                        (
                            "written_after_trigger_ms",
                            format!("{:.0}", now.saturating_sub(request.trigger_ns) as f64 / 1e6),
                        ),
                        // The trigger plus --after (or the blocking's end plus --after): what
                        // the recorder adds to that is this.
                        (
                            "written_after_due_ms",
                            format!(
                                "{:.0}",
                                procfs::monotonic_ns().saturating_sub(request.due_ns) as f64 / 1e6
                            ),
                        ),
                    ],
                );
                for gone in dump::prune(&self.options.dir, self.options.max_dumps) {
                    log("dump_removed", &[("file", gone.display().to_string())]);
                }
            }
            // A dump that fails (a full disk) costs that dump, not the recording.
            Err(e) => log(
                "dump_failed",
                &[
                    ("reason", request.reason.to_owned()),
                    ("error", e.to_string()),
                ],
            ),
        }
        Ok(())
    }

    /// The recorder stops: the pid file goes (the ring stays, readable as a capture).
    pub fn close(&self) {
        let _ = std::fs::remove_file(self.ring.files().dir.join(ring::PID_FILE));
    }
}

/// What a segment of the ring starts with: where the target ran, and where the segment's chunks
/// start (so the ring read whole starts at its oldest segment, see docs/FORMAT.md).
pub fn segment_mark(place: &Provenance, first_seq: u32, now: u64) -> Provenance {
    Provenance {
        dump: Some(Dump {
            reason: "segment".into(),
            trigger_ns: now,
            detail: String::new(),
            from_ns: now,
            to_ns: now,
            first_seq,
        }),
        ..place.clone()
    }
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we own from a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(path.as_ptr(), &mut st) == 0)
            .then(|| st.f_bavail.saturating_mul(st.f_frsize))
    }
}

fn ring_error(e: std::io::Error) -> RecordError {
    RecordError::Output(format!("the flight recorder's ring: {e}"))
}

/// Refuses a directory another live recorder writes.
fn check_not_in_use(dir: &Path) -> Result<()> {
    let pid_file = dir.join(hud_format::ring::RING_DIR).join(ring::PID_FILE);
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Ok(());
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
    let ours = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| c.trim() == "hud-record");
    if alive && ours {
        return Err(RecordError::Output(format!(
            "{} is the ring of a flight recorder still running (pid {pid}): choose another \
             directory, or ask it for a dump with `hud-record --dump {}`",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// `hud-record --dump DIR`: asks the flight recorder writing DIR for a dump (SIGUSR1) and waits
/// for it; returns the dump's path.
pub fn request_dump(dir: &Path, wait: Duration) -> Result<PathBuf> {
    let pid_file = dir.join(hud_format::ring::RING_DIR).join(ring::PID_FILE);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| {
            RecordError::Usage(format!(
                "no flight recorder writes {} ({} is missing)",
                dir.display(),
                pid_file.display()
            ))
        })?;
    let before: Vec<PathBuf> = dump::dumps_in(dir);
    // SAFETY: kill sends a signal to the pid the recorder wrote.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(RecordError::Other(format!(
            "cannot signal the flight recorder (pid {pid}): {e}"
        )));
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(new) = dump::dumps_in(dir)
            .into_iter()
            .find(|p| !before.contains(p))
        {
            return Ok(new);
        }
        if std::time::Instant::now() >= deadline {
            return Err(RecordError::Other(format!(
                "the flight recorder (pid {pid}) wrote no dump within {:.0} s (its --after \
                 window may be longer; look in {} later)",
                wait.as_secs_f64(),
                dir.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
