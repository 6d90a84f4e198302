//! Offline symbolization: each unique (object, address) once, in parallel, with inline chains.
//!
//! Addresses above the leaf are return addresses: they are looked up at address − 1 so the call
//! instruction's line is found, not the next one's. Objects without DWARF fall back to their
//! symbol table (.symtab, or .dynsym for stripped libraries like libc).

mod cache;
mod dwarf;
mod intern;
mod missed_frames;
mod plan;
mod schedule;
mod session;
mod table;

use crate::model::Model;
use crate::objects::{Embedded, SearchPaths};
use crate::observer::Observer;

pub use crate::unwind::copies::Unwinding;
pub use cache::CacheDir;
pub use dwarf::symtab_lookup;
pub use intern::demangle;
pub use session::{Arenas, Symbolizer};
pub(crate) use table::NodeFrames;
pub use table::{interned_id, Frame, ObjectInfo, Recovered, Symbols};

/// Unwinds the model's stack copies and symbolizes every stack node its events use: one update
/// of a fresh [`Symbolizer`].
pub fn symbolize(
    model: &mut Model,
    search: &SearchPaths,
    embedded: &[Embedded],
    observer: &dyn Observer,
) -> Symbols {
    let arenas = Arenas::default();
    let mut symbolizer = Symbolizer::new(
        &arenas,
        search.clone().with_process_root(&model.header),
        embedded.to_vec(),
        model.header.target.exe_path.clone(),
    );
    let mut laps = crate::observer::Laps::new(observer, "");
    symbolizer.unwind_copies(model);
    laps.lap("unwind");
    symbolizer.update(model, observer);
    symbolizer.into_symbols()
}
