//! The columns of [`ChunkTasks`] (format 1.3): each sample's task id and scheduler tick, and
//! each off-CPU episode's task id, as zigzag varint deltas from the previous event of the same
//! kind and thread in the same chunk. Deltas stay per thread because events of several CPUs
//! interleave and each thread's scheduler ticks on its own; they restart at each chunk so a
//! chunk's rows decode without the others (a damaged chunk loses only its own).

use std::collections::HashMap;

use crate::columns::{push_delta, DeltaIter};
use crate::types::{ArchivedChunkTasks, ChunkTasks};
use crate::wire::NO_TICK;

/// The previous (task, tick) of a thread before its first event in a chunk.
const START: (u64, u64) = (0, NO_TICK);

/// Builds a [`ChunkTasks`] chunk by chunk.
#[derive(Default)]
pub struct Encoder {
    pub frame: ChunkTasks,
    /// Whether any event so far ran in a task or any sample has a tick (a frame of zeros and
    /// unread ticks is not worth writing).
    pub any_task: bool,
}

impl Encoder {
    /// Appends the rows of chunk `seq`: (thread, task, tick) per sample and (thread, task) per
    /// off-CPU episode, each in the chunk's order. Chunks come in order, none skipped.
    pub fn push_chunk(&mut self, seq: u32, samples: &[(u32, u64, u64)], off_cpu: &[(u32, u64)]) {
        let f = &mut self.frame;
        if f.samples.is_empty() {
            f.first_seq = seq;
        }
        f.samples.push(samples.len() as u32);
        f.off_cpu.push(off_cpu.len() as u32);
        let mut prev: HashMap<u32, (u64, u64)> = HashMap::new();
        for &(tid, task, tick) in samples {
            let (task_prev, tick_prev) = prev.entry(tid).or_insert(START);
            push_delta(&mut f.task, task_prev, task);
            push_delta(&mut f.tick, tick_prev, tick);
            // A tick without a task: the kernel's count of I/O driver polls (`TICK_OF_IO_POLLS`).
            self.any_task |= task != 0 || tick != NO_TICK;
        }
        let mut prev: HashMap<u32, u64> = HashMap::new();
        for &(tid, task) in off_cpu {
            push_delta(&mut f.off_cpu_task, prev.entry(tid).or_insert(0), task);
            self.any_task |= task != 0;
        }
    }

    /// Events of the chunks pushed so far.
    pub fn rows(&self) -> usize {
        let f = &self.frame;
        f.samples
            .iter()
            .chain(&f.off_cpu)
            .map(|n| *n as usize)
            .sum()
    }

    /// The frame so far when it holds a task or a tick, leaving the encoder empty.
    pub fn take(&mut self) -> Option<ChunkTasks> {
        let any = std::mem::take(&mut self.any_task);
        let frame = std::mem::take(&mut self.frame);
        any.then_some(frame)
    }
}

/// One chunk's part of a frame: its sequence number and its encoded rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRows {
    pub seq: u32,
    pub samples: u32,
    pub task: Vec<u8>,
    pub tick: Vec<u8>,
    pub off_cpu: u32,
    pub off_cpu_task: Vec<u8>,
}

impl ChunkRows {
    /// (task, tick) per sample, given the threads of the chunk's samples in order; `None` when
    /// they do not match (not this chunk, or damaged).
    pub fn samples(&self, tids: &[u32]) -> Option<Vec<(u64, u64)>> {
        if tids.len() != self.samples as usize {
            return None;
        }
        let mut prev: HashMap<u32, (u64, u64)> = HashMap::new();
        let mut tasks = Deltas::new(&self.task);
        let mut ticks = Deltas::new(&self.tick);
        let mut out = Vec::with_capacity(tids.len());
        for &tid in tids {
            let p = prev.entry(tid).or_insert(START);
            p.0 = p.0.wrapping_add(tasks.next()?);
            p.1 = p.1.wrapping_add(ticks.next()?);
            out.push(*p);
        }
        Some(out)
    }

    /// The task per off-CPU episode, given the threads of the chunk's episodes in order.
    pub fn off_cpu(&self, tids: &[u32]) -> Option<Vec<u64>> {
        if tids.len() != self.off_cpu as usize {
            return None;
        }
        let mut prev: HashMap<u32, u64> = HashMap::new();
        let mut tasks = Deltas::new(&self.off_cpu_task);
        let mut out = Vec::with_capacity(tids.len());
        for &tid in tids {
            let p = prev.entry(tid).or_insert(0);
            *p = p.wrapping_add(tasks.next()?);
            out.push(*p);
        }
        Some(out)
    }
}

/// A frame cut by chunk; `None` when its columns do not hold the rows its counts say.
pub fn split(frame: &ArchivedChunkTasks) -> Option<Vec<ChunkRows>> {
    if frame.samples.len() != frame.off_cpu.len() {
        return None;
    }
    let (mut task, mut tick, mut off) = (
        frame.task.as_slice(),
        frame.tick.as_slice(),
        frame.off_cpu_task.as_slice(),
    );
    let first = frame.first_seq.to_native();
    let mut out = Vec::with_capacity(frame.samples.len());
    for (i, (n, m)) in frame.samples.iter().zip(frame.off_cpu.iter()).enumerate() {
        let (n, m) = (n.to_native(), m.to_native());
        let (t, rest_task) = take_varints(task, n)?;
        let (k, rest_tick) = take_varints(tick, n)?;
        let (o, rest_off) = take_varints(off, m)?;
        (task, tick, off) = (rest_task, rest_tick, rest_off);
        out.push(ChunkRows {
            seq: first.checked_add(i as u32)?,
            samples: n,
            task: t.to_vec(),
            tick: k.to_vec(),
            off_cpu: m,
            off_cpu_task: o.to_vec(),
        });
    }
    (task.is_empty() && tick.is_empty() && off.is_empty()).then_some(out)
}

/// The first `n` varints of `bytes`, and the rest.
fn take_varints(bytes: &[u8], n: u32) -> Option<(&[u8], &[u8])> {
    let mut seen = 0u32;
    let mut at = 0usize;
    while seen < n {
        let b = *bytes.get(at)?;
        at += 1;
        if b & 0x80 == 0 {
            seen += 1;
        }
    }
    Some(bytes.split_at(at))
}

/// The zigzag deltas of a column themselves (not their running sum).
struct Deltas<'a> {
    inner: DeltaIter<'a>,
    last: u64,
}

impl<'a> Deltas<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Deltas {
            inner: DeltaIter::new(bytes, 0),
            last: 0,
        }
    }

    fn next(&mut self) -> Option<u64> {
        let sum = self.inner.next()?;
        let delta = sum.wrapping_sub(self.last);
        self.last = sum;
        Some(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived(frame: &ChunkTasks) -> Option<Vec<ChunkRows>> {
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(frame).unwrap();
        let a = rkyv::access::<ArchivedChunkTasks, rkyv::rancor::Error>(&bytes).unwrap();
        split(a)
    }

    #[test]
    fn chunks_round_trip_alone_with_threads_interleaved() {
        let one = [
            (10, 5, 0x0100_0000_0000_1000),
            (11, 0, NO_TICK),
            (10, 5, 0x0100_0000_0000_1000),
            (11, 7, 0x0200_0000_0000_0003),
            (10, 9, 0x0100_0000_0000_1042),
        ];
        let one_off = [(11, 7), (10, 0), (11, 12)];
        let two = [(11, 7, 0x0200_0000_0000_0009), (10, 0, NO_TICK)];
        let mut e = Encoder::default();
        e.push_chunk(4, &one, &one_off);
        e.push_chunk(5, &two, &[]);
        assert_eq!(e.rows(), 10);
        let frame = e.take().expect("tasks in it");
        assert!(e.take().is_none(), "taken");
        let chunks = archived(&frame).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].seq, chunks[1].seq), (4, 5));
        let tids = |rows: &[(u32, u64, u64)]| rows.iter().map(|r| r.0).collect::<Vec<_>>();
        let values = |rows: &[(u32, u64, u64)]| rows.iter().map(|r| (r.1, r.2)).collect::<Vec<_>>();
        assert_eq!(chunks[0].samples(&tids(&one)), Some(values(&one)));
        assert_eq!(chunks[0].off_cpu(&[11, 10, 11]), Some(vec![7, 0, 12]));
        // The second chunk decodes without the first.
        assert_eq!(chunks[1].samples(&tids(&two)), Some(values(&two)));
        assert_eq!(chunks[1].off_cpu(&[]), Some(vec![]));
        assert_eq!(chunks[1].samples(&[10]), None, "not this chunk's samples");
        // A thread's repeated task costs a byte (the third sample repeats the first's).
        assert_eq!(frame.task[2], 0, "{frame:?}");
    }

    #[test]
    fn a_frame_of_zeros_is_not_written_and_a_short_column_is_refused() {
        let mut e = Encoder::default();
        e.push_chunk(0, &[(10, 0, NO_TICK)], &[(10, 0)]);
        assert!(e.take().is_none());
        let mut e = Encoder::default();
        e.push_chunk(0, &[(10, 3, 1), (10, 3, 2)], &[(10, 3)]);
        let frame = e.take().unwrap();
        let mut short = frame.clone();
        short.tick.pop();
        assert_eq!(archived(&short), None);
        let mut short = frame.clone();
        short.off_cpu_task.pop();
        assert_eq!(archived(&short), None);
        let mut uneven = frame;
        uneven.off_cpu.push(0);
        assert_eq!(archived(&uneven), None);
    }
}
