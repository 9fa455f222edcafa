//! The Discord gateway listener: applies GUILD_MEMBER_ADD / REMOVE / UPDATE to `discord_users`
//! as they arrive. Startable and stoppable on its own; `serve` runs it. (Issue 4 builds this.)

use anyhow::{Result, bail};
use sqlx::PgPool;

use crate::config::Config;

/// A running listener.
pub struct GatewayHandle {}

impl GatewayHandle {
    /// Disconnect and wait for the listener to finish.
    pub async fn shutdown(self) {}
}

/// Connect to the gateway and start applying member events.
pub async fn spawn(_pool: PgPool, _config: &Config) -> Result<GatewayHandle> {
    bail!("the gateway listener is not built yet (issue 4)")
}
