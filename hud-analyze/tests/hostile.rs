//! Damaged, crafted and unusual captures through the analyzer: salvage with the missing time
//! stated, repeated chunks, FIFOs and pipes, captures still being written, empty captures, and
//! the memory any crafted input can cost the `hud-analyze` binary.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hud_analyze::analysis::{Options, Window};
use hud_analyze::source::{self, Opened};
use hud_analyze::view::report::{text, Report};
use hud_format::craft::{self, OwnedFrame};
use hud_format::frame::{Codec, FrameKind};
use hud_format::reader::{Capture, ReadOptions};
use hud_format::writer::WriterOptions;
use support::*;

fn salvaging() -> Options {
    Options {
        read: ReadOptions::salvaging(),
        ..Options::default()
    }
}

fn blocker_names(a: &hud_analyze::Analysis) -> Vec<String> {
    blockers(a)
        .iter()
        .map(|b| b.blame.function.to_string())
        .collect()
}

/// The busy service in chunks of about 40 events, so a damaged chunk is a small part of it.
fn busy_in_chunks() -> (
    Vec<u8>,
    std::collections::HashMap<hud_analyze::symbols::Frame, u64>,
) {
    busy_service_with(WriterOptions {
        max_chunk_events: 40,
        ..WriterOptions::default()
    })
    .finish()
}

#[test]
fn a_damaged_chunk_costs_its_time_and_nothing_else() {
    let (bytes, addresses) = busy_in_chunks();
    let intact = analyze_bytes(bytes.clone(), &addresses, salvaging()).unwrap();
    let capture = Capture::from_bytes(bytes.clone()).unwrap();
    let chunks: Vec<_> = capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::Chunk)
        .copied()
        .collect();
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    let victim = chunks[chunks.len() / 2];
    let mut damaged = bytes.clone();
    damaged[victim.offset as usize + 24 + victim.header.stored_len as usize / 2] ^= 0x40;

    // Strict: refused, naming the frame.
    let strict = analyze_bytes(damaged.clone(), &addresses, Options::default());
    let msg = strict.err().expect("strict refuses").to_string();
    assert!(
        msg.contains("chunk frame") && msg.contains("checksum"),
        "{msg}"
    );

    // Salvaged: the same blockers, one gap, stated in the notices and the JSON.
    let a = analyze_bytes(damaged, &addresses, salvaging()).unwrap();
    assert_eq!(blocker_names(&a), blocker_names(&intact));
    assert_eq!(a.model.missing.len(), 1, "{:?}", a.model.missing);
    let gap = &a.model.missing[0];
    assert!(gap.from < gap.to && gap.to - gap.from < 200 * MS, "{gap:?}");
    let seq = (chunks.len() / 2) as u32;
    assert_eq!(gap.chunks, Some((seq, seq)));
    assert!(a.model.samples.len() < intact.model.samples.len());
    let findings = a.findings(Window::ALL, RANKING);
    let report = Report::build(&a, &findings, 10);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let missing = &json["capture"]["missing"][0];
    assert!(missing["to_s"].as_f64().unwrap() > missing["from_s"].as_f64().unwrap());
    assert!(missing["causes"][0]
        .as_str()
        .unwrap()
        .contains(&format!("byte {}", victim.offset)));
    let notices = json["capture"]["notices"].to_string();
    assert!(
        notices.contains(&format!("chunk {seq} is missing")),
        "{notices}"
    );
}

#[test]
fn repeated_and_reordered_chunks_are_skipped_not_counted_twice() {
    let (bytes, addresses) = busy_in_chunks();
    let intact = analyze_bytes(bytes.clone(), &addresses, salvaging()).unwrap();
    let frames = craft::split(&bytes).unwrap();
    let chunk_at: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].kind == FrameKind::Chunk)
        .collect();
    // Chunk 5 again right after itself; then chunks 8 and 9 swapped.
    let mut crafted: Vec<OwnedFrame> = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if i == chunk_at[8] {
            crafted.push(frames[chunk_at[9]].clone());
        } else if i == chunk_at[9] {
            crafted.push(frames[chunk_at[8]].clone());
        } else {
            crafted.push(f.clone());
        }
        if i == chunk_at[5] {
            crafted.push(f.clone());
        }
    }
    let a = analyze_bytes(craft::seal(&crafted, Codec::Raw), &addresses, salvaging()).unwrap();
    let notices = a.model.notices.join("\n");
    assert!(notices.contains("chunk 5 "), "{notices}");
    assert!(notices.contains("comes again or out of order"), "{notices}");
    assert!(!notices.contains("5..4"), "{notices}");
    // Chunk 8, after 9, is skipped: its events are missing; nothing is counted twice.
    assert!(a.model.samples.len() < intact.model.samples.len());
    let mut seen = std::collections::HashSet::new();
    assert!(a.model.samples.iter().all(|s| seen.insert((s.tid, s.ts))));
}

#[test]
fn an_empty_capture_says_it_holds_no_events() {
    let (bytes, addresses) = Synth::new().finish();
    let a = analyze_bytes(bytes, &addresses, salvaging()).unwrap();
    let findings = a.findings(Window::ALL, RANKING);
    let out = text::render(&Report::build(&a, &findings, 10), 10, false);
    assert!(out.contains("holds no events"), "{out}");
    assert!(out.contains("file:line n/a"), "{out}");
    assert!(!out.contains("100 %"), "{out}");
}

#[test]
fn a_capture_without_runtime_threads_says_so() {
    let mut s = Synth::new();
    s.thread(7, "main");
    for i in 0..50 {
        s.sample(
            START + i * 10 * MS,
            7,
            &[user("app::main", 3), lib("__libc_start_main")],
        );
    }
    let a = s.analyze();
    let findings = a.findings(Window::ALL, RANKING);
    let out = text::render(&Report::build(&a, &findings, 10), 10, false);
    assert!(out.contains("no Tokio runtime thread found"), "{out}");
    assert!(!out.contains("nothing blocked a runtime thread"), "{out}");
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn unclosed(bytes: &[u8]) -> Vec<u8> {
    let capture = Capture::from_bytes(bytes.to_vec()).unwrap();
    bytes[..capture.frames().last().unwrap().offset as usize].to_vec()
}

#[test]
fn a_capture_still_being_written_is_not_called_killed() {
    let (bytes, _) = busy_in_chunks();
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "live.hudcap", &unclosed(&bytes));
    let read = ReadOptions::salvaging();
    let killed = source::load(&path, &read).unwrap().model.notices.join("\n");
    assert!(killed.contains("not closed cleanly"), "{killed}");
    // A recorder holds the file's lock while it writes.
    let writer = std::fs::File::open(&path).unwrap();
    writer.lock().unwrap();
    let notices = source::load(&path, &read).unwrap().model.notices.join("\n");
    assert!(notices.contains("still writing"), "{notices}");
    assert!(!notices.contains("killed"), "{notices}");
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid path string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_fifo_without_a_writer_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.fifo");
    mkfifo(&fifo);
    let started = Instant::now();
    let err = source::open(&fifo, &ReadOptions::salvaging())
        .err()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(err.to_string().contains("FIFO"), "{err}");
}

#[test]
fn fifos_and_pipes_are_read_as_streams() {
    let (bytes, _) = busy_in_chunks();
    let expected = Capture::from_bytes(bytes.clone()).unwrap();
    let expected = source::load_file(&expected).unwrap().model.samples.len();
    // A FIFO whose writer comes a little after the reader.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.fifo");
    mkfifo(&fifo);
    let writer = {
        let (fifo, bytes) = (fifo.clone(), bytes.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::OpenOptions::new()
                .write(true)
                .open(fifo)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
        })
    };
    let model = source::load(&fifo, &ReadOptions::salvaging())
        .unwrap()
        .model;
    writer.join().unwrap();
    assert_eq!(model.samples.len(), expected);
    // A pipe named by a path, as `report <(cat capture)` gives.
    let mut fds = [0; 2];
    // SAFETY: two descriptors to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let path = PathBuf::from(format!("/proc/self/fd/{}", fds[0]));
    let writer = std::thread::spawn(move || {
        use std::os::fd::FromRawFd;
        // SAFETY: the write end, owned by this thread from now on.
        let mut out = unsafe { std::fs::File::from_raw_fd(fds[1]) };
        out.write_all(&bytes).unwrap();
    });
    let opened = source::open(&path, &ReadOptions::salvaging()).unwrap();
    assert!(matches!(opened, Opened::Stream(_)));
    assert_eq!(opened.load().unwrap().model.samples.len(), expected);
    writer.join().unwrap();
    // SAFETY: the read end, no longer used.
    unsafe { libc::close(fds[0]) };
}

#[test]
fn devices_and_directories_are_refused_at_once() {
    let started = Instant::now();
    let err = source::open(Path::new("/dev/zero"), &ReadOptions::salvaging())
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a hud capture"), "{err}");
    let err = source::open(Path::new("/tmp"), &ReadOptions::salvaging())
        .err()
        .unwrap();
    assert!(err.to_string().contains("a directory"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn analyzer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hud-analyze"))
}

#[test]
fn options_naming_missing_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = busy_in_chunks();
    let capture = write_temp(dir.path(), "c.hudcap", &bytes);
    for option in ["--binary", "--debug-dir"] {
        let out = analyzer()
            .arg("report")
            .arg(&capture)
            .args([option, "/no/such/file"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{option}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("/no/such/file"), "{stderr}");
    }
}

/// Peak RSS of the largest child waited for so far, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as u64 * 1024
}

/// Runs `hud-analyze ARGS` with `stdin` bytes (endless when `endless`), returning its exit code.
fn run_with_stdin(args: &[&str], stdin: Vec<u8>, endless: bool) -> Option<i32> {
    let mut child = analyzer()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
        while endless && input.write_all(&[b'y'; 65536]).is_ok() {}
    });
    let status = child.wait().unwrap();
    feeder.join().unwrap();
    status.code()
}

#[test]
fn no_crafted_capture_makes_the_analyzer_large() {
    // The binary, over every hostile shape made here: its peak RSS stays bounded. (Before:
    // 3.1 GB for a moved stack id, 1.3 GB for a bomb, 5.3 GB for `yes | hud-analyze info -`.)
    let dir = tempfile::tempdir().unwrap();
    let (bytes, _) = busy_in_chunks();
    let frames = craft::split(&bytes).unwrap();
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    // Stack ids far ahead.
    for first_id in [0xFFFF_FF00u32, 100_000_000] {
        let mut moved = frames.clone();
        let at = (0..moved.len())
            .filter(|&i| moved[i].kind == FrameKind::Chunk)
            .find(|&i| !moved[i].chunk().unwrap().stacks.parent.is_empty())
            .unwrap();
        let mut chunk = moved[at].chunk().unwrap();
        chunk.stacks.first_id = first_id;
        chunk.stacks.parent.iter_mut().for_each(|p| *p = 0);
        moved[at] = OwnedFrame::from_chunk(&chunk).unwrap();
        inputs.push((
            format!("first-id-{first_id}"),
            craft::seal(&moved, Codec::Zstd),
        ));
    }
    // Bombs: 20 and 40 frames of 64 MiB of zeros behind the header.
    for n in [20, 40] {
        let mut bomb = craft::seal(&frames[..1], Codec::Zstd);
        let zeros = vec![0u8; 64 << 20];
        for _ in 0..n {
            craft::append_frame(&mut bomb, FrameKind::Chunk, &zeros, Codec::Zstd);
        }
        inputs.push((format!("bomb-{n}"), bomb));
    }
    // Damage: a byte flipped every 997 bytes, and the capture glued to itself.
    let mut flipped = bytes.clone();
    for i in (100..flipped.len()).step_by(997) {
        flipped[i] ^= 0x10;
    }
    inputs.push(("flipped".into(), flipped));
    let mut glued = bytes.clone();
    glued.extend_from_slice(&bytes);
    inputs.push(("glued".into(), glued));
    for (name, input) in &inputs {
        let path = write_temp(dir.path(), name, input);
        for command in ["info", "report"] {
            let status = analyzer()
                .arg(command)
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(
                matches!(status.code(), Some(0 | 4)),
                "{command} {name}: {status}"
            );
        }
        assert!(
            matches!(
                run_with_stdin(&["info", "-"], input.clone(), false),
                Some(0 | 4)
            ),
            "info - < {name}"
        );
    }
    // Endless streams: refused from their first bytes.
    assert_eq!(run_with_stdin(&["info", "-"], Vec::new(), true), Some(4));
    let mut preamble_then_yes = bytes[..16].to_vec();
    preamble_then_yes.extend_from_slice(&bytes[16..200]);
    assert_eq!(
        run_with_stdin(&["info", "-"], preamble_then_yes, true),
        Some(4)
    );
    let peak = children_peak_rss();
    eprintln!(
        "largest peak RSS of hud-analyze over crafted inputs: {} MiB",
        peak >> 20
    );
    assert!(peak < 300 << 20, "peak RSS {} MiB", peak >> 20);
}
