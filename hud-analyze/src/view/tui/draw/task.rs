//! One task in full (Enter on the tasks list): its kind, time on CPU and blocked, when and
//! where it ran, and the blockers and long polls that happened in it.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use super::{location, ms, overlay_block, seconds};
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::theme::Theme;

pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    s: &Snapshot,
    id: u64,
    scroll: u16,
    theme: Theme,
) {
    overlay_block(frame, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focused_border())
        .title(Span::styled(
            format!(" Task {id} · Esc back "),
            theme.title(),
        ));
    frame.render_widget(
        Paragraph::new(lines(s, id, theme))
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0)),
        area,
    );
}

fn lines(s: &Snapshot, id: u64, theme: Theme) -> Vec<Line<'static>> {
    let Some(t) = s.findings.tasks.iter().find(|t| t.id == id) else {
        return vec![Line::raw(format!("task {id} did not run in the window"))];
    };
    let m = &s.analysis.model;
    let mut out = vec![Line::from(vec![
        Span::styled(format!("task id {id}  "), theme.title()),
        match &t.kind {
            Some(k) => Span::styled(
                format!("{}  {}", k.function, location(k.file.as_deref(), k.line)),
                theme.user_code(),
            ),
            None => Span::styled(
                "kind unknown (no stack of it reached the user's code)",
                theme.dim(),
            ),
        },
    ])];
    out.push(Line::raw(format!(
        "on CPU {} ms ({} samples) · blocked {} ms in {} episodes · {} long polls{}",
        ms(t.on_cpu_ns(m.sample_period())),
        t.samples,
        ms(t.blocked_ns),
        t.blocking_episodes,
        t.long_polls,
        if t.long_polls > 0 {
            format!(" (longest {} ms)", ms(t.longest_poll_ns))
        } else {
            String::new()
        }
    )));
    out.push(Line::raw(format!(
        "seen {:.2}–{:.2} s · on {} {}: {:?}",
        seconds(s, t.first_seen),
        seconds(s, t.last_seen),
        t.threads.len(),
        if t.threads.len() == 1 {
            "thread"
        } else {
            "threads"
        },
        t.threads
    )));
    let blockers: Vec<_> = s
        .findings
        .blockers
        .iter()
        .filter_map(|b| {
            let (n, total) = b
                .episodes
                .iter()
                .filter(|e| e.task == id)
                .fold((0usize, 0u64), |(n, total), e| (n + 1, total + e.duration));
            (n > 0).then_some((b, n, total))
        })
        .collect();
    if !blockers.is_empty() {
        out.push(Line::raw(""));
        out.push(Line::from(Span::styled(
            "What blocked its thread, in this task",
            theme.title(),
        )));
        for (b, n, total) in blockers {
            out.push(Line::from(vec![
                Span::styled(format!("  [{}] ", b.kind.name()), theme.blocked()),
                Span::raw(format!(
                    "{}  {}  {n}× · {} ms",
                    b.blame.function,
                    location(b.blame.file.as_deref(), b.blame.line),
                    ms(total)
                )),
            ]));
        }
    }
    if let Some(polls) = &m.polls {
        let (from, to) = (s.findings.window.from, s.findings.window.to);
        let long: Vec<_> = polls
            .long
            .iter()
            .filter(|p| p.task == id && p.end > from && p.start < to)
            .collect();
        if !long.is_empty() {
            let longest = long.iter().map(|p| p.end - p.start).max().unwrap_or(0);
            out.push(Line::raw(""));
            out.push(Line::raw(format!(
                "probed long polls (--poll-probes): {} · longest {} ms",
                long.len(),
                ms(longest)
            )));
        }
    }
    out
}
