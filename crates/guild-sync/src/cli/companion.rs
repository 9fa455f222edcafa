//! `guild-sync companion`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::CompanionArgs) -> Result<()> {
    bail!("`companion` is not built yet (issue 8)")
}
