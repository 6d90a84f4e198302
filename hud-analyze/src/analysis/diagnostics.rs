//! What limits the analysis, typed: views word them (the report as warnings, the cockpit as notes).

use std::collections::HashMap;

use crate::model::{Model, Shallow};
use crate::symbols::Symbols;

/// Stacks this short are what frame-pointer unwinding gives for code without frame pointers; a
/// Tokio worker's stack with them is 20 frames or more.
pub const SHALLOW_FRAMES: u32 = 4;

/// Below this many stacks (samples and off-CPU episodes) the shallow share says too little to
/// warn. A service built without frame pointers that sleeps more than it computes still has
/// thousands of off-CPU stacks; a handful is not enough to judge.
const SHALLOW_MIN_STACKS: usize = 8;

#[derive(Clone, Debug, PartialEq)]
pub enum Diagnostic {
    /// The capture itself: cut, not closed cleanly, chunks missing.
    Capture(String),
    /// The target's executable has no DWARF: no file:line for the blame.
    TargetWithoutDebugInfo { path: String, share: f64 },
    /// An object was not found anywhere: its addresses stay unnamed.
    ObjectNotFound { path: String, share: f64 },
    /// A library's file found has another build-id (the target's own mismatch is an error).
    Symbols(String),
    /// Most stacks have a few frames only; `stopper` is where most of them end.
    ShallowStacks {
        share: f64,
        stopper: Option<Stopper>,
    },
    /// Records the kernel or the recorder could not deliver.
    LostRecords { lost: u64, share: f64 },
    /// No thread ran a Tokio runtime, judged by the stacks; `named_like_workers` threads have
    /// Tokio's default worker name all the same (their stacks are too shallow to show it).
    NoRuntimeThreads { named_like_workers: usize },
}

/// Why most stacks are shallow.
#[derive(Clone, Debug, PartialEq)]
pub enum Stopper {
    /// The target's code sets up no frame pointers (`share` of its functions do, read from its
    /// bytes): rebuilding it with them helps.
    TargetWithout { share: f64 },
    /// The target has frame pointers; most shallow stacks stop in `function` of a library (the
    /// innermost frame), which uses the frame-pointer register for other work: rebuilding the
    /// target does not help.
    Library {
        function: String,
        object: String,
        /// Of the shallow stacks, the share that stops there.
        share: f64,
    },
}

impl Diagnostic {
    /// Whether it concerns the capture's integrity (shown with the capture) rather than the
    /// analysis' quality (shown as a warning).
    pub fn is_capture_notice(&self) -> bool {
        matches!(self, Diagnostic::Capture(_))
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Diagnostic::Capture(notice) => write!(f, "{notice}"),
            Diagnostic::TargetWithoutDebugInfo { path, share } => write!(
                f,
                "{path} has no debug info ({} of code addresses have no file:line): build it with \
                 `debug = true` (or \"line-tables-only\") in the release profile and \
                 RUSTFLAGS=-Cforce-frame-pointers=yes",
                percent(*share)
            ),
            Diagnostic::ObjectNotFound { path, share } => write!(
                f,
                "{path} not found ({} of code addresses unnamed): pass --binary PATH (or \
                 --debug-dir), set DEBUGINFOD_URLS to a debuginfod server that has it, or record \
                 with --embed-binaries so the capture carries it",
                percent(*share)
            ),
            Diagnostic::Symbols(text) => write!(f, "{text}"),
            Diagnostic::ShallowStacks { share, stopper } => {
                write!(
                    f,
                    "{} of stacks (samples and off-CPU) have {SHALLOW_FRAMES} frames or fewer, so \
                     their callers (and the blame for blocking) are missing",
                    percent(*share)
                )?;
                match stopper {
                    Some(Stopper::Library {
                        function,
                        object,
                        share,
                    }) => write!(
                        f,
                        ": {} of them stop in {function} ({}), which uses the frame-pointer \
                         register for other work; the target has frame pointers, and rebuilding \
                         it does not help",
                        percent(*share),
                        short_path(object)
                    ),
                    Some(Stopper::TargetWithout { share }) => write!(
                        f,
                        ": the target is built without frame pointers (only {} of its functions \
                         set one up), and no stack copy reached its callers (the verdict says \
                         why and what to record with); rebuilding it with \
                         RUSTFLAGS=-Cforce-frame-pointers=yes helps too",
                        percent(*share)
                    ),
                    None => write!(
                        f,
                        ": the target looks built without frame pointers, and no stack copy \
                         reached its callers (the verdict says why and what to record with); \
                         rebuilding it with RUSTFLAGS=-Cforce-frame-pointers=yes helps too"
                    ),
                }
            }
            Diagnostic::LostRecords { lost, share } => write!(
                f,
                "{lost} records were lost ({} of all): counts and times are low by about that \
                 much; record with a larger --buffer-mib",
                percent(*share)
            ),
            Diagnostic::NoRuntimeThreads {
                named_like_workers: 0,
            } => write!(
                f,
                "no Tokio runtime thread found in the stacks (no worker, no current_thread \
                 runtime): is this a Tokio program? (The verdict says how much of its stacks could be \
                 read.)"
            ),
            Diagnostic::NoRuntimeThreads { named_like_workers } => write!(
                f,
                "{named_like_workers} threads are named like Tokio workers, but no stack shows \
                 the runtime (too shallow to reach it): blocking cannot be judged, and finding \
                 none means nothing"
            ),
        }
    }
}

/// A library's file name (`libc.so.6`), the rest of the path being noise in a sentence.
fn short_path(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A share (0..1) for a sentence: "12 %", or "0.4 %" below one percent, so a small share never
/// reads "0 %".
pub fn percent(share: f64) -> String {
    let pct = share * 100.0;
    if pct < 1.0 {
        format!("{pct:.1} %")
    } else {
        format!("{pct:.0} %")
    }
}

/// Everything that limits this analysis, capture notices first.
pub fn diagnose(model: &Model, symbols: &Symbols) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = model
        .notices
        .iter()
        .cloned()
        .map(Diagnostic::Capture)
        .collect();
    out.extend(symbols.warnings.iter().cloned().map(Diagnostic::Symbols));
    let addresses: usize = symbols.objects.iter().map(|o| o.addresses).sum();
    for o in symbols
        .objects
        .iter()
        .filter(|o| o.addresses > 0 && !o.has_debug_info)
    {
        let share = o.addresses as f64 / addresses.max(1) as f64;
        if o.source == "not found" {
            // Deleted, or recorded on another machine: not a build without debug info.
            out.push(Diagnostic::ObjectNotFound {
                path: o.path.clone(),
                share,
            });
        } else if o.path == model.header.target.exe_path {
            out.push(Diagnostic::TargetWithoutDebugInfo {
                path: o.path.clone(),
                share,
            });
        }
    }
    let shallow = model.shallow_stacks(SHALLOW_FRAMES);
    if shallow.all >= SHALLOW_MIN_STACKS && shallow.shallow * 2 > shallow.all {
        out.push(Diagnostic::ShallowStacks {
            share: shallow.shallow as f64 / shallow.all as f64,
            stopper: stopper(model, symbols, &shallow),
        });
    }
    let lost = model.lost_records();
    if lost > 0 {
        let recorded: u64 = model.threads.values().map(|t| t.switches()).sum::<u64>()
            + model.samples.len() as u64
            + model.off_cpu.len() as u64;
        out.push(Diagnostic::LostRecords {
            lost,
            share: lost as f64 / lost.saturating_add(recorded).max(1) as f64,
        });
    }
    let switches: u64 = model.threads.values().map(|t| t.switches()).sum();
    if switches == 0 && model.samples.is_empty() && model.off_cpu.is_empty() {
        out.push(Diagnostic::Capture(
            "the capture holds no events: the target never ran on a CPU while it was recorded \
             (idle, or stopped), or the recording was stopped at once"
                .into(),
        ));
    }
    let any_events = !model.samples.is_empty() || !model.off_cpu.is_empty();
    if any_events && !model.threads.values().any(|t| t.role.runs_tasks()) {
        let named_like_workers = model
            .threads
            .values()
            .filter(|t| t.name().starts_with(TOKIO_WORKER_NAME))
            .count();
        out.push(Diagnostic::NoRuntimeThreads { named_like_workers });
    }
    out
}

/// The name Tokio gives its worker threads unless told otherwise.
const TOKIO_WORKER_NAME: &str = "tokio-runtime-w";

use hud_format::elf::frame_pointers::WITH_FRAME_POINTERS;

/// Why most stacks are shallow: the target's own code (when its bytes say it has no frame
/// pointers), or else the library function where most shallow stacks stop (their innermost
/// frame: its code used the frame-pointer register, so the walk could not leave it).
fn stopper(model: &Model, symbols: &Symbols, shallow: &Shallow) -> Option<Stopper> {
    let target = symbols
        .objects
        .iter()
        .find(|o| o.path == model.header.target.exe_path);
    if let Some(share) = target.and_then(|t| t.frame_pointers) {
        if share < WITH_FRAME_POINTERS {
            return Some(Stopper::TargetWithout { share });
        }
    }
    let mut stops: HashMap<(u32, &str), usize> = HashMap::new();
    for (&stack, &count) in &shallow.by_stack {
        if let Some(frame) = symbols.frames(model, stack).next() {
            *stops.entry((frame.object, &*frame.function)).or_default() += count;
        }
    }
    // The most frequent; ties broken by name so the sentence does not change from run to run.
    let ((object, function), count) = stops
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0 .1.cmp(a.0 .1)))?;
    let object = symbols.objects.get(object as usize)?;
    if object.path == model.header.target.exe_path {
        // Stopping in the target's own code, which has frame pointers as far as its bytes tell
        // (or they could not be read): no sentence beats the general one.
        return None;
    }
    Some(Stopper::Library {
        function: function.to_owned(),
        object: object.path.clone(),
        share: count as f64 / shallow.shallow.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_shares_never_read_zero() {
        assert_eq!(percent(0.004), "0.4 %");
        assert_eq!(percent(0.0), "0.0 %");
        assert_eq!(percent(0.123), "12 %");
        assert_eq!(percent(1.0), "100 %");
    }
}
