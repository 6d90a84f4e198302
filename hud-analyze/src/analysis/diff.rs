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

use super::detect::Blocker;
use super::frames::Kind;
use super::{Analysis, Findings};
use crate::view::wording::short_path;

/// One side of a comparison: an analysis and its findings for the compared window.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub analysis: &'a Analysis,
    pub findings: &'a Findings,
}

impl Side<'_> {
    fn seconds(&self) -> f64 {
        (self.findings.window.length_in(&self.analysis.model) as f64 / 1e9).max(1e-3)
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
}

/// Two analyses compared.
#[derive(Clone, Debug)]
pub struct Diff {
    pub base_seconds: f64,
    pub new_seconds: f64,
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
    let mut by_key: BTreeMap<Key, (Option<&Blocker>, Option<&Blocker>)> = BTreeMap::new();
    for b in &base.findings.blockers {
        by_key.entry(key(b)).or_default().0 = Some(b);
    }
    for b in &new.findings.blockers {
        by_key.entry(key(b)).or_default().1 = Some(b);
    }
    let (bins1, bins2) = (base.bins(), new.bins());
    let mut blockers: Vec<BlockerDiff> = by_key
        .into_values()
        .map(|(b, n)| compare(b, n, (t1, bins1), (t2, bins2), options))
        .collect();
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
        blockers,
        hotspots: hotspot_shifts(base.findings, new.findings),
        utilisation: (base.findings.utilisation, new.findings.utilisation),
        runnable_wait: (
            base.findings.runnable_wait_share,
            new.findings.runnable_wait_share,
        ),
        roles: roles(base.analysis, new.analysis),
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

fn side_of(b: &Blocker, seconds: f64, (from, bins): (u64, usize)) -> BlockerSide {
    let mut durations: Vec<u64> = b.episodes.iter().map(|e| e.duration).collect();
    durations.sort_unstable();
    let mut counts = vec![0u32; bins];
    for e in &b.episodes {
        let bin = (e.start.saturating_sub(from) / BIN_NS) as usize;
        if let Some(c) = counts.get_mut(bin.min(bins - 1)) {
            *c += 1;
        }
    }
    BlockerSide {
        count: b.count(),
        total_ns: b.total(),
        per_second: b.count() as f64 / seconds,
        ms_per_second: b.total() as f64 / 1e6 / seconds,
        p50_ns: b.quantile(0.5),
        p99_ns: b.quantile(0.99),
        max_ns: b.max(),
        line: b.blame.line,
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
    let (n1, n2) = (
        b.as_ref().map_or(0, |s| s.count),
        n.as_ref().map_or(0, |s| s.count),
    );
    // Counts scaled down by how bursty the blocker is (a quasi-Poisson test).
    let phi = dispersion(&b.iter().chain(n.iter()).collect::<Vec<_>>());
    let scaled = |c: usize| (c as f64 / phi).round() as usize;
    let rate_p = rates_differ(scaled(n1), t1, scaled(n2), t2);
    let duration_p = match (&b, &n) {
        (Some(b), Some(n))
            if b.durations.len() >= MIN_FOR_DURATIONS && n.durations.len() >= MIN_FOR_DURATIONS =>
        {
            Some(mann_whitney(&b.durations, &n.durations))
        }
        _ => None,
    };
    let (change, beyond_noise) = match (&b, &n) {
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
    BlockerDiff {
        kind: any.kind,
        function: any.blame.function.clone(),
        file: any.blame.file.clone(),
        base: b,
        new: n,
        change,
        beyond_noise,
        rate_p,
        duration_p,
        new_group: new.map(|n| n.group),
    }
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

fn hotspot_shifts(base: &Findings, new: &Findings) -> Vec<HotspotShift> {
    let mut by_function: BTreeMap<Arc<str>, (f64, f64, bool)> = BTreeMap::new();
    for h in &base.hotspots.by_function {
        let e = by_function.entry(h.key.function.clone()).or_default();
        e.0 += h.self_pct;
        e.2 |= h.key.user;
    }
    for h in &new.hotspots.by_function {
        let e = by_function.entry(h.key.function.clone()).or_default();
        e.1 += h.self_pct;
        e.2 |= h.key.user;
    }
    let mut shifts: Vec<HotspotShift> = by_function
        .into_iter()
        .map(|(function, (base_pct, new_pct, user))| HotspotShift {
            function,
            user,
            base_pct,
            new_pct,
        })
        .filter(|s| (s.new_pct - s.base_pct).abs() >= 0.05)
        .collect();
    shifts.sort_by(|a, b| {
        (b.new_pct - b.base_pct)
            .abs()
            .total_cmp(&(a.new_pct - a.base_pct).abs())
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
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
    }
}
