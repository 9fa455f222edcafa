//! scheduler: runs the pipelines (sync → match → check → report) on their schedules and on
//! demand, one at a time — also across several `serve` processes on the same database.
//!
//! It owns the pipeline order, the cross-process lock, the pipeline's own `sync_log` row and
//! graceful shutdown. It does no stage work itself: the stages sit behind the [`Stages`] trait
//! ([`ProductionStages`] calls the real modules; tests inject a recording implementation) and
//! each stage records its own `sync_log` row.
//!
//! **The lock.** A session-level PostgreSQL advisory lock, key [`PIPELINE_LOCK_KEY`], taken with
//! `pg_try_advisory_lock` on a dedicated connection (not a pooled one) that lives exactly as long
//! as the pipeline. If the process dies or the task is dropped, the connection closes and the
//! server releases the lock — no lock can leak into a pooled connection. A run that finds the
//! lock taken does not wait: its `sync_log` row is closed as `skipped`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::{Config, RemovalGuard};
use crate::db::sync_log::{self, RunCounts};
use crate::db_sync::BlizzardInput;
use crate::discord_sender::DiscordSender;
use crate::discord_sync::DiscordInput;
use crate::run_recorder::RunStatus;

/// The advisory-lock key every guild-sync process takes for the duration of a pipeline:
/// the ASCII bytes of "guildsyn" as a big-endian i64. Any process (or an operator in `psql`:
/// `SELECT pg_advisory_lock(7455419188451883374)`) holding it keeps pipelines from starting.
pub const PIPELINE_LOCK_KEY: i64 = 0x6775_696c_6473_796e;

/// Default period of the Discord member sync, in minutes (SPEC §5).
pub const DEFAULT_DISCORD_INTERVAL_MINUTES: u64 = 15;

/// The stages a pipeline is made of, in the order they can appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    BlizzardSync,
    DiscordSync,
    AddonSync,
    Match,
    Check,
    Report,
}

impl Step {
    /// The step's name in logs and in the pipeline's `sync_log.details`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::BlizzardSync => "blizzard_sync",
            Step::DiscordSync => "discord_sync",
            Step::AddonSync => "addon_sync",
            Step::Match => "match",
            Step::Check => "check",
            Step::Report => "report",
        }
    }
}

/// An addon export to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddonInput {
    /// A SavedVariables `PATTSync.lua` or an upload `.json` on disk.
    File(PathBuf),
    /// An upload the API has already parsed and validated.
    Upload(Arc<guild_sync_core::addon::AddonExport>),
}

/// How long an addon pipeline waits for another pipeline to finish before giving up, in
/// seconds. Scheduled runs skip when the lock is taken (the next tick comes soon); an accepted
/// upload exists only in this request, so it waits its turn instead of being dropped.
pub const ADDON_LOCK_WAIT: Duration = Duration::from_secs(15 * 60);

/// Pause between attempts to take the pipeline lock while waiting for it.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Which pipeline to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineKind {
    /// Battle.net sync → match → check → report (on the cron schedule).
    Blizzard,
    /// Discord member sync → match → check → report (every interval).
    Discord,
    /// Addon sync → match → check → report (after an upload).
    Addon(AddonInput),
    /// Only the report (an officer's trigger).
    Report,
    /// Every stage once: Battle.net, Discord, the addon file if any, match, check, report
    /// (`guild-sync pipeline`).
    Full { addon: Option<AddonInput> },
}

impl PipelineKind {
    /// `sync_log.source` of the pipeline's own row.
    pub fn source(&self) -> &'static str {
        match self {
            PipelineKind::Blizzard => "pipeline:blizzard",
            PipelineKind::Discord => "pipeline:discord",
            PipelineKind::Addon(_) => "pipeline:addon",
            PipelineKind::Report => "pipeline:report",
            PipelineKind::Full { .. } => "pipeline:full",
        }
    }

    /// The steps, in the order they run.
    pub fn steps(&self) -> Vec<Step> {
        const TAIL: [Step; 3] = [Step::Match, Step::Check, Step::Report];
        let mut steps = match self {
            PipelineKind::Blizzard => vec![Step::BlizzardSync],
            PipelineKind::Discord => vec![Step::DiscordSync],
            PipelineKind::Addon(_) => vec![Step::AddonSync],
            PipelineKind::Report => return vec![Step::Report],
            PipelineKind::Full { addon } => {
                let mut steps = vec![Step::BlizzardSync, Step::DiscordSync];
                if addon.is_some() {
                    steps.push(Step::AddonSync);
                }
                steps
            }
        };
        steps.extend(TAIL);
        steps
    }

    fn addon_input(&self) -> Option<&AddonInput> {
        match self {
            PipelineKind::Addon(input) => Some(input),
            PipelineKind::Full { addon } => addon.as_ref(),
            _ => None,
        }
    }
}

/// The stage functions a pipeline calls. Each returns its stats as JSON (stored in the
/// pipeline's `sync_log.details`) and records its own `sync_log` row.
pub trait Stages: Send + Sync + 'static {
    fn blizzard_sync(&self) -> BoxFuture<'_, Result<serde_json::Value>>;
    fn discord_sync(&self) -> BoxFuture<'_, Result<serde_json::Value>>;
    fn addon_sync<'a>(&'a self, input: &'a AddonInput) -> BoxFuture<'a, Result<serde_json::Value>>;
    fn run_matching(&self) -> BoxFuture<'_, Result<serde_json::Value>>;
    fn integrity_check(&self) -> BoxFuture<'_, Result<serde_json::Value>>;
    fn report(&self) -> BoxFuture<'_, Result<serde_json::Value>>;

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
    /// Render the text report and keep it for [`ProductionStages::take_report_text`].
    Text,
}

/// The real stages: the Battle.net and Discord syncs, the matcher, the checker, the reporter.
pub struct ProductionStages {
    pool: PgPool,
    config: Config,
    blizzard_input: BlizzardInput,
    discord_input: DiscordInput,
    guard: RemovalGuard,
    report: ReportMode,
    force_full_report: bool,
    show_progress: bool,
    report_text: Mutex<Option<String>>,
}

impl ProductionStages {
    /// Stages for the service: live APIs, the configured removal guard, reports sent.
    pub fn for_service(pool: PgPool, config: Config, sender: Option<DiscordSender>) -> Self {
        let guard = RemovalGuard::from_config(&config, false);
        ProductionStages {
            pool,
            config,
            blizzard_input: BlizzardInput::Live,
            discord_input: DiscordInput::Live,
            guard,
            report: ReportMode::Send(sender),
            force_full_report: false,
            show_progress: false,
            report_text: Mutex::new(None),
        }
    }

    /// Stages with explicit inputs (the `pipeline` command).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: PgPool,
        config: Config,
        blizzard_input: BlizzardInput,
        discord_input: DiscordInput,
        guard: RemovalGuard,
        report: ReportMode,
        show_progress: bool,
    ) -> Self {
        ProductionStages {
            pool,
            config,
            blizzard_input,
            discord_input,
            guard,
            report,
            force_full_report: false,
            show_progress,
            report_text: Mutex::new(None),
        }
    }

    /// The text the last report step rendered in [`ReportMode::Text`].
    pub fn take_report_text(&self) -> Option<String> {
        self.report_text
            .lock()
            .ok()
            .and_then(|mut text| text.take())
    }
}

fn to_json(stats: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(stats).context("cannot serialize the stage's stats")
}

impl Stages for ProductionStages {
    fn not_ready(&self, kind: &PipelineKind) -> Option<String> {
        let set = |missing: Vec<&str>| missing.join(", ");
        for step in kind.steps() {
            match step {
                Step::BlizzardSync if matches!(self.blizzard_input, BlizzardInput::Live) => {
                    let missing = self.config.missing_blizzard_settings();
                    if !missing.is_empty() {
                        return Some(format!(
                            "the Battle.net sync is not configured: set {}",
                            set(missing)
                        ));
                    }
                }
                Step::DiscordSync if matches!(self.discord_input, DiscordInput::Live) => {
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
                        && matches!(self.report, ReportMode::Send(None)) =>
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

    fn blizzard_sync(&self) -> BoxFuture<'_, Result<serde_json::Value>> {
        async move {
            let stats = crate::db_sync::run(
                &self.pool,
                &self.config,
                self.blizzard_input.clone(),
                self.guard,
                self.show_progress,
            )
            .await?;
            to_json(&stats)
        }
        .boxed()
    }

    fn discord_sync(&self) -> BoxFuture<'_, Result<serde_json::Value>> {
        async move {
            let stats = crate::discord_sync::run(
                &self.pool,
                &self.config,
                self.discord_input.clone(),
                self.guard,
            )
            .await?;
            to_json(&stats)
        }
        .boxed()
    }

    fn addon_sync<'a>(&'a self, input: &'a AddonInput) -> BoxFuture<'a, Result<serde_json::Value>> {
        async move {
            let stats = match input {
                AddonInput::File(path) => {
                    let path = path.clone();
                    let export = tokio::task::spawn_blocking(move || {
                        crate::addon_processor::read_export_file(&path)
                    })
                    .await
                    .context("the export reading task failed")??;
                    crate::db_sync::addon::sync_addon_data(&self.pool, &export).await?
                }
                AddonInput::Upload(export) => {
                    crate::db_sync::addon::sync_addon_data(&self.pool, export).await?
                }
            };
            to_json(&stats)
        }
        .boxed()
    }

    fn run_matching(&self) -> BoxFuture<'_, Result<serde_json::Value>> {
        async move { to_json(&crate::identity_engine::run_matching(&self.pool).await?) }.boxed()
    }

    fn integrity_check(&self) -> BoxFuture<'_, Result<serde_json::Value>> {
        async move {
            to_json(&crate::integrity_checker::run_integrity_check(&self.pool, &self.config).await?)
        }
        .boxed()
    }

    fn report(&self) -> BoxFuture<'_, Result<serde_json::Value>> {
        async move {
            match &self.report {
                ReportMode::Send(Some(sender)) => to_json(
                    &crate::reporter::send_new_issues_report(
                        &self.pool,
                        sender,
                        self.force_full_report,
                    )
                    .await?,
                ),
                ReportMode::Send(None) => {
                    tracing::info!(
                        "no Discord sender configured (DISCORD_BOT_TOKEN with \
                         DISCORD_AUDIT_CHANNEL_ID, or DISCORD_WEBHOOK_URL): report not sent"
                    );
                    Ok(serde_json::json!({ "sent": false, "reason": "no Discord sender configured" }))
                }
                ReportMode::Text => {
                    let text =
                        crate::reporter::render_text_report(&self.pool, self.force_full_report)
                            .await?;
                    let lines = text.lines().count();
                    if let Ok(mut slot) = self.report_text.lock() {
                        *slot = Some(text);
                    }
                    Ok(serde_json::json!({ "sent": false, "rendered_lines": lines }))
                }
            }
        }
        .boxed()
    }
}

/// How a pipeline run ended.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineOutcome {
    /// The pipeline's own `sync_log` id.
    pub run_id: i64,
    pub source: &'static str,
    pub status: RunStatus,
    /// Each step that finished, in order, with its stats.
    pub stages: Vec<StageOutcome>,
    /// The step that failed, if one did (the pipeline stopped there).
    pub failed_step: Option<Step>,
    pub error: Option<String>,
    pub duration_seconds: f64,
}

/// One finished step of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub step: Step,
    pub stats: serde_json::Value,
}

/// Why the scheduler refused to start a run.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the service is shutting down; no new runs start")]
    ShuttingDown,
    /// The pipeline needs settings that are not set (see [`Stages::not_ready`]).
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

/// Runs pipelines one at a time and stops gracefully.
pub struct Scheduler {
    pool: PgPool,
    stages: Arc<dyn Stages>,
    shutdown: watch::Sender<bool>,
    in_flight: watch::Sender<usize>,
}

/// Counts one run as in flight until dropped.
struct InFlight {
    counter: watch::Sender<usize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counter.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Scheduler {
    pub fn new(pool: PgPool, stages: Arc<dyn Stages>) -> Scheduler {
        Scheduler {
            pool,
            stages,
            shutdown: watch::channel(false).0,
            in_flight: watch::channel(0).0,
        }
    }

    /// Run `kind` now and wait for it. A run that finds another pipeline holding the lock is
    /// recorded and returned as `skipped`; a failing stage stops the pipeline and is returned
    /// (and recorded) as `error` — `Err` means the run could not start or be recorded at all.
    pub async fn run_pipeline(&self, kind: PipelineKind) -> Result<PipelineOutcome, StartError> {
        let in_flight = self.begin()?;
        let run_id = sync_log::open(&self.pool, kind.source()).await?;
        let outcome = self.execute(run_id, kind).await;
        drop(in_flight);
        Ok(outcome?)
    }

    /// Start `kind` in the background and return its `sync_log` id at once (HTTP triggers).
    pub async fn trigger(self: &Arc<Self>, kind: PipelineKind) -> Result<i64, StartError> {
        if let Some(reason) = self.stages.not_ready(&kind) {
            return Err(StartError::NotConfigured(reason));
        }
        let in_flight = self.begin()?;
        let run_id = sync_log::open(&self.pool, kind.source()).await?;
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            if let Err(err) = this.execute(run_id, kind).await {
                tracing::error!(run_id, error = %format!("{err:#}"), "could not record the pipeline run");
            }
        });
        Ok(run_id)
    }

    /// Stop starting runs (scheduled or triggered) from now on; returns at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Stop starting runs and wait until every running pipeline has finished.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        let mut in_flight = self.in_flight.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = in_flight.wait_for(|n| *n == 0).await;
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that turns `true` when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Start the scheduled jobs; they end when shutdown begins.
    pub fn spawn_jobs(self: &Arc<Self>, schedule: Schedule) -> Vec<JoinHandle<()>> {
        let mut jobs = Vec::new();
        if let Some(cron) = schedule.blizzard_cron {
            let this = Arc::clone(self);
            jobs.push(tokio::spawn(on_cron(
                cron,
                self.shutdown_signal(),
                move || {
                    let this = Arc::clone(&this);
                    async move { this.scheduled(PipelineKind::Blizzard).await }
                },
            )));
        }
        if let Some(period) = schedule.discord_interval {
            let this = Arc::clone(self);
            jobs.push(tokio::spawn(every(
                period,
                self.shutdown_signal(),
                move || {
                    let this = Arc::clone(&this);
                    async move { this.scheduled(PipelineKind::Discord).await }
                },
            )));
        }
        jobs
    }

    async fn scheduled(&self, kind: PipelineKind) {
        let source = kind.source();
        match self.run_pipeline(kind).await {
            Ok(outcome) => tracing::info!(
                source,
                run_id = outcome.run_id,
                status = outcome.status.as_str(),
                "scheduled pipeline finished"
            ),
            Err(StartError::ShuttingDown) => {}
            Err(err) => {
                tracing::error!(source, error = %format!("{err:#}"), "scheduled pipeline could not run")
            }
        }
    }

    fn begin(&self) -> Result<InFlight, StartError> {
        // Count first, then check: `shutdown` sets the flag before it waits for zero, so a run
        // either sees the flag or is waited for — never neither.
        self.in_flight.send_modify(|n| *n += 1);
        let guard = InFlight {
            counter: self.in_flight.clone(),
        };
        if self.is_shutting_down() {
            return Err(StartError::ShuttingDown);
        }
        Ok(guard)
    }

    /// Take the lock, run the steps, close the pipeline's `sync_log` row.
    async fn execute(&self, run_id: i64, kind: PipelineKind) -> Result<PipelineOutcome> {
        let span = tracing::info_span!("pipeline", source = kind.source(), run_id);
        self.execute_in_span(run_id, kind).instrument(span).await
    }

    async fn execute_in_span(&self, run_id: i64, kind: PipelineKind) -> Result<PipelineOutcome> {
        let source = kind.source();
        let started = Instant::now();
        let mut outcome = PipelineOutcome {
            run_id,
            source,
            status: RunStatus::Success,
            stages: Vec::new(),
            failed_step: None,
            error: None,
            duration_seconds: 0.0,
        };

        let wait = match kind {
            PipelineKind::Addon(_) => ADDON_LOCK_WAIT,
            _ => Duration::ZERO,
        };
        let lock = match PipelineLock::acquire(&self.pool, wait).await {
            Ok(lock) => lock,
            Err(err) => {
                outcome.status = RunStatus::Error;
                outcome.error = Some(format!("{err:#}"));
                None
            }
        };
        match lock {
            None if outcome.status == RunStatus::Error => {}
            None => {
                tracing::info!(source, run_id, "another pipeline holds the lock: skipped");
                outcome.status = RunStatus::Skipped;
                outcome.error = Some("another pipeline was running".into());
            }
            Some(lock) => {
                tracing::info!(source, run_id, "pipeline started");
                for step in kind.steps() {
                    let result = AssertUnwindSafe(self.run_step(step, &kind))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Err(anyhow!("the stage panicked")));
                    match result {
                        Ok(stats) => outcome.stages.push(StageOutcome { step, stats }),
                        Err(err) => {
                            let message = format!("{}: {err:#}", step.as_str());
                            tracing::error!(source, run_id, step = step.as_str(), error = %message, "stage failed; pipeline stopped");
                            outcome.status = RunStatus::Error;
                            outcome.failed_step = Some(step);
                            outcome.error = Some(message);
                            break;
                        }
                    }
                }
                lock.release().await;
            }
        }

        outcome.duration_seconds = started.elapsed().as_secs_f64();
        let details = serde_json::json!({
            "stages": outcome.stages.iter()
                .map(|s| (s.step.as_str().to_string(), s.stats.clone()))
                .collect::<serde_json::Map<_, _>>(),
            "failed_step": outcome.failed_step,
        });
        sync_log::close(
            &self.pool,
            run_id,
            outcome.status,
            RunCounts::default(),
            &details,
            outcome.error.as_deref(),
            outcome.duration_seconds,
        )
        .await
        .context("cannot close the pipeline's sync_log row")?;
        tracing::info!(
            source,
            run_id,
            status = outcome.status.as_str(),
            seconds = outcome.duration_seconds,
            "pipeline finished"
        );
        Ok(outcome)
    }

    async fn run_step(&self, step: Step, kind: &PipelineKind) -> Result<serde_json::Value> {
        let stages = &self.stages;
        match step {
            Step::BlizzardSync => stages.blizzard_sync().await,
            Step::DiscordSync => stages.discord_sync().await,
            Step::AddonSync => match kind.addon_input() {
                Some(input) => stages.addon_sync(input).await,
                None => Err(anyhow!("no addon input for this pipeline")),
            },
            Step::Match => stages.run_matching().await,
            Step::Check => stages.integrity_check().await,
            Step::Report => stages.report().await,
        }
    }
}

/// The held pipeline lock: a dedicated connection holding [`PIPELINE_LOCK_KEY`].
struct PipelineLock {
    conn: PgConnection,
}

impl PipelineLock {
    /// Take the lock, retrying for up to `wait`; `Ok(None)` when another session still holds
    /// it then.
    async fn acquire(pool: &PgPool, wait: Duration) -> Result<Option<PipelineLock>> {
        // tokio's clock, so paused-time tests see the wait elapse.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(lock) = Self::try_acquire(pool).await? {
                return Ok(Some(lock));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(LOCK_RETRY_INTERVAL).await;
        }
    }

    /// `Ok(None)` when another session holds the lock.
    async fn try_acquire(pool: &PgPool) -> Result<Option<PipelineLock>> {
        let mut conn = PgConnection::connect_with(&pool.connect_options())
            .await
            .context("cannot open the pipeline lock connection")?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PIPELINE_LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .context("cannot take the pipeline lock")?;
        if acquired {
            Ok(Some(PipelineLock { conn }))
        } else {
            conn.close().await.ok();
            Ok(None)
        }
    }

    async fn release(mut self) {
        let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
            .bind(PIPELINE_LOCK_KEY)
            .fetch_one(&mut self.conn)
            .await;
        if let Err(err) = unlocked {
            // Closing the session below releases it anyway.
            tracing::warn!(error = %err, "cannot release the pipeline lock explicitly");
        }
        self.conn.close().await.ok();
    }
}

/// When the scheduled jobs run; `None` disables a job.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub blizzard_cron: Option<cron::Schedule>,
    pub discord_interval: Option<Duration>,
}

impl Schedule {
    /// The schedule the configuration allows. A job whose source is not configured (or whose
    /// schedule is invalid) is disabled with one log line naming what is missing.
    pub fn from_config(config: &Config) -> Schedule {
        let mut schedule = Schedule::default();
        let blizzard_missing = config.missing_blizzard_settings();
        if !blizzard_missing.is_empty() {
            tracing::warn!(
                missing = %blizzard_missing.join(", "),
                "Battle.net job disabled: configuration missing"
            );
        } else {
            match cron::Schedule::from_str(&config.guild_sync_blizzard_cron) {
                Ok(cron) => schedule.blizzard_cron = Some(cron),
                Err(err) => tracing::error!(
                    cron = %config.guild_sync_blizzard_cron,
                    error = %err,
                    "Battle.net job disabled: GUILD_SYNC_BLIZZARD_CRON is not a valid cron expression"
                ),
            }
        }
        let discord_missing = config.missing_discord_settings();
        if !discord_missing.is_empty() {
            tracing::warn!(
                missing = %discord_missing.join(", "),
                "Discord job disabled: configuration missing"
            );
        } else if config.guild_sync_discord_interval_minutes == 0 {
            tracing::error!(
                "Discord job disabled: GUILD_SYNC_DISCORD_INTERVAL_MINUTES must be at least 1"
            );
        } else {
            schedule.discord_interval = Some(Duration::from_secs(
                config.guild_sync_discord_interval_minutes * 60,
            ));
        }
        schedule
    }
}

/// Resolves once shutdown has begun (or the scheduler is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it here, not across the caller's awaits.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// Run `job` at once and then every `period` until `shutdown` turns true. A job that overruns
/// its period delays the next one rather than queueing runs. Uses tokio time, so tests drive it
/// with `tokio::time::pause()`.
pub async fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut shutdown) => break,
            _ = ticks.tick() => job().await,
        }
    }
}

/// Run `job` at every upcoming time of `schedule` (UTC) until `shutdown` turns true.
pub async fn on_cron<F, Fut>(
    schedule: cron::Schedule,
    mut shutdown: watch::Receiver<bool>,
    mut job: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let Some(next) = schedule.upcoming(chrono::Utc).next() else {
            tracing::warn!("the Battle.net cron schedule has no upcoming time; job stopped");
            break;
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            biased;
            _ = stopped(&mut shutdown) => break,
            _ = tokio::time::sleep(wait) => job().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pipeline_ends_with_match_check_report_except_the_report_trigger() {
        let file = AddonInput::File("x.lua".into());
        let cases = [
            (
                PipelineKind::Blizzard,
                vec![Step::BlizzardSync, Step::Match, Step::Check, Step::Report],
            ),
            (
                PipelineKind::Discord,
                vec![Step::DiscordSync, Step::Match, Step::Check, Step::Report],
            ),
            (
                PipelineKind::Addon(file.clone()),
                vec![Step::AddonSync, Step::Match, Step::Check, Step::Report],
            ),
            (PipelineKind::Report, vec![Step::Report]),
            (
                PipelineKind::Full { addon: None },
                vec![
                    Step::BlizzardSync,
                    Step::DiscordSync,
                    Step::Match,
                    Step::Check,
                    Step::Report,
                ],
            ),
            (
                PipelineKind::Full { addon: Some(file) },
                vec![
                    Step::BlizzardSync,
                    Step::DiscordSync,
                    Step::AddonSync,
                    Step::Match,
                    Step::Check,
                    Step::Report,
                ],
            ),
        ];
        for (kind, steps) in cases {
            assert_eq!(kind.steps(), steps, "{kind:?}");
        }
    }

    #[test]
    fn the_default_cron_runs_four_times_a_day_at_the_documented_hours() {
        let cron = cron::Schedule::from_str(&Config::defaults().guild_sync_blizzard_cron).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let hours: Vec<String> = cron
            .after(&start)
            .take(5)
            .map(|t| t.format("%d %H:%M:%S").to_string())
            .collect();
        assert_eq!(
            hours,
            [
                "01 01:00:00",
                "01 07:00:00",
                "01 13:00:00",
                "01 19:00:00",
                "02 01:00:00"
            ]
        );
    }

    #[test]
    fn missing_credentials_disable_only_their_job() {
        let mut config = Config::defaults();
        config.discord_bot_token = Some(crate::config::Secret::new("t"));
        config.discord_guild_id = Some("1".into());
        let schedule = Schedule::from_config(&config);
        assert!(schedule.blizzard_cron.is_none());
        assert_eq!(
            schedule.discord_interval,
            Some(Duration::from_secs(15 * 60))
        );
    }
}
