//! `guild-sync check`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::JsonArgs) -> Result<()> {
    bail!("`check` is not built yet (issue 6)")
}
