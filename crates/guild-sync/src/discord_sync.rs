//! discord_sync: Discord members → `guild_identity.discord_users`, as a full sync and as
//! real-time member events.
//!
//! Owns the Discord wire shapes of members and roles (one parser for the REST API, the gateway
//! events and `--from-file`), the pure member → row conversion (display name; guild roles from
//! the rank table), the full sync (fetch every page, then apply the list in one transaction)
//! and the event application used by [`crate::discord_gateway`]. It never reads or writes player
//! links: those belong to the identity engine.
//!
//! Safety rules: only a *complete* member list marks anyone departed; a fetch failing part-way
//! or a list that would mark more than the configured share of present members departed
//! changes nothing and is recorded as an error in `sync_log`. Each request is retried on 429,
//! 5xx and timeouts with jittered exponential backoff (honouring Discord's `retry_after`), as
//! the Battle.net client does, so one bad answer on page 2 does not fail the whole sync.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgPool;

use crate::config::{Config, DEFAULT_DISCORD_API_URL, RemovalGuard};
use crate::db::discord_users::{self, Arrival, DiscordUserUpsert};
use crate::db::member_events::EventSource;
use crate::db::reference::{self, GuildRankRow};
use crate::db::sync_log::RunCounts;
use crate::run_recorder::{Lap, RunReport, StageTimings, record_run};

/// `sync_log.source` of a member sync.
pub const SYNC_SOURCE: &str = crate::db::sync_log::DISCORD_SOURCE;

/// Members per page of `GET /guilds/{id}/members`: Discord's maximum.
pub const MEMBERS_PAGE_SIZE: u16 = 1000;

/// Retries after the first attempt of one request, on 429, 5xx and timeouts.
pub const MAX_RETRIES: u32 = 4;

/// First retry delay before jitter; doubled on each retry.
pub const BASE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);

/// Longest `retry_after` honoured; Discord asking for longer means the bot is throttled for a
/// while and the next scheduled sync (15 minutes) is the better retry.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Wire shapes (Discord API v10). Only the fields guild-sync uses; everything else is ignored,
// so the full objects Discord sends parse as well as the trimmed ones in files and fakes.

/// A Discord snowflake, kept as its decimal digits (as Discord's JSON carries it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Snowflake(String);

impl Snowflake {
    /// Parse decimal digits that fit a `u64` (what Discord ids are).
    pub fn parse(value: &str) -> Result<Snowflake> {
        match value.parse::<u64>() {
            Ok(n) if n > 0 && value.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Snowflake(value.to_owned()))
            }
            _ => bail!("{value:?} is not a Discord id (snowflake digits)"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_u64(&self) -> u64 {
        self.0.parse().expect("validated as a u64 when parsed")
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Snowflake::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Longest Discord name kept, in characters. Discord allows 32 for usernames, global names and
/// nicks and 100 for role names; the bound is for whatever else sends this shape.
pub const MAX_DISCORD_NAME: usize = 100;

/// Names are cleaned where they are parsed — REST pages, gateway events and `--from-file`
/// alike — so one member's NUL or escape sequence cannot fail a sync or reach a report.
fn clean_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let raw = String::deserialize(deserializer)?;
    Ok(guild_sync_core::text::clean_bounded(&raw, MAX_DISCORD_NAME))
}

fn clean_optional_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    Ok(raw.map(|raw| guild_sync_core::text::clean_bounded(&raw, MAX_DISCORD_NAME)))
}

/// A guild role: `{id, name, position}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WireRole {
    pub id: Snowflake,
    #[serde(deserialize_with = "clean_name")]
    pub name: String,
    #[serde(default)]
    pub position: i64,
}

/// A Discord user: `{id, username, global_name, bot}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WireUser {
    pub id: Snowflake,
    #[serde(deserialize_with = "clean_name")]
    pub username: String,
    #[serde(default, deserialize_with = "clean_optional_name")]
    pub global_name: Option<String>,
    #[serde(default)]
    pub bot: bool,
}

/// A guild member: `{user, nick, roles:[role_id], joined_at}` — the REST list item, and the
/// payload of GUILD_MEMBER_ADD and GUILD_MEMBER_UPDATE (which add `guild_id`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WireMember {
    pub user: WireUser,
    #[serde(default, deserialize_with = "clean_optional_name")]
    pub nick: Option<String>,
    #[serde(default)]
    pub roles: Vec<Snowflake>,
    #[serde(default)]
    pub joined_at: Option<DateTime<Utc>>,
}

/// A whole server as `--from-file` holds it: `{roles:[…], members:[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct DiscordSnapshot {
    pub roles: Vec<WireRole>,
    pub members: Vec<WireMember>,
}

impl DiscordSnapshot {
    /// Parse a `{roles, members}` document.
    pub fn from_json(json: &[u8]) -> Result<DiscordSnapshot> {
        serde_json::from_slice(json).context("not a Discord {roles, members} document")
    }
}

// ---------------------------------------------------------------------------------------------
// The pure conversion.

/// The guild's roles by id (role ids are what members carry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuildRoles {
    names: HashMap<Snowflake, String>,
}

impl GuildRoles {
    pub fn new(roles: &[WireRole]) -> GuildRoles {
        GuildRoles {
            names: roles
                .iter()
                .map(|r| (r.id.clone(), r.name.clone()))
                .collect(),
        }
    }

    /// Add or rename one role (GUILD_ROLE_CREATE / UPDATE).
    pub fn upsert(&mut self, role: &WireRole) {
        self.names.insert(role.id.clone(), role.name.clone());
    }

    /// Forget one role (GUILD_ROLE_DELETE).
    pub fn remove(&mut self, id: &Snowflake) {
        self.names.remove(id);
    }

    pub fn name(&self, id: &Snowflake) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The guild's rank roles: Discord role names recorded on `common.guild_ranks`, matched
/// case-insensitively, with the rank level that orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankRoles {
    /// Lowercased Discord role name → (rank level, the name as the rank table spells it).
    by_name: HashMap<String, (i32, String)>,
}

impl RankRoles {
    pub fn new(ranks: &[GuildRankRow]) -> RankRoles {
        RankRoles {
            by_name: ranks
                .iter()
                .filter_map(|rank| {
                    let name = rank.discord_role_name.as_deref()?.trim();
                    (!name.is_empty()).then(|| (name.to_lowercase(), (rank.level, name.to_owned())))
                })
                .collect(),
        }
    }

    /// The rank roles among `role_names`, most senior first, each once.
    pub fn guild_roles<'a>(&self, role_names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut found: Vec<&(i32, String)> = role_names
            .into_iter()
            .filter_map(|name| self.by_name.get(&name.trim().to_lowercase()))
            .collect();
        found.sort_by_key(|rank| std::cmp::Reverse(rank.0));
        found.dedup_by_key(|rank| rank.0);
        found.into_iter().map(|(_, name)| name.clone()).collect()
    }
}

/// What a member is called on the server: `nick`, else `global_name`, else `username`
/// (blank values count as unset, as Discord's client treats them).
pub fn display_name(member: &WireMember) -> &str {
    [member.nick.as_deref(), member.user.global_name.as_deref()]
        .into_iter()
        .flatten()
        .find(|name| !name.trim().is_empty())
        .unwrap_or(&member.user.username)
}

/// The row to store for `member`, or `None` for a bot (bots are never synced).
pub fn member_row(
    member: &WireMember,
    roles: &GuildRoles,
    ranks: &RankRoles,
) -> Option<DiscordUserUpsert> {
    if member.user.bot {
        return None;
    }
    let guild_roles = ranks.guild_roles(member.roles.iter().filter_map(|id| roles.name(id)));
    Some(DiscordUserUpsert {
        discord_id: member.user.id.as_str().to_owned(),
        username: member.user.username.clone(),
        display_name: display_name(member).to_owned(),
        global_name: member
            .user
            .global_name
            .clone()
            .filter(|g| !g.trim().is_empty()),
        highest_guild_role: guild_roles.first().cloned(),
        all_guild_roles: guild_roles,
        joined_server_at: member.joined_at,
    })
}

/// A member list turned into rows: bots dropped, each member once (the last listing wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedMembers {
    pub rows: Vec<DiscordUserUpsert>,
    pub bots_skipped: usize,
}

/// Convert a whole member list.
pub fn prepare_members(
    members: &[WireMember],
    roles: &GuildRoles,
    ranks: &RankRoles,
) -> PreparedMembers {
    let mut bots_skipped = 0;
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(members.len());
    let mut rows: Vec<DiscordUserUpsert> = Vec::with_capacity(members.len());
    for member in members {
        match member_row(member, roles, ranks) {
            None => bots_skipped += 1,
            // Paging can repeat a member when the list changes between pages.
            Some(row) => match index.get(member.user.id.as_str()) {
                Some(&at) => rows[at] = row,
                None => {
                    index.insert(member.user.id.as_str(), rows.len());
                    rows.push(row);
                }
            },
        }
    }
    PreparedMembers { rows, bots_skipped }
}

// ---------------------------------------------------------------------------------------------
// The full sync.

/// Where the member list comes from.
#[derive(Debug, Clone)]
pub enum DiscordInput {
    /// The live Discord REST API, configured per SPEC §6.
    Live,
    /// A `{roles, members}` file in the API's shapes.
    File(PathBuf),
    /// An already-fetched server (the demo, benches, tests).
    Snapshot(DiscordSnapshot),
}

/// What a Discord member sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiscordSyncStats {
    /// Human members in the list.
    pub found: u64,
    pub new: u64,
    /// Present before and changed (name, display name, roles or join time).
    pub updated: u64,
    /// Present before, unchanged.
    pub unchanged: u64,
    /// Present before, absent from the list: marked `is_present = FALSE`.
    pub departed: u64,
    /// Departed before, back in the list.
    pub revived: u64,
    pub bots_skipped: u64,
}

/// A member list refused because it would mark too many members departed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the member list would mark {departing} of {present} present Discord members departed at once; \
     nothing was changed (rerun with --allow-mass-removal if they really left)"
)]
pub struct MassRemovalRefused {
    pub departing: u64,
    pub present: u64,
}

/// Apply a complete, already-fetched member list (the database stage of a full sync) in one
/// transaction: upsert every row, then mark present members missing from it departed — unless
/// `guard` refuses that many departures, in which case nothing changes and the error is a
/// [`MassRemovalRefused`]. `taken_at` (database clock, [`discord_users::clock`]) is when the
/// fetch began: a join or leave the gateway applied after it is newer than the list and stands.
///
/// The changes' `member_events` are written by the same statements, attributed to `source`.
pub async fn apply_member_list(
    pool: &PgPool,
    members: &PreparedMembers,
    taken_at: DateTime<Utc>,
    guard: RemovalGuard,
    source: EventSource,
) -> Result<DiscordSyncStats> {
    if members.rows.is_empty() {
        // A server always has its (human) owner; an empty list is a broken fetch or file.
        bail!("the Discord member list has no human members; nothing was changed");
    }
    let listed: Vec<&str> = members.rows.iter().map(|r| r.discord_id.as_str()).collect();
    let mut tx = pool.begin().await.context("cannot start a transaction")?;
    let presence = discord_users::presence_counts(&mut *tx, &listed, taken_at).await?;
    let present = usize::try_from(presence.present).unwrap_or(usize::MAX);
    let departing = usize::try_from(presence.missing_from_list).unwrap_or(usize::MAX);
    if !guard.permits(departing, present) {
        return Err(MassRemovalRefused {
            departing: presence.missing_from_list,
            present: presence.present,
        }
        .into());
    }
    let upserted = discord_users::upsert(
        &mut tx,
        &members.rows,
        Some(taken_at),
        source,
        Arrival::Found,
    )
    .await?;
    let departed =
        discord_users::mark_missing_departed(&mut *tx, &presence.missing_ids, taken_at, source)
            .await?;
    discord_users::record_full_sync(&mut *tx, taken_at).await?;
    tx.commit()
        .await
        .context("cannot commit the Discord member sync")?;
    Ok(DiscordSyncStats {
        found: members.rows.len() as u64,
        new: upserted.new,
        updated: upserted.updated,
        unchanged: upserted.unchanged,
        departed,
        revived: upserted.revived,
        bots_skipped: members.bots_skipped as u64,
    })
}

/// Sync every member into `discord_users` as one recorded run (`sync_log.source = 'discord'`).
pub async fn run(
    pool: &PgPool,
    config: &Config,
    input: DiscordInput,
    guard: RemovalGuard,
) -> Result<DiscordSyncStats> {
    record_run(pool, SYNC_SOURCE, |run_id| async move {
        let mut lap = Lap::start();
        let taken_at = discord_users::clock(pool).await?;
        let snapshot = match input {
            DiscordInput::Live => fetch_snapshot(config).await?,
            DiscordInput::File(path) => {
                let bytes = tokio::fs::read(&path)
                    .await
                    .with_context(|| format!("cannot read {}", path.display()))?;
                DiscordSnapshot::from_json(&bytes)
                    .with_context(|| format!("{} is not a Discord member file", path.display()))?
            }
            DiscordInput::Snapshot(snapshot) => snapshot,
        };
        let ranks = RankRoles::new(&reference::guild_ranks(pool).await?);
        let load_seconds = lap.lap();
        let prepared =
            prepare_members(&snapshot.members, &GuildRoles::new(&snapshot.roles), &ranks);
        let plan_seconds = lap.lap();
        let stats =
            apply_member_list(pool, &prepared, taken_at, guard, EventSource::run(run_id)).await?;
        let timings = StageTimings {
            load_seconds: Some(load_seconds),
            plan_seconds: Some(plan_seconds),
            apply_seconds: Some(lap.lap()),
        };
        tracing::info!(
            found = stats.found,
            new = stats.new,
            updated = stats.updated,
            departed = stats.departed,
            revived = stats.revived,
            bots_skipped = stats.bots_skipped,
            "Discord members synced"
        );
        let counts = RunCounts::default()
            .found(stats.found)
            .updated(stats.updated)
            .new(stats.new)
            .removed(stats.departed);
        Ok((stats, RunReport::success(counts, &stats).timed(timings)))
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The live REST API, through twilight-http.

/// A twilight HTTP client for `config`.
///
/// `DISCORD_API_URL` at its default talks to discord.com with twilight's rate limiter. Any
/// other value must end in `/api/v10` (twilight builds every path itself) and is reached as a
/// proxy: `http://host:port/api/v10` over plain HTTP, `https://host/api/v10` over TLS — e.g. a
/// twilight-http-proxy in front of several bots, or a local fake in tests. A proxy owns rate
/// limiting, so the client's own limiter is off then.
pub fn http_client(config: &Config) -> Result<twilight_http::Client> {
    let token = config.discord_bot_token.as_ref().context(
        "the Discord sync needs DISCORD_BOT_TOKEN and DISCORD_GUILD_ID (or use --from-file)",
    )?;
    let builder = twilight_http::Client::builder().token(token.expose().to_owned());
    let base = config.discord_api_url.trim_end_matches('/');
    if base == DEFAULT_DISCORD_API_URL {
        return Ok(builder.build());
    }
    let url =
        url::Url::parse(base).with_context(|| format!("DISCORD_API_URL {base:?} is not a URL"))?;
    let use_http = match url.scheme() {
        "http" => true,
        "https" => false,
        other => bail!("DISCORD_API_URL {base:?}: scheme {other:?} is not http or https"),
    };
    if url.path().trim_end_matches('/') != "/api/v10" {
        bail!("DISCORD_API_URL {base:?} must end in /api/v10");
    }
    let host = url
        .host_str()
        .with_context(|| format!("DISCORD_API_URL {base:?} has no host"))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Ok(builder.proxy(authority, use_http).ratelimiter(None).build())
}

/// The configured guild id.
pub fn guild_id(config: &Config) -> Result<Snowflake> {
    let id = config
        .discord_guild_id
        .as_deref()
        .context("DISCORD_GUILD_ID is not set")?;
    Snowflake::parse(id.trim()).context("DISCORD_GUILD_ID")
}

/// Fetch the guild's roles and every member (all pages). Any failure — on any page — is an
/// error: a partial list must never reach the departure logic.
pub async fn fetch_snapshot(config: &Config) -> Result<DiscordSnapshot> {
    use twilight_model::id::Id;
    use twilight_model::id::marker::{GuildMarker, UserMarker};

    let client = http_client(config)?;
    let guild = guild_id(config)?;
    let guild_id: Id<GuildMarker> = Id::new(guild.as_u64());

    let roles = with_retries("the guild's roles", || async {
        client
            .roles(guild_id)
            .await?
            .bytes()
            .await
            .map_err(Into::into)
    })
    .await
    .context("cannot fetch the Discord guild's roles")?;
    let roles: Vec<WireRole> =
        serde_json::from_slice(&roles).context("Discord sent roles in an unexpected shape")?;

    let mut members: Vec<WireMember> = Vec::new();
    let mut after: Option<u64> = None;
    for page in 1usize.. {
        let what = format!("page {page} of the member list");
        let body = with_retries(&what, || async {
            let mut request = client.guild_members(guild_id).limit(MEMBERS_PAGE_SIZE);
            if let Some(after) = after {
                request = request.after(Id::<UserMarker>::new(after));
            }
            request.await?.bytes().await.map_err(Into::into)
        })
        .await
        .with_context(|| format!("cannot fetch page {page} of the Discord member list"))?;
        let batch: Vec<WireMember> = serde_json::from_slice(&body).with_context(|| {
            format!("page {page} of the Discord member list is in an unexpected shape")
        })?;
        let full_page = batch.len() >= usize::from(MEMBERS_PAGE_SIZE);
        let last = batch.iter().map(|m| m.user.id.as_u64()).max();
        members.extend(batch);
        match last {
            // Discord pages by ascending user id; a page not moving past the cursor would
            // loop forever.
            Some(last) if after.is_some_and(|after| last <= after) => {
                bail!("page {page} of the Discord member list did not advance past user {last}")
            }
            Some(last) if full_page => after = Some(last),
            _ => break,
        }
        tracing::debug!(
            page,
            members = members.len(),
            "fetched a Discord member page"
        );
    }
    Ok(DiscordSnapshot { roles, members })
}

/// Why one Discord request failed, as far as retrying is concerned.
#[derive(Debug)]
enum RequestFailure {
    /// Worth another try after the backoff, or after Discord's `retry_after` when it sent one.
    Transient(String, Option<std::time::Duration>),
    Permanent(anyhow::Error),
}

impl From<twilight_http::Error> for RequestFailure {
    fn from(err: twilight_http::Error) -> Self {
        use twilight_http::api_error::ApiError;
        use twilight_http::error::ErrorType;
        match err.kind() {
            ErrorType::Response { status, error, .. }
                if status.get() == 429 || status.is_server_error() =>
            {
                let after = match error {
                    ApiError::Ratelimited(r)
                        if r.retry_after.is_finite() && r.retry_after >= 0.0 =>
                    {
                        Some(std::time::Duration::from_secs_f64(r.retry_after))
                    }
                    _ => None,
                };
                RequestFailure::Transient(format!("HTTP {}", status.get()), after)
            }
            // An error status whose body is not Discord's JSON error: a proxy's or load
            // balancer's 502/503 page. Discord itself answers client errors in JSON.
            ErrorType::Parsing { .. }
            | ErrorType::RequestTimedOut
            | ErrorType::RequestError
            | ErrorType::RequestCanceled => RequestFailure::Transient(err.to_string(), None),
            _ => RequestFailure::Permanent(err.into()),
        }
    }
}

impl From<twilight_http::response::DeserializeBodyError> for RequestFailure {
    fn from(err: twilight_http::response::DeserializeBodyError) -> Self {
        // The body broke off mid-transfer: the connection, not the request, failed.
        RequestFailure::Transient(err.to_string(), None)
    }
}

/// Run one Discord request, retrying transient failures up to [`MAX_RETRIES`] times with
/// jittered exponential backoff from [`BASE_BACKOFF`].
async fn with_retries<F, Fut, T>(what: &str, mut request: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, RequestFailure>>,
{
    let mut retries = 0;
    loop {
        match request().await {
            Ok(value) => return Ok(value),
            Err(RequestFailure::Permanent(err)) => return Err(err),
            Err(RequestFailure::Transient(why, after)) => {
                if retries >= MAX_RETRIES {
                    bail!("{what}: {why}, still failing after {retries} retries");
                }
                let delay = match after {
                    Some(after) if after > MAX_RETRY_AFTER => {
                        bail!("{what}: {why} with retry_after {after:?}; giving up")
                    }
                    Some(after) => after,
                    None => crate::blizzard_client::jittered(BASE_BACKOFF, retries),
                };
                retries += 1;
                tracing::warn!(
                    what,
                    why,
                    retry = retries,
                    ?delay,
                    "Discord request failed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real-time events (DB only; the gateway listener decodes and calls these in arrival order).

/// What applying one member event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberEventOutcome {
    Inserted,
    Updated,
    Revived,
    Unchanged,
    Departed,
    /// A removal for someone not present (unknown, or already departed).
    NotPresent,
    /// Bots are not synced.
    BotIgnored,
}

async fn upsert_one(
    pool: &PgPool,
    member: &WireMember,
    roles: &GuildRoles,
    arrival: Arrival,
) -> Result<MemberEventOutcome> {
    let ranks = RankRoles::new(&reference::guild_ranks(pool).await?);
    let Some(row) = member_row(member, roles, &ranks) else {
        return Ok(MemberEventOutcome::BotIgnored);
    };
    let counts = discord_users::upsert(
        &mut *pool.acquire().await?,
        std::slice::from_ref(&row),
        None,
        EventSource::gateway(),
        arrival,
    )
    .await?;
    Ok(if counts.new > 0 {
        MemberEventOutcome::Inserted
    } else if counts.revived > 0 {
        MemberEventOutcome::Revived
    } else if counts.updated > 0 {
        MemberEventOutcome::Updated
    } else {
        MemberEventOutcome::Unchanged
    })
}

/// GUILD_MEMBER_ADD: insert the member, or revive them if they had left; a `discord_joined`
/// either way, even before the first full sync (the gateway saw the join happen).
pub async fn on_member_join(
    pool: &PgPool,
    member: &WireMember,
    roles: &GuildRoles,
) -> Result<MemberEventOutcome> {
    upsert_one(pool, member, roles, Arrival::Joined).await
}

/// GUILD_MEMBER_UPDATE: new username, display name or roles. A member the database does not
/// know yet is inserted: a missed join once the Discord history has started, part of the
/// baseline before the first full sync; one marked departed is present again.
pub async fn on_member_update(
    pool: &PgPool,
    member: &WireMember,
    roles: &GuildRoles,
) -> Result<MemberEventOutcome> {
    let outcome = upsert_one(pool, member, roles, Arrival::Found).await?;
    if outcome == MemberEventOutcome::Updated {
        let resolved =
            crate::db::integrity::resolve_fixed_rank_mismatches(pool, member.user.id.as_str())
                .await?;
        if resolved > 0 {
            tracing::info!(
                discord_id = member.user.id.as_str(),
                resolved,
                "rank_mismatch resolved by a member update"
            );
        }
    }
    Ok(outcome)
}

/// GUILD_MEMBER_REMOVE: `is_present = FALSE, removed_at = NOW()`.
pub async fn on_member_remove(pool: &PgPool, user: &WireUser) -> Result<MemberEventOutcome> {
    if user.bot {
        return Ok(MemberEventOutcome::BotIgnored);
    }
    Ok(
        if discord_users::mark_departed(pool, user.id.as_str(), EventSource::gateway()).await? {
            MemberEventOutcome::Departed
        } else {
            MemberEventOutcome::NotPresent
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(level: i32, role: Option<&str>) -> GuildRankRow {
        GuildRankRow {
            id: level,
            name: format!("rank {level}"),
            level,
            scheduling_weight: level,
            description: None,
            ingame_rank_index: None,
            discord_role_name: role.map(str::to_owned),
        }
    }

    fn seeded_ranks() -> RankRoles {
        RankRoles::new(&[
            rank(5, Some("GM")),
            rank(4, Some("Officer")),
            rank(3, Some("Veteran")),
            rank(2, Some("Member")),
            rank(1, Some("Initiate")),
        ])
    }

    fn member(json: serde_json::Value) -> WireMember {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn names_are_cleaned_and_bounded_where_members_are_parsed() {
        let long = "x".repeat(500);
        let m = member(serde_json::json!({
            "user": {"id": "1", "username": "tr\u{0}og", "global_name": "Two\nLines\u{7}"},
            "nick": format!("\u{1b}[31m{long}"), "roles": []
        }));
        assert_eq!(m.user.username, "trog");
        assert_eq!(m.user.global_name.as_deref(), Some("Two Lines"));
        let nick = m.nick.as_deref().expect("nick");
        assert!(nick.starts_with("[31mxxx"), "{nick}");
        assert_eq!(nick.chars().count(), MAX_DISCORD_NAME);
        let nul_only = member(serde_json::json!({
            "user": {"id": "2", "username": "zoe"}, "nick": "\u{0}", "roles": []
        }));
        assert_eq!(display_name(&nul_only), "zoe");
    }

    #[test]
    fn display_name_prefers_nick_then_global_name_then_username() {
        let cases = [
            (Some("Nick"), Some("Global"), "Nick"),
            (None, Some("Global"), "Global"),
            (None, None, "user"),
            (Some(""), Some("Global"), "Global"),
            (Some("  "), None, "user"),
        ];
        for (nick, global, expected) in cases {
            let m = member(serde_json::json!({
                "user": {"id": "1", "username": "user", "global_name": global},
                "nick": nick, "roles": []
            }));
            assert_eq!(
                display_name(&m),
                expected,
                "nick {nick:?}, global {global:?}"
            );
        }
    }

    #[test]
    fn guild_roles_match_case_insensitively_and_are_ordered_by_rank() {
        let ranks = seeded_ranks();
        let cases: &[(&[&str], &[&str])] = &[
            (&["member", "OFFICER", "Raider"], &["Officer", "Member"]),
            (&["Raider", "Booster"], &[]),
            (
                &["initiate", "gm", "Veteran"],
                &["GM", "Veteran", "Initiate"],
            ),
            (&["Member", "MEMBER"], &["Member"]),
        ];
        for (names, expected) in cases {
            assert_eq!(
                ranks.guild_roles(names.iter().copied()),
                expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{names:?}"
            );
        }
    }

    #[test]
    fn member_row_maps_role_ids_to_rank_roles_and_skips_bots() {
        let roles = GuildRoles::new(&[
            WireRole {
                id: Snowflake::parse("10").unwrap(),
                name: "member".into(),
                position: 1,
            },
            WireRole {
                id: Snowflake::parse("11").unwrap(),
                name: "Officer".into(),
                position: 5,
            },
            WireRole {
                id: Snowflake::parse("12").unwrap(),
                name: "Raider".into(),
                position: 3,
            },
        ]);
        let human = member(serde_json::json!({
            "user": {"id": "42", "username": "thrall", "global_name": "Go'el"},
            "nick": null, "roles": ["12", "10", "11", "999"],
            "joined_at": "2024-03-01T12:00:00.000000+00:00"
        }));
        let row = member_row(&human, &roles, &seeded_ranks()).unwrap();
        assert_eq!(row.discord_id, "42");
        assert_eq!(row.username, "thrall");
        assert_eq!(row.display_name, "Go'el");
        assert_eq!(row.highest_guild_role.as_deref(), Some("Officer"));
        assert_eq!(row.all_guild_roles, vec!["Officer", "Member"]);
        assert!(row.joined_server_at.is_some());

        let bot = member(serde_json::json!({
            "user": {"id": "43", "username": "botty", "bot": true}, "roles": []
        }));
        assert_eq!(member_row(&bot, &roles, &seeded_ranks()), None);
    }

    #[test]
    fn prepare_members_counts_bots_and_keeps_each_member_once() {
        let list: Vec<WireMember> = serde_json::from_value(serde_json::json!([
            {"user": {"id": "1", "username": "a"}, "roles": []},
            {"user": {"id": "2", "username": "bot", "bot": true}, "roles": []},
            {"user": {"id": "1", "username": "a2"}, "roles": []},
            {"user": {"id": "3", "username": "c"}, "roles": []}
        ]))
        .unwrap();
        let prepared = prepare_members(&list, &GuildRoles::default(), &seeded_ranks());
        assert_eq!(prepared.bots_skipped, 1);
        let names: Vec<_> = prepared.rows.iter().map(|r| r.username.as_str()).collect();
        assert_eq!(names, ["a2", "c"]);
    }

    #[test]
    fn malformed_ids_are_rejected_with_the_value_named() {
        let err = DiscordSnapshot::from_json(
            br#"{"roles": [], "members": [{"user": {"id": "12a", "username": "x"}, "roles": []}]}"#,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("\"12a\""), "{err:#}");
        assert!(DiscordSnapshot::from_json(b"{\"members\": []}").is_err());
    }

    proptest::proptest! {
        #[test]
        fn guild_roles_do_not_depend_on_role_order(mut names in proptest::sample::subsequence(
            vec!["gm", "Officer", "VETERAN", "member", "Initiate", "Raider", "Friend"], 0..7
        ), seed in 0u64..1000) {
            let ranks = seeded_ranks();
            let expected = ranks.guild_roles(names.iter().copied());
            let len = names.len().max(1);
            names.rotate_left((seed as usize) % len);
            names.reverse();
            proptest::prop_assert_eq!(ranks.guild_roles(names.iter().copied()), expected);
        }
    }
}
