//! The Discord gateway listener: applies GUILD_MEMBER_ADD / REMOVE / UPDATE to `discord_users`
//! as they arrive. Startable and stoppable on its own; `serve` runs it.
//!
//! twilight-gateway owns the connection: HELLO, IDENTIFY, heartbeats, zlib transport
//! compression, and reconnecting/resuming after a dropped connection or a gateway-requested
//! reconnect. This module only decodes the dispatches it cares about (with the same wire types
//! as the REST sync, see [`crate::discord_sync`]) and applies them one at a time, in the order
//! they arrive. It keeps the guild's role names from GUILD_CREATE and GUILD_ROLE_* events,
//! because member events carry role ids. It does no full sync: the scheduler's periodic
//! `discord_sync` repairs anything missed while disconnected.
//!
//! With the slash commands on (`serve` with a bot token), INTERACTION_CREATE dispatches are
//! handed to [`crate::discord_interactions`], which answers each on its own task; stopping
//! the listener waits for the answers in progress (they may be writing a link).

use std::sync::Arc;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Deserialize;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use twilight_gateway::{CloseFrame, ConfigBuilder, Intents, Message, Shard, ShardId};

use crate::config::Config;
use crate::discord_interactions::Interactions;
use crate::discord_sync::{
    self, GuildRoles, MemberEventOutcome, Snowflake, WireMember, WireRole, WireUser,
};

/// Intents the listener needs: GUILD_MEMBERS (privileged: "Server Members Intent" must be on
/// in the bot's settings) for member events, GUILDS for GUILD_CREATE and role events.
pub const INTENTS: Intents = Intents::GUILD_MEMBERS.union(Intents::GUILDS);

/// How long shutdown waits for the gateway to acknowledge the close, in seconds.
const CLOSE_TIMEOUT_SECS: u64 = 5;

/// A running listener.
pub struct GatewayHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The interactions it hands over, whose answers in progress stopping waits for.
    interactions: Option<Arc<Interactions>>,
}

impl GatewayHandle {
    /// Disconnect and wait for the listener to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.join().await;
    }

    /// Wait for the listener to finish (once the token it was spawned with is cancelled), and
    /// then for the interactions it handed over to be answered.
    pub async fn join(self) {
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the gateway listener task failed");
        }
        if let Some(interactions) = self.interactions {
            interactions.finish().await;
        }
    }
}

/// Connect to the gateway and start applying member events until `shutdown` is cancelled (or
/// [`GatewayHandle::shutdown`] is called, which stops only this listener).
pub async fn spawn(
    pool: PgPool,
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<GatewayHandle> {
    spawn_with_interactions(pool, config, shutdown, None).await
}

/// [`spawn`], also handing interactions (slash commands, buttons) to `interactions`.
pub async fn spawn_with_interactions(
    pool: PgPool,
    config: &Config,
    shutdown: &CancellationToken,
    interactions: Option<Arc<Interactions>>,
) -> Result<GatewayHandle> {
    let token = config
        .discord_bot_token
        .as_ref()
        .context("DISCORD_BOT_TOKEN is not set")?;
    let guild = discord_sync::guild_id(config)?;
    let mut builder = ConfigBuilder::new(token.expose().to_owned(), INTENTS);
    if let Some(url) = &config.discord_gateway_url {
        // twilight appends `/?v=10&encoding=json&compress=zlib-stream` itself.
        builder = builder.proxy_url(url.trim_end_matches('/').to_owned());
    }
    let shard = Shard::with_config(ShardId::ONE, builder.build());
    let stop = shutdown.child_token();
    let listener = Listener {
        pool,
        guild,
        roles: GuildRoles::default(),
        interactions: interactions.clone(),
    };
    let task = tokio::spawn(listen(shard, listener, stop.clone()));
    Ok(GatewayHandle {
        stop,
        task,
        interactions,
    })
}

async fn listen(mut shard: Shard, mut listener: Listener, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                close(&mut shard).await;
                return;
            }
            message = shard.next() => match message {
                None => {
                    // Only after a close code Discord forbids reconnecting on (bad token,
                    // missing intent): retrying would be refused the same way.
                    tracing::error!("the Discord gateway closed the connection for good");
                    return;
                }
                Some(Err(err)) => {
                    // twilight reconnects by itself; the error is worth a line, not a stop.
                    tracing::warn!(error = %err, "Discord gateway error");
                }
                Some(Ok(Message::Close(frame))) => {
                    tracing::info!(?frame, "Discord gateway connection closed; reconnecting");
                }
                Some(Ok(Message::Text(json))) => listener.handle(&json).await,
            }
        }
    }
}

/// Close the connection cleanly and wait (briefly) for the gateway to acknowledge it.
async fn close(shard: &mut Shard) {
    shard.close(CloseFrame::NORMAL);
    let drained = tokio::time::timeout(std::time::Duration::from_secs(CLOSE_TIMEOUT_SECS), async {
        // The gateway's close reply ends it; so does an error, after which the shard would
        // only try to reconnect.
        while let Some(message) = shard.next().await {
            if matches!(message, Ok(Message::Close(_)) | Err(_)) {
                break;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("the Discord gateway did not acknowledge the close in time");
    }
}

/// A gateway payload: `{op, t, d}`.
#[derive(Deserialize)]
struct Payload {
    op: u8,
    #[serde(default)]
    t: Option<String>,
    #[serde(default)]
    d: serde_json::Value,
}

#[derive(Deserialize)]
struct GuildScoped<T> {
    guild_id: Snowflake,
    #[serde(flatten)]
    body: T,
}

#[derive(Deserialize)]
struct GuildCreate {
    id: Snowflake,
    #[serde(default)]
    roles: Vec<WireRole>,
}

#[derive(Deserialize)]
struct RoleChange {
    role: WireRole,
}

#[derive(Deserialize)]
struct RoleDelete {
    role_id: Snowflake,
}

#[derive(Deserialize)]
struct MemberRemove {
    user: WireUser,
}

struct Listener {
    pool: PgPool,
    guild: Snowflake,
    roles: GuildRoles,
    interactions: Option<Arc<Interactions>>,
}

/// Gateway opcode of an event dispatch.
const OP_DISPATCH: u8 = 0;

impl Listener {
    /// Apply one gateway message.
    async fn handle(&mut self, json: &str) {
        let payload: Payload = match serde_json::from_str(json) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(error = %err, "undecodable Discord gateway message");
                return;
            }
        };
        if payload.op != OP_DISPATCH {
            return;
        }
        let Some(kind) = payload.t else { return };
        match self.dispatch(&kind, payload.d).await {
            Ok(Some(outcome)) => {
                tracing::info!(event = %kind, ?outcome, "Discord member event applied");
            }
            Ok(None) => {}
            Err(err) => {
                // The event is lost; the next scheduled full sync repairs the row.
                tracing::error!(event = %kind, error = %format!("{err:#}"), "cannot apply a Discord event");
            }
        }
    }

    async fn dispatch(
        &mut self,
        kind: &str,
        data: serde_json::Value,
    ) -> Result<Option<MemberEventOutcome>> {
        match kind {
            "GUILD_CREATE" => {
                let guild: GuildCreate = serde_json::from_value(data)?;
                if guild.id == self.guild {
                    self.roles = GuildRoles::new(&guild.roles);
                    tracing::info!(roles = self.roles.len(), "Discord guild roles loaded");
                }
                Ok(None)
            }
            "GUILD_ROLE_CREATE" | "GUILD_ROLE_UPDATE" => {
                let change: GuildScoped<RoleChange> = serde_json::from_value(data)?;
                if change.guild_id == self.guild {
                    self.roles.upsert(&change.body.role);
                }
                Ok(None)
            }
            "GUILD_ROLE_DELETE" => {
                let change: GuildScoped<RoleDelete> = serde_json::from_value(data)?;
                if change.guild_id == self.guild {
                    self.roles.remove(&change.body.role_id);
                }
                Ok(None)
            }
            "GUILD_MEMBER_ADD" | "GUILD_MEMBER_UPDATE" => {
                let event: GuildScoped<WireMember> = serde_json::from_value(data)
                    .with_context(|| format!("{kind} in an unexpected shape"))?;
                if event.guild_id != self.guild {
                    return Ok(None);
                }
                if self.roles.is_empty() && !event.body.roles.is_empty() {
                    tracing::warn!(
                        "a member event arrived before the guild's roles; its guild roles are unknown until the next sync"
                    );
                }
                let outcome = if kind == "GUILD_MEMBER_ADD" {
                    discord_sync::on_member_join(&self.pool, &event.body, &self.roles).await?
                } else {
                    discord_sync::on_member_update(&self.pool, &event.body, &self.roles).await?
                };
                Ok(Some(outcome))
            }
            "GUILD_MEMBER_REMOVE" => {
                let event: GuildScoped<MemberRemove> = serde_json::from_value(data)
                    .context("GUILD_MEMBER_REMOVE in an unexpected shape")?;
                if event.guild_id != self.guild {
                    return Ok(None);
                }
                Ok(Some(
                    discord_sync::on_member_remove(&self.pool, &event.body.user).await?,
                ))
            }
            "INTERACTION_CREATE" => {
                if let Some(interactions) = &self.interactions {
                    interactions.spawn(data);
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}
