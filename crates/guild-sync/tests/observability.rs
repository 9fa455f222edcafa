//! Issue 21: per-stage timings in the pipeline's JSON and in every `sync_log` row, and the
//! Prometheus `/metrics` endpoint — served over real TCP by the service's own HTTP server,
//! after a real pipeline on the bundled sample guild, on a real PostgreSQL — parsed as the
//! text exposition format and checked for every family the issue lists. And the run's log
//! span (issue 13): it marks the run's own lines, never another task's.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use guild_sync::api::metrics::MetricsAccess;
use guild_sync::api::{self, AppState};
use guild_sync::config::{Config, Secret};
use guild_sync::database::Database;
use guild_sync::db::sync_log::RunCounts;
use guild_sync::run_recorder::{RunReport, RunStatus, record_run};
use guild_sync::scheduler::{
    AddonInput, LockWait, PipelineKind, PipelineOutcome, ProductionStages, Scheduler, StageInputs,
    lock_for_command,
};
use guild_sync::testing::TestDb;
use tokio_util::sync::CancellationToken;

use common::{CapturedLog, on_a_fresh_db};

fn sample(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("demo")
        .join(relative)
}

/// The sample guild through every stage once (report rendered as text).
async fn full_pipeline(db: &TestDb) -> (Arc<Scheduler>, PipelineOutcome) {
    guild_sync::install_crypto_provider();
    let config = Config::defaults();
    let inputs = StageInputs::files(&config, sample("blizzard"), sample("discord/members.json"));
    let stages = ProductionStages::new(db.pool.clone(), config, inputs);
    let scheduler = Arc::new(Scheduler::new(db.pool.clone(), Arc::new(stages)));
    let outcome = scheduler
        .run_pipeline(PipelineKind::Full {
            addon: Some(AddonInput::File(sample("addon/PATTSync.lua"))),
        })
        .await
        .expect("the pipeline runs");
    assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.error);
    (scheduler, outcome)
}

/// `sync_log` (source, duration, load, plan, apply).
type TimedRow = (String, f64, Option<f64>, Option<f64>, Option<f64>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_stage_timings_appear_in_the_pipeline_json_and_in_sync_log() {
    on_a_fresh_db(|db| async move {
        let (_scheduler, outcome) = full_pipeline(&db).await;

        // The pipeline's JSON (what `guild-sync pipeline --json` prints).
        let json = serde_json::to_value(&outcome).unwrap();
        let stages = json["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 6, "{json}");
        for stage in stages {
            let seconds = stage["seconds"]
                .as_f64()
                .expect("every step has its seconds");
            assert!(seconds > 0.0 && seconds < 60.0, "{stage}");
        }
        let by_step = |step: &str| {
            stages
                .iter()
                .find(|s| s["step"] == step)
                .unwrap_or_else(|| panic!("no {step} in {json}"))
        };
        for step in ["discord_sync", "addon_sync", "match", "check"] {
            for part in ["load_seconds", "plan_seconds", "apply_seconds"] {
                let value = by_step(step)[part].as_f64();
                assert!(
                    value.is_some_and(|v| v >= 0.0),
                    "{step}.{part} missing: {}",
                    by_step(step)
                );
            }
        }
        // Battle.net decides inside its apply transaction: load and apply, no plan part.
        assert!(by_step("blizzard_sync")["load_seconds"].as_f64().is_some());
        assert!(by_step("blizzard_sync")["apply_seconds"].as_f64().is_some());
        assert!(by_step("blizzard_sync")["plan_seconds"].is_null());
        // The parts never add up to more than the step's own wall time.
        let m = by_step("match");
        let parts: f64 = ["load_seconds", "plan_seconds", "apply_seconds"]
            .iter()
            .map(|p| m[p].as_f64().unwrap())
            .sum();
        assert!(parts <= m["seconds"].as_f64().unwrap() + 1e-6, "{m}");

        // Each stage's own sync_log row has its parts in the columns.
        let rows: Vec<TimedRow> = sqlx::query_as(
            "SELECT source, duration_seconds, load_seconds, plan_seconds, apply_seconds
             FROM guild_identity.sync_log ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let row = |source: &str| {
            rows.iter()
                .find(|r| r.0 == source)
                .unwrap_or_else(|| panic!("no {source} row in {rows:?}"))
        };
        for source in ["discord", "addon", "match", "check"] {
            let (_, duration, load, plan, apply) = row(source);
            let (load, plan, apply) = (load.unwrap(), plan.unwrap(), apply.unwrap());
            assert!(
                load >= 0.0 && plan >= 0.0 && apply > 0.0,
                "{source}: {rows:?}"
            );
            assert!(load + plan + apply <= duration + 1e-6, "{source}: {rows:?}");
        }
        let (_, _, load, plan, apply) = row("blizzard");
        assert!(
            load.is_some() && plan.is_none() && apply.is_some(),
            "{rows:?}"
        );
        // The pipeline's own row: no parts of its own, each step's under details.timings.
        let (_, _, load, plan, apply) = row("pipeline:full");
        assert_eq!((*load, *plan, *apply), (None, None, None));
        let details: serde_json::Value =
            sqlx::query_scalar("SELECT details FROM guild_identity.sync_log WHERE id = $1")
                .bind(outcome.run_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        let timings = &details["timings"];
        for step in [
            "blizzard_sync",
            "discord_sync",
            "addon_sync",
            "match",
            "check",
            "report",
        ] {
            assert!(timings[step]["seconds"].as_f64().is_some(), "{details}");
        }
        assert_eq!(
            timings["match"]["plan_seconds"].as_f64(),
            by_step("match")["plan_seconds"].as_f64()
        );
    })
    .await;
}

/// The families the issue lists, by the name a scrape shows (histograms as `_bucket` etc.).
const FAMILIES: [&str; 9] = [
    "guild_sync_stage_duration_seconds",
    "guild_sync_stage_last_success_timestamp_seconds",
    "guild_sync_stage_runs_total",
    "guild_sync_rows_total",
    "guild_sync_open_audit_issues",
    "guild_sync_http_request_duration_seconds",
    "guild_sync_pipeline_lock_waits_total",
    "guild_sync_pipeline_lock_wait_seconds",
    "guild_sync_uploads_total",
];

fn sample_value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name} {labels:?} sample"));
    match &found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("{name} is not a single value: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_exposes_every_family_after_a_pipeline() {
    on_a_fresh_db(|db| async move {
        let (scheduler, _outcome) = full_pipeline(&db).await;

        // A command that finds the pipeline lock taken waits for it: one lock wait.
        let held = lock_for_command(&db.pool, LockWait::Skip)
            .await
            .unwrap()
            .expect("nobody holds the lock");
        let pool = db.pool.clone();
        let waiter = tokio::spawn(async move {
            lock_for_command(&pool, LockWait::Within(Duration::from_secs(20)))
                .await
                .unwrap()
                .expect("the lock is released within the wait")
                .release()
                .await;
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.release().await;
        waiter.await.unwrap();

        // The service's own server and router, on the API listener: loopback clients only.
        let state = AppState {
            pool: db.pool.clone(),
            scheduler,
            config: Arc::new(Config {
                guild_sync_admin_token: None,
                guild_sync_api_key: None,
                ..Config::defaults()
            }),
        };
        let (listener, base) = guild_sync::testing::free_local_port().await;
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(guild_sync::service::http::serve(
            listener,
            api::router_with_metrics(state, MetricsAccess::LoopbackOnly),
            shutdown.clone(),
        ));
        let client = reqwest::Client::new();
        // A request to an API route first, so its latency is in the scrape.
        let health = client.get(format!("{base}/api/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);

        // No officer token: /metrics is off the officer auth.
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        let body = response.text().await.unwrap();

        // Valid exposition: every line a comment or `name{labels} value`, and it parses.
        for line in body.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
            let name_end = line.find(['{', ' ']).unwrap();
            assert!(
                line[..name_end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name: {line}"
            );
        }
        let scrape =
            prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
        for family in FAMILIES {
            assert!(
                scrape
                    .samples
                    .iter()
                    .any(|s| s.metric == family || s.metric.starts_with(&format!("{family}_"))),
                "family {family} missing from:\n{body}"
            );
            assert!(body.contains(&format!("# TYPE {family} ")), "no TYPE for {family}");
        }

        // What the pipeline did is in the figures.
        assert!(sample_value(&scrape, "guild_sync_rows_total", &[("stage", "discord"), ("kind", "found")]) > 0.0);
        assert!(sample_value(&scrape, "guild_sync_rows_total", &[("stage", "blizzard"), ("kind", "new")]) > 0.0);
        assert!(
            sample_value(&scrape, "guild_sync_stage_last_success_timestamp_seconds", &[("stage", "match")])
                > 1.7e9
        );
        assert!(sample_value(&scrape, "guild_sync_stage_runs_total", &[("stage", "check"), ("status", "success")]) >= 1.0);
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.audit_issues
             WHERE resolved_at IS NULL AND issue_type = 'orphan_wow'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(open > 0, "the sample guild has unclaimed characters");
        assert_eq!(
            sample_value(&scrape, "guild_sync_open_audit_issues", &[("issue_type", "orphan_wow")]),
            open as f64
        );
        assert!(
            body.contains(r#"guild_sync_http_request_duration_seconds_count{route="/api/health",method="GET",status="200"}"#),
            "{body}"
        );
        assert!(
            body.contains(r#"guild_sync_stage_duration_seconds_bucket{stage="match",status="success",le="#),
            "{body}"
        );
        assert!(sample_value(&scrape, "guild_sync_pipeline_lock_waits_total", &[]) >= 1.0);

        shutdown.cancel();
        server.await.unwrap();
    })
    .await;
}

/// Issue 13: `record_run` held `span.enter()` across its `.await`s, so while a run waited, every
/// other task the thread polled logged inside the run's span and read as part of it. Here the
/// run waits while another task on the same thread (a current-thread runtime, as one worker
/// thread of the service) logs.
#[tokio::test]
async fn a_runs_log_span_marks_its_own_lines_and_not_those_of_tasks_running_meanwhile() {
    let log = CapturedLog::default();
    let _subscriber = tracing::subscriber::set_default(log.subscriber(tracing::Level::INFO));
    on_a_fresh_db(|db| async move {
        let (go, other_may_log) = tokio::sync::oneshot::channel::<()>();
        let (logged, other_has_logged) = tokio::sync::oneshot::channel::<()>();
        let other = tokio::spawn(async move {
            other_may_log.await.expect("the run lets it go");
            tracing::info!("a line of another task");
            logged.send(()).expect("the run waits for it");
        });
        record_run(&db.pool, "span-check", |_run_id| async move {
            tracing::info!("a line of the run");
            go.send(()).expect("the other task waits");
            // The run is suspended here while the other task logs.
            other_has_logged.await.expect("the other task logged");
            Ok((
                (),
                RunReport::success(RunCounts::default(), &serde_json::json!({})),
            ))
        })
        .await
        .expect("the run is recorded");
        other.await.expect("the other task ends");
    })
    .await;
    let text = log.text();
    let line = |message: &str| {
        text.lines()
            .find(|line| line.contains(message))
            .unwrap_or_else(|| panic!("{message:?} was not logged:\n{text}"))
            .to_owned()
    };
    assert!(line("a line of the run").contains("run{"), "{text}");
    assert!(!line("a line of another task").contains("run{"), "{text}");
}

/// `GUILD_SYNC_METRICS_BIND`: `/metrics` on a listener of its own, for any client, served by the
/// service under its one cancellation token and closed once the service has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener_answer_any_client_and_stop_with_the_service() {
    on_a_fresh_db(|db| async move {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = Config {
            database_url: Some(Secret::new(db.url())),
            guild_sync_bind: "127.0.0.1:0".into(),
            guild_sync_metrics_bind: Some(format!("127.0.0.1:{port}")),
            ..Config::defaults()
        };
        let database = Database::open(&config).await.unwrap();
        let shutdown = CancellationToken::new();
        let service = tokio::spawn({
            let (config, shutdown) = (config.clone(), shutdown.clone());
            async move { guild_sync::service::run(&config, database, shutdown).await }
        });

        // The service binds its listeners as it starts: ask until the metrics one answers.
        let url = format!("http://127.0.0.1:{port}/metrics");
        let scrape = loop {
            match reqwest::get(&url).await {
                Ok(answer) if answer.status() == reqwest::StatusCode::OK => {
                    break answer.text().await.unwrap();
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        assert!(scrape.contains("guild_sync_"), "{scrape}");

        shutdown.cancel();
        service.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "the metrics listener is closed once the service has stopped"
        );
    })
    .await;
}
