//! Names made once: demangled without hashes, interned across threads so that equal names share
//! one allocation and views compare them by pointer ([`super::interned_id`]).

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap as HashMap;

/// Demangles a Rust (or C) symbol without the trailing hash, and without the symbol version a
/// library's table may carry (`clock_nanosleep@@GLIBC_2.17`).
pub fn demangle(raw: &str) -> String {
    let unversioned = raw.split_once('@').map_or(raw, |(name, _)| name);
    public_c_name(format!("{:#}", rustc_demangle::demangle(unversioned)))
}

/// libc's system-call wrappers whose `__` aliases symbol tables name instead.
const PUBLIC_WRAPPERS: &[&str] = &[
    "read",
    "write",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "preadv",
    "pwritev",
    "open",
    "open64",
    "openat",
    "openat64",
    "close",
    "send",
    "recv",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "connect",
    "accept",
    "accept4",
    "poll",
    "ppoll",
    "select",
    "pselect",
    "epoll_wait",
    "epoll_pwait",
    "nanosleep",
    "clock_nanosleep",
    "fsync",
    "fdatasync",
    "wait4",
    "waitpid",
    "waitid",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "lseek",
    "lseek64",
    "ftruncate",
    "fallocate",
    "getdents64",
    "statx",
    "fstat",
    "fstatat",
    "stat",
    "lstat",
    "sleep",
    "usleep",
    "sched_yield",
    "futex",
    "ioctl",
    "fcntl",
    "mmap",
    "munmap",
    "madvise",
    "msync",
    "sync",
    "syncfs",
    "getaddrinfo",
    "pipe",
    "pipe2",
    "dup",
    "dup2",
    "dup3",
    "socket",
    "bind",
    "listen",
    "shutdown",
    "getsockopt",
    "setsockopt",
    "sendfile",
    "splice",
    "copy_file_range",
];

/// A libc function under its public name, whichever alias a symbol table or a debug file gave
/// it: `__GI___clock_nanosleep`, `__libc_send` and `__send` read `clock_nanosleep`, `send` and
/// `send`, so one function has one name in every capture and view. Rust names, and the thread
/// start (`__libc_start_main`), are kept.
fn public_c_name(name: String) -> String {
    if name.contains("::")
        || name.contains(['<', ' ', '.'])
        || name.starts_with("__rust")
        || name.starts_with("__libc_start")
    {
        return name;
    }
    let mut n = name.as_str();
    for prefix in ["__GI___", "__GI_", "__libc_"] {
        if let Some(rest) = n.strip_prefix(prefix) {
            n = rest;
            break;
        }
    }
    // `__read`, `__send`: glibc's internal aliases of its system-call wrappers. Only those:
    // `__floattidf` or `__vdso_clock_gettime` have no public name.
    if let Some(rest) = n.strip_prefix("__") {
        if PUBLIC_WRAPPERS.contains(&rest) {
            n = rest;
        }
    }
    if n.len() == name.len() {
        name
    } else {
        n.to_owned()
    }
}

/// One worker's strings: each raw name demangled once, each name and path looked up in the shared
/// interner once (behind a lock, but only on a worker's first sight of a string).
pub(super) struct Strings<'s> {
    demangled: HashMap<String, Arc<str>>,
    plain: HashMap<String, Arc<str>>,
    shared: &'s Mutex<rustc_hash::FxHashSet<Arc<str>>>,
}

impl<'s> Strings<'s> {
    pub(super) fn new(shared: &'s Mutex<rustc_hash::FxHashSet<Arc<str>>>) -> Self {
        Self {
            demangled: HashMap::default(),
            plain: HashMap::default(),
            shared,
        }
    }

    pub(super) fn demangled(&mut self, raw: &str) -> Arc<str> {
        if let Some(s) = self.demangled.get(raw) {
            return Arc::clone(s);
        }
        let clean = demangle(raw);
        let s = self.plain(&clean);
        self.demangled.insert(raw.to_owned(), Arc::clone(&s));
        s
    }

    pub(super) fn plain(&mut self, text: &str) -> Arc<str> {
        if let Some(s) = self.plain.get(text) {
            return Arc::clone(s);
        }
        let s = {
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            match shared.get(text) {
                Some(s) => Arc::clone(s),
                None => {
                    let s: Arc<str> = Arc::from(text);
                    shared.insert(Arc::clone(&s));
                    s
                }
            }
        };
        self.plain.insert(text.to_owned(), Arc::clone(&s));
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_lose_hashes_and_versions() {
        assert_eq!(
            super::demangle("clock_nanosleep@@GLIBC_2.17"),
            "clock_nanosleep"
        );
        assert_eq!(super::demangle("memcpy@GLIBC_2.2.5"), "memcpy");
        assert_eq!(
            super::demangle("_ZN8hud_demo4main17h6c924782e74c41a7E"),
            "hud_demo::main"
        );
    }

    #[test]
    fn a_libc_function_has_one_name_whichever_alias_named_it() {
        for (raw, public) in [
            ("__GI___clock_nanosleep", "clock_nanosleep"),
            ("__libc_send", "send"),
            ("__send", "send"),
            ("send", "send"),
            ("__read", "read"),
            ("__GI___clone3", "clone3"),
            ("__libc_start_main", "__libc_start_main"),
            ("__libc_start_call_main", "__libc_start_call_main"),
            ("__rust_alloc", "__rust_alloc"),
            ("_start", "_start"),
            (
                "__futex_abstimed_wait_common64",
                "__futex_abstimed_wait_common64",
            ),
            ("__vdso_clock_gettime", "__vdso_clock_gettime"),
            ("__floattidf", "__floattidf"),
            ("__sched_yield", "sched_yield"),
        ] {
            assert_eq!(super::demangle(raw), public, "{raw}");
        }
    }
}
