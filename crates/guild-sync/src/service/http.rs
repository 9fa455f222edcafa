//! The HTTP server of the service: accepts connections and serves the API router on them until
//! the service's cancellation token fires, with the limits `axum::serve` does not set.
//!
//! - Request headers must arrive within [`HEADER_READ_TIMEOUT`], which also bounds how long an
//!   idle keep-alive connection stays open (the timer runs while the server waits for the next
//!   request's head). A half-sent request cannot hold a connection for ever.
//! - A request body must arrive within [`BODY_READ_TIMEOUT`].
//! - On shutdown no connection is accepted, every open one is asked to finish its request and
//!   close, and after [`SHUTDOWN_GRACE`] the rest are dropped, so SIGTERM ends the process
//!   within 10 s however many clients hold connections open.

use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// Time to receive a request's headers; also the longest a keep-alive connection stays idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Time to receive a request's body (a 4 MiB upload on a slow uplink fits).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown lets open connections finish before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serve `router` on `listener` until `shutdown` is cancelled, then close gracefully.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let router = router.layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // The peer address, for routes that answer by who asks (`/metrics`: loopback only).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            builder.http2().timer(TokioTimer::new());
            let mut conn =
                pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = served {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        // Dropped with the runtime when the process exits.
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open after the shutdown grace period: dropped"
        );
    }
}
