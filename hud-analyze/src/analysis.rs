//! The whole pipeline: capture → model → symbols → roles → detection → report data.

use std::path::Path;
use std::sync::Arc;

use hud_format::reader::Capture;

use crate::detect::{self, Detection, Thresholds};
use crate::model::Model;
use crate::objects::{Bytes, Embedded, SearchPaths};
use crate::progress::{Laps, Progress};
use crate::symbolize::{self, Symbols};

/// Why an analysis could not run; each has its exit code (see `hud-analyze --help`).
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{0}")]
    Unreadable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    WrongBinary(String),
}

impl AnalyzeError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AnalyzeError::Unreadable(_) => 3,
            AnalyzeError::Invalid(_) => 4,
            AnalyzeError::WrongBinary(_) => 5,
        }
    }
}

impl From<hud_format::Error> for AnalyzeError {
    fn from(e: hud_format::Error) -> Self {
        match e {
            hud_format::Error::Io { .. } => AnalyzeError::Unreadable(e.to_string()),
            _ => AnalyzeError::Invalid(e.to_string()),
        }
    }
}

/// Options of an analysis.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub search: SearchPaths,
    pub thresholds: Thresholds,
}

/// A finished analysis: what every view reads.
pub struct Analysis {
    pub model: Model,
    pub symbols: Symbols,
    pub detection: Detection,
}

/// Opens a capture file, or standard input for "-".
pub fn open(path: &Path) -> Result<Capture, AnalyzeError> {
    if path.as_os_str() == "-" {
        Ok(Capture::from_reader(std::io::stdin().lock())?)
    } else {
        Ok(Capture::open(path)?)
    }
}

pub fn analyze(capture: &Capture, options: &Options) -> Result<Analysis, AnalyzeError> {
    let progress = Progress::new();
    let mut laps = Laps::new("");
    progress.phase("reading the capture");
    let mut model = Model::build(capture)?;
    laps.lap("model");
    let embedded: Vec<Embedded> = capture
        .objects()?
        .into_iter()
        .map(|o| Embedded {
            path: o.path,
            build_id: o.build_id,
            bytes: Arc::new(Bytes::Owned(o.bytes)),
        })
        .collect();
    progress.phase(&format!(
        "locating objects for {} stack nodes",
        model.stacks.len()
    ));
    let symbols = symbolize::symbolize(&model, &options.search, &embedded, &progress);
    laps.lap("symbolize");
    if let Some(m) = symbols.mismatches.first() {
        return Err(AnalyzeError::WrongBinary(format!(
            "{m}; pass the matching build with --binary PATH (or record with --embed-binaries)"
        )));
    }
    progress.phase("classifying threads and detecting blocking");
    crate::classify::classify(&mut model, &symbols);
    laps.lap("classify");
    let detection = detect::detect(&model, &symbols, options.thresholds);
    laps.lap("detect");
    progress.done();
    Ok(Analysis {
        model,
        symbols,
        detection,
    })
}
