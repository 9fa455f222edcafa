//! Member claims' SQL (issue 17): the OAuth state's used nonces and signing secret, who the
//! claimant is on Discord, and [`write_claim`], the one function that moves links for a claim
//! (its statements write the member events of those changes, issue 19).
//!
//! The decision (which characters link, move, stay or conflict) is the core's
//! [`guild_sync_core::claims::plan_claim`]; this module loads its input and writes its output,
//! set-based, in the caller's transaction.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use guild_sync_core::claims::{AccountCharacter, ClaimPlan, CurrentLink};
use guild_sync_core::integrity::{Finding, KeyedFinding};
use guild_sync_core::matching::StoredLinkSource;
use rand::RngCore;
use serde_json::json;
use sqlx::{PgConnection, PgExecutor};

use super::Text;
use super::member_events::{Actor, EventSource, link_events_sql, unlinked_events_sql};

/// The actor the action history (and the member events) record for a claim's link changes.
pub const CLAIM_ACTOR: &str = Actor::Claim.as_str();

/// Used nonces older than this are deleted: a state expires long before.
const NONCE_KEEP_SECONDS: i64 = 3600;

/// The signing secret named `name`, generated (32 random bytes) and stored on first use. Every
/// process sharing the database gets the same one; concurrent first uses agree on one row.
pub async fn service_secret(db: impl PgExecutor<'_>, name: &str) -> Result<Vec<u8>> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    sqlx::query_scalar(
        "WITH ins AS (
             INSERT INTO guild_identity.service_secrets (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING RETURNING value)
         SELECT value FROM ins
         UNION ALL
         SELECT value FROM guild_identity.service_secrets WHERE name = $1
         LIMIT 1",
    )
    .bind(name)
    .bind(fresh.as_slice())
    .fetch_one(db)
    .await
    .context("cannot read or store the service secret")
}

/// Mark `nonce` used; `false` when it already was (a replayed state). Forgets nonces older
/// than an hour in the same statement.
pub async fn use_nonce(db: impl PgExecutor<'_>, nonce: &str) -> Result<bool> {
    let inserted: Option<bool> = sqlx::query_scalar(
        "WITH old AS (
             DELETE FROM guild_identity.oauth_used_nonces
             WHERE used_at < now() - make_interval(secs => $2))
         INSERT INTO guild_identity.oauth_used_nonces (nonce) VALUES ($1)
         ON CONFLICT (nonce) DO NOTHING RETURNING TRUE",
    )
    .bind(nonce)
    .bind(NONCE_KEEP_SECONDS as f64)
    .fetch_optional(db)
    .await
    .context("cannot record the OAuth state's nonce")?;
    Ok(inserted.unwrap_or(false))
}

/// A Discord account as the claim pages name it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DiscordMember {
    /// `discord_users.id`.
    pub id: i32,
    pub discord_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub is_present: bool,
}

impl DiscordMember {
    /// `Display (@username)`, as reports name members.
    pub fn label(&self) -> String {
        guild_sync_core::integrity::discord_label(self.display_name.as_deref(), &self.username)
    }
}

/// The Discord account with snowflake `discord_id`, if guild-sync has seen it.
pub async fn discord_member(
    db: impl PgExecutor<'_>,
    discord_id: &str,
) -> Result<Option<DiscordMember>> {
    sqlx::query_as(
        "SELECT id, discord_id, username, display_name, is_present
         FROM guild_identity.discord_users WHERE discord_id = $1",
    )
    .bind(discord_id)
    .fetch_optional(db)
    .await
    .context("cannot read the Discord member")
}

/// One character on the claimed Battle.net account, as the profile API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenCharacter {
    pub blizzard_id: i64,
    pub name: String,
    pub realm_slug: String,
    pub level: Option<i32>,
}

/// What a claim proves: who (the Discord member) owns which Battle.net account.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub member: &'a DiscordMember,
    pub battletag: &'a str,
    pub battlenet_account_id: i64,
    pub characters: &'a [ProvenCharacter],
    pub claimed_at: DateTime<Utc>,
}

/// A guild character named on the result page.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NamedCharacter {
    pub id: i32,
    pub character_name: String,
    pub realm_slug: String,
    pub level: Option<i32>,
}

/// What a claim did, for the result page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The claimant's player; `None` when the claim was refused whole.
    pub player_id: Option<i32>,
    /// The guild characters now linked to the claimant, by name.
    pub linked: Vec<NamedCharacter>,
    /// Of those, the ids moved from another player by this claim.
    pub moved: Vec<i32>,
    /// Characters an officer linked by hand to someone else: `(character, that player)`.
    pub conflicts: Vec<(NamedCharacter, String)>,
    /// Characters a former claim linked that left the account, now unlinked.
    pub unlinked: Vec<NamedCharacter>,
    /// The account's characters that are not in the guild.
    pub outside_guild: Vec<ProvenCharacter>,
    /// Another player already holds this Battle.net account (its name): nothing was linked.
    pub account_owner: Option<String>,
}

/// A row of the account's characters matched to the guild's.
#[derive(sqlx::FromRow)]
struct MatchedRow {
    ord: i32,
    character_id: Option<i32>,
    player_id: Option<i32>,
    /// Text, not the enum: NULL for an unlinked character (decoded below).
    link_source: Option<String>,
}

/// Carry out `claim` in the caller's transaction: lock the link tables (as matching does, so
/// a claim and a match run never interleave), refuse an account another player holds, find or
/// create the claimant's player, plan with the core and write the plan, recording every link
/// change in the action history (actor [`CLAIM_ACTOR`]) and every conflict as a
/// `claim_conflict` issue.
pub async fn write_claim(conn: &mut PgConnection, claim: &Claim<'_>) -> Result<ClaimOutcome> {
    super::players::lock_for_matching(&mut *conn).await?;
    let member = claim.member;
    let mut outcome = ClaimOutcome::default();

    let holder: Option<(i32, String)> = sqlx::query_as(
        "SELECT id, display_name FROM guild_identity.players
         WHERE battlenet_account_id = $1 AND discord_user_id IS DISTINCT FROM $2",
    )
    .bind(claim.battlenet_account_id)
    .bind(member.id)
    .fetch_optional(&mut *conn)
    .await
    .context("cannot look up the Battle.net account's player")?;
    if let Some((other_id, other_name)) = holder {
        let finding = Finding::claim_conflict(
            None,
            member.id,
            &member.label(),
            other_id,
            &other_name,
            claim.battletag,
            claim.battlenet_account_id,
        );
        super::audit_issues::insert_issues(&mut *conn, &[KeyedFinding::from(finding)]).await?;
        outcome.account_owner = Some(other_name);
        return Ok(outcome);
    }

    let player_id = claimant_player(&mut *conn, claim).await?;
    outcome.player_id = Some(player_id);

    let ids: Vec<i64> = claim.characters.iter().map(|c| c.blizzard_id).collect();
    let names: Vec<&str> = claim.characters.iter().map(|c| c.name.as_str()).collect();
    let realms: Vec<&str> = claim
        .characters
        .iter()
        .map(|c| c.realm_slug.as_str())
        .collect();
    // By Blizzard id, which survives renames; by name and realm only for a row that has no id
    // yet (a character the roster listed before its profile was fetched).
    let matched: Vec<MatchedRow> = sqlx::query_as(
        "SELECT a.ord::int4 AS ord, wc.id AS character_id, pc.player_id, pc.link_source
         FROM UNNEST($1::int8[], $2::text[], $3::text[]) WITH ORDINALITY
              AS a (blizzard_id, name, realm_slug, ord)
         LEFT JOIN LATERAL (
             SELECT wc.id FROM guild_identity.wow_characters wc
             WHERE wc.removed_at IS NULL
               AND (wc.blizzard_id = a.blizzard_id
                    OR (wc.blizzard_id IS NULL AND lower(wc.character_name) = lower(a.name)
                        AND lower(wc.realm_slug) = lower(a.realm_slug)))
             ORDER BY wc.blizzard_id IS NULL, wc.id LIMIT 1) wc ON TRUE
         LEFT JOIN guild_identity.player_characters pc ON pc.character_id = wc.id
         ORDER BY a.ord",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&realms)
    .fetch_all(&mut *conn)
    .await
    .context("cannot match the account's characters to the guild's")?;
    let mut account: Vec<AccountCharacter> = Vec::with_capacity(matched.len());
    for row in &matched {
        let link = match (row.player_id, row.link_source.clone()) {
            (Some(player_id), Some(text)) => Some(CurrentLink {
                player_id,
                source: StoredLinkSource::try_from(Text(text))?,
            }),
            _ => None,
        };
        account.push(AccountCharacter {
            character_id: row.character_id,
            link,
        });
    }
    outcome.outside_guild = matched
        .iter()
        .filter(|row| row.character_id.is_none())
        .filter_map(|row| claim.characters.get(usize::try_from(row.ord - 1).ok()?))
        .cloned()
        .collect();

    let claimed_before: Vec<i32> = sqlx::query_scalar(
        "SELECT character_id FROM guild_identity.player_characters
         WHERE player_id = $1 AND link_source = 'battlenet_oauth'",
    )
    .bind(player_id)
    .fetch_all(&mut *conn)
    .await?;
    let plan = guild_sync_core::claims::plan_claim(player_id, &account, &claimed_before);
    write_plan(&mut *conn, claim, player_id, &plan).await?;

    let claimed: Vec<i32> = plan.claimed().collect();
    outcome.linked = named_characters(&mut *conn, &claimed).await?;
    outcome.moved = plan.moves.iter().map(|(c, _)| *c).collect();
    outcome.unlinked = named_characters(&mut *conn, &plan.unlink).await?;
    if !plan.conflicts.is_empty() {
        outcome.conflicts = record_conflicts(&mut *conn, claim, &plan.conflicts).await?;
    }
    Ok(outcome)
}

/// The claimant's player: the one holding their Discord account, else a new one named after
/// it. Either way it now holds the Battle.net account.
async fn claimant_player(conn: &mut PgConnection, claim: &Claim<'_>) -> Result<i32> {
    sqlx::query_scalar(
        "WITH existing AS (
             UPDATE guild_identity.players
             SET battletag = $2, battlenet_account_id = $3, claimed_at = $4, updated_at = now()
             WHERE discord_user_id = $1 RETURNING id),
         created AS (
             INSERT INTO guild_identity.players
                 (display_name, discord_user_id, battletag, battlenet_account_id, claimed_at)
             SELECT COALESCE(NULLIF(du.display_name, ''), du.username), du.id, $2, $3, $4
             FROM guild_identity.discord_users du
             WHERE du.id = $1 AND NOT EXISTS (SELECT 1 FROM existing)
             RETURNING id)
         SELECT id FROM existing UNION ALL SELECT id FROM created",
    )
    .bind(claim.member.id)
    .bind(claim.battletag)
    .bind(claim.battlenet_account_id)
    .bind(claim.claimed_at)
    .fetch_one(&mut *conn)
    .await
    .context("cannot find or create the claimant's player")
}

/// Write the links of `plan`, their member events (`linked`, `link_moved`, `unlinked`, actor
/// `claim`, in the statements that change the links) and their action history.
async fn write_plan(
    conn: &mut PgConnection,
    claim: &Claim<'_>,
    player_id: i32,
    plan: &ClaimPlan,
) -> Result<()> {
    // Every link change of a claim is the claimant's own doing, seen by no sync run.
    let source = EventSource {
        actor: Actor::Claim,
        run_id: None,
    };
    let evidence = json!({
        "battletag": claim.battletag,
        "battlenet_account_id": claim.battlenet_account_id,
        "claimed_at": claim.claimed_at,
        "discord_id": claim.member.discord_id,
    });
    let mut upsert: Vec<i32> = plan.link.clone();
    upsert.extend(plan.moves.iter().map(|(c, _)| *c));
    upsert.extend(&plan.refresh);
    // `link_source <> 'manual'` again here: the plan already leaves manual links alone, and
    // the table lock keeps an officer from making one meanwhile; this is the last guard.
    // `prior` reads the links as they were before this statement (one snapshot for the whole
    // statement), so the upsert's answer tells a new link from a move without a query per row;
    // a refresh (same player) changes no one's links and writes no event.
    sqlx::query(concat!(
        "WITH prior AS (
             SELECT pc.character_id, pc.player_id, op.display_name AS player,
                    pc.link_source, pc.confidence
             FROM guild_identity.player_characters pc
             JOIN guild_identity.players op ON op.id = pc.player_id
             WHERE pc.character_id = ANY($2::int4[])
         ), upserted AS (
             INSERT INTO guild_identity.player_characters
                 (player_id, character_id, link_source, confidence, evidence)
             SELECT $1, c, 'battlenet_oauth', 'confirmed', $3 FROM UNNEST($2::int4[]) c
             ON CONFLICT (character_id) DO UPDATE
             SET player_id = EXCLUDED.player_id, link_source = EXCLUDED.link_source,
                 confidence = EXCLUDED.confidence, evidence = EXCLUDED.evidence,
                 created_at = CASE WHEN player_characters.player_id = EXCLUDED.player_id
                                   THEN player_characters.created_at ELSE now() END
             WHERE player_characters.link_source <> 'manual'
             RETURNING player_id, character_id, link_source, confidence
         ), changes AS (
             SELECT CASE WHEN pr.character_id IS NULL THEN 'linked' ELSE 'link_moved' END
                        AS event_type,
                    u.player_id, u.character_id,
                    CASE WHEN pr.character_id IS NOT NULL THEN
                        jsonb_build_object('player_id', pr.player_id, 'player', pr.player,
                                           'link_source', pr.link_source,
                                           'confidence', pr.confidence) END AS before,
                    jsonb_build_object('player_id', u.player_id, 'player', np.display_name,
                                       'link_source', u.link_source,
                                       'confidence', u.confidence) AS after
             FROM upserted u
             JOIN guild_identity.players np ON np.id = u.player_id
             LEFT JOIN prior pr ON pr.character_id = u.character_id
             WHERE pr.player_id IS DISTINCT FROM u.player_id
         ), ",
        link_events_sql!("changes", 4, 5),
        "
         SELECT count(*) FROM upserted"
    ))
    .bind(player_id)
    .bind(&upsert)
    .bind(&evidence)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .execute(&mut *conn)
    .await
    .context("cannot write the claimed links")?;
    sqlx::query(concat!(
        "WITH removed AS (
             DELETE FROM guild_identity.player_characters
             WHERE player_id = $1 AND link_source = 'battlenet_oauth'
               AND character_id = ANY($2::int4[])
             RETURNING player_id, character_id, link_source, confidence
         ), ",
        unlinked_events_sql!("removed", 3, 4),
        "
         SELECT count(*) FROM removed"
    ))
    .bind(player_id)
    .bind(&plan.unlink)
    .bind(source.actor.as_str())
    .bind(source.run_id)
    .execute(&mut *conn)
    .await
    .context("cannot unlink the characters that left the account")?;
    // A character that moved away, or was unlinked, is no longer its old player's main.
    let gone: Vec<i32> = plan
        .moves
        .iter()
        .map(|(c, _)| *c)
        .chain(plan.unlink.iter().copied())
        .collect();
    sqlx::query(
        "UPDATE guild_identity.players SET main_character_id = NULL, updated_at = now()
         WHERE main_character_id = ANY($1::int4[])
           AND NOT EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                           WHERE pc.character_id = main_character_id
                             AND pc.player_id = players.id)",
    )
    .bind(&gone)
    .execute(&mut *conn)
    .await?;
    // A claimant without a main gets their highest-level claimed character.
    sqlx::query(
        "UPDATE guild_identity.players p SET main_character_id = (
             SELECT wc.id FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             WHERE pc.player_id = p.id AND wc.removed_at IS NULL
             ORDER BY wc.level DESC NULLS LAST, wc.id LIMIT 1)
         WHERE p.id = $1 AND p.main_character_id IS NULL",
    )
    .bind(player_id)
    .execute(&mut *conn)
    .await?;

    let mut actions: Vec<&str> = Vec::new();
    let mut characters: Vec<i32> = Vec::new();
    let mut from_players: Vec<Option<i32>> = Vec::new();
    for &c in &plan.link {
        actions.push("claim_link");
        characters.push(c);
        from_players.push(None);
    }
    for &(c, from) in &plan.moves {
        actions.push("claim_move");
        characters.push(c);
        from_players.push(Some(from));
    }
    for &c in &plan.unlink {
        actions.push("claim_unlink");
        characters.push(c);
        from_players.push(None);
    }
    sqlx::query(
        "INSERT INTO guild_identity.officer_actions (officer, action, target, player_id, details)
         SELECT $1, a, 'character:' || c, $2,
                $3::jsonb || jsonb_build_object('character_id', c)
                          || CASE WHEN f IS NULL THEN '{}'::jsonb
                                  ELSE jsonb_build_object('from_player_id', f) END
         FROM UNNEST($4::text[], $5::int4[], $6::int4[]) AS u (a, c, f)",
    )
    .bind(CLAIM_ACTOR)
    .bind(player_id)
    .bind(json!({
        "battletag": claim.battletag,
        "discord_id": claim.member.discord_id,
    }))
    .bind(&actions)
    .bind(&characters)
    .bind(&from_players)
    .execute(&mut *conn)
    .await
    .context("cannot record the claim in the action history")?;
    Ok(())
}

/// Open a `claim_conflict` issue for each character an officer linked by hand elsewhere.
async fn record_conflicts(
    conn: &mut PgConnection,
    claim: &Claim<'_>,
    conflicts: &[(i32, i32)],
) -> Result<Vec<(NamedCharacter, String)>> {
    let character_ids: Vec<i32> = conflicts.iter().map(|(c, _)| *c).collect();
    let player_ids: Vec<i32> = conflicts.iter().map(|(_, p)| *p).collect();
    let rows: Vec<(i32, String, String, Option<i32>, i32, String)> = sqlx::query_as(
        "SELECT wc.id, wc.character_name, wc.realm_slug, wc.level, p.id, p.display_name
         FROM UNNEST($1::int4[], $2::int4[]) AS u (c, pl)
         JOIN guild_identity.wow_characters wc ON wc.id = u.c
         JOIN guild_identity.players p ON p.id = u.pl
         ORDER BY lower(wc.character_name), wc.id",
    )
    .bind(&character_ids)
    .bind(&player_ids)
    .fetch_all(&mut *conn)
    .await?;
    let claimant = claim.member.label();
    let findings: Vec<KeyedFinding> = rows
        .iter()
        .map(|(id, name, realm, _, player_id, player_name)| {
            let label = guild_sync_core::integrity::character_label(name, realm);
            KeyedFinding::from(Finding::claim_conflict(
                Some((*id, &label)),
                claim.member.id,
                &claimant,
                *player_id,
                player_name,
                claim.battletag,
                claim.battlenet_account_id,
            ))
        })
        .collect();
    super::audit_issues::insert_issues(&mut *conn, &findings).await?;
    Ok(rows
        .into_iter()
        .map(|(id, character_name, realm_slug, level, _, player_name)| {
            (
                NamedCharacter {
                    id,
                    character_name,
                    realm_slug,
                    level,
                },
                player_name,
            )
        })
        .collect())
}

async fn named_characters(conn: &mut PgConnection, ids: &[i32]) -> Result<Vec<NamedCharacter>> {
    Ok(sqlx::query_as(
        "SELECT id, character_name, realm_slug, level FROM guild_identity.wow_characters
         WHERE id = ANY($1::int4[]) ORDER BY level DESC NULLS LAST, lower(character_name), id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?)
}

/// Someone for `demo --serve` to claim as: a present Discord member without a player, and up
/// to three in-guild characters no player owns (`discord_id`, `username`, characters as
/// `(blizzard_id or a stand-in, name, realm_slug, level)`). `None` when the data has neither.
pub async fn demo_claimant(
    db: impl PgExecutor<'_> + Copy,
) -> Result<Option<(String, String, Vec<(i64, String, String, i32)>)>> {
    let member: Option<(String, String)> = sqlx::query_as(
        "SELECT du.discord_id, du.username FROM guild_identity.discord_users du
         WHERE du.is_present
           AND NOT EXISTS (SELECT 1 FROM guild_identity.players p WHERE p.discord_user_id = du.id)
         ORDER BY du.id LIMIT 1",
    )
    .fetch_optional(db)
    .await?;
    let Some((discord_id, username)) = member else {
        return Ok(None);
    };
    // A stand-in id far above Blizzard's for a row without one; the claim then matches it
    // by name and realm.
    let characters: Vec<(i64, String, String, i32)> = sqlx::query_as(
        "SELECT COALESCE(wc.blizzard_id, 9000000000 + wc.id), wc.character_name, wc.realm_slug,
                COALESCE(wc.level, 1)
         FROM guild_identity.wow_characters wc
         WHERE wc.removed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM guild_identity.player_characters pc
                           WHERE pc.character_id = wc.id)
         ORDER BY wc.level DESC NULLS LAST, wc.id LIMIT 3",
    )
    .fetch_all(db)
    .await?;
    if characters.is_empty() {
        return Ok(None);
    }
    Ok(Some((discord_id, username, characters)))
}
