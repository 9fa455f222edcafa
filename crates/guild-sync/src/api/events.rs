//! The guild's memory over HTTP (issue 19): `GET /api/events` (the feed, paged and filtered)
//! and `GET /api/identity/players/{id}/history`. Handlers validate parameters and translate to
//! [`crate::db::member_events`]; what an event is and how it is written is not their business.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Officer;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::{AppState, MAX_OFFSET, served};
use crate::db::member_events::{self, Actor, EventFilter, EventType, FeedStart};

fn event_type_schema() -> utoipa::openapi::Object {
    super::text_enum(EventType::ALL.map(EventType::as_str))
}

fn actor_schema() -> utoipa::openapi::Object {
    super::text_enum(Actor::ALL.map(Actor::as_str))
}

row_view! {
    /// One event as the API and the console show it, with the names involved (as they are now).
    pub struct EventRow from member_events::EventRow {
        pub id: i64,
        #[schema(schema_with = event_type_schema)]
        pub event_type: EventType,
        pub occurred_at: DateTime<Utc>,
        #[schema(schema_with = actor_schema)]
        pub actor: Actor,
        pub run_id: Option<i64>,
        pub character_id: Option<i32>,
        pub character_name: Option<String>,
        pub realm_slug: Option<String>,
        pub discord_user_id: Option<i32>,
        pub discord_name: Option<String>,
        pub player_id: Option<i32>,
        pub player_name: Option<String>,
        #[schema(value_type = Object)]
        pub before: Option<serde_json::Value>,
        #[schema(value_type = Object)]
        pub after: Option<serde_json::Value>,
    }
}

/// Events per page when the client does not say.
pub const DEFAULT_PER_PAGE: i64 = 100;
/// Most events per page (issue 19).
pub const MAX_PER_PAGE: i64 = 500;
/// Highest page number accepted: 100,000 × 500 events is far beyond any guild's history.
pub const MAX_PAGE: i64 = 100_000;

/// The feed's query parameters, as sent.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events of this type (`joined_guild`, `rank_changed`, …).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events of this player.
    pub player_id: Option<i32>,
    /// 1-based page number. A page may start at most 10,000 events deep
    /// (`(page - 1) × per_page`); deeper is a 400: to walk the feed, follow each answer's
    /// `next_before` as `before=`, which has no depth limit.
    pub page: Option<i64>,
    /// Events per page, 1 to 500 (default 100).
    pub per_page: Option<i64>,
    /// Only events older than this event (its `id`; the previous page's `next_before`), in the
    /// feed's order. As fast on the last page of a year as on the first. Not with `page`.
    pub before: Option<i64>,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventRow>,
    /// The page number asked for (`page=`, default 1); `null` on a page asked by `before=`.
    pub page: Option<i64>,
    pub per_page: i64,
    /// Whether a next page has events.
    pub has_more: bool,
    /// When `has_more`: the `before=` value of the next page (the last event's id).
    pub next_before: Option<i64>,
}

/// `(page, per_page)`, validated: out of range is a 400 naming the parameter, and a page
/// starting past [`MAX_OFFSET`] events a 400 naming the cursor (an OFFSET reads every event it
/// skips: a year's page 150 of 500 read 75,000 of them; a `before=` page is an index range).
fn paging(page: Option<i64>, per_page: Option<i64>) -> Result<(i64, i64), ApiError> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::BadRequest(format!(
            "page must be between 1 and {MAX_PAGE}, got {page}"
        )));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::BadRequest(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}, got {per_page}"
        )));
    }
    if (page - 1) * per_page > MAX_OFFSET {
        return Err(ApiError::BadRequest(format!(
            "page {page} of {per_page} starts past event {MAX_OFFSET}, the deepest page= reads; \
             to go further, page by before= with each answer's next_before (no depth limit)"
        )));
    }
    Ok((page, per_page))
}

/// The `before=` cursor of the page after `events` when there is one.
fn next_before(events: &[member_events::EventRow], has_more: bool) -> Option<i64> {
    has_more.then(|| events.last().map(|e| e.id)).flatten()
}

/// An empty page asked `before` an event: a 400 when that event does not exist (retention
/// deleted it, or it never did), rather than an empty page that looks like the end.
async fn check_cursor(
    state: &AppState,
    before: Option<i64>,
    events: &[member_events::EventRow],
) -> Result<(), ApiError> {
    if let Some(id) = before
        && events.is_empty()
        && !member_events::event_exists(&state.pool, id).await?
    {
        return Err(ApiError::BadRequest(format!(
            "before: event {id} does not exist (older events may have been deleted by retention)"
        )));
    }
    Ok(())
}

/// An event type by name: well-formed but unknown is a 422 listing the known ones.
fn event_type_of(text: Option<&str>) -> Result<Option<EventType>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    EventType::parse(text).map(Some).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::Unprocessable(format!(
            "unknown event type (expected one of {})",
            known.join(", ")
        ))
    })
}

/// The guild's events, newest first: joins, leaves, returns, renames, transfers, rank changes,
/// Discord joins, leaves, renames and role changes, and link changes — each with its type, the
/// names involved, before and after, the run that observed it and who made it.
/// Paged by `page=` (down to 10,000 events deep; a deeper page is a 400 naming the cursor) or,
/// to walk the whole feed at the same cost per page, by `before=` with each answer's
/// `next_before`.
#[utoipa::path(get, path = "/api/events", tag = "identity",
    security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, body = EventsPage),
        (status = 400, body = ErrorBody, description = "A malformed or out-of-range \
            parameter, `page` with `before`, an unknown `before` event, or a `page` starting \
            past 10,000 events (page by `before=` with `next_before` instead)"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    _officer: Officer,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let (page, per_page) = paging(query.page, query.per_page)?;
    let filter = EventFilter {
        since: query.since,
        event_type: event_type_of(query.event_type.as_deref())?,
        player_id: query.player_id,
    };
    let start = match (query.page, query.before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "page and before cannot be combined: before= already says where the page starts"
                    .into(),
            ));
        }
        (_, Some(id)) => FeedStart::Before(id),
        (_, None) => FeedStart::Offset((page - 1) * per_page),
    };
    let (events, has_more) = member_events::feed(&state.pool, &filter, per_page, start).await?;
    check_cursor(&state, query.before, &events).await?;
    Ok(Json(EventsPage {
        next_before: next_before(&events, has_more),
        page: query.before.is_none().then_some(page),
        events: served(events),
        per_page,
        has_more,
    }))
}

/// The history route's query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many of the newest events, 1 to 500 (default 100).
    pub limit: Option<i64>,
    /// Only events older than this event (its `id`; the previous answer's `next_before`).
    pub before: Option<i64>,
}

/// A player's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlayerHistory {
    pub player_id: i32,
    /// Newest first: the player's events, and those of their characters and Discord account
    /// from before they were linked.
    pub events: Vec<EventRow>,
    /// Whether older events follow.
    pub has_more: bool,
    /// When `has_more`: the `before=` value for the older events (the last event's id).
    pub next_before: Option<i64>,
    /// When the answer reaches the oldest event (`has_more` false): the first successful roster
    /// or Discord sync, where history starts. That sync records the guild as it is (a baseline),
    /// not as joins. `null` on a page with older events, or before any sync.
    pub history_starts_at: Option<DateTime<Utc>>,
}

/// One player's history across all their characters and their Discord account.
#[utoipa::path(get, path = "/api/identity/players/{id}/history", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "players.id"), HistoryQuery),
    responses((status = 200, body = PlayerHistory), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn player_history(
    State(state): State<AppState>,
    _officer: Officer,
    ApiPath(id): ApiPath<i32>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<PlayerHistory>, ApiError> {
    let (_, limit) = paging(None, query.limit)
        .map_err(|_| ApiError::BadRequest(format!("limit must be between 1 and {MAX_PER_PAGE}")))?;
    if !member_events::player_exists(&state.pool, id).await? {
        return Err(ApiError::NotFound(format!("player {id} does not exist")));
    }
    let (events, has_more) =
        member_events::player_history(&state.pool, id, limit, query.before).await?;
    check_cursor(&state, query.before, &events).await?;
    let history_starts_at = if has_more {
        None
    } else {
        member_events::history_start(&state.pool).await?
    };
    Ok(Json(PlayerHistory {
        player_id: id,
        next_before: next_before(&events, has_more),
        events: served(events),
        has_more,
        history_starts_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_bounds_and_event_types_are_checked() {
        assert_eq!(paging(None, None).unwrap(), (1, DEFAULT_PER_PAGE));
        assert_eq!(paging(Some(3), Some(500)).unwrap(), (3, 500));
        // The deepest page starts at MAX_OFFSET; one more is refused.
        assert_eq!(paging(Some(21), Some(500)).unwrap(), (21, 500));
        assert_eq!(
            paging(Some(MAX_OFFSET + 1), Some(1)).unwrap(),
            (MAX_OFFSET + 1, 1)
        );
        for (page, per_page) in [
            (Some(0), None),
            (None, Some(0)),
            (None, Some(501)),
            (Some(22), Some(500)),
            (Some(MAX_OFFSET + 2), Some(1)),
        ] {
            assert!(matches!(
                paging(page, per_page),
                Err(ApiError::BadRequest(_))
            ));
        }
        assert_eq!(event_type_of(None).unwrap(), None);
        assert_eq!(
            event_type_of(Some("rank_changed")).unwrap(),
            Some(EventType::RankChanged)
        );
        assert!(matches!(
            event_type_of(Some("promoted")),
            Err(ApiError::Unprocessable(_))
        ));
    }
}
