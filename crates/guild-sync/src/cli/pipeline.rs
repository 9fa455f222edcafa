//! `guild-sync pipeline`: every stage once — Battle.net sync, Discord sync, the addon file if
//! given, match, check, report — through the scheduler, so it takes the same cross-process lock
//! as `serve` and is recorded as a `pipeline:full` run.

use std::sync::Arc;

use anyhow::{Result, bail};

use crate::config::{Config, RemovalGuard};
use crate::database::Database;
use crate::db_sync::BlizzardInput;
use crate::discord_sender::DiscordSender;
use crate::discord_sync::DiscordInput;
use crate::run_recorder::RunStatus;
use crate::scheduler::{
    AddonInput, PipelineKind, ProductionStages, ReportMode, Scheduler, StageInputs,
};

pub async fn run(config: &Config, args: super::PipelineArgs) -> Result<()> {
    let inputs = StageInputs {
        blizzard: match &args.from_dir {
            Some(dir) => BlizzardInput::Dir(dir.clone()),
            None => BlizzardInput::Live,
        },
        discord: match &args.from_file {
            Some(file) => DiscordInput::File(file.clone()),
            None => DiscordInput::Live,
        },
        guard: RemovalGuard::from_config(config, args.allow_mass_removal),
        report: if args.stdout {
            ReportMode::Text
        } else {
            ReportMode::Send(DiscordSender::from_config(config)?)
        },
        full_report: false,
        show_progress: !args.stage.output.json,
    };
    let db = Database::open(config).await?;
    let stages = ProductionStages::new(db.pool.clone(), config.clone(), inputs);
    let scheduler = Scheduler::new(db.pool.clone(), Arc::new(stages))
        .waiting_for_the_lock(args.stage.lock.wait());
    let kind = PipelineKind::Full {
        addon: args.addon_file.clone().map(AddonInput::File),
    };
    let outcome = scheduler.run_pipeline(kind).await;
    db.close().await;
    let outcome = outcome?;

    if let Some(text) = outcome.report_text() {
        println!("{text}");
    }
    match outcome.status {
        RunStatus::Success | RunStatus::Partial => {
            let human = format!(
                "pipeline finished in {:.2} s: {}",
                outcome.duration_seconds,
                outcome
                    .stages
                    .iter()
                    .map(|s| s.step.as_str())
                    .collect::<Vec<_>>()
                    .join(" → ")
            );
            super::print_stats(args.stage.output.json, &human, &outcome)
        }
        RunStatus::Skipped => super::lock_taken(),
        RunStatus::Error | RunStatus::Abandoned => bail!(
            "the pipeline stopped: {}",
            outcome.error.unwrap_or_else(|| "unknown error".into())
        ),
    }
}
