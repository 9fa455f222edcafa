//! `guild-sync companion`: watch the SavedVariables file and upload new exports.

use anyhow::{Context, Result};

use crate::companion::{Companion, CompanionOptions};
use crate::config::{Config, Secret};

pub async fn run(config: &Config, args: super::CompanionArgs) -> Result<()> {
    let saved_variables = args
        .saved_variables
        .or_else(|| config.wow_saved_variables_path.clone())
        .context("the SavedVariables file is not set: pass --saved-variables or set WOW_SAVED_VARIABLES_PATH")?;
    let api_url = args
        .api_url
        .or_else(|| config.guild_sync_api_url.clone())
        .context("the server is not set: pass --api-url or set GUILD_SYNC_API_URL")?;
    let api_key = args
        .api_key
        .map(Secret::new)
        .or_else(|| config.guild_sync_api_key.clone())
        .context("the API key is not set: pass --api-key or set GUILD_SYNC_API_KEY")?;
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
