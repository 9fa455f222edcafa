//! Console login: the admin token once, then a signed session cookie; the CSRF token every
//! form carries; logout.
//!
//! The cookie is signed with a key derived from `GUILD_SYNC_ADMIN_TOKEN` (changing the token
//! ends every session) and holds only its issue time and a random id, so there is no session
//! table. It is `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` when the public URL is
//! https. The CSRF token is derived from the session (or, on the login page, from a short-lived
//! pre-login cookie), so a form posted from another site — or without its token — is refused.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{Refused, WebState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "guild_sync_session";
/// The pre-login cookie the login form's CSRF token is bound to.
pub const LOGIN_COOKIE: &str = "guild_sync_login";
/// How long a session lasts after login, in seconds (an officer's evening).
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// The signing key for a given admin token: SHA-512 gives the 64 bytes `Key` needs, with a
/// label so the key is not the token's plain hash used anywhere else.
pub fn key_for(admin_token: &str) -> Key {
    let mut hasher = Sha512::new();
    hasher.update(b"guild-sync console session key\0");
    hasher.update(admin_token.as_bytes());
    Key::from(&hasher.finalize())
}

/// A fresh cookie value: issue time and 128 random bits.
pub fn new_cookie_value() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{}.{}", Utc::now().timestamp(), hex::encode(bytes))
}

/// The CSRF token that goes with a cookie value.
pub fn csrf_for(key: &Key, cookie_value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key.signing());
    hasher.update(b"\0csrf\0");
    hasher.update(cookie_value.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether `presented` is the CSRF token of `cookie_value` (constant time).
pub fn csrf_matches(key: &Key, cookie_value: &str, presented: &str) -> bool {
    bool::from(
        csrf_for(key, cookie_value)
            .as_bytes()
            .ct_eq(presented.as_bytes()),
    )
}

/// A cookie with the console's attributes. A browser-session cookie: the server ends it after
/// [`SESSION_SECONDS`] whatever the browser keeps.
pub fn console_cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .build()
}

/// A logged-in officer, taken by every console page. Without a valid session the request is
/// sent to the login page.
#[derive(Debug, Clone)]
pub struct Session {
    /// The CSRF token the page's forms carry.
    pub csrf: String,
    cookie_value: String,
}

impl Session {
    /// Refuse a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, state: &WebState, presented: &str) -> Result<(), Refused> {
        if csrf_matches(&state.key, &self.cookie_value, presented) {
            Ok(())
        } else {
            Err(Refused::Csrf)
        }
    }
}

impl FromRef<WebState> for Key {
    fn from_ref(state: &WebState) -> Key {
        state.key.clone()
    }
}

/// Not logged in: go to the login page.
pub struct LoginRequired;

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<WebState> for Session {
    type Rejection = LoginRequired;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Session, LoginRequired> {
        if state.app.admin_token().is_none() {
            return Err(LoginRequired);
        }
        let jar = SignedCookieJar::<Key>::from_request_parts(parts, state)
            .await
            .map_err(|_| LoginRequired)?;
        let value = jar
            .get(SESSION_COOKIE)
            .map(|cookie| cookie.value().to_owned())
            .ok_or(LoginRequired)?;
        let issued: i64 = value
            .split_once('.')
            .and_then(|(issued, _)| issued.parse().ok())
            .ok_or(LoginRequired)?;
        let age = Utc::now().timestamp() - issued;
        if !(0..SESSION_SECONDS).contains(&age) {
            return Err(LoginRequired);
        }
        Ok(Session {
            csrf: csrf_for(&state.key, &value),
            cookie_value: value,
        })
    }
}
