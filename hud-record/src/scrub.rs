//! Stack copies keep only what unwinding reads: return addresses (words that point into the
//! target's code) and saved frame pointers (words that point up the stack, above the copy's
//! stack pointer). Every other word is zeroed before the copy is written.
//!
//! Why: stack bytes are the target's data (request bodies, keys, passwords in locals), and a
//! capture is an artifact that travels; zeroed data also makes copies of one code path equal,
//! so the writer sends a thread that parks again and again in one place once, and compresses
//! the rest far better. The unwinder (framehop, x86-64) reads nothing else: a frame's rules
//! compute its caller's stack pointer, frame pointer and return address from those words.

/// How far above the stack pointer a saved frame pointer may point: more than a thread stack.
const STACK_SPAN: u64 = 64 << 20;

/// The target's executable ranges, sorted, for fast membership tests.
#[derive(Default)]
pub struct CodeRanges(Vec<(u64, u64)>);

impl CodeRanges {
    pub fn new(mut ranges: Vec<(u64, u64)>) -> Self {
        ranges.sort_unstable();
        CodeRanges(ranges)
    }

    pub fn contains(&self, address: u64) -> bool {
        let i = self.0.partition_point(|&(start, _)| start <= address);
        i > 0 && address < self.0[i - 1].1
    }
}

/// Zeroes every 8-byte word of `bytes` (the stack from `sp` up) that is neither a code address
/// nor a stack address above `sp`. Returns how many words it kept.
pub fn scrub(bytes: &mut [u8], sp: u64, code: &CodeRanges) -> usize {
    let mut kept = 0;
    for word in bytes.chunks_exact_mut(8) {
        let value = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let up_the_stack = value > sp && value - sp <= STACK_SPAN;
        if value != 0 && (up_the_stack || code.contains(value)) {
            kept += 1;
        } else {
            word.fill(0);
        }
    }
    // A tail shorter than a word is no address.
    let tail = bytes.len() / 8 * 8;
    bytes[tail..].fill(0);
    kept
}

/// Puts back the return addresses uretprobes replaced (`--poll-probes`): each of `returns`
/// goes into its stack slot (`slots`, addresses) when the copy (from `sp` up) holds that slot
/// and the slot holds an address of the kernel's trampoline page `uprobes`. Returns how many it
/// put back.
pub fn restore_returns(
    bytes: &mut [u8],
    sp: u64,
    uprobes: (u64, u64),
    returns: &[u64],
    slots: &[u64],
) -> usize {
    let mut restored = 0;
    for (&real, &slot) in returns.iter().zip(slots) {
        let Some(at) = slot.checked_sub(sp).map(|a| a as usize) else {
            continue;
        };
        let Some(word) = bytes.get_mut(at..at.saturating_add(8)) else {
            continue;
        };
        let value = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        if real != 0 && value >= uprobes.0 && value < uprobes.1 {
            word.copy_from_slice(&real.to_le_bytes());
            restored += 1;
        }
    }
    restored
}

/// The first word of a scrubbed copy that is a code address: the leaf's return address, unless
/// the leaf saved a code pointer in its frame.
pub fn first_code_address(bytes: &[u8], code: &CodeRanges) -> Option<u64> {
    bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .find(|&w| code.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trampoline_returns_are_put_back_in_their_slots_only() {
        let uprobes = (0x7fff_f000u64, 0x7fff_f000 + 4096);
        let sp = 0x1000u64;
        // A stale trampoline address below the real slots, then the two polls' slots.
        let words = [uprobes.0, 0x1008, uprobes.0, 0x2000, uprobes.0];
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let slots = [sp + 16, sp + 32];
        assert_eq!(
            restore_returns(&mut bytes, sp, uprobes, &[0xaaa, 0xbbb], &slots),
            2
        );
        let got: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .collect();
        assert_eq!(got, [uprobes.0, 0x1008, 0xaaa, 0x2000, 0xbbb]);
        // A slot outside the copy, or holding something else: left alone.
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(
            restore_returns(
                &mut bytes,
                sp,
                uprobes,
                &[0xaaa, 0xbbb],
                &[sp + 8, sp + 400]
            ),
            0
        );
    }

    #[test]
    fn only_code_and_stack_addresses_are_kept() {
        let code = CodeRanges::new(vec![(0x5000, 0x6000), (0x1000, 0x2000)]);
        let sp = 0x7fff_0000u64;
        let words = [
            0x9999u64, // data
            0x1008,    // return address
            sp + 0x40, // saved frame pointer
            sp - 8,    // below the stack pointer: not a caller's frame
            0x5fff,    // return address in the other range
            0x6000,    // just past the code
            u64::from_le_bytes(*b"secret!!"),
        ];
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.extend_from_slice(&[0xAA; 3]);
        assert_eq!(scrub(&mut bytes, sp, &code), 3);
        let kept: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .collect();
        assert_eq!(kept, [0, 0x1008, sp + 0x40, 0, 0x5fff, 0, 0]);
        assert_eq!(&bytes[56..], &[0, 0, 0]);
    }
}
