//! The symbol cache end to end, with real recordings: a warm analysis says exactly what a cold
//! one says (the report and the folded stacks, byte for byte), with frame pointers, without
//! them (stacks unwound from copies) and with frames put back after tail calls; a damaged cache
//! changes nothing either. Needs root; skips without it unless HUD_REQUIRE_EBPF=1 (CI).

use std::path::Path;
use std::process::Command;

use hud_test_harness::{
    demo_binary, ebpf_ready, nofp_demo_binary, record_binary, recorded, serial, tailcall_binary,
};

const ANALYZE: &str = env!("CARGO_BIN_EXE_hud-analyze");

/// The report as JSON and the folded stacks, with the cache at `cache` (`None`: off).
fn outputs(capture: &Path, cache: Option<&Path>) -> (String, String) {
    let run = |args: &[&str]| {
        let mut c = Command::new(ANALYZE);
        c.args(args).arg(capture);
        match cache {
            Some(dir) => c.env("HUD_SYMBOL_CACHE", dir),
            None => c.arg("--no-symbol-cache"),
        };
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    (
        run(&["report", "--json", "--top", "50"]),
        run(&["export", "--format", "folded", "-o", "-"]),
    )
}

fn cache_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_warm_analysis_says_what_a_cold_one_says() {
    let _serial = serial();
    let binaries = [demo_binary(), nofp_demo_binary(), tailcall_binary()];
    let mut needed = binaries.to_vec();
    needed.push(record_binary());
    if !ebpf_ready(&needed) {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    for binary in &binaries {
        // The build without frame pointers from stack copies (the cache keeps their unwinds);
        // by default the kernel would unwind it whole.
        let extra: &[&str] = if binary == &nofp_demo_binary() {
            &["--unwind", "dwarf"]
        } else {
            &[]
        };
        let r = recorded(binary, &[], 3, extra, false);
        let cold = outputs(&r.capture, None);
        let before = cache_files(cache.path()).len();
        let first = outputs(&r.capture, Some(cache.path()));
        assert!(
            cache_files(cache.path()).len() > before,
            "{} wrote no cache entry",
            binary.display()
        );
        let warm = outputs(&r.capture, Some(cache.path()));
        assert!(
            cold == first,
            "{}: the first cached run differs",
            binary.display()
        );
        assert!(cold == warm, "{}: the warm run differs", binary.display());
        if binary == &tailcall_binary() {
            assert!(warm.0.contains("tail_call"), "{}", warm.0);
        }
        // Every file cut short: read as damaged, removed, written again; the same answers.
        for file in cache_files(cache.path()) {
            let bytes = std::fs::read(&file).unwrap();
            std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        }
        let damaged = outputs(&r.capture, Some(cache.path()));
        assert!(
            cold == damaged,
            "{}: a damaged cache changed the answer",
            binary.display()
        );
        let again = outputs(&r.capture, Some(cache.path()));
        assert!(
            cold == again,
            "{}: the rewritten cache differs",
            binary.display()
        );
    }
}
