//! The blockers of the window: kind, the call to move off the runtime, its file:line, count,
//! total, p99, max.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::{focused, location, ms, panel};
use crate::analysis::diff::Change;
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::state::{Panel, State};
use crate::view::tui::theme::Theme;

/// The fixed columns' widths and the spaces between the seven columns.
const FIXED: u16 = 10 + 5 + 8 + 6 + 6 + 6;

/// `text` in at most `width` columns, keeping its end (a file:line's line number matters most).
fn tail(text: String, width: usize) -> String {
    let chars = text.chars().count();
    if chars <= width || width < 2 {
        return text;
    }
    let kept: String = text.chars().skip(chars - (width - 1)).collect();
    format!("…{kept}")
}

/// `text` in at most `width` columns, keeping its start.
fn head(text: String, width: usize) -> String {
    if text.chars().count() <= width || width < 2 {
        return text;
    }
    let kept: String = text.chars().take(width - 1).collect();
    format!("{kept}…")
}

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, s: &Snapshot, theme: Theme) {
    // file:line gets two fifths of what the fixed columns leave (see the constraints).
    let file_width = (area.width.saturating_sub(2 + FIXED) as usize * 2) / 5;
    let call_width = (area.width.saturating_sub(2 + FIXED) as usize * 3) / 5;
    let rows: Vec<Row> = s
        .blockers(state)
        .map(|b| {
            // Where the call is made: its site, else the called frame, else the blame.
            let at = b
                .call
                .site
                .as_ref()
                .or(b.call.callee.as_ref())
                .unwrap_or(&b.blame);
            let mut cells = vec![
                Cell::from(Span::styled(b.kind.name(), theme.blocked())),
                // The callee first: a label too long loses its end.
                Cell::from(head(crate::view::wording::call_label(b), call_width)),
                match at.file.as_deref() {
                    Some(file) => Cell::from(tail(location(Some(file), at.line), file_width)),
                    None => Cell::from(Span::styled("(no user frame)", theme.dim())),
                },
                Cell::from(format!("{}", b.count())),
                Cell::from(ms(b.total())),
                // Forgotten episodes are totals only: no quantile without one held in detail.
                Cell::from(if b.episodes.is_empty() {
                    "–".to_string()
                } else {
                    ms(b.quantile(0.99))
                }),
                Cell::from(ms(b.max())),
            ];
            // Against the base (`--base`): what became of it, `?` within noise.
            if let Some(d) = &s.vs_base {
                cells.push(match d.of_group(b.group) {
                    Some(d) => {
                        let text = d.change.marked(d.beyond_noise);
                        let style = match (d.change, d.beyond_noise) {
                            (Change::New | Change::Grown, true) => theme.blocked(),
                            _ => theme.dim(),
                        };
                        Cell::from(Span::styled(text, style))
                    }
                    None => Cell::from(""),
                });
            }
            Row::new(cells)
        })
        .collect();
    let count = rows.len();
    let is_focused = focused(state, Panel::Blockers);
    let mut title = Line::from(vec![
        Span::styled(" Blockers ", theme.title()),
        Span::raw(format!("({count}) · Enter: drill down ")),
    ]);
    if let Some(d) = &s.vs_base {
        let gone = d.changed(Change::Gone).count();
        if gone > 0 {
            title.spans.push(Span::styled(
                format!("· {gone} gone since the base "),
                theme.dim(),
            ));
        }
    }
    let empty = count == 0;
    // The function matters most: it and file:line share what the numbers leave.
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Fill(3),
        Constraint::Fill(2),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let mut header = vec![
        "kind",
        "call (to move off the runtime)",
        "file:line",
        "count",
        "total ms",
        "p99",
        "max",
    ];
    if s.vs_base.is_some() {
        widths.push(Constraint::Length(8));
        header.push("vs base");
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.dim()))
        .block(panel(title, is_focused, theme))
        .row_highlight_style(if is_focused {
            theme.selected()
        } else {
            theme.title()
        });
    let mut table_state =
        TableState::default().with_selected((!empty).then(|| state.row(Panel::Blockers)));
    frame.render_stateful_widget(table, area, &mut table_state);
    if empty {
        let inner = area.inner(ratatui::layout::Margin::new(2, 2));
        let runtime = s
            .analysis
            .model
            .threads
            .values()
            .any(|t| t.role.runs_tasks());
        let verdict = s.findings.verdict();
        let text = if verdict.unjudged.is_some() {
            // The status line is cut at the screen's width: what could not be judged, and the
            // fix (first: the panel may be short), go here.
            format!(
                "{}. Fix: {}. ({})",
                crate::view::wording::unjudged_headline(&s.findings.coverage),
                crate::view::wording::unjudged_fix(&s.analysis),
                crate::view::wording::unjudged_phrase(&s.analysis, &s.findings.coverage)
            )
        } else if !runtime {
            "no Tokio runtime thread found: nothing to judge".into()
        } else if state.filter.is_empty() {
            "nothing blocked a runtime thread in this window".into()
        } else {
            "no blocker matches the filter".into()
        };
        frame.render_widget(
            ratatui::widgets::Paragraph::new(Span::styled(text, theme.dim()))
                .wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn long_locations_keep_their_line_number() {
        assert_eq!(tail("app/src/main.rs:101".into(), 12), "…main.rs:101");
        assert_eq!(tail("main.rs:1".into(), 12), "main.rs:1");
    }
}
