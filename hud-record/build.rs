//! Builds hud-ebpf for the BPF target and leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! The eBPF crate needs `-Z build-std=core`. We build it with the toolchain running this build
//! (normally stable) and RUSTC_BOOTSTRAP=1, so no nightly is needed; `cargo xtask setup` installs
//! rust-src and bpf-linker, which this step needs.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../hud-ebpf");
    let root = root.to_str().expect("utf-8 path");
    println!("cargo:rerun-if-changed=../hud-format/src/wire.rs");
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".into());
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let package = aya_build::Package {
        name: "hud-ebpf",
        root_dir: root,
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([package], aya_build::Toolchain::Custom(&toolchain)) {
        panic!(
            "building the eBPF programs failed: {e:#}\n\
             hint: run `cargo xtask setup` (installs rust-src, llvm-22-dev and bpf-linker)"
        );
    }
}
