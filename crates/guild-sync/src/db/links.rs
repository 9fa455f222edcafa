//! Read-only summaries of `player_characters`: how many links each strategy made, with examples.
//! Used by the demo to say what was linked and why, and by the benchmark to score the links
//! against a synthetic guild's truth.

use anyhow::Result;
use serde::Serialize;
use sqlx::PgExecutor;

/// Links made by one strategy.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct LinkSourceCount {
    pub link_source: String,
    pub links: i64,
    pub players: i64,
}

/// One link with the names on both sides and its evidence.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct LinkExample {
    pub link_source: String,
    pub confidence: String,
    pub character_name: String,
    pub realm_slug: String,
    pub player_name: String,
    pub discord_username: Option<String>,
    pub evidence: serde_json::Value,
}

/// Links per `link_source`, most first.
pub async fn breakdown(db: impl PgExecutor<'_>) -> Result<Vec<LinkSourceCount>> {
    Ok(sqlx::query_as(
        "SELECT link_source, count(*) AS links, count(DISTINCT player_id) AS players
         FROM guild_identity.player_characters
         GROUP BY link_source ORDER BY links DESC, link_source",
    )
    .fetch_all(db)
    .await?)
}

/// Up to `per_source` links of every `link_source`, oldest first.
pub async fn examples(db: impl PgExecutor<'_>, per_source: i64) -> Result<Vec<LinkExample>> {
    Ok(sqlx::query_as(
        "SELECT link_source, confidence, character_name, realm_slug, player_name,
                discord_username, evidence
         FROM (
             SELECT pc.link_source, pc.confidence, wc.character_name, wc.realm_slug,
                    p.display_name AS player_name, du.username AS discord_username, pc.evidence,
                    row_number() OVER (PARTITION BY pc.link_source ORDER BY pc.id) AS n
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             JOIN guild_identity.players p ON p.id = pc.player_id
             LEFT JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         ) ranked
         WHERE n <= $1
         ORDER BY link_source, n",
    )
    .bind(per_source)
    .fetch_all(db)
    .await?)
}

/// A link with what scoring it against a known truth needs: the character's name and realm, the
/// player, and the snowflake of the player's Discord user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkOwnerRow {
    pub character_name: String,
    pub realm_slug: String,
    pub player_id: i32,
    pub discord_id: Option<String>,
    pub link_source: String,
}

/// Every link, for the benchmark's precision and recall.
pub async fn links_with_owners(db: impl PgExecutor<'_>) -> Result<Vec<LinkOwnerRow>> {
    Ok(sqlx::query_as(
        "SELECT wc.character_name, wc.realm_slug, pc.player_id, du.discord_id, pc.link_source
         FROM guild_identity.player_characters pc
         JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
         JOIN guild_identity.players p ON p.id = pc.player_id
         LEFT JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         ORDER BY pc.id",
    )
    .fetch_all(db)
    .await?)
}
