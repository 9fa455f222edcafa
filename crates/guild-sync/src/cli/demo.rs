//! `guild-sync demo [--later] [--serve]`: the sample guild through every stage (see [`crate::demo`]).

use anyhow::Result;

use super::DemoArgs;
use crate::config::Config;

pub async fn run(config: &Config, args: DemoArgs) -> Result<()> {
    crate::demo::run(config, args.later, args.serve).await
}
