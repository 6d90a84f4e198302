//! What limits the analysis, typed: views word them (the report as warnings, the cockpit as notes).

use crate::model::Model;
use crate::symbols::Symbols;

/// Stacks this short are what frame-pointer unwinding gives for code without frame pointers; a
/// Tokio worker's stack with them is 20 frames or more.
pub const SHALLOW_FRAMES: u32 = 4;

/// Below this many samples the shallow-stack share says too little to warn.
const SHALLOW_MIN_SAMPLES: usize = 20;

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
    /// Most samples have a few frames only: the target was built without frame pointers.
    ShallowStacks { share: f64 },
    /// Records the kernel or the recorder could not deliver.
    LostRecords { lost: u64, share: f64 },
    /// No thread ran a Tokio runtime, judged by the stacks.
    NoRuntimeThreads,
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
                 --debug-dir), or record with --embed-binaries so the capture carries it",
                percent(*share)
            ),
            Diagnostic::Symbols(text) => write!(f, "{text}"),
            Diagnostic::ShallowStacks { share } => write!(
                f,
                "{:.0} % of samples have {SHALLOW_FRAMES} frames or fewer: the target looks built \
                 without frame pointers, so callers (and the blame for blocking) are missing; \
                 rebuild it with RUSTFLAGS=-Cforce-frame-pointers=yes",
                share * 100.0
            ),
            Diagnostic::LostRecords { lost, share } => write!(
                f,
                "{lost} records were lost ({} of all): counts and times are low by about that \
                 much; record with a larger --buffer-mib",
                percent(*share)
            ),
            Diagnostic::NoRuntimeThreads => write!(
                f,
                "no Tokio runtime thread found in the stacks (no worker, no current_thread \
                 runtime): is this a Tokio program, and were its stacks readable?"
            ),
        }
    }
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
    let (shallow, with_stack) = model.shallow_samples(SHALLOW_FRAMES);
    if with_stack >= SHALLOW_MIN_SAMPLES && shallow * 2 > with_stack {
        out.push(Diagnostic::ShallowStacks {
            share: shallow as f64 / with_stack as f64,
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
        out.push(Diagnostic::NoRuntimeThreads);
    }
    out
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
