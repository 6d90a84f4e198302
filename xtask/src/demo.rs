//! `cargo xtask demo`: the main job on a built-in target.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::build::{demo_binary, demo_next_binary, release_binary};
use crate::util::{is_root, root};

pub fn run(seconds: u32) -> Result<()> {
    if !is_root() {
        bail!("the demo records with eBPF: run it as root (e.g. `sudo -E cargo xtask demo`)");
    }
    eprintln!(
        "xtask: starting the demo workload (testdata/demo, blockers documented in GROUND_TRUTH.md)"
    );
    let capture = record(&demo_binary(), "demo", seconds)?;
    eprintln!("xtask: $ hud-analyze report {}\n", capture.display());
    let status = Command::new(release_binary("hud-analyze"))
        .arg("report")
        .arg(&capture)
        .status()?;
    if !status.success() {
        bail!("hud-analyze failed ({status})");
    }
    eprintln!(
        "\nxtask: the demo's real blockers are in testdata/demo/GROUND_TRUTH.md; \
         add --json for the same as JSON, or `hud-analyze info` for the capture's contents"
    );
    Ok(())
}

/// `cargo xtask demo --diff`: the demo and its next release (feature `next-release`), each
/// recorded for `seconds`, compared by `hud-analyze diff` with the gate a CI job would run.
pub fn diff(seconds: u32) -> Result<()> {
    if !is_root() {
        bail!(
            "the demo records with eBPF: run it as root (e.g. `sudo -E cargo xtask demo --diff`)"
        );
    }
    eprintln!("xtask: recording the demo (the release in production)");
    let base = record(&demo_binary(), "demo", seconds)?;
    eprintln!(
        "xtask: recording its next release (testdata/demo/GROUND_TRUTH.md, \"next release\")"
    );
    let new = record(&demo_next_binary(), "demo-next", seconds)?;
    let gates = ["--fail-on-new-blocker", "--fail-on-growth", "50"];
    eprintln!(
        "xtask: $ hud-analyze diff {} {} {}\n",
        base.display(),
        new.display(),
        gates.join(" ")
    );
    let status = Command::new(release_binary("hud-analyze"))
        .arg("diff")
        .arg(&base)
        .arg(&new)
        .args(gates)
        .status()?;
    match status.code() {
        Some(12 | 13) => eprintln!(
            "\nxtask: the gate failed (exit {}) as a CI job would: the next release adds a \
             blocker or grows one (docs/DIFF.md, docs/CI.md)",
            status.code().unwrap_or_default()
        ),
        Some(0) => eprintln!("\nxtask: the gate passed: no new or grown blocker beyond noise"),
        _ => bail!("hud-analyze diff failed ({status})"),
    }
    Ok(())
}

/// Runs `binary` for `seconds` + 3 s and records `seconds` of it into target/NAME.hudcap.
fn record(binary: &Path, name: &str, seconds: u32) -> Result<PathBuf> {
    let capture = root().join(format!("target/{name}.hudcap"));
    let _ = std::fs::remove_file(&capture);
    let mut demo = Command::new(binary)
        .args(["--seconds", &(seconds + 3).to_string()])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new(release_binary("hud-record"))
        .args(["--pid", &demo.id().to_string(), "-o"])
        .arg(&capture)
        .args(["--duration", &seconds.to_string()])
        .status()
        .context("starting hud-record")?;
    let _ = demo.kill();
    let _ = demo.wait();
    if !status.success() {
        bail!("hud-record failed ({status})");
    }
    eprintln!("xtask: capture written to {}", capture.display());
    Ok(capture)
}
