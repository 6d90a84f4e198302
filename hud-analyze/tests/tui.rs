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
        flame: None,
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

/// The drilldown shows the source around the call's line from a checkout found under
/// `--source-root` (the recorded path's leading folders dropped), and says when the file
/// changed after the recording.
#[test]
fn a_drilldown_shows_the_source_of_the_call() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("app/src/main.rs");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let source: String = (1..=120)
        .map(|n| match n {
            90 => "    let sum = checksum(&block); // the call\n".to_owned(),
            n => format!("// line {n}\n"),
        })
        .collect();
    std::fs::write(&file, source).unwrap();
    let drilldown = |modified: std::time::SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        let mut options = hud_analyze::analysis::Options::default();
        options.sources.roots = vec![root.path().to_owned()];
        let s = snapshot_of(&Arc::new(busy_service().analyze_with(options)), Window::ALL);
        let group = s.findings.blockers[0].group;
        draw::drilldown::text(&s, group).replace(&root.path().display().to_string(), "[root]")
    };
    let before_recording = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1);
    let text = drilldown(before_recording);
    assert!(!text.contains("modified after"), "{text}");
    insta::assert_snapshot!(text);
    let text = drilldown(std::time::SystemTime::now());
    assert!(
        text.contains("(modified after the recording: the lines may have moved since the build)"),
        "{text}"
    );
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
        out.contains("cache::update") && !out.contains("handlers::slow"),
        "{out}"
    );
    state.update(key(KeyCode::Esc), &s.rows(&state));
    state.update(key(KeyCode::Char('f')), &s.rows(&state));
    let out = screen((120, 40), &state, Some(&s));
    assert!(out.contains("Hotspots by line"), "{out}");
    assert!(out.contains("app/src/main.rs:120"), "{out}");
}

/// `p` shows the poll durations per future type of a `--poll-probes` capture in the hotspots
/// panel, and says where there are none.
#[test]
fn the_poll_key_shows_poll_durations_per_future_type() {
    use hud_format::types::{PollHistogram, PollProbe, Polls};
    use hud_format::wire::poll_bucket;
    let plain = snapshot(busy_service());
    let mut state = state_for(&plain);
    state.update(key(KeyCode::Char('p')), &plain.rows(&state));
    let out = screen((120, 40), &state, Some(&plain));
    assert!(
        out.contains("Poll durations none: record with --poll-probes"),
        "{out}"
    );

    let mut synth = busy_service();
    let histogram = |probe: u32, ns: u64, n: u64| PollHistogram {
        probe,
        sum_ns: ns * n,
        max_ns: ns,
        buckets: vec![poll_bucket(ns) as u16],
        counts: vec![n],
    };
    let probe = |probe: u32, future: &str| PollProbe {
        probe,
        future: future.into(),
        scheduler: "Arc<multi_thread::handle::Handle>".into(),
        ..Default::default()
    };
    synth
        .writer
        .write_polls(&Polls {
            ts_ns: START + 1_000_000_000,
            event_ns: 1_000_000,
            probes: vec![
                probe(0, "app::serve::{async_fn_env#0}"),
                probe(1, "app::cache::refresh::{async_fn_env#0}"),
            ],
            histograms: vec![histogram(0, 40_000, 900), histogram(1, 3_000_000, 20)],
            ..Default::default()
        })
        .unwrap();
    let s = snapshot(synth);
    let mut state = state_for(&s);
    state.update(key(KeyCode::Char('p')), &s.rows(&state));
    assert_eq!(s.rows(&state).hotspots, 2, "a row per future type");
    let out = screen((120, 40), &state, Some(&s));
    assert!(out.contains("Poll durations 2 future types"), "{out}");
    let refresh = out
        .lines()
        .find(|l| l.contains("app::cache::refresh"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        refresh.contains("20") && refresh.contains("3.0 ms"),
        "{refresh}"
    );
    // The status line names the future type whose polls run longest.
    assert!(
        out.contains("polls: app::cache::refresh p50 3.0 ms"),
        "{out}"
    );
}

/// `t` lists the tasks of a capture with task ids, `s` orders them, Enter opens one with what
/// blocked in it; without ids the panel says why.
#[test]
fn the_task_key_lists_tasks_and_opens_one() {
    let plain = snapshot(busy_service());
    let mut state = state_for(&plain);
    state.update(key(KeyCode::Char('t')), &plain.rows(&state));
    let out = screen((120, 40), &state, Some(&plain));
    assert!(
        out.contains("Tasks none: recorded without task ids"),
        "{out}"
    );

    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    s.writer.set_task_source("tokio CONTEXT.current_task_id");
    let sleepy = in_task(vec![
        lib("std::thread::sleep"),
        user("app::handler::{{closure}}", 40),
    ]);
    let busy = in_task(vec![user("app::crunch::{{closure}}", 70)]);
    // Task 5 blocks twice (10 ms), task 6 once (5 ms); task 9 computes (3 samples).
    for (i, task) in [5u64, 5, 6].into_iter().enumerate() {
        let end = START + (20 + 20 * i as u64) * MS;
        s.off_cpu(end, 10, 5 * MS, 0, 1, &sleepy);
        s.writer.push_event_task(
            hud_format::types::COPY_OF_OFF_CPU,
            end,
            10,
            task,
            hud_format::wire::NO_TICK,
        );
    }
    for i in 0..3u64 {
        s.sample_in_task(START + (100 + 10 * i) * MS, 10, &busy, 9, i);
    }
    s.sample(START + 200 * MS, 10, &parked());
    let snap = snapshot(s);
    let mut state = state_for(&snap);
    state.update(key(KeyCode::Char('t')), &snap.rows(&state));
    assert_eq!(snap.rows(&state).tasks, vec![9, 5, 6], "most CPU first");
    state.update(key(KeyCode::Char('s')), &snap.rows(&state));
    assert_eq!(snap.rows(&state).tasks, vec![5, 6, 9], "most blocked first");
    let out = screen((120, 40), &state, Some(&snap));
    assert!(out.contains("Tasks 3 seen · by blocked (s)"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("│      5 "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("10.0") && row.contains("app::handler::{{closure}}"),
        "{out}"
    );
    state.update(key(KeyCode::Tab), &snap.rows(&state));
    assert_eq!(state.focus, Panel::Hotspots);
    state.update(key(KeyCode::Enter), &snap.rows(&state));
    assert_eq!(state.overlay, Overlay::Task { id: 5, scroll: 0 });
    let out = screen((120, 40), &state, Some(&snap));
    assert!(
        out.contains("task id 5  app::handler::{{closure}}"),
        "{out}"
    );
    assert!(out.contains("blocked 10.0 ms in 2 episodes"), "{out}");
    assert!(
        out.contains("[sleep] app::handler::{{closure}}") && out.contains("2× · 10.0 ms"),
        "{out}"
    );
    // Task 9 open: the timeline marks where it ran on CPU (T), nowhere else.
    for code in [KeyCode::Esc, KeyCode::Down, KeyCode::Down, KeyCode::Enter] {
        state.update(key(code), &snap.rows(&state));
    }
    assert_eq!(state.overlay, Overlay::Task { id: 9, scroll: 0 });
    let out = screen((120, 40), &state, Some(&snap));
    let lane = out
        .lines()
        .find(|l| l.starts_with("│tokio-r 10"))
        .unwrap_or_else(|| panic!("{out}"));
    let marked: Vec<usize> = lane
        .chars()
        .enumerate()
        .filter(|(_, c)| *c == 'T')
        .map(|(i, _)| i)
        .collect();
    assert!(!marked.is_empty(), "{out}");
    assert!(
        !lane.contains('S') || lane.find('S') < marked.first().copied(),
        "{lane}"
    );
}

/// `--base`: each blocker says what became of it against the base capture, the status line
/// counts the changes beyond noise.
#[test]
fn a_base_capture_marks_what_changed() {
    use hud_analyze::analysis::diff::{Baseline, Side};
    let base = Baseline::new(idle_service().analyze());
    let mut s = snapshot(busy_service());
    s.vs_base = Some(Arc::new(base.compare(Side::of(&s.analysis, &s.findings))));
    let out = screen((120, 40), &state_for(&s), Some(&s));
    assert!(out.contains("vs base: 1 new blocker"), "{out}");
    let row = |function: &str| {
        out.lines()
            .find(|l| l.starts_with('│') && l.contains(function))
            .unwrap_or_else(|| panic!("{out}"))
            .to_string()
    };
    // 50 long polls where there were none: new beyond noise; 4 lock waits: maybe chance.
    assert!(row("app::checksum").contains(" new "), "{out}");
    assert!(row("cache::update").contains(" new? "), "{out}");
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

/// A live snapshot of `s`: ended (so the badge does not depend on the clock) or not.
fn live(s: Synth, ended: Option<hud_format::reader::Ending>, earlier: u64) -> Snapshot {
    let mut snapshot = snapshot(s);
    snapshot.live = Some(hud_analyze::view::tui::snapshot::LiveInfo {
        ended,
        accumulated: false,
        received_at: std::time::Instant::now(),
        earlier,
    });
    snapshot
}

#[test]
fn a_live_screen_says_live_paused_or_ended() {
    let following = live(busy_service(), None, 0);
    let mut state = state_for(&following);
    let out = screen((120, 40), &state, Some(&following));
    assert!(out.contains("● LIVE "), "{out}");
    // The synthetic capture is from another boot: its age is the time since the last frame.
    assert!(out.contains("● LIVE 0.0 s"), "{out}");
    state.update(key(KeyCode::Char(' ')), &following.rows(&state));
    assert!(state.paused);
    let out = screen((120, 40), &state, Some(&following));
    assert!(out.contains("‖ PAUSED"), "{out}");

    let ended = live(
        busy_service(),
        Some(hud_format::reader::Ending::Unclosed),
        30_000_000_000,
    );
    let state = state_for(&ended);
    let out = screen((120, 40), &state, Some(&ended));
    assert!(out.contains("■ ENDED"), "{out}");
    assert!(out.contains("in detail"), "{out}");
    insta::assert_snapshot!(out.lines().take(3).collect::<Vec<_>>().join("\n"));
}

#[test]
fn a_live_state_follows_the_growing_recording() {
    const S: u64 = 1_000_000_000;
    let mut state = State::new(0, 10 * S);
    state.cursor = 10 * S;
    // Showing everything and the cursor at the end: both follow the end.
    state.rebound(0, 12 * S);
    assert_eq!((state.view, state.cursor), ((0, 12 * S), 12 * S));
    // Zoomed in: the same span stays where it was, inside the new bounds.
    state.view = (2 * S, 4 * S);
    state.cursor = 3 * S;
    state.rebound(S, 14 * S);
    assert_eq!((state.view, state.cursor), ((2 * S, 4 * S), 3 * S));
    // The oldest detail forgotten past the view: it moves inside.
    state.rebound(5 * S, 16 * S);
    assert_eq!((state.view, state.cursor), ((5 * S, 7 * S), 5 * S));
    // A window entirely forgotten is dropped: the panels show everything again.
    state.window = Window { from: S, to: 2 * S };
    state.rebound(6 * S, 17 * S);
    assert_eq!(state.window, Window::ALL);
    // `a` asks for the whole session, again for the window of detail.
    let rows = Default::default();
    assert_eq!(
        state.update(key(KeyCode::Char('a')), &rows),
        Action::Accumulated(true)
    );
    assert_eq!(
        state.update(key(KeyCode::Char('a')), &rows),
        Action::Accumulated(false)
    );
}

/// `F` opens the flame graph of the window (the runtime's plumbing folded into one frame per
/// role), the arrows walk it, Enter zooms into a frame, `/` searches, Esc goes back.
#[test]
fn the_flame_graph_walks_zooms_and_searches() {
    use hud_analyze::view::tui::flame::{FlameCache, Scope};
    let s = Arc::new(snapshot(busy_service()));
    let mut cache = FlameCache::default();
    let mut state = state_for(&s);
    let rows_of = |state: &State, cache: &mut FlameCache| {
        let mut rows = s.rows(state);
        if let Overlay::Flame { scope, weight, .. } = state.overlay {
            rows.flame = Some(cache.get(&s, scope, weight));
        }
        rows
    };
    let press = |state: &mut State, cache: &mut FlameCache, code: KeyCode| {
        let rows = rows_of(state, cache);
        state.update(key(code), &rows);
    };
    press(&mut state, &mut cache, KeyCode::Char('F'));
    let Overlay::Flame { scope, weight, .. } = state.overlay else {
        panic!("{:?}", state.overlay)
    };
    assert_eq!(scope, Scope::All);
    let tree = cache.get(&s, scope, weight);
    // Every CPU sample, the same total as the hotspots (and the folded export).
    assert_eq!(tree.total(), s.findings.hotspots.samples);
    let screen_of = |state: &State, cache: &mut FlameCache| {
        let rows = rows_of(state, cache);
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        let view = View {
            snapshot: Some(&s),
            progress: (None, None),
            updating: false,
            theme: Theme { color: false },
            source: "service.hudcap",
            flame: rows.flame.as_deref(),
        };
        terminal
            .draw(|frame| draw::draw(frame, state, &view))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                let line: String = (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect();
                line.trim_end().to_owned() + "\n"
            })
            .collect::<String>()
    };
    let out = screen_of(&state, &mut cache);
    assert!(out.contains("[tokio worker]"), "{out}");
    assert!(
        !out.contains("thread_start"),
        "the plumbing is folded: {out}"
    );
    insta::assert_snapshot!("flame_graph_at_120x40", out);
    // Down to the heaviest callee, three times: the worker, the serving task, the crunch loop.
    for _ in 0..3 {
        press(&mut state, &mut cache, KeyCode::Down);
    }
    press(&mut state, &mut cache, KeyCode::Enter);
    let Overlay::Flame { zoom, selected, .. } = state.overlay else {
        panic!()
    };
    assert_eq!(zoom, selected);
    assert_eq!(&*tree.nodes[zoom as usize].name, "app::crunch::{{closure}}");
    let out = screen_of(&state, &mut cache);
    assert!(
        out.contains("zoomed: [tokio worker] ▸ app::serve ▸ app::crunch"),
        "{out}"
    );
    // Search: the share of samples under matching frames.
    for c in ['/', 'c', 'h', 'e', 'c', 'k'] {
        press(&mut state, &mut cache, KeyCode::Char(c));
    }
    press(&mut state, &mut cache, KeyCode::Enter);
    let out = screen_of(&state, &mut cache);
    assert!(out.contains("search \"check\": 25.0 % of all"), "{out}");
    // Esc clears the search, zooms out, then closes.
    for _ in 0..2 {
        press(&mut state, &mut cache, KeyCode::Esc);
    }
    assert!(
        matches!(state.overlay, Overlay::Flame { zoom, .. } if tree.nodes[zoom as usize].depth == 2)
    );
    press(&mut state, &mut cache, KeyCode::Backspace);
    press(&mut state, &mut cache, KeyCode::Backspace);
    press(&mut state, &mut cache, KeyCode::Esc);
    assert_eq!(state.overlay, Overlay::None);
}

#[test]
fn a_flight_recorder_dump_opens_at_its_trigger_marked_on_the_timeline() {
    // The dump's provenance comes before its events, as the recorder writes it.
    let mut s = Synth::new();
    let trigger = START + 1_000 * MS;
    s.writer
        .write_provenance(&hud_format::types::Provenance {
            pid_seen: 4242,
            pid_in_namespace: 4242,
            dump: Some(hud_format::types::Dump {
                reason: "blocked".into(),
                trigger_ns: trigger,
                detail: "thread 10 blocked off CPU for 300.0 ms in task 7".into(),
                from_ns: START,
                to_ns: START + 2_000 * MS,
                first_seq: 0,
            }),
            ..Default::default()
        })
        .unwrap();
    let snapshot = snapshot(busy_service_into_synth(s));
    let state = State::for_model(&snapshot.analysis.model);
    assert_eq!(state.cursor, trigger);
    let text = screen((120, 40), &state, Some(&snapshot));
    assert!(
        text.contains("flight-recorder dump (blocked) around 1.00 s, marked ▼ on the timeline: thread 10 blocked off CPU for 300.0 ms in task 7"),
        "{text}"
    );
    let axis = text
        .lines()
        .find(|l| l.contains('▼') && !l.contains("flight-recorder"))
        .unwrap_or_else(|| panic!("no mark on the timeline: {text}"));
    assert!(axis.contains("0.00s"), "{axis}");
    // An ordinary capture opens as before.
    let plain = snapshot_of(&Arc::new(busy_service().analyze()), Window::ALL);
    let state = State::for_model(&plain.analysis.model);
    assert_eq!((state.trigger, state.note.clone()), (None, None));
}
