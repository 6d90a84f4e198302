//! The analysis runs on its own thread: it reads and symbolizes the capture, publishes snapshots,
//! and answers window changes with new findings. The UI never waits for it.
//!
//! A finished capture is analyzed once. A growing one (a pipe, or a file followed while it is
//! written) goes through [`crate::live`]: frames are drained by a reader thread as they come,
//! and the analysis is redone over the window of detail every [`LIVE_PERIOD`] to
//! [`LIVE_PERIOD_MAX`].

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::snapshot::{LiveInfo, Progress, Snapshot};
use crate::analysis::earlier::Earlier;
use crate::analysis::hotspots::Ranking;
use crate::analysis::{Analysis, Options, Window};
use crate::error::AnalyzeError;
use crate::live::{self, Feed, Live};
use crate::pipeline;
use crate::source::{Opened, Stream};
use crate::symbols::Arenas;

/// Rows per table in the cockpit (lists scroll).
pub const RANKING: Ranking = Ranking {
    top: 200,
    all_frames: false,
};

/// Shortest time between two live analyses: the screen changes at most this often.
pub const LIVE_PERIOD: Duration = Duration::from_millis(250);
/// Longest time between two live analyses (when frames arrived): the screen changes at least
/// twice a second.
pub const LIVE_PERIOD_MAX: Duration = Duration::from_millis(500);
/// Between the two, the period is this many times what the last update cost (analysis and
/// findings), so that following a service takes a few percent of a core: with the busy demo's
/// 2-minute window full, updates every 250 ms took 7.6 % of a core, at 20× their cost 5.5 %.
const PERIOD_PER_COST: u32 = 30;

/// What the worker publishes.
pub enum Update {
    Ready(Arc<Snapshot>),
    Failed(AnalyzeError),
}

/// What the UI asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The findings of this window.
    Window(Window),
    /// Live: the whole session's totals (true) or the window of detail (false).
    Accumulated(bool),
}

/// The handle the UI keeps.
pub struct Worker {
    pub progress: Arc<Progress>,
    requests: Sender<Input>,
    pub updates: Receiver<Update>,
}

/// What the live worker waits for: frames from the reader, requests from the UI.
enum Input {
    Feed(Feed),
    Request(Request),
}

impl Worker {
    /// Starts analyzing `opened` in the background: once for a file, live for a stream.
    pub fn spawn(opened: Opened, options: Options, window: Duration) -> Self {
        match opened {
            Opened::File(..) => Self::spawn_replay(opened, options),
            Opened::Stream(stream) => Self::spawn_live(stream, options, window),
        }
    }

    fn spawn_replay(opened: Opened, options: Options) -> Self {
        let progress = Arc::new(Progress::default());
        let (requests, incoming) = mpsc::channel::<Input>();
        let (publish, updates) = mpsc::channel();
        let observer = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("hud-analysis".into())
            .spawn(move || {
                let analysis = match pipeline::analyze_opened(opened, options, &*observer) {
                    Ok(a) => Arc::new(a),
                    Err(e) => {
                        let _ = publish.send(Update::Failed(e));
                        return;
                    }
                };
                let mut window = Window::ALL;
                loop {
                    let snapshot = snapshot_of(&analysis, window);
                    if publish.send(Update::Ready(Arc::new(snapshot))).is_err() {
                        return;
                    }
                    // Wait for a change; only the newest window matters.
                    let Ok(first) = incoming.recv() else {
                        return;
                    };
                    for input in std::iter::once(first).chain(incoming.try_iter()) {
                        if let Input::Request(Request::Window(w)) = input {
                            window = w;
                        }
                    }
                }
            })
            .expect("spawn the analysis thread");
        Worker {
            progress,
            requests,
            updates,
        }
    }

    fn spawn_live(stream: Stream, options: Options, window: Duration) -> Self {
        let progress = Arc::new(Progress::default());
        let (requests, incoming) = mpsc::channel::<Input>();
        let (publish, updates) = mpsc::channel();
        let (header, version) = live::spawn_reader(stream, requests.clone(), Input::Feed);
        let observer = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("hud-analysis".into())
            .spawn(move || {
                live::yield_to_the_recorder();
                let arenas = Arenas::default();
                let live = Live::new(&arenas, header, version, options, window);
                if let Err(e) = follow(live, &incoming, &publish, &*observer) {
                    let _ = publish.send(Update::Failed(e));
                }
            })
            .expect("spawn the analysis thread");
        Worker {
            progress,
            requests,
            updates,
        }
    }

    /// Asks for the findings of `window`.
    pub fn request(&self, request: Request) {
        let _ = self.requests.send(Input::Request(request));
    }
}

/// The live worker's loop: takes in every frame that arrived, analyzes every [`LIVE_PERIOD`] to
/// [`LIVE_PERIOD_MAX`] (longer when analyses cost more), answers requests from the newest
/// analysis. Returns when the UI is gone.
fn follow(
    mut live: Live<'_>,
    incoming: &Receiver<Input>,
    publish: &Sender<Update>,
    observer: &dyn crate::observer::Observer,
) -> Result<(), AnalyzeError> {
    let mut analysis: Option<Arc<Analysis>> = None;
    let mut view = View {
        window: Window::ALL,
        accumulated: false,
    };
    let mut analyzed_at: Option<Instant> = None;
    let mut period = LIVE_PERIOD;
    let mut received_at = Instant::now();
    loop {
        let due = analyzed_at.map_or(Duration::ZERO, |t| period.saturating_sub(t.elapsed()));
        let wait = if live.has_news() {
            due
        } else {
            Duration::from_secs(1)
        };
        let mut changed = false;
        let first = match incoming.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        // Everything that is there already (frames come in bursts of a chunk or more), but not
        // for longer than an update may wait: a source faster than this loop still gets shown.
        let draining = Instant::now();
        let mut next = first;
        while let Some(input) = next.take() {
            match input {
                Input::Feed(Feed::Frame(frame)) => {
                    live.push(frame)?;
                    received_at = Instant::now();
                }
                Input::Feed(Feed::End(ending)) => live.end(ending),
                Input::Feed(Feed::Damaged(damage)) => live.damaged(damage),
                Input::Feed(Feed::Failed(e)) => return Err(e),
                Input::Request(Request::Window(w)) => {
                    changed |= view.window != w;
                    view.window = w;
                }
                Input::Request(Request::Accumulated(a)) => {
                    changed |= view.accumulated != a;
                    view.accumulated = a;
                }
            }
            if draining.elapsed() < LIVE_PERIOD_MAX {
                next = incoming.try_recv().ok();
            }
        }
        let ripe = analyzed_at.is_none_or(|t| t.elapsed() >= period) || live.ending().is_some();
        let started = Instant::now();
        let analyzed = live.has_news() && ripe;
        if analyzed {
            analysis = Some(live.analyze(observer)?);
            analyzed_at = Some(Instant::now());
            changed = true;
        }
        if let (true, Some(a)) = (changed, &analysis) {
            let info = LiveInfo {
                ended: live.ending().cloned(),
                accumulated: view.accumulated,
                received_at,
                earlier: live.earlier().length,
            };
            let snapshot = live_snapshot(a, view, live.earlier(), info);
            if analyzed {
                // What an update costs: the analysis and the findings the screen shows.
                period = (started.elapsed() * PERIOD_PER_COST).clamp(LIVE_PERIOD, LIVE_PERIOD_MAX);
            }
            if publish.send(Update::Ready(Arc::new(snapshot))).is_err() {
                return Ok(());
            }
        }
    }
}

/// What the UI looks at in a live capture.
#[derive(Clone, Copy)]
struct View {
    window: Window,
    accumulated: bool,
}

/// The findings of `window`, timed.
pub fn snapshot_of(analysis: &Arc<Analysis>, window: Window) -> Snapshot {
    let started = Instant::now();
    let findings = analysis.findings(window, RANKING);
    Snapshot {
        analysis: Arc::clone(analysis),
        findings,
        computed_in: started.elapsed(),
        live: None,
    }
}

/// A live snapshot: the window's findings, or the whole session's when accumulated and no
/// narrower window is selected.
fn live_snapshot(
    analysis: &Arc<Analysis>,
    view: View,
    earlier: &Earlier,
    info: LiveInfo,
) -> Snapshot {
    let started = Instant::now();
    let findings = if view.accumulated && view.window == Window::ALL && !earlier.is_empty() {
        let detail = analysis.findings(Window::ALL, Ranking::EVERY_ROW);
        earlier.accumulate(&detail, analysis.model.duration(), RANKING)
    } else {
        analysis.findings(view.window, RANKING)
    };
    Snapshot {
        analysis: Arc::clone(analysis),
        findings,
        computed_in: started.elapsed(),
        live: Some(info),
    }
}
