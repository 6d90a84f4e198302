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
    /// showed them to be one poll; without, polls of the same code with no I/O driver poll
    /// between them may have been merged and its duration is an upper bound. Off-CPU episodes:
    /// always.
    pub proven: bool,
    /// Index into [`Detection::leaves`]: the innermost user frame (at its line) most of the
    /// episode's samples were in; for an off-CPU episode, the one that called the library.
    pub leaf: u32,
    /// Samples on `leaf` (1 for off-CPU episodes).
    pub leaf_samples: u32,
    /// A long poll in an async fn's own frame whose samples were all in one function it called:
    /// that function, as an index into [`Detection::callees`] (`NO_LEAF` otherwise).
    pub callee: u32,
}

impl Episode {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.duration)
    }

    /// Found by samples on CPU (a long poll, or a blocking call that ran on CPU), not by an
    /// off-CPU record: its samples are its evidence and its end is estimated.
    pub fn on_cpu(&self) -> bool {
        self.samples > 0
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
    /// The call to move off the runtime.
    pub call: Call,
    /// The system call the thread blocked in, as libc names it without its prefixes (`futex`,
    /// `clock_nanosleep`, `read`), where the stack's leaf shows it (off-CPU blockers only).
    pub syscall: Option<String>,
}

/// The call that made a blocker: the outermost synchronous call made from async code on the
/// blocking path. Moving it off the runtime (or making it async) is the fix; the leaf, where
/// the time went, may be frames deeper and is shared by every caller of a helper.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// The async fn (or async block) that made the call, at the call's line; `None` when no
    /// async fn of the program is on the path (a library's future called it).
    pub site: Option<Frame>,
    /// What it called: a function of the program, or a library function entered from the
    /// program's code (`std::thread::sleep`). `None` for a long poll whose samples share no
    /// callee: the async fn's own code (a loop) at `site`.
    pub callee: Option<Frame>,
    /// No frame of the program's own code is on the path: `callee` is the outermost frame of a
    /// dependency inside the task's poll.
    pub in_dependency: bool,
}

/// Everything detection found over the whole capture.
pub struct Detection {
    /// Sorted by start.
    pub episodes: Vec<Episode>,
    pub groups: Vec<Group>,
    /// Leaf frames of episodes (see [`Episode::leaf`]), each at its line.
    pub leaves: Vec<Frame>,
    /// Functions long polls were all in (see [`Episode::callee`]).
    pub callees: Vec<Frame>,
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
    pub call: Call,
    pub syscall: Option<String>,
    /// Where the time went: the leaf most of the listed episodes' samples were on, and its
    /// share of them (`None` when no episode is listed).
    pub leaf: Option<(Frame, f64)>,
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

    /// The frames of an example stack from the leaf (the innermost frame of the program's code)
    /// out to the call's site, innermost first; without them, the whole part inside the poll.
    pub fn call_path<'s>(&self, stack: &'s [Frame]) -> &'s [Frame] {
        let from = stack.iter().position(frames::is_user).unwrap_or(0);
        let to = self
            .call
            .site
            .as_ref()
            .or(self.call.callee.as_ref())
            .and_then(|site| stack[from..].iter().rposition(|f| same_function(f, site)))
            .map_or(stack.len(), |i| from + i + 1);
        &stack[from..to.max(from)]
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
    // Per group, per leaf: samples on it.
    let mut leaves: HashMap<(u32, u32), u64> = HashMap::default();
    for e in detection.episodes.iter().filter(|e| wanted(e)) {
        let g = &detection.groups[e.group as usize];
        let b = by_group.entry(e.group).or_insert_with(|| Blocker {
            group: e.group,
            kind: g.kind,
            blame: g.blame.clone(),
            task: g.task.clone(),
            spawned: g.spawned.clone(),
            user_path: g.user_path.clone(),
            call: g.call.clone(),
            syscall: g.syscall.clone(),
            leaf: None,
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
        *leaves.entry((e.group, e.leaf)).or_default() += u64::from(e.leaf_samples);
    }
    let mut out: Vec<Blocker> = by_group.into_values().collect();
    for b in out.iter_mut() {
        let weight: u64 = b.episodes.iter().map(|e| u64::from(e.samples.max(1))).sum();
        b.leaf = leaves
            .iter()
            .filter(|((g, _), _)| *g == b.group)
            .max_by_key(|((_, l), n)| (**n, u32::MAX - *l))
            .and_then(|((_, l), n)| {
                let f = detection.leaves.get(*l as usize)?;
                Some((f.clone(), *n as f64 / weight.max(1) as f64))
            });
        if b.kind != Kind::Cpu {
            continue;
        }
        // Samples of a poll that all fell in one call can be chance (two samples, one inlined
        // multiply): the call is named when every listed poll agrees, over enough samples.
        let first = b.episodes.first().map_or(NO_LEAF, |e| e.callee);
        if b.call.callee.is_none()
            && first != NO_LEAF
            && weight >= MIN_SAMPLES_FOR_A_CALL
            && b.episodes.iter().all(|e| e.callee == first)
        {
            b.call.callee = detection.callees.get(first as usize).cloned();
        }
        // The line with the most samples; the lower line on a tie, so the answer is stable.
        if let Some(((_, line), _)) = lines
            .iter()
            .filter(|((g, _), _)| *g == b.group)
            .max_by_key(|((_, l), n)| (**n, u32::MAX - *l))
        {
            b.blame.line = *line;
            // A long poll in the async fn's own code: the call site is the blamed frame, whose
            // line varies by poll.
            if let Some(site) = b.call.site.as_mut().filter(|s| same_function(s, &b.blame)) {
                site.line = *line;
            }
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

/// Samples a long-poll blocker needs before the one function they were all in is named as its
/// call.
const MIN_SAMPLES_FOR_A_CALL: u64 = 8;

/// Two frames of the same function (interned name and file).
fn same_function(a: &Frame, b: &Frame) -> bool {
    interned_id(&a.function) == interned_id(&b.function)
        && a.file.as_ref().map(interned_id) == b.file.as_ref().map(interned_id)
}

/// A user frame's identity: (function, file) interned, and its line.
type UserFrame = (usize, usize, u32);

/// What detection needs to know of one stack, computed once per stack id from borrowed frames.
#[derive(Clone, Copy, Default)]
struct Facts {
    parked: bool,
    in_poll: bool,
    /// Inside `block_in_place`: the worker's core runs elsewhere meanwhile.
    offloaded: bool,
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
        let mut nested_executor = false;
        for f in self.symbols.frames(self.model, id) {
            let flags = self.cls.flags(f);
            facts.parked |= flags & flags::PARK != 0;
            if facts.in_poll {
                continue;
            }
            nested_executor |= flags & flags::BLOCK_ON != 0;
            facts.offloaded |= flags & flags::BLOCK_IN_PLACE != 0;
            if flags & flags::POLL != 0 {
                facts.in_poll = true;
            } else if flags & flags::USER != 0 {
                user.push(identity(f));
                is_async.push(flags & flags::ASYNC != 0);
            }
        }
        // An executor inside a task's poll parks through Tokio's own code (a nested
        // `block_on`): that is the task blocking its worker, not the worker idling.
        if facts.in_poll && nested_executor {
            facts.parked = false;
        }
        if facts.in_poll && !facts.parked && !facts.offloaded {
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

impl StackFacts<'_> {
    /// In stack `id`, inside the poll: whether the user frame number `k` (innermost first) is an
    /// async fn, and the frame it called, if any.
    fn callee_below(&self, id: u32, k: usize) -> (bool, Option<Frame>) {
        let mut previous: Option<&Frame> = None;
        let mut seen = 0;
        for f in self.symbols.frames(self.model, id) {
            let flags = self.cls.flags(f);
            if flags & flags::POLL != 0 {
                break;
            }
            if flags & flags::USER != 0 {
                if seen == k {
                    return (flags & flags::ASYNC != 0, previous.cloned());
                }
                seen += 1;
            }
            previous = Some(f);
        }
        (false, None)
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
    let mut leaves = Leaves::default();
    let mut callees = Leaves::default();
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
        if f.offloaded {
            continue;
        }
        let kind = *kinds
            .entry((off.stack, off.state))
            .or_insert_with(|| frames::off_cpu_kind(&symbols.stack(model, off.stack), off.state));
        let path = &facts.paths[f.path as usize];
        let group = groups.of((kind, path.clone()), || {
            group_from_stack(&symbols.stack(model, off.stack), kind, path.len(), cls)
        });
        let leaf = path.first().map_or(NO_LEAF, |&u| {
            leaves.of(u, || innermost_user(&symbols.stack(model, off.stack), cls))
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
            leaf,
            leaf_samples: 1,
            callee: NO_LEAF,
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
                    //
                    // The unseen ends are one interval between samples, on CPU: the period
                    // when the samples are a period or more apart, less when they are closer.
                    // Each CPU has its own clock, so a poll that moved to another CPU can be
                    // sampled twice microseconds apart; those samples prove microseconds, not
                    // a period. (A 1 ms poll moved between CPUs under load, sampled 33 µs
                    // apart, was a 10.1 ms "long poll" of hud-yield in a CI run.)
                    let span = last.ts - first.ts;
                    let preempted = thread.timeline.totals(first.ts, last.ts).runnable;
                    let on_cpu = span.saturating_sub(preempted);
                    let intervals = (run.len() as u128 - 1) * period as u128;
                    let unseen =
                        period as u128 * on_cpu as u128 / (span as u128).max(intervals).max(1);
                    let duration = on_cpu + unseen as u64;
                    if duration >= thresholds.long_poll_ns {
                        episodes.push(long_poll(
                            run,
                            samples,
                            duration,
                            thread.tid,
                            facts,
                            (&mut groups, &mut leaves, &mut callees),
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
        leaves: leaves.list,
        callees: callees.list,
        idle_episodes,
    }
}

/// No leaf known (an episode without a user frame).
const NO_LEAF: u32 = u32::MAX;

/// Leaf frames by identity (function, file, line), in the order first seen.
#[derive(Default)]
struct Leaves {
    index: HashMap<UserFrame, u32>,
    list: Vec<Frame>,
}

impl Leaves {
    fn of(&mut self, key: UserFrame, make: impl FnOnce() -> Option<Frame>) -> u32 {
        if let Some(i) = self.index.get(&key) {
            return *i;
        }
        let Some(frame) = make() else {
            return NO_LEAF;
        };
        self.list.push(frame);
        let i = (self.list.len() - 1) as u32;
        self.index.insert(key, i);
        i
    }
}

/// The innermost frame of the program's own code inside the task's poll.
fn innermost_user(frames: &[Frame], cls: &Classifier) -> Option<Frame> {
    let poll = cls.task_poll_index(frames).unwrap_or(frames.len());
    frames[..poll]
        .iter()
        .find(|f| cls.flags(f) & flags::USER != 0)
        .cloned()
}

/// Whether two samples of one thread, in the same code, can be one poll as far as task ids tell
/// (format 1.2): they ran in the same task, and the scheduler's tick did not move between them
/// (it moves at each task the scheduler polls, so a task that yielded and was polled again is
/// two polls). Without ids (older captures, targets without debug info) nothing is ruled out;
/// without the tick, a task's polls back to back are one (an upper bound). Without either, a
/// recorder that counted the thread's I/O driver polls (`TICK_OF_IO_POLLS`) rules out samples
/// with one of those polls between them: the worker was back in its scheduler.
fn one_poll_by_task(a: &crate::model::Sample, b: &crate::model::Sample) -> bool {
    use hud_format::wire::NO_TICK;
    let same_tick = a.tick == NO_TICK || b.tick == NO_TICK || a.tick == b.tick;
    if a.task == 0 || b.task == 0 {
        return same_tick;
    }
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
/// inside the blame that not every episode shares); `user_len` user frames remain. Off CPU, the
/// frame the innermost user frame called is part of the call (its episodes share the whole
/// stack); a long poll's is named only when all its polls agree (see `blockers_of`).
fn group_from_stack(frames: &[Frame], kind: Kind, user_len: usize, cls: &Classifier) -> Group {
    let poll = cls.task_poll_index(frames).unwrap_or(frames.len());
    let inside = &frames[..poll];
    let user_at: Vec<usize> = (0..inside.len())
        .filter(|&i| cls.flags(&inside[i]) & flags::USER != 0)
        .collect();
    let user_at = &user_at[user_at.len().saturating_sub(user_len)..];
    let user: Vec<Frame> = user_at.iter().map(|&i| inside[i].clone()).collect();
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
        call: call_of(inside, user_at, kind != Kind::Cpu, cls),
        syscall: (kind != Kind::Cpu)
            .then(|| frames::syscall_name(frames))
            .flatten(),
    }
}

/// The call to move off the runtime, from the frames inside a task's poll (innermost first)
/// and the indices of the group's user frames among them.
fn call_of(inside: &[Frame], user_at: &[usize], inner_callee: bool, cls: &Classifier) -> Call {
    let Some(&outermost) = user_at.last() else {
        // None of the program's frames: the outermost frame of a dependency, never a libc or
        // std leaf.
        let dependency = inside.iter().rev().find(|f| frames::is_dependency(f));
        return Call {
            site: None,
            callee: dependency.cloned(),
            in_dependency: dependency.is_some(),
        };
    };
    let Some(a) = user_at
        .iter()
        .position(|&i| cls.flags(&inside[i]) & flags::ASYNC != 0)
    else {
        // No async fn of the program: a library's future called the program's code.
        return Call {
            site: None,
            callee: Some(inside[outermost].clone()),
            in_dependency: false,
        };
    };
    let site = user_at[a];
    let callee = if a > 0 {
        Some(inside[user_at[a - 1]].clone())
    } else if inner_callee && site > 0 {
        Some(inside[site - 1].clone())
    } else {
        None
    };
    Call {
        site: Some(inside[site].clone()),
        callee,
        in_dependency: false,
    }
}

/// A long poll from a run of samples: grouped by the user frames all its samples share (and
/// the call their innermost one makes, when all make the same), blamed on the innermost of them
/// at the line most samples were on.
#[allow(clippy::too_many_arguments)]
fn long_poll(
    run: &[usize],
    samples: &[crate::model::Sample],
    duration: u64,
    tid: u32,
    facts: &mut StackFacts<'_>,
    (groups, leaves, callees): (&mut Groups, &mut Leaves, &mut Leaves),
    cls: &Classifier,
) -> Episode {
    let paths: Vec<u32> = run
        .iter()
        .map(|&i| facts.of(samples[i].stack).path)
        .collect();
    if let Some(kind) = call_kind_on_cpu(run, samples, &paths, facts) {
        // One blocking call that ran on CPU: the row of that call, as its waits off CPU are.
        let path = facts.paths[paths[0] as usize].clone();
        let (symbols, model, stack) = (facts.symbols, facts.model, samples[run[0]].stack);
        let group = groups.of((kind, path.clone()), || {
            group_from_stack(&symbols.stack(model, stack), kind, path.len(), cls)
        });
        let leaf = path.first().map_or(NO_LEAF, |&u| {
            leaves.of(u, || innermost_user(&symbols.stack(model, stack), cls))
        });
        return Episode {
            tid,
            start: samples[run[0]].ts,
            duration,
            kind,
            stack,
            samples: run.len() as u32,
            group,
            line: path.first().map_or(0, |u| u.2),
            task: samples[run[0]].task,
            proven: run
                .iter()
                .all(|&i| samples[i].task != 0 && samples[i].tick != hud_format::wire::NO_TICK),
            leaf,
            leaf_samples: run.len() as u32,
            callee: NO_LEAF,
        };
    }
    let shared = common_outer_frames(paths.iter().map(|p| &facts.paths[*p as usize][..]));
    // Lines of the innermost shared frame, and innermost user frames, per sample.
    let mut lines: HashMap<u32, u32> = HashMap::default();
    let mut leaf_counts: HashMap<UserFrame, (u32, u32)> = HashMap::default();
    for (&i, p) in run.iter().zip(&paths) {
        let path = &facts.paths[*p as usize];
        if let Some(f) = path.get(path.len() - shared) {
            *lines.entry(f.2).or_default() += 1;
        }
        if let Some(&leaf) = path.first() {
            leaf_counts.entry(leaf).or_insert((0, samples[i].stack)).0 += 1;
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
    let callee = (shared > 0)
        .then(|| shared_callee(run, samples, &paths, shared, facts))
        .flatten()
        .map_or(NO_LEAF, |f| {
            let key = (
                interned_id(&f.function),
                f.file.as_ref().map_or(0, interned_id),
                0,
            );
            callees.of(key, || Some(f))
        });
    let symbols = facts.symbols;
    let model = facts.model;
    let group = groups.of((Kind::Cpu, key), || {
        group_from_stack(&symbols.stack(model, example), Kind::Cpu, shared, cls)
    });
    let (leaf, leaf_samples) = leaf_counts
        .iter()
        .max_by_key(|(l, (n, _))| (*n, u32::MAX - l.2))
        .map_or((NO_LEAF, 0), |(&l, &(n, stack))| {
            (
                leaves.of(l, || innermost_user(&symbols.stack(model, stack), cls)),
                n,
            )
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
        leaf,
        leaf_samples,
        callee,
    }
}

/// A long poll whose samples are all in the kernel inside one blocking system call of a known
/// kind, on one path of the program's frames: that call's blocking done on CPU (a `std::fs::read` of a cold 8 MiB
/// file ran 41 ms in the kernel's page cache code before its first disk wait, and was told as
/// a "long poll" to split with yields). `None` for CPU work of the program's own.
fn call_kind_on_cpu(
    run: &[usize],
    samples: &[crate::model::Sample],
    paths: &[u32],
    facts: &StackFacts<'_>,
) -> Option<Kind> {
    let first = &facts.paths[*paths.first()? as usize];
    if paths.iter().any(|p| facts.paths[*p as usize] != *first) {
        return None;
    }
    let mut kind = None;
    for &i in run {
        let stack = facts.symbols.stack(facts.model, samples[i].stack);
        if !frames::in_system_call(&stack) {
            return None;
        }
        let k = frames::off_cpu_kind(&stack, 0);
        if matches!(k, Kind::Cpu | Kind::Other) || kind.is_some_and(|seen| seen != k) {
            return None;
        }
        kind = Some(k);
    }
    kind
}

/// When the innermost shared user frame of a long poll is an async fn: the function it called
/// that every sample is in, at one line of it. `None` when the samples are in its own code or
/// in different calls.
fn shared_callee(
    run: &[usize],
    samples: &[crate::model::Sample],
    paths: &[u32],
    shared: usize,
    facts: &StackFacts<'_>,
) -> Option<Frame> {
    let mut found: Option<(Frame, u32)> = None;
    for (&i, p) in run.iter().zip(paths) {
        let path = &facts.paths[*p as usize];
        let k = path.len() - shared;
        let (is_async, callee) = facts.callee_below(samples[i].stack, k);
        let callee = callee?;
        let line = path[k].2;
        if !is_async
            || found
                .as_ref()
                .is_some_and(|(f, l)| *l != line || !same_function(f, &callee))
        {
            return None;
        }
        found.get_or_insert((callee, line));
    }
    found.map(|(c, _)| c)
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
            leaf: NO_LEAF,
            leaf_samples: 1,
            callee: NO_LEAF,
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
            call: Call::default(),
            syscall: None,
            leaf: None,
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
