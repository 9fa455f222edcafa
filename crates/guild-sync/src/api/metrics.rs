//! `GET /metrics`: the Prometheus text exposition of [`crate::metrics`], and the HTTP latency
//! layer that feeds its request histogram.
//!
//! The route is outside the officer auth (a scraper has no bearer token) and exposes counts
//! and timings only, never names or notes. Where it is served is the service's choice
//! ([`MetricsAccess`]): on its own listener (`GUILD_SYNC_METRICS_BIND`, which the operator
//! firewalls), or on the API's listener answering loopback clients only — anyone else gets
//! the API's ordinary 404, so the route does not reveal itself to the internet.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use sqlx::PgPool;

use super::error::ApiError;

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Any client: the route is on its own listener.
    Anyone,
    /// Clients connecting from a loopback address only (the API's own listener).
    LoopbackOnly,
}

impl MetricsAccess {
    /// Whether a client at `peer` (unknown: `None`) may read the metrics.
    pub fn allows(self, peer: Option<SocketAddr>) -> bool {
        match self {
            MetricsAccess::Anyone => true,
            MetricsAccess::LoopbackOnly => {
                peer.is_some_and(|p| p.ip().to_canonical().is_loopback())
            }
        }
    }
}

#[derive(Clone)]
struct MetricsState {
    pool: PgPool,
    access: MetricsAccess,
}

/// The `/metrics` route alone, as `access` says.
pub fn router(pool: PgPool, access: MetricsAccess) -> Router {
    crate::metrics::install();
    Router::new()
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(record_latency))
        .with_state(MetricsState { pool, access })
}

async fn metrics(
    State(state): State<MetricsState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    if !state.access.allows(peer.map(|Extension(ConnectInfo(p))| p)) {
        return ApiError::NotFound("no such route".into()).into_response();
    }
    let open = match crate::db::audit_issues::open_counts_by_type(&state.pool).await {
        Ok(open) => open,
        Err(err) => {
            // The other families still tell the scraper something; the gauge keeps its last
            // value and the failure is logged.
            tracing::warn!(error = %format!("{err:#}"), "metrics: cannot count the open audit issues");
            Vec::new()
        }
    };
    let body = crate::metrics::render(&open);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Time every request into `guild_sync_http_request_duration_seconds`, labelled by the
/// matched route template (never the raw path: ids in paths would make a series per id).
pub async fn record_latency(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    crate::metrics::http_request(route, method, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_the_api_listener_only_loopback_clients_read_the_metrics() {
        let at = |s: &str| Some(s.parse::<SocketAddr>().expect("an address"));
        let loopback = MetricsAccess::LoopbackOnly;
        assert!(loopback.allows(at("127.0.0.1:5000")));
        assert!(loopback.allows(at("[::1]:5000")));
        assert!(loopback.allows(at("[::ffff:127.0.0.1]:5000")));
        assert!(!loopback.allows(at("192.168.1.20:5000")));
        assert!(!loopback.allows(at("[2001:db8::1]:5000")));
        assert!(!loopback.allows(None), "an unknown peer is not trusted");
        assert!(MetricsAccess::Anyone.allows(at("192.168.1.20:5000")));
    }
}
