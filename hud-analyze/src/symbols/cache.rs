//! Symbolization results kept on disk between analyses, per object build: the frames of each
//! address looked up, and the frames a walk missed above each call site (missed_frames.rs). The
//! second analysis of a capture, or of another capture of the same build, reads them instead of
//! parsing DWARF: an object whose every address is cached is never prepared at all.
//!
//! An entry is keyed by everything its answers depend on: the object's build-id, where its
//! DWARF came from (its own, a separate debug file, none), whether it was looked up lightly
//! (dwarf.rs: no inline chains), and the build of this analyzer (its own build-id), so a cache
//! written by another version is never read. A cold and a warm analysis give the same frames.
//!
//! Files are `DIR/BUILDID-MODE-ANALYZER.hudsym`, laid out by [`hud_format::symbol_cache`] (a
//! damaged file is detected, ignored and removed). Written to a temporary file and renamed,
//! so concurrent analyses never see half a file (the last writer's entries win). The directory
//! is kept under a size limit, oldest-used files removed first (a file's time is refreshed when
//! it is read).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use hud_format::symbol_cache::{self as file, CachedFrame, Contents};

use super::intern::Strings;
use super::{Frame, Recovered};

/// Largest file read (a damaged length must not make us allocate the world).
const MAX_FILE: u64 = 256 << 20;

/// Where the cache lives and how big it may grow.
#[derive(Clone, Debug)]
pub struct CacheDir {
    pub dir: PathBuf,
    /// Bytes the directory may hold; the oldest-used files go first past it.
    pub limit: u64,
}

impl CacheDir {
    /// Default limit: a busy service's objects take a few MiB each.
    pub const DEFAULT_LIMIT: u64 = 512 << 20;

    /// `HUD_SYMBOL_CACHE` (a directory, or `off`), else `$XDG_CACHE_HOME/hud/symbols`, else
    /// `~/.cache/hud/symbols`; `None` when off or no home is known.
    pub fn from_env() -> Option<Self> {
        let dir = match std::env::var_os("HUD_SYMBOL_CACHE") {
            Some(v) if v == "off" || v.is_empty() => return None,
            Some(v) => PathBuf::from(v),
            None => std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|x| PathBuf::from(x).join("hud/symbols"))
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hud/symbols"))
                })?,
        };
        Some(CacheDir {
            dir,
            limit: Self::DEFAULT_LIMIT,
        })
    }
}

/// Where an object's DWARF came from and how it is looked up: part of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Mode {
    /// 'o' its own DWARF, 'd' a separate debug file, 'n' none.
    pub(super) dwarf: char,
    pub(super) light: bool,
}

/// What the walk missed above one call site, as stored in the caller's entry: the call's file
/// offset, the callee's key (`BUILDID-MODE`) and file offset, and whether the callee was the
/// stack's leaf.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct MissedKey {
    pub(super) offset: u64,
    pub(super) callee: String,
    pub(super) callee_offset: u64,
    pub(super) leaf: bool,
}

/// One object's cached answers, as read, plus what this analysis added.
#[derive(Default)]
pub(super) struct ObjectCache {
    path: Option<PathBuf>,
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
    lookups: HashMap<u64, (Vec<CachedFrame>, bool)>,
    missed: HashMap<MissedKey, (Vec<CachedFrame>, u32)>,
    /// Entries added since it was read or written.
    dirty: usize,
}

/// The analyzer's own build, once per process: caches of other builds are not read.
fn analyzer_build() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| std::fs::File::open(exe).ok())
            // SAFETY: read-only mapping of our own executable, dropped before we return; only
            // its note is read (mapped, not read whole: it may be tens of MiB of debug info).
            .and_then(|file| unsafe { memmap2::Mmap::map(&file) }.ok())
            .and_then(|map| hud_format::elf::build_id_of(&map))
            .map(|id| crate::objects::hex(&id[..id.len().min(8)]))
            // No build-id of its own: the version, whatever else changed.
            .unwrap_or_else(|| format!("v{}", env!("CARGO_PKG_VERSION")))
    })
}

/// An object's key: its build-id and mode (what [`MissedKey::callee`] holds too).
pub(super) fn object_key(build_id: &[u8], mode: Mode) -> Option<String> {
    (!build_id.is_empty()).then(|| {
        format!(
            "{}-{}{}",
            crate::objects::hex(build_id),
            mode.dwarf,
            if mode.light { 'l' } else { 'f' }
        )
    })
}

impl ObjectCache {
    /// The entry of `key` in `dir`, empty when there is none or it cannot be read (a damaged
    /// one is removed).
    pub(super) fn open(dir: &CacheDir, key: &str) -> Self {
        let path = dir.dir.join(format!("{key}-{}.hudsym", analyzer_build()));
        let mut cache = match read(&path) {
            Ok(Some(cache)) => {
                // Used now: the last to go when the directory is trimmed.
                if let Ok(file) = std::fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
                cache
            }
            Ok(None) => ObjectCache::default(),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                ObjectCache::default()
            }
        };
        cache.path = Some(path);
        cache
    }

    /// The frames of the address at `offset`, and whether it resolved to a line.
    pub(super) fn lookup(
        &self,
        offset: u64,
        object: u32,
        strings: &mut Strings,
    ) -> Option<(Arc<[Frame]>, bool)> {
        let (stored, line) = self.lookups.get(&offset)?;
        Some((self.frames(stored, object, strings), *line))
    }

    pub(super) fn add_lookup(&mut self, offset: u64, frames: &[Frame], line: bool) {
        if self.lookups.contains_key(&offset) {
            return;
        }
        let stored = self.store(frames);
        self.lookups.insert(offset, (stored, line));
        self.dirty += 1;
    }

    /// The frames put back above a call site, and how many functions they are.
    pub(super) fn missed(
        &self,
        key: &MissedKey,
        object: u32,
        strings: &mut Strings,
    ) -> Option<(Vec<Frame>, u32)> {
        let (stored, hops) = self.missed.get(key)?;
        Some((self.frames(stored, object, strings).to_vec(), *hops))
    }

    pub(super) fn has_missed(&self, key: &MissedKey) -> bool {
        self.missed.contains_key(key)
    }

    pub(super) fn add_missed(&mut self, key: MissedKey, frames: &[Frame], hops: u32) {
        if self.missed.contains_key(&key) {
            return;
        }
        let stored = self.store(frames);
        self.missed.insert(key, (stored, hops));
        self.dirty += 1;
    }

    /// Entries added since the last write.
    pub(super) fn dirty(&self) -> bool {
        self.dirty > 0
    }

    /// Writes the entry (temporary file, then rename), then trims the directory to `dir`'s
    /// limit. Errors (a read-only home, a full disk) only lose the cache.
    pub(super) fn write(&mut self, dir: &CacheDir) {
        let Some(path) = &self.path else { return };
        if std::fs::create_dir_all(&dir.dir).is_err() {
            return;
        }
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let written = file::encode(&self.contents())
            .and_then(|bytes| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
            return;
        }
        self.dirty = 0;
        trim(dir);
    }

    fn frames(&self, stored: &[CachedFrame], object: u32, strings: &mut Strings) -> Arc<[Frame]> {
        stored
            .iter()
            .map(|s| Frame {
                function: strings.plain(&self.strings[s.function as usize]),
                file: s.file.map(|f| strings.plain(&self.strings[f as usize])),
                line: s.line,
                object,
                inlined: s.inlined,
                recovered: match s.recovered {
                    1 => Some(Recovered::TailCall),
                    2 => Some(Recovered::LeafCaller),
                    _ => None,
                },
            })
            .collect()
    }

    fn store(&mut self, frames: &[Frame]) -> Vec<CachedFrame> {
        frames
            .iter()
            .map(|f| CachedFrame {
                function: self.string(&f.function),
                file: f.file.as_ref().map(|file| self.string(file)),
                line: f.line,
                inlined: f.inlined,
                recovered: match f.recovered {
                    None => 0,
                    Some(Recovered::TailCall) => 1,
                    Some(Recovered::LeafCaller) => 2,
                },
            })
            .collect()
    }

    /// As the file holds it.
    fn contents(&self) -> Contents {
        Contents {
            strings: self.strings.iter().map(|s| s.to_string()).collect(),
            lookups: self
                .lookups
                .iter()
                .map(|(&offset, (frames, line))| file::Lookup {
                    offset,
                    line: *line,
                    frames: frames.clone(),
                })
                .collect(),
            missed: self
                .missed
                .iter()
                .map(|(key, (frames, hops))| file::Missed {
                    offset: key.offset,
                    callee: key.callee.clone(),
                    callee_offset: key.callee_offset,
                    leaf: key.leaf,
                    hops: *hops,
                    frames: frames.clone(),
                })
                .collect(),
        }
    }

    /// From what a file holds.
    fn from_contents(contents: Contents) -> Self {
        let mut cache = ObjectCache::default();
        for s in contents.strings {
            let s: Arc<str> = s.into();
            cache
                .index
                .insert(Arc::clone(&s), cache.strings.len() as u32);
            cache.strings.push(s);
        }
        for l in contents.lookups {
            cache.lookups.insert(l.offset, (l.frames, l.line));
        }
        for m in contents.missed {
            let key = MissedKey {
                offset: m.offset,
                callee: m.callee,
                callee_offset: m.callee_offset,
                leaf: m.leaf,
            };
            cache.missed.insert(key, (m.frames, m.hops));
        }
        cache
    }

    fn string(&mut self, s: &Arc<str>) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(Arc::clone(s));
        self.index.insert(Arc::clone(s), i);
        i
    }
}

/// Removes the oldest-used files until the directory holds at most 80 % of its limit (so not
/// every write trims again).
fn trim(dir: &CacheDir) {
    let Ok(entries) = std::fs::read_dir(&dir.dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "hudsym"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    if total <= dir.limit {
        return;
    }
    files.sort();
    for (_, size, path) in files {
        if total <= dir.limit / 5 * 4 {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(size);
        }
    }
}

/// Reads `path`: `Ok(None)` when there is no such file, `Err` when it is damaged.
fn read(path: &Path) -> Result<Option<ObjectCache>, file::Damaged> {
    let bytes = match std::fs::File::open(path) {
        Ok(f) => {
            if f.metadata().map_err(|_| file::Damaged)?.len() > MAX_FILE {
                return Err(file::Damaged);
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &f, &mut bytes).map_err(|_| file::Damaged)?;
            bytes
        }
        Err(_) => return Ok(None),
    };
    file::decode(&bytes).map(|c| Some(ObjectCache::from_contents(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: file.map(Into::into),
            line,
            object: 3,
            inlined: false,
            recovered: None,
        }
    }

    fn dir() -> (tempfile::TempDir, CacheDir) {
        let t = tempfile::tempdir().unwrap();
        let d = CacheDir {
            dir: t.path().join("symbols"),
            limit: CacheDir::DEFAULT_LIMIT,
        };
        (t, d)
    }

    #[test]
    fn entries_survive_a_write_and_a_read() {
        let (_t, dir) = dir();
        let shared = Default::default();
        let mut strings = Strings::new(&shared);
        let mut c = ObjectCache::open(&dir, "ab12-of");
        assert!(c.lookup(0x10, 0, &mut strings).is_none());
        let mut inlined = frame("app::inner", Some("src/a.rs"), 7);
        inlined.inlined = true;
        c.add_lookup(
            0x10,
            &[inlined, frame("app::outer", Some("src/a.rs"), 20)],
            true,
        );
        c.add_lookup(0x20, &[frame("memcpy", None, 0)], false);
        let mut tail = frame("app::jumps", Some("src/b.rs"), 3);
        tail.recovered = Some(Recovered::TailCall);
        let key = MissedKey {
            offset: 0x30,
            callee: "cd34-nl".into(),
            callee_offset: 0x40,
            leaf: true,
        };
        c.add_missed(key.clone(), &[tail], 1);
        assert!(c.dirty());
        c.write(&dir);
        assert!(!c.dirty());

        let again = ObjectCache::open(&dir, "ab12-of");
        let (frames, line) = again.lookup(0x10, 9, &mut strings).unwrap();
        assert!(line);
        assert_eq!(frames.len(), 2);
        assert_eq!((&*frames[0].function, frames[0].line), ("app::inner", 7));
        assert!(frames[0].inlined && !frames[1].inlined);
        assert_eq!(
            frames[1].object, 9,
            "frames take the object of this analysis"
        );
        assert_eq!(again.lookup(0x20, 9, &mut strings).unwrap().0[0].file, None);
        let (missed, hops) = again.missed(&key, 4, &mut strings).unwrap();
        assert_eq!((hops, missed[0].recovered), (1, Some(Recovered::TailCall)));
        // Another key, another entry.
        assert!(ObjectCache::open(&dir, "ab12-nl")
            .lookup(0x10, 0, &mut strings)
            .is_none());
    }

    #[test]
    fn a_damaged_file_is_ignored_and_removed() {
        let (_t, dir) = dir();
        let shared = Default::default();
        let mut strings = Strings::new(&shared);
        let mut c = ObjectCache::open(&dir, "ef56-of");
        c.add_lookup(0x10, &[frame("f", None, 0)], false);
        c.write(&dir);
        let path = std::fs::read_dir(&dir.dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&path).unwrap();
        for cut in [bytes.len() / 2, 4] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(ObjectCache::open(&dir, "ef56-of")
                .lookup(0x10, 0, &mut strings)
                .is_none());
            assert!(!path.exists(), "removed");
        }
        // A flipped byte: zstd's checksum (or the decoder) says so.
        let last = bytes.len() - 6;
        bytes[last] ^= 0x55;
        std::fs::create_dir_all(&dir.dir).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        assert!(ObjectCache::open(&dir, "ef56-of")
            .lookup(0x10, 0, &mut strings)
            .is_none());
    }

    #[test]
    fn the_directory_is_trimmed_oldest_first() {
        let (_t, mut dir) = dir();
        let mut first = ObjectCache::open(&dir, "0001-of");
        first.add_lookup(1, &[frame(&"x".repeat(4000), None, 0)], false);
        first.write(&dir);
        let size = std::fs::read_dir(&dir.dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>();
        // Room for about two such files.
        dir.limit = size * 2 + size / 2;
        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        for e in std::fs::read_dir(&dir.dir).unwrap() {
            let f = std::fs::File::options()
                .write(true)
                .open(e.unwrap().path())
                .unwrap();
            f.set_modified(old).unwrap();
        }
        for key in ["0002-of", "0003-of"] {
            let mut c = ObjectCache::open(&dir, key);
            c.add_lookup(1, &[frame(&"y".repeat(4000), Some(key), 0)], false);
            c.write(&dir);
        }
        let names: Vec<String> = std::fs::read_dir(&dir.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with("0001")), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("0003")), "{names:?}");
    }
}
