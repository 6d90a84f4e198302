//! The end of a recording: letting the probes go without waiting for the kernel, the cockpit,
//! and the capture's size.

use crate::output::Destination;
use crate::probes::Probes;

/// Detaches the probes without making the user wait for the kernel. Releasing a link waits for
/// an RCU-tasks grace period (`synchronize_rcu_tasks_trace`), seconds under a context-switch
/// storm, once per link: a `--duration 3` recording took 6.6 s. The programs are stopped already
/// (the control flag) and the capture is closed, so the release is left to a forked child that
/// holds copies of the descriptors: the recorder closes its own (not the last reference, so
/// nothing waits), lets the child go, and exits; the child's exit releases them.
pub(super) fn detach(probes: Probes) {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        drop(probes);
        return;
    }
    // SAFETY: the child only calls async-signal-safe functions (close, read, _exit).
    match unsafe { libc::fork() } {
        0 => unsafe {
            // The child: no standard streams (a reader of a pipe must see its end now), then
            // wait until the parent has closed its copies, so that this exit drops the last.
            libc::close(pipe[1]);
            for fd in 0..3 {
                libc::close(fd);
            }
            let mut byte = 0u8;
            while libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1) < 0 {}
            libc::_exit(0);
        },
        -1 => {
            // SAFETY: our two pipe descriptors.
            unsafe {
                libc::close(pipe[0]);
                libc::close(pipe[1]);
            }
            drop(probes);
        }
        _ => {
            drop(probes);
            // SAFETY: our pipe descriptors; closing the write end lets the child exit.
            unsafe {
                libc::close(pipe[0]);
                libc::close(pipe[1]);
            }
        }
    }
}

/// Waits until the user closes the cockpit, if one runs; says how it failed, if it did.
pub(super) fn wait_for(viewer: Option<crate::viewer::Viewer>) -> Option<String> {
    let code = viewer?.wait()?;
    (!code.success()).then(|| format!("the cockpit ended with {code}"))
}

/// Size of the finished capture file (0 for standard output).
pub(super) fn file_size(dest: &Destination) -> u64 {
    match dest {
        Destination::File(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        Destination::Stdout => 0,
        Destination::Ring(dir) => std::fs::read_dir(dir.join(hud_format::ring::RING_DIR))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
    }
}
