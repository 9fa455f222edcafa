//! `guild-sync companion`: the companion's own command line (`guild_sync_companion::cli`), with
//! the service's configuration (`guild-sync.toml`) as one more source for the server, the key and
//! the SavedVariables file — after the flags and environment, before the companion's settings.

use anyhow::Result;
use guild_sync_companion::cli::{CompanionArgs, Invocation};

use crate::config::Config;

pub async fn run(config: &Config, mut args: CompanionArgs) -> Result<()> {
    let run = &mut args.run;
    run.saved_variables = run
        .saved_variables
        .take()
        .or_else(|| config.wow_saved_variables_path.clone());
    run.api_url = run
        .api_url
        .take()
        .or_else(|| config.guild_sync_api_url.clone());
    run.api_key = run.api_key.take().or_else(|| {
        config
            .guild_sync_api_key
            .as_ref()
            .map(|k| k.expose().to_owned())
    });
    let invocation = Invocation {
        command: "guild-sync companion".to_owned(),
        prefix: vec!["companion".to_owned()],
        // The service binary logs to stderr only; started at login, launchd and systemd keep it.
        login_log_file: None,
    };
    guild_sync_companion::cli::run(args, &invocation).await
}
