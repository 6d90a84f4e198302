//! The unwinding table for the kernel side (`UNWIND_ROWS`): the rows of every object the target
//! has mapped executable, built from their `.eh_frame` at attach, so the programs unwind whole
//! user stacks of code without frame pointers with no stack bytes copied.

use std::fs;
use std::io::{Read, Seek, SeekFrom};

use hud_format::elf::unwind_table::{self, TableError};
use hud_format::wire::{unwind, UnwindRow};

use crate::procfs::{self, MapsLine};

/// The table, and what it covers.
#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<UnwindRow>,
    /// Objects with rows.
    pub objects: usize,
    /// Executable mappings without (path, why).
    pub skipped: Vec<(String, String)>,
}

/// Most rows kept (16 bytes each, locked kernel memory): 64 MiB, a few times what the largest
/// services need (mini-redis: 84 k rows). A table past it is not loaded at all, since a table
/// cut short would give the rows before the cut to every address after it.
pub const MAX_ROWS: usize = 4 << 20;

/// The vDSO's bytes are read from the target's memory: no file holds them.
const VDSO: &str = "[vdso]";
/// Largest vDSO read (it is two pages on x86-64 today).
const MAX_VDSO: u64 = 1 << 20;

/// Builds the table of target `pid`'s executable mappings.
pub fn build(pid: u32) -> Table {
    let mut table = Table::default();
    let Ok(maps) = procfs::read_maps(pid) else {
        return table;
    };
    // One vector for all objects, each appended as it is read: the table is the recorder's
    // largest allocation at attach (peak RSS is a tested budget).
    let mut rows = Vec::new();
    for line in maps.iter().filter(|l| l.perms.contains('x')) {
        match rows_of_mapping(pid, line) {
            Ok(object) if !object.is_empty() => {
                table.objects += 1;
                rows.extend_from_slice(&object);
            }
            Ok(_) => table
                .skipped
                .push((line.path.clone(), "no rules for its code".into())),
            Err(why) => table.skipped.push((line.path.clone(), why)),
        }
    }
    unwind_table::sort_and_dedup(&mut rows);
    table.rows = rows;
    if table.rows.len() > MAX_ROWS.min(unwind::MAX_ROWS as usize - 1) {
        table.skipped.push((
            "all".into(),
            format!("{} rows, over the {MAX_ROWS} kept", table.rows.len()),
        ));
        table.rows = Vec::new();
        table.objects = 0;
    }
    table
}

fn rows_of_mapping(pid: u32, line: &MapsLine) -> Result<Vec<UnwindRow>, String> {
    let range = (line.start, line.end, line.offset);
    if line.path == VDSO {
        let bytes = read_memory(pid, line.start, (line.end - line.start).min(MAX_VDSO))
            .map_err(|e| format!("reading its memory: {e}"))?;
        // The vDSO image starts at its mapping, file offset 0.
        return unwind_table::rows_of(&bytes, (line.start, line.end, 0)).map_err(say);
    }
    if line.path.starts_with('[') {
        return Err("no object behind it".into());
    }
    let file = fs::File::open(procfs::file_in_target(pid, &line.path))
        .map_err(|e| format!("opening it: {e}"))?;
    // SAFETY: a read-only map of a file we only parse; object and gimli bound-check every read.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("mapping it: {e}"))?;
    unwind_table::rows_of(&map, range).map_err(say)
}

fn say(e: TableError) -> String {
    e.to_string()
}

fn read_memory(pid: u32, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut mem = fs::File::open(format!("/proc/{pid}/mem"))?;
    mem.seek(SeekFrom::Start(at))?;
    let mut bytes = vec![0; len as usize];
    mem.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test process's own table: its binary, libc and the vDSO have rules, and the rows
    /// are sorted.
    #[test]
    fn this_process_has_a_table_of_its_objects() {
        let table = build(std::process::id());
        assert!(table.objects >= 2, "{table:?}");
        assert!(table.rows.len() > 1000);
        assert!(table.rows.windows(2).all(|w| w[0].pc < w[1].pc));
        // At a function's first instruction (here, where it runs: the load bias is right)
        // the CFA is the stack pointer plus the return address the call pushed.
        let here = this_process_has_a_table_of_its_objects as *const () as u64;
        let at = table.rows.partition_point(|r| r.pc <= here);
        assert!(at > 0);
        let row = table.rows[at - 1];
        assert_eq!((row.cfa, row.cfa_offset), (unwind::CFA_RSP, 8), "{row:?}");
        // And a row after it changes that (the function pushes or reserves its frame).
        let next = table.rows[at];
        assert!(next.pc > here && next.pc < here + 4096, "{next:?}");
    }
}
