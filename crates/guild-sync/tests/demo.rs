//! The bundled sample guild through every real stage, on a real PostgreSQL, checked against the
//! outcomes its generator lists in `demo/expected.json`: who is linked to whom and how, which
//! issues are open, that a second run changes nothing, what a later Discord snapshot
//! resolves and raises, and what `demo --later` (the bundled later snapshot) records and prints.

mod claim_support;
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guild_sync::config::{Config, RemovalGuard};
use guild_sync::demo;
use guild_sync::discord_sync::{self, DiscordInput};
use serde_json::Value;
use sqlx::PgPool;

use claim_support::Browser;
use common::on_a_fresh_db_within;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

fn expected() -> Value {
    serde_json::from_str(include_str!("../demo/expected.json")).expect("expected.json parses")
}

/// The checker's threshold, widened by the days elapsed since the sample's reference date, so
/// the stale set is the one the sample was written for whatever day the test runs.
fn config_at_reference(expected: &Value) -> Config {
    let reference: chrono::DateTime<chrono::Utc> = expected["reference_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let elapsed = (chrono::Utc::now() - reference).num_days().max(0);
    let mut config = Config::defaults();
    config.guild_sync_stale_days = 30 + elapsed;
    config
}

async fn open_issues(pool: &PgPool, issue_type: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT coalesce(wc.character_name || '-' || wc.realm_slug, du.username, p.display_name)
         FROM guild_identity.audit_issues ai
         LEFT JOIN guild_identity.wow_characters wc ON wc.id = ai.wow_character_id
         LEFT JOIN guild_identity.discord_users du ON du.id = ai.discord_member_id
         LEFT JOIN guild_identity.players p ON p.id = ai.player_id
         WHERE ai.resolved_at IS NULL AND ai.issue_type = $1
         ORDER BY 1",
    )
    .bind(issue_type)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn open_issue_discord_users(pool: &PgPool, issue_type: &str) -> BTreeSet<String> {
    sqlx::query_scalar(
        "SELECT du.username FROM guild_identity.audit_issues ai
         JOIN guild_identity.players p ON p.id = ai.player_id
         JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         WHERE ai.resolved_at IS NULL AND ai.issue_type = $1",
    )
    .bind(issue_type)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

fn names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}-{}",
                c["name"].as_str().unwrap(),
                c["realm"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_sample_guild_links_and_flags_what_its_author_intended() {
    on_a_fresh_db_within(Duration::from_secs(300), |db| async move {
        let expected = expected();
        let counts = &expected["counts"];
        let config = config_at_reference(&expected);

        let run = demo::run_stages(&db.pool, &config).await.unwrap();
        assert!(run.first_run);
        assert_eq!(
            run.blizzard.found as u64,
            counts["characters"].as_u64().unwrap()
        );
        assert_eq!(
            run.blizzard.profiles_not_found as u64,
            counts["profiles_missing"].as_u64().unwrap()
        );
        assert_eq!(
            run.blizzard.unknown_rank as u64,
            counts["unmapped_rank"].as_u64().unwrap()
        );
        assert_eq!(run.discord.found, counts["discord_users"].as_u64().unwrap());
        assert_eq!(
            run.discord.bots_skipped,
            counts["discord_bots"].as_u64().unwrap()
        );
        assert_eq!(run.addon.unknown, 0, "{:?}", run.addon.unknown_characters);

        // Every expected link, with its strategy and its player's Discord account.
        let links: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT wc.character_name, wc.realm_slug, pc.link_source, du.username
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             JOIN guild_identity.players p ON p.id = pc.player_id
             LEFT JOIN guild_identity.discord_users du ON du.id = p.discord_user_id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            links.len() as u64,
            counts["linked_characters"].as_u64().unwrap()
        );
        for want in expected["links"].as_array().unwrap() {
            let (name, realm) = (
                want["name"].as_str().unwrap(),
                want["realm"].as_str().unwrap(),
            );
            let got = links
                .iter()
                .find(|(n, r, _, _)| n == name && r == realm)
                .unwrap_or_else(|| panic!("{name}-{realm} is not linked"));
            assert_eq!(
                got.2,
                want["link_source"].as_str().unwrap(),
                "{name}-{realm}"
            );
            assert_eq!(got.3.as_deref(), want["discord"].as_str(), "{name}-{realm}");
        }
        let players: (i64, i64) =
            sqlx::query_as("SELECT count(*), count(discord_user_id) FROM guild_identity.players")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(players.0 as u64, counts["players"].as_u64().unwrap());
        assert_eq!(
            players.1 as u64,
            counts["players_with_discord"].as_u64().unwrap()
        );

        // Open issues, type by type.
        let issues = &expected["issues"];
        let orphan_wow: BTreeSet<String> = open_issues(&db.pool, "orphan_wow")
            .await
            .into_iter()
            .collect();
        assert_eq!(orphan_wow, names(&issues["orphan_wow"]));
        let stale: BTreeSet<String> = open_issues(&db.pool, "stale_character")
            .await
            .into_iter()
            .collect();
        // Issue 19: linked characters are judged per player (`inactive_player`), so only the
        // unlinked ones among the sample's stale characters keep a `stale_character` line.
        let linked: BTreeSet<String> = sqlx::query_scalar(
            "SELECT wc.character_name || '-' || wc.realm_slug
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let want_stale: BTreeSet<String> = names(&issues["stale_character"])
            .difference(&linked)
            .cloned()
            .collect();
        assert_eq!(stale, want_stale);
        assert!(
            !want_stale.is_empty(),
            "the sample keeps unlinked stale characters"
        );
        let orphan_discord: BTreeSet<String> = open_issues(&db.pool, "orphan_discord")
            .await
            .into_iter()
            .collect();
        let want: BTreeSet<String> = issues["orphan_discord"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(orphan_discord, want);
        let mismatched = open_issue_discord_users(&db.pool, "rank_mismatch").await;
        let want: BTreeSet<String> = issues["rank_mismatch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["discord"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(mismatched, want);
        let no_role = open_issue_discord_users(&db.pool, "no_guild_role").await;
        let want: BTreeSet<String> = issues["no_guild_role"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(no_role, want);
        assert_eq!(
            open_issues(&db.pool, "auto_link_suggestion").await.len(),
            issues["auto_link_suggestion"].as_array().unwrap().len()
        );
        assert!(open_issues(&db.pool, "duplicate_discord").await.is_empty());
        assert!(run.report.contains("Rank mismatches"), "{}", run.report);

        // The same inputs again: nothing changes.
        let again = demo::run_stages(&db.pool, &config).await.unwrap();
        assert!(!again.first_run);
        assert!(again.changed_nothing(), "{again:#?}");

        // A later Discord snapshot: roles change and a member leaves.
        let later = &expected["later_snapshot"];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("members_later.json");
        std::fs::write(
            &file,
            include_bytes!("../demo/discord/members_later.json").as_slice(),
        )
        .unwrap();
        discord_sync::run(
            &db.pool,
            &config,
            DiscordInput::File(file),
            RemovalGuard::from_config(&config, false),
        )
        .await
        .unwrap();
        let check = guild_sync::integrity_checker::run_integrity_check(&db.pool, &config)
            .await
            .unwrap();
        assert!(check.new >= 1 && check.resolved >= 2, "{check:?}");
        let no_role = open_issue_discord_users(&db.pool, "no_guild_role").await;
        for user in later["issues_new"]["no_guild_role"].as_array().unwrap() {
            assert!(no_role.contains(user.as_str().unwrap()), "{no_role:?}");
        }
        let mismatched = open_issue_discord_users(&db.pool, "rank_mismatch").await;
        for user in later["issues_resolved"]["rank_mismatch"]
            .as_array()
            .unwrap()
        {
            assert!(
                !mismatched.contains(user.as_str().unwrap()),
                "{mismatched:?}"
            );
        }
        let orphan_discord = open_issues(&db.pool, "orphan_discord").await;
        for user in later["issues_resolved"]["orphan_discord"]
            .as_array()
            .unwrap()
        {
            assert!(
                !orphan_discord.iter().any(|u| u == user.as_str().unwrap()),
                "{orphan_discord:?}"
            );
        }
    })
    .await;
}

/// Set the demo database's sample mark to `comment` (SQL), close it and open it as the demo does.
async fn remark_and_reopen(
    db: guild_sync::database::Database,
    config: &Config,
    name: &str,
    comment: &str,
) -> (guild_sync::database::Database, bool) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "COMMENT ON DATABASE \"{name}\" IS {comment}"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    db.close().await;
    demo::open_database(config, name).await.unwrap()
}

#[tokio::test]
async fn a_demo_database_holding_another_sample_is_started_over() {
    on_a_fresh_db_within(Duration::from_secs(120), |test_db| async move {
        let mut config = Config::defaults();
        config.database_url = Some(guild_sync::config::Secret::new(test_db.url()));
        let name = format!("{}_demo", test_db.name());
        let characters = |pool: PgPool| async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM guild_identity.wow_characters")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        let add_character = |pool: PgPool| async move {
            sqlx::query(
                "INSERT INTO guild_identity.wow_characters (character_name, realm_slug)
                 VALUES ('Oldsample', 'area-52')",
            )
            .execute(&pool)
            .await
            .unwrap();
        };

        // A new database is this sample's; what the demo writes into it is kept.
        let (db, started_over) = demo::open_database(&config, &name).await.unwrap();
        assert!(!started_over);
        add_character(db.pool.clone()).await;
        db.close().await;
        let (db, started_over) = demo::open_database(&config, &name).await.unwrap();
        assert!(!started_over);
        assert_eq!(characters(db.pool.clone()).await, 1);

        // Marked with another sample: started over, empty, marked with this one.
        let (db, started_over) =
            remark_and_reopen(db, &config, &name, "'guild-sync demo sample 0000'").await;
        assert!(started_over);
        assert_eq!(characters(db.pool.clone()).await, 0);

        // Data and no mark at all (a demo database from before the mark): started over too.
        add_character(db.pool.clone()).await;
        let (db, started_over) = remark_and_reopen(db, &config, &name, "NULL").await;
        assert!(started_over);
        assert_eq!(characters(db.pool.clone()).await, 0);

        // And the sample runs on it.
        let run = demo::run_stages(&db.pool, &config).await.unwrap();
        assert!(run.first_run);
        db.drop_scratch().await.unwrap();
    })
    .await;
}

/// The `href` of the element with id `id` on `page` (the claim pages' buttons are links).
fn href_of(page: &str, id: &str) -> String {
    let tag = format!("id=\"{id}\" href=\"");
    let start = page
        .find(&tag)
        .unwrap_or_else(|| panic!("no #{id} link on: {page}"))
        + tag.len();
    page[start..][..page[start..].find('"').unwrap()].to_string()
}

/// `text` between `after` and `before`.
fn between<'a>(text: &'a str, after: &str, before: &str) -> &'a str {
    let start = text
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} in {text:?}"))
        + after.len();
    let len = text[start..]
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} after {after:?} in {text:?}"));
    &text[start..start + len]
}

#[tokio::test]
async fn demo_serve_lets_a_sample_member_claim_against_the_bundled_fake_providers() {
    on_a_fresh_db_within(Duration::from_secs(300), |test_db| async move {
        let mut config = config_at_reference(&expected());
        config.database_url = Some(guild_sync::config::Secret::new(test_db.url()));
        let database = guild_sync::database::Database::open(&config).await.unwrap();
        demo::run_stages(&database.pool, &config).await.unwrap();
        let pool = database.pool.clone();

        // `demo --serve` as the command runs it, on a port of our own and with what it prints
        // kept instead of printed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let said = Arc::new(Mutex::new(Vec::<String>::new()));
        let shutdown = CancellationToken::new();
        let service = tokio::spawn({
            let (said, shutdown) = (said.clone(), shutdown.clone());
            async move {
                demo::serve_on(&config, database, listener, shutdown, move |line| {
                    said.lock().unwrap().push(line.to_string())
                })
                .await
            }
        });
        // The lines come before the service starts; a demo that offers no claim never says one.
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let found = said
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|l| l.starts_with("Member claims: "))
                    .cloned();
                if let Some(line) = found {
                    break line;
                }
                assert!(!service.is_finished(), "the demo stopped: {said:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no claim line in {said:?}"));
        let console = said.lock().unwrap()[0].clone();
        assert!(
            console.starts_with(&format!(
                "Officer console: http://{address}/  — log in with "
            )),
            "{console}"
        );
        let claim_url = between(&line, "Member claims: ", " ");
        assert_eq!(claim_url, format!("http://{address}/claim"));
        let username = between(&line, "log you in as @", ",");
        let promised: BTreeSet<String> =
            between(&line, "whose account holds ", " and one character")
                .split(", ")
                .map(str::to_string)
                .collect();
        assert!(!promised.is_empty(), "{line}");

        // The member's walk: the claim page, Discord, back, Battle.net, back, the result.
        let mut browser = Browser::default();
        let base = reqwest::Url::parse(claim_url).unwrap();
        let page = browser.open(claim_url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let discord = base.join(&href_of(&page.body, "discord-login")).unwrap();
        let page = browser.open(discord.as_str()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains(&format!("<bdi>@{username}</bdi>")),
            "{}",
            page.body
        );
        let battlenet = base.join(&href_of(&page.body, "battlenet-login")).unwrap();
        let page = browser.open(battlenet.as_str()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("id=\"claim-done\""), "{}", page.body);
        let linked = between(&page.body, "id=\"linked\"", "</ul>");
        for name in &promised {
            assert!(
                linked.contains(&format!("<bdi>{name}</bdi>")),
                "{name}: {linked}"
            );
        }
        let outside = between(&page.body, "id=\"outside\"", "</ul>");
        assert!(outside.contains("<bdi>Wanderer</bdi>"), "{outside}");

        // What the claim wrote: the promised characters, linked to the member by Battle.net.
        let rows: Vec<(String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT wc.character_name, pc.link_source, pc.evidence
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             JOIN guild_identity.players p ON p.id = pc.player_id
             JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
             WHERE du.username = $1",
        )
        .bind(username)
        .fetch_all(&pool)
        .await
        .unwrap();
        let names: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
        assert_eq!(names, promised);
        for (name, source, evidence) in &rows {
            assert_eq!(source, "battlenet_oauth", "{name}");
            assert_eq!(evidence["battletag"], format!("{username}#4242"), "{name}");
        }

        shutdown.cancel();
        service.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_later_snapshot_prints_and_stores_what_changed_once() {
    on_a_fresh_db_within(Duration::from_secs(300), |db| async move {
        let config = config_at_reference(&expected());
        demo::run_stages(&db.pool, &config).await.unwrap();
        let first_events: i64 =
            sqlx::query_scalar("SELECT count(*) FROM guild_identity.member_events")
                .fetch_one(&db.pool)
                .await
                .unwrap();

        let later = demo::run_later_stages(&db.pool, &config).await.unwrap();
        assert!(!later.run.changed_nothing());
        let lines: Vec<(String, String)> = later
            .changes
            .iter()
            .map(|e| (e.event_type.as_str().to_owned(), e.describe()))
            .collect();
        for (kind, text) in [
            ("renamed", "Mistwhisper renamed to Mistwhisperer"),
            (
                "rank_changed",
                "Quillfeather promoted from Initiate to Member",
            ),
            ("left_guild", "Gorvash left the guild"),
            ("joined_guild", "Emberlyn joined the guild as Initiate"),
            ("discord_renamed", "Kitty is now Kitty Queen on Discord"),
        ] {
            assert!(
                lines.contains(&(kind.to_string(), text.to_string())),
                "{kind}: {text} missing from {lines:#?}"
            );
        }
        let kinds: BTreeSet<&str> = later
            .changes
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert_eq!(
            kinds,
            BTreeSet::from([
                "discord_left",
                "discord_renamed",
                "discord_roles_changed",
                "joined_guild",
                "left_guild",
                "rank_changed",
                "renamed",
            ])
        );
        // Written by the runs that saw them, and exactly these are stored.
        assert!(
            later
                .changes
                .iter()
                .all(|e| e.actor.as_str() == "engine" && e.run_id.is_some())
        );
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.member_events")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(stored - first_events, later.changes.len() as i64);

        // What the terminal prints: one line per change.
        let printed = demo::render_changes(&later.changes);
        assert!(
            printed.contains(&format!("What changed ({} events", later.changes.len())),
            "{printed}"
        );
        assert!(
            printed.contains("renamed                Mistwhisper renamed to Mistwhisperer"),
            "{printed}"
        );
        assert!(printed.contains("Gorvash left the guild"), "{printed}");

        // The renamed character's player has the rename on their timeline.
        let renamed = later
            .changes
            .iter()
            .find(|e| e.event_type.as_str() == "renamed")
            .unwrap();
        let player = renamed.player_id.expect("Mistwhisper is linked");
        let history = guild_sync::db::member_events::player_history(&db.pool, player, 100, None)
            .await
            .unwrap()
            .0;
        assert!(history.iter().any(|e| e.id == renamed.id));

        // The same snapshot again changes nothing, and says so.
        let again = demo::run_later_stages(&db.pool, &config).await.unwrap();
        assert!(again.changes.is_empty(), "{:#?}", again.changes);
        assert!(
            demo::render_changes(&again.changes).contains("nothing"),
            "already applied"
        );
    })
    .await;
}
