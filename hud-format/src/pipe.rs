//! Pipes that carry a capture (`hud-record -o - | hud-analyze tui -`, ssh): a writer that finds
//! the pipe full waits, and a recorder that waits loses events, so both ends enlarge it.

use std::os::fd::RawFd;

/// Enlarges the pipe on `fd`, when it is one, to `wanted` bytes, or else to the most this
/// process may ask for (/proc/sys/fs/pipe-max-size; root may ask for more). Never shrinks it:
/// both ends of one pipe call this. Returns the pipe's size, or `None` when `fd` is not a pipe.
pub fn enlarge(fd: RawFd, wanted: usize) -> Option<usize> {
    // SAFETY: a zeroed stat is a valid buffer for fstat to fill.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor we were given, into our buffer.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 || stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    let most = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(1 << 20);
    // SAFETY: F_GETPIPE_SZ on a pipe.
    let current = usize::try_from(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }).ok()?;
    for size in [wanted, most.min(wanted)] {
        if size <= current {
            break;
        }
        let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ on a pipe; a refusal leaves it as it was.
        if unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) } >= 0 {
            break;
        }
    }
    // SAFETY: F_GETPIPE_SZ on a pipe.
    usize::try_from(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_pipe_grows_and_a_file_is_left_alone() {
        let mut fds = [0; 2];
        // SAFETY: pipe fills two descriptors we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let size = enlarge(fds[1], 1 << 20).expect("a pipe");
        assert!(size >= 1 << 20, "{size}");
        // The other end asking for less leaves it as it is.
        assert_eq!(enlarge(fds[0], 64 << 10), Some(size));
        // SAFETY: closing what pipe gave us.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let file = tempfile::tempfile().unwrap();
        assert_eq!(enlarge(file.as_raw_fd(), 1 << 20), None);
    }
}
