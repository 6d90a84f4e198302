//! The capture's destination: a private file (mode 0600) or standard output.

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{RecordError, Result};

pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl Destination {
    pub fn describe(&self) -> String {
        match self {
            Destination::Stdout => "standard output".into(),
            Destination::File(p) => p.display().to_string(),
        }
    }
}

/// Opens the destination. An existing file is kept unless `force`.
pub fn open(dest: &Destination, force: bool) -> Result<Box<dyn Write + Send>> {
    match dest {
        Destination::Stdout => {
            hud_format::pipe::enlarge(1, PIPE_BYTES);
            Ok(Box::new(BufWriter::with_capacity(1 << 20, io::stdout())))
        }
        Destination::File(path) => {
            let file = open_private(path, force)?;
            Ok(Box::new(BufWriter::with_capacity(1 << 20, file)))
        }
    }
}

/// Pipe size asked for when standard output is a pipe: a few seconds of a context-switch storm's
/// capture (root may exceed /proc/sys/fs/pipe-max-size, 1 MiB).
const PIPE_BYTES: usize = 8 << 20;

fn open_private(path: &Path, force: bool) -> Result<fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| {
        RecordError::Output(match e.kind() {
            io::ErrorKind::AlreadyExists => format!(
                "{} already exists; pass --force to overwrite it or choose another -o",
                path.display()
            ),
            _ => format!("cannot create {}: {e}", path.display()),
        })
    })?;
    // Held until the capture is closed (or the recorder dies): a follower (`hud-analyze tui
    // --follow`) knows the capture is still growing while the lock is held, and a second
    // recorder cannot write the same file.
    file.try_lock().map_err(|e| {
        RecordError::Output(match e {
            std::fs::TryLockError::WouldBlock => format!(
                "{} is being written by another hud-record; choose another -o",
                path.display()
            ),
            std::fs::TryLockError::Error(e) => format!("cannot lock {}: {e}", path.display()),
        })
    })?;
    // --force on an existing file keeps its old mode: make it private too.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| RecordError::Output(format!("cannot make {} private: {e}", path.display())))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_never_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hudcap");
        drop(open_private(&path, false).unwrap());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = open_private(&path, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let held = open_private(&path, true).unwrap();
        let err = open_private(&path, true).unwrap_err();
        assert!(err.to_string().contains("another hud-record"), "{err}");
        drop(held);
        drop(open_private(&path, true).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
