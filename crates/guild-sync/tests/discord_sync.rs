//! discord_sync against a real PostgreSQL: the full sync (new, updated, departed, revived,
//! bots, the mass-removal guard), the real-time member events, the `sync_log` record, and the
//! `sync discord --from-file --json` command.

mod common;

use guild_sync::config::{Config, RemovalGuard};
use guild_sync::db::discord_users::{self, DiscordUserRow};
use guild_sync::db::member_events::EventSource;
use guild_sync::discord_sync::{
    self, DiscordInput, DiscordSnapshot, DiscordSyncStats, GuildRoles, MemberEventOutcome,
    WireMember, WireRole, WireUser,
};
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{last_run_of, on_a_fresh_db};

/// The guild's Discord roles: the rank roles of the seeded rank table plus unrelated ones.
fn roles() -> Value {
    json!([
        {"id": "900", "name": "@everyone", "position": 0},
        {"id": "901", "name": "GM", "position": 9},
        {"id": "902", "name": "officer", "position": 8},
        {"id": "903", "name": "Veteran", "position": 7},
        {"id": "904", "name": "MEMBER", "position": 6},
        {"id": "905", "name": "Initiate", "position": 5},
        {"id": "906", "name": "Raider", "position": 4}
    ])
}

fn member(id: &str, username: &str, nick: Option<&str>, roles: &[&str]) -> Value {
    json!({
        "user": {"id": id, "username": username, "global_name": null, "bot": false},
        "nick": nick,
        "roles": roles,
        "joined_at": "2024-05-01T18:30:00.000000+00:00"
    })
}

fn snapshot(members: Vec<Value>) -> DiscordSnapshot {
    serde_json::from_value(json!({"roles": roles(), "members": members})).unwrap()
}

fn guard() -> RemovalGuard {
    RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    }
}

async fn sync(pool: &PgPool, members: Vec<Value>) -> anyhow::Result<DiscordSyncStats> {
    sync_with(pool, members, guard()).await
}

async fn sync_with(
    pool: &PgPool,
    members: Vec<Value>,
    guard: RemovalGuard,
) -> anyhow::Result<DiscordSyncStats> {
    discord_sync::run(
        pool,
        &Config::defaults(),
        DiscordInput::Snapshot(snapshot(members)),
        guard,
    )
    .await
}

async fn user(pool: &PgPool, id: &str) -> DiscordUserRow {
    discord_users::get(pool, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("discord user {id} not stored"))
}

fn guild_roles() -> GuildRoles {
    GuildRoles::new(&serde_json::from_value::<Vec<WireRole>>(roles()).unwrap())
}

fn wire_member(value: Value) -> WireMember {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn test_sync_creates_discord_user() {
    on_a_fresh_db(|db| async move {
        let stats = sync(
            &db.pool,
            vec![
                member("1001", "thrall", Some("Warchief"), &["904", "906", "902"]),
                json!({"user": {"id": "1002", "username": "jaina", "global_name": "Jaina P"},
                       "roles": []}),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            (stats.found, stats.new, stats.updated, stats.departed),
            (2, 2, 0, 0)
        );

        let thrall = user(&db.pool, "1001").await;
        assert_eq!(thrall.username, "thrall");
        assert_eq!(thrall.display_name.as_deref(), Some("Warchief"));
        assert_eq!(thrall.highest_guild_role.as_deref(), Some("Officer"));
        assert_eq!(thrall.all_guild_roles, vec!["Officer", "Member"]);
        assert!(thrall.is_present);
        assert!(thrall.removed_at.is_none() && thrall.last_sync.is_some());
        assert_eq!(
            thrall.joined_server_at.unwrap().to_rfc3339(),
            "2024-05-01T18:30:00+00:00"
        );

        let jaina = user(&db.pool, "1002").await;
        assert_eq!(jaina.display_name.as_deref(), Some("Jaina P"));
        assert_eq!(jaina.highest_guild_role, None);
        assert!(jaina.all_guild_roles.is_empty());
    })
    .await
}

#[tokio::test]
async fn test_sync_updates_existing_discord_user() {
    on_a_fresh_db(|db| async move {
        sync(&db.pool, vec![member("1001", "thrall", None, &["905"])])
            .await
            .unwrap();
        let before = user(&db.pool, "1001").await;
        assert_eq!(before.highest_guild_role.as_deref(), Some("Initiate"));

        let stats = sync(
            &db.pool,
            vec![member("1001", "thrall2", Some("Go'el"), &["903", "901"])],
        )
        .await
        .unwrap();
        assert_eq!((stats.new, stats.updated, stats.unchanged), (0, 1, 0));
        let after = user(&db.pool, "1001").await;
        assert_eq!(after.id, before.id, "the row is updated in place");
        assert_eq!(after.first_seen, before.first_seen);
        assert_eq!(after.username, "thrall2");
        assert_eq!(after.display_name.as_deref(), Some("Go'el"));
        assert_eq!(after.highest_guild_role.as_deref(), Some("GM"));
        assert_eq!(after.all_guild_roles, vec!["GM", "Veteran"]);

        let again = sync(
            &db.pool,
            vec![member("1001", "thrall2", Some("Go'el"), &["903", "901"])],
        )
        .await
        .unwrap();
        assert_eq!((again.new, again.updated, again.unchanged), (0, 0, 1));
    })
    .await
}

#[tokio::test]
async fn test_sync_marks_departed_not_present() {
    on_a_fresh_db(|db| async move {
        let everyone: Vec<Value> = (1..=4)
            .map(|i| member(&format!("100{i}"), &format!("user{i}"), None, &["904"]))
            .collect();
        sync(&db.pool, everyone.clone()).await.unwrap();

        let stats = sync(&db.pool, everyone[..3].to_vec()).await.unwrap();
        assert_eq!((stats.found, stats.departed), (3, 1));
        let gone = user(&db.pool, "1004").await;
        assert!(!gone.is_present);
        assert!(gone.removed_at.is_some());
        assert!(user(&db.pool, "1001").await.is_present);

        // Coming back revives the same row.
        let stats = sync(&db.pool, everyone).await.unwrap();
        assert_eq!((stats.revived, stats.departed, stats.new), (1, 0, 0));
        let back = user(&db.pool, "1004").await;
        assert!(back.is_present && back.removed_at.is_none());
        assert_eq!(back.id, gone.id);
    })
    .await
}

/// The console's lists are cached under `data_version`, which statement triggers on
/// `discord_users` bump: a sync that changed nothing must not bump it (it once did, with an
/// UPDATE of no departed rows), and one that changed something must.
#[tokio::test]
async fn only_a_sync_that_changes_members_bumps_the_data_version() {
    on_a_fresh_db(|db| async move {
        let version = || async {
            guild_sync::db::console::data_version(&db.pool)
                .await
                .unwrap()
        };
        let everyone: Vec<Value> = (1..=4)
            .map(|i| member(&format!("300{i}"), &format!("user{i}"), None, &["904"]))
            .collect();
        sync(&db.pool, everyone.clone()).await.unwrap();
        let before = version().await;
        sync(&db.pool, everyone.clone()).await.unwrap();
        assert_eq!(
            version().await,
            before,
            "an identical sync changed the version"
        );
        sync(&db.pool, everyone[..3].to_vec()).await.unwrap();
        let after_departure = version().await;
        assert!(
            after_departure > before,
            "a departure left the version alone"
        );
        sync(&db.pool, everyone[..3].to_vec()).await.unwrap();
        assert_eq!(version().await, after_departure);
    })
    .await
}

#[tokio::test]
async fn bots_are_never_stored() {
    on_a_fresh_db(|db| async move {
        let stats = sync(
            &db.pool,
            vec![
                member("1001", "thrall", None, &[]),
                json!({"user": {"id": "2001", "username": "MEE6", "bot": true}, "roles": ["904"]}),
            ],
        )
        .await
        .unwrap();
        assert_eq!((stats.found, stats.bots_skipped), (1, 1));
        assert!(
            discord_users::get(&db.pool, "2001")
                .await
                .unwrap()
                .is_none()
        );
    })
    .await
}

#[tokio::test]
async fn a_list_that_would_mark_most_members_departed_changes_nothing_and_is_logged() {
    on_a_fresh_db(|db| async move {
        let everyone: Vec<Value> = (10..20)
            .map(|i| member(&format!("1{i}"), &format!("user{i}"), None, &["904"]))
            .collect();
        sync(&db.pool, everyone.clone()).await.unwrap();

        // 6 of 10 gone, plus a changed name and a newcomer that must not be applied either.
        let mut shrunk = everyone[..4].to_vec();
        shrunk[0] = member("110", "renamed", None, &["904"]);
        shrunk.push(member("999", "newcomer", None, &[]));
        let err = sync(&db.pool, shrunk.clone()).await.unwrap_err();
        assert!(format!("{err:#}").contains("6 of 10"), "{err:#}");
        let rows = discord_users::all(&db.pool).await.unwrap();
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|r| r.is_present && r.username != "renamed"));

        let (status, error) = last_run_of(&db.pool, "discord").await;
        assert_eq!(status, "error");
        assert!(error.unwrap().contains("--allow-mass-removal"));

        // The officer's override applies it.
        let stats = sync_with(
            &db.pool,
            shrunk,
            RemovalGuard {
                allow_mass_removal: true,
                ..guard()
            },
        )
        .await
        .unwrap();
        assert_eq!((stats.departed, stats.new, stats.updated), (6, 1, 1));
    })
    .await
}

#[tokio::test]
async fn an_empty_member_list_is_refused() {
    on_a_fresh_db(|db| async move {
        sync(&db.pool, vec![member("1001", "thrall", None, &[])])
            .await
            .unwrap();
        let allow_all = RemovalGuard {
            max_fraction: 1.0,
            allow_mass_removal: true,
        };
        assert!(sync_with(&db.pool, vec![], allow_all).await.is_err());
        assert!(user(&db.pool, "1001").await.is_present);
    })
    .await
}

#[tokio::test]
async fn a_successful_sync_is_recorded_in_sync_log() {
    on_a_fresh_db(|db| async move {
        sync(
            &db.pool,
            vec![
                member("1001", "a", None, &[]),
                member("1002", "b", None, &[]),
            ],
        )
        .await
        .unwrap();
        let row: (String, Option<i32>, Option<i32>, Value) = sqlx::query_as(
            "SELECT status, characters_found, characters_new, details
             FROM guild_identity.sync_log WHERE source = 'discord'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            (row.0.as_str(), row.1, row.2),
            ("success", Some(2), Some(2))
        );
        assert_eq!(row.3["bots_skipped"], 0);
    })
    .await
}

#[tokio::test]
async fn test_on_member_join_creates_discord_user() {
    on_a_fresh_db(|db| async move {
        let joined = wire_member(member("3001", "anduin", Some("King"), &["903"]));
        let outcome = discord_sync::on_member_join(&db.pool, &joined, &guild_roles())
            .await
            .unwrap();
        assert_eq!(outcome, MemberEventOutcome::Inserted);
        let row = user(&db.pool, "3001").await;
        assert_eq!(row.display_name.as_deref(), Some("King"));
        assert_eq!(row.highest_guild_role.as_deref(), Some("Veteran"));
        assert!(row.is_present);

        let bot = wire_member(json!({"user": {"id": "3002", "username": "b", "bot": true}}));
        assert_eq!(
            discord_sync::on_member_join(&db.pool, &bot, &guild_roles())
                .await
                .unwrap(),
            MemberEventOutcome::BotIgnored
        );
        assert!(
            discord_users::get(&db.pool, "3002")
                .await
                .unwrap()
                .is_none()
        );
    })
    .await
}

#[tokio::test]
async fn test_on_member_remove_marks_not_present() {
    on_a_fresh_db(|db| async move {
        let joined = wire_member(member("3001", "anduin", None, &[]));
        discord_sync::on_member_join(&db.pool, &joined, &guild_roles())
            .await
            .unwrap();
        let outcome = discord_sync::on_member_remove(&db.pool, &joined.user)
            .await
            .unwrap();
        assert_eq!(outcome, MemberEventOutcome::Departed);
        let row = user(&db.pool, "3001").await;
        assert!(!row.is_present);
        assert!(row.removed_at.is_some());

        let stranger: WireUser =
            serde_json::from_value(json!({"id": "3999", "username": "x"})).unwrap();
        assert_eq!(
            discord_sync::on_member_remove(&db.pool, &stranger)
                .await
                .unwrap(),
            MemberEventOutcome::NotPresent
        );

        // Rejoining revives the row.
        let outcome = discord_sync::on_member_join(&db.pool, &joined, &guild_roles())
            .await
            .unwrap();
        assert_eq!(outcome, MemberEventOutcome::Revived);
        let back = user(&db.pool, "3001").await;
        assert!(back.is_present && back.removed_at.is_none() && back.id == row.id);
    })
    .await
}

#[tokio::test]
async fn member_update_changes_names_and_roles_and_keeps_the_join_time() {
    on_a_fresh_db(|db| async move {
        let joined = wire_member(member("3001", "anduin", None, &["905"]));
        discord_sync::on_member_join(&db.pool, &joined, &guild_roles())
            .await
            .unwrap();
        let update = wire_member(json!({
            "user": {"id": "3001", "username": "anduin_w", "global_name": "Anduin"},
            "nick": null, "roles": ["902", "904"]
        }));
        let outcome = discord_sync::on_member_update(&db.pool, &update, &guild_roles())
            .await
            .unwrap();
        assert_eq!(outcome, MemberEventOutcome::Updated);
        let row = user(&db.pool, "3001").await;
        assert_eq!(row.username, "anduin_w");
        assert_eq!(row.display_name.as_deref(), Some("Anduin"));
        assert_eq!(row.all_guild_roles, vec!["Officer", "Member"]);
        assert!(
            row.joined_server_at.is_some(),
            "an update without joined_at keeps it"
        );
    })
    .await
}

#[tokio::test]
async fn sync_discord_from_file_prints_the_stats_as_the_last_json_line() {
    on_a_fresh_db(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("discord.json");
        std::fs::write(
            &file,
            serde_json::to_vec(&json!({"roles": roles(), "members": [
                member("1001", "thrall", None, &["901"]),
                json!({"user": {"id": "2001", "username": "bot", "bot": true}, "roles": []})
            ]}))
            .unwrap(),
        )
        .unwrap();
        let run = |args: Vec<std::ffi::OsString>| {
            let url = db.url();
            let cwd = dir.path().to_owned();
            async move {
                tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
                    .args(args)
                    .env("DATABASE_URL", url)
                    .current_dir(cwd)
                    .output()
                    .await
                    .unwrap()
            }
        };
        let out = run(vec![
            "sync".into(),
            "discord".into(),
            "--from-file".into(),
            file.clone().into(),
            "--json".into(),
        ])
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stats: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(
            (
                stats["found"].as_u64(),
                stats["new"].as_u64(),
                stats["bots_skipped"].as_u64()
            ),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(
            user(&db.pool, "1001").await.highest_guild_role.as_deref(),
            Some("GM")
        );

        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, b"{\"roles\": [], \"members\": [{\"user\": 5}]}").unwrap();
        let out = run(vec![
            "sync".into(),
            "discord".into(),
            "--from-file".into(),
            broken.into(),
        ])
        .await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.lines().last().unwrap().starts_with("error:") && stderr.contains("broken.json"),
            "{stderr}"
        );
        assert!(user(&db.pool, "1001").await.is_present);
    })
    .await
}

#[tokio::test]
async fn joins_and_leaves_newer_than_the_member_list_are_not_overruled_by_it() {
    on_a_fresh_db(|db| async move {
        let listed: Vec<Value> = (1..=3)
            .map(|i| member(&format!("100{i}"), &format!("user{i}"), None, &[]))
            .collect();
        sync(&db.pool, listed.clone()).await.unwrap();

        // The list is taken; while it is being fetched, one member joins and one leaves.
        let taken_at = discord_users::clock(&db.pool).await.unwrap();
        let newcomer = wire_member(member("1004", "newcomer", None, &[]));
        discord_sync::on_member_join(&db.pool, &newcomer, &guild_roles())
            .await
            .unwrap();
        let leaver = wire_member(listed[2].clone());
        discord_sync::on_member_remove(&db.pool, &leaver.user)
            .await
            .unwrap();

        let snapshot = snapshot(listed);
        let ranks = discord_sync::RankRoles::new(
            &guild_sync::db::reference::guild_ranks(&db.pool)
                .await
                .unwrap(),
        );
        let prepared = discord_sync::prepare_members(
            &snapshot.members,
            &GuildRoles::new(&snapshot.roles),
            &ranks,
        );
        let stats = discord_sync::apply_member_list(
            &db.pool,
            &prepared,
            taken_at,
            guard(),
            EventSource::unrecorded(),
        )
        .await
        .unwrap();
        assert_eq!((stats.departed, stats.revived), (0, 0));
        assert!(
            user(&db.pool, "1004").await.is_present,
            "joined after the list"
        );
        assert!(
            !user(&db.pool, "1003").await.is_present,
            "left after the list"
        );
    })
    .await
}

/// One member's NUL used to make every `sync discord` fail (PostgreSQL refuses U+0000 in text).
/// Names are cleaned where they are parsed, so the whole list syncs — the gateway's member
/// events go through the same parse.
#[tokio::test]
async fn a_nul_in_a_nick_or_name_does_not_fail_the_sync() {
    on_a_fresh_db(|db| async move {
        let stats = sync(
            &db.pool,
            vec![
                member(
                    "1001",
                    "thr\u{0}all",
                    Some("War\u{0}chief\u{1b}[31m"),
                    &["904"],
                ),
                json!({"user": {"id": "1002", "username": "jaina", "global_name": "Jaina\nP\u{0}"},
                       "roles": []}),
                member("1003", "anduin", None, &["904"]),
            ],
        )
        .await
        .expect("the sync succeeds");
        assert_eq!((stats.found, stats.new), (3, 3));
        let thrall = user(&db.pool, "1001").await;
        assert_eq!(thrall.username, "thrall");
        assert_eq!(thrall.display_name.as_deref(), Some("Warchief[31m"));
        let jaina = user(&db.pool, "1002").await;
        assert_eq!(jaina.display_name.as_deref(), Some("Jaina P"));

        let update = wire_member(json!({
            "user": {"id": "1003", "username": "anduin\u{0}"}, "nick": "King\u{0}", "roles": ["904"]
        }));
        discord_sync::on_member_update(&db.pool, &update, &guild_roles())
            .await
            .expect("the event applies");
        assert_eq!(
            user(&db.pool, "1003").await.display_name.as_deref(),
            Some("King")
        );
    })
    .await
}

/// A member with every synced field set: a nick, a global name, roles, a join time.
fn full_member(
    id: &str,
    username: &str,
    nick: &str,
    global: &str,
    roles: &[&str],
    joined: &str,
) -> Value {
    json!({
        "user": {"id": id, "username": username, "global_name": global, "bot": false},
        "nick": nick,
        "roles": roles,
        "joined_at": joined
    })
}

/// Each stored row's transaction id (`xmin`): it moves when, and only when, the row is written.
async fn row_versions(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT discord_id, xmin::text FROM guild_identity.discord_users ORDER BY discord_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn event_types(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT du.discord_id, e.event_type::text FROM guild_identity.member_events e
         JOIN guild_identity.discord_users du ON du.id = e.discord_user_id
         ORDER BY e.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_content_fingerprint_finds_a_change_in_any_synced_column_and_skips_the_rest() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let at = "2024-05-01T18:30:00+00:00";
        let base = |id: &str| full_member(id, &format!("user{id}"), "Nick", "Global", &["904"], at);
        let ids = ["1001", "1002", "1003", "1004", "1005", "1006", "1007"];
        let list: Vec<Value> = ids.iter().map(|id| base(id)).collect();
        assert_eq!(sync(pool, list.clone()).await.unwrap().new, 7);

        // The same list again: every member unchanged, no row written, no event.
        let versions = row_versions(pool).await;
        let events = event_types(pool).await;
        let again = sync(pool, list).await.unwrap();
        assert_eq!((again.updated, again.unchanged), (0, 7));
        assert_eq!(row_versions(pool).await, versions);
        assert_eq!(event_types(pool).await, events);

        // One synced column changed per member; 1007 stays as it was.
        let changed = vec![
            full_member("1001", "renamed", "Nick", "Global", &["904"], at),
            full_member("1002", "user1002", "Other nick", "Global", &["904"], at),
            full_member("1003", "user1003", "Nick", "Other global", &["904"], at),
            full_member("1004", "user1004", "Nick", "Global", &["904", "905"], at),
            full_member("1005", "user1005", "Nick", "Global", &["903"], at),
            full_member(
                "1006",
                "user1006",
                "Nick",
                "Global",
                &["904"],
                "2025-01-02T03:04:05+00:00",
            ),
            base("1007"),
        ];
        let stats = sync(pool, changed).await.unwrap();
        assert_eq!((stats.updated, stats.unchanged), (6, 1));
        let after = row_versions(pool).await;
        for ((id, before), (_, now)) in versions.iter().zip(&after) {
            assert_eq!(
                before == now,
                id == "1007",
                "member {id} written: {}",
                before != now
            );
        }
        assert_eq!(user(pool, "1001").await.username, "renamed");
        assert_eq!(
            user(pool, "1002").await.display_name.as_deref(),
            Some("Other nick")
        );
        let global: Option<String> = sqlx::query_scalar(
            "SELECT global_name FROM guild_identity.discord_users WHERE discord_id = '1003'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(global.as_deref(), Some("Other global"));
        assert_eq!(
            user(pool, "1004").await.all_guild_roles,
            vec!["Member", "Initiate"]
        );
        assert_eq!(
            user(pool, "1005").await.highest_guild_role.as_deref(),
            Some("Veteran")
        );
        assert_eq!(
            user(pool, "1006")
                .await
                .joined_server_at
                .unwrap()
                .to_rfc3339(),
            "2025-01-02T03:04:05+00:00"
        );
        // One statement writes them all, in no set order.
        let mut new_events: Vec<_> = event_types(pool).await.split_off(events.len());
        new_events.sort();
        assert_eq!(
            new_events,
            [
                ("1001", "discord_renamed"),
                ("1002", "discord_renamed"),
                ("1004", "discord_roles_changed"),
                ("1005", "discord_roles_changed"),
            ]
            .map(|(id, kind)| (id.to_owned(), kind.to_owned()))
        );
    })
    .await
}

#[tokio::test]
async fn a_row_without_a_fingerprint_gets_one_once_and_keeps_its_last_sync() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let list = vec![member("1001", "thrall", Some("Warchief"), &["904"])];
        sync(pool, list.clone()).await.unwrap();
        // As a row stored before migration 1505.
        sqlx::query("UPDATE guild_identity.discord_users SET content_fingerprint = NULL")
            .execute(pool)
            .await
            .unwrap();
        let stored = "SELECT last_sync, content_fingerprint FROM guild_identity.discord_users";
        let (last_sync, _): (Option<chrono::DateTime<chrono::Utc>>, Option<i64>) =
            sqlx::query_as(stored).fetch_one(pool).await.unwrap();

        let filled = sync(pool, list.clone()).await.unwrap();
        assert_eq!((filled.updated, filled.unchanged), (0, 1));
        let (kept, fingerprint): (Option<chrono::DateTime<chrono::Utc>>, Option<i64>) =
            sqlx::query_as(stored).fetch_one(pool).await.unwrap();
        assert_eq!(
            kept, last_sync,
            "filling the fingerprint is not a confirmation"
        );
        assert!(fingerprint.is_some());

        let versions = row_versions(pool).await;
        sync(pool, list).await.unwrap();
        assert_eq!(row_versions(pool).await, versions);
    })
    .await
}
