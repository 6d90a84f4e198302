//! `hud-analyze diff BASE NEW`: a [`Diff`] as text, or as JSON (schema `hud.diff/1`,
//! docs/DIFF.md).

use serde::Serialize;

use super::units::{ms, pct};
use crate::analysis::diff::{
    BlockerDiff, BlockerSide, Change, Compared, Diff, DiffOptions, TaskKindDiff, TaskKindShift,
};

pub const SCHEMA: &str = "hud.diff/1";

#[derive(Serialize)]
pub struct DiffOut {
    pub schema: &'static str,
    pub base: CaptureOut,
    pub new: CaptureOut,
    /// The tests' threshold and the smallest change called grown or shrunk.
    pub alpha: f64,
    pub min_change: f64,
    /// How many blockers are new, grown, gone, shrunk beyond noise.
    pub summary: SummaryOut,
    pub blockers: Vec<BlockerDiffOut>,
    pub hotspots: Vec<HotspotOut>,
    pub utilisation: [f64; 2],
    pub runnable_wait: [f64; 2],
    pub roles: Vec<RoleOut>,
    /// The user's kinds of task (captures with task ids), most moved first.
    pub task_kinds: Vec<TaskKindOut>,
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct CaptureOut {
    pub path: String,
    /// Seconds the figures are per: what was read of the window.
    pub seconds: f64,
    /// The window compared, in seconds from the recording's start.
    pub from_s: f64,
    pub to_s: f64,
    /// Seconds of the window without events (chunks missing or damaged).
    pub missing_s: f64,
}

#[derive(Serialize, Default)]
pub struct SummaryOut {
    pub new: usize,
    pub grown: usize,
    pub gone: usize,
    pub shrunk: usize,
    pub verdict: String,
}

#[derive(Serialize)]
pub struct BlockerDiffOut {
    pub change: Change,
    pub beyond_noise: bool,
    pub kind: &'static str,
    pub function: String,
    pub file: Option<String>,
    pub base: Option<SideOut>,
    pub new: Option<SideOut>,
    /// The blamed line on each side, when it moved.
    pub line_moved: Option<[u32; 2]>,
    pub rate_p: f64,
    pub duration_p: Option<f64>,
    /// The blocker's episodes per kind of task they ran in (captures with task ids).
    pub tasks: Vec<BlockerTaskOut>,
}

#[derive(Serialize)]
pub struct BlockerTaskOut {
    /// The kind's root future; `null`: episodes whose task is not known.
    pub kind: Option<String>,
    pub file: Option<String>,
    pub change: Change,
    pub beyond_noise: bool,
    pub rate_p: f64,
    pub base: Option<SideOut>,
    pub new: Option<SideOut>,
}

#[derive(Serialize)]
pub struct TaskKindOut {
    pub kind: String,
    pub file: Option<String>,
    /// [base, new] each.
    pub tasks: [usize; 2],
    pub cpu_ms_per_second: [f64; 2],
    pub blocked_ms_per_second: [f64; 2],
    pub long_polls_per_second: [f64; 2],
}

#[derive(Serialize)]
pub struct SideOut {
    pub line: u32,
    pub count: usize,
    pub per_second: f64,
    pub total_ms: f64,
    pub ms_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Serialize)]
pub struct HotspotOut {
    pub function: String,
    pub user: bool,
    pub base_pct: f64,
    pub new_pct: f64,
    pub beyond_noise: bool,
}

#[derive(Serialize)]
pub struct RoleOut {
    pub role: String,
    pub base: usize,
    pub new: usize,
}

fn side(s: &BlockerSide) -> SideOut {
    SideOut {
        line: s.line,
        count: s.count,
        per_second: s.per_second,
        total_ms: ms(s.total_ns),
        ms_per_second: s.ms_per_second,
        p50_ms: ms(s.p50_ns),
        p99_ms: ms(s.p99_ns),
        max_ms: ms(s.max_ns),
    }
}

impl DiffOut {
    pub fn build(diff: &Diff, options: &DiffOptions, base_path: &str, new_path: &str) -> Self {
        let count = |c: Change| diff.changed(c).count();
        let mut summary = SummaryOut {
            new: count(Change::New),
            grown: count(Change::Grown),
            gone: count(Change::Gone),
            shrunk: count(Change::Shrunk),
            verdict: String::new(),
        };
        summary.verdict = verdict(&summary);
        DiffOut {
            schema: SCHEMA,
            base: capture(base_path, diff.base_seconds, &diff.base_window),
            new: capture(new_path, diff.new_seconds, &diff.new_window),
            alpha: options.alpha,
            min_change: options.min_change,
            summary,
            blockers: diff.blockers.iter().map(blocker).collect(),
            hotspots: diff
                .hotspots
                .iter()
                .map(|h| HotspotOut {
                    function: h.function.to_string(),
                    user: h.user,
                    base_pct: h.base_pct,
                    new_pct: h.new_pct,
                    beyond_noise: h.beyond_noise,
                })
                .collect(),
            utilisation: [pct(diff.utilisation.0), pct(diff.utilisation.1)],
            runnable_wait: [pct(diff.runnable_wait.0), pct(diff.runnable_wait.1)],
            roles: diff
                .roles
                .iter()
                .map(|(role, base, new)| RoleOut {
                    role: role.clone(),
                    base: *base,
                    new: *new,
                })
                .collect(),
            task_kinds: diff.task_kinds.iter().map(task_kind).collect(),
            notes: diff.notes.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn capture(path: &str, seconds: f64, window: &Compared) -> CaptureOut {
    CaptureOut {
        path: path.into(),
        seconds,
        from_s: window.from_s,
        to_s: window.to_s,
        missing_s: window.missing_s,
    }
}

fn blocker(b: &BlockerDiff) -> BlockerDiffOut {
    BlockerDiffOut {
        change: b.change,
        beyond_noise: b.beyond_noise,
        kind: b.kind.name(),
        function: b.function.to_string(),
        file: b.file.as_deref().map(super::short_path),
        base: b.base.as_ref().map(side),
        new: b.new.as_ref().map(side),
        line_moved: b.line_moved().map(|(a, b)| [a, b]),
        rate_p: b.rate_p,
        duration_p: b.duration_p,
        tasks: b.tasks.iter().map(blocker_task).collect(),
    }
}

fn blocker_task(t: &TaskKindDiff) -> BlockerTaskOut {
    BlockerTaskOut {
        kind: t.kind.as_deref().map(str::to_string),
        file: t.file.as_deref().map(super::short_path),
        change: t.change,
        beyond_noise: t.beyond_noise,
        rate_p: t.rate_p,
        base: t.base.as_ref().map(side),
        new: t.new.as_ref().map(side),
    }
}

fn task_kind(t: &TaskKindShift) -> TaskKindOut {
    TaskKindOut {
        kind: t.kind.to_string(),
        file: t.file.as_deref().map(super::short_path),
        tasks: [t.tasks.0, t.tasks.1],
        cpu_ms_per_second: [t.cpu_ms_per_second.0, t.cpu_ms_per_second.1],
        blocked_ms_per_second: [t.blocked_ms_per_second.0, t.blocked_ms_per_second.1],
        long_polls_per_second: [t.long_polls_per_second.0, t.long_polls_per_second.1],
    }
}

/// Task-kind rows shown under a blocker; the rest are counted.
const TASK_ROWS: usize = 5;
/// Kinds of task listed in the tasks table.
const TASK_KINDS: usize = 10;

fn verdict(s: &SummaryOut) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (s.new, "new"),
        (s.grown, "grown"),
        (s.gone, "gone"),
        (s.shrunk, "shrunk"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        "no blocker changed beyond noise".into()
    } else {
        format!("blockers beyond noise: {}", parts.join(", "))
    }
}

/// The diff as text.
pub fn render(d: &DiffOut) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let side = |c: &CaptureOut| {
        let read = if c.missing_s > 0.0 {
            format!(", {:.1} s read", c.seconds)
        } else {
            String::new()
        };
        format!("{} ({:.1}–{:.1} s{read})", c.path, c.from_s, c.to_s)
    };
    let _ = writeln!(
        out,
        "hud diff · base {} → new {}",
        side(&d.base),
        side(&d.new)
    );
    let _ = writeln!(
        out,
        "{} (tests at α = {}, changes of {:.0} % and more)",
        d.summary.verdict,
        d.alpha,
        d.min_change * 100.0
    );
    for note in &d.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "\nBlockers (per second of each window)");
    if d.blockers.is_empty() {
        let _ = writeln!(out, "  none on either side");
    } else {
        let _ = writeln!(
            out,
            "  {:<7} {:<9} {:>9} {:>9} {:>10} {:>10} {:>17}  where",
            "change", "kind", "base /s", "new /s", "base ms/s", "new ms/s", "p50 ms"
        );
    }
    let num = |s: Option<&SideOut>, f: fn(&SideOut) -> f64| {
        s.map_or_else(|| "—".to_string(), |s| format!("{:.2}", f(s)))
    };
    for b in &d.blockers {
        let change = b.change.marked(b.beyond_noise);
        let line = b.new.as_ref().or(b.base.as_ref()).map_or(0, |s| s.line);
        let place = match (&b.file, b.line_moved) {
            (Some(f), Some([from, to])) => format!("{f}:{from} → :{to}"),
            (Some(f), None) => format!("{f}:{line}"),
            (None, _) => String::new(),
        };
        let p50 = format!(
            "{} → {}",
            num(b.base.as_ref(), |s| s.p50_ms),
            num(b.new.as_ref(), |s| s.p50_ms)
        );
        let _ = writeln!(
            out,
            "  {:<7} {:<9} {:>9} {:>9} {:>10} {:>10} {:>17}  {}  {}",
            change,
            b.kind,
            num(b.base.as_ref(), |s| s.per_second),
            num(b.new.as_ref(), |s| s.per_second),
            num(b.base.as_ref(), |s| s.ms_per_second),
            num(b.new.as_ref(), |s| s.ms_per_second),
            p50,
            b.function,
            place
        );
        if let [only] = &b.tasks[..] {
            // One kind on both sides: its figures are the row's.
            let kind = only.kind.as_deref().unwrap_or("(task not known)");
            let _ = writeln!(out, "  {:<17} every episode in task {kind}", "");
            continue;
        }
        for t in b.tasks.iter().take(TASK_ROWS) {
            let p50 = format!(
                "{} → {}",
                num(t.base.as_ref(), |s| s.p50_ms),
                num(t.new.as_ref(), |s| s.p50_ms)
            );
            let kind = t.kind.as_deref().unwrap_or("(task not known)");
            let _ = writeln!(
                out,
                "  {:<7} {:<9} {:>9} {:>9} {:>10} {:>10} {:>17}  in task {}",
                t.change.marked(t.beyond_noise),
                "",
                num(t.base.as_ref(), |s| s.per_second),
                num(t.new.as_ref(), |s| s.per_second),
                num(t.base.as_ref(), |s| s.ms_per_second),
                num(t.new.as_ref(), |s| s.ms_per_second),
                p50,
                kind
            );
        }
        if b.tasks.len() > TASK_ROWS {
            let _ = writeln!(
                out,
                "  {:<17} … {} more kinds of task",
                "",
                b.tasks.len() - TASK_ROWS
            );
        }
    }
    if d.blockers
        .iter()
        .any(|b| !b.beyond_noise && b.change != Change::Same)
    {
        let _ = writeln!(
            out,
            "  (a change marked ? is within noise: too few episodes to tell it from chance)"
        );
    }
    if !d.hotspots.is_empty() {
        let _ = writeln!(out, "\nCPU hotspots that moved (self %, base → new)");
        for h in &d.hotspots {
            let _ = writeln!(
                out,
                "  {:+6.1} pts{} {:5.1} % → {:5.1} %  {}",
                h.new_pct - h.base_pct,
                if h.beyond_noise { " " } else { "?" },
                h.base_pct,
                h.new_pct,
                h.function
            );
        }
        if d.hotspots.iter().any(|h| !h.beyond_noise) {
            let _ = writeln!(
                out,
                "  (a shift marked ? is within noise: too few samples to tell it from chance)"
            );
        }
    }
    if !d.task_kinds.is_empty() {
        let _ = writeln!(
            out,
            "\nTasks by kind (per second of each window, base → new)"
        );
        let _ = writeln!(
            out,
            "  {:>9} {:>17} {:>17} {:>15}  kind",
            "tasks", "CPU ms/s", "blocked ms/s", "long polls/s"
        );
        let pair = |(a, b): (f64, f64)| format!("{a:.1} → {b:.1}");
        for t in d.task_kinds.iter().take(TASK_KINDS) {
            let _ = writeln!(
                out,
                "  {:>9} {:>17} {:>17} {:>15}  {}",
                format!("{} → {}", t.tasks[0], t.tasks[1]),
                pair((t.cpu_ms_per_second[0], t.cpu_ms_per_second[1])),
                pair((t.blocked_ms_per_second[0], t.blocked_ms_per_second[1])),
                pair((t.long_polls_per_second[0], t.long_polls_per_second[1])),
                t.kind
            );
        }
        if d.task_kinds.len() > TASK_KINDS {
            let _ = writeln!(out, "  … {} more kinds", d.task_kinds.len() - TASK_KINDS);
        }
    }
    let _ = writeln!(
        out,
        "\nRuntime threads: on CPU {:.0} % → {:.0} %, waiting for a CPU {:.0} % → {:.0} %",
        d.utilisation[0], d.utilisation[1], d.runnable_wait[0], d.runnable_wait[1]
    );
    for r in &d.roles {
        let _ = writeln!(out, "  {} threads: {} → {}", r.role, r.base, r.new);
    }
    out
}
