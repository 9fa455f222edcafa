//! The `audit_issues` SQL: open issues and live manual resolutions for the checker's diff, the
//! set-based writes of a check run (UNNEST insert with `ON CONFLICT` on the partial unique
//! index, bulk update, bulk auto-resolve), and the reporter's reads and `notified_at` marks.
//! Deciding what to write is `guild_sync_core::integrity::plan_keyed`'s job, not this module's.

use anyhow::Result;
use guild_sync_core::integrity::{IssueType, KeyedFinding, Severity};
use sqlx::{PgConnection, PgExecutor};

use super::{Text, decodes_text};

/// `audit_issues.issue_type` has no CHECK constraint: a type this version does not know
/// (written by a newer version or by hand) reads as `None`, which the checker leaves alone and
/// the report lists apart, rather than failing every read.
impl From<Text> for Option<IssueType> {
    fn from(text: Text) -> Self {
        IssueType::parse(&text.0)
    }
}

// `audit_issues.severity` is constrained to the three values, so anything else is an error.
decodes_text!(Severity, "audit_issues.severity", Severity::parse);

/// Advisory-lock key serialising check runs (transaction-scoped), so a second concurrent run
/// diffs against what the first committed instead of racing it. The partial unique index
/// remains the guarantee against duplicates for any other writer.
const CHECK_LOCK_KEY: i64 = 0x0067_7363_6865_636b;

/// An unresolved issue, with whether an `auto_link_suggestion`'s cause is gone.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OpenIssueRow {
    pub id: i32,
    pub issue_hash: String,
    #[sqlx(try_from = "Text")]
    pub issue_type: Option<IssueType>,
    /// `Finding::content_hash` of the summary and details the row holds.
    pub content_hash: Option<i64>,
    pub cause_gone: bool,
}

/// Take the check-run lock for the rest of the transaction.
pub async fn lock_check_runs(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHECK_LOCK_KEY)
        .execute(conn)
        .await?;
    Ok(())
}

/// Give the rest of the transaction enough sort/hash memory for the bulk writes. With the
/// default 4 MB, the UNNEST of a first run's 25,000 new issues (several MB of summaries and
/// details) spills to temporary files; `SET LOCAL` ends with the transaction.
pub async fn size_work_memory(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(conn)
        .await?;
    Ok(())
}

/// Every unresolved issue, in no particular order (the diff does not need one, and sorting tens
/// of thousands of rows was a measurable part of a run). For `auto_link_suggestion` (written
/// by the identity engine), `cause_gone` says whether the suggestion still makes sense: the
/// character is still in the guild and unlinked, and the Discord user is still present with
/// no player — or with the very player the suggestion names (`player_id`: the engine suggests
/// a character to a user who already has a player instead of linking it).
pub async fn open_issues(db: impl PgExecutor<'_>) -> Result<Vec<OpenIssueRow>> {
    Ok(sqlx::query_as(
        "SELECT ai.id, ai.issue_hash, ai.issue_type, ai.content_hash,
                CASE WHEN ai.issue_type = 'auto_link_suggestion' THEN
                    ai.wow_character_id IS NULL OR ai.discord_member_id IS NULL
                    OR NOT EXISTS (SELECT 1 FROM guild_identity.wow_characters wc
                                   WHERE wc.id = ai.wow_character_id AND wc.removed_at IS NULL)
                    OR EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                               WHERE pc.character_id = ai.wow_character_id)
                    OR NOT EXISTS (SELECT 1 FROM guild_identity.discord_users du
                                   WHERE du.id = ai.discord_member_id AND du.is_present)
                    OR EXISTS (SELECT 1 FROM guild_identity.players p
                               WHERE p.discord_user_id = ai.discord_member_id
                                 AND p.id IS DISTINCT FROM ai.player_id)
                WHEN ai.issue_type = 'claim_conflict' THEN
                    -- The claimant's Discord account is gone, or what stood in the way is: the
                    -- manual link to the other player (for a character), or the other
                    -- player's hold on the Battle.net account (for an account).
                    ai.discord_member_id IS NULL OR ai.player_id IS NULL
                    OR CASE WHEN ai.wow_character_id IS NOT NULL THEN
                        NOT EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                                    WHERE pc.character_id = ai.wow_character_id
                                      AND pc.player_id = ai.player_id
                                      AND pc.link_source = 'manual')
                    ELSE
                        NOT EXISTS (SELECT 1 FROM guild_identity.players p
                                    WHERE p.id = ai.player_id
                                      AND p.battlenet_account_id
                                          = (ai.details->>'battlenet_account_id')::bigint)
                    END
                ELSE FALSE END AS cause_gone
         FROM guild_identity.audit_issues ai
         WHERE ai.resolved_at IS NULL",
    )
    .fetch_all(db)
    .await?)
}

/// Issues of the checker's own types resolved by hand whose cause has not been seen gone
/// since: `(id, issue_hash)`.
pub async fn live_manual_resolutions(db: impl PgExecutor<'_>) -> Result<Vec<(i32, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, issue_hash FROM guild_identity.audit_issues
         WHERE resolved_at IS NOT NULL
           AND resolved_by IS DISTINCT FROM 'auto'
           AND cause_gone_at IS NULL
           AND issue_type NOT IN ('auto_link_suggestion', 'claim_conflict')
         ORDER BY id",
    )
    .fetch_all(db)
    .await?)
}

/// Insert new issues in one statement. A concurrent writer that opened the same hash first
/// turns the insert into an update of its row (the partial unique index), so there is never a
/// second open issue per cause. Returns how many rows were written (inserted or merged).
pub async fn insert_issues(db: impl PgExecutor<'_>, rows: &[KeyedFinding]) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut types = Vec::with_capacity(rows.len());
    let mut severities = Vec::with_capacity(rows.len());
    let mut characters = Vec::with_capacity(rows.len());
    let mut discord_users = Vec::with_capacity(rows.len());
    let mut players = Vec::with_capacity(rows.len());
    let mut summaries = Vec::with_capacity(rows.len());
    let mut details = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    let mut content_hashes = Vec::with_capacity(rows.len());
    for KeyedFinding {
        hash,
        content_hash,
        finding: f,
    } in rows
    {
        types.push(f.issue_type.as_str());
        severities.push(f.issue_type.severity().as_str());
        characters.push(f.wow_character_id);
        discord_users.push(f.discord_user_id);
        players.push(f.player_id);
        summaries.push(f.summary.as_str());
        details.push(f.details.as_str());
        hashes.push(hash.as_str());
        content_hashes.push(*content_hash);
    }
    Ok(sqlx::query(
        "INSERT INTO guild_identity.audit_issues
             (issue_type, severity, wow_character_id, discord_member_id, player_id,
              summary, details, issue_hash, content_hash)
         SELECT t, s, w, d, p, sm, dt::jsonb, h, ch
         FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int4[], $5::int4[],
                     $6::text[], $7::text[], $8::text[], $9::int8[])
              AS u (t, s, w, d, p, sm, dt, h, ch)
         ON CONFLICT (issue_hash) WHERE resolved_at IS NULL
         DO UPDATE SET summary = EXCLUDED.summary, details = EXCLUDED.details,
                       severity = EXCLUDED.severity, content_hash = EXCLUDED.content_hash",
    )
    .bind(&types)
    .bind(&severities)
    .bind(&characters)
    .bind(&discord_users)
    .bind(&players)
    .bind(&summaries)
    .bind(&details)
    .bind(&hashes)
    .bind(&content_hashes)
    .execute(db)
    .await?
    .rows_affected())
}

/// Refresh the summary and details of open issues: `(issue id, finding)`.
pub async fn update_open_issues(
    db: impl PgExecutor<'_>,
    rows: &[(i32, KeyedFinding)],
) -> Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i32> = rows.iter().map(|(id, _)| *id).collect();
    let summaries: Vec<&str> = rows
        .iter()
        .map(|(_, k)| k.finding.summary.as_str())
        .collect();
    let details: Vec<&str> = rows
        .iter()
        .map(|(_, k)| k.finding.details.as_str())
        .collect();
    let content_hashes: Vec<i64> = rows.iter().map(|(_, k)| k.content_hash).collect();
    Ok(sqlx::query(
        "UPDATE guild_identity.audit_issues ai
         SET summary = u.sm, details = u.dt::jsonb, content_hash = u.ch
         FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::int8[]) AS u (id, sm, dt, ch)
         WHERE ai.id = u.id AND ai.resolved_at IS NULL",
    )
    .bind(&ids)
    .bind(&summaries)
    .bind(&details)
    .bind(&content_hashes)
    .execute(db)
    .await?
    .rows_affected())
}

/// Resolve open issues whose cause is gone (`resolved_by = 'auto'`).
pub async fn resolve_auto(db: impl PgExecutor<'_>, ids: &[i32]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE guild_identity.audit_issues
         SET resolved_at = now(), resolved_by = 'auto'
         WHERE id = ANY($1) AND resolved_at IS NULL",
    )
    .bind(ids)
    .execute(db)
    .await?
    .rows_affected())
}

/// Mark manual resolutions whose cause is gone as spent (`cause_gone_at`).
pub async fn spend_manual_resolutions(db: impl PgExecutor<'_>, ids: &[i32]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE guild_identity.audit_issues SET cause_gone_at = now()
         WHERE id = ANY($1) AND cause_gone_at IS NULL",
    )
    .bind(ids)
    .execute(db)
    .await?
    .rows_affected())
}

/// An unresolved issue with the current names of what it involves.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReportIssueRow {
    pub id: i32,
    #[sqlx(try_from = "Text")]
    pub issue_type: Option<IssueType>,
    #[sqlx(try_from = "Text")]
    pub severity: Severity,
    pub summary: String,
    pub reason: Option<String>,
    pub character_name: Option<String>,
    pub realm_slug: Option<String>,
    pub discord_username: Option<String>,
    pub discord_display_name: Option<String>,
    pub player_name: Option<String>,
}

/// Unresolved issues not yet notified (all unresolved ones with `all_unresolved`), oldest
/// first, with display names JOINed from `wow_characters`, `discord_users` and `players`.
pub async fn report_issues(
    db: impl PgExecutor<'_>,
    all_unresolved: bool,
) -> Result<Vec<ReportIssueRow>> {
    Ok(sqlx::query_as(
        "SELECT ai.id, ai.issue_type, ai.severity, ai.summary, ai.details ->> 'reason' AS reason,
                wc.character_name, wc.realm_slug, du.username AS discord_username,
                du.display_name AS discord_display_name, p.display_name AS player_name
         FROM guild_identity.audit_issues ai
         LEFT JOIN guild_identity.wow_characters wc ON wc.id = ai.wow_character_id
         LEFT JOIN guild_identity.discord_users du ON du.id = ai.discord_member_id
         LEFT JOIN guild_identity.players p ON p.id = ai.player_id
         WHERE ai.resolved_at IS NULL AND ($1 OR ai.notified_at IS NULL)
         ORDER BY ai.created_at, ai.id",
    )
    .bind(all_unresolved)
    .fetch_all(db)
    .await?)
}

/// Mark issues notified (keeping the first notification time of ones sent before).
pub async fn mark_notified(db: impl PgExecutor<'_>, ids: &[i32]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE guild_identity.audit_issues SET notified_at = coalesce(notified_at, now())
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(db)
    .await?
    .rows_affected())
}

/// Open (unresolved) issues per stored issue type, for the `/metrics` gauge.
pub async fn open_counts_by_type(db: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT issue_type, count(*) FROM guild_identity.audit_issues
         WHERE resolved_at IS NULL GROUP BY issue_type ORDER BY issue_type",
    )
    .fetch_all(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_types_this_version_does_not_know_read_as_none_and_severities_must_be_known() {
        for t in IssueType::ALL {
            assert_eq!(Option::<IssueType>::from(Text(t.as_str().into())), Some(t));
        }
        assert_eq!(Option::<IssueType>::from(Text("member_claim".into())), None);
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::try_from(Text(s.as_str().into())), Ok(s));
        }
        let err = Severity::try_from(Text("fatal".into())).expect_err("unknown severity");
        assert_eq!(
            err.to_string(),
            "unknown audit_issues.severity \"fatal\" in the database"
        );
    }
}
