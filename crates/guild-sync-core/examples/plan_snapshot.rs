//! Run the pure match planner on a snapshot written by `guild-sync`'s `match_snapshot` example
//! and print each run's wall time and a digest of the plan. Exists to time and profile the
//! planner alone (no database, no generator in the measured process) and to check that a faster
//! planner decides exactly the same: equal digests mean equal plans.
//!
//!     cargo run --release -p guild-sync-core --example plan_snapshot -- SNAPSHOT.json [RUNS]
//!
//! With `RUNS` = 0 it only loads the snapshot: under `valgrind --tool=callgrind`, the planner's
//! instruction count is the difference between `RUNS` = 1 and `RUNS` = 0.

use std::time::Instant;

use guild_sync_core::matching::{PresentDiscordUser, Snapshot, UnlinkedCharacter, plan};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn optional(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_string)
}

fn load(path: &str) -> Snapshot {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let v: Value = serde_json::from_slice(&raw).expect("a match_snapshot JSON file");
    let list = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    Snapshot {
        characters: list("characters")
            .iter()
            .map(|c| UnlinkedCharacter {
                id: c["id"].as_i64().expect("id"),
                name: text(c, "name"),
                realm_slug: text(c, "realm_slug"),
                guild_note: optional(c, "guild_note"),
                officer_note: optional(c, "officer_note"),
                rank_level: c["rank_level"].as_i64().map(|r| r as i32),
            })
            .collect(),
        discord_users: list("discord_users")
            .iter()
            .map(|u| PresentDiscordUser {
                id: u["id"].as_i64().expect("id"),
                username: text(u, "username"),
                display_name: optional(u, "display_name"),
                global_name: optional(u, "global_name"),
                has_guild_role: u["has_guild_role"].as_bool().unwrap_or(false),
                player_id: u["player_id"].as_i64(),
            })
            .collect(),
        players: vec![],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: plan_snapshot SNAPSHOT.json [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.get(1).map_or(1, |r| r.parse().expect("RUNS"));
    let snapshot = load(path);
    println!(
        "{} characters × {} Discord users, {} rayon threads",
        snapshot.characters.len(),
        snapshot.discord_users.len(),
        rayon::current_num_threads()
    );
    for run in 1..=runs {
        let started = Instant::now();
        let plan = plan(&snapshot);
        let elapsed = started.elapsed();
        let digest = Sha256::digest(serde_json::to_vec(&plan).expect("a plan serializes"));
        println!(
            "run {run}: plan {:.1} ms — {} links, {} suggestions, {} skipped, {} unlinked, digest {}",
            elapsed.as_secs_f64() * 1e3,
            plan.links.len(),
            plan.suggestions.len(),
            plan.skipped.len(),
            plan.unlinked,
            &hex::encode(digest)[..16]
        );
    }
}
