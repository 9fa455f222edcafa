//! lock_wait: how a pipeline run or a writing command waits for the cross-process pipeline
//! lock ([`crate::db::pipeline_lock`] holds the lock itself and leaves waiting to its caller).
//!
//! It sits below both its users: the [`crate::scheduler`] takes the lock for every pipeline
//! run, and commands that write outside a pipeline (`sync …`, `match`, `check`, `report`, an
//! officer's role apply or undo in [`crate::role_sync`]) take it through [`lock_for_command`].
//! Keeping it here, rather than in the scheduler, means a stage module never imports the
//! scheduler that runs it.

use std::time::{Duration, Instant};

use anyhow::Result;
use sqlx::PgPool;

use crate::db::pipeline_lock::LockConnection;

/// How a run waits when another run holds the pipeline lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Do not wait: the run is skipped.
    Skip,
    /// Wait up to this long, then skip.
    Within(Duration),
    /// Wait as long as it takes (a command an officer started and is watching).
    Forever,
}

/// Take the pipeline lock on `lock` as `wait` says; `false` when another session still holds
/// it. Waiting happens in the server, without polling.
pub(crate) async fn take_lock(lock: &mut LockConnection, wait: LockWait) -> Result<bool> {
    if lock.try_lock().await? {
        return Ok(true);
    }
    let waiting = Instant::now();
    let taken = match wait {
        LockWait::Skip => Ok(false),
        LockWait::Within(limit) => {
            tracing::info!(
                seconds = limit.as_secs(),
                "another guild-sync run holds the pipeline lock: waiting for it"
            );
            lock.lock(Some(limit)).await
        }
        LockWait::Forever => {
            tracing::info!("another guild-sync run holds the pipeline lock: waiting for it");
            lock.lock(None).await
        }
    };
    if wait != LockWait::Skip {
        crate::metrics::lock_waited(waiting.elapsed());
    }
    taken
}

/// Close the runs a stopped process left `running` (call holding the lock).
pub(crate) async fn close_abandoned(lock: &mut LockConnection) -> Result<()> {
    let abandoned = lock.close_abandoned().await?;
    if !abandoned.is_empty() {
        tracing::warn!(
            runs = ?abandoned,
            "closed sync_log rows a stopped process left running as abandoned"
        );
    }
    Ok(())
}

/// The pipeline lock held by a command that writes outside a pipeline; release it when done.
pub struct CommandLock(LockConnection);

impl CommandLock {
    pub async fn release(self) {
        self.0.release().await;
    }
}

/// Take the pipeline lock for a command that writes outside a pipeline (`sync …`, `match`,
/// `check`, `report`), so it never runs beside a pipeline or another such command; `None` when
/// another run holds it and `wait` gave up. Runs a stopped process left `running` are closed
/// as `abandoned` once it is held.
pub async fn lock_for_command(pool: &PgPool, wait: LockWait) -> Result<Option<CommandLock>> {
    let mut lock = LockConnection::open(pool).await?;
    let taken = take_lock(&mut lock, wait).await;
    match taken {
        Ok(true) => {}
        Ok(false) => {
            lock.release().await;
            return Ok(None);
        }
        Err(err) => {
            lock.release().await;
            return Err(err);
        }
    }
    if let Err(err) = close_abandoned(&mut lock).await {
        lock.release().await;
        return Err(err);
    }
    Ok(Some(CommandLock(lock)))
}
