//! The officer console's review API (issue 16 §1) over real TCP on a fresh PostgreSQL
//! database per test: the audit issue list, resolve / reopen under the checker's suppression
//! rule, suggestions accepted and dismissed (and a dismissed pair never suggested again by the
//! real identity engine), candidates, paged players, the player page, set main, the action
//! history, ETags and 304, and every refusal as a 4xx naming what was wrong — never a 500.
//! (Auth of every new route is covered with the other officer routes in `api_routes.rs`.)

mod common;

use guild_sync::api::console::MAX_OFFSET;
use guild_sync::identity_engine::run_matching;
use guild_sync::integrity_checker::check;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{OFFICER_TOKEN, OfficerApp, send, within_a_minute};

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, needle: &str) {
    assert_eq!(status, expected, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(needle), "{needle:?} not in {body}");
}

async fn character(pool: &PgPool, name: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, level)
         VALUES ($1, 'stormrage', 80) RETURNING id",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn discord_user(pool: &PgPool, username: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users (discord_id, username, highest_guild_role,
             all_guild_roles)
         VALUES ((SELECT (1000 + count(*))::text FROM guild_identity.discord_users), $1,
                 'Member', ARRAY['Member', 'Raider']) RETURNING id",
    )
    .bind(username)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// An issue as a check run would write it; returns its id.
async fn issue(pool: &PgPool, issue_type: &str, summary: &str, character_id: Option<i32>) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.audit_issues
             (issue_type, severity, wow_character_id, summary, issue_hash, created_at)
         VALUES ($1, 'warning', $2, $3, md5($3),
                 now() - (SELECT count(*) FROM guild_identity.audit_issues) * interval '-1 minute')
         RETURNING id",
    )
    .bind(issue_type)
    .bind(character_id)
    .bind(summary)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn audit_issues_are_listed_newest_first_with_counts_filters_and_paging_bounds() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let thrall = character(&app.pool, "Thrall").await;
        let a = issue(
            &app.pool,
            "orphan_wow",
            "Thrall has no player",
            Some(thrall),
        )
        .await;
        let b = issue(&app.pool, "orphan_wow", "Jaina has no player", None).await;
        let c = issue(&app.pool, "rank_mismatch", "Rank of Varian", None).await;

        let (status, body) = app.get("/api/audit/issues").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 3);
        let ids: Vec<i64> = body["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![i64::from(c), i64::from(b), i64::from(a)],
            "newest first"
        );
        assert_eq!(
            body["counts"],
            json!([{"issue_type": "orphan_wow", "count": 2},
                   {"issue_type": "rank_mismatch", "count": 1}])
        );
        assert_eq!(body["issues"][2]["character_name"], "Thrall");

        let (_, body) = app
            .get("/api/audit/issues?type=orphan_wow&per_page=1&page=2")
            .await;
        assert_eq!(body["total"], 2);
        assert_eq!(body["issues"][0]["id"], a);
        let (_, body) = app.get("/api/audit/issues?q=thrall").await;
        assert_eq!(body["total"], 1, "{body}");
        // Wildcards in the search are literal.
        let (_, body) = app.get("/api/audit/issues?q=%25").await;
        assert_eq!(body["total"], 0, "{body}");
        let (_, body) = app.get("/api/audit/issues?page=99").await;
        assert_eq!(
            (
                body["total"].as_i64(),
                body["issues"].as_array().map(Vec::len)
            ),
            (Some(3), Some(0))
        );
        let (_, body) = app.get("/api/audit/issues?state=resolved").await;
        assert_eq!(body["total"], 0);

        for (query, needle) in [
            ("state=closed", "state must be"),
            ("type=nonsense", "unknown issue type"),
            ("page=0", "page must be"),
            ("per_page=0", "per_page must be"),
            ("per_page=201", "per_page must be"),
            ("page=abc", "page"),
            ("per_page=-1", "per_page"),
            ("page=99999999999999999999", "page"),
        ] {
            let (status, body) = app.get(&format!("/api/audit/issues?{query}")).await;
            assert_error(status, &body, StatusCode::BAD_REQUEST, needle);
        }
        let long = "x".repeat(101);
        let (status, body) = app.get(&format!("/api/audit/issues?q={long}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "q is longer");
    })
    .await;
}

#[tokio::test]
async fn resolve_and_reopen_record_the_officer_and_refuse_bad_requests() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let id = issue(&app.pool, "orphan_wow", "Thrall has no player", None).await;

        let (status, body) = app
            .post(
                &format!("/api/audit/issues/{id}/resolve"),
                Some(json!({"note": "alt of an officer"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["resolved_by"], "admin token");
        assert_eq!(body["resolution_note"], "alt of an officer");
        let (status, body) = app
            .post(&format!("/api/audit/issues/{id}/resolve"), None)
            .await;
        assert_error(status, &body, StatusCode::CONFLICT, "already resolved");

        let (status, body) = app
            .post(&format!("/api/audit/issues/{id}/reopen"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["resolved_at"], Value::Null);
        let (status, body) = app
            .post(&format!("/api/audit/issues/{id}/reopen"), None)
            .await;
        assert_error(status, &body, StatusCode::CONFLICT, "already open");
        // Without a body, resolving works too.
        let (status, _) = app
            .post(&format!("/api/audit/issues/{id}/resolve"), None)
            .await;
        assert_eq!(status, StatusCode::OK);

        let (status, body) = app.post("/api/audit/issues/999999/resolve", None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "999999");
        let (status, body) = app.post("/api/audit/issues/999999/reopen", None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "999999");
        let (status, body) = app.post("/api/audit/issues/abc/resolve", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let other = issue(&app.pool, "orphan_wow", "Jaina has no player", None).await;
        let long = "n".repeat(2001);
        let path = format!("/api/audit/issues/{other}/resolve");
        let (status, body) = app.post(&path, Some(json!({"note": long}))).await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "note is longer",
        );
        let (status, body) = app.post(&path, Some(json!({"reason": "x"}))).await;
        assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "reason");
        let (status, body) = send(
            app.request(Method::POST, &path)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed");

        let (status, body) = app.get("/api/audit/actions").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let actions: Vec<&str> = body["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["resolve_issue", "reopen_issue", "resolve_issue"]);
        assert_eq!(body["actions"][2]["note"], "alt of an officer");
        assert_eq!(body["actions"][2]["officer"], "admin token");
        let (status, body) = app.get("/api/audit/actions?per_page=500").await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "per_page");
        let (status, body) = app.get("/api/audit/actions?player_id=x").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    })
    .await;
}

/// The checker's rule with the real checker: a cause that persists stays resolved; one that
/// goes and comes back is flagged again.
async fn open_orphans(app: &OfficerApp) -> i64 {
    let (_, body) = app.get("/api/audit/issues?type=orphan_wow").await;
    body["total"].as_i64().unwrap()
}

#[tokio::test]
async fn a_resolved_issue_stays_resolved_while_its_cause_persists_and_returns_after_it_went() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let thrall = character(&app.pool, "Thrall").await;
        check(&app.pool, 30).await.unwrap();
        assert_eq!(open_orphans(&app).await, 1);
        let (_, body) = app.get("/api/audit/issues?type=orphan_wow").await;
        let id = body["issues"][0]["id"].as_i64().unwrap();
        let (status, _) = app
            .post(&format!("/api/audit/issues/{id}/resolve"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        check(&app.pool, 30).await.unwrap();
        assert_eq!(
            open_orphans(&app).await,
            0,
            "the cause persists: it stays resolved"
        );

        let player = guild_sync::testing::seed::player(&app.pool, "Thrall", None).await;
        guild_sync::testing::seed::link(&app.pool, player, thrall).await;
        check(&app.pool, 30).await.unwrap();
        sqlx::query("DELETE FROM guild_identity.player_characters WHERE character_id = $1")
            .bind(thrall)
            .execute(&app.pool)
            .await
            .unwrap();
        check(&app.pool, 30).await.unwrap();
        assert_eq!(open_orphans(&app).await, 1, "the cause went and came back");
    })
    .await;
}

#[tokio::test]
async fn accepting_a_suggestion_links_it_manually_naming_the_suggestion_and_the_officer() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        // thrall vs thrail scores 0.83: the real engine suggests, it does not link.
        let thrall = character(&app.pool, "Thrall").await;
        let thrail = discord_user(&app.pool, "thrail").await;
        run_matching(&app.pool).await.unwrap();

        let (status, body) = app.get("/api/identity/suggestions").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 1);
        let s = &body["suggestions"][0];
        assert_eq!(
            (s["character_id"].as_i64(), s["discord_user_id"].as_i64()),
            (Some(thrall.into()), Some(thrail.into()))
        );
        assert_eq!(s["character_name"], "Thrall");
        assert_eq!(s["discord_username"], "thrail");
        assert_eq!(s["discord_roles"], json!(["Member", "Raider"]));
        let score = s["score"].as_f64().unwrap();
        assert!((0.70..0.85).contains(&score), "{s}");
        let id = s["id"].as_i64().unwrap();

        let (status, body) = app
            .post(&format!("/api/identity/suggestions/{id}/accept"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let player = body["player_id"].as_i64().unwrap();
        assert_eq!(body["created_player"], true);
        let (status, body) = app
            .post(&format!("/api/identity/suggestions/{id}/accept"), None)
            .await;
        assert_error(status, &body, StatusCode::CONFLICT, "already resolved");
        let (_, body) = app.get("/api/identity/suggestions").await;
        assert_eq!(body["total"], 0);

        let (status, page) = app.get(&format!("/api/identity/players/{player}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let link = &page["characters"][0];
        assert_eq!(link["link_source"], "manual");
        assert_eq!(link["confidence"], "confirmed");
        assert_eq!(link["evidence"]["accepted_suggestion"], id);
        assert_eq!(link["evidence"]["accepted_by"], "admin token");
        assert_eq!(link["level"], 80);
        assert_eq!(page["discord_user"]["roles"], json!(["Member", "Raider"]));
        assert_eq!(page["actions"][0]["action"], "accept_suggestion");
        let (_, body) = app
            .get(&format!("/api/audit/actions?player_id={player}"))
            .await;
        assert_eq!(body["total"], 1);

        // The next run leaves the accepted link alone and suggests nothing.
        let stats = run_matching(&app.pool).await.unwrap();
        assert_eq!(stats.suggestions_new, 0);

        let (status, body) = app
            .post("/api/identity/suggestions/424242/accept", None)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "424242");
        let other = issue(&app.pool, "orphan_wow", "not a suggestion", None).await;
        let (status, body) = app
            .post(&format!("/api/identity/suggestions/{other}/accept"), None)
            .await;
        assert_error(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "not a link suggestion",
        );
        let (status, _) = app.post("/api/identity/suggestions/x/accept", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn a_dismissed_pair_is_never_suggested_again_until_reopened() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        character(&app.pool, "Thrall").await;
        discord_user(&app.pool, "thrail").await;
        run_matching(&app.pool).await.unwrap();
        let (_, body) = app.get("/api/identity/suggestions").await;
        let id = body["suggestions"][0]["id"].as_i64().unwrap();

        let path = format!("/api/identity/suggestions/{id}/dismiss");
        let (status, body) = app
            .post(&path, Some(json!({"note": "different people"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app.post(&path, None).await;
        assert_error(status, &body, StatusCode::CONFLICT, "already resolved");

        for _ in 0..2 {
            let stats = run_matching(&app.pool).await.unwrap();
            assert_eq!(stats.suggestions_new, 0);
            let (_, body) = app.get("/api/identity/suggestions").await;
            assert_eq!(body["total"], 0, "{body}");
        }
        let dismissed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM guild_identity.dismissed_suggestions")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(dismissed, 1);

        // An officer who changes their mind reopens it: the pair is reviewable again.
        let (status, body) = app
            .post(&format!("/api/audit/issues/{id}/reopen"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, body) = app.get("/api/identity/suggestions").await;
        assert_eq!(body["total"], 1);
        let (status, body) = app
            .post("/api/identity/suggestions/77777/dismiss", None)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "77777");
    })
    .await;
}

#[tokio::test]
async fn candidates_use_the_matchers_scores_unlinked_first() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let thrall = character(&app.pool, "Thrall").await;
        let linked = discord_user(&app.pool, "thrall").await;
        let thrail = discord_user(&app.pool, "thrail").await;
        let far = discord_user(&app.pool, "varian").await;
        guild_sync::testing::seed::player(&app.pool, "Other", Some(linked)).await;
        // Without a guild role the matcher never scores a member, so neither does the console.
        let roleless: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.discord_users (discord_id, username)
             VALUES ('9', 'thral') RETURNING id",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();

        let (status, body) = app
            .get(&format!("/api/identity/candidates?character_id={thrall}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["kind"], "discord_user");
        let list = body["candidates"].as_array().unwrap();
        assert_eq!(list[0]["id"], thrail, "unlinked first: {body}");
        assert_eq!(
            list[0]["score"].as_f64().unwrap(),
            guild_sync_core::fuzzy::fuzzy_match_score("Thrall", "thrail")
        );
        assert!(list[0]["reason"].as_str().unwrap().contains("thrail"));
        let linked_pos = list.iter().position(|c| c["id"] == linked).unwrap();
        assert_eq!(list[linked_pos]["linked"], true);
        assert_eq!(list[linked_pos]["score"], 1.0);
        assert!(list.iter().all(|c| c["id"] != roleless), "{body}");
        // Unlinked before linked, each group by falling score.
        let keys: Vec<(bool, f64)> = list
            .iter()
            .map(|c| {
                (
                    c["linked"].as_bool().unwrap(),
                    -c["score"].as_f64().unwrap(),
                )
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{body}");
        assert!(
            list.iter().any(|c| c["id"] == far),
            "a weak match still ranks: {body}"
        );
        assert!(list.len() <= 5);

        let (status, body) = app
            .get(&format!(
                "/api/identity/candidates?discord_user_id={thrail}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["kind"], "character");
        assert_eq!(body["candidates"][0]["id"], thrall);

        for query in ["", "character_id=1&discord_user_id=1", "character_id=abc"] {
            let (status, body) = app.get(&format!("/api/identity/candidates?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        }
        let (status, body) = app.get("/api/identity/candidates?character_id=99999").await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "99999");
        let (status, body) = app
            .get("/api/identity/candidates?discord_user_id=99999")
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "99999");
    })
    .await;
}

/// The candidate pools are cached on the data version (issue 16): a member who joins, a name
/// change and a new link each show on the very next request, never a stale pool.
#[tokio::test]
async fn cached_candidates_follow_every_change_to_members_and_links() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let thrall = character(&app.pool, "Thrall").await;
        let far = discord_user(&app.pool, "varian").await;
        let route = format!("/api/identity/candidates?character_id={thrall}");
        let ids = |body: &serde_json::Value| -> Vec<serde_json::Value> {
            body["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].clone())
                .collect()
        };
        let (status, body) = app.get(&route).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(ids(&body), vec![serde_json::json!(far)]);
        // Asked twice at one version: the same answer (served from the cache).
        assert_eq!(app.get(&route).await.1, body);

        let joined = discord_user(&app.pool, "thrall").await;
        let (_, body) = app.get(&route).await;
        assert_eq!(body["candidates"][0]["id"], joined, "a new member: {body}");
        assert_eq!(body["candidates"][0]["linked"], false);

        sqlx::query("UPDATE guild_identity.discord_users SET username = 'thrail' WHERE id = $1")
            .bind(far)
            .execute(&app.pool)
            .await
            .unwrap();
        let (_, body) = app.get(&route).await;
        let renamed = body["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == far)
            .unwrap();
        assert!(
            renamed["reason"].as_str().unwrap().contains("thrail"),
            "a renamed member: {body}"
        );

        guild_sync::testing::seed::player(&app.pool, "Other", Some(joined)).await;
        let (_, body) = app.get(&route).await;
        assert_eq!(body["candidates"][0]["id"], far, "unlinked first: {body}");
        let linked = body["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == joined)
            .unwrap();
        assert_eq!(linked["linked"], true, "a new link: {body}");
    })
    .await;
}

/// Players answers are cached on the data stamp (issue 16): every change shows on the next
/// request, and two databases at the same data version never share an answer.
#[tokio::test]
async fn cached_players_answers_follow_changes_and_never_cross_databases() {
    within_a_minute(async {
        let one = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let two = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let names = |body: &Value| -> Vec<String> {
            body["players"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["display_name"].as_str().unwrap().to_string())
                .collect()
        };
        // The same statements in both: the same data version, different players.
        let alpha = guild_sync::testing::seed::player(&one.pool, "Alpha", None).await;
        guild_sync::testing::seed::player(&two.pool, "Beta", None).await;
        let version = "SELECT version FROM guild_identity.data_version";
        let v1: i64 = sqlx::query_scalar(version)
            .fetch_one(&one.pool)
            .await
            .unwrap();
        let v2: i64 = sqlx::query_scalar(version)
            .fetch_one(&two.pool)
            .await
            .unwrap();
        assert_eq!(v1, v2, "the case the database identity in the stamp is for");
        for _ in 0..2 {
            assert_eq!(names(&one.get("/api/identity/players").await.1), ["Alpha"]);
            assert_eq!(names(&two.get("/api/identity/players").await.1), ["Beta"]);
        }

        sqlx::query("UPDATE guild_identity.players SET display_name = 'Aleph' WHERE id = $1")
            .bind(alpha)
            .execute(&one.pool)
            .await
            .unwrap();
        assert_eq!(names(&one.get("/api/identity/players").await.1), ["Aleph"]);
        guild_sync::testing::seed::player(&one.pool, "Gimel", None).await;
        let (_, body) = one.get("/api/identity/players?q=e").await;
        assert_eq!(names(&body), ["Aleph", "Gimel"]);
        assert_eq!(body["total"], 2);
        let (_, body) = one.get("/api/identity/players?per_page=1&page=2").await;
        assert_eq!(names(&body), ["Gimel"]);
    })
    .await;
}

#[tokio::test]
async fn players_are_paged_and_searchable_and_the_main_can_be_set() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let du = discord_user(&app.pool, "moonkin").await;
        let trog = guild_sync::testing::seed::player(&app.pool, "Trog", Some(du)).await;
        let solo = guild_sync::testing::seed::player(&app.pool, "Solo", None).await;
        let moon = character(&app.pool, "Trogmoon").await;
        let alt = character(&app.pool, "Trogalt").await;
        let stray = character(&app.pool, "Stray").await;
        guild_sync::testing::seed::link(&app.pool, trog, moon).await;
        guild_sync::testing::seed::link(&app.pool, trog, alt).await;

        let (status, body) = app.get("/api/identity/players?per_page=1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["total"].as_i64(), body["players"][0]["id"].as_i64()),
            (Some(2), Some(solo.into()))
        );
        let (_, body) = app.get("/api/identity/players?per_page=1&page=2").await;
        assert_eq!(body["players"][0]["id"], trog);
        for q in ["trogalt", "MOONKIN", "tro"] {
            let (_, body) = app.get(&format!("/api/identity/players?q={q}")).await;
            assert_eq!(body["total"], 1, "{q}: {body}");
            assert_eq!(body["players"][0]["id"], trog);
        }
        let (_, body) = app.get("/api/identity/players?q=_").await;
        assert_eq!(body["total"], 0, "{body}");
        for query in ["page=0", "per_page=1000", "page=x"] {
            let (status, body) = app.get(&format!("/api/identity/players?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        }

        let path = format!("/api/identity/players/{trog}/main");
        let (status, body) = app.put(&path, json!({"character_id": alt})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, page) = app.get(&format!("/api/identity/players/{trog}")).await;
        assert_eq!(page["main_character_id"], alt);
        assert_eq!(
            page["characters"][0]["character_id"], alt,
            "the main comes first"
        );
        assert_eq!(page["characters"][0]["is_main"], true);
        assert_eq!(page["actions"][0]["action"], "set_main");

        let (status, body) = app.put(&path, json!({"character_id": stray})).await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not linked",
        );
        let (status, body) = app.put(&path, json!({"character": stray})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = app
            .put(
                "/api/identity/players/5555/main",
                json!({"character_id": alt}),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "5555");
        let (status, body) = app.get("/api/identity/players/5555").await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "5555");
        let (status, _) = app.get("/api/identity/players/abc").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn list_routes_answer_an_etag_and_304_until_the_data_changes() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let thrall = character(&app.pool, "Thrall").await;
        let id = issue(
            &app.pool,
            "orphan_wow",
            "Thrall has no player",
            Some(thrall),
        )
        .await;
        let routes = [
            "/api/audit/issues".to_string(),
            "/api/audit/actions".to_string(),
            "/api/identity/suggestions".to_string(),
            "/api/identity/players".to_string(),
            format!("/api/identity/candidates?character_id={thrall}"),
        ];
        let mut tags = Vec::new();
        for route in &routes {
            let response = app.request(Method::GET, route).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{route}");
            let tag = response.headers()[ETAG].to_str().unwrap().to_string();
            let again = app
                .request(Method::GET, route)
                .header(IF_NONE_MATCH, &tag)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{route}");
            assert_eq!(again.headers()[ETAG].to_str().unwrap(), tag);
            assert!(again.bytes().await.unwrap().is_empty());
            tags.push(tag);
        }
        let (status, _) = app
            .post(&format!("/api/audit/issues/{id}/resolve"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        for (route, tag) in routes.iter().zip(&tags) {
            let response = app
                .request(Method::GET, route)
                .header(IF_NONE_MATCH, tag)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{route} after a change");
            assert_ne!(response.headers()[ETAG].to_str().unwrap(), tag);
        }
    })
    .await;
}

/// Every review route's paging bounds, bad parameters and unknown ids, swept in one table:
/// each answers the expected 4xx with a JSON error naming the problem, and nothing answers 500
/// (among them: numbers past `i32`/`i64`, negative and zero pages, a page far past the end).
#[tokio::test]
async fn every_review_route_refuses_bad_paging_parameters_and_unknown_ids_never_500() {
    within_a_minute(async {
        let app = OfficerApp::spawn(Some(OFFICER_TOKEN)).await;
        let thrall = character(&app.pool, "Thrall").await;
        let user = discord_user(&app.pool, "thrall").await;
        let (status, body) = app
            .post(
                "/api/identity/link",
                Some(json!({"wow_character_id": thrall, "discord_user_id": user})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let player = body["player_id"].as_i64().unwrap();

        let big = "99999999999999999999";
        let lists = [
            "/api/audit/issues",
            "/api/audit/actions",
            "/api/identity/players",
        ];
        for list in lists {
            // A page past the end is empty, not an error, down to the deepest row a page may
            // start at (MAX_OFFSET); deeper, the list asks for a narrower search.
            let last = MAX_OFFSET / 200 + 1;
            let (status, body) = app.get(&format!("{list}?page={last}&per_page=200")).await;
            assert_eq!(status, StatusCode::OK, "{list}: {body}");
            let (status, body) = app
                .get(&format!("{list}?page={}&per_page=200", last + 1))
                .await;
            assert_error(status, &body, StatusCode::BAD_REQUEST, "narrow the search");
            for (query, needle) in [
                ("page=0", "page"),
                ("page=-1", "page"),
                ("per_page=0", "per_page"),
                ("per_page=201", "per_page"),
                ("per_page=-5", "per_page"),
                ("page=abc", "page"),
                ("per_page=1.5", "per_page"),
            ] {
                let (status, body) = app.get(&format!("{list}?{query}")).await;
                assert_error(status, &body, StatusCode::BAD_REQUEST, needle);
            }
            let (status, body) = app.get(&format!("{list}?page={big}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{list}: {body}");
        }
        for (path, needle) in [
            ("/api/audit/issues?state=closed", "state"),
            ("/api/audit/actions?player_id=1.5", "player_id"),
            ("/api/identity/candidates", "exactly one"),
            (
                "/api/identity/candidates?character_id=1&discord_user_id=1",
                "exactly one",
            ),
            ("/api/identity/candidates?character_id=x", "character_id"),
            (
                "/api/identity/candidates?discord_user_id=99999999999",
                "discord_user_id",
            ),
        ] {
            let (status, body) = app.get(path).await;
            assert_error(status, &body, StatusCode::BAD_REQUEST, needle);
        }

        // Unknown ids: 404 naming the id, on every route that takes one.
        for path in [
            "/api/identity/players/999999".to_string(),
            "/api/identity/candidates?character_id=999999".into(),
            "/api/identity/candidates?discord_user_id=999999".into(),
        ] {
            let (status, body) = app.get(&path).await;
            assert_error(status, &body, StatusCode::NOT_FOUND, "999999");
        }
        for path in [
            "/api/audit/issues/999999/resolve",
            "/api/audit/issues/999999/reopen",
            "/api/identity/suggestions/999999/accept",
            "/api/identity/suggestions/999999/dismiss",
        ] {
            let (status, body) = app.post(path, None).await;
            assert_error(status, &body, StatusCode::NOT_FOUND, "999999");
        }
        let (status, body) = app
            .put(
                "/api/identity/players/999999/main",
                json!({"character_id": thrall}),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "999999");
        // A character that is not the player's: the body cannot be applied (422).
        let (status, body) = app
            .put(
                &format!("/api/identity/players/{player}/main"),
                json!({"character_id": 999999}),
            )
            .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not linked",
        );

        // Ids that are not numbers, or do not fit: 400, never 404 or 500.
        for path in [
            "/api/identity/players/abc",
            &format!("/api/identity/players/{big}"),
        ] {
            let (status, body) = app.get(path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        }
        for path in [
            "/api/identity/suggestions/abc/accept",
            &format!("/api/identity/suggestions/{big}/dismiss"),
            "/api/audit/issues/-/reopen",
        ] {
            let (status, body) = app.post(path, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        }
        // Bodies of the wrong shape: 422 naming the field.
        for body in [
            json!({}),
            json!({"character_id": "x"}),
            json!({"character_id": 1.5}),
        ] {
            let (status, answer) = app
                .put(
                    &format!("/api/identity/players/{player}/main"),
                    body.clone(),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        }
    })
    .await;
}
