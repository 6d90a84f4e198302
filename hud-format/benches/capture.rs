//! Capture write and read throughput on the synthetic mix, plus on-disk bytes per event.
//!
//! `cargo bench -p hud-format --features writer,reader` (xtask bench format runs the same).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hud_format::reader::Capture;
use hud_format::synth::{write_mix, Mix};
use hud_format::writer::WriterOptions;

fn only(switches: usize, samples: usize, off_cpu: usize) -> Mix {
    Mix {
        switches,
        samples,
        off_cpu,
        ..Mix::benchmark()
    }
}

/// Bytes per event of each kind, from captures holding only that kind (header and index excluded).
fn size_report() {
    let base = write_mix(Vec::new(), &only(0, 0, 0), WriterOptions::default())
        .unwrap()
        .len();
    for (name, mix, n) in [
        ("switch", only(1_000_000, 0, 0), 1_000_000),
        (
            "sample (500 unique 20-frame stacks)",
            only(0, 100_000, 0),
            100_000,
        ),
        (
            "off-cpu (500 unique 20-frame stacks)",
            only(0, 0, 100_000),
            100_000,
        ),
    ] {
        let len = write_mix(Vec::new(), &mix, WriterOptions::default())
            .unwrap()
            .len();
        eprintln!("bytes per {name}: {:.2}", (len - base) as f64 / n as f64);
    }
    let full = write_mix(Vec::new(), &Mix::benchmark(), WriterOptions::default()).unwrap();
    eprintln!("benchmark mix: {} bytes for 1.11 M events", full.len());
}

fn bench(c: &mut Criterion) {
    size_report();
    let mix = Mix::benchmark();
    let events = (mix.switches + mix.samples + mix.off_cpu) as u64;

    let mut group = c.benchmark_group("write");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    group.bench_function("benchmark_mix", |b| {
        b.iter(|| write_mix(Vec::with_capacity(8 << 20), &mix, WriterOptions::default()).unwrap())
    });
    group.finish();

    let bytes = write_mix(Vec::new(), &mix, WriterOptions::default()).unwrap();
    let mut group = c.benchmark_group("read_validate");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter(|| {
                pool.install(|| {
                    let capture = Capture::from_bytes(bytes.clone()).unwrap();
                    let chunks = capture.chunks().unwrap();
                    // Touch every timestamp so the delta columns are decoded too.
                    chunks
                        .iter()
                        .map(|c| c.get().switches.ts.iter().count())
                        .sum::<usize>()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
