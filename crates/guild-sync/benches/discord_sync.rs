//! Benchmark: the database stage of a full Discord member sync of a 50,000-member server on a
//! fresh PostgreSQL database (`guild_sync::testing::TestDb`), plus the pure member → row
//! conversion. Prints one line per scenario and the process's peak memory (VmHWM).
//!
//! Run: `cargo bench -p guild-sync --bench discord_sync` (optionally `-- 100000` for another size).

use std::time::Instant;

use guild_sync::config::RemovalGuard;
use guild_sync::db::{discord_users, reference};
use guild_sync::discord_sync::{
    DiscordSnapshot, GuildRoles, RankRoles, apply_member_list, prepare_members,
};
use guild_sync::testing::TestDb;
use serde_json::{Value, json};

/// Members in the synthetic server unless given on the command line.
const DEFAULT_MEMBERS: usize = 50_000;

fn snapshot(members: usize, generation: u64) -> DiscordSnapshot {
    let roles = json!([
        {"id": "900", "name": "@everyone", "position": 0},
        {"id": "901", "name": "GM", "position": 9},
        {"id": "902", "name": "Officer", "position": 8},
        {"id": "903", "name": "Veteran", "position": 7},
        {"id": "904", "name": "Member", "position": 6},
        {"id": "905", "name": "Initiate", "position": 5},
        {"id": "906", "name": "Raider", "position": 4},
        {"id": "907", "name": "Friends", "position": 3}
    ]);
    let list: Vec<Value> = (0..members as u64)
        .map(|i| {
            // Generation 1 changes 1 % of the members' roles, drops 1 % and adds 1 %.
            let id = if generation > 0 && i % 100 == 1 { 9_000_000_000 + i } else { 100_000_000 + i };
            let role = if generation > 0 && i % 100 == 2 { "903" } else { ["904", "905", "907", "902"][(i % 4) as usize] };
            json!({
                "user": {"id": id.to_string(), "username": format!("member_{i}"),
                         "global_name": if i.is_multiple_of(3) { Value::from(format!("Member {i}")) } else { Value::Null },
                         "bot": i.is_multiple_of(500)},
                "nick": if i.is_multiple_of(5) { Value::from(format!("Nick{i}")) } else { Value::Null },
                "roles": [role, "906"],
                "joined_at": "2022-06-01T10:00:00.000000+00:00"
            })
        })
        .collect();
    serde_json::from_value(json!({"roles": roles, "members": list})).expect("valid snapshot")
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_MEMBERS);
    let db = TestDb::new().await;
    let ranks = RankRoles::new(&reference::guild_ranks(&db.pool).await?);
    let guard = RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    };

    let first = snapshot(members, 0);
    let second = snapshot(members, 1);

    let started = Instant::now();
    let prepared_first = prepare_members(&first.members, &GuildRoles::new(&first.roles), &ranks);
    let convert = started.elapsed();
    let prepared_second = prepare_members(&second.members, &GuildRoles::new(&second.roles), &ranks);
    println!(
        "discord_sync bench: {members} members ({} humans)",
        prepared_first.rows.len()
    );
    println!(
        "  convert (pure, member -> row):          {:>8.1} ms",
        convert.as_secs_f64() * 1e3
    );

    let scenarios = [
        ("first sync (all new)", &prepared_first),
        ("re-sync, nothing changed", &prepared_first),
        ("re-sync, 1% changed/left/new", &prepared_second),
        ("re-sync, back to the first list", &prepared_first),
    ];
    for (name, prepared) in scenarios {
        let started = Instant::now();
        let taken_at = discord_users::clock(&db.pool).await?;
        let stats = apply_member_list(&db.pool, prepared, taken_at, guard).await?;
        let elapsed = started.elapsed();
        println!(
            "  db stage, {name:<32} {:>8.1} ms  (new {}, updated {}, departed {}, revived {})",
            elapsed.as_secs_f64() * 1e3,
            stats.new,
            stats.updated,
            stats.departed,
            stats.revived
        );
    }
    match vm_hwm_kib() {
        Some(kib) => println!("  peak memory (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("  peak memory (VmHWM): unavailable"),
    }
    Ok(())
}
