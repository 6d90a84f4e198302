//! Benchmarks.
//!
//! - `format`: criterion over the synthetic mix (`cargo bench -p hud-format`).
//! - `record`: the recorder against `perf record` on the same workload, alternating runs so the
//!   shared machine's noise hits all of them alike, and reporting ratios:
//!   demo throughput alone / under hud-record / under `perf record -g`; hud-record's own CPU and
//!   peak RSS; capture size against perf.data (-g, and -g -z); capacity under a context-switch
//!   storm (lost records, switches per second recorded).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{demo_binary, release_binary};
use crate::setup::apt_packages;
use crate::util::{cargo, is_root, root, sh};

pub fn run(which: &str, seconds: u32, rounds: u32) -> Result<()> {
    match which {
        "format" => sh(cargo().args(["bench", "-p", "hud-format", "--features", "writer,reader"])),
        "record" => record(seconds, rounds),
        other => bail!("unknown benchmark `{other}` (format, record)"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Alone,
    Hud,
    Perf,
}

/// What one run measured.
#[derive(Default, Clone, Debug)]
struct RunResult {
    per_second: f64,
    /// Profiler CPU seconds (user + system) and peak RSS in KiB.
    cpu_secs: f64,
    max_rss_kib: u64,
    output_bytes: u64,
}

fn record(seconds: u32, rounds: u32) -> Result<()> {
    if !is_root() {
        bail!("the record benchmark attaches eBPF and perf: run it as root");
    }
    apt_packages(&["linux-perf"], Path::new("/usr/bin/perf"))?;
    crate::build::all()?;
    sh(cargo().args(["build", "--release", "-p", "hud-stress"]))?;
    let dir = root().join("target/bench-record");
    std::fs::create_dir_all(&dir)?;

    let modes = [Mode::Alone, Mode::Hud, Mode::Perf];
    let mut results: Vec<(Mode, RunResult)> = Vec::new();
    for round in 0..rounds {
        // Rotate the order each round so no mode always runs first (warm caches, turbo...).
        for i in 0..modes.len() {
            let mode = modes[(i + round as usize) % modes.len()];
            let r = overhead_run(mode, seconds, &dir)?;
            eprintln!(
                "bench: round {round} {mode:?}: {:.0} iterations/s",
                r.per_second
            );
            results.push((mode, r));
        }
    }
    let mean = |m: Mode, f: fn(&RunResult) -> f64| {
        let v: Vec<f64> = results
            .iter()
            .filter(|(x, _)| *x == m)
            .map(|(_, r)| f(r))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let alone = mean(Mode::Alone, |r| r.per_second);
    let hud = mean(Mode::Hud, |r| r.per_second);
    let perf = mean(Mode::Perf, |r| r.per_second);
    let hud_cpu = mean(Mode::Hud, |r| r.cpu_secs);
    let perf_cpu = mean(Mode::Perf, |r| r.cpu_secs);
    let hud_rss = mean(Mode::Hud, |r| r.max_rss_kib as f64);
    let hud_bytes = mean(Mode::Hud, |r| r.output_bytes as f64);
    let perf_bytes = mean(Mode::Perf, |r| r.output_bytes as f64);

    let perf_z = perf_compressed_size(seconds, &dir)?;
    let capacity = capacity_run(seconds, &dir)?;

    println!("\n## hud-record benchmark ({rounds} rounds × {seconds} s, hud-demo --busy, -F 99)\n");
    println!("| measure | hud-record | perf record -g | ratio hud/perf |");
    println!("|---|---|---|---|");
    println!("| demo throughput alone | {alone:.0}/s | | |");
    println!(
        "| throughput under profiler | {hud:.0}/s ({:+.2} %) | {perf:.0}/s ({:+.2} %) | |",
        (hud / alone - 1.0) * 100.0,
        (perf / alone - 1.0) * 100.0
    );
    println!(
        "| profiler CPU, % of one core | {:.2} % | {:.2} % | {:.2} |",
        hud_cpu / f64::from(seconds) * 100.0,
        perf_cpu / f64::from(seconds) * 100.0,
        hud_cpu / perf_cpu
    );
    println!("| profiler peak RSS | {:.1} MiB | | |", hud_rss / 1024.0);
    println!(
        "| output size | {:.2} MiB | {:.2} MiB (-g), {:.2} MiB (-g -z) | {:.3} of -z |",
        hud_bytes / 1048576.0,
        perf_bytes / 1048576.0,
        perf_z as f64 / 1048576.0,
        hud_bytes / perf_z as f64
    );
    println!(
        "\nCapacity ({seconds} s of hud-stress --pairs 4): {:.0} switches/s recorded, {} lost, capture {:.2} MiB",
        capacity.0, capacity.1, capacity.2 as f64 / 1048576.0
    );
    println!(
        "\nNote: hud records every context switch and off-CPU episode of the target as well as the \
         samples; perf record -g -F 99 records samples only."
    );
    Ok(())
}

fn start_demo(seconds: u32) -> Result<Child> {
    Command::new(demo_binary())
        .args(["--busy", "--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting hud-demo")
}

fn per_second(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix("per_second: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits for `child`, returning (user+system CPU seconds, peak RSS KiB).
fn wait_rusage(child: &mut Child) -> Result<(f64, u64)> {
    let mut status = 0;
    // SAFETY: zeroed rusage is valid; wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if rc != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((
        secs(usage.ru_utime) + secs(usage.ru_stime),
        usage.ru_maxrss as u64,
    ))
}

fn overhead_run(mode: Mode, seconds: u32, dir: &Path) -> Result<RunResult> {
    let mut demo = start_demo(seconds + 1)?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = demo.id().to_string();
    let window = (seconds - 1).max(1).to_string();
    let mut result = RunResult::default();
    let output: PathBuf;
    match mode {
        Mode::Alone => output = PathBuf::new(),
        Mode::Hud => {
            output = dir.join("bench.hudcap");
            let _ = std::fs::remove_file(&output);
            let mut child = Command::new(release_binary("hud-record"))
                .args(["--pid", &pid, "-q", "--duration", &window, "-o"])
                .arg(&output)
                .stderr(Stdio::null())
                .spawn()?;
            (result.cpu_secs, result.max_rss_kib) = wait_rusage(&mut child)?;
        }
        Mode::Perf => {
            output = dir.join("perf.data");
            let mut child = Command::new("perf")
                .args(["record", "-q", "-g", "-F", "99", "-p", &pid, "-o"])
                .arg(&output)
                .args(["--", "sleep", &window])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            (result.cpu_secs, result.max_rss_kib) = wait_rusage(&mut child)?;
            // perf's CPU includes `sleep`, which is negligible.
        }
    }
    let out = demo.wait_with_output()?;
    result.per_second = per_second(&String::from_utf8_lossy(&out.stdout));
    if mode != Mode::Alone {
        result.output_bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    }
    Ok(result)
}

fn perf_compressed_size(seconds: u32, dir: &Path) -> Result<u64> {
    let demo = start_demo(seconds + 1)?;
    std::thread::sleep(Duration::from_millis(500));
    let output = dir.join("perf-z.data");
    let status = Command::new("perf")
        .args([
            "record",
            "-q",
            "-g",
            "-z",
            "-F",
            "99",
            "-p",
            &demo.id().to_string(),
            "-o",
        ])
        .arg(&output)
        .args(["--", "sleep", &(seconds - 1).max(1).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let _ = demo.wait_with_output();
    if !status.success() {
        bail!("perf record -z failed ({status})");
    }
    Ok(std::fs::metadata(&output)?.len())
}

/// (switches per second recorded, lost records, capture bytes) under a context-switch storm.
fn capacity_run(seconds: u32, dir: &Path) -> Result<(f64, u64, u64)> {
    let stress = root().join("target/release/hud-stress");
    let mut child = Command::new(stress)
        .args(["--pairs", "4", "--seconds", &(seconds + 1).to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let output = dir.join("stress.hudcap");
    let _ = std::fs::remove_file(&output);
    let started = Instant::now();
    let status = Command::new(release_binary("hud-record"))
        .args([
            "--pid",
            &child.id().to_string(),
            "-q",
            "--duration",
            &(seconds - 1).max(1).to_string(),
            "-o",
        ])
        .arg(&output)
        .status()?;
    let elapsed = started.elapsed();
    let _ = child.wait();
    if !status.success() {
        bail!("hud-record failed under stress ({status})");
    }
    let capture = hud_format::reader::Capture::open(&output)?;
    let mut switches = 0u64;
    let mut lost = 0u64;
    for chunk in capture.chunks()? {
        let c = chunk.get();
        switches += c.switches.tid.len() as u64;
        for counter in c.counters.iter() {
            if counter.name.starts_with("lost_") {
                lost = lost.max(counter.value.to_native());
            }
        }
    }
    let span = capture
        .index()
        .map(|i| (i.end_ns - capture.header().start_ns) as f64 / 1e9)
        .unwrap_or(elapsed.as_secs_f64());
    Ok((switches as f64 / span, lost, capture.len()))
}
