//! Cutting the lookups into work items and running them on every pool thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;

use super::dwarf::{placeholder, Context, Prepared, NO_UNIT};
use super::intern::Strings;
use super::plan::Lookup;
use super::{Frame, Symbols};
use crate::observer::Observer;

/// Work for one worker at a time: the lookups of one object that fall in one DWARF compilation
/// unit, sorted by offset. A unit's line program and functions are parsed lazily by the first
/// lookup in it; keeping a unit's lookups together means each unit is parsed once, by one worker.
pub(super) struct WorkItem {
    pub(super) object: u32,
    pub(super) lookups: Vec<Lookup>,
}

/// Every name and path made so far, shared by the workers and kept between updates: equal names
/// are one allocation for the whole session.
pub(super) type Interner = Mutex<rustc_hash::FxHashSet<Arc<str>>>;

/// Lookups outside any unit (no DWARF) are cheap symbol-table searches: cut them in items of this
/// many so they still spread over the workers.
const LOOKUPS_PER_ITEM_WITHOUT_DWARF: usize = 2048;

/// A unit is cut in parts only past this many lookups: below, parsing it twice costs more than the
/// lookups a second core would take over.
const MIN_LOOKUPS_PER_SPLIT: usize = 4096;

/// Cuts each object's lookups into work items, one per compilation unit, biggest first. A unit
/// holding more than its share of the work is cut further: each part then parses the unit again,
/// but no core waits alone on one unit at the end.
pub(super) fn work_items(
    prepared: &[Option<&Prepared<'_>>],
    per_object: Vec<Vec<Lookup>>,
) -> Vec<WorkItem> {
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
        let prepared = prepared[object as usize];
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
pub(super) fn resolve(
    prepared: &[Option<&Prepared<'_>>],
    objects: &[(String, Vec<u8>)],
    items: &[WorkItem],
    slots: &Symbols,
    shared: &Interner,
    observer: &dyn Observer,
) -> Vec<usize> {
    let next = AtomicUsize::new(0);
    let per_thread: Vec<Vec<usize>> = rayon::broadcast(|_| {
        let mut contexts: HashMap<u32, Option<Context<'_>>> = HashMap::default();
        let mut strings = Strings::new(shared);
        let mut with_line = vec![0usize; objects.len()];
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            with_line[item.object as usize] += match &prepared[item.object as usize] {
                Some(p) => {
                    let ctx = contexts.entry(item.object).or_insert_with(|| p.context());
                    resolve_item(p, ctx.as_ref(), item, &mut strings, slots)
                }
                None => unresolved(&objects[item.object as usize].0, item, slots),
            };
            observer.advance(item.lookups.len() as u64);
        }
        with_line
    });
    (0..objects.len())
        .map(|o| per_thread.iter().map(|counts| counts[o]).sum())
        .collect()
}

/// Resolves the items on this thread, with contexts kept by the caller between calls: a live
/// capture's updates bring a few new addresses each, in units an earlier update often parsed, and
/// a kept context has those units parsed already (a fresh context per update parsed them again:
/// a quarter of a live viewer's CPU). `contexts` grows to one slot per object.
pub(super) fn resolve_serial<'a>(
    prepared: &[Option<&Prepared<'a>>],
    objects: &[(String, Vec<u8>)],
    items: &[WorkItem],
    slots: &Symbols,
    shared: &Interner,
    contexts: &mut Vec<Option<Option<Context<'a>>>>,
) -> Vec<usize> {
    contexts.resize_with(objects.len(), || None);
    let mut strings = Strings::new(shared);
    let mut with_line = vec![0usize; objects.len()];
    for item in items {
        let object = item.object as usize;
        with_line[object] += match prepared[object] {
            Some(p) => {
                let ctx = contexts[object].get_or_insert_with(|| p.context());
                resolve_item(p, ctx.as_ref(), item, &mut strings, slots)
            }
            None => unresolved(&objects[object].0, item, slots),
        };
    }
    with_line
}

/// Resolves one item into its slots; returns how many lookups have a file and line.
fn resolve_item(
    prepared: &Prepared<'_>,
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
            Some((offset, frames, line)) if *offset == lookup.offset => (Arc::clone(frames), *line),
            _ => {
                let (frames, line) = prepared.lookup(ctx, lookup.offset, item.object, strings);
                previous = Some((lookup.offset, Arc::clone(&frames), line));
                (frames, line)
            }
        };
        with_line += usize::from(line);
        fill(slots, lookup, frames);
    }
    with_line
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
