//! CPU hotspots from samples: self and inclusive, by function and by file:line.

use std::collections::{HashMap, HashSet};

use crate::model::Model;
use crate::symbolize::{Frame, Symbols};

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

/// Hotspots over the samples for which `keep(tid)` holds.
pub fn hotspots(
    model: &Model,
    symbols: &Symbols,
    keep: impl Fn(u32) -> bool,
    top: usize,
) -> Hotspots {
    let mut cache: HashMap<u32, Vec<Frame>> = HashMap::new();
    let mut fn_self: HashMap<String, u64> = HashMap::new();
    let mut fn_incl: HashMap<String, u64> = HashMap::new();
    let mut line_self: HashMap<String, u64> = HashMap::new();
    let mut line_incl: HashMap<String, u64> = HashMap::new();
    let mut total = 0u64;
    for s in model.samples.iter().filter(|s| keep(s.tid)) {
        total += 1;
        let frames = cache
            .entry(s.stack)
            .or_insert_with(|| symbols.stack(model, s.stack));
        if let Some(leaf) = frames.first() {
            // Self time goes to the function whose code is running: the symbol the leaf's inline
            // chain ends in (as perf counts it); the line shows the innermost inlined source.
            let symbol = frames.iter().find(|f| !f.inlined).unwrap_or(leaf);
            *fn_self.entry(symbol.function.to_string()).or_default() += 1;
            if let Some(loc) = leaf.location() {
                *line_self
                    .entry(format!("{} ({})", short_path(&loc), leaf.function))
                    .or_default() += 1;
            }
        }
        let mut seen_fn = HashSet::new();
        let mut seen_line = HashSet::new();
        for f in frames.iter() {
            if seen_fn.insert(&f.function) {
                *fn_incl.entry(f.function.to_string()).or_default() += 1;
            }
            if let Some(loc) = f.location() {
                let key = format!("{} ({})", short_path(&loc), f.function);
                if seen_line.insert(key.clone()) {
                    *line_incl.entry(key).or_default() += 1;
                }
            }
        }
    }
    let (by_function, by_function_inclusive) = rank(&fn_self, &fn_incl, total, top);
    let (by_line, by_line_inclusive) = rank(&line_self, &line_incl, total, top);
    Hotspots {
        samples: total,
        by_function,
        by_function_inclusive,
        by_line,
        by_line_inclusive,
    }
}

/// (top by self, top by inclusive).
fn rank(
    selfs: &HashMap<String, u64>,
    incl: &HashMap<String, u64>,
    total: u64,
    top: usize,
) -> (Vec<Hot>, Vec<Hot>) {
    let pct = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let rows: Vec<Hot> = incl
        .iter()
        .map(|(name, &inclusive)| {
            let n = selfs.get(name).copied().unwrap_or(0);
            Hot {
                self_pct: pct(n),
                inclusive_samples: inclusive,
                inclusive_pct: pct(inclusive),
                self_samples: n,
                name: name.clone(),
            }
        })
        .collect();
    let mut by_self: Vec<Hot> = rows
        .iter()
        .filter(|r| r.self_samples > 0)
        .cloned()
        .collect();
    by_self.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then_with(|| a.name.cmp(&b.name))
    });
    by_self.truncate(top);
    let mut by_incl = rows;
    by_incl.sort_by(|a, b| {
        b.inclusive_samples
            .cmp(&a.inclusive_samples)
            .then_with(|| a.name.cmp(&b.name))
    });
    by_incl.truncate(top);
    (by_self, by_incl)
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
