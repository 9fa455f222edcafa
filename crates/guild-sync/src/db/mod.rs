//! The SQL layer: every query guild-sync runs lives under this module.
//!
//! Query functions are free functions taking `impl PgExecutor<'_>` so the caller chooses the
//! transaction; they return typed rows. No query runs once per row in a loop: batches go to
//! PostgreSQL as arrays (`UNNEST`). Nothing here decides policy — that is the pipelines' and
//! the core crate's job.
//!
//! Status and type columns decode into enums here (`#[sqlx(try_from = "Text")]`): a stored value
//! this version does not know fails the read (sqlx's `ColumnDecode`, naming the column), not a
//! string that some caller parses later and quietly drops. sqlx 0.9's `FromRow` derive prints a
//! `try_from` error as "unprintable error", so [`decodes_text!`] also logs the table, column and
//! value at `error` level: that log line is where an officer's admin finds which value it was.
//!
//! Queries are checked at run time (`query_as` into `FromRow` rows), not at compile time with
//! `query!`/`query_as!` and a committed `.sqlx/` cache. Why: every function here runs against a
//! real PostgreSQL in the tests, so a renamed column already fails `cargo test` naming the
//! column; several statements are assembled (the `UNNEST` batches' `PgArguments`, the shared
//! SQL macros, identifiers in the admin and harness statements), which `query!` cannot check;
//! and a cache that must be regenerated with `cargo sqlx prepare` against a live database on
//! every SQL change would collide between parallel branches and add a tool to CI for a check
//! the tests already make.

pub mod addon;
pub mod admin;
pub mod api;
pub mod audit_issues;
pub mod characters;
pub mod claims;
pub mod console;
pub mod console_pages;
pub mod discord_users;
pub mod integrity;
pub mod interactions;
pub mod links;
pub mod member_events;
pub mod officers;
pub mod pipeline_lock;
pub mod players;
pub mod reference;
pub mod roles;
pub mod sync_log;

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};

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

/// `impl TryFrom<Text>` for a status or type enum: `decodes_text!(Type, "table.column",
/// Type::parse)` decodes with `parse` (the stored spelling → `Option<Type>`) and fails with an
/// [`UnknownValue`] naming the column. One line per column instead of the same seven-line impl
/// in every module that reads one.
///
/// Through `#[sqlx(try_from = "Text")]` the read fails with sqlx's `ColumnDecode` naming the
/// column, but sqlx 0.9's `FromRow` derive replaces the error's own text with "unprintable
/// error" (its `__spec_error!` always picks the fallback), so the table and the value would be
/// lost: the failure is also logged here, where both are known.
macro_rules! decodes_text {
    ($ty:ty, $column:literal, $parse:expr) => {
        impl TryFrom<$crate::db::Text> for $ty {
            type Error = $crate::db::UnknownValue;

            fn try_from(text: $crate::db::Text) -> Result<Self, $crate::db::UnknownValue> {
                text.decode($column, $parse).inspect_err(|unknown| {
                    tracing::error!(column = unknown.column, value = %unknown.value, "{unknown}");
                })
            }
        }
    };
}
pub(crate) use decodes_text;

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connections in the product's pool: the pipelines run one at a time, the API needs a few more.
pub const POOL_MAX_CONNECTIONS: u32 = 16;

/// How long a caller waits for a connection before it fails. sqlx keeps retrying a server that
/// refuses connections until then, so this bounds what a request sees during a database outage:
/// 4 s, then the API answers 503 (within the 5 s an officer's client should wait), where the
/// default 30 s made every request hang, then fail with 500. In normal operation a connection is
/// free within milliseconds (pipelines run one at a time and the pool has room for the API).
pub const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(4);

/// The product's pool settings (size, acquire timeout), for [`connect`] and for callers that
/// open a pool lazily.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(POOL_MAX_CONNECTIONS)
        .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
}

/// Open a pool on `options`, with the product's session settings ([`session_options`]).
pub async fn connect(options: PgConnectOptions) -> Result<PgPool> {
    pool_options()
        .connect_with(session_options(options))
        .await
        .context("cannot connect to PostgreSQL")
}

/// Open a pool on `options` and bring its database to this binary's migrations ([`migrate`]);
/// returns the pool and how many migrations are applied. This is how every command starts.
///
/// The pool is made lazily, so the migration check opens the first connection itself: a pool
/// opened eagerly ([`connect`]) parks that connection idle, and taking an idle connection costs
/// a ping round trip before the check (issue 21: command start-up ≤ 10 ms). A server that cannot
/// be reached fails here all the same, with the same context.
pub async fn open(options: PgConnectOptions) -> Result<(PgPool, i64)> {
    let pool = pool_options().connect_lazy_with(session_options(options));
    let applied = migrate(&pool).await?;
    Ok((pool, applied))
}

/// The session settings every product connection starts with: `jit = off`. The big
/// statements (the Discord sync's 50,000-row list matched against `discord_users`) cross
/// PostgreSQL's JIT cost threshold on row estimates, and compiling them took 17–48 ms
/// per statement (EXPLAIN ANALYZE at 50,000 members, issue 21) on statements that run in
/// tens of milliseconds; nothing guild-sync runs is a long analytic query that JIT would repay.
pub fn session_options(options: PgConnectOptions) -> PgConnectOptions {
    options.options([("jit", "off")])
}

/// Whether `err` says the database could not be reached (no connection within
/// [`POOL_ACQUIRE_TIMEOUT`], a refused or broken connection), as opposed to a query that failed.
/// The API answers these with 503: the request may succeed once the database is back.
pub fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
        )
    })
}

/// Apply every pending migration (idempotent; sqlx serialises concurrent runs with a lock) and
/// return how many are applied. Every command opens the database through here ([`open`]), so
/// the common case — nothing to apply — is one round trip on one connection (issue 21: command
/// start-up ≤ 10 ms); anything else goes through sqlx's migrator, which takes the lock, creates
/// the table, applies what is missing and reports a dirty or changed migration.
pub async fn migrate(pool: &PgPool) -> Result<i64> {
    let mut conn = pool
        .acquire()
        .await
        .context("cannot connect to PostgreSQL")?;
    let up_to_date = migrations_up_to_date(&mut conn).await;
    // Dropping a pooled connection hands it back from a spawned task after a ping round trip;
    // a query issued meanwhile finds no idle connection and opens a second one, which was a
    // good part of a command's start-up. Hand it back here, before the command's first query.
    conn.return_to_pool().await;
    drop(conn);
    if up_to_date {
        return Ok(embedded_migrations().count() as i64);
    }
    MIGRATOR
        .run(pool)
        .await
        .context("cannot apply the database migrations")?;
    admin::migrations_applied(pool).await
}

/// The embedded migrations that are applied (not the `.down.sql` halves).
fn embedded_migrations() -> impl Iterator<Item = &'static sqlx::migrate::Migration> {
    MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

/// Whether the applied migrations are exactly the embedded ones (same versions and checksums,
/// all successful). Any error (no fingerprint table yet, another layout) means "let the migrator
/// decide".
///
/// Reads the one-row fingerprint that migration 1520's trigger keeps of `_sqlx_migrations`: in
/// the fresh backend every command starts with, that costs a third of comparing the table's rows
/// (issue 21). Sent as a simple-protocol statement: a prepared one costs a second round trip.
pub async fn migrations_up_to_date(conn: &mut PgConnection) -> bool {
    let expected = migrations_fingerprint(embedded_migrations());
    sqlx::raw_sql("SELECT fingerprint FROM common.migrations_fingerprint")
        .fetch_all(conn)
        .await
        .is_ok_and(|rows| match rows.as_slice() {
            [row] => row
                .try_get::<&str, _>(0)
                .is_ok_and(|stored| stored == expected),
            _ => false,
        })
}

/// The fingerprint migration 1520's trigger computes of `_sqlx_migrations`, for `migrations` all
/// applied successfully: the SHA-256 (hex) of `version:checksum-in-hex` per migration in version
/// order, joined by ','.
fn migrations_fingerprint<'a>(
    migrations: impl Iterator<Item = &'a sqlx::migrate::Migration>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<_> = migrations.collect();
    sorted.sort_by_key(|m| m.version);
    let listed: Vec<String> = sorted
        .iter()
        .map(|m| format!("{}:{}", m.version, hex::encode(&*m.checksum)))
        .collect();
    hex::encode(Sha256::digest(listed.join(",").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trigger hashes the empty string for an empty table; the binary agrees on the format
    /// (the database side is checked against a migrated database in tests/schema.rs).
    #[test]
    fn the_fingerprint_hashes_version_and_checksum_in_version_order() {
        let empty = migrations_fingerprint(std::iter::empty());
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let all = migrations_fingerprint(embedded_migrations());
        let reversed: Vec<_> = embedded_migrations().collect();
        assert_eq!(all, migrations_fingerprint(reversed.into_iter().rev()));
        assert_ne!(all, empty);
    }
}
