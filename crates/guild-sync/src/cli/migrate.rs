//! `guild-sync migrate`: open the database (starting the private cluster if needed), apply
//! pending migrations, and nothing else.

use anyhow::Result;

use crate::config::Config;
use crate::database::Database;

pub async fn run(config: &Config) -> Result<()> {
    let db = Database::open(config).await?;
    // Counted by the migration check itself: a query of its own was a second connection and
    // two round trips of this command's start-up (issue 21).
    let applied = db.migrations_applied();
    match db.cluster() {
        Some(cluster) => println!(
            "database is up to date ({applied} migrations applied; private cluster in {})",
            cluster.root().display()
        ),
        None => println!("database is up to date ({applied} migrations applied)"),
    }
    db.close().await;
    Ok(())
}
