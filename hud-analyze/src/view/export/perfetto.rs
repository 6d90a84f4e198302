//! A Perfetto trace (protobuf) for ui.perfetto.dev: the compact timeline.
//!
//! - A process track, and a track per thread named with its role.
//! - Per thread, a counter track of its state (1 running, 2 waiting for a CPU, 0 off CPU): one
//!   event per transition, the densest part of a trace.
//! - Under each thread, slices: each blocking episode named after the blamed function (kind,
//!   file:line and duration as debug annotations, its stack as an interned callstack) and long
//!   polls.
//! - cpu-clock samples as `PerfSample`s with interned callstacks (functions, file:line, mappings
//!   with build-ids), so selecting a range in the UI gives a flame graph.
//! - A process counter: how many runtime threads are blocked.
//!
//! Size: every thread is a packet sequence with its own incremental clock (timestamps are deltas
//! of a few bytes, not 8-byte absolutes) and its track as the default track. The message types
//! are written by hand for the subset used; field numbers are those of perfetto_trace.proto (as
//! shipped in the PyPI `perfetto` package's generated module, which the tests decode with).

use std::io::{BufWriter, Write};

use prost::Message;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::slices::{thread_slices, What};
use super::{ExportOptions, Written};
use crate::analysis::frames::Kind;
use crate::analysis::Analysis;
use crate::model::State;
use crate::symbols::objects::hex;

#[derive(Clone, PartialEq, Message)]
pub struct TracePacket {
    #[prost(uint64, optional, tag = "8")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "58")]
    pub timestamp_clock_id: Option<u32>,
    #[prost(message, optional, tag = "6")]
    pub clock_snapshot: Option<ClockSnapshot>,
    #[prost(message, optional, tag = "11")]
    pub track_event: Option<TrackEvent>,
    #[prost(message, optional, tag = "60")]
    pub track_descriptor: Option<TrackDescriptor>,
    #[prost(message, optional, tag = "66")]
    pub perf_sample: Option<PerfSample>,
    #[prost(uint32, optional, tag = "10")]
    pub trusted_packet_sequence_id: Option<u32>,
    #[prost(message, optional, tag = "12")]
    pub interned_data: Option<InternedData>,
    #[prost(uint32, optional, tag = "13")]
    pub sequence_flags: Option<u32>,
    #[prost(message, optional, tag = "59")]
    pub trace_packet_defaults: Option<TracePacketDefaults>,
    #[prost(bool, optional, tag = "87")]
    pub first_packet_on_sequence: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ClockSnapshot {
    #[prost(message, repeated, tag = "1")]
    pub clocks: Vec<Clock>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Clock {
    #[prost(uint32, optional, tag = "1")]
    pub clock_id: Option<u32>,
    #[prost(uint64, optional, tag = "2")]
    pub timestamp: Option<u64>,
    #[prost(bool, optional, tag = "3")]
    pub is_incremental: Option<bool>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TracePacketDefaults {
    #[prost(uint32, optional, tag = "58")]
    pub timestamp_clock_id: Option<u32>,
    #[prost(message, optional, tag = "11")]
    pub track_event_defaults: Option<TrackEventDefaults>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TrackEventDefaults {
    #[prost(uint64, optional, tag = "11")]
    pub track_uuid: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TrackDescriptor {
    #[prost(uint64, optional, tag = "1")]
    pub uuid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub process: Option<ProcessDescriptor>,
    #[prost(message, optional, tag = "4")]
    pub thread: Option<ThreadDescriptor>,
    #[prost(uint64, optional, tag = "5")]
    pub parent_uuid: Option<u64>,
    #[prost(message, optional, tag = "8")]
    pub counter: Option<CounterDescriptor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProcessDescriptor {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub process_name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ThreadDescriptor {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub tid: Option<i32>,
    #[prost(string, optional, tag = "5")]
    pub thread_name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct CounterDescriptor {
    /// 2: UNIT_COUNT.
    #[prost(int32, optional, tag = "3")]
    pub unit: Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub unit_name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TrackEvent {
    #[prost(uint64, repeated, packed = "false", tag = "3")]
    pub category_iids: Vec<u64>,
    #[prost(message, repeated, tag = "4")]
    pub debug_annotations: Vec<DebugAnnotation>,
    /// 1 slice begin, 2 slice end, 4 counter.
    #[prost(int32, optional, tag = "9")]
    pub r#type: Option<i32>,
    #[prost(uint64, optional, tag = "10")]
    pub name_iid: Option<u64>,
    #[prost(uint64, optional, tag = "11")]
    pub track_uuid: Option<u64>,
    #[prost(int64, optional, tag = "30")]
    pub counter_value: Option<i64>,
    #[prost(uint64, optional, tag = "56")]
    pub callstack_iid: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DebugAnnotation {
    #[prost(uint64, optional, tag = "1")]
    pub name_iid: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub uint_value: Option<u64>,
    #[prost(double, optional, tag = "5")]
    pub double_value: Option<f64>,
    #[prost(string, optional, tag = "6")]
    pub string_value: Option<String>,
    #[prost(message, repeated, tag = "12")]
    pub array_values: Vec<DebugAnnotation>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PerfSample {
    #[prost(uint32, optional, tag = "1")]
    pub cpu: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub pid: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub tid: Option<u32>,
    #[prost(uint64, optional, tag = "4")]
    pub callstack_iid: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct InternedData {
    #[prost(message, repeated, tag = "1")]
    pub event_categories: Vec<Named>,
    #[prost(message, repeated, tag = "2")]
    pub event_names: Vec<Named>,
    #[prost(message, repeated, tag = "3")]
    pub debug_annotation_names: Vec<Named>,
    #[prost(message, repeated, tag = "5")]
    pub function_names: Vec<InternedString>,
    #[prost(message, repeated, tag = "6")]
    pub frames: Vec<Frame>,
    #[prost(message, repeated, tag = "7")]
    pub callstacks: Vec<Callstack>,
    #[prost(message, repeated, tag = "16")]
    pub build_ids: Vec<InternedString>,
    #[prost(message, repeated, tag = "17")]
    pub mapping_paths: Vec<InternedString>,
    #[prost(message, repeated, tag = "18")]
    pub source_paths: Vec<InternedString>,
    #[prost(message, repeated, tag = "19")]
    pub mappings: Vec<Mapping>,
}

/// EventName, EventCategory and DebugAnnotationName share this shape.
#[derive(Clone, PartialEq, Message)]
pub struct Named {
    #[prost(uint64, optional, tag = "1")]
    pub iid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct InternedString {
    #[prost(uint64, optional, tag = "1")]
    pub iid: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub str: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Frame {
    #[prost(uint64, optional, tag = "1")]
    pub iid: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub function_name_id: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub mapping_id: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub rel_pc: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub source_path_iid: Option<u64>,
    #[prost(uint32, optional, tag = "6")]
    pub line_number: Option<u32>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Callstack {
    #[prost(uint64, optional, tag = "1")]
    pub iid: Option<u64>,
    /// Outermost frame first.
    #[prost(uint64, repeated, packed = "false", tag = "2")]
    pub frame_ids: Vec<u64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, optional, tag = "1")]
    pub iid: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub build_id: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub start: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub end: Option<u64>,
    #[prost(uint64, repeated, packed = "false", tag = "7")]
    pub path_string_ids: Vec<u64>,
    #[prost(uint64, optional, tag = "8")]
    pub exact_offset: Option<u64>,
}

const SLICE_BEGIN: i32 = 1;
const SLICE_END: i32 = 2;
const COUNTER: i32 = 4;
const CLOCK_MONOTONIC: u32 = 3;
/// A sequence-scoped clock (ids from 64 are the trace's own), incremental: packets carry deltas.
const CLOCK_DELTAS: u32 = 64;
const SEQ_INCREMENTAL_STATE_CLEARED: u32 = 1;
const SEQ_NEEDS_INCREMENTAL_STATE: u32 = 2;
/// COUNT.
const UNIT_COUNT: i32 = 2;

/// Thread state counter values.
const OFF_CPU: i64 = 0;
const RUNNING: i64 = 1;
const WAITING: i64 = 2;

/// Writes packets as a `Trace` (repeated field 1), one by one, through one reused buffer.
struct Out<'w> {
    w: BufWriter<&'w mut dyn Write>,
    buf: Vec<u8>,
}

impl Out<'_> {
    fn packet(&mut self, p: &TracePacket) -> std::io::Result<()> {
        self.buf.clear();
        // Field 1, length-delimited: the tag byte, then the length and the message.
        self.buf.push(0x0a);
        p.encode_length_delimited(&mut self.buf)
            .map_err(std::io::Error::other)?;
        self.w.write_all(&self.buf)
    }
}

/// One packet sequence: its id, the last timestamp (for deltas), and what it has interned.
struct Sequence {
    id: u32,
    last: u64,
}

impl Sequence {
    /// The first packet: state cleared, the delta clock anchored at `start` on CLOCK_MONOTONIC,
    /// and `track` as the default track of its events.
    fn open(id: u32, start: u64, track: u64) -> (Self, TracePacket) {
        let packet = TracePacket {
            trusted_packet_sequence_id: Some(id),
            sequence_flags: Some(SEQ_INCREMENTAL_STATE_CLEARED),
            first_packet_on_sequence: Some(true),
            clock_snapshot: Some(ClockSnapshot {
                clocks: vec![
                    Clock {
                        clock_id: Some(CLOCK_DELTAS),
                        timestamp: Some(start),
                        is_incremental: Some(true),
                    },
                    Clock {
                        clock_id: Some(CLOCK_MONOTONIC),
                        timestamp: Some(start),
                        is_incremental: None,
                    },
                ],
            }),
            trace_packet_defaults: Some(TracePacketDefaults {
                timestamp_clock_id: Some(CLOCK_DELTAS),
                track_event_defaults: Some(TrackEventDefaults {
                    track_uuid: Some(track),
                }),
            }),
            ..Default::default()
        };
        (Sequence { id, last: start }, packet)
    }

    /// A packet at time `t` (not before the previous one: deltas are unsigned). It relies on the
    /// sequence's state (the delta clock, the default track); the flag that says so only serves
    /// to drop such packets after a loss inside the sequence, which a file written in one go
    /// never has, so it is left to the packets that use interned names ([`Sequence::interning`]):
    /// two bytes on each of millions of state changes.
    fn at(&mut self, t: u64) -> TracePacket {
        let t = t.max(self.last);
        let delta = t - self.last;
        self.last = t;
        TracePacket {
            timestamp: Some(delta),
            trusted_packet_sequence_id: Some(self.id),
            ..Default::default()
        }
    }

    /// Marks a packet that uses interned data.
    fn interning(p: &mut TracePacket) {
        p.sequence_flags = Some(SEQ_NEEDS_INCREMENTAL_STATE);
    }
}

/// Interned strings and stacks, shared by the whole trace; each sequence is told about an entry
/// before it first uses it.
#[derive(Default)]
struct Interner {
    names: HashMap<String, u64>,
    annotation_names: HashMap<String, u64>,
    categories: HashMap<String, u64>,
    functions: HashMap<String, u64>,
    sources: HashMap<String, u64>,
    frames: HashMap<(u32, bool, usize), u64>,
    callstacks: HashMap<u32, u64>,
    mappings: HashMap<usize, u64>,
    strings_iid: u64,
}

/// Per sequence: which iids it has been sent.
#[derive(Default)]
struct Sent {
    ids: HashSet<(u8, u64)>,
}

const NAMES: u8 = 0;
const ANNOTATIONS: u8 = 1;
const CATEGORIES: u8 = 2;
const FUNCTIONS: u8 = 3;
const SOURCES: u8 = 4;
const FRAMES: u8 = 5;
const CALLSTACKS: u8 = 6;
const MAPPINGS: u8 = 7;
const BUILD_IDS: u8 = 8;
const PATHS: u8 = 9;

impl Interner {
    fn next(&mut self) -> u64 {
        self.strings_iid += 1;
        self.strings_iid
    }

    /// The iid of `key` in `map`, made when new.
    fn iid<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, next: &mut u64, key: K) -> u64 {
        *map.entry(key).or_insert_with(|| {
            *next += 1;
            *next
        })
    }

    /// An interned name (`kind` says which table), sent to the sequence on its first use there.
    fn named(
        map: &mut HashMap<String, u64>,
        next: &mut u64,
        kind: u8,
        sent: &mut Sent,
        table: &mut Vec<Named>,
        name: &str,
    ) -> u64 {
        let iid = match map.get(name) {
            Some(i) => *i,
            None => Self::iid(map, next, name.to_owned()),
        };
        if sent.ids.insert((kind, iid)) {
            table.push(Named {
                iid: Some(iid),
                name: Some(name.to_owned()),
            });
        }
        iid
    }

    fn name(&mut self, sent: &mut Sent, data: &mut InternedData, name: &str) -> u64 {
        Self::named(
            &mut self.names,
            &mut self.strings_iid,
            NAMES,
            sent,
            &mut data.event_names,
            name,
        )
    }

    fn category(&mut self, sent: &mut Sent, data: &mut InternedData, name: &str) -> u64 {
        Self::named(
            &mut self.categories,
            &mut self.strings_iid,
            CATEGORIES,
            sent,
            &mut data.event_categories,
            name,
        )
    }

    fn annotation(&mut self, sent: &mut Sent, data: &mut InternedData, name: &str) -> u64 {
        Self::named(
            &mut self.annotation_names,
            &mut self.strings_iid,
            ANNOTATIONS,
            sent,
            &mut data.debug_annotation_names,
            name,
        )
    }

    fn string(
        map: &mut HashMap<String, u64>,
        next: &mut u64,
        kind: u8,
        sent: &mut Sent,
        out: &mut Vec<InternedString>,
        s: &str,
    ) -> u64 {
        let iid = match map.get(s) {
            Some(i) => *i,
            None => Self::iid(map, next, s.to_owned()),
        };
        if sent.ids.insert((kind, iid)) {
            out.push(InternedString {
                iid: Some(iid),
                str: Some(s.as_bytes().to_vec()),
            });
        }
        iid
    }

    /// The callstack of stack `id`: a frame per function, inline ones included, outermost first.
    fn callstack(
        &mut self,
        a: &Analysis,
        mappings: &[MappingInfo],
        sent: &mut Sent,
        data: &mut InternedData,
        id: u32,
    ) -> u64 {
        if let Some(&iid) = self.callstacks.get(&id) {
            if sent.ids.contains(&(CALLSTACKS, iid)) {
                return iid;
            }
        }
        let nodes = a.model.stacks.nodes();
        let mut frame_ids = Vec::new();
        let mut node = id;
        let mut as_caller = false;
        while node != 0 {
            let Some(&(parent, address)) = nodes.get(node as usize - 1) else {
                break;
            };
            let mapping = mappings
                .iter()
                .rposition(|m| m.start <= address && address < m.end);
            for (depth, f) in a.symbols.node(node, as_caller).iter().enumerate() {
                let iid = Self::iid(
                    &mut self.frames,
                    &mut self.strings_iid,
                    (node, as_caller, depth),
                );
                if sent.ids.insert((FRAMES, iid)) {
                    let function = Self::string(
                        &mut self.functions,
                        &mut self.strings_iid,
                        FUNCTIONS,
                        sent,
                        &mut data.function_names,
                        &f.function,
                    );
                    let source = f.file.as_deref().map(|file| {
                        Self::string(
                            &mut self.sources,
                            &mut self.strings_iid,
                            SOURCES,
                            sent,
                            &mut data.source_paths,
                            file,
                        )
                    });
                    let mapping_id = mapping.map(|m| self.mapping(&mappings[m], m, sent, data));
                    let rel_pc = mapping.map(|m| address - mappings[m].start + mappings[m].offset);
                    data.frames.push(Frame {
                        iid: Some(iid),
                        function_name_id: Some(function),
                        mapping_id,
                        rel_pc,
                        source_path_iid: source,
                        line_number: source.map(|_| f.line),
                    });
                }
                frame_ids.push(iid);
            }
            node = if parent < node { parent } else { 0 };
            as_caller = true;
        }
        frame_ids.reverse();
        let iid = Self::iid(&mut self.callstacks, &mut self.strings_iid, id);
        sent.ids.insert((CALLSTACKS, iid));
        data.callstacks.push(Callstack {
            iid: Some(iid),
            frame_ids,
        });
        iid
    }

    fn mapping(
        &mut self,
        m: &MappingInfo,
        index: usize,
        sent: &mut Sent,
        data: &mut InternedData,
    ) -> u64 {
        let iid = Self::iid(&mut self.mappings, &mut self.strings_iid, index);
        if sent.ids.insert((MAPPINGS, iid)) {
            let build_id = {
                let i = self.next();
                sent.ids.insert((BUILD_IDS, i));
                data.build_ids.push(InternedString {
                    iid: Some(i),
                    str: Some(m.build_id.clone().into_bytes()),
                });
                i
            };
            let path = {
                let i = self.next();
                sent.ids.insert((PATHS, i));
                data.mapping_paths.push(InternedString {
                    iid: Some(i),
                    str: Some(m.path.clone().into_bytes()),
                });
                i
            };
            data.mappings.push(Mapping {
                iid: Some(iid),
                build_id: Some(build_id),
                start: Some(m.start),
                end: Some(m.end),
                path_string_ids: vec![path],
                exact_offset: Some(m.offset),
            });
        }
        iid
    }
}

/// An executable mapping.
struct MappingInfo {
    start: u64,
    end: u64,
    offset: u64,
    path: String,
    build_id: String,
}

fn is_empty(data: &InternedData) -> bool {
    data == &InternedData::default()
}

pub fn write(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    let m = &a.model;
    let w = options.window;
    let (from, to) = w.clip(m);
    let pid = m.header.target.pid;
    let mut out = Out {
        w: BufWriter::new(out),
        buf: Vec::new(),
    };
    let mappings: Vec<MappingInfo> = m
        .mappings
        .iter()
        .filter(|mp| mp.perms.contains('x'))
        .map(|mp| MappingInfo {
            start: mp.start,
            end: mp.end,
            offset: mp.file_offset,
            path: mp.path.clone(),
            build_id: hex(&mp.build_id),
        })
        .collect();
    let mut interner = Interner::default();
    let process_uuid = 1u64;
    let blocked_uuid = 2u64;
    // Sequence 1: the process, its counter of blocked runtime threads.
    let (mut process_seq, first) = Sequence::open(1, from, blocked_uuid);
    out.packet(&first)?;
    let exe = super::executable_name(a);
    out.packet(&TracePacket {
        trusted_packet_sequence_id: Some(1),
        track_descriptor: Some(TrackDescriptor {
            uuid: Some(process_uuid),
            process: Some(ProcessDescriptor {
                pid: Some(pid as i32),
                process_name: Some(exe),
            }),
            ..Default::default()
        }),
        ..Default::default()
    })?;
    out.packet(&TracePacket {
        trusted_packet_sequence_id: Some(1),
        track_descriptor: Some(TrackDescriptor {
            uuid: Some(blocked_uuid),
            parent_uuid: Some(process_uuid),
            name: Some("blocked runtime threads".into()),
            counter: Some(CounterDescriptor {
                unit: Some(UNIT_COUNT),
                unit_name: Some("threads".into()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    })?;
    // The counter: +1 at each off-CPU blocking episode's start, -1 at its end.
    let mut changes: Vec<(u64, i64)> = a
        .detection
        .episodes
        .iter()
        .filter(|e| e.kind != Kind::Cpu && e.start < to && e.end() > from)
        .filter(|e| options.threads.as_ref().is_none_or(|t| t.contains(&e.tid)))
        .flat_map(|e| [(e.start.max(from), 1), (e.end().min(to), -1)])
        .collect();
    changes.sort_unstable();
    let mut blocked = 0i64;
    for (t, change) in changes {
        blocked += change;
        let mut p = process_seq.at(t);
        p.track_event = Some(TrackEvent {
            r#type: Some(COUNTER),
            counter_value: Some(blocked),
            ..Default::default()
        });
        out.packet(&p)?;
    }

    let mut events = 0u64;
    for (i, (tid, thread)) in m.threads.iter().enumerate() {
        if options.threads.as_ref().is_some_and(|t| !t.contains(tid)) {
            continue;
        }
        let thread_uuid = 1000 + 2 * i as u64;
        let state_uuid = thread_uuid + 1;
        // The state counter is the sequence's default track: its changes are most of the events.
        let (mut seq, first) = Sequence::open(10 + i as u32, from, state_uuid);
        out.packet(&first)?;
        out.packet(&TracePacket {
            trusted_packet_sequence_id: Some(seq.id),
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(thread_uuid),
                parent_uuid: Some(process_uuid),
                thread: Some(ThreadDescriptor {
                    pid: Some(pid as i32),
                    tid: Some(*tid as i32),
                    thread_name: Some(format!("{} ({})", thread.name(), thread.role.label())),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })?;
        out.packet(&TracePacket {
            trusted_packet_sequence_id: Some(seq.id),
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(state_uuid),
                parent_uuid: Some(thread_uuid),
                name: Some("state: 1 running, 2 waiting for a CPU, 0 off CPU".into()),
                counter: Some(CounterDescriptor {
                    unit: Some(UNIT_COUNT),
                    unit_name: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })?;
        let mut sent = Sent::default();
        // Everything on this thread in time order: state changes, slice edges, samples.
        enum Item {
            State(i64),
            Begin(usize),
            End,
            Sample(u32),
        }
        let mut items: Vec<(u64, u8, Item)> = Vec::new();
        let mut last_state = None;
        for span in m.spans(*tid, from, to) {
            let value = match span.state {
                State::OnCpu => RUNNING,
                State::Runnable => WAITING,
                _ => OFF_CPU,
            };
            if last_state != Some(value) {
                items.push((span.start, 0, Item::State(value)));
                last_state = Some(value);
            }
        }
        let (slices, details) = thread_slices(a, *tid, from, to);
        let mut open: Vec<u64> = Vec::new();
        for s in slices.iter().filter(|s| matches!(s.what, What::Details(_))) {
            let What::Details(d) = s.what else { continue };
            while open.last().is_some_and(|end| *end <= s.start) {
                items.push((open.pop().expect("open"), 1, Item::End));
            }
            items.push((s.start, 2, Item::Begin(d)));
            open.push(s.end);
        }
        while let Some(end) = open.pop() {
            items.push((end, 1, Item::End));
        }
        for s in m.samples_in(*tid, from, to) {
            items.push((s.ts, 3, Item::Sample(s.stack)));
        }
        // Stable: at one time, state first, then slice ends before begins, then samples.
        items.sort_by_key(|(t, order, _)| (*t, *order));
        for (t, _, item) in items {
            let mut p = seq.at(t);
            let mut data = InternedData::default();
            match item {
                Item::State(value) => {
                    p.track_event = Some(TrackEvent {
                        r#type: Some(COUNTER),
                        counter_value: Some(value),
                        ..Default::default()
                    });
                }
                Item::Begin(d) => {
                    events += 1;
                    let detail = &details[d];
                    let name = interner.name(&mut sent, &mut data, &detail.name);
                    let category = interner.category(&mut sent, &mut data, "blocking");
                    let mut annotations = Vec::new();
                    for (key, value) in [
                        ("kind", detail.kind.label().to_string()),
                        ("location", detail.location.clone()),
                    ] {
                        annotations.push(DebugAnnotation {
                            name_iid: Some(interner.annotation(&mut sent, &mut data, key)),
                            string_value: Some(value),
                            ..Default::default()
                        });
                    }
                    annotations.push(DebugAnnotation {
                        name_iid: Some(interner.annotation(&mut sent, &mut data, "duration_ms")),
                        double_value: Some(detail.duration as f64 / 1e6),
                        ..Default::default()
                    });
                    // The stack rides as an interned callstack, shared with the samples.
                    let callstack =
                        interner.callstack(a, &mappings, &mut sent, &mut data, detail.stack_id);
                    p.track_event = Some(TrackEvent {
                        r#type: Some(SLICE_BEGIN),
                        track_uuid: Some(thread_uuid),
                        name_iid: Some(name),
                        category_iids: vec![category],
                        debug_annotations: annotations,
                        callstack_iid: Some(callstack),
                        ..Default::default()
                    });
                }
                Item::End => {
                    p.track_event = Some(TrackEvent {
                        r#type: Some(SLICE_END),
                        track_uuid: Some(thread_uuid),
                        ..Default::default()
                    });
                }
                Item::Sample(stack) => {
                    events += 1;
                    let callstack = interner.callstack(a, &mappings, &mut sent, &mut data, stack);
                    p.perf_sample = Some(PerfSample {
                        cpu: None,
                        pid: Some(pid),
                        tid: Some(*tid),
                        callstack_iid: Some(callstack),
                    });
                }
            }
            if !is_empty(&data) {
                p.interned_data = Some(data);
            }
            if p.perf_sample.is_some()
                || p.track_event
                    .as_ref()
                    .is_some_and(|e| e.r#type == Some(SLICE_BEGIN))
            {
                Sequence::interning(&mut p);
            }
            out.packet(&p)?;
        }
    }
    out.w.flush()?;
    Ok(Written { events })
}
