//! `guild_identity.wow_characters`: the set-based statements db_sync applies a roster plan with.
//! Every statement takes whole columns as arrays (`UNNEST`), so a 1,000-member roster is a handful
//! of statements, not a query per character. The plan itself is decided in
//! `guild_sync_core::roster`; nothing here decides who is new, gone or renamed.
//! Also the [`CharacterCard`] the read models show a character with.

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use guild_sync_core::roster::{ExistingCharacter, MemberColumns};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgExecutor};
use std::collections::HashMap;

use super::member_events::EventSource;

/// A character as the officer's lists and the Discord commands show it: name, realm, class,
/// rank and level. Read models embed it with `#[sqlx(flatten)]`; their SQL selects these six
/// columns under these names.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CharacterCard {
    pub character_name: String,
    pub realm_slug: String,
    pub class_name: Option<String>,
    /// The class colour, hex without `#`.
    pub class_color: Option<String>,
    pub rank_name: Option<String>,
    pub level: Option<i32>,
}

/// Column-wise values for a batch of characters (one entry per character in every vector).
/// `id` is used by [`update_batch`] only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CharacterColumns {
    pub id: Vec<i32>,
    pub character_name: Vec<String>,
    pub realm_slug: Vec<String>,
    pub realm_name: Vec<Option<String>>,
    pub blizzard_id: Vec<Option<i64>>,
    pub class_id: Vec<Option<i32>>,
    pub active_spec_id: Vec<Option<i32>>,
    pub level: Vec<Option<i32>>,
    pub item_level: Vec<Option<i32>>,
    pub guild_rank_id: Vec<Option<i32>>,
    pub achievement_points: Vec<Option<i32>>,
    pub last_login_at: Vec<Option<DateTime<Utc>>>,
    pub profile_json: Vec<Option<serde_json::Value>>,
    /// Whether the profile was fetched: profile-derived columns are written (and
    /// `last_api_sync` stamped) only then; a 404 or failed fetch keeps what is stored.
    pub profile_fetched: Vec<bool>,
    /// [`input_hash`] of each character's input: stored in `bnet_input_hash`, so the next sync
    /// can skip a row whose input is unchanged.
    pub input_hash: Vec<i64>,
}

/// A fingerprint of one character's roster input (every column the sync writes, the fetch
/// outcome and the profile document). Only compared with what this program stored earlier, so
/// it need not be stable across builds: a different hash after an upgrade costs one full write.
pub fn input_hash(c: &MemberColumns, profile_json: Option<&serde_json::Value>) -> i64 {
    use std::hash::{Hash, Hasher};
    /// Feeds the serialized profile to the hasher without building the text.
    struct HashWriter<'a>(&'a mut std::collections::hash_map::DefaultHasher);
    impl std::io::Write for HashWriter<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &c.character_name,
        &c.realm_slug,
        &c.realm_name,
        c.blizzard_id,
        c.class.id(),
        c.spec.id(),
        c.rank.id(),
    )
        .hash(&mut h);
    (
        c.level,
        c.item_level,
        c.achievement_points,
        c.last_login_at,
        c.profile_fetched,
        profile_json.is_some(),
    )
        .hash(&mut h);
    if let Some(doc) = profile_json {
        // Writing into a hasher cannot fail.
        let _ = serde_json::to_writer(HashWriter(&mut h), doc);
    }
    h.finish() as i64
}

impl CharacterColumns {
    pub fn len(&self) -> usize {
        self.character_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.character_name.is_empty()
    }

    /// Add one character: its merged columns and, when its profile was fetched, the profile
    /// document for `profile_json`.
    pub fn push(&mut self, c: MemberColumns, profile_json: Option<serde_json::Value>, hash: i64) {
        self.input_hash.push(hash);
        self.character_name.push(c.character_name);
        self.realm_slug.push(c.realm_slug);
        self.realm_name.push(c.realm_name);
        self.blizzard_id.push(Some(c.blizzard_id));
        self.class_id.push(c.class.id());
        self.active_spec_id.push(c.spec.id());
        self.level.push(c.level);
        self.item_level.push(c.item_level);
        self.guild_rank_id.push(c.rank.id());
        self.achievement_points.push(c.achievement_points);
        self.last_login_at.push(c.last_login_at);
        self.profile_json.push(profile_json);
        self.profile_fetched.push(c.profile_fetched);
    }

    /// The 14 column arrays as query arguments, in the order both batch statements take them
    /// (`character_name` … `fetched`, `input_hash`), after `id` when `with_id`.
    fn arguments(&self, with_id: bool) -> Result<PgArguments> {
        let mut args = PgArguments::default();
        let added = (|| {
            if with_id {
                args.add(&self.id)?;
            }
            args.add(&self.character_name)?;
            args.add(&self.realm_slug)?;
            args.add(&self.realm_name)?;
            args.add(&self.blizzard_id)?;
            args.add(&self.class_id)?;
            args.add(&self.active_spec_id)?;
            args.add(&self.level)?;
            args.add(&self.item_level)?;
            args.add(&self.guild_rank_id)?;
            args.add(&self.achievement_points)?;
            args.add(&self.last_login_at)?;
            args.add(&self.profile_json)?;
            args.add(&self.profile_fetched)?;
            args.add(&self.input_hash)
        })();
        added.map_err(|err| anyhow!(err).context("cannot encode the character columns"))?;
        Ok(args)
    }
}

#[derive(sqlx::FromRow)]
struct ExistingRow {
    id: i32,
    blizzard_id: Option<i64>,
    character_name: String,
    realm_slug: String,
    departed: bool,
    bnet_input_hash: Option<i64>,
}

/// The stored characters as the roster plan needs them, and the input hash each one's last
/// Battle.net write stored (rows without one are always written).
pub struct StoredCharacters {
    pub rows: Vec<ExistingCharacter>,
    pub input_hash: HashMap<i32, i64>,
}

/// Every stored character (in the guild or departed), as the roster plan needs them.
pub async fn existing(db: impl PgExecutor<'_>) -> Result<StoredCharacters> {
    let rows: Vec<ExistingRow> = sqlx::query_as(
        "SELECT id, blizzard_id, character_name, realm_slug, removed_at IS NOT NULL AS departed,
                bnet_input_hash
         FROM guild_identity.wow_characters",
    )
    .fetch_all(db)
    .await
    .context("cannot load the stored characters")?;
    let input_hash = rows
        .iter()
        .filter_map(|r| Some((r.id, r.bnet_input_hash?)))
        .collect();
    let rows = rows
        .into_iter()
        .map(|r| ExistingCharacter {
            id: r.id,
            blizzard_id: r.blizzard_id,
            name: r.character_name,
            realm_slug: r.realm_slug,
            departed: r.departed,
        })
        .collect();
    Ok(StoredCharacters { rows, input_hash })
}

/// Give rows new names (`ids[i]` → `names[i]`) without touching anything else: used to move
/// renamed rows to placeholders and displaced rows out of the way before the batch update, so
/// the unique (name, realm) index never sees two rows on one name mid-statement.
pub async fn set_names(db: impl PgExecutor<'_>, ids: &[i32], names: &[String]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE guild_identity.wow_characters AS wc SET character_name = m.name
         FROM UNNEST($1::int4[], $2::text[]) AS m (id, name)
         WHERE wc.id = m.id",
    )
    .bind(ids)
    .bind(names)
    .execute(db)
    .await
    .context("cannot move renamed characters aside")?;
    Ok(done.rows_affected())
}

/// Update the rows in `c.id` in place and clear `removed_at`, recording in the same statement
/// (issue 19) a `returned`, `renamed`, `transferred` or `rank_changed` event for each row whose
/// stored state changed that way. `previous_names[i]` is row `c.id[i]`'s name before this run:
/// renamed rows were moved to a placeholder name first, so the table no longer holds it. Unknown classes and missing
/// levels keep the stored value (a character never changes class); profile-derived columns are
/// replaced only where the profile was fetched. Returns how many rows actually changed
/// (`last_api_sync` alone does not count): a second identical sync reports 0. Every row sent is
/// written (with its new `bnet_input_hash`); the caller leaves out rows whose input is unchanged.
pub async fn update_batch(
    db: impl PgExecutor<'_>,
    c: &CharacterColumns,
    previous_names: &[String],
    source: EventSource,
) -> Result<u64> {
    if c.is_empty() {
        return Ok(0);
    }
    anyhow::ensure!(
        previous_names.len() == c.id.len(),
        "{} previous names for {} rows",
        previous_names.len(),
        c.id.len()
    );
    let mut args = c.arguments(true)?;
    let added = (|| {
        args.add(previous_names)?;
        args.add(source.actor.as_str())?;
        args.add(source.run_id)
    })();
    added.map_err(|err| anyhow!(err).context("cannot encode the event source"))?;
    let changed: Vec<bool> = sqlx::query_scalar_with(
        "WITH input AS (
             SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[], $5::int8[],
                                  $6::int4[], $7::int4[], $8::int4[], $9::int4[], $10::int4[],
                                  $11::int4[], $12::timestamptz[], $13::jsonb[], $14::bool[],
                                  $15::int8[], $16::text[])
                 AS t (id, character_name, realm_slug, realm_name, blizzard_id, class_id,
                       active_spec_id, level, item_level, guild_rank_id, achievement_points,
                       last_login_at, profile_json, fetched, input_hash, previous_name)
         ), next AS (
             SELECT wc.id, i.fetched, i.input_hash, wc.last_api_sync AS old_api_sync,
                    i.previous_name AS old_name, wc.realm_slug AS old_realm,
                    wc.guild_rank_id AS old_rank, wc.removed_at AS old_removed_at,
                    i.character_name,
                    i.realm_slug,
                    COALESCE(i.realm_name, wc.realm_name) AS realm_name,
                    COALESCE(i.blizzard_id, wc.blizzard_id) AS blizzard_id,
                    COALESCE(i.class_id, wc.class_id) AS class_id,
                    CASE WHEN i.fetched THEN i.active_spec_id ELSE wc.active_spec_id END AS active_spec_id,
                    COALESCE(i.level, wc.level) AS level,
                    CASE WHEN i.fetched THEN i.item_level ELSE wc.item_level END AS item_level,
                    i.guild_rank_id,
                    CASE WHEN i.fetched THEN i.achievement_points ELSE wc.achievement_points END AS achievement_points,
                    CASE WHEN i.fetched THEN i.last_login_at ELSE wc.last_login_at END AS last_login_at,
                    CASE WHEN i.fetched THEN i.profile_json ELSE wc.profile_json END AS profile_json,
                    ROW(wc.character_name, wc.realm_slug, wc.realm_name, wc.blizzard_id, wc.class_id,
                        wc.active_spec_id, wc.level, wc.item_level, wc.guild_rank_id,
                        wc.achievement_points, wc.last_login_at, wc.profile_json, wc.removed_at) AS old
             -- The derived `last_api_sync` (see migration 1420) comes with the stored row.
             FROM input i JOIN guild_identity.wow_characters_synced wc ON wc.id = i.id
         ), diff AS (
             SELECT n.*,
                    ROW(n.character_name, n.realm_slug, n.realm_name, n.blizzard_id, n.class_id,
                        n.active_spec_id, n.level, n.item_level, n.guild_rank_id,
                        n.achievement_points, n.last_login_at, n.profile_json, NULL::timestamptz)
                        IS DISTINCT FROM n.old AS changed
             FROM next n
         ), updated AS (
         UPDATE guild_identity.wow_characters AS wc SET
             character_name = d.character_name,
             realm_slug = d.realm_slug,
             realm_name = d.realm_name,
             blizzard_id = d.blizzard_id,
             class_id = d.class_id,
             active_spec_id = d.active_spec_id,
             level = d.level,
             item_level = d.item_level,
             guild_rank_id = d.guild_rank_id,
             achievement_points = d.achievement_points,
             last_login_at = d.last_login_at,
             profile_json = d.profile_json,
             -- An unfetched profile keeps the last successful fetch: fix the derived value
             -- before the sync's own time replaces it.
             last_api_sync = CASE WHEN d.fetched THEN now() ELSE d.old_api_sync END,
             profile_fetched = d.fetched,
             bnet_input_hash = d.input_hash,
             removed_at = NULL
         FROM diff d
         WHERE wc.id = d.id
         RETURNING d.id, d.changed, d.old_name, d.old_realm, d.old_rank, d.old_removed_at,
                   d.character_name, d.realm_slug, d.guild_rank_id
         ), ranks AS MATERIALIZED (
             -- Each rank's document built once per statement, not once per event. Not a plain
             -- subquery: the planner would pull it up and build the document for every row
             -- that joins it (issue 19: JSON building was most of the events' cost).
             -- Ranks as name and in-game index, so a reader can tell a promotion (a lower
             -- index) from a demotion.
             SELECT id, jsonb_build_object('rank', name, 'rank_index', ingame_rank_index) AS doc
             FROM common.guild_ranks
         ), changes AS (
             -- Only changed rows can carry an event; one branch per kind, each reading only
             -- the rows it concerns, rather than four candidates per row filtered afterwards.
             SELECT 'returned' AS event_type, u.id,
                    jsonb_build_object('left_at', u.old_removed_at) AS before,
                    jsonb_build_object('name', u.character_name, 'realm', u.realm_slug,
                                       'rank', gr.name, 'rank_index', gr.ingame_rank_index)
                        AS after
             FROM updated u LEFT JOIN common.guild_ranks gr ON gr.id = u.guild_rank_id
             WHERE u.changed AND u.old_removed_at IS NOT NULL
             UNION ALL
             SELECT CASE WHEN u.old_realm <> u.realm_slug THEN 'transferred' ELSE 'renamed' END,
                    u.id,
                    jsonb_build_object('name', u.old_name, 'realm', u.old_realm),
                    jsonb_build_object('name', u.character_name, 'realm', u.realm_slug)
             FROM updated u
             WHERE u.changed AND (u.old_name <> u.character_name OR u.old_realm <> u.realm_slug)
             UNION ALL
             -- A returning character's rank is in its `returned` event. Both ranks are set
             -- (`<>` is not true for a NULL), so both have a row (foreign keys).
             SELECT 'rank_changed', u.id, ro.doc, rn.doc
             FROM updated u
             JOIN ranks ro ON ro.id = u.old_rank
             JOIN ranks rn ON rn.id = u.guild_rank_id
             WHERE u.changed AND u.old_removed_at IS NULL AND u.old_rank <> u.guild_rank_id
         ), events AS (
             INSERT INTO guild_identity.member_events
                 (event_type, character_id, player_id, before, after, run_id, actor)
             SELECT c.event_type, c.id, pc.player_id, c.before, c.after, $18::int8, $17::text
             FROM changes c
             LEFT JOIN guild_identity.player_characters pc ON pc.character_id = c.id
         )
         SELECT changed FROM updated",
        args,
    )
    .fetch_all(db)
    .await
    .context("cannot update the stored characters")?;
    Ok(changed.into_iter().filter(|&c| c).count() as u64)
}

/// Insert new characters (`c.id` is ignored), with a `joined_guild` event for each in the same
/// statement unless `baseline`: the guild's first sync (no roster applied before it, see
/// [`crate::db::member_events::history_started`]) records the roster as it is, not a thousand
/// joins on the day guild-sync was installed (issue 19).
/// Returns how many were inserted.
pub async fn insert_batch(
    db: impl PgExecutor<'_>,
    c: &CharacterColumns,
    source: EventSource,
    baseline: bool,
) -> Result<u64> {
    if c.is_empty() {
        return Ok(0);
    }
    let mut args = c.arguments(false)?;
    let added = (|| {
        args.add(source.actor.as_str())?;
        args.add(source.run_id)?;
        args.add(baseline)
    })();
    added.map_err(|err| anyhow!(err).context("cannot encode the event source"))?;
    let inserted: i64 = sqlx::query_scalar_with(
        "WITH inserted AS (
         INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, realm_name, blizzard_id, class_id, active_spec_id, level,
              item_level, guild_rank_id, achievement_points, last_login_at, profile_json,
              last_api_sync, profile_fetched, bnet_input_hash)
         SELECT character_name, realm_slug, realm_name, blizzard_id, class_id, active_spec_id,
                level, item_level, guild_rank_id, achievement_points, last_login_at, profile_json,
                CASE WHEN fetched THEN now() END, fetched, input_hash
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int4[], $6::int4[],
                     $7::int4[], $8::int4[], $9::int4[], $10::int4[], $11::timestamptz[],
                     $12::jsonb[], $13::bool[], $14::int8[])
             AS t (character_name, realm_slug, realm_name, blizzard_id, class_id, active_spec_id,
                   level, item_level, guild_rank_id, achievement_points, last_login_at,
                   profile_json, fetched, input_hash)
         RETURNING id, character_name, realm_slug, guild_rank_id
         ), events AS (
             INSERT INTO guild_identity.member_events
                 (event_type, character_id, after, run_id, actor)
             SELECT 'joined_guild', i.id,
                    jsonb_build_object('name', i.character_name, 'realm', i.realm_slug,
                                       'rank', gr.name, 'rank_index', gr.ingame_rank_index),
                    $16::int8, $15::text
             FROM inserted i LEFT JOIN common.guild_ranks gr ON gr.id = i.guild_rank_id
             WHERE NOT $17::bool
         )
         SELECT count(*) FROM inserted",
        args,
    )
    .fetch_one(db)
    .await
    .context("cannot insert the new characters")?;
    Ok(inserted as u64)
}

/// Mark in-guild rows departed (`removed_at = now()`), with a `left_guild` event for each in the
/// same statement; already departed rows keep their date and get no event.
pub async fn mark_removed(
    db: impl PgExecutor<'_>,
    ids: &[i32],
    source: EventSource,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let removed: i64 = sqlx::query_scalar(
        // A departing row keeps its last successful fetch: the derived value is fixed first.
        "WITH removed AS (
             UPDATE guild_identity.wow_characters wc
             SET removed_at = now(), last_api_sync = ws.last_api_sync
             FROM guild_identity.wow_characters_synced ws
             WHERE ws.id = wc.id AND wc.id = ANY($1) AND wc.removed_at IS NULL
             RETURNING wc.id, wc.character_name, wc.realm_slug, wc.guild_rank_id
         ), events AS (
             INSERT INTO guild_identity.member_events
                 (event_type, character_id, player_id, before, run_id, actor)
             SELECT 'left_guild', r.id, pc.player_id,
                    jsonb_build_object('name', r.character_name, 'realm', r.realm_slug,
                                       'rank', gr.name, 'rank_index', gr.ingame_rank_index),
                    $3::int8, $2::text
             FROM removed r
             LEFT JOIN guild_identity.player_characters pc ON pc.character_id = r.id
             LEFT JOIN common.guild_ranks gr ON gr.id = r.guild_rank_id
         )
         SELECT count(*) FROM removed",
    )
    .bind(ids)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .fetch_one(db)
    .await
    .context("cannot mark departed characters")?;
    Ok(removed as u64)
}

/// Record `now()` as the last applied roster (after the rows are written: their writes read the
/// previous one to fix derived values).
pub async fn record_roster_sync(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO guild_identity.battle_net_full_sync (singleton, synced_at) VALUES (TRUE, now())
         ON CONFLICT (singleton) DO UPDATE SET synced_at = EXCLUDED.synced_at",
    )
    .execute(db)
    .await
    .context("cannot record the roster sync")?;
    Ok(())
}

/// Every character row, in the guild or not.
pub async fn count_all(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM guild_identity.wow_characters")
            .fetch_one(db)
            .await?,
    )
}
