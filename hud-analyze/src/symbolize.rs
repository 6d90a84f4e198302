//! Offline symbolization: each unique (object, address) once, in parallel, with inline chains.
//!
//! Addresses above the leaf are return addresses: they are looked up at address − 1 so the call
//! instruction's line is found, not the next one's. Objects without DWARF fall back to their
//! symbol table (.symtab, or .dynsym for stripped libraries like libc).

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::sync::Arc;

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

/// Symbolization results, by stack.
pub struct Symbols {
    pub objects: Vec<ObjectInfo>,
    /// Per stack node: frames for the node as a leaf, and as a return address (caller side).
    leaf: HashMap<u32, Arc<[Frame]>>,
    caller: HashMap<u32, Arc<[Frame]>>,
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
            let frames = table.get(&node);
            node = if parent < node { parent } else { 0 };
            depth += 1;
            Some(frames.map(|f| &f[..]).unwrap_or(&[]))
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
        let mut leaf = HashMap::default();
        for (i, &(_, address)) in model.stacks.nodes().iter().enumerate() {
            leaf.insert(i as u32 + 1, Arc::from(resolve(address)));
        }
        Symbols {
            objects: Vec::new(),
            caller: leaf.clone(),
            leaf,
            mismatches: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Makes equal function names and file names share one allocation, so views can compare and
    /// hash them by pointer.
    fn intern(&mut self) {
        let mut strings: rustc_hash::FxHashSet<Arc<str>> = Default::default();
        let mut get = |s: &Arc<str>| -> Arc<str> {
            if let Some(found) = strings.get(s) {
                return Arc::clone(found);
            }
            strings.insert(Arc::clone(s));
            Arc::clone(s)
        };
        for table in [&mut self.leaf, &mut self.caller] {
            for frames in table.values_mut() {
                let interned: Vec<Frame> = frames
                    .iter()
                    .map(|f| Frame {
                        function: get(&f.function),
                        file: f.file.as_ref().map(&mut get),
                        ..f.clone()
                    })
                    .collect();
                *frames = Arc::from(interned);
            }
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

/// A lookup's answer: (node, as caller?, frames, resolved to a line?).
type Resolved = (u32, bool, Arc<[Frame]>, bool);

/// Work for one task: lookups into one object.
struct Task {
    object: u32,
    /// (node, as caller?, file offset to look up).
    lookups: Vec<(u32, bool, u64)>,
}

/// Symbolizes every stack node the model's events use.
pub fn symbolize(model: &Model, search: &SearchPaths, embedded: &[Embedded]) -> Symbols {
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

    // Which nodes are leaves (some event's stack ends there) and which are callers.
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
    let mut per_object: Vec<Vec<(u32, bool, u64)>> = vec![Vec::new(); objects.len()];
    let mut unknown: Vec<(u32, bool)> = Vec::new();
    for id in 1..=nodes.len() as u32 {
        let address = nodes[id as usize - 1].1;
        for as_caller in [false, true] {
            let wanted = if as_caller {
                caller[id as usize]
            } else {
                leaf[id as usize]
            };
            if !wanted {
                continue;
            }
            let probe = if as_caller {
                address.wrapping_sub(1)
            } else {
                address
            };
            match find(probe) {
                Some(r) => per_object[r.object as usize].push((
                    id,
                    as_caller,
                    probe - r.start + r.file_offset,
                )),
                None => unknown.push((id, as_caller)),
            }
        }
    }

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

    // Split big objects so both (all) cores work on the target's binary.
    let threads = rayon::current_num_threads().max(1);
    let mut tasks = Vec::new();
    for (object, mut lookups) in per_object.into_iter().enumerate() {
        if lookups.is_empty() {
            continue;
        }
        lookups.sort_unstable_by_key(|l| l.2);
        // A context costs a DWARF pass of its own: split only when each part has plenty to do.
        let parts = threads.min(lookups.len().div_ceil(4096)).max(1);
        let size = lookups.len().div_ceil(parts);
        for part in lookups.chunks(size) {
            tasks.push(Task {
                object: object as u32,
                lookups: part.to_vec(),
            });
        }
    }
    let results: Vec<(u32, Vec<Resolved>)> = tasks
        .into_par_iter()
        .map(|task| {
            let resolved = match &located[task.object as usize] {
                Some(loc) => resolve_task(loc, &task),
                None => task
                    .lookups
                    .iter()
                    .map(|&(id, c, off)| {
                        (
                            id,
                            c,
                            placeholder(&objects[task.object as usize].0, off, task.object),
                            false,
                        )
                    })
                    .collect(),
            };
            (task.object, resolved)
        })
        .collect();

    let mut symbols = Symbols {
        objects: infos,
        leaf: HashMap::default(),
        caller: HashMap::default(),
        mismatches,
        warnings,
    };
    for (object, resolved) in results {
        for (id, as_caller, frames, with_line) in resolved {
            if with_line {
                symbols.objects[object as usize].with_line += 1;
            }
            let table = if as_caller {
                &mut symbols.caller
            } else {
                &mut symbols.leaf
            };
            table.insert(id, frames);
        }
    }
    symbols.intern();
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
        table.insert(id, frames);
    }
    symbols
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

fn resolve_task(loc: &Located, task: &Task) -> Vec<Resolved> {
    let object = task.object;
    let Ok(file) = object::File::parse(&**loc.file) else {
        return task
            .lookups
            .iter()
            .map(|&(id, c, off)| (id, c, placeholder("?", off, object), false))
            .collect();
    };
    let dwarf_bytes: &Bytes = loc.debug.as_ref().map(|(_, b)| &**b).unwrap_or(&loc.file);
    let dwarf_file = object::File::parse(&**dwarf_bytes).ok();
    let context = dwarf_file.as_ref().and_then(dwarf_context_sections);
    let dwarf = context.as_ref().map(|sections| {
        let endian = if dwarf_file.as_ref().is_some_and(|f| f.is_little_endian()) {
            gimli::RunTimeEndian::Little
        } else {
            gimli::RunTimeEndian::Big
        };
        sections.borrow(|s| gimli::EndianSlice::new(s, endian))
    });
    let ctx = dwarf.and_then(|d| addr2line::Context::from_dwarf(d).ok());
    let symbols = file.symbol_map();
    let name = file_name_of(&loc.origin);
    let mut cache: HashMap<u64, (Arc<[Frame]>, bool)> = HashMap::default();
    // Many addresses share a function: demangle each raw name once.
    let mut demangled: HashMap<String, Arc<str>> = HashMap::default();
    task.lookups
        .iter()
        .map(|&(id, as_caller, offset)| {
            let (frames, with_line) = cache
                .entry(offset)
                .or_insert_with(|| {
                    let Some(vaddr) = vaddr_of(&file, offset) else {
                        return (placeholder(&name, offset, object), false);
                    };
                    let mut frames = Vec::new();
                    if let Some(ctx) = &ctx {
                        if let Ok(mut iter) = ctx.find_frames(vaddr).skip_all_loads() {
                            while let Ok(Some(f)) = iter.next() {
                                let function: Arc<str> = f
                                    .function
                                    .as_ref()
                                    .and_then(|n| n.raw_name().ok())
                                    .map(|raw| {
                                        demangled
                                            .entry(raw.to_string())
                                            .or_insert_with(|| demangle(&raw).into())
                                            .clone()
                                    })
                                    .unwrap_or_else(|| "??".into());
                                let (file, line) = match f.location {
                                    Some(l) => (l.file.map(Arc::<str>::from), l.line.unwrap_or(0)),
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
                    }
                    if let Some(last) = frames.last_mut() {
                        last.inlined = false;
                    }
                    let with_line = frames.first().is_some_and(|f| f.file.is_some());
                    // No DWARF here: the symbol table names the function at least.
                    if frames.is_empty() || frames.iter().all(|f| &*f.function == "??") {
                        frames.clear();
                        let function = symbols
                            .before(vaddr)
                            .map(|s| demangle(s.name()))
                            .unwrap_or_else(|| format!("[{name}+{offset:#x}]"));
                        frames.push(Frame {
                            function: function.into(),
                            file: None,
                            line: 0,
                            object,
                            inlined: false,
                        });
                    }
                    (Arc::from(frames), with_line)
                })
                .clone();
            (id, as_caller, frames, with_line)
        })
        .collect()
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
    map.before(vaddr).map(|s| demangle(s.name()))
}
