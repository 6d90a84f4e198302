//! `cargo xtask bench flight`: the flight recorder against a plain recording of the same busy
//! demo, side by side in one run (the machine is shared and noisy: ratios, not absolutes). Both
//! recorders attach to one `hud-demo --busy` for `--seconds` (600 by default: memory must stay
//! flat for that long); each one's CPU time (utime + stime) and RSS (now and peak) are read from
//! /proc every 10 s. The flight recorder keeps 2 minutes within 64 MiB and is asked for a dump
//! every minute (`hud-record --dump`): how long after the signal the dump is there, and its size.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{demo_binary, release_binary};
use crate::util::{is_root, root};

/// CPU seconds, RSS and peak RSS (KiB) of a process.
fn usage(pid: u32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line: 11 and 12 after `)`.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((ticks / hz, kib("VmRSS:")?, kib("VmHWM:")?))
}

fn recorder(args: &[&str], pid: u32) -> Result<Child> {
    Command::new(release_binary("hud-record"))
        .args(["--pid", &pid.to_string(), "-q"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting hud-record")
}

pub fn run(seconds: u32) -> Result<()> {
    if !is_root() {
        bail!("bench flight attaches eBPF programs: run it as root");
    }
    let dir = root().join("target/bench-flight");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut demo = Command::new(demo_binary())
        .args([
            "--seconds",
            &(seconds + 30).to_string(),
            "--busy",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the demo")?;
    std::thread::sleep(Duration::from_millis(500));
    let duration = seconds.to_string();
    let plain_capture = dir.join("plain.hudcap");
    let flight_dir = dir.join("flight");
    let mut plain = recorder(
        &[
            "--duration",
            &duration,
            "--force",
            "-o",
            plain_capture.to_str().unwrap_or_default(),
        ],
        demo.id(),
    )?;
    let mut flight = recorder(
        &[
            "--duration",
            &duration,
            "--flight-recorder",
            flight_dir.to_str().unwrap_or_default(),
            "--keep",
            "2m",
            "--max-disk",
            "64MiB",
        ],
        demo.id(),
    )?;
    let started = Instant::now();
    let mut next_dump = Duration::from_secs(60);
    let mut dumps: Vec<(f64, u64)> = Vec::new();
    println!("   t s   plain cpu s  rss MiB     flight cpu s  rss MiB  ring MiB");
    let mut last = (None, None);
    while started.elapsed() < Duration::from_secs(u64::from(seconds)) {
        std::thread::sleep(Duration::from_secs(10));
        let (p, f) = (usage(plain.id()), usage(flight.id()));
        if p.is_some() && f.is_some() {
            last = (p, f);
        }
        let ring = dir_bytes(&flight_dir.join("ring"));
        if let (Some(p), Some(f)) = (p, f) {
            println!(
                "{:6.0}   {:10.2}  {:7.1}     {:12.2}  {:7.1}  {:8.1}",
                started.elapsed().as_secs_f64(),
                p.0,
                p.1 as f64 / 1024.0,
                f.0,
                f.1 as f64 / 1024.0,
                ring as f64 / f64::from(1 << 20)
            );
        }
        if started.elapsed() >= next_dump {
            next_dump += Duration::from_secs(60);
            let asked = Instant::now();
            let out = Command::new(release_binary("hud-record"))
                .arg("--dump")
                .arg(&flight_dir)
                .output()?;
            if out.status.success() {
                let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                dumps.push((asked.elapsed().as_secs_f64(), bytes));
            }
        }
    }
    let _ = plain.wait();
    let _ = flight.wait();
    let _ = demo.kill();
    let _ = demo.wait();
    let (Some(p), Some(f)) = last else {
        bail!("a recorder ended early");
    };
    println!(
        "\nover {seconds} s of the busy demo: CPU flight/plain {:.2}× ({:.2} s vs {:.2} s), \
         peak RSS {:.2}× ({:.1} MiB vs {:.1} MiB)",
        f.0 / p.0.max(1e-9),
        f.0,
        p.0,
        f.2 as f64 / p.2.max(1) as f64,
        f.2 as f64 / 1024.0,
        p.2 as f64 / 1024.0
    );
    for (i, (secs, bytes)) in dumps.iter().enumerate() {
        println!(
            "dump {}: there {:.2} s after `hud-record --dump` (its --after is 2 s), {:.1} MiB",
            i + 1,
            secs,
            *bytes as f64 / f64::from(1 << 20)
        );
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
