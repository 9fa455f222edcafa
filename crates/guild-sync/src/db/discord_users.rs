//! `guild_identity.discord_users`: the Discord members guild-sync knows, present or departed.
//!
//! Writes are set-based: a whole member list goes to PostgreSQL as parallel arrays (`UNNEST`),
//! whether it holds 50,000 members from a full sync or the one member of a gateway event.
//! Nothing here decides who departed or whether a list is plausible — `discord_sync` does — and
//! nothing here touches `players` (links belong to the identity engine).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor};

use super::member_events::{self, EventSource};
use super::sync_log::DISCORD_SOURCE;

/// Separates role names when a row's `all_guild_roles` travels as one text element: PostgreSQL
/// arrays of arrays must be rectangular, so per-row lists cannot be sent as `text[][]`. Discord
/// role names cannot contain control characters, so the unit separator never occurs in one.
const ROLE_SEPARATOR: char = '\u{1f}';

/// The `SET` of a departure (`du` is the `discord_users` row): not present, departed now, and
/// keeping the last sync that saw the member — the derived value is fixed into the row first
/// (the last complete sync is still the previous one). Shared by the full sync's departures and
/// the gateway's single ones.
macro_rules! departure_sql {
    () => {
        "SET is_present = FALSE, removed_at = now(), last_sync = COALESCE(
                 (SELECT fs.synced_at FROM guild_identity.discord_full_sync fs
                  WHERE du.last_sync IS NULL OR du.last_sync < fs.taken_at),
                 du.last_sync)"
    };
}

/// The `discord_left` events of a `departed` CTE (`id, username, display_name,
/// all_guild_roles`), with the actor and run id in parameters `$actor` and `$run`: shared by
/// the full sync's departures and the gateway's single ones.
macro_rules! departed_events_sql {
    ($actor:literal, $run:literal) => {
        concat!(
            "events AS (
             INSERT INTO guild_identity.member_events
                 (event_type, discord_user_id, player_id, before, run_id, actor)
             SELECT 'discord_left', d.id, pl.id,
                    jsonb_build_object('username', d.username, 'display_name', d.display_name,
                                       'roles', d.all_guild_roles),
                    $",
            $run,
            "::int8, $",
            $actor,
            "::text
             FROM departed d
             LEFT JOIN guild_identity.players pl ON pl.discord_user_id = d.id
         )"
        )
    };
}

/// One member as it should be stored: the outcome of the pure member → row conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordUserUpsert {
    /// Snowflake digits.
    pub discord_id: String,
    pub username: String,
    /// `nick`, else `global_name`, else `username`.
    pub display_name: String,
    /// The account's own global name: a display name that differs from it is a server
    /// nickname, which the identity engine trusts less.
    pub global_name: Option<String>,
    /// The most senior guild rank role the member has, spelled as on `common.guild_ranks`.
    pub highest_guild_role: Option<String>,
    /// Every guild rank role the member has, most senior first.
    pub all_guild_roles: Vec<String>,
    /// When the member joined the server; `None` keeps what is stored.
    pub joined_server_at: Option<DateTime<Utc>>,
}

impl DiscordUserUpsert {
    /// A fingerprint of every column [`upsert`] compares, stored with the row it wrote
    /// (`content_fingerprint`, migration 1505): a full sync sends only (snowflake, fingerprint)
    /// for members whose stored fingerprint matches. The first 8 bytes of a SHA-256 over
    /// length-prefixed fields, so that no two different members can be spelled alike and a
    /// chosen name cannot be made to collide with another; stable across builds, unlike `Hash`.
    pub fn fingerprint(&self) -> i64 {
        fn text(hasher: &mut Sha256, value: Option<&str>) {
            match value {
                None => hasher.update([0]),
                Some(value) => {
                    hasher.update([1]);
                    hasher.update((value.len() as u64).to_le_bytes());
                    hasher.update(value.as_bytes());
                }
            }
        }
        let mut hasher = Sha256::new();
        text(&mut hasher, Some(&self.username));
        text(&mut hasher, Some(&self.display_name));
        text(&mut hasher, self.global_name.as_deref());
        text(&mut hasher, self.highest_guild_role.as_deref());
        hasher.update((self.all_guild_roles.len() as u64).to_le_bytes());
        for role in &self.all_guild_roles {
            text(&mut hasher, Some(role));
        }
        // Microseconds: what PostgreSQL keeps of a timestamp.
        match self.joined_server_at {
            None => hasher.update([0]),
            Some(joined) => {
                hasher.update([1]);
                hasher.update(joined.timestamp_micros().to_le_bytes());
            }
        }
        let digest = hasher.finalize();
        i64::from_le_bytes(
            digest[..8]
                .try_into()
                .expect("a SHA-256 digest has 32 bytes"),
        )
    }
}

/// A `guild_identity.discord_users` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DiscordUserRow {
    pub id: i32,
    pub discord_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub highest_guild_role: Option<String>,
    pub all_guild_roles: Vec<String>,
    pub joined_server_at: Option<DateTime<Utc>>,
    pub last_sync: Option<DateTime<Utc>>,
    pub is_present: bool,
    pub removed_at: Option<DateTime<Utc>>,
    pub first_seen: DateTime<Utc>,
}

/// What an upsert did, by the state each member was in before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    /// Not known before.
    pub new: u64,
    /// Present before, and something about them changed.
    pub updated: u64,
    /// Marked departed before, present again.
    pub revived: u64,
    /// Present before and unchanged (not written; `last_sync` follows the sync).
    pub unchanged: u64,
}

/// Present members now, and those of them `listed` (every present member's snowflake) leaves
/// out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceCounts {
    pub present: u64,
    pub missing_from_list: u64,
    /// `discord_users.id` of the members the list leaves out: what [`mark_missing_departed`] marks,
    /// so the 50,000-member list is matched against the table once, not twice.
    pub missing_ids: Vec<i32>,
}

/// The database's clock: when a member list is taken, so that rows real-time events wrote
/// after that moment are not overruled by the (older) list.
pub async fn clock(db: impl PgExecutor<'_>) -> Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(db)
        .await
        .context("cannot read the database clock")
}

/// Insert or update `rows` (distinct `discord_id`s): every row ends present with `removed_at`
/// cleared and its last confirmation now — except a member marked departed at or after
/// `taken_at` (when the list was taken; `None` for a real-time event): that departure is newer
/// than the list, so the row's data is refreshed but it stays departed.
///
/// A full sync (`taken_at` set) leaves rows that are present and unchanged alone: their
/// `last_sync` is derived from the sync once [`record_full_sync`] records it (see migration
/// 1101 and [`get`]). Rows a real-time event wrote since `taken_at` are still written, so they
/// read as confirmed by this sync. Whether a present row changed is first judged by its stored
/// [`DiscordUserUpsert::fingerprint`], so only changed, new and returning members travel whole.
///
/// The same statement records (issue 19) `discord_joined` for returning members and for new
/// ones as `arrival` says, `discord_renamed` and `discord_roles_changed` for present members
/// whose names or guild roles changed, attributed to `source`.
pub async fn upsert(
    conn: &mut PgConnection,
    rows: &[DiscordUserUpsert],
    taken_at: Option<DateTime<Utc>>,
    source: EventSource,
    arrival: Arrival,
) -> Result<UpsertCounts> {
    let events = RowEvents { source, arrival };
    let fingerprints: Vec<i64> = rows.iter().map(DiscordUserUpsert::fingerprint).collect();
    let Some(taken_at) = taken_at else {
        let all: Vec<usize> = (0..rows.len()).collect();
        return write_rows(conn, rows, &fingerprints, &all, None, events).await;
    };
    // A full sync sends (snowflake, fingerprint) pairs first and the whole row only for the
    // members the statement below could write: new, departed, written since `taken_at` (or
    // never synced), or with another fingerprint. The rest are present and unchanged, which
    // the statement would only have compared and counted (issue 21: 7 arrays × 50,000 per sync).
    let ids: Vec<&str> = rows.iter().map(|row| row.discord_id.as_str()).collect();
    let to_write: Vec<i64> = sqlx::query_scalar(
        "SELECT COALESCE(array_agg(t.ord - 1), '{}')
         FROM UNNEST($1::text[], $2::int8[]) WITH ORDINALITY AS t(discord_id, fingerprint, ord)
         LEFT JOIN guild_identity.discord_users du USING (discord_id)
         WHERE du.id IS NULL OR NOT du.is_present OR du.last_sync IS NULL
            OR du.last_sync >= $3 OR du.content_fingerprint IS DISTINCT FROM t.fingerprint",
    )
    .bind(&ids)
    .bind(&fingerprints)
    .bind(taken_at)
    .fetch_one(&mut *conn)
    .await
    .context("cannot compare Discord users' fingerprints")?;
    let to_write: Vec<usize> = to_write.into_iter().map(|i| i as usize).collect();
    let mut counts =
        write_rows(conn, rows, &fingerprints, &to_write, Some(taken_at), events).await?;
    counts.unchanged += (rows.len() - to_write.len()) as u64;
    Ok(counts)
}

/// What a member the table does not know yet means to the history (issue 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A live GUILD_MEMBER_ADD: they joined just now, whether or not the history has started.
    Joined,
    /// In a member list, a member update or a role run's re-read: a join once the Discord
    /// history has started ([`member_events::history_started`]: a complete full sync has
    /// committed); before it, part of the baseline — the guild as it was found, not joins.
    Found,
}

/// The events [`write_rows`] records: attributed to `source`, new members as `arrival` says.
#[derive(Debug, Clone, Copy)]
struct RowEvents {
    source: EventSource,
    arrival: Arrival,
}

/// [`upsert`]'s statement for `rows[i]` for each `i` in `chosen`, each with its fingerprint.
async fn write_rows(
    conn: &mut PgConnection,
    rows: &[DiscordUserUpsert],
    fingerprints: &[i64],
    chosen: &[usize],
    taken_at: Option<DateTime<Utc>>,
    events: RowEvents,
) -> Result<UpsertCounts> {
    let RowEvents { source, arrival } = events;
    if chosen.is_empty() {
        return Ok(UpsertCounts::default());
    }
    // A live join is always one; a found member is one once the history has started, which
    // the statement reads itself (`history_started_sql!`, once per statement).
    let joined_now = arrival == Arrival::Joined;
    let rows = chosen.iter().map(|&i| &rows[i]);
    let fingerprints: Vec<i64> = chosen.iter().map(|&i| fingerprints[i]).collect();
    let mut ids = Vec::with_capacity(chosen.len());
    let mut usernames = Vec::with_capacity(chosen.len());
    let mut display_names = Vec::with_capacity(chosen.len());
    let mut global_names: Vec<Option<&str>> = Vec::with_capacity(chosen.len());
    let mut highest = Vec::with_capacity(chosen.len());
    let mut all_roles = Vec::with_capacity(chosen.len());
    let mut joined = Vec::with_capacity(chosen.len());
    let mut separator = [0u8; 4];
    let separator: &str = ROLE_SEPARATOR.encode_utf8(&mut separator);
    for row in rows {
        ids.push(row.discord_id.as_str());
        usernames.push(row.username.as_str());
        display_names.push(row.display_name.as_str());
        global_names.push(row.global_name.as_deref());
        highest.push(row.highest_guild_role.as_deref());
        all_roles.push(row.all_guild_roles.join(separator));
        joined.push(row.joined_server_at);
    }
    // One statement, set-based: `prev` joins the list to the stored rows (all CTEs read the
    // table as it was before the statement), existing rows are updated by id and new ones
    // inserted with an anti-join. A plain UPDATE … FROM plus INSERT is markedly faster than
    // `INSERT … ON CONFLICT DO UPDATE` for 50,000 rows, which probes for a conflict row by row.
    let (new, updated, revived, unchanged): (i64, i64, i64, i64) = sqlx::query_as(concat!(
        "WITH input AS (
             SELECT discord_id, username, display_name, highest_guild_role,
                    CASE WHEN roles = '' THEN '{}'::text[] ELSE string_to_array(roles, $7) END
                        AS all_guild_roles,
                    joined_server_at, global_name, fingerprint
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $9::text[], $12::int8[])
                 AS t(discord_id, username, display_name, highest_guild_role, roles,
                      joined_server_at, global_name, fingerprint)
         ),
         prev AS MATERIALIZED (
             SELECT du.id, du.is_present, i.*,
                    du.username AS old_username, du.display_name AS old_display_name,
                    du.all_guild_roles AS old_roles, du.content_fingerprint AS stored_fingerprint,
                    -- Written even when unchanged: a revival, a real-time event, a row written
                    -- since the list was taken (so it reads as confirmed by this sync).
                    (NOT du.is_present OR $8::timestamptz IS NULL OR du.last_sync IS NULL
                     OR du.last_sync >= $8::timestamptz) AS rewritten,
                    (NOT du.is_present AND $8::timestamptz IS NOT NULL
                     AND du.removed_at >= $8::timestamptz) AS left_since,
                    (du.username, du.display_name, du.highest_guild_role, du.all_guild_roles)
                        IS DISTINCT FROM
                    (i.username, i.display_name, i.highest_guild_role, i.all_guild_roles)
                    OR du.global_name IS DISTINCT FROM i.global_name
                    OR (i.joined_server_at IS NOT NULL
                        AND i.joined_server_at IS DISTINCT FROM du.joined_server_at)
                        AS changed
             FROM input i
             JOIN guild_identity.discord_users du USING (discord_id)
         ),
         updated AS (
             UPDATE guild_identity.discord_users du SET
                 username = p.username,
                 display_name = p.display_name,
                 global_name = p.global_name,
                 highest_guild_role = p.highest_guild_role,
                 all_guild_roles = p.all_guild_roles,
                 joined_server_at = COALESCE(p.joined_server_at, du.joined_server_at),
                 content_fingerprint = p.fingerprint,
                 -- Only the fingerprint filled in: the row was not confirmed in a new way.
                 last_sync = CASE WHEN p.changed OR p.rewritten THEN now() ELSE du.last_sync END,
                 is_present = NOT p.left_since,
                 removed_at = CASE WHEN p.left_since THEN du.removed_at END
             FROM prev p
             WHERE du.id = p.id
               -- Present and unchanged in a full sync: nothing to write (issue 21) but a
               -- fingerprint not stored yet (rows from before migration 1505).
               AND (p.changed OR p.rewritten OR p.fingerprint IS DISTINCT FROM p.stored_fingerprint)
         ),
         inserted AS (
             INSERT INTO guild_identity.discord_users
                 (discord_id, username, display_name, highest_guild_role, all_guild_roles,
                  joined_server_at, last_sync, is_present, removed_at, global_name,
                  content_fingerprint)
             SELECT i.discord_id, i.username, i.display_name, i.highest_guild_role,
                    i.all_guild_roles, i.joined_server_at, now(), TRUE, NULL, i.global_name,
                    i.fingerprint
             FROM input i
             WHERE NOT EXISTS (SELECT 1 FROM guild_identity.discord_users du
                               WHERE du.discord_id = i.discord_id)
             -- A gateway event may insert the same member meanwhile; its row stands.
             ON CONFLICT (discord_id) DO NOTHING
             RETURNING id, username, display_name, all_guild_roles
         ),
         changes AS (
             -- One pass over the members that changed or came back (a departed member back in
             -- the list, not one who left after it was taken); per member, each kind of event
             -- it carries, its JSON built only then. Three filtered passes over every listed
             -- member cost more than the events themselves at a week's changes (issue 19).
             SELECT e.event_type, p.id, e.before, e.after
             FROM prev p
             CROSS JOIN LATERAL (
                 SELECT 'discord_joined' AS event_type, NULL::jsonb AS before,
                        jsonb_build_object('username', p.username, 'display_name', p.display_name,
                                           'roles', p.all_guild_roles, 'returned', TRUE) AS after
                 WHERE NOT p.is_present
                 UNION ALL
                 SELECT 'discord_renamed',
                        jsonb_build_object('username', p.old_username,
                                           'display_name', p.old_display_name),
                        jsonb_build_object('username', p.username, 'display_name', p.display_name)
                 WHERE p.is_present
                   AND (p.old_username, p.old_display_name)
                       IS DISTINCT FROM (p.username, p.display_name)
                 UNION ALL
                 SELECT 'discord_roles_changed',
                        jsonb_build_object('roles', p.old_roles),
                        jsonb_build_object('roles', p.all_guild_roles)
                 WHERE p.is_present AND p.old_roles IS DISTINCT FROM p.all_guild_roles
             ) e
             WHERE (NOT p.is_present AND NOT p.left_since) OR (p.is_present AND p.changed)
         ),
         events AS (
             INSERT INTO guild_identity.member_events
                 (event_type, discord_user_id, player_id, before, after, run_id, actor)
             SELECT 'discord_joined', n.id, NULL, NULL,
                    jsonb_build_object('username', n.username, 'display_name', n.display_name,
                                       'roles', n.all_guild_roles),
                    $11::int8, $10::text
             FROM inserted n
             -- Before the Discord history starts, new members are the baseline, not joins.
             WHERE $13::bool OR ",
        member_events::history_started_sql!("discord_full_sync", 14),
        "
             UNION ALL
             -- Only members that changed or came back can carry an event: `changes` reads
             -- those, one branch per kind, and builds the JSON of the events written only.
             SELECT c.event_type, c.id, pl.id, c.before, c.after, $11::int8, $10::text
             FROM changes c
             LEFT JOIN guild_identity.players pl ON pl.discord_user_id = c.id
         )
         SELECT (SELECT count(*) FROM inserted),
                count(*) FILTER (WHERE p.is_present AND p.changed),
                count(*) FILTER (WHERE NOT p.is_present AND NOT p.left_since),
                count(*) FILTER (WHERE p.is_present AND NOT p.changed)
         FROM prev p"
    ))
    .bind(&ids)
    .bind(&usernames)
    .bind(&display_names)
    .bind(&highest)
    .bind(&all_roles)
    .bind(&joined)
    .bind(separator)
    .bind(taken_at)
    .bind(&global_names)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .bind(&fingerprints)
    .bind(joined_now)
    .bind(DISCORD_SOURCE)
    .fetch_one(conn)
    .await
    .context("cannot upsert Discord users")?;
    Ok(UpsertCounts {
        new: new as u64,
        updated: updated as u64,
        revived: revived as u64,
        unchanged: unchanged as u64,
    })
}

/// How many members are present, and which of those `listed` (taken at `taken_at`) leaves
/// out — not counting members real-time events wrote after `taken_at`.
pub async fn presence_counts(
    db: impl PgExecutor<'_>,
    listed: &[&str],
    taken_at: DateTime<Utc>,
) -> Result<PresenceCounts> {
    // An anti-join against the unnested list (hashed by the planner) rather than
    // `NOT (discord_id = ANY($1))`, which scans the whole array for every row.
    let (present, missing): (i64, Vec<i32>) = sqlx::query_as(
        "SELECT count(*),
                COALESCE(array_agg(du.id) FILTER (WHERE l.discord_id IS NULL
                                 AND (du.last_sync IS NULL OR du.last_sync < $2)), '{}')
         FROM guild_identity.discord_users du
         LEFT JOIN (SELECT DISTINCT discord_id FROM UNNEST($1::text[]) AS t(discord_id)) l
             USING (discord_id)
         WHERE du.is_present",
    )
    .bind(listed)
    .bind(taken_at)
    .fetch_one(db)
    .await
    .context("cannot count present Discord users")?;
    Ok(PresenceCounts {
        present: present as u64,
        missing_from_list: missing.len() as u64,
        missing_ids: missing,
    })
}

/// Mark the members `missing` ([`PresenceCounts::missing_ids`] of a list taken at `taken_at`)
/// departed, except those real-time events wrote after `taken_at` meanwhile (they joined after
/// the list was taken); returns how many. Call in the transaction that counted them.
pub async fn mark_missing_departed(
    db: impl PgExecutor<'_>,
    missing: &[i32],
    taken_at: DateTime<Utc>,
    source: EventSource,
) -> Result<u64> {
    if missing.is_empty() {
        // Not even an UPDATE of no rows: its statement trigger would bump `data_version` and so
        // invalidate the console's caches after a sync that changed nothing.
        return Ok(0);
    }
    // The conditions that chose them are checked again, so a row written since the count is
    // judged as it is now.
    let departed: i64 = sqlx::query_scalar(concat!(
        "WITH departed AS (
         UPDATE guild_identity.discord_users du ",
        departure_sql!(),
        "
         WHERE du.id = ANY ($1::int4[]) AND du.is_present
           AND (du.last_sync IS NULL OR du.last_sync < $2)
         RETURNING du.id, du.username, du.display_name, du.all_guild_roles
         ), ",
        departed_events_sql!(3, 4),
        "
         SELECT count(*) FROM departed"
    ))
    .bind(missing)
    .bind(taken_at)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .fetch_one(db)
    .await
    .context("cannot mark departed Discord users")?;
    Ok(departed as u64)
}

/// Record a complete full sync whose list was taken at `taken_at`: from now on, present members
/// it left unwritten read `last_sync` as this transaction's time (call after
/// [`mark_missing_departed`], in the same transaction).
pub async fn record_full_sync(db: impl PgExecutor<'_>, taken_at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "INSERT INTO guild_identity.discord_full_sync (singleton, taken_at, synced_at)
         VALUES (TRUE, $1, now())
         ON CONFLICT (singleton) DO UPDATE SET taken_at = $1, synced_at = now()",
    )
    .bind(taken_at)
    .execute(db)
    .await
    .context("cannot record the full Discord sync")?;
    Ok(())
}

/// Mark one member departed, with its `discord_left` event; returns whether they were present.
pub async fn mark_departed(
    db: impl PgExecutor<'_>,
    discord_id: &str,
    source: EventSource,
) -> Result<bool> {
    let departed: i64 = sqlx::query_scalar(concat!(
        "WITH departed AS (
         UPDATE guild_identity.discord_users du ",
        departure_sql!(),
        "
         WHERE du.discord_id = $1 AND du.is_present
         RETURNING du.id, du.username, du.display_name, du.all_guild_roles
         ), ",
        departed_events_sql!(2, 3),
        "
         SELECT count(*) FROM departed"
    ))
    .bind(discord_id)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .fetch_one(db)
    .await
    .context("cannot mark a Discord user departed")?;
    Ok(departed > 0)
}

/// One member by snowflake, `last_sync` with its meaning (derived for present members).
pub async fn get(db: impl PgExecutor<'_>, discord_id: &str) -> Result<Option<DiscordUserRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM guild_identity.discord_users_synced WHERE discord_id = $1")
            .bind(discord_id)
            .fetch_optional(db)
            .await?,
    )
}

/// Every member, present or not, by snowflake (`last_sync` as in [`get`]).
pub async fn all(db: impl PgExecutor<'_>) -> Result<Vec<DiscordUserRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM guild_identity.discord_users_synced ORDER BY discord_id")
            .fetch_all(db)
            .await?,
    )
}
