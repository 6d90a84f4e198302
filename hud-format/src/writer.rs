//! Writes a capture frame by frame to any `Write`: a file, stdout, a pipe.
//!
//! Events accumulate in a pending [`Chunk`]; it becomes a frame when it is big enough or a second
//! has passed ([`CaptureWriter::maybe_flush`]), so a recorder killed with -9 loses at most about a
//! second. Every frame is flushed to the underlying writer as soon as it is encoded.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::columns::push_delta;
use crate::error::Error;
use crate::frame::{encode_preamble, Codec, FrameHeader, FrameKind, MAX_FRAME_LEN};
use crate::types::{
    Chunk, CounterValue, EventTasks, Header, Index, IndexEntry, Mapping, ObjectPart, StackCopies,
    ThreadEvent, ThreadEventKind, TimeColumn, Totals, COPY_OF_OFF_CPU, COPY_OF_SAMPLE, EMPTY_STACK,
};

/// When the pending chunk becomes a frame, and how hard it is compressed.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// zstd level; 3 is zstd's default and a good size/speed balance for these columns.
    pub zstd_level: i32,
    /// Longest time events wait in memory before they are written.
    pub flush_interval: Duration,
    /// Most events (of all kinds) in one chunk.
    pub max_chunk_events: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            flush_interval: Duration::from_secs(1),
            max_chunk_events: 256 * 1024,
        }
    }
}

/// Largest piece of an embedded object per frame (leaves room for the other fields).
const OBJECT_PART_LEN: usize = 32 << 20;

/// Stack bytes that make the pending chunk a frame early (a stack-copies frame stays far below
/// the frame size limit).
const MAX_PENDING_STACK_BYTES: usize = 16 << 20;

use crate::types::MAX_REMEMBERED_COPIES;

/// A hash of a stack copy's registers and bytes, to find repeats.
fn copy_hash(row: &StackCopyRow<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (row.ip, row.sp, row.bp, row.bytes).hash(&mut h);
    h.finish()
}

/// Per-column "previous timestamp" for delta encoding.
#[derive(Default)]
struct ColumnClocks {
    switches: u64,
    samples: u64,
    off_cpu: u64,
}

/// A pending stack-copies row that later copies of its thread may widen.
#[derive(Clone, Copy)]
struct CopyRun {
    row: usize,
    id: u32,
    ts_ns: u64,
}

/// zstd level of stack-copies frames up to [`STRONG_COPIES_LEN`] bytes.
const COPIES_ZSTD_LEVEL: i32 = 15;
const STRONG_COPIES_LEN: usize = 32 << 10;

/// Pending stack copies are written at the first chunk flush this long after the first of them.
const COPIES_FRAME_INTERVAL: Duration = Duration::from_secs(1);
/// Task rows held before a frame is written whatever the time (about 1 MiB).
const MAX_PENDING_TASK_ROWS: usize = 1 << 15;

/// Registers and stack bytes of one copy ([`CaptureWriter::push_stack_copy`]).
#[derive(Clone, Copy, Debug)]
pub struct StackCopyRow<'a> {
    /// The first event served (a sample's time, an off-CPU episode's end).
    pub ts_ns: u64,
    /// From `ts_ns` to the last event served.
    pub span_ns: u64,
    pub tid: u32,
    /// [`crate::types::COPY_OF_SAMPLE`] or [`crate::types::COPY_OF_OFF_CPU`].
    pub of: u8,
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// The stack from `sp` up.
    pub bytes: &'a [u8],
}

/// The capture writer. See the module docs.
pub struct CaptureWriter<W: Write> {
    out: W,
    offset: u64,
    options: WriterOptions,
    compressor: zstd::bulk::Compressor<'static>,
    chunk: Chunk,
    /// Stack copies of the pending chunk's events, written right after it.
    copies: StackCopies,
    copies_written: u64,
    /// Copies whose bytes were written, by a hash of registers and bytes: (id, ip, sp, bp). An
    /// equal copy is written as a repeat of that id.
    copies_seen: HashMap<u64, (u32, u64, u64, u64)>,
    next_copy_id: u32,
    /// Per (thread, event kind): the pending row its latest copy went into, and that copy's
    /// number: a thread's next copy with the same number widens that row's span instead of
    /// adding one (a parked worker's copies are one row per frame).
    copy_runs: HashMap<(u32, u8), CopyRun>,
    /// Per (thread, event kind): the time of the first event pushed since its latest copy.
    uncopied: HashMap<(u32, u8), u64>,
    /// When the pending copies' first row was pushed: they are written at the first chunk flush
    /// a second after it (fewer, larger frames).
    copies_since: Option<Instant>,
    /// The pending copies' "previous timestamp" (they outlive chunks: not in `clocks`).
    copies_clock: u64,
    clocks: ColumnClocks,
    /// The Tokio tasks of the pending chunk's events, written right after it (format 1.2).
    tasks: EventTasks,
    tasks_clock: u64,
    /// Whether the first tasks frame (the one that carries the source) is written.
    tasks_source_written: bool,
    /// (thread, task, tick) of each sample of the pending chunk, in its order, and (thread,
    /// task) of each off-CPU episode (format 1.3).
    chunk_sample_tasks: Vec<(u32, u64, u64)>,
    chunk_off_cpu_tasks: Vec<(u32, u64)>,
    /// The events' tasks of the chunks written since the last chunk-tasks frame.
    chunk_tasks: crate::chunk_tasks::Encoder,
    /// When the pending task rows' first was pushed: like copies, they are written at the first
    /// chunk flush a second after it (a frame per chunk flush cost more in frame overhead than
    /// the rows: +31 % on the busy demo's capture).
    tasks_since: Option<Instant>,
    pending_events: usize,
    /// Prefix-tree nodes: (parent node, address) → node id.
    stack_nodes: HashMap<(u32, u64), u32>,
    /// Whole stacks seen before → their leaf node: most events repeat a known stack.
    whole_stacks: HashMap<Box<[u64]>, u32>,
    next_stack_id: u32,
    next_seq: u32,
    next_object_id: u32,
    counters: HashMap<String, u64>,
    now_ns: u64,
    last_end_ns: u64,
    last_flush: Instant,
    index: Vec<IndexEntry>,
    totals: Totals,
    /// The task source given ([`Self::set_task_source`]), written again in each segment.
    task_source: String,
    /// The threads alive and their names, and every mapping pushed: what a new segment's first
    /// chunk says again ([`Self::start_segment`]).
    live_threads: std::collections::BTreeMap<u32, String>,
    mappings: Vec<Mapping>,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the preamble and `header`, and returns a writer ready for events.
    pub fn new(out: W, header: &Header, options: WriterOptions) -> Result<Self, Error> {
        let compressor = zstd::bulk::Compressor::new(options.zstd_level)
            .map_err(|e| Error::io("setting up zstd", e))?;
        let mut writer = Self {
            out,
            offset: 0,
            options,
            compressor,
            chunk: Chunk::default(),
            copies: StackCopies::default(),
            copies_written: 0,
            copies_seen: HashMap::new(),
            next_copy_id: 1,
            copy_runs: HashMap::new(),
            uncopied: HashMap::new(),
            copies_since: None,
            copies_clock: 0,
            clocks: ColumnClocks::default(),
            tasks: EventTasks::default(),
            tasks_clock: 0,
            tasks_source_written: false,
            chunk_sample_tasks: Vec::new(),
            chunk_off_cpu_tasks: Vec::new(),
            chunk_tasks: crate::chunk_tasks::Encoder::default(),
            tasks_since: None,
            pending_events: 0,
            stack_nodes: HashMap::new(),
            whole_stacks: HashMap::new(),
            next_stack_id: EMPTY_STACK + 1,
            next_seq: 0,
            next_object_id: 0,
            counters: HashMap::new(),
            now_ns: header.start_ns,
            last_end_ns: header.start_ns,
            last_flush: Instant::now(),
            index: Vec::new(),
            totals: Totals::default(),
            task_source: String::new(),
            live_threads: Default::default(),
            mappings: Vec::new(),
        };
        writer.write_raw(&encode_preamble())?;
        writer.chunk.stacks.first_id = writer.next_stack_id;
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(header)
            .map_err(|e| Error::Encode(e.to_string()))?;
        writer.write_frame(FrameKind::Header, &bytes, header.start_ns, header.start_ns)?;
        Ok(writer)
    }

    /// Bytes written so far, frames included.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Events written or pending so far.
    pub fn totals(&self) -> Totals {
        let mut totals = self.totals;
        totals.switches += self.chunk.switches.tid.len() as u64;
        totals.samples += self.chunk.samples.tid.len() as u64;
        totals.off_cpu += self.chunk.off_cpu.tid.len() as u64;
        totals
    }

    /// Tells the writer the current monotonic time, so an empty chunk still covers its time range.
    pub fn set_now(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
    }

    /// Returns the id of `frames` (leaf first), adding the nodes it needs to the pending chunk.
    pub fn intern_stack(&mut self, frames: &[u64]) -> u32 {
        if let Some(&node) = self.whole_stacks.get(frames) {
            return node;
        }
        let mut node = EMPTY_STACK;
        for &address in frames.iter().rev() {
            node = match self.stack_nodes.get(&(node, address)) {
                Some(id) => *id,
                None => {
                    let id = self.next_stack_id;
                    self.next_stack_id += 1;
                    self.stack_nodes.insert((node, address), id);
                    self.chunk.stacks.parent.push(node);
                    self.chunk.stacks.address.push(address);
                    id
                }
            };
        }
        if !frames.is_empty() {
            self.whole_stacks.insert(frames.into(), node);
        }
        node
    }

    fn note_time(&mut self, ts_ns: u64) {
        self.now_ns = self.now_ns.max(ts_ns);
        if self.pending_events == 0 {
            self.chunk.start_ns = ts_ns;
        } else {
            self.chunk.start_ns = self.chunk.start_ns.min(ts_ns);
        }
        self.pending_events += 1;
    }

    /// A thread went on (`on_cpu`) or off CPU.
    pub fn push_switch(
        &mut self,
        ts_ns: u64,
        tid: u32,
        cpu: u16,
        on_cpu: bool,
        prev_state: u32,
    ) -> Result<(), Error> {
        let s = &mut self.chunk.switches;
        push_time(&mut s.ts, &mut self.clocks.switches, ts_ns);
        s.tid.push(tid);
        s.cpu.push(cpu);
        s.on_cpu.push(on_cpu as u8);
        s.prev_state.push(prev_state.min(u16::MAX as u32) as u16);
        self.note_time(ts_ns);
        self.flush_if_full()
    }

    /// A cpu-clock sample with its stacks (leaf first).
    pub fn push_sample(
        &mut self,
        ts_ns: u64,
        tid: u32,
        cpu: u16,
        user: &[u64],
        kernel: &[u64],
    ) -> Result<(), Error> {
        self.push_sample_in_task(ts_ns, tid, cpu, user, kernel, 0, crate::wire::NO_TICK)
    }

    /// A cpu-clock sample that ran in Tokio task `task` (0: none known) with its scheduler's
    /// `tick` ([`crate::wire::NO_TICK`]: not read), written in the chunk's order (format 1.3's
    /// chunk-tasks frames: no time or thread per row).
    #[allow(clippy::too_many_arguments)]
    pub fn push_sample_in_task(
        &mut self,
        ts_ns: u64,
        tid: u32,
        cpu: u16,
        user: &[u64],
        kernel: &[u64],
        task: u64,
        tick: u64,
    ) -> Result<(), Error> {
        if task != 0 || tick != crate::wire::NO_TICK {
            self.tasks_since.get_or_insert_with(Instant::now);
        }
        self.chunk_sample_tasks.push((tid, task, tick));
        let user = self.intern_stack(user);
        let kernel = self.intern_stack(kernel);
        self.uncopied.entry((tid, COPY_OF_SAMPLE)).or_insert(ts_ns);
        let s = &mut self.chunk.samples;
        push_time(&mut s.ts, &mut self.clocks.samples, ts_ns);
        s.tid.push(tid);
        s.cpu.push(cpu);
        s.user_stack.push(user);
        s.kernel_stack.push(kernel);
        self.note_time(ts_ns);
        self.flush_if_full()
    }

    /// An off-CPU episode ending at `ts_ns` (switch-in), with the stack it left with.
    #[allow(clippy::too_many_arguments)]
    pub fn push_off_cpu(
        &mut self,
        ts_ns: u64,
        tid: u32,
        cpu: u16,
        duration_ns: u64,
        runnable_ns: u64,
        state: u32,
        user: &[u64],
        kernel: &[u64],
    ) -> Result<(), Error> {
        self.push_off_cpu_in_task(
            ts_ns,
            tid,
            cpu,
            (duration_ns, runnable_ns, state),
            user,
            kernel,
            0,
        )
    }

    /// An off-CPU episode (`(duration, runnable part, state)`) that blocked in Tokio task `task`
    /// (0: none known), written in the chunk's order (format 1.3).
    #[allow(clippy::too_many_arguments)]
    pub fn push_off_cpu_in_task(
        &mut self,
        ts_ns: u64,
        tid: u32,
        cpu: u16,
        (duration_ns, runnable_ns, state): (u64, u64, u32),
        user: &[u64],
        kernel: &[u64],
        task: u64,
    ) -> Result<(), Error> {
        if task != 0 {
            self.tasks_since.get_or_insert_with(Instant::now);
        }
        self.chunk_off_cpu_tasks.push((tid, task));
        let user = self.intern_stack(user);
        let kernel = self.intern_stack(kernel);
        self.uncopied.entry((tid, COPY_OF_OFF_CPU)).or_insert(ts_ns);
        let o = &mut self.chunk.off_cpu;
        push_time(&mut o.ts, &mut self.clocks.off_cpu, ts_ns);
        o.tid.push(tid);
        o.cpu.push(cpu);
        o.duration_ns.push(duration_ns);
        o.runnable_ns.push(runnable_ns.min(duration_ns));
        o.state.push(state.min(u16::MAX as u32) as u16);
        o.user_stack.push(user);
        o.kernel_stack.push(kernel);
        self.note_time(ts_ns);
        self.flush_if_full()
    }

    /// How the recorder read task ids, or (starting with [`crate::types::NO_TASK_IDS`]) why it
    /// could not: written with the first tasks frame. Call before the first flush.
    pub fn set_task_source(&mut self, source: &str) {
        self.task_source = source.to_owned();
        if !self.tasks_source_written {
            self.tasks.source = source.to_owned();
        }
    }

    /// The Tokio task an event already pushed (or pushed next, in the same chunk) ran in: `of`
    /// is [`COPY_OF_SAMPLE`] or [`COPY_OF_OFF_CPU`], `ts_ns` and `tid` the event's.
    /// `tick` is a sample's scheduler tick (see [`EventTasks`]).
    pub fn push_event_task(&mut self, of: u8, ts_ns: u64, tid: u32, task: u64, tick: u64) {
        self.tasks_since.get_or_insert_with(Instant::now);
        let t = &mut self.tasks;
        push_time(&mut t.ts, &mut self.tasks_clock, ts_ns);
        t.tid.push(tid);
        t.of.push(of);
        t.task.push(task);
        t.tick.push(tick);
    }

    /// Registers and stack bytes for events already pushed (written in a frame of their own
    /// after the chunk that holds those events). A copy equal to one written before (same
    /// registers, same bytes) is written as a reference to it.
    pub fn push_stack_copy(&mut self, row: &StackCopyRow<'_>) -> Result<(), Error> {
        if row.bytes.is_empty() {
            // Registers alone unwind nothing.
            return Ok(());
        }
        if self.copies.word_value.len() * 10 + row.bytes.len() > MAX_PENDING_STACK_BYTES {
            // Their events are in chunks already written or in the pending one.
            self.flush_chunk()?;
            let end = self.last_end_ns;
            self.write_copies(end)?;
        }
        if self.copies_seen.len() >= MAX_REMEMBERED_COPIES {
            self.copies_seen.clear();
        }
        let regs = (row.ip, row.sp, row.bp);
        let hash = copy_hash(row);
        let repeat = self
            .copies_seen
            .get(&hash)
            .filter(|(_, ip, sp, bp)| (*ip, *sp, *bp) == regs)
            .map(|(id, ..)| *id);
        let run_key = (row.tid, row.of);
        let first_uncopied = self.uncopied.remove(&run_key);
        let c = &mut self.copies;
        let last_ns = row.ts_ns.saturating_add(row.span_ns);
        if let (Some(id), Some(run)) = (repeat, self.copy_runs.get(&run_key)) {
            // Every event of the thread since the run's row has this copy: widen the row.
            if run.id == id && first_uncopied.is_none_or(|t| t >= row.ts_ns) {
                c.span_ns[run.row] = last_ns.saturating_sub(run.ts_ns).max(c.span_ns[run.row]);
                return Ok(());
            }
        }
        let same_as = match repeat {
            Some(id) => id,
            None => {
                let id = self.next_copy_id;
                self.next_copy_id = id.checked_add(1).unwrap_or(1);
                self.copies_seen.insert(hash, (id, row.ip, row.sp, row.bp));
                // This frame's copies with bytes are numbered from its first one.
                if c.first_id == 0 {
                    c.first_id = id;
                }
                0
            }
        };
        push_time(&mut c.ts, &mut self.copies_clock, row.ts_ns);
        c.span_ns.push(row.span_ns);
        c.tid.push(row.tid);
        c.of.push(row.of);
        let (ip, sp, bp, bytes) = if same_as == 0 {
            (row.ip, row.sp, row.bp, row.bytes)
        } else {
            (0, 0, 0, &[][..])
        };
        c.ip.push(ip);
        c.sp.push(sp);
        c.bp.push(bp);
        c.len.push(bytes.len() as u32);
        c.same_as.push(same_as);
        let before = c.word_value.len();
        for (i, word) in bytes.chunks_exact(8).enumerate() {
            let value = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            if value != 0 {
                c.word_index.push(i as u16);
                c.word_value.push(value);
            }
        }
        c.words.push((c.word_value.len() - before) as u32);
        let run = CopyRun {
            row: c.tid.len() - 1,
            id: if same_as == 0 {
                self.next_copy_id.wrapping_sub(1).max(1)
            } else {
                same_as
            },
            ts_ns: row.ts_ns,
        };
        self.copy_runs.insert(run_key, run);
        self.copies_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Stack-copy rows written so far (pending ones included; a widened row counts once).
    pub fn stack_copies(&self) -> u64 {
        self.copies_written + self.copies.tid.len() as u64
    }

    pub fn push_thread(&mut self, event: ThreadEvent) -> Result<(), Error> {
        if event.kind == ThreadEventKind::Exited {
            self.live_threads.remove(&event.tid);
        } else {
            self.live_threads.insert(event.tid, event.name.clone());
        }
        self.note_time(event.ts_ns);
        self.chunk.threads.push(event);
        self.flush_if_full()
    }

    pub fn push_mapping(&mut self, mapping: Mapping) -> Result<(), Error> {
        self.mappings.push(mapping.clone());
        self.note_time(mapping.ts_ns);
        self.chunk.mappings.push(mapping);
        self.flush_if_full()
    }

    /// Records a cumulative counter; written with the next chunk when it changed.
    pub fn set_counter(&mut self, name: &str, value: u64) {
        if self.counters.get(name) == Some(&value) {
            return;
        }
        self.counters.insert(name.to_owned(), value);
        match self.chunk.counters.iter_mut().find(|c| c.name == name) {
            Some(c) => c.value = value,
            None => self.chunk.counters.push(CounterValue {
                name: name.to_owned(),
                value,
            }),
        }
    }

    fn flush_if_full(&mut self) -> Result<(), Error> {
        if self.pending_events >= self.options.max_chunk_events {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Writes the pending chunk when the flush interval has passed. Call it often (e.g. every
    /// 100 ms) from the recorder's loop. Returns whether a frame was written.
    pub fn maybe_flush(&mut self) -> Result<bool, Error> {
        if self.last_flush.elapsed() >= self.options.flush_interval {
            self.flush_chunk()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes the pending chunk now, even when empty (an empty chunk still says "time passed").
    pub fn flush_chunk(&mut self) -> Result<(), Error> {
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.seq = self.next_seq;
        if self.pending_events == 0 {
            chunk.start_ns = self.last_end_ns;
        }
        chunk.end_ns = self.now_ns.max(chunk.start_ns);
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&chunk)
            .map_err(|e| Error::Encode(e.to_string()))?;
        self.write_frame(FrameKind::Chunk, &bytes, chunk.start_ns, chunk.end_ns)?;
        self.chunk_tasks.push_chunk(
            chunk.seq,
            &std::mem::take(&mut self.chunk_sample_tasks),
            &std::mem::take(&mut self.chunk_off_cpu_tasks),
        );
        // The source as soon as there is one (a live viewer says at once whether ids come), then
        // rows about once a second.
        let tasks_due = !self.tasks_source_written && !self.tasks.source.is_empty()
            || self
                .tasks_since
                .is_some_and(|t| t.elapsed() >= COPIES_FRAME_INTERVAL)
            || self.tasks.tid.len() >= MAX_PENDING_TASK_ROWS
            || self.chunk_tasks.rows() >= MAX_PENDING_TASK_ROWS;
        if tasks_due {
            self.write_tasks(chunk.start_ns, chunk.end_ns)?;
        }
        let copies_due = self
            .copies_since
            .is_some_and(|t| t.elapsed() >= COPIES_FRAME_INTERVAL)
            || self.copies.word_value.len() * 10 >= MAX_PENDING_STACK_BYTES / 2;
        if copies_due {
            self.write_copies(chunk.end_ns)?;
        }

        self.next_seq += 1;
        self.last_end_ns = chunk.end_ns;
        self.totals.switches += chunk.switches.tid.len() as u64;
        self.totals.samples += chunk.samples.tid.len() as u64;
        self.totals.off_cpu += chunk.off_cpu.tid.len() as u64;
        self.totals.stacks += chunk.stacks.parent.len() as u64;
        self.totals.threads += chunk.threads.len() as u64;
        self.totals.mappings += chunk.mappings.len() as u64;
        self.totals.chunks += 1;
        self.pending_events = 0;
        self.clocks = ColumnClocks::default();
        self.last_flush = Instant::now();
        // Reuse the columns' allocations for the next chunk.
        clear_chunk(&mut chunk);
        chunk.stacks.first_id = self.next_stack_id;
        self.chunk = chunk;
        Ok(())
    }

    /// Embeds an object file (e.g. the target's executable with its debug info), split in parts.
    pub fn embed_object(&mut self, path: &str, build_id: &[u8], bytes: &[u8]) -> Result<(), Error> {
        let object_id = self.next_object_id;
        self.next_object_id += 1;
        let mut offset = 0usize;
        loop {
            let end = (offset + OBJECT_PART_LEN).min(bytes.len());
            let part = ObjectPart {
                object_id,
                path: path.to_owned(),
                build_id: build_id.to_vec(),
                total_len: bytes.len() as u64,
                offset: offset as u64,
                bytes: bytes[offset..end].to_vec(),
            };
            let archived = rkyv::to_bytes::<rkyv::rancor::Error>(&part)
                .map_err(|e| Error::Encode(e.to_string()))?;
            let now = self.now_ns;
            self.write_frame(FrameKind::Object, &archived, now, now)?;
            offset = end;
            if offset >= bytes.len() {
                return Ok(());
            }
        }
    }

    /// Writes where the target ran (format 1.4): once after the header, and again in a dump.
    pub fn write_provenance(&mut self, provenance: &crate::types::Provenance) -> Result<(), Error> {
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(provenance)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let at = self.now_ns;
        self.write_frame(FrameKind::Provenance, &bytes, at, at)
    }

    /// Writes exact poll durations (`--poll-probes`) at once: the recorder calls it about once a
    /// second and at close, after the chunks of the same time.
    pub fn write_polls(&mut self, polls: &crate::types::Polls) -> Result<(), Error> {
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(polls)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let start = polls
            .long
            .start_ns
            .iter()
            .copied()
            .min()
            .unwrap_or(polls.ts_ns);
        self.write_frame(
            FrameKind::Polls,
            &bytes,
            start.min(polls.ts_ns),
            polls.ts_ns,
        )
    }

    /// Writes the pending task rows (after the chunks of their events), and the source once;
    /// then the samples' tasks of the chunks written since the last time.
    fn write_tasks(&mut self, start_ns: u64, end_ns: u64) -> Result<(), Error> {
        self.tasks_since = None;
        if let Some(frame) = self.chunk_tasks.take() {
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&frame)
                .map_err(|e| Error::Encode(e.to_string()))?;
            self.write_frame(FrameKind::ChunkTasks, &bytes, start_ns, end_ns)?;
        }
        if self.tasks.tid.is_empty() && (self.tasks_source_written || self.tasks.source.is_empty())
        {
            return Ok(());
        }
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&self.tasks)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let start_ns = self.tasks.ts.iter().next().unwrap_or(start_ns).min(end_ns);
        self.write_frame(FrameKind::Tasks, &bytes, start_ns, end_ns)?;
        self.tasks_source_written = true;
        let t = &mut self.tasks;
        t.source.clear();
        t.ts.deltas.clear();
        t.tid.clear();
        t.of.clear();
        t.task.clear();
        t.tick.clear();
        Ok(())
    }

    /// Writes the pending stack copies (after the chunk that holds their events).
    fn write_copies(&mut self, end_ns: u64) -> Result<(), Error> {
        self.copies_since = None;
        self.copy_runs.clear();
        if self.copies.tid.is_empty() {
            return Ok(());
        }
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&self.copies)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let start_ns = self.copies.ts.iter().next().unwrap_or(end_ns);
        self.write_frame(FrameKind::StackCopies, &bytes, start_ns, end_ns)?;
        self.copies_written += self.copies.tid.len() as u64;
        clear_copies(&mut self.copies);
        Ok(())
    }

    /// Ends a segment (the flight recorder's ring): writes everything pending, then forgets what
    /// later frames could refer back to (interned stacks, stack copies, the task source) and
    /// says again, in the next chunk, the threads alive and the mappings. So the frames from here
    /// on read alone after a capture's first frames: a ring of segments can drop its oldest and
    /// a dump starts at any segment. Chunk numbers, stack ids and copy ids go on rising, so
    /// consecutive segments read as one capture too. The caller moves the output to the next
    /// segment's file after this returns.
    pub fn start_segment(&mut self) -> Result<(), Error> {
        self.flush_chunk()?;
        let end = self.last_end_ns;
        self.write_copies(end)?;
        self.write_tasks(end, end)?;
        self.stack_nodes.clear();
        self.whole_stacks.clear();
        // An index of a ring would point into segments removed since (none is written): what
        // it holds would only grow for days.
        self.index.clear();
        self.copies_seen.clear();
        self.copy_runs.clear();
        self.uncopied.clear();
        if !self.task_source.is_empty() {
            self.tasks_source_written = false;
            self.tasks.source = self.task_source.clone();
        }
        let now = self.now_ns;
        let threads: Vec<ThreadEvent> = self
            .live_threads
            .iter()
            .map(|(&tid, name)| ThreadEvent {
                ts_ns: now,
                tid,
                kind: ThreadEventKind::New,
                name: name.clone(),
            })
            .collect();
        self.note_time(now);
        self.chunk.threads.extend(threads);
        self.chunk.mappings.extend(self.mappings.iter().cloned());
        let counters: Vec<CounterValue> = self
            .counters
            .iter()
            .map(|(name, &value)| CounterValue {
                name: name.clone(),
                value,
            })
            .collect();
        for c in counters {
            if !self.chunk.counters.iter().any(|k| k.name == c.name) {
                self.chunk.counters.push(c);
            }
        }
        Ok(())
    }

    /// The next chunk's number: where a segment started now begins.
    pub fn next_chunk_seq(&self) -> u32 {
        self.next_seq
    }

    /// The underlying writer (the flight recorder moves it to the next segment's file between
    /// frames).
    pub fn output_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Hands back the underlying writer, flushed, writing nothing more (what was pushed and not
    /// yet written is dropped): for a capture put together from frames written elsewhere (a
    /// flight recorder's dump: a header and a provenance frame from here, the rest copied).
    pub fn into_inner(mut self) -> Result<W, Error> {
        self.out
            .flush()
            .map_err(|e| Error::io("writing the capture", e))?;
        Ok(self.out)
    }

    /// Writes everything pending and flushes, without an index: the end of a flight recorder's
    /// last segment (an index's offsets would point into segments removed since).
    pub fn finish_without_index(mut self) -> Result<W, Error> {
        self.flush_chunk()?;
        let end = self.last_end_ns;
        self.write_copies(end)?;
        self.write_tasks(end, end)?;
        self.out
            .flush()
            .map_err(|e| Error::io("writing the capture", e))?;
        Ok(self.out)
    }

    /// Writes the last chunk and the index, flushes, and hands back the underlying writer.
    pub fn finish(mut self) -> Result<W, Error> {
        self.flush_chunk()?;
        let end = self.last_end_ns;
        self.write_copies(end)?;
        self.write_tasks(end, end)?;
        let index = Index {
            end_ns: self.last_end_ns,
            entries: std::mem::take(&mut self.index),
            totals: self.totals,
        };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&index)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let end = self.last_end_ns;
        self.write_frame(FrameKind::Index, &bytes, end, end)?;
        Ok(self.out)
    }

    fn write_frame(
        &mut self,
        kind: FrameKind,
        raw: &[u8],
        start_ns: u64,
        end_ns: u64,
    ) -> Result<(), Error> {
        if raw.len() > MAX_FRAME_LEN as usize {
            return Err(Error::Encode(format!(
                "a {kind:?} frame of {} bytes is over the {MAX_FRAME_LEN} byte limit",
                raw.len()
            )));
        }
        let small_side_frame = matches!(
            kind,
            FrameKind::StackCopies
                | FrameKind::Tasks
                | FrameKind::Polls
                | FrameKind::ChunkTasks
                | FrameKind::Provenance
        );
        let stored = if small_side_frame && raw.len() <= STRONG_COPIES_LEN {
            // About one a second, and small with leaf windows: worth zstd's harder levels. (The
            // large frames of `--unwind dwarf` would double the recorder's CPU at that level.)
            zstd::bulk::compress(raw, COPIES_ZSTD_LEVEL)
        } else {
            self.compressor.compress(raw)
        }
        .map_err(|e| Error::io("compressing a frame", e))?;
        let header = FrameHeader::for_payload(kind, Codec::Zstd, &stored, raw.len());
        self.index.push(IndexEntry {
            offset: self.offset,
            kind: kind.to_u8(),
            start_ns,
            end_ns,
        });
        self.write_raw(&header.encode())?;
        self.write_raw(&stored)?;
        self.out
            .flush()
            .map_err(|e| Error::io("writing the capture", e))
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("writing the capture", e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

fn push_time(column: &mut TimeColumn, prev: &mut u64, ts_ns: u64) {
    if column.deltas.is_empty() {
        column.base_ns = ts_ns;
        *prev = ts_ns;
    }
    push_delta(&mut column.deltas, prev, ts_ns);
}

fn clear_copies(copies: &mut StackCopies) {
    let StackCopies {
        ts,
        span_ns,
        tid,
        of,
        ip,
        sp,
        bp,
        len,
        same_as,
        words,
        word_index,
        word_value,
        first_id,
    } = copies;
    *first_id = 0;
    ts.deltas.clear();
    for column in [span_ns, ip, sp, bp, word_value] {
        column.clear();
    }
    words.clear();
    word_index.clear();
    tid.clear();
    of.clear();
    len.clear();
    same_as.clear();
}

fn clear_chunk(chunk: &mut Chunk) {
    let Chunk {
        seq: _,
        start_ns: _,
        end_ns: _,
        switches,
        samples,
        off_cpu,
        stacks,
        threads,
        mappings,
        counters,
    } = chunk;
    switches.ts.deltas.clear();
    switches.tid.clear();
    switches.cpu.clear();
    switches.on_cpu.clear();
    switches.prev_state.clear();
    samples.ts.deltas.clear();
    samples.tid.clear();
    samples.cpu.clear();
    samples.user_stack.clear();
    samples.kernel_stack.clear();
    off_cpu.ts.deltas.clear();
    off_cpu.tid.clear();
    off_cpu.cpu.clear();
    off_cpu.duration_ns.clear();
    off_cpu.runnable_ns.clear();
    off_cpu.state.clear();
    off_cpu.user_stack.clear();
    off_cpu.kernel_stack.clear();
    stacks.parent.clear();
    stacks.address.clear();
    threads.clear();
    mappings.clear();
    counters.clear();
}
