//! `guild-sync demo`: the whole product on the bundled sample guild, with no configuration.
//!
//! The sample (`crates/guild-sync/demo/`, embedded in the binary) is a Battle.net roster
//! directory, a Discord member file and a PATTSync export — the same file inputs production
//! reads — so the demo runs the real pipeline, the one `serve` runs: sync → match → check →
//! report. It uses its own database (`guild_sync_demo`) next to the product's, so trying the
//! demo never mixes sample players into a real guild's data. Running it again changes nothing,
//! and it says so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use guild_sync_core::matching::LinkSource;
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::Config;
use crate::database::Database;
use crate::db::admin;
use crate::db::links::StoredLinkSource;
use crate::db_sync::BlizzardSyncStats;
use crate::db_sync::addon::AddonSyncStats;
use crate::discord_sync::DiscordSyncStats;
use crate::identity_engine::MatchStats;
use crate::integrity_checker::CheckStats;
use crate::run_recorder::RunStatus;
use crate::scheduler::{
    AddonInput, LockWait, PipelineKind, PipelineOutcome, ProductionStages, ReportOutcome,
    Scheduler, StageInputs, StageStats, Step,
};

/// The sample guild, embedded so the demo works wherever the binary is.
static SAMPLE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/demo");

/// The demo's own database on the configured server.
pub const DEMO_DATABASE: &str = "guild_sync_demo";

/// What one demo run did.
#[derive(Debug)]
pub struct DemoRun {
    pub blizzard: BlizzardSyncStats,
    pub discord: DiscordSyncStats,
    pub addon: AddonSyncStats,
    pub matching: MatchStats,
    pub check: CheckStats,
    /// Whether the database had no sample data before this run.
    pub first_run: bool,
    /// The full audit report as text.
    pub report: String,
}

impl DemoRun {
    /// Whether this run changed nothing at all (the second run of the same inputs).
    pub fn changed_nothing(&self) -> bool {
        let b = &self.blizzard;
        let d = &self.discord;
        let m = &self.matching;
        let c = &self.check;
        b.new + b.updated + b.removed + b.returned + b.renamed == 0
            && d.new + d.updated + d.departed + d.revived == 0
            && self.addon.updated == 0
            && m.players_created + m.links_created + m.discord_users_attached + m.suggestions_new
                == 0
            && c.new + c.resolved == 0
    }
}

/// The sample written out to a temporary directory, removed on drop.
struct SampleFiles {
    dir: PathBuf,
}

impl SampleFiles {
    fn extract() -> Result<SampleFiles> {
        // One directory per extraction: two runs in one process (tests) must not share one,
        // or the first to finish would remove the other's files.
        static EXTRACTIONS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "guild-sync-demo-{}-{}",
            std::process::id(),
            EXTRACTIONS.fetch_add(1, Ordering::Relaxed)
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).ok();
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        SAMPLE
            .extract(&dir)
            .with_context(|| format!("cannot write the sample guild to {}", dir.display()))?;
        Ok(SampleFiles { dir })
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

impl Drop for SampleFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run every stage on the sample guild against `pool`, through the same pipeline as `serve`
/// and `guild-sync pipeline` (a `pipeline:full` run under the pipeline lock).
pub async fn run_stages(pool: &PgPool, config: &Config) -> Result<DemoRun> {
    let sample = SampleFiles::extract()?;
    let first_run = crate::db::characters::count_all(pool).await? == 0;
    let blizzard = sample.path("blizzard");
    let discord = sample.path("discord/members.json");
    run_pipeline(pool, config, &sample, blizzard, discord, first_run).await
}

/// What the later snapshot did: the stages' figures and the events it recorded, oldest first.
#[derive(Debug)]
pub struct LaterRun {
    pub run: DemoRun,
    pub changes: Vec<crate::db::member_events::EventRow>,
}

/// At most this many changes are printed (the later snapshot makes about ten).
const CHANGES_SHOWN: i64 = 200;

/// Apply the bundled later snapshot (`demo/later/`: the guild a week on — a rename, a
/// promotion, a leave, a join, and on Discord a nick change plus pass 2's role changes and
/// departure) through the same pipeline, and read back the member events it recorded. Run it
/// after [`run_stages`]; applying it twice changes nothing the second time.
pub async fn run_later_stages(pool: &PgPool, config: &Config) -> Result<LaterRun> {
    let sample = SampleFiles::extract()?;
    // The later roster has no profiles of its own: it reads the first snapshot's (a renamed
    // or new character's missing profile reads as a 404, as the API would answer a day later).
    std::fs::rename(
        sample.path("blizzard/profiles"),
        sample.path("later/profiles"),
    )
    .context("cannot lay out the later snapshot")?;
    let mark = crate::db::member_events::latest_id(pool).await?;
    let blizzard = sample.path("later");
    let discord = sample.path("later/members.json");
    let run = run_pipeline(pool, config, &sample, blizzard, discord, false).await?;
    let changes = crate::db::member_events::after_id(pool, mark, CHANGES_SHOWN).await?;
    Ok(LaterRun { run, changes })
}

/// The full pipeline on one roster directory and one Discord file of the extracted sample,
/// with the sample's addon export.
async fn run_pipeline(
    pool: &PgPool,
    config: &Config,
    sample: &SampleFiles,
    blizzard: PathBuf,
    discord: PathBuf,
    first_run: bool,
) -> Result<DemoRun> {
    let inputs = StageInputs::files(config, blizzard, discord);
    let stages = ProductionStages::new(pool.clone(), config.clone(), inputs);
    let outcome = Scheduler::new(pool.clone(), Arc::new(stages))
        .waiting_for_the_lock(LockWait::Forever)
        .run_pipeline(PipelineKind::Full {
            addon: Some(AddonInput::File(sample.path("addon/PATTSync.lua"))),
        })
        .await?;
    match outcome.status {
        RunStatus::Success | RunStatus::Partial => {}
        RunStatus::Skipped => bail!("another pipeline is running on the demo database"),
        RunStatus::Error | RunStatus::Abandoned => bail!(
            "the demo stopped on the sample guild: {}",
            outcome.error.as_deref().unwrap_or("unknown error")
        ),
    }
    DemoRun::from_outcome(outcome, first_run)
}

/// The later snapshot's changes as the terminal prints them: one line per event, in the
/// order they were recorded, with the sentence the console's timeline shows.
pub fn render_changes(changes: &[crate::db::member_events::EventRow]) -> String {
    let mut out = String::new();
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "What changed: nothing (the later snapshot was already applied)."
        );
        return out;
    }
    let _ = writeln!(
        out,
        "What changed ({} events, on each player's timeline in the console)",
        changes.len()
    );
    for e in changes {
        let _ = writeln!(out, "  {:<22} {}", e.event_type.as_str(), e.describe());
    }
    out
}

impl DemoRun {
    /// Pick each stage's stats out of a finished full pipeline.
    fn from_outcome(outcome: PipelineOutcome, first_run: bool) -> Result<DemoRun> {
        let (mut blizzard, mut discord, mut addon, mut matching, mut check, mut report) =
            (None, None, None, None, None, None);
        for stage in outcome.stages {
            match stage.stats {
                StageStats::BlizzardSync(stats) => blizzard = Some(stats),
                StageStats::DiscordSync(stats) => discord = Some(stats),
                StageStats::AddonSync(stats) => addon = Some(stats),
                StageStats::Match(stats) => matching = Some(stats),
                StageStats::Check(stats) => check = Some(stats),
                StageStats::Report(ReportOutcome::Rendered { text }) => report = Some(text),
                StageStats::Report(_) => {}
            }
        }
        let missing =
            |step: Step| anyhow!("the pipeline finished without its {} step", step.as_str());
        Ok(DemoRun {
            blizzard: blizzard.ok_or_else(|| missing(Step::BlizzardSync))?,
            discord: discord.ok_or_else(|| missing(Step::DiscordSync))?,
            addon: addon.ok_or_else(|| missing(Step::AddonSync))?,
            matching: matching.ok_or_else(|| missing(Step::Match))?,
            check: check.ok_or_else(|| missing(Step::Check))?,
            first_run,
            report: report.ok_or_else(|| missing(Step::Report))?,
        })
    }
}

/// A fingerprint of the bundled sample: every file's path and bytes.
pub fn sample_fingerprint() -> String {
    fn add(dir: &Dir<'_>, hasher: &mut Sha256) {
        let mut files: Vec<_> = dir.files().collect();
        files.sort_by_key(|f| f.path());
        for file in files {
            hasher.update(file.path().to_string_lossy().as_bytes());
            hasher.update([0u8]);
            hasher.update((file.contents().len() as u64).to_be_bytes());
            hasher.update(file.contents());
        }
        let mut dirs: Vec<_> = dir.dirs().collect();
        dirs.sort_by_key(|d| d.path());
        for sub in dirs {
            add(sub, hasher);
        }
    }
    let mut hasher = Sha256::new();
    add(&SAMPLE, &mut hasher);
    hex::encode(hasher.finalize())
}

/// Open the demo database `name`. It is marked (a comment on the database) with the sample it
/// holds; one holding another sample (an older guild-sync's, or one from before the mark) is
/// started over, since re-running a different sample on top of it would read as the whole
/// guild leaving. Returns the database and whether it was started over.
pub async fn open_database(config: &Config, name: &str) -> Result<(Database, bool)> {
    let mark = format!("guild-sync demo sample {}", sample_fingerprint());
    let mut db = Database::open_named(config, name).await?;
    let stored = admin::current_database_comment(&db.pool)
        .await
        .context("cannot read which sample the demo database holds")?;
    let empty = admin::holds_no_guild(&db.pool).await?;
    let started_over = match stored {
        Some(stored) if stored == mark => false,
        None if empty => false,
        _ => {
            db = db
                .start_over()
                .await
                .context("cannot start the demo database over")?;
            true
        }
    };
    admin::set_database_comment(&db.pool, name, &mark)
        .await
        .context("cannot mark the demo database with its sample")?;
    Ok((db, started_over))
}

/// `guild-sync demo [--later] [--serve]`.
pub async fn run(config: &Config, later: bool, serve: bool) -> Result<()> {
    let (db, started_over) = open_database(config, DEMO_DATABASE).await?;
    if started_over {
        println!(
            "The demo database held another version of the sample guild; it was started over.\n"
        );
    }
    let outcome = if later {
        later_then_changes(&db.pool, config).await
    } else {
        run_stages(&db.pool, config).await.map(|run| (run, None))
    };
    let (run, changes) = match outcome {
        Ok(done) => done,
        Err(err) => {
            db.close().await;
            return Err(err);
        }
    };
    let links = crate::db::links::breakdown(&db.pool).await?;
    let examples = crate::db::links::examples(&db.pool, 2).await?;
    println!(
        "{}",
        render(&run, &links, &examples, db.cluster().map(|c| c.root()))
    );
    if let Some(changes) = changes {
        println!("{changes}");
    }
    // Plan only: the demo has no Discord server to apply to.
    let plan = crate::role_sync::build_plan(&db.pool, config, chrono::Utc::now()).await?;
    println!(
        "\nDiscord role sync (plan only, nothing sent): {}",
        plan.summary()
    );
    for c in &plan.changes {
        println!(
            "  {} {:?} for {:?}",
            c.action.as_str(),
            c.role,
            c.display_name
        );
    }
    if !serve {
        db.close().await;
        return Ok(());
    }
    let listener = match crate::service::bind(config).await {
        Ok(listener) => listener,
        Err(err) => {
            db.close().await;
            return Err(err);
        }
    };
    crate::service::until_signal(|shutdown| {
        serve_on(config, db, listener, shutdown, |line| println!("{line}"))
    })
    .await
}

/// `demo --serve` once the sample is loaded: the whole service on `listener` until `shutdown`,
/// with a login token for this session when `GUILD_SYNC_ADMIN_TOKEN` is not set, and member
/// claims against the bundled fake providers when claims are not configured. `say` gets the
/// lines that tell how to try it (the console's address and login, the claim page).
pub async fn serve_on(
    config: &Config,
    db: Database,
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
    say: impl Fn(&str),
) -> Result<()> {
    let address = match listener.local_addr() {
        Ok(address) => browsable(address),
        Err(err) => {
            db.close().await;
            return Err(err).context("cannot read the bound address");
        }
    };
    let mut config = config.clone();
    let login = match &config.guild_sync_admin_token {
        Some(_) => "your GUILD_SYNC_ADMIN_TOKEN".to_string(),
        None => {
            // A token for this demo session only, so the console can be tried at once.
            let token = demo_token();
            config.guild_sync_admin_token = Some(crate::config::Secret::new(token.clone()));
            token
        }
    };
    say(&format!(
        "Officer console: http://{address}/  — log in with {login}"
    ));
    if !config.claims_configured() {
        match demo_claims(&db.pool, &mut config, address).await {
            Ok(Some(line)) => say(&line),
            Ok(None) => {}
            Err(err) => say(&format!("Member claims are off in this demo: {err:#}")),
        }
    }
    crate::service::run_on(&config, db, listener, shutdown).await
}

/// The address a browser on this machine opens for a server bound to `bound`: the loopback
/// address for a wildcard bind (`0.0.0.0:8080` is not a page a browser can open, and the
/// claims' redirect URIs must name the same host the member's browser holds the cookie for).
fn browsable(bound: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, bound.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, bound.port()).into(),
        _ => bound,
    }
}

/// `demo --later`: load the sample first when the database holds none, then apply the later
/// snapshot; the run's figures and the rendered changes.
async fn later_then_changes(pool: &PgPool, config: &Config) -> Result<(DemoRun, Option<String>)> {
    if crate::db::characters::count_all(pool).await? == 0 {
        run_stages(pool, config).await?;
        println!("The sample guild is loaded; now the later snapshot (a week on).\n");
    }
    let later = run_later_stages(pool, config).await?;
    let changes = render_changes(&later.changes);
    Ok((later.run, Some(changes)))
}

/// Member claims against the bundled fake Discord and Battle.net (`claims::fake_providers`):
/// whoever opens `/claim` is logged in as a sample member without a player, holding a
/// Battle.net account with up to three of the sample guild's unclaimed characters and one
/// outside the guild. Returns the line telling how to try it.
async fn demo_claims(
    pool: &PgPool,
    config: &mut Config,
    address: std::net::SocketAddr,
) -> Result<Option<String>> {
    use crate::claims::fake_providers::{
        FakeBattlenetAccount, FakeCharacter, FakeDiscordUser, FakeProviders,
    };
    let Some((discord_id, username, characters)) = crate::db::claims::demo_claimant(pool).await?
    else {
        return Ok(None);
    };
    let fake = FakeProviders::start().await?;
    fake.configure(config);
    config.guild_sync_public_url = Some(format!("http://{address}"));
    let mut account: Vec<FakeCharacter> = characters
        .iter()
        .map(|(id, name, realm_slug, level)| FakeCharacter {
            id: *id,
            name: name.clone(),
            realm_slug: realm_slug.clone(),
            level: *level,
        })
        .collect();
    account.push(FakeCharacter {
        id: 9_999_999_001,
        name: "Wanderer".into(),
        realm_slug: "argent-dawn".into(),
        level: 42,
    });
    let names: Vec<&str> = characters.iter().map(|c| c.1.as_str()).collect();
    fake.log_in_battlenet(FakeBattlenetAccount {
        id: 424_242,
        battletag: format!("{username}#4242"),
        characters: account,
    });
    fake.log_in_discord(FakeDiscordUser {
        id: discord_id,
        username: username.clone(),
        global_name: None,
    });
    Ok(Some(format!(
        "Member claims: http://{address}/claim  — the bundled fake Discord and Battle.net (at {}) \
         log you in as @{username}, whose account holds {} and one character outside the guild.",
        fake.base(),
        names.join(", ")
    )))
}

/// A random login token for one `demo --serve` session (128 bits, hex).
fn demo_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The terminal output: what each stage did, what was linked and why, the audit report, and
/// whether anything changed.
pub fn render(
    run: &DemoRun,
    links: &[crate::db::links::LinkSourceCount],
    examples: &[crate::db::links::LinkExample],
    cluster: Option<&Path>,
) -> String {
    let mut out = String::new();
    let b = &run.blizzard;
    let d = &run.discord;
    let a = &run.addon;
    let m = &run.matching;
    let c = &run.check;
    let _ = writeln!(out, "guild-sync demo: the sample guild \"Ashen Covenant\"");
    if let Some(root) = cluster {
        let _ = writeln!(
            out,
            "(database {DEMO_DATABASE} in the private PostgreSQL under {})",
            root.display()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "1. Battle.net roster  {} characters: {} new, {} updated, {} removed; profiles {} fetched, {} not found; unknown rank {}",
        b.found,
        b.new,
        b.updated,
        b.removed,
        b.profiles_fetched,
        b.profiles_not_found,
        b.unknown_rank
    );
    let _ = writeln!(
        out,
        "2. Discord members    {} members: {} new, {} updated, {} departed; {} bots skipped",
        d.found, d.new, d.updated, d.departed, d.bots_skipped
    );
    let _ = writeln!(
        out,
        "3. Addon export       {} characters: {} matched, {} notes changed, {} unknown",
        a.received, a.matched, a.updated, a.unknown
    );
    let _ = writeln!(
        out,
        "4. Matching           {} players created, {} links, {} Discord users attached, {} new suggestions, {} characters left unlinked",
        m.players_created, m.links_created, m.discord_users_attached, m.suggestions_new, m.skipped
    );
    let _ = writeln!(
        out,
        "5. Integrity check    {} new issues, {} still open, {} resolved",
        c.new, c.still_open, c.resolved
    );
    let _ = writeln!(out);

    let _ = writeln!(out, "What is linked, and why");
    for count in links {
        let _ = writeln!(
            out,
            "  {:<13} {:>4} characters of {:>3} players",
            count.link_source, count.links, count.players
        );
        for e in examples
            .iter()
            .filter(|e| e.link_source == count.link_source)
        {
            let _ = writeln!(
                out,
                "      {}-{} → {}: {}",
                e.character_name,
                e.realm_slug,
                e.player_name,
                why(e)
            );
        }
    }
    let _ = writeln!(out);
    out.push_str(run.report.trim_end());
    let _ = writeln!(out);
    let _ = writeln!(out);
    if run.first_run {
        let _ = writeln!(
            out,
            "First run: the sample guild is loaded. Run `guild-sync demo` again: the same inputs change nothing."
        );
    } else if run.changed_nothing() {
        let _ = writeln!(
            out,
            "Run again on the same inputs: nothing changed (0 new characters, links, players or issues). Every stage is idempotent."
        );
    } else {
        let _ = writeln!(
            out,
            "Run again: the stages above list what changed since the last run."
        );
    }
    let _ = writeln!(
        out,
        "Explore it in the officer console with `guild-sync demo --serve` (it prints the address and a login token)."
    );
    out
}

/// One line on why a link was made, from its evidence.
fn why(e: &crate::db::links::LinkExample) -> String {
    let field = |key: &str| e.evidence.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let note = |source: &str| {
        format!(
            "the {source} \"{}\" names Discord user \"{}\"",
            field("note"),
            field("hint")
        )
    };
    match e.link_source {
        StoredLinkSource::Engine(LinkSource::ExactName) => format!(
            "the character's name is the Discord {} \"{}\"",
            field("matched").replace('_', " "),
            field("discord_name")
        ),
        StoredLinkSource::Engine(LinkSource::GuildNote) => note("guild note"),
        StoredLinkSource::Engine(LinkSource::OfficerNote) => note("officer note"),
        StoredLinkSource::Engine(LinkSource::DisplayNamePart) => format!(
            "the character's name is the part \"{}\" of the Discord {} \"{}\"",
            field("part"),
            field("matched").replace('_', " "),
            field("discord_name")
        ),
        StoredLinkSource::Engine(LinkSource::FuzzyName) => format!(
            "close to Discord \"{}\" (score {:.2}, {} confidence)",
            field("username"),
            e.evidence
                .get("score")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0),
            e.confidence
        ),
        StoredLinkSource::Engine(LinkSource::AltNote) if !field("note").is_empty() => {
            format!("alt note \"{}\"", field("note"))
        }
        StoredLinkSource::Engine(LinkSource::AltNote) => {
            format!("named as an alt by {}", field("named_by"))
        }
        StoredLinkSource::Manual => "linked by an officer".to_owned(),
        StoredLinkSource::BattlenetOauth => {
            format!("claimed by Battle.net login ({})", field("battletag"))
        }
    }
}
