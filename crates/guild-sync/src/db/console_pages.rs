//! The officer console pages' own SQL (`crate::web`), beside [`super::console`] (the review
//! API's, which the pages also use): the bounded reads each dashboard page shows and the marks a
//! hand-made link leaves. The officers' decisions (resolve, accept, dismiss, set main, with their
//! `officer_actions` rows) are `db::console`'s. Every read is one query with a `LIMIT`, so a page
//! costs about the same at 50,000 members as at 150. Nothing here decides policy.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use guild_sync_core::integrity::{IssueType, Severity};
use sqlx::PgExecutor;

use super::Text;
use super::characters::CharacterCard;
use super::sync_log::SyncLogRow;

/// Open issues per type.
pub async fn open_issue_counts(db: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT issue_type, count(*) FROM guild_identity.audit_issues
         WHERE resolved_at IS NULL GROUP BY issue_type ORDER BY issue_type",
    )
    .fetch_all(db)
    .await
    .context("cannot count open issues")
}

/// Runs newest first, one page of `limit` from `offset`.
pub async fn recent_runs(
    db: impl PgExecutor<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<SyncLogRow>> {
    sqlx::query_as(
        "SELECT * FROM guild_identity.sync_log ORDER BY started_at DESC, id DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
    .context("cannot read sync_log")
}

/// One audit issue as the Issues page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueRow {
    pub id: i32,
    #[sqlx(try_from = "Text")]
    pub issue_type: IssueType,
    #[sqlx(try_from = "Text")]
    pub severity: Severity,
    pub summary: String,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
}

/// Which issues a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueState {
    Open,
    Resolved,
    All,
}

/// Issues newest first, optionally of one type; one page of `limit` from `offset`.
pub async fn issues(
    db: impl PgExecutor<'_>,
    issue_type: Option<&str>,
    state: IssueState,
    limit: i64,
    offset: i64,
) -> Result<Vec<IssueRow>> {
    sqlx::query_as(
        "SELECT id, issue_type, severity, summary, created_at, resolved_at, resolved_by,
                resolution_note
         FROM guild_identity.audit_issues
         WHERE ($1::text IS NULL OR issue_type = $1)
           AND CASE $2 WHEN 'open' THEN resolved_at IS NULL
                       WHEN 'resolved' THEN resolved_at IS NOT NULL ELSE TRUE END
         ORDER BY id DESC LIMIT $3 OFFSET $4",
    )
    .bind(issue_type)
    .bind(match state {
        IssueState::Open => "open",
        IssueState::Resolved => "resolved",
        IssueState::All => "all",
    })
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
    .context("cannot list audit issues")
}

/// An open link suggestion with both sides' evidence.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SuggestionRow {
    pub id: i32,
    pub summary: String,
    pub score: Option<f64>,
    pub kind: Option<String>,
    pub character_id: i32,
    #[sqlx(flatten)]
    pub character: CharacterCard,
    pub note: Option<String>,
    pub officer_note: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub discord_user_id: i32,
    pub username: String,
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    pub joined_at: Option<DateTime<Utc>>,
}

/// The select every suggestion read shares; a macro so each query stays one literal string.
macro_rules! suggestion_select {
    () => {
        "
    SELECT a.id, a.summary, (a.details->>'score')::float8 AS score, a.details->>'kind' AS kind,
           wc.id AS character_id, wc.character_name, wc.realm_slug,
           c.name AS class_name, c.color_hex AS class_color, gr.name AS rank_name, wc.level,
           wc.addon_note AS note, wc.addon_officer_note AS officer_note, wc.last_login_at,
           du.id AS discord_user_id, du.username, du.display_name,
           du.all_guild_roles AS roles, du.joined_server_at AS joined_at
    FROM guild_identity.audit_issues a
    JOIN guild_identity.wow_characters wc ON wc.id = a.wow_character_id
    JOIN guild_identity.discord_users du ON du.id = a.discord_member_id
    LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
    LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
    WHERE a.issue_type = 'auto_link_suggestion' AND a.resolved_at IS NULL"
    };
}

/// The open suggestion after `after` (by id; `None`: the first), and how many are open.
pub async fn next_suggestion(
    db: impl PgExecutor<'_> + Copy,
    after: Option<i32>,
) -> Result<(Option<SuggestionRow>, i64)> {
    let row = sqlx::query_as(concat!(
        suggestion_select!(),
        " AND a.id > $1 ORDER BY a.id LIMIT 1"
    ))
    .bind(after.unwrap_or(0))
    .fetch_optional(db)
    .await
    .context("cannot read the next suggestion")?;
    let open = sqlx::query_scalar(
        "SELECT count(*) FROM guild_identity.audit_issues
         WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL",
    )
    .fetch_one(db)
    .await
    .context("cannot count suggestions")?;
    Ok((row, open))
}

/// Which side of a suggestion [`suggestions_naming`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestionSide {
    /// `wow_characters.id`s.
    Characters,
    /// `discord_users.id`s.
    DiscordUsers,
}

/// The open suggestions naming any of `ids` on `side` (the Unclaimed page's candidates), best
/// score first.
pub async fn suggestions_naming(
    db: impl PgExecutor<'_>,
    side: SuggestionSide,
    ids: &[i32],
) -> Result<Vec<SuggestionRow>> {
    let sql = match side {
        SuggestionSide::Characters => concat!(
            suggestion_select!(),
            " AND a.wow_character_id = ANY($1)
             ORDER BY (a.details->>'score')::float8 DESC NULLS LAST, a.id"
        ),
        SuggestionSide::DiscordUsers => concat!(
            suggestion_select!(),
            " AND a.discord_member_id = ANY($1)
             ORDER BY (a.details->>'score')::float8 DESC NULLS LAST, a.id"
        ),
    };
    sqlx::query_as(sql)
        .bind(ids)
        .fetch_all(db)
        .await
        .context("cannot read candidates")
}

/// A character in the guild that no player has.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnclaimedCharacter {
    pub id: i32,
    #[sqlx(flatten)]
    pub character: CharacterCard,
}

/// Unclaimed characters, those with a candidate first, then by name; one page.
pub async fn unclaimed_characters(
    db: impl PgExecutor<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<UnclaimedCharacter>> {
    sqlx::query_as(
        "SELECT wc.id, wc.character_name, wc.realm_slug, c.name AS class_name,
                c.color_hex AS class_color, gr.name AS rank_name, wc.level
         FROM guild_identity.wow_characters wc
         LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE wc.removed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                           WHERE pc.character_id = wc.id)
         ORDER BY EXISTS (SELECT 1 FROM guild_identity.audit_issues a
                          WHERE a.wow_character_id = wc.id AND a.resolved_at IS NULL
                            AND a.issue_type = 'auto_link_suggestion') DESC,
                  lower(wc.character_name), wc.realm_slug, wc.id LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
    .context("cannot list unclaimed characters")
}

/// A present Discord member that no player has.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnclaimedMember {
    pub id: i32,
    pub username: String,
    pub display_name: Option<String>,
    pub highest_guild_role: Option<String>,
}

/// Unclaimed members, those with a guild role first (the ones the audit asks about), then by
/// name; one page. (Not "with a candidate first" as for characters: an EXISTS per member over
/// 50,000 members cost the page seconds.) The order is exactly that of the partial index
/// `discord_users_unclaimed_order_idx` (migration 1480), so a page is an index scan that stops
/// after `limit + offset` rows instead of a sort of every present member: keep the two alike.
pub async fn unclaimed_members(
    db: impl PgExecutor<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<UnclaimedMember>> {
    sqlx::query_as(
        "SELECT du.id, du.username, du.display_name, du.highest_guild_role
         FROM guild_identity.discord_users du
         WHERE du.is_present
           AND NOT EXISTS (SELECT 1 FROM guild_identity.players p WHERE p.discord_user_id = du.id)
         ORDER BY du.highest_guild_role IS NULL, lower(du.username), du.id LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
    .context("cannot list unclaimed members")
}

/// A player as the Players list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlayerListRow {
    pub id: i32,
    pub display_name: String,
    pub discord_username: Option<String>,
    pub characters: i64,
}

/// Players whose name, Discord name or a character's name contains `q` (case-insensitive),
/// by name; one page.
///
/// The Discord user is read in correlated scalar subqueries (a primary-key lookup per player),
/// as in [`super::console::players_page`]: with a `LEFT JOIN` the planner hashed the players
/// and scanned all 50,000 members on every search (EXPLAIN ANALYZE at 1,000 characters ×
/// 50,000 members, `q = char12`: 15.8 ms → 1.5 ms).
pub async fn search_players(
    db: impl PgExecutor<'_>,
    q: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<PlayerListRow>> {
    sqlx::query_as(
        "SELECT p.id, p.display_name,
                (SELECT du.username FROM guild_identity.discord_users du
                 WHERE du.id = p.discord_user_id) AS discord_username,
                (SELECT count(*) FROM guild_identity.player_characters pc
                 WHERE pc.player_id = p.id) AS characters
         FROM guild_identity.players p
         WHERE $1::text IS NULL
            OR strpos(lower(p.display_name), lower($1)) > 0
            OR (SELECT strpos(lower(du.username), lower($1)) > 0
                       OR strpos(lower(COALESCE(du.display_name, '')), lower($1)) > 0
                FROM guild_identity.discord_users du WHERE du.id = p.discord_user_id)
            OR EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                       JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
                       WHERE pc.player_id = p.id
                         AND strpos(lower(wc.character_name), lower($1)) > 0)
         ORDER BY lower(p.display_name), p.id LIMIT $2 OFFSET $3",
    )
    .bind(q)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
    .context("cannot search players")
}

/// A player's own row and Discord account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlayerHead {
    pub id: i32,
    pub display_name: String,
    pub main_character_id: Option<i32>,
    pub discord_username: Option<String>,
    pub discord_display_name: Option<String>,
    pub discord_roles: Option<Vec<String>>,
}

/// One linked character of a player with its link.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlayerCharacterRow {
    pub link_id: i32,
    pub character_id: i32,
    #[sqlx(flatten)]
    pub character: CharacterCard,
    pub last_login_at: Option<DateTime<Utc>>,
    pub in_guild: bool,
    #[sqlx(try_from = "super::Text")]
    pub link_source: super::links::StoredLinkSource,
    #[sqlx(try_from = "super::Text")]
    pub confidence: super::links::StoredConfidence,
    pub evidence: serde_json::Value,
}

/// A player and its characters (the alt tree), or `None`.
pub async fn player(
    db: impl PgExecutor<'_> + Copy,
    id: i32,
) -> Result<Option<(PlayerHead, Vec<PlayerCharacterRow>)>> {
    let head: Option<PlayerHead> = sqlx::query_as(
        "SELECT p.id, p.display_name, p.main_character_id, du.username AS discord_username,
                du.display_name AS discord_display_name, du.all_guild_roles AS discord_roles
         FROM guild_identity.players p
         LEFT JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         WHERE p.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
    .context("cannot read the player")?;
    let Some(head) = head else {
        return Ok(None);
    };
    let characters = sqlx::query_as(
        "SELECT pc.id AS link_id, wc.id AS character_id, wc.character_name,
                wc.realm_slug, c.name AS class_name, c.color_hex AS class_color,
                gr.name AS rank_name, wc.level, wc.last_login_at, wc.removed_at IS NULL AS in_guild,
                pc.link_source, pc.confidence, pc.evidence
         FROM guild_identity.player_characters pc
         JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
         LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE pc.player_id = $1
         ORDER BY wc.id = $2 DESC, lower(wc.character_name), wc.id",
    )
    .bind(id)
    .bind(head.main_character_id.unwrap_or(0))
    .fetch_all(db)
    .await
    .context("cannot read the player's characters")?;
    Ok(Some((head, characters)))
}

/// Mark a link an officer made by hand.
pub async fn record_manual_link(db: impl PgExecutor<'_>, link_id: i32, by: &str) -> Result<()> {
    sqlx::query(
        "UPDATE guild_identity.player_characters
         SET evidence = evidence || jsonb_build_object('accepted_by', $2::text, 'accepted_at', now())
         WHERE id = $1",
    )
    .bind(link_id)
    .bind(by)
    .execute(db)
    .await
    .context("cannot record the officer on the link")?;
    Ok(())
}

/// Resolve every open suggestion naming a character an officer has just linked by hand.
pub async fn resolve_suggestions_for_character(
    db: impl PgExecutor<'_>,
    character_id: i32,
    by: &str,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE guild_identity.audit_issues
         SET resolved_at = now(), resolved_by = $2,
             resolution_note = 'linked by hand from the Unclaimed page'
         WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL
           AND wow_character_id = $1",
    )
    .bind(character_id)
    .bind(by)
    .execute(db)
    .await
    .context("cannot resolve the character's suggestions")?;
    Ok(done.rows_affected())
}
