//! `guild-sync serve` as a process: it starts with nothing but a database configured (every
//! unconfigured part disabled with a log line, not a failure), answers on its bound port, and
//! exits 0 on SIGTERM.

mod common;

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};

use common::on_a_fresh_db_within;

#[tokio::test]
async fn serve_runs_with_only_a_database_and_stops_cleanly_on_sigterm() {
    on_a_fresh_db_within(Duration::from_secs(120), |db| async move {
        let mut child = common::spawn_serve(&db, ("GUILD_SYNC_ADMIN_TOKEN", "t0ken"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        let address = loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("serve exited early:\n{}", log.join("\n")));
            log.push(line.clone());
            if line.contains("HTTP API listening") {
                let start = line.find("address=").expect("the address is logged") + 8;
                break line[start..].split_whitespace().next().unwrap().to_string();
            }
        };
        let log_text = log.join("\n");
        for disabled in [
            "Battle.net job disabled",
            "Discord job disabled",
            "Discord gateway listener disabled",
            "reports disabled",
        ] {
            assert!(
                log_text.contains(disabled),
                "no {disabled:?} line in:\n{log_text}"
            );
        }
        assert!(
            !log_text.contains("t0ken"),
            "a secret was logged:\n{log_text}"
        );

        let health = reqwest::get(format!("http://{address}/api/health"))
            .await
            .unwrap();
        assert_eq!(health.status(), reqwest::StatusCode::OK);

        kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let status = child.wait().await.unwrap();
        drain.await.unwrap();
        assert_eq!(status.code(), Some(0), "serve did not exit 0 after SIGTERM");
    })
    .await;
}
