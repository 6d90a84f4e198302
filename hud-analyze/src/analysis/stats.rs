//! Per-thread statistics of a time window: time on CPU, waiting for a CPU, blocked.

use rustc_hash::FxHashMap as HashMap;

use super::detect::Blocker;
use crate::model::{Model, Role};

/// One thread in a window.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadStats {
    pub tid: u32,
    pub role: Role,
    pub on_cpu_ns: u64,
    /// Runnable after preemption, waiting for a CPU.
    pub preempted_wait_ns: u64,
    /// Runnable after a wakeup (from recorded off-CPU episodes), waiting for a CPU.
    pub woken_wait_ns: u64,
    /// In the window's blockers (off CPU and long polls).
    pub blocking_ns: u64,
    /// Of `blocking_ns`, blocked off CPU (a long poll's time is on-CPU time).
    pub blocked_off_cpu_ns: u64,
    pub samples: u64,
    /// Share of the window on CPU.
    pub utilisation: f64,
}

impl ThreadStats {
    /// Scheduling pressure: runnable but not running.
    pub fn runnable_wait_ns(&self) -> u64 {
        self.preempted_wait_ns + self.woken_wait_ns
    }
}

/// Every thread's statistics in `[from, to)`, by tid.
pub fn threads(model: &Model, blockers: &[Blocker], from: u64, to: u64) -> Vec<ThreadStats> {
    let length = to
        .min(model.end)
        .saturating_sub(from.max(model.start))
        .max(1);
    // Per thread: (all blocking, off-CPU blocking).
    let mut blocking: HashMap<u32, (u64, u64)> = HashMap::default();
    for b in blockers {
        for e in &b.episodes {
            // Saturating: a crafted capture's durations may sum past u64.
            let entry = blocking.entry(e.tid).or_default();
            entry.0 = entry.0.saturating_add(e.duration);
            if !e.on_cpu() {
                entry.1 = entry.1.saturating_add(e.duration);
            }
        }
    }
    model
        .threads
        .values()
        .map(|t| {
            let totals = t.timeline.totals(from, to);
            // Waits after wakeups, from episodes that slept (a preempted episode's whole time is
            // already in the preemption wait), ending in the window.
            let woken_wait_ns = model
                .off_cpu_of(t.tid)
                .iter()
                .filter(|o| o.end >= from && o.end < to && o.is_voluntary())
                .fold(0u64, |sum, o| sum.saturating_add(o.runnable));
            ThreadStats {
                tid: t.tid,
                role: t.role,
                on_cpu_ns: totals.on_cpu,
                preempted_wait_ns: totals.runnable,
                woken_wait_ns,
                blocking_ns: blocking.get(&t.tid).map_or(0, |b| b.0),
                blocked_off_cpu_ns: blocking.get(&t.tid).map_or(0, |b| b.1),
                samples: model.samples_in(t.tid, from, to).len() as u64,
                utilisation: totals.on_cpu as f64 / length as f64,
            }
        })
        .collect()
}

/// Mean of a per-thread share over the threads that run tasks (0 without any).
pub fn mean_over_runtime_threads(
    stats: &[ThreadStats],
    share: impl Fn(&ThreadStats) -> f64,
) -> f64 {
    let runtime: Vec<&ThreadStats> = stats.iter().filter(|s| s.role.runs_tasks()).collect();
    if runtime.is_empty() {
        0.0
    } else {
        runtime.iter().map(|s| share(s)).sum::<f64>() / runtime.len() as f64
    }
}
