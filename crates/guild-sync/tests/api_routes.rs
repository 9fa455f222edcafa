//! The HTTP API over real TCP (127.0.0.1:0, reqwest) on a fresh database per test: every route,
//! authentication, the `{"error"}` shape of every refusal, and the OpenAPI document. Pipeline
//! triggers run stub stages (the real ones have their own tests); the scheduler, its lock and
//! `sync_log` are real.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use guild_sync::api;
use guild_sync::config::{Config, Secret};
use guild_sync::testing::noop_state;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{OFFICER_TOKEN as TOKEN, OfficerApp, SpawnedApp, send, spawn_app, within_a_minute};

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "not an {{\"error\"}} body: {body}"
    );
}

/// Every officer route as (method, path).
const OFFICER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/identity/players"),
    ("GET", "/api/identity/orphans/wow"),
    ("GET", "/api/identity/orphans/discord"),
    ("GET", "/api/identity/mismatches"),
    ("POST", "/api/identity/link"),
    ("DELETE", "/api/identity/link/1"),
    ("POST", "/api/guild-sync/blizzard/trigger"),
    ("POST", "/api/guild-sync/discord/trigger"),
    ("POST", "/api/guild-sync/report/trigger"),
    ("GET", "/api/guild-sync/status"),
    ("GET", "/api/audit/issues"),
    ("POST", "/api/audit/issues/1/resolve"),
    ("POST", "/api/audit/issues/1/reopen"),
    ("GET", "/api/audit/actions"),
    ("GET", "/api/identity/suggestions"),
    ("POST", "/api/identity/suggestions/1/accept"),
    ("POST", "/api/identity/suggestions/1/dismiss"),
    ("GET", "/api/identity/candidates?character_id=1"),
    ("GET", "/api/identity/players/1"),
    ("PUT", "/api/identity/players/1/main"),
    ("GET", "/api/roles/plans/latest"),
    ("POST", "/api/roles/plans/1/approve"),
];

/// Two players (one with a Discord user and two characters), an orphan character, an orphan
/// Discord user and a rank mismatch. Returns nothing: tests look rows up by name.
async fn seed(pool: &PgPool) {
    sqlx::raw_sql(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, highest_guild_role)
         VALUES ('100', 'trogmoon', 'Trog', 'Member'), ('200', 'lonely', NULL, 'Veteran'),
                ('300', 'spare', NULL, 'Member');
         INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, class_id, active_spec_id, guild_rank_id, level)
         VALUES
          ('Trogmoon', 'senjin', (SELECT id FROM guild_identity.classes WHERE name = 'Druid'),
           (SELECT s.id FROM guild_identity.specializations s JOIN guild_identity.classes c ON c.id = s.class_id
            WHERE c.name = 'Druid' AND s.name = 'Balance'),
           (SELECT id FROM common.guild_ranks WHERE name = 'Officer'), 80),
          ('Trogalt', 'senjin', (SELECT id FROM guild_identity.classes WHERE name = 'Warrior'), NULL,
           (SELECT id FROM common.guild_ranks WHERE name = 'Member'), 70),
          ('Nobody', 'senjin', NULL, NULL, NULL, 10),
          ('Solo', 'senjin', NULL, NULL, NULL, 60);
         INSERT INTO guild_identity.players (display_name, discord_user_id)
         VALUES ('Trog', (SELECT id FROM guild_identity.discord_users WHERE discord_id = '100')),
                ('Solo', NULL);
         INSERT INTO guild_identity.player_characters (player_id, character_id, link_source, confidence)
         SELECT p.id, wc.id, 'exact_name', 'high'
         FROM guild_identity.players p, guild_identity.wow_characters wc
         WHERE (p.display_name = 'Trog' AND wc.character_name IN ('Trogmoon', 'Trogalt'))
            OR (p.display_name = 'Solo' AND wc.character_name = 'Solo');",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn id_of(pool: &PgPool, sql: &str) -> i32 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn character_id(pool: &PgPool, name: &str) -> i32 {
    id_of(
        pool,
        &format!("SELECT id FROM guild_identity.wow_characters WHERE character_name = '{name}'"),
    )
    .await
}

async fn discord_user_id(pool: &PgPool, discord_id: &str) -> i32 {
    id_of(
        pool,
        &format!("SELECT id FROM guild_identity.discord_users WHERE discord_id = '{discord_id}'"),
    )
    .await
}

async fn player_id(pool: &PgPool, name: &str) -> i32 {
    id_of(
        pool,
        &format!("SELECT id FROM guild_identity.players WHERE display_name = '{name}'"),
    )
    .await
}

#[tokio::test]
async fn health_answers_200_with_a_database_and_503_without() {
    within_a_minute(async {
        let app = OfficerApp::spawn(None).await;
        let (status, body) = send(app.client.get(format!("{}/api/health", app.base))).await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "status": "ok" })));

        app.pool.close().await;
        let (status, body) = send(app.client.get(format!("{}/api/health", app.base))).await;
        assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
}

#[tokio::test]
async fn officer_routes_refuse_a_missing_or_wrong_token_with_401() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        for (method, path) in OFFICER_ROUTES {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let url = format!("{}{path}", app.base);
            let cases = [
                ("no header", app.client.request(method.clone(), &url)),
                (
                    "wrong token",
                    app.client.request(method.clone(), &url).bearer_auth("nope"),
                ),
                (
                    "token with a suffix",
                    app.client
                        .request(method.clone(), &url)
                        .bearer_auth(format!("{TOKEN}x")),
                ),
                (
                    "basic auth",
                    app.client
                        .request(method.clone(), &url)
                        .basic_auth(TOKEN, Some("")),
                ),
            ];
            for (case, request) in cases {
                let (status, body) = send(request).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {case}"
                );
                assert!(body["error"].is_string(), "{body}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn officer_routes_answer_503_when_no_admin_token_is_configured() {
    within_a_minute(async {
        let app = OfficerApp::spawn(None).await;
        for (method, path) in OFFICER_ROUTES {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let (status, body) = send(app.request(method.clone(), path)).await;
            assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("GUILD_SYNC_ADMIN_TOKEN"),
                "{method} {path}: {body}"
            );
        }
        // The public routes stay up.
        let (status, _) = send(app.client.get(format!("{}/api/openapi.json", app.base))).await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn players_lists_each_player_with_its_discord_user_and_characters() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        seed(&app.db.pool).await;

        let (status, body) = app.get("/api/identity/players").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 2, "{body}");
        let players = body["players"].as_array().unwrap();
        assert_eq!(players.len(), 2);
        let solo = &players[0];
        assert_eq!(solo["display_name"], "Solo");
        assert_eq!(solo["discord_user"], Value::Null);
        assert_eq!(solo["characters"].as_array().unwrap().len(), 1);

        let trog = &players[1];
        assert_eq!(trog["display_name"], "Trog");
        assert_eq!(trog["discord_user"]["discord_id"], "100");
        assert_eq!(trog["discord_user"]["username"], "trogmoon");
        let characters = trog["characters"].as_array().unwrap();
        let names: Vec<&str> = characters
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Trogalt", "Trogmoon"]);
        let moon = &characters[1];
        assert_eq!(moon["realm"], "senjin");
        assert_eq!(moon["class"], "Druid");
        assert_eq!(moon["spec"], "Balance");
        assert_eq!(moon["role"], "Ranged DPS");
        assert_eq!(moon["rank"], "Officer");
        assert_eq!(moon["link_source"], "exact_name");
        assert_eq!(moon["confidence"], "high");
        assert_eq!(moon["in_guild"], true);
        assert_eq!(characters[0]["spec"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn orphans_and_mismatches_serve_the_live_integrity_rows() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        seed(&app.db.pool).await;

        let (status, wow) = app.get("/api/identity/orphans/wow").await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = wow
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["character_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Nobody"]);

        let (status, discord) = app.get("/api/identity/orphans/discord").await;
        assert_eq!(status, StatusCode::OK);
        let ids: BTreeSet<&str> = discord
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["discord_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, BTreeSet::from(["200", "300"]));

        let (status, mismatches) = app.get("/api/identity/mismatches").await;
        assert_eq!(status, StatusCode::OK);
        let rows = mismatches.as_array().unwrap();
        assert_eq!(rows.len(), 1, "{mismatches}");
        assert_eq!(rows[0]["display_name"], "Trog");
        assert_eq!(rows[0]["ingame_rank"], "Officer");
        assert_eq!(rows[0]["discord_role"], "Member");
    })
    .await;
}

#[tokio::test]
async fn link_creates_a_player_for_a_character_and_a_discord_user_nobody_owns() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        seed(&app.db.pool).await;
        let nobody = character_id(&app.db.pool, "Nobody").await;
        let lonely = discord_user_id(&app.db.pool, "200").await;

        let (status, body) = app
            .post(
                "/api/identity/link",
                Some(json!({ "wow_character_id": nobody, "discord_user_id": lonely })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["created_player"], true);
        let (name, discord, source, confidence): (String, Option<i32>, String, String) =
            sqlx::query_as(
                "SELECT p.display_name, p.discord_user_id, pc.link_source, pc.confidence
                 FROM guild_identity.player_characters pc
                 JOIN guild_identity.players p ON p.id = pc.player_id WHERE pc.id = $1",
            )
            .bind(body["link_id"].as_i64().unwrap() as i32)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        assert_eq!(
            (name.as_str(), discord, source.as_str(), confidence.as_str()),
            ("lonely", Some(lonely), "manual", "confirmed")
        );
    })
    .await;
}

#[tokio::test]
async fn link_adds_the_character_to_the_discord_users_player_or_the_given_one() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        seed(&app.db.pool).await;
        let nobody = character_id(&app.db.pool, "Nobody").await;
        let trog_user = discord_user_id(&app.db.pool, "100").await;
        let trog = player_id(&app.db.pool, "Trog").await;
        let solo = player_id(&app.db.pool, "Solo").await;
        let spare = discord_user_id(&app.db.pool, "300").await;

        let (status, body) = app
            .post(
                "/api/identity/link",
                Some(json!({ "wow_character_id": nobody, "discord_user_id": trog_user })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["player_id"], trog);
        assert_eq!(body["created_player"], false);

        // Linking it again to the same player confirms the link instead of failing.
        let (status, again) = app
            .post(
                "/api/identity/link",
                Some(json!({ "wow_character_id": nobody, "player_id": trog })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["link_id"], body["link_id"]);
        assert_eq!(again["created_link"], false);

        // A player without a Discord user gets the one given.
        let (status, unlinked) = app
            .delete(&format!("/api/identity/link/{}", body["link_id"]))
            .await;
        assert_eq!(status, StatusCode::OK, "{unlinked}");
        let (status, body) = app
            .post(
                "/api/identity/link",
                Some(json!({ "wow_character_id": nobody, "player_id": solo, "discord_user_id": spare })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let discord: Option<i32> =
            sqlx::query_scalar("SELECT discord_user_id FROM guild_identity.players WHERE id = $1")
                .bind(solo)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        assert_eq!(discord, Some(spare));
    })
    .await;
}

#[tokio::test]
async fn link_refuses_conflicts_with_409_and_unknown_ids_with_404() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        seed(&app.db.pool).await;
        let pool = &app.db.pool;
        let trogmoon = character_id(pool, "Trogmoon").await;
        let nobody = character_id(pool, "Nobody").await;
        let trog_user = discord_user_id(pool, "100").await;
        let lonely = discord_user_id(pool, "200").await;
        let solo = player_id(pool, "Solo").await;
        let trog = player_id(pool, "Trog").await;

        let cases = [
            ("character owned by another player", json!({ "wow_character_id": trogmoon, "player_id": solo }), StatusCode::CONFLICT),
            ("character owned, new player", json!({ "wow_character_id": trogmoon }), StatusCode::CONFLICT),
            ("discord user owned by another player", json!({ "wow_character_id": nobody, "player_id": solo, "discord_user_id": trog_user }), StatusCode::CONFLICT),
            ("player has another discord user", json!({ "wow_character_id": nobody, "player_id": trog, "discord_user_id": lonely }), StatusCode::CONFLICT),
            ("unknown character", json!({ "wow_character_id": 999_999 }), StatusCode::NOT_FOUND),
            ("unknown discord user", json!({ "wow_character_id": nobody, "discord_user_id": 999_999 }), StatusCode::NOT_FOUND),
            ("unknown player", json!({ "wow_character_id": nobody, "player_id": 999_999 }), StatusCode::NOT_FOUND),
        ];
        for (case, request, expected) in cases {
            let (status, body) = app.post("/api/identity/link", Some(request)).await;
            assert_eq!(status, expected, "{case}: {body}");
            assert!(body["error"].is_string(), "{case}: {body}");
        }
        // Nothing was changed by the refusals.
        let links: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.player_characters")
            .fetch_one(pool)
            .await
            .unwrap();
        let players: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.players")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!((links, players), (3, 2));
    })
    .await;
}

#[tokio::test]
async fn unlink_removes_the_link_once_and_then_answers_404() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        seed(&app.db.pool).await;
        let link: i32 = sqlx::query_scalar(
            "SELECT pc.id FROM guild_identity.player_characters pc
             JOIN guild_identity.wow_characters wc ON wc.id = pc.character_id
             WHERE wc.character_name = 'Trogalt'",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();

        let (status, body) = app.delete(&format!("/api/identity/link/{link}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["link_id"], link);
        let (status, body) = app.delete(&format!("/api/identity/link/{link}")).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = app.delete("/api/identity/link/not-a-number").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn bad_request_bodies_get_4xx_with_an_error_body_never_500() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        let url = format!("{}/api/identity/link", app.base);
        let json_post = |body: String| {
            app.client
                .post(&url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body)
        };
        let oversize = format!(
            "{{\"wow_character_id\": 1, \"padding\": \"{}\"}}",
            "x".repeat(api::MAX_BODY_BYTES + 1)
        );
        let cases = [
            (
                "malformed JSON",
                json_post("{\"wow_character_id\": ".into()),
                StatusCode::BAD_REQUEST,
            ),
            (
                "not JSON at all",
                json_post("hello".into()),
                StatusCode::BAD_REQUEST,
            ),
            (
                "wrong type",
                json_post("{\"wow_character_id\": \"seven\"}".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "missing field",
                json_post("{}".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "id out of range",
                json_post("{\"wow_character_id\": 99999999999}".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "unknown field",
                json_post("{\"wow_character_id\": 1, \"x\": 2}".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "no content type",
                app.client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .body("{\"wow_character_id\": 1}"),
                StatusCode::BAD_REQUEST,
            ),
            (
                "oversize body",
                json_post(oversize),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ];
        for (case, request, expected) in cases {
            let (status, body) = send(request).await;
            assert_eq!(status, expected, "{case}: {body}");
            assert!(body["error"].is_string(), "{case}: {body}");
        }
        let (status, body) = app.get("/api/no/such/route").await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn triggers_answer_202_with_the_runs_sync_log_id_and_status_shows_the_last_runs() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        let mut ids = Vec::new();
        for (path, source) in [
            ("/api/guild-sync/blizzard/trigger", "pipeline:blizzard"),
            ("/api/guild-sync/discord/trigger", "pipeline:discord"),
            ("/api/guild-sync/report/trigger", "pipeline:report"),
        ] {
            let (status, body) = app.post(path, Some(json!({}))).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{path}: {body}");
            assert_eq!(body["source"], source);
            let id = body["sync_log_id"].as_i64().unwrap();
            let row_source: String =
                sqlx::query_scalar("SELECT source FROM guild_identity.sync_log WHERE id = $1")
                    .bind(id)
                    .fetch_one(&app.db.pool)
                    .await
                    .unwrap();
            assert_eq!(row_source, source);
            ids.push(id);
            // One at a time: let this run finish before the next trigger so none is skipped.
            wait_until_finished(&app.db.pool, id).await;
        }
        let (status, body) = app.get("/api/guild-sync/status").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let runs = body.as_array().unwrap();
        let shown: BTreeSet<i64> = runs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(shown, ids.iter().copied().collect());
        for run in runs {
            assert_eq!(run["status"], "success", "{run}");
            assert!(run["details"]["stages"].is_object(), "{run}");
        }

        // Shutting down: triggers are refused with 503, not started.
        app.scheduler.shutdown().await;
        let (status, body) = app
            .post("/api/guild-sync/blizzard/trigger", Some(json!({})))
            .await;
        assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
}

/// Wait (by polling the row, not by timing) until a triggered run is no longer `running`.
async fn wait_until_finished(pool: &PgPool, id: i64) {
    loop {
        let status: String =
            sqlx::query_scalar("SELECT status FROM guild_identity.sync_log WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        if status != "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_addon_routes_answer_503_when_no_api_key_is_configured() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(TOKEN)).await;
        let (status, body) = send(
            app.client
                .post(format!("{}/api/guild-sync/addon-upload", app.base))
                .json(&json!({})),
        )
        .await;
        assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE);
        let (status, body) = send(
            app.client
                .get(format!("{}/api/guild-sync/addon-upload/status", app.base)),
        )
        .await;
        assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_of_the_spec() {
    within_a_minute(async {
        let app = OfficerApp::spawn(None).await;
        let (status, doc) = send(app.client.get(format!("{}/api/openapi.json", app.base))).await;
        assert_eq!(status, StatusCode::OK);
        let mut listed = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                listed.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
        let expected: BTreeSet<String> = [
            "GET /api/identity/players",
            "GET /api/identity/orphans/wow",
            "GET /api/identity/orphans/discord",
            "GET /api/identity/mismatches",
            "POST /api/identity/link",
            "DELETE /api/identity/link/{id}",
            "POST /api/guild-sync/blizzard/trigger",
            "POST /api/guild-sync/discord/trigger",
            "POST /api/guild-sync/report/trigger",
            "POST /api/guild-sync/addon-upload",
            "GET /api/guild-sync/addon-upload/status",
            "GET /api/guild-sync/status",
            "GET /api/audit/issues",
            "POST /api/audit/issues/{id}/resolve",
            "POST /api/audit/issues/{id}/reopen",
            "GET /api/audit/actions",
            "GET /api/identity/suggestions",
            "POST /api/identity/suggestions/{id}/accept",
            "POST /api/identity/suggestions/{id}/dismiss",
            "GET /api/identity/candidates",
            "GET /api/identity/players/{id}",
            "PUT /api/identity/players/{id}/main",
            "GET /api/events",
            "GET /api/identity/players/{id}/history",
            "GET /api/roles/plans/latest",
            "POST /api/roles/plans/{id}/approve",
            "GET /api/health",
            "GET /api/openapi.json",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(listed, expected);
        assert!(
            doc["components"]["securitySchemes"]["bearer"].is_object(),
            "{doc}"
        );
        assert!(doc["components"]["schemas"]["PlayerView"].is_object());
    })
    .await;
}

/// The whole OpenAPI document, pinned: every route's parameters and every schema's fields,
/// types, nullability and descriptions. The HTTP shapes live in `api/` apart from the `db/`
/// rows they are made from (issue 13), so a changed row cannot silently change the wire format:
/// a change shows here as a snapshot diff to review (`cargo insta review`). The crate version is
/// left out, so a release does not touch the snapshot.
#[tokio::test]
async fn the_openapi_document_is_the_reviewed_one() {
    within_a_minute(async {
        let app = OfficerApp::spawn(None).await;
        let (status, mut doc) =
            send(app.client.get(format!("{}/api/openapi.json", app.base))).await;
        assert_eq!(status, StatusCode::OK);
        doc["info"]["version"] = json!("(the crate version)");
        insta::assert_json_snapshot!("openapi_document", doc);
    })
    .await;
}

/// Issue 15: during a database outage requests hung for the pool's 30 s, then answered 500.
/// With the server down (a port that refuses connections), every officer route answers 503
/// within 5 s, and says why.
#[tokio::test]
async fn during_a_database_outage_the_api_answers_503_within_five_seconds() {
    within_a_minute(async {
        let refused_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let options = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(refused_port)
            .username("guild_sync")
            .database("guild_sync");
        let pool = guild_sync::db::pool_options().connect_lazy_with(options);
        let state = noop_state(
            pool,
            Config {
                guild_sync_admin_token: Some(Secret::new("officer-token")),
                guild_sync_api_key: None,
                ..Config::defaults()
            },
        );
        let SpawnedApp { base, client } = spawn_app(state).await;
        for route in [
            "/api/identity/players",
            "/api/identity/orphans/wow",
            "/api/guild-sync/status",
            "/api/health",
        ] {
            let started = std::time::Instant::now();
            let response = client
                .get(format!("{base}{route}"))
                .bearer_auth("officer-token")
                .send()
                .await
                .unwrap();
            let elapsed = started.elapsed();
            assert_eq!(
                response.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{route}"
            );
            assert!(elapsed < Duration::from_secs(5), "{route} took {elapsed:?}");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("unavailable"),
                "{route}: {body}"
            );
        }
    })
    .await;
}
