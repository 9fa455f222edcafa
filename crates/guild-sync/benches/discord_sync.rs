//! Benchmark: the database stage of a full Discord member sync of a 50,000-member server on a
//! fresh PostgreSQL database (`guild_sync::testing::TestDb`), plus the pure member → row
//! conversion. Prints one line per scenario and the process's peak memory (VmHWM).
//!
//! Run: `cargo bench -p guild-sync --bench discord_sync` (optionally `-- 100000` for another size).

use std::time::Instant;

use guild_sync::config::RemovalGuard;
use guild_sync::db::member_events::EventSource;
use guild_sync::db::{discord_users, reference};
use guild_sync::discord_sync::{
    DiscordSnapshot, GuildRoles, RankRoles, Snowflake, WireMember, WireRole, WireUser,
    apply_member_list, prepare_members,
};
use guild_sync::testing::TestDb;

/// Members in the synthetic server unless given on the command line.
const DEFAULT_MEMBERS: usize = 50_000;

fn snapshot(members: usize, generation: u64) -> DiscordSnapshot {
    let id = |n: u64| Snowflake::parse(&n.to_string()).expect("digits");
    let roles = [
        "@everyone",
        "GM",
        "Officer",
        "Veteran",
        "Member",
        "Initiate",
        "Raider",
        "Friends",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| WireRole {
        id: id(900 + i as u64),
        name: (*name).to_owned(),
        position: i as i64,
    })
    .collect();
    let joined = "2022-06-01T10:00:00Z".parse().expect("a timestamp");
    let members = (0..members as u64)
        .map(|i| {
            // Generation 1 changes 1 % of the members' roles, drops 1 % and adds 1 %.
            let user_id = if generation > 0 && i % 100 == 1 {
                9_000_000_000 + i
            } else {
                100_000_000 + i
            };
            let role = if generation > 0 && i % 100 == 2 {
                903
            } else {
                [904, 905, 907, 902][(i % 4) as usize]
            };
            WireMember {
                user: WireUser {
                    id: id(user_id),
                    username: format!("member_{i}"),
                    global_name: i.is_multiple_of(3).then(|| format!("Member {i}")),
                    bot: i.is_multiple_of(500),
                },
                nick: i.is_multiple_of(5).then(|| format!("Nick{i}")),
                roles: vec![id(role), id(906)],
                joined_at: Some(joined),
            }
        })
        .collect();
    DiscordSnapshot { roles, members }
}

fn vm_hwm_kib() -> Option<u64> {
    guild_sync::bench::peak_rss().map(|bytes| bytes / 1024)
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

    let baseline = vm_hwm_kib();
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
        let stats = apply_member_list(
            &db.pool,
            prepared,
            taken_at,
            guard,
            EventSource::unrecorded(),
        )
        .await?;
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
        Some(kib) => println!(
            "  peak memory (VmHWM): {:.1} MiB (before building the two {members}-member lists: {:.1} MiB)",
            kib as f64 / 1024.0,
            baseline.unwrap_or(0) as f64 / 1024.0
        ),
        None => println!("  peak memory (VmHWM): unavailable"),
    }
    Ok(())
}
