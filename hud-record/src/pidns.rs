//! PID namespaces and containers: the ids the kernel knows the target by, and where it runs.
//!
//! `--pid N` is N as the recorder sees it: in a container (a sidecar, `kubectl debug
//! --target`, `docker run --pid=container:X`) that is the target's id in the container's PID
//! namespace, while the programs compare the ids the kernel hands them, the initial namespace's.
//! Nothing in a namespaced `/proc` says those, so a recorder in a namespace asks the kernel once
//! at start (`probes::Resolver`); from the initial namespace the ids are the same and nothing is
//! asked. The capture's ids are the kernel's, all of them; its provenance frame keeps the ids the
//! recorder and the target's own namespace use, and the container the target's cgroup names.

use std::fs;
use std::os::unix::fs::MetadataExt;

use hud_format::types::Provenance;

use crate::error::{RecordError, Result};
use crate::probes::Resolver;

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO`, fixed in the kernel's ABI).
const INITIAL_PID_NAMESPACE_INODE: u64 = 0xEFFF_FFFC;

/// A PID namespace: the nsfs device, in the kernel's encoding (what
/// `bpf_get_ns_current_pid_tgid` compares), and the namespace's inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidNamespace {
    pub dev: u64,
    pub ino: u64,
}

impl PidNamespace {
    /// The PID namespace of process `pid` (`self` for the recorder's own).
    pub fn of(pid: &str) -> std::io::Result<Self> {
        let meta = fs::metadata(format!("/proc/{pid}/ns/pid"))?;
        let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
        // The kernel's dev_t: 12 bits of major above 20 bits of minor (user space packs them
        // differently, so st_dev cannot be passed as it is).
        Ok(PidNamespace {
            dev: (u64::from(major) << 20) | u64::from(minor),
            ino: meta.ino(),
        })
    }

    /// Whether this is the kernel's own namespace, whose ids the programs see.
    pub fn is_initial(&self) -> bool {
        self.ino == INITIAL_PID_NAMESPACE_INODE
    }
}

/// The ids of a process or thread in each PID namespace from the reader's down to its own
/// (`NSpid:` of `/proc/ID/status`; one id when it runs in the reader's namespace).
pub fn namespace_ids(path: &str) -> Vec<u32> {
    let Ok(status) = fs::read_to_string(format!("{path}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|ids| {
            ids.split_whitespace()
                .filter_map(|id| id.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// How the recorder's ids of the target map to the kernel's.
pub struct KernelIds {
    /// The target's pid (tgid) in the kernel's namespace.
    pub pid: u32,
    /// Asks the kernel; `None` in the initial namespace, where the ids are the kernel's.
    resolver: Option<Resolver>,
    /// Whether the recorder runs in a PID namespace of its own.
    pub namespaced: bool,
}

impl KernelIds {
    /// The kernel's id of the target the recorder names `pid`.
    pub fn resolve(pid: u32, offsets: &[(&'static str, u32)]) -> Result<Self> {
        let own = PidNamespace::of("self").map_err(|e| {
            RecordError::Other(format!("cannot read the recorder's PID namespace: {e}"))
        })?;
        if own.is_initial() {
            return Ok(KernelIds {
                pid,
                resolver: None,
                namespaced: false,
            });
        }
        let mut resolver = Resolver::load((own.dev, own.ino), offsets)?;
        let kernel_pid = resolver
            .kernel_id(pid)?
            .ok_or_else(|| RecordError::NoSuchProcess(format!("process {pid} is gone")))?;
        Ok(KernelIds {
            pid: kernel_pid,
            resolver: Some(resolver),
            namespaced: true,
        })
    }

    /// The kernel's id of the target's thread the recorder names `tid` (`None`: it exited).
    pub fn thread(&mut self, tid: u32) -> Result<Option<u32>> {
        match &mut self.resolver {
            None => Ok(Some(tid)),
            Some(resolver) => resolver.kernel_id(tid),
        }
    }

    /// Done asking: detaches the probe (it ran for the threads listed at start only; later
    /// threads arrive with the kernel's ids).
    pub fn finish(&mut self) {
        self.resolver = None;
    }
}

/// What the capture says of where the target ran: its ids as the recorder and its own
/// namespace know them, and its container.
pub fn provenance(seen_pid: u32, ids: &KernelIds, threads: &[(u32, u32)]) -> Provenance {
    let own = namespace_ids(&format!("/proc/{seen_pid}"));
    let cgroup = cgroup_of(seen_pid).unwrap_or_default();
    let (runtime, id) = container_of(&cgroup).unwrap_or_default();
    Provenance {
        pid_seen: seen_pid,
        pid_in_namespace: own.last().copied().unwrap_or(seen_pid),
        recorder_namespaced: ids.namespaced,
        thread_kernel_ids: threads.iter().map(|t| t.0).collect(),
        thread_namespace_ids: threads
            .iter()
            .map(|&(_, seen)| {
                namespace_ids(&format!("/proc/{seen_pid}/task/{seen}"))
                    .last()
                    .copied()
                    .unwrap_or(seen)
            })
            .collect(),
        cgroup,
        container_runtime: runtime,
        container_id: id,
        ..Provenance::default()
    }
}

/// The target's cgroup: the unified (v2) hierarchy's path, else the first v1 one that names a
/// container, else the first.
fn cgroup_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .collect();
    let unified = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| *p != "/");
    unified
        .or_else(|| paths.iter().copied().find(|p| container_of(p).is_some()))
        .or_else(|| paths.first().copied())
        .filter(|p| *p != "/")
        .map(str::to_owned)
}

/// The container runtime and id a cgroup path names: the 64-hex-digit id in its last components
/// (docker-ID.scope, /docker/ID, cri-containerd-ID.scope, crio-ID.scope, libpod-ID.scope,
/// /kubepods/…/ID), and the runtime from the prefix.
pub fn container_of(cgroup: &str) -> Option<(String, String)> {
    for part in cgroup.rsplit('/') {
        let part = part.trim_end_matches(".scope");
        let (prefix, id) = match part.rsplit_once('-') {
            Some((prefix, id)) => (prefix, id),
            None => ("", part),
        };
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let runtime = match prefix {
                "docker" => "docker",
                "cri-containerd" => "containerd",
                "crio" => "cri-o",
                "libpod" => "podman",
                "" if cgroup.contains("/docker/") => "docker",
                "" if cgroup.contains("kubepods") => "kubernetes",
                "" => "container",
                other => other,
            };
            return Some((runtime.to_owned(), id.to_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b5d7e4f608192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

    #[test]
    fn container_ids_are_read_from_the_runtimes_cgroup_names() {
        let cases = [
            (format!("/system.slice/docker-{ID}.scope"), "docker"),
            (format!("/docker/{ID}"), "docker"),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{ID}.scope"),
                "containerd",
            ),
            (format!("/kubepods/besteffort/pod1234/{ID}"), "kubernetes"),
            (format!("/machine.slice/libpod-{ID}.scope"), "podman"),
            (format!("/kubepods.slice/crio-{ID}.scope"), "cri-o"),
        ];
        for (path, runtime) in cases {
            assert_eq!(
                container_of(&path),
                Some((runtime.to_owned(), ID.to_owned())),
                "{path}"
            );
        }
        assert_eq!(
            container_of("/user.slice/user-0.slice/session-3.scope"),
            None
        );
        assert_eq!(container_of("/"), None);
    }

    #[test]
    fn the_recorders_namespace_is_read() {
        let own = PidNamespace::of("self").unwrap();
        assert!(own.ino > 0);
        // This process in its own namespace: one id, its own.
        let ids = namespace_ids("/proc/self");
        assert_eq!(ids.last(), Some(&std::process::id()));
    }
}
