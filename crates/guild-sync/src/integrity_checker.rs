//! integrity_checker: finds what does not add up and keeps `audit_issues` in step with it.
//!
//! Load → decide → apply, in one transaction per run: the live checks of
//! [`crate::db::integrity`] and the open issues are loaded,
//! `guild_sync_core::integrity::plan_keyed` decides what is new, still open, changed or gone,
//! and [`crate::db::audit_issues`] writes it with a handful of set-based statements. It never links or unlinks anything; it only records issues.
//!
//! Built for big community servers (tens of thousands of open issues): open issues are compared
//! by a content fingerprint rather than by loading their text, the checks' rows come back
//! unsorted (new issues are ordered in Rust), and the findings are built while the database is
//! still answering the open-issues query. `cargo bench --bench integrity` measures it.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use guild_sync_core::integrity::{
    Finding, IssueType, LinkBasis, ManualResolution, OpenIssue, SeenBasis, TypeCounts,
    key_findings, plan_keyed,
};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::config::Config;
use crate::db::integrity::RowOrder;
use crate::db::sync_log::RunCounts;
use crate::db::{audit_issues, integrity};
use crate::run_recorder::{Lap, RunReport, StageTimings, record_run};

/// What a check run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CheckStats {
    /// Causes found this run (every checker type).
    pub findings: u64,
    pub new: u64,
    pub still_open: u64,
    /// Open issues auto-resolved because their cause is gone.
    pub resolved: u64,
    /// Found but not re-flagged: resolved by hand while the cause persisted.
    pub suppressed: u64,
    /// Open issues whose summary or details were refreshed.
    pub updated: u64,
    /// The same counts per issue type (stored form), every type present.
    pub by_type: BTreeMap<String, TypeCounts>,
}

/// Run every check once as a recorded run (`sync_log.source = 'check'`).
pub async fn run_integrity_check(pool: &PgPool, config: &Config) -> Result<CheckStats> {
    let stale_days = i32::try_from(config.guild_sync_stale_days)
        .ok()
        .filter(|d| *d > 0)
        .with_context(|| {
            format!(
                "GUILD_SYNC_STALE_DAYS must be a positive number of days, not {}",
                config.guild_sync_stale_days
            )
        })?;
    record_run(pool, "check", |_run_id| async move {
        let (stats, timings) = check_timed(pool, stale_days).await?;
        let counts = RunCounts::default()
            .found(stats.findings)
            .updated(stats.still_open)
            .new(stats.new)
            .removed(stats.resolved);
        tracing::info!(
            new = stats.new,
            still_open = stats.still_open,
            resolved = stats.resolved,
            "integrity check done"
        );
        Ok((
            stats.clone(),
            RunReport::success(counts, &stats).timed(timings),
        ))
    })
    .await
}

/// One check in one transaction (not recorded; [`run_integrity_check`] records it).
pub async fn check(pool: &PgPool, stale_days: i32) -> Result<CheckStats> {
    Ok(check_timed(pool, stale_days).await?.0)
}

/// [`check`], with where it spent its time: loading (rows and open issues; the findings are
/// built meanwhile), planning, and writing.
async fn check_timed(pool: &PgPool, stale_days: i32) -> Result<(CheckStats, StageTimings)> {
    let mut lap = Lap::start();
    let mut tx = pool
        .begin()
        .await
        .context("cannot start the check transaction")?;
    audit_issues::lock_check_runs(&mut tx)
        .await
        .context("cannot take the check-run lock")?;
    audit_issues::size_work_memory(&mut tx)
        .await
        .context("cannot size the check transaction's working memory")?;
    let rows = load_check_rows(&mut tx, stale_days).await?;
    // The findings are built and keyed on a blocking thread while this task has the database
    // answer the open-issues query: at tens of thousands of issues each side is a good part of
    // a run where nothing changed, and the machine has a core for each.
    let building = tokio::task::spawn_blocking(move || key_findings(rows.into_findings()));
    let open = audit_issues::open_issues(&mut *tx).await;
    let keyed = building.await.context("building the findings failed")?;
    let open: Vec<OpenIssue> = open
        .context("cannot load the open audit issues")?
        .into_iter()
        .map(|row| OpenIssue {
            id: row.id,
            issue_type: row.issue_type,
            issue_hash: row.issue_hash,
            content_hash: row.content_hash,
            cause_gone: row.cause_gone,
        })
        .collect();
    let manual: Vec<ManualResolution> = audit_issues::live_manual_resolutions(&mut *tx)
        .await
        .context("cannot load the manually resolved issues")?
        .into_iter()
        .map(|(id, issue_hash)| ManualResolution { id, issue_hash })
        .collect();

    let load_seconds = lap.lap();
    let findings_count = keyed.len() as u64;
    let plan = plan_keyed(keyed, &open, &manual);
    let plan_seconds = lap.lap();

    audit_issues::insert_issues(&mut *tx, &plan.insert)
        .await
        .context("cannot insert the new audit issues")?;
    let updated = audit_issues::update_open_issues(&mut *tx, &plan.update)
        .await
        .context("cannot update the open audit issues")?;
    audit_issues::resolve_auto(&mut *tx, &plan.resolve)
        .await
        .context("cannot resolve the audit issues whose cause is gone")?;
    audit_issues::spend_manual_resolutions(&mut *tx, &plan.spend_manual)
        .await
        .context("cannot update the manually resolved issues")?;
    tx.commit()
        .await
        .context("cannot commit the check transaction")?;
    let timings = StageTimings {
        load_seconds: Some(load_seconds),
        plan_seconds: Some(plan_seconds),
        apply_seconds: Some(lap.lap()),
    };

    let mut stats = CheckStats {
        findings: findings_count,
        updated,
        ..CheckStats::default()
    };
    for t in IssueType::ALL {
        let counts = plan.counts.get(&t).copied().unwrap_or_default();
        stats.new += counts.new;
        stats.still_open += counts.still_open;
        stats.resolved += counts.resolved;
        stats.suppressed += counts.suppressed;
        stats.by_type.insert(t.as_str().to_string(), counts);
    }
    Ok((stats, timings))
}

/// What every check returned, as rows; [`CheckRows::into_findings`] turns them into findings.
struct CheckRows {
    orphan_wow: Vec<integrity::OrphanWowRow>,
    orphan_discord: Vec<integrity::OrphanDiscordRow>,
    rank_mismatches: Vec<integrity::RankMismatchRow>,
    no_guild_role: Vec<integrity::NoGuildRoleRow>,
    stale: Vec<integrity::StaleCharacterRow>,
    inactive: Vec<integrity::InactivePlayerRow>,
    former_members: Vec<integrity::FormerMemberRow>,
    stale_days: i32,
    duplicates: Vec<integrity::DuplicateDiscordRow>,
}

/// Run every check query.
async fn load_check_rows(conn: &mut PgConnection, stale_days: i32) -> Result<CheckRows> {
    Ok(CheckRows {
        orphan_wow: integrity::orphan_wow(&mut *conn, RowOrder::Any)
            .await
            .context("orphan_wow check failed")?,
        orphan_discord: integrity::orphan_discord(&mut *conn, RowOrder::Any)
            .await
            .context("orphan_discord check failed")?,
        rank_mismatches: integrity::rank_mismatches(&mut *conn)
            .await
            .context("rank_mismatch check failed")?,
        no_guild_role: integrity::no_guild_role(&mut *conn)
            .await
            .context("no_guild_role check failed")?,
        stale: integrity::stale_characters(&mut *conn, stale_days)
            .await
            .context("stale_character check failed")?,
        inactive: integrity::inactive_players(&mut *conn, stale_days)
            .await
            .context("inactive_player check failed")?,
        former_members: integrity::former_members_with_role(&mut *conn)
            .await
            .context("former_member_has_role check failed")?,
        stale_days,
        duplicates: integrity::duplicate_discord(&mut *conn)
            .await
            .context("duplicate_discord check failed")?,
    })
}

impl CheckRows {
    /// Every cause the checks saw, as core findings.
    fn into_findings(self) -> Vec<Finding> {
        let mut findings = Vec::with_capacity(
            self.orphan_wow.len()
                + self.orphan_discord.len()
                + self.rank_mismatches.len()
                + self.no_guild_role.len()
                + self.stale.len()
                + self.inactive.len()
                + self.former_members.len()
                + self.duplicates.len(),
        );
        for row in self.orphan_wow {
            findings.push(Finding::orphan_wow(
                row.id,
                &row.character_name,
                &row.realm_slug,
                row.rank_name.as_deref(),
            ));
        }
        for row in self.orphan_discord {
            findings.push(Finding::orphan_discord(
                row.id,
                row.display_name.as_deref(),
                &row.username,
                &row.discord_id,
                &row.highest_guild_role,
            ));
        }
        for row in self.rank_mismatches {
            findings.push(Finding::rank_mismatch(
                row.player_id,
                &row.display_name,
                row.discord_user_id,
                &row.ingame_rank,
                row.expected_discord_role.as_deref(),
                &row.discord_role,
                Some(&LinkBasis {
                    character_name: row.ranked_character.clone(),
                    link_source: row.ranked_link_source,
                }),
            ));
        }
        for row in self.no_guild_role {
            findings.push(Finding::no_guild_role(
                row.player_id,
                &row.display_name,
                row.discord_user_id,
                row.discord_display_name.as_deref(),
                &row.username,
                &row.ingame_rank,
                Some(&LinkBasis {
                    character_name: row.ranked_character.clone(),
                    link_source: row.ranked_link_source,
                }),
            ));
        }
        for row in self.stale {
            let basis = if row.from_login {
                SeenBasis::LastLogin
            } else {
                SeenBasis::LastApiSync
            };
            findings.push(Finding::stale_character(
                row.id,
                &row.character_name,
                &row.realm_slug,
                row.last_seen,
                basis,
                row.days_ago,
                i64::from(self.stale_days),
            ));
        }
        for row in self.inactive {
            findings.push(Finding::inactive_player(
                row.player_id,
                &row.display_name,
                row.last_activity,
                row.days_ago,
                i64::from(self.stale_days),
                &row.alts,
            ));
        }
        for row in self.former_members {
            findings.push(Finding::former_member_has_role(
                row.player_id,
                &row.display_name,
                row.discord_user_id,
                &row.username,
                row.left_at,
                &row.roles,
            ));
        }
        for row in self.duplicates {
            let players: Vec<(i32, String)> =
                row.player_ids.into_iter().zip(row.player_names).collect();
            findings.push(Finding::duplicate_discord(
                row.discord_user_id,
                row.display_name.as_deref(),
                &row.username,
                &players,
            ));
        }
        findings
    }
}

/// The human summary `guild-sync check` prints: new / still open / resolved per type.
pub fn render_stats(stats: &CheckStats) -> String {
    let mut out = format!(
        "{:<22} {:>6} {:>10} {:>9}\n",
        "issue type", "new", "still open", "resolved"
    );
    for t in IssueType::ALL {
        let c = stats.by_type.get(t.as_str()).copied().unwrap_or_default();
        out.push_str(&format!(
            "{:<22} {:>6} {:>10} {:>9}\n",
            t.as_str(),
            c.new,
            c.still_open,
            c.resolved
        ));
    }
    out.push_str(&format!(
        "{:<22} {:>6} {:>10} {:>9}",
        "total", stats.new, stats.still_open, stats.resolved
    ));
    if stats.suppressed > 0 {
        out.push_str(&format!(
            "\n({} found but resolved by hand earlier; not re-flagged)",
            stats.suppressed
        ));
    }
    out
}
