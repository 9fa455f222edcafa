//! Issue 15, item 7, through the real route: a burst of big uploads while a pipeline holds the
//! lock. Before, every accepted upload waited with its export in memory and its own database
//! connection (8 clients for 10 s: 497 accepted, 23 → 245 MB). Now the per-key limit answers
//! the excess 429 before reading it, a newer accepted upload replaces the waiting one, and only
//! the newest is applied.
//!
//! Its own test binary, so the memory it measures is this test's alone (the tests of one file
//! share a process).

mod common;

use std::sync::Arc;
use std::time::Duration;

use guild_sync::config::{Config, Secret};
use guild_sync::scheduler::SUPERSEDED_MESSAGE;
use guild_sync::testing::production_state;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use sqlx::Connection;

use common::{SpawnedApp, hold_pipeline_lock, on_a_fresh_db, spawn_app};

const KEY: &str = "companion-key-0123456789";
const UPLOADS: usize = 50;
/// Characters per export: about 1.3 MB of JSON, a big guild's export.
const CHARACTERS: usize = 3_000;
/// The default `GUILD_SYNC_UPLOADS_PER_MINUTE`.
const PER_MINUTE: usize = 10;

/// This process's resident memory, `VmRSS` or `VmHWM` (the peak), in kB.
fn memory_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Upload `n` of the burst: a big export whose only known character carries `upload {n}`.
fn export(n: usize) -> Vec<u8> {
    let mut characters: Vec<Value> = (0..CHARACTERS)
        .map(|i| {
            json!({"name": format!("Member{i}"), "realm": "Senjin", "class": "Warrior",
                   "level": 80, "rank": 5, "rank_name": "Raider",
                   "guild_note": format!("{i:0>200}"), "officer_note": format!("{n:0>100}"),
                   "zone": "Dornogal"})
        })
        .collect();
    characters
        .push(json!({"name": "Trogmoon", "realm": "Senjin", "guild_note": format!("upload {n}")}));
    serde_json::to_vec(&json!({
        "characters": characters,
        "uploaded_by": "Officer-Senjin",
        "export_time": 1_764_000_000 + n as i64,
    }))
    .unwrap()
}

#[tokio::test]
async fn fifty_uploads_in_a_burst_apply_only_the_newest_and_memory_stays_flat() {
    on_a_fresh_db(|db| async move {
        let pool = db.pool.clone();
        let config = Config {
            guild_sync_api_key: Some(Secret::new(KEY)),
            ..Config::defaults()
        };
        assert_eq!(config.guild_sync_uploads_per_minute as usize, PER_MINUTE);
        let state = production_state(pool.clone(), &config);
        let scheduler = Arc::clone(&state.scheduler);
        let SpawnedApp { base, client } = spawn_app(state).await;
        guild_sync::testing::seed::character(&pool, "Trogmoon", "senjin").await;
        let bodies: Vec<Vec<u8>> = (0..UPLOADS).map(export).collect();
        assert!(bodies[0].len() > 1_000_000, "{} bytes", bodies[0].len());

        // Another pipeline is running: every accepted upload has to wait.
        let operator = hold_pipeline_lock(&db).await;

        // One warm-up request, so the server's buffers and pool exist before measuring.
        client
            .get(format!("{base}/api/guild-sync/addon-upload/status"))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        let rss_before = memory_kb("VmRSS");
        let peak_before = memory_kb("VmHWM");

        let mut accepted: Vec<(usize, i64, Option<i64>)> = Vec::new();
        let mut limited = 0;
        for (n, body) in bodies.iter().enumerate() {
            let answer = client
                .post(format!("{base}/api/guild-sync/addon-upload"))
                .header("X-API-Key", KEY)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            match answer.status() {
                StatusCode::ACCEPTED => {
                    let answer: Value = answer.json().await.unwrap();
                    accepted.push((
                        n,
                        answer["run_id"].as_i64().unwrap(),
                        answer["replaced_run_id"].as_i64(),
                    ));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    limited += 1;
                    let retry_after: u64 = answer.headers()[RETRY_AFTER]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    // One upload refills every 60/10 = 6 s.
                    assert!((1..=6).contains(&retry_after), "upload {n}: {retry_after}");
                    let error: Value = answer.json().await.unwrap();
                    let error = error["error"].as_str().unwrap();
                    assert!(error.contains("too many uploads"), "{error}");
                }
                other => panic!("upload {n}: {other}"),
            }
        }
        let rss_after = memory_kb("VmRSS");
        let peak_after = memory_kb("VmHWM");
        eprintln!(
            "burst of {UPLOADS} uploads of {} bytes: VmRSS {rss_before} → {rss_after} kB, \
             VmHWM {peak_before} → {peak_after} kB",
            bodies[0].len()
        );

        // The key's burst is accepted, the rest refused before being read.
        assert_eq!(accepted.len(), PER_MINUTE, "{accepted:?}");
        assert_eq!(limited, UPLOADS - PER_MINUTE);
        let accepted_uploads: Vec<usize> = accepted.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(accepted_uploads, (0..PER_MINUTE).collect::<Vec<_>>());
        // Each accepted upload replaced the one waiting before it.
        for pair in accepted.windows(2) {
            assert_eq!(pair[1].2, Some(pair[0].1), "{pair:?}");
        }
        assert_eq!(accepted[0].2, None);

        // Memory stays flat: at most one export waits. Fifty parsed exports of this size held
        // at once (what the server did before, each also with its own connection) measured
        // +96 MB of VmRSS here; this burst grows the peak by about 9 MB.
        let grown_mb = peak_after.saturating_sub(peak_before) / 1024;
        assert!(
            grown_mb < 40,
            "the peak grew by {grown_mb} MB ({peak_before} → {peak_after} kB)"
        );

        // The running pipeline ends: the newest accepted upload runs, the others never do.
        operator.close().await.unwrap();
        let (newest_n, newest_run, _) = *accepted.last().unwrap();
        loop {
            let status: String =
                sqlx::query_scalar("SELECT status FROM guild_identity.sync_log WHERE id = $1")
                    .bind(newest_run)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            if status != "running" {
                assert_eq!(status, "success");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (n, run_id, _) in &accepted[..accepted.len() - 1] {
            let (status, error): (String, Option<String>) = sqlx::query_as(
                "SELECT status, error_message FROM guild_identity.sync_log WHERE id = $1",
            )
            .bind(run_id)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(
                (status.as_str(), error.as_deref()),
                ("skipped", Some(SUPERSEDED_MESSAGE)),
                "upload {n}"
            );
        }
        let note: Option<String> = sqlx::query_scalar(
            "SELECT addon_note FROM guild_identity.wow_characters WHERE character_name = 'Trogmoon'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(note, Some(format!("upload {newest_n}")));
        let addon_runs: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.sync_log WHERE source = 'addon'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(addon_runs, 1, "one export applied");
        scheduler.shutdown().await;
    })
    .await;
}
