//! The keys, on `?`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::overlay_block;
use crate::view::tui::theme::Theme;

const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    (
        "Esc",
        "back: close, clear the filter, then the window, then the pinned worker",
    ),
    ("Tab, Shift-Tab", "next / previous panel"),
    (
        "↑ ↓, j k",
        "select a row (PgUp PgDn, g G: faster, first, last)",
    ),
    (
        "Enter",
        "blockers: drill down · workers: pin that worker's hotspots · tasks: that task",
    ),
    (
        "/",
        "filter blockers and hotspots by function or file; n N: next / previous row",
    ),
    ("f", "hotspots by function or by file:line"),
    (
        "p",
        "hotspots panel: poll durations per future type (--poll-probes)",
    ),
    (
        "t",
        "hotspots panel: the Tokio tasks seen; s: by CPU, blocked time, long polls",
    ),
    ("← →, h l", "timeline: move the cursor (the view pans)"),
    ("+ - =", "timeline: zoom in, out, whole recording"),
    (
        "[ ]",
        "set the window's start / end at the cursor: every panel shows that window",
    ),
    ("Shift ← →, H L", "grow the window from the cursor"),
    ("y", "drilldown: copy it to a text file"),
    (
        "Space",
        "live: pause the screen (the recording goes on); again to catch up",
    ),
    (
        "a",
        "live: the whole session's totals, or the window of detail (--window)",
    ),
    ("?", "this help"),
];

pub(super) fn draw(frame: &mut Frame, area: Rect, theme: Theme) {
    overlay_block(frame, area);
    let mut lines = vec![
        Line::from(Span::styled("Keys", theme.title())),
        Line::raw(""),
    ];
    for (k, what) in KEYS {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:>16}  "), theme.key()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled(
        "Status: CAUTION when a blocker or a starved CPU is in the window (detection, not CPU %).",
        theme.dim(),
    )));
    lines.push(Line::from(Span::styled(
        "Timeline: bar height = time on CPU; ▒ waiting for a CPU; letters = blocker episodes:",
        theme.dim(),
    )));
    let letters: Vec<String> = crate::analysis::frames::Kind::ALL
        .iter()
        .map(|k| format!("{} {}", super::timeline::letter(*k), k.name()))
        .collect();
    lines.push(Line::from(Span::styled(
        format!("  {}.", letters.join(", ")),
        theme.dim(),
    )));
    lines.push(Line::from(Span::styled(
        "Workers (w/c): after a thread id, w = a multi-thread runtime's worker, c = a \
         current_thread runtime's thread.",
        theme.dim(),
    )));
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Help ")),
        area,
    );
}
