//! `guild-sync check`: run the integrity checks once and print new / still open / resolved
//! counts per issue type (with `--json`, the stats as the last line).

use anyhow::Result;

use crate::config::Config;
use crate::database::Database;
use crate::integrity_checker;

pub async fn run(config: &Config, args: super::StageArgs) -> Result<()> {
    let db = Database::open(config).await?;
    let outcome = super::locked(
        &db.pool,
        &args.lock,
        integrity_checker::run_integrity_check(&db.pool, config),
    )
    .await;
    db.close().await;
    let stats = outcome?;
    super::print_stats(
        args.output.json,
        &integrity_checker::render_stats(&stats),
        &stats,
    )
}
