//! Why an analysis could not run. Each keeps its cause; only `main` turns them into exit codes.

use crate::objects::BuildIdMismatch;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The capture could not be read, or is not a capture, or is corrupt, or is too new.
    #[error(transparent)]
    Capture(#[from] hud_format::Error),
    /// The target's executable found for symbols is another build than the one recorded.
    #[error("{0}; pass the matching build with --binary PATH (or record with --embed-binaries)")]
    WrongBinary(#[from] BuildIdMismatch),
}
