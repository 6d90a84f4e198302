//! Reads captures: [`Capture`] over a whole file (mmap) or buffer, [`FrameStream`] over a pipe.
//!
//! Nothing is trusted: every frame header is checksummed before its lengths are used, lengths are
//! bounded by [`MAX_FRAME_LEN`], the sum of what frames say they decompress to is bounded by a
//! [`Budget`] relative to the capture's size, payloads are checksummed, decompressed into a buffer
//! of exactly the declared size, and validated by bytecheck before any archived field is read. A
//! capture cut at any byte reads up to its last whole frame and says it was cut ([`Ending`]);
//! salvaging ([`ReadOptions::salvage`]), a damaged frame is skipped and recorded ([`Damage`]).

mod scan;
mod stacks;
mod stream;

pub use scan::{kind_name, Damage};
pub use stacks::{StackFrames, Stacks};
pub use stream::{FrameStream, RawFrame, StreamFrame};

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::columns::delta_count;
use crate::error::Error;
use crate::frame::{
    decode_preamble, Codec, FrameHeader, FrameKind, Version, FRAME_HEADER_LEN, MAX_FRAME_LEN,
    PREAMBLE_LEN,
};
use crate::types::{
    ArchivedChunk, ArchivedIndex, ArchivedObjectPart, ArchivedStackCopies, Chunk, Header, Index,
    ObjectPart,
};

/// Decompressed payloads are aligned for rkyv's archived types.
pub type Payload = AlignedVec<16>;

/// A capture may declare at most this many times its own size in decompressed bytes (real
/// captures: 3 to 5 times; a compression bomb: thousands), plus [`DECOMPRESSION_SLACK`].
pub const DECOMPRESSION_RATIO: u64 = 32;
/// What any capture may decompress to whatever its size: one frame's largest payload.
pub const DECOMPRESSION_SLACK: u64 = MAX_FRAME_LEN as u64;
/// The absolute cap on what a capture decompresses to, unless [`ReadOptions::max_decompressed`]
/// says otherwise.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 16 << 30;

/// How a capture is read.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Skip damaged frames (recording them as [`Damage`]) instead of failing on the first.
    pub salvage: bool,
    /// The most bytes the capture's frames may decompress to, in all. `None`: the smaller of
    /// [`DECOMPRESSION_RATIO`] times the capture's size (plus [`DECOMPRESSION_SLACK`]) and
    /// [`DEFAULT_MAX_DECOMPRESSED`]. A value given here replaces both bounds.
    pub max_decompressed: Option<u64>,
}

impl ReadOptions {
    /// Damaged frames are skipped and recorded.
    pub fn salvaging() -> Self {
        Self {
            salvage: true,
            ..Self::default()
        }
    }
}

/// What a capture may still decompress to. Charged with each frame's declared raw size before
/// anything is allocated for it, so no crafted capture makes a reader allocate more than a
/// bounded multiple of its own size, however its frames are arranged.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Explicit limit (replaces the relative one).
    fixed: Option<u64>,
    /// Bytes of the capture seen (the whole file, or what a stream delivered so far).
    seen: u64,
    taken: u64,
}

impl Budget {
    fn new(options: &ReadOptions, file_len: u64) -> Self {
        Self {
            fixed: options.max_decompressed,
            seen: file_len,
            taken: 0,
        }
    }

    fn for_stream(options: &ReadOptions) -> Self {
        Self::new(options, PREAMBLE_LEN as u64)
    }

    /// The stream delivered `bytes` more.
    fn saw(&mut self, bytes: u64) {
        self.seen = self.seen.saturating_add(bytes);
    }

    /// The current limit.
    pub fn limit(&self) -> u64 {
        self.fixed.unwrap_or_else(|| {
            self.seen
                .saturating_mul(DECOMPRESSION_RATIO)
                .saturating_add(DECOMPRESSION_SLACK)
                .min(DEFAULT_MAX_DECOMPRESSED)
        })
    }

    /// Charges a frame at `offset` that decompresses to `raw_len` bytes.
    fn take(&mut self, raw_len: u32, offset: u64) -> Result<(), Error> {
        self.taken = self.taken.saturating_add(u64::from(raw_len));
        if self.taken > self.limit() {
            return Err(Error::OverBudget {
                offset,
                declared: self.taken,
                limit: self.limit(),
                explicit: self.fixed.is_some(),
            });
        }
        Ok(())
    }
}

/// How the capture ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Closed cleanly by its writer: the last frame is the index.
    Clean,
    /// Ends on a whole frame but has no index: the recorder was killed or the pipe closed early.
    Unclosed,
    /// Cut inside a frame at byte `offset`; everything before it is readable.
    Truncated { offset: u64 },
}

impl Ending {
    /// A one-line notice for users, or `None` when the capture was closed cleanly.
    pub fn notice(&self) -> Option<String> {
        match self {
            Ending::Clean => None,
            Ending::Unclosed => Some(
                "the capture was not closed cleanly (recorder killed, or still recording?); \
                 reading every whole frame"
                    .into(),
            ),
            Ending::Truncated { offset } => Some(format!(
                "the capture is truncated at byte {offset}; reading everything before it"
            )),
        }
    }
}

/// Where a frame is in the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Offset of the frame header.
    pub offset: u64,
    pub header: FrameHeader,
}

impl FrameRef {
    fn payload_range(&self) -> std::ops::Range<usize> {
        let start = self.offset as usize + FRAME_HEADER_LEN;
        start..start + self.header.stored_len as usize
    }
}

enum Source {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Source {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
        }
    }
}

/// A whole capture, its frames located and its header and index read.
pub struct Capture {
    source: Source,
    version: Version,
    header: Header,
    frames: Vec<FrameRef>,
    index: Option<Index>,
    ending: Ending,
    damage: Vec<Damage>,
    salvage: bool,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("version", &self.version)
            .field("frames", &self.frames.len())
            .field("ending", &self.ending)
            .finish()
    }
}

impl Capture {
    /// Maps the file at `path` and reads its structure; any damage is an error.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with(path, &ReadOptions::default())
    }

    /// Maps the file at `path` and reads its structure as `options` say. Only a regular file is
    /// mapped: a FIFO, a device or a socket is refused without blocking (read those with
    /// [`FrameStream`]).
    pub fn open_with(path: &Path, options: &ReadOptions) -> Result<Self, Error> {
        let file = open_regular(path)?;
        Self::from_file(&file, &path.display().to_string(), options)
    }

    /// Maps an open regular file.
    pub fn from_file(
        file: &std::fs::File,
        shown: &str,
        options: &ReadOptions,
    ) -> Result<Self, Error> {
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {shown}"), e))?
            .len();
        if len == 0 {
            return Err(Error::TooShort { len: 0 });
        }
        // SAFETY: the map is read-only. A capture being appended to only grows; a capture truncated
        // by someone else while we read it is outside what any mmap reader can defend against.
        let map = unsafe { memmap2::Mmap::map(file) }
            .map_err(|e| Error::io(format!("mapping {shown}"), e))?;
        Self::from_source(Source::Mapped(map), options)
    }

    /// Reads a capture held in memory; any damage is an error.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        Self::from_bytes_with(bytes, &ReadOptions::default())
    }

    /// Reads a capture held in memory as `options` say.
    pub fn from_bytes_with(bytes: Vec<u8>, options: &ReadOptions) -> Result<Self, Error> {
        Self::from_source(Source::Owned(bytes), options)
    }

    /// Reads a whole capture from a stream, then like [`Capture::from_bytes`]. The preamble is
    /// checked first, and what is read after it is bounded by `options.max_decompressed` (or
    /// [`DEFAULT_MAX_DECOMPRESSED`]): a stream that is not a capture is refused at once, an
    /// endless one is not read into memory. Analysis reads streams frame by frame instead
    /// ([`FrameStream`]); this is for tools that want a [`Capture`].
    pub fn from_reader(mut reader: impl Read, options: &ReadOptions) -> Result<Self, Error> {
        let mut preamble = [0u8; PREAMBLE_LEN];
        let n = stream::read_full(&mut reader, &mut preamble)?;
        decode_preamble(&preamble[..n])?;
        let limit = options.max_decompressed.unwrap_or(DEFAULT_MAX_DECOMPRESSED);
        let mut bytes = preamble[..n].to_vec();
        reader
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading the capture stream", e))?;
        Self::from_bytes_with(bytes, options)
    }

    fn from_source(source: Source, options: &ReadOptions) -> Result<Self, Error> {
        let version = decode_preamble(&source[..source.len().min(PREAMBLE_LEN)])?;
        let scan::Scan {
            mut frames,
            mut ending,
            damage,
        } = scan::scan_frames(&source, options)?;
        let first = frames.first().ok_or(Error::MissingHeader)?;
        if first.header.kind != FrameKind::Header || first.offset != PREAMBLE_LEN as u64 {
            // Salvaging cannot invent a header: the target, clock and options are in it.
            return Err(match damage.first() {
                Some(d) if d.offset == PREAMBLE_LEN as u64 => Error::CorruptFrame {
                    offset: d.offset,
                    reason: format!("the header frame is unreadable: {}", d.reason),
                },
                _ => Error::MissingHeader,
            });
        }
        let payload = decode_payload(&source, first)?;
        let archived = rkyv::access::<crate::types::ArchivedHeader, rancor::BoxedError>(&payload)
            .map_err(|e| invalid(first.offset, FrameKind::Header, e))?;
        let header: Header = rkyv::deserialize::<Header, rancor::BoxedError>(archived)
            .map_err(|e| invalid(first.offset, FrameKind::Header, e))?;
        let mut index = None;
        if let Some(last) = frames
            .last()
            .copied()
            .filter(|f| f.header.kind == FrameKind::Index)
        {
            index = decode_index(&source, &last);
            if index.is_none() {
                // A damaged index only costs speed: read the frames before it as an unclosed capture.
                ending = Ending::Truncated {
                    offset: last.offset,
                };
                frames.pop();
            }
        } else if ending == Ending::Clean {
            ending = Ending::Unclosed;
        }
        Ok(Self {
            source,
            version,
            header,
            frames,
            index,
            ending,
            damage,
            salvage: options.salvage,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The index, present when the capture was closed cleanly.
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }

    pub fn ending(&self) -> &Ending {
        &self.ending
    }

    /// What the scan skipped (salvaging): damaged frame headers, bytes after the index, a second
    /// capture appended. Payloads that fail to decode are found when they are decoded.
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Whether it was opened to salvage damaged frames.
    pub fn salvaging(&self) -> bool {
        self.salvage
    }

    /// Every whole frame, in file order.
    pub fn frames(&self) -> &[FrameRef] {
        &self.frames
    }

    /// Size of the capture in bytes.
    pub fn len(&self) -> u64 {
        self.source.len() as u64
    }

    /// Whether the capture holds no bytes (never true for an opened capture).
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Decompresses and validates every chunk, in parallel on the current rayon pool (use
    /// `ThreadPool::install` to choose the thread count). Returned in file order.
    pub fn chunks(&self) -> Result<Vec<ChunkData>, Error> {
        self.frames
            .par_iter()
            .filter(|f| f.header.kind == FrameKind::Chunk)
            .map(|f| ChunkData::decode(&self.source, f))
            .collect()
    }

    /// Decompresses and validates one stack-copies frame (format 1.1).
    pub fn stack_copies(&self, frame: &FrameRef) -> Result<StackCopiesData, Error> {
        StackCopiesData::decode(&self.source, frame)
    }

    /// A tasks frame (format 1.2), validated and read.
    pub fn tasks(&self, frame: &FrameRef) -> Result<crate::types::EventTasks, Error> {
        let payload = decode_payload(&self.source, frame)?;
        tasks_from_payload(frame.offset, &payload)
    }

    /// A chunk-tasks frame (format 1.3), validated and cut by chunk.
    pub fn chunk_tasks(
        &self,
        frame: &FrameRef,
    ) -> Result<Vec<crate::chunk_tasks::ChunkRows>, Error> {
        let payload = decode_payload(&self.source, frame)?;
        chunk_tasks_from_payload(frame.offset, &payload)
    }

    /// A polls frame (format 1.3), validated and read.
    pub fn polls(&self, frame: &FrameRef) -> Result<crate::types::Polls, Error> {
        let payload = decode_payload(&self.source, frame)?;
        polls_from_payload(frame.offset, &payload)
    }

    /// A provenance frame (format 1.4), validated and read.
    pub fn provenance(&self, frame: &FrameRef) -> Result<crate::types::Provenance, Error> {
        let payload = decode_payload(&self.source, frame)?;
        provenance_from_payload(frame.offset, &payload)
    }

    /// Decompresses and validates one chunk frame (one of [`Capture::frames`]).
    pub fn chunk(&self, frame: &FrameRef) -> Result<ChunkData, Error> {
        ChunkData::decode(&self.source, frame)
    }

    /// Says that the mapped bytes of `frames` will not be read again soon, so the kernel may drop
    /// them from memory (they are read back from the file if they are). Reading a capture larger
    /// than memory then holds only the frames in flight. A no-op for in-memory captures.
    pub fn release(&self, frames: &[FrameRef]) {
        let Source::Mapped(map) = &self.source else {
            return;
        };
        let page = 4096usize;
        for f in frames {
            // Whole pages inside the frame only: a neighbouring frame may still be in use.
            let start = (f.offset as usize).next_multiple_of(page);
            let end = (f.payload_range().end / page) * page;
            if end > start {
                // SAFETY: the map is read-only and file-backed; dropping its pages loses nothing
                // (they are faulted back in from the file), and no reference into them is held
                // past decoding (payloads are decompressed into buffers of their own).
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }

    /// Reassembles the embedded object files.
    pub fn objects(&self) -> Result<Vec<EmbeddedObject>, Error> {
        let parts = self
            .object_parts()
            .into_iter()
            .map(|(_, part)| part)
            .collect::<Result<_, Error>>()?;
        assemble_objects(parts)
    }

    /// Every object part, decoded in parallel, with its frame.
    fn object_parts(&self) -> Vec<(FrameRef, Result<OffsetPart, Error>)> {
        self.frames
            .par_iter()
            .filter(|f| f.header.kind == FrameKind::Object)
            .map(|f| {
                let part = decode_payload(&self.source, f).and_then(|payload| {
                    let archived = rkyv::access::<ArchivedObjectPart, rancor::BoxedError>(&payload)
                        .map_err(|e| invalid(f.offset, FrameKind::Object, e))?;
                    rkyv::deserialize::<ObjectPart, rancor::BoxedError>(archived)
                        .map(|part| (f.offset, part))
                        .map_err(|e| invalid(f.offset, FrameKind::Object, e))
                });
                (*f, part)
            })
            .collect()
    }

    /// Like [`Capture::objects`], but a damaged part is skipped (its object is then incomplete
    /// and left out) and returned as damage.
    pub fn objects_salvaged(&self) -> (Vec<EmbeddedObject>, Vec<Damage>) {
        let mut damage = Vec::new();
        let mut parts = Vec::new();
        for (frame, part) in self.object_parts() {
            match part {
                Ok(part) => parts.push(part),
                Err(e) => damage.push(Damage::of_frame(&frame, e)),
            }
        }
        match assemble_objects(parts) {
            Ok(objects) => (objects, damage),
            Err(e) => {
                damage.push(Damage {
                    offset: e.offset().unwrap_or(0),
                    len: 0,
                    kind: Some(FrameKind::Object),
                    reason: e.to_string(),
                });
                (Vec::new(), damage)
            }
        }
    }
}

fn decode_index(source: &[u8], frame: &FrameRef) -> Option<Index> {
    let payload = decode_payload(source, frame).ok()?;
    let archived = rkyv::access::<ArchivedIndex, rancor::BoxedError>(&payload).ok()?;
    rkyv::deserialize::<Index, rancor::BoxedError>(archived).ok()
}

/// Opens `path` for reading without blocking (a FIFO with no writer would block `open`), and
/// refuses anything but a regular file.
pub fn open_regular(path: &Path) -> Result<std::fs::File, Error> {
    let shown = path.display();
    let file = open_nonblocking(path).map_err(|e| Error::io(format!("opening {shown}"), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {shown}"), e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: shown.to_string(),
            what: file_type_name(&meta.file_type()),
        });
    }
    Ok(file)
}

/// Opens `path` read-only with O_NONBLOCK: returns at once for a FIFO without a writer, and
/// reads from a regular file are unaffected.
pub fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// What a non-regular file is, for messages.
pub fn file_type_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// An embedded object's part, with the offset of the frame it came from.
type OffsetPart = (u64, ObjectPart);

/// An embedded object file, whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedObject {
    pub path: String,
    pub build_id: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// Reassembles object files from their parts, each with the offset of the frame it came from
/// (for error messages). An object missing a part (a capture cut while embedding) is skipped.
pub fn assemble_objects(parts: Vec<(u64, ObjectPart)>) -> Result<Vec<EmbeddedObject>, Error> {
    use std::collections::BTreeMap;
    let mut by_id: BTreeMap<u32, Vec<(u64, ObjectPart)>> = BTreeMap::new();
    for (offset, part) in parts {
        by_id
            .entry(part.object_id)
            .or_default()
            .push((offset, part));
    }
    let mut objects = Vec::new();
    for (_, mut parts) in by_id {
        parts.sort_by_key(|(_, p)| p.offset);
        let first = &parts[0].1;
        let total = first.total_len;
        // Allocate only what the parts really hold, never what a length field claims.
        let held: u64 = parts.iter().map(|(_, p)| p.bytes.len() as u64).sum();
        if held != total {
            // A part is missing (capture cut while embedding): skip the object, it is unusable.
            continue;
        }
        let mut bytes = Vec::with_capacity(total as usize);
        for (part_offset, part) in &parts {
            if part.offset != bytes.len() as u64 || part.total_len != total {
                return Err(Error::CorruptFrame {
                    offset: *part_offset,
                    reason: "embedded object parts do not line up".into(),
                });
            }
            bytes.extend_from_slice(&part.bytes);
        }
        objects.push(EmbeddedObject {
            path: first.path.clone(),
            build_id: first.build_id.clone(),
            bytes,
        });
    }
    Ok(objects)
}

/// A decompressed, validated chunk. [`ChunkData::get`] accesses it in place.
pub struct ChunkData {
    offset: u64,
    payload: Payload,
}

impl ChunkData {
    fn decode(source: &[u8], frame: &FrameRef) -> Result<Self, Error> {
        let payload = decode_payload(source, frame)?;
        Self::from_payload(frame.offset, payload)
    }

    /// Validates a decompressed chunk payload (archive structure and column consistency).
    pub fn from_payload(offset: u64, payload: Payload) -> Result<Self, Error> {
        let chunk = rkyv::access::<ArchivedChunk, rancor::BoxedError>(&payload)
            .map_err(|e| invalid(offset, FrameKind::Chunk, e))?;
        check_columns(chunk).map_err(|reason| Error::CorruptFrame {
            offset,
            reason: format!("chunk frame: {reason}"),
        })?;
        Ok(Self { offset, payload })
    }

    /// The chunk, archived, read in place.
    pub fn get(&self) -> &ArchivedChunk {
        // SAFETY: the payload was validated by `rkyv::access` in `from_payload` and is immutable.
        unsafe { rkyv::access_unchecked::<ArchivedChunk>(&self.payload) }
    }

    /// An owned copy (for tests and tools; analysis reads [`ChunkData::get`] in place).
    pub fn to_owned_chunk(&self) -> Chunk {
        rkyv::deserialize::<Chunk, rancor::Error>(self.get()).expect("validated chunk deserializes")
    }

    /// Offset of the frame this chunk came from.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A decompressed, validated stack-copies frame (format 1.1). [`StackCopiesData::get`]
/// accesses it in place.
pub struct StackCopiesData {
    offset: u64,
    payload: Payload,
}

impl StackCopiesData {
    /// Validates a decompressed stack-copies payload: the archive, its column lengths, and that
    /// the copies' lengths add up to the bytes it holds.
    pub fn from_payload(offset: u64, payload: Payload) -> Result<Self, Error> {
        let copies = rkyv::access::<ArchivedStackCopies, rancor::BoxedError>(&payload)
            .map_err(|e| invalid(offset, FrameKind::StackCopies, e))?;
        let reason = check_copies(copies);
        if let Some(reason) = reason {
            return Err(Error::CorruptFrame {
                offset,
                reason: format!("stack copies frame: {reason}"),
            });
        }
        Ok(Self { offset, payload })
    }

    fn decode(source: &[u8], frame: &FrameRef) -> Result<Self, Error> {
        let payload = decode_payload(source, frame)?;
        Self::from_payload(frame.offset, payload)
    }

    /// The copies, archived, read in place.
    pub fn get(&self) -> &ArchivedStackCopies {
        // SAFETY: validated by `rkyv::access` in `from_payload`; the payload is immutable.
        unsafe { rkyv::access_unchecked::<ArchivedStackCopies>(&self.payload) }
    }

    /// Offset of the frame the copies came from.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Validates a decompressed tasks frame (format 1.2) and reads it: its columns are one row per
/// event, so they must all be as long.
pub fn tasks_from_payload(offset: u64, payload: &[u8]) -> Result<crate::types::EventTasks, Error> {
    let archived = rkyv::access::<crate::types::ArchivedEventTasks, rancor::BoxedError>(payload)
        .map_err(|e| invalid(offset, FrameKind::Tasks, e))?;
    let n = archived.tid.len();
    let lengths = [
        archived.of.len(),
        archived.task.len(),
        archived.tick.len(),
        delta_count(&archived.ts.deltas),
    ];
    if lengths.iter().any(|&l| l != n) {
        return Err(Error::CorruptFrame {
            offset,
            reason: "tasks frame: columns of different lengths".into(),
        });
    }
    rkyv::deserialize::<crate::types::EventTasks, rancor::BoxedError>(archived)
        .map_err(|e| invalid(offset, FrameKind::Tasks, e))
}

/// Validates a decompressed chunk-tasks frame (format 1.3) and cuts it by chunk: its columns
/// must hold the rows its counts say.
pub fn chunk_tasks_from_payload(
    offset: u64,
    payload: &[u8],
) -> Result<Vec<crate::chunk_tasks::ChunkRows>, Error> {
    let archived = rkyv::access::<crate::types::ArchivedChunkTasks, rancor::BoxedError>(payload)
        .map_err(|e| invalid(offset, FrameKind::ChunkTasks, e))?;
    crate::chunk_tasks::split(archived).ok_or_else(|| Error::CorruptFrame {
        offset,
        reason: "chunk-tasks frame: columns shorter or longer than its counts".into(),
    })
}

/// Validates a decompressed provenance frame (format 1.4) and reads it.
pub fn provenance_from_payload(
    offset: u64,
    payload: &[u8],
) -> Result<crate::types::Provenance, Error> {
    let archived = rkyv::access::<crate::types::ArchivedProvenance, rancor::BoxedError>(payload)
        .map_err(|e| invalid(offset, FrameKind::Provenance, e))?;
    if archived.thread_kernel_ids.len() != archived.thread_namespace_ids.len() {
        return Err(Error::CorruptFrame {
            offset,
            reason: "provenance frame: thread id columns of different lengths".into(),
        });
    }
    rkyv::deserialize::<crate::types::Provenance, rancor::BoxedError>(archived)
        .map_err(|e| invalid(offset, FrameKind::Provenance, e))
}

/// Validates a decompressed polls frame (format 1.3) and reads it: one length per table, and
/// histogram buckets that exist.
pub fn polls_from_payload(offset: u64, payload: &[u8]) -> Result<crate::types::Polls, Error> {
    let archived = rkyv::access::<crate::types::ArchivedPolls, rancor::BoxedError>(payload)
        .map_err(|e| invalid(offset, FrameKind::Polls, e))?;
    let long = &archived.long;
    let n = long.tid.len();
    let bad_events = [
        long.start_ns.len(),
        long.end_ns.len(),
        long.probe.len(),
        long.task.len(),
    ]
    .iter()
    .any(|&l| l != n);
    let bad_histogram = archived.histograms.iter().any(|h| {
        h.buckets.len() != h.counts.len()
            || h.buckets
                .iter()
                .any(|b| u32::from(b.to_native()) >= crate::wire::POLL_BUCKETS)
    });
    if bad_events || bad_histogram {
        return Err(Error::CorruptFrame {
            offset,
            reason: "polls frame: columns of different lengths, or a bucket out of range".into(),
        });
    }
    rkyv::deserialize::<crate::types::Polls, rancor::BoxedError>(archived)
        .map_err(|e| invalid(offset, FrameKind::Polls, e))
}

/// Checks a stack-copies frame's columns: one length per table, each row's words within its
/// copy and in order, repeats without words.
fn check_copies(c: &ArchivedStackCopies) -> Option<&'static str> {
    let n = c.tid.len();
    let lengths = [
        c.span_ns.len(),
        c.of.len(),
        c.ip.len(),
        c.sp.len(),
        c.bp.len(),
        c.len.len(),
        c.same_as.len(),
        c.words.len(),
        delta_count(&c.ts.deltas),
    ];
    if lengths.iter().any(|&l| l != n) || c.word_index.len() != c.word_value.len() {
        return Some("columns have different lengths");
    }
    let total: u64 = c.words.iter().map(|w| u64::from(w.to_native())).sum();
    if total != c.word_index.len() as u64 {
        return Some("the rows' word counts do not add up to its words");
    }
    let mut at = 0usize;
    for i in 0..n {
        let count = c.words[i].to_native() as usize;
        let index = &c.word_index[at..at + count];
        at += count;
        if c.same_as[i].to_native() != 0 && (count != 0 || c.len[i].to_native() != 0) {
            return Some("a repeated copy has bytes of its own");
        }
        let words_in_copy = c.len[i].to_native() / 8;
        let ordered = index
            .windows(2)
            .all(|w| w[0].to_native() < w[1].to_native());
        if !ordered
            || index
                .last()
                .is_some_and(|w| u32::from(w.to_native()) >= words_in_copy)
        {
            return Some("a copy's words are out of order or outside it");
        }
    }
    None
}

/// Checks what bytecheck cannot: that columns of one table have one length.
fn check_columns(c: &ArchivedChunk) -> Result<(), String> {
    let s = &c.switches;
    let n = s.tid.len();
    if [
        s.cpu.len(),
        s.on_cpu.len(),
        s.prev_state.len(),
        delta_count(&s.ts.deltas),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err("switch columns have different lengths".into());
    }
    let s = &c.samples;
    let n = s.tid.len();
    if [
        s.cpu.len(),
        s.user_stack.len(),
        s.kernel_stack.len(),
        delta_count(&s.ts.deltas),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err("sample columns have different lengths".into());
    }
    let o = &c.off_cpu;
    let n = o.tid.len();
    if [
        o.cpu.len(),
        o.duration_ns.len(),
        o.runnable_ns.len(),
        o.state.len(),
        o.user_stack.len(),
        o.kernel_stack.len(),
        delta_count(&o.ts.deltas),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err("off-CPU columns have different lengths".into());
    }
    let t = &c.stacks;
    if t.parent.len() != t.address.len() {
        return Err("stack table columns have different lengths".into());
    }
    let first = t.first_id.to_native();
    if first == 0 || first.checked_add(t.parent.len() as u32).is_none() {
        return Err("stack table ids out of range".into());
    }
    for (i, parent) in t.parent.iter().enumerate() {
        // Parents come first: walking up a stack always ends.
        if parent.to_native() >= first + i as u32 {
            return Err("a stack node refers to a later node".into());
        }
    }
    Ok(())
}

/// An archive that failed validation, named by its frame kind and what bytecheck found.
fn invalid(offset: u64, kind: FrameKind, e: impl std::fmt::Display) -> Error {
    Error::CorruptFrame {
        offset,
        reason: format!("{} frame: invalid archive: {e}", kind_name(kind)),
    }
}

impl Damage {
    /// A frame whose header was sound but whose payload failed to decode.
    pub fn of_frame(frame: &FrameRef, error: Error) -> Self {
        let reason = error.into_reason();
        // The kind is said once, by the damage itself.
        let reason = reason
            .strip_prefix(&format!("{} frame: ", kind_name(frame.header.kind)))
            .map_or_else(|| reason.clone(), str::to_owned);
        Damage {
            offset: frame.offset,
            len: FRAME_HEADER_LEN as u64 + u64::from(frame.header.stored_len),
            kind: Some(frame.header.kind),
            reason,
        }
    }
}

fn decode_payload(data: &[u8], frame: &FrameRef) -> Result<Payload, Error> {
    decode_stored(&data[frame.payload_range()], &frame.header, frame.offset)
}

fn decode_stored(stored: &[u8], header: &FrameHeader, offset: u64) -> Result<Payload, Error> {
    let kind = kind_name(header.kind);
    let corrupt = |reason: String| Error::CorruptFrame {
        offset,
        reason: format!("{kind} frame: {reason}"),
    };
    if crc32fast::hash(stored) != header.payload_crc {
        return Err(corrupt("payload checksum mismatch".into()));
    }
    let raw_len = header.raw_len as usize;
    debug_assert!(raw_len <= MAX_FRAME_LEN as usize);
    let mut payload = Payload::with_capacity(raw_len);
    match header.codec {
        Codec::Raw => {
            if stored.len() != raw_len {
                return Err(corrupt("raw frame length mismatch".into()));
            }
            payload.extend_from_slice(stored);
        }
        Codec::Zstd => {
            payload.resize(raw_len, 0);
            let n = zstd::bulk::decompress_to_buffer(stored, &mut payload[..])
                .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
            if n != raw_len {
                return Err(corrupt(format!(
                    "decompressed to {n} bytes, the frame says {raw_len}"
                )));
            }
        }
    }
    Ok(payload)
}
