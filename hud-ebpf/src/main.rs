//! hud's eBPF programs. Built for `bpfel-unknown-none` by hud-record's build script (aya-build);
//! on the host this crate compiles to an empty program so workspace-wide commands still work.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// Inline assembly for what `core` lacks on BPF (an atomic add that returns the old value), as
// aya-ebpf does for its own.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
