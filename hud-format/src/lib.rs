//! Every byte layout of hud.
//!
//! - [`wire`]: the records eBPF writes into the ring buffer. `no_std`, always available.
//! - `capture` feature: the capture container ([`frame`], [`types`]), documented in docs/FORMAT.md.
//! - `writer` feature: [`writer::CaptureWriter`], frame by frame to any `Write`.
//! - `reader` feature: [`reader::Capture`] (mmap, zero-copy, parallel) and [`reader::FrameStream`].
//! - `elf` feature: [`elf`], the build-id note both the recorder and the analyzer read.
//! - `cli-docs` feature: [`cli_docs`], man pages and completions from a binary's clap definitions.
//! - `symbol-cache` feature: [`symbol_cache`], the analyzer's symbol cache files.
#![cfg_attr(
    not(any(
        feature = "capture",
        feature = "cli-docs",
        feature = "elf",
        feature = "symbol-cache"
    )),
    no_std
)]

pub mod wire;

#[cfg(feature = "capture")]
pub mod columns;

#[cfg(feature = "capture")]
pub mod chunk_tasks;
#[cfg(feature = "capture")]
pub mod error;
#[cfg(feature = "capture")]
pub mod frame;
#[cfg(feature = "capture")]
pub mod pipe;
#[cfg(feature = "capture")]
pub mod ring;
#[cfg(feature = "capture")]
pub mod types;
#[cfg(feature = "capture")]
pub mod units;

#[cfg(feature = "writer")]
pub mod writer;

#[cfg(feature = "reader")]
pub mod reader;

#[cfg(feature = "cli-docs")]
pub mod cli_docs;

#[cfg(feature = "elf")]
pub mod elf;

#[cfg(feature = "symbol-cache")]
pub mod symbol_cache;

#[cfg(feature = "capture")]
pub use error::Error;

#[cfg(feature = "writer")]
pub mod synth;

#[cfg(all(feature = "writer", feature = "reader"))]
pub mod craft;
