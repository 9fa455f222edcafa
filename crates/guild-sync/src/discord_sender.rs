//! The Discord sender: posts messages with embeds to the audit channel (bot token) or to an
//! incoming webhook, honouring 429 `Retry-After` a bounded number of times, and tells the caller
//! whether Discord accepted each message — so a report that did not go out is not marked sent.
//! It renders nothing (that is the reporter's job) and never logs the token or webhook URL
//! (the URL carries the webhook's secret).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;

use crate::config::{Config, Secret};

/// Attempts per message, the first included, when Discord keeps answering 429.
pub const MAX_ATTEMPTS: u32 = 4;
/// The longest a single 429 wait may be (seconds); a longer `Retry-After` is waited this long.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Whole-request timeout for one POST.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body is quoted in the error (Discord's `{code, message}` fits).
const ERROR_BODY_CHARS: usize = 300;

/// Where messages go.
enum Target {
    /// `POST {api_url}/channels/{channel_id}/messages` with `Authorization: Bot {token}`.
    Channel { url: String, token: Secret },
    /// An incoming webhook (`?wait=true`, so Discord answers only once the message exists).
    Webhook { url: Secret },
}

/// Posts report messages to Discord.
pub struct DiscordSender {
    client: reqwest::Client,
    target: Target,
}

impl std::fmt::Debug for DiscordSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.target {
            Target::Channel { .. } => "DiscordSender(channel)",
            Target::Webhook { .. } => "DiscordSender(webhook)",
        })
    }
}

fn client() -> Result<reqwest::Client> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("guild-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client for Discord")
}

impl DiscordSender {
    /// The sender the configuration asks for: the bot and audit channel when both are set,
    /// else the webhook; `None` when neither is configured.
    pub fn from_config(config: &Config) -> Result<Option<DiscordSender>> {
        if let (Some(token), Some(channel)) =
            (&config.discord_bot_token, &config.discord_audit_channel_id)
        {
            return Self::channel(&config.discord_api_url, channel, token.clone()).map(Some);
        }
        if let Some(url) = &config.discord_webhook_url {
            return Self::webhook(url.clone()).map(Some);
        }
        Ok(None)
    }

    /// Post to a channel as the bot. `api_url` is Discord's (or a fake's) API base.
    pub fn channel(api_url: &str, channel_id: &str, token: Secret) -> Result<DiscordSender> {
        let channel_id = channel_id.trim();
        if channel_id.is_empty() || !channel_id.bytes().all(|b| b.is_ascii_digit()) {
            bail!("DISCORD_AUDIT_CHANNEL_ID must be a channel id (digits), not {channel_id:?}");
        }
        url::Url::parse(api_url)
            .with_context(|| format!("DISCORD_API_URL is not a valid URL: {api_url:?}"))?;
        Ok(DiscordSender {
            client: client()?,
            target: Target::Channel {
                url: format!(
                    "{}/channels/{channel_id}/messages",
                    api_url.trim_end_matches('/')
                ),
                token,
            },
        })
    }

    /// Post to an incoming webhook URL.
    pub fn webhook(url: Secret) -> Result<DiscordSender> {
        // The URL is a secret: the error names the variable, never the value.
        let mut parsed =
            url::Url::parse(url.expose()).context("DISCORD_WEBHOOK_URL is not a valid URL")?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("DISCORD_WEBHOOK_URL must be an http(s) URL");
        }
        let others: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "wait")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("wait", "true");
        Ok(DiscordSender {
            client: client()?,
            target: Target::Webhook {
                url: Secret::new(parsed.to_string()),
            },
        })
    }

    /// Whether messages go out as the bot: only then can they carry buttons (an incoming
    /// webhook's message cannot, and nothing would answer their presses).
    pub fn posts_as_bot(&self) -> bool {
        matches!(self.target, Target::Channel { .. })
    }

    /// Post one message (`{"embeds": [...]}`); Ok only when Discord accepted it. A 429 is
    /// waited out (`Retry-After` header, else the body's `retry_after`) up to
    /// [`MAX_ATTEMPTS`] attempts; any other failure is returned at once.
    pub async fn send(&self, message: &serde_json::Value) -> Result<()> {
        let kind = match self.target {
            Target::Channel { .. } => "channel",
            Target::Webhook { .. } => "webhook",
        };
        for attempt in 1..=MAX_ATTEMPTS {
            let request = match &self.target {
                Target::Channel { url, token } => self
                    .client
                    .post(url)
                    .header("Authorization", format!("Bot {}", token.expose())),
                Target::Webhook { url } => self.client.post(url.expose()),
            };
            let response = request
                .json(message)
                .send()
                .await
                // reqwest errors print the URL, which for a webhook is the secret.
                .map_err(|e| e.without_url())
                .with_context(|| format!("cannot reach Discord ({kind})"))?;
            let status = response.status();
            if status.is_success() {
                tracing::debug!(target_kind = kind, attempt, "Discord accepted the message");
                return Ok(());
            }
            let header_wait = retry_after_header(&response);
            let body = response.text().await.unwrap_or_default();
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < MAX_ATTEMPTS {
                let wait = header_wait
                    .or_else(|| retry_after_body(&body))
                    .unwrap_or(Duration::from_secs(1))
                    .min(MAX_RETRY_WAIT);
                tracing::warn!(
                    target_kind = kind,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "Discord rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let quoted: String = body.chars().take(ERROR_BODY_CHARS).collect();
            bail!("Discord ({kind}) refused the message: HTTP {status}: {quoted}");
        }
        bail!("Discord ({kind}) kept rate-limiting after {MAX_ATTEMPTS} attempts")
    }
}

/// `Retry-After` in seconds (Discord sends decimals).
fn retry_after_header(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    seconds(value.trim().parse().ok()?)
}

/// The JSON body's `retry_after` (seconds).
fn retry_after_body(body: &str) -> Option<Duration> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    seconds(json.get("retry_after")?.as_f64()?)
}

fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_from_a_json_body_in_seconds() {
        assert_eq!(
            retry_after_body(
                r#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after_body("not json"), None);
        assert_eq!(seconds(-1.0), None);
    }

    #[test]
    fn a_webhook_url_gets_wait_true_and_is_never_printed() {
        let sender =
            DiscordSender::webhook(Secret::new("https://discord.com/api/webhooks/1/tok?x=1"))
                .unwrap();
        let Target::Webhook { url } = &sender.target else {
            panic!("expected a webhook");
        };
        assert_eq!(
            url.expose(),
            "https://discord.com/api/webhooks/1/tok?x=1&wait=true"
        );
        assert!(!format!("{sender:?}").contains("tok"));
        let err = DiscordSender::webhook(Secret::new("not a url tok")).unwrap_err();
        assert!(!format!("{err:#}").contains("tok"));
    }

    #[test]
    fn a_channel_id_must_be_digits() {
        let err = DiscordSender::channel("http://localhost", "abc", Secret::new("t")).unwrap_err();
        assert!(err.to_string().contains("DISCORD_AUDIT_CHANNEL_ID"));
    }
}
