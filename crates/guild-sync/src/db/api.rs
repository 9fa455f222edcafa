//! The HTTP API's own SQL: players with their Discord user and characters (one query, JSON
//! aggregation — never a query per player), and officers' manual link / unlink, each in one
//! transaction. Refusals (unknown ids, conflicts) are typed so the API can answer 404 / 409;
//! what to answer is the API's business, not this module's.

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

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
    pub link_source: String,
    /// `confirmed`, `high`, `medium` or `low`.
    pub confidence: String,
}

/// A player with everything linked to it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlayerView {
    pub id: i32,
    pub display_name: String,
    pub is_active: bool,
    pub discord_user: Option<PlayerDiscordUser>,
    pub characters: Vec<PlayerCharacter>,
}

/// Every player with its Discord user and characters, as the JSON array the API answers with
/// (the shape of [`PlayerView`]). PostgreSQL builds the document and it is passed through as
/// text: decoding ~800 KB into structs only to encode it again cost most of each request.
pub async fn players_json(db: &PgPool) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE(json_agg(t ORDER BY lower(t.display_name), t.id), '[]')::text
         FROM (
             SELECT p.id, p.display_name, p.is_active,
                    CASE WHEN du.id IS NULL THEN NULL ELSE jsonb_build_object(
                        'id', du.id, 'discord_id', du.discord_id, 'username', du.username,
                        'display_name', du.display_name, 'highest_guild_role', du.highest_guild_role,
                        'is_present', du.is_present) END AS discord_user,
                    COALESCE(ch.characters, '[]'::jsonb) AS characters
             FROM guild_identity.players p
             LEFT JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
             LEFT JOIN LATERAL (
                 SELECT jsonb_agg(jsonb_build_object(
                            'link_id', pc.id, 'character_id', wc.id, 'name', wc.character_name,
                            'realm', wc.realm_slug, 'class', c.name, 'spec', s.name, 'role', r.name,
                            'rank', gr.name, 'level', wc.level, 'in_guild', wc.removed_at IS NULL,
                            'is_main', COALESCE(p.main_character_id = wc.id, FALSE),
                            'link_source', pc.link_source, 'confidence', pc.confidence)
                        ORDER BY lower(wc.character_name), wc.realm_slug, wc.id) AS characters
                 FROM guild_identity.player_characters pc
                 JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
                 LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
                 LEFT JOIN guild_identity.specializations s ON s.id = wc.active_spec_id
                 LEFT JOIN guild_identity.roles r ON r.id = s.default_role_id
                 LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
                 WHERE pc.player_id = p.id
             ) ch ON TRUE
         ) t",
    )
    .fetch_one(db)
    .await?)
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

/// What a manual link did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Linked {
    /// `player_characters.id`.
    pub link_id: i32,
    pub player_id: i32,
    /// A new player was created for the link.
    pub created_player: bool,
    /// False when the character was already that player's and the link was only confirmed.
    pub created_link: bool,
}

/// Why a link or unlink was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

impl From<sqlx::Error> for LinkError {
    fn from(err: sqlx::Error) -> Self {
        // A concurrent writer got there first: the constraint, not a crash, has the last word.
        match err.as_database_error().and_then(|e| e.code()).as_deref() {
            Some("23505") => LinkError::Conflict(
                "the character or the Discord user was linked to another player meanwhile".into(),
            ),
            Some("23503") => {
                LinkError::Conflict("a row the link refers to was deleted meanwhile".into())
            }
            _ => LinkError::Database(anyhow!(err).context("the manual link query failed")),
        }
    }
}

/// Link a character to a player (the given one, the Discord user's, or a new one) as a
/// confirmed manual link, and give the player the Discord user when it has none. One
/// transaction.
pub async fn link_character(db: &PgPool, req: &LinkRequest) -> Result<Linked, LinkError> {
    let mut tx = db.begin().await?;
    // Row locks serialise concurrent links of the same character / player.
    let character: Option<String> = sqlx::query_scalar(
        "SELECT character_name FROM guild_identity.wow_characters WHERE id = $1 FOR UPDATE",
    )
    .bind(req.wow_character_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(character_name) = character else {
        return Err(LinkError::NotFound(format!(
            "wow character {} does not exist",
            req.wow_character_id
        )));
    };
    let existing: Option<(i32, i32)> = sqlx::query_as(
        "SELECT id, player_id FROM guild_identity.player_characters WHERE character_id = $1",
    )
    .bind(req.wow_character_id)
    .fetch_optional(&mut *tx)
    .await?;

    // (display name, player owning it)
    let discord: Option<(String, Option<i32>)> =
        match req.discord_user_id {
            None => None,
            Some(id) => {
                let row: Option<(String, Option<i32>)> = sqlx::query_as(
                    "SELECT coalesce(du.display_name, du.username),
                        (SELECT p.id FROM guild_identity.players p WHERE p.discord_user_id = du.id)
                 FROM guild_identity.discord_users du WHERE du.id = $1 FOR UPDATE",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                Some(row.ok_or_else(|| {
                    LinkError::NotFound(format!("discord user {id} does not exist"))
                })?)
            }
        };

    let target: Option<i32> = match req.player_id {
        Some(player_id) => {
            let player: Option<Option<i32>> = sqlx::query_scalar(
                "SELECT discord_user_id FROM guild_identity.players WHERE id = $1 FOR UPDATE",
            )
            .bind(player_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(player_discord) = player else {
                return Err(LinkError::NotFound(format!(
                    "player {player_id} does not exist"
                )));
            };
            if let (Some(du), Some((_, owner))) = (req.discord_user_id, &discord) {
                if let Some(current) = player_discord
                    && current != du
                {
                    return Err(LinkError::Conflict(format!(
                        "player {player_id} already has discord user {current}"
                    )));
                }
                if let Some(owner) = owner
                    && *owner != player_id
                {
                    return Err(LinkError::Conflict(format!(
                        "discord user {du} belongs to player {owner}"
                    )));
                }
            }
            Some(player_id)
        }
        None => discord.as_ref().and_then(|(_, owner)| *owner),
    };

    if let Some((_, owner)) = existing
        && Some(owner) != target
    {
        return Err(LinkError::Conflict(format!(
            "wow character {} belongs to player {owner}; unlink it first",
            req.wow_character_id
        )));
    }

    let (player_id, created_player) = match target {
        Some(id) => (id, false),
        None => {
            let display_name = discord
                .as_ref()
                .map(|(name, _)| name.clone())
                .unwrap_or(character_name);
            let id: i32 = sqlx::query_scalar(
                "INSERT INTO guild_identity.players (display_name, discord_user_id)
                 VALUES ($1, $2) RETURNING id",
            )
            .bind(display_name)
            .bind(req.discord_user_id)
            .fetch_one(&mut *tx)
            .await?;
            (id, true)
        }
    };

    let (link_id, created_link) = match existing {
        Some((link_id, _)) => {
            sqlx::query(
                "UPDATE guild_identity.player_characters
                 SET link_source = 'manual', confidence = 'confirmed',
                     evidence = jsonb_build_object('confirmed_by', 'api')
                 WHERE id = $1",
            )
            .bind(link_id)
            .execute(&mut *tx)
            .await?;
            (link_id, false)
        }
        None => {
            let link_id: i32 = sqlx::query_scalar(
                "INSERT INTO guild_identity.player_characters
                     (player_id, character_id, link_source, confidence, evidence)
                 VALUES ($1, $2, 'manual', 'confirmed', jsonb_build_object('linked_by', 'api'))
                 RETURNING id",
            )
            .bind(player_id)
            .bind(req.wow_character_id)
            .fetch_one(&mut *tx)
            .await?;
            (link_id, true)
        }
    };

    if let Some(du) = req.discord_user_id {
        sqlx::query(
            "UPDATE guild_identity.players SET discord_user_id = $2
             WHERE id = $1 AND discord_user_id IS NULL",
        )
        .bind(player_id)
        .bind(du)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Linked {
        link_id,
        player_id,
        created_player,
        created_link,
    })
}

/// What an unlink removed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Unlinked {
    pub link_id: i32,
    pub player_id: i32,
    pub character_id: i32,
}

/// Remove one `player_characters` row; the player stops pointing at the character as its main
/// or offspec. One transaction.
pub async fn unlink(db: &PgPool, link_id: i32) -> Result<Unlinked, LinkError> {
    let mut tx = db.begin().await?;
    let removed: Option<(i32, i32)> = sqlx::query_as(
        "DELETE FROM guild_identity.player_characters WHERE id = $1
         RETURNING player_id, character_id",
    )
    .bind(link_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((player_id, character_id)) = removed else {
        return Err(LinkError::NotFound(format!(
            "link {link_id} does not exist"
        )));
    };
    sqlx::query(
        "UPDATE guild_identity.players
         SET main_character_id = CASE WHEN main_character_id = $2 THEN NULL ELSE main_character_id END,
             offspec_character_id = CASE WHEN offspec_character_id = $2 THEN NULL ELSE offspec_character_id END
         WHERE id = $1 AND $2 IN (main_character_id, offspec_character_id)",
    )
    .bind(player_id)
    .bind(character_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Unlinked {
        link_id,
        player_id,
        character_id,
    })
}
