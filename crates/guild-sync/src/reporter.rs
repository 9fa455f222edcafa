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
use crate::db::member_events::{self, EventRow, EventType};
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

/// How often the digest goes out, and the window it covers when none went out before.
pub const DIGEST_PERIOD: chrono::Duration = chrono::Duration::days(7);
/// Most events one digest reads (far beyond a week of a 1,000-character guild).
const DIGEST_MAX_EVENTS: i64 = 5_000;
/// Discord's message content limit is 2,000 characters; the rest is summarised as "… and N more".
const DIGEST_MAX_CHARS: usize = 1_900;
/// `sync_log.source` of a sent digest: the last one's time is when the next is due.
pub const DIGEST_SOURCE: &str = "digest";

/// The digest's text for `events` (oldest first): joined, left, promoted, demoted and renamed,
/// with names (Discord markdown escaped), bounded to one message. `None` when nothing happened.
pub fn render_digest(events: &[EventRow]) -> Option<String> {
    let mut sections: [(&str, Vec<String>); 5] = [
        ("Joined", Vec::new()),
        ("Left", Vec::new()),
        ("Promoted", Vec::new()),
        ("Demoted", Vec::new()),
        ("Renamed", Vec::new()),
    ];
    for event in events {
        let text = report::escape_markdown(&event.describe());
        let slot = match event.event_type {
            EventType::JoinedGuild => 0,
            EventType::LeftGuild => 1,
            EventType::RankChanged if event.promotion() == Some(true) => 2,
            EventType::RankChanged if event.promotion() == Some(false) => 3,
            EventType::Renamed => 4,
            _ => continue,
        };
        sections[slot].1.push(text);
    }
    if sections.iter().all(|(_, lines)| lines.is_empty()) {
        return None;
    }
    let mut out = String::from("**This week in the guild**");
    let mut left_out = 0usize;
    for (title, lines) in &sections {
        if lines.is_empty() {
            continue;
        }
        let head = format!("\n**{title}** ({})", lines.len());
        if out.len() + head.len() > DIGEST_MAX_CHARS {
            left_out += lines.len();
            continue;
        }
        out.push_str(&head);
        for line in lines {
            if out.len() + line.len() + 3 > DIGEST_MAX_CHARS {
                left_out += 1;
                continue;
            }
            out.push_str("\n• ");
            out.push_str(line);
        }
    }
    if left_out > 0 {
        out.push_str(&format!("\n… and {left_out} more (see the console)"));
    }
    Some(out)
}

/// The digest's events when one is due: since the last digest sent (at most
/// [`DIGEST_PERIOD`] back), or `None` when the last went out less than a period ago.
async fn due_digest_events(pool: &PgPool) -> Result<Option<Vec<EventRow>>> {
    let now = chrono::Utc::now();
    let last = crate::db::sync_log::last_success(pool, DIGEST_SOURCE).await?;
    if last.is_some_and(|at| now - at < DIGEST_PERIOD) {
        return Ok(None);
    }
    let since = last.map_or(now - DIGEST_PERIOD, |at| at.max(now - DIGEST_PERIOD));
    Ok(Some(
        member_events::digest_events(pool, since, DIGEST_MAX_EVENTS)
            .await
            .context("cannot load the digest's events")?,
    ))
}

/// Send the weekly digest if one is due (`GUILD_SYNC_DIGEST=weekly`), recorded as a
/// `digest` run so the next is due a week later. Returns whether one was sent.
pub async fn send_weekly_digest(pool: &PgPool, sender: &DiscordSender) -> Result<bool> {
    let Some(events) = due_digest_events(pool).await? else {
        return Ok(false);
    };
    record_run(pool, DIGEST_SOURCE, |_run_id| async move {
        let text = render_digest(&events);
        if let Some(text) = &text {
            let message =
                serde_json::json!({ "content": text, "allowed_mentions": { "parse": [] } });
            sender
                .send(&message)
                .await
                .context("the weekly digest was not accepted by Discord")?;
        }
        let sent = text.is_some();
        let counts = RunCounts::default().found(events.len() as u64);
        Ok((
            sent,
            RunReport::success(counts, &serde_json::json!({ "sent": sent })),
        ))
    })
    .await
}

/// The digest as text for the terminal when one is due (records nothing).
pub async fn render_weekly_digest(pool: &PgPool) -> Result<Option<String>> {
    Ok(due_digest_events(pool)
        .await?
        .and_then(|events| render_digest(&events)))
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    fn event(event_type: &str, before: serde_json::Value, after: serde_json::Value) -> EventRow {
        EventRow {
            id: 1,
            event_type: EventType::parse(event_type).expect("a known event type"),
            occurred_at: chrono::Utc::now(),
            actor: member_events::Actor::Engine,
            run_id: None,
            character_id: Some(1),
            character_name: Some(after["name"].as_str().unwrap_or("Thrall").into()),
            realm_slug: Some("senjin".into()),
            discord_user_id: None,
            discord_name: None,
            player_id: None,
            player_name: None,
            before: Some(before),
            after: Some(after),
        }
    }

    #[test]
    fn the_digest_lists_joins_leaves_promotions_demotions_and_renames_with_escaped_names() {
        use serde_json::json;
        let events = vec![
            event(
                "joined_guild",
                json!(null),
                json!({"name": "Zul_jin", "rank": "Initiate"}),
            ),
            event("left_guild", json!({"name": "Garrosh"}), json!(null)),
            event(
                "rank_changed",
                json!({"rank": "Member", "rank_index": 3}),
                json!({"rank": "Veteran", "rank_index": 2}),
            ),
            event(
                "rank_changed",
                json!({"rank": "Officer", "rank_index": 1}),
                json!({"rank": "Member", "rank_index": 3}),
            ),
            event(
                "renamed",
                json!({"name": "Arthas"}),
                json!({"name": "Deathknight"}),
            ),
            event("discord_joined", json!(null), json!({"display_name": "x"})),
        ];
        let text = render_digest(&events).expect("a digest");
        assert_eq!(
            text,
            "**This week in the guild**\n**Joined** (1)\n• Zul\\_jin joined the guild as Initiate\
             \n**Left** (1)\n• Garrosh left the guild\
             \n**Promoted** (1)\n• Thrall promoted from Member to Veteran\
             \n**Demoted** (1)\n• Thrall demoted from Officer to Member\
             \n**Renamed** (1)\n• Arthas renamed to Deathknight"
        );
        assert_eq!(
            render_digest(&events[5..]),
            None,
            "nothing the digest lists"
        );
    }

    #[test]
    fn a_long_digest_stays_within_one_message() {
        use serde_json::json;
        let events: Vec<EventRow> = (0..500)
            .map(|i| {
                event(
                    "joined_guild",
                    json!(null),
                    json!({"name": format!("Member{i}")}),
                )
            })
            .collect();
        let text = render_digest(&events).unwrap();
        assert!(text.chars().count() <= 2000, "{}", text.len());
        assert!(text.contains("**Joined** (500)"));
        assert!(text.ends_with("more (see the console)"), "{text}");
    }
}
