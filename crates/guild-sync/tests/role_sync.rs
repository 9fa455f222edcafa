//! The Discord role sync against a STATEFUL fake Discord (`role_support`: axum on a local
//! port, Discord's wire shapes, a log of every request), through the library, the HTTP API and
//! the `guild-sync roles` binary. The database is a real PostgreSQL per test.

mod common;
mod role_support;

use std::time::{Duration, Instant};

use guild_sync::config::Config;
use guild_sync::db::roles as db_roles;
use guild_sync::role_sync::{self, ApplyOptions, RunOutcome};
use guild_sync::testing::TestDb;
use role_support::{FakeDiscord, MANAGE_ROLES, record_sync};
use sqlx::PgPool;

#[tokio::test]
async fn plan_moves_the_linked_member_keeps_unmanaged_roles_and_never_names_the_unlinked() {
    role_support::on_a_guild(11, &[0], |db, fake| async move {
        let stored = role_sync::plan_and_store(&db.pool, &fake.config())
            .await
            .unwrap();
        let changes: Vec<(&str, &str, &str)> = stored
            .plan
            .changes
            .iter()
            .map(|c| (c.discord_id.as_str(), c.role.as_str(), c.action.as_str()))
            .collect();
        assert_eq!(
            changes,
            vec![("200", "Member", "remove"), ("200", "Officer", "add")]
        );
        assert_eq!(stored.plan.linked_members, 11);
        assert_eq!(stored.plan.unlinked_members, 1);
        let row = db_roles::get_plan(&db.pool, stored.plan_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.fingerprint, stored.plan.fingerprint);
        assert!(
            fake.state.lock().unwrap().log.is_empty(),
            "a plan sends nothing"
        );
    })
    .await;
}

#[tokio::test]
async fn apply_changes_only_the_linked_member_verifies_records_and_undo_restores() {
    role_support::on_a_guild(11, &[0], |db, fake| async move {
        let config = fake.config();
        let outcome = role_sync::apply(&db.pool, &config, ApplyOptions::default())
            .await
            .unwrap();
        assert_eq!(outcome.status.as_str(), "success");
        assert_eq!((outcome.applied, outcome.verified), (2, 2));
        assert_eq!(
            fake.roles_of("200"),
            vec!["1002", "1006"],
            "Raider kept, Officer added"
        );
        assert_eq!(fake.roles_of("300"), vec!["1002"]);
        let writes = fake.writes();
        assert_eq!(writes.len(), 2);
        assert!(
            writes
                .iter()
                .all(|(_, path, _)| path.contains("/members/200/"))
        );
        assert!(
            writes
                .iter()
                .all(|(_, _, reason)| reason.as_deref()
                    == Some("guild-sync%3A+in-game+rank+Officer")),
            "{writes:?}"
        );
        assert!(
            !fake
                .state
                .lock()
                .unwrap()
                .log
                .iter()
                .any(|(_, p, _)| p.contains("/300")),
            "the unlinked member never receives a request"
        );
        let recorded = db_roles::changes_of_run(&db.pool, outcome.run_id)
            .await
            .unwrap();
        assert_eq!(recorded.len(), 2);
        assert!(recorded.iter().all(|c| c.result.as_str() == "verified"));

        let undone = role_sync::undo(&db.pool, &config, outcome.run_id)
            .await
            .unwrap();
        assert_eq!(undone.status.as_str(), "success");
        assert_eq!(undone.applied, 2);
        assert_eq!(
            fake.roles_of("200"),
            vec!["1004", "1006"],
            "undo restores the roles"
        );
    })
    .await;
}

#[tokio::test]
async fn a_50013_stops_the_run_with_no_further_request() {
    role_support::on_a_guild(11, &[0, 1, 2], |db, fake| async move {
        fake.state.lock().unwrap().forbid_write = Some(1);
        let outcome = apply_past_the_mass_change_guard(&db, &fake).await;
        assert_eq!(outcome.status.as_str(), "stopped");
        assert!(
            outcome.reason.as_deref().unwrap().contains("50013"),
            "{:?}",
            outcome.reason
        );
        assert_eq!(fake.writes().len(), 2, "no write after the refused one");
        let recorded = db_roles::changes_of_run(&db.pool, outcome.run_id)
            .await
            .unwrap();
        let results: Vec<&str> = recorded.iter().map(|c| c.result.as_str()).collect();
        assert_eq!(
            results,
            vec![
                "verified", "failed", "not_sent", "not_sent", "not_sent", "not_sent"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_role_deleted_mid_run_stops_at_10011() {
    role_support::on_a_guild(11, &[0, 1, 2], |db, fake| async move {
        fake.state.lock().unwrap().delete_role_after = Some((2, "1002".into()));
        let outcome = apply_past_the_mass_change_guard(&db, &fake).await;
        assert_eq!(outcome.status.as_str(), "stopped");
        assert!(
            outcome.reason.as_deref().unwrap().contains("10011"),
            "{:?}",
            outcome.reason
        );
        // Writes 0-1 (member 200) land; the role goes before write 2; write 2 removes Member
        // from 201 (still there) and write 3, the PUT of the deleted Officer role, is refused.
        let writes = fake.writes();
        assert_eq!(
            writes.len(),
            4,
            "no write after the unknown role: {writes:?}"
        );
        assert_eq!(writes[3].0, "PUT");
        assert!(
            writes[3].1.ends_with("/members/201/roles/1002"),
            "{writes:?}"
        );
    })
    .await;
}

/// Options that let a run change many members at once (no approved plan).
fn mass_change() -> ApplyOptions {
    ApplyOptions {
        allow_mass_change: true,
        approved_plan: None,
    }
}

/// Apply the current plan to the fake guild, allowing a mass change.
async fn apply_past_the_mass_change_guard(db: &TestDb, fake: &FakeDiscord) -> RunOutcome {
    role_sync::apply(&db.pool, &fake.config(), mass_change())
        .await
        .unwrap()
}

async fn refused(
    pool: &PgPool,
    fake: &FakeDiscord,
    config: &Config,
    options: ApplyOptions,
) -> String {
    let err = role_sync::apply(pool, config, options)
        .await
        .expect_err("refused");
    assert!(
        fake.writes().is_empty(),
        "a refused run sends no write: {err:#}"
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.role_changes")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(runs, 0);
    format!("{err:#}")
}

#[tokio::test]
async fn every_guard_refuses_with_its_reason_and_sends_nothing() {
    role_support::on_a_guild(11, &[0, 1], |db, fake| async move {
        let config = fake.config();

        // More than 10 % of linked members.
        let err = refused(&db.pool, &fake, &config, ApplyOptions::default()).await;
        assert!(err.contains("2 of 11") && err.contains("--allow-mass-change"), "{err}");
        let mass = mass_change();

        // Bot lacks Manage Roles.
        fake.state.lock().unwrap().roles.iter_mut().for_each(|r| r.permissions = 0);
        let err = refused(&db.pool, &fake, &config, mass.clone()).await;
        assert!(err.contains("Manage Roles"), "{err}");
        fake.state.lock().unwrap().roles.last_mut().unwrap().permissions = MANAGE_ROLES;

        // Bot's role below GM and Officer: the error names the roles to move.
        fake.state.lock().unwrap().roles.last_mut().unwrap().position = 8;
        let err = refused(&db.pool, &fake, &config, mass.clone()).await;
        assert!(err.contains("GM, Officer") && !err.contains("Member"), "{err}");
        fake.state.lock().unwrap().roles.last_mut().unwrap().position = 20;

        // A managed role missing on the server.
        let initiate = {
            let mut s = fake.state.lock().unwrap();
            let i = s.roles.iter().position(|r| r.name == "Initiate").unwrap();
            s.roles.remove(i)
        };
        let err = refused(&db.pool, &fake, &config, mass.clone()).await;
        assert!(err.contains("Initiate") && err.contains("do not exist"), "{err}");
        fake.state.lock().unwrap().roles.push(initiate);

        // Stale Discord sync.
        record_sync(&db.pool, "discord", "success", 30).await;
        sqlx::query("DELETE FROM guild_identity.sync_log WHERE source = 'discord' AND completed_at > now() - interval '1 hour'")
            .execute(&db.pool)
            .await
            .unwrap();
        let err = refused(&db.pool, &fake, &config, mass.clone()).await;
        assert!(err.contains("discord") && err.contains("older than 24 h"), "{err}");
        record_sync(&db.pool, "discord", "success", 0).await;

        // Failed (or partial) Battle.net sync.
        record_sync(&db.pool, "blizzard", "error", 0).await;
        let err = refused(&db.pool, &fake, &config, mass.clone()).await;
        assert!(err.contains("blizzard") && err.contains("error") && err.contains("503"), "{err}");
        record_sync(&db.pool, "blizzard", "partial", 0).await;
        let err = refused(&db.pool, &fake, &config, mass.clone()).await;
        assert!(err.contains("partial"), "{err}");

        // With every guard satisfied the same run goes through.
        record_sync(&db.pool, "blizzard", "success", 0).await;
        let outcome = role_sync::apply(&db.pool, &config, mass).await.unwrap();
        assert_eq!(outcome.status.as_str(), "success");
    })
    .await;
}

#[tokio::test]
async fn approval_applies_that_exact_plan_and_a_stale_plan_is_refused() {
    role_support::on_a_guild(11, &[0, 1], |db, fake| async move {
        let config = fake.config();
        let stale = role_sync::plan_and_store(&db.pool, &config).await.unwrap();
        // The data changes: one more character promoted.
        sqlx::query(
            "UPDATE guild_identity.wow_characters SET guild_rank_id = (SELECT id FROM common.guild_ranks WHERE name = 'Officer')
             WHERE character_name = 'Char5'",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let err = refused(
            &db.pool,
            &fake,
            &config,
            ApplyOptions {
                allow_mass_change: false,
                approved_plan: Some(stale.plan_id),
            },
        )
        .await;
        assert!(err.contains("stale"), "{err}");

        // Approving the current plan applies it, mass change included (the officer saw it).
        let fresh = role_sync::plan_and_store(&db.pool, &config).await.unwrap();
        let outcome = role_sync::apply(
            &db.pool,
            &config,
            ApplyOptions {
                allow_mass_change: false,
                approved_plan: Some(fresh.plan_id),
            },
        )
        .await
        .unwrap();
        assert_eq!(outcome.status.as_str(), "success");
        assert_eq!(outcome.applied, fresh.plan.changes.len());
    })
    .await;
}

/// Apply stays inside the fake's per-route bucket (5 writes per 500 ms, so at most 10/s) and
/// waits out a forced global 429 (`retry_after` 0.5 s on the 8th write): every change still
/// lands. Prints the achieved writes/s (the README's figure:
/// `cargo test -p guild-sync --test role_sync apply_waits -- --nocapture`).
#[tokio::test]
async fn apply_waits_out_429_buckets_and_lands_every_change() {
    let promoted: Vec<usize> = (0..10).collect();
    role_support::on_a_guild(20, &promoted, |db, fake| async move {
        {
            let mut state = fake.state.lock().unwrap();
            state.bucket_limit = Some((5, Duration::from_millis(500)));
            state.force_429 = Some((7, 0.5));
        }
        let started = Instant::now();
        let outcome = apply_past_the_mass_change_guard(&db, &fake).await;
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(outcome.status.as_str(), "success");
        assert_eq!(outcome.applied, 20);
        for i in 0..10 {
            assert_eq!(fake.roles_of(&format!("{}", 200 + i)), vec!["1002", "1006"]);
        }
        let writes = fake.writes().len();
        let limited = fake.state.lock().unwrap().rate_limited;
        assert_eq!(writes, 21, "20 changes and the one retried after the 429");
        assert!(limited >= 1, "the forced 429 was answered");
        println!(
            "role apply: 20 changes, {writes} write requests ({limited} answered 429, 1 forced global) in {elapsed:.2} s = {:.1} changes/s against a bucket of 5 per 500 ms (10/s)",
            20.0 / elapsed
        );
        // 20 writes at 5 per 500 ms take at least 1.5 s if the bucket is honoured, plus the
        // forced 0.5 s wait.
        assert!(elapsed >= 2.0, "{elapsed}");
    })
    .await;
}

/// A config whose role sync posts to the fake's audit channel.
fn with_audit_channel(mut config: Config, mode: &str) -> Config {
    config.guild_sync_role_sync = mode.into();
    config.discord_audit_channel_id = Some("700000000000000001".into());
    config
}

async fn promote(pool: &PgPool, character: &str) {
    sqlx::query(
        "UPDATE guild_identity.wow_characters SET guild_rank_id = (SELECT id FROM common.guild_ranks WHERE name = 'Officer')
         WHERE character_name = $1",
    )
    .bind(character)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn plan_mode_posts_a_plan_once_until_it_changes_and_apply_mode_posts_the_run() {
    role_support::on_a_guild(21, &[0], |db, fake| async move {
        sqlx::query(
            "UPDATE guild_identity.discord_users SET display_name = '**boss**_`x`' WHERE discord_id = '200'",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let config = with_audit_channel(fake.config(), "plan");
        let posted = || fake.state.lock().unwrap().posted.clone();

        role_sync::after_check(&db.pool, &config).await;
        let first = posted();
        assert_eq!(first.len(), 1, "{first:?}");
        let embed = &first[0]["embeds"][0];
        assert!(embed["title"].as_str().unwrap().starts_with("🛡️ Role plan "), "{embed}");
        let text = embed["description"].as_str().unwrap();
        assert!(
            text.contains("**\\*\\*boss\\*\\*\\_\\`x\\`** (200): −Member, +Officer"),
            "names are escaped: {text}"
        );
        assert!(!text.contains("(300)"), "the unlinked member is not named: {text}");
        assert_eq!(first[0]["allowed_mentions"]["parse"], serde_json::json!([]));
        assert!(fake.writes().is_empty(), "plan mode changes nothing");

        // The same plan after the next check: stored once, not posted again.
        role_sync::after_check(&db.pool, &config).await;
        assert_eq!(posted().len(), 1);
        let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.role_plans")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(plans, 1);

        // The data changes: a new plan, posted.
        promote(&db.pool, "Char3").await;
        role_sync::after_check(&db.pool, &config).await;
        let second = posted();
        assert_eq!(second.len(), 2);
        assert!(
            second[1]["embeds"][0]["description"]
                .as_str()
                .unwrap()
                .contains("(203): −Member, +Officer")
        );

        // Apply mode applies (2 of 21 members, under the 10 % guard) and posts the result.
        let config = with_audit_channel(fake.config(), "apply");
        role_sync::after_check(&db.pool, &config).await;
        assert_eq!(fake.writes().len(), 4);
        let third = posted();
        assert_eq!(third.len(), 3);
        let title = third[2]["embeds"][0]["title"].as_str().unwrap();
        assert!(
            title.starts_with("🛡️ Role apply run ") && title.ends_with(": success"),
            "{title}"
        );
    })
    .await;
}

async fn open_rank_mismatches(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT du.discord_id FROM guild_identity.audit_issues ai
         JOIN guild_identity.discord_users du ON du.id = ai.discord_member_id
         WHERE ai.issue_type = 'rank_mismatch' AND ai.resolved_at IS NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Check the 11-member guild with member 200 promoted in game (`on_a_guild(11, &[0], …)`):
/// one open rank_mismatch. Returns the fake's config.
async fn check_the_rank_mismatch(db: &TestDb, fake: &FakeDiscord) -> Config {
    let config = fake.config();
    guild_sync::integrity_checker::run_integrity_check(&db.pool, &config)
        .await
        .unwrap();
    assert_eq!(open_rank_mismatches(&db.pool).await, vec!["200"]);
    config
}

#[tokio::test]
async fn the_next_check_after_an_apply_resolves_the_rank_mismatch_it_fixed() {
    role_support::on_a_guild(11, &[0], |db, fake| async move {
        let config = check_the_rank_mismatch(&db, &fake).await;
        let outcome = role_sync::apply(&db.pool, &config, ApplyOptions::default())
            .await
            .unwrap();
        assert_eq!(outcome.status.as_str(), "success");
        guild_sync::integrity_checker::run_integrity_check(&db.pool, &config)
            .await
            .unwrap();
        assert!(open_rank_mismatches(&db.pool).await.is_empty());
        let by: String = sqlx::query_scalar(
            "SELECT resolved_by FROM guild_identity.audit_issues WHERE issue_type = 'rank_mismatch'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(by, "auto");
    })
    .await;
}

/// The gateway's GUILD_MEMBER_UPDATE handler (`discord_sync::on_member_update`, which
/// `discord_gateway` calls for each event) resolves the issue without waiting for a check; an
/// update that leaves the roles wrong resolves nothing.
#[tokio::test]
async fn a_gateway_member_update_resolves_the_rank_mismatch_at_once() {
    role_support::on_a_guild(11, &[0], |db, fake| async move {
        use guild_sync::discord_sync::{self, GuildRoles, WireMember, WireRole};
        check_the_rank_mismatch(&db, &fake).await;
        let roles: Vec<WireRole> = serde_json::from_value(fake.wire_roles()).unwrap();
        let roles = GuildRoles::new(&roles);

        // Raider dropped, still Member: not fixed.
        fake.state
            .lock()
            .unwrap()
            .members
            .insert("200".into(), vec!["1004".into()]);
        let member: WireMember = serde_json::from_value(fake.wire_member("200")).unwrap();
        discord_sync::on_member_update(&db.pool, &member, &roles)
            .await
            .unwrap();
        assert_eq!(open_rank_mismatches(&db.pool).await, vec!["200"]);

        // Officer given (as an apply does): resolved by the event itself.
        fake.state
            .lock()
            .unwrap()
            .members
            .insert("200".into(), vec!["1002".into(), "1006".into()]);
        let member: WireMember = serde_json::from_value(fake.wire_member("200")).unwrap();
        discord_sync::on_member_update(&db.pool, &member, &roles)
            .await
            .unwrap();
        assert!(open_rank_mismatches(&db.pool).await.is_empty());
    })
    .await;
}

/// The plan on the demo's sample guild: the two rank mismatches the sample was written with
/// are fixed (seraphine Veteran → Member, grimtotem Member → Officer), only linked members
/// are named, and no change touches a role that is not a rank role.
#[tokio::test]
async fn the_plan_on_the_demo_guild_fixes_its_rank_mismatches_and_names_only_linked_members() {
    common::on_a_fresh_db_within(Duration::from_secs(180), |db| async move {
        let config = Config::defaults();
        guild_sync::demo::run_stages(&db.pool, &config).await.unwrap();
        let plan = role_sync::build_plan(&db.pool, &config, chrono::Utc::now())
            .await
            .unwrap();
        let linked: Vec<String> = sqlx::query_scalar(
            "SELECT du.discord_id FROM guild_identity.discord_users du
             JOIN guild_identity.players p ON p.discord_user_id = du.id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert!(plan.changes.iter().all(|c| linked.contains(&c.discord_id)));
        let rank_roles: Vec<String> = sqlx::query_scalar(
            "SELECT lower(discord_role_name) FROM common.guild_ranks WHERE discord_role_name IS NOT NULL",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert!(
            plan.changes
                .iter()
                .all(|c| rank_roles.contains(&c.role.to_lowercase()))
        );
        let ids: Vec<(String, String)> = sqlx::query_as(
            "SELECT username, discord_id FROM guild_identity.discord_users
             WHERE username IN ('seraphine', 'grimtotem')",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let of = |username: &str| -> Vec<(String, String)> {
            let id = &ids.iter().find(|(u, _)| u == username).unwrap().1;
            let mut changes: Vec<(String, String)> = plan
                .changes
                .iter()
                .filter(|c| c.discord_id == *id)
                .map(|c| (c.action.as_str().to_owned(), c.role.clone()))
                .collect();
            changes.sort();
            changes
        };
        assert_eq!(
            of("seraphine"),
            vec![
                ("add".to_owned(), "Member".to_owned()),
                ("remove".to_owned(), "Veteran".to_owned())
            ]
        );
        assert_eq!(
            of("grimtotem"),
            vec![
                ("add".to_owned(), "Officer".to_owned()),
                ("remove".to_owned(), "Member".to_owned())
            ]
        );
        assert!(plan.unlinked_members > 0);
    })
    .await;
}

const TOKEN: &str = "roles-officer-token-0123456789";

/// The HTTP API over `config` (with the officer token added).
async fn serve_api(db: &TestDb, mut config: Config) -> common::SpawnedApp {
    config.guild_sync_admin_token = Some(guild_sync::config::Secret::new(TOKEN));
    common::spawn_app(guild_sync::testing::noop_state(db.pool.clone(), config)).await
}

async fn call(
    app: &common::SpawnedApp,
    method: reqwest::Method,
    path: &str,
) -> (u16, serde_json::Value) {
    let (status, body) =
        common::send(app.client.request(method, app.url(path)).bearer_auth(TOKEN)).await;
    (status.as_u16(), body)
}

#[tokio::test]
async fn the_api_approves_the_latest_plan_and_refuses_stale_applied_unknown_busy_and_unconfigured()
{
    role_support::on_a_guild(11, &[0, 1], |db, fake| async move {
        use reqwest::Method;
        let config = fake.config();
        let app = serve_api(&db, config.clone()).await;

        let (status, body) = call(&app, Method::GET, "/api/roles/plans/latest").await;
        assert_eq!(status, 404, "{body}");

        let stale = role_sync::plan_and_store(&db.pool, &config).await.unwrap();
        let (status, latest) = call(&app, Method::GET, "/api/roles/plans/latest").await;
        assert_eq!(status, 200, "{latest}");
        assert_eq!(latest["plan_id"], stale.plan_id);
        assert_eq!(latest["current"], true);
        assert_eq!(latest["refusal"], serde_json::Value::Null);
        assert_eq!(latest["changes"].as_array().unwrap().len(), 4);
        assert_eq!(latest["members_changed"], 2);

        // The data changes after the plan was made: the plan is stale, its approval refused
        // and nothing is sent.
        promote(&db.pool, "Char5").await;
        let (_, latest) = call(&app, Method::GET, "/api/roles/plans/latest").await;
        assert_eq!(latest["current"], false);
        assert!(
            latest["refusal"].as_str().unwrap().contains("stale"),
            "{latest}"
        );
        let path = format!("/api/roles/plans/{}/approve", stale.plan_id);
        let (status, body) = call(&app, Method::POST, &path).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"].as_str().unwrap().contains("stale"), "{body}");
        assert!(fake.writes().is_empty());

        let (status, body) = call(&app, Method::POST, "/api/roles/plans/999999/approve").await;
        assert_eq!(status, 404, "{body}");

        // While another run holds the pipeline lock the approval waits for nobody: 409.
        let fresh = role_sync::plan_and_store(&db.pool, &config).await.unwrap();
        let path = format!("/api/roles/plans/{}/approve", fresh.plan_id);
        let held = guild_sync::scheduler::lock_for_command(
            &db.pool,
            guild_sync::scheduler::LockWait::Skip,
        )
        .await
        .unwrap()
        .unwrap();
        let (status, body) = call(&app, Method::POST, &path).await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("pipeline lock"),
            "{body}"
        );
        held.release().await;
        assert!(fake.writes().is_empty());

        // The fresh plan (3 of 11 members, over the 10 % guard) applies once approved.
        let (status, run) = call(&app, Method::POST, &path).await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["status"], "success");
        assert_eq!(run["applied"], 6);
        assert_eq!(fake.writes().len(), 6);
        let (approved_by,): (Option<String>,) =
            sqlx::query_as("SELECT approved_by FROM guild_identity.role_plans WHERE id = $1")
                .bind(fresh.plan_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(approved_by.as_deref(), Some("admin token"));

        // Approving it again is refused: it was applied.
        let (status, body) = call(&app, Method::POST, &path).await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("already applied"),
            "{body}"
        );
        assert_eq!(fake.writes().len(), 6);
        let (_, latest) = call(&app, Method::GET, "/api/roles/plans/latest").await;
        assert_eq!(latest["applied_run_id"], run["run_id"]);

        // Without Discord settings: 503.
        let mut bare = config.clone();
        bare.discord_bot_token = None;
        let unconfigured = serve_api(&db, bare).await;
        let (status, body) = call(&unconfigured, Method::POST, &path).await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("DISCORD_BOT_TOKEN")
        );
    })
    .await;
}

/// `guild-sync roles …` as an officer runs it: the real binary against the fake Discord.
fn guild_sync_bin(db: &TestDb, fake: &FakeDiscord) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"));
    command
        .env("DATABASE_URL", db.url())
        .env("DISCORD_BOT_TOKEN", "test-token")
        .env("DISCORD_GUILD_ID", role_support::GUILD)
        .env("DISCORD_API_URL", &fake.api_url)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    command
}

/// Run the binary; returns the JSON object on the last line of stdout.
async fn run_json(db: &TestDb, fake: &FakeDiscord, args: &[&str]) -> serde_json::Value {
    let output = guild_sync_bin(db, fake).args(args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "guild-sync {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the last line is not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn the_cli_plans_applies_with_a_run_id_and_undoes_that_run() {
    role_support::on_a_guild_within(Duration::from_secs(180), 11, &[0], |db, fake| async move {
        let plan = run_json(&db, &fake, &["roles", "plan", "--json"]).await;
        assert!(plan["plan_id"].as_i64().is_some(), "{plan}");
        assert_eq!(plan["changes"].as_array().unwrap().len(), 2, "{plan}");
        assert!(fake.writes().is_empty(), "a plan sends nothing");

        // Without --yes and nothing on stdin: not confirmed, nothing sent.
        let output = guild_sync_bin(&db, &fake)
            .args(["roles", "apply", "--json"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("not confirmed"));
        assert!(fake.writes().is_empty());

        let applied = run_json(&db, &fake, &["roles", "apply", "--yes", "--json"]).await;
        assert_eq!(applied["status"], "success", "{applied}");
        assert_eq!(applied["applied"], 2);
        let run_id = applied["run_id"].as_i64().expect("the run_id");
        assert_eq!(fake.roles_of("200"), vec!["1002", "1006"]);

        let undone = run_json(
            &db,
            &fake,
            &["roles", "undo", &run_id.to_string(), "--json"],
        )
        .await;
        assert_eq!(undone["status"], "success", "{undone}");
        assert_eq!(undone["applied"], 2);
        assert_ne!(undone["run_id"], applied["run_id"]);
        assert_eq!(
            fake.roles_of("200"),
            vec!["1004", "1006"],
            "undo restores the roles"
        );
        assert_eq!(fake.writes().len(), 4);
    })
    .await;
}

/// A run status this version does not know (written by a newer version, or a CHECK relaxed by
/// hand) stops the console's read of the runs with a decode error naming the column, instead of
/// reaching the page as a string that no `match` expects. (sqlx 0.9's `FromRow` derive replaces
/// a `try_from` error's own text with "unprintable error", so the value is not in the message.)
#[tokio::test]
async fn an_unknown_role_run_status_fails_the_read_with_a_decode_error_naming_the_column() {
    common::on_a_fresh_db(|db| async move {
        sqlx::raw_sql(
            "ALTER TABLE guild_identity.role_runs DROP CONSTRAINT role_runs_status_check;
             INSERT INTO guild_identity.role_runs (kind, status) VALUES ('apply', 'paused');",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let err = db_roles::recent_runs(&db.pool, 10).await.unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<sqlx::Error>(),
                Some(sqlx::Error::ColumnDecode { index, .. }) if index.contains("status")
            ),
            "{err:#}"
        );

        sqlx::query("UPDATE guild_identity.role_runs SET status = 'success'")
            .execute(&db.pool)
            .await
            .unwrap();
        let runs = db_roles::recent_runs(&db.pool, 10).await.unwrap();
        assert_eq!(
            runs[0].status,
            guild_sync_core::roles::RoleRunStatus::Success
        );
    })
    .await;
}
