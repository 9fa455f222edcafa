//! The cross-process pipeline lock and the liveness of `running` runs.
//!
//! **The lock** is a session-level PostgreSQL advisory lock, key [`PIPELINE_LOCK_KEY`], held on
//! a [`LockConnection`]: a dedicated connection (not a pooled one) that lives exactly as long
//! as the run. If the process dies, the connection closes and the server releases the lock —
//! no lock can leak into a pooled connection. Waiting for it blocks in the server
//! (`pg_advisory_lock`, bounded by `lock_timeout`), so a waiting run costs one idle connection
//! and no polling.
//!
//! **Liveness.** A pipeline run's `sync_log` row is opened on its lock connection together with
//! a second advisory lock keyed by the row's id ([`RUN_MARK_CLASS`]), so the row is "owned" by
//! a live session exactly as long as its process lives. Stage rows are only ever open under
//! the pipeline lock. So whoever takes the pipeline lock can tell a `running` row whose
//! process was killed (no owner, or a stage row from before it held the lock) from one still
//! waiting its turn, and close the dead ones as `abandoned` ([`LockConnection::close_abandoned`]).
//!
//! Whether and how long to wait is the caller's decision, not this module's.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection, PgPool};

/// The advisory-lock key every guild-sync process takes for the duration of a pipeline or a
/// writing command: the ASCII bytes of "guildsyn" as a big-endian i64. Any process (or an
/// operator in `psql`: `SELECT pg_advisory_lock(7455419188451883374)`) holding it keeps
/// pipelines from starting.
pub const PIPELINE_LOCK_KEY: i64 = 0x6775_696c_6473_796e;

/// First key of the two-key advisory lock that marks a pipeline's `sync_log` row as owned by a
/// live session ("gsru"); the second key is the row id's low 31 bits. The two-key space is
/// apart from the one-key space of [`PIPELINE_LOCK_KEY`].
pub const RUN_MARK_CLASS: i32 = 0x6773_7275;

/// `error_message` of a row closed as abandoned.
pub const ABANDONED_MESSAGE: &str = "the process running it stopped before it finished";

/// Cancels the statement a [`LockConnection`] is running, over another connection.
#[derive(Debug, Clone, Copy)]
pub struct WaitCanceller {
    backend_pid: i32,
}

impl WaitCanceller {
    /// Cancel what the lock connection's server process is running now. The server ignores a
    /// cancel that reaches an idle process, so one sent before a `pg_advisory_lock` that is
    /// still on its way is lost: repeat until the wait is seen to end.
    pub async fn cancel(self, pool: &PgPool) -> Result<()> {
        sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
            .bind(self.backend_pid)
            .fetch_one(pool)
            .await
            .context("cannot cancel the wait for the pipeline lock")?;
        Ok(())
    }
}

/// A dedicated connection that can hold the pipeline lock.
pub struct LockConnection {
    conn: PgConnection,
    /// The server process behind it, to cancel a wait from another connection.
    backend_pid: i32,
}

/// `lock_not_available`: `lock_timeout` ran out.
fn is_lock_timeout(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

impl LockConnection {
    /// A new dedicated connection to the pool's database.
    pub async fn open(pool: &PgPool) -> Result<LockConnection> {
        let mut conn = PgConnection::connect_with(&pool.connect_options())
            .await
            .context("cannot open the pipeline lock connection")?;
        let backend_pid = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .context("cannot open the pipeline lock connection")?;
        Ok(LockConnection { conn, backend_pid })
    }

    /// A new dedicated connection and a `running` `sync_log` row of `source` owned by it (see
    /// the module doc); returns the connection and the row's id. Row and mark are made in one
    /// statement, so no other session ever sees the row without its owner.
    pub async fn open_run(pool: &PgPool, source: &str) -> Result<(LockConnection, i64)> {
        let mut lock = Self::open(pool).await?;
        let (id, _marked): (i64, bool) = sqlx::query_as(
            "WITH run AS (
                 INSERT INTO guild_identity.sync_log (source, status)
                 VALUES ($1, 'running') RETURNING id
             )
             SELECT id, pg_try_advisory_lock($2, (id & 2147483647)::int4) FROM run",
        )
        .bind(source)
        .bind(RUN_MARK_CLASS)
        .fetch_one(&mut lock.conn)
        .await
        .context("cannot open the run's sync_log row")?;
        Ok((lock, id))
    }

    /// Take the pipeline lock if it is free; `false` when another session holds it.
    pub async fn try_lock(&mut self) -> Result<bool> {
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PIPELINE_LOCK_KEY)
            .fetch_one(&mut self.conn)
            .await
            .context("cannot take the pipeline lock")
    }

    /// Wait for the pipeline lock, in the server, for up to `wait` (`None`: as long as it
    /// takes); `false` when it was still held by another session then.
    pub async fn lock(&mut self, wait: Option<Duration>) -> Result<bool> {
        // `lock_timeout` 0 means no limit; a positive wait is at least 1 ms.
        let millis = wait.map_or(0, |wait| wait.as_millis().clamp(1, i32::MAX as u128));
        sqlx::query(sqlx::AssertSqlSafe(format!("SET lock_timeout = {millis}")))
            .execute(&mut self.conn)
            .await
            .context("cannot set the lock timeout")?;
        let locked = sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PIPELINE_LOCK_KEY)
            .execute(&mut self.conn)
            .await;
        let reset = sqlx::query("RESET lock_timeout")
            .execute(&mut self.conn)
            .await;
        match locked {
            Ok(_) => {
                reset.context("cannot reset the lock timeout")?;
                Ok(true)
            }
            Err(err) if is_lock_timeout(&err) => Ok(false),
            Err(err) => Err(err).context("cannot wait for the pipeline lock"),
        }
    }

    /// What cancels this connection's [`LockConnection::lock`] wait from another connection
    /// (the wait itself borrows this one).
    pub fn canceller(&self) -> WaitCanceller {
        WaitCanceller {
            backend_pid: self.backend_pid,
        }
    }

    /// Close every `running` row no live session owns as `abandoned`; returns their ids. Call
    /// it holding the pipeline lock and before opening stage rows: then every unowned
    /// `running` row belongs to a process that is gone.
    pub async fn close_abandoned(&mut self) -> Result<Vec<i64>> {
        sqlx::query_scalar(
            "UPDATE guild_identity.sync_log s
             SET status = 'abandoned', completed_at = now(), error_message = $2
             WHERE s.status = 'running'
               AND NOT EXISTS (
                   SELECT 1 FROM pg_locks l
                   WHERE l.locktype = 'advisory'
                     AND l.database = (SELECT oid FROM pg_database
                                       WHERE datname = current_database())
                     AND l.objsubid = 2
                     AND l.classid = $1::int4::oid
                     AND l.objid = (s.id & 2147483647)::int4::oid)
             RETURNING s.id",
        )
        .bind(RUN_MARK_CLASS)
        .bind(ABANDONED_MESSAGE)
        .fetch_all(&mut self.conn)
        .await
        .context("cannot close the runs a stopped process left running")
    }

    /// Release the pipeline lock (if held) and close the connection, which also releases the
    /// run's mark.
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
