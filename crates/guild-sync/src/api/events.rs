//! The guild's memory over HTTP (issue 19): `GET /api/events` (the feed, filtered and paged)
//! and `GET /api/identity/players/{id}/history` (one player's timeline). Handlers parse and
//! validate the query (a bad value is a 400 naming the parameter) and call [`crate::db::events`].

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ApiPath, ErrorBody};
use crate::db::events::{self, EventFilter, EventRow, EventType, MAX_PER_PAGE};

/// How many events a page holds when `per_page` is not given.
const DEFAULT_PER_PAGE: i64 = 100;

/// A page of events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub page: i64,
    pub per_page: i64,
    /// Another page follows this one.
    pub has_more: bool,
    pub events: Vec<EventRow>,
}

/// Member events, newest first: `since` (RFC 3339 time or a date), `type` (an event type),
/// `player_id`, `page` (from 1), `per_page` (1–500, default 100).
#[utoipa::path(get, path = "/api/events", tag = "identity",
    security(("bearer" = [])),
    params(
        ("since" = Option<String>, Query, description = "RFC 3339 time or YYYY-MM-DD"),
        ("type" = Option<String>, Query, description = "joined_guild, left_guild, …"),
        ("player_id" = Option<i32>, Query),
        ("page" = Option<i64>, Query),
        ("per_page" = Option<i64>, Query, description = "1 to 500")
    ),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EventPage>, ApiError> {
    let filter = parse_filter(&query)?;
    page(&state, filter).await
}

/// One player's events (their characters', their Discord account's and their links'), newest
/// first; paged like `/api/events`.
#[utoipa::path(get, path = "/api/identity/players/{id}/history", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "players.id"),
           ("page" = Option<i64>, Query), ("per_page" = Option<i64>, Query)),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn player_history(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i32>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EventPage>, ApiError> {
    if let Some(key) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "page" | "per_page"))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown query parameter {key:?} (page, per_page)"
        )));
    }
    let mut filter = parse_filter(&query)?;
    if !events::player_exists(&state.pool, id).await? {
        return Err(ApiError::NotFound(format!("player {id} does not exist")));
    }
    filter.player_id = Some(id);
    page(&state, filter).await
}

async fn page(state: &AppState, filter: EventFilter) -> Result<Json<EventPage>, ApiError> {
    let (rows, has_more) = events::list(&state.pool, &filter).await?;
    Ok(Json(EventPage {
        page: filter.page,
        per_page: filter.per_page,
        has_more,
        events: rows,
    }))
}

fn parse_filter(query: &HashMap<String, String>) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter {
        page: 1,
        per_page: DEFAULT_PER_PAGE,
        ..EventFilter::default()
    };
    for (key, value) in query {
        match key.as_str() {
            "since" => filter.since = Some(parse_since(value)?),
            "type" => {
                filter.event_type = Some(EventType::parse(value).ok_or_else(|| {
                    let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                    ApiError::BadRequest(format!(
                        "type: unknown event type {:?} (one of {})",
                        truncate(value),
                        known.join(", ")
                    ))
                })?)
            }
            "player_id" => {
                filter.player_id = Some(number(key, value, 1, i64::from(i32::MAX))? as i32)
            }
            "page" => filter.page = number(key, value, 1, 1_000_000)?,
            "per_page" => filter.per_page = number(key, value, 1, MAX_PER_PAGE)?,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {:?} (since, type, player_id, page, per_page)",
                    truncate(key)
                )));
            }
        }
    }
    Ok(filter)
}

/// Echo at most 40 characters of an untrusted value in an error.
fn truncate(value: &str) -> String {
    value.chars().take(40).collect()
}

fn number(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    match value.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "{key}: expected a whole number from {min} to {max}, got {:?}",
            truncate(value)
        ))),
    }
}

fn parse_since(value: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(ApiError::BadRequest(format!(
        "since: expected an RFC 3339 time or YYYY-MM-DD, got {:?}",
        truncate(value)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_parameters_are_refused_naming_the_parameter() {
        for (pairs, needle) in [
            (vec![("per_page", "501")], "per_page"),
            (vec![("per_page", "0")], "per_page"),
            (vec![("page", "x")], "page"),
            (vec![("type", "exploded")], "type"),
            (vec![("since", "yesterday")], "since"),
            (vec![("player_id", "-3")], "player_id"),
            (vec![("colour", "red")], "colour"),
        ] {
            let err = parse_filter(&query(&pairs)).expect_err("refused");
            assert!(
                err.to_string().contains(needle),
                "{err} should name {needle}"
            );
        }
    }

    #[test]
    fn a_full_query_parses() {
        let f = parse_filter(&query(&[
            ("since", "2026-11-24"),
            ("type", "rank_changed"),
            ("player_id", "7"),
            ("page", "2"),
            ("per_page", "500"),
        ]))
        .unwrap();
        assert_eq!(f.event_type, Some(EventType::RankChanged));
        assert_eq!(f.player_id, Some(7));
        assert_eq!((f.page, f.per_page), (2, 500));
        assert_eq!(f.since.unwrap().to_rfc3339(), "2026-11-24T00:00:00+00:00");
    }
}
