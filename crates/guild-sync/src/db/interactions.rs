//! The SQL of the Discord commands and report buttons (issue 20): `/whois`'s player card, the
//! issue a button acts on, and the officer's link and unlink — each one transaction with its
//! `officer_actions` row, so a Discord action sits in the same history as a console one.
//! Who may act, and what to answer, is `discord_interactions`' business, not this module's.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use guild_sync_core::integrity::IssueType;
use serde_json::json;
use sqlx::{PgExecutor, PgPool};

use super::Text;
use super::api::{Linked, ManualLink, Unlinked, link_character_in};
use super::characters::CharacterCard;
use super::console::{ConsoleError, OfficerAction, record_action};
use super::links::{StoredConfidence, StoredLinkSource};
use super::member_events::EventSource;

/// A Discord user guild-sync knows: `discord_users.id` and names.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KnownMember {
    pub id: i32,
    pub username: String,
    pub display_name: Option<String>,
    pub is_present: bool,
}

/// The Discord user with snowflake `discord_id`, present or not.
pub async fn member_by_snowflake(
    db: impl PgExecutor<'_>,
    discord_id: &str,
) -> Result<Option<KnownMember>> {
    sqlx::query_as(
        "SELECT id, username, display_name, is_present
         FROM guild_identity.discord_users WHERE discord_id = $1",
    )
    .bind(discord_id)
    .fetch_optional(db)
    .await
    .context("cannot look the Discord member up")
}

/// Who `/whois` asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhoisKey<'a> {
    /// A Discord snowflake.
    Member(&'a str),
    /// `wow_characters.id`.
    Character(i32),
}

/// A player as `/whois` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WhoisPlayer {
    pub player_id: i32,
    pub player_name: String,
    pub discord_id: Option<String>,
    pub discord_username: Option<String>,
    pub discord_display_name: Option<String>,
    pub discord_roles: Option<Vec<String>>,
    pub discord_present: Option<bool>,
}

/// One of the player's characters with its link.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WhoisCharacter {
    #[sqlx(flatten)]
    pub card: CharacterCard,
    pub in_guild: bool,
    pub is_main: bool,
    #[sqlx(try_from = "Text")]
    pub link_source: StoredLinkSource,
    #[sqlx(try_from = "Text")]
    pub confidence: StoredConfidence,
    pub linked_at: DateTime<Utc>,
}

/// The player behind `key` with its characters (main first, then by rank and name); `None`
/// when no player has that member or character.
pub async fn whois(
    pool: &PgPool,
    key: WhoisKey<'_>,
) -> Result<Option<(WhoisPlayer, Vec<WhoisCharacter>)>> {
    let (member, character) = match key {
        WhoisKey::Member(id) => (Some(id), None),
        WhoisKey::Character(id) => (None, Some(id)),
    };
    let player: Option<WhoisPlayer> = sqlx::query_as(
        "SELECT p.id AS player_id, p.display_name AS player_name, du.discord_id,
                du.username AS discord_username, du.display_name AS discord_display_name,
                du.all_guild_roles AS discord_roles, du.is_present AS discord_present
         FROM guild_identity.players p
         LEFT JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         WHERE ($1::text IS NOT NULL AND du.discord_id = $1)
            OR ($2::int IS NOT NULL AND p.id = (SELECT pc.player_id
                                                FROM guild_identity.player_characters pc
                                                WHERE pc.character_id = $2))",
    )
    .bind(member)
    .bind(character)
    .fetch_optional(pool)
    .await
    .context("cannot load the player for /whois")?;
    let Some(player) = player else {
        return Ok(None);
    };
    let characters = sqlx::query_as(
        "SELECT wc.character_name, wc.realm_slug, c.name AS class_name,
                c.color_hex AS class_color, gr.name AS rank_name, wc.level,
                wc.removed_at IS NULL AS in_guild,
                p.main_character_id IS NOT DISTINCT FROM wc.id AS is_main,
                pc.link_source, pc.confidence, pc.created_at AS linked_at
         FROM guild_identity.player_characters pc
         JOIN guild_identity.players p ON p.id = pc.player_id
         JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
         LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE pc.player_id = $1
         ORDER BY p.main_character_id IS NOT DISTINCT FROM wc.id DESC,
                  wc.removed_at IS NULL DESC, gr.level DESC NULLS LAST, wc.character_name",
    )
    .bind(player.player_id)
    .fetch_all(pool)
    .await
    .context("cannot load the player's characters for /whois")?;
    Ok(Some((player, characters)))
}

/// An officer's link from Discord: the console's link rules ([`link_character_in`]), the
/// officer named on the link, the character's open suggestions resolved, and the action
/// recorded (`via` says which command or button) — one transaction.
pub async fn link_by_officer(
    pool: &PgPool,
    character_id: i32,
    discord_user_id: i32,
    officer: &str,
    via: &str,
) -> Result<Linked, ConsoleError> {
    let mut tx = pool.begin().await?;
    let linked = link_character_in(
        &mut tx,
        ManualLink::to_discord_user(character_id, discord_user_id),
        Some(json!({"linked_by": officer, "via": via})),
        EventSource::officer(),
    )
    .await?;
    sqlx::query(
        "UPDATE guild_identity.audit_issues
         SET resolved_at = now(), resolved_by = $2, resolution_note = 'linked by hand on Discord'
         WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL
           AND wow_character_id = $1",
    )
    .bind(character_id)
    .bind(officer)
    .execute(&mut *tx)
    .await?;
    record_action(
        &mut *tx,
        officer,
        OfficerAction::Link,
        &format!("wow_character:{character_id}"),
        Some(linked.player_id),
        None,
        json!({"character_id": character_id, "link_id": linked.link_id,
               "discord_user_id": discord_user_id, "from": via}),
    )
    .await?;
    tx.commit().await?;
    Ok(linked)
}

/// An officer's unlink of a character from Discord: the console's unlink
/// ([`super::api::unlink`]) of the character's link, and the action recorded. `NotFound` when
/// the character has no link.
pub async fn unlink_by_officer(
    pool: &PgPool,
    character_id: i32,
    officer: &str,
) -> Result<Unlinked, ConsoleError> {
    let link_id: Option<i32> = sqlx::query_scalar(
        "SELECT id FROM guild_identity.player_characters WHERE character_id = $1",
    )
    .bind(character_id)
    .fetch_optional(pool)
    .await?;
    let Some(link_id) = link_id else {
        return Err(ConsoleError::NotFound(
            "that character is not linked to anyone".into(),
        ));
    };
    let unlinked = super::api::unlink(pool, link_id, None, EventSource::officer()).await?;
    record_action(
        pool,
        officer,
        OfficerAction::Unlink,
        &format!("player_character:{link_id}"),
        Some(unlinked.player_id),
        None,
        json!({"link_id": link_id, "character_id": character_id, "from": "discord"}),
    )
    .await?;
    Ok(unlinked)
}

/// An audit issue as a button sees it: its type, whether it is open, and what it names.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ButtonIssue {
    #[sqlx(try_from = "Text")]
    pub issue_type: IssueType,
    pub open: bool,
    pub resolved_by: Option<String>,
    pub wow_character_id: Option<i32>,
    pub discord_member_id: Option<i32>,
}

/// Audit issue `id`, resolved or not.
pub async fn button_issue(db: impl PgExecutor<'_>, id: i32) -> Result<Option<ButtonIssue>> {
    sqlx::query_as(
        "SELECT issue_type, resolved_at IS NULL AS open, resolved_by, wow_character_id, discord_member_id
         FROM guild_identity.audit_issues WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .context("cannot load the button's audit issue")
}
