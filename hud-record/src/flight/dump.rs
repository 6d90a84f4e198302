//! Dumps: an ordinary capture of the ring's window around a moment, put together from the
//! base's frames and whole segments (no event is decoded): a header that starts at the first
//! segment, the base's objects and provenance, a provenance frame that says why and where the
//! chunks start, then the segments' bytes. Written under a hidden name and renamed, so a reader
//! never sees half a dump; the oldest dumps beyond `--max-dumps` are removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hud_format::frame::{FrameHeader, FRAME_HEADER_LEN, PREAMBLE_LEN};
use hud_format::types::{Dump, Header, Provenance};
use hud_format::writer::{CaptureWriter, WriterOptions};

use super::ring::RingFiles;

/// A dump to write: why, around when, and from when on it holds events.
#[derive(Clone, Debug)]
pub struct DumpRequest {
    pub reason: &'static str,
    /// CLOCK_MONOTONIC ns: the moment dumped around.
    pub trigger_ns: u64,
    pub detail: String,
    /// Events from here on (the trigger minus `--before`).
    pub from_ns: u64,
    /// Written once the clock passes this (the trigger plus `--after`).
    pub due_ns: u64,
}

/// A dump written.
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    pub from_ns: u64,
    pub to_ns: u64,
}

/// The base file's frames after its preamble and header.
fn base_after_header(base: &Path) -> io::Result<Vec<u8>> {
    let bytes = fs::read(base)?;
    let at = PREAMBLE_LEN;
    let head: &[u8; FRAME_HEADER_LEN] = bytes
        .get(at..at + FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| io::Error::other("the ring's base file is cut short"))?;
    let header = FrameHeader::decode(head, at as u64).map_err(io::Error::other)?;
    let end = at + FRAME_HEADER_LEN + header.stored_len as usize;
    Ok(bytes.get(end..).unwrap_or_default().to_vec())
}

/// `YYYYmmddTHHMMSSZ` of a CLOCK_REALTIME time in ns.
pub fn utc_stamp(realtime_ns: u64) -> String {
    let seconds = (realtime_ns / 1_000_000_000) as libc::time_t;
    // SAFETY: gmtime_r fills the struct we own from a time we own.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&seconds, &mut tm);
        tm
    };
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Writes the dump `request` asks for into `out_dir`, from the ring's closed segments that
/// reach into its window. `header` is the recording's, `place` its first provenance.
pub fn write(
    out_dir: &Path,
    ring: &RingFiles,
    header: &Header,
    place: &Provenance,
    request: &DumpRequest,
    wall_ns: u64,
) -> io::Result<Written> {
    let segments: Vec<_> = ring
        .closed
        .iter()
        .filter(|s| s.end_ns >= request.from_ns)
        .collect();
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err(io::Error::other("the ring holds nothing of the window yet"));
    };
    let name = format!("hud-{}-{}.hudcap", utc_stamp(wall_ns), request.reason);
    let mut path = out_dir.join(&name);
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = out_dir.join(name.replace(".hudcap", &format!("-{n}.hudcap")));
    }
    let hidden = out_dir.join(format!(
        ".{}.partial",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&hidden)?;
    let result = (|| {
        let dump_header = Header {
            start_ns: first.start_ns,
            ..header.clone()
        };
        let mut w = CaptureWriter::new(
            io::BufWriter::with_capacity(1 << 20, file),
            &dump_header,
            WriterOptions::default(),
        )
        .map_err(io::Error::other)?;
        w.output_mut()
            .write_all(&base_after_header(&ring.base_path())?)?;
        w.write_provenance(&Provenance {
            dump: Some(Dump {
                reason: request.reason.into(),
                trigger_ns: request.trigger_ns,
                detail: request.detail.clone(),
                from_ns: first.start_ns,
                to_ns: last.end_ns,
                first_seq: first.first_seq,
            }),
            ..place.clone()
        })
        .map_err(io::Error::other)?;
        let mut out = w.into_inner().map_err(io::Error::other)?;
        let mut buf = Vec::new();
        for segment in &segments {
            buf.clear();
            File::open(&segment.path)?.read_to_end(&mut buf)?;
            out.write_all(&buf)?;
        }
        out.flush()?;
        Ok::<_, io::Error>(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&hidden);
        return Err(e);
    }
    fs::rename(&hidden, &path)?;
    let bytes = fs::metadata(&path).map_or(0, |m| m.len());
    Ok(Written {
        path,
        bytes,
        from_ns: first.start_ns,
        to_ns: last.end_ns,
    })
}

/// The dumps in `dir`, oldest first (their names sort by time).
pub fn dumps_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("hud-") && n.ends_with(".hudcap"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Removes the oldest dumps beyond `keep`; returns those removed.
pub fn prune(dir: &Path, keep: usize) -> Vec<PathBuf> {
    let dumps = dumps_in(dir);
    let extra = dumps.len().saturating_sub(keep);
    let gone: Vec<PathBuf> = dumps.into_iter().take(extra).collect();
    for path in &gone {
        let _ = fs::remove_file(path);
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_and_sort_by_time() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_764_849_600_000_000_000), "20251204T120000Z");
    }

    #[test]
    fn the_oldest_dumps_go_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "hud-20261204T110000Z-signal.hudcap",
            "hud-20261204T100000Z-blocked.hudcap",
            "hud-20261204T120000Z-request.hudcap",
            "other.txt",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let gone = prune(dir.path(), 2);
        assert_eq!(gone.len(), 1);
        assert!(gone[0].ends_with("hud-20261204T100000Z-blocked.hudcap"));
        assert!(dir.path().join("other.txt").exists());
        assert_eq!(dumps_in(dir.path()).len(), 2);
    }
}
