//! CPU hotspots of the window: self and inclusive, by function or by line (f), overall or for
//! the pinned worker; or (p) the poll durations per task future type of `--poll-probes`; or (t)
//! the Tokio tasks seen, ordered by CPU, blocking or long polls (s).

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::{focused, location, ms, panel, seconds};
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::state::{Listing, Panel, State};
use crate::view::tui::theme::Theme;

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, s: &Snapshot, theme: Theme) {
    match state.listing {
        Listing::Hotspots => {}
        Listing::Polls => return draw_polls(frame, area, state, s, theme),
        Listing::Tasks => return draw_tasks(frame, area, state, s, theme),
    }
    let table_data = s.hotspot_table(state);
    // The name column: what the borders and the two figures (with their spacing) leave.
    let name_width = usize::from(area.width.saturating_sub(2 + 6 + 6 + 2));
    let rows: Vec<Row> = s
        .hotspots(state)
        .map(|h| {
            let k = &h.key;
            let (name, place) = match k.line {
                Some(line) => (
                    format!("{}  {}", location(k.file.as_deref(), line), k.function),
                    String::new(),
                ),
                None => (
                    k.function.to_string(),
                    k.file
                        .as_deref()
                        .map(|f| format!("  {}", crate::view::short_path(f)))
                        .unwrap_or_default(),
                ),
            };
            // A name too long is cut at a path boundary; its file goes first.
            let (name, place) = if name.chars().count() + place.chars().count() > name_width {
                (
                    crate::view::wording::cut_name(&name, name_width),
                    String::new(),
                )
            } else {
                (name, place)
            };
            Row::new(vec![
                Cell::from(format!("{:5.1}", h.self_pct)),
                Cell::from(format!("{:5.1}", h.inclusive_pct)),
                Cell::from(Line::from(vec![
                    Span::styled(
                        name,
                        if k.user {
                            theme.user_code()
                        } else {
                            ratatui::style::Style::new()
                        },
                    ),
                    Span::styled(place, theme.dim()),
                ])),
            ])
        })
        .collect();
    let whose = match state.pinned_worker {
        Some(tid) => format!("thread {tid}"),
        None => "all threads".into(),
    };
    let title = Line::from(vec![
        Span::styled(" Hotspots ", theme.title()),
        Span::raw(format!(
            "by {} · {whose} · {} samples ",
            if state.by_line { "line" } else { "function" },
            table_data.samples
        )),
    ]);
    let widths = [
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Fill(1),
    ];
    let header = vec![
        "self%",
        "incl%",
        if state.by_line {
            "file:line  function"
        } else {
            "function"
        },
    ];
    render(frame, area, state, theme, (title, rows), (&widths, header));
}

/// The poll durations per future type (`hud-record --poll-probes`) in the window, most total
/// poll time first: polls, rate, p50, p99, max, long polls.
fn draw_polls(frame: &mut Frame, area: Rect, state: &State, s: &Snapshot, theme: Theme) {
    let polls = s.findings.polls.as_ref();
    let time = |ns: u64| {
        if ns >= 1_000_000 {
            format!("{:.1} ms", ns as f64 / 1e6)
        } else {
            format!("{:.0} µs", ns as f64 / 1e3)
        }
    };
    let seconds = polls.map_or(1.0, |p| (p.measured_ns as f64 / 1e9).max(1e-9));
    let rows: Vec<Row> = polls
        .map(|p| p.kinds.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|k| {
            Row::new(vec![
                Cell::from(format!("{:>8}", k.polls)),
                Cell::from(format!("{:>7.0}", k.polls as f64 / seconds)),
                Cell::from(format!("{:>8}", time(k.p50_ns))),
                Cell::from(format!("{:>8}", time(k.p99_ns))),
                Cell::from(format!("{:>8}", time(k.max_ns))),
                Cell::from(format!("{:>5}", k.long_polls)),
                Cell::from(Span::styled(k.short.clone(), theme.user_code())),
            ])
        })
        .collect();
    let what = match polls {
        None => "none: record with --poll-probes · p: hotspots".to_string(),
        Some(p) if p.stopped.is_some() => "probing stopped (budget) · p: hotspots".to_string(),
        Some(p) => format!("{} future types · p: hotspots", p.kinds.len()),
    };
    let title = Line::from(vec![
        Span::styled(" Poll durations ", theme.title()),
        Span::raw(format!("{what} ")),
    ]);
    let widths = [
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    let header = vec![
        "   polls", "    /s", "     p50", "     p99", "     max", " long", "future",
    ];
    render(frame, area, state, theme, (title, rows), (&widths, header));
}

/// The tasks of the window (captures with task ids): on CPU, blocked, long polls, when seen,
/// kind; Enter opens one.
fn draw_tasks(frame: &mut Frame, area: Rect, state: &State, s: &Snapshot, theme: Theme) {
    let m = &s.analysis.model;
    let period = m.sample_period();
    let at = |t: u64| seconds(s, t);
    let tasks = s.tasks(state);
    let rows: Vec<Row> = tasks
        .iter()
        .map(|t| {
            let (kind, place) = match &t.kind {
                Some(k) => (
                    k.function.to_string(),
                    k.file
                        .as_deref()
                        .map(|f| format!("  {}", location(Some(f), k.line)))
                        .unwrap_or_default(),
                ),
                None => ("kind unknown".to_string(), String::new()),
            };
            Row::new(vec![
                Cell::from(format!("{:>7}", t.id)),
                Cell::from(format!("{:>8}", ms(t.on_cpu_ns(period)))),
                Cell::from(format!("{:>8}", ms(t.blocked_ns))),
                Cell::from(format!("{:>5}", t.long_polls)),
                Cell::from(format!(
                    "{:>5.1}–{:<5.1}",
                    at(t.first_seen),
                    at(t.last_seen)
                )),
                Cell::from(Line::from(vec![
                    // The runtime's own tasks (a worker's loop) dimmed: their CPU is the
                    // scheduler's.
                    Span::styled(
                        kind,
                        if t.kind
                            .as_deref()
                            .is_some_and(crate::analysis::frames::is_user)
                        {
                            theme.user_code()
                        } else {
                            theme.dim()
                        },
                    ),
                    Span::styled(place, theme.dim()),
                ])),
            ])
        })
        .collect();
    let what = match &m.task_source {
        Some(Ok(_)) => format!(
            "{} seen · by {} (s) · Enter: one task · t: hotspots",
            tasks.len(),
            state.task_order.label()
        ),
        Some(Err(why)) => format!("none: {why} · t: hotspots"),
        None => "none: recorded without task ids · t: hotspots".to_string(),
    };
    let title = Line::from(vec![
        Span::styled(" Tasks ", theme.title()),
        Span::raw(format!("{what} ")),
    ]);
    let widths = [
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(11),
        Constraint::Fill(1),
    ];
    let header = vec![
        "     id",
        " CPU ms",
        " blk ms",
        " long",
        "  seen (s)",
        "kind",
    ];
    render(frame, area, state, theme, (title, rows), (&widths, header));
}

/// The panel's table: `rows` under `header` in `widths`, the selection kept, titled `title`.
fn render(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    theme: Theme,
    (title, rows): (Line, Vec<Row>),
    (widths, header): (&[Constraint], Vec<&str>),
) {
    let is_focused = focused(state, Panel::Hotspots);
    let empty = rows.is_empty();
    let table = Table::new(rows, widths.iter().copied())
        .header(Row::new(header).style(theme.dim()))
        .block(panel(title, is_focused, theme))
        .row_highlight_style(if is_focused {
            theme.selected()
        } else {
            ratatui::style::Style::new()
        });
    let mut table_state =
        TableState::default().with_selected((!empty).then(|| state.row(Panel::Hotspots)));
    frame.render_stateful_widget(table, area, &mut table_state);
}
