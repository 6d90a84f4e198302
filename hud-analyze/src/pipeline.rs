//! The whole pipeline: source → model → symbols → analysis.

use std::path::Path;
use std::sync::Arc;

use crate::analysis::{Analysis, Options};
use crate::error::AnalyzeError;
use crate::model::Model;
use crate::objects::{Bytes, Embedded};
use crate::observer::{Laps, Observer, Phase};
use crate::source::{self, Loaded, Opened};
use crate::symbols;

/// Reads the capture at `path` (`-`: standard input, frame by frame) and analyzes it.
pub fn analyze_path(
    path: &Path,
    options: Options,
    observer: &dyn Observer,
) -> Result<Analysis, AnalyzeError> {
    analyze_opened(source::open(path, &options.read)?, options, observer)
}

/// Reads an opened capture's events and analyzes them.
pub fn analyze_opened(
    opened: Opened,
    options: Options,
    observer: &dyn Observer,
) -> Result<Analysis, AnalyzeError> {
    let mut laps = Laps::new(observer, "");
    observer.phase(Phase::Reading, None);
    let loaded = opened.load()?;
    laps.lap("model");
    analyze(loaded, options, observer)
}

/// Reads the capture at `path` into a model, without symbols (what `info` needs).
pub fn model_of(
    path: &Path,
    read: &hud_format::reader::ReadOptions,
) -> Result<Model, AnalyzeError> {
    Ok(source::load(path, read)?.model)
}

/// Symbolizes a loaded capture and analyzes it.
pub fn analyze(
    loaded: Loaded,
    options: Options,
    observer: &dyn Observer,
) -> Result<Analysis, AnalyzeError> {
    let mut laps = Laps::new(observer, "");
    let Loaded {
        mut model,
        embedded,
    } = loaded;
    let embedded: Vec<Embedded> = embedded
        .into_iter()
        .map(|o| Embedded {
            path: o.path,
            build_id: o.build_id,
            bytes: Arc::new(Bytes::Owned(o.bytes)),
        })
        .collect();
    observer.phase(
        Phase::Locating {
            stack_nodes: model.stacks.len(),
        },
        None,
    );
    let mut symbols = symbols::symbolize(&mut model, &options.search, &embedded, observer);
    laps.lap("symbolize");
    if !symbols.mismatches.is_empty() {
        return Err(AnalyzeError::WrongBinary(symbols.mismatches.swap_remove(0)));
    }
    observer.phase(Phase::Analyzing, None);
    let analysis = Analysis::new(options, model, symbols);
    laps.lap("analyze");
    observer.done();
    Ok(analysis)
}
