//! hud-analyze as a library: read a capture into a model, symbolize it offline, classify the
//! threads, detect what blocks the runtime, and build views over the result.
//!
//! Data flows one way: capture → [`model::Model`] → [`symbolize::Symbols`] → [`classify`] →
//! [`detect::Detection`] → views ([`report::Report`], [`summary::Summary`]).

pub mod analysis;
pub mod classify;
pub mod detect;
pub mod frames;
pub mod hotspots;
pub mod model;
pub mod objects;
pub mod progress;
pub mod report;
pub mod summary;
pub mod symbolize;
