//! A flame graph (merged, alphabetical) or a flame chart (`--flame-chart`: time order) as SVG,
//! drawn by inferno from the folded stacks.

use std::io::Write;

use rayon::prelude::*;

use super::folded::{lines, stack_line};
use super::{ExportOptions, Written};
use crate::analysis::profile::{events_in_order, Weight};
use crate::analysis::Analysis;

/// A folded line with its weight, as inferno reads it.
fn with_value(mut line: String, value: u64) -> String {
    line.push(' ');
    line.push_str(itoa::Buffer::new().format(value));
    line
}

pub fn write(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    let w = options.window;
    let (text, events): (Vec<String>, u64) = if options.flame_chart {
        let events = events_in_order(
            &a.model,
            options.weight,
            options.threads.as_deref(),
            w.from,
            w.to,
        );
        let n = events.len() as u64;
        let lines = events
            .par_iter()
            .map_init(
                super::folded::PlumbingCache::default,
                |cache, &(_, stack, tid, weight, task)| {
                    let value = super::folded_value(options.weight, weight);
                    (value > 0).then(|| {
                        with_value(stack_line(a, options, (tid, task, stack), cache), value)
                    })
                },
            )
            .flatten()
            .collect();
        (lines, n)
    } else {
        let (lines, n) = lines(a, options);
        (
            lines
                .into_iter()
                .map(|(line, value)| with_value(line, value))
                .collect(),
            n,
        )
    };
    let h = &a.model.header;
    let exe = super::executable_name(a);
    let what = match options.weight {
        Weight::Cpu => "CPU samples",
        Weight::Blocked => "time blocked off CPU",
        Weight::Polls => "polls",
    };
    if text.is_empty() {
        // inferno refuses an empty profile; an empty window is still a valid, empty picture.
        write!(
            out,
            "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"600\" height=\"60\"><text x=\"10\" y=\"30\">hud: no {what} in this window \
             </text></svg>\n"
        )?;
        return Ok(Written { events: 0 });
    }
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!(
        "hud · pid {} {} · {what}{}",
        h.target.pid,
        exe,
        if options.flame_chart {
            " · time order"
        } else {
            ""
        }
    );
    opts.subtitle = Some(subtitle(a, options));
    opts.count_name = match options.weight {
        Weight::Cpu => "samples".into(),
        Weight::Blocked => "µs".into(),
        Weight::Polls => "polls".into(),
    };
    opts.flame_chart = options.flame_chart;
    inferno::flamegraph::from_lines(&mut opts, text.iter().map(String::as_str), out)
        .map_err(std::io::Error::other)?;
    Ok(Written { events })
}

/// What a flame graph shows, under its title: the window, the capture, and whether the
/// runtime's plumbing is folded.
fn subtitle(a: &Analysis, options: &ExportOptions) -> String {
    let m = &a.model;
    let (from, to) = options.window.clip(m);
    let secs = |t: u64| t.saturating_sub(m.start) as f64 / 1e9;
    let mut parts = vec![format!(
        "{:.2}–{:.2} s of {:.2} s",
        secs(from),
        secs(to),
        secs(m.end)
    )];
    if let Some(name) = &options.capture {
        parts.push(name.clone());
    }
    if let Some(threads) = &options.threads {
        parts.push(format!("threads {threads:?}"));
    }
    parts.push(if options.all_frames {
        "all frames".into()
    } else {
        "runtime plumbing folded into [tokio worker], [current_thread runtime], [blocking pool] \
         (--all-frames shows it)"
            .into()
    });
    parts.join(" · ")
}

/// Which capture's stacks a differential flame graph draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffShape {
    /// The new capture's stacks, red where they grew against the base, blue where they shrank.
    New,
    /// The base's stacks, with the same colours: what vanished shows (blue, wide).
    Base,
}

/// A differential flame graph of `new` against `base` (each with its own window and weight),
/// normalized so the two totals match: colour shows where the share moved, not the load.
pub fn write_differential(
    (base, base_options): (&Analysis, &ExportOptions),
    (new, new_options): (&Analysis, &ExportOptions),
    shape: DiffShape,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    let folded = |a: &Analysis, o: &ExportOptions| -> (Vec<u8>, u64) {
        let (lines, n) = lines(a, o);
        let mut text = Vec::new();
        for (line, value) in lines {
            text.extend_from_slice(with_value(line, value).as_bytes());
            text.push(b'\n');
        }
        (text, n)
    };
    let ((before, n1), (after, n2)) = (folded(base, base_options), folded(new, new_options));
    let (first, second) = match shape {
        DiffShape::New => (&before, &after),
        DiffShape::Base => (&after, &before),
    };
    let mut merged = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options {
            normalize: true,
            strip_hex: false,
        },
        &first[..],
        &second[..],
        &mut merged,
    )?;
    let what = match new_options.weight {
        Weight::Cpu => "CPU samples",
        Weight::Blocked => "time blocked off CPU",
        Weight::Polls => "polls",
    };
    let text = String::from_utf8_lossy(&merged);
    if text.trim().is_empty() {
        write!(
            out,
            "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"600\" height=\"60\"><text x=\"10\" y=\"30\">hud diff: no {what} on either \
             side</text></svg>\n"
        )?;
        return Ok(Written { events: 0 });
    }
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = format!(
        "hud diff · {what} · {} → {}",
        super::executable_name(base),
        super::executable_name(new)
    );
    opts.subtitle = Some(
        match shape {
            DiffShape::New => {
                "the new capture's stacks: red grew, blue shrank (shares, normalized)"
            }
            DiffShape::Base => {
                "the base's stacks: red grew, blue shrank (shares, normalized); wide blue vanished"
            }
        }
        .into(),
    );
    opts.count_name = match new_options.weight {
        Weight::Cpu => "samples".into(),
        Weight::Blocked => "µs".into(),
        Weight::Polls => "polls".into(),
    };
    // Drawn on the base, the "after" column is the base: swap the hues back.
    opts.negate_differentials = shape == DiffShape::Base;
    inferno::flamegraph::from_lines(&mut opts, text.lines(), out).map_err(std::io::Error::other)?;
    Ok(Written { events: n1 + n2 })
}
