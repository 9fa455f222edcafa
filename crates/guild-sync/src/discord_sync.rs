//! discord_sync: Discord members → `guild_identity.discord_users`, as a full sync and as
//! real-time member events. Never reads or writes player links. (Issue 4 builds this.)

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::{Config, RemovalGuard};

/// Where the member list comes from.
#[derive(Debug, Clone)]
pub enum DiscordInput {
    /// The live Discord REST API, configured per SPEC §6.
    Live,
    /// A `{roles, members}` file in the API's shapes.
    File(PathBuf),
}

/// What a Discord member sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiscordSyncStats {}

/// Sync every member into `discord_users` as one recorded run (`sync_log.source = 'discord'`).
pub async fn run(
    _pool: &PgPool,
    _config: &Config,
    _input: DiscordInput,
    _guard: RemovalGuard,
) -> Result<DiscordSyncStats> {
    bail!("the Discord member sync is not built yet (issue 4)")
}
