//! What symbolization produces and every later stage reads: frames per stack node (as a leaf and
//! as a caller), what became of each object, and what was put back or unwound. The stages in
//! this folder fill it; nothing here looks anything up.

use std::sync::{Arc, OnceLock};

use super::Unwinding;
use crate::model::Model;
use crate::objects::BuildIdMismatch;

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
    /// The walk did not see this frame; it was put back from the code (symbols/missed_frames.rs).
    pub recovered: Option<Recovered>,
}

/// How a frame the stack walk missed was put back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovered {
    /// The function left by a tail call (a jump): shown at its jump's line.
    TailCall,
    /// The function that called a leaf without a frame pointer, whose call left no frame
    /// record: shown at its call's line.
    LeafCaller,
}

/// Identity of an interned name or path: symbolization gives equal strings one allocation, so
/// views compare and hash names by this instead of by their text.
pub fn interned_id(s: &Arc<str>) -> usize {
    Arc::as_ptr(s) as *const u8 as usize
}

/// What became of one mapped object.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObjectInfo {
    pub path: String,
    pub build_id: String,
    /// Where its bytes were found, or why not.
    pub source: String,
    pub has_debug_info: bool,
    /// For the target's executable: the share of its functions that set up a frame pointer
    /// (x86-64), read from its code; near 0 for code built without frame pointers.
    pub frame_pointers: Option<f64>,
    /// Lookups in this object.
    pub addresses: usize,
    /// Of those, resolved to a file and line.
    pub with_line: usize,
}

/// Per stack node id (index 0 unused), the frames of its address, once looked up. Workers fill
/// their nodes' slots directly, so no serial merge follows the parallel lookups.
pub(crate) type NodeFrames = Vec<OnceLock<Arc<[Frame]>>>;

/// Symbolization results, by stack.
#[derive(Clone)]
pub struct Symbols {
    pub objects: Vec<ObjectInfo>,
    /// Per stack node: frames for the node as a leaf, and as a return address (caller side).
    pub(crate) leaf: NodeFrames,
    pub(crate) caller: NodeFrames,
    /// Errors that make the result wrong, not just poorer (a build-id mismatch of the target).
    pub mismatches: Vec<BuildIdMismatch>,
    pub warnings: Vec<String>,
    /// Frames put back where the walk missed them (tail calls, callers of leaves).
    pub recovered: usize,
    /// What unwinding the capture's stack copies did.
    pub unwinding: Unwinding,
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

    /// The frames of one stack node's address, innermost inline frame first: as the leaf (its
    /// address) or as a caller (a return address, looked up one byte back).
    pub fn node(&self, node: u32, as_caller: bool) -> &[Frame] {
        let table = if as_caller { &self.caller } else { &self.leaf };
        table
            .get(node as usize)
            .and_then(OnceLock::get)
            .map_or(&[], |f| &f[..])
    }

    /// The frames of stack `id`, innermost first, inline chains expanded, as owned values.
    pub fn stack(&self, model: &Model, id: u32) -> Vec<Frame> {
        self.frames(model, id).cloned().collect()
    }

    /// Symbols from a resolver function instead of object files: for synthetic captures and tests.
    /// Every node's address resolves to `resolve(address)` (innermost inline frame first), as a
    /// leaf and as a caller alike.
    pub fn from_resolver(model: &Model, resolve: impl Fn(u64) -> Vec<Frame>) -> Self {
        // Interned like the symbolizer's names: the analysis compares names by pointer.
        let mut names: rustc_hash::FxHashMap<Arc<str>, Arc<str>> = Default::default();
        let mut intern =
            |s: &Arc<str>| Arc::clone(names.entry(Arc::clone(s)).or_insert_with(|| Arc::clone(s)));
        let mut leaf = vec![OnceLock::new()];
        for &(_, address) in model.stacks.nodes() {
            let frames: Vec<Frame> = resolve(address)
                .into_iter()
                .map(|f| Frame {
                    function: intern(&f.function),
                    file: f.file.as_ref().map(&mut intern),
                    ..f
                })
                .collect();
            leaf.push(OnceLock::from(Arc::from(frames)));
        }
        Symbols {
            objects: Vec::new(),
            caller: leaf.clone(),
            leaf,
            mismatches: Vec::new(),
            warnings: Vec::new(),
            recovered: 0,
            unwinding: Unwinding::default(),
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
