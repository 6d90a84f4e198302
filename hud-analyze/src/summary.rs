//! What a capture holds, at a glance: target, host, duration, threads, event counts, losses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hud_format::reader::Capture;
use hud_format::types::{ArchivedThreadEventKind, Header};

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

/// Counts and facts of one capture.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub header: Header,
    pub version: String,
    pub ending: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub chunks: usize,
    pub switches: u64,
    pub samples: u64,
    pub off_cpu: u64,
    pub stacks: u64,
    pub mappings: Vec<(String, u64, u64, String)>,
    pub embedded: usize,
    pub threads: BTreeMap<u32, ThreadSummary>,
    /// Last value of each counter.
    pub counters: BTreeMap<String, u64>,
}

impl Summary {
    /// Reads every chunk (in parallel) and tallies it.
    pub fn of(capture: &Capture) -> Result<Self, hud_format::Error> {
        let chunks = capture.chunks()?;
        let mut s = Summary {
            header: capture.header().clone(),
            version: capture.version().to_string(),
            ending: capture.ending().notice(),
            start_ns: capture.header().start_ns,
            end_ns: capture.header().start_ns,
            chunks: chunks.len(),
            embedded: capture
                .frames()
                .iter()
                .filter(|f| f.header.kind == hud_format::frame::FrameKind::Object)
                .count(),
            ..Summary::default()
        };
        for data in &chunks {
            let c = data.get();
            s.end_ns = s.end_ns.max(c.end_ns.to_native());
            s.stacks += c.stacks.parent.len() as u64;
            for t in c.threads.iter() {
                let entry = s
                    .threads
                    .entry(t.tid.to_native())
                    .or_insert_with(|| ThreadSummary {
                        tid: t.tid.to_native(),
                        ..ThreadSummary::default()
                    });
                if entry.names.last().map(String::as_str) != Some(t.name.as_str()) {
                    entry.names.push(t.name.to_string());
                }
                if t.kind == ArchivedThreadEventKind::Exited {
                    entry.exited = true;
                }
            }
            fn thread(threads: &mut BTreeMap<u32, ThreadSummary>, tid: u32) -> &mut ThreadSummary {
                threads.entry(tid).or_insert_with(|| ThreadSummary {
                    tid,
                    ..ThreadSummary::default()
                })
            }
            for tid in c.switches.tid.iter() {
                thread(&mut s.threads, tid.to_native()).switches += 1;
            }
            for tid in c.samples.tid.iter() {
                thread(&mut s.threads, tid.to_native()).samples += 1;
            }
            for (tid, d) in c.off_cpu.tid.iter().zip(c.off_cpu.duration_ns.iter()) {
                let t = thread(&mut s.threads, tid.to_native());
                t.off_cpu += 1;
                t.off_cpu_ns += d.to_native();
            }
            s.switches += c.switches.tid.len() as u64;
            s.samples += c.samples.tid.len() as u64;
            s.off_cpu += c.off_cpu.tid.len() as u64;
            for m in c.mappings.iter() {
                s.mappings.push((
                    m.path.to_string(),
                    m.start.to_native(),
                    m.end.to_native(),
                    hex(&m.build_id),
                ));
            }
            for counter in c.counters.iter() {
                s.counters
                    .insert(counter.name.to_string(), counter.value.to_native());
            }
        }
        Ok(s)
    }

    /// Records lost in the kernel or by the recorder.
    pub fn lost(&self) -> u64 {
        self.counters
            .iter()
            .filter(|(name, _)| name.starts_with("lost_") || name.as_str() == "unknown_record")
            .map(|(_, v)| v)
            .sum()
    }

    pub fn duration_secs(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
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
        if let Some(notice) = &self.ending {
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
            h.offcpu_threshold_ns as f64 / 1e6,
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
        let _ = writeln!(
            out,
            "lost      {lost} records · {stack_errors} unreadable user stacks"
        );
        let _ = writeln!(
            out,
            "objects   {} mappings · {} embedded object parts",
            self.mappings.len(),
            self.embedded
        );
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
                t.off_cpu_ns as f64 / 1e6,
                if t.exited { "  (exited)" } else { "" }
            );
        }
        out
    }
}

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
