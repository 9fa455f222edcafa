//! The integrity queries: what does not add up right now, read live from the tables. The
//! integrity checker turns these rows into audit issues; the HTTP API serves three of them (its
//! shapes are in `api/identity.rs`).

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// An in-guild character no player owns.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrphanWowRow {
    pub id: i32,
    pub character_name: String,
    pub realm_slug: String,
    pub class_name: Option<String>,
    pub rank_name: Option<String>,
    pub level: Option<i32>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A present Discord user with a guild role and no player.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrphanDiscordRow {
    pub id: i32,
    pub discord_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub highest_guild_role: String,
}

/// A player whose highest in-game rank and Discord role disagree.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RankMismatchRow {
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
    #[sqlx(try_from = "super::Text")]
    pub ranked_link_source: super::links::StoredLinkSource,
}

/// The order rows of the checks that can return thousands of rows come back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOrder {
    /// By name, for people reading the list (the HTTP API).
    ByName,
    /// Whatever order the database finds them in: the integrity checker orders what it writes
    /// itself, and sorting 25,000 orphans by a lower-cased name in the database was a fifth of a
    /// check run.
    Any,
}

impl RowOrder {
    /// `select`, followed by `ORDER BY order_by` when the rows are for reading.
    fn sql(self, select: &str, order_by: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(match self {
            RowOrder::ByName => format!("{select} ORDER BY {order_by}"),
            RowOrder::Any => select.to_string(),
        })
    }
}

/// In-guild characters not in `player_characters` (requirements, Task 4).
pub async fn orphan_wow(db: impl PgExecutor<'_>, order: RowOrder) -> Result<Vec<OrphanWowRow>> {
    const SELECT: &str = "SELECT wc.id, wc.character_name, wc.realm_slug, c.name AS class_name,
                gr.name AS rank_name, wc.level, wc.last_login_at
         FROM guild_identity.wow_characters wc
         LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE wc.removed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                           WHERE pc.character_id = wc.id)";
    let sql = order.sql(SELECT, "lower(wc.character_name), wc.realm_slug, wc.id");
    Ok(sqlx::query_as(sql).fetch_all(db).await?)
}

/// Present Discord users with a guild role that no player holds (requirements, Task 4).
pub async fn orphan_discord(
    db: impl PgExecutor<'_>,
    order: RowOrder,
) -> Result<Vec<OrphanDiscordRow>> {
    const SELECT: &str =
        "SELECT du.id, du.discord_id, du.username, du.display_name, du.highest_guild_role
         FROM guild_identity.discord_users du
         WHERE du.is_present
           AND du.highest_guild_role IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM guild_identity.players p WHERE p.discord_user_id = du.id)";
    let sql = order.sql(
        SELECT,
        "lower(coalesce(du.display_name, du.username)), du.id",
    );
    Ok(sqlx::query_as(sql).fetch_all(db).await?)
}

/// `JOIN LATERAL … top`: a player's rank (the highest level among their in-guild characters,
/// SPEC §3 "derived, never stored twice") as `top.name` and `top.discord_role_name`. A macro so
/// that the queries stay `&'static str` literals built with `concat!`.
macro_rules! player_top_rank {
    () => {
        " JOIN LATERAL (
             SELECT gr.name, gr.discord_role_name, wc.character_name, pc.link_source
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
             WHERE pc.player_id = p.id AND wc.removed_at IS NULL
             ORDER BY gr.level DESC
             LIMIT 1
         ) top ON TRUE "
    };
}

/// Players whose highest in-game rank (by level, in-guild characters only) does not correspond
/// to their present Discord user's highest guild role. The comparison goes through
/// `guild_ranks.discord_role_name`, case-insensitively, so "Guild Leader" ↔ "GM" matches.
/// Players whose Discord user has no guild role at all are `no_guild_role`, not listed here.
pub async fn rank_mismatches(db: impl PgExecutor<'_>) -> Result<Vec<RankMismatchRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT p.id AS player_id, p.display_name, du.id AS discord_user_id,
                du.highest_guild_role AS discord_role, top.name AS ingame_rank,
                top.discord_role_name AS expected_discord_role,
                top.character_name AS ranked_character, top.link_source AS ranked_link_source
         FROM guild_identity.players p
         JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
",
        player_top_rank!(),
        "
         WHERE du.is_present
           AND du.highest_guild_role IS NOT NULL
           AND lower(du.highest_guild_role) IS DISTINCT FROM lower(top.discord_role_name)
         ORDER BY p.display_name, p.id"
    ))
    .fetch_all(db)
    .await?)
}

/// Resolve (`resolved_by = 'auto'`) the open `rank_mismatch` issues of the Discord user
/// `discord_id` whose player's rank and Discord role now agree (the same test as
/// [`rank_mismatches`]). The gateway calls it on GUILD_MEMBER_UPDATE, so a role the role sync
/// (or an officer) fixed clears its issue at once instead of at the next check.
pub async fn resolve_fixed_rank_mismatches(
    db: impl PgExecutor<'_>,
    discord_id: &str,
) -> Result<u64> {
    Ok(sqlx::query(concat!(
        "UPDATE guild_identity.audit_issues ai
         SET resolved_at = now(), resolved_by = 'auto'
         FROM guild_identity.discord_users d
         WHERE d.discord_id = $1 AND ai.discord_member_id = d.id
           AND ai.issue_type = 'rank_mismatch' AND ai.resolved_at IS NULL
           AND NOT EXISTS (
               SELECT 1
               FROM guild_identity.players p
               JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
",
        player_top_rank!(),
        "
               WHERE p.id = ai.player_id AND du.is_present
                 AND du.highest_guild_role IS NOT NULL
                 AND lower(du.highest_guild_role) IS DISTINCT FROM lower(top.discord_role_name))"
    ))
    .bind(discord_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// A linked, present Discord user with no guild role whose player holds an in-game rank.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NoGuildRoleRow {
    pub player_id: i32,
    pub display_name: String,
    pub discord_user_id: i32,
    pub username: String,
    pub discord_display_name: Option<String>,
    /// The player's highest in-game rank among in-guild characters.
    pub ingame_rank: String,
    /// The character that rank comes from, and how it was linked to the player.
    pub ranked_character: String,
    #[sqlx(try_from = "super::Text")]
    pub ranked_link_source: super::links::StoredLinkSource,
}

/// Players whose present Discord user has no guild role while one of their in-guild characters
/// has a rank.
pub async fn no_guild_role(db: impl PgExecutor<'_>) -> Result<Vec<NoGuildRoleRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT p.id AS player_id, p.display_name, du.id AS discord_user_id, du.username,
                du.display_name AS discord_display_name, top.name AS ingame_rank,
                top.character_name AS ranked_character, top.link_source AS ranked_link_source
         FROM guild_identity.players p
         JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
",
        player_top_rank!(),
        "
         WHERE du.is_present AND du.highest_guild_role IS NULL
         ORDER BY p.display_name, p.id"
    ))
    .fetch_all(db)
    .await?)
}

/// An in-guild character not seen for longer than the threshold.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StaleCharacterRow {
    pub id: i32,
    pub character_name: String,
    pub realm_slug: String,
    /// `last_login_at`, else `last_api_sync`.
    pub last_seen: DateTime<Utc>,
    /// Whether `last_seen` is a login (`true`) or the last profile fetch standing in (`false`).
    pub from_login: bool,
    /// Whole days since `last_seen`.
    pub days_ago: i64,
}

/// Unlinked in-guild characters whose last login (or, when no login time is known, last
/// successful profile fetch) is older than `threshold_days`. Characters with neither are not
/// judged. Linked characters are judged per player ([`inactive_players`], issue 19).
pub async fn stale_characters(
    db: impl PgExecutor<'_>,
    threshold_days: i32,
) -> Result<Vec<StaleCharacterRow>> {
    Ok(sqlx::query_as(
        "SELECT id, character_name, realm_slug, last_seen, from_login,
                floor(extract(epoch FROM now() - last_seen) / 86400)::bigint AS days_ago
         FROM (
             SELECT wc.id, wc.character_name, wc.realm_slug,
                    coalesce(wc.last_login_at, wc.last_api_sync) AS last_seen,
                    wc.last_login_at IS NOT NULL AS from_login
             FROM guild_identity.wow_characters_synced wc
             WHERE wc.removed_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                               WHERE pc.character_id = wc.id)
         ) c
         WHERE last_seen < now() - make_interval(days => $1)
         ORDER BY last_seen, id",
    )
    .bind(threshold_days)
    .fetch_all(db)
    .await?)
}

/// A Discord user held by more than one player.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DuplicateDiscordRow {
    pub discord_user_id: i32,
    pub username: String,
    pub display_name: Option<String>,
    pub player_ids: Vec<i32>,
    pub player_names: Vec<String>,
}

/// The requirements' duplicate query (`GROUP BY discord_user_id HAVING COUNT(*) > 1`), with
/// names. The unique constraint on `players.discord_user_id` makes it empty today; it stays as
/// the check that would catch the constraint being dropped or bypassed.
pub async fn duplicate_discord(db: impl PgExecutor<'_>) -> Result<Vec<DuplicateDiscordRow>> {
    Ok(sqlx::query_as(
        "SELECT du.id AS discord_user_id, du.username, du.display_name,
                d.player_ids, d.player_names
         FROM (
             SELECT discord_user_id, array_agg(id ORDER BY id) AS player_ids,
                    array_agg(display_name ORDER BY id) AS player_names
             FROM guild_identity.players
             WHERE discord_user_id IS NOT NULL
             GROUP BY discord_user_id
             HAVING COUNT(*) > 1
         ) d
         JOIN guild_identity.discord_users du ON du.id = d.discord_user_id
         ORDER BY du.id",
    )
    .fetch_all(db)
    .await?)
}

/// A player every one of whose in-guild characters is stale (issue 19).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InactivePlayerRow {
    pub player_id: i32,
    pub display_name: String,
    /// The latest login of any of the player's characters (in the guild or not).
    pub last_activity: Option<DateTime<Utc>>,
    pub days_ago: Option<i64>,
    /// The in-guild characters, as `Name-realm`, most recently seen first.
    pub alts: Vec<String>,
}

/// Players with at least one in-guild character, every one of which was last seen (login, else
/// last profile fetch, as for [`stale_characters`]) more than `threshold_days` ago. A character
/// with neither time is not judged, so it keeps its player from being reported.
pub async fn inactive_players(
    db: impl PgExecutor<'_>,
    threshold_days: i32,
) -> Result<Vec<InactivePlayerRow>> {
    Ok(sqlx::query_as(
        "SELECT p.id AS player_id, p.display_name, a.last_activity,
                floor(extract(epoch FROM now() - a.last_activity) / 86400)::bigint AS days_ago,
                s.alts
         FROM (
             SELECT pc.player_id,
                    array_agg(wc.character_name || '-' || wc.realm_slug
                              ORDER BY coalesce(wc.last_login_at, wc.last_api_sync) DESC, wc.id) AS alts
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters_synced wc ON wc.id = pc.character_id
             WHERE wc.removed_at IS NULL
             GROUP BY pc.player_id
             HAVING bool_and(coalesce(wc.last_login_at, wc.last_api_sync)
                             < now() - make_interval(days => $1))
         ) s
         JOIN guild_identity.players p ON p.id = s.player_id
         JOIN LATERAL (
             SELECT max(wc.last_login_at) AS last_activity
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             WHERE pc.player_id = p.id
         ) a ON TRUE
         ORDER BY a.last_activity NULLS FIRST, p.id",
    )
    .bind(threshold_days)
    .fetch_all(db)
    .await?)
}

/// A former member whose Discord account keeps a guild role (issue 19).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FormerMemberRow {
    pub player_id: i32,
    pub display_name: String,
    pub discord_user_id: i32,
    pub username: String,
    /// When the player's last character left the guild.
    pub left_at: DateTime<Utc>,
    pub roles: Vec<String>,
}

/// Players with characters, all departed, whose present Discord account still has a guild
/// role.
pub async fn former_members_with_role(db: impl PgExecutor<'_>) -> Result<Vec<FormerMemberRow>> {
    Ok(sqlx::query_as(
        "SELECT p.id AS player_id, p.display_name, du.id AS discord_user_id, du.username,
                c.left_at, du.all_guild_roles AS roles
         FROM (
             SELECT pc.player_id, max(wc.removed_at) AS left_at
             FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             GROUP BY pc.player_id
             HAVING bool_and(wc.removed_at IS NOT NULL)
         ) c
         JOIN guild_identity.players p ON p.id = c.player_id
         JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         WHERE du.is_present AND du.highest_guild_role IS NOT NULL
         ORDER BY p.id",
    )
    .fetch_all(db)
    .await?)
}
