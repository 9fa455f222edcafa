//! reporter: loads the issues to report (with display names), renders them through
//! `guild_sync_core::report` and sends them through the [`DiscordSender`]; renders sync
//! summaries. An issue is marked `notified_at` only after Discord accepted the message that
//! carried it, so a failed send leaves it to the next report. It decides nothing about issues.
//!
//! Sent as the bot, the report's suggestion and orphan lines carry buttons (issue 20) whose
//! `custom_id`s are signed with the database's button key; `discord_interactions` answers them.

use std::time::Duration;

use anyhow::{Context, Result};
use guild_sync_core::report::{self, ReportIssue};
use serde::Serialize;
use sqlx::PgPool;

use crate::db::audit_issues::{self, ReportIssueRow};
use crate::db::sync_log::RunCounts;
use crate::discord_interactions::custom_id::{ButtonId, button_key};
use crate::discord_sender::DiscordSender;
use crate::run_recorder::{RunReport, record_run};

/// What a report run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReportStats {
    /// Issues in the report.
    pub issues: u64,
    /// Messages Discord accepted.
    pub messages_sent: u64,
    /// Issues marked notified.
    pub issues_notified: u64,
}

fn to_report_issue(row: ReportIssueRow) -> ReportIssue {
    ReportIssue {
        id: row.id,
        issue_type: row.issue_type,
        severity: Some(row.severity),
        summary: row.summary,
        reason: row.reason,
        character_name: row.character_name,
        realm_slug: row.realm_slug,
        discord_username: row.discord_username,
        discord_display_name: row.discord_display_name,
        player_name: row.player_name,
    }
}

async fn load(pool: &PgPool, force_full: bool) -> Result<Vec<ReportIssue>> {
    Ok(audit_issues::report_issues(pool, force_full)
        .await
        .context("cannot load the audit issues to report")?
        .into_iter()
        .map(to_report_issue)
        .collect())
}

/// Send the issues not yet notified (all unresolved ones with `force_full`); marks them
/// notified only once Discord accepted the message carrying them. Nothing to report sends
/// nothing. Recorded as a run with source `'report'`.
pub async fn send_new_issues_report(
    pool: &PgPool,
    sender: &DiscordSender,
    force_full: bool,
) -> Result<ReportStats> {
    record_run(pool, "report", |_run_id| async move {
        let issues = load(pool, force_full).await?;
        let messages = report::render_messages(&issues, force_full);
        let mut stats = ReportStats {
            issues: issues.len() as u64,
            ..ReportStats::default()
        };
        let total = messages.len();
        let key = if sender.posts_as_bot() && messages.iter().any(|m| !m.buttons.is_empty()) {
            Some(button_key(pool).await?)
        } else {
            None
        };
        for (index, message) in messages.iter().enumerate() {
            let payload = match &key {
                Some(key) => message
                    .payload_with_buttons(|button| ButtonId::of_report_button(button).sign(key)),
                None => message.payload(),
            };
            sender.send(&payload).await.with_context(|| {
                format!(
                    "report message {} of {total} was not accepted by Discord; its {} issues stay un-notified",
                    index + 1,
                    message.issue_ids.len()
                )
            })?;
            stats.messages_sent += 1;
            stats.issues_notified += audit_issues::mark_notified(pool, &message.issue_ids)
                .await
                .context("Discord accepted the report but marking its issues notified failed")?;
        }
        let counts = RunCounts::default().found(stats.issues);
        Ok((stats.clone(), RunReport::success(counts, &stats)))
    })
    .await
}

/// The same report as plain text for the terminal (marks nothing notified).
pub async fn render_text_report(pool: &PgPool, force_full: bool) -> Result<String> {
    let issues = load(pool, force_full).await?;
    Ok(report::render_text(&issues, force_full))
}

/// Send a summary of one sync run when something notable happened (new, removed, linked,
/// resolved or failed things, or an error/partial status). Returns whether one was sent.
pub async fn send_sync_summary(
    sender: &DiscordSender,
    source: &str,
    stats: &serde_json::Value,
    duration: Duration,
) -> Result<bool> {
    let Some(embed) = report::render_sync_summary(source, stats, duration.as_secs_f64()) else {
        return Ok(false);
    };
    let message = serde_json::json!({ "embeds": [embed], "allowed_mentions": { "parse": [] } });
    sender
        .send(&message)
        .await
        .with_context(|| format!("the {source} sync summary was not accepted by Discord"))?;
    Ok(true)
}
