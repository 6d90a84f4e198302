//! Exact poll durations (`hud-record --poll-probes`, format 1.3), per task future type: how many
//! polls, how long (p50, p90, p99, max), and the longest polls one by one with the task they
//! polled. A window's numbers are the difference of the recorder's cumulative histograms read
//! at its edges (about once a second), so they are exact to the second and to a bucket's width
//! (≤ 12.5 %).

use hud_format::elf::task_polls::short_future;
use hud_format::types::PollHistogram;
use hud_format::wire::{poll_bucket_range, POLL_BUCKETS};

use crate::model::{LongPoll, Model, PollModel};

/// Longest polls listed per future type.
pub const LONGEST_LISTED: usize = 5;

/// The polls of one future type in a window.
#[derive(Clone, Debug, PartialEq)]
pub struct PollKind {
    /// The future type as DWARF names it, and shortened for people.
    pub future: String,
    pub short: String,
    /// The schedulers its probed instances poll for (`multi_thread`, `current_thread`).
    pub schedulers: Vec<&'static str>,
    pub polls: u64,
    pub total_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    /// The longest: exact over the whole recording, else the upper edge of the window's top
    /// bucket (or its longest poll kept one by one, when longer).
    pub max_ns: u64,
    /// Polls past the recorder's event threshold, and the longest of them.
    pub long_polls: usize,
    pub longest: Vec<LongPollRow>,
    /// The histogram: (lowest, highest) nanoseconds of each bucket with polls (12.5 % wide),
    /// and how many polls fell in it, shortest first.
    pub buckets: Vec<((u64, u64), u64)>,
}

/// One long poll, with the task it polled where samples inside it said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongPollRow {
    pub tid: u32,
    pub start: u64,
    pub end: u64,
    /// The Tokio task id (0: no sample inside the poll carried one).
    pub task: u64,
}

/// What `--poll-probes` measured in a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PollFindings {
    /// The future types that polled in the window, most total poll time first.
    pub kinds: Vec<PollKind>,
    /// Future types probed (some may not have polled in the window).
    pub probed: usize,
    /// Polls at least this long were kept one by one.
    pub event_ns: u64,
    /// When and why the recorder stopped probing (over its budget).
    pub stopped: Option<(u64, String)>,
    /// When it was detaching the probes (episodes then were left out of detection).
    pub detaching: Option<(u64, u64)>,
    /// The window's part covered by histogram reads (the polls counted are those between).
    pub measured_ns: u64,
}

/// Per bucket counts and the sum of one future type's polls.
#[derive(Clone)]
struct Merged {
    counts: Vec<u64>,
    sum_ns: u64,
    max_ns: u64,
}

impl Merged {
    fn new() -> Self {
        Merged {
            counts: vec![0; POLL_BUCKETS as usize],
            sum_ns: 0,
            max_ns: 0,
        }
    }

    fn add(&mut self, h: &PollHistogram, sign: i8) {
        for (b, c) in h.buckets.iter().zip(&h.counts) {
            if let Some(slot) = self.counts.get_mut(usize::from(*b)) {
                *slot = if sign > 0 {
                    slot.saturating_add(*c)
                } else {
                    slot.saturating_sub(*c)
                };
            }
        }
        self.sum_ns = if sign > 0 {
            self.sum_ns.saturating_add(h.sum_ns)
        } else {
            self.sum_ns.saturating_sub(h.sum_ns)
        };
        if sign > 0 {
            self.max_ns = self.max_ns.max(h.max_ns);
        }
    }

    fn polls(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile, interpolated inside its bucket.
    fn quantile(&self, q: f64) -> u64 {
        let n = self.polls();
        if n == 0 {
            return 0;
        }
        let rank = (q * n as f64).ceil().max(1.0);
        let mut below = 0u64;
        for (b, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (below + c) as f64 >= rank {
                let (low, high) = poll_bucket_range(b as u32);
                let into = (rank - below as f64 - 0.5) / c as f64;
                return low + ((high - low) as f64 * into.clamp(0.0, 1.0)) as u64;
            }
            below += c;
        }
        self.max_ns
    }

    /// The upper edge of the highest bucket with a poll.
    fn top_edge(&self) -> u64 {
        self.counts
            .iter()
            .rposition(|c| *c > 0)
            .map_or(0, |b| poll_bucket_range(b as u32).1)
    }
}

/// The snapshot read last at or before `at` (`None`: none yet, all counts zero).
fn snapshot_at(polls: &PollModel, at: u64) -> Option<&[PollHistogram]> {
    let n = polls.snapshots.partition_point(|(ts, _)| *ts <= at);
    n.checked_sub(1).map(|i| polls.snapshots[i].1.as_slice())
}

/// The scheduler a probe's `S` names.
fn scheduler_kind(scheduler: &str) -> &'static str {
    if scheduler.contains("current_thread") {
        "current_thread"
    } else if scheduler.contains("multi_thread") {
        "multi_thread"
    } else {
        "other"
    }
}

/// What the poll probes measured in `[from, to)`; `None` when they were not used.
pub fn in_window(m: &Model, from: u64, to: u64) -> Option<PollFindings> {
    let polls = m.polls.as_ref()?;
    let whole = from <= m.start && to >= m.end;
    let end = snapshot_at(polls, to);
    let start = if from <= m.start {
        None
    } else {
        snapshot_at(polls, from)
    };
    // Probes grouped by future type, in probe order.
    let mut futures: Vec<&str> = Vec::new();
    let mut group_of = Vec::with_capacity(polls.probes.len());
    for p in &polls.probes {
        let at = match futures.iter().position(|f| *f == p.future) {
            Some(at) => at,
            None => {
                futures.push(&p.future);
                futures.len() - 1
            }
        };
        group_of.push(at);
    }
    // Per probe: whether it counted a poll in the window.
    let mut polled = vec![false; polls.probes.len()];
    let count_of = |hs: Option<&[PollHistogram]>, probe: usize| -> u64 {
        hs.unwrap_or_default()
            .iter()
            .filter(|h| h.probe as usize == probe)
            .map(|h| h.counts.iter().sum::<u64>())
            .sum()
    };
    for (probe, p) in polled.iter_mut().enumerate() {
        *p = count_of(end, probe) > count_of(start, probe);
    }
    let mut merged = vec![Merged::new(); futures.len()];
    let group = |probe: u32| group_of.get(probe as usize).copied();
    for h in end.unwrap_or_default() {
        if let Some(g) = group(h.probe) {
            merged[g].add(h, 1);
        }
    }
    for h in start.unwrap_or_default() {
        if let Some(g) = group(h.probe) {
            merged[g].add(h, -1);
        }
    }
    let mut kinds: Vec<PollKind> = futures
        .iter()
        .enumerate()
        .map(|(g, future)| {
            let mg = &merged[g];
            let mut long: Vec<&LongPoll> = polls
                .long
                .iter()
                .filter(|l| l.end >= from && l.end < to && group(l.probe) == Some(g))
                .collect();
            long.sort_by_key(|l| std::cmp::Reverse(l.end - l.start));
            let longest_kept = long.first().map_or(0, |l| l.end - l.start);
            // The schedulers of the instances that polled in the window.
            let mut schedulers: Vec<&'static str> = polls
                .probes
                .iter()
                .filter(|p| p.future == *future && polled[p.probe as usize])
                .map(|p| scheduler_kind(&p.scheduler))
                .collect();
            schedulers.sort_unstable();
            schedulers.dedup();
            PollKind {
                future: future.to_string(),
                short: short_future(future),
                schedulers,
                polls: mg.polls(),
                total_ns: mg.sum_ns,
                p50_ns: mg.quantile(0.50),
                p90_ns: mg.quantile(0.90),
                p99_ns: mg.quantile(0.99),
                max_ns: if whole {
                    mg.max_ns.max(longest_kept)
                } else {
                    mg.top_edge().min(mg.max_ns).max(longest_kept)
                },
                long_polls: long.len(),
                longest: long
                    .iter()
                    .take(LONGEST_LISTED)
                    .map(|l| LongPollRow {
                        tid: l.tid,
                        start: l.start,
                        end: l.end,
                        task: if l.task != 0 { l.task } else { task_in(m, l) },
                    })
                    .collect(),
                buckets: mg
                    .counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(|(b, c)| (poll_bucket_range(b as u32), *c))
                    .collect(),
            }
        })
        .collect();
    let probed = kinds.len();
    kinds.retain(|k| k.polls > 0 || k.long_polls > 0);
    kinds.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(b.polls.cmp(&a.polls)));
    // Polls are counted up to the last read, or until the probes were detached.
    let last_read = polls.snapshots.last().map_or(m.start, |(ts, _)| *ts);
    let counted_to = polls
        .detaching
        .map_or(last_read, |(from, _)| from.min(last_read));
    let measured_ns = counted_to.min(to).saturating_sub(from.max(m.start));
    Some(PollFindings {
        kinds,
        probed,
        event_ns: polls.event_ns,
        stopped: polls.stopped.clone(),
        detaching: polls.detaching,
        measured_ns,
    })
}

/// The task a long poll polled: the one most samples of its thread inside it ran in.
fn task_in(m: &Model, l: &LongPoll) -> u64 {
    let first = m
        .samples
        .partition_point(|s| (s.tid, s.ts) < (l.tid, l.start));
    let mut votes: Vec<(u64, u32)> = Vec::new();
    for s in m.samples[first..]
        .iter()
        .take_while(|s| s.tid == l.tid && s.ts <= l.end)
    {
        if s.task == 0 {
            continue;
        }
        match votes.iter_mut().find(|v| v.0 == s.task) {
            Some(v) => v.1 += 1,
            None => votes.push((s.task, 1)),
        }
    }
    votes.iter().max_by_key(|v| v.1).map_or(0, |v| v.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hud_format::wire::poll_bucket;

    fn histogram(probe: u32, polls: &[(u64, u64)]) -> PollHistogram {
        let mut h = PollHistogram {
            probe,
            ..Default::default()
        };
        let mut buckets: Vec<(u16, u64)> = Vec::new();
        for &(ns, n) in polls {
            let b = poll_bucket(ns) as u16;
            match buckets.iter_mut().find(|x| x.0 == b) {
                Some(x) => x.1 += n,
                None => buckets.push((b, n)),
            }
            h.sum_ns += ns * n;
            h.max_ns = h.max_ns.max(ns);
        }
        buckets.sort();
        h.buckets = buckets.iter().map(|x| x.0).collect();
        h.counts = buckets.iter().map(|x| x.1).collect();
        h
    }

    #[test]
    fn quantiles_fall_within_a_bucket_of_the_truth() {
        let mut m = Merged::new();
        // 90 polls of 100 µs, 9 of 2 ms, 1 of 40 ms.
        m.add(
            &histogram(0, &[(100_000, 90), (2_000_000, 9), (40_000_000, 1)]),
            1,
        );
        let near = |got: u64, truth: u64| (got as f64 - truth as f64).abs() <= truth as f64 * 0.07;
        assert!(near(m.quantile(0.5), 100_000), "{}", m.quantile(0.5));
        assert!(near(m.quantile(0.95), 2_000_000), "{}", m.quantile(0.95));
        assert!(near(m.quantile(1.0), 40_000_000), "{}", m.quantile(1.0));
        assert_eq!(m.polls(), 100);
    }

    #[test]
    fn a_window_is_the_difference_of_the_snapshots_at_its_edges() {
        use hud_format::types::PollProbe;
        let probe = |probe: u32, scheduler: &str| PollProbe {
            probe,
            future: "app::serve::{async_fn_env#0}".into(),
            scheduler: scheduler.into(),
            ..Default::default()
        };
        let header = hud_format::types::Header::default();
        let mut m = crate::model::builder::ModelBuilder::new(header, "1.3".into())
            .model()
            .clone();
        (m.start, m.end) = (0, 3_000);
        m.polls = Some(PollModel {
            probes: vec![
                probe(0, "Arc<multi_thread::Handle>"),
                probe(1, "Arc<current_thread::Handle>"),
            ],
            snapshots: vec![
                (1_000, vec![histogram(0, &[(1_000, 10)])]),
                (
                    2_000,
                    vec![
                        histogram(0, &[(1_000, 10), (5_000_000, 4)]),
                        histogram(1, &[(1_000, 2)]),
                    ],
                ),
            ],
            long: vec![LongPoll {
                tid: 1,
                start: 1_500,
                end: 1_600,
                probe: 1,
                task: 9,
            }],
            event_ns: 50,
            stopped: None,
            detaching: None,
        });
        let all = in_window(&m, 0, u64::MAX).unwrap();
        assert_eq!(all.kinds.len(), 1, "two schedulers, one future type");
        let k = &all.kinds[0];
        assert_eq!(k.polls, 16);
        assert_eq!(k.schedulers, ["current_thread", "multi_thread"]);
        assert_eq!(k.short, "app::serve");
        assert_eq!(k.max_ns, 5_000_000);
        assert_eq!(k.long_polls, 1);
        assert_eq!(k.longest[0].task, 9, "the probe's own reading");
        let later = in_window(&m, 1_200, u64::MAX).unwrap();
        assert_eq!(
            later.kinds[0].polls, 6,
            "the first second's ten are before the window"
        );
    }
}
