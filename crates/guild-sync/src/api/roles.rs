//! `/api/roles/*`: the Discord role sync for officers (issue 18) — the newest stored plan with
//! its guard status, and the approval that applies that exact plan. Handlers only translate
//! HTTP ↔ [`crate::role_sync`], which takes the pipeline lock and runs every guard.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use guild_sync_core::roles::{ChangeResult, RoleAction, RoleRunStatus};

use super::auth::Officer;
use super::error::{ApiError, ApiPath, ErrorBody};
use super::{AppState, served, text_enum};
use crate::db::roles;
use crate::role_sync::{self, ApprovalError};

fn run_status_schema() -> utoipa::openapi::Object {
    text_enum(RoleRunStatus::ALL.iter().map(|s| s.as_str()))
}

fn role_action_schema() -> utoipa::openapi::Object {
    text_enum([RoleAction::Add, RoleAction::Remove].map(RoleAction::as_str))
}

fn change_result_schema() -> utoipa::openapi::Object {
    text_enum(ChangeResult::ALL.iter().map(|r| r.as_str()))
}

row_view! {
    /// What the console and `GET /api/roles/plans/latest` show about the newest stored plan.
    pub struct LatestPlan from role_sync::LatestPlan {
        pub plan_id: i64,
        pub created_at: DateTime<Utc>,
        pub summary: String,
        /// The changes, as stored (`discord_id`, `display_name`, `role`, `action`, `reason`).
        #[schema(value_type = Vec<Object>)]
        pub changes: serde_json::Value,
        pub linked_members: i64,
        pub members_changed: i64,
        pub approved_at: Option<DateTime<Utc>>,
        pub approved_by: Option<String>,
        /// The apply run made from it, if any.
        pub applied_run_id: Option<i64>,
        /// Whether a fresh plan is still exactly this one.
        pub current: bool,
        /// Why approving it now would be refused by a guard checked without calling Discord
        /// (sources, staleness, already applied); `None` when those hold. The mass-change guard
        /// is not listed: the approval lifts it. The Discord pre-flight runs on approval.
        pub refusal: Option<String>,
    }
}

row_view! {
    /// How an apply or undo ended.
    pub struct RunOutcome from role_sync::RunOutcome {
        pub run_id: i64,
        #[schema(schema_with = run_status_schema)]
        pub status: RoleRunStatus,
        pub reason: Option<String>,
        pub applied: usize,
        pub verified: usize,
        pub requests: usize,
        pub changes: Vec<RoleChangeRow> => served,
    }
}

row_view! {
    /// One change as recorded in `role_changes`.
    pub struct RoleChangeRow from roles::RoleChangeRow {
        pub discord_id: String,
        pub role_name: String,
        pub role_id: Option<String>,
        #[schema(schema_with = role_action_schema)]
        pub action: RoleAction,
        #[schema(schema_with = change_result_schema)]
        pub result: ChangeResult,
        pub error: Option<String>,
    }
}

impl From<ApprovalError> for ApiError {
    fn from(err: ApprovalError) -> Self {
        match err {
            ApprovalError::NotConfigured(m) => ApiError::Unavailable(m),
            ApprovalError::NotFound(m) => ApiError::NotFound(m),
            ApprovalError::Conflict(m) => ApiError::Conflict(m),
            ApprovalError::Failed(e) => ApiError::Internal(e),
        }
    }
}

/// The newest stored role plan: its changes per member, whether it is still current, and why
/// approving it would be refused (sources, staleness, already applied), if it would.
#[utoipa::path(get, path = "/api/roles/plans/latest", tag = "roles",
    security(("bearer" = [])),
    responses((status = 200, body = LatestPlan), (status = 401, body = ErrorBody),
        (status = 404, description = "No plan stored yet", body = ErrorBody)))]
pub async fn latest_plan(
    State(state): State<AppState>,
    _officer: Officer,
) -> Result<Json<LatestPlan>, ApiError> {
    role_sync::latest(&state.pool, &state.config)
        .await?
        .map(|plan| Json(plan.into()))
        .ok_or_else(|| ApiError::NotFound("no role plan stored yet".into()))
}

/// Approve plan `id`: apply that exact plan if a fresh plan still equals it and every guard
/// holds (the approval lifts the mass-change guard). Answers the run.
#[utoipa::path(post, path = "/api/roles/plans/{id}/approve", tag = "roles",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The plan's id")),
    responses((status = 200, description = "Applied; the run (`status` may be `stopped`)", body = RunOutcome),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Stale, already applied, refused by a guard, or the pipeline lock is taken", body = ErrorBody),
        (status = 503, description = "Discord is not configured", body = ErrorBody)))]
pub async fn approve_plan(
    State(state): State<AppState>,
    officer: Officer,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RunOutcome>, ApiError> {
    Ok(Json(
        role_sync::approve(&state.pool, &state.config, id, &officer.who)
            .await?
            .into(),
    ))
}
