//! `cargo xtask demo`: the main job on a built-in target.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::build::{demo_binary, release_binary};
use crate::util::{is_root, root};

pub fn run(seconds: u32) -> Result<()> {
    if !is_root() {
        bail!("the demo records with eBPF: run it as root (e.g. `sudo -E cargo xtask demo`)");
    }
    let capture = root().join("target/demo.hudcap");
    let _ = std::fs::remove_file(&capture);
    eprintln!(
        "xtask: starting the demo workload (testdata/demo, blockers documented in GROUND_TRUTH.md)"
    );
    let mut demo = Command::new(demo_binary())
        .args(["--seconds", &(seconds + 3).to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("starting hud-demo")?;
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
