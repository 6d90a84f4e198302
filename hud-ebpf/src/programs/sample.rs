//! cpu-clock samples (perf_event, one per CPU): the user stack of a target thread on CPU, and a
//! stack copy where the walk may have missed callers.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::perf_event, programs::PerfEventContext, EbpfContext,
};
use hud_format::wire::{
    kind, Counter, RecordHeader, StackRecord, NO_TICK, SHALLOW_WALK, TICK_KIND_SHIFT,
    TICK_OF_IO_POLLS,
};

use super::shared::{
    count, cpu, fill_stacks, now, state_of, stopped, COPY_USER_SAMPLES, EVENTS, NO_WAKEUP,
    TARGET_TGID,
};
use super::stack_copy::copy_stack;
use super::switch::send_stale_batch;
use super::task_id::task_and_tick;

#[perf_event]
pub fn hud_cpu_sample(ctx: PerfEventContext) -> u32 {
    // Runs on every CPU, busy or not: sends the switches a CPU kept since it stopped switching.
    send_stale_batch(now());
    let pid_tgid = bpf_get_current_pid_tgid();
    // Once hud-record stops, samples could no longer get their stack copies: none are taken.
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() || stopped() {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<StackRecord>(0) else {
        count(Counter::LostSample);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    let (tid, ts) = (pid_tgid as u32, now());
    // SAFETY: `rec` is a reserved, exclusively owned ring-buffer slot of one StackRecord.
    unsafe {
        (*rec).header = RecordHeader {
            kind: kind::SAMPLE,
            flags: 0,
            cpu: cpu(),
            tid,
            ts_ns: ts,
        };
        (*rec).duration_ns = 0;
        (*rec).state = 0;
        (*rec).runnable_ns = 0;
        let (task, mut tick) = task_and_tick();
        if task == 0 && tick == NO_TICK {
            // No task id to tell polls apart: the I/O driver's polls still split some.
            if let Some(t) = state_of(tid) {
                tick = (TICK_OF_IO_POLLS << TICK_KIND_SHIFT) | u64::from((*t).io_polls);
            }
        }
        (*rec).task_id = task;
        (*rec).tick = tick;
    }
    let walked = fill_stacks(&ctx, rec);
    entry.submit(NO_WAKEUP);
    if COPY_USER_SAMPLES.load() != 0 || walked <= SHALLOW_WALK || !interrupted_user_code(&ctx) {
        copy_stack(tid, kind::SAMPLE, ts, ts, 0, 1, walked);
    }
    0
}

/// Whether the sample interrupted the thread in user mode (the privilege level of its code
/// segment, `regs.cs`, is 3) rather than in the kernel (a system call, a page fault).
#[inline(always)]
pub(super) fn interrupted_user_code(ctx: &PerfEventContext) -> bool {
    const PT_REGS_CS: usize = 136;
    // SAFETY: the context is a `bpf_perf_event_data`, whose first member is the interrupted
    // `pt_regs`; the verifier allows reading its fields.
    let cs = unsafe { *(ctx.as_ptr() as *const u64).add(PT_REGS_CS / 8) };
    cs & 3 == 3
}
