//! What a capture holds, at a glance: target, host, duration, threads, event counts, losses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hud_format::types::Header;

use crate::model::Model;
use crate::objects::hex;
use crate::view::units::{ms, secs};

/// One thread as the capture saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadSummary {
    pub tid: u32,
    /// Names in the order the thread had them.
    pub names: Vec<String>,
    pub exited: bool,
    pub switches: u64,
    pub samples: u64,
    pub off_cpu: u64,
    /// Total off-CPU time in episodes past the recorder's threshold.
    pub off_cpu_ns: u64,
}

/// Counts and facts of one capture, read from the model (no symbolization needed).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub header: Header,
    pub version: String,
    pub notices: Vec<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub chunks: usize,
    pub switches: u64,
    pub samples: u64,
    pub off_cpu: u64,
    /// Stack nodes (the capture stores stacks as a prefix tree).
    pub stacks: u64,
    pub mappings: usize,
    pub embedded: usize,
    pub threads: BTreeMap<u32, ThreadSummary>,
    /// Last value of each counter.
    pub counters: BTreeMap<String, u64>,
    /// Task ids (format 1.2): how they were read, or why not; `None` before 1.2.
    pub task_source: Option<Result<String, String>>,
    /// Samples and off-CPU episodes that ran in a known task.
    pub events_in_tasks: u64,
}

impl Summary {
    pub fn of(model: &Model) -> Self {
        let mut threads: BTreeMap<u32, ThreadSummary> = model
            .threads
            .values()
            .map(|t| {
                let summary = ThreadSummary {
                    tid: t.tid,
                    names: t.names.iter().map(|(_, n)| n.clone()).collect(),
                    exited: t.exited.is_some(),
                    switches: t.switches(),
                    samples: t.samples,
                    ..ThreadSummary::default()
                };
                (t.tid, summary)
            })
            .collect();
        for off in &model.off_cpu {
            if let Some(t) = threads.get_mut(&off.tid) {
                t.off_cpu += 1;
                t.off_cpu_ns += off.duration;
            }
        }
        Summary {
            header: model.header.clone(),
            version: model.version.clone(),
            notices: model.notices.clone(),
            start_ns: model.start,
            end_ns: model.end,
            chunks: model.chunks,
            switches: threads.values().map(|t| t.switches).sum(),
            samples: model.samples.len() as u64,
            off_cpu: model.off_cpu.len() as u64,
            stacks: model.stacks.len() as u64,
            mappings: model.mappings.len(),
            embedded: model.embedded_parts,
            threads,
            counters: model.counters.clone(),
            task_source: model.task_source.clone(),
            events_in_tasks: model.samples.iter().filter(|s| s.task != 0).count() as u64
                + model.off_cpu.iter().filter(|o| o.task != 0).count() as u64,
        }
    }

    /// Records lost in the kernel or by the recorder.
    pub fn lost(&self) -> u64 {
        crate::model::lost_records(&self.counters)
    }

    pub fn duration_secs(&self) -> f64 {
        secs(self.end_ns.saturating_sub(self.start_ns))
    }

    /// The human-readable form.
    pub fn render(&self) -> String {
        let h = &self.header;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "capture   format {}, hud {}",
            self.version, h.hud_version
        );
        for notice in &self.notices {
            let _ = writeln!(out, "notice    {notice}");
        }
        let _ = writeln!(
            out,
            "target    pid {} {} ({})",
            h.target.pid,
            h.target.exe_path,
            if h.target.build_id.is_empty() {
                "no build-id".to_string()
            } else {
                format!("build-id {}", hex(&h.target.build_id))
            }
        );
        let _ = writeln!(
            out,
            "host      {} · Linux {} · {} · {} CPUs",
            h.host_name, h.kernel_release, h.arch, h.cpu_count
        );
        let _ = writeln!(
            out,
            "recorded  {:.2} s · sampling {} Hz · off-CPU threshold {:.2} ms{}",
            self.duration_secs(),
            h.sample_hz,
            ms(h.offcpu_threshold_ns),
            if h.options.kernel_stacks {
                " · kernel stacks"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "events    {} switches · {} samples · {} off-CPU episodes · {} stack nodes · {} chunks",
            self.switches, self.samples, self.off_cpu, self.stacks, self.chunks
        );
        let lost = self.lost();
        let stack_errors = self.counters.get("user_stack_error").copied().unwrap_or(0);
        // Off-CPU episodes whose thread slept again (or exited) before returning from a system
        // call, which is where the recorder reads an episode's stack.
        let missed = self
            .counters
            .get("off_cpu_stack_missed")
            .copied()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "lost      {lost} records · {stack_errors} unreadable user stacks · {missed} off-CPU episodes without a stack"
        );
        let _ = writeln!(
            out,
            "objects   {} mappings · {} embedded object parts",
            self.mappings, self.embedded
        );
        match &self.task_source {
            Some(Ok(how)) => {
                let _ = writeln!(
                    out,
                    "tasks     {} events in a known Tokio task · read from {how}",
                    self.events_in_tasks
                );
            }
            Some(Err(why)) => {
                let _ = writeln!(out, "tasks     no task ids: {why}");
            }
            None => {}
        }
        let _ = writeln!(out, "\nthreads ({}):", self.threads.len());
        let _ = writeln!(
            out,
            "  {:>8}  {:<24} {:>9} {:>8} {:>8} {:>12}",
            "tid", "name", "switches", "samples", "off-cpu", "off-cpu ms"
        );
        for t in self.threads.values() {
            let _ = writeln!(
                out,
                "  {:>8}  {:<24} {:>9} {:>8} {:>8} {:>12.1}{}",
                t.tid,
                t.names.join(" → "),
                t.switches,
                t.samples,
                t.off_cpu,
                ms(t.off_cpu_ns),
                if t.exited { "  (exited)" } else { "" }
            );
        }
        out
    }
}
