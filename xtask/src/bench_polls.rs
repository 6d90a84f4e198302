//! `cargo xtask bench polls`: what `hud-record --poll-probes` costs per probed poll. The
//! workload (`hud-polls --yield-loop`, no frame pointers) polls one task that only yields, as
//! fast as it can, and prints its polls per second; rounds alternate alone and under the
//! recorder with the probe on that task (no budget, so it stays on), and the cost per poll is
//! `1/probed − 1/alone`. The recorder's `COST_PER_POLL_NS` (its budget's estimate) comes from
//! this number.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::build::nofp_demo_binary;
use crate::build::release_binary;
use crate::util::{is_root, root};

pub fn run(seconds: u32, rounds: u32) -> Result<()> {
    if !is_root() {
        bail!("bench polls attaches eBPF programs: run it as root");
    }
    let workload = nofp_demo_binary().with_file_name("hud-polls");
    let recorder = release_binary("hud-record");
    let dir = root().join("target/bench-polls");
    std::fs::create_dir_all(&dir)?;
    let capture = dir.join("polls.hudcap");
    let (mut alone, mut probed) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        alone.push(rate(&workload, seconds, None)?);
        probed.push(rate(
            &workload,
            seconds,
            Some((recorder.as_path(), capture.as_path())),
        )?);
        println!(
            "round {round}: alone {:.0} polls/s, probed {:.0} polls/s",
            alone[alone.len() - 1],
            probed[probed.len() - 1]
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, p) = (median(&mut alone), median(&mut probed));
    println!(
        "cost per probed poll: {:.2} µs (median polls/s alone {a:.0}, probed {p:.0}; a plain poll \
         of this task takes {:.0} ns)",
        (1.0 / p - 1.0 / a) * 1e6,
        1e9 / a
    );
    Ok(())
}

/// The workload's polls per second, alone or under the recorder with `--poll-probes`.
fn rate(
    workload: &std::path::Path,
    seconds: u32,
    recorder: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<f64> {
    // The workload runs a second longer than it measures when recorded: the recorder attaches
    // during that second.
    let lead = if recorder.is_some() { 1.0 } else { 0.0 };
    let child = Command::new(workload)
        .args([
            "--seconds",
            &(f64::from(seconds) + lead).to_string(),
            "--yield-loop",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", workload.display()))?;
    if let Some((recorder, capture)) = recorder {
        std::thread::sleep(Duration::from_millis(300));
        let status = Command::new(recorder)
            .args(["--pid", &child.id().to_string(), "-q", "--force", "-o"])
            .arg(capture)
            .args([
                "--duration",
                &(seconds + 2).to_string(),
                "--poll-probes=yield_loop",
                "--poll-budget",
                "none",
            ])
            .status()?;
        if !status.success() {
            bail!("hud-record failed: {status}");
        }
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("polls/s ")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("the workload printed {text:?}"))
}
