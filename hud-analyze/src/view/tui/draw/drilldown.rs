//! One blocker in full: where, in which task, the user call path, the whole stack of its longest
//! episode with inline frames, the durations as a histogram, and when it happened (the timeline
//! marks its episodes meanwhile). `y` copies the same text.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use super::{location, ms, overlay_block, seconds};
use crate::analysis::frames;
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::theme::Theme;

/// Episode start times listed before "…".
const TIMES_SHOWN: usize = 24;

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

fn lines(s: &Snapshot, group: u32, theme: Theme) -> Vec<Line<'static>> {
    let Some(b) = s.findings.blockers.iter().find(|b| b.group == group) else {
        return vec![Line::raw("this blocker has no episode in the window")];
    };
    let m = &s.analysis.model;
    let mut out: Vec<Line<'static>> = Vec::new();
    out.push(Line::from(vec![
        Span::styled(format!("[{}] ", b.kind.name()), theme.blocked()),
        Span::styled(b.blame.function.to_string(), theme.title()),
        Span::raw(format!(
            "  {}",
            location(b.blame.file.as_deref(), b.blame.line)
        )),
    ]));
    if let Some(t) = &b.spawned {
        out.push(Line::raw(format!(
            "in task {}  {}",
            t.function,
            location(t.file.as_deref(), t.line)
        )));
    }
    let is_blame =
        |t: &&crate::symbols::Frame| t.function == b.blame.function && t.line == b.blame.line;
    if let Some(t) = b
        .task
        .as_ref()
        .filter(|t| Some(*t) != b.spawned.as_ref() && !is_blame(t))
    {
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
                "{unproven} of these long polls are upper bounds: without task ids, back-to-back \
                 polls of this code read as one"
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
    out.push(Line::from(Span::styled("User call path", theme.title())));
    for f in &b.user_path {
        out.push(Line::raw(format!(
            "  {}  {}",
            f.function,
            location(f.file.as_deref(), f.line)
        )));
    }
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
    let mut starts: Vec<u64> = b.episodes.iter().map(|e| e.start).collect();
    starts.sort_unstable();
    let shown: Vec<String> = starts
        .iter()
        .take(TIMES_SHOWN)
        .map(|t| format!("{:.2}", seconds(s, *t)))
        .collect();
    out.push(Line::from(vec![
        Span::styled("When (s) ", theme.title()),
        Span::raw(format!(
            "{}{}   (marked on the timeline)",
            shown.join(" "),
            if starts.len() > TIMES_SHOWN {
                " …"
            } else {
                ""
            }
        )),
    ]));
    out.push(Line::raw(""));
    out.push(Line::from(Span::styled(
        "Stack of the longest episode (innermost first)",
        theme.title(),
    )));
    for f in s.analysis.symbols.frames(m, b.example) {
        let style = if frames::is_user(f) {
            theme.user_code()
        } else {
            Style::new()
        };
        out.push(Line::from(vec![
            Span::raw(format!(
                "  {}",
                crate::view::wording::frame_marker(f.inlined, f.recovered)
            )),
            Span::styled(f.function.to_string(), style),
            Span::styled(
                format!("  {}", location(f.file.as_deref(), f.line)),
                theme.dim(),
            ),
        ]));
    }
    out
}
