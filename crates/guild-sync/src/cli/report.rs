//! `guild-sync report [--full] [--stdout]`: send the audit report to Discord (bot channel or
//! webhook, SPEC §6) or print it as text.

use anyhow::{Result, bail};
use serde::Serialize;

use crate::config::Config;
use crate::database::Database;
use crate::discord_sender::DiscordSender;
use crate::reporter;

/// `--stdout --json` stats.
#[derive(Debug, Serialize)]
struct PrintedStats {
    printed: bool,
}

pub async fn run(config: &Config, args: super::ReportArgs) -> Result<()> {
    // Check the destination before touching the database, so a missing setting fails fast.
    let sender = if args.stdout {
        None
    } else {
        match DiscordSender::from_config(config)? {
            Some(sender) => Some(sender),
            None => bail!(
                "no Discord destination configured: set DISCORD_BOT_TOKEN and \
                 DISCORD_AUDIT_CHANNEL_ID, or DISCORD_WEBHOOK_URL (or use --stdout)"
            ),
        }
    };
    let db = Database::open(config).await?;
    let outcome = match &sender {
        None => reporter::render_text_report(&db.pool, args.full)
            .await
            .map(|text| (text, None)),
        // Sending marks issues notified: a write, so under the pipeline lock.
        Some(sender) => super::locked(
            &db.pool,
            &args.stage.lock,
            reporter::send_new_issues_report(&db.pool, sender, args.full),
        )
        .await
        .map(|stats| {
            let human = format!(
                "report: {} issues in {} messages sent to Discord",
                stats.issues, stats.messages_sent
            );
            (human, Some(stats))
        }),
    };
    db.close().await;
    let (human, stats) = outcome?;
    match stats {
        Some(stats) => super::print_stats(args.stage.output.json, &human, &stats),
        None => super::print_stats(
            args.stage.output.json,
            &human,
            &PrintedStats { printed: true },
        ),
    }
}
