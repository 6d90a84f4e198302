//! The programs. Everything is filtered to one target process (tgid) in the kernel; nothing is
//! aggregated here: records stream to user space, which interns stacks.
//!
//! - `hud_sched_switch` (tracepoint sched/sched_switch): a switch record for each on/off-CPU
//!   transition of a target thread; at switch-out the thread's stack is parked in
//!   `OFFCPU_PENDING`; at switch-in, if it was away past the threshold, an off-CPU record.
//! - `hud_sched_fork` / `hud_sched_exit` / `hud_task_rename`: keep `TARGET_TIDS` (sched_switch only
//!   knows `next_pid`, not its process) and report the threads' lives and names.
//! - `hud_cpu_sample` (perf_event cpu-clock, one per CPU): a sample with the user stack.

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_get_stack,
        bpf_ktime_get_ns,
    },
    macros::{map, perf_event, tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{PerfEventContext, TracePointContext},
    EbpfContext, Global,
};
use hud_format::wire::{
    kind, Counter, RecordHeader, StackRecord, SwitchRecord, ThreadRecord, FLAG_SWITCH_IN,
    MAX_KERNEL_FRAMES, MAX_USER_FRAMES, STATE_PREEMPTED,
};

#[unsafe(no_mangle)]
static TARGET_TGID: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static OFFCPU_THRESHOLD_NS: Global<u64> = Global::new(1_000_000);
#[unsafe(no_mangle)]
static KERNEL_STACKS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static OFF_SWITCH_PREV_PID: Global<u32> = Global::new(24);
#[unsafe(no_mangle)]
static OFF_SWITCH_PREV_STATE: Global<u32> = Global::new(32);
#[unsafe(no_mangle)]
static OFF_SWITCH_NEXT_PID: Global<u32> = Global::new(56);
#[unsafe(no_mangle)]
static OFF_FORK_CHILD_PID: Global<u32> = Global::new(20);
#[unsafe(no_mangle)]
static OFF_RENAME_PID: Global<u32> = Global::new(8);
#[unsafe(no_mangle)]
static OFF_RENAME_NEWCOMM: Global<u32> = Global::new(28);
#[unsafe(no_mangle)]
static OFF_WAKEUP_PID: Global<u32> = Global::new(24);

/// Ring-buffer flag: don't wake the reader per record; hud-record drains on a short timer, which
/// costs far less than a wakeup per context switch.
const NO_WAKEUP: u64 = 1;

/// Records to user space. Size set by hud-record (`--buffer`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// What could not be delivered, per CPU, indexed by `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Thread ids of the target: seeded from /proc by hud-record, kept by fork/exit.
#[map]
static TARGET_TIDS: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

/// Per thread: the record being built while it is off CPU (stack taken at switch-out).
#[map]
static OFFCPU_PENDING: HashMap<u32, StackRecord> = HashMap::with_max_entries(4096, 0);

/// A zeroed record to insert into `OFFCPU_PENDING` (too big for the 512-byte BPF stack).
#[map]
static ZERO: PerCpuArray<StackRecord> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn count(counter: Counter) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, programs do not nest on one CPU for these hooks.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn cpu() -> u16 {
    // SAFETY: plain helper.
    unsafe { bpf_get_smp_processor_id() as u16 }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: plain helper.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn is_target_tid(tid: u32) -> bool {
    TARGET_TIDS.get_ptr(tid).is_some()
}

/// Fills the user (and optionally kernel) stack of the current task into `rec`.
#[inline(always)]
fn fill_stacks<C: EbpfContext>(ctx: &C, rec: *mut StackRecord) {
    // SAFETY: `rec` points to map or ring-buffer memory of a whole StackRecord.
    unsafe {
        let n = bpf_get_stack(
            ctx.as_ptr(),
            (*rec).user.as_mut_ptr().cast(),
            (MAX_USER_FRAMES * 8) as u32,
            BPF_F_USER_STACK as u64,
        );
        if n < 0 {
            (*rec).user_len = 0;
            count(Counter::UserStackError);
        } else {
            (*rec).user_len = (n as u64 / 8) as u16;
        }
        (*rec).kernel_len = 0;
        if KERNEL_STACKS.load() != 0 {
            let n = bpf_get_stack(
                ctx.as_ptr(),
                (*rec).kernel.as_mut_ptr().cast(),
                (MAX_KERNEL_FRAMES * 8) as u32,
                0,
            );
            if n < 0 {
                count(Counter::KernelStackError);
            } else {
                (*rec).kernel_len = (n as u64 / 8) as u16;
            }
        }
    }
}

fn emit_switch(tid: u32, ts: u64, cpu: u16, on_cpu: bool, prev_state: u32) {
    let rec = SwitchRecord {
        header: RecordHeader {
            kind: kind::SWITCH,
            flags: if on_cpu { FLAG_SWITCH_IN } else { 0 },
            cpu,
            tid,
            ts_ns: ts,
        },
        prev_state,
        _pad: 0,
    };
    if EVENTS.output::<SwitchRecord>(&rec, NO_WAKEUP).is_err() {
        count(Counter::LostSwitch);
    }
}

#[tracepoint]
pub fn hud_sched_switch(ctx: TracePointContext) -> u32 {
    let target = TARGET_TGID.load();
    let ts = now();
    let cpu = cpu();
    // The tracepoint runs on the outgoing task: `current` is prev.
    let pid_tgid = bpf_get_current_pid_tgid();
    let current_tgid = (pid_tgid >> 32) as u32;
    // SAFETY: offsets come from the tracepoint's format file; reads are checked helpers.
    let (prev_pid, prev_state, next_pid) = unsafe {
        (
            ctx.read_at::<u32>(OFF_SWITCH_PREV_PID.load() as usize)
                .unwrap_or(0),
            ctx.read_at::<i64>(OFF_SWITCH_PREV_STATE.load() as usize)
                .unwrap_or(0),
            ctx.read_at::<u32>(OFF_SWITCH_NEXT_PID.load() as usize)
                .unwrap_or(0),
        )
    };
    if current_tgid == target && prev_pid != 0 {
        let state = prev_state as u32;
        emit_switch(prev_pid, ts, cpu, false, state);
        park_stack(&ctx, prev_pid, ts, state);
    }
    if next_pid != 0 && is_target_tid(next_pid) {
        emit_switch(next_pid, ts, cpu, true, 0);
        finish_off_cpu(next_pid, ts, cpu);
    }
    0
}

/// At switch-out: remember when and with which stack the thread left.
#[inline(always)]
fn park_stack(ctx: &TracePointContext, tid: u32, ts: u64, state: u32) {
    let mut slot = OFFCPU_PENDING.get_ptr_mut(tid);
    if slot.is_none() {
        let Some(zero) = ZERO.get_ptr(0) else { return };
        // SAFETY: `zero` points to a whole zeroed record in map memory. Passed by reference: a
        // copy would not fit the 512-byte BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let inserted = OFFCPU_PENDING.insert(tid, unsafe { &*zero }, 0);
        if inserted.is_err() {
            count(Counter::ThreadMapFull);
            return;
        }
        slot = OFFCPU_PENDING.get_ptr_mut(tid);
    }
    let Some(rec) = slot else { return };
    // SAFETY: map value of this thread; only this thread's switches touch it.
    unsafe {
        (*rec).header.ts_ns = ts;
        (*rec).state = state;
        // Holds the wakeup time until switch-in (see `hud_sched_wakeup`).
        (*rec).runnable_ns = 0;
    }
    fill_stacks(ctx, rec);
}

/// At switch-in: if the thread was away at least the threshold, send the parked record.
#[inline(always)]
fn finish_off_cpu(tid: u32, ts: u64, cpu: u16) {
    let Some(rec) = OFFCPU_PENDING.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: as in `park_stack`.
    unsafe {
        let left = (*rec).header.ts_ns;
        if left == 0 || ts < left {
            return;
        }
        (*rec).header.ts_ns = 0;
        let duration = ts - left;
        if duration < OFFCPU_THRESHOLD_NS.load() {
            return;
        }
        (*rec).header.kind = kind::OFF_CPU;
        (*rec).header.flags = 0;
        (*rec).header.cpu = cpu;
        (*rec).header.tid = tid;
        (*rec).header.ts_ns = ts;
        (*rec).duration_ns = duration;
        let woke = (*rec).runnable_ns;
        (*rec).runnable_ns = if woke > left && woke <= ts {
            ts - woke
        } else if (*rec).state == 0 || (*rec).state & STATE_PREEMPTED != 0 {
            // Preempted: runnable all along, never woken.
            duration
        } else {
            0
        };
        let sent = EVENTS.output::<StackRecord>(&*rec, NO_WAKEUP);
        (*rec).header.ts_ns = 0;
        (*rec).duration_ns = 0;
        if sent.is_err() {
            count(Counter::LostOffCpu);
        }
    }
}

/// A target thread became runnable: note when, to split its off-CPU time into blocked and
/// waiting-for-a-CPU (scheduling pressure).
#[tracepoint]
pub fn hud_sched_wakeup(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from the format file.
    let tid = unsafe { ctx.read_at::<u32>(OFF_WAKEUP_PID.load() as usize) }.unwrap_or(0);
    if tid == 0 {
        return 0;
    }
    let Some(rec) = OFFCPU_PENDING.get_ptr_mut(tid) else {
        return 0;
    };
    // SAFETY: map value of that thread; a racing switch-in at worst loses this wakeup time.
    unsafe {
        if (*rec).header.ts_ns != 0 && (*rec).runnable_ns == 0 {
            (*rec).runnable_ns = now();
        }
    }
    0
}

fn emit_thread(kind: u8, tid: u32, parent: u32, comm: [u8; 16]) {
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
    if TARGET_TIDS.insert(child, 1, 0).is_err() {
        count(Counter::ThreadMapFull);
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
    let _ = TARGET_TIDS.remove(tid);
    let _ = OFFCPU_PENDING.remove(tid);
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    emit_thread(kind::THREAD_EXIT, tid, 0, comm);
    0
}

#[tracepoint]
pub fn hud_task_rename(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets from the format file.
    let tid = unsafe { ctx.read_at::<u32>(OFF_RENAME_PID.load() as usize) }.unwrap_or(0);
    if tid == 0 || !is_target_tid(tid) {
        return 0;
    }
    let comm =
        unsafe { ctx.read_at::<[u8; 16]>(OFF_RENAME_NEWCOMM.load() as usize) }.unwrap_or([0; 16]);
    emit_thread(kind::THREAD_RENAME, tid, 0, comm);
    0
}

#[perf_event]
pub fn hud_cpu_sample(ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() {
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<StackRecord>(0) else {
        count(Counter::LostSample);
        return 0;
    };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` is a reserved, exclusively owned ring-buffer slot of one StackRecord.
    unsafe {
        (*rec).header = RecordHeader {
            kind: kind::SAMPLE,
            flags: 0,
            cpu: cpu(),
            tid: pid_tgid as u32,
            ts_ns: now(),
        };
        (*rec).duration_ns = 0;
        (*rec).state = 0;
        (*rec).runnable_ns = 0;
    }
    fill_stacks(&ctx, rec);
    entry.submit(NO_WAKEUP);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
