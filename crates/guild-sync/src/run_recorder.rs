//! The run recorder: every pipeline stage is a `sync_log` row, opened as `running` and closed
//! with its status, counts, stats, error and duration — also when the stage fails — and with
//! where the stage spent its time ([`StageTimings`]: load, plan, apply) when it says. Every
//! finished run also feeds the Prometheus metrics (duration, last success, row counts), so no
//! stage has to remember to.

use std::cell::Cell;
use std::future::Future;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use sqlx::PgPool;
use tracing::Instrument;

pub use crate::db::sync_log::StageTimings;
use crate::db::sync_log::{self, RunCounts};

/// Defined with the `sync_log` rows it is stored in; re-exported where stages report it.
pub use crate::db::sync_log::RunStatus;

/// What a stage reports about its run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub status: RunStatus,
    pub counts: RunCounts,
    /// The stage's full stats, stored in `sync_log.details`.
    pub details: serde_json::Value,
    /// Why the run was refused or only partly done.
    pub error: Option<String>,
    /// Where the run spent its time, where the stage measured it.
    pub timings: StageTimings,
}

impl RunReport {
    /// A successful run with these stats.
    pub fn success(counts: RunCounts, stats: &impl Serialize) -> Self {
        RunReport {
            status: RunStatus::Success,
            counts,
            details: serde_json::to_value(stats).unwrap_or(serde_json::Value::Null),
            error: None,
            timings: StageTimings::default(),
        }
    }

    /// The same report with where the stage spent its time.
    pub fn timed(self, timings: StageTimings) -> Self {
        RunReport { timings, ..self }
    }
}

tokio::task_local! {
    /// Set by the scheduler around one pipeline step: the timings of the run that step recorded,
    /// so the pipeline's JSON shows them without every stage's stats type carrying them.
    static STEP_TIMINGS: Cell<Option<StageTimings>>;
}

/// Run `step` and return, with its result, the timings of the run it recorded (if it recorded
/// one with timings).
pub async fn capture_timings<T>(step: impl Future<Output = T>) -> (T, Option<StageTimings>) {
    STEP_TIMINGS
        .scope(Cell::new(None), async move {
            let value = step.await;
            (value, STEP_TIMINGS.with(Cell::take))
        })
        .await
}

/// A stopwatch for a stage's parts: each call returns the seconds since the previous one.
pub struct Lap(Instant);

impl Lap {
    pub fn start() -> Self {
        Lap(Instant::now())
    }

    /// Seconds since the start or the previous lap.
    pub fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let seconds = now.duration_since(self.0).as_secs_f64();
        self.0 = now;
        seconds
    }
}

/// Run `stage` as one recorded run of `source`: a `sync_log` row is opened before it starts
/// and closed with its report, or with `error` and the error chain if it fails. `stage`
/// receives the run's `sync_log` id.
pub async fn record_run<T, F, Fut>(pool: &PgPool, source: &str, stage: F) -> Result<T>
where
    F: FnOnce(i64) -> Fut,
    Fut: Future<Output = Result<(T, RunReport)>>,
{
    let run_id = sync_log::open(pool, source).await?;
    // The whole run — the stage and the closing of its row — in the run's span, attached to
    // the future (`.instrument`) so only this task's log lines carry it.
    let span = tracing::info_span!("run", source, run_id);
    async move {
        let started = Instant::now();
        let outcome = stage(run_id).await;
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok((value, report)) => {
                let closed = sync_log::close(
                    pool,
                    run_id,
                    report.status,
                    report.counts,
                    &report.details,
                    report.error.as_deref(),
                    seconds,
                    report.timings,
                )
                .await;
                if let Err(err) = closed {
                    // The stage's work is done (and committed), but its report could not be
                    // stored (e.g. text PostgreSQL refuses in `details`). A row left `running`
                    // would read as a run that never ends, so close it as an error that says so.
                    let message =
                        format!("the run finished but its report could not be recorded: {err:#}");
                    tracing::error!(error = %message, seconds, "run report not recorded");
                    if let Err(close_err) =
                        close_as_error(pool, run_id, report.counts, &message, seconds).await
                    {
                        tracing::error!(error = %close_err, "could not record the run at all");
                    }
                    crate::metrics::stage_finished(
                        source,
                        RunStatus::Error,
                        seconds,
                        report.counts,
                    );
                    return Err(err.context("cannot record the run's outcome"));
                }
                // Outside a scheduler step (a stage command) there is nobody to hand them to.
                let _ = STEP_TIMINGS.try_with(|cell| cell.set(Some(report.timings)));
                crate::metrics::stage_finished(source, report.status, seconds, report.counts);
                tracing::info!(status = report.status.as_str(), seconds, "run finished");
                Ok(value)
            }
            Err(err) => {
                let message = format!("{err:#}");
                tracing::error!(error = %message, seconds, "run failed");
                crate::metrics::stage_finished(
                    source,
                    RunStatus::Error,
                    seconds,
                    RunCounts::default(),
                );
                let closed =
                    close_as_error(pool, run_id, RunCounts::default(), &message, seconds).await;
                if let Err(close_err) = closed {
                    tracing::error!(error = %close_err, "could not record the failed run");
                }
                Err(err)
            }
        }
    }
    .instrument(span)
    .await
}

/// Close `run_id` as an error saying `message`, with no stats.
async fn close_as_error(
    pool: &PgPool,
    run_id: i64,
    counts: RunCounts,
    message: &str,
    seconds: f64,
) -> Result<()> {
    sync_log::close(
        pool,
        run_id,
        RunStatus::Error,
        counts,
        &serde_json::json!({}),
        Some(message),
        seconds,
        sync_log::StageTimings::default(),
    )
    .await
}
