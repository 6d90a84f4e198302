//! Folded stacks: one line per distinct stack, outermost frame first, `;`-separated, then its
//! weight (samples, or microseconds blocked).

use std::collections::BTreeMap;
use std::io::Write;

use super::{folded_name, folded_value, root_of, ExportOptions, Written};
use crate::analysis::profile::stack_weights;
use crate::analysis::Analysis;

/// The folded lines and their weights, sorted (so equal stacks are merged and the output is
/// deterministic).
pub fn lines(a: &Analysis, options: &ExportOptions) -> (BTreeMap<String, u64>, u64) {
    let w = options.window;
    let weights = stack_weights(
        &a.model,
        options.weight,
        options.threads.as_deref(),
        w.from,
        w.to,
    );
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    let mut events = 0;
    for sw in weights {
        let value = folded_value(options.weight, sw.weight);
        if value == 0 {
            continue;
        }
        events += 1;
        *lines
            .entry(stack_line(a, options, sw.tid, sw.stack))
            .or_default() += value;
    }
    (lines, events)
}

/// One stack as a folded line (without its weight).
pub fn stack_line(a: &Analysis, options: &ExportOptions, tid: u32, stack: u32) -> String {
    let mut frames: Vec<String> = a.symbols.frames(&a.model, stack).map(folded_name).collect();
    if frames.is_empty() {
        frames.push("[no stack]".into());
    }
    frames.extend(root_of(a, options.root, tid));
    frames.reverse();
    frames.join(";")
}

pub fn write(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    let (lines, events) = lines(a, options);
    for (line, value) in &lines {
        writeln!(out, "{line} {value}")?;
    }
    Ok(Written { events })
}
