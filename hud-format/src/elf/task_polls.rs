//! The functions that poll Tokio tasks, one per spawned future type, read from a program's symbol
//! table and DWARF: where `--poll-probes` puts its uprobes, and what each one's tasks are.
//!
//! Tokio polls every task through `tokio::runtime::task::raw::poll::<T, S>`, whose address sits
//! in the task's vtable, so it is never inlined: one out-of-line instance per future type `T`
//! and scheduler `S`. Its legacy-mangled symbol drops the generics (`raw::poll::h1234…`); the
//! instance's DWARF name keeps them (`poll<my_app::serve::{async_fn_env#0}, Arc<…Handle>>`). The
//! symbol table says where the instances are; only the compilation units that hold them are
//! walked for their names, so a large binary costs little more than a small one.
//!
//! An instance's body is a tail jump to `Harness::poll`; a uretprobe placed at its entry still
//! fires when the whole poll returns (it replaces the return address, which the jump keeps).

use std::borrow::Cow;

use gimli::{AttributeValue, EndianSlice, LittleEndian};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// One `raw::poll::<T, S>` instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollFn {
    /// Its virtual address in the ELF file.
    pub address: u64,
    /// Where its first instruction is in the file (what a uprobe is attached at).
    pub file_offset: u64,
    /// The task's future type `T`, as DWARF names it (`my_app::serve::{async_fn_env#0}`).
    pub future: String,
    /// The scheduler `S` (`alloc::sync::Arc<tokio::runtime::scheduler::multi_thread::…>`).
    pub scheduler: String,
}

impl PollFn {
    /// A `spawn_blocking` closure's task: its one poll runs the whole blocking call.
    pub fn is_blocking_task(&self) -> bool {
        self.future
            .starts_with("tokio::runtime::blocking::task::BlockingTask<")
    }

    /// The future type shortened for people: `my_app::serve` for an async fn's state machine,
    /// `my_app::main::{async_block#0}` for an async block, generic arguments elided.
    pub fn short_future(&self) -> String {
        short_future(&self.future)
    }
}

/// Where a poll function finds its task's id from its argument (the task's `Header` pointer):
/// `header.vtable` (a pointer at `vtable_at`), then `vtable.id_offset` (at `id_offset_at`), then
/// the id at `header + id_offset`. From tokio's DWARF (`task::core::Header`, `task::raw::Vtable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskIdReads {
    pub vtable_at: u64,
    pub id_offset_at: u64,
}

/// The poll functions of a binary, and the crates that are the program's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollFns {
    pub fns: Vec<PollFn>,
    /// How a probe at a poll function's entry reads the task id (`None`: the binary's tokio
    /// keeps no `id_offset` in its task vtable, or its types are not in the debug info).
    pub task_id: Option<TaskIdReads>,
    /// Crates built from sources outside the cargo registry, git checkouts and the Rust
    /// toolchain: the program's own (the default set of futures to probe).
    pub own_crates: Vec<String>,
}

/// Which instances to probe, from `--poll-probes[=FILTER]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollFilter {
    /// The futures of the program's own crates (the default).
    OwnCrates,
    /// Every future but `spawn_blocking` closures.
    All,
    /// Futures whose type contains one of these strings.
    Containing(Vec<String>),
}

impl PollFilter {
    /// Parses FILTER: empty or `own` (own crates), `all`, else comma-separated substrings.
    pub fn parse(filter: &str) -> Self {
        match filter.trim() {
            "" | "own" => PollFilter::OwnCrates,
            "all" => PollFilter::All,
            list => PollFilter::Containing(
                list.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        }
    }
}

impl std::fmt::Display for PollFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollFilter::OwnCrates => write!(f, "the program's own crates"),
            PollFilter::All => write!(f, "all"),
            PollFilter::Containing(parts) => write!(f, "`{}`", parts.join(",")),
        }
    }
}

impl PollFns {
    /// The instances `filter` selects. `spawn_blocking` tasks are never selected: their one poll
    /// is the blocking call, long by design, and the pool is not the runtime.
    pub fn selected<'a>(&'a self, filter: &'a PollFilter) -> impl Iterator<Item = &'a PollFn> {
        self.fns.iter().filter(move |f| {
            !f.is_blocking_task()
                && match filter {
                    PollFilter::All => true,
                    PollFilter::OwnCrates => {
                        self.own_crates.iter().any(|c| mentions_crate(&f.future, c))
                    }
                    PollFilter::Containing(parts) => parts.iter().any(|p| f.future.contains(p)),
                }
        })
    }
}

/// Whether a type name mentions a path in `krate` (`krate::…` at the start or after `<`, `, `).
fn mentions_crate(ty: &str, krate: &str) -> bool {
    ty.match_indices(krate).any(|(at, _)| {
        let before = ty[..at].chars().next_back();
        matches!(before, None | Some('<' | ' ' | '(' | '&' | '['))
            && ty[at + krate.len()..].starts_with("::")
    })
}

/// Why a binary's poll functions cannot be found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoPollFns {
    #[error("not an ELF file the recorder can read ({0})")]
    NotElf(String),
    #[error("the binary has no symbol table (stripped): its `tokio::runtime::task::raw::poll` functions cannot be found")]
    NoSymbols,
    #[error("the binary has no `tokio::runtime::task::raw::poll` function: tokio is not linked into it, or is in a shared library")]
    NoTokio,
    #[error("the binary has no DWARF debug info (built without `debug`, or stripped): the future each poll function polls is named only there")]
    NoDebugInfo,
    #[error("its debug info could not be read ({0})")]
    Dwarf(String),
}

impl From<gimli::Error> for NoPollFns {
    fn from(e: gimli::Error) -> Self {
        NoPollFns::Dwarf(e.to_string())
    }
}

type R<'a> = EndianSlice<'a, LittleEndian>;

/// Finds every `raw::poll::<T, S>` instance of an executable (`elf`: the whole file, with its
/// debug info), with the future each one polls.
pub fn find(elf: &[u8]) -> Result<PollFns, NoPollFns> {
    let file = object::File::parse(elf).map_err(|e| NoPollFns::NotElf(e.to_string()))?;
    if file.symbols().next().is_none() {
        return Err(NoPollFns::NoSymbols);
    }
    let mut addresses: Vec<u64> = file
        .symbols()
        .filter(|s| s.address() != 0 && s.name().is_ok_and(is_raw_poll_symbol))
        .map(|s| s.address())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(NoPollFns::NoTokio);
    }
    if file.section_by_name(".debug_info").is_none() {
        return Err(NoPollFns::NoDebugInfo);
    }
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, NoPollFns> {
        match file.section_by_name(id.name()) {
            Some(s) => s
                .uncompressed_data()
                .map_err(|e| NoPollFns::Dwarf(format!("{}: {e}", id.name()))),
            None => Ok(Cow::Borrowed(&[][..])),
        }
    })?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
    let mut found = PollFns::default();
    let mut vtable_at = None;
    let mut id_offset_at = None;
    let mut units = dwarf.units();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        let unit_name = unit
            .name
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if unit_name.contains("tokio") && (vtable_at.is_none() || id_offset_at.is_none()) {
            let (v, i) = task_id_fields(&dwarf, &unit);
            vtable_at = vtable_at.or(v);
            id_offset_at = id_offset_at.or(i);
        }
        if let Some(krate) = own_crate(&unit_name) {
            if !found.own_crates.contains(&krate) {
                found.own_crates.push(krate);
            }
        }
        let mut ranges = dwarf.unit_ranges(&unit)?;
        let mut holds_one = false;
        while let Some(r) = ranges.next()? {
            let from = addresses.partition_point(|a| *a < r.begin);
            holds_one |= addresses.get(from).is_some_and(|a| *a < r.end);
        }
        if holds_one {
            poll_fns_in(&dwarf, &unit, &addresses, &mut found.fns)?;
        }
    }
    if let (Some(vtable_at), Some(id_offset_at)) = (vtable_at, id_offset_at) {
        found.task_id = Some(TaskIdReads {
            vtable_at,
            id_offset_at,
        });
    }
    for f in &mut found.fns {
        f.file_offset = file_offset(&file, f.address).unwrap_or(0);
    }
    found.fns.retain(|f| f.file_offset != 0);
    found.fns.sort_by_key(|f| f.address);
    found.fns.dedup_by_key(|f| f.address);
    Ok(found)
}

/// In one of tokio's units: the offset of `vtable` in `task::core::Header` and of `id_offset` in
/// `task::raw::Vtable`, where the unit defines them.
fn task_id_fields(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
) -> (Option<u64>, Option<u64>) {
    let (mut vtable_at, mut id_offset_at) = (None, None);
    let mut path: Vec<String> = Vec::new();
    let mut cursor = unit.entries();
    let mut depth = 0isize;
    while let Ok(Some((delta, entry))) = cursor.next_dfs() {
        depth += delta;
        path.truncate(depth.max(0) as usize);
        let name = entry
            .attr_value(gimli::DW_AT_name)
            .ok()
            .flatten()
            .and_then(|v| dwarf.attr_string(unit, v).ok())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tag = entry.tag();
        if tag == gimli::DW_TAG_structure_type
            && entry
                .attr_value(gimli::DW_AT_declaration)
                .ok()
                .flatten()
                .is_none()
        {
            let within = |tail: [&str; 3]| {
                path.len() >= 4
                    && path[path.len() - 3..] == tail
                    && path.iter().any(|p| p == "tokio")
            };
            let wanted = match name.as_str() {
                "Header" if vtable_at.is_none() && within(["runtime", "task", "core"]) => {
                    Some("vtable")
                }
                "Vtable" if id_offset_at.is_none() && within(["runtime", "task", "raw"]) => {
                    Some("id_offset")
                }
                _ => None,
            };
            if let Some(field) = wanted {
                let offset = super::task_id::members(unit, dwarf, entry.offset())
                    .ok()
                    .and_then(|m| m.into_iter().find(|(n, _, _)| n == field))
                    .map(|(_, at, _)| at);
                if field == "vtable" {
                    vtable_at = offset;
                } else {
                    id_offset_at = offset;
                }
                if vtable_at.is_some() && id_offset_at.is_some() {
                    break;
                }
            }
        }
        if entry.has_children() {
            path.push(if tag == gimli::DW_TAG_compile_unit {
                String::new()
            } else {
                name
            });
        }
    }
    (vtable_at, id_offset_at)
}

/// Whether a symbol is a `tokio::runtime::task::raw::poll` instance (legacy or v0 mangling).
fn is_raw_poll_symbol(name: &str) -> bool {
    // Both manglings spell the path's identifiers length-prefixed.
    name.contains("5tokio7runtime4task3raw4poll")
        && format!("{:#}", rustc_demangle::demangle(name))
            .starts_with("tokio::runtime::task::raw::poll")
}

/// The crate a compilation unit named `src/main.rs/@/my_app.1a2b-cgu.0` belongs to, when it is
/// built from the program's own sources (a relative path, or one outside the cargo registry, git
/// checkouts and the toolchain).
fn own_crate(unit_name: &str) -> Option<String> {
    let (source, cgu) = unit_name.split_once("/@/")?;
    let foreign = [
        "/.cargo/registry/",
        "/.cargo/git/",
        "/rustc/",
        "/rust/deps/",
    ];
    if foreign.iter().any(|f| source.contains(f)) {
        return None;
    }
    let krate = cgu.split('.').next()?;
    (!krate.is_empty()).then(|| krate.to_owned())
}

/// The subprograms of `unit` at one of `addresses`, with their generic arguments.
fn poll_fns_in(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    addresses: &[u64],
    out: &mut Vec<PollFn>,
) -> Result<(), NoPollFns> {
    let mut cursor = unit.entries();
    while let Some((_, entry)) = cursor.next_dfs()? {
        if entry.tag() != gimli::DW_TAG_subprogram {
            continue;
        }
        let low_pc = match entry.attr_value(gimli::DW_AT_low_pc)? {
            Some(AttributeValue::Addr(a)) => a,
            Some(AttributeValue::DebugAddrIndex(i)) => dwarf.address(unit, i)?,
            _ => continue,
        };
        if addresses.binary_search(&low_pc).is_err() {
            continue;
        }
        let Some(name) = entry.attr_value(gimli::DW_AT_name)? else {
            continue;
        };
        let name = dwarf
            .attr_string(unit, name)?
            .to_string_lossy()
            .into_owned();
        let Some((future, scheduler)) = generic_arguments(&name) else {
            continue;
        };
        out.push(PollFn {
            address: low_pc,
            file_offset: 0,
            future,
            scheduler,
        });
    }
    Ok(())
}

/// `T` and `S` of a name `poll<T, S>` (commas inside nested generics are not separators).
fn generic_arguments(name: &str) -> Option<(String, String)> {
    let inner = name.strip_prefix("poll<")?.strip_suffix('>')?;
    let parts = top_level_split(inner);
    match parts.as_slice() {
        [t, s] => Some((t.trim().to_owned(), s.trim().to_owned())),
        _ => None,
    }
}

/// Splits a list of type names at its top-level commas (not those inside `<>`, `()`, `[]`; the
/// `>` of a function type's `->` closes nothing).
fn top_level_split(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from, mut previous) = (0i32, 0, ' ');
    for (at, c) in list.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' if previous == '-' => {}
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[from..at]);
                from = at + 1;
            }
            _ => {}
        }
        previous = c;
    }
    parts.push(&list[from..]);
    parts
}

/// The file offset of a virtual address, from the loadable segment that maps it.
fn file_offset(file: &object::File<'_>, address: u64) -> Option<u64> {
    file.segments().find_map(|s| {
        let (offset, size) = s.file_range();
        let start = s.address();
        (address >= start && address < start + size).then(|| offset + (address - start))
    })
}

/// A future type's name for people: an async fn's state machine (`{async_fn_env#0}`) named by its
/// function, and a wrapper (`tracing::instrument::Instrumented<my_app::job::{async_fn_env#0}>`)
/// by its last path segment around what it wraps (`Instrumented<my_app::job>`).
pub fn short_future(future: &str) -> String {
    let future = future.trim();
    let (outer, args) = match future.find('<') {
        Some(open) if future.ends_with('>') && !future[..open].ends_with('-') => {
            (&future[..open], Some(&future[open + 1..future.len() - 1]))
        }
        _ => (future, None),
    };
    let (outer, async_fn) = match outer.strip_suffix("::{async_fn_env#0}") {
        Some(function) => (function, true),
        None => (outer, false),
    };
    // A user's async fn or block keeps its path; a wrapper type is named by its last segment.
    let outer = if async_fn || outer.ends_with('}') || args.is_none() {
        outer
    } else {
        outer.rsplit("::").next().unwrap_or(outer)
    };
    match args {
        None => outer.to_owned(),
        Some(args) => {
            let args: Vec<String> = top_level_split(args)
                .into_iter()
                .map(short_future)
                .collect();
            format!("{outer}<{}>", args.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_arguments_split_at_the_top_level_comma() {
        let (t, s) = generic_arguments(
            "poll<my_app::Wrap<a::B, c::D>, alloc::sync::Arc<tokio::runtime::scheduler::multi_thread::handle::Handle, alloc::alloc::Global>>",
        )
        .unwrap();
        assert_eq!(t, "my_app::Wrap<a::B, c::D>");
        assert!(s.starts_with("alloc::sync::Arc<tokio::runtime::scheduler::multi_thread"));
        assert_eq!(generic_arguments("poll<()>"), None);
        let (t, _) = generic_arguments(
            "poll<my_app::every::{async_fn_env#0}<fn() -> my_app::job::{async_fn_env#0}>, S<A, B>>",
        )
        .unwrap();
        assert_eq!(
            t,
            "my_app::every::{async_fn_env#0}<fn() -> my_app::job::{async_fn_env#0}>"
        );
        assert_eq!(generic_arguments("drop<T>"), None);
    }

    #[test]
    fn own_crates_are_those_not_built_from_the_registry_or_the_toolchain() {
        assert_eq!(
            own_crate("src/main.rs/@/my_app.1a2b3c-cgu.0").as_deref(),
            Some("my_app")
        );
        assert_eq!(
            own_crate("/home/me/svc/src/lib.rs/@/svc_core.77-cgu.3").as_deref(),
            Some("svc_core")
        );
        assert_eq!(
            own_crate("/root/.cargo/registry/src/index.crates.io-1/tokio-1.54.1/src/lib.rs/@/tokio.1-cgu.0"),
            None
        );
        assert_eq!(
            own_crate("/rustc/59807616e/library/std/src/lib.rs/@/std.1-cgu.0"),
            None
        );
        assert_eq!(own_crate("crt1.o"), None);
    }

    fn poll(future: &str) -> PollFn {
        PollFn {
            address: 1,
            file_offset: 1,
            future: future.into(),
            scheduler: "S".into(),
        }
    }

    #[test]
    fn the_default_filter_takes_the_own_crates_futures_and_never_blocking_tasks() {
        let fns = PollFns {
            fns: vec![
                poll("my_app::serve::{async_fn_env#0}"),
                poll("tracing::instrument::Instrumented<my_app::job::{async_fn_env#0}>"),
                poll("hyper::proto::h1::dispatch::Dispatcher<x::Y>"),
                poll("my_apple::x::{async_fn_env#0}"),
                poll("tokio::runtime::blocking::task::BlockingTask<my_app::main::{closure_env#0}>"),
            ],
            own_crates: vec!["my_app".into()],
            task_id: None,
        };
        let own: Vec<&str> = fns
            .selected(&PollFilter::OwnCrates)
            .map(|f| f.future.as_str())
            .collect();
        assert_eq!(own.len(), 2, "{own:?}");
        assert_eq!(fns.selected(&PollFilter::All).count(), 4);
        let hyper = PollFilter::parse("hyper, nothing");
        assert_eq!(fns.selected(&hyper).count(), 1);
        assert_eq!(PollFilter::parse(""), PollFilter::OwnCrates);
    }

    #[test]
    fn short_names_drop_generics_and_the_async_fn_state_machine() {
        assert_eq!(
            short_future("my_app::serve::{async_fn_env#0}"),
            "my_app::serve"
        );
        assert_eq!(
            short_future("tracing::instrument::Instrumented<my_app::job::{async_fn_env#0}>"),
            "Instrumented<my_app::job>"
        );
        assert_eq!(
            short_future("my_app::every::{async_fn_env#0}<fn() -> my_app::job::{async_fn_env#0}>"),
            "my_app::every<fn() -> my_app::job>"
        );
        assert_eq!(
            short_future("my_app::main::{async_block_env#0}"),
            "my_app::main::{async_block_env#0}"
        );
    }
}
