"""Checks a Perfetto trace written by `hud-analyze export --format perfetto` with the official
schema (the PyPI `perfetto` package's generated perfetto_trace_pb2, which needs PyPI `protobuf`).

Packets inside `compressed_packets` (a zlib stream of packets, as the Perfetto service writes them
with DEFLATE compression) are inflated in place, as trace_processor does; a packet that carries
them carries nothing else.

Fails (exit 1, with the reason) unless: the file decodes as a Trace; no message anywhere holds a
field the schema does not know; every track event's track, every interned id (event names,
categories, annotation names and string values, callstacks, frames, function names, source paths, mappings, build
ids, mapping paths) resolves on its packet sequence; slice begins and ends balance and nest on
each track; every arrow (flow) that ends somewhere started earlier, and every one started ends.
Prints the counts as JSON for the caller to compare with the analysis.
"""
import json
import sys
import zlib

from google.protobuf.unknown_fields import UnknownFieldSet
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb


def unknown_fields(message, path="Trace"):
    """Every place a message holds fields its schema does not define."""
    found = []
    if len(UnknownFieldSet(message)) > 0:
        found.append(path)
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        values = value if repeated else [value]
        for i, v in enumerate(values):
            found.extend(unknown_fields(v, f"{path}.{field.name}[{i}]"))
    return found


def inflated(trace):
    """The trace's packets with every `compressed_packets` packet replaced by what it holds."""
    packets = []
    for i, p in enumerate(trace.packet):
        if not p.HasField("compressed_packets"):
            packets.append(p)
            continue
        if len(p.ListFields()) != 1:
            sys.exit(f"packet {i}: compressed packets next to other fields")
        inner = pb.Trace()
        inner.ParseFromString(zlib.decompress(p.compressed_packets))
        problems = unknown_fields(inner, f"Trace.packet[{i}].compressed_packets")
        if problems:
            sys.exit(f"unknown fields at {problems[:5]}")
        packets.extend(inflated(inner))
    return packets


def main(path):
    whole = pb.Trace()
    with open(path, "rb") as f:
        whole.ParseFromString(f.read())
    problems = unknown_fields(whole)
    if problems:
        sys.exit(f"unknown fields at {problems[:5]}")
    trace = pb.Trace()
    trace.packet.extend(inflated(whole))
    tracks = {}
    interned = {}  # sequence id -> {kind: set(iid)}
    open_slices = {}  # track uuid -> depth
    category_names = {}  # sequence id -> {iid: name}
    counts = {"packets": len(trace.packet), "compressed_packets": len(whole.packet),
              "blocking_slices": 0, "poll_slices": 0, "task_slices": 0, "task_instants": 0,
              "flows": 0, "samples": 0,
              "counter_events": 0, "thread_tracks": 0}
    for p in trace.packet:
        seq = p.trusted_packet_sequence_id
        if p.HasField("track_descriptor"):
            d = p.track_descriptor
            tracks[d.uuid] = d
            if d.HasField("thread"):
                counts["thread_tracks"] += 1
    defaults = {}
    flows_started = set()
    flows_ended = set()
    for i, p in enumerate(trace.packet):
        seq = p.trusted_packet_sequence_id
        if p.sequence_flags & pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED:
            interned[seq] = {}
        if p.HasField("trace_packet_defaults"):
            defaults[seq] = p.trace_packet_defaults.track_event_defaults.track_uuid
        if p.HasField("interned_data"):
            table = interned.setdefault(seq, {})
            for field, values in p.interned_data.ListFields():
                table.setdefault(field.name, set()).update(v.iid for v in values)
            for c in p.interned_data.event_categories:
                category_names.setdefault(seq, {})[c.iid] = c.name
        known = interned.get(seq, {})

        def need(kind, iid, what):
            if iid not in known.get(kind, set()):
                sys.exit(f"packet {i}: {what} {iid} is not interned on sequence {seq}")

        if p.HasField("track_event"):
            e = p.track_event
            track = e.track_uuid if e.HasField("track_uuid") else defaults.get(seq)
            if track not in tracks:
                sys.exit(f"packet {i}: track {track} has no descriptor")
            for c in e.category_iids:
                need("event_categories", c, "category")
            for a in e.debug_annotations:
                need("debug_annotation_names", a.name_iid, "annotation name")
                if a.HasField("string_value_iid"):
                    need("debug_annotation_string_values", a.string_value_iid,
                         "annotation string value")
            if e.HasField("callstack_iid"):
                need("callstacks", e.callstack_iid, "slice callstack")
            for f in e.terminating_flow_ids:
                if f not in flows_started:
                    sys.exit(f"packet {i}: flow {f} ends before it starts")
                flows_ended.add(f)
            flows_started.update(e.flow_ids)
            categories = [category_names.get(seq, {}).get(c) for c in e.category_iids]
            if e.type == pb.TrackEvent.TYPE_INSTANT:
                need("event_names", e.name_iid, "event name")
                if "task" not in categories:
                    sys.exit(f"packet {i}: an instant that is not a task's")
                counts["task_instants"] += 1
            if e.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
                need("event_names", e.name_iid, "event name")
                open_slices[track] = open_slices.get(track, 0) + 1
                if "task" in categories:
                    # A task seen running (sampled poll or blocking) on its thread's tasks track.
                    counts["task_slices"] += 1
                elif "poll" in categories:
                    # A poll timed by --poll-probes: on its thread's "polls" track.
                    counts["poll_slices"] += 1
                else:
                    if not e.HasField("callstack_iid"):
                        sys.exit(f"packet {i}: a blocking slice without its stack")
                    counts["blocking_slices"] += 1
            elif e.type == pb.TrackEvent.TYPE_SLICE_END:
                if open_slices.get(track, 0) == 0:
                    sys.exit(f"packet {i}: a slice ends on track {track} with none open")
                open_slices[track] -= 1
            elif e.type == pb.TrackEvent.TYPE_COUNTER:
                if not tracks[track].HasField("counter"):
                    sys.exit(f"packet {i}: a counter value on track {track}, not a counter track")
                counts["counter_events"] += 1
        if p.HasField("perf_sample"):
            counts["samples"] += 1
            need("callstacks", p.perf_sample.callstack_iid, "callstack")
        if p.HasField("interned_data"):
            d = p.interned_data
            for c in d.callstacks:
                for f in c.frame_ids:
                    need("frames", f, "frame")
            for f in d.frames:
                need("function_names", f.function_name_id, "function name")
                if f.HasField("source_path_iid"):
                    need("source_paths", f.source_path_iid, "source path")
                if f.HasField("mapping_id"):
                    need("mappings", f.mapping_id, "mapping")
            for m in d.mappings:
                need("build_ids", m.build_id, "build id")
                for s in m.path_string_ids:
                    need("mapping_paths", s, "mapping path")
    unbalanced = {t: n for t, n in open_slices.items() if n}
    if unbalanced:
        sys.exit(f"slices left open: {unbalanced}")
    if flows_started != flows_ended:
        sys.exit(f"flows started and never ended: {sorted(flows_started - flows_ended)[:5]}")
    counts["flows"] = len(flows_ended)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1])
