//! Issue 19's routes over real TCP on a fresh PostgreSQL database: `GET /api/events` (officer
//! auth, filters, paging and its bounds, bad parameters as 400 / 422) and
//! `GET /api/identity/players/{id}/history` (404 for an unknown player), with events produced
//! by real roster syncs, and both routes in the OpenAPI document.

mod blizzard_support;
mod common;

use std::sync::Arc;

use blizzard_support::{fetched, guard, member};
use guild_sync::api::AppState;
use guild_sync::config::{Config, Secret};
use guild_sync::db_sync::sync_fetched;
use guild_sync::scheduler::Scheduler;
use guild_sync::testing::{NoopStages, TestDb};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use common::{SpawnedApp, send, spawn_app, within_a_minute};

const TOKEN: &str = "events-token-for-tests";

async fn spawn(pool: &PgPool) -> SpawnedApp {
    spawn_app(AppState {
        pool: pool.clone(),
        scheduler: Arc::new(Scheduler::new(pool.clone(), Arc::new(NoopStages))),
        config: Arc::new(Config {
            guild_sync_admin_token: Some(Secret::new(TOKEN)),
            ..Config::defaults()
        }),
    })
    .await
}

async fn get(app: &SpawnedApp, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

/// Five joins, then a promotion of Thrall (linked to a player between the runs) and a leave.
async fn seed(pool: &PgPool) -> i32 {
    let mut members: Vec<_> = ["Arthas", "Jaina", "Thrall", "Sylvanas", "Anduin"]
        .iter()
        .zip(1..)
        .map(|(name, id)| member(id, name))
        .collect();
    sync_fetched(pool, &fetched(&members), guard())
        .await
        .unwrap();
    let thrall: i32 =
        sqlx::query_scalar("SELECT id FROM guild_identity.wow_characters WHERE blizzard_id = 3")
            .fetch_one(pool)
            .await
            .unwrap();
    let player = guild_sync::testing::seed::player(pool, "Go'el", None).await;
    guild_sync::testing::seed::link(pool, player, thrall).await;
    members[2].rank = 2;
    members.remove(3);
    sync_fetched(pool, &fetched(&members), guard())
        .await
        .unwrap();
    player
}

#[tokio::test]
async fn the_event_feed_is_filtered_paged_and_bounded_for_officers_only() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let player = seed(&db.pool).await;
        let app = spawn(&db.pool).await;

        for token in [None, Some("wrong")] {
            let (status, body) = get(&app, "/api/events", token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }

        let (status, body) = get(&app, "/api/events", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["has_more"], false);
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 7);
        // Newest first: the second run's events come before the five joins.
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert!(types[2..].iter().all(|t| *t == "joined_guild"), "{types:?}");
        let promoted = events
            .iter()
            .find(|e| e["event_type"] == "rank_changed")
            .unwrap();
        assert_eq!(promoted["character_name"], "Thrall");
        assert_eq!(promoted["player_name"], "Go'el");
        assert_eq!(promoted["actor"], "engine");

        let (_, body) = get(&app, "/api/events?type=left_guild", Some(TOKEN)).await;
        assert_eq!(body["events"].as_array().unwrap().len(), 1);
        assert_eq!(body["events"][0]["character_name"], "Sylvanas");
        let (_, body) = get(
            &app,
            &format!("/api/events?player_id={player}"),
            Some(TOKEN),
        )
        .await;
        assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
        let (_, body) = get(&app, "/api/events?since=2999-01-01T00:00:00Z", Some(TOKEN)).await;
        assert_eq!(body["events"], serde_json::json!([]));

        // Pages of 3: disjoint, in order, the last one short.
        let mut seen = Vec::new();
        for page in 1..=3 {
            let (status, body) = get(
                &app,
                &format!("/api/events?per_page=3&page={page}"),
                Some(TOKEN),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["per_page"], 3);
            assert_eq!(body["has_more"], page < 3, "page {page}");
            seen.extend(
                body["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_i64().unwrap()),
            );
        }
        assert_eq!(seen.len(), 7);
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
        let (status, _) = get(&app, "/api/events?per_page=500", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);

        for (query, expected) in [
            ("per_page=501", StatusCode::BAD_REQUEST),
            ("per_page=0", StatusCode::BAD_REQUEST),
            ("page=0", StatusCode::BAD_REQUEST),
            ("page=abc", StatusCode::BAD_REQUEST),
            ("since=yesterday", StatusCode::BAD_REQUEST),
            ("player_id=x", StatusCode::BAD_REQUEST),
            ("type=promoted", StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let (status, body) = get(&app, &format!("/api/events?{query}"), Some(TOKEN)).await;
            assert_eq!(status, expected, "{query}: {body}");
            assert!(body["error"].is_string(), "{query}: {body}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_players_history_includes_events_from_before_the_link_and_unknown_players_are_404() {
    within_a_minute(async {
        let db = TestDb::new().await;
        let player = seed(&db.pool).await;
        let app = spawn(&db.pool).await;

        let path = format!("/api/identity/players/{player}/history");
        let (status, _) = get(&app, &path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = get(&app, &path, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let types: Vec<&str> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        // The promotion (recorded with the player) and the join (recorded before the link).
        assert_eq!(types, vec!["rank_changed", "joined_guild"]);

        let (status, body) = get(&app, "/api/identity/players/999999/history", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = get(&app, "/api/identity/players/abc/history", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = get(&app, &format!("{path}?limit=501"), Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let (status, doc) = get(&app, "/api/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        for route in ["/api/events", "/api/identity/players/{id}/history"] {
            assert!(
                doc["paths"][route]["get"].is_object(),
                "{route} missing from the document"
            );
        }
    })
    .await;
}
