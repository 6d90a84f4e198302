//! One lane per runtime thread over the visible span: a column's height is its share on CPU,
//! yellow when it mostly waited for a CPU, a letter where a blocker episode ran (S sleep, L lock,
//! I io, D dns, C long poll, O other). The selected window is shaded; the cursor is a column.
//! With a task open (Enter on the tasks list), where that task ran: `T` on CPU, its blockers'
//! letters highlighted.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{focused, panel, seconds, MAX_LANES};
use crate::analysis::frames::Kind;
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::state::{Overlay, Panel, State};
use crate::view::tui::theme::Theme;

/// Width of a lane's label.
const LABEL: u16 = 14;
/// Heights of a column by eighths of time on CPU.
const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A blocker episode's letter on the timeline.
pub(super) fn letter(kind: Kind) -> char {
    match kind {
        Kind::Cpu => 'C',
        Kind::Sleep => 'S',
        Kind::Lock => 'L',
        Kind::Condvar => 'V',
        Kind::Channel => 'H',
        Kind::Join => 'J',
        Kind::Process => 'P',
        Kind::Fsync => 'Y',
        Kind::FileIo => 'I',
        Kind::NetIo => 'N',
        Kind::Dns => 'D',
        Kind::BlockOn => 'B',
        Kind::PageFault => 'F',
        Kind::Log => 'G',
        Kind::Other => 'O',
    }
}

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, s: &Snapshot, theme: Theme) {
    let m = &s.analysis.model;
    let (from, to) = state.view;
    let zoom = (state.bounds.1 - state.bounds.0) as f64 / (to - from).max(1) as f64;
    let is_focused = focused(state, Panel::Timeline);
    let title = Line::from(vec![
        Span::styled(" Timeline ", theme.title()),
        Span::raw(format!(
            "{:.2}–{:.2} s · cursor {:.3} s · zoom {zoom:.0}× ",
            seconds(s, from),
            seconds(s, to),
            seconds(s, state.cursor)
        )),
    ]);
    let block = panel(title, is_focused, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.width <= LABEL + 2 || inner.height < 2 {
        return;
    }
    let columns = (inner.width - LABEL) as u64;
    let span = (to - from).max(1);
    let column_of =
        |t: u64| ((t.saturating_sub(from)) as u128 * columns as u128 / span as u128) as u64;
    let bounds = |c: u64| {
        (
            from + (span as u128 * c as u128 / columns as u128) as u64,
            from + (span as u128 * (c + 1) as u128 / columns as u128) as u64,
        )
    };
    let window = state.window_range();
    let cursor_col = column_of(state.cursor).min(columns - 1);
    let drilled = match state.overlay {
        Overlay::Drilldown { group, .. } => Some(group),
        _ => None,
    };
    let opened_task = match state.overlay {
        Overlay::Task { id, .. } => Some(id),
        _ => None,
    };
    // Columns of a lane where the opened task's samples fall (the thread's samples in view).
    let task_ran = |tid: u32| -> Vec<bool> {
        let mut ran = vec![false; columns as usize];
        if let Some(id) = opened_task {
            for x in m.samples_in(tid, from, to).iter().filter(|x| x.task == id) {
                ran[column_of(x.ts).min(columns - 1) as usize] = true;
            }
        }
        ran
    };
    // The lanes: the runtime threads, scrolled so the selected worker is shown.
    let threads = s.runtime_threads();
    let lanes_shown = (inner.height as usize - 1).clamp(1, MAX_LANES);
    let first = state
        .row(Panel::Workers)
        .saturating_sub(lanes_shown - 1)
        .min(threads.len().saturating_sub(lanes_shown));
    let mut lines: Vec<Line> = Vec::new();
    for &tid in threads.iter().skip(first).take(lanes_shown) {
        let Some(thread) = m.threads.get(&tid) else {
            continue;
        };
        let ran = task_ran(tid);
        // Blocker episodes of this thread in view, by column.
        let mut marks: Vec<Option<(Kind, bool)>> = vec![None; columns as usize];
        for e in s
            .analysis
            .detection
            .episodes
            .iter()
            .filter(|e| e.tid == tid)
        {
            if e.end() <= from || e.start >= to {
                continue;
            }
            let a = column_of(e.start.max(from)).min(columns - 1);
            let b = column_of(e.end().min(to).saturating_sub(1)).min(columns - 1);
            for mark in &mut marks[a as usize..=b as usize] {
                let highlighted = drilled == Some(e.group)
                    || (opened_task.is_some() && opened_task == Some(e.task));
                if mark.is_none_or(|(_, h)| !h) {
                    *mark = Some((e.kind, highlighted));
                }
            }
        }
        let name = thread.name();
        let mut spans = vec![Span::raw(format!(
            "{:<width$.width$}",
            format!("{name:.7} {tid}"),
            width = LABEL as usize
        ))];
        let edges: Vec<u64> = std::iter::once(bounds(0).0)
            .chain((0..columns).map(|c| bounds(c).1))
            .collect();
        let per_column = thread.timeline.totals_between(&edges);
        for c in 0..columns {
            let (t0, t1) = bounds(c);
            let totals = per_column[c as usize];
            let len = (t1 - t0).max(1) as f64;
            let on = totals.on_cpu as f64 / len;
            let waiting = totals.runnable as f64 / len;
            let (glyph, mut style) = match marks[c as usize] {
                Some((kind, true)) => (letter(kind), theme.highlight()),
                Some((kind, false)) => (letter(kind), theme.blocked()),
                None if ran[c as usize] => ('T', theme.highlight()),
                None if waiting > on && waiting > 0.2 => ('▒', theme.runnable()),
                None => (LEVELS[(on * 8.0).round() as usize], theme.on_cpu()),
            };
            if window.is_some_and(|(a, b)| t1 > a && t0 < b) {
                style = style.patch(theme.window());
            }
            if is_focused && c == cursor_col {
                style = style.patch(theme.cursor());
            }
            spans.push(Span::styled(glyph.to_string(), style));
        }
        lines.push(Line::from(spans));
    }
    // The axis: times at both ends and the middle, and the cursor.
    let mut axis: Vec<char> = vec![' '; columns as usize];
    let mut put = |col: u64, text: &str| {
        for (i, ch) in text.chars().enumerate() {
            if let Some(slot) = axis.get_mut(col as usize + i) {
                *slot = ch;
            }
        }
    };
    let left = format!("{:.2}s", seconds(s, from));
    let mid = format!("{:.2}s", seconds(s, from + span / 2));
    let right = format!("{:.2}s", seconds(s, to));
    put(0, &left);
    put((columns / 2).saturating_sub(mid.len() as u64 / 2), &mid);
    put(columns.saturating_sub(right.len() as u64), &right);
    // A dump's trigger, over any label: what the dump was written for.
    if let Some(at) = state.trigger.filter(|t| (from..=to).contains(t)) {
        if let Some(slot) = axis.get_mut(column_of(at).min(columns - 1) as usize) {
            *slot = '▼';
        }
    }
    // The cursor's mark, where no time label is (the title says the cursor's time anyway).
    if is_focused {
        if let Some(slot) = axis.get_mut(cursor_col as usize).filter(|c| **c == ' ') {
            *slot = '▲';
        }
    }
    lines.push(Line::from(vec![
        Span::raw(" ".repeat(LABEL as usize)),
        Span::styled(axis.into_iter().collect::<String>(), Style::new()),
    ]));
    frame.render_widget(Paragraph::new(lines), inner);
}
