//! Benchmark of the Battle.net sync (issue 3): a 1,000-member guild.
//!
//! 1. The fetch against a local fake Battle.net (axum) that enforces 100 requests/s with a
//!    sliding one-second window (429 + `Retry-After: 1` beyond it) and answers after 30 ms of
//!    simulated latency. The rate limit allows ~10 s; the original design took ~50 s.
//! 2. The database write stage alone (`db_sync::apply_roster`) for 1,000 characters on a real
//!    PostgreSQL: the first sync (inserts), an identical second one, and one where every
//!    character changed. Target: under 50 ms.
//!
//! Run: `cargo bench -p guild-sync --bench blizzard_sync`

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use guild_sync::blizzard_client::{
    BlizzardClient, BlizzardSettings, FetchedRoster, ProfileFetch, parse_profile, parse_roster,
};
use guild_sync::config::{RemovalGuard, Secret};
use guild_sync::db::member_events::EventSource;
use guild_sync::db_sync::apply_roster;
use guild_sync::testing::{TestDb, median, serve_on_a_free_port};
use serde_json::{Value, json};

/// Guild size.
const MEMBERS: usize = 1000;
/// What the fake allows per sliding second (Blizzard's limit).
const FAKE_LIMIT_PER_SECOND: usize = 100;
/// Simulated network + server latency per request.
const FAKE_LATENCY: Duration = Duration::from_millis(30);
/// Every Nth member has no profile (404), as long-inactive characters do.
const NOT_FOUND_EVERY: usize = 50;
/// Repetitions of each database measurement.
const DB_RUNS: usize = 7;

const CLASSES: [(i64, &str, i64, &str); 4] = [
    (11, "Druid", 102, "Balance"),
    (1, "Warrior", 71, "Arms"),
    (5, "Priest", 257, "Holy"),
    (8, "Mage", 63, "Fire"),
];

struct Fake {
    roster: Value,
    profiles: HashMap<String, Value>,
    window: std::sync::Mutex<VecDeque<Instant>>,
    requests: AtomicUsize,
    throttled: AtomicUsize,
}

impl Fake {
    /// Admit a request under the sliding-window limit.
    fn admit(&self) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut window = self.window.lock().expect("not poisoned");
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= FAKE_LIMIT_PER_SECOND {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        window.push_back(now);
        true
    }
}

fn throttled() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response()
}

fn guild(n: usize, item_level: i64) -> (Value, HashMap<String, Value>) {
    let mut members = Vec::with_capacity(n);
    let mut profiles = HashMap::new();
    for i in 0..n {
        let (class_id, class_name, spec_id, spec_name) = CLASSES[i % CLASSES.len()];
        let name = if i % 97 == 0 {
            format!("Zatañña{i}")
        } else {
            format!("Member{i}")
        };
        members.push(json!({
            "character": {"id": 1000 + i, "name": name, "level": 80,
                          "realm": {"id": 1, "slug": "senjin"}, "playable_class": {"id": class_id}},
            "rank": i % 6,
        }));
        if i % NOT_FOUND_EVERY != 0 {
            profiles.insert(
                name.to_lowercase(),
                json!({"id": 1000 + i, "name": name, "realm": {"slug": "senjin", "name": "Sen'jin"},
                       "character_class": {"id": class_id, "name": class_name},
                       "active_spec": {"id": spec_id, "name": spec_name},
                       "level": 80, "achievement_points": 10_000 + i,
                       "last_login_timestamp": 1_763_000_000_000i64 + i as i64,
                       "equipped_item_level": item_level, "average_item_level": item_level + 3,
                       "gender": {"type": "MALE"}, "faction": {"type": "HORDE"}}),
            );
        }
    }
    let roster = json!({"guild": {"name": "Bench Guild", "realm": {"slug": "senjin", "name": "Sen'jin"}},
                        "members": members});
    (roster, profiles)
}

async fn start_fake() -> (String, Arc<Fake>) {
    let (roster, profiles) = guild(MEMBERS, 620);
    let fake = Arc::new(Fake {
        roster,
        profiles,
        window: std::sync::Mutex::new(VecDeque::new()),
        requests: AtomicUsize::new(0),
        throttled: AtomicUsize::new(0),
    });
    let app =
        Router::new()
            .route(
                "/oauth/token",
                post(|| async { Json(json!({"access_token": "bench", "expires_in": 86_399})) }),
            )
            .route(
                "/data/wow/guild/{realm}/{guild}/roster",
                get(|State(fake): State<Arc<Fake>>| async move {
                    tokio::time::sleep(FAKE_LATENCY).await;
                    if !fake.admit() {
                        return throttled();
                    }
                    Json(fake.roster.clone()).into_response()
                }),
            )
            .route(
                "/profile/wow/character/{realm}/{name}",
                get(
                    |State(fake): State<Arc<Fake>>,
                     Path((_realm, name)): Path<(String, String)>| async move {
                        tokio::time::sleep(FAKE_LATENCY).await;
                        if !fake.admit() {
                            return throttled();
                        }
                        match fake.profiles.get(&name) {
                            Some(profile) => Json(profile.clone()).into_response(),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    },
                ),
            )
            .with_state(fake.clone());
    (serve_on_a_free_port(app).await, fake)
}

fn settings(base: &str, rps: u32) -> BlizzardSettings {
    BlizzardSettings {
        api_base: base.into(),
        oauth_url: format!("{base}/oauth/token"),
        client_id: "bench".into(),
        client_secret: Secret::new("bench"),
        region: "us".into(),
        locale: "en_US".into(),
        realm_slug: "senjin".into(),
        guild_slug: "bench-guild".into(),
        requests_per_second: rps,
        hourly_budget: guild_sync::blizzard_client::HOURLY_BUDGET,
        max_retries: guild_sync::blizzard_client::MAX_RETRIES,
        base_backoff: guild_sync::blizzard_client::BASE_BACKOFF,
    }
}

fn fetched_from(roster: &Value, profiles: &HashMap<String, Value>) -> FetchedRoster {
    let roster = parse_roster(roster.to_string().as_bytes()).expect("valid roster");
    let profiles = roster
        .members
        .iter()
        .map(|m| match profiles.get(&m.character.name.to_lowercase()) {
            Some(p) => ProfileFetch::Found(Box::new(
                parse_profile(p.to_string().as_bytes()).expect("valid profile"),
            )),
            None => ProfileFetch::NotFound,
        })
        .collect();
    FetchedRoster { roster, profiles }
}

fn median_ms(samples: Vec<Duration>) -> f64 {
    median(samples).as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    guild_sync::install_crypto_provider();
    println!(
        "== Battle.net fetch: {MEMBERS} members, fake enforcing {FAKE_LIMIT_PER_SECOND} req/s, {FAKE_LATENCY:?} latency"
    );
    for rps in [90u32, 100] {
        let (base, fake) = start_fake().await;
        let client = BlizzardClient::new(settings(&base, rps)).expect("client");
        let started = Instant::now();
        let fetched = client.fetch().await.expect("fetch");
        let wall = started.elapsed();
        let count = |f: fn(&ProfileFetch) -> bool| fetched.profiles.iter().filter(|p| f(p)).count();
        println!(
            "client at {rps:>3} req/s: wall {:.2} s; {} requests ({} answered 429); profiles {} found / {} not found / {} failed; floor at this rate {:.2} s",
            wall.as_secs_f64(),
            fake.requests.load(Ordering::Relaxed),
            fake.throttled.load(Ordering::Relaxed),
            count(|p| matches!(p, ProfileFetch::Found(_))),
            count(|p| matches!(p, ProfileFetch::NotFound)),
            count(|p| matches!(p, ProfileFetch::Failed(_))),
            (MEMBERS + 1) as f64 / f64::from(rps),
        );
    }

    println!("== Database write stage (apply_roster), {MEMBERS} characters, median of {DB_RUNS}");
    let (roster, profiles) = guild(MEMBERS, 620);
    let first = fetched_from(&roster, &profiles);
    let (_, changed_profiles) = guild(MEMBERS, 625);
    let changed = fetched_from(&roster, &changed_profiles);
    let guard = RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    };
    let (mut inserts, mut identical, mut all_changed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..DB_RUNS {
        let db = TestDb::new().await;
        let t = Instant::now();
        let stats = apply_roster(&db.pool, &first, guard, EventSource::unrecorded())
            .await
            .expect("apply");
        inserts.push(t.elapsed());
        assert_eq!(stats.new, MEMBERS);
        let t = Instant::now();
        let stats = apply_roster(&db.pool, &first, guard, EventSource::unrecorded())
            .await
            .expect("apply");
        identical.push(t.elapsed());
        assert_eq!(stats.updated, 0);
        let t = Instant::now();
        let stats = apply_roster(&db.pool, &changed, guard, EventSource::unrecorded())
            .await
            .expect("apply");
        all_changed.push(t.elapsed());
        assert!(stats.updated > 0);
    }
    println!(
        "first sync (1,000 inserts):      {:.1} ms",
        median_ms(inserts)
    );
    println!(
        "identical second sync:           {:.1} ms",
        median_ms(identical)
    );
    println!(
        "every character changed:         {:.1} ms",
        median_ms(all_changed)
    );
}
