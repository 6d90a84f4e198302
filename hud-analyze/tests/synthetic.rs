//! Classification and detection on synthetic captures (tests/support): no eBPF, no binaries.

mod support;

use hud_analyze::analysis::detect::Blocker;
use hud_analyze::analysis::frames::Kind;
use hud_analyze::analysis::Window;
use hud_analyze::model::{Role, State};
use hud_analyze::symbols::Frame;
use support::*;

fn names(d: &[Blocker]) -> Vec<String> {
    d.iter().map(|b| b.blame.function.to_string()).collect()
}

#[test]
fn roles_come_from_stacks_whatever_the_names() {
    let mut s = Synth::new();
    s.thread(10, "my-pool-3");
    s.thread(11, "tokio-runtime-worker");
    s.thread(12, "main");
    s.sample(START + MS, 10, &parked());
    s.sample(
        START + MS,
        11,
        &blocking_pool(vec![user("app::compress", 40)]),
    );
    s.sample(
        START + 2 * MS,
        12,
        &[lib("std::thread::park"), user("app::main", 3)],
    );
    let a = s.analyze();
    let model = &a.model;
    assert_eq!(model.threads[&10].role, Role::Worker, "custom-named worker");
    assert_eq!(
        model.threads[&11].role,
        Role::BlockingPool,
        "blocking pool named like a worker"
    );
    assert_eq!(model.threads[&12].role, Role::Other);
}

#[test]
fn parked_workers_and_spawn_blocking_are_not_blocking() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.thread(11, "b");
    s.sample(START + MS, 10, &parked());
    s.sample(
        START + MS,
        11,
        &blocking_pool(vec![user("app::compress", 40)]),
    );
    // Parked 50 ms: idle, not blocking.
    s.off_cpu(START + 60 * MS, 10, 50 * MS, 0, 1, &parked());
    // spawn_blocking work sleeping 50 ms on the blocking pool: its job, not blocking.
    let pool_sleep = blocking_pool(vec![lib("clock_nanosleep"), user("app::compress", 41)]);
    s.off_cpu(START + 60 * MS, 11, 50 * MS, 0, 1, &pool_sleep);
    // And 200 ms of CPU in spawn_blocking.
    for i in 0..20 {
        s.sample(
            START + 100 * MS + i * 10 * MS,
            11,
            &blocking_pool(vec![user("app::compress", 40)]),
        );
    }
    let a = s.analyze();
    let d = blockers(&a);
    assert!(d.is_empty(), "{:?}", names(&d));
    assert_eq!(a.detection.idle_episodes, 1);
}

#[test]
fn off_cpu_in_a_task_is_blocking_with_kind_and_blame() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    let sleep = in_task(vec![
        lib("clock_nanosleep"),
        user("app::handler::{{closure}}", 12),
    ]);
    for i in 0..5 {
        s.off_cpu(START + (i + 1) * 100 * MS, 10, 15 * MS, MS, 1, &sleep);
    }
    let lock = in_task(vec![
        lib("syscall"),
        lib("<std::sys::sync::mutex::futex::Mutex>::lock_contended"),
        user("app::cache::{{closure}}", 30),
    ]);
    s.off_cpu(START + 700 * MS, 10, 8 * MS, 0, 1, &lock);
    let io = in_task(vec![
        lib("__read"),
        lib("<std::fs::File as std::io::Read>::read"),
        user("app::load::{{closure}}", 50),
    ]);
    s.off_cpu(START + 800 * MS, 10, 3 * MS, 0, 2, &io);
    // Blocked for less than the threshold once the runnable wait is taken out: not reported.
    let tiny = in_task(vec![
        lib("clock_nanosleep"),
        user("app::tiny::{{closure}}", 70),
    ]);
    s.off_cpu(START + 900 * MS, 10, 5 * MS, 4_500_000, 1, &tiny);
    let a = s.analyze();
    let d = blockers(&a);
    let found: Vec<(Kind, &str, u32, usize, u64)> = d
        .iter()
        .map(|b| {
            (
                b.kind,
                &*b.blame.function,
                b.blame.line,
                b.episodes.len(),
                b.total(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (Kind::Sleep, "app::handler::{{closure}}", 12, 5, 5 * 14 * MS),
            (Kind::Lock, "app::cache::{{closure}}", 30, 1, 8 * MS),
            (Kind::FileIo, "app::load::{{closure}}", 50, 1, 3 * MS),
        ]
    );
    assert_eq!(
        d[0].task.as_ref().unwrap().function.as_ref(),
        "app::handler::{{closure}}"
    );
    assert_eq!(d[0].quantile(0.5), 14 * MS);
}

#[test]
fn one_helper_called_from_two_tasks_is_two_blockers() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    let from_a = in_task(vec![
        lib("clock_nanosleep"),
        user("app::helper", 5),
        user("app::a::{{closure}}", 20),
    ]);
    let from_b = in_task(vec![
        lib("clock_nanosleep"),
        user("app::helper", 5),
        user("app::b::{{closure}}", 40),
    ]);
    s.off_cpu(START + 100 * MS, 10, 10 * MS, 0, 1, &from_a);
    s.off_cpu(START + 200 * MS, 10, 20 * MS, 0, 1, &from_b);
    let a = s.analyze();
    let d = blockers(&a);
    assert_eq!(d.len(), 2);
    for b in &d {
        assert_eq!(
            &*b.blame.function, "app::helper",
            "the time goes in the helper"
        );
    }
    let tasks: Vec<&str> = d
        .iter()
        .map(|b| &*b.task.as_ref().unwrap().function)
        .collect();
    assert_eq!(tasks, vec!["app::b::{{closure}}", "app::a::{{closure}}"]);
}

#[test]
fn long_polls_are_split_by_a_park() {
    let mut s = Synth::new();
    s.thread(10, "w");
    let crunch = in_task(vec![user("app::crunch::{{closure}}", 9)]);
    // 5 samples 10 ms apart in one poll, then the worker parks (a voluntary switch-out), then
    // 3 more samples in the same function: a second poll.
    for i in 0..5 {
        s.sample(START + 10 * MS + i * 10 * MS, 10, &crunch);
    }
    s.switch(START + 65 * MS, 10, false, 1);
    s.switch(START + 70 * MS, 10, true, 0);
    for i in 0..3 {
        s.sample(START + 75 * MS + i * 10 * MS, 10, &crunch);
    }
    // A lone sample in another poll: one sample is not a long poll.
    s.sample(
        START + 200 * MS,
        10,
        &in_task(vec![user("app::quick::{{closure}}", 3)]),
    );
    s.sample(START + 300 * MS, 10, &parked());
    let a = s.analyze();
    let d = blockers(&a);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    let b = &d[0];
    assert_eq!(b.kind, Kind::Cpu);
    let mut durations: Vec<u64> = b.episodes.iter().map(|e| e.duration).collect();
    durations.sort_unstable();
    // Samples 10 ms apart, a hair closer than the 99 Hz period: each stands for 10 ms.
    assert_eq!(durations, vec![30 * MS, 50 * MS]);
    // No task ids: nothing showed each run to be one poll.
    assert_eq!(b.unproven(), 2);
}

#[test]
fn scheduling_pressure_counts_preemption_waits() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    s.switch(START + 10 * MS, 10, false, 0x100);
    s.switch(START + 14 * MS, 10, true, 0);
    s.switch(START + 20 * MS, 10, false, 0x100);
    s.switch(START + 21 * MS, 10, true, 0);
    let a = s.analyze();
    let worker = whole(&a).threads.into_iter().find(|t| t.tid == 10).unwrap();
    assert_eq!(worker.preempted_wait_ns, 5 * MS);
    assert_eq!(worker.runnable_wait_ns(), 5 * MS);
}

/// The report of a synthetic capture.
fn report_of(a: &hud_analyze::Analysis) -> hud_analyze::view::report::Report {
    hud_analyze::view::report::Report::build(a, &whole(a), 10)
}

/// A worker's capture: `shallow` samples cut after two frames, as frame-pointer unwinding leaves
/// code without frame pointers, and `deep` whole ones.
fn worker_samples(shallow: u64, deep: u64) -> hud_analyze::Analysis {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    for i in 0..shallow {
        let cut = [user("app::hash", 7), lib("[libc.so.6+0x1234]")];
        s.sample(START + i * MS, 10, &cut);
    }
    for i in shallow..shallow + deep {
        s.sample(START + i * MS, 10, &in_task(vec![user("app::hash", 7)]));
    }
    s.analyze()
}

#[test]
fn shallow_stacks_are_reported_as_missing_frame_pointers() {
    let a = worker_samples(30, 10);
    let shallow = a.model.shallow_stacks(4);
    assert_eq!((shallow.shallow, shallow.all), (30, 40));
    let report = report_of(&a);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("75 % of stacks")
                && w.contains("RUSTFLAGS=-Cforce-frame-pointers=yes")),
        "{:?}",
        report.warnings
    );

    // With frame pointers: no such warning.
    let a = worker_samples(0, 40);
    let shallow = a.model.shallow_stacks(4);
    assert_eq!((shallow.shallow, shallow.all), (0, 40));
    let report = report_of(&a);
    assert!(
        !report.warnings.iter().any(|w| w.contains("frame pointers")),
        "{:?}",
        report.warnings
    );
}

/// The Redis-like server built with frame pointers: most samples stop at depth 1 in
/// libc's `__send`, whose code uses the frame-pointer register. The warning names it and says
/// rebuilding does not help; it never says the target lacks frame pointers.
#[test]
fn shallow_stacks_stopping_in_libc_are_not_blamed_on_the_target() {
    const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    for i in 0..30 {
        s.sample(START + i * MS, 10, &[in_object("__send", 1)]);
    }
    for i in 30..40 {
        s.sample(START + i * MS, 10, &in_task(vec![user("app::handle", 9)]));
    }
    let a = s.analyze_with_objects(vec![
        object("/usr/bin/synthetic", Some(0.8)),
        object(LIBC, None),
    ]);
    let report = report_of(&a);
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("of stacks"))
        .unwrap_or_else(|| panic!("{:?}", report.warnings));
    assert!(warning.contains("stop in __send (libc.so.6)"), "{warning}");
    assert!(warning.contains("does not help"), "{warning}");
    assert!(!warning.contains("RUSTFLAGS"), "{warning}");
}

/// The server built without frame pointers: a 5 ms sleep 3,700 times and only 19
/// samples. Off-CPU stacks count, so it warns; the target's bytes say it has no frame pointers;
/// and its threads, named like workers but unrecognisable, are said to be so.
#[test]
fn a_target_without_frame_pointers_warns_from_off_cpu_stacks_too() {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    s.thread(11, "tokio-runtime-worker");
    for i in 0..3 {
        s.sample(START + i * MS, 10, &[in_object("app::handle", 0)]);
    }
    for i in 0..40 {
        let cut = [in_object("clock_nanosleep", 1), in_object("app::x", 0)];
        s.off_cpu(
            START + (i + 10) * 6 * MS,
            10 + (i % 2) as u32,
            5 * MS,
            0,
            1,
            &cut,
        );
    }
    let a = s.analyze_with_objects(vec![
        object("/usr/bin/synthetic", Some(0.01)),
        object("/usr/lib/x86_64-linux-gnu/libc.so.6", None),
    ]);
    let report = report_of(&a);
    let all = report.warnings.join("\n");
    assert!(
        all.contains("100 % of stacks (samples and off-CPU)"),
        "{all}"
    );
    assert!(
        all.contains("built without frame pointers (only 1 % of its functions"),
        "{all}"
    );
    assert!(
        all.contains("RUSTFLAGS=-Cforce-frame-pointers=yes"),
        "{all}"
    );
    assert!(
        all.contains("2 threads are named like Tokio workers, but no stack shows the runtime"),
        "{all}"
    );
}

#[test]
fn a_long_poll_through_a_helper_and_its_caller_is_one_blocker() {
    let mut s = Synth::new();
    s.thread(10, "w");
    let own = in_task(vec![
        user("app::crunch::{{closure}}", 20),
        user("app::serve::{{closure}}", 5),
    ]);
    let helper = in_task(vec![
        user("app::hash", 40),
        user("app::crunch::{{closure}}", 18),
        user("app::serve::{{closure}}", 5),
    ]);
    // One poll of 60 ms: the first sample lands in the helper, most in the loop's own line.
    for i in 0..6u64 {
        let frames = if i % 3 == 0 { &helper } else { &own };
        s.sample(START + 10 * MS + i * 10 * MS, 10, frames);
    }
    s.sample(START + 300 * MS, 10, &parked());
    let a = s.analyze();
    let d = blockers(&a);
    assert_eq!(
        names(&d),
        vec!["app::crunch::{{closure}}"],
        "one row, not two"
    );
    let b = &d[0];
    assert_eq!(b.kind, Kind::Cpu);
    assert_eq!(b.episodes.len(), 1, "{:#?}", b.episodes);
    assert_eq!(b.episodes[0].samples, 6);
    assert_eq!(b.blame.line, 20, "the line most samples were on");
    assert_eq!(
        &*b.spawned.as_ref().unwrap().function,
        "app::serve::{{closure}}",
        "the spawned task is the outermost user future"
    );
    assert_eq!(
        &*b.task.as_ref().unwrap().function,
        "app::crunch::{{closure}}"
    );
}

#[test]
fn a_window_holds_only_its_episodes_samples_and_time() {
    let mut s = Synth::new();
    s.thread(10, "w");
    let busy = in_task(vec![user("app::busy::{{closure}}", 3)]);
    let sleep = in_task(vec![
        lib("clock_nanosleep"),
        user("app::nap::{{closure}}", 7),
    ]);
    for i in 0..100u64 {
        s.sample(START + i * 10 * MS + MS, 10, &busy);
    }
    // A 10 ms sleep ending every 100 ms.
    for i in 1..10u64 {
        let end = START + i * 100 * MS;
        s.switch(end - 10 * MS, 10, false, 1);
        s.switch(end, 10, true, 0);
        s.off_cpu(end, 10, 10 * MS, 0, 1, &sleep);
    }
    s.sample(START + 1_000 * MS, 10, &parked());
    let a = s.analyze();
    let all = blockers(&a);
    let naps = all.iter().find(|b| b.kind == Kind::Sleep).unwrap();
    assert_eq!(naps.episodes.len(), 9);
    let w = Window::relative(&a.model, Some(300 * MS), Some(600 * MS));
    let f = a.findings(w, RANKING);
    let nap = f.blockers.iter().find(|b| b.kind == Kind::Sleep).unwrap();
    // Episodes overlapping [300, 600) ms: those of 390–400, 490–500 and 590–600.
    assert_eq!(nap.episodes.len(), 3);
    assert_eq!(f.hotspots.samples, 30);
    let worker = f.threads.iter().find(|t| t.tid == 10).unwrap();
    assert_eq!(worker.on_cpu_ns, 300 * MS - 3 * 10 * MS);
    assert!((worker.utilisation - 0.9).abs() < 1e-9);
    assert_eq!(nap.total(), 30 * MS);
    let in_blockers: u64 = f.blockers.iter().map(|b| b.total()).sum();
    assert_eq!(worker.blocking_ns, in_blockers, "sleeps and long polls");
    // An empty window is empty, not an error.
    let empty = a.findings(Window::relative(&a.model, Some(5_000 * MS), None), RANKING);
    assert!(empty.blockers.is_empty());
    assert_eq!(empty.hotspots.samples, 0);
}

#[test]
fn a_starved_cpu_is_part_of_the_verdict() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    // Preempted 4 ms of every 10 ms for a second.
    for i in 0..100u64 {
        let t = START + i * 10 * MS;
        s.switch(t + 6 * MS, 10, false, 0x100);
        s.switch(t + 10 * MS, 10, true, 0);
    }
    let a = s.analyze();
    let f = whole(&a);
    let v = f.verdict();
    assert_eq!(v.status, hud_analyze::analysis::Status::Caution);
    let share = v.pressure.expect("pressure in the verdict");
    assert!((share - 0.4).abs() < 0.01, "{share}");
    let report = hud_analyze::view::report::Report::build(&a, &f, 10);
    assert!(
        report.summary.verdict.contains("waited for a CPU 40 %"),
        "{}",
        report.summary.verdict
    );
}

#[test]
fn inclusive_tables_hide_plumbing_unless_asked() {
    let mut s = Synth::new();
    s.thread(10, "w");
    for i in 0..20u64 {
        s.sample(
            START + i * MS,
            10,
            &in_task(vec![user("app::work::{{closure}}", 9)]),
        );
    }
    let a = s.analyze();
    let shown = |f: &hud_analyze::analysis::Findings| -> Vec<String> {
        f.hotspots
            .by_function_inclusive
            .iter()
            .map(|h| h.key.function.to_string())
            .collect()
    };
    let f = whole(&a);
    assert_eq!(shown(&f), vec!["app::work::{{closure}}"], "user code stays");
    assert_eq!(f.hotspots.hidden_frames, 2 * worker_root().len());
    let all = a.findings(
        Window::ALL,
        hud_analyze::analysis::hotspots::Ranking {
            top: 50,
            all_frames: true,
        },
    );
    assert!(shown(&all).iter().any(|n| n.contains("thread_start")));
    assert_eq!(all.hotspots.hidden_frames, 0);
}

#[test]
fn a_stream_builds_the_model_a_file_builds() {
    let mut s = Synth::new();
    s.thread(10, "w");
    for i in 0..50u64 {
        s.sample(
            START + i * MS,
            10,
            &in_task(vec![user("app::a::{{closure}}", 1)]),
        );
        s.switch(START + i * MS + 100, 10, i % 2 == 0, 1);
        if i % 10 == 0 {
            s.writer.flush_chunk().unwrap();
        }
    }
    s.off_cpu(START + 60 * MS, 10, 5 * MS, MS, 1, &parked());
    let (bytes, _) = s.finish();
    let file = hud_analyze::source::load_file(
        &hud_format::reader::Capture::from_bytes(bytes.clone()).unwrap(),
    )
    .unwrap()
    .model;
    let stream = hud_analyze::source::load_stream(std::io::Cursor::new(bytes), &Default::default())
        .unwrap()
        .model;
    assert!(file.chunks > 1);
    assert_eq!(file.chunks, stream.chunks);
    assert_eq!(file.samples, stream.samples);
    assert_eq!(file.off_cpu, stream.off_cpu);
    assert_eq!(file.notices, stream.notices);
    assert_eq!(file.stacks.nodes(), stream.stacks.nodes());
    let (f, s) = (&file.threads[&10].timeline, &stream.threads[&10].timeline);
    assert_eq!(f.len(), 50);
    assert_eq!(f.totals(0, u64::MAX), s.totals(0, u64::MAX));
}

#[test]
fn spans_carry_the_stack_and_split_blocked_from_woken() {
    let mut s = Synth::new();
    s.thread(10, "w");
    let sleep = in_task(vec![
        lib("clock_nanosleep"),
        user("app::nap::{{closure}}", 7),
    ]);
    s.switch(START + 10 * MS, 10, false, 1);
    s.switch(START + 30 * MS, 10, true, 0);
    // Off CPU 20 ms, of which the last 4 ms runnable after the wakeup.
    s.off_cpu(START + 30 * MS, 10, 20 * MS, 4 * MS, 1, &sleep);
    s.switch(START + 40 * MS, 10, false, 0x100);
    s.switch(START + 41 * MS, 10, true, 0);
    s.sample(START + 50 * MS, 10, &parked());
    let a = s.analyze();
    let spans = a.model.spans(10, START, START + 50 * MS);
    let shape: Vec<(u64, u64, State, bool)> = spans
        .iter()
        .map(|s| {
            (
                (s.start - START) / MS,
                (s.end - START) / MS,
                s.state,
                s.stack.is_some(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, 10, State::OnCpu, false),
            (10, 26, State::Sleeping, true),
            (26, 30, State::Runnable, true),
            (30, 40, State::OnCpu, false),
            (40, 41, State::Runnable, false),
            (41, 50, State::OnCpu, false),
        ]
    );
}

#[test]
fn the_recording_starts_when_the_probes_were_attached() {
    // The header is stamped before the probes load; under load attaching took seconds, and a
    // worker that ran 0.3 % of the time was shown at 27 %: it was taken as on CPU since the
    // header's start.
    let attached = START + 5_000 * MS;
    let mut s = Synth::new();
    s.writer
        .set_counter(hud_format::types::PROBES_ATTACHED_COUNTER, attached);
    s.thread(10, "tokio-runtime-worker");
    for i in 0..100 {
        let t = attached + i * 10 * MS;
        s.switch(t + MS, 10, false, 1);
        s.switch(t + 9 * MS + 900_000, 10, true, 0);
    }
    let a = s.analyze();
    assert_eq!(a.model.start, attached);
    let totals = a.model.threads[&10].timeline.totals(0, u64::MAX);
    let on_cpu = totals.on_cpu as f64 / a.model.duration() as f64;
    // It runs 1.1 ms of every 10 (taken from the header's start: 85 %).
    assert!(
        (0.09..0.13).contains(&on_cpu),
        "on CPU {:.1} % of the recording",
        on_cpu * 100.0
    );
}

/// A stack cut short after two frames, as a frame-pointer walk leaves code without frame
/// pointers when nothing was copied: no runtime frame, no thread start.
fn cut_short() -> Vec<hud_analyze::symbols::Frame> {
    vec![lib("epoll_wait"), lib("[unknown 0x55d0c0a21234]")]
}

fn verdict_of(a: &hud_analyze::Analysis) -> (hud_analyze::analysis::Status, String) {
    let f = whole(a);
    (
        f.verdict().status,
        hud_analyze::view::wording::verdict_sentence(a, &f),
    )
}

/// Threads whose stacks never show the runtime: not "nothing blocked" in green, but UNKNOWN, with
/// the share not judged, the threads, and a fix.
#[test]
fn stacks_cut_short_make_the_verdict_unknown_not_normal() {
    use hud_analyze::analysis::Status;
    let mut s = Synth::new();
    for tid in [10, 11] {
        s.thread(tid, "tokio-runtime-worker");
        for i in 0..20 {
            s.sample(START + i * 10 * MS, tid, &cut_short());
            s.off_cpu(
                START + i * 10 * MS + 5 * MS,
                tid,
                4 * MS,
                0,
                1,
                &cut_short(),
            );
        }
    }
    let a = s.analyze();
    let (status, sentence) = verdict_of(&a);
    assert_eq!(status, Status::Unknown, "{sentence}");
    assert!(sentence.contains("nothing was judged"), "{sentence}");
    assert!(sentence.contains("could not judge 100 %"), "{sentence}");
    assert!(sentence.contains("thread 10 tokio-runtime-w"), "{sentence}");
    assert!(sentence.contains("fix: "), "{sentence}");
    let report = report_of(&a);
    assert!(report.summary.unjudged_fix.is_some());
    assert_eq!(report.summary.judgement.len(), 2);
    assert!((report.summary.unjudged_share - 1.0).abs() < 1e-9);
}

/// One worker read whole, another cut short: what was found stands (CAUTION), and the verdict
/// says it judged one of two; with both read, the same capture is NORMAL.
#[test]
fn a_partial_judgement_is_said_and_a_whole_one_is_normal() {
    use hud_analyze::analysis::Status;
    let build = |second_cut: bool, blocking: bool| {
        let mut s = Synth::new();
        s.thread(10, "w1");
        s.thread(11, "w2");
        for i in 0..20 {
            let t = START + i * 10 * MS;
            s.off_cpu(t + 5 * MS, 10, 4 * MS, 0, 1, &parked());
            let second = if second_cut { cut_short() } else { parked() };
            s.sample(t, 11, &in_task(vec![user("app::serve", 9)]));
            s.off_cpu(t + 5 * MS, 11, 4 * MS, 0, 1, &second);
        }
        if blocking {
            let sleep = in_task(vec![lib("clock_nanosleep"), user("app::handler", 21)]);
            s.off_cpu(START + 300 * MS, 10, 30 * MS, 0, 1, &sleep);
        }
        s.analyze()
    };
    let (status, sentence) = verdict_of(&build(true, true));
    assert_eq!(status, Status::Caution, "{sentence}");
    assert!(sentence.contains("app::handler"), "{sentence}");
    assert!(sentence.contains("could not judge"), "{sentence}");
    assert!(sentence.contains("thread 11 w2: 50 %"), "{sentence}");

    let (status, sentence) = verdict_of(&build(true, false));
    assert_eq!(status, Status::Unknown, "{sentence}");
    assert!(
        sentence.contains("nothing found, but that means little"),
        "{sentence}"
    );

    let (status, sentence) = verdict_of(&build(false, false));
    assert_eq!(status, Status::Normal, "{sentence}");
    assert!(!sentence.contains("could not judge"), "{sentence}");
}

/// A thread outside the runtime whose stacks are read whole (down to libc's thread start) is
/// judged: it runs no tasks, so it takes nothing from a NORMAL verdict.
#[test]
fn a_helper_thread_read_whole_is_judged() {
    use hud_analyze::analysis::Status;
    let mut s = Synth::new();
    s.thread(10, "w");
    s.thread(12, "metrics");
    let helper = [
        lib("clock_nanosleep"),
        user("app::metrics_loop", 4),
        lib("std::sys::thread::unix::Thread::new::thread_start"),
        lib("start_thread"),
        lib("__GI___clone3"),
    ];
    for i in 0..20 {
        let t = START + i * 10 * MS;
        s.off_cpu(t + 5 * MS, 10, 4 * MS, 0, 1, &parked());
        s.off_cpu(t + 5 * MS, 12, 4 * MS, 0, 1, &helper);
        s.sample(t, 12, &helper[1..]);
    }
    let a = s.analyze();
    let (status, sentence) = verdict_of(&a);
    assert_eq!(status, Status::Normal, "{sentence}");
    assert_eq!(a.model.threads[&12].role, Role::Other);
}

/// Time a worker spends preempted inside a poll is the CPU's shortage, not the poll's length: a
/// short poll sampled at both ends of a preemption is no long poll; a CPU-bound one preempted
/// half the time is, with its time on CPU.
#[test]
fn preempted_time_does_not_make_a_poll_long() {
    let build = |on_cpu_ms: u64| {
        let mut s = Synth::new();
        s.thread(10, "w");
        let read = in_task(vec![user("app::read_data::{{closure}}", 5)]);
        s.switch(START, 10, true, 0);
        s.sample(START + 10 * MS, 10, &read);
        // Preempted right after the sample, back on CPU just before the next tick.
        s.switch(START + 10 * MS + on_cpu_ms * MS / 2, 10, false, 0x100);
        s.switch(START + 30 * MS - on_cpu_ms * MS / 2, 10, true, 0);
        s.sample(START + 30 * MS, 10, &read);
        s.sample(START + 60 * MS, 10, &parked());
        s.analyze()
    };
    let short = build(1);
    assert!(
        blockers(&short).is_empty(),
        "{:?}",
        names(&blockers(&short))
    );
    let busy = build(16);
    let d = blockers(&busy);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    let duration = d[0].episodes[0].duration;
    let period = busy.model.sample_period();
    // 16 ms on CPU of the 20 between the samples, and 80 % of a period beyond them.
    assert_eq!(duration, 16 * MS + period * 16 / 20);
}

/// Role markers are the runtime's own loops: a thread that wakes a runtime's task (actix-web's
/// acceptor) or a runtime thread whose cut-short stack shows only `spawn_blocking`'s frames is
/// neither a runtime thread nor the blocking pool.
#[test]
fn calling_into_a_runtime_is_not_running_it() {
    let mut s = Synth::new();
    s.thread(20, "acceptor");
    s.thread(21, "arbiter");
    let wake = [
        lib("tokio::runtime::driver::IoHandle::unpark"),
        lib("<tokio::runtime::scheduler::current_thread::Handle as tokio::util::wake::Wake>::wake"),
        lib("tokio::runtime::scheduler::multi_thread::worker::<impl tokio::runtime::scheduler::multi_thread::handle::Handle>::schedule_task"),
        user("server::accept::send_connection", 30),
        lib("start_thread"),
        lib("__GI___clone3"),
    ];
    let spawn = [
        lib("tokio::runtime::blocking::pool::Spawner::spawn_blocking"),
        user("server::handler::{{closure}}", 12),
    ];
    for i in 0..10 {
        s.sample(START + i * 10 * MS, 20, &wake);
        s.sample(START + i * 10 * MS, 21, &spawn);
    }
    let a = s.analyze();
    assert_eq!(a.model.threads[&20].role, Role::Other);
    assert_eq!(a.model.threads[&21].role, Role::Other, "not the pool");
}

/// Events' tasks reach their samples and episodes the same from a file (chunk-tasks frames read
/// first) and from a stream (they come after their chunks), over several chunks and threads, and
/// as format 1.2's keyed rows; the 1.3 frame is the smaller.
#[test]
fn chunk_tasks_reach_their_events_from_files_and_streams() {
    use hud_format::frame::FrameKind;
    use hud_format::types::COPY_OF_OFF_CPU;
    use hud_format::wire::NO_TICK;
    let work = in_task(vec![user("app::work::{{closure}}", 3)]);
    let build = |v1_3: bool| {
        let mut s = Synth::new();
        s.thread(10, "w1");
        s.thread(11, "w2");
        s.writer.set_task_source("test");
        for i in 0..300u64 {
            let (tid, task, tick) = (
                10 + (i % 2) as u32,
                1 + i % 7,
                0x0100_0000_0000_0000 + i / 3,
            );
            // Samples about 5 ms apart, with the jitter of real timers.
            let ts = START + i * 5 * MS + (i * 7919 % 997) * 1_000;
            let end = ts + 2 * MS;
            if v1_3 {
                s.sample_in_task(ts, tid, &work, task, tick);
                s.off_cpu_in_task(end, tid, MS, 0, 1, &work, task + 100);
            } else {
                s.sample_in_task_v1_2(ts, tid, &work, task, tick);
                s.off_cpu(end, tid, MS, 0, 1, &work);
                s.writer
                    .push_event_task(COPY_OF_OFF_CPU, end, tid, task + 100, NO_TICK);
            }
            if i % 40 == 39 {
                s.writer.flush_chunk().unwrap();
            }
        }
        s.finish().0
    };
    type Tasks = (Vec<(u32, u64, u64, u64)>, Vec<(u32, u64, u64)>);
    let tasks = |bytes: &[u8], stream: bool| -> Tasks {
        let model = if stream {
            hud_analyze::source::load_stream(
                std::io::Cursor::new(bytes.to_vec()),
                &Default::default(),
            )
            .unwrap()
            .model
        } else {
            hud_analyze::source::load_file(
                &hud_format::reader::Capture::from_bytes(bytes.to_vec()).unwrap(),
            )
            .unwrap()
            .model
        };
        (
            model
                .samples
                .iter()
                .map(|s| (s.tid, s.ts, s.task, s.tick))
                .collect(),
            model
                .off_cpu
                .iter()
                .map(|o| (o.tid, o.end, o.task))
                .collect(),
        )
    };
    let (new, old) = (build(true), build(false));
    let expected = tasks(&old, false);
    assert_eq!((expected.0.len(), expected.1.len()), (300, 300));
    assert!(
        expected.0.iter().all(|s| s.2 != 0),
        "every sample has its task"
    );
    assert!(
        expected.1.iter().all(|o| o.2 > 100),
        "every episode has its task"
    );
    assert_eq!(tasks(&old, true), expected);
    assert_eq!(tasks(&new, false), expected, "1.3, from a file");
    assert_eq!(tasks(&new, true), expected, "1.3, from a stream");
    let frame_bytes = |bytes: &[u8], kind: FrameKind| -> u64 {
        let c = hud_format::reader::Capture::from_bytes(bytes.to_vec()).unwrap();
        c.frames()
            .iter()
            .filter(|f| f.header.kind == kind)
            .map(|f| u64::from(f.header.stored_len) + 24)
            .sum()
    };
    let (v1_3, v1_2) = (
        frame_bytes(&new, FrameKind::ChunkTasks),
        frame_bytes(&old, FrameKind::Tasks),
    );
    // (Synthetic rows compress far better than real ones; the busy demo's numbers are in
    // docs/FORMAT.md.)
    assert!(v1_3 < v1_2, "chunk-tasks {v1_3} B vs keyed rows {v1_2} B");
}

/// Two tasks taking turns on a worker that never parks, each poll short: samples 10 ms apart in
/// the same code are one long poll only where task ids say one poll ran between them.
#[test]
fn tasks_taking_turns_are_never_one_long_poll() {
    use hud_format::wire::NO_TICK;
    let echo = in_task(vec![user("app::echo::{{closure}}", 12)]);
    let build = |rows: &[(u64, u64)]| {
        let mut s = Synth::new();
        s.thread(10, "w");
        s.writer.set_task_source("test");
        for (i, &(task, tick)) in rows.iter().enumerate() {
            s.sample_in_task(START + (10 + 10 * i as u64) * MS, 10, &echo, task, tick);
        }
        s.sample(START + 200 * MS, 10, &parked());
        s.analyze()
    };
    // Alternating tasks: no long poll.
    let turns = build(&[(1, NO_TICK), (2, NO_TICK), (1, NO_TICK), (2, NO_TICK)]);
    assert!(
        blockers(&turns).is_empty(),
        "{:?}",
        names(&blockers(&turns))
    );
    // One task polled again after the scheduler's tick moved (it yielded): no long poll.
    let yields = build(&[(1, 5), (1, 9), (1, 14)]);
    assert!(
        blockers(&yields).is_empty(),
        "{:?}",
        names(&blockers(&yields))
    );
    // One task, same tick: one poll of 3 samples.
    let long = build(&[(3, 7), (3, 7), (3, 7)]);
    let d = blockers(&long);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    assert_eq!(d[0].episodes[0].samples, 3);
    assert_eq!(d[0].unproven(), 0, "task and tick show one poll");
    assert_eq!(d[0].tasks(), vec![(3, 1, d[0].episodes[0].duration)]);
    let w = whole(&long);
    let task = w.tasks.iter().find(|t| t.id == 3).expect("task 3 listed");
    assert_eq!((task.samples, task.long_polls), (3, 1));
    assert_eq!(
        task.kind.as_ref().map(|k| &*k.function),
        Some("app::echo::{{closure}}")
    );
}

/// A target whose task ids could not be read (debug info without types): each sample's tick is
/// its thread's count of the runtime's I/O driver polls. Samples with one of those polls between
/// them were two polls, however alike their code; with none between, they may be one, and the
/// long poll says it is an upper bound.
#[test]
fn an_io_driver_poll_between_samples_splits_them_without_task_ids() {
    use hud_format::wire::{TICK_KIND_SHIFT, TICK_OF_IO_POLLS};
    let io = |polls: u64| (TICK_OF_IO_POLLS << TICK_KIND_SHIFT) | polls;
    let echo = in_task(vec![user("app::echo::{{closure}}", 12)]);
    let build = |ticks: &[u64]| {
        let mut s = Synth::new();
        s.thread(10, "w");
        s.writer.set_task_source(&format!(
            "{}debug info without types",
            hud_format::types::NO_TASK_IDS
        ));
        for (i, &tick) in ticks.iter().enumerate() {
            s.sample_in_task(START + (10 + 10 * i as u64) * MS, 10, &echo, 0, tick);
        }
        s.sample(START + 200 * MS, 10, &parked());
        s.analyze()
    };
    // The driver polled between every two samples: short polls, no long poll.
    let busy = build(&[io(3), io(5), io(6), io(9)]);
    assert!(blockers(&busy).is_empty(), "{:?}", names(&blockers(&busy)));
    // No driver poll across three samples: one long poll, an upper bound; the fourth sample,
    // after one, is not part of it.
    let long = build(&[io(7), io(7), io(7), io(8)]);
    let d = blockers(&long);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    assert_eq!(d[0].episodes[0].samples, 3);
    assert_eq!(d[0].unproven(), 1, "no task ids: not proven one poll");
}

/// Each CPU samples on its own clock: a poll moved to another CPU can be sampled twice
/// microseconds apart, one task and one tick. Those samples prove microseconds, not a period:
/// no long poll. The same two samples a period apart are one.
#[test]
fn two_samples_microseconds_apart_are_no_long_poll() {
    let work = in_task(vec![user("app::step::{{closure}}", 7)]);
    let build = |gap: u64| {
        let mut s = Synth::new();
        s.thread(10, "w");
        s.writer.set_task_source("test");
        s.sample_in_task(START + 10 * MS, 10, &work, 4, 0x0100_0000_0000_0009);
        s.sample_in_task(START + 10 * MS + gap, 10, &work, 4, 0x0100_0000_0000_0009);
        s.sample(START + 200 * MS, 10, &parked());
        s.analyze()
    };
    let moved = build(33_000);
    assert!(
        blockers(&moved).is_empty(),
        "{:?}",
        names(&blockers(&moved))
    );
    let period = 1_000_000_000 / 99;
    let stayed = build(period);
    assert_eq!(stayed.model.sample_period(), period);
    let d = blockers(&stayed);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    assert_eq!(d[0].episodes[0].duration, 2 * period);
}

/// A blocking call that ran on CPU in the kernel (a read of a cold file doing page-cache work
/// before its first disk wait) is that call's blocking: its kind, on the row of the call's
/// waits off CPU, never a "long poll" to split with yields. CPU work of the program's own, and
/// a run of samples in different calls, stay long polls.
#[test]
fn a_blocking_call_on_cpu_is_told_as_the_call() {
    let period = 1_000_000_000 / 99;
    let read = |leaf: Frame| {
        in_task(vec![
            leaf,
            lib("std::fs::read::inner"),
            user("app::load::{{closure}}", 12),
        ])
    };
    let build = |leaves: &[Frame], waits: bool| {
        let mut s = Synth::new();
        s.thread(10, "w");
        s.writer.set_task_source("test");
        for k in 0..5 {
            let at = START + 10 * MS + k as u64 * period;
            s.sample_in_task(at, 10, &read(leaves[k % leaves.len()].clone()), 4, 9);
        }
        if waits {
            s.off_cpu_in_task(START + 80 * MS, 10, 20 * MS, 0, 2, &read(lib("read")), 4);
        }
        s.sample(START + 200 * MS, 10, &parked());
        s.analyze()
    };
    // In `read` every time, then waiting on the disk: one file_io row, both episodes.
    let a = build(&[lib("read")], true);
    let d = blockers(&a);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    assert_eq!(d[0].kind, Kind::FileIo);
    assert_eq!(d[0].episodes.len(), 2);
    assert_eq!(d[0].episodes.iter().filter(|e| e.on_cpu()).count(), 1);
    let json: serde_json::Value = serde_json::from_str(&report_of(&a).to_json()).unwrap();
    assert_eq!(json["blocking"][0]["kind"], "file_io");
    assert_eq!(json["blocking"][0]["detection"], "off_cpu");
    // Only on CPU: still the call's kind, found by sampling.
    let a = build(&[lib("read")], false);
    let d = blockers(&a);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    assert_eq!(d[0].kind, Kind::FileIo);
    assert_eq!(d[0].episodes[0].duration, 5 * period);
    let json: serde_json::Value = serde_json::from_str(&report_of(&a).to_json()).unwrap();
    assert_eq!(json["blocking"][0]["detection"], "long_poll");
    // Calls of one kind: that kind.
    let a = build(&[lib("read"), lib("__libc_write")], false);
    assert_eq!(blockers(&a)[0].kind, Kind::FileIo);
    // The program's own code under the call path (not in a system call), or calls of two kinds:
    // long polls.
    for inner in [
        vec![user("app::parse", 30)],
        vec![lib("read"), user("app::parse", 30)],
        vec![lib("read"), lib("sendto")],
    ] {
        let a = build(&inner, false);
        let d = blockers(&a);
        assert_eq!(d.len(), 1, "{:?}", names(&d));
        assert_eq!(d[0].kind, Kind::Cpu, "{inner:?}");
    }
}

/// A blocker names the tasks it happened in; the report's JSON lists them and the source.
#[test]
fn a_blocker_lists_the_tasks_it_happened_in() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.writer.set_task_source("tokio CONTEXT.current_task_id");
    let sleepy = in_task(vec![
        lib("std::thread::sleep"),
        user("app::handler::{{closure}}", 40),
    ]);
    for (i, task) in [5u64, 5, 6].into_iter().enumerate() {
        let end = START + (20 + 20 * i as u64) * MS;
        s.off_cpu(end, 10, 5 * MS, 0, 1, &sleepy);
        s.writer.push_event_task(
            hud_format::types::COPY_OF_OFF_CPU,
            end,
            10,
            task,
            hud_format::wire::NO_TICK,
        );
    }
    s.sample(START + 200 * MS, 10, &parked());
    let a = s.analyze();
    let d = blockers(&a);
    assert_eq!(d.len(), 1, "{:?}", names(&d));
    assert_eq!(d[0].tasks(), vec![(5, 2, 10 * MS), (6, 1, 5 * MS)]);
    let report = report_of(&a);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["blocking"][0]["tasks"][0]["id"], 5);
    assert_eq!(json["blocking"][0]["tasks"][0]["count"], 2);
    assert_eq!(json["tasks"]["available"], true);
    assert_eq!(json["tasks"]["source"], "tokio CONTEXT.current_task_id");
    assert_eq!(json["tasks"]["count"], 2);
    let text = hud_analyze::view::report::text::render(&report, 5, false);
    assert!(
        text.contains("in 2 tasks: ids 5 (2×, 10.0 ms), 6 (1×, 5.0 ms)"),
        "{text}"
    );
}

/// Without task ids, the report says why, once.
#[test]
fn a_capture_without_task_ids_says_why() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.writer
        .set_task_source("none: the binary has no DWARF debug info");
    s.sample(START + 10 * MS, 10, &parked());
    let a = s.analyze();
    let json: serde_json::Value = serde_json::from_str(&report_of(&a).to_json()).unwrap();
    assert_eq!(json["tasks"]["available"], false);
    assert_eq!(
        json["tasks"]["source"],
        "the binary has no DWARF debug info"
    );
    let text = hud_analyze::view::report::text::render(&report_of(&a), 5, false);
    assert!(
        text.contains("Tasks (no task ids: the binary has no DWARF debug info)"),
        "{text}"
    );
}

/// The scheduler tick read with a sample says the thread held a runtime's core, and which kind:
/// a thread whose stacks were all cut short is still a worker (or a current_thread runtime).
#[test]
fn a_tick_names_the_runtime_thread_a_cut_short_stack_cannot() {
    use hud_format::wire::{TICK_KIND_SHIFT, TICK_OF_CURRENT_THREAD, TICK_OF_MULTI_THREAD};
    let mut s = Synth::new();
    s.thread(10, "svc-a");
    s.thread(11, "svc-b");
    s.writer.set_task_source("test");
    for i in 0..4u64 {
        let ts = START + (10 + 10 * i) * MS;
        let tick = |kind: u64| (kind << TICK_KIND_SHIFT) | (100 + i);
        s.sample_in_task(ts, 10, &cut_short(), 7, tick(TICK_OF_MULTI_THREAD));
        s.sample_in_task(ts, 11, &cut_short(), 8, tick(TICK_OF_CURRENT_THREAD));
    }
    let a = s.analyze();
    assert_eq!(a.model.threads[&10].role, Role::Worker);
    assert_eq!(a.model.threads[&11].role, Role::CurrentThread);
}

/// Two async paths into one CPU-heavy helper: a sync `compact` called from a loop, and an async
/// `reconcile` calling the helper itself. Two blockers, each named by its own call, the helper
/// as the hottest leaf of the first.
#[test]
fn two_paths_into_one_helper_are_two_calls() {
    let mut s = Synth::new();
    s.thread(10, "w");
    let via_compact = in_task(vec![
        user("app::hash_block", 25),
        user("app::compact", 60),
        user("app::janitor::{{closure}}", 70),
    ]);
    let via_reconcile = in_task(vec![
        user("app::hash_block", 25),
        user("app::reconcile::{{closure}}", 80),
    ]);
    // Polls of 4 samples, 10 ms apart, separated by parks.
    for poll in 0..6u64 {
        let stack = if poll % 2 == 0 {
            &via_compact
        } else {
            &via_reconcile
        };
        let t0 = START + poll * 100 * MS;
        for i in 0..4 {
            s.sample(t0 + i * 10 * MS, 10, stack);
        }
        s.switch(t0 + 45 * MS, 10, false, 1);
        s.switch(t0 + 50 * MS, 10, true, 0);
    }
    let a = s.analyze();
    let d = blockers(&a);
    let calls: Vec<(String, String, u32, String)> = d
        .iter()
        .map(|b| {
            let site = b.call.site.as_ref().unwrap();
            (
                b.call.callee.as_ref().unwrap().function.to_string(),
                site.function.to_string(),
                site.line,
                b.leaf.as_ref().unwrap().0.function.to_string(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "app::compact".into(),
                "app::janitor::{{closure}}".into(),
                70,
                "app::hash_block".into()
            ),
            (
                "app::hash_block".into(),
                "app::reconcile::{{closure}}".into(),
                80,
                "app::hash_block".into()
            ),
        ]
    );
    let text = hud_analyze::view::report::text::render(&report_of(&a), 5, false);
    assert!(
        text.contains(
            "[long poll] app::compact called in app::janitor::{{closure}}  app/src/main.rs:70"
        ),
        "{text}"
    );
    assert!(
        text.contains("hottest: app::hash_block  app/src/main.rs:25, 100 % of samples"),
        "{text}"
    );
    assert!(
        text.contains(
            "[long poll] app::hash_block called in app::reconcile::{{closure}}  app/src/main.rs:80"
        ),
        "{text}"
    );
}

/// A lock taken inside a dependency, with no frame of the program on the path (an actix-style
/// server): blamed on the dependency's outermost frame inside the poll, never on libc's
/// `syscall`, and said so.
#[test]
fn a_blocker_without_the_programs_frames_is_blamed_on_the_dependency() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    let dep = |f: &str| {
        let mut frame = lib(f);
        frame.file = Some(
            "/home/u/.cargo/registry/src/index.crates.io-1/actix-server-2.0/src/worker.rs".into(),
        );
        frame
    };
    let lock = in_task(vec![
        lib("syscall"),
        dep("parking_lot::raw_mutex::RawMutex::lock_slow"),
        dep("actix_server::worker::ServerWorker::accept"),
        dep("<actix_server::worker::ServerWorker as core::future::future::Future>::poll"),
    ]);
    s.off_cpu(START + 100 * MS, 10, 8 * MS, 0, 1, &lock);
    let a = s.analyze();
    let d = blockers(&a);
    assert_eq!(d.len(), 1);
    let b = &d[0];
    assert_eq!(b.kind, Kind::Lock);
    assert!(b.call.in_dependency);
    assert_eq!(
        &*b.call.callee.as_ref().unwrap().function,
        "<actix_server::worker::ServerWorker as core::future::future::Future>::poll"
    );
    let text = hud_analyze::view::report::text::render(&report_of(&a), 5, false);
    assert!(
        text.contains("(in a dependency: no frame of the program's code on the path)"),
        "{text}"
    );
    let advice = hud_analyze::analysis::advice::advise(b, &a.model).text;
    assert!(
        advice.starts_with("no frame of the program's own code"),
        "{advice}"
    );
}

/// Two blockers whose calls read alike (one async fn reached from two lines of its caller):
/// each row says what tells it apart.
#[test]
fn rows_that_read_alike_say_what_tells_them_apart() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    let via = |line: u32| {
        in_task(vec![
            lib("clock_nanosleep"),
            lib("std::thread::sleep"),
            user("app::render::{{closure}}", 1233),
            user("app::serve::{{closure}}", line),
        ])
    };
    s.off_cpu(START + 100 * MS, 10, 10 * MS, 0, 1, &via(30));
    s.off_cpu(START + 200 * MS, 10, 20 * MS, 0, 1, &via(31));
    let a = s.analyze();
    assert_eq!(blockers(&a).len(), 2);
    let text = hud_analyze::view::report::text::render(&report_of(&a), 5, false);
    assert!(
        text.contains("unlike row 2: through app::serve::{{closure}}  app/src/main.rs:31"),
        "{text}"
    );
    assert!(
        text.contains("unlike row 1: through app::serve::{{closure}}  app/src/main.rs:30"),
        "{text}"
    );
}
