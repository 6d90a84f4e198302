//! Where a Tokio program keeps the id of the task its thread is polling, read from the program's
//! ELF and DWARF, so the recorder can read that id at each sample without a rebuild.
//!
//! Tokio writes the running task's id into the thread-local `CONTEXT.current_task_id`
//! (`runtime/context.rs`) around every poll. Nothing about it is stable: the `thread_local!`
//! wrapper (eager storage, lazy storage, older `Key` types) changes between Rust releases, the
//! `Context` fields between tokio releases, and `Option<Id>` is 8 bytes with a zero niche since
//! tokio 1.40 but 16 bytes with a tag before. So every offset comes from the target's own debug
//! info: the TLS variable inside `tokio::runtime::context::CONTEXT` (its DWARF location gives its
//! offset in the executable's TLS block), a path of members from its type to a struct with a
//! `current_task_id` field, and the `Option`'s variant part (where its tag is, which value means
//! `None`, where the id is).
//!
//! x86-64 keeps the executable's TLS block right below the thread pointer (`fsbase`, TLS variant
//! II): the block starts `round_up(memsz - firstbyte, align) + firstbyte` bytes below it, as
//! glibc's `_dl_determine_tlsoffset` places the first module (`firstbyte` is nonzero only when the
//! PT_TLS segment's address is not aligned; musl places it the same way in that case). A tokio in
//! a shared library would need that library's dynamic TLS offset: not supported (no id is read).

use std::borrow::Cow;

use std::cell::RefCell;
use std::rc::Rc;

use gimli::{AttributeValue, EndianSlice, LittleEndian, UnitOffset};
use object::{Object, ObjectSection};

/// Where a thread's current task id is, relative to its thread pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskIdLayout {
    /// The id's 8 bytes are at `fsbase + value_at` (negative: below the thread pointer).
    pub value_at: i64,
    /// The `Option`'s tag is at `fsbase + tag_at` (equal to `value_at` for a niche)...
    pub tag_at: i64,
    /// ...in this many bytes (1, 2, 4 or 8)...
    pub tag_size: u8,
    /// ...and holds this value for `None` (no task running).
    pub none: u64,
    /// How it was found, for the capture and the user: the variable, the member path, the tag.
    pub description: String,
    /// Where the running scheduler's tick is (it moves at each task the scheduler polls): two
    /// samples of one task with the same tick were one poll. `None` when its layout is unknown.
    pub tick: Option<TickLayout>,
}

/// The path from a thread's TLS to its scheduler's tick: `CONTEXT.scheduler` points at the
/// running `scheduler::Context` (an enum: current_thread or multi_thread), whose `core` holds,
/// while a task is polled, the boxed `Core` with its `tick` counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickLayout {
    /// The pointer to `scheduler::Context` is at `fsbase + scheduler_at` (0 outside a runtime).
    pub scheduler_at: i64,
    /// The enum's tag: offset in `scheduler::Context` and size.
    pub tag_at: u64,
    pub tag_size: u8,
    /// Per scheduler kind (at most two).
    pub variants: Vec<TickVariant>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickVariant {
    /// "CurrentThread" or "MultiThread".
    pub name: String,
    /// The tag's value for it (`None`: the variant without one, taken when no other matches).
    pub tag: Option<u64>,
    /// The `Box<Core>` pointer's offset in `scheduler::Context` (null: no core held).
    pub core_at: u64,
    /// `tick`'s offset in `Core` and size (4 bytes in every tokio so far).
    pub tick_at: u64,
    pub tick_size: u8,
}

impl TickLayout {
    /// The tag's mask in the 8 bytes read at `tag_at`.
    pub fn tag_mask(&self) -> u64 {
        mask_of(self.tag_size)
    }
}

fn mask_of(size: u8) -> u64 {
    match size {
        8 => u64::MAX,
        n => (1u64 << (8 * u32::from(n.min(7)))) - 1,
    }
}

impl TaskIdLayout {
    /// The id in the bytes read at `value_at` and `tag_at`; `None` when no task runs.
    pub fn decode(&self, value: u64, tag: u64) -> Option<u64> {
        let tag = tag & self.tag_mask();
        (tag != self.none && value != 0).then_some(value)
    }

    /// The mask that keeps a tag's bytes of the 8 read at `tag_at`.
    pub fn tag_mask(&self) -> u64 {
        mask_of(self.tag_size)
    }
}

/// Why a binary's task ids cannot be read (said once to the user; recording goes on without them).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoTaskIds {
    #[error("not an ELF file the recorder can read ({0})")]
    NotElf(String),
    #[error("the binary has no thread-local storage (PT_TLS): tokio is not linked into it")]
    NoTls,
    #[error("the binary has no DWARF debug info (built without `debug`, or stripped)")]
    NoDebugInfo,
    #[error("its debug info has no `tokio::runtime::context::CONTEXT` thread-local: no tokio, tokio in a shared library, or debug info without types (`debug = 1` or `line-tables-only`; task ids need `debug = true`)")]
    NoContext,
    #[error("tokio's `CONTEXT` has no `current_task_id` field of a known shape ({0})")]
    UnknownShape(String),
    #[error("its debug info could not be read ({0})")]
    Dwarf(String),
}

impl From<gimli::Error> for NoTaskIds {
    fn from(e: gimli::Error) -> Self {
        NoTaskIds::Dwarf(e.to_string())
    }
}

/// The PT_TLS segment: where the executable's TLS block sits below the thread pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub align: u64,
}

impl TlsSegment {
    /// Bytes from the start of the executable's TLS block up to the thread pointer.
    pub fn block_below_tp(&self) -> u64 {
        let align = self.align.max(1);
        let firstbyte = self.vaddr.wrapping_neg() & (align - 1);
        (self.memsz - firstbyte.min(self.memsz)).div_ceil(align) * align + firstbyte
    }
}

/// The PT_TLS segment of an ELF image.
pub fn tls_segment(elf: &[u8]) -> Result<Option<TlsSegment>, NoTaskIds> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(elf)
        .map_err(|e| NoTaskIds::NotElf(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| NoTaskIds::NotElf(e.to_string()))?;
    let segments = header
        .program_headers(endian, elf)
        .map_err(|e| NoTaskIds::NotElf(e.to_string()))?;
    Ok(segments
        .iter()
        .find(|p| p.p_type(endian) == object::elf::PT_TLS)
        .map(|p| TlsSegment {
            vaddr: p.p_vaddr(endian),
            memsz: p.p_memsz(endian),
            align: p.p_align(endian),
        }))
}

type R<'a> = EndianSlice<'a, LittleEndian>;

/// A type, by its offset in `.debug_info`: a member's type may be in another compilation unit
/// (`DW_FORM_ref_addr`, as LTO builds write them: miniserve's `Option<Id>` names its `Id` four
/// units away), so an offset within one unit cannot name it.
pub(super) type Ty = gimli::DebugInfoOffset<usize>;

/// The units of a binary's debug info, parsed as types lead into them.
pub(super) struct Types<'d, 'a> {
    dwarf: &'d gimli::Dwarf<R<'a>>,
    /// Every unit's header, in section order.
    headers: Vec<gimli::UnitHeader<R<'a>>>,
    parsed: RefCell<Vec<Option<Rc<gimli::Unit<R<'a>>>>>>,
}

impl<'d, 'a> Types<'d, 'a> {
    pub(super) fn new(dwarf: &'d gimli::Dwarf<R<'a>>) -> Result<Self, NoTaskIds> {
        let mut headers = Vec::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            headers.push(header);
        }
        let parsed = RefCell::new(vec![None; headers.len()]);
        Ok(Types {
            dwarf,
            headers,
            parsed,
        })
    }

    /// The unit holding `ty`, and `ty` within it.
    fn at(&self, ty: Ty) -> Result<(Rc<gimli::Unit<R<'a>>>, UnitOffset), NoTaskIds> {
        let start = |h: &gimli::UnitHeader<R<'a>>| h.offset().as_debug_info_offset().map(|o| o.0);
        let i = self
            .headers
            .partition_point(|h| start(h).is_some_and(|s| s <= ty.0))
            .checked_sub(1)
            .ok_or_else(|| NoTaskIds::Dwarf(format!("no unit holds type {:#x}", ty.0)))?;
        let header = self.headers[i];
        let offset = ty
            .to_unit_offset(&header)
            .ok_or_else(|| NoTaskIds::Dwarf(format!("type {:#x} is past its unit", ty.0)))?;
        if let Some(unit) = &self.parsed.borrow()[i] {
            return Ok((unit.clone(), offset));
        }
        let unit = Rc::new(self.dwarf.unit(header)?);
        self.parsed.borrow_mut()[i] = Some(unit.clone());
        Ok((unit, offset))
    }
}

/// The type an entry names (`DW_AT_type`), in this unit or another.
fn type_of(
    unit: &gimli::Unit<R<'_>>,
    e: &gimli::DebuggingInformationEntry<'_, '_, R<'_>>,
) -> Result<Option<Ty>, NoTaskIds> {
    Ok(match e.attr_value(gimli::DW_AT_type)? {
        Some(AttributeValue::UnitRef(t)) => t.to_debug_info_offset(&unit.header),
        Some(AttributeValue::DebugInfoRef(t)) => Some(t),
        _ => None,
    })
}

/// Finds where the running task's id is in an executable's TLS (`elf`: the whole file, with its
/// debug info).
pub fn resolve(elf: &[u8]) -> Result<TaskIdLayout, NoTaskIds> {
    let tls = tls_segment(elf)?.ok_or(NoTaskIds::NoTls)?;
    let file = object::File::parse(elf).map_err(|e| NoTaskIds::NotElf(e.to_string()))?;
    if file.section_by_name(".debug_info").is_none() {
        return Err(NoTaskIds::NoDebugInfo);
    }
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, NoTaskIds> {
        match file.section_by_name(id.name()) {
            Some(s) => s
                .uncompressed_data()
                .map_err(|e| NoTaskIds::Dwarf(format!("{}: {e}", id.name()))),
            None => Ok(Cow::Borrowed(&[][..])),
        }
    })?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
    let types = Types::new(&dwarf)?;
    let found = find_context(&types)?;
    let below = tls.block_below_tp() as i64;
    let base = found.tls_offset as i64 - below;
    let tick = scheduler_tick(&types, found.field.context, base);
    let tick_note = match &tick {
        Ok(t) => format!(
            "; scheduler tick through CONTEXT.scheduler ({})",
            t.variants
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(why) => format!("; no scheduler tick ({why})"),
    };
    Ok(TaskIdLayout {
        tick: tick.ok(),
        value_at: base + found.field.value_at as i64,
        tag_at: base + found.field.tag_at as i64,
        tag_size: found.field.tag_size,
        none: found.field.none,
        description: format!(
            "{} at TLS offset {:#x} (block {:#x} below the thread pointer), {}{tick_note}",
            found.variable, found.tls_offset, below, found.field.path
        ),
    })
}

/// The `current_task_id` field found from the TLS variable's type.
#[derive(Debug)]
struct Field {
    /// The struct that holds it (tokio's `Context`) and that struct's offset in the variable.
    context: (Ty, u64),
    /// Offsets from the variable's start.
    value_at: u64,
    tag_at: u64,
    tag_size: u8,
    none: u64,
    path: String,
}

struct Found {
    variable: String,
    tls_offset: u64,
    field: Field,
}

/// Searches the units that come from tokio for its `CONTEXT` thread-local.
fn find_context(types: &Types<'_, '_>) -> Result<Found, NoTaskIds> {
    let dwarf = types.dwarf;
    let mut units = dwarf.units();
    let mut search = Search::default();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        // Only tokio's own units define its thread-locals: the others are skipped after their
        // root entry (most of a big binary's debug info).
        if !unit
            .name
            .is_some_and(|n| n.slice().windows(5).any(|w| w == b"tokio"))
        {
            continue;
        }
        let mut tree = unit.entries_tree(None)?;
        let root = tree.root()?;
        if let Some(found) = search.namespace(types, &unit, root, &mut Vec::new())? {
            return Ok(found);
        }
    }
    match search.shape_error {
        Some(e) => Err(e),
        None if search.saw_context => Err(NoTaskIds::UnknownShape("no field".into())),
        None => Err(NoTaskIds::NoContext),
    }
}

/// The walk of `find_context`: what it saw of `CONTEXT` so far.
#[derive(Default)]
struct Search {
    shape_error: Option<NoTaskIds>,
    saw_context: bool,
}

impl Search {
    /// Looks through one namespace (or the unit's root) at `path` for the variable: only
    /// namespaces are entered (closures and a function's statics are namespaces in Rust's debug
    /// info); types and functions, most of the entries, are skipped whole, their names unread.
    fn namespace<'a>(
        &mut self,
        types: &Types<'_, 'a>,
        unit: &gimli::Unit<R<'a>>,
        node: gimli::EntriesTreeNode<'_, '_, '_, R<'a>>,
        path: &mut Vec<&'a [u8]>,
    ) -> Result<Option<Found>, NoTaskIds> {
        let inside = in_context(path);
        let mut children = node.children();
        while let Some(child) = children.next()? {
            let entry = child.entry();
            let tag = entry.tag();
            if tag != gimli::DW_TAG_namespace && !(inside && tag == gimli::DW_TAG_variable) {
                continue;
            }
            let name = match entry.attr_value(gimli::DW_AT_name)? {
                Some(v) => types
                    .dwarf
                    .attr_string(unit, v)
                    .map_or(&[][..], |s| s.slice()),
                None => &[],
            };
            if tag == gimli::DW_TAG_variable {
                let Some(offset) = tls_location(entry, unit.encoding())? else {
                    continue;
                };
                let Some(ty) = type_of(unit, entry)? else {
                    continue;
                };
                self.saw_context = true;
                match field_in(types, ty) {
                    Ok(field) => {
                        let mut variable: Vec<String> = path
                            .iter()
                            .map(|p| String::from_utf8_lossy(p).into())
                            .collect();
                        variable.push(String::from_utf8_lossy(name).into());
                        return Ok(Some(Found {
                            variable: variable.join("::"),
                            tls_offset: offset,
                            field,
                        }));
                    }
                    Err(e) => self.shape_error = Some(e),
                }
                continue;
            }
            path.push(name);
            let found = self.namespace(types, unit, child, path)?;
            path.pop();
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// Whether a namespace path is inside tokio's `runtime::context::CONTEXT`.
fn in_context(path: &[&[u8]]) -> bool {
    let at = path
        .windows(3)
        .position(|w| w[0] == b"runtime" && w[1] == b"context" && w[2] == b"CONTEXT");
    at.is_some_and(|i| i >= 1 && path[..i].contains(&&b"tokio"[..]))
}

/// The TLS offset of a variable whose location is `<constant> DW_OP_form_tls_address` (or GNU's
/// `push_tls_address`).
fn tls_location(
    entry: &gimli::DebuggingInformationEntry<'_, '_, R<'_>>,
    encoding: gimli::Encoding,
) -> Result<Option<u64>, NoTaskIds> {
    let Some(AttributeValue::Exprloc(expr)) = entry.attr_value(gimli::DW_AT_location)? else {
        return Ok(None);
    };
    let mut ops = expr.operations(encoding);
    let mut constant = None;
    while let Some(op) = ops.next()? {
        match op {
            gimli::Operation::UnsignedConstant { value } => constant = Some(value),
            gimli::Operation::TLS => return Ok(constant),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// A type entry's members: (name, offset, type), the entry at `ty` in `unit`.
pub(super) fn members(
    unit: &gimli::Unit<R<'_>>,
    dwarf: &gimli::Dwarf<R<'_>>,
    ty: UnitOffset,
) -> Result<Vec<Member>, NoTaskIds> {
    let mut tree = unit.entries_tree(Some(ty))?;
    let root = tree.root()?;
    let mut children = root.children();
    let mut out = Vec::new();
    while let Some(child) = children.next()? {
        let e = child.entry();
        if e.tag() != gimli::DW_TAG_member {
            continue;
        }
        out.push(member_of(unit, dwarf, e)?);
    }
    Ok(out)
}

/// A member: its name, offset and type.
pub(super) type Member = (String, u64, Option<Ty>);

/// The members of type `ty`, wherever its unit.
fn members_of(types: &Types<'_, '_>, ty: Ty) -> Result<Vec<Member>, NoTaskIds> {
    let (unit, at) = types.at(ty)?;
    members(&unit, types.dwarf, at)
}

fn member_of(
    unit: &gimli::Unit<R<'_>>,
    dwarf: &gimli::Dwarf<R<'_>>,
    e: &gimli::DebuggingInformationEntry<'_, '_, R<'_>>,
) -> Result<Member, NoTaskIds> {
    let name = match e.attr_value(gimli::DW_AT_name)? {
        Some(v) => dwarf
            .attr_string(unit, v)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        None => String::new(),
    };
    let offset = e
        .attr_value(gimli::DW_AT_data_member_location)?
        .and_then(|v| v.udata_value())
        .unwrap_or(0);
    Ok((name, offset, type_of(unit, e)?))
}

fn byte_size(types: &Types<'_, '_>, ty: Ty) -> Result<Option<u64>, NoTaskIds> {
    let (unit, ty) = types.at(ty)?;
    let mut cursor = unit.entries_at_offset(ty)?;
    let Some((_, e)) = cursor.next_dfs()? else {
        return Ok(None);
    };
    Ok(e.attr_value(gimli::DW_AT_byte_size)?
        .and_then(|v| v.udata_value()))
}

/// Looks through the variable's type, breadth first and a few levels deep (the thread-local
/// wrapper, `UnsafeCell`, an `Option` of lazy storage), for a member `current_task_id`.
fn field_in(types: &Types<'_, '_>, ty: Ty) -> Result<Field, NoTaskIds> {
    let mut queue = std::collections::VecDeque::from([(ty, 0u64, String::from("CONTEXT"), 0)]);
    while let Some((ty, at, path, depth)) = queue.pop_front() {
        for (name, offset, member_ty) in members_and_variants(types, ty)? {
            let Some(member_ty) = member_ty else { continue };
            let here = format!("{path}.{name}");
            if name == "current_task_id" {
                let mut field = option_id(types, member_ty, at + offset, here)?;
                field.context = (ty, at);
                return Ok(field);
            }
            if depth < 6 {
                queue.push_back((member_ty, at + offset, here, depth + 1));
            }
        }
    }
    Err(NoTaskIds::UnknownShape(
        "no `current_task_id` member within six levels of the thread-local".into(),
    ))
}

/// Members of a struct, and of each variant of an enum (lazy thread-local storage keeps the
/// value in a variant).
fn members_and_variants(types: &Types<'_, '_>, ty: Ty) -> Result<Vec<Member>, NoTaskIds> {
    let mut out = members_of(types, ty)?;
    for part in variant_parts(types, ty)? {
        for variant in part.variants {
            out.extend(variant.members);
        }
    }
    Ok(out)
}

struct Variant {
    discr_value: Option<u64>,
    members: Vec<Member>,
}

struct VariantPart {
    /// The tag member's offset and type.
    discr: Option<(u64, Option<Ty>)>,
    variants: Vec<Variant>,
}

fn variant_parts(types: &Types<'_, '_>, ty: Ty) -> Result<Vec<VariantPart>, NoTaskIds> {
    let (unit, ty) = types.at(ty)?;
    let (unit, dwarf) = (&*unit, types.dwarf);
    let mut tree = unit.entries_tree(Some(ty))?;
    let root = tree.root()?;
    let mut children = root.children();
    let mut parts = Vec::new();
    while let Some(part) = children.next()? {
        if part.entry().tag() != gimli::DW_TAG_variant_part {
            continue;
        }
        let discr_ref = match part.entry().attr_value(gimli::DW_AT_discr)? {
            Some(AttributeValue::UnitRef(r)) => Some(r),
            _ => None,
        };
        let mut discr = None;
        let mut variants = Vec::new();
        let mut inner = part.children();
        while let Some(child) = inner.next()? {
            let e = child.entry();
            if e.tag() == gimli::DW_TAG_member && Some(e.offset()) == discr_ref {
                let (_, offset, t) = member_of(unit, dwarf, e)?;
                discr = Some((offset, t));
            } else if e.tag() == gimli::DW_TAG_variant {
                let discr_value = e
                    .attr_value(gimli::DW_AT_discr_value)?
                    .and_then(|v| v.udata_value());
                let mut members = Vec::new();
                let mut fields = child.children();
                while let Some(f) = fields.next()? {
                    if f.entry().tag() == gimli::DW_TAG_member {
                        members.push(member_of(unit, dwarf, f.entry())?);
                    }
                }
                variants.push(Variant {
                    discr_value,
                    members,
                });
            }
        }
        parts.push(VariantPart { discr, variants });
    }
    Ok(parts)
}

/// `current_task_id`: `Cell<Option<Id>>`. Goes down single-member wrappers (`Cell`,
/// `UnsafeCell`) to the `Option`, then reads its variant part: the tag, `None`'s value, and the
/// offset of the 8-byte id in `Some`.
fn option_id(
    types: &Types<'_, '_>,
    mut ty: Ty,
    mut at: u64,
    path: String,
) -> Result<Field, NoTaskIds> {
    for _ in 0..4 {
        let parts = variant_parts(types, ty)?;
        if let Some(part) = parts.into_iter().next() {
            let (tag_offset, tag_ty) = part
                .discr
                .ok_or_else(|| NoTaskIds::UnknownShape(format!("{path}: an enum without a tag")))?;
            let tag_size = match tag_ty {
                Some(t) => byte_size(types, t)?.unwrap_or(8),
                None => 8,
            };
            if !matches!(tag_size, 1 | 2 | 4 | 8) {
                return Err(NoTaskIds::UnknownShape(format!(
                    "{path}: a {tag_size}-byte tag"
                )));
            }
            // `None` is the variant whose struct has no fields; `Some` holds the id.
            let mut none = None;
            let mut some = None;
            for v in &part.variants {
                let [(name, offset, Some(payload))] = v.members.as_slice() else {
                    continue;
                };
                let fields = members_of(types, *payload)?;
                match (name.as_str(), fields.as_slice()) {
                    ("None", []) => none = Some(v),
                    ("Some", [(_, inner, Some(id_ty))]) => some = Some((v, offset + inner, *id_ty)),
                    _ => {}
                }
            }
            let (Some(none), Some((_, some_offset, some_ty))) = (none, some) else {
                return Err(NoTaskIds::UnknownShape(format!(
                    "{path}: not an Option (variants {})",
                    part.variants.len()
                )));
            };
            let none_value = none.discr_value.ok_or_else(|| {
                NoTaskIds::UnknownShape(format!("{path}: `None` has no tag value"))
            })?;
            let (value_in_some, value_size) = leaf_of(types, some_ty)?;
            if value_size != 8 {
                return Err(NoTaskIds::UnknownShape(format!(
                    "{path}: a {value_size}-byte id"
                )));
            }
            let value_at = at + some_offset + value_in_some;
            let tag_at = at + tag_offset;
            let niche = if tag_at == value_at {
                "zero niche"
            } else {
                "tagged"
            };
            return Ok(Field {
                context: (ty, 0),
                value_at,
                tag_at,
                tag_size: tag_size as u8,
                none: none_value,
                path: format!("{path}: Option<Id> ({niche}, None = {none_value})"),
            });
        }
        // A wrapper: go into its only member.
        let m = members_of(types, ty)?;
        match m.as_slice() {
            [(_, offset, Some(inner))] => {
                at += offset;
                ty = *inner;
            }
            _ => break,
        }
    }
    Err(NoTaskIds::UnknownShape(format!(
        "{path}: no Option inside it"
    )))
}

/// The tick of the scheduler a thread runs, from tokio's `Context` (at `base + context.1` from
/// the thread pointer).
fn scheduler_tick(
    types: &Types<'_, '_>,
    context: (Ty, u64),
    base: i64,
) -> Result<TickLayout, String> {
    let shape = |what: &str| format!("tokio's {what} has an unknown shape");
    let fields = members_of(types, context.0).map_err(|e| e.to_string())?;
    let (_, offset, ty) = fields
        .iter()
        .find(|m| m.0 == "scheduler")
        .ok_or_else(|| shape("Context (no `scheduler`)"))?;
    let (ptr_at, sched_ty) = pointer_in(types, ty.ok_or_else(|| shape("scheduler"))?)
        .ok_or_else(|| shape("Context.scheduler"))?;
    let parts = variant_parts(types, sched_ty).map_err(|e| e.to_string())?;
    let part = parts
        .into_iter()
        .next()
        .ok_or_else(|| shape("scheduler::Context (not an enum)"))?;
    let (tag_at, tag_ty) = part.discr.ok_or_else(|| shape("scheduler::Context tag"))?;
    let tag_size = match tag_ty {
        Some(t) => byte_size(types, t).map_err(|e| e.to_string())?.unwrap_or(8),
        None => 8,
    };
    let mut variants = Vec::new();
    for v in &part.variants {
        let [(name, v_at, Some(v_ty))] = v.members.as_slice() else {
            continue;
        };
        let Some(found) = core_tick(types, *v_ty) else {
            continue;
        };
        variants.push(TickVariant {
            name: name.clone(),
            tag: v.discr_value,
            core_at: v_at + found.0,
            tick_at: found.1,
            tick_size: found.2,
        });
    }
    if variants.is_empty() || !matches!(tag_size, 1 | 2 | 4 | 8) {
        return Err(shape("scheduler::Context (no core with a tick)"));
    }
    Ok(TickLayout {
        scheduler_at: base + (context.1 + offset + ptr_at) as i64,
        tag_at,
        tag_size: tag_size as u8,
        variants,
    })
}

/// In a scheduler variant (`CurrentThread(current_thread::Context)`): the offset of the
/// `Box<Core>` pointer, and `tick`'s offset and size in `Core`.
fn core_tick(types: &Types<'_, '_>, variant: Ty) -> Option<(u64, u64, u8)> {
    let inner = members_of(types, variant).ok()?;
    let [(_, ctx_at, Some(ctx_ty))] = inner.as_slice() else {
        return None;
    };
    let fields = members_of(types, *ctx_ty).ok()?;
    let (_, core_at, core_ty) = fields.iter().find(|m| m.0 == "core")?;
    let (ptr_at, core) = pointer_in(types, (*core_ty)?)?;
    let core_fields = members_of(types, core).ok()?;
    let (_, tick_at, tick_ty) = core_fields.iter().find(|m| m.0 == "tick")?;
    let size = byte_size(types, (*tick_ty)?).ok()??;
    matches!(size, 1 | 2 | 4 | 8).then_some((ctx_at + core_at + ptr_at, *tick_at, size as u8))
}

/// Down wrappers (`Cell`, `RefCell`'s `value`, `UnsafeCell`, `Option`'s `Some`, `Box`,
/// `NonNull`) to a pointer: its offset from `ty`'s start and the type it points to.
fn pointer_in(types: &Types<'_, '_>, mut ty: Ty) -> Option<(u64, Ty)> {
    let mut at = 0;
    for _ in 0..10 {
        let (unit, local) = types.at(ty).ok()?;
        let mut tree = unit.entries_tree(Some(local)).ok()?;
        let root = tree.root().ok()?;
        let entry = root.entry();
        if entry.tag() == gimli::DW_TAG_pointer_type {
            return type_of(&unit, entry).ok()?.map(|t| (at, t));
        }
        let mut next = members_of(types, ty).ok()?;
        if next.is_empty() {
            // An `Option`: its `Some`.
            let parts = variant_parts(types, ty).ok()?;
            for v in parts.into_iter().next()?.variants {
                if let [(name, v_at, Some(v_ty))] = v.members.as_slice() {
                    if name == "Some" {
                        let inner = members_of(types, *v_ty).ok()?;
                        if let [(_, i_at, i_ty)] = inner.as_slice() {
                            next = vec![(String::new(), v_at + i_at, *i_ty)];
                        }
                    }
                }
            }
        }
        let pick = next
            .iter()
            .find(|m| matches!(m.0.as_str(), "value" | "pointer" | "__0" | "inner"))
            .or(if next.len() == 1 { next.first() } else { None })?;
        at += pick.1;
        ty = pick.2?;
    }
    None
}

/// Down single-member structs (`Some(Id)` → `Id(NonZeroU64)` → …) to a base type: its offset
/// from `ty`'s start and its size.
fn leaf_of(types: &Types<'_, '_>, mut ty: Ty) -> Result<(u64, u64), NoTaskIds> {
    let mut at = 0;
    for _ in 0..8 {
        let m = members_of(types, ty)?;
        match m.as_slice() {
            [] => return Ok((at, byte_size(types, ty)?.unwrap_or(0))),
            [(_, offset, Some(inner))] => {
                at += offset;
                ty = *inner;
            }
            _ => break,
        }
    }
    Err(NoTaskIds::UnknownShape(
        "the id is not a single integer".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_ends_at_the_thread_pointer_rounded_as_glibc_places_it() {
        let seg = |vaddr, memsz, align| TlsSegment {
            vaddr,
            memsz,
            align,
        };
        // The demo's PT_TLS: aligned address, 0x108 bytes.
        assert_eq!(seg(0xc8ea0, 0x108, 8).block_below_tp(), 0x108);
        assert_eq!(seg(0x1000, 0x101, 16).block_below_tp(), 0x110);
        // An address 8 past a 16-byte alignment: the block keeps that phase.
        assert_eq!(seg(0x1008, 0x20, 16).block_below_tp(), 0x28);
    }

    #[test]
    fn a_niche_option_decodes_zero_as_no_task_and_a_tag_masks_its_bytes() {
        let niche = TaskIdLayout {
            value_at: -0xd8,
            tag_at: -0xd8,
            tag_size: 8,
            none: 0,
            description: String::new(),
            tick: None,
        };
        assert_eq!(niche.decode(0, 0), None);
        assert_eq!(niche.decode(42, 42), Some(42));
        let tagged = TaskIdLayout {
            tag_at: -0xe0,
            tag_size: 1,
            ..niche
        };
        assert_eq!(tagged.decode(42, 0xffff_ff00), None);
        assert_eq!(tagged.decode(42, 0xffff_ff01), Some(42));
    }

    #[test]
    fn namespaces_inside_tokios_context_are_recognized() {
        let p = |s: &'static str| s.split("::").map(str::as_bytes).collect::<Vec<_>>();
        assert!(in_context(&p(
            "tokio::runtime::context::CONTEXT::{constant#0}::{closure#0}"
        )));
        assert!(in_context(&p("tokio::runtime::context::CONTEXT::__getit")));
        assert!(!in_context(&p("mytokio_free::runtime::context::CONTEXT")));
        assert!(!in_context(&p("tokio::runtime::context")));
    }

    #[test]
    fn a_file_that_is_not_elf_says_so() {
        assert!(matches!(resolve(b"nope"), Err(NoTaskIds::NotElf(_))));
    }
}
