//! Who counts as an officer: the one answer the console's Discord login, the Discord commands'
//! permission check and the buttons on the audit report share (`GUILD_SYNC_OFFICER_RANK`).
//!
//! A Discord account stands at its best of two signals, because either may lag the other: the
//! highest in-game rank among its player's characters still in the guild, and the highest rank
//! whose Discord role (`guild_ranks.discord_role_name`, case-insensitive) it holds on the
//! server. An account that left the server stands nowhere.

use anyhow::{Context, Result, bail};
use sqlx::PgExecutor;

/// Where one Discord account stands against the officer rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficerStanding {
    /// `guild_ranks.level` of the player's highest rank in the guild (None: no linked character
    /// in the guild).
    pub player_rank_level: Option<i32>,
    /// `guild_ranks.level` of the highest rank whose Discord role the account holds.
    pub role_rank_level: Option<i32>,
    /// `guild_ranks.level` of `GUILD_SYNC_OFFICER_RANK`.
    pub officer_level: i32,
}

impl OfficerStanding {
    /// At or above the officer rank by either signal.
    pub fn is_officer(&self) -> bool {
        self.player_rank_level
            .max(self.role_rank_level)
            .is_some_and(|level| level >= self.officer_level)
    }
}

/// How `discord_id` (a snowflake) stands against the rank named `officer_rank`. An account
/// guild-sync has never seen, or that left the server, stands at no rank. Fails when
/// `officer_rank` names no guild rank: a misconfiguration must not silently lock every officer
/// out (or let everyone in).
pub async fn officer_standing(
    executor: impl PgExecutor<'_>,
    discord_id: &str,
    officer_rank: &str,
) -> Result<OfficerStanding> {
    let row: Option<(Option<i32>, Option<i32>, Option<i32>)> = sqlx::query_as(
        r#"
        WITH threshold AS (
            SELECT level FROM common.guild_ranks WHERE lower(name) = lower($2)
        ), member AS (
            SELECT id, all_guild_roles FROM guild_identity.discord_users
            WHERE discord_id = $1 AND is_present
        )
        SELECT
            (SELECT max(r.level)
               FROM member m
               JOIN guild_identity.players p ON p.discord_user_id = m.id
               JOIN guild_identity.player_characters pc ON pc.player_id = p.id
               JOIN guild_identity.wow_characters c
                 ON c.id = pc.character_id AND c.removed_at IS NULL
               JOIN common.guild_ranks r ON r.id = c.guild_rank_id),
            (SELECT max(r.level)
               FROM member m
               JOIN common.guild_ranks r
                 ON r.discord_role_name IS NOT NULL
                AND lower(r.discord_role_name) IN (SELECT lower(role) FROM unnest(m.all_guild_roles) role)),
            (SELECT level FROM threshold)
        "#,
    )
    .bind(discord_id)
    .bind(officer_rank)
    .fetch_optional(executor)
    .await
    .context("cannot read the member's rank")?;
    let (player_rank_level, role_rank_level, officer_level) = row.unwrap_or_default();
    let Some(officer_level) = officer_level else {
        bail!("GUILD_SYNC_OFFICER_RANK={officer_rank:?} is not one of the guild's ranks");
    };
    Ok(OfficerStanding {
        player_rank_level,
        role_rank_level,
        officer_level,
    })
}
