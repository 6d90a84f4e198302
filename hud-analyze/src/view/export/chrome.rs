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

/// One slice of a thread's track.
struct Slice {
    start: u64,
    end: u64,
    name: String,
    category: &'static str,
    args: serde_json::Value,
}

/// Microseconds with nanosecond precision, as the format wants them.
fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
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
        let slices = thread_slices(a, *tid, from, to);
        for s in slices {
            events += 1;
            emit(
                &mut out,
                json!({"ph": "X", "pid": pid, "tid": tid, "ts": us(s.start - m.start),
                       "dur": us(s.end - s.start), "name": s.name, "cat": s.category, "args": s.args}),
            )?;
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

/// A thread's slices in `[from, to)`, sorted so that parents come before what they contain.
fn thread_slices(a: &Analysis, tid: u32, from: u64, to: u64) -> Vec<Slice> {
    let m = &a.model;
    let mut slices: Vec<Slice> = Vec::new();
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
        slices.push(Slice {
            start,
            end,
            name: format!(
                "{}: {}",
                if e.kind == Kind::Cpu { "long poll" } else { e.kind.label() },
                g.blame.function
            ),
            category: "blocking",
            args: json!({"kind": e.kind, "location": location, "duration_ms": e.duration as f64 / 1e6,
                         "samples": e.samples, "stack": stack}),
        });
    }
    // A long poll's end is estimated (its last sample plus one period): never past the start of
    // the thread's next blocking slice, so the two do not overlap.
    slices.sort_by_key(|s| s.start);
    let starts: Vec<u64> = slices.iter().map(|s| s.start).collect();
    for s in slices.iter_mut().filter(|s| s.args["kind"] == "cpu") {
        if let Some(next) = starts.iter().find(|t| **t > s.start && **t < s.end) {
            s.end = *next;
        }
    }
    let mut polls: Vec<(u64, u64)> = slices
        .iter()
        .filter(|s| s.args["kind"] == "cpu")
        .map(|s| (s.start, s.end))
        .collect();
    polls.sort_unstable();
    for span in m.spans(tid, from, to) {
        let (name, category) = match span.state {
            State::OnCpu => ("running", "cpu"),
            State::Runnable => ("waiting for a CPU", "scheduling"),
            // Off CPU: shown by the blocking slices where it blocked a task; idle otherwise.
            _ => continue,
        };
        // Cut at long-poll edges, so every slice is inside a long poll or outside all of them.
        let mut start = span.start;
        for &(a, b) in polls
            .iter()
            .filter(|(a, b)| *b > span.start && *a < span.end)
        {
            for edge in [a, b] {
                if edge > start && edge < span.end {
                    slices.push(plain(start, edge, name, category));
                    start = edge;
                }
            }
        }
        slices.push(plain(start, span.end, name, category));
    }
    slices.sort_by(|x, y| x.start.cmp(&y.start).then(y.end.cmp(&x.end)));
    slices
}

fn plain(start: u64, end: u64, name: &str, category: &'static str) -> Slice {
    Slice {
        start,
        end,
        name: name.to_owned(),
        category,
        args: serde_json::Value::Null,
    }
}
