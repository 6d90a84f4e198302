//! The golden captures of every released format version stay readable, exactly, forever.
//!
//! `testdata/golden/v1.0.hudcap` was written by format 1.0. Do not regenerate it when the writer
//! changes: the point is that today's reader reads yesterday's bytes. (It was created with
//! `HUD_BLESS_GOLDEN=1 cargo test -p hud-format --features writer,reader --test golden`.)

mod common;

use std::path::PathBuf;

use common::{decode, Event};
use hud_format::reader::{Capture, Ending};
use hud_format::types::{
    ClockOffsets, Header, Mapping, RecorderOptions, Target, ThreadEvent, ThreadEventKind,
};
use hud_format::writer::{CaptureWriter, WriterOptions};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/golden/v1.0.hudcap")
}

fn expected_header() -> Header {
    Header {
        hud_version: "0.1.0".into(),
        host_name: "golden-host".into(),
        kernel_release: "6.18.44".into(),
        arch: "x86_64".into(),
        page_size: 4096,
        cpu_count: 2,
        clock: ClockOffsets {
            monotonic_ns: 1_000_000_000,
            realtime_ns: 1_795_000_000_000_000_000,
        },
        boot_id: "0f0e0d0c-0b0a-0908-0706-050403020100".into(),
        start_ns: 1_000_000_000,
        sample_hz: 99,
        offcpu_threshold_ns: 1_000_000,
        target: Target {
            pid: 4242,
            exe_path: "/opt/demo/hud-demo".into(),
            cmdline: vec!["hud-demo".into(), "--seconds".into(), "3".into()],
            build_id: (0u8..20).collect(),
        },
        options: RecorderOptions {
            kernel_stacks: true,
            embed_binaries: true,
            command_line: vec!["hud-record".into(), "--pid".into(), "4242".into()],
        },
    }
}

fn mapping() -> Mapping {
    Mapping {
        ts_ns: 1_000_000_000,
        start: 0x5555_0000_0000,
        end: 0x5555_0010_0000,
        file_offset: 0x1000,
        perms: "r-xp".into(),
        path: "/opt/demo/hud-demo".into(),
        inode: 1234,
        build_id: (0u8..20).collect(),
    }
}

const USER: [u64; 3] = [0x5555_0000_1234, 0x5555_0000_2000, 0x5555_0000_3000];
const KERNEL: [u64; 2] = [0xffff_ffff_8100_0000, 0xffff_ffff_8100_0100];

fn write_golden() -> Vec<u8> {
    let mut w =
        CaptureWriter::new(Vec::new(), &expected_header(), WriterOptions::default()).unwrap();
    w.push_mapping(mapping()).unwrap();
    w.push_thread(ThreadEvent {
        ts_ns: 1_000_000_000,
        tid: 4242,
        kind: ThreadEventKind::New,
        name: "hud-demo".into(),
    })
    .unwrap();
    w.push_switch(1_000_001_000, 4242, 0, false, 1).unwrap();
    w.push_switch(1_000_900_000, 4242, 1, true, 0).unwrap();
    w.push_sample(1_001_000_000, 4242, 1, &USER, &KERNEL)
        .unwrap();
    w.set_counter("lost_switch", 0);
    w.flush_chunk().unwrap();
    w.push_thread(ThreadEvent {
        ts_ns: 1_002_000_000,
        tid: 4243,
        kind: ThreadEventKind::New,
        name: "tokio-runtime-w".into(),
    })
    .unwrap();
    w.push_thread(ThreadEvent {
        ts_ns: 1_002_500_000,
        tid: 4243,
        kind: ThreadEventKind::Renamed,
        name: "worker-0".into(),
    })
    .unwrap();
    w.push_switch(1_003_000_000, 4243, 0, false, 0x100).unwrap();
    w.push_off_cpu(1_013_000_000, 4243, 1, 10_000_000, 250_000, 1, &USER, &[])
        .unwrap();
    w.push_sample(1_014_000_000, 4243, 0, &USER, &KERNEL)
        .unwrap();
    w.push_thread(ThreadEvent {
        ts_ns: 1_015_000_000,
        tid: 4243,
        kind: ThreadEventKind::Exited,
        name: "worker-0".into(),
    })
    .unwrap();
    w.set_counter("lost_switch", 2);
    w.set_counter("user_stack_error", 1);
    w.set_now(1_020_000_000);
    w.embed_object(
        "/opt/demo/hud-demo",
        &(0u8..20).collect::<Vec<_>>(),
        b"\x7fELF golden object",
    )
    .unwrap();
    w.finish().unwrap()
}

#[test]
fn golden_v1_0_reads_back_exactly() {
    if std::env::var_os("HUD_BLESS_GOLDEN").is_some() && !golden_path().exists() {
        std::fs::write(golden_path(), write_golden()).unwrap();
    }
    let capture = Capture::open(&golden_path()).expect("the golden capture is committed");
    assert_eq!(capture.version().to_string(), "1.0");
    assert_eq!(capture.ending(), &Ending::Clean);
    assert_eq!(capture.header(), &expected_header());

    let d = decode(&capture);
    assert_eq!(d.mappings, vec![mapping()]);
    assert_eq!(
        d.switches,
        vec![
            Event::Switch {
                ts: 1_000_001_000,
                tid: 4242,
                cpu: 0,
                on_cpu: false,
                state: 1
            },
            Event::Switch {
                ts: 1_000_900_000,
                tid: 4242,
                cpu: 1,
                on_cpu: true,
                state: 0
            },
            Event::Switch {
                ts: 1_003_000_000,
                tid: 4243,
                cpu: 0,
                on_cpu: false,
                state: 0x100
            },
        ]
    );
    assert_eq!(
        d.samples,
        vec![
            Event::Sample {
                ts: 1_001_000_000,
                tid: 4242,
                cpu: 1,
                user: USER.to_vec(),
                kernel: KERNEL.to_vec()
            },
            Event::Sample {
                ts: 1_014_000_000,
                tid: 4243,
                cpu: 0,
                user: USER.to_vec(),
                kernel: KERNEL.to_vec()
            },
        ]
    );
    assert_eq!(
        d.off_cpu,
        vec![Event::OffCpu {
            ts: 1_013_000_000,
            tid: 4243,
            cpu: 1,
            duration: 10_000_000,
            runnable: 250_000,
            state: 1,
            user: USER.to_vec(),
            kernel: vec![]
        }]
    );
    let threads: Vec<_> = d
        .threads
        .iter()
        .map(|t| (t.tid, t.kind, t.name.as_str()))
        .collect();
    assert_eq!(
        threads,
        vec![
            (4242, ThreadEventKind::New, "hud-demo"),
            (4243, ThreadEventKind::New, "tokio-runtime-w"),
            (4243, ThreadEventKind::Renamed, "worker-0"),
            (4243, ThreadEventKind::Exited, "worker-0"),
        ]
    );
    assert_eq!(
        d.counters,
        vec![
            ("lost_switch".into(), 0),
            ("lost_switch".into(), 2),
            ("user_stack_error".into(), 1)
        ]
    );
    let objects = capture.objects().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].bytes, b"\x7fELF golden object");
    let index = capture.index().unwrap();
    assert_eq!(index.end_ns, 1_020_000_000);
    assert_eq!(
        (
            index.totals.switches,
            index.totals.samples,
            index.totals.off_cpu
        ),
        (3, 2, 1)
    );
    // Stack nodes: three user frames and two kernel frames, shared by every event.
    assert_eq!(index.totals.stacks, 5);
    assert_eq!(index.totals.chunks, 2);
}

#[test]
fn todays_writer_still_writes_what_the_golden_holds() {
    // Not byte equality (zstd may change its output), but the same content.
    let today = Capture::from_bytes(write_golden()).unwrap();
    let golden = Capture::open(&golden_path()).unwrap();
    assert_eq!(today.header(), golden.header());
    assert_eq!(decode(&today), decode(&golden));
}

/// `testdata/golden/v1.1.hudcap`, written by format 1.1 (stack copies), created like v1.0 (the
/// events) plus a sample's copy, an off-CPU episode's copy, and a repeat of the first.
fn golden_v1_1_path() -> PathBuf {
    golden_path().with_file_name("v1.1.hudcap")
}

/// 64 bytes of stack: a saved frame pointer and a return address, the rest zero (scrubbed).
fn copy_bytes() -> Vec<u8> {
    let mut bytes = vec![0u8; 64];
    bytes[16..24].copy_from_slice(&0x7ffd_0000_0100u64.to_le_bytes());
    bytes[24..32].copy_from_slice(&0x5555_0000_2000u64.to_le_bytes());
    bytes
}

fn write_golden_v1_1() -> Vec<u8> {
    use hud_format::types::{COPY_OF_OFF_CPU, COPY_OF_SAMPLE};
    use hud_format::writer::StackCopyRow;
    let mut w =
        CaptureWriter::new(Vec::new(), &expected_header(), WriterOptions::default()).unwrap();
    w.push_mapping(mapping()).unwrap();
    w.push_sample(1_001_000_000, 4242, 1, &USER, &KERNEL)
        .unwrap();
    let bytes = copy_bytes();
    let sample_copy = StackCopyRow {
        ts_ns: 1_001_000_000,
        span_ns: 0,
        tid: 4242,
        of: COPY_OF_SAMPLE,
        ip: USER[0],
        sp: 0x7ffd_0000_0000,
        bp: 0x7ffd_0000_0100,
        bytes: &bytes,
    };
    w.push_stack_copy(&sample_copy).unwrap();
    w.push_off_cpu(1_013_000_000, 4243, 1, 10_000_000, 250_000, 1, &USER, &[])
        .unwrap();
    w.push_stack_copy(&StackCopyRow {
        ts_ns: 1_013_000_000,
        tid: 4243,
        of: COPY_OF_OFF_CPU,
        bytes: &bytes[..32],
        ..sample_copy
    })
    .unwrap();
    // A sample without a copy (over the budget), then one whose copy repeats the first.
    w.push_sample(1_014_000_000, 4242, 0, &USER, &KERNEL)
        .unwrap();
    w.push_sample(1_015_000_000, 4242, 0, &USER, &KERNEL)
        .unwrap();
    w.push_stack_copy(&StackCopyRow {
        ts_ns: 1_015_000_000,
        ..sample_copy
    })
    .unwrap();
    w.set_now(1_020_000_000);
    w.finish().unwrap()
}

#[test]
fn golden_v1_1_reads_back_exactly() {
    use hud_format::frame::FrameKind;
    if std::env::var_os("HUD_BLESS_GOLDEN").is_some() && !golden_v1_1_path().exists() {
        std::fs::write(golden_v1_1_path(), write_golden_v1_1()).unwrap();
    }
    let capture = Capture::open(&golden_v1_1_path()).expect("the golden capture is committed");
    assert_eq!(capture.version().to_string(), "1.1");
    assert_eq!(capture.ending(), &Ending::Clean);
    assert_eq!(capture.header(), &expected_header());
    let d = decode(&capture);
    assert_eq!((d.samples.len(), d.off_cpu.len()), (3, 1));
    let frames: Vec<_> = capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::StackCopies)
        .collect();
    assert_eq!(frames.len(), 1);
    let copies = capture.stack_copies(frames[0]).unwrap();
    let c = copies.get();
    let ts: Vec<u64> = c.ts.iter().collect();
    assert_eq!(ts, [1_001_000_000, 1_013_000_000, 1_015_000_000]);
    assert!(c.span_ns.iter().all(|s| s.to_native() == 0));
    assert_eq!(c.first_id, 1);
    let rows: Vec<(u32, u8, u32, u32)> = (0..3)
        .map(|i| {
            (
                c.tid[i].to_native(),
                c.of[i],
                c.len[i].to_native(),
                c.same_as[i].to_native(),
            )
        })
        .collect();
    // The third repeats the first (copy 1): no bytes of its own.
    assert_eq!(rows, [(4242, 1, 64, 0), (4243, 2, 32, 0), (4242, 1, 0, 1)]);
    assert_eq!(
        (
            c.ip[0].to_native(),
            c.sp[0].to_native(),
            c.bp[0].to_native()
        ),
        (USER[0], 0x7ffd_0000_0000, 0x7ffd_0000_0100)
    );
    let bytes = copy_bytes();
    assert_eq!(common::copy_bytes(c, 0), bytes);
    assert_eq!(common::copy_bytes(c, 1), &bytes[..32]);
    // Stored as their non-zero words: a frame pointer and a return address each.
    assert_eq!(c.word_value.len(), 4);
}

/// `testdata/golden/v1.2.hudcap`, written by format 1.2 (Tokio task ids), created like v1.1 plus
/// the source of the ids and a row per event that ran in a task.
fn golden_v1_2_path() -> PathBuf {
    golden_path().with_file_name("v1.2.hudcap")
}

const TASK_SOURCE: &str = "tokio::runtime::context::CONTEXT at TLS offset 0x0";

fn write_golden_v1_2() -> Vec<u8> {
    use hud_format::types::{COPY_OF_OFF_CPU, COPY_OF_SAMPLE};
    use hud_format::wire::NO_TICK;
    let mut w =
        CaptureWriter::new(Vec::new(), &expected_header(), WriterOptions::default()).unwrap();
    w.set_task_source(TASK_SOURCE);
    w.push_mapping(mapping()).unwrap();
    w.push_sample(1_001_000_000, 4242, 1, &USER, &KERNEL)
        .unwrap();
    w.push_event_task(COPY_OF_SAMPLE, 1_001_000_000, 4242, 17, 40);
    w.push_sample(1_011_000_000, 4242, 1, &USER, &KERNEL)
        .unwrap();
    w.push_event_task(COPY_OF_SAMPLE, 1_011_000_000, 4242, 17, NO_TICK);
    w.push_off_cpu(1_013_000_000, 4243, 1, 10_000_000, 250_000, 1, &USER, &[])
        .unwrap();
    w.push_event_task(COPY_OF_OFF_CPU, 1_013_000_000, 4243, 18, NO_TICK);
    w.set_now(1_020_000_000);
    w.finish().unwrap()
}

#[test]
fn golden_v1_2_reads_back_exactly() {
    use hud_format::frame::FrameKind;
    use hud_format::wire::NO_TICK;
    if std::env::var_os("HUD_BLESS_GOLDEN").is_some() && !golden_v1_2_path().exists() {
        std::fs::write(golden_v1_2_path(), write_golden_v1_2()).unwrap();
    }
    let capture = Capture::open(&golden_v1_2_path()).expect("the golden capture is committed");
    assert_eq!(capture.version().to_string(), "1.2");
    assert_eq!(capture.header(), &expected_header());
    let d = decode(&capture);
    assert_eq!((d.samples.len(), d.off_cpu.len()), (2, 1));
    let frames: Vec<_> = capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::Tasks)
        .collect();
    assert_eq!(frames.len(), 1);
    let t = capture.tasks(frames[0]).unwrap();
    assert_eq!(t.source, TASK_SOURCE);
    let ts: Vec<u64> = t.ts.iter().collect();
    assert_eq!(ts, [1_001_000_000, 1_011_000_000, 1_013_000_000]);
    assert_eq!(t.tid, [4242, 4242, 4243]);
    assert_eq!(t.of, [1, 1, 2]);
    assert_eq!(t.task, [17, 17, 18]);
    assert_eq!(t.tick, [40, NO_TICK, NO_TICK]);
}

#[test]
fn todays_writer_still_writes_what_the_v1_2_golden_holds() {
    use hud_format::frame::FrameKind;
    let today = Capture::from_bytes(write_golden_v1_2()).unwrap();
    let golden = Capture::open(&golden_v1_2_path()).unwrap();
    assert_eq!(decode(&today), decode(&golden));
    let tasks = |c: &Capture| -> Vec<_> {
        c.frames()
            .iter()
            .filter(|f| f.header.kind == FrameKind::Tasks)
            .map(|f| c.tasks(f).unwrap())
            .collect()
    };
    assert_eq!(tasks(&today), tasks(&golden));
}

/// `testdata/golden/v1.3.hudcap`, written by format 1.3: three samples and an off-CPU episode
/// whose tasks ride in a chunk-tasks frame (samples: task 17 twice with its ticks, then none;
/// the episode: task 18), and a polls frame
/// (`--poll-probes`: two probes, a histogram each, one long poll, probing stopped over its
/// budget).
fn golden_v1_3_path() -> PathBuf {
    golden_path().with_file_name("v1.3.hudcap")
}

fn golden_polls() -> hud_format::types::Polls {
    use hud_format::types::{PollEvents, PollHistogram, PollProbe, Polls};
    use hud_format::wire::poll_bucket;
    let probe = |probe: u32, future: &str| {
        PollProbe {
        probe,
        address: 0x55a0 + u64::from(probe) * 16,
        path: "/usr/bin/app".into(),
        future: future.into(),
        scheduler: "alloc::sync::Arc<tokio::runtime::scheduler::multi_thread::handle::Handle, alloc::alloc::Global>".into(),
    }
    };
    Polls {
        ts_ns: 1_020_000_000,
        event_ns: 1_000_000,
        probes: vec![
            probe(0, "app::serve::{async_fn_env#0}"),
            probe(1, "app::tick::{async_fn_env#0}"),
        ],
        histograms: vec![
            PollHistogram {
                probe: 0,
                sum_ns: 3 * 20_000 + 5_000_000,
                max_ns: 5_000_000,
                buckets: vec![poll_bucket(20_000) as u16, poll_bucket(5_000_000) as u16],
                counts: vec![3, 1],
            },
            PollHistogram {
                probe: 1,
                sum_ns: 900,
                max_ns: 900,
                buckets: vec![poll_bucket(900) as u16],
                counts: vec![1],
            },
        ],
        long: PollEvents {
            tid: vec![4242],
            start_ns: vec![1_005_000_000],
            end_ns: vec![1_010_000_000],
            probe: vec![0],
            task: vec![17],
        },
        stopped: "over budget".into(),
        stopped_ns: 1_019_000_000,
        detached_ns: 1_019_500_000,
    }
}

fn write_golden_v1_3() -> Vec<u8> {
    let mut w =
        CaptureWriter::new(Vec::new(), &expected_header(), WriterOptions::default()).unwrap();
    w.set_task_source(TASK_SOURCE);
    w.push_mapping(mapping()).unwrap();
    for (ts, task, tick) in GOLDEN_SAMPLE_TASKS {
        w.push_sample_in_task(ts, 4242, 1, &USER, &KERNEL, task, tick)
            .unwrap();
    }
    w.push_off_cpu_in_task(
        1_013_000_000,
        4243,
        1,
        (10_000_000, 250_000, 1),
        &USER,
        &[],
        18,
    )
    .unwrap();
    w.set_now(1_020_000_000);
    w.flush_chunk().unwrap();
    w.write_polls(&golden_polls()).unwrap();
    w.finish().unwrap()
}

/// (time, task, tick) of v1.3's samples, all of thread 4242.
const GOLDEN_SAMPLE_TASKS: [(u64, u64, u64); 3] = [
    (1_001_000_000, 17, 0x0100_0000_0000_0040),
    (1_002_000_000, 17, 0x0100_0000_0000_0041),
    (1_003_000_000, 0, hud_format::wire::NO_TICK),
];

#[test]
fn golden_v1_3_reads_back_exactly() {
    use hud_format::frame::FrameKind;
    if std::env::var_os("HUD_BLESS_GOLDEN").is_some() && !golden_v1_3_path().exists() {
        std::fs::write(golden_v1_3_path(), write_golden_v1_3()).unwrap();
    }
    let capture = Capture::open(&golden_v1_3_path()).expect("the golden capture is committed");
    assert_eq!(capture.version().to_string(), "1.3");
    assert_eq!(capture.header(), &expected_header());
    let frames: Vec<_> = capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::Polls)
        .collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(capture.polls(frames[0]).unwrap(), golden_polls());
    // The events' tasks: one chunk's rows, in its order.
    let chunk_tasks = |c: &Capture| -> Vec<_> {
        c.frames()
            .iter()
            .filter(|f| f.header.kind == FrameKind::ChunkTasks)
            .flat_map(|f| c.chunk_tasks(f).unwrap())
            .collect()
    };
    let rows = chunk_tasks(&capture);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].seq, rows[0].samples, rows[0].off_cpu), (0, 3, 1));
    let expected: Vec<(u64, u64)> = GOLDEN_SAMPLE_TASKS
        .iter()
        .map(|&(_, task, tick)| (task, tick))
        .collect();
    assert_eq!(rows[0].samples(&[4242; 3]), Some(expected));
    assert_eq!(rows[0].off_cpu(&[4243]), Some(vec![18]));
    // Today's writer still writes what it holds.
    let today = Capture::from_bytes(write_golden_v1_3()).unwrap();
    assert_eq!(decode(&today), decode(&capture));
    let polls: Vec<_> = today
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::Polls)
        .map(|f| today.polls(f).unwrap())
        .collect();
    assert_eq!(polls, [golden_polls()]);
    assert_eq!(chunk_tasks(&today), rows);
}

fn golden_v1_4_path() -> PathBuf {
    golden_path().with_file_name("v1.4.hudcap")
}

/// v1.4's provenance: a target in a container, recorded from inside it, then a dump's.
fn golden_provenance() -> (hud_format::types::Provenance, hud_format::types::Provenance) {
    use hud_format::types::{Dump, Provenance};
    let start = Provenance {
        pid_seen: 1,
        pid_in_namespace: 1,
        recorder_namespaced: true,
        thread_kernel_ids: vec![4242, 4243],
        thread_namespace_ids: vec![1, 7],
        cgroup: "/system.slice/docker-3f2a9c1b5d7e4f608192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8.scope".into(),
        container_runtime: "docker".into(),
        container_id: "3f2a9c1b5d7e4f608192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8".into(),
        dump: None,
    };
    let dump = Provenance {
        dump: Some(Dump {
            reason: "blocked".into(),
            trigger_ns: 1_013_000_000,
            detail: "thread 4243 blocked 10.0 ms".into(),
            from_ns: 1_000_000_000,
            to_ns: 1_020_000_000,
            first_seq: 0,
        }),
        ..start.clone()
    };
    (start, dump)
}

fn write_golden_v1_4() -> Vec<u8> {
    let (start, dump) = golden_provenance();
    let mut w =
        CaptureWriter::new(Vec::new(), &expected_header(), WriterOptions::default()).unwrap();
    w.write_provenance(&start).unwrap();
    w.push_mapping(mapping()).unwrap();
    w.push_sample(1_001_000_000, 4242, 1, &USER, &KERNEL)
        .unwrap();
    w.set_now(1_020_000_000);
    w.flush_chunk().unwrap();
    w.write_provenance(&dump).unwrap();
    w.finish().unwrap()
}

#[test]
fn golden_v1_4_reads_back_exactly() {
    use hud_format::frame::FrameKind;
    if std::env::var_os("HUD_BLESS_GOLDEN").is_some() && !golden_v1_4_path().exists() {
        std::fs::write(golden_v1_4_path(), write_golden_v1_4()).unwrap();
    }
    let capture = Capture::open(&golden_v1_4_path()).expect("the golden capture is committed");
    assert_eq!(capture.version().to_string(), "1.4");
    assert_eq!(capture.header(), &expected_header());
    let provenance = |c: &Capture| -> Vec<_> {
        c.frames()
            .iter()
            .filter(|f| f.header.kind == FrameKind::Provenance)
            .map(|f| c.provenance(f).unwrap())
            .collect()
    };
    let (start, dump) = golden_provenance();
    assert_eq!(provenance(&capture), [start, dump]);
    let today = Capture::from_bytes(write_golden_v1_4()).unwrap();
    assert_eq!(decode(&today), decode(&capture));
    assert_eq!(provenance(&today), provenance(&capture));
}
