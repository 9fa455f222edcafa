//! `guild-sync sync discord`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::SyncDiscordArgs) -> Result<()> {
    bail!("`sync discord` is not built yet (issue 4)")
}
