//! Blocking detection over the whole capture: off-CPU episodes inside task polls and long on-CPU
//! polls, each tied to a group (one thing to fix: a kind and a user call path). A time window's
//! blockers are then a filter over the episodes ([`blockers`]), never a new detection.

use rustc_hash::FxHashMap as HashMap;

use super::frames::{self, flags, Classifier, Kind};
use crate::model::Model;
use crate::symbols::{interned_id, Frame, Symbols};

/// Detection thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Shortest blocked (not runnable) off-CPU time inside a poll that counts.
    pub off_cpu_ns: u64,
    /// Shortest on-CPU poll that counts (needs at least two samples).
    pub long_poll_ns: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            off_cpu_ns: 1_000_000,
            long_poll_ns: 10_000_000,
        }
    }
}

/// One occurrence of blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    pub tid: u32,
    pub start: u64,
    pub duration: u64,
    pub kind: Kind,
    /// The stack shown for it: the off-CPU stack, or a sample of the long poll on `line`.
    pub stack: u32,
    /// Samples that make up a long poll (0 for off-CPU episodes).
    pub samples: u32,
    /// Index into [`Detection::groups`].
    pub group: u32,
    /// Line of the blamed frame in this episode (for a long poll: the line most of its samples
    /// were on).
    pub line: u32,
    /// The Tokio task it happened in (0: not known).
    pub task: u64,
    /// A long poll whose samples all carried a task id and a scheduler tick, so the runtime
    /// showed them to be one poll; without, back-to-back polls of the same code may have been
    /// merged and its duration is an upper bound. Off-CPU episodes: always.
    pub proven: bool,
}

impl Episode {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.duration)
    }
}

/// What a group of episodes has in common: one thing to fix.
#[derive(Clone, Debug)]
pub struct Group {
    pub kind: Kind,
    /// Innermost user frame common to the episodes: where the time goes. For long polls its line
    /// varies by episode (see [`Episode::line`]); here it is the first episode's.
    pub blame: Frame,
    /// Innermost async fn of the user's code: where in the task it happened.
    pub task: Option<Frame>,
    /// Outermost user frame the runtime polls: the spawned task (its future).
    pub spawned: Option<Frame>,
    /// The user frames from the blame outwards, the grouping key.
    pub user_path: Vec<Frame>,
}

/// Everything detection found over the whole capture.
pub struct Detection {
    /// Sorted by start.
    pub episodes: Vec<Episode>,
    pub groups: Vec<Group>,
    /// Off-CPU episodes of runtime threads that were parked or idle (not blocking).
    pub idle_episodes: usize,
}

/// Episodes that share a group, within a window.
#[derive(Clone, Debug)]
pub struct Blocker {
    pub group: u32,
    pub kind: Kind,
    /// Where the time goes, with the line most of the window's time was on.
    pub blame: Frame,
    pub task: Option<Frame>,
    pub spawned: Option<Frame>,
    pub user_path: Vec<Frame>,
    pub episodes: Vec<Episode>,
    /// The longest episode's stack.
    pub example: u32,
    total: u64,
    longest: u64,
    /// Episodes a live view no longer holds in detail (older than its window), in totals.
    pub forgotten: Forgotten,
}

/// Episodes of a blocker that are counted but no longer listed: a live view folds what leaves
/// its window of detail into these, so session totals stay exact while memory stays bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub count: usize,
    pub total: u64,
    pub longest: u64,
    /// Start of the first one.
    pub first: Option<u64>,
    /// Counts per duration bucket (see [`Blocker::histogram`]).
    pub buckets: Vec<usize>,
}

/// What identifies a blocker across analyses of a growing capture (group ids are per analysis):
/// its kind and its user frames, by interned name and file. Not by line: a long poll's lines are
/// the ones most of the window's samples were on, and they move from window to window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockerKey {
    kind: Kind,
    path: Vec<(usize, usize)>,
}

/// Histogram bucket of a duration: 0 below 1 ms, then one per doubling.
fn bucket(d: u64) -> usize {
    const MS: u64 = 1_000_000;
    if d < MS {
        0
    } else {
        (64 - (d / MS).leading_zeros()) as usize
    }
}

impl Blocker {
    /// Total time, forgotten episodes included.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The longest episode, forgotten ones included.
    pub fn max(&self) -> u64 {
        self.longest
    }

    /// How many episodes, forgotten ones included.
    pub fn count(&self) -> usize {
        self.episodes.len() + self.forgotten.count
    }

    /// The identity of this blocker across analyses.
    pub fn key(&self) -> BlockerKey {
        let frame = |f: &Frame| {
            (
                crate::symbols::interned_id(&f.function),
                f.file.as_ref().map_or(0, crate::symbols::interned_id),
            )
        };
        let path = if self.user_path.is_empty() {
            vec![frame(&self.blame)]
        } else {
            self.user_path.iter().map(frame).collect()
        };
        BlockerKey {
            kind: self.kind,
            path,
        }
    }

    /// Folds the episodes of `other` (the same blocker, earlier) into the forgotten totals.
    pub fn forget(&mut self, other: &Blocker) {
        let f = &mut self.forgotten;
        f.count += other.count();
        f.total = f.total.saturating_add(other.total);
        f.longest = f.longest.max(other.longest);
        let first = other.first();
        f.first = Some(f.first.map_or(first, |t| t.min(first)));
        for (b, n) in other
            .episodes
            .iter()
            .map(|e| (bucket(e.duration), 1))
            .chain(other.forgotten.buckets.iter().copied().enumerate())
        {
            if f.buckets.len() <= b {
                f.buckets.resize(b + 1, 0);
            }
            f.buckets[b] += n;
        }
        self.total = self.total.saturating_add(other.total);
        if other.longest > self.longest {
            self.longest = other.longest;
            self.example = other.example;
        }
    }

    /// The same blocker with its episodes forgotten: totals only.
    pub fn forgotten_only(&self) -> Blocker {
        let mut b = Blocker {
            episodes: Vec::new(),
            total: 0,
            longest: 0,
            forgotten: Forgotten::default(),
            ..self.clone()
        };
        b.forget(self);
        b
    }

    /// Duration at quantile `q` (0..=1), nearest rank, of the episodes held in detail.
    pub fn quantile(&self, q: f64) -> u64 {
        let mut d: Vec<u64> = self.episodes.iter().map(|e| e.duration).collect();
        d.sort_unstable();
        nearest_rank(&d, q)
    }

    /// When the first episode started.
    pub fn first(&self) -> u64 {
        self.episodes
            .iter()
            .map(|e| e.start)
            .chain(self.forgotten.first)
            .min()
            .unwrap_or(0)
    }

    /// Episode durations in buckets doubling from 1 ms: `(upper bound ns, count)`, from the
    /// bucket of the shortest episode to that of the longest (`u64::MAX` for the last bucket).
    pub fn histogram(&self) -> Vec<(u64, usize)> {
        const MS: u64 = 1_000_000;
        let mut all = self.forgotten.buckets.clone();
        for e in &self.episodes {
            let b = bucket(e.duration);
            if all.len() <= b {
                all.resize(b + 1, 0);
            }
            all[b] += 1;
        }
        let (Some(lo), Some(hi)) = (
            all.iter().position(|&n| n > 0),
            all.iter().rposition(|&n| n > 0),
        ) else {
            return Vec::new();
        };
        let counts = all[lo..=hi].to_vec();
        counts
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let upper = MS.checked_shl((lo + i) as u32).unwrap_or(u64::MAX);
                (upper, n)
            })
            .collect()
    }

    /// The Tokio tasks its listed episodes happened in (known ids only), most time first:
    /// (task id, episodes, total time).
    pub fn tasks(&self) -> Vec<(u64, usize, u64)> {
        let mut by_task: HashMap<u64, (usize, u64)> = HashMap::default();
        for e in self.episodes.iter().filter(|e| e.task != 0) {
            let t = by_task.entry(e.task).or_default();
            t.0 += 1;
            t.1 += e.duration;
        }
        let mut tasks: Vec<(u64, usize, u64)> = by_task
            .into_iter()
            .map(|(id, (n, total))| (id, n, total))
            .collect();
        tasks.sort_by_key(|&(id, n, total)| (std::cmp::Reverse(total), std::cmp::Reverse(n), id));
        tasks
    }

    /// Listed long polls whose samples the runtime did not show to be one poll (no task ids):
    /// their durations are upper bounds.
    pub fn unproven(&self) -> usize {
        self.episodes.iter().filter(|e| !e.proven).count()
    }

    /// Threads it happened on, sorted.
    pub fn threads(&self) -> Vec<u32> {
        let mut t: Vec<u32> = self.episodes.iter().map(|e| e.tid).collect();
        t.sort_unstable();
        t.dedup();
        t
    }
}

/// The value at quantile `q` of sorted values, by nearest rank (0 when empty).
pub fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The blockers of the episodes overlapping `[from, to)`, sorted by total time (then function).
pub fn blockers(detection: &Detection, from: u64, to: u64) -> Vec<Blocker> {
    blockers_of(detection, |e| e.start < to && e.end() > from)
}

/// The blockers of the episodes that ended in `[from, to)`: what a live view forgets when its
/// window of detail moves past `to` (an episode still running then is counted later, once).
pub fn blockers_ended(detection: &Detection, from: u64, to: u64) -> Vec<Blocker> {
    blockers_of(detection, |e| e.end() >= from && e.end() < to)
}

fn blockers_of(detection: &Detection, wanted: impl Fn(&Episode) -> bool) -> Vec<Blocker> {
    let mut by_group: HashMap<u32, Blocker> = HashMap::default();
    // Per group, per line: samples (long polls) or episodes (off CPU) on it.
    let mut lines: HashMap<(u32, u32), u64> = HashMap::default();
    for e in detection.episodes.iter().filter(|e| wanted(e)) {
        let g = &detection.groups[e.group as usize];
        let b = by_group.entry(e.group).or_insert_with(|| Blocker {
            group: e.group,
            kind: g.kind,
            blame: g.blame.clone(),
            task: g.task.clone(),
            spawned: g.spawned.clone(),
            user_path: g.user_path.clone(),
            episodes: Vec::new(),
            example: e.stack,
            total: 0,
            longest: 0,
            forgotten: Forgotten::default(),
        });
        if e.duration > b.longest || b.episodes.is_empty() {
            b.longest = e.duration;
            b.example = e.stack;
        }
        // Saturating: a crafted capture's episodes may overlap and sum past u64.
        b.total = b.total.saturating_add(e.duration);
        b.episodes.push(*e);
        *lines.entry((e.group, e.line)).or_default() += u64::from(e.samples.max(1));
    }
    let mut out: Vec<Blocker> = by_group.into_values().collect();
    for b in out.iter_mut().filter(|b| b.kind == Kind::Cpu) {
        // The line with the most samples; the lower line on a tie, so the answer is stable.
        if let Some(((_, line), _)) = lines
            .iter()
            .filter(|((g, _), _)| *g == b.group)
            .max_by_key(|((_, l), n)| (**n, u32::MAX - *l))
        {
            b.blame.line = *line;
        }
    }
    out.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then_with(|| a.blame.function.cmp(&b.blame.function))
            .then_with(|| a.group.cmp(&b.group))
    });
    out
}

/// A user frame's identity: (function, file) interned, and its line.
type UserFrame = (usize, usize, u32);

/// What detection needs to know of one stack, computed once per stack id from borrowed frames.
#[derive(Clone, Copy, Default)]
struct Facts {
    parked: bool,
    in_poll: bool,
    /// The poll's identity (the innermost user async fn and its user callers), interned; `None`
    /// outside a task poll, when parked, or without a user async fn.
    poll: Option<u32>,
    /// Index of the stack's user frames inside the poll (innermost first) in `StackFacts::paths`.
    path: u32,
}

/// [`Facts`] per stack id, the interned poll identities and user paths.
struct StackFacts<'a> {
    model: &'a Model,
    symbols: &'a Symbols,
    cls: &'a Classifier,
    memo: Vec<Option<Facts>>,
    polls: HashMap<Vec<(usize, usize)>, u32>,
    /// User frames inside the poll, innermost first, per distinct path.
    paths: Vec<Vec<UserFrame>>,
}

impl<'a> StackFacts<'a> {
    fn new(model: &'a Model, symbols: &'a Symbols, cls: &'a Classifier) -> Self {
        Self {
            model,
            symbols,
            cls,
            memo: vec![None; model.stacks.len() + 1],
            polls: HashMap::default(),
            paths: Vec::new(),
        }
    }

    fn of(&mut self, id: u32) -> Facts {
        if let Some(Some(facts)) = self.memo.get(id as usize) {
            return *facts;
        }
        let mut facts = Facts::default();
        let mut user: Vec<UserFrame> = Vec::new();
        let mut is_async: Vec<bool> = Vec::new();
        for f in self.symbols.frames(self.model, id) {
            let flags = self.cls.flags(f);
            facts.parked |= flags & flags::PARK != 0;
            if facts.in_poll {
                continue;
            }
            if flags & flags::POLL != 0 {
                facts.in_poll = true;
            } else if flags & flags::USER != 0 {
                user.push(identity(f));
                is_async.push(flags & flags::ASYNC != 0);
            }
        }
        if facts.in_poll && !facts.parked {
            if let Some(at) = is_async.iter().position(|a| *a) {
                let key: Vec<(usize, usize)> = user[at..].iter().map(|u| (u.0, u.1)).collect();
                let next = self.polls.len() as u32;
                facts.poll = Some(*self.polls.entry(key).or_insert(next));
            }
        }
        facts.path = self.paths.len() as u32;
        self.paths
            .push(if facts.in_poll { user } else { Vec::new() });
        if let Some(slot) = self.memo.get_mut(id as usize) {
            *slot = Some(facts);
        }
        facts
    }
}

fn identity(f: &Frame) -> UserFrame {
    (
        interned_id(&f.function),
        f.file.as_ref().map_or(0, interned_id),
        f.line,
    )
}

/// The user frames every path shares, counted from the outermost: frames match by function and
/// file, and by line too except the innermost shared one (where a helper call and the caller's
/// own code are one long-running call). Returns how many frames are shared.
fn common_outer_frames<'p>(mut paths: impl Iterator<Item = &'p [UserFrame]>) -> usize {
    let Some(first) = paths.next() else {
        return 0;
    };
    let mut shared = first.len();
    for p in paths {
        let mut n = 0;
        for (a, b) in first.iter().rev().zip(p.iter().rev()).take(shared) {
            if (a.0, a.1) != (b.0, b.1) {
                break;
            }
            n += 1;
            if a.2 != b.2 {
                break;
            }
        }
        shared = shared.min(n);
    }
    shared
}

/// A group's identity: kind and user path (interned function and file; lines of callers).
type GroupKey = (Kind, Vec<UserFrame>);

/// Runs detection over the whole capture.
pub fn detect(
    model: &Model,
    symbols: &Symbols,
    thresholds: Thresholds,
    cls: &Classifier,
) -> Detection {
    let runs_tasks = |tid: u32| model.threads.get(&tid).is_some_and(|t| t.role.runs_tasks());
    let mut facts = StackFacts::new(model, symbols, cls);
    // The kind of an off-CPU stack, per (stack, state): many episodes share a stack.
    let mut kinds: HashMap<(u32, u16), Kind> = HashMap::default();
    let mut groups = Groups::default();
    let mut episodes: Vec<Episode> = Vec::new();
    let mut idle_episodes = 0;

    // While hud-record detached its poll probes the target's threads could stall on its
    // doing (the kernel rewrote their code): not the target's blocking.
    let detaching = model.polls.as_ref().and_then(|p| p.detaching);
    let during_detach = |off: &crate::model::OffCpu| {
        detaching.is_some_and(|(from, to)| off.end > from && off.end - off.duration < to)
    };
    // Off CPU inside a task poll, blocked past the threshold.
    for off in &model.off_cpu {
        if !runs_tasks(off.tid) || off.blocked() < thresholds.off_cpu_ns || during_detach(off) {
            continue;
        }
        let f = facts.of(off.stack);
        if f.parked || !f.in_poll {
            idle_episodes += 1;
            continue;
        }
        let kind = *kinds
            .entry((off.stack, off.state))
            .or_insert_with(|| frames::off_cpu_kind(&symbols.stack(model, off.stack), off.state));
        let path = &facts.paths[f.path as usize];
        let group = groups.of((kind, path.clone()), || {
            group_from_stack(&symbols.stack(model, off.stack), kind, path.len(), cls)
        });
        episodes.push(Episode {
            tid: off.tid,
            start: off.start(),
            duration: off.blocked(),
            kind,
            stack: off.stack,
            samples: 0,
            group,
            line: path.first().map_or(0, |u| u.2),
            task: off.task,
            proven: true,
        });
    }

    // Long polls: consecutive samples of one worker in the same task poll, no voluntary switch.
    let period = model.sample_period();
    if period > 0 {
        for thread in model.threads.values().filter(|t| t.role.runs_tasks()) {
            let samples = model.samples_of(thread.tid);
            let mut run: Vec<usize> = Vec::new();
            let mut run_key: Option<u32> = None;
            let mut flush = |run: &mut Vec<usize>, facts: &mut StackFacts<'_>| {
                if run.len() >= 2 {
                    let first = samples[run[0]];
                    let last = samples[*run.last().expect("non-empty")];
                    // k samples of one poll on CPU the whole time estimate k periods: the time
                    // between the first and the last, and half a period beyond each (where the
                    // poll ran unseen). Time the thread spent preempted is the CPU's shortage
                    // (said as scheduling pressure), not the poll's: only the time on CPU
                    // counts, and the unseen ends at the share of time it was on CPU. (A poll of
                    // 1 ms preempted for 20 ms under load, sampled at both ends, was a 31 ms
                    // "long poll" in read_data_file.)
                    let span = last.ts - first.ts;
                    let preempted = thread.timeline.totals(first.ts, last.ts).runnable;
                    let on_cpu = span.saturating_sub(preempted);
                    let duration =
                        on_cpu + (period as u128 * on_cpu as u128 / span.max(1) as u128) as u64;
                    if duration >= thresholds.long_poll_ns {
                        episodes.push(long_poll(
                            run,
                            samples,
                            duration,
                            thread.tid,
                            facts,
                            &mut groups,
                            cls,
                        ));
                    }
                }
                run.clear();
            };
            for (i, s) in samples.iter().enumerate() {
                let key = facts.of(s.stack).poll;
                let continues = key.is_some()
                    && key == run_key
                    && run.last().is_some_and(|&prev| {
                        one_poll_by_task(&samples[prev], s)
                            && !thread
                                .timeline
                                .voluntary_switch_out_between(samples[prev].ts, s.ts)
                    });
                if !continues {
                    flush(&mut run, &mut facts);
                    run_key = key;
                }
                if key.is_some() {
                    run.push(i);
                }
            }
            flush(&mut run, &mut facts);
        }
    }
    episodes.sort_by_key(|e| (e.start, e.tid));
    Detection {
        episodes,
        groups: groups.list,
        idle_episodes,
    }
}

/// Whether two samples of one thread, in the same code, can be one poll as far as task ids tell
/// (format 1.2): they ran in the same task, and the scheduler's tick did not move between them
/// (it moves at each task the scheduler polls, so a task that yielded and was polled again is
/// two polls). Without ids (older captures, targets without debug info) nothing is ruled out;
/// without the tick, a task's polls back to back are one (an upper bound).
fn one_poll_by_task(a: &crate::model::Sample, b: &crate::model::Sample) -> bool {
    use hud_format::wire::NO_TICK;
    if a.task == 0 || b.task == 0 {
        return true;
    }
    let same_tick = a.tick == NO_TICK || b.tick == NO_TICK || a.tick == b.tick;
    a.task == b.task && same_tick
}

/// Groups by key, in the order first seen.
#[derive(Default)]
struct Groups {
    index: HashMap<GroupKey, u32>,
    list: Vec<Group>,
}

impl Groups {
    fn of(&mut self, key: GroupKey, make: impl FnOnce() -> Group) -> u32 {
        let list = &mut self.list;
        *self.index.entry(key).or_insert_with(|| {
            list.push(make());
            (list.len() - 1) as u32
        })
    }
}

/// A group from an example stack whose innermost `skip` user frames are not part of it (frames
/// inside the blame that not every episode shares); `user_len` user frames remain.
fn group_from_stack(frames: &[Frame], kind: Kind, user_len: usize, cls: &Classifier) -> Group {
    let poll = cls.task_poll_index(frames).unwrap_or(frames.len());
    let user: Vec<Frame> = frames[..poll]
        .iter()
        .filter(|f| cls.flags(f) & flags::USER != 0)
        .cloned()
        .collect();
    let user: Vec<Frame> = user[user.len().saturating_sub(user_len)..].to_vec();
    let blame = user.first().cloned().unwrap_or_else(|| {
        // No user frame (e.g. missing debug info): blame the innermost frame there is.
        frames.first().cloned().unwrap_or(Frame {
            function: "[no stack]".into(),
            file: None,
            line: 0,
            object: u32::MAX,
            inlined: false,
            recovered: None,
        })
    });
    Group {
        kind,
        task: user
            .iter()
            .find(|f| cls.flags(f) & flags::ASYNC != 0)
            .cloned(),
        spawned: user.last().cloned(),
        blame,
        user_path: user,
    }
}

/// A long poll from a run of samples: grouped by the user frames all its samples share, blamed
/// on the innermost of them at the line most samples were on.
#[allow(clippy::too_many_arguments)]
fn long_poll(
    run: &[usize],
    samples: &[crate::model::Sample],
    duration: u64,
    tid: u32,
    facts: &mut StackFacts<'_>,
    groups: &mut Groups,
    cls: &Classifier,
) -> Episode {
    let paths: Vec<u32> = run
        .iter()
        .map(|&i| facts.of(samples[i].stack).path)
        .collect();
    let shared = common_outer_frames(paths.iter().map(|p| &facts.paths[*p as usize][..]));
    // Lines of the innermost shared frame, per sample.
    let mut lines: HashMap<u32, u32> = HashMap::default();
    for p in &paths {
        let path = &facts.paths[*p as usize];
        if let Some(f) = path.get(path.len() - shared) {
            *lines.entry(f.2).or_default() += 1;
        }
    }
    let line = lines
        .iter()
        .max_by_key(|(l, n)| (**n, u32::MAX - **l))
        .map_or(0, |(l, _)| *l);
    // The example: the first sample on that line.
    let example = run
        .iter()
        .zip(&paths)
        .find(|(_, p)| {
            let path = &facts.paths[**p as usize];
            path.get(path.len() - shared).is_some_and(|f| f.2 == line)
        })
        .map_or(samples[run[0]].stack, |(&i, _)| samples[i].stack);
    let example_path = facts.of(example).path as usize;
    let example_path = &facts.paths[example_path];
    let mut key: Vec<UserFrame> = example_path[example_path.len() - shared..].to_vec();
    if let Some(innermost) = key.first_mut() {
        // The blamed frame's line varies by episode: not part of the identity.
        innermost.2 = 0;
    }
    let symbols = facts.symbols;
    let model = facts.model;
    let group = groups.of((Kind::Cpu, key), || {
        group_from_stack(&symbols.stack(model, example), Kind::Cpu, shared, cls)
    });
    Episode {
        tid,
        start: samples[run[0]].ts,
        duration,
        kind: Kind::Cpu,
        stack: example,
        samples: run.len() as u32,
        group,
        line,
        task: samples[run[0]].task,
        proven: run
            .iter()
            .all(|&i| samples[i].task != 0 && samples[i].tick != hud_format::wire::NO_TICK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(nearest_rank(&[], 0.5), 0);
        assert_eq!(nearest_rank(&[7], 0.99), 7);
        let d: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&d, 0.5), 50);
        assert_eq!(nearest_rank(&d, 0.99), 99);
        assert_eq!(nearest_rank(&d, 1.0), 100);
        assert_eq!(nearest_rank(&d, 0.0), 1);
    }

    #[test]
    fn histogram_buckets_double_from_one_millisecond() {
        const MS: u64 = 1_000_000;
        let episode = |duration| Episode {
            tid: 1,
            start: 0,
            duration,
            kind: Kind::Sleep,
            stack: 0,
            samples: 0,
            group: 0,
            line: 0,
            task: 0,
            proven: true,
        };
        let b = Blocker {
            group: 0,
            kind: Kind::Sleep,
            blame: Frame {
                function: "f".into(),
                file: None,
                line: 0,
                object: 0,
                inlined: false,
                recovered: None,
            },
            task: None,
            spawned: None,
            user_path: Vec::new(),
            episodes: [3 * MS, 3 * MS, 15 * MS, 2 * MS].map(episode).to_vec(),
            example: 0,
            total: 0,
            longest: 0,
            forgotten: Forgotten::default(),
        };
        // 2–4 ms: three (2, 3, 3); 4–8: none; 8–16: one.
        assert_eq!(b.histogram(), vec![(4 * MS, 3), (8 * MS, 0), (16 * MS, 1)]);
    }

    #[test]
    fn samples_in_a_helper_and_in_its_caller_share_the_caller() {
        // Outermost last: task (line 5) → loop fn (line 10 calls helper, line 12 own work).
        let in_helper: Vec<UserFrame> = vec![(3, 1, 40), (2, 1, 10), (1, 1, 5)];
        let in_loop: Vec<UserFrame> = vec![(2, 1, 12), (1, 1, 5)];
        let n = common_outer_frames([&in_helper[..], &in_loop[..]].into_iter());
        assert_eq!(n, 2, "the task and the loop fn");
        // Another caller line of the task is another call: only the task is shared.
        let elsewhere: Vec<UserFrame> = vec![(2, 1, 12), (1, 1, 6)];
        assert_eq!(
            common_outer_frames([&in_loop[..], &elsewhere[..]].into_iter()),
            1
        );
        assert_eq!(common_outer_frames([&in_loop[..]].into_iter()), 2);
    }
}
