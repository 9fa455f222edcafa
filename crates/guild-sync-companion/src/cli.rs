//! The companion's command line, shared by the `guild-sync-companion` binary and the service's
//! `guild-sync companion` subcommand (SPEC §2), so both take the same flags:
//!
//! - no subcommand: find the file, then watch it (or `--once`, or only `--print-path`);
//! - `setup`: ask for the server URL and key, check them, store them ([`crate::setup`]);
//! - `install` / `uninstall`: start at login or stop doing so ([`crate::autostart`]).
//!
//! Where each value comes from, first found wins: the flag, its environment variable, the
//! settings file, then (for the SavedVariables file only) [`crate::discovery`].

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::Secret;
use crate::autostart::{self, Launch, UserDirs};
use crate::discovery::{self, Platform};
use crate::settings;
use crate::setup::{SetupRequest, setup};
use crate::uploader::{Companion, CompanionOptions};

/// The companion: finds the PATTSync SavedVariables file and uploads each new export.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CompanionArgs {
    #[command(subcommand)]
    pub command: Option<CompanionCommand>,
    #[command(flatten)]
    pub run: RunArgs,
    /// The settings file (default: companion.toml in your config folder, e.g.
    /// %APPDATA%\guild-sync on Windows).
    #[arg(long, global = true, env = settings::PATH_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CompanionCommand {
    /// Ask for the server address and API key, check them with the server, and store them.
    Setup(SetupArgs),
    /// Start the companion at every login (Scheduled Task, LaunchAgent or systemd user unit).
    Install,
    /// Stop starting the companion at login.
    Uninstall,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// The `PATTSync.lua` SavedVariables file WoW writes (default: found in the usual places).
    #[arg(long, env = "WOW_SAVED_VARIABLES_PATH", value_name = "PATH")]
    pub saved_variables: Option<PathBuf>,
    /// The guild-sync server, e.g. `https://guild.example.org` (default: from `setup`).
    #[arg(long, env = "GUILD_SYNC_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// The key the server expects in `X-API-Key` (default: from `setup`).
    #[arg(
        long,
        env = "GUILD_SYNC_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Upload the current export (if new) and exit instead of watching.
    #[arg(long)]
    pub once: bool,
    /// Print which SavedVariables file would be used, and exit.
    #[arg(long)]
    pub print_path: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// The guild-sync server address (asked when not given).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// The API key (asked, without echo, when not given).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Store this SavedVariables file instead of finding it at every start.
    #[arg(long, value_name = "PATH")]
    pub saved_variables: Option<PathBuf>,
    /// Accept a plain http:// address to another machine (the key then crosses the network
    /// unencrypted).
    #[arg(long)]
    pub allow_http: bool,
}

/// How this binary was started, so `install` registers the same command.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The command as the officer types it, for hints (`guild-sync-companion`).
    pub command: String,
    /// Arguments before the companion's own (`["companion"]` for `guild-sync companion`).
    pub prefix: Vec<String>,
    /// A log file to pass as `--log-file` when started at login on Windows (no console shows
    /// the output there); `None` when the binary has no such flag.
    pub login_log_file: Option<PathBuf>,
}

/// Run the parsed command.
pub async fn run(args: CompanionArgs, invocation: &Invocation) -> Result<()> {
    let settings_path = match &args.config {
        Some(p) => p.clone(),
        None => settings::default_path()?,
    };
    match args.command {
        None => watch(args.run, &settings_path, invocation).await,
        Some(CompanionCommand::Setup(setup_args)) => {
            run_setup(setup_args, &settings_path, invocation).await
        }
        Some(CompanionCommand::Install) => {
            install(&settings_path, args.config.is_some(), invocation)
        }
        Some(CompanionCommand::Uninstall) => uninstall(),
    }
}

async fn watch(
    args: RunArgs,
    settings_path: &std::path::Path,
    invocation: &Invocation,
) -> Result<()> {
    let stored = settings::load(settings_path)?;
    let saved_variables = match args
        .saved_variables
        .clone()
        .or_else(|| stored.as_ref().and_then(|s| s.saved_variables.clone()))
    {
        Some(path) => {
            if args.print_path {
                println!("{}", path.display());
                return Ok(());
            }
            path
        }
        None => {
            let path = find_saved_variables()?;
            if args.print_path {
                println!("{}", path.display());
                return Ok(());
            }
            path
        }
    };
    let not_set = |what: &str, flag: &str, env: &str| {
        format!(
            "{what} is not set: run `{} setup` once, or pass {flag} or set {env} (no settings in {})",
            invocation.command,
            settings_path.display()
        )
    };
    let api_url = match args.api_url {
        Some(url) => url,
        None => stored
            .as_ref()
            .map(|s| s.api_url.clone())
            .with_context(|| not_set("the server", "--api-url", "GUILD_SYNC_API_URL"))?,
    };
    let api_key = match args.api_key {
        Some(key) => Secret::new(key),
        None => stored
            .as_ref()
            .map(|s| s.api_key.clone())
            .with_context(|| not_set("the API key", "--api-key", "GUILD_SYNC_API_KEY"))?,
    };
    let options = CompanionOptions::new(saved_variables, api_url, api_key);
    let mut companion = Companion::start(options).await?;
    if args.once {
        companion.run_once().await?;
        return Ok(());
    }
    companion
        .watch(async {
            // Ctrl-C ends the watch cleanly; if the signal cannot be installed, run until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
}

/// Search the usual places; say which file was chosen and what else was there.
fn find_saved_variables() -> Result<PathBuf> {
    let found = discovery::discover_here();
    let Some(newest) = found.newest() else {
        bail!("{}", found.not_found_message());
    };
    eprintln!(
        "Using {} (written {})",
        newest.path.display(),
        show_system_time(newest.modified)
    );
    for other in found.found.iter().skip(1) {
        eprintln!(
            "  also found, older: {} (written {})",
            other.path.display(),
            show_system_time(other.modified)
        );
    }
    Ok(newest.path.clone())
}

async fn run_setup(
    args: SetupArgs,
    settings_path: &std::path::Path,
    invocation: &Invocation,
) -> Result<()> {
    let api_url = match args.api_url {
        Some(url) => url,
        None => ask_line("guild-sync server address (e.g. https://guild.example.org): ")?,
    };
    let api_key = match args.api_key {
        Some(key) => key,
        None => rpassword::prompt_password("API key (typing is not shown): ")
            .context("cannot read the key from the terminal; pass --api-key")?,
    };
    let outcome = setup(
        settings_path,
        SetupRequest {
            api_url,
            api_key: Secret::new(api_key),
            saved_variables: args.saved_variables,
            allow_http: args.allow_http,
        },
    )
    .await?;
    println!(
        "The server accepted the key. Saved to {}",
        settings_path.display()
    );
    match outcome.server_export_time {
        Some(t) => println!(
            "The server's last upload is the export made at {}.",
            show_unix(t)
        ),
        None => println!("The server has no upload yet."),
    }
    match &outcome.settings.saved_variables {
        Some(path) => println!("The companion will upload {}.", path.display()),
        None => {
            let found = discovery::discover_here();
            match found.newest() {
                Some(newest) => println!(
                    "The companion will upload {} (the newest found).",
                    newest.path.display()
                ),
                None => println!("Note: {}", found.not_found_message()),
            }
        }
    }
    println!(
        "Next: run `{} install` to start it at every login.",
        invocation.command
    );
    Ok(())
}

fn ask_line(prompt: &str) -> Result<String> {
    let mut out = std::io::stderr();
    write!(out, "{prompt}").and_then(|()| out.flush())?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer; pass it as a flag instead")?;
    Ok(line.trim().to_owned())
}

fn install(
    settings_path: &std::path::Path,
    custom_settings: bool,
    invocation: &Invocation,
) -> Result<()> {
    // Started at login there is no terminal and no environment of ours: everything must come
    // from the settings file.
    if settings::load(settings_path)?.is_none() {
        bail!(
            "run `{} setup` first: the companion started at login reads the server and key from {}",
            invocation.command,
            settings_path.display()
        );
    }
    let platform = Platform::current();
    let mut args = invocation.prefix.clone();
    if custom_settings {
        args.push("--config".into());
        args.push(absolute(settings_path)?.to_string_lossy().into_owned());
    }
    if platform == Platform::Windows
        && let Some(log) = &invocation.login_log_file
    {
        args.push("--log-file".into());
        args.push(log.to_string_lossy().into_owned());
    }
    let launch = Launch {
        exe: std::env::current_exe().context("cannot find this program's own path")?,
        args,
    };
    let mut plan = autostart::plan(platform, &launch, &UserDirs::current()?)?;
    if platform == Platform::Windows
        && let Some(log) = &invocation.login_log_file
    {
        plan.log = log.display().to_string();
    }
    autostart::install(&plan)?;
    println!("Installed: {}", plan.file.display());
    println!(
        "The companion now starts at every login (and was started now); its log: {}",
        plan.log
    );
    println!(
        "It runs {}: keep the program there, or run `install` again after moving it.",
        launch.exe.display()
    );
    Ok(())
}

fn uninstall() -> Result<()> {
    let platform = Platform::current();
    let launch = Launch {
        exe: std::env::current_exe().context("cannot find this program's own path")?,
        args: Vec::new(),
    };
    let plan = autostart::plan(platform, &launch, &UserDirs::current()?)?;
    if autostart::uninstall(&plan)? {
        println!(
            "Removed {}; the companion no longer starts at login.",
            plan.file.display()
        );
    } else {
        println!(
            "The companion was not installed ({} does not exist).",
            plan.file.display()
        );
    }
    Ok(())
}

fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

fn show_unix(unix_seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0).map_or_else(
        || unix_seconds.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn show_system_time(t: std::time::SystemTime) -> String {
    DateTime::<Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// Where the binary keeps its log when started at login on Windows.
pub fn default_login_log_file() -> Option<PathBuf> {
    settings::app_dir().ok().map(|d| d.join("companion.log"))
}
