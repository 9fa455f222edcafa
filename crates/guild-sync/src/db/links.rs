//! Read-only summaries of `player_characters`: how many links each strategy made, with examples.
//! Used by the demo to say what was linked and why, and by the benchmark to score the links
//! against a synthetic guild's truth.
//!
//! Also how `player_characters.link_source` and `.confidence` decode wherever they are read:
//! into the core's [`StoredLinkSource`] and [`StoredConfidence`] (`#[sqlx(try_from = "Text")]`),
//! so a value this version does not know is an error naming the column.

use anyhow::Result;
use sqlx::PgExecutor;

pub use guild_sync_core::matching::{StoredConfidence, StoredLinkSource};

use super::{Text, decodes_text};

decodes_text!(
    StoredLinkSource,
    "player_characters.link_source",
    StoredLinkSource::parse
);
decodes_text!(
    StoredConfidence,
    "player_characters.confidence",
    StoredConfidence::parse
);

/// Links made by one strategy.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkSourceCount {
    #[sqlx(try_from = "Text")]
    pub link_source: StoredLinkSource,
    pub links: i64,
    pub players: i64,
}

/// One link with the names on both sides and its evidence.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LinkExample {
    #[sqlx(try_from = "Text")]
    pub link_source: StoredLinkSource,
    #[sqlx(try_from = "Text")]
    pub confidence: StoredConfidence,
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
    #[sqlx(try_from = "Text")]
    pub link_source: StoredLinkSource,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_link_values_read_back_as_themselves_and_unknown_ones_name_the_column() {
        for text in [
            "exact_name",
            "guild_note",
            "officer_note",
            "display_name_part",
            "fuzzy_name",
            "alt_note",
            "manual",
            "battlenet_oauth",
        ] {
            let source = StoredLinkSource::try_from(Text(text.into())).expect(text);
            assert_eq!(source.to_string(), text);
            assert_eq!(serde_json::to_value(source).unwrap(), text);
        }
        for text in ["confirmed", "high", "medium", "low"] {
            let confidence = StoredConfidence::try_from(Text(text.into())).expect(text);
            assert_eq!(serde_json::to_value(confidence).unwrap(), text);
        }
        let err = StoredLinkSource::try_from(Text("guess".into())).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown player_characters.link_source \"guess\" in the database"
        );
        let err = StoredConfidence::try_from(Text("sure".into())).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown player_characters.confidence \"sure\" in the database"
        );
    }
}
