//! identity_engine: links characters and Discord users to players. Loads a snapshot, asks the
//! core crate for a plan, applies it in one transaction. (Issue 5 builds this.)

use anyhow::{Result, bail};
use serde::Serialize;
use sqlx::PgPool;

/// What a matching run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MatchStats {}

/// Run the matcher once as a recorded run (`sync_log.source = 'match'`).
pub async fn run_matching(_pool: &PgPool) -> Result<MatchStats> {
    bail!("the identity engine is not built yet (issue 5)")
}
