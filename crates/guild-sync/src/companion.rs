//! The companion (SPEC §2) lives in its own crate, `guild-sync-companion`, so it builds for the
//! officer's Windows or macOS gaming PC without the service's database, server and Discord
//! client. This module re-exports it under its SPEC name for the `companion` subcommand and the
//! end-to-end tests against the real server, and lets the service's key type be handed to it.

pub use guild_sync_companion::{
    Companion, CompanionOptions, CompanionState, Delivery, FileCheck, UploadClient, UploadError,
    default_state_file,
};

impl From<crate::config::Secret> for guild_sync_companion::Secret {
    fn from(secret: crate::config::Secret) -> Self {
        guild_sync_companion::Secret::new(secret.expose())
    }
}
