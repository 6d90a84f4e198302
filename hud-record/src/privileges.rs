//! Checks up front that we may load eBPF, so the user gets one clear line instead of a verifier log.

use crate::error::{RecordError, Result};

const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_SYS_ADMIN: u32 = 21;

/// Effective capabilities of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

pub fn check() -> Result<()> {
    let caps = effective_caps();
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    Err(RecordError::NotPermitted(format!(
        "running as uid {euid} without CAP_BPF and CAP_PERFMON"
    )))
}

/// Capabilities kept once the probes are attached: the drain loop rescans the target's
/// `/proc/PID/maps` and reads the files it maps for their build-ids (through
/// `/proc/PID/root`), which for another user's process needs CAP_SYS_PTRACE (ptrace read access)
/// and CAP_DAC_READ_SEARCH (files and directories root's uid alone may not read). Everything
/// else — CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_DAC_OVERRIDE, CAP_SETUID … — is given up:
/// the ring buffer, maps and links are open descriptors, which need no capability to use.
pub const KEPT_AFTER_ATTACH: [u32; 2] = [CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE];
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Gives up every capability but `keep`, from the effective and permitted sets (so they cannot
/// come back), and clears the inheritable and ambient sets (no child inherits any).
pub fn keep_only(keep: &[u32]) -> Result<()> {
    let mask: u64 = keep.iter().fold(0, |m, &c| m | (1u64 << c));
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget fills a v3 header's two data structs.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(RecordError::Other(format!(
            "reading this process's capabilities: {}",
            std::io::Error::last_os_error()
        )));
    }
    for (half, d) in data.iter_mut().enumerate() {
        let keep = (mask >> (32 * half)) as u32;
        d.effective &= keep;
        d.permitted &= keep;
        d.inheritable = 0;
    }
    // SAFETY: capset with the v3 header and data read above, narrowed.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(RecordError::Other(format!(
            "giving up capabilities: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: prctl with constant arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    Ok(())
}
