//! Exports of synthetic analyses, read back by independent parsers: folded lines, SVG as XML,
//! pprof decoded, Chrome JSON parsed and its slices checked to nest per thread.

mod support;

use std::collections::HashMap;
use std::io::Read;

use hud_analyze::analysis::profile::Weight;
use hud_analyze::analysis::{Analysis, Window};
use hud_analyze::view::export::pprof::Profile;
use hud_analyze::view::export::{export, ExportOptions, Format, Root};
use prost::Message;
use serde_json::Value;
use support::*;

fn exported(a: &Analysis, format: Format, options: &ExportOptions) -> Vec<u8> {
    let mut out = Vec::new();
    export(a, format, options, &mut out).unwrap();
    out
}

fn folded(a: &Analysis, options: &ExportOptions) -> HashMap<String, u64> {
    String::from_utf8(exported(a, Format::Folded, options))
        .unwrap()
        .lines()
        .map(|l| {
            let (stack, n) = l.rsplit_once(' ').unwrap();
            (stack.to_owned(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn folded_cpu_samples_add_up_to_the_hotspots() {
    let a = busy_service().analyze();
    let lines = folded(&a, &ExportOptions::default());
    let total: u64 = lines.values().sum();
    assert_eq!(total, whole(&a).hotspots.samples);
    let crunch = lines
        .iter()
        .find(|(l, _)| {
            l.ends_with("app::serve::{{closure}};app::crunch::{{closure}};app::checksum")
        })
        .expect("the crunch stack, outermost first");
    assert_eq!(*crunch.1, 100);
    // The runtime's plumbing is one frame per role: the task's frames sit on the worker.
    assert_eq!(
        crunch.0,
        "[tokio worker];app::serve::{{closure}};app::crunch::{{closure}};app::checksum"
    );
    // --all-frames keeps it, and the weights are the same.
    let all = folded(
        &a,
        &ExportOptions {
            all_frames: true,
            ..ExportOptions::default()
        },
    );
    assert_eq!(all.values().sum::<u64>(), total);
    let (line, n) = all
        .iter()
        .find(|(l, _)| l.ends_with("app::crunch::{{closure}};app::checksum"))
        .unwrap();
    assert_eq!(*n, 100);
    assert!(
        line.starts_with("std::sys::thread::unix::Thread::new::thread_start;"),
        "{line}"
    );
    // A parked worker keeps what it waits in; a pool thread's work sits on the pool.
    assert!(
        lines
            .keys()
            .any(|l| l.starts_with("[tokio worker];") && l.ends_with("epoll_wait")),
        "{lines:?}"
    );
    assert!(
        lines.keys().any(|l| l == "[blocking pool];app::compress"),
        "{lines:?}"
    );
}

#[test]
fn folded_blocked_time_is_in_microseconds_with_a_thread_root() {
    let a = busy_service().analyze();
    let options = ExportOptions {
        weight: Weight::Blocked,
        root: Root::Thread,
        ..ExportOptions::default()
    };
    let lines = folded(&a, &options);
    // Ten sleeps of 15 ms, 1 ms of which runnable: 140 ms blocked, all on worker 10.
    let sleep = lines
        .iter()
        .find(|(l, _)| l.ends_with("std::thread::sleep;clock_nanosleep"))
        .unwrap();
    assert_eq!(*sleep.1, 140_000);
    assert!(sleep.0.starts_with("app-worker-0 (10);"), "{}", sleep.0);
}

/// `--root task`: each stack under its Tokio task's kind, `[no task]` outside one.
#[test]
fn folded_stacks_can_root_at_their_task_kind() {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    s.writer.set_task_source("tokio CONTEXT.current_task_id");
    let work = in_task(vec![user("app::serve::{{closure}}", 12)]);
    for i in 0..3u64 {
        s.sample_in_task(START + (10 + 10 * i) * MS, 10, &work, 5, i);
    }
    s.sample(START + 60 * MS, 10, &parked());
    let a = s.analyze();
    let options = ExportOptions {
        root: Root::Task,
        ..ExportOptions::default()
    };
    let lines = folded(&a, &options);
    let rooted = |prefix: &str| -> u64 {
        lines
            .iter()
            .filter(|(l, _)| l.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(rooted("task: app::serve::{{closure}};"), 3, "{lines:?}");
    assert_eq!(rooted("[no task];"), 1, "{lines:?}");
}

#[test]
fn svg_flame_graphs_and_charts_are_well_formed() {
    let a = busy_service().analyze();
    for flame_chart in [false, true] {
        let options = ExportOptions {
            flame_chart,
            ..ExportOptions::default()
        };
        let svg = String::from_utf8(exported(&a, Format::Svg, &options)).unwrap();
        assert_well_formed(&svg);
        assert!(svg.contains("app::checksum"), "a frame of the profile");
    }
    // An empty window is a valid, empty picture.
    let empty = ExportOptions {
        window: Window { from: 0, to: 1 },
        ..ExportOptions::default()
    };
    let svg = String::from_utf8(exported(&a, Format::Svg, &empty)).unwrap();
    assert_well_formed(&svg);
}

fn assert_well_formed(xml: &str) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0i64;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed XML at {}: {e}", reader.buffer_position()),
        }
    }
    assert_eq!(depth, 0, "unbalanced elements");
}

fn pprof(a: &Analysis, options: &ExportOptions) -> Profile {
    let gz = exported(a, Format::Pprof, options);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    Profile::decode(&raw[..]).unwrap()
}

#[test]
fn pprof_resolves_every_id_and_sums_to_the_samples() {
    let a = busy_service().analyze();
    let p = pprof(&a, &ExportOptions::default());
    let s = |i: i64| p.string_table[i as usize].as_str();
    assert_eq!(s(0), "");
    assert_eq!(
        p.sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect::<Vec<_>>(),
        vec![("samples", "count"), ("cpu", "nanoseconds")]
    );
    let total: i64 = p.sample.iter().map(|x| x.value[0]).sum();
    assert_eq!(total as u64, whole(&a).hotspots.samples);
    let period = a.model.sample_period() as i64;
    assert!(p.sample.iter().all(|x| x.value[1] == x.value[0] * period));
    let locations: HashMap<u64, _> = p.location.iter().map(|l| (l.id, l)).collect();
    let functions: HashMap<u64, _> = p.function.iter().map(|f| (f.id, f)).collect();
    // Demangled names, no system name: pprof simplifies a name equal to its system name again
    // (`<Foo as Iterator>::next` to `::next`).
    assert!(p.function.iter().all(|f| f.system_name == 0 && f.name != 0));
    for sample in &p.sample {
        assert!(!sample.location_id.is_empty());
        for id in &sample.location_id {
            let location = locations[id];
            for line in &location.line {
                assert!(functions.contains_key(&line.function_id));
            }
        }
        let labels: Vec<&str> = sample.label.iter().map(|l| s(l.key)).collect();
        assert_eq!(labels, vec!["tid", "thread", "role"]);
    }
    // The leaf of the crunch samples is app::checksum at its line.
    let leaf_functions: Vec<&str> = p
        .sample
        .iter()
        .map(|x| {
            let l = locations[&x.location_id[0]];
            s(functions[&l.line[0].function_id].name)
        })
        .collect();
    assert!(leaf_functions.contains(&"app::checksum"));
    assert!(p.duration_nanos > 0 && p.period == period);
    // Blocked time: one value, in nanoseconds.
    let blocked = pprof(
        &a,
        &ExportOptions {
            weight: Weight::Blocked,
            ..ExportOptions::default()
        },
    );
    assert_eq!(blocked.sample_type.len(), 1);
    let total: i64 = blocked.sample.iter().map(|x| x.value[0]).sum();
    let expected: u64 = a.model.off_cpu.iter().map(|o| o.blocked()).sum();
    assert_eq!(total as u64, expected);
}

/// `--weight polls`: a `--poll-probes` capture's poll durations as a pprof profile, a location
/// per future type and a sample per duration bucket; other formats refuse it.
#[test]
fn pprof_polls_are_a_histogram_per_future_type() {
    use hud_format::types::{PollHistogram, PollProbe, Polls};
    use hud_format::wire::{poll_bucket, poll_bucket_range};
    let mut synth = busy_service();
    let probe = |probe: u32, future: &str| PollProbe {
        probe,
        future: future.into(),
        scheduler: "Arc<multi_thread::handle::Handle>".into(),
        ..Default::default()
    };
    // serve: 900 polls of 40 µs and 100 of 400 µs; refresh: 20 of 3 ms.
    let serve = PollHistogram {
        probe: 0,
        sum_ns: 900 * 40_000 + 100 * 400_000,
        max_ns: 400_000,
        buckets: vec![poll_bucket(40_000) as u16, poll_bucket(400_000) as u16],
        counts: vec![900, 100],
    };
    let refresh = PollHistogram {
        probe: 1,
        sum_ns: 20 * 3_000_000,
        max_ns: 3_000_000,
        buckets: vec![poll_bucket(3_000_000) as u16],
        counts: vec![20],
    };
    synth
        .writer
        .write_polls(&Polls {
            ts_ns: START + 1_000_000_000,
            event_ns: 1_000_000,
            probes: vec![
                probe(0, "app::serve::{async_fn_env#0}"),
                probe(1, "app::cache::refresh::{async_fn_env#0}"),
            ],
            histograms: vec![serve, refresh],
            ..Default::default()
        })
        .unwrap();
    let a = synth.analyze();
    let options = ExportOptions {
        weight: Weight::Polls,
        ..ExportOptions::default()
    };
    let p = pprof(&a, &options);
    let s = |i: i64| p.string_table[i as usize].as_str();
    assert_eq!(
        p.sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect::<Vec<_>>(),
        vec![("polls", "count"), ("poll_time", "nanoseconds")]
    );
    assert_eq!(p.sample.len(), 3, "a sample per bucket with polls");
    let functions: HashMap<u64, &str> = p
        .function
        .iter()
        .map(|f| (f.id, s(f.system_name)))
        .collect();
    let mut per_future: HashMap<&str, (i64, i64)> = HashMap::new();
    for x in &p.sample {
        let location = p
            .location
            .iter()
            .find(|l| l.id == x.location_id[0])
            .unwrap();
        let future = functions[&location.line[0].function_id];
        let e = per_future.entry(future).or_default();
        e.0 += x.value[0];
        e.1 += x.value[1];
        let duration = x
            .label
            .iter()
            .find(|l| s(l.key) == "poll_duration")
            .unwrap();
        assert_eq!(s(duration.num_unit), "nanoseconds");
        let (low, high) = poll_bucket_range(poll_bucket(duration.num as u64));
        assert_eq!(low, duration.num as u64, "the bucket's lower edge");
        assert!(x.value[1] >= x.value[0] * low as i64 && x.value[1] <= x.value[0] * high as i64);
    }
    let (polls, time) = per_future["app::serve::{async_fn_env#0}"];
    assert_eq!(polls, 1000);
    let exact = (900 * 40_000 + 100 * 400_000) as f64;
    assert!(
        (time as f64 - exact).abs() / exact < 0.07,
        "{time} vs {exact}"
    );
    assert_eq!(per_future["app::cache::refresh::{async_fn_env#0}"].0, 20);
    // Stacks formats have no poll histograms.
    let mut out = Vec::new();
    let err = export(&a, Format::Folded, &options, &mut out).unwrap_err();
    assert!(err.to_string().contains("use --format pprof"), "{err}");
    // Without --poll-probes: an empty profile, not an error.
    let plain = busy_service().analyze();
    assert!(pprof(&plain, &options).sample.is_empty());
}

#[test]
fn chrome_slices_nest_per_thread_and_count_the_blockers() {
    let a = busy_service().analyze();
    let json: Value =
        serde_json::from_slice(&exported(&a, Format::Chrome, &ExportOptions::default())).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"app-worker-0 (worker)"), "{names:?}");
    let mut by_thread: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let ts = e["ts"].as_f64().unwrap();
        let dur = e["dur"].as_f64().unwrap();
        assert!(dur >= 0.0);
        by_thread
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, ts + dur));
    }
    for (tid, mut slices) in by_thread {
        slices.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (start, end) in slices {
            while open.last().is_some_and(|e| *e <= start + 1e-6) {
                open.pop();
            }
            if let Some(parent_end) = open.last() {
                assert!(
                    end <= parent_end + 1e-6,
                    "thread {tid}: [{start}, {end}) overlaps its parent ending at {parent_end}"
                );
            }
            open.push(end);
        }
    }
    let blocking = events.iter().filter(|e| e["cat"] == "blocking").count();
    let episodes: usize = whole(&a).blockers.iter().map(|b| b.episodes.len()).sum();
    assert_eq!(blocking, episodes);
    let sleep = events
        .iter()
        .find(|e| e["name"] == "sleep: app::handlers::slow::{{closure}}")
        .unwrap();
    assert_eq!(sleep["args"]["location"], "app/src/main.rs:42");
    // What to change, and how, ride with each episode.
    assert_eq!(sleep["args"]["call"], "thread::sleep in handlers::slow");
    assert_eq!(sleep["args"]["call_at"], "app/src/main.rs:42");
    assert!(sleep["args"]["advice"]
        .as_str()
        .unwrap()
        .contains("tokio::time::sleep"));
    assert!(sleep["args"]["stack"][0]
        .as_str()
        .unwrap()
        .starts_with("clock_nanosleep"));
}

#[test]
fn an_empty_window_gives_valid_empty_files() {
    let a = busy_service().analyze();
    let empty = ExportOptions {
        window: Window { from: 0, to: 1 },
        ..ExportOptions::default()
    };
    assert!(folded(&a, &empty).is_empty());
    assert!(pprof(&a, &empty).sample.is_empty());
    let json: Value = serde_json::from_slice(&exported(&a, Format::Chrome, &empty)).unwrap();
    assert!(json["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["ph"] == "M"));
}

#[test]
fn formats_come_from_file_names() {
    use std::path::Path;
    assert_eq!(Format::from_path(Path::new("x.pb.gz")), Some(Format::Pprof));
    assert_eq!(
        Format::from_path(Path::new("dir/x.JSON")),
        Some(Format::Chrome)
    );
    assert_eq!(
        Format::from_path(Path::new("x.folded")),
        Some(Format::Folded)
    );
    assert_eq!(Format::from_path(Path::new("x.svg")), Some(Format::Svg));
    assert_eq!(Format::from_path(Path::new("x.txt")), None);
}

/// The Python with the official Perfetto schema (`cargo xtask setup` makes it), or `None` when
/// it is missing outside CI.
fn schema_python() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("HUD_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python")
        });
    if python.exists() {
        return Some(python);
    }
    if std::env::var("HUD_REQUIRE_EBPF").is_ok_and(|v| v == "1") {
        panic!(
            "{} is missing: `cargo xtask setup` installs the Perfetto schema",
            python.display()
        );
    }
    eprintln!(
        "skipping: no Python with the Perfetto schema ({})",
        python.display()
    );
    None
}

/// Runs testdata/tools/check_perfetto.py on a trace: its counts, or a panic with its reason.
pub fn check_perfetto(python: &std::path::Path, trace: &std::path::Path) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tools/check_perfetto.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the official schema rejects the trace: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The analysis as a Perfetto trace, checked with the official schema: its counts (whose
/// blocking slices and samples must be the analysis') and its size; `None` without the schema.
fn checked_perfetto(a: &Analysis) -> Option<(Value, usize)> {
    let python = schema_python()?;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.pftrace");
    let bytes = exported(a, Format::Perfetto, &ExportOptions::default());
    std::fs::write(&trace, &bytes).unwrap();
    let counts = check_perfetto(&python, &trace);
    let episodes: usize = whole(a).blockers.iter().map(|b| b.episodes.len()).sum();
    assert_eq!(counts["blocking_slices"], episodes as u64);
    assert_eq!(counts["samples"], whole(a).hotspots.samples);
    Some((counts, bytes.len()))
}

#[test]
fn perfetto_is_read_by_the_official_schema() {
    let a = busy_service().analyze();
    let Some((counts, size)) = checked_perfetto(&a) else {
        return;
    };
    assert_eq!(counts["thread_tracks"], a.model.threads.len() as u64);
    // The same capture as Chrome JSON is far larger.
    let chrome = exported(&a, Format::Chrome, &ExportOptions::default()).len();
    assert!(size * 4 < chrome);
}

/// With task ids, a tasks track per thread: a sampled poll (same task, same tick) is a slice
/// from its first sample to its last, a lone sample an instant, a blocking episode in a task a
/// slice; an arrow wherever a task went on on another thread; the worker's own task is left out.
#[test]
fn perfetto_shows_where_each_task_ran_and_where_it_moved() {
    let mut s = Synth::new();
    s.thread(10, "tokio-runtime-worker");
    s.thread(11, "tokio-runtime-worker");
    s.writer.set_task_source("tokio CONTEXT.current_task_id");
    let work = in_task(vec![user("app::serve::{{closure}}", 12)]);
    let sleepy = in_task(vec![
        lib("std::thread::sleep"),
        user("app::serve::{{closure}}", 15),
    ]);
    // Task 5: one poll of three samples on 10, a lone sample on 11, then back on 10 (a lone
    // sample, then a 20 ms sleep). The worker's own task (1) parks on 11.
    for (ms, tid, tick) in [
        (10, 10, 1),
        (20, 10, 1),
        (30, 10, 1),
        (50, 11, 7),
        (70, 10, 2),
    ] {
        s.sample_in_task(START + ms * MS, tid, &work, 5, tick);
    }
    s.sample_in_task(START + 60 * MS, 11, &parked(), 1, 8);
    s.off_cpu(START + 100 * MS, 10, 20 * MS, 0, 1, &sleepy);
    s.writer.push_event_task(
        hud_format::types::COPY_OF_OFF_CPU,
        START + 100 * MS,
        10,
        5,
        hud_format::wire::NO_TICK,
    );
    let a = s.analyze();
    let Some((counts, _)) = checked_perfetto(&a) else {
        return;
    };
    assert_eq!(
        counts["task_slices"], 2,
        "the 3-sample poll, the sleep: {counts}"
    );
    assert_eq!(counts["task_instants"], 2, "the lone samples: {counts}");
    assert_eq!(counts["flows"], 2, "10 → 11 → 10: {counts}");
}

/// A thread with more events than one packet sequence holds is cut into several, each encoded
/// on its own: every slice still begins and ends on one sequence, every interned id resolves on
/// its sequence, and nothing is lost or counted twice.
#[test]
fn perfetto_cuts_long_threads_into_sequences() {
    let a = busy_service_for(40_000).analyze();
    let episodes: usize = whole(&a).blockers.iter().map(|b| b.episodes.len()).sum();
    assert!(episodes >= 2_000, "{episodes} episodes");
    let Some((counts, _)) = checked_perfetto(&a) else {
        return;
    };
    // Worker 10 alone has 20,000 samples and 40,000 state changes: two sequences at least.
    let threads = a.model.threads.len() as u64;
    assert!(
        counts["compressed_packets"].as_u64().unwrap() > 1 + threads,
        "{counts}"
    );
}
