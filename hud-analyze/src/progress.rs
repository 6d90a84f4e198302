//! A spinner on long phases, only when stderr is a terminal; phase timings on request.

use std::io::IsTerminal;

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        Self { bar }
    }

    /// A phase of unknown length: the spinner with a message.
    pub fn phase(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_style(indicatif::ProgressStyle::default_spinner());
            bar.set_message(what.to_owned());
        }
    }

    /// A phase of `total` steps: a bar with the message, advanced by [`Progress::advance`] from
    /// any thread.
    pub fn counted(&self, what: &str, total: u64) {
        if let Some(bar) = &self.bar {
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} ({eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what.to_owned());
            bar.set_position(0);
            bar.set_length(total);
        }
    }

    pub fn advance(&self, steps: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(steps);
        }
    }

    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// Wall time per phase on stderr, when `HUD_TIMINGS` is set (read by `cargo xtask bench analyze`).
pub struct Laps {
    enabled: bool,
    prefix: &'static str,
    clock: std::time::Instant,
}

impl Laps {
    /// `prefix` names the sub-phases of a phase ("symbolize." gives "timing symbolize.resolve").
    pub fn new(prefix: &'static str) -> Self {
        Self {
            enabled: std::env::var_os("HUD_TIMINGS").is_some(),
            prefix,
            clock: std::time::Instant::now(),
        }
    }

    /// Prints the time since the last lap (or since `new`) under `what`.
    pub fn lap(&mut self, what: &str) {
        if self.enabled {
            let secs = self.clock.elapsed().as_secs_f64();
            eprintln!("timing {}{what} {secs:.3} s", self.prefix);
        }
        self.clock = std::time::Instant::now();
    }
}
