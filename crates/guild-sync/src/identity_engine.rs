//! identity_engine: links characters and Discord users to players (requirements Task 3, SPEC
//! §5). One run = one transaction: lock the link tables, load the snapshot, ask
//! `guild_sync_core::matching::plan` what to do, apply it with set-based statements, commit. The
//! rules live in the core crate; this module only moves rows. It never moves or removes an
//! existing link, and it does not resolve suggestions (the integrity checker does).
//!
//! Determinism and idempotence are the planner's (see `guild_sync_core::matching`): the same
//! database gives the same plan, and a second run over an applied plan links nobody, because
//! no rule depends on what a run itself changes.

use std::time::Instant;

use anyhow::{Context, Result};
use guild_sync_core::integrity::{IssueType, issue_hash};
use guild_sync_core::matching::{
    self, ExistingPlayer, LinkSource, OwnedCharacter, Plan, PlayerRef, PresentDiscordUser,
    SkipReason, Skipped, Snapshot, Suggestion, SuggestionKind, UnlinkedCharacter,
};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};

use crate::db::member_events::EventSource;
use crate::db::players::{self, NewLink, NewSuggestion};
use crate::db::sync_log::RunCounts;
use crate::run_recorder::{RunReport, StageTimings, record_run};

/// The `sync_log.source` of a matching run.
pub const SOURCE: &str = "match";

/// Most tie/conflict explanations kept in the stats (the counts are always complete).
const MAX_SKIP_DETAILS: usize = 50;

/// Links created per strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StrategyCounts {
    pub exact_name: usize,
    pub guild_note: usize,
    pub officer_note: usize,
    pub display_name_part: usize,
    pub fuzzy_name: usize,
    pub alt_note: usize,
}

/// What a matching run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MatchStats {
    /// Unlinked in-guild characters looked at.
    pub characters_considered: usize,
    /// Present Discord users looked at.
    pub discord_users_considered: usize,
    pub by_strategy: StrategyCounts,
    pub players_created: u64,
    pub links_created: u64,
    /// Discord users set on existing players that had none.
    pub discord_users_attached: u64,
    /// Suggestions the plan made (0.70–0.85 or tied fuzzy matches, look-alikes, nickname-only
    /// matches, and close matches to users who already have a player).
    pub suggestions: usize,
    /// Of those, look-alike names (invisible characters, compatibility forms, other scripts).
    pub look_alikes: usize,
    /// Of those, suggestions not already open.
    pub suggestions_new: u64,
    /// Characters left unlinked.
    pub skipped: usize,
    /// Evidence that named several Discord users or characters (nobody linked on it).
    pub ties: usize,
    /// Alt relations refused because they would join two Discord users or players.
    pub conflicts: usize,
    /// The first ties and conflicts, for officers reading the log.
    pub skip_details: Vec<Skipped>,
    /// Name pairs the fuzzy stage scored in full, and pairs its bounds ruled out.
    pub fuzzy_pairs_scored: u64,
    pub fuzzy_pairs_pruned: u64,
    pub load_seconds: f64,
    pub plan_seconds: f64,
    pub apply_seconds: f64,
}

/// Run the matcher once as a recorded run (`sync_log.source = 'match'`).
pub async fn run_matching(pool: &PgPool) -> Result<MatchStats> {
    record_run(pool, SOURCE, |run_id| async move {
        let stats = match_once(pool, EventSource::run(run_id)).await?;
        let counts = RunCounts::default()
            .found(stats.characters_considered)
            .new(stats.links_created);
        let report = RunReport::success(counts, &stats).timed(StageTimings {
            load_seconds: Some(stats.load_seconds),
            plan_seconds: Some(stats.plan_seconds),
            apply_seconds: Some(stats.apply_seconds),
        });
        Ok((stats, report))
    })
    .await
}

/// Load, plan and apply in one transaction.
async fn match_once(pool: &PgPool, source: EventSource) -> Result<MatchStats> {
    let mut tx = pool
        .begin()
        .await
        .context("cannot begin the matching transaction")?;
    // Held until commit: manual links made meanwhile wait rather than invalidate the plan.
    players::lock_for_matching(&mut *tx).await?;

    let started = Instant::now();
    let snapshot = load_snapshot(&mut tx).await?;
    let load_seconds = started.elapsed().as_secs_f64();
    let mut stats = MatchStats {
        characters_considered: snapshot.characters.len(),
        discord_users_considered: snapshot.discord_users.len(),
        load_seconds,
        ..MatchStats::default()
    };

    let started = Instant::now();
    // CPU-bound (and parallel through rayon): keep it off the async workers.
    let plan = tokio::task::spawn_blocking(move || matching::plan(&snapshot))
        .await
        .context("the matching planner panicked")?;
    stats.plan_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    apply(&mut tx, &plan, &mut stats, source).await?;
    tx.commit()
        .await
        .context("cannot commit the matching run")?;
    stats.apply_seconds = started.elapsed().as_secs_f64();

    tracing::info!(
        links = stats.links_created,
        players = stats.players_created,
        attached = stats.discord_users_attached,
        suggestions = stats.suggestions,
        skipped = stats.skipped,
        "matching applied"
    );
    Ok(stats)
}

async fn load_snapshot(tx: &mut Transaction<'_, Postgres>) -> Result<Snapshot> {
    let characters = players::unlinked_characters(&mut **tx)
        .await?
        .into_iter()
        .map(|r| UnlinkedCharacter {
            id: r.id.into(),
            name: r.character_name,
            realm_slug: r.realm_slug,
            guild_note: r.addon_note,
            officer_note: r.addon_officer_note,
            rank_level: r.rank_level,
        })
        .collect();
    let discord_users = players::present_discord_users(&mut **tx)
        .await?
        .into_iter()
        .map(|r| PresentDiscordUser {
            id: r.id.into(),
            username: r.username,
            display_name: r.display_name,
            global_name: r.global_name,
            has_guild_role: r.has_guild_role,
            player_id: r.player_id.map(i64::from),
        })
        .collect();
    let players = players::players_with_characters(&mut **tx)
        .await?
        .into_iter()
        .map(|r| ExistingPlayer {
            id: r.id.into(),
            discord_user_id: r.discord_user_id.map(i64::from),
            characters: r
                .character_ids
                .into_iter()
                .zip(r.character_names)
                .zip(r.realm_slugs)
                .map(|((id, name), realm_slug)| OwnedCharacter {
                    id: id.into(),
                    name,
                    realm_slug,
                })
                .collect(),
        })
        .collect();
    Ok(Snapshot {
        characters,
        discord_users,
        players,
    })
}

fn db_id(id: i64) -> Result<i32> {
    i32::try_from(id).with_context(|| format!("id {id} does not fit the database's integer ids"))
}

/// Write the plan. Any shortfall (a row the plan counted on that is not written) is an error,
/// so the transaction rolls back rather than leaving half a plan.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    plan: &Plan,
    stats: &mut MatchStats,
    source: EventSource,
) -> Result<()> {
    let attach_players: Vec<i32> = plan
        .attachments
        .iter()
        .map(|a| db_id(a.player_id))
        .collect::<Result<_>>()?;
    let attach_users: Vec<i32> = plan
        .attachments
        .iter()
        .map(|a| db_id(a.discord_user_id))
        .collect::<Result<_>>()?;
    stats.discord_users_attached =
        players::attach_discord_users(&mut **tx, &attach_players, &attach_users).await?;
    anyhow::ensure!(
        stats.discord_users_attached == plan.attachments.len() as u64,
        "only {} of {} Discord users could be attached to their players",
        stats.discord_users_attached,
        plan.attachments.len()
    );

    let names: Vec<String> = plan
        .new_players
        .iter()
        .map(|p| p.display_name.clone())
        .collect();
    let discord: Vec<Option<i32>> = plan
        .new_players
        .iter()
        .map(|p| p.discord_user_id.map(db_id).transpose())
        .collect::<Result<_>>()?;
    let created = players::create_players(&mut **tx, &names, &discord).await?;
    stats.players_created = created.len() as u64;

    let links: Vec<NewLink> = plan
        .links
        .iter()
        .map(|l| {
            let player_id = match l.player {
                PlayerRef::Existing(id) => db_id(id)?,
                PlayerRef::New(i) => *created.get(i).context("a link names an unplanned player")?,
            };
            Ok(NewLink {
                player_id,
                character_id: db_id(l.character_id)?,
                link_source: l.source.as_str(),
                confidence: l.confidence.as_str(),
                evidence: l.evidence.clone(),
            })
        })
        .collect::<Result<_>>()?;
    stats.links_created = players::insert_links(&mut **tx, &links, source).await?;
    anyhow::ensure!(
        stats.links_created == links.len() as u64,
        "only {} of {} planned links could be written (a character was linked meanwhile)",
        stats.links_created,
        links.len()
    );

    let player_id = |r: PlayerRef| -> Result<i32> {
        match r {
            PlayerRef::Existing(id) => db_id(id),
            PlayerRef::New(i) => created
                .get(i)
                .copied()
                .context("a suggestion names an unplanned player"),
        }
    };
    let suggestions: Vec<NewSuggestion> = plan
        .suggestions
        .iter()
        .map(|s| {
            Ok(NewSuggestion {
                issue_hash: issue_hash(
                    IssueType::AutoLinkSuggestion,
                    &[s.character_id, s.discord_user_id],
                ),
                character_id: db_id(s.character_id)?,
                discord_user_id: db_id(s.discord_user_id)?,
                player_id: s.player.map(player_id).transpose()?,
                summary: suggestion_summary(s),
                details: json!({
                    "character_id": s.character_id,
                    "character_name": s.character_name,
                    "discord_user_id": s.discord_user_id,
                    "discord_name": s.discord_name,
                    "score": s.score,
                    "kind": s.kind.as_str(),
                    "look_alike": s.kind == SuggestionKind::LookAlike,
                    "disguise": s.disguise.map(|d| d.as_str()),
                    "link_threshold": matching::FUZZY_LINK_THRESHOLD,
                    "suggest_threshold": matching::FUZZY_SUGGEST_THRESHOLD,
                }),
            })
        })
        .collect::<Result<_>>()?;
    stats.suggestions = suggestions.len();
    stats.look_alikes = plan
        .suggestions
        .iter()
        .filter(|s| s.kind == SuggestionKind::LookAlike)
        .count();
    stats.suggestions_new = players::upsert_suggestions(&mut **tx, &suggestions).await?;

    for (source, n) in plan.links_by_source() {
        let slot = match source {
            LinkSource::ExactName => &mut stats.by_strategy.exact_name,
            LinkSource::GuildNote => &mut stats.by_strategy.guild_note,
            LinkSource::OfficerNote => &mut stats.by_strategy.officer_note,
            LinkSource::DisplayNamePart => &mut stats.by_strategy.display_name_part,
            LinkSource::FuzzyName => &mut stats.by_strategy.fuzzy_name,
            LinkSource::AltNote => &mut stats.by_strategy.alt_note,
        };
        *slot = n;
    }
    stats.skipped = plan.unlinked;
    stats.ties = plan
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::Tie)
        .count();
    stats.conflicts = plan
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::Conflict)
        .count();
    stats.skip_details = plan
        .skipped
        .iter()
        .take(MAX_SKIP_DETAILS)
        .cloned()
        .collect();
    stats.fuzzy_pairs_scored = plan.fuzzy.scored;
    stats.fuzzy_pairs_pruned =
        plan.fuzzy.by_length + plan.fuzzy.by_shared_characters + plan.fuzzy.by_common_subsequence;
    Ok(())
}

/// The audit line of a suggestion: what matched, and why it is not a link.
fn suggestion_summary(s: &Suggestion) -> String {
    let (character, discord) = (&s.character_name, &s.discord_name);
    match s.kind {
        SuggestionKind::Similar => format!(
            "{character} may be Discord user {discord} (name similarity {:.2})",
            s.score
        ),
        SuggestionKind::ClaimedUser => format!(
            "{character} may be Discord user {discord} (name similarity {:.2}), who already has \
             a player: not linked, as the name may be another player's character",
            s.score
        ),
        SuggestionKind::LookAlike => format!(
            "{character} only looks like the name of Discord user {discord} ({}): not linked",
            s.disguise
                .map(|d| d.as_str().replace('_', " "))
                .unwrap_or_else(|| "look-alike".to_string())
        ),
        SuggestionKind::NicknameOnly => format!(
            "{character} matches only the server nickname of Discord user {discord}, and a \
             nickname alone does not claim a Veteran-or-above character: not linked"
        ),
    }
}
