//! `companion setup` against a local server (wiremock) that answers the status route the way the
//! guild-sync server does (`401 {"error": "invalid X-API-Key"}` for a wrong key): a wrong key is
//! refused with the server's words and nothing is stored; a right key is stored user-only.

mod common;

use std::path::Path;

use guild_sync_companion::Secret;
use guild_sync_companion::settings;
use guild_sync_companion::setup::{SetupRequest, setup};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::within_a_minute;

const KEY: &str = "the-right-key-0123456789";

/// The server's status route: the right key gets the last upload, any other key a 401.
async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/guild-sync/addon-upload/status"))
        .and(header("X-API-Key", KEY))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"last_upload": {
            "run_id": 7, "received_at": "2026-11-30T20:00:00Z", "export_time": 1_764_532_800,
            "uploaded_by": "Trogmoon-Senjin", "addon_version": "1.2.0", "characters": 12,
            "matched": 12, "unknown": 0, "status": "success", "error": null}})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/guild-sync/addon-upload/status"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": "invalid X-API-Key"})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

fn request(api_url: &str, key: &str) -> SetupRequest {
    SetupRequest {
        api_url: api_url.to_owned(),
        api_key: Secret::new(key),
        saved_variables: None,
        allow_http: false,
    }
}

fn nothing_in(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

#[tokio::test]
async fn setup_refuses_a_wrong_key_with_the_servers_answer_and_stores_nothing() {
    within_a_minute(async {
        let server = server().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("guild-sync").join("companion.toml");

        let err = setup(&file, request(&server.uri(), "a-wrong-key"))
            .await
            .expect_err("refused");
        let message = format!("{err:#}");
        assert!(message.contains("HTTP 401"), "{message}");
        assert!(message.contains("invalid X-API-Key"), "{message}");
        assert!(message.contains("nothing was saved"), "{message}");
        assert!(!file.exists());
        assert!(
            nothing_in(&dir.path().join("guild-sync")),
            "no temporary file left"
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_key_does_not_replace_working_settings() {
    within_a_minute(async {
        let server = server().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("companion.toml");
        setup(&file, request(&server.uri(), KEY))
            .await
            .expect("accepted");
        let before = std::fs::read(&file).expect("stored");

        setup(&file, request(&server.uri(), "typo"))
            .await
            .expect_err("refused");
        assert_eq!(std::fs::read(&file).expect("still there"), before);
    })
    .await;
}

#[tokio::test]
async fn setup_stores_an_accepted_key_and_tells_what_the_server_has() {
    within_a_minute(async {
        let server = server().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("guild-sync").join("companion.toml");

        // Spaces and a trailing slash from a copy-paste are not part of either value.
        let outcome = setup(
            &file,
            request(&format!(" {}/ ", server.uri()), &format!("  {KEY}\n")),
        )
        .await
        .expect("accepted");
        assert_eq!(outcome.server_export_time, Some(1_764_532_800));
        let stored = settings::load(&file).expect("readable").expect("stored");
        assert_eq!(stored.api_url, server.uri());
        assert_eq!(stored.api_key.expose(), KEY);
        assert_eq!(stored.saved_variables, None);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by the user only");
        }
    })
    .await;
}

#[tokio::test]
async fn setup_names_a_server_it_cannot_reach_and_stores_nothing() {
    within_a_minute(async {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("companion.toml");
        let err = setup(&file, request(&format!("http://127.0.0.1:{port}"), KEY))
            .await
            .expect_err("unreachable");
        let message = format!("{err:#}");
        assert!(message.contains("could not check the key"), "{message}");
        assert!(message.contains(&port.to_string()), "{message}");
        assert!(!file.exists());
    })
    .await;
}

#[tokio::test]
async fn setup_refuses_a_saved_variables_path_that_is_not_a_file() {
    within_a_minute(async {
        let server = server().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("companion.toml");
        let mut req = request(&server.uri(), KEY);
        req.saved_variables = Some(dir.path().join("missing").join("PATTSync.lua"));
        let err = setup(&file, req).await.expect_err("no such file");
        assert!(format!("{err:#}").contains("PATTSync.lua"), "{err:#}");
        assert!(!file.exists());
    })
    .await;
}

#[test]
fn the_companion_binary_prints_the_stored_path_without_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("companion.toml");
    let sv = dir.path().join("PATTSync.lua");
    settings::save(
        &file,
        &settings::Settings {
            api_url: "https://guild.example.org".into(),
            api_key: Secret::new(KEY),
            saved_variables: Some(sv.clone()),
        },
    )
    .expect("saved");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guild-sync-companion"))
        .args(["--print-path", "--config"])
        .arg(&file)
        .env_remove("WOW_SAVED_VARIABLES_PATH")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        sv.display().to_string()
    );
}
