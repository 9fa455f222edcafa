//! scheduler: runs the pipelines (sync → match → check → report) on their schedules and on
//! demand, one at a time — also across several `serve` processes on the same database.
//!
//! [`Scheduler::run_pipeline`] is the one way a pipeline runs: `serve`'s timers and HTTP
//! triggers, the `pipeline` command, the demo and the benchmark all go through it. It owns the
//! pipeline order ([`pipeline`]), the cross-process lock ([`crate::db::pipeline_lock`]), the
//! pipeline's own `sync_log` row and graceful shutdown. It does no stage work itself: the
//! stages sit behind the [`Stages`] trait ([`stages`]) and each stage records its own
//! `sync_log` row. The timers live in [`timers`].
//!
//! **The lock.** A run that finds the lock taken does not wait (the next tick comes soon): its
//! `sync_log` row is closed as `skipped`. An addon upload waits its turn instead, since it
//! exists only in the request that brought it.
//!
//! **Shutdown.** One [`CancellationToken`] (the service's): once it is cancelled no run starts,
//! the timers stop, and [`Scheduler::shutdown`] waits for the running pipeline to finish.

pub mod pipeline;
pub mod stages;
pub mod timers;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::FutureExt;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;

pub use crate::db::pipeline_lock::PIPELINE_LOCK_KEY;
use crate::db::pipeline_lock::PipelineLock;
use crate::db::sync_log::{self, RunCounts};
use crate::run_recorder::RunStatus;
pub use pipeline::{
    AddonInput, PipelineKind, PipelineOutcome, ReportOutcome, StageOutcome, StageStats, Step,
};
pub use stages::{ProductionStages, ReportMode, StageInputs, Stages};
pub use timers::{Schedule, every, on_cron};

/// How long an addon pipeline waits for another pipeline to finish before giving up. Scheduled
/// runs skip when the lock is taken (the next tick comes soon); an accepted upload exists only
/// in this request, so it waits its turn instead of being dropped.
pub const ADDON_LOCK_WAIT: Duration = Duration::from_secs(15 * 60);

/// Pause between attempts to take the pipeline lock while waiting for it.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(500);

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
    shutdown: CancellationToken,
    /// Every run in flight, triggered or awaited, so shutdown can wait for them.
    in_flight: TaskTracker,
}

impl Scheduler {
    /// A scheduler with its own shutdown token (a command that runs one pipeline, a test).
    pub fn new(pool: PgPool, stages: Arc<dyn Stages>) -> Scheduler {
        Self::with_shutdown(pool, stages, CancellationToken::new())
    }

    /// A scheduler that stops when `shutdown` is cancelled (the service's token).
    pub fn with_shutdown(
        pool: PgPool,
        stages: Arc<dyn Stages>,
        shutdown: CancellationToken,
    ) -> Scheduler {
        Scheduler {
            pool,
            stages,
            shutdown,
            in_flight: TaskTracker::new(),
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

    /// Stop starting runs (scheduled or triggered) from now on; returns at once. This cancels
    /// the scheduler's token — in the service, the whole service's.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stop starting runs and wait until every running pipeline has finished.
    pub async fn shutdown(&self) {
        self.begin_shutdown();
        self.in_flight.close();
        self.in_flight.wait().await;
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Start the scheduled jobs; they end when shutdown begins.
    pub fn spawn_jobs(self: &Arc<Self>, schedule: Schedule) -> Vec<JoinHandle<()>> {
        let mut jobs = Vec::new();
        if let Some(cron) = schedule.blizzard_cron {
            let this = Arc::clone(self);
            jobs.push(tokio::spawn(on_cron(
                cron,
                self.shutdown.clone(),
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
                self.shutdown.clone(),
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

    fn begin(&self) -> Result<TaskTrackerToken, StartError> {
        // Count first, then check: `shutdown` cancels before it waits, so a run either sees
        // the cancellation or is waited for — never neither.
        let guard = self.in_flight.token();
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
        match acquire_lock(&self.pool, wait).await {
            Err(err) => {
                outcome.status = RunStatus::Error;
                outcome.error = Some(format!("{err:#}"));
            }
            Ok(None) => {
                tracing::info!(source, run_id, "another pipeline holds the lock: skipped");
                outcome.status = RunStatus::Skipped;
                outcome.error = Some("another pipeline was running".into());
            }
            Ok(Some(lock)) => {
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
        sync_log::close(
            &self.pool,
            run_id,
            outcome.status.as_str(),
            RunCounts::default(),
            &outcome.details(),
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

    async fn run_step(&self, step: Step, kind: &PipelineKind) -> Result<StageStats> {
        let stages = &self.stages;
        Ok(match step {
            Step::BlizzardSync => StageStats::BlizzardSync(stages.blizzard_sync().await?),
            Step::DiscordSync => StageStats::DiscordSync(stages.discord_sync().await?),
            Step::AddonSync => match kind.addon_input() {
                Some(input) => StageStats::AddonSync(stages.addon_sync(input).await?),
                None => return Err(anyhow!("no addon input for this pipeline")),
            },
            Step::Match => StageStats::Match(stages.run_matching().await?),
            Step::Check => StageStats::Check(stages.integrity_check().await?),
            Step::Report => StageStats::Report(stages.report().await?),
        })
    }
}

/// Take the pipeline lock, retrying for up to `wait`; `Ok(None)` when another session still
/// holds it then.
async fn acquire_lock(pool: &PgPool, wait: Duration) -> Result<Option<PipelineLock>> {
    // tokio's clock, so paused-time tests see the wait elapse.
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(lock) = PipelineLock::try_acquire(pool).await? {
            return Ok(Some(lock));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(LOCK_RETRY_INTERVAL).await;
    }
}
