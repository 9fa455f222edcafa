//! The identity engine against a real PostgreSQL: the requirements' identity_engine tests and
//! the invariants of issue 5. Rows are seeded directly.

mod common;

use guild_sync::identity_engine::run_matching;
use guild_sync::testing::seed::{link, player};
use guild_sync_core::integrity::{IssueType, issue_hash};
use sqlx::PgPool;

use common::on_a_fresh_db;

async fn with_db<F, Fut>(test: F)
where
    F: FnOnce(PgPool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_a_fresh_db(|db| async move {
        test(db.pool.clone()).await;
    })
    .await;
}

async fn character(pool: &PgPool, name: &str, note: Option<&str>, officer: Option<&str>) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, addon_note, addon_officer_note)
         VALUES ($1, 'stormrage', $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(note)
    .bind(officer)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn discord_user(pool: &PgPool, username: &str, display: Option<&str>, role: bool) -> i32 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let snowflake = 100_000 + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name,
             highest_guild_role, all_guild_roles)
         VALUES ($1, $2, $3, $4, CASE WHEN $4 IS NULL THEN '{}'::text[] ELSE ARRAY[$4] END)
         RETURNING id",
    )
    .bind(snowflake.to_string())
    .bind(username)
    .bind(display)
    .bind(role.then_some("Member"))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// (player id, link_source, confidence) of a character's link.
async fn link_of(pool: &PgPool, character_id: i32) -> Option<(i32, String, String)> {
    sqlx::query_as(
        "SELECT player_id, link_source, confidence FROM guild_identity.player_characters
         WHERE character_id = $1",
    )
    .bind(character_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// (display name, discord_user_id) of a player.
async fn player_row(pool: &PgPool, id: i32) -> (String, Option<i32>) {
    sqlx::query_as("SELECT display_name, discord_user_id FROM guild_identity.players WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM guild_identity.{table}"
    )))
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn test_exact_name_match_creates_player() {
    with_db(|pool| async move {
        let c = character(&pool, "Zatañña", None, None).await;
        let u = discord_user(&pool, "zatanna", Some("Zat"), true).await;
        let stats = run_matching(&pool).await.unwrap();
        let (p, source, confidence) = link_of(&pool, c).await.expect("linked");
        assert_eq!(
            (source.as_str(), confidence.as_str()),
            ("exact_name", "high")
        );
        assert_eq!(player_row(&pool, p).await, ("Zat".to_string(), Some(u)));
        assert_eq!(stats.players_created, 1);
        assert_eq!(stats.by_strategy.exact_name, 1);
    })
    .await;
}

#[tokio::test]
async fn test_exact_match_links_to_existing_player() {
    with_db(|pool| async move {
        let u = discord_user(&pool, "thrall", None, true).await;
        let p = player(&pool, "Thrall", Some(u)).await;
        let main = character(&pool, "Goelmain", None, None).await;
        link(&pool, p, main).await;
        let c = character(&pool, "Thrall", None, None).await;
        let stats = run_matching(&pool).await.unwrap();
        assert_eq!(
            link_of(&pool, c).await.map(|l| (l.0, l.1)),
            Some((p, "exact_name".into()))
        );
        assert_eq!(stats.players_created, 0);
        assert_eq!(count(&pool, "players").await, 1);
    })
    .await;
}

#[tokio::test]
async fn test_guild_note_match() {
    with_db(|pool| async move {
        let c = character(&pool, "Healbot", Some("Discord: Bobby."), None).await;
        // A note hint may name any present user, guild role or not.
        let u = discord_user(&pool, "bobby", None, false).await;
        run_matching(&pool).await.unwrap();
        let (p, source, _) = link_of(&pool, c).await.expect("linked");
        assert_eq!(source, "guild_note");
        assert_eq!(player_row(&pool, p).await.1, Some(u));
        let evidence: serde_json::Value = sqlx::query_scalar(
            "SELECT evidence FROM guild_identity.player_characters WHERE character_id = $1",
        )
        .bind(c)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            evidence,
            serde_json::json!({"strategy": "guild_note", "hint": "Bobby", "note": "Discord: Bobby."})
        );
    })
    .await;
}

#[tokio::test]
async fn test_officer_note_match() {
    with_db(|pool| async move {
        let c = character(&pool, "Healbot", Some("raid healer"), Some("DC: carl_99")).await;
        let u = discord_user(&pool, "carl_99", Some("Carl"), true).await;
        let stats = run_matching(&pool).await.unwrap();
        let (p, source, confidence) = link_of(&pool, c).await.expect("linked");
        assert_eq!(
            (source.as_str(), confidence.as_str()),
            ("officer_note", "high")
        );
        assert_eq!(player_row(&pool, p).await, ("Carl".to_string(), Some(u)));
        assert_eq!(stats.by_strategy.officer_note, 1);
    })
    .await;
}

#[tokio::test]
async fn test_alt_grouping_via_notes() {
    with_db(|pool| async move {
        // An alt of a character matched in this run joins its player.
        let main = character(&pool, "Thrall", None, None).await;
        let alt = character(&pool, "Healbot", Some("alt of Thrall"), None).await;
        let u = discord_user(&pool, "thrall", None, true).await;
        // An alt group with no Discord user becomes one player without one.
        let jaina = character(&pool, "Jaina", None, None).await;
        let jalt = character(&pool, "Frostbot", Some("Jaina's alt"), None).await;
        let jalt2 = character(&pool, "Firebot", None, Some("Main: Jaina")).await;
        let stats = run_matching(&pool).await.unwrap();

        let (p, _, _) = link_of(&pool, main).await.unwrap();
        assert_eq!(
            link_of(&pool, alt).await.map(|l| (l.0, l.1)),
            Some((p, "alt_note".into()))
        );
        assert_eq!(player_row(&pool, p).await.1, Some(u));

        let (q, _, _) = link_of(&pool, jaina).await.unwrap();
        assert_ne!(p, q);
        assert_eq!(link_of(&pool, jalt).await.unwrap().0, q);
        assert_eq!(link_of(&pool, jalt2).await.unwrap().0, q);
        assert_eq!(player_row(&pool, q).await, ("Jaina".to_string(), None));
        assert_eq!(stats.players_created, 2);
        assert_eq!(stats.by_strategy.alt_note, 4);
    })
    .await;
}

#[tokio::test]
async fn test_fuzzy_match_below_threshold_skipped() {
    with_db(|pool| async move {
        // thrall vs thrail scores 0.83: a suggestion, not a link.
        let c = character(&pool, "Thrall", None, None).await;
        let u = discord_user(&pool, "thrail", None, true).await;
        // jaina vs varian scores far below 0.70: nothing at all.
        let j = character(&pool, "Jaina", None, None).await;
        discord_user(&pool, "varian", None, true).await;
        let stats = run_matching(&pool).await.unwrap();
        assert_eq!(link_of(&pool, c).await, None);
        assert_eq!(link_of(&pool, j).await, None);
        assert_eq!(count(&pool, "players").await, 0);
        assert_eq!((stats.suggestions, stats.skipped), (1, 2));
        let issue: (String, String, Option<i32>, Option<i32>, String, String) = sqlx::query_as(
            "SELECT issue_type, severity, wow_character_id, discord_member_id, issue_hash, summary
             FROM guild_identity.audit_issues",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(issue.0, "auto_link_suggestion");
        assert_eq!(issue.1, "info");
        assert_eq!((issue.2, issue.3), (Some(c), Some(u)));
        assert_eq!(
            issue.4,
            issue_hash(IssueType::AutoLinkSuggestion, &[c.into(), u.into()])
        );
        assert!(
            issue.5.contains("Thrall") && issue.5.contains("thrail") && issue.5.contains("0.83")
        );
    })
    .await;
}

#[tokio::test]
async fn a_fuzzy_match_above_the_threshold_links_with_medium_confidence() {
    with_db(|pool| async move {
        let c = character(&pool, "Sylvanas", None, None).await;
        discord_user(&pool, "sylvanaz", None, true).await;
        let stats = run_matching(&pool).await.unwrap();
        let (_, source, confidence) = link_of(&pool, c).await.expect("linked");
        assert_eq!(
            (source.as_str(), confidence.as_str()),
            ("fuzzy_name", "medium")
        );
        assert_eq!(stats.by_strategy.fuzzy_name, 1);
    })
    .await;
}

#[tokio::test]
async fn test_no_duplicate_player_creation() {
    with_db(|pool| async move {
        character(&pool, "Thrall", None, None).await;
        character(&pool, "Healbot", Some("alt of Thrall"), None).await;
        character(&pool, "Jaina", None, None).await;
        character(&pool, "Frostbot", Some("Jaina's alt"), None).await;
        character(&pool, "Arthas", None, None).await;
        discord_user(&pool, "thrall", None, true).await;
        discord_user(&pool, "arthes", None, true).await;
        let first = run_matching(&pool).await.unwrap();
        assert!(first.links_created > 0 && first.suggestions == 1);
        let snapshot = (
            count(&pool, "players").await,
            count(&pool, "player_characters").await,
            count(&pool, "audit_issues").await,
        );
        let second = run_matching(&pool).await.unwrap();
        assert_eq!(
            (
                second.players_created,
                second.links_created,
                second.discord_users_attached
            ),
            (0, 0, 0)
        );
        assert_eq!(second.suggestions_new, 0);
        assert_eq!(
            (
                count(&pool, "players").await,
                count(&pool, "player_characters").await,
                count(&pool, "audit_issues").await
            ),
            snapshot
        );
    })
    .await;
}

#[tokio::test]
async fn two_characters_matching_one_unlinked_user_end_up_in_one_player() {
    with_db(|pool| async move {
        let a = character(&pool, "Thrall", None, None).await;
        let b = character(&pool, "Healbot", Some("@thrall"), None).await;
        let c = character(&pool, "Thrałl", None, None).await;
        discord_user(&pool, "thrall", None, true).await;
        let stats = run_matching(&pool).await.unwrap();
        let pa = link_of(&pool, a).await.unwrap().0;
        assert_eq!(link_of(&pool, b).await.unwrap().0, pa);
        assert_eq!(link_of(&pool, c).await.unwrap().0, pa);
        assert_eq!((stats.players_created, stats.links_created), (1, 3));
    })
    .await;
}

#[tokio::test]
async fn a_tie_between_two_users_links_neither_and_is_explained_in_the_stats() {
    with_db(|pool| async move {
        let c = character(&pool, "Thrall", None, None).await;
        let u1 = discord_user(&pool, "thrall", None, true).await;
        let u2 = discord_user(&pool, "orcdude", Some("Thrall"), true).await;
        let stats = run_matching(&pool).await.unwrap();
        assert_eq!(link_of(&pool, c).await, None);
        assert_eq!(stats.ties, 1);
        assert_eq!(
            stats.skip_details[0].candidates,
            [i64::from(u1), i64::from(u2)]
        );
    })
    .await;
}

#[tokio::test]
async fn an_existing_link_is_never_moved_or_removed() {
    with_db(|pool| async move {
        // Officer linked Thrall to Bob's player by hand; every strategy points elsewhere.
        let bob = discord_user(&pool, "bob", None, true).await;
        let p = player(&pool, "Bob", Some(bob)).await;
        let c = character(&pool, "Thrall", Some("Discord: thrall"), None).await;
        link(&pool, p, c).await;
        discord_user(&pool, "thrall", None, true).await;
        let stats = run_matching(&pool).await.unwrap();
        assert_eq!(
            link_of(&pool, c).await,
            Some((p, "manual".into(), "confirmed".into()))
        );
        assert_eq!(stats.characters_considered, 0);
        assert_eq!(count(&pool, "players").await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_failure_mid_apply_leaves_the_database_as_it_was() {
    with_db(|pool| async move {
        character(&pool, "Thrall", None, None).await;
        character(&pool, "Jaina", None, None).await;
        character(&pool, "Arthas", None, None).await;
        let u = discord_user(&pool, "thrall", None, true).await;
        let p = player(&pool, "Jaina", None).await;
        discord_user(&pool, "jaina", None, true).await;
        discord_user(&pool, "arthes", None, true).await;
        // Players get created, then writing the links fails.
        sqlx::raw_sql(
            "CREATE FUNCTION guild_identity.fail_link() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'injected failure'; END $$;
             CREATE TRIGGER fail_link BEFORE INSERT ON guild_identity.player_characters
                 FOR EACH ROW EXECUTE FUNCTION guild_identity.fail_link();",
        )
        .execute(&pool)
        .await
        .unwrap();
        let err = run_matching(&pool).await.unwrap_err();
        assert!(format!("{err:#}").contains("injected failure"), "{err:#}");
        assert_eq!(count(&pool, "players").await, 1);
        assert_eq!(player_row(&pool, p).await.1, None);
        assert_eq!(count(&pool, "player_characters").await, 0);
        assert_eq!(count(&pool, "audit_issues").await, 0);
        let status: String =
            sqlx::query_scalar("SELECT status FROM guild_identity.sync_log WHERE source = 'match'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(status, "error");
        let _ = u;
    })
    .await;
}

#[tokio::test]
async fn a_run_records_its_stats_in_sync_log() {
    with_db(|pool| async move {
        character(&pool, "Thrall", None, None).await;
        discord_user(&pool, "thrall", None, true).await;
        run_matching(&pool).await.unwrap();
        let (status, found, new, details): (String, Option<i32>, Option<i32>, serde_json::Value) =
            sqlx::query_as(
                "SELECT status, characters_found, characters_new, details
                 FROM guild_identity.sync_log WHERE source = 'match'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((status.as_str(), found, new), ("success", Some(1), Some(1)));
        assert_eq!(details["by_strategy"]["exact_name"], 1);
        assert_eq!(details["players_created"], 1);
        assert_eq!(details["links_created"], 1);
        assert_eq!(details["discord_users_attached"], 0);
        assert_eq!(details["suggestions"], 0);
        assert_eq!(details["skipped"], 0);
    })
    .await;
}

#[tokio::test]
async fn the_match_command_prints_its_stats_as_the_last_json_line() {
    on_a_fresh_db(|db| async move {
        character(&db.pool, "Thrall", None, None).await;
        discord_user(&db.pool, "thrall", None, true).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
            .args(["match", "--json"])
            .env("DATABASE_URL", db.url())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let last = stdout.lines().last().unwrap();
        let stats: serde_json::Value = serde_json::from_str(last).unwrap();
        assert_eq!(stats["links_created"], 1);
        assert_eq!(stats["by_strategy"]["exact_name"], 1);
    })
    .await;
}

// ---- Issue 14: precision first, names that list characters, impersonation ------------------

/// A character on `realm` with the in-game rank `rank` (a `common.guild_ranks.name`).
async fn ranked_character(pool: &PgPool, name: &str, realm: &str, rank: Option<&str>) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, guild_rank_id)
         VALUES ($1, $2, (SELECT id FROM common.guild_ranks WHERE name = $3)) RETURNING id",
    )
    .bind(name)
    .bind(realm)
    .bind(rank)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A member with a guild role, its global name and what the server shows (nickname else global
/// name), as `discord_sync` stores them.
async fn member(pool: &PgPool, username: &str, global: Option<&str>, nick: Option<&str>) -> i32 {
    let u = discord_user(pool, username, nick.or(global), true).await;
    sqlx::query("UPDATE guild_identity.discord_users SET global_name = $2 WHERE id = $1")
        .bind(u)
        .bind(global)
        .execute(pool)
        .await
        .unwrap();
    u
}

/// (kind, player_id) of the open suggestion for a character and user.
async fn suggestion(pool: &PgPool, c: i32, u: i32) -> Option<(String, Option<i32>)> {
    sqlx::query_as(
        "SELECT details->>'kind', player_id FROM guild_identity.audit_issues
         WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL
           AND wow_character_id = $1 AND discord_member_id = $2",
    )
    .bind(c)
    .bind(u)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn impersonating_nicknames_link_nothing_and_are_suggested_as_look_alikes() {
    with_db(|pool| async move {
        let gorv = ranked_character(&pool, "Gorvorixdra", "stormrage", Some("Member")).await;
        let nako = ranked_character(&pool, "Nakor", "stormrage", Some("Member")).await;
        let netro = ranked_character(&pool, "Netrodooman", "stormrage", Some("Member")).await;
        let rtl = ranked_character(&pool, "Velindra", "stormrage", Some("Member")).await;
        // A Cyrillic о, fullwidth letters, a zero-width space, a right-to-left override.
        let u1 = member(&pool, "imp1", None, Some("Gorv\u{043E}rixdra")).await;
        let u2 = member(&pool, "imp2", None, Some("Ｎａｋｏｒ")).await;
        let u3 = member(&pool, "imp3", None, Some("Netro\u{200B}dooman")).await;
        let u4 = member(&pool, "imp4", None, Some("\u{202E}Velindra")).await;
        let stats = run_matching(&pool).await.unwrap();
        assert_eq!(stats.links_created, 0);
        assert_eq!(count(&pool, "players").await, 0);
        for (c, u) in [(gorv, u1), (nako, u2), (netro, u3), (rtl, u4)] {
            assert_eq!(link_of(&pool, c).await, None);
            assert_eq!(
                suggestion(&pool, c, u).await,
                Some(("look_alike".to_string(), None))
            );
        }
        assert_eq!(stats.look_alikes, 4);
    })
    .await;
}

#[tokio::test]
async fn a_nickname_copying_an_officer_character_is_a_suggestion_and_the_owners_listing_links() {
    with_db(|pool| async move {
        let gwyn = ranked_character(&pool, "Gwynblade", "stormrage", Some("Officer")).await;
        let initiate = member(&pool, "initiate42", Some("Newbie"), Some("Gwynblade")).await;
        let owner = member(&pool, "w1tcher", Some("Gwynblade / Gwynblade"), None).await;
        run_matching(&pool).await.unwrap();
        let (p, source, _) = link_of(&pool, gwyn)
            .await
            .expect("the owner's listing links");
        assert_eq!(source, "display_name_part");
        assert_eq!(player_row(&pool, p).await.1, Some(owner));
        assert_eq!(suggestion(&pool, gwyn, initiate).await, None);

        // Without the owner, the nickname alone is only a suggestion.
        let solo = ranked_character(&pool, "Ravenholt", "stormrage", Some("Officer")).await;
        let copier = member(&pool, "initiate43", None, Some("ravenholt")).await;
        run_matching(&pool).await.unwrap();
        assert_eq!(link_of(&pool, solo).await, None);
        assert_eq!(
            suggestion(&pool, solo, copier).await,
            Some(("nickname_only".to_string(), None))
        );
    })
    .await;
}

#[tokio::test]
async fn a_near_miss_of_another_players_character_is_suggested_naming_that_player() {
    with_db(|pool| async move {
        let totro = ranked_character(&pool, "Totro", "stormrage", None).await;
        let toto = ranked_character(&pool, "Toto", "stormrage", None).await;
        let u = member(&pool, "totro", None, None).await;
        run_matching(&pool).await.unwrap();
        let (p, _, _) = link_of(&pool, totro).await.expect("exact link");
        assert_eq!(link_of(&pool, toto).await, None);
        assert_eq!(
            suggestion(&pool, toto, u).await,
            Some(("claimed_user".to_string(), Some(p)))
        );
        // The next run sees totro with a player: still a suggestion, and it stays open.
        let again = run_matching(&pool).await.unwrap();
        assert_eq!(again.links_created, 0);
        assert_eq!(again.suggestions_new, 0);
        assert_eq!(link_of(&pool, toto).await, None);
        guild_sync::integrity_checker::run_integrity_check(
            &pool,
            &guild_sync::config::Config::defaults(),
        )
        .await
        .unwrap();
        assert!(suggestion(&pool, toto, u).await.is_some());
    })
    .await;
}

#[tokio::test]
async fn listing_display_names_and_name_realm_link_through_the_database() {
    with_db(|pool| async move {
        let main = ranked_character(&pool, "Healzor", "area-52", None).await;
        let alt = ranked_character(&pool, "Tankzor", "area-52", None).await;
        let here = ranked_character(&pool, "Brightmane", "area-52", None).await;
        let there = ranked_character(&pool, "Brightmane", "senjin", None).await;
        let lister = member(&pool, "someone", Some("Healzor (Tankzor)"), None).await;
        let realmer = member(&pool, "another", Some("Brightmane-Senjin"), None).await;
        let stats = run_matching(&pool).await.unwrap();
        for c in [main, alt] {
            let (p, source, _) = link_of(&pool, c).await.unwrap();
            assert_eq!(source, "display_name_part");
            assert_eq!(player_row(&pool, p).await.1, Some(lister));
        }
        assert_eq!(link_of(&pool, here).await, None);
        let (p, source, _) = link_of(&pool, there).await.unwrap();
        assert_eq!(source, "exact_name");
        assert_eq!(player_row(&pool, p).await.1, Some(realmer));
        assert_eq!(stats.by_strategy.display_name_part, 2);
    })
    .await;
}

/// A note reading `Discord: @everyone` once linked the character to a member named
/// `everyone`: a mass mention is never a hint.
#[tokio::test]
async fn everyone_and_here_hints_never_link() {
    with_db(|pool| async move {
        let pinged = character(&pool, "Pinger", Some("Discord: @everyone"), None).await;
        let here = character(&pool, "Herald", None, Some("@here raid at 8")).await;
        discord_user(&pool, "everyone", None, false).await;
        discord_user(&pool, "here", None, false).await;
        run_matching(&pool).await.unwrap();
        assert_eq!(link_of(&pool, pinged).await, None);
        assert_eq!(link_of(&pool, here).await, None);
    })
    .await;
}
