//! Loading and attaching the eBPF programs, and reading their maps.

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{PerfEvent, TracePoint};
use aya::{Ebpf, EbpfLoader};
use hud_format::wire::{globals, names, Counter};

use crate::error::{RecordError, Result};

/// The compiled eBPF object, built by build.rs from hud-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hud-ebpf"));

/// What to load.
pub struct ProbeConfig {
    pub tgid: u32,
    pub offcpu_threshold_ns: u64,
    pub kernel_stacks: bool,
    pub sample_hz: u32,
    pub ring_bytes: u32,
    pub offsets: Vec<(&'static str, u32)>,
}

/// Loaded and attached programs. Dropping it detaches everything.
pub struct Probes {
    ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
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

/// Whether an OS error in `e`'s chain of causes is EPERM or EACCES.
fn denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                return true;
            }
        }
        cause = err.source();
    }
    false
}

impl Probes {
    pub fn load(config: &ProbeConfig) -> Result<Self> {
        let kernel_stacks = u32::from(config.kernel_stacks);
        let mut loader = EbpfLoader::new();
        // The programs use no CO-RE relocations: skip parsing the kernel's BTF (megabytes of RSS).
        loader
            .btf(None)
            .override_global(globals::TARGET_TGID, &config.tgid, true)
            .override_global(
                globals::OFFCPU_THRESHOLD_NS,
                &config.offcpu_threshold_ns,
                true,
            )
            .override_global(globals::KERNEL_STACKS, &kernel_stacks, true)
            .map_max_entries(names::EVENTS, config.ring_bytes);
        for (name, offset) in &config.offsets {
            loader.override_global(name, offset, true);
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| bpf_error("loading the eBPF object", e))?;

        for (prog, category, name) in [
            (names::PROG_SWITCH, "sched", "sched_switch"),
            (names::PROG_FORK, "sched", "sched_process_fork"),
            (names::PROG_EXIT, "sched", "sched_process_exit"),
            (names::PROG_RENAME, "task", "task_rename"),
            (names::PROG_WAKEUP, "sched", "sched_wakeup"),
        ] {
            let program: &mut TracePoint = ebpf
                .program_mut(prog)
                .ok_or_else(|| RecordError::Bpf(format!("program {prog} missing from the object")))?
                .try_into()
                .map_err(|e| bpf_error(prog, e))?;
            program
                .load()
                .map_err(|e| bpf_error(&format!("loading {prog}"), e))?;
            program
                .attach(category, name)
                .map_err(|e| bpf_error(&format!("attaching to {category}/{name}"), e))?;
        }

        let cpus = aya::util::online_cpus()
            .map_err(|(what, e)| RecordError::Other(format!("reading {what}: {e}")))?;
        if config.sample_hz > 0 {
            let program: &mut PerfEvent = ebpf
                .program_mut(names::PROG_SAMPLE)
                .ok_or_else(|| RecordError::Bpf("sampling program missing from the object".into()))?
                .try_into()
                .map_err(|e| bpf_error(names::PROG_SAMPLE, e))?;
            program
                .load()
                .map_err(|e| bpf_error("loading the sampler", e))?;
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

        let ring = RingBuf::try_from(
            ebpf.take_map(names::EVENTS)
                .ok_or_else(|| RecordError::Bpf("ring buffer map missing".into()))?,
        )
        .map_err(|e| bpf_error("opening the ring buffer", e))?;
        let counters = PerCpuArray::try_from(
            ebpf.take_map(names::COUNTERS)
                .ok_or_else(|| RecordError::Bpf("counter map missing".into()))?,
        )
        .map_err(|e| bpf_error("opening the counters", e))?;
        Ok(Self {
            ebpf,
            ring,
            counters,
        })
    }

    /// Adds threads that existed before the fork tracepoint was attached.
    pub fn add_threads(&mut self, tids: impl IntoIterator<Item = u32>) -> Result<()> {
        let mut map: BpfHashMap<_, u32, u32> = BpfHashMap::try_from(
            self.ebpf
                .map_mut(names::TARGET_TIDS)
                .ok_or_else(|| RecordError::Bpf("thread map missing".into()))?,
        )
        .map_err(|e| bpf_error("opening the thread map", e))?;
        for tid in tids {
            map.insert(tid, 1, 0)
                .map_err(|e| bpf_error("adding a thread to the thread map", e))?;
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
}
