//! End to end with real eBPF: hud-kinds (testdata/demo/src/bin/hud-kinds.rs) blocks its runtime
//! in every way hud tells apart, one task per kind, each call on a line marked
//! `GROUND TRUTH: kind=KIND`. The report must name each with its kind, the call's line, and
//! advice for that kind; two async paths into one CPU-heavy helper stay two rows, each named by
//! its own call. Needs root; skips without it unless HUD_REQUIRE_EBPF=1 (CI), where it fails.

use std::path::Path;
use std::process::Command;

use hud_test_harness::{
    demo_binary, ebpf_ready, nofp_demo_binary, record_binary, recorded, serial,
};
use serde_json::Value;

const ANALYZE: &str = env!("CARGO_BIN_EXE_hud-analyze");

/// Each marked line of hud-kinds: (kind, what follows the kind on the marker, line number).
fn ground_truth() -> Vec<(String, String, u64)> {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/demo/src/bin/hud-kinds.rs"),
    )
    .expect("hud-kinds' source");
    src.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let (_, truth) = l.split_once("// GROUND TRUTH: kind=")?;
            let (kind, rest) = truth.split_once(' ').unwrap_or((truth, ""));
            Some((kind.to_owned(), rest.trim().to_owned(), i as u64 + 1))
        })
        .collect()
}

/// What each kind's advice must say: the Tokio way out.
fn advice_phrase(kind: &str) -> &'static str {
    match kind {
        "sleep" => "tokio::time::sleep",
        "lock" => "tokio::sync::Mutex",
        "condvar" => "tokio::sync::Notify",
        "channel" => "tokio::sync::mpsc",
        "join" => "spawn_blocking",
        "process" => "tokio::process::Command",
        "fsync" => "sync_all().await",
        "file_io" => "tokio::fs",
        "net_io" => "tokio::net",
        "block_on" => "`.await` the future",
        "page_fault" => "paged in",
        "log" => "non_blocking",
        "other" => "system call `poll`",
        "dns" => "tokio::net::lookup_host",
        "cpu" => "spawn_blocking",
        other => panic!("no advice phrase for kind {other}"),
    }
}

fn report(capture: &Path, json: bool) -> std::process::Output {
    let mut args = vec!["report", "--top", "50"];
    if json {
        args.push("--json");
    }
    args.push(capture.to_str().unwrap());
    let out = Command::new(ANALYZE).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The blocker of `kind` whose call is made on `line`.
fn row<'a>(report: &'a Value, kind: &str, line: u64) -> Option<&'a Value> {
    report["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == kind && b["call"]["site"]["line"].as_u64() == Some(line))
}

fn check(binary: &Path) {
    let truth = ground_truth();
    assert!(truth.len() >= 15, "{truth:?}");
    // The fsync must reach a disk: not a tmpfs /tmp. Name lookups go to the workload's own
    // slow DNS server (root: a mount namespace of its own).
    let dir = env!("CARGO_TARGET_TMPDIR");
    let recorded = recorded(binary, &["--dir", dir, "--slow-dns"], 4, &[], false);
    // Kept for a look after a failure (the recording's directory goes with the test).
    let name = binary
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name());
    let kept = Path::new(dir).join(format!(
        "e2e-kinds-{}.hudcap",
        name.map_or("x".into(), |n| n.to_string_lossy())
    ));
    let _ = std::fs::copy(&recorded.capture, &kept);
    let out = report(&recorded.capture, true);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let summary: Vec<String> = report["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {} {:?}",
                b["kind"], b["call"]["site"]["line"], b["call"]["callee"]["function"]
            )
        })
        .collect();
    for (kind, _, line) in &truth {
        let b = row(&report, kind, *line)
            .unwrap_or_else(|| panic!("no {kind} blocker called at line {line}: {summary:#?}"));
        let advice = b["advice"]["text"].as_str().unwrap();
        assert!(
            advice.contains(advice_phrase(kind)),
            "{kind}: advice {advice:?}"
        );
        assert_eq!(b["advice"]["line"].as_u64(), Some(*line), "{b:#}");
        assert!(
            b["advice"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("hud-kinds.rs")),
            "{b:#}"
        );
    }
    // No kind where another was planted: every row of a marked line has that line's kind.
    for b in report["blocking"].as_array().unwrap() {
        let Some(line) = b["call"]["site"]["line"].as_u64() else {
            continue;
        };
        if let Some((kind, _, _)) = truth.iter().find(|(_, _, l)| *l == line) {
            assert_eq!(b["kind"], kind.as_str(), "{b:#}");
        }
    }
    // Two async paths into one helper: two rows, each named by its own call, the helper's
    // CPU under each.
    let line_of = |what: &str| truth.iter().find(|(_, w, _)| w == what).unwrap().2;
    let compact = row(&report, "cpu", line_of("compact")).unwrap();
    let reconcile = row(&report, "cpu", line_of("reconcile")).unwrap();
    assert!(
        compact["call"]["callee"]["function"]
            .as_str()
            .unwrap()
            .ends_with("::compact"),
        "{compact:#}"
    );
    assert!(
        reconcile["call"]["callee"]["function"]
            .as_str()
            .unwrap()
            .ends_with("::hash_block"),
        "{reconcile:#}"
    );
    // The janitor's loop runs on a current_thread runtime: block_in_place would panic there,
    // and every task of that runtime waits.
    let advice = compact["advice"]["text"].as_str().unwrap();
    assert!(
        advice.contains("current_thread") && !advice.contains("block_in_place"),
        "{advice}"
    );
    assert!(
        reconcile["advice"]["text"]
            .as_str()
            .unwrap()
            .contains("block_in_place"),
        "{reconcile:#}"
    );
    // The text says the same, one headline per call.
    let text = String::from_utf8(report_text(&recorded.capture)).unwrap();
    for headline in [
        "[long poll] hud_kinds::compact called in hud_kinds::janitor_loop",
        "[long poll] hud_kinds::hash_block called in hud_kinds::reconcile",
        "[sleep] thread::sleep called in hud_kinds::nap",
        "[page fault] hud_kinds::touch called in hud_kinds::page_in",
    ] {
        assert!(text.contains(headline), "no {headline:?} in\n{text}");
    }
}

fn report_text(capture: &Path) -> Vec<u8> {
    report(capture, false).stdout
}

#[test]
fn every_kind_of_blocking_is_told_apart_with_its_call_and_advice() {
    let _serial = serial();
    let binary = demo_binary().with_file_name("hud-kinds");
    if !ebpf_ready(&[binary.clone(), record_binary()]) {
        return;
    }
    check(&binary);
}

/// Without frame pointers (as most services are built), with the default options (the kernel
/// unwinds with the `.eh_frame` table).
#[test]
fn every_kind_of_blocking_is_told_apart_without_frame_pointers() {
    let _serial = serial();
    let binary = nofp_demo_binary().with_file_name("hud-kinds");
    if !ebpf_ready(&[binary.clone(), record_binary()]) {
        return;
    }
    check(&binary);
}
