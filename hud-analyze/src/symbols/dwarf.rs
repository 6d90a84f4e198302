//! One object prepared for lookups: its segments, symbol table and DWARF (abbreviations parsed
//! once, shared by every worker), and which compilation unit covers which address.

use std::borrow::Cow;
use std::sync::Arc;

use object::{Object, ObjectSection, ObjectSegment};
use rustc_hash::FxHashMap as HashMap;

use super::intern::Strings;
use super::objects::{self, Bytes, Located};
use super::schedule::{fill, placeholder, WorkItem, NO_UNIT};
use super::{Frame, Symbols};

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
    /// For placeholders: the file's name.
    name: String,
}

impl<'a> Prepared<'a> {
    pub(super) fn new(loc: &'a Located, sections: Option<&'a Sections<'a>>) -> Option<Self> {
        let file = object::File::parse(&**loc.file).ok()?;
        // A stripped library keeps only its exported symbols; its separate debug file has the
        // whole symbol table (libc's start_thread, for one), at the same addresses.
        let debug_file = loc
            .debug
            .as_ref()
            .and_then(|(_, bytes)| object::File::parse(&***bytes).ok());
        // The symbol table and the DWARF index are independent: build them side by side.
        let (symbols, (dwarf, units)) = rayon::join(
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
                    dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::All);
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
            name: file_name_of(&loc.origin),
        })
    }

    pub(super) fn context(&self) -> Option<Context<'a>> {
        addr2line::Context::from_arc_dwarf(Arc::clone(self.dwarf.as_ref()?)).ok()
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

    /// Resolves one item into its slots; returns how many lookups have a file and line.
    pub(super) fn resolve(
        &self,
        ctx: Option<&Context<'_>>,
        item: &WorkItem,
        strings: &mut Strings,
        slots: &Symbols,
    ) -> usize {
        let mut with_line = 0;
        // Lookups are sorted by offset: equal offsets are neighbours and share one answer.
        let mut previous: Option<(u64, Arc<[Frame]>, bool)> = None;
        for lookup in &item.lookups {
            let (frames, line) = match &previous {
                Some((offset, frames, line)) if *offset == lookup.offset => {
                    (Arc::clone(frames), *line)
                }
                _ => {
                    let (frames, line) = self.lookup(ctx, lookup.offset, item.object, strings);
                    previous = Some((lookup.offset, Arc::clone(&frames), line));
                    (frames, line)
                }
            };
            with_line += usize::from(line);
            fill(slots, lookup, frames);
        }
        with_line
    }

    /// The frames at one file offset, innermost first, and whether it resolved to a line.
    fn lookup(
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
                });
            }
        }
        if let Some(last) = frames.last_mut() {
            last.inlined = false;
        }
        let with_line = frames.first().is_some_and(|f| f.file.is_some());
        // No DWARF here: the symbol table names the function at least.
        if frames.is_empty() || frames.iter().all(|f| &*f.function == "??") {
            frames.clear();
            let function = match self.symbols.containing(vaddr) {
                Some(s) => strings.demangled(s.name()),
                None => format!("[{}+{offset:#x}]", self.name).into(),
            };
            frames.push(Frame {
                function,
                file: None,
                line: 0,
                object,
                inlined: false,
            });
        }
        (Arc::from(frames), with_line)
    }
}

/// Address ranges of every compilation unit: .debug_aranges where it covers a unit, else the
/// unit's own DW_AT_ranges / low_pc–high_pc (as addr2line does).
fn unit_ranges(dwarf: &gimli::Dwarf<Reader<'_>>) -> Vec<(u64, u64, u32)> {
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
    let mut units = dwarf.units();
    let mut index = 0u32;
    while let Ok(Some(header)) = units.next() {
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
    out
}

fn file_name_of(origin: &objects::Origin) -> String {
    match origin {
        objects::Origin::Override(p)
        | objects::Origin::RecordedPath(p)
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
