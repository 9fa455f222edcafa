//! The guild's memory (issue 19) against a real PostgreSQL: every event type produced by real
//! syncs (Battle.net roster, Discord member list, identity engine, officer API, a claim), none
//! on a refused sync or an identical re-run, and the two reading routes over real TCP.

mod blizzard_support;
mod common;

use std::sync::Arc;

use anyhow::Result;
use blizzard_support::{Member, fetched, guard, member};
use futures::FutureExt;
use futures::future::BoxFuture;
use guild_sync::api::AppState;
use guild_sync::config::{Config, Secret};
use guild_sync::db::api::{ManualLink, link_character_as};
use guild_sync::db::events::{self, Actor};
use guild_sync::db_sync::addon::AddonSyncStats;
use guild_sync::db_sync::{BlizzardSyncStats, sync_fetched};
use guild_sync::discord_sync::{self, DiscordInput, DiscordSnapshot, DiscordSyncStats};
use guild_sync::identity_engine::{self, MatchStats};
use guild_sync::integrity_checker::CheckStats;
use guild_sync::scheduler::{AddonInput, ReportOutcome, Scheduler, Stages};
use guild_sync::testing::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{spawn_app, within_a_minute};

/// One stored event, as the tests compare them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Event {
    event_type: String,
    actor: String,
    character_id: Option<i32>,
    discord_user_id: Option<i32>,
    player_id: Option<i32>,
    before: Option<Value>,
    after: Option<Value>,
    run_id: Option<i64>,
}

async fn events_of(pool: &PgPool, event_type: &str) -> Vec<Event> {
    sqlx::query_as(
        "SELECT event_type, actor, character_id, discord_user_id, player_id, before, after, run_id
         FROM guild_identity.member_events WHERE event_type = $1 ORDER BY id",
    )
    .bind(event_type)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn event_count(pool: &PgPool) -> i64 {
    events::count(pool).await.unwrap()
}

async fn character_id(pool: &PgPool, blizzard_id: i64) -> i32 {
    sqlx::query_scalar("SELECT id FROM guild_identity.wow_characters WHERE blizzard_id = $1")
        .bind(blizzard_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn last_run(pool: &PgPool, source: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT max(id) FROM guild_identity.sync_log WHERE source = $1 AND status = 'success'",
    )
    .bind(source)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn sync(pool: &PgPool, members: &[Member]) -> BlizzardSyncStats {
    sync_fetched(pool, &fetched(members), guard())
        .await
        .unwrap()
}

fn discord_member(id: &str, username: &str, nick: Option<&str>, roles: &[&str]) -> Value {
    json!({
        "user": {"id": id, "username": username, "global_name": null, "bot": false},
        "nick": nick,
        "roles": roles,
        "joined_at": "2024-05-01T18:30:00.000000+00:00"
    })
}

async fn discord_sync(pool: &PgPool, members: Vec<Value>) -> Result<DiscordSyncStats> {
    let snapshot: DiscordSnapshot = serde_json::from_value(json!({
        "roles": [
            {"id": "900", "name": "@everyone", "position": 0},
            {"id": "903", "name": "Veteran", "position": 7},
            {"id": "904", "name": "Member", "position": 6}
        ],
        "members": members
    }))
    .unwrap();
    discord_sync::run(
        pool,
        &Config::defaults(),
        DiscordInput::Snapshot(snapshot),
        guard(),
    )
    .await
}

#[tokio::test]
async fn a_rename_and_a_realm_transfer_by_blizzard_id_are_recorded_with_the_run() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let mut a = member(1, "Moonfire");
        let mut b = member(2, "Starfall");
        sync(&db.pool, &[a.clone(), b.clone(), member(3, "Keeper")]).await;
        assert_eq!(events_of(&db.pool, "joined_guild").await.len(), 3);

        a.name = "Sunfire".into();
        b.realm = "zuljin".into();
        let stats = sync(&db.pool, &[a, b, member(3, "Keeper")]).await;
        assert_eq!(stats.renamed, 2);
        let run = last_run(&db.pool, "blizzard").await;

        let renamed = events_of(&db.pool, "renamed").await;
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        assert_eq!(
            renamed[0].character_id,
            Some(character_id(&db.pool, 1).await)
        );
        assert_eq!(renamed[0].before.as_ref().unwrap()["name"], "Moonfire");
        assert_eq!(renamed[0].after.as_ref().unwrap()["name"], "Sunfire");
        assert_eq!(
            (renamed[0].actor.as_str(), renamed[0].run_id),
            ("engine", Some(run))
        );

        let moved = events_of(&db.pool, "transferred").await;
        assert_eq!(moved.len(), 1, "{moved:?}");
        assert_eq!(moved[0].before.as_ref().unwrap()["realm"], "senjin");
        assert_eq!(moved[0].after.as_ref().unwrap()["realm"], "zuljin");
        assert_eq!(moved[0].after.as_ref().unwrap()["name"], "Starfall");
        assert!(
            events_of(&db.pool, "joined_guild").await.len() == 3,
            "a rename is no join"
        );
    })
    .await;
}

#[tokio::test]
async fn a_promotion_a_demotion_a_leave_and_a_return_are_recorded() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let mut m = member(1, "Riser");
        let mut f = member(2, "Faller");
        let keep = [member(3, "Stayer"), member(4, "Anchor")];
        let roster = |m: &Member, f: &Member| {
            let mut all = vec![m.clone(), f.clone()];
            all.extend(keep.iter().cloned());
            all
        };
        sync(&db.pool, &roster(&m, &f)).await;
        m.rank = 2; // Member → Veteran
        f.rank = 4; // Member → Initiate
        sync(&db.pool, &roster(&m, &f)).await;

        let ranks = events_of(&db.pool, "rank_changed").await;
        assert_eq!(ranks.len(), 2, "{ranks:?}");
        let riser = character_id(&db.pool, 1).await;
        let up = ranks
            .iter()
            .find(|e| e.character_id == Some(riser))
            .unwrap();
        assert_eq!(up.before.as_ref().unwrap()["rank"], "Member");
        assert_eq!(up.after.as_ref().unwrap()["rank"], "Veteran");
        assert_eq!(up.after.as_ref().unwrap()["promoted"], true);
        let down = ranks
            .iter()
            .find(|e| e.character_id != Some(riser))
            .unwrap();
        assert_eq!(down.after.as_ref().unwrap()["promoted"], false);

        // Faller leaves, then comes back.
        let mut without = vec![m.clone()];
        without.extend(keep.iter().cloned());
        sync(&db.pool, &without).await;
        let left = events_of(&db.pool, "left_guild").await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].character_id, Some(character_id(&db.pool, 2).await));
        assert_eq!(left[0].before.as_ref().unwrap()["name"], "Faller");
        sync(&db.pool, &roster(&m, &f)).await;
        let back = events_of(&db.pool, "returned").await;
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].character_id, left[0].character_id);
        assert_eq!(
            events_of(&db.pool, "rank_changed").await.len(),
            2,
            "a return is no rank change"
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_roster_and_a_second_identical_run_write_no_events() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let all: Vec<Member> = (1..=4).map(|i| member(i, &format!("Char{i}"))).collect();
        sync(&db.pool, &all).await;
        let after_first = event_count(&db.pool).await;
        assert_eq!(after_first, 4);

        sync(&db.pool, &all).await;
        assert_eq!(event_count(&db.pool).await, after_first, "identical roster");

        // Three of four leaving at once is refused; so is a rename in the same roster.
        let mut renamed = all[0].clone();
        renamed.name = "Elsewise".into();
        let refused = sync_fetched(&db.pool, &fetched(&[renamed]), guard()).await;
        assert!(refused.is_err());
        assert_eq!(event_count(&db.pool).await, after_first, "refused roster");

        let people = vec![
            discord_member("7001", "alpha", None, &["904"]),
            discord_member("7002", "beta", Some("Bee"), &["903"]),
        ];
        discord_sync(&db.pool, people.clone()).await.unwrap();
        let with_discord = event_count(&db.pool).await;
        assert_eq!(events_of(&db.pool, "discord_joined").await.len(), 2);
        discord_sync(&db.pool, people).await.unwrap();
        assert_eq!(
            event_count(&db.pool).await,
            with_discord,
            "identical member list"
        );
        // Everyone gone at once is refused by the Discord guard too.
        let refused =
            discord_sync(&db.pool, vec![discord_member("7003", "gamma", None, &[])]).await;
        assert!(refused.is_err());
        assert_eq!(
            event_count(&db.pool).await,
            with_discord,
            "refused member list"
        );
    })
    .await;
}

#[tokio::test]
async fn discord_joins_leaves_renames_and_role_changes_from_the_member_list() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let base = |nick: Option<&str>, roles: &[&str]| {
            vec![
                discord_member("7001", "alpha", nick, roles),
                discord_member("7002", "beta", None, &["904"]),
                discord_member("7003", "gamma", None, &["904"]),
            ]
        };
        discord_sync(&db.pool, base(None, &["904"])).await.unwrap();
        discord_sync(&db.pool, base(Some("Alfa"), &["903"]))
            .await
            .unwrap();
        let run = last_run(&db.pool, "discord").await;
        let renamed = events_of(&db.pool, "discord_renamed").await;
        assert_eq!(renamed.len(), 1);
        assert_eq!(renamed[0].after.as_ref().unwrap()["display_name"], "Alfa");
        assert_eq!(renamed[0].run_id, Some(run));
        let roles = events_of(&db.pool, "discord_roles_changed").await;
        assert_eq!(roles.len(), 1);
        assert_eq!(
            roles[0].before.as_ref().unwrap()["roles"],
            json!(["Member"])
        );
        assert_eq!(
            roles[0].after.as_ref().unwrap()["roles"],
            json!(["Veteran"])
        );

        let mut fewer = base(Some("Alfa"), &["903"]);
        fewer.pop();
        discord_sync(&db.pool, fewer).await.unwrap();
        let left = events_of(&db.pool, "discord_left").await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].before.as_ref().unwrap()["username"], "gamma");
        discord_sync(&db.pool, base(Some("Alfa"), &["903"]))
            .await
            .unwrap();
        assert_eq!(
            events_of(&db.pool, "discord_joined").await.len(),
            4,
            "three, then gamma back"
        );
    })
    .await;
}

async fn discord_user_id(pool: &PgPool, snowflake: &str) -> i32 {
    sqlx::query_scalar("SELECT id FROM guild_identity.discord_users WHERE discord_id = $1")
        .bind(snowflake)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn links_by_the_engine_an_officer_and_a_claim_name_their_actor() {
    within_a_minute(async {
        let db = TestDb::new().await;
        sync(
            &db.pool,
            &[member(1, "Thrall"), member(2, "Jaina"), member(3, "Anduin")],
        )
        .await;
        discord_sync(
            &db.pool,
            vec![
                discord_member("7001", "thrall", None, &["904"]),
                discord_member("7002", "frostqueen", None, &["904"]),
                discord_member("7003", "lightboy", None, &["904"]),
            ],
        )
        .await
        .unwrap();

        // The engine links Thrall by exact name.
        identity_engine::run_matching(&db.pool).await.unwrap();
        let run = last_run(&db.pool, "match").await;
        let engine = events_of(&db.pool, "linked").await;
        assert_eq!(engine.len(), 1, "{engine:?}");
        assert_eq!(
            engine[0].character_id,
            Some(character_id(&db.pool, 1).await)
        );
        assert_eq!(
            (engine[0].actor.as_str(), engine[0].run_id),
            ("engine", Some(run))
        );
        assert_eq!(
            engine[0].after.as_ref().unwrap()["link_source"],
            "exact_name"
        );

        // An officer through the real API route.
        let state = AppState {
            pool: db.pool.clone(),
            scheduler: Arc::new(Scheduler::new(db.pool.clone(), Arc::new(NoopStages))),
            admin_token: Some(Secret::new("officer")),
            api_key: None,
        };
        let app = spawn_app(state).await;
        let jaina = character_id(&db.pool, 2).await;
        let response = app
            .client
            .post(app.url("/api/identity/link"))
            .bearer_auth("officer")
            .json(&json!({"wow_character_id": jaina,
                          "discord_user_id": discord_user_id(&db.pool, "7002").await}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );

        // A player's claim of their own character.
        let anduin = character_id(&db.pool, 3).await;
        link_character_as(
            &db.pool,
            ManualLink {
                character_id: anduin,
                discord_user_id: Some(discord_user_id(&db.pool, "7003").await),
                player_id: None,
            },
            Actor::Claim,
        )
        .await
        .unwrap();

        let linked = events_of(&db.pool, "linked").await;
        let actors: Vec<(Option<i32>, &str)> = linked
            .iter()
            .map(|e| (e.character_id, e.actor.as_str()))
            .collect();
        assert_eq!(
            actors,
            vec![
                (Some(character_id(&db.pool, 1).await), "engine"),
                (Some(jaina), "officer"),
                (Some(anduin), "claim")
            ]
        );
        assert!(linked.iter().all(|e| e.player_id.is_some()));

        // The officer unlinks Jaina; moving a link to another player is a `link_moved`.
        let link_id: i32 = sqlx::query_scalar(
            "SELECT id FROM guild_identity.player_characters WHERE character_id = $1",
        )
        .bind(jaina)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let response = app
            .client
            .delete(app.url(&format!("/api/identity/link/{link_id}")))
            .bearer_auth("officer")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let unlinked = events_of(&db.pool, "unlinked").await;
        assert_eq!(unlinked.len(), 1);
        assert_eq!(
            (unlinked[0].character_id, unlinked[0].actor.as_str()),
            (Some(jaina), "officer")
        );

        let thrall_player = engine[0].player_id.unwrap();
        sqlx::query(
            "UPDATE guild_identity.player_characters SET player_id = $1 WHERE character_id = $2",
        )
        .bind(thrall_player)
        .bind(anduin)
        .execute(&db.pool)
        .await
        .unwrap();
        let moved = events_of(&db.pool, "link_moved").await;
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].player_id, Some(thrall_player));

        // The reading routes: the feed with names, filtered, paged; a player's history.
        let page: Value = app
            .client
            .get(app.url("/api/events?type=linked&per_page=2"))
            .bearer_auth("officer")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["events"].as_array().unwrap().len(), 2);
        assert_eq!(page["has_more"], true);
        assert_eq!(page["events"][0]["event_type"], "linked");
        assert_eq!(
            page["events"][0]["character_name"], "Anduin",
            "newest first, with names"
        );
        assert_eq!(page["events"][0]["actor"], "claim");

        let history: Value = app
            .client
            .get(app.url(&format!("/api/identity/players/{thrall_player}/history")))
            .bearer_auth("officer")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let types: Vec<&str> = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        // Thrall's join and Discord join (from before the link), the link, Anduin's move in.
        for expected in ["joined_guild", "discord_joined", "linked", "link_moved"] {
            assert!(
                types.contains(&expected),
                "{expected} missing from {types:?}"
            );
        }
        let bad = app
            .client
            .get(app.url("/api/events?per_page=501"))
            .bearer_auth("officer")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let missing = app
            .client
            .get(app.url("/api/identity/players/99999/history"))
            .bearer_auth("officer")
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let anonymous = app.client.get(app.url("/api/events")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn retention_purges_only_events_older_than_the_limit() {
    within_a_minute(async {
        let db = TestDb::new().await;
        sync(&db.pool, &[member(1, "Old"), member(2, "New")]).await;
        sqlx::query(
            "UPDATE guild_identity.member_events SET occurred_at = now() - interval '40 days'
             WHERE character_id = (SELECT id FROM guild_identity.wow_characters WHERE blizzard_id = 1)",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(events::purge_older_than(&db.pool, 30).await.unwrap(), 1);
        assert_eq!(event_count(&db.pool).await, 1);
    })
    .await;
}

/// Stages that succeed at once, changing nothing (the routes tested here trigger none).
struct NoopStages;

fn done<T: Default + Send + 'static>() -> BoxFuture<'static, Result<T>> {
    async { Ok(T::default()) }.boxed()
}

impl Stages for NoopStages {
    fn blizzard_sync(&self) -> BoxFuture<'_, Result<BlizzardSyncStats>> {
        done()
    }
    fn discord_sync(&self) -> BoxFuture<'_, Result<DiscordSyncStats>> {
        done()
    }
    fn addon_sync<'a>(&'a self, _: &'a AddonInput) -> BoxFuture<'a, Result<AddonSyncStats>> {
        done()
    }
    fn run_matching(&self) -> BoxFuture<'_, Result<MatchStats>> {
        done()
    }
    fn integrity_check(&self) -> BoxFuture<'_, Result<CheckStats>> {
        done()
    }
    fn report(&self) -> BoxFuture<'_, Result<ReportOutcome>> {
        async { Ok(ReportOutcome::NoSender) }.boxed()
    }
}

#[tokio::test]
async fn the_weekly_digest_names_who_joined_left_was_promoted_demoted_and_renamed() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let mut up = member(1, "Riser");
        let mut down = member(2, "Faller");
        let mut renamed = member(3, "Oldname");
        let keep = member(4, "Keeper");
        sync(
            &db.pool,
            &[
                up.clone(),
                down.clone(),
                renamed.clone(),
                keep.clone(),
                member(5, "Goner"),
            ],
        )
        .await;
        up.rank = 2;
        down.rank = 4;
        renamed.name = "Newname".into();
        sync(&db.pool, &[up, down, renamed, keep]).await;

        let lines = guild_sync::reporter::digest_lines(&db.pool).await.unwrap();
        let text = guild_sync_core::report::render_digest_text(&lines);
        assert!(text.contains("📥 Joined (5)"), "{text}");
        assert!(text.contains("📤 Left (1)\n  - Goner-senjin"), "{text}");
        assert!(
            text.contains("⬆️ Promoted (1)\n  - Riser-senjin (Member → Veteran)"),
            "{text}"
        );
        assert!(
            text.contains("⬇️ Demoted (1)\n  - Faller-senjin (Member → Initiate)"),
            "{text}"
        );
        assert!(
            text.contains("✏️ Renamed (1)\n  - Newname-senjin (was Oldname-senjin)"),
            "{text}"
        );

        let mut config = Config::defaults();
        assert!(!guild_sync::reporter::digest_enabled(&config).unwrap());
        config.guild_sync_digest = Some("weekly".into());
        assert!(guild_sync::reporter::digest_enabled(&config).unwrap());
        config.guild_sync_digest = Some("daily".into());
        let err = guild_sync::reporter::digest_enabled(&config).unwrap_err();
        assert!(err.to_string().contains("GUILD_SYNC_DIGEST"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn the_demo_guild_after_its_later_snapshot_shows_what_changed() {
    common::within(std::time::Duration::from_secs(180), async {
        let db = TestDb::new().await;
        let config = Config::defaults();
        guild_sync::demo::run_stages(&db.pool, &config)
            .await
            .unwrap();
        let before = events::latest_id(&db.pool).await.unwrap();
        assert!(
            before > 0,
            "the first run records the guild's joins and links"
        );
        guild_sync::demo::run_stages(&db.pool, &config)
            .await
            .unwrap();
        assert_eq!(
            events::latest_id(&db.pool).await.unwrap(),
            before,
            "an identical rerun"
        );

        guild_sync::demo::run_later_stages(&db.pool, &config)
            .await
            .unwrap();
        let changes = events::since_id(&db.pool, before).await.unwrap();
        let types: Vec<&str> = changes.iter().map(|e| e.event_type.as_str()).collect();
        assert!(types.contains(&"discord_left"), "{types:?}");
        assert!(types.contains(&"discord_roles_changed"), "{types:?}");
        let text = guild_sync::demo::render_changes(&changes);
        assert!(text.contains("discord_roles_changed"), "{text}");
    })
    .await;
}
