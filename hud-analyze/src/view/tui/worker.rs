//! The analysis runs on its own thread: it reads and symbolizes the capture, publishes snapshots,
//! and answers window changes with new findings. The UI never waits for it.
//!
//! A finished capture is analyzed once. A growing one (a pipe, or a file followed while it is
//! written) is a [`crate::live`] session: frames are drained by a reader thread as they come,
//! and the session's cadence ([`session::run`]) decides when to analyze again.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use super::snapshot::{Progress, Snapshot};
use crate::analysis::diff::{Baseline, Side};
use crate::analysis::hotspots::Ranking;
use crate::analysis::{Analysis, Options, Window};
use crate::live::session::{self, Input};
use crate::live::{self, Live};
use crate::pipeline;
use crate::source::{Opened, Stream};
use crate::symbols::Arenas;

pub use crate::live::session::{Request, Update};

/// Rows per table in the cockpit (lists scroll).
pub const RANKING: Ranking = Ranking {
    top: 200,
    all_frames: false,
};

/// The handle the UI keeps.
pub struct Worker {
    pub progress: Arc<Progress>,
    requests: Sender<Input>,
    pub updates: Receiver<Update>,
}

impl Worker {
    /// Starts analyzing `opened` in the background: once for a file, live for a stream. With a
    /// `base` (`tui --base`), every snapshot is compared with it.
    pub fn spawn(
        opened: Opened,
        options: Options,
        window: Duration,
        base: Option<Arc<Baseline>>,
    ) -> Self {
        match opened {
            Opened::File(..) => Self::spawn_replay(opened, options, base),
            Opened::Stream(stream) => Self::spawn_live(stream, options, window, base),
        }
    }

    fn spawn_replay(opened: Opened, options: Options, base: Option<Arc<Baseline>>) -> Self {
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
                    let mut snapshot = snapshot_of(&analysis, window);
                    if let Some(base) = &base {
                        let side = Side::of(&snapshot.analysis, &snapshot.findings);
                        snapshot.vs_base = Some(Arc::new(base.compare(side)));
                    }
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

    fn spawn_live(
        stream: Stream,
        options: Options,
        window: Duration,
        base: Option<Arc<Baseline>>,
    ) -> Self {
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
                let base = base.as_deref();
                if let Err(e) = session::run(live, &incoming, &publish, &*observer, RANKING, base) {
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

/// The findings of `window`, as many rows as the cockpit lists, timed.
pub fn snapshot_of(analysis: &Arc<Analysis>, window: Window) -> Snapshot {
    live::snapshot::snapshot_of(analysis, window, RANKING)
}
