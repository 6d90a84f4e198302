//! CPU hotspots from samples: self and inclusive, by function and by file:line.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::model::Model;
use std::sync::Arc;

use crate::symbolize::Symbols;

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

/// Identity of an interned string (see `Symbols::intern`).
fn id(s: &Arc<str>) -> usize {
    Arc::as_ptr(s) as *const u8 as usize
}

/// Hotspots over the samples for which `keep(tid)` holds.
pub fn hotspots(
    model: &Model,
    symbols: &Symbols,
    keep: impl Fn(u32) -> bool,
    top: usize,
) -> Hotspots {
    // Count samples per stack first: the work below is per distinct stack, not per sample.
    let mut per_stack: HashMap<u32, u64> = HashMap::default();
    for s in model.samples.iter().filter(|s| keep(s.tid)) {
        *per_stack.entry(s.stack).or_default() += 1;
    }
    let total: u64 = per_stack.values().sum();
    // Keyed by interned pointers; names are made only for the rows shown.
    let mut fn_self: HashMap<usize, u64> = HashMap::default();
    let mut fn_incl: HashMap<usize, u64> = HashMap::default();
    let mut line_self: HashMap<(usize, usize, u32), u64> = HashMap::default();
    let mut line_incl: HashMap<(usize, usize, u32), u64> = HashMap::default();
    let mut names: HashMap<usize, &Arc<str>> = HashMap::default();
    let mut seen_fn = HashSet::default();
    let mut seen_line = HashSet::default();
    for (stack, n) in per_stack {
        seen_fn.clear();
        seen_line.clear();
        let mut first = true;
        let mut symbol_done = false;
        for f in symbols.frames(model, stack) {
            let fid = id(&f.function);
            names.entry(fid).or_insert(&f.function);
            let line_key = f.file.as_ref().map(|file| {
                names.entry(id(file)).or_insert(file);
                (id(file), fid, f.line)
            });
            if first {
                // The line shows the innermost source, inlined or not.
                if let Some(k) = line_key {
                    *line_self.entry(k).or_default() += n;
                }
                first = false;
            }
            // Self time goes to the function whose code runs: the symbol the leaf's inline chain
            // ends in, as perf counts it.
            if !symbol_done && !f.inlined {
                *fn_self.entry(fid).or_default() += n;
                symbol_done = true;
            }
            if seen_fn.insert(fid) {
                *fn_incl.entry(fid).or_default() += n;
            }
            if let Some(k) = line_key {
                if seen_line.insert(k) {
                    *line_incl.entry(k).or_default() += n;
                }
            }
        }
    }
    let fn_name = |fid: &usize| names[fid].to_string();
    let line_name = |k: &(usize, usize, u32)| {
        format!("{}:{} ({})", short_path(&names[&k.0][..]), k.2, names[&k.1])
    };
    let (by_function, by_function_inclusive) = rank(&fn_self, &fn_incl, total, top, fn_name);
    let (by_line, by_line_inclusive) = rank(&line_self, &line_incl, total, top, line_name);
    Hotspots {
        samples: total,
        by_function,
        by_function_inclusive,
        by_line,
        by_line_inclusive,
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
