//! Authentication, as middleware so it runs before a request body is read: officers send
//! `Authorization: Bearer $GUILD_SYNC_ADMIN_TOKEN`, the companion sends `X-API-Key:
//! $GUILD_SYNC_API_KEY`; both compared in constant time. With no secret configured the routes
//! it guards answer 503 — never open.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::addon_processor::API_KEY_HEADER;
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

/// Middleware in front of the addon upload routes: the companion's key is checked before the
/// (up to 4 MiB) body is read, so a wrong key costs the server nothing.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.api_key else {
        return Err(ApiError::Unavailable(
            "addon uploads are disabled: GUILD_SYNC_API_KEY is not configured".into(),
        ));
    };
    let presented = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized(format!("missing {API_KEY_HEADER} header")))?;
    if !secret_matches(presented, expected) {
        return Err(ApiError::Unauthorized(format!("invalid {API_KEY_HEADER}")));
    }
    Ok(next.run(request).await)
}

/// Whether a presented credential equals the configured secret, compared in constant time so
/// response timing does not leak how much of a guess was right.
pub fn secret_matches(presented: &str, expected: &Secret) -> bool {
    // ct_eq answers false for slices of different length without comparing their bytes.
    bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes()))
}
