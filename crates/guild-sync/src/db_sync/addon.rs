//! db_sync, addon half: a PATTSync export → notes, class, rank and level on
//! `guild_identity.wow_characters`, matched on name **and** realm (never name alone).
//!
//! Load (character keys, classes, ranks) → decide ([`plan_addon_sync`], pure, in the core) →
//! apply (one set-based UPDATE), all in one transaction and recorded as one `sync_log` run with
//! source `'addon'`. Characters the export names but the database does not know are counted
//! and listed, never created: the Battle.net roster is the authority on who exists — and on
//! ranks: an export older than the newest Battle.net sync never changes a rank.
//!
//! An export older than the last applied one is refused ([`StaleExport`]) unless forced, so an
//! old or forged file cannot overwrite newer notes.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use guild_sync_core::addon::{
    AddonExport, KnownCharacter, KnownClass, KnownRank, StaleExport, battle_net_ranks_are_newer,
    check_not_stale, plan_addon_sync,
};

use crate::addon_processor::LastUpload;
use crate::db;
use crate::db::sync_log::{RunCounts, RunState, RunStatus};
use crate::run_recorder::{Lap, RunReport, StageTimings, record_run};

/// `sync_log.source` of addon runs.
pub const SOURCE: &str = "addon";

/// What an addon sync did; stored in `sync_log.details` and printed by `sync addon --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddonSyncStats {
    /// The `sync_log` id of this run.
    pub run_id: i64,
    /// The export's `exportTime`, unix seconds.
    pub export_time: Option<i64>,
    pub uploaded_by: Option<String>,
    pub addon_version: Option<String>,
    /// Characters in the export.
    pub received: usize,
    /// Characters matched to a row (each confirmed by this export: its derived
    /// `addon_last_sync`, migration 1481).
    pub matched: usize,
    /// Matched rows whose notes, class, rank or level changed (the only rows written).
    pub updated: usize,
    /// Characters with no row.
    pub unknown: usize,
    /// `Name-Realm` of each unknown character.
    pub unknown_characters: Vec<String>,
    /// Characters whose class is not in `guild_identity.classes` (class left unchanged).
    pub unknown_class: Vec<String>,
    /// Characters whose rank index no guild rank claims (rank left unchanged).
    pub unknown_rank: Vec<String>,
    /// Characters matching more than one row; skipped.
    pub ambiguous: Vec<String>,
    /// Malformed optional fields that were ignored, naming the character.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Updates whose rank was not applied because a newer Battle.net sync set the ranks.
    #[serde(default)]
    pub ranks_kept_from_battle_net: usize,
    /// Applied although older than the last applied export (`--force`).
    #[serde(default)]
    pub forced: bool,
}

/// How to apply an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddonSyncOptions {
    /// Apply an export older than the last applied one (`sync addon --force`).
    pub force: bool,
}

/// Refuse an export older than the last one applied (see [`check_not_stale`]). The outer
/// error is the database's; the inner is the refusal, for callers that answer it differently
/// (the upload route with 409).
pub async fn check_fresh(
    db: impl sqlx::PgExecutor<'_>,
    export: &AddonExport,
) -> Result<Result<(), StaleExport>> {
    let last_applied = db::addon::last_applied_export_time(db).await?;
    Ok(check_not_stale(export.export_time, last_applied))
}

/// Apply an export as one recorded run (`sync_log.source = 'addon'`); a stale export is
/// refused (an error whose root is [`StaleExport`]).
pub async fn sync_addon_data(pool: &PgPool, export: &AddonExport) -> Result<AddonSyncStats> {
    sync_addon_data_with(pool, export, AddonSyncOptions::default()).await
}

/// [`sync_addon_data`] with options.
pub async fn sync_addon_data_with(
    pool: &PgPool,
    export: &AddonExport,
    options: AddonSyncOptions,
) -> Result<AddonSyncStats> {
    record_run(pool, SOURCE, |run_id| async move {
        let mut lap = Lap::start();
        let mut tx = pool.begin().await.context("cannot start a transaction")?;
        let stale = check_fresh(&mut *tx, export).await?;
        let forced = match stale {
            Ok(()) => false,
            Err(stale) if options.force => {
                tracing::warn!(%stale, "applying a stale export because it was forced");
                true
            }
            Err(stale) => return Err(anyhow::Error::new(stale)),
        };
        let reference = export
            .export_time
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let battle_net = db::addon::last_battle_net_sync(&mut *tx).await?;
        let characters: Vec<KnownCharacter> = db::addon::character_keys(&mut *tx)
            .await?
            .into_iter()
            .map(|r| KnownCharacter {
                id: r.id,
                name: r.character_name,
                realm_slug: r.realm_slug,
                in_guild: r.in_guild,
            })
            .collect();
        let classes: Vec<KnownClass> = db::reference::classes(&mut *tx)
            .await
            .context("cannot load the classes")?
            .into_iter()
            .map(|c| KnownClass {
                id: c.id,
                name: c.name,
            })
            .collect();
        let ranks: Vec<KnownRank> = db::reference::guild_ranks(&mut *tx)
            .await
            .context("cannot load the guild ranks")?
            .into_iter()
            .map(|r| KnownRank {
                id: r.id,
                ingame_rank_index: r.ingame_rank_index,
            })
            .collect();

        let load_seconds = lap.lap();
        let mut plan = plan_addon_sync(export, &characters, &classes, &ranks);
        let ranks_kept_from_battle_net = if battle_net_ranks_are_newer(reference, battle_net) {
            plan.keep_stored_ranks()
        } else {
            0
        };
        let plan_seconds = lap.lap();
        let applied = db::addon::apply_addon_updates(&mut *tx, &plan.updates).await?;
        tx.commit().await.context("cannot commit the addon notes")?;
        let timings = StageTimings {
            load_seconds: Some(load_seconds),
            plan_seconds: Some(plan_seconds),
            apply_seconds: Some(lap.lap()),
        };

        for label in &plan.unknown_rank {
            tracing::warn!(character = %label, "rank index not mapped to a guild rank; rank left unchanged");
        }
        for warning in &export.warnings {
            tracing::warn!(%warning, "malformed optional field ignored");
        }
        for label in &plan.unknown_class {
            tracing::warn!(character = %label, "class not in the reference table; class left unchanged");
        }
        let stats = AddonSyncStats {
            run_id,
            export_time: export.export_time,
            uploaded_by: export.uploaded_by.clone(),
            addon_version: export.addon_version.clone(),
            received: export.characters.len(),
            matched: applied.matched as usize,
            updated: applied.changed as usize,
            unknown: plan.unknown.len(),
            unknown_characters: plan.unknown,
            unknown_class: plan.unknown_class,
            unknown_rank: plan.unknown_rank,
            ambiguous: plan.ambiguous,
            warnings: export.warnings.iter().map(ToString::to_string).collect(),
            ranks_kept_from_battle_net,
            forced,
        };
        tracing::info!(
            received = stats.received,
            matched = stats.matched,
            updated = stats.updated,
            unknown = stats.unknown,
            "addon export applied"
        );
        let counts = RunCounts::default()
            .found(stats.received)
            .updated(stats.updated);
        let report = RunReport::success(counts, &stats).timed(timings);
        Ok((stats, report))
    })
    .await
}

/// The last addon run as the upload status endpoint reports it (`None` before the first). A run
/// that finished its work must have its [`AddonSyncStats`] in `sync_log.details`; when they do
/// not read back (a field renamed without its readers) this is an error naming the run, never
/// a status with the figures silently blank.
pub async fn last_upload(pool: &PgPool) -> Result<Option<LastUpload>> {
    let Some(row) = db::addon::latest_addon_run(pool).await? else {
        return Ok(None);
    };
    let stats: Option<AddonSyncStats> = match row.status {
        RunState::Finished(RunStatus::Success | RunStatus::Partial) => Some(
            serde_json::from_value(row.details)
                .with_context(|| format!("addon run {} has no readable stats", row.id))?,
        ),
        // A run still going has no stats yet; a failed, skipped or abandoned one recorded none.
        RunState::Running
        | RunState::Finished(RunStatus::Error | RunStatus::Skipped | RunStatus::Abandoned) => None,
    };
    Ok(Some(LastUpload {
        run_id: row.id,
        received_at: row.started_at,
        export_time: stats.as_ref().and_then(|s| s.export_time),
        uploaded_by: stats.as_ref().and_then(|s| s.uploaded_by.clone()),
        addon_version: stats.as_ref().and_then(|s| s.addon_version.clone()),
        characters: stats
            .as_ref()
            .map(|s| s.received)
            .or(row.characters_found.map(|n| n.max(0) as usize))
            .unwrap_or(0),
        matched: stats.as_ref().map(|s| s.matched),
        unknown: stats.as_ref().map(|s| s.unknown),
        status: row.status,
        error: row.error_message,
    }))
}
