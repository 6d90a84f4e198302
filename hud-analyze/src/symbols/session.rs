//! A symbolizer that lives as long as a capture is read. Objects are located when their mapping
//! appears and parsed once, when a lookup first needs them; each update looks up only the stack
//! nodes that no earlier update resolved. A finished capture is one update; a live one is many,
//! and after the first few seconds an update has only a handful of new nodes to look up.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use typed_arena::Arena;

use super::cache::{self, MissedKey, Mode, ObjectCache};
use super::dwarf::{Context, Prepared, Sections, FEW_LOOKUPS};
use super::intern::Strings;
use super::missed_frames;
use super::plan::{self, ObjectTable};
use super::schedule::{self, Interner, WorkItem};
use super::{Frame, ObjectInfo, Symbols};
use crate::model::Model;
use crate::objects::{has_dwarf, hex, locate, BuildIdMismatch, Embedded, Located, SearchPaths};
use crate::observer::{Laps, Observer, Phase};

/// Where located objects and their DWARF sections live while the symbolizer uses them: parsed
/// objects borrow both, and an arena hands out references that stay valid while more objects
/// are added (a live capture maps new libraries at any time).
#[derive(Default)]
pub struct Arenas<'a> {
    located: Arena<Located>,
    sections: Arena<Option<Sections<'a>>>,
}

/// One object: where it was found, and its parsed form once some lookup needed it.
struct Object<'a> {
    located: Option<&'a Located>,
    prepared: Option<Option<Prepared<'a>>>,
    /// How it is looked up, fixed when it first has lookups (and its cache's key with it).
    mode: Option<Mode>,
    /// Its answers kept on disk (`BUILDID-MODE`), when the object has a build-id and a cache
    /// directory is set.
    cache: Option<(String, ObjectCache)>,
}

/// Symbolization state kept between updates.
pub struct Symbolizer<'a> {
    arenas: &'a Arenas<'a>,
    search: SearchPaths,
    embedded: Vec<Embedded>,
    target_exe: String,
    table: ObjectTable,
    objects: Vec<Object<'a>>,
    strings: Interner,
    symbols: Symbols,
    /// Nodes in no known mapping, with placeholders: looked up again when mappings arrive.
    unknown: Vec<(u32, bool)>,
    /// addr2line contexts per object, kept between the small updates of a live capture.
    contexts: Vec<Option<Option<Context<'a>>>>,
    updates: usize,
    /// The last update looked up again nodes that had placeholders: stacks changed frames.
    replaced: bool,
    /// Executable ranges located since the last update (placeholders give way to them).
    new_ranges: usize,
    /// The located objects' unwind tables, for stack copies; and how many ranges it has.
    unwinder: crate::unwind::Unwinder,
    unwinder_ranges: usize,
    unwound_by_id: crate::unwind::copies::ById,
    /// When the caches were last written (a live capture's updates write at most every
    /// [`CACHE_WRITE_EVERY`]).
    cache_written: Option<std::time::Instant>,
}

/// How often a live capture's updates write new cache entries at most.
const CACHE_WRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// An update after the first with fewer lookups than this runs on the calling thread with kept
/// contexts: a live capture's steady trickle of new stack nodes. Larger ones (the first update,
/// a finished capture) are spread over the pool.
const SERIAL_LOOKUPS: usize = 4096;

impl<'a> Symbolizer<'a> {
    pub fn new(
        arenas: &'a Arenas<'a>,
        search: SearchPaths,
        embedded: Vec<Embedded>,
        target_exe: String,
    ) -> Self {
        Symbolizer {
            arenas,
            search,
            embedded,
            target_exe,
            table: ObjectTable::default(),
            objects: Vec::new(),
            strings: Interner::default(),
            symbols: Symbols {
                objects: Vec::new(),
                leaf: vec![OnceLock::new()],
                caller: vec![OnceLock::new()],
                mismatches: Vec::new(),
                warnings: Vec::new(),
                recovered: 0,
                unwinding: Default::default(),
            },
            unknown: Vec::new(),
            contexts: Vec::new(),
            updates: 0,
            replaced: false,
            new_ranges: 0,
            unwinder: Default::default(),
            unwinder_ranges: 0,
            unwound_by_id: Default::default(),
            cache_written: None,
        }
    }

    /// Adds objects embedded in the capture (they arrive before the chunks that need them).
    pub fn add_embedded(&mut self, objects: impl IntoIterator<Item = Embedded>) {
        self.embedded.extend(objects);
    }

    /// Whether the last update gave new frames to stacks that had placeholders (what was cached
    /// about those stacks is stale).
    pub fn replaced_placeholders(&self) -> bool {
        self.replaced
    }

    /// The symbols so far.
    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// The symbols, when no more updates will come.
    pub fn into_symbols(self) -> Symbols {
        self.symbols
    }

    /// Unwinds the stack copies the model holds (format 1.1) and gives their events the
    /// unwound stacks, before an [`Symbolizer::update`] looks them up. The copies are dropped.
    pub fn unwind_copies(&mut self, model: &mut Model) {
        if model.pending_copies.copies.is_empty() {
            return;
        }
        self.locate_new(model);
        for (start, end, file_offset, object) in self.table.ranges_from(self.unwinder_ranges) {
            let Some(located) = self.objects.get(object as usize).and_then(|o| o.located) else {
                continue;
            };
            let name = &self.table.objects[object as usize].0;
            self.unwinder
                .add_object(name, start..end, file_offset, &located.file);
        }
        self.unwinder_ranges = self.table.range_count();
        crate::unwind::copies::apply(
            model,
            &self.unwinder,
            &mut self.unwound_by_id,
            &mut self.symbols.unwinding,
        );
    }

    /// Locates the objects of the mappings the model gained since the last call.
    fn locate_new(&mut self, model: &Model) {
        let first_new = self.table.objects.len();
        self.new_ranges += self.table.add_mappings(model);
        for (path, build_id) in &self.table.objects[first_new..] {
            let (mut info, located, mismatch, passed_over) =
                locate_one(path, build_id, &self.search, &self.embedded);
            // Whether the target keeps frame pointers explains shallow stacks (diagnostics).
            if *path == self.target_exe {
                info.frame_pointers = located.as_ref().and_then(|l| {
                    hud_format::elf::frame_pointers::share(
                        &l.file,
                        l.debug.as_ref().map(|(_, d)| &***d),
                    )
                });
            }
            self.symbols.warnings.extend(passed_over);
            if let Some(server) = &self.search.debuginfod {
                self.symbols.warnings.extend(server.take_notes());
            }
            if let Some(e) = mismatch {
                if *path == self.target_exe {
                    self.symbols.mismatches.push(e);
                } else {
                    self.symbols.warnings.push(e.to_string());
                }
            }
            self.symbols.objects.push(info);
            self.objects.push(Object {
                located: located.map(|l| &*self.arenas.located.alloc(l)),
                prepared: None,
                mode: None,
                cache: None,
            });
        }
    }

    /// Looks up every stack node the model's events use that no earlier update looked up.
    /// Returns how many lookups it made.
    pub fn update(&mut self, model: &Model, observer: &dyn Observer) -> usize {
        let mut laps = Laps::new(observer, "symbolize.");
        self.locate_new(model);
        let new_ranges = std::mem::take(&mut self.new_ranges);
        // Placeholders of addresses outside every mapping give way when mappings arrive (a new
        // object, or a known one mapped at another address).
        self.replaced = new_ranges > 0 && !self.unknown.is_empty();
        if new_ranges > 0 {
            for (id, as_caller) in self.unknown.drain(..) {
                self.symbols.table_mut(as_caller)[id as usize].take();
            }
        }
        let nodes = model.stacks.nodes().len();
        for table in [&mut self.symbols.leaf, &mut self.symbols.caller] {
            table.resize_with(nodes + 1, OnceLock::new);
        }
        let symbols = &self.symbols;
        let mut wanted = plan::wanted(model, &self.table, |id, as_caller| {
            symbols.table(as_caller)[id as usize].get().is_some()
        });
        laps.lap("plan");
        let lookups: usize = wanted.per_object.iter().map(Vec::len).sum();
        for (info, l) in self.symbols.objects.iter_mut().zip(&wanted.per_object) {
            info.addresses += l.len();
        }
        // Nodes looked up now (from the cache or not): once resolved, the frames tail calls
        // removed above them are put back.
        let looked_up = sides(&wanted.per_object, |_| true);
        let cached = self.answer_from_caches(&mut wanted.per_object);
        laps.lap("cache");
        self.prepare(&wanted.per_object);
        laps.lap("locate");
        // What the cache did not answer, to be added to it once resolved.
        let to_cache = sides(&wanted.per_object, |object| {
            self.objects[object].cache.is_some()
        });
        let prepared: Vec<Option<&Prepared<'a>>> = self
            .objects
            .iter()
            .map(|o| o.prepared.as_ref().and_then(Option::as_ref))
            .collect();
        let items = schedule::work_items(&prepared, wanted.per_object);
        laps.lap("units");
        observer.phase(Phase::Symbolizing, Some(lookups as u64));
        let with_line = if self.updates > 0 && lookups < SERIAL_LOOKUPS {
            schedule::resolve_serial(
                &prepared,
                &self.table.objects,
                &items,
                &self.symbols,
                &self.strings,
                &mut self.contexts,
            )
        } else {
            // An object with few lookups (a system library) is resolved on this thread with a
            // kept context: making an addr2line context parses every unit's header, 1,200 of
            // them for libc's debug file, and one per worker cost more than its lookups.
            // (The target itself stays on every thread: its lookups parse its own units.)
            let mut per_object = vec![0usize; self.table.objects.len()];
            for item in &items {
                per_object[item.object as usize] += item.lookups.len();
            }
            let target_exe = &self.target_exe;
            let objects = &self.table.objects;
            let (few, many): (Vec<WorkItem>, Vec<WorkItem>) = items.into_iter().partition(|item| {
                let object = item.object as usize;
                per_object[object] < FEW_LOOKUPS && objects[object].0 != *target_exe
            });
            let serial = schedule::resolve_serial(
                &prepared,
                &self.table.objects,
                &few,
                &self.symbols,
                &self.strings,
                &mut self.contexts,
            );
            let parallel = schedule::resolve(
                &prepared,
                &self.table.objects,
                &many,
                &self.symbols,
                &self.strings,
                observer,
            );
            serial.iter().zip(parallel).map(|(a, b)| a + b).collect()
        };
        self.updates += 1;
        for ((info, with_line), cached) in
            self.symbols.objects.iter_mut().zip(with_line).zip(cached)
        {
            info.with_line += with_line + cached;
        }
        laps.lap("resolve");
        // Into the caches before the missed frames join the nodes' own.
        for &(node, as_caller, object, offset) in &to_cache {
            let Some(frames) = self.symbols.table(as_caller)[node as usize].get() else {
                continue;
            };
            if let Some((_, cache)) = &mut self.objects[object as usize].cache {
                let line = frames.first().is_some_and(|f| f.file.is_some());
                cache.add_lookup(offset, frames, line);
            }
        }
        self.restore_missed_frames(model, &looked_up);
        laps.lap("missed frames");
        self.write_caches();
        let node_addresses = model.stacks.nodes();
        for &(id, as_caller) in &wanted.unknown {
            let address = node_addresses[id as usize - 1].1;
            let frames: Arc<[Frame]> = Arc::new([Frame {
                function: format!("[unknown {address:#x}]").into(),
                file: None,
                line: 0,
                object: u32::MAX,
                inlined: false,
                recovered: None,
            }]);
            let _ = self.symbols.table(as_caller)[id as usize].set(frames);
        }
        self.unknown.extend(wanted.unknown.iter().copied());
        lookups + wanted.unknown.len()
    }

    /// Parses, in parallel, the objects that lookups need for the first time: headers, symbol
    /// table, DWARF (sections first: the parsed objects borrow them).
    fn prepare(&mut self, per_object: &[Vec<plan::Lookup>]) {
        let needed: Vec<(usize, usize)> = (0..self.objects.len())
            .filter(|&i| !per_object[i].is_empty())
            .map(|i| (i, per_object[i].len()))
            .collect();
        self.prepare_objects(&needed);
    }

    /// Parses the objects of `wanted` (object, lookups to make in it) not parsed yet, in the
    /// mode fixed for each.
    fn prepare_objects(&mut self, wanted: &[(usize, usize)]) {
        let needed: Vec<(usize, usize)> = wanted
            .iter()
            .copied()
            .filter(|&(i, _)| self.objects[i].prepared.is_none())
            .collect();
        if needed.is_empty() {
            return;
        }
        let sections: Vec<Option<Sections<'a>>> = needed
            .par_iter()
            .map(|&(i, _)| Sections::load(self.objects[i].located?))
            .collect();
        let sections: Vec<&'a Option<Sections<'a>>> = sections
            .into_iter()
            .map(|s| &*self.arenas.sections.alloc(s))
            .collect();
        let objects = &self.objects;
        let prepared: Vec<Option<Prepared<'a>>> = needed
            .par_iter()
            .zip(sections)
            .map(|(&(i, lookups), s)| {
                // Every object is given its mode with its first lookups; one parsed for its code
                // alone before that is looked up in full.
                let light = objects[i].mode.is_some_and(|m| m.light);
                Prepared::new(objects[i].located?, s.as_ref(), lookups, light)
            })
            .collect();
        for ((i, _), p) in needed.into_iter().zip(prepared) {
            self.objects[i].prepared = Some(p);
        }
    }
}

impl<'a> Symbolizer<'a> {
    /// Fixes the mode of each object that has lookups for the first time (and opens its cache),
    /// then answers from the caches what they hold: those lookups leave `per_object`. Returns,
    /// per object, how many answers from a cache have a line.
    fn answer_from_caches(&mut self, per_object: &mut [Vec<plan::Lookup>]) -> Vec<usize> {
        let mut with_line = vec![0usize; per_object.len()];
        let mut strings = Strings::new(&self.strings);
        for (i, lookups) in per_object.iter_mut().enumerate() {
            if lookups.is_empty() {
                continue;
            }
            let object = &mut self.objects[i];
            if object.mode.is_none() {
                let (path, build_id) = &self.table.objects[i];
                // Not the target: its inline chains name the user's code. A library with a few
                // lookups is looked up lightly (dwarf.rs).
                let light = match &object.prepared {
                    // Parsed already (for its code, to put back missed frames): as it was.
                    Some(Some(p)) => p.is_light(),
                    _ => lookups.len() < FEW_LOOKUPS && *path != self.target_exe,
                };
                let dwarf = match object.located {
                    Some(l) if l.debug.is_some() => 'd',
                    Some(l) if has_dwarf(&l.file) => 'o',
                    _ => 'n',
                };
                let mode = Mode { dwarf, light };
                object.mode = Some(mode);
                object.cache = match (&self.search.symbol_cache, object.located) {
                    (Some(dir), Some(_)) => cache::object_key(build_id, mode)
                        .map(|key| (key.clone(), ObjectCache::open(dir, &key))),
                    _ => None,
                };
            }
            let Some((_, cache)) = &object.cache else {
                continue;
            };
            let slots = &self.symbols;
            lookups.retain(|l| match cache.lookup(l.offset, i as u32, &mut strings) {
                Some((frames, line)) => {
                    with_line[i] += usize::from(line);
                    let _ = slots.table(l.as_caller)[l.node as usize].set(frames);
                    false
                }
                None => true,
            });
        }
        with_line
    }

    /// Writes the caches that gained entries: after each update of a finished capture, at most
    /// every [`CACHE_WRITE_EVERY`] for a live one.
    fn write_caches(&mut self) {
        let Some(dir) = &self.search.symbol_cache else {
            return;
        };
        if self
            .cache_written
            .is_some_and(|t| t.elapsed() < CACHE_WRITE_EVERY)
        {
            return;
        }
        let mut wrote = false;
        for (_, cache) in self.objects.iter_mut().filter_map(|o| o.cache.as_mut()) {
            if cache.dirty() {
                cache.write(dir);
                wrote = true;
            }
        }
        if wrote {
            self.cache_written = Some(std::time::Instant::now());
        }
    }

    /// Puts back, above each node side in `looked_up` (node, as caller, object, file offset),
    /// the functions the walk missed between it and its caller (symbols/missed_frames.rs): left by
    /// tail calls, or the caller of a leaf without a frame pointer. They become frames of that
    /// side. Only sides looked up in this update: others have theirs already.
    fn restore_missed_frames(&mut self, model: &Model, looked_up: &[(u32, bool, u32, u64)]) {
        let nodes = model.stacks.nodes();
        self.contexts.resize_with(self.objects.len(), || None);
        // Each node side: its caller's object and the call's offset, and the cache's key.
        let calls: Vec<Option<(u32, u64, Option<MissedKey>)>> = looked_up
            .iter()
            .map(|&(node, as_caller, object, callee_offset)| {
                let &(parent, _) = nodes.get(node as usize - 1)?;
                if parent == 0 || parent >= node {
                    return None;
                }
                let return_address = nodes[parent as usize - 1].1;
                // The call instruction ends at the return address: look it up one byte back.
                let (caller_object, offset) = self.table.locate(return_address.wrapping_sub(1))?;
                let key_of = |i: u32| self.objects[i as usize].cache.as_ref().map(|c| &c.0);
                let key = key_of(caller_object)
                    .zip(key_of(object))
                    .map(|(_, callee)| MissedKey {
                        offset,
                        callee: callee.clone(),
                        callee_offset,
                        leaf: !as_caller,
                    });
                Some((caller_object, offset, key))
            })
            .collect();
        // What the caches do not hold is searched in the objects' code: parse those now.
        let mut needed: Vec<(usize, usize)> = Vec::new();
        for (call, &(_, _, object, _)) in calls.iter().zip(looked_up) {
            let Some((caller_object, _, key)) = call else {
                continue;
            };
            let hit = key.as_ref().is_some_and(|key| {
                self.objects[*caller_object as usize]
                    .cache
                    .as_ref()
                    .is_some_and(|(_, c)| c.has_missed(key))
            });
            if !hit {
                // Code and symbols only: no lookups of their own to plan the DWARF for.
                needed.extend([(*caller_object as usize, 0), (object as usize, 0)]);
            }
        }
        needed.sort_unstable();
        needed.dedup();
        self.prepare_objects(&needed);
        let mut strings = Strings::new(&self.strings);
        // Many nodes share a call site and a callee function (every sample in one loop): one
        // search each.
        type Key = (u32, u64, u32, u64, bool);
        let mut searched: rustc_hash::FxHashMap<Key, Vec<missed_frames::Hop>> = Default::default();
        let mut scanned = missed_frames::Scanned::default();
        for (&(node, as_caller, object, callee_offset), call) in looked_up.iter().zip(calls) {
            let Some((caller_object, offset, key)) = call else {
                continue;
            };
            let cache = &self.objects[caller_object as usize].cache;
            if let Some((restored, hops)) = key.as_ref().and_then(|key| {
                cache
                    .as_ref()
                    .and_then(|(_, c)| c.missed(key, caller_object, &mut strings))
            }) {
                self.symbols.recovered += hops as usize;
                join(&mut self.symbols, node, as_caller, &restored);
                continue;
            }
            let prepared_of = |i: u32| {
                self.objects
                    .get(i as usize)
                    .and_then(|o| o.prepared.as_ref())
                    .and_then(Option::as_ref)
            };
            let remember = |objects: &mut Vec<Object<'a>>, restored: &[Frame], hops: usize| {
                if let (Some(key), Some((_, cache))) =
                    (key.clone(), objects[caller_object as usize].cache.as_mut())
                {
                    cache.add_missed(key, restored, hops as u32);
                }
            };
            let (Some(callee), Some(caller)) = (prepared_of(object), prepared_of(caller_object))
            else {
                remember(&mut self.objects, &[], 0);
                continue;
            };
            let Some((callee_start, _, _)) = callee
                .vaddr(callee_offset)
                .and_then(|vaddr| callee.function_at(vaddr))
            else {
                remember(&mut self.objects, &[], 0);
                continue;
            };
            let goal = if caller_object == object {
                missed_frames::Goal::Here(callee_start)
            } else {
                missed_frames::Goal::Elsewhere {
                    start: callee_start,
                    object: callee,
                }
            };
            let key = (caller_object, offset, object, callee_start, !as_caller);
            let hops = searched
                .entry(key)
                .or_insert_with(|| {
                    missed_frames::left_between(
                        caller,
                        offset.wrapping_add(1),
                        goal,
                        !as_caller,
                        &mut scanned,
                    )
                })
                .clone();
            if hops.is_empty() {
                remember(&mut self.objects, &[], 0);
                continue;
            }
            let (object, prepared) = (caller_object, caller);
            let ctx = self.contexts[object as usize].get_or_insert_with(|| prepared.context());
            // Innermost first: the last function of the chain went to the callee.
            let mut restored: Vec<Frame> = Vec::new();
            for hop in hops.iter().rev() {
                let Some(frames) = prepared.frames_at(ctx.as_ref(), hop.at, object, &mut strings)
                else {
                    continue;
                };
                let mut frames = frames.to_vec();
                if let Some(function) = frames.last_mut() {
                    function.recovered = Some(hop.kind);
                }
                restored.extend(frames);
            }
            self.symbols.recovered += hops.len();
            join(&mut self.symbols, node, as_caller, &restored);
            remember(&mut self.objects, &restored, hops.len());
        }
    }
}

/// The node sides of the lookups of the objects `keep` takes: (node, as caller, object, file
/// offset).
fn sides(
    per_object: &[Vec<plan::Lookup>],
    keep: impl Fn(usize) -> bool,
) -> Vec<(u32, bool, u32, u64)> {
    per_object
        .iter()
        .enumerate()
        .filter(|&(object, _)| keep(object))
        .flat_map(|(object, lookups)| {
            lookups
                .iter()
                .map(move |l| (l.node, l.as_caller, object as u32, l.offset))
        })
        .collect()
}

/// The frames put back above a node side, after its own.
fn join(symbols: &mut Symbols, node: u32, as_caller: bool, restored: &[Frame]) {
    if restored.is_empty() {
        return;
    }
    let slot = &mut symbols.table_mut(as_caller)[node as usize];
    if let Some(own) = slot.take() {
        let joined: Arc<[Frame]> = own.iter().chain(restored.iter()).cloned().collect();
        let _ = slot.set(joined);
    }
}

impl Symbols {
    fn table(&self, as_caller: bool) -> &super::NodeFrames {
        if as_caller {
            &self.caller
        } else {
            &self.leaf
        }
    }

    fn table_mut(&mut self, as_caller: bool) -> &mut super::NodeFrames {
        if as_caller {
            &mut self.caller
        } else {
            &mut self.leaf
        }
    }
}

/// What became of one object: its description for the report, the file found (if any), a
/// build-id mismatch (an error for the target's executable, a warning for any other object), and
/// a warning when a `--binary` was passed over for the right build found elsewhere.
fn locate_one(
    path: &str,
    build_id: &[u8],
    search: &SearchPaths,
    embedded: &[Embedded],
) -> (
    ObjectInfo,
    Option<Located>,
    Option<BuildIdMismatch>,
    Option<String>,
) {
    let found = locate(path, build_id, search, embedded);
    let passed_over = match &found {
        Ok(Some(l)) => l.passed_over.as_ref().map(|m| {
            format!(
                "--binary {} is another build ({}) than the capture's {} ({}): using {} instead",
                m.found_path, m.found, m.recorded, m.expected, l.origin
            )
        }),
        _ => None,
    };
    let source = match &found {
        Ok(Some(l)) => l.origin.to_string(),
        Ok(None) => "not found".into(),
        Err(e) => e.to_string(),
    };
    let (loc, mismatch) = match found {
        Ok(l) => (l, None),
        Err(e) => (None, Some(e)),
    };
    let has_debug_info = loc
        .as_ref()
        .is_some_and(|l| l.debug.is_some() || has_dwarf(&l.file));
    let info = ObjectInfo {
        path: path.to_owned(),
        build_id: hex(build_id),
        source,
        has_debug_info,
        frame_pointers: None,
        addresses: 0,
        with_line: 0,
    };
    (info, loc, mismatch, passed_over)
}
