//! Stack copies: user registers and stack bytes for the analyzer to unwind offline, within the
//! ring buffer's slack and a per-CPU byte budget.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE},
    helpers::generated::{
        bpf_get_current_task, bpf_get_current_task_btf,
        bpf_probe_read_kernel as probe_read_kernel_raw, bpf_probe_read_user as probe_read_user_raw,
        bpf_task_pt_regs,
    },
};
use hud_format::wire::{
    kind, Counter, RecordHeader, StackCopy, StackCopyHeader, MAX_STACK_COPY, REPAIR_WINDOW,
    SHALLOW_WALK,
};

use super::shared::{
    count, cpu, stopped, EVENTS, MAIN_STACK_TOP, NO_WAKEUP, STACK_BUDGET, STACK_BUDGET_PER_CPU,
    STACK_COPY_BYTES, STACK_SCRATCH, TABLE_UNWOUND, TARGET_TGID, TASK_FSBASE_OFFSET,
};

/// Offsets in x86-64's `struct pt_regs` (arch/x86/include/asm/ptrace.h).
pub(super) const PT_REGS_BP: usize = 32;

/// The system call's number on entry by a system call; -1 on entry by an exception.
pub(super) const PT_REGS_ORIG_AX: usize = 120;

pub(super) const PT_REGS_IP: usize = 128;

pub(super) const PT_REGS_SP: usize = 152;

pub(super) const PT_REGS_LEN: usize = 168;

/// Sends the user registers at `regs` (a `struct pt_regs`; 0: the current task's user
/// registers) and `STACK_COPY_BYTES` of user stack from their `sp` (no further than the top of
/// the thread's stack), for the events of kind `of` stamped `first` to `last`, whose
/// frame-pointer walk found `walked` frames. A walk that stopped at once (a leaf that uses the
/// frame-pointer register for other work, or code without frame pointers) gets the whole stack:
/// async stacks are deep (14 KiB to the task's poll in mini-redis, 27 KiB in actix-web), and
/// only the outer frames tell a worker's poll from other code. `slot` picks the CPU's scratch
/// (0 system-call exit, 1 sample). The current task is the thread itself.
#[inline(always)]
pub(super) fn copy_stack(
    tid: u32,
    of: u8,
    first: u64,
    last: u64,
    regs: u64,
    slot: u32,
    walked: u16,
) {
    let mut wanted = STACK_COPY_BYTES.load();
    // A stack the table unwound whole needs no bytes.
    if wanted == 0 || stopped() || walked & TABLE_UNWOUND != 0 {
        return;
    }
    let repair = walked <= SHALLOW_WALK;
    let cpu = cpu();
    let Some(scratch) = STACK_SCRATCH.get_ptr_mut(u32::from(cpu) * 2 + slot) else {
        return;
    };
    let regs = if regs != 0 {
        regs
    } else {
        // SAFETY: helpers on the current task; the result is a kernel pointer read below with
        // a checked read.
        unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as u64 }
    };
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
        count(Counter::StackCopyFailed);
        return;
    }
    let (ip, sp, bp) = (
        saved[PT_REGS_IP / 8],
        saved[PT_REGS_SP / 8],
        saved[PT_REGS_BP / 8],
    );
    let most = (MAX_STACK_COPY - 8) as u64;
    let top = stack_top(tid);
    if top > sp && top - sp <= most {
        // The whole stack fits: a repair takes all of it, any other copy no more than it.
        if repair || u64::from(wanted) > top - sp {
            wanted = (top - sp) as u32;
        }
    } else if repair {
        // Deeper than one copy holds: the innermost 64 KiB; top unknown: the repair window.
        wanted = if top > sp {
            most as u32
        } else {
            wanted.max(REPAIR_WINDOW)
        };
    }
    let mut len = (wanted as usize).min(MAX_STACK_COPY - 8) & (MAX_STACK_COPY - 1);
    if !ring_has_room(len as u64) || !within_budget(len as u64, first) {
        count(Counter::StackCopyOverBudget);
        return;
    }
    // SAFETY: `scratch` is this CPU's slot, a whole StackCopy; every read is bounded by its
    // bytes (the masks keep the verifier's bounds too).
    unsafe {
        let bytes = (*scratch).bytes.as_mut_ptr();
        // A stack may end (its mapping does) less than `len` bytes above `sp`: a failed read
        // reads nothing, so try shorter ones.
        let mut copied = false;
        for _ in 0..4 {
            len &= MAX_STACK_COPY - 1;
            if len == 0 {
                break;
            }
            if probe_read_user_raw(bytes.cast(), len as u32, sp as *const core::ffi::c_void) == 0 {
                copied = true;
                break;
            }
            len /= 2;
        }
        if !copied {
            count(Counter::StackCopyFailed);
            return;
        }
        let returns = super::polls::open_poll_returns(tid);
        (*scratch).head = StackCopyHeader {
            header: RecordHeader {
                kind: kind::STACK_COPY,
                flags: of,
                cpu,
                tid,
                ts_ns: first,
            },
            last_ns: last,
            ip,
            sp,
            bp,
            len: len as u32,
            _pad: 0,
            poll_returns: returns.0,
            poll_return_slots: returns.1,
        };
        let total = (core::mem::size_of::<StackCopyHeader>() + len) & (2 * MAX_STACK_COPY - 1);
        if total > core::mem::size_of::<StackCopy>() {
            return;
        }
        let record = core::slice::from_raw_parts(scratch as *const u8, total);
        if EVENTS.output::<[u8]>(record, NO_WAKEUP).is_err() {
            count(Counter::StackCopyFailed);
        }
    }
}

/// The top of the current thread's stack (0: unknown): its thread control block (the FS base)
/// for threads the target made, the end of `[stack]` for its main thread.
#[inline(always)]
fn stack_top(tid: u32) -> u64 {
    if tid == TARGET_TGID.load() {
        return MAIN_STACK_TOP.load();
    }
    let offset = TASK_FSBASE_OFFSET.load();
    if offset == 0 {
        return 0;
    }
    // SAFETY: a checked kernel read of one word of the current task.
    unsafe {
        let task = bpf_get_current_task();
        let mut fsbase = 0u64;
        let read = probe_read_kernel_raw(
            (&mut fsbase as *mut u64).cast(),
            8,
            (task + u64::from(offset)) as *const core::ffi::c_void,
        );
        if read == 0 {
            fsbase
        } else {
            0
        }
    }
}

/// Whether a copy of `len` bytes leaves the ring buffer at most a quarter full: copies only use
/// its slack, so they never crowd out switch records (a storm of short-lived threads, each
/// getting a repair window, lost switches before this check).
#[inline(always)]
pub(super) fn ring_has_room(len: u64) -> bool {
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    queued + len <= size / 4
}

/// Charges `len` bytes to this CPU's budget for the second of `ts`; false when over it.
#[inline(always)]
pub(super) fn within_budget(len: u64, ts: u64) -> bool {
    let budget = STACK_BUDGET_PER_CPU.load();
    if budget == 0 {
        return true;
    }
    let Some(b) = STACK_BUDGET.get_ptr_mut(0) else {
        return false;
    };
    let second = ts / 1_000_000_000;
    // SAFETY: this CPU's budget; the programs that charge it do not nest on a CPU in a way that
    // matters (a lost charge only lets one more copy through).
    unsafe {
        if (*b)[0] != second {
            (*b)[0] = second;
            (*b)[1] = 0;
        }
        if (*b)[1] + len > budget {
            return false;
        }
        (*b)[1] += len;
    }
    true
}
