//! The `guild-sync` binary: parse arguments, set up logging and TLS, run, and turn any error into
//! one line on stderr and exit code 1.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = guild_sync::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,guild_sync=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    guild_sync::install_crypto_provider();
    let runtime = match cli.command.runtime().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(guild_sync::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` keeps the whole context chain on one line: "what we did: why it failed".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
