//! Issue 19: `member_events` written by real syncs against a real PostgreSQL — every roster
//! event (join, leave, return, rename, realm transfer, promotion), the Discord full sync's
//! events, links by the engine, by an officer and by a claim (and unlinks, and a claim's move
//! from another player) — none on a refused or failed sync and none on a second identical run.

mod blizzard_support;
mod claim_support;
mod common;

use blizzard_support::{Member, fetched, guard, member};
use guild_sync::config::{Config, RemovalGuard};
use guild_sync::db::api::{ManualLink, link_character, unlink};
use guild_sync::db::member_events::{EventSource, EventType};
use guild_sync::db_sync::sync_fetched;
use guild_sync::discord_sync::{self, DiscordInput, DiscordSnapshot};
use guild_sync::identity_engine::run_matching;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::on_a_fresh_db;

/// One stored event, as the tests compare them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Event {
    event_type: String,
    actor: String,
    run_id: Option<i64>,
    character_id: Option<i32>,
    discord_user_id: Option<i32>,
    player_id: Option<i32>,
    before: Option<Value>,
    after: Option<Value>,
}

async fn events(pool: &PgPool) -> Vec<Event> {
    sqlx::query_as(
        "SELECT event_type, actor, run_id, character_id, discord_user_id, player_id, before, after
         FROM guild_identity.member_events ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM guild_identity.member_events")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The id of the latest `sync_log` run of `source`.
async fn last_run(pool: &PgPool, source: &str) -> i64 {
    sqlx::query_scalar("SELECT max(id) FROM guild_identity.sync_log WHERE source = $1")
        .bind(source)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn character_id(pool: &PgPool, blizzard_id: i64) -> i32 {
    sqlx::query_scalar("SELECT id FROM guild_identity.wow_characters WHERE blizzard_id = $1")
        .bind(blizzard_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn roster(pool: &PgPool, members: &[Member]) -> anyhow::Result<()> {
    sync_fetched(pool, &fetched(members), guard())
        .await
        .map(|_| ())
}

/// Each event's type, actor, character and player: who did what to whom.
fn who_did_what(events: &[Event]) -> Vec<(&str, &str, Option<i32>, Option<i32>)> {
    events
        .iter()
        .map(|e| {
            (
                e.event_type.as_str(),
                e.actor.as_str(),
                e.character_id,
                e.player_id,
            )
        })
        .collect()
}

fn of_type(events: &[Event], t: EventType) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.event_type == t.as_str())
        .collect()
}

#[tokio::test]
async fn roster_syncs_record_joins_renames_transfers_promotions_leaves_and_returns() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let start = vec![
            member(1, "Arthas"),
            member(2, "Jaina"),
            member(3, "Thrall"),
            member(4, "Sylvanas"),
            member(5, "Anduin"),
        ];
        // The guild's first sync is the baseline: it records no joins.
        roster(pool, &start[..4]).await.unwrap();
        assert_eq!(count(pool).await, 0, "{:#?}", events(pool).await);
        // The next sync adds Anduin: exactly one join.
        roster(pool, &start).await.unwrap();
        let first = events(pool).await;
        let run = last_run(pool, "blizzard").await;
        assert_eq!(first.len(), 1, "{first:#?}");
        assert!(
            first[0].event_type == "joined_guild"
                && first[0].actor == "engine"
                && first[0].run_id == Some(run)
        );
        assert_eq!(first[0].after.as_ref().unwrap()["name"], "Anduin");

        // A player owns Thrall: its later events carry the player.
        let thrall = character_id(pool, 3).await;
        let player = guild_sync::testing::seed::player(pool, "Go'el", None).await;
        guild_sync::testing::seed::link(pool, player, thrall).await;

        // Arthas renames, Jaina transfers (same Blizzard ids), Thrall is promoted (rank 3 → 2),
        // Sylvanas leaves.
        let mut next = start.clone();
        next[0].name = "Deathknight".into();
        next[1].realm = "kelthuzad".into();
        next[2].rank = 2;
        next.remove(3);
        roster(pool, &next).await.unwrap();
        let run = last_run(pool, "blizzard").await;
        let second: Vec<Event> = events(pool).await.split_off(1);
        let types: Vec<&str> = second.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            {
                let mut t = types.clone();
                t.sort_unstable();
                t
            },
            vec!["left_guild", "rank_changed", "renamed", "transferred"],
            "{second:#?}"
        );
        assert!(
            second
                .iter()
                .all(|e| e.run_id == Some(run) && e.actor == "engine")
        );
        let renamed = of_type(&second, EventType::Renamed)[0];
        assert_eq!(renamed.character_id, Some(character_id(pool, 1).await));
        assert_eq!(renamed.before.as_ref().unwrap()["name"], "Arthas");
        assert_eq!(renamed.after.as_ref().unwrap()["name"], "Deathknight");
        let transferred = of_type(&second, EventType::Transferred)[0];
        assert_eq!(transferred.before.as_ref().unwrap()["realm"], "senjin");
        assert_eq!(transferred.after.as_ref().unwrap()["realm"], "kelthuzad");
        let promoted = of_type(&second, EventType::RankChanged)[0];
        assert_eq!(promoted.character_id, Some(thrall));
        assert_eq!(promoted.player_id, Some(player));
        assert_eq!(promoted.before.as_ref().unwrap()["rank_index"], 3);
        assert_eq!(promoted.after.as_ref().unwrap()["rank_index"], 2);
        let left = of_type(&second, EventType::LeftGuild)[0];
        assert_eq!(left.character_id, Some(character_id(pool, 4).await));
        assert_eq!(left.before.as_ref().unwrap()["name"], "Sylvanas");

        // The same roster again: nothing changed, nothing recorded.
        roster(pool, &next).await.unwrap();
        assert_eq!(count(pool).await, 5);

        // Sylvanas returns.
        let mut back = next.clone();
        back.push(start[3].clone());
        roster(pool, &back).await.unwrap();
        let all = events(pool).await;
        assert_eq!(all.len(), 6);
        let returned = &all[5];
        assert_eq!(returned.event_type, "returned");
        assert_eq!(returned.character_id, Some(character_id(pool, 4).await));
        assert!(returned.before.as_ref().unwrap()["left_at"].is_string());
    })
    .await;
}

#[tokio::test]
async fn a_refused_or_failed_roster_records_no_event() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let members: Vec<Member> = (1..=6).map(|i| member(i, &format!("Char{i}"))).collect();
        // A baseline of five, then the sixth joins: one event.
        roster(pool, &members[..5]).await.unwrap();
        roster(pool, &members).await.unwrap();
        let before = count(pool).await;
        assert_eq!(before, 1);

        // Four of six leaving at once is refused by the removal guard …
        let err = roster(pool, &members[..2]).await.expect_err("refused");
        assert!(format!("{err:#}").contains("refusing"), "{err:#}");
        // … and a roster whose profiles are missing fails before writing, even with a rename in it.
        let mut renamed = members.clone();
        renamed[0].name = "Renamed".into();
        let mut half = fetched(&renamed);
        half.profiles.pop();
        let allow = RemovalGuard {
            max_fraction: 1.0,
            allow_mass_removal: true,
        };
        sync_fetched(pool, &half, allow).await.expect_err("failed");
        assert_eq!(count(pool).await, before, "{:#?}", events(pool).await);
    })
    .await;
}

fn discord_roles() -> Value {
    json!([
        {"id": "900", "name": "@everyone", "position": 0},
        {"id": "903", "name": "Veteran", "position": 7},
        {"id": "904", "name": "MEMBER", "position": 6}
    ])
}

fn discord_member(id: &str, username: &str, nick: Option<&str>, roles: &[&str]) -> Value {
    json!({
        "user": {"id": id, "username": username, "global_name": null, "bot": false},
        "nick": nick,
        "roles": roles,
        "joined_at": "2024-05-01T18:30:00.000000+00:00"
    })
}

async fn discord(pool: &PgPool, members: Vec<Value>) -> anyhow::Result<()> {
    let snapshot: DiscordSnapshot =
        serde_json::from_value(json!({"roles": discord_roles(), "members": members})).unwrap();
    discord_sync::run(
        pool,
        &Config::defaults(),
        DiscordInput::Snapshot(snapshot),
        guard(),
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn discord_syncs_record_joins_renames_role_changes_and_leaves_once() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let everyone = vec![
            discord_member("11", "thrall", None, &["904"]),
            discord_member("12", "jaina", None, &["904"]),
            discord_member("13", "anduin", None, &[]),
        ];
        // The first full sync into an empty table is the baseline: no joins.
        discord(pool, everyone[..2].to_vec()).await.unwrap();
        assert_eq!(count(pool).await, 0, "{:#?}", events(pool).await);
        // The next one adds anduin: exactly one join.
        discord(pool, everyone.clone()).await.unwrap();
        let first = events(pool).await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].event_type, "discord_joined");
        // The documents in full: readers (the console, the digest, the API) rely on their keys.
        assert_eq!(first[0].before, None);
        assert_eq!(
            first[0].after,
            Some(json!({"username": "anduin", "display_name": "anduin", "roles": []}))
        );
        assert_eq!(first[0].run_id, Some(last_run(pool, "discord").await));

        discord(pool, everyone.clone()).await.unwrap();
        assert_eq!(count(pool).await, 1, "an identical run records nothing");

        // thrall takes a nickname, jaina becomes a Veteran, anduin leaves.
        let changed = vec![
            discord_member("11", "thrall", Some("Warchief"), &["904"]),
            discord_member("12", "jaina", None, &["903", "904"]),
        ];
        discord(pool, changed.clone()).await.unwrap();
        let second = events(pool).await.split_off(1);
        let mut types: Vec<&str> = second.iter().map(|e| e.event_type.as_str()).collect();
        types.sort_unstable();
        assert_eq!(
            types,
            vec!["discord_left", "discord_renamed", "discord_roles_changed"]
        );
        let renamed = of_type(&second, EventType::DiscordRenamed)[0];
        assert_eq!(
            renamed.before,
            Some(json!({"username": "thrall", "display_name": "thrall"}))
        );
        assert_eq!(
            renamed.after,
            Some(json!({"username": "thrall", "display_name": "Warchief"}))
        );
        let roles = of_type(&second, EventType::DiscordRolesChanged)[0];
        assert_eq!(roles.before, Some(json!({"roles": ["Member"]})));
        assert_eq!(roles.after, Some(json!({"roles": ["Veteran", "Member"]})));
        let left = of_type(&second, EventType::DiscordLeft)[0];
        assert_eq!(
            left.before,
            Some(json!({"username": "anduin", "display_name": "anduin", "roles": []}))
        );
        assert_eq!(left.after, None);
        assert!(
            second
                .iter()
                .all(|e| e.actor == "engine" && e.run_id.is_some()),
            "{second:#?}"
        );

        // anduin comes back: a join again.
        let mut back = changed;
        back.push(discord_member("13", "anduin", None, &[]));
        discord(pool, back.clone()).await.unwrap();
        assert_eq!(count(pool).await, 5);
        let returned = &events(pool).await[4];
        assert_eq!(returned.event_type, "discord_joined");
        assert_eq!(
            returned.after,
            Some(json!({
                "username": "anduin", "display_name": "anduin", "roles": [], "returned": true
            }))
        );
        discord(pool, back).await.unwrap();
        assert_eq!(count(pool).await, 5, "an identical run records nothing");
    })
    .await;
}

#[tokio::test]
async fn a_refused_discord_sync_records_no_event() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let everyone: Vec<Value> = (1..=4)
            .map(|i| discord_member(&format!("2{i}"), &format!("user{i}"), None, &[]))
            .collect();
        // A baseline of three, then the fourth joins: one event.
        discord(pool, everyone[..3].to_vec()).await.unwrap();
        discord(pool, everyone.clone()).await.unwrap();
        assert_eq!(count(pool).await, 1);
        // A renamed member in a list that would drop three of four: refused, nothing recorded.
        let refused = vec![discord_member("21", "user1", Some("Renamed"), &["904"])];
        discord(pool, refused)
            .await
            .expect_err("mass removal refused");
        assert_eq!(count(pool).await, 1);
    })
    .await;
}

async fn character(pool: &PgPool, name: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters (character_name, realm_slug)
         VALUES ($1, 'senjin') RETURNING id",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn discord_user(pool: &PgPool, id: &str, username: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users (discord_id, username, highest_guild_role,
             all_guild_roles)
         VALUES ($1, $2, 'Member', ARRAY['Member']) RETURNING id",
    )
    .bind(id)
    .bind(username)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn links_by_the_engine_and_by_an_officer_and_unlinks_are_recorded_with_their_actor() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        // The engine links Zatanna to the Discord user of the same name.
        let zatanna = character(pool, "Zatanna").await;
        let user = discord_user(pool, "31", "zatanna").await;
        run_matching(pool).await.unwrap();
        let engine = events(pool).await;
        assert_eq!(engine.len(), 1, "{engine:#?}");
        let linked = &engine[0];
        let player: i32 = sqlx::query_scalar(
            "SELECT player_id FROM guild_identity.player_characters WHERE character_id = $1",
        )
        .bind(zatanna)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            (linked.event_type.as_str(), linked.actor.as_str()),
            ("linked", "engine")
        );
        assert_eq!(linked.run_id, Some(last_run(pool, "match").await));
        assert_eq!(
            (
                linked.character_id,
                linked.player_id,
                linked.discord_user_id
            ),
            (Some(zatanna), Some(player), Some(user))
        );
        assert_eq!(linked.after.as_ref().unwrap()["link_source"], "exact_name");
        assert_eq!(linked.after.as_ref().unwrap()["character"], "Zatanna");

        // A second run has nothing left to link, and records nothing.
        run_matching(pool).await.unwrap();
        assert_eq!(count(pool).await, 1);

        // An officer links an alt to the same player, then unlinks it.
        let alt = character(pool, "Zatbank").await;
        let done = link_character(
            pool,
            ManualLink {
                character_id: alt,
                discord_user_id: None,
                player_id: Some(player),
            },
            EventSource::officer(),
        )
        .await
        .unwrap();
        unlink(pool, done.link_id, None, EventSource::officer())
            .await
            .unwrap();
        let officer = events(pool).await.split_off(1);
        assert_eq!(officer.len(), 2, "{officer:#?}");
        assert_eq!(
            who_did_what(&officer),
            vec![
                ("linked", "officer", Some(alt), Some(player)),
                ("unlinked", "officer", Some(alt), Some(player)),
            ]
        );
        assert_eq!(officer[1].before.as_ref().unwrap()["link_source"], "manual");
        assert!(officer.iter().all(|e| e.run_id.is_none()));

        // A refused link (the character belongs to another player) records nothing.
        let other = guild_sync::testing::seed::player(pool, "Other", None).await;
        link_character(
            pool,
            ManualLink {
                character_id: zatanna,
                discord_user_id: None,
                player_id: Some(other),
            },
            EventSource::officer(),
        )
        .await
        .expect_err("conflict");
        assert_eq!(count(pool).await, 3);
    })
    .await;
}

#[tokio::test]
async fn a_claim_records_its_links_its_move_and_its_unlinks_as_the_claim() {
    on_a_fresh_db(|db| async move {
        use claim_support::{AELRIC, Browser, REALM, account, claim, player_of, start};
        let pool = &db.pool;
        let app = start(&db).await;
        let aelric_user: i32 =
            sqlx::query_scalar("SELECT id FROM guild_identity.discord_users WHERE discord_id = $1")
                .bind(AELRIC)
                .fetch_one(pool)
                .await
                .unwrap();
        // Aelric claims two unlinked characters and Dagny, which the engine linked to Dag.
        app.fake
            .log_in_discord(claim_support::discord(AELRIC, "aelric"));
        let full = account(
            5001,
            "Aelric#1234",
            &[
                ("Aelric", REALM, 1001),
                ("Brynja", REALM, 1002),
                ("Dagny", REALM, 1004),
            ],
        );
        app.fake.log_in_battlenet(full);
        let page = claim(&app, &mut Browser::default()).await;
        assert!(page.body.contains("moved to you"), "{}", page.body);
        let aelric = player_of(pool, AELRIC).await.unwrap();
        let [first, brynja, _] = app.guild.aelric_chars;
        let dagny = app.guild.dagny;
        let claimed = events(pool).await;
        let mut summary: Vec<_> = who_did_what(&claimed)
            .into_iter()
            .zip(claimed.iter().map(|e| e.discord_user_id))
            .map(|((what, who, character, player), user)| (what, who, character, player, user))
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            vec![
                (
                    "link_moved",
                    "claim",
                    Some(dagny),
                    Some(aelric),
                    Some(aelric_user)
                ),
                (
                    "linked",
                    "claim",
                    Some(first),
                    Some(aelric),
                    Some(aelric_user)
                ),
                (
                    "linked",
                    "claim",
                    Some(brynja),
                    Some(aelric),
                    Some(aelric_user)
                ),
            ],
            "{claimed:#?}"
        );
        assert!(claimed.iter().all(|e| e.run_id.is_none()));
        let moved = of_type(&claimed, EventType::LinkMoved)[0];
        let before = moved.before.as_ref().unwrap();
        let after = moved.after.as_ref().unwrap();
        assert_eq!(before["player_id"], app.guild.dag_player);
        assert_eq!(before["player"], "Dag");
        assert_eq!(before["link_source"], "fuzzy_name");
        assert_eq!(after["player_id"], aelric);
        assert_eq!(after["link_source"], "battlenet_oauth");
        assert_eq!(after["character"], "Dagny");
        for linked in of_type(&claimed, EventType::Linked) {
            assert_eq!(linked.before, None);
            assert_eq!(
                linked.after.as_ref().unwrap()["link_source"],
                "battlenet_oauth"
            );
        }

        // The same claim again changes no link, and records nothing.
        claim(&app, &mut Browser::default()).await;
        assert_eq!(count(pool).await, 3);

        // Brynja left the account: claiming again unlinks it, as the claim.
        app.fake.log_in_battlenet(account(
            5001,
            "Aelric#1234",
            &[("Aelric", REALM, 1001), ("Dagny", REALM, 1004)],
        ));
        let page = claim(&app, &mut Browser::default()).await;
        assert!(
            page.body.contains("No longer on your account"),
            "{}",
            page.body
        );
        let unlinked = events(pool).await.split_off(3);
        assert_eq!(
            who_did_what(&unlinked),
            vec![("unlinked", "claim", Some(brynja), Some(aelric))]
        );
        assert_eq!(
            unlinked[0].before.as_ref().unwrap()["link_source"],
            "battlenet_oauth"
        );

        // Aelric's history reads them back, newest first.
        let history = guild_sync::db::member_events::player_history(pool, aelric, 10, None)
            .await
            .unwrap()
            .0;
        assert_eq!(history.len(), 4);
        assert_eq!(history[0].describe(), "Brynja unlinked from aelric");
        // Dag's has the move away too.
        let dag =
            guild_sync::db::member_events::player_history(pool, app.guild.dag_player, 10, None)
                .await
                .unwrap()
                .0;
        assert_eq!(
            dag.iter()
                .map(|e| (e.event_type.as_str(), e.describe()))
                .collect::<Vec<_>>(),
            vec![("link_moved", "Dagny moved to aelric".to_string())]
        );
    })
    .await;
}

#[tokio::test]
async fn retention_deletes_only_events_older_than_the_setting() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        // A baseline, then two joins.
        roster(pool, &[member(3, "Base")]).await.unwrap();
        roster(
            pool,
            &[member(3, "Base"), member(1, "Old"), member(2, "New")],
        )
        .await
        .unwrap();
        sqlx::query(
            "UPDATE guild_identity.member_events SET occurred_at = now() - interval '40 days'
             WHERE after->>'name' = 'Old'",
        )
        .execute(pool)
        .await
        .unwrap();
        let purged = guild_sync::db::member_events::purge_older_than(pool, 30)
            .await
            .unwrap();
        assert_eq!(purged, 1);
        let left: Vec<Value> = events(pool)
            .await
            .into_iter()
            .filter_map(|e| e.after.map(|a| a["name"].clone()))
            .collect();
        assert_eq!(left, vec![json!("New")]);
    })
    .await;
}

/// A fake Discord webhook that accepts every message like the real one.
async fn accepting_webhook() -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/api/webhooks/1/token"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
        .mount(&server)
        .await;
    server
}

/// The digest messages the fake webhook received: their bodies, in order.
async fn digests(webhook: &wiremock::MockServer) -> Vec<Value> {
    webhook
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|body| {
            body["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("**This week in the guild**"))
        })
        .collect()
}

#[tokio::test]
async fn the_weekly_digest_reaches_discord_through_the_report_with_escaped_names() {
    use guild_sync::discord_sender::DiscordSender;
    use guild_sync::scheduler::{PipelineKind, ProductionStages, Scheduler, StageInputs};
    use std::sync::Arc;

    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        // Names that are Discord markdown unless escaped: an underscore, an asterisk, a
        // backtick. All start as Members (rank 3).
        let start = vec![
            member(1, "Zul_jin"),
            member(2, "Star*fall"),
            member(3, "Thrall"),
            member(4, "Garrosh"),
            member(5, "Arthas"),
        ];
        // The baseline (the first sync records no joins), then a week's changes: Thrall
        // promoted to Veteran, Garrosh demoted to Initiate, Arthas renamed, Star*fall left,
        // Back`tick joined.
        roster(pool, &start).await.unwrap();
        let mut next = start.clone();
        next[2].rank = 2;
        next[3].rank = 4;
        next[4].name = "Death_knight".into();
        next.remove(1);
        next.push(member(6, "Back`tick"));
        roster(pool, &next).await.unwrap();

        guild_sync::install_crypto_provider();
        let webhook = accepting_webhook().await;
        let sender = DiscordSender::webhook(guild_sync::config::Secret::new(format!(
            "{}/api/webhooks/1/token",
            webhook.uri()
        )))
        .unwrap();
        let config = Config {
            guild_sync_digest: Some("weekly".into()),
            ..Config::defaults()
        };
        let stages = ProductionStages::new(
            pool.clone(),
            config.clone(),
            StageInputs::service(&config, Some(sender)),
        );
        let scheduler = Scheduler::new(pool.clone(), Arc::new(stages));
        let outcome = scheduler.run_pipeline(PipelineKind::Report).await.unwrap();
        assert_eq!(
            outcome.status,
            guild_sync::run_recorder::RunStatus::Success,
            "{:?}",
            outcome.error
        );

        let sent = digests(&webhook).await;
        assert_eq!(sent.len(), 1, "one digest: {sent:#?}");
        assert_eq!(sent[0]["allowed_mentions"], json!({"parse": []}));
        let text = sent[0]["content"].as_str().unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            vec![
                "**This week in the guild**",
                "**Joined** (1)",
                "• Back\\`tick joined the guild as Member",
                "**Left** (1)",
                "• Star\\*fall left the guild",
                "**Promoted** (1)",
                "• Thrall promoted from Member to Veteran",
                "**Demoted** (1)",
                "• Garrosh demoted from Member to Initiate",
                "**Renamed** (1)",
                "• Arthas renamed to Death\\_knight",
            ],
            "{text}"
        );

        // The digest is weekly: the next report the same day sends none.
        scheduler.run_pipeline(PipelineKind::Report).await.unwrap();
        assert_eq!(digests(&webhook).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_player_pages_timeline_pages_to_older_events_by_the_cursor() {
    use guild_sync::testing::{console_login, serve_console};

    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        // A baseline sync, then Thrall joins.
        roster(pool, &[member(2, "Jaina")]).await.unwrap();
        roster(pool, &[member(2, "Jaina"), member(1, "Thrall")])
            .await
            .unwrap();
        let thrall = character_id(pool, 1).await;
        let player = guild_sync::testing::seed::player(pool, "Go'el", None).await;
        guild_sync::testing::seed::link(pool, player, thrall).await;
        // 150 rank changes an hour apart before the join (the newest event): two pages of the
        // timeline's 100.
        sqlx::query(
            "INSERT INTO guild_identity.member_events
                 (event_type, occurred_at, character_id, player_id, before, after, actor)
             SELECT 'rank_changed', now() - g * interval '1 hour', $1, $2,
                    jsonb_build_object('rank', 'Member', 'rank_index', 3),
                    jsonb_build_object('rank', 'Rank ' || g, 'rank_index', 2), 'engine'
             FROM generate_series(1, 150) g",
        )
        .bind(thrall)
        .bind(player)
        .execute(pool)
        .await
        .unwrap();

        let config = Config {
            guild_sync_admin_token: Some(guild_sync::config::Secret::new("timeline-token")),
            ..Config::defaults()
        };
        let base = serve_console(pool.clone(), &config).await;
        // The login answers with a redirect that sets the session cookie: not followed.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let cookie = console_login(&http, &base, "timeline-token").await;
        let page = |path: String| {
            let (http, cookie) = (http.clone(), cookie.clone());
            async move {
                let response = http
                    .get(path)
                    .header("Cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.text().await.unwrap()
            }
        };
        let entries = |html: &str| html.matches("<span class=\"tag ev-").count();

        let newest = page(format!("{base}/players/{player}")).await;
        // The join and rank changes 1-99.
        assert_eq!(entries(&newest), 100);
        assert!(newest.contains("joined the guild"));
        assert!(newest.contains("to Rank 99</bdi>"));
        assert!(!newest.contains("to Rank 100</bdi>"));
        assert!(!newest.contains("Newest events"));
        assert!(!newest.contains("History starts at the first sync"));
        let older_link = newest
            .split("href=\"")
            .filter_map(|rest| rest.split('"').next())
            .find(|href| href.contains("?before="))
            .expect("an Older events link")
            .to_string();

        // Rank changes 100-150, and nothing of the first page again.
        let older = page(format!("{base}{older_link}")).await;
        assert_eq!(entries(&older), 51, "{older}");
        assert!(older.contains("to Rank 100</bdi>"));
        assert!(older.contains("to Rank 150</bdi>"));
        assert!(!older.contains("to Rank 99</bdi>"));
        assert!(!older.contains("joined the guild"));
        assert!(older.contains("Newest events"));
        assert!(!older.contains("Older events"));
        // The last page says where history starts: the baseline sync.
        assert!(
            older.contains("History starts at the first sync on "),
            "{older}"
        );
    })
    .await;
}
