//! `cargo xtask bench unwind`: what stack copies cost and give, measured side by side.
//!
//! 1. The leaf window (`--unwind leaf`, the default) against frame pointers only (`--unwind fp`):
//!    capture size on the busy demo (target: ≤ 15 % larger).
//! 2. The default options (which copy whole stacks of a target without frame pointers) against
//!    `perf record --call-graph dwarf -F 99` on the busy demo built without frame pointers,
//!    alternating runs: output size (target ≤ 1/4 of perf's), profiler CPU
//!    (≤ 1/2), and the demo's throughput under each (hud's slowdown no worse than perf's).
//! 3. Unwinding in the kernel with the `.eh_frame` table (the default): the sample program's ns
//!    per run on the busy demo without frame pointers at 999 Hz, table against frame pointers
//!    only (bpf_stats, read while attached); the difference is the cost of a whole unwind.
//! 4. Offline unwinding: the demo without frame pointers sampled at 4,000 Hz with
//!    `--unwind dwarf` (about 100 k distinct copies), reported on 2 threads: the time of the
//!    unwind phase (target: 100 k copies ≤ 1 s), against `perf report` on perf's own dwarf
//!    recording of the same length.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bench::{per_second, rss_halfway, wait_rusage, Runs};
use crate::build::{demo_binary, nofp_demo_binary, release_binary};
use crate::util::{is_root, root};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// The demo without frame pointers, alone.
    Alone,
    HudFp,
    HudLeaf,
    /// The default options on the demo without frame pointers (whole stacks).
    HudNoFp,
    PerfDwarf,
}

#[derive(Default, Clone, Copy)]
struct Measured {
    per_second: f64,
    cpu_secs: f64,
    bytes: u64,
}

fn one_run(run: Run, seconds: u32, dir: &Path) -> Result<Measured> {
    let binary = match run {
        Run::HudFp | Run::HudLeaf => demo_binary(),
        _ => nofp_demo_binary(),
    };
    let demo = Command::new(binary)
        .args(["--busy", "--seconds", &(seconds + 1).to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting hud-demo")?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = demo.id().to_string();
    let window = (seconds - 1).max(1).to_string();
    let mut m = Measured::default();
    let output = dir.join(format!("{run:?}.out"));
    let _ = std::fs::remove_file(&output);
    let mode = match run {
        Run::HudFp => Some("fp"),
        Run::HudLeaf => Some("leaf"),
        // The default mode: on a target without frame pointers it copies whole stacks.
        Run::HudNoFp => Some("leaf"),
        _ => None,
    };
    if let Some(mode) = mode {
        let mut child = Command::new(release_binary("hud-record"))
            .args([
                "--pid",
                &pid,
                "-q",
                "--unwind",
                mode,
                "--duration",
                &window,
                "-o",
            ])
            .arg(&output)
            .stderr(Stdio::null())
            .spawn()?;
        rss_halfway(&child, seconds);
        (m.cpu_secs, _) = wait_rusage(&mut child)?;
    } else if run == Run::PerfDwarf {
        let mut child = Command::new("perf")
            .args([
                "record",
                "-q",
                "--call-graph",
                "dwarf",
                "-F",
                "99",
                "-p",
                &pid,
                "-o",
            ])
            .arg(&output)
            .args(["--", "sleep", &window])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        (m.cpu_secs, _) = wait_rusage(&mut child)?;
    }
    let out = demo.wait_with_output()?;
    m.per_second = per_second(&String::from_utf8_lossy(&out.stdout));
    m.bytes = std::fs::metadata(&output).map(|f| f.len()).unwrap_or(0);
    Ok(m)
}

pub fn run(seconds: u32, rounds: u32) -> Result<()> {
    if !is_root() {
        bail!("the unwind benchmark attaches eBPF and perf: run it as root");
    }
    crate::setup::apt_packages(&["linux-perf"], Path::new("/usr/bin/perf"))?;
    crate::build::all()?;
    let dir = root().join("target/bench-unwind");
    std::fs::create_dir_all(&dir)?;

    let runs = [
        Run::Alone,
        Run::HudFp,
        Run::HudLeaf,
        Run::HudNoFp,
        Run::PerfDwarf,
    ];
    let mut results: Vec<(Run, Measured)> = Vec::new();
    for round in 0..rounds as usize {
        for i in 0..runs.len() {
            let run = runs[(i + round) % runs.len()];
            let m = one_run(run, seconds, &dir)?;
            eprintln!(
                "bench: round {round} {run:?}: {:.0} iterations/s, {:.2} s CPU, {} bytes",
                m.per_second, m.cpu_secs, m.bytes
            );
            results.push((run, m));
        }
    }
    let median_of = |run: Run, f: fn(&Measured) -> f64| {
        let v: Vec<f64> = results
            .iter()
            .filter(|(r, _)| *r == run)
            .map(|(_, m)| f(m))
            .collect();
        crate::bench::median(v)
    };
    let size = |run| median_of(run, |m| m.bytes as f64);
    let cpu = |run| median_of(run, |m| m.cpu_secs) / f64::from(seconds - 1) * 100.0;
    let speed = |run| median_of(run, |m| m.per_second);
    let alone = speed(Run::Alone);

    let (copies, unwind_s, hud_report_s, perf_samples, perf_report_s) = unwinding(&dir)?;
    let in_kernel = kernel_unwind_costs(seconds, rounds, &dir)?;

    println!(
        "\n## Stack copies ({rounds} rounds × {seconds} s, hud-demo --busy, -F 99; medians)\n"
    );
    println!("| measure | hud-record | peer | ratio (target) |");
    println!("|---|---|---|---|");
    println!(
        "| capture size, leaf windows (default) vs frame pointers only (`--unwind fp`) | {:.1} KiB | {:.1} KiB | {:.3} (≤ 1.15) |",
        size(Run::HudLeaf) / 1024.0,
        size(Run::HudFp) / 1024.0,
        size(Run::HudLeaf) / size(Run::HudFp)
    );
    println!(
        "| output size, no frame pointers: default options (whole stacks) vs `perf record --call-graph dwarf -F 99` | {:.2} MiB | {:.2} MiB | {:.3} (≤ 0.25) |",
        size(Run::HudNoFp) / 1048576.0,
        size(Run::PerfDwarf) / 1048576.0,
        size(Run::HudNoFp) / size(Run::PerfDwarf)
    );
    println!(
        "| profiler CPU, % of one core | {:.2} % | {:.2} % | {:.3} (≤ 0.5) |",
        cpu(Run::HudNoFp),
        cpu(Run::PerfDwarf),
        cpu(Run::HudNoFp) / cpu(Run::PerfDwarf)
    );
    println!(
        "| demo throughput (alone {alone:.0}/s) | {:.0}/s ({:+.2} %) | {:.0}/s ({:+.2} %) | |",
        speed(Run::HudNoFp),
        (speed(Run::HudNoFp) / alone - 1.0) * 100.0,
        speed(Run::PerfDwarf),
        (speed(Run::PerfDwarf) / alone - 1.0) * 100.0,
    );
    println!(
        "| in-kernel unwinding: the sample program on the busy demo without frame pointers, 999 Hz, ns per run | table {:.0} ns ({:.1} frames a stack) | frame pointers only {:.0} ns | {:.0} ns per whole unwind |",
        in_kernel.table_ns,
        in_kernel.frames,
        in_kernel.fp_ns,
        in_kernel.table_ns - in_kernel.fp_ns
    );
    println!(
        "| offline unwinding, 2 threads: {copies} copies (4,000 Hz) | {:.3} s unwind phase, {:.3} s per 100 k (≤ 1 s); whole report {:.2} s | perf report --stdio on its {perf_samples} dwarf samples: {:.2} s | {:.2}× faster (report) |",
        unwind_s,
        unwind_s / copies.max(1) as f64 * 1e5,
        hud_report_s,
        perf_report_s,
        perf_report_s / hud_report_s
    );
    Ok(())
}

/// Records the demo without frame pointers at 4,000 Hz with hud (`--unwind dwarf`) and with
/// perf (`--call-graph dwarf`), then times both reports. Returns (copies, unwind phase s, hud
/// report s, perf samples, perf report s).
fn unwinding(dir: &Path) -> Result<(u64, f64, f64, usize, f64)> {
    const SECONDS: u32 = 14;
    let capture = dir.join("dense.hudcap");
    let perf_data = dir.join("dense-perf.data");
    for hud in [true, false] {
        let demo = Command::new(nofp_demo_binary())
            .args(["--busy", "--seconds", &(SECONDS + 2).to_string()])
            .stdout(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(500));
        let pid = demo.id().to_string();
        let status = if hud {
            Command::new(release_binary("hud-record"))
                .args([
                    "--pid", &pid, "-q", "--force", "--unwind", "dwarf", "-F", "4000",
                ])
                .args(["--stack-budget", "1GiB", "--buffer-mib", "64", "--duration"])
                .arg(SECONDS.to_string())
                .arg("-o")
                .arg(&capture)
                .status()?
        } else {
            Command::new("perf")
                .args([
                    "record",
                    "-q",
                    "--call-graph",
                    "dwarf",
                    "-F",
                    "4000",
                    "-p",
                    &pid,
                ])
                .arg("-o")
                .arg(&perf_data)
                .args(["--", "sleep", &SECONDS.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
        };
        if !status.success() {
            bail!("recording the dense capture failed ({status})");
        }
        let mut demo = demo;
        let _ = demo.wait();
    }
    let hud = Runs::of(3, || {
        let mut c = crate::bench::analyzer();
        c.args(["report", "--json"])
            .arg(&capture)
            .env("HUD_TIMINGS", "1")
            .env("RAYON_NUM_THREADS", "2");
        c
    })?;
    let json: serde_json::Value = serde_json::from_str(&hud.stdouts[0])?;
    let copies = json["capture"]["stack_copies"]["copies"]
        .as_u64()
        .unwrap_or(0);
    let perf = Runs::of(1, || {
        let mut c = Command::new("perf");
        c.args(["report", "--stdio", "--no-children", "-i"])
            .arg(&perf_data);
        c
    })?;
    let perf_samples = crate::bench::perf_sample_count(&perf_data)?;
    Ok((
        copies,
        hud.phase("unwind"),
        hud.wall(),
        perf_samples,
        perf.wall(),
    ))
}

/// What the sample program costs with the table and without (medians of `rounds`).
struct KernelUnwindCosts {
    table_ns: f64,
    fp_ns: f64,
    /// Frames per table-unwound stack in the capture.
    frames: f64,
}

/// The sample program's ns per run on the busy demo without frame pointers, sampled at 999 Hz,
/// with the table (`--unwind leaf`) and with frame pointers only, alternating, `seconds` each.
fn kernel_unwind_costs(seconds: u32, rounds: u32, dir: &Path) -> Result<KernelUnwindCosts> {
    use crate::bench_switch::{hud_programs, interrupt, wait_attached, BpfStats};
    crate::setup::apt_packages(&["bpftool"], Path::new("/usr/sbin/bpftool"))?;
    let _stats = BpfStats::enable()?;
    let mut table = Vec::new();
    let mut fp = Vec::new();
    let mut frames = Vec::new();
    for _ in 0..rounds {
        for mode in ["leaf", "fp"] {
            let mut demo = Command::new(nofp_demo_binary())
                .args(["--busy", "--seconds", "600"])
                .stdout(Stdio::null())
                .spawn()
                .context("starting hud-demo")?;
            std::thread::sleep(Duration::from_millis(500));
            let capture = dir.join(format!("kernel-unwind-{mode}.hudcap"));
            let mut recorder = Command::new(release_binary("hud-record"))
                .args(["--pid", &demo.id().to_string(), "-q", "--force"])
                .args(["-F", "999", "--unwind", mode, "-o"])
                .arg(&capture)
                .stderr(Stdio::null())
                .spawn()
                .context("starting hud-record")?;
            let measured = (|| -> Result<f64> {
                wait_attached(&mut recorder)?;
                let sample = |ps: &[serde_json::Value]| {
                    ps.iter()
                        .find(|p| p["name"] == "hud_cpu_sample")
                        .map(|p| {
                            (
                                p["run_time_ns"].as_u64().unwrap_or(0),
                                p["run_cnt"].as_u64().unwrap_or(0),
                            )
                        })
                        .unwrap_or((0, 0))
                };
                let before = sample(&hud_programs()?);
                std::thread::sleep(Duration::from_secs(u64::from(seconds)));
                let after = sample(&hud_programs()?);
                Ok((after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64)
            })();
            let _ = interrupt(&mut recorder);
            let _ = demo.kill();
            let _ = demo.wait();
            let ns = measured?;
            eprintln!(
                "bench: in-kernel unwinding, --unwind {mode}: sample program {ns:.0} ns per run"
            );
            if mode == "leaf" {
                table.push(ns);
                frames.push(frames_per_stack(&capture)?);
            } else {
                fp.push(ns);
            }
        }
    }
    Ok(KernelUnwindCosts {
        table_ns: crate::bench::median(table),
        fp_ns: crate::bench::median(fp),
        frames: crate::bench::median(frames),
    })
}

/// Mean user frames per sample in a capture.
fn frames_per_stack(capture: &Path) -> Result<f64> {
    let capture = hud_format::reader::Capture::open(capture).context("opening the capture")?;
    let mut stacks = hud_format::reader::Stacks::default();
    let (mut frames, mut samples) = (0usize, 0usize);
    for data in capture.chunks().context("reading the capture")? {
        let c = data.get();
        stacks.add(c).map_err(anyhow::Error::msg)?;
        for id in c.samples.user_stack.iter() {
            frames += stacks.frames(stacks.local(id.to_native())).count();
            samples += 1;
        }
    }
    Ok(frames as f64 / samples.max(1) as f64)
}
