//! A year of the guild's memory for the benchmarks (issue 19): `events` member events spread
//! over the 365 days before now, about the guild's existing characters, Discord members and
//! players.
//!
//! Issue 19's figures are taken on a year of history: the history routes read it, and each
//! sync writes its events into a table (and its time, player and subject indexes) that has
//! been growing for a year, not into an empty one. So both benchmarks seed it the same way:
//! `guild-sync bench` before its later passes, `cargo bench --bench member_events` before the
//! history routes.

use anyhow::{Context, Result};
use sqlx::PgPool;

/// Insert `events` events, oldest first (as syncs append them: ids and times ascending
/// together, so the indexes have the shape a year of appends gives them), then `ANALYZE` the
/// table as autovacuum would have. Character events (joins, leaves, returns, renames, rank
/// changes, links, transfers) name a character and its player; Discord events (role changes,
/// renames) name a member and the player linked to them. Subjects are taken in turn from the
/// existing rows; without characters or members, those events name none.
pub async fn seed_a_year(pool: &PgPool, events: i64) -> Result<()> {
    sqlx::query(
        "WITH subjects AS (
             SELECT (SELECT array_agg(id ORDER BY id) FROM guild_identity.wow_characters)
                        AS characters,
                    (SELECT array_agg(id ORDER BY id) FROM guild_identity.discord_users)
                        AS members
         ),
         numbered AS (
             SELECT g,
                    (ARRAY['joined_guild', 'left_guild', 'returned', 'renamed', 'rank_changed',
                           'rank_changed', 'discord_roles_changed', 'discord_renamed', 'linked',
                           'transferred'])[1 + g % 10] AS event_type,
                    s.characters[1 + g % NULLIF(cardinality(s.characters), 0)] AS character_id,
                    s.members[1 + g % NULLIF(cardinality(s.members), 0)] AS discord_user_id
             FROM subjects s, generate_series(1, $1::int8) g
         )
         INSERT INTO guild_identity.member_events
             (event_type, occurred_at, character_id, discord_user_id, player_id, before, after,
              actor)
         SELECT n.event_type,
                now() - (1 - n.g::float8 / $1) * interval '365 days',
                CASE WHEN n.event_type NOT LIKE 'discord%' THEN n.character_id END,
                CASE WHEN n.event_type LIKE 'discord%' THEN n.discord_user_id END,
                CASE WHEN n.event_type LIKE 'discord%' THEN pl.id ELSE pc.player_id END,
                jsonb_build_object('name', 'Char' || n.character_id, 'rank', 'Member',
                                   'rank_index', 3),
                jsonb_build_object('name', 'Char' || n.character_id, 'rank', 'Veteran',
                                   'rank_index', 2),
                'engine'
         FROM numbered n
         LEFT JOIN guild_identity.player_characters pc ON pc.character_id = n.character_id
         LEFT JOIN guild_identity.players pl ON pl.discord_user_id = n.discord_user_id
         ORDER BY n.g",
    )
    .bind(events)
    .execute(pool)
    .await
    .context("cannot seed a year of member events")?;
    sqlx::query("ANALYZE guild_identity.member_events")
        .execute(pool)
        .await
        .context("cannot analyze the seeded member events")?;
    Ok(())
}
