//! A Perfetto trace (protobuf) for ui.perfetto.dev: the compact timeline.
//!
//! - A process track, and a track per thread named with its role.
//! - Per thread, a counter track of its state (1 running, 2 waiting for a CPU, 0 off CPU): one
//!   event per transition, the densest part of a trace.
//! - Under each thread, slices: each blocking episode named after the blamed function (kind,
//!   file:line and duration as debug annotations, its stack as an interned callstack) and long
//!   polls; with task ids, a tasks track (tasks seen running, arrows where one changed threads).
//! - cpu-clock samples as `PerfSample`s with interned callstacks (functions, file:line, mappings
//!   with build-ids), so selecting a range in the UI gives a flame graph.
//! - A process counter: how many runtime threads are blocked.
//!
//! Size: a thread's events are packet sequences with their own incremental clock (timestamps are
//! deltas of a few bytes, not 8-byte absolutes) and the thread's state track as the default
//! track, and each sequence is one `compressed_packets` packet (zlib, as the Perfetto service
//! writes a trace when its config asks for DEFLATE; every Perfetto reader inflates it).
//!
//! Speed: a thread's events are cut into sequences of about [`EVENTS_PER_SEQUENCE`], where no
//! slice is open; sequences are encoded and compressed in parallel (each interns for itself, as
//! Perfetto's incremental state is per sequence) and written in order.
//!
//! The message types (the subset used) are in [`proto`]; this file converts the analysis.

use std::io::{BufWriter, Write};

use prost::Message;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;

mod proto;
mod tasks;

use proto::*;

use super::slices::{thread_slices_of, Details, What};
use super::{ExportOptions, Written};
use crate::analysis::Analysis;
use crate::model::State;
use crate::objects::hex;
use hud_format::elf::task_polls::short_future;

/// Thread state counter values.
const OFF_CPU: i64 = 0;
const RUNNING: i64 = 1;
const WAITING: i64 = 2;

/// Events per packet sequence, about: a sequence is the unit of parallel encoding and of
/// compression (a few hundred kB raw).
pub const EVENTS_PER_SEQUENCE: usize = 1 << 15;
/// Sequences encoded before their output is written: bounds memory.
const SEQUENCES_PER_BATCH: usize = 16;
/// zlib level: the fastest compresses these repetitive packets within a few % of the default
/// level, at a third of its time.
const COMPRESSION: flate2::Compression = flate2::Compression::fast();

/// Appends a packet as `Trace` holds it (repeated field 1: tag, length, message).
fn push_packet(buf: &mut Vec<u8>, p: &TracePacket) -> std::io::Result<()> {
    buf.push(0x0a);
    p.encode_length_delimited(buf)
        .map_err(std::io::Error::other)
}

/// A sequence's packets as one `compressed_packets` packet.
fn compressed(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::with_capacity(raw.len() / 4), COMPRESSION);
    z.write_all(raw)?;
    let mut out = Vec::new();
    push_packet(
        &mut out,
        &TracePacket {
            compressed_packets: Some(z.finish()?),
            ..Default::default()
        },
    )?;
    Ok(out)
}

/// One packet sequence: its id, the last timestamp (for deltas).
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
        TracePacket {
            timestamp: Some(self.advance(t)),
            trusted_packet_sequence_id: Some(self.id),
            ..Default::default()
        }
    }

    /// The delta from the previous packet's time to `t`, which becomes the previous time.
    fn advance(&mut self, t: u64) -> u64 {
        let t = t.max(self.last);
        let delta = t - self.last;
        self.last = t;
        delta
    }

    /// Appends a counter value at `t` on the default track: what [`Sequence::at`] and a
    /// `TrackEvent` of type COUNTER encode to, written directly since it is most of a trace's
    /// packets (the tests decode it with the official schema).
    fn push_counter(&mut self, buf: &mut Vec<u8>, t: u64, value: i64) {
        use prost::encoding::{encode_varint, encoded_len_varint};
        // TrackEvent { type (9) = COUNTER, counter_value (30) = value }: int64 is its two's
        // complement as a varint.
        let value = value as u64;
        let event_len = 1 + 1 + 2 + encoded_len_varint(value);
        // TracePacket { timestamp (8), trusted_packet_sequence_id (10), track_event (11) }.
        let delta = self.advance(t);
        let id = u64::from(self.id);
        let packet_len = 1
            + encoded_len_varint(delta)
            + 1
            + encoded_len_varint(id)
            + 1
            + encoded_len_varint(event_len as u64)
            + event_len;
        buf.push(0x0a);
        encode_varint(packet_len as u64, buf);
        buf.push(8 << 3);
        encode_varint(delta, buf);
        buf.push(10 << 3);
        encode_varint(id, buf);
        buf.push(11 << 3 | 2);
        encode_varint(event_len as u64, buf);
        buf.push(9 << 3);
        buf.push(COUNTER as u8);
        encode_varint(30 << 3, buf);
        encode_varint(value, buf);
    }

    /// A packet without a time (descriptors) on this sequence.
    fn untimed(&self, mut p: TracePacket) -> TracePacket {
        p.trusted_packet_sequence_id = Some(self.id);
        p
    }

    /// Marks a packet that uses interned data.
    fn interning(p: &mut TracePacket) {
        p.sequence_flags = Some(SEQ_NEEDS_INCREMENTAL_STATE);
    }
}

/// What one packet sequence has interned. Perfetto's incremental state is per sequence, so iids
/// are the sequence's own and an entry rides in the first packet that uses it ([`Self::take`]).
#[derive(Default)]
struct Interner {
    last_iid: u64,
    /// Per [`Table`], by its index.
    strings: [HashMap<String, u64>; Table::COUNT],
    frames: HashMap<(u32, bool, usize), u64>,
    callstacks: HashMap<u32, u64>,
    mappings: HashMap<usize, u64>,
    /// Entries made since the last packet took them.
    pending: Option<InternedData>,
}

/// Which table of `InternedData` a string goes to.
#[derive(Clone, Copy)]
enum Table {
    EventNames,
    Categories,
    AnnotationNames,
    Functions,
    Sources,
    /// String values of debug annotations: a blocker's call and advice repeat on each episode.
    AnnotationStrings,
}

impl Table {
    const COUNT: usize = 6;
}

impl Interner {
    fn next_iid(&mut self) -> u64 {
        self.last_iid += 1;
        self.last_iid
    }

    fn pending(&mut self) -> &mut InternedData {
        self.pending.get_or_insert_with(InternedData::default)
    }

    /// What was interned since the last call, for the packet that first uses it.
    fn take(&mut self) -> Option<InternedData> {
        self.pending.take()
    }

    /// The iid of string `s` in `table`, interned on first use.
    fn string(&mut self, table: Table, s: &str) -> u64 {
        if let Some(&iid) = self.strings[table as usize].get(s) {
            return iid;
        }
        let iid = self.next_iid();
        self.strings[table as usize].insert(s.to_owned(), iid);
        let named = || Named {
            iid: Some(iid),
            name: Some(s.to_owned()),
        };
        let bytes = || InternedString {
            iid: Some(iid),
            str: Some(s.as_bytes().to_vec()),
        };
        let data = self.pending();
        match table {
            Table::EventNames => data.event_names.push(named()),
            Table::Categories => data.event_categories.push(named()),
            Table::AnnotationNames => data.debug_annotation_names.push(named()),
            Table::Functions => data.function_names.push(bytes()),
            Table::Sources => data.source_paths.push(bytes()),
            Table::AnnotationStrings => data.debug_annotation_string_values.push(bytes()),
        }
        iid
    }

    /// The callstack of stack `id`: a frame per function, inline ones included, outermost first.
    fn callstack(&mut self, a: &Analysis, mappings: &[MappingInfo], id: u32) -> u64 {
        if let Some(&iid) = self.callstacks.get(&id) {
            return iid;
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
                let key = (node, as_caller, depth);
                let iid = match self.frames.get(&key) {
                    Some(&iid) => iid,
                    None => {
                        let iid = self.next_iid();
                        self.frames.insert(key, iid);
                        let function = self.string(Table::Functions, &f.function);
                        let source = f
                            .file
                            .as_deref()
                            .map(|file| self.string(Table::Sources, file));
                        let mapping_id = mapping.map(|m| self.mapping(&mappings[m], m));
                        let rel_pc =
                            mapping.map(|m| address - mappings[m].start + mappings[m].offset);
                        self.pending().frames.push(Frame {
                            iid: Some(iid),
                            function_name_id: Some(function),
                            mapping_id,
                            rel_pc,
                            source_path_iid: source,
                            line_number: source.map(|_| f.line),
                        });
                        iid
                    }
                };
                frame_ids.push(iid);
            }
            node = if parent < node { parent } else { 0 };
            as_caller = true;
        }
        frame_ids.reverse();
        let iid = self.next_iid();
        self.callstacks.insert(id, iid);
        self.pending().callstacks.push(Callstack {
            iid: Some(iid),
            frame_ids,
        });
        iid
    }

    fn mapping(&mut self, m: &MappingInfo, index: usize) -> u64 {
        if let Some(&iid) = self.mappings.get(&index) {
            return iid;
        }
        let iid = self.next_iid();
        self.mappings.insert(index, iid);
        let build_id = self.next_iid();
        let path = self.next_iid();
        let data = self.pending();
        data.build_ids.push(InternedString {
            iid: Some(build_id),
            str: Some(m.build_id.clone().into_bytes()),
        });
        data.mapping_paths.push(InternedString {
            iid: Some(path),
            str: Some(m.path.clone().into_bytes()),
        });
        data.mappings.push(Mapping {
            iid: Some(iid),
            build_id: Some(build_id),
            start: Some(m.start),
            end: Some(m.end),
            path_string_ids: vec![path],
            exact_offset: Some(m.offset),
        });
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

/// What happens on a thread at one time; at one time, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum ItemKind {
    /// Its state counter changes to `value`.
    State,
    /// A blocking slice ends.
    End,
    /// A blocking slice (`value`: its index in the details) begins.
    Begin,
    /// A cpu-clock sample (`value`: its stack).
    Sample,
}

/// One event of a thread, compact: a storm's thread has millions.
#[derive(Clone, Copy, Debug)]
struct Item {
    t: u64,
    value: u32,
    kind: ItemKind,
}

/// A thread's events in `[from, to)` in time order, and the details of its blocking slices.
fn thread_items(a: &Analysis, tid: u32, from: u64, to: u64) -> (Vec<Item>, Vec<Details>) {
    let m = &a.model;
    let spans = m.spans(tid, from, to);
    let (slices, details) = thread_slices_of(a, tid, from, to, spans.iter().copied());
    let samples = m.samples_in(tid, from, to);
    let mut items = Vec::with_capacity(spans.len() + 2 * details.len() + samples.len());
    let mut last_state = None;
    for span in spans {
        let value = match span.state {
            State::OnCpu => RUNNING,
            State::Runnable => WAITING,
            _ => OFF_CPU,
        };
        if last_state != Some(value) {
            items.push(Item {
                t: span.start,
                value: value as u32,
                kind: ItemKind::State,
            });
            last_state = Some(value);
        }
    }
    let mut open: Vec<u64> = Vec::new();
    let end = |t| Item {
        t,
        value: 0,
        kind: ItemKind::End,
    };
    for s in &slices {
        let What::Details(d) = s.what else { continue };
        while open.last().is_some_and(|end| *end <= s.start) {
            items.push(end(open.pop().expect("open")));
        }
        items.push(Item {
            t: s.start,
            value: d as u32,
            kind: ItemKind::Begin,
        });
        open.push(s.end);
    }
    while let Some(t) = open.pop() {
        items.push(end(t));
    }
    items.extend(samples.iter().map(|s| Item {
        t: s.ts,
        value: s.stack,
        kind: ItemKind::Sample,
    }));
    // Three runs, each in order: a stable sort merges them.
    items.sort_by_key(|i| (i.t, i.kind));
    (items, details)
}

/// `items` cut into sequences of about `per` events, where no slice is open (a slice begins
/// and ends on one sequence). Never empty: a thread without events still gets its descriptors.
fn sequence_ranges(items: &[Item], per: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, item) in items.iter().enumerate() {
        if i - start >= per && depth == 0 {
            ranges.push(start..i);
            start = i;
        }
        match item.kind {
            ItemKind::Begin => depth += 1,
            ItemKind::End => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    ranges.push(start..items.len());
    ranges
}

/// What every sequence of a thread shares.
struct ThreadTrack<'a> {
    a: &'a Analysis,
    mappings: &'a [MappingInfo],
    details: &'a [Details],
    pid: u32,
    tid: u32,
    uuid: u64,
    state_uuid: u64,
}

impl ThreadTrack<'_> {
    /// One sequence: `items` from time `start`, after `descriptors` (the first sequence's),
    /// compressed.
    fn sequence(
        &self,
        id: u32,
        start: u64,
        descriptors: &[TracePacket],
        items: &[Item],
    ) -> std::io::Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(items.len() * 16 + 256);
        let (mut seq, first) = Sequence::open(id, start, self.state_uuid);
        push_packet(&mut raw, &first)?;
        for d in descriptors {
            push_packet(&mut raw, &seq.untimed(d.clone()))?;
        }
        let mut interner = Interner::default();
        for item in items {
            let mut p = match item.kind {
                ItemKind::State => {
                    seq.push_counter(&mut raw, item.t, i64::from(item.value));
                    continue;
                }
                ItemKind::Begin => {
                    let mut p = seq.at(item.t);
                    let detail = &self.details[item.value as usize];
                    let name = interner.string(Table::EventNames, &detail.name);
                    let category = interner.string(Table::Categories, "blocking");
                    let mut annotations = Vec::new();
                    for (key, value) in [
                        ("kind", detail.kind.label().to_string()),
                        ("location", detail.location.clone()),
                        ("call", detail.call.clone()),
                        ("call_at", detail.call_at.clone()),
                        ("advice", detail.advice.clone()),
                    ] {
                        annotations.push(DebugAnnotation {
                            name_iid: Some(interner.string(Table::AnnotationNames, key)),
                            string_value_iid: Some(
                                interner.string(Table::AnnotationStrings, &value),
                            ),
                            ..Default::default()
                        });
                    }
                    annotations.push(DebugAnnotation {
                        name_iid: Some(interner.string(Table::AnnotationNames, "duration_ms")),
                        double_value: Some(detail.duration as f64 / 1e6),
                        ..Default::default()
                    });
                    // The stack rides as an interned callstack, shared with the samples.
                    let callstack = interner.callstack(self.a, self.mappings, detail.stack_id);
                    p.track_event = Some(TrackEvent {
                        r#type: Some(SLICE_BEGIN),
                        track_uuid: Some(self.uuid),
                        name_iid: Some(name),
                        category_iids: vec![category],
                        debug_annotations: annotations,
                        callstack_iid: Some(callstack),
                        ..Default::default()
                    });
                    Sequence::interning(&mut p);
                    p
                }
                ItemKind::End => {
                    let mut p = seq.at(item.t);
                    p.track_event = Some(TrackEvent {
                        r#type: Some(SLICE_END),
                        track_uuid: Some(self.uuid),
                        ..Default::default()
                    });
                    p
                }
                ItemKind::Sample => {
                    let mut p = seq.at(item.t);
                    let callstack = interner.callstack(self.a, self.mappings, item.value);
                    p.perf_sample = Some(PerfSample {
                        cpu: None,
                        pid: Some(self.pid),
                        tid: Some(self.tid),
                        callstack_iid: Some(callstack),
                    });
                    Sequence::interning(&mut p);
                    p
                }
            };
            p.interned_data = interner.take();
            push_packet(&mut raw, &p)?;
        }
        compressed(&raw)
    }
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
    let mut out = BufWriter::new(out);
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
    let process_uuid = 1u64;
    let blocked_uuid = 2u64;
    // Sequence 1: the process, its counter of blocked runtime threads.
    let mut raw = Vec::new();
    let (mut process_seq, first) = Sequence::open(1, from, blocked_uuid);
    push_packet(&mut raw, &first)?;
    let exe = super::executable_name(a);
    push_packet(
        &mut raw,
        &process_seq.untimed(TracePacket {
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(process_uuid),
                process: Some(ProcessDescriptor {
                    pid: Some(pid as i32),
                    process_name: Some(exe),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )?;
    push_packet(
        &mut raw,
        &process_seq.untimed(TracePacket {
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
        }),
    )?;
    // The counter: +1 at each off-CPU blocking episode's start, -1 at its end.
    let mut changes: Vec<(u64, i64)> = a
        .detection
        .episodes
        .iter()
        .filter(|e| !e.on_cpu() && e.start < to && e.end() > from)
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
        push_packet(&mut raw, &p)?;
    }
    out.write_all(&compressed(&raw)?)?;

    let mut events = 0u64;
    let mut next_sequence = 10u32;
    for (i, (tid, thread)) in m.threads.iter().enumerate() {
        if options.threads.as_ref().is_some_and(|t| !t.contains(tid)) {
            continue;
        }
        let uuid = 1000 + 2 * i as u64;
        let state_uuid = uuid + 1;
        let descriptors = [
            TracePacket {
                track_descriptor: Some(TrackDescriptor {
                    uuid: Some(uuid),
                    parent_uuid: Some(process_uuid),
                    thread: Some(ThreadDescriptor {
                        pid: Some(pid as i32),
                        tid: Some(*tid as i32),
                        thread_name: Some(format!("{} ({})", thread.name(), thread.role.label())),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            // The state counter is the sequences' default track: its changes are most of the
            // events.
            TracePacket {
                track_descriptor: Some(TrackDescriptor {
                    uuid: Some(state_uuid),
                    parent_uuid: Some(uuid),
                    name: Some("state: 1 running, 2 waiting for a CPU, 0 off CPU".into()),
                    counter: Some(CounterDescriptor {
                        unit: Some(UNIT_COUNT),
                        unit_name: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let (items, details) = thread_items(a, *tid, from, to);
        events += items
            .iter()
            .filter(|i| matches!(i.kind, ItemKind::Begin | ItemKind::Sample))
            .count() as u64;
        let track = ThreadTrack {
            a,
            mappings: &mappings,
            details: &details,
            pid,
            tid: *tid,
            uuid,
            state_uuid,
        };
        let ranges = sequence_ranges(&items, EVENTS_PER_SEQUENCE);
        let first_id = next_sequence;
        next_sequence += ranges.len() as u32;
        // Encoded and compressed in parallel, written in order.
        for (b, batch) in ranges.chunks(SEQUENCES_PER_BATCH).enumerate() {
            let parts: Vec<Vec<u8>> = batch
                .par_iter()
                .enumerate()
                .map(|(k, range)| {
                    let n = b * SEQUENCES_PER_BATCH + k;
                    let start = items.get(range.start).map_or(from, |i| i.t);
                    let descriptors: &[TracePacket] = if n == 0 { &descriptors } else { &[] };
                    track.sequence(
                        first_id + n as u32,
                        start,
                        descriptors,
                        &items[range.clone()],
                    )
                })
                .collect::<std::io::Result<_>>()?;
            for part in parts {
                out.write_all(&part)?;
            }
        }
    }
    // The thread tracks' uuids, as numbered above.
    let thread_track = |tid: u32| {
        m.threads
            .keys()
            .position(|t| *t == tid)
            .map(|i| 1000 + 2 * i as u64)
    };
    events += write_polls(a, options, &mut out, next_sequence, from, to, &thread_track)?;
    events += tasks::write(
        a,
        options,
        &mut out,
        next_sequence + 1,
        from,
        to,
        &thread_track,
    )?;
    out.flush()?;
    Ok(Written { events })
}

/// Opens sequence `id` at `from` with a track named `name` under each thread track of `tracks`
/// ((tid, thread track), not empty), at uuid `child(thread track)`; the first is the sequence's
/// default track.
fn open_child_tracks(
    raw: &mut Vec<u8>,
    (id, from): (u32, u64),
    tracks: &[(u32, u64)],
    child: impl Fn(u64) -> u64,
    name: &str,
) -> std::io::Result<Sequence> {
    let (seq, first) = Sequence::open(id, from, child(tracks[0].1));
    push_packet(raw, &first)?;
    for (_, parent) in tracks {
        push_packet(
            raw,
            &seq.untimed(TracePacket {
                track_descriptor: Some(TrackDescriptor {
                    uuid: Some(child(*parent)),
                    parent_uuid: Some(*parent),
                    name: Some(name.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )?;
    }
    Ok(seq)
}

/// `--poll-probes`: each poll kept one by one (past the recorder's threshold) as a slice named
/// by its future type on a "polls" track under its thread, on one sequence of its own. Returns
/// the slices written.
fn write_polls(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
    id: u32,
    from: u64,
    to: u64,
    thread_uuid: &dyn Fn(u32) -> Option<u64>,
) -> std::io::Result<u64> {
    let m = &a.model;
    let Some(polls) = &m.polls else {
        return Ok(0);
    };
    let wanted = |tid: &u32| options.threads.as_ref().is_none_or(|t| t.contains(tid));
    let mut long: Vec<&crate::model::LongPoll> = polls
        .long
        .iter()
        .filter(|l| l.start < to && l.end > from && wanted(&l.tid))
        .collect();
    if long.is_empty() {
        return Ok(0);
    }
    long.sort_by_key(|l| (l.tid, l.start, std::cmp::Reverse(l.end)));
    let mut tracks: Vec<(u32, u64)> = Vec::new();
    for l in &long {
        if tracks.last().is_none_or(|(tid, _)| *tid != l.tid) {
            if let Some(parent) = thread_uuid(l.tid) {
                tracks.push((l.tid, parent));
            }
        }
    }
    let poll_track = |parent: u64| parent + 500_000;
    let mut raw = Vec::new();
    let mut seq = open_child_tracks(
        &mut raw,
        (id, from),
        &tracks,
        poll_track,
        "polls (--poll-probes)",
    )?;
    // Begins and ends in time order; at one time, ends first. A thread's polls nest (a poll
    // inside a poll) or follow each other.
    let mut marks: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * long.len());
    for (i, l) in long.iter().enumerate() {
        if thread_uuid(l.tid).is_none() {
            continue;
        }
        marks.push((l.start.max(from), true, i));
        marks.push((l.end.min(to), false, i));
    }
    marks.sort_by_key(|(t, begin, _)| (*t, *begin));
    let mut interner = Interner::default();
    let mut written = 0;
    for (t, begin, i) in marks {
        let l = long[i];
        let Some(parent) = thread_uuid(l.tid) else {
            continue;
        };
        let mut p = seq.at(t);
        if begin {
            let future = polls
                .probes
                .get(l.probe as usize)
                .map_or_else(|| "poll".to_string(), |p| short_future(&p.future));
            let mut annotations = vec![DebugAnnotation {
                name_iid: Some(interner.string(Table::AnnotationNames, "duration_ms")),
                double_value: Some((l.end - l.start) as f64 / 1e6),
                ..Default::default()
            }];
            if l.task != 0 {
                annotations.push(DebugAnnotation {
                    name_iid: Some(interner.string(Table::AnnotationNames, "task_id")),
                    uint_value: Some(l.task),
                    ..Default::default()
                });
            }
            p.track_event = Some(TrackEvent {
                r#type: Some(SLICE_BEGIN),
                track_uuid: Some(poll_track(parent)),
                name_iid: Some(interner.string(Table::EventNames, &format!("poll: {future}"))),
                category_iids: vec![interner.string(Table::Categories, "poll")],
                debug_annotations: annotations,
                ..Default::default()
            });
            Sequence::interning(&mut p);
            written += 1;
        } else {
            p.track_event = Some(TrackEvent {
                r#type: Some(SLICE_END),
                track_uuid: Some(poll_track(parent)),
                ..Default::default()
            });
        }
        p.interned_data = interner.take();
        push_packet(&mut raw, &p)?;
    }
    out.write_all(&compressed(&raw)?)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(t: u64, kind: ItemKind) -> Item {
        Item { t, value: 0, kind }
    }

    #[test]
    fn sequences_are_cut_only_where_no_slice_is_open() {
        use ItemKind::*;
        let items = [
            item(1, State),
            item(2, Begin),
            item(3, Sample),
            item(4, Begin),
            item(5, End),
            item(6, End),
            item(7, State),
            item(8, Sample),
        ];
        // Due after 2 events, but a slice is open from the second event to the sixth.
        assert_eq!(sequence_ranges(&items, 2), vec![0..6, 6..8]);
        assert_eq!(sequence_ranges(&items, 1), vec![0..1, 1..6, 6..7, 7..8]);
        assert_eq!(sequence_ranges(&items, 100), vec![0..8]);
        // A thread without events still gets one (empty) sequence for its descriptors.
        assert_eq!(sequence_ranges(&[], 2), vec![0..0]);
    }

    #[test]
    fn a_hand_encoded_counter_decodes_as_the_packet_it_stands_for() {
        for (t, value) in [(0, 0), (5, 1), (300, 2), (u64::from(u32::MAX) + 7, -3)] {
            let (mut seq, _) = Sequence::open(77, 0, 9);
            let mut buf = Vec::new();
            seq.push_counter(&mut buf, t, value);
            assert_eq!(buf[0], 0x0a);
            let packet = TracePacket::decode_length_delimited(&buf[1..]).unwrap();
            let expected = TracePacket {
                timestamp: Some(t),
                trusted_packet_sequence_id: Some(77),
                track_event: Some(TrackEvent {
                    r#type: Some(COUNTER),
                    counter_value: Some(value),
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(packet, expected);
            let mut encoded = Vec::new();
            push_packet(&mut encoded, &expected).unwrap();
            assert_eq!(buf.len(), encoded.len());
        }
    }
}
