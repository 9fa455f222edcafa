//! `guild-sync-companion`: the companion as its own small program for the officer's gaming PC
//! (the download for Windows). A thin shell over [`guild_sync_companion::cli`]; it adds only the
//! logging setup, with `--log-file` for when it is started at login and no console shows output.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::Parser;
use guild_sync_companion::cli::{self, CompanionArgs, Invocation};

/// A log file larger than this is moved to `<file>.old` at start, so a PC that runs the
/// companion for years does not fill up (bytes).
const MAX_LOG_BYTES: u64 = 5 * 1024 * 1024;

/// Finds WoW's PATTSync SavedVariables file and uploads each new export to the guild-sync server.
#[derive(Debug, Parser)]
#[command(name = "guild-sync-companion", version, about)]
struct Cli {
    #[command(flatten)]
    companion: CompanionArgs,
    /// Append the log to this file instead of printing it.
    #[arg(long, global = true, value_name = "FILE")]
    log_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let logging_to_file = cli.log_file.is_some();
    if let Err(e) = init_logging(cli.log_file.as_deref()) {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let invocation = Invocation {
        command: "guild-sync-companion".to_owned(),
        prefix: Vec::new(),
        login_log_file: cli::default_login_log_file(),
    };
    match cli::run(cli.companion, &invocation).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Started at login the log file is the only place anyone will look.
            if logging_to_file {
                tracing::error!("{e:#}");
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(log_file: Option<&Path>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log_file {
        // Colours only on a terminal that shows them: the Windows 10 console prints the escape
        // codes as text unless the program turns them on itself.
        None => builder
            .with_ansi(!cfg!(windows) && std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
        Some(path) => {
            let file = open_log(path)?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init();
        }
    }
    Ok(())
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let mut old = path.as_os_str().to_owned();
        old.push(".old");
        let _ = std::fs::rename(path, PathBuf::from(old));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    // A blank line between runs makes each start easy to find.
    let _ = writeln!(file);
    Ok(file)
}
