//! Players: search; a player's alt tree with each link's source, confidence and evidence
//! (links an officer accepted say so); unlink; set main.

use crate::db::member_events::{self, EventLine};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::session::{CsrfForm, Session};
use super::{Chrome, PAGE_ROWS, Refused, WebState, page_offset};
use crate::db::console::{ActionRow, Page};
use crate::db::console_pages::{self as pages, PlayerCharacterRow, PlayerHead, PlayerListRow};

/// Officer actions shown on a player's page, newest first.
const HISTORY_ROWS: i64 = 20;
/// Events per page of the player page's timeline (issue 19); older ones page by `?before=`.
const TIMELINE_ROWS: i64 = 100;

/// Longest search text, in characters.
const MAX_QUERY_CHARS: usize = 100;

#[derive(Template, WebTemplate)]
#[template(path = "players.html")]
pub struct PlayersPage {
    chrome: Chrome,
    q: String,
    players: Vec<PlayerListRow>,
    page: u32,
    more: bool,
}

#[derive(Deserialize)]
pub struct PlayersQuery {
    q: Option<String>,
    page: Option<u32>,
}

pub async fn list(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<PlayersQuery>,
) -> Result<PlayersPage, Refused> {
    let q = query.q.unwrap_or_default().trim().to_string();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(Refused::BadRequest(format!(
            "the search is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let (page, offset) = page_offset(query.page);
    let filter = Some(q.as_str()).filter(|q| !q.is_empty());
    let mut players = pages::search_players(&state.app.pool, filter, PAGE_ROWS + 1, offset).await?;
    let more = players.len() as i64 > PAGE_ROWS;
    players.truncate(PAGE_ROWS as usize);
    Ok(PlayersPage {
        chrome: Chrome::new(&session, "players"),
        q,
        players,
        page,
        more,
    })
}

/// A link as the player page shows it.
pub struct LinkView {
    pub row: PlayerCharacterRow,
    pub is_main: bool,
    /// "Accepted by an officer …" when an officer made or confirmed it.
    pub decided_by: Option<String>,
    /// The evidence, as compact JSON text.
    pub evidence: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "player.html")]
pub struct PlayerPage {
    chrome: Chrome,
    player: PlayerHead,
    links: Vec<LinkView>,
    history: Vec<ActionRow>,
    timeline: Vec<EventLine>,
    /// Whether the timeline shows older events (`?before=`), so it links back to the newest.
    timeline_paged: bool,
    /// The `before=` of the timeline's older events, when there are more.
    timeline_older: Option<i64>,
    /// On the timeline's last page: where history starts (the first sync, a baseline).
    history_start: Option<DateTime<Utc>>,
}

/// The player page's query: where the timeline starts.
#[derive(Deserialize)]
pub struct PlayerQuery {
    /// Show the events older than this event (the "Older events" link).
    before: Option<i64>,
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Path(id): Path<i32>,
    Query(query): Query<PlayerQuery>,
) -> Result<PlayerPage, Refused> {
    let (player, characters) = pages::player(&state.app.pool, id)
        .await?
        .ok_or_else(|| Refused::NotFound(format!("player {id} does not exist")))?;
    let links = characters
        .into_iter()
        .map(|row| {
            let evidence = &row.evidence;
            let by = evidence.get("accepted_by").and_then(|v| v.as_str());
            let decided_by = match (by, evidence.get("accepted_suggestion")) {
                (Some(by), Some(s)) => {
                    Some(format!("accepted by an officer ({by}) from suggestion {s}"))
                }
                (Some(by), None) => Some(format!("linked by an officer ({by})")),
                _ => None,
            };
            LinkView {
                is_main: player.main_character_id == Some(row.character_id),
                decided_by,
                evidence: evidence.to_string(),
                row,
            }
        })
        .collect();
    let (_, history) = crate::db::console::actions(
        &state.app.pool,
        Some(id),
        Page {
            page: 1,
            per_page: HISTORY_ROWS,
        },
    )
    .await?;
    let (events, more) =
        member_events::player_history(&state.app.pool, id, TIMELINE_ROWS, query.before).await?;
    let timeline_older = more.then(|| events.last().map(|e| e.id)).flatten();
    let history_start = if more {
        None
    } else {
        member_events::history_start(&state.app.pool).await?
    };
    Ok(PlayerPage {
        chrome: Chrome::new(&session, "players"),
        player,
        links,
        history,
        timeline: events.iter().map(EventLine::from).collect(),
        timeline_paged: query.before.is_some(),
        timeline_older,
        history_start,
    })
}

#[derive(Deserialize)]
pub struct UnlinkForm {
    link_id: i32,
}

pub async fn unlink(
    State(state): State<WebState>,
    Path(id): Path<i32>,
    CsrfForm { session, form }: CsrfForm<UnlinkForm>,
) -> Result<Redirect, Refused> {
    // Only a link of the page's player: a stale or forged form never breaks another player's.
    let unlinked = crate::db::api::unlink(
        &state.app.pool,
        form.link_id,
        Some(id),
        crate::db::member_events::EventSource::officer(),
    )
    .await?;
    // The history of the player page: who unlinked what.
    crate::db::console::record_action(
        &state.app.pool,
        &session.officer,
        crate::db::console::OfficerAction::Unlink,
        &format!("player_character:{}", unlinked.link_id),
        Some(unlinked.player_id),
        None,
        serde_json::json!({"link_id": unlinked.link_id, "character_id": unlinked.character_id}),
    )
    .await?;
    Ok(Redirect::to(&format!("/players/{}", unlinked.player_id)))
}

#[derive(Deserialize)]
pub struct MainForm {
    character_id: i32,
}

pub async fn set_main(
    State(state): State<WebState>,
    Path(id): Path<i32>,
    CsrfForm { session, form }: CsrfForm<MainForm>,
) -> Result<Redirect, Refused> {
    crate::db::console::set_main(&state.app.pool, id, form.character_id, &session.officer).await?;
    Ok(Redirect::to(&format!("/players/{id}")))
}
