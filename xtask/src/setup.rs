//! Installs what building, testing and packaging hud needs, only what is missing. Safe to run every time.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::util::{is_root, sh, succeeds};

/// bpf-linker version known to work with aya 0.14 and LLVM 22 here.
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub fn run() -> Result<()> {
    apt_packages(
        &["llvm-22-dev"],
        Path::new("/usr/lib/llvm-22/bin/llvm-config"),
    )?;
    // The cockpit's end-to-end tests drive it in a real terminal, and find the live viewer's
    // process (pgrep) to check whom it runs as.
    apt_packages(&["tmux"], Path::new("/usr/bin/tmux"))?;
    apt_packages(&["procps"], Path::new("/usr/bin/pgrep"))?;
    // The pprof export is checked by pprof itself (`go tool pprof`).
    apt_packages(&["golang-go"], Path::new("/usr/bin/go"))?;
    // libc's symbols and DWARF, in the distribution's separate debug file: a test checks that
    // libc frames are named from it.
    apt_packages(&["libc6-dbg"], Path::new("/usr/share/doc/libc6-dbg"))?;
    // A real debuginfod server, which a test fetches a missing object from; objcopy (binutils)
    // strips the copy it serves; unshare/nsenter (util-linux) make the container-like target.
    apt_packages(&["debuginfod"], Path::new("/usr/bin/debuginfod"))?;
    apt_packages(&["binutils"], Path::new("/usr/bin/objcopy"))?;
    apt_packages(&["util-linux"], Path::new("/usr/bin/nsenter"))?;
    // The flight recorder's systemd unit is checked by systemd-analyze.
    apt_packages(&["systemd"], Path::new("/usr/bin/systemd-analyze"))?;
    perfetto_schema()?;
    rust_src()?;
    bpf_linker()?;
    musl()?;
    tracefs();
    Ok(())
}

/// The static release build (`cargo xtask dist`): Rust's musl target, and musl-gcc for the C in
/// zstd and mimalloc.
pub fn musl() -> Result<()> {
    apt_packages(&["musl-tools"], Path::new("/usr/bin/musl-gcc"))?;
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|t| t.trim() == crate::dist::TARGET)
    {
        return Ok(());
    }
    sh(Command::new("rustup").args(["target", "add", crate::dist::TARGET]))
}

/// Installs Debian packages when `marker` is missing.
pub fn apt_packages(packages: &[&str], marker: &Path) -> Result<()> {
    if marker.exists() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "{} is missing; install it with `sudo apt-get install -y {}`",
            marker.display(),
            packages.join(" ")
        );
    }
    sh(Command::new("apt-get").arg("update").arg("-qq"))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

/// The official Perfetto schema, to check the Perfetto export in tests: PyPI's `perfetto` ships
/// the generated protos (they need `protobuf`). In a venv under target/ (rebuilt when missing).
const PERFETTO_PACKAGES: &[&str] = &["perfetto==0.59.1", "protobuf==7.36.2"];

/// The Python the tests use to read Perfetto traces.
pub fn schema_python() -> std::path::PathBuf {
    crate::util::root().join("target/py/bin/python")
}

fn perfetto_schema() -> Result<()> {
    let python = schema_python();
    let check = "import perfetto.protos.perfetto.trace.perfetto_trace_pb2";
    if succeeds(Command::new(&python).args(["-c", check])) {
        return Ok(());
    }
    let venv = crate::util::root().join("target/py");
    if !succeeds(Command::new("python3").arg("-m").arg("venv").arg(&venv)) {
        // Debian's python3 makes venvs only with python3-venv.
        apt_packages(&["python3-venv"], Path::new("/usr/share/doc/python3-venv"))?;
        sh(Command::new("/usr/bin/python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv))?;
    }
    sh(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(PERFETTO_PACKAGES))
}

/// `-Z build-std=core` for the BPF target needs the standard library's sources.
fn rust_src() -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_owned();
    if Path::new(&sysroot)
        .join("lib/rustlib/src/rust/library/core")
        .exists()
    {
        return Ok(());
    }
    sh(Command::new("rustup").args(["component", "add", "rust-src"]))
}

fn bpf_linker() -> Result<()> {
    let installed = Command::new("bpf-linker").arg("--version").output();
    if let Ok(out) = installed {
        if String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION) {
            return Ok(());
        }
    }
    // Without LLVM_PREFIX bpf-linker finds LLVM 14's llvm-config and fails to link.
    sh(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--force",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX))
}

/// The recorder reads tracepoint formats from tracefs; mount it when missing (root only).
fn tracefs() {
    if Path::new("/sys/kernel/tracing/events/sched/sched_switch/format").exists() || !is_root() {
        return;
    }
    if !succeeds(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])) {
        eprintln!("xtask: warning: could not mount tracefs; eBPF tests will say why");
    }
}
