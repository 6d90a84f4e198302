//! sys_exit: a thread with due off-CPU episodes sends them with the user stack it returns from
//! its system call with (the stack it blocked with), and a copy of its stack; with task ids, the
//! task the thread blocked in (see `task_id.rs`).

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, generated::bpf_probe_read_kernel as probe_read_kernel_raw,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::PerCpuArray,
    programs::{RawTracePointContext, TracePointContext},
};
use hud_format::wire::{
    kind, Counter, DueEpisode, RecordHeader, StackRecord, ThreadState, MAX_DUE, MAX_USER_FRAMES,
    NO_TICK,
};

use super::shared::{count, fill_stacks, state_of, EVENTS, NO_WAKEUP, TABLE_UNWOUND, TARGET_TGID};
use super::stack_copy::copy_stack;
use super::task_id::current_task_id;

/// The user stack of the first due episode a system call's return sends, for the others:
/// they share it, and taking it once keeps the unwinder out of the unrolled loop (verifying it
/// eight times took the kernel 0.17 s at every attach).
#[map]
static LAST_USER_STACK: PerCpuArray<[u64; MAX_USER_FRAMES]> = PerCpuArray::with_max_entries(1, 0);

/// Sends a due episode, with the current task's user stack when `ctx` is given (`first`: taken
/// now and kept; otherwise the one the first episode took, `walked` its frames); returns the
/// user frames found.
#[inline(always)]
pub(super) fn send_due(
    episode: &DueEpisode,
    tid: u32,
    task_id: u64,
    ctx: Option<&RawTracePointContext>,
    (first, walked): (bool, u16),
) -> u16 {
    let Some(mut entry) = EVENTS.reserve::<StackRecord>(0) else {
        count(Counter::LostOffCpu);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is a reserved, exclusively owned ring-buffer slot of one StackRecord.
    unsafe {
        (*rec).header = RecordHeader {
            kind: kind::OFF_CPU,
            flags: 0,
            cpu: episode.cpu as u16,
            tid,
            ts_ns: episode.end_ns,
        };
        (*rec).duration_ns = episode.duration_ns;
        (*rec).runnable_ns = episode.runnable_ns;
        (*rec).state = episode.state;
        (*rec).task_id = task_id;
        (*rec).tick = NO_TICK;
        (*rec).kernel_len = 0;
        let walked = match ctx {
            Some(ctx) if first => {
                let walked = fill_stacks(ctx, rec);
                if let Some(kept) = LAST_USER_STACK.get_ptr_mut(0) {
                    // One helper call: a plain copy is 127 loads and stores to verify.
                    probe_read_kernel_raw(
                        kept.cast(),
                        (MAX_USER_FRAMES * 8) as u32,
                        (*rec).user.as_ptr().cast(),
                    );
                }
                walked
            }
            Some(_) => {
                if let Some(kept) = LAST_USER_STACK.get_ptr(0) {
                    probe_read_kernel_raw(
                        (*rec).user.as_mut_ptr().cast(),
                        (MAX_USER_FRAMES * 8) as u32,
                        kept.cast(),
                    );
                }
                (*rec).user_len = (walked & !TABLE_UNWOUND).min(MAX_USER_FRAMES as u16);
                walked
            }
            None => {
                (*rec).user_len = 0;
                count(Counter::OffCpuStackMissed);
                0
            }
        };
        entry.submit(NO_WAKEUP);
        walked
    }
}

/// Sends every due episode of a thread (with the current user stack when `ctx` is given);
/// returns the user frames the walk found (they share one stack).
#[inline(always)]
pub(super) fn send_all_due(
    t: &mut ThreadState,
    tid: u32,
    task_id: u64,
    ctx: Option<&RawTracePointContext>,
) -> u16 {
    let n = t.due_count as usize;
    t.due_count = 0;
    let mut walked = 0;
    for i in 0..MAX_DUE {
        if i >= n {
            break;
        }
        if let Some(episode) = t.due.get(i) {
            walked = send_due(episode, tid, task_id, ctx, (i == 0, walked));
        }
    }
    walked
}

/// A target thread returns from a system call: the off-CPU episodes that wait for its stack get
/// this one (the user registers are those it entered the call with).
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn hud_sys_exit(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() {
        return 0;
    }
    let tid = pid_tgid as u32;
    let Some(t) = state_of(tid) else {
        return 0;
    };
    // SAFETY: map value of the current thread.
    unsafe {
        let n = (*t).due_count as usize;
        if n != 0 {
            // The task the call was made in: the one its due episodes blocked in.
            let task_id = current_task_id();
            let first = (*t).due.first().map_or(0, |e| e.end_ns);
            let last = (*t).due.get(n.min(MAX_DUE) - 1).map_or(first, |e| e.end_ns);
            let walked = send_all_due(&mut *t, tid, task_id, Some(&ctx));
            // sys_exit's first argument: the registers the thread entered the call with.
            let regs = ctx.arg::<u64>(0);
            copy_stack(tid, kind::OFF_CPU, first, last, regs, 0, walked);
        }
    }
    0
}

/// A target thread returns from `epoll_wait` (or `epoll_pwait`, `epoll_pwait2`): its runtime's
/// I/O driver polled, between two tasks' polls. Counted for the samples that can read no task id
/// ([`hud_format::wire::TICK_OF_IO_POLLS`]). Attached to those system calls' own tracepoints, it
/// costs nothing at other calls.
#[tracepoint]
pub fn hud_io_poll(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() {
        return 0;
    }
    if let Some(t) = state_of(pid_tgid as u32) {
        // SAFETY: the current thread's own state; only the thread itself writes this field.
        unsafe { (*t).io_polls = (*t).io_polls.wrapping_add(1) };
    }
    0
}
