//! db_sync: the Battle.net roster and character profiles → `guild_identity.wow_characters`.
//! (Issue 3 builds this; the addon half lives in [`addon`].)

pub mod addon;

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::{Config, RemovalGuard};

/// Where the roster comes from.
#[derive(Debug, Clone)]
pub enum BlizzardInput {
    /// The live Battle.net API, configured per SPEC §6.
    Live,
    /// `roster.json` + `profiles/{realm}/{name}.json` in this directory.
    Dir(PathBuf),
}

/// What a Battle.net sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BlizzardSyncStats {}

/// Sync the roster into `wow_characters` as one recorded run (`sync_log.source = 'blizzard'`).
pub async fn run(
    _pool: &PgPool,
    _config: &Config,
    _input: BlizzardInput,
    _guard: RemovalGuard,
    _show_progress: bool,
) -> Result<BlizzardSyncStats> {
    bail!("the Battle.net sync is not built yet (issue 3)")
}
