//! `hud-analyze diff` on synthetic pairs: each change it can call (new, gone, grown, shrunk,
//! same), a blocker whose line moved in a rebuild, and how often two captures of one unchanged
//! service are called different (never, at the default α).

mod support;

use hud_analyze::analysis::diff::{diff, Change, DiffOptions, Side};
use hud_analyze::analysis::Analysis;
use hud_analyze::symbols::Frame;
use hud_analyze::view::diff::{render, DiffOut};
use support::*;

/// Recordings of this length.
const SECONDS: u64 = 10;

/// A blocker: `count` sleeps of about `ms` milliseconds (spread by `jitter`, 0–1) in
/// `function` at `line`, spread over the recording.
#[derive(Clone, Copy)]
struct Planted {
    function: &'static str,
    line: u32,
    count: u64,
    ms: u64,
}

/// A worker thread blocked as `planted` says; `seed` varies the durations as runs do.
fn service(planted: &[Planted], seed: u64) -> Analysis {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    let mut rng = hud_format::synth::Rng::new(seed);
    let mut ends: Vec<(u64, Vec<Frame>, u64)> = Vec::new();
    for p in planted {
        let stack = in_task(vec![lib("std::thread::sleep"), user(p.function, p.line)]);
        for i in 0..p.count {
            let duration = p.ms * MS + rng.below(p.ms * MS / 5 + 1);
            let end = START + (i * SECONDS * 1_000 / p.count + 50 + rng.below(20)) * MS;
            ends.push((end, stack.clone(), duration));
        }
    }
    ends.sort_by_key(|e| e.0);
    for (end, stack, duration) in ends {
        s.off_cpu(end, 10, duration, 0, 1, &stack);
    }
    s.sample(START + SECONDS * 1_000 * MS, 10, &parked());
    s.analyze()
}

fn compare(base: &Analysis, new: &Analysis) -> hud_analyze::analysis::diff::Diff {
    let (fb, fnew) = (whole(base), whole(new));
    diff(
        Side::of(base, &fb),
        Side::of(new, &fnew),
        &DiffOptions::default(),
    )
}

fn change_of(d: &hud_analyze::analysis::diff::Diff, function: &str) -> (Change, bool) {
    let b = d
        .blockers
        .iter()
        .find(|b| &*b.function == function)
        .unwrap_or_else(|| panic!("{function} not compared: {:#?}", d.blockers));
    (b.change, b.beyond_noise)
}

#[test]
fn every_change_is_called_and_moved_lines_still_match() {
    let p = |function, line, count, ms| Planted {
        function,
        line,
        count,
        ms,
    };
    let base = service(
        &[
            p("app::steady", 40, 50, 5),
            p("app::contended", 60, 30, 5),
            p("app::removed", 80, 40, 3),
            p("app::slower_before", 100, 40, 20),
            p("app::rebuilt", 120, 40, 4),
        ],
        1,
    );
    let new = service(
        &[
            p("app::steady", 40, 50, 5),
            p("app::contended", 60, 150, 5),
            p("app::added", 90, 40, 6),
            p("app::slower_before", 100, 40, 5),
            // The same blocker, its line moved by an edit above it.
            p("app::rebuilt", 123, 40, 4),
        ],
        2,
    );
    let d = compare(&base, &new);
    assert_eq!(change_of(&d, "app::steady"), (Change::Same, false));
    assert_eq!(change_of(&d, "app::contended"), (Change::Grown, true));
    assert_eq!(change_of(&d, "app::removed"), (Change::Gone, true));
    assert_eq!(change_of(&d, "app::added"), (Change::New, true));
    assert_eq!(change_of(&d, "app::slower_before"), (Change::Shrunk, true));
    assert_eq!(change_of(&d, "app::rebuilt"), (Change::Same, false));
    let rebuilt = d
        .blockers
        .iter()
        .find(|b| &*b.function == "app::rebuilt")
        .unwrap();
    assert_eq!(rebuilt.line_moved(), Some((120, 123)));
    assert_eq!(
        d.blockers.len(),
        6,
        "one row per blocker, matched across the rebuild"
    );
    // Changed rows first: new, grown, gone, shrunk.
    let order: Vec<Change> = d.blockers.iter().map(|b| b.change).collect();
    assert_eq!(
        &order[..4],
        &[Change::New, Change::Grown, Change::Gone, Change::Shrunk]
    );

    let out = DiffOut::build(&d, &DiffOptions::default(), "v1.hudcap", "v2.hudcap");
    let text = render(&out);
    assert!(
        text.contains("blockers beyond noise: 1 new, 1 grown, 1 gone, 1 shrunk"),
        "{text}"
    );
    assert!(text.contains("app/src/main.rs:120 → :123"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&out.to_json()).unwrap();
    assert_eq!(json["schema"], "hud.diff/1");
    assert_eq!(json["summary"]["new"], 1);
    let added = json["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["function"] == "app::added")
        .unwrap();
    assert_eq!(added["change"], "new");
    assert!(added["base"].is_null());
    assert_eq!(added["new"]["count"], 40);
    assert!((added["new"]["per_second"].as_f64().unwrap() - 4.0).abs() < 0.1);
}

/// A few episodes where there were none are not called new beyond noise: a gate must not fail
/// on a blocker that shows up twice by chance.
#[test]
fn a_handful_of_episodes_is_not_beyond_noise() {
    let p = |function, count| Planted {
        function,
        line: 1,
        count,
        ms: 5,
    };
    let base = service(&[p("app::steady", 50)], 3);
    let new = service(&[p("app::steady", 50), p("app::rare", 2)], 4);
    let d = compare(&base, &new);
    assert_eq!(change_of(&d, "app::rare"), (Change::New, false));
    assert_eq!(d.changed(Change::New).count(), 0);
}

/// Pairs of captures of one unchanged service (durations and times drawn anew each run, counts
/// drawn from a Poisson-like spread): no pair is called different at the default α.
#[test]
fn unchanged_services_are_not_called_different() {
    let mut false_calls = 0;
    let mut rng = hud_format::synth::Rng::new(99);
    for pair in 0..40u64 {
        let mut run = |seed: u64| {
            // 40 ± about 6 episodes a run, as a rate of 4/s sampled over 10 s varies.
            let count = 34 + rng.below(13);
            service(
                &[
                    Planted {
                        function: "app::steady",
                        line: 7,
                        count,
                        ms: 5,
                    },
                    Planted {
                        function: "app::busy",
                        line: 9,
                        count: count * 3,
                        ms: 2,
                    },
                ],
                seed,
            )
        };
        let (a, b) = (run(2 * pair + 10), run(2 * pair + 11));
        let d = compare(&a, &b);
        if d.blockers.iter().any(|b| b.beyond_noise) {
            false_calls += 1;
        }
    }
    assert_eq!(false_calls, 0, "false calls in 40 unchanged pairs");
}

/// The differential flame graphs: on the new stacks a new blocker is red and a gone one is
/// absent; on the base's stacks the gone one shows, blue.
#[test]
fn differential_flame_graphs_show_both_directions() {
    use hud_analyze::analysis::profile::Weight;
    use hud_analyze::view::export::svg::{write_differential, DiffShape};
    use hud_analyze::view::export::ExportOptions;
    let p = |function, count| Planted {
        function,
        line: 3,
        count,
        ms: 5,
    };
    let base = service(&[p("app::steady", 50), p("app::removed", 50)], 5);
    let new = service(&[p("app::steady", 50), p("app::added", 50)], 6);
    let options = ExportOptions {
        weight: Weight::Blocked,
        ..ExportOptions::default()
    };
    // inferno colours a frame by the change of its own (self) weight: the leaf under a
    // blocker's function (`std::thread::sleep`, at the same x) carries the colour.
    let attr = |g: &str, name: &str| -> String {
        let at = g.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        g[at..].split('"').next().unwrap().to_string()
    };
    let groups = |svg: &str| -> Vec<(String, String, String)> {
        svg.split("<g><title>")
            .skip(1)
            .map(|g| {
                let title = g.split(" (").next().unwrap().to_string();
                (title, attr(g, "x"), attr(g, "fill"))
            })
            .collect()
    };
    let fill = |svg: &str, function: &str| -> Option<(u8, u8, u8)> {
        let gs = groups(svg);
        let x = gs.iter().find(|g| g.0 == function)?.1.clone();
        let leaf = gs
            .iter()
            .find(|g| g.0 == "std::thread::sleep" && g.1 == x)?;
        let nums: Vec<u8> = leaf.2["rgb(".len()..leaf.2.len() - 1]
            .split(',')
            .map(|n| n.trim().parse().unwrap())
            .collect();
        Some((nums[0], nums[1], nums[2]))
    };
    let draw = |shape| {
        let mut out = Vec::new();
        write_differential((&base, &options), (&new, &options), shape, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let (on_new, on_base) = (draw(DiffShape::New), draw(DiffShape::Base));
    let red = |c: (u8, u8, u8)| c.0 > c.2;
    let blue = |c: (u8, u8, u8)| c.2 > c.0;
    assert!(on_new.contains("hud diff"), "{on_new}");
    assert!(
        fill(&on_new, "app::added").is_some_and(red),
        "new is red: {on_new}"
    );
    assert_eq!(
        fill(&on_new, "app::removed"),
        None,
        "gone: not on the new stacks"
    );
    assert!(
        fill(&on_base, "app::removed").is_some_and(blue),
        "gone is blue on the base"
    );
    assert_eq!(fill(&on_base, "app::added"), None);
}

/// A service with task ids: two kinds of task (`billing`, `search`) each awaiting one helper that
/// sleeps; `search_per_second` episodes a second in `search` tasks, 4 in `billing` ones, and as
/// many again of `search`'s path whose task the recorder could not read (`unknown`).
fn service_with_tasks(search_per_second: u64, unknown: bool, seed: u64) -> Analysis {
    let mut s = Synth::new();
    s.thread(10, "svc-io");
    s.writer.set_task_source("test");
    let mut rng = hud_format::synth::Rng::new(seed);
    let path = |kind: &'static str| {
        in_task(vec![
            lib("std::thread::sleep"),
            user("app::lookup::{{closure}}", 5),
            user(kind, 12),
        ])
    };
    let (billing, search) = (
        path("app::billing::{{closure}}"),
        path("app::search::{{closure}}"),
    );
    let mut events: Vec<(u64, &Vec<Frame>, u64)> = Vec::new();
    for second in 0..SECONDS {
        for i in 0..4 {
            events.push((second * 1_000 + i * 250 + 10, &billing, 1));
        }
        for i in 0..search_per_second {
            let at = second * 1_000 + i * 1_000 / search_per_second + 130;
            events.push((at, &search, 2));
            if unknown {
                events.push((at + 3, &search, 0));
            }
        }
    }
    events.sort_by_key(|e| e.0);
    for (at_ms, stack, task) in events {
        let duration = 4 * MS + rng.below(MS / 2);
        s.off_cpu_in_task(
            START + at_ms * MS + duration,
            10,
            duration,
            0,
            1,
            stack,
            task,
        );
    }
    // Each task seen on CPU too: its kind is voted from all its stacks.
    for (i, (stack, task)) in [(&billing, 1), (&search, 2)].into_iter().enumerate() {
        s.sample_in_task(START + (500 + i as u64) * MS, 10, stack, task, 7 + i as u64);
    }
    s.sample(START + SECONDS * 1_000 * MS, 10, &parked());
    s.analyze()
}

#[test]
fn blockers_and_kinds_of_task_are_compared_per_kind() {
    let base = service_with_tasks(4, false, 1);
    let new = service_with_tasks(16, true, 2);
    let d = compare(&base, &new);
    let row = |kind: &str| {
        d.blockers
            .iter()
            .find(|b| b.tasks.iter().any(|t| t.kind.as_deref() == Some(kind)))
            .unwrap_or_else(|| panic!("no row in {kind}: {:#?}", d.blockers))
    };
    let billing = row("app::billing::{{closure}}");
    assert_eq!(
        (billing.change, billing.beyond_noise),
        (Change::Same, false)
    );
    assert_eq!(billing.tasks.len(), 1, "one kind: {:#?}", billing.tasks);
    // search's path: its known-task episodes grew fourfold, and as many more came without a
    // task id; each part compared on its own.
    let search = row("app::search::{{closure}}");
    assert_eq!((search.change, search.beyond_noise), (Change::Grown, true));
    let part = |kind: Option<&str>| {
        search
            .tasks
            .iter()
            .find(|t| t.kind.as_deref() == kind)
            .unwrap_or_else(|| panic!("{kind:?}: {:#?}", search.tasks))
    };
    let known = part(Some("app::search::{{closure}}"));
    assert_eq!((known.change, known.beyond_noise), (Change::Grown, true));
    let (b, n) = (known.base.as_ref().unwrap(), known.new.as_ref().unwrap());
    assert!((b.per_second - 4.0).abs() < 0.2, "{b:?}");
    assert!((n.per_second - 16.0).abs() < 0.5, "{n:?}");
    let unknown = part(None);
    assert!(unknown.base.is_none() && unknown.change == Change::New);
    // The kinds of task: search's blocked time per second grew, billing's did not.
    let kind = |name: &str| {
        d.task_kinds
            .iter()
            .find(|k| &*k.kind == name)
            .unwrap_or_else(|| panic!("{name}: {:#?}", d.task_kinds))
    };
    let (before, after) = kind("app::search::{{closure}}").blocked_ms_per_second;
    assert!(after > 3.5 * before && before > 10.0, "{before} → {after}");
    let (before, after) = kind("app::billing::{{closure}}").blocked_ms_per_second;
    assert!((after - before).abs() < 0.2 * before, "{before} → {after}");
    assert_eq!(d.task_kinds[0].kind.as_ref(), "app::search::{{closure}}");

    let out = DiffOut::build(&d, &DiffOptions::default(), "v1.hudcap", "v2.hudcap");
    let text = render(&out);
    assert!(
        text.contains("every episode in task app::billing::{{closure}}"),
        "{text}"
    );
    assert!(text.contains("in task app::search::{{closure}}"), "{text}");
    assert!(text.contains("in task (task not known)"), "{text}");
    assert!(text.contains("Tasks by kind"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&out.to_json()).unwrap();
    let kinds = json["task_kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(kinds[0]["kind"], "app::search::{{closure}}");
    assert_eq!(kinds[0]["tasks"], serde_json::json!([1, 1]));
    let grown = json["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["change"] == "grown")
        .unwrap();
    let parts = grown["tasks"].as_array().unwrap();
    assert!(parts
        .iter()
        .any(|t| t["kind"].is_null() && t["change"] == "new"));
    assert!(parts
        .iter()
        .any(|t| t["kind"] == "app::search::{{closure}}" && t["change"] == "grown"));
}

/// A capture without task ids compared with one with: blockers still match, and the text says
/// why they are not split by kind of task.
#[test]
fn one_side_without_task_ids_is_said() {
    let p = |count| Planted {
        function: "app::lookup::{{closure}}",
        line: 5,
        count,
        ms: 4,
    };
    let base = service(&[p(40)], 1);
    let new = service_with_tasks(4, false, 2);
    let d = compare(&base, &new);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("only the new capture has task ids")),
        "{:?}",
        d.notes
    );
}

/// A side with nothing in its window, and a side whose chunks went missing: the text says which
/// windows were compared, and rates are per second of what was read.
#[test]
fn empty_and_damaged_sides_say_what_was_compared() {
    let p = Planted {
        function: "app::steady",
        line: 40,
        count: 50,
        ms: 5,
    };
    let base = service(&[p], 1);
    let mut empty = Synth::new();
    empty.thread(10, "tokio-runtime-worker");
    let empty = empty.analyze();
    let d = compare(&base, &empty);
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("the new capture has no events")),
        "{:?}",
        d.notes
    );
    assert!(!d.new_window.events && d.base_window.events);

    // The same service with 3 of its 10 seconds missing (chunks lost): per second of the 7 s
    // read, its rate is the base's, not 30 % lower.
    let mut damaged = service(&[p], 2);
    let start = damaged.model.start;
    damaged.model.missing.push(hud_analyze::model::Missing {
        from: start + 2_000 * MS,
        to: start + 5_000 * MS,
        chunks: Some((3, 5)),
        causes: Vec::new(),
    });
    let mut fd = whole(&damaged);
    fd.blockers.iter_mut().for_each(|b| {
        b.episodes
            .retain(|e| e.start < start + 2_000 * MS || e.start >= start + 5_000 * MS)
    });
    let fb = whole(&base);
    let d = diff(
        Side::of(&base, &fb),
        Side::of(&damaged, &fd),
        &DiffOptions::default(),
    );
    assert!(
        (d.new_window.missing_s - 3.0).abs() < 1e-6,
        "{:?}",
        d.new_window
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("3.0 s of the new window")),
        "{:?}",
        d.notes
    );
    let text = render(&DiffOut::build(&d, &DiffOptions::default(), "a", "b"));
    assert!(text.contains("s read)"), "{text}");
    let steady = &d.blockers[0];
    let (b, n) = (steady.base.as_ref().unwrap(), steady.new.as_ref().unwrap());
    assert!(
        (n.per_second - b.per_second).abs() < 0.1 * b.per_second,
        "{b:?} {n:?}"
    );
}
