//! Folded stacks: one line per distinct stack, outermost frame first, `;`-separated, then its
//! weight (samples, or microseconds blocked). The runtime's plumbing (thread start,
//! `catch_unwind`, Tokio's scheduler and harness: some 40 frames under every frame of a task) is
//! folded into one frame per role, `[tokio worker]`, `[current_thread runtime]`,
//! `[blocking pool]`, `[thread start]`, unless `--all-frames`; weights are the same either way.

use std::io::{BufWriter, Write};

use rayon::prelude::*;

use super::{folded_value, root_of, ExportOptions, Written};
use crate::analysis::frames::{is_plumbing, is_task_poll};
use crate::analysis::profile::stack_weights;
use crate::analysis::Analysis;
use crate::model::Role;
use crate::symbols::{interned_id, Frame};

/// Per interned function name: (is plumbing, is a task's poll). One per worker thread: the
/// string matching is the costly part of folding 100 k stacks of 60 frames.
pub type PlumbingCache = rustc_hash::FxHashMap<usize, (bool, bool)>;

fn facts(cache: &mut PlumbingCache, f: &Frame) -> (bool, bool) {
    *cache
        .entry(interned_id(&f.function))
        .or_insert_with(|| (is_plumbing(&f.function), is_task_poll(&f.function)))
}

/// How many of a stack's innermost frames a flame graph keeps: those inside the task's poll,
/// or, outside any poll, those inward of the plumbing the thread starts with. `None`: nothing
/// to fold.
pub fn kept_frames(frames: &[&Frame], cache: &mut PlumbingCache) -> Option<usize> {
    if let Some(mut poll) = frames.iter().position(|f| facts(cache, f).1) {
        // And the runtime's frames just inside it (a blocking task's poll, the coop budget).
        while poll > 0 && facts(cache, frames[poll - 1]).0 {
            poll -= 1;
        }
        return Some(poll);
    }
    let mut n = frames.len();
    while n > 0 && facts(cache, frames[n - 1]).0 {
        n -= 1;
    }
    (n < frames.len()).then_some(n)
}

/// The frame the plumbing of a thread in `role` folds into.
pub fn role_frame(role: Role) -> &'static str {
    match role {
        Role::Worker => "[tokio worker]",
        Role::CurrentThread => "[current_thread runtime]",
        Role::BlockingPool => "[blocking pool]",
        Role::Other => "[thread start]",
    }
}

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
        .map_init(PlumbingCache::default, |cache, sw| {
            let value = folded_value(options.weight, sw.weight);
            (value > 0).then(|| {
                let line = stack_line(a, options, (sw.tid, sw.task, sw.stack), cache);
                (line, value)
            })
        })
        .flatten()
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
/// `:`, the runtime's plumbing folded (unless `options.all_frames`).
pub fn stack_line(
    a: &Analysis,
    options: &ExportOptions,
    (tid, task, stack): (u32, u64, u32),
    cache: &mut PlumbingCache,
) -> String {
    let all: Vec<&Frame> = a.symbols.frames(&a.model, stack).collect();
    let kept = if options.all_frames {
        None
    } else {
        kept_frames(&all, cache)
    };
    let mut frames: Vec<&str> = all[..kept.unwrap_or(all.len())]
        .iter()
        .map(|f| &*f.function)
        .collect();
    if kept.is_some() {
        let role = a.model.threads.get(&tid).map_or(Role::Other, |t| t.role);
        frames.push(role_frame(role));
    }
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
