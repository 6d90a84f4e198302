//! Errors the recorder reports: one line each, with a distinct exit code.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    NoSuchProcess(String),
    #[error("{0}")]
    Ambiguous(String),
    #[error(
        "not permitted: {0}. hud-record needs root, or CAP_BPF + CAP_PERFMON + CAP_DAC_READ_SEARCH (+ CAP_SYS_PTRACE for another user's process; e.g. `sudo hud-record ...`)"
    )]
    NotPermitted(String),
    #[error("{0}")]
    Tracefs(String),
    #[error("the kernel refused the eBPF programs: {0}")]
    Bpf(String),
    #[error("{0}")]
    Output(String),
    #[error("{0}")]
    Other(String),
    /// What was asked cannot work here (e.g. a sampling rate over the kernel's limit).
    #[error("{0}")]
    Usage(String),
    /// The reader of standard output closed the pipe: a way to stop, not a failure.
    #[error("the reader of standard output is gone")]
    ReaderGone,
}

impl RecordError {
    /// Exit codes, documented in `--help`'s man page and docs/RECORD.md.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            RecordError::Other(_) => 1,
            RecordError::Usage(_) => 2,
            RecordError::NoSuchProcess(_) => 3,
            RecordError::Ambiguous(_) => 4,
            RecordError::NotPermitted(_) => 5,
            RecordError::Tracefs(_) => 6,
            RecordError::Bpf(_) => 7,
            RecordError::Output(_) => 8,
            RecordError::ReaderGone => 0,
        })
    }
}

pub type Result<T> = std::result::Result<T, RecordError>;
