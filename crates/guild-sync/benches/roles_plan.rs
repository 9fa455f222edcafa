//! Role plan benchmark: the pure plan (`guild_sync_core::roles::plan_roles`) for 50,000 present
//! Discord members, most linked, a quarter needing a change, some departed (inside and past the
//! grace period), some unlinked. The target is < 200 ms for 50,000 members.
//!
//!     cargo bench -p guild-sync --bench roles_plan
//!
//! `ROLES_BENCH_MEMBERS=50000` changes the size.

use std::time::{Duration, Instant};

use chrono::Utc;
use guild_sync_core::roles::{MemberRoles, PlayerRanks, RolePolicy, plan_roles};

fn main() {
    let size: usize = std::env::var("ROLES_BENCH_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let now = Utc::now();
    let policy = RolePolicy::new(
        vec![
            (5, "GM".into()),
            (4, "Officer".into()),
            (3, "Veteran".into()),
            (2, "Member".into()),
            (1, "Initiate".into()),
        ],
        Some("Former Member".into()),
        7,
    );
    let names = ["GM", "Officer", "Veteran", "Member", "Initiate"];
    // Deterministic mix: every 10th unlinked, every 4th holding the wrong rank role, every 50th
    // departed (half of them past the grace period), everyone with two unmanaged roles.
    let members: Vec<MemberRoles> = (0..size)
        .map(|i| {
            let level = (i % 5) as i32 + 1;
            let right = names[5 - level as usize];
            let held = if i % 4 == 0 { names[i % 5 / 2] } else { right };
            let player = (i % 10 != 0).then(|| {
                let departed = i % 50 == 1;
                PlayerRanks {
                    player_name: format!("Player{i}"),
                    present_rank_levels: if departed { vec![] } else { vec![level, 1] },
                    present_characters: if departed { 0 } else { 2 },
                    last_departure: departed
                        .then(|| now - chrono::Duration::days(if i % 100 == 1 { 3 } else { 30 })),
                }
            });
            MemberRoles {
                discord_id: (100_000_000_000_000_000u64 + i as u64).to_string(),
                display_name: format!("Member{i}"),
                roles: vec![held.to_owned(), "Raider".into(), "Mythic+".into()],
                player,
            }
        })
        .collect();

    let mut runs: Vec<Duration> = Vec::new();
    let mut plan = None;
    for _ in 0..7 {
        let started = Instant::now();
        plan = Some(plan_roles(&policy, &members, now));
        runs.push(started.elapsed());
    }
    runs.sort();
    let plan = plan.expect("ran at least once");
    println!(
        "roles plan: {size} members, {} linked, {} changes for {} members: median {:.1} ms (min {:.1}, max {:.1}) over {} runs; target < 200 ms",
        plan.linked_members,
        plan.changes.len(),
        plan.members_changed,
        runs[runs.len() / 2].as_secs_f64() * 1e3,
        runs[0].as_secs_f64() * 1e3,
        runs[runs.len() - 1].as_secs_f64() * 1e3,
        runs.len()
    );
}
