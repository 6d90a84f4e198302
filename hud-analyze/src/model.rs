//! The model every view reads: threads, their on/off-CPU history, samples, off-CPU episodes.
//!
//! Built once from the capture's chunks (decompressed in parallel, read in place). Events are
//! kept as compact rows referring to stack ids; stacks stay a prefix tree ([`Stacks`]).

use std::collections::BTreeMap;

use hud_format::reader::{Capture, Stacks};
use hud_format::types::{ArchivedThreadEventKind, Header, Mapping};
use hud_format::wire::STATE_PREEMPTED;
use rayon::slice::ParallelSliceMut;

/// A cpu-clock sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub ts: u64,
    pub tid: u32,
    pub stack: u32,
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
}

impl OffCpu {
    /// Time really blocked: off CPU and not runnable.
    pub fn blocked(&self) -> u64 {
        self.duration - self.runnable.min(self.duration)
    }

    pub fn start(&self) -> u64 {
        self.end.saturating_sub(self.duration)
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
#[derive(Clone, Debug)]
pub struct Thread {
    pub tid: u32,
    /// Names over time: (since, name).
    pub names: Vec<(u64, String)>,
    pub exited: Option<u64>,
    pub role: Role,
    /// Whether `role` came from stacks (true) or only from the name (false).
    pub role_from_stacks: bool,
    /// Time on CPU, from switch records, within the recording.
    pub on_cpu_ns: u64,
    /// Time runnable but preempted (switched out as "R+") until back on CPU.
    pub preempted_wait_ns: u64,
    /// Switch-outs where the thread gave up the CPU (slept, blocked, parked), sorted.
    pub voluntary_switch_outs: Vec<u64>,
    /// Switch records (on and off CPU).
    pub switches: u64,
    pub samples: u64,
}

impl Thread {
    /// The name the thread had last.
    pub fn name(&self) -> &str {
        self.names.last().map(|(_, n)| n.as_str()).unwrap_or("?")
    }
}

/// A thread's switch: (time, switched on CPU?, state it left in).
type SwitchRow = (u64, bool, u16);

/// The analyzed capture.
pub struct Model {
    pub header: Header,
    /// Format version of the capture ("1.0").
    pub version: String,
    /// Notices about the capture itself: cut, not closed, chunks missing.
    pub notices: Vec<String>,
    /// Chunk frames read.
    pub chunks: usize,
    /// Embedded object parts (frames) the capture carries.
    pub embedded_parts: usize,
    pub start: u64,
    pub end: u64,
    pub threads: BTreeMap<u32, Thread>,
    /// Sorted by (tid, ts).
    pub samples: Vec<Sample>,
    /// Sorted by end time.
    pub off_cpu: Vec<OffCpu>,
    pub stacks: Stacks,
    /// Every mapping seen, in capture order.
    pub mappings: Vec<Mapping>,
    /// Last value of each counter.
    pub counters: BTreeMap<String, u64>,
}

impl Model {
    pub fn build(capture: &Capture) -> Result<Self, hud_format::Error> {
        let chunks = capture.chunks()?;
        let header = capture.header().clone();
        let mut notices: Vec<String> = capture.ending().notice().into_iter().collect();
        let mut model = Model {
            start: header.start_ns,
            end: header.start_ns,
            header,
            version: capture.version().to_string(),
            notices: Vec::new(),
            chunks: chunks.len(),
            embedded_parts: capture
                .frames()
                .iter()
                .filter(|f| f.header.kind == hud_format::frame::FrameKind::Object)
                .count(),
            threads: BTreeMap::new(),
            samples: Vec::new(),
            off_cpu: Vec::new(),
            stacks: Stacks::default(),
            mappings: Vec::new(),
            counters: BTreeMap::new(),
        };
        // Sized up front: growing vectors of millions of rows costs more in fresh pages and copies
        // than filling them.
        let rows = |f: fn(&hud_format::types::ArchivedChunk) -> usize| -> usize {
            chunks.iter().map(|c| f(c.get())).sum()
        };
        model.samples.reserve_exact(rows(|c| c.samples.tid.len()));
        model.off_cpu.reserve_exact(rows(|c| c.off_cpu.tid.len()));
        // Per thread: (ts, on_cpu, prev_state) switch rows. Each thread's rows arrive nearly in
        // time order, so sorting them per thread is close to a check; one sort of all rows by
        // (thread, time) was 4× slower.
        let mut switches: BTreeMap<u32, Vec<SwitchRow>> = BTreeMap::new();
        let mut expected_seq = 0u32;
        for data in &chunks {
            let c = data.get();
            if c.seq.to_native() != expected_seq {
                notices.push(format!(
                    "chunks {expected_seq}..{} are missing; their events are not in this analysis",
                    c.seq.to_native()
                ));
            }
            expected_seq = c.seq.to_native() + 1;
            model.end = model.end.max(c.end_ns.to_native());
            model.stacks.add(c);
            for t in c.threads.iter() {
                let tid = t.tid.to_native();
                let ts = t.ts_ns.to_native();
                let thread = model.threads.entry(tid).or_insert_with(|| Thread::new(tid));
                if thread.names.last().map(|(_, n)| n.as_str()) != Some(t.name.as_str()) {
                    thread.names.push((ts, t.name.to_string()));
                }
                if t.kind == ArchivedThreadEventKind::Exited {
                    thread.exited = Some(ts);
                }
            }
            let s = &c.switches;
            let mut last: Option<(u32, &mut Vec<SwitchRow>)> = None;
            for (i, ts) in s.ts.iter().enumerate() {
                let tid = s.tid[i].to_native();
                let rows = match last {
                    Some((t, rows)) if t == tid => rows,
                    _ => switches.entry(tid).or_default(),
                };
                rows.push((ts, s.on_cpu[i] == 1, s.prev_state[i].to_native()));
                last = Some((tid, rows));
            }
            let s = &c.samples;
            for (i, ts) in s.ts.iter().enumerate() {
                model.samples.push(Sample {
                    ts,
                    tid: s.tid[i].to_native(),
                    stack: s.user_stack[i].to_native(),
                });
            }
            let o = &c.off_cpu;
            for (i, ts) in o.ts.iter().enumerate() {
                model.off_cpu.push(OffCpu {
                    end: ts,
                    tid: o.tid[i].to_native(),
                    duration: o.duration_ns[i].to_native(),
                    runnable: o.runnable_ns[i].to_native(),
                    state: o.state[i].to_native(),
                    stack: o.user_stack[i].to_native(),
                });
            }
            model
                .mappings
                .extend(c.mappings.iter().map(|m| m.to_mapping()));
            for counter in c.counters.iter() {
                model
                    .counters
                    .insert(counter.name.to_string(), counter.value.to_native());
            }
        }
        model.samples.par_sort_unstable_by_key(|s| (s.tid, s.ts));
        model.off_cpu.par_sort_unstable_by_key(|o| (o.end, o.tid));
        for sample in &model.samples {
            model
                .threads
                .entry(sample.tid)
                .or_insert_with(|| Thread::new(sample.tid))
                .samples += 1;
        }
        for off in &model.off_cpu {
            model
                .threads
                .entry(off.tid)
                .or_insert_with(|| Thread::new(off.tid));
        }
        let (start, end) = (model.start, model.end);
        for (tid, mut rows) in switches {
            if !rows.is_sorted_by_key(|r| r.0) {
                rows.sort_by_key(|r| r.0);
            }
            let thread = model.threads.entry(tid).or_insert_with(|| Thread::new(tid));
            thread.apply_switches(&rows, start, end);
        }
        model.notices = notices;
        Ok(model)
    }

    /// Of the samples with a user stack, how many have at most `frames` frames, and how many there
    /// are. Frame-pointer unwinding of code built without frame pointers stops after a frame or
    /// two, so a high share means the target's callers are invisible.
    pub fn shallow_samples(&self, frames: u32) -> (usize, usize) {
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
        let depths = self
            .samples
            .iter()
            .filter_map(|s| depth.get(s.stack as usize).copied())
            .filter(|&d| d > 0);
        depths.fold((0, 0), |(shallow, all), d| {
            (shallow + usize::from(d <= frames), all + 1)
        })
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
}

/// Records lost, from cumulative counters: the kernel's `lost_*` and the recorder's
/// `unknown_record`.
pub fn lost_records(counters: &BTreeMap<String, u64>) -> u64 {
    counters
        .iter()
        .filter(|(n, _)| n.starts_with("lost_") || n.as_str() == "unknown_record")
        .map(|(_, v)| v)
        .sum()
}

impl Thread {
    fn new(tid: u32) -> Self {
        Self {
            tid,
            names: Vec::new(),
            exited: None,
            role: Role::Other,
            role_from_stacks: false,
            on_cpu_ns: 0,
            preempted_wait_ns: 0,
            voluntary_switch_outs: Vec::new(),
            switches: 0,
            samples: 0,
        }
    }

    /// Derives on-CPU time, preemption waits and voluntary switch-outs from sorted switch rows.
    fn apply_switches(&mut self, rows: &[SwitchRow], start: u64, end: u64) {
        self.switches = rows.len() as u64;
        // Before the first record we do not know; assume the opposite of the first transition.
        let mut on_since = match rows.first() {
            Some((_, false, _)) => Some(start),
            _ => None,
        };
        let mut preempted_at: Option<u64> = None;
        for &(ts, on_cpu, state) in rows {
            if on_cpu {
                if let Some(at) = preempted_at.take() {
                    self.preempted_wait_ns += ts.saturating_sub(at);
                }
                on_since = Some(ts);
            } else {
                if let Some(since) = on_since.take() {
                    self.on_cpu_ns += ts.saturating_sub(since);
                }
                if u32::from(state) & STATE_PREEMPTED != 0 || state == 0 {
                    preempted_at = Some(ts);
                } else {
                    self.voluntary_switch_outs.push(ts);
                }
            }
        }
        if let Some(since) = on_since {
            self.on_cpu_ns += end.saturating_sub(since);
        }
    }

    /// Whether the thread gave up the CPU voluntarily between `from` and `to` (exclusive).
    pub fn switched_out_between(&self, from: u64, to: u64) -> bool {
        let i = self.voluntary_switch_outs.partition_point(|t| *t <= from);
        self.voluntary_switch_outs.get(i).is_some_and(|t| *t < to)
    }
}
