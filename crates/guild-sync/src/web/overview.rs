//! Overview: the last run of every stage, open issues per type, the next scheduled runs, and
//! buttons that trigger each pipeline.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::session::{CsrfForm, NoFields, Session};
use super::{Chrome, Refused, WebState};
use crate::db::member_events::{self, EventLine};
use crate::db::sync_log::SyncLogRow;
use crate::scheduler::PipelineKind;

#[derive(Template, WebTemplate)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    notice: Option<String>,
    runs: Vec<SyncLogRow>,
    issue_counts: Vec<(String, i64)>,
    open_total: i64,
    next_runs: Vec<(&'static str, String)>,
    /// Events of the last seven days per type, and the latest of them (issue 19).
    week_counts: Vec<(String, i64)>,
    week_latest: Vec<EventLine>,
    /// The public claim page to send members, when claims work (issue 17).
    claim_url: Option<String>,
}

/// The "this week" panel's window.
const WEEK: chrono::Duration = chrono::Duration::days(7);
/// Latest events the panel lists.
const WEEK_LATEST: i64 = 10;

#[derive(Deserialize)]
pub struct OverviewQuery {
    started: Option<i64>,
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<OverviewQuery>,
) -> Result<OverviewPage, Refused> {
    let pool = &state.app.pool;
    let runs = crate::db::sync_log::latest_per_source(pool).await?;
    let issue_counts = crate::db::console_pages::open_issue_counts(pool).await?;
    let open_total = issue_counts.iter().map(|(_, n)| n).sum();
    let now = Utc::now();
    let mut next_runs = Vec::new();
    match &state.schedule.blizzard_cron {
        Some(cron) => next_runs.push((
            "Battle.net",
            cron.after(&now)
                .next()
                .map_or("never".into(), |t| when(t, now)),
        )),
        None => next_runs.push(("Battle.net", "not scheduled (not configured)".into())),
    }
    match state.schedule.discord_interval {
        Some(interval) => {
            let last = runs
                .iter()
                .find(|r| r.source == PipelineKind::Discord.source())
                .map(|r| r.started_at);
            let text =
                match last.and_then(|t| chrono::Duration::from_std(interval).ok().map(|d| t + d)) {
                    Some(next) if next > now => when(next, now),
                    _ => format!("within {} minutes", interval.as_secs() / 60),
                };
            next_runs.push(("Discord", text));
        }
        None => next_runs.push(("Discord", "not scheduled (not configured)".into())),
    }
    next_runs.push(("Addon", "when an export is uploaded".into()));
    let since = now - WEEK;
    let week_counts = member_events::counts_since(pool, since).await?;
    let week_latest = member_events::feed(
        pool,
        &member_events::EventFilter {
            since: Some(since),
            ..Default::default()
        },
        WEEK_LATEST,
        member_events::FeedStart::Offset(0),
    )
    .await?
    .0
    .iter()
    .map(EventLine::from)
    .collect();
    Ok(OverviewPage {
        chrome: Chrome::new(&session, "overview"),
        notice: query.started.map(|id| {
            format!("Started: run {id}. Its row below turns from running to the outcome.")
        }),
        runs,
        issue_counts,
        open_total,
        next_runs,
        week_counts,
        week_latest,
        claim_url: claim_url(&state),
    })
}

/// The claim page's public URL when members can claim: Discord and Battle.net configured and
/// their URLs valid (the clients were built), so the link an officer copies works.
fn claim_url(state: &WebState) -> Option<String> {
    state
        .claims
        .as_ref()
        .filter(|claims| claims.claims_enabled())
        .and_then(|_| crate::claims::claim_url(&state.app.config))
}

fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = (t - now).num_minutes();
    let rel = if minutes < 60 {
        format!("in {minutes} min")
    } else {
        format!("in {} h {} min", minutes / 60, minutes % 60)
    };
    format!("{} UTC ({rel})", t.format("%Y-%m-%d %H:%M"))
}

/// Start a pipeline (`blizzard`, `discord` or `report`).
pub async fn trigger(
    State(state): State<WebState>,
    Path(kind): Path<String>,
    _: CsrfForm<NoFields>,
) -> Result<Redirect, Refused> {
    let kind = match kind.as_str() {
        "blizzard" => PipelineKind::Blizzard,
        "discord" => PipelineKind::Discord,
        "report" => PipelineKind::Report,
        other => {
            return Err(Refused::NotFound(format!(
                "no pipeline {other:?}; use blizzard, discord or report"
            )));
        }
    };
    let id = state.app.scheduler.trigger(kind).await?;
    tracing::info!(sync_log_id = id, "pipeline triggered from the console");
    Ok(Redirect::to(&format!("/?started={id}")))
}
