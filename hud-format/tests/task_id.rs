//! Where task ids are, read from the DWARF of real binaries of two tokio versions: the demo
//! (tokio 1.54: `Option<Id>` with a zero niche) and testdata/old-tokio (tokio 1.38: tagged; also
//! built with fat LTO), all built by `cargo xtask build` before the tests. Skipped when they are not built, unless
//! HUD_REQUIRE_EBPF=1 (CI builds them).

use std::path::PathBuf;

use hud_format::elf::task_id::{resolve, NoTaskIds};

fn built(relative: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if std::env::var_os("HUD_REQUIRE_EBPF").is_some() => {
            panic!(
                "{} not built ({e}): run `cargo xtask build`",
                path.display()
            )
        }
        Err(_) => {
            eprintln!("skipped: {} not built", path.display());
            None
        }
    }
}

#[test]
fn tokio_1_54_keeps_its_id_in_a_zero_niche() {
    let Some(bytes) = built("target/demo-nofp/release/hud-tasks") else {
        return;
    };
    let layout = resolve(&bytes).unwrap();
    assert_eq!(layout.tag_at, layout.value_at, "{layout:#?}");
    assert_eq!((layout.tag_size, layout.none), (8, 0));
    // Inside the executable's TLS block, below the thread pointer.
    assert!(
        layout.value_at < 0 && layout.value_at > -4096,
        "{layout:#?}"
    );
    let tick = layout.tick.expect("the scheduler tick is found");
    let names: Vec<&str> = tick.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["CurrentThread", "MultiThread"]);
    assert!(tick.variants.iter().all(|v| v.tick_size == 4));
    assert!(
        layout.description.contains("zero niche"),
        "{}",
        layout.description
    );
}

#[test]
fn tokio_1_38_keeps_its_id_behind_a_tag() {
    let Some(bytes) = built("target/old-tokio/release/hud-old-tokio") else {
        return;
    };
    let layout = resolve(&bytes).unwrap();
    assert_eq!(layout.tag_at + 8, layout.value_at, "{layout:#?}");
    assert_eq!(layout.none, 0);
    assert!(layout.tick.is_some());
    assert!(
        layout.description.contains("tagged"),
        "{}",
        layout.description
    );
}

/// The same workload built with fat LTO: its `Option<Id>` names `Id` in another compilation
/// unit (`DW_FORM_ref_addr`); before the reader followed such references it said "the id is not
/// a single integer" (and an actix-web server built with `lto = true` had no task ids).
#[test]
fn an_lto_build_names_its_types_across_units() {
    let Some(bytes) = built("target/old-tokio-lto/release/hud-old-tokio") else {
        return;
    };
    let layout = resolve(&bytes).unwrap();
    assert_eq!(layout.tag_at + 8, layout.value_at, "{layout:#?}");
    assert!(layout.tick.is_some(), "{layout:#?}");
}

#[test]
fn binaries_without_tokio_or_debug_info_say_why() {
    // This test binary has TLS (std) and DWARF, but no tokio.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    match resolve(&me) {
        Err(NoTaskIds::NoContext) | Err(NoTaskIds::NoDebugInfo) => {}
        other => panic!("{other:?}"),
    }
    let stripped = std::fs::read("/bin/true").unwrap();
    assert!(matches!(
        resolve(&stripped),
        Err(NoTaskIds::NoTls | NoTaskIds::NoDebugInfo)
    ));
}
