//! The stack prefix tree, chunk by chunk: ids as the capture numbers them, kept densely.
//!
//! Each chunk defines the stack nodes first seen in it, with ids that continue the previous
//! chunk's. A chunk that is missing (cut, damaged, skipped) leaves a gap in the ids. The ids are
//! the capture's, so nothing here allocates by what an id says: a gap is a new segment, and the
//! nodes after it are stored right after the nodes before it. A crafted `first_id` of 4 billion
//! costs one segment, not 4 billion empty nodes.

use crate::types::ArchivedChunk;

/// Every stack node seen so far, to turn stack ids into frames. Feed it chunks in capture order.
///
/// Nodes are numbered densely from 1 ("local" ids, what [`Stacks::nodes`] and
/// [`Stacks::frames`] use); [`Stacks::local`] maps a capture's id to its local id. Without a gap
/// the two are the same.
///
/// A reader may add stacks of its own ([`Stacks::intern`]: stacks unwound from stack copies);
/// they take local ids after the nodes read so far and no capture id maps to them.
#[derive(Clone, Debug, Default)]
pub struct Stacks {
    /// Index = local id − 1: (local parent id, address).
    nodes: Vec<(u32, u64)>,
    /// Runs of consecutive capture ids: (first capture id, its local id, node count), in order.
    segments: Vec<(u32, u32, u32)>,
    /// The capture id the next chunk's table should start at.
    next_id: u32,
    /// Nodes added by [`Stacks::intern`]: (local parent, address) → local id.
    interned: std::collections::HashMap<(u32, u64), u32>,
}

impl Stacks {
    /// Adds the nodes a chunk defines. Its ids must come after every id seen before (a repeated
    /// or reordered chunk would redefine them: refused with the reason, and nothing is added); a
    /// gap (a lost chunk) is allowed, and the nodes of the gap are unknown: stacks through them
    /// end there, with fewer frames, never wrong ones.
    pub fn add(&mut self, chunk: &ArchivedChunk) -> Result<(), String> {
        let table = &chunk.stacks;
        let count = table.parent.len();
        if count == 0 {
            return Ok(());
        }
        let first = table.first_id.to_native();
        let next = self.next_id.max(1);
        if first < next {
            return Err(format!(
                "its stack ids start at {first}, but ids up to {} were already defined",
                next - 1
            ));
        }
        let end = u32::try_from(count)
            .ok()
            .and_then(|n| first.checked_add(n))
            .ok_or("its stack ids run past the largest id")?;
        let local_first = self.local_count() + 1;
        // The last run goes on when this chunk continues its ids and no interned node came
        // after it.
        match self.segments.last_mut() {
            Some((run_first, run_local, run_len))
                if first == next && *run_local + *run_len == local_first =>
            {
                debug_assert!(run_first.checked_add(*run_len) == Some(first));
                *run_len += count as u32;
            }
            _ => self.segments.push((first, local_first, count as u32)),
        }
        self.nodes.reserve(count);
        for (parent, address) in table.parent.iter().zip(table.address.iter()) {
            let parent = self.local(parent.to_native());
            self.nodes.push((parent, address.to_native()));
        }
        self.next_id = end;
        Ok(())
    }

    fn local_count(&self) -> u32 {
        // At most u32::MAX nodes: each came with a distinct u32 capture id.
        self.nodes.len() as u32
    }

    /// The local id of a capture's stack id, or 0 when it is unknown (never defined, or defined
    /// in a chunk that is missing).
    pub fn local(&self, id: u32) -> u32 {
        if id == 0 {
            return 0;
        }
        let i = self.segments.partition_point(|&(first, _, _)| first <= id);
        let Some(&(first, local_first, len)) = i.checked_sub(1).and_then(|i| self.segments.get(i))
        else {
            return 0;
        };
        if id - first < len {
            local_first + (id - first)
        } else {
            0
        }
    }

    /// The local id of a stack of this reader's own (`frames` innermost first, as a stack
    /// walk gives them), adding the nodes it needs. Interned stacks share nodes with each
    /// other, not with the capture's.
    pub fn intern(&mut self, frames: &[u64]) -> u32 {
        let mut parent = 0u32;
        for &address in frames.iter().rev() {
            let next = self.local_count() + 1;
            parent = *self.interned.entry((parent, address)).or_insert_with(|| {
                self.nodes.push((parent, address));
                next
            });
        }
        parent
    }

    /// Every node, index = local id − 1: (local parent id, address).
    pub fn nodes(&self) -> &[(u32, u64)] {
        &self.nodes
    }

    /// Number of nodes known.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The frames of the stack with local id `id`, innermost first.
    pub fn frames(&self, id: u32) -> StackFrames<'_> {
        StackFrames {
            stacks: self,
            node: id,
        }
    }
}

/// Iterator over a stack's addresses, innermost first.
pub struct StackFrames<'a> {
    stacks: &'a Stacks,
    node: u32,
}

impl Iterator for StackFrames<'_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let (parent, address) = *self
            .stacks
            .nodes
            .get((self.node as usize).checked_sub(1)?)?;
        // Parents are added before their children, so this always ends; guard anyway.
        self.node = if parent < self.node { parent } else { 0 };
        Some(address)
    }
}
