//! `hud_resolve_pid` (tracepoint sched_process_wait): the kernel's id of a thread the recorder
//! names by its id in its own PID namespace.
//!
//! The programs compare the ids the kernel hands them (the initial namespace's) with the
//! target's. A recorder in a container (a sidecar, `kubectl debug --target`) knows only the ids
//! of its own namespace, and nothing in `/proc` says the kernel's. So it attaches this program
//! for a moment and calls `waitid(P_PID, id, …)` for the target and each of its threads: the
//! kernel looks the id up in the caller's namespace and announces the `struct pid` it found
//! (`pid_nr`: its id in the initial namespace) before it finds that the target is no child of
//! the recorder's (ECHILD; nothing else happens to the target). The program keeps the answer to
//! the recorder's own calls only. Nothing here runs while recording.

use aya_ebpf::{
    bindings::bpf_pidns_info,
    helpers::generated::bpf_get_ns_current_pid_tgid,
    macros::{map, tracepoint},
    maps::Array,
    programs::TracePointContext,
    Global,
};

/// The recorder's PID namespace: the nsfs device (the kernel's encoding) and inode.
#[unsafe(no_mangle)]
static RESOLVER_NS_DEV: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
static RESOLVER_NS_INO: Global<u64> = Global::new(0);
/// The recorder thread that asks, by its id in that namespace.
#[unsafe(no_mangle)]
static RESOLVER_TID: Global<u32> = Global::new(0);
/// Offset of `pid` in the sched_process_wait record (from its format file).
#[unsafe(no_mangle)]
static OFF_WAIT_PID: Global<u32> = Global::new(12);

/// One entry: the last answer, the kernel's id (0: the id named nothing).
#[map]
static RESOLVED: Array<u32> = Array::with_max_entries(1, 0);

#[tracepoint]
pub fn hud_resolve_pid(ctx: TracePointContext) -> u32 {
    let mut me = bpf_pidns_info { pid: 0, tgid: 0 };
    // SAFETY: a helper writing into a local of the size given.
    let status = unsafe {
        bpf_get_ns_current_pid_tgid(
            RESOLVER_NS_DEV.load(),
            RESOLVER_NS_INO.load(),
            &mut me,
            core::mem::size_of::<bpf_pidns_info>() as u32,
        )
    };
    // Another caller, or one outside the recorder's namespace.
    if status != 0 || me.pid != RESOLVER_TID.load() {
        return 0;
    }
    // SAFETY: a field of the tracepoint's record, at the offset its format file gives.
    let answer = unsafe { ctx.read_at::<i32>(OFF_WAIT_PID.load() as usize) }.unwrap_or(0);
    if let Some(slot) = RESOLVED.get_ptr_mut(0) {
        // SAFETY: the map's one value; only the recorder's thread writes it.
        unsafe { *slot = answer.max(0) as u32 };
    }
    0
}
