//! The addon upload endpoint on a real server (random port, real TCP, fresh database, the real
//! stages behind the scheduler): what it accepts, what it refuses and how, and the real
//! companion delivering an export to it end to end.

mod common;

use std::time::Duration;

use guild_sync::companion::{Companion, CompanionOptions, Delivery};
use guild_sync::config::{Config, Secret};
use guild_sync::testing::{TestDb, production_state};
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{SpawnedApp, spawn_app, within_a_minute};

const KEY: &str = "companion-key-0123456789";

struct App {
    base: String,
    client: reqwest::Client,
    db: TestDb,
}

/// The officers' bearer token of the spawned service.
const OFFICER_TOKEN: &str = "officer-token";

async fn spawn(api_key: Option<&str>) -> App {
    let db = TestDb::new().await;
    let config = Config {
        guild_sync_admin_token: Some(Secret::new(OFFICER_TOKEN.to_string())),
        guild_sync_api_key: api_key.map(Secret::new),
        ..Config::defaults()
    };
    let SpawnedApp { base, client } = spawn_app(production_state(db.pool.clone(), &config)).await;
    sqlx::query(
        "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, removed_at)
         VALUES ('Trogmoon', 'senjin', NULL), ('Trogmoon', 'bleeding-hollow', NULL)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    App { base, client, db }
}

fn body(note: &str, export_time: i64) -> Value {
    json!({
        "characters": [{"name": "Trogmoon", "realm": "Senjin", "class": "Shaman", "level": 80,
                        "rank": 3, "rank_name": "Member", "guild_note": note,
                        "officer_note": "raid team 2", "is_online": false,
                        "last_online": 1_700_000_000, "zone": "Dornogal"}],
        "addon_version": "1.2.0",
        "uploaded_by": "Officer-Senjin",
        "export_time": export_time,
    })
}

impl App {
    /// POST `payload` to the upload route with the companion's key.
    async fn upload(&self, payload: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/guild-sync/addon-upload", self.base))
            .header("X-API-Key", KEY)
            .json(payload)
            .send()
            .await
            .unwrap()
    }
}

/// Wait for the pipeline run `run_id` to leave `running`; returns its status.
async fn finished(app: &App, run_id: i64) -> String {
    loop {
        let status: String =
            sqlx::query_scalar("SELECT status FROM guild_identity.sync_log WHERE id = $1")
                .bind(run_id)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        if status != "running" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn note_on(app: &App, realm: &str) -> Option<String> {
    sqlx::query_scalar("SELECT addon_note FROM guild_identity.wow_characters WHERE realm_slug = $1")
        .bind(realm)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_accepted_upload_runs_the_addon_pipeline_and_shows_in_the_status() {
    within_a_minute(async {
        let app = spawn(Some(KEY)).await;
        let answer = app.upload(&body("Discord: trog", 1_764_000_000)).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let accepted: Value = answer.json().await.unwrap();
        assert_eq!(accepted["characters"], 1);
        assert_eq!(accepted["export_time"], 1_764_000_000);
        let run_id = accepted["run_id"].as_i64().unwrap();
        assert_eq!(finished(&app, run_id).await, "success");

        // Name and realm both decide the row: the other realm's Trogmoon keeps no note.
        assert_eq!(
            note_on(&app, "senjin").await.as_deref(),
            Some("Discord: trog")
        );
        assert_eq!(note_on(&app, "bleeding-hollow").await, None);

        let status: Value = app
            .client
            .get(format!("{}/api/guild-sync/addon-upload/status", app.base))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let last = &status["last_upload"];
        assert_eq!(last["export_time"], 1_764_000_000);
        assert_eq!(last["uploaded_by"], "Officer-Senjin");
        assert_eq!(last["matched"], 1);
        assert_eq!(last["status"], "success");
    })
    .await;
}

#[tokio::test]
async fn bad_keys_and_bad_bodies_are_refused_with_a_clear_error_and_change_nothing() {
    within_a_minute(async {
        let app = spawn(Some(KEY)).await;
        let url = format!("{}/api/guild-sync/addon-upload", app.base);
        let valid = serde_json::to_vec(&body("kept?", 1)).unwrap();
        let mut too_large = b"{\"characters\": [], \"pad\": \"".to_vec();
        too_large.resize(5 * 1024 * 1024, b'x');
        too_large.extend_from_slice(b"\"}");
        let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
            ("no key", None, valid.clone(), StatusCode::UNAUTHORIZED),
            ("wrong key", Some("guess"), valid.clone(), StatusCode::UNAUTHORIZED),
            ("malformed JSON", Some(KEY), b"{\"characters\": [".to_vec(), StatusCode::BAD_REQUEST),
            ("empty body", Some(KEY), Vec::new(), StatusCode::BAD_REQUEST),
            (
                "a wrong type",
                Some(KEY),
                serde_json::to_vec(&json!({"characters": [{"name": "Trogmoon", "realm": "Senjin", "level": "eighty"}]})).unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "no characters",
                Some(KEY),
                serde_json::to_vec(&json!({"characters": []})).unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            ("too large", Some(KEY), too_large, StatusCode::PAYLOAD_TOO_LARGE),
        ];
        for (case, key, payload, expected) in cases {
            let mut request = app
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(payload);
            if let Some(key) = key {
                request = request.header("X-API-Key", key);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), expected, "{case}");
            let error: Value = answer.json().await.unwrap();
            assert!(
                error["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{case}: {error}"
            );
        }
        assert_eq!(note_on(&app, "senjin").await, None, "nothing was applied");
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.sync_log")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        assert_eq!(runs, 0, "no run was started");
    })
    .await;
}

#[tokio::test]
async fn without_a_configured_key_the_upload_routes_answer_503() {
    within_a_minute(async {
        let app = spawn(None).await;
        let answer = app.upload(&body("x", 1)).await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let answer = app
            .client
            .get(format!("{}/api/guild-sync/addon-upload/status", app.base))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
}

/// Nothing but the database is configured here: no Battle.net, Discord bot or webhook.
#[tokio::test]
async fn triggers_for_parts_that_are_not_configured_are_refused_naming_the_settings() {
    within_a_minute(async {
        let app = spawn(Some(KEY)).await;
        for (route, names) in [
            (
                "blizzard",
                &[
                    "BLIZZARD_CLIENT_ID",
                    "BLIZZARD_CLIENT_SECRET",
                    "GUILD_REALM_SLUG",
                ][..],
            ),
            ("discord", &["DISCORD_BOT_TOKEN", "DISCORD_GUILD_ID"][..]),
            ("report", &["DISCORD_WEBHOOK_URL"][..]),
        ] {
            let answer = app
                .client
                .post(format!("{}/api/guild-sync/{route}/trigger", app.base))
                .bearer_auth(OFFICER_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{route}");
            let error = answer.json::<Value>().await.unwrap()["error"]
                .as_str()
                .unwrap()
                .to_string();
            for name in names {
                assert!(error.contains(name), "{route}: {error}");
            }
        }
        // Refused up front: no run was recorded, so none shows as failed in the status.
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.sync_log")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        assert_eq!(runs, 0);
        // The addon upload needs nothing else and is still accepted.
        let answer = app.upload(&body("x", 1)).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    })
    .await;
}

#[tokio::test]
async fn the_companion_delivers_a_saved_variables_export_to_the_real_server() {
    within_a_minute(async {
        let app = spawn(Some(KEY)).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("PATTSync.lua");
        std::fs::write(
            &file,
            "PATTSyncDB = {\n\t[\"lastExport\"] = {\n\t\t[\"exportTime\"] = 1764000500,\n\t\t[\"addonVersion\"] = \"1.2.0\",\n\t\t[\"characters\"] = {\n\t\t\t{\n\t\t\t\t[\"name\"] = \"Trogmoon\",\n\t\t\t\t[\"realm\"] = \"Senjin\",\n\t\t\t\t[\"note\"] = \"alt of Thrall\",\n\t\t\t}, -- [1]\n\t\t},\n\t},\n}\n",
        )
        .unwrap();
        let mut options = CompanionOptions::new(file.clone(), app.base.clone(), Secret::new(KEY));
        options.retry_initial = Duration::from_millis(20);
        options.retry_max = Duration::from_millis(100);
        let mut companion = Companion::start(options.clone()).await.unwrap();
        let delivery = companion.run_once().await.unwrap();
        let Delivery::Delivered(accepted) = delivery else {
            panic!("not delivered: {delivery:?}");
        };
        assert_eq!(finished(&app, accepted.run_id).await, "success");
        assert_eq!(note_on(&app, "senjin").await.as_deref(), Some("alt of Thrall"));

        // A restarted companion asks the server and does not upload the same export again.
        let mut restarted = Companion::start(options).await.unwrap();
        assert!(matches!(
            restarted.run_once().await.unwrap(),
            Delivery::NothingPending
        ));
    })
    .await;
}

/// The original companion's body, exactly as it posts it: no `export_time`, `last_online` as text.
const ORIGINAL_UPLOAD: &[u8] =
    include_bytes!("../../guild-sync-core/tests/data/original-companion-upload.json");

#[tokio::test]
async fn the_original_companions_upload_is_accepted_as_it_is() {
    within_a_minute(async {
        let app = spawn(Some(KEY)).await;
        sqlx::query(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug)
             VALUES ('Ragwyn', 'senjin'), ('Kazor', 'senjin')",
        )
        .execute(&app.db.pool)
        .await
        .unwrap();
        let answer = app
            .client
            .post(format!("{}/api/guild-sync/addon-upload", app.base))
            .header("X-API-Key", KEY)
            .header("content-type", "application/json")
            .body(ORIGINAL_UPLOAD)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let accepted: Value = answer.json().await.unwrap();
        assert_eq!(accepted["characters"], 24);
        let run_id = accepted["run_id"].as_i64().unwrap();
        assert_eq!(finished(&app, run_id).await, "success");
        let ragwyn: Option<String> = sqlx::query_scalar(
            "SELECT addon_note FROM guild_identity.wow_characters WHERE character_name = 'Ragwyn'",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        assert_eq!(ragwyn.as_deref(), Some("raider"));
    })
    .await;
}

/// Before, a NUL in one of 1,000 notes was answered 202, then the pipeline failed and none of
/// the notes applied while the companion believed it delivered. Now the text is cleaned where
/// the body is read, so what is acknowledged is what applies.
#[tokio::test]
async fn a_nul_in_one_of_a_thousand_notes_does_not_cost_the_others() {
    within_a_minute(async {
        let app = spawn(Some(KEY)).await;
        sqlx::query(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug)
             SELECT 'Char' || i, 'senjin' FROM generate_series(1, 1000) AS i",
        )
        .execute(&app.db.pool)
        .await
        .unwrap();
        let characters: Vec<Value> = (1..=1000)
            .map(|i| {
                let note = if i == 500 {
                    "Discord: tr\u{0}og".to_string()
                } else {
                    format!("note {i}")
                };
                json!({"name": format!("Char{i}"), "realm": "Senjin", "guild_note": note})
            })
            .collect();
        let answer = app
            .upload(&json!({"characters": characters, "export_time": 1_764_000_000}))
            .await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let run_id = answer.json::<Value>().await.unwrap()["run_id"]
            .as_i64()
            .unwrap();
        assert_eq!(finished(&app, run_id).await, "success");
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.wow_characters
             WHERE character_name LIKE 'Char%' AND addon_note IS NOT NULL",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        assert_eq!(applied, 1000);
        let cleaned: Option<String> = sqlx::query_scalar(
            "SELECT addon_note FROM guild_identity.wow_characters WHERE character_name = 'Char500'",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        assert_eq!(cleaned.as_deref(), Some("Discord: trog"));
    })
    .await;
}

#[tokio::test]
async fn an_export_older_than_the_last_applied_one_is_refused_with_409() {
    within_a_minute(async {
        let app = spawn(Some(KEY)).await;
        let newer = 1_764_000_000;
        let answer = app.upload(&body("newer", newer)).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let run_id = answer.json::<Value>().await.unwrap()["run_id"]
            .as_i64()
            .unwrap();
        assert_eq!(finished(&app, run_id).await, "success");

        let answer = app.upload(&body("older", newer - 70 * 86_400)).await;
        assert_eq!(answer.status(), StatusCode::CONFLICT);
        let error: Value = answer.json().await.unwrap();
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("before the last applied export")),
            "{error}"
        );
        assert_eq!(note_on(&app, "senjin").await.as_deref(), Some("newer"));

        // The same export again is not stale: a retried upload is harmless.
        let answer = app.upload(&body("newer", newer)).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    })
    .await;
}
