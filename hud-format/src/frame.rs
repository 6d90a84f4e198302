//! The container's fixed layouts: the file preamble and the frame header.
//!
//! ```text
//! preamble (16 B): "HUDCAPT\0" | major u16 | minor u16 | reserved u32
//! frame header (24 B): "HUDF" | kind u8 | codec u8 | reserved u16 | stored_len u32 | raw_len u32
//!                      | payload_crc u32 | header_crc u32      (all little endian)
//! payload (stored_len B): zstd(rkyv archive of raw_len bytes)
//! ```
//! The header checksum covers the 20 bytes before it, so a damaged length is caught before it is
//! used; the payload checksum covers the stored bytes.

use crate::error::Error;

/// First eight bytes of every capture.
pub const FILE_MAGIC: [u8; 8] = *b"HUDCAPT\0";
/// Size of the preamble.
pub const PREAMBLE_LEN: usize = 16;
/// Format major version this crate writes and the newest it reads. Bumped on incompatible change.
pub const FORMAT_MAJOR: u16 = 1;
/// Format minor version this crate writes. Minor versions only add; older readers ignore additions.
pub const FORMAT_MINOR: u16 = 4;

/// First four bytes of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"HUDF";
/// Size of a frame header.
pub const FRAME_HEADER_LEN: usize = 24;
/// Largest payload a frame may declare, stored or decompressed. Bounds every allocation a reader
/// makes for one frame, whatever the file says.
pub const MAX_FRAME_LEN: u32 = 64 << 20;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// The capture header ([`crate::types::Header`]). Always the first frame.
    Header,
    /// Events and metadata ([`crate::types::Chunk`]).
    Chunk,
    /// A piece of an embedded object file ([`crate::types::ObjectPart`]).
    Object,
    /// The index written at clean close ([`crate::types::Index`]). Always the last frame.
    Index,
    /// Registers and stack bytes for unwinding offline ([`crate::types::StackCopies`]; format
    /// 1.1).
    StackCopies,
    /// The Tokio task of each event ([`crate::types::EventTasks`]; format 1.2).
    Tasks,
    /// Exact poll durations, `--poll-probes` ([`crate::types::Polls`]; format 1.3).
    Polls,
    /// The Tokio task of each sample and off-CPU episode, aligned with the chunks
    /// ([`crate::types::ChunkTasks`]; format 1.3).
    ChunkTasks,
    /// Where the target ran: its ids in its namespaces, its container, and a flight-recorder
    /// dump's trigger ([`crate::types::Provenance`]; format 1.4).
    Provenance,
    /// A kind a newer minor version added: its checksummed header gives its length, and readers
    /// skip it (the versioning promise in docs/FORMAT.md).
    Unknown(u8),
}

impl FrameKind {
    /// The kind of a frame header's kind byte; 0 is never a kind.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => return None,
            1 => FrameKind::Header,
            2 => FrameKind::Chunk,
            3 => FrameKind::Object,
            4 => FrameKind::Index,
            5 => FrameKind::StackCopies,
            6 => FrameKind::Tasks,
            7 => FrameKind::Polls,
            8 => FrameKind::ChunkTasks,
            9 => FrameKind::Provenance,
            other => FrameKind::Unknown(other),
        })
    }

    pub fn to_u8(self) -> u8 {
        match self {
            FrameKind::Header => 1,
            FrameKind::Chunk => 2,
            FrameKind::Object => 3,
            FrameKind::Index => 4,
            FrameKind::StackCopies => 5,
            FrameKind::Tasks => 6,
            FrameKind::Polls => 7,
            FrameKind::ChunkTasks => 8,
            FrameKind::Provenance => 9,
            FrameKind::Unknown(v) => v,
        }
    }
}

/// How a payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
}

/// The version in a capture's preamble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Encodes the preamble this crate writes.
pub fn encode_preamble() -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..8].copy_from_slice(&FILE_MAGIC);
    out[8..10].copy_from_slice(&FORMAT_MAJOR.to_le_bytes());
    out[10..12].copy_from_slice(&FORMAT_MINOR.to_le_bytes());
    out
}

/// Checks the magic and version of a preamble. `bytes` may be shorter than a preamble (a capture
/// cut at its very start): that is [`Error::TooShort`].
pub fn decode_preamble(bytes: &[u8]) -> Result<Version, Error> {
    let magic_len = bytes.len().min(FILE_MAGIC.len());
    if bytes[..magic_len] != FILE_MAGIC[..magic_len] {
        return Err(Error::NotACapture {
            start: bytes[..magic_len].to_vec(),
        });
    }
    if bytes.len() < PREAMBLE_LEN {
        return Err(Error::TooShort { len: bytes.len() });
    }
    let version = Version {
        major: u16::from_le_bytes([bytes[8], bytes[9]]),
        minor: u16::from_le_bytes([bytes[10], bytes[11]]),
    };
    if version.major > FORMAT_MAJOR {
        return Err(Error::NewerVersion {
            found: version,
            supported: FORMAT_MAJOR,
        });
    }
    if version.major == 0 {
        return Err(Error::NotACapture {
            start: bytes[..8].to_vec(),
        });
    }
    Ok(version)
}

/// A decoded, checksum-verified frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: FrameKind,
    pub codec: Codec,
    pub stored_len: u32,
    pub raw_len: u32,
    pub payload_crc: u32,
}

impl FrameHeader {
    /// Builds the header for `stored` bytes that decompress to `raw_len` bytes.
    pub fn for_payload(kind: FrameKind, codec: Codec, stored: &[u8], raw_len: usize) -> Self {
        Self {
            kind,
            codec,
            stored_len: stored.len() as u32,
            raw_len: raw_len as u32,
            payload_crc: crc32fast::hash(stored),
        }
    }

    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[..4].copy_from_slice(&FRAME_MAGIC);
        out[4] = self.kind.to_u8();
        out[5] = self.codec as u8;
        out[8..12].copy_from_slice(&self.stored_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&out[..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a frame header at byte `offset` of the capture (for messages).
    pub fn decode(bytes: &[u8; FRAME_HEADER_LEN], offset: u64) -> Result<Self, Error> {
        let corrupt = |reason: String| Error::CorruptFrame { offset, reason };
        if bytes[..4] != FRAME_MAGIC {
            return Err(corrupt("no frame marker where a frame should start".into()));
        }
        let want = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        if crc32fast::hash(&bytes[..20]) != want {
            return Err(corrupt("frame header checksum mismatch".into()));
        }
        let kind = FrameKind::from_u8(bytes[4])
            .ok_or_else(|| corrupt(format!("unknown frame kind {}", bytes[4])))?;
        let codec = match bytes[5] {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            other => return Err(corrupt(format!("unknown codec {other}"))),
        };
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let header = Self {
            kind,
            codec,
            stored_len: u32_at(8),
            raw_len: u32_at(12),
            payload_crc: u32_at(16),
        };
        if header.stored_len > MAX_FRAME_LEN || header.raw_len > MAX_FRAME_LEN {
            return Err(corrupt(format!(
                "frame declares {} stored / {} raw bytes, over the {} byte limit",
                header.stored_len, header.raw_len, MAX_FRAME_LEN
            )));
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = FrameHeader::for_payload(FrameKind::Chunk, Codec::Zstd, b"abc", 10);
        let bytes = h.encode();
        assert_eq!(FrameHeader::decode(&bytes, 0).unwrap(), h);
        for bit in 0..FRAME_HEADER_LEN * 8 {
            let mut bad = bytes;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(FrameHeader::decode(&bad, 0).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn preamble_versions() {
        assert_eq!(
            decode_preamble(&encode_preamble()).unwrap(),
            Version {
                major: FORMAT_MAJOR,
                minor: FORMAT_MINOR
            }
        );
        let mut newer = encode_preamble();
        newer[8..10].copy_from_slice(&(FORMAT_MAJOR + 1).to_le_bytes());
        assert!(matches!(
            decode_preamble(&newer),
            Err(Error::NewerVersion { .. })
        ));
        assert!(matches!(
            decode_preamble(b"HUD"),
            Err(Error::TooShort { .. })
        ));
        assert!(matches!(
            decode_preamble(b"PERFILE2xxxxxxxxxx"),
            Err(Error::NotACapture { .. })
        ));
    }
}
