//! Tokio tasks (format 1.2): the recorder read the id of the task each sample and each blocking
//! episode ran in. Here each task gets its kind (the future it was spawned with, named by the
//! outermost frame of the user's code inside its poll) and, per window, what it cost: time on
//! CPU, time blocking its thread, long polls, where and when it ran.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::detect::Blocker;
use super::frames::{self, flags, Classifier};
use crate::model::Model;
use crate::symbols::{Frame, Symbols};

/// Each task's kind, found once per analysis.
#[derive(Clone, Debug, Default)]
pub struct TaskKinds {
    /// Distinct kinds (root futures).
    pub kinds: Vec<Arc<Frame>>,
    /// Task id → index into `kinds`.
    of_task: HashMap<u64, u32>,
}

impl TaskKinds {
    /// Names each task seen in the model by the outermost user frame of the stacks it ran with:
    /// the one most of its stacks that reach the task's poll name (a stack cut short names a
    /// callee; a sample in library code called by the runtime names that library).
    pub fn find(model: &Model, symbols: &Symbols, cls: &Classifier) -> Self {
        let mut kinds = TaskKinds::default();
        // Per stack: its kind and whether the task's poll frame anchored it.
        let mut by_stack: HashMap<u32, Option<(u32, bool)>> = HashMap::default();
        let mut by_name: HashMap<(Arc<str>, Option<Arc<str>>), u32> = HashMap::default();
        // Per task, per kind: (stacks that reached the poll, stacks that did not).
        let mut votes: HashMap<u64, Vec<(u32, u32, u32)>> = HashMap::default();
        let events = model
            .samples
            .iter()
            .map(|s| (s.task, s.stack))
            .chain(model.off_cpu.iter().map(|o| (o.task, o.stack)));
        for (task, stack) in events {
            if task == 0 {
                continue;
            }
            let kind = *by_stack.entry(stack).or_insert_with(|| {
                let (frame, anchored) = root_future(&symbols.stack(model, stack), cls)?;
                let key = (frame.function.clone(), frame.file.clone());
                let next = kinds.kinds.len() as u32;
                let id = *by_name.entry(key).or_insert(next);
                if id == next {
                    kinds.kinds.push(Arc::new(frame));
                }
                Some((id, anchored))
            });
            let Some((kind, anchored)) = kind else {
                continue;
            };
            let task_votes = votes.entry(task).or_default();
            let at = match task_votes.iter().position(|v| v.0 == kind) {
                Some(at) => at,
                None => {
                    task_votes.push((kind, 0, 0));
                    task_votes.len() - 1
                }
            };
            if anchored {
                task_votes[at].1 += 1;
            } else {
                task_votes[at].2 += 1;
            }
        }
        for (task, task_votes) in votes {
            if let Some(best) = task_votes
                .iter()
                .max_by_key(|v| (v.1, v.2, std::cmp::Reverse(v.0)))
            {
                kinds.of_task.insert(task, best.0);
            }
        }
        // Kinds no task kept: dropped from the list.
        let used: rustc_hash::FxHashSet<u32> = kinds.of_task.values().copied().collect();
        if used.len() < kinds.kinds.len() {
            let mut renumber: HashMap<u32, u32> = HashMap::default();
            let old = std::mem::take(&mut kinds.kinds);
            for (i, k) in old.into_iter().enumerate() {
                if used.contains(&(i as u32)) {
                    renumber.insert(i as u32, kinds.kinds.len() as u32);
                    kinds.kinds.push(k);
                }
            }
            for k in kinds.of_task.values_mut() {
                *k = renumber[k];
            }
        }
        kinds
    }

    /// The kind of a task, when one of its stacks showed the user's code.
    pub fn of(&self, task: u64) -> Option<&Arc<Frame>> {
        self.of_task
            .get(&task)
            .and_then(|&k| self.kinds.get(k as usize))
    }
}

/// The future a stack's task runs: the outermost frame of the user's code inside the task's
/// poll, or, where no poll frame shows (`spawn_blocking` closures), in a stack that reaches its
/// thread's first frame; and whether the poll frame showed. A stack cut short names no kind: its
/// outermost user frame is a callee (`work`, not the `session` task that called it). A worker
/// thread of a multi-thread runtime runs inside a blocking task of its own (the runtime starts
/// workers with `spawn_blocking`), whose id its scheduler code carries: that task's kind is the
/// worker's loop.
fn root_future(frames: &[Frame], cls: &Classifier) -> Option<(Frame, bool)> {
    let poll = cls.task_poll_index(frames);
    if poll.is_none() && !frames.last().is_some_and(frames::is_thread_root) {
        return None;
    }
    let inside = &frames[..poll.unwrap_or(frames.len())];
    let outermost = |mask: u16| inside.iter().rev().find(|f| cls.flags(f) & mask != 0);
    outermost(flags::USER)
        .or_else(|| outermost(flags::WORKER))
        .cloned()
        .map(|f| (f, poll.is_some()))
}

/// What one task did in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStats {
    pub id: u64,
    /// The future it was spawned with, when a stack of it showed the user's code.
    pub kind: Option<Arc<Frame>>,
    /// Samples that hit it on CPU.
    pub samples: u64,
    /// Time blocking its thread (off CPU inside its poll), over the thresholds.
    pub blocked_ns: u64,
    pub blocking_episodes: usize,
    pub long_polls: usize,
    pub longest_poll_ns: u64,
    /// First and last event seen of it in the window.
    pub first_seen: u64,
    pub last_seen: u64,
    /// Threads it ran on, sorted.
    pub threads: Vec<u32>,
}

impl TaskStats {
    /// Time on CPU, estimated from its samples.
    pub fn on_cpu_ns(&self, period: u64) -> u64 {
        self.samples.saturating_mul(period)
    }
}

/// The tasks of a window, most CPU first (blocking time, then id, break ties).
pub fn in_window(
    model: &Model,
    kinds: &TaskKinds,
    blockers: &[Blocker],
    from: u64,
    to: u64,
) -> Vec<TaskStats> {
    let mut by_id: HashMap<u64, TaskStats> = HashMap::default();
    fn entry<'a>(
        by_id: &'a mut HashMap<u64, TaskStats>,
        kinds: &TaskKinds,
        id: u64,
        ts: u64,
        tid: u32,
    ) -> &'a mut TaskStats {
        let t = by_id.entry(id).or_insert_with(|| TaskStats {
            id,
            kind: kinds.of(id).cloned(),
            samples: 0,
            blocked_ns: 0,
            blocking_episodes: 0,
            long_polls: 0,
            longest_poll_ns: 0,
            first_seen: ts,
            last_seen: ts,
            threads: Vec::new(),
        });
        t.first_seen = t.first_seen.min(ts);
        t.last_seen = t.last_seen.max(ts);
        if let Err(at) = t.threads.binary_search(&tid) {
            t.threads.insert(at, tid);
        }
        t
    }
    for s in model
        .samples
        .iter()
        .filter(|s| s.task != 0 && s.ts >= from && s.ts < to)
    {
        entry(&mut by_id, kinds, s.task, s.ts, s.tid).samples += 1;
    }
    for b in blockers {
        for e in b.episodes.iter().filter(|e| e.task != 0) {
            let t = entry(&mut by_id, kinds, e.task, e.start, e.tid);
            t.last_seen = t.last_seen.max(e.end().min(to));
            if e.on_cpu() {
                t.long_polls += 1;
                t.longest_poll_ns = t.longest_poll_ns.max(e.duration);
            } else {
                t.blocking_episodes += 1;
                t.blocked_ns += e.duration;
            }
        }
    }
    let mut tasks: Vec<TaskStats> = by_id.into_values().collect();
    sort(&mut tasks);
    tasks
}

/// Adds `more` (a later window's tasks) into `into`: a live view's session totals.
pub fn merge(into: &mut Vec<TaskStats>, more: &[TaskStats]) {
    let mut at: HashMap<u64, usize> = into.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    for t in more {
        match at.get(&t.id) {
            Some(&i) => {
                let e = &mut into[i];
                e.samples += t.samples;
                e.blocked_ns += t.blocked_ns;
                e.blocking_episodes += t.blocking_episodes;
                e.long_polls += t.long_polls;
                e.longest_poll_ns = e.longest_poll_ns.max(t.longest_poll_ns);
                e.first_seen = e.first_seen.min(t.first_seen);
                e.last_seen = e.last_seen.max(t.last_seen);
                for &tid in &t.threads {
                    if let Err(p) = e.threads.binary_search(&tid) {
                        e.threads.insert(p, tid);
                    }
                }
                if e.kind.is_none() {
                    e.kind = t.kind.clone();
                }
            }
            None => {
                at.insert(t.id, into.len());
                into.push(t.clone());
            }
        }
    }
    sort(into);
}

/// Most CPU first; then most blocking; then id.
fn sort(tasks: &mut [TaskStats]) {
    tasks.sort_by_key(|t| {
        (
            std::cmp::Reverse(t.samples),
            std::cmp::Reverse(t.blocked_ns),
            t.id,
        )
    });
}

/// How many tasks of each kind a window saw, most first (`None`: kind unknown).
pub fn per_kind(tasks: &[TaskStats]) -> Vec<(Option<Arc<Frame>>, usize)> {
    let mut counts: Vec<(Option<Arc<Frame>>, usize)> = Vec::new();
    for t in tasks {
        match counts.iter_mut().find(|(k, _)| *k == t.kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((t.kind.clone(), 1)),
        }
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_each_tasks_samples_threads_and_lifetime() {
        let header = hud_format::types::Header::default();
        let mut model = crate::model::builder::ModelBuilder::new(header, "1.2".into())
            .model()
            .clone();
        let sample = |tid, ts, task| crate::model::Sample {
            ts,
            tid,
            stack: 0,
            task,
            tick: hud_format::wire::NO_TICK,
        };
        model.samples = vec![
            sample(1, 10, 7),
            sample(1, 20, 7),
            sample(1, 30, 0),
            sample(2, 25, 7),
            sample(2, 40, 9),
        ];
        let tasks = in_window(&model, &TaskKinds::default(), &[], 0, 100);
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].id, 7);
        assert_eq!(tasks[0].samples, 3);
        assert_eq!(tasks[0].threads, vec![1, 2]);
        assert_eq!((tasks[0].first_seen, tasks[0].last_seen), (10, 25));
        assert_eq!(tasks[1].id, 9);
        // A window sees only its own events.
        let later = in_window(&model, &TaskKinds::default(), &[], 21, 100);
        assert_eq!(
            later.iter().map(|t| (t.id, t.samples)).collect::<Vec<_>>(),
            vec![(7, 1), (9, 1)]
        );
    }
}
