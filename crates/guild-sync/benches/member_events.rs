//! Benchmark of the guild's memory (issue 19).
//!
//! 1. What writing events adds to each sync's database stage, median of 7 runs each, in a
//!    fresh database per run:
//!    - the roster applied to 1,000 characters (first sync = the baseline, no event; identical
//!      re-run = none; every rank changed = 1,000 `rank_changed`; 100 leave; the 100 return);
//!    - a full Discord sync of 3,000 members (first sync = the baseline; identical re-run;
//!      300 nick changes = 300 `discord_renamed`; 300 leave; the 300 return).
//!
//!    For the "before", `scripts/measure-event-cost.sh` builds the same code without the
//!    event writing (`scripts/no-events.patch`) and alternates both builds on these cases and
//!    on `guild-sync bench` (whole syncs, whose third pass is a week of changes).
//!    The database connects with the product's session settings (`db::session_options`, JIT
//!    off), as every sync does.
//! 2. A year of history for a 1,000-character guild (100,000 generated events): p50/p99 of the
//!    history routes (`/api/events` pages and filters, the deepest `page=` (starting at
//!    `api::MAX_OFFSET`), a deeper one refused with a 400, a deep page by the `before=` cursor,
//!    a player's history) and the console pages that show events (overview, player page and
//!    its older timeline page) under concurrent clients. Target: p99 under 50 ms; each line
//!    says whether it met it.
//!
//! Run: `cargo bench -p guild-sync --bench member_events` (`-- sync` or `-- history` for one
//! part)

use std::time::{Duration, Instant};

use guild_sync::api::MAX_OFFSET;
use guild_sync::blizzard_client::{FetchedRoster, ProfileFetch, parse_profile, parse_roster};
use guild_sync::config::{Config, RemovalGuard, Secret};
use guild_sync::db::member_events::EventSource;
use guild_sync::db::{discord_users, reference};
use guild_sync::db_sync::apply_roster;
use guild_sync::discord_sync::{
    GuildRoles, PreparedMembers, RankRoles, Snowflake, WireMember, WireRole, WireUser,
    apply_member_list, prepare_members,
};
use guild_sync::testing::{GetLoad, TestDb, console_login, load_get, percentile, serve_console};
use serde_json::json;

const MEMBERS: usize = 1000;
/// Discord members in the Discord sync cases, and how many of them each changing case touches.
const DISCORD_MEMBERS: u64 = 3000;
const DISCORD_CHANGED: u64 = 300;
const DB_RUNS: usize = 7;
const EVENTS: i64 = 100_000;
const CLIENTS: usize = 4;
const REQUESTS: usize = 400;
const TOKEN: &str = "bench-events-token";
/// The roster database stage's target for 1,000 characters (the `blizzard_sync` bench, issue 3),
/// which writing events must keep: the median under this many milliseconds.
const ROSTER_TARGET_MS: f64 = 50.0;
/// The history routes' target (issue 19): p99 under this many milliseconds.
const TARGET_P99_MS: f64 = 50.0;
/// Events per page in the deep cases.
const DEEP_PER_PAGE: i64 = 500;
/// The deepest page `page=` reads: it starts at `MAX_OFFSET` (events 10,001-10,500).
const DEEPEST_PAGE: i64 = MAX_OFFSET / DEEP_PER_PAGE + 1;
/// A page far past it (events 74,501-75,000): refused by `page=`, read by the `before=` cursor.
const DEEP_PAGE: i64 = 150;

/// The roster: `rank_shift` moves every member's rank; members `0..left` are absent.
fn roster(rank_shift: usize, left: usize) -> FetchedRoster {
    let members: Vec<_> = (left..MEMBERS)
        .map(|i| {
            json!({
                "character": {"id": 1000 + i, "name": format!("Member{i}"), "level": 80,
                              "realm": {"id": 1, "slug": "senjin"}, "playable_class": {"id": 11}},
                "rank": (i + rank_shift) % 6,
            })
        })
        .collect();
    let doc = json!({"guild": {"name": "Bench", "realm": {"slug": "senjin", "name": "Sen'jin"}},
                     "members": members});
    let roster = parse_roster(doc.to_string().as_bytes()).expect("valid roster");
    let profiles = roster
        .members
        .iter()
        .map(|m| {
            let p = json!({"id": m.character.id, "name": m.character.name,
                           "realm": {"slug": "senjin", "name": "Sen'jin"},
                           "character_class": {"id": 11, "name": "Druid"},
                           "active_spec": {"id": 102, "name": "Balance"}, "level": 80,
                           "achievement_points": 10_000, "equipped_item_level": 620,
                           "last_login_timestamp": 1_763_000_000_000i64});
            ProfileFetch::Found(Box::new(
                parse_profile(p.to_string().as_bytes()).expect("valid profile"),
            ))
        })
        .collect();
    FetchedRoster { roster, profiles }
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// One line per case: its median, and against `target` (ms) when there is one.
fn print_medians(cases: &[&str], samples: Vec<Vec<Duration>>, target: Option<f64>) {
    for (name, s) in cases.iter().zip(samples) {
        let median = median_ms(s);
        let verdict = match target {
            Some(target) if median < target => "met",
            Some(_) => "MISSED",
            None => "",
        };
        println!("{name:<32} {median:>8.1} ms  {verdict}");
    }
}

async fn sync_costs() {
    roster_costs().await;
    discord_costs().await;
}

async fn roster_costs() {
    println!(
        "== Roster database stage, {MEMBERS} characters, median of {DB_RUNS}; target < {ROSTER_TARGET_MS} ms"
    );
    let guard = RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    };
    let (first, promoted, left) = (roster(0, 0), roster(1, 0), roster(1, 100));
    let scenarios = [
        "first sync (baseline, no event)",
        "identical re-run",
        "every rank changed",
        "100 leave",
        "the 100 return",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); scenarios.len()];
    for _ in 0..DB_RUNS {
        let db = TestDb::new().await;
        for (i, input) in [&first, &first, &promoted, &left, &promoted]
            .into_iter()
            .enumerate()
        {
            let t = Instant::now();
            apply_roster(&db.pool, input, guard, EventSource::unrecorded())
                .await
                .expect("apply");
            samples[i].push(t.elapsed());
        }
    }
    print_medians(&scenarios, samples, Some(ROSTER_TARGET_MS));
}

/// The Discord member list: member `i` of `0..DISCORD_MEMBERS` (snowflake `200_000_000 + i`,
/// roles cycling through the guild's), members `0..renamed` with a new nick, members in
/// `absent` left out.
fn discord_members(renamed: u64, absent: std::ops::Range<u64>) -> (Vec<WireRole>, Vec<WireMember>) {
    let id = |n: u64| Snowflake::parse(&n.to_string()).expect("digits");
    let roles = [
        "@everyone",
        "GM",
        "Officer",
        "Veteran",
        "Member",
        "Initiate",
    ]
    .iter()
    .zip(0..)
    .map(|(name, i)| WireRole {
        id: id(900 + i),
        name: (*name).to_owned(),
        position: i as i64,
    })
    .collect();
    let joined = "2024-01-01T10:00:00Z".parse().expect("a timestamp");
    let members = (0..DISCORD_MEMBERS)
        .filter(|i| !absent.contains(i))
        .map(|i| WireMember {
            user: WireUser {
                id: id(200_000_000 + i),
                username: format!("member_{i}"),
                global_name: Some(format!("Member {i}")),
                bot: false,
            },
            nick: Some(if i < renamed {
                format!("Renamed{i}")
            } else {
                format!("Nick{i}")
            }),
            roles: vec![id(901 + i % 5)],
            joined_at: Some(joined),
        })
        .collect();
    (roles, members)
}

async fn discord_costs() {
    println!("== Discord full sync database stage, {DISCORD_MEMBERS} members, median of {DB_RUNS}");
    let guard = RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    };
    let changed = DISCORD_CHANGED;
    let lists = [
        discord_members(0, 0..0),
        discord_members(changed, 0..0),
        discord_members(changed, changed..2 * changed),
    ];
    let scenarios = [
        "first sync (baseline, no event)",
        "identical re-run",
        "300 nick changes",
        "300 leave",
        "the 300 return",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); scenarios.len()];
    for _ in 0..DB_RUNS {
        let db = TestDb::new().await;
        let ranks = RankRoles::new(&reference::guild_ranks(&db.pool).await.expect("ranks"));
        let prepared: Vec<PreparedMembers> = lists
            .iter()
            .map(|(roles, members)| prepare_members(members, &GuildRoles::new(roles), &ranks))
            .collect();
        for (i, input) in [0, 0, 1, 2, 1].into_iter().enumerate() {
            let t = Instant::now();
            let taken_at = discord_users::clock(&db.pool).await.expect("clock");
            apply_member_list(
                &db.pool,
                &prepared[input],
                taken_at,
                guard,
                EventSource::unrecorded(),
            )
            .await
            .expect("apply");
            samples[i].push(t.elapsed());
        }
    }
    print_medians(&scenarios, samples, None);
}

/// 1,000 characters (300 players own 700 of them), 2,000 Discord members, and `EVENTS` events
/// spread over the last 365 days (as `guild-sync bench` seeds them).
async fn seed_history(db: &TestDb) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name)
         SELECT (100000 + g)::text, 'user' || g, 'User ' || g FROM generate_series(1, 2000) g;
         INSERT INTO guild_identity.wow_characters (character_name, realm_slug, level, last_login_at)
         SELECT 'Char' || g, 'senjin', 80, now() - (g % 60) * interval '1 day'
         FROM generate_series(1, {MEMBERS}) g;
         INSERT INTO guild_identity.players (display_name, discord_user_id)
         SELECT 'Player ' || g, du.id FROM generate_series(1, 300) g
         JOIN guild_identity.discord_users du ON du.discord_id = (100000 + g)::text;
         INSERT INTO guild_identity.player_characters (player_id, character_id, link_source, confidence)
         SELECT p.id, wc.id, 'exact_name', 'high'
         FROM guild_identity.wow_characters wc
         JOIN guild_identity.players p
           ON p.display_name = 'Player ' || (1 + (substr(wc.character_name, 5)::int - 1) % 300)
         WHERE substr(wc.character_name, 5)::int <= 700;
         ANALYZE;"
    )))
    .execute(&db.pool)
    .await
    .expect("seeding failed");
    guild_sync::bench::history::seed_a_year(&db.pool, EVENTS)
        .await
        .expect("seeding the events failed");
}

async fn history_routes() {
    let db = TestDb::new().await;
    let t = Instant::now();
    seed_history(&db).await;
    println!(
        "== History: {EVENTS} events (a year, {MEMBERS} characters) seeded in {:.1} s; {CLIENTS} clients, {REQUESTS} requests each route",
        t.elapsed().as_secs_f64()
    );
    let pool = guild_sync::db::connect(db.connect_options()).await.unwrap();
    let mut config = Config::defaults();
    config.guild_sync_admin_token = Some(Secret::new(TOKEN));
    let base = serve_console(pool, &config).await;
    let player: i32 = sqlx::query_scalar("SELECT min(id) FROM guild_identity.players")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // The cursor that reads page DEEP_PAGE (which `page=` refuses): the last event before it.
    let deep_cursor: i64 = sqlx::query_scalar(
        "SELECT id FROM guild_identity.member_events ORDER BY occurred_at DESC, id DESC
         OFFSET $1 LIMIT 1",
    )
    .bind((DEEP_PAGE - 1) * DEEP_PER_PAGE - 1)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // The player's timeline one page (100 events) down.
    let timeline_cursor: i64 = sqlx::query_scalar(
        "SELECT id FROM guild_identity.member_events WHERE player_id = $1
         ORDER BY occurred_at DESC, id DESC OFFSET 99 LIMIT 1",
    )
    .bind(player)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = console_login(&http, &base, TOKEN).await;
    println!(
        "{:<60} {:>8} {:>8} {:>8}  target p99 < {TARGET_P99_MS} ms",
        "route", "p50 ms", "p99 ms", "failed"
    );
    let api = [
        "/api/events".to_string(),
        "/api/events?per_page=500".into(),
        format!("/api/events?page={DEEPEST_PAGE}&per_page={DEEP_PER_PAGE}"),
        format!("/api/events?before={deep_cursor}&per_page={DEEP_PER_PAGE}"),
        "/api/events?type=rank_changed".into(),
        format!("/api/events?player_id={player}"),
        "/api/events?since=2026-11-01T00:00:00Z&type=left_guild".into(),
        format!("/api/identity/players/{player}/history"),
        format!("/api/identity/players/{player}/history?limit=500"),
    ];
    for route in &api {
        let (latencies, failures, _) = load_get(GetLoad {
            url: format!("{base}{route}"),
            bearer: TOKEN,
            clients: CLIENTS,
            max_requests: REQUESTS,
            max_duration: Duration::from_secs(60),
            if_none_match: None,
        })
        .await;
        report(route, &latencies, failures);
    }
    // Past the deepest page: the 400 naming the cursor, answered before any event is read.
    let refused = format!("/api/events?page={DEEP_PAGE}&per_page={DEEP_PER_PAGE}");
    let (latencies, failures) = one_client(
        || http.get(format!("{base}{refused}")).bearer_auth(TOKEN),
        400,
    )
    .await;
    report(&format!("{refused} = 400 (1 client)"), &latencies, failures);
    for page in [
        "/".to_string(),
        format!("/players/{player}"),
        format!("/players/{player}?before={timeline_cursor}"),
    ] {
        let (latencies, failures) = one_client(
            || http.get(format!("{base}{page}")).header("Cookie", &cookie),
            200,
        )
        .await;
        report(&format!("console {page} (1 client)"), &latencies, failures);
    }
}

/// `REQUESTS` requests one after another: the sorted latencies of those answered `expected`
/// (body read), and how many were not.
async fn one_client(
    request: impl Fn() -> reqwest::RequestBuilder,
    expected: u16,
) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let mut failures = 0;
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let ok = match request().send().await {
            Ok(r) => r.status().as_u16() == expected && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            latencies.push(t.elapsed());
        } else {
            failures += 1;
        }
    }
    latencies.sort();
    (latencies, failures)
}

fn report(route: &str, latencies: &[Duration], failures: usize) {
    let p99 = percentile(latencies, 0.99).as_secs_f64() * 1e3;
    let verdict = if failures == 0 && p99 < TARGET_P99_MS {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "{route:<60} {:>8.2} {p99:>8.2} {failures:>8}  {verdict}",
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    guild_sync::install_crypto_provider();
    // `-- sync` or `-- history` runs one part (cargo passes `--bench` itself).
    let part = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    if part.as_deref() != Some("history") {
        sync_costs().await;
    }
    if part.as_deref() != Some("sync") {
        history_routes().await;
    }
}
