//! The API's one error type: every failure becomes a status code and `{"error": "…"}`. Client
//! mistakes name what was wrong; internal errors are logged in full and answered opaquely.
//! Also the JSON and path extractors whose rejections take the same shape.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::addon_processor::AddonInputError;
use crate::db::api::LinkError;
use crate::db::console::ConsoleError;
use crate::scheduler::StartError;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
}

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the request lacks what it needs to be trusted (a CSRF token).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    /// Over a rate limit: answered with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_seconds: u64,
    },
    /// A part of the service is not configured, not running, or shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure: logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A database that cannot be reached is not a bug: say so with 503, which clients
        // (and the companion) retry, instead of an opaque 500.
        if let ApiError::Internal(err) = &self
            && crate::db::is_unavailable(err)
        {
            tracing::warn!(error = %format!("{err:#}"), "database unavailable answering a request");
            return ApiError::Unavailable("the database is unavailable; try again shortly".into())
                .into_response();
        }
        let status = self.status();
        if let ApiError::TooManyRequests {
            message,
            retry_after_seconds,
        } = self
        {
            return (
                status,
                [(RETRY_AFTER, retry_after_seconds.to_string())],
                Json(ErrorBody { error: message }),
            )
                .into_response();
        }
        let message = match &self {
            ApiError::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error answering a request");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => ApiError::Unprocessable(message),
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::BadRequest("expected a JSON body (Content-Type: application/json)".into())
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("the request body is too large".into())
            }
            _ => ApiError::BadRequest(message),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<ConsoleError> for ApiError {
    fn from(err: ConsoleError) -> Self {
        match err {
            ConsoleError::NotFound(message) => ApiError::NotFound(message),
            ConsoleError::Conflict(message) => ApiError::Conflict(message),
            ConsoleError::Invalid(message) => ApiError::Unprocessable(message),
            ConsoleError::Database(err) => ApiError::Internal(err),
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(err: LinkError) -> Self {
        match err {
            LinkError::NotFound(message) => ApiError::NotFound(message),
            LinkError::Conflict(message) => ApiError::Conflict(message),
            LinkError::Database(err) => ApiError::Internal(err),
        }
    }
}

/// A refused addon export: unreadable is 400, too large 413, readable but empty or invalid 422.
impl From<AddonInputError> for ApiError {
    fn from(err: AddonInputError) -> Self {
        let message = err.to_string();
        match err {
            AddonInputError::MalformedJson { .. } | AddonInputError::MalformedLua(_) => {
                ApiError::BadRequest(message)
            }
            AddonInputError::TooLarge { .. } => ApiError::PayloadTooLarge(message),
            AddonInputError::Empty | AddonInputError::Invalid { .. } => {
                ApiError::Unprocessable(message)
            }
        }
    }
}

impl From<StartError> for ApiError {
    fn from(err: StartError) -> Self {
        match err {
            StartError::ShuttingDown | StartError::NotConfigured(_) => {
                ApiError::Unavailable(err.to_string())
            }
            StartError::Database(err) => ApiError::Internal(err),
        }
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query` whose rejections are [`ApiError`]s (400 naming the parameter).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[cfg(test)]
mod tests {
    use guild_sync_core::addon::{AddonExport, MAX_UPLOAD_BYTES};

    use super::*;

    #[test]
    fn upload_errors_separate_malformed_from_invalid_and_empty() {
        let cases: Vec<(Vec<u8>, u16, &str)> = vec![
            (b"{not json".to_vec(), 400, "malformed JSON"),
            (b"".to_vec(), 400, "empty"),
            (b"[1]".to_vec(), 422, "object"),
            (b"{}".to_vec(), 422, "no characters"),
            (br#"{"characters": []}"#.to_vec(), 422, "no characters"),
            (br#"{"characters": {}}"#.to_vec(), 422, "characters: expected an array"),
            (br#"{"characters": [7]}"#.to_vec(), 422, "characters[0]: expected an object"),
            (
                br#"{"characters": [{"name": "A", "realm": "B", "level": "80"}]}"#.to_vec(),
                422,
                "characters[0].level: expected an integer",
            ),
            (
                br#"{"characters": [{"name": "A", "realm": "B"}, {"name": "", "realm": "B"}]}"#
                    .to_vec(),
                422,
                "characters[1].name",
            ),
            (
                br#"{"characters": [{"name": "A", "realm": "B", "rank": 12}]}"#.to_vec(),
                422,
                "characters[0].rank",
            ),
            (
                br#"{"characters": [{"name": "A"}]}"#.to_vec(),
                422,
                "characters[0].realm",
            ),
            (
                br#"{"characters": [{"name": "A", "realm": "B", "is_online": "yes"}]}"#.to_vec(),
                422,
                "characters[0].is_online",
            ),
            (
                br#"{"characters": [{"name": "A", "realm": "Sen'jin"}, {"name": "a", "realm": "Senjin"}]}"#
                    .to_vec(),
                422,
                "appears twice",
            ),
            (vec![b' '; MAX_UPLOAD_BYTES + 1], 413, "limit"),
        ];
        for (body, status, needle) in cases {
            let err = AddonExport::from_upload_json(&body).expect_err("refused");
            let message = err.to_string();
            assert_eq!(
                ApiError::from(err).status().as_u16(),
                status,
                "{}: {message}",
                String::from_utf8_lossy(&body[..body.len().min(80)])
            );
            assert!(
                message.contains(needle),
                "{message} should contain {needle}"
            );
        }
    }
}
