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

/// The runtime's plumbing: what runs a thread and polls a task without being either (thread
/// start, `catch_unwind`, closures' `call_once`, Tokio's scheduler, harness, coop budget,
/// context and blocking pool). Flame graphs fold it into one frame per role and the report's
/// inclusive tables hide it, whatever share of the samples it has.
pub fn is_plumbing(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "tokio::runtime::scheduler::",
        "tokio::runtime::task::",
        "tokio::runtime::context",
        "tokio::runtime::blocking::",
        "tokio::runtime::runtime::",
        "tokio::runtime::handle::",
        "tokio::runtime::park::",
        "tokio::runtime::coop",
        "tokio::task::coop::",
        "tokio::task::local::",
        "tokio::loom::",
        "tokio::util::",
        "<tokio::runtime::",
        "<tokio::task::local::",
        "<tokio::util::",
        "std::sys::thread::",
        "<std::sys::thread::",
        "std::sys::pal::unix::thread::",
        "<std::sys::pal::unix::thread::",
        "std::sys::backtrace::",
        "std::thread::local::",
        "std::thread::lifecycle::",
        "std::thread::Builder::",
        "<std::thread::",
        "std::rt::",
        "std::panicking::",
        "std::panic::catch_unwind",
        "std::panic::resume_unwind",
        "core::ops::function::",
        "<core::ops::function::",
        "<core::panic::unwind_safe::AssertUnwindSafe",
        "<alloc::boxed::Box<F,A> as core::ops::function::FnOnce",
        "<alloc::boxed::Box<dyn core::ops::function::FnOnce",
        "core::panic::unwind_safe::",
        "__rust_try",
        "__rust_begin_short_backtrace",
        "std::thread::Thread",
    ];
    let f = function.trim_start_matches("__GI_");
    PREFIXES.iter().any(|p| f.starts_with(p))
        || f == "main"
        || f.ends_with("clone3")
        || f == "__clone"
        || f == "start_thread"
        || f == "_start"
        || f.starts_with("__libc_start_")
}

/// A frame of the runtime that polls a task (see `TASK_POLL`).
pub fn is_task_poll(function: &str) -> bool {
    TASK_POLL.iter().any(|p| function.contains(p))
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

/// A frame of a dependency: Rust code from a registry or git checkout, not the standard
/// library's and not Tokio's (a library the program uses, where a lock or a read may be taken
/// without any frame of the program's own code on the path).
pub fn is_dependency(frame: &Frame) -> bool {
    let f = &*frame.function;
    let rust = frame.file.as_deref().is_some_and(|p| p.ends_with(".rs")) || f.contains("::");
    let runtime = [
        "std::", "core::", "alloc::", "tokio::", "<std::", "<core::", "<alloc::", "<tokio::", "<&",
        "<dyn ", "<[",
    ];
    rust && !f.starts_with('[') && !is_user(frame) && !runtime.iter().any(|p| f.starts_with(p))
}

/// An async fn's or async block's body (its poll), as Rust names them.
pub fn is_async_body(frame: &Frame) -> bool {
    let f = &*frame.function;
    f.contains("{{closure}}")
        || f.contains("{closure#")
        || f.contains("{async_fn")
        || f.contains("{async_block")
}

/// The kind of blocking: what the thread waited for, told from its stack and its state. Each
/// kind has its own fix ([`super::advice`]); one that cannot be told is [`Kind::Other`], with the
/// system call named where the stack shows it, never a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// On CPU too long in one poll.
    Cpu,
    /// `std::thread::sleep` and libc's sleeps.
    Sleep,
    /// A mutex or read-write lock (std, parking_lot, a reentrant lock, a `Once` being run).
    Lock,
    /// A condition variable wait (std, parking_lot) or a barrier.
    Condvar,
    /// A channel's blocking receive or send (std mpsc, crossbeam, flume, Tokio's `blocking_*`).
    Channel,
    /// Waiting for a thread to finish (`JoinHandle::join`).
    Join,
    /// Starting a child process or waiting for it (`std::process`).
    Process,
    /// Flushing a file to its device (`sync_all`, `sync_data`, `fsync`).
    Fsync,
    /// File-system reads, writes, opens and metadata (`std::fs`, `std::io` on files).
    FileIo,
    /// Sockets through `std::net` or `std::os::unix::net`.
    NetIo,
    /// Name resolution (`getaddrinfo`, `ToSocketAddrs`).
    Dns,
    /// An executor run inside a task (`futures::executor::block_on` and the like).
    BlockOn,
    /// Blocked outside any system call: a major page fault (mapped file, swapped memory).
    PageFault,
    /// Writing to stdout or stderr, or a logging library's sink.
    Log,
    Other,
}

impl Kind {
    /// How a kind reads for people: the label, except that CPU blocking is a "long poll".
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cpu => "long poll",
            Kind::FileIo => "file io",
            Kind::NetIo => "net io",
            Kind::PageFault => "page fault",
            k => k.label(),
        }
    }

    /// The JSON value (`kind` in hud.report/2).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Sleep => "sleep",
            Kind::Lock => "lock",
            Kind::Condvar => "condvar",
            Kind::Channel => "channel",
            Kind::Join => "join",
            Kind::Process => "process",
            Kind::Fsync => "fsync",
            Kind::FileIo => "file_io",
            Kind::NetIo => "net_io",
            Kind::Dns => "dns",
            Kind::BlockOn => "block_on",
            Kind::PageFault => "page_fault",
            Kind::Log => "log",
            Kind::Other => "other",
        }
    }

    /// Every kind, in the order docs and tests list them.
    pub const ALL: [Kind; 15] = [
        Kind::Cpu,
        Kind::Sleep,
        Kind::Lock,
        Kind::Condvar,
        Kind::Channel,
        Kind::Join,
        Kind::Process,
        Kind::Fsync,
        Kind::FileIo,
        Kind::NetIo,
        Kind::Dns,
        Kind::BlockOn,
        Kind::PageFault,
        Kind::Log,
        Kind::Other,
    ];
}

/// Executors that block their thread until a future completes. Inside a task's poll one is a
/// nested executor: the worker waits on it instead of running tasks.
const BLOCK_ON: &[&str] = &[
    "futures_executor::local_pool::block_on",
    "futures_executor::local_pool::run_executor",
    "futures::executor::",
    "pollster::block_on",
    "futures_lite::future::block_on",
    "async_io::driver::block_on",
    "async_std::task::block_on",
    "smol::block_on",
    "tokio::runtime::park::CachedParkThread::block_on",
    "tokio::runtime::context::blocking::BlockingRegionGuard::block_on",
    "tokio::runtime::runtime::Runtime::block_on",
    "tokio::runtime::handle::Handle::block_on",
];

/// Whether a frame is a nested executor's (see [`BLOCK_ON`]).
pub fn is_block_on(frame: &Frame) -> bool {
    let f = &*frame.function;
    BLOCK_ON.iter().any(|p| f.contains(p))
}

/// `tokio::task::block_in_place`: the worker hands its core to another thread first, so what
/// blocks inside it does not block the runtime (the fix hud advises for long polls).
pub fn is_block_in_place(frame: &Frame) -> bool {
    frame
        .function
        .contains("tokio::runtime::scheduler::multi_thread::worker::block_in_place")
}

/// A libc function's name as the system call it makes: `__GI___clock_nanosleep`,
/// `__libc_recv` and `__pread64` read `clock_nanosleep`, `recv` and `pread64`, whichever libc
/// build named them; futex waits (`syscall` from std's futex, nptl's lock and join waits) read
/// `futex`. C symbols only: a Rust function's name says nothing of the call it makes.
pub fn syscall_name(frames: &[Frame]) -> Option<String> {
    let leaf = frames.first()?;
    // A Rust path (rustix makes raw system calls from Rust code: which one is unknown), or an
    // address without a symbol.
    if leaf.function.starts_with('[') || leaf.function.contains("::") {
        return None;
    }
    let mut name: &str = &leaf.function;
    for prefix in ["__GI___", "__GI_", "__libc_", "__"] {
        name = name.strip_prefix(prefix).unwrap_or(name);
    }
    let name = name.trim_end_matches("_nocancel");
    let caller = frames.get(1).map_or("", |f| &*f.function);
    if name.contains("futex")
        || name.starts_with("lll_")
        || name.starts_with("pthread_")
        || (name == "syscall" && caller.contains("futex"))
    {
        return Some("futex".into());
    }
    Some(name.to_owned())
}

/// System calls by the kind of blocking they are (as [`syscall_name`] reads them).
const PROCESS_CALLS: &[&str] = &[
    "wait4",
    "waitpid",
    "waitid",
    "posix_spawn",
    "fork",
    "vfork",
    "clone",
];
const SLEEP_CALLS: &[&str] = &["nanosleep", "clock_nanosleep", "usleep", "sleep"];
const SYNC_CALLS: &[&str] = &[
    "fsync",
    "fdatasync",
    "sync_file_range",
    "syncfs",
    "msync",
    "sync",
];
const NET_CALLS: &[&str] = &[
    "recv", "send", "recvfrom", "sendto", "recvmsg", "sendmsg", "accept", "accept4", "connect",
];
const FILE_CALLS: &[&str] = &[
    "read",
    "write",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "readv",
    "writev",
    "open",
    "open64",
    "openat",
    "openat64",
    "close",
    "stat",
    "statx",
    "fstat",
    "fstatat",
    "lseek",
    "lseek64",
    "ftruncate",
    "fallocate",
    "rename",
    "unlink",
    "mkdir",
    "getdents64",
    "copy_file_range",
    "sendfile",
];

/// Whether the innermost frame is a system call hud tells the kind of (the thread was in the
/// kernel, in that call, when sampled): on CPU there, the time is the call's, not the program's.
pub fn in_system_call(frames: &[Frame]) -> bool {
    syscall_name(frames).is_some_and(|name| {
        name == "futex"
            || [
                PROCESS_CALLS,
                SLEEP_CALLS,
                SYNC_CALLS,
                NET_CALLS,
                FILE_CALLS,
            ]
            .iter()
            .any(|calls| calls.contains(&name.as_str()))
    })
}

/// Tells the kind from the stack (innermost first) and the state the thread left in (1 S,
/// 2 D, [`STATE_IN_FAULT`](hud_format::wire::STATE_IN_FAULT) from the kernel for a page
/// fault). The first rule that matches wins, so a kind whose wait goes through another's
/// machinery comes first: a nested executor parks like a lock, a log line takes stdout's lock
/// and writes like file io, a channel waits on a futex.
pub fn off_cpu_kind(frames: &[Frame], state: u16) -> Kind {
    // Only what runs inside the task's poll: the runtime's own frames outside it (a
    // current_thread runtime's `block_on`) say nothing of the wait.
    let poll = frames
        .iter()
        .position(|f| TASK_POLL.iter().any(|p| f.function.contains(p)))
        .unwrap_or(frames.len());
    let frames = &frames[..poll];
    let names: Vec<&str> = frames.iter().map(|f| &*f.function).collect();
    let has = |p: &str| names.iter().any(|n| n.contains(p));
    let any = |ps: &[&str]| ps.iter().any(|p| has(p));
    let syscall = syscall_name(frames);
    let is = |ps: &[&str]| syscall.as_deref().is_some_and(|s| ps.contains(&s));
    if u32::from(state) & hud_format::wire::STATE_IN_FAULT != 0 {
        Kind::PageFault
    } else if frames.iter().any(is_block_on) {
        Kind::BlockOn
    } else if any(&[
        "std::io::stdio::",
        "log::__private_api",
        "<log::",
        "tracing_subscriber::fmt",
        "tracing_appender::",
        "env_logger::",
        "log4rs::",
        "slog",
        "fern::",
        "flexi_logger::",
    ]) {
        Kind::Log
    } else if any(&["getaddrinfo", "ToSocketAddrs", "lookup_host", "LookupHost"])
        || is(&["getaddrinfo", "gethostbyname"])
    {
        Kind::Dns
    } else if any(&[
        "std::process::",
        "::process::process_inner::",
        "posix_spawn",
    ]) || is(PROCESS_CALLS)
    {
        Kind::Process
    } else if any(&[
        "std::thread::JoinInner",
        "std::thread::JoinHandle",
        "std::thread::join_handle::",
        "std::thread::scoped::",
        "crossbeam_utils::thread::",
        "pthread_join",
        "pthread_clockjoin",
    ]) {
        Kind::Join
    } else if any(&[
        "std::sync::mpsc",
        "std::sync::mpmc",
        "crossbeam_channel::",
        "flume::",
        "::blocking_recv",
        "::blocking_send",
        "async_channel::",
    ]) {
        Kind::Channel
    } else if any(&["Barrier"]) {
        Kind::Lock
    } else if any(&["Condvar", "pthread_cond_", "condvar::"]) {
        Kind::Condvar
    } else if any(&[
        "::mutex::",
        "Mutex<",
        "Mutex>",
        "::rwlock::",
        "RwLock<",
        "RwLock>",
        "parking_lot",
        "ReentrantLock",
        "::once::",
        "pthread_mutex_",
        "pthread_rwlock_",
        "lll_lock",
    ]) {
        Kind::Lock
    } else if has("std::thread::sleep") || has("std::thread::functions::sleep") || is(SLEEP_CALLS) {
        Kind::Sleep
    } else if any(&["sync_all", "sync_data"]) || is(SYNC_CALLS) {
        Kind::Fsync
    } else if any(&[
        "std::net::",
        "std::sys::net::",
        "std::os::unix::net::",
        "::net::connection::",
    ]) || is(NET_CALLS)
    {
        Kind::NetIo
    } else if any(&["std::fs::", "std::io::", "std::sys::fs::"]) || is(FILE_CALLS) || state & 2 != 0
    {
        Kind::FileIo
    } else {
        Kind::Other
    }
}

/// Per-frame facts, computed once per distinct (function, file) and cached: the string matching
/// above is the costly part of detection on large captures.
pub mod flags {
    pub const POLL: u16 = 1;
    pub const PARK: u16 = 2;
    pub const USER: u16 = 4;
    pub const ASYNC: u16 = 8;
    pub const WORKER: u16 = 16;
    pub const CURRENT_THREAD: u16 = 32;
    pub const BLOCKING_POOL: u16 = 64;
    pub const ROOT: u16 = 128;
    /// A nested executor's frame (see `BLOCK_ON`).
    pub const BLOCK_ON: u16 = 256;
    /// `tokio::task::block_in_place`: what runs inside no longer holds the worker's core.
    pub const BLOCK_IN_PLACE: u16 = 512;
    /// Frames that show the runtime: a stack with one says what its thread was doing for Tokio.
    pub const RUNTIME: u16 = POLL | PARK | WORKER | CURRENT_THREAD | BLOCKING_POOL;
}

/// Facts of frames, cached by interned name and file. A live view keeps one for the session
/// (names stay interned for the whole session, and stack ids keep their meaning), so it also
/// keeps the role each stack votes for.
#[derive(Default)]
pub struct Classifier {
    cache: std::cell::RefCell<rustc_hash::FxHashMap<(usize, usize, bool), u16>>,
    /// Per stack id: not seen yet (None), or the role index its frames vote for.
    pub(crate) stack_votes: std::cell::RefCell<Vec<Option<Option<usize>>>>,
    /// Per stack id: not seen yet (None), or whether it can be judged (see [`Self::readable`]).
    stack_readable: std::cell::RefCell<Vec<Option<bool>>>,
}

impl Classifier {
    pub fn flags(&self, f: &Frame) -> u16 {
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
        if is_block_on(f) {
            v |= flags::BLOCK_ON;
        }
        if is_block_in_place(f) {
            v |= flags::BLOCK_IN_PLACE;
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

    /// Stacks as glibc 2.41 and std 1.9x name them (innermost first, the program's frame last).
    #[test]
    fn kinds_from_the_stack_and_the_state() {
        let cases: &[(&[&str], u16, Kind)] = &[
            (
                &[
                    "__GI___clock_nanosleep",
                    "std::thread::functions::sleep",
                    "app::x",
                ],
                1,
                Kind::Sleep,
            ),
            (&["usleep", "app::x"], 1, Kind::Sleep),
            (
                &[
                    "syscall",
                    "std::sys::pal::unix::futex::futex_wait",
                    "<std::sys::sync::mutex::futex::Mutex>::lock_contended",
                    "std::sync::poison::mutex::Mutex<T>::lock",
                    "app::x",
                ],
                1,
                Kind::Lock,
            ),
            (
                &[
                    "syscall",
                    "std::sys::pal::unix::futex::futex_wait",
                    "<std::sys::sync::rwlock::futex::RwLock>::write_contended",
                    "app::x",
                ],
                1,
                Kind::Lock,
            ),
            (
                &[
                    "syscall",
                    "parking_lot::raw_mutex::RawMutex::lock_slow",
                    "app::x",
                ],
                1,
                Kind::Lock,
            ),
            (
                &[
                    "syscall",
                    "std::sys::pal::unix::futex::futex_wait",
                    "<std::sys::sync::condvar::futex::Condvar>::wait_optional_timeout",
                    "std::sync::poison::condvar::Condvar::wait_timeout<T>",
                    "app::x",
                ],
                1,
                Kind::Condvar,
            ),
            (
                &[
                    "syscall",
                    "std::sys::sync::thread_parking::futex::Parker::park",
                    "std::sync::mpmc::context::Context::wait_until",
                    "std::sync::mpmc::list::Channel<T>::recv",
                    "std::sync::mpsc::Receiver<T>::recv",
                    "app::x",
                ],
                1,
                Kind::Channel,
            ),
            (
                &[
                    "__futex_abstimed_wait_common64",
                    "__pthread_clockjoin_ex",
                    "std::sys::thread::unix::Thread::join",
                    "std::thread::JoinInner<T>::join",
                    "app::x",
                ],
                1,
                Kind::Join,
            ),
            (
                &[
                    "__GI___wait4",
                    "std::sys::process::unix::unix::Process::wait",
                    "std::process::Command::status",
                    "app::x",
                ],
                1,
                Kind::Process,
            ),
            (
                &["__GI___fsync", "std::fs::File::sync_all", "app::x"],
                1,
                Kind::Fsync,
            ),
            (&["fdatasync", "app::x"], 2, Kind::Fsync),
            (
                &["__GI___libc_read", "std::fs::read::inner", "app::x"],
                1,
                Kind::FileIo,
            ),
            (
                &["__libc_open64", "std::fs::OpenOptions::_open", "app::x"],
                2,
                Kind::FileIo,
            ),
            (&["[libc.so.6+0x10]", "app::x"], 2, Kind::FileIo),
            (
                &[
                    "__libc_recv",
                    "std::sys::net::connection::socket::Socket::recv_with_flags",
                    "<std::net::tcp::TcpStream as std::io::Read>::read",
                    "app::x",
                ],
                1,
                Kind::NetIo,
            ),
            (&["__libc_connect", "app::x"], 1, Kind::NetIo),
            (&["getaddrinfo", "std::net::lookup"], 1, Kind::Dns),
            (
                &[
                    "syscall",
                    "std::sys::sync::thread_parking::futex::Parker::park",
                    "futures_executor::local_pool::run_executor",
                    "futures_executor::local_pool::block_on",
                    "app::x",
                ],
                1,
                Kind::BlockOn,
            ),
            (
                &[
                    "__GI___libc_write",
                    "<std::io::stdio::StdoutRaw as std::io::Write>::write",
                    "std::io::stdio::_print",
                    "app::x",
                ],
                1,
                Kind::Log,
            ),
            (
                &[
                    "syscall",
                    "std::sys::sync::mutex::futex::Mutex::lock_contended",
                    "std::sync::reentrant_lock::ReentrantLock<T>::lock",
                    "std::io::stdio::Stderr::lock",
                    "app::x",
                ],
                1,
                Kind::Log,
            ),
            (&["epoll_wait", "app::x"], 1, Kind::Other),
            (&["__GI___poll", "app::x"], 1, Kind::Other),
            (
                &[
                    "__GI___clock_nanosleep",
                    "std::thread::functions::sleep",
                    "app::x",
                    "tokio::runtime::task::raw::poll",
                    "tokio::runtime::scheduler::current_thread::CoreGuard::block_on",
                    "tokio::runtime::runtime::Runtime::block_on",
                ],
                1,
                Kind::Sleep,
            ),
        ];
        for (stack, state, kind) in cases {
            assert_eq!(kind_of(stack, *state), *kind, "{stack:?} state {state}");
        }
    }

    #[test]
    fn the_kernel_tells_a_page_fault() {
        let in_rust = [
            frame("app::scan", Some("/srv/app/src/scan.rs")),
            frame("app::x::{{closure}}", Some("/srv/app/src/main.rs")),
        ];
        let fault = hud_format::wire::STATE_IN_FAULT as u16;
        assert_eq!(off_cpu_kind(&in_rust, fault | 2), Kind::PageFault);
        assert_eq!(off_cpu_kind(&in_rust, fault | 1), Kind::PageFault);
        // A system call made from Rust code (rustix's raw system calls): not a fault.
        assert_eq!(off_cpu_kind(&in_rust, 1), Kind::Other);
        let in_read = [
            frame(
                "__GI___libc_read",
                Some("../sysdeps/unix/sysv/linux/read.c"),
            ),
            frame("app::x::{{closure}}", Some("/srv/app/src/main.rs")),
        ];
        assert_eq!(off_cpu_kind(&in_read, 2), Kind::FileIo);
    }

    #[test]
    fn system_calls_have_one_name_whichever_libc_named_them() {
        let name = |leaf: &str, caller: &str| {
            syscall_name(&[frame(leaf, Some("x.c")), frame(caller, None)])
        };
        assert_eq!(
            name("__GI___clock_nanosleep", "std::thread::sleep").as_deref(),
            Some("clock_nanosleep")
        );
        assert_eq!(name("__libc_send", "app::x").as_deref(), Some("send"));
        assert_eq!(name("send", "app::x").as_deref(), Some("send"));
        assert_eq!(
            name("__pread64_nocancel", "app::x").as_deref(),
            Some("pread64")
        );
        assert_eq!(
            name("syscall", "std::sys::pal::unix::futex::futex_wait").as_deref(),
            Some("futex")
        );
        assert_eq!(name("__lll_lock_wait", "app::x").as_deref(), Some("futex"));
        assert_eq!(
            syscall_name(&[frame("app::x", Some("/a/src/main.rs"))]),
            None,
            "Rust code"
        );
        assert_eq!(
            syscall_name(&[frame("[libc.so.6+0x10]", None)]),
            None,
            "no symbol"
        );
    }

    #[test]
    fn dependencies_are_rust_libraries_other_than_std_and_tokio() {
        let reg = "/root/.cargo/registry/src/index.crates.io-1/parking_lot-0.12/src/raw_mutex.rs";
        assert!(is_dependency(&frame(
            "parking_lot::raw_mutex::RawMutex::lock_slow",
            Some(reg)
        )));
        assert!(!is_dependency(&frame("tokio::runtime::park", Some(reg))));
        assert!(!is_dependency(&frame(
            "std::thread::sleep",
            Some("/rustc/x/library/std/src/thread.rs")
        )));
        assert!(!is_dependency(&frame(
            "syscall",
            Some("../sysdeps/unix/sysv/linux/x86_64/syscall.S")
        )));
        assert!(!is_dependency(&frame(
            "app::handler",
            Some("/srv/app/src/main.rs")
        )));
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
