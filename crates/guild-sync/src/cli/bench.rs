//! `guild-sync bench`: per-stage wall times and peak memory on synthetic guilds.

use anyhow::{Result, bail};

use super::BenchArgs;
use crate::config::Config;

pub async fn run(config: &Config, args: BenchArgs) -> Result<()> {
    if args.characters == 0 {
        bail!("--characters must be at least 1");
    }
    crate::bench::run(config, args.characters, &args.discord).await
}
