//! The stage functions a pipeline calls, behind the [`Stages`] trait: [`ProductionStages`]
//! calls the real modules (tests inject recording implementations). Each method returns its
//! stage's own stats type, which the scheduler files under the matching [`StageStats`]
//! variant, and each stage records its own `sync_log` row.
//!
//! With a Discord sender configured, [`ProductionStages`] also posts a sync summary to the
//! audit channel after a sync step when something notable happened (SPEC §5): something new,
//! removed, returned or failed, or the sync failed or was refused. The summary is a courtesy:
//! if Discord refuses it, the sync still counts.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::PgPool;

use super::pipeline::{AddonInput, PipelineKind, ReportOutcome, Step};
use crate::config::{Config, RemovalGuard};
use crate::db::admin::Analyzed;
use crate::db_sync::addon::AddonSyncStats;
use crate::db_sync::{BlizzardInput, BlizzardSyncStats};
use crate::discord_sender::DiscordSender;
use crate::discord_sync::{DiscordInput, DiscordSyncStats};
use crate::identity_engine::MatchStats;
use crate::integrity_checker::CheckStats;

/// The stage functions a pipeline calls, one per [`Step`], each returning its own stats.
pub trait Stages: Send + Sync + 'static {
    fn blizzard_sync(&self) -> BoxFuture<'_, Result<BlizzardSyncStats>>;
    fn discord_sync(&self) -> BoxFuture<'_, Result<DiscordSyncStats>>;
    fn addon_sync<'a>(&'a self, input: &'a AddonInput) -> BoxFuture<'a, Result<AddonSyncStats>>;
    fn run_matching(&self) -> BoxFuture<'_, Result<MatchStats>>;
    fn integrity_check(&self) -> BoxFuture<'_, Result<CheckStats>>;
    fn report(&self) -> BoxFuture<'_, Result<ReportOutcome>>;

    /// Why `kind` cannot do its job with this configuration (settings it needs are missing),
    /// or `None`. A trigger refuses such a run up front, naming the settings, rather than
    /// accepting it and recording a failure the officer has to go and find.
    fn not_ready(&self, _kind: &PipelineKind) -> Option<String> {
        None
    }
}

/// What the report step does with the report.
pub enum ReportMode {
    /// Send new issues through Discord; `None` (no sender configured) logs and skips the send.
    Send(Option<DiscordSender>),
    /// Render the text report into the step's [`ReportOutcome::Rendered`].
    Text,
}

/// Where [`ProductionStages`] read their sources and what they do with the results.
pub struct StageInputs {
    pub blizzard: BlizzardInput,
    pub discord: DiscordInput,
    /// How many departures a sync may apply at once.
    pub guard: RemovalGuard,
    pub report: ReportMode,
    /// Report every unresolved issue, not only those not yet notified (the demo and the
    /// benchmark show the whole picture; the service reports what is new).
    pub full_report: bool,
    /// Progress bars on the terminal (the `pipeline` command without `--json`).
    pub show_progress: bool,
}

impl StageInputs {
    /// The service's inputs: live APIs, the configured removal guard, new issues sent through
    /// `sender`.
    pub fn service(config: &Config, sender: Option<DiscordSender>) -> StageInputs {
        StageInputs {
            blizzard: BlizzardInput::Live,
            discord: DiscordInput::Live,
            guard: RemovalGuard::from_config(config, false),
            report: ReportMode::Send(sender),
            full_report: false,
            show_progress: false,
        }
    }

    /// Files on disk for both syncs, the whole report rendered as text (the demo, the
    /// benchmark).
    pub fn files(
        config: &Config,
        blizzard_dir: std::path::PathBuf,
        discord_file: std::path::PathBuf,
    ) -> StageInputs {
        StageInputs {
            blizzard: BlizzardInput::Dir(blizzard_dir),
            discord: DiscordInput::File(discord_file),
            guard: RemovalGuard::from_config(config, false),
            report: ReportMode::Text,
            full_report: true,
            show_progress: false,
        }
    }
}

/// The real stages: the Battle.net and Discord syncs, the matcher, the checker, the reporter.
pub struct ProductionStages {
    pool: PgPool,
    config: Config,
    inputs: StageInputs,
}

impl ProductionStages {
    pub fn new(pool: PgPool, config: Config, inputs: StageInputs) -> Self {
        ProductionStages {
            pool,
            config,
            inputs,
        }
    }

    /// Stages for the service (see [`StageInputs::service`]).
    pub fn for_service(pool: PgPool, config: Config, sender: Option<DiscordSender>) -> Self {
        let inputs = StageInputs::service(&config, sender);
        Self::new(pool, config, inputs)
    }

    fn sender(&self) -> Option<&DiscordSender> {
        match &self.inputs.report {
            ReportMode::Send(sender) => sender.as_ref(),
            ReportMode::Text => None,
        }
    }

    /// Run a sync step and post its summary when something notable happened.
    async fn summarized<T: Serialize>(
        &self,
        step: Step,
        sync: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = sync.await;
        if let Some(sender) = self.sender() {
            let stats = match &result {
                Ok(stats) => serde_json::to_value(stats).unwrap_or_default(),
                Err(err) => serde_json::json!({ "status": "error", "error": format!("{err:#}") }),
            };
            post_summary(sender, step, &stats, started.elapsed()).await;
        }
        result
    }
}

/// Whether a stage that wrote `changed` of the `seen` rows it looked at changed enough of a
/// table for its planner statistics to be out of date: autovacuum's own rule (50 rows and a
/// tenth of the table, `autovacuum_analyze_threshold` and `_scale_factor`), applied at once.
///
/// Why not leave it to autovacuum: it looks once a minute, and the next stages of the same
/// pipeline run within milliseconds. Right after a first load the planner still believes
/// `wow_characters` holds a dozen in-guild rows and answers the check's per-player queries with
/// nested loops over all of them: 100–290 ms each at 1,000 characters (EXPLAIN ANALYZE through
/// auto_explain, issue 21), where correct statistics give hash joins of a few milliseconds.
fn statistics_stale(changed: usize, seen: usize) -> bool {
    changed >= 50 && changed.saturating_mul(10) >= seen
}

/// After a stage's bulk write, refresh `tables`' statistics when [`statistics_stale`] says so.
/// A failure is logged, not the stage's: the data is written, only the plans may be slower.
async fn refresh_statistics(pool: &PgPool, tables: Analyzed, changed: usize, seen: usize) {
    if !statistics_stale(changed, seen) {
        return;
    }
    if let Err(err) = crate::db::admin::analyze(pool, tables).await {
        tracing::warn!(error = %format!("{err:#}"), "planner statistics not refreshed");
    }
}

/// The source name a sync summary is titled with.
fn summary_source(step: Step) -> &'static str {
    match step {
        Step::BlizzardSync => "blizzard",
        Step::DiscordSync => "discord",
        Step::AddonSync => "addon",
        other => other.as_str(),
    }
}

async fn post_summary(
    sender: &DiscordSender,
    step: Step,
    stats: &serde_json::Value,
    elapsed: Duration,
) {
    let source = summary_source(step);
    match crate::reporter::send_sync_summary(sender, source, stats, elapsed).await {
        Ok(true) => tracing::info!(source, "sync summary sent"),
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(source, error = %format!("{err:#}"), "the sync summary was not sent")
        }
    }
}

impl Stages for ProductionStages {
    fn not_ready(&self, kind: &PipelineKind) -> Option<String> {
        let set = |missing: Vec<&str>| missing.join(", ");
        for step in kind.steps() {
            match step {
                Step::BlizzardSync if matches!(self.inputs.blizzard, BlizzardInput::Live) => {
                    let missing = self.config.missing_blizzard_settings();
                    if !missing.is_empty() {
                        return Some(format!(
                            "the Battle.net sync is not configured: set {}",
                            set(missing)
                        ));
                    }
                }
                Step::DiscordSync if matches!(self.inputs.discord, DiscordInput::Live) => {
                    let missing = self.config.missing_discord_settings();
                    if !missing.is_empty() {
                        return Some(format!(
                            "the Discord member sync is not configured: set {}",
                            set(missing)
                        ));
                    }
                }
                // A report is the whole point of the report pipeline only; after a sync, an
                // unsent report is logged and the sync still counts.
                Step::Report
                    if *kind == PipelineKind::Report
                        && matches!(self.inputs.report, ReportMode::Send(None)) =>
                {
                    return Some(
                        "no Discord sender is configured: set DISCORD_BOT_TOKEN with \
                         DISCORD_AUDIT_CHANNEL_ID, or DISCORD_WEBHOOK_URL"
                            .to_string(),
                    );
                }
                _ => {}
            }
        }
        None
    }

    fn blizzard_sync(&self) -> BoxFuture<'_, Result<BlizzardSyncStats>> {
        async move {
            let stats = self
                .summarized(
                    Step::BlizzardSync,
                    crate::db_sync::run(
                        &self.pool,
                        &self.config,
                        self.inputs.blizzard.clone(),
                        self.inputs.guard,
                        self.inputs.show_progress,
                    ),
                )
                .await?;
            let changed = stats.new + stats.updated + stats.removed;
            refresh_statistics(&self.pool, Analyzed::WowCharacters, changed, stats.found).await;
            Ok(stats)
        }
        .boxed()
    }

    fn discord_sync(&self) -> BoxFuture<'_, Result<DiscordSyncStats>> {
        async move {
            let stats = self
                .summarized(
                    Step::DiscordSync,
                    crate::discord_sync::run(
                        &self.pool,
                        &self.config,
                        self.inputs.discord.clone(),
                        self.inputs.guard,
                    ),
                )
                .await?;
            let changed = stats.new + stats.updated + stats.departed + stats.revived;
            let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            refresh_statistics(
                &self.pool,
                Analyzed::DiscordUsers,
                count(changed),
                count(stats.found),
            )
            .await;
            Ok(stats)
        }
        .boxed()
    }

    fn addon_sync<'a>(&'a self, input: &'a AddonInput) -> BoxFuture<'a, Result<AddonSyncStats>> {
        let sync = async move {
            match input {
                AddonInput::File(path) => {
                    let path = path.clone();
                    let export = tokio::task::spawn_blocking(move || {
                        crate::addon_processor::read_export_file(&path)
                    })
                    .await
                    .context("the export reading task failed")??;
                    crate::db_sync::addon::sync_addon_data(&self.pool, &export).await
                }
                AddonInput::Upload(export) => {
                    crate::db_sync::addon::sync_addon_data(&self.pool, export).await
                }
            }
        };
        self.summarized(Step::AddonSync, sync).boxed()
    }

    fn run_matching(&self) -> BoxFuture<'_, Result<MatchStats>> {
        async move {
            let stats = crate::identity_engine::run_matching(&self.pool).await?;
            let created = stats.players_created + stats.links_created;
            refresh_statistics(
                &self.pool,
                Analyzed::PlayerLinks,
                usize::try_from(created).unwrap_or(usize::MAX),
                stats.characters_considered,
            )
            .await;
            Ok(stats)
        }
        .boxed()
    }

    fn integrity_check(&self) -> BoxFuture<'_, Result<CheckStats>> {
        async move {
            let stats =
                crate::integrity_checker::run_integrity_check(&self.pool, &self.config).await?;
            // The role sync follows each check (GUILD_SYNC_ROLE_SYNC); its refusals and
            // failures are logged, never a failed check.
            crate::role_sync::after_check(&self.pool, &self.config).await;
            // GUILD_SYNC_EVENT_RETENTION_DAYS: the history is pruned once per check.
            if let Some(days) = self.config.guild_sync_event_retention_days {
                let days = i32::try_from(days).unwrap_or(i32::MAX);
                let purged = crate::db::member_events::purge_older_than(&self.pool, days).await?;
                if purged > 0 {
                    tracing::info!(purged, days, "old member events deleted");
                }
            }
            Ok(stats)
        }
        .boxed()
    }

    fn report(&self) -> BoxFuture<'_, Result<ReportOutcome>> {
        async move {
            let full = self.inputs.full_report;
            match &self.inputs.report {
                ReportMode::Send(Some(sender)) => {
                    let stats =
                        crate::reporter::send_new_issues_report(&self.pool, sender, full).await?;
                    if self.config.weekly_digest() {
                        crate::reporter::send_weekly_digest(&self.pool, sender).await?;
                    }
                    Ok(ReportOutcome::Sent(stats))
                }
                ReportMode::Send(None) => {
                    tracing::info!(
                        "no Discord sender configured (DISCORD_BOT_TOKEN with \
                         DISCORD_AUDIT_CHANNEL_ID, or DISCORD_WEBHOOK_URL): report not sent"
                    );
                    Ok(ReportOutcome::NoSender)
                }
                ReportMode::Text => {
                    let mut text = crate::reporter::render_text_report(&self.pool, full).await?;
                    if self.config.weekly_digest()
                        && let Some(digest) =
                            crate::reporter::render_weekly_digest(&self.pool).await?
                    {
                        text.push_str("\n\n");
                        text.push_str(&digest);
                    }
                    Ok(ReportOutcome::Rendered { text })
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::statistics_stale;

    #[test]
    fn statistics_are_refreshed_after_a_large_share_of_rows_changed_only() {
        // A first load: everything is new.
        assert!(statistics_stale(1000, 1000));
        // A tenth of 50,000 members changed.
        assert!(statistics_stale(5000, 50_000));
        // A steady run: nothing, or a few rows, changed.
        assert!(!statistics_stale(0, 50_000));
        assert!(!statistics_stale(4999, 50_000));
        // Too few rows to matter, whatever the share.
        assert!(!statistics_stale(49, 49));
    }
}
