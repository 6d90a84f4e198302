//! Tokio tasks on the timeline (captures with task ids): under each thread, a "tasks" track
//! with a slice wherever a task was seen running there, and arrows (flows) where a task moved
//! from one thread to another.
//!
//! What the evidence supports, no more: consecutive samples of one thread in the same task with
//! the same scheduler tick were one poll, a slice from the first sample to the last (a lone
//! sample is an instant); a blocking episode in a task is a slice over the whole episode (the
//! task was inside its poll all along), nested in its poll's slice when samples frame it. The
//! runtime's own tasks (a multi-thread worker's loop runs as a task of its own) and samples in
//! the scheduler's park path (the id there is the worker's own) are left out.

use std::io::Write;

use rustc_hash::FxHashMap as HashMap;

use super::proto::*;
use super::{compressed, open_child_tracks, push_packet, Interner, Sequence, Table};
use crate::analysis::frames::{self, flags, Classifier, Kind};
use crate::analysis::Analysis;
use crate::view::export::ExportOptions;
use hud_format::wire::NO_TICK;

/// The tasks track of a thread track.
pub(super) fn track_of(thread_track: u64) -> u64 {
    thread_track + 600_000
}

/// One slice of a task on a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    tid: u32,
    task: u64,
    start: u64,
    end: u64,
    /// Samples in it (0: a blocking episode).
    samples: u32,
    blocked: Option<Kind>,
    /// The arrow that ends here (the task came from another thread) and the one that leaves.
    flow_in: Option<u64>,
    flow_out: Option<u64>,
}

/// Whether a stack is the scheduler parking (its first runtime frame from the leaf is the park
/// path, not a task's poll), cached per stack.
struct ParkedStacks {
    cls: Classifier,
    seen: HashMap<u32, bool>,
}

impl ParkedStacks {
    fn check(&mut self, a: &Analysis, stack: u32) -> bool {
        let cls = &self.cls;
        *self.seen.entry(stack).or_insert_with(|| {
            for f in a.symbols.frames(&a.model, stack) {
                let v = cls.flags(f);
                if v & flags::POLL != 0 {
                    return false;
                }
                if v & flags::PARK != 0 {
                    return true;
                }
            }
            false
        })
    }
}

/// The slices of one thread in `[from, to)`, in start order.
fn runs_of(
    a: &Analysis,
    tid: u32,
    (from, to): (u64, u64),
    shown: &dyn Fn(u64) -> bool,
    parked: &mut ParkedStacks,
) -> Vec<Run> {
    let m = &a.model;
    let mut runs: Vec<Run> = Vec::new();
    let mut open: Option<(Run, u64)> = None;
    for s in m.samples_in(tid, from, to) {
        let same = open.as_ref().is_some_and(|(r, tick)| {
            r.task == s.task && *tick == s.tick && s.tick != NO_TICK && !parked.check(a, s.stack)
        });
        if same {
            if let Some((r, _)) = open.as_mut() {
                r.end = s.ts;
                r.samples += 1;
            }
            continue;
        }
        runs.extend(open.take().map(|(r, _)| r));
        if s.task != 0 && shown(s.task) && !parked.check(a, s.stack) {
            open = Some((
                Run {
                    tid,
                    task: s.task,
                    start: s.ts,
                    end: s.ts,
                    samples: 1,
                    blocked: None,
                    flow_in: None,
                    flow_out: None,
                },
                s.tick,
            ));
        }
    }
    runs.extend(open.map(|(r, _)| r));
    runs.extend(
        a.detection
            .episodes
            .iter()
            .filter(|e| e.tid == tid && !e.on_cpu() && e.task != 0 && shown(e.task))
            .filter(|e| e.start < to && e.end() > from)
            .map(|e| Run {
                tid,
                task: e.task,
                start: e.start.max(from),
                end: e.end().min(to),
                samples: 0,
                blocked: Some(e.kind),
                flow_in: None,
                flow_out: None,
            }),
    );
    runs.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    runs
}

/// Arrows between a task's consecutive slices on different threads.
fn link(runs: &mut [Run]) -> u64 {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| (runs[i].task, runs[i].start, runs[i].tid));
    let mut flows = 0u64;
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if runs[a].task != runs[b].task || runs[a].tid == runs[b].tid {
            continue;
        }
        flows += 1;
        // Ids only need to be unique in the trace; the task id keeps them readable.
        let id = (runs[a].task << 20) ^ flows;
        runs[a].flow_out = Some(id);
        runs[b].flow_in = Some(id);
    }
    flows
}

/// Writes the tasks tracks on sequence `id`; `thread_track` gives a thread's track uuid.
/// Returns the slices written.
pub(super) fn write(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
    id: u32,
    from: u64,
    to: u64,
    thread_track: &dyn Fn(u32) -> Option<u64>,
) -> std::io::Result<u64> {
    let m = &a.model;
    if !matches!(m.task_source, Some(Ok(_))) {
        return Ok(0);
    }
    // The runtime's own tasks (a worker's loop) say nothing about the user's.
    let shown = |task: u64| a.task_kinds.of(task).is_none_or(|k| frames::is_user(k));
    let mut parked = ParkedStacks {
        cls: Classifier::default(),
        seen: HashMap::default(),
    };
    let mut runs: Vec<Run> = Vec::new();
    for &tid in m.threads.keys() {
        if options.threads.as_ref().is_some_and(|t| !t.contains(&tid)) {
            continue;
        }
        runs.extend(runs_of(a, tid, (from, to), &shown, &mut parked));
    }
    if runs.is_empty() {
        return Ok(0);
    }
    link(&mut runs);
    let mut tracks: Vec<(u32, u64)> = Vec::new();
    for r in &runs {
        if !tracks.iter().any(|(tid, _)| *tid == r.tid) {
            if let Some(parent) = thread_track(r.tid) {
                tracks.push((r.tid, parent));
            }
        }
    }
    if tracks.is_empty() {
        return Ok(0);
    }
    let mut raw = Vec::new();
    let mut seq = open_child_tracks(
        &mut raw,
        (id, from),
        &tracks,
        track_of,
        "tasks (sampled polls, blocking)",
    )?;
    let parent_of: HashMap<u32, u64> = tracks.iter().copied().collect();
    // Begins and ends in time order. At one time: ends before begins, an inner slice's end
    // before its outer one's, an outer slice's begin before its inner one's; a lone sample
    // (start == end) is an instant.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Mark {
        End,
        Instant,
        Begin,
    }
    let mut marks: Vec<(u64, Mark, u64, usize)> = Vec::with_capacity(2 * runs.len());
    for (i, r) in runs.iter().enumerate() {
        if !parent_of.contains_key(&r.tid) {
            continue;
        }
        if r.start == r.end {
            marks.push((r.start, Mark::Instant, 0, i));
        } else {
            marks.push((r.start, Mark::Begin, u64::MAX - r.end, i));
            marks.push((r.end, Mark::End, u64::MAX - r.start, i));
        }
    }
    marks.sort_unstable();
    let mut interner = Interner::default();
    let mut written = 0;
    for (t, mark, _, i) in marks {
        let r = &runs[i];
        let track = track_of(parent_of[&r.tid]);
        let mut p = seq.at(t);
        if mark == Mark::End {
            p.track_event = Some(TrackEvent {
                r#type: Some(SLICE_END),
                track_uuid: Some(track),
                ..Default::default()
            });
            push_packet(&mut raw, &p)?;
            continue;
        }
        let kind = a
            .task_kinds
            .of(r.task)
            .map_or_else(|| "kind unknown".to_string(), |k| k.function.to_string());
        let name = match r.blocked {
            Some(k) => format!("task {}: {kind} (blocked: {})", r.task, k.name()),
            None => format!("task {}: {kind}", r.task),
        };
        let mut annotations = vec![DebugAnnotation {
            name_iid: Some(interner.string(Table::AnnotationNames, "task_id")),
            uint_value: Some(r.task),
            ..Default::default()
        }];
        if r.samples > 0 {
            annotations.push(DebugAnnotation {
                name_iid: Some(interner.string(Table::AnnotationNames, "samples")),
                uint_value: Some(u64::from(r.samples)),
                ..Default::default()
            });
        }
        p.track_event = Some(TrackEvent {
            r#type: Some(if mark == Mark::Instant {
                INSTANT
            } else {
                SLICE_BEGIN
            }),
            track_uuid: Some(track),
            name_iid: Some(interner.string(Table::EventNames, &name)),
            category_iids: vec![interner.string(Table::Categories, "task")],
            debug_annotations: annotations,
            flow_ids: r.flow_out.into_iter().collect(),
            terminating_flow_ids: r.flow_in.into_iter().collect(),
            ..Default::default()
        });
        Sequence::interning(&mut p);
        p.interned_data = interner.take();
        push_packet(&mut raw, &p)?;
        written += 1;
    }
    out.write_all(&compressed(&raw)?)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tid: u32, task: u64, start: u64) -> Run {
        Run {
            tid,
            task,
            start,
            end: start + 1,
            samples: 1,
            blocked: None,
            flow_in: None,
            flow_out: None,
        }
    }

    #[test]
    fn arrows_join_a_task_s_slices_only_where_it_changed_threads() {
        let mut runs = vec![
            run(10, 5, 0),
            run(10, 5, 10),
            run(11, 5, 20),
            run(11, 6, 25),
            run(10, 5, 30),
            run(10, 6, 40),
        ];
        assert_eq!(link(&mut runs), 3, "5: 10→11→10, 6: 11→10");
        assert_eq!(runs[0].flow_out, None);
        assert_eq!(runs[1].flow_out, runs[2].flow_in);
        assert_eq!(runs[2].flow_out, runs[4].flow_in);
        assert_eq!(runs[3].flow_out, runs[5].flow_in);
        let ids: Vec<u64> = runs.iter().filter_map(|r| r.flow_out).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "{ids:?}");
    }
}
