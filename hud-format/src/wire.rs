//! Records the eBPF programs write into the ring buffer, read by hud-record.
//!
//! Every record starts with a [`RecordHeader`] whose `kind` says which struct follows. The layouts
//! are `#[repr(C)]` with explicit padding so the kernel side (hud-ebpf, `no_std`) and user space agree
//! byte for byte; sizes and alignments are asserted at compile time below.

/// Deepest user stack kept, in frames. Matches the kernel's default `perf_event_max_stack`.
pub const MAX_USER_FRAMES: usize = 127;
/// Deepest kernel stack kept, in frames (kernel stacks are optional and shallower).
pub const MAX_KERNEL_FRAMES: usize = 48;

/// `RecordHeader::kind` values.
pub mod kind {
    // 1 was a single switch record, before switches came in batches.
    /// A [`super::StackRecord`]: a target thread came back after being off CPU past the threshold.
    pub const OFF_CPU: u8 = 2;
    /// A [`super::StackRecord`]: a cpu-clock sample hit a target thread.
    pub const SAMPLE: u8 = 3;
    /// A [`super::ThreadRecord`]: the target created a thread.
    pub const THREAD_NEW: u8 = 4;
    /// A [`super::ThreadRecord`]: a target thread exited.
    pub const THREAD_EXIT: u8 = 5;
    /// A [`super::ThreadRecord`]: a target thread changed its name.
    pub const THREAD_RENAME: u8 = 6;
    /// A [`super::SwitchBatch`]: a CPU's switches, sent together.
    pub const SWITCH_BATCH: u8 = 7;
    /// A [`super::StackCopyHeader`] and its stack bytes: the user registers and the stack of a
    /// sample or of off-CPU episodes, for unwinding offline.
    pub const STACK_COPY: u8 = 8;
    /// A [`super::PollRecord`]: a probed task poll (`--poll-probes`) that lasted at least
    /// `POLL_EVENT_NS`.
    pub const POLL: u8 = 9;
}

/// In a stack copy's `header.flags`, with [`kind::OFF_CPU`]: taken when the thread went to sleep
/// in a page fault, stamped with that time (the episode's start, `left_ns`), before its
/// episode exists. hud-record holds it until the episode comes (and drops it for a fault
/// shorter than the threshold).
pub const COPY_AT_SWITCH_OUT: u8 = 0x80;

/// [`StackRecord::tick`] when no scheduler tick was read.
pub const NO_TICK: u64 = u64::MAX;
/// A read tick's top byte says which scheduler held the thread's core: [`TICK_OF_CURRENT_THREAD`]
/// or [`TICK_OF_MULTI_THREAD`] (0: unknown); the tick itself is in the low 32 bits.
pub const TICK_KIND_SHIFT: u32 = 56;
pub const TICK_OF_CURRENT_THREAD: u64 = 1;
pub const TICK_OF_MULTI_THREAD: u64 = 2;
/// Not a scheduler's tick: where no task id and no tick could be read (debug info without
/// types), a sample's tick is its thread's count of returns from `epoll_wait` (the runtime's I/O
/// driver, polled between tasks: when a worker parks, every 61 polls, after a yield), counted by
/// the kernel. Two samples with different counts were not one poll; equal counts prove nothing.
pub const TICK_OF_IO_POLLS: u64 = 3;

/// `prev_state` the kernel reports for a preempted (still runnable) task: TASK_REPORT_MAX, "R+".
pub const STATE_PREEMPTED: u32 = 0x100;
/// Or'd into an off-CPU episode's state (not a switch's): the thread slept in an exception (a
/// page fault), not in a system call. Told by the kernel (`orig_ax` is -1), not guessed.
pub const STATE_IN_FAULT: u32 = 0x4000;

/// The common head of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// One of [`kind`].
    pub kind: u8,
    /// Kind-specific bits (none so far).
    pub flags: u8,
    /// CPU the event happened on.
    pub cpu: u16,
    /// Thread id (kernel pid) the event is about.
    pub tid: u32,
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
}

/// Switches per [`SwitchBatch`]. Each CPU collects its switches in a batch and sends it when full
/// (or older than [`SWITCH_BATCH_MAX_AGE_NS`]): one ring-buffer operation per 128 switches
/// instead of one per switch, which was most of a switch's cost in the kernel (64 to 128 saved
/// ~10 ns a switch on the storm; the age bound keeps the delay).
pub const SWITCH_BATCH_LEN: usize = 128;
/// A batch is sent at the first switch or sample on its CPU after its first switch is this old.
pub const SWITCH_BATCH_MAX_AGE_NS: u64 = 10_000_000;
/// [`SwitchEntry::state`] bit of a switch-in.
pub const ENTRY_SWITCH_IN: u32 = 1 << 31;

/// One switch in a [`SwitchBatch`] (the CPU is the batch's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchEntry {
    pub ts_ns: u64,
    pub tid: u32,
    /// Switch-out: the state the thread left in (0 running, 1 S, 2 D, [`STATE_PREEMPTED`]…); switch-in:
    /// [`ENTRY_SWITCH_IN`].
    pub state: u32,
}

/// A CPU's switches (kind [`kind::SWITCH_BATCH`]; `header.cpu` is the CPU, `header.ts_ns` the
/// first switch's time).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchBatch {
    pub header: RecordHeader,
    /// Valid entries.
    pub count: u32,
    pub _pad: u32,
    pub entries: [SwitchEntry; SWITCH_BATCH_LEN],
}

impl SwitchBatch {
    /// The valid entries (never more than the batch holds, whatever `count` says).
    pub fn valid(&self) -> &[SwitchEntry] {
        &self.entries[..(self.count as usize).min(SWITCH_BATCH_LEN)]
    }
}

/// An off-CPU episode (kind [`kind::OFF_CPU`], stack taken at switch-out) or a cpu-clock sample
/// (kind [`kind::SAMPLE`]). One struct so both share the stack-copy code in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRecord {
    pub header: RecordHeader,
    /// Off-CPU only: how long the thread was off CPU, in nanoseconds (header.ts_ns is switch-in).
    pub duration_ns: u64,
    /// Off-CPU only: the state the thread left in.
    pub state: u32,
    /// Valid frames in `user`; 0 when the stack could not be read.
    pub user_len: u16,
    /// Valid frames in `kernel`; 0 unless kernel stacks were asked for.
    pub kernel_len: u16,
    pub user: [u64; MAX_USER_FRAMES],
    /// Off-CPU only: of `duration_ns`, the time spent runnable, waiting for a CPU (wakeup to
    /// switch-in; all of it when preempted). The rest was blocked. While the thread is off CPU the
    /// kernel keeps its wakeup time here.
    pub runnable_ns: u64,
    /// The Tokio task the thread was polling (0: none, or ids not read): at the sample, or (off
    /// CPU) when it blocked.
    pub task_id: u64,
    /// Samples: the tick of the scheduler the thread runs ([`NO_TICK`]: not read).
    pub tick: u64,
    pub kernel: [u64; MAX_KERNEL_FRAMES],
}

/// Most stack bytes one copy holds (`hud-record --unwind dwarf=SIZE`); perf's limit is 65528.
pub const MAX_STACK_COPY: usize = 65_536;
/// Bytes of stack copied by default with each kept off-CPU episode and each sample taken in a
/// system call: the leaf's frame up to its return address, enough to unwind a libc wrapper
/// without a frame pointer back to the code that called it.
pub const LEAF_WINDOW: u32 = 256;

/// A frame-pointer walk of this many frames or fewer stopped at once: the leaf used the
/// frame-pointer register for other work (glibc's `__send`), or the code has no frame pointers.
pub const SHALLOW_WALK: u16 = 3;
/// Bytes of stack copied, whatever `--unwind` asked, for an event whose walk stopped at once
/// (with `--unwind leaf`; within the byte budget): enough to unwind to the task's poll.
pub const REPAIR_WINDOW: u32 = 8192;

/// The head of a [`kind::STACK_COPY`] record: the user registers of the thread when its stack
/// was taken, and how many stack bytes (from `sp` up) follow.
///
/// `header.ts_ns` is the time of the event the copy belongs to (a sample's time, or the end of
/// the first off-CPU episode it serves); `header.flags` is that event's kind ([`kind::SAMPLE`] or
/// [`kind::OFF_CPU`]); `last_ns` is the end of the last episode served (off-CPU episodes that
/// waited for one return from a system call share its stack).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackCopyHeader {
    pub header: RecordHeader,
    pub last_ns: u64,
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// Stack bytes that follow (at most [`MAX_STACK_COPY`]).
    pub len: u32,
    pub _pad: u32,
    /// `--poll-probes`: the real return addresses of the probed polls the thread was in,
    /// innermost first (0: none), and the stack addresses of the slots that held them. Their
    /// uretprobes put the kernel's trampoline address in those slots; the recorder puts these
    /// back (only there: stale copies of the trampoline address lie around in dead stack).
    pub poll_returns: [u64; 2],
    pub poll_return_slots: [u64; 2],
}

/// A [`StackCopyHeader`] with room for the largest copy: the per-CPU scratch value the programs
/// fill before sending the header and `len` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackCopy {
    pub head: StackCopyHeader,
    pub bytes: [u8; MAX_STACK_COPY],
}

/// Off-CPU episodes of one thread that can wait for its stack at once: a thread can sleep more
/// than once inside one system call (epoll_wait and nanosleep sleep again after a wakeup that
/// does not end them), and all those episodes share the stack of that call.
pub const MAX_DUE: usize = 8;

/// An off-CPU episode waiting for its thread's stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DueEpisode {
    /// When it ended (switch-in).
    pub end_ns: u64,
    pub duration_ns: u64,
    /// Of the duration, the time spent runnable (woken, waiting for a CPU).
    pub runnable_ns: u64,
    /// The state the thread left in.
    pub state: u32,
    /// The CPU it came back on.
    pub cpu: u32,
}

/// What the kernel keeps per target thread: the `STATES` map's value, at the thread's slot (the
/// `SLOTS` map, indexed by tid, gives it: two array lookups, which the verifier inlines, instead
/// of a hash lookup). A new thread takes a slot from the `FREE_SLOTS` queue, to which the exit
/// program returns them, or else the next never-used one (`FRESH_SLOTS`, an atomic count shared
/// by the fork program and hud-record, which gives slots to the threads that exist when it
/// attaches).
///
/// The switch-out path only notes when and how the thread left. At switch-in, an episode past the
/// threshold that the thread slept through (not a preemption) becomes *due*: its record is sent
/// with the thread's user stack at its next return from a system call, in its own context, which
/// for a thread that blocked in a system call is the stack it blocked with (see hud-ebpf).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadState {
    /// When it last went off CPU; 0 while on CPU (or not seen leaving).
    pub left_ns: u64,
    /// When it was woken while off CPU; 0 until then.
    pub woken_ns: u64,
    /// The state it left in (0 running, 1 S, 2 D, [`STATE_PREEMPTED`]…).
    pub state: u32,
    /// How many of `due` wait for the thread's stack.
    pub due_count: u32,
    /// 1 while the thread sleeps in a page fault with its stack parked at switch-out: no
    /// system call returns to give the stack of where it blocked.
    pub parked: u32,
    /// Returns from `epoll_wait` and its variants ([`TICK_OF_IO_POLLS`]), written by the thread
    /// itself only.
    pub io_polls: u32,
    pub due: [DueEpisode; MAX_DUE],
}

/// Entries of the kernel's cache of target task_struct pointers (see [`TaskCacheEntry`]).
pub const TASK_CACHE_ENTRIES: u32 = 4096;

/// A target thread's task_struct pointer, its tid and its slot in `STATES`: the kernel-only
/// `TASKS` map, a direct-mapped cache that spares the raw tracepoints reading `pid` out of a task
/// pointer, the helper call for the current pid, and the lookup of the thread's slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCacheEntry {
    pub task: u64,
    pub tid: u32,
    pub slot: u32,
}

/// One row of the unwinding table hud-record builds from the `.eh_frame` of the target's
/// objects at attach (kernel map `UNWIND_ROWS`, sorted by `pc`): from `pc` (a runtime address)
/// up to the next row's, how to find the caller's frame. x86-64 only; the rules cover what
/// compilers emit for code (CFA at `rsp` or `rbp` plus an offset, the return address just
/// below it, `rbp` saved at an offset from it or untouched).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnwindRow {
    pub pc: u64,
    /// CFA = base register (`cfa`) + this.
    pub cfa_offset: i32,
    /// Where the caller's `rbp` is saved, from the CFA ([`unwind::RBP_SAVED`]).
    pub rbp_offset: i16,
    /// [`unwind::CFA_RSP`], [`unwind::CFA_RBP`], [`unwind::OUTERMOST`] or [`unwind::NO_RULE`].
    pub cfa: u8,
    /// [`unwind::RBP_SAME`] or [`unwind::RBP_SAVED`].
    pub rbp: u8,
}

/// The rules of an [`UnwindRow`].
pub mod unwind {
    /// No rule known here (a gap between functions, or a rule the kernel does not follow: a
    /// DWARF expression, as in PLT stubs): the unwinding stops and the old ways take over.
    pub const NO_RULE: u8 = 0;
    pub const CFA_RSP: u8 = 1;
    pub const CFA_RBP: u8 = 2;
    /// The return address is undefined: the thread's first frame (`_start`, `clone3`).
    pub const OUTERMOST: u8 = 3;
    pub const RBP_SAME: u8 = 0;
    pub const RBP_SAVED: u8 = 1;
    /// Rows the table holds are fewer than this (16 bytes each): a binary search of 24 steps
    /// covers them.
    pub const MAX_ROWS: u32 = 1 << 24;
    /// Steps of that search.
    pub const SEARCH_STEPS: u32 = 24;
}

/// Thread lifecycle: created, exited or renamed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadRecord {
    pub header: RecordHeader,
    /// THREAD_NEW: the thread that created it.
    pub parent_tid: u32,
    pub _pad: u32,
    /// The thread's name (comm), NUL-padded.
    pub comm: [u8; 16],
}

/// Per-CPU counters of what the kernel side could not deliver. Index into the `COUNTERS` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Switch records dropped because the ring buffer was full.
    LostSwitch = 0,
    /// Off-CPU records dropped because the ring buffer was full.
    LostOffCpu = 1,
    /// Samples dropped because the ring buffer was full.
    LostSample = 2,
    /// Thread lifecycle records dropped because the ring buffer was full.
    LostThread = 3,
    /// `bpf_get_stack` failed for a user stack.
    UserStackError = 4,
    /// `bpf_get_stack` failed for a kernel stack.
    KernelStackError = 5,
    /// The per-thread maps (thread slots or pending stacks) were full.
    ThreadMapFull = 6,
    /// An off-CPU episode was sent without its stack: the thread exited, or slept more than
    /// [`MAX_DUE`] times, before returning from a system call.
    OffCpuStackMissed = 7,
    /// Stack copies left out because the second's byte budget was spent, or the ring buffer was
    /// over a quarter full (switch records come first); the event keeps its frame-pointer stack.
    StackCopyOverBudget = 8,
    /// Stack copies that could not be read (not even the leaf window) or were lost because the
    /// ring buffer was full.
    StackCopyFailed = 9,
    /// Probed polls not timed: a return without its entry (probes attached mid-poll), polls
    /// nested deeper than [`POLL_NESTING`], or a thread without a slot.
    PollUntimed = 10,
    /// Probed polls past `POLL_EVENT_NS` whose record was dropped (ring buffer full); they are
    /// still in the histograms.
    LostPoll = 11,
    /// User stacks unwound whole in the kernel with the `.eh_frame` table (not a loss: how
    /// many stacks needed no copy).
    TableUnwound = 12,
    /// User stacks the table could not finish (code without a rule: a PLT stub, the vDSO, code
    /// loaded after attach): walked with frame pointers instead, and copied as before.
    TableUnwindStopped = 13,
}

impl Counter {
    /// Number of counters; the size of the `COUNTERS` map.
    pub const COUNT: u32 = 14;
    /// Every counter, in index order.
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::LostSwitch,
        Counter::LostOffCpu,
        Counter::LostSample,
        Counter::LostThread,
        Counter::UserStackError,
        Counter::KernelStackError,
        Counter::ThreadMapFull,
        Counter::OffCpuStackMissed,
        Counter::StackCopyOverBudget,
        Counter::StackCopyFailed,
        Counter::PollUntimed,
        Counter::LostPoll,
        Counter::TableUnwound,
        Counter::TableUnwindStopped,
    ];

    /// Stable name used in captures and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::LostSwitch => "lost_switch",
            Counter::LostOffCpu => "lost_off_cpu",
            Counter::LostSample => "lost_sample",
            Counter::LostThread => "lost_thread",
            Counter::UserStackError => "user_stack_error",
            Counter::KernelStackError => "kernel_stack_error",
            Counter::ThreadMapFull => "thread_map_full",
            Counter::OffCpuStackMissed => "off_cpu_stack_missed",
            Counter::StackCopyOverBudget => "stack_copy_over_budget",
            Counter::StackCopyFailed => "stack_copy_failed",
            Counter::PollUntimed => "poll_untimed",
            Counter::LostPoll => "lost_poll",
            Counter::TableUnwound => "table_unwound",
            Counter::TableUnwindStopped => "table_unwind_stopped",
        }
    }

    /// Whether this counter means an event is missing from the capture (not just a stack).
    pub const fn is_lost_record(self) -> bool {
        matches!(
            self,
            Counter::LostSwitch | Counter::LostOffCpu | Counter::LostSample | Counter::LostThread
        )
    }
}

/// Thread slots: `STATES` has this many entries, slot 0 meaning "none".
pub const MAX_THREADS: u32 = 16384;

/// Buckets of a poll-duration histogram (`--poll-probes`): 8 per power of two (each ≤ 12.5 %
/// wide), from 0 ns up to about 9 minutes; longer polls count in the last.
pub const POLL_BUCKETS: u32 = 304;
/// Polls of one thread that can be open at once (a poll inside a poll: `block_in_place`, a
/// nested runtime); deeper ones are counted, not timed.
pub const POLL_NESTING: usize = 4;

/// The histogram bucket of a poll of `ns` nanoseconds: `ns` itself below 8, then 8 buckets per
/// power of two (the top three bits after the leading one).
#[inline(always)]
pub const fn poll_bucket(ns: u64) -> u32 {
    if ns < 8 {
        return ns as u32;
    }
    let msb = 63 - ns.leading_zeros();
    let bucket = (msb - 2) * 8 + ((ns >> (msb - 3)) & 7) as u32;
    if bucket < POLL_BUCKETS {
        bucket
    } else {
        POLL_BUCKETS - 1
    }
}

/// The durations bucket `b` counts: `[low, high)` nanoseconds.
pub const fn poll_bucket_range(b: u32) -> (u64, u64) {
    if b < 8 {
        return (b as u64, b as u64 + 1);
    }
    let msb = b / 8 + 2;
    let step = 1u64 << (msb - 3);
    let low = (8 + (b % 8) as u64) * step;
    (low, low + step)
}

/// A probed poll that lasted at least `POLL_EVENT_NS` (kind [`kind::POLL`]). `header.ts_ns` is
/// when it returned, `header.tid` the thread that polled.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollRecord {
    pub header: RecordHeader,
    pub start_ns: u64,
    /// Which probed poll function (the attach cookie: an index into the recorder's list).
    pub probe: u32,
    pub _pad: u32,
    /// The task it polled (0: not read), from the task's header at the poll's entry.
    pub task_id: u64,
}

/// Per thread slot: the polls it is in (entry seen, return not yet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenPolls {
    /// The thread these belong to (a slot is reused after its thread exits).
    pub tid: u32,
    /// Polls entered and not returned from (may exceed [`POLL_NESTING`]).
    pub depth: u32,
    pub start_ns: [u64; POLL_NESTING],
    /// Where each poll returns to (read at its entry, before the uretprobe replaced it), and
    /// the stack slot that holds it (the stack pointer at entry).
    pub ret: [u64; POLL_NESTING],
    pub ret_slot: [u64; POLL_NESTING],
    /// The task each polls (0: not read).
    pub task: [u64; POLL_NESTING],
    pub probe: [u32; POLL_NESTING],
}

/// Per probed function, per CPU: the sum and the longest of its polls, in nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollTotals {
    pub sum_ns: u64,
    pub max_ns: u64,
}

/// Names of the read-only globals hud-record sets before loading the eBPF object.
pub mod globals {
    /// `u32`: rows in `UNWIND_ROWS` (0: no table; stacks are walked with frame pointers).
    pub const UNWIND_ROW_COUNT: &str = "UNWIND_ROW_COUNT";
    /// `u32`: the target process id (tgid).
    pub const TARGET_TGID: &str = "TARGET_TGID";
    /// `u64`: shortest off-CPU time that produces an off-CPU record.
    pub const OFFCPU_THRESHOLD_NS: &str = "OFFCPU_THRESHOLD_NS";
    /// `u32`: 1 to collect kernel stacks too.
    pub const KERNEL_STACKS: &str = "KERNEL_STACKS";
    /// `u32`: offset of `pid` in `struct task_struct` (from BTF; the raw tracepoints need it).
    pub const TASK_PID_OFFSET: &str = "TASK_PID_OFFSET";
    /// `u64` ×2: the recorder's PID namespace (nsfs device in the kernel's encoding, inode), and
    /// `u32`: the recorder thread whose lookups the resolver answers.
    pub const RESOLVER_NS_DEV: &str = "RESOLVER_NS_DEV";
    pub const RESOLVER_NS_INO: &str = "RESOLVER_NS_INO";
    pub const RESOLVER_TID: &str = "RESOLVER_TID";
    /// `u32`: user stack bytes copied with each sample and kept off-CPU episode (0: none).
    pub const STACK_COPY_BYTES: &str = "STACK_COPY_BYTES";
    /// `u32`: 1 to copy stacks with samples of user code too (`--unwind dwarf`).
    pub const COPY_USER_SAMPLES: &str = "COPY_USER_SAMPLES";
    /// `u64`: stack bytes each CPU may copy per second (the `--stack-budget`, shared out).
    pub const STACK_BUDGET_PER_CPU: &str = "STACK_BUDGET_PER_CPU";
    /// `u32`: offset of `thread.fsbase` in `struct task_struct` (from BTF; 0: unknown): the top
    /// of a thread's stack, where stack copies end.
    pub const TASK_FSBASE_OFFSET: &str = "TASK_FSBASE_OFFSET";
    /// `u64`: the end of the target's `[stack]` mapping (0: unknown), where the main thread's
    /// stack copies end.
    pub const MAIN_STACK_TOP: &str = "MAIN_STACK_TOP";
    /// `u32`: 1 when the target's task ids are read (the four below are set).
    pub const TASK_IDS: &str = "TASK_IDS";
    /// `u64`: the task id's offset from the thread pointer (an `i64`'s two's complement).
    pub const TASK_ID_VALUE_AT: &str = "TASK_ID_VALUE_AT";
    /// `u64`: the offset of the `Option`'s tag from the thread pointer.
    pub const TASK_ID_TAG_AT: &str = "TASK_ID_TAG_AT";
    /// `u64`: the tag's bytes in the 8 read.
    pub const TASK_ID_TAG_MASK: &str = "TASK_ID_TAG_MASK";
    /// `u64`: the tag's value for no task.
    pub const TASK_ID_NONE: &str = "TASK_ID_NONE";
    /// `u32`: 1 when the scheduler's tick is read with samples (the `TICK_*` below are set).
    pub const TICKS: &str = "TICKS";
    /// `u64`: the pointer to `scheduler::Context`, from the thread pointer.
    pub const TICK_SCHED_AT: &str = "TICK_SCHED_AT";
    /// `u64`: the scheduler enum's tag offset and mask.
    pub const TICK_TAG_AT: &str = "TICK_TAG_AT";
    pub const TICK_TAG_MASK: &str = "TICK_TAG_MASK";
    /// Per scheduler kind `N` (0, 1): `u64` tag, `u32` 1 for the variant without a tag value,
    /// `u64` offset of the `Box<Core>` pointer, `u64` tick offset in `Core`, `u64` tick mask,
    /// `u64` the scheduler's kind in a tick's top byte (see `TICK_KIND_SHIFT`).
    /// `u64`: the shortest probed poll sent as a [`super::PollRecord`].
    pub const POLL_EVENT_NS: &str = "POLL_EVENT_NS";
    /// `u32`: 1 when a poll's task id is read at its entry (the two below are set): the task's
    /// header holds its vtable pointer at `POLL_VTABLE_AT`, the vtable the id's offset in the
    /// task at `POLL_ID_OFFSET_AT` (`u64`s).
    pub const POLL_TASK_IDS: &str = "POLL_TASK_IDS";
    pub const POLL_VTABLE_AT: &str = "POLL_VTABLE_AT";
    pub const POLL_ID_OFFSET_AT: &str = "POLL_ID_OFFSET_AT";
    pub const TICK_VARIANTS: [[&str; 6]; 2] = [
        [
            "TICK_V0_TAG",
            "TICK_V0_ANY",
            "TICK_V0_CORE_AT",
            "TICK_V0_TICK_AT",
            "TICK_V0_TICK_MASK",
            "TICK_V0_KIND",
        ],
        [
            "TICK_V1_TAG",
            "TICK_V1_ANY",
            "TICK_V1_CORE_AT",
            "TICK_V1_TICK_AT",
            "TICK_V1_TICK_MASK",
            "TICK_V1_KIND",
        ],
    ];
}

/// Map and program names shared by hud-ebpf and hud-record.
pub mod names {
    pub const EVENTS: &str = "EVENTS";
    pub const COUNTERS: &str = "COUNTERS";
    /// Indexed by tid: the thread's slot in `STATES` (`u16`, 0 for threads of other processes).
    pub const SLOTS: &str = "SLOTS";
    /// Indexed by slot: [`super::ThreadState`].
    pub const STATES: &str = "STATES";
    /// Queue of slots given back by threads that exited (`u16`).
    pub const FREE_SLOTS: &str = "FREE_SLOTS";
    /// One `u64`, mappable: slots handed out so far that no thread had before (slot = count + 1),
    /// taken by atomic add by the fork program and by hud-record.
    pub const FRESH_SLOTS: &str = "FRESH_SLOTS";
    /// Kernel only: per task cache entry, a task pointer, its tid and slot ([`super::TaskCacheEntry`]).
    pub const TASKS: &str = "TASKS";
    /// Per CPU: the [`super::SwitchBatch`] being filled.
    pub const BATCHES: &str = "BATCHES";
    /// One `u32`: 1 once hud-record stops (the programs then add nothing to the batches, which
    /// it reads last).
    pub const CONTROL: &str = "CONTROL";
    pub const PROG_SWITCH: &str = "hud_sched_switch";
    pub const PROG_SWITCH_RAW: &str = "hud_sched_switch_raw";
    pub const PROG_WAKEUP_RAW: &str = "hud_sched_wakeup_raw";
    pub const PROG_FORK: &str = "hud_sched_fork";
    pub const PROG_EXIT: &str = "hud_sched_exit";
    pub const PROG_RENAME: &str = "hud_task_rename";
    pub const PROG_WAKEUP: &str = "hud_sched_wakeup";
    pub const PROG_SAMPLE: &str = "hud_cpu_sample";
    /// Raw tracepoint `sys_exit`: sends the off-CPU episodes that wait for their stack.
    pub const PROG_SYS_EXIT: &str = "hud_sys_exit";
    /// Classic tracepoints `syscalls/sys_exit_epoll_wait` (and `_pwait`, `_pwait2`): counts a
    /// target thread's I/O driver polls ([`super::TICK_OF_IO_POLLS`]).
    pub const PROG_IO_POLL: &str = "hud_io_poll";
    /// Kernel-stacks mode only: per thread, the stacks taken at switch-out, keyed by tid.
    pub const OFFCPU_PENDING: &str = "OFFCPU_PENDING";
    /// Indexed by CPU: the [`super::StackCopy`] being filled (sized to the possible CPUs).
    pub const STACK_SCRATCH: &str = "STACK_SCRATCH";
    /// `--poll-probes`: the uprobe at each probed `raw::poll` entry, and its uretprobe.
    pub const PROG_POLL_ENTER: &str = "hud_poll_enter";
    /// Tracepoint sched_process_wait, attached for a moment at start by a recorder in a PID
    /// namespace: the kernel's id of each thread it names (`RESOLVED`, one `u32`).
    pub const PROG_RESOLVE_PID: &str = "hud_resolve_pid";
    pub const RESOLVED: &str = "RESOLVED";
    pub const PROG_POLL_RETURN: &str = "hud_poll_return";
    /// Per CPU, indexed by `probe × POLL_BUCKETS + bucket`: polls counted (`u64`); sized by
    /// hud-record to the probes it attaches.
    pub const POLL_HISTOGRAMS: &str = "POLL_HISTOGRAMS";
    /// Per CPU, indexed by probe: [`super::PollTotals`].
    pub const POLL_TOTALS: &str = "POLL_TOTALS";
    /// Indexed by thread slot: [`super::OpenPolls`].
    pub const OPEN_POLLS: &str = "OPEN_POLLS";
    /// [`super::UnwindRow`]s, sorted by `pc`, sized by hud-record to the table it builds.
    pub const UNWIND_ROWS: &str = "UNWIND_ROWS";
}

/// Field offsets of the tracepoint records the programs read. hud-record reads the real ones from
/// each tracepoint's tracefs `format` file and sets these globals; the defaults are Linux 6.18's.
pub mod offsets {
    /// (global name, tracepoint, field, default offset)
    pub const FIELDS: [(&str, &str, &str, u32); 8] = [
        (SWITCH_PREV_PID, "sched/sched_switch", "prev_pid", 24),
        (SWITCH_PREV_STATE, "sched/sched_switch", "prev_state", 32),
        (SWITCH_NEXT_PID, "sched/sched_switch", "next_pid", 56),
        (FORK_CHILD_PID, "sched/sched_process_fork", "child_pid", 20),
        (RENAME_PID, "task/task_rename", "pid", 8),
        (RENAME_NEWCOMM, "task/task_rename", "newcomm", 28),
        (WAKEUP_PID, "sched/sched_wakeup", "pid", 24),
        (WAIT_PID, "sched/sched_process_wait", "pid", 12),
    ];
    /// Bytes of the sched_switch record the switch program copies (once, instead of a helper
    /// call per field): every field it reads must end within them.
    pub const SWITCH_RECORD_BYTES: usize = 64;
    /// The sched_switch fields the switch program reads, with their sizes.
    pub const SWITCH_FIELDS: [(&str, u32); 3] = [
        (SWITCH_PREV_PID, 4),
        (SWITCH_PREV_STATE, 8),
        (SWITCH_NEXT_PID, 4),
    ];
    pub const SWITCH_PREV_PID: &str = "OFF_SWITCH_PREV_PID";
    pub const SWITCH_PREV_STATE: &str = "OFF_SWITCH_PREV_STATE";
    pub const SWITCH_NEXT_PID: &str = "OFF_SWITCH_NEXT_PID";
    pub const FORK_CHILD_PID: &str = "OFF_FORK_CHILD_PID";
    pub const RENAME_PID: &str = "OFF_RENAME_PID";
    /// `task_rename`'s `newcomm` (char[16]).
    pub const RENAME_NEWCOMM: &str = "OFF_RENAME_NEWCOMM";
    pub const WAKEUP_PID: &str = "OFF_WAKEUP_PID";
    /// `sched_process_wait`'s `pid`: the kernel's id of the pid a `waitid` names (the PID
    /// namespace resolver).
    pub const WAIT_PID: &str = "OFF_WAIT_PID";
}

const _: () = {
    assert!(core::mem::size_of::<RecordHeader>() == 16);
    assert!(core::mem::align_of::<RecordHeader>() == 8);
    assert!(core::mem::size_of::<ThreadRecord>() == 40);
    assert!(core::mem::size_of::<DueEpisode>() == 32);
    assert!(core::mem::size_of::<TaskCacheEntry>() == 16);
    assert!(core::mem::size_of::<UnwindRow>() == 16);
    assert!(core::mem::size_of::<PollRecord>() == 40);
    assert!(core::mem::size_of::<OpenPolls>() == 8 + 36 * POLL_NESTING);
    assert!(core::mem::size_of::<PollTotals>() == 16);
    assert!(core::mem::size_of::<StackCopyHeader>() == 88);
    assert!(core::mem::size_of::<StackCopy>() == 88 + MAX_STACK_COPY);
    assert!(core::mem::size_of::<SwitchEntry>() == 16);
    assert!(core::mem::size_of::<SwitchBatch>() == 24 + 16 * SWITCH_BATCH_LEN);
    assert!(core::mem::size_of::<ThreadState>() == 32 + 32 * MAX_DUE);
    assert!(
        core::mem::size_of::<StackRecord>()
            == 16 + 8 + 8 + 8 * MAX_USER_FRAMES + 8 + 16 + 8 * MAX_KERNEL_FRAMES
    );
    assert!(core::mem::align_of::<StackRecord>() == 8);
    assert!(core::mem::size_of::<StackRecord>().is_multiple_of(8));
};

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::RecordHeader {}
    impl Sealed for super::StackRecord {}
    impl Sealed for super::ThreadRecord {}
    impl Sealed for super::SwitchBatch {}
    impl Sealed for super::StackCopyHeader {}
    impl Sealed for super::PollRecord {}
    impl Sealed for super::PollTotals {}
}

/// A plain-old-data record of this module: integers only, so every bit pattern is a valid value.
pub trait WireRecord: Copy + sealed::Sealed {}
impl WireRecord for RecordHeader {}
impl WireRecord for StackRecord {}
impl WireRecord for ThreadRecord {}
impl WireRecord for SwitchBatch {}
impl WireRecord for StackCopyHeader {}
impl WireRecord for PollRecord {}
impl WireRecord for PollTotals {}

/// Reads a record from the start of `bytes` (ring-buffer records need not be aligned for us).
/// `None` when `bytes` is too short.
pub fn read_record<T: WireRecord>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < core::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; `WireRecord` types are repr(C) integers, valid for any bytes.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The kind byte of a ring-buffer record, if it has a header at all.
pub fn record_kind(bytes: &[u8]) -> Option<u8> {
    if bytes.len() < core::mem::size_of::<RecordHeader>() {
        None
    } else {
        Some(bytes[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_buckets_are_contiguous_and_hold_their_durations() {
        let mut expected_low = 0;
        for b in 0..POLL_BUCKETS {
            let (low, high) = poll_bucket_range(b);
            assert_eq!(low, expected_low, "bucket {b}");
            assert!(high > low);
            assert_eq!(poll_bucket(low), b);
            assert_eq!(poll_bucket(high - 1), b);
            // 8 buckets per power of two: none wider than 1/8 of its low end.
            assert!(
                b < 8 || (high - low) * 8 <= low,
                "bucket {b}: {low}..{high}"
            );
            expected_low = high;
        }
        assert_eq!(poll_bucket(u64::MAX), POLL_BUCKETS - 1);
        assert_eq!(poll_bucket(1_000_000), poll_bucket(1_040_000));
        assert_ne!(poll_bucket(1_000_000), poll_bucket(1_200_000));
    }
}
