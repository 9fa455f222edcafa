//! Shared helpers of the Battle.net tests: members and profiles in the real wire shapes (SPEC §4),
//! parsed with the product's own parsers.
#![allow(dead_code)]

use guild_sync::blizzard_client::{FetchedRoster, ProfileFetch, parse_profile, parse_roster};
use guild_sync::config::RemovalGuard;
use serde_json::{Value, json};

/// The guild's home realm in these tests.
pub const REALM: &str = "senjin";

/// One roster member and what its profile says.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: i64,
    pub name: String,
    pub realm: String,
    /// Blizzard class id (`playable_class.id`).
    pub class: i64,
    pub class_name: String,
    pub rank: i64,
    /// (Blizzard spec id, name); `None` = the profile has no `active_spec`.
    pub spec: Option<(i64, String)>,
    pub item_level: i32,
    /// `None` = the profile is a 404.
    pub has_profile: bool,
}

pub fn member(id: i64, name: &str) -> Member {
    Member {
        id,
        name: name.into(),
        realm: REALM.into(),
        class: 11,
        class_name: "Druid".into(),
        rank: 3,
        spec: Some((102, "Balance".into())),
        item_level: 620,
        has_profile: true,
    }
}

pub fn roster_json(members: &[Member]) -> Value {
    json!({
        "_links": {"self": {"href": "ignored"}},
        "guild": {"name": "Pull All The Things", "id": 1, "realm": {"id": 1, "slug": REALM, "name": "Sen'jin"}},
        "members": members.iter().map(|m| json!({
            "character": {
                "id": m.id, "name": m.name, "level": 80,
                "realm": {"id": 1, "slug": m.realm},
                "playable_class": {"id": m.class},
                "playable_race": {"id": 4}
            },
            "rank": m.rank
        })).collect::<Vec<_>>()
    })
}

pub fn profile_json(m: &Member) -> Value {
    let mut profile = json!({
        "id": m.id,
        "name": m.name,
        "gender": {"type": "FEMALE", "name": "Female"},
        "realm": {"id": 1, "slug": m.realm, "name": if m.realm == REALM { "Sen'jin".to_string() } else { m.realm.clone() }},
        "character_class": {"id": m.class, "name": m.class_name},
        "level": 80,
        "achievement_points": 12345,
        "last_login_timestamp": 1_763_000_000_000i64,
        "equipped_item_level": m.item_level,
        "average_item_level": m.item_level + 2
    });
    if let Some((id, name)) = &m.spec {
        profile["active_spec"] = json!({"id": id, "name": name});
    }
    profile
}

/// The roster and profiles as a fetch would return them.
pub fn fetched(members: &[Member]) -> FetchedRoster {
    let roster = parse_roster(roster_json(members).to_string().as_bytes()).unwrap();
    let profiles = members
        .iter()
        .map(|m| {
            if m.has_profile {
                ProfileFetch::Found(Box::new(
                    parse_profile(profile_json(m).to_string().as_bytes()).unwrap(),
                ))
            } else {
                ProfileFetch::NotFound
            }
        })
        .collect();
    FetchedRoster { roster, profiles }
}

/// Write `members` as a `--from-dir` directory.
pub fn write_dir(dir: &std::path::Path, members: &[Member]) {
    std::fs::write(dir.join("roster.json"), roster_json(members).to_string()).unwrap();
    for m in members.iter().filter(|m| m.has_profile) {
        let path = guild_sync::blizzard_client::profile_file(dir, &m.realm, &m.name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, profile_json(m).to_string()).unwrap();
    }
}

/// The default guard: at most half the guild at once.
pub fn guard() -> RemovalGuard {
    RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    }
}
