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
    /// Samples of the threads this row's frame ran on: what "ubiquitous" is judged against.
    pub seen_in: u64,
}

/// Library frames in at least this share of a table's samples (thread start, catch_unwind, the
/// runtime's run loop) say nothing: inclusive tables leave them out unless asked for all frames,
/// as they leave out the runtime's plumbing whatever its share
/// ([`crate::analysis::frames::is_plumbing`]).
pub const UBIQUITOUS_SHARE: f64 = 0.95;

/// How tables are cut.
#[derive(Clone, Copy, Debug)]
pub struct Ranking {
    /// Rows per table.
    pub top: usize,
    /// Keep ubiquitous library frames in inclusive tables.
    pub all_frames: bool,
}

impl Ranking {
    /// Every row of every table: what can be merged with other tables exactly.
    pub const EVERY_ROW: Ranking = Ranking {
        top: usize::MAX,
        all_frames: true,
    };

    /// No table rows: only the samples per stack are counted (what `diff` and flame graphs
    /// read), which skips the walk of every frame of every stack.
    pub const NO_ROWS: Ranking = Ranking {
        top: 0,
        all_frames: false,
    };
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
    /// Inclusive count, the frame (for its key), and the threads it ran on (bit `i % 64` for the
    /// `i`-th thread; only kept for the overall counts).
    fn_incl: HashMap<usize, (u64, &'a Frame, u64)>,
    line_self: HashMap<LineKey, u64>,
    line_incl: HashMap<LineKey, (u64, &'a Frame, u64)>,
}

impl<'a> Counts<'a> {
    fn merge(&mut self, other: Counts<'a>) {
        self.samples += other.samples;
        for (k, n) in other.fn_self {
            *self.fn_self.entry(k).or_default() += n;
        }
        for (k, (n, frame, mask)) in other.fn_incl {
            let e = self.fn_incl.entry(k).or_insert((0, frame, 0));
            e.0 += n;
            e.2 |= mask;
        }
        for (k, n) in other.line_self {
            *self.line_self.entry(k).or_default() += n;
        }
        for (k, (n, frame, mask)) in other.line_incl {
            let e = self.line_incl.entry(k).or_insert((0, frame, 0));
            e.0 += n;
            e.2 |= mask;
        }
    }

    /// The tables; `bit_samples` gives the samples of the threads of each mask bit, so a key's
    /// threads' samples (the denominator of "present in almost every sample") are known; `None`
    /// for one thread's counts, whose own total is the denominator.
    fn hotspots(
        &self,
        ranking: Ranking,
        cls: &Classifier,
        bit_samples: Option<&[u64; 64]>,
    ) -> Hotspots {
        let total = self.samples;
        let fn_key = |k: &usize| HotKey::of(self.fn_incl[k].1, false, cls);
        let line_key = |k: &LineKey| HotKey::of(self.line_incl[k].1, true, cls);
        let fn_incl: HashMap<usize, u64> = self.fn_incl.iter().map(|(k, v)| (*k, v.0)).collect();
        let line_incl: HashMap<LineKey, u64> =
            self.line_incl.iter().map(|(k, v)| (*k, v.0)).collect();
        let threads_samples = |mask: u64| match bit_samples {
            Some(bits) => (0..64)
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| bits[b])
                .sum(),
            None => total,
        };
        let fn_den = |k: &usize| threads_samples(self.fn_incl[k].2);
        let line_den = |k: &LineKey| threads_samples(self.line_incl[k].2);
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

/// A row's identity by interned pointers: (function, file, line or `u32::MAX`).
type RowId = (usize, usize, u32);

impl Hotspots {
    /// The tables of two sets of disjoint samples as one (a live view's forgotten time and its
    /// window of detail). Exact when both were ranked with every row
    /// (`top: usize::MAX, all_frames: true`).
    pub fn merged(&self, other: &Hotspots, ranking: Ranking) -> Hotspots {
        let total = self.samples + other.samples;
        let mut out = Hotspots {
            samples: total,
            ..Hotspots::default()
        };
        for line in [false, true] {
            let mut rows: HashMap<RowId, (HotKey, u64, u64, u64)> = HashMap::default();
            for h in [self, other] {
                for (k, v) in h.rows(line) {
                    let e = rows.entry(k).or_insert((v.0, 0, 0, 0));
                    e.1 += v.1;
                    e.2 += v.2;
                    e.3 += v.3;
                }
            }
            let selfs: HashMap<RowId, u64> = rows
                .iter()
                .filter(|(_, v)| v.1 > 0)
                .map(|(k, v)| (*k, v.1))
                .collect();
            let incl: HashMap<RowId, u64> = rows.iter().map(|(k, v)| (*k, v.2)).collect();
            let (by_self, by_incl, hidden) = rank(
                &selfs,
                &incl,
                total,
                ranking,
                |k| rows[k].0.clone(),
                |k| rows[k].3,
            );
            out.hidden_frames += hidden;
            if line {
                (out.by_line, out.by_line_inclusive) = (by_self, by_incl);
            } else {
                (out.by_function, out.by_function_inclusive) = (by_self, by_incl);
            }
        }
        out
    }

    /// Every row of the function or line tables: key, self, inclusive, seen-in samples.
    fn rows(&self, line: bool) -> HashMap<RowId, (HotKey, u64, u64, u64)> {
        let (selfs, incl) = if line {
            (&self.by_line, &self.by_line_inclusive)
        } else {
            (&self.by_function, &self.by_function_inclusive)
        };
        let mut rows = HashMap::default();
        for h in selfs.iter().chain(incl) {
            let k = &h.key;
            let row_id = (
                id(&k.function),
                k.file.as_ref().map_or(0, id),
                k.line.unwrap_or(u32::MAX),
            );
            rows.insert(
                row_id,
                (k.clone(), h.self_samples, h.inclusive_samples, h.seen_in),
            );
        }
        rows
    }
}

/// Hotspots of the samples in `[from, to)`: overall, and per thread of `threads`; and the
/// overall samples per stack id (for flame graphs), sorted by stack id.
pub struct WindowHotspots {
    pub overall: Hotspots,
    pub per_thread: Vec<Hotspots>,
    pub per_stack: Vec<(u32, u64)>,
}

/// Counts the window's samples in one pass over their distinct stacks: overall, and per thread
/// of `threads`. The overall counts note which threads each frame ran on (a bit per thread), so
/// that a library frame is judged ubiquitous against the threads it runs on: the runtime's loop
/// is in every sample of a worker, not of the process. With more than 64 threads, threads share
/// bits, which only makes a frame look less ubiquitous (never hides one wrongly).
pub fn in_window(
    model: &Model,
    symbols: &Symbols,
    threads: &[u32],
    from: u64,
    to: u64,
    ranking: Ranking,
) -> WindowHotspots {
    let cls = Classifier::default();
    let group: HashMap<u32, usize> = threads
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, i + 1))
        .collect();
    // Samples per (stack, thread index).
    let mut per_stack: HashMap<(u32, u32), u64> = HashMap::default();
    let mut bit_samples = [0u64; 64];
    let mut thread_group: Vec<usize> = Vec::with_capacity(model.threads.len());
    for (i, &tid) in model.threads.keys().enumerate() {
        thread_group.push(group.get(&tid).copied().unwrap_or(0));
        let samples = model.samples_in(tid, from, to);
        bit_samples[i % 64] += samples.len() as u64;
        for s in samples {
            *per_stack.entry((s.stack, i as u32)).or_default() += 1;
        }
    }
    let mut rows: Vec<(u32, u32, u64)> =
        per_stack.into_iter().map(|((s, t), n)| (s, t, n)).collect();
    rows.par_sort_unstable();
    let stacks: Vec<&[(u32, u32, u64)]> = rows.chunk_by(|a, b| a.0 == b.0).collect();
    let per_stack_counts: Vec<(u32, u64)> = stacks
        .iter()
        .map(|rows| (rows[0].0, rows.iter().map(|r| r.2).sum()))
        .collect();
    if ranking.top == 0 {
        let samples = per_stack_counts.iter().map(|&(_, n)| n).sum();
        return WindowHotspots {
            overall: Hotspots {
                samples,
                ..Hotspots::default()
            },
            per_thread: (0..threads.len())
                .map(|i| Hotspots {
                    samples: group_samples(&rows, &thread_group, i + 1),
                    ..Hotspots::default()
                })
                .collect(),
            per_stack: per_stack_counts,
        };
    }
    let groups = threads.len();
    let empty = || Acc {
        overall: Counts::default(),
        groups: (0..groups).map(|_| Counts::default()).collect(),
        seen: Seen::default(),
    };
    // Each split of the work makes maps of its own that are merged afterwards: below a few
    // hundred stacks a split costs more than it saves (a live view asks four times a second).
    let acc = stacks
        .par_iter()
        .with_min_len(256)
        .fold(empty, |mut acc, rows| {
            let stack = rows[0].0;
            let total: u64 = rows.iter().map(|r| r.2).sum();
            let mask = rows.iter().fold(0u64, |m, r| m | 1 << (r.1 % 64));
            let mut targets: Vec<(&mut Counts, u64, u64)> = Vec::with_capacity(rows.len() + 1);
            targets.push((&mut acc.overall, total, mask));
            // Each thread belongs to at most one group: borrow each group once.
            let mut per_group: Vec<(usize, u64)> = rows
                .iter()
                .filter_map(|r| match thread_group[r.1 as usize] {
                    0 => None,
                    g => Some((g, r.2)),
                })
                .collect();
            per_group.sort_unstable();
            let mut rest = &mut acc.groups[..];
            let mut consumed = 0;
            for (g, n) in per_group {
                let (_, tail) = std::mem::take(&mut rest).split_at_mut(g - 1 - consumed);
                let (head, tail) = tail.split_first_mut().expect("group in range");
                targets.push((head, n, 0));
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
    WindowHotspots {
        overall: acc.overall.hotspots(ranking, &cls, Some(&bit_samples)),
        per_thread: acc
            .groups
            .iter()
            .map(|g| g.hotspots(ranking, &cls, None))
            .collect(),
        per_stack: per_stack_counts,
    }
}

/// Samples of the threads in group `group` (rows: stack, thread index, samples).
fn group_samples(rows: &[(u32, u32, u64)], thread_group: &[usize], group: usize) -> u64 {
    rows.iter()
        .filter(|r| thread_group[r.1 as usize] == group)
        .map(|r| r.2)
        .sum()
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
    targets: &mut [(&mut Counts<'a>, u64, u64)],
    seen: &mut Seen,
) {
    for (c, n, _) in targets.iter_mut() {
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
                for (c, n, _) in targets.iter_mut() {
                    *c.line_self.entry(k).or_default() += *n;
                }
            }
            first = false;
        }
        // Self time goes to the function whose code runs: the symbol the leaf's inline chain
        // ends in, as perf counts it.
        if !symbol_done && !f.inlined {
            for (c, n, _) in targets.iter_mut() {
                *c.fn_self.entry(fid).or_default() += *n;
            }
            symbol_done = true;
        }
        if seen.functions.insert(fid) {
            for (c, n, mask) in targets.iter_mut() {
                let e = c.fn_incl.entry(fid).or_insert((0, f, 0));
                e.0 += *n;
                e.2 |= *mask;
            }
        }
        if let Some(k) = line {
            if seen.lines.insert(k) {
                for (c, n, mask) in targets.iter_mut() {
                    let e = c.line_incl.entry(k).or_insert((0, f, 0));
                    e.0 += *n;
                    e.2 |= *mask;
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
            seen_in: seen_in(k),
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
        // The runtime's plumbing, by what it is: a thread that also runs outside tasks keeps
        // `catch_unwind` and `Harness::poll` under the ubiquity share, yet they say nothing.
        if !ranking.all_frames
            && !r.key.user
            && (ubiquitous(k, *n) || crate::analysis::frames::is_plumbing(&r.key.function))
        {
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
