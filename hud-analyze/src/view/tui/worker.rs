//! The analysis runs on its own thread: it reads and symbolizes the capture, publishes the first
//! snapshot, then answers window changes with new findings. The UI never waits for it.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use super::snapshot::{Progress, Snapshot};
use crate::analysis::hotspots::Ranking;
use crate::analysis::{Analysis, Options, Window};
use crate::error::AnalyzeError;
use crate::pipeline;
use crate::source::Opened;

/// Rows per table in the cockpit (lists scroll).
pub const RANKING: Ranking = Ranking {
    top: 200,
    all_frames: false,
};

/// What the worker publishes.
pub enum Update {
    Ready(Arc<Snapshot>),
    Failed(AnalyzeError),
}

/// The handle the UI keeps.
pub struct Worker {
    pub progress: Arc<Progress>,
    requests: Sender<Window>,
    pub updates: Receiver<Update>,
}

impl Worker {
    /// Starts analyzing `opened` in the background.
    pub fn spawn(opened: Opened, options: Options) -> Self {
        let progress = Arc::new(Progress::default());
        let (requests, incoming) = mpsc::channel::<Window>();
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
                    // Wait for a change; only the newest request matters.
                    let Ok(mut next) = incoming.recv() else {
                        return;
                    };
                    while let Ok(newer) = incoming.try_recv() {
                        next = newer;
                    }
                    window = next;
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
    pub fn request(&self, window: Window) {
        let _ = self.requests.send(window);
    }
}

/// The findings of `window`, timed.
pub fn snapshot_of(analysis: &Arc<Analysis>, window: Window) -> Snapshot {
    let started = Instant::now();
    let findings = analysis.findings(window, RANKING);
    Snapshot {
        analysis: Arc::clone(analysis),
        findings,
        computed_in: started.elapsed(),
    }
}
