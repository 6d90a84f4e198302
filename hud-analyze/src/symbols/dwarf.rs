//! One object prepared for lookups: its segments, symbol table and DWARF (abbreviations parsed
//! once, shared by every worker), and which compilation unit covers which address.

use std::borrow::Cow;
use std::sync::Arc;

use object::{Object, ObjectSection, ObjectSegment};
use rustc_hash::FxHashMap as HashMap;

use super::intern::Strings;
use super::Frame;
use crate::objects::{self, Bytes, Located};

/// Below this many lookups in an object, its items run on one thread with a kept context (and
/// its abbreviation tables are parsed as units need them, below).
pub(super) const FEW_LOOKUPS: usize = 1024;

/// The unit of addresses no compilation unit covers.
pub(super) const NO_UNIT: u32 = u32::MAX;

/// An object's loadable segments: (file offset, file size, virtual address).
fn segments_of(file: &object::File<'_>) -> Vec<(u64, u64, u64)> {
    file.segments()
        .map(|s| {
            let (start, size) = s.file_range();
            (start, size, s.address())
        })
        .collect()
}

/// File offset → virtual address through the object's loadable segments.
fn vaddr_of(segments: &[(u64, u64, u64)], offset: u64) -> Option<u64> {
    segments.iter().find_map(|&(start, size, address)| {
        (start <= offset && offset - start < size).then(|| address + (offset - start))
    })
}

pub(super) type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;
pub(super) type Context<'a> = addr2line::Context<Reader<'a>>;

/// An object's DWARF sections (decompressed if they were compressed), loaded before the objects
/// are prepared so every worker's context can borrow them.
pub(super) struct Sections<'a> {
    sections: gimli::DwarfSections<Cow<'a, [u8]>>,
    endian: gimli::RunTimeEndian,
}

impl<'a> Sections<'a> {
    pub(super) fn load(loc: &'a Located) -> Option<Self> {
        let bytes: &'a Bytes = loc.debug.as_ref().map(|(_, b)| &**b).unwrap_or(&loc.file);
        let file = object::File::parse(&**bytes).ok()?;
        let endian = if file.is_little_endian() {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        Some(Sections {
            sections: dwarf_context_sections(&file)?,
            endian,
        })
    }
}

/// One object, parsed once and shared by the workers: headers, symbol table, DWARF with every
/// abbreviation table parsed, and which compilation unit covers which addresses.
pub(super) struct Prepared<'a> {
    /// (file offset, file size, virtual address) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
    symbols: object::SymbolMap<object::SymbolMapName<'a>>,
    /// Shared by every worker's context: a context parses each unit's header when it is made, and
    /// with the abbreviations cached that costs little.
    dwarf: Option<Arc<gimli::Dwarf<Reader<'a>>>>,
    /// (start, end, unit index), sorted by start; from .debug_aranges or the units' own ranges.
    units: Vec<(u64, u64, u32)>,
    /// Where each unit starts in .debug_info, by unit index.
    unit_offsets: Vec<gimli::DebugInfoOffset>,
    /// Looked up without addr2line: names from the symbol table, lines from the one unit's line
    /// program (a system library with a few lookups; see `new`).
    light: bool,
    /// For placeholders: the file's name.
    name: String,
    /// The object's bytes (its code, for the tail-call check).
    code: &'a [u8],
    /// Where each GOT slot points once relocated, read when first needed.
    got: std::sync::OnceLock<HashMap<u64, Target<'a>>>,
    /// The functions it exports, by name, read when first needed.
    exports: std::sync::OnceLock<HashMap<&'a str, u64>>,
}

impl<'a> Prepared<'a> {
    /// `lookups`: how many addresses this update looks up in it. Few (a system library's
    /// handful) and only abbreviation tables shared by several units are parsed up front: libc's
    /// debug file has a table per unit, and parsing them all cost 60 MiB and 70 ms for 17
    /// addresses. `light`: no addr2line context at all (it parses every unit's header when made,
    /// 1,200 for libc: most of the rest of that cost); names come from the symbol table and lines
    /// from the looked-up unit's line program, without inline chains.
    pub(super) fn new(
        loc: &'a Located,
        sections: Option<&'a Sections<'a>>,
        lookups: usize,
        light: bool,
    ) -> Option<Self> {
        let file = object::File::parse(&**loc.file).ok()?;
        // A stripped library keeps only its exported symbols; its separate debug file has the
        // whole symbol table (libc's start_thread, for one), at the same addresses.
        let debug_file = loc
            .debug
            .as_ref()
            .and_then(|(_, bytes)| object::File::parse(&***bytes).ok());
        // The symbol table and the DWARF index are independent: build them side by side.
        let (symbols, (dwarf, (units, unit_offsets))) = rayon::join(
            || {
                let own = file.symbol_map();
                match debug_file.as_ref().map(|d| d.symbol_map()) {
                    Some(debug) if debug.symbols().len() > own.symbols().len() => debug,
                    _ => own,
                }
            },
            || {
                let dwarf = sections.map(|s| {
                    let mut dwarf = s
                        .sections
                        .borrow(|section| gimli::EndianSlice::new(section, s.endian));
                    dwarf.populate_abbreviations_cache(if lookups >= FEW_LOOKUPS {
                        gimli::AbbreviationsCacheStrategy::All
                    } else {
                        gimli::AbbreviationsCacheStrategy::Duplicates
                    });
                    Arc::new(dwarf)
                });
                let units = dwarf.as_deref().map(unit_ranges).unwrap_or_default();
                (dwarf, units)
            },
        );
        Some(Prepared {
            symbols,
            segments: segments_of(&file),
            dwarf,
            units,
            unit_offsets,
            light,
            name: file_name_of(&loc.origin),
            code: &loc.file,
            got: std::sync::OnceLock::new(),
            exports: std::sync::OnceLock::new(),
        })
    }

    /// Looked up without addr2line (see `new`).
    pub(super) fn is_light(&self) -> bool {
        self.light
    }

    /// The object's bytes.
    pub(super) fn code(&self) -> &'a [u8] {
        self.code
    }

    /// Where the GOT slot at `slot` points once the loader relocated it: an indirect call or
    /// jump through it (`call *slot(%rip)`) goes there.
    pub(super) fn got_target(&self, slot: u64) -> Option<Target<'a>> {
        self.got
            .get_or_init(|| got_targets(self.code))
            .get(&slot)
            .copied()
    }

    /// The address of a function this object exports by `name`.
    pub(super) fn export(&self, name: &str) -> Option<u64> {
        self.exports
            .get_or_init(|| exports_of(self.code))
            .get(name)
            .copied()
    }

    /// File offset → virtual address.
    pub(super) fn vaddr(&self, offset: u64) -> Option<u64> {
        vaddr_of(&self.segments, offset)
    }

    /// Virtual address → file offset.
    pub(super) fn offset(&self, vaddr: u64) -> Option<u64> {
        self.segments.iter().find_map(|&(start, size, address)| {
            (address <= vaddr && vaddr - address < size).then(|| start + (vaddr - address))
        })
    }

    /// The function holding `vaddr`, by the symbol table: its start, its end (the next symbol's
    /// start when the table gives no size), and its name.
    pub(super) fn function_at(&self, vaddr: u64) -> Option<(u64, u64, &'a str)> {
        let symbol = self.symbols.containing(vaddr)?;
        let start = symbol.address();
        let end = if symbol.size() > 0 {
            start.saturating_add(symbol.size())
        } else {
            let all = self.symbols.symbols();
            let next = all.partition_point(|s| s.address() <= start);
            all.get(next).map_or(u64::MAX, |s| s.address())
        };
        Some((start, end, symbol.name()))
    }

    /// The frames at one virtual address, as a caller-side lookup would give them.
    pub(super) fn frames_at(
        &self,
        ctx: Option<&Context<'_>>,
        vaddr: u64,
        object: u32,
        strings: &mut Strings,
    ) -> Option<Arc<[Frame]>> {
        let offset = self.offset(vaddr)?;
        Some(self.lookup(ctx, offset, object, strings).0)
    }

    pub(super) fn context(&self) -> Option<Context<'a>> {
        if self.light {
            return None;
        }
        addr2line::Context::from_arc_dwarf(Arc::clone(self.dwarf.as_ref()?)).ok()
    }

    /// The file and line of `vaddr` from its unit's line program alone (the light lookup).
    fn line_of(&self, vaddr: u64, strings: &mut Strings) -> Option<(Arc<str>, u32)> {
        let dwarf = self.dwarf.as_deref()?;
        let i = self.units.partition_point(|&(start, _, _)| start <= vaddr);
        let (_, end, unit) = self.units[i.checked_sub(1)?];
        if vaddr >= end {
            return None;
        }
        let header = dwarf
            .debug_info
            .header_from_offset(*self.unit_offsets.get(unit as usize)?)
            .ok()?;
        let unit = dwarf.unit(header).ok()?;
        let program = unit.line_program.clone()?;
        let mut rows = program.rows();
        // The last row at or before `vaddr` in a sequence that goes past it.
        let mut previous: Option<gimli::LineRow> = None;
        let mut found = None;
        while let Ok(Some((_, row))) = rows.next_row() {
            if let Some(p) = previous {
                if p.address() <= vaddr && vaddr < row.address() {
                    found = Some(p);
                    break;
                }
            }
            previous = (!row.end_sequence()).then_some(*row);
        }
        let row = found?;
        let header = rows.header();
        let file = row.file(header)?;
        let text = |value| {
            dwarf
                .attr_string(&unit, value)
                .ok()
                .map(|s| s.to_string_lossy().into_owned())
        };
        let name = text(file.path_name())?;
        let path = if name.starts_with('/') {
            name
        } else {
            match file.directory(header).and_then(text) {
                Some(dir) if !dir.is_empty() => format!("{dir}/{name}"),
                _ => name,
            }
        };
        let line = row.line().map_or(0, |l| l.get() as u32);
        Some((strings.plain(&path), line))
    }

    /// The compilation unit whose ranges hold this file offset, or [`NO_UNIT`].
    pub(super) fn unit_of(&self, offset: u64) -> u32 {
        let Some(vaddr) = vaddr_of(&self.segments, offset) else {
            return NO_UNIT;
        };
        let i = self.units.partition_point(|&(start, _, _)| start <= vaddr);
        match i.checked_sub(1).map(|i| self.units[i]) {
            Some((_, end, unit)) if vaddr < end => unit,
            _ => NO_UNIT,
        }
    }

    /// The frames at one file offset, innermost first, and whether it resolved to a line.
    pub(super) fn lookup(
        &self,
        ctx: Option<&Context<'_>>,
        offset: u64,
        object: u32,
        strings: &mut Strings,
    ) -> (Arc<[Frame]>, bool) {
        let Some(vaddr) = vaddr_of(&self.segments, offset) else {
            return (placeholder(&self.name, offset, object), false);
        };
        let mut frames = Vec::new();
        if let Some(Ok(mut iter)) = ctx.map(|c| c.find_frames(vaddr).skip_all_loads()) {
            while let Ok(Some(f)) = iter.next() {
                let function = match f.function.as_ref().and_then(|n| n.raw_name().ok()) {
                    Some(raw) => strings.demangled(&raw),
                    None => strings.plain("??"),
                };
                let (file, line) = match f.location {
                    Some(l) => (l.file.map(|f| strings.plain(f)), l.line.unwrap_or(0)),
                    None => (None, 0),
                };
                frames.push(Frame {
                    function,
                    file,
                    line,
                    object,
                    inlined: true,
                    recovered: None,
                });
            }
        }
        if let Some(last) = frames.last_mut() {
            last.inlined = false;
        }
        // No DWARF here (or a light lookup): the symbol table names the function at least.
        if frames.is_empty() || frames.iter().all(|f| &*f.function == "??") {
            frames.clear();
            let function = match self.symbols.containing(vaddr) {
                Some(s) => strings.demangled(s.name()),
                None => format!("[{}+{offset:#x}]", self.name).into(),
            };
            let (file, line) = match self.light.then(|| self.line_of(vaddr, strings)).flatten() {
                Some((file, line)) => (Some(file), line),
                None => (None, 0),
            };
            frames.push(Frame {
                function,
                file,
                line,
                object,
                inlined: false,
                recovered: None,
            });
        }
        let with_line = frames.first().is_some_and(|f| f.file.is_some());
        (Arc::from(frames), with_line)
    }
}

/// Functions an object exports, by name (its dynamic symbols that it defines).
fn exports_of(code: &[u8]) -> HashMap<&str, u64> {
    use object::{ObjectSymbol, ObjectSymbolTable};
    let mut out = HashMap::default();
    let Ok(file) = object::File::parse(code) else {
        return out;
    };
    if let Some(table) = file.dynamic_symbol_table() {
        for symbol in table.symbols().filter(|s| s.is_definition()) {
            if let Ok(name) = symbol.name() {
                out.insert(name, symbol.address());
            }
        }
    }
    out
}

/// GOT slot → target, from the dynamic relocations the loader applies: relative ones (the
/// target is the addend), symbol ones this object defines (that address), and imports (the
/// symbol's name, defined by a library).
fn got_targets(code: &[u8]) -> HashMap<u64, Target<'_>> {
    use object::{ObjectSymbol, ObjectSymbolTable, RelocationFlags, RelocationTarget};
    const R_X86_64_64: u32 = 1;
    const R_X86_64_GLOB_DAT: u32 = 6;
    const R_X86_64_JUMP_SLOT: u32 = 7;
    const R_X86_64_RELATIVE: u32 = 8;
    let mut out = HashMap::default();
    let Ok(file) = object::File::parse(code) else {
        return out;
    };
    let Some(relocations) = file.dynamic_relocations() else {
        return out;
    };
    let symbols = file.dynamic_symbol_table();
    for (slot, relocation) in relocations {
        let RelocationFlags::Elf { r_type } = relocation.flags() else {
            continue;
        };
        let target = match (r_type, relocation.target()) {
            (R_X86_64_RELATIVE, _) => Some(Target::Here(relocation.addend() as u64)),
            (R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT | R_X86_64_64, RelocationTarget::Symbol(i)) => {
                symbols
                    .as_ref()
                    .and_then(|t| t.symbol_by_index(i).ok())
                    .and_then(|s| {
                        if s.is_definition() {
                            Some(Target::Here(
                                s.address().wrapping_add(relocation.addend() as u64),
                            ))
                        } else {
                            s.name().ok().map(Target::Import)
                        }
                    })
            }
            _ => None,
        };
        if let Some(target) = target {
            out.insert(slot, target);
        }
    }
    out
}

/// Address ranges of every compilation unit: .debug_aranges where it covers a unit, else the
/// unit's own DW_AT_ranges / low_pc–high_pc (as addr2line does).
fn unit_ranges(
    dwarf: &gimli::Dwarf<Reader<'_>>,
) -> (Vec<(u64, u64, u32)>, Vec<gimli::DebugInfoOffset>) {
    let mut aranges: HashMap<usize, Vec<(u64, u64)>> = HashMap::default();
    let mut headers = dwarf.debug_aranges.headers();
    while let Ok(Some(header)) = headers.next() {
        let ranges = aranges.entry(header.debug_info_offset().0).or_default();
        let mut entries = header.entries();
        while let Ok(Some(entry)) = entries.next() {
            let r = entry.range();
            if r.begin < r.end {
                ranges.push((r.begin, r.end));
            }
        }
    }
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    let mut units = dwarf.units();
    let mut index = 0u32;
    while let Ok(Some(header)) = units.next() {
        offsets.push(
            header
                .offset()
                .as_debug_info_offset()
                .unwrap_or(gimli::DebugInfoOffset(0)),
        );
        let covered = header
            .offset()
            .as_debug_info_offset()
            .and_then(|o| aranges.get(&o.0))
            .filter(|r| !r.is_empty());
        match covered {
            Some(ranges) => out.extend(ranges.iter().map(|&(b, e)| (b, e, index))),
            None => {
                if let Ok(unit) = dwarf.unit(header) {
                    if let Ok(mut ranges) = dwarf.unit_ranges(&unit) {
                        while let Ok(Some(r)) = ranges.next() {
                            if r.begin < r.end {
                                out.push((r.begin, r.end, index));
                            }
                        }
                    }
                }
            }
        }
        index += 1;
    }
    out.sort_unstable_by_key(|r| r.0);
    (out, offsets)
}

fn file_name_of(origin: &objects::Origin) -> String {
    match origin {
        objects::Origin::Override(p)
        | objects::Origin::RecordedPath(p)
        | objects::Origin::ProcessRoot(p)
        | objects::Origin::Debuginfod(p)
        | objects::Origin::DebugFile(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        objects::Origin::Embedded => "embedded".into(),
    }
}

/// The DWARF sections of an object, decompressed if needed.
fn dwarf_context_sections<'a>(
    file: &object::File<'a>,
) -> Option<gimli::DwarfSections<Cow<'a, [u8]>>> {
    let load = |id: gimli::SectionId| -> Result<Cow<'a, [u8]>, gimli::Error> {
        // Location lists and macros: addr2line never reads them, and a distribution's
        // compressed debug file would be inflated for nothing (libc's: 1.4 MiB).
        if matches!(
            id,
            gimli::SectionId::DebugLoc
                | gimli::SectionId::DebugLocLists
                | gimli::SectionId::DebugMacinfo
                | gimli::SectionId::DebugMacro
                | gimli::SectionId::DebugFrame
                | gimli::SectionId::EhFrame
                | gimli::SectionId::EhFrameHdr
        ) {
            return Ok(Cow::Borrowed(&[]));
        }
        Ok(file
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    };
    gimli::DwarfSections::load(load).ok()
}

/// Symbol of an address in a symbol table, for tests and tools.
pub fn symtab_lookup(bytes: &[u8], vaddr: u64) -> Option<String> {
    let file = object::File::parse(bytes).ok()?;
    let map = file.symbol_map();
    map.containing(vaddr)
        .map(|s| super::intern::demangle(s.name()))
}

/// The frame of an address no object could name: `[file name+offset]`.
pub(super) fn placeholder(path: &str, offset: u64, object: u32) -> Arc<[Frame]> {
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    Arc::new([Frame {
        function: format!("[{name}+{offset:#x}]").into(),
        file: None,
        line: 0,
        object,
        inlined: false,
        recovered: None,
    }])
}

/// Where a branch goes: a function of this object, or one it imports by name (through a GOT
/// slot the loader fills).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target<'a> {
    Here(u64),
    Import(&'a str),
}
