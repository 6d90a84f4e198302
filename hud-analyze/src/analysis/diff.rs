//! Two analyses compared: which blockers are new, gone, grown or shrunk, judged against noise,
//! and how the CPU hotspots and the runtime threads moved.
//!
//! Blockers are matched by what a user would call "the same problem": the kind and the user call
//! path (functions and crate-relative files), not lines, which move between builds. Counts are
//! compared per second of each side's window with an exact conditional binomial test (given
//! both sides' episodes, the share on the new side is binomial in the share of time), durations
//! with a Mann–Whitney U test (no assumption on their distribution); a change is called only
//! when its test says it is beyond noise at `alpha` *and* it is at least `min_change` large, so a
//! gate on two captures of one build does not fail by chance.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::detect::{nearest_rank, Blocker, Episode};
use super::frames::Kind;
use super::{Analysis, Findings};
use crate::view::wording::short_path;

/// One side of a comparison: an analysis and its findings for the compared window.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub analysis: &'a Analysis,
    pub findings: &'a Findings,
    /// Time before the analysis' model that the findings include (a live session's totals: its
    /// blockers count episodes no longer held in detail).
    pub earlier_ns: u64,
}

impl<'a> Side<'a> {
    /// The findings of `analysis`' own window.
    pub fn of(analysis: &'a Analysis, findings: &'a Findings) -> Self {
        Side {
            analysis,
            findings,
            earlier_ns: 0,
        }
    }

    /// Seconds of the window whose events were read (stretches of missing chunks left out),
    /// with the earlier time the findings include.
    fn seconds(&self) -> f64 {
        let length = self.findings.window.length_in(&self.analysis.model);
        ((length.saturating_sub(self.missing_ns()) + self.earlier_ns) as f64 / 1e9).max(1e-3)
    }

    /// Nanoseconds of the window without events (damaged or missing chunks).
    fn missing_ns(&self) -> u64 {
        let (from, to) = self.findings.window.clip(&self.analysis.model);
        self.analysis
            .model
            .missing
            .iter()
            .map(|m| m.to.min(to).saturating_sub(m.from.max(from)))
            .sum()
    }

    /// What was compared: the window, from the recording's start, in seconds.
    fn compared(&self) -> Compared {
        let m = &self.analysis.model;
        let (from, to) = self.findings.window.clip(m);
        let at = |t: u64| t.saturating_sub(m.header.start_ns) as f64 / 1e9;
        Compared {
            from_s: at(from),
            to_s: at(to.max(from)),
            missing_s: self.missing_ns() as f64 / 1e9,
            events: m.samples.iter().any(|s| s.ts >= from && s.ts < to)
                || m.off_cpu.iter().any(|o| o.end >= from && o.end < to),
        }
    }

    /// The window's start and its one-second bins.
    fn bins(&self) -> (u64, usize) {
        let (from, to) = self.findings.window.clip(&self.analysis.model);
        (from, (to.saturating_sub(from) / BIN_NS).max(1) as usize)
    }
}

/// Episodes are counted per bin of this length to see how bursty a blocker is.
const BIN_NS: u64 = 1_000_000_000;

/// How sure and how large a change must be.
#[derive(Clone, Copy, Debug)]
pub struct DiffOptions {
    /// Largest p-value still called beyond noise. 0.001: a diff tests a few dozen blockers, and
    /// a gate that fails one run in a hundred on an unchanged build would be switched off.
    pub alpha: f64,
    /// Smallest relative change of a rate or a median duration called grown or shrunk.
    pub min_change: f64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            alpha: 0.001,
            min_change: 0.25,
        }
    }
}

/// What became of a blocker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    New,
    Gone,
    Grown,
    Shrunk,
    Same,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Gone => "gone",
            Change::Grown => "grown",
            Change::Shrunk => "shrunk",
            Change::Same => "same",
        }
    }

    /// The label as views show it: a change within noise marked `?`.
    pub fn marked(self, beyond_noise: bool) -> String {
        if beyond_noise || self == Change::Same {
            self.label().to_string()
        } else {
            format!("{}?", self.label())
        }
    }
}

/// A blocker on one side.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockerSide {
    pub count: usize,
    pub total_ns: u64,
    /// Episodes per second of the side's window.
    pub per_second: f64,
    /// Blocked milliseconds per second of the window.
    pub ms_per_second: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// The blamed line on this side.
    pub line: u32,
    /// The episodes' durations, sorted (for the test on durations).
    durations: Vec<u64>,
    /// Episodes per one-second bin of the window (how bursty it is).
    bins: Vec<u32>,
}

/// A blocker compared.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockerDiff {
    pub kind: Kind,
    pub function: Arc<str>,
    pub file: Option<Arc<str>>,
    pub base: Option<BlockerSide>,
    pub new: Option<BlockerSide>,
    pub change: Change,
    /// Whether a test says the difference is not chance (for `new` and `gone`: the count alone).
    pub beyond_noise: bool,
    /// p-values of the tests on rates and (both sides with enough episodes) on durations.
    pub rate_p: f64,
    pub duration_p: Option<f64>,
    /// The new side's blocker ([`Blocker::group`]), when it has one.
    pub new_group: Option<u32>,
    /// The same comparison per kind of task the episodes ran in (captures with task ids), most
    /// changed first; empty when neither side knows its episodes' tasks.
    pub tasks: Vec<TaskKindDiff>,
}

/// A blocker's episodes in one kind of task (the future the tasks were spawned with), compared.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskKindDiff {
    /// The kind's root future; `None`: episodes whose task is not known.
    pub kind: Option<Arc<str>>,
    pub file: Option<Arc<str>>,
    pub base: Option<BlockerSide>,
    pub new: Option<BlockerSide>,
    pub change: Change,
    pub beyond_noise: bool,
    pub rate_p: f64,
}

/// One kind of task on both sides: how many were seen and what they cost per second.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskKindShift {
    pub kind: Arc<str>,
    pub file: Option<Arc<str>>,
    /// (base, new) per figure.
    pub tasks: (usize, usize),
    pub cpu_ms_per_second: (f64, f64),
    pub blocked_ms_per_second: (f64, f64),
    pub long_polls_per_second: (f64, f64),
}

impl TaskKindShift {
    /// Milliseconds per second the kind's CPU and blocking moved, together.
    fn moved(&self) -> f64 {
        (self.cpu_ms_per_second.1 - self.cpu_ms_per_second.0).abs()
            + (self.blocked_ms_per_second.1 - self.blocked_ms_per_second.0).abs()
    }
}

impl BlockerDiff {
    /// The blamed line moved between the sides.
    pub fn line_moved(&self) -> Option<(u32, u32)> {
        match (&self.base, &self.new) {
            (Some(b), Some(n)) if b.line != n.line => Some((b.line, n.line)),
            _ => None,
        }
    }

    /// Blocked milliseconds per second, new minus base.
    pub fn ms_per_second_change(&self) -> f64 {
        let side = |s: &Option<BlockerSide>| s.as_ref().map_or(0.0, |s| s.ms_per_second);
        side(&self.new) - side(&self.base)
    }
}

/// A function whose share of CPU samples moved.
#[derive(Clone, Debug, PartialEq)]
pub struct HotspotShift {
    pub function: Arc<str>,
    pub user: bool,
    /// Self samples, percent of each side's samples.
    pub base_pct: f64,
    pub new_pct: f64,
    /// Whether the shares differ beyond chance ([`shares_differ`] below α).
    pub beyond_noise: bool,
}

/// The part of a capture a side compared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compared {
    /// The window, in seconds from the recording's start.
    pub from_s: f64,
    pub to_s: f64,
    /// Seconds of it without events (chunks missing or damaged): left out of the per-second
    /// figures.
    pub missing_s: f64,
    /// Whether any sample or off-CPU episode is in it.
    pub events: bool,
}

/// Two analyses compared.
#[derive(Clone, Debug)]
pub struct Diff {
    /// Seconds each side's figures are per (what was read of its window).
    pub base_seconds: f64,
    pub new_seconds: f64,
    pub base_window: Compared,
    pub new_window: Compared,
    /// Changed blockers first (new, grown, gone, shrunk), then the same ones, each by the size
    /// of the change in blocked time per second.
    pub blockers: Vec<BlockerDiff>,
    /// The functions whose self share moved most, either way, largest first.
    pub hotspots: Vec<HotspotShift>,
    /// Runtime threads' mean share on CPU and runnable, base and new.
    pub utilisation: (f64, f64),
    pub runnable_wait: (f64, f64),
    /// Threads per role on each side, where they differ.
    pub roles: Vec<(String, usize, usize)>,
    /// The user's kinds of task on either side (captures with task ids), most moved first.
    pub task_kinds: Vec<TaskKindShift>,
    /// What the comparison had to normalize or could not compare.
    pub notes: Vec<String>,
}

impl Diff {
    /// The comparison of the new side's blocker with group id `group`.
    pub fn of_group(&self, group: u32) -> Option<&BlockerDiff> {
        self.blockers.iter().find(|b| b.new_group == Some(group))
    }

    /// Blockers with `change`, beyond noise.
    pub fn changed(&self, change: Change) -> impl Iterator<Item = &BlockerDiff> {
        self.blockers
            .iter()
            .filter(move |b| b.change == change && b.beyond_noise)
    }
}

/// Hotspot rows compared.
const HOTSPOT_SHIFTS: usize = 10;

/// The ranking a side's findings need: none of their tables' rows (hotspots are compared from
/// the samples per stack, every function, whatever the tables keep).
pub const RANKING: super::hotspots::Ranking = super::hotspots::Ranking::NO_ROWS;

/// A capture others are compared with (`tui --base`): its analysis and whole-capture findings,
/// computed once.
pub struct Baseline {
    pub analysis: Analysis,
    pub findings: Findings,
}

impl Baseline {
    pub fn new(analysis: Analysis) -> Self {
        let findings = analysis.findings(super::Window::ALL, RANKING);
        Baseline { analysis, findings }
    }

    /// `new` against the whole base.
    pub fn compare(&self, new: Side) -> Diff {
        diff(
            Side::of(&self.analysis, &self.findings),
            new,
            &DiffOptions::default(),
        )
    }
}

/// Compares `new` with `base`.
pub fn diff(base: Side, new: Side, options: &DiffOptions) -> Diff {
    let (t1, t2) = (base.seconds(), new.seconds());
    let mut notes = Vec::new();
    let (h1, h2) = (&base.analysis.model.header, &new.analysis.model.header);
    if h1.sample_hz != h2.sample_hz {
        notes.push(format!(
            "sampling rates differ ({} Hz and {} Hz): CPU shares are compared, not samples",
            h1.sample_hz, h2.sample_hz
        ));
    }
    if (t1 - t2).abs() > 0.1 * t1.max(t2) {
        notes.push(format!(
            "windows differ in length ({t1:.1} s and {t2:.1} s): counts and times are per second"
        ));
    }
    let (c1, c2) = (base.compared(), new.compared());
    for (which, c) in [("base", c1), ("new", c2)] {
        if !c.events {
            notes.push(format!(
                "the {which} capture has no events from {:.1} s to {:.1} s: nothing of it to compare",
                c.from_s, c.to_s
            ));
        } else if c.missing_s > 0.0 {
            notes.push(format!(
                "{:.1} s of the {which} window ({:.1} s to {:.1} s) has no events (chunks missing \
                 or damaged): its figures are per second of the {:.1} s read",
                c.missing_s,
                c.from_s,
                c.to_s,
                (c.to_s - c.from_s - c.missing_s).max(0.0)
            ));
        }
    }
    let mut by_key: BTreeMap<Key, (Option<&Blocker>, Option<&Blocker>)> = BTreeMap::new();
    for b in &base.findings.blockers {
        by_key.entry(key(b)).or_default().0 = Some(b);
    }
    for b in &new.findings.blockers {
        by_key.entry(key(b)).or_default().1 = Some(b);
    }
    let (bins1, bins2) = (base.bins(), new.bins());
    let (kinds1, kinds2) = (TaskKindOf(base.analysis), TaskKindOf(new.analysis));
    let mut blockers: Vec<BlockerDiff> = by_key
        .into_values()
        .map(|(b, n)| {
            let mut d = compare(b, n, (t1, bins1), (t2, bins2), options);
            d.tasks = per_task_kind((b, &kinds1, t1, bins1), (n, &kinds2, t2, bins2), options);
            d
        })
        .collect();
    let (ids1, ids2) = (has_task_ids(base.analysis), has_task_ids(new.analysis));
    if ids1 != ids2 {
        notes.push(format!(
            "only the {} capture has task ids: blockers are not compared per kind of task",
            if ids1 { "base" } else { "new" }
        ));
    }
    let order = |c: Change| match c {
        Change::New => 0,
        Change::Grown => 1,
        Change::Gone => 2,
        Change::Shrunk => 3,
        Change::Same => 4,
    };
    blockers.sort_by(|a, b| {
        (order(a.change), !a.beyond_noise)
            .cmp(&(order(b.change), !b.beyond_noise))
            .then(
                b.ms_per_second_change()
                    .abs()
                    .total_cmp(&a.ms_per_second_change().abs()),
            )
    });
    Diff {
        base_seconds: t1,
        new_seconds: t2,
        base_window: c1,
        new_window: c2,
        blockers,
        hotspots: hotspot_shifts(base, new, options),
        utilisation: (base.findings.utilisation, new.findings.utilisation),
        runnable_wait: (
            base.findings.runnable_wait_share,
            new.findings.runnable_wait_share,
        ),
        roles: roles(base.analysis, new.analysis),
        task_kinds: task_kind_shifts((base, t1), (new, t2)),
        notes,
    }
}

/// The identity of a blocker across builds: kind, then (function, crate-relative file) of each
/// frame of the user call path (or of the blamed frame).
type Key = (u8, Vec<(String, String)>);

fn key(b: &Blocker) -> Key {
    let frame = |f: &crate::symbols::Frame| {
        (
            f.function.to_string(),
            f.file.as_deref().map(short_path).unwrap_or_default(),
        )
    };
    let path = if b.user_path.is_empty() {
        vec![frame(&b.blame)]
    } else {
        b.user_path.iter().map(frame).collect()
    };
    (b.kind as u8, path)
}

fn side_of(b: &Blocker, seconds: f64, bins: (u64, usize)) -> BlockerSide {
    let mut side = episodes_side(b.episodes.iter(), b.blame.line, seconds, bins);
    // Episodes a live view folded into totals count too (not in durations or bins).
    side.count = b.count();
    side.total_ns = b.total();
    side.max_ns = b.max();
    side.per_second = side.count as f64 / seconds;
    side.ms_per_second = side.total_ns as f64 / 1e6 / seconds;
    side
}

/// Some episodes of a blocker as one side.
fn episodes_side<'e>(
    episodes: impl Iterator<Item = &'e Episode> + Clone,
    line: u32,
    seconds: f64,
    (from, bins): (u64, usize),
) -> BlockerSide {
    let mut durations: Vec<u64> = episodes.clone().map(|e| e.duration).collect();
    durations.sort_unstable();
    let mut counts = vec![0u32; bins];
    for e in episodes {
        let bin = (e.start.saturating_sub(from) / BIN_NS) as usize;
        if let Some(c) = counts.get_mut(bin.min(bins - 1)) {
            *c += 1;
        }
    }
    let total_ns: u64 = durations.iter().sum();
    BlockerSide {
        count: durations.len(),
        total_ns,
        per_second: durations.len() as f64 / seconds,
        ms_per_second: total_ns as f64 / 1e6 / seconds,
        p50_ns: nearest_rank(&durations, 0.5),
        p99_ns: nearest_rank(&durations, 0.99),
        max_ns: durations.last().copied().unwrap_or(0),
        line,
        durations,
        bins: counts,
    }
}

/// How much more the per-second counts vary than a Poisson process's (variance over mean, at
/// least 1), pooled over both sides: real blockers come in bursts (a cache dropped, a backlog),
/// and a test that assumes independent episodes calls a burst a change.
fn dispersion(sides: &[&BlockerSide]) -> f64 {
    let (mut squares, mut total, mut bins) = (0.0, 0.0, 0usize);
    for s in sides {
        let n = s.bins.len().max(1) as f64;
        let mean = s.bins.iter().map(|&c| f64::from(c)).sum::<f64>() / n;
        squares += s
            .bins
            .iter()
            .map(|&c| (f64::from(c) - mean).powi(2))
            .sum::<f64>();
        total += mean * n;
        bins += s.bins.len().saturating_sub(1);
    }
    if bins == 0 || total == 0.0 {
        return 1.0;
    }
    let mean = total / (bins + sides.len()) as f64;
    (squares / bins as f64 / mean).max(1.0)
}

/// Episodes each side needs before their durations are compared.
const MIN_FOR_DURATIONS: usize = 5;

/// One blocker's sides compared; each side's window is (seconds, (start, one-second bins)).
fn compare(
    base: Option<&Blocker>,
    new: Option<&Blocker>,
    (t1, bins1): (f64, (u64, usize)),
    (t2, bins2): (f64, (u64, usize)),
    options: &DiffOptions,
) -> BlockerDiff {
    let any = new
        .or(base)
        .expect("a key has a blocker on one side at least");
    let (b, n) = (
        base.map(|b| side_of(b, t1, bins1)),
        new.map(|n| side_of(n, t2, bins2)),
    );
    let verdict = judge(b.as_ref(), n.as_ref(), (t1, t2), options);
    BlockerDiff {
        kind: any.kind,
        function: any.blame.function.clone(),
        file: any.blame.file.clone(),
        base: b,
        new: n,
        change: verdict.change,
        beyond_noise: verdict.beyond_noise,
        rate_p: verdict.rate_p,
        duration_p: verdict.duration_p,
        new_group: new.map(|n| n.group),
        tasks: Vec::new(),
    }
}

/// What the tests say of two sides.
struct Verdict {
    change: Change,
    beyond_noise: bool,
    rate_p: f64,
    duration_p: Option<f64>,
}

/// The change between two sides of one blocker (or of its episodes in one kind of task), over
/// windows of `t1` and `t2` seconds.
fn judge(
    b: Option<&BlockerSide>,
    n: Option<&BlockerSide>,
    (t1, t2): (f64, f64),
    options: &DiffOptions,
) -> Verdict {
    let (n1, n2) = (b.map_or(0, |s| s.count), n.map_or(0, |s| s.count));
    // Counts scaled down by how bursty the blocker is (a quasi-Poisson test).
    let phi = dispersion(&b.iter().chain(n.iter()).copied().collect::<Vec<_>>());
    let scaled = |c: usize| (c as f64 / phi).round() as usize;
    let rate_p = rates_differ(scaled(n1), t1, scaled(n2), t2);
    let duration_p = match (b, n) {
        (Some(b), Some(n))
            if b.durations.len() >= MIN_FOR_DURATIONS && n.durations.len() >= MIN_FOR_DURATIONS =>
        {
            Some(mann_whitney(&b.durations, &n.durations))
        }
        _ => None,
    };
    let (change, beyond_noise) = match (b, n) {
        (None, Some(_)) => (Change::New, rate_p < options.alpha),
        (Some(_), None) => (Change::Gone, rate_p < options.alpha),
        (Some(b), Some(n)) => {
            let grows = |ratio: f64| ratio >= 1.0 + options.min_change;
            let shrinks = |ratio: f64| ratio <= 1.0 / (1.0 + options.min_change);
            let rate_ratio = n.per_second / b.per_second.max(f64::MIN_POSITIVE);
            let p50_ratio = n.p50_ns as f64 / (b.p50_ns as f64).max(1.0);
            let rate_sure = rate_p < options.alpha;
            let duration_sure = duration_p.is_some_and(|p| p < options.alpha);
            let up = (rate_sure && grows(rate_ratio)) || (duration_sure && grows(p50_ratio));
            let down = (rate_sure && shrinks(rate_ratio)) || (duration_sure && shrinks(p50_ratio));
            match (up, down) {
                (false, false) => (Change::Same, false),
                (true, false) => (Change::Grown, true),
                (false, true) => (Change::Shrunk, true),
                // More often but shorter, or the reverse: the blocked time per second decides.
                (true, true) => {
                    if n.ms_per_second >= b.ms_per_second {
                        (Change::Grown, true)
                    } else {
                        (Change::Shrunk, true)
                    }
                }
            }
        }
        (None, None) => (Change::Same, false),
    };
    Verdict {
        change,
        beyond_noise,
        rate_p,
        duration_p,
    }
}

/// A kind of task by name: its root future's function and file.
type KindName = (Arc<str>, Option<Arc<str>>);

/// The kind of task an episode ran in, on one side (kinds are matched across sides by name:
/// task ids are per run).
struct TaskKindOf<'a>(&'a Analysis);

impl TaskKindOf<'_> {
    fn of(&self, e: &Episode) -> Option<KindName> {
        let kind = self.0.task_kinds.of(e.task)?;
        Some((kind.function.clone(), kind.file.clone()))
    }
}

fn has_task_ids(a: &Analysis) -> bool {
    matches!(a.model.task_source, Some(Ok(_)))
}

/// A blocker's episodes split by the kind of task they ran in, each kind's sides compared; empty
/// when no episode on either side has a known kind.
fn per_task_kind(
    (base, kinds1, t1, bins1): (Option<&Blocker>, &TaskKindOf, f64, (u64, usize)),
    (new, kinds2, t2, bins2): (Option<&Blocker>, &TaskKindOf, f64, (u64, usize)),
    options: &DiffOptions,
) -> Vec<TaskKindDiff> {
    let mut by_kind: BTreeMap<Option<KindName>, (Vec<&Episode>, Vec<&Episode>)> = BTreeMap::new();
    for e in base.iter().flat_map(|b| &b.episodes) {
        by_kind.entry(kinds1.of(e)).or_default().0.push(e);
    }
    for e in new.iter().flat_map(|b| &b.episodes) {
        by_kind.entry(kinds2.of(e)).or_default().1.push(e);
    }
    if by_kind.keys().all(Option::is_none) {
        return Vec::new();
    }
    let line = |b: Option<&Blocker>| b.map_or(0, |b| b.blame.line);
    let mut rows: Vec<TaskKindDiff> = by_kind
        .into_iter()
        .map(|(name, (e1, e2))| {
            let side = |e: &[&Episode], line, t, bins| {
                (!e.is_empty()).then(|| episodes_side(e.iter().copied(), line, t, bins))
            };
            let b = side(&e1, line(base), t1, bins1);
            let n = side(&e2, line(new), t2, bins2);
            let verdict = judge(b.as_ref(), n.as_ref(), (t1, t2), options);
            let (kind, file) = name.map_or((None, None), |(k, f)| (Some(k), f));
            TaskKindDiff {
                kind,
                file,
                base: b,
                new: n,
                change: verdict.change,
                beyond_noise: verdict.beyond_noise,
                rate_p: verdict.rate_p,
            }
        })
        .collect();
    let moved = |r: &TaskKindDiff| {
        let ms = |s: &Option<BlockerSide>| s.as_ref().map_or(0.0, |s| s.ms_per_second);
        (ms(&r.new) - ms(&r.base)).abs()
    };
    rows.sort_by(|a, b| {
        (!a.beyond_noise, a.kind.is_none())
            .cmp(&(!b.beyond_noise, b.kind.is_none()))
            .then(moved(b).total_cmp(&moved(a)))
    });
    rows
}

/// The user's kinds of task on both sides, per second of each window.
fn task_kind_shifts((base, t1): (Side, f64), (new, t2): (Side, f64)) -> Vec<TaskKindShift> {
    type Figures = (usize, f64, f64, f64);
    let mut by_kind: BTreeMap<KindName, (Figures, Figures)> = BTreeMap::new();
    for (side, seconds, second) in [(base, t1, false), (new, t2, true)] {
        let period = side.analysis.model.sample_period();
        for t in &side.findings.tasks {
            let Some(kind) = t.kind.as_deref().filter(|k| super::frames::is_user(k)) else {
                continue;
            };
            let entry = by_kind
                .entry((kind.function.clone(), kind.file.clone()))
                .or_default();
            let f = if second { &mut entry.1 } else { &mut entry.0 };
            f.0 += 1;
            f.1 += t.on_cpu_ns(period) as f64 / 1e6 / seconds;
            f.2 += t.blocked_ns as f64 / 1e6 / seconds;
            f.3 += t.long_polls as f64 / seconds;
        }
    }
    let mut shifts: Vec<TaskKindShift> = by_kind
        .into_iter()
        .map(|((kind, file), (b, n))| TaskKindShift {
            kind,
            file,
            tasks: (b.0, n.0),
            cpu_ms_per_second: (b.1, n.1),
            blocked_ms_per_second: (b.2, n.2),
            long_polls_per_second: (b.3, n.3),
        })
        .collect();
    shifts.sort_by(|a, b| b.moved().total_cmp(&a.moved()));
    shifts
}

/// Two-sided p-value that `n1` events in `t1` seconds and `n2` in `t2` come from one rate:
/// given `n1 + n2` events, the new side's count is binomial with p = t2 / (t1 + t2); exact (the
/// sum of the outcomes no likelier than the one seen).
pub fn rates_differ(n1: usize, t1: f64, n2: usize, t2: f64) -> f64 {
    let n = n1 + n2;
    if n == 0 {
        return 1.0;
    }
    let p = t2 / (t1 + t2);
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // log pmf(i), built up from pmf(0) = q^n.
    let mut log_pmf = Vec::with_capacity(n + 1);
    let mut l = n as f64 * lq;
    log_pmf.push(l);
    for i in 0..n {
        l += ((n - i) as f64).ln() - ((i + 1) as f64).ln() + lp - lq;
        log_pmf.push(l);
    }
    let seen = log_pmf[n2] + 1e-9;
    let total: f64 = log_pmf
        .iter()
        .filter(|&&x| x <= seen)
        .map(|x| x.exp())
        .sum();
    total.min(1.0)
}

/// Two-sided p-value that `k1` of `n1` and `k2` of `n2` samples are one share: the
/// two-proportion z-test with Yates' continuity correction (a share of a fixed number of
/// samples is binomial; the correction keeps it conservative for a handful of samples).
pub fn shares_differ((k1, n1): (u64, u64), (k2, n2): (u64, u64)) -> f64 {
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (n1, n2) = (n1 as f64, n2 as f64);
    let pooled = (k1 + k2) as f64 / (n1 + n2);
    let variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2);
    if variance <= 0.0 {
        return 1.0;
    }
    let gap = (k1 as f64 / n1 - k2 as f64 / n2).abs() - 0.5 * (1.0 / n1 + 1.0 / n2);
    let z = gap.max(0.0) / variance.sqrt();
    erfc(z / std::f64::consts::SQRT_2).min(1.0)
}

/// Two-sided p-value of the Mann–Whitney U test (normal approximation with the tie correction)
/// that `a` and `b` come from one distribution.
pub fn mann_whitney(a: &[u64], b: &[u64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut all: Vec<(u64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_unstable_by_key(|x| x.0);
    let n = all.len();
    let mut rank_sum_a = 0.0;
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_sum_a += rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let total = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((total + 1.0) - ties / (total * (total - 1.0)));
    if variance <= 0.0 {
        return 1.0;
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    erfc(z / std::f64::consts::SQRT_2).min(1.0)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Each function's self samples on a side, and whether it is the user's code: from the
/// window's samples per stack, so the findings' tables may be cut to any length.
fn self_samples(side: Side) -> BTreeMap<Arc<str>, (u64, bool)> {
    let (model, symbols) = (&side.analysis.model, &side.analysis.symbols);
    let cls = super::frames::Classifier::default();
    let mut counts: BTreeMap<Arc<str>, (u64, bool)> = BTreeMap::new();
    for &(stack, n) in &side.findings.per_stack {
        // Self time goes to the function whose code runs, as the hotspots count it: the symbol
        // the leaf's inline chain ends in.
        let Some(f) = symbols.frames(model, stack).find(|f| !f.inlined) else {
            continue;
        };
        let e = counts
            .entry(f.function.clone())
            .or_insert_with(|| (0, cls.flags(f) & super::frames::flags::USER != 0));
        e.0 += n;
    }
    counts
}

fn hotspot_shifts(base: Side, new: Side, options: &DiffOptions) -> Vec<HotspotShift> {
    let total = |side: Side| side.findings.per_stack.iter().map(|&(_, n)| n).sum::<u64>();
    let (n1, n2) = (total(base), total(new));
    let mut by_function: BTreeMap<Arc<str>, (u64, u64, bool)> = BTreeMap::new();
    for (function, (n, user)) in self_samples(base) {
        by_function.insert(function, (n, 0, user));
    }
    for (function, (n, user)) in self_samples(new) {
        let e = by_function.entry(function).or_default();
        e.1 = n;
        e.2 |= user;
    }
    let pct = |k: u64, n: u64| {
        if n == 0 {
            0.0
        } else {
            k as f64 * 100.0 / n as f64
        }
    };
    let mut shifts: Vec<HotspotShift> = by_function
        .into_iter()
        .map(|(function, (k1, k2, user))| HotspotShift {
            function,
            user,
            base_pct: pct(k1, n1),
            new_pct: pct(k2, n2),
            beyond_noise: shares_differ((k1, n1), (k2, n2)) < options.alpha,
        })
        .filter(|s| (s.new_pct - s.base_pct).abs() >= 0.05)
        .collect();
    shifts.sort_by(|a, b| {
        (!a.beyond_noise)
            .cmp(&!b.beyond_noise)
            .then(
                (b.new_pct - b.base_pct)
                    .abs()
                    .total_cmp(&(a.new_pct - a.base_pct).abs()),
            )
            .then_with(|| a.function.cmp(&b.function))
    });
    shifts.truncate(HOTSPOT_SHIFTS);
    shifts
}

fn roles(base: &Analysis, new: &Analysis) -> Vec<(String, usize, usize)> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for t in base.model.threads.values() {
        counts.entry(t.role.label().to_string()).or_default().0 += 1;
    }
    for t in new.model.threads.values() {
        counts.entry(t.role.label().to_string()).or_default().1 += 1;
    }
    counts
        .into_iter()
        .filter(|(_, (a, b))| a != b)
        .map(|(role, (a, b))| (role, a, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rates_are_noise_and_a_tenfold_rate_is_not() {
        assert!(rates_differ(100, 10.0, 100, 10.0) > 0.9);
        assert!(
            rates_differ(100, 10.0, 50, 5.0) > 0.9,
            "per second, not per capture"
        );
        assert!(rates_differ(10, 10.0, 100, 10.0) < 1e-6);
        // Nothing before, a handful now: a few are chance, a dozen are not.
        assert!(rates_differ(0, 10.0, 3, 10.0) > 0.1);
        assert!(rates_differ(0, 10.0, 12, 10.0) < 0.001);
        assert_eq!(rates_differ(0, 1.0, 0, 1.0), 1.0);
    }

    #[test]
    fn mann_whitney_tells_shifted_durations_from_the_same_ones() {
        let a: Vec<u64> = (0..40).map(|i| 5_000_000 + i * 10_000).collect();
        let same: Vec<u64> = (0..40).map(|i| 5_005_000 + i * 10_000).collect();
        let longer: Vec<u64> = (0..40).map(|i| 8_000_000 + i * 10_000).collect();
        assert!(mann_whitney(&a, &same) > 0.5);
        assert!(mann_whitney(&a, &longer) < 1e-6);
        assert_eq!(mann_whitney(&[7; 10], &[7; 10]), 1.0, "all tied");
    }

    #[test]
    fn shares_of_fixed_totals_are_compared_as_proportions() {
        // 44 % of 215 samples against 65 % of 324: far beyond chance as proportions (the
        // rates test, which ignores the fixed totals, gives only 0.0015 here).
        assert!(shares_differ((94, 215), (209, 324)) < 1e-4);
        assert!(shares_differ((50, 100), (52, 100)) > 0.5);
        // A handful of samples: 1 of 3 against 0 of 6 is nothing.
        assert!(shares_differ((1, 3), (0, 6)) > 0.1);
        assert_eq!(shares_differ((0, 0), (5, 10)), 1.0);
        assert_eq!(shares_differ((0, 10), (0, 10)), 1.0);
    }

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
    }
}
