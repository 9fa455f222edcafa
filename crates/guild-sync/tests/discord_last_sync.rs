//! Issue 21: a full Discord sync no longer rewrites `last_sync` on every present member; the
//! value is derived from the last complete sync (migration 1101, `discord_users_synced`). These
//! tests pin that the derived value is what the old column held in every case — "the last full
//! sync that saw this member", or the real-time event that last wrote the row — on a real
//! PostgreSQL, through the real sync and event functions.
//!
//! The old column got the sync transaction's `now()`; each step below reads that time back as
//! the recorded full sync's `synced_at` and checks it lies inside the run's own `sync_log`
//! window, so the expectations do not lean on the code under test.

mod common;

use chrono::{DateTime, Utc};
use guild_sync::config::{Config, RemovalGuard};
use guild_sync::db::discord_users;
use guild_sync::discord_sync::{self, DiscordInput, DiscordSnapshot, GuildRoles, WireMember};
use serde_json::{Value, json};
use sqlx::PgPool;

use common::on_a_fresh_db;

fn roles() -> Value {
    json!([{"id": "900", "name": "@everyone", "position": 0},
           {"id": "904", "name": "Member", "position": 6}])
}

fn member(id: &str, username: &str) -> Value {
    json!({"user": {"id": id, "username": username, "global_name": null, "bot": false},
           "nick": null, "roles": ["904"], "joined_at": "2024-05-01T18:30:00+00:00"})
}

/// One full sync of `members`; returns the time the old code wrote into `last_sync` (the sync
/// transaction's time), checked to lie inside the run's `sync_log` window.
async fn full_sync(pool: &PgPool, members: Vec<Value>) -> anyhow::Result<DateTime<Utc>> {
    let snapshot: DiscordSnapshot =
        serde_json::from_value(json!({"roles": roles(), "members": members})).unwrap();
    let guard = RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    };
    discord_sync::run(
        pool,
        &Config::defaults(),
        DiscordInput::Snapshot(snapshot),
        guard,
    )
    .await?;
    let (synced_at, started, completed): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as(
            "SELECT fs.synced_at, l.started_at, l.completed_at
             FROM guild_identity.discord_full_sync fs,
                  (SELECT * FROM guild_identity.sync_log WHERE source = 'discord'
                   ORDER BY id DESC LIMIT 1) l",
        )
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(
        started <= synced_at && synced_at <= completed,
        "{synced_at} outside the run {started}..{completed}"
    );
    Ok(synced_at)
}

async fn last_sync(pool: &PgPool, id: &str) -> Option<DateTime<Utc>> {
    discord_users::get(pool, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} not stored"))
        .last_sync
}

/// What is physically stored, to show unchanged rows are not rewritten.
async fn stored_last_sync(pool: &PgPool, id: &str) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT last_sync FROM guild_identity.discord_users WHERE discord_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_derived_last_sync_is_the_old_columns_value_in_every_case() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let everyone = || {
            vec![
                member("1", "anduin"),
                member("2", "baine"),
                member("3", "cairne"),
                member("4", "drekthar"),
            ]
        };
        // 1 and 4 unchanged, 2 renamed, 3 departed, 5 new.
        let after_the_changes = || {
            vec![
                member("1", "anduin"),
                member("2", "baine-renamed"),
                member("4", "drekthar"),
                member("5", "eitrigg"),
            ]
        };

        // First sync: every member new, confirmed by it.
        let t1 = full_sync(pool, everyone()).await.unwrap();
        for id in ["1", "2", "3", "4"] {
            assert_eq!(last_sync(pool, id).await, Some(t1), "member {id}");
        }

        // Second sync: 1 and 4 unchanged, 2 changed, 3 departed, 5 new.
        let t2 = full_sync(pool, after_the_changes()).await.unwrap();
        assert!(t2 > t1);
        // Present and unchanged: confirmed by the second sync, without a write.
        assert_eq!(last_sync(pool, "1").await, Some(t2));
        assert_eq!(
            stored_last_sync(pool, "1").await,
            Some(t1),
            "unchanged row rewritten"
        );
        // Changed and new: written by it.
        assert_eq!(last_sync(pool, "2").await, Some(t2));
        assert_eq!(last_sync(pool, "5").await, Some(t2));
        // Departed: the last sync that saw them, which is the first.
        let cairne = discord_users::get(pool, "3").await.unwrap().unwrap();
        assert!(!cairne.is_present && cairne.removed_at.is_some());
        assert_eq!(cairne.last_sync, Some(t1));

        // A partial list (would remove most members): refused, marks nobody, moves nothing.
        let refused = full_sync(pool, vec![member("1", "anduin")]).await;
        assert!(refused.is_err(), "a list missing 3 of 4 members is refused");
        for (id, expected) in [("1", t2), ("2", t2), ("3", t1), ("4", t2), ("5", t2)] {
            assert_eq!(last_sync(pool, id).await, Some(expected), "member {id}");
        }

        // Third sync marks nobody and changes nothing: everyone present is confirmed by it,
        // the departed member still by the first.
        let t3 = full_sync(pool, after_the_changes()).await.unwrap();
        for id in ["1", "2", "4", "5"] {
            assert_eq!(last_sync(pool, id).await, Some(t3), "member {id}");
        }
        assert_eq!(last_sync(pool, "3").await, Some(t1));

        // Returned: seen by the fourth sync again.
        let mut back = vec![member("3", "cairne")];
        back.extend([
            member("1", "anduin"),
            member("2", "baine-renamed"),
            member("4", "drekthar"),
            member("5", "eitrigg"),
        ]);
        let t4 = full_sync(pool, back).await.unwrap();
        let cairne = discord_users::get(pool, "3").await.unwrap().unwrap();
        assert!(cairne.is_present && cairne.removed_at.is_none());
        assert_eq!(cairne.last_sync, Some(t4));

        // Real-time events: an update writes the row at the event's time (after the sync); a
        // departure keeps the last sync that saw the member.
        let roles: Vec<guild_sync::discord_sync::WireRole> =
            serde_json::from_value(roles()).unwrap();
        let updated: WireMember = serde_json::from_value(member("1", "anduin-new")).unwrap();
        discord_sync::on_member_update(pool, &updated, &GuildRoles::new(&roles))
            .await
            .unwrap();
        let event_time = last_sync(pool, "1").await.unwrap();
        assert!(event_time > t4);
        assert_eq!(stored_last_sync(pool, "1").await, Some(event_time));
        let leaving: WireMember = serde_json::from_value(member("4", "drekthar")).unwrap();
        discord_sync::on_member_remove(pool, &leaving.user)
            .await
            .unwrap();
        assert_eq!(last_sync(pool, "4").await, Some(t4));
        assert_eq!(
            stored_last_sync(pool, "4").await,
            Some(t4),
            "fixed into the row"
        );

        // The next sync confirms the updated member again and keeps the departed one's value.
        let t5 = full_sync(
            pool,
            vec![
                member("1", "anduin-new"),
                member("2", "baine-renamed"),
                member("3", "cairne"),
                member("5", "eitrigg"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(last_sync(pool, "1").await, Some(t5));
        assert_eq!(last_sync(pool, "4").await, Some(t4));
        let all = discord_users::all(pool).await.unwrap();
        assert_eq!(all.len(), 5);
    })
    .await;
}
