//! `hud-analyze diff BASE NEW`: a [`Diff`] as text, or as JSON (schema `hud.diff/1`,
//! docs/DIFF.md).

use serde::Serialize;

use super::units::{ms, pct};
use crate::analysis::diff::{BlockerDiff, BlockerSide, Change, Diff, DiffOptions};

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
    pub notes: Vec<String>,
}

#[derive(Serialize)]
pub struct CaptureOut {
    pub path: String,
    pub seconds: f64,
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
            base: CaptureOut {
                path: base_path.into(),
                seconds: diff.base_seconds,
            },
            new: CaptureOut {
                path: new_path.into(),
                seconds: diff.new_seconds,
            },
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
            notes: diff.notes.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
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
    }
}

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
    let _ = writeln!(
        out,
        "hud diff · base {} ({:.1} s) → new {} ({:.1} s)",
        d.base.path, d.base.seconds, d.new.path, d.new.seconds
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
        let change = if b.beyond_noise || b.change == Change::Same {
            b.change.label().to_string()
        } else {
            format!("{}?", b.change.label())
        };
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
                "  {:+6.1} pts  {:5.1} % → {:5.1} %  {}",
                h.new_pct - h.base_pct,
                h.base_pct,
                h.new_pct,
                h.function
            );
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
