//! The Prometheus metrics (issue 21): the one process-wide recorder, the names and labels of
//! every family, and the functions the stages, the scheduler and the HTTP layer call to feed
//! them. `GET /metrics` renders [`render`] (see `api::metrics` for where it is served).
//!
//! Families (all prefixed `guild_sync_`):
//! - `stage_duration_seconds{stage,status}` — histogram of every recorded run;
//! - `stage_last_success_timestamp_seconds{stage}` — when each stage last succeeded (seeded
//!   from `sync_log` when the service starts, so a restart does not forget it);
//! - `stage_consecutive_failures{stage}` — failed runs since the stage's last success;
//! - `stage_runs_total{stage,status}` — finished runs, by how they ended;
//! - `rows_total{stage,kind}` — rows found, new, updated and removed (`kind`);
//! - `open_audit_issues{issue_type}` — read from the database at scrape time;
//! - `http_request_duration_seconds{route,method,status}` — histogram per matched route;
//! - `pipeline_lock_waits_total`, `pipeline_lock_wait_seconds` — runs that had to wait for the
//!   pipeline lock, and how long;
//! - `uploads_total{outcome}` — addon uploads `accepted` and `superseded`.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::sync_log::{RunCounts, RunStatus};

/// Histogram buckets for durations: a 5 ms API call up to a 10-minute Battle.net sync.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. If another recorder was installed first
/// (an embedding program's), metrics still render, just empty: metrics never stop a sync.
fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
        }
        describe();
        handle
    })
}

/// Install the recorder (idempotent). The service calls it at start so the first scrape
/// already lists every family.
pub fn install() {
    handle();
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "guild_sync_stage_duration_seconds",
        Unit::Seconds,
        "Wall time of each recorded stage run"
    );
    describe_gauge!(
        "guild_sync_stage_last_success_timestamp_seconds",
        Unit::Seconds,
        "Unix time of each stage's last successful run"
    );
    describe_gauge!(
        "guild_sync_stage_consecutive_failures",
        "Failed runs of each stage since its last success"
    );
    describe_counter!(
        "guild_sync_stage_runs_total",
        "Finished stage runs by status"
    );
    describe_counter!(
        "guild_sync_rows_total",
        "Rows found, new, updated and removed by each stage"
    );
    describe_gauge!(
        "guild_sync_open_audit_issues",
        "Unresolved audit issues per type"
    );
    describe_histogram!(
        "guild_sync_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency per route, method and status"
    );
    describe_counter!(
        "guild_sync_pipeline_lock_waits_total",
        "Pipeline runs that found the pipeline lock taken and waited for it"
    );
    describe_histogram!(
        "guild_sync_pipeline_lock_wait_seconds",
        Unit::Seconds,
        "How long runs waited for the pipeline lock"
    );
    describe_counter!(
        "guild_sync_uploads_total",
        "Addon uploads accepted, and uploads a newer one superseded before they ran"
    );
    // Zero series for the families with fixed labels, so alerts see 0 rather than nothing.
    metrics::counter!("guild_sync_pipeline_lock_waits_total").absolute(0);
    for outcome in ["accepted", "superseded"] {
        metrics::counter!("guild_sync_uploads_total", "outcome" => outcome).absolute(0);
    }
}

/// A recorded stage run ended (`stage` is its `sync_log.source`).
pub fn stage_finished(stage: &str, status: RunStatus, seconds: f64, counts: RunCounts) {
    install();
    let stage = stage.to_owned();
    let status = status.as_str();
    metrics::histogram!("guild_sync_stage_duration_seconds", "stage" => stage.clone(), "status" => status)
        .record(seconds);
    metrics::counter!("guild_sync_stage_runs_total", "stage" => stage.clone(), "status" => status)
        .increment(1);
    let failures =
        metrics::gauge!("guild_sync_stage_consecutive_failures", "stage" => stage.clone());
    match status {
        "success" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            metrics::gauge!("guild_sync_stage_last_success_timestamp_seconds", "stage" => stage.clone())
                .set(now);
            failures.set(0.0);
        }
        "error" => failures.increment(1.0),
        // Partial runs did their work; skipped and abandoned ones say nothing about the stage.
        _ => {}
    }
    for (kind, n) in [
        ("found", counts.found),
        ("new", counts.new),
        ("updated", counts.updated),
        ("removed", counts.removed),
    ] {
        let counter =
            metrics::counter!("guild_sync_rows_total", "stage" => stage.clone(), "kind" => kind);
        counter.increment(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)));
    }
}

/// Seed each stage's last success from `sync_log` (`(source, unix seconds)`), so the "no
/// successful Battle.net sync for 24 h" alert survives a restart.
pub fn seed_last_success(rows: &[(String, f64)]) {
    install();
    for (stage, at) in rows {
        metrics::gauge!("guild_sync_stage_last_success_timestamp_seconds", "stage" => stage.clone())
            .set(*at);
    }
}

/// An HTTP request finished.
pub fn http_request(route: String, method: String, status: u16, elapsed: Duration) {
    install();
    metrics::histogram!(
        "guild_sync_http_request_duration_seconds",
        "route" => route,
        "method" => method,
        "status" => status.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// A run found the pipeline lock taken and waited `elapsed` (whether it then got it or not).
pub fn lock_waited(elapsed: Duration) {
    install();
    metrics::counter!("guild_sync_pipeline_lock_waits_total").increment(1);
    metrics::histogram!("guild_sync_pipeline_lock_wait_seconds").record(elapsed.as_secs_f64());
}

/// An addon upload was accepted (`superseded = false`) or replaced by a newer one.
pub fn upload(superseded: bool) {
    install();
    let outcome = if superseded { "superseded" } else { "accepted" };
    metrics::counter!("guild_sync_uploads_total", "outcome" => outcome).increment(1);
}

/// The text exposition of every family, with the open audit issues per type as given (read
/// from the database by the caller at scrape time, so officers' manual resolutions count).
pub fn render(open_issues: &[(String, i64)]) -> String {
    let handle = handle();
    // Every type, so a type whose last issue was resolved reads 0 rather than its old count.
    for issue_type in guild_sync_core::integrity::IssueType::ALL {
        let n = open_issues
            .iter()
            .find(|(t, _)| t == issue_type.as_str())
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("guild_sync_open_audit_issues", "issue_type" => issue_type.as_str())
            .set(n as f64);
    }
    for (issue_type, n) in open_issues {
        metrics::gauge!("guild_sync_open_audit_issues", "issue_type" => issue_type.clone())
            .set(*n as f64);
    }
    handle.render()
}
