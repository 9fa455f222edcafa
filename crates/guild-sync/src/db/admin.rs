//! The server and the database as a whole rather than the guild's tables: creating and dropping
//! databases, the comment that marks the demo database with its sample, how many migrations
//! are applied, and the liveness probe the health route uses.
//!
//! Database names cannot be bound as parameters; every caller passes a name guild-sync chose
//! itself (quoted here, never taken from a request).

use anyhow::{Context, Result};
use sqlx::{PgConnection, PgExecutor};

/// `name` as a quoted identifier, with embedded quotes doubled.
fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Drop database `name` if it exists, disconnecting its sessions.
pub async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        identifier(name)
    )))
    .execute(conn)
    .await
    .with_context(|| format!("cannot drop the database {name}"))?;
    Ok(())
}

/// Whether database `name` exists on the server.
pub async fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(conn)
            .await?,
    )
}

/// Create database `name`; the raw error is returned so a caller can tell a lost creation
/// race (`42P04 duplicate_database`) from a real failure.
pub async fn create_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {}",
        identifier(name)
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Tables whose planner statistics a pipeline stage refreshes after a bulk write
/// ([`analyze`]). A closed set, so the statement is built from names guild-sync chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analyzed {
    WowCharacters,
    DiscordUsers,
    /// `players` and `player_characters`, which the matcher fills together.
    PlayerLinks,
}

impl Analyzed {
    fn tables(self) -> &'static str {
        match self {
            Analyzed::WowCharacters => "guild_identity.wow_characters",
            Analyzed::DiscordUsers => "guild_identity.discord_users",
            Analyzed::PlayerLinks => "guild_identity.players, guild_identity.player_characters",
        }
    }
}

/// Refresh the planner statistics of `tables`. `SKIP_LOCKED`: a table autovacuum is
/// analyzing right now is left to it rather than waited for.
pub async fn analyze(db: impl PgExecutor<'_>, tables: Analyzed) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ANALYZE (SKIP_LOCKED) {}",
        tables.tables()
    )))
    .execute(db)
    .await
    .with_context(|| format!("cannot analyze {}", tables.tables()))?;
    Ok(())
}

/// The comment on the connected database, if any.
pub async fn current_database_comment(db: impl PgExecutor<'_>) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database
         WHERE datname = current_database()",
    )
    .fetch_one(db)
    .await?)
}

/// Set the comment on database `name`. `COMMENT` takes no parameters, so the text is quoted
/// here as a literal.
pub async fn set_database_comment(db: impl PgExecutor<'_>, name: &str, text: &str) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "COMMENT ON DATABASE {} IS '{}'",
        identifier(name),
        text.replace('\'', "''")
    )))
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the database holds no characters and no Discord users.
pub async fn holds_no_guild(db: impl PgExecutor<'_>) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM guild_identity.wow_characters)
            AND NOT EXISTS (SELECT 1 FROM guild_identity.discord_users)",
    )
    .fetch_one(db)
    .await?)
}

/// How many migrations have been applied successfully.
pub async fn migrations_applied(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(db)
            .await?,
    )
}

/// The cheapest round trip: succeeds when the database answers.
pub async fn ping(db: impl PgExecutor<'_>) -> Result<(), sqlx::Error> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(db)
        .await
        .map(|_| ())
}
