//! A terminal for tests that drive the cockpit as a user would: tmux, typed keys, screen text.

use std::process::Command;
use std::time::Duration;

/// A tmux session, killed when dropped.
pub struct Tmux(String);

impl Tmux {
    /// A shell in a `width`×`height` pane, so the terminal's state after the cockpit shows too.
    pub fn start(width: u16, height: u16) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("hud-e2e-{}-{n}", std::process::id());
        let out = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .args(["bash", "--norc", "--noprofile"])
            .env("PS1", "$ ")
            .output()
            .expect("tmux runs (cargo xtask setup installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmux(name)
    }

    /// Types `keys` (tmux key names), one at a time: a terminal reads an Esc followed at once by
    /// another sequence as one Alt-key.
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let status = Command::new("tmux")
                .args(["send-keys", "-t", &self.0, k])
                .status()
                .unwrap();
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    pub fn line(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.0, "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
        self.keys(&["Enter"]);
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once it satisfies `ready`, or a panic showing it.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if std::time::Instant::now() > deadline {
                panic!("waited 20 s for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// The count column of a demo blocker's row in the cockpit (`function`, at its ground-truth
/// line), when the row is on `screen`.
pub fn blocker_count(screen: &str, function: &str) -> Option<u64> {
    let line = format!("main.rs:{}", crate::truth_line(function));
    let row = screen
        .lines()
        .find(|l| l.contains(function) && l.contains(&line))?;
    // Columns after file:line: count, total ms, p99, max.
    let after = row.split(&line).nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}
