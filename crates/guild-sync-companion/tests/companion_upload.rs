//! The companion against a local server (wiremock) speaking the upload contract of
//! `guild_sync_companion::wire`: it uploads a new export with the key, skips one the server
//! already has, retries through a server that is down, keeps an undelivered export across a
//! restart, and follows WoW's delete-and-recreate write of the SavedVariables file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use guild_sync_companion::{Companion, CompanionOptions, CompanionState, Delivery, Secret};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::within_a_minute;

const KEY: &str = "companion-test-key";

/// A SavedVariables file as WoW writes it, holding one export.
fn saved_variables(export_time: i64, note: &str) -> String {
    format!(
        "\nPATTSyncDB = {{\n\t[\"lastExportTime\"] = {export_time},\n\t[\"lastExport\"] = {{\n\t\t[\"exportTime\"] = {export_time},\n\t\t[\"addonVersion\"] = \"1.0.0\",\n\t\t[\"exportedBy\"] = \"Trogmoon-Senjin\",\n\t\t[\"characters\"] = {{\n\t\t\t{{\n\t\t\t\t[\"name\"] = \"Trogmoon\",\n\t\t\t\t[\"realm\"] = \"Senjin\",\n\t\t\t\t[\"rank\"] = 1,\n\t\t\t\t[\"note\"] = \"{note}\",\n\t\t\t\t[\"isOnline\"] = true,\n\t\t\t}}, -- [1]\n\t\t\t{{\n\t\t\t\t[\"name\"] = \"Zoë\",\n\t\t\t\t[\"realm\"] = \"BleedingHollow\",\n\t\t\t}}, -- [2]\n\t\t}},\n\t}},\n}}\n"
    )
}

fn options(file: &Path, api_url: &str) -> CompanionOptions {
    let mut o = CompanionOptions::new(file.to_path_buf(), api_url, Secret::new(KEY));
    o.debounce = Duration::from_millis(50);
    o.poll_interval = Duration::from_secs(3600);
    o.retry_initial = Duration::from_millis(20);
    o.retry_max = Duration::from_millis(100);
    o.once_attempts = 5;
    o
}

async fn status_says(server: &MockServer, export_time: Option<i64>) {
    let last_upload = export_time.map(|t| {
        json!({"run_id": 1, "received_at": "2023-11-14T22:13:20Z", "export_time": t,
               "uploaded_by": "Trogmoon-Senjin", "addon_version": "1.0.0", "characters": 2,
               "matched": 2, "unknown": 0, "status": "success", "error": null})
    });
    Mock::given(method("GET"))
        .and(path("/api/guild-sync/addon-upload/status"))
        .and(header("X-API-Key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"last_upload": last_upload})))
        .mount(server)
        .await;
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(202)
        .set_body_json(json!({"run_id": 42, "export_time": null, "characters": 2}))
}

/// A server whose status says it has no export yet.
async fn server_without_exports() -> MockServer {
    let server = MockServer::start().await;
    status_says(&server, None).await;
    server
}

/// Accept exactly `n` uploads (checked by `server.verify()`).
async fn accept_uploads(server: &MockServer, n: u64) {
    upload()
        .respond_with(accepted())
        .expect(n)
        .mount(server)
        .await;
}

fn upload() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/api/guild-sync/addon-upload"))
        .and(header("X-API-Key", KEY))
}

async fn uploads(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect()
}

fn body_of(request: &Request) -> serde_json::Value {
    serde_json::from_slice(&request.body).expect("a JSON body")
}

fn export_time_of(request: &Request) -> Option<i64> {
    body_of(request)["export_time"].as_i64()
}

async fn wait_for_uploads(server: &MockServer, n: usize) -> Vec<Request> {
    loop {
        let seen = uploads(server).await;
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(file: &Path) -> CompanionState {
    let bytes = std::fs::read(guild_sync_companion::default_state_file(file)).expect("state file");
    serde_json::from_slice(&bytes).expect("state JSON")
}

fn sv_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("PATTSync.lua")
}

/// [`sv_file`] holding [`saved_variables`]`(export_time, note)`.
fn sv_file_holding(dir: &tempfile::TempDir, export_time: i64, note: &str) -> PathBuf {
    let file = sv_file(dir);
    std::fs::write(&file, saved_variables(export_time, note)).expect("write");
    file
}

/// A companion on `file` uploading to `server`, with the test [`options`].
async fn start(file: &Path, server: &MockServer) -> Companion {
    Companion::start(options(file, &server.uri()))
        .await
        .expect("start")
}

/// A companion watching its file in the background until [`Watching::stop`].
struct Watching {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Watching {
    fn start(companion: Companion) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(companion.watch(async {
            let _ = stopped.await;
        }));
        Watching { stop, task }
    }

    /// Stop the watcher and check that it ended cleanly.
    async fn stop(self) {
        self.stop.send(()).expect("the watcher is running");
        self.task
            .await
            .expect("joined")
            .expect("the watcher ends cleanly");
    }
}

#[tokio::test]
async fn a_new_export_is_uploaded_with_the_key_and_remembered() {
    within_a_minute(async {
        let server = server_without_exports().await;
        accept_uploads(&server, 1).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = sv_file_holding(&dir, 1_700_000_000, "Discord: trog");

        let mut companion = start(&file, &server).await;
        let delivery = companion.run_once().await.expect("delivered");
        assert!(
            matches!(delivery, Delivery::Delivered(ref a) if a.run_id == 42),
            "{delivery:?}"
        );

        let sent = uploads(&server).await;
        let body = body_of(&sent[0]);
        assert_eq!(body["export_time"], 1_700_000_000);
        assert_eq!(body["addon_version"], "1.0.0");
        assert_eq!(body["uploaded_by"], "Trogmoon-Senjin");
        assert_eq!(body["characters"][0]["name"], "Trogmoon");
        assert_eq!(body["characters"][0]["realm"], "Senjin");
        assert_eq!(body["characters"][0]["rank"], 1);
        assert_eq!(body["characters"][0]["guild_note"], "Discord: trog");
        assert_eq!(body["characters"][0]["is_online"], true);
        assert_eq!(body["characters"][1]["name"], "Zoë");
        // The body parses with the server's own parser.
        guild_sync_core::addon::AddonExport::from_upload_json(&sent[0].body).expect("valid upload");

        assert_eq!(
            state(&file),
            CompanionState {
                last_accepted_export_time: Some(1_700_000_000),
                pending: None
            }
        );

        // Restarted, with a server that forgot (status says nothing): the state file still
        // knows this export was delivered.
        let mut again = start(&file, &server).await;
        assert_eq!(
            again.run_once().await.expect("ok"),
            Delivery::NothingPending
        );
        server.verify().await;
    })
    .await;
}

#[tokio::test]
async fn an_export_the_server_already_has_is_not_uploaded() {
    within_a_minute(async {
        let server = MockServer::start().await;
        status_says(&server, Some(1_700_000_000)).await;
        accept_uploads(&server, 0).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = sv_file(&dir);
        for export_time in [1_700_000_000, 1_600_000_000] {
            std::fs::write(&file, saved_variables(export_time, "x")).expect("write");
            let mut companion = start(&file, &server).await;
            assert_eq!(
                companion.run_once().await.expect("ok"),
                Delivery::NothingPending
            );
        }
        server.verify().await;
    })
    .await;
}

#[tokio::test]
async fn uploads_retry_through_a_server_that_is_down_and_then_up() {
    within_a_minute(async {
        let server = server_without_exports().await;
        upload()
            .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": "restarting"})))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&server)
            .await;
        upload()
            .respond_with(accepted())
            .with_priority(2)
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = sv_file_holding(&dir, 1_700_000_000, "x");

        let mut companion = start(&file, &server).await;
        let delivery = companion
            .run_once()
            .await
            .expect("delivered on the third attempt");
        assert!(matches!(delivery, Delivery::Delivered(_)), "{delivery:?}");
        let sent = uploads(&server).await;
        assert_eq!(sent.len(), 3);
        assert!(
            sent.iter()
                .all(|r| export_time_of(r) == Some(1_700_000_000))
        );
        assert_eq!(state(&file).pending, None);
    })
    .await;
}

#[tokio::test]
async fn an_undelivered_export_survives_a_restart_and_the_file_being_deleted() {
    within_a_minute(async {
        // A port with nothing listening: the server is down (connection refused).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let url = format!("http://{address}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = sv_file_holding(&dir, 1_700_000_000, "kept");

        let mut opts = options(&file, &url);
        opts.once_attempts = 2;
        let mut companion = Companion::start(opts)
            .await
            .expect("starts although the server is down");
        let err = companion.run_once().await.expect_err("not delivered");
        assert!(err.to_string().contains("not delivered"), "{err}");
        assert_eq!(
            state(&file).pending.and_then(|p| p.export_time),
            Some(1_700_000_000),
            "the export is kept in the state file"
        );

        // WoW deletes the file; then the server comes back on the same address.
        std::fs::remove_file(&file).expect("remove");
        let server = MockServer::builder()
            .listener(std::net::TcpListener::bind(address).expect("rebind"))
            .start()
            .await;
        status_says(&server, None).await;
        accept_uploads(&server, 1).await;

        let mut restarted = Companion::start(options(&file, &url)).await.expect("start");
        let delivery = restarted.run_once().await.expect("delivered");
        assert!(matches!(delivery, Delivery::Delivered(_)), "{delivery:?}");
        let sent = uploads(&server).await;
        assert_eq!(export_time_of(&sent[0]), Some(1_700_000_000));
        let body = body_of(&sent[0]);
        assert_eq!(body["characters"][0]["guild_note"], "kept");
        assert_eq!(state(&file).pending, None);
        server.verify().await;
    })
    .await;
}

#[tokio::test]
async fn a_refused_upload_is_reported_and_kept_but_not_retried() {
    within_a_minute(async {
        let server = server_without_exports().await;
        upload()
            .respond_with(
                ResponseTemplate::new(422)
                    .set_body_json(json!({"error": "characters[0].level: bad"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = sv_file_holding(&dir, 1_700_000_000, "x");
        let mut companion = start(&file, &server).await;
        let err = companion.run_once().await.expect_err("refused");
        assert!(
            err.to_string().contains("characters[0].level: bad"),
            "{err}"
        );
        assert!(state(&file).pending.is_some(), "kept for after a restart");
        server.verify().await;
    })
    .await;
}

#[tokio::test]
async fn the_watcher_follows_a_delete_and_recreate_write_and_retries_while_the_server_is_down() {
    within_a_minute(async {
        let server = server_without_exports().await;
        // The first attempt of the second export finds the server down.
        upload()
            .respond_with(accepted())
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        upload()
            .respond_with(ResponseTemplate::new(502))
            .up_to_n_times(1)
            .with_priority(2)
            .mount(&server)
            .await;
        upload()
            .respond_with(accepted())
            .with_priority(3)
            .mount(&server)
            .await;

        let dir = tempfile::tempdir().expect("tempdir");
        let file = sv_file_holding(&dir, 1_700_000_000, "first");
        let companion = start(&file, &server).await;
        let watching = Watching::start(companion);

        let sent = wait_for_uploads(&server, 1).await;
        assert_eq!(export_time_of(&sent[0]), Some(1_700_000_000));

        // WoW on logout: the old file goes away (renamed to .bak), the new one is written in
        // pieces under another name and moved into place.
        std::fs::rename(&file, dir.path().join("PATTSync.lua.bak")).expect("rename to .bak");
        let partial = dir.path().join("PATTSync.lua.new");
        let contents = saved_variables(1_700_003_600, "second");
        let (head, tail) = contents.split_at(contents.len() / 2);
        std::fs::write(&partial, head).expect("write head");
        let mut all = std::fs::read(&partial).expect("read");
        all.extend_from_slice(tail.as_bytes());
        std::fs::write(&partial, all).expect("write tail");
        std::fs::rename(&partial, &file).expect("move into place");

        let sent = wait_for_uploads(&server, 3).await;
        assert_eq!(
            export_time_of(&sent[1]),
            Some(1_700_003_600),
            "tried, server down"
        );
        assert_eq!(
            export_time_of(&sent[2]),
            Some(1_700_003_600),
            "retried, delivered"
        );

        // Deleted and recreated in place, the plain way.
        std::fs::remove_file(&file).expect("remove");
        std::fs::write(&file, saved_variables(1_700_007_200, "third")).expect("recreate");
        let sent = wait_for_uploads(&server, 4).await;
        assert_eq!(export_time_of(&sent[3]), Some(1_700_007_200));

        watching.stop().await;
        assert_eq!(state(&file).last_accepted_export_time, Some(1_700_007_200));
        assert_eq!(
            uploads(&server).await.len(),
            4,
            "nothing was uploaded twice"
        );
    })
    .await;
}

#[tokio::test]
async fn polling_notices_a_new_export_when_no_file_event_settles() {
    within_a_minute(async {
        let server = server_without_exports().await;
        upload().respond_with(accepted()).mount(&server).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = sv_file(&dir);
        let mut opts = options(&file, &server.uri());
        // Events never settle within the test; only the poll can see the change.
        opts.debounce = Duration::from_secs(3600);
        opts.poll_interval = Duration::from_millis(50);
        let companion = Companion::start(opts).await.expect("start");
        let watching = Watching::start(companion);
        std::fs::write(&file, saved_variables(1_700_000_000, "polled")).expect("write");
        let sent = wait_for_uploads(&server, 1).await;
        assert_eq!(export_time_of(&sent[0]), Some(1_700_000_000));
        watching.stop().await;
    })
    .await;
}

#[test]
fn the_companion_command_names_what_is_missing() {
    let no_settings = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guild-sync-companion"))
        .args(["--once", "--saved-variables", "/nonexistent/PATTSync.lua"])
        .env_remove("GUILD_SYNC_API_URL")
        .env_remove("GUILD_SYNC_API_KEY")
        .env_remove("WOW_SAVED_VARIABLES_PATH")
        .env(
            "GUILD_SYNC_COMPANION_CONFIG",
            no_settings.path().join("companion.toml"),
        )
        .current_dir(std::env::temp_dir())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: the server is not set"), "{stderr}");
    assert!(stderr.contains("GUILD_SYNC_API_URL"), "{stderr}");
}
