//! What every integration test shares: the timeout every async test runs under, the spawner
//! that serves the HTTP API on its own port (127.0.0.1:0, real TCP) for one test, the officer
//! API app the route tests drive, and a log capture for the tests that read what was logged.
//! The database comes from `guild_sync::testing::TestDb` (the `test-support` feature).

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guild_sync::api::{self, AppState};
use guild_sync::config::{Config, Secret};
use guild_sync::scheduler::Scheduler;
use guild_sync::testing::{TestDb, noop_state, serve_on_a_free_port};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

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

/// [`within_a_minute`] on a fresh database: the frame most database tests share.
///
/// The test gets the `TestDb` itself, not a struct holding it: `TestDb` is `Drop`, so the
/// test's `async move` block captures it whole and the database lives until the test ends.
/// (A struct without `Drop` is captured field by field, and a field the test never names,
/// such as its `TestDb`, would be dropped, with its database, before the test runs.)
pub async fn on_a_fresh_db<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    on_a_fresh_db_within(TEST_TIMEOUT, test).await
}

/// [`on_a_fresh_db`] for the tests that need longer than [`TEST_TIMEOUT`] (a spawned binary,
/// thousands of rows); the fresh database is made inside `limit` too.
pub async fn on_a_fresh_db_within<F, Fut>(limit: Duration, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    within(limit, async { test(TestDb::new().await).await }).await
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
    let base = serve_on_a_free_port(api::router(state)).await;
    SpawnedApp {
        base,
        client: reqwest::Client::new(),
    }
}

/// The bearer token [`OfficerApp`] sends.
pub const OFFICER_TOKEN: &str = "officer-token-for-tests";

/// The API on its own port and database, pipelines on `NoopStages`, the officer token set or
/// not; its requests carry [`OFFICER_TOKEN`].
pub struct OfficerApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    /// The app's own pool (closable to simulate a database outage).
    pub pool: PgPool,
    pub scheduler: Arc<Scheduler>,
}

impl OfficerApp {
    pub async fn spawn(admin_token: Option<&str>) -> OfficerApp {
        let db = TestDb::new().await;
        let pool = PgPool::connect_with(db.connect_options()).await.unwrap();
        let state = noop_state(
            pool.clone(),
            Config {
                guild_sync_admin_token: admin_token.map(Secret::new),
                guild_sync_api_key: None,
                ..Config::defaults()
            },
        );
        let scheduler = Arc::clone(&state.scheduler);
        let SpawnedApp { base, client } = spawn_app(state).await;
        OfficerApp {
            base,
            client,
            db,
            pool,
            scheduler,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(OFFICER_TOKEN)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, path)).await
    }

    /// POST with `body` as JSON, or with no body.
    pub async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let request = self.request(Method::POST, path);
        send(match body {
            Some(body) => request.json(&body),
            None => request,
        })
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(Method::PUT, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::DELETE, path)).await
    }
}

/// Send `request`; its status and JSON body (a body that is not JSON fails the test).
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, body)
}

/// `(status, error_message)` of the newest `sync_log` run of `source`.
pub async fn last_run_of(pool: &PgPool, source: &str) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT status, error_message FROM guild_identity.sync_log
         WHERE source = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(source)
    .fetch_one(pool)
    .await
    .unwrap()
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

/// A `tracing` writer into a shared buffer, for the tests that read what was logged.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// A plain-text subscriber (no colours) writing every event at `level` and above here,
    /// each line prefixed with the spans it was logged in (`run{source=… run_id=…}:`).
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
