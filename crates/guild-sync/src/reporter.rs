//! reporter: loads the issues to report (with display names), renders them through
//! `guild_sync_core::report` and sends them through the [`DiscordSender`]; renders sync
//! summaries. An issue is marked `notified_at` only after Discord accepted the message that
//! carried it, so a failed send leaves it to the next report. It decides nothing about issues.

use std::time::Duration;

use anyhow::{Context, Result};
use guild_sync_core::report::{self, ReportIssue};
use serde::Serialize;
use sqlx::PgPool;

use crate::db::audit_issues::{self, ReportIssueRow};
use crate::db::sync_log::RunCounts;
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
        for (index, message) in messages.iter().enumerate() {
            sender.send(&message.payload()).await.with_context(|| {
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

/// The `GUILD_SYNC_DIGEST` setting: off, or `weekly`; any other value is an error naming it.
pub fn digest_enabled(config: &crate::config::Config) -> Result<bool> {
    match config.guild_sync_digest.as_deref().map(str::trim) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("weekly") => Ok(true),
        Some(v) => anyhow::bail!(
            "GUILD_SYNC_DIGEST must be \"weekly\" or unset, not {:?}",
            v.chars().take(40).collect::<String>()
        ),
    }
}

/// The last seven days' joins, leaves, promotions, demotions and renames, as digest lines.
pub async fn digest_lines(pool: &PgPool) -> Result<Vec<report::DigestLine>> {
    use crate::db::events::{self, EventType};
    use report::{DigestKind, DigestLine};
    let since = chrono::Utc::now() - chrono::Duration::days(7);
    let rows = events::digest_rows(pool, since).await?;
    let text = |v: &Option<serde_json::Value>, key: &str| {
        v.as_ref()
            .and_then(|v| v.get(key))
            .and_then(|s| s.as_str())
            .map(str::to_owned)
    };
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let name = guild_sync_core::integrity::character_label(&row.name, &row.realm_slug);
            let (kind, detail) = match row.event_type {
                EventType::JoinedGuild => (DigestKind::Joined, None),
                EventType::LeftGuild => (DigestKind::Left, None),
                EventType::RankChanged => {
                    let promoted = row
                        .after
                        .as_ref()
                        .and_then(|a| a.get("promoted"))
                        .and_then(|p| p.as_bool())
                        .unwrap_or(false);
                    let from = text(&row.before, "rank").unwrap_or_else(|| "no rank".into());
                    let to = text(&row.after, "rank").unwrap_or_else(|| "no rank".into());
                    let kind = if promoted {
                        DigestKind::Promoted
                    } else {
                        DigestKind::Demoted
                    };
                    (kind, Some(format!("{from} → {to}")))
                }
                EventType::Renamed | EventType::Transferred => {
                    let before = guild_sync_core::integrity::character_label(
                        &text(&row.before, "name").unwrap_or_default(),
                        &text(&row.before, "realm").unwrap_or_default(),
                    );
                    (DigestKind::Renamed, Some(format!("was {before}")))
                }
                _ => return None,
            };
            Some(DigestLine { kind, name, detail })
        })
        .collect())
}

/// Send the weekly digest when a week has passed since the last one (recorded as a run with
/// source `digest`); returns whether one was sent. A quiet week sends nothing but still counts.
pub async fn send_weekly_digest(pool: &PgPool, sender: &DiscordSender) -> Result<bool> {
    if let Some(last) = crate::db::events::last_digest(pool).await?
        && chrono::Utc::now() - last < chrono::Duration::days(7)
    {
        return Ok(false);
    }
    record_run(pool, "digest", |_run_id| async move {
        let lines = digest_lines(pool).await?;
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let sent = match report::render_digest_embed(&today, &lines) {
            Some(embed) => {
                let message =
                    serde_json::json!({ "embeds": [embed], "allowed_mentions": { "parse": [] } });
                sender
                    .send(&message)
                    .await
                    .context("the weekly digest was not accepted by Discord")?;
                true
            }
            None => false,
        };
        let counts = RunCounts::default().found(lines.len() as u64);
        let details = serde_json::json!({ "lines": lines.len(), "sent": sent });
        Ok((sent, RunReport::success(counts, &details)))
    })
    .await
}
