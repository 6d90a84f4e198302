//! `--live`: the cockpit (`hud-analyze tui --follow`) on the capture being written, in this
//! terminal. hud-record does not carry the analyzer: it runs the hud-analyze binary found next to
//! itself, else on PATH.
//!
//! Only the recorder keeps its privileges. Under sudo the viewer runs as the invoking user
//! (SUDO_UID / SUDO_GID, supplementary groups dropped), and it never opens the capture itself:
//! it inherits a read-only descriptor of it and follows `/dev/fd/N`, so a private (0600, root's)
//! capture needs no change of owner or mode.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};

use crate::error::{RecordError, Result};

/// The running viewer.
pub struct Viewer {
    child: Child,
}

/// The hud-analyze binary: next to this executable, then on PATH.
pub fn locate() -> Result<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("hud-analyze"));
    let on_path = std::env::var_os("PATH").map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("hud-analyze"))
            .collect::<Vec<_>>()
    });
    beside
        .into_iter()
        .chain(on_path.unwrap_or_default())
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            RecordError::Other(format!(
                "--live needs the hud-analyze binary next to hud-record ({}) or on PATH; \
                 install it, or record without --live and watch with \
                 `hud-analyze tui --follow CAPTURE`",
                std::env::current_exe()
                    .map(|e| e.with_file_name("hud-analyze").display().to_string())
                    .unwrap_or_else(|_| "hud-analyze".into())
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The user sudo was run by, when running under sudo as root.
fn invoking_user() -> Option<(u32, u32)> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |name: &str| std::env::var(name).ok()?.parse::<u32>().ok();
    match (id("SUDO_UID"), id("SUDO_GID")) {
        (Some(uid), Some(gid)) if uid != 0 => Some((uid, gid)),
        _ => None,
    }
}

impl Viewer {
    /// Starts the viewer on `capture` (the file being written).
    pub fn spawn(binary: &Path, capture: &Path) -> Result<Viewer> {
        let reader = File::open(capture).map_err(|e| {
            RecordError::Output(format!(
                "cannot open {} for the viewer: {e}",
                capture.display()
            ))
        })?;
        let fd = reader.as_raw_fd();
        let mut command = Command::new(binary);
        command
            .arg("tui")
            .arg("--follow")
            .arg(format!("/dev/fd/{fd}"));
        if let Some((uid, gid)) = invoking_user() {
            // std drops the supplementary groups when root sets a uid.
            command.uid(uid).gid(gid);
        }
        // The descriptor keeps its number (std's own exec-error pipe was opened while it was
        // open, so it has another): it only has to survive the exec.
        // The recorder's raised priority is its own: the cockpit runs at the usual niceness.
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, setpriority).
        unsafe {
            command.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::setpriority(libc::PRIO_PROCESS, 0, 0);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| RecordError::Other(format!("cannot start {}: {e}", binary.display())))?;
        // The child has its copy; ours closes here.
        drop(reader);
        Ok(Viewer { child })
    }

    /// The viewer's exit status, once it exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until the user closes the viewer.
    pub fn wait(mut self) -> Option<ExitStatus> {
        self.child.wait().ok()
    }
}
