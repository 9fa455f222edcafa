//! The addon sync's SQL: the character keys it matches against, the one set-based update that
//! writes an export's notes, class, rank and level, and the last addon run for the upload
//! status. Matching decisions are not made here ([`guild_sync_core::addon::plan_addon_sync`]).

use anyhow::{Context, Result};
use guild_sync_core::addon::AddonUpdate;
use sqlx::PgExecutor;

use crate::db::sync_log::SyncLogRow;

/// The columns the addon sync matches a character on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CharacterKeyRow {
    pub id: i32,
    pub character_name: String,
    pub realm_slug: String,
    pub in_guild: bool,
}

/// Every character row, departed ones included (a departed character's notes still update
/// if it shows up in the roster export again).
pub async fn character_keys(db: impl PgExecutor<'_>) -> Result<Vec<CharacterKeyRow>> {
    sqlx::query_as(
        "SELECT id, character_name, realm_slug, removed_at IS NULL AS in_guild
         FROM guild_identity.wow_characters",
    )
    .fetch_all(db)
    .await
    .context("cannot load the characters to match the addon export against")
}

/// What [`apply_addon_updates`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddonApplied {
    /// Rows the export named (all are confirmed by this export, see migration 1481).
    pub matched: u64,
    /// Rows whose notes, class, rank or level actually changed: the only rows written.
    pub changed: u64,
}

/// Apply every update in one statement. A `NULL` anywhere keeps the row's value; an empty note
/// clears the stored one (to `NULL`).
///
/// Only rows whose values change are written (with `addon_last_sync`); the export's rows and
/// time go to `addon_last_export`, from which `wow_characters_synced.addon_last_sync` derives
/// the others' last confirmation (migration 1481). A row the previous export named and this one
/// does not gets the previous export's time fixed into `addon_last_sync` first.
pub async fn apply_addon_updates(
    db: impl PgExecutor<'_>,
    updates: &[AddonUpdate],
) -> Result<AddonApplied> {
    let mut ids = Vec::with_capacity(updates.len());
    let mut notes = Vec::with_capacity(updates.len());
    let mut officer_notes = Vec::with_capacity(updates.len());
    let mut class_ids = Vec::with_capacity(updates.len());
    let mut rank_ids = Vec::with_capacity(updates.len());
    let mut levels = Vec::with_capacity(updates.len());
    for u in updates {
        ids.push(u.character_id);
        notes.push(u.guild_note.clone());
        officer_notes.push(u.officer_note.clone());
        class_ids.push(u.class_id);
        rank_ids.push(u.guild_rank_id);
        levels.push(u.level);
    }
    // Every data-modifying CTE sees the rows as they were when the statement started: the
    // `changed` WHERE compares old to new, and `kept` and `changed` touch disjoint rows (ids
    // not in the export, ids in it).
    let (matched, changed): (i64, i64) = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM UNNEST($1::int[], $2::text[], $3::text[], $4::int[], $5::int[], $6::int[])
                 AS u(id, note, officer_note, class_id, guild_rank_id, level)
         ), kept AS (
             UPDATE guild_identity.wow_characters wc SET addon_last_sync = ae.synced_at
             FROM guild_identity.addon_last_export ae
             WHERE wc.id = ANY (ae.character_ids) AND wc.id <> ALL ($1::int[])
               AND (wc.addon_last_sync IS NULL OR wc.addon_last_sync < ae.synced_at)
             RETURNING wc.id
         ), changed AS (
             UPDATE guild_identity.wow_characters wc
             SET addon_note = CASE WHEN i.note IS NULL THEN wc.addon_note
                                       ELSE NULLIF(i.note, '') END,
                 addon_officer_note = CASE WHEN i.officer_note IS NULL THEN wc.addon_officer_note
                                           ELSE NULLIF(i.officer_note, '') END,
                 class_id = COALESCE(i.class_id, wc.class_id),
                 guild_rank_id = COALESCE(i.guild_rank_id, wc.guild_rank_id),
                 level = COALESCE(i.level, wc.level),
                 -- A column the roster also writes changed: the next roster sync must write the
                 -- row again rather than skip it as unchanged (migration 1420).
                 bnet_input_hash = CASE
                     WHEN (COALESCE(i.class_id, wc.class_id), COALESCE(i.guild_rank_id, wc.guild_rank_id),
                           COALESCE(i.level, wc.level))
                          IS DISTINCT FROM (wc.class_id, wc.guild_rank_id, wc.level)
                     THEN NULL ELSE wc.bnet_input_hash END,
                 addon_last_sync = now()
             FROM input i
             WHERE wc.id = i.id
               AND ((i.note IS NOT NULL AND wc.addon_note IS DISTINCT FROM NULLIF(i.note, ''))
                    OR (i.officer_note IS NOT NULL
                        AND wc.addon_officer_note IS DISTINCT FROM NULLIF(i.officer_note, ''))
                    OR (i.class_id IS NOT NULL AND wc.class_id IS DISTINCT FROM i.class_id)
                    OR (i.guild_rank_id IS NOT NULL
                        AND wc.guild_rank_id IS DISTINCT FROM i.guild_rank_id)
                    OR (i.level IS NOT NULL AND wc.level IS DISTINCT FROM i.level))
             RETURNING wc.id
         ), matched AS (
             SELECT COALESCE(array_agg(i.id), '{}') AS ids FROM input i
             WHERE EXISTS (SELECT 1 FROM guild_identity.wow_characters wc WHERE wc.id = i.id)
         ), saved AS (
             INSERT INTO guild_identity.addon_last_export (singleton, synced_at, character_ids)
             SELECT TRUE, now(), ids FROM matched
             ON CONFLICT (singleton) DO UPDATE
                 SET synced_at = EXCLUDED.synced_at, character_ids = EXCLUDED.character_ids
         )
         SELECT (SELECT cardinality(ids) FROM matched)::int8, (SELECT count(*) FROM changed)",
    )
    .bind(&ids)
    .bind(&notes)
    .bind(&officer_notes)
    .bind(&class_ids)
    .bind(&rank_ids)
    .bind(&levels)
    .fetch_one(db)
    .await
    .context("cannot write the addon notes to wow_characters")?;
    Ok(AddonApplied {
        matched: matched as u64,
        changed: changed as u64,
    })
}

/// The newest `exportTime` (unix seconds) an addon run applied; `None` before the first dated
/// one. Read from the stats each successful run stores in `details`.
pub async fn last_applied_export_time(db: impl PgExecutor<'_>) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT max((details->>'export_time')::bigint) FROM guild_identity.sync_log
         WHERE source = 'addon' AND status IN ('success', 'partial')
           AND jsonb_typeof(details->'export_time') = 'number'",
    )
    .fetch_one(db)
    .await
    .context("cannot read the last applied export time")
}

/// When the newest successful Battle.net roster sync started (unix seconds): the ranks it wrote
/// are as of then. `None` before the first.
pub async fn last_battle_net_sync(db: impl PgExecutor<'_>) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM max(started_at))::bigint FROM guild_identity.sync_log
         WHERE source = 'blizzard' AND status IN ('success', 'partial')",
    )
    .fetch_one(db)
    .await
    .context("cannot read the last Battle.net sync time")
}

/// The most recent addon run (`sync_log.source = 'addon'`), whatever its status.
pub async fn latest_addon_run(db: impl PgExecutor<'_>) -> Result<Option<SyncLogRow>> {
    sqlx::query_as(
        "SELECT * FROM guild_identity.sync_log WHERE source = 'addon'
         ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await
    .context("cannot read the last addon run")
}
