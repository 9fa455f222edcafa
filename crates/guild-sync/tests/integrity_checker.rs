//! The integrity checker against a real PostgreSQL: every check, deduplication, automatic
//! resolution of every type, the re-flagging rule and concurrent runs. Rows are seeded with SQL.

mod common;

use std::time::Duration;

use guild_sync::config::Config;
use guild_sync::integrity_checker::{CheckStats, check, run_integrity_check};
use guild_sync::testing::TestDb;
use guild_sync::testing::seed::{link, player};
use guild_sync_core::integrity::{IssueType, issue_hash};
use sqlx::PgPool;

use common::{on_a_fresh_db_within, within};

/// Check and report runs write thousands of rows on a shared machine.
const TWO_MINUTES: Duration = Duration::from_secs(120);

/// An in-guild character on area-52 with the rank of that in-game index, seen just now.
async fn character(pool: &PgPool, name: &str, rank_index: Option<i32>) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, guild_rank_id, last_login_at, last_api_sync)
         VALUES ($1, 'area-52', (SELECT id FROM common.guild_ranks WHERE ingame_rank_index = $2),
                 now(), now())
         RETURNING id",
    )
    .bind(name)
    .bind(rank_index)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A present Discord user with that highest guild role.
async fn discord_user(pool: &PgPool, username: &str, role: Option<&str>) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users (discord_id, username, highest_guild_role,
                                                   all_guild_roles)
         VALUES ((SELECT (1000 + count(*))::text FROM guild_identity.discord_users), $1, $2,
                 CASE WHEN $2::text IS NULL THEN '{}'::text[] ELSE ARRAY[$2::text] END)
         RETURNING id",
    )
    .bind(username)
    .bind(role)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn exec(pool: &PgPool, sql: &'static str) {
    sqlx::raw_sql(sql).execute(pool).await.unwrap();
}

/// A player with a Discord user and one linked in-guild character: no issue at all.
async fn linked_member(pool: &PgPool, name: &str, rank_index: i32, role: &str) -> (i32, i32, i32) {
    let c = character(pool, name, Some(rank_index)).await;
    let d = discord_user(pool, &name.to_lowercase(), Some(role)).await;
    let p = player(pool, name, Some(d)).await;
    link(pool, p, c).await;
    (p, c, d)
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct IssueRow {
    id: i32,
    issue_type: String,
    wow_character_id: Option<i32>,
    discord_member_id: Option<i32>,
    player_id: Option<i32>,
    summary: String,
    details: serde_json::Value,
    issue_hash: String,
    resolved_by: Option<String>,
    resolved: bool,
}

async fn issues(pool: &PgPool) -> Vec<IssueRow> {
    sqlx::query_as(
        "SELECT id, issue_type, wow_character_id, discord_member_id, player_id, summary, details,
                issue_hash, resolved_by, resolved_at IS NOT NULL AS resolved
         FROM guild_identity.audit_issues ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn open_of(pool: &PgPool, t: IssueType) -> Vec<IssueRow> {
    issues(pool)
        .await
        .into_iter()
        .filter(|i| !i.resolved && i.issue_type == t.as_str())
        .collect()
}

async fn run(pool: &PgPool) -> CheckStats {
    run_integrity_check(pool, &Config::defaults())
        .await
        .unwrap()
}

#[tokio::test]
async fn test_orphan_wow_detected() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        linked_member(&db.pool, "Linked", 3, "Member").await;
        let orphan = character(&db.pool, "Thrall", Some(1)).await;
        let gone = character(&db.pool, "Departed", Some(3)).await;
        sqlx::query("UPDATE guild_identity.wow_characters SET removed_at = now() WHERE id = $1")
            .bind(gone)
            .execute(&db.pool)
            .await
            .unwrap();

        let stats = run(&db.pool).await;

        let found = open_of(&db.pool, IssueType::OrphanWow).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].wow_character_id, Some(orphan));
        assert_eq!(
            found[0].issue_hash,
            issue_hash(IssueType::OrphanWow, &[orphan.into()])
        );
        assert_eq!(
            found[0].summary,
            "Thrall-area-52: in the guild as Officer but linked to no player"
        );
        assert_eq!(found[0].details["rank"], "Officer");
        assert_eq!(stats.by_type["orphan_wow"].new, 1);
        assert_eq!(stats.new, 1, "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn test_orphan_discord_detected() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        linked_member(&db.pool, "Linked", 3, "Member").await;
        let orphan = discord_user(&db.pool, "jaina", Some("Veteran")).await;
        discord_user(&db.pool, "visitor", None).await;
        let left = discord_user(&db.pool, "gone", Some("Member")).await;
        sqlx::query("UPDATE guild_identity.discord_users SET is_present = FALSE WHERE id = $1")
            .bind(left)
            .execute(&db.pool)
            .await
            .unwrap();

        run(&db.pool).await;

        let found = open_of(&db.pool, IssueType::OrphanDiscord).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].discord_member_id, Some(orphan));
        assert_eq!(
            found[0].summary,
            "@jaina: has the Discord role Veteran but is linked to no player; they can claim \
             their characters themselves with /claim"
        );
        assert_eq!(issues(&db.pool).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn test_rank_mismatch_detected() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        // Guild Leader in game ↔ "GM" on Discord: a match, not a mismatch.
        linked_member(&db.pool, "Leader", 0, "GM").await;
        // An officer whose Discord role is still Member.
        let (p, _, _) = linked_member(&db.pool, "Promoted", 1, "Member").await;
        // The highest in-guild rank counts: an Initiate alt does not make a Veteran mismatched,
        // and a departed Officer alt does not count at all.
        let (v, _, _) = linked_member(&db.pool, "Vet", 2, "Veteran").await;
        let alt = character(&db.pool, "VetAlt", Some(4)).await;
        link(&db.pool, v, alt).await;
        let old = character(&db.pool, "VetOld", Some(1)).await;
        link(&db.pool, v, old).await;
        sqlx::query("UPDATE guild_identity.wow_characters SET removed_at = now() WHERE id = $1")
            .bind(old)
            .execute(&db.pool)
            .await
            .unwrap();

        run(&db.pool).await;

        let found = open_of(&db.pool, IssueType::RankMismatch).await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].player_id, Some(p));
        assert_eq!(
            found[0].summary,
            "Promoted: in-game rank Officer, which should be Discord role Officer, but has Discord role Member (rank of Promoted, linked by hand)"
        );
        assert_eq!(issues(&db.pool).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn test_dedup_same_issue_hash() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        character(&db.pool, "Thrall", Some(3)).await;
        let first = run(&db.pool).await;
        let second = run(&db.pool).await;
        let third = run(&db.pool).await;
        assert_eq!((first.new, first.still_open), (1, 0));
        assert_eq!((second.new, second.still_open), (0, 1));
        assert_eq!(third, second);
        assert_eq!(issues(&db.pool).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_changed_cause_updates_the_open_issue_in_place() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let c = character(&db.pool, "Thrall", Some(3)).await;
        run(&db.pool).await;
        sqlx::query(
            "UPDATE guild_identity.wow_characters
             SET guild_rank_id = (SELECT id FROM common.guild_ranks WHERE name = 'Officer')
             WHERE id = $1",
        )
        .bind(c)
        .execute(&db.pool)
        .await
        .unwrap();
        let stats = run(&db.pool).await;
        assert_eq!((stats.new, stats.still_open, stats.updated), (0, 1, 1));
        let all = issues(&db.pool).await;
        assert_eq!(all.len(), 1);
        assert!(all[0].summary.contains("Officer"), "{}", all[0].summary);
    })
    .await;
}

#[tokio::test]
async fn an_issue_without_a_content_fingerprint_is_refreshed_once_then_left_alone() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        character(&db.pool, "Thrall", Some(1)).await;
        run(&db.pool).await;
        // What a row written before `content_hash` existed looks like, with wording that has
        // since changed.
        exec(
            &db.pool,
            "UPDATE guild_identity.audit_issues
             SET content_hash = NULL, summary = 'old wording', details = '{}'",
        )
        .await;
        let stats = run(&db.pool).await;
        assert_eq!((stats.new, stats.still_open, stats.updated), (0, 1, 1));
        let all = issues(&db.pool).await;
        assert_eq!(all.len(), 1);
        assert!(
            all[0].summary.starts_with("Thrall-area-52"),
            "{}",
            all[0].summary
        );
        assert_eq!(all[0].details["rank"], "Officer");

        let again = run(&db.pool).await;
        assert_eq!((again.still_open, again.updated), (1, 0));
    })
    .await;
}

#[tokio::test]
async fn new_issues_are_written_in_reading_order() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        for name in ["zed", "Amy", "mia", "Bob"] {
            discord_user(&db.pool, name, Some("Member")).await;
        }
        run(&db.pool).await;
        let subjects: Vec<String> = open_of(&db.pool, IssueType::OrphanDiscord)
            .await
            .into_iter()
            .map(|i| i.details["username"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(subjects, ["Amy", "Bob", "mia", "zed"]);
    })
    .await;
}

#[tokio::test]
async fn test_resolved_issues_not_reflagged() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let c = character(&db.pool, "Thrall", Some(3)).await;
        run(&db.pool).await;

        // The officer links the character: the cause is gone, the issue resolves itself ...
        let p = player(&db.pool, "Thrall", None).await;
        link(&db.pool, p, c).await;
        let fixed = run(&db.pool).await;
        assert_eq!(fixed.by_type["orphan_wow"].resolved, 1);
        // ... and stays resolved run after run.
        for _ in 0..2 {
            let again = run(&db.pool).await;
            assert_eq!((again.new, again.still_open, again.resolved), (0, 0, 0));
        }
        let all = issues(&db.pool).await;
        assert_eq!(all.len(), 1);
        assert!(all[0].resolved);
        assert_eq!(all[0].resolved_by.as_deref(), Some("auto"));

        // The cause returning (unlinked again) is a new issue.
        exec(&db.pool, "DELETE FROM guild_identity.player_characters").await;
        let back = run(&db.pool).await;
        assert_eq!(back.new, 1);
        assert_eq!(issues(&db.pool).await.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn an_issue_resolved_by_hand_is_not_reflagged_while_its_cause_persists() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let c = character(&db.pool, "Bankalt", Some(4)).await;
        run(&db.pool).await;
        exec(
            &db.pool,
            "UPDATE guild_identity.audit_issues SET resolved_at = now(), resolved_by = 'officer:ana'",
        )
        .await;

        for _ in 0..2 {
            let stats = run(&db.pool).await;
            assert_eq!((stats.new, stats.suppressed), (0, 1), "{stats:?}");
        }
        assert_eq!(issues(&db.pool).await.len(), 1);

        // The cause goes away (linked) and comes back (unlinked): flagged again.
        let p = player(&db.pool, "Bank", None).await;
        link(&db.pool, p, c).await;
        assert_eq!(run(&db.pool).await.suppressed, 0);
        exec(&db.pool, "DELETE FROM guild_identity.player_characters").await;
        let back = run(&db.pool).await;
        assert_eq!((back.new, back.suppressed), (1, 0));
        let open = open_of(&db.pool, IssueType::OrphanWow).await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].wow_character_id, Some(c));
    })
    .await;
}

/// One cause per type, and the change that removes it.
struct Case {
    issue_type: IssueType,
    cause: &'static str,
    cure: &'static str,
}

#[tokio::test]
async fn every_issue_type_resolves_automatically_when_its_cause_is_gone() {
    let cases = [
        Case {
            issue_type: IssueType::OrphanWow,
            cause: "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, last_login_at)
                    VALUES ('Orphan', 'area-52', now())",
            cure: "UPDATE guild_identity.wow_characters SET removed_at = now() WHERE character_name = 'Orphan'",
        },
        Case {
            issue_type: IssueType::OrphanDiscord,
            cause: "INSERT INTO guild_identity.discord_users (discord_id, username, highest_guild_role)
                    VALUES ('77', 'lonely', 'Member')",
            cure: "UPDATE guild_identity.discord_users SET is_present = FALSE, removed_at = now()
                   WHERE username = 'lonely'",
        },
        Case {
            issue_type: IssueType::RankMismatch,
            cause: "UPDATE guild_identity.discord_users SET highest_guild_role = 'Initiate'
                    WHERE username = 'base'",
            cure: "UPDATE guild_identity.discord_users SET highest_guild_role = 'member'
                   WHERE username = 'base'",
        },
        Case {
            issue_type: IssueType::NoGuildRole,
            cause: "UPDATE guild_identity.discord_users SET highest_guild_role = NULL
                    WHERE username = 'base'",
            cure: "UPDATE guild_identity.discord_users SET highest_guild_role = 'Member'
                   WHERE username = 'base'",
        },
        Case {
            // An unlinked character (so also an orphan: leaving the guild cures both).
            issue_type: IssueType::StaleCharacter,
            cause: "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, last_login_at)
                    VALUES ('Sleepy', 'area-52', now() - interval '45 days')",
            cure: "UPDATE guild_identity.wow_characters SET removed_at = now()
                   WHERE character_name = 'Sleepy'",
        },
        Case {
            // A linked character is judged with its player (issue 19).
            issue_type: IssueType::InactivePlayer,
            cause: "UPDATE guild_identity.wow_characters SET last_login_at = now() - interval '45 days'
                    WHERE character_name = 'Base'",
            cure: "UPDATE guild_identity.wow_characters SET last_login_at = now()
                   WHERE character_name = 'Base'",
        },
        Case {
            issue_type: IssueType::FormerMemberHasRole,
            cause: "UPDATE guild_identity.wow_characters SET removed_at = now()
                    WHERE character_name = 'Base'",
            cure: "UPDATE guild_identity.wow_characters SET removed_at = NULL
                   WHERE character_name = 'Base'",
        },
        Case {
            issue_type: IssueType::DuplicateDiscord,
            // The unique constraint makes this impossible today; the check exists to catch it
            // being bypassed, so this test bypasses it.
            cause: "ALTER TABLE guild_identity.players DROP CONSTRAINT players_discord_user_id_key;
                    INSERT INTO guild_identity.players (display_name, discord_user_id)
                    SELECT 'Impostor', id FROM guild_identity.discord_users WHERE username = 'base'",
            cure: "DELETE FROM guild_identity.players WHERE display_name = 'Impostor'",
        },
        Case {
            issue_type: IssueType::AutoLinkSuggestion,
            cause: "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, last_login_at)
                        VALUES ('Sugg', 'area-52', now());
                    INSERT INTO guild_identity.discord_users (discord_id, username, highest_guild_role)
                        VALUES ('88', 'suggy', 'Member');
                    INSERT INTO guild_identity.audit_issues (issue_type, severity, wow_character_id,
                            discord_member_id, summary, details, issue_hash)
                        SELECT 'auto_link_suggestion', 'info', wc.id, du.id, 'Sugg ↔ suggy', '{}',
                               'suggestion-hash'
                        FROM guild_identity.wow_characters wc, guild_identity.discord_users du
                        WHERE wc.character_name = 'Sugg' AND du.username = 'suggy'",
            // The officer links the character to the suggested Discord user's new player.
            cure: "INSERT INTO guild_identity.players (display_name, discord_user_id)
                       SELECT 'Suggy', id FROM guild_identity.discord_users WHERE username = 'suggy';
                   INSERT INTO guild_identity.player_characters (player_id, character_id)
                       SELECT p.id, wc.id FROM guild_identity.players p, guild_identity.wow_characters wc
                       WHERE p.display_name = 'Suggy' AND wc.character_name = 'Sugg'",
        },
    ];
    within(TWO_MINUTES, async {
        for case in cases {
            let db = TestDb::new().await;
            linked_member(&db.pool, "Base", 3, "Member").await;
            exec(&db.pool, case.cause).await;
            run(&db.pool).await;
            let open = open_of(&db.pool, case.issue_type).await;
            assert_eq!(open.len(), 1, "{:?}: {open:?}", case.issue_type);

            exec(&db.pool, case.cure).await;
            let stats = run(&db.pool).await;
            assert_eq!(
                stats.by_type[case.issue_type.as_str()].resolved,
                1,
                "{:?}: {stats:?}",
                case.issue_type
            );
            // Nothing stays open: the cure removes every cause the case created.
            let all = issues(&db.pool).await;
            assert!(
                all.iter()
                    .all(|i| i.resolved && i.resolved_by.as_deref() == Some("auto")),
                "{:?}: {all:?}",
                case.issue_type
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_suggestion_stays_open_while_it_still_makes_sense_and_resolves_when_the_user_leaves() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let c = character(&db.pool, "Sugg", Some(3)).await;
        let d = discord_user(&db.pool, "suggy", Some("Member")).await;
        sqlx::query(
            "INSERT INTO guild_identity.audit_issues (issue_type, severity, wow_character_id,
                 discord_member_id, summary, issue_hash)
             VALUES ('auto_link_suggestion', 'info', $1, $2, 'Sugg ↔ suggy', $3)",
        )
        .bind(c)
        .bind(d)
        .bind(issue_hash(
            IssueType::AutoLinkSuggestion,
            &[c.into(), d.into()],
        ))
        .execute(&db.pool)
        .await
        .unwrap();
        run(&db.pool).await;
        assert_eq!(
            open_of(&db.pool, IssueType::AutoLinkSuggestion).await.len(),
            1
        );
        exec(
            &db.pool,
            "UPDATE guild_identity.discord_users SET is_present = FALSE",
        )
        .await;
        let stats = run(&db.pool).await;
        assert_eq!(stats.by_type["auto_link_suggestion"].resolved, 1);
    })
    .await;
}

#[tokio::test]
async fn stale_characters_use_the_last_profile_fetch_when_no_login_time_is_known() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        exec(
            &db.pool,
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, last_login_at, last_api_sync) VALUES
                ('Fresh', 'area-52', now() - interval '29 days', now() - interval '90 days'),
                ('Old', 'area-52', now() - interval '31 days', now()),
                ('NoLogin', 'area-52', NULL, now() - interval '40 days'),
                ('NoLoginFresh', 'area-52', NULL, now()),
                ('NeverSeen', 'area-52', NULL, NULL)",
        )
        .await;
        let stats = check(&db.pool, 30).await.unwrap();
        assert_eq!(stats.by_type["stale_character"].new, 2);
        let stale = open_of(&db.pool, IssueType::StaleCharacter).await;
        let mut summaries: Vec<&str> = stale.iter().map(|i| i.summary.as_str()).collect();
        summaries.sort();
        assert!(summaries[0].starts_with("NoLogin-area-52: no login time known; last profile fetch 40 days ago"), "{summaries:?}");
        assert!(summaries[1].starts_with("Old-area-52: last login 31 days ago"), "{summaries:?}");

        // A larger threshold makes them fresh again.
        let stats = check(&db.pool, 60).await.unwrap();
        assert_eq!(stats.by_type["stale_character"].resolved, 2);
    })
    .await;
}

#[tokio::test]
async fn two_checks_at_the_same_time_leave_no_duplicate_open_issue() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        for i in 0..50 {
            character(&db.pool, &format!("Char{i}"), Some(3)).await;
            discord_user(&db.pool, &format!("user{i}"), Some("Member")).await;
        }
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let pool = db.pool.clone();
                tokio::spawn(async move { run(&pool).await })
            })
            .collect();
        let mut new = 0;
        for r in runs {
            new += r.await.unwrap().new;
        }
        assert_eq!(new, 100, "each cause is new in exactly one run");
        let duplicates: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT issue_hash FROM guild_identity.audit_issues
             WHERE resolved_at IS NULL GROUP BY issue_hash HAVING count(*) > 1) d",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(duplicates, 0);
        assert_eq!(issues(&db.pool).await.len(), 100);
    })
    .await;
}

#[tokio::test]
async fn a_check_is_recorded_as_a_run() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        character(&db.pool, "Thrall", Some(3)).await;
        run(&db.pool).await;
        let (source, status, new, details): (String, String, Option<i32>, serde_json::Value) =
            sqlx::query_as(
                "SELECT source, status, characters_new, details FROM guild_identity.sync_log",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(
            (source.as_str(), status.as_str(), new),
            ("check", "success", Some(1))
        );
        assert_eq!(details["by_type"]["orphan_wow"]["new"], 1);
    })
    .await;
}

#[tokio::test]
async fn the_check_command_prints_counts_per_type_and_json_stats() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        character(&db.pool, "Thrall", Some(3)).await;
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
            .args(["check", "--json"])
            .env("DATABASE_URL", db.url())
            .env_remove("DISCORD_BOT_TOKEN")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("orphan_wow"), "{stdout}");
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(last["new"], 1);
        assert_eq!(last["by_type"]["orphan_wow"]["new"], 1);
    })
    .await;
}

/// Issue 19: a linked player's alts are judged together — three stale alts and one active one
/// raise nothing; once the active one goes stale too, one `inactive_player` lists all four
/// (and no `stale_character` per alt), while an unlinked stale character keeps its own line.
#[tokio::test]
async fn inactive_player_replaces_stale_character_lines_for_linked_alts() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let pool = &db.pool;
        let (p, main, _) = linked_member(pool, "Active", 3, "Member").await;
        exec(
            pool,
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, last_login_at) VALUES
                ('Alt1', 'area-52', now() - interval '40 days'),
                ('Alt2', 'area-52', now() - interval '50 days'),
                ('Alt3', 'area-52', now() - interval '60 days'),
                ('Loner', 'area-52', now() - interval '70 days')",
        )
        .await;
        let alts: Vec<i32> = sqlx::query_scalar(
            "SELECT id FROM guild_identity.wow_characters WHERE character_name LIKE 'Alt%' ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for alt in alts {
            link(pool, p, alt).await;
        }
        run(pool).await;
        assert!(open_of(pool, IssueType::InactivePlayer).await.is_empty());
        let stale = open_of(pool, IssueType::StaleCharacter).await;
        assert_eq!(stale.len(), 1, "only the unlinked character: {stale:?}");
        assert!(stale[0].summary.starts_with("Loner-area-52"), "{stale:?}");

        sqlx::query(
            "UPDATE guild_identity.wow_characters SET last_login_at = now() - interval '35 days'
             WHERE id = $1",
        )
        .bind(main)
        .execute(pool)
        .await
        .unwrap();
        run(pool).await;
        let inactive = open_of(pool, IssueType::InactivePlayer).await;
        assert_eq!(inactive.len(), 1, "{inactive:?}");
        assert_eq!(inactive[0].player_id, Some(p));
        assert_eq!(
            inactive[0].details["alts"],
            serde_json::json!(["Active-area-52", "Alt1-area-52", "Alt2-area-52", "Alt3-area-52"])
        );
        assert_eq!(inactive[0].details["days_ago"], 35, "the latest login of any character");
        assert!(
            inactive[0].summary.starts_with("Active: last activity 35 days ago"),
            "{}",
            inactive[0].summary
        );
        assert_eq!(open_of(pool, IssueType::StaleCharacter).await.len(), 1);
    })
    .await;
}

/// Issue 19: a player whose characters all left while Discord keeps their guild role raises
/// `former_member_has_role`; role sync's grace period counts from the departure it recorded;
/// the role going away resolves it automatically.
#[tokio::test]
async fn former_member_has_role_opens_feeds_the_grace_period_and_resolves_itself() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let pool = &db.pool;
        let (p, c, d) = linked_member(pool, "Gone", 3, "Member").await;
        linked_member(pool, "Stays", 3, "Member").await;
        sqlx::query(
            "UPDATE guild_identity.wow_characters SET removed_at = now() - interval '3 days'
             WHERE id = $1",
        )
        .bind(c)
        .execute(pool)
        .await
        .unwrap();
        run(pool).await;
        let open = open_of(pool, IssueType::FormerMemberHasRole).await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!((open[0].player_id, open[0].discord_member_id), (Some(p), Some(d)));
        assert!(open[0].summary.contains("Discord still gives Member"), "{}", open[0].summary);

        // Role sync reads the departure from the open issue.
        let recorded: chrono::DateTime<chrono::Utc> =
            open[0].details["left_at"].as_str().unwrap().parse().unwrap();
        let rows = guild_sync::db::roles::members_for_plan(pool).await.unwrap();
        let gone = rows.iter().find(|r| r.player_id == Some(p)).unwrap();
        assert_eq!(gone.last_departure, Some(recorded));
        assert_eq!(gone.present_characters, 0);

        // Discord takes the role away (as the role sync would once the grace period passed).
        exec(
            pool,
            "UPDATE guild_identity.discord_users SET highest_guild_role = NULL, all_guild_roles = '{}'
             WHERE username = 'gone'",
        )
        .await;
        let stats = run(pool).await;
        assert_eq!(stats.by_type["former_member_has_role"].resolved, 1);
        let all: Vec<IssueRow> = issues(pool)
            .await
            .into_iter()
            .filter(|i| i.issue_type == "former_member_has_role")
            .collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].resolved_by.as_deref(), Some("auto"));
    })
    .await;
}
