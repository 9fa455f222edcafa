//! `guild-sync demo`.

use anyhow::{Result, bail};

use crate::config::Config;

pub async fn run(_config: &Config, _args: super::DemoArgs) -> Result<()> {
    bail!("`demo` is not built yet (issue 9)")
}
