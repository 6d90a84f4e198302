//! The unwinding table the kernel side follows ([`crate::wire::UnwindRow`]), built from an
//! object's `.eh_frame`: one row per change of rule, at runtime addresses, the rules
//! compilers emit for x86-64 code kept (the return address just below a CFA at `rsp` or `rbp`
//! plus an offset, `rbp` saved from the CFA or untouched), anything else a stop (`NO_RULE`).
//! The OpenTelemetry eBPF profiler and parca-agent unwind the same way; this table is their
//! idea in its smallest form.

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, EhFrame, LittleEndian, RegisterRule, UnwindContext,
    UnwindSection, X86_64,
};
use object::{Object, ObjectSection, ObjectSegment};

use crate::wire::{unwind, UnwindRow};

/// Why an object gave no table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    #[error("not an x86-64 ELF object")]
    NotX86_64,
    #[error("no .eh_frame section")]
    NoEhFrame,
    #[error("its .eh_frame does not parse: {0}")]
    Parse(String),
}

/// The rows of the object in `bytes` for its code mapped at `start..end` from file offset
/// `offset` (a line of /proc/PID/maps), sorted by `pc`, each rule's span closed by a
/// `NO_RULE` row where no function follows.
pub fn rows_of(
    bytes: &[u8],
    (start, end, offset): (u64, u64, u64),
) -> Result<Vec<UnwindRow>, TableError> {
    let file = object::File::parse(bytes).map_err(|_| TableError::NotX86_64)?;
    if file.architecture() != object::Architecture::X86_64 {
        return Err(TableError::NotX86_64);
    }
    let bias = load_bias(&file, (start, end, offset));
    let section = file
        .section_by_name(".eh_frame")
        .ok_or(TableError::NoEhFrame)?;
    let data = section
        .data()
        .map_err(|e| TableError::Parse(e.to_string()))?;
    let eh_frame = EhFrame::new(data, LittleEndian);
    let mut bases = BaseAddresses::default().set_eh_frame(section.address());
    if let Some(text) = file.section_by_name(".text") {
        bases = bases.set_text(text.address());
    }
    if let Some(got) = file.section_by_name(".got") {
        bases = bases.set_got(got.address());
    }
    let mut ctx = UnwindContext::new();
    let mut rows: Vec<UnwindRow> = Vec::new();
    let mut entries = eh_frame.entries(&bases);
    let parse = |e: gimli::Error| TableError::Parse(e.to_string());
    while let Some(entry) = entries.next().map_err(parse)? {
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        // A broken entry loses its function, not the table.
        let Ok(fde) = partial.parse(EhFrame::cie_from_offset) else {
            continue;
        };
        let Ok(mut table) = fde.rows(&eh_frame, &bases, &mut ctx) else {
            continue;
        };
        let mut last_end = None;
        while let Ok(Some(row)) = table.next_row() {
            let pc = row.start_address().wrapping_add(bias);
            if pc < start || pc >= end {
                continue;
            }
            rows.push(rule_of(
                pc,
                row.cfa(),
                row.register(X86_64::RBP),
                row.register(X86_64::RA),
            ));
            last_end = Some(row.end_address().wrapping_add(bias));
        }
        if let Some(pc) = last_end {
            rows.push(UnwindRow {
                pc,
                ..UnwindRow::default()
            });
        }
    }
    Ok(compact(rows))
}

/// What to add to an address of the object's to get where it runs: file offset `offset` is
/// mapped at `start` (a line of /proc/PID/maps), so a segment's bytes in that mapping (its
/// code, preferably) run at `start` plus their distance from `offset`.
pub fn load_bias(file: &object::File<'_>, (start, end, offset): (u64, u64, u64)) -> u64 {
    let overlaps = |s: &object::Segment<'_, '_>| {
        let (from, size) = s.file_range();
        from < offset + (end - start) && offset < from + size
    };
    let executable = |s: &object::Segment<'_, '_>| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0);
    let segment = file
        .segments()
        .find(|s| overlaps(s) && executable(s))
        .or_else(|| file.segments().find(overlaps));
    segment.map_or(start.wrapping_sub(offset), |s| {
        let (from, _) = s.file_range();
        start
            .wrapping_add(from)
            .wrapping_sub(offset)
            .wrapping_sub(s.address())
    })
}

fn rule_of(
    pc: u64,
    cfa: &CfaRule<usize>,
    rbp: RegisterRule<usize>,
    ra: RegisterRule<usize>,
) -> UnwindRow {
    let mut row = UnwindRow {
        pc,
        ..UnwindRow::default()
    };
    if matches!(ra, RegisterRule::Undefined) {
        row.cfa = unwind::OUTERMOST;
        return row;
    }
    let CfaRule::RegisterAndOffset { register, offset } = *cfa else {
        return row;
    };
    let Ok(offset) = i32::try_from(offset) else {
        return row;
    };
    row.cfa_offset = offset;
    row.cfa = match register {
        X86_64::RSP => unwind::CFA_RSP,
        X86_64::RBP => unwind::CFA_RBP,
        _ => return row,
    };
    // The return address must be where the call put it, just below the CFA.
    if !matches!(ra, RegisterRule::Offset(-8)) {
        row.cfa = unwind::NO_RULE;
        return row;
    }
    match rbp {
        RegisterRule::Offset(at) => match i16::try_from(at) {
            Ok(at) => {
                row.rbp = unwind::RBP_SAVED;
                row.rbp_offset = at;
            }
            Err(_) => row.cfa = unwind::NO_RULE,
        },
        RegisterRule::Undefined | RegisterRule::SameValue => {}
        _ => row.cfa = unwind::NO_RULE,
    }
    row
}

/// Sorted by `pc`; where a function starts at the end of another, its row replaces the gap
/// row; rows that change nothing are dropped.
fn compact(mut rows: Vec<UnwindRow>) -> Vec<UnwindRow> {
    // Stable: among rows of one pc, a function's first row (pushed after the gap row of the
    // function before it, when the entries are in address order) must win; rank gaps first.
    rows.sort_by_key(|r| {
        (
            r.pc,
            r.cfa != unwind::NO_RULE || r.cfa_offset != 0 || r.rbp != 0,
        )
    });
    rows.reverse();
    rows.dedup_by_key(|r| r.pc);
    rows.reverse();
    rows.dedup_by(|later, earlier| same_rule(earlier, later));
    rows
}

fn same_rule(a: &UnwindRow, b: &UnwindRow) -> bool {
    (a.cfa, a.cfa_offset, a.rbp, a.rbp_offset) == (b.cfa, b.cfa_offset, b.rbp, b.rbp_offset)
}

/// Joins the tables of several objects (each sorted, one after the other in `rows`) into one
/// sorted table, in place; where two claim one address (overlapping mappings), the first
/// object's row wins.
pub fn sort_and_dedup(rows: &mut Vec<UnwindRow>) {
    rows.sort_by_key(|r| r.pc);
    rows.dedup_by(|later, earlier| later.pc == earlier.pc);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary's own table: its functions have rules, and looking up a function's
    /// address finds a rule a return address can be read with.
    #[test]
    fn this_binary_has_rules_for_its_functions() {
        let path = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        let text = file.section_by_name(".text").unwrap();
        let (from, _) = text.file_range().unwrap();
        // As if mapped at its link addresses (the offset of .text in the file at .text).
        let rows = rows_of(&bytes, (text.address(), text.address() + text.size(), from)).unwrap();
        assert!(rows.len() > 1000, "{} rows", rows.len());
        assert!(rows.windows(2).all(|w| w[0].pc < w[1].pc));
        let with_rule = rows
            .iter()
            .filter(|r| matches!(r.cfa, unwind::CFA_RSP | unwind::CFA_RBP))
            .count();
        assert!(with_rule * 2 > rows.len(), "{with_rule} of {}", rows.len());
        // At a function's first instruction the CFA is rsp + 8 (only the return address).
        assert!(rows
            .iter()
            .any(|r| r.cfa == unwind::CFA_RSP && r.cfa_offset == 8));
    }

    /// The rules a prologue goes through, and the ones the kernel does not follow.
    #[test]
    fn rules_are_kept_only_where_the_kernel_can_follow_them() {
        let rsp = |offset| CfaRule::RegisterAndOffset {
            register: X86_64::RSP,
            offset,
        };
        let ra = RegisterRule::Offset(-8);
        // After `push rbp`: CFA = rsp + 16, rbp saved at CFA - 16.
        let row = rule_of(0x10, &rsp(16), RegisterRule::Offset(-16), ra.clone());
        assert_eq!(
            (row.cfa, row.cfa_offset, row.rbp, row.rbp_offset),
            (unwind::CFA_RSP, 16, unwind::RBP_SAVED, -16)
        );
        // After `mov rbp, rsp`: CFA = rbp + 16.
        let at_rbp = CfaRule::RegisterAndOffset {
            register: X86_64::RBP,
            offset: 16,
        };
        let row = rule_of(0x14, &at_rbp, RegisterRule::Offset(-16), ra.clone());
        assert_eq!((row.cfa, row.cfa_offset), (unwind::CFA_RBP, 16));
        // A frame larger than an i16 of rbp offset, or a CFA past an i32: no rule.
        let far = rule_of(0x18, &rsp(16), RegisterRule::Offset(-70_000), ra.clone());
        assert_eq!(far.cfa, unwind::NO_RULE);
        assert_eq!(
            rule_of(0x18, &rsp(1 << 40), RegisterRule::SameValue, ra.clone()).cfa,
            0
        );
        // The thread's first frame.
        let first = rule_of(
            0x20,
            &rsp(8),
            RegisterRule::SameValue,
            RegisterRule::Undefined,
        );
        assert_eq!(first.cfa, unwind::OUTERMOST);
        // A DWARF expression (PLT stubs) or a return address elsewhere: no rule.
        let expr = CfaRule::Expression(gimli::UnwindExpression {
            offset: 0,
            length: 0,
        });
        assert_eq!(rule_of(0x30, &expr, RegisterRule::SameValue, ra).cfa, 0);
        let odd = rule_of(
            0x40,
            &rsp(16),
            RegisterRule::SameValue,
            RegisterRule::Offset(-16),
        );
        assert_eq!(odd.cfa, unwind::NO_RULE);
    }

    #[test]
    fn bytes_that_are_not_elf_give_no_table() {
        assert_eq!(rows_of(b"nope", (0, 1, 0)), Err(TableError::NotX86_64));
    }

    #[test]
    fn gaps_give_way_to_the_function_that_starts_there() {
        let row = |pc, cfa| UnwindRow {
            pc,
            cfa,
            cfa_offset: if cfa == unwind::NO_RULE { 0 } else { 8 },
            ..UnwindRow::default()
        };
        let rows = compact(vec![
            row(0x10, unwind::CFA_RSP),
            row(0x20, unwind::NO_RULE),
            row(0x20, unwind::CFA_RSP),
            row(0x30, unwind::NO_RULE),
        ]);
        assert_eq!(
            rows,
            vec![row(0x10, unwind::CFA_RSP), row(0x30, unwind::NO_RULE)]
        );
        let mut merged = vec![row(0x40, unwind::CFA_RSP)];
        merged.extend_from_slice(&rows);
        sort_and_dedup(&mut merged);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0].pc, 0x10);
    }
}
