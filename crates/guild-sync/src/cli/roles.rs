//! `guild-sync roles plan|apply|undo`: the Discord role sync from the command line, over
//! [`crate::role_sync`]. `apply` asks for confirmation unless `--yes`; with `--json` the
//! outcome (including `run_id`) is the last line of stdout.

use std::io::{BufRead, Write};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use guild_sync_core::roles::RoleRunStatus;

use crate::config::Config;
use crate::database::Database;
use crate::role_sync::{self, ApplyOptions};

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Show (and store) the role plan: which rank roles would be added or removed.
    Plan(super::JsonArgs),
    /// Apply the plan to Discord, guards included.
    Apply(RolesApplyArgs),
    /// Reverse every change of a role run.
    Undo(RolesUndoArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RolesApplyArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Apply even if the plan changes more than 10 % of linked members.
    #[arg(long)]
    pub allow_mass_change: bool,
    #[command(flatten)]
    pub stage: super::StageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RolesUndoArgs {
    /// The `run_id` an apply printed.
    pub run_id: i64,
    #[command(flatten)]
    pub stage: super::StageArgs,
}

pub async fn run(config: &Config, command: RolesCommand) -> Result<()> {
    let db = Database::open(config).await?;
    let result = dispatch(config, &db, command).await;
    db.close().await;
    result
}

async fn dispatch(config: &Config, db: &Database, command: RolesCommand) -> Result<()> {
    match command {
        RolesCommand::Plan(output) => {
            let stored = role_sync::plan_and_store(&db.pool, config).await?;
            let mut human = format!("{} (plan {})", stored.summary, stored.plan_id);
            for c in &stored.plan.changes {
                human.push_str(&format!(
                    "\n  {} {:?} {} {}",
                    c.action.as_str(),
                    c.role,
                    if c.action.as_str() == "add" {
                        "to"
                    } else {
                        "from"
                    },
                    // Debug formatting quotes and escapes untrusted names for the terminal.
                    format_args!("{:?} ({})", c.display_name, c.discord_id)
                ));
            }
            super::print_stats(output.json, &human, &stored)
        }
        RolesCommand::Apply(args) => {
            if !args.yes {
                let plan = role_sync::build_plan(&db.pool, config, chrono::Utc::now()).await?;
                eprint!("{}\nApply these changes to Discord? [y/N] ", plan.summary());
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !answer.trim().eq_ignore_ascii_case("y") {
                    bail!("not applied: not confirmed (use --yes to skip the question)");
                }
            }
            // Under the pipeline lock: never beside a pipeline whose check plans or applies roles.
            let options = ApplyOptions {
                allow_mass_change: args.allow_mass_change,
                approved_plan: None,
            };
            let outcome = super::locked(
                &db.pool,
                &args.stage.lock,
                role_sync::apply(&db.pool, config, options),
            )
            .await?;
            let human = format!(
                "role run {}: {} — {} change(s) applied, {} verified, {} request(s){}",
                outcome.run_id,
                outcome.status,
                outcome.applied,
                outcome.verified,
                outcome.requests,
                outcome
                    .reason
                    .as_deref()
                    .map(|r| format!("; stopped: {r}"))
                    .unwrap_or_default()
            );
            super::print_stats(args.stage.output.json, &human, &outcome)?;
            if outcome.status != RoleRunStatus::Success {
                bail!("role run {} stopped", outcome.run_id);
            }
            Ok(())
        }
        RolesCommand::Undo(args) => {
            let outcome = super::locked(
                &db.pool,
                &args.stage.lock,
                role_sync::undo(&db.pool, config, args.run_id),
            )
            .await?;
            let human = format!(
                "undo of role run {} (run {}): {}, {} change(s) reversed",
                args.run_id, outcome.run_id, outcome.status, outcome.applied
            );
            super::print_stats(args.stage.output.json, &human, &outcome)?;
            if outcome.status != RoleRunStatus::Success {
                bail!("undo run {} stopped", outcome.run_id);
            }
            Ok(())
        }
    }
}
