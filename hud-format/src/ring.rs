//! A flight recorder's ring on disk (`hud-record --flight-recorder DIR`): in `DIR/ring`, a base
//! file (the preamble, the header frame and the embedded objects) and numbered segment files,
//! each a run of frames that starts where the writer started a segment
//! (`CaptureWriter::start_segment`). The base followed by any run of consecutive segments is an
//! ordinary capture, so the ring reads as one ([`read`]) from its oldest segment on; the last
//! segment may still be written (its last frame cut).

use std::io;
use std::path::{Path, PathBuf};

/// The ring's directory inside the flight recorder's.
pub const RING_DIR: &str = "ring";
/// The base file's name.
pub const BASE: &str = "base.hudseg";
/// The pid of the recorder writing the ring, while it runs (`hud-record --dump` signals it).
pub const PID_FILE: &str = "recorder.pid";

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("seg-{n:08}.hudseg")
}

/// The ring's directory when `path` is a flight recorder's directory or the ring's own.
pub fn ring_dir(path: &Path) -> Option<PathBuf> {
    [path.join(RING_DIR), path.to_path_buf()]
        .into_iter()
        .find(|dir| dir.join(BASE).is_file())
}

/// The base's bytes, then every segment's still there, oldest first: one capture. A segment
/// removed by the recorder while this reads is passed over (the next one starts afresh).
pub fn read(ring: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(ring.join(BASE))?;
    let mut segments: Vec<PathBuf> = std::fs::read_dir(ring)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".hudseg"))
        })
        .collect();
    segments.sort();
    for segment in segments {
        match std::fs::read(&segment) {
            Ok(more) => bytes.extend_from_slice(&more),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(bytes)
}
