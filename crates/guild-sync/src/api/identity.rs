//! `/api/identity/*`: players with their links, the live integrity queries, and officers'
//! manual link / unlink. Handlers only translate HTTP ↔ the `db` layer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Officer;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use super::{AppState, console, served};
use crate::db::api::ManualLink;
use crate::db::integrity::{self, RowOrder};
use crate::db::links::StoredLinkSource;

row_view! {
    /// An in-guild character no player owns.
    pub struct OrphanWowRow from integrity::OrphanWowRow {
        pub id: i32,
        pub character_name: String,
        pub realm_slug: String,
        pub class_name: Option<String>,
        pub rank_name: Option<String>,
        pub level: Option<i32>,
        pub last_login_at: Option<DateTime<Utc>>,
    }
}

row_view! {
    /// A present Discord user with a guild role and no player.
    pub struct OrphanDiscordRow from integrity::OrphanDiscordRow {
        pub id: i32,
        pub discord_id: String,
        pub username: String,
        pub display_name: Option<String>,
        pub highest_guild_role: String,
    }
}

row_view! {
    /// A player whose highest in-game rank and Discord role disagree.
    pub struct RankMismatchRow from integrity::RankMismatchRow {
        pub player_id: i32,
        pub display_name: String,
        pub discord_user_id: i32,
        /// The Discord user's highest guild role as Discord names it.
        pub discord_role: String,
        /// The player's highest in-game rank among in-guild characters.
        pub ingame_rank: String,
        /// The Discord role that rank corresponds to (`common.guild_ranks.discord_role_name`).
        pub expected_discord_role: Option<String>,
        /// The character that rank comes from, and how it was linked to the player.
        pub ranked_character: String,
        #[schema(value_type = String)]
        pub ranked_link_source: StoredLinkSource,
    }
}

/// A player's Discord account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlayerDiscordUser {
    /// `discord_users.id`.
    pub id: i32,
    /// The Discord snowflake, as text.
    pub discord_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub highest_guild_role: Option<String>,
    pub is_present: bool,
}

/// One of a player's characters, with how it was linked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlayerCharacter {
    /// `player_characters.id` — what `DELETE /api/identity/link/{id}` takes.
    pub link_id: i32,
    /// `wow_characters.id`.
    pub character_id: i32,
    pub name: String,
    pub realm: String,
    pub class: Option<String>,
    pub spec: Option<String>,
    /// The active spec's default role (Tank, Healer, Melee DPS, Ranged DPS).
    pub role: Option<String>,
    pub rank: Option<String>,
    pub level: Option<i32>,
    /// False once the character has left the guild.
    pub in_guild: bool,
    pub is_main: bool,
    /// The strategy that made the link (`exact_name`, …, `manual`).
    #[schema(value_type = String)]
    pub link_source: crate::db::links::StoredLinkSource,
    /// `confirmed`, `high`, `medium` or `low`.
    #[schema(value_type = String)]
    pub confidence: crate::db::links::StoredConfidence,
}

/// A player with everything linked to it: the shape of each entry of the page
/// [`crate::db::console::players_page`] has PostgreSQL build (passed through, never decoded).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlayerView {
    pub id: i32,
    pub display_name: String,
    pub is_active: bool,
    pub discord_user: Option<PlayerDiscordUser>,
    pub characters: Vec<PlayerCharacter>,
}

/// An officer's manual link request.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The character to link (`wow_characters.id`).
    pub wow_character_id: i32,
    /// The Discord user (`discord_users.id`) who plays it.
    pub discord_user_id: Option<i32>,
    /// The player to add it to (`players.id`).
    pub player_id: Option<i32>,
}

row_view! {
    /// What a manual link did.
    pub struct Linked from crate::db::api::Linked {
        /// `player_characters.id`.
        pub link_id: i32,
        pub player_id: i32,
        /// A new player was created for the link.
        pub created_player: bool,
        /// False when the character was already that player's and the link was only confirmed.
        pub created_link: bool,
    }
}

row_view! {
    /// What an unlink removed.
    pub struct Unlinked from crate::db::api::Unlinked {
        pub link_id: i32,
        pub player_id: i32,
        pub character_id: i32,
    }
}

/// `GET /api/identity/players` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlayersQuery {
    /// Text searched in the player's name, its Discord names and its character names.
    pub q: Option<String>,
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Players per page, 1–200 (default 50).
    pub per_page: Option<i64>,
}

/// A page of players (the document PostgreSQL builds, described here for the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlayersPage {
    /// Players matching the search.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    pub players: Vec<PlayerView>,
}

/// Players with their Discord user and characters, by name, paged and searchable.
#[utoipa::path(get, path = "/api/identity/players", tag = "identity",
    security(("bearer" = [])), params(PlayersQuery),
    responses((status = 200, body = PlayersPage), (status = 304, description = "Not modified"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn players(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PlayersQuery>,
) -> Result<Response, ApiError> {
    let page = console::page_of(query.page, query.per_page)?;
    let q = console::search_of(query.q)?;
    // Kept like every list (issue 16: a page of 50 under 64 clients in < 20 ms).
    let key = format!("players {q:?} {page:?}");
    console::answer_list(&state, &headers, key, || async {
        let (total, players) =
            crate::db::console::players_page(&state.pool, q.as_deref(), page).await?;
        // The players array is PostgreSQL's JSON text: wrap it, never decode it.
        Ok(format!(
            "{{\"total\":{total},\"page\":{},\"per_page\":{},\"players\":{players}}}",
            page.page, page.per_page
        )
        .into())
    })
    .await
}

/// In-guild characters no player owns.
#[utoipa::path(get, path = "/api/identity/orphans/wow", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = [OrphanWowRow]), (status = 401, body = ErrorBody)))]
pub async fn orphans_wow(
    State(state): State<AppState>,
) -> Result<Json<Vec<OrphanWowRow>>, ApiError> {
    Ok(Json(served(
        integrity::orphan_wow(&state.pool, RowOrder::ByName).await?,
    )))
}

/// Present Discord users with a guild role and no player.
#[utoipa::path(get, path = "/api/identity/orphans/discord", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = [OrphanDiscordRow]), (status = 401, body = ErrorBody)))]
pub async fn orphans_discord(
    State(state): State<AppState>,
) -> Result<Json<Vec<OrphanDiscordRow>>, ApiError> {
    Ok(Json(served(
        integrity::orphan_discord(&state.pool, RowOrder::ByName).await?,
    )))
}

/// Players whose in-game rank and Discord role disagree.
#[utoipa::path(get, path = "/api/identity/mismatches", tag = "identity",
    security(("bearer" = [])),
    responses((status = 200, body = [RankMismatchRow]), (status = 401, body = ErrorBody)))]
pub async fn mismatches(
    State(state): State<AppState>,
) -> Result<Json<Vec<RankMismatchRow>>, ApiError> {
    Ok(Json(served(integrity::rank_mismatches(&state.pool).await?)))
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
    officer: Officer,
    ApiJson(request): ApiJson<LinkRequest>,
) -> Result<(StatusCode, Json<Linked>), ApiError> {
    let linked = crate::db::api::link_character(
        &state.pool,
        ManualLink {
            character_id: request.wow_character_id,
            discord_user_id: request.discord_user_id,
            player_id: request.player_id,
        },
        crate::db::member_events::EventSource::officer(),
    )
    .await?;
    crate::db::console::record_action(
        &state.pool,
        &officer.who,
        crate::db::console::OfficerAction::Link,
        &format!("wow_character:{}", request.wow_character_id),
        Some(linked.player_id),
        None,
        json!({"character_id": request.wow_character_id, "link_id": linked.link_id,
               "discord_user_id": request.discord_user_id}),
    )
    .await?;
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
    Ok((status, Json(linked.into())))
}

/// Remove one link (`player_characters.id`).
#[utoipa::path(delete, path = "/api/identity/link/{id}", tag = "identity",
    security(("bearer" = [])),
    params(("id" = i32, Path, description = "player_characters.id")),
    responses((status = 200, body = Unlinked), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unlink(
    State(state): State<AppState>,
    officer: Officer,
    ApiPath(id): ApiPath<i32>,
) -> Result<Json<Unlinked>, ApiError> {
    let unlinked = crate::db::api::unlink(
        &state.pool,
        id,
        None,
        crate::db::member_events::EventSource::officer(),
    )
    .await?;
    crate::db::console::record_action(
        &state.pool,
        &officer.who,
        crate::db::console::OfficerAction::Unlink,
        &format!("link:{id}"),
        Some(unlinked.player_id),
        None,
        json!({"character_id": unlinked.character_id, "link_id": id}),
    )
    .await?;
    tracing::info!(
        link_id = id,
        player_id = unlinked.player_id,
        character_id = unlinked.character_id,
        "manual unlink"
    );
    Ok(Json(unlinked.into()))
}
