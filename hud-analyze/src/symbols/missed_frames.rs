//! Frames a frame-pointer walk misses, put back from the objects' code alone: functions left by
//! tail calls, and the caller of a leaf that sets up no frame.
//!
//! A function whose last act is a call often ends in a jump instead (`jmp callee`): its frame is
//! gone before the callee runs, and a stack walked through frame pointers goes straight from its
//! caller to its callee. Its caller still shows it, though: the instruction before the caller's
//! return address is `call F`. When the frame below is not in F, F was left by a tail call.
//!
//! That is checked, not assumed: F's code must jump to the function below (`jmp`, a conditional
//! jump, or `jmp *slot(%rip)` through a GOT slot the object's own relocations fill), or to a
//! function that does, up to [`MAX_CHAIN`] functions deep. Each function of the chain gets a
//! frame at its jump (with that line), marked as a tail call. Calls are read the same ways
//! (`call rel32`, `call *slot(%rip)`). A target that is not a function's entry (a PLT stub),
//! and jumps through registers, are left alone.
//!
//! A leaf without a frame pointer (libc's system-call wrappers, the standard library's small
//! functions) leaves its caller out of the chain: for the stack's leaf, the chain's last hop may
//! be a call to it, also into a library, matched by the name the GOT imports to the library's
//! exports. That caller is put back at its call.

use super::dwarf::{Prepared, Target};

/// Functions one chain of tail calls may hold (F and those it jumps through).
pub(super) const MAX_CHAIN: usize = 3;
/// Functions searched per chain at most: a function with many ways out must not make one stack
/// node cost thousands of scans.
const MAX_VISITED: usize = 32;
/// Code searched for jumps, per function: more is not a function a compiler writes.
const MAX_FUNCTION_BYTES: u64 = 256 << 10;
/// The length of `call *slot(%rip)` (`call rel32` is a byte shorter, and ends the same way).
const CALL_GOT_LEN: u64 = 6;

/// One function the walk missed between a caller and its callee: where it left, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Hop {
    /// The address of its jump (a tail call) or call (to a leaf).
    pub(super) at: u64,
    pub(super) kind: super::Recovered,
}

/// The function the walk reached below the missing ones.
pub(super) enum Goal<'g, 'p> {
    /// In the caller's object, starting here.
    Here(u64),
    /// In another object (a library), starting at `start` there.
    Elsewhere {
        start: u64,
        object: &'g Prepared<'p>,
    },
}

impl Goal<'_, '_> {
    fn is(&self, target: Target<'_>) -> bool {
        match (self, target) {
            (Goal::Here(goal), Target::Here(t)) => *goal == t,
            (Goal::Elsewhere { start, object }, Target::Import(name)) => {
                object.export(name) == Some(*start)
            }
            _ => false,
        }
    }
}

/// The functions the walk missed between a caller and its callee, outermost first.
/// `return_offset` is the caller's return address, a file offset in `caller`'s object. When the
/// callee is the stack's leaf, the last function may have *called* it: a leaf without a frame
/// pointer leaves its caller's frame unrecorded (libc's system-call wrappers, the standard
/// library's small functions), so that caller is missing too.
/// `scanned` keeps each function's branches for the next searches of the same update.
pub(super) fn left_between<'a>(
    caller: &Prepared<'a>,
    return_offset: u64,
    goal: Goal<'_, '_>,
    callee_is_leaf: bool,
    scanned: &mut Scanned<'a>,
) -> Vec<Hop> {
    try_left_between(caller, return_offset, goal, callee_is_leaf, scanned).unwrap_or_default()
}

/// The branches of the functions searched so far, by (object, function start): the same
/// functions come up again and again (one call site, a thousand leaves in different callees).
#[derive(Default)]
pub(super) struct Scanned<'a> {
    by_function: rustc_hash::FxHashMap<(usize, u64), std::rc::Rc<[Branch<'a>]>>,
}

impl<'a> Scanned<'a> {
    fn branches(&mut self, prepared: &Prepared<'a>, start: u64) -> std::rc::Rc<[Branch<'a>]> {
        let key = (prepared as *const Prepared<'a> as usize, start);
        std::rc::Rc::clone(
            self.by_function
                .entry(key)
                .or_insert_with(|| branches(prepared, prepared.code(), start).into()),
        )
    }
}

fn try_left_between<'a>(
    caller: &Prepared<'a>,
    return_offset: u64,
    goal: Goal<'_, '_>,
    callee_is_leaf: bool,
    scanned: &mut Scanned<'a>,
) -> Option<Vec<Hop>> {
    let code = caller.code();
    let ret = caller.vaddr(return_offset)?;
    let site = bytes_at(
        code,
        return_offset.checked_sub(CALL_GOT_LEN)?,
        CALL_GOT_LEN as usize,
    )?;
    let rel = i64::from(i32::from_le_bytes(site[2..6].try_into().ok()?));
    let target = match site {
        [_, 0xe8, ..] => Target::Here(ret.wrapping_add_signed(rel)),
        [0xff, 0x15, ..] => caller.got_target(ret.wrapping_add_signed(rel))?,
        _ => return None,
    };
    // A call straight to the callee: nothing is missing. A call into another object whose
    // function is not the callee: what is missing is that object's, not looked at.
    if goal.is(target) {
        return None;
    }
    let Target::Here(start) = target else {
        return None;
    };
    let (entry, _, name) = caller.function_at(start)?;
    if entry != start {
        return None;
    }
    if let Goal::Here(goal_start) = goal {
        // The callee's cold part is the caller's own frame, not a function it jumped to.
        let (_, _, goal_name) = caller.function_at(goal_start)?;
        if goal_name.starts_with(name) && goal_name.contains(".cold") {
            return None;
        }
    }
    chain(caller, start, &goal, callee_is_leaf, scanned)
}

/// Hops from `from` to the goal's entry, breadth first: jumps, and a call for the last hop when
/// the goal is the leaf.
fn chain<'a>(
    prepared: &Prepared<'a>,
    from: u64,
    goal: &Goal<'_, '_>,
    goal_is_leaf: bool,
    scanned: &mut Scanned<'a>,
) -> Option<Vec<Hop>> {
    let mut paths: Vec<(u64, Vec<Hop>)> = vec![(from, Vec::new())];
    let mut seen = vec![from];
    for _ in 0..MAX_CHAIN {
        let mut next = Vec::new();
        for (function, path) in paths {
            let branches = scanned.branches(prepared, function);
            if goal_is_leaf {
                let call = branches.iter().find(|b| b.is_call && goal.is(b.target));
                if let Some(call) = call {
                    let mut longer = path.clone();
                    longer.push(Hop {
                        at: call.at,
                        kind: super::Recovered::LeafCaller,
                    });
                    return Some(longer);
                }
            }
            for branch in branches.iter().filter(|b| !b.is_call) {
                let mut longer = path.clone();
                longer.push(Hop {
                    at: branch.at,
                    kind: super::Recovered::TailCall,
                });
                if goal.is(branch.target) {
                    return Some(longer);
                }
                let Target::Here(target) = branch.target else {
                    continue;
                };
                let is_entry = prepared
                    .function_at(target)
                    .is_some_and(|(start, _, _)| start == target);
                if is_entry && !seen.contains(&target) && seen.len() < MAX_VISITED {
                    seen.push(target);
                    next.push((target, longer));
                }
            }
        }
        paths = next;
    }
    None
}

/// A jump leaving a function, or a call in it.
pub(super) struct Branch<'a> {
    at: u64,
    target: Target<'a>,
    is_call: bool,
}

/// The jumps leaving the function starting at `start`, and its calls. Read from every byte
/// offset, not by decoding: a byte run that only looks like a jump or a call also has to land
/// exactly on the goal or a function's entry to count.
fn branches<'a>(prepared: &Prepared<'a>, code: &[u8], start: u64) -> Vec<Branch<'a>> {
    let Some((start, end, _)) = prepared.function_at(start) else {
        return Vec::new();
    };
    let len = end.saturating_sub(start).min(MAX_FUNCTION_BYTES);
    let Some(bytes) = prepared.offset(start).and_then(|offset| {
        bytes_at(code, offset, len as usize).or_else(|| code.get(offset as usize..))
    }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..bytes.len() {
        let at = start.wrapping_add(i as u64);
        let rel32 = |from: usize| -> Option<i64> {
            Some(i64::from(i32::from_le_bytes(
                bytes.get(from..from + 4)?.try_into().ok()?,
            )))
        };
        let relative = |len: u64, rel: Option<i64>| {
            rel.map(|rel| at.wrapping_add(len).wrapping_add_signed(rel))
        };
        let through_got =
            |rel: Option<i64>| relative(6, rel).and_then(|slot| prepared.got_target(slot));
        let (target, is_call) = match (bytes[i], bytes.get(i + 1)) {
            (0xe8, _) => (relative(5, rel32(i + 1)).map(Target::Here), true),
            (0xff, Some(0x15)) => (through_got(rel32(i + 2)), true),
            (0xff, Some(0x25)) => (through_got(rel32(i + 2)), false),
            (0xe9, _) => (relative(5, rel32(i + 1)).map(Target::Here), false),
            (0xeb | 0x70..=0x7f, Some(&b)) => (
                relative(2, Some(i64::from(b as i8))).map(Target::Here),
                false,
            ),
            (0x0f, Some(0x80..=0x8f)) => (relative(6, rel32(i + 2)).map(Target::Here), false),
            _ => continue,
        };
        let Some(target) = target else { continue };
        // A jump within the function is a loop or a branch, not a way out.
        if let (Target::Here(t), false) = (target, is_call) {
            if t >= start && t < end {
                continue;
            }
        }
        out.push(Branch {
            at,
            target,
            is_call,
        });
    }
    out
}

fn bytes_at(code: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let offset = usize::try_from(offset).ok()?;
    code.get(offset..offset.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::objects::{Bytes, Located, Origin};
    use crate::symbols::dwarf::Sections;

    /// Any pair of offsets, in range or not, in a real object: an answer or nothing, never a
    /// panic (a capture's stack addresses are whatever it says).
    #[test]
    fn any_offsets_give_an_answer_or_nothing() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let located = Located {
            origin: Origin::Embedded,
            file: Arc::new(Bytes::Owned(exe)),
            debug: None,
            passed_over: None,
        };
        let sections = Sections::load(&located);
        let prepared =
            Prepared::new(&located, sections.as_ref(), 0, false).expect("this test's binary");
        let len = located.file.len() as u64;
        let mut scanned = Scanned::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (ret, callee) = if i % 2 == 0 {
                (x % len, (x >> 20) % len)
            } else {
                (x, x.rotate_left(17))
            };
            for leaf in [false, true] {
                let hops = left_between(&prepared, ret, Goal::Here(callee), leaf, &mut scanned);
                assert!(hops.len() <= MAX_CHAIN, "{hops:?}");
                let elsewhere = Goal::Elsewhere {
                    start: callee,
                    object: &prepared,
                };
                let _ = left_between(&prepared, ret, elsewhere, leaf, &mut scanned);
            }
        }
    }
}
