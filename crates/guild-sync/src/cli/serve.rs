//! `guild-sync serve`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config) -> Result<()> {
    bail!("`serve` is not built yet (issue 7)")
}
