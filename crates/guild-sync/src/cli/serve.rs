//! `guild-sync serve`: open the database and run the service (see [`crate::service`]) until
//! SIGINT/SIGTERM; the process exits 0 after a graceful stop.

use anyhow::Result;

use crate::config::Config;
use crate::database::Database;

pub async fn run(config: &Config) -> Result<()> {
    let db = Database::open(config).await?;
    crate::service::serve_until_signal(config, db).await
}
