//! db_sync against a real PostgreSQL: FK resolution (the requirements' Task 10 tests),
//! departures and returns, renames and realm transfers keeping their player links, refused
//! rosters changing nothing, idempotence, and the CLI over a `--from-dir` directory.

mod blizzard_support;
mod common;

use blizzard_support::{Member, fetched, guard, member, write_dir};
use guild_sync::config::{Config, RemovalGuard};
use guild_sync::db::member_events::EventSource;
use guild_sync::db_sync::{self, BlizzardInput, apply_roster, sync_fetched};
use sqlx::PgPool;

use common::{on_a_fresh_db, within_a_minute};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Stored {
    id: i32,
    character_name: String,
    realm_slug: String,
    realm_name: Option<String>,
    blizzard_id: Option<i64>,
    class_name: Option<String>,
    spec_name: Option<String>,
    rank_name: Option<String>,
    level: Option<i32>,
    item_level: Option<i32>,
    achievement_points: Option<i32>,
    last_login_at: Option<chrono::DateTime<chrono::Utc>>,
    profile_json: Option<serde_json::Value>,
    in_guild: bool,
}

async fn stored(pool: &PgPool) -> Vec<Stored> {
    sqlx::query_as(
        "SELECT wc.id, wc.character_name, wc.realm_slug, wc.realm_name, wc.blizzard_id,
                c.name AS class_name, s.name AS spec_name, r.name AS rank_name, wc.level,
                wc.item_level, wc.achievement_points, wc.last_login_at, wc.profile_json,
                wc.removed_at IS NULL AS in_guild
         FROM guild_identity.wow_characters wc
         LEFT JOIN guild_identity.classes c ON c.id = wc.class_id
         LEFT JOIN guild_identity.specializations s ON s.id = wc.active_spec_id
         LEFT JOIN common.guild_ranks r ON r.id = wc.guild_rank_id
         ORDER BY wc.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn by_blizzard_id(pool: &PgPool, blizzard_id: i64) -> Stored {
    stored(pool)
        .await
        .into_iter()
        .find(|s| s.blizzard_id == Some(blizzard_id))
        .unwrap_or_else(|| panic!("no row for blizzard id {blizzard_id}"))
}

/// Link a character to a new player; returns the player id.
async fn link(pool: &PgPool, character_id: i32) -> i32 {
    let player: i32 = sqlx::query_scalar(
        "INSERT INTO guild_identity.players (display_name) VALUES ('p') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO guild_identity.player_characters (player_id, character_id) VALUES ($1, $2)",
    )
    .bind(player)
    .bind(character_id)
    .execute(pool)
    .await
    .unwrap();
    player
}

async fn player_of(pool: &PgPool, character_id: i32) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT player_id FROM guild_identity.player_characters WHERE character_id = $1",
    )
    .bind(character_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn sync(pool: &PgPool, members: &[Member]) -> db_sync::BlizzardSyncStats {
    sync_fetched(pool, &fetched(members), guard())
        .await
        .unwrap()
}

#[tokio::test]
async fn test_sync_resolves_class_id() {
    on_a_fresh_db(|db| async move {
        // By Blizzard class id (the roster's playable_class.id) …
        let by_id = member(1, "Moonfire");
        // … and by name when the id is one no class carries ("Druid" → classes.id).
        let mut by_name = member(2, "Starfall");
        by_name.class = 999;
        let stats = sync(&db.pool, &[by_id, by_name]).await;
        let druid: i32 =
            sqlx::query_scalar("SELECT id FROM guild_identity.classes WHERE name = 'Druid'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        let class_ids: Vec<Option<i32>> = sqlx::query_scalar(
            "SELECT class_id FROM guild_identity.wow_characters ORDER BY blizzard_id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(class_ids, vec![Some(druid), Some(druid)]);
        assert_eq!(stats.unknown_class, 0);
    })
    .await;
}

#[tokio::test]
async fn test_sync_resolves_spec_id() {
    on_a_fresh_db(|db| async move {
        let by_id = member(1, "Moonfire");
        // A spec id the table lacks falls back to (name, class): "Balance" + Druid.
        let mut by_name = member(2, "Starfall");
        by_name.spec = Some((99_999, "Balance".into()));
        // "Holy" exists for Paladin and Priest: the class decides.
        let mut priest = member(3, "Lightwell");
        priest.class = 5;
        priest.class_name = "Priest".into();
        priest.spec = Some((0, "Holy".into()));
        sync(&db.pool, &[by_id, by_name, priest]).await;
        let rows = stored(&db.pool).await;
        let specs: Vec<_> = rows
            .iter()
            .map(|r| (r.class_name.as_deref(), r.spec_name.as_deref()))
            .collect();
        assert_eq!(
            specs,
            vec![
                (Some("Druid"), Some("Balance")),
                (Some("Druid"), Some("Balance")),
                (Some("Priest"), Some("Holy"))
            ]
        );
        let priest_spec_class: i32 = sqlx::query_scalar(
            "SELECT s.class_id FROM guild_identity.wow_characters wc
             JOIN guild_identity.specializations s ON s.id = wc.active_spec_id WHERE wc.blizzard_id = 3",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let priest_class: i32 = sqlx::query_scalar("SELECT id FROM guild_identity.classes WHERE name = 'Priest'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(priest_spec_class, priest_class);
    })
    .await;
}

#[tokio::test]
async fn test_sync_resolves_guild_rank_id() {
    on_a_fresh_db(|db| async move {
        let ranks: Vec<(i64, &str)> = vec![
            (0, "Guild Leader"),
            (1, "Officer"),
            (2, "Veteran"),
            (3, "Member"),
            (4, "Initiate"),
        ];
        let members: Vec<Member> = ranks
            .iter()
            .map(|(index, _)| {
                let mut m = member(10 + index, &format!("Rank{index}"));
                m.rank = *index;
                m
            })
            .collect();
        let stats = sync(&db.pool, &members).await;
        for (index, name) in ranks {
            assert_eq!(
                by_blizzard_id(&db.pool, 10 + index)
                    .await
                    .rank_name
                    .as_deref(),
                Some(name),
                "rank index {index}"
            );
        }
        assert_eq!(stats.unknown_rank, 0);
    })
    .await;
}

#[tokio::test]
async fn test_sync_handles_unknown_class() {
    on_a_fresh_db(|db| async move {
        let mut odd = member(1, "Mystery");
        odd.class = 42;
        odd.class_name = "Tinker".into();
        odd.spec = Some((4242, "Gadgets".into()));
        let mut unranked = member(2, "Newbie");
        unranked.rank = 8;
        let stats = sync(&db.pool, &[odd, unranked]).await;
        let mystery = by_blizzard_id(&db.pool, 1).await;
        assert_eq!(mystery.class_name, None);
        assert_eq!(mystery.spec_name, None);
        assert!(mystery.in_guild);
        assert_eq!(by_blizzard_id(&db.pool, 2).await.rank_name, None);
        assert_eq!(
            (stats.unknown_class, stats.unknown_spec, stats.unknown_rank),
            (1, 1, 1)
        );
        assert_eq!(stats.new, 2);
    })
    .await;
}

#[tokio::test]
async fn test_sync_handles_null_spec() {
    on_a_fresh_db(|db| async move {
        let mut fresh = member(1, "Levelling");
        fresh.spec = None;
        let mut gone = member(2, "Inactive");
        gone.has_profile = false;
        let stats = sync(&db.pool, &[fresh, gone]).await;
        let levelling = by_blizzard_id(&db.pool, 1).await;
        assert_eq!(levelling.spec_name, None);
        assert_eq!(levelling.class_name.as_deref(), Some("Druid"));
        // A 404 profile keeps the character with its roster data.
        let inactive = by_blizzard_id(&db.pool, 2).await;
        assert!(inactive.in_guild);
        assert_eq!(inactive.class_name.as_deref(), Some("Druid"));
        assert_eq!(inactive.level, Some(80));
        assert_eq!(inactive.profile_json, None);
        assert_eq!(inactive.realm_name.as_deref(), Some("Sen'jin"));
        assert_eq!(stats.unknown_spec, 0);
        assert_eq!((stats.profiles_fetched, stats.profiles_not_found), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn profile_fields_are_written_and_a_later_404_keeps_them() {
    on_a_fresh_db(|db| async move {
        let mut m = member(1, "Zatañña");
        sync(&db.pool, std::slice::from_ref(&m)).await;
        let first = by_blizzard_id(&db.pool, 1).await;
        assert_eq!(first.item_level, Some(620));
        assert_eq!(first.achievement_points, Some(12345));
        assert_eq!(
            first.last_login_at,
            chrono::DateTime::from_timestamp_millis(1_763_000_000_000)
        );
        assert_eq!(
            first.profile_json.as_ref().unwrap()["gender"]["type"],
            "FEMALE"
        );
        m.has_profile = false;
        m.rank = 2;
        sync(&db.pool, &[m]).await;
        let second = by_blizzard_id(&db.pool, 1).await;
        assert_eq!(second.rank_name.as_deref(), Some("Veteran"));
        assert_eq!(second.item_level, first.item_level);
        assert_eq!(second.profile_json, first.profile_json);
    })
    .await;
}

#[tokio::test]
async fn departed_members_are_removed_and_cleared_when_they_return() {
    on_a_fresh_db(|db| async move {
        let all = [member(1, "A"), member(2, "B"), member(3, "C")];
        sync(&db.pool, &all).await;
        let stats = sync(&db.pool, &all[..2]).await;
        assert_eq!((stats.removed, stats.found), (1, 2));
        assert!(!by_blizzard_id(&db.pool, 3).await.in_guild);
        let player = link(&db.pool, by_blizzard_id(&db.pool, 3).await.id).await;
        let stats = sync(&db.pool, &all).await;
        assert_eq!((stats.returned, stats.removed, stats.new), (1, 0, 0));
        let back = by_blizzard_id(&db.pool, 3).await;
        assert!(back.in_guild);
        assert_eq!(player_of(&db.pool, back.id).await, Some(player));
    })
    .await;
}

#[tokio::test]
async fn a_rename_keeps_the_row_and_its_player_link() {
    on_a_fresh_db(|db| async move {
        sync(&db.pool, &[member(1, "Oldname"), member(2, "Other")]).await;
        let row = by_blizzard_id(&db.pool, 1).await;
        let player = link(&db.pool, row.id).await;
        let stats = sync(&db.pool, &[member(1, "Newname"), member(2, "Other")]).await;
        assert_eq!((stats.renamed, stats.new, stats.removed), (1, 0, 0));
        let renamed = by_blizzard_id(&db.pool, 1).await;
        assert_eq!(renamed.id, row.id);
        assert_eq!(renamed.character_name, "Newname");
        assert_eq!(player_of(&db.pool, row.id).await, Some(player));
        assert_eq!(stored(&db.pool).await.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_realm_transfer_onto_a_departed_rows_name_keeps_both_rows_and_links() {
    on_a_fresh_db(|db| async move {
        // Row A: Arthas on senjin (in the guild). Row B: a different character, Arthas on
        // stormrage, who left the guild long ago.
        let mut b = member(2, "Arthas");
        b.realm = "stormrage".into();
        sync(
            &db.pool,
            &[member(1, "Arthas"), b.clone(), member(3, "Keeper")],
        )
        .await;
        sync(&db.pool, &[member(1, "Arthas"), member(3, "Keeper")]).await;
        let a_row = by_blizzard_id(&db.pool, 1).await;
        let b_row = by_blizzard_id(&db.pool, 2).await;
        assert!(!b_row.in_guild);
        let a_player = link(&db.pool, a_row.id).await;
        let b_player = link(&db.pool, b_row.id).await;

        // A transfers to stormrage, onto B's name + realm.
        let mut moved = member(1, "Arthas");
        moved.realm = "stormrage".into();
        let stats = sync(&db.pool, &[moved, member(3, "Keeper")]).await;
        assert_eq!(
            (stats.renamed, stats.displaced, stats.new, stats.removed),
            (1, 1, 0, 0)
        );

        let a_after = by_blizzard_id(&db.pool, 1).await;
        assert_eq!(a_after.id, a_row.id);
        assert_eq!(
            (a_after.character_name.as_str(), a_after.realm_slug.as_str()),
            ("Arthas", "stormrage")
        );
        assert_eq!(player_of(&db.pool, a_row.id).await, Some(a_player));
        // B keeps its row, data and link under a name no real character can have.
        let b_after = by_blizzard_id(&db.pool, 2).await;
        assert_eq!(b_after.id, b_row.id);
        assert_eq!(b_after.character_name, format!("Arthas#{}", b_row.id));
        assert!(!b_after.in_guild);
        assert_eq!(player_of(&db.pool, b_row.id).await, Some(b_player));
    })
    .await;
}

#[tokio::test]
async fn two_characters_swapping_names_keep_their_rows() {
    on_a_fresh_db(|db| async move {
        sync(&db.pool, &[member(1, "Alpha"), member(2, "Beta")]).await;
        let (a, b) = (
            by_blizzard_id(&db.pool, 1).await.id,
            by_blizzard_id(&db.pool, 2).await.id,
        );
        let stats = sync(&db.pool, &[member(1, "Beta"), member(2, "Alpha")]).await;
        assert_eq!(stats.renamed, 2);
        assert_eq!(by_blizzard_id(&db.pool, 1).await.id, a);
        assert_eq!(by_blizzard_id(&db.pool, 1).await.character_name, "Beta");
        assert_eq!(by_blizzard_id(&db.pool, 2).await.id, b);
    })
    .await;
}

#[tokio::test]
async fn a_second_identical_sync_changes_nothing() {
    on_a_fresh_db(|db| async move {
        let mut members: Vec<Member> = (1..=20).map(|i| member(i, &format!("Char{i}"))).collect();
        members[3].has_profile = false;
        members[5].spec = None;
        members[7].rank = 9;
        let first = sync(&db.pool, &members).await;
        assert_eq!(first.new, 20);
        let before = stored(&db.pool).await;
        let second = sync(&db.pool, &members).await;
        assert_eq!(
            (
                second.new,
                second.updated,
                second.removed,
                second.returned,
                second.renamed
            ),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(stored(&db.pool).await, before);
    })
    .await;
}

async fn sync_log_errors(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT error_message FROM guild_identity.sync_log
         WHERE source = 'blizzard' AND status = 'error' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_empty_roster_removes_nobody_and_is_logged_as_an_error() {
    on_a_fresh_db(|db| async move {
        sync(&db.pool, &[member(1, "A"), member(2, "B")]).await;
        let before = stored(&db.pool).await;
        let err = sync_fetched(&db.pool, &fetched(&[]), guard())
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("empty"), "{err:#}");
        assert_eq!(stored(&db.pool).await, before);
        assert_eq!(sync_log_errors(&db.pool).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_failed_roster_removes_nobody_and_is_logged_as_an_error() {
    on_a_fresh_db(|db| async move {
        sync(&db.pool, &[member(1, "A"), member(2, "B")]).await;
        let before = stored(&db.pool).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("roster.json"),
            r#"{"guild": {"name": "x"}, "members": "#,
        )
        .unwrap();
        let err = db_sync::run(
            &db.pool,
            &Config::defaults(),
            BlizzardInput::Dir(dir.path().to_path_buf()),
            guard(),
            false,
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("roster.json"), "{err:#}");
        assert_eq!(stored(&db.pool).await, before);
        assert_eq!(sync_log_errors(&db.pool).await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_mass_removal_is_refused_unless_explicitly_allowed() {
    on_a_fresh_db(|db| async move {
        let members: Vec<Member> = (1..=10).map(|i| member(i, &format!("Char{i}"))).collect();
        sync(&db.pool, &members).await;
        let before = stored(&db.pool).await;
        // 6 of 10 gone at once is more than half.
        let err = sync_fetched(&db.pool, &fetched(&members[..4]), guard())
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("--allow-mass-removal"),
            "{err:#}"
        );
        assert_eq!(stored(&db.pool).await, before);
        assert_eq!(sync_log_errors(&db.pool).await.len(), 1);
        // Exactly half is allowed; with the override, more is too.
        let stats = apply_roster(
            &db.pool,
            &fetched(&members[..5]),
            guard(),
            EventSource::unrecorded(),
        )
        .await
        .unwrap();
        assert_eq!(stats.removed, 5);
        let allow = RemovalGuard {
            allow_mass_removal: true,
            ..guard()
        };
        let stats = apply_roster(
            &db.pool,
            &fetched(&members[..1]),
            allow,
            EventSource::unrecorded(),
        )
        .await
        .unwrap();
        assert_eq!(stats.removed, 4);
    })
    .await;
}

#[tokio::test]
async fn the_cli_syncs_a_directory_and_prints_the_stats_as_the_last_line() {
    on_a_fresh_db(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut inactive = member(2, "Zatañña");
        inactive.has_profile = false;
        write_dir(dir.path(), &[member(1, "Moonfire"), inactive]);
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
            .args(["sync", "blizzard", "--json", "--from-dir"])
            .arg(dir.path())
            .env("DATABASE_URL", db.url())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(last["found"], 2);
        assert_eq!(last["new"], 2);
        assert_eq!(last["profiles_fetched"], 1);
        assert_eq!(last["profiles_not_found"], 1);
        let (status, found): (String, Option<i32>) = sqlx::query_as(
            "SELECT status, characters_found FROM guild_identity.sync_log WHERE source = 'blizzard'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!((status.as_str(), found), ("success", Some(2)));
    })
    .await;
}

#[tokio::test]
async fn the_cli_names_the_missing_credentials_for_a_live_sync() {
    within_a_minute(async {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
            .args(["sync", "blizzard"])
            .env_remove("BLIZZARD_CLIENT_ID")
            .env_remove("BLIZZARD_CLIENT_SECRET")
            .env("GUILD_REALM_SLUG", "senjin")
            .env_remove("GUILD_NAME_SLUG")
            .output()
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        for name in [
            "BLIZZARD_CLIENT_ID",
            "BLIZZARD_CLIENT_SECRET",
            "GUILD_NAME_SLUG",
        ] {
            assert!(stderr.contains(name), "{stderr}");
        }
        assert!(!stderr.contains("GUILD_REALM_SLUG"), "{stderr}");
    })
    .await;
}
