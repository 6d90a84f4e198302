//! A thread's timeline as slices that nest, for the timeline exports (Chrome, Perfetto): running,
//! waiting for a CPU, each blocking episode with what to say about it, and long polls around the
//! running time they cover.

use crate::analysis::frames::Kind;
use crate::analysis::Analysis;
use crate::model::{DetailedSpan, State};
use crate::view::file_line;

/// What a slice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Running,
    Waiting,
    /// A blocking episode: index into the thread's [`Details`].
    Details(usize),
}

/// One slice, compact: a storm's trace has millions of them.
#[derive(Clone, Copy, Debug)]
pub struct Slice {
    pub start: u64,
    pub end: u64,
    pub what: What,
}

/// A blocking episode's name and what to say about it.
pub struct Details {
    /// "sleep: app::handler", "long poll: app::crunch".
    pub name: String,
    pub kind: Kind,
    /// Blamed file:line, shortened.
    pub location: String,
    /// Blocked (or, for a long poll, on-CPU) nanoseconds.
    pub duration: u64,
    /// Samples of a long poll.
    pub samples: u32,
    /// The stack, innermost first: "function file:line".
    pub stack: Vec<String>,
    /// The stack's id (for formats that intern callstacks).
    pub stack_id: u32,
    /// The call to move off the runtime ("thread::sleep in app::nap") and where it is made.
    pub call: String,
    pub call_at: String,
    /// What to do about it.
    pub advice: String,
}

/// A thread's slices in `[from, to)`, sorted so that parents come before what they contain and
/// every slice nests, and the details of its blocking slices.
pub fn thread_slices(a: &Analysis, tid: u32, from: u64, to: u64) -> (Vec<Slice>, Vec<Details>) {
    thread_slices_of(a, tid, from, to, a.model.spans(tid, from, to).into_iter())
}

/// [`thread_slices`] from the thread's spans in the window (`Model::spans`), for a caller that
/// needs them too.
pub fn thread_slices_of(
    a: &Analysis,
    tid: u32,
    from: u64,
    to: u64,
    spans: impl ExactSizeIterator<Item = DetailedSpan>,
) -> (Vec<Slice>, Vec<Details>) {
    let m = &a.model;
    let notes = a.notes();
    let mut slices: Vec<Slice> = Vec::new();
    let mut details: Vec<Details> = Vec::new();
    for e in a.detection.episodes.iter().filter(|e| e.tid == tid) {
        let (start, end) = (e.start.max(from), e.end().min(to));
        if start >= end {
            continue;
        }
        let g = &a.detection.groups[e.group as usize];
        let note = notes.get(e.group as usize).and_then(Option::as_ref);
        let location = g
            .blame
            .file
            .as_deref()
            .and_then(|f| file_line(Some(f), e.line))
            .unwrap_or_default();
        let stack: Vec<String> = a
            .symbols
            .frames(m, e.stack)
            .map(|f| match &f.file {
                Some(file) => format!(
                    "{} {}",
                    f.function,
                    file_line(Some(file), f.line).unwrap_or_default()
                ),
                None => f.function.to_string(),
            })
            .collect();
        slices.push(Slice {
            start,
            end,
            what: What::Details(details.len()),
        });
        details.push(Details {
            name: format!("{}: {}", e.kind.name(), g.blame.function),
            kind: e.kind,
            location,
            duration: e.duration,
            samples: e.samples,
            stack,
            stack_id: e.stack,
            call: note.map_or_else(String::new, |n| n.call.clone()),
            call_at: note.map_or_else(String::new, |n| n.at.clone()),
            advice: note.map_or_else(String::new, |n| n.advice.clone()),
        });
    }
    let is_poll = |s: &Slice, details: &[Details]| match s.what {
        What::Details(d) => details[d].samples > 0,
        _ => false,
    };
    // A long poll's end is estimated (its last sample plus one period): never past the start of
    // the thread's next blocking slice, so the two do not overlap.
    slices.sort_by_key(|s| s.start);
    for i in 0..slices.len() {
        if let Some(next) = slices.get(i + 1).map(|n| n.start) {
            if is_poll(&slices[i], &details) && next < slices[i].end {
                slices[i].end = next;
            }
        }
    }
    let mut polls: Vec<(u64, u64)> = slices
        .iter()
        .filter(|s| is_poll(s, &details))
        .map(|s| (s.start, s.end))
        .collect();
    polls.sort_unstable();
    let mut timeline: Vec<Slice> = Vec::with_capacity(spans.len() + 2 * polls.len());
    for span in spans {
        let what = match span.state {
            State::OnCpu => What::Running,
            State::Runnable => What::Waiting,
            // Off CPU: shown by the blocking slices where it blocked a task; idle otherwise.
            _ => continue,
        };
        // Cut at long-poll edges, so every slice is inside a long poll or outside all of them.
        let mut start = span.start;
        // One thread's polls do not overlap: sorted by start, their ends are sorted too.
        let first = polls.partition_point(|(_, end)| *end <= span.start);
        for &(a, b) in polls[first..].iter().take_while(|(a, _)| *a < span.end) {
            for edge in [a, b] {
                if edge > start && edge < span.end {
                    timeline.push(Slice {
                        start,
                        end: edge,
                        what,
                    });
                    start = edge;
                }
            }
        }
        timeline.push(Slice {
            start,
            end: span.end,
            what,
        });
    }
    // Parents first: by start, the longer first. The spans come in time order (millions of
    // them), the blocking slices are few: merged, not sorted together.
    let parents_first = |x: &Slice, y: &Slice| x.start.cmp(&y.start).then(y.end.cmp(&x.end));
    if !timeline.is_sorted_by(|x, y| parents_first(x, y).is_le()) {
        timeline.sort_unstable_by(parents_first);
    }
    slices.sort_unstable_by(parents_first);
    let mut merged = Vec::with_capacity(timeline.len() + slices.len());
    let mut blocking = slices.into_iter().peekable();
    for s in timeline {
        while let Some(b) = blocking.next_if(|b| parents_first(b, &s).is_le()) {
            merged.push(b);
        }
        merged.push(s);
    }
    merged.extend(blocking);
    nest(&mut merged);
    (merged, details)
}

/// Makes sorted slices nest, in place: a slice that starts inside another but outlasts it is cut at the
/// other's end (dropped if nothing is left). Consistent records never need it; lost records and
/// clock skew between CPUs can make a running span overlap an off-CPU episode by a little.
fn nest(slices: &mut Vec<Slice>) {
    let mut open: Vec<u64> = Vec::new();
    let mut kept = 0;
    for i in 0..slices.len() {
        let mut s = slices[i];
        while open.last().is_some_and(|end| *end <= s.start) {
            open.pop();
        }
        if let Some(&parent_end) = open.last() {
            s.end = s.end.min(parent_end);
        }
        if s.end > s.start {
            open.push(s.end);
            slices[kept] = s;
            kept += 1;
        }
    }
    slices.truncate(kept);
}
