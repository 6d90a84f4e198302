//! CPU hotspots from samples: self and inclusive, by function and by file:line.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use rayon::prelude::*;
use std::sync::Arc;

use crate::model::Model;

use crate::symbolize::{interned_id as id, Symbols};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Hot {
    /// Function name, or "file:line" for line rows.
    pub name: String,
    pub self_samples: u64,
    pub self_pct: f64,
    pub inclusive_samples: u64,
    pub inclusive_pct: f64,
}

/// Self samples by function count the function whose machine code ran (the symbol, inlined
/// callees included, like perf); inclusive samples count every function in the stack, inlined
/// ones too. By line, self counts the innermost source line, inlined or not.
#[derive(Clone, Debug, Default, serde::Serialize)]
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
}

/// A line's identity: (file, function, line).
type LineKey = (usize, usize, u32);

/// Counts of one group of samples, keyed by interned pointers; names are made only for the rows
/// shown. Inclusive maps carry the names, so no frame pays for a separate name lookup.
#[derive(Default)]
struct Counts<'a> {
    samples: u64,
    fn_self: HashMap<usize, u64>,
    fn_incl: HashMap<usize, (u64, &'a Arc<str>)>,
    line_self: HashMap<LineKey, u64>,
    line_incl: HashMap<LineKey, (u64, &'a Arc<str>, &'a Arc<str>)>,
}

impl<'a> Counts<'a> {
    fn merge(&mut self, other: Counts<'a>) {
        self.samples += other.samples;
        for (k, n) in other.fn_self {
            *self.fn_self.entry(k).or_default() += n;
        }
        for (k, (n, name)) in other.fn_incl {
            self.fn_incl.entry(k).or_insert((0, name)).0 += n;
        }
        for (k, n) in other.line_self {
            *self.line_self.entry(k).or_default() += n;
        }
        for (k, (n, file, function)) in other.line_incl {
            self.line_incl.entry(k).or_insert((0, file, function)).0 += n;
        }
    }

    fn hotspots(&self, top: usize) -> Hotspots {
        let total = self.samples;
        let fn_incl: HashMap<usize, u64> = self.fn_incl.iter().map(|(k, v)| (*k, v.0)).collect();
        let line_incl: HashMap<LineKey, u64> =
            self.line_incl.iter().map(|(k, v)| (*k, v.0)).collect();
        let fn_name = |k: &usize| self.fn_incl[k].1.to_string();
        let line_name = |k: &LineKey| {
            let (_, file, function) = self.line_incl[k];
            format!("{}:{} ({function})", short_path(file), k.2)
        };
        let (by_function, by_function_inclusive) =
            rank(&self.fn_self, &fn_incl, total, top, fn_name);
        let (by_line, by_line_inclusive) = rank(&self.line_self, &line_incl, total, top, line_name);
        Hotspots {
            samples: total,
            by_function,
            by_function_inclusive,
            by_line,
            by_line_inclusive,
        }
    }
}

/// Hotspots overall (top `top`) and per thread of `threads` (top `top_each`), from one pass.
pub fn overall_and_per_thread(
    model: &Model,
    symbols: &Symbols,
    threads: &[u32],
    top: usize,
    top_each: usize,
) -> (Hotspots, Vec<Hotspots>) {
    let index: HashMap<u32, usize> = threads.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let (overall, groups) = grouped(
        model,
        symbols,
        |tid| index.get(&tid).map_or(0, |i| i + 1),
        threads.len(),
    );
    (
        overall.hotspots(top),
        groups.iter().map(|g| g.hotspots(top_each)).collect(),
    )
}

/// Counts overall, and per group 1..=`groups` of `group(tid)` (0: overall only). Each distinct
/// stack is walked once, on any thread of the pool; the walk's costs are per distinct stack, not
/// per sample.
fn grouped<'a>(
    model: &'a Model,
    symbols: &'a Symbols,
    group: impl Fn(u32) -> usize,
    groups: usize,
) -> (Counts<'a>, Vec<Counts<'a>>) {
    // Samples per (stack, group); samples are sorted by thread, so one group's runs are long.
    let mut per_stack: HashMap<(u32, usize), u64> = HashMap::default();
    let mut last: Option<(u32, usize)> = None;
    for s in &model.samples {
        let g = match last {
            Some((tid, g)) if tid == s.tid => g,
            _ => {
                let g = group(s.tid);
                last = Some((s.tid, g));
                g
            }
        };
        *per_stack.entry((s.stack, g)).or_default() += 1;
    }
    // Per distinct stack: its count per group (group 0 = overall only).
    let mut stacks: Vec<(u32, usize, u64)> =
        per_stack.into_iter().map(|((s, g), n)| (s, g, n)).collect();
    stacks.par_sort_unstable();
    let stacks: Vec<&[(u32, usize, u64)]> = stacks.chunk_by(|a, b| a.0 == b.0).collect();
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
    (acc.overall, acc.groups)
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
        let line = f.file.as_ref().map(|file| ((id(file), fid, f.line), file));
        if first {
            // The line shows the innermost source, inlined or not.
            if let Some((k, _)) = line {
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
                c.fn_incl.entry(fid).or_insert((0, &f.function)).0 += *n;
            }
        }
        if let Some((k, file)) = line {
            if seen.lines.insert(k) {
                for (c, n) in targets.iter_mut() {
                    c.line_incl.entry(k).or_insert((0, file, &f.function)).0 += *n;
                }
            }
        }
    }
}

/// (top by self, top by inclusive).
fn rank<K: Eq + std::hash::Hash>(
    selfs: &HashMap<K, u64>,
    incl: &HashMap<K, u64>,
    total: u64,
    top: usize,
    name: impl Fn(&K) -> String,
) -> (Vec<Hot>, Vec<Hot>) {
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
            name: name(k),
        }
    };
    // Pick the top keys by count first; build names only for them.
    let mut by_self: Vec<(&K, u64)> = selfs.iter().map(|(k, n)| (k, *n)).collect();
    by_self.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
    // Keep every key tied with the last row shown, so ties break by name, deterministically.
    let cut = |sorted: &[(&K, u64)]| match sorted.get(top.saturating_sub(1)) {
        Some(&(_, n)) if top > 0 => sorted.partition_point(|(_, c)| *c >= n),
        _ => sorted.len().min(top),
    };
    let mut self_rows: Vec<Hot> = by_self[..cut(&by_self)]
        .iter()
        .map(|(k, _)| row(k, incl.get(*k).copied().unwrap_or(0)))
        .collect();
    self_rows.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then_with(|| a.name.cmp(&b.name))
    });
    self_rows.truncate(top);
    let mut by_incl: Vec<(&K, u64)> = incl.iter().map(|(k, n)| (k, *n)).collect();
    by_incl.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
    let mut incl_rows: Vec<Hot> = by_incl[..cut(&by_incl)]
        .iter()
        .map(|(k, n)| row(k, *n))
        .collect();
    incl_rows.sort_by(|a, b| {
        b.inclusive_samples
            .cmp(&a.inclusive_samples)
            .then_with(|| a.name.cmp(&b.name))
    });
    incl_rows.truncate(top);
    (self_rows, incl_rows)
}

/// Shortens a source path to its crate-relative part: ".../demo/src/main.rs:12" → "demo/src/main.rs:12".
pub fn short_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    if let Some(src) = parts.iter().rposition(|p| *p == "src") {
        if src >= 1 {
            return parts[src - 1..].join("/");
        }
    }
    parts[parts.len().saturating_sub(3)..].join("/")
}
