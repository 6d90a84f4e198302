//! Unwinding a copied user stack offline, from the unwind tables (`.eh_frame`) of the objects
//! the target mapped: the stacks a frame-pointer walk cannot follow (code built without frame
//! pointers, a libc leaf that uses the frame-pointer register for other work).
//!
//! framehop does the unwinding; this module hands it the objects (their bytes as the symbolizer
//! located them, never copied) and a reader over the copy. A copy is untrusted like the rest of a
//! capture: whatever its registers and bytes say, unwinding reads only inside the copy, stops at
//! [`MAX_FRAMES`], and says why it stopped.
//!
//! The stage between the model and symbols: [`copies::apply`] unwinds the model's stack copies
//! (format 1.1) and gives their events finished address stacks, which symbols then look up like
//! any others; the symbolizer calls it because it locates the objects both need. Tested here
//! against this process's own stack. [`splice`] joins an unwound stack with the frame-pointer
//! walk of the same event.

pub mod copies;

use std::ops::{Deref, Range};
use std::sync::Arc;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder as _};
use object::{Object, ObjectSection, ObjectSegment};

use crate::objects::Bytes;

/// Frames one unwind gives at most: a deeper stack is a loop in hostile bytes.
pub const MAX_FRAMES: usize = 512;

/// Registers and stack bytes copied when a sample or an off-CPU episode was taken.
#[derive(Clone, Copy, Debug)]
pub struct StackCopy<'a> {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// The stack from `sp` up.
    pub stack: Stack<'a>,
}

/// The copied stack: its bytes, or (as captures store it) its non-zero words.
#[derive(Clone, Copy, Debug)]
pub enum Stack<'a> {
    Bytes(&'a [u8]),
    /// `len` bytes, all zero but the words at `index` (in words from `sp`, increasing).
    Sparse {
        len: usize,
        index: &'a [u16],
        value: &'a [u64],
    },
}

impl Stack<'_> {
    /// The 8 bytes at `offset` from `sp`, when the copy holds them.
    fn word(&self, offset: usize) -> Option<u64> {
        match *self {
            Stack::Bytes(bytes) => bytes
                .get(offset..offset.checked_add(8)?)
                .and_then(|w| Some(u64::from_le_bytes(w.try_into().ok()?))),
            Stack::Sparse { len, index, value } => {
                if offset.checked_add(8)? > len {
                    return None;
                }
                // Saved registers and return addresses are at whole words from `sp`.
                if !offset.is_multiple_of(8) {
                    return Some(0);
                }
                let at = u16::try_from(offset / 8).ok()?;
                let found = index.binary_search(&at).ok();
                Some(found.and_then(|i| value.get(i).copied()).unwrap_or(0))
            }
        }
    }
}

/// Why an unwind stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The unwind tables said the stack ends here (the thread's first frame).
    Complete,
    /// The next frame's return address lies beyond the copied bytes.
    OutOfCopy,
    /// [`MAX_FRAMES`] frames.
    TooDeep,
    /// The tables or the bytes did not allow going on (framehop's reason).
    Failed(String),
}

/// The frames of an unwound stack, innermost first: the instruction pointer, then return
/// addresses (as a frame-pointer walk records them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwound {
    pub frames: Vec<u64>,
    /// Per frame, the stack address its return address was read from (0 for the leaf's ip).
    pub slots: Vec<u64>,
    /// The frame-pointer chain as the copy holds it, from the event's rbp: (return address, the
    /// stack address it was read from), as a frame-pointer walk reads them. A walked frame
    /// proven to be an unwound one has the same return address read from the same place.
    pub fp_chain: Vec<(u64, u64)>,
    pub end: End,
    /// The frame pointer (rbp) of the last frame, whose caller was not found: where a
    /// frame-pointer walk from that frame would go on ([`splice`]).
    pub last_bp: u64,
}

/// One section of an object file, shared with the symbolizer rather than copied.
#[derive(Clone)]
struct Section {
    file: Arc<Bytes>,
    range: Range<usize>,
}

impl Default for Section {
    fn default() -> Self {
        Self {
            file: Arc::new(Bytes::Owned(Vec::new())),
            range: 0..0,
        }
    }
}

impl Deref for Section {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.file[self.range.clone()]
    }
}

/// The objects of one process. Shared by the threads that unwind; each brings its own
/// [`Cache`].
pub struct Unwinder {
    inner: UnwinderX86_64<Section>,
}

/// One thread's cache of unwind rules.
pub struct Cache(CacheX86_64);

impl Default for Cache {
    fn default() -> Self {
        Cache(CacheX86_64::new())
    }
}

impl Default for Unwinder {
    fn default() -> Self {
        Self {
            inner: UnwinderX86_64::new(),
        }
    }
}

impl Unwinder {
    /// Adds the object `file` mapped executable at `avma` from `file_offset` (a line of the
    /// target's maps). Whether it could be used: an object that is not a 64-bit ELF, or whose
    /// segments do not hold that offset, is left out.
    pub fn add_object(
        &mut self,
        name: &str,
        avma: Range<u64>,
        file_offset: u64,
        file: &Arc<Bytes>,
    ) -> bool {
        let Ok(elf) = object::File::parse(&***file) else {
            return false;
        };
        // The executable segment this mapping holds, and so the bias between the object's own
        // addresses and the process's. (The mapping starts at a page boundary, often before the
        // segment: its first byte may belong to the segment before.)
        let length = avma.end.saturating_sub(avma.start);
        let Some(segment) = elf.segments().find(|s| {
            let (offset, size) = s.file_range();
            let executable = matches!(s.flags(), object::SegmentFlags::Elf { p_flags }
                if p_flags & object::elf::PF_X != 0);
            executable
                && offset < file_offset.saturating_add(length)
                && file_offset < offset.saturating_add(size)
        }) else {
            return false;
        };
        let bias = avma
            .start
            .wrapping_add(segment.file_range().0)
            .wrapping_sub(file_offset)
            .wrapping_sub(segment.address());
        let section = |name: &str| {
            let s = elf.section_by_name(name)?;
            let (offset, size) = s.file_range()?;
            let range =
                usize::try_from(offset).ok()?..usize::try_from(offset.checked_add(size)?).ok()?;
            file.get(range.clone())?;
            let svma = s.address()..s.address().checked_add(s.size())?;
            Some((
                svma,
                Section {
                    file: Arc::clone(file),
                    range,
                },
            ))
        };
        let (text_svma, text) = section(".text").unzip();
        let (eh_frame_svma, eh_frame) = section(".eh_frame").unzip();
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr").unzip();
        let got_svma = elf
            .section_by_name(".got")
            .and_then(|s| Some(s.address()..s.address().checked_add(s.size())?));
        if eh_frame.is_none() {
            return false;
        }
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma,
            text,
            got_svma,
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr_svma,
            eh_frame_hdr,
            ..Default::default()
        };
        self.inner
            .add_module(Module::new(name.to_owned(), avma, bias, info));
        true
    }

    /// Unwinds one copied stack.
    pub fn unwind(&self, cache: &mut Cache, copy: &StackCopy<'_>) -> Unwound {
        let stack = copy.stack;
        let mut out_of_copy = false;
        let mut read_stack = |address: u64| -> Result<u64, ()> {
            let word = address
                .checked_sub(copy.sp)
                .and_then(|offset| usize::try_from(offset).ok())
                .and_then(|offset| stack.word(offset));
            match word {
                Some(w) => Ok(w),
                None => {
                    out_of_copy = true;
                    Err(())
                }
            }
        };
        let fp_chain = fp_chain(copy);
        let mut regs = UnwindRegsX86_64::new(copy.ip, copy.sp, copy.bp);
        let mut frames = vec![copy.ip];
        let mut slots = vec![0];
        let mut address = FrameAddress::from_instruction_pointer(copy.ip);
        // Frame by frame (not framehop's iterator) to know the registers where it stops.
        let end = loop {
            if frames.len() >= MAX_FRAMES {
                break End::TooDeep;
            }
            let (bp, sp) = (regs.bp(), regs.sp());
            match self
                .inner
                .unwind_frame(address, &mut regs, &mut cache.0, &mut read_stack)
            {
                Ok(Some(return_address)) => {
                    let Some(next) = FrameAddress::from_return_address(return_address) else {
                        regs.set_bp(bp);
                        break End::Failed("the return address is 0".into());
                    };
                    if regs.sp() <= sp {
                        regs.set_bp(bp);
                        break End::Failed("the stack pointer did not move up".into());
                    }
                    frames.push(return_address);
                    // x86-64: the caller's sp is the frame's CFA; the return address is below it.
                    slots.push(regs.sp().wrapping_sub(8));
                    address = next;
                }
                Ok(None) => break End::Complete,
                Err(e) => {
                    regs.set_bp(bp);
                    break if out_of_copy {
                        End::OutOfCopy
                    } else {
                        End::Failed(e.to_string())
                    };
                }
            }
        };
        Unwound {
            frames,
            slots,
            fp_chain,
            end,
            last_bp: regs.bp(),
        }
    }
}

/// The frame-pointer chain from the copy's rbp, as far as the copy holds it.
fn fp_chain(copy: &StackCopy<'_>) -> Vec<(u64, u64)> {
    let word = |address: u64| {
        let offset = usize::try_from(address.checked_sub(copy.sp)?).ok()?;
        copy.stack.word(offset)
    };
    let mut chain = Vec::new();
    let mut bp = copy.bp;
    while chain.len() < MAX_FRAMES {
        let (Some(next), Some(ra)) = (word(bp), bp.checked_add(8).and_then(word)) else {
            break;
        };
        chain.push((ra, bp + 8));
        if next <= bp {
            break;
        }
        bp = next;
    }
    chain
}

/// Joins an unwound stack with the frame-pointer walk of the same event (both innermost first,
/// from the same instruction pointer; `walk_bp` the frame pointer the walk started from). An
/// unwind that reached the thread's first frame is the stack. One that ran out of its copy in
/// the frame the walk started from (its frame pointer is `walk_bp`: the leaf set up no frame)
/// goes on with the walk's callers of that frame. Otherwise: the unwound frames up to the first
/// frame the walk is proven to share (the same return address, read from the same stack
/// address: the walk's chain as the copy holds it), then the walk from there. A return address
/// alone proves nothing: without frame pointers the walk follows whatever rbp held, and stale
/// return addresses left deeper in the stack matched, repeating the user's frames below the
/// runtime's poll. Without a proven common frame, the unwound stack when it is deeper than the
/// walk, else the walk. `None` when that is the walk itself.
pub fn splice(unwound: &Unwound, walked: &[u64], walk_bp: u64) -> Option<Vec<u64>> {
    let frames = &unwound.frames[..];
    let joined = match unwound.end {
        End::Complete if frames.len() > 1 => frames.to_vec(),
        End::OutOfCopy if unwound.last_bp == walk_bp && walked.len() > 1 && frames.len() > 1 => {
            frames.iter().chain(&walked[1..]).copied().collect()
        }
        _ => return join(unwound, walked),
    };
    (joined != walked).then_some(joined)
}

fn join(unwound: &Unwound, walked: &[u64]) -> Option<Vec<u64>> {
    let frames = &unwound.frames;
    if frames.len() < 2 {
        return None;
    }
    // The walk's k-th frame (k ≥ 1) is the chain's (k-1)-th entry, while the two agree.
    let walk_slots: Vec<u64> = walked
        .iter()
        .skip(1)
        .zip(&unwound.fp_chain)
        .take_while(|(w, (ra, _))| *w == ra)
        .map(|(_, (_, slot))| *slot)
        .collect();
    let joined = (1..frames.len())
        .find_map(|i| {
            let k = walk_slots
                .iter()
                .position(|&slot| slot == unwound.slots[i])?
                + 1;
            (walked[k] == frames[i])
                .then(|| frames[..i].iter().chain(&walked[k..]).copied().collect())
        })
        .or_else(|| (frames.len() > walked.len()).then(|| frames.clone()))?;
    (joined != walked).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's registers and a copy of its stack from the capturing frame up to the
    /// mapping's end (at most 64 KiB), as the recorder would copy them.
    #[inline(never)]
    fn capture() -> (u64, u64, u64, Vec<u8>) {
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads three registers.
        unsafe {
            std::arch::asm!(
                "lea {ip}, [rip]",
                "mov {sp}, rsp",
                "mov {bp}, rbp",
                ip = out(reg) ip,
                sp = out(reg) sp,
                bp = out(reg) bp,
            )
        };
        let end = stack_end(sp);
        let len = (end - sp).min(64 << 10) as usize;
        // SAFETY: [sp, sp + len) lies in this thread's stack mapping (read from /proc/self/maps).
        let bytes = unsafe { std::slice::from_raw_parts(sp as *const u8, len) }.to_vec();
        (ip, sp, bp, std::hint::black_box(bytes))
    }

    fn stack_end(sp: u64) -> u64 {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find_map(|l| {
                let (range, _) = l.split_once(' ')?;
                let (a, b) = range.split_once('-')?;
                let (a, b) = (
                    u64::from_str_radix(a, 16).ok()?,
                    u64::from_str_radix(b, 16).ok()?,
                );
                (a <= sp && sp < b).then_some(b)
            })
            .unwrap()
    }

    #[inline(never)]
    fn level_three() -> (u64, u64, u64, Vec<u8>) {
        std::hint::black_box(capture())
    }

    #[inline(never)]
    fn level_two() -> (u64, u64, u64, Vec<u8>) {
        std::hint::black_box(level_three())
    }

    #[inline(never)]
    fn level_one() -> (u64, u64, u64, Vec<u8>) {
        std::hint::black_box(level_two())
    }

    /// Every executable file mapping of this process, as an unwinder.
    fn own_unwinder() -> Unwinder {
        let mut unwinder = Unwinder::default();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || !f[1].contains('x') || !f[5].starts_with('/') {
                continue;
            }
            let (a, b) = f[0].split_once('-').unwrap();
            let avma = u64::from_str_radix(a, 16).unwrap()..u64::from_str_radix(b, 16).unwrap();
            let offset = u64::from_str_radix(f[2], 16).unwrap();
            let file = Arc::new(Bytes::Owned(std::fs::read(f[5]).unwrap()));
            unwinder.add_object(f[5], avma, offset, &file);
        }
        unwinder
    }

    /// The function of this executable at a run-time address, by its symbol table.
    fn function_at(exe: &[u8], address: u64) -> Option<String> {
        crate::symbols::symtab_lookup(exe, address.checked_sub(loader_base())?)
    }

    /// Where this executable is mapped (its first mapping: file offset 0).
    fn loader_base() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find(|l| l.ends_with(exe.to_str().unwrap()))
            .and_then(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
            .unwrap()
    }

    #[test]
    fn a_copied_stack_is_unwound_through_its_callers() {
        let (ip, sp, bp, bytes) = level_one();
        let copy = StackCopy {
            ip,
            sp,
            bp,
            stack: Stack::Bytes(&bytes),
        };
        let unwound = own_unwinder().unwind(&mut Cache::default(), &copy);
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let names: Vec<String> = unwound
            .frames
            .iter()
            .enumerate()
            .filter_map(|(i, &a)| function_at(&exe, if i == 0 { a } else { a - 1 }))
            .collect();
        let position = |name: &str| names.iter().position(|n| n.ends_with(name));
        let (Some(three), Some(two), Some(one)) = (
            position("level_three"),
            position("level_two"),
            position("level_one"),
        ) else {
            panic!("{names:#?} ({:?})", unwound.end);
        };
        assert!(three < two && two < one, "{names:#?}");
        assert!(
            position("a_copied_stack_is_unwound_through_its_callers").is_some_and(|t| t > one),
            "{names:#?}"
        );
    }

    /// A copy stored as its non-zero words unwinds as its bytes do.
    #[test]
    fn sparse_and_dense_copies_unwind_alike() {
        let (ip, sp, bp, bytes) = level_one();
        let (mut index, mut value) = (Vec::new(), Vec::new());
        for (i, w) in bytes.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(w.try_into().unwrap());
            if w != 0 && i < usize::from(u16::MAX) {
                index.push(i as u16);
                value.push(w);
            }
        }
        let unwinder = own_unwinder();
        let dense = StackCopy {
            ip,
            sp,
            bp,
            stack: Stack::Bytes(&bytes),
        };
        let sparse = StackCopy {
            stack: Stack::Sparse {
                len: bytes.len(),
                index: &index,
                value: &value,
            },
            ..dense
        };
        let a = unwinder.unwind(&mut Cache::default(), &dense);
        let b = unwinder.unwind(&mut Cache::default(), &sparse);
        assert_eq!(a, b);
        assert!(a.frames.len() > 3, "{a:?}");
    }

    #[test]
    fn a_copy_too_short_says_so() {
        let (ip, sp, bp, bytes) = level_one();
        let copy = StackCopy {
            ip,
            sp,
            bp,
            stack: Stack::Bytes(&bytes[..64]),
        };
        let unwound = own_unwinder().unwind(&mut Cache::default(), &copy);
        assert_eq!(unwound.end, End::OutOfCopy, "{unwound:?}");
        assert!(!unwound.frames.is_empty());
    }

    /// Hostile copies: any registers, any bytes, a stack pointer anywhere. An answer, never a
    /// panic or an endless walk.
    #[test]
    fn hostile_copies_end_without_harm() {
        let unwinder = own_unwinder();
        let mut cache = Cache::default();
        let (ip, sp, _, real) = level_one();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let mut bytes = real.clone();
            let len = bytes.len();
            for _ in 0..(round % 64) {
                let at = (next() as usize) % len;
                bytes[at] = next() as u8;
            }
            // Self-pointing frames: a loop the walk must leave.
            if round % 7 == 0 && len >= 16 {
                bytes[..8].copy_from_slice(&sp.to_le_bytes());
                bytes[8..16].copy_from_slice(&ip.to_le_bytes());
            }
            let cut = (next() as usize) % (len + 1);
            // Half the rounds as captures store copies: non-zero words, some indices crafted.
            let (mut index, mut value) = (Vec::new(), Vec::new());
            for (i, w) in bytes[..cut].chunks_exact(8).enumerate() {
                let w = u64::from_le_bytes(w.try_into().unwrap());
                if w != 0 {
                    index.push(if round % 11 == 0 {
                        next() as u16
                    } else {
                        i as u16
                    });
                    value.push(w);
                }
            }
            if round % 13 == 0 {
                value.pop();
            }
            let stack = if round % 2 == 0 {
                Stack::Bytes(&bytes[..cut])
            } else {
                Stack::Sparse {
                    len: if round % 17 == 0 {
                        next() as usize
                    } else {
                        cut
                    },
                    index: &index,
                    value: &value,
                }
            };
            let copy = StackCopy {
                ip: if round % 3 == 0 { next() } else { ip },
                sp: if round % 5 == 0 { next() } else { sp },
                bp: if round % 2 == 0 { sp } else { next() },
                stack,
            };
            let unwound = unwinder.unwind(&mut cache, &copy);
            assert!(unwound.frames.len() <= MAX_FRAMES);
        }
    }
}

#[cfg(test)]
mod splice_tests {
    use super::{End, Unwound};

    /// A copy's frame-pointer chain that agrees with `walked` (each return address read from
    /// 0x100 bytes above the last).
    fn chain_of(walked: &[u64]) -> Vec<(u64, u64)> {
        walked
            .iter()
            .skip(1)
            .enumerate()
            .map(|(k, &ra)| (ra, 0x9000 + 0x100 * k as u64))
            .collect()
    }

    /// An unwind that went out of its copy in a frame the walk did not start from, its frames'
    /// return addresses read from `slots`, joined with `walked` (whose chain the copy holds).
    fn splice_at(unwound: &[u64], slots: &[u64], walked: &[u64]) -> Option<Vec<u64>> {
        let unwound = Unwound {
            frames: unwound.to_vec(),
            slots: slots.to_vec(),
            fp_chain: chain_of(walked),
            end: End::OutOfCopy,
            last_bp: 0x7000,
        };
        super::splice(&unwound, walked, 0x6000)
    }

    /// The same where every unwound return address was read from where the walk read it.
    fn splice(unwound: &[u64], walked: &[u64]) -> Option<Vec<u64>> {
        let chain = chain_of(walked);
        let slots: Vec<u64> = unwound
            .iter()
            .enumerate()
            .map(|(i, ra)| {
                let read = chain.iter().find(|(r, _)| r == ra).map(|(_, s)| *s);
                if i == 0 {
                    0
                } else {
                    read.unwrap_or(0x8000 + i as u64 * 8)
                }
            })
            .collect();
        splice_at(unwound, &slots, walked)
    }

    fn unwound(frames: &[u64], end: End, last_bp: u64) -> Unwound {
        Unwound {
            frames: frames.to_vec(),
            slots: vec![0; frames.len()],
            fp_chain: Vec::new(),
            end,
            last_bp,
        }
    }

    #[test]
    fn a_leaf_window_goes_on_with_the_walk_from_the_frame_it_stopped_in() {
        // The leaf (0xA) set up no frame: the walk, from the caller's frame pointer, skipped
        // the caller (0xB); the window held the leaf's return address, not the caller's.
        let unwound = unwound(&[0xA, 0xB], End::OutOfCopy, 0x6000);
        assert_eq!(
            super::splice(&unwound, &[0xA, 0xC, 0xD], 0x6000),
            Some(vec![0xA, 0xB, 0xC, 0xD])
        );
        // Stopped in another frame: nothing to go on with.
        assert_eq!(super::splice(&unwound, &[0xA, 0xC, 0xD], 0x5000), None);
    }

    #[test]
    fn a_complete_unwind_is_the_stack_whatever_the_walk_says() {
        // The walk's garbage may hold a real return address: a complete unwind wins anyway.
        let unwound = unwound(&[0xA, 0xB, 0xC, 0xD], End::Complete, 0);
        assert_eq!(
            super::splice(&unwound, &[0xA, 0xC, 0x0], 0x6000),
            Some(vec![0xA, 0xB, 0xC, 0xD])
        );
        assert_eq!(super::splice(&unwound, &[0xA, 0xB, 0xC, 0xD], 0x6000), None);
    }

    #[test]
    fn the_unwound_leaf_callers_join_the_walk_where_they_meet_it() {
        // The walk skipped 0xB (the caller of a leaf without a frame pointer).
        let walked = [0xA, 0xC, 0xD, 0xE];
        let unwound = [0xA, 0xB, 0xC];
        assert_eq!(
            splice(&unwound, &walked),
            Some(vec![0xA, 0xB, 0xC, 0xD, 0xE])
        );
        // Nothing new: the walk stays.
        assert_eq!(splice(&[0xA, 0xC], &walked), None);
        assert_eq!(splice(&[0xA], &walked), None);
    }

    /// mini-redis without frame pointers: the walk followed rbp into a stale part of the stack
    /// holding the user's return addresses from an earlier call. Matching them by address alone
    /// repeated the user's frames below the runtime's poll; read from other places, they are not
    /// the same frames, and the unwind is not joined there.
    #[test]
    fn a_return_address_read_elsewhere_is_not_a_common_frame() {
        let (apply, run, poll, stale) = (0xA1, 0xB2, 0xC3, 0xEE);
        let walked = [0x10, stale, apply, run];
        let unwound = [0x10, apply, run, poll, 0xD4];
        // The unwind read `apply` and `run` 0x40 bytes away from where the walk did.
        let slots = [0, 0x9140, 0x9240, 0x9300, 0x9400];
        assert_eq!(
            splice_at(&unwound, &slots, &walked),
            Some(unwound.to_vec()),
            "the deeper unwind, not a join"
        );
        // Read from the same place, `apply` is the walk's frame: joined there.
        let slots = [0, 0x9100, 0x9200, 0x9300, 0x9400];
        assert_eq!(
            splice_at(&unwound[..2], &slots[..2], &walked),
            Some(vec![0x10, apply, run])
        );
    }

    #[test]
    fn a_broken_walk_gives_way_to_a_deeper_unwind() {
        // No frame pointers: the walk read garbage.
        let walked = [0xA, 0x1234];
        let unwound = [0xA, 0xB, 0xC, 0xD];
        assert_eq!(splice(&unwound, &walked), Some(unwound.to_vec()));
        // A short unwind that meets nothing leaves a deeper walk alone.
        assert_eq!(splice(&[0xA, 0xF], &[0xA, 0xC, 0xD]), None);
    }
}
