//! Benchmark of the officer console's review API (issue 16 §3) at 1,000 characters × 50,000
//! Discord members: every list route's latency percentiles under 16 concurrent clients, the
//! players page (50) under 64 clients, and a 304 answer. Targets: p99 < 50 ms, < 20 ms and
//! < 5 ms. Run with `cargo bench --bench api_console`.
//!
//! Each route is measured in its steady state: every client sends one unmeasured request first
//! (the server's pool then holds its connections, PostgreSQL its prepared statements, and the
//! list answer is kept at the data stamp, as on a server that has been up for a minute). What a
//! request costs when the data has just changed (no kept answer) is measured on its own: one
//! client, the data version bumped before every request.

use std::time::{Duration, Instant};

use guild_sync::testing::{
    GetLoad, TestDb, load_average, load_get, percentile, seeded_db, serve_officer_api,
};
use reqwest::header::ETAG;

const CHARACTERS: i32 = 1_000;
const DISCORD_MEMBERS: i32 = 50_000;
/// Characters 1..=700 are linked to 350 players (two each); the rest are unclaimed.
const LINKED: i32 = 700;
/// Requests per measured route (or fewer when MAX_DURATION ends it first).
const REQUESTS: usize = 2_000;
const MAX_DURATION: Duration = Duration::from_secs(20);
/// Requests of the cache-miss measure (each after a data change).
const MISSES: usize = 100;
const TOKEN: &str = "bench-token";

/// The guild: 1,000 characters, 50,000 members, 350 players, an open suggestion for every
/// unclaimed character, an orphan issue for each too, and officer actions on the players.
async fn seed(db: &TestDb) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO guild_identity.discord_users
             (discord_id, username, display_name, highest_guild_role, all_guild_roles)
         SELECT (100000 + g)::text, 'member' || g, 'Member ' || g,
                CASE WHEN g % 10 = 0 THEN 'Member' END,
                CASE WHEN g % 10 = 0 THEN ARRAY['Member'] ELSE '{{}}'::text[] END
         FROM generate_series(1, {DISCORD_MEMBERS}) g;
         INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, class_id, guild_rank_id, level, last_login_at)
         SELECT 'Char' || g, 'realm' || (g % 3),
                (SELECT id FROM guild_identity.classes ORDER BY id LIMIT 1 OFFSET g % 13),
                (SELECT id FROM common.guild_ranks ORDER BY level LIMIT 1 OFFSET g % 5), 80,
                now() - g * interval '1 hour'
         FROM generate_series(1, {CHARACTERS}) g;
         INSERT INTO guild_identity.players (display_name, discord_user_id)
         SELECT 'Player ' || g, du.id FROM generate_series(1, {LINKED} / 2) g
         JOIN guild_identity.discord_users du ON du.discord_id = (100000 + g)::text;
         INSERT INTO guild_identity.player_characters (player_id, character_id, link_source, confidence)
         SELECT p.id, wc.id, 'exact_name', 'high'
         FROM guild_identity.wow_characters wc
         JOIN guild_identity.players p
           ON p.display_name = 'Player ' || (1 + (substr(wc.character_name, 5)::int - 1) / 2)
         WHERE substr(wc.character_name, 5)::int <= {LINKED};
         INSERT INTO guild_identity.audit_issues
             (issue_type, severity, wow_character_id, discord_member_id, summary, details, issue_hash)
         SELECT 'auto_link_suggestion', 'info', wc.id, du.id,
                wc.character_name || ' may be ' || du.username,
                jsonb_build_object('score', 0.8, 'kind', 'similar'), 'sugg' || wc.id
         FROM guild_identity.wow_characters wc
         JOIN guild_identity.discord_users du
           ON du.discord_id = (100000 + 1000 + substr(wc.character_name, 5)::int)::text
         WHERE substr(wc.character_name, 5)::int > {LINKED};
         INSERT INTO guild_identity.audit_issues
             (issue_type, severity, wow_character_id, summary, issue_hash)
         SELECT 'orphan_wow', 'warning', wc.id, wc.character_name || ' has no player', 'orph' || wc.id
         FROM guild_identity.wow_characters wc
         WHERE substr(wc.character_name, 5)::int > {LINKED};
         INSERT INTO guild_identity.officer_actions (officer, action, target, player_id, note)
         SELECT 'admin token', 'set_main', 'player:' || p.id, p.id, 'bench'
         FROM guild_identity.players p, generate_series(1, 3);
         ANALYZE;"
    )))
    .execute(&db.pool)
    .await
    .expect("seeding failed");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn measure(base: &str, path: &str, clients: usize, tag: Option<&str>, target_ms: f64) {
    let load = |max_requests| GetLoad {
        url: format!("{base}{path}"),
        bearer: TOKEN,
        clients,
        max_requests,
        max_duration: MAX_DURATION,
        if_none_match: tag,
    };
    // Warm-up, not counted: one request per client.
    load_get(load(clients)).await;
    let (latencies, failures, _) = load_get(load(REQUESTS)).await;
    report(
        path,
        clients,
        tag.is_some(),
        &latencies,
        failures,
        target_ms,
    );
}

fn report(
    path: &str,
    clients: usize,
    not_modified: bool,
    latencies: &[Duration],
    failures: usize,
    target_ms: f64,
) {
    let p99 = ms(percentile(latencies, 0.99));
    let verdict = if failures == 0 && p99 < target_ms {
        "ok"
    } else {
        "OVER TARGET"
    };
    println!(
        "GET {path}{} x{clients}: {} ok, {failures} failed; p50 {:.1} ms, p90 {:.1} ms, \
         p99 {p99:.1} ms (target < {target_ms} ms: {verdict}) [load {}]",
        if not_modified {
            " (If-None-Match → 304)"
        } else {
            ""
        },
        latencies.len(),
        ms(percentile(latencies, 0.50)),
        ms(percentile(latencies, 0.90)),
        load_average(),
    );
}

/// `path` with no kept answer: one client, the data version bumped before every request (a
/// statement on a table the lists read), so each answer is built by its queries.
async fn measure_miss(db: &TestDb, base: &str, path: &str, target_ms: f64) {
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for _ in 0..MISSES {
        sqlx::query("UPDATE guild_identity.officer_actions SET note = note WHERE id = 1")
            .execute(&db.pool)
            .await
            .expect("bump the data version");
        let t = Instant::now();
        let ok = match http
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
            _ => false,
        };
        if ok {
            latencies.push(t.elapsed());
        } else {
            failures += 1;
        }
    }
    latencies.sort();
    report(
        &format!("{path} (data changed before each)"),
        1,
        false,
        &latencies,
        failures,
        target_ms,
    );
}

#[tokio::main]
async fn main() {
    let db = seeded_db(
        &format!("{CHARACTERS} characters / {DISCORD_MEMBERS} Discord members"),
        seed,
    )
    .await;
    let base = serve_officer_api(&db, TOKEN).await;
    println!("load average at start: {}", load_average());

    let unclaimed = LINKED + 5;
    let lists = [
        "/api/audit/issues".to_string(),
        "/api/audit/issues?type=orphan_wow&q=char9".to_string(),
        "/api/audit/actions".to_string(),
        "/api/identity/suggestions".to_string(),
        "/api/identity/players".to_string(),
        "/api/identity/players?q=char12".to_string(),
        "/api/identity/players/7".to_string(),
        format!("/api/identity/candidates?character_id={unclaimed}"),
        "/api/identity/candidates?discord_user_id=1010".to_string(),
    ];
    for path in &lists {
        measure(&base, path, 16, None, 50.0).await;
    }
    measure(&base, "/api/identity/players?per_page=50", 64, None, 20.0).await;

    let tag = reqwest::Client::new()
        .get(format!("{base}/api/identity/players"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .headers()[ETAG]
        .to_str()
        .unwrap()
        .to_string();
    measure(&base, "/api/identity/players", 16, Some(&tag), 5.0).await;
    measure(&base, "/api/identity/players", 1, Some(&tag), 5.0).await;

    // Just after a change: the answers are built by their queries.
    for path in &lists {
        measure_miss(&db, &base, path, 50.0).await;
    }
    println!("load average at end: {}", load_average());
}
