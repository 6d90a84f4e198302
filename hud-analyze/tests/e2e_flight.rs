//! End to end with real eBPF: the flight recorder on the demo for 60 s, `--keep 20s --max-disk
//! 8MiB --trigger-blocked 200ms`, with one planted 300 ms stall (`hud-demo --stall-at`). The
//! ring's disk use, sampled all along, stays under the cap; `hud-record --dump` (SIGUSR1) writes
//! a capture of about the last 20 s with the demo's blockers; the stall triggers a dump of its
//! own whose trigger moment lies inside the stall as the demo timed it; and the ring directory
//! reads as one capture. Needs root; skips without it unless HUD_REQUIRE_EBPF=1 (CI).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hud_test_harness::{demo_binary, ebpf_ready, record_binary, serial, timings, truth_line, Demo};
use serde_json::Value;

const ANALYZE: &str = env!("CARGO_BIN_EXE_hud-analyze");
const MAX_DISK: u64 = 8 << 20;

fn report(capture: &Path) -> Value {
    let out = Command::new(ANALYZE)
        .args(["report", "--json"])
        .arg(capture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn disk_use(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn dumps(dir: &Path, reason: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("hud-") && n.ends_with(&format!("-{reason}.hudcap")))
        })
        .collect();
    out.sort();
    out
}

fn has_blocker(report: &Value, name: &str) -> bool {
    let line = truth_line(name);
    report["blocking"].as_array().unwrap().iter().any(|b| {
        b["function"].as_str().unwrap_or("").contains(name) && b["line"].as_u64() == Some(line)
    })
}

#[test]
fn the_flight_recorder_keeps_its_bounds_and_dumps_on_request_and_on_a_stall() {
    if !ebpf_ready(&[demo_binary(), record_binary()]) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let flight = dir.path().join("flight");
    let timed = dir.path().join("timings");
    let demo = Demo::start(
        75.0,
        &["--stall-at", "40", "--timings", timed.to_str().unwrap()],
    );
    let max_disk = MAX_DISK.to_string();
    let mut recorder = Command::new(record_binary())
        .args(["--pid", &demo.pid().to_string(), "-q", "--duration", "60"])
        .arg("--flight-recorder")
        .arg(&flight)
        .args(["--keep", "20s", "--max-disk", &max_disk])
        .args(["--trigger-blocked", "200ms", "--after", "1s"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hud-record");
    let started = Instant::now();
    let ring = flight.join("ring");
    let mut largest = 0u64;
    let mut asked = None;
    while recorder.try_wait().unwrap().is_none() {
        largest = largest.max(disk_use(&ring));
        if asked.is_none() && started.elapsed() >= Duration::from_secs(30) {
            // `hud-record --dump` signals the recorder and waits for the dump.
            let out = Command::new(record_binary())
                .arg("--dump")
                .arg(&flight)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "hud-record --dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            asked = Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()));
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the recorder did not stop"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = recorder.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hud-record: {log}");
    assert!(largest > 0, "the ring was never written: {log}");
    assert!(
        largest <= MAX_DISK,
        "the ring used {largest} bytes, over its {MAX_DISK}: {log}"
    );

    // The dump asked for at 30 s: about the last 20 s (--before is capped at --keep), with the
    // demo's blockers.
    let asked = asked.expect("a dump was asked for");
    let signal = report(&asked);
    assert_eq!(signal["capture"]["dump"]["reason"], "signal", "{log}");
    let seconds = signal["capture"]["duration_s"].as_f64().unwrap();
    assert!(
        (19.0..=27.0).contains(&seconds),
        "the dump holds {seconds} s, not about the last 20: {log}"
    );
    assert!(
        signal["capture"]["notices"].as_array().unwrap().is_empty(),
        "{signal:#}"
    );
    for name in [
        "sleepy_handler",
        "locked_cache_update",
        "cpu_heavy_checksum",
    ] {
        assert!(has_blocker(&signal, name), "{name} not in the dump: {log}");
    }

    // The planted stall (40 s after the demo started) made a dump of its own, the trigger's
    // moment inside the stall as the demo timed it.
    let stall = timings(&timed, "stall");
    assert_eq!(stall.len(), 1, "the demo's stall ran once");
    let blocked = dumps(&flight, "blocked");
    assert_eq!(blocked.len(), 1, "one trigger dump: {blocked:?}\n{log}");
    let triggered = report(&blocked[0]);
    let dump = &triggered["capture"]["dump"];
    let at = dump["trigger_ns"].as_u64().unwrap();
    assert!(
        stall[0].start_ns <= at + 2_000_000 && at <= stall[0].end_ns,
        "trigger at {at}, stall {:?}: {dump:#}",
        stall[0]
    );
    assert!(has_blocker(&triggered, "planted_stall"), "{triggered:#}");

    // The ring directory reads as one capture: the last 20 s or so.
    let whole = report(&flight);
    let seconds = whole["capture"]["duration_s"].as_f64().unwrap();
    assert!(
        (19.0..=27.0).contains(&seconds),
        "the ring holds {seconds} s"
    );
    assert!(has_blocker(&whole, "sleepy_handler"));
    assert!(
        !ring.join("recorder.pid").exists(),
        "the pid file goes when the recorder stops"
    );
    drop(demo);
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_shrinks_the_ring_and_recording_goes_on() {
    if !ebpf_ready(&[demo_binary(), record_binary()]) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(status.success(), "mount a 1 MiB tmpfs");
    let _mounted = SmallDisk(disk.clone());
    // Someone else's file leaves the ring about 300 KiB, far under its --max-disk.
    std::fs::write(disk.join("filler"), vec![0u8; 700 << 10]).unwrap();
    let demo = Demo::start(30.0, &[]);
    let out = Command::new(record_binary())
        .args(["--pid", &demo.pid().to_string(), "-q", "--duration", "20"])
        .arg("--flight-recorder")
        .arg(disk.join("flight"))
        .args(["--keep", "2m", "--max-disk", "64MiB"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the recorder must go on: {log}");
    assert!(
        log.contains("flight event=disk_full segments_removed="),
        "{log}"
    );
    // What is left reads as one capture, its newest seconds.
    let whole = report(&disk.join("flight"));
    let seconds = whole["capture"]["duration_s"].as_f64().unwrap();
    assert!(seconds > 2.0 && seconds < 20.0, "{seconds} s kept");
    assert!(has_blocker(&whole, "sleepy_handler"), "{log}");
    drop(demo);
}
