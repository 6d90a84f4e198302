//! The one-line status a recording shows on a terminal, and when not to show it.

use std::time::{Duration, Instant};

use super::Writer;

/// Whether the terminal on standard error is in its usual line mode. A full-screen program on
/// the same terminal (the cockpit reading our pipe: `hud-record -o - | hud-analyze tui -`)
/// switches it to raw mode, and a status line would then be drawn over its screen.
fn terminal_is_line_mode() -> bool {
    // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 2 and a valid termios pointer.
    let ok = unsafe { libc::tcgetattr(2, &mut t) } == 0;
    !ok || t.c_lflag & libc::ICANON != 0
}

/// The one-line live status on a terminal.
pub(super) struct Status {
    pub(super) enabled: bool,
    last: std::cell::Cell<Option<Instant>>,
}

impl Status {
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            last: std::cell::Cell::new(None),
        }
    }

    pub(super) fn show(&self, started: Instant, writer: &Writer, lost: u64) {
        if !self.enabled
            || self
                .last
                .get()
                .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
            || !terminal_is_line_mode()
        {
            return;
        }
        self.last.set(Some(Instant::now()));
        let t = writer.totals();
        eprint!(
            "\r\x1b[2Krecording {:>6.1}s  switches {}  samples {}  off-cpu {}  lost {}  {:.1} MiB",
            started.elapsed().as_secs_f64(),
            t.switches,
            t.samples,
            t.off_cpu,
            lost,
            writer.bytes_written() as f64 / (1 << 20) as f64
        );
    }

    pub(super) fn clear(&self) {
        if self.enabled && terminal_is_line_mode() {
            eprint!("\r\x1b[2K");
        }
    }
}
