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
    sh(cargo()
        .args(["build", "--release", "-p", "hud-demo"])
        .env("CARGO_TARGET_DIR", root().join("target/demo"))
        .env("RUSTFLAGS", "-Cforce-frame-pointers=yes")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "true"))
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
    demo()
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

pub fn test() -> Result<()> {
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
    // End-to-end tests run the release recorder against the demo.
    all()?;
    sh(cargo()
        .args(["test", "--workspace", "--all-features"])
        .env("HUD_DEMO_BIN", demo_binary())
        .env("HUD_RECORD_BIN", release_binary("hud-record"))
        .env("HUD_STRESS_BIN", release_binary("hud-stress"))
        .env("HUD_PYTHON", crate::setup::schema_python()))
}

pub fn fuzz(seconds: u32) -> Result<()> {
    if !crate::util::succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        sh(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    // Seed the corpus with real captures: the golden one, so mutations start from valid frames.
    let corpus = root().join("hud-format/fuzz/corpus/read_capture");
    std::fs::create_dir_all(&corpus)?;
    std::fs::copy(
        root().join("testdata/golden/v1.0.hudcap"),
        corpus.join("golden-v1.0"),
    )?;
    sh(cargo()
        .current_dir(root().join("hud-format"))
        .args(["fuzz", "run", "read_capture", "--"])
        .arg(format!("-max_total_time={seconds}"))
        .args(["-rss_limit_mb=2048", "-print_final_stats=1"])
        .env("RUSTC_BOOTSTRAP", "1"))
}
