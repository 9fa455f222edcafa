//! guild-sync-companion: the part of guild-sync that runs on the officer's gaming PC, next to
//! World of Warcraft (Windows or macOS). It finds the PATTSync SavedVariables file
//! ([`discovery`]), keeps the server's URL and key in the user's config directory ([`settings`],
//! checked once by [`setup`]), starts itself at login ([`autostart`]) and uploads each new export
//! ([`uploader`]) over the contract in [`wire`]. The command line is in [`cli`].
//!
//! It must not grow a database, a server or a Discord client: it is the one file an officer
//! downloads, so it stays small and builds for `x86_64-pc-windows-gnu` from Linux. The export is
//! parsed by `guild-sync-core`, as data, never executed.

pub mod autostart;
pub mod cli;
pub mod discovery;
pub mod settings;
pub mod setup;
pub mod uploader;
pub mod wire;

pub use uploader::{
    Companion, CompanionOptions, CompanionState, Delivery, FileCheck, UploadClient, UploadError,
    default_state_file,
};

/// The companion's API key: never printed, never logged (only stored in the settings file).
pub use guild_sync_core::secret::Secret;

/// rustls needs a process-wide crypto provider for reqwest. The companion brings ring; inside the
/// service binary another provider may already be installed, which serves just as well.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
