//! Authentication, as middleware so it runs before a request body is read: officers send
//! `Authorization: Bearer $GUILD_SYNC_ADMIN_TOKEN`, the companion sends `X-API-Key:
//! $GUILD_SYNC_API_KEY`; both compared in constant time. With no secret configured the routes
//! it guards answer 503 — never open.
//!
//! Owns [`Officer`], the one extractor every officer handler takes: it carries who acted, which
//! the action history records. Officer routes also accept the console's session cookie (issue
//! 16, [`crate::web::session`]), so a script on a logged-in officer's browser acts as that
//! officer; a request that changes something by session must carry the session's CSRF token in
//! [`CSRF_HEADER`] (the cookie is `SameSite=Strict` too, but one guard should not be the only
//! one). Discord identities (issue 17) extend [`authenticate`] the same way, so handlers never
//! change.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
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

/// The header carrying the console session's CSRF token on API requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";

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
        if parts.headers.contains_key(AUTHORIZATION) || !parts.headers.contains_key(COOKIE) {
            return Err(ApiError::Unauthorized(
                "missing Authorization: Bearer token".into(),
            ));
        }
        return session_officer(expected, parts);
    };
    if !secret_matches(presented, expected) {
        return Err(ApiError::Unauthorized("invalid bearer token".into()));
    }
    Ok(Officer {
        who: ADMIN_TOKEN_OFFICER.to_string(),
    })
}

/// The officer of a console session cookie; a request that is not a read must also carry the
/// session's CSRF token in [`CSRF_HEADER`].
fn session_officer(admin_token: &Secret, parts: &Parts) -> Result<Officer, ApiError> {
    use crate::web::session::{csrf_matches, key_for, session_in};
    let key = key_for(admin_token.expose());
    let Some((value, who)) = session_in(&parts.headers, &key) else {
        return Err(ApiError::Unauthorized(
            "missing Authorization: Bearer token (or a valid console session)".into(),
        ));
    };
    if !parts.method.is_safe() {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !csrf_matches(&key, &value, presented) {
            return Err(ApiError::Forbidden(format!(
                "a console session must send its CSRF token in {CSRF_HEADER} to change anything"
            )));
        }
    }
    Ok(Officer { who })
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
