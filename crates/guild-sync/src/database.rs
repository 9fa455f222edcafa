//! Opening the product's database: the server in `DATABASE_URL`, or the private cluster under
//! `GUILD_SYNC_DATA_DIR` (see [`crate::pg_cluster`]). Every command goes through here, so every
//! command applies pending migrations on start.

use std::str::FromStr;

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::Config;
use crate::pg_cluster::{Durability, LocalCluster};

/// The database guild-sync creates in its private cluster.
pub const DATABASE_NAME: &str = "guild_sync";

/// An open, migrated database; keeps the private cluster (if any) alive while it lives.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<LocalCluster>,
}

impl Database {
    /// Connect (starting the private cluster when no `DATABASE_URL` is set) and migrate.
    pub async fn open(config: &Config) -> Result<Database> {
        let (options, cluster) = match &config.database_url {
            Some(url) => {
                let options = PgConnectOptions::from_str(url.expose())
                    .context("DATABASE_URL is not a valid PostgreSQL URL")?;
                (options, None)
            }
            None => {
                let dir = config.guild_sync_data_dir.clone();
                let cluster = tokio::task::spawn_blocking(move || {
                    LocalCluster::start(&dir, Durability::Durable)
                })
                .await
                .context("the cluster start-up task failed")?
                .with_context(|| {
                    format!(
                        "cannot start the private PostgreSQL under {} (or set DATABASE_URL)",
                        config.guild_sync_data_dir.display()
                    )
                })?;
                create_database_if_missing(&cluster).await?;
                (cluster.connect_options(DATABASE_NAME), Some(cluster))
            }
        };
        let pool = crate::db::connect(options).await?;
        crate::db::migrate(&pool).await?;
        Ok(Database { pool, cluster })
    }

    /// The private cluster, when guild-sync started one.
    pub fn cluster(&self) -> Option<&LocalCluster> {
        self.cluster.as_ref()
    }

    /// Close the pool, then release the cluster (stopping it if no other process uses it).
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            // Stopping waits for the server to exit: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
    }
}

async fn create_database_if_missing(cluster: &LocalCluster) -> Result<()> {
    let mut conn = PgConnection::connect_with(&cluster.connect_options("postgres"))
        .await
        .context("cannot connect to the private PostgreSQL server")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(DATABASE_NAME)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Two processes may race here on first use; losing the race is fine.
        let created = sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {DATABASE_NAME}"
        )))
        .execute(&mut conn)
        .await;
        if let Err(err) = created
            && !is_duplicate_database(&err)
        {
            return Err(err).context("cannot create the guild_sync database");
        }
    }
    conn.close().await.ok();
    Ok(())
}

fn is_duplicate_database(err: &sqlx::Error) -> bool {
    // 42P04 duplicate_database
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P04")
}
