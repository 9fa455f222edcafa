//! The SQL layer: every query guild-sync runs lives under this module.
//!
//! Query functions are free functions taking `impl PgExecutor<'_>` so the caller chooses the
//! transaction; they return typed rows. No query runs once per row in a loop: batches go to
//! PostgreSQL as arrays (`UNNEST`). Nothing here decides policy — that is the pipelines' and
//! the core crate's job.

pub mod addon;
pub mod admin;
pub mod api;
pub mod audit_issues;
pub mod characters;
pub mod discord_users;
pub mod integrity;
pub mod links;
pub mod pipeline_lock;
pub mod players;
pub mod reference;
pub mod sync_log;

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections in the product's pool: the pipelines run one at a time, the API needs a few more.
pub const POOL_MAX_CONNECTIONS: u32 = 16;

/// How long a caller waits for a free connection before the request fails.
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Open a pool on `options`.
pub async fn connect(options: PgConnectOptions) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(POOL_MAX_CONNECTIONS)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

/// Apply every pending migration (idempotent; sqlx serialises concurrent runs with a lock).
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("cannot apply the database migrations")
}
