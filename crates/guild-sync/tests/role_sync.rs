//! The Discord role sync against a STATEFUL fake Discord (axum on a local port, Discord's wire
//! shapes): roles with positions and permission bits, members and their roles, the bot's own
//! member, per-route buckets answering 429 with bucket headers, a 50013 on demand, a role
//! deleted mid-run, and a log of every request. The database is a real PostgreSQL per test.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use common::within_a_minute;
use guild_sync::config::{Config, Secret};
use guild_sync::db::roles as db_roles;
use guild_sync::role_sync::{self, ApplyOptions};
use guild_sync::testing::{TestDb, seed};
use serde_json::json;
use sqlx::PgPool;

const GUILD: &str = "900000000000000001";
const BOT: &str = "800000000000000001";
const MANAGE_ROLES: u64 = 1 << 28;

#[derive(Debug, Clone)]
struct FakeRole {
    id: String,
    name: String,
    position: i64,
    permissions: u64,
}

#[derive(Debug, Default)]
struct FakeState {
    roles: Vec<FakeRole>,
    members: HashMap<String, Vec<String>>,
    /// (method, path, X-Audit-Log-Reason).
    log: Vec<(String, String, Option<String>)>,
    /// Answer 403/50013 to the write request with this index (0-based among writes).
    forbid_write: Option<usize>,
    /// Delete this role after this many writes.
    delete_role_after: Option<(usize, String)>,
    writes: usize,
    /// Per-route bucket: this many requests per window, then 429.
    bucket_limit: Option<(usize, Duration)>,
    buckets: HashMap<String, (Instant, usize)>,
    rate_limited: usize,
}

type Shared = Arc<Mutex<FakeState>>;

fn error(status: StatusCode, code: u64, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// Count the request against its route's bucket; `Err` is the 429 to send.
fn bucket(state: &mut FakeState, route: &str) -> Result<HeaderMap, Box<Response>> {
    let mut headers = HeaderMap::new();
    let Some((limit, window)) = state.bucket_limit else {
        return Ok(headers);
    };
    let now = Instant::now();
    let entry = state.buckets.entry(route.to_owned()).or_insert((now, 0));
    if now.duration_since(entry.0) >= window {
        *entry = (now, 0);
    }
    let reset_after = (window - now.duration_since(entry.0)).as_secs_f64();
    headers.insert("x-ratelimit-bucket", route.parse().unwrap());
    headers.insert("x-ratelimit-limit", limit.to_string().parse().unwrap());
    headers.insert(
        "x-ratelimit-reset-after",
        format!("{reset_after:.3}").parse().unwrap(),
    );
    if entry.1 >= limit {
        state.rate_limited += 1;
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let body = Json(
            json!({"message": "You are being rate limited.", "retry_after": reset_after, "global": false}),
        );
        return Err(Box::new(
            (StatusCode::TOO_MANY_REQUESTS, headers, body).into_response(),
        ));
    }
    entry.1 += 1;
    headers.insert(
        "x-ratelimit-remaining",
        (limit - entry.1).to_string().parse().unwrap(),
    );
    Ok(headers)
}

async fn me(State(s): State<Shared>, method: Method) -> Response {
    s.lock()
        .unwrap()
        .log
        .push((method.to_string(), "/users/@me".into(), None));
    Json(json!({"id": BOT, "username": "guild-sync", "bot": true})).into_response()
}

async fn roles(State(s): State<Shared>, Path(g): Path<String>) -> Response {
    let mut s = s.lock().unwrap();
    s.log
        .push(("GET".into(), format!("/guilds/{g}/roles"), None));
    let body: Vec<_> = s
        .roles
        .iter()
        .map(|r| json!({"id": r.id, "name": r.name, "position": r.position, "permissions": r.permissions.to_string(), "managed": false, "color": 0, "hoist": false, "mentionable": false}))
        .collect();
    Json(body).into_response()
}

async fn member(State(s): State<Shared>, Path((g, u)): Path<(String, String)>) -> Response {
    let mut s = s.lock().unwrap();
    s.log
        .push(("GET".into(), format!("/guilds/{g}/members/{u}"), None));
    let headers = match bucket(&mut s, "member") {
        Ok(h) => h,
        Err(r) => return *r,
    };
    match s.members.get(&u) {
        Some(roles) => (
            headers,
            Json(json!({"user": {"id": u, "username": format!("user{u}")}, "roles": roles, "joined_at": "2024-01-01T00:00:00+00:00"})),
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, 10007, "Unknown Member"),
    }
}

async fn member_role(
    State(s): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path((g, u, r)): Path<(String, String, String)>,
) -> Response {
    let mut s = s.lock().unwrap();
    let reason = headers
        .get("x-audit-log-reason")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.log.push((
        method.to_string(),
        format!("/guilds/{g}/members/{u}/roles/{r}"),
        reason,
    ));
    let headers = match bucket(&mut s, "member_role") {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let index = s.writes;
    s.writes += 1;
    if s.forbid_write == Some(index) {
        return error(StatusCode::FORBIDDEN, 50013, "Missing Permissions");
    }
    if let Some((after, role)) = s.delete_role_after.clone()
        && index >= after
    {
        s.roles.retain(|x| x.id != role);
        for roles in s.members.values_mut() {
            roles.retain(|x| *x != role);
        }
    }
    if !s.roles.iter().any(|x| x.id == r) {
        return error(StatusCode::NOT_FOUND, 10011, "Unknown Role");
    }
    let Some(roles) = s.members.get_mut(&u) else {
        return error(StatusCode::NOT_FOUND, 10007, "Unknown Member");
    };
    if method == Method::PUT {
        if !roles.contains(&r) {
            roles.push(r);
        }
    } else {
        roles.retain(|x| *x != r);
    }
    (StatusCode::NO_CONTENT, headers).into_response()
}

struct FakeDiscord {
    state: Shared,
    api_url: String,
}

impl FakeDiscord {
    async fn start() -> FakeDiscord {
        let perms = |p| p;
        let role = |id: &str, name: &str, position, permissions| FakeRole {
            id: id.into(),
            name: name.into(),
            position,
            permissions: perms(permissions),
        };
        let state = Arc::new(Mutex::new(FakeState {
            roles: vec![
                role(GUILD, "@everyone", 0, 0),
                role("1001", "GM", 10, 0),
                role("1002", "Officer", 9, 0),
                role("1003", "Veteran", 8, 0),
                role("1004", "Member", 7, 0),
                role("1005", "Initiate", 6, 0),
                role("1006", "Raider", 5, 0),
                role("1100", "guild-sync bot", 20, MANAGE_ROLES),
            ],
            ..FakeState::default()
        }));
        state
            .lock()
            .unwrap()
            .members
            .insert(BOT.into(), vec!["1100".into()]);
        let app = Router::new()
            .route("/api/v10/users/@me", get(me))
            .route("/api/v10/guilds/{g}/roles", get(roles))
            .route("/api/v10/guilds/{g}/members/{u}", get(member))
            .route(
                "/api/v10/guilds/{g}/members/{u}/roles/{r}",
                put(member_role).delete(member_role),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}/api/v10", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeDiscord { state, api_url }
    }

    fn config(&self) -> Config {
        let mut config = Config::defaults();
        config.discord_bot_token = Some(Secret::new("test-token"));
        config.discord_guild_id = Some(GUILD.into());
        config.discord_api_url = self.api_url.clone();
        config
    }

    fn writes(&self) -> Vec<(String, String, Option<String>)> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(m, _, _)| m == "PUT" || m == "DELETE")
            .cloned()
            .collect()
    }

    fn roles_of(&self, user: &str) -> Vec<String> {
        let mut roles = self.state.lock().unwrap().members[user].clone();
        roles.sort();
        roles
    }
}

/// Seed the fake and the database alike: `linked` Discord users each linked to a player with
/// one Member-rank character and holding Member + Raider; the users in `promoted` have an
/// Officer character instead (so the plan moves them to Officer); plus one unlinked user (300)
/// holding Officer. Both syncs recorded as successful just now.
async fn seed_guild(pool: &PgPool, fake: &FakeDiscord, linked: usize, promoted: &[usize]) {
    for i in 0..linked {
        let user = format!("{}", 200 + i);
        fake.state
            .lock()
            .unwrap()
            .members
            .insert(user.clone(), vec!["1004".into(), "1006".into()]);
        let du: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, all_guild_roles)
             VALUES ($1, $2, $2, ARRAY['Member']) RETURNING id",
        )
        .bind(&user)
        .bind(format!("user{user}"))
        .fetch_one(pool)
        .await
        .unwrap();
        let rank = if promoted.contains(&i) {
            "Officer"
        } else {
            "Member"
        };
        let ch: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, guild_rank_id)
             SELECT $1, 'stormrage', id FROM common.guild_ranks WHERE name = $2 RETURNING id",
        )
        .bind(format!("Char{i}"))
        .bind(rank)
        .fetch_one(pool)
        .await
        .unwrap();
        let player = seed::player(pool, &format!("Player{i}"), Some(du)).await;
        seed::link(pool, player, ch).await;
    }
    fake.state
        .lock()
        .unwrap()
        .members
        .insert("300".into(), vec!["1002".into()]);
    sqlx::query(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, all_guild_roles)
         VALUES ('300', 'stranger', 'Stranger', ARRAY['Officer'])",
    )
    .execute(pool)
    .await
    .unwrap();
    record_sync(pool, "blizzard", "success", 0).await;
    record_sync(pool, "discord", "success", 0).await;
}

async fn record_sync(pool: &PgPool, source: &str, status: &str, hours_ago: i64) {
    sqlx::query(
        "INSERT INTO guild_identity.sync_log (source, status, started_at, completed_at, error_message)
         VALUES ($1, $2, now() - make_interval(hours => $3::int), now() - make_interval(hours => $3::int),
                 CASE WHEN $2 = 'error' THEN 'Battle.net answered 503' END)",
    )
    .bind(source)
    .bind(status)
    .bind(hours_ago as i32)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn plan_moves_the_linked_member_keeps_unmanaged_roles_and_never_names_the_unlinked() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let fake = FakeDiscord::start().await;
        seed_guild(&db.pool, &fake, 11, &[0]).await;
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
    within_a_minute(async {
        let db = TestDb::new().await;
        let fake = FakeDiscord::start().await;
        seed_guild(&db.pool, &fake, 11, &[0]).await;
        let config = fake.config();
        let outcome = role_sync::apply(&db.pool, &config, ApplyOptions::default())
            .await
            .unwrap();
        assert_eq!(outcome.status, "success");
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
        assert!(recorded.iter().all(|c| c.result == "verified"));

        let undone = role_sync::undo(&db.pool, &config, outcome.run_id)
            .await
            .unwrap();
        assert_eq!(undone.status, "success");
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
    within_a_minute(async {
        let db = TestDb::new().await;
        let fake = FakeDiscord::start().await;
        seed_guild(&db.pool, &fake, 11, &[0, 1, 2]).await;
        fake.state.lock().unwrap().forbid_write = Some(1);
        let outcome = role_sync::apply(
            &db.pool,
            &fake.config(),
            ApplyOptions {
                allow_mass_change: true,
                approved_plan: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(outcome.status, "stopped");
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
    within_a_minute(async {
        let db = TestDb::new().await;
        let fake = FakeDiscord::start().await;
        seed_guild(&db.pool, &fake, 11, &[0, 1, 2]).await;
        fake.state.lock().unwrap().delete_role_after = Some((2, "1002".into()));
        let outcome = role_sync::apply(
            &db.pool,
            &fake.config(),
            ApplyOptions {
                allow_mass_change: true,
                approved_plan: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(outcome.status, "stopped");
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
    within_a_minute(async {
        let db = TestDb::new().await;
        let fake = FakeDiscord::start().await;
        seed_guild(&db.pool, &fake, 11, &[0, 1]).await;
        let config = fake.config();

        // More than 10 % of linked members.
        let err = refused(&db.pool, &fake, &config, ApplyOptions::default()).await;
        assert!(err.contains("2 of 11") && err.contains("--allow-mass-change"), "{err}");
        let mass = ApplyOptions {
            allow_mass_change: true,
            approved_plan: None,
        };

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
        assert_eq!(outcome.status, "success");
    })
    .await;
}

#[tokio::test]
async fn approval_applies_that_exact_plan_and_a_stale_plan_is_refused() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let fake = FakeDiscord::start().await;
        seed_guild(&db.pool, &fake, 11, &[0, 1]).await;
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
        assert_eq!(outcome.status, "success");
        assert_eq!(outcome.applied, fresh.plan.changes.len());
    })
    .await;
}

/// Apply stays inside the fake's per-route bucket (5 writes per 500 ms): 429s are waited out
/// using the bucket headers and every change still lands. Prints the achieved requests/s.
#[tokio::test]
async fn apply_waits_out_429_buckets_and_lands_every_change() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let fake = FakeDiscord::start().await;
        let promoted: Vec<usize> = (0..10).collect();
        seed_guild(&db.pool, &fake, 20, &promoted).await;
        fake.state.lock().unwrap().bucket_limit = Some((5, Duration::from_millis(500)));
        let started = Instant::now();
        let outcome = role_sync::apply(
            &db.pool,
            &fake.config(),
            ApplyOptions {
                allow_mass_change: true,
                approved_plan: None,
            },
        )
        .await
        .unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(outcome.status, "success");
        assert_eq!(outcome.applied, 20);
        for i in 0..10 {
            assert_eq!(fake.roles_of(&format!("{}", 200 + i)), vec!["1002", "1006"]);
        }
        let writes = fake.writes().len();
        let limited = fake.state.lock().unwrap().rate_limited;
        println!(
            "role apply: {writes} write requests ({limited} answered 429) in {elapsed:.2} s = {:.1} writes/s against a limit of 10/s",
            20.0 / elapsed
        );
        // 20 writes at 5 per 500 ms cannot finish in under 1.5 s if the bucket is honoured.
        assert!(elapsed >= 1.5, "{elapsed}");
    })
    .await;
}
