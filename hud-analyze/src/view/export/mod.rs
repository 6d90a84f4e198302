//! Exports: files other tools read, each a function of the analysis streamed to any `Write`.
//!
//! - [`folded`]: `frame;frame;… weight` lines (flamegraph.pl, inferno, speedscope).
//! - [`svg`]: a flame graph (or a time-ordered flame chart) through inferno.
//! - [`pprof`]: profile.proto, gzipped, symbolized (pprof, Pyroscope, Parca never re-symbolize).
//! - [`perfetto`]: a Perfetto protobuf trace (ui.perfetto.dev): the compact timeline, with
//!   samples and their callstacks.
//! - [`chrome`]: the Trace Event Format (chrome://tracing, Perfetto's UI): a track per thread.
//!
//! The two timelines draw the same slices ([`slices`]).

pub mod chrome;
pub mod folded;
pub mod perfetto;
pub mod pprof;
pub mod slices;
pub mod svg;

use std::io::Write;

use crate::analysis::profile::Weight;
use crate::analysis::{Analysis, Window};

/// The formats, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Perfetto,
    Chrome,
    Folded,
    Svg,
    Pprof,
}

impl Format {
    pub const NAMES: &'static str =
        "perfetto (.pftrace), chrome (.json), folded (.folded), svg (.svg), pprof (.pb.gz)";

    /// The format a file name asks for, by its extension.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        [
            (".pftrace", Format::Perfetto),
            (".perfetto-trace", Format::Perfetto),
            (".pb.gz", Format::Pprof),
            (".pprof", Format::Pprof),
            (".json", Format::Chrome),
            (".folded", Format::Folded),
            (".svg", Format::Svg),
        ]
        .into_iter()
        .find_map(|(ext, f)| name.ends_with(ext).then_some(f))
    }
}

/// What the root frame of folded stacks and flame graphs is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    None,
    /// "name (tid)" of the thread.
    Thread,
    /// The thread's role (worker, blocking pool, …).
    Role,
    /// The Tokio task's kind (`task: FUTURE`; captures with task ids), `[no task]` outside one.
    Task,
}

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub window: Window,
    /// Only these threads (all when `None`).
    pub threads: Option<Vec<u32>>,
    pub weight: Weight,
    pub root: Root,
    /// SVG: a flame chart (time order) instead of a flame graph.
    pub flame_chart: bool,
    /// Folded and SVG: keep the runtime's plumbing frames instead of one frame per role.
    pub all_frames: bool,
    /// The capture's name, for titles.
    pub capture: Option<String>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            window: Window::ALL,
            threads: None,
            weight: Weight::Cpu,
            root: Root::None,
            flame_chart: false,
            all_frames: false,
            capture: None,
        }
    }
}

/// What an export wrote, for the user's summary (an empty window is worth a warning).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Samples, episodes or trace events exported.
    pub events: u64,
}

/// Writes `format` of `analysis` to `out`.
pub fn export(
    analysis: &Analysis,
    format: Format,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> std::io::Result<Written> {
    if options.weight == Weight::Polls && format != Format::Pprof {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "--weight polls (poll durations per future type) is a pprof profile: use --format pprof",
        ));
    }
    match format {
        Format::Folded => folded::write(analysis, options, out),
        Format::Svg => svg::write(analysis, options, out),
        Format::Pprof => pprof::write(analysis, options, out),
        Format::Chrome => chrome::write(analysis, options, out),
        Format::Perfetto => perfetto::write(analysis, options, out),
    }
}

/// The recorded executable's file name (for titles and process names).
fn executable_name(analysis: &Analysis) -> String {
    std::path::Path::new(&analysis.model.header.target.exe_path)
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// A stack's weight as folded stacks and flame graphs count it: samples, or microseconds blocked
/// (their counts are integers).
fn folded_value(weight: Weight, value: u64) -> u64 {
    match weight {
        Weight::Cpu => value,
        Weight::Blocked => value / 1_000,
        Weight::Polls => value,
    }
}

/// The root frame of a thread's stacks in a task (0: none known), if any.
fn root_of(analysis: &Analysis, root: Root, tid: u32, task: u64) -> Option<String> {
    let thread = analysis.model.threads.get(&tid);
    match root {
        Root::None => None,
        Root::Thread => Some(format!(
            "{} ({tid})",
            thread.map_or("?", |t| t.name()).replace(';', ":")
        )),
        Root::Role => Some(thread.map_or("other", |t| t.role.label()).to_string()),
        Root::Task if task == 0 => Some("[no task]".into()),
        Root::Task => Some(match analysis.task_kinds.of(task) {
            Some(kind) => format!("task: {}", kind.function),
            None => "task: kind unknown".into(),
        }),
    }
}
