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
//!
//! A file per program, beside what they share: `switch.rs`, `sys_exit.rs`, `wakeup.rs`,
//! `lifecycle.rs` (fork, exit, rename), `sample.rs`; `stack_copy.rs` (copies and their budget)
//! and `shared.rs` (settings, maps, helpers); `task_id.rs` (the Tokio task a thread polls, read
//! from its TLS with samples and at returns from system calls); `polls.rs` (`--poll-probes`: a
//! uprobe and a uretprobe per probed task poll function, durations counted in histograms);
//! `unwind.rs` (whole user stacks from hud-record's `.eh_frame` table, where it has one).

mod lifecycle;
mod polls;
mod resolve;
mod sample;
mod shared;
mod stack_copy;
mod switch;
mod sys_exit;
mod task_id;
mod unwind;
mod wakeup;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
