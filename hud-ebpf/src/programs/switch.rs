//! sched_switch: a switch record for each on/off-CPU transition of a target thread, kept per
//! CPU in a batch, and the thread's state (when and how it left); at switch-in an episode past
//! the threshold becomes due (or, with kernel stacks or in a page fault, is sent with the stacks
//! parked at switch-out).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
    EbpfContext,
};
use hud_format::wire::{
    kind, Counter, DueEpisode, RecordHeader, StackRecord, SwitchBatch, SwitchEntry, TaskCacheEntry,
    ThreadState, COPY_AT_SWITCH_OUT, ENTRY_SWITCH_IN, STATE_IN_FAULT, STATE_PREEMPTED,
    SWITCH_BATCH_LEN, SWITCH_BATCH_MAX_AGE_NS,
};

use super::shared::{
    cached, count, count_n, cpu, field, fill_stacks, now, slept, slot_of, state_of, stopped,
    task_index, thread_of, BATCHES, EVENTS, KERNEL_STACKS, NO_WAKEUP, OFFCPU_PENDING,
    OFFCPU_THRESHOLD_NS, OFF_SWITCH_NEXT_PID, OFF_SWITCH_PREV_PID, OFF_SWITCH_PREV_STATE, STATES,
    SWITCH_RECORD_BYTES, TARGET_TGID, TASKS, ZERO,
};
use super::stack_copy::{copy_stack, PT_REGS_ORIG_AX};
use super::sys_exit::send_due;
use super::task_id::current_task_id;

/// Adds a switch's entries (the target thread leaving, the target thread arriving, or both) to
/// this CPU's batch, sending the batch when full or old. (After hud-record stops, nothing is
/// sent: the batch fills up and is read by hud-record.)
///
/// Plain integers (tid 0 for none), not `Option`s: LLVM may leave the payload of a `None`
/// undefined, and the verifier rejects reading such a register.
#[inline(always)]
pub(super) fn push_switch(ts: u64, out_tid: u32, out_state: u32, in_tid: u32) {
    let Some(b) = BATCHES.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's batch; the programs that write it do not nest on a CPU.
    unsafe {
        let mut n = (*b).count as usize;
        if n == 0 {
            (*b).header.ts_ns = ts;
            (*b).header.cpu = cpu();
        }
        if out_tid != 0 {
            let Some(entry) = (*b).entries.get_mut(n) else {
                return;
            };
            *entry = SwitchEntry {
                ts_ns: ts,
                tid: out_tid,
                state: out_state & !ENTRY_SWITCH_IN,
            };
            n += 1;
        }
        if in_tid != 0 {
            let Some(entry) = (*b).entries.get_mut(n) else {
                return;
            };
            *entry = SwitchEntry {
                ts_ns: ts,
                tid: in_tid,
                state: ENTRY_SWITCH_IN,
            };
            n += 1;
        }
        (*b).count = n as u32;
        // Room for the next switch's two entries, or send.
        if n + 2 > SWITCH_BATCH_LEN
            || ts.saturating_sub((*b).header.ts_ns) >= SWITCH_BATCH_MAX_AGE_NS
        {
            send_batch(b);
        }
    }
}

/// Sends this CPU's batch if its first switch is older than the maximum age (from the sampler,
/// which also runs on CPUs that stopped switching).
#[inline(always)]
pub(super) fn send_stale_batch(ts: u64) {
    let Some(b) = BATCHES.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as in `push_switch`.
    unsafe {
        if (*b).count != 0 && ts.saturating_sub((*b).header.ts_ns) >= SWITCH_BATCH_MAX_AGE_NS {
            send_batch(b);
        }
    }
}

/// # Safety
/// `b` is this CPU's batch.
#[inline(always)]
pub(super) unsafe fn send_batch(b: *mut SwitchBatch) {
    unsafe {
        let n = (*b).count;
        if n == 0 || stopped() {
            return;
        }
        (*b).header.kind = kind::SWITCH_BATCH;
        if EVENTS.output::<SwitchBatch>(&*b, NO_WAKEUP).is_err() {
            count_n(Counter::LostSwitch, u64::from(n));
        }
        (*b).count = 0;
    }
}

/// sched_switch as a classic tracepoint: the fields come from its formatted record (kernels
/// without BTF; see `hud_sched_switch_raw`).
#[tracepoint]
pub fn hud_sched_switch(ctx: TracePointContext) -> u32 {
    // The tracepoint runs on the outgoing task: `current` is prev.
    let current_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // One copy of the record instead of a helper call per field.
    // SAFETY: the tracepoint's record is at least this long (sched_switch's is 64 bytes).
    let Ok(record) =
        (unsafe { bpf_probe_read_kernel(ctx.as_ptr() as *const [u8; SWITCH_RECORD_BYTES]) })
    else {
        return 0;
    };
    let prev_pid: u32 = field(&record, OFF_SWITCH_PREV_PID.load());
    let next_pid: u32 = field(&record, OFF_SWITCH_NEXT_PID.load());
    let prev = if current_tgid == TARGET_TGID.load() && prev_pid != 0 {
        let state = field::<i64>(&record, OFF_SWITCH_PREV_STATE.load()) as u32;
        Some((prev_pid, state, state_of(prev_pid)))
    } else {
        None
    };
    // Kernels without BTF (where this classic tracepoint is used) have no BTF pointer to a
    // task's registers: page faults are not told from system calls there.
    let next = (
        next_pid,
        if next_pid != 0 {
            state_of(next_pid)
        } else {
            None
        },
    );
    on_switch(&ctx, prev, next, false);
    0
}

/// sched_switch as a raw tracepoint (preempt, prev, next, prev_state): no record is formatted
/// for it, which on a switch storm cost more than the program itself. `prev` is `current`; the
/// next task's pid is read at the offset hud-record found in the kernel's BTF.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn hud_sched_switch_raw(ctx: RawTracePointContext) -> i32 {
    // sched_switch's arguments on Linux 5.18+ (hud-record checks the prototype).
    let (preempt, prev_task, next, raw_state) = (
        ctx.arg::<u64>(0) & 1 != 0,
        ctx.arg::<u64>(1),
        ctx.arg::<*const u8>(2),
        ctx.arg::<u64>(3) as u32,
    );
    let state = reported_state(preempt, raw_state);
    let prev = match cached(prev_task) {
        // A target thread with a slot, known by its task pointer: no helper call, no lookup
        // of its slot (a switch-out of one costs that much less; the storm's are all such).
        Some(e) => Some((e.tid, state, STATES.get_ptr_mut(e.slot))),
        None => {
            let pid_tgid = bpf_get_current_pid_tgid();
            if (pid_tgid >> 32) as u32 == TARGET_TGID.load() && pid_tgid as u32 != 0 {
                let tid = pid_tgid as u32;
                let slot = slot_of(tid);
                // Cached only while the thread has a slot: its last switch-out, after its
                // exit cleared the entry, must not put it back.
                if let (Some(slot), Some(e)) = (slot, TASKS.get_ptr_mut(task_index(prev_task))) {
                    // SAFETY: a cache entry; a race with another CPU at worst costs a later
                    // miss.
                    unsafe {
                        *e = TaskCacheEntry {
                            task: prev_task,
                            tid,
                            slot,
                        }
                    };
                }
                Some((tid, state, slot.and_then(|s| STATES.get_ptr_mut(s))))
            } else {
                None
            }
        }
    };
    let may_fault = raw_state & TASK_FREEZABLE == 0 || raw_state & TASK_INTERRUPTIBLE == 0;
    on_switch(&ctx, prev, thread_of(next), may_fault);
    0
}

/// A sleep the freezer may stop (Linux 6.1+): futex waits, nanosleep, most timed waits. An
/// interruptible one (`S`) is never a page fault's (a page's lock or I/O and the mmap lock sleep
/// in `D`; userfaultfd's in `S` but not freezable; NFS's in `D` and freezable), so the registers
/// are not read for it: on the storm, whose threads sleep in futexes, reading them cost ~35 ns a
/// switch. Older kernels never set this bit: every sleep is checked there.
const TASK_FREEZABLE: u32 = 0x2000;

/// `S`: a sleep a signal may end.
const TASK_INTERRUPTIBLE: u32 = 1;

/// The state the classic tracepoint reports for a task that leaves the CPU in `state`
/// (`__trace_sched_switch_state`): TASK_REPORT_MAX when preempted, else the highest
/// TASK_REPORT bit, with TASK_IDLE as its own state and a sleeping RT lock as D.
#[inline(always)]
pub(super) fn reported_state(preempt: bool, state: u32) -> u32 {
    const TASK_REPORT: u32 = 0x7f;
    const TASK_IDLE: u32 = 0x402;
    const TASK_REPORT_IDLE: u32 = 0x80;
    const TASK_RTLOCK_WAIT: u32 = 0x1000;
    const TASK_UNINTERRUPTIBLE: u32 = 2;
    if preempt {
        return STATE_PREEMPTED;
    }
    if state & TASK_RTLOCK_WAIT != 0 {
        return TASK_UNINTERRUPTIBLE;
    }
    if state & TASK_IDLE == TASK_IDLE {
        return TASK_REPORT_IDLE;
    }
    let report = state & TASK_REPORT;
    if report & report.wrapping_sub(1) == 0 {
        // One bit (S, D, …) or none: the usual case, without counting leading zeros.
        report
    } else {
        1 << (31 - report.leading_zeros())
    }
}

/// A switch: `prev` (tid, reported state, its state entry when it has a slot) when a target
/// thread leaves, `next` the incoming task's pid and its state when it is a target thread;
/// `faults`: whether prev's sleep may be a page fault (its registers are then read).
#[inline(always)]
pub(super) fn on_switch<C: EbpfContext>(
    ctx: &C,
    prev: Option<(u32, u32, Option<*mut ThreadState>)>,
    (next_pid, next): (u32, Option<*mut ThreadState>),
    faults: bool,
) {
    if prev.is_none() && next.is_none() {
        return;
    }
    let ts = now();
    let (out_tid, out_state) = prev.map_or((0, 0), |(tid, state, _)| (tid, state));
    push_switch(
        ts,
        out_tid,
        out_state,
        if next.is_some() { next_pid } else { 0 },
    );
    if let Some((prev_pid, state, Some(t))) = prev {
        // A stack parked for an earlier switch-out is never this one's (were that switch's
        // return missed, a later sleep would have sent it with the fault's stack).
        // SAFETY: map value of this thread; only its own switches write these fields.
        unsafe {
            (*t).left_ns = ts;
            (*t).woken_ns = 0;
            (*t).state = state;
            (*t).parked = 0;
        }
        if slept(state) {
            let fault = faults && in_exception();
            if fault {
                // SAFETY: as above.
                unsafe { (*t).state = state | STATE_IN_FAULT };
            }
            if KERNEL_STACKS.load() != 0 {
                park_stacks(ctx, prev_pid);
            } else if fault {
                if let Some(walked) = park_stacks(ctx, prev_pid) {
                    // SAFETY: as above.
                    unsafe { (*t).parked = 1 };
                    // Its stack bytes too, for code without frame pointers: now, while the
                    // thread's memory is the current one.
                    copy_stack(
                        prev_pid,
                        kind::OFF_CPU | COPY_AT_SWITCH_OUT,
                        ts,
                        ts,
                        0,
                        0,
                        walked,
                    );
                }
            }
        }
    }
    if let Some(t) = next {
        // SAFETY: as above.
        unsafe { switched_in(&mut *t, next_pid, ts) };
    }
}

/// Whether the current task entered the kernel by an exception (a page fault) rather than a
/// system call: x86-64's entry code leaves the call's number in `orig_ax` for a system call and
/// -1 for an exception. A thread that sleeps in a page fault returns from no system call, so
/// the stack of where it blocked must be taken now.
#[inline(always)]
fn in_exception() -> bool {
    // SAFETY: helpers on the current task. `bpf_task_pt_regs` returns a BTF pointer to its
    // saved user registers: read with a plain load, which the verifier checks against
    // `struct pt_regs` (a helper call to read it cost ~80 ns a switch on the storm).
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const i64;
        core::ptr::read_volatile(regs.byte_add(PT_REGS_ORIG_AX)) == -1
    }
}

/// At switch-in: if the thread slept past the threshold, the episode is sent (kernel-stacks
/// mode, or a page fault: with the stacks parked at switch-out) or becomes due (sent with the
/// user stack at the thread's next return from a system call, `hud_sys_exit`).
#[inline(always)]
pub(super) fn switched_in(t: &mut ThreadState, tid: u32, ts: u64) {
    let left = t.left_ns;
    let parked = t.parked != 0;
    t.left_ns = 0;
    t.parked = 0;
    if left == 0 || ts < left || !slept(t.state) {
        return;
    }
    let duration = ts - left;
    if duration < OFFCPU_THRESHOLD_NS.load() {
        return;
    }
    let woken = t.woken_ns;
    let runnable = if woken > left && woken <= ts {
        ts - woken
    } else {
        0
    };
    let cpu = cpu();
    if KERNEL_STACKS.load() != 0 || parked {
        // Outside kernel-stacks mode only a page fault parks its stack: the two go together.
        let state = if parked {
            t.state | STATE_IN_FAULT
        } else {
            t.state
        };
        send_parked(tid, ts, cpu, duration, runnable, state);
        return;
    }
    let episode = DueEpisode {
        end_ns: ts,
        duration_ns: duration,
        runnable_ns: runnable,
        state: t.state,
        cpu: u32::from(cpu),
    };
    match t.due.get_mut(t.due_count as usize) {
        Some(slot) => {
            *slot = episode;
            t.due_count += 1;
        }
        // More sleeps than slots before a return from a system call: this one goes without
        // its stack.
        None => {
            send_due(&episode, tid, 0, None, (true, 0));
        }
    }
}

/// At a switch-out the thread slept through (every one in kernel-stacks mode, page faults
/// otherwise): its stacks, parked until it comes back. The user frames the walk found, `None`
/// when no slot was free.
#[inline(always)]
pub(super) fn park_stacks<C: EbpfContext>(ctx: &C, tid: u32) -> Option<u16> {
    let mut slot = OFFCPU_PENDING.get_ptr_mut(tid);
    if slot.is_none() {
        let zero = ZERO.get_ptr(0)?;
        // SAFETY: `zero` points to a whole zeroed record in map memory. Passed by reference: a
        // copy would not fit the 512-byte BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let inserted = OFFCPU_PENDING.insert(tid, unsafe { &*zero }, 0);
        if inserted.is_err() {
            count(Counter::ThreadMapFull);
            return None;
        }
        slot = OFFCPU_PENDING.get_ptr_mut(tid);
    }
    let rec = slot?;
    let walked = fill_stacks(ctx, rec);
    // SAFETY: as above; the switch-out runs in the thread's own context, so its TLS is current.
    unsafe {
        (*rec).task_id = current_task_id();
        (*rec).tick = hud_format::wire::NO_TICK;
    }
    Some(walked)
}

/// At switch-in of a kept episode whose stacks were parked: send it with them.
#[inline(always)]
pub(super) fn send_parked(tid: u32, ts: u64, cpu: u16, duration: u64, runnable: u64, state: u32) {
    let Some(rec) = OFFCPU_PENDING.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: map value of this thread; only its own switches touch it.
    unsafe {
        (*rec).header = RecordHeader {
            kind: kind::OFF_CPU,
            flags: 0,
            cpu,
            tid,
            ts_ns: ts,
        };
        (*rec).duration_ns = duration;
        (*rec).runnable_ns = runnable;
        (*rec).state = state;
        if EVENTS.output::<StackRecord>(&*rec, NO_WAKEUP).is_err() {
            count(Counter::LostOffCpu);
        }
    }
}
