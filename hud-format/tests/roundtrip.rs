//! Whatever is written reads back the same, across chunk boundaries and stack interning.

mod common;

use common::{decode, Event};
use hud_format::reader::{Capture, Ending, FrameStream};
use hud_format::types::{Header, Mapping, Target, ThreadEvent, ThreadEventKind};
use hud_format::writer::{CaptureWriter, WriterOptions};
use proptest::prelude::*;

fn stack() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![0x1000, 0x2000, 0x3000]),
        prop::collection::vec(any::<u64>(), 1..40),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let ts = 0u64..u64::MAX / 2;
    prop_oneof![
        (
            ts.clone(),
            any::<u32>(),
            any::<u16>(),
            any::<bool>(),
            any::<u16>()
        )
            .prop_map(|(ts, tid, cpu, on_cpu, state)| Event::Switch {
                ts,
                tid,
                cpu,
                on_cpu,
                state
            }),
        (ts.clone(), any::<u32>(), any::<u16>(), stack(), stack()).prop_map(
            |(ts, tid, cpu, user, kernel)| Event::Sample {
                ts,
                tid,
                cpu,
                user,
                kernel
            }
        ),
        (
            ts,
            any::<u32>(),
            any::<u16>(),
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            stack(),
            stack()
        )
            .prop_map(|(ts, tid, cpu, duration, runnable, state, user, kernel)| {
                Event::OffCpu {
                    ts,
                    tid,
                    cpu,
                    duration,
                    runnable: runnable.min(duration),
                    state,
                    user,
                    kernel,
                }
            }),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (
        ".{0,20}",
        ".{0,20}",
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        prop::collection::vec(".{0,10}", 0..4),
        prop::collection::vec(any::<u8>(), 0..21),
        any::<bool>(),
    )
        .prop_map(
            |(host, exe, cpus, start, threshold, pid, cmdline, build_id, kstacks)| {
                let mut h = Header {
                    host_name: host,
                    cpu_count: cpus,
                    start_ns: start,
                    offcpu_threshold_ns: threshold,
                    target: Target {
                        pid,
                        exe_path: exe,
                        cmdline,
                        build_id,
                    },
                    ..Header::default()
                };
                h.options.kernel_stacks = kstacks;
                h
            },
        )
}

fn write(header: &Header, events: &[Event], threads: &[ThreadEvent], per_chunk: usize) -> Vec<u8> {
    let options = WriterOptions {
        max_chunk_events: per_chunk,
        ..WriterOptions::default()
    };
    let mut w = CaptureWriter::new(Vec::new(), header, options).unwrap();
    for (i, e) in events.iter().enumerate() {
        match e.clone() {
            Event::Switch {
                ts,
                tid,
                cpu,
                on_cpu,
                state,
            } => w
                .push_switch(ts, tid, cpu, on_cpu, u32::from(state))
                .unwrap(),
            Event::Sample {
                ts,
                tid,
                cpu,
                user,
                kernel,
            } => w.push_sample(ts, tid, cpu, &user, &kernel).unwrap(),
            Event::OffCpu {
                ts,
                tid,
                cpu,
                duration,
                runnable,
                state,
                user,
                kernel,
            } => w
                .push_off_cpu(
                    ts,
                    tid,
                    cpu,
                    duration,
                    runnable,
                    u32::from(state),
                    &user,
                    &kernel,
                )
                .unwrap(),
        }
        if let Some(t) = threads.get(i) {
            w.push_thread(t.clone()).unwrap();
        }
        w.set_counter("lost_switch", i as u64 / 3);
    }
    w.finish().unwrap()
}

fn by_kind(events: &[Event]) -> (Vec<Event>, Vec<Event>, Vec<Event>) {
    let pick = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).cloned().collect();
    (
        pick(|e| matches!(e, Event::Switch { .. })),
        pick(|e| matches!(e, Event::Sample { .. })),
        pick(|e| matches!(e, Event::OffCpu { .. })),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn events_and_header_round_trip(
        header in header(),
        events in prop::collection::vec(event(), 0..300),
        names in prop::collection::vec(".{0,15}", 0..20),
        per_chunk in 1usize..64,
    ) {
        let threads: Vec<ThreadEvent> = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| ThreadEvent { ts_ns: i as u64, tid: i as u32, kind: ThreadEventKind::Renamed, name })
            .collect();
        let threads = &threads[..threads.len().min(events.len())];
        let bytes = write(&header, &events, threads, per_chunk);
        let capture = Capture::from_bytes(bytes.clone()).unwrap();
        prop_assert_eq!(capture.header(), &header);
        prop_assert_eq!(capture.ending(), &Ending::Clean);
        let decoded = decode(&capture);
        let (sw, sa, off) = by_kind(&events);
        prop_assert_eq!(&decoded.switches, &sw);
        prop_assert_eq!(&decoded.samples, &sa);
        prop_assert_eq!(&decoded.off_cpu, &off);
        prop_assert_eq!(&decoded.threads[..], threads);
        // Counters are cumulative: the last value written is the last one read.
        if !events.is_empty() {
            prop_assert_eq!(decoded.counters.last().unwrap().1, (events.len() as u64 - 1) / 3);
        }
        let index = capture.index().unwrap();
        prop_assert_eq!(index.totals.switches, sw.len() as u64);
        prop_assert_eq!(index.entries.len(), capture.frames().len() - 1);

        // The stream reader sees the same frames.
        let mut stream = FrameStream::new(&bytes[..]).unwrap();
        let mut frames = 0;
        while stream.next_frame().unwrap().is_some() {
            frames += 1;
        }
        prop_assert_eq!(frames, capture.frames().len());
        prop_assert_eq!(stream.ending(), Some(&Ending::Clean));
    }
}

#[test]
fn mappings_and_objects_round_trip() {
    let header = Header {
        start_ns: 5,
        ..Header::default()
    };
    let mapping = Mapping {
        ts_ns: 9,
        start: 0x1000,
        end: 0x9000,
        file_offset: 0x400,
        perms: "r-xp".into(),
        path: "/bin/x".into(),
        inode: 77,
        build_id: vec![1, 2, 3],
    };
    let mut w = CaptureWriter::new(Vec::new(), &header, WriterOptions::default()).unwrap();
    w.push_mapping(mapping.clone()).unwrap();
    // Bigger than one object part, so it is split and reassembled.
    let object: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 251) as u8).collect();
    w.embed_object("/bin/x", &[1, 2, 3], &object).unwrap();
    let bytes = w.finish().unwrap();
    let capture = Capture::from_bytes(bytes).unwrap();
    assert_eq!(decode(&capture).mappings, vec![mapping]);
    let objects = capture.objects().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].path, "/bin/x");
    assert_eq!(objects[0].bytes, object);
}

#[test]
fn file_and_memory_read_the_same() {
    let mix = hud_format::synth::Mix {
        switches: 5000,
        samples: 500,
        off_cpu: 50,
        ..hud_format::synth::Mix::benchmark()
    };
    let bytes = hud_format::synth::write_mix(Vec::new(), &mix, WriterOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.hud");
    std::fs::write(&path, &bytes).unwrap();
    let from_file = decode(&Capture::open(&path).unwrap());
    let from_memory = decode(&Capture::from_bytes(bytes).unwrap());
    assert_eq!(from_file.switches.len(), 5000);
    assert_eq!(from_file, from_memory);
}

/// Stack copies (format 1.1) come in frames of their own after the chunks whose events they
/// serve, and read back byte for byte; the chunks read the same with or without them. A copy
/// equal to an earlier one is written as a repeat of its number, and a thread's repeats in a
/// row widen one row.
#[test]
fn stack_copies_round_trip_in_frames_of_their_own() {
    use hud_format::frame::FrameKind;
    use hud_format::types::{COPY_OF_OFF_CPU, COPY_OF_SAMPLE};
    use hud_format::writer::StackCopyRow;

    let header = Header {
        start_ns: 1_000,
        ..Header::default()
    };
    let mut w = CaptureWriter::new(Vec::new(), &header, WriterOptions::default()).unwrap();
    let stack_bytes: Vec<u8> = (0..=255u8).cycle().take(700).collect();
    w.push_sample(2_000, 7, 0, &[0x10, 0x20], &[]).unwrap();
    w.push_stack_copy(&StackCopyRow {
        ts_ns: 2_000,
        span_ns: 0,
        tid: 7,
        of: COPY_OF_SAMPLE,
        ip: 0x10,
        sp: 0x7fff_0000,
        bp: 0x7fff_0040,
        bytes: &stack_bytes,
    })
    .unwrap();
    w.flush_chunk().unwrap();
    w.push_off_cpu(3_000, 8, 1, 500, 0, 1, &[0x30], &[])
        .unwrap();
    w.push_stack_copy(&StackCopyRow {
        ts_ns: 3_000,
        span_ns: 40,
        tid: 8,
        of: COPY_OF_OFF_CPU,
        ip: 0x30,
        sp: 0x7ffe_0000,
        bp: 1,
        bytes: &stack_bytes[..8],
    })
    .unwrap();
    // The sample's copy again, for two more samples: one row, widened, repeating copy 1.
    for ts in [4_000, 5_000] {
        w.push_sample(ts, 7, 0, &[0x10, 0x20], &[]).unwrap();
        w.push_stack_copy(&StackCopyRow {
            ts_ns: ts,
            span_ns: 0,
            tid: 7,
            of: COPY_OF_SAMPLE,
            ip: 0x10,
            sp: 0x7fff_0000,
            bp: 0x7fff_0040,
            bytes: &stack_bytes,
        })
        .unwrap();
    }
    // A sample without a copy breaks the run: the next repeat is a row of its own.
    w.push_sample(6_000, 7, 0, &[0x10, 0x20], &[]).unwrap();
    w.push_sample(7_000, 7, 0, &[0x10, 0x20], &[]).unwrap();
    w.push_stack_copy(&StackCopyRow {
        ts_ns: 7_000,
        span_ns: 0,
        tid: 7,
        of: COPY_OF_SAMPLE,
        ip: 0x10,
        sp: 0x7fff_0000,
        bp: 0x7fff_0040,
        bytes: &stack_bytes,
    })
    .unwrap();
    assert_eq!(
        w.stack_copies(),
        3,
        "rows: the repeats at 4 and 5 µs widened the first"
    );
    let bytes = w.finish().unwrap();

    let capture = Capture::from_bytes(bytes).unwrap();
    assert_eq!(capture.version().to_string(), "1.4");
    let kinds: Vec<FrameKind> = capture.frames().iter().map(|f| f.header.kind).collect();
    assert_eq!(
        kinds,
        [
            FrameKind::Header,
            FrameKind::Chunk,
            FrameKind::Chunk,
            FrameKind::StackCopies,
            FrameKind::Index
        ]
    );
    let frame = capture
        .frames()
        .iter()
        .find(|f| f.header.kind == FrameKind::StackCopies)
        .unwrap();
    let copies = capture.stack_copies(frame).unwrap();
    let c = copies.get();
    assert_eq!(c.ts.iter().collect::<Vec<_>>(), [2_000, 3_000, 7_000]);
    assert_eq!(c.first_id, 1);
    assert_eq!(c.tid[0], 7);
    assert_eq!(c.of[0], COPY_OF_SAMPLE);
    let regs = (
        c.ip[0].to_native(),
        c.sp[0].to_native(),
        c.bp[0].to_native(),
    );
    assert_eq!(regs, (0x10, 0x7fff_0000, 0x7fff_0040));
    // Copy 1 served the samples at 2, 4 and 5 µs.
    assert_eq!(
        (c.same_as[0].to_native(), c.span_ns[0].to_native()),
        (0, 3_000)
    );
    assert_eq!(
        (c.same_as[1].to_native(), c.span_ns[1].to_native(), c.of[1]),
        (0, 40, COPY_OF_OFF_CPU)
    );
    assert_eq!(
        (
            c.same_as[2].to_native(),
            c.len[2].to_native(),
            c.ip[2].to_native()
        ),
        (1, 0, 0)
    );
    // 700 bytes: 87 whole words; the tail shorter than a word is not kept.
    assert_eq!(common::copy_bytes(c, 0)[..696], stack_bytes[..696]);
    assert_eq!(common::copy_bytes(c, 1), &stack_bytes[..8]);
    assert_eq!(decode(&capture).samples.len(), 5);
}

/// Stacks a reader interns (unwound from copies) never take the ids of stacks a later chunk
/// defines: a live capture goes on after its stacks were unwound.
#[test]
fn interned_stacks_do_not_shadow_later_chunks() {
    let header = Header::default();
    let mut w = CaptureWriter::new(Vec::new(), &header, WriterOptions::default()).unwrap();
    w.push_sample(1, 1, 0, &[0xa, 0xb], &[]).unwrap();
    w.flush_chunk().unwrap();
    w.push_sample(2, 1, 0, &[0xc, 0xd], &[]).unwrap();
    let capture = Capture::from_bytes(w.finish().unwrap()).unwrap();
    let chunks = capture.chunks().unwrap();
    let mut stacks = hud_format::reader::Stacks::default();
    stacks.add(chunks[0].get()).unwrap();
    let first = stacks.local(chunks[0].get().samples.user_stack[0].to_native());
    assert_eq!(stacks.frames(first).collect::<Vec<_>>(), [0xa, 0xb]);
    let own = stacks.intern(&[0x1, 0x2, 0xb]);
    assert_eq!(stacks.intern(&[0x1, 0x2, 0xb]), own, "interned once");
    assert_eq!(stacks.frames(own).collect::<Vec<_>>(), [0x1, 0x2, 0xb]);
    stacks.add(chunks[1].get()).unwrap();
    let second = stacks.local(chunks[1].get().samples.user_stack[0].to_native());
    assert_eq!(stacks.frames(second).collect::<Vec<_>>(), [0xc, 0xd]);
    assert_eq!(stacks.frames(own).collect::<Vec<_>>(), [0x1, 0x2, 0xb]);
}
