//! Reads captures: [`Capture`] over a whole file (mmap) or buffer, [`FrameStream`] over a pipe.
//!
//! Nothing is trusted: every frame header is checksummed before its lengths are used, lengths are
//! bounded by [`MAX_FRAME_LEN`], payloads are checksummed, decompressed into a buffer of exactly the
//! declared size, and validated by bytecheck before any archived field is read. A capture cut at
//! any byte reads up to its last whole frame and says it was cut ([`Ending`]).

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::columns::delta_count;
use crate::error::Error;
use crate::frame::{
    decode_preamble, Codec, FrameHeader, FrameKind, Version, FRAME_HEADER_LEN, FRAME_MAGIC,
    MAX_FRAME_LEN, PREAMBLE_LEN,
};
use crate::types::{
    ArchivedChunk, ArchivedIndex, ArchivedObjectPart, Chunk, Header, Index, ObjectPart,
};

/// Decompressed payloads are aligned for rkyv's archived types.
pub type Payload = AlignedVec<16>;

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
                "the capture was not closed cleanly (recorder killed?); reading every whole frame"
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
    /// Maps the file at `path` and reads its structure.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let shown = path.display();
        let file =
            std::fs::File::open(path).map_err(|e| Error::io(format!("opening {shown}"), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {shown}"), e))?
            .len();
        if len == 0 {
            return Err(Error::TooShort { len: 0 });
        }
        // SAFETY: the map is read-only. A capture being appended to only grows; a capture truncated
        // by someone else while we read it is outside what any mmap reader can defend against.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| Error::io(format!("mapping {shown}"), e))?;
        Self::from_source(Source::Mapped(map))
    }

    /// Reads a capture held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        Self::from_source(Source::Owned(bytes))
    }

    /// Reads a capture from a stream (e.g. stdin) to its end, then like [`Capture::from_bytes`].
    pub fn from_reader(mut reader: impl Read) -> Result<Self, Error> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading the capture stream", e))?;
        Self::from_bytes(bytes)
    }

    fn from_source(source: Source) -> Result<Self, Error> {
        let version = decode_preamble(&source[..source.len().min(PREAMBLE_LEN)])?;
        let (mut frames, mut ending) = scan_frames(&source)?;
        let first = frames.first().ok_or(Error::MissingHeader)?;
        if first.header.kind != FrameKind::Header {
            return Err(Error::MissingHeader);
        }
        let payload = decode_payload(&source, first)?;
        let archived = rkyv::access::<crate::types::ArchivedHeader, rancor::Error>(&payload)
            .map_err(|e| invalid(first.offset, e))?;
        let header: Header = rkyv::deserialize::<Header, rancor::Error>(archived)
            .map_err(|e| invalid(first.offset, e))?;
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
        let parts: Vec<(u64, ObjectPart)> = self
            .frames
            .par_iter()
            .filter(|f| f.header.kind == FrameKind::Object)
            .map(|f| {
                let payload = decode_payload(&self.source, f)?;
                let archived = rkyv::access::<ArchivedObjectPart, rancor::Error>(&payload)
                    .map_err(|e| invalid(f.offset, e))?;
                let part = rkyv::deserialize::<ObjectPart, rancor::Error>(archived)
                    .map_err(|e| invalid(f.offset, e))?;
                Ok((f.offset, part))
            })
            .collect::<Result<_, Error>>()?;
        assemble_objects(parts)
    }
}

fn decode_index(source: &[u8], frame: &FrameRef) -> Option<Index> {
    let payload = decode_payload(source, frame).ok()?;
    let archived = rkyv::access::<ArchivedIndex, rancor::Error>(&payload).ok()?;
    rkyv::deserialize::<Index, rancor::Error>(archived).ok()
}

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
        let chunk = rkyv::access::<ArchivedChunk, rancor::Error>(&payload)
            .map_err(|e| invalid(offset, e))?;
        check_columns(chunk).map_err(|reason| Error::CorruptFrame { offset, reason })?;
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

/// Every stack node seen so far, to turn stack ids into frames. Feed it chunks in file order.
#[derive(Clone, Debug, Default)]
pub struct Stacks {
    /// Index = node id - 1: (parent, address).
    nodes: Vec<(u32, u64)>,
}

impl Stacks {
    /// Adds the nodes a chunk defines. Nodes must arrive in id order; a chunk that does not
    /// continue where the previous one stopped (a lost chunk) leaves a gap the ids it defines
    /// skip over, so later lookups of missing nodes return fewer frames, never wrong ones.
    pub fn add(&mut self, chunk: &ArchivedChunk) {
        let t = &chunk.stacks;
        let first = t.first_id.to_native() as usize;
        if first == 0 {
            return;
        }
        if self.nodes.len() < first - 1 {
            self.nodes.resize(first - 1, (0, 0));
        }
        self.nodes.truncate(first - 1);
        self.nodes.extend(
            t.parent
                .iter()
                .zip(t.address.iter())
                .map(|(p, a)| (p.to_native(), a.to_native())),
        );
    }

    /// Every node, index = id − 1: (parent id, address).
    pub fn nodes(&self) -> &[(u32, u64)] {
        &self.nodes
    }

    /// Number of nodes known.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The frames of stack `id`, innermost first.
    pub fn frames(&self, id: u32) -> StackFrames<'_> {
        StackFrames {
            stacks: self,
            node: id,
        }
    }
}

/// Iterator over a stack's addresses, innermost first.
pub struct StackFrames<'a> {
    stacks: &'a Stacks,
    node: u32,
}

impl Iterator for StackFrames<'_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let (parent, address) = *self
            .stacks
            .nodes
            .get((self.node as usize).checked_sub(1)?)?;
        // Validated chunks guarantee parent < node; guard anyway against gaps filled with zeros.
        self.node = if parent < self.node { parent } else { 0 };
        Some(address)
    }
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

fn invalid(offset: u64, e: impl std::fmt::Display) -> Error {
    Error::CorruptFrame {
        offset,
        reason: format!("invalid archive: {e}"),
    }
}

/// Locates every whole frame after the preamble.
fn scan_frames(data: &[u8]) -> Result<(Vec<FrameRef>, Ending), Error> {
    let mut frames = Vec::new();
    let mut pos = PREAMBLE_LEN;
    loop {
        let rest = &data[pos..];
        if rest.is_empty() {
            return Ok((frames, Ending::Clean));
        }
        if rest.len() < FRAME_HEADER_LEN || looks_like_unwritten_tail(rest) {
            return Ok((frames, Ending::Truncated { offset: pos as u64 }));
        }
        let head: &[u8; FRAME_HEADER_LEN] =
            rest[..FRAME_HEADER_LEN].try_into().expect("length checked");
        let header = FrameHeader::decode(head, pos as u64)?;
        let frame_len = FRAME_HEADER_LEN + header.stored_len as usize;
        if rest.len() < frame_len {
            return Ok((frames, Ending::Truncated { offset: pos as u64 }));
        }
        frames.push(FrameRef {
            offset: pos as u64,
            header,
        });
        if header.kind == FrameKind::Index {
            let after = pos + frame_len;
            if !data[after..].iter().all(|b| *b == 0) {
                return Err(Error::CorruptFrame {
                    offset: after as u64,
                    reason: "bytes after the closing index".into(),
                });
            }
            return Ok((frames, Ending::Clean));
        }
        pos += frame_len;
    }
}

/// A file preallocated or cut by a full disk can end in zeros: that is a cut, not corruption.
fn looks_like_unwritten_tail(rest: &[u8]) -> bool {
    rest[..FRAME_MAGIC.len().min(rest.len())] != FRAME_MAGIC && rest.iter().all(|b| *b == 0)
}

fn decode_payload(data: &[u8], frame: &FrameRef) -> Result<Payload, Error> {
    decode_stored(&data[frame.payload_range()], &frame.header, frame.offset)
}

fn decode_stored(stored: &[u8], header: &FrameHeader, offset: u64) -> Result<Payload, Error> {
    let corrupt = |reason: String| Error::CorruptFrame { offset, reason };
    if crc32fast::hash(stored) != header.payload_crc {
        return Err(corrupt("frame payload checksum mismatch".into()));
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

/// One frame read from a stream, decompressed.
pub struct StreamFrame {
    pub offset: u64,
    pub kind: FrameKind,
    pub payload: Payload,
}

impl StreamFrame {
    /// The header, when this is the header frame.
    pub fn header(&self) -> Result<Header, Error> {
        let archived = rkyv::access::<crate::types::ArchivedHeader, rancor::Error>(&self.payload)
            .map_err(|e| invalid(self.offset, e))?;
        rkyv::deserialize::<Header, rancor::Error>(archived).map_err(|e| invalid(self.offset, e))
    }

    /// The embedded object part, when this is an object frame.
    pub fn into_object_part(self) -> Result<(u64, ObjectPart), Error> {
        let archived = rkyv::access::<ArchivedObjectPart, rancor::Error>(&self.payload)
            .map_err(|e| invalid(self.offset, e))?;
        let part = rkyv::deserialize::<ObjectPart, rancor::Error>(archived)
            .map_err(|e| invalid(self.offset, e))?;
        Ok((self.offset, part))
    }

    /// The chunk, validated, when this is a chunk frame.
    pub fn into_chunk(self) -> Result<ChunkData, Error> {
        ChunkData::from_payload(self.offset, self.payload)
    }
}

/// Reads frames one at a time from a pipe or socket, as they arrive.
pub struct FrameStream<R: Read> {
    reader: R,
    offset: u64,
    version: Version,
    ending: Option<Ending>,
}

impl<R: Read> FrameStream<R> {
    /// Reads and checks the preamble.
    pub fn new(mut reader: R) -> Result<Self, Error> {
        let mut preamble = [0u8; PREAMBLE_LEN];
        let n = read_full(&mut reader, &mut preamble)?;
        let version = decode_preamble(&preamble[..n])?;
        Ok(Self {
            reader,
            offset: PREAMBLE_LEN as u64,
            version,
            ending: None,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// How the stream ended, once [`FrameStream::next_frame`] returned `None`.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
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
            self.ending = Some(Ending::Truncated {
                offset: self.offset,
            });
            return Ok(None);
        }
        let header = FrameHeader::decode(&head, self.offset)?;
        // Bounded by MAX_FRAME_LEN, checked in decode.
        let mut stored = vec![0u8; header.stored_len as usize];
        let n = read_full(&mut self.reader, &mut stored)?;
        if n < stored.len() {
            self.ending = Some(Ending::Truncated {
                offset: self.offset,
            });
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
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, Error> {
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
