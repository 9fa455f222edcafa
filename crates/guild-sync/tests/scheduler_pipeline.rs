//! The scheduler against a real PostgreSQL: pipeline order, the cross-process advisory lock,
//! failure handling, graceful shutdown and the Discord interval. The stages are a recording
//! implementation of `Stages` (the real ones run in `scheduler_real_stages`); the lock, the
//! database and `sync_log` are real.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use futures::FutureExt;
use futures::future::BoxFuture;
use guild_sync::config::Config;
use guild_sync::db::pipeline_lock::{ABANDONED_MESSAGE, LockConnection, RUN_MARK_CLASS};
use guild_sync::db::sync_log;
use guild_sync::db_sync::BlizzardSyncStats;
use guild_sync::db_sync::addon::AddonSyncStats;
use guild_sync::discord_sync::DiscordSyncStats;
use guild_sync::identity_engine::MatchStats;
use guild_sync::integrity_checker::CheckStats;
use guild_sync::run_recorder::RunStatus;
use guild_sync::scheduler::{
    AddonInput, PipelineKind, ProductionStages, ReportOutcome, SUPERSEDED_MESSAGE, Scheduler,
    Stages, StartError, Step, every,
};
use guild_sync::testing::TestDb;
use guild_sync_core::addon::AddonExport;
use guild_sync_core::integrity::TypeCounts;
use sqlx::{Connection, PgPool};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use common::{hold_pipeline_lock, on_a_fresh_db, within};

/// What every recording stage saw, shared by all schedulers of a test.
#[derive(Default)]
struct Recorder {
    steps: Mutex<Vec<(&'static str, Step)>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
}

impl Recorder {
    fn steps_of(&self, who: &str) -> Vec<Step> {
        let steps = self.steps.lock().unwrap();
        steps
            .iter()
            .filter(|(name, _)| *name == who)
            .map(|(_, step)| *step)
            .collect()
    }
}

/// Stages that record what ran, can fail at one step, can pause at the sync step until the
/// test releases them, and can take a little time so overlaps would show.
struct RecordingStages {
    who: &'static str,
    recorder: Arc<Recorder>,
    fail_at: Option<Step>,
    /// When set, a sync step reports on `entered` and waits for a permit on `release`.
    gate: Option<(mpsc::UnboundedSender<()>, Arc<Semaphore>)>,
    work: Duration,
}

impl RecordingStages {
    fn new(who: &'static str, recorder: &Arc<Recorder>) -> Self {
        RecordingStages {
            who,
            recorder: Arc::clone(recorder),
            fail_at: None,
            gate: None,
            work: Duration::ZERO,
        }
    }

    /// Stages whose sync step reports on the returned receiver when entered and then waits
    /// for a permit on the returned semaphore (it starts with none).
    fn gated(
        who: &'static str,
        recorder: &Arc<Recorder>,
    ) -> (Self, mpsc::UnboundedReceiver<()>, Arc<Semaphore>) {
        let (entered_tx, entered) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let mut stages = Self::new(who, recorder);
        stages.gate = Some((entered_tx, Arc::clone(&release)));
        (stages, entered, release)
    }

    /// Record `step`, then return `stats` as its result.
    fn step<T: Send + 'static>(&self, step: Step, stats: T) -> BoxFuture<'_, Result<T>> {
        async move {
            let now = self.recorder.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.recorder.max_active.fetch_max(now, Ordering::SeqCst);
            self.recorder.steps.lock().unwrap().push((self.who, step));
            let is_sync = matches!(
                step,
                Step::BlizzardSync | Step::DiscordSync | Step::AddonSync
            );
            if let (true, Some((entered, release))) = (is_sync, &self.gate) {
                entered.send(()).unwrap();
                release.acquire().await.unwrap().forget();
            }
            if !self.work.is_zero() {
                tokio::time::sleep(self.work).await;
            }
            self.recorder.active.fetch_sub(1, Ordering::SeqCst);
            if self.fail_at == Some(step) {
                return Err(anyhow!("{} broke on purpose", step.as_str()));
            }
            Ok(stats)
        }
        .boxed()
    }
}

impl Stages for RecordingStages {
    fn blizzard_sync(&self) -> BoxFuture<'_, Result<BlizzardSyncStats>> {
        self.step(Step::BlizzardSync, BlizzardSyncStats::default())
    }
    fn discord_sync(&self) -> BoxFuture<'_, Result<DiscordSyncStats>> {
        self.step(Step::DiscordSync, DiscordSyncStats::default())
    }
    fn addon_sync<'a>(&'a self, _: &'a AddonInput) -> BoxFuture<'a, Result<AddonSyncStats>> {
        self.step(Step::AddonSync, AddonSyncStats::default())
    }
    fn run_matching(&self) -> BoxFuture<'_, Result<MatchStats>> {
        self.step(Step::Match, MatchStats::default())
    }
    fn integrity_check(&self) -> BoxFuture<'_, Result<CheckStats>> {
        // Stats that name who ran the check, so the test can find them in `sync_log.details`.
        let by_who = CheckStats {
            by_type: [(self.who.to_string(), TypeCounts::default())].into(),
            ..CheckStats::default()
        };
        self.step(Step::Check, by_who)
    }
    fn report(&self) -> BoxFuture<'_, Result<ReportOutcome>> {
        self.step(Step::Report, ReportOutcome::NoSender)
    }
}

/// A scheduler on the test database whose stages (named "a") record into the returned recorder.
fn recording_scheduler(db: &TestDb) -> (Arc<Scheduler>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let stages = Arc::new(RecordingStages::new("a", &recorder));
    (Arc::new(Scheduler::new(db.pool.clone(), stages)), recorder)
}

/// The steps of one whole pipeline that starts with `sync`.
fn pipeline_of(sync: Step) -> [Step; 4] {
    [sync, Step::Match, Step::Check, Step::Report]
}

/// A second pool on the same database: what a second `serve` process would have.
async fn second_pool(db: &TestDb) -> PgPool {
    PgPool::connect_with(db.connect_options()).await.unwrap()
}

async fn run_row(pool: &PgPool, id: i64) -> (String, String, Option<String>, serde_json::Value) {
    sqlx::query_as(
        "SELECT source, status, error_message, details FROM guild_identity.sync_log WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_battle_net_pipeline_runs_sync_then_match_then_check_then_report() {
    on_a_fresh_db(|db| async move {
        let (scheduler, recorder) = recording_scheduler(&db);

        let outcome = scheduler
            .run_pipeline(PipelineKind::Blizzard)
            .await
            .unwrap();

        assert_eq!(outcome.status, RunStatus::Success);
        assert_eq!(recorder.steps_of("a"), pipeline_of(Step::BlizzardSync));
        let (source, status, error, details) = run_row(&db.pool, outcome.run_id).await;
        assert_eq!(
            (source.as_str(), status.as_str(), error),
            ("pipeline:blizzard", "success", None)
        );
        let stages = details["stages"].as_object().unwrap();
        assert_eq!(stages.len(), 4, "{details}");
        assert!(
            details["stages"]["check"]["by_type"]["a"].is_object(),
            "{details}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_discord_and_addon_pipelines_end_with_match_check_report() {
    on_a_fresh_db(|db| async move {
        let (scheduler, recorder) = recording_scheduler(&db);
        scheduler.run_pipeline(PipelineKind::Discord).await.unwrap();
        scheduler
            .run_pipeline(PipelineKind::Addon(AddonInput::File("PATTSync.lua".into())))
            .await
            .unwrap();
        assert_eq!(
            recorder.steps_of("a"),
            [pipeline_of(Step::DiscordSync), pipeline_of(Step::AddonSync)].concat()
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_stage_stops_the_pipeline_and_is_recorded() {
    on_a_fresh_db(|db| async move {
        let recorder = Arc::new(Recorder::default());
        let mut stages = RecordingStages::new("a", &recorder);
        stages.fail_at = Some(Step::Match);
        let scheduler = Scheduler::new(db.pool.clone(), Arc::new(stages));

        let outcome = scheduler
            .run_pipeline(PipelineKind::Blizzard)
            .await
            .unwrap();

        assert_eq!(outcome.status, RunStatus::Error);
        assert_eq!(outcome.failed_step, Some(Step::Match));
        assert_eq!(recorder.steps_of("a"), [Step::BlizzardSync, Step::Match]);
        let (_, status, error, details) = run_row(&db.pool, outcome.run_id).await;
        assert_eq!(status, "error");
        let error = error.unwrap();
        assert!(error.starts_with("match: "), "{error}");
        assert!(error.contains("broke on purpose"), "{error}");
        assert_eq!(details["failed_step"], "match");

        // The lock was released: the next run goes ahead.
        let next = scheduler.run_pipeline(PipelineKind::Report).await.unwrap();
        assert_eq!(next.status, RunStatus::Success);
    })
    .await;
}

#[tokio::test]
async fn a_run_that_finds_another_scheduler_holding_the_lock_is_skipped_not_run_twice() {
    on_a_fresh_db(|db| async move {
        let recorder = Arc::new(Recorder::default());
        let (first, mut entered, release) = RecordingStages::gated("first", &recorder);
        let first = Arc::new(Scheduler::new(db.pool.clone(), Arc::new(first)));
        let second = Scheduler::new(
            second_pool(&db).await,
            Arc::new(RecordingStages::new("second", &recorder)),
        );

        let running_id = first.trigger(PipelineKind::Blizzard).await.unwrap();
        entered.recv().await.unwrap();

        let skipped = second.run_pipeline(PipelineKind::Blizzard).await.unwrap();
        assert_eq!(skipped.status, RunStatus::Skipped);
        assert!(recorder.steps_of("second").is_empty());
        let (source, status, error, _) = run_row(&db.pool, skipped.run_id).await;
        assert_eq!(
            (source.as_str(), status.as_str()),
            ("pipeline:blizzard", "skipped")
        );
        assert_eq!(error.as_deref(), Some("another pipeline was running"));

        release.add_permits(1);
        first.shutdown().await;
        let (_, status, _, _) = run_row(&db.pool, running_id).await;
        assert_eq!(status, "success");
        assert_eq!(recorder.steps_of("first"), pipeline_of(Step::BlizzardSync));

        // Once the first run is over, the second scheduler runs normally.
        let after = second.run_pipeline(PipelineKind::Discord).await.unwrap();
        assert_eq!(after.status, RunStatus::Success);
    })
    .await;
}

#[tokio::test]
async fn a_lock_held_by_any_session_on_the_documented_key_makes_runs_skip() {
    on_a_fresh_db(|db| async move {
        let (scheduler, recorder) = recording_scheduler(&db);
        let operator = hold_pipeline_lock(&db).await;

        let outcome = scheduler.run_pipeline(PipelineKind::Discord).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Skipped);
        assert!(recorder.steps_of("a").is_empty());

        operator.close().await.unwrap();
        let outcome = scheduler.run_pipeline(PipelineKind::Discord).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Success);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_one_database_never_run_pipelines_concurrently() {
    on_a_fresh_db(|db| async move {
        let recorder = Arc::new(Recorder::default());
        let mut a = RecordingStages::new("a", &recorder);
        a.work = Duration::from_millis(15);
        let mut b = RecordingStages::new("b", &recorder);
        b.work = Duration::from_millis(15);
        let a = Arc::new(Scheduler::new(db.pool.clone(), Arc::new(a)));
        let b = Arc::new(Scheduler::new(second_pool(&db).await, Arc::new(b)));

        const RUNS: usize = 12;
        let mut handles = Vec::new();
        for i in 0..RUNS {
            let scheduler = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let kind = if i % 3 == 0 {
                PipelineKind::Blizzard
            } else {
                PipelineKind::Discord
            };
            handles.push(tokio::spawn(
                async move { scheduler.run_pipeline(kind).await },
            ));
        }
        let mut succeeded = 0;
        let mut skipped = 0;
        for handle in handles {
            match handle.await.unwrap().unwrap().status {
                RunStatus::Success => succeeded += 1,
                RunStatus::Skipped => skipped += 1,
                other => panic!("unexpected status {other:?}"),
            }
        }
        assert_eq!(succeeded + skipped, RUNS);
        assert!(succeeded >= 1);
        assert_eq!(
            recorder.max_active.load(Ordering::SeqCst),
            1,
            "two stages overlapped"
        );
        let steps = recorder.steps.lock().unwrap().len();
        assert_eq!(
            steps,
            succeeded * 4,
            "every run that went ahead ran all four steps once"
        );
        let rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.sync_log WHERE source LIKE 'pipeline:%'
             AND status IN ('success', 'skipped')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            rows, RUNS as i64,
            "every run, skipped or not, is a sync_log row"
        );
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_lets_the_running_pipeline_finish_and_starts_no_new_run() {
    on_a_fresh_db(|db| async move {
        let recorder = Arc::new(Recorder::default());
        let (stages, mut entered, release) = RecordingStages::gated("a", &recorder);
        let scheduler = Arc::new(Scheduler::new(db.pool.clone(), Arc::new(stages)));

        let running_id = scheduler.trigger(PipelineKind::Discord).await.unwrap();
        entered.recv().await.unwrap();

        scheduler.begin_shutdown();
        let stopping = {
            let scheduler = Arc::clone(&scheduler);
            tokio::spawn(async move { scheduler.shutdown().await })
        };
        assert!(matches!(
            scheduler.run_pipeline(PipelineKind::Blizzard).await,
            Err(StartError::ShuttingDown)
        ));
        assert!(matches!(
            scheduler.trigger(PipelineKind::Report).await,
            Err(StartError::ShuttingDown)
        ));
        // The run is still blocked in its sync step, so shutdown cannot have completed.
        assert!(!stopping.is_finished());

        release.add_permits(1);
        stopping.await.unwrap();

        let (_, status, _, _) = run_row(&db.pool, running_id).await;
        assert_eq!(status, "success");
        assert_eq!(recorder.steps_of("a"), pipeline_of(Step::DiscordSync));
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.sync_log")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(runs, 1, "refused runs leave no sync_log row");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_discord_job_runs_at_start_and_then_every_interval_until_shutdown() {
    // Virtual time: a deadlock would auto-advance the clock to this timeout and fail.
    within(Duration::from_secs(24 * 3600), async {
        let config = Config::defaults();
        let period = Duration::from_secs(config.guild_sync_discord_interval_minutes * 60);
        assert_eq!(period, Duration::from_secs(15 * 60));
        let (ticks_tx, mut ticks) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let job = tokio::spawn(every(period, stop.clone(), move || {
            let ticks_tx = ticks_tx.clone();
            async move { ticks_tx.send(tokio::time::Instant::now()).unwrap() }
        }));

        for n in 0..4u32 {
            let at = ticks.recv().await.unwrap();
            assert_eq!(at - start, period * n, "run {n}");
        }
        stop.cancel();
        job.await.unwrap();
        assert!(ticks.recv().await.is_none(), "no run after shutdown");
    })
    .await;
}

#[tokio::test]
async fn the_report_step_without_a_discord_sender_is_skipped_not_an_error() {
    on_a_fresh_db(|db| async move {
        let stages = ProductionStages::for_service(db.pool.clone(), Config::defaults(), None);
        let stats = serde_json::to_value(stages.report().await.unwrap()).unwrap();
        assert_eq!(stats["sent"], false);
    })
    .await;
}

/// Wait (by polling the server, not by timing) until no session holds an advisory lock marking
/// row `id` as owned — what the server does once a killed process's connection is gone.
async fn wait_until_unowned(pool: &PgPool, id: i64) {
    loop {
        let owned: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
                            AND classid = $1::int4::oid AND objid = $2::int4::oid)",
        )
        .bind(RUN_MARK_CLASS)
        .bind(i32::try_from(id).unwrap())
        .fetch_one(pool)
        .await
        .unwrap();
        if !owned {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn runs_a_killed_process_left_running_are_closed_as_abandoned_by_the_next_lock_holder() {
    on_a_fresh_db(|db| async move {
        let (scheduler, recorder) = recording_scheduler(&db);
        let operator = hold_pipeline_lock(&db).await;

        // A process that opened its pipeline row and a stage row, then was killed: its
        // connection is gone, its rows stay `running`.
        let (killed, dead_pipeline) = LockConnection::open_run(&db.pool, "pipeline:discord")
            .await
            .unwrap();
        let dead_stage = sync_log::open(&db.pool, "discord").await.unwrap();
        drop(killed);
        wait_until_unowned(&db.pool, dead_pipeline).await;

        // An upload waiting its turn is running too, but alive.
        let waiting = scheduler
            .trigger(PipelineKind::Addon(AddonInput::File("PATTSync.lua".into())))
            .await
            .unwrap();
        // A run that does not get the lock closes nothing.
        let skipped = scheduler.run_pipeline(PipelineKind::Report).await.unwrap();
        assert_eq!(skipped.status, RunStatus::Skipped);
        for id in [dead_pipeline, dead_stage, waiting] {
            assert_eq!(run_row(&db.pool, id).await.1, "running", "run {id}");
        }

        // The waiting upload takes the lock once it is free, closes the dead runs and runs.
        operator.close().await.unwrap();
        scheduler.shutdown().await;
        for id in [dead_pipeline, dead_stage] {
            let (_, status, error, _) = run_row(&db.pool, id).await;
            assert_eq!(status, "abandoned", "run {id}");
            assert_eq!(error.as_deref(), Some(ABANDONED_MESSAGE));
        }
        assert_eq!(run_row(&db.pool, waiting).await.1, "success");
        assert_eq!(recorder.steps_of("a"), pipeline_of(Step::AddonSync));
    })
    .await;
}

/// The runs whose sessions wait for an advisory lock on this database, by the run mark each
/// session holds (`None` for a waiting session without one).
async fn runs_waiting_for_a_lock(pool: &PgPool) -> Vec<Option<i64>> {
    sqlx::query_scalar(
        "SELECT mark.objid::int8 FROM pg_locks waiting
         LEFT JOIN pg_locks mark ON mark.pid = waiting.pid AND mark.granted
              AND mark.locktype = 'advisory' AND mark.objsubid = 2
              AND mark.classid = $1::int4::oid
         WHERE waiting.locktype = 'advisory' AND NOT waiting.granted
           AND waiting.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY 1",
    )
    .bind(RUN_MARK_CLASS)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_burst_of_uploads_keeps_one_waiting_and_applies_only_the_newest() {
    on_a_fresh_db(|db| async move {
        let (scheduler, recorder) = recording_scheduler(&db);
        let operator = hold_pipeline_lock(&db).await;

        const UPLOADS: i64 = 50;
        let mut runs = Vec::new();
        for n in 0..UPLOADS {
            let export = AddonExport {
                export_time: Some(1_700_000_000 + n),
                addon_version: None,
                guild_name: None,
                uploaded_by: Some(format!("officer-{n}")),
                characters: Vec::new(),
                warnings: Vec::new(),
            };
            let triggered = scheduler.trigger_upload(Arc::new(export)).await.unwrap();
            // Each upload says which waiting one it replaced: the one before it.
            assert_eq!(triggered.replaced, runs.last().copied(), "upload {n}");
            runs.push(triggered.run_id);
        }
        // The replaced ones stop waiting: one session waits for the lock, not fifty — the
        // newest upload's. Polled until it holds (a hang fails the test's timeout): counting
        // "at most one waiter" was already true before the spawned runs began to wait. (A
        // replaced upload's cancel that reached the server before its wait began was lost, and
        // it waited beside the newest one: this loop then hung in about one run in four.)
        let (newest, replaced) = runs.split_last().unwrap();
        while runs_waiting_for_a_lock(&db.pool).await != [Some(*newest)] {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        operator.close().await.unwrap();
        scheduler.shutdown().await;
        assert_eq!(run_row(&db.pool, *newest).await.1, "success");
        for id in replaced {
            let (_, status, error, _) = run_row(&db.pool, *id).await;
            assert_eq!(
                (status.as_str(), error.as_deref()),
                ("skipped", Some(SUPERSEDED_MESSAGE)),
                "run {id}"
            );
        }
        assert_eq!(
            recorder.steps_of("a"),
            pipeline_of(Step::AddonSync),
            "one upload applied"
        );
    })
    .await;
}
