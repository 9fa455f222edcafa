//! `guild-sync bench`: the whole pipeline on a synthetic guild of a given size, in a fresh
//! database, with per-stage wall times and peak memory. This is where SPEC §7's targets are
//! measured (never in tests): run it with `cargo run --release -- bench`.
//!
//! Each scenario writes its guild in the real input formats, then runs every stage twice: the
//! first run loads an empty database; the second is the steady state a scheduled run sees (same
//! inputs, nothing to change).

pub mod quality;
pub mod synthetic;

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sqlx::PgPool;

use crate::config::{Config, RemovalGuard};
use crate::database::Database;
use crate::db_sync::BlizzardInput;
use crate::discord_sync::DiscordInput;

/// Seed of the synthetic guild: the same sizes always give the same guild.
const SEED: u64 = 20_261_125;

/// One stage's measurement.
#[derive(Debug, Clone)]
pub struct StageTiming {
    pub stage: &'static str,
    pub first: Duration,
    pub second: Duration,
    /// Peak resident memory of this process during the stage's first run, in bytes.
    pub peak_rss: Option<u64>,
}

/// Run the benchmark for `characters` × each of `discord_sizes`, printing a table per scenario.
pub async fn run(config: &Config, characters: usize, discord_sizes: &[usize]) -> Result<()> {
    for &discord_members in discord_sizes {
        let size = synthetic::GuildSize {
            characters,
            discord_members,
        };
        let timings = run_scenario(config, size).await?;
        println!("{}", render(size, &timings.0, &timings.1));
    }
    Ok(())
}

async fn run_scenario(
    config: &Config,
    size: synthetic::GuildSize,
) -> Result<(synthetic::Generated, Vec<StageTiming>)> {
    let dir = std::env::temp_dir().join(format!("guild-sync-bench-{}", std::process::id()));
    let generated = synthetic::write_guild(&dir, size, SEED)
        .with_context(|| format!("cannot write the synthetic guild to {}", dir.display()))?;
    let name = format!("guild_sync_bench_{}", std::process::id());
    let db = Database::open_scratch(config, &name).await?;
    let outcome = measure_stages(&db.pool, config, &dir).await;
    // Issue 14: how right the links are, against the generator's truth.
    let quality = quality::score_database(&db.pool, &generated.truth).await;
    db.drop_scratch().await?;
    println!("{}", quality?.render());
    std::fs::remove_dir_all(&dir).ok();
    Ok((generated, outcome?))
}

async fn measure_stages(
    pool: &PgPool,
    config: &Config,
    dir: &std::path::Path,
) -> Result<Vec<StageTiming>> {
    let guard = RemovalGuard::from_config(config, false);
    let mut timings: Vec<StageTiming> = Vec::new();
    for pass in 0..2 {
        let mut record = |stage: &'static str, elapsed: Duration, peak: Option<u64>| {
            if pass == 0 {
                timings.push(StageTiming {
                    stage,
                    first: elapsed,
                    second: Duration::ZERO,
                    peak_rss: peak,
                });
            } else if let Some(t) = timings.iter_mut().find(|t| t.stage == stage) {
                t.second = elapsed;
            }
        };
        let (t, m) = timed(crate::db_sync::run(
            pool,
            config,
            BlizzardInput::Dir(dir.join("blizzard")),
            guard,
            false,
        ))
        .await?;
        record("sync blizzard (files)", t, m);
        let (t, m) = timed(crate::discord_sync::run(
            pool,
            config,
            DiscordInput::File(dir.join("discord.json")),
            guard,
        ))
        .await?;
        record("sync discord (file)", t, m);
        let (t, m) = timed(async {
            let export = crate::addon_processor::read_export_file(&dir.join("PATTSync.lua"))?;
            crate::db_sync::addon::sync_addon_data(pool, &export).await
        })
        .await?;
        record("sync addon (file)", t, m);
        let (t, m) = timed(crate::identity_engine::run_matching(pool)).await?;
        record("match", t, m);
        let (t, m) = timed(crate::integrity_checker::run_integrity_check(pool, config)).await?;
        record("check", t, m);
        let (t, m) = timed(crate::reporter::render_text_report(pool, true)).await?;
        record("report (render)", t, m);
    }
    Ok(timings)
}

/// Run one stage, returning its wall time and the process's peak RSS during it.
async fn timed<T>(stage: impl Future<Output = Result<T>>) -> Result<(Duration, Option<u64>)> {
    reset_peak_rss();
    let started = Instant::now();
    stage.await?;
    Ok((started.elapsed(), peak_rss()))
}

/// Reset the kernel's peak-RSS counter (VmHWM) so the next reading covers one stage only.
fn reset_peak_rss() {
    // "5" resets VmHWM (see proc(5), /proc/pid/clear_refs); harmless where unsupported.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn render(
    size: synthetic::GuildSize,
    generated: &synthetic::Generated,
    timings: &[StageTiming],
) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "guild-sync bench: {} characters × {} Discord members ({} players, {} members with a guild role)",
        size.characters, size.discord_members, generated.players, generated.guild_role_members
    );
    let _ = writeln!(
        out,
        "{:<24} {:>12} {:>12} {:>14}",
        "stage", "first run", "second run", "peak RSS"
    );
    for t in timings {
        let peak = t
            .peak_rss
            .map(|b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            out,
            "{:<24} {:>9.1} ms {:>9.1} ms {:>14}",
            t.stage,
            ms(t.first),
            ms(t.second),
            peak
        );
    }
    let first: Duration = timings.iter().map(|t| t.first).sum();
    let second: Duration = timings.iter().map(|t| t.second).sum();
    let _ = writeln!(
        out,
        "{:<24} {:>9.1} ms {:>9.1} ms",
        "pipeline total",
        ms(first),
        ms(second)
    );
    out
}
