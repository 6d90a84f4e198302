//! Stack copies (format 1.1) unwound into stacks: each copy's registers and bytes are unwound
//! with the `.eh_frame` of the located objects (the [`Unwinder`]), joined with the frame-pointer
//! walk of the events it serves ([`super::splice`]), and those events then refer to the joined
//! stack. The copies are dropped once used: symbols only ever see finished address stacks.
//!
//! This runs before the lookups of an update, so the new stacks' addresses are looked up like
//! any others; copies are unwound in parallel, each thread with its own cache of unwind rules.

use std::sync::Arc;

use rayon::prelude::*;

use super::{Cache, End, Unwinder, Unwound};
use crate::model::{CopyOf, Model, PendingCopies, StackCopy};

/// What unwinding the stack copies did, summed over a capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Unwinding {
    /// Stack copies read.
    pub copies: u64,
    /// Copies unwound to the thread's first frame.
    pub complete: u64,
    /// Copies whose unwind went past their bytes (the rest of the stack was not copied).
    pub out_of_copy: u64,
    /// Copies the unwind tables or bytes did not take past the first frames.
    pub stopped: u64,
    /// Copies whose events are not in the capture (lost, or in a missing chunk).
    pub unmatched: u64,
    /// Events that had a copy.
    pub events: u64,
    /// Of those, events whose stack the copy changed (frames the walk had missed).
    pub deepened: u64,
    /// Bytes of the largest copy: up to 256 for leaf windows, the `--unwind dwarf` size else.
    pub largest_copy: u64,
}

impl Unwinding {
    fn add(&mut self, other: &Unwinding) {
        self.copies += other.copies;
        self.complete += other.complete;
        self.out_of_copy += other.out_of_copy;
        self.stopped += other.stopped;
        self.unmatched += other.unmatched;
        self.events += other.events;
        self.deepened += other.deepened;
        self.largest_copy = self.largest_copy.max(other.largest_copy);
    }
}

/// Unwound copies by their number, for the copies that repeat them (the recorder sends equal
/// copies once). Kept between the updates of a live capture.
pub type ById = rustc_hash::FxHashMap<u32, Arc<Unwound>>;

/// Unwinds every pending copy of `model` with `unwinder`, gives their events the joined stacks,
/// and drops the copies. Adds what it did to `totals`.
pub fn apply(model: &mut Model, unwinder: &Unwinder, by_id: &mut ById, totals: &mut Unwinding) {
    let pending = std::mem::take(&mut model.pending_copies);
    if pending.copies.is_empty() {
        return;
    }
    // Copies with bytes, in parallel; then the repeats take their original's unwind.
    let unwound: Vec<Option<Arc<Unwound>>> = pending
        .copies
        .par_iter()
        .map_init(Cache::default, |cache, copy| {
            (!copy.repeat).then(|| Arc::new(unwinder.unwind(cache, &as_copy(&pending, copy))))
        })
        .collect();
    for (copy, unwound) in pending.copies.iter().zip(&unwound) {
        if let Some(unwound) = unwound {
            by_id.insert(copy.id, Arc::clone(unwound));
        }
    }
    // A repeat names one of the last copies the writer numbered: older ones can go.
    const REMEMBERED: usize = hud_format::types::MAX_REMEMBERED_COPIES;
    if by_id.len() > 2 * REMEMBERED {
        let newest = by_id.keys().copied().max().unwrap_or(0);
        by_id.retain(|&id, _| newest - id <= REMEMBERED as u32);
    }
    let mut done = Unwinding {
        copies: pending.copies.len() as u64,
        largest_copy: pending
            .copies
            .iter()
            .map(|c| c.len as u64)
            .max()
            .unwrap_or(0),
        ..Unwinding::default()
    };
    for (copy, unwound) in pending.copies.iter().zip(unwound) {
        let Some(unwound) = unwound.or_else(|| by_id.get(&copy.id).cloned()) else {
            // A repeat of a copy that is not here (lost with a damaged chunk).
            done.unmatched += 1;
            continue;
        };
        let unwound = &*unwound;
        match unwound.end {
            End::Complete => done.complete += 1,
            End::OutOfCopy => done.out_of_copy += 1,
            End::TooDeep | End::Failed(_) => done.stopped += 1,
        }
        let (served, deepened) = give_stacks(model, copy, unwound);
        if served == 0 {
            done.unmatched += 1;
        }
        done.events += served;
        done.deepened += deepened;
    }
    totals.add(&done);
}

fn as_copy<'a>(pending: &'a PendingCopies, copy: &StackCopy) -> super::StackCopy<'a> {
    let (index, value) = pending.words_of(copy);
    super::StackCopy {
        ip: copy.ip,
        sp: copy.sp,
        bp: copy.bp,
        stack: super::Stack::Sparse {
            len: copy.len,
            index,
            value,
        },
    }
}

/// Gives the events `copy` serves the stack joined from `frames` and their own walk. Returns
/// (events served, events whose stack changed).
fn give_stacks(model: &mut Model, copy: &StackCopy, unwound: &Unwound) -> (u64, u64) {
    let Model {
        samples,
        off_cpu,
        stacks,
        ..
    } = model;
    // Events of one copy share their walked stack, mostly: join once per walked stack.
    let mut joined: Vec<(u32, u32)> = Vec::new();
    let mut restack = |stack: &mut u32| -> bool {
        let new = match joined.iter().find(|(walked, _)| walked == stack) {
            Some(&(_, new)) => new,
            None => {
                let walked: Vec<u64> = stacks.frames(*stack).collect();
                let new =
                    super::splice(unwound, &walked, copy.bp).map_or(*stack, |f| stacks.intern(&f));
                joined.push((*stack, new));
                new
            }
        };
        let changed = new != *stack;
        *stack = new;
        changed
    };
    let (mut served, mut changed) = (0u64, 0u64);
    match copy.of {
        CopyOf::Sample => {
            let from = samples.partition_point(|s| (s.tid, s.ts) < (copy.tid, copy.first));
            for s in samples[from..]
                .iter_mut()
                .take_while(|s| s.tid == copy.tid && s.ts <= copy.last)
            {
                served += 1;
                changed += u64::from(restack(&mut s.stack));
            }
        }
        CopyOf::OffCpu => {
            let from = off_cpu.partition_point(|o| (o.tid, o.end) < (copy.tid, copy.first));
            for o in off_cpu[from..]
                .iter_mut()
                .take_while(|o| o.tid == copy.tid && o.end <= copy.last)
            {
                served += 1;
                changed += u64::from(restack(&mut o.stack));
            }
        }
    }
    (served, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builder::ModelBuilder;
    use crate::model::{OffCpu, Sample};

    fn model() -> Model {
        let header = hud_format::types::Header::default();
        let mut model = ModelBuilder::new(header, "1.1".into()).model().clone();
        let walked = model.stacks.intern(&[0x10, 0x20]);
        model.samples = [(1, 100), (1, 200), (1, 300), (2, 200)]
            .map(|(tid, ts)| Sample {
                ts,
                tid,
                stack: walked,
                task: 0,
                tick: hud_format::wire::NO_TICK,
            })
            .to_vec();
        model.off_cpu = vec![OffCpu {
            end: 500,
            tid: 1,
            duration: 10,
            runnable: 0,
            state: 1,
            stack: walked,
            task: 0,
        }];
        model
    }

    fn copy(tid: u32, of: CopyOf, first: u64, last: u64, id: u32, repeat: bool) -> StackCopy {
        StackCopy {
            tid,
            of,
            first,
            last,
            ip: 0x10,
            sp: 0x1000,
            bp: 0x2000,
            len: if repeat { 0 } else { 16 },
            words: 0..0,
            id,
            repeat,
        }
    }

    /// Copies serve the events of their thread and kind in their time span, a repeat takes its
    /// original's unwind, and a repeat of a copy that is not there serves nothing.
    #[test]
    fn copies_serve_their_events_and_repeats_theirs() {
        let mut model = model();
        model.pending_copies = PendingCopies {
            copies: vec![
                copy(1, CopyOf::Sample, 100, 200, 7, false),
                copy(1, CopyOf::Sample, 300, 300, 7, true),
                copy(1, CopyOf::OffCpu, 500, 500, 9, true),
                copy(3, CopyOf::Sample, 100, 100, 8, false),
            ],
            index: Vec::new(),
            value: Vec::new(),
        };
        let mut by_id = ById::default();
        let mut totals = Unwinding::default();
        // No objects: every unwind stops at its first frame and the walks stay.
        apply(&mut model, &Unwinder::default(), &mut by_id, &mut totals);
        assert_eq!(totals.copies, 4);
        // Samples at 100 and 200 (copy 7), at 300 (its repeat); thread 3 has no sample.
        assert_eq!(totals.events, 3);
        assert_eq!(
            totals.unmatched, 2,
            "copy 9 is not there; thread 3 has no event"
        );
        assert_eq!(totals.deepened, 0);
        assert_eq!(totals.largest_copy, 16);
        assert!(model.pending_copies.copies.is_empty());
        assert!(by_id.contains_key(&7));
    }
}
