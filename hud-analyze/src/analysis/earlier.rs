//! What a live view has forgotten, in totals. A live view keeps events in detail for a window
//! (a few minutes) and folds the findings of the time leaving that window in here; merged back
//! into the window's findings they give the whole session's ("since the start") view. Memory is
//! one row per blocker, hotspot row and thread, however long the session runs, and the
//! [`MAX_TASKS`] tasks that used the most CPU.

use std::collections::BTreeMap;

use super::detect::Blocker;
use super::hotspots::{Hotspots, Ranking};
use super::stats::{self, ThreadStats};
use super::tasks::{self, TaskStats};
use super::{Findings, Window};

/// The session's forgotten findings, folded together.
#[derive(Clone, Debug, Default)]
pub struct Earlier {
    /// Nanoseconds folded in.
    pub length: u64,
    /// Start of the first time folded in.
    pub from: Option<u64>,
    /// In their forgotten form: totals, no episodes.
    blockers: Vec<Blocker>,
    hotspots: Hotspots,
    per_worker: BTreeMap<u32, Hotspots>,
    per_stack: BTreeMap<u32, u64>,
    threads: BTreeMap<u32, ThreadStats>,
    off_cpu_episodes: usize,
    coverage: super::coverage::Coverage,
    tasks: Vec<TaskStats>,
}

/// Tasks kept in the session's totals: a server makes a task per connection, without end.
pub const MAX_TASKS: usize = 4096;

impl Earlier {
    /// Whether anything was forgotten yet.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Folds in the findings of `[from, from + length)`, made by
    /// [`super::Analysis::findings_to_forget`].
    pub fn fold(&mut self, f: &Findings, from: u64, length: u64) {
        self.length += length;
        self.from = Some(self.from.map_or(from, |t| t.min(from)));
        for b in &f.blockers {
            match self.blockers.iter_mut().find(|e| e.key() == b.key()) {
                Some(e) => e.forget(b),
                None => self.blockers.push(b.forgotten_only()),
            }
        }
        self.hotspots = self.hotspots.merged(&f.hotspots, Ranking::EVERY_ROW);
        for (tid, h) in &f.per_worker {
            let e = self.per_worker.entry(*tid).or_default();
            *e = e.merged(h, Ranking::EVERY_ROW);
        }
        for &(stack, n) in &f.per_stack {
            *self.per_stack.entry(stack).or_default() += n;
        }
        for t in &f.threads {
            let e = self.threads.entry(t.tid).or_insert_with(|| ThreadStats {
                on_cpu_ns: 0,
                preempted_wait_ns: 0,
                woken_wait_ns: 0,
                blocking_ns: 0,
                blocked_off_cpu_ns: 0,
                samples: 0,
                utilisation: 0.0,
                ..t.clone()
            });
            add_thread(e, t);
        }
        self.off_cpu_episodes += f.off_cpu_episodes;
        self.coverage = self.coverage.merged(&f.coverage);
        tasks::merge(&mut self.tasks, &f.tasks);
        self.tasks.truncate(MAX_TASKS);
    }

    /// The whole session: these totals and `detail`, the findings of the window of detail
    /// (`detail_length` ns) made with [`Ranking::EVERY_ROW`]; tables cut as `ranking` says.
    pub fn accumulate(&self, detail: &Findings, detail_length: u64, ranking: Ranking) -> Findings {
        let mut blockers = detail.blockers.clone();
        let mut spare_group = u32::MAX;
        for e in &self.blockers {
            match blockers.iter_mut().find(|b| b.key() == e.key()) {
                Some(b) => b.forget(e),
                None => {
                    // Group ids are per analysis: one no group of the detail uses.
                    let mut b = e.clone();
                    b.group = spare_group;
                    spare_group -= 1;
                    blockers.push(b);
                }
            }
        }
        blockers.sort_by(|a, b| {
            b.total()
                .cmp(&a.total())
                .then_with(|| a.blame.function.cmp(&b.blame.function))
        });
        let per_worker = detail
            .per_worker
            .iter()
            .map(|(tid, h)| {
                let merged = match self.per_worker.get(tid) {
                    Some(e) => e.merged(h, ranking),
                    None => h.merged(&Hotspots::default(), ranking),
                };
                (*tid, merged)
            })
            .collect();
        let mut per_stack = self.per_stack.clone();
        for &(stack, n) in &detail.per_stack {
            *per_stack.entry(stack).or_default() += n;
        }
        let mut threads: BTreeMap<u32, ThreadStats> = self.threads.clone();
        for t in &detail.threads {
            match threads.get_mut(&t.tid) {
                Some(e) => {
                    e.role = t.role;
                    add_thread(e, t);
                }
                None => {
                    threads.insert(t.tid, t.clone());
                }
            }
        }
        let length = (self.length + detail_length).max(1) as f64;
        let mut threads: Vec<ThreadStats> = threads.into_values().collect();
        for t in &mut threads {
            t.utilisation = t.on_cpu_ns as f64 / length;
        }
        let utilisation = stats::mean_over_runtime_threads(&threads, |t| t.utilisation);
        let runnable_wait_share =
            stats::mean_over_runtime_threads(&threads, |t| t.runnable_wait_ns() as f64 / length);
        let mut all_tasks = self.tasks.clone();
        tasks::merge(&mut all_tasks, &detail.tasks);
        Findings {
            tasks: all_tasks,
            // The recorder's histograms are cumulative and the model keeps every read of them:
            // the detail's window already answers from its own edges.
            polls: detail.polls.clone(),
            window: Window::ALL,
            blockers,
            hotspots: self.hotspots.merged(&detail.hotspots, ranking),
            per_worker,
            per_stack: per_stack.into_iter().collect(),
            threads,
            utilisation,
            runnable_wait_share,
            off_cpu_episodes: self.off_cpu_episodes + detail.off_cpu_episodes,
            coverage: self.coverage.merged(&detail.coverage),
        }
    }
}

fn add_thread(e: &mut ThreadStats, t: &ThreadStats) {
    e.on_cpu_ns += t.on_cpu_ns;
    e.preempted_wait_ns += t.preempted_wait_ns;
    e.woken_wait_ns += t.woken_wait_ns;
    e.blocking_ns += t.blocking_ns;
    e.blocked_off_cpu_ns += t.blocked_off_cpu_ns;
    e.samples += t.samples;
}
