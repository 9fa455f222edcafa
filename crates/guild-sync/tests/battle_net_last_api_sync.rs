//! Issue 21: a Battle.net sync skips rows whose input did not change, and `last_api_sync`
//! ("the last successful profile fetch", SPEC) is derived for them from the last applied
//! roster (migration 1420). These tests pin that the derived value is exactly what the old
//! column held when every fetched row was stamped with its sync's time: present and unchanged
//! (without rewriting the row), changed, a failed fetch, departed, returned, a row the addon
//! changed in between, and a refused roster that writes nothing.

mod blizzard_support;
mod common;

use std::collections::BTreeMap;

use blizzard_support::{Member, fetched, guard, member};
use chrono::{DateTime, Utc};
use guild_sync::db_sync::sync_fetched;
use guild_sync_core::addon::AddonUpdate;
use sqlx::PgPool;

use common::on_a_fresh_db;

type Expected = BTreeMap<i64, Option<DateTime<Utc>>>;

/// Apply a roster and return its time (the value the old code wrote into fetched rows).
async fn sync(pool: &PgPool, members: &[Member]) -> DateTime<Utc> {
    sync_fetched(pool, &fetched(members), guard())
        .await
        .unwrap();
    sqlx::query_scalar("SELECT synced_at FROM guild_identity.battle_net_full_sync")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The old column's rule: every member with a fetched profile gets the sync's time; everyone
/// else keeps what they had.
fn stamp(expected: &mut Expected, members: &[Member], at: DateTime<Utc>) {
    for m in members {
        let slot = expected.entry(m.id).or_insert(None);
        if m.has_profile {
            *slot = Some(at);
        }
    }
}

/// `last_api_sync` as read through the view, by Blizzard id.
async fn derived(pool: &PgPool) -> Expected {
    let rows: Vec<(i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT blizzard_id, last_api_sync FROM guild_identity.wow_characters_synced
         ORDER BY blizzard_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

/// The row version of one character (changes whenever the row is rewritten).
async fn xmin(pool: &PgPool, blizzard_id: i64) -> String {
    sqlx::query_scalar(
        "SELECT xmin::text FROM guild_identity.wow_characters WHERE blizzard_id = $1",
    )
    .bind(blizzard_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn rank_index(pool: &PgPool, blizzard_id: i64) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT r.ingame_rank_index FROM guild_identity.wow_characters wc
         LEFT JOIN common.guild_ranks r ON r.id = wc.guild_rank_id
         WHERE wc.blizzard_id = $1",
    )
    .bind(blizzard_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_derived_last_api_sync_is_the_old_columns_value_in_every_case() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        let mut expected = Expected::new();
        let mut all = vec![
            member(1, "Unchanged"),
            member(2, "Changes"),
            member(3, "Failsfetch"),
            member(4, "Departs"),
        ];

        // New rows.
        let t1 = sync(pool, &all).await;
        stamp(&mut expected, &all, t1);
        assert_eq!(derived(pool).await, expected);

        // Present and unchanged (not rewritten), changed, and a profile that is not fetched.
        let untouched = xmin(pool, 1).await;
        all[1].item_level += 5;
        all[2].has_profile = false;
        let t2 = sync(pool, &all).await;
        assert!(t2 > t1);
        stamp(&mut expected, &all, t2);
        assert_eq!(derived(pool).await, expected);
        assert_eq!(
            xmin(pool, 1).await,
            untouched,
            "an unchanged row was rewritten"
        );
        assert_eq!(expected[&3], Some(t1));

        // Still not fetched (skipped as unchanged, keeps t1); one member departs.
        let t3 = sync(pool, &all[..3]).await;
        stamp(&mut expected, &all[..3], t3);
        assert_eq!(derived(pool).await, expected);
        assert_eq!(expected[&3], Some(t1));
        assert_eq!(expected[&4], Some(t2));

        // The addon changes a column the roster writes: the value stays, and the next roster
        // writes the row again (its rank comes back) instead of skipping it.
        let (id, other_rank): (i32, i32) = sqlx::query_as(
            "SELECT wc.id, (SELECT r.id FROM common.guild_ranks r
                            WHERE r.id IS DISTINCT FROM wc.guild_rank_id ORDER BY r.id LIMIT 1)
             FROM guild_identity.wow_characters wc WHERE wc.blizzard_id = 1",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        guild_sync::db::addon::apply_addon_updates(
            pool,
            &[AddonUpdate {
                character_id: id,
                guild_note: None,
                officer_note: None,
                class_id: None,
                guild_rank_id: Some(other_rank),
                level: None,
            }],
        )
        .await
        .unwrap();
        assert_eq!(derived(pool).await, expected);
        assert_ne!(rank_index(pool, 1).await, Some(3));

        // The fetch works again, and the departed member returns.
        all[2].has_profile = true;
        let t4 = sync(pool, &all).await;
        stamp(&mut expected, &all, t4);
        assert_eq!(derived(pool).await, expected);
        assert_eq!(rank_index(pool, 1).await, Some(3));
        assert!(expected.values().all(|v| *v == Some(t4)));

        // A refused roster writes nothing and leaves every value.
        let refused = sync_fetched(pool, &fetched(&[]), guard()).await;
        assert!(refused.is_err());
        assert_eq!(derived(pool).await, expected);

        // A second identical roster rewrites nobody, and confirms everyone.
        let versions = [xmin(pool, 1).await, xmin(pool, 2).await];
        let t5 = sync(pool, &all).await;
        stamp(&mut expected, &all, t5);
        assert_eq!(derived(pool).await, expected);
        assert_eq!([xmin(pool, 1).await, xmin(pool, 2).await], versions);
    })
    .await;
}
