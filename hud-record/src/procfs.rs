//! What the recorder snapshots from /proc and the host for offline symbolization.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use hud_format::elf::build_id_of;
use hud_format::types::{ClockOffsets, Mapping};

/// Path /proc/PID/maps gives the kernel's virtual DSO.
pub const VDSO: &str = "[vdso]";
/// The kernel's page of uprobe trampolines: a uretprobe's return lands there. Tracked to put
/// real return addresses back in stack copies, never written to the capture.
pub const UPROBES: &str = "[uprobes]";

/// One file-backed (or vDSO) line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MapsLine {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub inode: u64,
    pub path: String,
}

/// Parses /proc/PID/maps, keeping lines that map a file (inode != 0), the vDSO and the uprobes
/// page.
pub fn parse_maps(text: &str) -> Vec<MapsLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            let offset = fields.next()?;
            let _dev = fields.next()?;
            let inode = fields.next()?;
            let path = fields.next().unwrap_or("").trim_start();
            let (start, end) = range.split_once('-')?;
            let inode: u64 = inode.parse().ok()?;
            // File-backed lines, and the vDSO (clock_gettime and friends run there).
            if (inode == 0 || path.is_empty()) && path != VDSO && path != UPROBES {
                return None;
            }
            Some(MapsLine {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                perms: perms.to_owned(),
                offset: u64::from_str_radix(offset, 16).ok()?,
                inode,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The end of the main thread's stack (`[stack]`, which grows down from it) in /proc/PID/maps
/// text: the top its stack copies reach.
pub fn main_stack_top(maps: &str) -> Option<u64> {
    let line = maps.lines().find(|l| l.trim_end().ends_with(" [stack]"))?;
    let (_, end) = line.split_whitespace().next()?.split_once('-')?;
    u64::from_str_radix(end, 16).ok()
}

pub fn read_main_stack_top(pid: u32) -> Option<u64> {
    main_stack_top(&fs::read_to_string(format!("/proc/{pid}/maps")).ok()?)
}

pub fn read_maps(pid: u32) -> std::io::Result<Vec<MapsLine>> {
    Ok(parse_maps(&fs::read_to_string(format!(
        "/proc/{pid}/maps"
    ))?))
}

/// The path to open a mapped file through the target's own view of the file system (containers).
pub fn file_in_target(pid: u32, path: &str) -> String {
    let path = path.trim_end_matches(" (deleted)");
    format!("/proc/{pid}/root{path}")
}

/// Reads the GNU build-id of an ELF file, mapping it rather than reading it whole.
pub fn read_build_id(path: &Path) -> Option<Vec<u8>> {
    let file = fs::File::open(path).ok()?;
    // SAFETY: read-only map of a file we only parse; if it changes under us we read garbage ids,
    // never memory unsafety beyond what object's bounds checks catch.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    build_id_of(&map)
}

/// The share of an ELF file's functions that set up a frame pointer (`None`: not x86-64 ELF, or
/// no symbol table to find its functions), mapping it rather than reading it whole.
pub fn frame_pointer_share(path: &Path) -> Option<f64> {
    let file = fs::File::open(path).ok()?;
    // SAFETY: as in `read_build_id`.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    hud_format::elf::frame_pointers::share(&map, None)
}

/// Whether an ELF file carries DWARF line info (worth embedding).
pub fn has_debug_info(path: &Path) -> bool {
    use object::{Object, ObjectSection};
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    // SAFETY: as in `read_build_id`.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return false;
    };
    let Ok(elf) = object::File::parse(&*map) else {
        return false;
    };
    elf.section_by_name(".debug_line")
        .is_some_and(|s| s.size() > 0)
}

/// Tracks the target's mappings: what was already written, and build-ids by file.
#[derive(Default)]
pub struct MappingTracker {
    known: Vec<MapsLine>,
    build_ids: HashMap<(String, u64), Vec<u8>>,
    /// The vDSO image, read from the target's memory: no file holds it, so the capture must.
    pub vdso: Option<Vec<u8>>,
}

/// Reads `len` bytes of the target's memory at `addr` (needs ptrace-read access: root).
fn read_memory(pid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    file.seek(SeekFrom::Start(addr)).ok()?;
    let mut buf = vec![0u8; len];
    file.read_exact(&mut buf).ok()?;
    Some(buf)
}

impl MappingTracker {
    /// Rescans /proc/PID/maps; returns the mappings not seen before, ready for the capture.
    pub fn rescan(&mut self, pid: u32, now_ns: u64) -> std::io::Result<Vec<Mapping>> {
        let lines = read_maps(pid)?;
        let mut fresh = Vec::new();
        for line in lines {
            if self.known.contains(&line) {
                continue;
            }
            if line.path == UPROBES {
                self.known.push(line);
                continue;
            }
            let build_id = if line.path == VDSO {
                let image = read_memory(pid, line.start, (line.end - line.start) as usize);
                let id = image.as_deref().and_then(build_id_of).unwrap_or_default();
                self.vdso = image;
                id
            } else {
                let key = (line.path.clone(), line.inode);
                self.build_ids
                    .entry(key)
                    .or_insert_with(|| {
                        read_build_id(Path::new(&file_in_target(pid, &line.path)))
                            .unwrap_or_default()
                    })
                    .clone()
            };
            fresh.push(Mapping {
                ts_ns: now_ns,
                start: line.start,
                end: line.end,
                file_offset: line.offset,
                perms: line.perms.clone(),
                path: line.path.clone(),
                inode: line.inode,
                build_id,
            });
            self.known.push(line);
        }
        Ok(fresh)
    }

    /// The executable mappings we know, for scrubbing stack copies.
    pub fn code_ranges(&self) -> crate::scrub::CodeRanges {
        crate::scrub::CodeRanges::new(
            self.known
                .iter()
                .filter(|m| m.perms.contains('x') && m.path != UPROBES)
                .map(|m| (m.start, m.end))
                .collect(),
        )
    }

    /// The range of a mapping we know by its path (`[uprobes]`, the kernel's page of uprobe
    /// trampolines, appears at the first probe hit).
    pub fn range_of(&self, path: &str) -> Option<(u64, u64)> {
        self.known
            .iter()
            .find(|m| m.path == path)
            .map(|m| (m.start, m.end))
    }

    /// Whether `addr` falls in an executable mapping we know.
    pub fn covers(&self, addr: u64) -> bool {
        self.known
            .iter()
            .any(|m| m.perms.contains('x') && m.start <= addr && addr < m.end)
    }

    /// Distinct executable files mapped, with their build-ids.
    pub fn executable_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for m in self
            .known
            .iter()
            .filter(|m| m.perms.contains('x') && m.path != VDSO)
        {
            if out.iter().any(|(p, _)| *p == m.path) {
                continue;
            }
            let id = self
                .build_ids
                .get(&(m.path.clone(), m.inode))
                .cloned()
                .unwrap_or_default();
            out.push((m.path.clone(), id));
        }
        out
    }
}

/// Thread ids and names of a process.
pub fn threads(pid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<(u32, String)> = dir
        .filter_map(|e| {
            let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
            Some((tid, comm.trim_end().to_owned()))
        })
        .collect();
    out.sort();
    out
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Monotonic and wall clock read back to back (the pair with the smallest gap of a few tries).
pub fn clock_offsets() -> ClockOffsets {
    (0..5)
        .map(|_| {
            let a = monotonic_ns();
            let real = clock_ns(libc::CLOCK_REALTIME);
            let b = monotonic_ns();
            (
                b - a,
                ClockOffsets {
                    monotonic_ns: a + (b - a) / 2,
                    realtime_ns: real,
                },
            )
        })
        .min_by_key(|(gap, _)| *gap)
        .map(|(_, c)| c)
        .expect("five tries")
}

/// Facts about this host for the capture header.
pub struct HostInfo {
    pub host_name: String,
    pub kernel_release: String,
    pub arch: String,
    pub page_size: u32,
    pub cpu_count: u32,
    pub boot_id: String,
}

pub fn host_info(cpu_count: u32) -> HostInfo {
    let read = |p: &str| {
        fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u32;
    HostInfo {
        host_name: read("/proc/sys/kernel/hostname"),
        kernel_release: read("/proc/sys/kernel/osrelease"),
        arch: std::env::consts::ARCH.to_owned(),
        page_size,
        cpu_count,
        boot_id: read("/proc/sys/kernel/random/boot_id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let text = "\
55d0c0a00000-55d0c0a20000 r--p 00000000 fd:01 1234   /usr/bin/demo
55d0c0a20000-55d0c0b00000 r-xp 00020000 fd:01 1234   /usr/bin/demo
7ffd1000-7ffd2000 rw-p 00000000 00:00 0   [stack]
7ffd3000-7ffd5000 r-xp 00000000 00:00 0   [vdso]
7f00000000-7f00001000 r-xp 00001000 fd:01 99   /lib/with space.so (deleted)
";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 4, "[stack] is dropped, [vdso] kept");
        assert_eq!(main_stack_top(text), Some(0x7ffd2000));
        assert_eq!(
            main_stack_top("7ffd1000-7ffd2000 rw-p 0 00:00 0 /x[stack]"),
            None
        );
        assert_eq!(maps[2].path, "[vdso]");
        assert_eq!(maps[1].start, 0x55d0c0a20000);
        assert_eq!(maps[1].offset, 0x20000);
        assert_eq!(maps[1].perms, "r-xp");
        assert_eq!(maps[3].path, "/lib/with space.so (deleted)");
        assert_eq!(
            file_in_target(7, &maps[3].path),
            "/proc/7/root/lib/with space.so"
        );
    }

    #[test]
    fn own_mappings_have_a_build_id() {
        let mut tracker = MappingTracker::default();
        let fresh = tracker.rescan(std::process::id(), 1).unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let mine = fresh
            .iter()
            .find(|m| Path::new(&m.path) == exe)
            .expect("own exe mapped");
        assert_eq!(Some(mine.build_id.clone()), read_build_id(&exe));
        assert!(tracker.rescan(std::process::id(), 2).unwrap().len() < fresh.len());
    }
}
