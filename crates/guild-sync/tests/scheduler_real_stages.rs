//! The requirements' scheduler tests with the real stages: the bundled sample guild's files go
//! through Battle.net sync → Discord sync → addon sync → match → check → report under the
//! scheduler's lock, on a real PostgreSQL, and the report goes to a fake Discord webhook.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use guild_sync::config::{Config, RemovalGuard, Secret};
use guild_sync::db_sync::BlizzardInput;
use guild_sync::discord_sender::DiscordSender;
use guild_sync::discord_sync::DiscordInput;
use guild_sync::run_recorder::RunStatus;
use guild_sync::scheduler::{
    AddonInput, PipelineKind, PipelineOutcome, ProductionStages, ReportMode, Scheduler,
    StageInputs, Step,
};
use guild_sync::testing::TestDb;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::on_a_fresh_db_within;

fn sample(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("demo")
        .join(relative)
}

async fn scheduler_with_webhook(db: &TestDb, webhook: &MockServer) -> Scheduler {
    scheduler_reading(db, webhook, sample("blizzard")).await
}

/// The sample's Discord members and the Battle.net roster in `blizzard_dir`.
async fn scheduler_reading(db: &TestDb, webhook: &MockServer, blizzard_dir: PathBuf) -> Scheduler {
    guild_sync::install_crypto_provider();
    let config = Config::defaults();
    let sender = DiscordSender::webhook(Secret::new(format!(
        "{}/api/webhooks/1/token",
        webhook.uri()
    )))
    .unwrap();
    let inputs = StageInputs {
        blizzard: BlizzardInput::Dir(blizzard_dir),
        discord: DiscordInput::File(sample("discord/members.json")),
        guard: RemovalGuard::from_config(&config, false),
        report: ReportMode::Send(Some(sender)),
        full_report: false,
        show_progress: false,
    };
    let stages = ProductionStages::new(db.pool.clone(), config.clone(), inputs);
    Scheduler::new(db.pool.clone(), Arc::new(stages))
}

async fn accepting_webhook() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/webhooks/1/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "1"})))
        .mount(&server)
        .await;
    server
}

/// The stats of the pipeline's last finished step, as stored in `sync_log.details`.
fn last_stats(outcome: &PipelineOutcome) -> serde_json::Value {
    serde_json::to_value(&outcome.stages.last().unwrap().stats).unwrap()
}

async fn unnotified(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM guild_identity.audit_issues WHERE resolved_at IS NULL AND notified_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn test_pipeline_sync_match_check_report() {
    on_a_fresh_db_within(Duration::from_secs(300), |db| async move {
        let webhook = accepting_webhook().await;
        let scheduler = scheduler_with_webhook(&db, &webhook).await;

        let outcome = scheduler
            .run_pipeline(PipelineKind::Full {
                addon: Some(AddonInput::File(sample("addon/PATTSync.lua"))),
            })
            .await
            .unwrap();
        assert_eq!(outcome.status, RunStatus::Success, "{:?}", outcome.error);
        let steps: Vec<Step> = outcome.stages.iter().map(|s| s.step).collect();
        assert_eq!(
            steps,
            [
                Step::BlizzardSync,
                Step::DiscordSync,
                Step::AddonSync,
                Step::Match,
                Step::Check,
                Step::Report
            ]
        );
        // Each stage saw what the one before it wrote.
        let stats = |step: Step| serde_json::to_value(outcome.stats(step).unwrap()).unwrap();
        assert!(stats(Step::BlizzardSync)["found"].as_u64().unwrap() > 250);
        assert!(stats(Step::AddonSync)["matched"].as_u64().unwrap() > 250);
        assert!(stats(Step::Match)["links_created"].as_u64().unwrap() > 250);
        assert!(stats(Step::Check)["new"].as_u64().unwrap() > 0);
        assert!(stats(Step::Report)["messages_sent"].as_u64().unwrap() >= 1);

        // Every stage and the pipeline itself are sync_log rows, in pipeline order.
        let sources: Vec<String> = sqlx::query_scalar(
            "SELECT source FROM guild_identity.sync_log WHERE status = 'success' ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let position = |s: &str| {
            sources
                .iter()
                .position(|x| x == s)
                .unwrap_or_else(|| panic!("{s} in {sources:?}"))
        };
        assert!(position("blizzard") < position("discord"));
        assert!(position("discord") < position("addon"));
        assert!(position("addon") < position("match"));
        assert!(position("match") < position("check"));
        assert!(position("check") < position("report"));
        assert!(sources.iter().any(|s| s == "pipeline:full"));

        // What Discord accepted is marked notified.
        assert_eq!(unnotified(&db).await, 0);
        assert!(!webhook.received_requests().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn test_only_new_issues_trigger_report() {
    on_a_fresh_db_within(Duration::from_secs(300), |db| async move {
        let webhook = accepting_webhook().await;
        let scheduler = scheduler_with_webhook(&db, &webhook).await;
        let first = scheduler
            .run_pipeline(PipelineKind::Full { addon: None })
            .await
            .unwrap();
        assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
        let sent = webhook.received_requests().await.unwrap().len();
        assert!(sent >= 1);

        // The same inputs again: no new issue, so nothing is sent.
        let second = scheduler
            .run_pipeline(PipelineKind::Blizzard)
            .await
            .unwrap();
        assert_eq!(second.status, RunStatus::Success, "{:?}", second.error);
        let report = &last_stats(&second);
        assert_eq!(report["issues"], 0, "{report}");
        assert_eq!(webhook.received_requests().await.unwrap().len(), sent);

        // A new cause (a character stops logging in) raises a new issue, and only it is reported.
        sqlx::query(
            "UPDATE guild_identity.wow_characters SET last_login_at = now() - interval '400 days'
             WHERE id = (SELECT min(id) FROM guild_identity.wow_characters
                         WHERE last_login_at > now() - interval '20 days')",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let third = scheduler.run_pipeline(PipelineKind::Report).await.unwrap();
        assert_eq!(last_stats(&third)["issues"], 0, "no check ran yet");
        let fourth = scheduler.run_pipeline(PipelineKind::Discord).await.unwrap();
        assert_eq!(fourth.status, RunStatus::Success, "{:?}", fourth.error);
        let report = &last_stats(&fourth);
        assert_eq!(report["issues"], 1, "{report}");
        assert!(webhook.received_requests().await.unwrap().len() > sent);
        assert_eq!(unnotified(&db).await, 0);
    })
    .await;
}

/// The sync summaries the fake webhook received, as (title, description).
async fn summaries(webhook: &MockServer) -> Vec<(String, String)> {
    webhook
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
            let embed = &body["embeds"][0];
            let title = embed["title"].as_str()?;
            title.contains("Sync summary").then(|| {
                (
                    title.to_string(),
                    embed["description"].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn a_sync_summary_goes_to_the_audit_channel_only_when_something_notable_happened() {
    on_a_fresh_db_within(Duration::from_secs(300), |db| async move {
        let webhook = accepting_webhook().await;

        // First load: new characters are notable.
        let scheduler = scheduler_with_webhook(&db, &webhook).await;
        let first = scheduler
            .run_pipeline(PipelineKind::Blizzard)
            .await
            .unwrap();
        assert_eq!(first.status, RunStatus::Success, "{:?}", first.error);
        let sent = summaries(&webhook).await;
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].0.contains("blizzard"), "{sent:?}");

        // The same roster again: nothing new, removed or failed, so no summary.
        let second = scheduler
            .run_pipeline(PipelineKind::Blizzard)
            .await
            .unwrap();
        assert_eq!(second.status, RunStatus::Success, "{:?}", second.error);
        assert_eq!(summaries(&webhook).await.len(), 1);

        // A roster that would remove most of the guild is refused: the refusal is notable.
        let shrunken = tempfile::tempdir().unwrap();
        let mut roster: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sample("blizzard/roster.json")).unwrap())
                .unwrap();
        roster["members"].as_array_mut().unwrap().truncate(10);
        std::fs::write(
            shrunken.path().join("roster.json"),
            serde_json::to_vec(&roster).unwrap(),
        )
        .unwrap();
        let refusing = scheduler_reading(&db, &webhook, shrunken.path().to_path_buf()).await;
        let refused = refusing.run_pipeline(PipelineKind::Blizzard).await.unwrap();
        assert_eq!(refused.status, RunStatus::Error);
        assert_eq!(refused.failed_step, Some(Step::BlizzardSync));
        let sent = summaries(&webhook).await;
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[1].0.contains("blizzard"), "{sent:?}");
        assert!(sent[1].1.contains("Error:"), "{sent:?}");
    })
    .await;
}
