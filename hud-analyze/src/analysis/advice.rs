//! What to do about a blocker, in Tokio's terms: one piece of advice per kind, made specific by
//! the evidence (the call to move, the runtime's flavour, how long and how often it blocked).
//! docs/REPORT.md lists every kind with its advice and why.

use super::detect::Blocker;
use super::frames::Kind;
use crate::model::{Model, Role};
use crate::symbols::Frame;

/// Advice for one blocker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advice {
    /// What to do, in one or two sentences.
    pub text: String,
    /// The line it applies to: the call to move (its site), else the blamed frame.
    pub at: Option<Frame>,
}

/// The advice for blocker `b` of an analysis of `model`.
pub fn advise(b: &Blocker, model: &Model) -> Advice {
    let call = &b.call;
    // The call by its function's last path segments: `Mutex<T>::lock`, `std::thread::sleep`.
    let callee = call.callee.as_ref().map(|f| short_name(&f.function));
    let named = |fallback: &str| callee.clone().unwrap_or_else(|| fallback.to_owned());
    let longest = ms(b.max());
    let mut text = match b.kind {
        Kind::Cpu => match &callee {
            Some(c) => format!(
                "`{c}` ran on the runtime's thread for up to {longest}: move it off the runtime \
                 with `tokio::task::spawn_blocking(move || …).await`{}",
                if current_thread(b, model) {
                    ""
                } else {
                    ", or wrap it in `tokio::task::block_in_place(|| …)` where it must borrow \
                     from the task"
                }
            ),
            None => format!(
                "this async fn computed for up to {longest} without reaching an `.await`: move \
                 the work to `tokio::task::spawn_blocking`, or, in a loop, yield to the \
                 scheduler every ~1 ms of work with `tokio::task::yield_now().await` (or \
                 `tokio::task::consume_budget().await`)"
            ),
        },
        Kind::Sleep => format!(
            "replace `{}` with `tokio::time::sleep(…).await`, which lets the worker run other \
             tasks meanwhile",
            named("std::thread::sleep")
        ),
        Kind::Lock => {
            let p50 = b.quantile(0.5);
            if p50 < 5_000_000 && b.count() >= 10 {
                format!(
                    "`{}` was contended {} times (median wait {}): keep the critical section \
                     short (no I/O, no `.await` while the guard lives; copy out and drop it), or \
                     shard the lock; use `tokio::sync::Mutex` only where the guard must live \
                     across an `.await`",
                    named("the lock"),
                    b.count(),
                    ms(p50)
                )
            } else {
                format!(
                    "`{}` waited up to {longest} for a holder that keeps the lock long: find \
                     what the holder does while it holds it and shorten it; if the guard is \
                     held across an `.await`, use `tokio::sync::Mutex` (or `RwLock`) and \
                     `.lock().await`",
                    named("the lock")
                )
            }
        }
        Kind::Condvar => format!(
            "`{}` waits on a condition variable, holding the worker: signal the task with \
             `tokio::sync::Notify` (`notified().await`) or a `tokio::sync::watch` channel",
            named("the wait")
        ),
        Kind::Channel => format!(
            "`{}` blocks until the channel has room or a message: use `tokio::sync::mpsc` and \
             `recv().await` / `send(…).await`; for a std or crossbeam channel fed by threads, \
             receive in `spawn_blocking` and forward",
            named("the channel operation")
        ),
        Kind::Join => format!(
            "`{}` waits for a thread to finish: start the work with \
             `tokio::task::spawn_blocking` and `.await` its `JoinHandle`, or send its result \
             through a `tokio::sync::oneshot`",
            named("the join")
        ),
        Kind::Process => format!(
            "`{}` waits for a child process: use `tokio::process::Command` \
             (`.status().await`, `.output().await`)",
            named("the child process wait")
        ),
        Kind::Fsync => format!(
            "`{}` waits for the device to flush: call `tokio::fs::File::sync_all().await` \
             (it runs on the blocking pool), or batch writes and their sync in one \
             `spawn_blocking` job",
            named("the sync")
        ),
        Kind::FileIo => format!(
            "`{}` does file-system I/O on the worker: use `tokio::fs` (it runs the call on the \
             blocking pool) or wrap the whole job in `tokio::task::spawn_blocking`, one job \
             for many small calls",
            named("the file call")
        ),
        Kind::NetIo => format!(
            "`{}` uses a blocking std socket: use `tokio::net` (`TcpStream`, `UdpSocket`, \
             `UnixStream`) and `.await` its reads and writes",
            named("the socket call")
        ),
        Kind::Dns => format!(
            "`{}` resolves a name with the blocking resolver: use \
             `tokio::net::lookup_host(…).await` (or pass the name to \
             `tokio::net::TcpStream::connect`, which resolves on the blocking pool)",
            named("the lookup")
        ),
        Kind::BlockOn => format!(
            "`{}` runs a future to completion inside a task, blocking the worker until it is \
             done: `.await` the future instead (the caller is async already)",
            named("block_on")
        ),
        Kind::PageFault => "the thread waited for memory to be paged in (a memory-mapped file \
             read from disk, swapped-out memory, a userfaultfd): read the file with `tokio::fs` \
             or in `spawn_blocking`, or touch the mapping off the runtime first"
            .to_owned(),
        Kind::Log => format!(
            "`{}` writes a log line synchronously and the sink was slow (a full pipe, a slow \
             terminal, a contended stdout lock): log through a non-blocking writer \
             (`tracing_appender::non_blocking`) and keep `println!` off hot paths",
            named("the log write")
        ),
        Kind::Other => match &b.syscall {
            Some(sys) => format!(
                "blocked in the system call `{sys}`, which hud does not classify: run `{}` in \
                 `tokio::task::spawn_blocking`, or use Tokio's async equivalent",
                named("the call")
            ),
            None => "the stack does not show what the thread waited for (unknown): run the \
                 call in `tokio::task::spawn_blocking` once it is found"
                .to_owned(),
        },
    };
    if call.in_dependency {
        text = format!(
            "no frame of the program's own code is on the path: it blocks inside the \
             dependency's `{}`: look for its async API, or call it through \
             `spawn_blocking`. {}",
            named("code"),
            capitalized(&text)
        );
    }
    if current_thread(b, model) {
        text.push_str(
            ". This runs on a current_thread runtime: while it blocks, no other task of that \
             runtime runs",
        );
    }
    text.push('.');
    Advice {
        text,
        at: call.site.clone().or_else(|| Some(b.blame.clone())),
    }
}

/// Whether any of the blocker's episodes ran on a current_thread runtime's thread.
fn current_thread(b: &Blocker, model: &Model) -> bool {
    b.threads().iter().any(|t| {
        model
            .threads
            .get(t)
            .is_some_and(|t| t.role == Role::CurrentThread)
    })
}

/// A function's name from its last two path segments, generics kept and the standard
/// library's private modules left out: `Mutex<T>::lock`, `thread::sleep`, `app::compact` (a
/// closure keeps its function's name).
pub fn short_name(function: &str) -> String {
    const PRIVATE: &[&str] = &["functions", "poison", "inner", "mutex", "rwlock", "condvar"];
    let mut f = function;
    while let Some(outer) = f.strip_suffix("::{{closure}}") {
        f = outer;
    }
    let std = f.starts_with("std::") || f.starts_with("core::");
    let segments: Vec<String> = split_path(f)
        .into_iter()
        .filter(|s| !(std && PRIVATE.contains(s)))
        .map(short_qualified)
        .collect();
    let n = segments.len();
    segments[n.saturating_sub(2)..].join("::")
}

/// A qualified segment with its types by their names: `<std::fs::File as std::io::Read>` reads
/// `<File as Read>`, `<std::sys::sync::mutex::futex::Mutex>` reads `Mutex`.
fn short_qualified(segment: &str) -> String {
    let Some(inner) = segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return segment.to_owned();
    };
    let names: Vec<&str> = inner
        .split(" as ")
        .map(|p| split_path(p).last().copied().unwrap_or(p))
        .collect();
    match names.as_slice() {
        [one] => (*one).to_owned(),
        _ => format!("<{}>", names.join(" as ")),
    }
}

/// Splits a Rust path at `::` outside angle brackets.
fn split_path(f: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = f.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                out.push(&f[start..i]);
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&f[start..]);
    out
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_keep_type_and_method() {
        assert_eq!(
            short_name("std::sync::poison::mutex::Mutex<T>::lock"),
            "Mutex<T>::lock"
        );
        assert_eq!(short_name("std::thread::functions::sleep"), "thread::sleep");
        assert_eq!(short_name("std::fs::read::inner"), "fs::read");
        assert_eq!(
            short_name("<std::fs::File as std::io::Read>::read"),
            "<File as Read>::read"
        );
        assert_eq!(
            short_name("<std::sys::sync::mutex::futex::Mutex>::lock_contended"),
            "Mutex::lock_contended"
        );
        assert_eq!(
            short_name("<alloc::vec::Vec<T> as core::iter::Extend<T>>::extend"),
            "<Vec<T> as Extend<T>>::extend"
        );
        assert_eq!(short_name("app::compact"), "app::compact");
        assert_eq!(short_name("app::serve::{{closure}}"), "app::serve");
        assert_eq!(short_name("sleep"), "sleep");
    }
}
