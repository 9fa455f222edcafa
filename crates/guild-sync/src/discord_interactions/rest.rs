//! The few Discord REST calls the commands make, through twilight-http's client (the one
//! [`crate::discord_sync::http_client`] builds for `DISCORD_API_URL`): the application id, the
//! guild's registered commands (read and bulk overwrite), interaction callbacks, and edits of an
//! interaction's original response or follow-ups.
//!
//! Rate limits: against discord.com twilight's rate limiter holds requests back by Discord's
//! bucket headers and retries a 429 when the bucket resets; behind a proxy (any other
//! `DISCORD_API_URL`) the proxy owns the limits and twilight retries a 429 at once. Either
//! way every call here is bounded by [`CALL_DEADLINE`], so a limit that never lifts ends in an
//! error, not a loop. Errors never carry the path: it may hold an interaction token.

use std::future::IntoFuture;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde::de::DeserializeOwned;
use twilight_http::Client;
use twilight_http::response::{DeserializeBodyError, Response};
use twilight_model::application::command::Command;
use twilight_model::application::interaction::Interaction;
use twilight_model::channel::Message;
use twilight_model::channel::message::{AllowedMentions, Component};
use twilight_model::http::interaction::{InteractionResponse, InteractionResponseData};
use twilight_model::id::Id;
use twilight_model::id::marker::{ApplicationMarker, ChannelMarker, GuildMarker, MessageMarker};

use crate::config::Config;

/// The whole of one call, 429 retries included. A callback must reach Discord within 3 s of
/// the interaction, so a slower answer is lost anyway; the registration calls at start-up get
/// the same bound.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// A Discord REST client for the bot.
pub struct DiscordRest {
    client: Client,
}

/// Run one twilight request within [`CALL_DEADLINE`]; `what` names it in errors.
async fn bounded<T, F>(what: &str, request: F) -> Result<Response<T>>
where
    F: IntoFuture<Output = Result<Response<T>, twilight_http::Error>>,
{
    match tokio::time::timeout(CALL_DEADLINE, request.into_future()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(err)) => Err(anyhow!("Discord refused {what}: {err}")),
        Err(_) => Err(anyhow!(
            "Discord did not answer {what} within {CALL_DEADLINE:?} (rate limited?)"
        )),
    }
}

fn body_error(what: &str) -> impl FnOnce(DeserializeBodyError) -> anyhow::Error + '_ {
    move |err| anyhow!("Discord's answer to {what} is not what it documents: {err}")
}

/// [`bounded`], then Discord's JSON answer decoded.
async fn fetch<T, F>(what: &str, request: F) -> Result<T>
where
    T: DeserializeOwned + Unpin,
    F: IntoFuture<Output = Result<Response<T>, twilight_http::Error>>,
{
    bounded(what, request)
        .await?
        .model()
        .await
        .map_err(body_error(what))
}

impl DiscordRest {
    /// The client for the configured bot token and API base.
    pub fn from_config(config: &Config) -> Result<DiscordRest> {
        crate::install_crypto_provider();
        Ok(DiscordRest {
            client: crate::discord_sync::http_client(config)?,
        })
    }

    /// `GET /applications/@me` (twilight's route; Discord's older
    /// `/oauth2/applications/@me` returns the same application): the bot's application id.
    pub async fn application_id(&self) -> Result<Id<ApplicationMarker>> {
        let app = fetch(
            "the application lookup",
            self.client.current_user_application(),
        )
        .await?;
        Ok(app.id)
    }

    /// `GET /applications/{app}/guilds/{guild}/commands`.
    pub async fn guild_commands(
        &self,
        app: Id<ApplicationMarker>,
        guild: Id<GuildMarker>,
    ) -> Result<Vec<Command>> {
        let what = "the command list";
        bounded(what, self.client.interaction(app).guild_commands(guild))
            .await?
            .models()
            .await
            .map_err(body_error(what))
    }

    /// `PUT /applications/{app}/guilds/{guild}/commands`: replace the guild's commands.
    pub async fn overwrite_guild_commands(
        &self,
        app: Id<ApplicationMarker>,
        guild: Id<GuildMarker>,
        commands: &[Command],
    ) -> Result<()> {
        let interaction = self.client.interaction(app);
        bounded(
            "the command registration",
            interaction.set_guild_commands(guild, commands),
        )
        .await
        .map(drop)
    }

    /// `POST /interactions/{id}/{token}/callback`.
    pub async fn callback(
        &self,
        app: Id<ApplicationMarker>,
        interaction: &Interaction,
        response: &InteractionResponse,
    ) -> Result<()> {
        let client = self.client.interaction(app);
        bounded(
            "the interaction callback",
            client.create_response(interaction.id, &interaction.token, response),
        )
        .await
        .map(drop)
    }

    /// `PATCH /webhooks/{app}/{token}/messages/@original`: edit the deferred or first answer
    /// (for a button, the message the button is on). Only what `message` sets is sent.
    pub async fn edit_original(
        &self,
        app: Id<ApplicationMarker>,
        token: &str,
        message: &InteractionResponseData,
    ) -> Result<()> {
        let client = self.client.interaction(app);
        // Each setter sends its field, `None` as null (which clears it): only what `message`
        // has is set, so an edit of the report keeps its embeds.
        let mut edit = client
            .update_response(token)
            .allowed_mentions(message.allowed_mentions.as_ref());
        if let Some(content) = &message.content {
            edit = edit.content(Some(content));
        }
        if let Some(components) = &message.components {
            edit = edit.components(Some(components));
        }
        if let Some(embeds) = &message.embeds {
            edit = edit.embeds(Some(embeds));
        }
        bounded("the edit of the original answer", edit)
            .await
            .map(drop)
    }

    /// `POST /webhooks/{app}/{token}`: a follow-up message.
    pub async fn follow_up(
        &self,
        app: Id<ApplicationMarker>,
        token: &str,
        message: &InteractionResponseData,
    ) -> Result<()> {
        let client = self.client.interaction(app);
        let mut follow_up = client
            .create_followup(token)
            .content(message.content.as_deref().unwrap_or_default())
            .components(message.components.as_deref().unwrap_or_default())
            .embeds(message.embeds.as_deref().unwrap_or_default())
            .allowed_mentions(message.allowed_mentions.as_ref());
        if let Some(flags) = message.flags {
            follow_up = follow_up.flags(flags);
        }
        bounded("the follow-up message", follow_up).await.map(drop)
    }

    /// `GET /channels/{channel}/messages/{message}`: a message as it is now (the bot's report).
    pub async fn message(
        &self,
        channel: Id<ChannelMarker>,
        message: Id<MessageMarker>,
    ) -> Result<Message> {
        fetch("the message lookup", self.client.message(channel, message)).await
    }

    /// `PATCH /channels/{channel}/messages/{message}`: set a bot message's content and
    /// components (its embeds stay); mentions in it never ping.
    pub async fn edit_message(
        &self,
        channel: Id<ChannelMarker>,
        message: Id<MessageMarker>,
        content: &str,
        components: &[Component],
    ) -> Result<()> {
        let no_pings = AllowedMentions::default();
        let edit = self
            .client
            .update_message(channel, message)
            .content(Some(content))
            .components(Some(components))
            .allowed_mentions(Some(&no_pings));
        bounded("the edit of the report", edit).await.map(drop)
    }
}
