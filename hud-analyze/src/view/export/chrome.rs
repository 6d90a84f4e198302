//! The Trace Event Format (chrome://tracing, ui.perfetto.dev): a track per thread with complete
//! (`X`) events that nest — running, waiting for a CPU, each blocking episode named after the
//! blamed function (kind, file:line, duration and stack as arguments), and long polls around the
//! running time they cover. Streamed while written, never pretty-printed.

use std::io::{BufWriter, Write};

use serde_json::json;

use super::{ExportOptions, Written};
use crate::analysis::frames::Kind;
use crate::analysis::Analysis;
use crate::model::State;
use crate::view::short_path;

/// One slice of a thread's track, compact: a storm's trace has millions of them.
#[derive(Clone, Copy)]
struct Slice {
    start: u64,
    end: u64,
    /// [`RUNNING`], [`WAITING`], or `DETAILS + i` for the thread's `i`-th blocking slice.
    what: u32,
}

const RUNNING: u32 = 0;
const WAITING: u32 = 1;
const DETAILS: u32 = 2;

/// A blocking slice's name and arguments.
struct Details {
    name: String,
    args: serde_json::Value,
}

/// Nanoseconds as microseconds with three decimals, by integer arithmetic (float formatting of
/// millions of timestamps was most of the export's time).
struct Micros(u64);

impl std::fmt::Display for Micros {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000, self.0 % 1_000)
    }
}

pub fn write(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    let m = &a.model;
    let w = options.window;
    let (from, to) = (w.from.max(m.start), w.to.min(m.end));
    let pid = m.header.target.pid;
    let mut out = BufWriter::new(out);
    let mut events = 0u64;
    let mut first = true;
    let mut emit = |out: &mut BufWriter<&mut dyn Write>, event: serde_json::Value| {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        serde_json::to_writer(&mut *out, &event).map_err(std::io::Error::other)
    };
    out.write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")?;
    let exe = std::path::Path::new(&m.header.target.exe_path)
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    emit(
        &mut out,
        json!({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": format!("{exe} (pid {pid})")}}),
    )?;
    for (tid, thread) in &m.threads {
        if options.threads.as_ref().is_some_and(|t| !t.contains(tid)) {
            continue;
        }
        emit(
            &mut out,
            json!({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name",
                   "args": {"name": format!("{} ({})", thread.name(), thread.role.label())}}),
        )?;
        let (slices, details) = thread_slices(a, *tid, from, to);
        for s in slices {
            events += 1;
            let (ts, dur) = (Micros(s.start - m.start), Micros(s.end - s.start));
            match s.what {
                // Running and waiting slices are most of a trace: written directly (their names
                // need no escaping), not through a JSON value.
                RUNNING | WAITING => {
                    let (name, cat) = if s.what == RUNNING {
                        ("running", "cpu")
                    } else {
                        ("waiting for a CPU", "scheduling")
                    };
                    write!(
                        out,
                        ",\n{{\"ph\":\"X\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts},\"dur\":{dur},\"name\":\"{name}\",\"cat\":\"{cat}\"}}"
                    )?;
                }
                i => {
                    let d = &details[(i - DETAILS) as usize];
                    write!(
                        out,
                        ",\n{{\"ph\":\"X\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts},\"dur\":{dur},\"cat\":\"blocking\",\"name\":"
                    )?;
                    serde_json::to_writer(&mut out, &d.name).map_err(std::io::Error::other)?;
                    out.write_all(b",\"args\":")?;
                    serde_json::to_writer(&mut out, &d.args).map_err(std::io::Error::other)?;
                    out.write_all(b"}")?;
                }
            }
        }
    }
    let h = &m.header;
    let start_unix_ns = h
        .clock
        .realtime_ns
        .saturating_add(m.start)
        .saturating_sub(h.clock.monotonic_ns);
    write!(
        out,
        "\n],\"metadata\":{}}}\n",
        json!({"hud_version": h.hud_version, "host": h.host_name, "pid": pid,
               "executable": h.target.exe_path, "start_unix_ns": start_unix_ns,
               "duration_s": m.duration() as f64 / 1e9, "window_s": [
                   (from.saturating_sub(m.start)) as f64 / 1e9,
                   (to.saturating_sub(m.start)) as f64 / 1e9]})
    )?;
    out.flush()?;
    Ok(Written { events })
}

/// A thread's slices in `[from, to)`, sorted so that parents come before what they contain, and
/// the details of its blocking slices.
fn thread_slices(a: &Analysis, tid: u32, from: u64, to: u64) -> (Vec<Slice>, Vec<Details>) {
    let m = &a.model;
    let mut slices: Vec<Slice> = Vec::new();
    let mut details: Vec<Details> = Vec::new();
    let mut polls: Vec<(u64, u64)> = Vec::new();
    for e in a.detection.episodes.iter().filter(|e| e.tid == tid) {
        let (start, end) = (e.start.max(from), e.end().min(to));
        if start >= end {
            continue;
        }
        let g = &a.detection.groups[e.group as usize];
        let location = g
            .blame
            .file
            .as_deref()
            .map(|f| format!("{}:{}", short_path(f), e.line))
            .unwrap_or_default();
        let stack: Vec<String> = a
            .symbols
            .frames(m, e.stack)
            .map(|f| match &f.file {
                Some(file) => format!("{} {}:{}", f.function, short_path(file), f.line),
                None => f.function.to_string(),
            })
            .collect();
        if e.kind == Kind::Cpu {
            polls.push((start, end));
        }
        slices.push(Slice {
            start,
            end,
            what: DETAILS + details.len() as u32,
        });
        details.push(Details {
            name: format!(
                "{}: {}",
                if e.kind == Kind::Cpu { "long poll" } else { e.kind.label() },
                g.blame.function
            ),
            args: json!({"kind": e.kind, "location": location, "duration_ms": e.duration as f64 / 1e6,
                         "samples": e.samples, "stack": stack}),
        });
    }
    // A long poll's end is estimated (its last sample plus one period): never past the start of
    // the thread's next blocking slice, so the two do not overlap.
    slices.sort_by_key(|s| s.start);
    for i in 0..slices.len() {
        let is_poll = details[(slices[i].what - DETAILS) as usize].args["kind"] == "cpu";
        if let Some(next) = slices.get(i + 1).map(|n| n.start) {
            if is_poll && next < slices[i].end {
                slices[i].end = next;
            }
        }
    }
    polls.clear();
    polls.extend(
        slices
            .iter()
            .filter(|s| details[(s.what - DETAILS) as usize].args["kind"] == "cpu")
            .map(|s| (s.start, s.end)),
    );
    for span in m.spans(tid, from, to) {
        let what = match span.state {
            State::OnCpu => RUNNING,
            State::Runnable => WAITING,
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
                    slices.push(Slice {
                        start,
                        end: edge,
                        what,
                    });
                    start = edge;
                }
            }
        }
        slices.push(Slice {
            start,
            end: span.end,
            what,
        });
    }
    slices.sort_unstable_by(|x, y| x.start.cmp(&y.start).then(y.end.cmp(&x.end)));
    (nest(slices), details)
}

/// Makes sorted slices nest: a slice that starts inside another but outlasts it is cut at the
/// other's end (dropped if nothing is left). Consistent records never need it; lost records and
/// clock skew between CPUs can make a running span overlap an off-CPU episode by a little.
fn nest(slices: Vec<Slice>) -> Vec<Slice> {
    let mut out = Vec::with_capacity(slices.len());
    let mut open: Vec<u64> = Vec::new();
    for mut s in slices {
        while open.last().is_some_and(|end| *end <= s.start) {
            open.pop();
        }
        if let Some(&parent_end) = open.last() {
            s.end = s.end.min(parent_end);
        }
        if s.end > s.start {
            open.push(s.end);
            out.push(s);
        }
    }
    out
}
