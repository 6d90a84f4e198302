//! What the frames hold, as rkyv archives. See docs/FORMAT.md for the promise each field makes.
//!
//! Times are CLOCK_MONOTONIC nanoseconds (the eBPF clock) unless named otherwise; the header's
//! [`ClockOffsets`] turns them into wall-clock time.

use rkyv::{Archive, Deserialize, Serialize};

use crate::columns::DeltaIter;

/// Capture-wide facts, written once as the first frame.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Header {
    /// Version of the hud that wrote the capture (semver).
    pub hud_version: String,
    pub host_name: String,
    /// `uname -r` of the recording host.
    pub kernel_release: String,
    /// e.g. "x86_64".
    pub arch: String,
    pub page_size: u32,
    /// Online CPUs when recording started.
    pub cpu_count: u32,
    pub clock: ClockOffsets,
    /// /proc/sys/kernel/random/boot_id: monotonic times compare only within one boot.
    pub boot_id: String,
    /// When recording started.
    pub start_ns: u64,
    /// cpu-clock sampling frequency in Hz (0: sampling off).
    pub sample_hz: u32,
    /// Off-CPU records are only written for episodes at least this long.
    pub offcpu_threshold_ns: u64,
    pub target: Target,
    pub options: RecorderOptions,
}

/// A pair of clock readings taken back to back: wall = `realtime_ns + (t - monotonic_ns)`.
#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ClockOffsets {
    pub monotonic_ns: u64,
    /// CLOCK_REALTIME, nanoseconds since the Unix epoch.
    pub realtime_ns: u64,
}

/// The recorded process.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Target {
    pub pid: u32,
    /// /proc/PID/exe as the recorder resolved it.
    pub exe_path: String,
    pub cmdline: Vec<String>,
    /// GNU build-id of the executable (empty if it has none).
    pub build_id: Vec<u8>,
}

/// How the recorder was asked to run.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct RecorderOptions {
    pub kernel_stacks: bool,
    pub embed_binaries: bool,
    /// The recorder's own command line, for the record.
    pub command_line: Vec<String>,
}

/// Events and metadata that appeared since the previous chunk.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Chunk {
    /// 0, 1, 2... in write order; a gap means a chunk is missing.
    pub seq: u32,
    /// Time range of the events in this chunk (inclusive), or of the flush when it has none.
    pub start_ns: u64,
    pub end_ns: u64,
    pub switches: Switches,
    pub samples: Samples,
    pub off_cpu: OffCpu,
    /// Stacks first seen in this chunk; ids continue from the previous chunk's.
    pub stacks: StackTable,
    pub threads: Vec<ThreadEvent>,
    pub mappings: Vec<Mapping>,
    /// Cumulative counter values at `end_ns` (only those that changed).
    pub counters: Vec<CounterValue>,
}

/// Timestamps as zigzag varint deltas from `base_ns` (see [`crate::columns`]).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct TimeColumn {
    pub base_ns: u64,
    pub deltas: Vec<u8>,
}

impl ArchivedTimeColumn {
    /// The absolute timestamps, decoded in place.
    pub fn iter(&self) -> DeltaIter<'_> {
        DeltaIter::new(self.deltas.as_slice(), self.base_ns.to_native())
    }
}

impl TimeColumn {
    pub fn iter(&self) -> DeltaIter<'_> {
        DeltaIter::new(&self.deltas, self.base_ns)
    }
}

/// On/off-CPU transitions of target threads, one row per transition.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Switches {
    pub ts: TimeColumn,
    pub tid: Vec<u32>,
    pub cpu: Vec<u16>,
    /// 1: switched in (on CPU), 0: switched out.
    pub on_cpu: Vec<u8>,
    /// On switch-out, the state it left in; `STATE_PREEMPTED` (0x100) when preempted.
    pub prev_state: Vec<u16>,
}

/// cpu-clock samples of target threads.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Samples {
    pub ts: TimeColumn,
    pub tid: Vec<u32>,
    pub cpu: Vec<u16>,
    /// Stack ids ([`StackTable`]); [`EMPTY_STACK`] when none.
    pub user_stack: Vec<u32>,
    pub kernel_stack: Vec<u32>,
}

/// Off-CPU episodes at least the threshold long, stamped at switch-in.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct OffCpu {
    pub ts: TimeColumn,
    pub tid: Vec<u32>,
    pub cpu: Vec<u16>,
    pub duration_ns: Vec<u64>,
    /// Of `duration_ns`, the time spent runnable but waiting for a CPU (wakeup to switch-in).
    /// `duration_ns - runnable_ns` is the time the thread was really blocked.
    pub runnable_ns: Vec<u64>,
    /// State at switch-out (1 sleeping, 2 uninterruptible, ...).
    pub state: Vec<u16>,
    /// Stack at switch-out: what the thread was doing when it left.
    pub user_stack: Vec<u32>,
    pub kernel_stack: Vec<u32>,
}

/// Counter the recorder sets in its first chunk: CLOCK_MONOTONIC nanoseconds when its probes were
/// attached, the real start of the recording (the header's `start_ns` is stamped before loading
/// them). Readers take the later of the two as the start.
pub const PROBES_ATTACHED_COUNTER: &str = "probes_attached_ns";

/// Stack (node) id meaning "no stack". Never defined in a [`StackTable`].
pub const EMPTY_STACK: u32 = 0;

/// Stacks as a prefix tree, nodes first seen in this chunk: node `first_id + i` is the frame
/// `address[i]` called from node `parent[i]` (0: from nothing, an outermost frame). A stack id is
/// the id of its innermost node; its frames, leaf first, are that node and its ancestors.
/// Stacks share their outer frames, so each new stack usually adds a few nodes, not a whole copy.
/// Addresses are raw instruction pointers (return addresses above the leaf) as the kernel saw them.
/// A parent always has a smaller id than its child, so walking up ends.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct StackTable {
    pub first_id: u32,
    pub parent: Vec<u32>,
    pub address: Vec<u64>,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum ThreadEventKind {
    /// Present when recording started, or created during it.
    New,
    Renamed,
    Exited,
}

/// A thread appearing, changing name or exiting.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ThreadEvent {
    pub ts_ns: u64,
    pub tid: u32,
    pub kind: ThreadEventKind,
    /// Name after the event (comm, up to 15 bytes).
    pub name: String,
}

/// One line of /proc/PID/maps that maps a file, with the file's build-id.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Mapping {
    /// When the recorder saw it.
    pub ts_ns: u64,
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub file_offset: u64,
    /// "r-xp" etc.
    pub perms: String,
    pub path: String,
    pub inode: u64,
    /// GNU build-id read from the file (empty when none or unreadable).
    pub build_id: Vec<u8>,
}

impl ArchivedMapping {
    /// An owned copy (mappings are few; views keep them).
    pub fn to_mapping(&self) -> Mapping {
        Mapping {
            ts_ns: self.ts_ns.to_native(),
            start: self.start.to_native(),
            end: self.end.to_native(),
            file_offset: self.file_offset.to_native(),
            perms: self.perms.to_string(),
            path: self.path.to_string(),
            inode: self.inode.to_native(),
            build_id: self.build_id.to_vec(),
        }
    }
}

/// A cumulative counter value, e.g. records lost in the kernel. Names are [`crate::wire::Counter`]
/// names or recorder-side ones such as "lost_unknown_record".
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct CounterValue {
    pub name: String,
    pub value: u64,
}

/// Stack copies (frame kind 5, format 1.1): the user registers and the raw stack bytes
/// (from `sp` up) taken with samples and off-CPU episodes, for the analyzer to unwind where
/// frame pointers could not (libc leaves, code built without them). A frame follows the chunk
/// whose events it serves; readers of 1.0 skip it and keep the frame-pointer stacks.
///
/// Row `i` serves the events of thread `tid[i]` of kind `of[i]` ([`COPY_OF_SAMPLE`],
/// [`COPY_OF_OFF_CPU`]) stamped from `ts[i]` to `ts[i] + span_ns[i]` (off-CPU episodes that
/// waited for one return from a system call share its stack). Its copy covers `len[i]` bytes
/// of stack from `sp[i]` up, stored sparsely: its `words[i]` non-zero 8-byte words are the next
/// entries of `word_index` (the word's index from `sp`, increasing within a row) and
/// `word_value`; every other word of the copy is 0. (The recorder keeps only the words
/// unwinding reads, so a copy is mostly zeros.) Copies with bytes are numbered: this frame's are
/// `first_id`, `first_id + 1`, … in row order. A row whose `same_as[i]` is not 0 has no bytes
/// and no registers (0): it
/// repeats the copy numbered `same_as[i]`, in this frame or an earlier one (a thread that parks
/// again and again in one place has the same registers and stack each time: sent once). A
/// repeat of a copy that is not there (a lost frame) is left out, never taken for another.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct StackCopies {
    pub first_id: u32,
    pub ts: TimeColumn,
    pub span_ns: Vec<u64>,
    pub tid: Vec<u32>,
    pub of: Vec<u8>,
    pub ip: Vec<u64>,
    pub sp: Vec<u64>,
    pub bp: Vec<u64>,
    pub len: Vec<u32>,
    pub same_as: Vec<u32>,
    pub words: Vec<u32>,
    pub word_index: Vec<u16>,
    pub word_value: Vec<u64>,
}

/// A repeat names one of the last this many copies numbered (the writer remembers no more): a
/// reader need not remember older ones.
pub const MAX_REMEMBERED_COPIES: usize = 1 << 16;

/// [`StackCopies::of`]: the copy belongs to a sample.
pub const COPY_OF_SAMPLE: u8 = 1;
/// [`StackCopies::of`]: the copy belongs to off-CPU episodes.
pub const COPY_OF_OFF_CPU: u8 = 2;

/// The Tokio task each event ran in (format 1.2; frame kind 6): read by the recorder from the
/// target's thread-local `CONTEXT.current_task_id` with each sample, and when a thread blocked.
/// A frame follows the chunk whose events it serves; readers of 1.0 and 1.1 skip it.
///
/// Row `i` is the event of thread `tid[i]` and kind `of[i]` ([`COPY_OF_SAMPLE`],
/// [`COPY_OF_OFF_CPU`]) stamped `ts[i]` (a sample's time, an off-CPU episode's end): it ran in
/// task `task[i]` (0: the thread polled no task, as in the scheduler or outside a runtime).
/// `tick[i]` (samples) is the tick of the scheduler the
/// thread ran (it moves at each task the scheduler polls; [`crate::wire::NO_TICK`]: not read):
/// two samples of one task with the same tick were one poll. Events without a row have no known
/// task.
///
/// `source` says how ids were read, in the capture's first such frame (empty in later ones), or,
/// starting with `none: `, why the recorder could not read them (then no frame has rows).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct EventTasks {
    pub source: String,
    pub ts: TimeColumn,
    pub tid: Vec<u32>,
    pub of: Vec<u8>,
    pub task: Vec<u64>,
    pub tick: Vec<u64>,
}

/// The Tokio task of every sample and off-CPU episode of a run of consecutive chunks, in the
/// chunks' own order (format 1.3; frame kind 8): no time or thread per row, which
/// [`EventTasks`] rows spend most of their bytes on (task ids made the busy demo's capture 1.25×
/// larger that way). A frame follows the chunks it serves, about once a second; readers of 1.2
/// skip it (their events then have no task).
///
/// Chunk `first_seq + i` has `samples[i]` samples and `off_cpu[i]` off-CPU episodes. `task` and
/// `tick` hold a zigzag varint per sample, in order: the sample's task id ([`EventTasks::task`])
/// and scheduler tick ([`EventTasks::tick`]) minus those of the previous sample of the same
/// thread in the same chunk (0 and [`crate::wire::NO_TICK`] before the first); `off_cpu_task`
/// the same per episode, for the task it blocked in. So a chunk decodes alone
/// ([`crate::chunk_tasks`]). Task 0: no known task.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ChunkTasks {
    pub first_seq: u32,
    pub samples: Vec<u32>,
    pub task: Vec<u8>,
    pub tick: Vec<u8>,
    pub off_cpu: Vec<u32>,
    pub off_cpu_task: Vec<u8>,
}

/// [`EventTasks::source`] of a recorder that could not read task ids starts with this.
pub const NO_TASK_IDS: &str = "none: ";

/// Where the target ran and how it was seen (format 1.4; one frame after the header, and one
/// more in a flight-recorder dump): its ids in the namespaces that name it, and its container.
/// The capture's pids and tids are always the kernel's (the initial PID namespace's); these say
/// what the user knows them by.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Provenance {
    /// The pid the recorder was given (in its own PID namespace).
    pub pid_seen: u32,
    /// The target's pid in its own PID namespace (1 for a container's first process).
    pub pid_in_namespace: u32,
    /// The recorder ran in a PID namespace of its own (a container), not the kernel's.
    pub recorder_namespaced: bool,
    /// The threads at the start, by the kernel's ids, and the same threads' ids in the target's
    /// own namespace (two columns of one length).
    pub thread_kernel_ids: Vec<u32>,
    pub thread_namespace_ids: Vec<u32>,
    /// The target's cgroup (the unified hierarchy's path), empty when unknown.
    pub cgroup: String,
    /// The container runtime and id the cgroup names (`docker`, `containerd`, `cri-o`,
    /// `podman`, `kubernetes`), empty when it names none.
    pub container_runtime: String,
    pub container_id: String,
    /// Set in a flight-recorder dump: why it was written and the window it holds.
    pub dump: Option<Dump>,
}

/// A flight-recorder dump: an ordinary capture of the window around a moment.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Dump {
    /// `signal`, `request` (`hud-record --dump`), `blocked` (a runtime thread blocked at least
    /// the trigger), `exit` (the target exited with a trigger pending); `segment` at the start
    /// of each segment of a flight recorder's ring (read as one capture, the ring's directory
    /// starts at its oldest segment).
    pub reason: String,
    /// The moment dumped around (CLOCK_MONOTONIC ns): the signal, or the blocking's start.
    pub trigger_ns: u64,
    /// What the trigger saw, in words (the thread and how long it was blocked).
    pub detail: String,
    /// The window the dump holds, CLOCK_MONOTONIC ns.
    pub from_ns: u64,
    pub to_ns: u64,
    /// The number of the first chunk that follows (a dump starts at a segment of the ring, not
    /// at chunk 0: the chunks before are not missing, they were left out).
    pub first_seq: u32,
}

/// `--poll-probes` (format 1.3): exact poll durations of the probed task poll functions. The
/// recorder writes one about once a second and one at close; each holds the probes added since
/// the previous one, every probe's histogram so far (cumulative: the last frame has the whole
/// recording), and the polls past `event_ns` that ended since the previous one.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Polls {
    /// When the histograms were read.
    pub ts_ns: u64,
    /// The shortest poll sent as an event.
    pub event_ns: u64,
    pub probes: Vec<PollProbe>,
    pub histograms: Vec<PollHistogram>,
    pub long: PollEvents,
    /// Why probing stopped before recording did (over its budget), empty while it goes on.
    pub stopped: String,
    /// When the recorder began and finished detaching the probes (0: it did not). Removing a
    /// uprobe rewrites the target's code under its memory map's lock: its threads can stall
    /// meanwhile (16 ms seen on mini-redis), which is hud's doing, not the target's.
    pub stopped_ns: u64,
    pub detached_ns: u64,
}

/// One probed `tokio::runtime::task::raw::poll::<T, S>` instance.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct PollProbe {
    /// The index events and histograms name it by.
    pub probe: u32,
    /// Its address in the target's executable (an ELF virtual address) and that file's path.
    pub address: u64,
    pub path: String,
    /// The future type `T` and the scheduler `S`, as the executable's DWARF names them.
    pub future: String,
    pub scheduler: String,
}

/// One probe's poll durations so far: `counts[i]` polls in `hud_format::wire` bucket
/// `buckets[i]` (sparse, ascending).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct PollHistogram {
    pub probe: u32,
    pub sum_ns: u64,
    pub max_ns: u64,
    pub buckets: Vec<u16>,
    pub counts: Vec<u64>,
}

/// Polls past the event threshold, one row each.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct PollEvents {
    pub tid: Vec<u32>,
    pub start_ns: Vec<u64>,
    pub end_ns: Vec<u64>,
    pub probe: Vec<u32>,
    /// The Tokio task each polled (0: not read).
    pub task: Vec<u64>,
}

/// A piece of an object file embedded in the capture (`--embed-binaries`). Large files are split in
/// parts, each under the frame size limit; parts of one object share `object_id`.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ObjectPart {
    pub object_id: u32,
    pub path: String,
    pub build_id: Vec<u8>,
    /// Size of the whole file.
    pub total_len: u64,
    /// Where `bytes` goes in the whole file.
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Written last, at clean close: where each frame is and the totals.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Index {
    pub end_ns: u64,
    pub entries: Vec<IndexEntry>,
    pub totals: Totals,
}

#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct IndexEntry {
    /// Byte offset of the frame header.
    pub offset: u64,
    /// [`crate::frame::FrameKind`] as a byte.
    pub kind: u8,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Archive, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Totals {
    pub switches: u64,
    pub samples: u64,
    pub off_cpu: u64,
    pub stacks: u64,
    pub threads: u64,
    pub mappings: u64,
    pub chunks: u64,
}
