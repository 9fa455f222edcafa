//! `guild-sync sync blizzard`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::SyncBlizzardArgs) -> Result<()> {
    bail!("`sync blizzard` is not built yet (issue 3)")
}
