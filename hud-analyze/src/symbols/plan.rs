//! Which addresses to look up in which object: every stack node an event ends at (as a leaf) and
//! every ancestor of one (as a caller, at address − 1, so the call's line is found).

use crate::model::Model;

/// An executable mapping, resolved to an object index.
pub(super) struct MapRange {
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

/// Distinct executable objects, the lookups each needs, and nodes in no known mapping.
pub(super) type Plan = (Vec<(String, Vec<u8>)>, Vec<Vec<Lookup>>, Vec<(u32, bool)>);

/// Which addresses to look up where: every node some event's stack ends at (as a leaf) and every
/// ancestor of one (as a caller, at address − 1).
pub(super) fn plan(model: &Model) -> Plan {
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
