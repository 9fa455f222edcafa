//! `/api/roles/*`: the Discord role sync for officers (issue 18) — the newest stored plan with
//! its guard status, and the approval that applies that exact plan. Handlers only translate
//! HTTP ↔ [`crate::role_sync`], which takes the pipeline lock and runs every guard.

use axum::Json;
use axum::extract::State;

use super::auth::Officer;
use super::error::{ApiError, ApiPath, ErrorBody};
use super::{AppState, served};
use crate::db::roles;
use crate::role_sync::{self, ApprovalError, LatestPlan};

row_view! {
    /// How an apply or undo ended.
    pub struct RunOutcome from role_sync::RunOutcome {
        pub run_id: i64,
        pub status: String,
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
        pub action: String,
        pub result: String,
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
        .map(Json)
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
