//! `guild-sync sync blizzard [--from-dir DIR]`: one Battle.net sync, live or from files in the
//! API's shapes, with a progress bar for the profile fetches on a terminal and the stats as the
//! last line with `--json`.

use anyhow::Result;

use crate::config::{Config, RemovalGuard};
use crate::database::Database;
use crate::db_sync::{self, BlizzardInput, BlizzardSyncStats};

pub async fn run(config: &Config, args: super::SyncBlizzardArgs) -> Result<()> {
    let input = match args.from_dir {
        Some(dir) => BlizzardInput::Dir(dir),
        None => {
            // Fail on missing credentials before starting a database.
            crate::blizzard_client::BlizzardSettings::from_config(config)?;
            BlizzardInput::Live
        }
    };
    let guard = RemovalGuard::from_config(config, args.allow_mass_removal);
    let db = Database::open(config).await?;
    let outcome = super::locked(
        &db.pool,
        &args.stage.lock,
        db_sync::run(&db.pool, config, input, guard, !args.stage.output.json),
    )
    .await;
    db.close().await;
    let stats = outcome?;
    super::print_stats(args.stage.output.json, &summary(&stats), &stats)
}

/// The human summary of a sync.
fn summary(s: &BlizzardSyncStats) -> String {
    let mut text = format!(
        "Battle.net sync: {} in the roster, {} new, {} updated, {} removed, {} returned, {} renamed\n\
         profiles: {} fetched, {} not found, {} failed",
        s.found,
        s.new,
        s.updated,
        s.removed,
        s.returned,
        s.renamed,
        s.profiles_fetched,
        s.profiles_not_found,
        s.profiles_failed
    );
    if s.unknown_class + s.unknown_spec + s.unknown_rank > 0 {
        text.push_str(&format!(
            "\nwarnings: {} unknown classes, {} unknown specs, {} unmapped rank indexes (stored as NULL)",
            s.unknown_class, s.unknown_spec, s.unknown_rank
        ));
    }
    text
}
