//! Role sync tables: `role_plans` (stored plans officers approve), `role_runs` and
//! `role_changes` (every change an apply or undo made), and the one query that loads what the
//! role plan needs (present Discord members with their player's ranks and last departure).

use anyhow::Result;
use chrono::{DateTime, Utc};
use guild_sync_core::roles::{ChangeResult, RoleAction, RoleRunKind, RoleRunStatus};
use serde::Serialize;
use sqlx::PgExecutor;

use super::{Text, decodes_text};

decodes_text!(RoleRunKind, "role_runs.kind", RoleRunKind::parse);
decodes_text!(RoleRunStatus, "role_runs.status", RoleRunStatus::parse);
decodes_text!(RoleAction, "role_changes.action", RoleAction::parse);
decodes_text!(ChangeResult, "role_changes.result", ChangeResult::parse);

/// A present Discord member with the player behind them, aggregated in SQL.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberRankRow {
    pub discord_id: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub player_id: Option<i32>,
    pub player_name: Option<String>,
    pub present_rank_levels: Vec<i32>,
    pub present_characters: i64,
    pub last_departure: Option<DateTime<Utc>>,
}

/// Every present Discord member, with the ranks of their player's characters in the guild and
/// the latest departure among the player's characters (as the open `former_member_has_role`
/// issue recorded it, when there is one).
pub async fn members_for_plan(db: impl PgExecutor<'_>) -> Result<Vec<MemberRankRow>> {
    Ok(sqlx::query_as(
        "SELECT du.discord_id,
                COALESCE(NULLIF(du.display_name, ''), du.username) AS display_name,
                du.all_guild_roles AS roles,
                p.id AS player_id,
                p.display_name AS player_name,
                COALESCE(array_agg(gr.level) FILTER (WHERE wc.removed_at IS NULL
                                                     AND gr.level IS NOT NULL), '{}') AS present_rank_levels,
                count(wc.id) FILTER (WHERE wc.removed_at IS NULL) AS present_characters,
                -- The grace period counts from the departure the open former_member_has_role
                -- issue recorded (issue 19); before a check has raised it, from the rows.
                COALESCE((SELECT (a.details->>'left_at')::timestamptz
                          FROM guild_identity.audit_issues a
                          WHERE a.issue_type = 'former_member_has_role' AND a.player_id = p.id
                            AND a.resolved_at IS NULL
                          LIMIT 1),
                         max(wc.removed_at)) AS last_departure
         FROM guild_identity.discord_users du
         LEFT JOIN guild_identity.players p ON p.discord_user_id = du.id
         LEFT JOIN guild_identity.player_characters pc ON pc.player_id = p.id
         LEFT JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE du.is_present
         GROUP BY du.id, p.id
         ORDER BY du.discord_id",
    )
    .fetch_all(db)
    .await?)
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RolePlanRow {
    pub id: i64,
    pub fingerprint: String,
    pub plan: serde_json::Value,
    pub summary: String,
    pub created_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    /// When its summary went to the audit channel.
    pub posted_at: Option<DateTime<Utc>>,
}

/// The newest stored plan.
pub async fn latest_plan(db: impl PgExecutor<'_>) -> Result<Option<RolePlanRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM guild_identity.role_plans ORDER BY id DESC LIMIT 1")
            .fetch_optional(db)
            .await?,
    )
}

/// The fingerprint of the plan whose summary was posted last.
pub async fn last_posted_fingerprint(db: impl PgExecutor<'_>) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT fingerprint FROM guild_identity.role_plans
         WHERE posted_at IS NOT NULL ORDER BY posted_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await?)
}

/// Record that a plan's summary went to the audit channel.
pub async fn mark_posted(db: impl PgExecutor<'_>, plan_id: i64) -> Result<()> {
    sqlx::query("UPDATE guild_identity.role_plans SET posted_at = now() WHERE id = $1")
        .bind(plan_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Record who approved a plan.
pub async fn mark_approved(db: impl PgExecutor<'_>, plan_id: i64, officer: &str) -> Result<()> {
    sqlx::query(
        "UPDATE guild_identity.role_plans SET approved_at = now(), approved_by = $2 WHERE id = $1",
    )
    .bind(plan_id)
    .bind(officer)
    .execute(db)
    .await?;
    Ok(())
}

/// The apply run made from a plan, if any: `(run id, status)`.
pub async fn apply_run_of_plan(
    db: impl PgExecutor<'_>,
    plan_id: i64,
) -> Result<Option<(i64, RoleRunStatus)>> {
    let row: Option<(i64, Text)> = sqlx::query_as(
        "SELECT id, status FROM guild_identity.role_runs
         WHERE plan_id = $1 AND kind = 'apply' ORDER BY id LIMIT 1",
    )
    .bind(plan_id)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some((id, status)) => Some((id, status.try_into()?)),
        None => None,
    })
}

/// A role run as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleRunRow {
    pub id: i64,
    #[sqlx(try_from = "Text")]
    pub kind: RoleRunKind,
    pub plan_id: Option<i64>,
    pub undoes_run_id: Option<i64>,
    /// The undo run that reversed this one, if any.
    pub undone_by: Option<i64>,
    #[sqlx(try_from = "Text")]
    pub status: RoleRunStatus,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The newest runs.
pub async fn recent_runs(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<RoleRunRow>> {
    Ok(sqlx::query_as(
        "SELECT r.id, r.kind, r.plan_id, r.undoes_run_id,
                (SELECT max(u.id) FROM guild_identity.role_runs u WHERE u.undoes_run_id = r.id)
                    AS undone_by,
                r.status, r.reason, r.started_at, r.completed_at
         FROM guild_identity.role_runs r ORDER BY r.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A recorded change with the member's name, for the console.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NamedChangeRow {
    pub run_id: i64,
    pub discord_id: String,
    pub display_name: Option<String>,
    pub role_name: String,
    #[sqlx(try_from = "Text")]
    pub action: RoleAction,
    #[sqlx(try_from = "Text")]
    pub result: ChangeResult,
    pub error: Option<String>,
}

/// The changes of several runs at once, with the members' current names.
pub async fn changes_of_runs(
    db: impl PgExecutor<'_>,
    run_ids: &[i64],
) -> Result<Vec<NamedChangeRow>> {
    Ok(sqlx::query_as(
        "SELECT c.run_id, c.discord_id,
                COALESCE(NULLIF(du.display_name, ''), du.username) AS display_name,
                c.role_name, c.action, c.result, c.error
         FROM guild_identity.role_changes c
         LEFT JOIN guild_identity.discord_users du ON du.discord_id = c.discord_id
         WHERE c.run_id = ANY($1) ORDER BY c.run_id DESC, c.id",
    )
    .bind(run_ids)
    .fetch_all(db)
    .await?)
}

/// Store a plan; returns its id.
pub async fn insert_plan(
    db: impl PgExecutor<'_>,
    fingerprint: &str,
    plan: &serde_json::Value,
    summary: &str,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO guild_identity.role_plans (fingerprint, plan, summary)
         VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(fingerprint)
    .bind(plan)
    .bind(summary)
    .fetch_one(db)
    .await?)
}

pub async fn get_plan(db: impl PgExecutor<'_>, id: i64) -> Result<Option<RolePlanRow>> {
    Ok(
        sqlx::query_as("SELECT * FROM guild_identity.role_plans WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// One change as recorded in `role_changes`. `Serialize`: a role run's outcome lists its
/// changes in `guild-sync roles apply|undo --json` (the HTTP shape is `api::roles`').
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct RoleChangeRow {
    pub discord_id: String,
    pub role_name: String,
    pub role_id: Option<String>,
    #[sqlx(try_from = "Text")]
    pub action: RoleAction,
    #[sqlx(try_from = "Text")]
    pub result: ChangeResult,
    pub error: Option<String>,
}

/// Record a batch of changes of one run (UNNEST: one statement).
pub async fn insert_changes(
    db: impl PgExecutor<'_>,
    run_id: i64,
    changes: &[RoleChangeRow],
) -> Result<u64> {
    let col = |f: fn(&RoleChangeRow) -> Option<String>| -> Vec<Option<String>> {
        changes.iter().map(f).collect()
    };
    Ok(sqlx::query(
        "INSERT INTO guild_identity.role_changes
             (run_id, discord_id, role_name, role_id, action, result, error)
         SELECT $1, d, n, i, a, r, e
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
              AS t (d, n, i, a, r, e)",
    )
    .bind(run_id)
    .bind(col(|c| Some(c.discord_id.clone())))
    .bind(col(|c| Some(c.role_name.clone())))
    .bind(col(|c| c.role_id.clone()))
    .bind(col(|c| Some(c.action.as_str().to_owned())))
    .bind(col(|c| Some(c.result.as_str().to_owned())))
    .bind(col(|c| c.error.clone()))
    .execute(db)
    .await?
    .rows_affected())
}

/// The changes of a run, in the order they were made.
pub async fn changes_of_run(db: impl PgExecutor<'_>, run_id: i64) -> Result<Vec<RoleChangeRow>> {
    Ok(sqlx::query_as(
        "SELECT discord_id, role_name, role_id, action, result, error
         FROM guild_identity.role_changes WHERE run_id = $1 ORDER BY id",
    )
    .bind(run_id)
    .fetch_all(db)
    .await?)
}

/// Open a run (`apply` or `undo`); returns its id.
pub async fn open_run(
    db: impl PgExecutor<'_>,
    kind: RoleRunKind,
    plan_id: Option<i64>,
    undoes_run_id: Option<i64>,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO guild_identity.role_runs (kind, plan_id, undoes_run_id, status)
         VALUES ($1, $2, $3, 'running') RETURNING id",
    )
    .bind(kind.as_str())
    .bind(plan_id)
    .bind(undoes_run_id)
    .fetch_one(db)
    .await?)
}

/// Close a run with its status (`success`, `stopped`, `refused`) and reason.
pub async fn close_run(
    db: impl PgExecutor<'_>,
    run_id: i64,
    status: RoleRunStatus,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE guild_identity.role_runs SET status = $2, reason = $3, completed_at = now()
         WHERE id = $1",
    )
    .bind(run_id)
    .bind(status.as_str())
    .bind(reason)
    .execute(db)
    .await?;
    Ok(())
}
