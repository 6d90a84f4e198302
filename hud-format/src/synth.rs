//! Deterministic synthetic workloads for tests and benchmarks (no eBPF needed).
//!
//! The mix imitates a busy Tokio service: many threads switching on a few CPUs, samples whose
//! stacks come from a fixed pool, a few long off-CPU episodes.

use crate::types::{Header, Mapping, Target, ThreadEvent, ThreadEventKind};
use crate::writer::{CaptureWriter, WriterOptions};
use crate::Error;

/// A small, fast, seedable generator (xorshift64*), so no test depends on a rand crate's stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Roughly exponential with the given mean: scheduling gaps look like this.
    pub fn exp(&mut self, mean: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (-(1.0 - u).ln() * mean as f64) as u64
    }
}

/// Shape of a synthetic capture.
#[derive(Clone, Debug)]
pub struct Mix {
    pub switches: usize,
    pub samples: usize,
    pub off_cpu: usize,
    pub threads: u32,
    pub cpus: u16,
    pub unique_stacks: usize,
    pub stack_depth: usize,
    pub seed: u64,
}

impl Mix {
    /// The benchmark mix: 1 M switches from 16 threads on 2 CPUs, 100 k samples with
    /// 20-frame stacks drawn from 500 unique stacks.
    pub fn benchmark() -> Self {
        Self {
            switches: 1_000_000,
            samples: 100_000,
            off_cpu: 10_000,
            threads: 16,
            cpus: 2,
            unique_stacks: 500,
            stack_depth: 20,
            seed: 7,
        }
    }
}

/// A header for synthetic captures.
pub fn header(start_ns: u64) -> Header {
    Header {
        hud_version: "0.0.0-synthetic".into(),
        host_name: "synth".into(),
        kernel_release: "6.18.0".into(),
        arch: "x86_64".into(),
        page_size: 4096,
        cpu_count: 2,
        start_ns,
        sample_hz: 99,
        offcpu_threshold_ns: 1_000_000,
        target: Target {
            pid: 4242,
            exe_path: "/usr/bin/synthetic".into(),
            cmdline: vec!["synthetic".into()],
            build_id: vec![0xab; 20],
        },
        ..Header::default()
    }
}

/// A pool of stacks that look like code addresses of one PIE binary.
pub fn stack_pool(rng: &mut Rng, count: usize, depth: usize) -> Vec<Vec<u64>> {
    (0..count)
        .map(|_| {
            (0..depth)
                .map(|_| 0x5555_5555_0000 + rng.below(0x40_0000))
                .collect()
        })
        .collect()
}

/// Writes `mix` as a capture into `out`, interleaving the kinds in time order.
pub fn write_mix<W: std::io::Write>(out: W, mix: &Mix, options: WriterOptions) -> Result<W, Error> {
    let mut rng = Rng::new(mix.seed);
    let start = 1_000_000_000;
    let mut w = CaptureWriter::new(out, &header(start), options)?;
    let pool = stack_pool(&mut rng, mix.unique_stacks.max(1), mix.stack_depth);
    w.push_mapping(Mapping {
        ts_ns: start,
        start: 0x5555_5555_0000,
        end: 0x5555_5595_0000,
        file_offset: 0,
        perms: "r-xp".into(),
        path: "/usr/bin/synthetic".into(),
        inode: 1,
        build_id: vec![0xab; 20],
    })?;
    for t in 0..mix.threads {
        w.push_thread(ThreadEvent {
            ts_ns: start,
            tid: 4242 + t,
            kind: ThreadEventKind::New,
            name: format!("tokio-runtime-w{t}"),
        })?;
    }
    let total = mix.switches + mix.samples + mix.off_cpu;
    let mut ts = start;
    let (mut sw, mut sa, mut off) = (0, 0, 0);
    let mut on_cpu = vec![false; mix.threads as usize];
    for _ in 0..total {
        ts += rng.exp(5_000);
        let left = (mix.switches - sw, mix.samples - sa, mix.off_cpu - off);
        let pick = rng.below((left.0 + left.1 + left.2) as u64) as usize;
        let tid_index = rng.below(u64::from(mix.threads)) as usize;
        let tid = 4242 + tid_index as u32;
        let cpu = rng.below(u64::from(mix.cpus)) as u16;
        if pick < left.0 {
            let going_in = !on_cpu[tid_index];
            on_cpu[tid_index] = going_in;
            let state = if going_in {
                0
            } else {
                [1, 1, 1, 2, 0x100][rng.below(5) as usize]
            };
            w.push_switch(ts, tid, cpu, going_in, state)?;
            sw += 1;
        } else if pick < left.0 + left.1 {
            let stack = &pool[rng.below(pool.len() as u64) as usize];
            w.push_sample(ts, tid, cpu, stack, &[])?;
            sa += 1;
        } else {
            let stack = &pool[rng.below(pool.len() as u64) as usize];
            let duration = 1_000_000 + rng.exp(5_000_000);
            w.push_off_cpu(ts, tid, cpu, duration, rng.exp(50_000), 1, stack, &[])?;
            off += 1;
        }
        w.set_now(ts);
    }
    w.set_counter("lost_switch", 0);
    w.finish()
}
