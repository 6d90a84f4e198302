//! The systemd unit in docs/deploy is one systemd accepts (`systemd-analyze verify`), with its
//! recorder at the path it names.

use std::process::Command;

#[test]
fn the_flight_recorder_unit_verifies() {
    if !std::path::Path::new("/usr/bin/systemd-analyze").exists() {
        assert!(
            std::env::var("HUD_REQUIRE_EBPF").as_deref() != Ok("1"),
            "systemd-analyze is missing"
        );
        eprintln!("skipping: no systemd-analyze");
        return;
    }
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy/hud-flight@.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/hud-record %i "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hud-flight@demo.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/hud-record",
            env!("CARGO_BIN_EXE_hud-record"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}
