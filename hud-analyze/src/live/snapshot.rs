//! What a consumer of the analysis reads: an immutable analysis and the findings of one window,
//! published whole. Views only read the newest snapshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hud_format::reader::Ending;

use crate::analysis::earlier::Earlier;
use crate::analysis::hotspots::Ranking;
use crate::analysis::{Analysis, Findings, Window};

/// An analysis and the findings of the window the consumer selected.
pub struct Snapshot {
    pub analysis: Arc<Analysis>,
    pub findings: Findings,
    /// How long the findings took (shown when slow).
    pub computed_in: Duration,
    /// Set when the capture is read as it grows (a pipe, or a file followed).
    pub live: Option<LiveInfo>,
    /// The window compared with a base capture (`tui --base`).
    pub vs_base: Option<Arc<crate::analysis::diff::Diff>>,
}

/// The state of a live capture when the snapshot was made.
#[derive(Clone, Debug)]
pub struct LiveInfo {
    /// `None` while the capture grows; how it ended, once it did (the view is then a replay).
    pub ended: Option<Ending>,
    /// The findings are the whole session's (forgotten totals merged), not the window's.
    pub accumulated: bool,
    /// When the newest frame arrived (for the age, when the capture comes from another machine).
    pub received_at: Instant,
    /// Nanoseconds of the session no longer held in detail (older than the live window).
    pub earlier: u64,
}

impl LiveInfo {
    /// Still growing.
    pub fn following(&self) -> bool {
        self.ended.is_none()
    }
}

/// The findings of `window`, ranked by `ranking`, timed.
pub fn snapshot_of(analysis: &Arc<Analysis>, window: Window, ranking: Ranking) -> Snapshot {
    let started = Instant::now();
    let findings = analysis.findings(window, ranking);
    Snapshot {
        analysis: Arc::clone(analysis),
        findings,
        computed_in: started.elapsed(),
        live: None,
        vs_base: None,
    }
}

/// A live snapshot: the window's findings, or the whole session's when `accumulated` and no
/// narrower window is selected.
pub fn live_snapshot(
    analysis: &Arc<Analysis>,
    window: Window,
    accumulated: bool,
    earlier: &Earlier,
    info: LiveInfo,
    ranking: Ranking,
) -> Snapshot {
    let started = Instant::now();
    let findings = if accumulated && window == Window::ALL && !earlier.is_empty() {
        let detail = analysis.findings(Window::ALL, Ranking::EVERY_ROW);
        earlier.accumulate(&detail, analysis.model.duration(), ranking)
    } else {
        analysis.findings(window, ranking)
    };
    Snapshot {
        analysis: Arc::clone(analysis),
        findings,
        computed_in: started.elapsed(),
        live: Some(info),
        vs_base: None,
    }
}
