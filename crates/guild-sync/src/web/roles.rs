//! Roles: the Discord role sync for officers (issue 18). The newest stored plan, its changes
//! per member and why approving it would be refused (if it would); *Approve* applies that
//! exact plan through [`crate::role_sync::approve`] (the pipeline lock and every guard
//! included); recent runs with their changes and *Undo*.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use guild_sync_core::roles::{RoleAction, RoleRunKind, RoleRunStatus};
use serde::Deserialize;

use super::session::{CsrfForm, NoFields, Session};
use super::{Chrome, Refused, WebState};
use crate::db::roles::{self as db, NamedChangeRow, RoleRunRow};
use crate::role_sync::{self, ApprovalError, LatestPlan};

/// Members listed with their changes; a bigger plan is summarized beyond them.
pub const MEMBERS_SHOWN: usize = 200;
/// Runs listed.
pub const RUNS_SHOWN: i64 = 10;

/// One member's changes in the plan.
pub struct MemberChanges {
    pub discord_id: String,
    pub name: String,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// A run with its changes.
pub struct RunView {
    pub run: RoleRunRow,
    pub changes: Vec<NamedChangeRow>,
    /// Whether an officer may undo it: an apply that changed something and is not undone.
    pub undoable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "roles.html")]
pub struct RolesPage {
    chrome: Chrome,
    notice: Option<String>,
    mode: String,
    discord_configured: bool,
    plan: Option<LatestPlan>,
    members: Vec<MemberChanges>,
    more_members: usize,
    runs: Vec<RunView>,
}

#[derive(Deserialize)]
pub struct RolesQuery {
    done: Option<String>,
    run: Option<i64>,
}

/// The plan's changes grouped by member, by name.
fn members_of(plan: &LatestPlan) -> Vec<MemberChanges> {
    let mut by_member: BTreeMap<(String, String), MemberChanges> = BTreeMap::new();
    for c in plan.changes.as_array().into_iter().flatten() {
        let text = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
        let (id, name) = (text("discord_id"), text("display_name"));
        let member = by_member
            .entry((name.to_lowercase(), id.clone()))
            .or_insert_with(|| MemberChanges {
                discord_id: id,
                name,
                add: Vec::new(),
                remove: Vec::new(),
            });
        match c["action"].as_str() {
            Some("add") => member.add.push(text("role")),
            _ => member.remove.push(text("role")),
        }
    }
    by_member.into_values().collect()
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<RolesQuery>,
) -> Result<RolesPage, Refused> {
    let pool = &state.app.pool;
    let config = &state.app.config;
    let plan = role_sync::latest(pool, config).await?;
    let mut members = plan.as_ref().map(members_of).unwrap_or_default();
    let more_members = members.len().saturating_sub(MEMBERS_SHOWN);
    members.truncate(MEMBERS_SHOWN);
    let runs = db::recent_runs(pool, RUNS_SHOWN).await?;
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let mut changes = db::changes_of_runs(pool, &ids).await?;
    let runs = runs
        .into_iter()
        .map(|run| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                changes.drain(..).partition(|c| c.run_id == run.id);
            changes = rest;
            let undoable = run.kind == RoleRunKind::Apply
                && run.undone_by.is_none()
                && mine.iter().any(|c| c.result.was_applied());
            RunView {
                run,
                changes: mine,
                undoable,
            }
        })
        .collect();
    let notice = match (query.done.as_deref(), query.run) {
        (Some("applied"), Some(run)) => Some(format!("Plan approved and applied: run {run}.")),
        (Some("undone"), Some(run)) => Some(format!("Undone: run {run} reversed the changes.")),
        _ => None,
    };
    Ok(RolesPage {
        chrome: Chrome::new(&session, "roles"),
        notice,
        mode: config.guild_sync_role_sync.trim().to_lowercase(),
        discord_configured: config.discord_bot_token.is_some() && config.discord_guild_id.is_some(),
        plan,
        members,
        more_members,
        runs,
    })
}

impl From<ApprovalError> for Refused {
    fn from(err: ApprovalError) -> Self {
        match err {
            ApprovalError::NotConfigured(m) => Refused::Unavailable(m),
            ApprovalError::NotFound(m) => Refused::NotFound(m),
            ApprovalError::Conflict(m) => Refused::Conflict(m),
            ApprovalError::Failed(e) => Refused::Internal(e),
        }
    }
}

/// Approve: apply that exact plan if the guards still hold.
pub async fn approve(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<Redirect, Refused> {
    let outcome =
        role_sync::approve(&state.app.pool, &state.app.config, id, &session.officer).await?;
    Ok(Redirect::to(&format!(
        "/roles?done=applied&run={}",
        outcome.run_id
    )))
}

/// Undo: reverse every change a run applied.
pub async fn undo(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<Redirect, Refused> {
    let outcome =
        role_sync::undo_as_officer(&state.app.pool, &state.app.config, id, &session.officer)
            .await?;
    Ok(Redirect::to(&format!(
        "/roles?done=undone&run={}",
        outcome.run_id
    )))
}
