//! `guild-sync pipeline`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::PipelineArgs) -> Result<()> {
    bail!("`pipeline` is not built yet (issue 7)")
}
