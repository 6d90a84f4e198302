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
    /// A [`super::SwitchRecord`]: a target thread went on or off CPU.
    pub const SWITCH: u8 = 1;
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
}

/// `RecordHeader::flags` bit of a switch record: set when the thread goes on CPU.
pub const FLAG_SWITCH_IN: u8 = 1;

/// `prev_state` the kernel reports for a preempted (still runnable) task: TASK_REPORT_MAX, "R+".
pub const STATE_PREEMPTED: u32 = 0x100;

/// The common head of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// One of [`kind`].
    pub kind: u8,
    /// Kind-specific bits, e.g. [`FLAG_SWITCH_IN`].
    pub flags: u8,
    /// CPU the event happened on.
    pub cpu: u16,
    /// Thread id (kernel pid) the event is about.
    pub tid: u32,
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
}

/// A target thread going on (`FLAG_SWITCH_IN`) or off CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchRecord {
    pub header: RecordHeader,
    /// On switch-out, the state the thread left in (0 running, 1 S, 2 D, [`STATE_PREEMPTED`]...).
    pub prev_state: u32,
    pub _pad: u32,
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
    pub kernel: [u64; MAX_KERNEL_FRAMES],
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
    /// The per-thread map (thread ids or pending stacks) was full.
    ThreadMapFull = 6,
}

impl Counter {
    /// Number of counters; the size of the `COUNTERS` map.
    pub const COUNT: u32 = 7;
    /// Every counter, in index order.
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::LostSwitch,
        Counter::LostOffCpu,
        Counter::LostSample,
        Counter::LostThread,
        Counter::UserStackError,
        Counter::KernelStackError,
        Counter::ThreadMapFull,
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

/// Names of the read-only globals hud-record sets before loading the eBPF object.
pub mod globals {
    /// `u32`: the target process id (tgid).
    pub const TARGET_TGID: &str = "TARGET_TGID";
    /// `u64`: shortest off-CPU time that produces an off-CPU record.
    pub const OFFCPU_THRESHOLD_NS: &str = "OFFCPU_THRESHOLD_NS";
    /// `u32`: 1 to collect kernel stacks too.
    pub const KERNEL_STACKS: &str = "KERNEL_STACKS";
}

/// Map and program names shared by hud-ebpf and hud-record.
pub mod names {
    pub const EVENTS: &str = "EVENTS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const TARGET_TIDS: &str = "TARGET_TIDS";
    pub const PROG_SWITCH: &str = "hud_sched_switch";
    pub const PROG_FORK: &str = "hud_sched_fork";
    pub const PROG_EXIT: &str = "hud_sched_exit";
    pub const PROG_RENAME: &str = "hud_task_rename";
    pub const PROG_WAKEUP: &str = "hud_sched_wakeup";
    pub const PROG_SAMPLE: &str = "hud_cpu_sample";
    /// Per-thread pending off-CPU stacks, keyed by tid.
    pub const OFFCPU_PENDING: &str = "OFFCPU_PENDING";
}

/// Field offsets of the tracepoint records the programs read. hud-record reads the real ones from
/// each tracepoint's tracefs `format` file and sets these globals; the defaults are Linux 6.18's.
pub mod offsets {
    /// (global name, tracepoint, field, default offset)
    pub const FIELDS: [(&str, &str, &str, u32); 7] = [
        (SWITCH_PREV_PID, "sched/sched_switch", "prev_pid", 24),
        (SWITCH_PREV_STATE, "sched/sched_switch", "prev_state", 32),
        (SWITCH_NEXT_PID, "sched/sched_switch", "next_pid", 56),
        (FORK_CHILD_PID, "sched/sched_process_fork", "child_pid", 20),
        (RENAME_PID, "task/task_rename", "pid", 8),
        (RENAME_NEWCOMM, "task/task_rename", "newcomm", 28),
        (WAKEUP_PID, "sched/sched_wakeup", "pid", 24),
    ];
    pub const SWITCH_PREV_PID: &str = "OFF_SWITCH_PREV_PID";
    pub const SWITCH_PREV_STATE: &str = "OFF_SWITCH_PREV_STATE";
    pub const SWITCH_NEXT_PID: &str = "OFF_SWITCH_NEXT_PID";
    pub const FORK_CHILD_PID: &str = "OFF_FORK_CHILD_PID";
    pub const RENAME_PID: &str = "OFF_RENAME_PID";
    /// `task_rename`'s `newcomm` (char[16]).
    pub const RENAME_NEWCOMM: &str = "OFF_RENAME_NEWCOMM";
    pub const WAKEUP_PID: &str = "OFF_WAKEUP_PID";
}

const _: () = {
    assert!(core::mem::size_of::<RecordHeader>() == 16);
    assert!(core::mem::align_of::<RecordHeader>() == 8);
    assert!(core::mem::size_of::<SwitchRecord>() == 24);
    assert!(core::mem::size_of::<ThreadRecord>() == 40);
    assert!(
        core::mem::size_of::<StackRecord>()
            == 16 + 8 + 8 + 8 * MAX_USER_FRAMES + 8 + 8 * MAX_KERNEL_FRAMES
    );
    assert!(core::mem::align_of::<StackRecord>() == 8);
    assert!(core::mem::size_of::<StackRecord>().is_multiple_of(8));
};

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::RecordHeader {}
    impl Sealed for super::SwitchRecord {}
    impl Sealed for super::StackRecord {}
    impl Sealed for super::ThreadRecord {}
}

/// A plain-old-data record of this module: integers only, so every bit pattern is a valid value.
pub trait WireRecord: Copy + sealed::Sealed {}
impl WireRecord for RecordHeader {}
impl WireRecord for SwitchRecord {}
impl WireRecord for StackRecord {}
impl WireRecord for ThreadRecord {}

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
