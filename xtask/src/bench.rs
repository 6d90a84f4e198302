//! Benchmarks. `format`: criterion over the synthetic mix. `record`: see `record.rs` notes below.

use anyhow::{bail, Result};

use crate::util::{cargo, sh};

pub fn run(which: &str, _seconds: u32, _rounds: u32) -> Result<()> {
    match which {
        "format" => sh(cargo().args(["bench", "-p", "hud-format", "--features", "writer,reader"])),
        other => bail!("unknown benchmark `{other}` (format)"),
    }
}
