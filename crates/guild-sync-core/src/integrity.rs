//! Integrity findings: the issue types, their severities, the issue hash that identifies one
//! cause across runs, the findings (with their readable summaries) and the pure diff between
//! what a check run found and the issues already recorded. Nothing here reads or writes the
//! database: the integrity checker loads rows, keys the findings ([`key_findings`]), calls
//! [`plan_keyed`] and applies the plan ([`plan_check`] does both steps in one call).
//!
//! **The re-flagging rule.** At most one *open* issue exists per hash (a partial unique index).
//! An issue resolved automatically (`resolved_by = 'auto'`) had its cause disappear, so the
//! cause coming back opens a new issue. An issue resolved by hand (any other `resolved_by`)
//! while its cause persists is the officer saying "known, leave it": it suppresses the same
//! hash for as long as the cause stays present. The first run that no longer sees the cause
//! marks the manual resolution as spent (`cause_gone_at`), so if the cause later returns it is
//! flagged again as a new issue.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every kind of audit issue. The string forms are stored in `audit_issues.issue_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueType {
    /// An in-guild character no player owns. Hash ids: `[character_id]`.
    OrphanWow,
    /// A present Discord user with a guild role and no player. Hash ids: `[discord_user_id]`.
    OrphanDiscord,
    /// A player's highest in-game rank differs from their Discord role. Hash ids: `[player_id]`.
    RankMismatch,
    /// A linked, present Discord user with no guild role while the player has an in-game rank.
    /// Hash ids: `[player_id]`.
    NoGuildRole,
    /// An in-guild character not seen for longer than the threshold. Hash ids: `[character_id]`.
    StaleCharacter,
    /// More than one player holds the same Discord user. Hash ids: `[discord_user_id]`.
    DuplicateDiscord,
    /// The matcher found a likely but uncertain character ↔ Discord pair (fuzzy 0.70–0.85).
    /// Hash ids: `[character_id, discord_user_id]`.
    AutoLinkSuggestion,
    /// Every in-guild character of a player is stale (issue 19): reported once per player with
    /// the alts listed, instead of one `stale_character` per linked alt. Hash ids: `[player_id]`.
    InactivePlayer,
    /// Every character of a player has left the guild while their present Discord account
    /// keeps a guild role (issue 19). Hash ids: `[player_id]`.
    FormerMemberHasRole,
    /// A member's claim (`/claim`) that guild-sync would not carry out: a character an officer
    /// linked by hand to another player, or a Battle.net account another Discord account
    /// already claimed. Written by the claim, not the checker. Hash ids:
    /// `[character_id or 0, claimant's discord_user_id, other player_id]`.
    ClaimConflict,
}

impl IssueType {
    /// All types, in report order.
    pub const ALL: [IssueType; 10] = [
        IssueType::RankMismatch,
        IssueType::DuplicateDiscord,
        IssueType::ClaimConflict,
        IssueType::OrphanDiscord,
        IssueType::FormerMemberHasRole,
        IssueType::OrphanWow,
        IssueType::NoGuildRole,
        IssueType::AutoLinkSuggestion,
        IssueType::InactivePlayer,
        IssueType::StaleCharacter,
    ];

    /// The form stored in `audit_issues.issue_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueType::OrphanWow => "orphan_wow",
            IssueType::OrphanDiscord => "orphan_discord",
            IssueType::RankMismatch => "rank_mismatch",
            IssueType::NoGuildRole => "no_guild_role",
            IssueType::StaleCharacter => "stale_character",
            IssueType::DuplicateDiscord => "duplicate_discord",
            IssueType::AutoLinkSuggestion => "auto_link_suggestion",
            IssueType::InactivePlayer => "inactive_player",
            IssueType::FormerMemberHasRole => "former_member_has_role",
            IssueType::ClaimConflict => "claim_conflict",
        }
    }

    /// Parse the stored form.
    pub fn parse(s: &str) -> Option<IssueType> {
        IssueType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// How serious an issue of this type is.
    pub fn severity(self) -> Severity {
        match self {
            IssueType::RankMismatch | IssueType::DuplicateDiscord => Severity::Critical,
            IssueType::OrphanWow
            | IssueType::OrphanDiscord
            | IssueType::NoGuildRole
            | IssueType::FormerMemberHasRole
            | IssueType::ClaimConflict => Severity::Warning,
            IssueType::StaleCharacter
            | IssueType::AutoLinkSuggestion
            | IssueType::InactivePlayer => Severity::Info,
        }
    }
}

/// Stored in `audit_issues.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// Parse the stored form.
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The hash identifying one cause: SHA-256 (lowercase hex) of `"{type}:{id}:{id}…"`, with the
/// ids each type documents on [`IssueType`]. The same cause always gives the same hash, so an
/// open issue is updated rather than duplicated.
pub fn issue_hash(issue_type: IssueType, ids: &[i64]) -> String {
    let mut key = String::from(issue_type.as_str());
    for id in ids {
        key.push(':');
        key.push_str(&id.to_string());
    }
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl IssueType {
    /// Whether the integrity checker detects this type itself (and so resolves an open issue of
    /// it as soon as a run no longer finds its hash). `auto_link_suggestion` issues are written
    /// by the identity engine and `claim_conflict` ones by a member's claim; the checker only
    /// resolves them when their cause is gone.
    pub fn detected_by_checker(self) -> bool {
        !matches!(
            self,
            IssueType::AutoLinkSuggestion | IssueType::ClaimConflict
        )
    }
}

/// A character as reports name it: `Name-realm`.
pub fn character_label(name: &str, realm_slug: &str) -> String {
    format!("{name}-{realm_slug}")
}

/// A Discord user as reports name it: `Display (@username)`, or `@username` when the display
/// name is missing or the same.
pub fn discord_label(display_name: Option<&str>, username: &str) -> String {
    match display_name {
        Some(d) if !d.trim().is_empty() && d != username => format!("{d} (@{username})"),
        _ => format!("@{username}"),
    }
}

/// A player and their Discord account: `Player (@username)`.
pub fn player_with_discord(player_name: &str, username: &str) -> String {
    format!("{player_name} (@{username})")
}

/// Which timestamp a stale character was judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeenBasis {
    /// `wow_characters.last_login_at` (from the profile or the addon).
    LastLogin,
    /// No login time is known; the last successful profile fetch stands in.
    LastApiSync,
}

/// One cause a check run observed: what the issue row will hold. Built only through the
/// per-type constructors so the ids a type hashes are always present.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub issue_type: IssueType,
    pub wow_character_id: Option<i32>,
    /// `discord_users.id` (stored in `audit_issues.discord_member_id`).
    pub discord_user_id: Option<i32>,
    pub player_id: Option<i32>,
    /// One readable sentence naming the characters / Discord users / players involved.
    pub summary: String,
    /// A JSON object, as text (what `audit_issues.details` receives); always has `subject` and
    /// `reason`, which the report uses. Serialised once from typed fields: a check run builds
    /// tens of thousands of these, and a `serde_json::Value` map per finding was most of that
    /// cost. [`Finding::details_value`] parses it back.
    pub details: String,
}

/// The `details` object: the report's `subject` and `reason`, then the type's own fields.
#[derive(Serialize)]
struct Details<'a, T: Serialize> {
    subject: &'a str,
    reason: &'a str,
    #[serde(flatten)]
    extra: T,
}

fn finding(
    issue_type: IssueType,
    ids: (Option<i32>, Option<i32>, Option<i32>),
    subject: String,
    reason: String,
    extra: impl Serialize,
) -> Finding {
    let summary = format!("{subject}: {reason}");
    let details = serde_json::to_string(&Details {
        subject: &subject,
        reason: &reason,
        extra,
    })
    // Plain structs of strings and numbers, with no map keys to reject: cannot fail.
    .expect("issue details serialise to JSON");
    Finding {
        issue_type,
        wow_character_id: ids.0,
        discord_user_id: ids.1,
        player_id: ids.2,
        summary,
        details,
    }
}

// The type-specific `details` fields (see [`Details`]).
#[derive(Serialize)]
struct OrphanWowDetails<'a> {
    character_name: &'a str,
    realm_slug: &'a str,
    rank: Option<&'a str>,
}

#[derive(Serialize)]
struct OrphanDiscordDetails<'a> {
    discord_id: &'a str,
    username: &'a str,
    role: &'a str,
}

#[derive(Serialize)]
struct RankMismatchDetails<'a> {
    ingame_rank: &'a str,
    expected_discord_role: Option<&'a str>,
    discord_role: &'a str,
    rests_on: Option<&'a LinkBasis>,
}

#[derive(Serialize)]
struct NoGuildRoleDetails<'a> {
    ingame_rank: &'a str,
    username: &'a str,
    discord_display_name: Option<&'a str>,
    rests_on: Option<&'a LinkBasis>,
}

/// What a finding about a linked player rests on: the character whose rank counts, and how the
/// engine (or an officer) linked it to the player. An officer reading "give them the Officer
/// role" must be able to see that it rests on, say, a fuzzy name match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkBasis {
    pub character_name: String,
    /// `player_characters.link_source`.
    pub link_source: crate::matching::StoredLinkSource,
}

impl LinkBasis {
    /// ", which rests on Gwynblade's link by exact name" (`manual`: "linked by hand").
    fn clause(basis: Option<&LinkBasis>) -> String {
        let Some(b) = basis else {
            return String::new();
        };
        let how = match b.link_source {
            crate::matching::StoredLinkSource::Manual => "linked by hand".to_string(),
            crate::matching::StoredLinkSource::BattlenetOauth => {
                "claimed by the member".to_string()
            }
            source => format!("linked by {}", source.as_str().replace('_', " ")),
        };
        format!(" (rank of {}, {how})", b.character_name)
    }
}

#[derive(Serialize)]
struct StaleDetails {
    last_seen: DateTime<Utc>,
    basis: SeenBasis,
    days_ago: i64,
    threshold_days: i64,
}

#[derive(Serialize)]
struct InactivePlayerDetails<'a> {
    last_activity: Option<DateTime<Utc>>,
    days_ago: Option<i64>,
    threshold_days: i64,
    alts: &'a [String],
}

#[derive(Serialize)]
struct FormerMemberDetails<'a> {
    /// When the player's last character left: role sync's grace period counts from it.
    left_at: DateTime<Utc>,
    username: &'a str,
    roles: &'a [String],
}

#[derive(Serialize)]
struct ClaimConflictDetails<'a> {
    claimant: &'a str,
    other_player: &'a str,
    battletag: &'a str,
    battlenet_account_id: i64,
}

#[derive(Serialize)]
struct DuplicateDiscordDetails<'a> {
    player_ids: Vec<i32>,
    player_names: &'a [&'a str],
}

impl Finding {
    /// An in-guild character no player owns.
    pub fn orphan_wow(character_id: i32, name: &str, realm_slug: &str, rank: Option<&str>) -> Self {
        let reason = match rank {
            Some(rank) => format!("in the guild as {rank} but linked to no player"),
            None => "in the guild but linked to no player".to_string(),
        };
        finding(
            IssueType::OrphanWow,
            (Some(character_id), None, None),
            character_label(name, realm_slug),
            reason,
            OrphanWowDetails {
                character_name: name,
                realm_slug,
                rank,
            },
        )
    }

    /// A present Discord user with a guild role and no player.
    pub fn orphan_discord(
        discord_user_id: i32,
        display_name: Option<&str>,
        username: &str,
        discord_id: &str,
        role: &str,
    ) -> Self {
        finding(
            IssueType::OrphanDiscord,
            (None, Some(discord_user_id), None),
            discord_label(display_name, username),
            // Most of these are members the matcher could not place: the fix that costs an
            // officer nothing is the member proving their characters themselves.
            format!(
                "has the Discord role {role} but is linked to no player; they can claim their \
                 characters themselves with /claim"
            ),
            OrphanDiscordDetails {
                discord_id,
                username,
                role,
            },
        )
    }

    /// A player whose highest in-game rank does not correspond to their Discord role.
    pub fn rank_mismatch(
        player_id: i32,
        player_name: &str,
        discord_user_id: i32,
        ingame_rank: &str,
        expected_role: Option<&str>,
        discord_role: &str,
        rests_on: Option<&LinkBasis>,
    ) -> Self {
        let expected = match expected_role {
            Some(role) => format!(", which should be Discord role {role},"),
            None => ", which no Discord role is mapped to,".to_string(),
        };
        finding(
            IssueType::RankMismatch,
            (None, Some(discord_user_id), Some(player_id)),
            player_name.to_string(),
            format!(
                "in-game rank {ingame_rank}{expected} but has Discord role {discord_role}{}",
                LinkBasis::clause(rests_on)
            ),
            RankMismatchDetails {
                ingame_rank,
                expected_discord_role: expected_role,
                discord_role,
                rests_on,
            },
        )
    }

    /// A linked, present Discord user with no guild role while the player has an in-game rank.
    pub fn no_guild_role(
        player_id: i32,
        player_name: &str,
        discord_user_id: i32,
        discord_display_name: Option<&str>,
        username: &str,
        ingame_rank: &str,
        rests_on: Option<&LinkBasis>,
    ) -> Self {
        finding(
            IssueType::NoGuildRole,
            (None, Some(discord_user_id), Some(player_id)),
            player_with_discord(player_name, username),
            format!(
                "in-game rank {ingame_rank} but no guild role on Discord{}",
                LinkBasis::clause(rests_on)
            ),
            NoGuildRoleDetails {
                ingame_rank,
                username,
                discord_display_name,
                rests_on,
            },
        )
    }

    /// An in-guild character not seen for longer than the threshold.
    pub fn stale_character(
        character_id: i32,
        name: &str,
        realm_slug: &str,
        last_seen: DateTime<Utc>,
        basis: SeenBasis,
        days_ago: i64,
        threshold_days: i64,
    ) -> Self {
        let what = match basis {
            SeenBasis::LastLogin => "last login",
            SeenBasis::LastApiSync => "no login time known; last profile fetch",
        };
        finding(
            IssueType::StaleCharacter,
            (Some(character_id), None, None),
            character_label(name, realm_slug),
            format!(
                "{what} {days_ago} days ago ({})",
                last_seen.format("%Y-%m-%d")
            ),
            StaleDetails {
                last_seen,
                basis,
                days_ago,
                threshold_days,
            },
        )
    }

    /// Every in-guild character of a player is stale: one finding for the player, the alts
    /// (`Name-realm`) listed. `last_activity` is the latest login of any of their characters.
    pub fn inactive_player(
        player_id: i32,
        player_name: &str,
        last_activity: Option<DateTime<Utc>>,
        days_ago: Option<i64>,
        threshold_days: i64,
        alts: &[String],
    ) -> Self {
        let when = match (last_activity, days_ago) {
            (Some(at), Some(days)) => {
                format!("last activity {days} days ago ({})", at.format("%Y-%m-%d"))
            }
            _ => "no login known".to_string(),
        };
        finding(
            IssueType::InactivePlayer,
            (None, None, Some(player_id)),
            player_name.to_string(),
            format!(
                "{when} on all {} characters in the guild: {}",
                alts.len(),
                alts.join(", ")
            ),
            InactivePlayerDetails {
                last_activity,
                days_ago,
                threshold_days,
                alts,
            },
        )
    }

    /// Every character of a player has left the guild while their Discord account keeps a
    /// guild role.
    pub fn former_member_has_role(
        player_id: i32,
        player_name: &str,
        discord_user_id: i32,
        username: &str,
        left_at: DateTime<Utc>,
        roles: &[String],
    ) -> Self {
        finding(
            IssueType::FormerMemberHasRole,
            (None, Some(discord_user_id), Some(player_id)),
            player_with_discord(player_name, username),
            format!(
                "every character left the guild (last on {}) but Discord still gives {}",
                left_at.format("%Y-%m-%d"),
                roles.join(", ")
            ),
            FormerMemberDetails {
                left_at,
                username,
                roles,
            },
        )
    }

    /// More than one player holds the same Discord user.
    pub fn duplicate_discord(
        discord_user_id: i32,
        display_name: Option<&str>,
        username: &str,
        players: &[(i32, String)],
    ) -> Self {
        let names: Vec<&str> = players.iter().map(|(_, n)| n.as_str()).collect();
        finding(
            IssueType::DuplicateDiscord,
            (None, Some(discord_user_id), None),
            discord_label(display_name, username),
            format!("held by {} players: {}", players.len(), names.join(", ")),
            DuplicateDiscordDetails {
                player_ids: players.iter().map(|(id, _)| *id).collect(),
                player_names: &names,
            },
        )
    }

    /// A claim that was not carried out (see [`IssueType::ClaimConflict`]): `character` (id and
    /// label) is set when an officer's manual link stood in the way, unset when the Battle.net
    /// account is another player's. Names both players.
    #[allow(clippy::too_many_arguments)]
    pub fn claim_conflict(
        character: Option<(i32, &str)>,
        claimant_discord_user_id: i32,
        claimant: &str,
        other_player_id: i32,
        other_player: &str,
        battletag: &str,
        battlenet_account_id: i64,
    ) -> Self {
        let (subject, reason) = match character {
            Some((_, label)) => (
                label.to_string(),
                format!(
                    "claimed by {claimant} (Battle.net {battletag}) but linked by hand to \
                     {other_player}; nothing was moved: link it to the right player"
                ),
            ),
            None => (
                claimant.to_string(),
                format!(
                    "claimed Battle.net account {battletag}, which {other_player} already \
                     claimed; nothing was linked: find out who owns it"
                ),
            ),
        };
        finding(
            IssueType::ClaimConflict,
            (
                character.map(|(id, _)| id),
                Some(claimant_discord_user_id),
                Some(other_player_id),
            ),
            subject,
            reason,
            ClaimConflictDetails {
                claimant,
                other_player,
                battletag,
                battlenet_account_id,
            },
        )
    }

    /// [`Finding::details`] as a JSON value.
    pub fn details_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.details).expect("details are JSON written by `finding`")
    }

    /// The ids this finding's type hashes (see [`IssueType`]).
    pub fn hash_ids(&self) -> Vec<i64> {
        let id = |v: Option<i32>| i64::from(v.unwrap_or(0));
        match self.issue_type {
            IssueType::OrphanWow | IssueType::StaleCharacter => vec![id(self.wow_character_id)],
            IssueType::OrphanDiscord | IssueType::DuplicateDiscord => {
                vec![id(self.discord_user_id)]
            }
            IssueType::RankMismatch
            | IssueType::NoGuildRole
            | IssueType::InactivePlayer
            | IssueType::FormerMemberHasRole => vec![id(self.player_id)],
            IssueType::AutoLinkSuggestion => {
                vec![id(self.wow_character_id), id(self.discord_user_id)]
            }
            IssueType::ClaimConflict => vec![
                id(self.wow_character_id),
                id(self.discord_user_id),
                id(self.player_id),
            ],
        }
    }

    /// This finding's [`issue_hash`].
    pub fn hash(&self) -> String {
        issue_hash(self.issue_type, &self.hash_ids())
    }

    /// A fingerprint of what the issue row says (`summary` and `details`), stored in
    /// `audit_issues.content_hash`. A check run compares fingerprints instead of loading and
    /// decoding every open issue's text and JSON, which at tens of thousands of open issues was
    /// most of the cost of a run where nothing changed. The first 8 bytes of a SHA-256: stable
    /// across versions and platforms, unlike `std`'s hasher.
    pub fn content_hash(&self) -> i64 {
        let mut hasher = Sha256::new();
        hasher.update(self.summary.as_bytes());
        // A separator no summary contains, so ("ab", "c") and ("a", "bc") differ.
        hasher.update([0u8]);
        hasher.update(self.details.as_bytes());
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }
}

/// An unresolved `audit_issues` row as the diff needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIssue {
    pub id: i32,
    pub issue_hash: String,
    /// `None` for a type this version does not know (left alone).
    pub issue_type: Option<IssueType>,
    /// [`Finding::content_hash`] of what the row holds; `None` for rows written without one
    /// (by another writer, or before the column existed), which the next run refreshes.
    pub content_hash: Option<i64>,
    /// For types the checker does not detect (`auto_link_suggestion`): whether the cause is
    /// gone (the character is linked or left the guild, or the Discord user has a player or
    /// left). Ignored for the checker's own types, which are judged by their hash.
    pub cause_gone: bool,
}

/// A resolved-by-hand issue whose cause has not yet been seen gone (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ManualResolution {
    pub id: i32,
    pub issue_hash: String,
}

/// New, still open and resolved issues of one type in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounts {
    pub new: u64,
    pub still_open: u64,
    pub resolved: u64,
    /// Found, but resolved by hand earlier while the cause persisted: not re-flagged.
    pub suppressed: u64,
}

/// A finding with its [`issue_hash`] and [`Finding::content_hash`], computed once: the checker
/// keys its findings while the database is still answering the open-issues query.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedFinding {
    pub hash: String,
    pub content_hash: i64,
    pub finding: Finding,
}

impl From<Finding> for KeyedFinding {
    fn from(finding: Finding) -> Self {
        KeyedFinding {
            hash: finding.hash(),
            content_hash: finding.content_hash(),
            finding,
        }
    }
}

/// Key every finding (see [`KeyedFinding`]).
pub fn key_findings(findings: Vec<Finding>) -> Vec<KeyedFinding> {
    findings.into_iter().map(KeyedFinding::from).collect()
}

/// What a check run must write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckPlan {
    /// Causes with no open issue: insert.
    pub insert: Vec<KeyedFinding>,
    /// Open issues whose summary or details changed: (issue id, finding).
    pub update: Vec<(i32, KeyedFinding)>,
    /// Open issues whose cause is gone: resolve automatically.
    pub resolve: Vec<i32>,
    /// Manual resolutions whose cause is gone: mark spent, so a returning cause is re-flagged.
    pub spend_manual: Vec<i32>,
    pub counts: BTreeMap<IssueType, TypeCounts>,
}

/// Diff this run's findings against the open issues and the live manual resolutions.
/// Deterministic: new issues come out ordered by type, then by summary ignoring case (so their
/// ids, and the report that lists issues oldest first, read alphabetically whatever order the
/// checks returned their rows in); the rest follows the order of `findings` and `open`.
pub fn plan_check(
    findings: Vec<Finding>,
    open: &[OpenIssue],
    manual: &[ManualResolution],
) -> CheckPlan {
    plan_keyed(key_findings(findings), open, manual)
}

/// [`plan_check`] for findings already keyed.
pub fn plan_keyed(
    keyed: Vec<KeyedFinding>,
    open: &[OpenIssue],
    manual: &[ManualResolution],
) -> CheckPlan {
    /// What becomes of one finding; decided while the findings are borrowed, carried out after.
    enum Fate {
        Insert,
        Update(i32),
        Keep,
    }
    let mut plan = CheckPlan::default();
    // Tens of thousands of open issues is a realistic size for a big community server, so the
    // diff borrows the keys instead of cloning them.
    let open_by_hash: HashMap<&str, &OpenIssue> =
        open.iter().map(|o| (o.issue_hash.as_str(), o)).collect();
    let suppressing: HashSet<&str> = manual.iter().map(|m| m.issue_hash.as_str()).collect();
    let mut current: HashSet<&str> = HashSet::with_capacity(keyed.len());
    let mut fates = Vec::with_capacity(keyed.len());
    for KeyedFinding {
        hash,
        content_hash,
        finding,
    } in &keyed
    {
        if !current.insert(hash.as_str()) {
            fates.push(Fate::Keep);
            continue;
        }
        let counts = plan.counts.entry(finding.issue_type).or_default();
        if let Some(existing) = open_by_hash.get(hash.as_str()) {
            counts.still_open += 1;
            if existing.content_hash == Some(*content_hash) {
                fates.push(Fate::Keep);
            } else {
                fates.push(Fate::Update(existing.id));
            }
        } else if suppressing.contains(hash.as_str()) {
            counts.suppressed += 1;
            fates.push(Fate::Keep);
        } else {
            counts.new += 1;
            fates.push(Fate::Insert);
        }
    }
    for issue in open {
        let Some(issue_type) = issue.issue_type else {
            continue;
        };
        let gone = if issue_type.detected_by_checker() {
            !current.contains(issue.issue_hash.as_str())
        } else {
            issue.cause_gone
        };
        if gone {
            plan.resolve.push(issue.id);
            plan.counts.entry(issue_type).or_default().resolved += 1;
        }
    }
    plan.spend_manual = manual
        .iter()
        .filter(|m| !current.contains(m.issue_hash.as_str()))
        .map(|m| m.id)
        .collect();
    drop(current);
    for (keyed, fate) in keyed.into_iter().zip(fates) {
        match fate {
            Fate::Insert => plan.insert.push(keyed),
            Fate::Update(id) => plan.update.push((id, keyed)),
            Fate::Keep => {}
        }
    }
    plan.insert
        .sort_by_cached_key(|k| (k.finding.issue_type, k.finding.summary.to_lowercase()));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_round_trips_through_its_stored_form() {
        for t in IssueType::ALL {
            assert_eq!(IssueType::parse(t.as_str()), Some(t));
        }
        assert_eq!(IssueType::parse("nonsense"), None);
    }

    #[test]
    fn the_hash_is_sha256_of_type_and_ids() {
        // echo -n "orphan_wow:42" | sha256sum
        assert_eq!(
            issue_hash(IssueType::OrphanWow, &[42]),
            "745aff80a56453ec9d6cc2b0756eeee5f6779743a5d4359280ad6588646f95bd"
        );
        assert_ne!(
            issue_hash(IssueType::OrphanWow, &[42]),
            issue_hash(IssueType::StaleCharacter, &[42])
        );
        assert_ne!(
            issue_hash(IssueType::AutoLinkSuggestion, &[1, 23]),
            issue_hash(IssueType::AutoLinkSuggestion, &[12, 3])
        );
    }

    fn open_issue(id: i32, f: &Finding) -> OpenIssue {
        OpenIssue {
            id,
            issue_hash: f.hash(),
            issue_type: Some(f.issue_type),
            content_hash: Some(f.content_hash()),
            cause_gone: false,
        }
    }

    #[test]
    fn a_new_cause_is_inserted_and_a_known_one_stays_open_without_a_write() {
        let known = Finding::orphan_wow(1, "Thrall", "area-52", Some("Officer"));
        let fresh = Finding::orphan_wow(2, "Jaina", "area-52", None);
        let plan = plan_check(
            vec![known.clone(), fresh.clone()],
            &[open_issue(10, &known)],
            &[],
        );
        assert_eq!(plan.insert, vec![KeyedFinding::from(fresh)]);
        assert!(plan.update.is_empty());
        assert!(plan.resolve.is_empty());
        let counts = plan.counts[&IssueType::OrphanWow];
        assert_eq!((counts.new, counts.still_open, counts.resolved), (1, 1, 0));
    }

    #[test]
    fn a_changed_summary_updates_the_open_issue() {
        let before = Finding::orphan_wow(1, "Thrall", "area-52", Some("Member"));
        let after = Finding::orphan_wow(1, "Thrall", "area-52", Some("Officer"));
        let plan = plan_check(vec![after.clone()], &[open_issue(10, &before)], &[]);
        assert_eq!(plan.update, vec![(10, KeyedFinding::from(after))]);
        assert!(plan.insert.is_empty());
    }

    #[test]
    fn the_content_fingerprint_follows_summary_and_details() {
        let f = Finding::orphan_wow(1, "Thrall", "area-52", Some("Member"));
        assert_eq!(f.content_hash(), f.clone().content_hash());
        // Same ids and hash, different wording: a different fingerprint.
        let promoted = Finding::orphan_wow(1, "Thrall", "area-52", Some("Officer"));
        assert_eq!(f.hash(), promoted.hash());
        assert_ne!(f.content_hash(), promoted.content_hash());
        // Details alone differing is seen too.
        let mut other_details = f.clone();
        other_details.details = other_details.details.replace("area-52", "area-53");
        assert_ne!(f.content_hash(), other_details.content_hash());
        // The separator keeps the boundary between the two parts.
        let mut a = f.clone();
        a.summary = "ab".into();
        a.details = "c".into();
        let mut b = f.clone();
        b.summary = "a".into();
        b.details = "bc".into();
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn details_are_a_json_object_with_subject_reason_and_the_type_fields() {
        let f = Finding::orphan_discord(2, Some("Bob"), "bobby", "123", "Member");
        assert_eq!(
            f.details_value(),
            json!({"subject": "Bob (@bobby)",
                   "reason": "has the Discord role Member but is linked to no player; they can \
                              claim their characters themselves with /claim",
                   "discord_id": "123", "username": "bobby", "role": "Member"})
        );
    }

    #[test]
    fn new_issues_come_out_by_type_then_summary_ignoring_case() {
        let findings = vec![
            Finding::orphan_discord(1, None, "zed", "1", "Member"),
            Finding::orphan_wow(5, "Yrel", "r", None),
            Finding::orphan_discord(2, None, "Amy", "2", "Member"),
            Finding::orphan_discord(3, None, "bob", "3", "Member"),
            Finding::orphan_wow(6, "anduin", "r", None),
        ];
        let plan = plan_check(findings, &[], &[]);
        let order: Vec<&str> = plan
            .insert
            .iter()
            .map(|k| k.finding.summary.split(':').next().unwrap())
            .collect();
        assert_eq!(order, ["anduin-r", "Yrel-r", "@Amy", "@bob", "@zed"]);
    }

    #[test]
    fn every_checker_type_is_resolved_when_its_cause_is_gone() {
        let when = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let gone = [
            Finding::orphan_wow(1, "A", "r", None),
            Finding::orphan_discord(2, None, "b", "123", "Member"),
            Finding::rank_mismatch(3, "C", 3, "Officer", Some("Officer"), "Member", None),
            Finding::no_guild_role(4, "D", 4, None, "d", "Member", None),
            Finding::stale_character(5, "E", "r", when, SeenBasis::LastLogin, 40, 30),
            Finding::duplicate_discord(6, None, "f", &[(1, "X".into()), (2, "Y".into())]),
        ];
        let open: Vec<OpenIssue> = gone
            .iter()
            .enumerate()
            .map(|(i, f)| open_issue(i as i32, f))
            .collect();
        let plan = plan_check(vec![], &open, &[]);
        assert_eq!(plan.resolve, vec![0, 1, 2, 3, 4, 5]);
        for f in &gone {
            assert_eq!(plan.counts[&f.issue_type].resolved, 1, "{:?}", f.issue_type);
        }
    }

    #[test]
    fn suggestions_are_resolved_only_when_their_cause_is_gone() {
        let mut live = OpenIssue {
            id: 1,
            issue_hash: issue_hash(IssueType::AutoLinkSuggestion, &[1, 2]),
            issue_type: Some(IssueType::AutoLinkSuggestion),
            content_hash: None,
            cause_gone: false,
        };
        let mut gone = live.clone();
        gone.id = 2;
        gone.issue_hash = issue_hash(IssueType::AutoLinkSuggestion, &[3, 4]);
        gone.cause_gone = true;
        live.cause_gone = false;
        let plan = plan_check(vec![], &[live, gone], &[]);
        assert_eq!(plan.resolve, vec![2]);
    }

    #[test]
    fn a_manual_resolution_suppresses_its_cause_until_the_cause_goes_away() {
        let f = Finding::orphan_wow(1, "Thrall", "area-52", None);
        let manual = ManualResolution {
            id: 7,
            issue_hash: f.hash(),
        };
        let plan = plan_check(vec![f.clone()], &[], std::slice::from_ref(&manual));
        assert!(plan.insert.is_empty());
        assert!(plan.spend_manual.is_empty());
        assert_eq!(plan.counts[&IssueType::OrphanWow].suppressed, 1);

        let plan = plan_check(vec![], &[], &[manual]);
        assert_eq!(plan.spend_manual, vec![7]);
        // With the resolution spent (no longer loaded), the returning cause is new again.
        let plan = plan_check(vec![f.clone()], &[], &[]);
        assert_eq!(plan.insert.len(), 1);
    }

    #[test]
    fn summaries_name_who_is_involved() {
        let cases = [
            (
                Finding::orphan_discord(2, Some("Bob"), "bobby", "123", "Member"),
                "Bob (@bobby): has the Discord role Member but is linked to no player; they can \
                 claim their characters themselves with /claim",
            ),
            (
                Finding::claim_conflict(
                    Some((5, "Ash-ravencrest")),
                    6,
                    "@eve",
                    8,
                    "Frank",
                    "Eve#1234",
                    77,
                ),
                "Ash-ravencrest: claimed by @eve (Battle.net Eve#1234) but linked by hand to \
                 Frank; nothing was moved: link it to the right player",
            ),
            (
                Finding::claim_conflict(None, 6, "@eve", 8, "Frank", "Eve#1234", 77),
                "@eve: claimed Battle.net account Eve#1234, which Frank already claimed; nothing \
                 was linked: find out who owns it",
            ),
            (
                Finding::rank_mismatch(3, "Carol", 3, "Guild Leader", Some("GM"), "Officer", None),
                "Carol: in-game rank Guild Leader, which should be Discord role GM, but has Discord role Officer",
            ),
            (
                Finding::no_guild_role(4, "Dan", 4, None, "dan", "Member", None),
                "Dan (@dan): in-game rank Member but no guild role on Discord",
            ),
        ];
        for (finding, summary) in cases {
            assert_eq!(finding.summary, summary);
            assert!(finding.details_value().get("subject").is_some());
        }
    }

    proptest::proptest! {
        #[test]
        fn planning_is_independent_of_finding_order(ids in proptest::collection::vec(1i32..50, 0..30), open_ids in proptest::collection::vec(1i32..50, 0..30)) {
            let findings: Vec<Finding> = ids.iter().map(|&i| Finding::orphan_wow(i, "N", "r", None)).collect();
            let open: Vec<OpenIssue> = open_ids.iter().collect::<std::collections::BTreeSet<_>>().into_iter()
                .map(|&i| open_issue(i, &Finding::orphan_wow(i, "N", "r", None))).collect();
            let mut reversed = findings.clone();
            reversed.reverse();
            let a = plan_check(findings, &open, &[]);
            let b = plan_check(reversed, &open, &[]);
            proptest::prop_assert_eq!(a.counts, b.counts);
            proptest::prop_assert_eq!(a.resolve, b.resolve);
            let mut ai: Vec<String> = a.insert.into_iter().map(|k| k.hash).collect();
            let mut bi: Vec<String> = b.insert.into_iter().map(|k| k.hash).collect();
            ai.sort();
            bi.sort();
            proptest::prop_assert_eq!(ai, bi);
        }
    }
}
