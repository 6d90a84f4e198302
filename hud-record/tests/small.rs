//! The recorder runs on production boxes: its dependency tree stays free of the analyzer's weight.

#[test]
fn no_analysis_crates_in_the_recorder() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "hud-record",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("aya v"), "unexpected tree:\n{tree}");
    // gimli is there, read-only: the recorder reads where the target keeps its Tokio task id from
    // the target's DWARF types at attach (hud_format::elf::task_id). Symbolization (addr2line),
    // parallelism (rayon) and the terminal (ratatui) stay in the analyzer.
    for heavy in ["addr2line", "rayon", "ratatui"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{heavy} v"))),
            "hud-record depends on {heavy}:\n{tree}"
        );
    }
}
