//! Builds a [`Model`] chunk by chunk, from a whole file or from a stream as frames arrive.
//!
//! A file's chunks are decompressed in parallel by the source; each is then appended here in
//! capture order, decoded in place straight into the threads' timelines: no per-chunk copy of
//! the rows, which on a context-switch storm would hold megabytes per chunk in flight (and keep
//! the allocator's freed pages). [`ModelBuilder::finish`] seals the timelines and sorts samples.

use std::collections::BTreeMap;

use hud_format::chunk_tasks::ChunkRows;
use hud_format::frame::FrameKind;
use hud_format::reader::{kind_name, Damage, Ending, Stacks};
use hud_format::types::{
    ArchivedChunk, ArchivedStackCopies, ArchivedThreadEventKind, EventTasks, Header,
    COPY_OF_OFF_CPU, COPY_OF_SAMPLE, NO_TASK_IDS, PROBES_ATTACHED_COUNTER,
};
use hud_format::wire::NO_TICK;
use rayon::slice::ParallelSliceMut;
use rustc_hash::FxHashMap as HashMap;

use super::{CopyOf, Missing, Model, OffCpu, Sample, StackCopy, State, Thread};

/// A model under construction.
pub struct ModelBuilder {
    model: Model,
    expected_seq: u32,
    /// End of the last chunk taken: where a gap after it starts.
    last_end: Option<u64>,
    /// Damaged frames since the last chunk taken: the cause of the gap before the next one.
    pending_damage: Vec<Damage>,
    /// Times an event may have ([`plausible_times`]).
    plausible: std::ops::RangeInclusive<u64>,
    /// Events left out for times outside `plausible`.
    implausible: u64,
    /// Task rows (format 1.2) not yet given to their events.
    pending_tasks: Vec<TaskRow>,
    /// Format 1.3's chunk-tasks rows of chunks not in yet (a whole file gives them first), by
    /// chunk.
    early_chunk_tasks: HashMap<u32, ChunkRows>,
    /// The events of the latest chunks, in their order, for chunk-tasks frames still to come (a
    /// stream gives them after their chunks); at most [`MAX_KEPT_EVENT_KEYS`].
    recent_chunks: std::collections::VecDeque<ChunkKeys>,
    /// Whether the capture can hold chunk-tasks frames (format 1.3 and later).
    chunk_tasks_possible: bool,
    /// Whether chunk-tasks frames may still come after their chunks (a stream); a whole file
    /// gives them all first ([`ModelBuilder::chunk_tasks_given_first`]).
    chunk_tasks_may_follow: bool,
    /// Samples and off-CPU episodes sorted at the last seal (rows after them are new).
    sorted_samples: usize,
    sorted_off_cpu: usize,
}

/// Keeps a chunk's event keys for its chunk-tasks frame, forgetting the oldest chunks' past
/// [`MAX_KEPT_EVENT_KEYS`] (their frame never came: a recorder without task ids).
fn keep_keys(recent: &mut std::collections::VecDeque<ChunkKeys>, keys: ChunkKeys) {
    recent.push_back(keys);
    let len = |c: &ChunkKeys| c.samples.len() + c.off_cpu.len();
    let mut kept: usize = recent.iter().map(len).sum();
    while kept > MAX_KEPT_EVENT_KEYS && recent.len() > 1 {
        kept -= recent.pop_front().map_or(0, |c| len(&c));
    }
}

/// Sorts `rows` by `key`. The first time (a whole capture) in parallel; after that only the rows
/// pushed since are new, and a stable sort finds the sorted run before them and merges: a live
/// view seals four times a second, and sorting every row again was 8 % of its CPU.
fn sort_new_rows<T: Send, K: Ord>(
    rows: &mut [T],
    sorted: &mut usize,
    key: impl Fn(&T) -> K + Sync,
) {
    if *sorted == rows.len() {
        return;
    }
    if *sorted == 0 {
        rows.par_sort_unstable_by_key(key);
    } else {
        rows[*sorted..].sort_unstable_by_key(&key);
        rows.sort_by_key(key);
    }
    *sorted = rows.len();
}

/// A recording's events happen from shortly before its start (CPUs' clocks are read a little
/// apart) to, at the most, a year after it. A time outside is damage or craft, and would make
/// durations and sums overflow: such events are left out, and counted.
/// How long a task row waits for its event (the recorder writes rows and events within one
/// chunk flush of each other).
/// A task row of a tasks frame: (tid, ts, of, task, tick).
type TaskRow = (u32, u64, u8, u64, u64);

/// Events whose keys wait for their chunk-tasks frame (about a second's worth is needed).
const MAX_KEPT_EVENT_KEYS: usize = 1 << 20;

/// A chunk's samples and off-CPU episodes, (thread, time) each, in its order.
struct ChunkKeys {
    seq: u32,
    samples: Vec<(u32, u64)>,
    off_cpu: Vec<(u32, u64)>,
}

const TASK_ROW_PATIENCE_NS: u64 = 5_000_000_000;

fn plausible_times(start: u64) -> std::ops::RangeInclusive<u64> {
    const MINUTE: u64 = 60_000_000_000;
    const YEAR: u64 = 366 * 24 * 60 * MINUTE;
    start.saturating_sub(MINUTE)..=start.saturating_add(YEAR)
}

impl ModelBuilder {
    /// Starts a model for a capture with this header and format version.
    pub fn new(header: Header, version: String) -> Self {
        let start = header.start_ns;
        let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
        let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        let chunk_tasks_possible = (major, minor) >= (1, 3);
        ModelBuilder {
            model: Model {
                start,
                end: start,
                header,
                version,
                notices: Vec::new(),
                missing: Vec::new(),
                chunks: 0,
                embedded_parts: 0,
                threads: BTreeMap::new(),
                samples: Vec::new(),
                off_cpu: Vec::new(),
                stacks: Stacks::default(),
                mappings: Vec::new(),
                counters: BTreeMap::new(),
                pending_copies: Default::default(),
                task_source: None,
                polls: None,
                provenance: None,
            },
            expected_seq: 0,
            last_end: None,
            pending_damage: Vec::new(),
            early_chunk_tasks: HashMap::default(),
            recent_chunks: Default::default(),
            chunk_tasks_possible,
            chunk_tasks_may_follow: true,
            plausible: plausible_times(start),
            implausible: 0,
            pending_tasks: Vec::new(),
            sorted_samples: 0,
            sorted_off_cpu: 0,
        }
    }

    /// Appends one chunk, the frame at byte `offset`; chunks must come in capture order. A chunk
    /// that repeats or comes before one already taken is skipped with a notice, as is one whose
    /// stack ids overlap those defined before (its events would name the wrong stacks).
    pub fn push_chunk(&mut self, c: &ArchivedChunk, offset: u64) {
        let seq = c.seq.to_native();
        if self.last_end.is_some() && seq < self.expected_seq {
            self.model.notices.push(format!(
                "chunk {seq} (frame at byte {offset}) comes again or out of order after chunk \
                 {}: skipped",
                self.expected_seq - 1
            ));
            return;
        }
        if let Err(reason) = self.model.stacks.add(c) {
            self.note_damage(Damage {
                offset,
                len: 0,
                kind: Some(FrameKind::Chunk),
                reason: format!("chunk {seq}: {reason}"),
            });
            return;
        }
        if self.last_end.is_none() {
            self.take_real_start(c);
        }
        let clamp = |t: u64| t.clamp(*self.plausible.start(), *self.plausible.end());
        let (chunk_start, chunk_end) = (clamp(c.start_ns.to_native()), clamp(c.end_ns.to_native()));
        if seq != self.expected_seq || !self.pending_damage.is_empty() {
            let from = self.last_end.unwrap_or(self.model.start);
            self.model.missing.push(Missing {
                from,
                to: chunk_start.max(from),
                chunks: (seq > self.expected_seq).then(|| (self.expected_seq, seq - 1)),
                causes: std::mem::take(&mut self.pending_damage),
            });
        }
        self.expected_seq = seq.wrapping_add(1);
        self.last_end = Some(chunk_end);
        let m = &mut self.model;
        let plausible = self.plausible.clone();
        let mut implausible = 0u64;
        m.chunks += 1;
        m.end = m.end.max(chunk_end);
        let start = m.start;
        for t in c.threads.iter() {
            let tid = t.tid.to_native();
            let ts = clamp(t.ts_ns.to_native());
            let thread = m
                .threads
                .entry(tid)
                .or_insert_with(|| Thread::new(tid, start));
            if thread.names.last().map(|(_, n)| n.as_str()) != Some(t.name.as_str()) {
                thread.names.push((ts, t.name.to_string()));
            }
            if t.kind == ArchivedThreadEventKind::Exited {
                thread.exited = Some(ts);
            }
        }
        let s = &c.switches;
        let mut thread: Option<&mut Thread> = None;
        for (i, ts) in s.ts.iter().enumerate() {
            if !plausible.contains(&ts) {
                implausible += 1;
                continue;
            }
            let tid = s.tid[i].to_native();
            // Rows of one thread come in runs: look the thread up when it changes.
            let t = match thread.take() {
                Some(t) if t.tid == tid => t,
                _ => m
                    .threads
                    .entry(tid)
                    .or_insert_with(|| Thread::new(tid, start)),
            };
            let state = State::after_switch(s.on_cpu[i] == 1, s.prev_state[i].to_native());
            t.timeline.push(ts, state);
            thread = Some(t);
        }
        let s = &c.samples;
        let o = &c.off_cpu;
        // The events' tasks (format 1.3): given now when their frame came first, else their keys
        // wait for it.
        let (tasks, off_cpu_tasks) = if self.chunk_tasks_possible {
            let sample_tids: Vec<u32> = s.tid.iter().map(|t| t.to_native()).collect();
            let off_tids: Vec<u32> = o.tid.iter().map(|t| t.to_native()).collect();
            match self.early_chunk_tasks.remove(&seq) {
                Some(rows) => (rows.samples(&sample_tids), rows.off_cpu(&off_tids)),
                None if !self.chunk_tasks_may_follow => (None, None),
                None => {
                    let keys = ChunkKeys {
                        seq,
                        samples: sample_tids.into_iter().zip(s.ts.iter()).collect(),
                        off_cpu: off_tids.into_iter().zip(o.ts.iter()).collect(),
                    };
                    keep_keys(&mut self.recent_chunks, keys);
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        for (i, ts) in s.ts.iter().enumerate() {
            if !plausible.contains(&ts) {
                implausible += 1;
                continue;
            }
            let (task, tick) = tasks
                .as_ref()
                .and_then(|t| t.get(i).copied())
                .unwrap_or((0, NO_TICK));
            let sample = Sample {
                ts,
                tid: s.tid[i].to_native(),
                stack: m.stacks.local(s.user_stack[i].to_native()),
                task,
                tick,
            };
            m.threads
                .entry(sample.tid)
                .or_insert_with(|| Thread::new(sample.tid, start))
                .samples += 1;
            m.samples.push(sample);
        }
        for (i, ts) in o.ts.iter().enumerate() {
            if !plausible.contains(&ts) {
                implausible += 1;
                continue;
            }
            // An episode began after the earliest plausible time, and its runnable part is a
            // part of it.
            let duration = o.duration_ns[i].to_native().min(ts - plausible.start());
            let off = OffCpu {
                end: ts,
                tid: o.tid[i].to_native(),
                duration,
                runnable: o.runnable_ns[i].to_native().min(duration),
                state: o.state[i].to_native(),
                stack: m.stacks.local(o.user_stack[i].to_native()),
                task: off_cpu_tasks
                    .as_ref()
                    .and_then(|t| t.get(i).copied())
                    .unwrap_or(0),
            };
            m.threads
                .entry(off.tid)
                .or_insert_with(|| Thread::new(off.tid, start));
            m.off_cpu.push(off);
        }
        self.implausible += implausible;
        for mapping in c.mappings.iter().map(|mp| mp.to_mapping()) {
            // Each segment of a flight recorder's ring says its mappings again.
            let same = |k: &hud_format::types::Mapping| {
                (
                    k.start,
                    k.end,
                    k.file_offset,
                    k.inode,
                    &k.path,
                    &k.build_id,
                    &k.perms,
                ) == (
                    mapping.start,
                    mapping.end,
                    mapping.file_offset,
                    mapping.inode,
                    &mapping.path,
                    &mapping.build_id,
                    &mapping.perms,
                )
            };
            if !m.mappings.iter().rev().any(same) {
                m.mappings.push(mapping);
            }
        }
        for counter in c.counters.iter() {
            m.counters
                .insert(counter.name.to_string(), counter.value.to_native());
        }
    }

    /// Appends a stack-copies frame (format 1.1): registers and stack bytes for events of the
    /// chunks before it, unwound by the symbolizer. Copies of an unknown kind, or stamped
    /// outside the recording, are left out.
    pub fn push_stack_copies(&mut self, c: &ArchivedStackCopies) {
        let pending = &mut self.model.pending_copies;
        let mut at = 0usize;
        let mut next_id = c.first_id.to_native();
        for (i, ts) in c.ts.iter().enumerate() {
            let count = c.words[i].to_native() as usize;
            let words = at..at + count;
            at += count;
            let same_as = c.same_as[i].to_native();
            let id = if same_as != 0 {
                same_as
            } else {
                let id = next_id;
                next_id = next_id.wrapping_add(1);
                id
            };
            let of = match c.of[i] {
                COPY_OF_SAMPLE => CopyOf::Sample,
                COPY_OF_OFF_CPU => CopyOf::OffCpu,
                _ => continue,
            };
            let (Some(index), Some(value)) =
                (c.word_index.get(words.clone()), c.word_value.get(words))
            else {
                continue;
            };
            if !self.plausible.contains(&ts) {
                self.implausible += 1;
                continue;
            }
            let start = pending.value.len();
            pending.index.extend(index.iter().map(|i| i.to_native()));
            pending.value.extend(value.iter().map(|v| v.to_native()));
            pending.copies.push(StackCopy {
                tid: c.tid[i].to_native(),
                of,
                first: ts,
                last: ts.saturating_add(c.span_ns[i].to_native()),
                ip: c.ip[i].to_native(),
                sp: c.sp[i].to_native(),
                bp: c.bp[i].to_native(),
                len: c.len[i].to_native() as usize,
                words: start..pending.value.len(),
                id,
                repeat: same_as != 0,
            });
        }
    }

    /// The model so far, sealed, for a step that changes it in place (unwinding stack copies).
    pub fn model_mut(&mut self) -> &mut Model {
        self.seal();
        &mut self.model
    }

    /// The first chunk may say when the probes were attached ([`PROBES_ATTACHED_COUNTER`]):
    /// the recording starts then, not when the header was stamped (seconds earlier under load,
    /// time in which threads would be taken as on CPU since the start). Taken only when it is
    /// a little after the header's start, and before any event.
    fn take_real_start(&mut self, c: &ArchivedChunk) {
        const MOST: u64 = 10 * 60 * 1_000_000_000;
        let Some(attached) = c
            .counters
            .iter()
            .find(|k| k.name.as_str() == PROBES_ATTACHED_COUNTER)
            .map(|k| k.value.to_native())
        else {
            return;
        };
        let m = &mut self.model;
        if attached > m.start && attached - m.start <= MOST && m.threads.is_empty() {
            m.start = attached;
            m.end = m.end.max(attached);
        }
    }

    /// A frame the source could not read. A chunk (or bytes whose kind is unknown) means events
    /// are missing: the gap is measured when the next chunk arrives. Other kinds cost no events.
    pub fn note_damage(&mut self, damage: Damage) {
        match damage.kind {
            None | Some(FrameKind::Chunk) => self.pending_damage.push(damage),
            Some(FrameKind::Object) => self.model.notices.push(format!(
                "{damage}; the object it belongs to is left out (its addresses are symbolized \
                 from disk if found there)"
            )),
            Some(FrameKind::Index) => {}
            Some(kind) => self.model.notices.push(format!(
                "{damage} ({} frames only add detail)",
                kind_name(kind)
            )),
        }
    }

    /// Counts an embedded object part (the objects themselves are assembled by the source).
    pub fn note_embedded_part(&mut self) {
        self.model.embedded_parts += 1;
    }

    /// The model so far, sealed to the last chunk's end (for a live view; cheap to repeat).
    pub fn model(&mut self) -> &Model {
        self.seal();
        &self.model
    }

    fn seal(&mut self) {
        let m = &mut self.model;
        sort_new_rows(&mut m.samples, &mut self.sorted_samples, |s| (s.tid, s.ts));
        sort_new_rows(&mut m.off_cpu, &mut self.sorted_off_cpu, |o| (o.tid, o.end));
        self.give_tasks();
        let m = &mut self.model;
        let end = m.end;
        for thread in m.threads.values_mut() {
            thread.timeline.seal(end);
        }
    }

    /// Takes a provenance frame (format 1.4): where the target ran. One with a dump's window,
    /// before any chunk, says where the chunks start (a dump of a flight recorder's ring, or the
    /// ring read whole, begins at a segment: the chunks before it were left out, not lost).
    /// Segment marks met later are not kept: the capture's own dump, if any, names it.
    pub fn push_provenance(&mut self, p: hud_format::types::Provenance) {
        if let (Some(d), None) = (&p.dump, self.last_end) {
            self.expected_seq = d.first_seq;
            let m = &mut self.model;
            if d.from_ns > m.start && m.threads.is_empty() {
                m.start = d.from_ns;
                m.end = m.end.max(d.from_ns);
            }
        }
        // The place comes from the newest frame; the dump from the capture's own (a segment's
        // mark only when there is none: the ring read whole).
        let dump = match (&self.model.provenance, &p.dump) {
            (Some(known), None) => known.dump.clone(),
            (Some(known), Some(d)) if d.reason == "segment" && known.dump.is_some() => {
                known.dump.clone()
            }
            _ => p.dump.clone(),
        };
        self.model.provenance = Some(hud_format::types::Provenance { dump, ..p });
    }

    /// Appends a polls frame (format 1.3, `--poll-probes`).
    pub fn push_polls(&mut self, p: &hud_format::types::Polls) {
        let polls = self.model.polls.get_or_insert_with(Default::default);
        polls.event_ns = p.event_ns;
        for probe in &p.probes {
            let at = probe.probe as usize;
            // Indexes are small and dense; a hostile one is ignored, not allocated for.
            if at < 1 << 16 {
                if polls.probes.len() <= at {
                    polls.probes.resize(at + 1, Default::default());
                }
                polls.probes[at] = probe.clone();
            }
        }
        if polls.snapshots.last().is_none_or(|(ts, _)| *ts <= p.ts_ns) {
            polls.snapshots.push((p.ts_ns, p.histograms.clone()));
        }
        let l = &p.long;
        polls.long.extend(
            (0..l.tid.len())
                .filter(|&i| l.start_ns[i] <= l.end_ns[i])
                .map(|i| crate::model::LongPoll {
                    tid: l.tid[i],
                    start: l.start_ns[i],
                    end: l.end_ns[i],
                    probe: l.probe[i],
                    task: l.task.get(i).copied().unwrap_or(0),
                }),
        );
        if !p.stopped.is_empty() {
            // A later frame knows better when (once the detach is over).
            polls.stopped = Some((p.stopped_ns, p.stopped.clone()));
        }
        if p.detached_ns > p.stopped_ns && polls.detaching.is_none() {
            polls.detaching = Some((p.stopped_ns, p.detached_ns));
        }
    }

    /// Appends a tasks frame (format 1.2): the Tokio task of events of the chunks around it,
    /// given to them at the next seal (a row may come before its event's chunk is in).
    pub fn push_tasks(&mut self, t: &EventTasks) {
        if !t.source.is_empty() {
            self.model.task_source = Some(match t.source.strip_prefix(NO_TASK_IDS) {
                Some(why) => Err(why.to_owned()),
                None => Ok(t.source.clone()),
            });
        }
        let plausible = &self.plausible;
        self.pending_tasks.extend(
            t.ts.iter()
                .zip(&t.tid)
                .zip(&t.of)
                .zip(t.task.iter().zip(&t.tick))
                .filter(|(((ts, _), _), _)| plausible.contains(ts))
                .map(|(((ts, tid), of), (task, tick))| (*tid, ts, *of, *task, *tick)),
        );
    }

    /// Every chunk-tasks frame has been pushed before the chunks (a whole file): chunks keep no
    /// keys for frames still to come.
    pub fn chunk_tasks_given_first(&mut self) {
        self.chunk_tasks_may_follow = false;
    }

    /// Takes a chunk-tasks frame (format 1.3), cut by chunk: rows of chunks already in become
    /// pending task rows (their events are found by thread and time), the others wait for their
    /// chunk.
    pub fn push_chunk_tasks(&mut self, chunks: Vec<ChunkRows>) {
        for rows in chunks {
            while self.recent_chunks.front().is_some_and(|c| c.seq < rows.seq) {
                self.recent_chunks.pop_front();
            }
            let keys = match self.recent_chunks.front() {
                Some(c) if c.seq == rows.seq => self.recent_chunks.pop_front(),
                _ => None,
            };
            let Some(keys) = keys else {
                if self.early_chunk_tasks.len() < MAX_KEPT_EVENT_KEYS {
                    self.early_chunk_tasks.insert(rows.seq, rows);
                }
                continue;
            };
            let tids = |k: &[(u32, u64)]| k.iter().map(|k| k.0).collect::<Vec<u32>>();
            let plausible = &self.plausible;
            if let Some(values) = rows.samples(&tids(&keys.samples)) {
                self.pending_tasks.extend(
                    keys.samples
                        .iter()
                        .zip(values)
                        .filter(|((_, ts), (task, _))| *task != 0 && plausible.contains(ts))
                        .map(|((tid, ts), (task, tick))| (*tid, *ts, COPY_OF_SAMPLE, task, tick)),
                );
            }
            if let Some(values) = rows.off_cpu(&tids(&keys.off_cpu)) {
                self.pending_tasks.extend(
                    keys.off_cpu
                        .iter()
                        .zip(values)
                        .filter(|((_, ts), task)| *task != 0 && plausible.contains(ts))
                        .map(|((tid, ts), task)| (*tid, *ts, COPY_OF_OFF_CPU, task, NO_TICK)),
                );
            }
        }
    }

    /// Gives each pending task row to its event (same thread, kind and time); rows whose event
    /// is not in yet wait for a later seal, at most a few seconds' worth.
    fn give_tasks(&mut self) {
        if self.pending_tasks.is_empty() {
            return;
        }
        let m = &mut self.model;
        let mut waiting = Vec::new();
        for row in self.pending_tasks.drain(..) {
            let (tid, ts, of, task, tick) = row;
            let found = if of == COPY_OF_SAMPLE {
                let at = m.samples.partition_point(|s| (s.tid, s.ts) < (tid, ts));
                m.samples
                    .get_mut(at)
                    .filter(|s| s.tid == tid && s.ts == ts)
                    .map(|s| {
                        s.task = task;
                        s.tick = tick;
                    })
                    .is_some()
            } else if of == COPY_OF_OFF_CPU {
                let at = m.off_cpu.partition_point(|o| (o.tid, o.end) < (tid, ts));
                m.off_cpu
                    .get_mut(at)
                    .filter(|o| o.tid == tid && o.end == ts)
                    .map(|o| o.task = task)
                    .is_some()
            } else {
                true
            };
            // An event still to come is at most a chunk flush behind its row.
            if !found && ts + TASK_ROW_PATIENCE_NS >= m.end {
                waiting.push(row);
            }
        }
        self.pending_tasks = waiting;
    }

    /// Forgets the events before `t` (see [`Model::forget_before`]).
    pub fn forget_before(&mut self, t: u64) {
        self.seal();
        self.model.forget_before(t);
        // Forgetting keeps the order of what stays.
        self.sorted_samples = self.model.samples.len();
        self.sorted_off_cpu = self.model.off_cpu.len();
    }

    /// The finished model; `ending` says how the capture ended (its notice comes first, then
    /// the missing stretches, then the rest).
    pub fn finish(mut self, ending: &Ending) -> Model {
        self.seal();
        if !self.pending_damage.is_empty() {
            // Damage after the last chunk: events from there to the end are missing.
            let from = self.last_end.unwrap_or(self.model.start);
            let to = self.model.end.max(from);
            self.model.missing.push(Missing {
                from,
                to,
                chunks: None,
                causes: std::mem::take(&mut self.pending_damage),
            });
        }
        if self.implausible > 0 {
            self.model.notices.push(format!(
                "{} events with times outside the recording (over a minute before its start or a \
                 year after) were left out: the capture is damaged or crafted",
                self.implausible
            ));
        }
        let m = &self.model;
        // A flight recorder's dump, or its ring read whole, ends without an index by design.
        let by_design =
            m.provenance.as_ref().is_some_and(|p| p.dump.is_some()) && *ending == Ending::Unclosed;
        let mut notices: Vec<String> = ending.notice().filter(|_| !by_design).into_iter().collect();
        notices.extend(m.missing.iter().map(|gap| gap.describe(m.start)));
        notices.append(&mut self.model.notices);
        self.model.notices = notices;
        self.model
    }
}
