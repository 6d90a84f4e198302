//! The model every analysis reads: threads with their timelines, samples, off-CPU episodes,
//! stacks, mappings and counters.
//!
//! Built chunk by chunk by [`builder::ModelBuilder`] (from a file or a stream). Events are kept as
//! compact rows referring to stack ids; stacks stay a prefix tree ([`Stacks`]); switches become
//! per-thread [`timeline::Timeline`]s of 5 bytes per transition.

pub mod builder;
pub mod timeline;

use std::collections::BTreeMap;

use hud_format::reader::Stacks;
use hud_format::types::{Header, Mapping};

pub use timeline::{Span, State, Timeline, Totals};

/// A cpu-clock sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub ts: u64,
    pub tid: u32,
    pub stack: u32,
    /// The Tokio task it ran in (0: none known; format 1.2).
    pub task: u64,
    /// The tick of the scheduler it ran on (`hud_format::wire::NO_TICK`: not known): two
    /// samples of one task with the same tick were one poll.
    pub tick: u64,
}

/// An off-CPU episode past the recorder's threshold, stamped at switch-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffCpu {
    /// Switch-in time (end of the episode).
    pub end: u64,
    pub tid: u32,
    /// Whole time off CPU.
    pub duration: u64,
    /// Part of `duration` spent runnable, waiting for a CPU.
    pub runnable: u64,
    /// State at switch-out (1 S, 2 D, 0x100 preempted).
    pub state: u16,
    pub stack: u32,
    /// The Tokio task it blocked in (0: none known; format 1.2).
    pub task: u64,
}

impl OffCpu {
    /// Time really blocked: off CPU and not runnable.
    pub fn blocked(&self) -> u64 {
        self.duration - self.runnable.min(self.duration)
    }

    pub fn start(&self) -> u64 {
        self.end.saturating_sub(self.duration)
    }

    /// The thread slept or waited (rather than being preempted): its runnable part is a wait
    /// after a wakeup.
    pub fn is_voluntary(&self) -> bool {
        State::after_switch(false, self.state).is_voluntary_off_cpu()
    }
}

/// Which events a stack copy serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyOf {
    Sample,
    OffCpu,
}

/// The user registers and stack bytes taken with a sample or with off-CPU episodes (format
/// 1.1), waiting for the symbolizer to unwind them (unwind/copies.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackCopy {
    pub tid: u32,
    pub of: CopyOf,
    /// The events served: those of `tid` and kind `of` stamped from `first` to `last`.
    pub first: u64,
    pub last: u64,
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// Bytes of stack the copy covers, from `sp` up (0 for a repeat).
    pub len: usize,
    /// Its non-zero words: a range of [`PendingCopies::index`] and [`PendingCopies::value`].
    pub words: std::ops::Range<usize>,
    /// The capture's number for this copy, or (a repeat) for the copy it repeats.
    pub id: u32,
    /// This copy repeats copy `id` (same registers and bytes) instead of carrying bytes.
    pub repeat: bool,
}

/// Stack copies read but not yet unwound. Once unwound they are dropped: their events then
/// refer to the unwound stacks.
#[derive(Clone, Debug, Default)]
pub struct PendingCopies {
    pub copies: Vec<StackCopy>,
    /// The copies' non-zero words: index from `sp` (in words) and value.
    pub index: Vec<u16>,
    pub value: Vec<u64>,
}

impl PendingCopies {
    /// The non-zero words of `copy`: (indices, values).
    pub fn words_of(&self, copy: &StackCopy) -> (&[u16], &[u64]) {
        (
            self.index.get(copy.words.clone()).unwrap_or_default(),
            self.value.get(copy.words.clone()).unwrap_or_default(),
        )
    }
}

/// What a thread is for, told from its stacks (see `classify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A worker of a multi-thread runtime.
    Worker,
    /// The thread driving a current_thread runtime.
    CurrentThread,
    /// A `spawn_blocking` / blocking-pool thread.
    BlockingPool,
    Other,
}

impl Role {
    /// Whether blocking this thread stalls async tasks.
    pub fn runs_tasks(self) -> bool {
        matches!(self, Role::Worker | Role::CurrentThread)
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::CurrentThread => "current_thread",
            Role::BlockingPool => "blocking pool",
            Role::Other => "other",
        }
    }
}

/// One thread of the target.
#[derive(Clone)]
pub struct Thread {
    pub tid: u32,
    /// Names over time: (since, name).
    pub names: Vec<(u64, String)>,
    pub exited: Option<u64>,
    pub role: Role,
    /// Whether `role` came from stacks (true) or only from the name (false).
    pub role_from_stacks: bool,
    /// Every on/off-CPU transition.
    pub timeline: Timeline,
    pub samples: u64,
}

impl Thread {
    fn new(tid: u32, start: u64) -> Self {
        Self {
            tid,
            names: Vec::new(),
            exited: None,
            role: Role::Other,
            role_from_stacks: false,
            timeline: Timeline::new(start),
            samples: 0,
        }
    }

    /// The name the thread had last.
    pub fn name(&self) -> &str {
        self.names.last().map(|(_, n)| n.as_str()).unwrap_or("?")
    }

    /// Switch records (on and off CPU).
    pub fn switches(&self) -> u64 {
        self.timeline.len() as u64
    }
}

/// The analyzed capture (cheap to clone: timelines share their blocks).
#[derive(Clone)]
pub struct Model {
    pub header: Header,
    /// Format version of the capture ("1.0").
    pub version: String,
    /// Notices about the capture itself: cut, not closed, chunks missing or damaged.
    pub notices: Vec<String>,
    /// Stretches of the recording whose events are not here (damaged or missing chunks).
    pub missing: Vec<Missing>,
    /// Chunk frames read.
    pub chunks: usize,
    /// Embedded object parts (frames) the capture carries.
    pub embedded_parts: usize,
    pub start: u64,
    pub end: u64,
    pub threads: BTreeMap<u32, Thread>,
    /// Sorted by (tid, ts).
    pub samples: Vec<Sample>,
    /// Sorted by (tid, end).
    pub off_cpu: Vec<OffCpu>,
    pub stacks: Stacks,
    /// Every mapping seen, in capture order.
    pub mappings: Vec<Mapping>,
    /// Last value of each counter.
    pub counters: BTreeMap<String, u64>,
    /// Stack copies not yet unwound.
    pub pending_copies: PendingCopies,
    /// How the recorder read task ids, or (`Err`) why it could not; `None` for captures older
    /// than format 1.2.
    pub task_source: Option<Result<String, String>>,
    /// `--poll-probes` (format 1.3): exact poll durations; `None` when not recorded.
    pub polls: Option<PollModel>,
    /// Where the target ran (format 1.4): its ids in its own PID namespace, its container, and
    /// a flight-recorder dump's trigger; the last frame read wins (a dump's comes last).
    pub provenance: Option<hud_format::types::Provenance>,
}

/// Exact poll durations from the recorder's poll probes (format 1.3).
#[derive(Clone, Debug, Default)]
pub struct PollModel {
    /// The probed poll functions, by probe index.
    pub probes: Vec<hud_format::types::PollProbe>,
    /// Each polls frame's histograms, cumulative, in time order: `(read at, histograms)`. A
    /// window's polls are the difference of two of them.
    pub snapshots: Vec<(u64, Vec<hud_format::types::PollHistogram>)>,
    /// Polls past `event_ns`, one by one.
    pub long: Vec<LongPoll>,
    pub event_ns: u64,
    /// When and why probing stopped before recording did.
    pub stopped: Option<(u64, String)>,
    /// When the recorder was detaching the probes: the target's threads may stall then, by
    /// hud's doing (detection leaves those episodes out).
    pub detaching: Option<(u64, u64)>,
}

/// One probed poll past the recorder's event threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongPoll {
    pub tid: u32,
    pub start: u64,
    pub end: u64,
    pub probe: u32,
    /// The task it polled, as the probe read it (0: not read).
    pub task: u64,
}

/// Shallow stacks, as [`Model::shallow_stacks`] counts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shallow {
    /// Stacks with a user stack at all.
    pub all: usize,
    /// Of those, the shallow ones.
    pub shallow: usize,
    /// How often each shallow stack was seen.
    pub by_stack: std::collections::HashMap<u32, usize>,
}

impl Model {
    /// Of the stacks of samples and off-CPU episodes, those with at most `frames` frames (by
    /// stack id, with how often each was seen) and how many stacks there are in all.
    /// Frame-pointer unwinding stops after a frame or two in code without frame pointers, or in
    /// a function that uses the frame-pointer register for other work, so a high share means
    /// the target's callers are invisible.
    pub fn shallow_stacks(&self, frames: u32) -> Shallow {
        // Parents come before children, so one pass gives every node's depth.
        let nodes = self.stacks.nodes();
        let mut depth = vec![0u32; nodes.len() + 1];
        for (i, &(parent, _)) in nodes.iter().enumerate() {
            let id = i + 1;
            let parent = if (parent as usize) < id {
                parent as usize
            } else {
                0
            };
            depth[id] = depth[parent] + 1;
        }
        let mut shallow = Shallow::default();
        let stacks = self.samples.iter().map(|s| s.stack);
        for stack in stacks.chain(self.off_cpu.iter().map(|o| o.stack)) {
            let d = depth.get(stack as usize).copied().unwrap_or(0);
            if d == 0 {
                continue;
            }
            shallow.all += 1;
            if d <= frames {
                shallow.shallow += 1;
                *shallow.by_stack.entry(stack).or_default() += 1;
            }
        }
        shallow
    }

    /// Forgets the events before `t` (a live view keeps a window of detail): transitions, samples
    /// and off-CPU episodes that ended before it. Stacks, mappings and threads stay: later events
    /// refer to them. The model then starts at `t`.
    pub fn forget_before(&mut self, t: u64) {
        if t <= self.start {
            return;
        }
        for thread in self.threads.values_mut() {
            thread.timeline.forget_before(t);
        }
        let mut dropped: BTreeMap<u32, u64> = BTreeMap::new();
        self.samples.retain(|s| {
            let keep = s.ts >= t;
            if !keep {
                *dropped.entry(s.tid).or_default() += 1;
            }
            keep
        });
        for (tid, n) in dropped {
            if let Some(thread) = self.threads.get_mut(&tid) {
                thread.samples = thread.samples.saturating_sub(n);
            }
        }
        self.off_cpu.retain(|o| o.end >= t);
        self.start = t;
        self.end = self.end.max(t);
    }

    /// The wall-clock time (Unix, ns) of capture time `t` (CLOCK_MONOTONIC), from the clock
    /// readings the recorder took back to back.
    pub fn wall_clock_ns(&self, t: u64) -> u64 {
        let clock = &self.header.clock;
        clock
            .realtime_ns
            .saturating_add(t)
            .saturating_sub(clock.monotonic_ns)
    }

    /// Recorded time span in nanoseconds.
    pub fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Sampling period in nanoseconds (0 when sampling was off).
    pub fn sample_period(&self) -> u64 {
        match self.header.sample_hz {
            0 => 0,
            hz => 1_000_000_000 / u64::from(hz),
        }
    }

    /// Records lost in the kernel or by the recorder.
    pub fn lost_records(&self) -> u64 {
        lost_records(&self.counters)
    }

    /// Samples of one thread, in time order.
    pub fn samples_of(&self, tid: u32) -> &[Sample] {
        let from = self.samples.partition_point(|s| s.tid < tid);
        let to = self.samples.partition_point(|s| s.tid <= tid);
        &self.samples[from..to]
    }

    /// Samples of one thread within `[from, to)`, in time order.
    pub fn samples_in(&self, tid: u32, from: u64, to: u64) -> &[Sample] {
        let all = self.samples_of(tid);
        let a = all.partition_point(|s| s.ts < from);
        let b = all.partition_point(|s| s.ts < to);
        &all[a..b.max(a)]
    }

    /// Off-CPU episodes of one thread, by end time.
    pub fn off_cpu_of(&self, tid: u32) -> &[OffCpu] {
        let from = self.off_cpu.partition_point(|o| o.tid < tid);
        let to = self.off_cpu.partition_point(|o| o.tid <= tid);
        &self.off_cpu[from..to]
    }

    /// The spans of one thread in `[from, to)`, with what the recorder saw of each: a voluntary
    /// off-CPU span that ended in a recorded episode is split into its blocked part and its
    /// runnable part (woken, waiting for a CPU), and carries the episode's stack.
    pub fn spans(&self, tid: u32, from: u64, to: u64) -> Vec<DetailedSpan> {
        let Some(thread) = self.threads.get(&tid) else {
            return Vec::new();
        };
        let episodes = self.off_cpu_of(tid);
        // A span per transition (a few more where an episode splits one): sized once, since the
        // timeline exports ask for millions of them.
        let timeline = &thread.timeline;
        let whole = from <= timeline.start() && to >= timeline.end();
        let mut out = Vec::with_capacity(if whole { timeline.len() + 1 } else { 0 });
        for span in timeline.spans(from, to) {
            let episode = span
                .state
                .is_voluntary_off_cpu()
                .then(|| {
                    // The episode that ended when this span did (or after, when clipped).
                    let i = episodes.partition_point(|o| o.end < span.end);
                    episodes.get(i).filter(|o| o.start() <= span.start)
                })
                .flatten();
            match episode {
                Some(o) => {
                    let woken = o.end.saturating_sub(o.runnable).clamp(span.start, span.end);
                    out.push(DetailedSpan {
                        start: span.start,
                        end: woken,
                        state: span.state,
                        stack: Some(o.stack),
                    });
                    if woken < span.end {
                        out.push(DetailedSpan {
                            start: woken,
                            end: span.end,
                            state: State::Runnable,
                            stack: Some(o.stack),
                        });
                    }
                }
                None => out.push(DetailedSpan {
                    start: span.start,
                    end: span.end,
                    state: span.state,
                    stack: None,
                }),
            }
        }
        out.retain(|s| s.end > s.start);
        out
    }
}

/// A stretch of the recording without events: chunks lost or damaged between two that were read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// From the end of the last chunk read before it.
    pub from: u64,
    /// To the start of the next chunk read (or the end of the recording).
    pub to: u64,
    /// The chunk numbers missing, first and last, when known.
    pub chunks: Option<(u32, u32)>,
    /// The damaged frames skipped there (none: the chunks are simply absent).
    pub causes: Vec<hud_format::reader::Damage>,
}

impl Missing {
    /// One sentence, with times in seconds from `start`.
    pub fn describe(&self, start: u64) -> String {
        let seconds = |t: u64| t.saturating_sub(start) as f64 / 1e9;
        let what = match self.chunks {
            Some((a, b)) if a == b => format!("chunk {a} is missing"),
            Some((a, b)) => format!("chunks {a} to {b} are missing"),
            None => "events are missing".into(),
        };
        let causes: Vec<String> = self.causes.iter().map(|d| d.to_string()).collect();
        let cause = if causes.is_empty() {
            String::new()
        } else {
            format!(" ({})", causes.join("; "))
        };
        format!(
            "{what}{cause}: no events from {:.3} s to {:.3} s of the recording",
            seconds(self.from),
            seconds(self.to)
        )
    }
}

/// A span of a thread's timeline with the stack it left the CPU with, where recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetailedSpan {
    pub start: u64,
    pub end: u64,
    pub state: State,
    /// Stack id of the recorded off-CPU episode this span belongs to.
    pub stack: Option<u32>,
}

/// Records lost, from cumulative counters: the kernel's `lost_*` and the recorder's
/// `unknown_record`.
pub fn lost_records(counters: &BTreeMap<String, u64>) -> u64 {
    counters
        .iter()
        .filter(|(n, _)| n.starts_with("lost_") || n.as_str() == "unknown_record")
        .fold(0u64, |sum, (_, v)| sum.saturating_add(*v))
}
