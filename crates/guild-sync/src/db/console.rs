//! The officer console's SQL (issue 16): the review lists (audit issues, suggestions, players,
//! officer actions) paged in the database, the officers' decisions (resolve, reopen, accept,
//! dismiss, set main) each in one transaction together with its `officer_actions` row, the
//! data version behind the lists' ETags, and the rows candidate ranking reads. The JSON API
//! (`api/`) and the HTML console (`web/`) both call these functions; neither writes SQL.

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use guild_sync_core::integrity::{IssueType, Severity};
use serde_json::json;
use sqlx::{AssertSqlSafe, PgConnection, PgExecutor, PgPool};

use super::api::{LinkError, Linked, ManualLink, link_character_in};
use super::characters::CharacterCard;
use super::{Text, decodes_text};

// Strict where the checker's own reads (`db::audit_issues`) are lenient: those must go on past a
// type a newer version wrote, while a list an officer reads should say what it cannot show.
decodes_text!(IssueType, "audit_issues.issue_type", IssueType::parse);

guild_sync_core::text_enum! {
    /// What an officer (or a member's claim) did, as stored in `officer_actions.action`.
    pub enum OfficerAction {
        ResolveIssue = "resolve_issue",
        ReopenIssue = "reopen_issue",
        AcceptSuggestion = "accept_suggestion",
        DismissSuggestion = "dismiss_suggestion",
        SetMain = "set_main",
        Link = "link",
        Unlink = "unlink",
        /// Written by `db::claims` (as text, in its batch statement).
        ClaimLink = "claim_link",
        ClaimMove = "claim_move",
        ClaimUnlink = "claim_unlink",
    }
}

decodes_text!(
    OfficerAction,
    "officer_actions.action",
    OfficerAction::parse
);

/// Why a console action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// An id that does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The row is not in a state the action applies to (409).
    #[error("{0}")]
    Conflict(String),
    /// The request names rows that do not belong together (422).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(err: sqlx::Error) -> Self {
        match err.as_database_error().and_then(|e| e.code()).as_deref() {
            Some("23505") => ConsoleError::Conflict(
                "another row for the same cause or pair exists (changed meanwhile)".into(),
            ),
            Some("23503") => {
                ConsoleError::Conflict("a row the action refers to was deleted meanwhile".into())
            }
            _ => ConsoleError::Database(anyhow!(err).context("a console query failed")),
        }
    }
}

impl From<LinkError> for ConsoleError {
    fn from(err: LinkError) -> Self {
        match err {
            LinkError::NotFound(m) => ConsoleError::NotFound(m),
            LinkError::Conflict(m) => ConsoleError::Conflict(m),
            LinkError::Database(e) => ConsoleError::Database(e),
        }
    }
}

/// A page request: 1-based page, rows per page (the caller bounds both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
}

impl Page {
    fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

/// `%q%` for ILIKE with the user's `%`, `_` and `\` taken literally; `None` for no search.
fn like_pattern(q: Option<&str>) -> Option<String> {
    let q = q.map(str::trim).filter(|q| !q.is_empty())?;
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Some(pattern)
}

/// The data version: bumped by a statement-level trigger on every statement that changes a
/// table the console lists read (migration 1000). Equal versions mean equal list answers.
pub async fn data_version(db: impl PgExecutor<'_>) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT version FROM guild_identity.data_version")
            .fetch_one(db)
            .await?,
    )
}

/// The data version with its database's identity: a key that changes whenever a list's answer
/// may, and never repeats across databases, for caches that outlive one request. A process can
/// talk to several databases whose counters run alike (tests clone one migrated template), so
/// the version alone is not enough; a column default would be cloned with the template, so the
/// identity is the database's OID (new for every `CREATE DATABASE`) and the server's start time
/// (another cluster, or a restart).
pub async fn data_stamp(db: impl PgExecutor<'_>) -> anyhow::Result<(String, i64)> {
    Ok(sqlx::query_as(
        "SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::text
                || '@' || pg_postmaster_start_time()::text,
                version
         FROM guild_identity.data_version",
    )
    .fetch_one(db)
    .await?)
}

/// Record one officer action in the caller's transaction.
pub async fn record_action(
    db: impl PgExecutor<'_>,
    officer: &str,
    action: OfficerAction,
    target: &str,
    player_id: Option<i32>,
    note: Option<&str>,
    details: serde_json::Value,
) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO guild_identity.officer_actions (officer, action, target, player_id, note, details)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(officer)
    .bind(action.as_str())
    .bind(target)
    .bind(player_id)
    .bind(note)
    .bind(details)
    .fetch_one(db)
    .await?)
}

/// Which issues a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssueState {
    #[default]
    Open,
    Resolved,
    All,
}

/// The issues list's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueFilter {
    pub issue_type: Option<IssueType>,
    pub state: IssueState,
    /// Searched in the summary and the names involved.
    pub q: Option<String>,
}

/// An audit issue with the current names of what it involves.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IssueRow {
    pub id: i32,
    #[sqlx(try_from = "Text")]
    pub issue_type: IssueType,
    #[sqlx(try_from = "Text")]
    pub severity: Severity,
    pub summary: String,
    pub details: serde_json::Value,
    pub wow_character_id: Option<i32>,
    pub character_name: Option<String>,
    pub realm_slug: Option<String>,
    pub discord_user_id: Option<i32>,
    pub discord_username: Option<String>,
    pub discord_display_name: Option<String>,
    pub player_id: Option<i32>,
    pub player_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
}

/// How many issues of one type match the state and search (whatever the type filter).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TypeCount {
    #[sqlx(try_from = "Text")]
    pub issue_type: IssueType,
    pub count: i64,
}

/// A page of issues.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuePage {
    /// Issues matching the whole filter.
    pub total: i64,
    pub counts: Vec<TypeCount>,
    pub issues: Vec<IssueRow>,
}

const ISSUE_JOINS: &str = "
    LEFT JOIN guild_identity.wow_characters wc ON wc.id = ai.wow_character_id
    LEFT JOIN guild_identity.discord_users du ON du.id = ai.discord_member_id
    LEFT JOIN guild_identity.players p ON p.id = ai.player_id";

const ISSUE_SELECT: &str = "SELECT ai.id, ai.issue_type, ai.severity, ai.summary, ai.details,
        ai.wow_character_id, wc.character_name, wc.realm_slug,
        ai.discord_member_id AS discord_user_id, du.username AS discord_username,
        du.display_name AS discord_display_name, ai.player_id, p.display_name AS player_name,
        ai.created_at, ai.resolved_at, ai.resolved_by, ai.resolution_note
    FROM guild_identity.audit_issues ai";

/// The search over `ai` and [`ISSUE_JOINS`] ($1 pattern).
const ISSUE_SEARCH: &str = " AND (ai.summary ILIKE $1 OR wc.character_name ILIKE $1
           OR du.username ILIKE $1 OR du.display_name ILIKE $1 OR p.display_name ILIKE $1)";

/// Issues newest first, with counts per type.
///
/// Each filter present adds its own condition to the SQL (`$1` pattern, `$2` type, always
/// bound), instead of one statement with `$n IS NULL OR …` for every filter: after five runs
/// PostgreSQL plans a prepared statement once for any value, and that generic plan could use no
/// index, hashing every issue with its names per request (EXPLAIN ANALYZE at 1,000 characters ×
/// 50,000 members: 1.7 ms for a page of 50, against 0.3 ms walking the newest-first index). The
/// counts join the names only to search them.
pub async fn list_issues(
    db: &PgPool,
    filter: &IssueFilter,
    page: Page,
) -> anyhow::Result<IssuePage> {
    let state = match filter.state {
        IssueState::Open => "ai.resolved_at IS NULL",
        IssueState::Resolved => "ai.resolved_at IS NOT NULL",
        IssueState::All => "TRUE",
    };
    let pattern = like_pattern(filter.q.as_deref());
    let (joins, search) = match pattern {
        Some(_) => (ISSUE_JOINS, ISSUE_SEARCH),
        None => ("", ""),
    };
    let of_type = match filter.issue_type {
        Some(_) => " AND ai.issue_type = $2",
        None => "",
    };
    // Only this module's constants are spliced in; every value is a bind parameter.
    let counts: Vec<TypeCount> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT ai.issue_type, count(*) AS count
         FROM guild_identity.audit_issues ai {joins}
         WHERE {state} {search}
         GROUP BY ai.issue_type ORDER BY ai.issue_type"
    )))
    .bind(pattern.as_deref())
    .fetch_all(db)
    .await?;
    let total = counts
        .iter()
        .filter(|c| filter.issue_type.is_none_or(|t| t == c.issue_type))
        .map(|c| c.count)
        .sum();
    let issues = sqlx::query_as(AssertSqlSafe(format!(
        "{ISSUE_SELECT} {ISSUE_JOINS}
         WHERE {state} {search} {of_type}
         ORDER BY ai.created_at DESC, ai.id DESC
         LIMIT $3 OFFSET $4"
    )))
    .bind(pattern.as_deref())
    .bind(filter.issue_type.map(IssueType::as_str))
    .bind(page.per_page)
    .bind(page.offset())
    .fetch_all(db)
    .await?;
    Ok(IssuePage {
        total,
        counts,
        issues,
    })
}

/// One issue.
pub async fn issue(db: impl PgExecutor<'_>, id: i32) -> anyhow::Result<Option<IssueRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "{ISSUE_SELECT} {ISSUE_JOINS} WHERE ai.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// The issue's type, whether it is open, and its pair, locked for the rest of the transaction.
#[derive(sqlx::FromRow)]
struct LockedIssue {
    #[sqlx(try_from = "Text")]
    issue_type: IssueType,
    open: bool,
    wow_character_id: Option<i32>,
    discord_member_id: Option<i32>,
    player_id: Option<i32>,
    score: Option<f64>,
}

async fn lock_issue(tx: &mut PgConnection, id: i32) -> Result<LockedIssue, ConsoleError> {
    let row: Option<LockedIssue> = sqlx::query_as(
        "SELECT issue_type, resolved_at IS NULL AS open, wow_character_id, discord_member_id,
                player_id, (details ->> 'score')::float8 AS score
         FROM guild_identity.audit_issues WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(tx)
    .await?;
    row.ok_or_else(|| ConsoleError::NotFound(format!("audit issue {id} does not exist")))
}

/// Mark an issue resolved by `officer`. `cause_gone` says the officer's action removed the
/// cause (an accepted suggestion), so the resolution is already spent.
async fn resolve_locked(
    tx: &mut PgConnection,
    id: i32,
    officer: &str,
    note: Option<&str>,
    cause_gone: bool,
) -> Result<(), ConsoleError> {
    sqlx::query(
        "UPDATE guild_identity.audit_issues
         SET resolved_at = now(), resolved_by = $2, resolution_note = $3,
             cause_gone_at = CASE WHEN $4 THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(officer)
    .bind(note)
    .bind(cause_gone)
    .execute(tx)
    .await?;
    Ok(())
}

/// Resolve an open issue by hand. The checker's rule (migration 0600) then applies: while the
/// cause persists the issue stays resolved; once a run sees the cause gone, its return opens a
/// new issue.
pub async fn resolve_issue(
    db: &PgPool,
    id: i32,
    officer: &str,
    note: Option<&str>,
) -> Result<IssueRow, ConsoleError> {
    let mut tx = db.begin().await?;
    let locked = lock_issue(&mut tx, id).await?;
    if !locked.open {
        return Err(ConsoleError::Conflict(format!(
            "audit issue {id} is already resolved"
        )));
    }
    resolve_locked(&mut tx, id, officer, note, false).await?;
    finish_issue_action(tx, officer, OfficerAction::ResolveIssue, id, &locked, note).await
}

/// Record an officer's `action` on issue `id`, read the issue back and commit: the end of
/// resolving and reopening.
async fn finish_issue_action(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    officer: &str,
    action: OfficerAction,
    id: i32,
    locked: &LockedIssue,
    note: Option<&str>,
) -> Result<IssueRow, ConsoleError> {
    record_action(
        &mut *tx,
        officer,
        action,
        &format!("audit_issue:{id}"),
        locked.player_id,
        note,
        json!({"issue_id": id, "issue_type": locked.issue_type}),
    )
    .await?;
    let row = issue(&mut *tx, id).await?.ok_or_else(|| {
        ConsoleError::Database(anyhow!("audit issue {id} vanished inside its transaction"))
    })?;
    tx.commit().await?;
    Ok(row)
}

/// Reopen a resolved issue; a dismissed suggestion's pair may be suggested again. 409 when an
/// open issue for the same cause exists already.
pub async fn reopen_issue(db: &PgPool, id: i32, officer: &str) -> Result<IssueRow, ConsoleError> {
    let mut tx = db.begin().await?;
    let locked = lock_issue(&mut tx, id).await?;
    if locked.open {
        return Err(ConsoleError::Conflict(format!(
            "audit issue {id} is already open"
        )));
    }
    let reopened = sqlx::query(
        "UPDATE guild_identity.audit_issues
         SET resolved_at = NULL, resolved_by = NULL, resolution_note = NULL,
             cause_gone_at = NULL, notified_at = NULL
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await;
    if let Err(err) = reopened {
        return Err(match ConsoleError::from(err) {
            ConsoleError::Conflict(_) => ConsoleError::Conflict(format!(
                "an open issue for the same cause as audit issue {id} exists"
            )),
            other => other,
        });
    }
    if locked.issue_type == IssueType::AutoLinkSuggestion
        && let (Some(c), Some(u)) = (locked.wow_character_id, locked.discord_member_id)
    {
        sqlx::query(
            "DELETE FROM guild_identity.dismissed_suggestions
             WHERE wow_character_id = $1 AND discord_user_id = $2",
        )
        .bind(c)
        .bind(u)
        .execute(&mut *tx)
        .await?;
    }
    finish_issue_action(tx, officer, OfficerAction::ReopenIssue, id, &locked, None).await
}

/// An open suggestion with both sides' evidence.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SuggestionRow {
    /// `audit_issues.id`: what accept and dismiss take.
    pub id: i32,
    pub summary: String,
    /// The matcher's name similarity.
    pub score: Option<f64>,
    /// `similar`, `claimed_user`, `look_alike`, `nickname_only`.
    pub kind: Option<String>,
    pub created_at: DateTime<Utc>,
    pub character_id: i32,
    #[sqlx(flatten)]
    pub character: CharacterCard,
    pub guild_note: Option<String>,
    pub officer_note: Option<String>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub discord_user_id: i32,
    pub discord_username: String,
    pub discord_display_name: Option<String>,
    pub discord_global_name: Option<String>,
    pub discord_roles: Vec<String>,
    pub discord_joined_at: Option<DateTime<Utc>>,
    /// The player the Discord user already has, when it has one.
    pub player_id: Option<i32>,
}

/// Open suggestions, newest first, and how many there are.
pub async fn suggestions(db: &PgPool, page: Page) -> anyhow::Result<(i64, Vec<SuggestionRow>)> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM guild_identity.audit_issues
         WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL
           AND wow_character_id IS NOT NULL AND discord_member_id IS NOT NULL",
    )
    .fetch_one(db)
    .await?;
    let rows = sqlx::query_as(
        "SELECT ai.id, ai.summary, (ai.details ->> 'score')::float8 AS score,
                ai.details ->> 'kind' AS kind, ai.created_at,
                wc.id AS character_id, wc.character_name, wc.realm_slug,
                c.name AS class_name, c.color_hex AS class_color, gr.name AS rank_name, wc.level,
                wc.addon_note AS guild_note, wc.addon_officer_note AS officer_note,
                wc.last_login_at,
                du.id AS discord_user_id, du.username AS discord_username,
                du.display_name AS discord_display_name, du.global_name AS discord_global_name,
                du.all_guild_roles AS discord_roles, du.joined_server_at AS discord_joined_at,
                (SELECT p.id FROM guild_identity.players p WHERE p.discord_user_id = du.id) AS player_id
         FROM guild_identity.audit_issues ai
         JOIN guild_identity.wow_characters wc ON wc.id = ai.wow_character_id
         JOIN guild_identity.discord_users du ON du.id = ai.discord_member_id
         LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE ai.issue_type = 'auto_link_suggestion' AND ai.resolved_at IS NULL
         ORDER BY ai.created_at DESC, ai.id DESC
         LIMIT $1 OFFSET $2",
    )
    .bind(page.per_page)
    .bind(page.offset())
    .fetch_all(db)
    .await?;
    Ok((total, rows))
}

/// Lock an open suggestion: its `(character, discord user)`.
async fn lock_suggestion(
    tx: &mut PgConnection,
    id: i32,
) -> Result<(LockedIssue, i32, i32), ConsoleError> {
    let locked = lock_issue(tx, id).await?;
    if locked.issue_type != IssueType::AutoLinkSuggestion {
        return Err(ConsoleError::NotFound(format!(
            "audit issue {id} is not a link suggestion"
        )));
    }
    if !locked.open {
        return Err(ConsoleError::Conflict(format!(
            "suggestion {id} is already resolved"
        )));
    }
    let (Some(c), Some(u)) = (locked.wow_character_id, locked.discord_member_id) else {
        return Err(ConsoleError::Conflict(format!(
            "the character or the Discord user of suggestion {id} no longer exists"
        )));
    };
    Ok((locked, c, u))
}

/// Accept a suggestion: a confirmed `manual` link whose evidence names the suggestion and the
/// officer, the suggestion resolved, the action recorded — one transaction.
pub async fn accept_suggestion(
    db: &PgPool,
    id: i32,
    officer: &str,
) -> Result<Linked, ConsoleError> {
    let mut tx = db.begin().await?;
    let (locked, character_id, discord_user_id) = lock_suggestion(&mut tx, id).await?;
    let evidence = json!({
        "accepted_suggestion": id,
        "accepted_by": officer,
        "score": locked.score,
    });
    let linked = link_character_in(
        &mut tx,
        ManualLink::to_discord_user(character_id, discord_user_id),
        Some(evidence),
        super::member_events::EventSource::officer(),
    )
    .await?;
    resolve_locked(&mut tx, id, officer, None, true).await?;
    record_action(
        &mut *tx,
        officer,
        OfficerAction::AcceptSuggestion,
        &format!("audit_issue:{id}"),
        Some(linked.player_id),
        None,
        json!({"issue_id": id, "character_id": character_id,
               "discord_user_id": discord_user_id, "link_id": linked.link_id,
               "score": locked.score}),
    )
    .await?;
    tx.commit().await?;
    Ok(linked)
}

/// Dismiss a suggestion: that pair is never suggested again (`dismissed_suggestions`), the
/// suggestion is resolved, the action recorded — one transaction.
pub async fn dismiss_suggestion(
    db: &PgPool,
    id: i32,
    officer: &str,
    note: Option<&str>,
) -> Result<(), ConsoleError> {
    let mut tx = db.begin().await?;
    let (locked, character_id, discord_user_id) = lock_suggestion(&mut tx, id).await?;
    sqlx::query(
        "INSERT INTO guild_identity.dismissed_suggestions
             (wow_character_id, discord_user_id, dismissed_by)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(character_id)
    .bind(discord_user_id)
    .bind(officer)
    .execute(&mut *tx)
    .await?;
    resolve_locked(&mut tx, id, officer, note, false).await?;
    record_action(
        &mut *tx,
        officer,
        OfficerAction::DismissSuggestion,
        &format!("audit_issue:{id}"),
        locked.player_id,
        note,
        json!({"issue_id": id, "character_id": character_id,
               "discord_user_id": discord_user_id, "score": locked.score}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A page of players as a JSON array (the shape of `api::identity::PlayerView`), and how many
/// players match. Searched in the player's name, its Discord names and its character names.
///
/// The Discord names are tested in a correlated scalar subquery, one primary-key lookup per
/// player: as a `LEFT JOIN` (or `EXISTS`) the planner hashed the players and scanned all 50,000
/// members on every search (EXPLAIN ANALYZE at 50,000 members: 14.5 ms → 1–2 ms, issue 16).
pub async fn players_page(
    db: &PgPool,
    q: Option<&str>,
    page: Page,
) -> anyhow::Result<(i64, String)> {
    let pattern = like_pattern(q);
    let (total, json): (i64, String) = sqlx::query_as(
        "WITH matched AS (
             SELECT p.id, p.display_name
             FROM guild_identity.players p
             WHERE $1::text IS NULL OR p.display_name ILIKE $1
                OR (SELECT du.username ILIKE $1 OR du.display_name ILIKE $1
                           OR du.global_name ILIKE $1
                    FROM guild_identity.discord_users du WHERE du.id = p.discord_user_id)
                OR EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                           JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
                           WHERE pc.player_id = p.id AND wc.character_name ILIKE $1)
         ), page AS (
             SELECT id FROM matched ORDER BY lower(display_name), id LIMIT $2 OFFSET $3
         )
         SELECT (SELECT count(*) FROM matched),
                COALESCE((SELECT json_agg(t ORDER BY lower(t.display_name), t.id) FROM (
             SELECT p.id, p.display_name, p.is_active,
                    CASE WHEN du.id IS NULL THEN NULL ELSE jsonb_build_object(
                        'id', du.id, 'discord_id', du.discord_id, 'username', du.username,
                        'display_name', du.display_name, 'highest_guild_role', du.highest_guild_role,
                        'is_present', du.is_present) END AS discord_user,
                    COALESCE(ch.characters, '[]'::jsonb) AS characters
             FROM page JOIN guild_identity.players p ON p.id = page.id
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
         ) t), '[]')::text",
    )
    .bind(pattern.as_deref())
    .bind(page.per_page)
    .bind(page.offset())
    .fetch_one(db)
    .await?;
    Ok((total, json))
}

/// Most officer actions a player's page carries.
pub const PLAYER_PAGE_ACTIONS: i64 = 50;

/// One player's alt tree as a JSON document (the shape of `api::console::PlayerDetail`):
/// each link with source, confidence, evidence, rank and last login; the Discord user with
/// its roles; the latest officer actions on the player. `None` for an unknown id.
pub async fn player_detail(db: &PgPool, id: i32) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT jsonb_build_object(
             'id', p.id, 'display_name', p.display_name, 'is_active', p.is_active,
             'main_character_id', p.main_character_id,
             'discord_user', CASE WHEN du.id IS NULL THEN NULL ELSE jsonb_build_object(
                 'id', du.id, 'discord_id', du.discord_id, 'username', du.username,
                 'display_name', du.display_name, 'global_name', du.global_name,
                 'highest_guild_role', du.highest_guild_role, 'roles', du.all_guild_roles,
                 'joined_server_at', du.joined_server_at, 'is_present', du.is_present) END,
             'characters', COALESCE((
                 SELECT jsonb_agg(jsonb_build_object(
                            'link_id', pc.id, 'character_id', wc.id, 'name', wc.character_name,
                            'realm', wc.realm_slug, 'class', c.name, 'class_color', c.color_hex,
                            'rank', gr.name, 'level', wc.level,
                            'last_login_at', wc.last_login_at, 'in_guild', wc.removed_at IS NULL,
                            'is_main', COALESCE(p.main_character_id = wc.id, FALSE),
                            'link_source', pc.link_source, 'confidence', pc.confidence,
                            'evidence', pc.evidence, 'linked_at', pc.created_at)
                        ORDER BY (p.main_character_id = wc.id) IS NOT TRUE,
                                 lower(wc.character_name), wc.id)
                 FROM guild_identity.player_characters pc
                 JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
                 LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
                 LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
                 WHERE pc.player_id = p.id), '[]'::jsonb),
             'actions', COALESCE((
                 SELECT jsonb_agg(to_jsonb(a) ORDER BY a.id DESC) FROM (
                     SELECT id, officer, action, target, player_id, note, details, created_at
                     FROM guild_identity.officer_actions
                     WHERE player_id = p.id ORDER BY id DESC LIMIT $2) a), '[]'::jsonb)
         )::text
         FROM guild_identity.players p
         LEFT JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         WHERE p.id = $1",
    )
    .bind(id)
    .bind(PLAYER_PAGE_ACTIONS)
    .fetch_optional(db)
    .await?)
}

/// Make one of a player's characters its main.
pub async fn set_main(
    db: &PgPool,
    player_id: i32,
    character_id: i32,
    officer: &str,
) -> Result<(), ConsoleError> {
    let mut tx = db.begin().await?;
    let previous: Option<Option<i32>> = sqlx::query_scalar(
        "SELECT main_character_id FROM guild_identity.players WHERE id = $1 FOR UPDATE",
    )
    .bind(player_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(previous) = previous else {
        return Err(ConsoleError::NotFound(format!(
            "player {player_id} does not exist"
        )));
    };
    let owned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM guild_identity.player_characters
                        WHERE player_id = $1 AND character_id = $2)",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_one(&mut *tx)
    .await?;
    if !owned {
        return Err(ConsoleError::Invalid(format!(
            "wow character {character_id} is not linked to player {player_id}"
        )));
    }
    sqlx::query(
        "UPDATE guild_identity.players SET main_character_id = $2, updated_at = now()
         WHERE id = $1",
    )
    .bind(player_id)
    .bind(character_id)
    .execute(&mut *tx)
    .await?;
    record_action(
        &mut *tx,
        officer,
        OfficerAction::SetMain,
        &format!("player:{player_id}"),
        Some(player_id),
        None,
        json!({"character_id": character_id, "previous_main": previous}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One recorded officer action.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ActionRow {
    pub id: i64,
    pub officer: String,
    #[sqlx(try_from = "Text")]
    pub action: OfficerAction,
    pub target: String,
    pub player_id: Option<i32>,
    pub note: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Officer actions, newest first (only one player's with `player_id`), and how many match.
pub async fn actions(
    db: &PgPool,
    player_id: Option<i32>,
    page: Page,
) -> anyhow::Result<(i64, Vec<ActionRow>)> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM guild_identity.officer_actions
         WHERE $1::int4 IS NULL OR player_id = $1",
    )
    .bind(player_id)
    .fetch_one(db)
    .await?;
    let rows = sqlx::query_as(
        "SELECT id, officer, action, target, player_id, note, details, created_at
         FROM guild_identity.officer_actions
         WHERE $1::int4 IS NULL OR player_id = $1
         ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(player_id)
    .bind(page.per_page)
    .bind(page.offset())
    .fetch_all(db)
    .await?;
    Ok((total, rows))
}

/// A Discord user as a link candidate.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DiscordCandidateRow {
    pub id: i32,
    pub username: String,
    pub display_name: Option<String>,
    pub global_name: Option<String>,
    /// The user has a player.
    pub linked: bool,
}

/// A character as a link candidate.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CharacterCandidateRow {
    pub id: i32,
    pub character_name: String,
    pub realm_slug: String,
    /// The character has a player.
    pub linked: bool,
}

/// One character by id (any, in the guild or not).
pub async fn candidate_character(
    db: impl PgExecutor<'_>,
    id: i32,
) -> anyhow::Result<Option<CharacterCandidateRow>> {
    Ok(sqlx::query_as(
        "SELECT wc.id, wc.character_name, wc.realm_slug,
                EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                        WHERE pc.character_id = wc.id) AS linked
         FROM guild_identity.wow_characters wc WHERE wc.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// One Discord user by id.
pub async fn candidate_discord_user(
    db: impl PgExecutor<'_>,
    id: i32,
) -> anyhow::Result<Option<DiscordCandidateRow>> {
    Ok(sqlx::query_as(
        "SELECT du.id, du.username, du.display_name, du.global_name,
                EXISTS (SELECT 1 FROM guild_identity.players p
                        WHERE p.discord_user_id = du.id) AS linked
         FROM guild_identity.discord_users du WHERE du.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// Every present Discord user with a guild role, as candidates for a character: the users the
/// matcher's fuzzy stage scores (`guild_sync_core::matching`), so the console offers no one the
/// engine would never consider. (On a 50,000-member server these are the guild's few hundred.)
pub async fn discord_candidates(
    db: impl PgExecutor<'_>,
) -> anyhow::Result<Vec<DiscordCandidateRow>> {
    Ok(sqlx::query_as(
        "SELECT du.id, du.username, du.display_name, du.global_name, p.id IS NOT NULL AS linked
         FROM guild_identity.discord_users du
         LEFT JOIN guild_identity.players p ON p.discord_user_id = du.id
         WHERE du.is_present AND du.highest_guild_role IS NOT NULL",
    )
    .fetch_all(db)
    .await?)
}

/// Every in-guild character, as candidates for a Discord user.
pub async fn character_candidates(
    db: impl PgExecutor<'_>,
) -> anyhow::Result<Vec<CharacterCandidateRow>> {
    Ok(sqlx::query_as(
        "SELECT wc.id, wc.character_name, wc.realm_slug, pc.id IS NOT NULL AS linked
         FROM guild_identity.wow_characters wc
         LEFT JOIN guild_identity.player_characters pc ON pc.character_id = wc.id
         WHERE wc.removed_at IS NULL",
    )
    .fetch_all(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern(None), None);
        assert_eq!(like_pattern(Some("  ")), None);
        assert_eq!(
            like_pattern(Some("a%b_c\\")).as_deref(),
            Some("%a\\%b\\_c\\\\%")
        );
    }
}
