//! `guild-sync migrate`: open the database (starting the private cluster if needed), apply
//! pending migrations, and nothing else.

use anyhow::Result;

use crate::config::Config;
use crate::database::Database;

pub async fn run(config: &Config) -> Result<()> {
    let db = Database::open(config).await?;
    let applied = crate::db::admin::migrations_applied(&db.pool).await;
    let applied = match applied {
        Ok(applied) => applied,
        Err(err) => {
            db.close().await;
            return Err(err);
        }
    };
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
