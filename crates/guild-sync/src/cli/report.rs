//! `guild-sync report`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::ReportArgs) -> Result<()> {
    bail!("`report` is not built yet (issue 6)")
}
