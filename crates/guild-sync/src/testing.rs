//! The test harness: every database test gets a fresh database on a real PostgreSQL server.
//!
//! The server is the one in `DATABASE_URL` when set; otherwise one private cluster, started with
//! the product's own [`crate::pg_cluster`] code under the system temp directory and shared by
//! every test process of this checkout (it keeps running between test runs and is reused).
//! Each test clones a migrated template database, which takes milliseconds, and the clone is
//! dropped when the [`TestDb`] is. Nothing here is mocked.
//!
//! Compiled only with the `test-support` feature, which the crate's own tests and benches turn
//! on (a dev-dependency on itself): the product binary and library do not ship it.

use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::pg_cluster::{Durability, LocalCluster};

/// The migrated database every test database is cloned from.
const TEMPLATE: &str = "guild_sync_test_template";

/// Prefix of per-test databases; the rest is the owning process id and a counter.
const TEST_DB_PREFIX: &str = "gs_test_";

/// Arbitrary advisory-lock key serialising template (re)creation across test processes.
const TEMPLATE_LOCK_KEY: i64 = 0x6773_7465_6d70;

/// Where the test server is, resolved once per process.
struct Server {
    admin: PgConnectOptions,
    /// Keeps this process registered as a user of the private cluster.
    cluster: Option<LocalCluster>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static TEMPLATE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The directory of the private test cluster: short (Unix socket paths are limited), under
/// /tmp (the server account must be able to reach it when tests run as root), and specific to
/// this checkout so two checkouts do not share a server.
pub fn test_cluster_dir() -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(env!("CARGO_MANIFEST_DIR").as_bytes());
    std::env::temp_dir().join(format!("guild-sync-test-{}", &hex::encode(digest)[..12]))
}

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL must be a valid URL");
            return Server {
                admin,
                cluster: None,
            };
        }
        let cluster = LocalCluster::start(&test_cluster_dir(), Durability::Throwaway)
            .expect("cannot start the test PostgreSQL cluster")
            .keep_running();
        Server {
            admin: cluster.connect_options("postgres"),
            cluster: Some(cluster),
        }
    })
}

/// A fresh, migrated database for one test; dropped with this value.
pub struct TestDb {
    pub pool: PgPool,
    name: String,
}

impl TestDb {
    /// Create a fresh database cloned from the migrated template.
    pub async fn new() -> TestDb {
        Self::try_new()
            .await
            .expect("cannot create a test database")
    }

    async fn try_new() -> Result<TestDb> {
        let server = tokio::task::spawn_blocking(server).await?;
        TEMPLATE_READY
            .get_or_try_init(|| prepare_template(&server.admin))
            .await?;
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(
            "{TEST_DB_PREFIX}{}_{n}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut admin = PgConnection::connect_with(&server.admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {TEMPLATE}"
        )))
        .execute(&mut admin)
        .await
        .with_context(|| format!("cannot create test database {name}"))?;
        admin.close().await.ok();
        // The product's session settings (`jit = off`), so tests and benches run the
        // statements the way the product does.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect_with(crate::db::session_options(
                server.admin.clone().database(&name),
            ))
            .await?;
        Ok(TestDb { pool, name })
    }

    /// Connection options for this database (for a second pool, or a spawned process).
    pub fn connect_options(&self) -> PgConnectOptions {
        server().admin.clone().database(&self.name)
    }

    /// A `DATABASE_URL` for this database, to hand to a child `guild-sync` process.
    pub fn url(&self) -> String {
        let server = server();
        match &server.cluster {
            Some(cluster) => cluster.url(&self.name),
            None => {
                let base = std::env::var("DATABASE_URL").expect("DATABASE_URL was set");
                let mut url = url::Url::parse(&base).expect("DATABASE_URL must be a valid URL");
                url.set_path(&self.name);
                url.to_string()
            }
        }
    }

    /// This database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = server().admin.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived thread
        // with its own runtime removes the database before the test returns.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect_with(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// Create the template (or recreate it when the migrations changed) and sweep databases left
/// by test processes that died before dropping them.
async fn prepare_template(admin: &PgConnectOptions) -> Result<()> {
    let mut conn = PgConnection::connect_with(admin)
        .await
        .context("cannot connect to the test PostgreSQL server")?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut conn)
        .await?;
    let result = prepare_template_locked(admin, &mut conn).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK_KEY)
        .execute(&mut conn)
        .await?;
    conn.close().await.ok();
    result
}

async fn prepare_template_locked(admin: &PgConnectOptions, conn: &mut PgConnection) -> Result<()> {
    sweep_orphans(conn).await?;
    let wanted = migrations_fingerprint();
    let current: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(TEMPLATE)
    .fetch_optional(&mut *conn)
    .await?;
    if current.as_ref().and_then(|c| c.as_deref()) == Some(wanted.as_str()) {
        return Ok(());
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {TEMPLATE}")))
        .execute(&mut *conn)
        .await?;
    let mut template = PgConnection::connect_with(&admin.clone().database(TEMPLATE)).await?;
    crate::db::MIGRATOR
        .run(&mut template)
        .await
        .context("migrating the test template")?;
    template.close().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "COMMENT ON DATABASE {TEMPLATE} IS '{wanted}'"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drop test databases whose owning process no longer exists.
async fn sweep_orphans(conn: &mut PgConnection) -> Result<()> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'gs\\_test\\_%' AND NOT datistemplate",
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in names {
        let pid = name
            .strip_prefix(TEST_DB_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        // Only a server on this machine can tell live pids apart; with DATABASE_URL pointing
        // elsewhere the sweep still only removes databases named by this harness.
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await
            .ok();
        }
    }
    Ok(())
}

/// Identifies the set of migrations, so a changed migration rebuilds the template.
fn migrations_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for migration in crate::db::MIGRATOR.iter() {
        hasher.update(migration.version.to_le_bytes());
        hasher.update(&*migration.checksum);
    }
    hex::encode(hasher.finalize())
}

/// Rows the database tests seed directly, shared so every test file builds them the same way.
pub mod seed {
    use sqlx::PgPool;

    /// A player named `name`, optionally holding a Discord user; returns its id.
    pub async fn player(pool: &PgPool, name: &str, discord_user_id: Option<i32>) -> i32 {
        sqlx::query_scalar(
            "INSERT INTO guild_identity.players (display_name, discord_user_id) VALUES ($1, $2)
             RETURNING id",
        )
        .bind(name)
        .bind(discord_user_id)
        .fetch_one(pool)
        .await
        .expect("seed a player")
    }

    /// A character named `name` on `realm` (every other column at its default); returns its id.
    pub async fn character(pool: &PgPool, name: &str, realm: &str) -> i32 {
        sqlx::query_scalar(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug)
             VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(realm)
        .fetch_one(pool)
        .await
        .expect("seed a character")
    }

    /// A Discord member `username` with the snowflake `discord_id`; returns its id.
    pub async fn discord_user(pool: &PgPool, discord_id: &str, username: &str) -> i32 {
        sqlx::query_scalar(
            "INSERT INTO guild_identity.discord_users (discord_id, username) VALUES ($1, $2)
             RETURNING id",
        )
        .bind(discord_id)
        .bind(username)
        .fetch_one(pool)
        .await
        .expect("seed a Discord member")
    }

    /// Link a character to a player (as an officer would: `manual`, `confirmed`).
    pub async fn link(pool: &PgPool, player_id: i32, character_id: i32) {
        sqlx::query(
            "INSERT INTO guild_identity.player_characters (player_id, character_id) VALUES ($1, $2)",
        )
        .bind(player_id)
        .bind(character_id)
        .execute(pool)
        .await
        .expect("seed a link");
    }
}

/// Stages that succeed at once, changing nothing: for tests and benchmarks of the API around a
/// real scheduler, whose own stages have their own tests.
pub struct NoopStages;

fn done<T: Default + Send + 'static>() -> futures::future::BoxFuture<'static, Result<T>> {
    Box::pin(async { Ok(T::default()) })
}

impl crate::scheduler::Stages for NoopStages {
    fn blizzard_sync(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<crate::db_sync::BlizzardSyncStats>> {
        done()
    }
    fn discord_sync(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<crate::discord_sync::DiscordSyncStats>> {
        done()
    }
    fn addon_sync<'a>(
        &'a self,
        _: &'a crate::scheduler::AddonInput,
    ) -> futures::future::BoxFuture<'a, Result<crate::db_sync::addon::AddonSyncStats>> {
        done()
    }
    fn run_matching(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<crate::identity_engine::MatchStats>> {
        done()
    }
    fn integrity_check(
        &self,
    ) -> futures::future::BoxFuture<'_, Result<crate::integrity_checker::CheckStats>> {
        done()
    }
    fn report(&self) -> futures::future::BoxFuture<'_, Result<crate::scheduler::ReportOutcome>> {
        Box::pin(async { Ok(crate::scheduler::ReportOutcome::NoSender) })
    }
}

/// The API's state over `pool` under `config`, its pipelines on [`NoopStages`]: what the tests
/// and benchmarks of the routes serve.
pub fn noop_state(pool: PgPool, config: crate::config::Config) -> crate::api::AppState {
    let scheduler = crate::scheduler::Scheduler::new(pool.clone(), std::sync::Arc::new(NoopStages));
    crate::api::AppState::new(
        pool,
        std::sync::Arc::new(scheduler),
        std::sync::Arc::new(config),
    )
}

/// The API's state over `pool` under `config`, its pipelines on the production stages (as
/// `serve` builds them, without a gateway).
pub fn production_state(pool: PgPool, config: &crate::config::Config) -> crate::api::AppState {
    let stages =
        crate::scheduler::ProductionStages::for_service(pool.clone(), config.clone(), None);
    let scheduler = crate::scheduler::Scheduler::new(pool.clone(), std::sync::Arc::new(stages));
    crate::api::AppState::new(
        pool,
        std::sync::Arc::new(scheduler),
        std::sync::Arc::new(config.clone()),
    )
}

/// The officer API over `db` with [`NoopStages`], served on a free local port until the
/// runtime ends (the API benchmarks); returns `http://127.0.0.1:{port}`.
pub async fn serve_officer_api(db: &TestDb, admin_token: &str) -> String {
    let pool = crate::db::connect(db.connect_options())
        .await
        .expect("connect the benchmark's pool");
    let state = noop_state(
        pool,
        crate::config::Config {
            guild_sync_admin_token: Some(crate::config::Secret::new(admin_token)),
            guild_sync_api_key: None,
            ..crate::config::Config::defaults()
        },
    );
    serve_on_a_free_port(crate::api::router(state)).await
}

/// The whole service's routes (console pages and API) over `pool`, with the production stages
/// under `config`, served on a free local port until the runtime ends (the console's browser
/// tests and benchmark); returns `http://127.0.0.1:{port}`.
pub async fn serve_console(pool: sqlx::PgPool, config: &crate::config::Config) -> String {
    let (listener, base) = free_local_port().await;
    serve_console_on(listener, pool, config);
    base
}

/// [`serve_console`] over `db` through the product's own pool, with `admin_token` as the
/// officers' token and every other setting at its default (the console benchmarks).
pub async fn serve_console_for(db: &TestDb, admin_token: &str) -> String {
    let pool = crate::db::connect(db.connect_options())
        .await
        .expect("connect the benchmark's pool");
    let config = crate::config::Config {
        guild_sync_admin_token: Some(crate::config::Secret::new(admin_token)),
        ..crate::config::Config::defaults()
    };
    serve_console(pool, &config).await
}

/// [`serve_console`] on a listener the caller bound (a test that must know its own address
/// before it configures the service, e.g. as the claims' public URL).
pub fn serve_console_on(
    listener: tokio::net::TcpListener,
    pool: sqlx::PgPool,
    config: &crate::config::Config,
) {
    crate::install_crypto_provider();
    let router = crate::service::router(production_state(pool, config), config);
    tokio::spawn(async move { axum::serve(listener, router).await });
}

/// A listener on a free local port and its base URL `http://127.0.0.1:{port}`.
pub async fn free_local_port() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    (listener, base)
}

/// Serve `router` on a free local port until the runtime ends; returns its base URL (the
/// fakes of external APIs, the API under test).
pub async fn serve_on_a_free_port(router: axum::Router) -> String {
    let (listener, base) = free_local_port().await;
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Log in to the console at `base` as a browser would (the login form's CSRF cookie and token,
/// then the admin token); returns the session cookie (`name=value`). For the benchmarks.
pub async fn console_login(http: &reqwest::Client, base: &str, token: &str) -> String {
    let page = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("the login page");
    let pre = page.headers()["set-cookie"]
        .to_str()
        .expect("a text cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let html = page.text().await.expect("the login page's text");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field on the login page")
        .to_string();
    let ok = http
        .post(format!("{base}/login"))
        .header("Cookie", &pre)
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("the login answer");
    ok.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .find(|c| c.starts_with("guild_sync_session="))
        .expect("a session cookie")
}

/// The median of `samples` (the upper one of an even count), as the benchmarks report it.
pub fn median(mut samples: Vec<std::time::Duration>) -> std::time::Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Shared with `guild-sync bench` (its start-up figure), which has no test-support.
pub use crate::bench::percentile;

/// The machine's load average (`/proc/loadavg`: 1, 5 and 15 minutes), printed by the benchmarks
/// beside their figures: on a shared machine a latency means little without it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let fields: Vec<&str> = l.split_whitespace().take(3).collect();
            (fields.len() == 3).then(|| fields.join(" "))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// How an API benchmark loads one route: `clients` concurrent clients send authenticated GETs of
/// `url` until `max_requests` are sent or `max_duration` has passed.
pub struct GetLoad<'a> {
    pub url: String,
    pub bearer: &'a str,
    pub clients: usize,
    pub max_requests: usize,
    pub max_duration: std::time::Duration,
    /// Sent as `If-None-Match`; a request then counts only when answered 304 (else 200).
    pub if_none_match: Option<&'a str>,
}

/// Run `load`: the sorted latencies of the requests answered as expected, how many were not,
/// and how long it took.
pub async fn load_get(load: GetLoad<'_>) -> (Vec<std::time::Duration>, usize, std::time::Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.clients)
        .build()
        .expect("a benchmark client");
    let expected = if load.if_none_match.is_some() {
        304
    } else {
        200
    };
    let pace = Pace {
        clients: load.clients,
        max_requests: load.max_requests,
        max_duration: load.max_duration,
    };
    let (url, bearer) = (load.url, load.bearer.to_string());
    let tag = load.if_none_match.map(str::to_string);
    load_requests(&client, pace, expected, move |client| {
        let request = client.get(&url).bearer_auth(&bearer);
        match &tag {
            Some(tag) => request.header(reqwest::header::IF_NONE_MATCH, tag),
            None => request,
        }
    })
    .await
}

/// How a benchmark paces its load: `clients` concurrent clients send until `max_requests` are
/// sent or `max_duration` has passed.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub clients: usize,
    pub max_requests: usize,
    pub max_duration: std::time::Duration,
}

/// Send the requests `request` builds on `client` at `pace`; a request counts when it is
/// answered with the status `expected` and its whole body. Returns the sorted latencies of the
/// requests that counted, how many did not, and how long it took.
pub async fn load_requests<F>(
    client: &reqwest::Client,
    pace: Pace,
    expected: u16,
    request: F,
) -> (Vec<std::time::Duration>, usize, std::time::Duration)
where
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder + Clone + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;
    let issued = std::sync::Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..pace.clients {
        let (client, issued, request) = (
            client.clone(),
            std::sync::Arc::clone(&issued),
            request.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            while issued.fetch_add(1, Ordering::Relaxed) < pace.max_requests
                && started.elapsed() < pace.max_duration
            {
                let t = Instant::now();
                let ok = match request(&client).send().await {
                    Ok(response) if response.status().as_u16() == expected => {
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                };
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await.expect("a load client");
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies, failures, elapsed)
}

/// A fresh database filled by `seed`, printing `seeded {what} in … s`: how the database
/// benchmarks start.
pub async fn seeded_db(what: &str, seed: impl AsyncFnOnce(&TestDb)) -> TestDb {
    let db = TestDb::new().await;
    let started = std::time::Instant::now();
    seed(&db).await;
    println!("seeded {what} in {:.2} s", started.elapsed().as_secs_f64());
    db
}
