//! pprof's profile.proto, gzipped: what `go tool pprof`, Pyroscope and Parca read.
//!
//! The messages are in [`proto`] (field numbers as in profile.proto); this file converts the
//! analysis. Locations carry their whole inline chain
//! (innermost first, as pprof expects) and mappings say they have functions, file names, line
//! numbers and inline frames, with their build-ids: consumers never try to symbolize again.
//! A location is a stack node as the leaf (its address) or as a caller (a return address, looked
//! up one byte back): the two may resolve to different lines, so they are distinct locations.

use std::collections::HashMap;
use std::io::Write;

use prost::Message;

mod proto;

pub use proto::*;

use super::{ExportOptions, Written};
use crate::analysis::profile::{stack_weights, Weight};
use crate::analysis::Analysis;
use crate::objects::hex;
use crate::symbols::Frame;

/// The string table: index 0 is "", every string once.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings::default();
        s.id("");
        s
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// Builds the profile of the window.
pub fn profile(a: &Analysis, options: &ExportOptions) -> (Profile, u64) {
    if options.weight == Weight::Polls {
        return poll_profile(a, options);
    }
    let m = &a.model;
    let w = options.window;
    let mut strings = Strings::new();
    let period = m.sample_period() as i64;
    let (sample_type, period_type) = match options.weight {
        Weight::Cpu => (
            vec![
                ValueType {
                    r#type: strings.id("samples"),
                    unit: strings.id("count"),
                },
                ValueType {
                    r#type: strings.id("cpu"),
                    unit: strings.id("nanoseconds"),
                },
            ],
            Some(ValueType {
                r#type: strings.id("cpu"),
                unit: strings.id("nanoseconds"),
            }),
        ),
        Weight::Blocked | Weight::Polls => (
            vec![ValueType {
                r#type: strings.id("blocked"),
                unit: strings.id("nanoseconds"),
            }],
            None,
        ),
    };

    // Mappings: the executable ones, in capture order (ids from 1).
    let mut mappings: Vec<Mapping> = Vec::new();
    for map in m.mappings.iter().filter(|mp| mp.perms.contains('x')) {
        let filename = strings.id(&map.path);
        let build_id = strings.id(&hex(&map.build_id));
        mappings.push(Mapping {
            id: mappings.len() as u64 + 1,
            memory_start: map.start,
            memory_limit: map.end,
            file_offset: map.file_offset,
            filename,
            build_id,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
    }
    let mapping_of = |address: u64| {
        // Later mappings win, as in symbolization (a range remapped).
        mappings
            .iter()
            .rev()
            .find(|mp| mp.memory_start <= address && address < mp.memory_limit)
            .map_or(0, |mp| mp.id)
    };

    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(usize, usize), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    // (node, as caller) → location id.
    let mut location_ids: HashMap<(u32, bool), Vec<u64>> = HashMap::new();
    let nodes = m.stacks.nodes();
    let mut samples: Vec<Sample> = Vec::new();
    let weights = stack_weights(m, options.weight, options.threads.as_deref(), w.from, w.to);
    let events = weights.len() as u64;
    let (tid_key, name_key, role_key) =
        (strings.id("tid"), strings.id("thread"), strings.id("role"));
    let (task_key, kind_key) = (strings.id("task_id"), strings.id("task_kind"));
    for sw in &weights {
        let mut ids = Vec::new();
        let mut node = sw.stack;
        let mut as_caller = false;
        while node != 0 {
            let Some(&(parent, address)) = nodes.get(node as usize - 1) else {
                break;
            };
            // One location per address: the node's own, then one per frame the walk missed and
            // the code gave back (its own address is not known: 0).
            let node_ids = location_ids.entry((node, as_caller)).or_insert_with(|| {
                let frames = a.symbols.node(node, as_caller);
                let mut ids = Vec::new();
                for (i, group) in address_groups(frames).enumerate() {
                    let lines = group
                        .iter()
                        .map(|f| {
                            let key = (
                                crate::symbols::interned_id(&f.function),
                                f.file.as_ref().map_or(0, crate::symbols::interned_id),
                            );
                            let function_id = *function_ids.entry(key).or_insert_with(|| {
                                let name = strings.id(&f.function);
                                let filename = strings.id(f.file.as_deref().unwrap_or(""));
                                functions.push(Function {
                                    id: functions.len() as u64 + 1,
                                    name,
                                    // No system name (0: ""): names are demangled already, and
                                    // pprof simplifies a name equal to its system name again,
                                    // `<Foo as Iterator>::next` to `::next`.
                                    system_name: 0,
                                    filename,
                                });
                                functions.len() as u64
                            });
                            Line {
                                function_id,
                                line: i64::from(f.line),
                            }
                        })
                        .collect();
                    let own = i == 0;
                    locations.push(Location {
                        id: locations.len() as u64 + 1,
                        mapping_id: if own { mapping_of(address) } else { 0 },
                        address: if own { address } else { 0 },
                        line: lines,
                    });
                    ids.push(locations.len() as u64);
                }
                ids
            });
            ids.extend_from_slice(node_ids);
            node = if parent < node { parent } else { 0 };
            as_caller = true;
        }
        let thread = m.threads.get(&sw.tid);
        let value = match options.weight {
            Weight::Cpu => vec![sw.weight as i64, sw.weight as i64 * period],
            Weight::Blocked | Weight::Polls => vec![sw.weight as i64],
        };
        let mut label = vec![
            Label {
                key: tid_key,
                str: 0,
                num: i64::from(sw.tid),
                num_unit: 0,
            },
            Label {
                key: name_key,
                str: strings.id(thread.map_or("?", |t| t.name())),
                num: 0,
                num_unit: 0,
            },
            Label {
                key: role_key,
                str: strings.id(thread.map_or("other", |t| t.role.label())),
                num: 0,
                num_unit: 0,
            },
        ];
        // The Tokio task (captures with task ids): `-tagfocus task_id=17` or
        // `-tagfocus task_kind=…` slices a profile per task or per kind.
        if sw.task != 0 {
            label.push(Label {
                key: task_key,
                str: 0,
                num: sw.task as i64,
                num_unit: 0,
            });
            if let Some(kind) = a.task_kinds.of(sw.task) {
                label.push(Label {
                    key: kind_key,
                    str: strings.id(&kind.function),
                    num: 0,
                    num_unit: 0,
                });
            }
        }
        samples.push(Sample {
            location_id: ids,
            value,
            label,
        });
    }
    let (time_nanos, comment) = time_and_comment(a, options, &mut strings);
    let profile = Profile {
        sample_type,
        sample: samples,
        mapping: mappings,
        location: locations,
        function: functions,
        string_table: Vec::new(),
        time_nanos,
        duration_nanos: w.length_in(m) as i64,
        period_type,
        period: if options.weight == Weight::Cpu {
            period
        } else {
            0
        },
        comment,
        default_sample_type: 0,
    };
    let mut profile = profile;
    profile.string_table = strings.table;
    (profile, events)
}

/// The window's wall-clock start, and the comment naming hud, the target and the host.
fn time_and_comment(
    a: &Analysis,
    options: &ExportOptions,
    strings: &mut Strings,
) -> (i64, Vec<i64>) {
    let m = &a.model;
    let h = &m.header;
    let (start, _) = options.window.clip(m);
    let wall_start = m.wall_clock_ns(start);
    let comment = vec![strings.id(&format!(
        "hud {} · pid {} {} · {}",
        h.hud_version, h.target.pid, h.target.exe_path, h.host_name
    ))];
    (wall_start as i64, comment)
}

/// `--weight polls`: the poll durations `--poll-probes` measured, as a profile with one location
/// per future type (its one function: the shortened type, generics in ‹›, and the type as DWARF
/// names it as the system name) and one sample per
/// duration bucket of it: `polls/count` and `poll_time/nanoseconds` (the bucket's count times its
/// middle: within half a bucket, 6 %), labels `future` (shortened) and `poll_duration` (the
/// bucket's lower edge, nanoseconds). So `-top` ranks future types by poll time, `-tags` prints
/// each one's duration histogram, and `-tagfocus poll_duration=1ms:` keeps the long polls.
fn poll_profile(a: &Analysis, options: &ExportOptions) -> (Profile, u64) {
    let m = &a.model;
    let w = options.window;
    let (from, to) = w.clip(m);
    let mut strings = Strings::new();
    let sample_type = vec![
        ValueType {
            r#type: strings.id("polls"),
            unit: strings.id("count"),
        },
        ValueType {
            r#type: strings.id("poll_time"),
            unit: strings.id("nanoseconds"),
        },
    ];
    let kinds = crate::analysis::polls::in_window(m, from, to)
        .map(|p| p.kinds)
        .unwrap_or_default();
    let (future_key, duration_key, nanoseconds) = (
        strings.id("future"),
        strings.id("poll_duration"),
        strings.id("nanoseconds"),
    );
    let mut functions = Vec::new();
    let mut locations = Vec::new();
    let mut samples = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let id = i as u64 + 1;
        // pprof shortens names by dropping `<…>`, which would make every `Timed<F>` one
        // function: generics are shown in ‹›, the DWARF name is the system name.
        let shown = kind.short.replace('<', "‹").replace('>', "›");
        functions.push(Function {
            id,
            name: strings.id(&shown),
            system_name: strings.id(&kind.future),
            filename: 0,
        });
        locations.push(Location {
            id,
            mapping_id: 0,
            address: 0,
            line: vec![Line {
                function_id: id,
                line: 0,
            }],
        });
        let short = strings.id(&kind.short);
        for &((low, high), count) in &kind.buckets {
            let middle = low + (high - low) / 2;
            samples.push(Sample {
                location_id: vec![id],
                value: vec![count as i64, (count as i64).saturating_mul(middle as i64)],
                label: vec![
                    Label {
                        key: future_key,
                        str: short,
                        num: 0,
                        num_unit: 0,
                    },
                    Label {
                        key: duration_key,
                        str: 0,
                        num: low as i64,
                        num_unit: nanoseconds,
                    },
                ],
            });
        }
    }
    let events = samples.len() as u64;
    let (time_nanos, comment) = time_and_comment(a, options, &mut strings);
    let profile = Profile {
        sample_type,
        sample: samples,
        mapping: Vec::new(),
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos,
        duration_nanos: w.length_in(m) as i64,
        period_type: None,
        period: 0,
        comment,
        default_sample_type: 0,
    };
    (profile, events)
}

pub fn write(
    a: &Analysis,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    let (profile, events) = profile(a, options);
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?;
    Ok(Written { events })
}

/// A node's frames cut by address, innermost first: its own inline chain (up to its first frame
/// that is not inlined), then each frame group the code gave back (symbols/missed_frames.rs), which
/// ends at its recovered frame.
fn address_groups(frames: &[Frame]) -> impl Iterator<Item = &[Frame]> {
    let mut rest = frames;
    let mut first = true;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|f| {
                if first {
                    !f.inlined
                } else {
                    f.recovered.is_some()
                }
            })
            .map_or(rest.len(), |i| i + 1);
        first = false;
        let (group, tail) = rest.split_at(end);
        rest = tail;
        Some(group)
    })
}
