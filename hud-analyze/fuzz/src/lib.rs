//! Structure-aware fuzzing of the analyzer's whole pipeline.
//!
//! Random bytes almost never get past a frame checksum, and random archives almost never get
//! past bytecheck, so a fuzzer fed bytes alone tests the first two checks of the reader. Here the
//! mutator takes a capture apart into frames ([`hud_format::craft`]), changes what a recorder
//! could have written wrong or an attacker could write on purpose — a chunk's fields (ids, times,
//! counts, stacks, threads, mappings), whole frames (dropped, repeated, swapped), archive bytes —
//! and seals it again with correct checksums. The target then runs everything a user runs:
//! reading (strict and salvaging), the model, symbols (real lookup, and a vocabulary of Tokio-
//! like frames so that classification and detection see plausible stacks), the findings, the
//! report in text and JSON.

use std::sync::Arc;

use hud_analyze::analysis::hotspots::Ranking;
use hud_analyze::analysis::{Analysis, Options, Window};
use hud_analyze::observer::Silent;
use hud_analyze::symbols::{Frame, Symbols};
use hud_analyze::view::report::{text, Report};
use hud_analyze::{pipeline, source};
use hud_format::craft::{self, OwnedFrame};
use hud_format::frame::{Codec, FrameKind};
use hud_format::reader::{Capture, ReadOptions};
use hud_format::types::{Chunk, Mapping, ThreadEvent, ThreadEventKind};

/// Where the vocabulary's addresses start.
const BASE: u64 = 0x10_0000;

/// Frames an address resolves to under the fuzzing resolver: `((address - BASE) >> 4) % len`.
const VOCABULARY: &[(&str, Option<&str>, u32)] = &[
    (
        "app::handlers::slow::{{closure}}",
        Some("/app/src/handlers.rs"),
        42,
    ),
    (
        "app::cache::update::{{closure}}",
        Some("/app/src/cache.rs"),
        77,
    ),
    ("app::checksum", Some("/app/src/main.rs"), 101),
    ("app::serve::{{closure}}", Some("/app/src/main.rs"), 12),
    ("std::thread::sleep", Some(STD), 1),
    ("clock_nanosleep", None, 0),
    (
        "<std::sys::sync::mutex::futex::Mutex>::lock_contended",
        Some(STD),
        1,
    ),
    ("syscall", None, 0),
    ("epoll_wait", None, 0),
    ("tokio::runtime::io::driver::Driver::turn", Some(TOKIO), 1),
    (
        "tokio::runtime::scheduler::multi_thread::park::Parker::park",
        Some(TOKIO),
        1,
    ),
    (
        "tokio::runtime::scheduler::multi_thread::worker::Context::park",
        Some(TOKIO),
        1,
    ),
    (
        "tokio::runtime::task::core::Core<T,S>::poll",
        Some(TOKIO),
        1,
    ),
    (
        "tokio::runtime::task::harness::Harness<T,S>::poll",
        Some(TOKIO),
        1,
    ),
    (
        "tokio::runtime::scheduler::multi_thread::worker::Context::run_task",
        Some(TOKIO),
        1,
    ),
    (
        "tokio::runtime::scheduler::multi_thread::worker::run",
        Some(TOKIO),
        1,
    ),
    ("tokio::runtime::blocking::pool::Inner::run", Some(TOKIO), 1),
    (
        "<tokio::runtime::blocking::task::BlockingTask<T> as core::future::future::Future>::poll",
        Some(TOKIO),
        1,
    ),
    (
        "tokio::runtime::scheduler::current_thread::CoreGuard::block_on",
        Some(TOKIO),
        1,
    ),
    (
        "std::sys::thread::unix::Thread::new::thread_start",
        Some(STD),
        1,
    ),
    ("read", None, 0),
    ("getaddrinfo", None, 0),
];

const STD: &str = "/rustc/abc/library/std/src/x.rs";
const TOKIO: &str = "/home/u/.cargo/registry/src/index.crates.io-1/tokio-1.0.0/src/x.rs";

/// The address that resolves to vocabulary entry `i` (in the middle of its 16 bytes, so that a
/// return address looked up one byte back resolves the same).
pub fn address_of(i: usize) -> u64 {
    BASE + 8 + ((i as u64) << 4)
}

fn frame_of(address: u64) -> Vec<Frame> {
    let entry = (address.wrapping_sub(BASE) >> 4) % VOCABULARY.len() as u64;
    let (function, file, line) = VOCABULARY[entry as usize];
    vec![Frame {
        function: function.into(),
        file: file.map(Arc::from),
        line,
        object: 0,
        inlined: false,
        recovered: None,
    }]
}

/// Runs the whole pipeline on `data` as a capture: never panics, whatever `data` is.
pub fn run(data: &[u8]) {
    let salvage = data.get(20).is_none_or(|b| b & 1 == 0);
    let read = ReadOptions {
        salvage,
        // Small, so an input cannot spend the run decompressing: the budget's own arithmetic is
        // still exercised, relative bounds included (16 MiB is over 32 times any input here).
        max_decompressed: (data.get(21).is_some_and(|b| b & 1 == 0)).then_some(16 << 20),
    };
    let options = Options {
        read: read.clone(),
        ..Options::default()
    };
    let Ok(capture) = Capture::from_bytes_with(data.to_vec(), &read) else {
        return;
    };
    let Ok(loaded) = source::load_file(&capture) else {
        return;
    };
    // The fuzzing vocabulary: plausible runtime stacks, so classification and detection run.
    let model = loaded.model.clone();
    let symbols = Symbols::from_resolver(&model, frame_of);
    let analysis = Analysis::new(options.clone(), model, symbols);
    views(&analysis);
    // Real symbolization: mapped paths from the input are looked up on this machine.
    if let Ok(analysis) = pipeline::analyze(loaded, options, &Silent) {
        views(&analysis);
    }
    // The same bytes as a stream.
    if let Ok(opened) = source::open_stream(Box::new(std::io::Cursor::new(data.to_vec())), &read) {
        let _ = opened.load();
    }
}

/// The blockers found in a capture under the fuzzing vocabulary (seeds must have some).
pub fn blockers_under_vocabulary(data: &[u8]) -> Vec<String> {
    let capture = Capture::from_bytes(data.to_vec()).expect("a valid seed");
    let model = source::load_file(&capture).expect("a valid seed").model;
    let symbols = Symbols::from_resolver(&model, frame_of);
    let analysis = Analysis::new(Options::default(), model, symbols);
    let ranking = Ranking {
        top: 10,
        all_frames: false,
    };
    let findings = analysis.findings(Window::ALL, ranking);
    findings
        .blockers
        .iter()
        .map(|b| format!("{:?} {}", b.kind, b.blame.function))
        .collect()
}

fn views(analysis: &Analysis) {
    let ranking = Ranking {
        top: 5,
        all_frames: false,
    };
    let m = &analysis.model;
    for window in [
        Window::ALL,
        Window {
            from: m.start + m.duration() / 3,
            to: m.end.saturating_sub(m.duration() / 3),
        },
    ] {
        let findings = analysis.findings(window, ranking);
        let report = Report::build(analysis, &findings, 5);
        let _ = report.to_json();
        let _ = text::render(&report, 5, false);
    }
}

/// A small deterministic generator for the mutator (seeded by libFuzzer).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A value a crafted field would hold: small, near a boundary, or anything.
    fn interesting(&mut self) -> u64 {
        match self.below(6) {
            0 => self.next() % 16,
            1 => u64::from(u32::MAX) - self.next() % 4,
            2 => u64::MAX - self.next() % 4,
            3 => 1 << self.below(64),
            _ => self.next(),
        }
    }
}

/// Mutates a capture in place, keeping it sealed; returns the new length (at most `max_size`).
/// `byte_mutate` is libFuzzer's own mutation of a buffer, used inside archives and as a
/// fallback on bytes that are not a capture.
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    byte_mutate: impl Fn(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng(u64::from(seed) | 1 << 40);
    let frames = match craft::split(&data[..size]) {
        Ok(frames) if rng.below(8) != 0 => frames,
        _ => return byte_mutate(data, size, max_size),
    };
    let mut frames = frames;
    for _ in 0..1 + rng.below(3) {
        mutate_frames(&mut frames, &mut rng, &byte_mutate);
    }
    let sealed = craft::seal(&frames, Codec::Raw);
    if sealed.len() > max_size {
        return byte_mutate(data, size, max_size);
    }
    data[..sealed.len()].copy_from_slice(&sealed);
    sealed.len()
}

fn mutate_frames(
    frames: &mut Vec<OwnedFrame>,
    rng: &mut Rng,
    byte_mutate: &impl Fn(&mut [u8], usize, usize) -> usize,
) {
    if frames.is_empty() {
        return;
    }
    let i = rng.below(frames.len());
    match rng.below(10) {
        0 => {
            let copy = frames[i].clone();
            frames.insert(rng.below(frames.len() + 1), copy);
        }
        1 if frames.len() > 1 => {
            frames.remove(i);
        }
        2 => {
            let j = rng.below(frames.len());
            frames.swap(i, j);
        }
        3 => {
            // Archive bytes, as libFuzzer mutates them (most fail bytecheck: its messages).
            let payload = &mut frames[i].payload;
            let len = payload.len();
            payload.resize(len + 64, 0);
            let n = byte_mutate(payload, len, len + 64);
            payload.truncate(n);
        }
        _ => {
            // A chunk's fields: decoded, changed, encoded again (valid archives, crafted values).
            let Some(at) = (0..frames.len())
                .map(|k| (i + k) % frames.len())
                .find(|&k| frames[k].kind == FrameKind::Chunk)
            else {
                return;
            };
            let Ok(mut chunk) = frames[at].chunk() else {
                return;
            };
            for _ in 0..1 + rng.below(4) {
                mutate_chunk(&mut chunk, rng);
            }
            if let Ok(frame) = OwnedFrame::from_chunk(&chunk) {
                frames[at] = frame;
            }
        }
    }
}

fn pick<'a, T>(column: &'a mut [T], rng: &mut Rng) -> Option<&'a mut T> {
    let i = rng.below(column.len());
    column.get_mut(i)
}

fn mutate_chunk(c: &mut Chunk, rng: &mut Rng) {
    match rng.below(16) {
        0 => c.seq = rng.interesting() as u32,
        1 => c.stacks.first_id = rng.interesting() as u32,
        2 => {
            if let Some(p) = pick(&mut c.stacks.parent, rng) {
                *p = rng.interesting() as u32;
            }
        }
        3 => {
            let address = address_of(rng.below(VOCABULARY.len())) + rng.below(4) as u64;
            let parent = rng.below(c.stacks.parent.len() + 1) as u32;
            c.stacks
                .parent
                .push(c.stacks.first_id.wrapping_add(parent).min(parent));
            c.stacks.address.push(address);
        }
        4 => {
            if let Some(s) = pick(&mut c.samples.user_stack, rng) {
                *s = rng.interesting() as u32;
            }
        }
        5 => {
            if let Some(s) = pick(&mut c.off_cpu.user_stack, rng) {
                *s = rng.interesting() as u32;
            }
        }
        6 => {
            if let Some(d) = pick(&mut c.off_cpu.duration_ns, rng) {
                *d = rng.interesting();
            }
            if let Some(r) = pick(&mut c.off_cpu.runnable_ns, rng) {
                *r = rng.interesting();
            }
        }
        7 => {
            let tid = rng.interesting() as u32;
            if let Some(t) = pick(&mut c.switches.tid, rng) {
                *t = tid;
            }
            if let Some(t) = pick(&mut c.samples.tid, rng) {
                *t = tid;
            }
        }
        8 => {
            if let Some(s) = pick(&mut c.switches.prev_state, rng) {
                *s = rng.interesting() as u16;
            }
            if let Some(o) = pick(&mut c.switches.on_cpu, rng) {
                *o = rng.below(3) as u8;
            }
        }
        9 => {
            let column = match rng.below(3) {
                0 => &mut c.switches.ts,
                1 => &mut c.samples.ts,
                _ => &mut c.off_cpu.ts,
            };
            if rng.below(2) == 0 {
                column.base_ns = rng.interesting();
            } else if let Some(d) = pick(&mut column.deltas, rng) {
                *d = rng.next() as u8;
            }
        }
        10 => {
            c.start_ns = rng.interesting();
            c.end_ns = if rng.below(2) == 0 {
                rng.interesting()
            } else {
                c.start_ns
            };
        }
        11 => {
            let kind = match rng.below(3) {
                0 => ThreadEventKind::New,
                1 => ThreadEventKind::Renamed,
                _ => ThreadEventKind::Exited,
            };
            let names = [
                "tokio-runtime-worker",
                "main",
                "",
                "\u{1b}[31mred",
                "w\u{0}x",
            ];
            c.threads.push(ThreadEvent {
                ts_ns: rng.interesting(),
                tid: rng.interesting() as u32,
                kind,
                name: names[rng.below(names.len())].into(),
            });
        }
        12 => {
            let paths = [
                "/usr/bin/synthetic",
                "/dev/zero",
                "/tmp",
                "",
                "/proc/self/mem",
            ];
            c.mappings.push(Mapping {
                ts_ns: rng.interesting(),
                start: rng.interesting(),
                end: rng.interesting(),
                file_offset: rng.interesting(),
                perms: "r-xp".into(),
                path: paths[rng.below(paths.len())].into(),
                inode: rng.next(),
                build_id: (0..rng.below(24)).map(|_| rng.next() as u8).collect(),
            });
        }
        13 => {
            if let Some(counter) = pick(&mut c.counters, rng) {
                counter.value = rng.interesting();
            }
        }
        14 => {
            // Rows added or removed from one column only: the columns disagree in length.
            match rng.below(4) {
                0 => c.switches.tid.push(rng.next() as u32),
                1 => {
                    c.samples.cpu.pop();
                }
                2 => c.off_cpu.state.push(1),
                _ => c.stacks.address.push(rng.next()),
            }
        }
        _ => {
            // Whole rows added consistently, at crafted times.
            let ts = c
                .switches
                .ts
                .base_ns
                .wrapping_add(rng.interesting() % 1_000_000_000);
            let tid = c.switches.tid.first().copied().unwrap_or(1);
            let mut prev = ts;
            if c.switches.ts.deltas.is_empty() {
                c.switches.ts.base_ns = ts;
            } else {
                prev = c.switches.ts.iter().last().unwrap_or(ts);
            }
            hud_format::columns::push_delta(&mut c.switches.ts.deltas, &mut prev, ts);
            c.switches.tid.push(tid);
            c.switches.cpu.push(0);
            c.switches.on_cpu.push(rng.below(2) as u8);
            c.switches.prev_state.push(rng.interesting() as u16);
        }
    }
}
