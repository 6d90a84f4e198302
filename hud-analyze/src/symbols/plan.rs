//! Which addresses to look up in which object: every stack node an event ends at (as a leaf) and
//! every ancestor of one (as a caller, at address − 1, so the call's line is found), unless an
//! earlier update already looked it up.

use crate::model::Model;

/// An executable mapping, resolved to an object index.
struct MapRange {
    start: u64,
    end: u64,
    file_offset: u64,
    object: u32,
}

/// One address to look up: stack node, leaf or caller side, file offset in the object.
#[derive(Clone, Copy)]
pub(super) struct Lookup {
    pub(super) node: u32,
    pub(super) as_caller: bool,
    pub(super) offset: u64,
}

/// The target's executable objects as their mappings appear: one per distinct (path, build-id),
/// and the address ranges that map them.
#[derive(Default)]
pub(super) struct ObjectTable {
    pub(super) objects: Vec<(String, Vec<u8>)>,
    ranges: Vec<MapRange>,
    mappings_seen: usize,
}

impl ObjectTable {
    /// Takes in the mappings the model gained since the last call (new objects are pushed last);
    /// returns how many executable ranges are new.
    pub(super) fn add_mappings(&mut self, model: &Model) -> usize {
        let before = self.ranges.len();
        let fresh = model.mappings.get(self.mappings_seen..).unwrap_or_default();
        self.mappings_seen = model.mappings.len();
        // A range that is empty, or whose file offsets run past u64, is damage or craft: no
        // address can be looked up in it.
        let sane = |m: &&hud_format::types::Mapping| {
            m.start < m.end && m.file_offset.checked_add(m.end - m.start).is_some()
        };
        for m in fresh.iter().filter(|m| m.perms.contains('x')).filter(sane) {
            let object = match self
                .objects
                .iter()
                .position(|(p, b)| *p == m.path && *b == m.build_id)
            {
                Some(i) => i,
                None => {
                    self.objects.push((m.path.clone(), m.build_id.clone()));
                    self.objects.len() - 1
                }
            } as u32;
            self.ranges.push(MapRange {
                start: m.start,
                end: m.end,
                file_offset: m.file_offset,
                object,
            });
        }
        self.ranges.len() - before
    }

    /// The executable ranges from the `first`th on: (start, end, file offset, object).
    pub(super) fn ranges_from(
        &self,
        first: usize,
    ) -> impl Iterator<Item = (u64, u64, u64, u32)> + '_ {
        self.ranges
            .get(first..)
            .unwrap_or_default()
            .iter()
            .map(|r| (r.start, r.end, r.file_offset, r.object))
    }

    /// How many executable ranges are known.
    pub(super) fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// The object and file offset of an address.
    pub(super) fn locate(&self, addr: u64) -> Option<(u32, u64)> {
        self.find(addr)
            .map(|r| (r.object, addr - r.start + r.file_offset))
    }

    /// The mapping of an address; later mappings win (a range remapped by dlopen/dlclose).
    fn find(&self, addr: u64) -> Option<&MapRange> {
        self.ranges
            .iter()
            .rev()
            .find(|r| r.start <= addr && addr < r.end)
    }
}

/// The lookups of one update, per object, and the nodes in no known mapping.
pub(super) struct Wanted {
    pub(super) per_object: Vec<Vec<Lookup>>,
    pub(super) unknown: Vec<(u32, bool)>,
}

/// Every node some event's stack ends at (as a leaf) and every ancestor of one (as a caller),
/// except those `done(node, as_caller)` says were looked up before.
pub(super) fn wanted(
    model: &Model,
    table: &ObjectTable,
    done: impl Fn(u32, bool) -> bool + Sync,
) -> Wanted {
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
    let mut per_object: Vec<Vec<Lookup>> = vec![Vec::new(); table.objects.len()];
    let mut unknown: Vec<(u32, bool)> = Vec::new();
    let mut last: Option<&MapRange> = None;
    for id in 1..=nodes.len() as u32 {
        let address = nodes[id as usize - 1].1;
        for (as_caller, wanted) in [(false, leaf[id as usize]), (true, caller[id as usize])] {
            if !wanted || done(id, as_caller) {
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
                _ => table.find(probe),
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
    Wanted {
        per_object,
        unknown,
    }
}
