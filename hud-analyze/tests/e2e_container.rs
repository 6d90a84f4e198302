//! End to end with real eBPF: the demo in a container-like target, a new PID and mount
//! namespace (`unshare --pid --mount --fork --mount-proc`) whose binary lives only on a tmpfs
//! mounted inside it. Recorded from the host with default options, and from inside the
//! namespace (`nsenter -t PID -p -m`) with the pid the namespace sees (1): both reports name the
//! demo's blockers at their lines, say the target's pid in its namespace, and still do after the
//! target is gone (the recorder embeds what the host cannot see). Needs root; skips without it
//! unless HUD_REQUIRE_EBPF=1 (CI), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hud_test_harness::{demo_binary, ebpf_ready, record_binary, serial, truth_line};
use serde_json::Value;

const ANALYZE: &str = env!("CARGO_BIN_EXE_hud-analyze");

/// The demo in its own PID and mount namespaces, its binary at `app/svc` on a tmpfs only the
/// namespace sees. Killed (the whole namespace) when dropped.
struct Contained {
    unshare: Child,
    /// The demo's pid as the host sees it.
    pid: u32,
    /// Where the binary is inside (the same directory is empty on the host).
    exe: PathBuf,
}

impl Contained {
    fn start(dir: &Path, seconds: u32) -> Self {
        let app = dir.join("app");
        std::fs::create_dir_all(&app).unwrap();
        let exe = app.join("svc");
        let script = format!(
            "mount -t tmpfs tmpfs {app} && cp {demo} {exe} && exec {exe} --seconds {seconds} --quiet",
            app = app.display(),
            demo = demo_binary().display(),
            exe = exe.display(),
        );
        let unshare = Command::new("unshare")
            .args([
                "--pid",
                "--mount",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = process_running(&exe) {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "the contained demo did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // Its runtime comes up.
        std::thread::sleep(Duration::from_millis(300));
        Contained { unshare, pid, exe }
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the demo's pid; the namespace ends with its first process.
        unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The pid (host's) of the process running `exe`, found by its command line.
fn process_running(exe: &Path) -> Option<u32> {
    let wanted = exe.to_str()?;
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let first = cmdline.split(|b| *b == 0).next()?;
        (first == wanted.as_bytes()).then_some(pid)
    })
}

/// `report --json` of `capture`, with `extra` options before it.
fn report(capture: &Path, extra: &[&std::ffi::OsStr]) -> Value {
    let out = Command::new(ANALYZE)
        .args(["report", "--json"])
        .args(extra)
        .arg(capture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The demo's blockers at their lines, named through the binary only the namespace had.
fn check_blockers(report: &Value, how: &str) {
    for name in ["sleepy_handler", "locked_cache_update"] {
        let line = truth_line(name);
        let found = report["blocking"].as_array().unwrap().iter().any(|b| {
            b["function"].as_str().unwrap_or("").contains(name) && b["line"].as_u64() == Some(line)
        });
        assert!(
            found,
            "{how}: no blocker {name} at line {line}: {:#}",
            report["blocking"]
        );
    }
    let container = &report["capture"]["container"];
    assert_eq!(container["pid_in_namespace"], 1, "{how}: {container:#}");
}

fn record(args: &[&str], prefix: &[&str], capture: &Path) {
    let mut command = Command::new(prefix.first().copied().unwrap_or("env"));
    command.args(prefix.iter().skip(1));
    let out = command
        .arg(record_binary())
        .args(args)
        .args(["-q", "--force", "--duration", "4", "-o"])
        .arg(capture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hud-record {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_contained_target_is_recorded_from_the_host_and_from_inside() {
    if !ebpf_ready(&[demo_binary(), record_binary()]) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let contained = Contained::start(dir.path(), 30);
    assert!(
        !contained.exe.exists(),
        "the host must not see the contained binary"
    );
    let from_host = dir.path().join("host.hudcap");
    let pid = contained.pid.to_string();
    record(&["--pid", &pid], &[], &from_host);
    let from_inside = dir.path().join("inside.hudcap");
    record(
        &["--pid", "1"],
        &["nsenter", "-t", &pid, "-p", "-m"],
        &from_inside,
    );
    drop(contained);
    // The target is gone: the host's capture carries the binary it could not see.
    let host = report(&from_host, &[]);
    check_blockers(&host, "recorded from the host");
    assert_eq!(host["capture"]["container"]["recorder_namespaced"], false);
    assert_eq!(host["capture"]["target_pid"].as_u64(), pid.parse().ok());
    // From inside, the pid given (1) is resolved to the kernel's: the capture's ids are the
    // host's, and the recorder's view is kept. (The inside recorder shared the target's mount
    // namespace, where the binary is at its path: it embeds nothing, and the analyzer here
    // finds it only through `--binary`.)
    let inside_binary = dir.path().join("svc-copy");
    std::fs::copy(demo_binary(), &inside_binary).unwrap();
    let inside = report(
        &from_inside,
        &["--binary".as_ref(), inside_binary.as_os_str()],
    );
    check_blockers(&inside, "recorded from inside");
    let container = &inside["capture"]["container"];
    assert_eq!(container["recorder_namespaced"], true, "{container:#}");
    assert_eq!(container["pid_recorder_saw"], 1, "{container:#}");
    assert_eq!(inside["capture"]["target_pid"].as_u64(), pid.parse().ok());
    // Threads by the kernel's ids, with their ids inside kept beside them.
    let threads = container["thread_ids"].as_array().unwrap();
    assert!(threads.len() >= 3, "{container:#}");
    assert!(threads
        .iter()
        .any(|t| t[0].as_u64() == pid.parse().ok() && t[1] == 1));
}
