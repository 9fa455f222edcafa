//! `/api/guild-sync/*`: start pipeline runs, show the last run of every source, and the addon
//! upload routes (reserved here; issue 8 builds them).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::db::sync_log::SyncLogRow;
use crate::scheduler::PipelineKind;

/// A run that was started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Triggered {
    /// The pipeline's `sync_log` id; its row turns from `running` to the outcome.
    pub sync_log_id: i64,
    /// `sync_log.source` of the pipeline row, e.g. `pipeline:blizzard`.
    pub source: String,
}

/// The last run of one source.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: i64,
    pub source: String,
    /// running, success, partial, error or skipped.
    pub status: String,
    pub characters_found: Option<i32>,
    pub characters_updated: Option<i32>,
    pub characters_new: Option<i32>,
    pub characters_removed: Option<i32>,
    /// The run's stats.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub error_message: Option<String>,
    pub duration_seconds: Option<f64>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<SyncLogRow> for RunView {
    fn from(row: SyncLogRow) -> Self {
        RunView {
            id: row.id,
            source: row.source,
            status: row.status,
            characters_found: row.characters_found,
            characters_updated: row.characters_updated,
            characters_new: row.characters_new,
            characters_removed: row.characters_removed,
            details: row.details,
            error_message: row.error_message,
            duration_seconds: row.duration_seconds,
            started_at: row.started_at,
            completed_at: row.completed_at,
        }
    }
}

async fn trigger(
    state: &AppState,
    kind: PipelineKind,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    let source = kind.source().to_string();
    let sync_log_id = state.scheduler.trigger(kind).await?;
    tracing::info!(sync_log_id, source, "pipeline triggered over HTTP");
    Ok((
        StatusCode::ACCEPTED,
        Json(Triggered {
            sync_log_id,
            source,
        }),
    ))
}

/// Start the Battle.net pipeline (sync → match → check → report).
#[utoipa::path(post, path = "/api/guild-sync/blizzard/trigger", tag = "guild-sync",
    security(("bearer" = [])),
    responses((status = 202, body = Triggered), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn trigger_blizzard(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    trigger(&state, PipelineKind::Blizzard).await
}

/// Start the Discord pipeline (member sync → match → check → report).
#[utoipa::path(post, path = "/api/guild-sync/discord/trigger", tag = "guild-sync",
    security(("bearer" = [])),
    responses((status = 202, body = Triggered), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn trigger_discord(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    trigger(&state, PipelineKind::Discord).await
}

/// Send the report of issues not yet notified.
#[utoipa::path(post, path = "/api/guild-sync/report/trigger", tag = "guild-sync",
    security(("bearer" = [])),
    responses((status = 202, body = Triggered), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn trigger_report(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    trigger(&state, PipelineKind::Report).await
}

/// The most recent run of every source (stages and pipelines), with its stats and error.
#[utoipa::path(get, path = "/api/guild-sync/status", tag = "guild-sync",
    security(("bearer" = [])),
    responses((status = 200, body = [RunView]), (status = 401, body = ErrorBody)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<Vec<RunView>>, ApiError> {
    let rows = crate::db::sync_log::latest_per_source(&state.pool).await?;
    Ok(Json(rows.into_iter().map(RunView::from).collect()))
}

const ADDON_NOT_ENABLED: &str = "addon uploads are not enabled yet";

/// Upload an addon export (authenticated by `X-API-Key`). Reserved: built by issue 8.
#[utoipa::path(post, path = "/api/guild-sync/addon-upload", tag = "guild-sync",
    responses((status = 503, body = ErrorBody)))]
pub async fn addon_upload() -> ApiError {
    ApiError::Unavailable(ADDON_NOT_ENABLED.into())
}

/// The last addon upload's processing state. Reserved: built by issue 8.
#[utoipa::path(get, path = "/api/guild-sync/addon-upload/status", tag = "guild-sync",
    responses((status = 503, body = ErrorBody)))]
pub async fn addon_upload_status() -> ApiError {
    ApiError::Unavailable(ADDON_NOT_ENABLED.into())
}
