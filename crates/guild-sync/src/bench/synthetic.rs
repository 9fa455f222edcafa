//! A synthetic guild of any size, written in the real input formats (a Battle.net roster
//! directory, a Discord member file, a PATTSync SavedVariables export), so a benchmark drives the
//! same parsers and stages production does.
//!
//! The shape is what a real guild looks like to the matcher: players with one to four
//! characters, alts whose notes name their main, Discord accounts that match a main by name,
//! by a note hint or only approximately, characters nobody claims, and a crowd of Discord guests
//! without a guild role. Deterministic for a given seed.
//!
//! The decoy-rich form ([`Decoys::Rich`], what `guild-sync bench` writes) adds what makes a
//! matcher link wrongly: near-miss names of other players' characters, accented twins, display
//! names listing characters, one name on two realms, guests named like characters, and
//! impersonators. It records the true owner of every character and member ([`Truth`],
//! `truth.json`), so `crate::bench::quality` can score the links made.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use guild_sync_core::fuzzy::FuzzyIndex;
use guild_sync_core::matching::FUZZY_LINK_THRESHOLD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
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

/// What was generated (for the benchmark's header), with the truth to score links against.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub players: usize,
    pub characters: usize,
    pub discord_members: usize,
    pub guild_role_members: usize,
    /// Who really owns what; also written to `truth.json`.
    pub truth: Truth,
}

/// The true owner (a player number) of every character and Discord member. A member with no
/// owner is nobody's: a guest, a bot or an impersonator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    pub characters: Vec<TrueCharacter>,
    pub members: Vec<TrueMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrueCharacter {
    pub name: String,
    pub realm_slug: String,
    pub owner: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrueMember {
    pub discord_id: String,
    pub owner: Option<usize>,
}

/// Which generator: the plain guild, or the same with decoys in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoys {
    /// Only honest evidence: what `guild-sync bench` used before issue 14.
    None,
    /// About a sixth of the guild are decoys: near-miss names of other players' characters,
    /// accented twins, display names listing characters, the same name on two realms, guests
    /// without a guild role named like characters, and impersonators (a nickname copying a
    /// senior character, look-alike letters, invisible characters).
    Rich,
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
    owner: usize,
}

struct Member {
    id: u64,
    username: String,
    global_name: Option<String>,
    nick: Option<String>,
    roles: Vec<&'static str>,
    bot: bool,
    owner: Option<usize>,
}

/// A generated guild in memory, before it is written in the real formats.
pub struct Guild {
    characters: Vec<Character>,
    members: Vec<Member>,
    generated: Generated,
}

/// Write the decoy-rich guild under `dir`: `blizzard/` (roster + profiles), `discord.json`,
/// `PATTSync.lua` and `truth.json`. `GUILD_SYNC_BENCH_DECOYS=none` writes the plain guild
/// instead, to compare with figures taken before issue 14.
pub fn write_guild(dir: &Path, size: GuildSize, seed: u64) -> Result<Guild> {
    let decoys = match std::env::var("GUILD_SYNC_BENCH_DECOYS").as_deref() {
        Ok("none") => Decoys::None,
        _ => Decoys::Rich,
    };
    let guild = generate(size, seed, decoys);
    guild.write(dir)?;
    Ok(guild)
}

/// How often each change of [`Guild::later`] happens: one item in `n`, and the prefixes of the
/// new names (a later period's names must differ from an earlier one's, or nothing changes).
struct ChangeRates {
    rank_changed: usize,
    left_guild: usize,
    renamed: usize,
    discord_renamed: usize,
    left_discord: usize,
    new_name: &'static str,
    new_nick: &'static str,
}

/// A week of changes ([`Guild::a_week_later`]).
const WEEK: ChangeRates = ChangeRates {
    rank_changed: 20,
    left_guild: 50,
    renamed: 100,
    discord_renamed: 30,
    left_discord: 50,
    new_name: "Renamed",
    new_nick: "Away",
};

/// Six hours of changes ([`Guild::six_hours_later`]).
const SIX_HOURS: ChangeRates = ChangeRates {
    rank_changed: 500,
    left_guild: 1000,
    renamed: 1000,
    discord_renamed: 840,
    left_discord: 1500,
    new_name: "Moved",
    new_nick: "Back",
};

/// What [`Guild::a_week_later`] or [`Guild::six_hours_later`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeekChanges {
    /// Characters whose guild rank moved by one (promoted or demoted).
    pub rank_changed: usize,
    /// Characters gone from the roster.
    pub left_guild: usize,
    /// Characters with a new name (same Blizzard id).
    pub renamed: usize,
    /// Discord members with a new nickname.
    pub discord_renamed: usize,
    /// Discord members gone from the server.
    pub left_discord: usize,
}

/// Player-by-player state of the generator.
struct Builder {
    rng: StdRng,
    used: HashSet<String>,
    characters: Vec<Character>,
    members: Vec<Member>,
    generated: Generated,
    next_member_id: u64,
    discord_members: usize,
    /// (owner, main character index) of players found by their exact username: whose
    /// characters near-miss decoys imitate.
    exact_mains: Vec<usize>,
}

/// Generate a guild of `size`; the same seed always gives the same guild.
pub fn generate(size: GuildSize, seed: u64, decoys: Decoys) -> Guild {
    let mut b = Builder {
        rng: StdRng::seed_from_u64(seed),
        used: HashSet::new(),
        characters: Vec::with_capacity(size.characters),
        members: Vec::with_capacity(size.discord_members),
        generated: Generated::default(),
        next_member_id: 100_000_000_000_000_000,
        discord_members: size.discord_members,
        exact_mains: Vec::new(),
    };
    let honest = match decoys {
        Decoys::None => size.characters,
        Decoys::Rich => size.characters - size.characters / 6,
    };
    while b.characters.len() < honest {
        b.honest_player(size.characters);
    }
    let mut kind = 0usize;
    while b.characters.len() < size.characters {
        b.decoy(kind, size.characters);
        kind += 1;
    }
    b.orphans_and_guests(size.characters);
    let Builder {
        characters,
        members,
        mut generated,
        ..
    } = b;
    generated.characters = characters.len();
    generated.discord_members = members.len();
    generated.truth = Truth {
        characters: characters
            .iter()
            .map(|c| TrueCharacter {
                name: c.name.clone(),
                realm_slug: REALMS[c.realm].0.to_string(),
                owner: c.owner,
            })
            .collect(),
        members: members
            .iter()
            .map(|m| TrueMember {
                discord_id: m.id.to_string(),
                owner: m.owner,
            })
            .collect(),
    };
    Guild {
        characters,
        members,
        generated,
    }
}

impl Builder {
    fn new_owner(&mut self) -> usize {
        self.generated.players += 1;
        self.generated.players - 1
    }

    fn member_id(&mut self) -> u64 {
        let id = self.next_member_id;
        self.next_member_id += self.rng.random_range(1..1_000_000);
        id
    }

    fn push_member(&mut self, member: Member) -> bool {
        if self.members.len() >= self.discord_members {
            return false;
        }
        if member.roles.iter().any(|r| RANK_ROLES.contains(r)) {
            self.generated.guild_role_members += 1;
        }
        self.members.push(member);
        true
    }

    fn push_character(&mut self, name: String, rank: i64, owner: usize) -> usize {
        let mut c = character(&mut self.rng, self.characters.len(), name, rank);
        c.owner = owner;
        self.characters.push(c);
        self.characters.len() - 1
    }

    /// Alts of `main` whose notes name it, up to `alts`, within `limit` characters in all.
    fn alts(&mut self, main: usize, alts: usize, limit: usize, owner: usize) {
        let main_name = self.characters[main].name.clone();
        let rank = self.characters[main].rank;
        for _ in 0..alts.min(limit.saturating_sub(self.characters.len())) {
            let name = unique_name(&mut self.rng, &mut self.used);
            let alt = self.push_character(name, rank.max(3), owner);
            self.characters[alt].note = match self.rng.random_range(0..4) {
                0 => format!("alt of {main_name}"),
                1 => format!("{main_name}'s alt"),
                2 => format!("Main: {main_name}"),
                _ => format!("alt for {main_name}"),
            };
        }
    }

    /// A player as the plain generator makes them: a main, alts naming it, and a Discord account
    /// found by exact name, a note hint, a name with a suffix, or not at all.
    fn honest_player(&mut self, limit: usize) {
        let owner = self.new_owner();
        let rank = match owner {
            0 => 0,
            n if (n + 1) % 40 == 0 => 1,
            _ => self.rng.random_range(2..=4),
        };
        let alts = self
            .rng
            .random_range(0..4usize)
            .min(limit - self.characters.len() - 1);
        let main_name = unique_name(&mut self.rng, &mut self.used);
        let main = self.push_character(main_name.clone(), rank, owner);
        self.alts(main, alts, limit, owner);

        // How this player's Discord account can be found, in the proportions real guilds show.
        let role = if self.rng.random_bool(0.05) {
            RANK_ROLES[self.rng.random_range(2..5)] // a rank the officers forgot to update
        } else {
            RANK_ROLES[rank as usize]
        };
        let id = self.member_id();
        let lower = main_name.to_lowercase();
        let mut exact = false;
        let member = match self.rng.random_range(0..10) {
            0..=4 => {
                exact = true;
                Some(member(id, lower, None, vec![role]))
            }
            5 | 6 => {
                let handle = format!(
                    "{}{}",
                    unique_name(&mut self.rng, &mut self.used).to_lowercase(),
                    self.rng.random_range(1..99)
                );
                self.characters[main].note = format!("Discord: {handle}");
                Some(member(id, handle, None, vec![role]))
            }
            7 => {
                let handle = format!(
                    "{}_{}",
                    unique_name(&mut self.rng, &mut self.used).to_lowercase(),
                    self.rng.random_range(1..99)
                );
                self.characters[main].officer_note = format!("DC: {handle} - raid team");
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
        if let Some(mut member) = member {
            member.owner = Some(owner);
            if self.push_member(member) && exact {
                self.exact_mains.push(main);
            }
        }
    }

    /// One decoy player (or member) of the kind `kind` selects, in rotation.
    fn decoy(&mut self, kind: usize, limit: usize) {
        match kind % 8 {
            0 | 1 => self.near_miss(limit),
            2 => self.accented_twin(limit),
            3 => self.listing_display_name(limit),
            4 => self.same_name_two_realms(limit),
            5 => self.guest_named_like_a_character(limit),
            6 => self.impersonated_senior(limit),
            _ => self.look_alike(limit),
        }
    }

    /// A player with no Discord account whose main is one letter off (changed, added or
    /// dropped) a character of a player found by exact username ("Toto" beside "Totro"), with
    /// an alt naming it.
    fn near_miss(&mut self, limit: usize) {
        let Some(&target) = self
            .exact_mains
            .get(self.rng.random_range(0..self.exact_mains.len().max(1)))
        else {
            return self.plain_unclaimed(limit);
        };
        let base = self.characters[target].name.clone();
        let Some(name) = (0..20).find_map(|_| {
            let n = one_letter_off(&mut self.rng, &base);
            self.used.insert(n.to_lowercase()).then_some(n)
        }) else {
            return self.plain_unclaimed(limit);
        };
        let owner = self.new_owner();
        let rank = self.rng.random_range(2..=4);
        let main = self.push_character(name, rank, owner);
        let alts = self.rng.random_range(0..2);
        self.alts(main, alts, limit, owner);
    }

    /// A new player: a fresh name, a rank drawn from `ranks`, the main and one alt (within
    /// `limit`). Returns the owner, the main's name and the rank.
    fn player_with_one_alt(
        &mut self,
        ranks: std::ops::RangeInclusive<i64>,
        limit: usize,
    ) -> (usize, String, i64) {
        let owner = self.new_owner();
        let name = unique_name(&mut self.rng, &mut self.used);
        let rank = self.rng.random_range(ranks);
        let main = self.push_character(name.clone(), rank, owner);
        self.alts(main, 1, limit, owner);
        (owner, name, rank)
    }

    /// A player with no Discord account, for when a decoy has nothing to imitate.
    fn plain_unclaimed(&mut self, limit: usize) {
        self.player_with_one_alt(2..=4, limit);
    }

    /// A player whose username is their main with an accent ("íxsho" for "Ixsho"): SPEC §5's
    /// normalization links them.
    fn accented_twin(&mut self, limit: usize) {
        let (owner, name, rank) = self.player_with_one_alt(2..=4, limit);
        let id = self.member_id();
        let mut m = member(
            id,
            accented(&name.to_lowercase()),
            None,
            vec![RANK_ROLES[rank as usize]],
        );
        m.owner = Some(owner);
        self.push_member(m);
    }

    /// A player whose username says nothing, and whose global name lists their characters
    /// ("Main / Alt", "Main | Alt", "Main (Alt)", "Main - Alt", "Main, Alt", "Main & Alt").
    fn listing_display_name(&mut self, limit: usize) {
        let owner = self.new_owner();
        let rank = self.rng.random_range(2..=4);
        let main_name = unique_name(&mut self.rng, &mut self.used);
        self.push_character(main_name.clone(), rank, owner);
        if self.characters.len() >= limit {
            return;
        }
        let alt_name = unique_name(&mut self.rng, &mut self.used);
        self.push_character(alt_name.clone(), rank.max(3), owner);
        let listing = match self.rng.random_range(0..6) {
            0 => format!("{main_name} / {alt_name}"),
            1 => format!("{main_name} | {alt_name}"),
            2 => format!("{main_name} ({alt_name})"),
            3 => format!("{main_name} - {alt_name}"),
            4 => format!("{main_name}, {alt_name}"),
            _ => format!("{main_name} & {alt_name}"),
        };
        let id = self.member_id();
        let handle = format!("player{id}");
        let mut m = member(id, handle, Some(listing), vec![RANK_ROLES[rank as usize]]);
        m.owner = Some(owner);
        self.push_member(m);
    }

    /// Two players with the same character name on two realms; one says which realm in their
    /// Discord name ("Name-Realm" or "Name @ Realm"), the other is not on Discord.
    fn same_name_two_realms(&mut self, limit: usize) {
        let name = unique_name(&mut self.rng, &mut self.used);
        let owner = self.new_owner();
        let rank = self.rng.random_range(2..=4);
        let first = self.push_character(name.clone(), rank, owner);
        if self.characters.len() >= limit {
            return;
        }
        let other = self.new_owner();
        let second = self.push_character(name.clone(), 4, other);
        let realm = self.characters[first].realm;
        self.characters[second].realm = (realm + 1 + self.rng.random_range(0..3)) % REALMS.len();
        let realm_name = REALMS[realm].1;
        let discord_name = if self.rng.random_bool(0.5) {
            format!("{name}-{}", realm_name.replace([' ', '\''], ""))
        } else {
            format!("{name} @ {realm_name}")
        };
        let id = self.member_id();
        let mut m = member(
            id,
            format!("player{id}"),
            Some(discord_name),
            vec![RANK_ROLES[rank as usize]],
        );
        m.owner = Some(owner);
        self.push_member(m);
    }

    /// A player not on Discord, and a guest without a guild role whose username is that
    /// player's main: a guest is never a name candidate.
    fn guest_named_like_a_character(&mut self, limit: usize) {
        let (_, name, _) = self.player_with_one_alt(2..=4, limit);
        let id = self.member_id();
        self.push_member(member(id, name.to_lowercase(), None, vec![]));
    }

    /// A Veteran-or-above player not on Discord, and a new Initiate who set their server
    /// nickname to that player's main: exactly, in capitals, or with an accent dropped.
    fn impersonated_senior(&mut self, limit: usize) {
        let (_, name, _) = self.player_with_one_alt(0..=2, limit);
        let id = self.member_id();
        let mut m = member(id, format!("newbie{id}"), None, vec!["Initiate"]);
        m.nick = Some(if self.rng.random_bool(0.5) {
            name.clone()
        } else {
            name.to_uppercase()
        });
        self.push_member(m);
    }

    /// A player not on Discord, and a member with a guild role whose username copies that
    /// player's main through look-alike letters: a Cyrillic о, a zero-width space, a
    /// right-to-left override, fullwidth letters.
    fn look_alike(&mut self, limit: usize) {
        let (_, name, _) = self.player_with_one_alt(2..=4, limit);
        let disguised = match self.rng.random_range(0..4) {
            0 if name.contains('o') => name.replacen('o', "\u{043E}", 1),
            0 | 1 => {
                let cut = name.len() / 2;
                format!("{}\u{200B}{}", &name[..cut], &name[cut..])
            }
            2 => format!("\u{202E}{name}"),
            _ => name
                .chars()
                .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c))
                .collect(),
        };
        let id = self.member_id();
        let mut m = member(id, format!("member{id}"), None, vec!["Member"]);
        m.nick = Some(disguised);
        self.push_member(m);
    }

    /// A fresh lowercase name that no character's name scores [`FUZZY_LINK_THRESHOLD`] or more
    /// against, for a member with no character. Named one letter off an unclaimed player's
    /// main ("torith" beside "Thorith", 0.92), such a member is exactly what that player's own
    /// account with a typo looks like: no matcher could tell them apart, yet the truth would
    /// call the link wrong (the matcher precision note).
    fn name_unlike_any_character(&mut self, characters: &FuzzyIndex) -> String {
        loop {
            let name = unique_name(&mut self.rng, &mut self.used).to_lowercase();
            if characters
                .matches_as_b(&name, FUZZY_LINK_THRESHOLD)
                .is_empty()
            {
                return name;
            }
        }
    }

    /// Discord members with a guild role but no character in the roster, then guests and bots
    /// filling the server.
    fn orphans_and_guests(&mut self, characters: usize) {
        let orphans =
            (characters / 50).min(self.discord_members.saturating_sub(self.members.len()));
        let character_names = FuzzyIndex::new(
            self.characters
                .iter()
                .map(|c| std::iter::once(c.name.as_str())),
        );
        for _ in 0..orphans {
            let owner = self.new_owner();
            let id = self.member_id();
            let name = self.name_unlike_any_character(&character_names);
            let mut m = member(id, name, None, vec!["Member"]);
            m.owner = Some(owner);
            self.push_member(m);
        }
        while self.members.len() < self.discord_members {
            let id = self.member_id();
            // Guests are many (tens of thousands): their names come from the syllables plus a
            // counter, so they never exhaust the pool of unique character names.
            let name = format!(
                "{}{}",
                random_name(&mut self.rng).to_lowercase(),
                self.members.len()
            );
            let roles = if self.rng.random_bool(0.1) {
                vec!["Pug"]
            } else {
                vec![]
            };
            let mut guest = member(id, name, None, roles);
            guest.bot = self.rng.random_bool(0.002);
            if self.rng.random_bool(0.3) {
                guest.nick = Some(random_name(&mut self.rng));
            }
            self.push_member(guest);
        }
    }
}

/// `name` with one letter changed, added or dropped (keeping a capital first letter).
fn one_letter_off(rng: &mut StdRng, name: &str) -> String {
    let mut chars: Vec<char> = name.to_lowercase().chars().collect();
    let i = rng.random_range(1..chars.len().max(2));
    let letter = (b'a' + rng.random_range(0..26u8)) as char;
    match rng.random_range(0..3) {
        0 if i < chars.len() => chars[i] = letter,
        1 if chars.len() > 4 && i < chars.len() => {
            chars.remove(i);
        }
        _ => chars.insert(i.min(chars.len()), letter),
    }
    let s: String = chars.into_iter().collect();
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The first vowel of a lowercase name accented (a→á, e→é, i→í, o→ó, u→ú).
fn accented(name: &str) -> String {
    let mut done = false;
    name.chars()
        .map(|c| {
            if done {
                return c;
            }
            let a = match c {
                'a' => 'á',
                'e' => 'é',
                'i' => 'í',
                'o' => 'ó',
                'u' => 'ú',
                _ => return c,
            };
            done = true;
            a
        })
        .collect()
}

impl Guild {
    /// The same guild a week later, as the next sync sees it when a week of changes lands in
    /// one run (issue 19's event cost is measured on it): one character in 20 promoted or
    /// demoted, one in 50 gone from the roster, one in 100 renamed (same Blizzard id); one
    /// Discord member in 30 with a new nickname and one in 50 gone. Deterministic;
    /// [`Guild::write`] writes it. The truth is left as generated: score links before calling
    /// this.
    pub fn a_week_later(&mut self) -> WeekChanges {
        self.later(&WEEK)
    }

    /// The same guild six hours later, as the next run of the default schedule
    /// (`GUILD_SYNC_BLIZZARD_CRON`, four runs a day) sees it: about a 28th of a week's changes
    /// — one character in 500 promoted or demoted, one in 1,000 gone and one in 1,000 renamed;
    /// one Discord member in 840 with a new nickname and one in 1,500 gone. Deterministic, and
    /// its names differ from [`Guild::a_week_later`]'s, so it changes a guild that one changed.
    pub fn six_hours_later(&mut self) -> WeekChanges {
        self.later(&SIX_HOURS)
    }

    fn later(&mut self, rates: &ChangeRates) -> WeekChanges {
        let mut changes = WeekChanges::default();
        for (i, c) in self.characters.iter_mut().enumerate() {
            if i % rates.rank_changed == 3 {
                // Rank indexes run 0 (guild master) ..= 4: move one step, staying in range.
                c.rank = if c.rank >= 3 { c.rank - 1 } else { c.rank + 1 };
                changes.rank_changed += 1;
            }
            if i % rates.renamed == 7 {
                // Generated names have no digits, so these collide with none of them.
                c.name = format!("{}{i}", rates.new_name);
                changes.renamed += 1;
            }
        }
        changes.left_guild = drop_every(&mut self.characters, rates.left_guild);
        for (i, m) in self.members.iter_mut().enumerate() {
            if i % rates.discord_renamed == 5 && !m.bot {
                m.nick = Some(format!("{}{i}", rates.new_nick));
                changes.discord_renamed += 1;
            }
        }
        changes.left_discord = drop_every(&mut self.members, rates.left_discord);
        changes
    }

    /// What was generated, with the truth.
    pub fn generated(&self) -> &Generated {
        &self.generated
    }

    /// Write the guild in the real input formats under `dir`, with `truth.json`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_blizzard(&dir.join("blizzard"), &self.characters)?;
        write_discord(&dir.join("discord.json"), &self.members)?;
        write_addon(&dir.join("PATTSync.lua"), &self.characters)?;
        fs::write(
            dir.join("truth.json"),
            serde_json::to_vec(&self.generated.truth)?,
        )
        .with_context(|| format!("cannot write {}", dir.join("truth.json").display()))
    }

    /// The snapshot the identity engine would load from this guild on an empty database, as
    /// the sync stages store it: ids are positions (characters from 1, members from 1 in list
    /// order, bots left out), ranks as `common.guild_ranks.level` (5 - rank index).
    pub fn snapshot(&self) -> guild_sync_core::matching::Snapshot {
        use guild_sync_core::matching::{PresentDiscordUser, Snapshot, UnlinkedCharacter};
        let characters = self
            .characters
            .iter()
            .enumerate()
            .map(|(i, c)| UnlinkedCharacter {
                id: i as i64 + 1,
                name: c.name.clone(),
                realm_slug: REALMS[c.realm].0.to_string(),
                guild_note: (!c.note.is_empty()).then(|| c.note.clone()),
                officer_note: (!c.officer_note.is_empty()).then(|| c.officer_note.clone()),
                rank_level: Some(5 - c.rank as i32),
            })
            .collect();
        let discord_users = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.bot)
            .map(|(i, m)| {
                let display = [m.nick.as_deref(), m.global_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .find(|n| !n.trim().is_empty())
                    .unwrap_or(&m.username);
                PresentDiscordUser {
                    id: i as i64 + 1,
                    username: m.username.clone(),
                    display_name: Some(display.to_string()),
                    global_name: m.global_name.clone(),
                    has_guild_role: m.roles.iter().any(|r| RANK_ROLES.contains(r)),
                    player_id: None,
                }
            })
            .collect();
        Snapshot {
            characters,
            discord_users,
            players: vec![],
        }
    }

    /// The true owner of the character and member with these snapshot ids (see
    /// [`Guild::snapshot`]).
    pub fn character_owner(&self, id: i64) -> usize {
        self.characters[(id - 1) as usize].owner
    }

    pub fn member_owner(&self, id: i64) -> Option<usize> {
        self.members[(id - 1) as usize].owner
    }
}

/// Remove every `n`-th element of `items` (the `n`-th, `2n`-th, ...); returns how many went.
fn drop_every<T>(items: &mut Vec<T>, n: usize) -> usize {
    let before = items.len();
    let mut position = 0;
    items.retain(|_| {
        position += 1;
        position % n != 0
    });
    before - items.len()
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
        owner: 0,
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
        owner: None,
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
        (dir, generated.generated().clone())
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
    fn a_week_later_changes_what_it_says_in_the_written_files() {
        let size = GuildSize {
            characters: 120,
            discord_members: 400,
        };
        let mut guild = super::generate(size, 7, Decoys::Rich);
        let changes = guild.a_week_later();
        assert_eq!(
            changes,
            WeekChanges {
                rank_changed: 6,
                left_guild: 2,
                renamed: 2,
                discord_renamed: 14,
                left_discord: 8,
            }
        );
        let dir = tempfile::tempdir().unwrap();
        guild.write(dir.path()).unwrap();
        let roster: Value =
            serde_json::from_slice(&fs::read(dir.path().join("blizzard/roster.json")).unwrap())
                .unwrap();
        let names: Vec<&str> = roster["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["character"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 118);
        assert!(names.contains(&"Renamed7") && names.contains(&"Renamed107"));
        let discord: Value =
            serde_json::from_slice(&fs::read(dir.path().join("discord.json")).unwrap()).unwrap();
        let members = discord["members"].as_array().unwrap();
        assert_eq!(members.len(), 392);
        assert!(members.iter().any(|m| m["nick"] == "Away5"));

        // Six hours after that: a few changes, named apart from the week's.
        let changes = guild.six_hours_later();
        assert_eq!(
            changes,
            WeekChanges {
                rank_changed: 1,
                left_guild: 0,
                renamed: 1,
                discord_renamed: 1,
                left_discord: 0,
            }
        );
        guild.write(dir.path()).unwrap();
        let discord: Value =
            serde_json::from_slice(&fs::read(dir.path().join("discord.json")).unwrap()).unwrap();
        assert!(
            discord["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["nick"] == "Back5")
        );
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
