//! `/api/identity/*`: players with their links, the live integrity queries, and officers'
//! manual link / unlink. Handlers only translate HTTP ↔ the `db` layer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use axum::http::header;
use axum::response::IntoResponse;

use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::db::api::{LinkRequest, Linked, PlayerView, Unlinked};
use crate::db::integrity::{OrphanDiscordRow, OrphanWowRow, RankMismatchRow, RowOrder};

/// Every player with its Discord user and characters.
#[utoipa::path(get, path = "/api/identity/players", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = [PlayerView]), (status = 401, body = ErrorBody)))]
pub async fn players(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let body = crate::db::api::players_json(&state.pool).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

/// In-guild characters no player owns.
#[utoipa::path(get, path = "/api/identity/orphans/wow", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = [OrphanWowRow]), (status = 401, body = ErrorBody)))]
pub async fn orphans_wow(
    State(state): State<AppState>,
) -> Result<Json<Vec<OrphanWowRow>>, ApiError> {
    Ok(Json(
        crate::db::integrity::orphan_wow(&state.pool, RowOrder::ByName).await?,
    ))
}

/// Present Discord users with a guild role and no player.
#[utoipa::path(get, path = "/api/identity/orphans/discord", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = [OrphanDiscordRow]), (status = 401, body = ErrorBody)))]
pub async fn orphans_discord(
    State(state): State<AppState>,
) -> Result<Json<Vec<OrphanDiscordRow>>, ApiError> {
    Ok(Json(
        crate::db::integrity::orphan_discord(&state.pool, RowOrder::ByName).await?,
    ))
}

/// Players whose in-game rank and Discord role disagree.
#[utoipa::path(get, path = "/api/identity/mismatches", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = [RankMismatchRow]), (status = 401, body = ErrorBody)))]
pub async fn mismatches(
    State(state): State<AppState>,
) -> Result<Json<Vec<RankMismatchRow>>, ApiError> {
    Ok(Json(
        crate::db::integrity::rank_mismatches(&state.pool).await?,
    ))
}

/// Link a character to a player (given, the Discord user's, or new) as a confirmed manual
/// link. 201 when a link was created, 200 when an existing one was confirmed.
#[utoipa::path(post, path = "/api/identity/link", tag = "identity",
    security(("bearer" = [])),
    request_body = LinkRequest,
    responses(
        (status = 201, body = Linked), (status = 200, body = Linked),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn link(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LinkRequest>,
) -> Result<(StatusCode, Json<Linked>), ApiError> {
    let linked = crate::db::api::link_character(&state.pool, &request).await?;
    tracing::info!(
        character_id = request.wow_character_id,
        player_id = linked.player_id,
        link_id = linked.link_id,
        "manual link"
    );
    let status = if linked.created_link {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(linked)))
}

/// Remove one link (`player_characters.id`).
#[utoipa::path(delete, path = "/api/identity/link/{id}", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "player_characters.id")),
    responses((status = 200, body = Unlinked), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlink(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i32>,
) -> Result<Json<Unlinked>, ApiError> {
    let unlinked = crate::db::api::unlink(&state.pool, id).await?;
    tracing::info!(
        link_id = id,
        player_id = unlinked.player_id,
        character_id = unlinked.character_id,
        "manual unlink"
    );
    Ok(Json(unlinked))
}
