//! Loading and attaching the eBPF programs, and reading their maps.

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::{PerfEvent, RawTracePoint, TracePoint, UProbe};
use aya::{Ebpf, EbpfLoader};
use hud_format::wire::{self, globals, names, Counter, SwitchBatch, MAX_THREADS};

use crate::error::{RecordError, Result};

/// A switch batch as bytes (aya's `Pod` is not ours to implement for hud-format's type).
const BATCH_BYTES: usize = std::mem::size_of::<SwitchBatch>();

/// The compiled eBPF object, built by build.rs from hud-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hud-ebpf"));

/// What to load.
pub struct ProbeConfig {
    /// The target's pid in the kernel's namespace, which the programs compare.
    pub tgid: u32,
    /// The target's pid as the recorder sees it (what perf_event_open takes, for the uprobes).
    pub seen_pid: u32,
    pub offcpu_threshold_ns: u64,
    pub kernel_stacks: bool,
    pub sample_hz: u32,
    pub ring_bytes: u32,
    /// User stack bytes copied with each kept event (0: none).
    pub stack_copy_bytes: u32,
    /// Copy with samples of user code too, not only with those taken in system calls.
    pub copy_user_samples: bool,
    /// Stack bytes all CPUs may copy per second.
    pub stack_budget: u64,
    pub offsets: Vec<(&'static str, u32)>,
    /// The kernel's task layout (from BTF): the scheduler programs attach as raw tracepoints
    /// when known, as classic ones otherwise.
    pub task_layout: Option<crate::btf::TaskLayout>,
    /// Offset of `thread.fsbase` in `struct task_struct`, when BTF gives it: where the target's
    /// threads' stacks end.
    pub fsbase_offset: Option<u32>,
    /// The end of the target's main-thread stack (0: unknown).
    pub main_stack_top: u64,
    /// Where the target's threads keep their Tokio task id (read with `fsbase_offset`).
    pub task_ids: Option<hud_format::elf::task_id::TaskIdLayout>,
    /// `--poll-probes`: the executable (as the recorder reaches it) and the file offsets of the
    /// poll functions to probe, in probe order.
    pub poll_probes: Option<(std::path::PathBuf, Vec<u64>)>,
    /// The shortest probed poll sent as a record.
    pub poll_event_ns: u64,
    /// How the poll probes read the polled task's id (None: they do not).
    pub poll_task_ids: Option<hud_format::elf::task_polls::TaskIdReads>,
    /// The unwinding table (empty: stacks are walked with frame pointers, and copied).
    pub unwind_rows: Vec<wire::UnwindRow>,
}

/// The maps of `--poll-probes`.
struct PollMaps {
    histograms: PerCpuArray<MapData, u64>,
    totals: PerCpuArray<MapData, [u64; 2]>,
    probes: u32,
    /// Each uprobe's link, by program: taken out to detach them.
    links: Vec<(&'static str, aya::programs::uprobe::UProbeLinkId)>,
}

/// Probes being detached on a thread of their own, and when that began.
pub struct Detaching {
    pub from_ns: u64,
    done: std::thread::JoinHandle<u64>,
}

impl Detaching {
    /// Whether the detach is over.
    pub fn is_finished(&self) -> bool {
        self.done.is_finished()
    }

    /// Waits for the detach; when it began and ended (CLOCK_MONOTONIC).
    pub fn wait(self) -> (u64, u64) {
        let to = self
            .done
            .join()
            .unwrap_or_else(|_| crate::procfs::monotonic_ns());
        (self.from_ns, to)
    }
}

/// Loaded and attached programs. Dropping it detaches everything.
pub struct Probes {
    /// Held for its programs: dropping it detaches them.
    ebpf: Ebpf,
    polls: Option<PollMaps>,
    pub ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    slots: Array<MapData, u16>,
    fresh_slots: FreshSlots,
    batches: PerCpuArray<MapData, [u8; BATCH_BYTES]>,
    control: Array<MapData, u32>,
    /// Copies are leaf windows (`--unwind leaf` on a target with frame pointers), not whole
    /// stacks: a copy that adds no frame to the walk can be left out.
    pub leaf_windows: bool,
}

/// The kernel's largest pid + 1 (the `SLOTS` map is indexed by tid).
fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        // PID_MAX_LIMIT on 64-bit kernels.
        .unwrap_or(4 * 1024 * 1024)
}

/// A program of the object, typed.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| RecordError::Bpf(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(|e| bpf_error(name, e))
}

/// Takes a map out of the object, typed.
fn take<T>(ebpf: &mut Ebpf, name: &str) -> Result<T>
where
    T: TryFrom<aya::maps::Map>,
    <T as TryFrom<aya::maps::Map>>::Error: std::error::Error + 'static,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| RecordError::Bpf(format!("map {name} missing from the object")))?;
    T::try_from(map).map_err(|e| bpf_error(&format!("opening map {name}"), e))
}

/// Writes the unwinding table into its map through a memory mapping of it (the map is
/// mmapable): one copy instead of a system call per row.
fn write_unwind_rows(ebpf: &mut Ebpf, rows: &[wire::UnwindRow]) -> Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    if rows.is_empty() {
        return Ok(());
    }
    let map = ebpf.map_mut(names::UNWIND_ROWS).ok_or_else(|| {
        RecordError::Bpf(format!(
            "map {} missing from the object",
            names::UNWIND_ROWS
        ))
    })?;
    let aya::maps::Map::Array(data) = map else {
        return Err(RecordError::Bpf(format!(
            "map {} is not an array",
            names::UNWIND_ROWS
        )));
    };
    let len = std::mem::size_of_val(rows);
    let fd = data.fd().as_fd().as_raw_fd();
    // SAFETY: a shared writable mapping of the map's own memory, as large as its entries; only
    // this function touches it, before the programs are attached.
    let mut memory = unsafe { memmap2::MmapOptions::new().len(len).map_mut(fd) }
        .map_err(|e| bpf_error("mapping the unwinding table", e))?;
    // SAFETY: `UnwindRow` is plain `repr(C)` data without padding (16 bytes, checked in
    // hud-format); its bytes are what the kernel reads.
    let bytes = unsafe { std::slice::from_raw_parts(rows.as_ptr().cast::<u8>(), len) };
    memory.copy_from_slice(bytes);
    Ok(())
}

/// Counts the target threads' returns from `epoll_wait` and its variants, for the samples that
/// can read no task id (`wire::TICK_OF_IO_POLLS`). Evidence, not a need: a kernel without one of
/// these tracepoints (older kernels have no `epoll_pwait2`; some are built without system call
/// tracepoints) leaves those samples as they were.
fn attach_io_polls(program: &mut TracePoint) {
    for name in [
        "sys_exit_epoll_wait",
        "sys_exit_epoll_pwait",
        "sys_exit_epoll_pwait2",
    ] {
        let _ = program.attach("syscalls", name);
    }
}

/// The count of never-used thread slots handed out (`FRESH_SLOTS`, a `u64`), mapped: hud-record
/// takes slots for the threads it finds with the same atomic add as the fork program, which may
/// run meanwhile.
struct FreshSlots(memmap2::MmapMut);

impl FreshSlots {
    fn map(ebpf: &mut Ebpf) -> Result<Self> {
        use std::os::fd::{AsFd, AsRawFd};
        let Some(aya::maps::Map::Array(data)) = ebpf.map_mut(names::FRESH_SLOTS) else {
            return Err(RecordError::Bpf(format!(
                "map {} missing from the object, or not an array",
                names::FRESH_SLOTS
            )));
        };
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a shared mapping of the map's one `u64`, written only by atomic adds.
        let memory = unsafe { memmap2::MmapOptions::new().len(8).map_mut(fd) }
            .map_err(|e| bpf_error("mapping the thread slot count", e))?;
        Ok(FreshSlots(memory))
    }

    /// A slot no thread had, or `None` when all are taken.
    fn take(&mut self) -> Option<u16> {
        // SAFETY: the mapping is page-aligned and 8 bytes; the kernel's programs access the
        // same `u64` only atomically.
        let count = unsafe { std::sync::atomic::AtomicU64::from_ptr(self.0.as_mut_ptr().cast()) };
        if count.load(std::sync::atomic::Ordering::Relaxed) >= u64::from(MAX_THREADS - 1) {
            return None;
        }
        let slot = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        u16::try_from(slot)
            .ok()
            .filter(|&s| u32::from(s) < MAX_THREADS)
    }
}

/// A load or attach failure: "not permitted" when the kernel said EPERM or EACCES anywhere in
/// the error's chain of causes (found by errno, not by the error's text), else a BPF error.
fn bpf_error(what: &str, e: impl std::error::Error + 'static) -> RecordError {
    let text = format!("{what}: {e}");
    if denied(&e) {
        RecordError::NotPermitted(text)
    } else {
        RecordError::Bpf(text)
    }
}

/// Whether an OS error in `e`'s chain of causes is EPERM or EACCES, and not the verifier
/// rejecting a program (which also says EACCES, with its log).
fn denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(aya::programs::ProgramError::LoadError { verifier_log, .. }) =
            err.downcast_ref::<aya::programs::ProgramError>()
        {
            if !format!("{verifier_log:?}").trim().is_empty() {
                return false;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                return true;
            }
        }
        cause = err.source();
    }
    false
}

/// An `EbpfLoader` made without parsing the kernel's BTF.
///
/// aya 0.14's `EbpfLoader::new()` parses all of `/sys/kernel/btf/vmlinux` (19 MiB of heap at its
/// peak) before it can be told `btf(None)`, which alone put the recorder's peak RSS over 20 MiB.
/// (aya 0.15 parses it only for CO-RE relocations, but needs Rust 1.98.) So the loader is made on
/// a short-lived thread with a mount namespace of its own, in which the file is /dev/null: the
/// parse fails at once and aya goes on without BTF. The namespace is the thread's and ends with
/// it; the rest of the recorder never sees it. Without CAP_SYS_ADMIN (unshare and mount need it),
/// the loader is made as usual, and the peak is the higher one.
fn loader_without_kernel_btf() -> EbpfLoader<'static> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| hide_kernel_btf_from_this_thread().then(EbpfLoader::new))
            .join()
            .ok()
            .flatten()
    })
    .unwrap_or_else(EbpfLoader::new)
}

/// Gives the calling thread a private mount namespace in which the kernel's BTF is empty.
/// Whether that worked.
fn hide_kernel_btf_from_this_thread() -> bool {
    use std::ffi::CString;
    let (Ok(root), Ok(null), Ok(vmlinux)) = (
        CString::new("/"),
        CString::new("/dev/null"),
        CString::new(crate::btf::VMLINUX),
    ) else {
        return false;
    };
    // SAFETY: unshare and mount with valid C strings; they change only this thread's mount
    // namespace (CLONE_NEWNS implies CLONE_FS, so the thread stops sharing it). Mounts are made
    // slaves first so that the bind mount never propagates back to the host's namespace.
    unsafe {
        libc::unshare(libc::CLONE_NEWNS) == 0
            && libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) == 0
            && libc::mount(
                null.as_ptr(),
                vmlinux.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ) == 0
    }
}

/// Returns freed heap pages to the kernel, so a transient peak does not stay resident.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `hud_resolve_pid` loaded and attached: the kernel's ids of threads named by their ids in the
/// recorder's PID namespace (see `crate::pidns`). Dropping it detaches the program.
pub struct Resolver {
    /// Held for its program: dropping it detaches it.
    _ebpf: Ebpf,
    answers: Array<MapData, u32>,
}

impl Resolver {
    /// Loads the program alone (every other map at its smallest). `ns` is the recorder's PID
    /// namespace (the nsfs device in the kernel's encoding, and inode); `offsets` the tracepoint
    /// fields' offsets from tracefs.
    pub fn load(ns: (u64, u64), offsets: &[(&'static str, u32)]) -> Result<Self> {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() } as u32;
        let mut loader = loader_without_kernel_btf();
        loader
            .btf(None)
            .override_global(globals::RESOLVER_NS_DEV, &ns.0, true)
            .override_global(globals::RESOLVER_NS_INO, &ns.1, true)
            .override_global(globals::RESOLVER_TID, &tid, true)
            .map_max_entries(names::EVENTS, 4096)
            .map_max_entries(names::STACK_SCRATCH, 1)
            .map_max_entries(names::SLOTS, 1)
            .map_max_entries(names::STATES, 1)
            .map_max_entries(names::FREE_SLOTS, 1)
            .map_max_entries(names::TASKS, 1)
            .map_max_entries(names::OPEN_POLLS, 1)
            .map_max_entries(names::OFFCPU_PENDING, 1);
        for (name, offset) in offsets {
            if *name == wire::offsets::WAIT_PID {
                loader.override_global(name, offset, true);
            }
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| bpf_error("loading the PID namespace resolver", e))?;
        release_freed_memory();
        let answers = take(&mut ebpf, names::RESOLVED)?;
        let program: &mut TracePoint = program(&mut ebpf, names::PROG_RESOLVE_PID)?;
        program
            .load()
            .map_err(|e| bpf_error(names::PROG_RESOLVE_PID, e))?;
        program
            .attach("sched", "sched_process_wait")
            .map_err(|e| bpf_error("attaching to sched/sched_process_wait", e))?;
        Ok(Resolver {
            _ebpf: ebpf,
            answers,
        })
    }

    /// The kernel's id of the process or thread `id` names in the recorder's namespace, or
    /// `None` when it names none (it exited). Must be called from the thread that loaded it.
    pub fn kernel_id(&mut self, id: u32) -> Result<Option<u32>> {
        self.answers
            .set(0, 0, 0)
            .map_err(|e| bpf_error("clearing the resolver's answer", e))?;
        // SAFETY: waitid on a pid that is no child of ours fails with ECHILD after the
        // tracepoint; WNOHANG | WNOWAIT so that even a child is neither waited for nor reaped.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                id as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
        }
        let answer = self
            .answers
            .get(&0, 0)
            .map_err(|e| bpf_error("reading the resolver's answer", e))?;
        Ok((answer != 0).then_some(answer))
    }
}

impl Probes {
    pub fn load(config: &ProbeConfig) -> Result<Self> {
        let kernel_stacks = u32::from(config.kernel_stacks);
        let copy_user_samples = u32::from(config.copy_user_samples);
        let possible_cpus = aya::util::nr_cpus()
            .map_err(|(what, e)| RecordError::Other(format!("reading {what}: {e}")))?
            as u32;
        // Shared out so that a CPU never waits for another's budget.
        let budget_per_cpu = (config.stack_budget / u64::from(possible_cpus.max(1))).max(1);
        let mut loader = loader_without_kernel_btf();
        // The programs use no CO-RE relocations: no kernel BTF for aya.
        loader
            .btf(None)
            .override_global(globals::TARGET_TGID, &config.tgid, true)
            .override_global(
                globals::OFFCPU_THRESHOLD_NS,
                &config.offcpu_threshold_ns,
                true,
            )
            .override_global(globals::KERNEL_STACKS, &kernel_stacks, true)
            .override_global(globals::STACK_COPY_BYTES, &config.stack_copy_bytes, true)
            .override_global(globals::STACK_BUDGET_PER_CPU, &budget_per_cpu, true)
            .override_global(globals::COPY_USER_SAMPLES, &copy_user_samples, true)
            .map_max_entries(names::EVENTS, config.ring_bytes)
            // Two scratch copies per CPU (64 KiB each) only when copies are taken.
            .map_max_entries(
                names::STACK_SCRATCH,
                if config.stack_copy_bytes > 0 {
                    2 * possible_cpus
                } else {
                    1
                },
            )
            .map_max_entries(names::SLOTS, pid_max())
            .override_global(globals::POLL_EVENT_NS, &config.poll_event_ns, true)
            // Histograms for the probes attached (one entry when none are).
            .map_max_entries(
                names::POLL_HISTOGRAMS,
                config
                    .poll_probes
                    .as_ref()
                    .map_or(1, |(_, p)| p.len().max(1) as u32 * wire::POLL_BUCKETS),
            )
            .map_max_entries(
                names::POLL_TOTALS,
                config
                    .poll_probes
                    .as_ref()
                    .map_or(1, |(_, p)| p.len().max(1) as u32),
            )
            // The kernel-stacks mode parks stacks at every sleeping switch-out; otherwise only
            // a thread that sleeps in a page fault does (a map preallocates: 1.5 KiB a thread).
            .map_max_entries(
                names::OFFCPU_PENDING,
                if config.kernel_stacks { 4096 } else { 1024 },
            );
        for (name, offset) in &config.offsets {
            loader.override_global(name, offset, true);
        }
        let unwind_rows = config.unwind_rows.len() as u32;
        loader
            .override_global(globals::UNWIND_ROW_COUNT, &unwind_rows, true)
            .map_max_entries(names::UNWIND_ROWS, unwind_rows.max(1));
        let pid_offset = config.task_layout.map_or(0, |l| l.pid_offset);
        loader.override_global(globals::TASK_PID_OFFSET, &pid_offset, true);
        let fsbase_offset = config.fsbase_offset.unwrap_or(0);
        loader
            .override_global(globals::TASK_FSBASE_OFFSET, &fsbase_offset, true)
            .override_global(globals::MAIN_STACK_TOP, &config.main_stack_top, true);
        // The globals are borrowed until the object is loaded.
        let poll_task_ids = config
            .poll_task_ids
            .map(|r| (1u32, r.vtable_at, r.id_offset_at));
        if let Some((on, vtable_at, id_offset_at)) = &poll_task_ids {
            loader
                .override_global(globals::POLL_TASK_IDS, on, true)
                .override_global(globals::POLL_VTABLE_AT, vtable_at, true)
                .override_global(globals::POLL_ID_OFFSET_AT, id_offset_at, true);
        }
        let task_ids = config
            .task_ids
            .as_ref()
            .filter(|_| config.fsbase_offset.is_some());
        let (task_ids_on, value_at, tag_at, mask, none) = match task_ids {
            Some(ids) => (
                1u32,
                ids.value_at as u64,
                ids.tag_at as u64,
                ids.tag_mask(),
                ids.none,
            ),
            None => (0, 0, 0, u64::MAX, 0),
        };
        if task_ids_on != 0 {
            loader
                .override_global(globals::TASK_IDS, &task_ids_on, true)
                .override_global(globals::TASK_ID_VALUE_AT, &value_at, true)
                .override_global(globals::TASK_ID_TAG_AT, &tag_at, true)
                .override_global(globals::TASK_ID_TAG_MASK, &mask, true)
                .override_global(globals::TASK_ID_NONE, &none, true);
        }
        let tick = task_ids.and_then(|ids| ids.tick.as_ref());
        let tick_on = u32::from(tick.is_some());
        let tick_sched_at = tick.map_or(0, |t| t.scheduler_at as u64);
        let tick_tag_at = tick.map_or(0, |t| t.tag_at);
        let tick_tag_mask = tick.map_or(u64::MAX, |t| t.tag_mask());
        // Per variant: tag, "no tag value", core pointer offset, tick offset, tick mask, kind.
        let variants: Vec<(u64, u32, u64, u64, u64, u64)> = (0..2)
            .map(|i| match tick.and_then(|t| t.variants.get(i)) {
                Some(v) => (
                    v.tag.unwrap_or(0),
                    u32::from(v.tag.is_none()),
                    v.core_at,
                    v.tick_at,
                    if v.tick_size >= 8 {
                        u64::MAX
                    } else {
                        (1u64 << (8 * u32::from(v.tick_size))) - 1
                    },
                    match v.name.as_str() {
                        "CurrentThread" => wire::TICK_OF_CURRENT_THREAD,
                        "MultiThread" => wire::TICK_OF_MULTI_THREAD,
                        _ => 0,
                    } << wire::TICK_KIND_SHIFT,
                ),
                None => (0, 0, 0, 0, 0, 0),
            })
            .collect();
        if tick_on != 0 {
            loader
                .override_global(globals::TICKS, &tick_on, true)
                .override_global(globals::TICK_SCHED_AT, &tick_sched_at, true)
                .override_global(globals::TICK_TAG_AT, &tick_tag_at, true)
                .override_global(globals::TICK_TAG_MASK, &tick_tag_mask, true);
            for (names, v) in globals::TICK_VARIANTS.iter().zip(&variants) {
                loader
                    .override_global(names[0], &v.0, true)
                    .override_global(names[1], &v.1, true)
                    .override_global(names[2], &v.2, true)
                    .override_global(names[3], &v.3, true)
                    .override_global(names[4], &v.4, true)
                    .override_global(names[5], &v.5, true);
            }
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| bpf_error("loading the eBPF object", e))?;
        // The loader holds the kernel's BTF, which aya parses whatever it is told (megabytes):
        // let it go, and give the memory back, before the ring buffer is mapped.
        drop(loader);
        release_freed_memory();
        write_unwind_rows(&mut ebpf, &config.unwind_rows)?;
        let fresh_slots = FreshSlots::map(&mut ebpf)?;

        let mut classic = vec![
            (names::PROG_FORK, "sched", "sched_process_fork"),
            (names::PROG_EXIT, "sched", "sched_process_exit"),
            (names::PROG_RENAME, "task", "task_rename"),
        ];
        // The two that run on every context switch and wakeup of the machine: raw when the
        // kernel's layout is known (no record is formatted for them).
        let mut raw = vec![(names::PROG_SYS_EXIT, "sys_exit")];
        if config.task_layout.is_some() {
            raw.extend([
                (names::PROG_SWITCH_RAW, "sched_switch"),
                (names::PROG_WAKEUP_RAW, "sched_wakeup"),
            ]);
        } else {
            classic.extend([
                (names::PROG_SWITCH, "sched", "sched_switch"),
                (names::PROG_WAKEUP, "sched", "sched_wakeup"),
            ]);
        }
        // Every program is verified before any is attached: the verifier takes a while (the
        // table unwinder's programs most), and a thread born and gone between the fork
        // program's attach and the switch program's would be seen born but never switching.
        for (prog, _, _) in &classic {
            let program: &mut TracePoint = program(&mut ebpf, prog)?;
            program
                .load()
                .map_err(|e| bpf_error(&format!("loading {prog}"), e))?;
        }
        for (prog, _) in &raw {
            let program: &mut RawTracePoint = program(&mut ebpf, prog)?;
            program
                .load()
                .map_err(|e| bpf_error(&format!("loading {prog}"), e))?;
        }
        if config.sample_hz > 0 {
            let sampler: &mut PerfEvent = program(&mut ebpf, names::PROG_SAMPLE)?;
            sampler
                .load()
                .map_err(|e| bpf_error("loading the sampler", e))?;
            let io_polls: &mut TracePoint = program(&mut ebpf, names::PROG_IO_POLL)?;
            io_polls
                .load()
                .map_err(|e| bpf_error(&format!("loading {}", names::PROG_IO_POLL), e))?;
        }
        for (prog, category, name) in classic {
            let program: &mut TracePoint = program(&mut ebpf, prog)?;
            program
                .attach(category, name)
                .map_err(|e| bpf_error(&format!("attaching to {category}/{name}"), e))?;
        }
        if config.sample_hz > 0 {
            attach_io_polls(program(&mut ebpf, names::PROG_IO_POLL)?);
        }
        // sys_exit sends the off-CPU episodes that wait for their stack at the thread's next
        // return from a system call (see hud-ebpf).
        for (prog, tracepoint) in raw {
            let program: &mut RawTracePoint = program(&mut ebpf, prog)?;
            program.attach(tracepoint).map_err(|e| {
                bpf_error(&format!("attaching to the raw tracepoint {tracepoint}"), e)
            })?;
        }

        let cpus = aya::util::online_cpus()
            .map_err(|(what, e)| RecordError::Other(format!("reading {what}: {e}")))?;
        if config.sample_hz > 0 {
            let program: &mut PerfEvent = program(&mut ebpf, names::PROG_SAMPLE)?;
            for cpu in &cpus {
                program
                    .attach(
                        PerfEventConfig::Software(SoftwareEvent::CpuClock),
                        PerfEventScope::AllProcessesOneCpu { cpu: *cpu },
                        SamplePolicy::Frequency(u64::from(config.sample_hz)),
                        false,
                    )
                    .map_err(|e| {
                        bpf_error(&format!("starting cpu-clock sampling on CPU {cpu}"), e)
                    })?;
            }
        }

        let polls = match &config.poll_probes {
            Some((exe, offsets)) => Some(attach_poll_probes(
                &mut ebpf,
                exe,
                offsets,
                config.seen_pid,
            )?),
            None => None,
        };

        Ok(Self {
            polls,
            ring: take(&mut ebpf, names::EVENTS)?,
            counters: take(&mut ebpf, names::COUNTERS)?,
            slots: take(&mut ebpf, names::SLOTS)?,
            batches: take(&mut ebpf, names::BATCHES)?,
            control: take(&mut ebpf, names::CONTROL)?,
            fresh_slots,
            leaf_windows: config.stack_copy_bytes > 0
                && config.stack_copy_bytes <= hud_format::wire::LEAF_WINDOW
                && !config.copy_user_samples,
            ebpf,
        })
    }

    /// `--poll-probes`: each probe's histogram so far (sparse), summed over the CPUs.
    pub fn poll_histograms(&self) -> Vec<hud_format::types::PollHistogram> {
        let Some(polls) = &self.polls else {
            return Vec::new();
        };
        (0..polls.probes)
            .map(|probe| {
                let mut h = hud_format::types::PollHistogram {
                    probe,
                    ..Default::default()
                };
                if let Ok(per_cpu) = polls.totals.get(&probe, 0) {
                    h.sum_ns = per_cpu.iter().map(|t| t[0]).sum();
                    h.max_ns = per_cpu.iter().map(|t| t[1]).max().unwrap_or(0);
                }
                for bucket in 0..wire::POLL_BUCKETS {
                    let index = probe * wire::POLL_BUCKETS + bucket;
                    let count: u64 = polls
                        .histograms
                        .get(&index, 0)
                        .map(|per_cpu| per_cpu.iter().sum())
                        .unwrap_or(0);
                    if count > 0 {
                        h.buckets.push(bucket as u16);
                        h.counts.push(count);
                    }
                }
                h
            })
            .collect()
    }

    /// Detaches the poll probes (over budget) on a thread of its own: each uprobe's removal
    /// waits for the kernel (1.3 s for four on mini-redis), which the drain loop must not. The
    /// histograms stay readable.
    pub fn stop_poll_probes(&mut self) -> Option<Detaching> {
        let polls = self.polls.as_mut()?;
        let mut links = Vec::new();
        for (name, id) in polls.links.drain(..) {
            if let Some(program) = self.ebpf.program_mut(name) {
                if let Ok(uprobe) = <&mut UProbe>::try_from(program) {
                    if let Ok(link) = uprobe.take_link(id) {
                        links.push(link);
                    }
                }
            }
        }
        if links.is_empty() {
            return None;
        }
        let from_ns = crate::procfs::monotonic_ns();
        let done = std::thread::Builder::new()
            .name("hud-detach".into())
            .spawn(move || {
                drop(links);
                crate::procfs::monotonic_ns()
            })
            .ok()?;
        Some(Detaching { from_ns, done })
    }

    /// Stops the programs adding to the switch batches, and returns what the batches hold (the
    /// ring buffer holds everything else). After this, only the ring buffer is read.
    pub fn stop(&mut self) -> Result<Vec<SwitchBatch>> {
        self.control
            .set(0, 1, 0)
            .map_err(|e| bpf_error("stopping the programs", e))?;
        // A program that read the flag just before it was set finishes within microseconds.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let per_cpu = self
            .batches
            .get(&0, 0)
            .map_err(|e| bpf_error("reading the switch batches", e))?;
        Ok(per_cpu
            .iter()
            .filter_map(|bytes| wire::read_record::<SwitchBatch>(bytes))
            .filter(|b| b.count > 0)
            .collect())
    }

    /// Gives slots to threads that existed before the fork tracepoint was attached (threads
    /// created since have one already).
    pub fn add_threads(&mut self, tids: impl IntoIterator<Item = u32>) -> Result<()> {
        for tid in tids {
            if self.slots.get(&tid, 0).is_ok_and(|slot| slot != 0) {
                continue;
            }
            let slot = self.fresh_slots.take().ok_or_else(|| {
                RecordError::Bpf(format!(
                    "the target has more than {} threads, the most hud records",
                    MAX_THREADS - 1
                ))
            })?;
            self.slots
                .set(tid, slot, 0)
                .map_err(|e| bpf_error("adding a thread to the thread slots", e))?;
        }
        Ok(())
    }

    /// Sums of the per-CPU counters, in `Counter::ALL` order.
    pub fn counters(&self) -> Vec<(Counter, u64)> {
        Counter::ALL
            .iter()
            .map(|c| {
                let total = self
                    .counters
                    .get(&(*c as u32), 0)
                    .map(|values| values.iter().sum())
                    .unwrap_or(0);
                (*c, total)
            })
            .collect()
    }
}

/// Loads the poll programs and attaches them at each poll function of `exe` (by file offset),
/// for the target process only; the cookie is the probe's index.
fn attach_poll_probes(
    ebpf: &mut Ebpf,
    exe: &std::path::Path,
    offsets: &[u64],
    tgid: u32,
) -> Result<PollMaps> {
    let pid = std::num::NonZeroU32::new(tgid)
        .ok_or_else(|| RecordError::Other("no target pid for the poll probes".into()))?;
    let mut links = Vec::new();
    for name in [names::PROG_POLL_ENTER, names::PROG_POLL_RETURN] {
        let program: &mut UProbe = program(ebpf, name)?;
        program
            .load()
            .map_err(|e| bpf_error(&format!("loading {name}"), e))?;
        for (probe, offset) in offsets.iter().enumerate() {
            let point = UProbeAttachPoint {
                location: UProbeAttachLocation::AbsoluteOffset(*offset),
                cookie: Some(probe as u64),
            };
            let link = program
                .attach(point, exe, UProbeScope::OneProcess(pid))
                .map_err(|e| {
                    bpf_error(
                        &format!(
                            "attaching a uprobe at {offset:#x} of {} (--poll-probes)",
                            exe.display()
                        ),
                        e,
                    )
                })?;
            links.push((name, link));
        }
    }
    Ok(PollMaps {
        histograms: take(ebpf, names::POLL_HISTOGRAMS)?,
        totals: take(ebpf, names::POLL_TOTALS)?,
        probes: offsets.len() as u32,
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loading failed")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn permission_is_told_by_errno_through_the_causes() {
        let eperm = Wrapper(std::io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(
            bpf_error("load", eperm),
            RecordError::NotPermitted(_)
        ));
        let einval = Wrapper(std::io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(bpf_error("load", einval), RecordError::Bpf(_)));
    }

    #[test]
    fn a_verifier_rejection_is_not_a_permission_problem() {
        // The kernel answers EACCES when the verifier rejects a program: its log tells them apart.
        let rejected = aya::programs::ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EACCES),
            verifier_log: aya_obj::VerifierLog::new("113: R9 !read_ok".into()),
        };
        assert!(matches!(bpf_error("load", rejected), RecordError::Bpf(_)));
        let denied = aya::programs::ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EPERM),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        };
        assert!(matches!(
            bpf_error("load", denied),
            RecordError::NotPermitted(_)
        ));
    }
}
