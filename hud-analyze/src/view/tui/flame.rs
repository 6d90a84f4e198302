//! The cockpit's flame graph (`F`): the window's stacks as an icicle (the root on top), weighed
//! by CPU samples or by time blocked, for all threads, one runtime thread, or one blocker's
//! episodes. The runtime's plumbing is folded into one frame per role as in the folded and SVG
//! exports ([`crate::view::export::folded::kept_frames`]), whose weights stay the source of
//! truth. A tree is built once per (snapshot, scope, weight) and kept by [`FlameCache`].

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use crate::analysis::frames;
use crate::analysis::profile::{stack_weights, Weight};
use crate::analysis::{Analysis, Window};
use crate::model::Role;
use crate::symbols::interned_id;
use crate::view::export::folded::{kept_frames, role_frame, PlumbingCache};

/// Whose stacks a flame graph shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    /// One thread (a runtime thread, chosen with `w`).
    Thread(u32),
    /// The episodes of the blocker with this group id: its off-CPU stacks weighed by time
    /// blocked, its long polls' samples by the sampling period.
    Blocker(u32),
}

/// One frame of the tree: a function at a depth under its callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: Arc<str>,
    /// Samples (CPU) or nanoseconds (blocked, a blocker's episodes) under it.
    pub value: u64,
    pub parent: u32,
    /// In drawing order (by name, as flame graphs merge).
    pub children: Vec<u32>,
    pub depth: u16,
    /// The program's own code (drawn apart from libraries and the runtime).
    pub user: bool,
    /// A role frame standing for the folded plumbing.
    pub folded: bool,
}

/// A flame graph's tree; node 0 is the root ("all").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlameTree {
    pub nodes: Vec<Node>,
    pub scope: Scope,
    pub weight: Weight,
}

impl FlameTree {
    /// The tree of `scope`'s stacks in `window`, weighed by `weight` (a blocker's is always its
    /// time).
    pub fn build(a: &Analysis, window: Window, scope: Scope, weight: Weight) -> FlameTree {
        let m = &a.model;
        let (from, to) = window.clip(m);
        // (role, stack) → weight: threads of one role share their folded frame.
        let mut by_stack: HashMap<(Role, u32), u64> = HashMap::default();
        let role = |tid: u32| m.threads.get(&tid).map_or(Role::Other, |t| t.role);
        match scope {
            Scope::All | Scope::Thread(_) => {
                let only = match scope {
                    Scope::Thread(tid) => Some(vec![tid]),
                    _ => None,
                };
                for sw in stack_weights(m, weight, only.as_deref(), from, to) {
                    *by_stack.entry((role(sw.tid), sw.stack)).or_default() += sw.weight;
                }
            }
            Scope::Blocker(group) => {
                let period = m.sample_period().max(1);
                for e in a
                    .detection
                    .episodes
                    .iter()
                    .filter(|e| e.group == group && e.start < to && e.end() > from)
                {
                    if e.on_cpu() {
                        for s in m.samples_in(e.tid, e.start, e.end()) {
                            *by_stack.entry((role(e.tid), s.stack)).or_default() += period;
                        }
                    } else {
                        *by_stack.entry((role(e.tid), e.stack)).or_default() += e.duration;
                    }
                }
            }
        }
        let mut tree = FlameTree {
            nodes: vec![Node {
                name: Arc::from("all"),
                value: 0,
                parent: 0,
                children: Vec::new(),
                depth: 0,
                user: false,
                folded: false,
            }],
            scope,
            weight,
        };
        let mut index: HashMap<(u32, usize), u32> = HashMap::default();
        let mut cache = PlumbingCache::default();
        let roles: HashMap<Role, Arc<str>> = [
            Role::Worker,
            Role::CurrentThread,
            Role::BlockingPool,
            Role::Other,
        ]
        .into_iter()
        .map(|r| (r, Arc::from(role_frame(r))))
        .collect();
        let mut stacks: Vec<((Role, u32), u64)> = by_stack.into_iter().collect();
        stacks.sort_unstable_by_key(|((r, s), _)| (*s, *r as u8));
        for ((role, stack), value) in stacks {
            if value == 0 {
                continue;
            }
            let all: Vec<&crate::symbols::Frame> = a.symbols.frames(m, stack).collect();
            let kept = kept_frames(&all, &mut cache);
            tree.nodes[0].value += value;
            let mut at = 0u32;
            if kept.is_some() {
                let name = &roles[&role];
                at = tree.child(&mut index, at, name, false, true);
                tree.nodes[at as usize].value += value;
            }
            for f in all[..kept.unwrap_or(all.len())].iter().rev() {
                at = tree.child(&mut index, at, &f.function, frames::is_user(f), false);
                tree.nodes[at as usize].value += value;
            }
        }
        for i in 0..tree.nodes.len() {
            let mut children = std::mem::take(&mut tree.nodes[i].children);
            children.sort_by(|x, y| {
                tree.nodes[*x as usize]
                    .name
                    .cmp(&tree.nodes[*y as usize].name)
            });
            tree.nodes[i].children = children;
        }
        tree
    }

    /// The child of `parent` named `name`, made on first use.
    fn child(
        &mut self,
        index: &mut HashMap<(u32, usize), u32>,
        parent: u32,
        name: &Arc<str>,
        user: bool,
        folded: bool,
    ) -> u32 {
        let key = (parent, interned_id(name));
        if let Some(&i) = index.get(&key) {
            return i;
        }
        let i = self.nodes.len() as u32;
        let depth = self.nodes[parent as usize].depth + 1;
        self.nodes.push(Node {
            name: Arc::clone(name),
            value: 0,
            parent,
            children: Vec::new(),
            depth,
            user,
            folded,
        });
        self.nodes[parent as usize].children.push(i);
        index.insert(key, i);
        i
    }

    pub fn total(&self) -> u64 {
        self.nodes[0].value
    }

    /// Whether node `i` matches a search (lower-case text in its name).
    pub fn matches(&self, i: u32, filter: &str) -> bool {
        !filter.is_empty() && self.nodes[i as usize].name.to_lowercase().contains(filter)
    }

    /// The share of the total under frames that match `filter` (a match inside another match
    /// counted once), as flame graphs report a search.
    pub fn matched_share(&self, filter: &str) -> f64 {
        if filter.is_empty() || self.total() == 0 {
            return 0.0;
        }
        let mut matched = 0u64;
        let mut stack = vec![0u32];
        while let Some(i) = stack.pop() {
            if i != 0 && self.matches(i, filter) {
                matched += self.nodes[i as usize].value;
                continue;
            }
            stack.extend(&self.nodes[i as usize].children);
        }
        matched as f64 / self.total() as f64
    }

    /// The child of `i` with the most weight.
    pub fn heaviest_child(&self, i: u32) -> Option<u32> {
        self.nodes[i as usize]
            .children
            .iter()
            .copied()
            .max_by_key(|c| (self.nodes[*c as usize].value, u32::MAX - c))
    }

    /// The sibling of `i` `by` places along (drawing order), if any.
    pub fn sibling(&self, i: u32, by: i32) -> Option<u32> {
        if i == 0 {
            return None;
        }
        let siblings = &self.nodes[self.nodes[i as usize].parent as usize].children;
        let at = siblings.iter().position(|c| *c == i)? as i64 + i64::from(by);
        siblings.get(usize::try_from(at).ok()?).copied()
    }

    /// `i`, and its callers up to the root, outermost first (the zoom's breadcrumb).
    pub fn path(&self, mut i: u32) -> Vec<u32> {
        let mut path = vec![i];
        while i != 0 {
            i = self.nodes[i as usize].parent;
            path.push(i);
        }
        path.reverse();
        path
    }

    /// Whether `i` is `ancestor` or under it.
    pub fn is_under(&self, mut i: u32, ancestor: u32) -> bool {
        loop {
            if i == ancestor {
                return true;
            }
            if i == 0 {
                return false;
            }
            i = self.nodes[i as usize].parent;
        }
    }

    /// What a value reads as: samples, or time.
    pub fn format_value(&self, v: u64) -> String {
        match (self.scope, self.weight) {
            (Scope::Blocker(_), _) | (_, Weight::Blocked) => {
                format!("{:.1} ms", v as f64 / 1e6)
            }
            _ => format!("{v} samples"),
        }
    }
}

/// Flame trees of the snapshot on screen, by scope and weight: built when first shown, dropped
/// when a new snapshot comes.
#[derive(Default)]
pub struct FlameCache {
    snapshot: usize,
    trees: HashMap<(Scope, u8), Arc<FlameTree>>,
}

impl FlameCache {
    /// The tree for `scope` and `weight` of `s` (whose findings' window it covers).
    pub fn get(
        &mut self,
        s: &Arc<super::snapshot::Snapshot>,
        scope: Scope,
        weight: Weight,
    ) -> Arc<FlameTree> {
        let id = Arc::as_ptr(s) as usize;
        if id != self.snapshot {
            self.snapshot = id;
            self.trees.clear();
        }
        let w = match weight {
            Weight::Cpu => 0,
            Weight::Blocked => 1,
            Weight::Polls => 2,
        };
        Arc::clone(self.trees.entry((scope, w)).or_insert_with(|| {
            Arc::new(FlameTree::build(
                &s.analysis,
                s.findings.window,
                scope,
                weight,
            ))
        }))
    }
}
