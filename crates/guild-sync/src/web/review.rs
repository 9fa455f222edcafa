//! Review queue: the open link suggestions one at a time, both sides side by side with the
//! score; *Link* makes a confirmed manual link naming the suggestion, *Not them* dismisses the
//! pair for good (an officer's resolution is never raised again by matching).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use serde::Deserialize;

use super::session::{CsrfForm, NoFields, Session};
use super::{Chrome, Refused, WebState};
use crate::db::console;
use crate::db::console_pages::{self as pages, SuggestionRow};

#[derive(Template, WebTemplate)]
#[template(path = "review.html")]
pub struct ReviewPage {
    chrome: Chrome,
    notice: Option<&'static str>,
    suggestion: Option<SuggestionRow>,
    open: i64,
}

#[derive(Deserialize)]
pub struct ReviewQuery {
    /// Skip to the suggestion after this id.
    after: Option<i32>,
    done: Option<String>,
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<ReviewQuery>,
) -> Result<ReviewPage, Refused> {
    let pool = &state.app.pool;
    let (mut suggestion, open) = pages::next_suggestion(pool, query.after).await?;
    if suggestion.is_none() && query.after.is_some() {
        // Skipped past the last one: start again from the first.
        suggestion = pages::next_suggestion(pool, None).await?.0;
    }
    Ok(ReviewPage {
        chrome: Chrome::new(&session, "review"),
        notice: match query.done.as_deref() {
            Some("linked") => Some("Linked. The link is confirmed and marked as an officer's."),
            Some("dismissed") => Some("Dismissed. That pair will not be suggested again."),
            _ => None,
        },
        suggestion,
        open,
    })
}

/// Accept: link the character to the Discord user's player (or a new one).
pub async fn link(
    State(state): State<WebState>,
    Path(id): Path<i32>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<Redirect, Refused> {
    let linked = console::accept_suggestion(&state.app.pool, id, &session.officer).await?;
    tracing::info!(
        suggestion = id,
        link_id = linked.link_id,
        "suggestion accepted in the console"
    );
    Ok(Redirect::to("/review?done=linked"))
}

/// Dismiss: this pair is not the same person.
pub async fn dismiss(
    State(state): State<WebState>,
    Path(id): Path<i32>,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<Redirect, Refused> {
    console::dismiss_suggestion(&state.app.pool, id, &session.officer, Some("not them")).await?;
    tracing::info!(suggestion = id, "suggestion dismissed in the console");
    Ok(Redirect::to("/review?done=dismissed"))
}
