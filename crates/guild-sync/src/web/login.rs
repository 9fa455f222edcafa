//! The login page (the admin token once → a session cookie) and logout.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, Key};
use serde::Deserialize;

use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, Session, console_cookie, csrf_for, csrf_matches, new_cookie_value,
};
use super::{Refused, WebState};
use crate::api::auth::secret_matches;

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    csrf: String,
    error: Option<&'static str>,
    disabled: bool,
}

/// The login form; sets the pre-login cookie its CSRF token is bound to.
pub async fn page(State(state): State<WebState>, jar: SignedCookieJar<Key>) -> Response {
    let (jar, value) = login_cookie(&state, jar);
    let page = LoginPage {
        csrf: csrf_for(&state.key, &value),
        error: None,
        disabled: state.app.admin_token().is_none(),
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
}

/// Check the token; on success start a session and go to the Overview.
pub async fn submit(
    State(state): State<WebState>,
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
    if !secret_matches(form.token.trim(), expected) {
        tracing::warn!("console login refused: wrong admin token");
        let (jar, value) = login_cookie(&state, jar);
        let page = LoginPage {
            csrf: csrf_for(&state.key, &value),
            error: Some("That is not the admin token."),
            disabled: false,
        };
        return Ok((StatusCode::UNAUTHORIZED, jar, page).into_response());
    }
    tracing::info!("officer logged in to the console");
    let jar = jar
        .remove(Cookie::build(LOGIN_COOKIE).path("/"))
        .add(console_cookie(
            SESSION_COOKIE,
            new_cookie_value(),
            state.secure_cookies,
        ));
    Ok((jar, Redirect::to("/")).into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// End the session.
pub async fn logout(
    State(state): State<WebState>,
    session: Session,
    jar: SignedCookieJar<Key>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Refused> {
    session.check_csrf(&state, &form.csrf)?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}
