//! The companion (SPEC §2) lives in its own crate, `guild-sync-companion`, so it builds for the
//! officer's Windows or macOS gaming PC without the service's database, server and Discord
//! client. This module re-exports it under its SPEC name for the `companion` subcommand and the
//! end-to-end tests against the real server. The service's key is the same
//! [`guild_sync_core::secret::Secret`] the companion takes, so it is handed over as it is.

pub use guild_sync_companion::{
    Companion, CompanionOptions, CompanionState, Delivery, FileCheck, UploadClient, UploadError,
    default_state_file,
};
