//! Where a capture comes from: a file (mapped; chunks decoded in parallel batches, pages released
//! behind the reader) or a stream (a pipe, read frame by frame as it arrives). Both feed the same
//! [`ModelBuilder`].

use std::io::Read;
use std::path::Path;

use hud_format::frame::FrameKind;
use hud_format::reader::{
    assemble_objects, Capture, ChunkData, EmbeddedObject, FrameRef, FrameStream,
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
    File(Capture),
    Stream(Stream),
}

/// A stream past its header frame.
pub struct Stream {
    frames: FrameStream<Box<dyn Read + Send>>,
    header: Header,
}

/// Opens the capture at `path`, or standard input for `-`, and checks its header.
pub fn open(path: &Path) -> Result<Opened, AnalyzeError> {
    if path.as_os_str() == "-" {
        // What an unprivileged reader may ask for (pipe-max-size's default); the recorder, as
        // root, may have made it larger already.
        hud_format::pipe::enlarge(0, 1 << 20);
        open_stream(Box::new(std::io::stdin()))
    } else {
        Ok(Opened::File(Capture::open(path)?))
    }
}

/// Reads a stream's preamble and header frame.
pub fn open_stream(reader: Box<dyn Read + Send>) -> Result<Opened, AnalyzeError> {
    let mut frames = FrameStream::new(reader)?;
    let first = frames
        .next_frame()?
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
            Opened::File(c) => c.header(),
            Opened::Stream(s) => &s.header,
        }
    }

    /// Reads the events.
    pub fn load(self) -> Result<Loaded, AnalyzeError> {
        match self {
            Opened::File(capture) => load_file(&capture),
            Opened::Stream(stream) => load_opened_stream(stream),
        }
    }
}

/// Reads the capture at `path`, or standard input for `-`.
pub fn load(path: &Path) -> Result<Loaded, AnalyzeError> {
    open(path)?.load()
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
    let chunks: Vec<FrameRef> = frames
        .iter()
        .filter(|f| f.header.kind == FrameKind::Chunk)
        .copied()
        .collect();
    let per_batch = rayon::current_num_threads().max(1);
    let batches: Vec<&[FrameRef]> = chunks.chunks(per_batch).collect();
    let decode = |frames: &[FrameRef]| -> Result<Vec<ChunkData>, hud_format::Error> {
        frames.par_iter().map(|f| capture.chunk(f)).collect()
    };
    let mut current = match batches.first() {
        Some(b) => decode(b)?,
        None => Vec::new(),
    };
    for i in 0..batches.len() {
        let ((), next) = rayon::join(
            || current.iter().for_each(|d| builder.push_chunk(d.get())),
            || batches.get(i + 1).map(|b| decode(b)),
        );
        capture.release(batches[i]);
        current = next.transpose()?.unwrap_or_default();
    }
    let embedded = capture.objects()?;
    Ok(Loaded {
        model: builder.finish(capture.ending()),
        embedded,
    })
}

/// Reads a capture from a stream, frame by frame as it arrives: nothing is held but the model.
pub fn load_stream(reader: impl Read + Send + 'static) -> Result<Loaded, AnalyzeError> {
    open_stream(Box::new(reader))?.load()
}

fn load_opened_stream(stream: Stream) -> Result<Loaded, AnalyzeError> {
    let Stream { mut frames, header } = stream;
    let mut builder = ModelBuilder::new(header, frames.version().to_string());
    let mut parts = Vec::new();
    while let Some(frame) = frames.next_frame()? {
        match frame.kind {
            FrameKind::Chunk => builder.push_chunk(frame.into_chunk()?.get()),
            FrameKind::Object => {
                builder.note_embedded_part();
                parts.push(frame.into_object_part()?);
            }
            // The index only speeds up seeks in files; unknown kinds come from newer minor
            // versions and are skipped, as docs/FORMAT.md promises.
            _ => {}
        }
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
