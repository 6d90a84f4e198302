//! Where a capture comes from: a file (mapped; chunks decoded in parallel batches, pages released
//! behind the reader) or a stream (a pipe, a FIFO, a device: read frame by frame as it arrives).
//! Both feed the same [`ModelBuilder`]. A file a recorder is still writing is read by
//! [`follow`], which knows the recorder's lock convention. Salvaging ([`ReadOptions::salvage`]), a frame that cannot
//! be read is skipped and handed to the builder, which says what time it cost.

pub mod follow;

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use hud_format::frame::FrameKind;
use hud_format::reader::{
    assemble_objects, file_type_name, open_nonblocking, Capture, ChunkData, Damage, EmbeddedObject,
    FrameRef, FrameStream, ReadOptions,
};
use hud_format::types::Header;
use rayon::prelude::*;

use crate::error::AnalyzeError;
use crate::model::builder::ModelBuilder;
use crate::model::Model;

/// A capture read into a model, with the object files it embeds.
pub struct Loaded {
    pub model: Model,
    pub embedded: Vec<EmbeddedObject>,
}

/// A capture whose header has been read and checked, not yet its events: what a viewer opens
/// before it takes over the terminal, so that a bad file is reported on the normal screen.
pub enum Opened {
    /// A regular file, and whether a recorder still holds it (it is being written).
    File(Capture, bool),
    Stream(Stream),
}

/// A stream past its header frame.
pub struct Stream {
    frames: FrameStream<Box<dyn Read + Send>>,
    header: Header,
}

/// How long a FIFO is waited on for a writer before giving up.
const FIFO_WAIT: Duration = Duration::from_secs(10);

/// Opens the capture at `path`, or standard input for `-`, and checks its header. A regular file
/// is mapped; a FIFO, a pipe (`<(…)`), a character device or a socket is read as a stream. Nothing
/// here blocks for ever: a FIFO without a writer is an error after a while.
pub fn open(path: &Path, read: &ReadOptions) -> Result<Opened, AnalyzeError> {
    if path.as_os_str() == "-" {
        // What an unprivileged reader may ask for (pipe-max-size's default); the recorder, as
        // root, may have made it larger already.
        hud_format::pipe::enlarge(0, 1 << 20);
        return open_stream(Box::new(std::io::stdin()), read);
    }
    let shown = path.display().to_string();
    let io =
        |what: &str, e| AnalyzeError::Capture(hud_format::Error::io(format!("{what} {shown}"), e));
    if path.is_dir() {
        // A flight recorder's directory: its ring, read as one capture.
        let ring = hud_format::ring::ring_dir(path).ok_or_else(|| {
            io(
                "reading",
                std::io::Error::other(
                    "a directory, and no flight recorder's ring (ring/base.hudseg) in it: name a \
                     capture file, or a dump in it",
                ),
            )
        })?;
        let bytes = hud_format::ring::read(&ring).map_err(|e| io("reading the ring in", e))?;
        let still_written = ring.join(hud_format::ring::PID_FILE).exists();
        let capture = Capture::from_bytes_with(bytes, read)?;
        return Ok(Opened::File(capture, still_written));
    }
    let file = open_nonblocking(path).map_err(|e| io("opening", e))?;
    let kind = file.metadata().map_err(|e| io("reading", e))?.file_type();
    if kind.is_file() {
        let still_written = follow::writer_present(&file);
        let capture = Capture::from_file(&file, &shown, read)?;
        return Ok(Opened::File(capture, still_written));
    }
    if kind.is_fifo() || kind.is_char_device() || kind.is_socket() {
        if kind.is_fifo() {
            wait_for_writer(&file, &shown)?;
        }
        set_blocking(&file).map_err(|e| io("reading", e))?;
        if kind.is_fifo() {
            hud_format::pipe::enlarge(std::os::fd::AsRawFd::as_raw_fd(&file), 1 << 20);
        }
        return open_stream(Box::new(file), read);
    }
    Err(hud_format::Error::NotAFile {
        path: shown,
        what: file_type_name(&kind),
    }
    .into())
}

/// Waits until a FIFO has data or its writer has come and gone, for [`FIFO_WAIT`] at most.
fn wait_for_writer(file: &std::fs::File, shown: &str) -> Result<(), AnalyzeError> {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + FIFO_WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd for a descriptor we own.
        let n = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if n < 0 && error.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n < 0 {
            return Err(hud_format::Error::io(format!("waiting on {shown}"), error).into());
        }
        return Err(hud_format::Error::io(
            format!("reading {shown}"),
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "nothing was written to this FIFO for {} s: start the recorder writing to it \
                     (hud-record -o {shown}) before or just after the analyzer",
                    FIFO_WAIT.as_secs()
                ),
            ),
        )
        .into());
    }
}

/// Clears O_NONBLOCK: once a stream has a writer, reads wait for data as a pipe's do.
fn set_blocking(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, changing only its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Reads a stream's preamble and header frame.
pub fn open_stream(
    reader: Box<dyn Read + Send>,
    read: &ReadOptions,
) -> Result<Opened, AnalyzeError> {
    let mut frames = FrameStream::with_options(reader, read.clone())?;
    let first = frames.next_frame()?;
    if !frames.damage().is_empty() {
        // A damaged header frame: nothing says what was recorded, so nothing can be salvaged.
        let damage = &frames.damage()[0];
        return Err(hud_format::Error::CorruptFrame {
            offset: damage.offset,
            reason: format!("the header frame is unreadable: {}", damage.reason),
        }
        .into());
    }
    let first = first
        .filter(|f| f.kind == FrameKind::Header)
        .ok_or(hud_format::Error::MissingHeader)?;
    let header = first.header()?;
    Ok(Opened::Stream(Stream { frames, header }))
}

impl Stream {
    /// The frame reader and the header it started with.
    pub fn into_parts(self) -> (FrameStream<Box<dyn Read + Send>>, Header) {
        (self.frames, self.header)
    }
}

impl Opened {
    pub fn header(&self) -> &Header {
        match self {
            Opened::File(c, _) => c.header(),
            Opened::Stream(s) => &s.header,
        }
    }

    /// Reads the events.
    pub fn load(self) -> Result<Loaded, AnalyzeError> {
        match self {
            Opened::File(capture, still_written) => {
                let mut loaded = load_file(&capture)?;
                if still_written {
                    still_being_written(&mut loaded.model, capture.ending());
                }
                Ok(loaded)
            }
            Opened::Stream(stream) => load_opened_stream(stream),
        }
    }
}

/// Reads the capture at `path`, or standard input for `-`.
pub fn load(path: &Path, read: &ReadOptions) -> Result<Loaded, AnalyzeError> {
    open(path, read)?.load()
}

/// A recorder still holds the capture: its end is where the recorder has got to, not a kill.
fn still_being_written(model: &mut crate::model::Model, ending: &hud_format::reader::Ending) {
    let Some(notice) = ending.notice() else {
        return;
    };
    if let Some(first) = model.notices.iter_mut().find(|n| **n == notice) {
        *first = "a recorder is still writing this capture: this reads what it holds so far \
                  (`hud-analyze tui --follow` follows it live)"
            .into();
    }
}

/// Reads a whole capture. Chunks are decompressed a batch at a time, one chunk per pool thread,
/// while the previous batch is appended: memory holds two batches of decompressed chunks, not the
/// capture's, and the mapped pages already read are released.
pub fn load_file(capture: &Capture) -> Result<Loaded, AnalyzeError> {
    let mut builder = ModelBuilder::new(capture.header().clone(), capture.version().to_string());
    let frames = capture.frames();
    for _ in frames.iter().filter(|f| f.header.kind == FrameKind::Object) {
        builder.note_embedded_part();
    }
    let salvage = capture.salvaging();
    // The events' tasks (format 1.3) before the chunks: each chunk takes its rows as it goes in.
    for frame in frames
        .iter()
        .filter(|f| f.header.kind == FrameKind::ChunkTasks)
    {
        match capture.chunk_tasks(frame) {
            Ok(rows) => builder.push_chunk_tasks(rows),
            Err(e) if salvage => builder.note_damage(Damage::of_frame(frame, e)),
            Err(e) => return Err(e.into()),
        }
    }
    builder.chunk_tasks_given_first();
    // Where the target ran (format 1.4), before the chunks: a dump's says where its chunks
    // start. (Only those before the first chunk can; later ones, a ring's segment marks, only
    // name the window.)
    let first_chunk = frames
        .iter()
        .find(|f| f.header.kind == FrameKind::Chunk)
        .map_or(u64::MAX, |f| f.offset);
    for frame in frames
        .iter()
        .filter(|f| f.header.kind == FrameKind::Provenance && f.offset < first_chunk)
    {
        match capture.provenance(frame) {
            Ok(p) => builder.push_provenance(p),
            Err(e) if salvage => builder.note_damage(Damage::of_frame(frame, e)),
            Err(e) => return Err(e.into()),
        }
    }
    // Damage found by the scan, fed to the builder in file order between the chunks.
    let mut scan_damage = capture.damage().iter().cloned().peekable();
    let chunks: Vec<FrameRef> = frames
        .iter()
        .filter(|f| f.header.kind == FrameKind::Chunk)
        .copied()
        .collect();
    let per_batch = rayon::current_num_threads().max(1);
    let batches: Vec<&[FrameRef]> = chunks.chunks(per_batch).collect();
    type Decoded = Vec<(FrameRef, Result<ChunkData, hud_format::Error>)>;
    let decode = |frames: &[FrameRef]| -> Result<Decoded, hud_format::Error> {
        let mut decoded: Decoded = frames.par_iter().map(|f| (*f, capture.chunk(f))).collect();
        if !salvage {
            if let Some(i) = decoded.iter().position(|(_, d)| d.is_err()) {
                decoded.swap_remove(i).1?;
            }
        }
        Ok(decoded)
    };
    let mut current = match batches.first() {
        Some(b) => decode(b)?,
        None => Vec::new(),
    };
    for i in 0..batches.len() {
        let ((), next) = rayon::join(
            || {
                for (frame, chunk) in current.drain(..) {
                    while let Some(d) = scan_damage.next_if(|d| d.offset < frame.offset) {
                        builder.note_damage(d);
                    }
                    match chunk {
                        Ok(chunk) => builder.push_chunk(chunk.get(), frame.offset),
                        Err(e) => builder.note_damage(Damage::of_frame(&frame, e)),
                    }
                }
            },
            || batches.get(i + 1).map(|b| decode(b)),
        );
        capture.release(batches[i]);
        current = next.transpose()?.unwrap_or_default();
    }
    scan_damage.for_each(|d| builder.note_damage(d));
    // Stack copies (format 1.1) serve events of the chunks before them; they are unwound once
    // every chunk is in, so their order does not matter.
    let copies: Vec<FrameRef> = frames
        .iter()
        .filter(|f| f.header.kind == FrameKind::StackCopies)
        .copied()
        .collect();
    for batch in copies.chunks(per_batch) {
        let decoded: Vec<_> = batch
            .par_iter()
            .map(|f| (*f, capture.stack_copies(f)))
            .collect();
        for (frame, copies) in decoded {
            match copies {
                Ok(copies) => builder.push_stack_copies(copies.get()),
                Err(e) if salvage => builder.note_damage(Damage::of_frame(&frame, e)),
                Err(e) => return Err(e.into()),
            }
        }
        capture.release(batch);
    }
    for frame in frames.iter().filter(|f| f.header.kind == FrameKind::Polls) {
        match capture.polls(frame) {
            Ok(polls) => builder.push_polls(&polls),
            Err(e) if salvage => builder.note_damage(Damage::of_frame(frame, e)),
            Err(e) => return Err(e.into()),
        }
    }
    // Tasks (format 1.2) name the events of the chunks around them, matched by thread and time.
    for frame in frames.iter().filter(|f| f.header.kind == FrameKind::Tasks) {
        match capture.tasks(frame) {
            Ok(tasks) => builder.push_tasks(&tasks),
            Err(e) if salvage => builder.note_damage(Damage::of_frame(frame, e)),
            Err(e) => return Err(e.into()),
        }
    }
    let embedded = if salvage {
        let (objects, damage) = capture.objects_salvaged();
        damage.into_iter().for_each(|d| builder.note_damage(d));
        objects
    } else {
        capture.objects()?
    };
    Ok(Loaded {
        model: builder.finish(capture.ending()),
        embedded,
    })
}

/// Reads a capture from a stream, frame by frame as it arrives: nothing is held but the model.
pub fn load_stream(
    reader: impl Read + Send + 'static,
    read: &ReadOptions,
) -> Result<Loaded, AnalyzeError> {
    open_stream(Box::new(reader), read)?.load()
}

fn load_opened_stream(stream: Stream) -> Result<Loaded, AnalyzeError> {
    let Stream { mut frames, header } = stream;
    let mut builder = ModelBuilder::new(header, frames.version().to_string());
    let mut parts = Vec::new();
    let mut damage_seen = frames.damage().len();
    while let Some(raw) = frames.next_raw()? {
        for d in &frames.damage()[damage_seen..] {
            builder.note_damage(d.clone());
        }
        damage_seen = frames.damage().len();
        let at = raw.frame_ref();
        match decode_frame(raw) {
            Ok(Decoded::Chunk(chunk)) => builder.push_chunk(chunk.get(), at.offset),
            Ok(Decoded::StackCopies(copies)) => builder.push_stack_copies(copies.get()),
            Ok(Decoded::Tasks(tasks)) => builder.push_tasks(&tasks),
            Ok(Decoded::ChunkTasks(rows)) => builder.push_chunk_tasks(rows),
            Ok(Decoded::Polls(polls)) => builder.push_polls(&polls),
            Ok(Decoded::Provenance(p)) => builder.push_provenance(p),
            Ok(Decoded::Object(part)) => {
                builder.note_embedded_part();
                parts.push(part);
            }
            Ok(Decoded::Other) => {}
            Err(e) if frames.salvaging() => builder.note_damage(Damage::of_frame(&at, e)),
            Err(e) => return Err(e.into()),
        }
    }
    for d in &frames.damage()[damage_seen..] {
        builder.note_damage(d.clone());
    }
    let ending = frames
        .ending()
        .cloned()
        .unwrap_or(hud_format::reader::Ending::Unclosed);
    Ok(Loaded {
        model: builder.finish(&ending),
        embedded: assemble_objects(parts)?,
    })
}

/// A frame of a stream, decoded by its kind.
pub enum Decoded {
    Chunk(ChunkData),
    /// Registers and stack bytes (format 1.1).
    StackCopies(hud_format::reader::StackCopiesData),
    /// The Tokio task of events (format 1.2).
    Tasks(hud_format::types::EventTasks),
    /// Exact poll durations (format 1.3).
    Polls(hud_format::types::Polls),
    /// Where the target ran (format 1.4).
    Provenance(hud_format::types::Provenance),
    /// The Tokio task of each event of the chunks before it (format 1.3).
    ChunkTasks(Vec<hud_format::chunk_tasks::ChunkRows>),
    Object((u64, hud_format::types::ObjectPart)),
    /// The index (it only speeds up seeks in files) or a kind from a newer minor version,
    /// skipped as docs/FORMAT.md promises.
    Other,
}

/// Checks, decompresses and validates a frame read from a stream.
pub fn decode_frame(raw: hud_format::reader::RawFrame) -> Result<Decoded, hud_format::Error> {
    let frame = raw.decode()?;
    Ok(match frame.kind {
        FrameKind::Chunk => Decoded::Chunk(frame.into_chunk()?),
        FrameKind::Object => Decoded::Object(frame.into_object_part()?),
        FrameKind::StackCopies => Decoded::StackCopies(frame.into_stack_copies()?),
        FrameKind::Tasks => Decoded::Tasks(frame.into_tasks()?),
        FrameKind::Polls => Decoded::Polls(frame.into_polls()?),
        FrameKind::Provenance => Decoded::Provenance(frame.into_provenance()?),
        FrameKind::ChunkTasks => Decoded::ChunkTasks(frame.into_chunk_tasks()?),
        _ => Decoded::Other,
    })
}
