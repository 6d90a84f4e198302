//! What hud's end-to-end suites share, once: where the built binaries are, whether eBPF tests can
//! run here (they fail instead of skipping under `HUD_REQUIRE_EBPF=1`, as in CI), the demo
//! workload as a guard that kills it, the demo's ground-truth lines, and a terminal (tmux) to drive
//! the cockpit in.

mod tmux;

pub use tmux::{blocker_count, Tmux};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn binary(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(default))
}

/// The demo workload, built with frame pointers and debug info by `cargo xtask build`.
pub fn demo_binary() -> PathBuf {
    binary("HUD_DEMO_BIN", "target/demo/release/hud-demo")
}

/// The demo built without frame pointers (the way most services are built), with debug info
/// (`cargo xtask build`).
pub fn nofp_demo_binary() -> PathBuf {
    binary("HUD_DEMO_NOFP_BIN", "target/demo-nofp/release/hud-demo")
}

/// The demo's next release (feature `next-release`: testdata/demo/GROUND_TRUTH.md), built by
/// `cargo xtask build`.
pub fn next_demo_binary() -> PathBuf {
    binary("HUD_DEMO_NEXT_BIN", "target/demo-next/release/hud-demo")
}

/// The tokio 1.38 workload (testdata/old-tokio), built by `cargo xtask build`.
pub fn old_tokio_binary() -> PathBuf {
    binary(
        "HUD_OLD_TOKIO_BIN",
        "target/old-tokio/release/hud-old-tokio",
    )
}

/// The tail-call workload, built beside the demo (testdata/demo/src/bin/hud-tailcall.rs).
pub fn tailcall_binary() -> PathBuf {
    demo_binary().with_file_name("hud-tailcall")
}

/// The TCP echo workload whose samples end in glibc's `__send`/`__recv`, built beside the demo
/// (testdata/demo/src/bin/hud-echo.rs).
pub fn echo_binary() -> PathBuf {
    demo_binary().with_file_name("hud-echo")
}

/// The context-switch storm workload (`cargo xtask build`).
pub fn stress_binary() -> PathBuf {
    binary("HUD_STRESS_BIN", "target/release/hud-stress")
}

/// The release recorder (`cargo xtask build`).
pub fn record_binary() -> PathBuf {
    binary("HUD_RECORD_BIN", "target/release/hud-record")
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Whether eBPF end-to-end tests can run here (root, and `needed` binaries built); panics with
/// the reason when they must (`HUD_REQUIRE_EBPF=1`), else says why they skip.
pub fn ebpf_ready(needed: &[PathBuf]) -> bool {
    let required = std::env::var("HUD_REQUIRE_EBPF").is_ok_and(|v| v == "1");
    let missing = needed.iter().find(|p| !p.exists());
    let problem = if !is_root() {
        Some("not running as root".to_string())
    } else {
        missing.map(|p| format!("{} is not built (cargo xtask build)", p.display()))
    };
    match problem {
        None => true,
        Some(why) if required => panic!("HUD_REQUIRE_EBPF=1 but eBPF tests cannot run: {why}"),
        Some(why) => {
            eprintln!("skipping eBPF end-to-end test: {why}");
            false
        }
    }
}

/// The tests of one suite share two CPUs and time-sensitive assertions: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The demo workload, killed when dropped.
pub struct Demo(pub Child);

impl Demo {
    /// Starts the demo for `seconds` with `extra` arguments, and lets its runtime come up.
    pub fn start(seconds: f64, extra: &[&str]) -> Self {
        Self::start_binary(&demo_binary(), seconds, extra)
    }

    /// Starts another workload built with the demo (`hud-tailcall`), the same way.
    pub fn start_binary(binary: &Path, seconds: f64, extra: &[&str]) -> Self {
        let child = Command::new(binary)
            .args(["--seconds", &seconds.to_string(), "--quiet"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        std::thread::sleep(Duration::from_millis(300));
        Demo(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A blocking call as the workload measured it (`--timings PATH`, testdata/demo/src/timings.rs):
/// CLOCK_MONOTONIC nanoseconds, the recorder's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timed {
    pub start_ns: u64,
    pub end_ns: u64,
    /// The thread that made the call.
    pub tid: u32,
}

impl Timed {
    pub fn ms(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e6
    }
}

/// The calls of `kind` in a workload's `--timings` log, in the order they ended.
pub fn timings(path: &Path, kind: &str) -> Vec<Timed> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the workload's timings {}: {e}", path.display()));
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            (parts.next()? == kind).then_some(())?;
            let start_ns = parts.next()?.parse().ok()?;
            let end_ns = parts.next()?.parse().ok()?;
            let tid = parts.next()?.parse().ok()?;
            Some(Timed {
                start_ns,
                end_ns,
                tid,
            })
        })
        .collect()
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Records a running workload with the release recorder into `capture` (`--force`, quiet), with
/// `args` (`--duration`, `--unwind`, …); panics with the recorder's message when it fails.
pub fn record(workload: &Demo, capture: &Path, args: &[&str]) {
    let out = Command::new(record_binary())
        .args(["--pid", &workload.pid().to_string(), "-q", "--force", "-o"])
        .arg(capture)
        .args(args)
        .output()
        .expect("run hud-record");
    assert!(
        out.status.success(),
        "hud-record: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A workload's recording: the capture, and the workload's own timings when it kept them, in a
/// temporary directory that lives as long as this.
pub struct Recorded {
    pub dir: tempfile::TempDir,
    pub capture: PathBuf,
    /// `--timings` (see [`timings`]); the file exists when the workload was started `timed`.
    pub timings: PathBuf,
}

/// Starts `binary` (a workload built with the demo) with `workload_args` (and `--timings` when
/// `timed`), records it for `seconds` with `recorder_args`, and stops it: every end-to-end test's
/// opening, once. The workload runs 4 s past the recording, so it never exits mid-record.
pub fn recorded(
    binary: &Path,
    workload_args: &[&str],
    seconds: u32,
    recorder_args: &[&str],
    timed: bool,
) -> Recorded {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let capture = dir.path().join("capture.hudcap");
    let timings = dir.path().join("timings");
    let mut args: Vec<&str> = workload_args.to_vec();
    if timed {
        args.extend([
            "--timings",
            timings.to_str().expect("a UTF-8 temporary path"),
        ]);
    }
    let workload = Demo::start_binary(binary, f64::from(seconds) + 4.0, &args);
    let duration = seconds.to_string();
    let mut recorder: Vec<&str> = vec!["--duration", &duration];
    recorder.extend(recorder_args);
    record(&workload, &capture, &recorder);
    Recorded {
        dir,
        capture,
        timings,
    }
}

/// Line of the `GROUND TRUTH: name` marker in the demo's source (testdata/demo/GROUND_TRUTH.md).
pub fn truth_line(name: &str) -> u64 {
    truth_line_in("src/main.rs", name)
}

/// Line of the `GROUND TRUTH: name` marker in a source file of the demo crate.
pub fn truth_line_in(file: &str, name: &str) -> u64 {
    marker_line(file, &format!("GROUND TRUTH: {name}"))
}

/// Line of the `NEXT RELEASE: name` marker in the demo's source: the line in the demo's next
/// release (feature `next-release`).
pub fn next_release_line(name: &str) -> u64 {
    marker_line("src/main.rs", &format!("NEXT RELEASE: {name}"))
}

fn marker_line(file: &str, marker: &str) -> u64 {
    let src = std::fs::read_to_string(root().join("testdata/demo").join(file))
        .expect("the demo's source");
    src.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no marker {marker:?} in the demo's source")) as u64
        + 1
}
