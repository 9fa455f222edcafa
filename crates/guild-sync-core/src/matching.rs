//! The match plan: from a snapshot of unlinked characters, present Discord users and existing
//! players to the players, links, Discord attachments and suggestions to create (requirements
//! Task 3, SPEC §5). Pure: the service loads the snapshot and applies the plan in one
//! transaction; nothing here reads or writes a database.
//!
//! **The names a Discord user is matched on** ([`NameKind`]): the username, the account's
//! global name and the server nickname (a display name that differs from the global name). A
//! name written `Name-Realm` or `Name @ Realm` (a realm some character is on) names only that
//! realm's character. A name that lists characters (`Main / Alt`, `Main | Alt`, `Main (Alt)`,
//! `Main - Alt`, `Main, Alt`, `Main & Alt`) also offers each part of [`MIN_PART_CHARS`] or more
//! characters as a name. Every name is compared in [`crate::names`]' cleaned form (NFKC, no
//! invisible or bidirectional control characters).
//!
//! **Strategies, strongest first.** Each is applied to *every* character before the next one
//! starts, so a weaker strategy always knows what the stronger ones decided in this run:
//! 1. `exact_name` — the character's name equals a whole name of exactly one user with a guild
//!    role (users who already have a player included: the character joins their player).
//! 2. `guild_note` — a Discord hint in the guild note names a present user (any user; a hint
//!    equal to someone's username wins over display names, because usernames are unique on
//!    Discord and display names are not).
//! 3. `officer_note` — the same in the officer note.
//! 4. `display_name_part` — the name equals a part of exactly one user's listing name, and no
//!    other character (unlinked or owned) answers to that part.
//! 5. `fuzzy_name` (or `display_name_part` when the best name is a part) — the single best
//!    [`fuzzy_match_score`](crate::fuzzy::fuzzy_match_score) over users with a guild role is at
//!    least [`FUZZY_LINK_THRESHOLD`] (medium confidence), **and that user had no player before
//!    the run and got none from strategies 1–4 in it**, and the name is not contested nor
//!    shared (see the choices below). A best user who has (or gets) a player only yields a
//!    [`Suggestion`] naming that player. A best score from [`FUZZY_SUGGEST_THRESHOLD`] up
//!    yields a suggestion towards users without a player.
//!
//! **Impersonation.** Anyone with a guild role can rename themselves on the server, so a name
//! hit only links when it is honest:
//! - a Discord name that equals the character's only after removing invisible characters,
//!   folding compatibility forms, or through letters of another script ([`Disguise`]) never
//!   links; at most it is a suggestion flagged as a look-alike;
//! - a hit whose only evidence is the server nickname (not the username, the global name or a
//!   part of it, nor a note) on a character ranked [`PROTECTED_RANK_LEVEL`] (Veteran) or above
//!   is a suggestion, not a link.
//!
//! Such hits are not rivals either: an impersonator cannot block the real owner's link by
//! creating a tie.
//!
//! **Choices made for precision** (SPEC §7: a wrong link is worse than a missing one):
//! - A strategy that names two or more users (a tie) links nobody; the tie is reported in
//!   [`Plan::skipped`] and the next strategy is tried — except fuzzy after a tied exact name or
//!   a refused part, which would only pick among the same names with less evidence.
//! - A character whose notes name its main is never linked by a fuzzy name: it follows its
//!   main (an alt's name says nothing about its owner's Discord name).
//! - A fuzzy link needs a name that points at one character only. A character whose exact
//!   name a user wears without being allowed to link it (a look-alike, a nickname on a
//!   protected rank) is contested: its near names are guesses ([`SkipReason::Contested`]). A
//!   Discord name (or listing part) scoring at least [`FUZZY_LINK_THRESHOLD`] against another
//!   character too — unlinked or owned, its own alts aside — links neither (a tie): a nickname
//!   copying one character is near another, one player's "Mainx" is near another player's
//!   near miss of "Main". A wrong fuzzy link costs more than itself: the main's alts follow.
//! - Alt hints (`alt of X`, `X's alt`, `Main: X`) name a character; a name held by several
//!   characters resolves to the one on the same realm, else to nobody (a tie). Alt relations are
//!   merged after all Discord evidence, in character-id order, and one that would put two
//!   Discord users or two existing players into one player is refused and reported.
//! - Similarity suggestions only go to characters the plan leaves unlinked and users who still
//!   have no player, so they never contradict a link.
//!
//! **Deterministic and idempotent.** Inputs are sorted by id first, so the plan is the same
//! whatever order the rows come in; only the per-character evidence is gathered in parallel
//! (rayon), collected in order, and every decision after it is sequential. The fuzzy search,
//! most of the work, runs only for the characters strategies 1–4 left open. A second run over the
//! applied plan creates nothing, because no decision depends on something a run changes:
//! - rivals never shrink: exact and fuzzy candidates are all users with a guild role, with a
//!   player or not, so a tie stays a tie after one of the tied users gets linked;
//! - the fuzzy rule asks "had a player before the run, or got one from a stronger strategy in
//!   it" — after the run both cases read "has a player", so a suggestion stays a suggestion;
//! - a part answered by two characters, and a fuzzy name close to two, count characters that
//!   are already owned too, so the rival of a refused link does not vanish when it gets linked
//!   elsewhere;
//! - look-alike and nickname-only checks read only names and ranks.
//!
//! **Linking** follows Task 3: a player that already has the Discord user gets the character;
//! otherwise the player owning the character an alt note names (existing, or grouped in this
//! run), which also receives the Discord user if it has none; otherwise a new player named after
//! the Discord user. Alt groups with no Discord user become one player with no Discord user,
//! named after the main (the character the others name).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::fuzzy::{FuzzyIndex, PruneCounts};
use crate::names::{
    Disguise, clean_name, disguise, foreign_script, normalize_name, normalize_name_into, realm_key,
};
use crate::notes::{alt_hints, discord_hints};

/// A fuzzy score at or above this links the character (medium confidence).
pub const FUZZY_LINK_THRESHOLD: f64 = 0.85;

/// A best fuzzy score at or above this (and below [`FUZZY_LINK_THRESHOLD`]) becomes an
/// `auto_link_suggestion` for an officer to confirm.
pub const FUZZY_SUGGEST_THRESHOLD: f64 = 0.70;

/// Most suggestions recorded for one character.
pub const MAX_SUGGESTIONS_PER_CHARACTER: usize = 3;

/// `common.guild_ranks.level` from which a server nickname alone cannot claim a character
/// (3 = Veteran; Officer 4, Guild Leader 5): those ranks carry permissions worth impersonating.
pub const PROTECTED_RANK_LEVEL: i32 = 3;

/// Shortest part of a listing display name (`Main / Alt`) that counts as a name, in characters.
pub const MIN_PART_CHARS: usize = 3;

/// An in-guild character no player owns yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlinkedCharacter {
    pub id: i64,
    pub name: String,
    pub realm_slug: String,
    /// The guild note from the addon export.
    pub guild_note: Option<String>,
    pub officer_note: Option<String>,
    /// `common.guild_ranks.level` of the character's in-game rank (5 = Guild Leader …
    /// 1 = Initiate), if known.
    pub rank_level: Option<i32>,
}

/// A Discord user present on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentDiscordUser {
    pub id: i64,
    pub username: String,
    /// What the server shows: the server nickname, else the global name.
    pub display_name: Option<String>,
    /// The account's global name, when known. A display name that differs from it is a server
    /// nickname (one that is not known to differ is treated as one, the cautious reading).
    pub global_name: Option<String>,
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
    DisplayNamePart,
    FuzzyName,
    AltNote,
}

impl LinkSource {
    /// Every source the engine writes, strongest first.
    pub const ALL: [LinkSource; 6] = [
        LinkSource::ExactName,
        LinkSource::GuildNote,
        LinkSource::OfficerNote,
        LinkSource::DisplayNamePart,
        LinkSource::FuzzyName,
        LinkSource::AltNote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkSource::ExactName => "exact_name",
            LinkSource::GuildNote => "guild_note",
            LinkSource::OfficerNote => "officer_note",
            LinkSource::DisplayNamePart => "display_name_part",
            LinkSource::FuzzyName => "fuzzy_name",
            LinkSource::AltNote => "alt_note",
        }
    }

    /// How sure an exact link of this kind is (a fuzzy `display_name_part` is medium).
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

/// `player_characters.link_source` as stored: a strategy of the engine ([`LinkSource`]) or an
/// officer's link (`manual`) or a member's claim. Every value the column's CHECK constraint allows (migrations 0002,
/// 0840 and 1460) is a variant; serialised as the stored text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoredLinkSource {
    Engine(LinkSource),
    /// Linked by an officer (the API, the console, an accepted suggestion).
    Manual,
    /// Proved by the member: Discord login, then Battle.net login showed the character on
    /// their account (`/claim`, migration 1460). Beats every engine link, never a manual one.
    BattlenetOauth,
}

impl StoredLinkSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredLinkSource::Engine(source) => source.as_str(),
            StoredLinkSource::Manual => "manual",
            StoredLinkSource::BattlenetOauth => "battlenet_oauth",
        }
    }

    /// The stored text back to the variant; `None` for a value this version does not know.
    pub fn parse(s: &str) -> Option<StoredLinkSource> {
        match s {
            "manual" => return Some(StoredLinkSource::Manual),
            "battlenet_oauth" => return Some(StoredLinkSource::BattlenetOauth),
            _ => {}
        }
        LinkSource::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .map(StoredLinkSource::Engine)
    }
}

/// `player_characters.confidence` as stored: the engine's two ([`Confidence`]), plus
/// `confirmed` (an officer's link) and `low`, which the CHECK constraint allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredConfidence {
    Confirmed,
    High,
    Medium,
    Low,
}

impl StoredConfidence {
    pub const ALL: [StoredConfidence; 4] = [
        StoredConfidence::Confirmed,
        StoredConfidence::High,
        StoredConfidence::Medium,
        StoredConfidence::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoredConfidence::Confirmed => "confirmed",
            StoredConfidence::High => "high",
            StoredConfidence::Medium => "medium",
            StoredConfidence::Low => "low",
        }
    }

    /// The stored text back to the variant; `None` for a value this version does not know.
    pub fn parse(s: &str) -> Option<StoredConfidence> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl From<Confidence> for StoredConfidence {
    fn from(confidence: Confidence) -> Self {
        match confidence {
            Confidence::High => StoredConfidence::High,
            Confidence::Medium => StoredConfidence::Medium,
        }
    }
}

/// Both stored enums read and write as their text (JSON answers, templates, logs).
macro_rules! stored_text {
    ($($ty:ty),*) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$ty>::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} {text:?}", stringify!($ty)))
                })
            }
        }
    )*};
}

stored_text!(StoredLinkSource, StoredConfidence);

/// Which of a Discord user's names matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameKind {
    Username,
    GlobalName,
    /// The server nickname: any member can set it to anything.
    Nickname,
}

impl NameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Username => "username",
            NameKind::GlobalName => "global_name",
            NameKind::Nickname => "nickname",
        }
    }
}

/// Which note a hint was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteField {
    GuildNote,
    OfficerNote,
}

impl NoteField {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteField::GuildNote => "guild_note",
            NoteField::OfficerNote => "officer_note",
        }
    }
}

/// Why evidence linked nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The evidence names several users or characters.
    Tie,
    /// An alt relation would join two Discord users or two players.
    Conflict,
    /// A user wears the character's exact name but may not link it (a look-alike, a nickname on
    /// a protected rank), so a fuzzy link to someone else would be a guess.
    Contested,
}

/// Why a pair is only suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    /// The names are close (a fuzzy score below the link threshold, or tied).
    Similar,
    /// The best fuzzy match is a user who already has (or gets in this run) a player.
    ClaimedUser,
    /// The names are equal only through a [`Disguise`].
    LookAlike,
    /// Only the server nickname matches, and the character's rank is protected.
    NicknameOnly,
}

impl SuggestionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SuggestionKind::Similar => "similar",
            SuggestionKind::ClaimedUser => "claimed_user",
            SuggestionKind::LookAlike => "look_alike",
            SuggestionKind::NicknameOnly => "nickname_only",
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
    /// The name that matched (the user's display name, else username, for similar names).
    pub discord_name: String,
    pub score: f64,
    pub kind: SuggestionKind,
    /// For a look-alike: how the name disguises itself.
    pub disguise: Option<Disguise>,
    /// The player the Discord user already has, or gets in this run.
    pub player: Option<PlayerRef>,
}

/// Why a character with some evidence was left unlinked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub character_id: i64,
    pub character_name: String,
    pub strategy: LinkSource,
    pub reason: SkipReason,
    /// The tied Discord user ids; for alt notes and refused display-name parts, the character
    /// ids answering to the same name; for a conflict, the refused alt target's character id.
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

/// One name a Discord user can be matched on: a whole name, or a part of a listing name.
#[derive(Debug, Clone)]
pub struct NameEntry {
    /// Index into the planner's users.
    pub user: usize,
    pub kind: NameKind,
    /// The name or part as written (cleaned), without a realm suffix.
    pub text: String,
    /// The whole Discord name it comes from, as written.
    pub whole: String,
    pub is_part: bool,
    /// [`normalize_name`] of `text`.
    key: String,
    /// [`realm_key`] of a `Name-Realm` suffix.
    realm: Option<String>,
    disguise: Option<Disguise>,
}

/// Every name entry of `users` (indices into `users`) that name strategies may match, given the
/// realm keys characters are on. Public for the benchmark, which checks the fuzzy index over
/// exactly these names.
pub fn name_entries<U: Borrow<PresentDiscordUser>>(
    users: &[U],
    candidates: impl Iterator<Item = usize>,
    realms: &HashSet<String>,
) -> Vec<NameEntry> {
    let mut entries = Vec::new();
    for u in candidates {
        let user = users[u].borrow();
        let mut names: Vec<(NameKind, &str)> = vec![(NameKind::Username, user.username.as_str())];
        if let Some(global) = user.global_name.as_deref() {
            names.push((NameKind::GlobalName, global));
        }
        if let Some(display) = user.display_name.as_deref() {
            let is_global = user.global_name.as_deref() == Some(display);
            let is_username = user.global_name.is_none() && display == user.username;
            if !is_global && !is_username {
                names.push((NameKind::Nickname, display));
            }
        }
        for (kind, name) in names {
            push_entries(&mut entries, u, kind, name, realms);
        }
    }
    entries
}

fn push_entries(
    entries: &mut Vec<NameEntry>,
    user: usize,
    kind: NameKind,
    name: &str,
    realms: &HashSet<String>,
) {
    let cleaned = clean_name(name);
    let masked = disguise(name);
    let entry = |text: &str, key: String, realm: Option<String>, is_part: bool| NameEntry {
        user,
        kind,
        text: text.to_string(),
        whole: name.to_string(),
        is_part,
        key,
        realm,
        disguise: masked,
    };
    if let Some((base, realm)) = split_realm(&cleaned, realms) {
        entries.push(entry(base, normalize_name(base), Some(realm), false));
        return;
    }
    let key = normalize_name(&cleaned);
    if key.is_empty() {
        return;
    }
    entries.push(entry(&cleaned, key, None, false));
    // Usernames cannot hold separators; most display names hold none.
    if !cleaned.contains(['/', '|', '(', ')', '[', ']', ',', '&', '-']) {
        return;
    }
    let parts = split_parts(&cleaned);
    if parts.len() < 2 {
        return;
    }
    for part in parts {
        if part.chars().count() < MIN_PART_CHARS {
            continue;
        }
        let (base, realm) = match split_realm(part, realms) {
            Some((base, realm)) => (base, Some(realm)),
            None => (part, None),
        };
        let key = normalize_name(base);
        if !key.is_empty() {
            entries.push(entry(base, key, realm, true));
        }
    }
}

/// `Name-Realm` / `Name @ Realm` where the realm is one characters are on: (name, realm key).
fn split_realm<'n>(name: &'n str, realms: &HashSet<String>) -> Option<(&'n str, String)> {
    if !name.contains(['-', '@']) {
        return None;
    }
    for (i, c) in name.char_indices() {
        if c != '-' && c != '@' {
            continue;
        }
        let (base, realm) = (name[..i].trim(), name[i + c.len_utf8()..].trim());
        let key = realm_key(realm);
        if !base.is_empty() && !key.is_empty() && realms.contains(&key) {
            return Some((base, key));
        }
    }
    None
}

/// The parts of a name that lists characters (`Main / Alt`, `Main | Alt`, `Main (Alt)`,
/// `Main - Alt`, `Main, Alt`, `Main & Alt`), trimmed; one part when it lists nothing.
fn split_parts(name: &str) -> Vec<&str> {
    const SEPARATORS: [char; 8] = ['/', '|', '(', ')', '[', ']', ',', '&'];
    let mut parts = Vec::new();
    // " - " separates; a hyphen inside a word ("Jean-Luc") does not.
    for chunk in name.split(" - ") {
        parts.extend(
            chunk
                .split(SEPARATORS)
                .map(str::trim)
                .filter(|p| !p.is_empty()),
        );
    }
    parts
}

/// The Discord evidence chosen for one character.
#[derive(Debug, Clone)]
struct DiscordMatch {
    user: usize,
    source: LinkSource,
    confidence: Confidence,
    evidence: serde_json::Value,
}

/// Whether a name hit may link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grade {
    Honest,
    LookAlike(Disguise),
    NicknameOnly,
}

/// A user's best name entry against one character, for one strategy.
#[derive(Debug, Clone, Copy)]
struct UserHit {
    user: usize,
    entry: usize,
    score: f64,
    grade: Grade,
}

/// The users one note's Discord hints name, with the hint that named each.
#[derive(Debug, Clone)]
struct NoteHits {
    source: LinkSource,
    note: String,
    named: BTreeMap<usize, String>,
}

/// Everything the (parallel) evidence stages found for one character, strategy by strategy.
#[derive(Debug, Default)]
struct CharacterEvidence {
    exact: Vec<UserHit>,
    notes: Vec<NoteHits>,
    parts: Vec<UserHit>,
    /// Users scoring at least [`FUZZY_SUGGEST_THRESHOLD`], best entry each; searched only for
    /// characters strategies 1–4 left open.
    fuzzy: Vec<UserHit>,
}

/// A pair to suggest if the character ends up unlinked.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    user: usize,
    entry: Option<usize>,
    score: f64,
    kind: SuggestionKind,
    disguise: Option<Disguise>,
}

/// The run-wide decisions, filled strategy by strategy.
struct Decisions {
    found: Vec<Option<DiscordMatch>>,
    /// A tie or a refused part: the fuzzy stage would only pick among the same names.
    blocked: Vec<bool>,
    candidates: Vec<Vec<Candidate>>,
}

impl Decisions {
    fn new(n: usize) -> Self {
        Decisions {
            found: vec![None; n],
            blocked: vec![false; n],
            candidates: vec![Vec::new(); n],
        }
    }

    fn open(&self, c: usize) -> bool {
        self.found[c].is_none() && !self.blocked[c]
    }
}

/// An alt relation a character's notes state: the character they name, and where.
#[derive(Debug, Clone)]
struct AltRelation {
    target: AltTarget,
    target_id: i64,
    hint: String,
    field: NoteField,
    note: String,
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

/// [`index_by`] restricted to the names some wanted key equals: the planner looks users up only
/// by the Discord hints of the notes, so it indexes the few members those name rather than all
/// of them (50,000 on a big server). Normalizes into one reused buffer.
fn index_by_wanted<'a>(
    names: impl Iterator<Item = (usize, &'a str)>,
    wanted: &HashSet<String>,
) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    let Some(longest) = wanted.iter().map(String::len).max() else {
        return map;
    };
    let mut lengths = vec![false; longest + 1];
    for key in wanted {
        lengths[key.len()] = true;
    }
    let mut key = String::new();
    for (i, name) in names {
        normalize_name_into(name, &mut key);
        if lengths.get(key.len()) == Some(&true) && wanted.contains(key.as_str()) {
            map.entry(key.clone()).or_default().push(i);
        }
    }
    map
}

/// Plan the run. The same snapshot in any row order gives the same plan.
pub fn plan(snapshot: &Snapshot) -> Plan {
    let mut chars = snapshot.characters.clone();
    chars.sort_by_key(|c| c.id);
    chars.dedup_by_key(|c| c.id);
    // By reference: a big server has tens of thousands of members, and copying their names
    // costed more than most of the planning.
    let mut users: Vec<&PresentDiscordUser> = snapshot.discord_users.iter().collect();
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

/// The realm keys of every character in the snapshot: what a `Name-Realm` suffix may name.
pub fn snapshot_realms(snapshot: &Snapshot) -> HashSet<String> {
    realms_of(&snapshot.characters, &snapshot.players)
}

fn realms_of(chars: &[UnlinkedCharacter], players: &[ExistingPlayer]) -> HashSet<String> {
    chars
        .iter()
        .map(|c| c.realm_slug.as_str())
        .chain(
            players
                .iter()
                .flat_map(|p| p.characters.iter().map(|c| c.realm_slug.as_str())),
        )
        .map(realm_key)
        .filter(|k| !k.is_empty())
        .collect()
}

struct Planner<'s> {
    chars: &'s [UnlinkedCharacter],
    users: &'s [&'s PresentDiscordUser],
    players: &'s [ExistingPlayer],
    /// Normalized name and realm key of every character, by index.
    char_keys: Vec<(String, String)>,
    /// Users by normalized username and by display name, for the names the notes' Discord hints
    /// give (and only those).
    by_username: HashMap<String, Vec<usize>>,
    by_display_name: HashMap<String, Vec<usize>>,
    /// Names of users with a guild role (the exact, part and fuzzy candidates).
    entries: Vec<NameEntry>,
    whole_by_key: HashMap<String, Vec<usize>>,
    part_by_key: HashMap<String, Vec<usize>>,
    /// Over `entries`, one name each.
    fuzzy: FuzzyIndex,
    player_index: HashMap<i64, usize>,
}

impl<'s> Planner<'s> {
    fn new(
        chars: &'s [UnlinkedCharacter],
        users: &'s [&'s PresentDiscordUser],
        players: &'s [ExistingPlayer],
    ) -> Self {
        let hinted: HashSet<String> = chars
            .iter()
            .flat_map(|c| [c.guild_note.as_deref(), c.officer_note.as_deref()])
            .flatten()
            .flat_map(discord_hints)
            .map(|hint| normalize_name(&hint))
            .filter(|key| !key.is_empty())
            .collect();
        let by_username = index_by_wanted(
            users
                .iter()
                .enumerate()
                .map(|(i, u)| (i, u.username.as_str())),
            &hinted,
        );
        let by_display_name = index_by_wanted(
            users
                .iter()
                .enumerate()
                .filter_map(|(i, u)| u.display_name.as_deref().map(|d| (i, d))),
            &hinted,
        );
        let realms = realms_of(chars, players);
        let entries = name_entries(
            users,
            (0..users.len()).filter(|&i| users[i].has_guild_role),
            &realms,
        );
        let mut whole_by_key: HashMap<String, Vec<usize>> = HashMap::new();
        let mut part_by_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (e, entry) in entries.iter().enumerate() {
            let map = if entry.is_part {
                &mut part_by_key
            } else {
                &mut whole_by_key
            };
            map.entry(entry.key.clone()).or_default().push(e);
        }
        let fuzzy = FuzzyIndex::new(entries.iter().map(|e| std::iter::once(e.text.as_str())));
        let char_keys = chars
            .iter()
            .map(|c| (normalize_name(&c.name), realm_key(&c.realm_slug)))
            .collect();
        let player_index = players.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        Planner {
            chars,
            users,
            players,
            char_keys,
            by_username,
            by_display_name,
            entries,
            whole_by_key,
            part_by_key,
            fuzzy,
            player_index,
        }
    }

    fn run(&self) -> Plan {
        let mut evidence: Vec<CharacterEvidence> = (0..self.chars.len())
            .into_par_iter()
            .map(|c| self.evidence_for(c))
            .collect();
        let mut plan = Plan::default();
        let alts = self.alt_relations(&mut plan);
        let mut decisions = Decisions::new(self.chars.len());
        self.decide_exact(&evidence, &mut decisions, &mut plan);
        self.decide_notes(&evidence, &mut decisions, &mut plan);
        self.decide_parts(&evidence, &mut decisions, &mut plan);
        // The fuzzy search is most of the work: only for characters the stronger strategies left
        // open (a decided, tied or alt-noted character would not use it).
        let fuzzy: Vec<(usize, Vec<UserHit>, PruneCounts)> = (0..self.chars.len())
            .into_par_iter()
            .filter(|&c| decisions.open(c) && alts[c].is_none())
            .map(|c| {
                let (hits, counts) = self.fuzzy_hits(c);
                (c, hits, counts)
            })
            .collect();
        for (c, hits, counts) in fuzzy {
            plan.fuzzy.by_length += counts.by_length;
            plan.fuzzy.by_shared_characters += counts.by_shared_characters;
            plan.fuzzy.by_common_subsequence += counts.by_common_subsequence;
            plan.fuzzy.scored += counts.scored;
            evidence[c].fuzzy = hits;
        }
        self.decide_fuzzy(&evidence, &alts, &mut decisions, &mut plan);
        plan.skipped.sort_by_key(|s| s.character_id);
        self.group_and_link(&decisions, &alts, &mut plan);
        plan
    }

    // ---- Evidence (per character, in parallel) -------------------------------------------

    /// The raw evidence of strategies 1–4 for one character (the fuzzy search comes later).
    fn evidence_for(&self, c: usize) -> CharacterEvidence {
        CharacterEvidence {
            exact: self.key_hits(c, &self.whole_by_key),
            notes: self.note_hits(&self.chars[c]),
            parts: self.key_hits(c, &self.part_by_key),
            fuzzy: Vec::new(),
        }
    }

    /// Entries equal to the character's name (and realm, when they name one), best per user.
    fn key_hits(&self, c: usize, map: &HashMap<String, Vec<usize>>) -> Vec<UserHit> {
        let (key, realm) = &self.char_keys[c];
        let hits = self.entries_fitting(map, key, realm).map(|e| (e, 1.0));
        self.best_per_user(c, hits)
    }

    /// Users whose best entry scores at least the suggestion threshold, best entry each.
    fn fuzzy_hits(&self, c: usize) -> (Vec<UserHit>, PruneCounts) {
        let (found, counts) = self
            .fuzzy
            .matches(&self.chars[c].name, FUZZY_SUGGEST_THRESHOLD);
        let hits = found.into_iter().filter(|&(e, _)| self.realm_fits(e, c));
        (self.best_per_user(c, hits), counts)
    }

    /// The Discord hints of the guild note, then the officer note.
    fn note_hits(&self, ch: &UnlinkedCharacter) -> Vec<NoteHits> {
        let mut out = Vec::new();
        for (source, note) in [
            (LinkSource::GuildNote, &ch.guild_note),
            (LinkSource::OfficerNote, &ch.officer_note),
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
            out.push(NoteHits {
                source,
                note: note.to_string(),
                named,
            });
        }
        out
    }

    fn realm_fits(&self, e: usize, c: usize) -> bool {
        self.entries[e]
            .realm
            .as_ref()
            .is_none_or(|r| *r == self.char_keys[c].1)
    }

    /// Whether a name entry may link this character.
    fn grade(&self, e: usize, c: usize) -> Grade {
        let entry = &self.entries[e];
        let ch = &self.chars[c];
        if let Some(d) = entry.disguise {
            return Grade::LookAlike(d);
        }
        if foreign_script(&ch.name, &entry.text) {
            return Grade::LookAlike(Disguise::ForeignScript);
        }
        if entry.kind == NameKind::Nickname
            && ch.rank_level.is_some_and(|r| r >= PROTECTED_RANK_LEVEL)
        {
            return Grade::NicknameOnly;
        }
        Grade::Honest
    }

    /// One hit per user (ascending): the best score, an honest entry before a disguised one,
    /// then username before global name before nickname, then the first entry.
    fn best_per_user(&self, c: usize, hits: impl Iterator<Item = (usize, f64)>) -> Vec<UserHit> {
        let mut best: BTreeMap<usize, UserHit> = BTreeMap::new();
        for (e, score) in hits {
            let hit = UserHit {
                user: self.entries[e].user,
                entry: e,
                score,
                grade: self.grade(e, c),
            };
            let rank = |h: &UserHit| {
                (
                    std::cmp::Reverse(ordered(h.score)),
                    h.grade != Grade::Honest,
                    self.entries[h.entry].kind,
                    h.entry,
                )
            };
            best.entry(hit.user)
                .and_modify(|old| {
                    if rank(&hit) < rank(old) {
                        *old = hit;
                    }
                })
                .or_insert(hit);
        }
        best.into_values().collect()
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

    // ---- Decisions (whole run, strategy by strategy) ----------------------------------------

    fn tie(&self, c: usize, strategy: LinkSource, candidates: Vec<i64>) -> Skipped {
        Skipped {
            character_id: self.chars[c].id,
            character_name: self.chars[c].name.clone(),
            strategy,
            reason: SkipReason::Tie,
            candidates,
        }
    }

    fn user_ids(&self, hits: &[UserHit]) -> Vec<i64> {
        hits.iter().map(|h| self.users[h.user].id).collect()
    }

    /// Split hits into the honest ones and suggestion candidates for the disguised ones.
    fn honest(&self, hits: &[UserHit], candidates: &mut Vec<Candidate>) -> Vec<UserHit> {
        let mut honest = Vec::new();
        for h in hits {
            match h.grade {
                Grade::Honest => honest.push(*h),
                Grade::LookAlike(d) => candidates.push(Candidate {
                    user: h.user,
                    entry: Some(h.entry),
                    score: h.score,
                    kind: SuggestionKind::LookAlike,
                    disguise: Some(d),
                }),
                Grade::NicknameOnly => candidates.push(Candidate {
                    user: h.user,
                    entry: Some(h.entry),
                    score: h.score,
                    kind: SuggestionKind::NicknameOnly,
                    disguise: None,
                }),
            }
        }
        honest
    }

    /// Strategy 1: a whole name of exactly one user.
    fn decide_exact(&self, ev: &[CharacterEvidence], d: &mut Decisions, plan: &mut Plan) {
        for (c, e) in ev.iter().enumerate() {
            let honest = self.honest(&e.exact, &mut d.candidates[c]);
            match honest.as_slice() {
                [] => {}
                [hit] => {
                    d.found[c] = Some(self.name_match(c, hit, LinkSource::ExactName));
                }
                tied => {
                    plan.skipped
                        .push(self.tie(c, LinkSource::ExactName, self.user_ids(tied)));
                    d.blocked[c] = true;
                }
            }
        }
    }

    /// Strategies 2–3: a Discord hint in the guild note, then the officer note. A note is
    /// written by officers, not chosen by the member, so it links whatever the names look like.
    fn decide_notes(&self, ev: &[CharacterEvidence], d: &mut Decisions, plan: &mut Plan) {
        for (c, e) in ev.iter().enumerate() {
            if d.found[c].is_some() {
                continue;
            }
            for hits in &e.notes {
                if hits.named.len() > 1 {
                    let ids = hits.named.keys().map(|&u| self.users[u].id).collect();
                    plan.skipped.push(self.tie(c, hits.source, ids));
                    continue;
                }
                if let Some((&u, hint)) = hits.named.iter().next() {
                    d.found[c] = Some(DiscordMatch {
                        user: u,
                        source: hits.source,
                        confidence: Confidence::High,
                        evidence: json!({
                            "strategy": hits.source.as_str(),
                            "hint": hint,
                            "note": hits.note,
                        }),
                    });
                    break;
                }
            }
        }
    }

    /// Strategy 4: a part of exactly one user's listing name, answered by no other character.
    fn decide_parts(&self, ev: &[CharacterEvidence], d: &mut Decisions, plan: &mut Plan) {
        let answered = self.characters_answering_parts(ev);
        for (c, e) in ev.iter().enumerate() {
            if !d.open(c) {
                continue;
            }
            let honest = self.honest(&e.parts, &mut d.candidates[c]);
            let rivals: BTreeSet<i64> = honest
                .iter()
                .flat_map(|h| answered.get(&h.entry).into_iter().flatten().copied())
                .filter(|&id| id != self.chars[c].id)
                .collect();
            if !rivals.is_empty() {
                plan.skipped.push(self.tie(
                    c,
                    LinkSource::DisplayNamePart,
                    rivals.into_iter().collect(),
                ));
                d.blocked[c] = true;
                continue;
            }
            match honest.as_slice() {
                [] => {}
                [hit] => {
                    d.found[c] = Some(self.name_match(c, hit, LinkSource::DisplayNamePart));
                }
                tied => {
                    plan.skipped.push(self.tie(
                        c,
                        LinkSource::DisplayNamePart,
                        self.user_ids(tied),
                    ));
                    d.blocked[c] = true;
                }
            }
        }
    }

    /// For every part entry some unlinked character equals: the character ids answering to it,
    /// owned characters included (so a refused part stays refused once its rival is linked).
    fn characters_answering_parts(&self, ev: &[CharacterEvidence]) -> HashMap<usize, Vec<i64>> {
        let mut answered: HashMap<usize, Vec<i64>> = HashMap::new();
        for (c, e) in ev.iter().enumerate() {
            for h in &e.parts {
                answered.entry(h.entry).or_default().push(self.chars[c].id);
            }
        }
        if answered.is_empty() {
            return answered;
        }
        for oc in self.players.iter().flat_map(|p| &p.characters) {
            let realm = realm_key(&oc.realm_slug);
            for e in self.entries_fitting(&self.part_by_key, &normalize_name(&oc.name), &realm) {
                if let Some(ids) = answered.get_mut(&e) {
                    ids.push(oc.id);
                }
            }
        }
        answered
    }

    /// Strategy 5: the single best fuzzy user, if it scores at least the link threshold and had
    /// no player before the run nor got one from strategies 1–4. A character whose notes name its
    /// main is left to follow its main: an alt's name says nothing about its owner's Discord
    /// name, so a close one is a coincidence (on the decoy-rich guild, every wrong fuzzy link
    /// was such an alt). Nor is a contested character linked, nor one whose Discord name is as
    /// close to another character ([`Planner::contested`], [`Planner::fuzzy_rivals`]).
    fn decide_fuzzy(
        &self,
        ev: &[CharacterEvidence],
        alts: &[Option<AltRelation>],
        d: &mut Decisions,
        plan: &mut Plan,
    ) {
        let claimed: HashSet<usize> = d.found.iter().flatten().map(|m| m.user).collect();
        // Tentative links, refused below when their name is as close to another character.
        let mut tentative: Vec<(usize, UserHit)> = Vec::new();
        for (c, e) in ev.iter().enumerate() {
            if !d.open(c) || alts[c].is_some() {
                continue;
            }
            let mut flagged = Vec::new();
            let honest = self.honest(&e.fuzzy, &mut flagged);
            d.candidates[c].extend(
                flagged
                    .into_iter()
                    .filter(|f| f.score >= FUZZY_LINK_THRESHOLD),
            );
            let Some(best) = honest.iter().map(|h| h.score).max_by(f64::total_cmp) else {
                continue;
            };
            let top: Vec<UserHit> = honest.iter().copied().filter(|h| h.score == best).collect();
            let kind = match top.as_slice() {
                [hit] if best >= FUZZY_LINK_THRESHOLD => {
                    let user = &self.users[hit.user];
                    if user.player_id.is_some() || claimed.contains(&hit.user) {
                        SuggestionKind::ClaimedUser
                    } else if let Some(wearers) = self.contested(e) {
                        plan.skipped.push(Skipped {
                            reason: SkipReason::Contested,
                            ..self.tie(c, self.fuzzy_source(hit), wearers)
                        });
                        SuggestionKind::Similar
                    } else {
                        tentative.push((c, *hit));
                        continue;
                    }
                }
                tied => {
                    if best >= FUZZY_LINK_THRESHOLD {
                        plan.skipped
                            .push(self.tie(c, LinkSource::FuzzyName, self.user_ids(tied)));
                    }
                    SuggestionKind::Similar
                }
            };
            d.candidates[c].extend(top.iter().map(|h| Candidate {
                user: h.user,
                entry: Some(h.entry),
                score: h.score,
                kind,
                disguise: None,
            }));
        }
        let rivals = self.fuzzy_rivals(&tentative, alts);
        for ((c, hit), others) in tentative.into_iter().zip(rivals) {
            let source = self.fuzzy_source(&hit);
            if !others.is_empty() {
                plan.skipped.push(self.tie(c, source, others));
                d.candidates[c].push(Candidate {
                    user: hit.user,
                    entry: Some(hit.entry),
                    score: hit.score,
                    kind: SuggestionKind::Similar,
                    disguise: None,
                });
                continue;
            }
            d.found[c] = Some(self.name_match(c, &hit, source));
        }
    }

    /// A fuzzy link on a part of a listing name is a `display_name_part` link.
    fn fuzzy_source(&self, hit: &UserHit) -> LinkSource {
        if self.entries[hit.entry].is_part {
            LinkSource::DisplayNamePart
        } else {
            LinkSource::FuzzyName
        }
    }

    /// The users wearing this open character's own name who may not link it, if any: for an
    /// open character every exact or part hit was refused (a look-alike, a nickname on a
    /// protected rank). Its near names are then guesses — on the decoy-rich guild every fuzzy
    /// link of an impersonated character went to the wrong player.
    fn contested(&self, e: &CharacterEvidence) -> Option<Vec<i64>> {
        let refused: Vec<UserHit> = e.exact.iter().chain(&e.parts).copied().collect();
        if refused.is_empty() {
            return None;
        }
        let mut ids = self.user_ids(&refused);
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }

    /// For each tentative fuzzy link, the ids of the other characters, unlinked or owned, that
    /// score at least [`FUZZY_LINK_THRESHOLD`] against the Discord name it rests on (on that
    /// name's realm, when it gives one). A name as close to two characters names neither: a
    /// nickname copying one character is near another, a player's "Mainx" is near another
    /// player's near miss of "Main". Owned characters count, so a rival linked in this run still
    /// counts in the next. The alts whose notes name the linked character are not its rivals:
    /// they follow it.
    fn fuzzy_rivals(
        &self,
        tentative: &[(usize, UserHit)],
        alts: &[Option<AltRelation>],
    ) -> Vec<Vec<i64>> {
        if tentative.is_empty() {
            return Vec::new();
        }
        let owned: Vec<&OwnedCharacter> = self.players.iter().flat_map(|p| &p.characters).collect();
        let names = self
            .chars
            .iter()
            .map(|c| (c.id, c.name.as_str(), c.realm_slug.as_str()))
            .chain(
                owned
                    .iter()
                    .map(|c| (c.id, c.name.as_str(), c.realm_slug.as_str())),
            )
            .collect::<Vec<_>>();
        let index = FuzzyIndex::new(names.iter().map(|&(_, name, _)| std::iter::once(name)));
        tentative
            .iter()
            .map(|&(c, hit)| {
                let entry = &self.entries[hit.entry];
                // Unlinked characters come first in `names`, at their own index.
                let follows_c = |x: usize| {
                    alts.get(x)
                        .and_then(Option::as_ref)
                        .is_some_and(|r| r.target == AltTarget::Unlinked(c))
                };
                index
                    .matches_as_b(&entry.text, FUZZY_LINK_THRESHOLD)
                    .into_iter()
                    .map(|(x, _)| x)
                    .filter(|&x| x != c && !follows_c(x))
                    .filter(|&x| {
                        entry
                            .realm
                            .as_ref()
                            .is_none_or(|r| *r == realm_key(names[x].2))
                    })
                    .map(|x| names[x].0)
                    .collect()
            })
            .collect()
    }

    /// The entries of `map` under `key` that fit a character on `realm` (they name no realm, or
    /// that one).
    fn entries_fitting<'m>(
        &'m self,
        map: &'m HashMap<String, Vec<usize>>,
        key: &str,
        realm: &'m str,
    ) -> impl Iterator<Item = usize> + 'm {
        map.get(key)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&e| self.entries[e].realm.as_ref().is_none_or(|r| r == realm))
    }

    /// The link evidence of a name hit: which name of the user matched, and how well.
    fn name_match(&self, c: usize, hit: &UserHit, source: LinkSource) -> DiscordMatch {
        let entry = &self.entries[hit.entry];
        let user = &self.users[hit.user];
        let exact = hit.score >= 1.0;
        let mut evidence = json!({
            "strategy": source.as_str(),
            "character_name": self.chars[c].name,
            "matched": entry.kind.as_str(),
            "discord_name": entry.whole,
        });
        if entry.is_part {
            evidence["part"] = json!(entry.text);
        }
        if let Some(realm) = &entry.realm {
            evidence["realm"] = json!(realm);
        }
        if !exact || source == LinkSource::FuzzyName {
            evidence["score"] = json!(hit.score);
            evidence["username"] = json!(user.username);
            evidence["display_name"] = json!(user.display_name);
        }
        DiscordMatch {
            user: hit.user,
            source,
            confidence: if exact {
                source.confidence()
            } else {
                Confidence::Medium
            },
            evidence,
        }
    }

    // ---- Groups and links ------------------------------------------------------------------

    /// Merge characters, Discord users and players into groups, then turn groups into links
    /// and the characters left over into suggestions.
    fn group_and_link(&self, d: &Decisions, alts: &[Option<AltRelation>], plan: &mut Plan) {
        let mut groups = self.seed_groups();
        self.merge_discord_evidence(d, &mut groups);
        let alt = self.merge_alt_relations(alts, &mut groups, plan);
        let linked_users = self.links_from_groups(d, &mut groups, &alt, plan);
        self.suggestions(d, &linked_users, plan);
    }

    fn user_node(&self, u: usize) -> usize {
        self.chars.len() + u
    }

    fn player_node(&self, p: usize) -> usize {
        self.chars.len() + self.users.len() + p
    }

    /// One node per character, user and existing player (in that order).
    fn seed_groups(&self) -> Groups {
        let mut groups = Groups::new(self.chars.len() + self.users.len() + self.players.len());
        for u in 0..self.users.len() {
            groups.attrs[self.user_node(u)].users = Members::one(u);
        }
        for (p, player) in self.players.iter().enumerate() {
            let attrs = &mut groups.attrs[self.player_node(p)];
            attrs.players = Members::one(p);
            attrs.player_discord = player
                .discord_user_id
                .and_then(|id| self.users.binary_search_by_key(&id, |u| u.id).ok());
            attrs.player_has_absent_discord =
                player.discord_user_id.is_some() && attrs.player_discord.is_none();
        }
        groups
    }

    /// Discord evidence first: it never conflicts (one user per character, one player per
    /// user).
    fn merge_discord_evidence(&self, d: &Decisions, groups: &mut Groups) {
        for (c, found) in d.found.iter().enumerate() {
            if let Some(m) = found {
                groups.union(c, self.user_node(m.user));
            }
        }
        for (u, user) in self.users.iter().enumerate() {
            if let Some(&p) = user.player_id.and_then(|id| self.player_index.get(&id)) {
                groups.union(self.user_node(u), self.player_node(p));
            }
        }
    }

    /// The alt relation each character's notes state, if they name exactly one character (ties
    /// are recorded). They depend only on the snapshot, so they are read once, up front.
    fn alt_relations(&self, plan: &mut Plan) -> Vec<Option<AltRelation>> {
        let owned = self.owned_characters();
        let by_char_name = index_by(
            self.chars
                .iter()
                .enumerate()
                .map(|(i, c)| (i, c.name.as_str())),
        );
        self.chars
            .iter()
            .enumerate()
            .map(|(c, ch)| self.alt_target(c, ch, &by_char_name, &owned, plan))
            .collect()
    }

    /// Alt relations, in character-id order, refusing the ones that conflict.
    fn merge_alt_relations(
        &self,
        alts: &[Option<AltRelation>],
        groups: &mut Groups,
        plan: &mut Plan,
    ) -> AltOutcome {
        let mut out = AltOutcome::default();
        for (c, ch) in self.chars.iter().enumerate() {
            let Some(rel) = &alts[c] else {
                continue;
            };
            let node = match rel.target {
                AltTarget::Unlinked(t) => t,
                AltTarget::Owned(p, _) => self.player_node(p),
            };
            if !groups.can_union(c, node) {
                plan.skipped.push(Skipped {
                    character_id: ch.id,
                    character_name: ch.name.clone(),
                    strategy: LinkSource::AltNote,
                    reason: SkipReason::Conflict,
                    candidates: vec![rel.target_id],
                });
                continue;
            }
            groups.union(c, node);
            out.has_accepted_alt.insert(c);
            out.evidence.entry(c).or_insert_with(|| {
                json!({"strategy": "alt_note", "hint": rel.hint, "field": rel.field.as_str(),
                       "note": rel.note})
            });
            if let AltTarget::Unlinked(t) = rel.target {
                out.named_as_main.insert(t);
                out.evidence.entry(t).or_insert_with(|| {
                    json!({"strategy": "alt_note", "named_by": ch.name,
                           "field": rel.field.as_str(), "note": rel.note})
                });
            }
        }
        out
    }

    /// Each group with a Discord user, a player or several characters becomes links. Returns
    /// the player each linked user ends up with.
    fn links_from_groups(
        &self,
        d: &Decisions,
        groups: &mut Groups,
        alt: &AltOutcome,
        plan: &mut Plan,
    ) -> HashMap<usize, PlayerRef> {
        let n_chars = self.chars.len();
        let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for c in 0..n_chars {
            members.entry(groups.find(c)).or_default().push(c);
        }
        let mut linked_users: HashMap<usize, PlayerRef> = HashMap::new();
        let mut linked_chars = 0;
        for (root, chars) in members {
            let attrs = &groups.attrs[root];
            let user = attrs.users.first;
            let player = attrs.players.first;
            let Some(target) = self.group_target(player, user, &chars, alt, plan) else {
                continue;
            };
            if let Some(u) = user {
                linked_users.insert(u, target);
            }
            for c in chars {
                let (source, confidence, evidence) = match &d.found[c] {
                    Some(m) => (m.source, m.confidence, m.evidence.clone()),
                    None => (
                        LinkSource::AltNote,
                        LinkSource::AltNote.confidence(),
                        alt.evidence.get(&c).cloned().unwrap_or_else(|| json!({})),
                    ),
                };
                linked_chars += 1;
                plan.links.push(PlannedLink {
                    character_id: self.chars[c].id,
                    player: target,
                    source,
                    confidence,
                    evidence,
                });
            }
        }
        // Users whose player gains nothing in this run still have it.
        for (u, user) in self.users.iter().enumerate() {
            if let Some(id) = user.player_id {
                linked_users.entry(u).or_insert(PlayerRef::Existing(id));
            }
        }
        plan.links.sort_by_key(|l| l.character_id);
        plan.attachments.sort_by_key(|a| a.player_id);
        plan.unlinked = n_chars - linked_chars;
        linked_users
    }

    /// The player a group's characters go to (creating or attaching as needed), or `None` for a
    /// lone character with no evidence.
    fn group_target(
        &self,
        player: Option<usize>,
        user: Option<usize>,
        chars: &[usize],
        alt: &AltOutcome,
        plan: &mut Plan,
    ) -> Option<PlayerRef> {
        match (player, user) {
            (Some(p), u) => {
                if let Some(u) = u
                    && self.players[p].discord_user_id.is_none()
                {
                    plan.attachments.push(DiscordAttachment {
                        player_id: self.players[p].id,
                        discord_user_id: self.users[u].id,
                    });
                }
                Some(PlayerRef::Existing(self.players[p].id))
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
                Some(PlayerRef::New(plan.new_players.len() - 1))
            }
            (None, None) if chars.len() >= 2 => {
                let main = chars
                    .iter()
                    .copied()
                    .find(|c| alt.named_as_main.contains(c) && !alt.has_accepted_alt.contains(c))
                    .unwrap_or(chars[0]);
                plan.new_players.push(NewPlayer {
                    display_name: self.chars[main].name.clone(),
                    discord_user_id: None,
                });
                Some(PlayerRef::New(plan.new_players.len() - 1))
            }
            (None, None) => None,
        }
    }

    /// Suggestions for the characters left unlinked: look-alikes, nickname-only matches and
    /// users who already have a player (naming it) first, then similar names towards users who
    /// still have no player.
    fn suggestions(
        &self,
        d: &Decisions,
        linked_users: &HashMap<usize, PlayerRef>,
        plan: &mut Plan,
    ) {
        let linked_chars: HashSet<i64> = plan.links.iter().map(|l| l.character_id).collect();
        for (c, candidates) in d.candidates.iter().enumerate() {
            let ch = &self.chars[c];
            if linked_chars.contains(&ch.id) {
                continue;
            }
            let mut ordered: Vec<&Candidate> = candidates.iter().collect();
            // Stable: within a kind, the order the strategies found them.
            ordered.sort_by_key(|k| k.kind == SuggestionKind::Similar);
            let mut seen: BTreeSet<usize> = BTreeSet::new();
            for k in ordered {
                if seen.len() == MAX_SUGGESTIONS_PER_CHARACTER {
                    break;
                }
                let player = linked_users.get(&k.user).copied();
                if k.kind == SuggestionKind::Similar && player.is_some() {
                    continue;
                }
                if !seen.insert(k.user) {
                    continue;
                }
                let user = &self.users[k.user];
                let discord_name = match (k.kind, k.entry) {
                    (SuggestionKind::Similar, _) | (_, None) => user
                        .display_name
                        .clone()
                        .unwrap_or_else(|| user.username.clone()),
                    (_, Some(e)) => self.entries[e].whole.clone(),
                };
                plan.suggestions.push(Suggestion {
                    character_id: ch.id,
                    character_name: ch.name.clone(),
                    discord_user_id: user.id,
                    discord_name,
                    score: k.score,
                    kind: k.kind,
                    disguise: k.disguise,
                    player,
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

    /// The one character this character's alt notes name. A name several characters hold
    /// resolves to the one on this character's realm, else it is a tie (recorded). Notes naming
    /// different characters are a tie too.
    fn alt_target(
        &self,
        c: usize,
        ch: &UnlinkedCharacter,
        by_char_name: &HashMap<String, Vec<usize>>,
        owned: &HashMap<String, Vec<(usize, &OwnedCharacter)>>,
        plan: &mut Plan,
    ) -> Option<AltRelation> {
        let mut found: Vec<AltRelation> = Vec::new();
        for (field, note) in [
            (NoteField::GuildNote, &ch.guild_note),
            (NoteField::OfficerNote, &ch.officer_note),
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
                    [(target, id, _)] => found.push(AltRelation {
                        target: *target,
                        target_id: *id,
                        hint: hint.clone(),
                        field,
                        note: note.to_string(),
                    }),
                    tied => {
                        let ids = tied.iter().map(|x| x.1).collect();
                        plan.skipped.push(self.tie(c, LinkSource::AltNote, ids));
                        return None;
                    }
                }
            }
        }
        let first = found.first()?;
        if found.iter().any(|x| x.target_id != first.target_id) {
            let mut ids: Vec<i64> = found.iter().map(|x| x.target_id).collect();
            ids.sort_unstable();
            ids.dedup();
            plan.skipped.push(self.tie(c, LinkSource::AltNote, ids));
            return None;
        }
        Some(found.swap_remove(0))
    }
}

/// The snapshot the next run would load once `plan` is applied to `s`: new players get ids
/// above every existing one, linked characters move to their players. For tests of "a second
/// run changes nothing", here and in the service crate.
pub fn snapshot_after(s: &Snapshot, plan: &Plan) -> Snapshot {
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
        if let Some(p) = next.players.iter_mut().find(|p| p.id == a.player_id) {
            p.discord_user_id = Some(a.discord_user_id);
        }
    }
    let by_id: HashMap<i64, &UnlinkedCharacter> = s.characters.iter().map(|c| (c.id, c)).collect();
    let player_at: HashMap<i64, usize> = next
        .players
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id, i))
        .collect();
    for l in &plan.links {
        let (Some(c), Some(&p)) = (by_id.get(&l.character_id), player_at.get(&id_of(l.player)))
        else {
            continue;
        };
        next.players[p].characters.push(OwnedCharacter {
            id: c.id,
            name: c.name.clone(),
            realm_slug: c.realm_slug.clone(),
        });
    }
    let linked: HashSet<i64> = plan.links.iter().map(|l| l.character_id).collect();
    next.characters.retain(|c| !linked.contains(&c.id));
    let player_of: HashMap<i64, i64> = next
        .players
        .iter()
        .filter_map(|p| p.discord_user_id.map(|u| (u, p.id)))
        .collect();
    for u in &mut next.discord_users {
        u.player_id = player_of.get(&u.id).copied();
    }
    next
}

/// A score as a totally ordered key (scores are finite, in `0.0..=1.0`).
fn ordered(score: f64) -> u64 {
    score.to_bits()
}

/// What merging the alt relations decided, for naming groups and writing evidence.
#[derive(Debug, Default)]
struct AltOutcome {
    /// For each character merged by an alt note: the evidence of the accepted relation.
    evidence: HashMap<usize, serde_json::Value>,
    /// Characters named by an accepted alt relation (mains of the groups).
    named_as_main: BTreeSet<usize>,
    has_accepted_alt: BTreeSet<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AltTarget {
    /// Index into the unlinked characters.
    Unlinked(usize),
    /// Index into the players, and the owned character's id.
    Owned(usize, i64),
}

/// The users (or players) of a group: how many, and the first. Groups partition the nodes and
/// each user or player starts in a node of its own, so two groups never share one and a merge
/// adds the counts; that is all a set would tell here, without an allocation per node.
#[derive(Debug, Clone, Copy, Default)]
struct Members {
    first: Option<usize>,
    count: usize,
}

impl Members {
    fn one(i: usize) -> Self {
        Members {
            first: Some(i),
            count: 1,
        }
    }

    fn merge(&mut self, other: Members) {
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.count += other.count;
    }
}

/// What a group holds, to keep groups consistent.
#[derive(Debug, Clone, Copy, Default)]
struct GroupAttrs {
    users: Members,
    players: Members,
    /// The Discord user of the group's existing player (index into users), if present.
    player_discord: Option<usize>,
    /// The existing player has a Discord user who is no longer present.
    player_has_absent_discord: bool,
}

impl GroupAttrs {
    /// A group may hold one Discord user and one existing player, and the player's Discord user
    /// (if it has one) must be that user.
    fn consistent(&self) -> bool {
        if self.users.count > 1 || self.players.count > 1 {
            return false;
        }
        match self.users.first {
            Some(u) => {
                !self.player_has_absent_discord && self.player_discord.is_none_or(|d| d == u)
            }
            None => true,
        }
    }

    fn merge(&mut self, other: &GroupAttrs) {
        self.users.merge(other.users);
        self.players.merge(other.players);
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
        let mut merged = self.attrs[ra];
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
            rank_level: None,
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
            global_name: None,
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
        assert_eq!(plan.skipped[0].reason, SkipReason::Tie);
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
        assert_eq!(plan.skipped[0].reason, SkipReason::Conflict);
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

    fn ranked(mut c: UnlinkedCharacter, level: i32) -> UnlinkedCharacter {
        c.rank_level = Some(level);
        c
    }

    fn on_realm(mut c: UnlinkedCharacter, realm: &str) -> UnlinkedCharacter {
        c.realm_slug = realm.to_string();
        c
    }

    fn global(id: i64, username: &str, global_name: &str) -> PresentDiscordUser {
        PresentDiscordUser {
            global_name: Some(global_name.to_string()),
            ..user(id, username, Some(global_name))
        }
    }

    fn suggestion_kinds(plan: &Plan) -> Vec<(i64, i64, SuggestionKind)> {
        plan.suggestions
            .iter()
            .map(|s| (s.character_id, s.discord_user_id, s.kind))
            .collect()
    }

    #[test]
    fn a_near_miss_of_another_players_character_is_suggested_naming_that_player_not_linked() {
        // "Totro" is totro's own character (exact); "Toto" is one letter off (0.89).
        let plan = plan(&snapshot(
            vec![
                ch(1, "Totro"),
                noted(2, "Toto", "", ""),
                noted(3, "Totoalt", "alt of Toto", ""),
            ],
            vec![user(10, "totro", None)],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [
                (1, PlayerRef::New(0), LinkSource::ExactName),
                (2, PlayerRef::New(1), LinkSource::AltNote),
                (3, PlayerRef::New(1), LinkSource::AltNote)
            ]
        );
        assert_eq!(plan.new_players[1].discord_user_id, None);
        // Toto is grouped with its alt, so nothing is left to suggest; alone it is suggested.
        let plan2 = super::plan(&snapshot(
            vec![ch(1, "Totro"), ch(2, "Toto")],
            vec![user(10, "totro", None)],
            vec![],
        ));
        assert_eq!(
            links(&plan2),
            [(1, PlayerRef::New(0), LinkSource::ExactName)]
        );
        assert_eq!(
            suggestion_kinds(&plan2),
            [(2, 10, SuggestionKind::ClaimedUser)]
        );
        assert_eq!(plan2.suggestions[0].player, Some(PlayerRef::New(0)));
    }

    #[test]
    fn fuzzy_never_attaches_to_a_user_who_already_has_a_player_and_a_second_run_agrees() {
        let mut korfarm = user(10, "korfarm", None);
        korfarm.player_id = Some(100);
        let s = snapshot(
            vec![ch(1, "Gorfarm")],
            vec![korfarm],
            vec![player(100, Some(10), &[(50, "Korfarm")])],
        );
        let first = plan(&s);
        assert!(first.links.is_empty());
        assert_eq!(
            suggestion_kinds(&first),
            [(1, 10, SuggestionKind::ClaimedUser)]
        );
        assert_eq!(first.suggestions[0].player, Some(PlayerRef::Existing(100)));
        assert_eq!(plan(&snapshot_after(&s, &first)), first);
    }

    #[test]
    fn a_fuzzy_match_to_an_unclaimed_user_still_links() {
        let plan = plan(&snapshot(
            vec![ch(1, "Sylvanas")],
            vec![user(10, "sylvanaz", None)],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::New(0), LinkSource::FuzzyName)]
        );
    }

    #[test]
    fn an_alt_is_not_linked_by_a_fuzzy_name_it_follows_its_main() {
        // taebel is close to Taeel (0.91), but Taeel's note says it is Venri's alt.
        let plan = plan(&snapshot(
            vec![ch(1, "Venri"), noted(2, "Taeel", "Venri's alt", "")],
            vec![user(10, "taebel", None)],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [
                (1, PlayerRef::New(0), LinkSource::AltNote),
                (2, PlayerRef::New(0), LinkSource::AltNote)
            ]
        );
        assert_eq!(plan.new_players[0].discord_user_id, None);
    }

    #[test]
    fn every_display_name_form_links_its_parts() {
        for listing in [
            "Gwynblade / Healzor",
            "Gwynblade | Healzor",
            "Gwynblade (Healzor)",
            "Gwynblade - Healzor",
            "Gwynblade, Healzor",
            "Gwynblade & Healzor",
        ] {
            let plan = plan(&snapshot(
                vec![ch(1, "Gwynblade"), ch(2, "Healzor"), ch(3, "Other")],
                vec![global(10, "xx_gamer_xx", listing)],
                vec![],
            ));
            assert_eq!(
                links(&plan),
                [
                    (1, PlayerRef::New(0), LinkSource::DisplayNamePart),
                    (2, PlayerRef::New(0), LinkSource::DisplayNamePart)
                ],
                "{listing}"
            );
            assert_eq!(plan.links[1].evidence["part"], "Healzor");
            assert_eq!(plan.links[1].evidence["discord_name"], listing);
            assert_eq!(plan.links[1].confidence, Confidence::High);
        }
    }

    #[test]
    fn a_part_answered_by_two_characters_links_nobody_and_names_them() {
        let plan = plan(&snapshot(
            vec![
                on_realm(ch(1, "Gwyn"), "area-52"),
                on_realm(ch(2, "Gwyn"), "senjin"),
                ch(3, "Healzor"),
            ],
            vec![global(10, "someone", "Gwyn / Healzor")],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [(3, PlayerRef::New(0), LinkSource::DisplayNamePart)]
        );
        let refused: Vec<_> = plan
            .skipped
            .iter()
            .map(|s| (s.character_id, s.strategy, s.candidates.clone()))
            .collect();
        assert_eq!(
            refused,
            [
                (1, LinkSource::DisplayNamePart, vec![2]),
                (2, LinkSource::DisplayNamePart, vec![1])
            ]
        );
    }

    #[test]
    fn a_character_named_in_two_users_listings_links_nobody() {
        let plan = plan(&snapshot(
            vec![ch(1, "Gwynblade")],
            vec![
                global(10, "one", "Gwynblade / Healzor"),
                global(11, "two", "Tankzor | Gwynblade"),
            ],
            vec![],
        ));
        assert!(plan.links.is_empty());
        assert_eq!(plan.skipped[0].candidates, [10, 11]);
    }

    #[test]
    fn a_name_realm_discord_name_links_only_that_realms_character() {
        for name in ["Thrall-Area52", "Thrall @ Area 52", "thrall-area-52"] {
            let plan = plan(&snapshot(
                vec![
                    on_realm(ch(1, "Thrall"), "area-52"),
                    on_realm(ch(2, "Thrall"), "senjin"),
                ],
                vec![global(10, "orcfan", name)],
                vec![],
            ));
            assert_eq!(
                links(&plan),
                [(1, PlayerRef::New(0), LinkSource::ExactName)],
                "{name}"
            );
            assert_eq!(plan.links[0].evidence["realm"], "area52");
        }
    }

    #[test]
    fn look_alike_and_invisible_names_never_link_and_are_flagged() {
        for (name, disguise) in [
            ("Gorv\u{043E}rixdra", Disguise::MixedScripts),
            ("Gorv\u{200B}orixdra", Disguise::InvisibleCharacters),
            ("\u{202E}Gorvorixdra", Disguise::InvisibleCharacters),
            ("Ｇｏｒｖｏｒｉｘｄｒａ", Disguise::CompatibilityForms),
        ] {
            let plan = plan(&snapshot(
                vec![ch(1, "Gorvorixdra")],
                vec![user(10, "imposter", Some(name))],
                vec![],
            ));
            assert!(plan.links.is_empty(), "{name:?}: {:?}", plan.links);
            assert_eq!(
                suggestion_kinds(&plan),
                [(1, 10, SuggestionKind::LookAlike)]
            );
            assert_eq!(plan.suggestions[0].disguise, Some(disguise), "{name:?}");
        }
        // A whole name in another script is a look-alike too.
        let plan = plan(&snapshot(
            vec![ch(1, "Trall")],
            vec![user(10, "Тралл", None)],
            vec![],
        ));
        assert!(plan.links.is_empty());
        assert_eq!(plan.suggestions[0].disguise, Some(Disguise::ForeignScript));
    }

    #[test]
    fn a_look_alike_does_not_block_the_real_owner() {
        let plan = plan(&snapshot(
            vec![ch(1, "Gorvorixdra")],
            vec![
                user(10, "imposter", Some("Gorv\u{043E}rixdra")),
                user(11, "gorvorixdra", None),
            ],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::New(0), LinkSource::ExactName)]
        );
        assert_eq!(plan.new_players[0].discord_user_id, Some(11));
    }

    #[test]
    fn a_nickname_alone_does_not_claim_a_veteran_or_above_character() {
        // An exact copy, all capitals, a dropped accent.
        for (name, nick, level) in [
            ("Netrodooman", "Netrodooman", 4),
            ("Netrodooman", "NETRODOOMAN", 5),
            ("Nétrodooman", "Netrodooman", 3),
        ] {
            let plan = plan(&snapshot(
                vec![ranked(ch(1, name), level)],
                vec![user(10, "newbie", Some(nick))],
                vec![],
            ));
            assert!(plan.links.is_empty(), "{nick} {level}");
            assert_eq!(
                suggestion_kinds(&plan),
                [(1, 10, SuggestionKind::NicknameOnly)]
            );
        }
        // A Member-rank character, or the account's own global name, still links.
        let member = plan(&snapshot(
            vec![ranked(ch(1, "Netrodooman"), 2)],
            vec![user(10, "newbie", Some("Netrodooman"))],
            vec![],
        ));
        assert_eq!(member.links.len(), 1);
        let own = plan(&snapshot(
            vec![ranked(ch(1, "Netrodooman"), 4)],
            vec![global(10, "newbie", "Netrodooman")],
            vec![],
        ));
        assert_eq!(own.links.len(), 1);
        assert_eq!(own.links[0].evidence["matched"], "global_name");
    }

    #[test]
    fn an_initiate_copying_an_officers_name_loses_to_the_owners_listing() {
        let plan = plan(&snapshot(
            vec![ranked(ch(1, "Gwynblade"), 4)],
            vec![
                user(10, "initiate42", Some("Gwynblade")),
                global(11, "realowner", "Gwynblade / Gwynblade"),
            ],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [(1, PlayerRef::New(0), LinkSource::DisplayNamePart)]
        );
        assert_eq!(plan.new_players[0].discord_user_id, Some(11));
    }

    /// (character id, strategy, reason, candidates) of every refusal.
    fn refusals(plan: &Plan) -> Vec<(i64, LinkSource, SkipReason, Vec<i64>)> {
        plan.skipped
            .iter()
            .map(|s| (s.character_id, s.strategy, s.reason, s.candidates.clone()))
            .collect()
    }

    // The wrong links of the decoy-rich guild, seed 16822773348985185345 and the 1,000 seeds
    // scanned after it (the matcher precision note), one pattern each.

    #[test]
    fn a_discord_name_equal_to_another_character_does_not_fuzzy_link_a_near_one() {
        // An Initiate copies the Guild Leader's main "Ulquel" in capitals (nickname only: no
        // link). "Quelquel" scores 0.857 against that nickname, but the nickname names Ulquel:
        // linking Quelquel to it used to hand its alts to the impersonator too.
        let s = snapshot(
            vec![
                ranked(ch(1, "Quelquel"), 1),
                ranked(noted(2, "Lyrbelsha", "Quelquel's alt", ""), 1),
                ranked(ch(3, "Ulquel"), 5),
            ],
            vec![user(10, "newbie1996", Some("ULQUEL"))],
            vec![],
        );
        let first = plan(&s);
        assert_eq!(
            links(&first),
            [
                (1, PlayerRef::New(0), LinkSource::AltNote),
                (2, PlayerRef::New(0), LinkSource::AltNote)
            ]
        );
        assert_eq!(first.new_players[0].discord_user_id, None);
        assert_eq!(
            refusals(&first),
            [(1, LinkSource::FuzzyName, SkipReason::Tie, vec![3])]
        );
        assert_eq!(
            suggestion_kinds(&first),
            [(3, 10, SuggestionKind::NicknameOnly)]
        );
        assert!(plan(&snapshot_after(&s, &first)).links.is_empty());
        // The same once Ulquel is owned: the name still belongs to a character.
        let owned = plan(&snapshot(
            vec![ranked(ch(1, "Quelquel"), 1)],
            vec![user(10, "newbie1996", Some("ULQUEL"))],
            vec![player(100, None, &[(3, "Ulquel")])],
        ));
        assert!(owned.links.is_empty());
        assert_eq!(suggestion_kinds(&owned), [(1, 10, SuggestionKind::Similar)]);
    }

    #[test]
    fn a_character_whose_own_name_is_worn_by_an_impersonator_is_not_fuzzy_linked() {
        // Someone may not link the character under its exact name (a nickname on a protected
        // rank, a look-alike); a near name of a third user is then only a guess.
        for (name, level, impostor, near) in [
            ("Razul", 4, user(10, "newbie1868", Some("Razul")), "raul"),
            (
                "Rhonaxa",
                5,
                user(10, "newbie1781", Some("RHONAXA")),
                "rhonax",
            ),
            (
                "Torvin",
                1,
                user(10, "member1901", Some("Ｔｏｒｖｉｎ")),
                "thorvin",
            ),
        ] {
            let s = snapshot(
                vec![ranked(ch(1, name), level)],
                vec![impostor, user(11, near, None)],
                vec![],
            );
            let first = plan(&s);
            assert!(first.links.is_empty(), "{name}: {:?}", first.links);
            assert_eq!(
                refusals(&first),
                [(1, LinkSource::FuzzyName, SkipReason::Contested, vec![10])],
                "{name}"
            );
            let kinds: Vec<_> = suggestion_kinds(&first).into_iter().map(|k| k.2).collect();
            assert_eq!(kinds.last(), Some(&SuggestionKind::Similar), "{name}");
            assert_eq!(first.suggestions.last().unwrap().discord_user_id, 11);
            assert!(plan(&snapshot_after(&s, &first)).links.is_empty());
        }
    }

    #[test]
    fn two_characters_near_one_user_link_neither() {
        // fenthorx is Fenthor's owner (0.875), but Fentor, another player's main, scores 0.857:
        // both were linked to the one user.
        let s = snapshot(
            vec![ch(1, "Fenthor"), ch(2, "Fentor")],
            vec![user(10, "fenthorx", None)],
            vec![],
        );
        let first = plan(&s);
        assert!(first.links.is_empty(), "{:?}", first.links);
        assert_eq!(
            refusals(&first),
            [
                (1, LinkSource::FuzzyName, SkipReason::Tie, vec![2]),
                (2, LinkSource::FuzzyName, SkipReason::Tie, vec![1])
            ]
        );
        assert_eq!(
            suggestion_kinds(&first),
            [
                (1, 10, SuggestionKind::Similar),
                (2, 10, SuggestionKind::Similar)
            ]
        );
        assert!(plan(&snapshot_after(&s, &first)).links.is_empty());
    }

    #[test]
    fn a_near_name_stays_refused_once_its_rival_is_linked() {
        // Fentor's alt makes it a player of its own; the next run must not then give fenthorx
        // to Fenthor, which it refused while Fentor was unlinked.
        let s = snapshot(
            vec![
                ch(1, "Fenthor"),
                ch(2, "Fentor"),
                noted(3, "Pyrye", "alt of Fentor", ""),
            ],
            vec![user(10, "fenthorx", None)],
            vec![],
        );
        let first = plan(&s);
        assert_eq!(
            links(&first),
            [
                (2, PlayerRef::New(0), LinkSource::AltNote),
                (3, PlayerRef::New(0), LinkSource::AltNote)
            ]
        );
        let second = plan(&snapshot_after(&s, &first));
        assert!(second.links.is_empty(), "{:?}", second.links);
        assert_eq!(
            refusals(&second),
            [(1, LinkSource::FuzzyName, SkipReason::Tie, vec![2])]
        );
    }

    #[test]
    fn a_characters_own_alt_with_a_near_name_is_not_its_rival() {
        let plan = plan(&snapshot(
            vec![ch(1, "Fenthor"), noted(2, "Fenthorr", "alt of Fenthor", "")],
            vec![user(10, "fenthorx", None)],
            vec![],
        ));
        assert_eq!(
            links(&plan),
            [
                (1, PlayerRef::New(0), LinkSource::FuzzyName),
                (2, PlayerRef::New(0), LinkSource::AltNote)
            ]
        );
        assert_eq!(plan.new_players[0].discord_user_id, Some(10));
    }

    const NAMES: &[&str] = &[
        "thrall",
        "thrail",
        "jaina",
        "jaína",
        "arthas",
        "arthes",
        "bob",
        "bobby",
        "sylvanas",
        "thrall / jaina",
        "thrall-b",
        "jaina @ a",
        "th\u{0430}ll",
        "arth\u{200B}as",
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
                    rank_level: Some((i % 5) as i32 + 1),
                })
                .collect();
            let mut discord_users: Vec<PresentDiscordUser> = users
                .into_iter()
                .enumerate()
                .map(|(i, (u, d, role))| PresentDiscordUser {
                    id: i as i64 + 10,
                    username: format!("{u}{}", if i % 2 == 0 { "" } else { "x" }),
                    global_name: (i % 3 == 0).then(|| d.map(str::to_string)).flatten(),
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
            let second = plan(&snapshot_after(&s, &first));
            prop_assert!(second.new_players.is_empty(), "{:?}", second.new_players);
            prop_assert!(second.links.is_empty(), "{:?}", second.links);
            prop_assert!(second.attachments.is_empty(), "{:?}", second.attachments);
        }
    }
}
