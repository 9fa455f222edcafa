//! Configuration: environment variables (SPEC §6), optionally a `guild-sync.toml` with the same
//! keys in lowercase; the environment wins. Only loading and validation live here — each part
//! decides for itself whether what it needs is present.

use std::path::PathBuf;

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The optional configuration file, looked up in the working directory.
pub const CONFIG_FILE: &str = "guild-sync.toml";

/// Every key guild-sync reads, as environment variable names.
const KEYS: &[&str] = &[
    "DATABASE_URL",
    "GUILD_SYNC_DATA_DIR",
    "BLIZZARD_CLIENT_ID",
    "BLIZZARD_CLIENT_SECRET",
    "BLIZZARD_REGION",
    "BLIZZARD_API_URL",
    "BLIZZARD_OAUTH_URL",
    "BLIZZARD_REQUESTS_PER_SECOND",
    "GUILD_REALM_SLUG",
    "GUILD_NAME_SLUG",
    "DISCORD_BOT_TOKEN",
    "DISCORD_GUILD_ID",
    "DISCORD_AUDIT_CHANNEL_ID",
    "DISCORD_WEBHOOK_URL",
    "DISCORD_API_URL",
    "DISCORD_GATEWAY_URL",
    "GUILD_SYNC_API_KEY",
    "GUILD_SYNC_ADMIN_TOKEN",
    "GUILD_SYNC_BIND",
    "GUILD_SYNC_METRICS_BIND",
    "GUILD_SYNC_API_URL",
    "GUILD_SYNC_PUBLIC_URL",
    "WOW_SAVED_VARIABLES_PATH",
    "GUILD_SYNC_BLIZZARD_CRON",
    "GUILD_SYNC_DISCORD_INTERVAL_MINUTES",
    "GUILD_SYNC_STALE_DAYS",
    "GUILD_SYNC_MAX_REMOVAL_FRACTION",
    "GUILD_SYNC_ROLE_SYNC",
    "GUILD_SYNC_ROLE_GRACE_DAYS",
    "GUILD_SYNC_FORMER_MEMBER_ROLE",
    "GUILD_SYNC_ROLE_MAX_SOURCE_AGE_HOURS",
    "GUILD_SYNC_OFFICER_RANK",
    "GUILD_SYNC_UPLOADS_PER_MINUTE",
    "DISCORD_APPLICATION_ID",
    "DISCORD_CLIENT_ID",
    "DISCORD_CLIENT_SECRET",
    "DISCORD_OAUTH_URL",
    "BLIZZARD_AUTHORIZE_URL",
    "BLIZZARD_USERINFO_URL",
    "GUILD_SYNC_SIGNING_SECRET",
];

/// A secret value (tokens, keys): never printed, not even in debug output or logs.
pub use guild_sync_core::secret::Secret;

/// The whole configuration. Optional values are `None` when unset or empty.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub database_url: Option<Secret>,
    #[serde(default = "default_data_dir")]
    pub guild_sync_data_dir: PathBuf,

    pub blizzard_client_id: Option<String>,
    pub blizzard_client_secret: Option<Secret>,
    #[serde(default = "default_region")]
    pub blizzard_region: String,
    pub blizzard_api_url: Option<String>,
    #[serde(default = "default_oauth_url")]
    pub blizzard_oauth_url: String,
    /// Profile fetches per second; Blizzard allows 100, we stay under it by default.
    #[serde(default = "default_blizzard_rps")]
    pub blizzard_requests_per_second: u32,
    pub guild_realm_slug: Option<String>,
    pub guild_name_slug: Option<String>,

    pub discord_bot_token: Option<Secret>,
    #[serde(default, deserialize_with = "snowflake")]
    pub discord_guild_id: Option<String>,
    #[serde(default, deserialize_with = "snowflake")]
    pub discord_audit_channel_id: Option<String>,
    pub discord_webhook_url: Option<Secret>,
    #[serde(default = "default_discord_api_url")]
    pub discord_api_url: String,
    /// Gateway URL override (tests point it at a local fake); unset = Discord's own.
    pub discord_gateway_url: Option<String>,

    pub guild_sync_api_key: Option<Secret>,
    pub guild_sync_admin_token: Option<Secret>,
    #[serde(default = "default_bind")]
    pub guild_sync_bind: String,
    /// Where `GET /metrics` listens on its own; unset: on the API's listener, loopback only.
    pub guild_sync_metrics_bind: Option<String>,
    /// Where the companion uploads to.
    pub guild_sync_api_url: Option<String>,
    /// The address officers open the console at (behind a TLS proxy: `https://…`); an https
    /// URL makes the console's cookies `Secure`.
    pub guild_sync_public_url: Option<String>,
    pub wow_saved_variables_path: Option<PathBuf>,

    /// Battle.net pipeline schedule (cron with seconds, UTC).
    #[serde(default = "default_blizzard_cron")]
    pub guild_sync_blizzard_cron: String,
    #[serde(default = "default_discord_interval")]
    pub guild_sync_discord_interval_minutes: u64,
    /// A character whose last login is older than this many days is stale.
    #[serde(default = "default_stale_days")]
    pub guild_sync_stale_days: i64,
    /// A roster or member list that would remove more than this fraction at once is refused.
    #[serde(default = "default_max_removal_fraction")]
    pub guild_sync_max_removal_fraction: f64,
    /// Discord role sync: `off` (default), `plan` or `apply`.
    #[serde(default = "default_role_sync")]
    pub guild_sync_role_sync: String,
    /// Days after a player's last character left before the rank roles go.
    #[serde(default = "default_role_grace_days")]
    pub guild_sync_role_grace_days: i64,
    /// The role a former member gets after the grace period (managed when set).
    pub guild_sync_former_member_role: Option<String>,
    /// `weekly`: the report also sends a weekly digest of joins, leaves, promotions,
    /// demotions and renames (issue 19). Unset or `off`: no digest.
    pub guild_sync_digest: Option<String>,
    /// Member events older than this many days are deleted after each integrity check;
    /// unset: kept forever.
    pub guild_sync_event_retention_days: Option<u32>,
    /// A Battle.net or Discord sync older than this refuses a role run.
    #[serde(default = "default_role_max_source_age_hours")]
    pub guild_sync_role_max_source_age_hours: i64,

    /// Addon uploads one key may make per minute (a burst of that many, then one every
    /// 60/n s); more are answered 429 with `Retry-After`. `0` turns the limit off.
    #[serde(default = "default_uploads_per_minute")]
    pub guild_sync_uploads_per_minute: u32,

    /// The lowest guild rank that counts as an officer (console Discord login, Discord
    /// commands and buttons); see `db::officers`.
    #[serde(default = "default_officer_rank")]
    pub guild_sync_officer_rank: String,
    /// The bot's application id for slash commands; unset: asked from Discord
    /// (`GET /applications/@me`).
    #[serde(default, deserialize_with = "snowflake")]
    pub discord_application_id: Option<String>,
    /// The bot application's OAuth2 client (member claims and officer login).
    #[serde(default, deserialize_with = "snowflake")]
    pub discord_client_id: Option<String>,
    pub discord_client_secret: Option<Secret>,
    /// Discord's authorize page (tests point it at a local fake).
    #[serde(default = "default_discord_oauth_url")]
    pub discord_oauth_url: String,
    /// Battle.net's authorize page (tests point it at a local fake).
    #[serde(default = "default_blizzard_authorize_url")]
    pub blizzard_authorize_url: String,
    /// Battle.net's OpenID userinfo (the BattleTag).
    #[serde(default = "default_blizzard_userinfo_url")]
    pub blizzard_userinfo_url: String,
    /// Signs the OAuth `state` of claims and officer logins; unset: a secret generated on
    /// first use and stored in the database (`service_secrets`).
    pub guild_sync_signing_secret: Option<Secret>,
}

fn default_uploads_per_minute() -> u32 {
    // The companion uploads when the game writes its SavedVariables: a few times an hour.
    10
}
fn default_officer_rank() -> String {
    "Officer".into()
}
fn default_discord_oauth_url() -> String {
    "https://discord.com/oauth2/authorize".into()
}
fn default_blizzard_authorize_url() -> String {
    "https://oauth.battle.net/authorize".into()
}
fn default_blizzard_userinfo_url() -> String {
    "https://oauth.battle.net/userinfo".into()
}

fn default_role_sync() -> String {
    "off".into()
}
fn default_role_grace_days() -> i64 {
    guild_sync_core::roles::DEFAULT_GRACE_DAYS
}
fn default_role_max_source_age_hours() -> i64 {
    24
}

/// Discord ids are digits, which figment's environment provider parses as numbers; accept both
/// forms so `DISCORD_GUILD_ID=1234…` works.
fn snowflake<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Text(s) => s,
        Id::Number(n) => n.to_string(),
    }))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".guild-sync")
}
fn default_region() -> String {
    "us".into()
}
fn default_oauth_url() -> String {
    "https://oauth.battle.net/token".into()
}
fn default_blizzard_rps() -> u32 {
    90
}
/// Discord's own API base, the default of `DISCORD_API_URL`; any other value is reached as a
/// proxy (see `discord_sync`).
pub const DEFAULT_DISCORD_API_URL: &str = "https://discord.com/api/v10";

fn default_discord_api_url() -> String {
    DEFAULT_DISCORD_API_URL.into()
}
fn default_bind() -> String {
    "127.0.0.1:8080".into()
}
fn default_blizzard_cron() -> String {
    "0 0 1,7,13,19 * * *".into()
}
fn default_discord_interval() -> u64 {
    15
}
fn default_stale_days() -> i64 {
    30
}
fn default_max_removal_fraction() -> f64 {
    0.5
}

impl Config {
    /// Whether the console's cookies are `Secure`: the public URL is https.
    pub fn console_cookies_secure(&self) -> bool {
        self.guild_sync_public_url
            .as_deref()
            .is_some_and(|url| url.trim().to_ascii_lowercase().starts_with("https://"))
    }

    /// Load from `guild-sync.toml` (if present) and the environment.
    pub fn load() -> Result<Config> {
        Self::from_figment(
            Figment::new()
                .merge(Toml::file(CONFIG_FILE))
                .merge(Env::raw().only(KEYS).filter(|_| true)),
        )
    }

    /// The configuration with every default and nothing from the environment (tests).
    pub fn defaults() -> Config {
        Self::from_figment(Figment::new()).expect("the defaults always deserialize")
    }

    fn from_figment(figment: Figment) -> Result<Config> {
        let mut config: Config = figment
            .extract()
            .context("invalid configuration (environment or guild-sync.toml)")?;
        config.drop_empty();
        Ok(config)
    }

    /// `FOO=` in a shell or an empty TOML string means "unset", not "the empty string".
    fn drop_empty(&mut self) {
        fn clear<T: AsRef<str>>(value: &mut Option<T>) {
            if value.as_ref().is_some_and(|v| v.as_ref().trim().is_empty()) {
                *value = None;
            }
        }
        clear(&mut self.database_url);
        clear(&mut self.blizzard_client_id);
        clear(&mut self.blizzard_client_secret);
        clear(&mut self.blizzard_api_url);
        clear(&mut self.guild_realm_slug);
        clear(&mut self.guild_name_slug);
        clear(&mut self.discord_bot_token);
        clear(&mut self.discord_guild_id);
        clear(&mut self.discord_audit_channel_id);
        clear(&mut self.discord_webhook_url);
        clear(&mut self.guild_sync_metrics_bind);
        clear(&mut self.discord_gateway_url);
        clear(&mut self.guild_sync_api_key);
        clear(&mut self.guild_sync_admin_token);
        clear(&mut self.guild_sync_api_url);
        clear(&mut self.guild_sync_public_url);
        clear(&mut self.discord_application_id);
        clear(&mut self.discord_client_id);
        clear(&mut self.discord_client_secret);
        clear(&mut self.guild_sync_signing_secret);
    }

    /// Member claims (`/claim`) need the bot application's OAuth2 client, the Battle.net client
    /// and the public address browsers come back to.
    /// Whether `GUILD_SYNC_DIGEST=weekly` (any case) asks for the weekly digest.
    pub fn weekly_digest(&self) -> bool {
        self.guild_sync_digest
            .as_deref()
            .is_some_and(|d| d.trim().eq_ignore_ascii_case("weekly"))
    }

    pub fn claims_configured(&self) -> bool {
        self.discord_client_id.is_some()
            && self.discord_client_secret.is_some()
            && self.guild_sync_public_url.is_some()
            && self.blizzard_client_id.is_some()
            && self.blizzard_client_secret.is_some()
    }

    /// The Battle.net settings a live sync needs that are not set (empty = ready).
    pub fn missing_blizzard_settings(&self) -> Vec<&'static str> {
        [
            ("BLIZZARD_CLIENT_ID", self.blizzard_client_id.is_none()),
            (
                "BLIZZARD_CLIENT_SECRET",
                self.blizzard_client_secret.is_none(),
            ),
            ("GUILD_REALM_SLUG", self.guild_realm_slug.is_none()),
            ("GUILD_NAME_SLUG", self.guild_name_slug.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, missing)| missing.then_some(key))
        .collect()
    }

    /// The Discord settings the live member sync and the gateway listener need that are not
    /// set (empty = ready).
    pub fn missing_discord_settings(&self) -> Vec<&'static str> {
        [
            ("DISCORD_BOT_TOKEN", self.discord_bot_token.is_none()),
            ("DISCORD_GUILD_ID", self.discord_guild_id.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, missing)| missing.then_some(key))
        .collect()
    }

    /// The Battle.net API base URL: configured, else the region's.
    pub fn blizzard_api_base(&self) -> String {
        self.blizzard_api_url
            .clone()
            .unwrap_or_else(|| format!("https://{}.api.blizzard.com", self.blizzard_region))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let config = Config::defaults();
        assert_eq!(config.blizzard_region, "us");
        assert_eq!(config.guild_sync_bind, "127.0.0.1:8080");
        assert_eq!(config.blizzard_api_base(), "https://us.api.blizzard.com");
        assert_eq!(config.discord_api_url, "https://discord.com/api/v10");
        assert_eq!(config.guild_sync_data_dir, PathBuf::from(".guild-sync"));
        assert_eq!(config.guild_sync_blizzard_cron, "0 0 1,7,13,19 * * *");
    }

    #[test]
    fn empty_values_count_as_unset_and_secrets_are_not_printed() {
        let config = Config::from_figment(
            Figment::new()
                .merge(figment::providers::Serialized::default(
                    "discord_bot_token",
                    "",
                ))
                .merge(figment::providers::Serialized::default(
                    "guild_sync_admin_token",
                    "hunter2",
                )),
        )
        .unwrap();
        assert!(config.discord_bot_token.is_none());
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}

/// Protection against a source that suddenly reports most of the guild gone (an API glitch, a
/// half-fetched list): a sync that would remove more than `max_fraction` of the present rows at
/// once changes nothing, unless an officer explicitly allows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemovalGuard {
    pub max_fraction: f64,
    pub allow_mass_removal: bool,
}

impl RemovalGuard {
    pub fn from_config(config: &Config, allow_mass_removal: bool) -> Self {
        RemovalGuard {
            max_fraction: config.guild_sync_max_removal_fraction,
            allow_mass_removal,
        }
    }

    /// Whether removing `removing` of `present` rows is allowed.
    pub fn permits(&self, removing: usize, present: usize) -> bool {
        self.allow_mass_removal
            || removing == 0
            || (removing as f64) <= self.max_fraction * present as f64
    }
}
