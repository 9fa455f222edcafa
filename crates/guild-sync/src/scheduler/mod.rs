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
//! **The lock.** A scheduled or triggered run that finds the lock taken does not wait (the next
//! tick comes soon): its `sync_log` row is closed as `skipped`. An addon upload waits its turn
//! instead, since it exists only in the request that brought it — one at a time: a newer upload
//! replaces the waiting one ([`Scheduler::trigger_upload`]); so do the commands an officer runs
//! ([`LockWait`]). Commands that write outside a pipeline (`sync …`, `match`, `check`,
//! `report`, a role apply) hold the same lock ([`lock_for_command`], which lives below the
//! scheduler in [`crate::lock_wait`] so those commands need not import it). Whoever takes the
//! lock first closes the `sync_log` rows a killed process left `running` as `abandoned`.
//!
//! **Shutdown.** One [`CancellationToken`] (the service's): once it is cancelled no run starts,
//! the timers stop, and [`Scheduler::shutdown`] waits for the running pipeline to finish.

pub mod pipeline;
pub mod stages;
pub mod timers;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::FutureExt;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::Instrument;

use crate::db::pipeline_lock::LockConnection;
pub use crate::db::pipeline_lock::PIPELINE_LOCK_KEY;
use crate::db::sync_log::{self, RunCounts};
pub use crate::lock_wait::{CommandLock, LockWait, lock_for_command};
use crate::lock_wait::{close_abandoned, take_lock};
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

/// How often a superseded upload repeats the cancel of its lock wait until the wait ends (see
/// [`WaitCanceller::cancel`](crate::db::pipeline_lock::WaitCanceller::cancel)).
const CANCEL_RETRY: Duration = Duration::from_millis(50);

impl LockWait {
    /// How `kind` waits unless told otherwise.
    pub fn default_for(kind: &PipelineKind) -> LockWait {
        match kind {
            PipelineKind::Addon(_) => LockWait::Within(ADDON_LOCK_WAIT),
            _ => LockWait::Skip,
        }
    }
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
    shutdown: CancellationToken,
    /// Every run in flight, triggered or awaited, so shutdown can wait for them.
    in_flight: TaskTracker,
    /// How every run waits for the lock; `None`: as [`LockWait::default_for`] its kind.
    lock_wait: Option<LockWait>,
    /// The upload waiting for the lock, if one is: only the newest export matters, so a newer
    /// upload replaces it (see [`Scheduler::trigger_upload`]).
    waiting_upload: Mutex<Option<WaitingUpload>>,
}

/// An upload run waiting for the lock, and how to tell it a newer one replaced it.
struct WaitingUpload {
    run_id: i64,
    superseded: CancellationToken,
}

/// What [`Scheduler::trigger_upload`] started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadTriggered {
    /// The upload's pipeline run (`sync_log` id).
    pub run_id: i64,
    /// The waiting upload run this one replaced, which will not apply its export.
    pub replaced: Option<i64>,
}

/// `error_message` of an upload run a newer upload replaced before it got the lock.
pub const SUPERSEDED_MESSAGE: &str = "superseded by a newer upload before it could run";

/// How taking the lock turned out.
enum Locking {
    Taken,
    Busy,
    /// An upload replaced by a newer one while it waited.
    Superseded,
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
            lock_wait: None,
            waiting_upload: Mutex::new(None),
        }
    }

    /// Every run of this scheduler waits for the lock as `wait` says (commands: as long as it
    /// takes, or not at all with `--no-wait`).
    pub fn waiting_for_the_lock(mut self, wait: LockWait) -> Scheduler {
        self.lock_wait = Some(wait);
        self
    }

    /// Run `kind` now and wait for it. A run that finds another pipeline holding the lock is
    /// recorded and returned as `skipped`; a failing stage stops the pipeline and is returned
    /// (and recorded) as `error` — `Err` means the run could not start or be recorded at all.
    pub async fn run_pipeline(&self, kind: PipelineKind) -> Result<PipelineOutcome, StartError> {
        let in_flight = self.begin()?;
        let (lock, run_id) = LockConnection::open_run(&self.pool, kind.source()).await?;
        let outcome = self.execute(lock, run_id, kind, None).await;
        drop(in_flight);
        Ok(outcome?)
    }

    /// Start `kind` in the background and return its `sync_log` id at once (HTTP triggers).
    pub async fn trigger(self: &Arc<Self>, kind: PipelineKind) -> Result<i64, StartError> {
        if let Some(reason) = self.stages.not_ready(&kind) {
            return Err(StartError::NotConfigured(reason));
        }
        let in_flight = self.begin()?;
        let (lock, run_id) = LockConnection::open_run(&self.pool, kind.source()).await?;
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            if let Err(err) = this.execute(lock, run_id, kind, None).await {
                tracing::error!(run_id, error = %format!("{err:#}"), "could not record the pipeline run");
            }
        });
        Ok(run_id)
    }

    /// Start the addon pipeline for an accepted upload in the background. It waits for a
    /// running pipeline (up to [`ADDON_LOCK_WAIT`]); while it waits, a newer upload replaces
    /// it — the older run ends as `skipped` ([`SUPERSEDED_MESSAGE`]) without applying its
    /// export — so a flood of uploads keeps one export and one connection waiting, not all.
    pub async fn trigger_upload(
        self: &Arc<Self>,
        export: Arc<guild_sync_core::addon::AddonExport>,
    ) -> Result<UploadTriggered, StartError> {
        let kind = PipelineKind::Addon(AddonInput::Upload(export));
        if let Some(reason) = self.stages.not_ready(&kind) {
            return Err(StartError::NotConfigured(reason));
        }
        let in_flight = self.begin()?;
        let (lock, run_id) = LockConnection::open_run(&self.pool, kind.source()).await?;
        let superseded = CancellationToken::new();
        let replaced = self
            .waiting_upload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(WaitingUpload {
                run_id,
                superseded: superseded.clone(),
            });
        crate::metrics::upload(false);
        if let Some(previous) = &replaced {
            crate::metrics::upload(true);
            previous.superseded.cancel();
            tracing::info!(
                run_id,
                replaced = previous.run_id,
                "a newer upload replaces the one waiting for the pipeline lock"
            );
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            if let Err(err) = this.execute(lock, run_id, kind, Some(superseded)).await {
                tracing::error!(run_id, error = %format!("{err:#}"), "could not record the pipeline run");
            }
        });
        Ok(UploadTriggered {
            run_id,
            replaced: replaced.map(|previous| previous.run_id),
        })
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

    /// Take the lock, run the steps, close the pipeline's `sync_log` row. `superseded` is
    /// set for an upload a newer one can replace while it waits.
    async fn execute(
        &self,
        lock: LockConnection,
        run_id: i64,
        kind: PipelineKind,
        superseded: Option<CancellationToken>,
    ) -> Result<PipelineOutcome> {
        let span = tracing::info_span!("pipeline", source = kind.source(), run_id);
        self.execute_in_span(lock, run_id, kind, superseded)
            .instrument(span)
            .await
    }

    /// Take the lock for an upload unless a newer upload replaces it first.
    async fn lock_upload(
        &self,
        lock: &mut LockConnection,
        wait: LockWait,
        run_id: i64,
        superseded: &CancellationToken,
    ) -> Result<Locking> {
        if superseded.is_cancelled() {
            // Replaced before it began to wait: nothing to take or cancel.
            return Ok(Locking::Superseded);
        }
        let canceller = lock.canceller();
        let taking = take_lock(lock, wait);
        tokio::pin!(taking);
        let waited = tokio::select! {
            taken = &mut taking => Some(taken),
            () = superseded.cancelled() => None,
        };
        let Some(taken) = waited else {
            // The wait goes on in the server until cancelled there, and a cancel that arrives
            // before the wait has begun is lost; dropping the wait instead would leave it
            // waiting (and holding a connection) while the newest upload waits too. So cancel
            // until the wait is seen to end, however it ends: the run is superseded either way.
            loop {
                canceller.cancel(&self.pool).await?;
                tokio::select! {
                    _ = &mut taking => break,
                    () = tokio::time::sleep(CANCEL_RETRY) => {}
                }
            }
            return Ok(Locking::Superseded);
        };
        let taken = taken?;
        // The slot decides: a newer upload may have replaced this one just as it got the lock.
        let mut slot = self
            .waiting_upload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|waiting| waiting.run_id == run_id)
        {
            *slot = None;
            Ok(if taken { Locking::Taken } else { Locking::Busy })
        } else {
            Ok(Locking::Superseded)
        }
    }

    async fn execute_in_span(
        &self,
        mut lock: LockConnection,
        run_id: i64,
        kind: PipelineKind,
        superseded: Option<CancellationToken>,
    ) -> Result<PipelineOutcome> {
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

        let wait = self
            .lock_wait
            .unwrap_or_else(|| LockWait::default_for(&kind));
        let locking = match &superseded {
            Some(superseded) => self.lock_upload(&mut lock, wait, run_id, superseded).await,
            None => take_lock(&mut lock, wait)
                .await
                .map(|taken| if taken { Locking::Taken } else { Locking::Busy }),
        };
        let locking = match locking {
            Ok(Locking::Taken) => close_abandoned(&mut lock).await.map(|()| Locking::Taken),
            other => other,
        };
        match locking {
            Err(err) => {
                outcome.status = RunStatus::Error;
                outcome.error = Some(format!("{err:#}"));
            }
            Ok(Locking::Busy) => {
                tracing::info!(source, run_id, "another pipeline holds the lock: skipped");
                outcome.status = RunStatus::Skipped;
                outcome.error = Some("another pipeline was running".into());
            }
            Ok(Locking::Superseded) => {
                tracing::info!(source, run_id, "superseded by a newer upload: skipped");
                outcome.status = RunStatus::Skipped;
                outcome.error = Some(SUPERSEDED_MESSAGE.into());
            }
            Ok(Locking::Taken) => {
                tracing::info!(source, run_id, "pipeline started");
                for step in kind.steps() {
                    let step_started = Instant::now();
                    let (result, timings) = crate::run_recorder::capture_timings(
                        AssertUnwindSafe(self.run_step(step, &kind)).catch_unwind(),
                    )
                    .await;
                    let result = result.unwrap_or_else(|_| Err(anyhow!("the stage panicked")));
                    match result {
                        Ok(stats) => outcome.stages.push(StageOutcome {
                            step,
                            stats,
                            seconds: step_started.elapsed().as_secs_f64(),
                            timings: timings.unwrap_or_default(),
                        }),
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
            }
        }

        outcome.duration_seconds = started.elapsed().as_secs_f64();
        // The row is closed before the lock connection (which owns it) goes away, so nobody
        // can take a finished run for an abandoned one.
        let closed = sync_log::close(
            &self.pool,
            run_id,
            outcome.status,
            RunCounts::default(),
            &outcome.details(),
            outcome.error.as_deref(),
            outcome.duration_seconds,
            sync_log::StageTimings::default(),
        )
        .await;
        lock.release().await;
        closed.context("cannot close the pipeline's sync_log row")?;
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
