//! Following a capture that a recorder is still writing: the end of the file means "wait for
//! more" for as long as a writer holds the file.
//!
//! hud-record holds an exclusive lock (`flock`) on the capture from creating it until it is
//! closed; the lock goes when the recorder exits, however it exits (even `kill -9`). So the
//! follower, at the end of the file, asks for a shared lock without waiting: refused means the
//! writer is still there; granted means it is gone, and after one last read the end of the file
//! is the end of the capture. A capture from a recorder without the lock reads as finished.

use std::fs::{File, TryLockError};
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

/// How often the end of the file is looked at again. The recorder writes a chunk every flush
/// interval (250 ms by default while live), so this adds at most 50 ms to what the screen shows.
const POLL: Duration = Duration::from_millis(50);

/// A reader of a growing capture file.
pub struct Follow {
    file: File,
    /// The writer was seen gone: the next end of file is the end.
    writer_gone: bool,
}

impl Follow {
    /// Opens `path`; `/dev/fd/N` takes over inherited descriptor N instead of opening the file
    /// again (`hud-record --live` hands its viewer the capture that way: the viewer runs as the
    /// invoking user and may not open root's private capture itself).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = match inherited(path) {
            Some(file) => file,
            // Without blocking: a FIFO with no writer would block `open` itself.
            None => hud_format::reader::open_nonblocking(path)?,
        };
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(
                "--follow reads a capture file; read a pipe with `-` instead",
            ));
        }
        Ok(Follow {
            file,
            writer_gone: false,
        })
    }
}

/// The descriptor `/dev/fd/N` names, when it is open in this process and not a standard stream.
fn inherited(path: &Path) -> Option<File> {
    use std::os::fd::FromRawFd;
    let fd: i32 = path.to_str()?.strip_prefix("/dev/fd/")?.parse().ok()?;
    // SAFETY: fcntl only asks whether the descriptor is open.
    if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: an open descriptor this process inherited for this purpose; nothing else in the
    // analyzer uses it, so the File becomes its only owner.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// Whether any process holds the file's exclusive lock (a recorder writing it).
pub fn writer_present(file: &File) -> bool {
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        // Locks not supported here (some network file systems): we cannot tell, so the capture
        // is taken as finished rather than waited for without end.
        Err(TryLockError::Error(_)) => false,
    }
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 || buf.is_empty() || self.writer_gone {
                return Ok(n);
            }
            if writer_present(&self.file) {
                std::thread::sleep(POLL);
            } else {
                // Read once more: the writer's last bytes may have landed after our read.
                self.writer_gone = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn waits_while_a_writer_holds_the_lock_and_ends_when_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hudcap");
        let mut writer = File::create(&path).unwrap();
        writer.lock().unwrap();
        writer.write_all(b"abc").unwrap();
        let mut follow = Follow::open(&path).unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            follow.read_to_end(&mut all).unwrap();
            all
        });
        std::thread::sleep(Duration::from_millis(200));
        writer.write_all(b"def").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !reader.is_finished(),
            "the follower stopped while the writer held the lock"
        );
        writer.write_all(b"ghi").unwrap();
        drop(writer);
        assert_eq!(reader.join().unwrap(), b"abcdefghi");
    }

    #[test]
    fn a_file_nobody_writes_reads_as_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hudcap");
        std::fs::write(&path, b"xyz").unwrap();
        let mut all = Vec::new();
        Follow::open(&path).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, b"xyz");
    }
}
