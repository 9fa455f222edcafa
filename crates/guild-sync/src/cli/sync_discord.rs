//! `guild-sync sync discord [--from-file FILE] [--allow-mass-removal] [--json]`: one full
//! Discord member sync, from the live API or a `{roles, members}` file.

use anyhow::Result;

use crate::config::{Config, RemovalGuard};
use crate::database::Database;
use crate::discord_sync::{self, DiscordInput};

pub async fn run(config: &Config, args: super::SyncDiscordArgs) -> Result<()> {
    let input = match args.from_file {
        Some(path) => DiscordInput::File(path),
        None => DiscordInput::Live,
    };
    let guard = RemovalGuard::from_config(config, args.allow_mass_removal);
    let db = Database::open(config).await?;
    let result = super::locked(
        &db.pool,
        &args.stage.lock,
        discord_sync::run(&db.pool, config, input, guard),
    )
    .await;
    db.close().await;
    let stats = result?;
    let human = format!(
        "Discord members: {} found, {} new, {} updated, {} departed, {} revived, {} bots skipped",
        stats.found, stats.new, stats.updated, stats.departed, stats.revived, stats.bots_skipped
    );
    super::print_stats(args.stage.output.json, &human, &stats)
}
