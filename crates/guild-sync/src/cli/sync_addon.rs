//! `guild-sync sync addon FILE`: apply a PATTSync export (`.lua`) or upload body (`.json`). An
//! export older than the last applied one is refused (exit code 1) unless `--force`.

use anyhow::Result;

use crate::addon_processor::read_export_file;
use crate::config::Config;
use crate::database::Database;
use crate::db_sync::addon::{AddonSyncOptions, sync_addon_data_with};

pub async fn run(config: &Config, args: super::SyncAddonArgs) -> Result<()> {
    // Parse before opening the database: a bad file fails fast and touches nothing.
    let export = read_export_file(&args.file)?;
    let db = Database::open(config).await?;
    let options = AddonSyncOptions { force: args.force };
    let result = super::locked(
        &db.pool,
        &args.stage.lock,
        sync_addon_data_with(&db.pool, &export, options),
    )
    .await;
    db.close().await;
    let stats = result?;
    let mut human = format!(
        "addon sync: {} characters received, {} matched, {} updated, {} unknown",
        stats.received, stats.matched, stats.updated, stats.unknown
    );
    if !stats.unknown_characters.is_empty() {
        human.push_str(&format!(
            "\nunknown (not in the roster): {}",
            stats.unknown_characters.join(", ")
        ));
    }
    if !stats.unknown_class.is_empty() {
        human.push_str(&format!(
            "\nunknown class: {}",
            stats.unknown_class.join(", ")
        ));
    }
    if !stats.unknown_rank.is_empty() {
        human.push_str(&format!(
            "\nrank index not mapped to a guild rank: {}",
            stats.unknown_rank.join(", ")
        ));
    }
    if stats.ranks_kept_from_battle_net > 0 {
        human.push_str(&format!(
            "\nranks kept: a Battle.net sync newer than the export set them ({} characters)",
            stats.ranks_kept_from_battle_net
        ));
    }
    if stats.forced {
        human.push_str("\nforced: applied although older than the last applied export");
    }
    for warning in &stats.warnings {
        human.push_str(&format!("\nwarning: {warning}"));
    }
    if !stats.ambiguous.is_empty() {
        human.push_str(&format!(
            "\nskipped, matches two rows: {}",
            stats.ambiguous.join(", ")
        ));
    }
    super::print_stats(args.stage.output.json, &human, &stats)
}
