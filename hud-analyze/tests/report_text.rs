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

/// Two workers, a blocking-pool thread and a plain thread; a sleep, a contended lock and a
/// long poll in tasks; CPU work in spawn_blocking; some preemption.
fn busy_service() -> Synth {
    let mut s = Synth::new();
    s.thread(10, "app-worker-0");
    s.thread(11, "app-worker-1");
    s.thread(12, "app-worker-2");
    s.thread(13, "janitor");
    let sleep = in_task(vec![
        lib("clock_nanosleep"),
        lib("std::thread::sleep"),
        user("app::handlers::slow::{{closure}}", 42),
        user("app::serve::{{closure}}", 12),
    ]);
    let lock = in_task(vec![
        lib("syscall"),
        lib("<std::sys::sync::mutex::futex::Mutex>::lock_contended"),
        user("app::cache::update::{{closure}}", 77),
        user("app::serve::{{closure}}", 14),
    ]);
    let crunch = in_task(vec![
        user("app::checksum", 101),
        user("app::crunch::{{closure}}", 90),
        user("app::serve::{{closure}}", 16),
    ]);
    let pool = blocking_pool(vec![user("app::compress", 120)]);
    let idle = parked();
    for i in 0..200u64 {
        let t = START + i * 10 * MS;
        let tid = 10 + (i % 2) as u32;
        s.sample(t, tid, if i % 8 < 4 { &crunch } else { &idle });
        s.sample(t + MS, 12, &pool);
        if i % 20 == 0 {
            s.off_cpu(t + 5 * MS, tid, 15 * MS, MS, 1, &sleep);
        }
        if i % 50 == 0 {
            s.off_cpu(t + 7 * MS, 11, 8 * MS, 0, 1, &lock);
        }
        s.switch(t + 8 * MS, tid, false, 0x100);
        s.switch(t + 9 * MS, tid, true, 0);
    }
    s
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
