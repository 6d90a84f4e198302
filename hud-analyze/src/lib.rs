//! hud-analyze as a library: read a capture into a model, symbolize it offline, classify the
//! threads, detect what blocks the runtime, and show one analysis through several views.
//!
//! Data flows one way: [`source`] (file or stream) → [`model`] (built chunk by chunk) →
//! [`symbols`] → [`analysis`] (roles, blockers, hotspots, diagnostics; any time window) →
//! [`view`] (info, report; each reads the analysis and recomputes nothing). [`pipeline`] ties
//! them, and [`live`] drives it from a growing capture; progress goes through an [`observer::Observer`], so the library never owns the terminal.

pub mod analysis;
pub mod debuginfod;
pub mod error;
pub mod live;
pub mod model;
pub mod objects;
pub mod observer;
pub mod pipeline;
pub mod source;
pub mod source_files;
pub mod symbols;
pub mod unwind;
pub mod view;

pub use analysis::Analysis;
pub use error::AnalyzeError;
