//! `bench switch` (also the end of `bench record`): what recording costs per context switch.
//!
//! - Kernel side: `kernel.bpf_stats_enabled` on for the measurement only (restored afterwards),
//!   `bpftool prog show` read while hud-record is still attached: ns per run of each program, on
//!   the storm (`hud-stress --pairs 4`) and on the busy demo.
//! - Target throughput under the storm: alone, under hud-record, and under
//!   `perf record -e sched:sched_switch -c 1 -g` (every switch with its stack, what hud keeps),
//!   in turns on one storm process, rotating the order. The rate is taken over exactly the time
//!   the profiler was attached (hud-stress `--ticks`), since attaching under a storm can take
//!   seconds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::build::release_binary;
use crate::setup::apt_packages;
use crate::util::{cargo, is_root, root, sh};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Alone,
    Hud,
    Perf,
}

/// Per program: (name, ns per run, runs).
type ProgramCosts = Vec<(String, f64, u64)>;

pub fn run(seconds: u32, rounds: u32) -> Result<()> {
    if !is_root() {
        bail!("the switch benchmark attaches eBPF and perf: run it as root");
    }
    apt_packages(&["linux-perf"], Path::new("/usr/bin/perf"))?;
    apt_packages(&["bpftool"], Path::new("/usr/sbin/bpftool"))?;
    crate::build::all()?;
    sh(cargo().args(["build", "--release", "-p", "hud-stress"]))?;
    let dir = root().join("target/bench-switch");
    std::fs::create_dir_all(&dir)?;

    let (storm_costs, demo_costs) = {
        let _stats = BpfStats::enable()?;
        (
            kernel_costs(Workload::Storm, seconds, &dir)?,
            kernel_costs(Workload::Demo, seconds, &dir)?,
        )
    };

    let rates = storm_rates(seconds, rounds, &dir)?;

    println!("\n## Per-switch cost ({rounds} rounds × {seconds} s, hud-stress --pairs 4)\n");
    println!("| program | ns per run, storm | runs/s, storm | ns per run, busy demo | runs/s, busy demo |");
    println!("|---|---|---|---|---|");
    for (name, ns, runs) in &storm_costs {
        let demo = demo_costs.iter().find(|(n, _, _)| n == name);
        println!(
            "| {name} | {ns:.0} | {:.0} | {} | {} |",
            *runs as f64 / f64::from(seconds),
            demo.map_or("–".into(), |d| format!("{:.0}", d.1)),
            demo.map_or("–".into(), |d| format!(
                "{:.0}",
                d.2 as f64 / f64::from(seconds)
            )),
        );
    }
    if rounds == 0 {
        return Ok(());
    }
    let median = |m: Mode| {
        crate::bench::median(rates.iter().filter(|(x, _)| *x == m).map(|r| r.1).collect())
    };
    let (alone, hud, perf) = (median(Mode::Alone), median(Mode::Hud), median(Mode::Perf));
    // The slowdown is told per round, against that round's own run alone, then the median: the
    // shared machine's speed drifts over minutes (one run's storm alone went 236 k → 207 k →
    // 168 k round trips/s in three rounds), which medians of each mode alone mix into the ratio.
    let paired = |m: Mode| {
        crate::bench::median(
            rates
                .chunks(3)
                .filter_map(|round| {
                    let of = |x: Mode| round.iter().find(|(y, _)| *y == x).map(|r| r.1);
                    Some((1.0 - of(m)? / of(Mode::Alone)?) * 100.0)
                })
                .collect(),
        )
    };
    let (hud_slowdown, perf_slowdown) = (paired(Mode::Hud), paired(Mode::Perf));
    println!("\n| storm round trips/s (median) | alone | hud-record | perf record -e sched:sched_switch -c 1 -g |");
    println!("|---|---|---|---|");
    println!("| rate | {alone:.0} | {hud:.0} | {perf:.0} |");
    println!(
        "| slowdown, median of each round's against its own run alone | | −{hud_slowdown:.1} % | −{perf_slowdown:.1} % |"
    );
    println!(
        "\nhud's slowdown is {:.2} of perf's (targets: hud_sched_switch ≤ 300 ns per run; slowdown ≤ 15 % and ≤ 0.25 of perf's)",
        hud_slowdown / perf_slowdown
    );
    Ok(())
}

/// `kernel.bpf_stats_enabled` on while alive, then back to what it was.
pub(crate) struct BpfStats {
    before: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub(crate) fn enable() -> Result<Self> {
        let before = std::fs::read_to_string(BPF_STATS).context(BPF_STATS)?;
        std::fs::write(BPF_STATS, "1").context(BPF_STATS)?;
        Ok(BpfStats { before })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, self.before.trim());
    }
}

/// hud's programs as bpftool lists them (run time and count need `bpf_stats_enabled`).
pub(crate) fn hud_programs() -> Result<Vec<Value>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .context("bpftool")?;
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).context("bpftool's JSON")?;
    Ok(all
        .into_iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("hud_")))
        .collect())
}

/// Waits until hud's switch program is attached (attaching under a storm takes a while).
pub(crate) fn wait_attached(recorder: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = recorder.try_wait()? {
            bail!("hud-record exited before attaching ({status})");
        }
        if hud_programs()?.iter().any(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("hud_sched_switch"))
        }) {
            // The tracepoints attach one after the other: let the last ones follow.
            std::thread::sleep(Duration::from_millis(500));
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("hud-record did not attach within 60 s")
}

#[derive(Clone, Copy)]
enum Workload {
    Storm,
    Demo,
}

fn start(workload: Workload, ticks: bool) -> Result<Child> {
    let mut c = match workload {
        Workload::Storm => {
            let mut c = Command::new(root().join("target/release/hud-stress"));
            c.args(["--pairs", "4", "--seconds", "600"]);
            if ticks {
                c.arg("--ticks");
            }
            c
        }
        Workload::Demo => {
            let mut c = Command::new(crate::build::demo_binary());
            c.args(["--busy", "--seconds", "600"]);
            c
        }
    };
    c.stdout(Stdio::piped())
        .spawn()
        .context("starting the workload")
}

fn start_recorder(pid: u32, output: &Path) -> Result<Child> {
    let _ = std::fs::remove_file(output);
    Command::new(release_binary("hud-record"))
        .args(["--pid", &pid.to_string(), "-q", "--force", "-o"])
        .arg(output)
        .stderr(Stdio::null())
        .spawn()
        .context("starting hud-record")
}

/// Stops a child with SIGINT (the recorder closes its capture) and waits.
pub(crate) fn interrupt(child: &mut Child) -> Result<()> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait()?;
    Ok(())
}

/// ns per run of each hud program over `seconds` of `workload`, read while attached.
fn kernel_costs(workload: Workload, seconds: u32, dir: &Path) -> Result<ProgramCosts> {
    let mut target = start(workload, false)?;
    std::thread::sleep(Duration::from_millis(500));
    let mut recorder = start_recorder(target.id(), &dir.join("stats.hudcap"))?;
    let measured = (|| {
        wait_attached(&mut recorder)?;
        let before = hud_programs()?;
        std::thread::sleep(Duration::from_secs(u64::from(seconds)));
        let after = hud_programs()?;
        let field = |p: &Value, f: &str| p[f].as_u64().unwrap_or(0);
        let mut costs = Vec::new();
        for p in &after {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let earlier = before.iter().find(|b| b["id"] == p["id"]);
            let runs = field(p, "run_cnt") - earlier.map_or(0, |b| field(b, "run_cnt"));
            let ns = field(p, "run_time_ns") - earlier.map_or(0, |b| field(b, "run_time_ns"));
            costs.push((name, ns as f64 / runs.max(1) as f64, runs));
        }
        costs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(costs)
    })();
    let _ = interrupt(&mut recorder);
    let _ = target.kill();
    let _ = target.wait();
    measured
}

/// One storm, measured in turns: alone, under hud-record, under perf, `rounds` times in rotating
/// order, each turn `seconds` long once the profiler is attached (hud-stress's `--ticks` give the
/// rate over exactly that time). One process for every turn: how the storm's threads happen to
/// be placed on the CPUs moved separate runs by ±10 %, more than the effect measured.
fn storm_rates(seconds: u32, rounds: u32, dir: &Path) -> Result<Vec<(Mode, f64)>> {
    let mut stress = start(Workload::Storm, true)?;
    let ticks: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let reader = {
        let out = stress.stdout.take().context("hud-stress's output")?;
        let ticks = Arc::clone(&ticks);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                if words.next() != Some("tick") {
                    continue;
                }
                let (Some(ms), Some(trips)) = (words.next(), words.next()) else {
                    continue;
                };
                if let (Ok(ms), Ok(trips)) = (ms.parse(), trips.parse()) {
                    ticks.lock().unwrap().push((ms, trips));
                }
            }
        })
    };
    let rate = |from: u64, to: u64| -> Result<f64> {
        let ticks = ticks.lock().unwrap();
        let at = |t: u64| ticks.iter().rev().find(|(ms, _)| *ms <= t).copied();
        let (Some(a), Some(b)) = (at(from), at(to)) else {
            bail!("hud-stress printed no ticks");
        };
        if b.0 <= a.0 {
            bail!("hud-stress's ticks do not cover the measured time");
        }
        Ok((b.1 - a.1) as f64 / ((b.0 - a.0) as f64 / 1000.0))
    };
    let measured = (|| {
        std::thread::sleep(Duration::from_secs(1));
        let pid = stress.id();
        let modes = [Mode::Alone, Mode::Hud, Mode::Perf];
        let mut rates = Vec::new();
        for round in 0..rounds {
            for i in 0..modes.len() {
                let mode = modes[(i + round as usize) % modes.len()];
                let mut profiler = match mode {
                    Mode::Alone => None,
                    Mode::Hud => {
                        let mut r = start_recorder(pid, &dir.join("storm.hudcap"))?;
                        wait_attached(&mut r)?;
                        Some(r)
                    }
                    Mode::Perf => {
                        let p = Command::new("perf")
                            .args(["record", "-q", "-e", "sched:sched_switch", "-c", "1", "-g"])
                            .args(["-p", &pid.to_string(), "-o"])
                            .arg(dir.join("perf.data"))
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()?;
                        std::thread::sleep(Duration::from_millis(500));
                        Some(p)
                    }
                };
                let from = unix_ms();
                std::thread::sleep(Duration::from_secs(u64::from(seconds)));
                let to = unix_ms();
                if let Some(p) = profiler.as_mut() {
                    interrupt(p)?;
                }
                let r = rate(from, to)?;
                eprintln!("bench: round {round} {mode:?}: {r:.0} round trips/s");
                rates.push((mode, r));
                // The profiler's exit (detaching, writing) is not part of the next turn.
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(rates)
    })();
    let _ = stress.kill();
    let _ = stress.wait();
    let _ = reader.join();
    measured
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
