//! The HTTP API (SPEC §6): JSON routes under `/api/identity/` and `/api/guild-sync/`, health,
//! and the OpenAPI document at `/api/openapi.json`, all generated from the handlers.
//!
//! Owns routing, authentication and the mapping of every failure to `{"error": …}` with a
//! 4xx status (see [`error`]). It holds no SQL (that is [`crate::db::api`]) and runs no stage
//! itself (triggers go through the [`Scheduler`]).

/// Declares the HTTP shape of a `db` row (or of a stage's result) served with its fields:
/// the struct (`Serialize`, and `ToSchema`, whose doc comments are the OpenAPI descriptions)
/// and `From<row>`. `db/` rows stay plain `FromRow` types; what goes over the wire, and how the
/// OpenAPI document describes it, is said here. A field is moved across as it is, or through
/// the function after `=>` (an embedded row's own shape). The conversion takes the row apart in
/// full, so a column added to the row does not compile until its HTTP shape says whether it is
/// served.
macro_rules! row_view {
    (
        $(#[$meta:meta])*
        pub struct $name:ident from $row:path {
            $( $(#[$field_meta:meta])* pub $field:ident: $ty:ty $(=> $convert:expr)?, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl From<$row> for $name {
            fn from(row: $row) -> Self {
                let $row { $($field),* } = row;
                $name { $($field: row_view!(@field $field $($convert)?)),* }
            }
        }
    };
    (@field $field:ident) => { $field };
    (@field $field:ident $convert:expr) => { $convert($field) };
}

/// The OpenAPI schema of a status or type column's enum: a string, one of `values` (the stored
/// spellings, which are also the JSON ones). The enums live in `db/` and the core crate, which
/// derive no `ToSchema` (only `api/` speaks OpenAPI), so a view's field names its schema with
/// `#[schema(schema_with = …)]` and a function calling this.
fn text_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(values))
        .build()
}

/// `db` rows as their HTTP shape (see [`row_view!`]).
fn served<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}

pub mod auth;
pub mod console;
pub mod error;
pub mod events;
pub mod guild_sync;
pub mod identity;
pub mod metrics;
pub mod roles;
pub mod upload_limit;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::{Extension, Json, Router, middleware};
use serde::Serialize;
use sqlx::PgPool;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::{Config, Secret};
use crate::scheduler::Scheduler;
use error::{ApiError, ErrorBody};

/// Largest request body the JSON routes accept, in bytes; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Deepest row a `page=` may start at (`(page - 1) × per_page`), on every paged list: the
/// console's review lists and the event feed (`/api/events`). PostgreSQL reads and drops every
/// row before an OFFSET, so an unbounded page let one request walk a whole table; 10,000 rows is
/// more than any guild's review list (1,000 characters, a few thousand issues) and costs a few
/// ms. Past it a route answers 400 naming its way further: a narrower filter on the review lists
/// (their contract is page numbers, and no officer pages that deep), the `before=` cursor on the
/// event feed (a year of history is 100,000 events; its keyset pages have no limit).
pub const MAX_OFFSET: i64 = 10_000;

/// How long the health check waits for the database, in seconds.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub scheduler: Arc<Scheduler>,
    /// The service's settings; the features behind the routes (console, claims, role sync,
    /// Discord commands) read theirs from here.
    pub config: Arc<Config>,
}

impl AppState {
    /// The state every route shares.
    pub fn new(pool: PgPool, scheduler: Arc<Scheduler>, config: Arc<Config>) -> AppState {
        AppState {
            pool,
            scheduler,
            config,
        }
    }

    /// `GUILD_SYNC_ADMIN_TOKEN`; `None` disables the officer routes (503).
    pub fn admin_token(&self) -> Option<&Secret> {
        self.config.guild_sync_admin_token.as_ref()
    }

    /// `GUILD_SYNC_API_KEY`, which the companion sends in `X-API-Key`; `None` disables the
    /// addon upload routes (503).
    pub fn api_key(&self) -> Option<&Secret> {
        self.config.guild_sync_api_key.as_ref()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "guild-sync",
        description = "Links a WoW guild's Battle.net roster to its Discord server."
    ),
    modifiers(&BearerAuth),
    tags((name = "identity"), (name = "audit"), (name = "guild-sync"), (name = "roles"), (name = "service"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The whole API as one router.
pub fn router(state: AppState) -> Router {
    let officer = OpenApiRouter::new()
        .routes(routes!(identity::players))
        .routes(routes!(identity::orphans_wow))
        .routes(routes!(identity::orphans_discord))
        .routes(routes!(identity::mismatches))
        .routes(routes!(identity::link))
        .routes(routes!(identity::unlink))
        .routes(routes!(guild_sync::trigger_blizzard))
        .routes(routes!(guild_sync::trigger_discord))
        .routes(routes!(guild_sync::trigger_report))
        .routes(routes!(guild_sync::status))
        .routes(routes!(console::audit_issues))
        .routes(routes!(console::resolve_issue))
        .routes(routes!(console::reopen_issue))
        .routes(routes!(console::audit_actions))
        .routes(routes!(console::suggestions))
        .routes(routes!(console::accept_suggestion))
        .routes(routes!(console::dismiss_suggestion))
        .routes(routes!(console::candidates))
        .routes(routes!(console::player_detail))
        .routes(routes!(events::events))
        .routes(routes!(events::player_history))
        .routes(routes!(console::set_main))
        .routes(routes!(roles::latest_plan))
        .routes(routes!(roles::approve_plan))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_officer,
        ));
    // Uploads are limited per key (inside the key check, before the body is read); the status
    // the companion asks before each upload is not.
    let upload_post = OpenApiRouter::new()
        .routes(routes!(guild_sync::addon_upload))
        .route_layer(middleware::from_fn_with_state(
            upload_limit::UploadLimiter::from_config(&state.config),
            upload_limit::limit_uploads,
        ));
    // Exports of big guilds exceed the JSON routes' limit; this route has its own.
    let upload = OpenApiRouter::new()
        .merge(upload_post)
        .routes(routes!(guild_sync::addon_upload_status))
        .route_layer(DefaultBodyLimit::max(
            guild_sync_core::addon::MAX_UPLOAD_BYTES,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    let public = OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_json))
        .merge(upload);
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(officer)
        .merge(public)
        .split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(Arc::new(openapi)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // The one place every route's latency is measured (after routing: `MatchedPath`).
        .layer(middleware::from_fn(metrics::record_latency))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// [`router`] with `GET /metrics` added (off the officer auth), answering as `access` says.
pub fn router_with_metrics(state: AppState, access: metrics::MetricsAccess) -> Router {
    let pool = state.pool.clone();
    metrics::router(pool, access).merge(router(state))
}

/// Health of the service.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` when answered with 200.
    pub status: HealthStatus,
}

/// What `GET /api/health` says when it answers 200: only `ok` (an unhealthy service answers 503
/// with an error body instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/api/health", tag = "service",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let probe = crate::db::admin::ping(&state.pool);
    match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
        Ok(Ok(_)) => Ok(Json(Health {
            status: HealthStatus::Ok,
        })),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health check: database unavailable");
            Err(ApiError::Unavailable("database unavailable".into()))
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer in time");
            Err(ApiError::Unavailable("database unavailable".into()))
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(doc)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> (StatusCode, ApiError) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        ApiError::MethodNotAllowed("method not allowed on this route".into()),
    )
}
