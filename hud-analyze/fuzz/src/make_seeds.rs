//! Writes the seed corpus: small captures whose stacks resolve, under the fuzzing vocabulary, to
//! Tokio workers running tasks that sleep, wait for a lock and compute, plus a current_thread
//! runtime and a blocking pool: every path of classification and detection has a seed.

use hud_analyze_fuzz::address_of;
use hud_format::synth::header;
use hud_format::types::{Mapping, ThreadEvent, ThreadEventKind};
use hud_format::writer::{CaptureWriter, WriterOptions};

const MS: u64 = 1_000_000;
const START: u64 = 1_000 * MS;

fn stack(entries: &[usize]) -> Vec<u64> {
    entries.iter().map(|&i| address_of(i)).collect()
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make_seeds DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let worker_root = [12, 13, 14, 15, 16, 19];
    let with_root = |inner: &[usize]| -> Vec<u64> {
        stack(
            &inner
                .iter()
                .chain(worker_root.iter())
                .copied()
                .collect::<Vec<_>>(),
        )
    };
    let sleep = with_root(&[5, 4, 0, 3]);
    let lock = with_root(&[7, 6, 1, 3]);
    let crunch = with_root(&[2, 3]);
    let parked = stack(&[8, 9, 10, 11, 15, 16, 19]);
    let pool = stack(&[2, 17, 12, 16, 19]);
    let current = stack(&[20, 0, 12, 18, 19]);
    for (n, (periods, per_chunk)) in [(20u64, 16usize), (60, 40), (8, 1000)].iter().enumerate() {
        let options = WriterOptions {
            max_chunk_events: *per_chunk,
            ..WriterOptions::default()
        };
        let mut w = CaptureWriter::new(Vec::new(), &header(START), options).unwrap();
        for (tid, name) in [
            (10, "tokio-runtime-w"),
            (11, "app-worker-1"),
            (12, "blocking"),
            (13, "main"),
        ] {
            w.push_thread(ThreadEvent {
                ts_ns: START,
                tid,
                kind: ThreadEventKind::New,
                name: name.into(),
            })
            .unwrap();
        }
        w.push_mapping(Mapping {
            ts_ns: START,
            start: 0x10_0000,
            end: 0x20_0000,
            file_offset: 0,
            perms: "r-xp".into(),
            path: "/usr/bin/synthetic".into(),
            inode: 1,
            build_id: vec![0xab; 20],
        })
        .unwrap();
        for i in 0..*periods {
            let t = START + i * 10 * MS;
            let tid = 10 + (i % 2) as u32;
            w.set_now(t);
            w.push_sample(t, tid, 0, if i % 4 < 2 { &crunch } else { &parked }, &[])
                .unwrap();
            w.push_sample(t + MS, 12, 1, &pool, &[]).unwrap();
            w.push_sample(t + 2 * MS, 13, 1, &current, &[]).unwrap();
            if i % 5 == 0 {
                w.push_off_cpu(t + 5 * MS, tid, 0, 15 * MS, MS, 1, &sleep, &[])
                    .unwrap();
                w.push_off_cpu(t + 6 * MS, 13, 1, 3 * MS, 0, 2, &current, &[])
                    .unwrap();
            }
            if i % 7 == 0 {
                w.push_off_cpu(t + 7 * MS, 11, 0, 8 * MS, 0, 1, &lock, &[])
                    .unwrap();
            }
            w.push_switch(t + 8 * MS, tid, 0, false, 0x100).unwrap();
            w.push_switch(t + 9 * MS, tid, 0, true, 0).unwrap();
            w.maybe_flush().unwrap();
        }
        w.set_counter("lost_ringbuf", n as u64);
        let bytes = w.finish().unwrap();
        let found = hud_analyze_fuzz::blockers_under_vocabulary(&bytes);
        println!(
            "seed service-{n}: {} bytes, blockers {found:?}",
            bytes.len()
        );
        assert!(
            found.len() >= 2,
            "a seed without blockers exercises too little"
        );
        std::fs::write(format!("{dir}/service-{n}"), bytes).unwrap();
    }
}
