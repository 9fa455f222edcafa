//! Integrity findings: the issue types, their severities, the issue hash that identifies one
//! cause across runs, the findings (with their readable summaries) and the pure diff between
//! what a check run found and the issues already recorded. Nothing here reads or writes the
//! database: the integrity checker loads rows, calls [`plan_check`] and applies the plan.
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
use serde_json::json;
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
}

impl IssueType {
    /// All types, in report order.
    pub const ALL: [IssueType; 7] = [
        IssueType::RankMismatch,
        IssueType::DuplicateDiscord,
        IssueType::OrphanDiscord,
        IssueType::OrphanWow,
        IssueType::NoGuildRole,
        IssueType::AutoLinkSuggestion,
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
            IssueType::OrphanWow | IssueType::OrphanDiscord | IssueType::NoGuildRole => {
                Severity::Warning
            }
            IssueType::StaleCharacter | IssueType::AutoLinkSuggestion => Severity::Info,
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
    /// by the identity engine; the checker only resolves them when their cause is gone.
    pub fn detected_by_checker(self) -> bool {
        self != IssueType::AutoLinkSuggestion
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub issue_type: IssueType,
    pub wow_character_id: Option<i32>,
    /// `discord_users.id` (stored in `audit_issues.discord_member_id`).
    pub discord_user_id: Option<i32>,
    pub player_id: Option<i32>,
    /// One readable sentence naming the characters / Discord users / players involved.
    pub summary: String,
    /// A JSON object; always has `subject` and `reason`, which the report uses.
    pub details: serde_json::Value,
}

fn finding(
    issue_type: IssueType,
    ids: (Option<i32>, Option<i32>, Option<i32>),
    subject: String,
    reason: String,
    mut extra: serde_json::Value,
) -> Finding {
    let summary = format!("{subject}: {reason}");
    if let Some(map) = extra.as_object_mut() {
        map.insert("subject".into(), json!(subject));
        map.insert("reason".into(), json!(reason));
    }
    Finding {
        issue_type,
        wow_character_id: ids.0,
        discord_user_id: ids.1,
        player_id: ids.2,
        summary,
        details: extra,
    }
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
            json!({"character_name": name, "realm_slug": realm_slug, "rank": rank}),
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
            format!("has the Discord role {role} but is linked to no player"),
            json!({"discord_id": discord_id, "username": username, "role": role}),
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
    ) -> Self {
        let expected = match expected_role {
            Some(role) => format!(", which should be Discord role {role},"),
            None => ", which no Discord role is mapped to,".to_string(),
        };
        finding(
            IssueType::RankMismatch,
            (None, Some(discord_user_id), Some(player_id)),
            player_name.to_string(),
            format!("in-game rank {ingame_rank}{expected} but has Discord role {discord_role}"),
            json!({"ingame_rank": ingame_rank, "expected_discord_role": expected_role,
                   "discord_role": discord_role}),
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
    ) -> Self {
        finding(
            IssueType::NoGuildRole,
            (None, Some(discord_user_id), Some(player_id)),
            player_with_discord(player_name, username),
            format!("in-game rank {ingame_rank} but no guild role on Discord"),
            json!({"ingame_rank": ingame_rank, "username": username,
                   "discord_display_name": discord_display_name}),
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
            json!({"last_seen": last_seen, "basis": basis, "days_ago": days_ago,
                   "threshold_days": threshold_days}),
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
            json!({"player_ids": players.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                   "player_names": names}),
        )
    }

    /// The ids this finding's type hashes (see [`IssueType`]).
    pub fn hash_ids(&self) -> Vec<i64> {
        let id = |v: Option<i32>| i64::from(v.unwrap_or(0));
        match self.issue_type {
            IssueType::OrphanWow | IssueType::StaleCharacter => vec![id(self.wow_character_id)],
            IssueType::OrphanDiscord | IssueType::DuplicateDiscord => {
                vec![id(self.discord_user_id)]
            }
            IssueType::RankMismatch | IssueType::NoGuildRole => vec![id(self.player_id)],
            IssueType::AutoLinkSuggestion => {
                vec![id(self.wow_character_id), id(self.discord_user_id)]
            }
        }
    }

    /// This finding's [`issue_hash`].
    pub fn hash(&self) -> String {
        issue_hash(self.issue_type, &self.hash_ids())
    }
}

/// An unresolved `audit_issues` row as the diff needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIssue {
    pub id: i32,
    pub issue_hash: String,
    /// `None` for a type this version does not know (left alone).
    pub issue_type: Option<IssueType>,
    pub summary: String,
    pub details: serde_json::Value,
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

/// What a check run must write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckPlan {
    /// Causes with no open issue: insert (hash, finding).
    pub insert: Vec<(String, Finding)>,
    /// Open issues whose summary or details changed: (issue id, finding).
    pub update: Vec<(i32, Finding)>,
    /// Open issues whose cause is gone: resolve automatically.
    pub resolve: Vec<i32>,
    /// Manual resolutions whose cause is gone: mark spent, so a returning cause is re-flagged.
    pub spend_manual: Vec<i32>,
    pub counts: BTreeMap<IssueType, TypeCounts>,
}

/// Diff this run's findings against the open issues and the live manual resolutions.
/// Deterministic: the output follows the order of `findings` and `open`.
pub fn plan_check(
    findings: Vec<Finding>,
    open: &[OpenIssue],
    manual: &[ManualResolution],
) -> CheckPlan {
    let mut plan = CheckPlan::default();
    let open_by_hash: HashMap<&str, &OpenIssue> =
        open.iter().map(|o| (o.issue_hash.as_str(), o)).collect();
    let suppressing: HashSet<&str> = manual.iter().map(|m| m.issue_hash.as_str()).collect();
    let mut current: HashSet<String> = HashSet::with_capacity(findings.len());
    for finding in findings {
        let hash = finding.hash();
        if !current.insert(hash.clone()) {
            continue;
        }
        let counts = plan.counts.entry(finding.issue_type).or_default();
        if let Some(existing) = open_by_hash.get(hash.as_str()) {
            counts.still_open += 1;
            if existing.summary != finding.summary || existing.details != finding.details {
                plan.update.push((existing.id, finding));
            }
        } else if suppressing.contains(hash.as_str()) {
            counts.suppressed += 1;
        } else {
            counts.new += 1;
            plan.insert.push((hash, finding));
        }
    }
    for issue in open {
        let Some(issue_type) = issue.issue_type else {
            continue;
        };
        let gone = if issue_type.detected_by_checker() {
            !current.contains(&issue.issue_hash)
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
        .filter(|m| !current.contains(&m.issue_hash))
        .map(|m| m.id)
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

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
            summary: f.summary.clone(),
            details: f.details.clone(),
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
        assert_eq!(plan.insert, vec![(fresh.hash(), fresh)]);
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
        assert_eq!(plan.update, vec![(10, after)]);
        assert!(plan.insert.is_empty());
    }

    #[test]
    fn every_checker_type_is_resolved_when_its_cause_is_gone() {
        let when = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let gone = [
            Finding::orphan_wow(1, "A", "r", None),
            Finding::orphan_discord(2, None, "b", "123", "Member"),
            Finding::rank_mismatch(3, "C", 3, "Officer", Some("Officer"), "Member"),
            Finding::no_guild_role(4, "D", 4, None, "d", "Member"),
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
            summary: "s".into(),
            details: json!({}),
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
                "Bob (@bobby): has the Discord role Member but is linked to no player",
            ),
            (
                Finding::rank_mismatch(3, "Carol", 3, "Guild Leader", Some("GM"), "Officer"),
                "Carol: in-game rank Guild Leader, which should be Discord role GM, but has Discord role Officer",
            ),
            (
                Finding::no_guild_role(4, "Dan", 4, None, "dan", "Member"),
                "Dan (@dan): in-game rank Member but no guild role on Discord",
            ),
        ];
        for (finding, summary) in cases {
            assert_eq!(finding.summary, summary);
            assert!(finding.details.get("subject").is_some());
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
            let mut ai: Vec<String> = a.insert.into_iter().map(|(h, _)| h).collect();
            let mut bi: Vec<String> = b.insert.into_iter().map(|(h, _)| h).collect();
            ai.sort();
            bi.sort();
            proptest::prop_assert_eq!(ai, bi);
        }
    }
}
