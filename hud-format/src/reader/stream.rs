//! Reading a capture from a pipe or socket, frame by frame as it arrives.
//!
//! The preamble is checked from the first 16 bytes, so a stream that is not a capture is refused
//! before anything else is read. Every frame's declared size is charged to the same decompression
//! budget as a file's, measured against the bytes read so far. Salvaging, a frame whose header is
//! damaged is skipped by looking for the next valid frame header, a byte at a time.

use std::io::{BufReader, Read};

use rkyv::rancor;

use crate::error::Error;
use crate::frame::{
    decode_preamble, FrameHeader, FrameKind, Version, FILE_MAGIC, FRAME_HEADER_LEN, FRAME_MAGIC,
    MAX_FRAME_LEN, PREAMBLE_LEN,
};
use crate::types::{ArchivedObjectPart, Header, ObjectPart};

use super::{
    decode_stored, invalid, Budget, ChunkData, Damage, Ending, FrameRef, Payload, ReadOptions,
};

/// Salvaging a stream, give up after this many bytes without a frame: a frame is at most
/// [`MAX_FRAME_LEN`] long, so this spans several, and an endless stream of garbage after a valid
/// start is not read for ever.
const MAX_RESYNC: u64 = 4 * MAX_FRAME_LEN as u64;

/// One frame read from a stream, decompressed.
pub struct StreamFrame {
    pub offset: u64,
    pub kind: FrameKind,
    pub payload: Payload,
}

impl StreamFrame {
    /// The header, when this is the header frame.
    pub fn header(&self) -> Result<Header, Error> {
        let archived =
            rkyv::access::<crate::types::ArchivedHeader, rancor::BoxedError>(&self.payload)
                .map_err(|e| invalid(self.offset, FrameKind::Header, e))?;
        rkyv::deserialize::<Header, rancor::BoxedError>(archived)
            .map_err(|e| invalid(self.offset, FrameKind::Header, e))
    }

    /// The embedded object part, when this is an object frame.
    pub fn into_object_part(self) -> Result<(u64, ObjectPart), Error> {
        let archived = rkyv::access::<ArchivedObjectPart, rancor::BoxedError>(&self.payload)
            .map_err(|e| invalid(self.offset, FrameKind::Object, e))?;
        let part = rkyv::deserialize::<ObjectPart, rancor::BoxedError>(archived)
            .map_err(|e| invalid(self.offset, FrameKind::Object, e))?;
        Ok((self.offset, part))
    }

    /// The stack copies, validated, when this is a stack-copies frame.
    pub fn into_stack_copies(self) -> Result<super::StackCopiesData, Error> {
        super::StackCopiesData::from_payload(self.offset, self.payload)
    }

    /// The tasks, validated, when this is a tasks frame (format 1.2).
    pub fn into_tasks(self) -> Result<crate::types::EventTasks, Error> {
        super::tasks_from_payload(self.offset, &self.payload)
    }

    /// The events' tasks cut by chunk, validated, when this is a chunk-tasks frame (format
    /// 1.3).
    pub fn into_chunk_tasks(self) -> Result<Vec<crate::chunk_tasks::ChunkRows>, Error> {
        super::chunk_tasks_from_payload(self.offset, &self.payload)
    }

    /// The poll durations, validated, when this is a polls frame (format 1.3).
    pub fn into_polls(self) -> Result<crate::types::Polls, Error> {
        super::polls_from_payload(self.offset, &self.payload)
    }

    /// Where the target ran, validated, when this is a provenance frame (format 1.4).
    pub fn into_provenance(self) -> Result<crate::types::Provenance, Error> {
        super::provenance_from_payload(self.offset, &self.payload)
    }

    /// The chunk, validated, when this is a chunk frame.
    pub fn into_chunk(self) -> Result<ChunkData, Error> {
        ChunkData::from_payload(self.offset, self.payload)
    }
}

/// Reads frames one at a time from a pipe or socket, as they arrive.
pub struct FrameStream<R: Read> {
    reader: BufReader<R>,
    offset: u64,
    version: Version,
    ending: Option<Ending>,
    options: ReadOptions,
    budget: Budget,
    damage: Vec<Damage>,
}

impl<R: Read> FrameStream<R> {
    /// Reads and checks the preamble; damage is an error.
    pub fn new(reader: R) -> Result<Self, Error> {
        Self::with_options(reader, ReadOptions::default())
    }

    /// Reads and checks the preamble, then reads as `options` say.
    pub fn with_options(reader: R, options: ReadOptions) -> Result<Self, Error> {
        // Large enough that a pipe is read in few calls; small, since the stream may be live.
        let mut reader = BufReader::with_capacity(64 << 10, reader);
        let mut preamble = [0u8; PREAMBLE_LEN];
        let n = read_full(&mut reader, &mut preamble)?;
        let version = decode_preamble(&preamble[..n])?;
        Ok(Self {
            reader,
            offset: PREAMBLE_LEN as u64,
            version,
            ending: None,
            budget: Budget::for_stream(&options),
            options,
            damage: Vec::new(),
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// How the stream ended, once [`FrameStream::next_frame`] returned `None`.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// What was skipped so far (salvaging): damaged frame headers and the bytes up to the next
    /// readable frame. Payloads that fail to decode are the caller's to record.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Whether damaged frames are skipped rather than errors.
    pub fn salvaging(&self) -> bool {
        self.options.salvage
    }

    /// The next frame, or `None` at the end of the stream (see [`FrameStream::ending`]).
    pub fn next_frame(&mut self) -> Result<Option<StreamFrame>, Error> {
        self.next_raw()?.map(RawFrame::decode).transpose()
    }

    /// The next frame as stored (checked, not decompressed), or `None` at the end of the stream.
    /// A reader that must keep up with a writer (a live pipe) reads with this and decodes
    /// elsewhere.
    pub fn next_raw(&mut self) -> Result<Option<RawFrame>, Error> {
        if self.ending.is_some() {
            return Ok(None);
        }
        let mut head = [0u8; FRAME_HEADER_LEN];
        let n = read_full(&mut self.reader, &mut head)?;
        if n == 0 {
            self.ending = Some(Ending::Unclosed);
            return Ok(None);
        }
        if n < FRAME_HEADER_LEN {
            self.end_truncated();
            return Ok(None);
        }
        let header = match self.header_at(&mut head)? {
            Some(header) => header,
            None => return Ok(None),
        };
        self.budget
            .saw(FRAME_HEADER_LEN as u64 + u64::from(header.stored_len));
        self.budget.take(header.raw_len, self.offset)?;
        // Bounded by MAX_FRAME_LEN, checked in decode.
        let mut stored = vec![0u8; header.stored_len as usize];
        let n = read_full(&mut self.reader, &mut stored)?;
        if n < stored.len() {
            self.end_truncated();
            return Ok(None);
        }
        let frame = RawFrame {
            offset: self.offset,
            header,
            stored,
        };
        self.offset += (FRAME_HEADER_LEN + frame.stored.len()) as u64;
        if header.kind == FrameKind::Index {
            self.ending = Some(Ending::Clean);
        }
        Ok(Some(frame))
    }

    fn end_truncated(&mut self) {
        self.ending = Some(Ending::Truncated {
            offset: self.offset,
        });
    }

    /// Decodes the frame header in `head`; salvaging, slides past damage to the next valid
    /// header (`head` then holds it and `offset` is its position). `None`: the stream ended.
    fn header_at(
        &mut self,
        head: &mut [u8; FRAME_HEADER_LEN],
    ) -> Result<Option<FrameHeader>, Error> {
        let start = self.offset;
        let mut first_error = None;
        loop {
            if head.starts_with(&FILE_MAGIC) {
                let reason = super::scan::SECOND_CAPTURE;
                if !self.options.salvage {
                    return Err(Error::CorruptFrame {
                        offset: self.offset,
                        reason: reason.into(),
                    });
                }
                self.note_skipped(start, first_error.take());
                self.damage.push(Damage {
                    offset: self.offset,
                    len: 0,
                    kind: None,
                    reason: reason.into(),
                });
                self.ending = Some(Ending::Unclosed);
                return Ok(None);
            }
            let error = if head.starts_with(&FRAME_MAGIC) {
                match FrameHeader::decode(head, self.offset) {
                    Ok(header) => {
                        self.note_skipped(start, first_error);
                        return Ok(Some(header));
                    }
                    Err(e) => e,
                }
            } else {
                Error::CorruptFrame {
                    offset: self.offset,
                    reason: "no frame marker where a frame should start".into(),
                }
            };
            if !self.options.salvage {
                return Err(error);
            }
            first_error.get_or_insert(error);
            if self.offset - start > MAX_RESYNC {
                return Err(Error::CorruptFrame {
                    offset: start,
                    reason: format!(
                        "no readable frame in the {MAX_RESYNC} bytes after a damaged one: the \
                         rest of the stream is not a capture"
                    ),
                });
            }
            // Slide to the next byte that may start a frame (both magics begin with 'H'); past
            // the bytes in `head`, skip through the reader's buffer without decoding.
            let shift = head[1..]
                .iter()
                .position(|&b| b == FRAME_MAGIC[0])
                .map_or(FRAME_HEADER_LEN, |p| p + 1);
            let skipped = if shift == FRAME_HEADER_LEN {
                self.skip_to(FRAME_MAGIC[0])?
            } else {
                0
            };
            head.copy_within(shift.., 0);
            let n = read_full(&mut self.reader, &mut head[FRAME_HEADER_LEN - shift..])?;
            self.offset += (shift as u64) + skipped;
            self.budget.saw(n as u64 + skipped);
            if n < shift {
                let mut error = first_error.take();
                if let Some(Error::CorruptFrame { reason, .. }) = &mut error {
                    reason.push_str("; no readable frame after it");
                }
                self.offset += (FRAME_HEADER_LEN - shift + n) as u64;
                self.note_skipped(start, error);
                self.ending = Some(Ending::Truncated { offset: start });
                return Ok(None);
            }
        }
    }

    /// Consumes bytes up to (not including) the next `byte`, or to the end of the stream (or
    /// [`MAX_RESYNC`] bytes); returns how many.
    fn skip_to(&mut self, byte: u8) -> Result<u64, Error> {
        use std::io::BufRead;
        let mut skipped = 0u64;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading the capture stream", e)),
            };
            if buf.is_empty() {
                return Ok(skipped);
            }
            let (take, found) = match buf.iter().position(|&b| b == byte) {
                Some(p) => (p, true),
                None => (buf.len(), false),
            };
            self.reader.consume(take);
            skipped += take as u64;
            if found || skipped > MAX_RESYNC {
                return Ok(skipped);
            }
        }
    }

    /// Records the bytes from `start` to the current offset as skipped for `error`.
    fn note_skipped(&mut self, start: u64, error: Option<Error>) {
        let Some(error) = error else { return };
        let reason = error.into_reason();
        self.damage.push(Damage {
            offset: start,
            len: self.offset - start,
            kind: None,
            reason,
        });
    }
}

/// A frame read from a stream, still compressed.
pub struct RawFrame {
    pub offset: u64,
    header: FrameHeader,
    stored: Vec<u8>,
}

impl RawFrame {
    pub fn kind(&self) -> FrameKind {
        self.header.kind
    }

    /// Where the frame is and its checked header.
    pub fn frame_ref(&self) -> FrameRef {
        FrameRef {
            offset: self.offset,
            header: self.header,
        }
    }

    /// Checks and decompresses the payload.
    pub fn decode(self) -> Result<StreamFrame, Error> {
        let payload = decode_stored(&self.stored, &self.header, self.offset)?;
        Ok(StreamFrame {
            offset: self.offset,
            kind: self.header.kind,
            payload,
        })
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
pub(super) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading the capture stream", e)),
        }
    }
    Ok(filled)
}
