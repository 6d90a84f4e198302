//! The cockpit drawn on a headless terminal (ratatui's TestBackend) from synthetic analyses:
//! exact screens as insta snapshots, and keys driving the state as a user would.

mod support;

use std::sync::Arc;

use hud_analyze::analysis::Window;
use hud_analyze::observer::Phase;
use hud_analyze::view::tui::draw::{self, View};
use hud_analyze::view::tui::snapshot::Snapshot;
use hud_analyze::view::tui::state::{Action, Overlay, Panel, State};
use hud_analyze::view::tui::theme::Theme;
use hud_analyze::view::tui::worker::snapshot_of;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use support::*;

fn snapshot(s: Synth) -> Snapshot {
    snapshot_of(&Arc::new(s.analyze()), Window::ALL)
}

fn state_for(s: &Snapshot) -> State {
    let m = &s.analysis.model;
    State::new(m.start, m.end)
}

/// The screen as text, one line per row.
fn screen(size: (u16, u16), state: &State, snapshot: Option<&Snapshot>) -> String {
    let mut terminal = Terminal::new(TestBackend::new(size.0, size.1)).unwrap();
    let view = View {
        snapshot,
        progress: (Some(Phase::Symbolizing), Some((1234, 5678))),
        updating: false,
        theme: Theme { color: false },
        source: "service.hudcap",
    };
    terminal
        .draw(|frame| draw::draw(frame, state, &view))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn caution_at_80x24() {
    let s = snapshot(busy_service());
    insta::assert_snapshot!(screen((80, 24), &state_for(&s), Some(&s)));
}

#[test]
fn caution_at_120x40() {
    let s = snapshot(busy_service());
    let out = screen((120, 40), &state_for(&s), Some(&s));
    assert!(out.contains("▲ CAUTION"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn normal_at_120x40() {
    let s = snapshot(idle_service());
    let out = screen((120, 40), &state_for(&s), Some(&s));
    assert!(out.contains("● NORMAL"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn a_drilldown_at_120x40() {
    let s = snapshot(busy_service());
    let mut state = state_for(&s);
    let action = state.update(key(KeyCode::Enter), &s.rows(&state));
    assert_eq!(action, Action::None);
    assert!(matches!(state.overlay, Overlay::Drilldown { .. }));
    insta::assert_snapshot!(screen((120, 40), &state, Some(&s)));
}

#[test]
fn a_terminal_too_small_is_told_so() {
    let s = snapshot(busy_service());
    let out = screen((60, 20), &state_for(&s), Some(&s));
    assert!(out.contains("at least 80×24; this one is 60×20"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn the_first_frame_shows_progress_before_any_analysis() {
    let out = screen((80, 24), &State::new(0, 1), None);
    assert!(
        out.contains("service.hudcap · symbolizing addresses…"),
        "{out}"
    );
    assert!(out.contains("1234 / 5678"), "{out}");
}

#[test]
fn a_window_filters_every_panel() {
    let analysis = Arc::new(busy_service().analyze());
    let whole = snapshot_of(&analysis, Window::ALL);
    let mut state = state_for(&whole);
    // To the timeline, then select the first tenth of the recording with [ and ].
    state.update(key(KeyCode::BackTab), &whole.rows(&state));
    assert_eq!(state.focus, Panel::Timeline);
    state.update(key(KeyCode::Char('[')), &whole.rows(&state));
    let mut action = Action::None;
    for _ in 0..10 {
        state.update(key(KeyCode::Right), &whole.rows(&state));
    }
    action = match state.update(key(KeyCode::Char(']')), &whole.rows(&state)) {
        Action::Window(w) => Action::Window(w),
        other => panic!("no window: {other:?} after {action:?}"),
    };
    let Action::Window(window) = action else {
        unreachable!()
    };
    let part = snapshot_of(&analysis, window);
    let before = screen((120, 40), &state, Some(&whole));
    let after = screen((120, 40), &state, Some(&part));
    assert!(after.contains("window 0.00–0.20 s"), "{after}");
    assert!(
        part.findings.hotspots.samples < whole.findings.hotspots.samples,
        "hotspots of the window only"
    );
    let count = |s: &Snapshot| {
        s.findings
            .blockers
            .iter()
            .map(|b| b.episodes.len())
            .sum::<usize>()
    };
    assert!(count(&part) < count(&whole), "blockers of the window only");
    assert_ne!(before, after);
}

#[test]
fn filter_and_hotspot_keys_change_what_is_listed() {
    let s = snapshot(busy_service());
    let mut state = state_for(&s);
    for c in ['/', 'c', 'a', 'c', 'h', 'e'] {
        state.update(key(KeyCode::Char(c)), &s.rows(&state));
    }
    state.update(key(KeyCode::Enter), &s.rows(&state));
    assert_eq!(s.rows(&state).blockers.len(), 1, "only the cache update");
    let out = screen((120, 40), &state, Some(&s));
    assert!(
        out.contains("app::cache::update") && !out.contains("app::handlers::slow"),
        "{out}"
    );
    state.update(key(KeyCode::Esc), &s.rows(&state));
    state.update(key(KeyCode::Char('f')), &s.rows(&state));
    let out = screen((120, 40), &state, Some(&s));
    assert!(out.contains("Hotspots by line"), "{out}");
    assert!(out.contains("app/src/main.rs:120"), "{out}");
}

#[test]
fn no_color_means_no_colour() {
    let plain = Theme { color: false };
    for style in [
        plain.caution_status(),
        plain.blocked(),
        plain.selected(),
        plain.on_cpu(),
        plain.window(),
    ] {
        assert_eq!(style.fg, None);
        assert_eq!(style.bg, None);
    }
}
