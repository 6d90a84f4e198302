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
            .filter_map(|&(_, stack, tid, weight, task)| {
                let value = super::folded_value(options.weight, weight);
                (value > 0).then(|| with_value(stack_line(a, options, tid, task, stack), value))
            })
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
