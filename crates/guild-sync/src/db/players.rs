//! Players and their links, as the identity engine reads and writes them: the matching snapshot
//! (unlinked characters, present Discord users, players with their characters) and the
//! set-based writes that apply a match plan. Policy lives in `guild_sync_core::matching`.

use anyhow::{Context, Result};
use sqlx::PgExecutor;

use super::member_events::{EventSource, link_events_sql};

/// An in-guild character that no player owns.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnlinkedCharacterRow {
    pub id: i32,
    pub character_name: String,
    pub realm_slug: String,
    pub addon_note: Option<String>,
    pub addon_officer_note: Option<String>,
    /// `common.guild_ranks.level` of the character's rank, if mapped.
    pub rank_level: Option<i32>,
}

/// A present Discord user, with the player holding it (if any).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PresentDiscordUserRow {
    pub id: i32,
    pub username: String,
    pub display_name: Option<String>,
    pub global_name: Option<String>,
    pub has_guild_role: bool,
    pub player_id: Option<i32>,
}

/// A player with the characters it owns (parallel arrays).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlayerWithCharactersRow {
    pub id: i32,
    pub discord_user_id: Option<i32>,
    pub character_ids: Vec<i32>,
    pub character_names: Vec<String>,
    pub realm_slugs: Vec<String>,
}

/// Lock the link tables against concurrent writers (the HTTP API's manual links) until the
/// transaction ends, so the snapshot the plan is made from is still true when it is applied.
/// Readers are not blocked.
pub async fn lock_for_matching(db: impl PgExecutor<'_>) -> Result<()> {
    sqlx::query(
        "LOCK TABLE guild_identity.players, guild_identity.player_characters
         IN SHARE ROW EXCLUSIVE MODE",
    )
    .execute(db)
    .await
    .context("cannot lock players and player_characters")?;
    Ok(())
}

/// In-guild characters not in `player_characters` (requirements Task 3, step 1).
pub async fn unlinked_characters(db: impl PgExecutor<'_>) -> Result<Vec<UnlinkedCharacterRow>> {
    sqlx::query_as(
        "SELECT wc.id, wc.character_name, wc.realm_slug, wc.addon_note, wc.addon_officer_note,
                gr.level AS rank_level
         FROM guild_identity.wow_characters wc
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE wc.removed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                           WHERE pc.character_id = wc.id)
         ORDER BY wc.id",
    )
    .fetch_all(db)
    .await
    .context("cannot load unlinked characters")
}

/// Every present Discord user with its player, if any.
pub async fn present_discord_users(db: impl PgExecutor<'_>) -> Result<Vec<PresentDiscordUserRow>> {
    sqlx::query_as(
        "SELECT du.id, du.username, du.display_name, du.global_name,
                du.highest_guild_role IS NOT NULL AS has_guild_role, p.id AS player_id
         FROM guild_identity.discord_users du
         LEFT JOIN guild_identity.players p ON p.discord_user_id = du.id
         WHERE du.is_present
         ORDER BY du.id",
    )
    .fetch_all(db)
    .await
    .context("cannot load present Discord users")
}

/// Every player with the names of the characters it owns (in the guild or not: an alt note may
/// name a main that left).
pub async fn players_with_characters(
    db: impl PgExecutor<'_>,
) -> Result<Vec<PlayerWithCharactersRow>> {
    sqlx::query_as(
        "SELECT p.id, p.discord_user_id,
                coalesce(array_agg(wc.id ORDER BY wc.id) FILTER (WHERE wc.id IS NOT NULL), '{}')
                    AS character_ids,
                coalesce(array_agg(wc.character_name ORDER BY wc.id)
                    FILTER (WHERE wc.id IS NOT NULL), '{}') AS character_names,
                coalesce(array_agg(wc.realm_slug ORDER BY wc.id)
                    FILTER (WHERE wc.id IS NOT NULL), '{}') AS realm_slugs
         FROM guild_identity.players p
         LEFT JOIN guild_identity.player_characters pc ON pc.player_id = p.id
         LEFT JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
         GROUP BY p.id
         ORDER BY p.id",
    )
    .fetch_all(db)
    .await
    .context("cannot load players and their characters")
}

/// Set a Discord user on players that have none; returns how many were set. A player that got
/// one meanwhile is left alone.
pub async fn attach_discord_users(
    db: impl PgExecutor<'_>,
    player_ids: &[i32],
    discord_user_ids: &[i32],
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE guild_identity.players p SET discord_user_id = t.discord_user_id
         FROM UNNEST($1::int4[], $2::int4[]) AS t(player_id, discord_user_id)
         WHERE p.id = t.player_id AND p.discord_user_id IS NULL",
    )
    .bind(player_ids)
    .bind(discord_user_ids)
    .execute(db)
    .await
    .context("cannot attach Discord users to players")?;
    Ok(done.rows_affected())
}

/// Create players; returns their ids in input order. Ids are drawn from the sequence first and
/// inserted explicitly, so each returned id is tied to its input row by the ordinal, not by the
/// order PostgreSQL happens to return rows in.
pub async fn create_players(
    db: impl PgExecutor<'_>,
    display_names: &[String],
    discord_user_ids: &[Option<i32>],
) -> Result<Vec<i32>> {
    let rows: Vec<(i64, i32)> = sqlx::query_as(
        "WITH input AS MATERIALIZED (
             SELECT t.ord, t.display_name, t.discord_user_id,
                    nextval(pg_get_serial_sequence('guild_identity.players', 'id'))::int4 AS id
             FROM UNNEST($1::text[], $2::int4[]) WITH ORDINALITY
                  AS t(display_name, discord_user_id, ord)
         ), created AS (
             INSERT INTO guild_identity.players (id, display_name, discord_user_id)
             SELECT id, display_name, discord_user_id FROM input
             RETURNING id
         )
         SELECT input.ord, created.id FROM created JOIN input USING (id) ORDER BY input.ord",
    )
    .bind(display_names)
    .bind(discord_user_ids)
    .fetch_all(db)
    .await
    .context("cannot create players")?;
    anyhow::ensure!(
        rows.len() == display_names.len()
            && rows
                .iter()
                .enumerate()
                .all(|(i, (ord, _))| *ord == i as i64 + 1),
        "creating {} players returned {} rows",
        display_names.len(),
        rows.len()
    );
    Ok(rows.into_iter().map(|(_, id)| id).collect())
}

/// One link to write.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub player_id: i32,
    pub character_id: i32,
    pub link_source: &'static str,
    pub confidence: &'static str,
    pub evidence: serde_json::Value,
}

/// Insert links, each with its `linked` event in the same statement; returns how many were
/// written. A character that already has a link keeps it (the engine never moves a link), and
/// is neither counted nor given an event.
pub async fn insert_links(
    db: impl PgExecutor<'_>,
    links: &[NewLink],
    source: EventSource,
) -> Result<u64> {
    let player_ids: Vec<i32> = links.iter().map(|l| l.player_id).collect();
    let character_ids: Vec<i32> = links.iter().map(|l| l.character_id).collect();
    let sources: Vec<&str> = links.iter().map(|l| l.link_source).collect();
    let confidences: Vec<&str> = links.iter().map(|l| l.confidence).collect();
    let evidence: Vec<serde_json::Value> = links.iter().map(|l| l.evidence.clone()).collect();
    let inserted: i64 = sqlx::query_scalar(concat!(
        "WITH inserted AS (
             INSERT INTO guild_identity.player_characters
                 (player_id, character_id, link_source, confidence, evidence)
             SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::text[], $4::text[], $5::jsonb[])
             ON CONFLICT (character_id) DO NOTHING
             RETURNING player_id, character_id, link_source, confidence
         ), changes AS (
             SELECT 'linked' AS event_type, player_id, character_id, NULL::jsonb AS before,
                    jsonb_build_object('link_source', link_source, 'confidence', confidence)
                        AS after
             FROM inserted
         ), ",
        link_events_sql!("changes", 6, 7),
        "
         SELECT count(*) FROM inserted"
    ))
    .bind(player_ids)
    .bind(character_ids)
    .bind(sources)
    .bind(confidences)
    .bind(evidence)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .fetch_one(db)
    .await
    .context("cannot insert player_characters links")?;
    Ok(inserted as u64)
}

/// One `auto_link_suggestion` to record.
#[derive(Debug, Clone)]
pub struct NewSuggestion {
    pub issue_hash: String,
    pub character_id: i32,
    pub discord_user_id: i32,
    /// The player the Discord user already has, when the suggestion names it.
    pub player_id: Option<i32>,
    pub summary: String,
    pub details: serde_json::Value,
}

/// Record suggestions as open `auto_link_suggestion` audit issues: an open issue with the same
/// hash is updated, not duplicated (the partial unique index); a suggestion an officer resolved
/// by hand (`resolved_by` other than `auto`), or a pair an officer dismissed
/// (`dismissed_suggestions`), is not raised again. Returns how many issues were
/// newly opened (updates of open ones are not counted).
pub async fn upsert_suggestions(
    db: impl PgExecutor<'_>,
    suggestions: &[NewSuggestion],
) -> Result<u64> {
    let hashes: Vec<&str> = suggestions.iter().map(|s| s.issue_hash.as_str()).collect();
    let character_ids: Vec<i32> = suggestions.iter().map(|s| s.character_id).collect();
    let user_ids: Vec<i32> = suggestions.iter().map(|s| s.discord_user_id).collect();
    let summaries: Vec<&str> = suggestions.iter().map(|s| s.summary.as_str()).collect();
    let details: Vec<serde_json::Value> = suggestions.iter().map(|s| s.details.clone()).collect();
    let player_ids: Vec<Option<i32>> = suggestions.iter().map(|s| s.player_id).collect();
    let inserted: Vec<bool> = sqlx::query_scalar(
        "INSERT INTO guild_identity.audit_issues
             (issue_type, severity, issue_hash, wow_character_id, discord_member_id, summary,
              details, player_id)
         SELECT 'auto_link_suggestion', 'info', t.issue_hash, t.character_id, t.discord_user_id,
                t.summary, t.details, t.player_id
         FROM UNNEST($1::text[], $2::int4[], $3::int4[], $4::text[], $5::jsonb[], $6::int4[])
              AS t(issue_hash, character_id, discord_user_id, summary, details, player_id)
         WHERE NOT EXISTS (
             SELECT 1 FROM guild_identity.audit_issues a
             WHERE a.issue_hash = t.issue_hash AND a.resolved_at IS NOT NULL
               AND a.resolved_by IS DISTINCT FROM 'auto')
           AND NOT EXISTS (
             SELECT 1 FROM guild_identity.dismissed_suggestions ds
             WHERE ds.wow_character_id = t.character_id
               AND ds.discord_user_id = t.discord_user_id)
         ON CONFLICT (issue_hash) WHERE resolved_at IS NULL
         DO UPDATE SET summary = EXCLUDED.summary, details = EXCLUDED.details,
                       player_id = EXCLUDED.player_id
         RETURNING xmax = 0",
    )
    .bind(hashes)
    .bind(character_ids)
    .bind(user_ids)
    .bind(summaries)
    .bind(details)
    .bind(player_ids)
    .fetch_all(db)
    .await
    .context("cannot record auto_link_suggestion issues")?;
    Ok(inserted.into_iter().filter(|&new| new).count() as u64)
}
