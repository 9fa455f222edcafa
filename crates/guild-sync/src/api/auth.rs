//! Authentication, as middleware so it runs before a request body is read: officers send
//! `Authorization: Bearer $GUILD_SYNC_ADMIN_TOKEN`, the companion sends `X-API-Key:
//! $GUILD_SYNC_API_KEY`; both compared in constant time. With no secret configured the routes
//! it guards answer 503 — never open.
//!
//! Owns [`Officer`], the one extractor every officer handler takes: it carries who acted, which
//! the action history records. The console's session cookie (issue 16, `src/web/`) and Discord
//! identities (issue 17) extend [`authenticate`], so handlers never change.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::addon_processor::API_KEY_HEADER;
use crate::config::Secret;

/// Who the admin bearer token stands for in the action history.
pub const ADMIN_TOKEN_OFFICER: &str = "admin token";

/// An authenticated officer: who is acting. Take it as a handler argument to require officer
/// auth and to record the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Officer {
    /// A human-readable name of the credential holder, stored in `officer_actions.officer`
    /// (`"admin token"` for the bearer token).
    pub who: String,
}

/// Authenticate the request's credentials. Extend here to accept more kinds of credential
/// (a console session cookie, a Discord login): the middleware and the extractor both call it.
pub fn authenticate(state: &AppState, parts: &Parts) -> Result<Officer, ApiError> {
    let Some(expected) = state.admin_token() else {
        return Err(ApiError::Unavailable(
            "officer endpoints are disabled: GUILD_SYNC_ADMIN_TOKEN is not configured".into(),
        ));
    };
    let presented = parts
        .headers
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
    Ok(Officer {
        who: ADMIN_TOKEN_OFFICER.to_string(),
    })
}

impl FromRequestParts<AppState> for Officer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The middleware already authenticated the request: reuse its answer.
        if let Some(officer) = parts.extensions.get::<Officer>() {
            return Ok(officer.clone());
        }
        authenticate(state, parts)
    }
}

/// Middleware in front of every officer route: refuses unauthenticated requests before any
/// extractor runs (so a bad body never tells an anonymous client anything), and leaves the
/// [`Officer`] in the request's extensions.
pub async fn require_officer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let officer = authenticate(&state, &parts)?;
    parts.extensions.insert(officer);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// Middleware in front of the addon upload routes: the companion's key is checked before the
/// (up to 4 MiB) body is read, so a wrong key costs the server nothing.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = state.api_key() else {
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
