//! CPU hotspots from samples: self and inclusive, by function and by file:line, overall and per
//! thread, for any time window. Rows carry structured keys; views make the names.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use rayon::prelude::*;
use std::sync::Arc;

use super::frames::{flags, Classifier};
use crate::model::Model;
use crate::symbols::{interned_id as id, Frame, Symbols};

/// A row's identity: a function (`line` is `None`) or a source line of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotKey {
    pub function: Arc<str>,
    /// For a function row, the file of its first frame seen.
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    /// The user's own code (not the standard library, a dependency or the runtime).
    pub user: bool,
}

impl HotKey {
    fn of(frame: &Frame, line: bool, cls: &Classifier) -> Self {
        HotKey {
            function: Arc::clone(&frame.function),
            file: frame.file.clone(),
            line: line.then_some(frame.line),
            user: cls.flags(frame) & flags::USER != 0,
        }
    }

    /// Order for ties: by function, file, line.
    fn tie_order(&self, other: &Self) -> std::cmp::Ordering {
        self.function
            .cmp(&other.function)
            .then_with(|| self.file.cmp(&other.file))
            .then_with(|| self.line.cmp(&other.line))
    }
}

#[derive(Clone, Debug)]
pub struct Hot {
    pub key: HotKey,
    pub self_samples: u64,
    pub self_pct: f64,
    pub inclusive_samples: u64,
    pub inclusive_pct: f64,
}

/// Library frames in at least this share of a table's samples (thread start, catch_unwind, the
/// runtime's run loop) say nothing: inclusive tables leave them out unless asked for all frames.
pub const UBIQUITOUS_SHARE: f64 = 0.95;

/// How tables are cut.
#[derive(Clone, Copy, Debug)]
pub struct Ranking {
    /// Rows per table.
    pub top: usize,
    /// Keep ubiquitous library frames in inclusive tables.
    pub all_frames: bool,
}

/// Self samples by function count the function whose machine code ran (the symbol, inlined
/// callees included, like perf); inclusive samples count every function in the stack, inlined
/// ones too. By line, self counts the innermost source line, inlined or not.
#[derive(Clone, Debug, Default)]
pub struct Hotspots {
    pub samples: u64,
    /// Sorted by self samples.
    pub by_function: Vec<Hot>,
    /// Sorted by inclusive samples.
    pub by_function_inclusive: Vec<Hot>,
    /// Sorted by self samples.
    pub by_line: Vec<Hot>,
    /// Sorted by inclusive samples.
    pub by_line_inclusive: Vec<Hot>,
    /// Inclusive rows left out as ubiquitous library frames (see [`UBIQUITOUS_SHARE`]).
    pub hidden_frames: usize,
}

/// A line's identity: (file, function, line).
type LineKey = (usize, usize, u32);

/// Counts of one group of samples, keyed by interned pointers; names are made only for the rows
/// shown. Inclusive maps carry the names, so no frame pays for a separate name lookup.
#[derive(Default)]
struct Counts<'a> {
    samples: u64,
    fn_self: HashMap<usize, u64>,
    fn_incl: HashMap<usize, (u64, &'a Frame)>,
    line_self: HashMap<LineKey, u64>,
    line_incl: HashMap<LineKey, (u64, &'a Frame)>,
}

impl<'a> Counts<'a> {
    fn merge(&mut self, other: Counts<'a>) {
        self.samples += other.samples;
        for (k, n) in other.fn_self {
            *self.fn_self.entry(k).or_default() += n;
        }
        for (k, (n, frame)) in other.fn_incl {
            self.fn_incl.entry(k).or_insert((0, frame)).0 += n;
        }
        for (k, n) in other.line_self {
            *self.line_self.entry(k).or_default() += n;
        }
        for (k, (n, frame)) in other.line_incl {
            self.line_incl.entry(k).or_insert((0, frame)).0 += n;
        }
    }

    /// The tables; `seen_in` gives, per key, the samples of the threads it appears on (the
    /// denominator of "present in almost every sample"), or `None` for this group's own total.
    fn hotspots(&self, ranking: Ranking, cls: &Classifier, seen_in: Option<&SeenIn>) -> Hotspots {
        let total = self.samples;
        let fn_key = |k: &usize| HotKey::of(self.fn_incl[k].1, false, cls);
        let line_key = |k: &LineKey| HotKey::of(self.line_incl[k].1, true, cls);
        let fn_incl: HashMap<usize, u64> = self.fn_incl.iter().map(|(k, v)| (*k, v.0)).collect();
        let line_incl: HashMap<LineKey, u64> =
            self.line_incl.iter().map(|(k, v)| (*k, v.0)).collect();
        let fn_den = |k: &usize| seen_in.map_or(total, |s| s.functions[k]);
        let line_den = |k: &LineKey| seen_in.map_or(total, |s| s.lines[k]);
        let (by_function, by_function_inclusive, hidden_fn) =
            rank(&self.fn_self, &fn_incl, total, ranking, fn_key, fn_den);
        let (by_line, by_line_inclusive, hidden_line) = rank(
            &self.line_self,
            &line_incl,
            total,
            ranking,
            line_key,
            line_den,
        );
        Hotspots {
            samples: total,
            by_function,
            by_function_inclusive,
            by_line,
            by_line_inclusive,
            hidden_frames: hidden_fn + hidden_line,
        }
    }
}

/// Per key, the samples of the threads it appears on at least once.
#[derive(Default)]
struct SeenIn {
    functions: HashMap<usize, u64>,
    lines: HashMap<LineKey, u64>,
}

impl SeenIn {
    fn of(threads: &[Counts<'_>]) -> Self {
        let mut s = SeenIn::default();
        for t in threads {
            for k in t.fn_incl.keys() {
                *s.functions.entry(*k).or_default() += t.samples;
            }
            for k in t.line_incl.keys() {
                *s.lines.entry(*k).or_default() += t.samples;
            }
        }
        s
    }
}

/// Hotspots of the samples in `[from, to)`: overall, and per thread of `threads`; and the
/// overall samples per stack id (for flame graphs), sorted by stack id.
pub struct WindowHotspots {
    pub overall: Hotspots,
    pub per_thread: Vec<Hotspots>,
    pub per_stack: Vec<(u32, u64)>,
}

/// Counts the window's samples in one pass over their distinct stacks. Every thread is counted
/// on its own too, so that a library frame is judged ubiquitous against the threads it runs on
/// (the runtime's loop is in every sample of a worker, not of the process).
pub fn in_window(
    model: &Model,
    symbols: &Symbols,
    threads: &[u32],
    from: u64,
    to: u64,
    ranking: Ranking,
) -> WindowHotspots {
    let all: HashMap<u32, usize> = model
        .threads
        .keys()
        .enumerate()
        .map(|(i, t)| (*t, i))
        .collect();
    let cls = Classifier::default();
    let (overall, per_thread, per_stack) = grouped(
        model,
        symbols,
        |tid| all.get(&tid).map_or(0, |i| i + 1),
        all.len(),
        from,
        to,
    );
    let seen_in = SeenIn::of(&per_thread);
    WindowHotspots {
        overall: overall.hotspots(ranking, &cls, Some(&seen_in)),
        per_thread: threads
            .iter()
            .map(|t| match all.get(t) {
                Some(&i) => per_thread[i].hotspots(ranking, &cls, None),
                None => Hotspots::default(),
            })
            .collect(),
        per_stack,
    }
}

/// Counts overall, and per group 1..=`groups` of `group(tid)` (0: overall only). Each distinct
/// stack is walked once, on any thread of the pool; the walk's costs are per distinct stack, not
/// per sample.
fn grouped<'a>(
    model: &'a Model,
    symbols: &'a Symbols,
    group: impl Fn(u32) -> usize,
    groups: usize,
    from: u64,
    to: u64,
) -> (Counts<'a>, Vec<Counts<'a>>, Vec<(u32, u64)>) {
    // Samples per (stack, group), thread by thread within the window.
    let mut per_stack: HashMap<(u32, usize), u64> = HashMap::default();
    for &tid in model.threads.keys() {
        let g = group(tid);
        for s in model.samples_in(tid, from, to) {
            *per_stack.entry((s.stack, g)).or_default() += 1;
        }
    }
    // Per distinct stack: its count per group (group 0 = overall only).
    let mut stacks: Vec<(u32, usize, u64)> =
        per_stack.into_iter().map(|((s, g), n)| (s, g, n)).collect();
    stacks.par_sort_unstable();
    let stacks: Vec<&[(u32, usize, u64)]> = stacks.chunk_by(|a, b| a.0 == b.0).collect();
    let counts: Vec<(u32, u64)> = stacks
        .iter()
        .map(|rows| (rows[0].0, rows.iter().map(|r| r.2).sum()))
        .collect();
    let empty = || Acc {
        overall: Counts::default(),
        groups: (0..groups).map(|_| Counts::default()).collect(),
        seen: Seen::default(),
    };
    let acc = stacks
        .par_iter()
        .fold(empty, |mut acc, rows| {
            let stack = rows[0].0;
            let total: u64 = rows.iter().map(|r| r.2).sum();
            let mut targets: Vec<(&mut Counts, u64)> = Vec::with_capacity(rows.len() + 1);
            targets.push((&mut acc.overall, total));
            // Rows are sorted by group: split the slice to borrow each group once.
            let mut rest = &mut acc.groups[..];
            let mut consumed = 0;
            for &(_, g, n) in rows.iter() {
                if g == 0 {
                    continue;
                }
                let (_, tail) = std::mem::take(&mut rest).split_at_mut(g - 1 - consumed);
                let (head, tail) = tail.split_first_mut().expect("group in range");
                targets.push((head, n));
                rest = tail;
                consumed = g;
            }
            count_stack(model, symbols, stack, &mut targets, &mut acc.seen);
            acc
        })
        .reduce(empty, |mut a, b| {
            a.overall.merge(b.overall);
            for (x, y) in a.groups.iter_mut().zip(b.groups) {
                x.merge(y);
            }
            a
        });
    (acc.overall, acc.groups, counts)
}

/// One pool thread's running counts, and its scratch sets (reused from stack to stack).
struct Acc<'a> {
    overall: Counts<'a>,
    groups: Vec<Counts<'a>>,
    seen: Seen,
}

/// What a stack walk has counted already: a function or line counts once per stack however often
/// it recurs.
#[derive(Default)]
struct Seen {
    functions: HashSet<usize>,
    lines: HashSet<LineKey>,
}

/// Adds one stack's samples to each target (counts, samples of this stack in that group).
fn count_stack<'a>(
    model: &'a Model,
    symbols: &'a Symbols,
    stack: u32,
    targets: &mut [(&mut Counts<'a>, u64)],
    seen: &mut Seen,
) {
    for (c, n) in targets.iter_mut() {
        c.samples += *n;
    }
    seen.functions.clear();
    seen.lines.clear();
    let mut first = true;
    let mut symbol_done = false;
    for f in symbols.frames(model, stack) {
        let fid = id(&f.function);
        let line = f.file.as_ref().map(|file| (id(file), fid, f.line));
        if first {
            // The line shows the innermost source, inlined or not.
            if let Some(k) = line {
                for (c, n) in targets.iter_mut() {
                    *c.line_self.entry(k).or_default() += *n;
                }
            }
            first = false;
        }
        // Self time goes to the function whose code runs: the symbol the leaf's inline chain
        // ends in, as perf counts it.
        if !symbol_done && !f.inlined {
            for (c, n) in targets.iter_mut() {
                *c.fn_self.entry(fid).or_default() += *n;
            }
            symbol_done = true;
        }
        if seen.functions.insert(fid) {
            for (c, n) in targets.iter_mut() {
                c.fn_incl.entry(fid).or_insert((0, f)).0 += *n;
            }
        }
        if let Some(k) = line {
            if seen.lines.insert(k) {
                for (c, n) in targets.iter_mut() {
                    c.line_incl.entry(k).or_insert((0, f)).0 += *n;
                }
            }
        }
    }
}

/// (top by self, top by inclusive, inclusive rows hidden as ubiquitous).
fn rank<K: Eq + std::hash::Hash>(
    selfs: &HashMap<K, u64>,
    incl: &HashMap<K, u64>,
    total: u64,
    ranking: Ranking,
    key: impl Fn(&K) -> HotKey,
    seen_in: impl Fn(&K) -> u64,
) -> (Vec<Hot>, Vec<Hot>, usize) {
    let top = ranking.top;
    let pct = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let row = |k: &K, inclusive: u64| {
        let n = selfs.get(k).copied().unwrap_or(0);
        Hot {
            self_pct: pct(n),
            inclusive_samples: inclusive,
            inclusive_pct: pct(inclusive),
            self_samples: n,
            key: key(k),
        }
    };
    // Keys are made only for the rows shown (and those tied with the last of them, so ties break
    // by name, deterministically).
    let cut = |sorted: &[(&K, u64)], top: usize| match sorted.get(top.saturating_sub(1)) {
        Some(&(_, n)) if top > 0 => sorted.partition_point(|(_, c)| *c >= n),
        _ => sorted.len().min(top),
    };
    let mut by_self: Vec<(&K, u64)> = selfs.iter().map(|(k, n)| (k, *n)).collect();
    by_self.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
    let mut self_rows: Vec<Hot> = by_self[..cut(&by_self, top)]
        .iter()
        .map(|(k, _)| row(k, incl.get(*k).copied().unwrap_or(0)))
        .collect();
    self_rows.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then_with(|| a.key.tie_order(&b.key))
    });
    self_rows.truncate(top);

    let ubiquitous = |k: &K, n: u64| n as f64 >= seen_in(k) as f64 * UBIQUITOUS_SHARE;
    let mut by_incl: Vec<(&K, u64)> = incl.iter().map(|(k, n)| (k, *n)).collect();
    by_incl.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
    let mut hidden = 0;
    let mut incl_rows: Vec<Hot> = Vec::new();
    let mut shown = 0;
    // Rows past the ubiquitous ones: take keys until `top` rows remain after hiding.
    for (k, n) in &by_incl {
        if shown >= top
            && incl_rows
                .last()
                .is_some_and(|r: &Hot| r.inclusive_samples > *n)
        {
            break;
        }
        let r = row(k, *n);
        if !ranking.all_frames && !r.key.user && ubiquitous(k, *n) {
            hidden += 1;
            continue;
        }
        shown += 1;
        incl_rows.push(r);
    }
    incl_rows.sort_by(|a, b| {
        b.inclusive_samples
            .cmp(&a.inclusive_samples)
            .then_with(|| a.key.tie_order(&b.key))
    });
    incl_rows.truncate(top);
    (self_rows, incl_rows, hidden)
}
