//! The schema of SPEC §3 against a real PostgreSQL: tables, columns, reference data and the
//! constraints the rest of guild-sync relies on.

mod common;

use sqlx::PgPool;

use common::on_a_fresh_db;

/// Every table and column named by SPEC §3.
const CONTRACT: &[(&str, &str, &[&str])] = &[
    ("guild_identity", "roles", &["id", "name"]),
    (
        "guild_identity",
        "classes",
        &["id", "name", "color_hex", "blizzard_class_id"],
    ),
    (
        "guild_identity",
        "specializations",
        &[
            "id",
            "class_id",
            "name",
            "default_role_id",
            "wowhead_slug",
            "blizzard_spec_id",
        ],
    ),
    (
        "common",
        "guild_ranks",
        &[
            "id",
            "name",
            "level",
            "scheduling_weight",
            "description",
            "ingame_rank_index",
            "discord_role_name",
        ],
    ),
    (
        "guild_identity",
        "wow_characters",
        &[
            "id",
            "character_name",
            "realm_slug",
            "realm_name",
            "blizzard_id",
            "class_id",
            "active_spec_id",
            "level",
            "item_level",
            "guild_rank_id",
            "achievement_points",
            "last_login_at",
            "profile_json",
            "last_api_sync",
            "addon_note",
            "addon_officer_note",
            "addon_last_sync",
            "first_seen",
            "removed_at",
        ],
    ),
    (
        "guild_identity",
        "discord_users",
        &[
            "id",
            "discord_id",
            "username",
            "display_name",
            "highest_guild_role",
            "all_guild_roles",
            "joined_server_at",
            "last_sync",
            "is_present",
            "removed_at",
            "first_seen",
        ],
    ),
    (
        "guild_identity",
        "players",
        &[
            "id",
            "display_name",
            "is_active",
            "notes",
            "created_at",
            "updated_at",
            "discord_user_id",
            "website_user_id",
            "guild_rank_id",
            "guild_rank_source",
            "main_character_id",
            "main_spec_id",
            "offspec_character_id",
            "offspec_spec_id",
        ],
    ),
    (
        "guild_identity",
        "player_characters",
        &[
            "id",
            "player_id",
            "character_id",
            "created_at",
            "link_source",
            "confidence",
            "evidence",
        ],
    ),
    (
        "guild_identity",
        "audit_issues",
        &[
            "id",
            "issue_type",
            "severity",
            "wow_character_id",
            "discord_member_id",
            "player_id",
            "summary",
            "details",
            "issue_hash",
            "created_at",
            "notified_at",
            "resolved_at",
            "resolved_by",
        ],
    ),
    (
        "guild_identity",
        "sync_log",
        &[
            "id",
            "source",
            "status",
            "characters_found",
            "characters_updated",
            "characters_new",
            "characters_removed",
            "details",
            "error_message",
            "duration_seconds",
            "started_at",
            "completed_at",
        ],
    ),
];

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn character(pool: &PgPool, name: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters (character_name, realm_slug) VALUES ($1, 'senjin') RETURNING id",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn discord_user(pool: &PgPool, discord_id: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users (discord_id, username) VALUES ($1, 'someone') RETURNING id",
    )
    .bind(discord_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn player(pool: &PgPool, discord_user_id: Option<i32>) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.players (display_name, discord_user_id) VALUES ('P', $1) RETURNING id",
    )
    .bind(discord_user_id)
    .fetch_one(pool)
    .await
}

async fn link(pool: &PgPool, player_id: i32, character_id: i32) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.player_characters (player_id, character_id) VALUES ($1, $2) RETURNING id",
    )
    .bind(player_id)
    .bind(character_id)
    .fetch_one(pool)
    .await
}

async fn issue(pool: &PgPool, hash: &str, resolved: bool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.audit_issues (issue_type, severity, summary, issue_hash, resolved_at)
         VALUES ('orphan_wow', 'warning', 's', $1, CASE WHEN $2 THEN now() END) RETURNING id",
    )
    .bind(hash)
    .bind(resolved)
    .fetch_one(pool)
    .await
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.code().as_deref() == Some("23505"))
}

#[tokio::test]
async fn every_table_and_column_of_the_contract_exists() {
    on_a_fresh_db(|db| async move {
        for (schema, table, columns) in CONTRACT {
            let present: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            )
            .bind(schema)
            .bind(table)
            .fetch_all(&db.pool)
            .await
            .unwrap();
            for column in *columns {
                assert!(
                    present.iter().any(|c| c == column),
                    "{schema}.{table}.{column} is missing (have {present:?})"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn reference_data_is_seeded() {
    on_a_fresh_db(|db| async move {
        let pool = &db.pool;
        assert_eq!(
            count(pool, "SELECT count(*) FROM guild_identity.roles").await,
            4
        );
        assert_eq!(
            count(pool, "SELECT count(*) FROM guild_identity.classes").await,
            13
        );
        assert!(count(pool, "SELECT count(*) FROM guild_identity.specializations").await >= 40);
        assert_eq!(
            count(pool, "SELECT count(*) FROM common.guild_ranks").await,
            5
        );

        let balance: (String, i32, String) = sqlx::query_as(
            "SELECT c.name, s.blizzard_spec_id, r.name FROM guild_identity.specializations s
             JOIN guild_identity.classes c ON c.id = s.class_id
             JOIN guild_identity.roles r ON r.id = s.default_role_id WHERE s.name = 'Balance'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(balance, ("Druid".into(), 102, "Ranged DPS".into()));

        let devourer: String = sqlx::query_scalar(
            "SELECT r.name FROM guild_identity.specializations s
             JOIN guild_identity.classes c ON c.id = s.class_id AND c.name = 'Demon Hunter'
             JOIN guild_identity.roles r ON r.id = s.default_role_id WHERE s.name = 'Devourer'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(devourer, "Ranged DPS");

        let evoker: (i32, String) = sqlx::query_as(
            "SELECT blizzard_class_id, color_hex FROM guild_identity.classes WHERE name = 'Evoker'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(evoker, (13, "33937F".into()));

        let ranks: Vec<(String, i32, i32, String)> = sqlx::query_as(
            "SELECT name, level, ingame_rank_index, discord_role_name FROM common.guild_ranks ORDER BY level DESC",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let expected = [
            ("Guild Leader", 5, 0, "GM"),
            ("Officer", 4, 1, "Officer"),
            ("Veteran", 3, 2, "Veteran"),
            ("Member", 2, 3, "Member"),
            ("Initiate", 1, 4, "Initiate"),
        ];
        let expected: Vec<(String, i32, i32, String)> = expected
            .iter()
            .map(|(n, l, i, d)| (n.to_string(), *l, *i, d.to_string()))
            .collect();
        assert_eq!(ranks, expected);
    })
    .await;
}

#[tokio::test]
async fn a_discord_user_belongs_to_at_most_one_player() {
    on_a_fresh_db(|db| async move {
        let du = discord_user(&db.pool, "1001").await;
        player(&db.pool, Some(du)).await.unwrap();
        let err = player(&db.pool, Some(du)).await.unwrap_err();
        assert!(is_unique_violation(&err), "{err}");
        // Players without a Discord account are not constrained by it.
        player(&db.pool, None).await.unwrap();
        player(&db.pool, None).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_character_belongs_to_at_most_one_player() {
    on_a_fresh_db(|db| async move {
        let c = character(&db.pool, "Zatañña").await;
        let p1 = player(&db.pool, None).await.unwrap();
        let p2 = player(&db.pool, None).await.unwrap();
        link(&db.pool, p1, c).await.unwrap();
        let err = link(&db.pool, p2, c).await.unwrap_err();
        assert!(is_unique_violation(&err), "{err}");
    })
    .await;
}

#[tokio::test]
async fn character_names_are_unique_per_realm_ignoring_case() {
    on_a_fresh_db(|db| async move {
        character(&db.pool, "Thrall").await;
        let err = sqlx::query(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug) VALUES ('THRALL', 'SENJIN')",
        )
        .execute(&db.pool)
        .await
        .unwrap_err();
        assert!(is_unique_violation(&err), "{err}");
        sqlx::query(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug) VALUES ('Thrall', 'area-52')",
        )
        .execute(&db.pool)
        .await
        .unwrap();
    })
    .await;
}

#[tokio::test]
async fn only_one_unresolved_issue_per_hash() {
    on_a_fresh_db(|db| async move {
        issue(&db.pool, "abc", false).await.unwrap();
        let err = issue(&db.pool, "abc", false).await.unwrap_err();
        assert!(is_unique_violation(&err), "{err}");
        // History is kept: any number of resolved issues may share the hash of an open one.
        issue(&db.pool, "abc", true).await.unwrap();
        issue(&db.pool, "abc", true).await.unwrap();
        issue(&db.pool, "def", true).await.unwrap();
        issue(&db.pool, "def", false).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn deleting_a_player_deletes_its_links_but_not_its_characters() {
    on_a_fresh_db(|db| async move {
        let p = player(&db.pool, None).await.unwrap();
        let a = character(&db.pool, "Alpha").await;
        let b = character(&db.pool, "Beta").await;
        link(&db.pool, p, a).await.unwrap();
        link(&db.pool, p, b).await.unwrap();
        sqlx::query("DELETE FROM guild_identity.players WHERE id = $1")
            .bind(p)
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(
            count(
                &db.pool,
                "SELECT count(*) FROM guild_identity.player_characters"
            )
            .await,
            0
        );
        assert_eq!(
            count(
                &db.pool,
                "SELECT count(*) FROM guild_identity.wow_characters"
            )
            .await,
            2
        );
    })
    .await;
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    on_a_fresh_db(|db| async move {
        let before: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        let specs = count(
            &db.pool,
            "SELECT count(*) FROM guild_identity.specializations",
        )
        .await;
        guild_sync::db::migrate(&db.pool).await.unwrap();
        guild_sync::db::migrate(&db.pool).await.unwrap();
        let after: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(before, after);
        assert_eq!(
            count(
                &db.pool,
                "SELECT count(*) FROM guild_identity.specializations"
            )
            .await,
            specs
        );
    })
    .await;
}

/// Every value the CHECK constraints of `player_characters.link_source` and `.confidence` allow
/// (as the migrations left them) decodes into the stored enums, so no row can fail to read.
#[tokio::test]
async fn every_link_source_and_confidence_the_schema_allows_decodes() {
    on_a_fresh_db(|db| async move {
        use guild_sync::db::links::{StoredConfidence, StoredLinkSource};
        for (constraint, parses) in [
            (
                "player_characters_link_source_check",
                (|v: &str| StoredLinkSource::parse(v).is_some()) as fn(&str) -> bool,
            ),
            ("player_characters_confidence_check", |v: &str| {
                StoredConfidence::parse(v).is_some()
            }),
        ] {
            let definition: String = sqlx::query_scalar(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1",
            )
            .bind(constraint)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            let allowed: Vec<&str> = definition.split('\'').skip(1).step_by(2).collect();
            assert!(allowed.len() >= 4, "{definition}");
            for value in allowed {
                assert!(parses(value), "{constraint}: {value}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_run_recorder_closes_failed_runs_too() {
    on_a_fresh_db(|db| async move {
        use guild_sync::run_recorder::{RunReport, record_run};
        let ok: u32 = record_run(&db.pool, "test", |_| async {
            Ok((
                7,
                RunReport::success(
                    guild_sync::db::sync_log::RunCounts {
                        found: Some(3),
                        ..Default::default()
                    },
                    &serde_json::json!({"found": 3}),
                ),
            ))
        })
        .await
        .unwrap();
        assert_eq!(ok, 7);
        let failed = record_run::<(), _, _>(&db.pool, "test", |_| async {
            Err(anyhow::anyhow!("roster.json is not valid JSON"))
        })
        .await;
        assert!(failed.is_err());
        type Row = (String, Option<i32>, Option<String>, bool, bool);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT status, characters_found, error_message, duration_seconds IS NOT NULL, completed_at IS NOT NULL
             FROM guild_identity.sync_log ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                ("success".into(), Some(3), None, true, true),
                (
                    "error".into(),
                    None,
                    Some("roster.json is not valid JSON".into()),
                    true,
                    true
                ),
            ]
        );
    })
    .await;
}

/// The start-up shortcut (nothing to apply = one query) must not hide a migration whose stored
/// checksum differs: that still goes to sqlx's migrator, which refuses it.
#[tokio::test]
async fn migrate_is_a_no_op_when_up_to_date_and_still_refuses_a_changed_migration() {
    on_a_fresh_db(|db| async move {
        guild_sync::db::migrate(&db.pool).await.unwrap();
        sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea
             WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let err = guild_sync::db::migrate(&db.pool).await.unwrap_err();
        assert!(format!("{err:#}").contains("modified"), "{err:#}");
    })
    .await;
}

/// The embedded migrations a database should hold: (version, checksum), in order.
fn embedded_migrations() -> Vec<(i64, Vec<u8>)> {
    guild_sync::db::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect()
}

async fn applied_migrations(pool: &PgPool) -> Vec<(i64, Vec<u8>)> {
    sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Turn the test database into one that never saw a migration: every schema the migrations
/// made, and their bookkeeping table, gone.
async fn empty_the_database(pool: &PgPool) {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname FROM pg_namespace
         WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(schemas.iter().any(|s| s == "guild_identity"), "{schemas:?}");
    for schema in schemas {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("DROP TABLE _sqlx_migrations")
        .execute(pool)
        .await
        .unwrap();
}

async fn up_to_date(pool: &PgPool) -> bool {
    let mut conn = pool.acquire().await.unwrap();
    guild_sync::db::migrations_up_to_date(&mut conn).await
}

/// The start-up check answers "up to date" for exactly the embedded migrations, applied and
/// unchanged; a missing, changed, failed or unknown row sends the command to the migrator.
#[tokio::test]
async fn the_migration_check_is_up_to_date_only_for_exactly_the_embedded_migrations() {
    on_a_fresh_db(|db| async move {
        assert!(up_to_date(&db.pool).await);
        let last = embedded_migrations().last().unwrap().0;
        let first = embedded_migrations()[0].0;
        let changes = [
            format!("DELETE FROM _sqlx_migrations WHERE version = {last}"),
            format!("DELETE FROM _sqlx_migrations WHERE version = {first}"),
            format!(
                "UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea WHERE version = {first}"
            ),
            format!("UPDATE _sqlx_migrations SET success = false WHERE version = {last}"),
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (99999, 'from a newer binary', true, '\\x00'::bytea, 0)"
                .to_string(),
            "TRUNCATE _sqlx_migrations".to_string(),
            // Only the trigger writes the fingerprint; one gone or edited is not trusted.
            "DELETE FROM common.migrations_fingerprint".to_string(),
            "UPDATE common.migrations_fingerprint SET fingerprint = 'x'".to_string(),
        ];
        for change in changes {
            let mut tx = db.pool.begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(change.clone()))
                .execute(&mut *tx)
                .await
                .unwrap();
            assert!(
                !guild_sync::db::migrations_up_to_date(&mut tx).await,
                "still up to date after: {change}"
            );
            tx.rollback().await.unwrap();
        }
        assert!(up_to_date(&db.pool).await, "the rollbacks restored it");
        // sqlx rewrites `execution_time` after each migration: the trigger recomputes the same
        // fingerprint.
        sqlx::query("UPDATE _sqlx_migrations SET execution_time = execution_time + 1")
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(
            up_to_date(&db.pool).await,
            "execution times are not part of it"
        );
    })
    .await;
}

/// A fingerprint that no longer matches (edited by hand, say) only costs the slow path: the
/// migrator finds nothing to apply and the command starts.
#[tokio::test]
async fn a_missing_fingerprint_sends_the_command_to_the_migrator_which_starts_it() {
    on_a_fresh_db(|db| async move {
        sqlx::query("DELETE FROM common.migrations_fingerprint")
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(!up_to_date(&db.pool).await);
        let applied = guild_sync::db::migrate(&db.pool).await.unwrap();
        assert_eq!(applied, embedded_migrations().len() as i64);
        assert_eq!(applied_migrations(&db.pool).await, embedded_migrations());
    })
    .await;
}

/// A database one migration behind (the binary was upgraded) gets that migration applied at
/// start-up, and the check then finds it up to date.
#[tokio::test]
async fn migrate_applies_a_missing_migration() {
    on_a_fresh_db(|db| async move {
        let embedded = embedded_migrations();
        let [.., (before_last, _), _] = embedded.as_slice() else {
            panic!("at least two migrations are embedded");
        };
        empty_the_database(&db.pool).await;
        guild_sync::db::MIGRATOR
            .run_to(*before_last, &db.pool)
            .await
            .unwrap();
        assert_eq!(
            applied_migrations(&db.pool).await,
            embedded[..embedded.len() - 1]
        );
        assert!(!up_to_date(&db.pool).await);

        let applied = guild_sync::db::migrate(&db.pool).await.unwrap();
        assert_eq!(applied, embedded.len() as i64);
        assert_eq!(applied_migrations(&db.pool).await, embedded);
        assert!(up_to_date(&db.pool).await);
    })
    .await;
}

/// Several commands starting at once on a database that has never been migrated: each waits
/// for the migrator's lock, every migration is applied once, and all of them start.
#[tokio::test]
async fn concurrent_starts_on_an_empty_database_apply_each_migration_once() {
    on_a_fresh_db(|db| async move {
        let embedded = embedded_migrations();
        empty_the_database(&db.pool).await;
        let mut starts = Vec::new();
        for _ in 0..4 {
            let options = guild_sync::db::session_options(db.connect_options());
            starts.push(tokio::spawn(async move {
                let pool = guild_sync::db::connect(options).await.unwrap();
                let applied = guild_sync::db::migrate(&pool).await;
                pool.close().await;
                applied.map_err(|err| format!("{err:#}"))
            }));
        }
        for start in starts {
            assert_eq!(start.await.unwrap(), Ok(embedded.len() as i64));
        }
        assert_eq!(applied_migrations(&db.pool).await, embedded);
        assert!(up_to_date(&db.pool).await);
    })
    .await;
}

/// 200 syncs an hour apart, each appending 100 rank changes of 40 players.
async fn append_200_syncs(pool: &PgPool) {
    for sync in 0..200 {
        sqlx::query(
            "INSERT INTO guild_identity.member_events
                 (event_type, occurred_at, character_id, player_id, actor)
             SELECT 'rank_changed', '2026-01-01'::timestamptz + $1 * interval '1 hour',
                    g, g % 40, 'engine'
             FROM generate_series(1, 100) g",
        )
        .bind(f64::from(sync))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// The on-disk sizes of two relations (tables or indexes), in bytes.
async fn relation_sizes(pool: &PgPool, first: &str, second: &str) -> (i64, i64) {
    sqlx::query_as("SELECT pg_relation_size($1::regclass), pg_relation_size($2::regclass)")
        .bind(first)
        .bind(second)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Events are appended in time order, so the feed's time index must grow at its right edge
/// (migration 1540). Declared `occurred_at DESC`, every append landed at the left edge, where
/// B-tree pages split 50/50, and the live index grew to about 1.7 times a freshly built one.
/// Here 200 syncs of 100 events each are appended, and the live index is compared with the
/// same index built afresh over the same rows.
#[tokio::test]
async fn appended_events_keep_the_time_index_dense() {
    on_a_fresh_db(|db| async move {
        append_200_syncs(&db.pool).await;
        sqlx::query(
            "CREATE INDEX member_events_time_fresh
                 ON guild_identity.member_events (occurred_at, id)",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let (live, fresh) = relation_sizes(
            &db.pool,
            "guild_identity.member_events_time_idx",
            "guild_identity.member_events_time_fresh",
        )
        .await;
        assert!(
            live * 4 <= fresh * 5,
            "time index: {live} bytes after appends, {fresh} built afresh"
        );
    })
    .await;
}

/// A sync's events belong to as many players as changed, so each one's entry in the player
/// index is a descent of its own (migration 1550). Keyed by the player alone, a player's
/// entries deduplicate into one key with a list of row pointers, and the index stays a
/// fraction of the time index, whose entries are all distinct. Keyed `(player_id,
/// occurred_at)`, as before, it was about as large as the time index.
#[tokio::test]
async fn the_player_index_holds_one_key_per_player() {
    on_a_fresh_db(|db| async move {
        append_200_syncs(&db.pool).await;
        let (player, time) = relation_sizes(
            &db.pool,
            "guild_identity.member_events_player_idx",
            "guild_identity.member_events_time_idx",
        )
        .await;
        assert!(
            player * 2 <= time,
            "player index: {player} bytes, time index: {time} bytes"
        );
    })
    .await;
}
