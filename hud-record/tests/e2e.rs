//! End to end, with real eBPF: record the demo workload and check the capture against its ground
//! truth (testdata/demo/GROUND_TRUTH.md). Needs root. Without eBPF these tests skip, unless
//! HUD_REQUIRE_EBPF=1 (CI), where they fail.

use std::io::{BufRead, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hud_format::reader::{Capture, Ending};
use hud_format::wire::STATE_PREEMPTED;
use hud_test_harness::{demo_binary, median, serial, timings, Demo, Timed};

const RECORD: &str = env!("CARGO_BIN_EXE_hud-record");
/// How long the demo's `sleepy_handler` sleeps (testdata/demo/src/main.rs SLEEP_MS).
const SLEEP_MS: f64 = 15.0;

/// Whether eBPF end-to-end tests can run here; panics when they must (HUD_REQUIRE_EBPF=1).
fn ebpf_ready() -> bool {
    hud_test_harness::ebpf_ready(&[demo_binary()])
}

fn record(args: &[&str]) -> Output {
    Command::new(RECORD)
        .args(args)
        .output()
        .expect("run hud-record")
}

/// The recorder on `pid` into `path` until stopped, its standard error piped.
fn spawn_recorder(pid: u32, path: &Path) -> std::process::Child {
    Command::new(RECORD)
        .args(["--pid", &pid.to_string(), "-o"])
        .arg(path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// File offset → virtual address, through the ELF's program headers.
fn offset_to_vaddr(elf: &[u8], offset: u64) -> Option<u64> {
    use object::{Object, ObjectSegment};
    let file = object::File::parse(elf).ok()?;
    file.segments().find_map(|s| {
        let (start, size) = s.file_range();
        (start <= offset && offset < start + size).then(|| s.address() + (offset - start))
    })
}

/// An off-CPU episode: it ended (the thread came back on a CPU) at `end_ns`, after
/// `duration_ns` off CPU, the last `runnable_ns` of them woken but waiting for a CPU.
#[derive(Debug)]
struct Episode {
    tid: u32,
    end_ns: u64,
    duration_ns: u64,
    runnable_ns: u64,
    /// The demo's functions in its stack, innermost first.
    functions: Vec<String>,
}

impl Episode {
    fn start_ns(&self) -> u64 {
        self.end_ns - self.duration_ns
    }

    /// When it was woken (the end, if the wakeup was not seen).
    fn woken_ns(&self) -> u64 {
        self.end_ns - self.runnable_ns
    }

    fn blocked_ms(&self) -> f64 {
        (self.duration_ns - self.runnable_ns) as f64 / 1e6
    }

    fn in_function(&self, name: &str) -> bool {
        self.functions.iter().any(|f| f.contains(name))
    }
}

/// A switch of a target thread onto (`on_cpu`) or off a CPU, off in `state`.
struct Switch {
    ts_ns: u64,
    tid: u32,
    on_cpu: bool,
    state: u16,
}

/// The decoded events of a capture, with stacks resolved to demo-binary function names.
struct Recorded {
    capture: Capture,
}

impl Recorded {
    fn open(path: &Path) -> Self {
        Self {
            capture: Capture::open(path).expect("capture opens"),
        }
    }

    fn switches(&self) -> Vec<Switch> {
        let mut out = Vec::new();
        for data in &self.capture.chunks().unwrap() {
            let s = &data.get().switches;
            for (i, ts_ns) in s.ts.iter().enumerate() {
                out.push(Switch {
                    ts_ns,
                    tid: s.tid[i].to_native(),
                    on_cpu: s.on_cpu[i] == 1,
                    state: s.prev_state[i].to_native(),
                });
            }
        }
        out
    }

    /// Off-CPU episodes with the demo's function names in their stacks.
    fn off_cpu_with_functions(&self) -> Vec<Episode> {
        let demo = std::fs::read(demo_binary()).unwrap();
        let loader = addr2line::Loader::new(demo_binary()).unwrap();
        let chunks = self.capture.chunks().unwrap();
        let mut stacks = hud_format::reader::Stacks::default();
        let demo_path = demo_binary().canonicalize().unwrap();
        let mut maps = Vec::new();
        let mut out = Vec::new();
        for data in &chunks {
            let c = data.get();
            for m in c.mappings.iter() {
                maps.push((
                    m.start.to_native(),
                    m.end.to_native(),
                    m.file_offset.to_native(),
                    m.path.to_string(),
                ));
            }
            stacks
                .add(c)
                .expect("stack ids continue from chunk to chunk");
            let o = &c.off_cpu;
            for (i, end_ns) in o.ts.iter().enumerate() {
                let id = o.user_stack[i].to_native();
                let frames: Vec<u64> = stacks.frames(stacks.local(id)).collect();
                let mut names = Vec::new();
                for (depth, addr) in frames.iter().enumerate() {
                    let addr = if depth == 0 { *addr } else { addr - 1 };
                    let Some((start, _, off, _)) = maps
                        .iter()
                        .find(|(s, e, _, p)| *s <= addr && addr < *e && Path::new(p) == demo_path)
                    else {
                        continue;
                    };
                    let Some(vaddr) = offset_to_vaddr(&demo, addr - start + off) else {
                        continue;
                    };
                    if let Ok(mut it) = loader.find_frames(vaddr) {
                        while let Ok(Some(f)) = it.next() {
                            if let Some(func) = f.function {
                                names.push(func.demangle().unwrap_or_default().into_owned());
                            }
                        }
                    }
                }
                out.push(Episode {
                    tid: o.tid[i].to_native(),
                    end_ns,
                    duration_ns: o.duration_ns[i].to_native(),
                    runnable_ns: o.runnable_ns[i].to_native(),
                    functions: names,
                });
            }
        }
        out
    }
}

#[test]
fn records_the_demo_with_its_ground_truth() {
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    // The default (raw tracepoints, stacks taken at the return from the blocking call), the
    // classic tracepoints (kernels without BTF), and kernel stacks (taken at switch-out).
    for mode in [&[][..], &["--classic-tracepoints"], &["--kernel-stacks"]] {
        records_the_demo_in(mode);
    }
}

fn records_the_demo_in(mode: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let timings_path = dir.path().join("timings");
    let demo = Demo::start(5.0, &["--timings", timings_path.to_str().unwrap()]);
    let path = dir.path().join("demo.hudcap");
    let pid = demo.pid().to_string();
    let mut args = vec![
        "--pid",
        &pid,
        "-o",
        path.to_str().unwrap(),
        "--duration",
        "3",
    ];
    args.extend(mode);
    let out = record(&args);
    assert!(
        out.status.success(),
        "hud-record {mode:?} failed: {}",
        stderr(&out)
    );
    // A Tokio program is recognised as one (from its executable's .rodata).
    assert!(
        !stderr(&out).contains("does not look like a Tokio program"),
        "{}",
        stderr(&out)
    );

    let recorded = Recorded::open(&path);
    let capture = &recorded.capture;
    assert_eq!(capture.ending(), &Ending::Clean);
    assert_eq!(capture.header().target.pid, demo.pid());
    let chunks = capture.chunks().unwrap();

    // Thread names: the Tokio workers are there by name.
    let mut names = std::collections::HashMap::new();
    let mut sample_tids = std::collections::HashSet::new();
    let (mut switches, mut lost, mut missed) = (0, 0, 0);
    let mut mapping_build_id = None;
    let demo_path = demo_binary().canonicalize().unwrap();
    for data in &chunks {
        let c = data.get();
        for t in c.threads.iter() {
            names.insert(t.tid.to_native(), t.name.to_string());
        }
        sample_tids.extend(c.samples.tid.iter().map(|t| t.to_native()));
        switches += c.switches.tid.len();
        for counter in c.counters.iter() {
            if counter.name.starts_with("lost_") || counter.name == "unknown_record" {
                lost = lost.max(counter.value.to_native());
            }
            if counter.name == "off_cpu_stack_missed" {
                missed = missed.max(counter.value.to_native());
            }
        }
        for m in c.mappings.iter() {
            if Path::new(m.path.as_str()) == demo_path {
                mapping_build_id = Some(m.build_id.to_vec());
            }
        }
    }
    let workers: Vec<u32> = names
        .iter()
        .filter(|(_, n)| n.starts_with("tokio-rt"))
        .map(|(t, _)| *t)
        .collect();
    assert!(workers.len() >= 2, "worker threads by name: {names:?}");
    let sampled_workers = workers.iter().filter(|t| sample_tids.contains(t)).count();
    assert!(
        sampled_workers >= 2,
        "samples on {sampled_workers} worker threads"
    );
    assert!(
        switches > 1000,
        "{mode:?}: {switches} switch records in 3 s"
    );
    assert_eq!(lost, 0, "{mode:?}: records were lost");
    // Every episode got the stack of the call it blocked in.
    assert_eq!(missed, 0, "{mode:?}: off-CPU episodes without their stack");

    // The demo's mapping carries the file's build-id.
    let file = std::fs::read(&demo_path).unwrap();
    let file_id = {
        use object::Object;
        object::File::parse(&*file)
            .unwrap()
            .build_id()
            .unwrap()
            .unwrap()
            .to_vec()
    };
    assert_eq!(mapping_build_id, Some(file_id.clone()));
    assert_eq!(capture.header().target.build_id, file_id);

    // The sleeping task: each of its off-CPU episodes lies inside one `std::thread::sleep` call
    // as the demo timed it (an episode that merged two sleeps, or began before the call, would
    // not), on the thread that made it, woken before the call returned. One call can hold two
    // episodes: a spurious wakeup (a futex waker's delayed `wake_up_q`) wakes the thread early
    // and nanosleep sleeps again; under load the thread may also wait for a CPU first.
    let episodes = recorded.off_cpu_with_functions();
    let calls = timings(&timings_path, "sleep");
    let sleeps: Vec<&Episode> = episodes
        .iter()
        .filter(|e| e.in_function("sleepy_handler"))
        .collect();
    assert!(
        sleeps.len() >= 20,
        "{mode:?}: only {} sleepy_handler episodes in 3 s (10/s expected)",
        sleeps.len()
    );
    // The two clocks are one (CLOCK_MONOTONIC), read through the vDSO and by the kernel.
    const CLOCK_SLACK_NS: u64 = 50_000;
    for e in &sleeps {
        let call = calls.iter().find(|c| {
            c.tid == e.tid
                && c.start_ns <= e.start_ns() + CLOCK_SLACK_NS
                && e.end_ns <= c.end_ns + CLOCK_SLACK_NS
        });
        let Some(call) = call else {
            panic!(
                "{mode:?}: a sleepy_handler episode {e:?} (off CPU {} to {}) inside no sleep \
                 call the demo timed on its thread: {calls:?}",
                e.start_ns(),
                e.end_ns
            )
        };
        assert!(
            e.woken_ns() <= call.end_ns + CLOCK_SLACK_NS,
            "{mode:?}: {e:?} {call:?}"
        );
    }
    // Blocked as long as the sleep asked, as a rule: nanosleep wakes no earlier than asked, and
    // the switch-out comes microseconds into the call.
    let blocked = median(&sleeps.iter().map(|e| e.blocked_ms()).collect::<Vec<_>>());
    let timed = median(&calls.iter().map(Timed::ms).collect::<Vec<_>>());
    assert!(
        blocked >= SLEEP_MS - 0.5 && blocked <= timed + 0.05,
        "{mode:?}: sleeps blocked {blocked} ms (median), asked {SLEEP_MS} ms, timed {timed} ms"
    );
    // Every time a sleeping thread slept past the threshold in a sleep call, that episode is
    // there: found by its thread and its end (the switch-in, stamped once for both records). A
    // call can hold less sleep than it asked for: under load the thread may wait preempted
    // after arming its timer, then sleep the rest (or none of it). Recording begins once every
    // thread has its slot (the `probes_attached_ns` counter): a sleep that began before has
    // its switch-out but no episode.
    let threshold = capture.header().offcpu_threshold_ns;
    let began = chunks
        .iter()
        .flat_map(|c| c.get().counters.iter())
        .find(|c| c.name == hud_format::types::PROBES_ATTACHED_COUNTER)
        .map(|c| c.value.to_native())
        .expect("the probes_attached_ns counter");
    let switches = recorded.switches();
    let ended: std::collections::HashSet<(u32, u64)> =
        episodes.iter().map(|e| (e.tid, e.end_ns)).collect();
    let mut slept = 0;
    let mut unseen = Vec::new();
    for call in &calls {
        let mut of_thread: Vec<&Switch> = switches.iter().filter(|s| s.tid == call.tid).collect();
        of_thread.sort_by_key(|s| s.ts_ns);
        for pair in of_thread.windows(2) {
            let (out, back) = (pair[0], pair[1]);
            let asleep = !out.on_cpu
                && out.state != 0
                && u32::from(out.state) & STATE_PREEMPTED == 0
                && back.on_cpu;
            if asleep
                && out.ts_ns >= began
                && (call.start_ns..call.end_ns).contains(&out.ts_ns)
                && back.ts_ns - out.ts_ns >= threshold
            {
                slept += 1;
                if !ended.contains(&(call.tid, back.ts_ns)) {
                    unseen.push((call, out.ts_ns, back.ts_ns));
                }
            }
        }
    }
    let near: Vec<&Episode> = unseen
        .iter()
        .flat_map(|(call, _, _)| {
            episodes.iter().filter(|e| {
                e.tid == call.tid
                    && e.end_ns + 50_000_000 > call.start_ns
                    && e.end_ns < call.end_ns + 50_000_000
            })
        })
        .collect();
    let around: Vec<String> = unseen
        .iter()
        .flat_map(|(call, _, _)| {
            switches
                .iter()
                .filter(|s| {
                    s.tid == call.tid
                        && s.ts_ns + 5_000_000 > call.start_ns
                        && s.ts_ns < call.end_ns + 5_000_000
                })
                .map(|s| {
                    format!(
                        "{} {} {}",
                        s.ts_ns,
                        if s.on_cpu { "in" } else { "out" },
                        s.state
                    )
                })
        })
        .collect();
    assert!(
        unseen.is_empty(),
        "{mode:?}: {} of {slept} sleeps past the threshold in sleep calls without their episode \
         (call, switched out, switched in): {unseen:?}; the thread's episodes within 50 ms: \
         {near:#?}; its switches: {around:#?}",
        unseen.len()
    );
    let recorded_sleeps = sleeps.iter().filter(|e| e.start_ns() >= began).count();
    assert!(
        slept >= recorded_sleeps,
        "{mode:?}: {slept} sleeps past the threshold for {recorded_sleeps} episodes"
    );
    // Lock waits are there too, with the std Mutex in their stack.
    assert!(
        episodes
            .iter()
            .any(|e| e.in_function("locked_cache_update")),
        "{mode:?}: no off-CPU episode in locked_cache_update"
    );
}

/// A recorder killed with SIGKILL leaves a capture that reads up to its last flush: the first
/// flush comes within 250 ms of attaching, so even a kill in the first second keeps events.
#[test]
fn kill_9_leaves_a_readable_capture() {
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    for (after_attach, at_least) in [
        (Duration::from_millis(600), 1),
        (Duration::from_millis(2500), 100),
    ] {
        let demo = Demo::start(10.0, &[]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("killed.hudcap");
        let mut recorder = spawn_recorder(demo.pid(), &path);
        // "recording pid …" is said once the probes are attached.
        let mut lines = std::io::BufReader::new(recorder.stderr.take().unwrap()).lines();
        let mut said = Vec::new();
        while !said
            .last()
            .is_some_and(|l: &String| l.contains("recording pid"))
        {
            match lines.next() {
                Some(Ok(line)) => said.push(line),
                _ => panic!("the recorder stopped before recording: {said:?}"),
            }
        }
        std::thread::sleep(after_attach);
        recorder.kill().unwrap(); // SIGKILL
        recorder.wait().unwrap();
        let capture = Capture::open(&path).expect("a killed recorder's capture opens");
        assert_ne!(capture.ending(), &Ending::Clean);
        let events: usize = capture
            .chunks()
            .unwrap()
            .iter()
            .map(|c| c.get().switches.tid.len())
            .sum();
        assert!(
            events >= at_least,
            "only {events} switches survived a kill {after_attach:?} after attaching"
        );
    }
}

#[test]
fn the_target_exiting_ends_the_capture_cleanly() {
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    let demo = Demo::start(1.5, &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exit.hudcap");
    let started = Instant::now();
    let out = record(&[
        "--pid",
        &demo.pid().to_string(),
        "-o",
        path.to_str().unwrap(),
        "--duration",
        "30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not stop when the target exited"
    );
    assert!(stderr(&out).contains("target exited"), "{}", stderr(&out));
    let capture = Capture::open(&path).unwrap();
    assert_eq!(capture.ending(), &Ending::Clean);
    let exits: usize = capture
        .chunks()
        .unwrap()
        .iter()
        .map(|c| {
            c.get()
                .threads
                .iter()
                .filter(|t| t.kind == hud_format::types::ArchivedThreadEventKind::Exited)
                .count()
        })
        .sum();
    assert!(exits >= 1, "no thread exit recorded");
}

#[test]
fn streams_to_stdout_and_embeds_binaries() {
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    let demo = Demo::start(6.0, &[]);
    let mut child = Command::new(RECORD)
        .args([
            "--pid",
            &demo.pid().to_string(),
            "-o",
            "-",
            "--duration",
            "1.5",
            "--embed-binaries",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut bytes = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let capture = Capture::from_bytes(bytes).unwrap();
    assert_eq!(capture.ending(), &Ending::Clean);
    assert!(capture.header().options.embed_binaries);
    let objects = capture.objects().unwrap();
    let exe = demo_binary().canonicalize().unwrap();
    let embedded = objects
        .iter()
        .find(|o| Path::new(&o.path) == exe)
        .expect("the demo binary is embedded");
    assert_eq!(embedded.bytes, std::fs::read(&exe).unwrap());
}

#[test]
fn clear_errors_with_distinct_exit_codes() {
    let _serial = serial();
    // No such pid: exit 3, one line, no backtrace.
    let out = record(&["--pid", "999999999", "-o", "/dev/null", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no process with pid 999999999"));
    assert!(!stderr(&out).contains("panicked"));

    let out = record(&["surely-no-such-process-name", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // A kernel thread (kthreadd) has no user space: a usage error, exit 2.
    let out = record(&["--pid", "2", "-o", "/dev/null", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a kernel thread"),
        "{}",
        stderr(&out)
    );

    if !ebpf_ready() {
        return;
    }
    // A process with no Tokio in it is recorded, with a word that hud will find little.
    let mut sleep = Command::new("sleep").arg("10").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let not_tokio = dir.path().join("sleep.hudcap");
    let out = Command::new(RECORD)
        .args(["--pid", &sleep.id().to_string(), "--duration", "0.5", "-o"])
        .arg(&not_tokio)
        .output()
        .unwrap();
    let _ = sleep.kill();
    let _ = sleep.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not look like a Tokio program"),
        "{}",
        stderr(&out)
    );
    assert!(not_tokio.exists());
    let one = Demo::start(5.0, &[]);
    let two = Demo::start(5.0, &[]);
    // Two processes by one name: list them, exit 4.
    let out = record(&["hud-demo", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&one.pid().to_string()) && text.contains(&two.pid().to_string()),
        "{text}"
    );

    // Not root: exit 5 and what is needed.
    let out = Command::new(RECORD)
        .args([
            "--pid",
            &one.pid().to_string(),
            "-o",
            "/dev/null",
            "--force",
            "--duration",
            "1",
        ])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("CAP_BPF"), "{}", stderr(&out));

    // With CAP_BPF and CAP_PERFMON but not CAP_DAC_READ_SEARCH, tracefs is there but unreadable:
    // a permission error (exit 5), not "tracefs is not mounted" (exit 6), and no file is left.
    // (In /tmp: the test's own directory is root's alone.)
    let capped = std::env::temp_dir().join(format!("hud-capped-{}.hudcap", std::process::id()));
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+bpf,+perfmon",
            "--ambient-caps=+bpf,+perfmon",
        ])
        .arg(RECORD)
        .args(["--pid", &one.pid().to_string(), "--duration", "1", "-o"])
        .arg(&capped)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CAP_DAC_READ_SEARCH"),
        "{}",
        stderr(&out)
    );
    assert!(!capped.exists());

    // An existing capture is not overwritten without --force: exit 8.
    let path = dir.path().join("exists.hudcap");
    std::fs::write(&path, b"keep me").unwrap();
    let out = record(&[
        "--pid",
        &one.pid().to_string(),
        "-o",
        path.to_str().unwrap(),
        "--duration",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

    // A failure to start leaves nothing behind: no header-only file needing --force next time.
    let fresh = dir.path().join("fresh.hudcap");
    let out = record(&[
        "--pid",
        &one.pid().to_string(),
        "-o",
        fresh.to_str().unwrap(),
        "-F",
        "100001",
        "--duration",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("perf_event_max_sample_rate"),
        "{}",
        stderr(&out)
    );
    let debris: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("fresh"))
        .collect();
    assert!(debris.is_empty(), "{debris:?}");

    // A symlink planted at the output name is replaced, not followed (root writing in a shared
    // directory must not overwrite or chmod the link's target).
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = dir.path().join("link.hudcap");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = record(&[
        "--pid",
        &one.pid().to_string(),
        "-o",
        link.to_str().unwrap(),
        "--force",
        "--duration",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(Capture::open(&link).is_ok());
    drop(two);
}

#[test]
fn sigterm_and_sighup_close_the_capture_cleanly() {
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    let demo = Demo::start(10.0, &[]);
    let dir = tempfile::tempdir().unwrap();
    // SIGHUP: what a dropped ssh session sends; before, it killed the recorder unclosed.
    for signal in ["-TERM", "-HUP"] {
        let path = dir.path().join(format!("term{signal}.hudcap"));
        let recorder = spawn_recorder(demo.pid(), &path);
        std::thread::sleep(Duration::from_millis(1500));
        let status = Command::new("kill")
            .args([signal, &recorder.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = recorder.wait_with_output().unwrap();
        assert!(out.status.success(), "{signal}: {}", stderr(&out));
        assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
        let capture = Capture::open(&path).unwrap();
        assert_eq!(capture.ending(), &Ending::Clean, "{signal}");
    }
}

/// Under a context-switch storm (over half a million switches a second) the recorder stops when
/// asked: the capture is closed at the deadline and the probes detached after it (a detach then
/// waits seconds in the kernel; before, the recorder ran 29 s for `--duration 3`). It takes 3.1 s
/// here. A clean-clone CI run once took 10.2 s (not reproduced: 3.1 s twice right after, same
/// machine), another 29.6 s, all of it before recording began (the target, run for 30 s, had
/// exited by then; 4 of 4 runs right after took 7.2 s for both storms): the bound is a sanity
/// bound under the regression's 29 s, and a failure prints the recorder's own account (its
/// "done after" line says whether the recording took the time, and an attach over a second is
/// said step by step: task ids, capture, programs, threads).
#[test]
fn the_duration_is_kept_under_a_context_switch_storm() {
    let _serial = serial();
    let stress = hud_test_harness::stress_binary();
    if !hud_test_harness::ebpf_ready(std::slice::from_ref(&stress)) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for pairs in ["4", "8"] {
        let mut child = Command::new(&stress)
            .args(["--pairs", pairs, "--seconds", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let path = dir.path().join(format!("storm-{pairs}.hudcap"));
        let started = Instant::now();
        let out = record(&[
            "--pid",
            &child.id().to_string(),
            "-o",
            path.to_str().unwrap(),
            "--duration",
            "3",
        ]);
        let wall = started.elapsed();
        let _ = child.kill();
        let _ = child.wait();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            wall < Duration::from_secs(15),
            "--duration 3 with {pairs} pairs took {wall:?}: {}",
            stderr(&out)
        );
        let capture = Capture::open(&path).unwrap();
        assert_eq!(capture.ending(), &Ending::Clean);
    }
}

/// Once its probes are attached, the recorder keeps only CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE
/// (to rescan the target's maps and read its files): checked in its /proc/PID/status while it
/// records. The same status gives its peak RSS, which must stay under 22 MiB (aya's kernel BTF
/// parse, hidden from it, used to take it to 22.5), without the mount that hides it leaking out.
/// (20 MiB until session 18: the unwinding table built at attach, its rows and the objects'
/// `.eh_frame` pages, adds about 0.7 MiB on the demo, 14.7 → 15.4 MiB here; a clean-clone run
/// measured 20.9 MiB with it.)
#[test]
fn once_attached_it_gives_up_capabilities_and_stays_small() {
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    let demo = Demo::start(8.0, &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caps.hudcap");
    let recorder = Command::new(RECORD)
        .args([
            "--pid",
            &demo.pid().to_string(),
            "-q",
            "--duration",
            "3",
            "-o",
        ])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let status = std::fs::read_to_string(format!("/proc/{}/status", recorder.id())).unwrap();
    let caps = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
    };
    let kept = (1u64 << 2) | (1u64 << 19); // CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE
    assert_eq!(caps("CapEff:"), kept, "{status}");
    assert_eq!(caps("CapPrm:"), kept, "{status}");
    assert_eq!(caps("CapInh:"), 0);
    assert_eq!(caps("CapAmb:"), 0);
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kib <= 22 * 1024, "peak RSS {peak_kib} KiB\n{status}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("btf"), "{mounts}");
    let out = recorder.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(Capture::open(&path).unwrap().ending(), &Ending::Clean);
}

#[test]
fn a_full_disk_is_a_clear_error_and_keeps_what_was_written() {
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    // A 128 KiB file system fills up within seconds of recording (the demo writes about 16 KiB/s).
    let dir = tempfile::tempdir().unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=128k", "hudfull"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(mount.success(), "cannot mount a small tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.path().to_path_buf());
    let demo = Demo::start(20.0, &[]);
    let path = dir.path().join("full.hudcap");
    let out = record(&[
        "--pid",
        &demo.pid().to_string(),
        "-o",
        path.to_str().unwrap(),
        "--duration",
        "15",
    ]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains("last complete frame"), "{text}");
    assert!(!text.contains("panicked"));
    // What was written reads, up to the cut.
    let capture = Capture::open(&path).expect("the partial capture opens");
    assert_ne!(capture.ending(), &Ending::Clean);
}

/// Thousands of threads born and dying a second (each sleeps once, past the threshold): every
/// one gets a slot (slots are given back at exit and reused: more threads than `MAX_THREADS` go
/// through a recording of a few seconds), its switches and its off-CPU episode with its stack.
#[test]
fn thread_churn_keeps_every_thread() {
    let _serial = serial();
    let stress = hud_test_harness::stress_binary();
    if !hud_test_harness::ebpf_ready(std::slice::from_ref(&stress)) {
        return;
    }
    let mut child = Command::new(&stress)
        .args(["--pairs", "1", "--seconds", "9", "--churn"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("churn.hudcap");
    let out = record(&[
        "--pid",
        &child.id().to_string(),
        "-o",
        path.to_str().unwrap(),
        "--duration",
        "7",
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "hud-record failed: {}", stderr(&out));

    let capture = Capture::open(&path).unwrap();
    let mut born = std::collections::HashSet::new();
    let mut switched = std::collections::HashSet::new();
    let mut slept = std::collections::HashSet::new();
    let mut counters = std::collections::BTreeMap::new();
    for data in capture.chunks().unwrap() {
        let c = data.get();
        for t in c.threads.iter() {
            if t.name.as_str() == "churn" {
                born.insert(t.tid.to_native());
            }
        }
        switched.extend(c.switches.tid.iter().map(|t| t.to_native()));
        let o = &c.off_cpu;
        for i in 0..o.tid.len() {
            if o.user_stack[i].to_native() != 0 {
                slept.insert(o.tid[i].to_native());
            }
        }
        for counter in c.counters.iter() {
            counters.insert(counter.name.to_string(), counter.value.to_native());
        }
    }
    assert!(born.len() >= 2_000, "only {} threads born", born.len());
    let missing_switches = born.difference(&switched).count();
    let missing_episodes = born.difference(&slept).count();
    // A thread born as the recording starts or stops may be seen only in part.
    assert!(
        missing_switches * 100 <= born.len(),
        "{missing_switches} of {} threads without a switch",
        born.len()
    );
    assert!(
        missing_episodes * 50 <= born.len(),
        "{missing_episodes} of {} threads without an off-CPU episode with a stack",
        born.len()
    );
    for name in [
        "thread_map_full",
        "lost_switch",
        "lost_off_cpu",
        "off_cpu_stack_missed",
    ] {
        assert_eq!(
            counters.get(name).copied().unwrap_or(0),
            0,
            "{name}: {counters:?}"
        );
    }
    eprintln!(
        "{} threads born; {missing_switches} without a switch, {missing_episodes} without an episode",
        born.len()
    );
}

/// The release archive's static recorder (`cargo xtask dist`, unpacked by `cargo xtask test`
/// into HUD_DIST_DIR) records the demo from a chroot that holds nothing but itself, with /proc
/// and /sys mounted: no libc, no loader, no /dev, no /etc. The archive's static analyzer then
/// finds the demo's blockers in what it wrote.
#[test]
fn the_release_recorder_records_from_a_bare_chroot() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let _serial = serial();
    if !ebpf_ready() {
        return;
    }
    let Some(dist) = std::env::var_os("HUD_DIST_DIR").map(PathBuf::from) else {
        assert!(
            std::env::var_os("HUD_REQUIRE_EBPF").is_none(),
            "HUD_DIST_DIR is not set: run `cargo xtask test`, which builds the release archive"
        );
        eprintln!("skipped: HUD_DIST_DIR is not set (cargo xtask test sets it)");
        return;
    };
    let bare = tempfile::tempdir().unwrap();
    std::fs::copy(dist.join("bin/hud-record"), bare.path().join("hud-record")).unwrap();
    for dir in ["proc", "sys"] {
        std::fs::create_dir(bare.path().join(dir)).unwrap();
    }
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
    let (root_dir, proc_dir, sys_dir) = (
        c(bare.path()),
        c(&bare.path().join("proc")),
        c(&bare.path().join("sys")),
    );
    let (slash, proc_type, sys_source) = (
        c(Path::new("/")),
        c(Path::new("proc")),
        c(Path::new("/sys")),
    );

    let demo = Demo::start(6.0, &[]);
    let mut recorder = Command::new("/hud-record");
    recorder.args([
        "--pid",
        &demo.pid().to_string(),
        "--duration",
        "3",
        "-o",
        "/demo.hudcap",
    ]);
    // SAFETY: only async-signal-safe system calls between fork and exec, on strings made before
    // the fork. The mounts live in the child's own mount namespace and end with it.
    unsafe {
        recorder.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            let (none, no_data) = (std::ptr::null(), std::ptr::null());
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                none,
                slash.as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                no_data,
            ))?;
            check(libc::mount(
                proc_type.as_ptr(),
                proc_dir.as_ptr(),
                proc_type.as_ptr(),
                0,
                no_data,
            ))?;
            check(libc::mount(
                sys_source.as_ptr(),
                sys_dir.as_ptr(),
                none,
                libc::MS_BIND | libc::MS_REC,
                no_data,
            ))?;
            check(libc::chroot(root_dir.as_ptr()))?;
            check(libc::chdir(slash.as_ptr()))
        });
    }
    let out = recorder
        .output()
        .expect("run the static recorder in the chroot");
    assert!(out.status.success(), "in the chroot: {}", stderr(&out));
    let capture_path = bare.path().join("demo.hudcap");
    let recorded = Recorded::open(&capture_path);
    assert_eq!(recorded.capture.ending(), &Ending::Clean);
    assert_eq!(recorded.capture.header().target.pid, demo.pid());
    assert!(!recorded.capture.header().target.build_id.is_empty());
    let episodes = recorded.off_cpu_with_functions();
    assert!(
        episodes.iter().any(|e| e.in_function("sleepy_handler")),
        "no sleepy_handler episode in the chroot's capture"
    );

    let report = Command::new(dist.join("bin/hud-analyze"))
        .arg("report")
        .arg(&capture_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{text}{}", stderr(&report));
    for blocker in [
        "sleepy_handler",
        "locked_cache_update",
        "cpu_heavy_checksum",
    ] {
        assert!(
            text.contains(blocker),
            "the static analyzer misses {blocker}:\n{text}"
        );
    }
}
