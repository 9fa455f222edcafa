//! The cross-process pipeline lock: a session-level PostgreSQL advisory lock, key
//! [`PIPELINE_LOCK_KEY`], held on a dedicated connection (not a pooled one) that lives exactly
//! as long as the [`PipelineLock`]. If the process dies or the holder is dropped, the
//! connection closes and the server releases the lock — no lock can leak into a pooled
//! connection. Whether and how long to wait for it is the scheduler's decision, not this
//! module's.

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection, PgPool};

/// The advisory-lock key every guild-sync process takes for the duration of a pipeline:
/// the ASCII bytes of "guildsyn" as a big-endian i64. Any process (or an operator in `psql`:
/// `SELECT pg_advisory_lock(7455419188451883374)`) holding it keeps pipelines from starting.
pub const PIPELINE_LOCK_KEY: i64 = 0x6775_696c_6473_796e;

/// The held pipeline lock: a dedicated connection holding [`PIPELINE_LOCK_KEY`].
pub struct PipelineLock {
    conn: PgConnection,
}

impl PipelineLock {
    /// Take the lock if it is free; `Ok(None)` when another session holds it.
    pub async fn try_acquire(pool: &PgPool) -> Result<Option<PipelineLock>> {
        let mut conn = PgConnection::connect_with(&pool.connect_options())
            .await
            .context("cannot open the pipeline lock connection")?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PIPELINE_LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .context("cannot take the pipeline lock")?;
        if acquired {
            Ok(Some(PipelineLock { conn }))
        } else {
            conn.close().await.ok();
            Ok(None)
        }
    }

    /// Release the lock and close its connection.
    pub async fn release(mut self) {
        let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
            .bind(PIPELINE_LOCK_KEY)
            .fetch_one(&mut self.conn)
            .await;
        if let Err(err) = unlocked {
            // Closing the session below releases it anyway.
            tracing::warn!(error = %err, "cannot release the pipeline lock explicitly");
        }
        self.conn.close().await.ok();
    }
}
