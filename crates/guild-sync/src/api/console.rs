//! The officer console's JSON API (issue 16, section 1): the review lists (`/api/audit/issues`,
//! `/api/audit/actions`, `/api/identity/suggestions`, `/api/identity/candidates`,
//! `/api/identity/players/{id}`) and the officers' decisions (resolve, reopen, accept, dismiss,
//! set main). Handlers only validate parameters, translate HTTP ↔ [`crate::db::console`], and
//! answer list routes with an `ETag` keyed on the data version (304 on `If-None-Match`).
//!
//! List answers are kept in the process under the data stamp ([`ANSWERS`]): the stamp changes
//! on every statement touching a table the lists read, so a kept answer is exactly what the
//! queries would return, and a repeated read costs one one-row query instead of three to five
//! (issue 16 §3: every list p99 < 50 ms at 16 clients on a two-core machine).

use std::future::Future;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use guild_sync_core::candidates;
use guild_sync_core::integrity::{IssueType, Severity};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::auth::Officer;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::{AppState, served, text_enum};
use crate::db::characters;
use crate::db::console::{self, IssueFilter, IssueState, OfficerAction, Page};
use crate::stamp_cache::{Stamp, StampCache};

fn issue_type_schema() -> utoipa::openapi::Object {
    text_enum(IssueType::ALL.map(IssueType::as_str))
}

fn severity_schema() -> utoipa::openapi::Object {
    text_enum([Severity::Info, Severity::Warning, Severity::Critical].map(Severity::as_str))
}

fn officer_action_schema() -> utoipa::openapi::Object {
    text_enum(OfficerAction::ALL.iter().map(|a| a.as_str()))
}

row_view! {
    /// An audit issue with the current names of what it involves.
    pub struct IssueRow from console::IssueRow {
        pub id: i32,
        #[schema(schema_with = issue_type_schema)]
        pub issue_type: IssueType,
        #[schema(schema_with = severity_schema)]
        pub severity: Severity,
        pub summary: String,
        #[schema(value_type = Object)]
        pub details: serde_json::Value,
        pub wow_character_id: Option<i32>,
        pub character_name: Option<String>,
        pub realm_slug: Option<String>,
        pub discord_user_id: Option<i32>,
        pub discord_username: Option<String>,
        pub discord_display_name: Option<String>,
        pub player_id: Option<i32>,
        pub player_name: Option<String>,
        pub created_at: DateTime<Utc>,
        pub resolved_at: Option<DateTime<Utc>>,
        pub resolved_by: Option<String>,
        pub resolution_note: Option<String>,
    }
}

row_view! {
    /// How many issues of one type match the state and search (whatever the type filter).
    pub struct TypeCount from console::TypeCount {
        #[schema(schema_with = issue_type_schema)]
        pub issue_type: IssueType,
        pub count: i64,
    }
}

row_view! {
    /// A character as the officer's lists and the Discord commands show it: name, realm, class,
    /// rank and level. Read models embed it with `#[sqlx(flatten)]` (and `#[serde(flatten)]` in
    /// JSON, so the fields stay at the row's top level); their SQL selects these six columns under
    /// these names.
    pub struct CharacterCard from characters::CharacterCard {
        pub character_name: String,
        pub realm_slug: String,
        pub class_name: Option<String>,
        /// The class colour, hex without `#`.
        pub class_color: Option<String>,
        pub rank_name: Option<String>,
        pub level: Option<i32>,
    }
}

row_view! {
    /// An open suggestion with both sides' evidence.
    pub struct SuggestionRow from console::SuggestionRow {
        /// `audit_issues.id`: what accept and dismiss take.
        pub id: i32,
        pub summary: String,
        /// The matcher's name similarity.
        pub score: Option<f64>,
        /// `similar`, `claimed_user`, `look_alike`, `nickname_only`.
        pub kind: Option<String>,
        pub created_at: DateTime<Utc>,
        pub character_id: i32,
        #[serde(flatten)]
        pub character: CharacterCard => CharacterCard::from,
        pub guild_note: Option<String>,
        pub officer_note: Option<String>,
        pub last_login_at: Option<DateTime<Utc>>,
        pub discord_user_id: i32,
        pub discord_username: String,
        pub discord_display_name: Option<String>,
        pub discord_global_name: Option<String>,
        pub discord_roles: Vec<String>,
        pub discord_joined_at: Option<DateTime<Utc>>,
        /// The player the Discord user already has, when it has one.
        pub player_id: Option<i32>,
    }
}

row_view! {
    /// One recorded officer action.
    pub struct ActionRow from console::ActionRow {
        pub id: i64,
        pub officer: String,
        #[schema(schema_with = officer_action_schema)]
        pub action: OfficerAction,
        pub target: String,
        pub player_id: Option<i32>,
        pub note: Option<String>,
        #[schema(value_type = Object)]
        pub details: serde_json::Value,
        pub created_at: DateTime<Utc>,
    }
}

/// Rows per page when the client does not say.
pub const DEFAULT_PER_PAGE: i64 = 50;
/// Most rows per page.
pub const MAX_PER_PAGE: i64 = 200;
/// Highest page number accepted (beyond it the offset means nothing for a guild).
pub const MAX_PAGE: i64 = 100_000;
/// Deepest row a page may start at (shared with the event feed, see [`super::MAX_OFFSET`]).
pub use super::MAX_OFFSET;
/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Longest officer note, in characters (the column's CHECK agrees).
pub const MAX_NOTE_CHARS: usize = 2000;

/// Paging parameters, validated.
pub fn page_of(page: Option<i64>, per_page: Option<i64>) -> Result<Page, ApiError> {
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
            "page {page} of {per_page} starts past row {MAX_OFFSET}, the deepest a list pages; \
             narrow the search instead (q, type, state)"
        )));
    }
    Ok(Page { page, per_page })
}

/// A search text, bounded.
pub fn search_of(q: Option<String>) -> Result<Option<String>, ApiError> {
    match q {
        Some(q) if q.chars().count() > MAX_QUERY_CHARS => Err(ApiError::BadRequest(format!(
            "q is longer than {MAX_QUERY_CHARS} characters"
        ))),
        Some(q) if q.contains('\0') => Err(ApiError::BadRequest("q contains a NUL byte".into())),
        other => Ok(other),
    }
}

/// The ETag of every list answer at `version`.
fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

/// Whether `If-None-Match` already holds `tag` (weak or strong, or `*`).
fn matches_if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// Read the data stamp (database identity + version, so a cache never serves one database's
/// answer for another's): `Err(304 response)` when the client's copy is current, otherwise the
/// stamp and the ETag to send with the answer. Read before the data, so a change in between
/// yields an older tag with newer data (the next request refetches) and never the reverse.
async fn check_stamp(state: &AppState, headers: &HeaderMap) -> Result<(Stamp, String), Response> {
    let stamp = match console::data_stamp(&state.pool).await {
        Ok(s) => s,
        Err(err) => return Err(ApiError::Internal(err).into_response()),
    };
    let tag = etag(stamp.1);
    if matches_if_none_match(headers, &tag) {
        return Err(with_etag(StatusCode::NOT_MODIFIED.into_response(), &tag));
    }
    Ok((stamp, tag))
}

fn with_etag(mut response: Response, tag: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(tag) {
        headers.insert(ETAG, value);
    }
    // Officer data: browsers may keep it but must revalidate every time.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response
}

/// Most list answers kept at one data stamp. An answer is at most a few hundred kB (a page of
/// 200 players with their characters), so this bounds the cache to tens of MB; a stream of
/// distinct searches only makes it start over.
const MAX_CACHED_ANSWERS: usize = 128;

/// The list routes' JSON answers by route and parameters ([`answer_list`]'s `key`), all at one
/// data stamp. `Bytes`, so a hit is a reference count, not a copy.
static ANSWERS: StampCache<String, Bytes> = StampCache::new(MAX_CACHED_ANSWERS);

/// Answer a list route: 304 when the client's copy is current; otherwise the answer kept for
/// `key` at the current data stamp, or the JSON document `build` makes (then kept). `key` names
/// the route and every parameter that shapes the answer. Errors (404, …) are not kept.
pub async fn answer_list<F, Fut>(
    state: &AppState,
    headers: &HeaderMap,
    key: String,
    build: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Bytes, ApiError>>,
{
    let (stamp, tag) = match check_stamp(state, headers).await {
        Ok(checked) => checked,
        Err(not_modified) => return Ok(not_modified),
    };
    let body = match ANSWERS.get(&stamp, &key) {
        Some(body) => body,
        None => {
            let body = build().await?;
            ANSWERS.keep(stamp, key, body.clone());
            body
        }
    };
    Ok(with_etag(
        ([(CONTENT_TYPE, "application/json")], body).into_response(),
        &tag,
    ))
}

/// `value` as a JSON document, for [`answer_list`].
pub fn json_bytes(value: &impl Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| ApiError::Internal(anyhow::Error::new(err).context("cannot encode JSON")))
}

/// An optional JSON body: empty means `None`; malformed is 400, wrong shape 422.
fn optional_body<T: DeserializeOwned>(body: &Bytes) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|err| {
        if err.is_data() {
            ApiError::Unprocessable(format!("invalid request body: {err}"))
        } else {
            ApiError::BadRequest(format!("malformed JSON body: {err}"))
        }
    })
}

fn note_of(note: Option<String>) -> Result<Option<String>, ApiError> {
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if let Some(n) = &note {
        if n.chars().count() > MAX_NOTE_CHARS {
            return Err(ApiError::Unprocessable(format!(
                "note is longer than {MAX_NOTE_CHARS} characters"
            )));
        }
        if n.contains('\0') {
            return Err(ApiError::Unprocessable("note contains a NUL byte".into()));
        }
    }
    Ok(note)
}

/// `GET /api/audit/issues` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IssuesQuery {
    /// An issue type (`orphan_wow`, `auto_link_suggestion`, …); all types when absent.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub issue_type: Option<String>,
    /// `open` (default), `resolved` or `all`.
    pub state: Option<String>,
    /// Text searched in the summary and the names involved.
    pub q: Option<String>,
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Rows per page, 1–200 (default 50).
    pub per_page: Option<i64>,
}

/// A page of audit issues.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuesPage {
    /// Issues matching the whole filter.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    /// Issues per type for the state and search (whatever the type filter).
    pub counts: Vec<TypeCount>,
    pub issues: Vec<IssueRow>,
}

/// Audit issues, newest first, with counts per type.
#[utoipa::path(get, path = "/api/audit/issues", tag = "audit",
    security(("bearer" = [])), params(IssuesQuery),
    responses((status = 200, body = IssuesPage), (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn audit_issues(
    State(state): State<AppState>,
    _officer: Officer,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<IssuesQuery>,
) -> Result<Response, ApiError> {
    let page = page_of(query.page, query.per_page)?;
    let issue_state = match query.state.as_deref() {
        None | Some("open") => IssueState::Open,
        Some("resolved") => IssueState::Resolved,
        Some("all") => IssueState::All,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state must be open, resolved or all, got {other:?}"
            )));
        }
    };
    let issue_type = match query.issue_type.filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match IssueType::parse(&t) {
            Some(t) => Some(t),
            None => {
                let known: Vec<&str> = IssueType::ALL.iter().map(|t| t.as_str()).collect();
                return Err(ApiError::BadRequest(format!(
                    "unknown issue type {t:?}; known types: {}",
                    known.join(", ")
                )));
            }
        },
    };
    let filter = IssueFilter {
        issue_type,
        state: issue_state,
        q: search_of(query.q)?,
    };
    let key = format!("issues {filter:?} {page:?}");
    answer_list(&state, &headers, key, || async {
        let found = console::list_issues(&state.pool, &filter, page).await?;
        json_bytes(&IssuesPage {
            total: found.total,
            page: page.page,
            per_page: page.per_page,
            counts: served(found.counts),
            issues: served(found.issues),
        })
    })
    .await
}

/// An officer's resolution.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// Why, for the history (at most 2,000 characters).
    pub note: Option<String>,
}

/// Resolve an open issue by hand. While its cause persists it stays resolved; a cause that
/// goes and comes back is flagged again.
#[utoipa::path(post, path = "/api/audit/issues/{id}/resolve", tag = "audit",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "audit_issues.id")),
    request_body(content = Option<ResolveRequest>, description = "Optional note"),
    responses((status = 200, body = IssueRow), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn resolve_issue(
    State(state): State<AppState>,
    officer: Officer,
    ApiPath(id): ApiPath<i32>,
    body: Bytes,
) -> Result<Json<IssueRow>, ApiError> {
    let request: ResolveRequest = optional_body(&body)?.unwrap_or_default();
    let note = note_of(request.note)?;
    let row = console::resolve_issue(&state.pool, id, &officer.who, note.as_deref()).await?;
    tracing::info!(issue_id = id, officer = %officer.who, "issue resolved by hand");
    Ok(Json(row.into()))
}

/// Reopen a resolved issue (a dismissed suggestion's pair may then be suggested again).
#[utoipa::path(post, path = "/api/audit/issues/{id}/reopen", tag = "audit",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "audit_issues.id")),
    responses((status = 200, body = IssueRow), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn reopen_issue(
    State(state): State<AppState>,
    officer: Officer,
    ApiPath(id): ApiPath<i32>,
) -> Result<Json<IssueRow>, ApiError> {
    let row = console::reopen_issue(&state.pool, id, &officer.who).await?;
    tracing::info!(issue_id = id, officer = %officer.who, "issue reopened");
    Ok(Json(row.into()))
}

/// `GET /api/audit/actions` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionsQuery {
    /// Only this player's actions.
    pub player_id: Option<i32>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// A page of officer actions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionsPage {
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    pub actions: Vec<ActionRow>,
}

/// Officer actions, newest first: who, when, what, why.
#[utoipa::path(get, path = "/api/audit/actions", tag = "audit",
    security(("bearer" = [])), params(ActionsQuery),
    responses((status = 200, body = ActionsPage), (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn audit_actions(
    State(state): State<AppState>,
    _officer: Officer,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ActionsQuery>,
) -> Result<Response, ApiError> {
    let page = page_of(query.page, query.per_page)?;
    let key = format!("actions {:?} {page:?}", query.player_id);
    answer_list(&state, &headers, key, || async {
        let (total, actions) = console::actions(&state.pool, query.player_id, page).await?;
        json_bytes(&ActionsPage {
            total,
            page: page.page,
            per_page: page.per_page,
            actions: served(actions),
        })
    })
    .await
}

/// Paging only.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// A page of open suggestions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuggestionsPage {
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    pub suggestions: Vec<SuggestionRow>,
}

/// Open link suggestions, newest first, with both sides' evidence and the score.
#[utoipa::path(get, path = "/api/identity/suggestions", tag = "identity",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = SuggestionsPage), (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn suggestions(
    State(state): State<AppState>,
    _officer: Officer,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let page = page_of(query.page, query.per_page)?;
    answer_list(
        &state,
        &headers,
        format!("suggestions {page:?}"),
        || async {
            let (total, suggestions) = console::suggestions(&state.pool, page).await?;
            json_bytes(&SuggestionsPage {
                total,
                page: page.page,
                per_page: page.per_page,
                suggestions: served(suggestions),
            })
        },
    )
    .await
}

/// What accepting a suggestion linked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub link_id: i32,
    pub player_id: i32,
    pub created_player: bool,
    pub created_link: bool,
}

/// Accept a suggestion: a confirmed `manual` link whose evidence names the suggestion and the
/// officer.
#[utoipa::path(post, path = "/api/identity/suggestions/{id}/accept", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "the suggestion's audit_issues.id")),
    responses((status = 200, body = Accepted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn accept_suggestion(
    State(state): State<AppState>,
    officer: Officer,
    ApiPath(id): ApiPath<i32>,
) -> Result<Json<Accepted>, ApiError> {
    let linked = console::accept_suggestion(&state.pool, id, &officer.who).await?;
    tracing::info!(suggestion = id, link_id = linked.link_id, officer = %officer.who, "suggestion accepted");
    Ok(Json(Accepted {
        link_id: linked.link_id,
        player_id: linked.player_id,
        created_player: linked.created_player,
        created_link: linked.created_link,
    }))
}

/// What dismissing a suggestion did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dismissed {
    pub id: i32,
    pub dismissed: bool,
}

/// Dismiss a suggestion: that pair is never suggested again.
#[utoipa::path(post, path = "/api/identity/suggestions/{id}/dismiss", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "the suggestion's audit_issues.id")),
    request_body(content = Option<ResolveRequest>, description = "Optional note"),
    responses((status = 200, body = Dismissed), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn dismiss_suggestion(
    State(state): State<AppState>,
    officer: Officer,
    ApiPath(id): ApiPath<i32>,
    body: Bytes,
) -> Result<Json<Dismissed>, ApiError> {
    let request: ResolveRequest = optional_body(&body)?.unwrap_or_default();
    let note = note_of(request.note)?;
    console::dismiss_suggestion(&state.pool, id, &officer.who, note.as_deref()).await?;
    tracing::info!(suggestion = id, officer = %officer.who, "suggestion dismissed");
    Ok(Json(Dismissed {
        id,
        dismissed: true,
    }))
}

/// `GET /api/identity/candidates` parameters: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandidatesQuery {
    /// The best Discord users for this character (`wow_characters.id`).
    pub character_id: Option<i32>,
    /// The best characters for this Discord user (`discord_users.id`).
    pub discord_user_id: Option<i32>,
}

/// One candidate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CandidateView {
    /// `discord_users.id` or `wow_characters.id`.
    pub id: i64,
    /// The matcher's own name similarity (the score `match` uses).
    pub score: f64,
    /// `username`, `global_name`, `nickname` or `character`.
    pub matched_kind: String,
    pub matched_name: String,
    /// Already owned by a player (listed after the unlinked ones).
    pub linked: bool,
    pub reason: String,
}

/// The best candidates for one side.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CandidatesView {
    /// `discord_user` (for a character) or `character` (for a Discord user).
    pub kind: String,
    pub candidates: Vec<CandidateView>,
}

/// The best 5 Discord users for a character, or the best 5 characters for a Discord user,
/// ranked by the matcher's own scoring, unlinked first, each with its reason.
#[utoipa::path(get, path = "/api/identity/candidates", tag = "identity",
    security(("bearer" = [])), params(CandidatesQuery),
    responses((status = 200, body = CandidatesView), (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn candidates(
    State(state): State<AppState>,
    _officer: Officer,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<CandidatesQuery>,
) -> Result<Response, ApiError> {
    // Ranking scores one name against every guild member (ms of CPU): kept like the lists.
    let pool = &state.pool;
    match (query.character_id, query.discord_user_id) {
        (Some(id), None) => {
            answer_list(
                &state,
                &headers,
                format!("candidates character {id}"),
                || async {
                    let (_, ranked) = crate::link_candidates::for_character(pool, id)
                        .await?
                        .ok_or_else(|| {
                            ApiError::NotFound(format!("wow character {id} does not exist"))
                        })?;
                    candidates_json("discord_user", ranked)
                },
            )
            .await
        }
        (None, Some(id)) => {
            answer_list(
                &state,
                &headers,
                format!("candidates member {id}"),
                || async {
                    let (_, ranked) = crate::link_candidates::for_discord_user(pool, id)
                        .await?
                        .ok_or_else(|| {
                            ApiError::NotFound(format!("discord user {id} does not exist"))
                        })?;
                    candidates_json("character", ranked)
                },
            )
            .await
        }
        _ => Err(ApiError::BadRequest(
            "give exactly one of character_id and discord_user_id".into(),
        )),
    }
}

fn candidates_json(kind: &str, ranked: Vec<candidates::Ranked>) -> Result<Bytes, ApiError> {
    json_bytes(&CandidatesView {
        kind: kind.into(),
        candidates: ranked.into_iter().map(view_of).collect(),
    })
}

fn view_of(r: candidates::Ranked) -> CandidateView {
    CandidateView {
        id: r.id,
        score: r.score,
        matched_kind: r.matched_kind.to_string(),
        matched_name: r.matched_name,
        linked: r.linked,
        reason: r.reason,
    }
}

/// One player's page: the alt tree and the officer actions on it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlayerDetail {
    pub id: i32,
    pub display_name: String,
    pub is_active: bool,
    pub main_character_id: Option<i32>,
    /// The Discord user with `roles`, `joined_server_at`, `global_name`.
    #[schema(value_type = Option<Object>)]
    pub discord_user: Option<serde_json::Value>,
    /// Each link with `link_source`, `confidence`, `evidence`, `rank`, `last_login_at`.
    #[schema(value_type = Vec<Object>)]
    pub characters: Vec<serde_json::Value>,
    /// The latest 50 officer actions on this player.
    pub actions: Vec<ActionRow>,
}

/// A player's alt tree: each link with source, confidence and evidence, rank, Discord roles,
/// last login per character, and the officer actions on the player.
#[utoipa::path(get, path = "/api/identity/players/{id}", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "players.id")),
    responses((status = 200, body = PlayerDetail), (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn player_detail(
    State(state): State<AppState>,
    _officer: Officer,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i32>,
) -> Result<Response, ApiError> {
    answer_list(&state, &headers, format!("player {id}"), || async {
        let body = console::player_detail(&state.pool, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("player {id} does not exist")))?;
        Ok(Bytes::from(body))
    })
    .await
}

/// A new main character.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMainRequest {
    /// One of the player's characters (`wow_characters.id`).
    pub character_id: i32,
}

/// The player's main after the change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MainSet {
    pub player_id: i32,
    pub main_character_id: i32,
}

/// Make one of the player's characters its main.
#[utoipa::path(put, path = "/api/identity/players/{id}/main", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "players.id")),
    request_body = SetMainRequest,
    responses((status = 200, body = MainSet), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_main(
    State(state): State<AppState>,
    officer: Officer,
    ApiPath(id): ApiPath<i32>,
    super::error::ApiJson(request): super::error::ApiJson<SetMainRequest>,
) -> Result<Json<MainSet>, ApiError> {
    console::set_main(&state.pool, id, request.character_id, &officer.who).await?;
    tracing::info!(player_id = id, character_id = request.character_id, officer = %officer.who, "main set");
    Ok(Json(MainSet {
        player_id: id,
        main_character_id: request.character_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"v1\", W/\"v7\""));
        assert!(matches_if_none_match(&h, "\"v7\""));
        assert!(matches_if_none_match(&h, "\"v1\""));
        assert!(!matches_if_none_match(&h, "\"v8\""));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_if_none_match(&h, "\"v9\""));
        assert!(!matches_if_none_match(&HeaderMap::new(), "\"v9\""));
    }

    #[test]
    fn paging_bounds() {
        assert!(page_of(None, None).is_ok());
        assert!(page_of(Some(0), None).is_err());
        assert!(page_of(None, Some(0)).is_err());
        assert!(page_of(None, Some(MAX_PER_PAGE + 1)).is_err());
        assert!(page_of(Some(MAX_PAGE + 1), None).is_err());
    }
}
