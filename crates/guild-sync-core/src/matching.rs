//! The match plan: from a snapshot of unlinked characters, present Discord users and existing
//! players to the players, links, Discord attachments and suggestions to create (requirements
//! Task 3, SPEC §5). Pure: the service loads the snapshot and applies the plan in one
//! transaction; nothing here reads or writes a database.
//!
//! **Evidence per character**, strongest first; the first strategy that names exactly one
//! Discord user wins:
//! 1. `exact_name` — the normalized character name equals a Discord user's normalized username
//!    or display name (users with a guild role).
//! 2. `guild_note` — a Discord hint in the guild note names a present user (any user; a hint
//!    equal to someone's username wins over display names, because usernames are unique on
//!    Discord and display names are not).
//! 3. `officer_note` — the same in the officer note.
//! 4. `fuzzy_name` — the best [`fuzzy_match_score`](crate::fuzzy::fuzzy_match_score) against
//!    users with a guild role is at least [`FUZZY_LINK_THRESHOLD`] (medium confidence); a best
//!    score from [`FUZZY_SUGGEST_THRESHOLD`] up only produces a [`Suggestion`].
//!
//! **Choices made for precision** (SPEC §7: a wrong link is worse than a missing one):
//! - A strategy that names two or more users (a tie) links nobody; the tie is reported in
//!   [`Plan::skipped`] and the next strategy is tried — except fuzzy after a tied exact name,
//!   which would only pick among the same names with less evidence.
//! - Exact and fuzzy candidates are the present users with a guild role *whether or not they
//!   already have a player*; a match to a linked user adds the character to that user's player.
//!   Restricting them to unlinked users would make the candidate set shrink as the engine links
//!   people, so a tie in one run could turn into a link in the next one (breaking "a second run
//!   creates nothing") and an already linked namesake would stop counting as a rival.
//! - Alt hints (`alt of X`, `X's alt`, `Main: X`) name a character; a name held by several
//!   characters resolves to the one on the same realm, else to nobody (a tie). Alt relations are
//!   merged after all Discord evidence, in character-id order, and one that would put two
//!   Discord users or two existing players into one player is refused and reported.
//! - Suggestions are only recorded for characters the plan leaves unlinked and users who still
//!   have no player, so they never contradict a link.
//!
//! **Linking** follows Task 3: a player that already has the Discord user gets the character;
//! otherwise the player owning the character an alt note names (existing, or grouped in this
//! run), which also receives the Discord user if it has none; otherwise a new player named after
//! the Discord user. Alt groups with no Discord user become one player with no Discord user,
//! named after the main (the character the others name).
//!
//! **Determinism:** inputs are sorted by id first, so the plan is the same whatever order the
//! rows come in. Only the per-character scoring runs in parallel (rayon), collected in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::fuzzy::{FuzzyIndex, PruneCounts};
use crate::names::normalize_name;
use crate::notes::{alt_hints, discord_hints};

/// A fuzzy score at or above this links the character (medium confidence).
pub const FUZZY_LINK_THRESHOLD: f64 = 0.85;

/// A best fuzzy score at or above this (and below [`FUZZY_LINK_THRESHOLD`]) becomes an
/// `auto_link_suggestion` for an officer to confirm.
pub const FUZZY_SUGGEST_THRESHOLD: f64 = 0.70;

/// Most suggestions recorded for one character (the users tied at its best score).
pub const MAX_SUGGESTIONS_PER_CHARACTER: usize = 3;

/// An in-guild character no player owns yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlinkedCharacter {
    pub id: i64,
    pub name: String,
    pub realm_slug: String,
    /// The guild note from the addon export.
    pub guild_note: Option<String>,
    pub officer_note: Option<String>,
}

/// A Discord user present on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentDiscordUser {
    pub id: i64,
    pub username: String,
    pub display_name: Option<String>,
    /// Holds one of the guild's rank roles.
    pub has_guild_role: bool,
    /// The player holding this user, if any.
    pub player_id: Option<i64>,
}

/// A character some player already owns (what alt notes can name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedCharacter {
    pub id: i64,
    pub name: String,
    pub realm_slug: String,
}

/// An existing player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingPlayer {
    pub id: i64,
    pub discord_user_id: Option<i64>,
    pub characters: Vec<OwnedCharacter>,
}

/// Everything the planner looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub characters: Vec<UnlinkedCharacter>,
    pub discord_users: Vec<PresentDiscordUser>,
    pub players: Vec<ExistingPlayer>,
}

/// How a link was made; stored in `player_characters.link_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkSource {
    ExactName,
    GuildNote,
    OfficerNote,
    FuzzyName,
    AltNote,
}

impl LinkSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkSource::ExactName => "exact_name",
            LinkSource::GuildNote => "guild_note",
            LinkSource::OfficerNote => "officer_note",
            LinkSource::FuzzyName => "fuzzy_name",
            LinkSource::AltNote => "alt_note",
        }
    }

    /// How sure a link of this kind is; stored in `player_characters.confidence`.
    pub fn confidence(self) -> Confidence {
        match self {
            LinkSource::FuzzyName => Confidence::Medium,
            _ => Confidence::High,
        }
    }
}

/// Stored in `player_characters.confidence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    Medium,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
        }
    }
}

/// The player a link goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PlayerRef {
    Existing(i64),
    /// Index into [`Plan::new_players`].
    New(usize),
}

/// A player to create.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewPlayer {
    pub display_name: String,
    pub discord_user_id: Option<i64>,
}

/// A character to add to a player.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedLink {
    pub character_id: i64,
    pub player: PlayerRef,
    pub source: LinkSource,
    pub confidence: Confidence,
    /// What matched, stored in `player_characters.evidence`.
    pub evidence: serde_json::Value,
}

/// A Discord user to set on an existing player that has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiscordAttachment {
    pub player_id: i64,
    pub discord_user_id: i64,
}

/// A likely pair for an officer to confirm (an `auto_link_suggestion` issue).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    pub character_id: i64,
    pub character_name: String,
    pub discord_user_id: i64,
    /// The user's display name, else username.
    pub discord_name: String,
    pub score: f64,
}

/// Why a character with some evidence was left unlinked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub character_id: i64,
    pub character_name: String,
    pub strategy: LinkSource,
    /// `tie` (the evidence names several users or characters) or `conflict` (an alt relation
    /// would join two Discord users or two players).
    pub reason: &'static str,
    /// The tied Discord user ids or character ids, or the refused alt target's character id.
    pub candidates: Vec<i64>,
}

/// What the planner decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub new_players: Vec<NewPlayer>,
    pub links: Vec<PlannedLink>,
    pub attachments: Vec<DiscordAttachment>,
    pub suggestions: Vec<Suggestion>,
    /// Ties and refused alt relations (a character can appear more than once, once per
    /// strategy); it may still have been linked by a later strategy.
    pub skipped: Vec<Skipped>,
    /// Characters the plan leaves unlinked.
    pub unlinked: usize,
    /// How the fuzzy stage pruned its comparisons.
    #[serde(skip)]
    pub fuzzy: PruneCounts,
}

impl Plan {
    /// Links per strategy.
    pub fn links_by_source(&self) -> BTreeMap<LinkSource, usize> {
        let mut counts = BTreeMap::new();
        for link in &self.links {
            *counts.entry(link.source).or_insert(0) += 1;
        }
        counts
    }
}

/// The Discord evidence found for one character.
#[derive(Debug, Clone)]
struct DiscordMatch {
    user: usize,
    source: LinkSource,
    evidence: serde_json::Value,
}

/// Per-character outcome of the (parallel) evidence stage.
#[derive(Debug, Default)]
struct CharacterEvidence {
    found: Option<DiscordMatch>,
    skipped: Vec<Skipped>,
    /// Users at the best fuzzy score when it did not link.
    near: Vec<(usize, f64)>,
    fuzzy: PruneCounts,
}

/// A name → indices lookup on normalized names.
fn index_by<'a>(names: impl Iterator<Item = (usize, &'a str)>) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, name) in names {
        let key = normalize_name(name);
        if !key.is_empty() {
            map.entry(key).or_default().push(i);
        }
    }
    map
}

/// Plan the run. The same snapshot in any row order gives the same plan.
pub fn plan(snapshot: &Snapshot) -> Plan {
    let mut chars = snapshot.characters.clone();
    chars.sort_by_key(|c| c.id);
    chars.dedup_by_key(|c| c.id);
    let mut users = snapshot.discord_users.clone();
    users.sort_by_key(|u| u.id);
    users.dedup_by_key(|u| u.id);
    let mut players = snapshot.players.clone();
    players.sort_by_key(|p| p.id);
    players.dedup_by_key(|p| p.id);
    for p in &mut players {
        p.characters.sort_by_key(|c| c.id);
    }
    Planner::new(&chars, &users, &players).run()
}

struct Planner<'s> {
    chars: &'s [UnlinkedCharacter],
    users: &'s [PresentDiscordUser],
    players: &'s [ExistingPlayer],
    by_username: HashMap<String, Vec<usize>>,
    by_display_name: HashMap<String, Vec<usize>>,
    /// Users with a guild role, the exact and fuzzy candidates, as indices into `users`.
    ranked: Vec<usize>,
    fuzzy: FuzzyIndex,
    player_index: HashMap<i64, usize>,
}

impl<'s> Planner<'s> {
    fn new(
        chars: &'s [UnlinkedCharacter],
        users: &'s [PresentDiscordUser],
        players: &'s [ExistingPlayer],
    ) -> Self {
        let by_username = index_by(
            users
                .iter()
                .enumerate()
                .map(|(i, u)| (i, u.username.as_str())),
        );
        let by_display_name = index_by(
            users
                .iter()
                .enumerate()
                .filter_map(|(i, u)| u.display_name.as_deref().map(|d| (i, d))),
        );
        let ranked: Vec<usize> = (0..users.len())
            .filter(|&i| users[i].has_guild_role)
            .collect();
        let fuzzy = FuzzyIndex::new(ranked.iter().map(|&i| {
            let u = &users[i];
            std::iter::once(u.username.as_str()).chain(u.display_name.as_deref())
        }));
        let player_index = players.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        Planner {
            chars,
            users,
            players,
            by_username,
            by_display_name,
            ranked,
            fuzzy,
            player_index,
        }
    }

    fn run(&self) -> Plan {
        let evidence: Vec<CharacterEvidence> = self
            .chars
            .par_iter()
            .map(|c| self.evidence_for(c))
            .collect();
        let mut plan = Plan::default();
        for e in &evidence {
            plan.skipped.extend(e.skipped.iter().cloned());
            plan.fuzzy.by_length += e.fuzzy.by_length;
            plan.fuzzy.by_shared_characters += e.fuzzy.by_shared_characters;
            plan.fuzzy.by_common_subsequence += e.fuzzy.by_common_subsequence;
            plan.fuzzy.scored += e.fuzzy.scored;
        }
        self.group_and_link(&evidence, &mut plan);
        plan
    }

    /// The strongest Discord evidence for one character.
    fn evidence_for(&self, c: &UnlinkedCharacter) -> CharacterEvidence {
        let mut out = CharacterEvidence::default();
        let skip = |strategy, candidates: &[usize]| Skipped {
            character_id: c.id,
            character_name: c.name.clone(),
            strategy,
            reason: "tie",
            candidates: candidates.iter().map(|&u| self.users[u].id).collect(),
        };

        // 1. Exact name.
        let key = normalize_name(&c.name);
        let mut exact: BTreeSet<usize> = BTreeSet::new();
        let mut matched_field = "username";
        for (field, map) in [
            ("display_name", &self.by_display_name),
            ("username", &self.by_username),
        ] {
            for &u in map.get(&key).into_iter().flatten() {
                if self.users[u].has_guild_role {
                    exact.insert(u);
                    matched_field = field;
                }
            }
        }
        let exact_tied = exact.len() > 1;
        match exact.iter().copied().collect::<Vec<_>>().as_slice() {
            [u] => {
                out.found = Some(DiscordMatch {
                    user: *u,
                    source: LinkSource::ExactName,
                    evidence: json!({
                        "strategy": "exact_name",
                        "character_name": c.name,
                        "matched": matched_field,
                        "discord_name": self.field_of(*u, matched_field),
                    }),
                });
                return out;
            }
            [] => {}
            tied => out.skipped.push(skip(LinkSource::ExactName, tied)),
        }

        // 2–3. Discord hints in the guild note, then the officer note.
        for (source, note) in [
            (LinkSource::GuildNote, &c.guild_note),
            (LinkSource::OfficerNote, &c.officer_note),
        ] {
            let Some(note) = note.as_deref() else {
                continue;
            };
            let mut named: BTreeMap<usize, String> = BTreeMap::new();
            for hint in discord_hints(note) {
                for u in self.users_named(&hint) {
                    named.entry(u).or_insert_with(|| hint.clone());
                }
            }
            match named.len() {
                0 => {}
                1 => {
                    let (u, hint) = named.into_iter().next().expect("one entry");
                    out.found = Some(DiscordMatch {
                        user: u,
                        source,
                        evidence: json!({
                            "strategy": source.as_str(),
                            "hint": hint,
                            "note": note,
                        }),
                    });
                    return out;
                }
                _ => out
                    .skipped
                    .push(skip(source, &named.keys().copied().collect::<Vec<_>>())),
            }
        }

        // 4. Fuzzy name.
        if exact_tied {
            return out;
        }
        let (found, counts) = self.fuzzy.matches(&c.name, FUZZY_SUGGEST_THRESHOLD);
        out.fuzzy = counts;
        let Some(best) = found.iter().map(|&(_, s)| s).max_by(f64::total_cmp) else {
            return out;
        };
        let top: Vec<(usize, f64)> = found
            .iter()
            .filter(|&&(_, s)| s == best)
            .map(|&(k, s)| (self.ranked[k], s))
            .collect();
        if best >= FUZZY_LINK_THRESHOLD && top.len() == 1 {
            let (u, score) = top[0];
            let user = &self.users[u];
            out.found = Some(DiscordMatch {
                user: u,
                source: LinkSource::FuzzyName,
                evidence: json!({
                    "strategy": "fuzzy_name",
                    "character_name": c.name,
                    "score": score,
                    "username": user.username,
                    "display_name": user.display_name,
                }),
            });
            return out;
        }
        if best >= FUZZY_LINK_THRESHOLD {
            let tied: Vec<usize> = top.iter().map(|&(u, _)| u).collect();
            out.skipped.push(skip(LinkSource::FuzzyName, &tied));
        }
        out.near = top;
        out
    }

    fn field_of(&self, u: usize, field: &str) -> String {
        let user = &self.users[u];
        match field {
            "display_name" => user.display_name.clone().unwrap_or_default(),
            _ => user.username.clone(),
        }
    }

    /// Users a Discord hint names: those whose username is the hint; failing that, those whose
    /// display name is.
    fn users_named(&self, hint: &str) -> Vec<usize> {
        let key = normalize_name(hint);
        if let Some(users) = self.by_username.get(&key) {
            return users.clone();
        }
        self.by_display_name.get(&key).cloned().unwrap_or_default()
    }

    /// Merge characters, Discord users and players into groups, then turn groups into links.
    fn group_and_link(&self, evidence: &[CharacterEvidence], plan: &mut Plan) {
        let n_chars = self.chars.len();
        let n_users = self.users.len();
        // Nodes: characters, then users, then existing players.
        let mut groups = Groups::new(n_chars + n_users + self.players.len());
        let user_node = |u: usize| n_chars + u;
        let player_node = |p: usize| n_chars + n_users + p;
        for u in 0..n_users {
            groups.attrs[user_node(u)].users.insert(u);
        }
        for (p, player) in self.players.iter().enumerate() {
            let attrs = &mut groups.attrs[player_node(p)];
            attrs.players.insert(p);
            attrs.player_discord = player
                .discord_user_id
                .and_then(|id| self.users.binary_search_by_key(&id, |u| u.id).ok());
            attrs.player_has_absent_discord =
                player.discord_user_id.is_some() && attrs.player_discord.is_none();
        }

        // Discord evidence first: it never conflicts (one user per character, one player per
        // user).
        for (c, e) in evidence.iter().enumerate() {
            if let Some(m) = &e.found {
                groups.union(c, user_node(m.user));
            }
        }
        for (u, user) in self.users.iter().enumerate() {
            if let Some(&p) = user.player_id.and_then(|id| self.player_index.get(&id)) {
                groups.union(user_node(u), player_node(p));
            }
        }

        // Then alt relations, in character-id order, refusing the ones that conflict.
        let owned = self.owned_characters();
        let by_char_name = index_by(
            self.chars
                .iter()
                .enumerate()
                .map(|(i, c)| (i, c.name.as_str())),
        );
        // For each character merged by an alt note: the evidence of the accepted relation.
        let mut alt_evidence: HashMap<usize, serde_json::Value> = HashMap::new();
        // Characters named by an accepted alt relation (mains of the groups).
        let mut named_as_main: BTreeSet<usize> = BTreeSet::new();
        let mut has_accepted_alt: BTreeSet<usize> = BTreeSet::new();
        for (c, ch) in self.chars.iter().enumerate() {
            let Some((target, hint, field, note)) =
                self.alt_target(c, ch, &by_char_name, &owned, plan)
            else {
                continue;
            };
            let (node, target_id) = match target {
                AltTarget::Unlinked(t) => (t, self.chars[t].id),
                AltTarget::Owned(p, id) => (player_node(p), id),
            };
            if groups.can_union(c, node) {
                groups.union(c, node);
                has_accepted_alt.insert(c);
                alt_evidence.entry(c).or_insert_with(
                    || json!({"strategy": "alt_note", "hint": hint, "field": field, "note": note}),
                );
                if let AltTarget::Unlinked(t) = target {
                    named_as_main.insert(t);
                    alt_evidence.entry(t).or_insert_with(|| {
                        json!({"strategy": "alt_note", "named_by": ch.name, "field": field, "note": note})
                    });
                }
            } else {
                plan.skipped.push(Skipped {
                    character_id: ch.id,
                    character_name: ch.name.clone(),
                    strategy: LinkSource::AltNote,
                    reason: "conflict",
                    candidates: vec![target_id],
                });
            }
        }

        // Each group becomes links.
        let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for c in 0..n_chars {
            members.entry(groups.find(c)).or_default().push(c);
        }
        let mut linked_users: BTreeSet<usize> = BTreeSet::new();
        let mut linked_chars: BTreeSet<usize> = BTreeSet::new();
        for (root, chars) in members {
            let attrs = &groups.attrs[root];
            let user = attrs.users.iter().next().copied();
            let player = attrs.players.iter().next().copied();
            let target = match (player, user) {
                (Some(p), u) => {
                    if let Some(u) = u
                        && self.players[p].discord_user_id.is_none()
                    {
                        plan.attachments.push(DiscordAttachment {
                            player_id: self.players[p].id,
                            discord_user_id: self.users[u].id,
                        });
                    }
                    PlayerRef::Existing(self.players[p].id)
                }
                (None, Some(u)) => {
                    let user = &self.users[u];
                    let name = user
                        .display_name
                        .as_deref()
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .unwrap_or(&user.username);
                    plan.new_players.push(NewPlayer {
                        display_name: name.to_string(),
                        discord_user_id: Some(user.id),
                    });
                    PlayerRef::New(plan.new_players.len() - 1)
                }
                (None, None) if chars.len() >= 2 => {
                    let main = chars
                        .iter()
                        .copied()
                        .find(|c| named_as_main.contains(c) && !has_accepted_alt.contains(c))
                        .unwrap_or(chars[0]);
                    plan.new_players.push(NewPlayer {
                        display_name: self.chars[main].name.clone(),
                        discord_user_id: None,
                    });
                    PlayerRef::New(plan.new_players.len() - 1)
                }
                (None, None) => continue,
            };
            if let Some(u) = user {
                linked_users.insert(u);
            }
            for c in chars {
                let (source, evidence) = match &evidence[c].found {
                    Some(m) => (m.source, m.evidence.clone()),
                    None => (
                        LinkSource::AltNote,
                        alt_evidence.get(&c).cloned().unwrap_or_else(|| json!({})),
                    ),
                };
                linked_chars.insert(c);
                plan.links.push(PlannedLink {
                    character_id: self.chars[c].id,
                    player: target,
                    source,
                    confidence: source.confidence(),
                    evidence,
                });
            }
        }
        plan.links.sort_by_key(|l| l.character_id);
        plan.attachments.sort_by_key(|a| a.player_id);
        plan.unlinked = n_chars - linked_chars.len();

        // Suggestions: only for characters left unlinked, towards users still without a player.
        for (c, e) in evidence.iter().enumerate() {
            if linked_chars.contains(&c) {
                continue;
            }
            let eligible = e
                .near
                .iter()
                .filter(|&&(u, _)| self.users[u].player_id.is_none() && !linked_users.contains(&u));
            for &(u, score) in eligible.take(MAX_SUGGESTIONS_PER_CHARACTER) {
                let user = &self.users[u];
                plan.suggestions.push(Suggestion {
                    character_id: self.chars[c].id,
                    character_name: self.chars[c].name.clone(),
                    discord_user_id: user.id,
                    discord_name: user
                        .display_name
                        .clone()
                        .unwrap_or_else(|| user.username.clone()),
                    score,
                });
            }
        }
    }

    /// Owned characters by normalized name: (player index, character).
    fn owned_characters(&self) -> HashMap<String, Vec<(usize, &'s OwnedCharacter)>> {
        let mut map: HashMap<String, Vec<(usize, &OwnedCharacter)>> = HashMap::new();
        for (p, player) in self.players.iter().enumerate() {
            for c in &player.characters {
                map.entry(normalize_name(&c.name)).or_default().push((p, c));
            }
        }
        map
    }

    /// The one character this character's alt notes name, with the hint, note field and note.
    /// A name several characters hold resolves to the one on this character's realm, else it is
    /// a tie (recorded). Notes naming different characters are a tie too.
    fn alt_target(
        &self,
        c: usize,
        ch: &UnlinkedCharacter,
        by_char_name: &HashMap<String, Vec<usize>>,
        owned: &HashMap<String, Vec<(usize, &OwnedCharacter)>>,
        plan: &mut Plan,
    ) -> Option<(AltTarget, String, &'static str, String)> {
        let mut found: Vec<(AltTarget, i64, String, &'static str, String)> = Vec::new();
        for (field, note) in [
            ("guild_note", &ch.guild_note),
            ("officer_note", &ch.officer_note),
        ] {
            let Some(note) = note.as_deref() else {
                continue;
            };
            for hint in alt_hints(note) {
                let key = normalize_name(&hint);
                // (target, character id, realm)
                let mut candidates: Vec<(AltTarget, i64, &str)> = Vec::new();
                for &t in by_char_name.get(&key).into_iter().flatten() {
                    if t != c {
                        let t_char = &self.chars[t];
                        candidates.push((AltTarget::Unlinked(t), t_char.id, &t_char.realm_slug));
                    }
                }
                for &(p, oc) in owned.get(&key).into_iter().flatten() {
                    candidates.push((AltTarget::Owned(p, oc.id), oc.id, &oc.realm_slug));
                }
                if candidates.iter().any(|x| x.2 == ch.realm_slug) {
                    candidates.retain(|x| x.2 == ch.realm_slug);
                }
                match candidates.as_slice() {
                    [] => {}
                    [(target, id, _)] => {
                        found.push((*target, *id, hint.clone(), field, note.to_string()))
                    }
                    tied => {
                        plan.skipped.push(Skipped {
                            character_id: ch.id,
                            character_name: ch.name.clone(),
                            strategy: LinkSource::AltNote,
                            reason: "tie",
                            candidates: tied.iter().map(|x| x.1).collect(),
                        });
                        return None;
                    }
                }
            }
        }
        let first = found.first()?;
        if found.iter().any(|x| x.1 != first.1) {
            let mut ids: Vec<i64> = found.iter().map(|x| x.1).collect();
            ids.sort_unstable();
            ids.dedup();
            plan.skipped.push(Skipped {
                character_id: ch.id,
                character_name: ch.name.clone(),
                strategy: LinkSource::AltNote,
                reason: "tie",
                candidates: ids,
            });
            return None;
        }
        let (target, _, hint, field, note) = found.swap_remove(0);
        Some((target, hint, field, note))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AltTarget {
    /// Index into the unlinked characters.
    Unlinked(usize),
    /// Index into the players, and the owned character's id.
    Owned(usize, i64),
}

/// What a group holds, to keep groups consistent.
#[derive(Debug, Clone, Default)]
struct GroupAttrs {
    users: BTreeSet<usize>,
    players: BTreeSet<usize>,
    /// The Discord user of the group's existing player (index into users), if present.
    player_discord: Option<usize>,
    /// The existing player has a Discord user who is no longer present.
    player_has_absent_discord: bool,
}

impl GroupAttrs {
    /// A group may hold one Discord user and one existing player, and the player's Discord user
    /// (if it has one) must be that user.
    fn consistent(&self) -> bool {
        if self.users.len() > 1 || self.players.len() > 1 {
            return false;
        }
        match self.users.iter().next() {
            Some(u) => {
                !self.player_has_absent_discord && self.player_discord.is_none_or(|d| d == *u)
            }
            None => true,
        }
    }

    fn merge(&mut self, other: &GroupAttrs) {
        self.users.extend(&other.users);
        self.players.extend(&other.players);
        self.player_discord = self.player_discord.or(other.player_discord);
        self.player_has_absent_discord |= other.player_has_absent_discord;
    }
}

/// Union–find with per-group attributes.
struct Groups {
    parent: Vec<usize>,
    attrs: Vec<GroupAttrs>,
}

impl Groups {
    fn new(n: usize) -> Self {
        Groups {
            parent: (0..n).collect(),
            attrs: vec![GroupAttrs::default(); n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn can_union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return true;
        }
        let mut merged = self.attrs[ra].clone();
        merged.merge(&self.attrs[rb]);
        merged.consistent()
    }

    /// Merge; the smaller root stays the root so group order is by first member.
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[child] = root;
        let child_attrs = std::mem::take(&mut self.attrs[child]);
        self.attrs[root].merge(&child_attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ch(id: i64, name: &str) -> UnlinkedCharacter {
        UnlinkedCharacter {
            id,
            name: name.to_string(),
            realm_slug: "stormrage".to_string(),
            guild_note: None,
            officer_note: None,
        }
    }

    fn noted(id: i64, name: &str, guild_note: &str, officer_note: &str) -> UnlinkedCharacter {
        UnlinkedCharacter {
            guild_note: (!guild_note.is_empty()).then(|| guild_note.to_string()),
            officer_note: (!officer_note.is_empty()).then(|| officer_note.to_string()),
            ..ch(id, name)
        }
    }

    fn user(id: i64, username: &str, display_name: Option<&str>) -> PresentDiscordUser {
        PresentDiscordUser {
            id,
            username: username.to_string(),
            display_name: display_name.map(str::to_string),
            has_guild_role: true,
            player_id: None,
        }
    }

    fn player(id: i64, discord_user_id: Option<i64>, chars: &[(i64, &str)]) -> ExistingPlayer {
        ExistingPlayer {
            id,
            discord_user_id,
            characters: chars
                .iter()
                .map(|&(id, name)| OwnedCharacter {
                    id,
                    name: name.to_string(),
                    realm_slug: "stormrage".to_string(),
                })
                .collect(),
        }
    }

    fn snapshot(
        characters: Vec<UnlinkedCharacter>,
        discord_users: Vec<PresentDiscordUser>,
        players: Vec<ExistingPlayer>,
    ) -> Snapshot {
        Snapshot {
            characters,
            discord_users,
            players,
        }
    }

    /// (character id, player, source) of every link.
    fn links(plan: &Plan) -> Vec<(i64, PlayerRef, LinkSource)> {
        plan.links
            .iter()
            .map(|l| (l.character_id, l.player, l.source))
            .collect()
    }

    #[test]
    fn an_exact_name_creates_a_player_named_after_the_discord_user() {
        let plan = plan(&snapshot(
            vec![ch(1, "Zatañña")],
            vec![user(10, "zatanna", Some("Zat the Great"))],
            vec![],
        ));
        assert_eq!(
            plan.new_players,
            [NewPlayer {
                display_name: "Zat the Great".into(),
                discord_user_id: Some(10)
            }]
        );
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::New(0), LinkSource::ExactName)]
        );
        assert_eq!(plan.links[0].confidence, Confidence::High);
        assert_eq!(plan.links[0].evidence["matched"], "username");
    }

    #[test]
    fn an_exact_name_matching_two_users_links_neither_and_says_why() {
        let plan = plan(&snapshot(
            vec![ch(1, "Thrall")],
            vec![
                user(10, "thrall", None),
                user(11, "orcdude", Some("Thrall")),
            ],
            vec![],
        ));
        assert!(plan.links.is_empty());
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].reason, "tie");
        assert_eq!(plan.skipped[0].candidates, [10, 11]);
        assert_eq!(plan.unlinked, 1);
    }

    #[test]
    fn users_without_a_guild_role_are_not_name_candidates() {
        let mut u = user(10, "thrall", None);
        u.has_guild_role = false;
        let plan = plan(&snapshot(vec![ch(1, "Thrall")], vec![u], vec![]));
        assert!(plan.links.is_empty());
    }

    #[test]
    fn a_guild_note_hint_naming_a_linked_user_adds_the_character_to_their_player() {
        let mut bob = user(10, "bob", None);
        bob.has_guild_role = false;
        bob.player_id = Some(100);
        let plan = plan(&snapshot(
            vec![noted(1, "Healbot", "Discord: Bob.", "")],
            vec![bob],
            vec![player(100, Some(10), &[(50, "Bobmain")])],
        ));
        assert!(plan.new_players.is_empty());
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::Existing(100), LinkSource::GuildNote)]
        );
        assert_eq!(plan.links[0].evidence["hint"], "Bob");
    }

    #[test]
    fn a_hint_equal_to_a_username_wins_over_display_names() {
        let plan = plan(&snapshot(
            vec![noted(1, "Healbot", "@bob", "")],
            vec![user(10, "bob", None), user(11, "robert", Some("Bob"))],
            vec![],
        ));
        assert_eq!(plan.new_players[0].discord_user_id, Some(10));
    }

    #[test]
    fn the_officer_note_is_read_when_the_guild_note_names_nobody() {
        let plan = plan(&snapshot(
            vec![noted(1, "Healbot", "Discord: nobody", "DC: carl")],
            vec![user(10, "carl", None)],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::New(0), LinkSource::OfficerNote)]
        );
    }

    #[test]
    fn fuzzy_scores_link_suggest_or_skip_by_threshold() {
        // thrall/thrail = 0.833 (suggest); arthas/arthes = 0.833; sylvanas/sylvanaz = 0.875 (link)
        let plan = plan(&snapshot(
            vec![ch(1, "Sylvanas"), ch(2, "Thrall"), ch(3, "Jaina")],
            vec![
                user(10, "sylvanaz", None),
                user(11, "thrail", None),
                user(12, "varian", None),
            ],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::New(0), LinkSource::FuzzyName)]
        );
        assert_eq!(plan.links[0].confidence, Confidence::Medium);
        assert_eq!(plan.suggestions.len(), 1);
        assert_eq!(plan.suggestions[0].character_id, 2);
        assert_eq!(plan.suggestions[0].discord_user_id, 11);
        assert_eq!(plan.unlinked, 2);
    }

    #[test]
    fn two_characters_matching_one_user_share_one_new_player() {
        let plan = plan(&snapshot(
            vec![ch(1, "Thrall"), ch(2, "Thrałl")],
            vec![user(10, "thrall", None)],
            vec![],
        ));
        assert_eq!(plan.new_players.len(), 1);
        assert_eq!(
            links(&plan),
            [
                (1, PlayerRef::New(0), LinkSource::ExactName),
                (2, PlayerRef::New(0), LinkSource::ExactName)
            ]
        );
    }

    #[test]
    fn an_alt_note_joins_the_player_owning_the_named_character_and_brings_its_discord_user() {
        let plan = plan(&snapshot(
            vec![noted(1, "Healbot", "alt of Thrall", "DC: orcfan")],
            vec![user(10, "orcfan", None)],
            vec![player(100, None, &[(50, "Thrall")])],
        ));
        assert!(plan.new_players.is_empty());
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::Existing(100), LinkSource::OfficerNote)]
        );
        assert_eq!(
            plan.attachments,
            [DiscordAttachment {
                player_id: 100,
                discord_user_id: 10
            }]
        );
    }

    #[test]
    fn alts_without_any_discord_user_become_one_player_named_after_the_main() {
        let plan = plan(&snapshot(
            vec![
                noted(1, "Healbot", "alt of Thrall", ""),
                ch(2, "Thrall"),
                noted(3, "Tankbot", "Thrall's alt", ""),
                ch(4, "Loner"),
            ],
            vec![],
            vec![],
        ));
        assert_eq!(
            plan.new_players,
            [NewPlayer {
                display_name: "Thrall".into(),
                discord_user_id: None
            }]
        );
        assert_eq!(
            links(&plan),
            [
                (1, PlayerRef::New(0), LinkSource::AltNote),
                (2, PlayerRef::New(0), LinkSource::AltNote),
                (3, PlayerRef::New(0), LinkSource::AltNote)
            ]
        );
        assert_eq!(plan.unlinked, 1);
    }

    #[test]
    fn an_alt_note_that_would_join_two_discord_users_is_refused() {
        let plan = plan(&snapshot(
            vec![noted(1, "Healbot", "alt of Thrall", "DC: orcfan")],
            vec![user(10, "orcfan", None), user(11, "thrallguy", None)],
            vec![player(100, Some(11), &[(50, "Thrall")])],
        ));
        // The Discord evidence still links the character, to a player of its own.
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::New(0), LinkSource::OfficerNote)]
        );
        assert_eq!(plan.skipped[0].reason, "conflict");
        assert!(plan.attachments.is_empty());
    }

    #[test]
    fn an_alt_name_held_on_two_other_realms_names_nobody() {
        let mut a = ch(2, "Thrall");
        a.realm_slug = "area-52".into();
        let mut b = ch(3, "Thrall");
        b.realm_slug = "illidan".into();
        let plan = plan(&snapshot(
            vec![noted(1, "Healbot", "alt of Thrall", ""), a, b],
            vec![],
            vec![],
        ));
        assert!(plan.links.is_empty());
        assert_eq!(plan.skipped[0].candidates, [2, 3]);
    }

    /// The snapshot the next run would load after `plan` is applied to `s`.
    fn applied(s: &Snapshot, plan: &Plan) -> Snapshot {
        let mut next = s.clone();
        let first_new = s.players.iter().map(|p| p.id).max().unwrap_or(0) + 1000;
        for (i, np) in plan.new_players.iter().enumerate() {
            next.players.push(ExistingPlayer {
                id: first_new + i as i64,
                discord_user_id: np.discord_user_id,
                characters: vec![],
            });
        }
        let id_of = |r: PlayerRef| match r {
            PlayerRef::Existing(id) => id,
            PlayerRef::New(i) => first_new + i as i64,
        };
        for a in &plan.attachments {
            let p = next
                .players
                .iter_mut()
                .find(|p| p.id == a.player_id)
                .unwrap();
            assert!(p.discord_user_id.is_none(), "attached over a Discord user");
            p.discord_user_id = Some(a.discord_user_id);
        }
        for l in &plan.links {
            let c = s
                .characters
                .iter()
                .find(|c| c.id == l.character_id)
                .unwrap();
            let p = next
                .players
                .iter_mut()
                .find(|p| p.id == id_of(l.player))
                .unwrap();
            p.characters.push(OwnedCharacter {
                id: c.id,
                name: c.name.clone(),
                realm_slug: c.realm_slug.clone(),
            });
        }
        let linked: BTreeSet<i64> = plan.links.iter().map(|l| l.character_id).collect();
        next.characters.retain(|c| !linked.contains(&c.id));
        for u in &mut next.discord_users {
            u.player_id = next
                .players
                .iter()
                .find(|p| p.discord_user_id == Some(u.id))
                .map(|p| p.id);
        }
        next
    }

    const NAMES: &[&str] = &[
        "thrall", "thrail", "jaina", "jaína", "arthas", "arthes", "bob", "bobby", "sylvanas",
    ];

    fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
        let name = proptest::sample::select(NAMES);
        let note = proptest::option::of(prop_oneof![
            name.clone().prop_map(|n| format!("alt of {n}")),
            name.clone().prop_map(|n| format!("Discord: {n}")),
            name.clone().prop_map(|n| format!("{n}'s alt")),
        ]);
        let chars = proptest::collection::vec(
            (
                name.clone(),
                proptest::sample::select(&["a", "b"][..]),
                note.clone(),
                note,
            ),
            0..8,
        );
        let users = proptest::collection::vec(
            (
                name.clone(),
                proptest::option::of(name.clone()),
                any::<bool>(),
            ),
            0..6,
        );
        let owned = proptest::collection::vec(
            (
                proptest::option::of(0usize..6),
                proptest::collection::vec(name, 0..3),
            ),
            0..3,
        );
        (chars, users, owned).prop_map(|(chars, users, owned)| {
            let characters: Vec<UnlinkedCharacter> = chars
                .into_iter()
                .enumerate()
                .map(|(i, (n, realm, g, o))| UnlinkedCharacter {
                    id: i as i64 + 1,
                    name: n.to_string(),
                    realm_slug: realm.to_string(),
                    guild_note: g,
                    officer_note: o,
                })
                .collect();
            let mut discord_users: Vec<PresentDiscordUser> = users
                .into_iter()
                .enumerate()
                .map(|(i, (u, d, role))| PresentDiscordUser {
                    id: i as i64 + 10,
                    username: format!("{u}{}", if i % 2 == 0 { "" } else { "x" }),
                    display_name: d.map(str::to_string),
                    has_guild_role: role,
                    player_id: None,
                })
                .collect();
            let mut players = Vec::new();
            let mut taken = BTreeSet::new();
            for (p, (du, names)) in owned.into_iter().enumerate() {
                let pid = p as i64 + 100;
                let discord = du
                    .filter(|&u| u < discord_users.len() && taken.insert(u))
                    .map(|u| {
                        discord_users[u].player_id = Some(pid);
                        discord_users[u].id
                    });
                players.push(ExistingPlayer {
                    id: pid,
                    discord_user_id: discord,
                    characters: names
                        .into_iter()
                        .enumerate()
                        .map(|(k, n)| OwnedCharacter {
                            id: 1000 + pid * 10 + k as i64,
                            name: n.to_string(),
                            realm_slug: "a".into(),
                        })
                        .collect(),
                });
            }
            Snapshot {
                characters,
                discord_users,
                players,
            }
        })
    }

    proptest! {
        #[test]
        fn the_plan_is_the_same_whatever_order_the_rows_come_in(
            s in arb_snapshot(),
            seed in any::<u64>(),
        ) {
            let mut shuffled = s.clone();
            // A cheap deterministic shuffle: rotate and reverse by the seed's bits.
            let k = (seed % 7) as usize;
            if !shuffled.characters.is_empty() {
                let n = shuffled.characters.len();
                shuffled.characters.rotate_left(k % n);
            }
            if seed & 1 == 1 { shuffled.characters.reverse(); }
            if seed & 2 == 2 { shuffled.discord_users.reverse(); }
            if seed & 4 == 4 { shuffled.players.reverse(); }
            prop_assert_eq!(plan(&s), plan(&shuffled));
        }

        #[test]
        fn a_plan_keeps_one_player_per_user_and_one_player_per_character(s in arb_snapshot()) {
            let p = plan(&s);
            let chars: BTreeSet<i64> = p.links.iter().map(|l| l.character_id).collect();
            prop_assert_eq!(chars.len(), p.links.len());
            let mut users = BTreeSet::new();
            for u in p.new_players.iter().filter_map(|n| n.discord_user_id)
                .chain(p.attachments.iter().map(|a| a.discord_user_id))
            {
                prop_assert!(users.insert(u), "user {} placed twice", u);
                let existing = s.discord_users.iter().find(|x| x.id == u).unwrap();
                prop_assert!(existing.player_id.is_none());
            }
            let attached: BTreeSet<i64> = p.attachments.iter().map(|a| a.player_id).collect();
            prop_assert_eq!(attached.len(), p.attachments.len());
        }

        #[test]
        fn planning_again_after_applying_a_plan_changes_nothing(s in arb_snapshot()) {
            let first = plan(&s);
            let second = plan(&applied(&s, &first));
            prop_assert!(second.new_players.is_empty(), "{:?}", second.new_players);
            prop_assert!(second.links.is_empty(), "{:?}", second.links);
            prop_assert!(second.attachments.is_empty(), "{:?}", second.attachments);
        }
    }
}
