//! The live session's cadence, apart from any view: take in every frame as it arrives, analyze
//! the window of detail every [`LIVE_PERIOD`] to [`LIVE_PERIOD_MAX`] (longer when analyses cost
//! more), and answer a consumer's requests (a window, the session's totals) with a [`Snapshot`]
//! from the newest analysis. The cockpit is one consumer; a headless one (a live report, the
//! flight recorder's trigger) would read the same snapshots.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::snapshot::{live_snapshot, LiveInfo, Snapshot};
use super::{Feed, Live};
use crate::analysis::diff::{Baseline, Side};
use crate::analysis::hotspots::Ranking;
use crate::analysis::{Analysis, Window};
use crate::error::AnalyzeError;

/// Shortest time between two live analyses: the screen changes at most this often.
pub const LIVE_PERIOD: Duration = Duration::from_millis(250);
/// Longest time between two live analyses (when frames arrived): the screen changes at least
/// twice a second.
pub const LIVE_PERIOD_MAX: Duration = Duration::from_millis(500);
/// Between the two, the period is this many times what the last update cost (analysis and
/// findings), so that following a service takes a few percent of a core: with the busy demo's
/// 2-minute window full, updates every 250 ms took 7.6 % of a core, at 20× their cost 5.5 %.
const PERIOD_PER_COST: u32 = 30;

/// What the session publishes.
pub enum Update {
    Ready(Arc<Snapshot>),
    Failed(AnalyzeError),
}

/// What a consumer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The findings of this window.
    Window(Window),
    /// Live: the whole session's totals (true) or the window of detail (false).
    Accumulated(bool),
}

/// What the session waits for: frames from the reader, requests from the consumer.
pub enum Input {
    Feed(Feed),
    Request(Request),
}

/// The session's loop: takes in every frame that arrived, analyzes every [`LIVE_PERIOD`] to
/// [`LIVE_PERIOD_MAX`] (longer when analyses cost more), answers requests from the newest
/// analysis with findings ranked by `ranking`, each compared with `base` when there is one.
/// Returns when the consumer is gone.
pub fn run(
    mut live: Live<'_>,
    incoming: &Receiver<Input>,
    publish: &Sender<Update>,
    observer: &dyn crate::observer::Observer,
    ranking: Ranking,
    base: Option<&Baseline>,
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
            let mut snapshot = live_snapshot(
                a,
                view.window,
                view.accumulated,
                live.earlier(),
                info,
                ranking,
            );
            if let Some(base) = base {
                // The session's totals count what left the window of detail: its time too.
                let earlier_ns = if snapshot.live.as_ref().is_some_and(|l| l.accumulated)
                    && view.window == Window::ALL
                {
                    live.earlier().length
                } else {
                    0
                };
                let side = Side {
                    analysis: a,
                    findings: &snapshot.findings,
                    earlier_ns,
                };
                snapshot.vs_base = Some(Arc::new(base.compare(side)));
            }
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
