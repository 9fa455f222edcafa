//! Benchmark of `check`: a guild of 1,000 characters and a 50,000-member Discord. Two shapes:
//! the issue's "half of them in issues" (25,000 Discord members holding a guild role with no
//! player, 25,650 open issues), and a realistic one where half the *guild* is in issues (500
//! such members, 1,150 open issues). Prints the first run (every issue new), a second run with
//! nothing changed, and a run after a few causes changed. Targets: under 200 ms and under
//! 100 ms. Run with `cargo bench --bench integrity`.

use std::time::{Duration, Instant};

use guild_sync::config::Config;
use guild_sync::integrity_checker::run_integrity_check;
use guild_sync::testing::{TestDb, median};
use sqlx::PgPool;

/// Repetitions per figure; the median is reported.
const ROUNDS: usize = 5;

/// Seed the guild; `orphans` Discord members hold the guild role `Member` with no player.
async fn seed(pool: &PgPool, orphans: i32) {
    let sql = format!(
        "-- 1,000 characters: 500 linked to players with a Discord account, 500 orphans.
         INSERT INTO guild_identity.wow_characters (character_name, realm_slug, guild_rank_id,
                                                    last_login_at, last_api_sync)
         SELECT 'Char' || g, 'area-52',
                (SELECT id FROM common.guild_ranks WHERE ingame_rank_index = g % 5),
                -- 100 of them stale.
                CASE WHEN g % 10 = 0 THEN now() - interval '60 days' ELSE now() END, now()
         FROM generate_series(1, 1000) g;
         -- 50,000 Discord users: 500 linked, {orphans} with a guild role and no player, the
         -- rest visitors without a guild role.
         INSERT INTO guild_identity.discord_users (discord_id, username, display_name,
                                                   highest_guild_role)
         SELECT (100000 + g)::text, 'user' || g, 'User ' || g,
                CASE WHEN g <= 500 THEN
                         -- 50 of the linked ones have the wrong role.
                         CASE WHEN g % 10 = 0 THEN 'Initiate'
                              ELSE (SELECT discord_role_name FROM common.guild_ranks
                                    WHERE ingame_rank_index = g % 5) END
                     WHEN g <= 500 + {orphans} THEN 'Member'
                     ELSE NULL END
         FROM generate_series(1, 50000) g;
         INSERT INTO guild_identity.players (display_name, discord_user_id)
         SELECT 'Player' || g, du.id FROM generate_series(1, 500) g
         JOIN guild_identity.discord_users du ON du.username = 'user' || g;
         INSERT INTO guild_identity.player_characters (player_id, character_id)
         SELECT p.id, wc.id FROM generate_series(1, 500) g
         JOIN guild_identity.players p ON p.display_name = 'Player' || g
         JOIN guild_identity.wow_characters wc ON wc.character_name = 'Char' || g;
         ANALYZE;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .expect("seeding failed");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Median durations of one scenario: first run, unchanged second run, run after 20 changes.
struct Figures {
    issues: u64,
    first: Duration,
    unchanged: Duration,
    changed: Duration,
}

async fn scenario(orphans: i32) -> Figures {
    let db = TestDb::new().await;
    seed(&db.pool, orphans).await;
    let config = Config::defaults();

    let mut first = Vec::new();
    let mut unchanged = Vec::new();
    let mut changed = Vec::new();
    let mut issues = 0;
    for round in 0..ROUNDS {
        sqlx::query("DELETE FROM guild_identity.audit_issues")
            .execute(&db.pool)
            .await
            .unwrap();
        // A real first run meets an empty table, not the dead rows of the round before, which
        // autovacuum would have cleared long before the next hourly check.
        sqlx::query("VACUUM guild_identity.audit_issues")
            .execute(&db.pool)
            .await
            .unwrap();
        let start = Instant::now();
        let stats = run_integrity_check(&db.pool, &config).await.unwrap();
        first.push(start.elapsed());
        issues = stats.new;

        let start = Instant::now();
        let again = run_integrity_check(&db.pool, &config).await.unwrap();
        unchanged.push(start.elapsed());
        assert_eq!(again.new + again.resolved + again.updated, 0);

        // Link 20 orphan characters (resolves 20) and unlink them again next round.
        let sql = if round % 2 == 0 {
            "INSERT INTO guild_identity.player_characters (player_id, character_id)
             SELECT 1, id FROM guild_identity.wow_characters
             WHERE id NOT IN (SELECT character_id FROM guild_identity.player_characters)
             ORDER BY id LIMIT 20"
        } else {
            "DELETE FROM guild_identity.player_characters WHERE player_id = 1 AND character_id > 500"
        };
        sqlx::query(sql).execute(&db.pool).await.unwrap();
        let start = Instant::now();
        run_integrity_check(&db.pool, &config).await.unwrap();
        changed.push(start.elapsed());
    }
    Figures {
        issues,
        first: median(first),
        unchanged: median(unchanged),
        changed: median(changed),
    }
}

#[tokio::main]
async fn main() {
    for (label, orphans) in [
        ("half of the members in issues", 25_000),
        ("half of the guild in issues", 500),
    ] {
        let f = scenario(orphans).await;
        println!(
            "integrity check, {label}: 1,000 characters, 50,000 Discord users, {} open issues",
            f.issues
        );
        println!(
            "  first run (all new):       median {} (target < 200 ms)",
            ms(f.first)
        );
        println!(
            "  second run, nothing new:   median {} (target < 100 ms)",
            ms(f.unchanged)
        );
        println!("  run after 20 causes moved: median {}", ms(f.changed));
    }
}
