//! `guild_identity.member_events`: the guild's memory (issue 19) — reading it, tagging a
//! transaction with who changes what, the renames db_sync records, and the retention purge.
//!
//! Most events are written by statement-level triggers (migration 1200) from the changing
//! statement's transition tables: set-based, in the same statement and transaction as the
//! change, and only when a value really changed. A writer says who it is with [`tag`] inside
//! its transaction; untagged changes are the engine's.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use super::Text;

/// Who caused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A sync or the identity engine.
    Engine,
    /// An officer through the API.
    Officer,
    /// A player claiming their own character.
    Claim,
    /// A real-time Discord gateway event.
    Gateway,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Engine => "engine",
            Actor::Officer => "officer",
            Actor::Claim => "claim",
            Actor::Gateway => "gateway",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Actor::Engine, Actor::Officer, Actor::Claim, Actor::Gateway]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// What happened (`member_events.event_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    JoinedGuild,
    LeftGuild,
    Returned,
    Renamed,
    Transferred,
    RankChanged,
    DiscordJoined,
    DiscordLeft,
    DiscordRenamed,
    DiscordRolesChanged,
    Linked,
    Unlinked,
    LinkMoved,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::JoinedGuild,
        EventType::LeftGuild,
        EventType::Returned,
        EventType::Renamed,
        EventType::Transferred,
        EventType::RankChanged,
        EventType::DiscordJoined,
        EventType::DiscordLeft,
        EventType::DiscordRenamed,
        EventType::DiscordRolesChanged,
        EventType::Linked,
        EventType::Unlinked,
        EventType::LinkMoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JoinedGuild => "joined_guild",
            EventType::LeftGuild => "left_guild",
            EventType::Returned => "returned",
            EventType::Renamed => "renamed",
            EventType::Transferred => "transferred",
            EventType::RankChanged => "rank_changed",
            EventType::DiscordJoined => "discord_joined",
            EventType::DiscordLeft => "discord_left",
            EventType::DiscordRenamed => "discord_renamed",
            EventType::DiscordRolesChanged => "discord_roles_changed",
            EventType::Linked => "linked",
            EventType::Unlinked => "unlinked",
            EventType::LinkMoved => "link_moved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl TryFrom<Text> for EventType {
    type Error = super::UnknownValue;
    fn try_from(t: Text) -> Result<Self, Self::Error> {
        t.decode("member_events.event_type", EventType::parse)
    }
}

impl TryFrom<Text> for Actor {
    type Error = super::UnknownValue;
    fn try_from(t: Text) -> Result<Self, Self::Error> {
        t.decode("member_events.actor", Actor::parse)
    }
}

/// Say, for the rest of the current transaction, who makes the changes and which run observed
/// them. Must run inside the writer's transaction (the settings are transaction-local).
pub async fn tag(db: impl PgExecutor<'_>, actor: Actor, run_id: Option<i64>) -> Result<()> {
    sqlx::query(
        "SELECT set_config('guild_sync.actor', $1, true),
                set_config('guild_sync.run_id', COALESCE($2::bigint::text, ''), true)",
    )
    .bind(actor.as_str())
    .bind(run_id)
    .execute(db)
    .await
    .context("cannot tag the transaction for member events")?;
    Ok(())
}

/// Record renames and realm transfers of the rows `ids` (already updated in this transaction),
/// given their names and realms before: one statement. A row whose name and realm did not
/// change writes nothing; a realm change is a transfer, otherwise it is a rename.
pub async fn record_renames(
    db: impl PgExecutor<'_>,
    ids: &[i32],
    old_names: &[&str],
    old_realms: &[&str],
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "INSERT INTO guild_identity.member_events
             (event_type, character_id, player_id, before, after, run_id, actor)
         SELECT CASE WHEN lower(o.realm) <> lower(wc.realm_slug) THEN 'transferred'
                     ELSE 'renamed' END,
                wc.id, pc.player_id,
                jsonb_build_object('name', o.name, 'realm', o.realm),
                jsonb_build_object('name', wc.character_name, 'realm', wc.realm_slug),
                guild_identity.event_run(), guild_identity.event_actor()
         FROM UNNEST($1::int4[], $2::text[], $3::text[]) AS o (id, name, realm)
         JOIN guild_identity.wow_characters wc ON wc.id = o.id
         LEFT JOIN guild_identity.player_characters pc ON pc.character_id = wc.id
         WHERE (o.name, lower(o.realm)) IS DISTINCT FROM (wc.character_name, lower(wc.realm_slug))",
    )
    .bind(ids)
    .bind(old_names)
    .bind(old_realms)
    .execute(db)
    .await
    .context("cannot record renamed characters")?;
    Ok(done.rows_affected())
}

/// The most events one page of the feed returns.
pub const MAX_PER_PAGE: i64 = 500;

/// Which events to read: all of them newest first, narrowed by any filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub since: Option<DateTime<Utc>>,
    pub event_type: Option<EventType>,
    /// The player's events: those naming the player, and those of their characters and Discord
    /// account from before they were linked.
    pub player_id: Option<i32>,
    /// From 1.
    pub page: i64,
    /// 1 ..= [`MAX_PER_PAGE`].
    pub per_page: i64,
}

/// One event with the names involved (as they are now; `before`/`after` keep the names of then).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    pub id: i64,
    #[sqlx(try_from = "Text")]
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    #[sqlx(try_from = "Text")]
    pub actor: Actor,
    pub run_id: Option<i64>,
    pub character_id: Option<i32>,
    pub character_name: Option<String>,
    pub realm_slug: Option<String>,
    pub discord_user_id: Option<i32>,
    pub discord_username: Option<String>,
    pub discord_display_name: Option<String>,
    pub player_id: Option<i32>,
    pub player_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// A page of events, newest first; `has_more` when a further page exists.
pub async fn list(db: impl PgExecutor<'_>, f: &EventFilter) -> Result<(Vec<EventRow>, bool)> {
    let per_page = f.per_page.clamp(1, MAX_PER_PAGE);
    let offset = (f.page.max(1) - 1).saturating_mul(per_page);
    // The player filter is a UNION of index lookups (by player, by their characters, by their
    // Discord account) rather than an OR, so a year of history stays an index read.
    let mut rows: Vec<EventRow> = sqlx::query_as(
        "WITH mine AS (
             SELECT e.id FROM guild_identity.member_events e WHERE e.player_id = $3
             UNION
             SELECT e.id FROM guild_identity.player_characters pc
             JOIN guild_identity.member_events e ON e.character_id = pc.character_id
             WHERE pc.player_id = $3
             UNION
             SELECT e.id FROM guild_identity.players p
             JOIN guild_identity.member_events e ON e.discord_user_id = p.discord_user_id
             WHERE p.id = $3
         )
         SELECT e.id, e.event_type, e.occurred_at, e.actor, e.run_id,
                e.character_id, wc.character_name, wc.realm_slug,
                COALESCE(e.discord_user_id, p.discord_user_id) AS discord_user_id,
                du.username AS discord_username, du.display_name AS discord_display_name,
                COALESCE(e.player_id, pc.player_id) AS player_id, p.display_name AS player_name,
                e.before, e.after
         FROM guild_identity.member_events e
         LEFT JOIN guild_identity.wow_characters wc ON wc.id = e.character_id
         LEFT JOIN guild_identity.player_characters pc ON pc.character_id = e.character_id
         LEFT JOIN guild_identity.players p ON p.id = COALESCE(e.player_id, pc.player_id)
         LEFT JOIN guild_identity.discord_users du
             ON du.id = COALESCE(e.discord_user_id, p.discord_user_id)
         WHERE ($1::timestamptz IS NULL OR e.occurred_at >= $1)
           AND ($2::text IS NULL OR e.event_type = $2)
           AND ($3::int4 IS NULL OR e.id IN (SELECT id FROM mine))
         ORDER BY e.occurred_at DESC, e.id DESC
         LIMIT $4 OFFSET $5",
    )
    .bind(f.since)
    .bind(f.event_type.map(EventType::as_str))
    .bind(f.player_id)
    .bind(per_page + 1)
    .bind(offset)
    .fetch_all(db)
    .await
    .context("cannot read the member events")?;
    let has_more = rows.len() as i64 > per_page;
    rows.truncate(per_page as usize);
    Ok((rows, has_more))
}

/// Whether player `id` exists.
pub async fn player_exists(db: impl PgExecutor<'_>, id: i32) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM guild_identity.players WHERE id = $1)")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

/// Delete events older than `days` days; returns how many.
pub async fn purge_older_than(db: impl PgExecutor<'_>, days: u32) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM guild_identity.member_events
         WHERE occurred_at < now() - make_interval(days => $1)",
    )
    .bind(days as i32)
    .execute(db)
    .await
    .context("cannot purge old member events")?;
    Ok(done.rows_affected())
}

/// How many events are stored.
pub async fn count(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM guild_identity.member_events")
            .fetch_one(db)
            .await?,
    )
}

/// One roster event for the weekly digest: the character's name as the event saw it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DigestRow {
    #[sqlx(try_from = "Text")]
    pub event_type: EventType,
    pub name: String,
    pub realm_slug: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// The joins, leaves, rank changes, renames and transfers since `since`, oldest first (at most
/// 2,000: a digest is for reading, and the API has the rest).
pub async fn digest_rows(db: impl PgExecutor<'_>, since: DateTime<Utc>) -> Result<Vec<DigestRow>> {
    sqlx::query_as(
        "SELECT e.event_type,
                COALESCE(e.after->>'name', e.before->>'name', wc.character_name, '?') AS name,
                COALESCE(e.after->>'realm', e.before->>'realm', wc.realm_slug, '?') AS realm_slug,
                e.before, e.after
         FROM guild_identity.member_events e
         LEFT JOIN guild_identity.wow_characters wc ON wc.id = e.character_id
         WHERE e.occurred_at >= $1
           AND e.event_type IN ('joined_guild', 'left_guild', 'rank_changed', 'renamed',
                                'transferred')
         ORDER BY e.occurred_at, e.id
         LIMIT 2000",
    )
    .bind(since)
    .fetch_all(db)
    .await
    .context("cannot read the week's member events")
}

/// When the last weekly digest was sent (a successful `sync_log` run with source `digest`).
pub async fn last_digest(db: impl PgExecutor<'_>) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(
        "SELECT max(started_at) FROM guild_identity.sync_log
         WHERE source = 'digest' AND status = 'success'",
    )
    .fetch_one(db)
    .await?)
}

/// The newest event's id (0 when there is none): where "what changed since" starts.
pub async fn latest_id(db: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM guild_identity.member_events")
            .fetch_one(db)
            .await?,
    )
}

/// Every event after `after_id`, oldest first, with names.
pub async fn since_id(db: impl PgExecutor<'_>, after_id: i64) -> Result<Vec<EventRow>> {
    sqlx::query_as(
        "SELECT e.id, e.event_type, e.occurred_at, e.actor, e.run_id,
                e.character_id, wc.character_name, wc.realm_slug,
                e.discord_user_id, du.username AS discord_username,
                du.display_name AS discord_display_name,
                e.player_id, p.display_name AS player_name, e.before, e.after
         FROM guild_identity.member_events e
         LEFT JOIN guild_identity.wow_characters wc ON wc.id = e.character_id
         LEFT JOIN guild_identity.players p ON p.id = e.player_id
         LEFT JOIN guild_identity.discord_users du ON du.id = e.discord_user_id
         WHERE e.id > $1
         ORDER BY e.id",
    )
    .bind(after_id)
    .fetch_all(db)
    .await
    .context("cannot read the new member events")
}
