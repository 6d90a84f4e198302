//! The Trace Event Format (chrome://tracing, ui.perfetto.dev): a track per thread with complete
//! (`X`) events that nest — running, waiting for a CPU, each blocking episode named after the
//! blamed function (kind, file:line, duration and stack as arguments), and long polls around the
//! running time they cover. Streamed while written, never pretty-printed.

use std::io::{BufWriter, Write};

use serde_json::json;

use super::slices::{thread_slices, What};
use super::{ExportOptions, Written};
use crate::analysis::Analysis;

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
    let (from, to) = w.clip(m);
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
    let exe = super::executable_name(a);
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
                What::Running | What::Waiting => {
                    let (name, cat) = if s.what == What::Running {
                        ("running", "cpu")
                    } else {
                        ("waiting for a CPU", "scheduling")
                    };
                    write!(
                        out,
                        ",\n{{\"ph\":\"X\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts},\"dur\":{dur},\"name\":\"{name}\",\"cat\":\"{cat}\"}}"
                    )?;
                }
                What::Details(i) => {
                    let d = &details[i];
                    let args = json!({"kind": d.kind, "location": d.location,
                                      "duration_ms": d.duration as f64 / 1e6,
                                      "samples": d.samples, "stack": d.stack});
                    write!(
                        out,
                        ",\n{{\"ph\":\"X\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts},\"dur\":{dur},\"cat\":\"blocking\",\"name\":"
                    )?;
                    serde_json::to_writer(&mut out, &d.name).map_err(std::io::Error::other)?;
                    out.write_all(b",\"args\":")?;
                    serde_json::to_writer(&mut out, &args).map_err(std::io::Error::other)?;
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
