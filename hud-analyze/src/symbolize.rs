//! Offline symbolization: each unique (object, address) once, in parallel, with inline chains.
//!
//! Addresses above the leaf are return addresses: they are looked up at address − 1 so the call
//! instruction's line is found, not the next one's. Objects without DWARF fall back to their
//! symbol table (.symtab, or .dynsym for stripped libraries like libc).

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use object::{Object, ObjectSection, ObjectSegment};
use rayon::prelude::*;

use crate::model::Model;
use crate::objects::{self, BuildIdMismatch, Bytes, Embedded, Located, SearchPaths};
use crate::progress::Progress;

/// One frame of a symbolized stack (inlined functions are frames of their own).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Demangled, without the hash.
    pub function: Arc<str>,
    pub file: Option<Arc<str>>,
    pub line: u32,
    /// Index into [`Symbols::objects`]; `u32::MAX` for addresses in no known mapping.
    pub object: u32,
    /// This frame was inlined into the next one.
    pub inlined: bool,
}

/// Identity of an interned name or path: symbolization gives equal strings one allocation, so
/// views compare and hash names by this instead of by their text.
pub fn interned_id(s: &Arc<str>) -> usize {
    Arc::as_ptr(s) as *const u8 as usize
}

impl Frame {
    /// "file:line", shortened to the part after `src/` directories' parents when long.
    pub fn location(&self) -> Option<String> {
        self.file.as_ref().map(|f| format!("{f}:{}", self.line))
    }
}

/// What became of one mapped object.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObjectInfo {
    pub path: String,
    pub build_id: String,
    /// Where its bytes were found, or why not.
    pub source: String,
    pub has_debug_info: bool,
    /// Lookups in this object.
    pub addresses: usize,
    /// Of those, resolved to a file and line.
    pub with_line: usize,
}

/// Per stack node id (index 0 unused), the frames of its address, once looked up. Workers fill
/// their nodes' slots directly, so no serial merge follows the parallel lookups.
type NodeFrames = Vec<OnceLock<Arc<[Frame]>>>;

fn empty_slots(nodes: usize) -> NodeFrames {
    (0..=nodes).map(|_| OnceLock::new()).collect()
}

/// Symbolization results, by stack.
pub struct Symbols {
    pub objects: Vec<ObjectInfo>,
    /// Per stack node: frames for the node as a leaf, and as a return address (caller side).
    leaf: NodeFrames,
    caller: NodeFrames,
    /// Errors that make the result wrong, not just poorer (a build-id mismatch of the target).
    pub mismatches: Vec<BuildIdMismatch>,
    pub warnings: Vec<String>,
}

impl Symbols {
    /// The frames of stack `id`, innermost first, inline chains expanded, without copying.
    pub fn frames<'a>(&'a self, model: &'a Model, id: u32) -> impl Iterator<Item = &'a Frame> + 'a {
        let nodes = model.stacks.nodes();
        let mut node = id;
        let mut depth = 0usize;
        std::iter::from_fn(move || {
            if node == 0 {
                return None;
            }
            let &(parent, _) = nodes.get(node as usize - 1)?;
            let table = if depth == 0 { &self.leaf } else { &self.caller };
            let frames = table
                .get(node as usize)
                .and_then(OnceLock::get)
                .map(|f| &f[..]);
            node = if parent < node { parent } else { 0 };
            depth += 1;
            Some(frames.unwrap_or(&[]))
        })
        .flatten()
    }

    /// The frames of stack `id`, innermost first, inline chains expanded, as owned values.
    pub fn stack(&self, model: &Model, id: u32) -> Vec<Frame> {
        self.frames(model, id).cloned().collect()
    }

    /// Symbols from a resolver function instead of object files: for synthetic captures and tests.
    /// Every node's address resolves to `resolve(address)` (innermost inline frame first), as a
    /// leaf and as a caller alike.
    pub fn from_resolver(model: &Model, resolve: impl Fn(u64) -> Vec<Frame>) -> Self {
        let mut leaf = vec![OnceLock::new()];
        for &(_, address) in model.stacks.nodes() {
            leaf.push(OnceLock::from(Arc::from(resolve(address))));
        }
        Symbols {
            objects: Vec::new(),
            caller: leaf.clone(),
            leaf,
            mismatches: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Share of looked-up addresses that resolved to a file and line.
    pub fn line_coverage(&self) -> f64 {
        let (all, lines) = self
            .objects
            .iter()
            .fold((0, 0), |(a, l), o| (a + o.addresses, l + o.with_line));
        if all == 0 {
            1.0
        } else {
            lines as f64 / all as f64
        }
    }
}

/// An executable mapping, resolved to an object index.
struct MapRange {
    start: u64,
    end: u64,
    file_offset: u64,
    object: u32,
}

/// One address to look up: stack node, leaf or caller side, file offset in the object.
#[derive(Clone, Copy)]
struct Lookup {
    node: u32,
    as_caller: bool,
    offset: u64,
}

/// Work for one worker at a time: the lookups of one object that fall in one DWARF compilation
/// unit, sorted by offset. A unit's line program and functions are parsed lazily by the first
/// lookup in it; keeping a unit's lookups together means each unit is parsed once, by one worker.
struct WorkItem {
    object: u32,
    lookups: Vec<Lookup>,
}

/// Lookups outside any unit (no DWARF) are cheap symbol-table searches: cut them in items of this
/// many so they still spread over the workers.
const LOOKUPS_PER_ITEM_WITHOUT_DWARF: usize = 2048;

/// A unit is cut in parts only past this many lookups: below, parsing it twice costs more than the
/// lookups a second core would take over.
const MIN_LOOKUPS_PER_SPLIT: usize = 4096;

/// The unit of addresses no compilation unit covers.
const NO_UNIT: u32 = u32::MAX;

/// Symbolizes every stack node the model's events use.
pub fn symbolize(
    model: &Model,
    search: &SearchPaths,
    embedded: &[Embedded],
    progress: &Progress,
) -> Symbols {
    let mut laps = crate::progress::Laps::new("symbolize.");
    let (objects, per_object, unknown) = plan(model);
    laps.lap("plan");

    let LocatedAll {
        infos,
        located,
        mismatches,
        warnings,
    } = locate_all(model, &objects, &per_object, search, embedded);
    // Parse each object once, shared by the workers: headers, symbol table, DWARF sections.
    let wanted = |i: usize| located[i].as_ref().filter(|_| !per_object[i].is_empty());
    let sections: Vec<Option<Sections<'_>>> = (0..located.len())
        .into_par_iter()
        .map(|i| Sections::load(wanted(i)?))
        .collect();
    let prepared: Vec<Option<Prepared<'_>>> = (0..located.len())
        .into_par_iter()
        .map(|i| Prepared::new(wanted(i)?, sections[i].as_ref()))
        .collect();
    laps.lap("locate");

    let items = work_items(&prepared, per_object);
    laps.lap("units");
    progress.counted(
        "symbolizing addresses",
        items.iter().map(|i| i.lookups.len() as u64).sum(),
    );
    let node_count = model.stacks.nodes().len();
    let mut symbols = Symbols {
        objects: infos,
        leaf: empty_slots(node_count),
        caller: empty_slots(node_count),
        mismatches,
        warnings,
    };
    let with_line = resolve(&prepared, &objects, &items, &symbols, progress);
    for (info, with_line) in symbols.objects.iter_mut().zip(with_line) {
        info.with_line = with_line;
    }
    laps.lap("resolve");
    let nodes = model.stacks.nodes();
    for (id, as_caller) in unknown {
        let address = nodes[id as usize - 1].1;
        let frames: Arc<[Frame]> = Arc::new([Frame {
            function: format!("[unknown {address:#x}]").into(),
            file: None,
            line: 0,
            object: u32::MAX,
            inlined: false,
        }]);
        let table = if as_caller {
            &symbols.caller
        } else {
            &symbols.leaf
        };
        let _ = table[id as usize].set(frames);
    }
    symbols
}

/// Every object found (or why not), before any lookup.
struct LocatedAll {
    infos: Vec<ObjectInfo>,
    located: Vec<Option<Located>>,
    /// Build-id mismatches of the target itself: the analysis cannot go on.
    mismatches: Vec<BuildIdMismatch>,
    warnings: Vec<String>,
}

/// Finds every object's file (sequentially: it is file I/O and cheap).
fn locate_all(
    model: &Model,
    objects: &[(String, Vec<u8>)],
    per_object: &[Vec<Lookup>],
    search: &SearchPaths,
    embedded: &[Embedded],
) -> LocatedAll {
    let mut all = LocatedAll {
        infos: Vec::new(),
        located: Vec::new(),
        mismatches: Vec::new(),
        warnings: Vec::new(),
    };
    let target_exe = &model.header.target.exe_path;
    for ((path, build_id), lookups) in objects.iter().zip(per_object) {
        let found = objects::locate(path, build_id, search, embedded);
        let source = match &found {
            Ok(Some(l)) => l.origin.to_string(),
            Ok(None) => "not found".into(),
            Err(e) => e.to_string(),
        };
        let loc = match found {
            Ok(l) => l,
            Err(e) => {
                if path == target_exe {
                    all.mismatches.push(e);
                } else {
                    all.warnings.push(e.to_string());
                }
                None
            }
        };
        let has_debug_info = loc
            .as_ref()
            .is_some_and(|l| l.debug.is_some() || objects::has_dwarf(&l.file));
        all.infos.push(ObjectInfo {
            path: path.clone(),
            build_id: crate::summary::hex(build_id),
            source,
            has_debug_info,
            addresses: lookups.len(),
            with_line: 0,
        });
        all.located.push(loc);
    }
    all
}

/// Distinct executable objects, the lookups each needs, and nodes in no known mapping.
type Plan = (Vec<(String, Vec<u8>)>, Vec<Vec<Lookup>>, Vec<(u32, bool)>);

/// Which addresses to look up where: every node some event's stack ends at (as a leaf) and every
/// ancestor of one (as a caller, at address − 1).
fn plan(model: &Model) -> Plan {
    // Objects: one per distinct (path, build-id) of executable mappings.
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ranges: Vec<MapRange> = Vec::new();
    for m in model.mappings.iter().filter(|m| m.perms.contains('x')) {
        let object = match objects
            .iter()
            .position(|(p, b)| *p == m.path && *b == m.build_id)
        {
            Some(i) => i,
            None => {
                objects.push((m.path.clone(), m.build_id.clone()));
                objects.len() - 1
            }
        } as u32;
        ranges.push(MapRange {
            start: m.start,
            end: m.end,
            file_offset: m.file_offset,
            object,
        });
    }
    // Later mappings win (a range remapped by dlopen/dlclose).
    let find = |addr: u64| {
        ranges
            .iter()
            .rev()
            .find(|r| r.start <= addr && addr < r.end)
    };

    let nodes = model.stacks.nodes();
    let mut leaf = vec![false; nodes.len() + 1];
    let mut caller = vec![false; nodes.len() + 1];
    for id in model
        .samples
        .iter()
        .map(|s| s.stack)
        .chain(model.off_cpu.iter().map(|o| o.stack))
    {
        if let Some(slot) = leaf.get_mut(id as usize) {
            *slot = true;
        }
    }
    // Mark every ancestor of a used leaf as a caller.
    for id in 1..=nodes.len() as u32 {
        if !leaf[id as usize] {
            continue;
        }
        let mut node = nodes[id as usize - 1].0;
        while node != 0 && !caller[node as usize] {
            caller[node as usize] = true;
            let parent = nodes[node as usize - 1].0;
            node = if parent < node { parent } else { 0 };
        }
    }
    let mut per_object: Vec<Vec<Lookup>> = vec![Vec::new(); objects.len()];
    let mut unknown: Vec<(u32, bool)> = Vec::new();
    let mut last: Option<&MapRange> = None;
    for id in 1..=nodes.len() as u32 {
        let address = nodes[id as usize - 1].1;
        for (as_caller, wanted) in [(false, leaf[id as usize]), (true, caller[id as usize])] {
            if !wanted {
                continue;
            }
            let probe = if as_caller {
                address.wrapping_sub(1)
            } else {
                address
            };
            // Neighbouring nodes are mostly in one mapping: try the last one first.
            let range = match last {
                Some(r) if r.start <= probe && probe < r.end => Some(r),
                _ => find(probe),
            };
            match range {
                Some(r) => {
                    last = Some(r);
                    per_object[r.object as usize].push(Lookup {
                        node: id,
                        as_caller,
                        offset: probe - r.start + r.file_offset,
                    })
                }
                None => unknown.push((id, as_caller)),
            }
        }
    }
    (objects, per_object, unknown)
}

/// Cuts each object's lookups into work items, one per compilation unit, biggest first. A unit
/// holding more than its share of the work is cut further: each part then parses the unit again,
/// but no core waits alone on one unit at the end.
fn work_items(prepared: &[Option<Prepared<'_>>], per_object: Vec<Vec<Lookup>>) -> Vec<WorkItem> {
    let threads = rayon::current_num_threads().max(1);
    let total: usize = per_object.iter().map(Vec::len).sum();
    let share = if threads == 1 {
        usize::MAX
    } else {
        total.div_ceil(threads * 2).max(MIN_LOOKUPS_PER_SPLIT)
    };
    let mut items = Vec::new();
    for (object, lookups) in per_object.into_iter().enumerate() {
        let object = object as u32;
        let prepared = prepared[object as usize].as_ref();
        let mut keyed: Vec<(u32, Lookup)> = lookups
            .into_par_iter()
            .map(|l| (prepared.map_or(NO_UNIT, |p| p.unit_of(l.offset)), l))
            .collect();
        keyed.par_sort_unstable_by_key(|&(unit, l)| (unit, l.offset));
        for unit in keyed.chunk_by(|a, b| a.0 == b.0) {
            let limit = if unit[0].0 == NO_UNIT {
                LOOKUPS_PER_ITEM_WITHOUT_DWARF
            } else {
                share
            };
            let parts = unit.len().div_ceil(limit);
            for part in unit.chunks(unit.len().div_ceil(parts)) {
                items.push(WorkItem {
                    object,
                    lookups: part.iter().map(|&(_, l)| l).collect(),
                });
            }
        }
    }
    // Biggest first, so a large unit does not start last and keep one core busy alone.
    items.sort_by_key(|i| std::cmp::Reverse(i.lookups.len()));
    items
}

/// Resolves every work item into the nodes' slots, and returns per object how many lookups
/// resolved to a file and line. Each pool thread takes the next item from a shared counter, with
/// one addr2line context per object of its own (a context is not shareable, and costs little
/// before its units are parsed). Names are interned across threads as they are made, so views can
/// compare and hash them by pointer.
fn resolve(
    prepared: &[Option<Prepared<'_>>],
    objects: &[(String, Vec<u8>)],
    items: &[WorkItem],
    slots: &Symbols,
    progress: &Progress,
) -> Vec<usize> {
    let next = AtomicUsize::new(0);
    let shared = Mutex::new(rustc_hash::FxHashSet::<Arc<str>>::default());
    let per_thread: Vec<Vec<usize>> = rayon::broadcast(|_| {
        let mut contexts: HashMap<u32, Option<Context<'_>>> = HashMap::default();
        let mut strings = Strings::new(&shared);
        let mut with_line = vec![0usize; objects.len()];
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            with_line[item.object as usize] += match &prepared[item.object as usize] {
                Some(p) => {
                    let ctx = contexts.entry(item.object).or_insert_with(|| p.context());
                    p.resolve(ctx.as_ref(), item, &mut strings, slots)
                }
                None => unresolved(&objects[item.object as usize].0, item, slots),
            };
            progress.advance(item.lookups.len() as u64);
        }
        with_line
    });
    (0..objects.len())
        .map(|o| per_thread.iter().map(|counts| counts[o]).sum())
        .collect()
}

/// Fills the slot of a lookup (each node and side is looked up once).
fn fill(slots: &Symbols, lookup: &Lookup, frames: Arc<[Frame]>) {
    let table = if lookup.as_caller {
        &slots.caller
    } else {
        &slots.leaf
    };
    let _ = table[lookup.node as usize].set(frames);
}

/// For an object that was not found: `[name+offset]` placeholders. No lookup has a line.
fn unresolved(path: &str, item: &WorkItem, slots: &Symbols) -> usize {
    for l in &item.lookups {
        fill(slots, l, placeholder(path, l.offset, item.object));
    }
    0
}

fn placeholder(path: &str, offset: u64, object: u32) -> Arc<[Frame]> {
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
    }])
}

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

/// Demangles a Rust (or C) symbol without the trailing hash.
pub fn demangle(raw: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(raw))
}

type Reader<'a> = gimli::EndianSlice<'a, gimli::RunTimeEndian>;
type Context<'a> = addr2line::Context<Reader<'a>>;

/// An object's DWARF sections (decompressed if they were compressed), loaded before the objects
/// are prepared so every worker's context can borrow them.
struct Sections<'a> {
    sections: gimli::DwarfSections<Cow<'a, [u8]>>,
    endian: gimli::RunTimeEndian,
}

impl<'a> Sections<'a> {
    fn load(loc: &'a Located) -> Option<Self> {
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
struct Prepared<'a> {
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
    fn new(loc: &'a Located, sections: Option<&'a Sections<'a>>) -> Option<Self> {
        let file = object::File::parse(&**loc.file).ok()?;
        // The symbol table and the DWARF index are independent: build them side by side.
        let (symbols, (dwarf, units)) = rayon::join(
            || file.symbol_map(),
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

    fn context(&self) -> Option<Context<'a>> {
        addr2line::Context::from_arc_dwarf(Arc::clone(self.dwarf.as_ref()?)).ok()
    }

    /// The compilation unit whose ranges hold this file offset, or [`NO_UNIT`].
    fn unit_of(&self, offset: u64) -> u32 {
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
    fn resolve(
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

/// One worker's strings: each raw name demangled once, each name and path looked up in the shared
/// interner once (behind a lock, but only on a worker's first sight of a string).
struct Strings<'s> {
    demangled: HashMap<String, Arc<str>>,
    plain: HashMap<String, Arc<str>>,
    shared: &'s Mutex<rustc_hash::FxHashSet<Arc<str>>>,
}

impl<'s> Strings<'s> {
    fn new(shared: &'s Mutex<rustc_hash::FxHashSet<Arc<str>>>) -> Self {
        Self {
            demangled: HashMap::default(),
            plain: HashMap::default(),
            shared,
        }
    }

    fn demangled(&mut self, raw: &str) -> Arc<str> {
        if let Some(s) = self.demangled.get(raw) {
            return Arc::clone(s);
        }
        let clean = demangle(raw);
        let s = self.plain(&clean);
        self.demangled.insert(raw.to_owned(), Arc::clone(&s));
        s
    }

    fn plain(&mut self, text: &str) -> Arc<str> {
        if let Some(s) = self.plain.get(text) {
            return Arc::clone(s);
        }
        let s = {
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            match shared.get(text) {
                Some(s) => Arc::clone(s),
                None => {
                    let s: Arc<str> = Arc::from(text);
                    shared.insert(Arc::clone(&s));
                    s
                }
            }
        };
        self.plain.insert(text.to_owned(), Arc::clone(&s));
        s
    }
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
    map.containing(vaddr).map(|s| demangle(s.name()))
}
