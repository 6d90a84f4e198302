//! The analysis every view reads: roles, blocking, hotspots, per-thread statistics and
//! diagnostics. Detection runs once over the whole capture; [`Analysis::findings`] answers any
//! time window from the same data, without symbolizing again.

pub mod advice;
pub mod classify;
pub mod coverage;
pub mod detect;
pub mod diagnostics;
pub mod diff;
pub mod earlier;
pub mod frames;
pub mod hotspots;
pub mod polls;
pub mod profile;
pub mod stats;
pub mod tasks;

use crate::model::Model;
use crate::objects::SearchPaths;
use crate::symbols::Symbols;
use coverage::Coverage;
use detect::{Blocker, Detection, Thresholds};
use diagnostics::Diagnostic;
use hotspots::{Hotspots, Ranking};
use stats::ThreadStats;

/// Options of an analysis.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub search: SearchPaths,
    pub thresholds: Thresholds,
    /// How the capture is read: salvage damaged frames or refuse them, and the decompression
    /// budget.
    pub read: hud_format::reader::ReadOptions,
    /// Where the target's source files are on this machine (the cockpit shows blamed lines).
    pub sources: crate::source_files::SourceFiles,
}

/// A time window `[from, to)` in capture time (CLOCK_MONOTONIC nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: u64,
    pub to: u64,
}

impl Window {
    /// Everything.
    pub const ALL: Window = Window {
        from: 0,
        to: u64::MAX,
    };

    /// The window of the capture from `from` to `to` after its start (either open-ended).
    pub fn relative(model: &Model, from: Option<u64>, to: Option<u64>) -> Window {
        Window {
            from: from.map_or(0, |f| model.start.saturating_add(f)),
            to: to.map_or(u64::MAX, |t| model.start.saturating_add(t)),
        }
    }

    /// The window cut to the recording: `[from, to)` within `[model.start, model.end]`.
    pub fn clip(&self, model: &Model) -> (u64, u64) {
        (self.from.max(model.start), self.to.min(model.end))
    }

    /// The part of the recording it covers, in nanoseconds.
    pub fn length_in(&self, model: &Model) -> u64 {
        let (from, to) = self.clip(model);
        to.saturating_sub(from)
    }
}

/// A finished analysis.
pub struct Analysis {
    pub options: Options,
    pub model: Model,
    pub symbols: Symbols,
    pub detection: Detection,
    pub diagnostics: Vec<Diagnostic>,
    /// Per stack id: whether the stack says what its thread did for the runtime.
    pub readable: Vec<bool>,
    /// The future each Tokio task was spawned with (format 1.2 captures with task ids).
    pub task_kinds: tasks::TaskKinds,
    /// Per detection group, over the whole capture: its call and advice (see [`Self::notes`]).
    notes: std::sync::OnceLock<Vec<Option<GroupNote>>>,
}

/// What the timeline exports say of each episode of a blocker: the call to move off the
/// runtime and the advice, judged over the whole capture.
#[derive(Clone, Debug)]
pub struct GroupNote {
    /// "thread::sleep in app::nap".
    pub call: String,
    /// The call's file:line (shortened), or the blame's.
    pub at: String,
    pub advice: String,
}

/// What happened in one window: what every panel of a view shows.
pub struct Findings {
    pub window: Window,
    /// Sorted by total time, all of them (views cut to their `--top`).
    pub blockers: Vec<Blocker>,
    pub hotspots: Hotspots,
    /// Per runtime thread (worker or current_thread), in tid order.
    pub per_worker: Vec<(u32, Hotspots)>,
    /// Overall samples per stack id (flame graphs), by stack id.
    pub per_stack: Vec<(u32, u64)>,
    /// Every thread, in tid order.
    pub threads: Vec<ThreadStats>,
    /// Mean share of the window the runtime threads spent on CPU.
    pub utilisation: f64,
    /// Mean share of the window the runtime threads spent runnable, waiting for a CPU.
    pub runnable_wait_share: f64,
    /// Off-CPU episodes the recorder kept that ended in the window.
    pub off_cpu_episodes: usize,
    /// What the verdict could judge.
    pub coverage: Coverage,
    /// The Tokio tasks seen (captures with task ids), most CPU first.
    pub tasks: Vec<tasks::TaskStats>,
    /// Exact poll durations per future type (`--poll-probes`).
    pub polls: Option<polls::PollFindings>,
}

/// Runtime threads runnable but waiting for a CPU at least this share of the time: worth saying
/// in the verdict (a starved CPU delays every task, as blocking does).
pub const PRESSURE_SHARE: f64 = 0.10;

/// The one-line answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing blocked a runtime thread past the thresholds, and the CPU was not starved.
    Normal,
    /// Something did, or the runtime threads waited for a CPU past [`PRESSURE_SHARE`].
    Caution,
    /// Nothing was found, but that means little: no runtime thread was found, or more than
    /// [`coverage::UNJUDGED_SHARE`] of the runtime threads' events had stacks cut short before
    /// they showed what the thread was doing. Never green.
    Unknown,
}

/// The verdict of a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub status: Status,
    /// Index (into [`Findings::blockers`]) of the blocker with the longest episode.
    pub worst: Option<usize>,
    /// The runtime threads' mean share of time waiting for a CPU, when past [`PRESSURE_SHARE`].
    pub pressure: Option<f64>,
    /// The share of the counted threads' events that could not be judged, when past
    /// [`coverage::UNJUDGED_SHARE`] (with any status: a CAUTION can be partial too).
    pub unjudged: Option<f64>,
}

impl Findings {
    pub fn verdict(&self) -> Verdict {
        let worst = self
            .blockers
            .iter()
            .enumerate()
            .max_by_key(|(i, b)| (b.max(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        let pressure =
            (self.runnable_wait_share >= PRESSURE_SHARE).then_some(self.runnable_wait_share);
        let c = &self.coverage;
        let unjudged = c.too_little_judged().then(|| c.unjudged_share());
        let status = if worst.is_some() || pressure.is_some() {
            Status::Caution
        } else if unjudged.is_some() || c.runtime_threads() == 0 {
            Status::Unknown
        } else {
            Status::Normal
        };
        Verdict {
            status,
            worst,
            pressure,
            unjudged,
        }
    }
}

impl Analysis {
    /// Classifies the threads, detects blocking and diagnoses the capture.
    pub fn new(options: Options, model: Model, symbols: Symbols) -> Self {
        // One cache of frame facts for both passes.
        Self::with_classifier(options, model, symbols, &frames::Classifier::default())
    }

    /// The same with a classifier that outlives this analysis: a live view makes a new analysis
    /// four times a second from the same symbols, and its frames' facts are already known.
    pub fn with_classifier(
        options: Options,
        mut model: Model,
        symbols: Symbols,
        cls: &frames::Classifier,
    ) -> Self {
        classify::classify(&mut model, &symbols, cls);
        let detection = detect::detect(&model, &symbols, options.thresholds, cls);
        let diagnostics = diagnostics::diagnose(&model, &symbols);
        let readable = coverage::readable_stacks(&model, &symbols, cls);
        let task_kinds = tasks::TaskKinds::find(&model, &symbols, cls);
        Analysis {
            task_kinds,
            options,
            model,
            symbols,
            detection,
            diagnostics,
            readable,
            notes: std::sync::OnceLock::new(),
        }
    }

    /// Per detection group: its call and advice over the whole capture (made once, on first
    /// use: only the timeline exports ask).
    pub fn notes(&self) -> &[Option<GroupNote>] {
        self.notes.get_or_init(|| {
            let mut notes = vec![None; self.detection.groups.len()];
            for b in detect::blockers(&self.detection, 0, u64::MAX) {
                let a = advice::advise(&b, &self.model);
                let at = a.at.as_ref().unwrap_or(&b.blame);
                notes[b.group as usize] = Some(GroupNote {
                    call: crate::view::wording::call_label(&b),
                    at: crate::view::file_line(at.file.as_deref(), at.line).unwrap_or_default(),
                    advice: a.text,
                });
            }
            notes
        })
    }

    /// The findings of `window`, with tables of `ranking.top` rows.
    pub fn findings(&self, window: Window, ranking: Ranking) -> Findings {
        let blockers = detect::blockers(&self.detection, window.from, window.to);
        self.findings_with(window, ranking, blockers)
    }

    /// The findings of `window` as a live view forgets them when its window of detail moves past
    /// `window.to`: blocking episodes that ended in it (one still running is counted later),
    /// every row of every table.
    pub fn findings_to_forget(&self, window: Window) -> Findings {
        let blockers = detect::blockers_ended(&self.detection, window.from, window.to);
        self.findings_with(window, Ranking::EVERY_ROW, blockers)
    }

    fn findings_with(&self, window: Window, ranking: Ranking, blockers: Vec<Blocker>) -> Findings {
        let m = &self.model;
        let Window { from, to } = window;
        let workers: Vec<u32> = m
            .threads
            .values()
            .filter(|t| t.role.runs_tasks())
            .map(|t| t.tid)
            .collect();
        let hot = hotspots::in_window(m, &self.symbols, &workers, from, to, ranking);
        let threads = stats::threads(m, &blockers, from, to);
        let length = window.length_in(m).max(1) as f64;
        let utilisation = stats::mean_over_runtime_threads(&threads, |t| t.utilisation);
        let runnable_wait_share =
            stats::mean_over_runtime_threads(&threads, |t| t.runnable_wait_ns() as f64 / length);
        let off_cpu_episodes = m
            .off_cpu
            .iter()
            .filter(|o| o.end >= from && o.end < to)
            .count();
        let coverage = coverage::in_window(m, &self.readable, from, to);
        let tasks = tasks::in_window(m, &self.task_kinds, &blockers, from, to);
        Findings {
            tasks,
            polls: polls::in_window(m, from, to),
            window,
            blockers,
            per_worker: workers.into_iter().zip(hot.per_thread).collect(),
            hotspots: hot.overall,
            per_stack: hot.per_stack,
            threads,
            utilisation,
            runnable_wait_share,
            off_cpu_episodes,
            coverage,
        }
    }
}
