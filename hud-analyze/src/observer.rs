//! Progress of an analysis, told to whoever owns the terminal: the library never draws anything.
//!
//! The binary implements [`Observer`] with a progress bar and `HUD_TIMINGS`; a TUI implements it
//! with its status line; tests use [`Silent`].

use std::time::{Duration, Instant};

/// A step of the pipeline, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading and decompressing the capture's frames.
    Reading,
    /// Finding the object files (and debug files) of the stacks' addresses.
    Locating { stack_nodes: usize },
    /// Looking up addresses; advanced per address.
    Symbolizing,
    /// Roles, detection, hotspots.
    Analyzing,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Reading => write!(f, "reading the capture"),
            Phase::Locating { stack_nodes } => {
                write!(f, "locating objects for {stack_nodes} stack nodes")
            }
            Phase::Symbolizing => write!(f, "symbolizing addresses"),
            Phase::Analyzing => write!(f, "classifying threads and detecting blocking"),
        }
    }
}

/// Receives progress; every method has a do-nothing default. Called from pool threads too.
pub trait Observer: Sync {
    /// A phase starts; `total` is its number of steps when known.
    fn phase(&self, _phase: Phase, _total: Option<u64>) {}
    /// `steps` more steps of the current phase are done.
    fn advance(&self, _steps: u64) {}
    /// A named part of the work took `elapsed` ("model", "symbolize.resolve", ...).
    fn timing(&self, _name: &str, _elapsed: Duration) {}
    /// The analysis is over (clear any progress display).
    fn done(&self) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// Times consecutive parts of a phase and reports each to an observer.
pub(crate) struct Laps<'a> {
    observer: &'a dyn Observer,
    prefix: &'static str,
    clock: Instant,
}

impl<'a> Laps<'a> {
    /// `prefix` names the sub-phases ("symbolize." gives "symbolize.resolve").
    pub(crate) fn new(observer: &'a dyn Observer, prefix: &'static str) -> Self {
        Self {
            observer,
            prefix,
            clock: Instant::now(),
        }
    }

    /// Reports the time since the last lap (or since `new`) under `what`.
    pub(crate) fn lap(&mut self, what: &str) {
        self.observer
            .timing(&format!("{}{what}", self.prefix), self.clock.elapsed());
        self.clock = Instant::now();
    }
}
