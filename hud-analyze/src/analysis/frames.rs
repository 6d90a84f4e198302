//! What a frame is: the user's code, the Tokio runtime's poll or park path, a blocking call.
//!
//! Matching is on demangled function names and source paths, so it works whatever the threads
//! are called and whichever crate versions the target used.

use crate::symbols::{interned_id, Frame};

/// Frames of the runtime that poll a task: below them (innermost side) is the task's code.
const TASK_POLL: &[&str] = &[
    "tokio::runtime::task::harness::",
    "tokio::runtime::task::core::Core",
    "tokio::runtime::task::raw::poll",
    "tokio::runtime::scheduler::current_thread::CoreGuard::block_on",
];

/// Frames of a parked or idle runtime thread.
const PARK: &[&str] = &[
    "tokio::runtime::scheduler::multi_thread::park::",
    "tokio::runtime::scheduler::multi_thread::worker::Context::park",
    "tokio::runtime::scheduler::current_thread::Context::park",
    "tokio::runtime::park::",
    "tokio::runtime::driver::",
    "tokio::runtime::io::driver::",
    "tokio::runtime::time::",
];

/// Markers of a thread's role: the scheduler's own loop, which only its threads run. Not any
/// frame of the scheduler's module: a thread that wakes a task of a runtime (actix-web's
/// acceptor sending a connection through a channel) calls the scheduler's `Handle` too.
pub const WORKER: &[&str] = &[
    "tokio::runtime::scheduler::multi_thread::worker::run",
    "tokio::runtime::scheduler::multi_thread::worker::Context::",
];
pub const CURRENT_THREAD: &[&str] = &[
    "tokio::runtime::scheduler::current_thread::CoreGuard::",
    "tokio::runtime::scheduler::current_thread::Context::",
    "tokio::runtime::scheduler::current_thread::CurrentThread::block_on",
];
/// A blocking-pool thread's own entry: the loop the pool runs on its threads. Not any frame of
/// `blocking::pool`: a runtime thread that calls `spawn_blocking` has `Spawner` frames above its
/// own (actix-web's current_thread workers do), and a truncated stack would show only those.
pub const BLOCKING_POOL: &[&str] = &[
    "tokio::runtime::blocking::pool::Inner::run",
    "tokio::runtime::blocking::pool::Spawner::spawn_thread",
];

/// Where a thread's stack begins: libc's thread start (`clone3`, `start_thread`) or the
/// program's entry (`_start`, `__libc_start_main`). A stack that reaches one was read whole.
pub fn is_thread_root(frame: &Frame) -> bool {
    let f = frame.function.trim_start_matches("__GI_");
    f.ends_with("clone3")
        || f == "__clone"
        || f == "clone"
        || f == "start_thread"
        || f == "_start"
        || f.starts_with("__libc_start_")
}

/// The user's own code: Rust sources outside the standard library, dependencies from a registry
/// or git, and the toolchain. C and assembly (libc, named from its debug file) never are: blame
/// goes to the Rust code that called them.
pub fn is_user(frame: &Frame) -> bool {
    let Some(file) = frame.file.as_deref() else {
        return false;
    };
    if !file.ends_with(".rs") {
        return false;
    }
    let library_path = [
        "/.cargo/registry/",
        "/.cargo/git/",
        "/rustc/",
        "/rustlib/src/rust/",
        "/cargo/registry/",
    ];
    if library_path.iter().any(|p| file.contains(p)) {
        return false;
    }
    let f = &*frame.function;
    let library_fn = [
        "std::", "core::", "alloc::", "tokio::", "<std::", "<core::", "<alloc::", "<tokio::",
    ];
    !library_fn.iter().any(|p| f.starts_with(p))
}

/// An async fn's or async block's body (its poll), as Rust names them.
pub fn is_async_body(frame: &Frame) -> bool {
    let f = &*frame.function;
    f.contains("{{closure}}")
        || f.contains("{closure#")
        || f.contains("{async_fn")
        || f.contains("{async_block")
}

/// The kind of blocking an off-CPU stack shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// On CPU too long in one poll.
    Cpu,
    Sleep,
    Lock,
    Io,
    Dns,
    Other,
}

impl Kind {
    /// How a kind reads for people: the label, except that CPU blocking is a "long poll".
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cpu => "long poll",
            k => k.label(),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Sleep => "sleep",
            Kind::Lock => "lock",
            Kind::Io => "io",
            Kind::Dns => "dns",
            Kind::Other => "other",
        }
    }
}

/// Tells the kind from the stack (innermost first) and the state the thread left in.
pub fn off_cpu_kind(frames: &[Frame], state: u16) -> Kind {
    let names: Vec<&str> = frames.iter().map(|f| &*f.function).collect();
    let has = |p: &str| names.iter().any(|n| n.contains(p));
    let leaf = names.first().copied().unwrap_or("");
    if has("getaddrinfo") || has("ToSocketAddrs") || has("lookup_host") {
        Kind::Dns
    } else if has("std::thread::sleep")
        || ["nanosleep", "clock_nanosleep", "usleep", "sleep"]
            .iter()
            .any(|s| leaf.ends_with(s))
    {
        Kind::Sleep
    } else if has("::mutex::")
        || has("Mutex<")
        || has("::rwlock::")
        || has("RwLock<")
        || has("Condvar")
        || has("parking_lot")
        || has("::futex::")
        || has("Barrier")
    {
        Kind::Lock
    } else if state & 2 != 0
        || has("std::fs::")
        || has("std::io::")
        || has("std::net::")
        || [
            "read",
            "write",
            "pread64",
            "pwrite64",
            "readv",
            "writev",
            "recv",
            "send",
            "recvfrom",
            "sendto",
            "fsync",
            "fdatasync",
            "open",
            "openat64",
            "__libc_read",
            "__libc_write",
        ]
        .iter()
        .any(|s| leaf.trim_start_matches("__GI_").trim_start_matches("__") == *s)
    {
        Kind::Io
    } else {
        Kind::Other
    }
}

/// Per-frame facts, computed once per distinct (function, file) and cached: the string matching
/// above is the costly part of detection on large captures.
pub mod flags {
    pub const POLL: u8 = 1;
    pub const PARK: u8 = 2;
    pub const USER: u8 = 4;
    pub const ASYNC: u8 = 8;
    pub const WORKER: u8 = 16;
    pub const CURRENT_THREAD: u8 = 32;
    pub const BLOCKING_POOL: u8 = 64;
    pub const ROOT: u8 = 128;
    /// Frames that show the runtime: a stack with one says what its thread was doing for Tokio.
    pub const RUNTIME: u8 = POLL | PARK | WORKER | CURRENT_THREAD | BLOCKING_POOL;
}

/// Facts of frames, cached by interned name and file. A live view keeps one for the session
/// (names stay interned for the whole session, and stack ids keep their meaning), so it also
/// keeps the role each stack votes for.
#[derive(Default)]
pub struct Classifier {
    cache: std::cell::RefCell<rustc_hash::FxHashMap<(usize, usize, bool), u8>>,
    /// Per stack id: not seen yet (None), or the role index its frames vote for.
    pub(crate) stack_votes: std::cell::RefCell<Vec<Option<Option<usize>>>>,
    /// Per stack id: not seen yet (None), or whether it can be judged (see [`Self::readable`]).
    stack_readable: std::cell::RefCell<Vec<Option<bool>>>,
}

impl Classifier {
    pub fn flags(&self, f: &Frame) -> u8 {
        let key = (
            interned_id(&f.function),
            f.file.as_ref().map_or(0, interned_id),
            f.file.is_some(),
        );
        if let Some(v) = self.cache.borrow().get(&key) {
            return *v;
        }
        let name = &*f.function;
        let mut v = 0;
        if TASK_POLL.iter().any(|p| name.contains(p)) {
            v |= flags::POLL;
        }
        if PARK.iter().any(|p| name.contains(p)) {
            v |= flags::PARK;
        }
        if is_user(f) {
            v |= flags::USER;
        }
        if is_async_body(f) {
            v |= flags::ASYNC;
        }
        if WORKER.iter().any(|p| name.contains(p)) {
            v |= flags::WORKER;
        }
        if CURRENT_THREAD.iter().any(|p| name.contains(p)) {
            v |= flags::CURRENT_THREAD;
        }
        if BLOCKING_POOL.iter().any(|p| name.contains(p)) {
            v |= flags::BLOCKING_POOL;
        }
        if is_thread_root(f) {
            v |= flags::ROOT;
        }
        self.cache.borrow_mut().insert(key, v);
        v
    }

    /// Whether stack `stack` says what its thread was doing for the runtime: it shows a runtime
    /// frame (a task's poll, the park path, a scheduler), or it was read down to the thread's
    /// first frame without meeting one (the thread was not in the runtime). A stack cut short
    /// before either (no frame pointers and no copy, a copy over the budget or too short) can
    /// hide a blocked poll: the verdict counts it as not judged.
    pub fn readable(
        &self,
        model: &crate::model::Model,
        symbols: &crate::symbols::Symbols,
        stack: u32,
    ) -> bool {
        let mut cache = self.stack_readable.borrow_mut();
        if cache.len() <= stack as usize {
            cache.resize(model.stacks.len().max(stack as usize) + 1, None);
        }
        *cache[stack as usize].get_or_insert_with(|| {
            let mut outermost = 0;
            for f in symbols.frames(model, stack) {
                let v = self.flags(f);
                if v & flags::RUNTIME != 0 {
                    return true;
                }
                outermost = v;
            }
            outermost & flags::ROOT != 0
        })
    }

    /// Index of the first task-poll frame: frames before it run inside the task.
    pub fn task_poll_index(&self, frames: &[Frame]) -> Option<usize> {
        frames.iter().position(|f| self.flags(f) & flags::POLL != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>) -> Frame {
        Frame {
            function: function.into(),
            file: file.map(Into::into),
            line: 1,
            object: 0,
            inlined: false,
            recovered: None,
        }
    }

    fn kind_of(functions: &[&str], state: u16) -> Kind {
        let frames: Vec<Frame> = functions.iter().map(|f| frame(f, None)).collect();
        off_cpu_kind(&frames, state)
    }

    #[test]
    fn kinds_from_the_stack_and_the_state() {
        assert_eq!(
            kind_of(&["clock_nanosleep", "std::thread::sleep"], 1),
            Kind::Sleep
        );
        assert_eq!(kind_of(&["usleep", "app::x"], 1), Kind::Sleep);
        assert_eq!(
            kind_of(
                &[
                    "syscall",
                    "<std::sys::sync::mutex::futex::Mutex>::lock_contended"
                ],
                1
            ),
            Kind::Lock
        );
        assert_eq!(
            kind_of(&["__GI___read", "app::x"], 1),
            Kind::Io,
            "a read syscall leaf"
        );
        assert_eq!(
            kind_of(&["[libc.so.6+0x10]", "app::x"], 2),
            Kind::Io,
            "state D is I/O"
        );
        assert_eq!(kind_of(&["getaddrinfo", "std::net::lookup"], 1), Kind::Dns);
        assert_eq!(kind_of(&["epoll_wait", "app::x"], 1), Kind::Other);
    }

    #[test]
    fn user_code_is_told_by_path_and_name() {
        assert!(is_user(&frame(
            "app::handler",
            Some("/srv/app/src/main.rs")
        )));
        assert!(!is_user(&frame("app::handler", None)), "no file: unknown");
        assert!(
            !is_user(&frame(
                "__GI___clock_nanosleep",
                Some("../sysdeps/unix/sysv/linux/clock_nanosleep.c")
            )),
            "libc, named from its debug file"
        );
        assert!(!is_user(&frame(
            "tokio::runtime::park",
            Some("/home/u/.cargo/registry/src/index.crates.io-1/tokio-1.0/src/park.rs")
        )));
        assert!(!is_user(&frame(
            "<std::fs::File as std::io::Read>::read",
            Some("/srv/x.rs")
        )));
        assert!(is_async_body(&frame("app::serve::{{closure}}", None)));
        assert!(is_async_body(&frame("app::serve::{async_fn#0}", None)));
        assert!(!is_async_body(&frame("app::checksum", None)));
    }
}
