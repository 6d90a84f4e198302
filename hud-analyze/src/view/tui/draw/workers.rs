//! A bar per runtime thread: running, blocked, waiting for a CPU, idle; the blocking pool in one
//! line. Enter pins a worker's hotspots.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState};
use ratatui::Frame;

use super::{focused, panel};
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::state::{Panel, State};
use crate::view::tui::theme::Theme;
use crate::view::units::pct;

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, s: &Snapshot, theme: Theme) {
    let f = &s.findings;
    let m = &s.analysis.model;
    let length = f.window.length_in(m).max(1) as f64;
    // "*  11730 " then the bar, then " 14% 12%  3%" (run, blocked, waiting: the title says so).
    let label_width = 9usize;
    let numbers_width = 14usize;
    let bar_width = (area.width as usize)
        .saturating_sub(label_width + numbers_width + 3)
        .max(4);
    let mut items: Vec<ListItem> = Vec::new();
    for tid in s.runtime_threads() {
        let Some(t) = f.threads.iter().find(|t| t.tid == tid) else {
            continue;
        };
        // Blocking as the Threads table counts it: off CPU in a blocker, and long polls (on
        // CPU, so taken out of running).
        let long_polls = t.blocking_ns.saturating_sub(t.blocked_off_cpu_ns);
        let running = t.on_cpu_ns.saturating_sub(long_polls) as f64 / length;
        let blocked = t.blocking_ns as f64 / length;
        let waiting = t.runnable_wait_ns() as f64 / length;
        let cells = |share: f64| ((share * bar_width as f64).round() as usize).min(bar_width);
        let r = cells(running);
        let b = cells(blocked).min(bar_width - r);
        let w = cells(waiting).min(bar_width - r - b);
        let idle = bar_width - r - b - w;
        let pin = if state.pinned_worker == Some(tid) {
            "*"
        } else {
            " "
        };
        // The role as detected: w a multi-thread worker, c a current_thread runtime thread.
        let role = if t.role == crate::model::Role::CurrentThread {
            'c'
        } else {
            'w'
        };
        items.push(ListItem::new(Line::from(vec![
            Span::raw(format!("{pin}{tid:>6}{role} ")),
            Span::styled("█".repeat(r), theme.on_cpu()),
            Span::styled("█".repeat(b), theme.blocked()),
            Span::styled("█".repeat(w), theme.runnable()),
            Span::styled("░".repeat(idle), theme.dim()),
            Span::raw(format!(
                " {:>3.0}%{:>4.0}%{:>4.0}%",
                pct(running),
                pct(blocked),
                pct(waiting)
            )),
        ])));
    }
    let pool = s.pool_threads();
    let is_focused = focused(state, Panel::Workers);
    let title = Line::from(vec![
        Span::styled(" Workers (w/c) ", theme.title()),
        Span::styled("█", theme.on_cpu()),
        Span::raw("run "),
        Span::styled("█", theme.blocked()),
        Span::raw("blocking "),
        Span::styled("█", theme.runnable()),
        Span::raw("wait CPU "),
        Span::styled("░", theme.dim()),
        Span::raw("idle "),
    ]);
    let block = panel(title, is_focused, theme);
    let pool_line = if pool.is_empty() {
        None
    } else {
        let busy: u64 = f
            .threads
            .iter()
            .filter(|t| pool.contains(&t.tid))
            .map(|t| t.on_cpu_ns)
            .sum();
        Some(format!(
            " pool: {} thread{}, {:.0} % busy (not blocking)",
            pool.len(),
            if pool.len() == 1 { "" } else { "s" },
            busy as f64 * 100.0 / length
        ))
    };
    if items.is_empty() {
        items.push(ListItem::new(Span::styled(
            "no Tokio runtime thread in the stacks",
            theme.dim(),
        )));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (list_area, pool_area) = match pool_line {
        Some(_) if inner.height > 1 => {
            let [l, p] = ratatui::layout::Layout::vertical([
                ratatui::layout::Constraint::Min(1),
                ratatui::layout::Constraint::Length(1),
            ])
            .areas(inner);
            (l, Some(p))
        }
        _ => (inner, None),
    };
    let list = List::new(items).highlight_style(if is_focused {
        theme.selected()
    } else {
        ratatui::style::Style::new()
    });
    let mut list_state = ListState::default().with_selected(Some(state.row(Panel::Workers)));
    frame.render_stateful_widget(list, list_area, &mut list_state);
    if let (Some(area), Some(text)) = (pool_area, pool_line) {
        frame.render_widget(
            ratatui::widgets::Paragraph::new(Span::styled(text, theme.dim())),
            area,
        );
    }
}
