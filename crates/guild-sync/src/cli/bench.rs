//! `guild-sync bench`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::BenchArgs) -> Result<()> {
    bail!("`bench` is not built yet (issue 9)")
}
