//! The programs. Everything is filtered to one target process (tgid) in the kernel; nothing is
//! aggregated here: records stream to user space, which interns stacks.
//!
//! - `hud_sched_switch_raw` (raw tracepoint sched_switch; `hud_sched_switch`, the classic
//!   tracepoint, where the kernel has no BTF): a switch record for each on/off-CPU
//!   transition of a target thread, and the thread's [`ThreadState`]: when and how it left. At
//!   switch-in, an episode past the threshold that the thread slept through becomes *due*.
//! - `hud_sys_exit` (raw tracepoint sys_exit): a thread with a due episode sends its off-CPU
//!   record with the user stack it has on returning from the system call: for a thread that
//!   blocked in a system call (sleep, read, futex: every wait a Tokio worker makes), the stack it
//!   blocked with, read in its own context. So the switch-out path, which runs on every switch
//!   of the target, is a timestamp and a state, and only the episodes that are kept pay for a
//!   stack (a switch program that took the stack at every switch-out cost 1.5–2.5 µs per run).
//!   Preemptions (the thread stayed runnable) send nothing: no blocking stack is needed, and
//!   the switch records already hold their time.
//! - With kernel stacks (`KERNEL_STACKS`), the stack of a voluntary switch-out is taken there
//!   (the kernel stack of the blocking point only exists then), parked in `OFFCPU_PENDING`, and
//!   sent at switch-in when the episode is kept.
//! - `hud_sched_wakeup_raw` (or the classic `hud_sched_wakeup`): when a sleeping target thread
//!   was woken (blocked vs waiting for a CPU).
//! - `hud_sched_fork` / `hud_sched_exit` / `hud_task_rename`: keep `SLOTS` (sched_switch only
//!   knows `next`, not its process) and report the threads' lives and names.
//!
//! Per switch, the work is array lookups (the thread's slot, its state) and an entry in the
//! CPU's switch batch; the ring buffer is touched once per batch.
//! - `hud_cpu_sample` (perf_event cpu-clock, one per CPU): a sample with the user stack.
//!
//! Stack copies (`copy_stack`): with a sample, and at the return from a system call that sends
//! due episodes, the thread's user registers and `STACK_COPY_BYTES` of its stack from `sp` up,
//! for the analyzer to unwind offline (frames a frame-pointer walk cannot follow). Only events
//! that are kept pay for one: a switch-out copies nothing, since a thread's registers and stack
//! do not change while it is off CPU and its return from the system call has both. Each CPU may
//! copy `STACK_BUDGET_PER_CPU` bytes a second; a copy over it is left out and counted (its event
//! keeps its frame-pointer stack).

use aya_ebpf::{
    bindings::{BPF_F_USER_STACK, BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_smp_processor_id, bpf_get_stack, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{
            bpf_get_current_task_btf, bpf_probe_read_kernel as probe_read_kernel_raw,
            bpf_probe_read_user as probe_read_user_raw, bpf_task_pt_regs,
        },
    },
    macros::{map, perf_event, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray, Queue, RingBuf},
    programs::{PerfEventContext, RawTracePointContext, TracePointContext},
    EbpfContext, Global,
};
use hud_format::wire::{
    kind, Counter, DueEpisode, RecordHeader, StackCopy, StackCopyHeader, StackRecord, SwitchBatch,
    SwitchEntry, TaskCacheEntry, ThreadRecord, ThreadState, ENTRY_SWITCH_IN, MAX_DUE,
    MAX_KERNEL_FRAMES, MAX_STACK_COPY, MAX_THREADS, MAX_USER_FRAMES, REPAIR_WINDOW, SHALLOW_WALK,
    STATE_PREEMPTED, SWITCH_BATCH_LEN, SWITCH_BATCH_MAX_AGE_NS, TASK_CACHE_ENTRIES,
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
/// Offset of `pid` in `struct task_struct`, from the kernel's BTF (raw tracepoints only).
#[unsafe(no_mangle)]
static TASK_PID_OFFSET: Global<u32> = Global::new(0);

/// User stack bytes copied with each kept event (0: none; see `copy_stack`).
#[unsafe(no_mangle)]
static STACK_COPY_BYTES: Global<u32> = Global::new(0);
/// 1: copy with samples that interrupted user code too (`--unwind dwarf`); 0: only with
/// samples taken in a system call, whose leaf is a libc wrapper (the leaf window).
#[unsafe(no_mangle)]
static COPY_USER_SAMPLES: Global<u32> = Global::new(0);
/// Stack bytes each CPU may copy per second.
#[unsafe(no_mangle)]
static STACK_BUDGET_PER_CPU: Global<u64> = Global::new(0);

/// Ring-buffer flag: don't wake the reader per record; hud-record drains on a short timer, which
/// costs far less than a wakeup per context switch.
const NO_WAKEUP: u64 = 1;

/// Bytes of the sched_switch record read in one copy (hud-record checks the offsets it sets
/// against it).
const SWITCH_RECORD_BYTES: usize = hud_format::wire::offsets::SWITCH_RECORD_BYTES;

/// Records to user space. Size set by hud-record (`--buffer`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// What could not be delivered, per CPU, indexed by `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Indexed by tid: the thread's slot in `STATES`, 0 for every thread not the target's. Sized by
/// hud-record to the kernel's pid_max. Also the filter: sched_switch only knows `next`'s pid.
#[map]
static SLOTS: Array<u16> = Array::with_max_entries(1, 0);

/// Indexed by slot: what the programs keep per target thread.
#[map]
static STATES: Array<ThreadState> = Array::with_max_entries(MAX_THREADS, 0);

/// Slots free for new threads: hud-record fills it, fork takes, exit gives back.
#[map]
static FREE_SLOTS: Queue<u16> = Queue::with_max_entries(MAX_THREADS, 0);

/// Per CPU: the switches not yet sent.
#[map]
static BATCHES: PerCpuArray<SwitchBatch> = PerCpuArray::with_max_entries(1, 0);

/// A cache of task_struct pointer → tid for the target's threads, direct-mapped: a raw
/// tracepoint hands over task pointers, and reading the pid out of one (`bpf_probe_read_kernel`)
/// cost more than the rest of a switch's work. Filled at each switch-out of a target thread,
/// cleared at its exit (before its task_struct can be reused); a miss reads the pid.
#[map]
static TASKS: Array<TaskCacheEntry> = Array::with_max_entries(TASK_CACHE_ENTRIES, 0);

/// The cache slot of a task_struct pointer (objects are cache-line aligned and ~10 KiB apart).
#[inline(always)]
fn task_index(task: u64) -> u32 {
    (((task >> 6) ^ (task >> 16)) as u32) & (TASK_CACHE_ENTRIES - 1)
}

/// The pid of `task`: from the cache when it is a known target thread, else read.
#[inline(always)]
fn pid_of(task: *const u8) -> u32 {
    if let Some(e) = TASKS.get(task_index(task as u64)) {
        if e.task == task as u64 {
            return e.tid;
        }
    }
    // SAFETY: `task` is a task_struct; the offset comes from BTF. A failed read is pid 0.
    unsafe { bpf_probe_read_kernel(task.add(TASK_PID_OFFSET.load() as usize) as *const u32) }
        .unwrap_or(0)
}

/// Two per CPU (index 2 × cpu, + 1 for samples): the stack copy being filled. A sample may
/// interrupt the system-call exit program on its CPU, so they do not share one. Too big for a
/// per-CPU array (32 KiB at most); hud-record sizes it to the possible CPUs.
#[map]
static STACK_SCRATCH: Array<StackCopy> = Array::with_max_entries(2, 0);

/// Per CPU: `[0]` the second (of `bpf_ktime_get_ns`) being budgeted, `[1]` stack bytes copied
/// in it.
#[map]
static STACK_BUDGET: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// `[0]`: 1 once hud-record stops; the batches are then left alone for it to read.
#[map]
static CONTROL: Array<u32> = Array::with_max_entries(1, 0);

/// Kernel-stacks mode only: per thread, the record being built while it is off CPU (stacks
/// taken at switch-out).
#[map]
static OFFCPU_PENDING: HashMap<u32, StackRecord> = HashMap::with_max_entries(4096, 0);

/// A zeroed record to insert into `OFFCPU_PENDING` (too big for the 512-byte BPF stack).
#[map]
static ZERO: PerCpuArray<StackRecord> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn count(counter: Counter) {
    count_n(counter, 1);
}

#[inline(always)]
fn count_n(counter: Counter, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, programs do not nest on one CPU for these hooks.
        unsafe { *p += n };
    }
}

/// The state of target thread `tid`, if it is one.
#[inline(always)]
fn state_of(tid: u32) -> Option<*mut ThreadState> {
    let slot = *SLOTS.get(tid)?;
    if slot == 0 {
        return None;
    }
    STATES.get_ptr_mut(u32::from(slot))
}

#[inline(always)]
fn stopped() -> bool {
    CONTROL.get(0).is_some_and(|v| *v != 0)
}

/// Adds a switch's entries (the target thread leaving, the target thread arriving, or both) to
/// this CPU's batch, sending the batch when full or old. (After hud-record stops, nothing is
/// sent: the batch fills up and is read by hud-record.)
///
/// Plain integers (tid 0 for none), not `Option`s: LLVM may leave the payload of a `None`
/// undefined, and the verifier rejects reading such a register.
#[inline(always)]
fn push_switch(ts: u64, out_tid: u32, out_state: u32, in_tid: u32) {
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
fn send_stale_batch(ts: u64) {
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
unsafe fn send_batch(b: *mut SwitchBatch) {
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

/// Fills the user (and optionally kernel) stack of the current task into `rec`; returns the
/// user frames the walk found.
#[inline(always)]
fn fill_stacks<C: EbpfContext>(ctx: &C, rec: *mut StackRecord) -> u16 {
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
        (*rec).user_len
    }
}

/// Reads a `T` at `offset` of a copied tracepoint record; 0 when it does not fit.
#[inline(always)]
fn field<T: Default + Copy>(record: &[u8; SWITCH_RECORD_BYTES], offset: u32) -> T {
    let offset = offset as usize;
    if offset + core::mem::size_of::<T>() > SWITCH_RECORD_BYTES {
        return T::default();
    }
    // SAFETY: bounds checked above; the record is plain bytes.
    unsafe { core::ptr::read_unaligned(record.as_ptr().add(offset).cast::<T>()) }
}

/// Whether a switch-out in `state` was the thread's own doing (it slept) rather than a
/// preemption (it stayed runnable): only those episodes can block a task and need a stack.
#[inline(always)]
fn slept(state: u32) -> bool {
    state != 0 && state & STATE_PREEMPTED == 0
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
        Some((prev_pid, state))
    } else {
        None
    };
    on_switch(&ctx, prev, next_pid);
    0
}

/// sched_switch as a raw tracepoint (preempt, prev, next, prev_state): no record is formatted
/// for it, which on a switch storm cost more than the program itself. `prev` is `current`; the
/// next task's pid is read at the offset hud-record found in the kernel's BTF.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn hud_sched_switch_raw(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // sched_switch's arguments on Linux 5.18+ (hud-record checks the prototype).
    let (preempt, prev_task, next, raw_state) = (
        ctx.arg::<u64>(0) & 1 != 0,
        ctx.arg::<u64>(1),
        ctx.arg::<*const u8>(2),
        ctx.arg::<u64>(3) as u32,
    );
    let prev = if (pid_tgid >> 32) as u32 == TARGET_TGID.load() && pid_tgid as u32 != 0 {
        let tid = pid_tgid as u32;
        // Cached only while the thread has a slot: its last switch-out, after its exit cleared
        // the entry, must not put it back.
        let live = SLOTS.get(tid).is_some_and(|slot| *slot != 0);
        if let Some(e) = TASKS.get_ptr_mut(task_index(prev_task)).filter(|_| live) {
            // SAFETY: a cache entry; a race with another CPU at worst costs a later miss.
            unsafe {
                (*e).task = prev_task;
                (*e).tid = tid;
            }
        }
        Some((tid, reported_state(preempt, raw_state)))
    } else {
        None
    };
    on_switch(&ctx, prev, pid_of(next));
    0
}

/// The state the classic tracepoint reports for a task that leaves the CPU in `state`
/// (`__trace_sched_switch_state`): TASK_REPORT_MAX when preempted, else the highest
/// TASK_REPORT bit, with TASK_IDLE as its own state and a sleeping RT lock as D.
#[inline(always)]
fn reported_state(preempt: bool, state: u32) -> u32 {
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

/// A switch: `prev` (tid, reported state) when a target thread leaves, `next_pid` the incoming
/// task (filtered by `SLOTS`).
#[inline(always)]
fn on_switch<C: EbpfContext>(ctx: &C, prev: Option<(u32, u32)>, next_pid: u32) {
    let next = if next_pid != 0 {
        state_of(next_pid)
    } else {
        None
    };
    if prev.is_none() && next.is_none() {
        return;
    }
    let ts = now();
    let (out_tid, out_state) = prev.unwrap_or((0, 0));
    push_switch(
        ts,
        out_tid,
        out_state,
        if next.is_some() { next_pid } else { 0 },
    );
    if let Some((prev_pid, state)) = prev {
        if let Some(t) = state_of(prev_pid) {
            // SAFETY: map value of this thread; only its own switches write these fields.
            unsafe {
                (*t).left_ns = ts;
                (*t).woken_ns = 0;
                (*t).state = state;
            }
            if KERNEL_STACKS.load() != 0 && slept(state) {
                park_stacks(ctx, prev_pid);
            }
        }
    }
    if let Some(t) = next {
        // SAFETY: as above.
        unsafe { switched_in(&mut *t, next_pid, ts) };
    }
}

/// At switch-in: if the thread slept past the threshold, the episode is sent (kernel-stacks
/// mode: with the stacks parked at switch-out) or becomes due (sent with the user stack at the
/// thread's next return from a system call, `hud_sys_exit`).
#[inline(always)]
fn switched_in(t: &mut ThreadState, tid: u32, ts: u64) {
    let left = t.left_ns;
    t.left_ns = 0;
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
    if KERNEL_STACKS.load() != 0 {
        send_parked(tid, ts, cpu, duration, runnable, t.state);
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
            send_due(&episode, tid, None);
        }
    }
}

/// Sends a due episode, with the current task's user stack when `ctx` is given; returns the
/// user frames the walk found.
#[inline(always)]
fn send_due(episode: &DueEpisode, tid: u32, ctx: Option<&RawTracePointContext>) -> u16 {
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
        (*rec).kernel_len = 0;
        let walked = match ctx {
            Some(ctx) => fill_stacks(ctx, rec),
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
fn send_all_due(t: &mut ThreadState, tid: u32, ctx: Option<&RawTracePointContext>) -> u16 {
    let n = t.due_count as usize;
    t.due_count = 0;
    let mut walked = 0;
    for i in 0..MAX_DUE {
        if i >= n {
            break;
        }
        if let Some(episode) = t.due.get(i) {
            walked = send_due(episode, tid, ctx);
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
            let first = (*t).due.first().map_or(0, |e| e.end_ns);
            let last = (*t).due.get(n.min(MAX_DUE) - 1).map_or(first, |e| e.end_ns);
            let walked = send_all_due(&mut *t, tid, Some(&ctx));
            // sys_exit's first argument: the registers the thread entered the call with.
            let regs = ctx.arg::<u64>(0);
            copy_stack(tid, kind::OFF_CPU, first, last, regs, 0, walked);
        }
    }
    0
}

/// Offsets in x86-64's `struct pt_regs` (arch/x86/include/asm/ptrace.h).
const PT_REGS_BP: usize = 32;
const PT_REGS_IP: usize = 128;
const PT_REGS_SP: usize = 152;
const PT_REGS_LEN: usize = 168;

/// Sends the user registers at `regs` (a `struct pt_regs`; 0: the current task's user
/// registers) and `STACK_COPY_BYTES` of user stack from their `sp`, for the events of kind `of`
/// stamped `first` to `last`, whose frame-pointer walk found `walked` frames (a walk that
/// stopped at once gets a repair window: a leaf that uses the frame-pointer register for other
/// work, or code without frame pointers). `slot` picks the CPU's scratch (0 system-call exit,
/// 1 sample).
#[inline(always)]
fn copy_stack(tid: u32, of: u8, first: u64, last: u64, regs: u64, slot: u32, walked: u16) {
    let mut wanted = STACK_COPY_BYTES.load();
    if wanted == 0 || stopped() {
        return;
    }
    if walked <= SHALLOW_WALK && wanted < REPAIR_WINDOW {
        wanted = REPAIR_WINDOW;
    }
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

/// Whether a copy of `len` bytes leaves the ring buffer at most a quarter full: copies only use
/// its slack, so they never crowd out switch records (a storm of short-lived threads, each
/// getting a repair window, lost switches before this check).
#[inline(always)]
fn ring_has_room(len: u64) -> bool {
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    let queued = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    queued + len <= size / 4
}

/// Charges `len` bytes to this CPU's budget for the second of `ts`; false when over it.
#[inline(always)]
fn within_budget(len: u64, ts: u64) -> bool {
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

/// Kernel-stacks mode, at a switch-out the thread slept through: its stacks, parked until it
/// comes back.
#[inline(always)]
fn park_stacks<C: EbpfContext>(ctx: &C, tid: u32) {
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
    fill_stacks(ctx, rec);
}

/// Kernel-stacks mode, at switch-in of a kept episode: send it with the parked stacks.
#[inline(always)]
fn send_parked(tid: u32, ts: u64, cpu: u16, duration: u64, runnable: u64, state: u32) {
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

/// A target thread became runnable: note when, to split its off-CPU time into blocked and
/// waiting-for-a-CPU (scheduling pressure).
#[tracepoint]
pub fn hud_sched_wakeup(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from the format file.
    let tid = unsafe { ctx.read_at::<u32>(OFF_WAKEUP_PID.load() as usize) }.unwrap_or(0);
    woken(tid);
    0
}

/// sched_wakeup as a raw tracepoint (the woken task): see `hud_sched_switch_raw`.
#[raw_tracepoint(tracepoint = "sched_wakeup")]
pub fn hud_sched_wakeup_raw(ctx: RawTracePointContext) -> i32 {
    // sched_wakeup's argument is the woken task.
    woken(pid_of(ctx.arg::<*const u8>(0)));
    0
}

/// Notes when a sleeping target thread was woken.
#[inline(always)]
fn woken(tid: u32) {
    if tid == 0 {
        return;
    }
    let Some(t) = state_of(tid) else {
        return;
    };
    // SAFETY: map value of that thread; a racing switch-in at worst loses this wakeup time.
    unsafe {
        if (*t).left_ns != 0 && (*t).woken_ns == 0 {
            (*t).woken_ns = now();
        }
    }
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
    match (FREE_SLOTS.pop().ok().flatten(), SLOTS.get_ptr_mut(child)) {
        (Some(slot), Some(entry)) => {
            if let Some(t) = STATES.get_ptr_mut(u32::from(slot)) {
                // SAFETY: a free slot's state, and the child's slot entry: no program uses
                // either until the entry is set.
                unsafe {
                    (*t).left_ns = 0;
                    (*t).woken_ns = 0;
                    (*t).state = 0;
                    (*t).due_count = 0;
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
                    send_all_due(&mut *t, tid, None);
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

#[perf_event]
pub fn hud_cpu_sample(ctx: PerfEventContext) -> u32 {
    // Runs on every CPU, busy or not: sends the switches a CPU kept since it stopped switching.
    send_stale_batch(now());
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() {
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
fn interrupted_user_code(ctx: &PerfEventContext) -> bool {
    const PT_REGS_CS: usize = 136;
    // SAFETY: the context is a `bpf_perf_event_data`, whose first member is the interrupted
    // `pt_regs`; the verifier allows reading its fields.
    let cs = unsafe { *(ctx.as_ptr() as *const u64).add(PT_REGS_CS / 8) };
    cs & 3 == 3
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
