//! The capture's destination: a private file (mode 0600) or standard output.
//!
//! hud-record runs as root in directories others may write to, so a file is never opened by its
//! final name. It is written as a new temporary file beside it (created exclusively, without
//! following symlinks, mode 0600) and renamed into place once recording has started
//! ([`Publication::publish`]): a symlink planted at the final name is replaced, never followed; an
//! existing capture is replaced only with `--force`, and never while another recorder writes it;
//! a recorder that fails to start leaves nothing behind; and nothing is chmod-ed that hud-record
//! did not create. A FIFO or a character device named with `--force` (`-o /dev/null`) is written
//! as it is, without a rename and without touching its mode.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{RecordError, Result};

pub enum Destination {
    Stdout,
    File(PathBuf),
    /// `--flight-recorder DIR`: a ring of segment files and dumps (`crate::flight`).
    Ring(PathBuf),
}

impl Destination {
    pub fn describe(&self) -> String {
        match self {
            Destination::Stdout => "standard output".into(),
            Destination::File(p) => p.display().to_string(),
            Destination::Ring(dir) => format!("a flight recorder's ring in {}", dir.display()),
        }
    }
}

/// What an opened destination still needs when recording starts ([`Publication::publish`]): a
/// file's rename, or standard output's release.
pub struct Publication {
    pending: Option<Pending>,
    /// Standard output holds the capture's first bytes until recording starts: a cockpit at the
    /// other end of a pipe (`-o - | hud-analyze tui -`) takes over the terminal when they arrive,
    /// and the recorder's "recording …" line, printed to the same terminal after it, drew over
    /// the cockpit (the attach takes longer on a loaded machine, and a CI run lost that race).
    release: Option<Arc<AtomicBool>>,
}

/// A writer that keeps what it is given, flushes included, until released; then writes it all
/// out and passes everything through.
struct Held<W: Write> {
    inner: W,
    released: Arc<AtomicBool>,
    kept: Vec<u8>,
}

impl<W: Write> Held<W> {
    fn catch_up(&mut self) -> io::Result<bool> {
        if !self.released.load(Ordering::Acquire) {
            return Ok(false);
        }
        if !self.kept.is_empty() {
            self.inner.write_all(&self.kept)?;
            self.kept = Vec::new();
        }
        Ok(true)
    }
}

impl<W: Write> Write for Held<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.catch_up()? {
            self.inner.write(buf)
        } else {
            self.kept.extend_from_slice(buf);
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.catch_up()? {
            self.inner.flush()
        } else {
            Ok(())
        }
    }
}

/// A temporary file waiting to be renamed to its final name. Dropped unpublished (the recorder
/// failed to start), it is removed.
struct Pending {
    temporary: PathBuf,
    destination: PathBuf,
    force: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.temporary);
    }
}

/// Pipe size asked for when standard output is a pipe: a few seconds of a context-switch storm's
/// capture (root may exceed /proc/sys/fs/pipe-max-size, 1 MiB).
const PIPE_BYTES: usize = 8 << 20;

fn output_error(message: String) -> RecordError {
    RecordError::Output(message)
}

/// Checks that `dest` can be written (for a fast, clear refusal before anything is attached).
pub fn check(dest: &Destination, force: bool) -> Result<()> {
    match dest {
        Destination::Stdout | Destination::Ring(_) => Ok(()),
        Destination::File(path) => existing(path, force).map(|_| ()),
    }
}

/// What is at the final path now: `Some(true)` a device or FIFO to write into as it is,
/// `Some(false)` a file or symlink to replace, `None` nothing.
fn existing(path: &Path, force: bool) -> Result<Option<bool>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(output_error(format!(
                "cannot look at {}: {e}",
                path.display()
            )))
        }
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(output_error(format!(
            "{} is a directory; -o names the capture file",
            path.display()
        )));
    }
    if !force {
        return Err(output_error(format!(
            "{} already exists; pass --force to replace it or choose another -o",
            path.display()
        )));
    }
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(Some(true));
    }
    if kind.is_file() || kind.is_symlink() {
        return Ok(Some(false));
    }
    Err(output_error(format!(
        "{} is not a regular file; choose another -o",
        path.display()
    )))
}

type Writer = Box<dyn Write + Send>;

/// Opens the destination. An existing file is replaced only with `force`, and only when
/// [`Publication::publish`] is called.
pub fn open(dest: &Destination, force: bool) -> Result<(Writer, Publication)> {
    let path = match dest {
        Destination::Stdout => {
            hud_format::pipe::enlarge(1, PIPE_BYTES);
            let released = Arc::new(AtomicBool::new(false));
            let writer = Held {
                inner: BufWriter::with_capacity(1 << 20, io::stdout()),
                released: Arc::clone(&released),
                kept: Vec::new(),
            };
            return Ok((
                Box::new(writer),
                Publication {
                    pending: None,
                    release: Some(released),
                },
            ));
        }
        Destination::File(path) => path,
        Destination::Ring(dir) => {
            return Err(output_error(format!(
                "{} is a flight recorder's directory: its ring is opened by the flight recorder",
                dir.display()
            )))
        }
    };
    if existing(path, force)? == Some(true) {
        // A device or FIFO the user named: written as it is, never replaced or chmod-ed.
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| output_error(format!("cannot open {}: {e}", path.display())))?;
        let writer = BufWriter::with_capacity(1 << 20, file);
        return Ok((
            Box::new(writer),
            Publication {
                pending: None,
                release: None,
            },
        ));
    }
    let temporary = temporary_beside(path)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temporary)
        .map_err(|e| output_error(format!("cannot create {}: {e}", temporary.display())))?;
    let pending = Pending {
        temporary,
        destination: path.clone(),
        force,
    };
    // Held until the capture is closed (or the recorder dies): a follower (`hud-analyze tui
    // --follow`) knows the capture is still growing while the lock is held, and a second
    // recorder does not replace it.
    file.try_lock()
        .map_err(|e| output_error(format!("cannot lock {}: {e}", pending.temporary.display())))?;
    let writer = BufWriter::with_capacity(1 << 20, file);
    Ok((
        Box::new(writer),
        Publication {
            pending: Some(pending),
            release: None,
        },
    ))
}

/// `.NAME.partial-PID` in the destination's directory: the same file system, so the rename is
/// atomic.
fn temporary_beside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| output_error(format!("{} names no file", path.display())))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

impl Publication {
    /// Nothing to do when recording starts (a flight recorder's ring has no final name).
    pub fn nothing() -> Self {
        Publication {
            pending: None,
            release: None,
        }
    }

    /// Gives the capture its final name (recording has started). Without `--force` an existing
    /// file is never replaced, even one created since the start; with it, a capture another
    /// recorder still writes is not replaced either.
    pub fn publish(&mut self) -> Result<()> {
        if let Some(release) = self.release.take() {
            // Standard output: what was kept goes out with the next write or flush (after the
            // recorder's "recording …" line).
            release.store(true, Ordering::Release);
        }
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        let destination = &pending.destination;
        if pending.force {
            if let Ok(other) = open_no_follow(destination) {
                if other.metadata().is_ok_and(|m| m.is_file())
                    && matches!(other.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
                {
                    return Err(output_error(format!(
                        "{} is being written by another hud-record; choose another -o",
                        destination.display()
                    )));
                }
            }
            fs::rename(&pending.temporary, destination)
        } else {
            rename_no_replace(&pending.temporary, destination)
        }
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => output_error(format!(
                "{} appeared while hud-record started; pass --force to replace it",
                destination.display()
            )),
            _ => output_error(format!(
                "cannot rename {} to {}: {e}",
                pending.temporary.display(),
                destination.display()
            )),
        })?;
        // Renamed: nothing to remove any more.
        std::mem::forget(pending);
        Ok(())
    }
}

fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// rename(2) that fails with AlreadyExists instead of replacing (renameat2 RENAME_NOREPLACE).
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // The system call itself: the static (musl) build's libc has no renameat2 wrapper.
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn standard_output_keeps_the_capture_until_recording_starts() {
        let released = Arc::new(AtomicBool::new(false));
        let mut held = Held {
            inner: Vec::new(),
            released: Arc::clone(&released),
            kept: Vec::new(),
        };
        held.write_all(b"header").unwrap();
        held.flush().unwrap();
        assert!(held.inner.is_empty(), "nothing before recording starts");
        let mut publication = Publication {
            pending: None,
            release: Some(released),
        };
        publication.publish().unwrap();
        held.write_all(b", chunk").unwrap();
        held.flush().unwrap();
        assert_eq!(held.inner, b"header, chunk");
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn write_capture(path: &Path, force: bool, text: &[u8]) -> Result<()> {
        let (mut writer, mut publication) = open(&Destination::File(path.to_path_buf()), force)?;
        writer.write_all(text).unwrap();
        publication.publish()?;
        writer.flush().unwrap();
        Ok(())
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".partial-"))
            .collect()
    }

    #[test]
    fn private_and_never_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hudcap");
        write_capture(&path, false, b"one").unwrap();
        assert_eq!(mode(&path), 0o600);
        let err = write_capture(&path, false, b"two").unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"one");
        write_capture(&path, true, b"three").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"three");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_symlink_at_the_name_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link.hudcap");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // Without --force: refused.
        assert!(write_capture(&link, false, b"capture").is_err());
        // With it: the link is replaced by the capture; its target is untouched.
        write_capture(&link, true, b"capture").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(mode(&victim), 0o644);
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&link).unwrap(), b"capture");
    }

    #[test]
    fn a_device_is_written_as_it_is() {
        let before = mode(Path::new("/dev/null"));
        write_capture(Path::new("/dev/null"), true, b"capture").unwrap();
        assert_eq!(mode(Path::new("/dev/null")), before);
        assert!(write_capture(Path::new("/dev/null"), false, b"x").is_err());
    }

    #[test]
    fn a_recorder_that_fails_to_start_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hudcap");
        let (mut writer, publication) = open(&Destination::File(path.clone()), false).unwrap();
        writer.write_all(b"header").unwrap();
        drop((writer, publication));
        assert!(!path.exists());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_capture_being_written_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hudcap");
        let (first_writer, mut first) = open(&Destination::File(path.clone()), true).unwrap();
        first.publish().unwrap();
        let (_, mut second) = open(&Destination::File(path.clone()), true).unwrap();
        let err = second.publish().unwrap_err();
        assert!(err.to_string().contains("another hud-record"), "{err}");
        drop(second);
        drop((first_writer, first));
        // Once the first is done, --force replaces it.
        write_capture(&path, true, b"next").unwrap();
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_file_appearing_meanwhile_is_not_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hudcap");
        let (_writer, mut publication) = open(&Destination::File(path.clone()), false).unwrap();
        fs::write(&path, b"someone else's").unwrap();
        let err = publication.publish().unwrap_err();
        assert!(err.to_string().contains("appeared"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"someone else's");
    }
}
