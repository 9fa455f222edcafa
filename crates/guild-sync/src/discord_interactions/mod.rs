//! Discord slash commands and the buttons on the audit report (issue 20). Interactions arrive
//! on the gateway (`INTERACTION_CREATE`, handed over by [`crate::discord_gateway`]), so no
//! public URL is needed; each is answered with `POST /interactions/{id}/{token}/callback`.
//!
//! Discord drops an answer that comes later than 3 s after the interaction, so the work runs
//! against a [`DEFER_AFTER`] timer: done in time, it is the callback itself; otherwise the
//! callback defers (type 5 for a command, 6 for a button) and the answer edits the original
//! response when the work ends. Permission is checked here, on every use, against the officer
//! rank (`db::officers`), whatever Discord's own command permissions say.
//!
//! Owns the wire shapes of interactions and answers; the SQL is in `db::interactions`, link
//! rules in `db::api`, candidate ranking in `link_candidates`.

pub mod buttons;
pub mod commands;
pub mod custom_id;
pub mod registration;
pub mod rest;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::task::TaskTracker;
use twilight_model::application::interaction::{Interaction, InteractionData, InteractionType};
use twilight_model::channel::message::{AllowedMentions, Component, Embed, MessageFlags};
use twilight_model::gateway::payload::incoming::InteractionCreate;
use twilight_model::http::interaction::{
    InteractionResponse, InteractionResponseData, InteractionResponseType,
};
use twilight_model::id::Id;
use twilight_model::id::marker::{ApplicationMarker, GuildMarker};

use crate::config::Config;
use crate::db::officers::officer_standing;
use rest::DiscordRest;

/// How long the work may take before the answer is deferred: Discord's limit is 3 s from the
/// interaction; the callback's own round trip needs the rest.
pub const DEFER_AFTER: Duration = Duration::from_secs(2);

/// Discord: characters in a message's `content`.
pub const MAX_CONTENT_CHARS: usize = 2000;

/// Message flag: only the user who acted sees it (Discord's `EPHEMERAL`, 64).
pub const EPHEMERAL: u64 = MessageFlags::EPHEMERAL.bits();

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A new message (type 4); `private`: flag 64.
    Message {
        content: String,
        embeds: Vec<Embed>,
        components: Vec<Component>,
        private: bool,
    },
    /// Edit the message the button is on (type 7).
    Update {
        content: String,
        components: Vec<Component>,
    },
}

impl Reply {
    /// A private plain message: refusals, errors, stale buttons.
    pub fn private(content: impl Into<String>) -> Reply {
        Reply::Message {
            content: content.into(),
            embeds: Vec::new(),
            components: Vec::new(),
            private: true,
        }
    }

    /// A message everyone in the channel sees.
    pub fn public(content: impl Into<String>) -> Reply {
        Reply::Message {
            content: content.into(),
            embeds: Vec::new(),
            components: Vec::new(),
            private: false,
        }
    }

    /// The message body (callback `data`, edits and follow-ups). Mentions never ping
    /// (`allowed_mentions` parses nothing): names come from members.
    fn body(&self) -> InteractionResponseData {
        let (content, embeds, components, private) = match self {
            Reply::Message {
                content,
                embeds,
                components,
                private,
            } => (content, Some(embeds.clone()), components, *private),
            // An update keeps the message's embeds (the report): none are sent.
            Reply::Update {
                content,
                components,
            } => (content, None, components, false),
        };
        InteractionResponseData {
            content: Some(guild_sync_core::report::truncate(
                content,
                MAX_CONTENT_CHARS,
            )),
            components: Some(components.clone()),
            embeds,
            allowed_mentions: Some(AllowedMentions::default()),
            flags: private.then_some(MessageFlags::EPHEMERAL),
            ..InteractionResponseData::default()
        }
    }

    fn callback(&self) -> InteractionResponse {
        let kind = match self {
            Reply::Message { .. } => InteractionResponseType::ChannelMessageWithSource,
            Reply::Update { .. } => InteractionResponseType::UpdateMessage,
        };
        InteractionResponse {
            kind,
            data: Some(self.body()),
        }
    }
}

/// Who pressed or typed: the Discord account, and how the action history names it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub discord_id: String,
    /// `name (Discord 1234…)`: never `auto`, and the same shape as the console's `(console)`.
    pub officer_name: String,
}

/// The running command handler: what it needs to answer.
pub struct Interactions {
    pub(crate) pool: PgPool,
    pub(crate) config: Arc<Config>,
    rest: DiscordRest,
    application_id: Id<ApplicationMarker>,
    guild_id: Id<GuildMarker>,
    pub(crate) key: Vec<u8>,
    /// The answers in progress, so shutdown can wait for them (see [`Interactions::finish`]).
    in_flight: TaskTracker,
}

impl Interactions {
    /// Resolve the application id (`DISCORD_APPLICATION_ID`, else asked from Discord), load the
    /// button key and register the commands when they changed.
    pub async fn start(pool: PgPool, config: &Config) -> Result<Arc<Interactions>> {
        let rest = DiscordRest::from_config(config)?;
        let guild_id: Id<GuildMarker> = crate::discord_sync::guild_id(config)?
            .as_str()
            .parse()
            .context("DISCORD_GUILD_ID is not a Discord id")?;
        let application_id = match &config.discord_application_id {
            Some(id) => id
                .trim()
                .parse()
                .context("DISCORD_APPLICATION_ID is not a Discord id")?,
            None => rest
                .application_id()
                .await
                .context("DISCORD_APPLICATION_ID is not set and Discord did not tell it")?,
        };
        let key = custom_id::button_key(&pool).await?;
        let wrote = registration::register(&rest, application_id, guild_id, config)
            .await
            .context("cannot register the slash commands")?;
        tracing::info!(
            application_id = %application_id,
            registered = wrote,
            "Discord slash commands ready"
        );
        Ok(Arc::new(Interactions {
            pool,
            config: Arc::new(config.clone()),
            rest,
            application_id,
            guild_id,
            key,
            in_flight: TaskTracker::new(),
        }))
    }

    /// Answer one `INTERACTION_CREATE` payload on its own task: answering must never hold up
    /// the gateway's member events, nor one slow answer the next interaction.
    pub fn spawn(self: &Arc<Self>, data: Value) {
        let this = Arc::clone(self);
        self.in_flight.spawn(async move {
            let InteractionCreate(interaction) = match serde_json::from_value(data) {
                Ok(interaction) => interaction,
                Err(err) => {
                    tracing::warn!(error = %err, "an interaction in an unexpected shape");
                    return;
                }
            };
            if let Err(err) = this.handle(interaction).await {
                tracing::error!(error = %format!("{err:#}"), "cannot answer a Discord interaction");
            }
        });
    }

    /// Wait until every answer in progress has been given: an officer's link or button press
    /// finishes (and is answered) rather than being cut off when the database closes. Call once
    /// no more interactions arrive (the gateway listener has stopped).
    pub async fn finish(&self) {
        self.in_flight.close();
        self.in_flight.wait().await;
    }

    /// Answer one interaction.
    pub async fn handle(&self, interaction: Interaction) -> Result<()> {
        if interaction.guild_id != Some(self.guild_id) {
            // Another guild, or a DM: the commands are registered for one guild only.
            return Ok(());
        }
        let Some(user) = interaction.member.as_ref().and_then(|m| m.user.as_ref()) else {
            return Ok(());
        };
        let actor = Actor {
            discord_id: user.id.to_string(),
            officer_name: format!(
                "{} (Discord {})",
                guild_sync_core::text::one_line(&user.name),
                user.id
            ),
        };
        match (interaction.kind, &interaction.data) {
            (
                InteractionType::ApplicationCommandAutocomplete,
                Some(InteractionData::ApplicationCommand(data)),
            ) => {
                let choices = commands::autocomplete(self, data).await?;
                let response = InteractionResponse {
                    kind: InteractionResponseType::ApplicationCommandAutocompleteResult,
                    data: Some(InteractionResponseData {
                        choices: Some(choices),
                        ..InteractionResponseData::default()
                    }),
                };
                self.rest
                    .callback(self.application_id, &interaction, &response)
                    .await
            }
            (
                InteractionType::ApplicationCommand,
                Some(InteractionData::ApplicationCommand(data)),
            ) => {
                let private = commands::is_private(data);
                let work = commands::run(self, &actor, data);
                self.answer(
                    &interaction,
                    work,
                    InteractionResponseType::DeferredChannelMessageWithSource,
                    private,
                )
                .await
            }
            (InteractionType::MessageComponent, Some(InteractionData::MessageComponent(data))) => {
                let work = buttons::press(self, &actor, &interaction, data);
                self.answer(
                    &interaction,
                    work,
                    InteractionResponseType::DeferredUpdateMessage,
                    false,
                )
                .await
            }
            (other, _) => {
                tracing::debug!(
                    kind = ?other,
                    "an interaction type guild-sync does not answer"
                );
                Ok(())
            }
        }
    }

    /// Run `work`; answer with its reply when it ends within [`DEFER_AFTER`], else defer
    /// (`deferred`, private or not) and deliver the reply as an edit of the original response
    /// — or, for a private reply to a button, as a private follow-up.
    async fn answer(
        &self,
        interaction: &Interaction,
        work: impl Future<Output = Result<Reply>>,
        deferred: InteractionResponseType,
        private: bool,
    ) -> Result<()> {
        let mut work = std::pin::pin!(work);
        let reply = tokio::select! {
            reply = &mut work => Some(reply),
            () = tokio::time::sleep(DEFER_AFTER) => None,
        };
        let app = self.application_id;
        if let Some(reply) = reply {
            let reply = reply.unwrap_or_else(failed);
            return self
                .rest
                .callback(app, interaction, &reply.callback())
                .await;
        }
        let response = InteractionResponse {
            kind: deferred,
            data: private.then(|| InteractionResponseData {
                flags: Some(MessageFlags::EPHEMERAL),
                ..InteractionResponseData::default()
            }),
        };
        self.rest.callback(app, interaction, &response).await?;
        let reply = work.await.unwrap_or_else(failed);
        let token = &interaction.token;
        match (&reply, deferred) {
            (Reply::Message { .. }, InteractionResponseType::DeferredUpdateMessage) => {
                self.rest.follow_up(app, token, &reply.body()).await
            }
            _ => self.rest.edit_original(app, token, &reply.body()).await,
        }
    }

    /// Whether `actor` stands at or above the officer rank.
    pub(crate) async fn is_officer(&self, actor: &Actor) -> Result<bool> {
        Ok(officer_standing(
            &self.pool,
            &actor.discord_id,
            &self.config.guild_sync_officer_rank,
        )
        .await?
        .is_officer())
    }

    /// The private refusal of an officer-only action.
    pub(crate) fn refusal(&self) -> Reply {
        Reply::private(format!(
            "Only officers ({} and above, by guild rank or Discord rank role) can do that.",
            guild_sync_core::report::escape_markdown(&self.config.guild_sync_officer_rank)
        ))
    }

    /// `{GUILD_SYNC_PUBLIC_URL}{path}`, when the public URL is set.
    pub(crate) fn public_url(&self, path: &str) -> Option<String> {
        self.config
            .guild_sync_public_url
            .as_deref()
            .map(|base| format!("{}{path}", base.trim_end_matches('/')))
    }
}

/// What the user sees when the work failed: a line, privately; the details go to the log.
fn failed(err: anyhow::Error) -> Reply {
    tracing::error!(error = %format!("{err:#}"), "a Discord command failed");
    Reply::private("Something went wrong on guild-sync's side; the log has the details.")
}

/// A name from Discord or the game, safe inside a message: one line, markdown escaped, links
/// broken, at most `max` characters.
pub(crate) fn safe_name(name: &str, max: usize) -> String {
    let line = guild_sync_core::text::one_line(name);
    let escaped = guild_sync_core::report::escape_markdown(&line);
    guild_sync_core::report::truncate(&guild_sync_core::text::unlinked(&escaped), max)
}
