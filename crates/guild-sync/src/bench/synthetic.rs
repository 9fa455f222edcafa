//! A synthetic guild of any size, written in the real input formats (a Battle.net roster
//! directory, a Discord member file, a PATTSync SavedVariables export), so a benchmark drives the
//! same parsers and stages production does.
//!
//! The shape is what a real guild looks like to the matcher: players with one to four
//! characters, alts whose notes name their main, Discord accounts that match a main by name,
//! by a note hint or only approximately, characters nobody claims, and a crowd of Discord guests
//! without a guild role. Deterministic for a given seed.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Connected realms of the synthetic guild: (slug, display name).
const REALMS: [(&str, &str); 4] = [
    ("area-52", "Area 52"),
    ("bleeding-hollow", "Bleeding Hollow"),
    ("senjin", "Sen'jin"),
    ("zuljin", "Zul'jin"),
];

/// Blizzard spec ids per Blizzard class id (index 0 = class 1, Warrior).
const SPECS: [&[i64]; 13] = [
    &[71, 72, 73],
    &[65, 66, 70],
    &[253, 254, 255],
    &[259, 260, 261],
    &[256, 257, 258],
    &[250, 251, 252],
    &[262, 263, 264],
    &[62, 63, 64],
    &[265, 266, 267],
    &[268, 269, 270],
    &[102, 103, 104, 105],
    &[577, 581, 1480],
    &[1467, 1468, 1473],
];

const SYLLABLES: [&str; 40] = [
    "ka", "el", "thor", "ra", "mor", "vin", "dra", "zul", "bel", "gor", "lin", "sha", "ri", "an",
    "tor", "ven", "ash", "lo", "mi", "na", "quel", "xa", "ye", "bru", "dun", "fen", "gal", "hel",
    "ith", "jor", "kel", "lyr", "mael", "nor", "ose", "pyr", "rho", "syl", "tae", "ul",
];

/// Discord role names for the five guild ranks, by in-game rank index 0..=4.
const RANK_ROLES: [&str; 5] = ["GM", "Officer", "Veteran", "Member", "Initiate"];

/// How big the synthetic guild is.
#[derive(Debug, Clone, Copy)]
pub struct GuildSize {
    pub characters: usize,
    pub discord_members: usize,
}

/// What was generated (for the benchmark's header).
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub players: usize,
    pub characters: usize,
    pub discord_members: usize,
    pub guild_role_members: usize,
}

struct Character {
    id: i64,
    name: String,
    realm: usize,
    class_id: i64,
    spec_id: i64,
    rank: i64,
    note: String,
    officer_note: String,
}

struct Member {
    id: u64,
    username: String,
    global_name: Option<String>,
    nick: Option<String>,
    roles: Vec<&'static str>,
    bot: bool,
}

/// Write the guild under `dir`: `blizzard/` (roster + profiles), `discord.json`, `PATTSync.lua`.
pub fn write_guild(dir: &Path, size: GuildSize, seed: u64) -> Result<Generated> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut used = HashSet::new();
    let mut characters = Vec::with_capacity(size.characters);
    let mut members: Vec<Member> = Vec::with_capacity(size.discord_members);
    let mut generated = Generated::default();
    let mut next_member_id: u64 = 100_000_000_000_000_000;

    while characters.len() < size.characters {
        generated.players += 1;
        let alts = rng
            .random_range(0..4usize)
            .min(size.characters - characters.len() - 1);
        let rank = match generated.players {
            1 => 0,
            n if n % 40 == 0 => 1,
            _ => rng.random_range(2..=4),
        };
        let main_name = unique_name(&mut rng, &mut used);
        let main_index = characters.len();
        characters.push(character(
            &mut rng,
            characters.len(),
            main_name.clone(),
            rank,
        ));
        for _ in 0..alts {
            let name = unique_name(&mut rng, &mut used);
            let mut alt = character(&mut rng, characters.len(), name, rank.max(3));
            alt.note = match rng.random_range(0..4) {
                0 => format!("alt of {main_name}"),
                1 => format!("{main_name}'s alt"),
                2 => format!("Main: {main_name}"),
                _ => format!("alt for {main_name}"),
            };
            characters.push(alt);
        }

        // How this player's Discord account can be found, in the proportions real guilds show.
        let role = if rng.random_bool(0.05) {
            RANK_ROLES[rng.random_range(2..5)] // a rank the officers forgot to update
        } else {
            RANK_ROLES[rank as usize]
        };
        let id = next_member_id;
        next_member_id += rng.random_range(1..1_000_000);
        let lower = main_name.to_lowercase();
        let member = match rng.random_range(0..10) {
            0..=4 => Some(member(id, lower, None, vec![role])),
            5 | 6 => {
                let handle = format!(
                    "{}{}",
                    unique_name(&mut rng, &mut used).to_lowercase(),
                    rng.random_range(1..99)
                );
                characters[main_index].note = format!("Discord: {handle}");
                Some(member(id, handle, None, vec![role]))
            }
            7 => {
                let handle = format!(
                    "{}_{}",
                    unique_name(&mut rng, &mut used).to_lowercase(),
                    rng.random_range(1..99)
                );
                characters[main_index].officer_note = format!("DC: {handle} - raid team");
                Some(member(id, handle, None, vec![role]))
            }
            8 => Some(member(
                id,
                format!("{lower}x"),
                Some(format!("{main_name}x")),
                vec![role],
            )),
            _ => None, // plays without being on Discord
        };
        if let Some(member) = member
            && members.len() < size.discord_members
        {
            generated.guild_role_members += 1;
            members.push(member);
        }
    }

    // Discord members who hold a guild role but whose characters the roster does not show.
    let orphans = (size.characters / 50).min(size.discord_members.saturating_sub(members.len()));
    for _ in 0..orphans {
        let id = next_member_id;
        next_member_id += rng.random_range(1..1_000_000);
        let name = unique_name(&mut rng, &mut used).to_lowercase();
        members.push(member(id, name, None, vec!["Member"]));
        generated.guild_role_members += 1;
    }
    // Guests and bots fill the server.
    while members.len() < size.discord_members {
        let id = next_member_id;
        next_member_id += rng.random_range(1..1_000_000);
        // Guests are many (tens of thousands): their names come from the syllables plus a
        // counter, so they never exhaust the pool of unique character names.
        let name = format!("{}{}", random_name(&mut rng).to_lowercase(), members.len());
        let roles = if rng.random_bool(0.1) {
            vec!["Pug"]
        } else {
            vec![]
        };
        let mut guest = member(id, name, None, roles);
        guest.bot = rng.random_bool(0.002);
        if rng.random_bool(0.3) {
            guest.nick = Some(random_name(&mut rng));
        }
        members.push(guest);
    }
    generated.characters = characters.len();
    generated.discord_members = members.len();

    write_blizzard(&dir.join("blizzard"), &characters)?;
    write_discord(&dir.join("discord.json"), &members)?;
    write_addon(&dir.join("PATTSync.lua"), &characters)?;
    Ok(generated)
}

/// A name of two or three syllables, capitalised, at most 12 bytes (WoW's limit).
fn random_name(rng: &mut StdRng) -> String {
    loop {
        let parts = rng.random_range(2..=3);
        let mut name = String::new();
        for _ in 0..parts {
            name.push_str(SYLLABLES[rng.random_range(0..SYLLABLES.len())]);
        }
        if name.len() <= 12 {
            let mut chars = name.chars();
            if let Some(first) = chars.next() {
                return first.to_uppercase().chain(chars).collect();
            }
        }
    }
}

/// A name no other character or Discord handle of the guild has. Only characters, their
/// players' handles and orphan members draw these (a few thousand of the ~66,000 names), so
/// drawing until an unused one comes up stays quick.
fn unique_name(rng: &mut StdRng, used: &mut HashSet<String>) -> String {
    loop {
        let name = random_name(rng);
        if used.insert(name.to_lowercase()) {
            return name;
        }
    }
}

fn character(rng: &mut StdRng, index: usize, name: String, rank: i64) -> Character {
    let class_id = rng.random_range(1..=13);
    let specs = SPECS[class_id as usize - 1];
    Character {
        id: 10_000_000 + index as i64 * 7,
        name,
        realm: rng.random_range(0..REALMS.len()),
        class_id,
        spec_id: specs[rng.random_range(0..specs.len())],
        rank,
        note: String::new(),
        officer_note: String::new(),
    }
}

fn member(
    id: u64,
    username: String,
    global_name: Option<String>,
    roles: Vec<&'static str>,
) -> Member {
    Member {
        id,
        username,
        global_name,
        nick: None,
        roles,
        bot: false,
    }
}

fn write_blizzard(dir: &Path, characters: &[Character]) -> Result<()> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let roster = json!({
        "guild": {"name": "Synthetic", "realm": {"slug": REALMS[0].0, "name": REALMS[0].1}},
        "members": characters.iter().map(|c| json!({
            "character": {
                "id": c.id,
                "name": c.name,
                "level": 80,
                "realm": {"id": 3676 + c.realm, "slug": REALMS[c.realm].0},
                "playable_class": {"id": c.class_id},
            },
            "rank": c.rank,
        })).collect::<Vec<Value>>(),
    });
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(dir.join("roster.json"), serde_json::to_vec(&roster)?)?;
    for (slug, _) in REALMS {
        fs::create_dir_all(dir.join("profiles").join(slug))?;
    }
    for (i, c) in characters.iter().enumerate() {
        // One in twelve long-inactive characters has no profile (Battle.net answers 404).
        if i % 12 == 11 {
            continue;
        }
        let (slug, realm_name) = REALMS[c.realm];
        let days_ago = if i % 9 == 0 {
            45 + (i % 60) as i64
        } else {
            (i % 20) as i64
        };
        let profile = json!({
            "id": c.id,
            "name": c.name,
            "realm": {"slug": slug, "name": realm_name},
            "character_class": {"id": c.class_id},
            "active_spec": {"id": c.spec_id},
            "level": 80,
            "achievement_points": 10_000 + (i * 37 % 20_000),
            "last_login_timestamp": now_ms - days_ago * 86_400_000,
            "equipped_item_level": 600 + (i % 60),
        });
        let path = dir
            .join("profiles")
            .join(slug)
            .join(format!("{}.json", c.name.to_lowercase()));
        fs::write(path, serde_json::to_vec(&profile)?)?;
    }
    Ok(())
}

fn write_discord(path: &Path, members: &[Member]) -> Result<()> {
    let roles: Vec<(&str, u64)> = RANK_ROLES
        .iter()
        .copied()
        .chain(["Pug"])
        .enumerate()
        .map(|(i, name)| (name, 900_000_000_000_000_000 + i as u64))
        .collect();
    let role_id = |name: &str| {
        roles
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| id.to_string())
            .expect("every generated role is declared")
    };
    let doc = json!({
        "roles": roles.iter().enumerate().map(|(i, (name, id))| json!({
            "id": id.to_string(), "name": name, "position": 10 - i,
        })).collect::<Vec<Value>>(),
        "members": members.iter().map(|m| json!({
            "user": {"id": m.id.to_string(), "username": m.username, "global_name": m.global_name, "bot": m.bot},
            "nick": m.nick,
            "roles": m.roles.iter().map(|r| role_id(r)).collect::<Vec<String>>(),
            "joined_at": "2024-03-01T12:00:00.000000+00:00",
        })).collect::<Vec<Value>>(),
    });
    fs::write(path, serde_json::to_vec(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_addon(path: &Path, characters: &[Character]) -> Result<()> {
    const CLASS_NAMES: [&str; 13] = [
        "Warrior",
        "Paladin",
        "Hunter",
        "Rogue",
        "Priest",
        "Death Knight",
        "Shaman",
        "Mage",
        "Warlock",
        "Monk",
        "Druid",
        "Demon Hunter",
        "Evoker",
    ];
    const RANK_NAMES: [&str; 5] = ["Guild Leader", "Officer", "Veteran", "Member", "Initiate"];
    let export_time = chrono::Utc::now().timestamp();
    let mut out = String::with_capacity(characters.len() * 400);
    let _ = writeln!(out, "\nPATTSyncDB = {{");
    let _ = writeln!(out, "\t[\"lastExportTime\"] = {export_time},");
    let _ = writeln!(out, "\t[\"totalExports\"] = 3,");
    let _ = writeln!(out, "\t[\"lastExport\"] = {{");
    let _ = writeln!(out, "\t\t[\"exportTime\"] = {export_time},");
    let _ = writeln!(out, "\t\t[\"addonVersion\"] = \"1.0.0\",");
    let _ = writeln!(out, "\t\t[\"guildName\"] = \"Synthetic\",");
    let _ = writeln!(out, "\t\t[\"memberCount\"] = {},", characters.len());
    let _ = writeln!(out, "\t\t[\"characters\"] = {{");
    for (i, c) in characters.iter().enumerate() {
        let realm: String = REALMS[c.realm]
            .1
            .chars()
            .filter(|ch| ch.is_ascii_alphanumeric())
            .collect();
        let class = CLASS_NAMES[c.class_id as usize - 1];
        let rank_name = RANK_NAMES.get(c.rank as usize).copied().unwrap_or("Member");
        let _ = writeln!(out, "\t\t\t{{");
        let _ = writeln!(out, "\t\t\t\t[\"name\"] = {},", lua_string(&c.name));
        let _ = writeln!(out, "\t\t\t\t[\"realm\"] = {},", lua_string(&realm));
        let _ = writeln!(out, "\t\t\t\t[\"class\"] = {},", lua_string(class));
        let _ = writeln!(
            out,
            "\t\t\t\t[\"classFile\"] = {},",
            lua_string(&class.to_uppercase().replace(' ', ""))
        );
        let _ = writeln!(out, "\t\t\t\t[\"level\"] = 80,");
        let _ = writeln!(out, "\t\t\t\t[\"rank\"] = {},", c.rank);
        let _ = writeln!(out, "\t\t\t\t[\"rankName\"] = {},", lua_string(rank_name));
        let _ = writeln!(out, "\t\t\t\t[\"zone\"] = \"Dornogal\",");
        let _ = writeln!(out, "\t\t\t\t[\"note\"] = {},", lua_string(&c.note));
        let _ = writeln!(
            out,
            "\t\t\t\t[\"officerNote\"] = {},",
            lua_string(&c.officer_note)
        );
        let _ = writeln!(out, "\t\t\t\t[\"isOnline\"] = false,");
        let _ = writeln!(
            out,
            "\t\t\t\t[\"lastOnline\"] = {},",
            export_time - 3600 * (i as i64 % 48)
        );
        let _ = writeln!(
            out,
            "\t\t\t\t[\"achievementPoints\"] = {},",
            10_000 + i * 37 % 20_000
        );
        let _ = writeln!(out, "\t\t\t}}, -- [{}]", i + 1);
    }
    let _ = writeln!(out, "\t\t}},");
    let _ = writeln!(out, "\t}},");
    let _ = writeln!(out, "}}");
    fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(seed: u64) -> (tempfile::TempDir, Generated) {
        let dir = tempfile::tempdir().unwrap();
        let size = GuildSize {
            characters: 120,
            discord_members: 400,
        };
        let generated = write_guild(dir.path(), size, seed).unwrap();
        (dir, generated)
    }

    #[test]
    fn the_guild_has_the_requested_size_in_the_real_formats() {
        let (dir, generated) = generate(7);
        assert_eq!(generated.characters, 120);
        assert_eq!(generated.discord_members, 400);
        let roster: Value =
            serde_json::from_slice(&fs::read(dir.path().join("blizzard/roster.json")).unwrap())
                .unwrap();
        assert_eq!(roster["members"].as_array().unwrap().len(), 120);
        let discord: Value =
            serde_json::from_slice(&fs::read(dir.path().join("discord.json")).unwrap()).unwrap();
        let members = discord["members"].as_array().unwrap();
        assert_eq!(members.len(), 400);
        let with_guild_role = members
            .iter()
            .filter(|m| !m["roles"].as_array().unwrap().is_empty())
            .count();
        assert!(with_guild_role >= generated.guild_role_members);
        let lua = fs::read_to_string(dir.path().join("PATTSync.lua")).unwrap();
        assert!(lua.contains("PATTSyncDB = {"));
        assert_eq!(lua.matches("[\"officerNote\"]").count(), 120);
        // Some profiles are missing on purpose (long-inactive characters answer 404).
        let profiles: usize = REALMS
            .iter()
            .map(|(slug, _)| {
                fs::read_dir(dir.path().join("blizzard/profiles").join(slug))
                    .unwrap()
                    .count()
            })
            .sum();
        assert!(profiles < 120 && profiles > 100, "{profiles}");
    }

    #[test]
    fn the_same_seed_gives_the_same_guild() {
        let (a, _) = generate(11);
        let (b, _) = generate(11);
        let (c, _) = generate(12);
        let read = |d: &tempfile::TempDir| fs::read(d.path().join("discord.json")).unwrap();
        assert_eq!(read(&a), read(&b));
        assert_ne!(read(&a), read(&c));
    }
}
