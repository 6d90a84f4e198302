//! Whether an object's code keeps frame pointers, read from its bytes: the share of its functions
//! that begin by setting one up. Stacks walked by frame pointers end early in code without them,
//! and the warning about shallow stacks must say whether rebuilding the target would help.

use object::{Architecture, Object, ObjectSegment, ObjectSymbol, SymbolKind};

/// Functions shorter than this are skipped: trampolines and thunks never set up a frame.
const MIN_FUNCTION_BYTES: u64 = 16;
/// At most this many functions are looked at, spread over the symbol table.
const MAX_CHECKED: usize = 20_000;
/// Below this share of functions with a frame-pointer prologue, code is taken as built without
/// them (the demo measures 0.90 with them, 0.11 without).
pub const WITH_FRAME_POINTERS: f64 = 0.3;

/// Crates of the precompiled standard library, which is built with frame pointers: a program
/// built without them still has a third of its functions with one, and they say nothing about
/// how the user built it.
const PRECOMPILED: [&str; 12] = [
    "std::",
    "core::",
    "alloc::",
    "rustc_demangle::",
    "gimli::",
    "addr2line::",
    "miniz_oxide::",
    "object::",
    "std_detect::",
    "panic_unwind::",
    "hashbrown::",
    "memchr::",
];
/// Fewer Rust functions of its own than this, and an object is judged by all its functions.
const MIN_OWN_RUST: usize = 32;

/// The share (0..1) of the object's functions that start with `push rbp; mov rbp, rsp`
/// (after an optional `endbr64`), or `None` when the object is not x86-64 or names no functions.
/// In a Rust program, only its own Rust functions count (not the precompiled standard
/// library's): measured on the demo, 0.90 built with frame pointers, 0.11 without (all
/// functions: 0.85 and 0.33). Symbols come from `symbols` (a separate debug file has all of
/// them, a stripped library only its exports), code from `code`.
pub fn share(code: &[u8], symbols: Option<&[u8]>) -> Option<f64> {
    let file = object::File::parse(code).ok()?;
    if file.architecture() != Architecture::X86_64 {
        return None;
    }
    let named = symbols.and_then(|s| object::File::parse(s).ok());
    let table = named.as_ref().unwrap_or(&file);
    let segments: Vec<(u64, u64, u64)> = file
        .segments()
        .map(|s| {
            let (offset, size) = s.file_range();
            (s.address(), offset, size)
        })
        .collect();
    let all: Vec<_> = table
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() >= MIN_FUNCTION_BYTES)
        .collect();
    let step = all.len().div_ceil(MAX_CHECKED).max(1);
    let mut own_rust = Vec::new();
    let mut every = Vec::new();
    for symbol in all.iter().step_by(step) {
        every.push(symbol.address());
        let Ok(name) = symbol.name() else { continue };
        let demangled = rustc_demangle::try_demangle(name).map(|d| format!("{d:#}"));
        if let Ok(name) = demangled {
            let name = name.trim_start_matches('<');
            if !PRECOMPILED.iter().any(|krate| name.starts_with(krate)) {
                own_rust.push(symbol.address());
            }
        }
    }
    let functions = if own_rust.len() >= MIN_OWN_RUST {
        own_rust
    } else {
        every
    };
    let (mut checked, mut with_frame) = (0usize, 0usize);
    for &address in &functions {
        let Some(start) = segments.iter().find_map(|&(vaddr, offset, size)| {
            (vaddr <= address && address < vaddr + size).then(|| offset + (address - vaddr))
        }) else {
            continue;
        };
        let Some(bytes) = usize::try_from(start)
            .ok()
            .and_then(|start| code.get(start..start.checked_add(12)?))
        else {
            continue;
        };
        checked += 1;
        with_frame += usize::from(sets_up_frame(bytes));
    }
    (checked > 0).then(|| with_frame as f64 / checked as f64)
}

/// `[endbr64] push rbp; mov rbp, rsp` (either encoding of the move).
fn sets_up_frame(bytes: &[u8]) -> bool {
    const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];
    let bytes = bytes.strip_prefix(&ENDBR64[..]).unwrap_or(bytes);
    matches!(
        bytes,
        [0x55, 0x48, 0x89, 0xe5, ..] | [0x55, 0x48, 0x8b, 0xec, ..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prologues_with_and_without_a_frame() {
        assert!(sets_up_frame(&[0x55, 0x48, 0x89, 0xe5, 0x41, 0x57]));
        assert!(sets_up_frame(&[
            0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5
        ]));
        // push rbp alone saves it as a callee-saved register: no frame.
        assert!(!sets_up_frame(&[0x55, 0x41, 0x57, 0x41, 0x56]));
        assert!(!sets_up_frame(&[0x48, 0x83, 0xec, 0x18]));
        assert!(!sets_up_frame(&[]));
    }

    #[test]
    fn not_an_object_has_no_share() {
        assert_eq!(share(b"not an ELF file", None), None);
    }
}
