//! hud-kinds: a Tokio service that blocks its runtime in every way hud tells apart, each in its
//! own task, each call on a line marked `GROUND TRUTH: kind=KIND` (testdata/demo/GROUND_TRUTH.md).
//!
//! A multi-thread runtime (2 workers named `kinds-worker`) runs one task per kind, each blocking
//! a few milliseconds every ~120 ms: a sleep, a std and a parking_lot mutex held by other threads,
//! a condition variable, a std channel, a thread join, a child process, an fsync, a file read
//! with a cold page cache, a std socket read, a nested `block_on`, a page fault served slowly
//! (userfaultfd), a log line into a slow pipe, and a `poll(2)` hud does not classify. A second
//! runtime, a current_thread one on a thread named `janitor-rt`, runs one task.
//!
//! Two async paths into one CPU-heavy helper: `reconcile` (an async fn on the multi-thread
//! runtime) calls `hash_block` itself; the janitor's loop calls the sync `compact`, which calls
//! `hash_block`. Each runs ~30 ms of CPU in one poll: two long polls, each to be blamed on its
//! own call.
//!
//! With `--slow-dns` (root: it takes a mount namespace of its own), name lookups go to a DNS
//! server of its own that answers 5 ms late, and one more task resolves a name.
//!
//! Usage: hud-kinds [--seconds N] [--quiet] [--slow-dns] [--dir PATH] (files for the fsync and
//! read tasks; default the system's temp dir, which must be on a disk for fsync to wait).

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hud_demo::cpu;

/// How long each blocking call blocks, about.
const BLOCK: Duration = Duration::from_millis(5);
/// How often each task blocks.
const EVERY: Duration = Duration::from_millis(120);
/// CPU time of each helper poll (the long polls).
const CPU_POLL: Duration = Duration::from_millis(30);

fn main() {
    let mut args = std::env::args().skip(1);
    let mut seconds = 3600.0f64;
    let mut dir = std::env::temp_dir();
    let mut slow_dns = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--slow-dns" => slow_dns = true,
            "--seconds" => seconds = hud_demo::number(&mut args, "--seconds"),
            "--dir" => dir = PathBuf::from(args.next().expect("--dir PATH")),
            "--quiet" => {}
            other => {
                eprintln!("hud-kinds: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    cpu::calibrate();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let dir = dir.join(format!("hud-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work dir");
    // Before any thread: a mount namespace is the calling thread's.
    let dns = slow_dns && dns::slow_resolver(&dir, BLOCK);
    let shared = Shared::start(&dir);
    slow_log_pipe();

    let janitor = std::thread::Builder::new()
        .name("janitor-rt".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("current_thread runtime")
                .block_on(janitor_loop(deadline))
        })
        .expect("janitor thread");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kinds-worker")
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let s = Arc::new(shared);
        let mut tasks = Vec::new();
        macro_rules! every {
            ($f:ident) => {{
                let s = Arc::clone(&s);
                tasks.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(EVERY);
                    while Instant::now() < deadline {
                        tick.tick().await;
                        $f(&s).await;
                    }
                }));
            }};
        }
        every!(nap);
        every!(take_lock);
        every!(take_parking_lot);
        every!(wait_condvar);
        every!(receive);
        every!(join_thread);
        every!(run_child);
        every!(sync_file);
        every!(read_cold_file);
        every!(ask_server);
        every!(nested_executor);
        every!(page_in);
        every!(log_line);
        every!(poll_nothing);
        every!(reconcile);
        if dns {
            every!(resolve);
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let _ = janitor.join();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("hud-kinds: done");
}

/// What the tasks block on, set up once: locks held by other threads, a channel fed slowly, a
/// socket server that answers late, a mapping whose faults are served late.
struct Shared {
    lock: Arc<Mutex<u64>>,
    parking_lot: Arc<parking_lot::Mutex<u64>>,
    condvar: (Mutex<bool>, Condvar),
    /// Asks the feeder thread for a value, which it sends 5 ms later.
    requests: Mutex<mpsc::Sender<()>>,
    receiver: Mutex<mpsc::Receiver<u64>>,
    server: std::net::SocketAddr,
    dir: PathBuf,
    cold_file: PathBuf,
    slow_pages: SlowPages,
}

impl Shared {
    fn start(dir: &Path) -> Shared {
        let lock = Arc::new(Mutex::new(0u64));
        let parking_lot = Arc::new(parking_lot::Mutex::new(0u64));
        {
            let (lock, parking_lot) = (Arc::clone(&lock), Arc::clone(&parking_lot));
            std::thread::Builder::new()
                .name("lock-holder".into())
                .spawn(move || loop {
                    // Each lock held 8 ms of every 10: a task taking it waits most times.
                    {
                        let _g = lock.lock().unwrap();
                        std::thread::sleep(Duration::from_millis(8));
                    }
                    {
                        let _g = parking_lot.lock();
                        std::thread::sleep(Duration::from_millis(8));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                })
                .expect("lock holder");
        }
        let (sender, receiver) = mpsc::channel();
        let (requests, asked) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("feeder".into())
            .spawn(move || {
                for i in 0.. {
                    if asked.recv().is_err() {
                        return;
                    }
                    std::thread::sleep(BLOCK);
                    if sender.send(i).is_err() {
                        return;
                    }
                }
            })
            .expect("feeder");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let server = listener.local_addr().expect("address");
        std::thread::Builder::new()
            .name("slow-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    let mut request = [0u8; 8];
                    if conn.read_exact(&mut request).is_ok() {
                        std::thread::sleep(BLOCK);
                        let _ = conn.write_all(b"answered");
                    }
                }
            })
            .expect("server");
        let cold_file = dir.join("cold.bin");
        std::fs::write(&cold_file, vec![7u8; 8 << 20]).expect("cold file");
        Shared {
            lock,
            parking_lot,
            condvar: (Mutex::new(false), Condvar::new()),
            requests: Mutex::new(requests),
            receiver: Mutex::new(receiver),
            server,
            dir: dir.to_owned(),
            cold_file,
            slow_pages: SlowPages::new(),
        }
    }
}

async fn nap(_: &Shared) {
    std::thread::sleep(BLOCK); // GROUND TRUTH: kind=sleep
}

async fn take_lock(s: &Shared) {
    let mut g = s.lock.lock().unwrap(); // GROUND TRUTH: kind=lock
    *g += 1;
}

async fn take_parking_lot(s: &Shared) {
    let mut g = s.parking_lot.lock(); // GROUND TRUTH: kind=lock
    *g += 1;
}

async fn wait_condvar(s: &Shared) {
    let (lock, condvar) = &s.condvar;
    let g = lock.lock().unwrap();
    // Nobody notifies: the wait times out.
    let r = condvar.wait_timeout(g, BLOCK).unwrap(); // GROUND TRUTH: kind=condvar
    black_box(*r.0);
}

async fn receive(s: &Shared) {
    let _ = s.requests.lock().unwrap().send(());
    let rx = s.receiver.lock().unwrap();
    black_box(rx.recv().ok()); // GROUND TRUTH: kind=channel
}

async fn join_thread(_: &Shared) {
    let t = std::thread::spawn(|| std::thread::sleep(BLOCK));
    let _ = t.join(); // GROUND TRUTH: kind=join
}

async fn run_child(_: &Shared) {
    let status = std::process::Command::new("sleep").arg("0.005").status(); // GROUND TRUTH: kind=process
    black_box(status.is_ok());
}

async fn sync_file(s: &Shared) {
    let mut f = std::fs::File::create(s.dir.join("synced.bin")).expect("file");
    // 8 MiB: about 5 ms to flush here, as the other kinds block. 1 MiB took 0.7 ms on a fast
    // day, under the 1 ms threshold: no episode, and a CI run missed the kind.
    f.write_all(&vec![1u8; 8 << 20]).expect("write");
    f.sync_all().expect("fsync"); // GROUND TRUTH: kind=fsync
}

async fn read_cold_file(s: &Shared) {
    drop_page_cache(&s.cold_file);
    let data = std::fs::read(&s.cold_file); // GROUND TRUTH: kind=file_io
    black_box(data.map(|d| d.len()).ok());
}

async fn ask_server(s: &Shared) {
    let Ok(mut conn) = std::net::TcpStream::connect(s.server) else {
        return;
    };
    let _ = conn.write_all(b"question");
    let mut answer = [0u8; 8];
    let _ = conn.read_exact(&mut answer); // GROUND TRUTH: kind=net_io
}

async fn nested_executor(_: &Shared) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(BLOCK);
        let _ = tx.send(1u8);
    });
    black_box(futures_executor::block_on(rx).ok()); // GROUND TRUTH: kind=block_on
}

async fn page_in(s: &Shared) {
    black_box(touch(&s.slow_pages)); // GROUND TRUTH: kind=page_fault
}

async fn log_line(_: &Shared) {
    println!("{}", "x".repeat(96 << 10)); // GROUND TRUTH: kind=log
}

async fn poll_nothing(_: &Shared) {
    // SAFETY: no descriptors, a timeout only.
    unsafe { libc::poll(std::ptr::null_mut(), 0, BLOCK.as_millis() as i32) }; // GROUND TRUTH: kind=other
}

async fn resolve(_: &Shared) {
    use std::net::ToSocketAddrs;
    black_box(("hud-kinds.invalid", 80).to_socket_addrs().is_ok()); // GROUND TRUTH: kind=dns
}

/// An async fn that calls the CPU-heavy helper itself.
async fn reconcile(_: &Shared) {
    black_box(hash_block(CPU_POLL)); // GROUND TRUTH: kind=cpu reconcile
}

/// The current_thread runtime's loop: a sync compaction every 250 ms.
async fn janitor_loop(deadline: Instant) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while Instant::now() < deadline {
        tick.tick().await;
        black_box(compact(CPU_POLL)); // GROUND TRUTH: kind=cpu compact
    }
}

/// A sync function that hashes blocks: the call to move is this one, not the helper.
#[inline(never)]
fn compact(length: Duration) -> u64 {
    let mut acc = 0u64;
    for _ in 0..3 {
        acc ^= hash_block(length / 3);
    }
    acc
}

/// The CPU-heavy helper both paths end in.
#[inline(never)]
fn hash_block(length: Duration) -> u64 {
    cpu::spin(length).rotate_left(7)
}

/// A page whose faults a handler thread serves 5 ms late (userfaultfd): a task that touches it
/// waits in a page fault, outside any system call, as it would on a cold memory-mapped file.
struct SlowPages {
    page: *mut u8,
}

// SAFETY: the page is only touched through volatile accesses; the mapping lives as long as the
// process.
unsafe impl Send for SlowPages {}
unsafe impl Sync for SlowPages {}

/// Reads the slow page: no system call, only the fault (the page server drops the page again
/// 30 ms after serving it; a `madvise` here, racing the server's copy, once slept in the
/// kernel: a real blocker of another kind on this line).
#[inline(never)]
fn touch(p: &SlowPages) -> u8 {
    if p.page.is_null() {
        return 0;
    }
    // SAFETY: the page is ours, mapped for the process's life.
    unsafe { std::ptr::read_volatile(p.page) }
}

impl SlowPages {
    fn new() -> SlowPages {
        match userfault::slow_page(BLOCK) {
            Ok((page, _)) => SlowPages { page },
            Err(e) => {
                eprintln!("hud-kinds: no userfaultfd ({e}): the page-fault task does nothing");
                SlowPages {
                    page: std::ptr::null_mut(),
                }
            }
        }
    }
}

/// Just enough of userfaultfd(2) to serve one page's missing faults late.
mod userfault {
    use std::time::Duration;

    const UFFD_API: u64 = 0xAA;
    const UFFD_USER_MODE_ONLY: libc::c_int = 1;
    const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
    const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
    const UFFDIO_COPY: libc::c_ulong = 0xC028_AA03;
    const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
    const UFFD_EVENT_PAGEFAULT: u8 = 0x12;

    #[repr(C)]
    struct Api {
        api: u64,
        features: u64,
        ioctls: u64,
    }

    #[repr(C)]
    struct Register {
        start: u64,
        len: u64,
        mode: u64,
        ioctls: u64,
    }

    #[repr(C)]
    struct Copy {
        dst: u64,
        src: u64,
        len: u64,
        mode: u64,
        copy: i64,
    }

    /// A page registered for missing faults, and a thread that fills each fault after `delay`.
    pub fn slow_page(delay: Duration) -> std::io::Result<(*mut u8, usize)> {
        let err = std::io::Error::last_os_error;
        // SAFETY: plain system calls on memory and descriptors this function owns.
        unsafe {
            let size = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let fd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | UFFD_USER_MODE_ONLY)
                as libc::c_int;
            if fd < 0 {
                return Err(err());
            }
            let mut api = Api {
                api: UFFD_API,
                features: 0,
                ioctls: 0,
            };
            if libc::ioctl(fd, UFFDIO_API, &mut api) < 0 {
                return Err(err());
            }
            let page = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if page == libc::MAP_FAILED {
                return Err(err());
            }
            let mut register = Register {
                start: page as u64,
                len: size as u64,
                mode: UFFDIO_REGISTER_MODE_MISSING,
                ioctls: 0,
            };
            if libc::ioctl(fd, UFFDIO_REGISTER, &mut register) < 0 {
                return Err(err());
            }
            let source = vec![0x5au8; size];
            let (page_at, size_of) = (page as usize, size);
            std::thread::Builder::new()
                .name("page-server".into())
                .spawn(move || serve(fd, source, delay, (page_at, size_of)))?;
            Ok((page.cast(), size))
        }
    }

    /// Serves each fault `delay` late, then drops the page again so the next read faults.
    fn serve(fd: libc::c_int, source: Vec<u8>, delay: Duration, (region, size): (usize, usize)) {
        let mut msg = [0u8; 32];
        loop {
            // SAFETY: reads a uffd_msg into a buffer of its size.
            let n = unsafe { libc::read(fd, msg.as_mut_ptr().cast(), msg.len()) };
            if n != msg.len() as isize || msg[0] != UFFD_EVENT_PAGEFAULT {
                if n < 0 {
                    return;
                }
                continue;
            }
            let address = u64::from_ne_bytes(msg[16..24].try_into().expect("8 bytes"));
            std::thread::sleep(delay);
            let page = address & !(source.len() as u64 - 1);
            let mut copy = Copy {
                dst: page,
                src: source.as_ptr() as u64,
                len: source.len() as u64,
                mode: 0,
                copy: 0,
            };
            // SAFETY: copies our buffer into the registered page.
            unsafe { libc::ioctl(fd, UFFDIO_COPY, &mut copy) };
            std::thread::sleep(Duration::from_millis(30));
            // SAFETY: drops our own page; the next read faults into this handler again.
            unsafe { libc::madvise(region as *mut libc::c_void, size, libc::MADV_DONTNEED) };
        }
    }
}

/// A name server of the process's own that answers every query 5 ms late (NXDOMAIN), and the
/// system's resolver pointed at it, in a mount namespace of the process's own.
mod dns {
    use std::ffi::CString;
    use std::net::UdpSocket;
    use std::path::Path;
    use std::time::Duration;

    /// An address on the loopback that a local resolver (on 127.0.0.1 or 127.0.0.53) leaves free.
    const SERVER: &str = "127.53.0.1:53";

    /// Whether lookups now go to the slow server (false, said once, when not root).
    pub fn slow_resolver(dir: &Path, delay: Duration) -> bool {
        match setup(dir, delay) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("hud-kinds: no slow DNS ({e}): the dns task does not run");
                false
            }
        }
    }

    fn setup(dir: &Path, delay: Duration) -> std::io::Result<()> {
        let err = std::io::Error::last_os_error;
        let socket = UdpSocket::bind(SERVER)?;
        // SAFETY: plain system calls; this thread is the process's only one.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(err());
            }
            let root = CString::new("/").expect("no NUL");
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(err());
            }
        }
        let ip = SERVER.split(':').next().expect("an address");
        for (name, text) in [
            (
                "resolv.conf",
                format!("nameserver {ip}\noptions timeout:1 attempts:1\n"),
            ),
            ("nsswitch.conf", "hosts: files dns\n".to_owned()),
        ] {
            let ours = dir.join(name);
            std::fs::write(&ours, text)?;
            let from = CString::new(ours.to_string_lossy().as_bytes()).expect("no NUL");
            let to = CString::new(format!("/etc/{name}")).expect("no NUL");
            // SAFETY: a bind mount of our file over the system's, in our namespace only.
            let bound = unsafe {
                libc::mount(
                    from.as_ptr(),
                    to.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if bound != 0 {
                return Err(err());
            }
        }
        std::thread::Builder::new()
            .name("slow-dns".into())
            .spawn(move || serve(socket, delay))?;
        Ok(())
    }

    fn serve(socket: UdpSocket, delay: Duration) {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            std::thread::sleep(delay);
            // The query back as its answer: a response (QR), recursion available, NXDOMAIN.
            buf[2] |= 0x80;
            buf[3] = 0x80 | 3;
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

/// Makes stdout a pipe that a thread drains slowly (4 KiB a millisecond): a long line blocks its
/// writer, as a log line does when its collector falls behind.
fn slow_log_pipe() {
    let mut fds = [0; 2];
    // SAFETY: a new pipe; its write end replaces fd 1.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 || libc::dup2(fds[1], 1) < 0 {
            return;
        }
        libc::close(fds[1]);
    }
    let read_end = fds[0];
    std::thread::Builder::new()
        .name("log-drain".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                // SAFETY: reads into our buffer.
                if unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) } <= 0 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("log drain");
}

fn drop_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(file) = std::fs::File::open(path) {
        // SAFETY: valid fd; advice only.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
}
