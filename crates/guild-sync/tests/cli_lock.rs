//! Commands that write take the pipeline lock, as processes on a real PostgreSQL: two
//! `sync blizzard` at once apply one roster after the other (never a mix of both), a command
//! waits for a held lock with a message and `--no-wait` fails fast instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

mod common;

use common::{hold_pipeline_lock, on_a_fresh_db_within};
use guild_sync::testing::TestDb;
use sqlx::{Connection, PgPool};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Two debug `guild-sync` processes sharing two cores can take more than the ordinary minute.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

fn sample(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("demo")
        .join(relative)
}

fn guild_sync(db: &TestDb) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_guild-sync"));
    command
        .env("DATABASE_URL", db.url())
        .env("RUST_LOG", "guild_sync=info")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    command
}

/// The sample roster with every character renamed and given another Battle.net id: a roster
/// sharing no character with the sample's. Returns the directory and its `name-realm` set.
fn disjoint_roster(dir: &Path) -> Vec<String> {
    let mut roster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample("blizzard/roster.json")).unwrap()).unwrap();
    let mut names = Vec::new();
    for member in roster["members"].as_array_mut().unwrap() {
        let character = &mut member["character"];
        let name = format!("{}x", character["name"].as_str().unwrap());
        character["id"] = (character["id"].as_i64().unwrap() + 1_000_000_000).into();
        names.push(format!(
            "{name}-{}",
            character["realm"]["slug"].as_str().unwrap()
        ));
        character["name"] = name.into();
    }
    std::fs::write(
        dir.join("roster.json"),
        serde_json::to_vec(&roster).unwrap(),
    )
    .unwrap();
    names.sort();
    names.dedup();
    names
}

fn sample_names() -> Vec<String> {
    let roster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample("blizzard/roster.json")).unwrap()).unwrap();
    let mut names: Vec<String> = roster["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}-{}",
                m["character"]["name"].as_str().unwrap(),
                m["character"]["realm"]["slug"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn in_guild(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT character_name || '-' || realm_slug FROM guild_identity.wow_characters
         WHERE removed_at IS NULL",
    )
    .fetch_all(pool)
    .await
    .map(|mut names: Vec<String>| {
        // Sorted here, not by the database's collation, to compare with Rust-sorted lists.
        names.sort();
        names
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_battle_net_syncs_apply_one_roster_after_the_other() {
    on_a_fresh_db_within(TEST_TIMEOUT, |db| async move {
        let other = tempfile::tempdir().unwrap();
        let other_names = disjoint_roster(other.path());
        let sync = |dir: &Path| {
            let mut command = guild_sync(&db);
            command
                .args([
                    "sync",
                    "blizzard",
                    "--json",
                    "--allow-mass-removal",
                    "--from-dir",
                ])
                .arg(dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.output()
        };
        let sample_dir = sample("blizzard");
        let (a, b) = tokio::join!(sync(&sample_dir), sync(other.path()));
        for output in [a.unwrap(), b.unwrap()] {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }

        // The two runs did not overlap: the second started after the first had finished.
        let runs: Vec<(
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
            String,
        )> = sqlx::query_as(
            "SELECT started_at, completed_at, status FROM guild_identity.sync_log
                 WHERE source = 'blizzard' ORDER BY started_at",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert!(
            runs.iter().all(|(_, _, status)| status == "success"),
            "{runs:?}"
        );
        assert!(runs[0].1 <= runs[1].0, "the runs overlapped: {runs:?}");

        // The guild is exactly one of the two rosters (the later one), never a mix.
        let guild = in_guild(&db.pool).await;
        assert!(
            guild == sample_names() || guild == other_names,
            "{} characters in the guild match neither roster",
            guild.len()
        );
    })
    .await;
}

#[tokio::test]
async fn a_writing_command_waits_for_a_held_lock_and_no_wait_fails_fast() {
    on_a_fresh_db_within(TEST_TIMEOUT, |db| async move {
        let operator = hold_pipeline_lock(&db).await;

        // --no-wait: refused at once, naming the lock, nothing recorded.
        let refused = guild_sync(&db)
            .args(["match", "--no-wait"])
            .output()
            .await
            .unwrap();
        assert_eq!(refused.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("holds the pipeline lock"), "{stderr}");
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.sync_log")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(runs, 0);

        // Without it: the command says it is waiting, and waits.
        let mut waiting = guild_sync(&db)
            .args(["match"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(waiting.stderr.take().unwrap()).lines();
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the command ended without saying it waits");
            if line.contains("waiting for it") {
                break;
            }
        }
        assert!(waiting.try_wait().unwrap().is_none(), "it did not wait");
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.sync_log")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(runs, 0, "it started while the lock was held");

        // Released: the command runs and succeeds.
        operator.close().await.unwrap();
        let drain = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let status = waiting.wait().await.unwrap();
        drain.await.unwrap();
        assert!(status.success());
        let status: String =
            sqlx::query_scalar("SELECT status FROM guild_identity.sync_log WHERE source = 'match'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(status, "success");
    })
    .await;
}
