//! `hud-analyze tui`: the glass cockpit.
//!
//! Three parts, each testable alone: a [`worker`] thread reads and analyzes the capture and
//! publishes immutable [`snapshot`]s (the findings of the selected window); the UI thread keeps a
//! [`state`] that keys change (`State::update`), and [`draw`]s the newest snapshot with it. The UI
//! never waits for the analysis: the first frame (with progress) is drawn at once, and a window
//! change shows "updating…" until its findings arrive.

pub mod draw;
pub mod flame;
pub mod snapshot;
pub mod state;
pub mod theme;
pub mod worker;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::backend::{Backend, TestBackend};
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::Terminal;

use crate::analysis::{Options, Window};
use crate::error::AnalyzeError;
use crate::source::Opened;
use draw::View;
use snapshot::Snapshot;
use state::{Action, State};
use theme::Theme;
use worker::{Request, Update, Worker};

/// Why the cockpit stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    #[error("the terminal failed: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("the cockpit needs a terminal (stdout is not one); use `hud-analyze report` for text")]
    NotATerminal,
}

impl From<std::convert::Infallible> for TuiError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// How often the screen is redrawn while the capture loads (progress moves).
const LOADING_TICK: Duration = Duration::from_millis(100);
/// How often a live screen is redrawn at least, for its age, when no analysis arrived (each new
/// analysis is drawn at once, at most every 250 ms).
const LIVE_REDRAW: Duration = Duration::from_secs(1);

/// Runs the cockpit on an opened capture until the user quits. The terminal is restored on every
/// way out, panics included (`ratatui::try_init` installs the hook).
/// A growing capture (a pipe, or `--follow`) is analyzed live, with `window` of detail. With a
/// `base` (a replay only), every window is compared with it.
pub fn run(
    opened: Opened,
    options: Options,
    name: &str,
    window: Duration,
    base: Option<std::sync::Arc<crate::analysis::diff::Baseline>>,
) -> Result<(), TuiError> {
    if !std::io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    let worker = Worker::spawn(opened, options, window, base);
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &worker, name, Theme::from_env());
    ratatui::restore();
    result
}

fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    worker: &Worker,
    name: &str,
    theme: Theme,
) -> Result<(), TuiError>
where
    TuiError: From<B::Error>,
{
    let mut snapshot: Option<Arc<Snapshot>> = None;
    let mut flames = flame::FlameCache::default();
    // The newest snapshot while the screen is paused.
    let mut pending: Option<Arc<Snapshot>> = None;
    let mut state = State::new(0, 1);
    let mut dirty = true;
    let mut drawn_at = Instant::now();
    loop {
        while let Ok(update) = worker.updates.try_recv() {
            match update {
                Update::Ready(s) => {
                    if snapshot.is_none() {
                        state = State::for_model(&s.analysis.model);
                    }
                    pending = Some(s);
                }
                Update::Failed(e) => return Err(e.into()),
            }
        }
        if !state.paused || snapshot.is_none() {
            if let Some(s) = pending.take() {
                if snapshot.is_none() {
                    // Redraw every cell once: another process sharing the terminal (a recorder
                    // at the other end of a pipe) may have printed over the loading screen, and
                    // only changed cells are drawn again.
                    terminal.clear()?;
                }
                adopt(&mut state, snapshot.as_deref(), &s);
                snapshot = Some(s);
                dirty = true;
            }
        }
        // A live screen shows the capture's age: redraw it even when nothing else changed.
        let following = snapshot
            .as_ref()
            .and_then(|s| s.live.as_ref())
            .is_some_and(|l| l.following());
        if following && drawn_at.elapsed() >= LIVE_REDRAW {
            dirty = true;
        }
        if dirty || snapshot.is_none() {
            let progress = worker.progress.now();
            let updating = snapshot.as_ref().is_some_and(|s| {
                s.findings.window != state.window
                    || s.live
                        .as_ref()
                        .is_some_and(|l| l.accumulated != state.accumulated)
            });
            let tree = flame_of(&mut flames, snapshot.as_ref(), &state);
            terminal.draw(|frame| {
                draw::draw(
                    frame,
                    &state,
                    &View {
                        snapshot: snapshot.as_deref(),
                        progress,
                        updating,
                        theme,
                        source: name,
                        flame: tree.as_deref(),
                    },
                )
            })?;
            dirty = false;
            drawn_at = Instant::now();
        }
        let wait = if snapshot.is_none() {
            LOADING_TICK
        } else {
            Duration::from_millis(50)
        };
        if !event::poll(wait)? {
            continue;
        }
        match event::read()? {
            Event::Key(key) if key.kind == KeyEventKind::Press => {
                let mut rows = snapshot
                    .as_ref()
                    .map(|s| s.rows(&state))
                    .unwrap_or_default();
                rows.flame = flame_of(&mut flames, snapshot.as_ref(), &state);
                match state.update(key, &rows) {
                    Action::Quit => return Ok(()),
                    Action::Window(w) => worker.request(Request::Window(w)),
                    Action::Accumulated(a) => worker.request(Request::Accumulated(a)),
                    Action::Copy { group } => {
                        if let Some(s) = &snapshot {
                            state.note = Some(copy(s, group));
                        }
                    }
                    Action::None => {}
                }
                dirty = true;
            }
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    }
}

/// Draws the flame graph overlay of `tree` on a headless terminal (the benchmark's).
fn draw_flame(
    terminal: &mut Terminal<TestBackend>,
    state: &State,
    s: &Snapshot,
    tree: &flame::FlameTree,
    theme: Theme,
) -> Result<(), TuiError> {
    let view = View {
        snapshot: Some(s),
        progress: (None, None),
        updating: false,
        theme,
        source: "capture",
        flame: Some(tree),
    };
    terminal.draw(|frame| draw::draw(frame, state, &view))?;
    Ok(())
}

/// The flame graph tree the overlay shows, when it shows one.
fn flame_of(
    flames: &mut flame::FlameCache,
    snapshot: Option<&Arc<Snapshot>>,
    state: &State,
) -> Option<Arc<flame::FlameTree>> {
    match (state.overlay, snapshot) {
        (state::Overlay::Flame { scope, weight, .. }, Some(s)) => {
            Some(flames.get(s, scope, weight))
        }
        _ => None,
    }
}

/// Takes a new snapshot in: a live capture's bounds move, and an open drilldown follows its
/// blocker (group ids are per analysis, the blocker's key is not).
fn adopt(state: &mut State, old: Option<&Snapshot>, new: &Snapshot) {
    if new.live.is_none() {
        return;
    }
    let m = &new.analysis.model;
    state.rebound(m.start, m.end);
    if let (state::Overlay::Drilldown { group, scroll }, Some(old)) = (state.overlay, old) {
        let key = old
            .findings
            .blockers
            .iter()
            .find(|b| b.group == group)
            .map(|b| b.key());
        if let Some(b) = key.and_then(|k| new.findings.blockers.iter().find(|b| b.key() == k)) {
            state.overlay = state::Overlay::Drilldown {
                group: b.group,
                scroll,
            };
        }
    }
}

/// Writes a blocker's drilldown to a text file (the current directory, else the temporary one)
/// and says where.
fn copy(s: &Snapshot, group: u32) -> String {
    let text = draw::drilldown::text(s, group);
    let file = format!(
        "hud-drilldown-{}-{group}.txt",
        s.analysis.model.header.target.pid
    );
    for dir in [PathBuf::from("."), std::env::temp_dir()] {
        let path = dir.join(&file);
        if std::fs::write(&path, &text).is_ok() {
            return format!("drilldown copied to {}", path.display());
        }
    }
    "could not write the drilldown anywhere (current and temporary directories)".into()
}

/// The cockpit with a headless terminal, timed as `cargo xtask bench tui` reports it: the first
/// frame, the complete panels, a redraw, and a window change. One line per measure.
pub fn bench_headless(
    opened: Opened,
    options: Options,
    size: (u16, u16),
) -> Result<String, TuiError> {
    let started = Instant::now();
    let theme = Theme { color: true };
    let mut terminal = Terminal::new(TestBackend::new(size.0, size.1))?;
    let worker = Worker::spawn(opened, options, crate::live::DEFAULT_WINDOW, None);
    let mut state = State::new(0, 1);
    let draw =
        |terminal: &mut Terminal<TestBackend>, state: &State, s: Option<&Snapshot>, w: &Worker| {
            let view = View {
                snapshot: s,
                progress: w.progress.now(),
                updating: false,
                theme,
                source: "capture",
                flame: None,
            };
            terminal
                .draw(|frame| draw::draw(frame, state, &view))
                .map(|_| ())
                .map_err(TuiError::from)
        };
    draw(&mut terminal, &state, None, &worker)?;
    let first_frame = started.elapsed();
    let snapshot = match worker.updates.recv() {
        Ok(Update::Ready(s)) => s,
        Ok(Update::Failed(e)) => return Err(e.into()),
        // The worker only ends without a word when its thread panicked.
        Err(_) => return Err(std::io::Error::other("the analysis thread stopped").into()),
    };
    let m = &snapshot.analysis.model;
    state = State::for_model(m);
    draw(&mut terminal, &state, Some(&snapshot), &worker)?;
    let complete = started.elapsed();
    let mut redraws = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        draw(&mut terminal, &state, Some(&snapshot), &worker)?;
        redraws.push(t.elapsed());
    }
    // A window of the middle tenth, then the next tenth: findings and a redraw each.
    let mut changes = Vec::new();
    let span = (m.end - m.start).max(10);
    for k in 4..9u64 {
        let t = Instant::now();
        state.window = Window {
            from: m.start + span * k / 10,
            to: m.start + span * (k + 1) / 10,
        };
        let s = worker::snapshot_of(&snapshot.analysis, state.window);
        draw(&mut terminal, &state, Some(&s), &worker)?;
        changes.push(t.elapsed());
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    // The flame graph of the whole recording: its first draw (the tree built), then a zoom
    // into the heaviest frame at each depth, drawn.
    let whole = worker::snapshot_of(&snapshot.analysis, Window::ALL);
    let whole = Arc::new(whole);
    let mut flames = flame::FlameCache::default();
    let t = Instant::now();
    state.window = Window::ALL;
    state.overlay = state::Overlay::Flame {
        scope: flame::Scope::All,
        weight: crate::analysis::profile::Weight::Cpu,
        zoom: 0,
        selected: 0,
    };
    let tree = flames.get(
        &whole,
        flame::Scope::All,
        crate::analysis::profile::Weight::Cpu,
    );
    draw_flame(&mut terminal, &state, &whole, &tree, theme)?;
    let flame_first = t.elapsed();
    let mut zooms = Vec::new();
    let mut at = 0;
    for _ in 0..8 {
        let Some(c) = tree.heaviest_child(at) else {
            break;
        };
        at = c;
        let t = Instant::now();
        state.overlay = state::Overlay::Flame {
            scope: flame::Scope::All,
            weight: crate::analysis::profile::Weight::Cpu,
            zoom: at,
            selected: at,
        };
        draw_flame(&mut terminal, &state, &whole, &tree, theme)?;
        zooms.push(t.elapsed());
    }
    Ok(format!(
        "tui first_frame_ms {:.1}\ntui complete_ms {:.1}\ntui redraw_ms {:.2}\ntui window_change_ms {:.1}\ntui flame_first_ms {:.1}\ntui flame_zoom_ms {:.2}\n",
        first_frame.as_secs_f64() * 1e3,
        complete.as_secs_f64() * 1e3,
        median(redraws),
        median(changes),
        flame_first.as_secs_f64() * 1e3,
        if zooms.is_empty() { 0.0 } else { median(zooms) }
    ))
}
