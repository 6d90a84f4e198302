//! End to end with real eBPF: record the demo with hud-record, analyze it with hud-analyze, and
//! check the report against testdata/demo/GROUND_TRUTH.md, and CPU shares against perf.
//! Needs root; skips without it unless HUD_REQUIRE_EBPF=1 (CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hud_test_harness::{
    demo_binary, ebpf_ready, echo_binary, median, next_demo_binary, next_release_line,
    nofp_demo_binary, old_tokio_binary, record, record_binary, recorded, serial, tailcall_binary,
    timings, truth_line, truth_line_in, Demo, Recorded, Timed, Tmux,
};
use serde_json::Value;

const ANALYZE: &str = env!("CARGO_BIN_EXE_hud-analyze");

fn ready() -> bool {
    ebpf_ready(&[demo_binary(), record_binary()])
}

/// The demo built without frame pointers (`cargo xtask build`).
fn nofp_ready() -> bool {
    ebpf_ready(&[nofp_demo_binary(), record_binary()])
}

/// The demo without frame pointers, recorded for `seconds` with `extra` recorder options, timed.
fn recorded_nofp_demo(seconds: u32, extra: &[&str]) -> Recorded {
    recorded(&nofp_demo_binary(), &[], seconds, extra, true)
}

/// Built without frame pointers (as most services are) and recorded with the default options,
/// the demo's stacks are unwound in the kernel with its `.eh_frame`; with `--unwind dwarf`,
/// offline from copies of whole stacks. Either way: the four documented blockers, their lines,
/// the long poll's duration and the roles, as with frame pointers.
#[test]
fn a_binary_without_frame_pointers_is_unwound_in_the_kernel_or_from_copies() {
    let _serial = serial();
    if !nofp_ready() {
        return;
    }
    for (extra, in_kernel) in [(&[][..], true), (&["--unwind", "dwarf"][..], false)] {
        let nofp = recorded_nofp_demo(5, extra);
        let report = report_json(&nofp.capture);
        assert_documented_blockers(&report);
        assert_long_poll_measured(
            &report,
            "cpu_heavy_checksum::",
            &timings(&nofp.timings, "cpu"),
        );
        assert_eq!(report["summary"]["status"], "caution");
        assert_eq!(
            report["summary"]["threads_by_role"]["worker"], 2,
            "{report:#}"
        );
        assert!(
            report["summary"]["unjudged_share"].as_f64().unwrap() < 0.05,
            "{:#}",
            report["summary"]
        );
        let stacks = &report["capture"]["stack_copies"];
        let unwound = stacks["table_unwound"].as_u64().unwrap();
        let stopped = stacks["table_stopped"].as_u64().unwrap();
        if in_kernel {
            // Nearly every stack whole from the table; the few it could not finish copied.
            assert!(unwound > 1000, "{stacks:#}");
            assert!(stopped * 50 < unwound, "{stacks:#}");
            assert!(stacks["copies"].as_u64().unwrap() <= stopped, "{stacks:#}");
        } else {
            assert_eq!(unwound + stopped, 0, "{stacks:#}");
            assert!(stacks["deepened"].as_u64().unwrap() > 100, "{stacks:#}");
            assert!(
                stacks["largest_bytes"].as_u64().unwrap() > 4096,
                "{stacks:#}"
            );
        }
        assert!(
            !report["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("frame pointers")),
            "{:#}",
            report["warnings"]
        );
    }
}

/// An actix-style service without frame pointers (current_thread runtimes on threads of its
/// own, calling `spawn_blocking`) whose blocking call is made 26 KiB of stack below the task's
/// poll: default options (the kernel unwinds it whole with the `.eh_frame` table) find it with
/// its line, every arbiter's role is current_thread (not
/// blocking pool, although they call into the pool), and the pool's threads, named like Tokio's
/// workers, are blocking pool.
#[test]
fn deep_stacks_without_frame_pointers_keep_their_blocker_and_roles() {
    let _serial = serial();
    let deep = nofp_demo_binary().with_file_name("hud-deep");
    if !ebpf_ready(&[deep.clone(), record_binary()]) {
        return;
    }
    let recorded = recorded(&deep, &[], 3, &[], false);
    let report = report_json(&recorded.capture);
    let blocker = find(&report, "deep_wait")
        .unwrap_or_else(|| panic!("no blocker names deep_wait: {:#}", report["blocking"]));
    assert_eq!(blocker["kind"], "sleep", "{blocker:#}");
    assert_eq!(
        blocker["line"].as_u64(),
        Some(truth_line_in("src/bin/hud-deep.rs", "deep_wait")),
        "{blocker:#}"
    );
    assert!(blocker["count"].as_u64().unwrap() >= 100, "{blocker:#}");
    assert_eq!(
        report["blocking"].as_array().unwrap().len(),
        1,
        "{:#}",
        report["blocking"]
    );
    for w in report["workers"].as_array().unwrap() {
        let (name, role) = (w["name"].as_str().unwrap(), w["role"].as_str().unwrap());
        if name.starts_with("arbiter-") {
            assert_eq!(role, "current_thread", "{w:#}");
        } else if name.starts_with("tokio-") {
            assert_eq!(role, "blocking_pool", "{w:#}");
        }
    }
    assert_eq!(
        report["summary"]["threads_by_role"]["current_thread"], 2,
        "{:#}",
        report["summary"]
    );
    assert!(
        report["summary"]["unjudged_share"].as_f64().unwrap() < 0.05,
        "{:#}",
        report["summary"]
    );
    // 26 KiB deep, whole from the kernel's table: no stack bytes copied.
    let stacks = &report["capture"]["stack_copies"];
    let unwound = stacks["table_unwound"].as_u64().unwrap();
    assert!(unwound >= 100, "{stacks:#}");
    assert!(
        stacks["table_stopped"].as_u64().unwrap() * 50 < unwound,
        "{stacks:#}"
    );
}

/// hud-yield without frame pointers, default options, a poll of 40 ms of CPU planted every
/// 500 ms among busy 1 ms polls: the planted polls made while recording are found as long polls
/// on the thread that made them, and their p50 is within a sampling period of their 40 ms. (At
/// 20 ms: 47 of 48 found over three 8 s runs on an idle machine; with two busy loops sharing the
/// 2 CPUs, about 6 of 12: a poll preempted half the time meets the 99 Hz ticks about twice,
/// P(at least 2 samples) = 11/16. At 40 ms that is 247/256, so the test holds under load.) The
/// 1 ms polls of the other tasks, back to back on workers that never park, are no long poll:
/// the task id and the scheduler's tick read with each sample tell their polls apart.
#[test]
fn a_planted_long_poll_among_busy_short_polls_is_found() {
    planted_long_poll_among_busy_short_polls(&[]);
}

/// The same without task ids (as from a target built with `debug = 1`, whose debug info has no
/// types): the runtime's I/O driver polls between the short polls (each yields) tell them apart,
/// where samples alone chained them into long polls of 0.8 s (dozens of samples). Between two
/// driver polls a worker may poll several tasks, so under CPU contention (a busy loop beside the
/// test: 10 such in 6 s) two samples of different polls can still read as one: those are never
/// longer than two samples, and each is an upper bound.
#[test]
fn a_planted_long_poll_among_busy_short_polls_is_found_without_task_ids() {
    planted_long_poll_among_busy_short_polls(&["--no-task-ids"]);
}

fn planted_long_poll_among_busy_short_polls(recorder_args: &[&str]) {
    let with_ids = !recorder_args.contains(&"--no-task-ids");
    let _serial = serial();
    let binary = nofp_demo_binary().with_file_name("hud-yield");
    if !ebpf_ready(&[binary.clone(), record_binary()]) {
        return;
    }
    let recorded = recorded(&binary, &["--planted-ms", "40"], 6, recorder_args, true);
    let analysis = hud_analyze::pipeline::analyze_path(
        &recorded.capture,
        hud_analyze::analysis::Options::default(),
        &hud_analyze::observer::Silent,
    )
    .unwrap();
    let m = &analysis.model;
    let d = &analysis.detection;
    let (planted, others): (Vec<&hud_analyze::analysis::detect::Episode>, Vec<_>) = d
        .episodes
        .iter()
        .filter(|e| e.kind == hud_analyze::analysis::frames::Kind::Cpu)
        .partition(|e| {
            d.groups[e.group as usize]
                .user_path
                .iter()
                .any(|f| f.function.contains("planted"))
        });
    if with_ids {
        assert!(
            others.is_empty(),
            "{} false long polls among the 1 ms polls, e.g. {:?}",
            others.len(),
            others.first()
        );
    } else {
        assert!(
            others.iter().all(|e| e.samples <= 2 && !e.proven),
            "long polls chained across the runtime's I/O polls: {others:?}"
        );
    }
    // Calls wholly inside the recording (a sampling period away from its ends).
    let margin = 20_000_000;
    let calls: Vec<Timed> = timings(&recorded.timings, "cpu")
        .into_iter()
        .filter(|c| c.start_ns > m.start + margin && c.end_ns + margin < m.end)
        .collect();
    assert!(
        calls.len() >= 8,
        "{} planted calls while recording",
        calls.len()
    );
    let found = calls
        .iter()
        .filter(|c| {
            planted
                .iter()
                .any(|e| e.tid == c.tid && e.start < c.end_ns && c.start_ns < e.end())
        })
        .count();
    assert!(
        found * 4 >= calls.len() * 3,
        "{found} of {} planted polls found as long polls",
        calls.len()
    );
    let report = report_json(&recorded.capture);
    let blocker = report["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["kind"] == "cpu"
                && b["user_path"].as_array().is_some_and(|p| {
                    p.iter()
                        .any(|f| f["function"].as_str().unwrap().contains("planted"))
                })
        })
        .unwrap_or_else(|| panic!("no planted long poll: {:#}", report["blocking"]));
    // The call of planted_poll in the planted task, at its ground-truth line.
    let truth = truth_line_in("src/bin/hud-yield.rs", "planted_poll");
    assert!(
        blocker["user_path"].as_array().unwrap().iter().any(|f| {
            f["function"].as_str().unwrap().contains("planted") && f["line"].as_u64() == Some(truth)
        }),
        "{blocker:#}"
    );
    // 40 ms of CPU each (the workload sizes its work at start): what a long poll's duration
    // estimates. (The calls' wall time is longer on a loaded machine.)
    let p50 = blocker["p50_ms"].as_f64().unwrap();
    let period_ms = 1e3 / report["capture"]["sample_hz"].as_f64().unwrap();
    assert!(
        (p50 - 40.0).abs() <= period_ms,
        "planted long poll p50 {p50} ms for polls of 40 ms of CPU"
    );
}

/// `diff` on real recordings of hud-tasks: a blocker added (exit 12 with
/// `--fail-on-new-blocker`), removed (gone), and grown (its pause doubled: exit 13 with
/// `--fail-on-growth 25`); two recordings of one build pass both gates.
#[test]
fn diff_calls_new_gone_and_grown_blockers_and_gates_on_them() {
    let _serial = serial();
    let binary = nofp_demo_binary().with_file_name("hud-tasks");
    if !ebpf_ready(&[binary.clone(), record_binary()]) {
        return;
    }
    let record = |blocker: &str, pause: &str| {
        recorded(
            &binary,
            &["--blocker", blocker, "--pause-ms", pause],
            3,
            &[],
            false,
        )
    };
    let (base, again, none, longer) = (
        record("3", "8"),
        record("3", "8"),
        record("99", "8"),
        record("3", "16"),
    );
    let diff = |a: &Path, b: &Path, gates: &[&str]| -> (Value, i32) {
        let mut args = vec!["diff", "--json", a.to_str().unwrap(), b.to_str().unwrap()];
        args.extend(gates);
        let out = analyze(&args);
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (json, out.status.code().unwrap_or(-1))
    };
    let pause = |d: &Value| -> Value {
        d["blockers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["function"].as_str().unwrap().contains("blocking_pause"))
            .cloned()
            .unwrap_or_else(|| panic!("{d:#}"))
    };
    // A doubled pause in a 10 ms loop: 8/18 → 16/26 of each second blocked, +39 %.
    let gates = ["--fail-on-new-blocker", "--fail-on-growth", "25"];
    let (same, code) = diff(&base.capture, &again.capture, &gates);
    assert_eq!(code, 0, "one build twice: {:#}", same["blockers"]);
    assert_eq!(
        same["summary"]["verdict"], "no blocker changed beyond noise",
        "{same:#}"
    );
    let (added, code) = diff(&none.capture, &base.capture, &gates);
    assert_eq!(code, 12, "{added:#}");
    assert_eq!(pause(&added)["change"], "new");
    let (removed, code) = diff(&base.capture, &none.capture, &gates);
    assert_eq!(code, 0, "a gone blocker fails no gate");
    assert_eq!(pause(&removed)["change"], "gone");
    assert_eq!(pause(&removed)["beyond_noise"], true);
    let (grown, code) = diff(&base.capture, &longer.capture, &gates);
    assert_eq!(code, 13, "{grown:#}");
    let p = pause(&grown);
    assert_eq!(p["change"], "grown", "{p:#}");
    let (b, n) = (
        p["base"]["p50_ms"].as_f64().unwrap(),
        p["new"]["p50_ms"].as_f64().unwrap(),
    );
    assert!(b > 7.0 && b < 10.0 && n > 15.0 && n < 19.0, "{p:#}");
}

/// Two builds of the demo, the release and its next one (feature `next-release`,
/// GROUND_TRUTH.md): the sleep fixed is `gone`, the audit call added is `new` (the gate fails
/// with 12), the checksum grown from 20 to 45 ms is `grown`, and the lock a few lines further
/// down is the same blocker, its line moved.
#[test]
fn diff_of_two_builds_calls_each_change_and_the_moved_line() {
    let _serial = serial();
    if !ebpf_ready(&[demo_binary(), next_demo_binary(), record_binary()]) {
        return;
    }
    let base = recorded(&demo_binary(), &[], 6, &[], false);
    let new = recorded(&next_demo_binary(), &[], 6, &[], false);
    let (base, new) = (
        base.capture.to_str().unwrap(),
        new.capture.to_str().unwrap(),
    );
    let out = analyze(&["diff", "--json", base, new, "--fail-on-new-blocker"]);
    let d: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(12), "{d:#}");
    let rows = |function: &str| -> Vec<Value> {
        d["blockers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["function"].as_str().unwrap().contains(function))
            .cloned()
            .collect()
    };
    let row = |function: &str, kind: &str| -> Value {
        rows(function)
            .into_iter()
            .find(|b| b["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} row for {function}: {d:#}"))
    };
    let changed = |function: &str, kind: &str, change: &str| {
        let b = row(function, kind);
        assert_eq!(
            (&b["change"], &b["beyond_noise"]),
            (&Value::from(change), &Value::from(true)),
            "{b:#}"
        );
        b
    };
    changed("audit_request", "sleep", "new");
    changed("sleepy_handler", "sleep", "gone");
    let grown = changed("cpu_heavy_checksum", "long poll", "grown");
    let p50 = |side: &str| grown[side]["p50_ms"].as_f64().unwrap();
    assert!(p50("new") > 1.8 * p50("base"), "{grown:#}");
    // The lock: one row, its line moved; its waits come in bursts (the holder's 77 ms cycle
    // drifts 4 ms an update against the updates' 150 ms), so whether the rate moved is for the
    // noise test to say, not this one.
    let lock = rows("locked_cache_update");
    assert_eq!(lock.len(), 1, "one row for the moved lock: {d:#}");
    assert_eq!(
        lock[0]["line_moved"],
        serde_json::json!([
            truth_line("locked_cache_update"),
            next_release_line("locked_cache_update")
        ]),
        "{:#}",
        lock[0]
    );
    // The text says the same, with the moved line.
    let text = analyze(&["diff", base, new]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "main.rs:{} → :{}",
            truth_line("locked_cache_update"),
            next_release_line("locked_cache_update")
        )),
        "{text}"
    );
}

/// Six tasks of one future type, of which one blocks: the blocker names that task's id (the one
/// the workload printed with `tokio::task::id()`) and no other, on a multi-thread runtime, on
/// a current_thread runtime on a thread of its own, and with both runtimes in one process (the
/// blocker on the current_thread one), built without frame pointers.
#[test]
fn the_blocker_names_the_one_task_that_blocked() {
    let _serial = serial();
    let binary = nofp_demo_binary().with_file_name("hud-tasks");
    if !ebpf_ready(&[binary.clone(), record_binary()]) {
        return;
    }
    for (runtime, blocker) in [
        (None, 3usize),
        (Some("--current-thread"), 5),
        (Some("--two-runtimes"), 8),
    ] {
        let two = runtime == Some("--two-runtimes");
        let dir = tempfile::tempdir().unwrap();
        let ids_path = dir.path().join("ids");
        let blocker_arg = blocker.to_string();
        let mut args = vec![
            "--blocker",
            &blocker_arg,
            "--ids",
            ids_path.to_str().unwrap(),
        ];
        args.extend(runtime);
        let recorded = recorded(&binary, &args, 3, &[], false);
        // `session INDEX TASK_ID`, one line per session.
        let ids: Vec<(usize, u64)> = std::fs::read_to_string(&ids_path)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect();
        assert_eq!(ids.len(), if two { 12 } else { 6 }, "{ids:?}");
        let blocking_id = ids.iter().find(|(i, _)| *i == blocker).unwrap().1;
        let report = report_json(&recorded.capture);
        let tasks = &report["tasks"];
        assert_eq!(tasks["available"], true, "{tasks:#}");
        let b = find(&report, "blocking_pause")
            .unwrap_or_else(|| panic!("{runtime:?}: no blocker: {:#}", report["blocking"]));
        assert_eq!(b["kind"], "sleep");
        let blamed: Vec<u64> = b["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        assert_eq!(blamed, vec![blocking_id], "{runtime:?}: ids {ids:?}");
        assert_eq!(
            b["tasks"][0]["count"], b["count"],
            "every episode has its task"
        );
        // The table lists the sessions hud saw (a task is seen when a sample hits it or it
        // blocks: a session computes 0.2 ms in 10 ms, so in 3 s one may go unsampled) by the ids
        // they printed, as `session`s (or, where all of a task's few stacks were cut short, with
        // no kind: never a wrong one). Other tasks are the workers' own (the runtime starts them
        // as blocking tasks).
        let top = tasks["top"].as_array().unwrap();
        let sessions_seen: Vec<&Value> = top
            .iter()
            .filter(|t| ids.iter().any(|(_, id)| t["id"].as_u64() == Some(*id)))
            .collect();
        assert!(sessions_seen.len() >= 2, "{top:#?}");
        for row in &sessions_seen {
            assert!(
                row["kind"].is_null()
                    || row["kind"]["function"]
                        .as_str()
                        .unwrap()
                        .contains("session::"),
                "{row:#}"
            );
        }
        for t in top
            .iter()
            .filter(|t| !ids.iter().any(|(_, id)| t["id"].as_u64() == Some(*id)))
        {
            assert!(
                t["kind"].is_null()
                    || t["kind"]["function"]
                        .as_str()
                        .unwrap()
                        .contains("tokio::runtime"),
                "{t:#}"
            );
        }
        let blocking_row = top
            .iter()
            .find(|t| t["id"].as_u64() == Some(blocking_id))
            .unwrap();
        assert!(blocking_row["blocked_ms"].as_f64().unwrap() > 0.0);
        // Its blocking stacks are whole: its kind is known.
        assert!(
            blocking_row["kind"]["function"]
                .as_str()
                .is_some_and(|f| f.contains("session::")),
            "{blocking_row:#}"
        );
        assert!(tasks["top"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["id"].as_u64() != Some(blocking_id))
            .all(|t| t["blocked_ms"].as_f64() == Some(0.0)));
        if two {
            // Each runtime's threads in their role, and the blocker on the current_thread one.
            let roles: Vec<(&str, &str)> = report["workers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| (w["name"].as_str().unwrap(), w["role"].as_str().unwrap()))
                .collect();
            assert!(
                roles.contains(&("side-loop", "current_thread")),
                "{roles:?}"
            );
            assert_eq!(
                roles
                    .iter()
                    .filter(|r| **r == ("conn-worker", "worker"))
                    .count(),
                2,
                "{roles:?}"
            );
            let threads: Vec<u64> = b["threads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap())
                .collect();
            assert_eq!(threads.len(), 1, "{:#}", b);
        }
    }
}

/// The same sessions on tokio 1.38, whose `Option<task::Id>` has a tag instead of a niche and
/// whose `Context` is laid out otherwise: read from its debug info, one task id and no other is
/// named for the blocker, and six tasks of the kind `session` are seen. (tokio 1.38 cannot print
/// its ids: they are checked for consistency.)
#[test]
fn task_ids_are_read_from_an_older_tokio() {
    let _serial = serial();
    let binary = old_tokio_binary();
    if !ebpf_ready(&[binary.clone(), record_binary()]) {
        return;
    }
    let recorded = recorded(&binary, &[], 3, &[], false);
    let report = report_json(&recorded.capture);
    let tasks = &report["tasks"];
    assert_eq!(tasks["available"], true, "{tasks:#}");
    assert!(
        tasks["source"].as_str().unwrap().contains("tagged"),
        "{tasks:#}"
    );
    let b = find(&report, "blocking_pause")
        .unwrap_or_else(|| panic!("no blocker: {:#}", report["blocking"]));
    let blamed = b["tasks"].as_array().unwrap();
    assert_eq!(blamed.len(), 1, "{b:#}");
    assert_eq!(blamed[0]["count"], b["count"]);
    // Six sessions, and the runtime's two workers (blocking tasks of their own): at least the
    // sessions whose stacks reached their poll are named `session`, the blocking one among them.
    let top = tasks["top"].as_array().unwrap();
    let sessions: Vec<&Value> = top
        .iter()
        .filter(|t| {
            t["kind"]["function"]
                .as_str()
                .is_some_and(|f| f.contains("session"))
        })
        .collect();
    assert!(
        (1..=6).contains(&sessions.len()) && top.len() <= 8,
        "{tasks:#}"
    );
    assert!(sessions.iter().any(|t| t["id"] == blamed[0]["id"]));
}

/// Recorded with `--unwind fp` (no copies), the binary without frame pointers gives stacks cut
/// short: the verdict is UNKNOWN (never a green "nothing blocked"), says which option to drop,
/// and the CI gate exits 11 instead of passing.
#[test]
fn stacks_nobody_could_read_are_unknown_and_fail_the_gate() {
    let _serial = serial();
    if !nofp_ready() {
        return;
    }
    let nofp = recorded_nofp_demo(2, &["--unwind", "fp"]);
    let report = report_json(&nofp.capture);
    let summary = &report["summary"];
    assert_eq!(summary["status"], "unknown", "{summary:#}");
    assert!(
        summary["unjudged_share"].as_f64().unwrap() > 0.9,
        "{summary:#}"
    );
    let fix = summary["unjudged_fix"].as_str().unwrap();
    assert!(fix.contains("--unwind fp"), "{fix}");
    let verdict = summary["verdict"].as_str().unwrap();
    assert!(verdict.contains("could not judge"), "{verdict}");
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("built without frame pointers"),
        "{warnings}"
    );
    let p = nofp.capture.to_str().unwrap();
    let gate = analyze(&["report", p, "--fail-on-blocking", "5ms"]);
    assert_eq!(gate.status.code(), Some(11), "{gate:?}");
    assert!(
        String::from_utf8_lossy(&gate.stderr).contains("could not be judged"),
        "{gate:?}"
    );
}

/// The demo (started with `extra`) recorded for `seconds` into a temporary directory.
fn recorded_demo(seconds: u32, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let r = recorded(&demo_binary(), extra, seconds, &[], false);
    (r.dir, r.capture)
}

fn analyze(args: &[&str]) -> Output {
    Command::new(ANALYZE).args(args).output().unwrap()
}

fn report_json(path: &Path) -> Value {
    let out = analyze(&["report", "--json", "--top", "50", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// The long poll blamed on `function` lasted what the workload measured: its p50 within one
/// sampling period of the median call the workload timed (a poll's length is known to the
/// sample, so to a period).
fn assert_long_poll_measured(report: &Value, function: &str, calls: &[Timed]) {
    let blocker = find(report, function)
        .unwrap_or_else(|| panic!("no long poll in {function}: {:#}", report["blocking"]));
    let p50 = blocker["p50_ms"].as_f64().unwrap();
    let measured = median(&calls.iter().map(Timed::ms).collect::<Vec<_>>());
    let period_ms = 1e3 / report["capture"]["sample_hz"].as_f64().unwrap();
    assert!(
        (p50 - measured).abs() <= period_ms,
        "{function}: long poll p50 {p50} ms, the workload measured a median of {measured} ms \
         over {} calls (sampling period {period_ms:.1} ms)",
        calls.len()
    );
}

fn find<'a>(report: &'a Value, function: &str) -> Option<&'a Value> {
    report["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["function"].as_str().unwrap().contains(function))
}

/// The report names the demo's four documented blockers (GROUND_TRUTH.md) with their
/// functions, kinds and lines, and not its spawn_blocking work.
fn assert_documented_blockers(report: &Value) {
    let text = serde_json::to_string_pretty(&report["blocking"]).unwrap();

    for (name, kind) in [
        ("sleepy_handler", "sleep"),
        ("locked_cache_update", "lock"),
        ("read_data_file", "file_io"),
    ] {
        // Of that kind: a function may also show as another kind (read_data_file as a long poll
        // when the page cache still holds its 8 MiB: GROUND_TRUTH.md).
        let b = report["blocking"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| {
                b["function"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{name}::"))
                    && b["kind"] == kind
            })
            .unwrap_or_else(|| panic!("{name} not reported as {kind}:\n{text}"));
        assert_eq!(b["detection"], "off_cpu");
        assert!(
            b["file"]
                .as_str()
                .unwrap()
                .ends_with("testdata/demo/src/main.rs"),
            "{name}: {}",
            b["file"]
        );
        assert_eq!(b["line"].as_u64().unwrap(), truth_line(name), "{name} line");
        assert!(
            b["task"]["function"].as_str().unwrap().contains(name),
            "{name} task"
        );
        assert!(b["count"].as_u64().unwrap() >= 3, "{name} count");
    }
    let sleep = find(report, "sleepy_handler::").unwrap();
    let p50 = sleep["p50_ms"].as_f64().unwrap();
    assert!(
        (p50 - 15.0).abs() < 3.0,
        "sleep p50 {p50} ms, the demo sleeps 15 ms"
    );

    let cpu = find(report, "cpu_heavy_checksum::")
        .unwrap_or_else(|| panic!("long poll not reported:\n{text}"));
    assert_eq!(cpu["kind"], "cpu");
    assert_eq!(cpu["detection"], "long_poll");
    let line = cpu["line"].as_u64().unwrap();
    let truth = truth_line("cpu_heavy_checksum");
    assert!(
        (truth - 3..=truth).contains(&line),
        "long poll blamed on line {line}, the loop is at {truth}"
    );

    // spawn_blocking work is never blocking.
    assert!(
        !text.contains("compress_batch"),
        "spawn_blocking work reported as blocking:\n{text}"
    );
    assert!(
        !text.contains("offloaded_compression"),
        "spawn_blocking await reported as blocking"
    );
}

#[test]
fn the_report_names_every_documented_blocker() {
    let _serial = serial();
    if !ready() {
        return;
    }
    let (_dir, path) = recorded_demo(4, &[]);
    let report = report_json(&path);
    assert_eq!(report["schema"], "hud.report/2");
    assert_documented_blockers(&report);

    let roles: Vec<(&str, &str)> = report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles.iter().filter(|(_, r)| *r == "worker").count(),
        2,
        "{roles:?}"
    );
    assert!(
        roles
            .iter()
            .any(|(n, r)| *n == "cache-janitor" && *r == "other"),
        "{roles:?}"
    );
    assert!(report["summary"]["symbol_line_coverage"].as_f64().unwrap() > 0.5);
    assert_eq!(report["summary"]["lost_records"], 0);

    // The CI gate.
    let p = path.to_str().unwrap();
    assert_eq!(
        analyze(&["report", p, "--fail-on-blocking", "5ms"])
            .status
            .code(),
        Some(10)
    );
    assert_eq!(
        analyze(&["report", p, "--fail-on-blocking", "100s"])
            .status
            .code(),
        Some(0)
    );
    // Text report on a pipe: no colour codes.
    let text = analyze(&["report", p]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("sleepy_handler") && !text.contains("\x1b["),
        "{text}"
    );

    salvaged_report_still_names_the_blockers(&path);

    // `info -` reads standard input frame by frame.
    let info = Command::new(ANALYZE)
        .args(["info", "-"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert!(info.status.success());
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.contains("cache-janitor") && info.contains("switches"),
        "{info}"
    );

    // A window of one second: the same blockers, fewer episodes, the window stated.
    let out = analyze(&[
        "report", "--json", "--top", "50", "--from", "1s", "--to", "2s", p,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let window: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(window["capture"]["window"]["from_s"], 1.0);
    assert_eq!(window["capture"]["window"]["to_s"], 2.0);
    let count = |r: &Value| find(r, "sleepy_handler").map_or(0, |b| b["count"].as_u64().unwrap());
    // Every 100 ms: about 10 in the window (one may overlap each edge).
    assert!((8..=12).contains(&count(&window)), "{}", count(&window));
    assert!(count(&report) > count(&window));
    assert!(
        window["summary"]["samples"].as_u64().unwrap()
            < report["summary"]["samples"].as_u64().unwrap()
    );
}

/// Frames the frame-pointer walk misses, put back from the code: `normalize` left by a tail
/// call into the standard library (testdata/demo/src/bin/hud-tailcall.rs, a current_thread
/// runtime) takes the blame, at its own line; and in the demo, the standard library function
/// that called libc's `read` (a leaf without a frame pointer) is back in the sync read's stack.
#[test]
fn frames_lost_to_tail_calls_and_leaves_are_put_back() {
    let _serial = serial();
    if !ready() {
        return;
    }
    let tailcall = recorded(&tailcall_binary(), &[], 3, &[], true);
    let path = tailcall.capture.clone();
    let report = report_json(&path);
    let blocker = find(&report, "normalize")
        .unwrap_or_else(|| panic!("no blocker names normalize: {:#}", report["blocking"]));
    assert_eq!(blocker["kind"], "cpu", "{blocker:#}");
    assert_eq!(
        blocker["line"].as_u64(),
        Some(truth_line_in("src/bin/hud-tailcall.rs", "normalize")),
        "{blocker:#}"
    );
    assert!(blocker["task"]["function"]
        .as_str()
        .unwrap()
        .contains("reindex"));
    let restored = blocker["stack"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"].as_str().unwrap().contains("normalize"))
        .expect("normalize in the stack");
    assert_eq!(restored["recovered"], "tail_call", "{restored:#}");
    // No blocker but this call: every row is a long poll made by reindex's one call of
    // normalize. (A poll with one sample whose walk missed the tail call shares only reindex's
    // frame with the others and is a row of its own, blamed on that call's line too: seen once
    // in a CI run, 1 poll of 20.)
    let call_line = blocker["call"]["site"]["line"].as_u64();
    for b in report["blocking"].as_array().unwrap() {
        assert_eq!(b["kind"], "cpu", "{report:#}");
        assert!(
            b["call"]["site"]["function"]
                .as_str()
                .is_some_and(|f| f.contains("reindex")),
            "{report:#}"
        );
        assert_eq!(b["call"]["site"]["line"].as_u64(), call_line, "{report:#}");
    }
    assert_long_poll_measured(
        &report,
        "normalize",
        &timings(&tailcall.timings, "normalize"),
    );

    // The walk alone (`--unwind fp`) misses the caller of libc's read; the code puts it back.
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("fp.hudcap");
    let workload = Demo::start(8.0, &[]);
    record(&workload, &demo, &["--duration", "4", "--unwind", "fp"]);
    let report = report_json(&demo);
    let read = find(&report, "read_data_file").expect("the sync read");
    let callers: Vec<&Value> = read["stack"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["recovered"] == "leaf_caller")
        .collect();
    assert!(
        callers
            .iter()
            .any(|f| f["function"].as_str().unwrap().contains("read_to_end")),
        "{:#}",
        read["stack"]
    );

    // By default the kernel unwinds libc's read with its `.eh_frame` (or, where that table
    // stops, the stack bytes the recorder copies above it give its caller): an unwound frame,
    // not a guess.
    let (_dir, leaf) = recorded_demo(4, &[]);
    let report = report_json(&leaf);
    let read = find(&report, "read_data_file").expect("the sync read");
    let caller = read["stack"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["function"]
                .as_str()
                .unwrap()
                .contains("default_read_to_end")
        })
        .unwrap_or_else(|| panic!("{:#}", read["stack"]));
    assert!(caller["recovered"].is_null(), "{caller:#}");
    let stacks = &report["capture"]["stack_copies"];
    assert!(stacks["table_unwound"].as_u64().unwrap() > 0, "{stacks:#}");
    // Copies only for what the table could not finish.
    assert!(
        stacks["deepened"].as_u64().unwrap() <= stacks["table_stopped"].as_u64().unwrap(),
        "{stacks:#}"
    );
}

#[test]
fn report_reads_a_capture_piped_from_the_recorder() {
    let _serial = serial();
    if !ready() {
        return;
    }
    let demo = Demo::start(8.0, &[]);
    let mut recorder = Command::new(record_binary())
        .args([
            "--pid",
            &demo.pid().to_string(),
            "-q",
            "--duration",
            "3",
            "-o",
            "-",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = recorder.stdout.take().unwrap();
    // The analyzer reads frame by frame as the recorder writes them.
    let out = Command::new(ANALYZE)
        .args(["report", "--json", "--top", "50", "-"])
        .stdin(pipe)
        .output()
        .unwrap();
    assert!(recorder.wait().unwrap().success());
    drop(demo);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sleep = find(&report, "sleepy_handler").expect("sleepy_handler from a pipe");
    assert_eq!(
        sleep["line"].as_u64().unwrap(),
        truth_line("sleepy_handler")
    );
    assert_eq!(
        report["capture"]["notices"].as_array().unwrap().len(),
        0,
        "closed cleanly: {}",
        report["capture"]["notices"]
    );
}

#[test]
fn custom_worker_names_are_recognised_from_stacks() {
    let _serial = serial();
    if !ready() {
        return;
    }
    let (_dir, path) = recorded_demo(3, &["--thread-name", "edge-io"]);
    let report = report_json(&path);
    let workers: Vec<&Value> = report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["name"] == "edge-io")
        .collect();
    let worker_roles = workers.iter().filter(|w| w["role"] == "worker").count();
    let pool_roles = workers
        .iter()
        .filter(|w| w["role"] == "blocking_pool")
        .count();
    assert_eq!(worker_roles, 2, "{workers:?}");
    assert!(
        pool_roles >= 1,
        "the spawn_blocking thread, also named edge-io: {workers:?}"
    );
    assert!(find(&report, "sleepy_handler::").is_some());
}

/// perf's self share per user-space symbol: `perf report --no-children --sort sym`.
fn perf_shares(data: &Path) -> Vec<(String, f64)> {
    let out = Command::new("perf")
        .args([
            "report",
            "--no-children",
            "--stdio",
            "--sort",
            "sym",
            "-q",
            "-g",
            "none",
            "-i",
        ])
        .arg(data)
        .output()
        .expect("perf report");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (pct, rest) = l.split_once('%')?;
            let name = rest.trim().strip_prefix("[.] ")?;
            // As hud names them: libc's functions by their public names (`read`, not `__read`).
            let name = hud_analyze::symbols::demangle(name.trim());
            Some((name, pct.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn cpu_shares_agree_with_perf() {
    let _serial = serial();
    if !ready() {
        return;
    }
    if !Path::new("/usr/bin/perf").exists() {
        assert!(
            std::env::var("HUD_REQUIRE_EBPF").is_err(),
            "perf is missing (cargo xtask setup installs linux-perf)"
        );
        eprintln!("skipping: no perf");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("busy.hudcap");
    let perf_data = dir.path().join("perf.data");
    // perf itself once exited non-zero here (one CI run in many, not reproduced): its own account
    // is printed and the side-by-side recording made once more, since the peer failing says
    // nothing about hud.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let demo = Demo::start(9.0, &["--busy"]);
        let pid = demo.0.id().to_string();
        // Both profilers sample the same process at the same time, at 999 Hz: two independent
        // samplings of ~1,200 samples (199 Hz) differ by more than 3 points on a 45 % share about
        // one run in ten; with ~6,000 each that is a 4-sigma event.
        let perf = Command::new("perf")
            .args(["record", "-q", "-g", "-F", "999", "-p", &pid, "-o"])
            .arg(&perf_data)
            .args(["--", "sleep", "6"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        record(&demo, &capture, &["--duration", "6", "-F", "999"]);
        let perf = perf.wait_with_output().unwrap();
        drop(demo);
        if perf.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&perf.stderr);
        assert!(
            attempts < 2,
            "perf record failed twice ({}): {stderr}",
            perf.status
        );
        eprintln!("perf record failed ({}), once more: {stderr}", perf.status);
    }
    let report = report_json(&capture);
    let hud: Vec<(String, f64)> = report["hotspots"]["overall"]["by_function"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_owned(),
                h["self_pct"].as_f64().unwrap(),
            )
        })
        .collect();
    let perf = perf_shares(&perf_data);
    let top: Vec<&(String, f64)> = perf.iter().filter(|(_, pct)| *pct >= 5.0).take(5).collect();
    assert!(top.len() >= 3, "perf found too few hot symbols: {perf:?}");
    for (name, perf_pct) in top {
        let hud_pct = hud
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .unwrap_or(0.0);
        assert!(
            (hud_pct - perf_pct).abs() <= 3.0,
            "{name}: hud {hud_pct:.1} % vs perf {perf_pct:.1} %\nhud: {hud:?}\nperf: {perf:?}"
        );
    }
}

#[test]
fn bad_captures_get_clear_errors() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = analyze(&["report", "/nonexistent/x.hudcap"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.hudcap"));

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"this is not a capture at all").unwrap();
    let out = analyze(&["report", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a hud capture"));

    // A truncated capture: analyzed up to the cut, with a notice.
    let mix = hud_format::synth::Mix {
        switches: 2000,
        samples: 200,
        off_cpu: 20,
        ..hud_format::synth::Mix::benchmark()
    };
    let options = hud_format::writer::WriterOptions {
        max_chunk_events: 300,
        ..Default::default()
    };
    let bytes = hud_format::synth::write_mix(Vec::new(), &mix, options).unwrap();
    let cut = dir.path().join("cut.hudcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = analyze(&["report", "--json", cut.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let notices = report["capture"]["notices"].to_string();
    assert!(notices.contains("truncated"), "{notices}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// One byte flipped in the payload of a chunk in the middle of a real capture: strict reading
/// refuses it; by default the chunk is skipped, the report names the same blockers, and the time
/// the chunk held is stated as missing.
fn salvaged_report_still_names_the_blockers(path: &Path) {
    use hud_format::frame::FrameKind;
    let mut bytes = std::fs::read(path).unwrap();
    let capture = hud_format::reader::Capture::from_bytes(bytes.clone()).unwrap();
    let chunks: Vec<_> = capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::Chunk)
        .copied()
        .collect();
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    let victim = chunks[chunks.len() / 2];
    bytes[victim.offset as usize + 24 + victim.header.stored_len as usize / 3] ^= 0x20;
    let damaged = path.with_file_name("damaged.hudcap");
    std::fs::write(&damaged, &bytes).unwrap();
    let d = damaged.to_str().unwrap();
    let strict = analyze(&["report", "--strict", d]);
    assert_eq!(strict.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert!(
        stderr.contains("chunk frame") && stderr.contains(&victim.offset.to_string()),
        "{stderr}"
    );
    let report = report_json(&damaged);
    let text = serde_json::to_string_pretty(&report["blocking"]).unwrap();
    for name in [
        "sleepy_handler",
        "locked_cache_update",
        "read_data_file",
        "cpu_heavy_checksum",
    ] {
        assert!(
            find(&report, &format!("{name}::")).is_some(),
            "{name} lost to salvage:\n{text}"
        );
    }
    let missing = &report["capture"]["missing"];
    assert_eq!(missing.as_array().unwrap().len(), 1, "{missing}");
    let (from, to) = (
        missing[0]["from_s"].as_f64().unwrap(),
        missing[0]["to_s"].as_f64().unwrap(),
    );
    assert!(0.0 < from && from < to && to < 5.0, "{missing}");
    assert!(
        report["capture"]["notices"]
            .to_string()
            .contains("is missing"),
        "{}",
        report["capture"]["notices"]
    );
}

/// testdata/tools/check_perfetto.py's counts for a trace (the official schema read it), or a
/// panic with its reason.
fn checked_perfetto(trace: &Path) -> Value {
    let python = std::env::var_os("HUD_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root_dir().join("target/py/bin/python"));
    let check = Command::new(&python)
        .arg(root_dir().join("testdata/tools/check_perfetto.py"))
        .arg(trace)
        .output()
        .expect("the Perfetto schema's Python (cargo xtask setup makes it)");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    serde_json::from_slice(&check.stdout).unwrap()
}

fn root_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_cockpit_in_a_real_terminal() {
    let _serial = serial();
    if !ready() {
        return;
    }
    let (_dir, path) = recorded_demo(4, &[]);
    let tmux = Tmux::start(160, 48);
    tmux.line(&format!("{ANALYZE} tui {}; echo EXIT=$?", path.display()));
    let sleepy = format!("main.rs:{}", truth_line("sleepy_handler"));
    let first = tmux.wait_for("CAUTION and sleepy_handler", |s| {
        s.contains("CAUTION") && s.contains("sleepy_handler") && s.contains(&sleepy)
    });
    let row = |screen: &str| {
        screen
            .lines()
            .find(|l| l.contains("sleepy_handler") && l.contains(&sleepy))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    // The timeline: zoom in, then select a window with [ and ]: every panel shows that window.
    tmux.keys(&["BTab", "+"]);
    tmux.wait_for("zoom 2×", |s| s.contains("zoom 2×"));
    tmux.keys(&["["]);
    for _ in 0..25 {
        tmux.keys(&["Right"]);
    }
    tmux.keys(&["]"]);
    let windowed = tmux.wait_for("a window", |s| {
        s.contains(" · window ") && !s.contains("updating") && row(s) != row(&first)
    });
    assert!(row(&windowed).contains("sleep"), "{windowed}");
    // A drilldown of the first blocker, with its fix and the source around its call (the
    // demo's source is on this machine), then back.
    tmux.keys(&["Tab", "Enter"]);
    let drilldown = tmux.wait_for("the drilldown", |s| s.contains("Call path"));
    assert!(
        drilldown.contains("Fix at demo/src/main.rs:") && drilldown.contains(" ▶ "),
        "{drilldown}"
    );
    tmux.keys(&["Escape"]);
    tmux.keys(&["q"]);
    let after = tmux.wait_for("the exit", |s| s.contains("EXIT="));
    assert!(after.contains("EXIT=0"), "{after}");
    assert!(
        !after.contains("Blockers ("),
        "the alternate screen was left:\n{after}"
    );
    // The terminal is back in cooked mode: echo and canonical input.
    tmux.line("stty -a | tr ' ' '\\n' | grep -x -e echo -e icanon | tr '\\n' ,; echo");
    tmux.wait_for("stty", |s| {
        s.contains("icanon,echo,") || s.contains("echo,icanon,")
    });
}

/// `go tool pprof`'s `-top` table: (flat samples, function) per row, and the total. Names as the
/// profile has them (`-symbolize=none`): by default pprof shortens them, `Harness<T,S>::poll`
/// to `Harness::poll`, and a top five that reached such a name failed the comparison.
fn pprof_top(path: &Path) -> (Vec<(u64, String)>, u64) {
    let out = Command::new("go")
        .args([
            "tool",
            "pprof",
            "-top",
            "-noinlines",
            "-symbolize=none",
            "-nodecount=200",
            "-sample_index=samples",
        ])
        .arg(path)
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("go runs (cargo xtask setup installs golang-go)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = text
        .lines()
        .find_map(|l| l.split("Total samples = ").nth(1))
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no total in:\n{text}"));
    let rows = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let flat: u64 = parts.next()?.parse().ok()?;
            let name = parts.skip(4).collect::<Vec<_>>().join(" ");
            Some((flat, name))
        })
        .collect();
    (rows, total)
}

#[test]
fn exports_are_read_by_their_own_tools() {
    let _serial = serial();
    if !ready() {
        return;
    }
    let (dir, path) = recorded_demo(4, &[]);
    let p = path.to_str().unwrap();
    let report: Value =
        serde_json::from_slice(&analyze(&["report", "--json", "--top", "1000", p]).stdout).unwrap();
    let out = |name: &str| dir.path().join(name);
    for file in [
        "demo.pb.gz",
        "demo.json",
        "demo.folded",
        "demo.svg",
        "demo.pftrace",
    ] {
        let run = analyze(&["export", p, "-o", out(file).to_str().unwrap()]);
        assert!(
            run.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }

    // pprof: the same totals and top functions as the analysis (self samples, perf-style).
    let (rows, total) = pprof_top(&out("demo.pb.gz"));
    assert_eq!(total, report["summary"]["samples"].as_u64().unwrap());
    let hud: Vec<(u64, String)> = report["hotspots"]["overall"]["by_function"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["self_samples"].as_u64().unwrap(),
                h["function"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (flat, name) in hud.iter().take(5) {
        assert!(
            rows.iter().any(|(f, n)| f == flat && n == name),
            "{name} ({flat}) not in pprof's top: {rows:?}"
        );
    }

    // Chrome: JSON whose blocking slices are the analysis' episodes.
    let trace: Value = serde_json::from_slice(&std::fs::read(out("demo.json")).unwrap()).unwrap();
    let blocking = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == "blocking")
        .count() as u64;
    let episodes: u64 = report["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(blocking, episodes);

    // Folded: the long poll's function with its inclusive samples.
    let folded = std::fs::read_to_string(out("demo.folded")).unwrap();
    let in_checksum: u64 = folded
        .lines()
        .filter(|l| l.contains("cpu_heavy_checksum"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    let inclusive = report["hotspots"]["overall"]["by_function_inclusive"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h["function"]
                .as_str()
                .unwrap()
                .contains("cpu_heavy_checksum")
        })
        .map(|h| h["inclusive_samples"].as_u64().unwrap())
        .expect("cpu_heavy_checksum in the inclusive table");
    assert_eq!(in_checksum, inclusive);

    // Blocked time: the sleep's microseconds, at least the blocker's total (episodes under the
    // threshold count here too).
    let blocked = analyze(&[
        "export", p, "--format", "folded", "--weight", "blocked", "-o", "-",
    ]);
    let blocked = String::from_utf8(blocked.stdout).unwrap();
    let sleep_us: u64 = blocked
        .lines()
        .filter(|l| l.contains("sleepy_handler"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    let sleep_ms = find(&report, "sleepy_handler").unwrap()["total_ms"]
        .as_f64()
        .unwrap();
    assert!(
        sleep_us as f64 >= sleep_ms * 1e3 * 0.99 && (sleep_us as f64) < sleep_ms * 1e3 * 1.2,
        "{sleep_us} µs blocked vs a {sleep_ms} ms blocker"
    );

    // Perfetto: the official schema reads it; its slices and samples are the analysis'.
    let counts = checked_perfetto(&out("demo.pftrace"));
    assert_eq!(counts["blocking_slices"].as_u64().unwrap(), episodes);
    assert_eq!(counts["samples"], report["summary"]["samples"]);
    let sizes = |f: &str| std::fs::metadata(out(f)).unwrap().len();
    assert!(
        sizes("demo.pftrace") * 4 <= sizes("demo.json"),
        "Perfetto is the compact timeline"
    );

    // SVG: a flame graph naming the demo's functions.
    let svg = std::fs::read_to_string(out("demo.svg")).unwrap();
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("cpu_heavy_checksum"));

    // Bad input: an unknown extension is a usage error; an unwritable output exits 6 and leaves
    // no file behind.
    let bad = analyze(&["export", p, "-o", out("x.txt").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let unwritable = analyze(&["export", p, "-o", "/proc/hud-cannot-write.svg"]);
    assert_eq!(
        unwritable.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&unwritable.stderr)
    );
}

/// Share of the samples whose stack (inclusive rows) passes through a function named `name`.
fn inclusive_share(report: &Value, name: &str) -> f64 {
    report["hotspots"]["overall"]["by_function_inclusive"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["function"].as_str().unwrap_or("").contains(name))
        .map(|h| h["inclusive_pct"].as_f64().unwrap())
        .fold(0.0, f64::max)
}

/// glibc's `__send` and `__recv` use the frame-pointer register for other work, so a walk stops
/// at them. With the default leaf windows the samples that end there get their Rust callers:
/// the echo's own async fns carry most of its CPU, and the report does not ask to rebuild a
/// binary that has frame pointers.
#[test]
fn samples_in_send_and_recv_get_their_rust_callers() {
    let _serial = serial();
    if !ebpf_ready(&[echo_binary(), record_binary()]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shares = |unwind: &str| {
        let path = dir.path().join(format!("echo-{unwind}.hudcap"));
        let echo = Demo::start_binary(&echo_binary(), 8.0, &[]);
        record(&echo, &path, &["--duration", "4", "--unwind", unwind]);
        let report = report_json(&path);
        let user = inclusive_share(&report, "echo_connection") + inclusive_share(&report, "pump");
        (user, report)
    };
    let (walked, _) = shares("fp");
    let (unwound, report) = shares("leaf");
    assert!(
        unwound >= 60.0 && unwound > walked + 20.0,
        "echo_connection + pump: {unwound:.0} % of samples with leaf windows, {walked:.0} % walked: {:#}",
        report["hotspots"]["overall"]["by_function_inclusive"]
    );
    let warnings = report["warnings"].to_string();
    assert!(!warnings.contains("rebuild"), "{warnings}");
}

/// `--poll-probes` times each poll of each task future type: per type, the median agrees with
/// the median the workload measured around the same polls itself (within 10 %), on a
/// multi-thread and on a current_thread runtime, in a binary without frame pointers, and the
/// stacks of samples inside probed polls still reach the runtime (the uretprobe's trampoline
/// replaced by the real return address).
#[test]
fn poll_probes_time_each_future_type_as_the_workload_does() {
    let _serial = serial();
    let binary = nofp_demo_binary().with_file_name("hud-polls");
    if !ebpf_ready(&[binary.clone(), record_binary()]) {
        return;
    }
    for runtime in [None, Some("--current-thread")] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("polls");
        let mut args = vec!["--polls", log.to_str().unwrap()];
        args.extend(runtime);
        let recorded = recorded(&binary, &args, 4, &["--poll-probes"], false);
        let report = report_json(&recorded.capture);
        // `KIND END_UNIX_NS TOOK_NS` per poll, as the workload measured its own polls: those
        // that ended while recording (the probes' window), per kind, count and median.
        let start = report["capture"]["start_unix_ns"].as_u64().unwrap();
        let end = start + (report["capture"]["duration_s"].as_f64().unwrap() * 1e9) as u64;
        let mut by_kind: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for line in std::fs::read_to_string(&log).unwrap().lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(kind), Some(Ok(ended)), Some(Ok(took))) = (
                f.first(),
                f.get(1).map(|x| x.parse::<u64>()),
                f.get(2).map(|x| x.parse::<u64>()),
            ) else {
                continue;
            };
            if ended >= start && ended < end {
                by_kind.entry(kind.to_string()).or_default().push(took);
            }
        }
        let own: Vec<(String, u64, u64)> = by_kind
            .into_iter()
            .map(|(kind, mut took)| {
                took.sort_unstable();
                (kind, took.len() as u64, took[took.len() / 2])
            })
            .collect();
        assert_eq!(own.len(), 3, "{own:?}");
        let polls = &report["polls"];
        let futures = polls["futures"]
            .as_array()
            .unwrap_or_else(|| panic!("{polls:#}"));
        assert_eq!(futures.len(), 3, "{runtime:?}: {polls:#}");
        for (kind, count, p50_ns) in &own {
            assert!(
                *count > 20,
                "{runtime:?}: the workload polled {kind} {count} times"
            );
            let row = futures
                .iter()
                .find(|f| f["name"].as_str().unwrap().contains(kind.as_str()))
                .unwrap_or_else(|| panic!("{runtime:?}: no row for {kind}: {polls:#}"));
            let probed = row["p50_ms"].as_f64().unwrap() * 1e6;
            let own = *p50_ns as f64;
            assert!(
                (probed - own).abs() <= own * 0.10,
                "{runtime:?} {kind}: probed p50 {probed:.0} ns, the workload's own {own:.0} ns"
            );
            let scheduler = if runtime.is_some() {
                "current_thread"
            } else {
                "multi_thread"
            };
            assert_eq!(row["schedulers"], serde_json::json!([scheduler]), "{row:#}");
        }
        // heavy_batch's polls (3 ms) are all past the 1 ms event threshold, one by one.
        let heavy = futures
            .iter()
            .find(|f| f["name"].as_str().unwrap().contains("heavy_batch"))
            .unwrap();
        assert_eq!(heavy["long_polls"], heavy["polls"], "{heavy:#}");
        // Each long poll names its task, read by the probe from the task's header: the one
        // heavy_batch task.
        let tasks: Vec<Option<u64>> = heavy["longest"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["task"].as_u64())
            .collect();
        assert!(
            tasks.iter().all(|t| t.is_some() && *t == tasks[0]),
            "{runtime:?}: {tasks:?}"
        );
        assert!(polls["stopped"].is_null(), "{polls:#}");
        // Samples inside probed polls unwind through the trampoline to the runtime: the
        // runtime's threads are found as such.
        let roles = &report["summary"]["threads_by_role"];
        let runtime_threads =
            roles["worker"].as_u64().unwrap_or(0) + roles["current_thread"].as_u64().unwrap_or(0);
        let expected = if runtime.is_some() { 1 } else { 2 };
        assert_eq!(runtime_threads, expected, "{runtime:?}: {roles}");
        // And the samples taken inside a poll (in the futures' own functions) have stacks that
        // reach the scheduler's loop, past the probed poll function.
        let out = analyze(&[
            "report",
            "--json",
            "--all-frames",
            "--top",
            "200",
            recorded.capture.to_str().unwrap(),
        ]);
        let all: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        let inclusive = |name: &str| -> f64 {
            all["hotspots"]["overall"]["by_function_inclusive"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["name"].as_str().unwrap().contains(name))
                .map(|h| h["inclusive_pct"].as_f64().unwrap())
                .fold(0.0, f64::max)
        };
        let in_spin = inclusive("hud_polls::spin");
        let loop_frame = if runtime.is_some() {
            "current_thread::CoreGuard::block_on"
        } else {
            "multi_thread::worker::run"
        };
        assert!(in_spin > 30.0, "{runtime:?}: spin {in_spin:.1} %");
        // Perfetto: each long poll is a slice on its thread's "polls" track, and the official
        // schema reads the trace.
        let trace = recorded.dir.path().join("polls.pftrace");
        let out = analyze(&[
            "export",
            recorded.capture.to_str().unwrap(),
            "-o",
            trace.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let counts = checked_perfetto(&trace);
        let long_polls: u64 = futures
            .iter()
            .map(|f| f["long_polls"].as_u64().unwrap())
            .sum();
        assert_eq!(
            counts["poll_slices"].as_u64().unwrap(),
            long_polls,
            "{counts}"
        );
        assert!(
            inclusive(loop_frame) >= in_spin,
            "{runtime:?}: {loop_frame} {:.1} % < spin {in_spin:.1} %: stacks stop at the probe \
             (stack copies: {:#})",
            inclusive(loop_frame),
            report["capture"]["stack_copies"]
        );
    }
}
