//! What every program shares: the settings hud-record writes before loading (`Global`s), the
//! maps, and the small helpers (a thread's slot and state, counters, the clock, stacks).

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_USER_STACK},
    helpers::{
        bpf_get_smp_processor_id, bpf_get_stack, bpf_ktime_get_ns, bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::map,
    maps::{Array, HashMap, PerCpuArray, Queue, RingBuf},
    EbpfContext, Global,
};
use hud_format::wire::{
    Counter, StackCopy, StackRecord, SwitchBatch, TaskCacheEntry, ThreadState, MAX_KERNEL_FRAMES,
    MAX_THREADS, MAX_USER_FRAMES, STATE_PREEMPTED, TASK_CACHE_ENTRIES,
};

#[unsafe(no_mangle)]
pub(super) static TARGET_TGID: Global<u32> = Global::new(0);

#[unsafe(no_mangle)]
pub(super) static OFFCPU_THRESHOLD_NS: Global<u64> = Global::new(1_000_000);

#[unsafe(no_mangle)]
pub(super) static KERNEL_STACKS: Global<u32> = Global::new(0);

#[unsafe(no_mangle)]
pub(super) static OFF_SWITCH_PREV_PID: Global<u32> = Global::new(24);

#[unsafe(no_mangle)]
pub(super) static OFF_SWITCH_PREV_STATE: Global<u32> = Global::new(32);

#[unsafe(no_mangle)]
pub(super) static OFF_SWITCH_NEXT_PID: Global<u32> = Global::new(56);

#[unsafe(no_mangle)]
pub(super) static OFF_FORK_CHILD_PID: Global<u32> = Global::new(20);

#[unsafe(no_mangle)]
pub(super) static OFF_RENAME_PID: Global<u32> = Global::new(8);

#[unsafe(no_mangle)]
pub(super) static OFF_RENAME_NEWCOMM: Global<u32> = Global::new(28);

#[unsafe(no_mangle)]
pub(super) static OFF_WAKEUP_PID: Global<u32> = Global::new(24);

/// Offset of `pid` in `struct task_struct`, from the kernel's BTF (raw tracepoints only).
#[unsafe(no_mangle)]
pub(super) static TASK_PID_OFFSET: Global<u32> = Global::new(0);

/// User stack bytes copied with each kept event (0: none; see `copy_stack`).
#[unsafe(no_mangle)]
pub(super) static STACK_COPY_BYTES: Global<u32> = Global::new(0);

/// 1: copy with samples that interrupted user code too (`--unwind dwarf`); 0: only with
/// samples taken in a system call, whose leaf is a libc wrapper (the leaf window).
#[unsafe(no_mangle)]
pub(super) static COPY_USER_SAMPLES: Global<u32> = Global::new(0);

/// Offset of `thread.fsbase` in `struct task_struct`, from the kernel's BTF (0: unknown). A
/// thread's FS base points at its thread control block, which glibc and musl put right above the
/// thread's stack: a copy from `sp` up to it holds the whole stack and nothing past it.
#[unsafe(no_mangle)]
pub(super) static TASK_FSBASE_OFFSET: Global<u32> = Global::new(0);

/// The end of the target's main-thread stack mapping (`[stack]` in its maps; 0: unknown): the
/// main thread's TCB lives elsewhere, so its copies reach up to this.
#[unsafe(no_mangle)]
pub(super) static MAIN_STACK_TOP: Global<u64> = Global::new(0);

/// Stack bytes each CPU may copy per second.
#[unsafe(no_mangle)]
pub(super) static STACK_BUDGET_PER_CPU: Global<u64> = Global::new(0);

/// Ring-buffer flag: don't wake the reader per record; hud-record drains on a short timer, which
/// costs far less than a wakeup per context switch.
pub(super) const NO_WAKEUP: u64 = 1;

/// Bytes of the sched_switch record read in one copy (hud-record checks the offsets it sets
/// against it).
pub(super) const SWITCH_RECORD_BYTES: usize = hud_format::wire::offsets::SWITCH_RECORD_BYTES;

/// Records to user space. Size set by hud-record (`--buffer`).
#[map]
pub(super) static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// What could not be delivered, per CPU, indexed by `Counter`.
#[map]
pub(super) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Indexed by tid: the thread's slot in `STATES`, 0 for every thread not the target's. Sized by
/// hud-record to the kernel's pid_max. Also the filter: sched_switch only knows `next`'s pid.
#[map]
pub(super) static SLOTS: Array<u16> = Array::with_max_entries(1, 0);

/// Indexed by slot: what the programs keep per target thread.
#[map]
pub(super) static STATES: Array<ThreadState> = Array::with_max_entries(MAX_THREADS, 0);

/// Slots given back by threads that exited: exit gives, fork takes.
#[map]
pub(super) static FREE_SLOTS: Queue<u16> = Queue::with_max_entries(MAX_THREADS, 0);

/// How many slots no thread had before were handed out (slot = count + 1). Mappable: hud-record
/// takes slots for the threads it finds at attach with the same atomic add, through its mapping.
/// Filling the queue with every slot instead cost 16 k `bpf` calls at each attach.
#[map]
pub(super) static FRESH_SLOTS: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// `*at += add`, atomically (the BPF target has no atomic read-modify-write in `core`), and
/// what `*at` was.
#[inline(always)]
fn fetch_add(at: *mut u64, add: u64) -> u64 {
    let mut value = add;
    // SAFETY: `at` is a map value's aligned `u64`; BPF's atomic add with fetch (Linux 5.12).
    unsafe {
        core::arch::asm!(
            "{value} = atomic_fetch_add((u64 *)({at} + 0), {value})",
            at = in(reg) at,
            value = inout(reg) value,
        );
    }
    value
}

/// A slot for a new thread: one given back, else one never used; `None` when all are taken.
#[inline(always)]
pub(super) fn take_slot() -> Option<u16> {
    if let Ok(Some(slot)) = FREE_SLOTS.pop() {
        return Some(slot);
    }
    let handed = FRESH_SLOTS.get_ptr_mut(0)?;
    // Read first so the count stops just past the end instead of wrapping round.
    // SAFETY: the map's one `u64`, aligned.
    if unsafe { core::ptr::read_volatile(handed) } >= u64::from(MAX_THREADS - 1) {
        return None;
    }
    let slot = fetch_add(handed, 1) + 1;
    (slot < u64::from(MAX_THREADS)).then_some(slot as u16)
}

/// Per CPU: the switches not yet sent.
#[map]
pub(super) static BATCHES: PerCpuArray<SwitchBatch> = PerCpuArray::with_max_entries(1, 0);

/// A cache of task_struct pointer → tid and slot for the target's threads, direct-mapped: a raw
/// tracepoint hands over task pointers, and reading the pid out of one (`bpf_probe_read_kernel`)
/// cost more than the rest of a switch's work. Filled at a switch-out of a target thread that
/// missed, cleared at its exit (before its task_struct or its slot can be reused); a miss reads
/// the pid.
#[map]
pub(super) static TASKS: Array<TaskCacheEntry> = Array::with_max_entries(TASK_CACHE_ENTRIES, 0);

/// The cache slot of a task_struct pointer (objects are cache-line aligned and ~10 KiB apart).
#[inline(always)]
pub(super) fn task_index(task: u64) -> u32 {
    (((task >> 6) ^ (task >> 16)) as u32) & (TASK_CACHE_ENTRIES - 1)
}

/// The cache's entry for `task` when it holds it: a target thread that has a slot.
#[inline(always)]
pub(super) fn cached(task: u64) -> Option<&'static TaskCacheEntry> {
    TASKS.get(task_index(task)).filter(|e| e.task == task)
}

/// The pid of `task` and its state when it is a target thread: from the cache when it is a
/// known one, else read.
#[inline(always)]
pub(super) fn thread_of(task: *const u8) -> (u32, Option<*mut ThreadState>) {
    if let Some(e) = cached(task as u64) {
        return (e.tid, STATES.get_ptr_mut(e.slot));
    }
    // SAFETY: `task` is a task_struct; the offset comes from BTF. A failed read is pid 0.
    let tid =
        unsafe { bpf_probe_read_kernel(task.add(TASK_PID_OFFSET.load() as usize) as *const u32) }
            .unwrap_or(0);
    (tid, if tid != 0 { state_of(tid) } else { None })
}

/// Two per CPU (index 2 × cpu, + 1 for samples): the stack copy being filled. A sample may
/// interrupt the system-call exit program on its CPU, so they do not share one. Too big for a
/// per-CPU array (32 KiB at most); hud-record sizes it to the possible CPUs.
#[map]
pub(super) static STACK_SCRATCH: Array<StackCopy> = Array::with_max_entries(2, 0);

/// Per CPU: `[0]` the second (of `bpf_ktime_get_ns`) being budgeted, `[1]` stack bytes copied
/// in it.
#[map]
pub(super) static STACK_BUDGET: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// `[0]`: 1 once hud-record stops; the batches are then left alone for it to read.
#[map]
pub(super) static CONTROL: Array<u32> = Array::with_max_entries(1, 0);

/// Kernel-stacks mode only: per thread, the record being built while it is off CPU (stacks
/// taken at switch-out).
#[map]
pub(super) static OFFCPU_PENDING: HashMap<u32, StackRecord> = HashMap::with_max_entries(4096, 0);

/// A zeroed record to insert into `OFFCPU_PENDING` (too big for the 512-byte BPF stack).
#[map]
pub(super) static ZERO: PerCpuArray<StackRecord> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(super) fn count(counter: Counter) {
    count_n(counter, 1);
}

#[inline(always)]
pub(super) fn count_n(counter: Counter, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, programs do not nest on one CPU for these hooks.
        unsafe { *p += n };
    }
}

/// The state of target thread `tid`, if it is one.
#[inline(always)]
pub(super) fn state_of(tid: u32) -> Option<*mut ThreadState> {
    STATES.get_ptr_mut(slot_of(tid)?)
}

/// The slot of target thread `tid` in `STATES`, if it is one.
#[inline(always)]
pub(super) fn slot_of(tid: u32) -> Option<u32> {
    let slot = *SLOTS.get(tid)?;
    (slot != 0).then_some(u32::from(slot))
}

#[inline(always)]
pub(super) fn stopped() -> bool {
    CONTROL.get(0).is_some_and(|v| *v != 0)
}

#[inline(always)]
pub(super) fn cpu() -> u16 {
    // SAFETY: plain helper.
    unsafe { bpf_get_smp_processor_id() as u16 }
}

#[inline(always)]
pub(super) fn now() -> u64 {
    // SAFETY: plain helper.
    unsafe { bpf_ktime_get_ns() }
}

/// Set in what [`fill_stacks`] returns when the user stack was unwound whole with the
/// `.eh_frame` table: no stack copy is needed.
pub(super) const TABLE_UNWOUND: u16 = 0x8000;

/// Fills the user (and optionally kernel) stack of the current task into `rec`; returns the
/// user frames found, with [`TABLE_UNWOUND`] when the table unwound them (otherwise they are
/// a frame-pointer walk's).
#[inline(always)]
pub(super) fn fill_stacks<C: EbpfContext>(ctx: &C, rec: *mut StackRecord) -> u16 {
    // SAFETY: `rec` points to map or ring-buffer memory of a whole StackRecord.
    unsafe {
        let unwound = if super::unwind::has_table() {
            // The user registers the thread entered the kernel with (a system call, a fault,
            // the sampling interrupt).
            let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as u64;
            super::unwind::unwind_user(regs, &mut (*rec).user)
        } else {
            None
        };
        if let Some(n) = unwound {
            (*rec).user_len = n;
            count(Counter::TableUnwound);
        } else {
            if super::unwind::has_table() {
                count(Counter::TableUnwindStopped);
            }
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
        if unwound.is_some() {
            (*rec).user_len | TABLE_UNWOUND
        } else {
            (*rec).user_len
        }
    }
}

/// Reads a `T` at `offset` of a copied tracepoint record; 0 when it does not fit.
#[inline(always)]
pub(super) fn field<T: Default + Copy>(record: &[u8; SWITCH_RECORD_BYTES], offset: u32) -> T {
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
pub(super) fn slept(state: u32) -> bool {
    state != 0 && state & STATE_PREEMPTED == 0
}
