//! Builds a [`Model`] chunk by chunk, from a whole file or from a stream as frames arrive.
//!
//! A file's chunks are decompressed in parallel by the source; each is then appended here in
//! capture order, decoded in place straight into the threads' timelines: no per-chunk copy of
//! the rows, which on a context-switch storm would hold megabytes per chunk in flight (and keep
//! the allocator's freed pages). [`ModelBuilder::finish`] seals the timelines and sorts samples.

use std::collections::BTreeMap;

use hud_format::frame::FrameKind;
use hud_format::reader::{kind_name, Damage, Ending, Stacks};
use hud_format::types::{
    ArchivedChunk, ArchivedStackCopies, ArchivedThreadEventKind, Header, COPY_OF_OFF_CPU,
    COPY_OF_SAMPLE, PROBES_ATTACHED_COUNTER,
};
use rayon::slice::ParallelSliceMut;

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
    /// Samples and off-CPU episodes sorted at the last seal (rows after them are new).
    sorted_samples: usize,
    sorted_off_cpu: usize,
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
fn plausible_times(start: u64) -> std::ops::RangeInclusive<u64> {
    const MINUTE: u64 = 60_000_000_000;
    const YEAR: u64 = 366 * 24 * 60 * MINUTE;
    start.saturating_sub(MINUTE)..=start.saturating_add(YEAR)
}

impl ModelBuilder {
    /// Starts a model for a capture with this header and format version.
    pub fn new(header: Header, version: String) -> Self {
        let start = header.start_ns;
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
            },
            expected_seq: 0,
            last_end: None,
            pending_damage: Vec::new(),
            plausible: plausible_times(start),
            implausible: 0,
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
        for (i, ts) in s.ts.iter().enumerate() {
            if !plausible.contains(&ts) {
                implausible += 1;
                continue;
            }
            let sample = Sample {
                ts,
                tid: s.tid[i].to_native(),
                stack: m.stacks.local(s.user_stack[i].to_native()),
            };
            m.threads
                .entry(sample.tid)
                .or_insert_with(|| Thread::new(sample.tid, start))
                .samples += 1;
            m.samples.push(sample);
        }
        let o = &c.off_cpu;
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
            };
            m.threads
                .entry(off.tid)
                .or_insert_with(|| Thread::new(off.tid, start));
            m.off_cpu.push(off);
        }
        self.implausible += implausible;
        m.mappings
            .extend(c.mappings.iter().map(|mp| mp.to_mapping()));
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
        let end = m.end;
        for thread in m.threads.values_mut() {
            thread.timeline.seal(end);
        }
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
        let mut notices: Vec<String> = ending.notice().into_iter().collect();
        notices.extend(m.missing.iter().map(|gap| gap.describe(m.start)));
        notices.append(&mut self.model.notices);
        self.model.notices = notices;
        self.model
    }
}
