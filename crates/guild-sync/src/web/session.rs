//! Console login: the admin token once, then a signed session cookie; the CSRF token every
//! form carries; logout.
//!
//! The cookie is signed with a key derived from `GUILD_SYNC_ADMIN_TOKEN` (changing the token
//! ends every session) and holds only its issue time, a random id and the name the officer gave
//! at login — or, after a Discord login, their username and snowflake — (so actions say who did
//! them), so there is no session table. Without an admin token, Discord login alone works with
//! a key generated per process (sessions end at a restart). It is `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` when the public URL is
//! https. The CSRF token is derived from the session (or, on the login page, from a short-lived
//! pre-login cookie), so a form posted from another site — or without its token — is refused:
//! every form handler takes [`CsrfForm`] (or [`CsrfMultipart`]), which checks it.

use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Multipart, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key, SameSite};
use chrono::Utc;
use rand::RngCore;
use serde::Deserialize;
use serde::de::DeserializeOwned;
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

/// The longest officer name a login keeps, in characters.
pub const MAX_OFFICER_NAME_CHARS: usize = 40;

/// Who a session stands for in the action history when the officer gave no name at login.
/// Every session's officer ends in ` (console)`, so it is never `auto`: the integrity checker
/// keeps an officer's resolution while its cause persists.
pub const UNNAMED_OFFICER: &str = "officer (console)";

/// A fresh cookie value: issue time and 128 random bits.
pub fn new_cookie_value() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{}.{}", Utc::now().timestamp(), hex::encode(bytes))
}

/// A fresh session cookie value for an officer who gave `name` at login: the name rides in the
/// signed value, hex-encoded (cookie values allow few characters), after control characters
/// are dropped and it is cut to [`MAX_OFFICER_NAME_CHARS`].
pub fn new_session_value(name: &str) -> String {
    let name = clean_officer_name(name);
    if name.is_empty() {
        new_cookie_value()
    } else {
        format!("{}.{}", new_cookie_value(), hex::encode(name.as_bytes()))
    }
}

/// A fresh session cookie value for an officer who logged in with Discord: the username as
/// in [`new_session_value`], then the account's snowflake, so the action history records the
/// officer's Discord identity (`"username (discord 1234…)"`).
pub fn new_discord_session_value(username: &str, discord_id: &str) -> String {
    let name = clean_officer_name(username);
    format!(
        "{}.{}.{}",
        new_cookie_value(),
        hex::encode(name.as_bytes()),
        discord_id
    )
}

fn clean_officer_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_OFFICER_NAME_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

/// The valid session in `headers`, if any: signed with `key`, younger than
/// [`SESSION_SECONDS`]. Returns the cookie value and who the session stands for.
pub fn session_in(headers: &HeaderMap, key: &Key) -> Option<(String, String)> {
    let jar = SignedCookieJar::from_headers(headers, key.clone());
    let value = jar.get(SESSION_COOKIE)?.value().to_owned();
    let mut fields = value.splitn(4, '.');
    let issued: i64 = fields.next()?.parse().ok()?;
    let _id = fields.next()?;
    let age = Utc::now().timestamp() - issued;
    if !(0..SESSION_SECONDS).contains(&age) {
        return None;
    }
    let name = match fields.next() {
        None => None,
        Some(name) => Some(clean_officer_name(
            &String::from_utf8(hex::decode(name).ok()?).ok()?,
        )),
    };
    let officer = match (name, fields.next()) {
        (None, _) => UNNAMED_OFFICER.to_string(),
        (Some(name), None) => format!("{name} (console)"),
        (Some(name), Some(id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{name} (discord {id})")
        }
        _ => return None,
    };
    Some((value, officer))
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
    /// Who acts, as the action history records it: `"NAME (console)"`.
    pub officer: String,
    cookie_value: String,
}

impl Session {
    /// Refuse a form whose CSRF token is not this session's.
    fn check_csrf(&self, state: &WebState, presented: &str) -> Result<(), Refused> {
        if csrf_matches(&state.key, &self.cookie_value, presented) {
            Ok(())
        } else {
            Err(Refused::Csrf)
        }
    }
}

/// A console form, taken by every POST handler: the logged-in [`Session`] and the form's fields
/// `T`, given only when the form's `csrf` field is that session's token. A handler that takes
/// it cannot forget the check, and a forged post is refused (403) before its fields are read.
/// Without a session the request goes to the login page.
pub struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
}

/// The fields of a form that carries nothing but its CSRF token (a button).
#[derive(Debug, Deserialize)]
pub struct NoFields {}

/// Only the token, read first; serde ignores the form's other fields.
#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<WebState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        // axum's `Form` twice over the same bytes, so a wrong content type (415) or a malformed
        // body (400/422) is answered exactly as it was before this extractor.
        let form_of = |parts: Parts| Request::from_parts(parts, Body::from(body.clone()));
        let Form(token) = Form::<CsrfField>::from_request(form_of(parts.clone()), state)
            .await
            .map_err(IntoResponse::into_response)?;
        session
            .check_csrf(state, &token.csrf)
            .map_err(IntoResponse::into_response)?;
        let Form(form) = Form::<T>::from_request(form_of(parts), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(CsrfForm { session, form })
    }
}

/// A console `multipart/form-data` form (the addon upload): the session and the rest of the
/// form, given only when its first field is `csrf` with this session's token. The token comes
/// first in the page's form, so nothing of a forged post's file is read.
pub struct CsrfMultipart {
    pub session: Session,
    /// The fields after the token.
    pub multipart: Multipart,
}

impl FromRequest<WebState> for CsrfMultipart {
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut multipart = Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let unreadable = |e: MultipartError| {
            Refused::BadRequest(format!("cannot read the form: {e}")).into_response()
        };
        let token = match multipart.next_field().await.map_err(unreadable)? {
            Some(field) if field.name() == Some("csrf") => {
                field.text().await.map_err(unreadable)?
            }
            _ => String::new(),
        };
        session
            .check_csrf(state, &token)
            .map_err(IntoResponse::into_response)?;
        Ok(CsrfMultipart { session, multipart })
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
        if !state.logins_enabled() {
            return Err(LoginRequired);
        }
        let (value, officer) = session_in(&parts.headers, &state.key).ok_or(LoginRequired)?;
        Ok(Session {
            csrf: csrf_for(&state.key, &value),
            officer,
            cookie_value: value,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    fn officer_of(value: String) -> Option<String> {
        let key = key_for("a test admin token, long enough");
        let jar = SignedCookieJar::new(key.clone()).add(Cookie::new(SESSION_COOKIE, value));
        // The jar signs on the way out: read the signed value back the way a response sets it.
        let signed = jar.into_response();
        let set = signed.headers().get(header::SET_COOKIE)?.to_str().ok()?;
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, set.split(';').next()?.parse().ok()?);
        session_in(&headers, &key).map(|(_, officer)| officer)
    }

    #[test]
    fn sessions_say_who_acts_token_and_discord_logins_alike() {
        assert_eq!(
            officer_of(new_session_value("")).as_deref(),
            Some(UNNAMED_OFFICER)
        );
        assert_eq!(
            officer_of(new_session_value("Mara")).as_deref(),
            Some("Mara (console)")
        );
        assert_eq!(
            officer_of(new_discord_session_value("osric", "200000000000000005")).as_deref(),
            Some("osric (discord 200000000000000005)")
        );
        // A value with a non-numeric Discord id is no session (it was not made here).
        let forged = format!("{}.{}.x1", new_cookie_value(), hex::encode("osric"));
        assert_eq!(officer_of(forged), None);
    }
}
