//! Folded stacks: one line per distinct stack, outermost frame first, `;`-separated, then its
//! weight (samples, or microseconds blocked).

use std::io::{BufWriter, Write};

use rayon::prelude::*;

use super::{folded_value, root_of, ExportOptions, Written};
use crate::analysis::profile::stack_weights;
use crate::analysis::Analysis;

/// The folded lines (without their weights) and their weights, sorted and merged (equal stacks
/// of different threads add up), and how many weights went in. Lines are built and sorted in
/// parallel: a large service has 100 k distinct stacks of 60 frames.
pub fn lines(a: &Analysis, options: &ExportOptions) -> (Vec<(String, u64)>, u64) {
    let w = options.window;
    let weights = stack_weights(
        &a.model,
        options.weight,
        options.threads.as_deref(),
        w.from,
        w.to,
    );
    let mut lines: Vec<(String, u64)> = weights
        .par_iter()
        .filter_map(|sw| {
            let value = folded_value(options.weight, sw.weight);
            (value > 0).then(|| (stack_line(a, options, sw.tid, sw.task, sw.stack), value))
        })
        .collect();
    let events = lines.len() as u64;
    lines.par_sort_unstable_by(|x, y| x.0.cmp(&y.0));
    lines.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
    (lines, events)
}

/// One stack of thread `tid` in Tokio task `task` (0: none known) as a folded line (without its
/// weight): outermost frame first, inline frames as frames, `;` inside a name (`[u8; 4]`) as
/// `:`.
pub fn stack_line(
    a: &Analysis,
    options: &ExportOptions,
    tid: u32,
    task: u64,
    stack: u32,
) -> String {
    let frames: Vec<&str> = a
        .symbols
        .frames(&a.model, stack)
        .map(|f| &*f.function)
        .collect();
    let root = root_of(a, options.root, tid, task);
    let mut line = String::with_capacity(frames.iter().map(|f| f.len() + 1).sum::<usize>() + 32);
    let mut push = |name: &str| {
        if !line.is_empty() {
            line.push(';');
        }
        if name.contains(';') {
            line.push_str(&name.replace(';', ":"));
        } else {
            line.push_str(name);
        }
    };
    if let Some(root) = &root {
        push(root);
    }
    if frames.is_empty() {
        push("[no stack]");
    }
    for f in frames.iter().rev() {
        push(f);
    }
    line
}

pub fn write(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    let (lines, events) = lines(a, options);
    let mut out = BufWriter::new(out);
    let mut digits = itoa::Buffer::new();
    for (line, value) in &lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b" ")?;
        out.write_all(digits.format(*value).as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(Written { events })
}
