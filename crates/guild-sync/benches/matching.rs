//! Matching benchmark: 1,000 unlinked characters against 3,000 and 50,000 present Discord users.
//!
//! For each size it (1) checks that the pruned fuzzy search returns exactly what scoring every
//! pair returns, timing both; (2) times the pure planner; (3) seeds a fresh database and times a
//! full `run_matching` (load, plan, apply reported separately).
//!
//!     cargo bench -p guild-sync --bench matching
//!
//! `MATCH_BENCH_DISCORD=3000,50000` and `MATCH_BENCH_CHARACTERS=1000` change the sizes.

use std::time::{Duration, Instant};

use guild_sync::identity_engine::run_matching;
use guild_sync::testing::TestDb;
use guild_sync_core::fuzzy::FuzzyIndex;
use guild_sync_core::matching::{
    self, FUZZY_SUGGEST_THRESHOLD, PresentDiscordUser, Snapshot, UnlinkedCharacter,
};
use rayon::prelude::*;

/// xorshift64*: deterministic, dependency-free synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const SYLLABLES: &[&str] = &[
    "ar", "thas", "thr", "all", "ja", "ina", "syl", "va", "nas", "gul", "dan", "kel", "zat", "an",
    "na", "mor", "gan", "il", "li", "vol", "jin", "tyr", "ande", "bol", "var", "uth", "er", "ka",
    "el", "ros", "ma", "lo", "ri", "en", "ae", "bri", "dor", "fen", "gro", "hal", "ix", "ju",
    "kor", "lun", "mir", "nox", "or", "pax", "qu", "ral", "sol", "tor", "ul", "vex", "wyn", "xal",
    "yor", "zun",
];
const ACCENTS: &[char] = &['á', 'é', 'í', 'ó', 'ú', 'ñ', 'ö', 'ø', 'æ', 'ë'];

fn fantasy(rng: &mut Rng, max: usize) -> String {
    let n = 2 + rng.below(3);
    let s: String = (0..n)
        .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
        .collect();
    s.chars().take(max).collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A Discord-style variant of a character name: typo, suffix, accent or case.
fn variant(rng: &mut Rng, name: &str) -> String {
    let mut chars: Vec<char> = name.to_lowercase().chars().collect();
    match rng.below(4) {
        0 if chars.len() > 3 => {
            let i = rng.below(chars.len());
            chars[i] = (b'a' + rng.below(26) as u8) as char;
        }
        1 => chars.extend(format!("{}", rng.below(100)).chars()),
        2 => {
            let i = rng.below(chars.len());
            chars[i] = ACCENTS[rng.below(ACCENTS.len())];
        }
        _ => chars.push('x'),
    }
    chars.into_iter().collect()
}

fn synthetic(characters: usize, discord: usize, seed: u64) -> Snapshot {
    let mut rng = Rng(seed | 1);
    let mut chars = Vec::with_capacity(characters);
    let mut users: Vec<PresentDiscordUser> = Vec::with_capacity(discord);
    // One character per (name, realm), as the schema demands.
    let mut taken = std::collections::HashSet::new();
    for i in 0..characters {
        let name = loop {
            let name = capitalize(&fantasy(&mut rng, 12));
            if taken.insert(name.to_lowercase()) {
                break name;
            }
        };
        let mut guild_note = None;
        let mut officer_note = None;
        // Evidence for about 60% of the guild; the rest only has random namesakes.
        if users.len() < discord {
            let roll = rng.below(100);
            let uid = users.len() as i64 + 1;
            let (username, display) = match roll {
                0..=24 => (name.to_lowercase(), None),
                25..=39 => (variant(&mut rng, &name), Some(name.clone())),
                40..=49 => (variant(&mut rng, &name), None),
                50..=54 => {
                    let handle = fantasy(&mut rng, 16);
                    guild_note = Some(format!("Discord: {handle}"));
                    (handle, None)
                }
                55..=59 => {
                    let handle = fantasy(&mut rng, 16);
                    officer_note = Some(format!("DC: {handle}."));
                    (handle, None)
                }
                _ => (String::new(), None),
            };
            if !username.is_empty() {
                users.push(PresentDiscordUser {
                    id: uid,
                    username,
                    display_name: display,
                    global_name: None,
                    has_guild_role: true,
                    player_id: None,
                });
            }
        }
        if i > 0 && rng.chance(10) {
            let main: &UnlinkedCharacter = &chars[rng.below(i)];
            guild_note = Some(format!("alt of {}", main.name));
        }
        chars.push(UnlinkedCharacter {
            id: i as i64 + 1,
            name,
            realm_slug: "stormrage".into(),
            guild_note,
            officer_note,
            rank_level: None,
        });
    }
    while users.len() < discord {
        let id = users.len() as i64 + 1;
        let username = format!("{}{}", fantasy(&mut rng, 14), rng.below(1000));
        let display = rng.chance(40).then(|| capitalize(&fantasy(&mut rng, 14)));
        users.push(PresentDiscordUser {
            id,
            username,
            display_name: display,
            global_name: None,
            has_guild_role: rng.chance(70),
            player_id: None,
        });
    }
    Snapshot {
        characters: chars,
        discord_users: users,
        players: vec![],
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

async fn seed(pool: &sqlx::PgPool, s: &Snapshot) {
    let ids: Vec<i32> = s.characters.iter().map(|c| c.id as i32).collect();
    let names: Vec<&str> = s.characters.iter().map(|c| c.name.as_str()).collect();
    let notes: Vec<Option<&str>> = s
        .characters
        .iter()
        .map(|c| c.guild_note.as_deref())
        .collect();
    let officer: Vec<Option<&str>> = s
        .characters
        .iter()
        .map(|c| c.officer_note.as_deref())
        .collect();
    sqlx::query(
        "INSERT INTO guild_identity.wow_characters
             (id, character_name, realm_slug, addon_note, addon_officer_note)
         SELECT id, name, 'stormrage', note, officer
         FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[]) AS t(id, name, note, officer)",
    )
    .bind(ids)
    .bind(names)
    .bind(notes)
    .bind(officer)
    .execute(pool)
    .await
    .expect("seed characters");
    let ids: Vec<i32> = s.discord_users.iter().map(|u| u.id as i32).collect();
    let usernames: Vec<&str> = s
        .discord_users
        .iter()
        .map(|u| u.username.as_str())
        .collect();
    let displays: Vec<Option<&str>> = s
        .discord_users
        .iter()
        .map(|u| u.display_name.as_deref())
        .collect();
    let roles: Vec<Option<&str>> = s
        .discord_users
        .iter()
        .map(|u| u.has_guild_role.then_some("Member"))
        .collect();
    sqlx::query(
        "INSERT INTO guild_identity.discord_users
             (id, discord_id, username, display_name, highest_guild_role)
         SELECT id, (1000000 + id)::text, username, display, role
         FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[])
              AS t(id, username, display, role)",
    )
    .bind(ids)
    .bind(usernames)
    .bind(displays)
    .bind(roles)
    .execute(pool)
    .await
    .expect("seed discord users");
}

fn sizes(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

#[tokio::main]
async fn main() {
    let characters = sizes("MATCH_BENCH_CHARACTERS", &[1000])[0];
    println!(
        "matching benchmark: {characters} unlinked characters, {} rayon threads",
        rayon::current_num_threads()
    );
    for discord in sizes("MATCH_BENCH_DISCORD", &[3000, 50000]) {
        let snapshot = synthetic(characters, discord, 0x5eed_0000 + discord as u64);
        println!("\n== {characters} characters × {discord} Discord users");

        // (1) Pruned fuzzy search vs scoring every pair, over the same names as the planner.
        let users = &snapshot.discord_users;
        let entries = matching::name_entries(
            users,
            (0..users.len()).filter(|&i| users[i].has_guild_role),
            &matching::snapshot_realms(&snapshot),
        );
        let index = FuzzyIndex::new(entries.iter().map(|e| std::iter::once(e.text.as_str())));
        let started = Instant::now();
        let pruned: Vec<_> = snapshot
            .characters
            .par_iter()
            .map(|c| index.matches(&c.name, FUZZY_SUGGEST_THRESHOLD))
            .collect();
        let pruned_time = started.elapsed();
        let started = Instant::now();
        let exhaustive: Vec<_> = snapshot
            .characters
            .par_iter()
            .map(|c| index.matches_exhaustive(&c.name, FUZZY_SUGGEST_THRESHOLD))
            .collect();
        let exhaustive_time = started.elapsed();
        let identical = pruned.iter().map(|p| &p.0).eq(exhaustive.iter());
        assert!(
            identical,
            "the pruned search differs from the exhaustive one"
        );
        let (mut scored, mut by_len, mut by_shared, mut by_lcs, mut found) = (0, 0, 0, 0, 0);
        for (m, c) in &pruned {
            scored += c.scored;
            by_len += c.by_length;
            by_shared += c.by_shared_characters;
            by_lcs += c.by_common_subsequence;
            found += m.len();
        }
        println!(
            "fuzzy stage: pruned {} vs exhaustive {} — identical results ({found} pairs ≥ {FUZZY_SUGGEST_THRESHOLD})",
            secs(pruned_time),
            secs(exhaustive_time)
        );
        println!(
            "  pairs: {} by length, {} by shared characters, {} by common subsequence, {scored} scored",
            by_len, by_shared, by_lcs
        );

        // (2) The pure planner (every strategy, grouping, suggestions).
        let started = Instant::now();
        let plan = matching::plan(&snapshot);
        let plan_time = started.elapsed();
        println!(
            "plan (pure): {} — {} links, {} new players, {} suggestions, {} ties/conflicts, {} unlinked",
            secs(plan_time),
            plan.links.len(),
            plan.new_players.len(),
            plan.suggestions.len(),
            plan.skipped.len(),
            plan.unlinked
        );

        // (3) A full recorded run against PostgreSQL.
        let db = TestDb::new().await;
        seed(&db.pool, &snapshot).await;
        let started = Instant::now();
        let stats = run_matching(&db.pool).await.expect("run_matching");
        let total = started.elapsed();
        assert_eq!(stats.links_created as usize, plan.links.len());
        println!(
            "run_matching (PostgreSQL): total {} = load {:.3} s + plan {:.3} s + apply {:.3} s (+ sync_log)",
            secs(total),
            stats.load_seconds,
            stats.plan_seconds,
            stats.apply_seconds
        );
    }
}
