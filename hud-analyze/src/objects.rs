//! Finding the object file (and its debug info) for a mapping recorded on another machine: the
//! floor both symbol lookup (`symbols`) and offline unwinding (`unwind`) stand on.
//!
//! Order: `--binary` overrides, copies embedded in the capture, the recorded path when its
//! build-id matches, the same path inside the target's own root while it still runs on this
//! machine (a container's files), then debug directories (`.build-id/ab/cdef….debug`) and
//! `.gnu_debuglink`, and last debuginfod servers (`DEBUGINFOD_URLS`, see [`crate::debuginfod`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hud_format::elf::build_id_of;
use object::{Object, ObjectSection};

/// Bytes of an object file: mapped from disk or embedded in the capture.
pub enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// Where an object's bytes came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Override(PathBuf),
    Embedded,
    RecordedPath(PathBuf),
    /// The recorded path inside the live target's root (`/proc/PID/root/…`).
    ProcessRoot(PathBuf),
    /// Fetched by build-id from a debuginfod server, in its cache.
    Debuginfod(PathBuf),
    DebugFile(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Override(p) => write!(f, "--binary {}", p.display()),
            Origin::Embedded => write!(f, "the copy embedded in the capture"),
            Origin::RecordedPath(p) => write!(f, "{}", p.display()),
            Origin::ProcessRoot(p) => write!(f, "{} (the running target's own file)", p.display()),
            Origin::Debuginfod(p) => write!(f, "{} (from debuginfod)", p.display()),
            Origin::DebugFile(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A located object: the file that was mapped, and where its DWARF lives (itself or a debug file).
pub struct Located {
    pub origin: Origin,
    pub file: Arc<Bytes>,
    /// A separate debug file, when the object's own DWARF is missing.
    pub debug: Option<(PathBuf, Arc<Bytes>)>,
    /// A `--binary` named for this object that is another build, passed over for this one.
    pub passed_over: Option<BuildIdMismatch>,
}

/// The recorded object and the file found for it disagree.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "wrong binary for {recorded}: the capture has build-id {expected}, {found_path} has {found}"
)]
pub struct BuildIdMismatch {
    pub recorded: String,
    pub expected: String,
    pub found_path: String,
    pub found: String,
}

impl BuildIdMismatch {
    fn new(recorded: &str, expected: &[u8], found_path: &Path, found: &[u8]) -> Self {
        let id = |bytes: &[u8]| {
            if bytes.is_empty() {
                "none".into()
            } else {
                hex(bytes)
            }
        };
        BuildIdMismatch {
            recorded: recorded.to_owned(),
            expected: id(expected),
            found_path: found_path.display().to_string(),
            found: id(found),
        }
    }
}

/// Where to look.
#[derive(Clone, Debug, Default)]
pub struct SearchPaths {
    pub binaries: Vec<PathBuf>,
    pub debug_dirs: Vec<PathBuf>,
    /// `/proc/PID/root` of the recorded process when it still runs on this machine (same boot):
    /// its files as it sees them, where a container keeps its binaries.
    pub process_root: Option<PathBuf>,
    /// Servers to fetch missing objects and debug files from, by build-id.
    pub debuginfod: Option<Arc<crate::debuginfod::Debuginfod>>,
    /// Where symbolization results are kept between analyses (symbols/cache.rs); none: every
    /// analysis starts cold.
    pub symbol_cache: Option<crate::symbols::CacheDir>,
}

impl SearchPaths {
    /// Adds the recorded process's root when the capture was made on this machine since its
    /// last boot and the process is still there (a build-id check guards against a reused pid).
    pub fn with_process_root(mut self, header: &hud_format::types::Header) -> Self {
        let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        if !header.boot_id.is_empty() && header.boot_id == this_boot && header.target.pid > 0 {
            let root = PathBuf::from(format!("/proc/{}/root", header.target.pid));
            // Readable only with the right to trace the process (root, or its owner).
            if std::fs::read_dir(&root).is_ok() {
                self.process_root = Some(root);
            }
        }
        self
    }
}

/// Embedded object, as the capture holds it.
#[derive(Clone)]
pub struct Embedded {
    pub path: String,
    pub build_id: Vec<u8>,
    pub bytes: Arc<Bytes>,
}

/// Maps a regular file. Paths come from captures, which may be crafted: a FIFO or a device
/// there must not block or be read, so the file is opened without blocking and checked first.
fn map_file(path: &Path) -> Option<Bytes> {
    let file = hud_format::reader::open_regular(path).ok()?;
    // SAFETY: read-only map; we only parse it.
    unsafe { memmap2::Mmap::map(&file) }.ok().map(Bytes::Mapped)
}

/// Whether the object carries DWARF line tables.
pub fn has_dwarf(bytes: &[u8]) -> bool {
    object::File::parse(bytes)
        .ok()
        .and_then(|f| f.section_by_name(".debug_line").map(|s| s.size() > 0))
        .unwrap_or(false)
}

fn debuglink(bytes: &[u8]) -> Option<String> {
    let file = object::File::parse(bytes).ok()?;
    let (name, _crc) = file.gnu_debuglink().ok().flatten()?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// Finds the object mapped at `recorded` with `build_id`.
///
/// `Ok(None)` when nothing usable is found; `Err` when the only candidate has another build-id.
pub fn locate(
    recorded: &str,
    build_id: &[u8],
    search: &SearchPaths,
    embedded: &[Embedded],
) -> Result<Option<Located>, BuildIdMismatch> {
    let recorded_name = Path::new(recorded).file_name();
    let mismatch =
        |path: &Path, found: &[u8]| BuildIdMismatch::new(recorded, build_id, path, found);
    let mut first_mismatch = None;
    let mut override_mismatch = None;
    // 1. --binary: the user said so; match by build-id, or by file name when ids are absent.
    for path in &search.binaries {
        let Some(bytes) = map_file(path) else {
            continue;
        };
        let id = build_id_of(&bytes).unwrap_or_default();
        let same_name = path.file_name() == recorded_name;
        if (!build_id.is_empty() && id == build_id) || (build_id.is_empty() && same_name) {
            return Ok(Some(with_debug(
                Origin::Override(path.clone()),
                Arc::new(bytes),
                search,
            )));
        }
        if same_name && override_mismatch.is_none() {
            // The user named this file for this object, and it is another build: an error,
            // unless the right build is found below (then a warning).
            override_mismatch = Some(mismatch(path, &id));
        }
    }
    let found = locate_elsewhere(recorded, build_id, search, embedded, &mut first_mismatch);
    match (found, override_mismatch) {
        (Some(mut located), passed_over) => {
            located.passed_over = passed_over;
            Ok(Some(located))
        }
        (None, Some(m)) => Err(m),
        (None, None) => match first_mismatch {
            Some(m) => Err(m),
            None => Ok(None),
        },
    }
}

/// Steps 2 to 4 of [`locate`]: embedded copies, the recorded path, debug files.
fn locate_elsewhere(
    recorded: &str,
    build_id: &[u8],
    search: &SearchPaths,
    embedded: &[Embedded],
    first_mismatch: &mut Option<BuildIdMismatch>,
) -> Option<Located> {
    let mismatch =
        |path: &Path, found: &[u8]| BuildIdMismatch::new(recorded, build_id, path, found);
    // 2. Embedded copies.
    if let Some(e) = embedded.iter().find(|e| {
        (!build_id.is_empty() && e.build_id == build_id)
            || (build_id.is_empty() && e.path == recorded)
    }) {
        return Some(with_debug(Origin::Embedded, Arc::clone(&e.bytes), search));
    }
    // 3. The recorded path, if it is the same build.
    let path = Path::new(recorded.trim_end_matches(" (deleted)"));
    if let Some(bytes) = map_file(path) {
        let id = build_id_of(&bytes).unwrap_or_default();
        if id == build_id {
            return Some(with_debug(
                Origin::RecordedPath(path.to_path_buf()),
                Arc::new(bytes),
                search,
            ));
        }
        *first_mismatch = Some(mismatch(path, &id));
    }
    // 3b. The same path in the live target's root, if it is the same build.
    if let Some(root) = &search.process_root {
        let inside = root.join(path.strip_prefix("/").unwrap_or(path));
        if let Some(bytes) = map_file(&inside) {
            if build_id_of(&bytes).unwrap_or_default() == build_id {
                *first_mismatch = None;
                return Some(with_debug(
                    Origin::ProcessRoot(inside),
                    Arc::new(bytes),
                    search,
                ));
            }
        }
    }
    // 4. A debug file alone (the binary is gone but its debug info is installed).
    if let Some((debug_path, debug)) = debug_file_by_build_id(build_id, search) {
        return Some(Located {
            origin: Origin::DebugFile(debug_path.clone()),
            file: Arc::clone(&debug),
            debug: Some((debug_path, debug)),
            passed_over: None,
        });
    }
    // 5. debuginfod: the object by its build-id (its debug info, if it has none, in `with_debug`).
    let server = search.debuginfod.as_ref()?;
    let path = server.fetch(build_id, crate::debuginfod::Artifact::Executable)?;
    let bytes = map_file(&path)?;
    *first_mismatch = None;
    Some(with_debug(
        Origin::Debuginfod(path),
        Arc::new(bytes),
        search,
    ))
}

/// Adds a separate debug file when the object has no DWARF of its own.
fn with_debug(origin: Origin, file: Arc<Bytes>, search: &SearchPaths) -> Located {
    if has_dwarf(&file) {
        return Located {
            origin,
            file,
            debug: None,
            passed_over: None,
        };
    }
    let id = build_id_of(&file).unwrap_or_default();
    let mut debug = debug_file_by_build_id(&id, search);
    if debug.is_none() {
        if let (
            Some(link),
            Origin::RecordedPath(path) | Origin::Override(path) | Origin::ProcessRoot(path),
        ) = (debuglink(&file), &origin)
        {
            let dir = path.parent().unwrap_or(Path::new("/"));
            let mut candidates = vec![dir.join(&link), dir.join(".debug").join(&link)];
            for d in search
                .debug_dirs
                .iter()
                .chain([PathBuf::from("/usr/lib/debug")].iter())
            {
                candidates.push(d.join(dir.strip_prefix("/").unwrap_or(dir)).join(&link));
                candidates.push(d.join(&link));
            }
            debug = candidates.into_iter().find_map(|p| {
                map_file(&p)
                    .filter(|b| has_dwarf(b))
                    .map(|b| (p, Arc::new(b)))
            });
        }
    }
    if debug.is_none() {
        // Last, the debug file a debuginfod server has for this build.
        debug = search.debuginfod.as_ref().and_then(|server| {
            let path = server.fetch(&id, crate::debuginfod::Artifact::Debuginfo)?;
            let bytes = map_file(&path).filter(|b| has_dwarf(b))?;
            Some((path, Arc::new(bytes)))
        });
    }
    Located {
        origin,
        file,
        debug,
        passed_over: None,
    }
}

fn debug_file_by_build_id(build_id: &[u8], search: &SearchPaths) -> Option<(PathBuf, Arc<Bytes>)> {
    if build_id.len() < 2 {
        return None;
    }
    let id = hex(build_id);
    let relative = PathBuf::from(".build-id")
        .join(&id[..2])
        .join(format!("{}.debug", &id[2..]));
    search
        .debug_dirs
        .iter()
        .chain([PathBuf::from("/usr/lib/debug")].iter())
        .map(|d| d.join(&relative))
        .find_map(|p| {
            let bytes = map_file(&p)?;
            has_dwarf(&bytes).then(|| (p, Arc::new(bytes)))
        })
}

/// Lower-case hex of a byte string (build-ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
