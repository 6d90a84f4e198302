//! What a recording starts from: the capture's header, the objects embedded in it, and a pidfd
//! that says when the target exits.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use hud_format::types::{Header, RecorderOptions, Target};

use super::{nanos, start_error, Writer};
use crate::cli::Args;
use crate::error::{RecordError, Result};
use crate::procfs::{self, MappingTracker};
use crate::target::ProcessInfo;

pub(super) fn build_header(
    args: &Args,
    target: &ProcessInfo,
    cpus: &[u32],
    start_ns: u64,
    maps: &[hud_format::types::Mapping],
) -> Header {
    let host = procfs::host_info(cpus.len() as u32);
    let exe_build_id = maps
        .iter()
        .find(|m| m.path == target.exe)
        .map(|m| m.build_id.clone())
        .unwrap_or_default();
    Header {
        hud_version: env!("CARGO_PKG_VERSION").into(),
        host_name: host.host_name,
        kernel_release: host.kernel_release,
        arch: host.arch,
        page_size: host.page_size,
        cpu_count: host.cpu_count,
        clock: procfs::clock_offsets(),
        boot_id: host.boot_id,
        start_ns,
        sample_hz: args.frequency,
        offcpu_threshold_ns: nanos(args.offcpu_threshold),
        target: Target {
            pid: target.pid,
            exe_path: target.exe.clone(),
            cmdline: target.cmdline.clone(),
            build_id: exe_build_id,
        },
        options: RecorderOptions {
            kernel_stacks: args.kernel_stacks,
            embed_binaries: args.embed_binaries,
            command_line: std::env::args().collect(),
        },
    }
}

/// Embeds the target's executable and every other mapped object that has DWARF line info.
pub(super) fn embed_binaries(
    writer: &mut Writer,
    target: &ProcessInfo,
    maps: &MappingTracker,
) -> Result<()> {
    for (path, build_id) in maps.executable_files() {
        let on_disk = procfs::file_in_target(target.pid, &path);
        let is_exe = path == target.exe;
        if !is_exe && !procfs::has_debug_info(Path::new(&on_disk)) {
            continue;
        }
        match std::fs::read(&on_disk) {
            Ok(bytes) => writer
                .embed_object(&path, &build_id, &bytes)
                .map_err(start_error)?,
            Err(e) => eprintln!("hud-record: warning: cannot embed {path}: {e}"),
        }
    }
    Ok(())
}

pub(super) fn open_pidfd(pid: u32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(RecordError::NoSuchProcess(format!(
            "process {pid} is gone ({e})"
        )));
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits up to `timeout`; true when the pidfd says the process exited.
pub(super) fn wait_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
    n > 0 && poll.revents & libc::POLLIN != 0
}
