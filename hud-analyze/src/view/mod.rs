//! Views of one analysis. Each reads [`crate::analysis::Analysis`] (and the findings of a window)
//! and recomputes nothing: `info` (what a capture holds), `report` (text and JSON), `tui` (the cockpit),
//! `export` (files for other tools). They word things alike through `wording` and convert units
//! through `units`, never by importing from each other.

pub mod diff;
pub mod export;
pub mod info;
pub mod report;
pub mod tui;
pub mod units;
pub mod wording;

pub use wording::{file_line, short_path};
