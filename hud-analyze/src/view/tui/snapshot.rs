//! What the cockpit draws: the newest [`Snapshot`] (an analysis and the findings of one window,
//! from [`crate::live`]). The lists it shows are chosen here, once, for drawing and for key
//! handling alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::state::{Listing, Rows, State, TaskOrder};
use crate::analysis::detect::Blocker;
use crate::analysis::hotspots::{Hot, Hotspots};
use crate::analysis::tasks::TaskStats;
use crate::model::Role;

pub use crate::live::snapshot::{LiveInfo, Snapshot};
use crate::observer::{Observer, Phase};

impl Snapshot {
    /// The blockers shown: the window's, through the filter.
    pub fn blockers<'a>(&'a self, state: &'a State) -> impl Iterator<Item = &'a Blocker> + 'a {
        self.findings.blockers.iter().filter(move |b| {
            let call = [&b.call.site, &b.call.callee];
            let names = call.iter().filter_map(|f| f.as_ref().map(|f| &*f.function));
            let fields: Vec<&str> = [&*b.blame.function, b.blame.file.as_deref().unwrap_or("")]
                .into_iter()
                .chain(names)
                .collect();
            state.matches(&fields)
        })
    }

    /// The hotspot table shown: overall or of the pinned worker.
    pub fn hotspot_table(&self, state: &State) -> &Hotspots {
        state
            .pinned_worker
            .and_then(|tid| self.findings.per_worker.iter().find(|(t, _)| *t == tid))
            .map_or(&self.findings.hotspots, |(_, h)| h)
    }

    /// The hotspot rows shown: by function or by line, through the filter.
    pub fn hotspots<'a>(&'a self, state: &'a State) -> impl Iterator<Item = &'a Hot> + 'a {
        let table = self.hotspot_table(state);
        let rows = if state.by_line {
            &table.by_line
        } else {
            &table.by_function
        };
        rows.iter()
            .filter(move |h| state.matches(&[&h.key.function, h.key.file.as_deref().unwrap_or("")]))
    }

    /// The tasks listed: the window's, through the filter (kind or id), in the chosen order.
    pub fn tasks<'a>(&'a self, state: &State) -> Vec<&'a TaskStats> {
        let mut tasks: Vec<&TaskStats> = self
            .findings
            .tasks
            .iter()
            .filter(|t| {
                let kind = t.kind.as_ref().map_or("", |k| &k.function);
                state.matches(&[kind, &t.id.to_string()])
            })
            .collect();
        // `findings.tasks` is most CPU first already; the sort is stable.
        match state.task_order {
            TaskOrder::Cpu => {}
            TaskOrder::Blocked => tasks.sort_by_key(|t| std::cmp::Reverse(t.blocked_ns)),
            TaskOrder::LongPolls => tasks.sort_by_key(|t| {
                (
                    std::cmp::Reverse(t.long_polls),
                    std::cmp::Reverse(t.longest_poll_ns),
                )
            }),
        }
        tasks
    }

    /// The runtime threads (lanes and worker bars), in tid order.
    pub fn runtime_threads(&self) -> Vec<u32> {
        self.analysis
            .model
            .threads
            .values()
            .filter(|t| t.role.runs_tasks())
            .map(|t| t.tid)
            .collect()
    }

    /// Blocking-pool threads.
    pub fn pool_threads(&self) -> Vec<u32> {
        self.analysis
            .model
            .threads
            .values()
            .filter(|t| t.role == Role::BlockingPool)
            .map(|t| t.tid)
            .collect()
    }

    /// The rows of every list as drawn for `state`.
    pub fn rows(&self, state: &State) -> Rows {
        let tasks: Vec<u64> = match state.listing {
            Listing::Tasks => self.tasks(state).iter().map(|t| t.id).collect(),
            _ => Vec::new(),
        };
        Rows {
            flame: None,
            blockers: self.blockers(state).map(|b| b.group).collect(),
            hotspots: match state.listing {
                Listing::Hotspots => self.hotspots(state).count(),
                Listing::Polls => self.findings.polls.as_ref().map_or(0, |p| p.kinds.len()),
                Listing::Tasks => tasks.len(),
            },
            tasks,
            workers: self.runtime_threads(),
        }
    }
}

/// Loading progress, written by the analysis (from pool threads too), read by the UI.
#[derive(Default)]
pub struct Progress {
    phase: Mutex<Option<(Phase, Option<u64>)>>,
    done: AtomicU64,
}

impl Progress {
    /// The phase and, when counted, (done, total).
    pub fn now(&self) -> (Option<Phase>, Option<(u64, u64)>) {
        let phase = *self.phase.lock().unwrap_or_else(|e| e.into_inner());
        match phase {
            Some((p, Some(total))) => (Some(p), Some((self.done.load(Ordering::Relaxed), total))),
            Some((p, None)) => (Some(p), None),
            None => (None, None),
        }
    }
}

impl Observer for Progress {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        self.done.store(0, Ordering::Relaxed);
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = Some((phase, total));
    }

    fn advance(&self, steps: u64) {
        self.done.fetch_add(steps, Ordering::Relaxed);
    }
}
