//! What reading a target's binary costs hud-record at attach: the task-id layout from its DWARF
//! and the unwinding rows from its `.eh_frame`, timed on a binary given as the argument.
//!
//! `cargo run --release -p hud-format --features tasks,unwind --example attach_costs -- BINARY`

use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: attach_costs BINARY");
    let bytes = std::fs::read(&path).expect("reading the binary");
    // Its executable segment as if mapped where it was linked (no load bias).
    let code = {
        use object::{Object, ObjectSegment};
        let file = object::File::parse(&*bytes).expect("an ELF file");
        let segment = file
            .segments()
            .find(|s| {
                matches!(s.flags(), object::SegmentFlags::Elf { p_flags }
                    if p_flags & object::elf::PF_X != 0)
            })
            .expect("an executable segment");
        let (offset, size) = segment.file_range();
        (segment.address(), segment.address() + size, offset)
    };
    for _ in 0..2 {
        let started = Instant::now();
        let layout = hud_format::elf::task_id::resolve(&bytes);
        let task_ids = started.elapsed();
        let started = Instant::now();
        let rows = hud_format::elf::unwind_table::rows_of(&bytes, code).map(|r| r.len());
        let unwind = started.elapsed();
        println!(
            "task ids: {:.1} ms ({}), unwinding rows: {:.1} ms ({:?})",
            task_ids.as_secs_f64() * 1e3,
            match &layout {
                Ok(l) => format!("{l:?}"),
                Err(e) => e.to_string(),
            },
            unwind.as_secs_f64() * 1e3,
            rows.ok()
        );
    }
}
