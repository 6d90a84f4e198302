//! Views of one analysis. Each reads [`crate::analysis::Analysis`] (and the findings of a window)
//! and recomputes nothing: `info` (what a capture holds), `report` (text and JSON), `tui` (the cockpit),
//! `export` (files for other tools).

pub mod export;
pub mod info;
pub mod report;
pub mod tui;

/// "crate/src/file.rs:line" for a frame's file and line, when it has a file.
pub fn file_line(file: Option<&str>, line: u32) -> Option<String> {
    file.map(|f| format!("{}:{line}", short_path(f)))
}

/// Shortens a source path to its crate-relative part:
/// "/home/u/app/demo/src/main.rs" → "demo/src/main.rs"; without a `src` folder, the last three
/// components.
pub fn short_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    if let Some(src) = parts.iter().rposition(|p| *p == "src") {
        if src >= 1 {
            return parts[src - 1..].join("/");
        }
    }
    parts[parts.len().saturating_sub(3)..].join("/")
}

#[cfg(test)]
mod tests {
    use super::short_path;

    #[test]
    fn paths_keep_their_crate_and_what_follows_src() {
        assert_eq!(
            short_path("/w/testdata/demo/src/main.rs"),
            "demo/src/main.rs"
        );
        assert_eq!(
            short_path("/root/.cargo/registry/src/index.crates.io-1/tokio-1.0/src/rt/mod.rs"),
            "tokio-1.0/src/rt/mod.rs",
            "the innermost src wins"
        );
        assert_eq!(
            short_path("/usr/include/x86_64/bits/x.h"),
            "x86_64/bits/x.h"
        );
        assert_eq!(short_path("main.rs"), "main.rs");
        assert_eq!(short_path("src/lib.rs"), "src/lib.rs");
    }
}
