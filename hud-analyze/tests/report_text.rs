//! The text report, exactly, for synthetic analyses (insta snapshots in tests/snapshots): what a
//! person reads must change only on purpose.

mod support;

use hud_analyze::view::report::{text, Report};
use support::*;

fn render(s: Synth, top: usize) -> String {
    let a = s.analyze();
    let findings = whole(&a);
    text::render(&Report::build(&a, &findings, top), top, false)
}

#[test]
fn a_blocked_service_reads_caution_with_each_blocker() {
    insta::assert_snapshot!(render(busy_service(), 5));
}

#[test]
fn top_cuts_every_table() {
    let out = render(busy_service(), 1);
    let blockers = out.lines().filter(|l| l.starts_with("  1. ")).count();
    assert_eq!(blockers, 1);
    assert!(!out.contains("  2. "), "{out}");
    let rows = |title: &str| {
        out.lines()
            .skip_while(|l| !l.contains(title))
            .skip(1)
            .take_while(|l| l.starts_with("    ") && l.contains("% self"))
            .count()
    };
    assert_eq!(rows("by function (self)"), 1);
    assert_eq!(rows("by line (self)"), 1);
}

#[test]
fn a_healthy_service_reads_normal() {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    for i in 0..50u64 {
        s.sample(START + i * 10 * MS, 10, &parked());
    }
    insta::assert_snapshot!(render(s, 10));
}
