//! `guild-sync bench`: the whole pipeline on a synthetic guild of a given size, in a fresh
//! database, with per-stage wall times and peak memory. This is where SPEC §7's targets are
//! measured (never in tests): run it with `cargo run --release -- bench`.
//!
//! Each scenario writes its guild in the real input formats, then runs the full pipeline — the
//! same [`crate::scheduler::Scheduler::run_pipeline`] `serve` runs — four times, timing each
//! stage: the first run loads an empty database; the second is the steady state a scheduled
//! run sees (same inputs, nothing to change); the third sees the guild a week later (ranks,
//! departures, renames and nicknames changed: [`synthetic::Guild::a_week_later`]) and the
//! fourth six hours after that (the next run of the default schedule, with a 28th of those
//! changes: [`synthetic::Guild::six_hours_later`]); both say which events the syncs wrote.
//! Before those two, a year of history ([`HISTORY_EVENTS`] events, [`history::seed_a_year`]) is
//! seeded: issue 19's event cost is what a sync adds to a table a year old, not to an empty one.
//! Each of the two starts after a `CHECKPOINT`, as a sync hours after the last one does.
//! Before the scenarios it times a command's start-up end to end, and each part ends with a
//! `target:` line against issue 21's targets.

pub mod history;
pub mod quality;
pub mod synthetic;

use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;

use crate::config::Config;
use crate::database::Database;
use crate::db::member_events;
use crate::db_sync::BlizzardSyncStats;
use crate::db_sync::addon::AddonSyncStats;
use crate::discord_sync::DiscordSyncStats;
use crate::identity_engine::MatchStats;
use crate::integrity_checker::CheckStats;
use crate::run_recorder::{RunStatus, StageTimings};
use crate::scheduler::{
    AddonInput, PipelineKind, ProductionStages, ReportOutcome, Scheduler, StageInputs, Stages, Step,
};

/// Events in the year of history the later passes run on: about what a 1,000-character guild
/// records in a year (issue 19).
pub const HISTORY_EVENTS: i64 = 100_000;

/// Seed of the synthetic guild: the same sizes always give the same guild.
pub const SEED: u64 = 20_261_125;

/// One stage's measurement.
#[derive(Debug, Clone)]
pub struct StageTiming {
    pub stage: &'static str,
    pub first: Duration,
    pub second: Duration,
    /// Where the stage spent its first and second run (load, plan, apply), as recorded.
    pub first_parts: StageTimings,
    pub second_parts: StageTimings,
    /// Peak resident memory of this process during the stage's first run, in bytes.
    pub peak_rss: Option<u64>,
}

/// The whole pipeline's wall time per pass (lock, stages and bookkeeping).
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineTiming {
    pub first: Duration,
    pub second: Duration,
}

/// Issue 21's target for a whole pipeline at 1,000 × 3,000 (the steady run), in one process.
pub const SMALL_PIPELINE_TARGET: Duration = Duration::from_millis(150);
/// Issue 21's target for a whole steady pipeline at 1,000 × 50,000.
pub const LARGE_PIPELINE_TARGET: Duration = Duration::from_secs(1);
/// Issue 21's target for a command's start-up: process start to connected and migrations checked.
pub const STARTUP_TARGET: Duration = Duration::from_millis(10);
/// Timed start-ups; one more runs first, untimed (it may create the product database).
const STARTUP_RUNS: usize = 20;

/// Run the benchmark: the command start-up, then `characters` × each of `discord_sizes`,
/// printing a table per scenario.
pub async fn run(config: &Config, characters: usize, discord_sizes: &[usize]) -> Result<()> {
    println!("{}", render_startup(&measure_startup(config).await?));
    for &discord_members in discord_sizes {
        let size = synthetic::GuildSize {
            characters,
            discord_members,
        };
        println!("{}", run_scenario(config, size).await?);
    }
    Ok(())
}

/// A command's start-up, end to end and as an officer sees it: `guild-sync migrate` (this
/// binary, this environment) timed from spawn to exit — process start, configuration, the
/// private cluster's "is it running" check, connecting, the migration check and exit. This
/// process holds the database open meanwhile, as the service would, so a private cluster is
/// already running (starting a server is a first-use cost, not start-up).
async fn measure_startup(config: &Config) -> Result<Vec<Duration>> {
    let db = Database::open(config).await?;
    let exe = std::env::current_exe().context("cannot find this binary to time its start-up")?;
    let runs = tokio::task::spawn_blocking(move || -> Result<Vec<Duration>> {
        let mut runs = Vec::with_capacity(STARTUP_RUNS);
        for run in 0..=STARTUP_RUNS {
            let started = Instant::now();
            let out = std::process::Command::new(&exe)
                .arg("migrate")
                .stdin(std::process::Stdio::null())
                .output()
                .context("cannot run guild-sync migrate")?;
            let elapsed = started.elapsed();
            if !out.status.success() {
                bail!(
                    "guild-sync migrate failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            if run > 0 {
                runs.push(elapsed);
            }
        }
        Ok(runs)
    })
    .await
    .context("the start-up timing task failed");
    db.close().await;
    let mut runs = runs??;
    runs.sort();
    Ok(runs)
}

/// One line per figure against its target, so a re-measurement reads at a glance.
fn target_line(what: &str, figure: Duration, target: Duration) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "target: {what}: {:.1} ms vs ≤ {:.0} ms — {}",
        ms(figure),
        ms(target),
        if figure <= target { "met" } else { "MISSED" }
    )
}

/// The `p` quantile (0..=1, nearest rank) of `sorted` latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn render_startup(sorted: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = percentile(sorted, 0.5);
    format!(
        "guild-sync bench: command start-up (`guild-sync migrate`, spawn to exit, {} runs): \
         min {:.1} ms, median {:.1} ms, max {:.1} ms\n{}",
        sorted.len(),
        ms(sorted[0]),
        ms(median),
        ms(sorted[sorted.len() - 1]),
        target_line("command start-up (median)", median, STARTUP_TARGET)
    )
}

async fn run_scenario(config: &Config, size: synthetic::GuildSize) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("guild-sync-bench-{}", std::process::id()));
    let mut guild = synthetic::write_guild(&dir, size, SEED)
        .with_context(|| format!("cannot write the synthetic guild to {}", dir.display()))?;
    let name = format!("guild_sync_bench_{}", std::process::id());
    let db = Database::open_scratch(config, &name).await?;
    let outcome = measure_scenario(&db.pool, config, &dir, &mut guild, size).await;
    db.drop_scratch().await?;
    std::fs::remove_dir_all(&dir).ok();
    outcome
}

/// The two passes on the generated guild, the links' quality, then the passes a week and six
/// hours later.
async fn measure_scenario(
    pool: &PgPool,
    config: &Config,
    dir: &std::path::Path,
    guild: &mut synthetic::Guild,
    size: synthetic::GuildSize,
) -> Result<String> {
    let bench = PipelineBench::new(pool, config, dir);
    let (timings, whole) = bench.first_and_second().await?;
    // Issue 14: how right the links are, against the generator's truth (before the week's
    // changes, which the truth does not follow).
    println!(
        "{}",
        quality::score_database(pool, &guild.generated().truth)
            .await?
            .render()
    );
    let mut out = render(size, guild.generated(), &timings, whole);
    let seeding = Instant::now();
    history::seed_a_year(pool, HISTORY_EVENTS).await?;
    let _ = writeln!(
        out,
        "a year of history: {HISTORY_EVENTS} events seeded in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    // A week of changes landing in one run, then the next run of the default schedule six
    // hours after it: what a run usually writes.
    let passes: [(&str, Change); 2] = [
        ("a week later", synthetic::Guild::a_week_later),
        ("six hours later", synthetic::Guild::six_hours_later),
    ];
    for (when, change) in passes {
        out.push_str(&later_pass(&bench, pool, dir, guild, when, change).await?);
    }
    Ok(out)
}

/// A change to the synthetic guild over a period ([`synthetic::Guild::a_week_later`], …).
type Change = fn(&mut synthetic::Guild) -> synthetic::WeekChanges;

/// One later pass (`when`: "a week later", "six hours later"): `change` applied to the guild
/// and written to `dir`, the pipeline run on it, and the run rendered with the events it wrote.
async fn later_pass(
    bench: &PipelineBench,
    pool: &PgPool,
    dir: &std::path::Path,
    guild: &mut synthetic::Guild,
    when: &str,
    change: Change,
) -> Result<String> {
    let changes = change(guild);
    guild
        .write(dir)
        .with_context(|| format!("cannot write the later guild to {}", dir.display()))?;
    let checkpoint = checkpoint(pool).await;
    let events_before = member_events::counts_since(pool, DateTime::<Utc>::UNIX_EPOCH).await?;
    let (stages, wall) = bench.pass().await?;
    let events_after = member_events::counts_since(pool, DateTime::<Utc>::UNIX_EPOCH).await?;
    Ok(checkpoint
        + &render_later(
            when,
            changes,
            &stages,
            wall,
            &events_written(&events_before, &events_after),
        ))
}

/// A `CHECKPOINT` before a later pass, as a sync hours or a week after the last one finds the
/// database: checkpoints come every few minutes (`checkpoint_timeout`), so the first write to
/// each page a sync touches logs the whole page (full-page writes), and a sync that touches
/// more pages (an event's index entries) pays for each. Empty when done; otherwise a line
/// saying the pass ran without it (a server where this role may not checkpoint: PostgreSQL 15
/// needs a superuser or `pg_checkpoint`; the private cluster's role is its superuser).
async fn checkpoint(pool: &PgPool) -> String {
    match sqlx::query("CHECKPOINT").execute(pool).await {
        Ok(_) => String::new(),
        Err(err) => format!(
            "no checkpoint before this pass ({err}): its writes skip the full-page images a \
             sync after a checkpoint logs\n"
        ),
    }
}

/// Events per type that `after` counts more of than `before` (both from
/// [`member_events::counts_since`]), most first.
fn events_written(before: &[(String, i64)], after: &[(String, i64)]) -> Vec<(String, i64)> {
    let mut written: Vec<(String, i64)> = after
        .iter()
        .map(|(kind, n)| {
            let was = before
                .iter()
                .find(|(k, _)| k == kind)
                .map_or(0, |(_, n)| *n);
            (kind.clone(), n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    written.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    written
}

/// One stage of one pass: its step, wall time, peak RSS and recorded parts.
type MeasuredStage = (Step, Duration, Option<u64>, StageTimings);

/// The production pipeline with timed stages, run pass after pass on one database.
struct PipelineBench {
    stages: Arc<TimedStages>,
    scheduler: Scheduler,
    kind: PipelineKind,
}

impl PipelineBench {
    fn new(pool: &PgPool, config: &Config, dir: &std::path::Path) -> PipelineBench {
        let inputs = StageInputs::files(config, dir.join("blizzard"), dir.join("discord.json"));
        let stages = Arc::new(TimedStages {
            inner: ProductionStages::new(pool.clone(), config.clone(), inputs),
            measured: Mutex::new(Vec::new()),
        });
        PipelineBench {
            scheduler: Scheduler::new(pool.clone(), stages.clone()),
            stages,
            kind: PipelineKind::Full {
                addon: Some(AddonInput::File(dir.join("PATTSync.lua"))),
            },
        }
    }

    /// One whole pipeline run: each stage as measured, and the pipeline's wall time.
    async fn pass(&self) -> Result<(Vec<MeasuredStage>, Duration)> {
        let outcome = self.scheduler.run_pipeline(self.kind.clone()).await?;
        if outcome.status != RunStatus::Success {
            bail!(
                "the benchmark pipeline did not succeed ({}): {}",
                outcome.status.as_str(),
                outcome.error.as_deref().unwrap_or("no error recorded")
            );
        }
        let measured = std::mem::take(&mut *self.stages.measured.lock().expect("not poisoned"));
        let stages = measured
            .into_iter()
            .map(|(step, elapsed, peak)| {
                let parts = outcome
                    .stages
                    .iter()
                    .find(|s| s.step == step)
                    .map(|s| s.timings)
                    .unwrap_or_default();
                (step, elapsed, peak, parts)
            })
            .collect();
        Ok((stages, Duration::from_secs_f64(outcome.duration_seconds)))
    }

    /// The first pass (an empty database) and the second (the same inputs: the steady state).
    async fn first_and_second(&self) -> Result<(Vec<StageTiming>, PipelineTiming)> {
        let (first, first_wall) = self.pass().await?;
        let (second, second_wall) = self.pass().await?;
        let timings = first
            .into_iter()
            .map(|(step, elapsed, peak, parts)| {
                let again = second.iter().find(|s| s.0 == step);
                StageTiming {
                    stage: label(step),
                    first: elapsed,
                    second: again.map_or(Duration::ZERO, |s| s.1),
                    first_parts: parts,
                    second_parts: again.map(|s| s.3).unwrap_or_default(),
                    peak_rss: peak,
                }
            })
            .collect();
        let whole = PipelineTiming {
            first: first_wall,
            second: second_wall,
        };
        Ok((timings, whole))
    }
}

/// The benchmark table's name for a step.
fn label(step: Step) -> &'static str {
    match step {
        Step::BlizzardSync => "sync blizzard (files)",
        Step::DiscordSync => "sync discord (file)",
        Step::AddonSync => "sync addon (file)",
        Step::Match => "match",
        Step::Check => "check",
        Step::Report => "report (render)",
    }
}

/// The production stages with each call's wall time and peak RSS written down, so the
/// benchmark measures the very pipeline `serve` runs, stage by stage.
struct TimedStages {
    inner: ProductionStages,
    measured: Mutex<Vec<(Step, Duration, Option<u64>)>>,
}

impl TimedStages {
    fn timed<'a, T: Send + 'a>(
        &'a self,
        step: Step,
        stage: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        async move {
            let (elapsed, peak, value) = timed(stage).await?;
            self.measured
                .lock()
                .expect("not poisoned")
                .push((step, elapsed, peak));
            Ok(value)
        }
        .boxed()
    }
}

impl Stages for TimedStages {
    fn blizzard_sync(&self) -> BoxFuture<'_, Result<BlizzardSyncStats>> {
        self.timed(Step::BlizzardSync, self.inner.blizzard_sync())
    }
    fn discord_sync(&self) -> BoxFuture<'_, Result<DiscordSyncStats>> {
        self.timed(Step::DiscordSync, self.inner.discord_sync())
    }
    fn addon_sync<'a>(&'a self, input: &'a AddonInput) -> BoxFuture<'a, Result<AddonSyncStats>> {
        self.timed(Step::AddonSync, self.inner.addon_sync(input))
    }
    fn run_matching(&self) -> BoxFuture<'_, Result<MatchStats>> {
        self.timed(Step::Match, self.inner.run_matching())
    }
    fn integrity_check(&self) -> BoxFuture<'_, Result<CheckStats>> {
        self.timed(Step::Check, self.inner.integrity_check())
    }
    fn report(&self) -> BoxFuture<'_, Result<ReportOutcome>> {
        self.timed(Step::Report, self.inner.report())
    }
}

/// Run one stage, returning its wall time and the process's peak RSS during it.
async fn timed<T>(stage: impl Future<Output = Result<T>>) -> Result<(Duration, Option<u64>, T)> {
    reset_peak_rss();
    let started = Instant::now();
    let value = stage.await?;
    Ok((started.elapsed(), peak_rss(), value))
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

/// "load/plan/apply" in milliseconds, `-` for a part the stage does not have.
fn parts(t: &StageTimings) -> String {
    let ms = |s: Option<f64>| s.map_or_else(|| "-".to_owned(), |s| format!("{:.1}", s * 1000.0));
    format!(
        "{}/{}/{}",
        ms(t.load_seconds),
        ms(t.plan_seconds),
        ms(t.apply_seconds)
    )
}

fn render(
    size: synthetic::GuildSize,
    generated: &synthetic::Generated,
    timings: &[StageTiming],
    whole: PipelineTiming,
) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let first: Duration = timings.iter().map(|t| t.first).sum();
    let second: Duration = timings.iter().map(|t| t.second).sum();
    let share = |part: Duration, of: Duration| {
        if of.is_zero() {
            0.0
        } else {
            100.0 * part.as_secs_f64() / of.as_secs_f64()
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "guild-sync bench: {} characters × {} Discord members ({} players, {} members with a guild role)",
        size.characters, size.discord_members, generated.players, generated.guild_role_members
    );
    let _ = writeln!(
        out,
        "{:<24} {:>12} {:>6} {:>12} {:>6} {:>22} {:>22} {:>10}",
        "stage",
        "first run",
        "share",
        "second run",
        "share",
        "1st load/plan/apply ms",
        "2nd load/plan/apply ms",
        "peak RSS"
    );
    for t in timings {
        let peak = t
            .peak_rss
            .map(|b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
            .unwrap_or_else(|| "n/a".into());
        let _ = writeln!(
            out,
            "{:<24} {:>9.1} ms {:>5.1}% {:>9.1} ms {:>5.1}% {:>22} {:>22} {:>10}",
            t.stage,
            ms(t.first),
            share(t.first, first),
            ms(t.second),
            share(t.second, second),
            parts(&t.first_parts),
            parts(&t.second_parts),
            peak
        );
    }
    let _ = writeln!(
        out,
        "{:<24} {:>9.1} ms {:>6} {:>9.1} ms",
        "stages total",
        ms(first),
        "",
        ms(second)
    );
    let _ = writeln!(
        out,
        "{:<24} {:>9.1} ms {:>6} {:>9.1} ms   (lock, sync_log rows and stages)",
        "pipeline wall",
        ms(whole.first),
        "",
        ms(whole.second)
    );
    let peak = timings
        .iter()
        .filter_map(|t| t.peak_rss)
        .max()
        .map(|b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
        .unwrap_or_else(|| "n/a".into());
    let _ = writeln!(
        out,
        "peak RSS of the process (highest stage, first run): {peak}"
    );
    if let Some(target) = pipeline_target(size) {
        let _ = writeln!(
            out,
            "{}",
            target_line("whole steady pipeline (second run)", whole.second, target)
        );
    }
    out
}

/// A later pass (`when`: "a week later", "six hours later"): the same guild with rank
/// changes, departures, renames and new nicknames, with the events the syncs wrote. Issue 19's
/// "added cost of writing events" is these passes measured against a build without event
/// writing.
fn render_later(
    when: &str,
    changes: synthetic::WeekChanges,
    stages: &[MeasuredStage],
    wall: Duration,
    events: &[(String, i64)],
) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{when}: {} rank changes, {} left the guild, {} renamed; {} new Discord nicknames, \
         {} left Discord",
        changes.rank_changed,
        changes.left_guild,
        changes.renamed,
        changes.discord_renamed,
        changes.left_discord
    );
    let total: i64 = events.iter().map(|(_, n)| n).sum();
    let kinds: Vec<String> = events.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        out,
        "events written: {total} ({})",
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "{:<24} {:>12} {:>22}",
        "stage", "this run", "load/plan/apply ms"
    );
    for (step, elapsed, _, parts_) in stages {
        let _ = writeln!(
            out,
            "{:<24} {:>9.1} ms {:>22}",
            label(*step),
            ms(*elapsed),
            parts(parts_)
        );
    }
    let sum: Duration = stages.iter().map(|s| s.1).sum();
    let _ = writeln!(out, "{:<24} {:>9.1} ms", "stages total", ms(sum));
    let _ = writeln!(out, "{:<24} {:>9.1} ms", "pipeline wall", ms(wall));
    out
}

/// Issue 21's target for a scenario's steady pipeline, where it sets one (1,000 characters
/// with 3,000 or 50,000 Discord members).
fn pipeline_target(size: synthetic::GuildSize) -> Option<Duration> {
    match (size.characters, size.discord_members) {
        (1000, 3000) => Some(SMALL_PIPELINE_TARGET),
        (1000, 50_000) => Some(LARGE_PIPELINE_TARGET),
        _ => None,
    }
}
