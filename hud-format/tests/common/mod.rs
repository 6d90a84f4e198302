//! Shared by the capture tests: turn a capture back into plain events to compare.
#![allow(dead_code)]

use hud_format::reader::{Capture, ChunkData, Stacks};
use hud_format::types::{Mapping, ThreadEvent};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Switch {
        ts: u64,
        tid: u32,
        cpu: u16,
        on_cpu: bool,
        state: u16,
    },
    Sample {
        ts: u64,
        tid: u32,
        cpu: u16,
        user: Vec<u64>,
        kernel: Vec<u64>,
    },
    OffCpu {
        ts: u64,
        tid: u32,
        cpu: u16,
        duration: u64,
        runnable: u64,
        state: u16,
        user: Vec<u64>,
        kernel: Vec<u64>,
    },
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub switches: Vec<Event>,
    pub samples: Vec<Event>,
    pub off_cpu: Vec<Event>,
    pub threads: Vec<ThreadEvent>,
    pub mappings: Vec<Mapping>,
    pub counters: Vec<(String, u64)>,
}

/// Reads chunks in order, resolving stack ids through the tables seen so far.
pub fn decode_chunks(chunks: &[ChunkData]) -> Decoded {
    let mut table = Stacks::default();
    let mut out = Decoded::default();
    for data in chunks {
        let c = data.get();
        table
            .add(c)
            .expect("stack ids continue from chunk to chunk");
        let stack = |id: u32| -> Vec<u64> { table.frames(table.local(id)).collect() };
        let s = &c.switches;
        for (i, ts) in s.ts.iter().enumerate() {
            out.switches.push(Event::Switch {
                ts,
                tid: s.tid[i].to_native(),
                cpu: s.cpu[i].to_native(),
                on_cpu: s.on_cpu[i] == 1,
                state: s.prev_state[i].to_native(),
            });
        }
        let s = &c.samples;
        for (i, ts) in s.ts.iter().enumerate() {
            out.samples.push(Event::Sample {
                ts,
                tid: s.tid[i].to_native(),
                cpu: s.cpu[i].to_native(),
                user: stack(s.user_stack[i].to_native()),
                kernel: stack(s.kernel_stack[i].to_native()),
            });
        }
        let o = &c.off_cpu;
        for (i, ts) in o.ts.iter().enumerate() {
            out.off_cpu.push(Event::OffCpu {
                ts,
                tid: o.tid[i].to_native(),
                cpu: o.cpu[i].to_native(),
                duration: o.duration_ns[i].to_native(),
                runnable: o.runnable_ns[i].to_native(),
                state: o.state[i].to_native(),
                user: stack(o.user_stack[i].to_native()),
                kernel: stack(o.kernel_stack[i].to_native()),
            });
        }
        let owned = data.to_owned_chunk();
        out.threads.extend(owned.threads);
        out.mappings.extend(owned.mappings);
        out.counters
            .extend(owned.counters.into_iter().map(|c| (c.name, c.value)));
    }
    out
}

pub fn decode(capture: &Capture) -> Decoded {
    decode_chunks(&capture.chunks().expect("chunks decode"))
}

/// A small synthetic capture in chunks of 40 events, so that a cut or a damaged byte falls
/// between frames as well as inside them.
pub fn small_capture() -> Vec<u8> {
    let mix = hud_format::synth::Mix {
        switches: 300,
        samples: 60,
        off_cpu: 10,
        threads: 4,
        cpus: 2,
        unique_stacks: 8,
        stack_depth: 6,
        seed: 3,
    };
    let options = hud_format::writer::WriterOptions {
        max_chunk_events: 40,
        ..hud_format::writer::WriterOptions::default()
    };
    hud_format::synth::write_mix(Vec::new(), &mix, options).unwrap()
}

/// Row `i`'s copied stack as bytes (frames store its non-zero words).
#[allow(dead_code)]
pub fn copy_bytes(c: &hud_format::types::ArchivedStackCopies, i: usize) -> Vec<u8> {
    let start: usize = c.words[..i].iter().map(|w| w.to_native() as usize).sum();
    let count = c.words[i].to_native() as usize;
    let mut bytes = vec![0u8; c.len[i].to_native() as usize];
    for k in start..start + count {
        let at = usize::from(c.word_index[k].to_native()) * 8;
        bytes[at..at + 8].copy_from_slice(&c.word_value[k].to_native().to_le_bytes());
    }
    bytes
}
