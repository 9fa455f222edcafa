//! Benchmark: every officer console page under 16 concurrent clients at 1,000 characters ×
//! 50,000 Discord members (latency p50/p99 per page against the target p99 < 50 ms, issue 16
//! §3). Run with `cargo bench --bench console_pages`. Each page is measured in its steady state:
//! every client sends one unmeasured request first (pool connections open, statements
//! prepared, kept answers at the current data stamp).

use std::time::Duration;

use guild_sync::testing::{
    Pace, TestDb, console_login, load_average, load_requests, percentile, seeded_db,
    serve_console_for,
};

const CHARACTERS: i32 = 1_000;
const MEMBERS: i32 = 50_000;
const CLIENTS: usize = 16;
const REQUESTS_PER_PAGE: usize = 800;
/// Issue 16 §3: every dashboard page's p99 at 16 clients.
const TARGET_P99_MS: f64 = 50.0;
const TOKEN: &str = "bench-console-token";

async fn seed(db: &TestDb) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, highest_guild_role)
         SELECT (100000 + g)::text, 'user' || g, 'User ' || g, CASE WHEN g % 10 = 0 THEN 'Member' END
         FROM generate_series(1, {MEMBERS}) g;
         INSERT INTO guild_identity.wow_characters (character_name, realm_slug, class_id, guild_rank_id, level)
         SELECT 'Char' || g, 'realm' || (g % 3), 1 + g % 13,
                (SELECT id FROM common.guild_ranks ORDER BY level LIMIT 1 OFFSET g % 5), 80
         FROM generate_series(1, {CHARACTERS}) g;
         INSERT INTO guild_identity.players (display_name, discord_user_id)
         SELECT 'Player ' || g, du.id FROM generate_series(1, 400) g
         JOIN guild_identity.discord_users du ON du.discord_id = (100000 + g)::text;
         INSERT INTO guild_identity.player_characters (player_id, character_id, link_source, confidence)
         SELECT p.id, wc.id, 'exact_name', 'high'
         FROM guild_identity.wow_characters wc
         JOIN guild_identity.players p ON p.display_name = 'Player ' || substr(wc.character_name, 5)
         WHERE substr(wc.character_name, 5)::int <= 400;
         INSERT INTO guild_identity.audit_issues (issue_type, severity, wow_character_id, discord_member_id, summary, details, issue_hash)
         SELECT 'auto_link_suggestion', 'info', wc.id, du.id, 'suggestion ' || g,
                jsonb_build_object('score', 0.75, 'kind', 'similar'), 'sugg' || g
         FROM generate_series(401, 700) g
         JOIN guild_identity.wow_characters wc ON wc.character_name = 'Char' || g
         JOIN guild_identity.discord_users du ON du.discord_id = (100000 + g)::text;
         INSERT INTO guild_identity.audit_issues (issue_type, severity, discord_member_id, summary, issue_hash)
         SELECT 'orphan_discord', 'warning', du.id, 'orphan ' || du.id, 'orph' || du.id
         FROM guild_identity.discord_users du WHERE du.highest_guild_role IS NOT NULL;
         INSERT INTO guild_identity.sync_log (source, status, started_at, completed_at, duration_seconds)
         SELECT 'pipeline:discord', 'success', now() - g * interval '15 minutes',
                now() - g * interval '15 minutes' + interval '3 seconds', 3
         FROM generate_series(1, 2000) g;
         ANALYZE;"
    )))
    .execute(&db.pool)
    .await
    .expect("seeding failed");
}

/// `requests` GETs of `url` with the session `cookie`, from [`CLIENTS`] concurrent clients.
async fn load(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    requests: usize,
) -> (Vec<Duration>, usize) {
    let pace = Pace {
        clients: CLIENTS,
        max_requests: requests,
        max_duration: Duration::MAX,
    };
    let (url, cookie) = (url.to_string(), cookie.to_string());
    let (latencies, failures, _) = load_requests(http, pace, 200, move |http| {
        http.get(&url).header("Cookie", &cookie)
    })
    .await;
    (latencies, failures)
}

#[tokio::main]
async fn main() {
    let db = seeded_db(
        &format!("{CHARACTERS} characters x {MEMBERS} members"),
        seed,
    )
    .await;
    let base = serve_console_for(&db, TOKEN).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let cookie = console_login(&http, &base, TOKEN).await;
    let player: i32 = sqlx::query_scalar("SELECT min(id) FROM guild_identity.players")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let pages = [
        "/".to_string(),
        "/review".into(),
        "/issues".into(),
        "/issues?type=orphan_discord&state=all&page=3".into(),
        "/unclaimed".into(),
        "/players".into(),
        "/players?q=char12".into(),
        format!("/players/{player}"),
        "/runs".into(),
        "/upload".into(),
    ];
    println!("{CLIENTS} clients, {REQUESTS_PER_PAGE} requests per page");
    println!("load average at start: {}", load_average());
    println!(
        "{:<45} {:>9} {:>9} {:>9}  {:<22} load",
        "page", "p50 ms", "p99 ms", "failures", "target p99 < 50 ms"
    );
    for page in &pages {
        let url = format!("{base}{page}");
        // Warm-up, not counted: one request per client.
        load(&http, &url, &cookie, CLIENTS).await;
        let (latencies, failures) = load(&http, &url, &cookie, REQUESTS_PER_PAGE).await;
        let p99 = percentile(&latencies, 0.99).as_secs_f64() * 1e3;
        let verdict = if failures == 0 && p99 < TARGET_P99_MS {
            "ok"
        } else {
            "OVER TARGET"
        };
        println!(
            "{:<45} {:>9.2} {:>9.2} {:>9}  {:<22} {}",
            page,
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            p99,
            failures,
            verdict,
            load_average()
        );
    }
    println!("load average at end: {}", load_average());
}
