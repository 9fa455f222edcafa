//! The `guild-sync` command line: argument parsing and dispatch. Each subcommand lives in its
//! own file and is a thin shell over a library function; output formatting shared by the stage
//! commands (`--json`: the stats as one JSON object on the last line of stdout) lives here.

mod bench;
mod check;
mod companion;
mod demo;
mod match_cmd;
mod migrate;
mod pipeline;
mod report;
mod roles;
mod serve;
mod sync_addon;
mod sync_blizzard;
mod sync_discord;

use std::path::PathBuf;

use std::future::Future;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::Config;
use crate::scheduler::{self, LockWait};

/// Keeps a WoW guild's Battle.net roster and Discord server linked, audited and reported.
#[derive(Debug, Parser)]
#[command(name = "guild-sync", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole product on a bundled sample guild, on a database it starts itself.
    Demo(DemoArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run the HTTP API, the scheduler and the Discord gateway listener.
    Serve,
    /// Sync one source into the database.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Link characters and Discord users to players.
    #[command(name = "match")]
    Match(StageArgs),
    /// Run the integrity checks and record audit issues.
    Check(StageArgs),
    /// Send (or print) the audit report.
    Report(ReportArgs),
    /// Run every stage once: sync, match, check, report.
    Pipeline(PipelineArgs),
    /// Watch the addon's SavedVariables file and upload new exports (runs on the gaming PC).
    Companion(guild_sync_companion::cli::CompanionArgs),
    /// Measure every stage on a synthetic guild in a fresh database.
    Bench(BenchArgs),
    /// Discord role sync: the in-game rank drives the Discord role, through a plan.
    #[command(subcommand)]
    Roles(roles::RolesCommand),
}

impl Command {
    /// The async runtime this command runs on. The one-shot commands that work one step after
    /// another (the database and HTTP round trips in sequence; CPU-heavy parts already go to
    /// `spawn_blocking` and rayon) run on the calling thread: worker threads cost their start
    /// and a thread hand-off on every socket event, a measurable part of a command's start-up
    /// (issue 21: ≤ 10 ms). The service, the demo (which may serve), the pipeline and the
    /// benchmark (many stages, concurrent fetches) and the companion keep the worker pool.
    pub fn runtime(&self) -> tokio::runtime::Builder {
        match self {
            Command::Migrate
            | Command::Match(_)
            | Command::Check(_)
            | Command::Report(_)
            | Command::Sync(SyncCommand::Addon(_) | SyncCommand::Discord(_)) => {
                tokio::runtime::Builder::new_current_thread()
            }
            Command::Demo(_)
            | Command::Serve
            | Command::Sync(SyncCommand::Blizzard(_))
            | Command::Pipeline(_)
            | Command::Companion(_)
            | Command::Bench(_)
            | Command::Roles(_) => tokio::runtime::Builder::new_multi_thread(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Battle.net roster and character profiles → wow_characters.
    Blizzard(SyncBlizzardArgs),
    /// Discord members → discord_users.
    Discord(SyncDiscordArgs),
    /// A PATTSync export (`.lua`) or an upload body (`.json`) → notes on wow_characters.
    Addon(SyncAddonArgs),
}

#[derive(Debug, Clone, Args)]
pub struct JsonArgs {
    /// Print the stats as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// How a command that writes waits for the pipeline lock.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Fail at once if another guild-sync run holds the pipeline lock, instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
}

impl LockArgs {
    pub fn wait(&self) -> LockWait {
        if self.no_wait {
            LockWait::Skip
        } else {
            LockWait::Forever
        }
    }
}

/// What every command that writes takes: `--json` and `--no-wait` (`match` and `check` take
/// only these).
#[derive(Debug, Clone, Args)]
pub struct StageArgs {
    #[command(flatten)]
    pub output: JsonArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SyncBlizzardArgs {
    /// Read `roster.json` and `profiles/{realm}/{name}.json` from this directory instead of the API.
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    /// Apply a roster even if it removes more than the configured share of the guild at once.
    #[arg(long)]
    pub allow_mass_removal: bool,
    #[command(flatten)]
    pub stage: StageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SyncDiscordArgs {
    /// Read `{roles, members}` from this file instead of the API.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Apply a member list even if it marks more than the configured share departed at once.
    #[arg(long)]
    pub allow_mass_removal: bool,
    #[command(flatten)]
    pub stage: StageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SyncAddonArgs {
    /// A SavedVariables `PATTSync.lua` or an upload `.json`.
    pub file: PathBuf,
    /// Apply the export even if it is older than the last applied one (it would overwrite
    /// newer notes; ranks stay as a newer Battle.net sync set them either way).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub stage: StageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Report every unresolved issue, not only those not yet notified.
    #[arg(long)]
    pub full: bool,
    /// Print the report to the terminal instead of sending it to Discord.
    #[arg(long)]
    pub stdout: bool,
    #[command(flatten)]
    pub stage: StageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// Battle.net input directory (else the live API, if configured).
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    /// Discord input file (else the live API, if configured).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// A PATTSync export or upload body to apply after the Battle.net sync.
    #[arg(long, value_name = "FILE")]
    pub addon_file: Option<PathBuf>,
    /// Print the report instead of sending it.
    #[arg(long)]
    pub stdout: bool,
    #[arg(long)]
    pub allow_mass_removal: bool,
    #[command(flatten)]
    pub stage: StageArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Keep the HTTP API running afterwards so the sample guild can be explored.
    #[arg(long)]
    pub serve: bool,
    /// Apply the bundled later snapshot (the guild a week on: a rename, a promotion, a leave,
    /// a join, a nick change) and print what changed; loads the sample first if needed.
    #[arg(long)]
    pub later: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Guild characters in the synthetic guild.
    #[arg(long, default_value_t = 1000)]
    pub characters: usize,
    /// Discord members in each scenario (repeatable).
    #[arg(long = "discord", default_values_t = [3000usize, 50000])]
    pub discord: Vec<usize>,
}

/// Run the parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load()?;
    match cli.command {
        Command::Demo(args) => demo::run(&config, args).await,
        Command::Migrate => migrate::run(&config).await,
        Command::Serve => serve::run(&config).await,
        Command::Sync(SyncCommand::Blizzard(args)) => sync_blizzard::run(&config, args).await,
        Command::Sync(SyncCommand::Discord(args)) => sync_discord::run(&config, args).await,
        Command::Sync(SyncCommand::Addon(args)) => sync_addon::run(&config, args).await,
        Command::Match(args) => match_cmd::run(&config, args).await,
        Command::Check(args) => check::run(&config, args).await,
        Command::Report(args) => report::run(&config, args).await,
        Command::Pipeline(args) => pipeline::run(&config, args).await,
        Command::Companion(args) => companion::run(&config, args).await,
        Command::Bench(args) => bench::run(&config, args).await,
        Command::Roles(command) => roles::run(&config, command).await,
    }
}

/// Print a stage's result: the human summary, then with `--json` the stats as the last line.
pub fn print_stats(json: bool, human: &str, stats: &impl Serialize) -> Result<()> {
    if !human.is_empty() {
        println!("{human}");
    }
    if json {
        println!("{}", serde_json::to_string(stats)?);
    }
    Ok(())
}

/// Run `work` holding the pipeline lock, waiting for it as `lock` says (with a log line on
/// stderr while it waits), so a command never writes beside a pipeline or another command.
pub async fn locked<T>(
    pool: &PgPool,
    lock: &LockArgs,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let Some(held) = scheduler::lock_for_command(pool, lock.wait()).await? else {
        return lock_taken();
    };
    let result = work.await;
    held.release().await;
    result
}

/// The error of a command that found the pipeline lock taken with `--no-wait`.
fn lock_taken<T>() -> Result<T> {
    bail!(
        "another guild-sync run holds the pipeline lock on this database; nothing was done \
         (without --no-wait the command waits for it)"
    )
}
