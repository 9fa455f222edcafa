//! `guild-sync sync addon`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::SyncAddonArgs) -> Result<()> {
    bail!("`sync addon` is not built yet (issue 8)")
}
