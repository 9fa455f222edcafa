//! Benchmark (issue 19): the history routes over a year of a 1,000-character guild's history
//! (~100,000 member events) on a real PostgreSQL, one client on loopback, p50/p99 per route.
//! Run with `cargo bench --bench member_events`.

use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use guild_sync::api::{self, AppState};
use guild_sync::config::Secret;
use guild_sync::db_sync::BlizzardSyncStats;
use guild_sync::db_sync::addon::AddonSyncStats;
use guild_sync::discord_sync::DiscordSyncStats;
use guild_sync::identity_engine::MatchStats;
use guild_sync::integrity_checker::CheckStats;
use guild_sync::scheduler::{AddonInput, ReportOutcome, Scheduler, Stages};
use guild_sync::testing::TestDb;

const CHARACTERS: i32 = 1_000;
const PLAYERS: i32 = 400;
const EVENTS: i32 = 100_000;
const REQUESTS: usize = 200;
const TOKEN: &str = "bench-token";

/// The request path of a route's `i`-th request.
type PathFor = Box<dyn Fn(usize) -> String>;

/// The bench never triggers a pipeline.
struct NoStages;

fn unused<T: Send + 'static>() -> BoxFuture<'static, anyhow::Result<T>> {
    async { anyhow::bail!("not used by the benchmark") }.boxed()
}

impl Stages for NoStages {
    fn blizzard_sync(&self) -> BoxFuture<'_, anyhow::Result<BlizzardSyncStats>> {
        unused()
    }
    fn discord_sync(&self) -> BoxFuture<'_, anyhow::Result<DiscordSyncStats>> {
        unused()
    }
    fn addon_sync<'a>(
        &'a self,
        _: &'a AddonInput,
    ) -> BoxFuture<'a, anyhow::Result<AddonSyncStats>> {
        unused()
    }
    fn run_matching(&self) -> BoxFuture<'_, anyhow::Result<MatchStats>> {
        unused()
    }
    fn integrity_check(&self) -> BoxFuture<'_, anyhow::Result<CheckStats>> {
        unused()
    }
    fn report(&self) -> BoxFuture<'_, anyhow::Result<ReportOutcome>> {
        unused()
    }
}

/// 1,000 characters (2–3 per player), 400 players with Discord accounts, and a year of events
/// spread evenly in time over the characters, Discord accounts and players, in the mix a guild
/// produces (mostly rank changes, Discord role changes, joins and leaves).
async fn seed(db: &TestDb) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, highest_guild_role)
         SELECT (100000 + g)::text, 'user' || g, 'User ' || g, 'Member' FROM generate_series(1, {PLAYERS}) g;
         INSERT INTO guild_identity.players (display_name, discord_user_id)
         SELECT 'Player ' || g, du.id FROM generate_series(1, {PLAYERS}) g
         JOIN guild_identity.discord_users du ON du.discord_id = (100000 + g)::text;
         INSERT INTO guild_identity.wow_characters (character_name, realm_slug, level)
         SELECT 'Char' || g, 'realm' || (g % 3), 80 FROM generate_series(1, {CHARACTERS}) g;
         INSERT INTO guild_identity.player_characters (player_id, character_id, link_source, confidence)
         SELECT 1 + (wc.id - 1) % {PLAYERS}, wc.id, 'exact_name', 'high'
         FROM guild_identity.wow_characters wc;
         INSERT INTO guild_identity.member_events
             (event_type, occurred_at, character_id, discord_user_id, player_id, before, after, actor)
         SELECT (ARRAY['rank_changed', 'discord_roles_changed', 'joined_guild', 'left_guild',
                       'returned', 'renamed', 'discord_renamed', 'linked'])[1 + g % 8],
                now() - make_interval(secs => (g::float8 / {EVENTS}) * 365 * 86400),
                CASE WHEN g % 8 IN (1, 6) THEN NULL ELSE 1 + g % {CHARACTERS} END,
                CASE WHEN g % 8 IN (1, 6) THEN 1 + g % {PLAYERS} END,
                CASE WHEN g % 8 IN (1, 6) THEN 1 + g % {PLAYERS} ELSE 1 + (g % {CHARACTERS}) % {PLAYERS} END,
                jsonb_build_object('rank', 'Member', 'name', 'Char' || g),
                jsonb_build_object('rank', 'Veteran', 'promoted', true),
                'engine'
         FROM generate_series(1, {EVENTS}) g;
         ANALYZE;"
    )))
    .execute(&db.pool)
    .await
    .expect("seeding failed");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() {
    guild_sync::install_crypto_provider();
    let db = TestDb::new().await;
    let started = Instant::now();
    seed(&db).await;
    println!(
        "seeded {EVENTS} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let state = AppState {
        pool: db.pool.clone(),
        scheduler: std::sync::Arc::new(Scheduler::new(
            db.pool.clone(),
            std::sync::Arc::new(NoStages),
        )),
        admin_token: Some(Secret::new(TOKEN)),
        api_key: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    let client = reqwest::Client::new();

    let since = (chrono::Utc::now() - chrono::Duration::days(7)).format("%Y-%m-%d");
    let routes: Vec<(&str, PathFor)> = vec![
        (
            "events, newest 100",
            Box::new(|_| "/api/events".to_string()),
        ),
        (
            "events, 500 a page",
            Box::new(|_| "/api/events?per_page=500".to_string()),
        ),
        (
            "events, page 100",
            Box::new(|_| "/api/events?page=100".to_string()),
        ),
        (
            "events, one type",
            Box::new(|_| "/api/events?type=left_guild".to_string()),
        ),
        (
            "events, this week",
            Box::new(move |_| format!("/api/events?since={since}")),
        ),
        (
            "events, one player",
            Box::new(|i| format!("/api/events?player_id={}", 1 + i * 7 % 400)),
        ),
        (
            "player history",
            Box::new(|i| format!("/api/identity/players/{}/history", 1 + i * 13 % 400)),
        ),
    ];
    println!("== History routes over {EVENTS} events, {REQUESTS} sequential requests each");
    println!(
        "{:<22} {:>10} {:>10} {:>10}",
        "route", "p50 ms", "p99 ms", "max ms"
    );
    for (name, path) in routes {
        let mut latencies = Vec::with_capacity(REQUESTS);
        for i in 0..REQUESTS {
            let t = Instant::now();
            let response = client
                .get(format!("{base}{}", path(i)))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{name}: {}",
                response.status()
            );
            let body = response.bytes().await.unwrap();
            assert!(body.len() > 20, "{name}: empty answer");
            latencies.push(t.elapsed());
        }
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name:<22} {:>10.2} {:>10.2} {:>10.2}",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap())
        );
    }
}
