//! The member claim pages (`/claim`, issue 17) and the console's Discord login.
//!
//! `/claim` → *Log in with Discord* (`/claim/discord` sends the browser to Discord with a
//! signed state) → [`discord_callback`] checks the state, asks Discord who logged in and that
//! they are on the guild's server → *Log in with Battle.net* (`/claim/battlenet`) →
//! [`battlenet_callback`] reads the account's characters and writes the claim
//! ([`crate::db::claims::write_claim`]) → the result page. `/login/discord` is the same
//! Discord step for officers, ending in a console session when the account stands at or above
//! `GUILD_SYNC_OFFICER_RANK`.
//!
//! The browser is bound by the [`CLAIM_COOKIE`] (`SameSite=Lax`: the provider's redirect back
//! is a cross-site navigation, which a `Strict` cookie would not survive). Between the two
//! logins it also carries the proved Discord account, MACed with the state secret. These pages
//! are public (members have no console login) and hold no SQL.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::{CookieJar, SignedCookieJar};
use chrono::Utc;
use serde::Deserialize;

use super::WebState;
use super::session::{SESSION_COOKIE, console_cookie, new_cookie_value, new_discord_session_value};
use crate::claims::state::{Purpose, StateError, StateSigner, VerifiedState};
use crate::claims::{Claims, ProviderError};
use crate::db::claims::{ClaimOutcome, DiscordMember, NamedCharacter, ProvenCharacter};

/// The cookie binding a login in progress to this browser.
pub const CLAIM_COOKIE: &str = "guild_sync_claim";
/// How long the proved Discord account is good for the Battle.net step, in seconds.
const DISCORD_STEP_SECONDS: i64 = 1800;

#[derive(Template, WebTemplate)]
#[template(path = "claim.html")]
struct ClaimPage {
    title: &'static str,
    /// Set after the Discord step: who logged in.
    member: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "claim_result.html")]
struct ResultPage {
    title: &'static str,
    member: String,
    battletag: String,
    linked: Vec<NamedCharacter>,
    moved: Vec<i32>,
    conflicts: Vec<(NamedCharacter, String)>,
    unlinked: Vec<NamedCharacter>,
    outside: Vec<ProvenCharacter>,
    account_owner: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "claim_message.html")]
struct MessagePage {
    title: &'static str,
    class: &'static str,
    message: String,
    next: Option<(&'static str, &'static str)>,
    refresh_to: Option<&'static str>,
}

/// A claim or Discord login that cannot go on, as a page with the right status.
#[derive(Debug)]
pub struct ClaimRefused {
    status: StatusCode,
    title: &'static str,
    message: String,
    /// Where "start again" leads.
    again: &'static str,
}

impl ClaimRefused {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        ClaimRefused {
            status,
            title,
            message: message.into(),
            again: "/claim",
        }
    }

    fn for_officers(mut self) -> Self {
        self.again = "/login";
        self
    }
}

impl From<anyhow::Error> for ClaimRefused {
    fn from(err: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{err:#}"), "internal error during a claim or Discord login");
        ClaimRefused::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "internal error; the service log has the details. Nothing was linked.",
        )
    }
}

impl From<StateError> for ClaimRefused {
    fn from(err: StateError) -> Self {
        tracing::warn!(reason = ?err, "OAuth state refused");
        ClaimRefused::new(
            StatusCode::BAD_REQUEST,
            "Login refused",
            format!("{err}. Nothing was linked."),
        )
    }
}

impl From<ProviderError> for ClaimRefused {
    fn from(err: ProviderError) -> Self {
        tracing::warn!(error = %err, "OAuth provider call failed");
        let message = match &err {
            ProviderError::Status { status: 403, .. } => format!(
                "{err}: Battle.net did not let guild-sync read your characters. Log in again and \
                 allow access to your World of Warcraft profile. Nothing was linked."
            ),
            ProviderError::Status { .. } | ProviderError::Unreachable { .. } => {
                format!("{err}. Try again in a few minutes. Nothing was linked.")
            }
            ProviderError::Refused { .. } => format!("{err}. Nothing was linked."),
        };
        ClaimRefused::new(StatusCode::BAD_GATEWAY, "Login failed", message)
    }
}

impl IntoResponse for ClaimRefused {
    fn into_response(self) -> Response {
        (
            self.status,
            MessagePage {
                title: self.title,
                class: "error",
                message: self.message,
                next: Some((self.again, "Start again")),
                refresh_to: None,
            },
        )
            .into_response()
    }
}

fn not_configured() -> ClaimRefused {
    ClaimRefused::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Claims are not set up",
        "Member claims are not configured on this server (DISCORD_CLIENT_ID, \
         DISCORD_CLIENT_SECRET, BLIZZARD_CLIENT_ID, BLIZZARD_CLIENT_SECRET and \
         GUILD_SYNC_PUBLIC_URL). Ask an officer.",
    )
}

/// The claims side and its signer, when members can claim.
async fn claims_and_signer(state: &WebState) -> Result<(&Claims, &StateSigner), ClaimRefused> {
    let claims = state
        .claims
        .as_deref()
        .filter(|c| c.claims_enabled())
        .ok_or_else(not_configured)?;
    Ok((claims, claims.signer(&state.app.pool).await?))
}

fn claim_cookie(state: &WebState, value: String) -> Cookie<'static> {
    Cookie::build((CLAIM_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .path("/")
        // A browser-session cookie: the state and the Discord step carry their own expiry.
        .build()
}

/// `GET /claim`: what will happen and what is stored.
pub async fn page(State(state): State<WebState>) -> Result<Response, ClaimRefused> {
    if !state.claims.as_deref().is_some_and(Claims::claims_enabled) {
        return Err(not_configured());
    }
    Ok(ClaimPage {
        title: "Claim your characters",
        member: None,
    }
    .into_response())
}

/// Start a Discord login for `purpose`: a fresh browser binding and a state bound to it.
async fn start(
    state: &WebState,
    claims: &Claims,
    jar: CookieJar,
    purpose: Purpose,
) -> Result<Response, ClaimRefused> {
    let signer = claims.signer(&state.app.pool).await?;
    let binding = new_cookie_value();
    let oauth_state = signer.issue(purpose, &binding, Utc::now().timestamp());
    let url = claims.discord_authorize_url(signer, &oauth_state);
    let jar = jar.add(claim_cookie(state, binding));
    Ok((jar, Redirect::to(&url)).into_response())
}

/// `GET /claim/discord`: off to Discord.
pub async fn start_discord(
    State(state): State<WebState>,
    jar: CookieJar,
) -> Result<Response, ClaimRefused> {
    let (claims, _) = claims_and_signer(&state).await?;
    start(&state, claims, jar, Purpose::Claim).await
}

/// `GET /login/discord`: an officer's console login through Discord.
pub async fn officer_login(
    State(state): State<WebState>,
    jar: CookieJar,
) -> Result<Response, ClaimRefused> {
    let Some(claims) = state.claims.clone() else {
        return Err(ClaimRefused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Discord login is not set up",
            "Discord login is not configured on this server (DISCORD_CLIENT_ID, \
             DISCORD_CLIENT_SECRET and GUILD_SYNC_PUBLIC_URL); use the admin token.",
        )
        .for_officers());
    };
    start(&state, &claims, jar, Purpose::Officer)
        .await
        .map_err(ClaimRefused::for_officers)
}

/// What a provider sends the browser back with.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Check a callback's state against this browser's cookie, once: signed, in time, bound to
/// this browser, not used before.
async fn verified(
    state: &WebState,
    signer: &StateSigner,
    jar: &CookieJar,
    callback: &Callback,
    provider: &'static str,
) -> Result<(VerifiedState, String), ClaimRefused> {
    if let Some(error) = &callback.error {
        // Only known codes are echoed: the parameter is whatever the URL says.
        let reason = match error.as_str() {
            "access_denied" => "you did not allow it",
            _ => "it reported an error",
        };
        return Err(ClaimRefused::new(
            StatusCode::BAD_REQUEST,
            "Login cancelled",
            format!("{provider} did not log you in: {reason}. Nothing was linked."),
        ));
    }
    let (Some(code), Some(presented)) = (&callback.code, &callback.state) else {
        return Err(ClaimRefused::new(
            StatusCode::BAD_REQUEST,
            "Login refused",
            "this address is missing the login's code or state. Nothing was linked.",
        ));
    };
    let binding = jar
        .get(CLAIM_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let checked = signer.verify(presented, &binding, Utc::now().timestamp())?;
    if !crate::db::claims::use_nonce(&state.app.pool, &checked.nonce).await? {
        return Err(StateError::Replayed.into());
    }
    Ok((checked, code.clone()))
}

/// `GET /oauth/discord/callback`: who logged in with Discord, then the Battle.net step (a
/// claim) or a console session (an officer).
pub async fn discord_callback(
    State(state): State<WebState>,
    jar: CookieJar,
    Query(callback): Query<Callback>,
) -> Result<Response, ClaimRefused> {
    let Some(claims) = state.claims.clone() else {
        return Err(not_configured());
    };
    let signer = claims.signer(&state.app.pool).await?;
    let (checked, code) = verified(&state, signer, &jar, &callback, "Discord").await?;
    if checked.purpose == Purpose::Battlenet {
        return Err(StateError::Tampered.into());
    }
    let officer = checked.purpose == Purpose::Officer;
    let user = claims
        .discord_user(signer, &checked.nonce, &code)
        .await
        .map_err(|e| {
            let refused = ClaimRefused::from(e);
            if officer {
                refused.for_officers()
            } else {
                refused
            }
        })?;
    let member = crate::db::claims::discord_member(&state.app.pool, &user.id).await?;
    if officer {
        return officer_session(&state, jar, &user.id, &user.username).await;
    }
    let Some(member) = member.filter(|m| m.is_present) else {
        tracing::info!(discord_id = %user.id, "claim refused: not on the guild's Discord server");
        return Err(ClaimRefused::new(
            StatusCode::FORBIDDEN,
            "Not on the guild's Discord server",
            format!(
                "The Discord account @{} is not a member of the guild's Discord server (as of \
                 guild-sync's last look). Join the server, wait for the next member sync, then \
                 claim again. Nothing was linked.",
                user.username
            ),
        ));
    };
    tracing::info!(discord_id = %member.discord_id, "claim: Discord login proved");
    // The next binding carries the proved account, MACed so the browser cannot swap it.
    let issued = Utc::now().timestamp();
    let head = format!("{}~{}~{issued}", new_cookie_value(), member.discord_id);
    let value = format!("{head}~{}", signer.cookie_mac(&head));
    let jar = jar.add(claim_cookie(&state, value));
    Ok((
        jar,
        ClaimPage {
            title: "Claim your characters",
            member: Some(member.label()),
        },
    )
        .into_response())
}

/// Log an officer in, or refuse a member below the officer rank.
async fn officer_session(
    state: &WebState,
    jar: CookieJar,
    discord_id: &str,
    username: &str,
) -> Result<Response, ClaimRefused> {
    let standing =
        crate::db::officers::officer_standing(&state.app.pool, discord_id, &state.officer_rank)
            .await
            .map_err(|e| ClaimRefused::from(e).for_officers())?;
    if !standing.is_officer() {
        tracing::warn!(%discord_id, "console Discord login refused: below the officer rank");
        return Err(ClaimRefused::new(
            StatusCode::FORBIDDEN,
            "Not an officer",
            format!(
                "@{username} is not at or above the rank {} in the guild (by in-game rank or \
                 Discord role), so the console stays closed.",
                state.officer_rank
            ),
        )
        .for_officers());
    }
    tracing::info!(%discord_id, "officer logged in to the console with Discord");
    let jar = jar.remove(Cookie::build(CLAIM_COOKIE).path("/"));
    let session = SignedCookieJar::new(state.key.clone()).add(console_cookie(
        SESSION_COOKIE,
        new_discord_session_value(username, discord_id),
        state.secure_cookies,
    ));
    // A page, not a redirect: the session cookie is `SameSite=Strict`, and a redirect chain
    // that began on Discord's site would arrive at `/` without it.
    Ok((
        jar,
        session,
        MessagePage {
            title: "Logged in",
            class: "notice",
            message: format!("Logged in with Discord as @{username}."),
            next: Some(("/", "Open the console")),
            refresh_to: Some("/"),
        },
    )
        .into_response())
}

/// The Discord account the claim cookie carries, if its MAC and age check out.
fn proved_discord_id(signer: &StateSigner, jar: &CookieJar) -> Option<String> {
    let value = jar.get(CLAIM_COOKIE)?.value().to_owned();
    let (head, mac) = value.rsplit_once('~')?;
    let expected = signer.cookie_mac(head);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        mac.as_bytes(),
    )) {
        return None;
    }
    let mut fields = head.split('~');
    let _random = fields.next()?;
    let discord_id = fields.next()?.to_string();
    let issued: i64 = fields.next()?.parse().ok()?;
    (0..DISCORD_STEP_SECONDS)
        .contains(&(Utc::now().timestamp() - issued))
        .then_some(discord_id)
}

fn discord_step_missing() -> ClaimRefused {
    ClaimRefused::new(
        StatusCode::BAD_REQUEST,
        "Log in with Discord first",
        "This browser has no recent Discord login for a claim (they last 30 minutes). Start \
         again. Nothing was linked.",
    )
}

/// `GET /claim/battlenet`: off to Battle.net, for the Discord account this browser proved.
pub async fn start_battlenet(
    State(state): State<WebState>,
    jar: CookieJar,
) -> Result<Response, ClaimRefused> {
    let (claims, signer) = claims_and_signer(&state).await?;
    let Some(binding) = jar.get(CLAIM_COOKIE).map(|c| c.value().to_owned()) else {
        return Err(discord_step_missing());
    };
    if proved_discord_id(signer, &jar).is_none() {
        return Err(discord_step_missing());
    }
    let oauth_state = signer.issue(Purpose::Battlenet, &binding, Utc::now().timestamp());
    let url = claims
        .battlenet_authorize_url(signer, &oauth_state)
        .ok_or_else(not_configured)?;
    Ok(Redirect::to(&url).into_response())
}

/// `GET /oauth/battlenet/callback`: read the account, write the claim, show what it did.
pub async fn battlenet_callback(
    State(state): State<WebState>,
    jar: CookieJar,
    Query(callback): Query<Callback>,
) -> Result<Response, ClaimRefused> {
    let (claims, signer) = claims_and_signer(&state).await?;
    let (checked, code) = verified(&state, signer, &jar, &callback, "Battle.net").await?;
    if checked.purpose != Purpose::Battlenet {
        return Err(StateError::Tampered.into());
    }
    let discord_id = proved_discord_id(signer, &jar).ok_or_else(discord_step_missing)?;
    let account = claims
        .battlenet_account(signer, &checked.nonce, &code)
        .await?;
    let pool = &state.app.pool;
    let member: DiscordMember = crate::db::claims::discord_member(pool, &discord_id)
        .await?
        .filter(|m| m.is_present)
        .ok_or_else(discord_step_missing)?;
    let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
    let outcome: ClaimOutcome = crate::db::claims::write_claim(
        &mut tx,
        &crate::db::claims::Claim {
            member: &member,
            battletag: &account.battletag,
            battlenet_account_id: account.id,
            characters: &account.characters,
            claimed_at: Utc::now(),
        },
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    tracing::info!(
        discord_id = %member.discord_id,
        battlenet_account_id = account.id,
        linked = outcome.linked.len(),
        moved = outcome.moved.len(),
        conflicts = outcome.conflicts.len(),
        refused = outcome.account_owner.is_some(),
        "claim written"
    );
    let jar = jar.remove(Cookie::build(CLAIM_COOKIE).path("/"));
    let status = if outcome.account_owner.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        jar,
        ResultPage {
            title: "Your characters",
            member: member.label(),
            battletag: account.battletag,
            linked: outcome.linked,
            moved: outcome.moved,
            conflicts: outcome.conflicts,
            unlinked: outcome.unlinked,
            outside: outcome.outside_guild,
            account_owner: outcome.account_owner,
        },
    )
        .into_response())
}
