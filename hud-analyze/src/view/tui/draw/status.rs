//! The master status: NORMAL, CAUTION or UNKNOWN as detection decides (never CPU %), the reason, what was
//! recorded, and notes on what limits the analysis.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{seconds, View};
use crate::analysis::diagnostics::{percent, Diagnostic, Stopper};
use crate::analysis::Status;
use crate::view::tui::state::State;
use crate::view::units::secs;
use crate::view::wording::verdict_sentence;

pub(super) fn draw(frame: &mut Frame, area: Rect, state: &State, view: &View) {
    let theme = view.theme;
    let Some(s) = view.snapshot else {
        frame.render_widget(
            Paragraph::new(vec![Line::from(vec![
                Span::styled(" LOADING ", theme.title()),
                Span::raw(" hud"),
            ])]),
            area,
        );
        return;
    };
    let a = &s.analysis;
    let m = &a.model;
    let verdict = s.findings.verdict();
    let badge = match verdict.status {
        Status::Normal => Span::styled(" ● NORMAL ", theme.normal_status()),
        Status::Caution => Span::styled(" ▲ CAUTION ", theme.caution_status()),
        Status::Unknown => Span::styled(" ? UNKNOWN ", theme.unknown_status()),
    };
    let mut first = vec![badge, Span::raw(" ")];
    if let Some(live) = &s.live {
        let age = crate::live::age(&m.header, m.end, live.received_at);
        let text = match (&live.ended, state.paused) {
            (_, true) => " ‖ PAUSED ".to_string(),
            (None, false) => format!(" ● LIVE {:.1} s ", age.as_secs_f64()),
            (Some(_), false) => " ■ ENDED ".to_string(),
        };
        first.push(Span::styled(text, theme.live()));
        first.push(Span::raw(" "));
    }
    // Against a base capture (`--base`): first, a long verdict would cut it off.
    if let Some(d) = &s.vs_base {
        first.push(Span::styled(
            format!("vs base: {} · ", base_summary(d)),
            theme.highlight(),
        ));
    }
    first.push(Span::raw(verdict_sentence(a, &s.findings)));
    if view.updating {
        first.push(Span::styled("  (updating…)", theme.dim()));
    }
    let h = &m.header;
    let recorded = match &s.live {
        Some(live) if live.earlier > 0 => format!(
            "{:.1} s recorded, the last {:.0} s in detail · {}",
            secs(m.end.saturating_sub(h.start_ns)),
            secs(m.duration()),
            if live.accumulated && state.window_range().is_none() {
                "panels: since the start (a)"
            } else {
                "panels: the detail (a: since the start)"
            }
        ),
        _ => format!("{:.2} s recorded", secs(m.end.saturating_sub(h.start_ns))),
    };
    let mut second = format!(
        "pid {} {} · {} · Linux {} · {} Hz · {recorded}",
        h.target.pid, h.target.exe_path, h.host_name, h.kernel_release, h.sample_hz
    );
    if let Some((from, to)) = state.window_range() {
        second.push_str(&format!(
            " · window {:.2}–{:.2} s",
            seconds(s, from),
            seconds(s, to)
        ));
    }
    let notes: Vec<String> = a.diagnostics.iter().map(short).collect();
    let mut third = match &state.note {
        Some(note) => Line::from(Span::styled(note.clone(), theme.highlight())),
        None if notes.is_empty() => Line::from(Span::styled("notes: none", theme.dim())),
        None => Line::from(vec![
            Span::styled("notes: ", theme.blocked()),
            Span::raw(notes.join(" · ")),
        ]),
    };
    if let (None, Some(polls)) = (&state.note, poll_summary(&s.findings)) {
        third.spans.push(Span::styled("  polls: ", theme.dim()));
        third.spans.push(Span::raw(polls));
    }
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(first),
            Line::from(Span::styled(second, theme.dim())),
            third,
        ]),
        area,
    );
}

/// The changes beyond noise against the base, in a few words.
fn base_summary(d: &crate::analysis::diff::Diff) -> String {
    use crate::analysis::diff::Change;
    let parts: Vec<String> = [Change::New, Change::Grown, Change::Gone, Change::Shrunk]
        .into_iter()
        .filter_map(|c| {
            let n = d.changed(c).count();
            (n > 0).then(|| {
                let noun = if n == 1 { "blocker" } else { "blockers" };
                format!("{n} {} {noun}", c.label())
            })
        })
        .collect();
    if parts.is_empty() {
        "no blocker changed".into()
    } else {
        parts.join(", ")
    }
}

/// `--poll-probes` in a few words: the future type whose polls run longest (by p99), its
/// p50/p99/max and rate, and how many others were timed (the report has them all).
fn poll_summary(findings: &crate::analysis::Findings) -> Option<String> {
    let p = findings.polls.as_ref()?;
    let worst = p
        .kinds
        .iter()
        .filter(|k| k.polls > 0)
        .max_by_key(|k| k.p99_ns)?;
    let rate = worst.polls as f64 / (p.measured_ns as f64 / 1e9).max(1e-9);
    let others = p.kinds.iter().filter(|k| k.polls > 0).count() - 1;
    let mut text = format!(
        "{} p50 {} · p99 {} · max {} ({rate:.0}/s)",
        worst.short,
        duration(worst.p50_ns),
        duration(worst.p99_ns),
        duration(worst.max_ns)
    );
    if others > 0 {
        text.push_str(&format!(" · {others} more types timed"));
    }
    if p.stopped.is_some() {
        text.push_str(" · probing stopped (budget)");
    }
    Some(text)
}

/// A poll's length: µs under a millisecond.
fn duration(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.0} µs", ns as f64 / 1e3)
    }
}

/// A diagnostic in a few words (the report has the long form).
fn short(d: &Diagnostic) -> String {
    let name = |p: &str| {
        std::path::Path::new(p)
            .file_name()
            .map_or(p.to_string(), |n| n.to_string_lossy().into_owned())
    };
    match d {
        Diagnostic::Capture(text) => text.clone(),
        Diagnostic::TargetWithoutDebugInfo { path, share } => {
            format!(
                "{} has no debug info ({} of addresses)",
                name(path),
                percent(*share)
            )
        }
        Diagnostic::ObjectNotFound { path, share } => {
            format!(
                "{} not found ({} of addresses)",
                name(path),
                percent(*share)
            )
        }
        Diagnostic::Symbols(text) => text.clone(),
        Diagnostic::ShallowStacks { share, stopper } => match stopper {
            Some(Stopper::Library { function, .. }) => format!(
                "{} of stacks shallow, stopping in {function}",
                percent(*share)
            ),
            Some(Stopper::TargetWithout { .. }) => format!(
                "{} of stacks shallow: no frame pointers in the target",
                percent(*share)
            ),
            None => format!("{} of stacks shallow (no frame pointers?)", percent(*share)),
        },
        Diagnostic::LostRecords { lost, share } => {
            format!("{lost} records lost ({})", percent(*share))
        }
        Diagnostic::NoRuntimeThreads {
            named_like_workers: 0,
        } => "no Tokio runtime thread found".into(),
        Diagnostic::NoRuntimeThreads { named_like_workers } => {
            format!("{named_like_workers} threads named like workers, no runtime in their stacks")
        }
    }
}
