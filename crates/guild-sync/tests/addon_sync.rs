//! The addon sync against a real PostgreSQL: notes, class, rank and level written to the right
//! `wow_characters` rows (name **and** realm), unknown characters counted and never created,
//! one recorded `sync_log` run per sync; and `guild-sync sync addon FILE` end to end.

mod common;

use chrono::{DateTime, Utc};
use guild_sync::addon_processor::parse_upload_json;
use guild_sync::db_sync::addon::{AddonSyncStats, last_upload, sync_addon_data};
use guild_sync::testing::TestDb;
use guild_sync_core::addon::AddonExport;
use serde_json::json;
use sqlx::PgPool;

use common::on_a_fresh_db;

async fn insert_character(pool: &PgPool, name: &str, realm_slug: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters (character_name, realm_slug, level)
         VALUES ($1, $2, 70) RETURNING id",
    )
    .bind(name)
    .bind(realm_slug)
    .fetch_one(pool)
    .await
    .expect("insert character")
}

/// Put Trogmoon-Senjin on the roster; that character's id.
async fn trogmoon(pool: &PgPool) -> i32 {
    insert_character(pool, "Trogmoon", "senjin").await
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Row {
    addon_note: Option<String>,
    addon_officer_note: Option<String>,
    synced: bool,
    class_name: Option<String>,
    rank_name: Option<String>,
    level: Option<i32>,
}

async fn row(pool: &PgPool, id: i32) -> Row {
    sqlx::query_as(
        "SELECT wc.addon_note, wc.addon_officer_note, wc.addon_last_sync IS NOT NULL AS synced,
                c.name AS class_name, gr.name AS rank_name, wc.level
         FROM guild_identity.wow_characters_synced wc
         LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
         LEFT JOIN common.guild_ranks gr ON gr.id = wc.guild_rank_id
         WHERE wc.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("row")
}

async fn addon_note(pool: &PgPool, id: i32) -> Option<String> {
    row(pool, id).await.addon_note
}

fn export(characters: serde_json::Value) -> AddonExport {
    parse_upload_json(
        json!({"characters": characters, "addon_version": "1.0.0", "uploaded_by": "Trog-Senjin",
               "export_time": 1_700_000_000})
        .to_string()
        .as_bytes(),
    )
    .expect("a valid export")
}

#[tokio::test]
async fn test_addon_sync_writes_notes() {
    on_a_fresh_db(|db| async move {
        let trog = insert_character(&db.pool, "Trogmoon", "senjin").await;
        let zoe = insert_character(&db.pool, "Zoë", "bleeding-hollow").await;
        let stats = sync_addon_data(
            &db.pool,
            &export(json!([
                {"name": "Trogmoon", "realm": "Senjin", "class": "Druid", "level": 80, "rank": 0,
                 "guild_note": "Discord: trog", "officer_note": "main", "is_online": true},
                {"name": "zoë", "realm": "BleedingHollow", "class": "Death Knight", "rank": 3,
                 "guild_note": "alt of Trogmoon", "officer_note": "", "is_online": false},
            ])),
        )
        .await
        .expect("sync");

        assert_eq!(
            row(&db.pool, trog).await,
            Row {
                addon_note: Some("Discord: trog".into()),
                addon_officer_note: Some("main".into()),
                synced: true,
                class_name: Some("Druid".into()),
                rank_name: Some("Guild Leader".into()),
                level: Some(80),
            }
        );
        assert_eq!(
            row(&db.pool, zoe).await,
            Row {
                addon_note: Some("alt of Trogmoon".into()),
                addon_officer_note: None,
                synced: true,
                class_name: Some("Death Knight".into()),
                rank_name: Some("Member".into()),
                level: Some(70),
            },
            "no level in the export keeps the stored one"
        );
        assert_eq!(
            (stats.received, stats.matched, stats.updated, stats.unknown),
            (2, 2, 2, 0)
        );

        let run: (String, String, Option<i32>, Option<i32>, serde_json::Value) = sqlx::query_as(
            "SELECT source, status, characters_found, characters_updated, details
             FROM guild_identity.sync_log WHERE id = $1",
        )
        .bind(stats.run_id)
        .fetch_one(&db.pool)
        .await
        .expect("the run is recorded");
        assert_eq!((run.0.as_str(), run.1.as_str()), ("addon", "success"));
        assert_eq!((run.2, run.3), (Some(2), Some(2)));
        let recorded: AddonSyncStats = serde_json::from_value(run.4).expect("stats in details");
        assert_eq!(recorded, stats);
    })
    .await;
}

#[tokio::test]
async fn the_same_name_on_two_realms_updates_the_right_row() {
    on_a_fresh_db(|db| async move {
        let senjin = insert_character(&db.pool, "Trogmoon", "senjin").await;
        let hollow = insert_character(&db.pool, "Trogmoon", "bleeding-hollow").await;
        let stats = sync_addon_data(
            &db.pool,
            &export(json!([
                {"name": "Trogmoon", "realm": "BleedingHollow", "guild_note": "the hollow one"},
            ])),
        )
        .await
        .expect("sync");
        assert_eq!(stats.matched, 1);
        assert_eq!(
            addon_note(&db.pool, hollow).await.as_deref(),
            Some("the hollow one")
        );
        let other = row(&db.pool, senjin).await;
        assert_eq!((other.addon_note, other.synced), (None, false));
    })
    .await;
}

#[tokio::test]
async fn unknown_characters_are_counted_and_listed_not_created() {
    on_a_fresh_db(|db| async move {
        trogmoon(&db.pool).await;
        let stats = sync_addon_data(
            &db.pool,
            &export(json!([
                {"name": "Trogmoon", "realm": "Senjin", "guild_note": "x"},
                {"name": "Trogmoon", "realm": "Area52", "guild_note": "same name, other realm"},
                {"name": "Newbie", "realm": "Senjin"},
            ])),
        )
        .await
        .expect("sync");
        assert_eq!((stats.matched, stats.unknown), (1, 2));
        assert_eq!(
            stats.unknown_characters,
            vec!["Newbie-Senjin", "Trogmoon-Area52"]
        );
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.wow_characters")
            .fetch_one(&db.pool)
            .await
            .expect("count");
        assert_eq!(rows, 1);
    })
    .await;
}

#[tokio::test]
async fn unknown_classes_and_unmapped_ranks_leave_the_stored_values() {
    on_a_fresh_db(|db| async move {
        let id = trogmoon(&db.pool).await;
        sync_addon_data(
            &db.pool,
            &export(json!([{"name": "Trogmoon", "realm": "Senjin", "class": "Druid", "rank": 1}])),
        )
        .await
        .expect("first sync");
        let stats = sync_addon_data(
            &db.pool,
            &export(json!([{"name": "Trogmoon", "realm": "Senjin", "class": "Bard", "rank": 8}])),
        )
        .await
        .expect("second sync");
        assert_eq!(stats.unknown_class, vec!["Trogmoon-Senjin (Bard)"]);
        assert_eq!(stats.unknown_rank, vec!["Trogmoon-Senjin (rank 8)"]);
        let r = row(&db.pool, id).await;
        assert_eq!(
            (r.class_name.as_deref(), r.rank_name.as_deref()),
            (Some("Druid"), Some("Officer"))
        );
    })
    .await;
}

#[tokio::test]
async fn an_empty_note_clears_and_an_absent_officer_note_is_kept() {
    on_a_fresh_db(|db| async move {
        let id = trogmoon(&db.pool).await;
        sync_addon_data(
            &db.pool,
            &export(
                json!([{"name": "Trogmoon", "realm": "Senjin", "guild_note": "old",
                            "officer_note": "secret"}]),
            ),
        )
        .await
        .expect("first sync");
        // A non-officer's export: the note was emptied in game, officer notes are unknown.
        let stats = sync_addon_data(
            &db.pool,
            &export(json!([{"name": "Trogmoon", "realm": "Senjin", "guild_note": ""}])),
        )
        .await
        .expect("second sync");
        assert_eq!(stats.updated, 1);
        let r = row(&db.pool, id).await;
        assert_eq!(r.addon_note, None);
        assert_eq!(r.addon_officer_note.as_deref(), Some("secret"));
    })
    .await;
}

#[tokio::test]
async fn syncing_the_same_export_twice_changes_nothing_the_second_time() {
    on_a_fresh_db(|db| async move {
        trogmoon(&db.pool).await;
        insert_character(&db.pool, "Zoë", "bleeding-hollow").await;
        let e = export(json!([
            {"name": "Trogmoon", "realm": "Senjin", "guild_note": "a", "class": "Druid", "level": 80},
            {"name": "Zoë", "realm": "BleedingHollow", "officer_note": "b", "rank": 2},
        ]));
        let first = sync_addon_data(&db.pool, &e).await.expect("first");
        let second = sync_addon_data(&db.pool, &e).await.expect("second");
        assert_eq!((first.matched, first.updated), (2, 2));
        assert_eq!((second.matched, second.updated), (2, 0));
        assert_ne!(first.run_id, second.run_id);
    })
    .await;
}

/// `addon_last_sync` as stored and as derived (`wow_characters_synced`, migration 1481).
async fn last_sync(pool: &PgPool, id: i32) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    sqlx::query_as(
        "SELECT wc.addon_last_sync, s.addon_last_sync
         FROM guild_identity.wow_characters wc
         JOIN guild_identity.wow_characters_synced s ON s.id = wc.id WHERE wc.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("last sync")
}

/// Issue 21: unchanged rows are not rewritten, and the derived `addon_last_sync` is still "the
/// last applied export that named the row" — for a row unchanged, changed, dropped from the
/// export, named again, and never named.
#[tokio::test]
async fn the_derived_addon_last_sync_keeps_its_meaning_without_rewriting_unchanged_rows() {
    on_a_fresh_db(|db| async move {
        let a = insert_character(&db.pool, "Aa", "senjin").await;
        let b = insert_character(&db.pool, "Bb", "senjin").await;
        let c = insert_character(&db.pool, "Cc", "senjin").await;
        let never = insert_character(&db.pool, "Dd", "senjin").await;
        let first = sync_addon_data(
            &db.pool,
            &export(json!([
                {"name": "Aa", "realm": "Senjin", "guild_note": "a"},
                {"name": "Bb", "realm": "Senjin", "guild_note": "b"},
                {"name": "Cc", "realm": "Senjin", "guild_note": "c"},
            ])),
        )
        .await
        .expect("first");
        assert_eq!((first.matched, first.updated), (3, 3));
        let (stored, t1) = last_sync(&db.pool, a).await;
        assert!(t1.is_some() && stored == t1, "written by its first sync");

        // A unchanged, B changed, C left out.
        let second = sync_addon_data(
            &db.pool,
            &export(json!([
                {"name": "Aa", "realm": "Senjin", "guild_note": "a"},
                {"name": "Bb", "realm": "Senjin", "guild_note": "b2"},
            ])),
        )
        .await
        .expect("second");
        assert_eq!((second.matched, second.updated), (2, 1));
        let (b_stored, t2) = last_sync(&db.pool, b).await;
        assert!(
            t2 > t1 && b_stored == t2,
            "changed: written with the second sync's time"
        );
        assert_eq!(
            last_sync(&db.pool, a).await,
            (t1, t2),
            "unchanged: not rewritten, yet confirmed by the second sync"
        );
        assert_eq!(
            last_sync(&db.pool, c).await.1,
            t1,
            "left out: the sync that last named it"
        );
        assert_eq!(
            last_sync(&db.pool, never).await,
            (None, None),
            "never named"
        );

        // C named again (unchanged), A left out.
        sync_addon_data(
            &db.pool,
            &export(json!([
                {"name": "Bb", "realm": "Senjin", "guild_note": "b2"},
                {"name": "Cc", "realm": "Senjin", "guild_note": "c"},
            ])),
        )
        .await
        .expect("third");
        let (_, t3) = last_sync(&db.pool, b).await;
        assert!(t3 > t2);
        assert_eq!(
            last_sync(&db.pool, c).await.1,
            t3,
            "named again: the third sync"
        );
        assert_eq!(
            last_sync(&db.pool, a).await,
            (t2, t2),
            "left out after an unchanged confirmation: that confirmation is fixed into the row"
        );
    })
    .await;
}

#[tokio::test]
async fn the_upload_status_reports_the_last_addon_run() {
    on_a_fresh_db(|db| async move {
        assert_eq!(last_upload(&db.pool).await.expect("status"), None);
        insert_character(&db.pool, "Trogmoon", "senjin").await;
        let stats = sync_addon_data(
            &db.pool,
            &export(json!([{"name": "Trogmoon", "realm": "Senjin"}, {"name": "X", "realm": "Y"}])),
        )
        .await
        .expect("sync");
        let last = last_upload(&db.pool).await.expect("status").expect("a run");
        assert_eq!(last.run_id, stats.run_id);
        assert_eq!(last.export_time, Some(1_700_000_000));
        assert_eq!(last.uploaded_by.as_deref(), Some("Trog-Senjin"));
        assert_eq!(last.addon_version.as_deref(), Some("1.0.0"));
        assert_eq!(
            (last.characters, last.matched, last.unknown),
            (2, Some(1), Some(1))
        );
        assert_eq!(last.status.as_str(), "success");
        assert_eq!(last.error, None);
    })
    .await;
}

#[tokio::test]
async fn the_upload_status_fails_loudly_when_a_finished_run_has_no_readable_stats() {
    on_a_fresh_db(|db| async move {
        trogmoon(&db.pool).await;
        let stats = sync_addon_data(
            &db.pool,
            &export(json!([{"name": "Trogmoon", "realm": "Senjin"}])),
        )
        .await
        .expect("sync");
        // What a renamed stats field does to the stored details: a field the reader expects is
        // missing.
        sqlx::query(
            "UPDATE guild_identity.sync_log
             SET details = (details - 'matched') || '{\"matched_rows\": 1}'
             WHERE id = $1",
        )
        .bind(stats.run_id)
        .execute(&db.pool)
        .await
        .expect("rename the field");
        let err = last_upload(&db.pool).await.expect_err("unreadable stats");
        let message = format!("{err:#}");
        assert!(
            message.contains(&format!("addon run {}", stats.run_id)) && message.contains("matched"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_addon_run_reports_its_error_without_stats() {
    on_a_fresh_db(|db| async move {
        let id = guild_sync::db::sync_log::open(&db.pool, "addon")
            .await
            .expect("open");
        let running = last_upload(&db.pool).await.expect("status").expect("a run");
        assert_eq!(
            (running.status.as_str(), running.matched),
            ("running", None)
        );
        guild_sync::db::sync_log::close(
            &db.pool,
            id,
            guild_sync::db::sync_log::RunStatus::Error,
            Default::default(),
            &json!({}),
            Some("the export was refused"),
            0.1,
            Default::default(),
        )
        .await
        .expect("close");
        let failed = last_upload(&db.pool).await.expect("status").expect("a run");
        assert_eq!(failed.status.as_str(), "error");
        assert_eq!(failed.matched, None);
        assert_eq!(failed.error.as_deref(), Some("the export was refused"));
    })
    .await;
}

/// Run the binary with `args` on `db`. Not blocking: the test's timeout stays able to fire, and
/// a binary still running then is killed with the test.
async fn guild_sync(db: &TestDb, args: &[&str]) -> std::process::Output {
    let data_dir = tempfile::tempdir().expect("tempdir");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("GUILD_SYNC_DATA_DIR", data_dir.path())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("the binary runs")
}

#[tokio::test]
async fn the_sync_addon_command_applies_a_lua_export_and_prints_json_stats() {
    on_a_fresh_db(|db| async move {
        let id = trogmoon(&db.pool).await;
        let out = sync_addon_file(
            &db,
            "PATTSync.lua",
            "PATTSyncDB = {\n\t[\"lastExport\"] = {\n\t\t[\"exportTime\"] = 1700000000,\n\t\t[\"characters\"] = {\n\t\t\t{\n\t\t\t\t[\"name\"] = \"Trogmoon\",\n\t\t\t\t[\"realm\"] = \"Senjin\",\n\t\t\t\t[\"note\"] = \"from lua\",\n\t\t\t}, -- [1]\n\t\t\t{\n\t\t\t\t[\"name\"] = \"Ghost\",\n\t\t\t\t[\"realm\"] = \"Senjin\",\n\t\t\t}, -- [2]\n\t\t},\n\t},\n}\n",
            &["--json"],
        ).await;
        let stdout = succeeded(&out);
        assert!(stdout.contains("unknown (not in the roster): Ghost-Senjin"), "{stdout}");
        let stats = json_stats(&stdout);
        assert_eq!((stats.received, stats.matched, stats.unknown), (2, 1, 1));
        assert_eq!(addon_note(&db.pool, id).await.as_deref(), Some("from lua"));
    })
    .await;
}

#[tokio::test]
async fn the_sync_addon_command_refuses_a_broken_file_with_one_line_naming_it() {
    on_a_fresh_db(|db| async move {
        let out = sync_addon_file(
            &db,
            "broken.lua",
            "PATTSyncDB = {\n  lastExport = { exportTime = 1,\n",
            &[],
        )
        .await;
        let (error, stderr) = the_one_error_line(&out);
        assert!(error.contains("broken.lua"), "{stderr}");
        assert!(error.contains("line 2"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM guild_identity.sync_log")
            .fetch_one(&db.pool)
            .await
            .expect("count");
        assert_eq!(runs, 0, "a file that cannot be read starts no run");
    })
    .await;
}

/// The original PATTSync addon's SavedVariables file, exactly as guilds' addon writes it.
const ORIGINAL_EXPORT: &str =
    include_str!("../../guild-sync-core/tests/data/original-addon-export.lua");

const DAY: i64 = 86_400;

fn write_export(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, contents).expect("write");
    file.to_str().expect("utf-8").to_owned()
}

/// `guild-sync sync addon FILE ARGS...` on `contents` written as `name` in a fresh directory.
async fn sync_addon_file(
    db: &TestDb,
    name: &str,
    contents: &str,
    args: &[&str],
) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_export(dir.path(), name, contents);
    let mut all = vec!["sync", "addon", file.as_str()];
    all.extend_from_slice(args);
    guild_sync(db, &all).await
}

/// The stdout of a `guild-sync` run that must have succeeded (the failure shows both streams).
fn succeeded(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The stats `--json` prints as the last line of stdout.
fn json_stats(stdout: &str) -> AddonSyncStats {
    serde_json::from_str(stdout.lines().last().expect("a last line")).expect("json")
}

/// The one `error:` line of a run that must have exited with code 1 (and its whole stderr).
fn the_one_error_line(out: &std::process::Output) -> (String, String) {
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    let line = error_lines[0].to_owned();
    (line, stderr)
}

/// A one-character SavedVariables export of Trogmoon-Senjin.
fn lua_export(export_time: i64, note: &str, rank: i32) -> String {
    format!(
        "PATTSyncDB = {{ lastExport = {{ exportTime = {export_time}, characters = {{\n\
         {{ name = \"Trogmoon\", realm = \"Senjin\", rank = {rank}, note = \"{note}\", lastOnline = \"3d 5h\" }},\n\
         }} }} }}\n"
    )
}

#[tokio::test]
async fn the_sync_addon_command_applies_the_original_addons_export_as_it_is() {
    on_a_fresh_db(|db| async move {
        let ragwyn = insert_character(&db.pool, "Ragwyn", "senjin").await;
        let kazor = insert_character(&db.pool, "Kazor", "senjin").await;
        let out = sync_addon_file(&db, "PATTSync.lua", ORIGINAL_EXPORT, &["--json"]).await;
        let stdout = succeeded(&out);
        let stats = json_stats(&stdout);
        assert_eq!((stats.received, stats.matched), (24, 2));
        assert_eq!(stats.export_time, Some(1_796_083_200));
        assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
        assert_eq!(
            addon_note(&db.pool, ragwyn).await.as_deref(),
            Some("raider")
        );
        let kazor_row = row(&db.pool, kazor).await;
        assert_eq!(kazor_row.addon_note.as_deref(), Some("Ragwyn's alt"));
        assert_eq!(kazor_row.level, Some(31));
    })
    .await;
}

#[tokio::test]
async fn a_malformed_optional_field_is_a_warning_naming_the_character_not_a_refusal() {
    on_a_fresh_db(|db| async move {
        let id = trogmoon(&db.pool).await;
        let out = sync_addon_file(
            &db,
            "PATTSync.lua",
            "PATTSyncDB = { lastExport = { exportTime = 1700000000, characters = {\n\
             { name = \"Trogmoon\", realm = \"Senjin\", note = \"kept\", lastOnline = \"a while\", zone = {} },\n\
             } } }\n",
            &[],
        ).await;
        let stdout = succeeded(&out);
        assert!(stdout.contains("warning: Trogmoon-Senjin:"), "{stdout}");
        assert!(stdout.contains("`a while`"), "{stdout}");
        assert!(stdout.contains("zone"), "{stdout}");
        assert_eq!(addon_note(&db.pool, id).await.as_deref(), Some("kept"));
    })
    .await;
}

/// Before, a NUL in a name reached the run's stats: the notes were committed, the run reported
/// failure and its `sync_log` row stayed `running` forever.
#[tokio::test]
async fn a_nul_in_a_note_or_a_name_is_dropped_and_the_run_is_recorded() {
    on_a_fresh_db(|db| async move {
        let id = trogmoon(&db.pool).await;
        let out = sync_addon_file(
            &db,
            "PATTSync.lua",
            "PATTSyncDB = { lastExport = { exportTime = 1700000000, characters = {\n\
             { name = \"Trogmoon\", realm = \"Senjin\", note = \"Discord: tr\\0og\" },\n\
             { name = \"Gh\\0ost\", realm = \"Senjin\", note = \"x\" },\n\
             } } }\n",
            &["--json"],
        )
        .await;
        let stdout = succeeded(&out);
        assert!(
            stdout.contains("unknown (not in the roster): Ghost-Senjin"),
            "{stdout}"
        );
        assert_eq!(
            addon_note(&db.pool, id).await.as_deref(),
            Some("Discord: trog")
        );
        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT status FROM guild_identity.sync_log ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .expect("runs");
        assert_eq!(statuses, vec!["success"]);
    })
    .await;
}

/// Whatever makes a stage's report unstorable, its row is closed — never left `running`.
#[tokio::test]
async fn a_run_whose_report_cannot_be_stored_is_closed_as_an_error() {
    on_a_fresh_db(|db| async move {
        let result = guild_sync::run_recorder::record_run(&db.pool, "addon", |_run_id| async {
            let report = guild_sync::run_recorder::RunReport::success(
                Default::default(),
                &json!({"unknown_characters": ["Gh\u{0}ost"]}),
            );
            Ok(((), report))
        })
        .await;
        let err = result.expect_err("the report could not be stored");
        assert!(format!("{err:#}").contains("cannot record"), "{err:#}");
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, error_message FROM guild_identity.sync_log")
                .fetch_one(&db.pool)
                .await
                .expect("the run");
        assert_eq!(status, "error");
        assert!(
            error.is_some_and(|e| e.contains("could not be recorded")),
            "the row says why"
        );
    })
    .await;
}

#[tokio::test]
async fn a_stale_export_is_refused_by_the_cli_with_exit_code_1_unless_forced() {
    on_a_fresh_db(|db| async move {
        let id = trogmoon(&db.pool).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let now = 1_796_083_200;
        let fresh = write_export(dir.path(), "fresh.lua", &lua_export(now, "newer", 3));
        let stale = write_export(
            dir.path(),
            "stale.lua",
            &lua_export(now - 70 * DAY, "older", 3),
        );
        let out = guild_sync(&db, &["sync", "addon", &fresh]).await;
        succeeded(&out);

        let out = guild_sync(&db, &["sync", "addon", &stale]).await;
        let (error, stderr) = the_one_error_line(&out);
        assert!(error.contains("before the last applied export"), "{stderr}");
        assert!(error.contains("2026-09-22 00:00 UTC"), "{stderr}");
        assert_eq!(addon_note(&db.pool, id).await.as_deref(), Some("newer"));

        let out = guild_sync(&db, &["sync", "addon", &stale, "--force", "--json"]).await;
        let stdout = succeeded(&out);
        assert!(stdout.contains("forced"), "{stdout}");
        assert_eq!(addon_note(&db.pool, id).await.as_deref(), Some("older"));
    })
    .await;
}

/// The forged-rank case: an old export with every rank lowered to Initiate once made even the
/// Guild Leader an Initiate. Battle.net is the source of truth for ranks.
#[tokio::test]
async fn a_stale_export_that_lowers_ranks_never_overrides_a_newer_battle_net_sync() {
    on_a_fresh_db(|db| async move {
        let id = trogmoon(&db.pool).await;
        sqlx::query(
            "UPDATE guild_identity.wow_characters SET guild_rank_id =
                 (SELECT id FROM common.guild_ranks WHERE ingame_rank_index = 0)
             WHERE id = $1",
        )
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("the Guild Leader");
        sqlx::query(
            "INSERT INTO guild_identity.sync_log (source, status, started_at, completed_at)
             VALUES ('blizzard', 'success', now() - interval '1 hour', now())",
        )
        .execute(&db.pool)
        .await
        .expect("a Battle.net sync an hour ago");

        let now = chrono::Utc::now().timestamp();
        let dir = tempfile::tempdir().expect("tempdir");
        let old = write_export(dir.path(), "old.lua", &lua_export(now - 70 * DAY, "old", 4));
        let out = guild_sync(&db, &["sync", "addon", &old, "--force", "--json"]).await;
        let stdout = succeeded(&out);
        let stats = json_stats(&stdout);
        assert_eq!(stats.ranks_kept_from_battle_net, 1);
        let trog = row(&db.pool, id).await;
        assert_eq!(trog.rank_name.as_deref(), Some("Guild Leader"));
        assert_eq!(trog.addon_note.as_deref(), Some("old"), "notes still apply");

        // An export newer than the Battle.net sync does set the rank.
        let new = write_export(dir.path(), "new.lua", &lua_export(now, "new", 4));
        let out = guild_sync(&db, &["sync", "addon", &new]).await;
        succeeded(&out);
        assert_eq!(
            row(&db.pool, id).await.rank_name.as_deref(),
            Some("Initiate")
        );
    })
    .await;
}
