//! guild-sync-core: the decisions of guild-sync, free of I/O. Name normalization, note parsing,
//! fuzzy scoring, the match plan, integrity findings, report rendering and the SavedVariables
//! parser live here. This crate must not depend on tokio, sqlx, axum, reqwest or twilight, so
//! everything in it is testable without a database or network.

pub mod addon;
pub mod candidates;
pub mod claims;
pub mod fuzzy;
pub mod integrity;
pub mod matching;
pub mod names;
pub mod notes;
pub mod report;
pub mod roles;
pub mod roster;
pub mod savedvars;
pub mod text;
