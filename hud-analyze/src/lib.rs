//! hud-analyze as a library: read a capture into a model, and views over it.
//!
//! Today: [`summary`], the capture's facts and counts (what `hud-analyze info` prints).

pub mod summary;
