//! Shared by the capture tests: turn a capture back into plain events to compare.
#![allow(dead_code)]

use std::collections::HashMap;

use hud_format::reader::{Capture, ChunkData};
use hud_format::types::{Mapping, ThreadEvent, EMPTY_STACK};

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
    let mut stacks: HashMap<u32, Vec<u64>> = HashMap::new();
    stacks.insert(EMPTY_STACK, Vec::new());
    let mut out = Decoded::default();
    for data in chunks {
        let c = data.get();
        let mut at = 0usize;
        for (i, len) in c.stacks.lens.iter().enumerate() {
            let len = len.to_native() as usize;
            let frames = c.stacks.frames[at..at + len]
                .iter()
                .map(|f| f.to_native())
                .collect();
            stacks.insert(c.stacks.first_id.to_native() + i as u32, frames);
            at += len;
        }
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
                user: stacks[&s.user_stack[i].to_native()].clone(),
                kernel: stacks[&s.kernel_stack[i].to_native()].clone(),
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
                user: stacks[&o.user_stack[i].to_native()].clone(),
                kernel: stacks[&o.kernel_stack[i].to_native()].clone(),
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
