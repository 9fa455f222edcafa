//! role_sync: the Discord role sync — load what the plan needs, call the pure plan
//! (`guild_sync_core::roles`), run the guards, apply over Discord's REST API and undo a run.
//!
//! Guards, each refusing the whole run before any write request: a Battle.net or Discord sync
//! that failed or is older than `GUILD_SYNC_ROLE_MAX_SOURCE_AGE_HOURS`; a plan changing more
//! than 10 % of linked members (unless allowed, or approved as that exact plan); and the
//! pre-flight on `GET /guilds/{g}/roles` and the bot's own member (Manage Roles, the bot's
//! highest role above every managed role, every managed role existing).
//!
//! Apply stops at the first 403/50013 (missing permission) or 10011 (unknown role) so a bot
//! never loops on requests Discord refuses; 429s are waited out using Discord's bucket
//! headers; every change is recorded in `role_changes` and re-read to verify.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use guild_sync_core::roles::{
    ChangeResult, DEFAULT_MAX_CHANGE_SHARE, MemberRoles, PlayerRanks, RoleAction, RolePlan,
    RolePolicy, RoleRunKind, RoleRunStatus, check_mass_change, plan_roles,
};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::config::Config;
use crate::db::discord_users::{self, Arrival};
use crate::db::member_events::EventSource;
use crate::db::reference;
use crate::db::roles::{self as db, RoleChangeRow};
use crate::db::sync_log::{self, RunState, RunStatus};
use crate::discord_sender::DiscordSender;
use crate::discord_sync::{GuildRoles, RankRoles, Snowflake, WireMember, WireRole, member_row};
use crate::lock_wait::{LockWait, lock_for_command};

/// A guard refused the run: nothing was sent. Callers tell it from a failure by downcasting
/// (the API answers 409 for it, 500 for anything else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role sync refused: {0}")]
pub struct Refusal(pub String);

/// Return a [`Refusal`] from the enclosing function.
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(Refusal(format!($($arg)*)).into())
    };
}

/// `GUILD_SYNC_ROLE_SYNC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleSyncMode {
    Off,
    Plan,
    Apply,
}

impl RoleSyncMode {
    pub fn from_config(config: &Config) -> Result<RoleSyncMode> {
        match config.guild_sync_role_sync.trim().to_lowercase().as_str() {
            "off" | "" => Ok(RoleSyncMode::Off),
            "plan" => Ok(RoleSyncMode::Plan),
            "apply" => Ok(RoleSyncMode::Apply),
            other => bail!("GUILD_SYNC_ROLE_SYNC is {other:?}; expected off, plan or apply"),
        }
    }
}

/// The policy from the rank table and the configuration.
pub async fn policy(pool: &PgPool, config: &Config) -> Result<RolePolicy> {
    let ranks = reference::guild_ranks(pool).await?;
    Ok(RolePolicy::new(
        ranks
            .into_iter()
            .filter_map(|r| Some((r.level, r.discord_role_name?)))
            .collect(),
        config.guild_sync_former_member_role.clone(),
        config.guild_sync_role_grace_days,
    ))
}

/// The plan from the database as it is now.
pub async fn build_plan(pool: &PgPool, config: &Config, now: DateTime<Utc>) -> Result<RolePlan> {
    let policy = policy(pool, config).await?;
    let members: Vec<MemberRoles> = db::members_for_plan(pool)
        .await?
        .into_iter()
        .map(|row| MemberRoles {
            discord_id: row.discord_id,
            display_name: row.display_name,
            roles: row.roles,
            player: row.player_id.map(|_| PlayerRanks {
                player_name: row.player_name.unwrap_or_default(),
                present_rank_levels: row.present_rank_levels,
                present_characters: usize::try_from(row.present_characters).unwrap_or(0),
                last_departure: row.last_departure,
            }),
        })
        .collect();
    Ok(plan_roles(&policy, &members, now))
}

/// A plan as stored and printed.
#[derive(Debug, Clone, Serialize)]
pub struct StoredPlan {
    pub plan_id: i64,
    pub summary: String,
    #[serde(flatten)]
    pub plan: RolePlan,
}

/// Build the plan and store it (what `roles plan` and the scheduler's `plan` mode do). A plan
/// equal to the newest stored one (same fingerprint, not applied) is not stored again: the
/// scheduler plans after every check, and an unchanged plan keeps its id (and its approval).
pub async fn plan_and_store(pool: &PgPool, config: &Config) -> Result<StoredPlan> {
    let plan = build_plan(pool, config, Utc::now()).await?;
    let summary = plan.summary();
    if let Some(latest) = db::latest_plan(pool).await?
        && latest.fingerprint == plan.fingerprint
        && db::apply_run_of_plan(pool, latest.id).await?.is_none()
    {
        return Ok(StoredPlan {
            plan_id: latest.id,
            summary,
            plan,
        });
    }
    let plan_id = db::insert_plan(
        pool,
        &plan.fingerprint,
        &serde_json::to_value(&plan)?,
        &summary,
    )
    .await?;
    Ok(StoredPlan {
        plan_id,
        summary,
        plan,
    })
}

/// What the scheduler runs after each check, by `GUILD_SYNC_ROLE_SYNC`: `plan` stores the plan
/// (for an officer to approve) and posts its summary to the audit channel when it differs
/// from the last one posted; `apply` applies it with every guard and posts the run's result.
/// Never fails the check.
pub async fn after_check(pool: &PgPool, config: &Config) {
    let mode = match RoleSyncMode::from_config(config) {
        Ok(mode) => mode,
        Err(e) => {
            tracing::warn!("role sync skipped: {e:#}");
            return;
        }
    };
    match mode {
        RoleSyncMode::Off => {}
        RoleSyncMode::Plan => match plan_and_store(pool, config).await {
            Ok(stored) => {
                tracing::info!(plan_id = stored.plan_id, "{}", stored.summary);
                if let Err(e) = post_plan(pool, config, &stored).await {
                    tracing::warn!("the role plan summary was not posted: {e:#}");
                }
            }
            Err(e) => tracing::warn!("role plan failed: {e:#}"),
        },
        RoleSyncMode::Apply => match apply(pool, config, ApplyOptions::default()).await {
            Ok(outcome) => {
                tracing::info!(
                    run_id = outcome.run_id,
                    status = %outcome.status,
                    applied = outcome.applied,
                    "role sync applied"
                );
                if let Err(e) = post_run(config, RoleRunKind::Apply, &outcome).await {
                    tracing::warn!("the role run result was not posted: {e:#}");
                }
            }
            Err(e) => tracing::warn!("role sync refused or failed: {e:#}"),
        },
    }
}

/// Post a stored plan's summary to the audit channel unless it equals the last one posted (or
/// it is empty and nothing was posted yet). Returns whether it was posted.
pub async fn post_plan(pool: &PgPool, config: &Config, stored: &StoredPlan) -> Result<bool> {
    let Some(sender) = DiscordSender::from_config(config)? else {
        return Ok(false);
    };
    let last = db::last_posted_fingerprint(pool).await?;
    let unchanged = match &last {
        Some(fingerprint) => *fingerprint == stored.plan.fingerprint,
        None => stored.plan.changes.is_empty(),
    };
    if unchanged {
        return Ok(false);
    }
    let embed = guild_sync_core::roles::render_plan_embed(&stored.plan, stored.plan_id);
    sender
        .send(&serde_json::json!({ "embeds": [embed], "allowed_mentions": { "parse": [] } }))
        .await
        .context("the role plan summary was not accepted by Discord")?;
    db::mark_posted(pool, stored.plan_id).await?;
    Ok(true)
}

/// Post a finished run's result to the audit channel (when one is configured).
pub async fn post_run(config: &Config, kind: RoleRunKind, outcome: &RunOutcome) -> Result<()> {
    let Some(sender) = DiscordSender::from_config(config)? else {
        return Ok(());
    };
    let embed = guild_sync_core::roles::render_run_embed(
        outcome.run_id,
        kind,
        outcome.status,
        outcome.applied,
        outcome.verified,
        outcome.reason.as_deref(),
    );
    sender
        .send(&serde_json::json!({ "embeds": [embed], "allowed_mentions": { "parse": [] } }))
        .await
        .context("the role run result was not accepted by Discord")
}

/// Why an officer's approval (or undo) was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Discord is not configured (`DISCORD_BOT_TOKEN`, `DISCORD_GUILD_ID`).
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    NotFound(String),
    /// The plan is stale or already applied, a guard refused, or another run holds the lock.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl ApprovalError {
    /// A [`Refusal`] becomes a conflict, anything else a failure.
    fn of(err: anyhow::Error) -> ApprovalError {
        match err.downcast_ref::<Refusal>() {
            Some(refusal) => ApprovalError::Conflict(refusal.to_string()),
            None => ApprovalError::Failed(err),
        }
    }
}

fn require_discord(config: &Config) -> Result<(), ApprovalError> {
    if config.discord_bot_token.is_none() || config.discord_guild_id.is_none() {
        return Err(ApprovalError::NotConfigured(
            "the role sync is disabled: DISCORD_BOT_TOKEN and DISCORD_GUILD_ID are not configured"
                .into(),
        ));
    }
    Ok(())
}

/// Run `work` holding the pipeline lock, so an officer's apply or undo never runs beside a
/// pipeline (whose check may itself be planning or applying roles). Does not wait: a busy
/// lock is a conflict the officer retries.
async fn with_pipeline_lock<T>(
    pool: &PgPool,
    work: impl std::future::Future<Output = Result<T, ApprovalError>>,
) -> Result<T, ApprovalError> {
    let Some(held) = lock_for_command(pool, LockWait::Skip)
        .await
        .map_err(ApprovalError::Failed)?
    else {
        return Err(ApprovalError::Conflict(
            "another guild-sync run holds the pipeline lock; try again when it has finished".into(),
        ));
    };
    let result = work.await;
    held.release().await;
    result
}

/// An officer approves stored plan `plan_id`: apply it if it is still exactly the fresh plan
/// and every other guard holds (the mass-change guard is what the approval lifts). Posts the
/// run's result to the audit channel.
pub async fn approve(
    pool: &PgPool,
    config: &Config,
    plan_id: i64,
    officer: &str,
) -> Result<RunOutcome, ApprovalError> {
    require_discord(config)?;
    if db::get_plan(pool, plan_id).await?.is_none() {
        return Err(ApprovalError::NotFound(format!(
            "role plan {plan_id} does not exist"
        )));
    }
    let outcome = with_pipeline_lock(pool, async {
        if let Some((run, status)) = db::apply_run_of_plan(pool, plan_id).await? {
            return Err(ApprovalError::Conflict(format!(
                "role plan {plan_id} was already applied (run {run}, {status})"
            )));
        }
        let options = ApplyOptions {
            allow_mass_change: false,
            approved_plan: Some(plan_id),
        };
        let outcome = apply(pool, config, options)
            .await
            .map_err(ApprovalError::of)?;
        db::mark_approved(pool, plan_id, officer).await?;
        Ok(outcome)
    })
    .await?;
    tracing::info!(
        plan_id,
        run_id = outcome.run_id,
        officer,
        "role plan approved"
    );
    if let Err(e) = post_run(config, RoleRunKind::Apply, &outcome).await {
        tracing::warn!("the role run result was not posted: {e:#}");
    }
    Ok(outcome)
}

/// An officer undoes run `run_id` (the console's Undo), under the pipeline lock.
pub async fn undo_as_officer(
    pool: &PgPool,
    config: &Config,
    run_id: i64,
    officer: &str,
) -> Result<RunOutcome, ApprovalError> {
    require_discord(config)?;
    let outcome = with_pipeline_lock(pool, async {
        if db::changes_of_run(pool, run_id).await?.is_empty() {
            return Err(ApprovalError::NotFound(format!(
                "role run {run_id} does not exist or changed nothing"
            )));
        }
        undo(pool, config, run_id).await.map_err(ApprovalError::of)
    })
    .await?;
    tracing::info!(
        run_id,
        undo_run_id = outcome.run_id,
        officer,
        "role run undone"
    );
    if let Err(e) = post_run(config, RoleRunKind::Undo, &outcome).await {
        tracing::warn!("the role undo result was not posted: {e:#}");
    }
    Ok(outcome)
}

/// What the console and `GET /api/roles/plans/latest` show about the newest stored plan (the
/// HTTP shape is `api::roles::LatestPlan`).
#[derive(Debug, Clone)]
pub struct LatestPlan {
    pub plan_id: i64,
    pub created_at: DateTime<Utc>,
    pub summary: String,
    /// The changes, as stored (`discord_id`, `display_name`, `role`, `action`, `reason`).
    pub changes: serde_json::Value,
    pub linked_members: i64,
    pub members_changed: i64,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    /// The apply run made from it, if any.
    pub applied_run_id: Option<i64>,
    /// Whether a fresh plan is still exactly this one.
    pub current: bool,
    /// Why approving it now would be refused by a guard checked without calling Discord
    /// (sources, staleness, already applied); `None` when those hold. The mass-change guard
    /// is not listed: the approval lifts it. The Discord pre-flight runs on approval.
    pub refusal: Option<String>,
}

/// The newest stored plan with its guard status; `None` when no plan was stored yet.
pub async fn latest(pool: &PgPool, config: &Config) -> Result<Option<LatestPlan>> {
    let Some(row) = db::latest_plan(pool).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    let fresh = build_plan(pool, config, now).await?;
    let applied = db::apply_run_of_plan(pool, row.id).await?;
    let current = fresh.fingerprint == row.fingerprint;
    let refusal = if let Some((run, _)) = applied {
        Some(format!("already applied (run {run})"))
    } else if !current {
        Some("stale: the data changed since this plan was made".to_owned())
    } else {
        match check_sources(pool, config, now).await {
            Ok(()) => None,
            Err(e) => Some(match e.downcast_ref::<Refusal>() {
                Some(refusal) => refusal.0.clone(),
                None => return Err(e),
            }),
        }
    };
    let count = |key: &str| row.plan[key].as_i64().unwrap_or(0);
    Ok(Some(LatestPlan {
        plan_id: row.id,
        created_at: row.created_at,
        summary: row.summary.clone(),
        changes: row.plan["changes"].clone(),
        linked_members: count("linked_members"),
        members_changed: count("members_changed"),
        approved_at: row.approved_at,
        approved_by: row.approved_by,
        applied_run_id: applied.map(|(run, _)| run),
        current,
        refusal,
    }))
}

/// Refuse if the last Battle.net or Discord sync failed, never ran, or is too old.
pub async fn check_sources(pool: &PgPool, config: &Config, now: DateTime<Utc>) -> Result<()> {
    let latest = sync_log::latest_per_source(pool).await?;
    let max_age = chrono::Duration::hours(config.guild_sync_role_max_source_age_hours.max(0));
    for source in [crate::db_sync::SOURCE, crate::discord_sync::SYNC_SOURCE] {
        // The latest finished run decides: a run still going has not produced data yet.
        let Some(run) = latest.iter().find(|r| r.source == source) else {
            refuse!("the {source} sync has never run");
        };
        match run.status {
            RunState::Finished(RunStatus::Success) => {}
            other => refuse!(
                "the last {source} sync (run {}) is {}{}",
                run.id,
                other.as_str(),
                run.error_message
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        }
        let at = run.completed_at.unwrap_or(run.started_at);
        if now - at > max_age {
            refuse!(
                "the last {source} sync finished at {at}, older than {} h (GUILD_SYNC_ROLE_MAX_SOURCE_AGE_HOURS)",
                max_age.num_hours()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Discord REST.

const MANAGE_ROLES: u64 = 1 << 28;
const ADMINISTRATOR: u64 = 1 << 3;

/// A role as `GET /guilds/{g}/roles` returns it, with its permission bits.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleWithPermissions {
    pub id: Snowflake,
    pub name: String,
    #[serde(default)]
    pub position: i64,
    #[serde(default)]
    pub permissions: String,
    #[serde(default)]
    pub managed: bool,
}

#[derive(Debug, Deserialize)]
struct CurrentUser {
    id: Snowflake,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    message: String,
}

/// Discord refused a request in a way that stops the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub status: u16,
    pub code: u64,
    pub message: String,
}

/// The role-sync client: plain REST with Discord's rate-limit headers honoured.
pub struct DiscordRoles {
    http: reqwest::Client,
    base: String,
    token: String,
    pub guild: Snowflake,
    /// Per-bucket wait learned from `X-RateLimit-Remaining: 0` + `Reset-After`.
    buckets: HashMap<String, tokio::time::Instant>,
    /// Requests sent (for the figures).
    pub requests: usize,
}

impl DiscordRoles {
    pub fn new(config: &Config) -> Result<DiscordRoles> {
        let token = config
            .discord_bot_token
            .as_ref()
            .context("the role sync needs DISCORD_BOT_TOKEN and DISCORD_GUILD_ID")?;
        crate::install_crypto_provider();
        Ok(DiscordRoles {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: config.discord_api_url.trim_end_matches('/').to_owned(),
            token: token.expose().to_owned(),
            guild: crate::discord_sync::guild_id(config)?,
            buckets: HashMap::new(),
            requests: 0,
        })
    }

    /// One request, waiting out 429s (bounded) and exhausted buckets. `Ok(Err(stop))` is a
    /// refusal the run must stop at.
    async fn send(
        &mut self,
        method: Method,
        route: &str,
        path: &str,
        reason: Option<&str>,
    ) -> Result<std::result::Result<bytes::Bytes, Stop>> {
        for _ in 0..5 {
            if let Some(until) = self.buckets.get(route) {
                tokio::time::sleep_until(*until).await;
            }
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header("Authorization", format!("Bot {}", self.token));
            if let Some(reason) = reason {
                // The header is URL-encoded per Discord's docs, so names with any text are safe.
                request = request.header(
                    "X-Audit-Log-Reason",
                    url::form_urlencoded::byte_serialize(reason.as_bytes()).collect::<String>(),
                );
            }
            self.requests += 1;
            let response = request
                .send()
                .await
                .with_context(|| format!("Discord {method} {path} failed"))?;
            let status = response.status();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok())
            };
            let reset_after = header("x-ratelimit-reset-after").unwrap_or(0.0);
            if header("x-ratelimit-remaining") == Some(0.0) {
                self.buckets.insert(
                    route.to_owned(),
                    tokio::time::Instant::now() + Duration::from_secs_f64(reset_after.min(60.0)),
                );
            } else {
                self.buckets.remove(route);
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let wait = body["retry_after"].as_f64().unwrap_or(reset_after.max(1.0));
                tokio::time::sleep(Duration::from_secs_f64(wait.clamp(0.0, 60.0))).await;
                continue;
            }
            let body = response.bytes().await?;
            if status.is_success() {
                return Ok(Ok(body));
            }
            let error: ApiError = serde_json::from_slice(&body).unwrap_or(ApiError {
                code: 0,
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
            if status == StatusCode::FORBIDDEN || error.code == 50013 || error.code == 10011 {
                return Ok(Err(Stop {
                    status: status.as_u16(),
                    code: error.code,
                    message: error.message,
                }));
            }
            bail!(
                "Discord {method} {path}: HTTP {status}, code {}: {}",
                error.code,
                error.message
            );
        }
        bail!("Discord {method} {path}: still rate limited after 5 attempts")
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &mut self,
        route: &str,
        path: &str,
    ) -> Result<T> {
        match self.send(Method::GET, route, path, None).await? {
            Ok(body) => serde_json::from_slice(&body)
                .with_context(|| format!("Discord GET {path}: unexpected shape")),
            Err(stop) => bail!(
                "Discord GET {path} refused: HTTP {}, code {}: {}",
                stop.status,
                stop.code,
                stop.message
            ),
        }
    }

    pub async fn roles(&mut self) -> Result<Vec<RoleWithPermissions>> {
        let path = format!("/guilds/{}/roles", self.guild);
        self.get_json("roles", &path).await
    }

    pub async fn member(&mut self, user: &str) -> Result<WireMember> {
        let path = format!("/guilds/{}/members/{user}", self.guild);
        self.get_json("member", &path).await
    }

    pub async fn bot_member(&mut self) -> Result<WireMember> {
        let me: CurrentUser = self.get_json("me", "/users/@me").await?;
        self.member(me.id.as_str()).await
    }

    /// PUT or DELETE one member role.
    pub async fn change_role(
        &mut self,
        user: &str,
        role: &Snowflake,
        action: RoleAction,
        reason: &str,
    ) -> Result<std::result::Result<(), Stop>> {
        let method = match action {
            RoleAction::Add => Method::PUT,
            RoleAction::Remove => Method::DELETE,
        };
        let path = format!("/guilds/{}/members/{user}/roles/{role}", self.guild);
        Ok(self
            .send(method, "member_role", &path, Some(reason))
            .await?
            .map(|_| ()))
    }
}

/// Pre-flight: the bot may manage every managed role, and every managed role exists. Returns
/// the managed roles' ids by lowercased name.
pub fn preflight(
    roles: &[RoleWithPermissions],
    bot: &WireMember,
    guild: &Snowflake,
    managed: &[String],
) -> Result<HashMap<String, Snowflake>> {
    let by_name: HashMap<String, &RoleWithPermissions> =
        roles.iter().map(|r| (r.name.to_lowercase(), r)).collect();
    let missing: Vec<&str> = managed
        .iter()
        .filter(|m| !by_name.contains_key(&m.to_lowercase()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        refuse!(
            "managed role(s) {} do not exist on the Discord server",
            missing.join(", ")
        );
    }
    let by_id: HashMap<&Snowflake, &RoleWithPermissions> =
        roles.iter().map(|r| (&r.id, r)).collect();
    // @everyone has the guild's id and applies to every member.
    let bot_roles: Vec<&RoleWithPermissions> = bot
        .roles
        .iter()
        .chain(std::iter::once(guild))
        .filter_map(|id| by_id.get(id).copied())
        .collect();
    let permissions = bot_roles.iter().fold(0u64, |acc, r| {
        acc | r.permissions.parse::<u64>().unwrap_or(0)
    });
    if permissions & (MANAGE_ROLES | ADMINISTRATOR) == 0 {
        refuse!("the bot lacks the Manage Roles permission");
    }
    let top = bot_roles.iter().map(|r| r.position).max().unwrap_or(0);
    let above: Vec<String> = managed
        .iter()
        .filter_map(|m| by_name.get(&m.to_lowercase()))
        .filter(|r| r.position >= top)
        .map(|r| r.name.clone())
        .collect();
    if !above.is_empty() {
        refuse!(
            "the bot's highest role is not above {}; move the bot's role above them in Server Settings → Roles",
            above.join(", ")
        );
    }
    Ok(managed
        .iter()
        .filter_map(|m| {
            by_name
                .get(&m.to_lowercase())
                .map(|r| (m.to_lowercase(), r.id.clone()))
        })
        .collect())
}

/// How an apply or undo ended (`Serialize`: `guild-sync roles apply|undo --json`; the HTTP
/// shape is `api::roles::RunOutcome`).
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: i64,
    pub status: RoleRunStatus,
    pub reason: Option<String>,
    pub applied: usize,
    pub verified: usize,
    pub requests: usize,
    pub changes: Vec<RoleChangeRow>,
}

/// How the caller permits an apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub allow_mass_change: bool,
    /// Apply only if the fresh plan is exactly this stored plan (an officer's approval).
    pub approved_plan: Option<i64>,
}

/// Build a fresh plan, run every guard, and apply it.
pub async fn apply(pool: &PgPool, config: &Config, options: ApplyOptions) -> Result<RunOutcome> {
    let now = Utc::now();
    check_sources(pool, config, now).await?;
    let plan = build_plan(pool, config, now).await?;
    let mut mass_ok = options.allow_mass_change;
    if let Some(plan_id) = options.approved_plan {
        let stored = db::get_plan(pool, plan_id)
            .await?
            .with_context(|| format!("role plan {plan_id} does not exist"))?;
        if stored.fingerprint != plan.fingerprint {
            refuse!(
                "plan {plan_id} is stale — the data changed since it was made; review the new plan"
            );
        }
        mass_ok = true;
    }
    if !mass_ok {
        check_mass_change(&plan, DEFAULT_MAX_CHANGE_SHARE).map_err(|e| Refusal(e.to_string()))?;
    }
    let mut discord = DiscordRoles::new(config)?;
    let roles = discord.roles().await?;
    let bot = discord.bot_member().await?;
    let managed = policy(pool, config).await?.managed_roles();
    let ids = preflight(&roles, &bot, &discord.guild.clone(), &managed)?;
    let run_id = db::open_run(pool, RoleRunKind::Apply, options.approved_plan, None).await?;
    let steps: Vec<(String, String, RoleAction, String)> = plan
        .changes
        .iter()
        .map(|c| {
            (
                c.discord_id.clone(),
                c.role.clone(),
                c.action,
                c.reason.clone(),
            )
        })
        .collect();
    run_changes(pool, &mut discord, run_id, &ids, &roles, steps).await
}

/// Reverse a run: every change it applied, inverted, in reverse order.
pub async fn undo(pool: &PgPool, config: &Config, undo_of: i64) -> Result<RunOutcome> {
    let changes = db::changes_of_run(pool, undo_of).await?;
    let done: Vec<&RoleChangeRow> = changes.iter().filter(|c| c.result.was_applied()).collect();
    if changes.is_empty() {
        bail!("role run {undo_of} has no recorded changes");
    }
    let mut discord = DiscordRoles::new(config)?;
    let roles = discord.roles().await?;
    let bot = discord.bot_member().await?;
    let names: Vec<String> = done.iter().map(|c| c.role_name.clone()).collect();
    let ids = preflight(&roles, &bot, &discord.guild.clone(), &names)?;
    let run_id = db::open_run(pool, RoleRunKind::Undo, None, Some(undo_of)).await?;
    let steps = done
        .iter()
        .rev()
        .map(|c| {
            (
                c.discord_id.clone(),
                c.role_name.clone(),
                c.action.inverse(),
                format!("guild-sync: undo of role run {undo_of}"),
            )
        })
        .collect();
    run_changes(pool, &mut discord, run_id, &ids, &roles, steps).await
}

async fn run_changes(
    pool: &PgPool,
    discord: &mut DiscordRoles,
    run_id: i64,
    ids: &HashMap<String, Snowflake>,
    server_roles: &[RoleWithPermissions],
    steps: Vec<(String, String, RoleAction, String)>,
) -> Result<RunOutcome> {
    let mut rows: Vec<RoleChangeRow> = Vec::with_capacity(steps.len());
    let mut stop: Option<String> = None;
    let mut result: Result<()> = Ok(());
    for (user, role, action, reason) in &steps {
        let row = |result: ChangeResult, error: Option<String>| RoleChangeRow {
            discord_id: user.clone(),
            role_name: role.clone(),
            role_id: ids.get(&role.to_lowercase()).map(|id| id.to_string()),
            action: *action,
            result,
            error,
        };
        if stop.is_some() || result.is_err() {
            rows.push(row(ChangeResult::NotSent, None));
            continue;
        }
        let Some(role_id) = ids.get(&role.to_lowercase()) else {
            rows.push(row(
                ChangeResult::NotSent,
                Some("role not on the server".into()),
            ));
            continue;
        };
        match discord.change_role(user, role_id, *action, reason).await {
            Ok(Ok(())) => rows.push(row(ChangeResult::Applied, None)),
            Ok(Err(s)) => {
                let why = format!(
                    "Discord refused {} {role} for {user}: HTTP {}, code {}: {}",
                    action.as_str(),
                    s.status,
                    s.code,
                    s.message
                );
                rows.push(row(ChangeResult::Failed, Some(why.clone())));
                stop = Some(why);
            }
            Err(e) => {
                rows.push(row(ChangeResult::Failed, Some(format!("{e:#}"))));
                result = Err(e);
            }
        }
    }
    // Verify: re-read each changed member once.
    let mut verified = 0;
    let mut reread: Vec<WireMember> = Vec::new();
    let users: std::collections::BTreeSet<String> = rows
        .iter()
        .filter(|r| r.result == ChangeResult::Applied)
        .map(|r| r.discord_id.clone())
        .collect();
    for user in users {
        let Ok(member) = discord.member(&user).await else {
            continue;
        };
        for r in rows
            .iter_mut()
            .filter(|r| r.discord_id == user && r.result == ChangeResult::Applied)
        {
            let has = r
                .role_id
                .as_deref()
                .is_some_and(|id| member.roles.iter().any(|m| m.as_str() == id));
            if has == (r.action == RoleAction::Add) {
                r.result = ChangeResult::Verified;
                verified += 1;
            }
        }
        reread.push(member);
    }
    // Store the members' new roles at once, so the next check resolves the rank_mismatch
    // issues this run fixed without waiting for the next member sync.
    let wire: Vec<WireRole> = server_roles
        .iter()
        .map(|r| WireRole {
            id: r.id.clone(),
            name: r.name.clone(),
            position: r.position,
        })
        .collect();
    let ranks = RankRoles::new(&reference::guild_ranks(pool).await?);
    let guild_roles = GuildRoles::new(&wire);
    let rows_now: Vec<_> = reread
        .iter()
        .filter_map(|m| member_row(m, &guild_roles, &ranks))
        .collect();
    // The roles this run changed become `discord_roles_changed` events; their run lives in
    // `role_runs`, not `sync_log`, so the events carry no `run_id`.
    discord_users::upsert(
        &mut *pool.acquire().await?,
        &rows_now,
        None,
        EventSource::unrecorded(),
        Arrival::Found,
    )
    .await?;
    db::insert_changes(pool, run_id, &rows).await?;
    let applied = rows.iter().filter(|r| r.result.was_applied()).count();
    let (status, reason) = match (&stop, &result) {
        (Some(why), _) => (RoleRunStatus::Stopped, Some(why.clone())),
        (None, Err(e)) => (RoleRunStatus::Stopped, Some(format!("{e:#}"))),
        (None, Ok(())) => (RoleRunStatus::Success, None),
    };
    db::close_run(pool, run_id, status, reason.as_deref()).await?;
    tracing::info!(
        run_id,
        applied,
        status = status.as_str(),
        "role run finished"
    );
    Ok(RunOutcome {
        run_id,
        status,
        reason,
        applied,
        verified,
        requests: discord.requests,
        changes: rows,
    })
}
