//! Benchmarks.
//!
//! - `format`: criterion over the synthetic mix (`cargo bench -p hud-format`).
//! - `analyze`: hud-analyze on real and synthetic captures (1 M samples, a 40 s storm), against
//!   `perf report`, with peak RSS and a window query.
//! - `tui`: the cockpit on a headless terminal: first frame, complete panels, redraw, window change.
//! - `export`: each export format on 1 M samples + 5 M switches: time and size.
//! - `live`: the live cockpit in tmux: event-to-screen latency, the viewer's CPU, its memory on
//!   a storm over `--seconds`, and the flush interval's cost in size (see `bench_live`).
//! - `record`: the recorder against `perf record` on the same workload, alternating runs so the
//!   shared machine's noise hits all of them alike, and reporting ratios:
//!   demo throughput alone / under hud-record / under `perf record -g`; hud-record's own CPU and
//!   peak RSS; capture size against perf.data (-g, and -g -z); capacity under a context-switch
//!   storm (lost records, switches per second recorded); then `switch`.
//! - `switch`: the per-switch cost: ns per run of each eBPF program (storm, busy demo), storm
//!   throughput alone / under hud-record / under perf (see `bench_switch`).
//! - `polls`: what `--poll-probes` costs per probed poll (see `bench_polls`).

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
        "analyze" => analyze(seconds),
        "tui" => tui(seconds),
        "export" => export(seconds),
        "live" => crate::bench_live::live(seconds),
        "switch" => crate::bench_switch::run(seconds, rounds),
        "unwind" => crate::bench_unwind::run(seconds, rounds),
        "polls" => crate::bench_polls::run(seconds, rounds),
        "flight" => crate::bench_flight::run(seconds),
        other => bail!(
            "unknown benchmark `{other}` (format, record, analyze, tui, export, live, switch, \
             unwind, polls, flight)"
        ),
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
    /// RSS in KiB halfway through the recording.
    steady_rss_kib: u64,
    output_bytes: u64,
    /// Switch records in hud's capture (a switch out and a switch in each).
    switches: u64,
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
    // Throughput: the median, since one disturbed run on a shared machine moves a mean by 5 %.
    let median = |m: Mode| {
        let mut v: Vec<f64> = results
            .iter()
            .filter(|(x, _)| *x == m)
            .map(|(_, r)| r.per_second)
            .collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let alone = median(Mode::Alone);
    let hud = median(Mode::Hud);
    let perf = median(Mode::Perf);
    let hud_cpu = mean(Mode::Hud, |r| r.cpu_secs);
    let perf_cpu = mean(Mode::Perf, |r| r.cpu_secs);
    let rss = |m: Mode| {
        (
            mean(m, |r| r.max_rss_kib as f64) / 1024.0,
            mean(m, |r| r.steady_rss_kib as f64) / 1024.0,
        )
    };
    let (hud_peak, hud_steady) = rss(Mode::Hud);
    let (perf_peak, perf_steady) = rss(Mode::Perf);
    let hud_bytes = mean(Mode::Hud, |r| r.output_bytes as f64);
    let hud_switches = mean(Mode::Hud, |r| r.switches as f64);
    let perf_bytes = mean(Mode::Perf, |r| r.output_bytes as f64);

    // perf's samples only, and perf with what hud keeps: samples and every context switch with
    // its stack. A global -F would put the tracepoint in frequency mode too (a file with almost
    // no switches), so the frequency is the sampler's own term and the tracepoint keeps period 1.
    let perf_z = perf_compressed_size(seconds, &dir, &["-F", "99"])?;
    let perf_z_switch = perf_compressed_size(
        seconds,
        &dir,
        &["-e", "cpu-clock/freq=99/", "-e", "sched:sched_switch"],
    )?;
    let capacity = capacity_run(seconds, &dir)?;

    println!("\n## hud-record benchmark ({rounds} rounds × {seconds} s, hud-demo --busy, -F 99)\n");
    println!("| measure | hud-record | perf record -g | ratio hud/perf |");
    println!("|---|---|---|---|");
    println!("| demo throughput alone (median) | {alone:.0}/s | | |");
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
    println!(
        "| profiler peak RSS | {hud_peak:.1} MiB | {perf_peak:.1} MiB | {:.2} |",
        hud_peak / perf_peak
    );
    println!(
        "| profiler RSS halfway | {hud_steady:.1} MiB | {perf_steady:.1} MiB | {:.2} |",
        hud_steady / perf_steady
    );
    println!(
        "| output size | {:.2} MiB | {:.2} MiB (-g), {:.2} MiB (-g -z) | {:.3} of -z |",
        hud_bytes / 1048576.0,
        perf_bytes / 1048576.0,
        perf_z.bytes as f64 / 1048576.0,
        hud_bytes / perf_z.bytes as f64
    );
    println!(
        "| output size, perf with every switch (-e cpu-clock/freq=99/ -e sched:sched_switch -g -z) | {:.0} switch records/s | {:.2} MiB, {:.0} sched_switch samples/s | {:.3} |",
        hud_switches / f64::from(seconds - 1),
        perf_z_switch.bytes as f64 / 1048576.0,
        perf_z_switch.switches as f64 / f64::from(seconds - 1),
        hud_bytes / perf_z_switch.bytes as f64
    );
    println!(
        "\nCapacity ({seconds} s of hud-stress --pairs 4): {:.0} switches/s recorded, {} lost, capture {:.2} MiB",
        capacity.0, capacity.1, capacity.2 as f64 / 1048576.0
    );
    println!(
        "\nNote: hud records every context switch and off-CPU episode of the target as well as the \
         samples; perf record -g -F 99 records samples only."
    );
    crate::bench_switch::run(seconds, rounds)
}

pub(crate) fn start_demo(seconds: u32) -> Result<Child> {
    Command::new(demo_binary())
        .args(["--busy", "--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting hud-demo")
}

pub(crate) fn per_second(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix("per_second: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The child's resident set (KiB) halfway through a recording of `seconds - 1` s.
pub(crate) fn rss_halfway(child: &Child, seconds: u32) -> u64 {
    std::thread::sleep(Duration::from_secs_f64(
        f64::from((seconds - 1).max(1)) / 2.0,
    ));
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Waits for `child`, returning (user+system CPU seconds, peak RSS KiB).
pub(crate) fn wait_rusage(child: &mut Child) -> Result<(f64, u64)> {
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
    let demo = start_demo(seconds + 1)?;
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
            result.steady_rss_kib = rss_halfway(&child, seconds);
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
            result.steady_rss_kib = rss_halfway(&child, seconds);
            (result.cpu_secs, result.max_rss_kib) = wait_rusage(&mut child)?;
            // perf's CPU includes `sleep`, which is negligible.
        }
    }
    let out = demo.wait_with_output()?;
    result.per_second = per_second(&String::from_utf8_lossy(&out.stdout));
    if mode != Mode::Alone {
        result.output_bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    }
    if mode == Mode::Hud {
        let capture = hud_format::reader::Capture::open(&output)?;
        result.switches = capture.index().map_or(0, |i| i.totals.switches);
    }
    Ok(result)
}

/// A compressed perf file and what perf says it holds.
struct PerfFile {
    bytes: u64,
    /// sched_switch samples, from `perf report --stats` (0 when not recorded).
    switches: u64,
}

fn perf_compressed_size(seconds: u32, dir: &Path, events: &[&str]) -> Result<PerfFile> {
    let demo = start_demo(seconds + 1)?;
    std::thread::sleep(Duration::from_millis(500));
    let output = dir.join("perf-z.data");
    let status = Command::new("perf")
        .args(["record", "-q", "-g", "-z"])
        .args(events)
        .args(["-p", &demo.id().to_string(), "-o"])
        .arg(&output)
        .args(["--", "sleep", &(seconds - 1).max(1).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let _ = demo.wait_with_output();
    if !status.success() {
        bail!("perf record -z {} failed ({status})", events.join(" "));
    }
    Ok(PerfFile {
        bytes: std::fs::metadata(&output)?.len(),
        switches: perf_event_samples(&output, "sched:sched_switch")?,
    })
}

/// The SAMPLE events `perf report --stats` counts for one event of a perf file.
fn perf_event_samples(data: &Path, event: &str) -> Result<u64> {
    let out = Command::new("perf")
        .args(["report", "--stats", "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let heading = format!("{event} stats:");
    Ok(text
        .lines()
        .skip_while(|l| l.trim() != heading)
        .find_map(|l| l.trim().strip_prefix("SAMPLE events:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0))
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
    // Counters are cumulative per name: the last value of each, summed.
    let mut counters = std::collections::BTreeMap::new();
    for chunk in capture.chunks()? {
        let c = chunk.get();
        switches += c.switches.tid.len() as u64;
        for counter in c.counters.iter() {
            counters.insert(counter.name.to_string(), counter.value.to_native());
        }
    }
    let lost: u64 = counters
        .iter()
        .filter(|(n, _)| n.starts_with("lost_"))
        .map(|(_, v)| v)
        .sum();
    let span = capture
        .index()
        .map(|i| (i.end_ns - capture.header().start_ns) as f64 / 1e9)
        .unwrap_or(elapsed.as_secs_f64());
    Ok((switches as f64 / span, lost, capture.len()))
}

/// Seconds of the context-switch storm recorded by `bench analyze` (the 40 s capture).
const STORM_SECONDS: u32 = 40;

/// Records `seconds` of `hud-stress --pairs 4` into `output`; returns the switches it holds.
fn record_storm(seconds: u32, output: &Path) -> Result<u64> {
    sh(cargo().args(["build", "--release", "-p", "hud-stress"]))?;
    let mut stress = Command::new(root().join("target/release/hud-stress"))
        .args(["--pairs", "4", "--seconds", &(seconds + 2).to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new(release_binary("hud-record"))
        .args(["--pid", &stress.id().to_string(), "-q", "--force"])
        .args(["--duration", &seconds.to_string(), "-o"])
        .arg(output)
        .status()?;
    let _ = stress.wait();
    if !status.success() {
        bail!("hud-record failed on the storm ({status})");
    }
    let capture = hud_format::reader::Capture::open(output)?;
    Ok(capture
        .index()
        .map(|i| i.totals.switches)
        .unwrap_or_default())
}

/// hud-analyze as the benchmarks run it: cold, without the symbol cache (`bench analyze` times
/// the warm cache on its own).
pub(crate) fn analyzer() -> Command {
    let mut c = Command::new(release_binary("hud-analyze"));
    c.env("HUD_SYMBOL_CACHE", "off");
    c
}

/// `bench analyze`: hud-analyze on a large capture built from a real one, against perf report.
pub fn analyze(seconds: u32) -> Result<()> {
    if !is_root() {
        bail!("the analyze benchmark records the demo with eBPF and perf: run it as root");
    }
    apt_packages(&["linux-perf"], Path::new("/usr/bin/perf"))?;
    crate::build::all()?;
    let dir = root().join("target/bench-analyze");
    std::fs::create_dir_all(&dir)?;
    // 1. A real capture and a perf.data of the busy demo, recorded side by side.
    let demo = start_demo(seconds + 2)?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = demo.id().to_string();
    let real = dir.join("real.hudcap");
    let perf_data = dir.join("perf.data");
    let mut perf = Command::new("perf")
        .args(["record", "-q", "-g", "-F", "4000", "-p", &pid, "-o"])
        .arg(&perf_data)
        .args(["--", "sleep", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    sh(Command::new(release_binary("hud-record"))
        .args([
            "--pid",
            &pid,
            "-q",
            "--force",
            "-F",
            "199",
            "--duration",
            &seconds.to_string(),
            "-o",
        ])
        .arg(&real))?;
    perf.wait()?;
    let _ = demo.wait_with_output();
    let perf_samples = perf_sample_count(&perf_data)?;

    // 2. Synthetic captures made of the real capture's stacks, threads and mappings.
    let big = dir.join("synthetic-1M.hudcap");
    scale_capture(&real, &big, 1_000_000, 5_000_000, true, 1)?;
    let big_other = dir.join("synthetic-1M-other.hudcap");
    scale_capture(&real, &big_other, 1_000_000, 5_000_000, true, 2)?;
    let same = dir.join("synthetic-perf-size.hudcap");
    scale_capture(&real, &same, perf_samples, 0, false, 1)?;

    // 3. Timings: the median of five runs, wall time and each phase (HUD_TIMINGS).
    let report = |path: &Path, threads: &str| -> Result<Runs> {
        Runs::of(5, || {
            let mut c = crate::bench::analyzer();
            c.args(["report", "--json"])
                .arg(path)
                .env("HUD_TIMINGS", "1")
                .env("RAYON_NUM_THREADS", threads);
            c
        })
    };
    let big2 = report(&big, "2")?;
    let big1 = report(&big, "1")?;
    // `diff` of two captures of that size, against the report of one (the same five rounds).
    let diff2 = Runs::of(5, || {
        let mut c = crate::bench::analyzer();
        c.args(["diff", "--json"]).arg(&big).arg(&big_other);
        c
    })?;
    let same2 = report(&same, "2")?;
    let real2 = report(&real, "2")?;
    let real1 = report(&real, "1")?;
    // The same with the symbol cache warm: one run fills it, five are timed.
    let symbols = dir.join("symbol-cache");
    let _ = std::fs::remove_dir_all(&symbols);
    let warm = |path: &Path| -> Result<Runs> {
        let run = || {
            let mut c = Command::new(release_binary("hud-analyze"));
            c.args(["report", "--json"])
                .arg(path)
                .env("HUD_SYMBOL_CACHE", &symbols)
                .env("HUD_TIMINGS", "1");
            c
        };
        sh(run().stdout(Stdio::null()).stderr(Stdio::null()))?;
        Runs::of(5, run)
    };
    let same_warm = warm(&same)?;
    let real_warm = warm(&real)?;
    // 4. A context-switch storm: what the timelines cost per switch, and a window query on it.
    let storm = dir.join("storm.hudcap");
    let storm_switches = record_storm(STORM_SECONDS, &storm)?;
    let storm2 = report(&storm, "2")?;
    let (from, to) = (STORM_SECONDS / 2, STORM_SECONDS / 2 + 1);
    let window = Runs::of(5, || {
        let mut c = crate::bench::analyzer();
        c.args(["report", "--json", "--from"])
            .arg(format!("{from}s"))
            .arg("--to")
            .arg(format!("{to}s"))
            .arg(&storm)
            .env("HUD_TIMINGS", "1");
        c
    })?;

    let perf_report = Runs::of(5, || {
        let mut c = Command::new("perf");
        c.args(["report", "--stdio", "--no-children", "-i"])
            .arg(&perf_data);
        c
    })?;
    println!("\n## hud-analyze benchmark (median of 5 runs)\n");
    println!("| measure | result |");
    println!("|---|---|");
    println!(
        "| report, synthetic 1 M samples + 5 M switches, 2 threads | {:.2} s (target ≤ 2 s) |",
        big2.wall()
    );
    println!(
        "| phases on 2 threads: model / symbolize / analyze / report | {} |",
        ["model", "symbolize", "analyze", "report"]
            .map(|p| format!("{:.3}", big2.phase(p)))
            .join(" / ")
    );
    println!(
        "| peak RSS, report on synthetic 1 M | {:.0} MiB |",
        big2.peak_rss_mib()
    );
    println!(
        "| diff of two synthetic 1 M captures vs report of one | {:.2} s vs {:.2} s ({:.2}×, target ≤ 1.5×), peak RSS {:.0} MiB |",
        diff2.wall(),
        big2.wall(),
        diff2.wall() / big2.wall(),
        diff2.peak_rss_mib()
    );
    println!(
        "| report, storm capture ({STORM_SECONDS} s of hud-stress --pairs 4: {:.1} M switches, {:.1} MB) | {:.2} s (target ≤ 2 s) |",
        storm_switches as f64 / 1e6,
        std::fs::metadata(&storm)?.len() as f64 / 1e6,
        storm2.wall()
    );
    println!(
        "| peak RSS, report on the storm capture | {:.0} MiB, {:.1} bytes per switch (target ≤ 10) |",
        storm2.peak_rss_mib(),
        storm2.peak_rss_mib() * 1048576.0 / storm_switches.max(1) as f64
    );
    println!(
        "| window query on the storm capture ({from} s – {to} s: blockers, hotspots, threads) | {:.1} ms (target ≤ 50 ms) |",
        window.phase("report") * 1e3
    );
    println!(
        "| report, same, 1 thread | {:.2} s ({:.2}× slower) |",
        big1.wall(),
        big1.wall() / big2.wall()
    );
    println!(
        "| symbolize, synthetic 1 M, 1 → 2 threads | {:.3} s → {:.3} s ({:.2}×, target ≥ 1.7×) |",
        big1.phase("symbolize"),
        big2.phase("symbolize"),
        big1.phase("symbolize") / big2.phase("symbolize")
    );
    println!(
        "| symbolize, real capture ({} stack nodes), 1 → 2 threads | {:.3} s → {:.3} s ({:.2}×) |",
        stack_nodes(&real)?,
        real1.phase("symbolize"),
        real2.phase("symbolize"),
        real1.phase("symbolize") / real2.phase("symbolize")
    );
    println!(
        "| report, real capture ({seconds} s at 199 Hz), 1 / 2 threads | {:.3} s / {:.3} s |",
        real1.wall(),
        real2.wall()
    );
    println!(
        "| hud-analyze report on {perf_samples} samples vs perf report --stdio on the same count | {:.3} s vs {:.3} s ({:.1}× faster, target ≥ 5×) |",
        same2.wall(),
        perf_report.wall(),
        perf_report.wall() / same2.wall()
    );
    println!(
        "| the same, symbol cache warm | {:.3} s vs {:.3} s ({:.1}× faster than perf report; {:.1}× faster than cold, target ≥ 2×), peak RSS {:.0} MiB cold, {:.0} MiB warm |",
        same_warm.wall(),
        perf_report.wall(),
        perf_report.wall() / same_warm.wall(),
        same2.wall() / same_warm.wall(),
        same2.peak_rss_mib(),
        same_warm.peak_rss_mib()
    );
    println!(
        "| report, real capture, cold vs symbol cache warm | {:.3} s vs {:.3} s ({:.1}×), peak RSS {:.0} vs {:.0} MiB (perf report {:.0} MiB) |",
        real2.wall(),
        real_warm.wall(),
        real2.wall() / real_warm.wall(),
        real2.peak_rss_mib(),
        real_warm.peak_rss_mib(),
        perf_report.peak_rss_mib()
    );
    Ok(())
}

/// `bench tui`: the cockpit on a headless 200×60 terminal (`hud-analyze tui --bench-headless`):
/// first frame, complete panels, a redraw, a window change, the flame graph's first draw and a
/// zoom; on the demo and on 1 M samples.
pub fn tui(seconds: u32) -> Result<()> {
    if !is_root() {
        bail!("the tui benchmark records the demo with eBPF: run it as root");
    }
    crate::build::all()?;
    let dir = root().join("target/bench-tui");
    std::fs::create_dir_all(&dir)?;
    let real = dir.join("demo.hudcap");
    record_busy_demo(seconds, &real)?;
    let big = dir.join("synthetic-1M.hudcap");
    scale_capture(&real, &big, 1_000_000, 5_000_000, true, 1)?;
    let measure = |path: &Path| -> Result<Runs> {
        Runs::of(5, || {
            let mut c = crate::bench::analyzer();
            c.args(["tui", "--bench-headless", "200x60"]).arg(path);
            c
        })
    };
    let (small, large) = (measure(&real)?, measure(&big)?);
    println!("\n## cockpit benchmark (headless 200×60, median of 5 runs)\n");
    println!("| measure | demo capture ({seconds} s) | 1 M samples + 5 M switches | target |");
    println!("|---|---|---|---|");
    for (name, what, target) in [
        (
            "first_frame_ms",
            "first frame (status and progress)",
            "≤ 100 ms",
        ),
        ("complete_ms", "complete panels", "≤ 300 ms / ≤ 1500 ms"),
        ("redraw_ms", "redraw", "≤ 16 ms"),
        (
            "window_change_ms",
            "window change (findings + redraw)",
            "≤ 100 ms",
        ),
        (
            "flame_first_ms",
            "flame graph, first draw (tree built)",
            "≤ 300 ms",
        ),
        ("flame_zoom_ms", "flame graph, zoom (redraw)", "≤ 50 ms"),
    ] {
        println!(
            "| {what} | {:.1} ms | {:.1} ms | {target} |",
            small.stdout_value(name),
            large.stdout_value(name)
        );
    }
    Ok(())
}

/// `bench export`: each export format on 1 M samples + 5 M switches: time (the whole command:
/// reading, symbolizing, analyzing, writing) and size, next to `report` on the same capture.
pub fn export(seconds: u32) -> Result<()> {
    if !is_root() {
        bail!("the export benchmark records the demo with eBPF: run it as root");
    }
    crate::build::all()?;
    let dir = root().join("target/bench-export");
    std::fs::create_dir_all(&dir)?;
    let real = dir.join("demo.hudcap");
    record_busy_demo(seconds, &real)?;
    let big = dir.join("synthetic-1M.hudcap");
    scale_capture(&real, &big, 1_000_000, 5_000_000, true, 1)?;
    let report = Runs::of(3, || {
        let mut c = crate::bench::analyzer();
        c.args(["report", "--json"]).arg(&big);
        c
    })?;
    println!("\n## export benchmark (1 M samples + 5 M switches, median of 3 runs)\n");
    println!("| format | time | size | target |");
    println!("|---|---|---|---|");
    println!(
        "| (report --json, for reference) | {:.2} s | | |",
        report.wall()
    );
    let mut sizes = std::collections::HashMap::new();
    for (format, file) in [
        ("pprof", "out.pb.gz"),
        ("folded", "out.folded"),
        ("svg", "out.svg"),
        ("chrome", "out.json"),
        ("perfetto", "out.pftrace"),
    ] {
        let out = dir.join(file);
        let runs = Runs::of(3, || {
            let mut c = crate::bench::analyzer();
            c.arg("export").arg(&big).arg("-o").arg(&out);
            c
        })?;
        let size = std::fs::metadata(&out)?.len() as f64;
        sizes.insert(format, size);
        println!(
            "| {format} | {:.2} s | {:.1} MB | ≤ 3 s |",
            runs.wall(),
            size / 1e6
        );
    }
    println!(
        "\nperfetto / chrome size: {:.3} (target ≤ 0.25)",
        sizes["perfetto"] / sizes["chrome"]
    );
    Ok(())
}

/// Records `seconds` of the busy demo into `output`.
fn record_busy_demo(seconds: u32, output: &Path) -> Result<()> {
    let demo = start_demo(seconds + 2)?;
    std::thread::sleep(Duration::from_millis(500));
    sh(Command::new(release_binary("hud-record"))
        .args(["--pid", &demo.id().to_string(), "-q", "--force"])
        .args(["--duration", &seconds.to_string(), "-o"])
        .arg(output))?;
    let _ = demo.wait_with_output();
    Ok(())
}

/// Repeated runs of one command: wall times and the phase timings it printed.
pub(crate) struct Runs {
    walls: Vec<f64>,
    pub(crate) stdouts: Vec<String>,
    stderrs: Vec<String>,
    /// Peak RSS of each run, KiB.
    peaks: Vec<u64>,
}

impl Runs {
    pub(crate) fn of(n: usize, command: impl Fn() -> Command) -> Result<Self> {
        let mut runs = Runs {
            walls: Vec::new(),
            stdouts: Vec::new(),
            stderrs: Vec::new(),
            peaks: Vec::new(),
        };
        for _ in 0..n {
            let started = Instant::now();
            let mut child = command()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            // The JSON on stdout is read on a thread while the timings (a few lines) wait in
            // their pipe.
            let mut out = child.stdout.take().expect("piped stdout");
            let reader = std::thread::spawn(move || {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut out, &mut text);
                text
            });
            let mut stderr = String::new();
            std::io::Read::read_to_string(
                child.stderr.as_mut().expect("piped stderr"),
                &mut stderr,
            )?;
            let stdout = reader.join().unwrap_or_default();
            let (_, peak) = wait_rusage(&mut child)?;
            runs.walls.push(started.elapsed().as_secs_f64());
            if stderr.lines().any(|l| {
                l.starts_with("hud-analyze:") && !l.contains("wrote") && !l.contains("warning")
            }) {
                bail!("{} failed: {stderr}", crate::util::show(&command()));
            }
            runs.stderrs.push(stderr);
            runs.stdouts.push(stdout);
            runs.peaks.push(peak);
        }
        Ok(runs)
    }

    pub(crate) fn wall(&self) -> f64 {
        median(self.walls.clone())
    }

    /// Median of a "tui NAME x" line printed on stdout (NaN when absent).
    pub(crate) fn stdout_value(&self, name: &str) -> f64 {
        let prefix = format!("tui {name} ");
        median(
            self.stdouts
                .iter()
                .filter_map(|o| {
                    o.lines()
                        .find_map(|l| l.strip_prefix(&prefix))
                        .and_then(|v| v.trim().parse().ok())
                })
                .collect(),
        )
    }

    fn peak_rss_mib(&self) -> f64 {
        median(self.peaks.iter().map(|k| *k as f64 / 1024.0).collect())
    }

    /// Median of a phase's "timing NAME x s (heap …)" lines (NaN when absent).
    pub(crate) fn phase(&self, name: &str) -> f64 {
        let prefix = format!("timing {name} ");
        median(
            self.stderrs
                .iter()
                .filter_map(|e| {
                    e.lines()
                        .find_map(|l| l.strip_prefix(&prefix))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                })
                .collect(),
        )
    }
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn stack_nodes(path: &Path) -> Result<usize> {
    let capture = hud_format::reader::Capture::open(path)?;
    Ok(capture
        .chunks()?
        .iter()
        .map(|c| c.get().stacks.parent.len())
        .sum())
}

pub(crate) fn perf_sample_count(data: &Path) -> Result<usize> {
    let out = Command::new("perf")
        .args(["script", "-F", "tid", "-i"])
        .arg(data)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// Writes a capture with `samples` samples and `switches` switches drawn from `real`'s events;
/// with `spread`, one sample in ten gets a random leaf address in the target's code, drawn from
/// `seed` (another seed, another capture of the same program).
fn scale_capture(
    real: &Path,
    out: &Path,
    samples: usize,
    switches: usize,
    spread: bool,
    seed: u64,
) -> Result<()> {
    use hud_format::reader::{Capture, Stacks};
    use hud_format::types::{Mapping, ThreadEvent, ThreadEventKind};
    let capture = Capture::open(real)?;
    let mut stacks = Stacks::default();
    let mut rows: Vec<(u32, Vec<u64>)> = Vec::new();
    let mut offs: Vec<(u32, u64, u64, u16, Vec<u64>)> = Vec::new();
    let mut mappings: Vec<Mapping> = Vec::new();
    let mut tids = Vec::new();
    for chunk in capture.chunks()? {
        let c = chunk.get();
        stacks.add(c).map_err(anyhow::Error::msg)?;
        for (tid, id) in c.samples.tid.iter().zip(c.samples.user_stack.iter()) {
            rows.push((
                tid.to_native(),
                stacks.frames(stacks.local(id.to_native())).collect(),
            ));
        }
        let o = &c.off_cpu;
        for i in 0..o.tid.len() {
            offs.push((
                o.tid[i].to_native(),
                o.duration_ns[i].to_native(),
                o.runnable_ns[i].to_native(),
                o.state[i].to_native(),
                stacks
                    .frames(stacks.local(o.user_stack[i].to_native()))
                    .collect(),
            ));
        }
        for t in c.threads.iter() {
            tids.push((t.tid.to_native(), t.name.to_string()));
        }
        mappings.extend(c.mappings.iter().map(|m| m.to_mapping()));
    }
    if rows.is_empty() {
        bail!("{} has no samples to scale", real.display());
    }
    let header = capture.header().clone();
    // Code addresses spread over the target's executable mapping, so symbolization has the work
    // a large service gives it (tens of thousands of distinct addresses), not just the demo's few.
    let text = mappings
        .iter()
        .find(|m| m.perms.contains('x') && m.path == header.target.exe_path)
        .map(|m| (m.start, m.end));
    let mut rng = hud_format::synth::Rng::new(seed);
    let file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut w = hud_format::writer::CaptureWriter::new(file, &header, Default::default())?;
    for m in mappings {
        w.push_mapping(m)?;
    }
    // The objects the real capture carries (the vDSO at least), so both symbolize alike.
    for o in capture.objects()? {
        w.embed_object(&o.path, &o.build_id, &o.bytes)?;
    }
    for (tid, name) in &tids {
        w.push_thread(ThreadEvent {
            ts_ns: header.start_ns,
            tid: *tid,
            kind: ThreadEventKind::New,
            name: name.clone(),
        })?;
    }
    let mut ts = header.start_ns;
    let per_sample = switches / samples.max(1);
    let mut switched = 0usize;
    for i in 0..samples {
        ts += 1_000;
        let (tid, frames) = &rows[i % rows.len()];
        match text {
            Some((start, end)) if spread && i % 10 == 0 && !frames.is_empty() => {
                let mut spread_frames = frames.clone();
                spread_frames[0] = start + rng.below(end - start);
                w.push_sample(ts, *tid, (i % 2) as u16, &spread_frames, &[])?;
            }
            _ => w.push_sample(ts, *tid, (i % 2) as u16, frames, &[])?,
        }
        for k in 0..per_sample {
            if switched < switches {
                w.push_switch(
                    ts + k as u64,
                    *tid,
                    (i % 2) as u16,
                    k % 2 == 1,
                    if k % 2 == 0 { 1 } else { 0 },
                )?;
                switched += 1;
            }
        }
        if i % 100 == 0 && !offs.is_empty() {
            let (tid, d, r, s, f) = &offs[(i / 100) % offs.len()];
            w.push_off_cpu(ts, *tid, 0, *d, *r, u32::from(*s), f, &[])?;
        }
        w.set_now(ts);
    }
    w.finish()?;
    Ok(())
}
