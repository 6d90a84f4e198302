//! Drawing: `draw(frame, state, view)` paints one frame from the state and the newest snapshot,
//! and changes nothing. A file per panel; overlays (help, drilldown) on top.

mod blockers;
pub mod drilldown;
pub mod flame;
mod help;
mod hotspots;
mod status;
mod task;
mod timeline;
mod workers;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Wrap};
use ratatui::Frame;

use super::snapshot::Snapshot;
use super::state::{Overlay, Panel, State};
use super::theme::Theme;
use crate::observer::Phase;
use crate::view::units::secs;

/// The smallest terminal the cockpit draws in.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Lanes shown at most in the timeline (more runtime threads: the busiest are kept... in tid
/// order, scrolled with the workers panel's selection).
const MAX_LANES: usize = 12;

/// What there is to draw besides the state.
pub struct View<'a> {
    /// The newest snapshot, once the analysis has published one.
    pub snapshot: Option<&'a Snapshot>,
    /// Loading progress: the phase, and (done, total) when counted.
    pub progress: (Option<Phase>, Option<(u64, u64)>),
    /// Whether findings for a newer window are being computed.
    pub updating: bool,
    pub theme: Theme,
    /// The capture's name, for the loading screen.
    pub source: &'a str,
    /// The flame graph tree of the overlay, when it shows one.
    pub flame: Option<&'a crate::view::tui::flame::FlameTree>,
}

/// Paints one frame.
pub fn draw(frame: &mut Frame, state: &State, view: &View) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        too_small(frame, area);
        return;
    }
    let [top, body, hints] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    status::draw(frame, top, state, view);
    hints_line(frame, hints, state, view.theme);
    let Some(snapshot) = view.snapshot else {
        loading(frame, body, view);
        return;
    };
    let lanes = snapshot.runtime_threads().len().clamp(1, MAX_LANES) as u16;
    // The blockers take the rows they need (header, borders, one spare), up to half the rest.
    let blockers_rows = snapshot.blockers(state).count() as u16 + 4;
    let rest = body.height.saturating_sub(lanes + 3);
    let [lists, middle, time] = Layout::vertical([
        Constraint::Length(blockers_rows.clamp(6, (rest / 2).max(6))),
        Constraint::Min(6),
        Constraint::Length(lanes + 3),
    ])
    .areas(body);
    let [hot, work] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(middle);
    blockers::draw(frame, lists, state, snapshot, view.theme);
    hotspots::draw(frame, hot, state, snapshot, view.theme);
    workers::draw(frame, work, state, snapshot, view.theme);
    timeline::draw(frame, time, state, snapshot, view.theme);
    match state.overlay {
        Overlay::None => {}
        Overlay::Help => help::draw(frame, centered(area, 70, 80), view.theme),
        Overlay::Drilldown { group, scroll } => drilldown::draw(
            frame,
            centered(area, 92, 86),
            snapshot,
            group,
            scroll,
            view.theme,
        ),
        Overlay::Flame { zoom, selected, .. } => {
            if let Some(tree) = view.flame {
                flame::draw(
                    frame,
                    centered(area, 98, 94),
                    snapshot,
                    tree,
                    (zoom, selected),
                    &state.filter,
                    view.theme,
                );
            }
        }
        Overlay::Task { id, scroll } => task::draw(
            frame,
            centered(area, 80, 60),
            snapshot,
            id,
            scroll,
            view.theme,
        ),
    }
}

/// A bordered block whose border shows whether it has the focus.
fn panel<'a>(title: Line<'a>, focused: bool, theme: Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused {
            theme.focused_border()
        } else {
            theme.border()
        })
        .title(title)
}

fn focused(state: &State, panel: Panel) -> bool {
    state.focus == panel && state.overlay == Overlay::None
}

/// A rectangle of `pct_w` × `pct_h` percent in the middle of `area`.
fn centered(area: Rect, pct_w: u16, pct_h: u16) -> Rect {
    let [_, mid, _] = Layout::vertical([
        Constraint::Percentage((100 - pct_h) / 2),
        Constraint::Percentage(pct_h),
        Constraint::Percentage((100 - pct_h) / 2),
    ])
    .areas(area);
    let [_, mid, _] = Layout::horizontal([
        Constraint::Percentage((100 - pct_w) / 2),
        Constraint::Percentage(pct_w),
        Constraint::Percentage((100 - pct_w) / 2),
    ])
    .areas(mid);
    mid
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "hud needs a terminal of at least {}×{}; this one is {}×{}. Enlarge it, or press q.",
        MIN_SIZE.0, MIN_SIZE.1, area.width, area.height
    );
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
}

fn loading(frame: &mut Frame, area: Rect, view: &View) {
    let [_, line, gauge, _] = Layout::vertical([
        Constraint::Percentage(40),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    let phase = view
        .progress
        .0
        .map_or_else(|| "opening".to_string(), |p| p.to_string());
    let text = format!("{} · {phase}…", view.source);
    frame.render_widget(Paragraph::new(text).centered(), line);
    if let Some((done, total)) = view.progress.1 {
        let ratio = if total == 0 {
            0.0
        } else {
            done as f64 / total as f64
        };
        let [_, bar, _] = Layout::horizontal([
            Constraint::Percentage(20),
            Constraint::Percentage(60),
            Constraint::Percentage(20),
        ])
        .areas(gauge);
        frame.render_widget(
            Gauge::default()
                .ratio(ratio.clamp(0.0, 1.0))
                .label(format!("{done} / {total}"))
                .gauge_style(view.theme.on_cpu()),
            bar,
        );
    }
}

/// The key hints, or the filter being typed.
fn hints_line(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let mut spans: Vec<Span> = Vec::new();
    if state.editing {
        spans.push(Span::styled("filter: ", theme.key()));
        spans.push(Span::raw(format!("{}▏", state.filter)));
        spans.push(Span::styled("  Enter keep · Esc clear", theme.dim()));
    } else {
        let hints: &[(&str, &str)] = match state.overlay {
            Overlay::Drilldown { .. } => &[
                ("↑↓", "scroll"),
                ("F", "flame graph"),
                ("y", "copy"),
                ("Esc", "back"),
                ("q", "quit"),
            ],
            Overlay::Flame { .. } => &[
                ("←→↑↓", "select"),
                ("Enter", "zoom"),
                ("⌫", "zoom out"),
                ("c", "cpu/blocked"),
                ("w", "thread"),
                ("/", "search"),
                ("Esc", "back"),
            ],
            Overlay::Task { .. } => &[("↑↓", "scroll"), ("Esc", "back"), ("q", "quit")],
            Overlay::Help => &[("Esc", "back")],
            Overlay::None if state.focus == Panel::Timeline => &[
                ("q", "quit"),
                ("Tab", "panel"),
                ("←→", "cursor"),
                ("+ - =", "zoom"),
                ("[ ]", "window edges"),
                ("⇧←→", "grow window"),
                ("Esc", "whole recording"),
                ("?", "help"),
            ],
            Overlay::None => &[
                ("q", "quit"),
                ("Tab", "panel"),
                ("↑↓", "select"),
                ("Enter", "drill down"),
                ("/", "filter"),
                ("f", "fn/line"),
                ("t", "tasks"),
                ("F", "flame"),
                ("+ -", "zoom"),
                ("[ ]", "window"),
                ("?", "help"),
            ],
        };
        for (k, what) in hints {
            spans.push(Span::styled(*k, theme.key()));
            spans.push(Span::raw(format!(" {what}  ")));
        }
        if !state.filter.is_empty() {
            spans.push(Span::styled(
                format!("filter \"{}\"", state.filter),
                theme.highlight(),
            ));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Milliseconds, short.
fn ms(ns: u64) -> String {
    crate::view::units::ms_short(ns)
}

/// A file:line, shortened (empty without a file).
fn location(file: Option<&str>, line: u32) -> String {
    crate::view::file_line(file, line).unwrap_or_default()
}

/// Seconds since the recording's start.
/// Seconds since the recording started (a live model forgets its oldest detail, so its own
/// start moves; times stay relative to the recording's).
fn seconds(snapshot: &Snapshot, t: u64) -> f64 {
    secs(t.saturating_sub(snapshot.analysis.model.header.start_ns))
}

/// `Clear` then render: an overlay hides what is under it.
fn overlay_block(frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
}
