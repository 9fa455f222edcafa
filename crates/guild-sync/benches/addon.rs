//! Benchmark: parse a 1,000-member PATTSync SavedVariables export and apply it to a database of
//! 1,000 characters (target: under 50 ms together). Run with `cargo bench --bench addon`.
//! Uses a fresh database from `guild_sync::testing::TestDb`; prints median and worst figures.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use guild_sync::addon_processor::parse_saved_variables;
use guild_sync::db_sync::addon::sync_addon_data;
use guild_sync::testing::{TestDb, median};

const MEMBERS: usize = 1000;
const ROUNDS: usize = 30;

/// A SavedVariables file as WoW writes it, `round` varying the notes so every apply changes rows.
fn export_file(round: usize) -> String {
    let classes = [
        ("Druid", "DRUID"),
        ("Death Knight", "DEATHKNIGHT"),
        ("Mage", "MAGE"),
    ];
    let mut out = String::from(
        "\nPATTSyncDB = {\n\t[\"lastExportTime\"] = 1700000000,\n\t[\"totalExports\"] = 12,\n\t[\"lastExport\"] = {\n\t\t[\"exportTime\"] = 1700000000,\n\t\t[\"exportTimeISO\"] = \"2023-11-14T22:13:20Z\",\n\t\t[\"addonVersion\"] = \"1.0.0\",\n\t\t[\"guildName\"] = \"Pick All The Things\",\n\t\t[\"memberCount\"] = 1000,\n\t\t[\"characters\"] = {\n",
    );
    for i in 0..MEMBERS {
        let (class, file) = classes[i % 3];
        let realm = if i % 2 == 0 {
            "Senjin"
        } else {
            "BleedingHollow"
        };
        write!(
            out,
            "\t\t\t{{\n\t\t\t\t[\"achievementPoints\"] = {ap},\n\t\t\t\t[\"class\"] = \"{class}\",\n\t\t\t\t[\"classFile\"] = \"{file}\",\n\t\t\t\t[\"isOnline\"] = {online},\n\t\t\t\t[\"lastOnline\"] = {last},\n\t\t\t\t[\"level\"] = {level},\n\t\t\t\t[\"name\"] = \"Member{i}\",\n\t\t\t\t[\"note\"] = \"Discord: member{i} r{round}\",\n\t\t\t\t[\"officerNote\"] = \"main \\\"{i}\\\"\",\n\t\t\t\t[\"rank\"] = {rank},\n\t\t\t\t[\"rankName\"] = \"Member\",\n\t\t\t\t[\"realm\"] = \"{realm}\",\n\t\t\t\t[\"zone\"] = \"Dornogal\",\n\t\t\t}}, -- [{n}]\n",
            ap = i * 10,
            online = i % 7 == 0,
            last = 1_699_000_000 + i,
            level = 70 + i % 11,
            rank = i % 5,
            n = i + 1,
        )
        .expect("write");
    }
    out.push_str("\t\t},\n\t},\n}\n");
    out
}

fn summary(label: &str, samples: Vec<Duration>) -> Duration {
    let worst = *samples.iter().max().expect("samples");
    let median = median(samples);
    println!(
        "{label:<28} median {:>8.2} ms   worst {:>8.2} ms",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    median
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let db = TestDb::new().await;
        sqlx::query(
            "INSERT INTO guild_identity.wow_characters (character_name, realm_slug)
             SELECT 'Member' || i, CASE WHEN i % 2 = 0 THEN 'senjin' ELSE 'bleeding-hollow' END
             FROM generate_series(0, $1 - 1) AS i",
        )
        .bind(MEMBERS as i32)
        .execute(&db.pool)
        .await
        .expect("seed characters");

        let files: Vec<String> = (0..ROUNDS).map(export_file).collect();
        println!(
            "addon benchmark: {MEMBERS} members, export file {} KB, {ROUNDS} rounds",
            files[0].len() / 1024
        );
        let mut parse = Vec::new();
        let mut apply = Vec::new();
        let mut total = Vec::new();
        for file in &files {
            let started = Instant::now();
            let export = parse_saved_variables(file.as_bytes()).expect("the export parses");
            let parsed = started.elapsed();
            let stats = sync_addon_data(&db.pool, &export)
                .await
                .expect("the export applies");
            let done = started.elapsed();
            assert_eq!(stats.matched, MEMBERS);
            assert_eq!(stats.updated, MEMBERS);
            parse.push(parsed);
            apply.push(done - parsed);
            total.push(done);
        }
        summary("parse (savedvars + validate)", parse);
        summary("apply (sync_addon_data)", apply);
        let median = summary("parse + apply", total);
        println!(
            "target: under 50 ms together -> {}",
            if median < Duration::from_millis(50) {
                "met"
            } else {
                "MISSED"
            }
        );
    });
}
