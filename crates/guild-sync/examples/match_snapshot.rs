//! Write the match snapshot of the decoy-rich synthetic guild (what the identity engine loads
//! from it on an empty database) as JSON, for `guild-sync-core`'s `plan_snapshot` example: the
//! pure planner can then be timed and profiled (callgrind) without a database or this crate.
//!
//!     cargo run -p guild-sync --example match_snapshot -- 1000 50000 /tmp/snapshot-50000.json
//!
//! The seed is `guild-sync bench`'s, so the guild is the one the bench matches.

use guild_sync::bench::synthetic::{Decoys, GuildSize, generate};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [characters, discord_members, path] = args.as_slice() else {
        anyhow::bail!("usage: match_snapshot CHARACTERS DISCORD_MEMBERS OUT.json");
    };
    let size = GuildSize {
        characters: characters.parse()?,
        discord_members: discord_members.parse()?,
    };
    let snapshot = generate(size, guild_sync::bench::SEED, Decoys::Rich).snapshot();
    let characters: Vec<_> = snapshot
        .characters
        .iter()
        .map(|c| {
            json!({
                "id": c.id, "name": c.name, "realm_slug": c.realm_slug,
                "guild_note": c.guild_note, "officer_note": c.officer_note,
                "rank_level": c.rank_level,
            })
        })
        .collect();
    let users: Vec<_> = snapshot
        .discord_users
        .iter()
        .map(|u| {
            json!({
                "id": u.id, "username": u.username, "display_name": u.display_name,
                "global_name": u.global_name, "has_guild_role": u.has_guild_role,
                "player_id": u.player_id,
            })
        })
        .collect();
    let out = json!({ "characters": characters, "discord_users": users });
    std::fs::write(path, serde_json::to_vec(&out)?)?;
    println!(
        "{} characters, {} Discord users -> {path}",
        snapshot.characters.len(),
        snapshot.discord_users.len()
    );
    Ok(())
}
