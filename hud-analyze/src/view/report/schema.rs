//! The `hud.report/2` schema (docs/REPORT.md): a mapping of an analysis' findings, computing
//! nothing but units and names.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::detect::Blocker;
use crate::analysis::frames::{self, Kind};
use crate::analysis::hotspots::{Hot, Hotspots};
use crate::analysis::{Analysis, Findings, Status, Window};
use crate::model::Role;
use crate::symbols::{Frame, ObjectInfo, Recovered};
use crate::view::short_path;
use crate::view::units::{ms, secs};
use crate::view::wording::verdict_sentence;
use hud_format::wire::Counter;

/// Version of the JSON schema. Bumped on any incompatible change; additions keep it.
pub const SCHEMA: &str = "hud.report/2";

#[derive(Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub capture: CaptureInfo,
    pub summary: SummaryInfo,
    pub blocking: Vec<BlockerOut>,
    /// Tokio tasks (captures with task ids, format 1.2).
    pub tasks: TasksOut,
    /// Exact poll durations per future type (`hud-record --poll-probes`, format 1.3); `null`
    /// when they were not recorded.
    pub polls: Option<PollsOut>,
    pub hotspots: HotspotsOut,
    pub workers: Vec<WorkerOut>,
    pub objects: Vec<ObjectInfo>,
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct CaptureInfo {
    pub target_pid: u32,
    pub executable: String,
    pub host: String,
    pub kernel: String,
    /// Wall-clock start, nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    pub duration_s: f64,
    pub sample_hz: u32,
    pub off_cpu_record_threshold_ms: f64,
    pub notices: Vec<String>,
    /// Stretches of the recording whose events are missing (damaged or lost chunks), in seconds
    /// from its start.
    pub missing: Vec<MissingOut>,
    /// The part of the recording reported on, in seconds from its start.
    pub window: WindowOut,
    /// Stack bytes copied with events and unwound offline (`hud-record --unwind`).
    pub stack_copies: StackCopiesOut,
    /// Where the target ran (format 1.4): its PID namespace and container; `null` in older
    /// captures. `target_pid` and every tid are the kernel's (the initial PID namespace's).
    pub container: Option<ContainerOut>,
    /// A flight-recorder dump's trigger and window; `null` for an ordinary recording.
    pub dump: Option<DumpOut>,
}

/// Where the target ran.
#[derive(Serialize)]
pub struct ContainerOut {
    /// The target's pid in its own PID namespace (1 for a container's first process).
    pub pid_in_namespace: u32,
    /// The pid the recorder was given, in the recorder's own namespace.
    pub pid_recorder_saw: u32,
    /// The recorder ran in a PID namespace of its own (inside a container).
    pub recorder_namespaced: bool,
    /// The target's cgroup path ("" when unknown).
    pub cgroup: String,
    /// `docker`, `containerd`, `cri-o`, `podman`, `kubernetes`, or "" when the cgroup names no
    /// container.
    pub runtime: String,
    /// The container's id as its runtime names it ("" when none).
    pub id: String,
    /// The threads whose ids differ in the target's namespace: `[kernel tid, tid there]`.
    pub thread_ids: Vec<[u32; 2]>,
}

/// A flight-recorder dump.
#[derive(Serialize)]
pub struct DumpOut {
    /// `signal`, `request`, `blocked` or `exit`.
    pub reason: String,
    /// The trigger's moment, seconds from the start of the capture, and as CLOCK_MONOTONIC ns
    /// of the recording machine (to match with the service's own logs of that boot).
    pub trigger_s: f64,
    pub trigger_ns: u64,
    pub detail: String,
}

/// What the stack copies gave (`hud-record --unwind leaf|dwarf`).
#[derive(Serialize)]
pub struct StackCopiesOut {
    /// Copies read (a repeat of an earlier copy counts again).
    pub copies: u64,
    /// Bytes of the largest: 256 or less for leaf windows, the `dwarf` size else.
    pub largest_bytes: u64,
    /// Copies unwound to the thread's first frame.
    pub complete: u64,
    /// Copies whose stack went on past their bytes.
    pub out_of_copy: u64,
    /// Copies the unwind tables or bytes did not take further.
    pub stopped: u64,
    /// Copies whose events are not in the capture.
    pub unmatched: u64,
    /// Events with a copy, and of those, events that gained frames the walk had missed.
    pub events: u64,
    pub deepened: u64,
    /// Copies the recorder left out over its `--stack-budget`, and copies it could not read.
    pub over_budget: u64,
    pub failed: u64,
    /// Stacks the kernel unwound whole with the recorder's `.eh_frame` table (no copy
    /// needed), and stacks the table could not finish (walked, and copied as before).
    pub table_unwound: u64,
    pub table_stopped: u64,
}

#[derive(Serialize)]
pub struct MissingOut {
    pub from_s: f64,
    pub to_s: f64,
    /// First and last chunk number missing, when known.
    pub chunks: Option<[u32; 2]>,
    /// What was skipped there and why (empty: the chunks are simply absent).
    pub causes: Vec<String>,
}

#[derive(Serialize, Clone, Copy)]
pub struct WindowOut {
    pub from_s: f64,
    pub to_s: f64,
}

#[derive(Serialize)]
pub struct SummaryInfo {
    /// "caution" when something blocked or the CPU was starved; else "normal" when the runtime
    /// threads' blocking could be judged, "unknown" when it could not (no runtime thread found,
    /// or more than 5 % of their events had stacks cut short before the runtime's frames).
    pub status: Status,
    /// Share of the counted threads' events (runtime threads, and threads whose stacks were
    /// mostly unreadable) that could not be judged; `judgement` has them per thread.
    pub unjudged_share: f64,
    /// Per counted thread: `{tid, runs_tasks, events, unreadable}`.
    pub judgement: Vec<crate::analysis::coverage::ThreadCoverage>,
    /// What would let a recording judge what this one could not (null when all was judged).
    pub unjudged_fix: Option<String>,
    /// One sentence: what most needs attention.
    pub verdict: String,
    pub threads_by_role: BTreeMap<String, usize>,
    /// Mean share of the window the task-running threads spent on CPU.
    pub worker_utilisation: f64,
    /// Mean share of the window the task-running threads were runnable but waiting for a CPU.
    pub runnable_wait_share: f64,
    pub samples: u64,
    pub off_cpu_episodes: usize,
    pub lost_records: u64,
    /// Share of looked-up code addresses that resolved to file:line (1 when there were none).
    pub symbol_line_coverage: f64,
    /// Distinct stack nodes (frames of stacks) in the capture: 0 means there was nothing to
    /// symbolize, and the coverage says nothing.
    pub stack_nodes: usize,
    pub blocking_threshold_ms: f64,
    pub long_poll_threshold_ms: f64,
    /// Long polls are measured by sampling: durations are ± one period.
    pub long_poll_resolution_ms: f64,
}

#[derive(Serialize, Clone)]
pub struct FrameOut {
    pub function: String,
    pub file: Option<String>,
    pub line: u32,
    pub inlined: bool,
    /// Put back where the stack walk missed it: "tail_call" or "leaf_caller".
    pub recovered: Option<Recovered>,
    pub user: bool,
}

impl From<&Frame> for FrameOut {
    fn from(f: &Frame) -> Self {
        FrameOut {
            function: f.function.to_string(),
            file: f.file.as_deref().map(str::to_owned),
            line: f.line,
            inlined: f.inlined,
            recovered: f.recovered,
            user: frames::is_user(f),
        }
    }
}

/// How an episode was detected.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Detection {
    /// Blocked off CPU inside a task poll.
    OffCpu,
    /// On CPU too long in one poll (measured by sampling): a long poll, or a blocking call that
    /// ran on CPU in the kernel.
    LongPoll,
}

#[derive(Serialize)]
pub struct BlockerOut {
    /// cpu, sleep, lock, condvar, channel, join, process, fsync, file_io, net_io, dns,
    /// block_on, page_fault, log, other.
    pub kind: Kind,
    pub detection: Detection,
    /// Innermost user frame: where the time goes.
    pub function: String,
    pub file: Option<String>,
    pub line: u32,
    /// Innermost async fn of the user's code: where in the task it happened.
    pub task: Option<FrameOut>,
    /// Outermost user frame the runtime polls: the spawned task.
    pub spawned_task: Option<FrameOut>,
    pub count: usize,
    pub total_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Seconds from the start of the recording.
    pub first_s: f64,
    pub threads: Vec<u32>,
    /// The user call path (innermost first), the grouping key.
    pub user_path: Vec<FrameOut>,
    /// The longest episode's whole stack, innermost first.
    pub stack: Vec<FrameOut>,
    /// The Tokio tasks its episodes happened in, most time first (empty without task ids).
    pub tasks: Vec<BlockerTaskOut>,
    /// Long polls whose samples carried no task id and scheduler tick: the runtime did not show
    /// them to be one poll, so polls of this code with no I/O driver poll between them may be
    /// merged and their durations are upper bounds (0 for off-CPU blockers).
    pub unproven: usize,
    /// The call to move off the runtime.
    pub call: CallOut,
    /// Where the time went: the innermost frame of the program's code most samples (long
    /// polls) or episodes were in, at its line.
    pub leaf: Option<LeafOut>,
    /// The example stack's frames from the leaf out to the call's site, innermost first.
    pub path: Vec<FrameOut>,
    /// The system call it blocked in, as libc names it without prefixes (off-CPU only).
    pub syscall: Option<String>,
    /// What to do about it (docs/REPORT.md lists the advice per kind).
    pub advice: AdviceOut,
}

#[derive(Serialize)]
pub struct CallOut {
    /// The async fn that made the call, at the call's line (`null`: no async fn of the
    /// program is on the path).
    pub site: Option<FrameOut>,
    /// The function called (`null`: the site's own code, e.g. a loop in the async fn).
    pub callee: Option<FrameOut>,
    /// No frame of the program's own code: `callee` is a dependency's outermost frame.
    pub in_dependency: bool,
}

#[derive(Serialize)]
pub struct LeafOut {
    pub frame: FrameOut,
    /// Its share of the blocker's samples (long polls) or episodes (off CPU), 0–1.
    pub share: f64,
}

#[derive(Serialize)]
pub struct AdviceOut {
    pub text: String,
    /// The line it applies to.
    pub file: Option<String>,
    pub line: u32,
}

#[derive(Serialize)]
pub struct BlockerTaskOut {
    /// tokio's task id (`tokio::task::Id`).
    pub id: u64,
    pub count: usize,
    pub total_ms: f64,
}

#[derive(Serialize)]
pub struct TasksOut {
    /// Whether the recorder read task ids.
    pub available: bool,
    /// How it read them (the TLS variable and field), or why it could not.
    pub source: Option<String>,
    /// Tasks seen in the window.
    pub count: usize,
    /// Tasks per kind, most first.
    pub kinds: Vec<TaskKindOut>,
    /// The tasks that used the most CPU (or blocked the most), `--top` of them.
    pub top: Vec<TaskOut>,
}

#[derive(Serialize)]
pub struct PollsOut {
    /// Polls at least this long were recorded one by one (`longest`).
    pub event_threshold_ms: f64,
    /// Seconds of the window the histograms cover (read about once a second).
    pub measured_s: f64,
    /// Why the recorder stopped probing before the end (over its budget), and when (seconds
    /// from the start).
    pub stopped: Option<String>,
    pub stopped_at_s: Option<f64>,
    /// How long detaching the probes took: the target's threads may stall meanwhile (the
    /// kernel rewrites their code), so off-CPU episodes then are left out of `blocking`.
    pub detach_ms: Option<f64>,
    /// Future types probed, and per future type that polled in the window, most total poll
    /// time first.
    pub probed_futures: usize,
    pub futures: Vec<PollKindOut>,
}

#[derive(Serialize)]
pub struct PollKindOut {
    /// The future type as the binary's DWARF names it, and shortened.
    pub future: String,
    pub name: String,
    /// `multi_thread`, `current_thread`.
    pub schedulers: Vec<&'static str>,
    pub polls: u64,
    pub polls_per_s: f64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Polls past `event_threshold_ms`, and the longest of them.
    pub long_polls: usize,
    pub longest: Vec<LongPollOut>,
}

#[derive(Serialize)]
pub struct LongPollOut {
    pub tid: u32,
    /// Seconds from the start of the recording.
    pub start_s: f64,
    pub duration_ms: f64,
    /// The Tokio task it polled (`null`: no sample inside it carried an id).
    pub task: Option<u64>,
}

#[derive(Serialize)]
pub struct TaskKindOut {
    /// The future it was spawned with (the outermost frame of the user's code in its polls).
    pub kind: Option<FrameOut>,
    pub tasks: usize,
}

#[derive(Serialize)]
pub struct TaskOut {
    pub id: u64,
    pub kind: Option<FrameOut>,
    /// On CPU, estimated from samples (samples × period).
    pub on_cpu_ms: f64,
    pub samples: u64,
    /// Off CPU inside its polls, blocking its thread past the threshold.
    pub blocked_ms: f64,
    pub blocking_episodes: usize,
    pub long_polls: usize,
    pub longest_poll_ms: f64,
    /// Seconds from the start of the recording.
    pub first_seen_s: f64,
    pub last_seen_s: f64,
    pub threads: Vec<u32>,
}

#[derive(Serialize)]
pub struct HotOut {
    /// Function name, or "file:line (function)" for line rows.
    pub name: String,
    pub function: String,
    pub file: Option<String>,
    /// For line rows.
    pub line: Option<u32>,
    pub self_samples: u64,
    pub self_pct: f64,
    pub inclusive_samples: u64,
    pub inclusive_pct: f64,
}

impl From<&Hot> for HotOut {
    fn from(h: &Hot) -> Self {
        let k = &h.key;
        let name = match (k.line, &k.file) {
            (Some(line), Some(file)) => format!("{}:{line} ({})", short_path(file), k.function),
            _ => k.function.to_string(),
        };
        HotOut {
            name,
            function: k.function.to_string(),
            file: k.file.as_deref().map(str::to_owned),
            line: k.line,
            self_samples: h.self_samples,
            self_pct: h.self_pct,
            inclusive_samples: h.inclusive_samples,
            inclusive_pct: h.inclusive_pct,
        }
    }
}

#[derive(Serialize)]
pub struct HotspotsTables {
    pub samples: u64,
    pub by_function: Vec<HotOut>,
    pub by_function_inclusive: Vec<HotOut>,
    pub by_line: Vec<HotOut>,
    pub by_line_inclusive: Vec<HotOut>,
    /// Inclusive rows left out: library frames in nearly every sample (`--all-frames` shows them).
    pub hidden_frames: usize,
}

impl From<&Hotspots> for HotspotsTables {
    fn from(h: &Hotspots) -> Self {
        let rows = |rows: &[Hot]| rows.iter().map(HotOut::from).collect();
        HotspotsTables {
            samples: h.samples,
            by_function: rows(&h.by_function),
            by_function_inclusive: rows(&h.by_function_inclusive),
            by_line: rows(&h.by_line),
            by_line_inclusive: rows(&h.by_line_inclusive),
            hidden_frames: h.hidden_frames,
        }
    }
}

#[derive(Serialize)]
pub struct HotspotsOut {
    pub overall: HotspotsTables,
    pub per_worker: Vec<WorkerHotspots>,
}

#[derive(Serialize)]
pub struct WorkerHotspots {
    pub tid: u32,
    pub name: String,
    pub hotspots: HotspotsTables,
}

/// Where a role came from.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum RoleFrom {
    /// Told from the thread's stacks.
    Stacks,
    /// No stack of the thread showed its role (none in the capture, or all cut short before
    /// the runtime's frames): the role is a default.
    Unknown,
}

#[derive(Serialize)]
pub struct WorkerOut {
    pub tid: u32,
    pub name: String,
    pub names: Vec<String>,
    pub role: Role,
    pub role_from: RoleFrom,
    pub on_cpu_ms: f64,
    pub utilisation: f64,
    pub samples: u64,
    pub blocking_ms: f64,
    pub runnable_wait_ms: f64,
    pub exited: bool,
}

impl Report {
    /// The report of `findings`, with at most `top` rows per list.
    pub fn build(a: &Analysis, findings: &Findings, top: usize) -> Self {
        let m = &a.model;
        let h = &m.header;
        let mut roles: BTreeMap<String, usize> = BTreeMap::new();
        for t in m.threads.values() {
            *roles.entry(t.role.label().to_owned()).or_default() += 1;
        }
        let blocking: Vec<BlockerOut> = findings
            .blockers
            .iter()
            .take(top)
            .map(|b| blocker_out(a, b))
            .collect();
        let workers: Vec<WorkerOut> = findings
            .threads
            .iter()
            .filter_map(|s| {
                let t = m.threads.get(&s.tid)?;
                Some(WorkerOut {
                    tid: t.tid,
                    name: t.name().to_owned(),
                    names: t.names.iter().map(|(_, n)| n.clone()).collect(),
                    role: t.role,
                    role_from: if t.role_from_stacks {
                        RoleFrom::Stacks
                    } else {
                        RoleFrom::Unknown
                    },
                    on_cpu_ms: ms(s.on_cpu_ns),
                    utilisation: s.utilisation,
                    samples: s.samples,
                    blocking_ms: ms(s.blocking_ns),
                    runnable_wait_ms: if s.role.runs_tasks() {
                        ms(s.runnable_wait_ns())
                    } else {
                        0.0
                    },
                    exited: t.exited.is_some(),
                })
            })
            .collect();
        let per_worker = findings
            .per_worker
            .iter()
            .map(|(tid, hot)| WorkerHotspots {
                tid: *tid,
                name: m.threads.get(tid).map_or("?", |t| t.name()).to_owned(),
                hotspots: hot.into(),
            })
            .collect();
        let (notices, warnings): (Vec<_>, Vec<_>) =
            a.diagnostics.iter().partition(|d| d.is_capture_notice());
        let seconds = |t: u64| secs(t.clamp(m.start, m.end.max(m.start)).saturating_sub(m.start));
        let Window { from, to } = findings.window;
        let thresholds = a.options.thresholds;
        Report {
            schema: SCHEMA,
            capture: CaptureInfo {
                target_pid: h.target.pid,
                executable: h.target.exe_path.clone(),
                host: h.host_name.clone(),
                kernel: h.kernel_release.clone(),
                start_unix_ns: m.wall_clock_ns(h.start_ns),
                duration_s: secs(m.duration()),
                sample_hz: h.sample_hz,
                off_cpu_record_threshold_ms: ms(h.offcpu_threshold_ns),
                notices: notices.iter().map(|d| d.to_string()).collect(),
                missing: m
                    .missing
                    .iter()
                    .map(|gap| MissingOut {
                        from_s: secs(gap.from.saturating_sub(m.start)),
                        to_s: secs(gap.to.saturating_sub(m.start)),
                        chunks: gap.chunks.map(|(a, b)| [a, b]),
                        causes: gap.causes.iter().map(|d| d.to_string()).collect(),
                    })
                    .collect(),
                window: WindowOut {
                    from_s: seconds(from),
                    to_s: seconds(to),
                },
                container: m.provenance.as_ref().map(|p| ContainerOut {
                    pid_in_namespace: p.pid_in_namespace,
                    pid_recorder_saw: p.pid_seen,
                    recorder_namespaced: p.recorder_namespaced,
                    cgroup: p.cgroup.clone(),
                    runtime: p.container_runtime.clone(),
                    id: p.container_id.clone(),
                    thread_ids: p
                        .thread_kernel_ids
                        .iter()
                        .zip(&p.thread_namespace_ids)
                        .filter(|(k, n)| k != n)
                        .map(|(k, n)| [*k, *n])
                        .collect(),
                }),
                dump: m
                    .provenance
                    .as_ref()
                    .and_then(|p| p.dump.as_ref())
                    .map(|d| DumpOut {
                        reason: d.reason.clone(),
                        trigger_s: secs(d.trigger_ns.saturating_sub(m.start)),
                        trigger_ns: d.trigger_ns,
                        detail: d.detail.clone(),
                    }),
                stack_copies: {
                    let u = &a.symbols.unwinding;
                    let counter = |name: &str| m.counters.get(name).copied().unwrap_or(0);
                    StackCopiesOut {
                        copies: u.copies,
                        largest_bytes: u.largest_copy,
                        complete: u.complete,
                        out_of_copy: u.out_of_copy,
                        stopped: u.stopped,
                        unmatched: u.unmatched,
                        events: u.events,
                        deepened: u.deepened,
                        over_budget: counter(Counter::StackCopyOverBudget.name()),
                        failed: counter(Counter::StackCopyFailed.name()),
                        table_unwound: counter(Counter::TableUnwound.name()),
                        table_stopped: counter(Counter::TableUnwindStopped.name()),
                    }
                },
            },
            summary: SummaryInfo {
                status: findings.verdict().status,
                verdict: verdict_sentence(a, findings),
                unjudged_share: findings.coverage.unjudged_share(),
                judgement: findings.coverage.threads.clone(),
                unjudged_fix: findings
                    .verdict()
                    .unjudged
                    .map(|_| crate::view::wording::unjudged_fix(a)),
                threads_by_role: roles,
                worker_utilisation: findings.utilisation,
                runnable_wait_share: findings.runnable_wait_share,
                samples: findings.hotspots.samples,
                off_cpu_episodes: findings.off_cpu_episodes,
                lost_records: m.lost_records(),
                symbol_line_coverage: a.symbols.line_coverage(),
                stack_nodes: m.stacks.len(),
                blocking_threshold_ms: ms(thresholds.off_cpu_ns),
                long_poll_threshold_ms: ms(thresholds.long_poll_ns),
                long_poll_resolution_ms: ms(m.sample_period()),
            },
            blocking,
            tasks: tasks_out(a, findings, top),
            polls: polls_out(a, findings),
            hotspots: HotspotsOut {
                overall: (&findings.hotspots).into(),
                per_worker,
            },
            workers,
            objects: a.symbols.objects.clone(),
            warnings: warnings.iter().map(|d| d.to_string()).collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// Blockers whose total or worst episode exceeds `limit_ms` (the CI gate).
    pub fn exceeds(&self, limit_ms: f64) -> Vec<&BlockerOut> {
        self.blocking
            .iter()
            .filter(|b| b.total_ms > limit_ms || b.max_ms > limit_ms)
            .collect()
    }
}

fn polls_out(a: &Analysis, findings: &Findings) -> Option<PollsOut> {
    let m = &a.model;
    let p = findings.polls.as_ref()?;
    let seconds = |t: u64| secs(t.clamp(m.start, m.end.max(m.start)).saturating_sub(m.start));
    let measured = (p.measured_ns as f64 / 1e9).max(1e-9);
    Some(PollsOut {
        event_threshold_ms: ms(p.event_ns),
        measured_s: secs(p.measured_ns),
        stopped: p.stopped.as_ref().map(|(_, why)| why.clone()),
        stopped_at_s: p
            .detaching
            .map(|(at, _)| seconds(at))
            .or(p.stopped.as_ref().map(|(at, _)| seconds(*at))),
        detach_ms: p.detaching.map(|(from, to)| ms(to - from)),
        probed_futures: p.probed,
        futures: p
            .kinds
            .iter()
            .map(|k| PollKindOut {
                future: k.future.clone(),
                name: k.short.clone(),
                schedulers: k.schedulers.clone(),
                polls: k.polls,
                polls_per_s: k.polls as f64 / measured,
                total_ms: ms(k.total_ns),
                mean_ms: ms(k.total_ns) / k.polls.max(1) as f64,
                p50_ms: ms(k.p50_ns),
                p90_ms: ms(k.p90_ns),
                p99_ms: ms(k.p99_ns),
                max_ms: ms(k.max_ns),
                long_polls: k.long_polls,
                longest: k
                    .longest
                    .iter()
                    .map(|l| LongPollOut {
                        tid: l.tid,
                        start_s: seconds(l.start),
                        duration_ms: ms(l.end - l.start),
                        task: (l.task != 0).then_some(l.task),
                    })
                    .collect(),
            })
            .collect(),
    })
}

fn tasks_out(a: &Analysis, findings: &Findings, top: usize) -> TasksOut {
    let m = &a.model;
    let seconds = |t: u64| secs(t.clamp(m.start, m.end.max(m.start)).saturating_sub(m.start));
    let period = m.sample_period();
    TasksOut {
        available: matches!(m.task_source, Some(Ok(_))),
        source: m.task_source.as_ref().map(|s| match s {
            Ok(how) => how.clone(),
            Err(why) => why.clone(),
        }),
        count: findings.tasks.len(),
        kinds: crate::analysis::tasks::per_kind(&findings.tasks)
            .into_iter()
            .map(|(kind, tasks)| TaskKindOut {
                kind: kind.as_deref().map(FrameOut::from),
                tasks,
            })
            .collect(),
        top: findings
            .tasks
            .iter()
            .take(top)
            .map(|t| TaskOut {
                id: t.id,
                kind: t.kind.as_deref().map(FrameOut::from),
                on_cpu_ms: ms(t.on_cpu_ns(period)),
                samples: t.samples,
                blocked_ms: ms(t.blocked_ns),
                blocking_episodes: t.blocking_episodes,
                long_polls: t.long_polls,
                longest_poll_ms: ms(t.longest_poll_ns),
                first_seen_s: seconds(t.first_seen),
                last_seen_s: seconds(t.last_seen),
                threads: t.threads.clone(),
            })
            .collect(),
    }
}

fn blocker_out(a: &Analysis, b: &Blocker) -> BlockerOut {
    let example = a.symbols.stack(&a.model, b.example);
    BlockerOut {
        kind: b.kind,
        // A blocking call that only ever ran on CPU (its row has no off-CPU episode) was found
        // by sampling, as long polls are.
        detection: if b.kind == Kind::Cpu || b.episodes.iter().all(|e| e.on_cpu()) {
            Detection::LongPoll
        } else {
            Detection::OffCpu
        },
        function: b.blame.function.to_string(),
        file: b.blame.file.as_deref().map(str::to_owned),
        line: b.blame.line,
        task: b.task.as_ref().map(FrameOut::from),
        spawned_task: b.spawned.as_ref().map(FrameOut::from),
        count: b.count(),
        total_ms: ms(b.total()),
        p50_ms: ms(b.quantile(0.5)),
        p99_ms: ms(b.quantile(0.99)),
        max_ms: ms(b.max()),
        first_s: secs(b.first().saturating_sub(a.model.start)),
        threads: b.threads(),
        user_path: b.user_path.iter().map(FrameOut::from).collect(),
        stack: example.iter().map(FrameOut::from).collect(),
        tasks: b
            .tasks()
            .into_iter()
            .map(|(id, count, total)| BlockerTaskOut {
                id,
                count,
                total_ms: ms(total),
            })
            .collect(),
        unproven: b.unproven(),
        path: b.call_path(&example).iter().map(FrameOut::from).collect(),
        call: CallOut {
            site: b.call.site.as_ref().map(FrameOut::from),
            callee: b.call.callee.as_ref().map(FrameOut::from),
            in_dependency: b.call.in_dependency,
        },
        leaf: b.leaf.as_ref().map(|(f, share)| LeafOut {
            frame: FrameOut::from(f),
            share: *share,
        }),
        syscall: b.syscall.clone(),
        advice: {
            let advice = crate::analysis::advice::advise(b, &a.model);
            AdviceOut {
                file: advice
                    .at
                    .as_ref()
                    .and_then(|f| f.file.as_deref().map(str::to_owned)),
                line: advice.at.as_ref().map_or(0, |f| f.line),
                text: advice.text,
            }
        },
    }
}
