//! Frame-level editing of captures, for tests and fuzzing: take a capture apart into frames with
//! their decompressed payloads, change them (or the archives inside), and seal it again with
//! correct lengths and checksums. A reader then meets the change itself, not a checksum error:
//! this is how crafted captures (a chunk's ids moved, a bomb of zeros, frames repeated or
//! reordered) are made.

use crate::error::Error;
use crate::frame::{encode_preamble, Codec, FrameHeader, FrameKind, FRAME_HEADER_LEN};
use crate::reader::{Capture, ReadOptions};
use crate::types::Chunk;

/// One frame, decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFrame {
    pub kind: FrameKind,
    /// The rkyv archive (or any bytes, for crafted frames).
    pub payload: Vec<u8>,
}

impl OwnedFrame {
    /// A chunk frame holding `chunk`.
    pub fn from_chunk(chunk: &Chunk) -> Result<Self, Error> {
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(chunk)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(Self {
            kind: FrameKind::Chunk,
            payload: bytes.to_vec(),
        })
    }

    /// The chunk this frame holds (validated as a reader would).
    pub fn chunk(&self) -> Result<Chunk, Error> {
        let mut payload = crate::reader::Payload::with_capacity(self.payload.len());
        payload.extend_from_slice(&self.payload);
        Ok(crate::reader::ChunkData::from_payload(0, payload)?.to_owned_chunk())
    }
}

/// Every frame of a readable capture, in file order (the preamble is implied).
pub fn split(bytes: &[u8]) -> Result<Vec<OwnedFrame>, Error> {
    let capture = Capture::from_bytes_with(bytes.to_vec(), &ReadOptions::default())?;
    capture
        .frames()
        .iter()
        .map(|f| {
            let start = f.offset as usize + FRAME_HEADER_LEN;
            let stored = &bytes[start..start + f.header.stored_len as usize];
            let payload = match f.header.codec {
                Codec::Raw => stored.to_vec(),
                Codec::Zstd => zstd::bulk::decompress(stored, f.header.raw_len as usize)
                    .map_err(|e| Error::io("decompressing a frame", e))?,
            };
            Ok(OwnedFrame {
                kind: f.header.kind,
                payload,
            })
        })
        .collect()
}

/// A capture of these frames, each stored with `codec`, with correct lengths and checksums.
pub fn seal(frames: &[OwnedFrame], codec: Codec) -> Vec<u8> {
    let mut out = encode_preamble().to_vec();
    for frame in frames {
        append_frame(&mut out, frame.kind, &frame.payload, codec);
    }
    out
}

/// Appends one frame holding `payload`, stored with `codec`.
pub fn append_frame(out: &mut Vec<u8>, kind: FrameKind, payload: &[u8], codec: Codec) {
    let stored = match codec {
        Codec::Raw => payload.to_vec(),
        // Level 1: crafted captures are made in loops (fuzzing); their size does not matter.
        Codec::Zstd => zstd::bulk::compress(payload, 1).expect("compressing to memory"),
    };
    let header = FrameHeader::for_payload(kind, codec, &stored, payload.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&stored);
}
