//! The id of the Tokio task a target thread is polling, read from the thread's TLS (where tokio's
//! `CONTEXT.current_task_id` is: offsets hud-record read from the target's DWARF at attach). Read
//! only with samples and with kept off-CPU episodes (at the return from the system call the
//! thread blocked in), never per poll, per switch or per system call. (A per-call read, to count
//! the calls each task made, cost 200 ns more per system call of the target: 10 % of a CPU on the
//! busy demo's 480 k calls a second. The tick below says more, at the samples' rate.)
//!
//! With samples, the scheduler's tick too (`CONTEXT.scheduler` → `scheduler::Context` → its held
//! `Box<Core>` → `tick`): it moves at each task the scheduler polls, so two samples of one task
//! with the same tick were one poll, even when the worker never makes a system call.

use aya_ebpf::helpers::generated::{
    bpf_get_current_task, bpf_probe_read_kernel as probe_read_kernel_raw,
    bpf_probe_read_user as probe_read_user_raw,
};
use aya_ebpf::Global;
use hud_format::wire::NO_TICK;

use super::shared::TASK_FSBASE_OFFSET;

/// 1 when hud-record found where task ids are (then the offsets below are set).
#[unsafe(no_mangle)]
pub(super) static TASK_IDS: Global<u32> = Global::new(0);

/// The id's offset from the thread pointer (a negative `i64`, as its two's complement).
#[unsafe(no_mangle)]
pub(super) static TASK_ID_VALUE_AT: Global<u64> = Global::new(0);

/// The `Option`'s tag's offset from the thread pointer (the id's own, for a niche).
#[unsafe(no_mangle)]
pub(super) static TASK_ID_TAG_AT: Global<u64> = Global::new(0);

/// The tag's bytes within the 8 read at `TASK_ID_TAG_AT`.
#[unsafe(no_mangle)]
pub(super) static TASK_ID_TAG_MASK: Global<u64> = Global::new(u64::MAX);

/// The tag's value for `None` (no task running).
#[unsafe(no_mangle)]
pub(super) static TASK_ID_NONE: Global<u64> = Global::new(0);

/// 1 when the scheduler's tick is read too (the `TICK_*` globals are set).
#[unsafe(no_mangle)]
pub(super) static TICKS: Global<u32> = Global::new(0);

/// The pointer to the running `scheduler::Context`, from the thread pointer (two's complement).
#[unsafe(no_mangle)]
pub(super) static TICK_SCHED_AT: Global<u64> = Global::new(0);

/// The scheduler enum's tag: offset and mask.
#[unsafe(no_mangle)]
pub(super) static TICK_TAG_AT: Global<u64> = Global::new(0);

#[unsafe(no_mangle)]
pub(super) static TICK_TAG_MASK: Global<u64> = Global::new(u64::MAX);

/// Per scheduler kind (0 and 1): the tag value (unless `_ANY`, the variant without one), the
/// `Box<Core>` pointer's offset in the enum, the tick's offset in `Core` and its mask.
#[unsafe(no_mangle)]
pub(super) static TICK_V0_TAG: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V0_ANY: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V0_CORE_AT: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V0_TICK_AT: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V0_TICK_MASK: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V1_TAG: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V1_ANY: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V1_CORE_AT: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V1_TICK_AT: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V1_TICK_MASK: Global<u64> = Global::new(0);
/// Per scheduler kind: its kind code, already shifted into a tick's top byte.
#[unsafe(no_mangle)]
pub(super) static TICK_V0_KIND: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub(super) static TICK_V1_KIND: Global<u64> = Global::new(0);

/// A word of user memory; `None` when it cannot be read.
#[inline(always)]
fn read_user(at: u64) -> Option<u64> {
    let mut value = 0u64;
    // SAFETY: a checked read into a local.
    let failed = unsafe {
        probe_read_user_raw(
            (&mut value as *mut u64).cast(),
            8,
            at as *const core::ffi::c_void,
        )
    };
    (failed == 0).then_some(value)
}

/// The current thread's thread pointer (`fsbase`), where its TLS ends; 0 when unknown.
#[inline(always)]
fn thread_pointer() -> u64 {
    let offset = TASK_FSBASE_OFFSET.load();
    if offset == 0 {
        return 0;
    }
    let mut fsbase = 0u64;
    // SAFETY: a checked kernel read of one word of the current task.
    unsafe {
        let task = bpf_get_current_task();
        if probe_read_kernel_raw(
            (&mut fsbase as *mut u64).cast(),
            8,
            (task + u64::from(offset)) as *const core::ffi::c_void,
        ) != 0
        {
            return 0;
        }
    }
    fsbase
}

/// The current thread's task id; 0 when it polls none, or where ids are not read. (A failed
/// read, a page not present or a garbage address, gives no id.)
#[inline(always)]
pub(super) fn current_task_id() -> u64 {
    if TASK_IDS.load() == 0 {
        return 0;
    }
    let tp = thread_pointer();
    if tp == 0 {
        return 0;
    }
    task_id_at(tp)
}

#[inline(always)]
fn task_id_at(tp: u64) -> u64 {
    let value_at = tp.wrapping_add(TASK_ID_VALUE_AT.load());
    let tag_at = tp.wrapping_add(TASK_ID_TAG_AT.load());
    let Some(value) = read_user(value_at) else {
        return 0;
    };
    let tag = if tag_at == value_at {
        value
    } else {
        match read_user(tag_at) {
            Some(tag) => tag,
            None => return 0,
        }
    };
    if tag & TASK_ID_TAG_MASK.load() == TASK_ID_NONE.load() {
        0
    } else {
        value
    }
}

/// The current thread's task id and its scheduler's tick ([`NO_TICK`] when not read: no
/// runtime on the thread, its core not held, or a failed read).
#[inline(always)]
pub(super) fn task_and_tick() -> (u64, u64) {
    if TASK_IDS.load() == 0 {
        return (0, NO_TICK);
    }
    let tp = thread_pointer();
    if tp == 0 {
        return (0, NO_TICK);
    }
    (task_id_at(tp), tick_at(tp))
}

#[inline(always)]
fn tick_at(tp: u64) -> u64 {
    if TICKS.load() == 0 {
        return NO_TICK;
    }
    let Some(scheduler) = read_user(tp.wrapping_add(TICK_SCHED_AT.load())) else {
        return NO_TICK;
    };
    if scheduler == 0 {
        return NO_TICK;
    }
    let Some(tag) = read_user(scheduler.wrapping_add(TICK_TAG_AT.load())) else {
        return NO_TICK;
    };
    let tag = tag & TICK_TAG_MASK.load();
    let v0 = || {
        (
            TICK_V0_CORE_AT.load(),
            TICK_V0_TICK_AT.load(),
            TICK_V0_TICK_MASK.load(),
            TICK_V0_KIND.load(),
        )
    };
    let v1 = || {
        (
            TICK_V1_CORE_AT.load(),
            TICK_V1_TICK_AT.load(),
            TICK_V1_TICK_MASK.load(),
            TICK_V1_KIND.load(),
        )
    };
    let (core_at, tick_at, mask, kind) = if TICK_V0_ANY.load() == 0 && tag == TICK_V0_TAG.load() {
        v0()
    } else if TICK_V1_ANY.load() == 0 && tag == TICK_V1_TAG.load() {
        v1()
    } else if TICK_V0_ANY.load() != 0 {
        v0()
    } else if TICK_V1_ANY.load() != 0 {
        v1()
    } else {
        return NO_TICK;
    };
    if mask == 0 {
        return NO_TICK;
    }
    let Some(core) = read_user(scheduler.wrapping_add(core_at)) else {
        return NO_TICK;
    };
    if core == 0 {
        return NO_TICK;
    }
    match read_user(core.wrapping_add(tick_at)) {
        Some(tick) => (tick & mask & 0xffff_ffff) | kind,
        None => NO_TICK,
    }
}
