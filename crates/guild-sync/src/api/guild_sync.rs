//! `/api/guild-sync/*`: start pipeline runs, show the last run of every source, and take addon
//! uploads from the companion.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::{AppState, text_enum};
use crate::addon_processor::{self, parse_upload_json};
use crate::db::sync_log::{RunState, RunStatus, SyncLogRow};
use crate::scheduler::PipelineKind;

/// `sync_log.status`: `running`, or how the run ended.
fn run_state_schema() -> utoipa::openapi::Object {
    text_enum(std::iter::once("running").chain(RunStatus::ALL.map(RunStatus::as_str)))
}

/// A run that was started.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Triggered {
    /// The pipeline's `sync_log` id; its row turns from `running` to the outcome.
    pub sync_log_id: i64,
    /// `sync_log.source` of the pipeline row, e.g. `pipeline:blizzard`.
    pub source: String,
}

row_view! {
    /// The last run of one source.
    pub struct RunView from SyncLogRow {
        pub id: i64,
        pub source: String,
        /// running, success, partial, error, skipped or abandoned.
        #[schema(schema_with = run_state_schema)]
        pub status: &'static str => RunState::as_str,
        pub characters_found: Option<i32>,
        pub characters_updated: Option<i32>,
        pub characters_new: Option<i32>,
        pub characters_removed: Option<i32>,
        /// The run's stats.
        #[schema(value_type = Object)]
        pub details: serde_json::Value,
        pub error_message: Option<String>,
        pub duration_seconds: Option<f64>,
        /// Seconds spent reading inputs, deciding and writing, where the stage has those parts
        /// (a pipeline's own row has each step's under `details.timings`).
        pub load_seconds: Option<f64>,
        pub plan_seconds: Option<f64>,
        pub apply_seconds: Option<f64>,
        pub started_at: DateTime<Utc>,
        pub completed_at: Option<DateTime<Utc>>,
    }
}

row_view! {
    /// The upload endpoint's `202` answer.
    pub struct UploadAccepted from addon_processor::UploadAccepted {
        /// The `sync_log` id of the addon run the upload started.
        pub run_id: i64,
        /// The accepted export's `export_time` (unix seconds), when the body carried one.
        pub export_time: Option<i64>,
        /// Characters in the accepted export.
        pub characters: usize,
        /// The earlier upload, still waiting for its turn, that this one replaced: only the newest
        /// export is applied, so that one's run ends `skipped` without applying it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub replaced_run_id: Option<i64>,
    }
}

/// The status endpoint's answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UploadStatus {
    pub last_upload: Option<LastUpload>,
}

row_view! {
    /// The last upload the server accepted, and how its addon run went.
    pub struct LastUpload from addon_processor::LastUpload {
        pub run_id: i64,
        pub received_at: DateTime<Utc>,
        /// The export's `export_time` (unix seconds): the companion uploads only newer exports.
        pub export_time: Option<i64>,
        pub uploaded_by: Option<String>,
        pub addon_version: Option<String>,
        pub characters: usize,
        /// Characters matched to a row (`None` while the run is still going).
        pub matched: Option<usize>,
        /// Characters with no row (`None` while the run is still going).
        pub unknown: Option<usize>,
        /// The run's `sync_log.status`.
        #[schema(schema_with = run_state_schema)]
        pub status: &'static str => RunState::as_str,
        pub error: Option<String>,
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
        (status = 503, body = ErrorBody,
         description = "not configured (the error names the settings), or stopping")))]
pub async fn trigger_blizzard(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    trigger(&state, PipelineKind::Blizzard).await
}

/// Start the Discord pipeline (member sync → match → check → report).
#[utoipa::path(post, path = "/api/guild-sync/discord/trigger", tag = "guild-sync",
    security(("bearer" = [])),
    responses((status = 202, body = Triggered), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody,
         description = "not configured (the error names the settings), or stopping")))]
pub async fn trigger_discord(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    trigger(&state, PipelineKind::Discord).await
}

/// Send the report of issues not yet notified.
#[utoipa::path(post, path = "/api/guild-sync/report/trigger", tag = "guild-sync",
    security(("bearer" = [])),
    responses((status = 202, body = Triggered), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody,
         description = "not configured (the error names the settings), or stopping")))]
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

/// Upload a PATTSync export (the companion's call; authenticated by `X-API-Key`). The body is
/// validated here (400 malformed, 413 too large, 422 invalid, naming the field); an accepted
/// export runs addon sync → match → check → report through the scheduler, waiting for a
/// running pipeline rather than being dropped — unless a newer upload replaces it while it
/// waits (`replaced_run_id` in the newer one's answer).
#[utoipa::path(post, path = "/api/guild-sync/addon-upload", tag = "guild-sync",
    request_body(content = String, content_type = "application/json",
        description = "`{characters:[…], addon_version, uploaded_by, export_time}`"),
    params(("X-API-Key" = String, Header, description = "GUILD_SYNC_API_KEY")),
    responses((status = 202, body = UploadAccepted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "older than the last applied export"),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody,
         description = "over GUILD_SYNC_UPLOADS_PER_MINUTE for this key; see `Retry-After`"),
        (status = 503, body = ErrorBody)))]
pub async fn addon_upload(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<UploadAccepted>), ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
            "the export is larger than {} bytes",
            guild_sync_core::addon::MAX_UPLOAD_BYTES
        )),
        _ => ApiError::BadRequest(format!("cannot read the request body: {rejection}")),
    })?;
    let export = parse_upload_json(&body)?;
    // Refuse a stale export here, before the 202, so the companion learns it was not applied;
    // the addon run checks again under the lock in case a newer one lands in between.
    crate::db_sync::addon::check_fresh(&state.pool, &export)
        .await?
        .map_err(|stale| ApiError::Conflict(stale.to_string()))?;
    let accepted = addon_processor::UploadAccepted {
        run_id: 0,
        export_time: export.export_time,
        characters: export.characters.len(),
        replaced_run_id: None,
    };
    tracing::info!(
        characters = accepted.characters,
        uploaded_by = export.uploaded_by.as_deref().unwrap_or("unknown"),
        "addon upload accepted"
    );
    let triggered = state.scheduler.trigger_upload(Arc::new(export)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            addon_processor::UploadAccepted {
                run_id: triggered.run_id,
                replaced_run_id: triggered.replaced,
                ..accepted
            }
            .into(),
        ),
    ))
}

/// The last addon sync: when, what it carried, what matched, and its error if it failed.
#[utoipa::path(get, path = "/api/guild-sync/addon-upload/status", tag = "guild-sync",
    params(("X-API-Key" = String, Header, description = "GUILD_SYNC_API_KEY")),
    responses((status = 200, body = UploadStatus), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn addon_upload_status(
    State(state): State<AppState>,
) -> Result<Json<UploadStatus>, ApiError> {
    let last_upload = crate::db_sync::addon::last_upload(&state.pool).await?;
    Ok(Json(UploadStatus {
        last_upload: last_upload.map(LastUpload::from),
    }))
}
