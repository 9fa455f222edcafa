//! `guild_identity.sync_log`: one row per pipeline run.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

/// Counts every run records in the dedicated columns (characters for Battle.net and addon runs;
/// Discord runs put their member counts here too, and everything else in `details`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub found: Option<i32>,
    pub updated: Option<i32>,
    pub new: Option<i32>,
    pub removed: Option<i32>,
}

/// A `sync_log` row.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct SyncLogRow {
    pub id: i64,
    pub source: String,
    pub status: String,
    pub characters_found: Option<i32>,
    pub characters_updated: Option<i32>,
    pub characters_new: Option<i32>,
    pub characters_removed: Option<i32>,
    pub details: serde_json::Value,
    pub error_message: Option<String>,
    pub duration_seconds: Option<f64>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Open a run in state `running`; returns its id.
pub async fn open(db: impl PgExecutor<'_>, source: &str) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO guild_identity.sync_log (source, status) VALUES ($1, 'running') RETURNING id",
    )
    .bind(source)
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// Close a run with its outcome.
pub async fn close(
    db: impl PgExecutor<'_>,
    id: i64,
    status: &str,
    counts: RunCounts,
    details: &serde_json::Value,
    error_message: Option<&str>,
    duration_seconds: f64,
) -> Result<()> {
    sqlx::query(
        "UPDATE guild_identity.sync_log
         SET status = $2, characters_found = $3, characters_updated = $4, characters_new = $5,
             characters_removed = $6, details = $7, error_message = $8, duration_seconds = $9,
             completed_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(counts.found)
    .bind(counts.updated)
    .bind(counts.new)
    .bind(counts.removed)
    .bind(details)
    .bind(error_message)
    .bind(duration_seconds)
    .execute(db)
    .await?;
    Ok(())
}

/// One run by id.
pub async fn get(db: impl PgExecutor<'_>, id: i64) -> Result<Option<SyncLogRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM guild_identity.sync_log WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// The most recent run of every source.
pub async fn latest_per_source(db: impl PgExecutor<'_>) -> Result<Vec<SyncLogRow>> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (source) * FROM guild_identity.sync_log
         ORDER BY source, started_at DESC, id DESC",
    )
    .fetch_all(db)
    .await?)
}
