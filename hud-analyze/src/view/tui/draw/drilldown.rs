//! One blocker in full: the call to move off the runtime and where the time went, what to do
//! about it, the source lines around the call (`--source-root` for a capture analyzed
//! elsewhere), its tasks, the call path, the durations as a histogram, when it happened (a
//! small timeline; the big one marks its episodes meanwhile) and the whole stack of its longest
//! episode. `y` copies the same text.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use super::{location, ms, overlay_block, seconds};
use crate::analysis::detect::Blocker;
use crate::analysis::diff::{BlockerDiff, BlockerSide, Change};
use crate::analysis::{advice, frames};
use crate::source_files::Excerpt;
use crate::symbols::Frame as CodeFrame;
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::theme::Theme;
use crate::view::wording;

/// Columns of the small "When" timeline.
const WHEN_COLUMNS: usize = 48;
/// Source lines shown either side of the call's line.
const SOURCE_AROUND: u32 = 3;

pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    s: &Snapshot,
    group: u32,
    scroll: u16,
    theme: Theme,
) {
    overlay_block(frame, area);
    let lines = lines(s, group, theme);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focused_border())
        .title(Span::styled(
            " Drilldown · y copy · Esc back ",
            theme.title(),
        ));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}

/// Tasks a blocker's drilldown lists (most time first).
const DRILLDOWN_TASKS: usize = 8;

/// The drilldown as plain text (what `y` writes).
pub fn text(s: &Snapshot, group: u32) -> String {
    let mut out = String::new();
    for line in lines(s, group, Theme { color: false }) {
        for span in line.spans {
            out.push_str(&span.content);
        }
        out.push('\n');
    }
    out
}

/// The blocker against the base capture (`--base`): its change, both sides per second, and per
/// kind of task when the episodes' tasks are known.
fn vs_base_lines(out: &mut Vec<Line<'static>>, d: &BlockerDiff, theme: Theme) {
    let side = |s: Option<&BlockerSide>| match s {
        Some(s) => format!(
            "{:.2}/s · {:.1} ms/s · p50 {}",
            s.per_second,
            s.ms_per_second,
            ms(s.p50_ns)
        ),
        None => "none".to_string(),
    };
    let label = |change: Change, beyond_noise: bool| {
        let marked = change.marked(beyond_noise);
        if marked.ends_with('?') {
            format!("{marked} (within noise)")
        } else {
            marked
        }
    };
    out.push(Line::from(vec![
        Span::styled(
            format!("vs base: {}", label(d.change, d.beyond_noise)),
            theme.highlight(),
        ),
        Span::raw(format!(
            "  {} → {}",
            side(d.base.as_ref()),
            side(d.new.as_ref())
        )),
    ]));
    if d.tasks.len() > 1 {
        for t in d.tasks.iter().take(DRILLDOWN_TASKS) {
            out.push(Line::raw(format!(
                "  in task {}: {}  {} → {}",
                t.kind.as_deref().unwrap_or("(not known)"),
                label(t.change, t.beyond_noise),
                side(t.base.as_ref()),
                side(t.new.as_ref())
            )));
        }
    }
}

fn lines(s: &Snapshot, group: u32, theme: Theme) -> Vec<Line<'static>> {
    let Some(b) = s.findings.blockers.iter().find(|b| b.group == group) else {
        return vec![Line::raw("this blocker has no episode in the window")];
    };
    let m = &s.analysis.model;
    let mut out: Vec<Line<'static>> = Vec::new();
    let at = |f: &CodeFrame| location(f.file.as_deref(), f.line);
    let mut head = vec![Span::styled(
        format!("[{}] ", b.kind.name()),
        theme.blocked(),
    )];
    match wording::headline(
        b.call.site.as_ref().map(|f| (&*f.function, at(f))),
        b.call.callee.as_ref().map(|f| (&*f.function, at(f))),
        b.call.in_dependency,
    ) {
        Some(h) => {
            head.push(Span::styled(h.main, theme.title()));
            head.push(Span::raw(h.rest));
            if let Some(note) = h.note {
                head.push(Span::styled(format!("  ({note})"), theme.dim()));
            }
        }
        None => {
            head.push(Span::styled(b.blame.function.to_string(), theme.title()));
            head.push(Span::raw(format!("  {}", at(&b.blame))));
        }
    }
    out.push(Line::from(head));
    if let Some(leaf) = wording::leaf_sentence(
        b.kind,
        b.call.site.as_ref().map(|f| (&*f.function, f.line)),
        b.leaf
            .as_ref()
            .map(|(f, share)| ((&*f.function, f.line), at(f), *share)),
        b.syscall.as_deref(),
    ) {
        out.push(Line::raw(leaf));
    }
    if let Some(t) = &b.spawned {
        out.push(Line::raw(format!(
            "in task {}  {}",
            t.function,
            location(t.file.as_deref(), t.line)
        )));
    }
    let is_blame =
        |t: &&crate::symbols::Frame| t.function == b.blame.function && t.line == b.blame.line;
    if let Some(t) = b.task.as_ref().filter(|t| {
        Some(*t) != b.spawned.as_ref() && Some(*t) != b.call.site.as_ref() && !is_blame(t)
    }) {
        out.push(Line::raw(format!(
            "inside {}  {}",
            t.function,
            location(t.file.as_deref(), t.line)
        )));
    }
    out.push(Line::raw(format!(
        "{}× · total {} ms · p50 {} · p99 {} · max {} ms · threads {:?}",
        b.count(),
        ms(b.total()),
        ms(b.quantile(0.5)),
        ms(b.quantile(0.99)),
        ms(b.max()),
        b.threads()
    )));
    let unproven = b.unproven();
    if unproven > 0 {
        out.push(Line::from(Span::styled(
            format!(
                "{unproven} of these long polls are upper bounds: without task ids, polls of \
                 this code with no I/O poll of the runtime between them read as one"
            ),
            theme.dim(),
        )));
    }
    if b.forgotten.count > 0 {
        out.push(Line::from(Span::styled(
            format!(
                "{} earlier episodes are in the totals only (older than the live window); \
                 p50, p99, threads and times are of the {} held in detail",
                b.forgotten.count,
                b.episodes.len()
            ),
            theme.dim(),
        )));
    }
    if let Some(d) = s.vs_base.as_ref().and_then(|d| d.of_group(b.group)) {
        vs_base_lines(&mut out, d, theme);
    }
    let advice = advice::advise(b, m);
    out.push(Line::raw(""));
    out.push(Line::from(vec![
        Span::styled("Fix", theme.title()),
        Span::raw(
            advice
                .at
                .as_ref()
                .map_or(String::new(), |f| format!(" at {}", at(f))),
        ),
    ]));
    out.push(Line::raw(advice.text));
    if let Some(f) = advice.at.as_ref().filter(|f| f.file.is_some()) {
        out.push(Line::raw(""));
        source_lines(&mut out, s, f, theme);
    }
    let tasks = b.tasks();
    if !tasks.is_empty() {
        out.push(Line::raw(""));
        out.push(Line::from(Span::styled(
            format!("Tasks ({})", tasks.len()),
            theme.title(),
        )));
        for (id, n, total) in tasks.iter().take(DRILLDOWN_TASKS) {
            out.push(Line::raw(format!(
                "  task id {id:<8} {n}× · {} ms",
                ms(*total)
            )));
        }
        if tasks.len() > DRILLDOWN_TASKS {
            out.push(Line::from(Span::styled(
                format!("  … {} more tasks", tasks.len() - DRILLDOWN_TASKS),
                theme.dim(),
            )));
        }
    }
    out.push(Line::raw(""));
    out.push(Line::from(Span::styled(
        "Call path (where the time went, out to the call)",
        theme.title(),
    )));
    let example = s.analysis.symbols.stack(m, b.example);
    out.extend(b.call_path(&example).iter().map(|f| frame_line(f, theme)));
    out.push(Line::raw(""));
    out.push(Line::from(Span::styled("Durations", theme.title())));
    let histogram = b.histogram();
    let most = histogram.iter().map(|h| h.1).max().unwrap_or(1).max(1);
    for (upper, n) in histogram {
        const MS: u64 = 1_000_000;
        let lower = if upper == MS { 0 } else { upper / 2 };
        let label = if upper == u64::MAX {
            "longer".to_string()
        } else if lower == 0 {
            format!("< {} ms", ms(upper))
        } else {
            format!("{}–{} ms", ms(lower), ms(upper))
        };
        let bar = "█".repeat((n * 40).div_ceil(most));
        out.push(Line::from(vec![
            Span::raw(format!("  {label:>14} ")),
            Span::styled(bar, theme.blocked()),
            Span::raw(format!(" {n}")),
        ]));
    }
    out.push(Line::raw(""));
    out.push(when(s, b, theme));
    out.push(Line::raw(""));
    out.push(Line::from(Span::styled(
        "Stack of the longest episode (innermost first)",
        theme.title(),
    )));
    out.extend(
        s.analysis
            .symbols
            .frames(m, b.example)
            .map(|f| frame_line(f, theme)),
    );
    out
}

/// A frame as the drilldown lists it: its marker, its name (the program's code emphasized),
/// its file:line.
fn frame_line(f: &CodeFrame, theme: Theme) -> Line<'static> {
    let style = if frames::is_user(f) {
        theme.user_code()
    } else {
        Style::new()
    };
    Line::from(vec![
        Span::raw(format!(
            "  {}",
            wording::frame_marker(f.inlined, f.recovered)
        )),
        Span::styled(f.function.to_string(), style),
        Span::styled(
            format!("  {}", location(f.file.as_deref(), f.line)),
            theme.dim(),
        ),
    ])
}

/// The lines around the call's line, from the target's source on this machine, or why not.
fn source_lines(out: &mut Vec<Line<'static>>, s: &Snapshot, f: &CodeFrame, theme: Theme) {
    let Some(file) = f.file.as_deref() else {
        return;
    };
    let m = &s.analysis.model;
    let recorded_at = m.wall_clock_ns(m.header.start_ns);
    match s
        .analysis
        .options
        .sources
        .excerpt(file, f.line, SOURCE_AROUND, recorded_at)
    {
        Excerpt::Found {
            path,
            lines,
            changed,
        } => {
            out.push(Line::from(vec![
                Span::styled("Source ", theme.title()),
                Span::styled(path.display().to_string(), theme.dim()),
            ]));
            if let Some(why) = changed {
                out.push(Line::from(Span::styled(
                    format!("  ({why})"),
                    theme.blocked(),
                )));
            }
            for (n, text) in lines {
                let here = n == f.line;
                let mark = if here { "▶" } else { " " };
                let number = Span::styled(format!(" {mark}{n:>5} │ "), theme.dim());
                let code = if here {
                    Span::styled(text, theme.title())
                } else {
                    Span::raw(text)
                };
                out.push(Line::from(vec![number, code]));
            }
        }
        Excerpt::Missing { recorded } => out.push(Line::from(Span::styled(
            format!(
                "Source: {recorded} is not on this machine (tui --source-root DIR finds a \
                 checkout of it anywhere)"
            ),
            theme.dim(),
        ))),
    }
}

/// When the blocker's episodes began, as a small timeline of the recording (the big one marks
/// them too).
fn when(s: &Snapshot, b: &Blocker, theme: Theme) -> Line<'static> {
    const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let m = &s.analysis.model;
    let (from, to) = (m.start, m.end.max(m.start + 1));
    let mut columns = [0usize; WHEN_COLUMNS];
    for e in &b.episodes {
        let at = e.start.clamp(from, to - 1) - from;
        let i = (u128::from(at) * WHEN_COLUMNS as u128 / u128::from(to - from)) as usize;
        columns[i.min(WHEN_COLUMNS - 1)] += 1;
    }
    let most = columns.iter().copied().max().unwrap_or(0).max(1);
    let bars: String = columns
        .iter()
        .map(|&n| {
            if n == 0 {
                '·'
            } else {
                LEVELS[(n * 8).div_ceil(most).clamp(1, 8)]
            }
        })
        .collect();
    Line::from(vec![
        Span::styled("When ", theme.title()),
        Span::raw(format!("{:.1} s ", seconds(s, from))),
        Span::styled(bars, theme.blocked()),
        Span::raw(format!(
            " {:.1} s  ({} episodes held, first at {:.2} s; marked on the timeline)",
            seconds(s, to),
            b.episodes.len(),
            seconds(s, b.first())
        )),
    ])
}
