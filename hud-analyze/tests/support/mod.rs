//! Synthetic captures for tests: written with hud-format's writer, with symbols from a table
//! (no eBPF, no binaries), analyzed by the library.
#![allow(dead_code)]

use std::collections::HashMap;

use hud_analyze::analysis::detect::Blocker;
use hud_analyze::analysis::hotspots::Ranking;
use hud_analyze::analysis::{Analysis, Findings, Options, Window};
use hud_analyze::source::load_file;
use hud_analyze::symbols::{Frame, ObjectInfo, Symbols};
use hud_format::reader::Capture;
use hud_format::types::{ThreadEvent, ThreadEventKind};
use hud_format::writer::{CaptureWriter, WriterOptions};

pub const RANKING: Ranking = Ranking {
    top: 10,
    all_frames: false,
};

pub const MS: u64 = 1_000_000;
pub const START: u64 = 1_000 * MS;

pub fn lib(function: &str) -> Frame {
    Frame {
        function: function.into(),
        file: Some("/home/u/.cargo/registry/src/index.crates.io-1/tokio-1.0.0/src/x.rs".into()),
        line: 1,
        object: 0,
        inlined: false,
        recovered: None,
    }
}

pub fn user(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: Some("/app/src/main.rs".into()),
        line,
        object: 0,
        inlined: false,
        recovered: None,
    }
}

pub fn worker_root() -> Vec<Frame> {
    vec![
        lib("tokio::runtime::task::core::Core<T,S>::poll"),
        lib("tokio::runtime::task::harness::Harness<T,S>::poll"),
        lib("tokio::runtime::scheduler::multi_thread::worker::Context::run_task"),
        lib("tokio::runtime::scheduler::multi_thread::worker::run"),
        lib("tokio::runtime::blocking::pool::Inner::run"),
        lib("std::sys::thread::unix::Thread::new::thread_start"),
    ]
}

pub fn in_task(inner: Vec<Frame>) -> Vec<Frame> {
    inner.into_iter().chain(worker_root()).collect()
}

pub fn parked() -> Vec<Frame> {
    let mut f = vec![
        lib("epoll_wait"),
        lib("tokio::runtime::io::driver::Driver::turn"),
        lib("tokio::runtime::scheduler::multi_thread::park::Parker::park"),
        lib("tokio::runtime::scheduler::multi_thread::worker::Context::park"),
    ];
    f.extend(worker_root().into_iter().skip(3));
    f
}

pub fn blocking_pool(inner: Vec<Frame>) -> Vec<Frame> {
    inner
        .into_iter()
        .chain([
            lib("<tokio::runtime::blocking::task::BlockingTask<T> as core::future::future::Future>::poll"),
            lib("tokio::runtime::task::core::Core<T,S>::poll"),
            lib("tokio::runtime::blocking::pool::Inner::run"),
            lib("std::sys::thread::unix::Thread::new::thread_start"),
        ])
        .collect()
}

/// Builds a capture and gives each distinct frame an address.
pub struct Synth {
    pub writer: CaptureWriter<Vec<u8>>,
    pub addresses: HashMap<Frame, u64>,
}

impl Synth {
    pub fn new() -> Self {
        Self::with_options(WriterOptions::default())
    }

    pub fn with_options(options: WriterOptions) -> Self {
        let header = hud_format::synth::header(START);
        Self {
            writer: CaptureWriter::new(Vec::new(), &header, options).unwrap(),
            addresses: HashMap::new(),
        }
    }

    pub fn addrs(&mut self, frames: &[Frame]) -> Vec<u64> {
        frames
            .iter()
            .map(|f| {
                let next = 0x1000 * (self.addresses.len() as u64 + 1);
                *self.addresses.entry(f.clone()).or_insert(next)
            })
            .collect()
    }

    pub fn thread(&mut self, tid: u32, name: &str) {
        self.writer
            .push_thread(ThreadEvent {
                ts_ns: START,
                tid,
                kind: ThreadEventKind::New,
                name: name.into(),
            })
            .unwrap();
    }

    pub fn sample(&mut self, ts: u64, tid: u32, frames: &[Frame]) {
        let a = self.addrs(frames);
        self.writer.push_sample(ts, tid, 0, &a, &[]).unwrap();
    }

    /// A sample that ran in Tokio task `task`, with its scheduler's tick
    /// (`hud_format::wire::NO_TICK`: not read), as the recorder writes it (format 1.3: in a
    /// chunk-tasks frame).
    pub fn sample_in_task(&mut self, ts: u64, tid: u32, frames: &[Frame], task: u64, tick: u64) {
        let a = self.addrs(frames);
        self.writer
            .push_sample_in_task(ts, tid, 0, &a, &[], task, tick)
            .unwrap();
    }

    /// An off-CPU episode that blocked in Tokio task `task`, as the recorder writes it (format
    /// 1.3: in a chunk-tasks frame).
    #[allow(clippy::too_many_arguments)]
    pub fn off_cpu_in_task(
        &mut self,
        end: u64,
        tid: u32,
        duration: u64,
        runnable: u64,
        state: u32,
        frames: &[Frame],
        task: u64,
    ) {
        let a = self.addrs(frames);
        self.writer
            .push_off_cpu_in_task(end, tid, 0, (duration, runnable, state), &a, &[], task)
            .unwrap();
    }

    /// The same as format 1.2 wrote it: a row keyed by thread and time in a tasks frame.
    pub fn sample_in_task_v1_2(
        &mut self,
        ts: u64,
        tid: u32,
        frames: &[Frame],
        task: u64,
        tick: u64,
    ) {
        self.sample(ts, tid, frames);
        self.writer
            .push_event_task(hud_format::types::COPY_OF_SAMPLE, ts, tid, task, tick);
    }

    pub fn off_cpu(
        &mut self,
        end: u64,
        tid: u32,
        duration: u64,
        runnable: u64,
        state: u32,
        frames: &[Frame],
    ) {
        let a = self.addrs(frames);
        self.writer
            .push_off_cpu(end, tid, 0, duration, runnable, state, &a, &[])
            .unwrap();
    }

    pub fn switch(&mut self, ts: u64, tid: u32, on: bool, state: u32) {
        self.writer.push_switch(ts, tid, 0, on, state).unwrap();
    }

    /// The capture's bytes.
    pub fn finish(self) -> (Vec<u8>, HashMap<Frame, u64>) {
        (self.writer.finish().unwrap(), self.addresses)
    }

    pub fn analyze(self) -> Analysis {
        self.analyze_with(Options::default())
    }

    pub fn analyze_with(self, options: Options) -> Analysis {
        let (bytes, addresses) = self.finish();
        analyze_bytes(bytes, &addresses, options).unwrap()
    }

    /// Analyzed with `objects` as the symbolizer's objects (frames name them by index).
    pub fn analyze_with_objects(self, objects: Vec<ObjectInfo>) -> Analysis {
        let (bytes, addresses) = self.finish();
        let capture = Capture::from_bytes(bytes).unwrap();
        let model = load_file(&capture).unwrap().model;
        let by_address: HashMap<u64, Frame> =
            addresses.iter().map(|(f, a)| (*a, f.clone())).collect();
        let mut symbols = Symbols::from_resolver(&model, |a| {
            by_address.get(&a).cloned().into_iter().collect()
        });
        symbols.objects = objects;
        Analysis::new(Options::default(), model, symbols)
    }
}

/// A frame in the object at index `object` of the symbolizer's objects.
pub fn in_object(function: &str, object: u32) -> Frame {
    Frame {
        function: function.into(),
        file: None,
        line: 0,
        object,
        inlined: false,
        recovered: None,
    }
}

/// An object as the symbolizer reports it, with its share of frame-pointer prologues.
pub fn object(path: &str, frame_pointers: Option<f64>) -> ObjectInfo {
    ObjectInfo {
        path: path.into(),
        build_id: String::new(),
        source: "recorded path".into(),
        has_debug_info: true,
        frame_pointers,
        addresses: 1,
        with_line: 1,
    }
}

/// Analyzes capture bytes (maybe crafted) whose frames are named by `addresses`.
pub fn analyze_bytes(
    bytes: Vec<u8>,
    addresses: &HashMap<Frame, u64>,
    options: Options,
) -> Result<Analysis, hud_analyze::AnalyzeError> {
    let capture = Capture::from_bytes_with(bytes, &options.read)?;
    let model = load_file(&capture)?.model;
    let by_address: HashMap<u64, Frame> = addresses.iter().map(|(f, a)| (*a, f.clone())).collect();
    let symbols = Symbols::from_resolver(&model, |a| {
        by_address.get(&a).cloned().into_iter().collect()
    });
    Ok(Analysis::new(options, model, symbols))
}

/// The findings of the whole capture.
pub fn whole(a: &Analysis) -> Findings {
    a.findings(Window::ALL, RANKING)
}

/// The blockers of the whole capture.
pub fn blockers(a: &Analysis) -> Vec<Blocker> {
    whole(a).blockers
}

/// Two workers, a blocking-pool thread and a plain thread; a sleep, a contended lock and a
/// long poll in tasks; CPU work in spawn_blocking; some preemption.
pub fn busy_service() -> Synth {
    busy_service_for(200)
}

/// [`busy_service`] over `periods` periods of 10 ms (it has 200).
pub fn busy_service_for(periods: u64) -> Synth {
    busy_service_into(Synth::new(), periods)
}

/// [`busy_service`] written with `options` (small chunks, say).
pub fn busy_service_with(options: WriterOptions) -> Synth {
    busy_service_into(Synth::with_options(options), 200)
}

/// The busy service written into `s` (which may hold frames already).
pub fn busy_service_into_synth(s: Synth) -> Synth {
    busy_service_into(s, 200)
}

fn busy_service_into(mut s: Synth, periods: u64) -> Synth {
    s.thread(10, "app-worker-0");
    s.thread(11, "app-worker-1");
    s.thread(12, "app-worker-2");
    s.thread(13, "janitor");
    let sleep = in_task(vec![
        lib("clock_nanosleep"),
        lib("std::thread::sleep"),
        user("app::handlers::slow::{{closure}}", 42),
        user("app::serve::{{closure}}", 12),
    ]);
    let lock = in_task(vec![
        lib("syscall"),
        lib("<std::sys::sync::mutex::futex::Mutex>::lock_contended"),
        user("app::cache::update::{{closure}}", 77),
        user("app::serve::{{closure}}", 14),
    ]);
    let crunch = in_task(vec![
        user("app::checksum", 101),
        user("app::crunch::{{closure}}", 90),
        user("app::serve::{{closure}}", 16),
    ]);
    let pool = blocking_pool(vec![user("app::compress", 120)]);
    let idle = parked();
    for i in 0..periods {
        let t = START + i * 10 * MS;
        let tid = 10 + (i % 2) as u32;
        s.sample(t, tid, if i % 8 < 4 { &crunch } else { &idle });
        s.sample(t + MS, 12, &pool);
        if i % 20 == 0 {
            s.off_cpu(t + 5 * MS, tid, 15 * MS, MS, 1, &sleep);
        }
        if i % 50 == 0 {
            s.off_cpu(t + 7 * MS, 11, 8 * MS, 0, 1, &lock);
        }
        s.switch(t + 8 * MS, tid, false, 0x100);
        s.switch(t + 9 * MS, tid, true, 0);
    }
    s
}

/// A worker that only parks: nothing to report.
pub fn idle_service() -> Synth {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    let idle = parked();
    for i in 0..50u64 {
        s.sample(START + i * 10 * MS, 10, &idle);
    }
    s
}
