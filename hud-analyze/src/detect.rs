//! Blocking detection: off-CPU episodes inside task polls, long on-CPU polls, and scheduling
//! pressure, grouped into blockers by the user's call path.

use rustc_hash::FxHashMap as HashMap;

use crate::frames::{self, Kind};
use crate::model::Model;
use crate::symbolize::{interned_id, Frame, Symbols};

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
#[derive(Clone, Debug)]
pub struct Episode {
    pub tid: u32,
    pub start: u64,
    pub duration: u64,
    pub kind: Kind,
    /// Symbolized stack, innermost first.
    pub stack: u32,
    /// Samples that make up a long poll (0 for off-CPU episodes).
    pub samples: u32,
}

/// Episodes that share a user call path: one thing to fix.
#[derive(Clone, Debug)]
pub struct Blocker {
    pub kind: Kind,
    /// Innermost user frame: where the time goes.
    pub blame: Frame,
    /// Innermost async fn of the user's code: which task blocks.
    pub task: Option<Frame>,
    /// The user frames from the blame outwards, the grouping key.
    pub user_path: Vec<Frame>,
    pub episodes: Vec<Episode>,
    /// An example stack (the longest episode's), innermost first.
    pub example: Vec<Frame>,
    /// Longest episode so far (kept while grouping, so grouping stays linear).
    longest: u64,
}

impl Blocker {
    pub fn total(&self) -> u64 {
        self.episodes.iter().map(|e| e.duration).sum()
    }

    pub fn max(&self) -> u64 {
        self.longest
    }

    /// Duration at quantile `q` (0..=1), nearest rank.
    pub fn quantile(&self, q: f64) -> u64 {
        let mut d: Vec<u64> = self.episodes.iter().map(|e| e.duration).collect();
        d.sort_unstable();
        if d.is_empty() {
            return 0;
        }
        let rank = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len());
        d[rank - 1]
    }

    pub fn first(&self) -> u64 {
        self.episodes.iter().map(|e| e.start).min().unwrap_or(0)
    }
}

/// Per-worker scheduling pressure.
#[derive(Clone, Debug)]
pub struct Pressure {
    pub tid: u32,
    /// Time runnable but waiting for a CPU: after preemption, and after wakeups.
    pub runnable_wait_ns: u64,
}

/// Everything detection found.
pub struct Detection {
    pub blockers: Vec<Blocker>,
    pub pressure: Vec<Pressure>,
    /// Off-CPU episodes on runtime threads that were parked/idle (not blocking).
    pub idle_episodes: usize,
}

/// What detection needs to know of one stack, computed once per stack id from borrowed frames:
/// on a million samples, cloning each distinct stack's frames cost more than all the rest.
#[derive(Clone, Copy, Default)]
struct Facts {
    parked: bool,
    in_poll: bool,
    /// The poll's identity (the innermost user async fn and its user callers), interned; `None`
    /// outside a task poll, when parked, or without a user async fn.
    poll: Option<u32>,
}

/// [`Facts`] per stack id, and the interned poll identities.
struct StackFacts<'a> {
    model: &'a Model,
    symbols: &'a Symbols,
    cls: &'a frames::Classifier,
    memo: Vec<Option<Facts>>,
    /// (function, file) identities of the user frames from the innermost async fn outwards.
    polls: HashMap<Vec<(usize, usize)>, u32>,
}

impl<'a> StackFacts<'a> {
    fn new(model: &'a Model, symbols: &'a Symbols, cls: &'a frames::Classifier) -> Self {
        Self {
            model,
            symbols,
            cls,
            memo: vec![None; model.stacks.len() + 1],
            polls: HashMap::default(),
        }
    }

    fn of(&mut self, id: u32) -> Facts {
        if let Some(Some(facts)) = self.memo.get(id as usize) {
            return *facts;
        }
        let mut facts = Facts::default();
        // User frames inside the poll, innermost first: (function, file, async?).
        let mut user: Vec<(usize, usize, bool)> = Vec::new();
        for f in self.symbols.frames(self.model, id) {
            let flags = self.cls.flags(f);
            facts.parked |= flags & frames::flags::PARK != 0;
            if facts.in_poll {
                continue;
            }
            if flags & frames::flags::POLL != 0 {
                facts.in_poll = true;
            } else if flags & frames::flags::USER != 0 {
                let file = f.file.as_ref().map_or(0, interned_id);
                user.push((
                    interned_id(&f.function),
                    file,
                    flags & frames::flags::ASYNC != 0,
                ));
            }
        }
        if facts.in_poll && !facts.parked {
            if let Some(at) = user.iter().position(|u| u.2) {
                let key: Vec<(usize, usize)> = user[at..].iter().map(|u| (u.0, u.1)).collect();
                let next = self.polls.len() as u32;
                facts.poll = Some(*self.polls.entry(key).or_insert(next));
            }
        }
        if let Some(slot) = self.memo.get_mut(id as usize) {
            *slot = Some(facts);
        }
        facts
    }
}

/// A blocker's identity: its kind and user call path (function, file, line).
type GroupKey = (Kind, Vec<(String, String, u32)>);

/// The user's part of a stack inside the task poll: frames before the poll boundary that are
/// user code, innermost first.
fn user_frames(frames: &[Frame], cls: &frames::Classifier) -> Vec<Frame> {
    let poll = cls.task_poll_index(frames).unwrap_or(frames.len());
    frames[..poll]
        .iter()
        .filter(|f| cls.flags(f) & frames::flags::USER != 0)
        .cloned()
        .collect()
}

/// Grouping key: the blame frame's function and file, then the callers with their lines.
fn group_key(user: &[Frame], kind: Kind) -> GroupKey {
    let mut key = Vec::with_capacity(user.len());
    for (i, f) in user.iter().enumerate() {
        let line = if i == 0 && kind == Kind::Cpu {
            0
        } else {
            f.line
        };
        key.push((
            f.function.to_string(),
            f.file.as_deref().unwrap_or("").to_string(),
            line,
        ));
    }
    (kind, key)
}

pub fn detect(model: &Model, symbols: &Symbols, thresholds: Thresholds) -> Detection {
    let cls = frames::Classifier::default();
    // Symbolized stacks, once per stack id, shared (cloning an Rc, not the frames).
    let mut cache: HashMap<u32, std::rc::Rc<Vec<Frame>>> = HashMap::default();
    let mut stack = |id: u32| -> std::rc::Rc<Vec<Frame>> {
        cache
            .entry(id)
            .or_insert_with(|| std::rc::Rc::new(symbols.stack(model, id)))
            .clone()
    };
    let runs_tasks = |tid: u32| model.threads.get(&tid).is_some_and(|t| t.role.runs_tasks());
    // Episodes with their stack id; frames are looked up once per stack when grouping.
    let mut episodes: Vec<(Episode, u32)> = Vec::new();
    let mut facts = StackFacts::new(model, symbols, &cls);
    let mut idle_episodes = 0;

    // Off CPU inside a task poll, blocked past the threshold.
    for off in &model.off_cpu {
        if !runs_tasks(off.tid) || off.blocked() < thresholds.off_cpu_ns {
            continue;
        }
        let f = facts.of(off.stack);
        if f.parked || !f.in_poll {
            idle_episodes += 1;
            continue;
        }
        let kind = frames::off_cpu_kind(&stack(off.stack), off.state);
        episodes.push((
            Episode {
                tid: off.tid,
                start: off.start(),
                duration: off.blocked(),
                kind,
                stack: off.stack,
                samples: 0,
            },
            off.stack,
        ));
    }

    // Long polls: consecutive samples of one worker in the same task poll, no voluntary switch.
    let period = model.sample_period();
    if period > 0 {
        for thread in model.threads.values().filter(|t| t.role.runs_tasks()) {
            let samples = model.samples_of(thread.tid);
            let mut run: Vec<usize> = Vec::new();
            let mut run_key: Option<u32> = None;
            let mut flush = |run: &mut Vec<usize>, first_stack: Option<u32>| {
                if run.len() >= 2 {
                    let first = samples[run[0]];
                    let last = samples[*run.last().expect("non-empty")];
                    let duration = last.ts - first.ts + period;
                    if duration >= thresholds.long_poll_ns {
                        if let Some(stack) = first_stack {
                            episodes.push((
                                Episode {
                                    tid: thread.tid,
                                    start: first.ts,
                                    duration,
                                    kind: Kind::Cpu,
                                    stack: first.stack,
                                    samples: run.len() as u32,
                                },
                                stack,
                            ));
                        }
                    }
                }
                run.clear();
            };
            let mut first_frames: Option<u32> = None;
            for (i, s) in samples.iter().enumerate() {
                let key = facts.of(s.stack).poll;
                let continues = key.is_some()
                    && key == run_key
                    && run
                        .last()
                        .is_some_and(|&prev| !thread.switched_out_between(samples[prev].ts, s.ts));
                if !continues {
                    flush(&mut run, first_frames.take());
                    run_key = key;
                }
                if key.is_some() {
                    if run.is_empty() {
                        first_frames = Some(s.stack);
                    }
                    run.push(i);
                }
            }
            flush(&mut run, first_frames.take());
        }
    }

    // Group by user call path.
    let mut groups: HashMap<GroupKey, Blocker> = HashMap::default();
    let mut user_cache: HashMap<u32, Vec<Frame>> = HashMap::default();
    for (episode, stack_id) in episodes {
        let frames = stack(stack_id);
        let user = user_cache
            .entry(stack_id)
            .or_insert_with(|| user_frames(&frames, &cls))
            .clone();
        let blame = user.first().cloned().unwrap_or_else(|| {
            // No user frame (e.g. missing debug info): blame the innermost frame we have.
            frames.first().cloned().unwrap_or(Frame {
                function: "[no stack]".into(),
                file: None,
                line: 0,
                object: u32::MAX,
                inlined: false,
            })
        });
        let key = group_key(&user, episode.kind);
        let entry = groups.entry(key).or_insert_with(|| Blocker {
            kind: episode.kind,
            task: user
                .iter()
                .find(|f| cls.flags(f) & frames::flags::ASYNC != 0)
                .cloned(),
            blame: blame.clone(),
            user_path: user.clone(),
            episodes: Vec::new(),
            example: Vec::new(),
            longest: 0,
        });
        if episode.duration > entry.longest || entry.example.is_empty() {
            entry.longest = entry.longest.max(episode.duration);
            entry.example = frames.to_vec();
        }
        entry.episodes.push(episode);
    }
    let mut blockers: Vec<Blocker> = groups.into_values().collect();
    // Long polls: blame the line that took the most samples within the group.
    for b in blockers.iter_mut().filter(|b| b.kind == Kind::Cpu) {
        let mut lines: HashMap<u32, u32> = HashMap::default();
        for e in &b.episodes {
            let frames = stack(e.stack);
            if let Some(f) = user_frames(&frames, &cls).first() {
                *lines.entry(f.line).or_default() += 1;
            }
        }
        if let Some((line, _)) = lines.into_iter().max_by_key(|(l, n)| (*n, u32::MAX - *l)) {
            b.blame.line = line;
        }
    }
    blockers.sort_by(|a, b| {
        b.total()
            .cmp(&a.total())
            .then_with(|| a.blame.function.cmp(&b.blame.function))
    });

    // Waits after wakeups, from off-CPU episodes that slept (not preempted ones, whose whole
    // time is already in the preemption wait).
    let mut woken_wait: HashMap<u32, u64> = HashMap::default();
    for o in model
        .off_cpu
        .iter()
        .filter(|o| o.state & 0x100 == 0 && o.state != 0)
    {
        *woken_wait.entry(o.tid).or_default() += o.runnable;
    }
    let mut pressure: Vec<Pressure> = model
        .threads
        .values()
        .filter(|t| t.role.runs_tasks())
        .map(|t| Pressure {
            tid: t.tid,
            runnable_wait_ns: t.preempted_wait_ns + woken_wait.get(&t.tid).copied().unwrap_or(0),
        })
        .collect();
    pressure.sort_by_key(|p| std::cmp::Reverse(p.runnable_wait_ns));
    Detection {
        blockers,
        pressure,
        idle_episodes,
    }
}
