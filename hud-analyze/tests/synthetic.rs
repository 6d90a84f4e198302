//! Classification and detection on synthetic captures written with hud-format's writer, with
//! symbols from a table: no eBPF, no binaries.

use std::collections::HashMap;

use hud_analyze::classify::classify;
use hud_analyze::detect::{detect, Thresholds};
use hud_analyze::frames::Kind;
use hud_analyze::model::{Model, Role};
use hud_analyze::symbolize::{Frame, Symbols};
use hud_format::reader::Capture;
use hud_format::types::{ThreadEvent, ThreadEventKind};
use hud_format::writer::{CaptureWriter, WriterOptions};

const MS: u64 = 1_000_000;
const START: u64 = 1_000 * MS;

fn lib(function: &str) -> Frame {
    Frame {
        function: function.into(),
        file: Some("/home/u/.cargo/registry/src/index.crates.io-1/tokio-1.0.0/src/x.rs".into()),
        line: 1,
        object: 0,
        inlined: false,
    }
}

fn user(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: Some("/app/src/main.rs".into()),
        line,
        object: 0,
        inlined: false,
    }
}

fn worker_root() -> Vec<Frame> {
    vec![
        lib("tokio::runtime::task::core::Core<T,S>::poll"),
        lib("tokio::runtime::task::harness::Harness<T,S>::poll"),
        lib("tokio::runtime::scheduler::multi_thread::worker::Context::run_task"),
        lib("tokio::runtime::scheduler::multi_thread::worker::run"),
        lib("tokio::runtime::blocking::pool::Inner::run"),
        lib("std::sys::thread::unix::Thread::new::thread_start"),
    ]
}

fn in_task(inner: Vec<Frame>) -> Vec<Frame> {
    inner.into_iter().chain(worker_root()).collect()
}

fn parked() -> Vec<Frame> {
    let mut f = vec![
        lib("epoll_wait"),
        lib("tokio::runtime::io::driver::Driver::turn"),
        lib("tokio::runtime::scheduler::multi_thread::park::Parker::park"),
        lib("tokio::runtime::scheduler::multi_thread::worker::Context::park"),
    ];
    f.extend(worker_root().into_iter().skip(3));
    f
}

fn blocking_pool(inner: Vec<Frame>) -> Vec<Frame> {
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
struct Synth {
    writer: CaptureWriter<Vec<u8>>,
    addresses: HashMap<Frame, u64>,
}

impl Synth {
    fn new() -> Self {
        let header = hud_format::synth::header(START);
        Self {
            writer: CaptureWriter::new(Vec::new(), &header, WriterOptions::default()).unwrap(),
            addresses: HashMap::new(),
        }
    }

    fn addrs(&mut self, frames: &[Frame]) -> Vec<u64> {
        frames
            .iter()
            .map(|f| {
                let next = 0x1000 * (self.addresses.len() as u64 + 1);
                *self.addresses.entry(f.clone()).or_insert(next)
            })
            .collect()
    }

    fn thread(&mut self, tid: u32, name: &str) {
        self.writer
            .push_thread(ThreadEvent {
                ts_ns: START,
                tid,
                kind: ThreadEventKind::New,
                name: name.into(),
            })
            .unwrap();
    }

    fn sample(&mut self, ts: u64, tid: u32, frames: &[Frame]) {
        let a = self.addrs(frames);
        self.writer.push_sample(ts, tid, 0, &a, &[]).unwrap();
    }

    fn off_cpu(
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

    fn switch(&mut self, ts: u64, tid: u32, on: bool, state: u32) {
        self.writer.push_switch(ts, tid, 0, on, state).unwrap();
    }

    fn analyze(self) -> (Model, Symbols) {
        let bytes = self.writer.finish().unwrap();
        let capture = Capture::from_bytes(bytes).unwrap();
        let mut model = Model::build(&capture).unwrap();
        let by_address: HashMap<u64, Frame> =
            self.addresses.into_iter().map(|(f, a)| (a, f)).collect();
        let symbols = Symbols::from_resolver(&model, |a| {
            by_address.get(&a).cloned().into_iter().collect()
        });
        classify(&mut model, &symbols);
        (model, symbols)
    }
}

fn names(d: &hud_analyze::detect::Detection) -> Vec<String> {
    d.blockers
        .iter()
        .map(|b| b.blame.function.to_string())
        .collect()
}

#[test]
fn roles_come_from_stacks_whatever_the_names() {
    let mut s = Synth::new();
    s.thread(10, "my-pool-3");
    s.thread(11, "tokio-runtime-worker");
    s.thread(12, "main");
    s.sample(START + MS, 10, &parked());
    s.sample(
        START + MS,
        11,
        &blocking_pool(vec![user("app::compress", 40)]),
    );
    s.sample(
        START + 2 * MS,
        12,
        &[lib("std::thread::park"), user("app::main", 3)],
    );
    let (model, _) = s.analyze();
    assert_eq!(model.threads[&10].role, Role::Worker, "custom-named worker");
    assert_eq!(
        model.threads[&11].role,
        Role::BlockingPool,
        "blocking pool named like a worker"
    );
    assert_eq!(model.threads[&12].role, Role::Other);
}

#[test]
fn parked_workers_and_spawn_blocking_are_not_blocking() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.thread(11, "b");
    s.sample(START + MS, 10, &parked());
    s.sample(
        START + MS,
        11,
        &blocking_pool(vec![user("app::compress", 40)]),
    );
    // Parked 50 ms: idle, not blocking.
    s.off_cpu(START + 60 * MS, 10, 50 * MS, 0, 1, &parked());
    // spawn_blocking work sleeping 50 ms on the blocking pool: its job, not blocking.
    let pool_sleep = blocking_pool(vec![lib("clock_nanosleep"), user("app::compress", 41)]);
    s.off_cpu(START + 60 * MS, 11, 50 * MS, 0, 1, &pool_sleep);
    // And 200 ms of CPU in spawn_blocking.
    for i in 0..20 {
        s.sample(
            START + 100 * MS + i * 10 * MS,
            11,
            &blocking_pool(vec![user("app::compress", 40)]),
        );
    }
    let (model, symbols) = s.analyze();
    let d = detect(&model, &symbols, Thresholds::default());
    assert!(d.blockers.is_empty(), "{:?}", names(&d));
    assert_eq!(d.idle_episodes, 1);
}

#[test]
fn off_cpu_in_a_task_is_blocking_with_kind_and_blame() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    let sleep = in_task(vec![
        lib("clock_nanosleep"),
        user("app::handler::{{closure}}", 12),
    ]);
    for i in 0..5 {
        s.off_cpu(START + (i + 1) * 100 * MS, 10, 15 * MS, MS, 1, &sleep);
    }
    let lock = in_task(vec![
        lib("syscall"),
        lib("<std::sys::sync::mutex::futex::Mutex>::lock_contended"),
        user("app::cache::{{closure}}", 30),
    ]);
    s.off_cpu(START + 700 * MS, 10, 8 * MS, 0, 1, &lock);
    let io = in_task(vec![
        lib("__read"),
        lib("<std::fs::File as std::io::Read>::read"),
        user("app::load::{{closure}}", 50),
    ]);
    s.off_cpu(START + 800 * MS, 10, 3 * MS, 0, 2, &io);
    // Blocked for less than the threshold once the runnable wait is taken out: not reported.
    let tiny = in_task(vec![
        lib("clock_nanosleep"),
        user("app::tiny::{{closure}}", 70),
    ]);
    s.off_cpu(START + 900 * MS, 10, 5 * MS, 4_500_000, 1, &tiny);
    let (model, symbols) = s.analyze();
    let d = detect(&model, &symbols, Thresholds::default());
    let found: Vec<(Kind, &str, u32, usize, u64)> = d
        .blockers
        .iter()
        .map(|b| {
            (
                b.kind,
                &*b.blame.function,
                b.blame.line,
                b.episodes.len(),
                b.total(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (Kind::Sleep, "app::handler::{{closure}}", 12, 5, 5 * 14 * MS),
            (Kind::Lock, "app::cache::{{closure}}", 30, 1, 8 * MS),
            (Kind::Io, "app::load::{{closure}}", 50, 1, 3 * MS),
        ]
    );
    assert_eq!(
        d.blockers[0].task.as_ref().unwrap().function.as_ref(),
        "app::handler::{{closure}}"
    );
    assert_eq!(d.blockers[0].quantile(0.5), 14 * MS);
}

#[test]
fn one_helper_called_from_two_tasks_is_two_blockers() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    let from_a = in_task(vec![
        lib("clock_nanosleep"),
        user("app::helper", 5),
        user("app::a::{{closure}}", 20),
    ]);
    let from_b = in_task(vec![
        lib("clock_nanosleep"),
        user("app::helper", 5),
        user("app::b::{{closure}}", 40),
    ]);
    s.off_cpu(START + 100 * MS, 10, 10 * MS, 0, 1, &from_a);
    s.off_cpu(START + 200 * MS, 10, 20 * MS, 0, 1, &from_b);
    let (model, symbols) = s.analyze();
    let d = detect(&model, &symbols, Thresholds::default());
    assert_eq!(d.blockers.len(), 2);
    for b in &d.blockers {
        assert_eq!(
            &*b.blame.function, "app::helper",
            "the time goes in the helper"
        );
    }
    let tasks: Vec<&str> = d
        .blockers
        .iter()
        .map(|b| &*b.task.as_ref().unwrap().function)
        .collect();
    assert_eq!(tasks, vec!["app::b::{{closure}}", "app::a::{{closure}}"]);
}

#[test]
fn long_polls_are_split_by_a_park() {
    let mut s = Synth::new();
    s.thread(10, "w");
    let crunch = in_task(vec![user("app::crunch::{{closure}}", 9)]);
    // 5 samples 10 ms apart in one poll, then the worker parks (a voluntary switch-out), then
    // 3 more samples in the same function: a second poll.
    for i in 0..5 {
        s.sample(START + 10 * MS + i * 10 * MS, 10, &crunch);
    }
    s.switch(START + 65 * MS, 10, false, 1);
    s.switch(START + 70 * MS, 10, true, 0);
    for i in 0..3 {
        s.sample(START + 75 * MS + i * 10 * MS, 10, &crunch);
    }
    // A lone sample in another poll: one sample is not a long poll.
    s.sample(
        START + 200 * MS,
        10,
        &in_task(vec![user("app::quick::{{closure}}", 3)]),
    );
    s.sample(START + 300 * MS, 10, &parked());
    let (model, symbols) = s.analyze();
    let d = detect(&model, &symbols, Thresholds::default());
    assert_eq!(d.blockers.len(), 1, "{:?}", names(&d));
    let b = &d.blockers[0];
    assert_eq!(b.kind, Kind::Cpu);
    let mut durations: Vec<u64> = b.episodes.iter().map(|e| e.duration).collect();
    durations.sort_unstable();
    let period = model.sample_period();
    assert_eq!(durations, vec![20 * MS + period, 40 * MS + period]);
}

#[test]
fn scheduling_pressure_counts_preemption_waits() {
    let mut s = Synth::new();
    s.thread(10, "w");
    s.sample(START + MS, 10, &parked());
    s.switch(START + 10 * MS, 10, false, 0x100);
    s.switch(START + 14 * MS, 10, true, 0);
    s.switch(START + 20 * MS, 10, false, 0x100);
    s.switch(START + 21 * MS, 10, true, 0);
    let (model, symbols) = s.analyze();
    let d = detect(&model, &symbols, Thresholds::default());
    assert_eq!(d.pressure[0].runnable_wait_ns, 5 * MS);
}

/// The report of a synthetic capture.
fn report_of(model: Model, symbols: Symbols) -> hud_analyze::report::Report {
    let detection = detect(&model, &symbols, Thresholds::default());
    let analysis = hud_analyze::analysis::Analysis {
        model,
        symbols,
        detection,
    };
    hud_analyze::report::Report::build(&analysis, 10)
}

/// A worker's capture: `shallow` samples cut after two frames, as frame-pointer unwinding leaves
/// code without frame pointers, and `deep` whole ones.
fn worker_samples(shallow: u64, deep: u64) -> (Model, Symbols) {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    for i in 0..shallow {
        let cut = [user("app::hash", 7), lib("[libc.so.6+0x1234]")];
        s.sample(START + i * MS, 10, &cut);
    }
    for i in shallow..shallow + deep {
        s.sample(START + i * MS, 10, &in_task(vec![user("app::hash", 7)]));
    }
    s.analyze()
}

#[test]
fn shallow_stacks_are_reported_as_missing_frame_pointers() {
    let (model, symbols) = worker_samples(30, 10);
    assert_eq!(model.shallow_samples(4), (30, 40));
    let report = report_of(model, symbols);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("75 % of samples")
                && w.contains("RUSTFLAGS=-Cforce-frame-pointers=yes")),
        "{:?}",
        report.warnings
    );

    // With frame pointers: no such warning.
    let (model, symbols) = worker_samples(0, 40);
    assert_eq!(model.shallow_samples(4), (0, 40));
    let report = report_of(model, symbols);
    assert!(
        !report.warnings.iter().any(|w| w.contains("frame pointers")),
        "{:?}",
        report.warnings
    );
}
