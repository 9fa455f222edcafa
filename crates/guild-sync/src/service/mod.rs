//! The composition root: builds the whole running service — the HTTP [`api`], the
//! [`Scheduler`] with its timers, and (with a bot token) the Discord gateway listener — on one
//! database, under **one** [`CancellationToken`]. `guild-sync serve` and `demo --serve` run it.
//!
//! A part whose configuration is missing or invalid is disabled with one log line; the rest
//! runs. Cancelling the token (SIGINT/SIGTERM) stops everything the same way: no new runs
//! start, the HTTP server finishes its requests (within a grace period, see `service::http`), a
//! running pipeline finishes, the listener disconnects and answers the Discord interactions in
//! progress, the database closes.

pub mod http;

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::metrics::MetricsAccess;
use crate::api::{self, AppState};
use crate::config::Config;
use crate::database::Database;
use crate::discord_gateway::{self, GatewayHandle};
use crate::discord_sender::DiscordSender;
use crate::scheduler::{ProductionStages, Schedule, Scheduler};

/// Serve `db` until SIGINT or SIGTERM.
pub async fn serve_until_signal(config: &Config, db: Database) -> Result<()> {
    until_signal(|shutdown| run(config, db, shutdown)).await
}

/// Run `serve` with a token that SIGINT or SIGTERM cancels (and that is cancelled when `serve`
/// returns, so the signal listener ends with it).
pub async fn until_signal<F, Fut>(serve: F) -> Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let signals = tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal() => {
                tracing::info!("shutting down: no new runs start; waiting for a running pipeline");
                on_signal.cancel();
            }
            () = on_signal.cancelled() => {}
        }
    });
    let served = serve(shutdown.clone()).await;
    shutdown.cancel();
    signals.await.ok();
    served
}

/// Listen on `GUILD_SYNC_BIND`.
pub async fn bind(config: &Config) -> Result<TcpListener> {
    TcpListener::bind(&config.guild_sync_bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on GUILD_SYNC_BIND={}",
                config.guild_sync_bind
            )
        })
}

/// Build the service on `db` and run it until `shutdown` is cancelled; then stop every part
/// and close the database.
pub async fn run(config: &Config, db: Database, shutdown: CancellationToken) -> Result<()> {
    match bind(config).await {
        Ok(listener) => run_on(config, db, listener, shutdown).await,
        Err(err) => {
            db.close().await;
            Err(err)
        }
    }
}

/// [`run`] with the HTTP server on `listener`, bound by the caller (`demo --serve` needs the
/// address before it configures the claims' public URL; tests bind a free port).
pub async fn run_on(
    config: &Config,
    db: Database,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let pool = db.pool.clone();

    let stages = ProductionStages::for_service(pool.clone(), config.clone(), sender(config));
    let scheduler = Arc::new(Scheduler::with_shutdown(
        pool.clone(),
        Arc::new(stages),
        shutdown.clone(),
    ));
    let schedule = Schedule::from_config(config);
    let jobs = scheduler.spawn_jobs(schedule.clone());
    let gateway = start_gateway(&pool, config, &shutdown).await;

    let served = serve_http(config, &pool, &scheduler, schedule, listener, &shutdown).await;

    // Whatever ended the server, finish cleanly: the running pipeline completes its work.
    shutdown.cancel();
    scheduler.shutdown().await;
    for job in jobs {
        job.await.ok();
    }
    if let Some(gateway) = gateway {
        gateway.join().await;
    }
    db.close().await;
    tracing::info!("stopped");
    served
}

/// The report sender, or `None` (reports disabled) with a line saying why.
fn sender(config: &Config) -> Option<DiscordSender> {
    match DiscordSender::from_config(config) {
        Ok(Some(sender)) => Some(sender),
        Ok(None) => {
            tracing::warn!(
                "reports disabled: set DISCORD_BOT_TOKEN with DISCORD_AUDIT_CHANNEL_ID, or DISCORD_WEBHOOK_URL"
            );
            None
        }
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "reports disabled: the Discord sender cannot be set up");
            None
        }
    }
}

/// Serve the HTTP API on `listener` until `shutdown` is cancelled.
async fn serve_http(
    config: &Config,
    pool: &sqlx::PgPool,
    scheduler: &Arc<Scheduler>,
    schedule: Schedule,
    listener: TcpListener,
    shutdown: &CancellationToken,
) -> Result<()> {
    if config.guild_sync_admin_token.is_none() {
        tracing::warn!("officer endpoints disabled (503): GUILD_SYNC_ADMIN_TOKEN is not set");
    }
    if config.guild_sync_api_key.is_none() {
        tracing::warn!("addon uploads disabled (503): GUILD_SYNC_API_KEY is not set");
    }
    let state = AppState {
        pool: pool.clone(),
        scheduler: Arc::clone(scheduler),
        config: Arc::new(config.clone()),
    };
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(%address, "HTTP API listening");
    crate::metrics::install();
    match crate::db::sync_log::last_success_per_source(pool).await {
        Ok(rows) => crate::metrics::seed_last_success(&rows),
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "metrics: cannot read the last successful runs")
        }
    }
    let (api_router, metrics_server) = match &config.guild_sync_metrics_bind {
        None => {
            tracing::info!("metrics at /metrics on the API listener, for loopback clients only");
            let router = api::router_with_metrics(state.clone(), MetricsAccess::LoopbackOnly);
            (router, None)
        }
        Some(bind) => {
            let metrics_listener = TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on GUILD_SYNC_METRICS_BIND={bind}"))?;
            tracing::info!(address = %bind, "metrics listening at /metrics");
            let metrics = api::metrics::router(pool.clone(), MetricsAccess::Anyone);
            let server = tokio::spawn(http::serve(metrics_listener, metrics, shutdown.clone()));
            (api::router(state.clone()), Some(server))
        }
    };
    if config.guild_sync_admin_token.is_some() {
        tracing::info!("officer console at http://{address}/ (log in with GUILD_SYNC_ADMIN_TOKEN)");
    }
    let web = crate::web::WebState::new(state, config, schedule);
    http::serve(listener, routes(web, api_router), shutdown.clone()).await;
    // The same token stopped the metrics listener; wait for it too, so nothing still answers
    // (or holds a database connection) once the service says it stopped.
    if let Some(server) = metrics_server {
        server.await.ok();
    }
    Ok(())
}

/// Everything served over HTTP for `state` and `config`: the officer console's pages and the
/// JSON API.
pub fn router(state: AppState, config: &Config) -> axum::Router {
    let web = crate::web::WebState::new(state.clone(), config, Schedule::from_config(config));
    routes(web, api::router(state))
}

/// The console's router merged with the API's (which has the fallback, so it comes second).
fn routes(web: crate::web::WebState, api: axum::Router) -> axum::Router {
    crate::web::router(web).merge(api)
}

async fn start_gateway(
    pool: &sqlx::PgPool,
    config: &Config,
    shutdown: &CancellationToken,
) -> Option<GatewayHandle> {
    let missing = config.missing_discord_settings();
    if !missing.is_empty() {
        tracing::warn!(
            missing = %missing.join(", "),
            "Discord gateway listener disabled: configuration missing"
        );
        return None;
    }
    let interactions = match crate::discord_interactions::Interactions::start(pool.clone(), config)
        .await
    {
        Ok(interactions) => Some(interactions),
        Err(err) => {
            // Member events still flow; only the commands and buttons are off.
            tracing::error!(error = %format!("{err:#}"), "Discord slash commands and buttons disabled");
            None
        }
    };
    match discord_gateway::spawn_with_interactions(pool.clone(), config, shutdown, interactions)
        .await
    {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "Discord gateway listener disabled: it could not start");
            None
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                interrupt.await.ok();
            }
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
}
