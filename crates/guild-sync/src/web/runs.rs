//! Runs: the `sync_log` history, newest first, with each run's counts and error.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::session::Session;
use super::{Chrome, PAGE_ROWS, Refused, WebState, page_offset};
use crate::db::sync_log::SyncLogRow;

#[derive(Template, WebTemplate)]
#[template(path = "runs.html")]
pub struct RunsPage {
    chrome: Chrome,
    runs: Vec<SyncLogRow>,
    page: u32,
    more: bool,
}

#[derive(Deserialize)]
pub struct RunsQuery {
    page: Option<u32>,
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<RunsQuery>,
) -> Result<RunsPage, Refused> {
    let (page, offset) = page_offset(query.page);
    let mut runs =
        crate::db::console_pages::recent_runs(&state.app.pool, PAGE_ROWS + 1, offset).await?;
    let more = runs.len() as i64 > PAGE_ROWS;
    runs.truncate(PAGE_ROWS as usize);
    Ok(RunsPage {
        chrome: Chrome::new(&session, "runs"),
        runs,
        page,
        more,
    })
}
