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
    kernel_pid: u32,
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
            // The kernel's, like every tid in the capture (the provenance frame has the others).
            pid: kernel_pid,
            exe_path: target.exe.clone(),
            cmdline: target.cmdline.clone(),
            build_id: exe_build_id,
        },
        options: RecorderOptions {
            kernel_stacks: args.kernel_stacks,
            embed_binaries: args.embed_binaries == crate::cli::Embed::All,
            command_line: std::env::args().collect(),
        },
    }
}

/// Embeds mapped objects: with `all`, the target's executable and every other object that has
/// DWARF line info; with `auto`, every object the analyzer would not find on this machine (not at
/// the same path with the same build-id in the recorder's root: a container's files), up to
/// `--embed-limit` bytes.
pub(super) fn embed_binaries(
    writer: &mut Writer,
    args: &Args,
    target: &ProcessInfo,
    maps: &MappingTracker,
) -> Result<()> {
    use crate::cli::Embed;
    let mut embedded = 0u64;
    let mut left_out = Vec::new();
    for (path, build_id) in maps.executable_files() {
        let on_disk = procfs::file_in_target(target.pid, &path);
        let is_exe = path == target.exe;
        let wanted = match args.embed_binaries {
            Embed::None => false,
            Embed::All => is_exe || procfs::has_debug_info(Path::new(&on_disk)),
            Embed::Auto => !visible_here(&path, &on_disk, &build_id),
        };
        if !wanted {
            continue;
        }
        let size = std::fs::metadata(&on_disk).map_or(0, |m| m.len());
        if args.embed_binaries == Embed::Auto && embedded + size > args.embed_limit {
            left_out.push(format!(
                "{path} ({:.1} MiB)",
                size as f64 / (1 << 20) as f64
            ));
            continue;
        }
        match std::fs::read(&on_disk) {
            Ok(bytes) => {
                embedded += bytes.len() as u64;
                writer
                    .embed_object(&path, &build_id, &bytes)
                    .map_err(start_error)?
            }
            Err(e) => eprintln!("hud-record: warning: cannot embed {path}: {e}"),
        }
    }
    if embedded > 0 && args.embed_binaries == Embed::Auto && !args.quiet {
        eprintln!(
            "hud-record: embedded {:.1} MiB of objects this machine does not have at their \
             paths (the target's own files: a container?)",
            embedded as f64 / (1 << 20) as f64
        );
    }
    if !left_out.is_empty() {
        eprintln!(
            "hud-record: warning: left out of the capture (over --embed-limit {} MiB): {}; the \
             analyzer needs them found another way (--binary, a debug directory)",
            args.embed_limit >> 20,
            left_out.join(", ")
        );
    }
    Ok(())
}

/// Whether the object mapped at `path` (reached through the target's root at `in_target`) is
/// the file at `path` here, in the recorder's root, where an analyzer on this machine finds it:
/// the same file, or one of the same build.
fn visible_here(path: &str, in_target: &str, build_id: &[u8]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let here = Path::new(path.trim_end_matches(" (deleted)"));
    let same_file = match (std::fs::metadata(here), std::fs::metadata(in_target)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    same_file
        || (!build_id.is_empty() && procfs::read_build_id(here).is_some_and(|id| id == build_id))
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
