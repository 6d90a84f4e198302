//! `--poll-probes`: which task poll functions to probe (from the target's symbols and DWARF), and
//! while recording, the probes' account: histograms read about once a second, long polls
//! gathered from the ring buffer, a polls frame written, and the budget kept.

use std::path::Path;
use std::time::{Duration, Instant};

use hud_format::elf::task_polls::{self, NoPollFns, PollFilter, PollFn};
use hud_format::types::{PollEvents, PollHistogram, PollProbe, Polls};
use hud_format::wire::PollRecord;

use crate::error::{RecordError, Result};

/// What one probed poll costs the target: the uprobe's trap at entry, the uretprobe's at return
/// and both programs. Measured on the busy demo (docs/RECORD.md, "Exact poll durations").
pub const COST_PER_POLL_NS: u64 = 1_100;

/// How often the histograms are read and a polls frame written.
const FRAME_INTERVAL: Duration = Duration::from_secs(1);

/// Probing stops only once the probes cost at least this much a second (0.1 % of a CPU): an
/// idle target's few polls are never worth stopping for.
const NEGLIGIBLE_COST_NS_PER_S: f64 = 1_000_000.0;

/// The poll functions `filter` selects in the target's executable and how their probes read
/// the polled task's id, or a clear error.
pub fn select(
    exe_in_target: &Path,
    exe: &str,
    filter: &str,
) -> Result<(Vec<PollFn>, Option<task_polls::TaskIdReads>)> {
    let fail = |why: String| RecordError::Other(format!("--poll-probes: {exe}: {why}"));
    let file = std::fs::File::open(exe_in_target).map_err(|e| fail(format!("cannot open: {e}")))?;
    // SAFETY: a read-only map of a file only parsed (bounds-checked by object and gimli).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| fail(format!("cannot map: {e}")))?;
    let found = task_polls::find(&map).map_err(|e| {
        fail(match e {
            NoPollFns::NoDebugInfo | NoPollFns::NoSymbols => format!(
                "{e}; build it with `debug = true` (or 1) and without `strip` in the release profile"
            ),
            other => other.to_string(),
        })
    })?;
    let filter = PollFilter::parse(filter);
    let selected: Vec<PollFn> = found.selected(&filter).cloned().collect();
    if selected.is_empty() {
        let mut kinds: Vec<String> = found
            .fns
            .iter()
            .filter(|f| !f.is_blocking_task())
            .map(PollFn::short_future)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds.truncate(12);
        return Err(fail(format!(
            "no task future matches {filter} (own crates: {}); futures it spawns: {}; try \
             --poll-probes=all or --poll-probes=PART",
            found.own_crates.join(", "),
            kinds.join("; ")
        )));
    }
    Ok((selected, found.task_id))
}

/// The probes' account while recording.
pub struct PollAccount {
    probes: Vec<PollProbe>,
    probes_written: bool,
    event_ns: u64,
    long: LongPolls,
    budget_percent: f64,
    pid: u32,
    last_frame: Instant,
    /// Polls counted and the target's CPU time at the last budget check.
    last_polls: u64,
    last_cpu_ns: Option<u64>,
    stopped: Option<(u64, String)>,
    /// When detaching the probes began and ended.
    detached: (u64, u64),
    /// The shortest stretch the budget is judged over (the last frame may follow the one
    /// before by milliseconds: too few to tell a rate).
    judge_over: Duration,
}

impl PollAccount {
    pub fn new(fns: &[PollFn], path: &str, event_ns: u64, budget_percent: f64, pid: u32) -> Self {
        PollAccount {
            probes: fns
                .iter()
                .enumerate()
                .map(|(i, f)| PollProbe {
                    probe: i as u32,
                    address: f.address,
                    path: path.to_owned(),
                    future: f.future.clone(),
                    scheduler: f.scheduler.clone(),
                })
                .collect(),
            probes_written: false,
            event_ns,
            long: LongPolls::default(),
            budget_percent,
            pid,
            last_frame: Instant::now(),
            last_polls: 0,
            last_cpu_ns: target_cpu_ns(pid),
            stopped: None,
            detached: (0, 0),
            judge_over: FRAME_INTERVAL / 2,
        }
    }

    /// A long poll from the ring buffer.
    pub fn push(&mut self, r: &PollRecord) {
        if (r.probe as usize) < self.probes.len() {
            self.long
                .push(r.header.tid, r.start_ns, r.header.ts_ns, r.probe, r.task_id);
        }
    }

    /// Whether a polls frame is due (about once a second).
    pub fn due(&self) -> bool {
        self.last_frame.elapsed() >= FRAME_INTERVAL
    }

    /// The frame to write now, from the histograms read at `now_ns` (with the long polls that
    /// ended by then); checks the budget on the
    /// way and returns, when probing must stop, why (the caller detaches the probes).
    pub fn frame(
        &mut self,
        now_ns: u64,
        histograms: Vec<PollHistogram>,
    ) -> (Polls, Option<String>) {
        let since = self.last_frame.elapsed();
        let elapsed = since.as_secs_f64().max(1e-3);
        let polls: u64 = histograms
            .iter()
            .map(|h| h.counts.iter().sum::<u64>())
            .sum();
        let cpu = target_cpu_ns(self.pid);
        let mut stop = None;
        let judged = since >= self.judge_over;
        if judged {
            self.last_frame = Instant::now();
        }
        if let (Some(cpu), Some(last_cpu), None, true) =
            (cpu, self.last_cpu_ns, &self.stopped, judged)
        {
            let cost = polls.saturating_sub(self.last_polls) as f64 * COST_PER_POLL_NS as f64;
            let target = cpu.saturating_sub(last_cpu) as f64;
            if cost / elapsed > NEGLIGIBLE_COST_NS_PER_S
                && cost > target * self.budget_percent / 100.0
            {
                let why = format!(
                    "probing stopped: {:.0} polls/s would cost the target about {:.1} % of its \
                     CPU time (budget {} %, --poll-budget); the histograms hold the polls before",
                    (polls - self.last_polls) as f64 / elapsed,
                    100.0 * cost / target.max(1.0),
                    self.budget_percent
                );
                self.stopped = Some((now_ns, why.clone()));
                stop = Some(why);
            }
        }
        if judged {
            self.last_polls = polls;
            self.last_cpu_ns = cpu;
        }
        let probes = if self.probes_written {
            Vec::new()
        } else {
            self.probes_written = true;
            self.probes.clone()
        };
        let (stopped_at, stopped) = self.stopped.clone().unwrap_or_default();
        // When the detach began, once it is over; until then when probing was judged over.
        let (stopped_ns, detached_ns) = match self.detached {
            (0, _) => (stopped_at, 0),
            known => known,
        };
        // Polls that ended after the histograms were read wait for the next frame.
        let (long, later) = self.long.split_at_end(now_ns);
        self.long = later;
        let frame = Polls {
            ts_ns: now_ns,
            event_ns: self.event_ns,
            probes,
            histograms,
            long,
            stopped,
            stopped_ns,
            detached_ns,
        };
        (frame, stop)
    }

    /// The probes were detached from `from` to `to` (after [`PollAccount::frame`] said stop):
    /// the frame and those after it say when.
    pub fn detached(&mut self, frame: &mut Polls, from: u64, to: u64) {
        self.detached = (from, to);
        frame.stopped_ns = from;
        frame.detached_ns = to;
    }
}

/// Long polls not written yet.
#[derive(Default)]
struct LongPolls(Vec<(u32, u64, u64, u32, u64)>);

impl LongPolls {
    fn push(&mut self, tid: u32, start_ns: u64, end_ns: u64, probe: u32, task: u64) {
        self.0.push((tid, start_ns, end_ns, probe, task));
    }

    /// Those that ended by `ts` as a frame's rows, and the others.
    fn split_at_end(&mut self, ts: u64) -> (PollEvents, LongPolls) {
        let (now, later): (Vec<_>, Vec<_>) = self.0.drain(..).partition(|p| p.2 <= ts);
        let mut rows = PollEvents::default();
        for (tid, start, end, probe, task) in now {
            rows.tid.push(tid);
            rows.start_ns.push(start);
            rows.end_ns.push(end);
            rows.probe.push(probe);
            rows.task.push(task);
        }
        (rows, LongPolls(later))
    }
}

/// The CPU time the target has used, user and system, from /proc/PID/stat.
fn target_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces and parentheses): utime is the 14th field
    // of the line, the 12th after ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf is a plain query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * (1_000_000_000 / hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_cpu_time_is_read_from_its_stat_line() {
        let me = target_cpu_ns(std::process::id()).expect("our own stat");
        // Burn a little CPU: the count moves (by the clock tick's resolution).
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(target_cpu_ns(std::process::id()).unwrap() > me);
    }

    fn histogram(count: u64) -> Vec<PollHistogram> {
        vec![PollHistogram {
            probe: 0,
            sum_ns: count * 1000,
            max_ns: 1000,
            buckets: vec![hud_format::wire::poll_bucket(1000) as u16],
            counts: vec![count],
        }]
    }

    #[test]
    fn probes_are_written_once_and_long_polls_move_into_the_frame() {
        let f = PollFn {
            address: 0x10,
            file_offset: 0x10,
            future: "app::serve::{async_fn_env#0}".into(),
            scheduler: "S".into(),
        };
        let mut account = PollAccount::new(&[f], "/app", 1_000_000, 5.0, std::process::id());
        let mut r = PollRecord::default();
        r.header.tid = 7;
        r.header.ts_ns = 30;
        r.start_ns = 10;
        r.task_id = 42;
        account.push(&r);
        r.probe = 3; // no such probe: ignored
        account.push(&r);
        r.probe = 0;
        r.header.ts_ns = 150; // ends after the histograms are read: in the next frame
        account.push(&r);
        let (first, stop) = account.frame(100, histogram(1));
        assert!(stop.is_none());
        assert_eq!(first.probes.len(), 1);
        assert_eq!(first.long.tid, [7]);
        assert_eq!(first.long.task, [42]);
        assert_eq!((first.long.start_ns[0], first.long.end_ns[0]), (10, 30));
        let (second, _) = account.frame(200, histogram(2));
        assert!(second.probes.is_empty());
        assert_eq!(second.long.end_ns, [150]);
    }

    #[test]
    fn probing_stops_when_the_polls_cost_more_than_the_budget() {
        let f = PollFn {
            address: 0x10,
            file_offset: 0x10,
            future: "app::serve::{async_fn_env#0}".into(),
            scheduler: "S".into(),
        };
        let mut account = PollAccount::new(&[f], "/app", 1_000_000, 5.0, std::process::id());
        account.judge_over = Duration::ZERO;
        // This test process barely runs: ten million polls would cost it 30 s of CPU.
        let (frame, stop) = account.frame(100, histogram(10_000_000));
        let why = stop.expect("over budget");
        assert!(why.contains("budget 5 %"), "{why}");
        assert_eq!(frame.stopped, why);
        let mut frame = frame;
        account.detached(&mut frame, 110, 130);
        assert_eq!((frame.stopped_ns, frame.detached_ns), (110, 130));
        // Said once; later frames keep when.
        let (later, stop) = account.frame(200, histogram(20_000_000));
        assert!(stop.is_none());
        assert_eq!((later.stopped_ns, later.detached_ns), (110, 130));
    }
}
