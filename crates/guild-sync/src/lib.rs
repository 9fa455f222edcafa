//! guild-sync: the service crate. Configuration, the database, the Battle.net and Discord
//! adapters, the pipelines (`db_sync`, `discord_sync`, `identity_engine`, `integrity_checker`,
//! `reporter`), the `scheduler`, the HTTP `api`, the `service` that assembles them, the
//! `companion` and the CLI. Decisions that need no I/O live in the `guild-sync-core` crate;
//! this crate loads, calls the core, and applies.

pub mod addon_processor;
pub mod api;
pub mod bench;
pub mod blizzard_client;
pub mod claims;
pub mod cli;
pub mod companion;
pub mod config;
pub mod database;
pub mod db;
pub mod db_sync;
pub mod demo;
pub mod discord_gateway;
pub mod discord_interactions;
pub mod discord_sender;
pub mod discord_sync;
pub mod identity_engine;
pub mod integrity_checker;
pub mod link_candidates;
pub mod lock_wait;
pub mod metrics;
pub mod pg_cluster;
pub mod reporter;
pub mod role_sync;
pub mod run_recorder;
pub mod scheduler;
pub mod service;
pub mod stamp_cache;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod web;

/// rustls needs one process-wide crypto provider; reqwest and twilight both use rustls and would
/// otherwise panic on the first TLS connection when more than one provider is compiled in.
pub fn install_crypto_provider() {
    // Err means another caller (a test, say) installed it first, which is just as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
