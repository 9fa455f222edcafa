//! Member claims (issue 17): a member logs in with Discord, then with Battle.net, and the
//! characters on their Battle.net account are linked to them — the strongest identity signal
//! there is. Officers log in to the console with the same Discord login.
//!
//! Owns the two OAuth2 clients (authorization code with PKCE, through the `oauth2` crate over
//! our own reqwest client), the calls made with a member's token (`users/@me`, the BattleTag,
//! the account profile) and the state signer ([`state`]). Tokens are used for those calls and
//! dropped: never stored, never logged. The pages are [`crate::web::claim`]'s; the link rules
//! are the core's ([`guild_sync_core::claims`]) and the SQL is [`crate::db::claims`]'s.
//! [`fake_providers`] serves both providers locally, for the tests and the demo.

pub mod fake_providers;
pub mod state;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::config::{Config, Secret};
use crate::db::claims::ProvenCharacter;
use state::StateSigner;

/// The name of the generated signing secret in `service_secrets`.
pub const SECRET_NAME: &str = "oauth_state";
/// Where Discord sends the browser back (register it in the Discord developer portal).
pub const DISCORD_CALLBACK_PATH: &str = "/oauth/discord/callback";
/// Where Battle.net sends the browser back (register it in the Blizzard developer portal).
pub const BATTLENET_CALLBACK_PATH: &str = "/oauth/battlenet/callback";
/// How long one call to a provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most characters one account's profile may list that a claim reads: far above any real
/// account (50 per realm, a handful of realms), a bound on what a broken answer can cost.
pub const MAX_ACCOUNT_CHARACTERS: usize = 1_000;
/// The most bytes of one provider answer guild-sync reads: a token answer or userinfo is well
/// under a kilobyte, a profile of [`MAX_ACCOUNT_CHARACTERS`] characters a few hundred. A longer
/// answer is broken or hostile and is refused before it is all read.
pub const MAX_PROVIDER_BODY: usize = 2 * 1024 * 1024;
/// The longest name a provider may send that a claim takes: a Discord username or display
/// name (Discord allows 32), a BattleTag (12 letters, `#`, digits), a character name (12) or
/// realm slug. These are shown on pages, stored and sent to Discord in reports.
pub const MAX_PROVIDER_NAME_CHARS: usize = 64;

/// The public claim page, for the console, the audit report and the `/claim` slash command:
/// `None` when claims are not configured (see [`Config::claims_configured`]).
pub fn claim_url(config: &Config) -> Option<String> {
    if !config.claims_configured() {
        return None;
    }
    Some(format!("{}/claim", public_base(config)?))
}

fn public_base(config: &Config) -> Option<String> {
    config
        .guild_sync_public_url
        .as_deref()
        .map(|url| url.trim().trim_end_matches('/').to_string())
}

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Why a provider call failed, as the member's page says it. Never carries a token or a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} refused the login ({reason}); start again")]
    Refused {
        provider: &'static str,
        reason: String,
    },
    #[error("{provider} answered {status} to {what}")]
    Status {
        provider: &'static str,
        what: &'static str,
        status: u16,
    },
    #[error("{provider} could not be reached or sent an answer guild-sync cannot read ({what})")]
    Unreachable {
        provider: &'static str,
        what: &'static str,
    },
}

/// The Discord account a login proved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DiscordUser {
    pub id: String,
    pub username: String,
    pub global_name: Option<String>,
}

/// The Battle.net account a login proved, with its WoW characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BattlenetAccount {
    pub id: i64,
    pub battletag: String,
    pub characters: Vec<ProvenCharacter>,
}

/// The configured OAuth side of the service: present when Discord login is configured
/// (`DISCORD_CLIENT_ID`, `DISCORD_CLIENT_SECRET`, `GUILD_SYNC_PUBLIC_URL`); the Battle.net half
/// when the Blizzard client is configured too.
pub struct Claims {
    discord: OAuthClient,
    battlenet: Option<OAuthClient>,
    http: reqwest::Client,
    discord_api: String,
    userinfo_url: String,
    profile_url: String,
    configured_secret: Option<Secret>,
    signer: OnceCell<StateSigner>,
}

impl Claims {
    /// From the configuration; `None` when Discord login is not configured, an error when a
    /// configured URL is not one.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Claims>> {
        let (Some(id), Some(secret), Some(base)) = (
            config.discord_client_id.as_deref(),
            config.discord_client_secret.as_ref(),
            public_base(config),
        ) else {
            return Ok(None);
        };
        let discord = BasicClient::new(ClientId::new(id.to_string()))
            .set_client_secret(ClientSecret::new(secret.expose().to_string()))
            .set_auth_uri(AuthUrl::new(config.discord_oauth_url.clone())?)
            .set_token_uri(TokenUrl::new(format!(
                "{}/oauth2/token",
                config.discord_api_url.trim_end_matches('/')
            ))?)
            .set_redirect_uri(RedirectUrl::new(format!("{base}{DISCORD_CALLBACK_PATH}"))?);
        let battlenet = match (
            config.blizzard_client_id.as_deref(),
            config.blizzard_client_secret.as_ref(),
        ) {
            (Some(id), Some(secret)) => Some(
                BasicClient::new(ClientId::new(id.to_string()))
                    .set_client_secret(ClientSecret::new(secret.expose().to_string()))
                    .set_auth_uri(AuthUrl::new(config.blizzard_authorize_url.clone())?)
                    .set_token_uri(TokenUrl::new(config.blizzard_oauth_url.clone())?)
                    .set_redirect_uri(RedirectUrl::new(format!(
                        "{base}{BATTLENET_CALLBACK_PATH}"
                    ))?),
            ),
            _ => None,
        };
        // No redirects: a token endpoint that redirects is misconfigured or hostile, and
        // following it would send the code elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()?;
        Ok(Some(Claims {
            discord,
            battlenet,
            http,
            discord_api: config.discord_api_url.trim_end_matches('/').to_string(),
            userinfo_url: config.blizzard_userinfo_url.clone(),
            profile_url: format!(
                "{}/profile/user/wow?namespace=profile-{}&locale=en_US",
                config.blizzard_api_base().trim_end_matches('/'),
                config.blizzard_region
            ),
            configured_secret: config.guild_sync_signing_secret.clone(),
            signer: OnceCell::new(),
        }))
    }

    /// Whether members can claim (Battle.net is configured too).
    pub fn claims_enabled(&self) -> bool {
        self.battlenet.is_some()
    }

    /// The state signer: `GUILD_SYNC_SIGNING_SECRET` when set, else the secret generated and
    /// stored in the database on first use.
    pub async fn signer(&self, pool: &sqlx::PgPool) -> anyhow::Result<&StateSigner> {
        self.signer
            .get_or_try_init(|| async {
                let secret = match &self.configured_secret {
                    Some(secret) => secret.expose().as_bytes().to_vec(),
                    None => crate::db::claims::service_secret(pool, SECRET_NAME).await?,
                };
                Ok(StateSigner::new(&secret))
            })
            .await
    }

    /// Discord's authorize URL for a login whose state is `state` (scope `identify`).
    pub fn discord_authorize_url(&self, signer: &StateSigner, state: &str) -> String {
        authorize_url(&self.discord, signer, state, &["identify"])
    }

    /// Battle.net's authorize URL (scopes `wow.profile openid`); `None` when not configured.
    pub fn battlenet_authorize_url(&self, signer: &StateSigner, state: &str) -> Option<String> {
        let client = self.battlenet.as_ref()?;
        Some(authorize_url(
            client,
            signer,
            state,
            &["wow.profile", "openid"],
        ))
    }

    /// Exchange a Discord code and ask who logged in.
    pub async fn discord_user(
        &self,
        signer: &StateSigner,
        nonce: &str,
        code: &str,
    ) -> Result<DiscordUser, ProviderError> {
        let token = self
            .exchange(&self.discord, "Discord", signer, nonce, code)
            .await?;
        let url = format!("{}/users/@me", self.discord_api);
        let user: DiscordUser = self.get_json("Discord", "users/@me", &url, &token).await?;
        checked_discord_user(user).ok_or(ProviderError::Unreachable {
            provider: "Discord",
            what: "users/@me with an id or name out of bounds",
        })
    }

    /// Exchange a Battle.net code, read the BattleTag and the account's WoW characters.
    pub async fn battlenet_account(
        &self,
        signer: &StateSigner,
        nonce: &str,
        code: &str,
    ) -> Result<BattlenetAccount, ProviderError> {
        let client = self.battlenet.as_ref().ok_or(ProviderError::Unreachable {
            provider: "Battle.net",
            what: "not configured",
        })?;
        let token = self
            .exchange(client, "Battle.net", signer, nonce, code)
            .await?;
        let info: UserInfo = self
            .get_json("Battle.net", "userinfo", &self.userinfo_url, &token)
            .await?;
        let id = info
            .id
            .or_else(|| info.sub.as_deref().and_then(|s| s.parse().ok()))
            .ok_or(ProviderError::Unreachable {
                provider: "Battle.net",
                what: "userinfo without an account id",
            })?;
        let battletag = info.battletag.unwrap_or_default();
        if !battletag.is_empty() && !plausible_name(&battletag) {
            return Err(ProviderError::Unreachable {
                provider: "Battle.net",
                what: "userinfo with a BattleTag out of bounds",
            });
        }
        let profile: WowProfile = self
            .get_json("Battle.net", "the WoW profile", &self.profile_url, &token)
            .await?;
        // A character whose name or realm no real one could have is skipped, not shown or
        // stored: it cannot be a guild character either.
        let characters = profile
            .wow_accounts
            .into_iter()
            .flat_map(|account| account.characters)
            .filter(|c| plausible_name(&c.name) && plausible_name(&c.realm.slug))
            .take(MAX_ACCOUNT_CHARACTERS)
            .map(|c| ProvenCharacter {
                blizzard_id: c.id,
                name: c.name,
                realm_slug: c.realm.slug,
                level: c.level,
            })
            .collect();
        Ok(BattlenetAccount {
            id,
            battletag,
            characters,
        })
    }

    async fn exchange(
        &self,
        client: &OAuthClient,
        provider: &'static str,
        signer: &StateSigner,
        nonce: &str,
        code: &str,
    ) -> Result<String, ProviderError> {
        let http = OAuthHttp(&self.http);
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(signer.pkce_verifier(nonce)))
            .request_async(&http)
            .await
            .map_err(|err| match err {
                // The error response's code (`invalid_grant`…) is safe to show; a parse error's
                // body could hold a token, so it is never formatted.
                oauth2::RequestTokenError::ServerResponse(response) => ProviderError::Refused {
                    provider,
                    // RFC 6749's codes only: an extension code is any text the provider chose.
                    reason: match response.error() {
                        oauth2::basic::BasicErrorResponseType::Extension(_) => {
                            "an error it did not name in RFC 6749's terms".to_string()
                        }
                        known => known.as_ref().to_string(),
                    },
                },
                _ => ProviderError::Unreachable {
                    provider,
                    what: "the token exchange",
                },
            })?;
        Ok(token.access_token().secret().clone())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        provider: &'static str,
        what: &'static str,
        url: &str,
        token: &str,
    ) -> Result<T, ProviderError> {
        let unreachable = ProviderError::Unreachable { provider, what };
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|_| unreachable.clone())?;
        let status = response.status();
        if !status.is_success() {
            return Err(ProviderError::Status {
                provider,
                what,
                status: status.as_u16(),
            });
        }
        let body = bounded_body(response).await.ok_or(unreachable.clone())?;
        serde_json::from_slice(&body).map_err(|_| unreachable)
    }
}

/// The body of `response`, or `None` when it is longer than [`MAX_PROVIDER_BODY`] (read no
/// further than that) or breaks off.
async fn bounded_body(mut response: reqwest::Response) -> Option<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_PROVIDER_BODY as u64)
    {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_PROVIDER_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// A name from a provider that guild-sync takes as is: not empty, at most
/// [`MAX_PROVIDER_NAME_CHARS`], no control characters (no line breaks into a report).
fn plausible_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.chars().count() <= MAX_PROVIDER_NAME_CHARS
        && !name.chars().any(char::is_control)
}

/// `user` when its id is a snowflake and its names are [`plausible_name`]s.
fn checked_discord_user(user: DiscordUser) -> Option<DiscordUser> {
    let snowflake =
        (1..=20).contains(&user.id.len()) && user.id.bytes().all(|b| b.is_ascii_digit());
    (snowflake
        && plausible_name(&user.username)
        && user.global_name.as_deref().is_none_or(plausible_name))
    .then_some(user)
}

fn authorize_url(
    client: &OAuthClient,
    signer: &StateSigner,
    state: &str,
    scopes: &[&str],
) -> String {
    let nonce = state.split('.').nth(2).unwrap_or_default();
    let verifier = PkceCodeVerifier::new(signer.pkce_verifier(nonce));
    let state = state.to_string();
    let (url, _) = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(scopes.iter().map(|s| Scope::new((*s).to_string())))
        .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
        .url();
    url.to_string()
}

/// Battle.net's OpenID userinfo.
#[derive(Deserialize)]
struct UserInfo {
    id: Option<i64>,
    sub: Option<String>,
    battletag: Option<String>,
}

/// `GET /profile/user/wow`: only what a claim reads.
#[derive(Deserialize)]
struct WowProfile {
    #[serde(default)]
    wow_accounts: Vec<WowAccount>,
}

#[derive(Deserialize)]
struct WowAccount {
    #[serde(default)]
    characters: Vec<WowCharacter>,
}

#[derive(Deserialize)]
struct WowCharacter {
    id: i64,
    name: String,
    realm: WowRealm,
    level: Option<i32>,
}

#[derive(Deserialize)]
struct WowRealm {
    slug: String,
}

/// The `oauth2` crate's HTTP client trait over our reqwest client (the crate's own reqwest
/// feature would bring a second reqwest version into the build).
struct OAuthHttp<'a>(&'a reqwest::Client);

/// A failed token request; says nothing about what was sent.
#[derive(Debug, thiserror::Error)]
#[error("the token request failed: {0}")]
struct OAuthHttpError(String);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = OAuthHttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, OAuthHttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                // Only the kind: reqwest's error names the URL, never the body.
                .map_err(|e| OAuthHttpError(e.without_url().to_string()))?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = bounded_body(response).await.ok_or_else(|| {
                OAuthHttpError(format!(
                    "the answer broke off or is longer than {MAX_PROVIDER_BODY} bytes"
                ))
            })?;
            builder
                .body(body)
                .map_err(|e| OAuthHttpError(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, username: &str, global_name: Option<&str>) -> DiscordUser {
        DiscordUser {
            id: id.into(),
            username: username.into(),
            global_name: global_name.map(str::to_string),
        }
    }

    #[test]
    fn provider_names_out_of_bounds_are_refused() {
        assert!(plausible_name("Quelindra"));
        assert!(plausible_name(&"é".repeat(MAX_PROVIDER_NAME_CHARS)));
        assert!(!plausible_name(&"é".repeat(MAX_PROVIDER_NAME_CHARS + 1)));
        assert!(!plausible_name("  "));
        assert!(!plausible_name("Gwen#3003\n**all officers**"));
        assert!(!plausible_name("a\u{1b}[31m"));

        let good = user("200000000000000001", "aelric", Some("Aelric"));
        assert_eq!(checked_discord_user(good.clone()), Some(good));
        assert!(checked_discord_user(user("2000abc", "aelric", None)).is_none());
        assert!(checked_discord_user(user("", "aelric", None)).is_none());
        assert!(checked_discord_user(user(&"1".repeat(21), "aelric", None)).is_none());
        assert!(checked_discord_user(user("1", &"x".repeat(65), None)).is_none());
        assert!(checked_discord_user(user("1", "aelric", Some("line\nbreak"))).is_none());
    }

    /// Serve `body` (a byte length, whole or in 64 KiB chunks without a length) once locally
    /// and read it back through [`bounded_body`].
    async fn read_back(len: usize, chunked: bool) -> Option<usize> {
        use axum::body::Body;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let router = axum::Router::new().route(
            "/",
            axum::routing::get(move || async move {
                if chunked {
                    let chunks = (0..len.div_ceil(65_536)).map(move |i| {
                        let n = 65_536.min(len - i * 65_536);
                        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; n]))
                    });
                    Body::from_stream(futures::stream::iter(chunks))
                } else {
                    Body::from(vec![b'x'; len])
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.content_length().is_none(), chunked);
        bounded_body(response).await.map(|body| body.len())
    }

    #[tokio::test]
    async fn provider_answers_longer_than_the_bound_are_refused() {
        assert_eq!(read_back(1_000, false).await, Some(1_000));
        assert_eq!(read_back(1_000, true).await, Some(1_000));
        assert_eq!(
            read_back(MAX_PROVIDER_BODY, true).await,
            Some(MAX_PROVIDER_BODY)
        );
        assert_eq!(read_back(MAX_PROVIDER_BODY + 1, false).await, None);
        assert_eq!(read_back(MAX_PROVIDER_BODY + 1, true).await, None);
        assert_eq!(read_back(10 * MAX_PROVIDER_BODY, true).await, None);
    }
}
