//! Builds a [`Model`] chunk by chunk, from a whole file or from a stream as frames arrive.
//!
//! Two steps per chunk, so a file's chunks can be read in parallel and a stream's one by one
//! through the same code: [`prepare`] decodes a chunk's columns and groups its switches by thread
//! (pure, any thread), then [`ModelBuilder::push`] appends them to the model (in chunk order).
//! [`ModelBuilder::finish`] seals the timelines and sorts what needs sorting.

use std::collections::BTreeMap;

use hud_format::reader::{Ending, Stacks};
use hud_format::types::{ArchivedChunk, ArchivedThreadEventKind, Header};
use rayon::slice::ParallelSliceMut;
use rustc_hash::FxHashMap as HashMap;

use super::{Model, OffCpu, Sample, State, Thread};

/// One thread's switches of one chunk, in time order.
struct ThreadSwitches {
    tid: u32,
    ts: Vec<u64>,
    states: Vec<State>,
}

/// A chunk decoded and grouped, ready to append. Borrows the chunk for its small tables
/// (stacks, threads, mappings, counters), which are copied when pushed.
pub struct Prepared<'a> {
    chunk: &'a ArchivedChunk,
    switches: Vec<ThreadSwitches>,
    samples: Vec<Sample>,
    off_cpu: Vec<OffCpu>,
}

/// Decodes a chunk's event columns and groups its switches by thread, each in time order.
pub fn prepare(chunk: &ArchivedChunk) -> Prepared<'_> {
    let s = &chunk.switches;
    let mut by_thread: Vec<ThreadSwitches> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::default();
    // Rows of one thread come in runs: remember the last thread's slot.
    let mut last: Option<(u32, usize)> = None;
    for (i, ts) in s.ts.iter().enumerate() {
        let tid = s.tid[i].to_native();
        let slot = match last {
            Some((t, slot)) if t == tid => slot,
            _ => {
                let slot = *index.entry(tid).or_insert_with(|| {
                    by_thread.push(ThreadSwitches {
                        tid,
                        ts: Vec::new(),
                        states: Vec::new(),
                    });
                    by_thread.len() - 1
                });
                last = Some((tid, slot));
                slot
            }
        };
        let rows = &mut by_thread[slot];
        rows.ts.push(ts);
        rows.states.push(State::after_switch(
            s.on_cpu[i] == 1,
            s.prev_state[i].to_native(),
        ));
    }
    for rows in &mut by_thread {
        // Ring-buffer order interleaves CPUs: a thread that migrated can have a row out of place.
        if !rows.ts.is_sorted() {
            let mut pairs: Vec<(u64, State)> = rows
                .ts
                .iter()
                .copied()
                .zip(rows.states.iter().copied())
                .collect();
            pairs.sort_by_key(|p| p.0);
            (rows.ts, rows.states) = pairs.into_iter().unzip();
        }
    }
    let s = &chunk.samples;
    let samples =
        s.ts.iter()
            .enumerate()
            .map(|(i, ts)| Sample {
                ts,
                tid: s.tid[i].to_native(),
                stack: s.user_stack[i].to_native(),
            })
            .collect();
    let o = &chunk.off_cpu;
    let off_cpu =
        o.ts.iter()
            .enumerate()
            .map(|(i, ts)| OffCpu {
                end: ts,
                tid: o.tid[i].to_native(),
                duration: o.duration_ns[i].to_native(),
                runnable: o.runnable_ns[i].to_native(),
                state: o.state[i].to_native(),
                stack: o.user_stack[i].to_native(),
            })
            .collect();
    Prepared {
        chunk,
        switches: by_thread,
        samples,
        off_cpu,
    }
}

/// A model under construction.
pub struct ModelBuilder {
    model: Model,
    expected_seq: u32,
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
                chunks: 0,
                embedded_parts: 0,
                threads: BTreeMap::new(),
                samples: Vec::new(),
                off_cpu: Vec::new(),
                stacks: Stacks::default(),
                mappings: Vec::new(),
                counters: BTreeMap::new(),
            },
            expected_seq: 0,
        }
    }

    /// Appends one chunk (decoded here).
    pub fn push_chunk(&mut self, chunk: &ArchivedChunk) {
        self.push(prepare(chunk));
    }

    /// Appends a chunk prepared by [`prepare`]; chunks must come in capture order.
    pub fn push(&mut self, p: Prepared<'_>) {
        let m = &mut self.model;
        let c = p.chunk;
        m.chunks += 1;
        let seq = c.seq.to_native();
        if seq != self.expected_seq {
            m.notices.push(format!(
                "chunks {}..{} are missing; their events are not in this analysis",
                self.expected_seq, seq
            ));
        }
        self.expected_seq = seq.wrapping_add(1);
        m.end = m.end.max(c.end_ns.to_native());
        m.stacks.add(c);
        let start = m.start;
        for t in c.threads.iter() {
            let tid = t.tid.to_native();
            let ts = t.ts_ns.to_native();
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
        for rows in p.switches {
            let thread = m
                .threads
                .entry(rows.tid)
                .or_insert_with(|| Thread::new(rows.tid, start));
            for (ts, state) in rows.ts.into_iter().zip(rows.states) {
                thread.timeline.push(ts, state);
            }
        }
        for sample in &p.samples {
            m.threads
                .entry(sample.tid)
                .or_insert_with(|| Thread::new(sample.tid, start))
                .samples += 1;
        }
        m.samples.extend(p.samples);
        for off in &p.off_cpu {
            m.threads
                .entry(off.tid)
                .or_insert_with(|| Thread::new(off.tid, start));
        }
        m.off_cpu.extend(p.off_cpu);
        m.mappings
            .extend(c.mappings.iter().map(|mp| mp.to_mapping()));
        for counter in c.counters.iter() {
            m.counters
                .insert(counter.name.to_string(), counter.value.to_native());
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
        if !m.samples.is_sorted_by_key(|s| (s.tid, s.ts)) {
            m.samples.par_sort_unstable_by_key(|s| (s.tid, s.ts));
        }
        if !m.off_cpu.is_sorted_by_key(|o| (o.tid, o.end)) {
            m.off_cpu.par_sort_unstable_by_key(|o| (o.tid, o.end));
        }
        let end = m.end;
        for thread in m.threads.values_mut() {
            thread.timeline.seal(end);
        }
    }

    /// The finished model; `ending` says how the capture ended (its notice comes first).
    pub fn finish(mut self, ending: &Ending) -> Model {
        self.seal();
        let mut notices: Vec<String> = ending.notice().into_iter().collect();
        notices.append(&mut self.model.notices);
        self.model.notices = notices;
        self.model
    }
}
