//! The login page (the admin token once → a session cookie) and logout.
//!
//! Login attempts are rate limited per client IP ([`LoginLimiter`]): the admin token is the
//! one secret guarding every officer action, so guessing it must be slow. The limit is checked
//! before the token is compared, so a client over it learns nothing about its guesses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

use super::session::{
    CsrfForm, LOGIN_COOKIE, MAX_OFFICER_NAME_CHARS, NoFields, SESSION_COOKIE, console_cookie,
    csrf_for, csrf_matches, new_cookie_value, new_session_value,
};
use super::{Refused, WebState};
use crate::api::auth::secret_matches;

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    csrf: String,
    max_name: usize,
    error: Option<&'static str>,
    disabled: bool,
    /// Offer "Log in with Discord".
    discord: bool,
}

/// The login form; sets the pre-login cookie its CSRF token is bound to.
pub async fn page(State(state): State<WebState>, jar: SignedCookieJar<Key>) -> Response {
    let (jar, value) = login_cookie(&state, jar);
    let page = LoginPage {
        csrf: csrf_for(&state.key, &value),
        max_name: MAX_OFFICER_NAME_CHARS,
        error: None,
        disabled: state.app.admin_token().is_none(),
        discord: state.claims.is_some(),
    };
    (jar, page).into_response()
}

fn login_cookie(state: &WebState, jar: SignedCookieJar<Key>) -> (SignedCookieJar<Key>, String) {
    match jar.get(LOGIN_COOKIE) {
        Some(cookie) => {
            let value = cookie.value().to_owned();
            (jar, value)
        }
        None => {
            let value = new_cookie_value();
            let jar = jar.add(console_cookie(
                LOGIN_COOKIE,
                value.clone(),
                state.secure_cookies,
            ));
            (jar, value)
        }
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    /// Who is logging in, for the action history; optional.
    #[serde(default)]
    name: String,
}

/// Login attempts one client IP may make at once ([`LOGIN_BURST`]) and how fast it earns them
/// back (one per [`LOGIN_REFILL`]): a mistyped token costs nothing, a guesser gets 6 a minute.
pub const LOGIN_BURST: u32 = 5;
/// See [`LOGIN_BURST`].
pub const LOGIN_REFILL: Duration = Duration::from_secs(10);
/// Client IPs the limiter remembers before it forgets the idle ones.
const LIMITER_MAX_KEYS: usize = 10_000;

/// Login attempts per client IP. The IP is the TCP peer's: `X-Forwarded-For` is written by the
/// client and would let a guesser pick a fresh address per attempt.
#[derive(Clone)]
pub struct LoginLimiter(Arc<DefaultKeyedRateLimiter<IpAddr>>);

impl Default for LoginLimiter {
    fn default() -> Self {
        let burst = NonZeroU32::new(LOGIN_BURST).expect("LOGIN_BURST is not 0");
        let quota = Quota::with_period(LOGIN_REFILL)
            .expect("LOGIN_REFILL is not 0")
            .allow_burst(burst);
        LoginLimiter(Arc::new(RateLimiter::keyed(quota)))
    }
}

impl LoginLimiter {
    /// Take one attempt for `ip`; `Err(wait)` when it has none left.
    fn attempt(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.0.len() > LIMITER_MAX_KEYS {
            self.0.retain_recent();
        }
        self.0.check_key(&ip).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }
}

/// Check the token; on success start a session and go to the Overview.
pub async fn submit(
    State(state): State<WebState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    jar: SignedCookieJar<Key>,
    Form(form): Form<LoginForm>,
) -> Result<Response, Refused> {
    let Some(expected) = state.app.admin_token() else {
        return Err(Refused::Unavailable(
            "the console is disabled: GUILD_SYNC_ADMIN_TOKEN is not configured".into(),
        ));
    };
    let bound = jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned());
    if !bound.is_some_and(|value| csrf_matches(&state.key, &value, &form.csrf)) {
        return Err(Refused::Csrf);
    }
    // Served without the peer's address (only in tests that use plain `axum::serve`), every
    // client shares one budget: stricter, never looser.
    let ip = peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(addr))| addr.ip(),
    );
    if let Err(wait) = state.login_limiter.attempt(ip) {
        tracing::warn!(%ip, "console login refused: too many attempts");
        return Err(Refused::TooManyAttempts(wait.as_secs().max(1)));
    }
    if !secret_matches(form.token.trim(), expected) {
        tracing::warn!("console login refused: wrong admin token");
        let (jar, value) = login_cookie(&state, jar);
        let page = LoginPage {
            csrf: csrf_for(&state.key, &value),
            max_name: MAX_OFFICER_NAME_CHARS,
            error: Some("That is not the admin token."),
            disabled: false,
            discord: state.claims.is_some(),
        };
        return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
    }
    tracing::info!("officer logged in to the console");
    let jar = jar
        .remove(Cookie::build(LOGIN_COOKIE).path("/"))
        .add(console_cookie(
            SESSION_COOKIE,
            new_session_value(&form.name),
            state.secure_cookies,
        ));
    Ok((jar, Redirect::to("/")).into_response())
}

/// End the session.
pub async fn logout(jar: SignedCookieJar<Key>, _: CsrfForm<NoFields>) -> Response {
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/login")).into_response()
}
