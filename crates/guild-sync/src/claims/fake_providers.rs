//! Discord's and Battle.net's OAuth2 endpoints, served locally with their real wire shapes,
//! for the claim tests and for `demo --serve` (so a claim can be tried without registering an
//! application anywhere). Not a mock of guild-sync: a small stateful stand-in for the two
//! providers that checks what they check — the client's credentials (HTTP Basic), the
//! redirect URI, single-use codes and the PKCE verifier against the challenge — and answers
//! as they answer.
//!
//! The authorize pages log in whoever the fake is told is at the keyboard
//! ([`FakeProviders::log_in_discord`], [`FakeProviders::log_in_battlenet`]) and send the browser
//! straight back, as the real ones do once the user has consented before.
//!
//! Paths, under the fake's base URL: `/discord/authorize`, `/discord/api/oauth2/token`,
//! `/discord/api/users/@me`, `/battlenet/authorize`, `/battlenet/token`, `/battlenet/userinfo`,
//! `/battlenet/api/profile/user/wow`. [`FakeProviders::configure`] points a [`Config`] at them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::{Config, Secret};

/// A Discord account the fake knows.
#[derive(Debug, Clone)]
pub struct FakeDiscordUser {
    pub id: String,
    pub username: String,
    pub global_name: Option<String>,
}

/// A character on a fake Battle.net account.
#[derive(Debug, Clone)]
pub struct FakeCharacter {
    pub id: i64,
    pub name: String,
    pub realm_slug: String,
    pub level: i32,
}

/// A Battle.net account the fake knows.
#[derive(Debug, Clone)]
pub struct FakeBattlenetAccount {
    pub id: i64,
    pub battletag: String,
    pub characters: Vec<FakeCharacter>,
}

#[derive(Default)]
struct Inner {
    discord_user: Option<FakeDiscordUser>,
    battlenet_account: Option<FakeBattlenetAccount>,
    /// Answer `GET /profile/user/wow` with this status instead of the profile.
    profile_failure: Option<u16>,
    /// Issued, not yet redeemed codes: code → (who, PKCE challenge, redirect URI).
    codes: HashMap<String, (Identity, String, String)>,
    /// Access tokens → who.
    tokens: HashMap<String, Identity>,
    /// Every secret value the fake handed out or was sent (codes, tokens, client secrets), so
    /// a test can assert none of them reached the log.
    secrets_seen: Vec<String>,
    counter: u64,
}

#[derive(Clone)]
enum Identity {
    Discord(FakeDiscordUser),
    Battlenet(FakeBattlenetAccount),
}

/// The two fake providers, shared between the server and the test driving it.
#[derive(Clone)]
pub struct FakeProviders {
    inner: Arc<Mutex<Inner>>,
    discord_client: (String, String),
    battlenet_client: (String, String),
    base: String,
}

/// The OAuth client ids and secrets the fake accepts (and [`FakeProviders::configure`] sets).
pub const FAKE_DISCORD_CLIENT: (&str, &str) = ("111111111111111111", "fake-discord-client-secret");
/// See [`FAKE_DISCORD_CLIENT`].
pub const FAKE_BATTLENET_CLIENT: (&str, &str) = ("fake-battlenet-client", "fake-bnet-secret");

impl FakeProviders {
    /// Serve the fakes on a free local port until the runtime ends.
    pub async fn start() -> anyhow::Result<FakeProviders> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let fake = FakeProviders {
            inner: Arc::default(),
            discord_client: (FAKE_DISCORD_CLIENT.0.into(), FAKE_DISCORD_CLIENT.1.into()),
            battlenet_client: (
                FAKE_BATTLENET_CLIENT.0.into(),
                FAKE_BATTLENET_CLIENT.1.into(),
            ),
            base,
        };
        let router = Router::new()
            .route("/discord/authorize", get(authorize_discord))
            .route("/discord/api/oauth2/token", post(token_discord))
            .route("/discord/api/users/@me", get(discord_me))
            .route("/battlenet/authorize", get(authorize_battlenet))
            .route("/battlenet/token", post(token_battlenet))
            .route("/battlenet/userinfo", get(battlenet_userinfo))
            .route("/battlenet/api/profile/user/wow", get(battlenet_profile))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(fake)
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Point `config`'s provider URLs and OAuth clients at the fakes.
    pub fn configure(&self, config: &mut Config) {
        let base = &self.base;
        config.discord_client_id = Some(self.discord_client.0.clone());
        config.discord_client_secret = Some(Secret::new(self.discord_client.1.clone()));
        config.discord_oauth_url = format!("{base}/discord/authorize");
        config.discord_api_url = format!("{base}/discord/api");
        config.blizzard_client_id = Some(self.battlenet_client.0.clone());
        config.blizzard_client_secret = Some(Secret::new(self.battlenet_client.1.clone()));
        config.blizzard_authorize_url = format!("{base}/battlenet/authorize");
        config.blizzard_oauth_url = format!("{base}/battlenet/token");
        config.blizzard_userinfo_url = format!("{base}/battlenet/userinfo");
        config.blizzard_api_url = Some(format!("{base}/battlenet/api"));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Who the Discord authorize page logs in from now on.
    pub fn log_in_discord(&self, user: FakeDiscordUser) {
        self.lock().discord_user = Some(user);
    }

    /// Which account the Battle.net authorize page logs in from now on.
    pub fn log_in_battlenet(&self, account: FakeBattlenetAccount) {
        self.lock().battlenet_account = Some(account);
    }

    /// Make `GET /profile/user/wow` answer `status` (`None`: the profile again).
    pub fn fail_profile(&self, status: Option<u16>) {
        self.lock().profile_failure = status;
    }

    /// Every code, token and client secret the fake saw: none may appear in a log.
    pub fn secrets_seen(&self) -> Vec<String> {
        let inner = self.lock();
        let mut all = inner.secrets_seen.clone();
        all.push(self.discord_client.1.clone());
        all.push(self.battlenet_client.1.clone());
        all
    }

    fn issue_code(&self, identity: Identity, challenge: String, redirect_uri: String) -> String {
        let mut inner = self.lock();
        inner.counter += 1;
        let code = format!("fake-code-{}-{}", inner.counter, random_hex());
        inner.secrets_seen.push(code.clone());
        inner
            .codes
            .insert(code.clone(), (identity, challenge, redirect_uri));
        code
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: String,
    response_type: String,
    #[serde(default)]
    scope: String,
    state: String,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

fn authorize(
    fake: &FakeProviders,
    q: AuthorizeQuery,
    client_id: &str,
    scopes: &[&str],
    who: Option<Identity>,
) -> Response {
    if q.client_id != client_id || q.response_type != "code" {
        return bad_request("unknown client_id or response_type");
    }
    let granted: Vec<&str> = q.scope.split(' ').collect();
    if scopes.iter().any(|s| !granted.contains(s)) {
        return bad_request("missing scope");
    }
    if q.code_challenge_method != "S256" || q.code_challenge.is_empty() {
        return bad_request("PKCE (S256) required");
    }
    let Some(who) = who else {
        return bad_request("nobody is logged in to the fake provider");
    };
    let code = fake.issue_code(who, q.code_challenge, q.redirect_uri.clone());
    let mut url = match url::Url::parse(&q.redirect_uri) {
        Ok(url) => url,
        Err(_) => return bad_request("bad redirect_uri"),
    };
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q.state);
    Redirect::to(url.as_str()).into_response()
}

async fn authorize_discord(
    State(fake): State<FakeProviders>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let who = fake.lock().discord_user.clone().map(Identity::Discord);
    let client = fake.discord_client.0.clone();
    authorize(&fake, q, &client, &["identify"], who)
}

async fn authorize_battlenet(
    State(fake): State<FakeProviders>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let who = fake
        .lock()
        .battlenet_account
        .clone()
        .map(Identity::Battlenet);
    let client = fake.battlenet_client.0.clone();
    authorize(&fake, q, &client, &["wow.profile", "openid"], who)
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
}

fn oauth_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": format!("fake provider: {error}")})),
    )
        .into_response()
}

/// Why a token request was refused, as RFC 6749 §5.2 names it.
enum Refusal {
    InvalidClient,
    Grant(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::InvalidClient => (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client"})),
            )
                .into_response(),
            Refusal::Grant(error) => oauth_error(error),
        }
    }
}

/// Check a token request (client auth, code, redirect URI, PKCE) and hand out a token.
// The error is the refusal the handler answers with as is; boxing it would only add a step.
#[allow(clippy::result_large_err)]
fn redeem(
    fake: &FakeProviders,
    headers: &HeaderMap,
    form: &TokenForm,
    client: &(String, String),
) -> Result<(String, Identity), Refusal> {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded, then Basic-encoded.
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            encode(&client.0),
            encode(&client.1)
        ))
    );
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if presented != Some(expected.as_str()) {
        return Err(Refusal::InvalidClient);
    }
    if form.grant_type != "authorization_code" {
        return Err(Refusal::Grant("unsupported_grant_type"));
    }
    let mut inner = fake.lock();
    let Some((who, challenge, redirect_uri)) = inner.codes.remove(&form.code) else {
        return Err(Refusal::Grant("invalid_grant"));
    };
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(form.code_verifier.as_bytes()));
    if redirect_uri != form.redirect_uri || computed != challenge {
        return Err(Refusal::Grant("invalid_grant"));
    }
    let token = format!("fake-access-token-{}", random_hex());
    inner.secrets_seen.push(token.clone());
    inner.tokens.insert(token.clone(), who.clone());
    Ok((token, who))
}

async fn token_discord(
    State(fake): State<FakeProviders>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    match redeem(&fake, &headers, &form, &fake.discord_client) {
        Ok((token, _)) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 604800,
            "refresh_token": format!("fake-refresh-{}", random_hex()),
            "scope": "identify",
        }))
        .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn token_battlenet(
    State(fake): State<FakeProviders>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    match redeem(&fake, &headers, &form, &fake.battlenet_client) {
        Ok((token, Identity::Battlenet(account))) => Json(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 86399,
            "scope": "wow.profile openid",
            "sub": account.id.to_string(),
            "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.c2ln",
        }))
        .into_response(),
        Ok(_) => oauth_error("invalid_grant"),
        Err(refusal) => refusal.into_response(),
    }
}

fn bearer(fake: &FakeProviders, headers: &HeaderMap) -> Option<Identity> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    fake.lock().tokens.get(token).cloned()
}

async fn discord_me(State(fake): State<FakeProviders>, headers: HeaderMap) -> Response {
    match bearer(&fake, &headers) {
        Some(Identity::Discord(user)) => Json(json!({
            "id": user.id,
            "username": user.username,
            "discriminator": "0",
            "global_name": user.global_name,
            "avatar": null,
            "public_flags": 0,
            "flags": 0,
            "mfa_enabled": false,
            "locale": "en-US",
        }))
        .into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response(),
    }
}

fn unauthorized_blizzard() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "invalid_token", "error_description": "Invalid access token"})),
    )
        .into_response()
}

async fn battlenet_userinfo(State(fake): State<FakeProviders>, headers: HeaderMap) -> Response {
    match bearer(&fake, &headers) {
        Some(Identity::Battlenet(account)) => Json(json!({
            "sub": account.id.to_string(),
            "id": account.id,
            "battletag": account.battletag,
        }))
        .into_response(),
        _ => unauthorized_blizzard(),
    }
}

#[derive(Deserialize)]
struct ProfileQuery {
    namespace: String,
}

async fn battlenet_profile(
    State(fake): State<FakeProviders>,
    headers: HeaderMap,
    Query(q): Query<ProfileQuery>,
) -> Response {
    let Some(Identity::Battlenet(account)) = bearer(&fake, &headers) else {
        return unauthorized_blizzard();
    };
    if !q.namespace.starts_with("profile-") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 404, "type": "BLZWEBAPI00000404", "detail": "Not Found"})),
        )
            .into_response();
    }
    if let Some(status) = fake.lock().profile_failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            status,
            Json(json!({"code": status.as_u16(), "type": "BLZWEBAPI00000403", "detail": "Forbidden"})),
        )
            .into_response();
    }
    let base = &fake.base;
    let characters: Vec<serde_json::Value> = account
        .characters
        .iter()
        .map(|c| {
            json!({
                "character": {"href": format!("{base}/profile/wow/character/{}/{}?namespace=profile-us", c.realm_slug, c.name.to_lowercase())},
                "protected_character": {"href": format!("{base}/profile/user/wow/protected-character/1-{}?namespace=profile-us", c.id)},
                "name": c.name,
                "id": c.id,
                "realm": {"key": {"href": format!("{base}/data/wow/realm/1?namespace=dynamic-us")},
                          "name": c.realm_slug, "id": 1, "slug": c.realm_slug},
                "playable_class": {"key": {"href": "x"}, "name": "Warrior", "id": 1},
                "playable_race": {"key": {"href": "x"}, "name": "Human", "id": 1},
                "gender": {"type": "FEMALE", "name": "Female"},
                "faction": {"type": "ALLIANCE", "name": "Alliance"},
                "level": c.level,
            })
        })
        .collect();
    Json(json!({
        "_links": {"self": {"href": format!("{base}/profile/user/wow?namespace=profile-us")},
                   "user": {"href": format!("{base}/account/user")},
                   "profile": {"href": format!("{base}/profile/user/wow")}},
        "id": account.id,
        "wow_accounts": [{"id": 1, "characters": characters}],
        "collections": {"href": format!("{base}/profile/user/wow/collections?namespace=profile-us")},
    }))
    .into_response()
}
