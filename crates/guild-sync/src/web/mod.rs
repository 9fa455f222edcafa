//! The officer console (issue 16): server-rendered HTML pages at `/`, for officers on a laptop
//! or a phone. Plain forms (POST → redirect → GET) that work with JavaScript off; no script at
//! all, one stylesheet embedded in the binary ([`STYLESHEET`]), nothing fetched from elsewhere.
//!
//! Owns the pages, the login session and CSRF ([`session`]), and the security headers every
//! console response carries ([`security_headers`]). It holds no SQL (that is
//! [`crate::db::console`] and [`crate::db::api`]) and runs no stage itself: triggers and uploads
//! go through the [`crate::scheduler::Scheduler`], uploads through the same validation as the
//! API's.
//!
//! # Adding a page
//! One template and one handler: put `templates/NAME.html` (it `{% extends "base.html" %}` and
//! fills `{% block content %}`), a module here with a `#[derive(Template, WebTemplate)]` struct
//! holding `chrome: Chrome` plus the page's data, and a handler taking [`session::Session`] (so
//! the page needs a login) that returns `Result<ThatStruct, Refused>`; add its route in
//! [`router`] and its link in `base.html`'s nav. Forms carry `{{ chrome.csrf }}` in a hidden
//! `csrf` field and the POST handler takes its fields as [`session::CsrfForm<T>`] (no session
//! argument: the form gives it), which refuses a missing or wrong token. Untrusted text needs
//! nothing: askama escapes every `{{ }}`; wrap names in `<bdi>` so right-to-left text cannot
//! reorder the line around it.

pub mod claim;
pub mod issues;
pub mod login;
pub mod overview;
pub mod players;
pub mod review;
pub mod roles;
pub mod runs;
pub mod session;
pub mod unclaimed;
pub mod upload;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::Key;

use crate::api::AppState;
use crate::config::Config;
use crate::scheduler::Schedule;

/// The console's stylesheet, served at `/console.css`.
pub const STYLESHEET: &str = include_str!("../../templates/console.css");

/// The Content-Security-Policy of every console response: no script at all, styles and images
/// only from this origin, forms only to it, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Rows per page on the console's lists.
pub const PAGE_ROWS: i64 = 50;

/// What the console's handlers reach.
#[derive(Clone)]
pub struct WebState {
    pub app: AppState,
    /// Signs the session cookie; derived from the admin token.
    pub key: Key,
    /// Set `Secure` on cookies (the public URL is https).
    pub secure_cookies: bool,
    /// When the scheduled pipelines run, for the Overview.
    pub schedule: Schedule,
    /// Login attempts per client IP.
    pub login_limiter: login::LoginLimiter,
    /// Discord login (officers) and member claims; `None` when not configured.
    pub claims: Option<std::sync::Arc<crate::claims::Claims>>,
    /// `GUILD_SYNC_OFFICER_RANK`: the lowest rank Discord login lets in.
    pub officer_rank: String,
}

impl WebState {
    /// The console over the API's state, configured from `config`, showing `schedule`.
    pub fn new(app: AppState, config: &Config, schedule: Schedule) -> WebState {
        let key = match app.admin_token() {
            Some(token) => session::key_for(token.expose()),
            // No token: nobody can log in; any key will do.
            None => Key::generate(),
        };
        let claims = match crate::claims::Claims::from_config(config) {
            Ok(claims) => claims.map(std::sync::Arc::new),
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "Discord login and member claims disabled: a provider URL is invalid");
                None
            }
        };
        WebState {
            app,
            key,
            secure_cookies: config.console_cookies_secure(),
            schedule,
            login_limiter: login::LoginLimiter::default(),
            claims,
            officer_rank: config.guild_sync_officer_rank.clone(),
        }
    }

    /// Whether anyone can log in to the console: the admin token, or Discord login.
    pub fn logins_enabled(&self) -> bool {
        self.app.admin_token().is_some() || self.claims.is_some()
    }
}

/// The console's routes. Merge it with the API's router (which has the fallback).
pub fn router(state: WebState) -> Router {
    let upload_limit = guild_sync_core::addon::MAX_UPLOAD_BYTES + 64 * 1024;
    Router::new()
        .route("/", get(overview::page))
        .route("/trigger/{kind}", post(overview::trigger))
        .route("/login", get(login::page).post(login::submit))
        .route("/login/discord", get(claim::officer_login))
        .route("/claim", get(claim::page))
        .route("/claim/discord", get(claim::start_discord))
        .route("/claim/battlenet", get(claim::start_battlenet))
        .route(
            crate::claims::DISCORD_CALLBACK_PATH,
            get(claim::discord_callback),
        )
        .route(
            crate::claims::BATTLENET_CALLBACK_PATH,
            get(claim::battlenet_callback),
        )
        .route("/logout", post(login::logout))
        .route("/review", get(review::page))
        .route("/review/{id}/link", post(review::link))
        .route("/review/{id}/dismiss", post(review::dismiss))
        .route("/issues", get(issues::page))
        .route("/issues/{id}/resolve", post(issues::resolve))
        .route("/unclaimed", get(unclaimed::page))
        .route("/unclaimed/link", post(unclaimed::link))
        .route("/players", get(players::list))
        .route("/players/{id}", get(players::page))
        .route("/players/{id}/unlink", post(players::unlink))
        .route("/players/{id}/main", post(players::set_main))
        .route("/runs", get(runs::page))
        .route("/roles", get(roles::page))
        .route("/roles/plans/{id}/approve", post(roles::approve))
        .route("/roles/runs/{id}/undo", post(roles::undo))
        .route(
            "/upload",
            get(upload::page)
                .post(upload::submit)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/console.css", get(stylesheet))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The headers every console response carries.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// What every page's layout needs: the CSRF token for its forms (logout included) and which
/// nav entry is current.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub csrf: String,
    pub active: &'static str,
}

impl Chrome {
    pub fn new(session: &session::Session, active: &'static str) -> Chrome {
        Chrome {
            csrf: session.csrf.clone(),
            active,
        }
    }
}

/// A console request that cannot be served, as an HTML page with the right status.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "this form is out of date or was not sent from the console (CSRF token missing or wrong); reload the page and try again"
    )]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// Too many login attempts from this client; the value is seconds to wait.
    #[error("too many login attempts from this address; try again in {0} s")]
    TooManyAttempts(u64),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
struct MessagePage {
    title: &'static str,
    message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            Refused::Csrf => (StatusCode::FORBIDDEN, "Refused"),
            Refused::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            Refused::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            Refused::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Refused::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Not accepted"),
            Refused::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            Refused::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "Slow down"),
            Refused::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        };
        let message = match &self {
            Refused::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error answering a console page");
                "internal error; the service log has the details".to_string()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            Refused::TooManyAttempts(seconds) => Some(seconds.to_string()),
            _ => None,
        };
        let mut response = (status, MessagePage { title, message }).into_response();
        if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<crate::db::api::LinkError> for Refused {
    fn from(err: crate::db::api::LinkError) -> Self {
        use crate::db::api::LinkError;
        match err {
            LinkError::NotFound(m) => Refused::NotFound(m),
            LinkError::Conflict(m) => Refused::Conflict(m),
            LinkError::Database(e) => Refused::Internal(e),
        }
    }
}

impl From<crate::db::console::ConsoleError> for Refused {
    fn from(err: crate::db::console::ConsoleError) -> Self {
        use crate::db::console::ConsoleError;
        match err {
            ConsoleError::NotFound(m) => Refused::NotFound(m),
            ConsoleError::Conflict(m) => Refused::Conflict(m),
            ConsoleError::Invalid(m) => Refused::Unprocessable(m),
            ConsoleError::Database(e) => Refused::Internal(e),
        }
    }
}

impl From<crate::scheduler::StartError> for Refused {
    fn from(err: crate::scheduler::StartError) -> Self {
        match err {
            crate::scheduler::StartError::Database(e) => Refused::Internal(e),
            other => Refused::Unavailable(other.to_string()),
        }
    }
}

/// A 1-based page number from a query, bounded.
pub fn page_offset(page: Option<u32>) -> (u32, i64) {
    let page = page.unwrap_or(1).clamp(1, 10_000);
    (page, i64::from(page - 1) * PAGE_ROWS)
}
