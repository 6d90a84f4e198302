//! Stacks with weights, for profile exports (folded stacks, flame graphs, pprof): CPU samples, or
//! time blocked off CPU, per stack and thread, in a window.

use rustc_hash::FxHashMap as HashMap;

use crate::model::Model;

/// What a profile counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    /// cpu-clock samples (each one sampling period on CPU).
    Cpu,
    /// Nanoseconds blocked off CPU (the recorded episodes' time not runnable): where threads
    /// waited, parks included.
    Blocked,
    /// Polls timed by `--poll-probes`, per future type and duration bucket: no stacks (pprof
    /// only).
    Polls,
}

/// One stack of one thread in one Tokio task, and its weight (samples, or nanoseconds blocked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackWeight {
    pub stack: u32,
    pub tid: u32,
    /// The task it ran in (0: none known).
    pub task: u64,
    pub weight: u64,
    /// When it was first seen in the window (for time-ordered flame charts).
    pub first: u64,
}

/// Aggregated weights per (stack, thread, task) in `[from, to)` for `threads` (all when
/// `None`), sorted by thread, stack, then task.
pub fn stack_weights(
    model: &Model,
    weight: Weight,
    threads: Option<&[u32]>,
    from: u64,
    to: u64,
) -> Vec<StackWeight> {
    let mut by_key: HashMap<(u32, u32, u64), (u64, u64)> = HashMap::default();
    for &tid in model.threads.keys() {
        if threads.is_some_and(|t| !t.contains(&tid)) {
            continue;
        }
        match weight {
            Weight::Cpu => {
                for s in model.samples_in(tid, from, to) {
                    let e = by_key.entry((tid, s.stack, s.task)).or_insert((0, s.ts));
                    e.0 += 1;
                }
            }
            Weight::Blocked => {
                for o in model.off_cpu_of(tid) {
                    if o.start() < to && o.end > from && o.blocked() > 0 {
                        let e = by_key
                            .entry((tid, o.stack, o.task))
                            .or_insert((0, o.start()));
                        e.0 = e.0.saturating_add(o.blocked());
                    }
                }
            }
            // Poll histograms have no stacks.
            Weight::Polls => {}
        }
    }
    let mut out: Vec<StackWeight> = by_key
        .into_iter()
        .map(|((tid, stack, task), (weight, first))| StackWeight {
            stack,
            tid,
            task,
            weight,
            first,
        })
        .collect();
    out.sort_unstable_by_key(|w| (w.tid, w.stack, w.task));
    out
}

/// Single events in time order (one sample, or one episode), for flame charts: (time, stack,
/// thread, weight, task).
pub fn events_in_order(
    model: &Model,
    weight: Weight,
    threads: Option<&[u32]>,
    from: u64,
    to: u64,
) -> Vec<(u64, u32, u32, u64, u64)> {
    let mut out = Vec::new();
    for &tid in model.threads.keys() {
        if threads.is_some_and(|t| !t.contains(&tid)) {
            continue;
        }
        match weight {
            Weight::Cpu => out.extend(
                model
                    .samples_in(tid, from, to)
                    .iter()
                    .map(|s| (s.ts, s.stack, tid, 1, s.task)),
            ),
            Weight::Blocked => out.extend(
                model
                    .off_cpu_of(tid)
                    .iter()
                    .filter(|o| o.start() < to && o.end > from && o.blocked() > 0)
                    .map(|o| (o.start(), o.stack, tid, o.blocked(), o.task)),
            ),
            Weight::Polls => {}
        }
    }
    out.sort_unstable();
    out
}
