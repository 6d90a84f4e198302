//! Offline symbolization: each unique (object, address) once, in parallel, with inline chains.
//!
//! Addresses above the leaf are return addresses: they are looked up at address − 1 so the call
//! instruction's line is found, not the next one's. Objects without DWARF fall back to their
//! symbol table (.symtab, or .dynsym for stripped libraries like libc).

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use object::{Object, ObjectSection, ObjectSegment};
use rayon::prelude::*;

use crate::model::Model;
use crate::objects::{self, BuildIdMismatch, Bytes, Embedded, Located, SearchPaths};

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

/// Per stack node id (index 0 unused), the frames of its address, once looked up.
type NodeFrames = Vec<Option<Arc<[Frame]>>>;

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
            let frames = table.get(node as usize).and_then(Option::as_deref);
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
        let mut leaf = vec![None];
        for &(_, address) in model.stacks.nodes() {
            leaf.push(Some(Arc::from(resolve(address))));
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

/// A work item's answers: each distinct offset's frames once, and per lookup an index into them.
struct Answers {
    distinct: Vec<(Arc<[Frame]>, bool)>,
    /// Per lookup of the item, in order: index into `distinct`.
    picks: Vec<u32>,
}

/// Lookups outside any unit (no DWARF) are cheap symbol-table searches: cut them in items of this
/// many so they still spread over the workers.
const LOOKUPS_PER_ITEM_WITHOUT_DWARF: usize = 2048;

/// Symbolizes every stack node the model's events use.
pub fn symbolize(model: &Model, search: &SearchPaths, embedded: &[Embedded]) -> Symbols {
    let mut laps = crate::progress::Laps::new("symbolize.");
    let (objects, per_object, unknown) = plan(model);
    laps.lap("plan");

    // Locate objects (sequentially: it is file I/O and cheap).
    let mut infos = Vec::new();
    let mut located: Vec<Option<Located>> = Vec::new();
    let mut mismatches = Vec::new();
    let mut warnings = Vec::new();
    let target_exe = &model.header.target.exe_path;
    for (i, (path, build_id)) in objects.iter().enumerate() {
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
                    mismatches.push(e);
                } else {
                    warnings.push(e.to_string());
                }
                None
            }
        };
        let has_debug_info = loc
            .as_ref()
            .is_some_and(|l| l.debug.is_some() || objects::has_dwarf(&l.file));
        infos.push(ObjectInfo {
            path: path.clone(),
            build_id: crate::summary::hex(build_id),
            source,
            has_debug_info,
            addresses: per_object[i].len(),
            with_line: 0,
        });
        located.push(loc);
    }
    // Parse each object once, shared by its tasks: headers, symbol table, DWARF sections.
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
    let answers = resolve(&prepared, &objects, &items);
    laps.lap("resolve");

    let node_count = model.stacks.nodes().len();
    let mut symbols = Symbols {
        objects: infos,
        leaf: vec![None; node_count + 1],
        caller: vec![None; node_count + 1],
        mismatches,
        warnings,
    };
    for (item, answers) in items.iter().zip(&answers) {
        let info = &mut symbols.objects[item.object as usize];
        for (lookup, &pick) in item.lookups.iter().zip(&answers.picks) {
            let (frames, with_line) = &answers.distinct[pick as usize];
            info.with_line += usize::from(*with_line);
            let frames = Arc::clone(frames);
            let table = if lookup.as_caller {
                &mut symbols.caller
            } else {
                &mut symbols.leaf
            };
            table[lookup.node as usize] = Some(frames);
        }
    }
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
            &mut symbols.caller
        } else {
            &mut symbols.leaf
        };
        table[id as usize] = Some(frames);
    }
    laps.lap("merge");
    symbols
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

/// Cuts each object's lookups into work items, one per compilation unit, biggest first.
fn work_items(prepared: &[Option<Prepared<'_>>], per_object: Vec<Vec<Lookup>>) -> Vec<WorkItem> {
    let mut items = Vec::new();
    for (object, lookups) in per_object.into_iter().enumerate() {
        let object = object as u32;
        let prepared = prepared[object as usize].as_ref();
        let mut keyed: Vec<(u32, Lookup)> = lookups
            .into_iter()
            .map(|l| (prepared.map_or(u32::MAX, |p| p.unit_of(l.offset)), l))
            .collect();
        keyed.sort_unstable_by_key(|&(unit, l)| (unit, l.offset));
        for unit in keyed.chunk_by(|a, b| a.0 == b.0) {
            let lookups = unit.iter().map(|&(_, l)| l);
            if unit[0].0 == u32::MAX {
                let lookups: Vec<Lookup> = lookups.collect();
                for part in lookups.chunks(LOOKUPS_PER_ITEM_WITHOUT_DWARF) {
                    items.push(WorkItem {
                        object,
                        lookups: part.to_vec(),
                    });
                }
            } else {
                items.push(WorkItem {
                    object,
                    lookups: lookups.collect(),
                });
            }
        }
    }
    // Biggest first, so a large unit does not start last and keep one core busy alone.
    items.sort_by_key(|i| std::cmp::Reverse(i.lookups.len()));
    items
}

/// Resolves every work item. Each pool thread takes the next item from a shared counter, with one
/// addr2line context per object of its own (a context is not shareable, and costs little before
/// its units are parsed). Names are interned across threads as they are made, so views can compare
/// and hash them by pointer.
fn resolve(
    prepared: &[Option<Prepared<'_>>],
    objects: &[(String, Vec<u8>)],
    items: &[WorkItem],
) -> Vec<Answers> {
    let next = AtomicUsize::new(0);
    let shared = Mutex::new(rustc_hash::FxHashSet::<Arc<str>>::default());
    let per_thread: Vec<Vec<(usize, Answers)>> = rayon::broadcast(|_| {
        let mut contexts: HashMap<u32, Option<Context<'_>>> = HashMap::default();
        let mut strings = Strings::new(&shared);
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let answers = match &prepared[item.object as usize] {
                Some(p) => {
                    let ctx = contexts.entry(item.object).or_insert_with(|| p.context());
                    p.resolve(ctx.as_ref(), item, &mut strings)
                }
                None => unresolved(&objects[item.object as usize].0, item),
            };
            done.push((i, answers));
        }
        done
    });
    let mut answers: Vec<Option<Answers>> = (0..items.len()).map(|_| None).collect();
    for (i, a) in per_thread.into_iter().flatten() {
        answers[i] = Some(a);
    }
    answers
        .into_iter()
        .map(|a| a.expect("every work item is taken by exactly one thread"))
        .collect()
}

/// Answers for an object that was not found: `[name+offset]` placeholders.
fn unresolved(path: &str, item: &WorkItem) -> Answers {
    Answers {
        distinct: item
            .lookups
            .iter()
            .map(|l| (placeholder(path, l.offset, item.object), false))
            .collect(),
        picks: (0..item.lookups.len() as u32).collect(),
    }
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

/// File offset → virtual address through the object's loadable segments.
fn vaddr_of(file: &object::File<'_>, offset: u64) -> Option<u64> {
    file.segments().find_map(|s| {
        let (start, size) = s.file_range();
        (start <= offset && offset < start + size).then(|| s.address() + (offset - start))
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
    file: object::File<'a>,
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
        let dwarf = sections.map(|s| {
            let mut dwarf = s
                .sections
                .borrow(|section| gimli::EndianSlice::new(section, s.endian));
            dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::All);
            Arc::new(dwarf)
        });
        let units = dwarf.as_deref().map(unit_ranges).unwrap_or_default();
        Some(Prepared {
            symbols: file.symbol_map(),
            file,
            dwarf,
            units,
            name: file_name_of(&loc.origin),
        })
    }

    fn context(&self) -> Option<Context<'a>> {
        addr2line::Context::from_arc_dwarf(Arc::clone(self.dwarf.as_ref()?)).ok()
    }

    /// The compilation unit whose ranges hold this file offset, or `u32::MAX`.
    fn unit_of(&self, offset: u64) -> u32 {
        let Some(vaddr) = vaddr_of(&self.file, offset) else {
            return u32::MAX;
        };
        let i = self.units.partition_point(|&(start, _, _)| start <= vaddr);
        match i.checked_sub(1).map(|i| self.units[i]) {
            Some((_, end, unit)) if vaddr < end => unit,
            _ => u32::MAX,
        }
    }

    fn resolve(
        &self,
        ctx: Option<&Context<'_>>,
        item: &WorkItem,
        strings: &mut Strings,
    ) -> Answers {
        let mut distinct: Vec<(Arc<[Frame]>, bool)> = Vec::new();
        let mut picks = Vec::with_capacity(item.lookups.len());
        // Lookups are sorted by offset: equal offsets are neighbours.
        let mut previous: Option<u64> = None;
        for lookup in &item.lookups {
            if previous != Some(lookup.offset) {
                distinct.push(self.lookup(ctx, lookup.offset, item.object, strings));
                previous = Some(lookup.offset);
            }
            picks.push(distinct.len() as u32 - 1);
        }
        Answers { distinct, picks }
    }

    /// The frames at one file offset, innermost first, and whether it resolved to a line.
    fn lookup(
        &self,
        ctx: Option<&Context<'_>>,
        offset: u64,
        object: u32,
        strings: &mut Strings,
    ) -> (Arc<[Frame]>, bool) {
        let Some(vaddr) = vaddr_of(&self.file, offset) else {
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
