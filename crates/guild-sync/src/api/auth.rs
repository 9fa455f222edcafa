//! Officer authentication: `Authorization: Bearer $GUILD_SYNC_ADMIN_TOKEN`, compared in
//! constant time. With no token configured the officer routes answer 503 — never open.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::Secret;

/// Middleware in front of every officer route.
pub async fn require_officer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(ApiError::Unavailable(
            "officer endpoints are disabled: GUILD_SYNC_ADMIN_TOKEN is not configured".into(),
        ));
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(ApiError::Unauthorized(
            "missing Authorization: Bearer token".into(),
        ));
    };
    if !secret_matches(presented, expected) {
        return Err(ApiError::Unauthorized("invalid bearer token".into()));
    }
    Ok(next.run(request).await)
}

/// Whether a presented credential equals the configured secret, compared in constant time so
/// response timing does not leak how much of a guess was right.
pub fn secret_matches(presented: &str, expected: &Secret) -> bool {
    // ct_eq answers false for slices of different length without comparing their bytes.
    bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes()))
}
