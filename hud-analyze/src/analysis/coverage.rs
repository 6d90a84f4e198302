//! What the verdict could judge: per thread, the events (samples and kept off-CPU episodes)
//! whose stacks say what the thread was doing for the runtime, and those cut short before they
//! could. A NORMAL verdict on stacks nobody could read would be silently wrong.

use crate::analysis::frames::Classifier;
use crate::model::Model;
use crate::symbols::Symbols;

/// Below this many events a thread that is neither a runtime thread nor readable says too little
/// to count (a helper thread that ran once).
const MIN_EVENTS: u64 = 3;

/// Over this share of unreadable events (among the threads that count) the verdict cannot be
/// NORMAL: it is UNKNOWN, with the share.
pub const UNJUDGED_SHARE: f64 = 0.05;

/// Per stack id: whether it can be judged ([`Classifier::readable`]).
pub fn readable_stacks(model: &Model, symbols: &Symbols, cls: &Classifier) -> Vec<bool> {
    (0..=model.stacks.len() as u32)
        .map(|id| cls.readable(model, symbols, id))
        .collect()
}

/// One thread's events in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ThreadCoverage {
    pub tid: u32,
    /// A runtime thread by its stacks; otherwise a thread whose stacks were mostly unreadable,
    /// which may be one.
    pub runs_tasks: bool,
    pub events: u64,
    pub unreadable: u64,
}

impl ThreadCoverage {
    pub fn unreadable_share(&self) -> f64 {
        self.unreadable as f64 / self.events.max(1) as f64
    }

    /// Most of its events could not be judged.
    pub fn unjudged(&self) -> bool {
        self.unreadable * 2 > self.events
    }
}

/// The threads that count for the verdict: every runtime thread, and every other thread whose
/// stacks were mostly unreadable (its role could not be told, so it may run tasks).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Coverage {
    pub threads: Vec<ThreadCoverage>,
}

impl Coverage {
    /// Of the counted threads' events, the share that could not be judged.
    pub fn unjudged_share(&self) -> f64 {
        let events: u64 = self.threads.iter().map(|t| t.events).sum();
        let unreadable: u64 = self.threads.iter().map(|t| t.unreadable).sum();
        unreadable as f64 / events.max(1) as f64
    }

    /// Whether too much went unjudged for a NORMAL verdict.
    pub fn too_little_judged(&self) -> bool {
        self.unjudged_share() > UNJUDGED_SHARE
    }

    /// Runtime threads found by their stacks.
    pub fn runtime_threads(&self) -> usize {
        self.threads.iter().filter(|t| t.runs_tasks).count()
    }

    /// This coverage and `other`'s, thread by thread (a live view's "since the start").
    pub fn merged(&self, other: &Coverage) -> Coverage {
        let mut threads = self.threads.clone();
        for t in &other.threads {
            match threads.iter_mut().find(|e| e.tid == t.tid) {
                Some(e) => {
                    e.events += t.events;
                    e.unreadable += t.unreadable;
                    e.runs_tasks |= t.runs_tasks;
                }
                None => threads.push(*t),
            }
        }
        threads.sort_by_key(|t| t.tid);
        Coverage { threads }
    }
}

/// The coverage of `[from, to)`: samples taken and off-CPU episodes ended in it.
pub fn in_window(model: &Model, readable: &[bool], from: u64, to: u64) -> Coverage {
    let mut per_tid: rustc_hash::FxHashMap<u32, (u64, u64)> = Default::default();
    let events = model
        .samples
        .iter()
        .filter(|s| s.ts >= from && s.ts < to)
        .map(|s| (s.tid, s.stack))
        .chain(
            model
                .off_cpu
                .iter()
                .filter(|o| o.end >= from && o.end < to)
                .map(|o| (o.tid, o.stack)),
        );
    for (tid, stack) in events {
        let entry = per_tid.entry(tid).or_default();
        entry.0 += 1;
        if !readable.get(stack as usize).copied().unwrap_or(false) {
            entry.1 += 1;
        }
    }
    let mut threads: Vec<ThreadCoverage> = model
        .threads
        .values()
        .filter_map(|t| {
            let (events, unreadable) = per_tid.get(&t.tid).copied().unwrap_or_default();
            let c = ThreadCoverage {
                tid: t.tid,
                runs_tasks: t.role.runs_tasks(),
                events,
                unreadable,
            };
            let counts = c.runs_tasks || (events >= MIN_EVENTS && c.unjudged());
            counts.then_some(c)
        })
        .collect();
    threads.sort_by_key(|t| t.tid);
    Coverage { threads }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(tid: u32, runs_tasks: bool, events: u64, unreadable: u64) -> ThreadCoverage {
        ThreadCoverage {
            tid,
            runs_tasks,
            events,
            unreadable,
        }
    }

    #[test]
    fn shares_count_every_counted_event() {
        let c = Coverage {
            threads: vec![thread(1, true, 90, 0), thread(2, true, 10, 10)],
        };
        assert!((c.unjudged_share() - 0.10).abs() < 1e-9);
        assert!(c.too_little_judged());
        let unjudged: Vec<u32> = c
            .threads
            .iter()
            .filter(|t| t.unjudged())
            .map(|t| t.tid)
            .collect();
        assert_eq!(unjudged, [2]);
        let all_read = Coverage {
            threads: vec![thread(1, true, 100, 2)],
        };
        assert!(!all_read.too_little_judged(), "2 % unread is judged");
        assert!(Coverage::default().unjudged_share() == 0.0);
    }
}
