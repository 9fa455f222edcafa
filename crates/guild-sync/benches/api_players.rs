//! Benchmark: `GET /api/identity/players?per_page=200` with 1,000 players / 2,500 characters under 64
//! concurrent clients on loopback (requests/s, latency percentiles), and the idle memory
//! (VmRSS) of a `guild-sync serve` process. Run with `cargo bench --bench api_players`.

use std::process::Stdio;
use std::time::Duration;

use guild_sync::testing::{GetLoad, TestDb, load_get, percentile, seeded_db, serve_officer_api};
use tokio::io::{AsyncBufReadExt, BufReader};

const PLAYERS: i32 = 1_000;
const CHARACTERS: i32 = 2_500;
const CLIENTS: usize = 64;
/// The load loop stops at this many requests …
const MAX_REQUESTS: usize = 5_000;
/// … or after this long, whichever comes first.
const MAX_DURATION: Duration = Duration::from_secs(30);
const TOKEN: &str = "bench-token";

async fn seed(db: &TestDb) {
    // Every player has a Discord user; characters are spread 2–3 per player, with classes,
    // specs and ranks set so every join in the query does work.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, highest_guild_role)
         SELECT (100000 + g)::text, 'user' || g, 'User ' || g, 'Member' FROM generate_series(1, {PLAYERS}) g;
         INSERT INTO guild_identity.players (display_name, discord_user_id)
         SELECT 'Player ' || g, du.id FROM generate_series(1, {PLAYERS}) g
         JOIN guild_identity.discord_users du ON du.discord_id = (100000 + g)::text;
         INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, class_id, active_spec_id, guild_rank_id, level)
         SELECT 'Char' || g, 'realm' || (g % 3), s.class_id, s.id,
                (SELECT id FROM common.guild_ranks ORDER BY level LIMIT 1 OFFSET g % 5), 80
         FROM generate_series(1, {CHARACTERS}) g
         JOIN LATERAL (SELECT id, class_id FROM guild_identity.specializations
                       ORDER BY id LIMIT 1 OFFSET g % 39) s ON TRUE;
         INSERT INTO guild_identity.player_characters (player_id, character_id, link_source, confidence)
         SELECT p.id, wc.id, 'exact_name', 'high'
         FROM guild_identity.wow_characters wc
         JOIN guild_identity.players p
           ON p.display_name = 'Player ' || (1 + (substr(wc.character_name, 5)::int - 1) % {PLAYERS});
         ANALYZE;"
    )))
    .execute(&db.pool)
    .await
    .expect("seeding failed");
}

async fn idle_rss_of_serve(db: &TestDb) -> anyhow::Result<(u64, Option<i32>)> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("GUILD_SYNC_BIND", "127.0.0.1:0")
        .env("GUILD_SYNC_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "guild_sync=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().expect("the child is running");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    while let Some(line) = lines.next_line().await? {
        if line.contains("HTTP API listening") {
            break;
        }
    }
    // Let start-up allocations settle before reading the idle figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    Ok((rss_kib, exit.code()))
}

#[tokio::main]
async fn main() {
    let db = seeded_db(
        &format!("{PLAYERS} players / {CHARACTERS} characters"),
        seed,
    )
    .await;
    // The list is paged since issue 16; one page of 200 is the largest answer it gives.
    let url = format!(
        "{}/api/identity/players?per_page=200",
        serve_officer_api(&db, TOKEN).await
    );

    let body = reqwest::Client::new()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["total"], PLAYERS);
    let players = page["players"].as_array().expect("a players array");
    println!("response: {} players, {} bytes", players.len(), body.len());

    let (latencies, failures, elapsed) = load_get(GetLoad {
        url,
        bearer: TOKEN,
        clients: CLIENTS,
        max_requests: MAX_REQUESTS,
        max_duration: MAX_DURATION,
        if_none_match: None,
    })
    .await;
    let ok = latencies.len();
    println!(
        "GET /api/identity/players, {CLIENTS} clients: {ok} ok, {failures} failed in {:.2} s → {:.0} requests/s",
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );

    match idle_rss_of_serve(&db).await {
        Ok((rss_kib, code)) => println!(
            "guild-sync serve idle VmRSS: {:.1} MiB; exit code after SIGTERM: {code:?}",
            rss_kib as f64 / 1024.0
        ),
        Err(err) => println!("could not measure serve's idle memory: {err:#}"),
    }
}
