//! Issue 19's routes over real TCP on a fresh PostgreSQL database: `GET /api/events` (officer
//! auth, filters, paging and its bounds, bad parameters as 400 / 422) and
//! `GET /api/identity/players/{id}/history` (404 for an unknown player), both also paged by the
//! `before=` cursor, with events produced by real roster syncs, and both routes in the OpenAPI
//! document.

mod blizzard_support;
mod common;

use blizzard_support::{fetched, guard, member};
use guild_sync::api::MAX_OFFSET;
use guild_sync::config::{Config, Secret};
use guild_sync::db_sync::sync_fetched;
use guild_sync::testing::noop_state;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use common::{SpawnedApp, on_a_fresh_db, send, spawn_app};

const TOKEN: &str = "events-token-for-tests";

async fn spawn(pool: &PgPool) -> SpawnedApp {
    spawn_app(noop_state(
        pool.clone(),
        Config {
            guild_sync_admin_token: Some(Secret::new(TOKEN)),
            ..Config::defaults()
        },
    ))
    .await
}

async fn get(app: &SpawnedApp, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

/// A baseline sync (Baine alone: the first sync records no joins), five joins, then a
/// promotion of Thrall (linked to a player between the runs) and a leave.
async fn seed(pool: &PgPool) -> i32 {
    let mut members: Vec<_> = ["Arthas", "Jaina", "Thrall", "Sylvanas", "Anduin", "Baine"]
        .iter()
        .zip(1..)
        .map(|(name, id)| member(id, name))
        .collect();
    sync_fetched(pool, &fetched(&members[5..]), guard())
        .await
        .unwrap();
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
    on_a_fresh_db(|db| async move {
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

        // The same walk by the cursor: each answer's next_before, until has_more is false.
        let mut walked = Vec::new();
        let mut path = "/api/events?per_page=3".to_string();
        loop {
            let (status, body) = get(&app, &path, Some(TOKEN)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            walked.extend(
                body["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_i64().unwrap()),
            );
            if body["has_more"] == false {
                assert_eq!(body["next_before"], Value::Null);
                break;
            }
            let next = body["next_before"]
                .as_i64()
                .expect("a cursor while has_more");
            assert_eq!(Some(next), walked.last().copied());
            path = format!("/api/events?per_page=3&before={next}");
            let (_, page) = get(&app, &path, Some(TOKEN)).await;
            assert_eq!(page["page"], Value::Null, "a cursor page has no number");
        }
        assert_eq!(walked, seen);
        // The cursor keeps the filters.
        let (_, body) = get(
            &app,
            &format!("/api/events?type=joined_guild&before={}", seen[2]),
            Some(TOKEN),
        )
        .await;
        let joined: Vec<i64> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert_eq!(joined, seen[3..]);
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
            ("page=2&before=1", StatusCode::BAD_REQUEST),
            ("before=999999", StatusCode::BAD_REQUEST),
            ("before=x", StatusCode::BAD_REQUEST),
        ] {
            let (status, body) = get(&app, &format!("/api/events?{query}"), Some(TOKEN)).await;
            assert_eq!(status, expected, "{query}: {body}");
            assert!(body["error"].is_string(), "{query}: {body}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_feed_page_past_ten_thousand_events_is_a_400_naming_the_cursor_which_goes_on() {
    on_a_fresh_db(|db| async move {
        seed(&db.pool).await;
        // 10,500 older events under the seed's seven: 10,507 in all, so page 21 of 500 (the
        // deepest, starting at MAX_OFFSET) is full and older events follow it.
        let thrall: i32 = sqlx::query_scalar(
            "SELECT id FROM guild_identity.wow_characters WHERE blizzard_id = 3",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO guild_identity.member_events (event_type, occurred_at, character_id, actor)
             SELECT 'rank_changed', now() - g * interval '1 minute', $1, 'engine'
             FROM generate_series(1, 10500) g",
        )
        .bind(thrall)
        .execute(&db.pool)
        .await
        .unwrap();
        let app = spawn(&db.pool).await;
        let ids = |body: &Value| -> Vec<i64> {
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap())
                .collect()
        };
        let in_feed_order = |offset: i64, limit: i64| {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM guild_identity.member_events
                 ORDER BY occurred_at DESC, id DESC OFFSET $1 LIMIT $2",
            )
            .bind(offset)
            .bind(limit)
            .fetch_all(&db.pool)
        };

        // The deepest page still answers, with events 10,001 to 10,500.
        assert_eq!(MAX_OFFSET, 10_000);
        let (status, deepest) = get(&app, "/api/events?page=21&per_page=500", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{deepest}");
        assert_eq!(ids(&deepest), in_feed_order(10_000, 500).await.unwrap());
        assert_eq!(deepest["page"], 21);
        assert_eq!(deepest["has_more"], true);
        let (status, one) = get(&app, "/api/events?page=10001&per_page=1", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{one}");
        assert_eq!(ids(&one), in_feed_order(10_000, 1).await.unwrap());

        // One page deeper is a 400 that says where the limit is and how to go on.
        for query in ["page=22&per_page=500", "page=10002&per_page=1", "page=102"] {
            let (status, body) = get(&app, &format!("/api/events?{query}"), Some(TOKEN)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            let error = body["error"].as_str().unwrap();
            for named in ["10000", "before=", "next_before"] {
                assert!(error.contains(named), "{query}: {error}");
            }
        }

        // The cursor has no depth limit: from the deepest page's next_before to the end.
        let cursor = deepest["next_before"].as_i64().unwrap();
        let (status, rest) = get(
            &app,
            &format!("/api/events?per_page=500&before={cursor}"),
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rest}");
        assert_eq!(ids(&rest), in_feed_order(10_500, 500).await.unwrap());
        assert_eq!(ids(&rest).len(), 7);
        assert_eq!(rest["has_more"], false);
    })
    .await;
}

#[tokio::test]
async fn a_players_history_includes_events_from_before_the_link_and_unknown_players_are_404() {
    on_a_fresh_db(|db| async move {
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
        assert_eq!(body["has_more"], false);
        // The whole history: it says where it starts (the first sync, the baseline).
        let first_sync: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "SELECT min(started_at) FROM guild_identity.sync_log WHERE source = 'blizzard'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let starts: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(body["history_starts_at"].clone()).unwrap();
        assert_eq!(starts, first_sync, "{body}");

        // One event a page: the newest, then the older one by the cursor.
        let (_, first) = get(&app, &format!("{path}?limit=1"), Some(TOKEN)).await;
        assert_eq!(first["events"][0]["event_type"], "rank_changed");
        assert_eq!(first["has_more"], true);
        assert_eq!(
            first["history_starts_at"],
            Value::Null,
            "older events follow"
        );
        let cursor = first["next_before"].as_i64().unwrap();
        let (status, older) = get(
            &app,
            &format!("{path}?limit=1&before={cursor}"),
            Some(TOKEN),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{older}");
        assert_eq!(older["events"][0]["event_type"], "joined_guild");
        assert_eq!(older["has_more"], false);
        assert_eq!(older["next_before"], Value::Null);
        assert_eq!(older["history_starts_at"], body["history_starts_at"]);
        let (status, _) = get(&app, &format!("{path}?before=999999"), Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

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
        // The cursor is documented: the parameter on both routes, the field in both answers.
        for route in ["/api/events", "/api/identity/players/{id}/history"] {
            let params = doc["paths"][route]["get"]["parameters"].as_array().unwrap();
            assert!(
                params.iter().any(|p| p["name"] == "before"),
                "{route}: {params:?}"
            );
        }
        for schema in ["EventsPage", "PlayerHistory"] {
            assert!(
                doc["components"]["schemas"][schema]["properties"]["next_before"].is_object(),
                "{schema}"
            );
        }
        assert!(
            doc["components"]["schemas"]["PlayerHistory"]["properties"]["history_starts_at"]
                .is_object()
        );
    })
    .await;
}
