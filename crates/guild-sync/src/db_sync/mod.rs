//! db_sync: the Battle.net roster and character profiles → `guild_identity.wow_characters`
//! (SPEC §5). The addon half lives in [`addon`].
//!
//! A run is load → decide → apply: fetch the roster and profiles ([`fetch`], via
//! [`crate::blizzard_client`]); then [`apply_roster`], in one transaction, `load`s the stored
//! characters and the reference caches, lets `decide` (no database) work out the writes —
//! `guild_sync_core::roster::plan_roster` for inserts, updates, removals, returns, renames and
//! displaced rows, the mass-removal guard, each member's columns merged from its roster entry
//! and profile (`guild_sync_core::roster::member_columns`) — and `apply`s them with a handful of
//! set-based statements. A refused or failed roster changes nothing; the run is recorded in
//! `sync_log` either way.
//!
//! Renames and realm transfers update the matched row in place, so its `player_characters` link
//! survives. When the new (name, realm) is held by a row that is not in the roster (a departed
//! character, or a deleted character whose name was reused) that row is *displaced*: it keeps
//! its data and links under the name `"{name}#{id}"` (see
//! `guild_sync_core::roster::displaced_name`), because the database holds one row per
//! (name, realm). Nothing is deleted.

pub mod addon;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use guild_sync_core::roster::{
    HomeRealm, IncomingKey, MemberAction, MemberColumns, MemberFacts, Named, ProfileFacts,
    ReferenceCache, Resolved, RosterPlan, displaced_name, member_columns, plan_roster,
};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::blizzard_client::{self, BlizzardClient, FetchedRoster, ProfileFetch, RosterMember};
use crate::config::{Config, RemovalGuard};
use crate::db::characters::{self, CharacterColumns, StoredCharacters};
use crate::db::member_events::{self, Baseline, EventSource};
use crate::db::reference;
use crate::db::sync_log::RunCounts;
use crate::run_recorder::{Lap, RunReport, RunStatus, StageTimings, record_run};

/// `sync_log.source` of a Battle.net run.
pub const SOURCE: &str = crate::db::sync_log::BATTLE_NET_SOURCE;

/// Where the roster comes from.
#[derive(Debug, Clone)]
pub enum BlizzardInput {
    /// The live Battle.net API, configured per SPEC §6.
    Live,
    /// `roster.json` + `profiles/{realm}/{name}.json` in this directory.
    Dir(PathBuf),
}

/// What a Battle.net sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlizzardSyncStats {
    /// Members in the roster.
    pub found: usize,
    /// New rows.
    pub new: usize,
    /// Existing rows whose stored data changed (including returns and renames).
    pub updated: usize,
    /// In-guild rows marked departed.
    pub removed: usize,
    /// Departed rows back in the guild.
    pub returned: usize,
    /// Rows whose name or realm changed (renames and realm transfers), updated in place.
    pub renamed: usize,
    /// Rows not in the roster that stepped aside for a renamed or new character's name.
    pub displaced: usize,
    /// Repeated roster entries that were ignored.
    pub duplicates: usize,
    pub profiles_fetched: usize,
    pub profiles_not_found: usize,
    pub profiles_failed: usize,
    /// Class, spec and rank references no reference row matched: stored as NULL.
    pub unknown_class: usize,
    pub unknown_spec: usize,
    pub unknown_rank: usize,
}

/// Sync the roster into `wow_characters` as one recorded run (`sync_log.source = 'blizzard'`).
/// A failed, empty or implausibly shrunken roster changes nothing and is an error.
pub async fn run(
    pool: &PgPool,
    config: &Config,
    input: BlizzardInput,
    guard: RemovalGuard,
    show_progress: bool,
) -> Result<BlizzardSyncStats> {
    record_run(pool, SOURCE, |run_id| async move {
        let mut lap = Lap::start();
        let fetched = fetch(config, &input, show_progress).await?;
        let load_seconds = lap.lap();
        // Deciding happens inside the apply transaction (against the stored rows it loads),
        // so the run has two parts: getting the roster, and applying it.
        let stats = apply_roster(pool, &fetched, guard, EventSource::run(run_id)).await?;
        let timings = StageTimings {
            load_seconds: Some(load_seconds),
            plan_seconds: None,
            apply_seconds: Some(lap.lap()),
        };
        Ok((stats.clone(), report(&stats).timed(timings)))
    })
    .await
}

/// Apply an already-fetched roster as one recorded run (the demo and tests use this).
pub async fn sync_fetched(
    pool: &PgPool,
    fetched: &FetchedRoster,
    guard: RemovalGuard,
) -> Result<BlizzardSyncStats> {
    record_run(pool, SOURCE, |run_id| async move {
        let stats = apply_roster(pool, fetched, guard, EventSource::run(run_id)).await?;
        Ok((stats.clone(), report(&stats)))
    })
    .await
}

fn report(stats: &BlizzardSyncStats) -> RunReport {
    let counts = RunCounts::default()
        .found(stats.found)
        .updated(stats.updated)
        .new(stats.new)
        .removed(stats.removed);
    let mut report = RunReport::success(counts, stats);
    if stats.profiles_failed > 0 {
        report.status = RunStatus::Partial;
        report.error = Some(format!(
            "{} character profiles could not be fetched; their roster data was kept",
            stats.profiles_failed
        ));
    }
    report
}

/// Fetch the roster and every profile from `input`. With `show_progress` and a terminal on
/// stderr, live profile fetches show a progress bar.
pub async fn fetch(
    config: &Config,
    input: &BlizzardInput,
    show_progress: bool,
) -> Result<FetchedRoster> {
    match input {
        BlizzardInput::Dir(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || blizzard_client::read_dir(&dir, || {}))
                .await
                .context("the roster reading task failed")?
        }
        BlizzardInput::Live => {
            let client = BlizzardClient::from_config(config)?;
            let roster = client.roster().await?;
            let bar = if show_progress && std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new(roster.members.len() as u64);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "profiles {bar:40} {pos}/{len} ({per_sec}, eta {eta})",
                ) {
                    bar.set_style(style);
                }
                bar
            } else {
                indicatif::ProgressBar::hidden()
            };
            let profiles = client.profiles(&roster, || bar.inc(1)).await;
            bar.finish_and_clear();
            Ok(FetchedRoster { roster, profiles })
        }
    }
}

/// Apply a fetched roster to `wow_characters` in one transaction (not recorded in `sync_log`;
/// [`run`] and [`sync_fetched`] wrap it). The database write stage the benchmark measures.
/// The changes' `member_events` are written by the same statements, attributed to `source`.
///
/// Three steps: [`load`] the stored characters and reference caches, [`decide`] (no database)
/// what to write, [`apply`] it. A refused roster (the mass-removal guard, a half-fetched one)
/// is an error before anything is written.
pub async fn apply_roster(
    pool: &PgPool,
    fetched: &FetchedRoster,
    guard: RemovalGuard,
    source: EventSource,
) -> Result<BlizzardSyncStats> {
    if fetched.profiles.len() != fetched.roster.members.len() {
        bail!(
            "{} profiles for {} roster members; refusing a half-fetched roster",
            fetched.profiles.len(),
            fetched.roster.members.len()
        );
    }
    let mut tx = pool
        .begin()
        .await
        .context("cannot start the sync transaction")?;
    let stored = load(&mut tx).await?;
    let writes = decide(&stored, fetched, guard)?;
    let stats = apply(&mut tx, writes, source).await?;
    tx.commit().await.context("cannot commit the roster")?;
    tracing::info!(?stats, "roster applied");
    Ok(stats)
}

/// What [`decide`] works from: the reference caches and every stored character.
struct StoredRoster {
    cache: ReferenceCache,
    existing: StoredCharacters,
}

/// Load the FK caches (once per run) and the stored characters, in the apply transaction so the
/// decision is made against the rows it will write.
async fn load(tx: &mut PgConnection) -> Result<StoredRoster> {
    let classes = reference::classes(&mut *tx).await?;
    let specs = reference::specializations(&mut *tx).await?;
    let ranks = reference::guild_ranks(&mut *tx).await?;
    let cache = ReferenceCache::new(
        classes
            .iter()
            .map(|c| (c.id, c.blizzard_class_id, c.name.as_str())),
        specs
            .iter()
            .map(|s| (s.id, s.class_id, s.blizzard_spec_id, s.name.as_str())),
        ranks.iter().map(|r| (r.id, r.ingame_rank_index)),
    );
    let existing = characters::existing(&mut *tx).await?;
    Ok(StoredRoster { cache, existing })
}

/// Everything one roster run writes, decided before the first write.
struct RosterWrites {
    /// The counts so far; [`apply`] fills in `updated`, `new` and `removed`.
    stats: BlizzardSyncStats,
    /// Rows that step aside first (displaced rows for good, renamed rows to a placeholder, so
    /// swaps cannot collide), and the names they take.
    aside_ids: Vec<i32>,
    aside_names: Vec<String>,
    /// Logged when rows are displaced.
    displaced: Vec<i32>,
    updates: CharacterColumns,
    /// Each updated row's name before this run (the events' `before`), aligned with
    /// `updates.id`.
    previous_names: Vec<String>,
    inserts: CharacterColumns,
    removals: Vec<i32>,
}

/// Decide the run's writes from the stored rows: `plan_roster` (who is new, gone, back,
/// renamed, displaced), the mass-removal guard, and each member's merged columns, leaving out
/// in-guild rows whose input is the same as their last write. Touches no database.
fn decide(
    stored: &StoredRoster,
    fetched: &FetchedRoster,
    guard: RemovalGuard,
) -> Result<RosterWrites> {
    let FetchedRoster { roster, profiles } = fetched;
    let plan = checked_plan(&stored.existing, &roster.members, guard)?;
    let names: HashMap<i32, &str> = stored
        .existing
        .rows
        .iter()
        .map(|r| (r.id, r.name.as_str()))
        .collect();
    let name_of = |id: i32| names.get(&id).copied().unwrap_or("");
    let mut writes = RosterWrites::set_aside(&plan, roster.members.len(), name_of);
    let home = HomeRealm {
        slug: &roster.guild.realm.slug,
        name: roster.guild.realm.name.as_deref(),
    };
    for ((member, profile), &action) in roster.members.iter().zip(profiles).zip(&plan.actions) {
        writes.add_member(stored, home, (member, profile), action, name_of);
    }
    Ok(writes)
}

/// The roster plan against the stored rows, refused when the mass-removal guard does not
/// permit its departures.
fn checked_plan(
    existing: &StoredCharacters,
    members: &[RosterMember],
    guard: RemovalGuard,
) -> Result<RosterPlan> {
    let keys: Vec<IncomingKey> = members
        .iter()
        .map(|m| IncomingKey {
            blizzard_id: Some(m.character.id),
            name: m.character.name.clone(),
            realm_slug: m.character.realm.slug.clone(),
        })
        .collect();
    let plan = plan_roster(&existing.rows, &keys).context("refusing the roster")?;
    if !guard.permits(plan.removals.len(), plan.present_before) {
        bail!(
            "refusing the roster: it would mark {} of {} in-guild characters departed at once \
             (more than {:.0}%); if the guild really shrank, rerun with --allow-mass-removal",
            plan.removals.len(),
            plan.present_before,
            guard.max_fraction * 100.0
        );
    }
    Ok(plan)
}

impl RosterWrites {
    /// The plan's counts, the rows that step aside and the removals; no member columns yet.
    fn set_aside<'a>(plan: &RosterPlan, found: usize, name_of: impl Fn(i32) -> &'a str) -> Self {
        RosterWrites {
            stats: BlizzardSyncStats {
                found,
                returned: plan.returns(),
                duplicates: plan.duplicates(),
                displaced: plan.displaced.len(),
                ..BlizzardSyncStats::default()
            },
            aside_ids: plan
                .displaced
                .iter()
                .chain(&plan.renamed)
                .copied()
                .collect(),
            aside_names: plan
                .displaced
                .iter()
                .map(|&id| displaced_name(name_of(id), id))
                .chain(plan.renamed.iter().map(|id| format!("#{id}")))
                .collect(),
            displaced: plan.displaced.clone(),
            updates: CharacterColumns::default(),
            previous_names: Vec::new(),
            inserts: CharacterColumns::default(),
            removals: plan.removals.clone(),
        }
    }

    /// Merge one roster member (entry and profile) into its columns and add it to the inserts
    /// or the updates as `action` says; an in-guild row whose input is the same as its last
    /// write is left out.
    fn add_member<'a>(
        &mut self,
        stored: &StoredRoster,
        home: HomeRealm<'_>,
        (member, profile): (&RosterMember, &ProfileFetch),
        action: MemberAction,
        name_of: impl Fn(i32) -> &'a str,
    ) {
        let target = match action {
            MemberAction::Duplicate => return,
            MemberAction::Insert => Target::Insert,
            MemberAction::Update {
                id,
                renamed,
                returned,
            } => {
                self.stats.renamed += usize::from(renamed);
                Target::Update { id, returned }
            }
        };
        let facts = member_facts(member, profile);
        let columns = member_columns(&stored.cache, home, &facts);
        self.stats.count(profile, &facts, &columns);
        let raw = match profile {
            ProfileFetch::Found(p) => Some(&p.raw),
            ProfileFetch::NotFound | ProfileFetch::Failed(_) => None,
        };
        let hash = characters::input_hash(&columns, raw);
        let batch = match target {
            Target::Insert => &mut self.inserts,
            // The same input as the row's last write, and the row is in the guild: the row
            // already holds it (its `last_api_sync` is derived, migration 1420).
            Target::Update {
                id,
                returned: false,
            } if stored.existing.input_hash.get(&id) == Some(&hash) => return,
            Target::Update { id, .. } => {
                self.updates.id.push(id);
                self.previous_names.push(name_of(id).to_owned());
                &mut self.updates
            }
        };
        batch.push(columns, raw.cloned(), hash);
    }
}

/// Where [`decide`] sends a (non-duplicate) member.
#[derive(Clone, Copy)]
enum Target {
    Insert,
    Update { id: i32, returned: bool },
}

/// Write what [`decide`] decided, with a handful of set-based statements: names aside, the batch
/// update, inserts (with `joined_guild` events unless this is the guild's first roster),
/// removals, and the roster's sync time. Returns the run's stats.
async fn apply(
    tx: &mut PgConnection,
    writes: RosterWrites,
    source: EventSource,
) -> Result<BlizzardSyncStats> {
    let RosterWrites {
        mut stats,
        aside_ids,
        aside_names,
        displaced,
        updates,
        previous_names,
        inserts,
        removals,
    } = writes;
    characters::set_names(&mut *tx, &aside_ids, &aside_names).await?;
    if !displaced.is_empty() {
        tracing::info!(rows = ?displaced, "departed characters displaced by a rename or a reused name");
    }
    stats.updated =
        characters::update_batch(&mut *tx, &updates, &previous_names, source).await? as usize;
    // Before the first applied roster, what it finds is the guild, not joins. Not "no character
    // in the guild": a roster that emptied the guild (allowed mass removal) is not a first sync.
    // Read only when there is someone new: a re-sync without joins pays nothing for it.
    let baseline =
        !inserts.is_empty() && !member_events::history_started(&mut *tx, Baseline::Roster).await?;
    stats.new = characters::insert_batch(&mut *tx, &inserts, source, baseline).await? as usize;
    stats.removed = characters::mark_removed(&mut *tx, &removals, source).await? as usize;
    characters::record_roster_sync(&mut *tx).await?;
    Ok(stats)
}

/// A roster entry and its profile as the core's plain [`MemberFacts`].
fn member_facts<'a>(member: &'a RosterMember, profile: &'a ProfileFetch) -> MemberFacts<'a> {
    let named = |r: &'a blizzard_client::NamedRef| Named {
        id: r.id,
        name: r.name.as_deref(),
    };
    let character = &member.character;
    MemberFacts {
        blizzard_id: character.id,
        name: &character.name,
        realm_slug: &character.realm.slug,
        realm_name: character.realm.name.as_deref(),
        class: character.playable_class.as_ref().map(named),
        level: character.level,
        rank_index: member.rank,
        profile: match profile {
            ProfileFetch::Found(p) => Some(ProfileFacts {
                class: p.fields.character_class.as_ref().map(named),
                active_spec: p.fields.active_spec.as_ref().map(named),
                realm_name: p.fields.realm.name.as_deref(),
                level: p.fields.level,
                item_level: p.fields.equipped_item_level,
                achievement_points: p.fields.achievement_points,
                last_login_ms: p.fields.last_login_timestamp,
            }),
            ProfileFetch::NotFound | ProfileFetch::Failed(_) => None,
        },
    }
}

impl BlizzardSyncStats {
    /// Count one member's profile fetch and the references that resolved to nothing (stored
    /// as NULL, each with a warning naming the character).
    fn count(&mut self, profile: &ProfileFetch, facts: &MemberFacts<'_>, c: &MemberColumns) {
        match profile {
            ProfileFetch::Found(_) => self.profiles_fetched += 1,
            ProfileFetch::NotFound => self.profiles_not_found += 1,
            ProfileFetch::Failed(_) => self.profiles_failed += 1,
        }
        if c.class == Resolved::Unknown {
            self.unknown_class += 1;
            tracing::warn!(character = %c.character_name, realm = %c.realm_slug,
                class = ?facts.class, "unknown class; stored as NULL");
        }
        if c.spec == Resolved::Unknown {
            self.unknown_spec += 1;
            tracing::warn!(character = %c.character_name, realm = %c.realm_slug,
                "unknown specialization; stored as NULL");
        }
        if c.rank == Resolved::Unknown {
            self.unknown_rank += 1;
            tracing::warn!(character = %c.character_name, realm = %c.realm_slug,
                rank_index = facts.rank_index, "no guild rank maps this in-game rank index; stored as NULL");
        }
    }
}
