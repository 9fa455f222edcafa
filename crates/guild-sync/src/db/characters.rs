//! `guild_identity.wow_characters`: the set-based statements db_sync applies a roster plan with.
//! Every statement takes whole columns as arrays (`UNNEST`), so a 1,000-member roster is a handful
//! of statements, not a query per character. The plan itself is decided in
//! `guild_sync_core::roster`; nothing here decides who is new, gone or renamed.

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use guild_sync_core::roster::{ExistingCharacter, MemberColumns};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgExecutor};

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
    pub fn push(&mut self, c: MemberColumns, profile_json: Option<serde_json::Value>) {
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

    /// The 13 column arrays as query arguments, in the order both batch statements take them
    /// (`character_name` … `fetched`), after `id` when `with_id`.
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
            args.add(&self.profile_fetched)
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
}

/// Every stored character (in the guild or departed), as the roster plan needs them.
pub async fn existing(db: impl PgExecutor<'_>) -> Result<Vec<ExistingCharacter>> {
    let rows: Vec<ExistingRow> = sqlx::query_as(
        "SELECT id, blizzard_id, character_name, realm_slug, removed_at IS NOT NULL AS departed
         FROM guild_identity.wow_characters",
    )
    .fetch_all(db)
    .await
    .context("cannot load the stored characters")?;
    Ok(rows
        .into_iter()
        .map(|r| ExistingCharacter {
            id: r.id,
            blizzard_id: r.blizzard_id,
            name: r.character_name,
            realm_slug: r.realm_slug,
            departed: r.departed,
        })
        .collect())
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

/// Update the rows in `c.id` in place and clear `removed_at`. Unknown classes and missing
/// levels keep the stored value (a character never changes class); profile-derived columns are
/// replaced only where the profile was fetched. Returns how many rows actually changed
/// (`last_api_sync` alone does not count): a second identical sync reports 0.
pub async fn update_batch(db: impl PgExecutor<'_>, c: &CharacterColumns) -> Result<u64> {
    if c.is_empty() {
        return Ok(0);
    }
    let changed: Vec<bool> = sqlx::query_scalar_with(
        "WITH input AS (
             SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[], $5::int8[],
                                  $6::int4[], $7::int4[], $8::int4[], $9::int4[], $10::int4[],
                                  $11::int4[], $12::timestamptz[], $13::jsonb[], $14::bool[])
                 AS t (id, character_name, realm_slug, realm_name, blizzard_id, class_id,
                       active_spec_id, level, item_level, guild_rank_id, achievement_points,
                       last_login_at, profile_json, fetched)
         ), next AS (
             SELECT wc.id, i.fetched,
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
             FROM input i JOIN guild_identity.wow_characters wc ON wc.id = i.id
         ), diff AS (
             SELECT n.*,
                    ROW(n.character_name, n.realm_slug, n.realm_name, n.blizzard_id, n.class_id,
                        n.active_spec_id, n.level, n.item_level, n.guild_rank_id,
                        n.achievement_points, n.last_login_at, n.profile_json, NULL::timestamptz)
                        IS DISTINCT FROM n.old AS changed
             FROM next n
         )
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
             last_api_sync = CASE WHEN d.fetched THEN now() ELSE wc.last_api_sync END,
             removed_at = NULL
         FROM diff d
         WHERE wc.id = d.id AND (d.changed OR d.fetched)
         RETURNING d.changed",
        c.arguments(true)?,
    )
    .fetch_all(db)
    .await
    .context("cannot update the stored characters")?;
    Ok(changed.into_iter().filter(|&c| c).count() as u64)
}

/// Insert new characters (`c.id` is ignored). Returns how many were inserted.
pub async fn insert_batch(db: impl PgExecutor<'_>, c: &CharacterColumns) -> Result<u64> {
    if c.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query_with(
        "INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, realm_name, blizzard_id, class_id, active_spec_id, level,
              item_level, guild_rank_id, achievement_points, last_login_at, profile_json,
              last_api_sync)
         SELECT character_name, realm_slug, realm_name, blizzard_id, class_id, active_spec_id,
                level, item_level, guild_rank_id, achievement_points, last_login_at, profile_json,
                CASE WHEN fetched THEN now() END
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int4[], $6::int4[],
                     $7::int4[], $8::int4[], $9::int4[], $10::int4[], $11::timestamptz[],
                     $12::jsonb[], $13::bool[])
             AS t (character_name, realm_slug, realm_name, blizzard_id, class_id, active_spec_id,
                   level, item_level, guild_rank_id, achievement_points, last_login_at,
                   profile_json, fetched)",
        c.arguments(false)?,
    )
    .execute(db)
    .await
    .context("cannot insert the new characters")?;
    Ok(done.rows_affected())
}

/// Mark in-guild rows departed (`removed_at = now()`); already departed rows keep their date.
pub async fn mark_removed(db: impl PgExecutor<'_>, ids: &[i32]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE guild_identity.wow_characters SET removed_at = now()
         WHERE id = ANY($1) AND removed_at IS NULL",
    )
    .bind(ids)
    .execute(db)
    .await
    .context("cannot mark departed characters")?;
    Ok(done.rows_affected())
}

/// Every character row, in the guild or not.
pub async fn count_all(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM guild_identity.wow_characters")
            .fetch_one(db)
            .await?,
    )
}
