//! Issues: the audit issues, filtered by type and state, newest first; resolve one with a note.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use guild_sync_core::integrity::IssueType;
use serde::Deserialize;

use super::session::{CsrfForm, Session};
use super::{Chrome, PAGE_ROWS, Refused, WebState, page_offset};
use crate::db::console_pages::{self as pages, IssueRow, IssueState};

/// Longest resolution note kept, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

#[derive(Template, WebTemplate)]
#[template(path = "issues.html")]
pub struct IssuesPage {
    chrome: Chrome,
    notice: Option<&'static str>,
    issues: Vec<IssueRow>,
    types: Vec<String>,
    selected_type: String,
    state: &'static str,
    page: u32,
    more: bool,
}

#[derive(Deserialize)]
pub struct IssuesQuery {
    #[serde(rename = "type")]
    issue_type: Option<String>,
    state: Option<String>,
    page: Option<u32>,
    done: Option<String>,
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<IssuesQuery>,
) -> Result<IssuesPage, Refused> {
    let pool = &state.app.pool;
    let (issue_state, state_name) = match query.state.as_deref() {
        None | Some("") | Some("open") => (IssueState::Open, "open"),
        Some("resolved") => (IssueState::Resolved, "resolved"),
        Some("all") => (IssueState::All, "all"),
        Some(other) => {
            return Err(Refused::BadRequest(format!(
                "state {other:?} is not one of open, resolved, all"
            )));
        }
    };
    let selected_type = query.issue_type.unwrap_or_default();
    let filter = Some(selected_type.as_str()).filter(|t| !t.is_empty());
    let (page, offset) = page_offset(query.page);
    let mut issues = pages::issues(pool, filter, issue_state, PAGE_ROWS + 1, offset).await?;
    let more = issues.len() as i64 > PAGE_ROWS;
    issues.truncate(PAGE_ROWS as usize);
    Ok(IssuesPage {
        chrome: Chrome::new(&session, "issues"),
        notice: (query.done.as_deref() == Some("resolved")).then_some("Issue resolved."),
        issues,
        // Every type the checker raises, in report order: a constant list where reading the
        // distinct types scanned every issue ever recorded on each page view.
        types: IssueType::ALL
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        selected_type,
        state: state_name,
        page,
        more,
    })
}

#[derive(Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    note: String,
}

pub async fn resolve(
    State(state): State<WebState>,
    Path(id): Path<i32>,
    CsrfForm { session, form }: CsrfForm<ResolveForm>,
) -> Result<Redirect, Refused> {
    let note = form.note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(Refused::BadRequest(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    let note = Some(note).filter(|n| !n.is_empty());
    crate::db::console::resolve_issue(&state.app.pool, id, &session.officer, note).await?;
    Ok(Redirect::to("/issues?done=resolved"))
}
