//! `--poll-probes`: exact poll durations. A uprobe at the entry of each probed
//! `tokio::runtime::task::raw::poll::<T, S>` notes when the thread began polling; its uretprobe
//! (which fires when the whole poll returns: the function tail-jumps into `Harness::poll`, which
//! returns through the replaced return address) counts the duration in the probe's histogram,
//! per CPU, and sends polls past `POLL_EVENT_NS` as records. The attach cookie says which probe
//! fired. Nothing else runs per poll; hud-record reads the histograms and stops the probes when
//! they would cost the target more than its budget.

use aya_ebpf::{
    helpers::{bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{map, uprobe, uretprobe},
    maps::{Array, PerCpuArray},
    programs::{ProbeContext, RetProbeContext},
    EbpfContext, Global,
};
use hud_format::wire::{
    kind, poll_bucket, Counter, OpenPolls, PollRecord, PollTotals, RecordHeader, POLL_BUCKETS,
    POLL_NESTING,
};

use super::shared::{count, cpu, now, stopped, EVENTS, NO_WAKEUP, SLOTS, TARGET_TGID};

/// The shortest poll sent as a record (the histograms count every poll).
#[unsafe(no_mangle)]
static POLL_EVENT_NS: Global<u64> = Global::new(1_000_000);

/// 1 when the polled task's id is read at entry, through its header: `header + VTABLE_AT` holds
/// the vtable pointer, `vtable + ID_OFFSET_AT` the id's offset from the header.
#[unsafe(no_mangle)]
static POLL_TASK_IDS: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static POLL_VTABLE_AT: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static POLL_ID_OFFSET_AT: Global<u64> = Global::new(0);

/// The id of the task whose header is at `header` (0: not read). Three dependent user reads;
/// a bad pointer reads nothing.
#[inline(always)]
fn task_of(header: u64) -> u64 {
    if POLL_TASK_IDS.load() == 0 || header == 0 {
        return 0;
    }
    // SAFETY: checked user-memory reads of plain words.
    unsafe {
        let Ok(vtable) = bpf_probe_read_user((header + POLL_VTABLE_AT.load()) as *const u64) else {
            return 0;
        };
        let Ok(id_offset) = bpf_probe_read_user((vtable + POLL_ID_OFFSET_AT.load()) as *const u64)
        else {
            return 0;
        };
        // A task cell is small: an offset past a page is no offset.
        if id_offset >= 4096 {
            return 0;
        }
        bpf_probe_read_user((header + id_offset) as *const u64).unwrap_or(0)
    }
}

/// Per CPU, `probe × POLL_BUCKETS + bucket`: polls counted. Sized by hud-record.
#[map]
static POLL_HISTOGRAMS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU, per probe: the sum and the longest of its polls.
#[map]
static POLL_TOTALS: PerCpuArray<PollTotals> = PerCpuArray::with_max_entries(1, 0);

/// Per thread slot: the polls it is in.
#[map]
static OPEN_POLLS: Array<OpenPolls> = Array::with_max_entries(hud_format::wire::MAX_THREADS, 0);

/// The return addresses of the probed polls thread `tid` is in, innermost first, and their
/// stack slots (0: none).
#[inline(always)]
pub(super) fn open_poll_returns(tid: u32) -> ([u64; 2], [u64; 2]) {
    let mut out = ([0u64; 2], [0u64; 2]);
    let Some(slot) = SLOTS.get(tid) else {
        return out;
    };
    let Some(open) = OPEN_POLLS.get(u32::from(*slot)) else {
        return out;
    };
    if *slot == 0 || open.tid != tid {
        return out;
    }
    // Constant indexes: a computed one loses its bound on the way to the verifier.
    let at = |values: &[u64; POLL_NESTING], depth: u32| match depth {
        1 => values[0],
        2 => values[1],
        3 => values[2],
        4 => values[3],
        _ => 0,
    };
    let (d, outer) = (open.depth, open.depth.wrapping_sub(1));
    out.0 = [at(&open.ret, d), at(&open.ret, outer)];
    out.1 = [at(&open.ret_slot, d), at(&open.ret_slot, outer)];
    out
}

/// The open polls of the current thread, if it is a target thread with a slot.
#[inline(always)]
fn open_polls(tid: u32) -> Option<*mut OpenPolls> {
    let slot = *SLOTS.get(tid)?;
    if slot == 0 {
        return None;
    }
    let open = OPEN_POLLS.get_ptr_mut(u32::from(slot))?;
    // SAFETY: a map value of this thread's slot; only this thread's probes touch it.
    unsafe {
        if (*open).tid != tid {
            // The slot's previous thread exited inside a poll.
            (*open).tid = tid;
            (*open).depth = 0;
        }
    }
    Some(open)
}

#[uprobe]
pub fn hud_poll_enter(ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() {
        return 0;
    }
    let Some(open) = open_polls(pid_tgid as u32) else {
        count(Counter::PollUntimed);
        return 0;
    };
    // SAFETY: the attach cookie is a plain helper; `open` is this thread's map value.
    unsafe {
        let probe = bpf_get_attach_cookie(ctx.as_ptr()) as u32;
        let depth = (*open).depth as usize;
        if depth < POLL_NESTING {
            (*open).start_ns[depth] = now();
            (*open).probe[depth] = probe;
            // At entry the return address is at the stack pointer, still the caller's: the
            // uretprobe replaces it after this program runs.
            let sp = (*ctx.regs).rsp;
            (*open).ret[depth] = bpf_probe_read_user(sp as *const u64).unwrap_or(0);
            (*open).ret_slot[depth] = sp;
            // The poll function's one argument: the task's header (`NonNull<Header>`).
            (*open).task[depth] = task_of((*ctx.regs).rdi);
        }
        (*open).depth += 1;
    }
    0
}

#[uretprobe]
pub fn hud_poll_return(_ctx: RetProbeContext) -> u32 {
    let end = now();
    let pid_tgid = bpf_get_current_pid_tgid();
    // Once hud-record stops, nothing more is counted: its last read of the histograms then holds
    // exactly the polls whose records it drained.
    if (pid_tgid >> 32) as u32 != TARGET_TGID.load() || stopped() {
        return 0;
    }
    let tid = pid_tgid as u32;
    let Some(open) = open_polls(tid) else {
        count(Counter::PollUntimed);
        return 0;
    };
    // SAFETY: this thread's map value.
    let (start, probe, task_id) = unsafe {
        if (*open).depth == 0 {
            // Entered before the probes were attached.
            count(Counter::PollUntimed);
            return 0;
        }
        (*open).depth -= 1;
        let depth = (*open).depth as usize;
        if depth >= POLL_NESTING {
            count(Counter::PollUntimed);
            return 0;
        }
        (
            (*open).start_ns[depth],
            (*open).probe[depth],
            (*open).task[depth],
        )
    };
    let duration = end.saturating_sub(start);
    if let Some(n) = POLL_HISTOGRAMS.get_ptr_mut(probe * POLL_BUCKETS + poll_bucket(duration)) {
        // SAFETY: per-CPU slot; a uretprobe does not nest on one CPU.
        unsafe { *n += 1 };
    }
    if let Some(t) = POLL_TOTALS.get_ptr_mut(probe) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*t).sum_ns += duration;
            if duration > (*t).max_ns {
                (*t).max_ns = duration;
            }
        }
    }
    if duration >= POLL_EVENT_NS.load() {
        let record = PollRecord {
            header: RecordHeader {
                kind: kind::POLL,
                flags: 0,
                cpu: cpu(),
                tid,
                ts_ns: end,
            },
            start_ns: start,
            probe,
            _pad: 0,
            task_id,
        };
        if EVENTS.output::<PollRecord>(&record, NO_WAKEUP).is_err() {
            count(Counter::LostPoll);
        }
    }
    0
}
