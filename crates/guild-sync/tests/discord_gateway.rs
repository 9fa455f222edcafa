//! The gateway listener against a fake Discord gateway on a local port (`gateway_support`),
//! driven by the real twilight-gateway shard: HELLO → IDENTIFY → READY → member dispatches,
//! heartbeats answered, zlib-stream transport compression as the client asks for it, and a
//! gateway-requested reconnect that resumes the session.

mod common;
mod gateway_support;

use std::time::Duration;

use guild_sync::config::{Config, Secret};
use guild_sync::db::discord_users;
use guild_sync::discord_gateway;
use guild_sync::discord_sync::{self, GuildRoles, WireMember};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use common::on_a_fresh_db;
use gateway_support::{GUILD, Seen, next_seen, start_fake_gateway};

/// Wait (by polling the row, not by timing) until Discord user `id` is stored as present.
async fn wait_until_present(pool: &sqlx::PgPool, id: &str) {
    while !discord_users::get(pool, id)
        .await
        .unwrap()
        .is_some_and(|user| user.is_present)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn roles() -> Value {
    json!([
        {"id": GUILD, "name": "@everyone", "position": 0},
        {"id": "801", "name": "gm", "position": 5},
        {"id": "802", "name": "Officer", "position": 4},
        {"id": "804", "name": "Member", "position": 2}
    ])
}

fn member_event(id: &str, username: &str, nick: Option<&str>, roles: &[&str]) -> Value {
    json!({
        "guild_id": GUILD,
        "user": {"id": id, "username": username, "global_name": null, "avatar": null},
        "nick": nick,
        "roles": roles,
        "joined_at": "2025-02-03T04:05:06.000000+00:00",
        "deaf": false, "mute": false, "flags": 0
    })
}

fn removal(id: &str) -> Value {
    json!({"guild_id": GUILD, "user": {"id": id, "username": format!("user{id}")}})
}

#[tokio::test]
async fn the_listener_applies_member_events_in_order_and_resumes_after_a_reconnect() {
    on_a_fresh_db(|db| async move {
        guild_sync::install_crypto_provider();
        // Someone already known, who leaves while the listener runs.
        let known: WireMember = serde_json::from_value(member_event("5003", "leaver", None, &["804"])).unwrap();
        discord_sync::on_member_join(&db.pool, &known, &GuildRoles::default()).await.unwrap();

        let script = vec![
            vec![
                ("GUILD_CREATE", json!({"id": GUILD, "name": "Guild", "roles": roles(), "members": []})),
                ("GUILD_MEMBER_ADD", member_event("5001", "thrall", None, &["804"])),
                ("GUILD_MEMBER_ADD", json!({"guild_id": GUILD, "user": {"id": "5999", "username": "MEE6", "bot": true}, "roles": []})),
                ("GUILD_MEMBER_ADD", json!({"guild_id": "9999", "user": {"id": "6001", "username": "elsewhere"}, "roles": []})),
                ("GUILD_ROLE_UPDATE", json!({"guild_id": GUILD, "role": {"id": "803", "name": "VETERAN", "position": 3}})),
                ("GUILD_MEMBER_UPDATE", member_event("5001", "thrall", Some("Warchief"), &["803", "802", "804"])),
                ("GUILD_MEMBER_REMOVE", removal("5003")),
                ("GUILD_MEMBER_ADD", member_event("5002", "jaina", None, &["801"])),
                ("GUILD_MEMBER_REMOVE", removal("5002")),
            ],
            vec![("GUILD_MEMBER_ADD", member_event("5004", "anduin", None, &[]))],
        ];
        let (url, mut seen) = start_fake_gateway(script).await;

        let mut config = Config::defaults();
        config.discord_bot_token = Some(Secret::new("test-token"));
        config.discord_guild_id = Some(GUILD.into());
        config.discord_gateway_url = Some(url);
        let handle = discord_gateway::spawn(db.pool.clone(), &config, &CancellationToken::new())
            .await
            .unwrap();

        let query = next_seen(&mut seen, |s| match s { Seen::Connected { query } => Some(query), _ => None }).await;
        assert!(query.contains("v=10") && query.contains("encoding=json"), "{query}");
        assert!(query.contains("compress=zlib-stream"), "the fake must speak zlib: {query}");
        let identify = next_seen(&mut seen, |s| match s { Seen::Identify(d) => Some(d), _ => None }).await;
        assert!(identify["token"].as_str().unwrap().ends_with("test-token"));
        assert_eq!(identify["intents"], 3, "GUILDS | GUILD_MEMBERS");

        // 6 member events for our guild on the first connection (the bot's counts, as ignored),
        // 1 after the resume. Events are applied in arrival order, so once the last one
        // (anduin joining after the resume) is in the database, all 7 are.
        wait_until_present(&db.pool, "5004").await;

        let resume = next_seen(&mut seen, |s| match s { Seen::Resume(d) => Some(d), _ => None }).await;
        assert_eq!(resume["session_id"], "fake-session");

        let thrall = discord_users::get(&db.pool, "5001").await.unwrap().unwrap();
        assert!(thrall.is_present);
        assert_eq!(thrall.display_name.as_deref(), Some("Warchief"));
        assert_eq!(thrall.all_guild_roles, vec!["Officer", "Veteran", "Member"]);
        assert_eq!(thrall.highest_guild_role.as_deref(), Some("Officer"));

        let jaina = discord_users::get(&db.pool, "5002").await.unwrap().unwrap();
        assert!(!jaina.is_present, "joined, then left: applied in arrival order");
        assert_eq!(jaina.highest_guild_role.as_deref(), Some("GM"));
        let leaver = discord_users::get(&db.pool, "5003").await.unwrap().unwrap();
        assert!(!leaver.is_present && leaver.removed_at.is_some());
        assert!(discord_users::get(&db.pool, "5004").await.unwrap().unwrap().is_present);
        assert!(discord_users::get(&db.pool, "5999").await.unwrap().is_none(), "bots are ignored");
        assert!(discord_users::get(&db.pool, "6001").await.unwrap().is_none(), "other guilds are ignored");

        // The shard heartbeats every 250 ms and the fake acknowledges each beat.
        next_seen(&mut seen, |s| matches!(s, Seen::Heartbeat).then_some(())).await;

        handle.shutdown().await;
        next_seen(&mut seen, |s| matches!(s, Seen::Closed).then_some(())).await;
    })
    .await
}

/// Issue 18: a role fixed on Discord (by the role sync, or by hand) resolves the player's open
/// `rank_mismatch` as soon as the GUILD_MEMBER_UPDATE arrives, without waiting for a check.
#[tokio::test]
async fn a_member_update_through_the_gateway_resolves_the_fixed_rank_mismatch() {
    on_a_fresh_db(|db| async move {
        guild_sync::install_crypto_provider();
        let pool = &db.pool;
        let user: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, all_guild_roles, highest_guild_role)
             VALUES ('5001', 'thrall', 'thrall', ARRAY['Member'], 'Member') RETURNING id",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let character: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, guild_rank_id)
             SELECT 'Thrall', 'stormrage', id FROM common.guild_ranks WHERE name = 'Officer' RETURNING id",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let player = guild_sync::testing::seed::player(pool, "Thrall", Some(user)).await;
        guild_sync::testing::seed::link(pool, player, character).await;
        let config = Config::defaults();
        guild_sync::integrity_checker::run_integrity_check(pool, &config).await.unwrap();
        let open = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM guild_identity.audit_issues
                 WHERE issue_type = 'rank_mismatch' AND resolved_at IS NULL",
            )
            .fetch_one(pool)
            .await
            .unwrap()
        };
        assert_eq!(open().await, 1);

        let mut config = Config::defaults();
        config.discord_bot_token = Some(Secret::new("test-token"));
        config.discord_guild_id = Some(GUILD.into());
        // One gateway session per step, so the check between them cannot race the next event:
        // a session's last event (a member joining) marks that all before it are applied.
        let session = |events: Vec<(&'static str, serde_json::Value)>, marker: &'static str| {
            let mut config = config.clone();
            async move {
                let mut script = vec![(
                    "GUILD_CREATE",
                    json!({"id": GUILD, "name": "Guild", "roles": roles(), "members": []}),
                )];
                script.extend(events);
                let (url, _seen) = start_fake_gateway(vec![script]).await;
                config.discord_gateway_url = Some(url);
                let handle = discord_gateway::spawn(pool.clone(), &config, &CancellationToken::new())
                    .await
                    .unwrap();
                wait_until_present(pool, marker).await;
                handle.shutdown().await;
            }
        };
        // Still wrong (a nickname change): stays open.
        session(
            vec![
                ("GUILD_MEMBER_UPDATE", member_event("5001", "thrall", Some("Warchief"), &["804"])),
                ("GUILD_MEMBER_ADD", member_event("5002", "jaina", None, &[])),
            ],
            "5002",
        )
        .await;
        let still: (i64, Option<String>) = (
            open().await,
            discord_users::get(pool, "5001").await.unwrap().unwrap().display_name,
        );
        assert_eq!(still, (1, Some("Warchief".into())), "a nickname change fixes nothing");
        // Issue 19: the nick change is in the guild's memory, as the gateway's, for the player.
        let events = || async {
            sqlx::query_as::<_, (String, String, Option<i32>, Option<i64>, Option<serde_json::Value>)>(
                "SELECT event_type, actor, player_id, run_id, after FROM guild_identity.member_events
                 WHERE discord_user_id = $1 ORDER BY id",
            )
            .bind(user)
            .fetch_all(pool)
            .await
            .unwrap()
        };
        let renamed = events().await;
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        assert_eq!(
            (renamed[0].0.as_str(), renamed[0].1.as_str(), renamed[0].2, renamed[0].3),
            ("discord_renamed", "gateway", Some(player), None)
        );
        assert_eq!(renamed[0].4.as_ref().unwrap()["display_name"], "Warchief");
        // Officer given: resolved.
        session(
            vec![
                ("GUILD_MEMBER_UPDATE", member_event("5001", "thrall", Some("Warchief"), &["802"])),
                ("GUILD_MEMBER_ADD", member_event("5004", "anduin", None, &[])),
            ],
            "5004",
        )
        .await;
        assert_eq!(open().await, 0, "the Officer role resolved the issue");
        let types: Vec<String> = events().await.into_iter().map(|e| e.0).collect();
        assert_eq!(types, vec!["discord_renamed", "discord_roles_changed"]);
        let by: String = sqlx::query_scalar(
            "SELECT resolved_by FROM guild_identity.audit_issues WHERE issue_type = 'rank_mismatch'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(by, "auto");
    })
    .await
}

/// Issue 19's baseline is "no complete full sync yet", not "an empty table": the gateway may
/// store members before the first full sync, and that sync must still record the guild as it
/// is rather than everyone as joining. A join the gateway saw live stays a join; an update of a
/// member never seen is a join only once the history has started.
#[tokio::test]
async fn gateway_members_before_the_first_full_sync_leave_that_sync_a_baseline() {
    on_a_fresh_db(|db| async move {
        guild_sync::install_crypto_provider();
        let pool = &db.pool;
        let events = || async {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT e.event_type, e.actor, du.discord_id FROM guild_identity.member_events e
                 JOIN guild_identity.discord_users du ON du.id = e.discord_user_id ORDER BY e.id",
            )
            .fetch_all(pool)
            .await
            .unwrap()
        };
        let event =
            |t: &str, actor: &str, id: &str| (t.to_owned(), actor.to_owned(), id.to_owned());

        // Before any full sync, the gateway sees thrall join and jaina (already a member)
        // change her nick.
        let script = vec![vec![
            (
                "GUILD_CREATE",
                json!({"id": GUILD, "name": "Guild", "roles": roles(), "members": []}),
            ),
            (
                "GUILD_MEMBER_ADD",
                member_event("5001", "thrall", None, &["804"]),
            ),
            (
                "GUILD_MEMBER_UPDATE",
                member_event("5002", "jaina", Some("Lady"), &["804"]),
            ),
        ]];
        let (url, _seen) = start_fake_gateway(script).await;
        let mut config = Config::defaults();
        config.discord_bot_token = Some(Secret::new("test-token"));
        config.discord_guild_id = Some(GUILD.into());
        config.discord_gateway_url = Some(url);
        let handle = discord_gateway::spawn(pool.clone(), &config, &CancellationToken::new())
            .await
            .unwrap();
        wait_until_present(pool, "5002").await;
        handle.shutdown().await;
        let live_join = vec![event("discord_joined", "gateway", "5001")];
        assert_eq!(events().await, live_join, "jaina's update is not a join");

        // The first full sync finds five members, two of them already stored: a baseline.
        let list = |ids: &[(&str, &str)]| -> discord_sync::DiscordSnapshot {
            let members: Vec<Value> = ids
                .iter()
                .map(|(id, name)| {
                    let nick = (*id == "5002").then_some("Lady");
                    member_event(id, name, nick, &["804"])
                })
                .collect();
            serde_json::from_value(json!({"roles": roles(), "members": members})).unwrap()
        };
        let mut guild = vec![
            ("5001", "thrall"),
            ("5002", "jaina"),
            ("5003", "sylvanas"),
            ("5004", "anduin"),
            ("5005", "baine"),
        ];
        let sync = |snapshot| {
            discord_sync::run(
                pool,
                &config,
                discord_sync::DiscordInput::Snapshot(snapshot),
                guild_sync::config::RemovalGuard {
                    max_fraction: 0.5,
                    allow_mass_removal: false,
                },
            )
        };
        let stats = sync(list(&guild)).await.unwrap();
        assert_eq!(stats.new, 3);
        assert_eq!(
            events().await,
            live_join,
            "the first full sync is the baseline"
        );

        // From then on, members new to a list are joins, and so is a missed join's update.
        guild.push(("5006", "varian"));
        sync(list(&guild)).await.unwrap();
        let missed: WireMember =
            serde_json::from_value(member_event("5007", "tyrande", None, &["804"])).unwrap();
        discord_sync::on_member_update(pool, &missed, &GuildRoles::default())
            .await
            .unwrap();
        let mut expected = live_join;
        expected.push(event("discord_joined", "engine", "5006"));
        expected.push(event("discord_joined", "gateway", "5007"));
        assert_eq!(events().await, expected);
    })
    .await
}

#[tokio::test]
async fn spawning_without_a_token_or_guild_is_a_clear_error() {
    on_a_fresh_db(|db| async move {
        let mut config = Config::defaults();
        config.discord_guild_id = Some(GUILD.into());
        let err = discord_gateway::spawn(db.pool.clone(), &config, &CancellationToken::new())
            .await
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("DISCORD_BOT_TOKEN"), "{err:#}");
        config.discord_bot_token = Some(Secret::new("t"));
        config.discord_guild_id = Some("not-a-number".into());
        let err = discord_gateway::spawn(db.pool.clone(), &config, &CancellationToken::new())
            .await
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("DISCORD_GUILD_ID"), "{err:#}");
    })
    .await
}
