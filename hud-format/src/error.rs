//! Errors a user can act on: each message says what is wrong with which capture.

use crate::frame::Version;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a hud capture (it starts with {start:02x?}, a capture starts with \"HUDCAPT\")")]
    NotACapture { start: Vec<u8> },
    #[error("the capture is cut before its header ({len} bytes); nothing to read")]
    TooShort { len: usize },
    #[error(
        "this capture was written by a newer hud (format {found}); this hud reads format {supported}.x: upgrade hud-analyze"
    )]
    NewerVersion { found: Version, supported: u16 },
    #[error("the capture is corrupt at byte {offset}: {reason}")]
    CorruptFrame { offset: u64, reason: String },
    #[error("the capture has no header frame at its start")]
    MissingHeader,
    #[error("cannot encode the capture: {0}")]
    Encode(String),
    #[error(
        "the capture's frames up to byte {offset} decompress to {declared} bytes, over the \
         reader's limit of {limit} bytes ({}): a damaged or crafted capture? \
         --max-decompressed raises the limit",
        if *explicit { "--max-decompressed" } else { "32 times the capture's size, at most 16 GiB" }
    )]
    OverBudget {
        offset: u64,
        declared: u64,
        limit: u64,
        explicit: bool,
    },
    #[error("{path} is {what}, not a capture file{}", if *what == "a FIFO" { " (read pipes and FIFOs as a stream)" } else { "" })]
    NotAFile { path: String, what: &'static str },
}

impl Error {
    /// What is wrong, without where (for a [`crate::reader::Damage`], which says where itself).
    pub fn into_reason(self) -> String {
        match self {
            Error::CorruptFrame { reason, .. } => reason,
            other => other.to_string(),
        }
    }

    /// The byte of the capture the error is about, when it is about one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::CorruptFrame { offset, .. } | Error::OverBudget { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
