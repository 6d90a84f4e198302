//! Locating frames in a whole capture: what is readable, what is damaged, and how it ends.
//!
//! Strict reading stops at the first bad frame header. Salvaging skips it: it looks for the next
//! place where a frame header with a valid checksum starts, and records the bytes in between as
//! [`Damage`]. A frame header's checksum covers its lengths, so a frame found this way is framed
//! correctly; its payload has a checksum of its own, checked when it is decoded.

use crate::error::Error;
use crate::frame::{
    FrameHeader, FrameKind, FILE_MAGIC, FRAME_HEADER_LEN, FRAME_MAGIC, PREAMBLE_LEN,
};

use super::{Budget, Ending, FrameRef, ReadOptions};

/// Why the bytes after a preamble found where a frame should start are not read.
pub(super) const SECOND_CAPTURE: &str =
    "a second capture starts here (captures concatenated?); only the first is read";

/// Bytes of a capture that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the unreadable bytes start.
    pub offset: u64,
    /// How many bytes were skipped.
    pub len: u64,
    /// The kind of frame lost, when its header was readable.
    pub kind: Option<FrameKind>,
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Some(kind) => write!(
                f,
                "{} frame at byte {} ({} bytes) skipped: {}",
                kind_name(kind),
                self.offset,
                self.len,
                self.reason
            ),
            None => write!(
                f,
                "bytes {}..{} skipped: {}",
                self.offset,
                self.offset + self.len,
                self.reason
            ),
        }
    }
}

/// A frame kind for messages.
pub fn kind_name(kind: FrameKind) -> String {
    match kind {
        FrameKind::Header => "header".into(),
        FrameKind::Chunk => "chunk".into(),
        FrameKind::Object => "embedded object".into(),
        FrameKind::Index => "index".into(),
        FrameKind::StackCopies => "stack copies".into(),
        FrameKind::Tasks => "tasks".into(),
        FrameKind::Polls => "polls".into(),
        FrameKind::ChunkTasks => "chunk tasks".into(),
        FrameKind::Provenance => "provenance".into(),
        FrameKind::Unknown(k) => format!("kind-{k}"),
    }
}

/// What a scan found.
pub(super) struct Scan {
    pub frames: Vec<FrameRef>,
    pub ending: Ending,
    pub damage: Vec<Damage>,
}

/// Locates every whole frame after the preamble, within the options' decompression budget.
pub(super) fn scan_frames(data: &[u8], options: &ReadOptions) -> Result<Scan, Error> {
    let mut budget = Budget::new(options, data.len() as u64);
    let mut scan = Scan {
        frames: Vec::new(),
        ending: Ending::Clean,
        damage: Vec::new(),
    };
    let mut pos = PREAMBLE_LEN;
    loop {
        let rest = &data[pos..];
        if rest.is_empty() {
            return Ok(scan);
        }
        if rest.len() < FRAME_HEADER_LEN || looks_like_unwritten_tail(rest) {
            scan.ending = Ending::Truncated { offset: pos as u64 };
            return Ok(scan);
        }
        if rest.starts_with(&FILE_MAGIC) {
            // Another capture appended to this one (`cat a b`): its events would be counted
            // twice or mixed with this target's.
            let reason = SECOND_CAPTURE;
            if !options.salvage {
                return Err(Error::CorruptFrame {
                    offset: pos as u64,
                    reason: reason.into(),
                });
            }
            scan.damage.push(Damage {
                offset: pos as u64,
                len: rest.len() as u64,
                kind: None,
                reason: reason.into(),
            });
            scan.ending = Ending::Unclosed;
            return Ok(scan);
        }
        let head: &[u8; FRAME_HEADER_LEN] =
            rest[..FRAME_HEADER_LEN].try_into().expect("length checked");
        let header = match FrameHeader::decode(head, pos as u64) {
            Ok(header) => header,
            Err(e) if options.salvage => {
                let reason = e.into_reason();
                match next_frame_start(data, pos + 1) {
                    Some(next) => {
                        scan.damage.push(Damage {
                            offset: pos as u64,
                            len: (next - pos) as u64,
                            kind: None,
                            reason,
                        });
                        pos = next;
                        continue;
                    }
                    None => {
                        scan.damage.push(Damage {
                            offset: pos as u64,
                            len: rest.len() as u64,
                            kind: None,
                            reason: format!("{reason}; no readable frame after it"),
                        });
                        scan.ending = Ending::Truncated { offset: pos as u64 };
                        return Ok(scan);
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let frame_len = FRAME_HEADER_LEN + header.stored_len as usize;
        if rest.len() < frame_len {
            scan.ending = Ending::Truncated { offset: pos as u64 };
            return Ok(scan);
        }
        budget.take(header.raw_len, pos as u64)?;
        scan.frames.push(FrameRef {
            offset: pos as u64,
            header,
        });
        if header.kind == FrameKind::Index {
            let after = pos + frame_len;
            if !data[after..].iter().all(|b| *b == 0) {
                let reason = "bytes after the closing index".to_string();
                if !options.salvage {
                    return Err(Error::CorruptFrame {
                        offset: after as u64,
                        reason,
                    });
                }
                scan.damage.push(Damage {
                    offset: after as u64,
                    len: (data.len() - after) as u64,
                    kind: None,
                    reason: format!("{reason} (ignored)"),
                });
            }
            return Ok(scan);
        }
        pos += frame_len;
    }
}

/// The next offset at or after `from` where a frame header with a valid checksum starts.
fn next_frame_start(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + FRAME_HEADER_LEN <= data.len() {
        let found = data[at..]
            .windows(FRAME_MAGIC.len())
            .position(|w| w == FRAME_MAGIC)?;
        at += found;
        if let Some(head) = data.get(at..at + FRAME_HEADER_LEN) {
            let head: &[u8; FRAME_HEADER_LEN] = head.try_into().expect("length checked");
            if FrameHeader::decode(head, at as u64).is_ok() {
                return Some(at);
            }
        }
        at += 1;
    }
    None
}

/// A file preallocated or cut by a full disk can end in zeros: that is a cut, not corruption.
fn looks_like_unwritten_tail(rest: &[u8]) -> bool {
    rest[..FRAME_MAGIC.len().min(rest.len())] != FRAME_MAGIC && rest.iter().all(|b| *b == 0)
}
