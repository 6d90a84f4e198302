//! The Trace Event Format (chrome://tracing, ui.perfetto.dev): a track per thread with complete
//! (`X`) events that nest — running, waiting for a CPU, each blocking episode named after the
//! blamed function (kind, file:line, duration and stack as arguments), and long polls around the
//! running time they cover. Streamed while written, never pretty-printed.

use std::io::{BufWriter, Write};

use serde_json::json;

use rayon::prelude::*;

use super::slices::{thread_slices, Details, Slice, What};
use super::{ExportOptions, Written};
use crate::analysis::Analysis;
use crate::view::units::{ms, secs};

/// Slices formatted by one parallel job, and how many jobs' output is held before it is written:
/// a job amortizes its scheduling, a batch bounds memory (a storm's trace is hundreds of MB).
const SLICES_PER_JOB: usize = 1 << 15;
const JOBS_PER_BATCH: usize = 16;

/// Appends nanoseconds as microseconds with three decimals, by integer formatting (float
/// formatting, then `fmt` itself, was most of the export's time).
fn push_micros(buf: &mut Vec<u8>, ns: u64) {
    let mut digits = itoa::Buffer::new();
    buf.extend_from_slice(digits.format(ns / 1_000).as_bytes());
    let frac = (ns % 1_000) as u16;
    buf.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// One thread's slices as `X` events, each preceded by `,\n`.
fn push_slices(
    buf: &mut Vec<u8>,
    slices: &[Slice],
    details: &[Details],
    pid: u32,
    tid: u32,
    start: u64,
) -> serde_json::Result<()> {
    let mut digits = itoa::Buffer::new();
    let mut head = b",\n{\"ph\":\"X\",\"pid\":".to_vec();
    head.extend_from_slice(digits.format(pid).as_bytes());
    head.extend_from_slice(b",\"tid\":");
    head.extend_from_slice(digits.format(tid).as_bytes());
    head.extend_from_slice(b",\"ts\":");
    for s in slices {
        buf.extend_from_slice(&head);
        push_micros(buf, s.start - start);
        buf.extend_from_slice(b",\"dur\":");
        push_micros(buf, s.end - s.start);
        match s.what {
            // Running and waiting slices are most of a trace: their names need no escaping.
            What::Running => buf.extend_from_slice(b",\"name\":\"running\",\"cat\":\"cpu\"}"),
            What::Waiting => {
                buf.extend_from_slice(b",\"name\":\"waiting for a CPU\",\"cat\":\"scheduling\"}")
            }
            What::Details(i) => {
                let d = &details[i];
                let args = json!({"kind": d.kind, "location": d.location,
                                  "call": d.call, "call_at": d.call_at, "advice": d.advice,
                                  "duration_ms": ms(d.duration),
                                  "samples": d.samples, "stack": d.stack});
                buf.extend_from_slice(b",\"cat\":\"blocking\",\"name\":");
                serde_json::to_writer(&mut *buf, &d.name)?;
                buf.extend_from_slice(b",\"args\":");
                serde_json::to_writer(&mut *buf, &args)?;
                buf.push(b'}');
            }
        }
    }
    Ok(())
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
    let metadata = |out: &mut BufWriter<&mut dyn Write>, event: serde_json::Value| {
        serde_json::to_writer(&mut *out, &event).map_err(std::io::Error::other)
    };
    out.write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n")?;
    let exe = super::executable_name(a);
    metadata(
        &mut out,
        json!({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": format!("{exe} (pid {pid})")}}),
    )?;
    for (tid, thread) in &m.threads {
        if options.threads.as_ref().is_some_and(|t| !t.contains(tid)) {
            continue;
        }
        out.write_all(b",\n")?;
        metadata(
            &mut out,
            json!({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name",
                   "args": {"name": format!("{} ({})", thread.name(), thread.role.label())}}),
        )?;
        let (slices, details) = thread_slices(a, *tid, from, to);
        events += slices.len() as u64;
        // Formatted in parallel, written in order.
        for batch in slices.chunks(SLICES_PER_JOB * JOBS_PER_BATCH) {
            let parts: Vec<Vec<u8>> = batch
                .par_chunks(SLICES_PER_JOB)
                .map(|job| {
                    let mut buf = Vec::with_capacity(job.len() * 100);
                    push_slices(&mut buf, job, &details, pid, *tid, m.start).map(|()| buf)
                })
                .collect::<serde_json::Result<_>>()
                .map_err(std::io::Error::other)?;
            for part in parts {
                out.write_all(&part)?;
            }
        }
    }
    let h = &m.header;
    let start_unix_ns = m.wall_clock_ns(m.start);
    write!(
        out,
        "\n],\"metadata\":{}}}\n",
        json!({"hud_version": h.hud_version, "host": h.host_name, "pid": pid,
               "executable": h.target.exe_path, "start_unix_ns": start_unix_ns,
               "duration_s": secs(m.duration()), "window_s": [
                   secs(from.saturating_sub(m.start)),
                   secs(to.saturating_sub(m.start))]})
    )?;
    out.flush()?;
    Ok(Written { events })
}
