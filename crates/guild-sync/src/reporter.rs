//! reporter: renders audit issues and sync summaries and sends them through the
//! [`crate::discord_sender::DiscordSender`]. (Issue 6 builds this.)

use anyhow::{Result, bail};
use serde::Serialize;
use sqlx::PgPool;

use crate::discord_sender::DiscordSender;

/// What a report run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportStats {}

/// Send the issues not yet notified (all unresolved ones with `force_full`); marks them
/// notified only once Discord accepted the message carrying them.
pub async fn send_new_issues_report(
    _pool: &PgPool,
    _sender: &DiscordSender,
    _force_full: bool,
) -> Result<ReportStats> {
    bail!("the reporter is not built yet (issue 6)")
}

/// The same report as plain text for the terminal (marks nothing notified).
pub async fn render_text_report(_pool: &PgPool, _force_full: bool) -> Result<String> {
    bail!("the reporter is not built yet (issue 6)")
}
