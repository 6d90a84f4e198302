//! Real symbolization against this test binary (a PIE with DWARF): inline chains, file offsets
//! of a position-independent mapping, embedded copies, and build-id mismatches.
#![cfg(target_arch = "x86_64")]

use hud_analyze::analysis::{Analysis, Options};
use hud_analyze::objects::SearchPaths;
use hud_analyze::observer::Silent;
use hud_analyze::{pipeline, source, AnalyzeError};
use hud_format::reader::Capture;
use hud_format::types::{Header, Mapping, Target};
use hud_format::writer::{CaptureWriter, WriterOptions};

/// The library's whole pipeline on an in-memory capture.
fn analyze(capture: &Capture, options: &Options) -> Result<Analysis, AnalyzeError> {
    pipeline::analyze(source::load_file(capture)?, options.clone(), &Silent)
}

/// An address inside `inner_probe`, inlined into `outer_probe`.
#[inline(always)]
fn inner_probe() -> u64 {
    let ip: u64;
    // SAFETY: reads the instruction pointer; no memory access.
    unsafe { std::arch::asm!("lea {}, [rip]", out(reg) ip) }; // PROBE LINE
    ip
}

#[inline(never)]
fn outer_probe() -> u64 {
    std::hint::black_box(inner_probe()) // CALL LINE
}

fn line_of(marker: &str) -> u32 {
    include_str!("symbols.rs")
        .lines()
        .position(|l| l.contains(marker) && !l.contains("line_of"))
        .expect("marker") as u32
        + 1
}

/// The mapping of /proc/self/maps that holds `ip`.
fn own_mapping(ip: u64) -> (Mapping, String) {
    let mapping = mapping_holding(ip);
    let exe = std::fs::read_link("/proc/self/exe")
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(mapping.path, exe, "{ip:#x} is not in this executable");
    (mapping, exe)
}

/// A capture writer whose target is `exe`, mapped as `mapping`.
fn writer(mapping: &Mapping, exe: &str) -> CaptureWriter<Vec<u8>> {
    let header = Header {
        start_ns: 1,
        sample_hz: 99,
        target: Target {
            pid: 1,
            exe_path: exe.into(),
            cmdline: vec![],
            build_id: mapping.build_id.clone(),
        },
        ..Header::default()
    };
    let mut w = CaptureWriter::new(Vec::new(), &header, WriterOptions::default()).unwrap();
    w.push_mapping(mapping.clone()).unwrap();
    w
}

fn capture(mapping: &Mapping, exe: &str, stack: &[u64], embed: Option<&[u8]>) -> Capture {
    let mut w = writer(mapping, exe);
    w.push_sample(10, 7, 0, stack, &[]).unwrap();
    if let Some(bytes) = embed {
        w.embed_object(&mapping.path, &mapping.build_id, bytes)
            .unwrap();
    }
    Capture::from_bytes(w.finish().unwrap()).unwrap()
}

#[test]
fn inline_chain_with_file_and_line_in_a_pie() {
    let ip = outer_probe();
    let (mapping, exe) = own_mapping(ip);
    let capture = capture(&mapping, &exe, &[ip], None);
    let a = analyze(&capture, &Options::default()).unwrap();
    let frames = a.symbols.stack(&a.model, a.model.samples[0].stack);
    assert!(frames.len() >= 2, "{frames:?}");
    assert!(frames[0].function.ends_with("inner_probe"), "{frames:?}");
    assert!(frames[0].inlined);
    assert_eq!(frames[0].line, line_of("// PROBE LINE"));
    assert!(frames[0]
        .file
        .as_deref()
        .unwrap()
        .ends_with("tests/symbols.rs"));
    assert!(frames[1].function.ends_with("outer_probe"), "{frames:?}");
    assert_eq!(frames[1].line, line_of("// CALL LINE"));
    assert!(!frames[1].inlined);
    assert_eq!(a.symbols.objects[0].with_line, 1);
}

#[test]
fn return_addresses_are_looked_up_one_byte_back() {
    // As a caller frame, the address is a return address: the lookup uses address − 1, which
    // for the instruction right after `lea` is still inside the probe.
    let ip = outer_probe();
    let (mapping, exe) = own_mapping(ip);
    let capture = capture(&mapping, &exe, &[0xdead, ip + 1], None);
    let a = analyze(&capture, &Options::default()).unwrap();
    let frames = a.symbols.stack(&a.model, a.model.samples[0].stack);
    assert!(
        frames.iter().any(|f| f.function.ends_with("inner_probe")),
        "{frames:?}"
    );
    assert!(frames[0].function.starts_with("[unknown"), "{frames:?}");
}

#[test]
fn embedded_copy_is_used_when_the_path_is_gone() {
    let ip = outer_probe();
    let (mut mapping, exe) = own_mapping(ip);
    let bytes = std::fs::read(&exe).unwrap();
    mapping.path = "/gone/elsewhere/app".into();
    let capture = capture(&mapping, "/gone/elsewhere/app", &[ip], Some(&bytes));
    let a = analyze(&capture, &Options::default()).unwrap();
    let frames = a.symbols.stack(&a.model, a.model.samples[0].stack);
    assert!(frames[0].function.ends_with("inner_probe"), "{frames:?}");
    assert_eq!(
        a.symbols.objects[0].source,
        "the copy embedded in the capture"
    );
}

#[test]
fn a_wrong_binary_is_an_error_naming_both_build_ids() {
    let ip = outer_probe();
    let (mut mapping, exe) = own_mapping(ip);
    if mapping.build_id.is_empty() {
        eprintln!("test binary has no build-id; nothing to mismatch");
        return;
    }
    let real = hud_analyze::objects::hex(&mapping.build_id);
    mapping.build_id = vec![0xab; 20];
    let capture = capture(&mapping, &exe, &[ip], None);
    let err = match analyze(&capture, &Options::default()) {
        Err(e) => e,
        Ok(_) => panic!("a mismatched binary was accepted"),
    };
    assert!(matches!(err, AnalyzeError::WrongBinary(_)));
    let msg = err.to_string();
    assert!(
        msg.contains(&"ab".repeat(20)) && msg.contains(&real),
        "{msg}"
    );

    // --binary naming a file of the same name but another build: the same clear error.
    let options = Options {
        search: SearchPaths {
            binaries: vec![exe.clone().into()],
            debug_dirs: vec![],
            process_root: None,
            debuginfod: None,
            symbol_cache: None,
        },
        ..Options::default()
    };
    assert!(matches!(
        analyze(&capture, &options),
        Err(AnalyzeError::WrongBinary(_))
    ));
}

#[test]
fn a_matching_embedded_copy_wins_over_a_wrong_binary_of_the_same_name() {
    let ip = outer_probe();
    let (mut mapping, exe) = own_mapping(ip);
    if mapping.build_id.is_empty() {
        eprintln!("test binary has no build-id; nothing to mismatch");
        return;
    }
    let bytes = std::fs::read(&exe).unwrap();
    // The recorded path is gone; a file of that name holds another build (this crate's other
    // test binary stands in for "last week's build").
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("app");
    std::fs::copy("/bin/true", &wrong).unwrap();
    mapping.path = "/gone/elsewhere/app".into();
    let capture = capture(&mapping, "/gone/elsewhere/app", &[ip], Some(&bytes));
    let options = Options {
        search: SearchPaths {
            binaries: vec![wrong.clone()],
            debug_dirs: vec![],
            process_root: None,
            debuginfod: None,
            symbol_cache: None,
        },
        ..Options::default()
    };
    let a = analyze(&capture, &options).expect("the embedded copy is the right build");
    let frames = a.symbols.stack(&a.model, a.model.samples[0].stack);
    assert!(frames[0].function.ends_with("inner_probe"), "{frames:?}");
    assert_eq!(
        a.symbols.objects[0].source,
        "the copy embedded in the capture"
    );
    let warning = a
        .symbols
        .warnings
        .iter()
        .find(|w| w.contains("another build"))
        .expect("the passed-over --binary is named");
    assert!(warning.contains(&wrong.display().to_string()), "{warning}");
}

#[test]
fn a_deleted_target_is_not_found_not_without_debug_info() {
    let ip = outer_probe();
    let (mut mapping, _) = own_mapping(ip);
    mapping.path = "/gone/deleted/app (deleted)".into();
    let capture = capture(&mapping, "/gone/deleted/app (deleted)", &[ip], None);
    let a = analyze(&capture, &Options::default()).unwrap();
    let said: Vec<String> = a.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        said.iter()
            .any(|d| d.contains("not found") && d.contains("--embed-binaries")),
        "{said:?}"
    );
    assert!(
        !said.iter().any(|d| d.contains("no debug info")),
        "{said:?}"
    );
}

#[test]
fn a_fifo_or_device_named_by_a_capture_is_never_opened() {
    // A crafted capture names a FIFO (nobody writes it: opening it would block for ever) and a
    // device as the target's files. The analysis finishes and calls them not found.
    let ip = outer_probe();
    let (mut mapping, _) = own_mapping(ip);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("app");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        mapping.path = path.into();
        let capture = capture(&mapping, path, &[ip], None);
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let a =
                analyze(&capture, &Options::default()).map(|a| a.symbols.objects[0].source.clone());
            let _ = done.send(a.map_err(|e| e.to_string()));
        });
        let source = wait
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the analysis finishes");
        assert_eq!(source.unwrap(), "not found", "{path}");
    }
}

#[test]
fn parallel_symbolization_gives_the_serial_answer() {
    // Enough addresses, spread over this binary's code, that the work is cut into items per
    // compilation unit and big units are split between threads.
    let ip = outer_probe();
    let (mapping, exe) = own_mapping(ip);
    let mut rng = hud_format::synth::Rng::new(7);
    let stacks: Vec<Vec<u64>> = (0..20_000)
        .map(|_| {
            (0..3)
                .map(|_| mapping.start + rng.below(mapping.end - mapping.start))
                .collect()
        })
        .collect();
    let mut w = writer(&mapping, &exe);
    for (i, stack) in stacks.iter().enumerate() {
        w.push_sample(10 + i as u64, 7, 0, stack, &[]).unwrap();
    }
    let capture = Capture::from_bytes(w.finish().unwrap()).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| analyze(&capture, &Options::default()).unwrap())
    };
    let serial = run(1);
    let parallel = run(4);
    let mut names = std::collections::HashMap::<String, *const u8>::new();
    for (s, p) in serial.model.samples.iter().zip(&parallel.model.samples) {
        let a = serial.symbols.stack(&serial.model, s.stack);
        let b = parallel.symbols.stack(&parallel.model, p.stack);
        assert_eq!(a, b);
        // Equal names are one allocation, whichever thread made them.
        for f in &b {
            let ptr = std::sync::Arc::as_ptr(&f.function) as *const u8;
            assert_eq!(*names.entry(f.function.to_string()).or_insert(ptr), ptr);
        }
    }
    assert_eq!(
        serial.symbols.objects[0].with_line,
        parallel.symbols.objects[0].with_line
    );
    assert!(serial.symbols.objects[0].with_line > 0);
}

/// A capture's frames taken into a live analysis one by one, analyzed after each chunk (or after
/// every frame).
fn live_analyses(bytes: Vec<u8>, every_frame: bool) -> Vec<std::sync::Arc<Analysis>> {
    use hud_analyze::live::{spawn_reader, Feed, Live};
    use hud_analyze::symbols::Arenas;
    let source::Opened::Stream(stream) =
        source::open_stream(Box::new(std::io::Cursor::new(bytes)), &Default::default()).unwrap()
    else {
        unreachable!("a stream")
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (header, version) = spawn_reader(stream, tx, |f| f);
    let arenas = Arenas::default();
    let mut live = Live::new(
        &arenas,
        header,
        version,
        Options::default(),
        std::time::Duration::ZERO,
    );
    let mut out = Vec::new();
    for feed in rx {
        match feed {
            Feed::Frame(frame) => {
                let chunk = frame.kind() == hud_format::frame::FrameKind::Chunk;
                live.push(frame).unwrap();
                if chunk || every_frame {
                    out.push(live.analyze(&Silent).unwrap());
                }
            }
            Feed::End(ending) => live.end(ending),
            Feed::Failed(e) => panic!("{e}"),
            Feed::Damaged(d) => panic!("an intact capture read as damaged: {d}"),
        }
    }
    out
}

#[test]
fn a_live_capture_symbolizes_each_new_node_once_and_late_mappings_replace_placeholders() {
    let ip = outer_probe();
    let (mapping, exe) = own_mapping(ip);
    let header = Header {
        start_ns: 1,
        sample_hz: 99,
        target: Target {
            pid: 1,
            exe_path: exe.clone(),
            cmdline: vec![],
            build_id: mapping.build_id.clone(),
        },
        ..Header::default()
    };
    let mut w = CaptureWriter::new(Vec::new(), &header, WriterOptions::default()).unwrap();
    // Chunk 0: a sample in code whose mapping the recorder has not seen yet (dlopen).
    w.push_sample(10, 7, 0, &[ip], &[]).unwrap();
    w.flush_chunk().unwrap();
    // Chunk 1: the mapping arrives, and a second stack through the probe's caller.
    w.push_mapping(mapping.clone()).unwrap();
    w.push_sample(20, 7, 0, &[ip + 1, ip], &[]).unwrap();
    w.flush_chunk().unwrap();
    let analyses = live_analyses(w.finish().unwrap(), false);
    // Two chunks, and the one that closes the capture.
    assert_eq!(analyses.len(), 3);
    let first = &analyses[0];
    let frames = first
        .symbols
        .stack(&first.model, first.model.samples[0].stack);
    assert!(frames[0].function.starts_with("[unknown"), "{frames:?}");
    let last = &analyses[2];
    for sample in &last.model.samples {
        let frames = last.symbols.stack(&last.model, sample.stack);
        assert!(frames[0].function.ends_with("inner_probe"), "{frames:?}");
    }
    // Names made by the two updates are one allocation: views compare them by pointer.
    let names: Vec<_> = last
        .model
        .samples
        .iter()
        .map(|s| last.symbols.stack(&last.model, s.stack)[0].function.clone())
        .collect();
    assert!(std::sync::Arc::ptr_eq(&names[0], &names[1]));
    // Each address looked up once: two leaves and one caller, however many updates.
    assert_eq!(last.symbols.objects[0].addresses, 3);
}

#[test]
fn a_live_capture_waits_for_every_part_of_an_embedded_object() {
    let ip = outer_probe();
    let (mut mapping, exe) = own_mapping(ip);
    // Padded past one frame's 32 MiB: the object comes in parts, analyzed between them.
    let mut bytes = std::fs::read(&exe).unwrap();
    bytes.resize(bytes.len().max(40 << 20), 0);
    mapping.path = "/gone/elsewhere/app".into();
    let mut w = writer(&mapping, "/gone/elsewhere/app");
    w.embed_object(&mapping.path, &mapping.build_id, &bytes)
        .unwrap();
    w.push_sample(10, 7, 0, &[ip], &[]).unwrap();
    let analyses = live_analyses(w.finish().unwrap(), true);
    let last = analyses.last().unwrap();
    let frames = last.symbols.stack(&last.model, last.model.samples[0].stack);
    assert!(frames[0].function.ends_with("inner_probe"), "{frames:?}");
    assert!(
        last.model.embedded_parts >= 2,
        "{}",
        last.model.embedded_parts
    );
}

/// The mapping of /proc/self/maps that holds `ip`, whichever object it is.
fn mapping_holding(ip: u64) -> Mapping {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (start, end) = f[0].split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        if start <= ip && ip < end {
            let path = f[5].to_owned();
            let bytes = std::fs::read(&path).unwrap();
            return Mapping {
                ts_ns: 1,
                start,
                end,
                file_offset: u64::from_str_radix(f[2], 16).unwrap(),
                perms: f[1].into(),
                path,
                inode: f[4].parse().unwrap(),
                build_id: hud_format::elf::build_id_of(&bytes).unwrap_or_default(),
            };
        }
    }
    panic!("no mapping holds {ip:#x}");
}

/// libc is stripped; the distribution's debug package (libc6-dbg, installed by `cargo xtask
/// setup`) has its symbols and compressed DWARF in `/usr/lib/debug/.build-id/ab/cdef….debug`.
/// Both are used: a libc frame gets its function and its glibc source file:line.
#[test]
fn libc_frames_are_named_from_its_separate_debug_file() {
    let ip = libc::getpid as *const () as u64 + 1;
    let libc_mapping = mapping_holding(ip);
    let id: String = libc_mapping
        .build_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
    if !std::path::Path::new(&debug).exists() {
        assert!(
            std::env::var_os("HUD_REQUIRE_EBPF").is_none(),
            "{debug} is missing: `cargo xtask setup` installs libc6-dbg"
        );
        eprintln!("skipped: no debug file for libc ({debug})");
        return;
    }
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let (own, _) = own_mapping(outer_probe());
    let mut w = writer(&own, &exe.to_string_lossy());
    w.push_mapping(libc_mapping).unwrap();
    w.push_sample(10, 7, 0, &[ip], &[]).unwrap();
    let capture = Capture::from_bytes(w.finish().unwrap()).unwrap();
    let a = analyze(&capture, &Options::default()).unwrap();
    let frames = a.symbols.stack(&a.model, a.model.samples[0].stack);
    let leaf = frames.first().expect("a frame");
    assert!(leaf.function.contains("getpid"), "{frames:?}");
    assert!(
        leaf.file
            .as_deref()
            .is_some_and(|f| f.ends_with(".c") || f.ends_with(".S")),
        "no glibc source line from the compressed DWARF: {frames:?}"
    );
    assert!(leaf.line > 0, "{frames:?}");
}

/// A `debuginfod` server (Debian's, the real one) serving `dir`, on a free port; killed when
/// dropped. `None` when it is not installed (`cargo xtask setup` installs it), unless
/// HUD_REQUIRE_EBPF=1 (CI), where that fails.
struct Server(std::process::Child, u16);

impl Server {
    fn start(dir: &std::path::Path, db: &std::path::Path) -> Option<Self> {
        if !std::path::Path::new("/usr/bin/debuginfod").exists() {
            assert!(
                std::env::var("HUD_REQUIRE_EBPF").as_deref() != Ok("1"),
                "debuginfod is not installed (cargo xtask setup)"
            );
            eprintln!("skipping: debuginfod is not installed (cargo xtask setup)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("/usr/bin/debuginfod")
            .args(["-F"])
            .arg(dir)
            .args(["-p", &port.to_string(), "-d"])
            .arg(db)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start debuginfod");
        Some(Server(child, port))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_object_gone_from_its_path_is_fetched_by_build_id_from_debuginfod() {
    let ip = outer_probe();
    let (mut mapping, exe) = own_mapping(ip);
    if mapping.build_id.is_empty() {
        eprintln!("test binary has no build-id; nothing to fetch");
        return;
    }
    // (debuginfod's scan passes over hidden directories: tempdir's `.tmpXXXX` names.)
    let serve = tempfile::Builder::new()
        .prefix("hud-debuginfod-")
        .tempdir()
        .unwrap();
    // Without its DWARF (the server would index every source file it names, a minute for this
    // test binary): the symbol table names the probe, and the build-id stays.
    let status = std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&exe)
        .arg(serve.path().join("app"))
        .status()
        .expect("objcopy (binutils)");
    assert!(status.success());
    let work = tempfile::tempdir().unwrap();
    let Some(server) = Server::start(serve.path(), &work.path().join("db.sqlite")) else {
        return;
    };
    mapping.path = "/gone/elsewhere/app".into();
    let capture = capture(&mapping, "/gone/elsewhere/app", &[ip], None);
    let cache = work.path().join("cache");
    let debuginfod = std::sync::Arc::new(hud_analyze::debuginfod::Debuginfod::new(
        vec![format!("http://127.0.0.1:{}", server.1)],
        cache.clone(),
        std::time::Duration::from_secs(10),
    ));
    let options = Options {
        search: SearchPaths {
            binaries: vec![],
            debug_dirs: vec![],
            process_root: None,
            debuginfod: Some(debuginfod),
            symbol_cache: None,
        },
        ..Options::default()
    };
    // The server listens, then scans its directory, after it starts: asked (with a cache of its
    // own) until it has the file. (The analyzer remembers an object it did not find, and a
    // server that refused, for the process's life.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let probe = hud_analyze::debuginfod::Debuginfod::new(
            vec![format!("http://127.0.0.1:{}", server.1)],
            work.path().join("probe-cache"),
            std::time::Duration::from_secs(10),
        );
        if probe
            .fetch(
                &mapping.build_id,
                hud_analyze::debuginfod::Artifact::Executable,
            )
            .is_some()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "debuginfod never served the object: {:?}",
            probe.take_notes()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let a = analyze(&capture, &options).unwrap();
    assert!(
        a.symbols.objects[0].source.ends_with("(from debuginfod)"),
        "{}",
        a.symbols.objects[0].source
    );
    // The served copy has its symbol table only: the probe, inlined, is named by the function
    // it is inlined into.
    let frames = a.symbols.stack(&a.model, a.model.samples[0].stack);
    assert!(frames[0].function.ends_with("outer_probe"), "{frames:?}");
    assert!(
        a.symbols
            .warnings
            .iter()
            .any(|w| w.starts_with("fetched the executable of build-id")),
        "{:?}",
        a.symbols.warnings
    );
    let id = hud_analyze::objects::hex(&mapping.build_id);
    assert!(cache.join(&id).join("executable").is_file());
    // Cached: found again with the server gone.
    drop(server);
    let offline = Options {
        search: SearchPaths {
            binaries: vec![],
            debug_dirs: vec![],
            process_root: None,
            debuginfod: Some(std::sync::Arc::new(
                hud_analyze::debuginfod::Debuginfod::new(
                    vec!["http://127.0.0.1:9".into()],
                    cache,
                    std::time::Duration::from_secs(2),
                ),
            )),
            symbol_cache: None,
        },
        ..Options::default()
    };
    let a = analyze(&capture, &offline).unwrap();
    let frames = a.symbols.stack(&a.model, a.model.samples[0].stack);
    assert!(frames[0].function.ends_with("outer_probe"), "{frames:?}");
    assert!(a.symbols.warnings.is_empty(), "{:?}", a.symbols.warnings);
}
