//! The HTTP API's own SQL: officers' manual link / unlink, each in one transaction. Refusals
//! (unknown ids, conflicts) are typed so the API can answer 404 / 409; what to answer, and the
//! request and response bodies, are the API's business (`api/`), not this module's. (The
//! players list is paged, in [`crate::db::console::players_page`].)

use anyhow::anyhow;
use sqlx::{PgConnection, PgPool};

use super::member_events::{EventSource, link_events_sql, unlinked_events_sql};

/// An officer's manual link: this character, to the given player, or to this Discord user's
/// player, or to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualLink {
    /// `wow_characters.id`.
    pub character_id: i32,
    /// `discord_users.id`.
    pub discord_user_id: Option<i32>,
    /// `players.id`.
    pub player_id: Option<i32>,
}

impl ManualLink {
    /// `character_id` to the player of Discord user `discord_user_id` (a new one when the user
    /// has none): what accepting a suggestion and an officer's Discord `/link` ask for.
    pub fn to_discord_user(character_id: i32, discord_user_id: i32) -> ManualLink {
        ManualLink {
            character_id,
            discord_user_id: Some(discord_user_id),
            player_id: None,
        }
    }
}

/// What a manual link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
/// transaction; row locks serialise concurrent links of the same character, user or player.
/// A new link's `linked` event is written with it, attributed to `source`.
pub async fn link_character(
    db: &PgPool,
    req: ManualLink,
    source: EventSource,
) -> Result<Linked, LinkError> {
    let mut tx = db.begin().await?;
    let linked = link_character_in(&mut tx, req, None, source).await?;
    tx.commit().await?;
    Ok(linked)
}

/// [`link_character`] inside the caller's transaction, with `evidence` for the link row
/// (`None`: the API's default, naming the API). The console's accept names the suggestion and
/// the officer this way, in the same transaction that resolves the suggestion.
pub async fn link_character_in(
    tx: &mut PgConnection,
    req: ManualLink,
    evidence: Option<serde_json::Value>,
    source: EventSource,
) -> Result<Linked, LinkError> {
    let character = lock_character(&mut *tx, req.character_id).await?;
    let discord = match req.discord_user_id {
        Some(id) => Some(lock_discord_user(&mut *tx, id).await?),
        None => None,
    };
    let target = match req.player_id {
        Some(player_id) => {
            let current = lock_player(&mut *tx, player_id).await?;
            check_player_can_take(player_id, current, req.discord_user_id, discord.as_ref())?;
            Some(player_id)
        }
        None => discord.as_ref().and_then(|d| d.owner),
    };
    if let Some(existing) = character.link
        && Some(existing.player_id) != target
    {
        return Err(LinkError::Conflict(format!(
            "wow character {} belongs to player {}; unlink it first",
            req.character_id, existing.player_id
        )));
    }
    let (player_id, created_player) = match target {
        Some(id) => (id, false),
        None => {
            let display_name = discord.map_or(character.name, |d| d.display_name);
            let id = insert_player(&mut *tx, &display_name, req.discord_user_id).await?;
            (id, true)
        }
    };
    let (link_id, created_link) = match character.link {
        Some(existing) => {
            let evidence = evidence.unwrap_or_else(|| serde_json::json!({"confirmed_by": "api"}));
            confirm_link(&mut *tx, existing.link_id, &evidence).await?;
            (existing.link_id, false)
        }
        None => {
            let evidence = evidence.unwrap_or_else(|| serde_json::json!({"linked_by": "api"}));
            (
                insert_link(&mut *tx, player_id, req.character_id, &evidence, source).await?,
                true,
            )
        }
    };
    if let Some(du) = req.discord_user_id {
        give_discord_user(&mut *tx, player_id, du).await?;
    }
    Ok(Linked {
        link_id,
        player_id,
        created_player,
        created_link,
    })
}

/// A character's `player_characters` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
struct ExistingLink {
    #[sqlx(rename = "id")]
    link_id: i32,
    player_id: i32,
}

/// The character being linked: its name (a new player's default name) and its current link.
struct LockedCharacter {
    name: String,
    link: Option<ExistingLink>,
}

/// The Discord user being linked.
#[derive(sqlx::FromRow)]
struct DiscordSide {
    /// What a new player for this user is called.
    display_name: String,
    /// The player that already has this user.
    owner: Option<i32>,
}

async fn lock_character(
    tx: &mut PgConnection,
    character_id: i32,
) -> Result<LockedCharacter, LinkError> {
    let name: Option<String> = sqlx::query_scalar(
        "SELECT character_name FROM guild_identity.wow_characters WHERE id = $1 FOR UPDATE",
    )
    .bind(character_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(name) = name else {
        return Err(LinkError::NotFound(format!(
            "wow character {character_id} does not exist"
        )));
    };
    let link = sqlx::query_as(
        "SELECT id, player_id FROM guild_identity.player_characters WHERE character_id = $1",
    )
    .bind(character_id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(LockedCharacter { name, link })
}

async fn lock_discord_user(tx: &mut PgConnection, id: i32) -> Result<DiscordSide, LinkError> {
    let row: Option<DiscordSide> = sqlx::query_as(
        "SELECT coalesce(du.display_name, du.username) AS display_name,
                (SELECT p.id FROM guild_identity.players p WHERE p.discord_user_id = du.id) AS owner
         FROM guild_identity.discord_users du WHERE du.id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(tx)
    .await?;
    row.ok_or_else(|| LinkError::NotFound(format!("discord user {id} does not exist")))
}

/// The player's current Discord user.
async fn lock_player(tx: &mut PgConnection, player_id: i32) -> Result<Option<i32>, LinkError> {
    let player: Option<Option<i32>> = sqlx::query_scalar(
        "SELECT discord_user_id FROM guild_identity.players WHERE id = $1 FOR UPDATE",
    )
    .bind(player_id)
    .fetch_optional(tx)
    .await?;
    player.ok_or_else(|| LinkError::NotFound(format!("player {player_id} does not exist")))
}

/// A named player can take the link unless it already has another Discord user, or the named
/// Discord user already belongs to another player.
fn check_player_can_take(
    player_id: i32,
    player_discord: Option<i32>,
    discord_user_id: Option<i32>,
    discord: Option<&DiscordSide>,
) -> Result<(), LinkError> {
    let (Some(du), Some(discord)) = (discord_user_id, discord) else {
        return Ok(());
    };
    if let Some(current) = player_discord
        && current != du
    {
        return Err(LinkError::Conflict(format!(
            "player {player_id} already has discord user {current}"
        )));
    }
    if let Some(owner) = discord.owner
        && owner != player_id
    {
        return Err(LinkError::Conflict(format!(
            "discord user {du} belongs to player {owner}"
        )));
    }
    Ok(())
}

async fn insert_player(
    tx: &mut PgConnection,
    display_name: &str,
    discord_user_id: Option<i32>,
) -> Result<i32, LinkError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO guild_identity.players (display_name, discord_user_id)
         VALUES ($1, $2) RETURNING id",
    )
    .bind(display_name)
    .bind(discord_user_id)
    .fetch_one(tx)
    .await?)
}

/// An officer confirming a link the matcher made turns it manual.
async fn confirm_link(
    tx: &mut PgConnection,
    link_id: i32,
    evidence: &serde_json::Value,
) -> Result<(), LinkError> {
    sqlx::query(
        "UPDATE guild_identity.player_characters
         SET link_source = 'manual', confidence = 'confirmed', evidence = $2
         WHERE id = $1",
    )
    .bind(link_id)
    .bind(evidence)
    .execute(tx)
    .await?;
    Ok(())
}

/// Insert a manual link and its `linked` event (one statement).
async fn insert_link(
    tx: &mut PgConnection,
    player_id: i32,
    character_id: i32,
    evidence: &serde_json::Value,
    source: EventSource,
) -> Result<i32, LinkError> {
    Ok(sqlx::query_scalar(concat!(
        "WITH inserted AS (
             INSERT INTO guild_identity.player_characters
                 (player_id, character_id, link_source, confidence, evidence)
             VALUES ($1, $2, 'manual', 'confirmed', $3)
             RETURNING id, player_id, character_id
         ), changes AS (
             SELECT 'linked' AS event_type, player_id, character_id, NULL::jsonb AS before,
                    jsonb_build_object('link_source', 'manual', 'confidence', 'confirmed')
                        AS after
             FROM inserted
         ), ",
        link_events_sql!("changes", 4, 5),
        "
         SELECT id FROM inserted"
    ))
    .bind(player_id)
    .bind(character_id)
    .bind(evidence)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .fetch_one(tx)
    .await?)
}

/// The player gets the Discord user only when it has none (never replaced here).
async fn give_discord_user(
    tx: &mut PgConnection,
    player_id: i32,
    discord_user_id: i32,
) -> Result<(), LinkError> {
    sqlx::query(
        "UPDATE guild_identity.players SET discord_user_id = $2
         WHERE id = $1 AND discord_user_id IS NULL",
    )
    .bind(player_id)
    .bind(discord_user_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// What an unlink removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlinked {
    pub link_id: i32,
    pub player_id: i32,
    pub character_id: i32,
}

/// Remove one `player_characters` row; the player stops pointing at the character as its main
/// or offspec. One transaction.
///
/// With `of_player`, only a link of that player is removed: a form on one player's page that
/// names another player's link (a stale page, a forged form) must not break a link the officer
/// never saw, so it is refused as not found and nothing changes.
///
/// The `unlinked` event is written by the deleting statement, attributed to `source`.
pub async fn unlink(
    db: &PgPool,
    link_id: i32,
    of_player: Option<i32>,
    source: EventSource,
) -> Result<Unlinked, LinkError> {
    let mut tx = db.begin().await?;
    let removed: Option<(i32, i32)> = sqlx::query_as(concat!(
        "WITH removed AS (
             DELETE FROM guild_identity.player_characters
             WHERE id = $1 AND ($2::int IS NULL OR player_id = $2)
             RETURNING player_id, character_id, link_source, confidence
         ), ",
        unlinked_events_sql!("removed", 3, 4),
        "
         SELECT player_id, character_id FROM removed"
    ))
    .bind(link_id)
    .bind(of_player)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((player_id, character_id)) = removed else {
        return Err(LinkError::NotFound(match of_player {
            Some(player) => format!("player {player} has no link {link_id}"),
            None => format!("link {link_id} does not exist"),
        }));
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
