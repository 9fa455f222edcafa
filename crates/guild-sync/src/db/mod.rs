//! The SQL layer: every query guild-sync runs lives under this module.
//!
//! Query functions are free functions taking `impl PgExecutor<'_>` so the caller chooses the
//! transaction; they return typed rows. No query runs once per row in a loop: batches go to
//! PostgreSQL as arrays (`UNNEST`). Nothing here decides policy — that is the pipelines' and
//! the core crate's job.
//!
//! Status and type columns decode into enums here (`#[sqlx(try_from = "Text")]`): a stored value
//! this version does not know is a decode error naming the column and the value, not a string
//! that some caller parses later and quietly drops.

pub mod addon;
pub mod admin;
pub mod api;
pub mod audit_issues;
pub mod characters;
pub mod discord_users;
pub mod events;
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

/// A text column as stored, for `#[sqlx(try_from = "Text")]` on fields typed with an enum. It
/// exists because the orphan rule lets this crate implement `TryFrom<Text>` for the core
/// crate's enums, which it cannot do for `String`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Text(pub String);

/// A status or type column held a value this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {column} {value:?} in the database")]
pub struct UnknownValue {
    /// `table.column`.
    pub column: &'static str,
    pub value: String,
}

impl Text {
    /// Decode with `parse`, or fail naming `column` and the stored value.
    pub fn decode<T>(
        self,
        column: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, UnknownValue> {
        parse(&self.0).ok_or(UnknownValue {
            column,
            value: self.0,
        })
    }
}

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
