//! `guild-sync serve`: the HTTP API, the scheduler and (with a bot token) the Discord gateway
//! listener in one process. A part whose configuration is missing or invalid is disabled with
//! one log line; the rest runs. SIGINT/SIGTERM stop it gracefully: no new runs start, a running
//! pipeline finishes, the listener disconnects, the process exits 0.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::database::Database;
use crate::discord_gateway::{self, GatewayHandle};
use crate::discord_sender::DiscordSender;
use crate::scheduler::{ProductionStages, Schedule, Scheduler};

pub async fn run(config: &Config) -> Result<()> {
    let db = Database::open(config).await?;
    serve_database(config, db).await
}

/// Serve `db` until SIGINT/SIGTERM (also what `demo --serve` runs on the demo database).
pub async fn serve_database(config: &Config, db: Database) -> Result<()> {
    let pool = db.pool.clone();

    let sender = match DiscordSender::from_config(config) {
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
    };
    let stages = ProductionStages::for_service(pool.clone(), config.clone(), sender);
    let scheduler = Arc::new(Scheduler::new(pool.clone(), Arc::new(stages)));
    let jobs = scheduler.spawn_jobs(Schedule::from_config(config));

    let gateway = start_gateway(&pool, config).await;

    if config.guild_sync_admin_token.is_none() {
        tracing::warn!("officer endpoints disabled (503): GUILD_SYNC_ADMIN_TOKEN is not set");
    }
    if config.guild_sync_api_key.is_none() {
        tracing::warn!("addon uploads disabled (503): GUILD_SYNC_API_KEY is not set");
    }
    let state = AppState {
        pool: pool.clone(),
        scheduler: Arc::clone(&scheduler),
        admin_token: config.guild_sync_admin_token.clone(),
        api_key: config.guild_sync_api_key.clone(),
    };
    let listener = TcpListener::bind(&config.guild_sync_bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on GUILD_SYNC_BIND={}",
                config.guild_sync_bind
            )
        })?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(%address, "HTTP API listening");

    let stopping = Arc::clone(&scheduler);
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: no new runs start; waiting for a running pipeline");
            stopping.begin_shutdown();
        })
        .await
        .context("the HTTP server failed");

    // Whatever ended the server, finish cleanly: the running pipeline completes its work.
    scheduler.shutdown().await;
    for job in jobs {
        job.await.ok();
    }
    if let Some(gateway) = gateway {
        gateway.shutdown().await;
    }
    db.close().await;
    tracing::info!("stopped");
    served
}

async fn start_gateway(pool: &sqlx::PgPool, config: &Config) -> Option<GatewayHandle> {
    let missing = config.missing_discord_settings();
    if !missing.is_empty() {
        tracing::warn!(
            missing = %missing.join(", "),
            "Discord gateway listener disabled: configuration missing"
        );
        return None;
    }
    match discord_gateway::spawn(pool.clone(), config).await {
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
