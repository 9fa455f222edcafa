//! Opening the product's database: the server in `DATABASE_URL`, or the private cluster under
//! `GUILD_SYNC_DATA_DIR` (see [`crate::pg_cluster`]). Every command goes through here, so every
//! command applies pending migrations on start.

use std::str::FromStr;

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::Config;
use crate::db;
use crate::pg_cluster::{Durability, LocalCluster};

/// The database guild-sync creates in its private cluster.
pub const DATABASE_NAME: &str = "guild_sync";

/// An open, migrated database; keeps the private cluster (if any) alive while it lives.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<LocalCluster>,
    /// How many migrations the database has applied (all of this binary's, once open).
    migrations_applied: i64,
}

impl Database {
    /// Connect (starting the private cluster when no `DATABASE_URL` is set) and migrate.
    ///
    /// In the private cluster the product's database is created on first use. The common case
    /// connects straight to it, and only a "database does not exist" answer costs the
    /// administrative connection that creates it (issue 21: command start-up ≤ 10 ms, where a
    /// second connection was a good part of it).
    pub async fn open(config: &Config) -> Result<Database> {
        let (options, cluster) = server(config).await?;
        let Some(cluster) = cluster else {
            return Self::connect(options, None).await;
        };
        let options = cluster.connect_options(DATABASE_NAME);
        let (pool, migrations_applied) = match db::open(options.clone()).await {
            Ok(opened) => opened,
            Err(err) if is_missing_database(&err) => {
                create_database(cluster.connect_options("postgres"), DATABASE_NAME, false).await?;
                db::open(options).await?
            }
            Err(err) => return Err(err),
        };
        Ok(Database {
            pool,
            cluster: Some(cluster),
            migrations_applied,
        })
    }

    /// The database `name` on the configured server, created on first use and kept (the demo's
    /// own database, apart from the product's `guild_sync`).
    pub async fn open_named(config: &Config, name: &str) -> Result<Database> {
        let (options, cluster) = server(config).await?;
        let admin = match &cluster {
            Some(cluster) => cluster.connect_options("postgres"),
            None => options.clone(),
        };
        create_database(admin.clone(), name, false).await?;
        Self::connect(admin.database(name), cluster).await
    }

    /// A new, empty, migrated database named `name` on the configured server (the benchmark's
    /// "fresh database"); an old one of the same name is replaced. Remove it with
    /// [`Database::drop_scratch`].
    pub async fn open_scratch(config: &Config, name: &str) -> Result<Database> {
        let (options, cluster) = server(config).await?;
        let admin = match &cluster {
            Some(cluster) => cluster.connect_options("postgres"),
            None => options.clone(),
        };
        create_database(admin.clone(), name, true).await?;
        Self::connect(admin.database(name), cluster).await
    }

    /// Drop this database and create it again, empty and migrated (the demo's, when the sample
    /// it holds is not the one bundled with this binary).
    pub async fn start_over(self) -> Result<Database> {
        let (admin, name) = self.admin_and_name()?;
        self.pool.close().await;
        create_database(admin.clone(), &name, true).await?;
        Self::connect(admin.database(&name), self.cluster).await
    }

    /// Drop a database made by [`Database::open_scratch`].
    pub async fn drop_scratch(self) -> Result<()> {
        let (admin, name) = self.admin_and_name()?;
        self.pool.close().await;
        let mut conn = PgConnection::connect_with(&admin).await?;
        db::admin::drop_database(&mut conn, &name).await?;
        conn.close().await.ok();
        if let Some(cluster) = self.cluster {
            let _ = off_the_workers(move || drop(cluster)).await;
        }
        Ok(())
    }

    /// Options for an administrative connection to the same server, and this database's name.
    fn admin_and_name(&self) -> Result<(PgConnectOptions, String)> {
        let options = self.pool.connect_options();
        let name = options
            .get_database()
            .context("the database has a name")?
            .to_owned();
        let admin = match &self.cluster {
            Some(cluster) => cluster.connect_options("postgres"),
            None => (*options).clone().database("postgres"),
        };
        Ok((admin, name))
    }

    /// Connect and apply pending migrations (one query when there are none).
    async fn connect(options: PgConnectOptions, cluster: Option<LocalCluster>) -> Result<Database> {
        let (pool, migrations_applied) = db::open(options).await?;
        Ok(Database {
            pool,
            cluster,
            migrations_applied,
        })
    }

    /// How many migrations the database has applied.
    pub fn migrations_applied(&self) -> i64 {
        self.migrations_applied
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
            let _ = off_the_workers(move || drop(cluster)).await;
        }
    }
}

/// The configured server: `DATABASE_URL`'s options, or the private cluster (started if needed).
async fn server(config: &Config) -> Result<(PgConnectOptions, Option<LocalCluster>)> {
    if let Some(url) = &config.database_url {
        let options = PgConnectOptions::from_str(url.expose())
            .context("DATABASE_URL is not a valid PostgreSQL URL")?;
        return Ok((options, None));
    }
    let dir = config.guild_sync_data_dir.clone();
    let cluster = off_the_workers(move || LocalCluster::start(&dir, Durability::Durable))
        .await
        .context("the cluster start-up task failed")?
        .with_context(|| {
            format!(
                "cannot start the private PostgreSQL under {} (or set DATABASE_URL)",
                config.guild_sync_data_dir.display()
            )
        })?;
    Ok((cluster.connect_options("postgres"), Some(cluster)))
}

/// Run blocking `work` (the private cluster's start and stop: file locks, and `initdb` or
/// `pg_ctl` when needed): on the blocking pool, so that no async worker waits — or in place on a
/// current-thread runtime. The one-shot commands run on one ([`crate::cli::Command::runtime`]),
/// open the database before anything else runs there and close it last, so nothing waits; the
/// blocking pool's thread start and the hand-offs to it and back were part of their start-up
/// (issue 21).
async fn off_the_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
    {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await
}

/// Create database `name` through `admin`; `replace` drops an existing one first, otherwise an
/// existing one is kept.
async fn create_database(admin: PgConnectOptions, name: &str, replace: bool) -> Result<()> {
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .context("cannot connect to PostgreSQL to create a database")?;
    if replace {
        db::admin::drop_database(&mut conn, name).await?;
    }
    if !db::admin::database_exists(&mut conn, name).await? {
        // Two processes may race here on first use; losing the race is fine.
        let created = db::admin::create_database(&mut conn, name).await;
        if let Err(err) = created
            && !is_duplicate_database(&err)
        {
            return Err(err).with_context(|| format!("cannot create the database {name}"));
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Whether connecting failed because the database does not exist (3D000 invalid_catalog_name).
fn is_missing_database(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code())
            .is_some_and(|code| code == "3D000")
    })
}

fn is_duplicate_database(err: &sqlx::Error) -> bool {
    // 42P04 duplicate_database
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P04")
}
