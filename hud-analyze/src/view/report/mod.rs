//! `hud-analyze report`: the findings as the `hud.report/2` JSON schema ([`schema`]), and that
//! schema printed for people ([`text`]). The text is rendered from the schema so the two can
//! never disagree.

pub mod schema;
pub mod text;

pub use schema::{Report, SCHEMA};
