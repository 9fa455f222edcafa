//! `guild_identity.sync_log`: one row per pipeline run, its status typed ([`RunState`]).
//!
//! # Why `source` stays text
//!
//! `status` is a closed set the schema enforces (a CHECK constraint), so it decodes into an enum
//! and an unknown value is an error. `source` is deliberately left a `String`:
//! - It has no CHECK constraint: `sync_log` is the service's history, and the status endpoint
//!   and console list whatever was recorded, including rows written by older versions under
//!   names that no longer exist. Decoding it into a closed enum would turn one such historical
//!   row into a failed `GET /api/guild-sync/status` and an empty overview page.
//! - Each writer owns its name as a constant next to the code that runs it (the stage modules'
//!   `SOURCE`, `PipelineKind::source`, `"check"`, `"report"`), and nothing branches on a source
//!   read back except to find one of those constants (role sync's freshness check, the overview).
//! - The recorder is generic ([`crate::run_recorder::record_run`] takes any name), and the tests
//!   record runs under their own names (`"test"`).

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use super::{Text, decodes_text};

/// `sync_log.source` of a Battle.net roster sync. Named here, below the stage that writes it
/// ([`crate::db_sync::SOURCE`]), because the history's baseline reads it back
/// ([`super::member_events`]) and `db/` imports nothing from the layers above it.
pub const BATTLE_NET_SOURCE: &str = "blizzard";
/// `sync_log.source` of a Discord member sync ([`crate::discord_sync::SYNC_SOURCE`]); here for
/// the same reason as [`BATTLE_NET_SOURCE`].
pub const DISCORD_SOURCE: &str = "discord";

/// How a run ended, as stored in `sync_log.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Success,
    /// Done, but some items failed (e.g. profiles that could not be fetched).
    Partial,
    /// Refused or failed; nothing was changed.
    Error,
    /// Not run because another pipeline held the lock.
    Skipped,
    /// Left `running` by a process that was stopped; closed by the next run that took the
    /// pipeline lock.
    Abandoned,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Success,
        RunStatus::Partial,
        RunStatus::Error,
        RunStatus::Skipped,
        RunStatus::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Partial => "partial",
            RunStatus::Error => "error",
            RunStatus::Skipped => "skipped",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// `sync_log.status` as read back: a run still going, or how it ended. Serialised as the stored
/// text (`running`, `success`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Finished(RunStatus),
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished(status) => status.as_str(),
        }
    }

    fn parse(s: &str) -> Option<RunState> {
        if s == "running" {
            return Some(RunState::Running);
        }
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .map(RunState::Finished)
    }
}

decodes_text!(RunState, "sync_log.status", RunState::parse);

/// Counts every run records in the dedicated columns (characters for Battle.net and addon runs;
/// Discord runs put their member counts here too, and everything else in `details`). Fill it
/// with the builder methods, which take any count a stage keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub found: Option<i32>,
    pub updated: Option<i32>,
    pub new: Option<i32>,
    pub removed: Option<i32>,
}

/// A count for an `int4` column: one past `i32::MAX` is stored as `i32::MAX` rather than lost.
fn column(n: impl TryInto<i32>) -> Option<i32> {
    Some(n.try_into().unwrap_or(i32::MAX))
}

impl RunCounts {
    pub fn found(self, n: impl TryInto<i32>) -> Self {
        RunCounts {
            found: column(n),
            ..self
        }
    }

    pub fn updated(self, n: impl TryInto<i32>) -> Self {
        RunCounts {
            updated: column(n),
            ..self
        }
    }

    pub fn new(self, n: impl TryInto<i32>) -> Self {
        RunCounts {
            new: column(n),
            ..self
        }
    }

    pub fn removed(self, n: impl TryInto<i32>) -> Self {
        RunCounts {
            removed: column(n),
            ..self
        }
    }
}

/// Where a run spent its time, by part, in seconds (`sync_log.load_seconds`, `plan_seconds`,
/// `apply_seconds`): reading its inputs, deciding, and writing the database. `None` where a
/// stage has no such part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimings {
    pub load_seconds: Option<f64>,
    pub plan_seconds: Option<f64>,
    pub apply_seconds: Option<f64>,
}

/// A `sync_log` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncLogRow {
    pub id: i64,
    /// Text on purpose: see the module docs.
    pub source: String,
    #[sqlx(try_from = "Text")]
    pub status: RunState,
    pub characters_found: Option<i32>,
    pub characters_updated: Option<i32>,
    pub characters_new: Option<i32>,
    pub characters_removed: Option<i32>,
    pub details: serde_json::Value,
    pub error_message: Option<String>,
    pub duration_seconds: Option<f64>,
    pub load_seconds: Option<f64>,
    pub plan_seconds: Option<f64>,
    pub apply_seconds: Option<f64>,
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

/// Close a run with its outcome and where it spent its time (`StageTimings::default()` where
/// it has no parts).
#[allow(clippy::too_many_arguments)]
pub async fn close(
    db: impl PgExecutor<'_>,
    id: i64,
    status: RunStatus,
    counts: RunCounts,
    details: &serde_json::Value,
    error_message: Option<&str>,
    duration_seconds: f64,
    timings: StageTimings,
) -> Result<()> {
    sqlx::query(
        "UPDATE guild_identity.sync_log
         SET status = $2, characters_found = $3, characters_updated = $4, characters_new = $5,
             characters_removed = $6, details = $7, error_message = $8, duration_seconds = $9,
             load_seconds = $10, plan_seconds = $11, apply_seconds = $12,
             completed_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(counts.found)
    .bind(counts.updated)
    .bind(counts.new)
    .bind(counts.removed)
    .bind(details)
    .bind(error_message)
    .bind(duration_seconds)
    .bind(timings.load_seconds)
    .bind(timings.plan_seconds)
    .bind(timings.apply_seconds)
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
    // A skip scan of `sync_log_source_started_idx`: the next source after each, then that
    // source's newest run, a few index probes per source. `DISTINCT ON` sorted the whole
    // history on every Overview view, a cost that grows with every run (EXPLAIN ANALYZE at
    // 2,150 runs of four sources: 8 ms → 0.3 ms; issue 16 §3).
    Ok(sqlx::query_as(
        "WITH RECURSIVE sources (source) AS (
             SELECT min(source) FROM guild_identity.sync_log
             UNION ALL
             SELECT (SELECT min(l.source) FROM guild_identity.sync_log l WHERE l.source > s.source)
             FROM sources s WHERE s.source IS NOT NULL)
         SELECT latest.* FROM sources s
         CROSS JOIN LATERAL (
             SELECT * FROM guild_identity.sync_log l WHERE l.source = s.source
             ORDER BY l.started_at DESC, l.id DESC LIMIT 1) latest
         ORDER BY latest.source",
    )
    .fetch_all(db)
    .await?)
}

/// When each source last succeeded (`(source, unix seconds)`), for the metrics at start-up.
/// When the latest successful run of `source` started.
pub async fn last_success(db: impl PgExecutor<'_>, source: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT max(started_at) FROM guild_identity.sync_log
         WHERE source = $1 AND status = 'success'",
    )
    .bind(source)
    .fetch_one(db)
    .await?)
}

pub async fn last_success_per_source(db: impl PgExecutor<'_>) -> Result<Vec<(String, f64)>> {
    Ok(sqlx::query_as(
        "SELECT source, extract(epoch FROM max(completed_at))::float8
         FROM guild_identity.sync_log
         WHERE status = 'success' AND completed_at IS NOT NULL
         GROUP BY source",
    )
    .fetch_all(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_status_reads_back_as_itself_and_others_are_refused() {
        for state in [RunState::Running]
            .into_iter()
            .chain(RunStatus::ALL.map(RunState::Finished))
        {
            let text = Text(state.as_str().to_owned());
            assert_eq!(RunState::try_from(text), Ok(state));
        }
        let err = RunState::try_from(Text("done".into())).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown sync_log.status \"done\" in the database"
        );
    }

    #[test]
    fn counts_past_the_column_saturate_instead_of_vanishing() {
        let counts = RunCounts::default().found(3usize).new(u64::MAX);
        assert_eq!(counts.found, Some(3));
        assert_eq!(counts.new, Some(i32::MAX));
        assert_eq!(counts.updated, None);
    }
}
