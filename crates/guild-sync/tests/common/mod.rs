//! What every integration test shares: the timeout every async test runs under, and the
//! spawner that serves the HTTP API on its own port (127.0.0.1:0, real TCP) for one test.
//! The database comes from `guild_sync::testing::TestDb` (the `test-support` feature).

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use guild_sync::api::{self, AppState};

/// How long an ordinary async test may take before it fails instead of hanging.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `test`, failing it when it takes longer than `limit`: a hung test must fail, not stall CI.
pub async fn within<T>(limit: Duration, test: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, test).await {
        Ok(value) => value,
        Err(_) => panic!("the test took longer than {limit:?}"),
    }
}

/// [`within`] the ordinary [`TEST_TIMEOUT`].
pub async fn within_a_minute<T>(test: impl Future<Output = T>) -> T {
    within(TEST_TIMEOUT, test).await
}

/// The HTTP API serving one test, and a client for it.
pub struct SpawnedApp {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    pub client: reqwest::Client,
}

impl SpawnedApp {
    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Serve the API over `state` on a free local port until the test's runtime ends.
pub async fn spawn_app(state: AppState) -> SpawnedApp {
    guild_sync::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    SpawnedApp {
        base,
        client: reqwest::Client::new(),
    }
}

/// Serve the whole service — the officer console and the API (`service::router`), with the
/// production stages — over `pool` and `config` on `listener` until the test's runtime ends.
pub fn serve_service(
    listener: tokio::net::TcpListener,
    pool: sqlx::PgPool,
    config: &guild_sync::config::Config,
) {
    use std::sync::Arc;

    use guild_sync::scheduler::{ProductionStages, Scheduler};
    guild_sync::install_crypto_provider();
    let stages = ProductionStages::for_service(pool.clone(), config.clone(), None);
    let state = AppState::new(
        pool.clone(),
        Arc::new(Scheduler::new(pool, Arc::new(stages))),
        Arc::new(config.clone()),
    );
    let router = guild_sync::service::router(state, config);
    tokio::spawn(async move { axum::serve(listener, router).await });
}

/// [`serve_service`] on a free local port; returns `http://127.0.0.1:{port}`.
pub async fn spawn_service(pool: sqlx::PgPool, config: &guild_sync::config::Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    serve_service(listener, pool, config);
    base
}

/// A session of its own holding the pipeline lock, as another process's running pipeline would;
/// closing (or dropping) the connection releases it.
pub async fn hold_pipeline_lock(db: &guild_sync::testing::TestDb) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut operator = sqlx::PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect the lock holder");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(guild_sync::db::pipeline_lock::PIPELINE_LOCK_KEY)
        .execute(&mut operator)
        .await
        .expect("take the pipeline lock");
    operator
}

/// Spawn `guild-sync serve` (the built binary) on a free local port with the test database,
/// only `PATH` and `secret` (name, value) from the environment, in a fresh directory, its log
/// on a piped stderr; killed when dropped.
pub fn spawn_serve(
    db: &guild_sync::testing::TestDb,
    secret: (&str, &str),
) -> tokio::process::Child {
    let dir = tempfile::tempdir().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("GUILD_SYNC_BIND", "127.0.0.1:0")
        .env(secret.0, secret.1)
        .env("RUST_LOG", "guild_sync=info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}
