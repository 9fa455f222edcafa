//! A STATEFUL fake Discord for the role sync tests (axum on a local port, Discord's wire
//! shapes): roles with positions and permission bits, members and their roles, the bot's own
//! member, per-route buckets answering 429 with bucket headers, a 50013 on demand, a role
//! deleted mid-run, the audit channel's messages, and a log of every request. Plus the seed
//! that puts the same guild in the database.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use guild_sync::config::{Config, Secret};
use guild_sync::testing::{TestDb, seed, serve_on_a_free_port};
use serde_json::json;
use sqlx::PgPool;

pub const GUILD: &str = "900000000000000001";
pub const BOT: &str = "800000000000000001";
pub const MANAGE_ROLES: u64 = 1 << 28;

#[derive(Debug, Clone)]
pub struct FakeRole {
    pub id: String,
    pub name: String,
    pub position: i64,
    pub permissions: u64,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub roles: Vec<FakeRole>,
    pub members: HashMap<String, Vec<String>>,
    /// (method, path, X-Audit-Log-Reason).
    pub log: Vec<(String, String, Option<String>)>,
    /// Answer 403/50013 to the write request with this index (0-based among writes).
    pub forbid_write: Option<usize>,
    /// Delete this role after this many writes.
    pub delete_role_after: Option<(usize, String)>,
    pub writes: usize,
    /// Per-route bucket: this many requests per window, then 429.
    pub bucket_limit: Option<(usize, Duration)>,
    pub buckets: HashMap<String, (Instant, usize)>,
    pub rate_limited: usize,
    /// Answer the write with this index (0-based) once with a 429 (`global`, `retry_after`
    /// in seconds) whatever the buckets say, as Discord does under a global limit.
    pub force_429: Option<(usize, f64)>,
    /// Bodies posted to the audit channel.
    pub posted: Vec<serde_json::Value>,
}

pub type Shared = Arc<Mutex<FakeState>>;

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
    if let Some((at, retry_after)) = s.force_429
        && s.writes == at
    {
        s.force_429 = None;
        s.rate_limited += 1;
        let body = Json(
            json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": true}),
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-global", "true".parse().unwrap());
        headers.insert(
            "retry-after",
            format!("{}", retry_after.ceil()).parse().unwrap(),
        );
        return (StatusCode::TOO_MANY_REQUESTS, headers, body).into_response();
    }
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

/// The audit channel: keep the message, answer it as Discord does.
async fn message(
    State(s): State<Shared>,
    Path(c): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let mut s = s.lock().unwrap();
    s.log
        .push(("POST".into(), format!("/channels/{c}/messages"), None));
    s.posted.push(body);
    Json(json!({"id": "1", "channel_id": c})).into_response()
}

pub struct FakeDiscord {
    pub state: Shared,
    pub api_url: String,
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
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
            .route("/api/v10/channels/{c}/messages", post(message))
            .with_state(state.clone());
        let api_url = format!("{}/api/v10", serve_on_a_free_port(app).await);
        FakeDiscord { state, api_url }
    }

    pub fn config(&self) -> Config {
        let mut config = Config::defaults();
        config.discord_bot_token = Some(Secret::new("test-token"));
        config.discord_guild_id = Some(GUILD.into());
        config.discord_api_url = self.api_url.clone();
        config
    }

    pub fn writes(&self) -> Vec<(String, String, Option<String>)> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(m, _, _)| m == "PUT" || m == "DELETE")
            .cloned()
            .collect()
    }

    /// The Discord API state as the role sync sees it, as `(roles, member)` wire JSON, for
    /// feeding the same member to the gateway's handlers.
    pub fn wire_member(&self, user: &str) -> serde_json::Value {
        let s = self.state.lock().unwrap();
        json!({"user": {"id": user, "username": format!("user{user}")}, "roles": s.members[user], "joined_at": "2024-01-01T00:00:00+00:00"})
    }

    /// The roles as `GET /guilds/{g}/roles` lists them.
    pub fn wire_roles(&self) -> serde_json::Value {
        let s = self.state.lock().unwrap();
        s.roles
            .iter()
            .map(|r| json!({"id": r.id, "name": r.name, "position": r.position}))
            .collect()
    }

    pub fn roles_of(&self, user: &str) -> Vec<String> {
        let mut roles = self.state.lock().unwrap().members[user].clone();
        roles.sort();
        roles
    }
}

/// [`crate::common::on_a_fresh_db_within`] with a [`FakeDiscord`], both seeded with
/// [`seed_guild`]: the frame of the role sync tests. The test gets the `TestDb` itself, so it
/// keeps the database until it ends (see `tests/common`).
pub async fn on_a_guild_within<F, Fut>(limit: Duration, linked: usize, promoted: &[usize], test: F)
where
    F: FnOnce(TestDb, FakeDiscord) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    crate::common::on_a_fresh_db_within(limit, |db| async move {
        let fake = FakeDiscord::start().await;
        seed_guild(&db.pool, &fake, linked, promoted).await;
        test(db, fake).await
    })
    .await
}

/// [`on_a_guild_within`] the ordinary [`crate::common::TEST_TIMEOUT`].
pub async fn on_a_guild<F, Fut>(linked: usize, promoted: &[usize], test: F)
where
    F: FnOnce(TestDb, FakeDiscord) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_a_guild_within(crate::common::TEST_TIMEOUT, linked, promoted, test).await
}

/// Seed the fake and the database alike: `linked` Discord users each linked to a player with
/// one Member-rank character and holding Member + Raider; the users in `promoted` have an
/// Officer character instead (so the plan moves them to Officer); plus one unlinked user (300)
/// holding Officer. Both syncs recorded as successful just now.
pub async fn seed_guild(pool: &PgPool, fake: &FakeDiscord, linked: usize, promoted: &[usize]) {
    for i in 0..linked {
        let user = format!("{}", 200 + i);
        fake.state
            .lock()
            .unwrap()
            .members
            .insert(user.clone(), vec!["1004".into(), "1006".into()]);
        let du: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, all_guild_roles, highest_guild_role)
             VALUES ($1, $2, $2, ARRAY['Member'], 'Member') RETURNING id",
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
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, all_guild_roles, highest_guild_role)
         VALUES ('300', 'stranger', 'Stranger', ARRAY['Officer'], 'Officer')",
    )
    .execute(pool)
    .await
    .unwrap();
    record_sync(pool, "blizzard", "success", 0).await;
    record_sync(pool, "discord", "success", 0).await;
}

pub async fn record_sync(pool: &PgPool, source: &str, status: &str, hours_ago: i64) {
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
