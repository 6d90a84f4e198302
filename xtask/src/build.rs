//! Building and checking.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::util::{cargo, root, sh};

/// Where the demo workload is built (its own target dir: it has its own RUSTFLAGS).
pub fn demo_binary() -> PathBuf {
    root().join("target/demo/release/hud-demo")
}

pub fn release_binary(name: &str) -> PathBuf {
    root().join("target/release").join(name)
}

/// The demo workload with frame pointers (for stack walking) and full debug info (for file:line).
pub fn demo() -> Result<()> {
    demo_in("target/demo", &[])
}

/// The demo's next release (feature `next-release`: a blocker fixed, one added, one grown, one
/// moved), built as the demo is, in a target dir of its own so neither overwrites the other.
pub fn demo_next() -> Result<()> {
    demo_in("target/demo-next", &["--features", "next-release"])
}

pub fn demo_next_binary() -> PathBuf {
    root().join("target/demo-next/release/hud-demo")
}

fn demo_in(target_dir: &str, extra: &[&str]) -> Result<()> {
    sh(cargo()
        .args(["build", "--release", "-p", "hud-demo"])
        .args(extra)
        .env("CARGO_TARGET_DIR", root().join(target_dir))
        .env("RUSTFLAGS", "-Cforce-frame-pointers=yes")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "true"))
}

/// The demo as most services are built: no frame pointers (for `--unwind dwarf`), debug info.
pub fn demo_without_frame_pointers() -> Result<()> {
    sh(cargo()
        .args(["build", "--release", "-p", "hud-demo"])
        .env("CARGO_TARGET_DIR", root().join("target/demo-nofp"))
        .env("RUSTFLAGS", "-Cforce-frame-pointers=no")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "true"))
}

pub fn nofp_demo_binary() -> PathBuf {
    root().join("target/demo-nofp/release/hud-demo")
}

pub fn all() -> Result<()> {
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "hud-record",
        "-p",
        "hud-analyze",
        "-p",
        "hud-stress",
    ]))?;
    demo()?;
    demo_next()?;
    demo_without_frame_pointers()?;
    old_tokio()?;
    old_tokio_lto()
}

/// A workload on tokio 1.38 (testdata/old-tokio, a workspace of its own with its own lock file):
/// task ids read from an older tokio's layout. Default flags: no frame pointers.
pub fn old_tokio() -> Result<()> {
    sh(cargo()
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(root().join("testdata/old-tokio/Cargo.toml"))
        .env("CARGO_TARGET_DIR", root().join("target/old-tokio")))
}

/// The same workload built with fat LTO into one codegen unit, as many release profiles are:
/// its debug info names types across compilation units (`DW_FORM_ref_addr`), which the task-id
/// reader has to follow.
pub fn old_tokio_lto() -> Result<()> {
    sh(cargo()
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(root().join("testdata/old-tokio/Cargo.toml"))
        .env("CARGO_TARGET_DIR", root().join("target/old-tokio-lto"))
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"))
}

/// BPF-target flags aya-build uses, so clippy sees the programs as they are built.
fn bpf_rustflags() -> String {
    [
        "--cfg=bpf_target_arch=\"x86_64\"",
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
    ]
    .join("\x1f")
}

/// fmt, clippy, then every test once; or, with `repeat`, every test `repeat` times with a table
/// of the tests that failed in any run (fmt and clippy once, before).
pub fn test(repeat: Option<u32>) -> Result<()> {
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    sh(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh(cargo()
        .args([
            "clippy",
            "-p",
            "hud-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
        ])
        .args(["--target-dir", "target/bpf-clippy", "--", "-D", "warnings"])
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", bpf_rustflags()))?;
    // End-to-end tests run the release recorder against the demo, and the release archive's
    // static recorder in a bare chroot.
    all()?;
    let dist = crate::dist::unpack_checked(&crate::dist::run()?)?;
    let every_test = || {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--all-features"])
            .env("HUD_DIST_DIR", &dist)
            .env("HUD_DEMO_BIN", demo_binary())
            .env("HUD_DEMO_NOFP_BIN", nofp_demo_binary())
            .env("HUD_DEMO_NEXT_BIN", demo_next_binary())
            .env("HUD_RECORD_BIN", release_binary("hud-record"))
            .env("HUD_STRESS_BIN", release_binary("hud-stress"))
            .env("HUD_PYTHON", crate::setup::schema_python());
        cmd
    };
    match repeat {
        None => sh(&mut every_test()),
        Some(runs) => crate::repeat::run(every_test, runs),
    }
}

pub fn fuzz(target: &str, seconds: u32, jobs: u32) -> Result<()> {
    if !crate::util::succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        sh(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let (crate_dir, fuzz_target, corpus_name) = match target {
        "analyze" => ("hud-analyze", "analyze_capture", "analyze_capture"),
        "read" => ("hud-format", "read_capture", "read_capture"),
        other => anyhow::bail!("unknown fuzz target {other}: analyze or read"),
    };
    let fuzz_dir = root().join(crate_dir).join("fuzz");
    // Seeds: the golden capture, and for the analyzer, small services whose stacks resolve to
    // Tokio-like frames under the fuzzing vocabulary. Crashes found are kept in the corpus as
    // regression inputs (fuzz/corpus/<target>/regressions, replayed by `cargo test`).
    let corpus = fuzz_dir.join("corpus").join(corpus_name);
    std::fs::create_dir_all(&corpus)?;
    std::fs::copy(
        root().join("testdata/golden/v1.0.hudcap"),
        corpus.join("golden-v1.0"),
    )?;
    if target == "analyze" {
        sh(cargo()
            .current_dir(&fuzz_dir)
            .args(["run", "--release", "--bin", "make_seeds", "--"])
            .arg(&corpus))?;
    }
    sh(cargo()
        .current_dir(root().join(crate_dir))
        // Without a sanitizer: twice the executions, and the code under test is safe Rust but
        // for the file map and rkyv's validated access (`cargo fuzz run -s address` checks those).
        .args(["fuzz", "run", "--sanitizer", "none"])
        .arg(fuzz_target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-jobs={jobs}"))
        .arg(format!("-workers={jobs}"))
        .args([
            "-rss_limit_mb=2048",
            "-malloc_limit_mb=2048",
            "-timeout=10",
            "-max_len=262144",
            "-print_final_stats=1",
        ])
        .env("RUSTC_BOOTSTRAP", "1"))
}
