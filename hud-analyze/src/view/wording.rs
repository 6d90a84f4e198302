//! How hud says things, in one place for every view: the verdict sentence, what a kind of
//! blocking is called, how a frame is marked, how a source location is shortened. The report,
//! the cockpit and the exports word a finding the same way because they call these.

use crate::analysis::coverage::{Coverage, ThreadCoverage};
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
            // Named by its call: what to change, where.
            let at = worst
                .call
                .site
                .as_ref()
                .or(worst.call.callee.as_ref())
                .unwrap_or(&worst.blame);
            let what = call_label(worst);
            parts.push(format!(
                "{n} blocker{} of the runtime; worst: {:.1} ms {}: {what}{}",
                if n == 1 { "" } else { "s" },
                ms(worst.max()),
                kind_phrase(worst.kind),
                file_line(at.file.as_deref(), at.line)
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ));
        }
        None if findings.coverage.runtime_threads() > 0 && v.unjudged.is_none() => {
            parts.push("nothing blocked a runtime thread past the thresholds".into())
        }
        None if findings.coverage.threads.is_empty() => {
            parts.push("no Tokio runtime thread found in the stacks, so nothing was judged".into())
        }
        None => parts.push(unjudged_headline(&findings.coverage).into()),
    }
    if let Some(share) = v.pressure {
        parts.push(format!(
            "runtime threads waited for a CPU {:.0} % of the time (CPU starved: too many \
             busy threads for the cores, or a CPU quota)",
            pct(share)
        ));
    }
    if v.unjudged.is_some() {
        parts.push(unjudged_phrase(a, &findings.coverage));
        parts.push(format!("fix: {}", unjudged_fix(a)));
    }
    parts.join("; ")
}

/// What a verdict that found nothing says when too much could not be judged.
pub fn unjudged_headline(c: &Coverage) -> &'static str {
    if c.runtime_threads() > 0 {
        "nothing found, but that means little"
    } else {
        "no Tokio runtime thread found: the stacks were cut short before the runtime's frames, \
         so nothing was judged"
    }
}

/// "could not judge 40 % of the runtime threads' events (thread 12 tokio-runtime-w: 90 %, …)".
pub fn unjudged_phrase(a: &Analysis, c: &Coverage) -> String {
    let mut worst: Vec<&ThreadCoverage> = c.threads.iter().filter(|t| t.unreadable > 0).collect();
    worst.sort_by(|x, y| {
        y.unreadable_share()
            .total_cmp(&x.unreadable_share())
            .then(x.tid.cmp(&y.tid))
    });
    let named: Vec<String> = worst
        .iter()
        .take(3)
        .map(|t| {
            let name = a.model.threads.get(&t.tid).map(|x| x.name()).unwrap_or("");
            format!(
                "thread {} {name}: {:.0} %",
                t.tid,
                pct(t.unreadable_share())
            )
        })
        .collect();
    let more = worst.len().saturating_sub(named.len());
    let whose = if c.runtime_threads() == 0 {
        "the threads' events"
    } else {
        "the runtime threads' events"
    };
    let judged = c.threads.iter().filter(|t| !t.unjudged()).count();
    format!(
        "could not judge {:.0} % of {whose} ({}{}); {judged} of {} threads judged",
        pct(c.unjudged_share()),
        named.join(", "),
        if more > 0 {
            format!(", {more} more")
        } else {
            String::new()
        },
        c.threads.len()
    )
}

/// What would let the next recording judge what this one could not, from what the capture says
/// about how its stacks were taken.
pub fn unjudged_fix(a: &Analysis) -> String {
    let m = &a.model;
    let u = &a.symbols.unwinding;
    let counter = |c: hud_format::wire::Counter| m.counters.get(c.name()).copied().unwrap_or(0);
    let over_budget = counter(hud_format::wire::Counter::StackCopyOverBudget);
    let line = &m.header.options.command_line;
    let fp_only = line.windows(2).any(|w| w[0] == "--unwind" && w[1] == "fp")
        || line.iter().any(|w| w == "--unwind=fp");
    let not_found = a.diagnostics.iter().any(|d| {
        matches!(
            d,
            crate::analysis::diagnostics::Diagnostic::ObjectNotFound { .. }
        )
    });
    if over_budget > 0 {
        format!(
            "{over_budget} stack copies were over the copy budget: record with a larger \
             --stack-budget (e.g. 64MiB)"
        )
    } else if fp_only {
        "it was recorded with --unwind fp, and the code has no frame pointers: record without \
         it (by default the kernel copies the stacks a frame-pointer walk cannot read)"
            .into()
    } else if not_found {
        "objects were not found, so their unwind tables could not be read: pass --binary PATH \
         (or record with --embed-binaries)"
            .into()
    } else if u.copies == 0 {
        "no stack was copied: record with a hud-record that copies stacks (--unwind leaf, the \
         default, or dwarf)"
            .into()
    } else if u.out_of_copy > 0 && u.largest_copy <= u64::from(hud_format::wire::REPAIR_WINDOW) {
        format!(
            "the stack copies (at most {} B) ended before the runtime's frames: record again \
             with this hud-record, which copies whole stacks",
            u.largest_copy
        )
    } else {
        "none known: the stacks were cut short past what a copy holds (deeper than 64 KiB) or \
         in code without unwind tables"
            .into()
    }
}

/// How a kind reads in a sentence.
pub fn kind_phrase(kind: Kind) -> &'static str {
    match kind {
        Kind::Cpu => "long poll",
        Kind::Sleep => "sleep",
        Kind::Lock => "lock wait",
        Kind::Condvar => "condition variable wait",
        Kind::Channel => "blocking channel operation",
        Kind::Join => "thread join",
        Kind::Process => "child process wait",
        Kind::Fsync => "fsync",
        Kind::FileIo => "blocking file I/O",
        Kind::NetIo => "blocking socket I/O",
        Kind::Dns => "DNS lookup",
        Kind::BlockOn => "nested block_on",
        Kind::PageFault => "page fault",
        Kind::Log => "blocking log write",
        Kind::Other => "off-CPU wait",
    }
}

/// A blocker's call, short, for one line: "thread::sleep in app::nap", "app::crunch (own
/// code)", or the blamed function when no call is known.
pub fn call_label(b: &crate::analysis::detect::Blocker) -> String {
    use crate::analysis::advice::short_name;
    match (&b.call.site, &b.call.callee) {
        (Some(site), Some(callee)) => format!(
            "{} in {}",
            short_name(&callee.function),
            short_name(&site.function)
        ),
        (Some(site), None) => format!("{} (own code)", short_name(&site.function)),
        (None, Some(callee)) => callee.function.to_string(),
        (None, None) => b.blame.function.to_string(),
    }
}

/// A blocker's headline, in parts a view can emphasize: `main` (the call, or the function
/// whose own code ran), then `rest` (where), then an optional `note`.
pub struct Headline {
    pub main: String,
    pub rest: String,
    pub note: Option<&'static str>,
}

/// The headline of the call to move off the runtime, from its site and callee (function and
/// "file:line" each): "thread::sleep" + " called in app::handler::{{closure}}  src/main.rs:12";
/// a long poll in an async fn's own code names that fn; a path with none of the program's
/// frames names the dependency's. `None` when neither is known.
pub fn headline(
    site: Option<(&str, String)>,
    callee: Option<(&str, String)>,
    in_dependency: bool,
) -> Option<Headline> {
    Some(match (site, callee) {
        (Some((site, at)), Some((callee, _))) => Headline {
            main: crate::analysis::advice::short_name(callee),
            rest: format!(" called in {site}  {at}"),
            note: None,
        },
        (Some((site, at)), None) => Headline {
            main: site.to_owned(),
            rest: format!("  {at}"),
            note: Some("its own code"),
        },
        (None, Some((callee, at))) => Headline {
            main: callee.to_owned(),
            rest: format!("  {at}"),
            note: Some(if in_dependency {
                "in a dependency: no frame of the program's code on the path"
            } else {
                "called by a library's future: no async fn of the program on the path"
            }),
        },
        (None, None) => return None,
    })
}

/// Where the time went, when it is not the headline's line: the hottest leaf of a long poll
/// ("hottest: app::hash_block  src/main.rs:25, 80 % of samples"), or the system call and the
/// frame of the program an off-CPU blocker waited in. `site` and `leaf` are (function, line);
/// `leaf_at` the leaf's "file:line", `share` its part of the samples.
pub fn leaf_sentence(
    kind: Kind,
    site: Option<(&str, u32)>,
    leaf: Option<((&str, u32), String, f64)>,
    syscall: Option<&str>,
) -> Option<String> {
    let leaf = leaf.filter(|(l, _, _)| site.is_none_or(|s| s != *l));
    match (kind, leaf) {
        (Kind::Cpu, Some(((function, _), at, share))) => Some(format!(
            "hottest: {function}  {at}, {:.0} % of samples",
            share * 100.0
        )),
        (Kind::Cpu, None) => None,
        (Kind::PageFault, Some(((function, _), at, _))) => {
            Some(format!("faults in {function}  {at}"))
        }
        (_, Some(((function, _), at, _))) => Some(format!(
            "waits in {} from {function}  {at}",
            syscall.unwrap_or("an unnamed call")
        )),
        (Kind::Other, None) if syscall.is_none() => {
            Some("waits in an unnamed call (unknown)".to_owned())
        }
        (_, None) => None,
    }
}

/// `name` in at most `width` characters: the end of its path kept, cut at a `::` where one is in
/// the kept part (`…::fmt`), never mid-word when that can be helped.
pub fn cut_name(name: &str, width: usize) -> String {
    let n = name.chars().count();
    if n <= width {
        return name.to_owned();
    }
    if width <= 1 {
        return "…".chars().take(width).collect();
    }
    let tail: String = name.chars().skip(n - (width - 1)).collect();
    let cut = tail
        .find("::")
        .map(|i| &tail[i..])
        .filter(|t| t.len() > 2)
        .unwrap_or(&tail);
    format!("…{cut}")
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
    use super::{cut_name, short_path};

    #[test]
    fn names_are_cut_at_a_path_boundary() {
        assert_eq!(cut_name("app::render::fmt", 40), "app::render::fmt");
        assert_eq!(
            cut_name("<app::Report as core::fmt::Display>::fmt", 12),
            "…::fmt"
        );
        assert_eq!(cut_name("hud_demo::cpu::rounds", 12), "…::rounds");
        assert_eq!(cut_name("averyveryverylongname", 8), "…ongname");
    }

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
