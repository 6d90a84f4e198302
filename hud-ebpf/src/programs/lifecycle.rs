//! The threads' lives: fork gives a new thread of the target a slot, exit gives it back, and
//! both (and renames) are reported with the thread's name.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use hud_format::wire::{kind, Counter, RecordHeader, ThreadRecord};

use super::shared::{
    count, cpu, now, state_of, take_slot, task_index, EVENTS, FREE_SLOTS, NO_WAKEUP,
    OFFCPU_PENDING, OFF_FORK_CHILD_PID, OFF_RENAME_NEWCOMM, OFF_RENAME_PID, SLOTS, STATES,
    TARGET_TGID, TASKS,
};
use super::sys_exit::send_all_due;

pub(super) fn emit_thread(kind: u8, tid: u32, parent: u32, comm: [u8; 16]) {
    let rec = ThreadRecord {
        header: RecordHeader {
            kind,
            flags: 0,
            cpu: cpu(),
            tid,
            ts_ns: now(),
        },
        parent_tid: parent,
        _pad: 0,
        comm,
    };
    if EVENTS.output::<ThreadRecord>(&rec, NO_WAKEUP).is_err() {
        count(Counter::LostThread);
    }
}

#[tracepoint]
pub fn hud_sched_fork(ctx: TracePointContext) -> u32 {
    // Runs in the parent: a new thread of the target has the target as its process.
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() {
        return 0;
    }
    // SAFETY: offset from the format file.
    let child = unsafe { ctx.read_at::<u32>(OFF_FORK_CHILD_PID.load() as usize) }.unwrap_or(0);
    if child == 0 {
        return 0;
    }
    match (take_slot(), SLOTS.get_ptr_mut(child)) {
        (Some(slot), Some(entry)) => {
            if let Some(t) = STATES.get_ptr_mut(u32::from(slot)) {
                // SAFETY: a free slot's state, and the child's slot entry: no program uses
                // either until the entry is set.
                unsafe {
                    (*t).left_ns = 0;
                    (*t).woken_ns = 0;
                    (*t).state = 0;
                    (*t).due_count = 0;
                    (*t).io_polls = 0;
                    *entry = slot;
                }
            }
        }
        (Some(slot), None) => {
            let _ = FREE_SLOTS.push(slot, 0);
            count(Counter::ThreadMapFull);
        }
        (None, _) => count(Counter::ThreadMapFull),
    }
    // A new thread starts with its creator's name.
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    emit_thread(kind::THREAD_NEW, child, pid_tgid as u32, comm);
    0
}

#[tracepoint]
pub fn hud_sched_exit(_ctx: TracePointContext) -> u32 {
    // Runs in the exiting task.
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() {
        return 0;
    }
    let tid = pid_tgid as u32;
    if let Some(entry) = SLOTS.get_ptr_mut(tid) {
        // SAFETY: the exiting thread's own entry and state.
        unsafe {
            let slot = *entry;
            if slot != 0 {
                if let Some(t) = STATES.get_ptr_mut(u32::from(slot)) {
                    send_all_due(&mut *t, tid, 0, None);
                }
                *entry = 0;
                let _ = FREE_SLOTS.push(slot, 0);
            }
        }
    }
    let _ = OFFCPU_PENDING.remove(tid);
    // Its task_struct may be reused for any task once it is gone.
    // SAFETY: plain helper.
    let task = unsafe { bpf_get_current_task() };
    if let Some(e) = TASKS.get_ptr_mut(task_index(task)) {
        // SAFETY: a cache entry.
        unsafe {
            if (*e).task == task {
                (*e).task = 0;
            }
        }
    }
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    emit_thread(kind::THREAD_EXIT, tid, 0, comm);
    0
}

#[tracepoint]
pub fn hud_task_rename(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets from the format file.
    let tid = unsafe { ctx.read_at::<u32>(OFF_RENAME_PID.load() as usize) }.unwrap_or(0);
    if tid == 0 || state_of(tid).is_none() {
        return 0;
    }
    let comm =
        unsafe { ctx.read_at::<[u8; 16]>(OFF_RENAME_NEWCOMM.load() as usize) }.unwrap_or([0; 16]);
    emit_thread(kind::THREAD_RENAME, tid, 0, comm);
    0
}
