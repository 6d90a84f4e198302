//! The pipeline driven from a growing capture: a pipe (`hud-record -o - | hud-analyze tui -`) or a
//! file a recorder is still writing ([`crate::source::follow`]).
//!
//! A reader thread drains the source into a channel as fast as frames come, so a slow consumer
//! never slows the recorder down. [`Live`] takes the frames into the same [`ModelBuilder`] a
//! finished capture goes through, and on request analyzes what arrived: new stack nodes only are
//! symbolized (the [`Symbolizer`] keeps its parsed objects), then roles, blockers and hotspots
//! are computed again over the window of detail. Memory is bounded by that window: events older
//! than it are forgotten after their findings are folded into the session's totals
//! ([`Earlier`]), which the "since the start" view merges back.

pub mod session;
pub mod snapshot;

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use hud_format::reader::{assemble_objects, Damage, Ending, FrameStream, RawFrame};
use hud_format::types::{Header, ObjectPart};

use crate::analysis::earlier::Earlier;
use crate::analysis::frames::Classifier;
use crate::analysis::{Analysis, Options, Window};
use crate::error::AnalyzeError;
use crate::model::builder::ModelBuilder;
use crate::objects::{Bytes, Embedded};
use crate::observer::Observer;
use crate::source::{self, Opened, Stream};
use crate::symbols::{Arenas, Symbolizer};

/// Events are kept in detail for this long by default: a few minutes of a context-switch storm
/// (550 k switches/s at 5 bytes each) stay under a few hundred MiB.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);

/// What the reader thread sends.
pub enum Feed {
    /// A frame as read: the reader only reads, so that it keeps up with the writer; the frame
    /// is decompressed by whoever takes it.
    Frame(RawFrame),
    /// Bytes the reader skipped to find the next frame (salvaging a damaged stream).
    Damaged(Damage),
    /// The capture ended, and how (cleanly closed, or cut: the recorder was killed or is gone).
    End(Ending),
    Failed(AnalyzeError),
}

/// Opens a capture file that may still be written, past its header (which it waits for).
pub fn open_follow(
    path: &Path,
    read: &hud_format::reader::ReadOptions,
) -> Result<Opened, AnalyzeError> {
    let follow = crate::source::follow::Follow::open(path).map_err(|e| {
        AnalyzeError::Capture(hud_format::Error::io(
            format!("opening {} to follow it", path.display()),
            e,
        ))
    })?;
    source::open_stream(Box::new(follow), read)
}

/// Starts a thread that reads every frame of `stream` and sends it through `to`, wrapped by
/// `wrap`, never waiting for the receiver. It only reads (no decompression), so that it keeps up
/// with the writer (the caller enlarges a pipe: `source::open`).
/// Returns the capture's header and format version.
pub fn spawn_reader<T: Send + 'static>(
    stream: Stream,
    to: Sender<T>,
    wrap: impl Fn(Feed) -> T + Send + 'static,
) -> (Header, String) {
    let (mut frames, header): (FrameStream<Box<dyn Read + Send>>, Header) = stream.into_parts();
    let version = frames.version().to_string();
    std::thread::Builder::new()
        .name("hud-reader".into())
        .spawn(move || {
            let mut damage_sent = 0;
            loop {
                let feed = match frames.next_raw() {
                    Ok(Some(frame)) => Feed::Frame(frame),
                    Ok(None) => Feed::End(frames.ending().cloned().unwrap_or(Ending::Unclosed)),
                    Err(e) => Feed::Failed(e.into()),
                };
                for d in &frames.damage()[damage_sent..] {
                    if to.send(wrap(Feed::Damaged(d.clone()))).is_err() {
                        return;
                    }
                }
                damage_sent = frames.damage().len();
                let last = !matches!(feed, Feed::Frame(_));
                if to.send(wrap(feed)).is_err() || last {
                    return;
                }
            }
        })
        .expect("spawn the reader thread");
    (header, version)
}

/// An analysis of a growing capture.
pub struct Live<'a> {
    builder: ModelBuilder,
    symbolizer: Symbolizer<'a>,
    options: Options,
    /// Detail kept, in nanoseconds (0: everything).
    window: u64,
    earlier: Earlier,
    parts: Vec<(u64, ObjectPart)>,
    ending: Option<Ending>,
    /// Frames taken in since the last analysis.
    news: usize,
    chunks: usize,
    /// Facts of frames, by interned name: the symbolizer keeps every name for the session.
    classifier: Classifier,
}

impl<'a> Live<'a> {
    pub fn new(
        arenas: &'a Arenas<'a>,
        header: Header,
        version: String,
        options: Options,
        window: Duration,
    ) -> Self {
        let target = header.target.exe_path.clone();
        Live {
            symbolizer: Symbolizer::new(
                arenas,
                options.search.clone().with_process_root(&header),
                Vec::new(),
                target,
            ),
            builder: ModelBuilder::new(header, version),
            options,
            window: window.as_nanos().min(u128::from(u64::MAX)) as u64,
            earlier: Earlier::default(),
            parts: Vec::new(),
            ending: None,
            news: 0,
            chunks: 0,
            classifier: Classifier::default(),
        }
    }

    /// Takes in one frame. A frame that cannot be read is an error, or, salvaging, a gap.
    pub fn push(&mut self, frame: RawFrame) -> Result<(), AnalyzeError> {
        let at = frame.frame_ref();
        match source::decode_frame(frame) {
            Ok(source::Decoded::Chunk(chunk)) => {
                self.builder.push_chunk(chunk.get(), at.offset);
                self.chunks += 1;
            }
            Ok(source::Decoded::StackCopies(copies)) => {
                self.builder.push_stack_copies(copies.get());
            }
            Ok(source::Decoded::Tasks(tasks)) => self.builder.push_tasks(&tasks),
            Ok(source::Decoded::Polls(polls)) => self.builder.push_polls(&polls),
            Ok(source::Decoded::Provenance(p)) => self.builder.push_provenance(p),
            Ok(source::Decoded::ChunkTasks(rows)) => self.builder.push_chunk_tasks(rows),
            Ok(source::Decoded::Object(part)) => {
                self.builder.note_embedded_part();
                self.parts.push(part);
            }
            Ok(source::Decoded::Other) => {}
            Err(e) if self.options.read.salvage => {
                self.builder.note_damage(Damage::of_frame(&at, e));
            }
            Err(e) => return Err(e.into()),
        }
        self.news += 1;
        Ok(())
    }

    /// Takes in bytes the reader skipped (salvaging).
    pub fn damaged(&mut self, damage: Damage) {
        self.builder.note_damage(damage);
        self.news += 1;
    }

    /// The capture ended.
    pub fn end(&mut self, ending: Ending) {
        self.ending = Some(ending);
        self.news += 1;
    }

    /// How the capture ended, once it did.
    pub fn ending(&self) -> Option<&Ending> {
        self.ending.as_ref()
    }

    /// Whether frames arrived since the last analysis.
    pub fn has_news(&self) -> bool {
        self.news > 0
    }

    /// What was forgotten, in totals.
    pub fn earlier(&self) -> &Earlier {
        &self.earlier
    }

    /// Analyzes what arrived. When the capture outgrew the window of detail by a tenth, the
    /// oldest part is analyzed once more, folded into the session's totals, and forgotten.
    pub fn analyze(&mut self, observer: &dyn Observer) -> Result<Arc<Analysis>, AnalyzeError> {
        self.news = 0;
        // An object may span several frames: assembled once the first chunk (which the recorder
        // writes after every object) or the end has arrived, never half.
        if !self.parts.is_empty() && (self.chunks > 0 || self.ending.is_some()) {
            let objects = assemble_objects(std::mem::take(&mut self.parts))?;
            self.symbolizer
                .add_embedded(objects.into_iter().map(|o| Embedded {
                    path: o.path,
                    build_id: o.build_id,
                    bytes: Arc::new(Bytes::Owned(o.bytes)),
                }));
        }
        let model = self.builder.model();
        let (start, end) = (model.start, model.end);
        let step = self.window / 10;
        if self.window > 0 && end.saturating_sub(start) > self.window + step {
            let cut = end - self.window;
            let all = self.analyze_model(observer)?;
            let forgotten = all.findings_to_forget(Window {
                from: start,
                to: cut,
            });
            self.earlier.fold(&forgotten, start, cut - start);
            self.builder.forget_before(cut);
        }
        self.analyze_model(observer)
    }

    fn analyze_model(&mut self, observer: &dyn Observer) -> Result<Arc<Analysis>, AnalyzeError> {
        // Stack copies are unwound into the builder's model (and dropped) before it is cloned.
        self.symbolizer.unwind_copies(self.builder.model_mut());
        let mut model = self.builder.model().clone();
        if let Some(notice) = self.ending.as_ref().and_then(Ending::notice) {
            model.notices.insert(0, notice);
        }
        self.symbolizer.update(&model, observer);
        if self.symbolizer.replaced_placeholders() {
            self.classifier = Classifier::default();
        }
        let symbols = self.symbolizer.symbols();
        if let Some(e) = symbols.mismatches.first() {
            return Err(AnalyzeError::WrongBinary(e.clone()));
        }
        Ok(Arc::new(Analysis::with_classifier(
            self.options.clone(),
            model,
            symbols.clone(),
            &self.classifier,
        )))
    }
}

/// Lets the calling thread (and the threads it starts, such as a thread pool's) give way to
/// others under contention: the analysis of a live capture may lag, the recorder on the same
/// machine and the reader draining its pipe must not.
pub fn yield_to_the_recorder() {
    // SAFETY: setpriority on this thread's own id; failing only leaves the priority as it was.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// How far behind the target the model is: on the recording's machine, the time since its last
/// event (both clocks are this boot's CLOCK_MONOTONIC); elsewhere (over ssh), the time since the
/// last frame arrived.
pub fn age(header: &Header, end: u64, received_at: std::time::Instant) -> Duration {
    if !header.boot_id.is_empty() && header.boot_id == this_boot_id() {
        Duration::from_nanos(monotonic_ns().saturating_sub(end))
    } else {
        received_at.elapsed()
    }
}

fn this_boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
