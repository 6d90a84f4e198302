//! Task ids at attach: where the target keeps the id of the Tokio task each thread polls, read
//! from its executable's DWARF (`hud_format::elf::task_id`), or why it cannot be read.

use std::path::Path;

use hud_format::elf::task_id::{self, NoTaskIds, TaskIdLayout};

/// The layout of the target's task ids, or why there are none (said once, recording goes on).
pub fn resolve(exe_in_target: &Path) -> Result<TaskIdLayout, String> {
    let file = std::fs::File::open(exe_in_target)
        .map_err(|e| format!("cannot open {}: {e}", exe_in_target.display()))?;
    // SAFETY: a read-only map of a file only parsed (bounds-checked by object and gimli).
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| format!("cannot map {}: {e}", exe_in_target.display()))?;
    task_id::resolve(&map).map_err(|e| match e {
        NoTaskIds::NoDebugInfo => format!(
            "{e}; task ids need the type info of `debug = true` (or 2) in the release profile"
        ),
        other => other.to_string(),
    })
}

/// The `source` line the capture keeps: how ids were read, or why not.
pub fn source(layout: &Result<TaskIdLayout, String>) -> String {
    match layout {
        Ok(l) => l.description.clone(),
        Err(why) => format!("{}{why}", hud_format::types::NO_TASK_IDS),
    }
}
