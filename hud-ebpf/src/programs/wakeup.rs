//! sched_wakeup: when a sleeping target thread became runnable (blocked vs waiting for a CPU).

use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use hud_format::wire::ThreadState;

use super::shared::{now, state_of, thread_of, OFF_WAKEUP_PID};

/// A target thread became runnable: note when, to split its off-CPU time into blocked and
/// waiting-for-a-CPU (scheduling pressure).
#[tracepoint]
pub fn hud_sched_wakeup(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from the format file.
    let tid = unsafe { ctx.read_at::<u32>(OFF_WAKEUP_PID.load() as usize) }.unwrap_or(0);
    if tid != 0 {
        woken(state_of(tid));
    }
    0
}

/// sched_wakeup as a raw tracepoint (the woken task): see `hud_sched_switch_raw`.
#[raw_tracepoint(tracepoint = "sched_wakeup")]
pub fn hud_sched_wakeup_raw(ctx: RawTracePointContext) -> i32 {
    // sched_wakeup's argument is the woken task.
    woken(thread_of(ctx.arg::<*const u8>(0)).1);
    0
}

/// Notes when a sleeping target thread (its state, if it is one) was woken.
#[inline(always)]
pub(super) fn woken(state: Option<*mut ThreadState>) {
    let Some(t) = state else {
        return;
    };
    // SAFETY: map value of that thread; a racing switch-in at worst loses this wakeup time.
    unsafe {
        if (*t).left_ns != 0 && (*t).woken_ns == 0 {
            (*t).woken_ns = now();
        }
    }
}
