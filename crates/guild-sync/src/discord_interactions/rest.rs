//! The few Discord REST calls the commands make: the application id, the guild's registered
//! commands (read and bulk overwrite), interaction callbacks, and edits of an interaction's
//! original response or follow-ups. Plain JSON over reqwest against `DISCORD_API_URL`, so tests
//! and a proxy reach the same paths; it renders nothing and never logs the token or an
//! interaction token (both are credentials).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::config::{Config, Secret};

/// Whole-request timeout. A callback must reach Discord within 3 s of the interaction, so a
/// slower answer is lost anyway; the registration calls at start-up get the same bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error body is quoted in the error.
const ERROR_BODY_CHARS: usize = 300;

/// A Discord REST client for the bot.
pub struct DiscordRest {
    client: reqwest::Client,
    api: String,
    token: Secret,
}

impl DiscordRest {
    /// The client for the configured bot token and API base.
    pub fn from_config(config: &Config) -> Result<DiscordRest> {
        let token = config
            .discord_bot_token
            .clone()
            .context("DISCORD_BOT_TOKEN is not set")?;
        url::Url::parse(&config.discord_api_url).with_context(|| {
            format!(
                "DISCORD_API_URL is not a valid URL: {:?}",
                config.discord_api_url
            )
        })?;
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("guild-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client for Discord")?;
        Ok(DiscordRest {
            client,
            api: config.discord_api_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// One call; `bot` adds the bot's `Authorization` (interaction callbacks and webhook edits
    /// are authorised by the interaction token in the path instead). `what` names the call in
    /// errors without the path, which may hold an interaction token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        bot: bool,
        what: &str,
    ) -> Result<Value> {
        let mut request = self.client.request(method, format!("{}{path}", self.api));
        if bot {
            request = request.header("Authorization", format!("Bot {}", self.token.expose()));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url())
            .with_context(|| format!("cannot reach Discord ({what})"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let quoted: String = text.chars().take(ERROR_BODY_CHARS).collect();
            bail!("Discord refused {what}: HTTP {status}: {quoted}");
        }
        if status == StatusCode::NO_CONTENT || text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("Discord's answer to {what} is not JSON"))
    }

    /// `GET /oauth2/applications/@me`: the bot's application id.
    pub async fn application_id(&self) -> Result<String> {
        let app = self
            .call(
                Method::GET,
                "/oauth2/applications/@me",
                None,
                true,
                "the application lookup",
            )
            .await?;
        app["id"]
            .as_str()
            .map(str::to_owned)
            .context("Discord's application has no id")
    }

    /// `GET /applications/{app}/guilds/{guild}/commands`.
    pub async fn guild_commands(&self, app: &str, guild: &str) -> Result<Vec<Value>> {
        let commands = self
            .call(
                Method::GET,
                &format!("/applications/{app}/guilds/{guild}/commands"),
                None,
                true,
                "the command list",
            )
            .await?;
        serde_json::from_value(commands).context("Discord's command list is not a list")
    }

    /// `PUT /applications/{app}/guilds/{guild}/commands`: replace the guild's commands.
    pub async fn overwrite_guild_commands(
        &self,
        app: &str,
        guild: &str,
        commands: &Value,
    ) -> Result<()> {
        self.call(
            Method::PUT,
            &format!("/applications/{app}/guilds/{guild}/commands"),
            Some(commands),
            true,
            "the command registration",
        )
        .await
        .map(drop)
    }

    /// `POST /interactions/{id}/{token}/callback`.
    pub async fn callback(&self, id: &str, token: &str, response: &Value) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/interactions/{id}/{token}/callback"),
            Some(response),
            false,
            "the interaction callback",
        )
        .await
        .map(drop)
    }

    /// `PATCH /webhooks/{app}/{token}/messages/@original`: edit the deferred or first answer
    /// (for a button, the message the button is on).
    pub async fn edit_original(&self, app: &str, token: &str, message: &Value) -> Result<()> {
        self.call(
            Method::PATCH,
            &format!("/webhooks/{app}/{token}/messages/@original"),
            Some(message),
            false,
            "the edit of the original answer",
        )
        .await
        .map(drop)
    }

    /// `POST /webhooks/{app}/{token}`: a follow-up message.
    pub async fn follow_up(&self, app: &str, token: &str, message: &Value) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/webhooks/{app}/{token}"),
            Some(message),
            false,
            "the follow-up message",
        )
        .await
        .map(drop)
    }
}
