//! The ring: a capture written as a base file (the preamble, the header, the embedded objects)
//! and numbered segment files, each starting where the writer started a segment
//! (`CaptureWriter::start_segment`), so the oldest can be removed and any run of the newest,
//! after the base, reads as one capture. Disk is bounded by `--max-disk`: the oldest segments go
//! first, and a full disk removes them too (the ring shrinks, says so, and recording goes on).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use hud_format::ring::PID_FILE;
use hud_format::ring::{segment_name, BASE, RING_DIR};

/// A segment file and what it holds.
#[derive(Clone, Debug)]
pub struct Segment {
    pub path: PathBuf,
    /// CLOCK_MONOTONIC ns: when it began and (once closed) ended.
    pub start_ns: u64,
    pub end_ns: u64,
    pub bytes: u64,
    /// The number of its first chunk.
    pub first_seq: u32,
}

/// The ring's files. Shared between the writer's output (`RingOutput`) and the flight
/// recorder, on one thread (the mutex only makes the sharing safe to write down).
pub struct RingFiles {
    pub dir: PathBuf,
    base: Option<File>,
    current: Option<(Segment, File)>,
    /// Closed segments, oldest first.
    pub closed: VecDeque<Segment>,
    next_number: u64,
    pub max_disk: u64,
    base_bytes: u64,
    /// Segments removed because the disk was full, since the last look.
    pub dropped_for_space: u64,
}

/// A handle on the ring's files.
#[derive(Clone)]
pub struct Ring(Arc<Mutex<RingFiles>>);

/// The writer's output: the base file until it is sealed, then the current segment.
pub struct RingOutput(Ring);

fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

impl Ring {
    /// A new ring in `dir/ring`. One left by an earlier run (the recorder restarted with its
    /// target) is kept as `dir/ring.previous`, readable like the ring (`hud-analyze report
    /// DIR/ring.previous`), replacing an older one: at most two rings on disk.
    pub fn create(dir: &Path, max_disk: u64) -> io::Result<Self> {
        let ring_dir = dir.join(RING_DIR);
        if ring_dir.exists() {
            let previous = dir.join("ring.previous");
            if previous.exists() {
                fs::remove_dir_all(&previous)?;
            }
            fs::rename(&ring_dir, &previous)?;
            let _ = fs::remove_file(previous.join(PID_FILE));
        }
        fs::create_dir_all(&ring_dir)?;
        let base = create(&ring_dir.join(BASE))?;
        Ok(Ring(Arc::new(Mutex::new(RingFiles {
            dir: ring_dir,
            base: Some(base),
            current: None,
            closed: VecDeque::new(),
            next_number: 0,
            max_disk,
            base_bytes: 0,
            dropped_for_space: 0,
        }))))
    }

    pub fn files(&self) -> MutexGuard<'_, RingFiles> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn output(&self) -> RingOutput {
        RingOutput(self.clone())
    }
}

impl RingFiles {
    /// The path of the base file.
    pub fn base_path(&self) -> PathBuf {
        self.dir.join(BASE)
    }

    /// Ends the base (everything written so far) and opens the first segment.
    pub fn seal_base(&mut self, now_ns: u64) -> io::Result<()> {
        if let Some(mut base) = self.base.take() {
            base.flush()?;
        }
        self.open_next(now_ns, 0)
    }

    fn open_next(&mut self, now_ns: u64, first_seq: u32) -> io::Result<()> {
        let path = self.dir.join(segment_name(self.next_number));
        self.next_number += 1;
        let file = create(&path)?;
        self.current = Some((
            Segment {
                path,
                start_ns: now_ns,
                end_ns: now_ns,
                bytes: 0,
                first_seq,
            },
            file,
        ));
        Ok(())
    }

    /// Closes the current segment at `now_ns` and opens the next, whose first chunk is
    /// `first_seq`: call it right after the writer started a segment, so the closed one ends
    /// with whole frames.
    pub fn rotate(&mut self, now_ns: u64, first_seq: u32) -> io::Result<()> {
        if let Some((mut segment, mut file)) = self.current.take() {
            file.flush()?;
            segment.end_ns = now_ns;
            self.closed.push_back(segment);
        }
        self.open_next(now_ns, first_seq)
    }

    /// The current segment's start and size.
    pub fn current(&self) -> Option<&Segment> {
        self.current.as_ref().map(|(s, _)| s)
    }

    /// Bytes on disk: the base, the closed segments and the current one.
    pub fn disk_bytes(&self) -> u64 {
        self.base_bytes
            + self.closed.iter().map(|s| s.bytes).sum::<u64>()
            + self.current().map_or(0, |s| s.bytes)
    }

    /// Removes the oldest closed segments that ended before `keep_from_ns`, and more while the
    /// ring and `headroom` (what the current segment may still grow by) are over the disk
    /// budget. Returns how many went.
    pub fn trim(&mut self, keep_from_ns: u64, headroom: u64) -> usize {
        let mut removed = 0;
        while let Some(oldest) = self.closed.front() {
            let too_old = oldest.end_ns < keep_from_ns;
            let too_big = self.disk_bytes() + headroom > self.max_disk;
            if !too_old && !too_big {
                break;
            }
            self.drop_oldest();
            removed += 1;
        }
        removed
    }

    /// Removes the oldest closed segment.
    pub fn drop_oldest(&mut self) {
        if let Some(oldest) = self.closed.pop_front() {
            let _ = fs::remove_file(&oldest.path);
        }
    }

    /// Writes `buf` whole into the base (until sealed) or the current segment.
    fn write_all_now(&mut self, buf: &[u8]) -> io::Result<()> {
        let (file, counted) = match (&mut self.base, &mut self.current) {
            (Some(base), _) => (base, &mut self.base_bytes),
            (None, Some((segment, file))) => (file, &mut segment.bytes),
            (None, None) => return Err(io::Error::other("the ring is closed")),
        };
        file.write_all(buf)?;
        *counted += buf.len() as u64;
        Ok(())
    }
}

/// `ENOSPC`: the disk is full.
fn disk_full(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT)
}

impl Write for RingOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// A frame's bytes; on a full disk the oldest segments make room, one at a time, until the
    /// write fits or none is left. (A write cut short by the full disk leaves the segment's
    /// last frame cut: readers keep what comes before it, and the ring's reader goes on at the
    /// next segment.)
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut files = self.0.files();
        loop {
            match files.write_all_now(buf) {
                Ok(()) => return Ok(()),
                Err(e) if disk_full(&e) && !files.closed.is_empty() => {
                    files.drop_oldest();
                    files.dropped_for_space += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut guard = self.0.files();
        let files = &mut *guard;
        match (&mut files.base, &mut files.current) {
            (Some(base), _) => base.flush(),
            (None, Some((_, file))) => file.flush(),
            (None, None) => Ok(()),
        }
    }
}
