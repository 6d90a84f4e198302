//! How hud says things, in one place for every view: the verdict sentence, what a kind of
//! blocking is called, how a frame is marked, how a source location is shortened. The report,
//! the cockpit and the exports word a finding the same way because they call these.

use crate::analysis::frames::Kind;
use crate::analysis::{Analysis, Findings};
use crate::symbols::Recovered;
use crate::view::units::{ms, pct};

/// The verdict in one sentence.
pub fn verdict_sentence(a: &Analysis, findings: &Findings) -> String {
    let v = findings.verdict();
    let mut parts = Vec::new();
    match v.worst.map(|i| &findings.blockers[i]) {
        Some(worst) => {
            let n = findings.blockers.len();
            parts.push(format!(
                "{n} blocker{} of the runtime; worst: {:.1} ms {} in {}{}",
                if n == 1 { "" } else { "s" },
                ms(worst.max()),
                kind_phrase(worst.kind),
                worst.blame.function,
                worst
                    .blame
                    .file
                    .as_deref()
                    .and_then(|f| file_line(Some(f), worst.blame.line))
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ));
        }
        None if a.model.threads.values().any(|t| t.role.runs_tasks()) => {
            parts.push("nothing blocked a runtime thread past the thresholds".into())
        }
        None => parts.push("no Tokio runtime thread found, so nothing to judge".into()),
    }
    if let Some(share) = v.pressure {
        parts.push(format!(
            "runtime threads waited for a CPU {:.0} % of the time (CPU starved: too many \
             busy threads for the cores, or a CPU quota)",
            pct(share)
        ));
    }
    parts.join("; ")
}

/// How a kind reads in a sentence.
pub fn kind_phrase(kind: Kind) -> &'static str {
    match kind {
        Kind::Cpu => "long poll",
        Kind::Sleep => "sleep",
        Kind::Lock => "lock wait",
        Kind::Io => "blocking I/O",
        Kind::Dns => "DNS lookup",
        Kind::Other => "off-CPU wait",
    }
}

/// What a frame is besides a call: inlined into its caller, or put back where the walk missed it.
pub fn frame_marker(inlined: bool, recovered: Option<Recovered>) -> &'static str {
    match (inlined, recovered) {
        (_, Some(Recovered::TailCall)) => "(tail call) ",
        (_, Some(Recovered::LeafCaller)) => "(caller of leaf) ",
        (true, None) => "(inlined) ",
        (false, None) => "",
    }
}

/// "crate/src/file.rs:line" for a frame's file and line, when it has a file.
pub fn file_line(file: Option<&str>, line: u32) -> Option<String> {
    file.map(|f| format!("{}:{line}", short_path(f)))
}

/// Shortens a source path to its crate-relative part:
/// "/home/u/app/demo/src/main.rs" → "demo/src/main.rs"; without a `src` folder, the last three
/// components.
pub fn short_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    if let Some(src) = parts.iter().rposition(|p| *p == "src") {
        if src >= 1 {
            return parts[src - 1..].join("/");
        }
    }
    parts[parts.len().saturating_sub(3)..].join("/")
}

#[cfg(test)]
mod tests {
    use super::short_path;

    #[test]
    fn paths_keep_their_crate_and_what_follows_src() {
        assert_eq!(
            short_path("/w/testdata/demo/src/main.rs"),
            "demo/src/main.rs"
        );
        assert_eq!(
            short_path("/root/.cargo/registry/src/index.crates.io-1/tokio-1.0/src/rt/mod.rs"),
            "tokio-1.0/src/rt/mod.rs",
            "the innermost src wins"
        );
        assert_eq!(
            short_path("/usr/include/x86_64/bits/x.h"),
            "x86_64/bits/x.h"
        );
        assert_eq!(short_path("main.rs"), "main.rs");
        assert_eq!(short_path("src/lib.rs"), "src/lib.rs");
    }
}
