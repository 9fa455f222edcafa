//! `guild_identity.member_events`: the guild's memory (issue 19) — what changed, when, for
//! whom, seen by which run and done by whom.
//!
//! This module owns the event vocabulary ([`EventType`], [`Actor`]), the reads (the paged feed,
//! a player's history, the week's summary and the digest) and retention. It does **not** own
//! the writes of sync events: those are part of the statements that make the changes (data-
//! modifying CTEs in `db/characters.rs`, `db/discord_users.rs`, `db/players.rs`, `db/api.rs`),
//! so an event exists exactly when its change committed. The one shared piece of writing SQL is
//! [`link_events_sql`], which every link writer (engine, officer, claim) appends to its own
//! statement.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::sync_log::{BATTLE_NET_SOURCE, DISCORD_SOURCE};
use super::{Text, decodes_text};

/// Who made a change, as stored in `member_events.actor`. `Serialize` (as that text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A scheduled or manual sync, or the identity engine.
    Engine,
    /// An officer in the console or the API.
    Officer,
    /// A member claiming their own characters.
    Claim,
    /// A real-time Discord gateway event.
    Gateway,
}

impl Actor {
    pub const ALL: [Actor; 4] = [Actor::Engine, Actor::Officer, Actor::Claim, Actor::Gateway];

    pub const fn as_str(self) -> &'static str {
        match self {
            Actor::Engine => "engine",
            Actor::Officer => "officer",
            Actor::Claim => "claim",
            Actor::Gateway => "gateway",
        }
    }

    pub fn parse(text: &str) -> Option<Actor> {
        Actor::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

decodes_text!(Actor, "member_events.actor", Actor::parse);

/// Who wrote a batch of changes, and the `sync_log` run that observed them (if any): bound into
/// the writing statements as two parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSource {
    pub actor: Actor,
    pub run_id: Option<i64>,
}

impl EventSource {
    /// A recorded sync run.
    pub fn run(run_id: i64) -> EventSource {
        EventSource {
            actor: Actor::Engine,
            run_id: Some(run_id),
        }
    }

    /// A write outside any recorded run (benchmarks and tests applying a stage directly).
    pub fn unrecorded() -> EventSource {
        EventSource {
            actor: Actor::Engine,
            run_id: None,
        }
    }

    /// A real-time gateway event.
    pub fn gateway() -> EventSource {
        EventSource {
            actor: Actor::Gateway,
            run_id: None,
        }
    }

    /// An officer's edit.
    pub fn officer() -> EventSource {
        EventSource {
            actor: Actor::Officer,
            run_id: None,
        }
    }
}

/// The kinds of event, as stored in `member_events.event_type`. `Serialize` (as that text):
/// the unit test below holds the two spellings together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
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

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

decodes_text!(EventType, "member_events.event_type", EventType::parse);

/// The `INSERT INTO member_events` of link changes, to append to a statement's `WITH` list:
/// `changes` names an earlier CTE with columns `(event_type, player_id, character_id, before,
/// after)`; `actor` and `run` are the numbers of the positional parameters holding the actor
/// text and the run id (`int8`, may be NULL). The one place the link events' shape is spelled,
/// for the engine's batch links, officers' links and unlinks, and claims. A macro (not a
/// function) because sqlx takes only `'static` SQL text, so the statement is built by
/// `concat!` at compile time.
macro_rules! link_events_sql {
    ($changes:literal, $actor:literal, $run:literal) => {
        concat!(
            "link_events AS (
             INSERT INTO guild_identity.member_events
                 (event_type, player_id, character_id, discord_user_id, before, after, run_id, actor)
             SELECT c.event_type, c.player_id, c.character_id, p.discord_user_id,
                    c.before, c.after || jsonb_build_object('character', wc.character_name,
                                                           'realm', wc.realm_slug),
                    $", $run, "::int8, $", $actor, "::text
             FROM ", $changes, " c
             LEFT JOIN guild_identity.wow_characters wc ON wc.id = c.character_id
             LEFT JOIN guild_identity.players p ON p.id = c.player_id
         )"
        )
    };
}
pub(crate) use link_events_sql;

/// `changes` (an `unlinked` event per row of the CTE `$removed`, which returns the deleted
/// links' `player_id, character_id, link_source, confidence`) and [`link_events_sql!`] over it:
/// the one shape every unlink statement writes its events with.
macro_rules! unlinked_events_sql {
    ($removed:literal, $actor:literal, $run:literal) => {
        concat!(
            "changes AS (
             SELECT 'unlinked' AS event_type, player_id, character_id,
                    jsonb_build_object('link_source', link_source, 'confidence', confidence)
                        AS before,
                    '{}'::jsonb AS after
             FROM ",
            $removed,
            "
         ), ",
            $crate::db::member_events::link_events_sql!("changes", $actor, $run)
        )
    };
}
pub(crate) use unlinked_events_sql;

/// One event as the API and the console show it, with the names involved (as they are now).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    pub discord_name: Option<String>,
    pub player_id: Option<i32>,
    pub player_name: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl EventRow {
    /// For a `rank_changed` event: `Some(true)` for a promotion (a lower in-game rank index is
    /// the more senior rank), `Some(false)` for a demotion, `None` when unknown.
    pub fn promotion(&self) -> Option<bool> {
        let index = |doc: &Option<serde_json::Value>| doc.as_ref()?.get("rank_index")?.as_i64();
        match (index(&self.before), index(&self.after)) {
            (Some(b), Some(a)) if a != b => Some(a < b),
            _ => None,
        }
    }

    /// One readable sentence for the console's timeline and the digest, from the names the
    /// event recorded (falling back to today's names). Plain text: callers escape it for their
    /// medium (askama escapes HTML; the digest escapes Discord markdown).
    pub fn describe(&self) -> String {
        let field = |doc: &Option<serde_json::Value>, key: &str| -> Option<String> {
            doc.as_ref()?.get(key)?.as_str().map(str::to_owned)
        };
        let character = field(&self.after, "name")
            .or_else(|| field(&self.before, "name"))
            .or_else(|| field(&self.after, "character"))
            .or_else(|| self.character_name.clone())
            .unwrap_or_else(|| "a character".into());
        let discord = field(&self.after, "display_name")
            .or_else(|| field(&self.before, "display_name"))
            .or_else(|| self.discord_name.clone())
            .unwrap_or_else(|| "a Discord member".into());
        let player = self
            .player_name
            .clone()
            .unwrap_or_else(|| "a player".into());
        let rank = |doc: &Option<serde_json::Value>| {
            field(doc, "rank").unwrap_or_else(|| "no known rank".into())
        };
        let roles = |doc: &Option<serde_json::Value>| {
            let list: Vec<String> = doc
                .as_ref()
                .and_then(|d| d.get("roles"))
                .and_then(serde_json::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        };
        match self.event_type {
            EventType::JoinedGuild => {
                format!("{character} joined the guild as {}", rank(&self.after))
            }
            EventType::LeftGuild => format!("{character} left the guild"),
            EventType::Returned => format!("{character} returned to the guild"),
            EventType::Renamed => format!(
                "{} renamed to {}",
                field(&self.before, "name").unwrap_or_default(),
                field(&self.after, "name").unwrap_or_default()
            ),
            EventType::Transferred => format!(
                "{}-{} transferred to {}-{}",
                field(&self.before, "name").unwrap_or_default(),
                field(&self.before, "realm").unwrap_or_default(),
                field(&self.after, "name").unwrap_or_default(),
                field(&self.after, "realm").unwrap_or_default()
            ),
            EventType::RankChanged => {
                let verb = match self.promotion() {
                    Some(true) => "promoted",
                    Some(false) => "demoted",
                    None => "moved",
                };
                format!(
                    "{} {verb} from {} to {}",
                    self.character_name.clone().unwrap_or(character),
                    rank(&self.before),
                    rank(&self.after)
                )
            }
            EventType::DiscordJoined => format!("{discord} joined the Discord server"),
            EventType::DiscordLeft => format!("{discord} left the Discord server"),
            EventType::DiscordRenamed => format!(
                "{} is now {} on Discord",
                field(&self.before, "display_name").unwrap_or_default(),
                field(&self.after, "display_name").unwrap_or_default()
            ),
            EventType::DiscordRolesChanged => format!(
                "{discord}'s guild roles: {} → {}",
                roles(&self.before),
                roles(&self.after)
            ),
            EventType::Linked => format!("{character} linked to {player}"),
            EventType::Unlinked => format!("{character} unlinked from {player}"),
            EventType::LinkMoved => format!("{character} moved to {player}"),
        }
    }
}

/// An event as the console lists it: when, what kind, who did it, and the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    pub at: DateTime<Utc>,
    pub kind: EventType,
    pub actor: Actor,
    pub text: String,
}

impl From<&EventRow> for EventLine {
    fn from(e: &EventRow) -> EventLine {
        EventLine {
            at: e.occurred_at,
            kind: e.event_type,
            actor: e.actor,
            text: e.describe(),
        }
    }
}

/// The names every event read joins, around `$page`: a query selecting the events themselves
/// (`member_events` rows, already filtered, ordered and limited), so the joins run for the
/// rows answered only — never for the rows an `OFFSET` skips. `$order` orders the answer.
macro_rules! named_events {
    ($page:expr, $order:literal) => {
        concat!(
            "SELECT e.id, e.event_type, e.occurred_at, e.actor, e.run_id,
                    e.character_id, wc.character_name, wc.realm_slug,
                    e.discord_user_id, COALESCE(NULLIF(du.display_name, ''), du.username) AS discord_name,
                    e.player_id, p.display_name AS player_name, e.before, e.after
             FROM (",
            $page,
            ") e
             LEFT JOIN guild_identity.wow_characters wc ON wc.id = e.character_id
             LEFT JOIN guild_identity.discord_users du ON du.id = e.discord_user_id
             LEFT JOIN guild_identity.players p ON p.id = e.player_id
             ORDER BY ",
            $order
        )
    };
}

/// A filter on the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub since: Option<DateTime<Utc>>,
    pub event_type: Option<EventType>,
    pub player_id: Option<i32>,
}

/// Where a page of the feed starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// After skipping this many events (`page=`): PostgreSQL still reads every skipped event,
    /// so a deep page costs its depth (84 ms at 75,000 events).
    Offset(i64),
    /// Just after the event with this id in the feed's order, i.e. older (`before=`, the
    /// `next_before` cursor): a range of the time index, as cheap deep in a year of history
    /// as on the first page. An id that no longer exists gives an empty page.
    Before(i64),
}

/// The feed's filters, with the player condition `$player`, in front of the paging clause
/// `$start`, as one static statement (sqlx takes only `'static` SQL). A cached generic plan
/// cannot use a condition written `$n IS NULL OR …` as an index bound, so the two selective
/// parts get statements of their own: the keyset (offset and keyset pages) and the player
/// (`player_id = $3`, by the player index, instead of reading the time index down to find a
/// player's 1 event in 300).
macro_rules! feed_sql {
    ($player:literal, $start:expr) => {
        named_events!(
            concat!(
                "SELECT * FROM guild_identity.member_events
                 WHERE ($1::timestamptz IS NULL OR occurred_at >= $1)
                   AND ($2::text IS NULL OR event_type = $2)
                   AND ",
                $player,
                $start
            ),
            "e.occurred_at DESC, e.id DESC"
        )
    };
}

/// The keyset condition "older than event `$n`" in the feed's order `(occurred_at, id)`; the
/// event's time is read by its primary key. `$n` must be an `int8` parameter.
macro_rules! older_than_event {
    ($n:literal) => {
        concat!(
            "(occurred_at, id) < ((SELECT occurred_at FROM guild_identity.member_events
                                   WHERE id = $",
            $n,
            "::int8), $",
            $n,
            "::int8)"
        )
    };
}

/// The feed's page by offset `$5`.
macro_rules! offset_page {
    () => {
        "
                 ORDER BY occurred_at DESC, id DESC
                 LIMIT $4 + 1 OFFSET $5::int8"
    };
}

/// The feed's page after the event `$5`.
macro_rules! keyset_page {
    () => {
        concat!(
            "
                   AND ",
            older_than_event!(5),
            "
                 ORDER BY occurred_at DESC, id DESC
                 LIMIT $4 + 1"
        )
    };
}

/// One page of the feed, newest first (`limit` events from `start`), and whether more follow.
/// No total count: counting 100,000 events on every page cost more than the page.
pub async fn feed(
    db: impl PgExecutor<'_>,
    filter: &EventFilter,
    limit: i64,
    start: FeedStart,
) -> Result<(Vec<EventRow>, bool)> {
    let (sql, at) = match (start, filter.player_id) {
        (FeedStart::Offset(offset), None) => (
            feed_sql!("($3::int4 IS NULL OR player_id = $3)", offset_page!()),
            offset,
        ),
        (FeedStart::Offset(offset), Some(_)) => {
            (feed_sql!("player_id = $3::int4", offset_page!()), offset)
        }
        (FeedStart::Before(id), None) => (
            feed_sql!("($3::int4 IS NULL OR player_id = $3)", keyset_page!()),
            id,
        ),
        (FeedStart::Before(id), Some(_)) => (feed_sql!("player_id = $3::int4", keyset_page!()), id),
    };
    let events: Vec<EventRow> = sqlx::query_as(sql)
        .bind(filter.since)
        .bind(filter.event_type.map(EventType::as_str))
        .bind(filter.player_id)
        .bind(limit)
        .bind(at)
        .fetch_all(db)
        .await
        .context("cannot read the event feed")?;
    Ok(one_more(events, limit))
}

/// A page read with `LIMIT limit + 1`: the first `limit` rows, and whether there was another.
fn one_more(mut events: Vec<EventRow>, limit: i64) -> (Vec<EventRow>, bool) {
    let more = events.len() as i64 > limit;
    events.truncate(usize::try_from(limit).unwrap_or(0));
    (events, more)
}

/// A player's history, newest first (`limit` events, older than the event `before` when
/// given), and whether more follow: events naming the player, events of their characters and
/// Discord account recorded before they were linked (those carry no player id), and the
/// claims that moved a character away from them (`link_moved` names the old player in
/// `before`; a partial index finds those).
pub async fn player_history(
    db: impl PgExecutor<'_>,
    player_id: i32,
    limit: i64,
    before: Option<i64>,
) -> Result<(Vec<EventRow>, bool)> {
    // One statement for both pages: a player's events are a few hundred rows found by index,
    // so the keyset is a filter on those, not an index bound that a generic plan could lose.
    let events = sqlx::query_as(named_events!(
        concat!(
            "SELECT * FROM guild_identity.member_events
         WHERE id IN (
             SELECT id FROM guild_identity.member_events WHERE player_id = $1
             UNION
             SELECT me.id FROM guild_identity.member_events me
             JOIN guild_identity.player_characters pc ON pc.character_id = me.character_id
             -- Spelled out to match the partial index (migration 1530).
             WHERE pc.player_id = $1 AND me.player_id IS NULL AND me.character_id IS NOT NULL
             UNION
             SELECT me.id FROM guild_identity.member_events me
             JOIN guild_identity.players pl ON pl.discord_user_id = me.discord_user_id
             WHERE pl.id = $1 AND me.player_id IS NULL AND me.discord_user_id IS NOT NULL
             UNION
             SELECT id FROM guild_identity.member_events
             WHERE event_type = 'link_moved' AND (before ->> 'player_id')::int4 = $1)
           AND ($3::int8 IS NULL OR ",
            older_than_event!(3),
            ")
         ORDER BY occurred_at DESC, id DESC
         LIMIT $2 + 1"
        ),
        "e.occurred_at DESC, e.id DESC"
    ))
    .bind(player_id)
    .bind(limit)
    .bind(before)
    .fetch_all(db)
    .await
    .context("cannot read the player's history")?;
    Ok(one_more(events, limit))
}

/// How many events of each type happened since `since` (the overview's "this week" panel).
pub async fn counts_since(
    db: impl PgExecutor<'_>,
    since: DateTime<Utc>,
) -> Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT event_type, count(*) FROM guild_identity.member_events
         WHERE occurred_at >= $1 GROUP BY event_type ORDER BY count(*) DESC, event_type",
    )
    .bind(since)
    .fetch_all(db)
    .await
    .context("cannot count this week's events")
}

/// The digest's events since `since`: joins, leaves, rank changes and renames, oldest first,
/// at most `limit` of them.
pub async fn digest_events(
    db: impl PgExecutor<'_>,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<EventRow>> {
    sqlx::query_as(named_events!(
        "SELECT * FROM guild_identity.member_events
         WHERE occurred_at >= $1
           AND event_type IN ('joined_guild', 'left_guild', 'rank_changed', 'renamed')
         ORDER BY occurred_at, id
         LIMIT $2",
        "e.occurred_at, e.id"
    ))
    .bind(since)
    .bind(limit)
    .fetch_all(db)
    .await
    .context("cannot read the digest's events")
}

/// The newest event's id (0 without events): the mark [`after_id`] reads on from.
pub async fn latest_id(db: impl PgExecutor<'_>) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(max(id), 0)::int8 FROM guild_identity.member_events")
        .fetch_one(db)
        .await
        .context("cannot read the newest event's id")
}

/// Events recorded after the event `after` (an id from [`latest_id`]), oldest first, at most
/// `limit`: what one run changed (the demo's later snapshot prints them).
pub async fn after_id(db: impl PgExecutor<'_>, after: i64, limit: i64) -> Result<Vec<EventRow>> {
    sqlx::query_as(named_events!(
        "SELECT * FROM guild_identity.member_events WHERE id > $1 ORDER BY id LIMIT $2",
        "e.id"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
    .context("cannot read the latest events")
}

/// Delete events older than `days` days; returns how many.
pub async fn purge_older_than(db: impl PgExecutor<'_>, days: i32) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM guild_identity.member_events
         WHERE occurred_at < now() - make_interval(days => $1)",
    )
    .bind(days)
    .execute(db)
    .await
    .context("cannot purge old events")?;
    Ok(done.rows_affected())
}

/// Whether the event `id` exists (a paging cursor that retention may have deleted).
pub async fn event_exists(db: impl PgExecutor<'_>, id: i64) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM guild_identity.member_events WHERE id = $1)")
        .bind(id)
        .fetch_one(db)
        .await
        .context("cannot look the event up")
}

/// Whether a player exists (the history route answers 404 otherwise).
pub async fn player_exists(db: impl PgExecutor<'_>, player_id: i32) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM guild_identity.players WHERE id = $1)")
        .bind(player_id)
        .fetch_one(db)
        .await
        .context("cannot look the player up")
}

/// A source whose first complete sync is its history's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The Battle.net roster (`joined_guild`).
    Roster,
    /// The Discord member list (`discord_joined`).
    Discord,
}

/// Whether `source`'s history has started: a complete sync of it has committed before. Until
/// then a sync records what it finds as the guild as it is (a baseline), not as joins (issue 19).
///
/// Judged by the marker row every complete sync writes in its own transaction
/// (`battle_net_full_sync`, `discord_full_sync`), not by an empty table: a gateway join before
/// the first full Discord sync inserts a member (so the table is not empty) without the guild's
/// list having been read, and a roster that emptied the guild is not a first sync. A successful
/// `sync_log` run of the source also counts, for installations that synced before the marker
/// tables existed (migrations 1101, 1420). Read it in the sync's transaction, before its marker.
pub async fn history_started(db: impl PgExecutor<'_>, source: Baseline) -> Result<bool> {
    let (sql, run_source) = match source {
        Baseline::Roster => (
            concat!("SELECT ", history_started_sql!("battle_net_full_sync", 1)),
            BATTLE_NET_SOURCE,
        ),
        Baseline::Discord => (
            concat!("SELECT ", history_started_sql!("discord_full_sync", 1)),
            DISCORD_SOURCE,
        ),
    };
    sqlx::query_scalar(sql)
        .bind(run_source)
        .fetch_one(db)
        .await
        .context("cannot read whether the history has started")
}

/// [`history_started`] as an SQL expression: the marker table `$marker` exists with its row, or
/// the `sync_log` source bound as parameter `$source` has a successful run. A statement that
/// records joins evaluates it inline (two `EXISTS` probes, once per statement, not per row),
/// rather than paying a round trip of its own before it.
macro_rules! history_started_sql {
    ($marker:literal, $source:literal) => {
        concat!(
            "(EXISTS (SELECT 1 FROM guild_identity.",
            $marker,
            ") OR EXISTS (SELECT 1 FROM guild_identity.sync_log
                          WHERE source = $",
            $source,
            " AND status IN ('success', 'partial')))"
        )
    };
}
pub(crate) use history_started_sql;

/// When recorded history begins: the first successful roster or Discord sync. That sync records
/// what it finds as a baseline, not as joins (issue 19), so no event is older. `None` before any.
pub async fn history_start(db: impl PgExecutor<'_>) -> Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT min(started_at) FROM guild_identity.sync_log
         WHERE source IN ($1, $2) AND status IN ('success', 'partial')",
    )
    .bind(BATTLE_NET_SOURCE)
    .bind(DISCORD_SOURCE)
    .fetch_one(db)
    .await
    .context("cannot read when the history starts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_reads_back_as_itself() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert_eq!(EventType::parse("promoted"), None);
        for a in Actor::ALL {
            assert_eq!(Actor::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }

    /// The columns have CHECK constraints today, but a value written by a newer version (or a
    /// constraint relaxed by hand) must stop the read with the column and the value named,
    /// not turn into a string nobody matches.
    #[test]
    fn an_unknown_stored_event_type_or_actor_is_a_decode_error_naming_the_column() {
        let err = EventType::try_from(Text("promoted".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown member_events.event_type \"promoted\" in the database"
        );
        let err = Actor::try_from(Text("robot".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown member_events.actor \"robot\" in the database"
        );
        assert_eq!(
            EventType::try_from(Text("rank_changed".into())),
            Ok(EventType::RankChanged)
        );
    }
}
