//! `hud-analyze report`: the answer, as text or as JSON (schema in docs/REPORT.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::Analysis;
use crate::detect::Blocker;
use crate::frames::{self, Kind};
use crate::hotspots::{self, short_path, Hot, Hotspots};
use crate::model::Role;
use crate::symbolize::{Frame, ObjectInfo};

/// Version of the JSON schema. Bumped on any incompatible change; additions keep it.
/// A share for a sentence: "12 %", or "0.4 %" below one, so a small share never reads "0 %".
fn percent(share: f64) -> String {
    if share < 1.0 {
        format!("{share:.1} %")
    } else {
        format!("{share:.0} %")
    }
}

/// Stacks this short are what frame-pointer unwinding gives for code without frame pointers; a
/// Tokio worker's stack with them is 20 frames or more.
const SHALLOW_FRAMES: u32 = 4;

pub const SCHEMA: &str = "hud.report/1";

#[derive(Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub capture: CaptureInfo,
    pub summary: SummaryInfo,
    pub blocking: Vec<BlockerOut>,
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
}

#[derive(Serialize)]
pub struct SummaryInfo {
    pub threads_by_role: BTreeMap<String, usize>,
    /// Mean share of the recording the task-running threads spent on CPU.
    pub worker_utilisation: f64,
    pub samples: u64,
    pub off_cpu_episodes: usize,
    pub lost_records: u64,
    /// Share of looked-up code addresses that resolved to file:line.
    pub symbol_line_coverage: f64,
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
    pub user: bool,
}

impl From<&Frame> for FrameOut {
    fn from(f: &Frame) -> Self {
        FrameOut {
            function: f.function.to_string(),
            file: f.file.as_deref().map(str::to_owned),
            line: f.line,
            inlined: f.inlined,
            user: frames::is_user(f),
        }
    }
}

#[derive(Serialize)]
pub struct BlockerOut {
    /// cpu, sleep, lock, io, dns, other.
    pub kind: Kind,
    /// "off_cpu" (blocked inside a poll) or "long_poll" (on CPU too long in one poll).
    pub detection: &'static str,
    /// Innermost user frame: where the time goes.
    pub function: String,
    pub file: Option<String>,
    pub line: u32,
    /// Innermost async fn of the user's code: which task blocks.
    pub task: Option<FrameOut>,
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
}

#[derive(Serialize)]
pub struct HotspotsOut {
    pub overall: Hotspots,
    pub per_worker: Vec<WorkerHotspots>,
}

#[derive(Serialize)]
pub struct WorkerHotspots {
    pub tid: u32,
    pub name: String,
    pub hotspots: Hotspots,
}

#[derive(Serialize)]
pub struct WorkerOut {
    pub tid: u32,
    pub name: String,
    pub names: Vec<String>,
    pub role: Role,
    /// "stacks" when told from stacks, "unknown" when the thread left no stack.
    pub role_from: &'static str,
    pub on_cpu_ms: f64,
    pub utilisation: f64,
    pub samples: u64,
    pub blocking_ms: f64,
    pub runnable_wait_ms: f64,
    pub exited: bool,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl Report {
    pub fn build(a: &Analysis, top: usize) -> Self {
        let m = &a.model;
        let h = &m.header;
        let mut roles: BTreeMap<String, usize> = BTreeMap::new();
        for t in m.threads.values() {
            *roles.entry(t.role.label().to_owned()).or_default() += 1;
        }
        let duration = m.duration().max(1);
        let task_threads: Vec<_> = m.threads.values().filter(|t| t.role.runs_tasks()).collect();
        let utilisation = if task_threads.is_empty() {
            0.0
        } else {
            task_threads
                .iter()
                .map(|t| t.on_cpu_ns as f64 / duration as f64)
                .sum::<f64>()
                / task_threads.len() as f64
        };
        let blocking: Vec<BlockerOut> = a
            .detection
            .blockers
            .iter()
            .take(top)
            .map(|b| blocker_out(b, m.start))
            .collect();
        let mut blocked_per_thread: BTreeMap<u32, u64> = BTreeMap::new();
        for b in &a.detection.blockers {
            for e in &b.episodes {
                *blocked_per_thread.entry(e.tid).or_default() += e.duration;
            }
        }
        let workers: Vec<WorkerOut> = m
            .threads
            .values()
            .map(|t| WorkerOut {
                tid: t.tid,
                name: t.name().to_owned(),
                names: t.names.iter().map(|(_, n)| n.clone()).collect(),
                role: t.role,
                role_from: if t.role_from_stacks {
                    "stacks"
                } else {
                    "unknown"
                },
                on_cpu_ms: ms(t.on_cpu_ns),
                utilisation: t.on_cpu_ns as f64 / duration as f64,
                samples: t.samples,
                blocking_ms: ms(blocked_per_thread.get(&t.tid).copied().unwrap_or(0)),
                runnable_wait_ms: ms(a
                    .detection
                    .pressure
                    .iter()
                    .find(|p| p.tid == t.tid)
                    .map_or(0, |p| p.runnable_wait_ns)),
                exited: t.exited.is_some(),
            })
            .collect();
        let tids: Vec<u32> = task_threads.iter().map(|t| t.tid).collect();
        let (overall, per_thread) =
            hotspots::overall_and_per_thread(m, &a.symbols, &tids, top, top.min(10));
        let per_worker = task_threads
            .iter()
            .zip(per_thread)
            .map(|(t, hotspots)| WorkerHotspots {
                tid: t.tid,
                name: t.name().to_owned(),
                hotspots,
            })
            .collect();
        let mut warnings = a.symbols.warnings.clone();
        for o in a
            .symbols
            .objects
            .iter()
            .filter(|o| o.addresses > 0 && !o.has_debug_info)
        {
            let share = o.addresses as f64 * 100.0
                / a.symbols
                    .objects
                    .iter()
                    .map(|o| o.addresses)
                    .sum::<usize>()
                    .max(1) as f64;
            if o.path == h.target.exe_path {
                warnings.push(format!(
                    "{} has no debug info ({} of code addresses have no file:line): build it with \
                     `debug = true` (or \"line-tables-only\") in the release profile and \
                     RUSTFLAGS=-Cforce-frame-pointers=yes",
                    o.path,
                    percent(share)
                ));
            } else if o.source == "not found" {
                warnings.push(format!(
                    "{} not found ({} of code addresses unnamed); pass --binary or --debug-dir",
                    o.path,
                    percent(share)
                ));
            }
        }
        let (shallow, with_stack) = m.shallow_samples(SHALLOW_FRAMES);
        if with_stack >= 20 && shallow * 2 > with_stack {
            warnings.push(format!(
                "{:.0} % of samples have {SHALLOW_FRAMES} frames or fewer: the target looks built \
                 without frame pointers, so callers (and the blame for blocking) are missing; \
                 rebuild it with RUSTFLAGS=-Cforce-frame-pointers=yes",
                shallow as f64 * 100.0 / with_stack as f64
            ));
        }
        Report {
            schema: SCHEMA,
            capture: CaptureInfo {
                target_pid: h.target.pid,
                executable: h.target.exe_path.clone(),
                host: h.host_name.clone(),
                kernel: h.kernel_release.clone(),
                start_unix_ns: h
                    .clock
                    .realtime_ns
                    .saturating_add(h.start_ns)
                    .saturating_sub(h.clock.monotonic_ns),
                duration_s: m.duration() as f64 / 1e9,
                sample_hz: h.sample_hz,
                off_cpu_record_threshold_ms: ms(h.offcpu_threshold_ns),
                notices: m.notices.clone(),
            },
            summary: SummaryInfo {
                threads_by_role: roles,
                worker_utilisation: utilisation,
                samples: m.samples.len() as u64,
                off_cpu_episodes: m.off_cpu.len(),
                lost_records: m.lost_records(),
                symbol_line_coverage: a.symbols.line_coverage(),
                blocking_threshold_ms: 0.0,
                long_poll_threshold_ms: 0.0,
                long_poll_resolution_ms: ms(m.sample_period()),
            },
            blocking,
            hotspots: HotspotsOut {
                overall,
                per_worker,
            },
            workers,
            objects: a.symbols.objects.clone(),
            warnings,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// The text report; `color` adds ANSI emphasis.
    pub fn to_text(&self, color: bool) -> String {
        let bold = |s: &str| {
            if color {
                format!("\x1b[1m{s}\x1b[0m")
            } else {
                s.to_owned()
            }
        };
        let red = |s: &str| {
            if color {
                format!("\x1b[1;31m{s}\x1b[0m")
            } else {
                s.to_owned()
            }
        };
        let dim = |s: &str| {
            if color {
                format!("\x1b[2m{s}\x1b[0m")
            } else {
                s.to_owned()
            }
        };
        let c = &self.capture;
        let s = &self.summary;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            bold(&format!(
                "hud report · pid {} {}",
                c.target_pid, c.executable
            ))
        );
        let _ = writeln!(
            out,
            "recorded {:.2} s on {} (Linux {}), sampling {} Hz",
            c.duration_s, c.host, c.kernel, c.sample_hz
        );
        for n in &c.notices {
            let _ = writeln!(out, "{}", red(&format!("notice: {n}")));
        }
        let roles: Vec<String> = s
            .threads_by_role
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        let _ = writeln!(
            out,
            "threads: {} · worker utilisation {:.0} % · lost records {} · symbols with file:line {:.0} %",
            roles.join(", "),
            s.worker_utilisation * 100.0,
            s.lost_records,
            s.symbol_line_coverage * 100.0
        );
        for w in &self.warnings {
            let _ = writeln!(out, "{}", red(&format!("warning: {w}")));
        }

        let _ = writeln!(out, "\n{}", bold("Blocking the runtime"));
        if self.blocking.is_empty() {
            let _ = writeln!(
                out,
                "  nothing blocked a runtime thread past the thresholds"
            );
        }
        for (i, b) in self.blocking.iter().enumerate() {
            let loc = b
                .file
                .as_deref()
                .map(|f| format!("{}:{}", short_path(f), b.line))
                .unwrap_or_else(|| "(no user frame: lost in code without frame pointers)".into());
            let _ = writeln!(
                out,
                "{:>3}. {} {}  {}",
                i + 1,
                red(&format!("[{}]", kind_label(b))),
                bold(&b.function),
                loc
            );
            if let Some(t) = &b.task {
                if t.function != b.function || t.line != b.line {
                    let tloc = t
                        .file
                        .as_deref()
                        .map(|f| format!("{}:{}", short_path(f), t.line))
                        .unwrap_or_default();
                    let _ = writeln!(out, "       in task {}  {}", t.function, tloc);
                }
            }
            let _ = writeln!(
                out,
                "       {}× · total {:.1} ms · p50 {:.1} · p99 {:.1} · max {:.1} ms · first at {:.2} s · threads {:?}",
                b.count, b.total_ms, b.p50_ms, b.p99_ms, b.max_ms, b.first_s, b.threads
            );
            for f in b.stack.iter().take(8) {
                let loc = f
                    .file
                    .as_deref()
                    .map(|p| format!("{}:{}", short_path(p), f.line))
                    .unwrap_or_default();
                let line = format!(
                    "         {}{} {}",
                    if f.inlined { "(inlined) " } else { "" },
                    f.function,
                    loc
                );
                let _ = writeln!(out, "{}", if f.user { line } else { dim(&line) });
            }
            if b.stack.len() > 8 {
                let _ = writeln!(
                    out,
                    "{}",
                    dim(&format!("         … {} more frames", b.stack.len() - 8))
                );
            }
        }

        let _ = writeln!(
            out,
            "\n{} ({} samples)",
            bold("CPU hotspots"),
            self.hotspots.overall.samples
        );
        let table = |out: &mut String, title: &str, rows: &[Hot]| {
            let _ = writeln!(out, "  {title}");
            for r in rows.iter().take(10) {
                let _ = writeln!(
                    out,
                    "    {:>6.1} % self {:>6.1} % incl  {}",
                    r.self_pct, r.inclusive_pct, r.name
                );
            }
        };
        table(
            &mut out,
            "by function (self)",
            &self.hotspots.overall.by_function,
        );
        table(
            &mut out,
            "by function (inclusive)",
            &self.hotspots.overall.by_function_inclusive,
        );
        table(&mut out, "by line (self)", &self.hotspots.overall.by_line);
        for w in &self.hotspots.per_worker {
            let top: Vec<String> = w
                .hotspots
                .by_function
                .iter()
                .take(3)
                .map(|h| format!("{:.0} % {}", h.self_pct, h.name))
                .collect();
            let _ = writeln!(
                out,
                "  worker {} ({} samples): {}",
                w.tid,
                w.hotspots.samples,
                top.join(" · ")
            );
        }

        let _ = writeln!(out, "\n{}", bold("Threads"));
        let _ = writeln!(
            out,
            "  {:>8}  {:<20} {:<15} {:>8} {:>8} {:>10} {:>12}",
            "tid", "name", "role", "on-CPU", "samples", "blocking", "runnable wait"
        );
        for w in &self.workers {
            let _ = writeln!(
                out,
                "  {:>8}  {:<20} {:<15} {:>7.0}% {:>8} {:>8.1}ms {:>10.1}ms{}",
                w.tid,
                w.name,
                format!(
                    "{}{}",
                    w.role_label(),
                    if w.role_from == "stacks" { "" } else { "?" }
                ),
                w.utilisation * 100.0,
                w.samples,
                w.blocking_ms,
                w.runnable_wait_ms,
                if w.exited { "  (exited)" } else { "" }
            );
        }
        out
    }

    /// Whether any blocker's total or worst episode exceeds `limit_ms` (the CI gate).
    pub fn exceeds(&self, limit_ms: f64) -> Vec<&BlockerOut> {
        self.blocking
            .iter()
            .filter(|b| b.total_ms > limit_ms || b.max_ms > limit_ms)
            .collect()
    }
}

impl WorkerOut {
    fn role_label(&self) -> &'static str {
        self.role.label()
    }
}

fn kind_label(b: &BlockerOut) -> &'static str {
    match b.kind {
        Kind::Cpu => "long poll",
        k => k.label(),
    }
}

fn blocker_out(b: &Blocker, start: u64) -> BlockerOut {
    let mut threads: Vec<u32> = b.episodes.iter().map(|e| e.tid).collect();
    threads.sort_unstable();
    threads.dedup();
    BlockerOut {
        kind: b.kind,
        detection: if b.kind == Kind::Cpu {
            "long_poll"
        } else {
            "off_cpu"
        },
        function: b.blame.function.to_string(),
        file: b.blame.file.as_deref().map(str::to_owned),
        line: b.blame.line,
        task: b.task.as_ref().map(FrameOut::from),
        count: b.episodes.len(),
        total_ms: ms(b.total()),
        p50_ms: ms(b.quantile(0.5)),
        p99_ms: ms(b.quantile(0.99)),
        max_ms: ms(b.max()),
        first_s: b.first().saturating_sub(start) as f64 / 1e9,
        threads,
        user_path: b.user_path.iter().map(FrameOut::from).collect(),
        stack: b.example.iter().map(FrameOut::from).collect(),
    }
}
