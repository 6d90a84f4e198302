//! Unwinding user stacks in the kernel with the table hud-record built from the target's
//! `.eh_frame` (see `UnwindRow`): whole address-only stacks for code without frame pointers,
//! with no stack bytes copied. A stack the table cannot finish (code it has no rule for) is
//! walked with frame pointers as before, and gets its copy.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    helpers::{
        bpf_probe_read_user,
        generated::{bpf_loop, bpf_probe_read_kernel as probe_read_kernel_raw},
    },
    macros::map,
    maps::{Array, PerCpuArray},
    Global,
};
use hud_format::wire::{unwind, UnwindRow, MAX_USER_FRAMES};

use super::stack_copy::{PT_REGS_BP, PT_REGS_IP, PT_REGS_LEN, PT_REGS_SP};

/// The table, sorted by `pc`; hud-record sizes it and writes it through a memory mapping.
#[map]
pub(super) static UNWIND_ROWS: Array<UnwindRow> = Array::with_max_entries(1, BPF_F_MMAPABLE);

#[unsafe(no_mangle)]
pub(super) static UNWIND_ROW_COUNT: Global<u32> = Global::new(0);

/// Whether a table was loaded.
#[inline(always)]
pub(super) fn has_table() -> bool {
    UNWIND_ROW_COUNT.load() != 0
}

/// One CPU's unwinding in progress (programs do not nest on a CPU while they unwind: a
/// sample's NMI-like interrupt could, and then finds `busy` and walks with frame pointers).
/// A state machine that `bpf_loop` steps: each step is one step of the binary search for the
/// current frame's row, or, once found, the step to the caller. The verifier checks one step;
/// a loop over frames with a search inside was 2^24 paths to it (rejected at a million
/// instructions), whatever bounds it was given.
#[repr(C)]
pub(super) struct Unwinding {
    pc: u64,
    sp: u64,
    bp: u64,
    /// The address whose row is searched: `pc`, or `pc - 1` for a return address (it points
    /// after its call, which may be the next function's first instruction).
    key: u64,
    /// The search's range of rows.
    lo: u32,
    hi: u32,
    /// Rows in the table (copied here so the verifier does not know it).
    rows: u32,
    /// Frames found.
    n: u32,
    /// `DONE` (the stack is whole), `FAILED`, or `GOING`.
    end: u32,
    busy: u32,
    frames: [u64; MAX_USER_FRAMES],
}

const GOING: u32 = 0;
const DONE: u32 = 1;
const FAILED: u32 = 2;

/// Steps at most: a search of each frame's row, and the step to its caller.
const MAX_STEPS: u32 = MAX_USER_FRAMES as u32 * (unwind::SEARCH_STEPS + 1);

#[map]
static UNWINDING: PerCpuArray<Unwinding> = PerCpuArray::with_max_entries(1, 0);

/// Unwinds the user stack whose registers are saved at `regs` (a `struct pt_regs` in the
/// kernel) into `out`: the frames found, when the table led to the thread's first frame or
/// filled `out`; `None` when it met code it has no rule for (then `out` is untouched).
#[inline(always)]
pub(super) fn unwind_user(regs: u64, out: &mut [u64; MAX_USER_FRAMES]) -> Option<u16> {
    let mut saved = [0u64; PT_REGS_LEN / 8];
    // SAFETY: a checked kernel read into a local of the same size.
    let read = unsafe {
        probe_read_kernel_raw(
            saved.as_mut_ptr().cast(),
            PT_REGS_LEN as u32,
            regs as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return None;
    }
    let u = UNWINDING.get_ptr_mut(0)?;
    // SAFETY: this CPU's entry; `busy` keeps a nested program out of it.
    unsafe {
        if (*u).busy != 0 {
            return None;
        }
        (*u).busy = 1;
        let pc = saved[PT_REGS_IP / 8];
        (*u).pc = pc;
        (*u).sp = saved[PT_REGS_SP / 8];
        (*u).bp = saved[PT_REGS_BP / 8];
        (*u).rows = UNWIND_ROW_COUNT.load() & (unwind::MAX_ROWS - 1);
        (*u).frames[0] = pc;
        (*u).n = 1;
        // The first frame's pc is exact.
        (*u).key = pc;
        (*u).lo = 0;
        (*u).hi = (*u).rows;
        (*u).end = GOING;
        bpf_loop(
            MAX_STEPS,
            unwind_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        );
        let found = if (*u).end == DONE {
            let n = ((*u).n as usize).min(MAX_USER_FRAMES);
            // One kernel copy of the frames (the verifier cannot bound a loop of n).
            let copied = probe_read_kernel_raw(
                out.as_mut_ptr().cast(),
                (MAX_USER_FRAMES * 8) as u32,
                (*u).frames.as_ptr().cast(),
            );
            (copied == 0).then_some(n as u16)
        } else {
            None
        };
        (*u).busy = 0;
        found
    }
}

/// One step of [`unwind_user`] (a `bpf_loop` callback). Returns 1 to stop.
extern "C" fn unwind_step(_: u64, _: *mut core::ffi::c_void) -> i64 {
    let Some(u) = UNWINDING.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's entry, held by `unwind_user`.
    let u = unsafe { &mut *u };
    if u.lo < u.hi {
        // A step of the search for the last row whose pc is not above the key.
        let mid = u.lo + (u.hi - u.lo) / 2;
        let Some(row) = UNWIND_ROWS.get(mid) else {
            return fail(u);
        };
        if row.pc <= u.key {
            u.lo = mid + 1;
        } else {
            u.hi = mid;
        }
        return 0;
    }
    if u.lo == 0 {
        return fail(u);
    }
    let Some(row) = UNWIND_ROWS.get(u.lo - 1) else {
        return fail(u);
    };
    let base = match row.cfa {
        unwind::CFA_RSP => u.sp,
        unwind::CFA_RBP => u.bp,
        unwind::OUTERMOST => {
            u.end = DONE;
            return 1;
        }
        _ => return fail(u),
    };
    let cfa = base.wrapping_add(row.cfa_offset as i64 as u64);
    // SAFETY: checked reads of the target's own stack (the current task's memory).
    let Ok(ra) = (unsafe { bpf_probe_read_user(cfa.wrapping_sub(8) as *const u64) }) else {
        return fail(u);
    };
    if row.rbp == unwind::RBP_SAVED {
        let at = cfa.wrapping_add(row.rbp_offset as i64 as u64);
        // SAFETY: as above.
        match unsafe { bpf_probe_read_user(at as *const u64) } {
            Ok(bp) => u.bp = bp,
            Err(_) => return fail(u),
        }
    }
    if ra == 0 {
        u.end = DONE;
        return 1;
    }
    // A caller's frame is above its callee's; anything else is a corrupt stack.
    if cfa <= u.sp {
        return fail(u);
    }
    let Some(slot) = u.frames.get_mut(u.n as usize) else {
        // As deep as a stack is kept: what was found is the stack.
        u.end = DONE;
        return 1;
    };
    *slot = ra;
    u.n += 1;
    u.sp = cfa;
    u.pc = ra;
    u.key = ra.wrapping_sub(1);
    u.lo = 0;
    u.hi = u.rows;
    0
}

#[inline(always)]
fn fail(u: &mut Unwinding) -> i64 {
    u.end = FAILED;
    1
}
