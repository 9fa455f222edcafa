//! roles: the Discord role plan, pure. Owns which roles are *managed* (the rank roles plus an
//! optional former-member role), the desired rank role of each linked member (the Discord role
//! of the player's highest in-game rank), the grace period after a player's last character
//! left, the plan's fingerprint (what an officer approves) and the mass-change guard.
//!
//! Safety rules, decided here so every caller gets them: a member with no player is never
//! touched; a role that is not managed is never touched; a player with no ranked character in
//! the guild keeps the roles until the grace period after the last departure has passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::report::{
    COLOR_CRITICAL, COLOR_OK, COLOR_WARNING, Embed, MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS,
    escape_markdown, truncate,
};

/// Default grace period (days) after a player's last character left the guild.
pub const DEFAULT_GRACE_DAYS: i64 = 7;

/// Default share of linked members a plan may change without `--allow-mass-change`.
pub const DEFAULT_MAX_CHANGE_SHARE: f64 = 0.10;

/// Which roles guild-sync may add or remove, and how rank maps to role.
#[derive(Debug, Clone, PartialEq)]
pub struct RolePolicy {
    /// (rank level, Discord role name); a higher level is more senior.
    pub rank_roles: Vec<(i32, String)>,
    /// The role a former member gets once the grace period has passed.
    pub former_member_role: Option<String>,
    pub grace: Duration,
}

impl RolePolicy {
    pub fn new(
        rank_roles: Vec<(i32, String)>,
        former_member_role: Option<String>,
        grace_days: i64,
    ) -> RolePolicy {
        let rank_roles = rank_roles
            .into_iter()
            .map(|(level, name)| (level, name.trim().to_owned()))
            .filter(|(_, name)| !name.is_empty())
            .collect();
        RolePolicy {
            rank_roles,
            former_member_role: former_member_role
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
            grace: Duration::days(grace_days.max(0)),
        }
    }

    /// Every managed role name, as the rank table spells it.
    pub fn managed_roles(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rank_roles.iter().map(|(_, n)| n.clone()).collect();
        names.extend(self.former_member_role.clone());
        names
    }

    fn role_for_level(&self, level: i32) -> Option<&str> {
        self.rank_roles
            .iter()
            .find(|(l, _)| *l == level)
            .map(|(_, n)| n.as_str())
    }
}

/// The player behind a Discord member, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerRanks {
    /// Display name of the player (for the audit-log reason and the summary).
    pub player_name: String,
    /// Rank levels of the player's characters still in the guild.
    pub present_rank_levels: Vec<i32>,
    /// Characters the player has in the guild (ranked or not).
    pub present_characters: usize,
    /// The latest `removed_at` among the player's departed characters.
    pub last_departure: Option<DateTime<Utc>>,
}

/// A present Discord member with the roles they hold now (by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRoles {
    pub discord_id: String,
    pub display_name: String,
    pub roles: Vec<String>,
    /// `None`: not linked to a player — never touched.
    pub player: Option<PlayerRanks>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleAction {
    Add,
    Remove,
}

impl RoleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleAction::Add => "add",
            RoleAction::Remove => "remove",
        }
    }

    /// The stored spelling (`role_changes.action`) back.
    pub fn parse(text: &str) -> Option<RoleAction> {
        [RoleAction::Add, RoleAction::Remove]
            .into_iter()
            .find(|a| a.as_str() == text)
    }

    pub fn inverse(self) -> RoleAction {
        match self {
            RoleAction::Add => RoleAction::Remove,
            RoleAction::Remove => RoleAction::Add,
        }
    }
}

crate::text_enum! {
    /// What a role run does, as stored in `role_runs.kind`.
    pub enum RoleRunKind {
        /// Applies a plan's changes.
        Apply = "apply",
        /// Reverses an earlier run's applied changes.
        Undo = "undo",
    }
}

crate::text_enum! {
    /// How a role run stands, as stored in `role_runs.status`.
    pub enum RoleRunStatus {
        Running = "running",
        /// Every change was sent.
        Success = "success",
        /// Stopped at a change Discord refused or that failed; the rest were not sent.
        Stopped = "stopped",
        /// A guard refused the run before any change.
        Refused = "refused",
    }
}

crate::text_enum! {
    /// What became of one change of a run, as stored in `role_changes.result`.
    pub enum ChangeResult {
        /// Discord accepted it.
        Applied = "applied",
        /// Accepted, and the member's roles read back show it.
        Verified = "verified",
        /// Discord refused it or the request failed.
        Failed = "failed",
        /// Not sent: the run had stopped, or the role is not on the server.
        NotSent = "not_sent",
    }
}

impl ChangeResult {
    /// Whether the change reached Discord (what an undo reverses).
    pub fn was_applied(self) -> bool {
        matches!(self, ChangeResult::Applied | ChangeResult::Verified)
    }
}

/// One role to add to or remove from one member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleChange {
    pub discord_id: String,
    pub display_name: String,
    pub role: String,
    pub action: RoleAction,
    /// The audit-log reason, e.g. "guild-sync: in-game rank Officer".
    pub reason: String,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolePlan {
    pub changes: Vec<RoleChange>,
    /// Linked, present members (the base of the mass-change share).
    pub linked_members: usize,
    /// Members the plan changes.
    pub members_changed: usize,
    /// Members with no player: listed for the report, never touched.
    pub unlinked_members: usize,
    /// Former members still inside their grace period.
    pub in_grace: usize,
    /// SHA-256 of the sorted changes: an approval is of this exact plan.
    pub fingerprint: String,
}

impl RolePlan {
    /// Share of linked members the plan changes.
    pub fn change_share(&self) -> f64 {
        if self.linked_members == 0 {
            0.0
        } else {
            self.members_changed as f64 / self.linked_members as f64
        }
    }

    /// A short text for the audit channel.
    pub fn summary(&self) -> String {
        let adds = self
            .changes
            .iter()
            .filter(|c| c.action == RoleAction::Add)
            .count();
        format!(
            "Role plan: {} change(s) for {} of {} linked member(s) ({} add, {} remove); {} unlinked member(s) untouched; {} former member(s) in grace.",
            self.changes.len(),
            self.members_changed,
            self.linked_members,
            adds,
            self.changes.len() - adds,
            self.unlinked_members,
            self.in_grace
        )
    }
}

/// Why the mass-change guard refused a plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the plan changes {members_changed} of {linked_members} linked members ({share:.1} %), more than the {limit:.1} % allowed; rerun with --allow-mass-change or approve this exact plan"
)]
pub struct MassChange {
    pub members_changed: usize,
    pub linked_members: usize,
    pub share: f64,
    pub limit: f64,
}

/// Refuse a plan that changes more than `max_share` of linked members.
pub fn check_mass_change(plan: &RolePlan, max_share: f64) -> Result<(), MassChange> {
    if plan.change_share() > max_share {
        return Err(MassChange {
            members_changed: plan.members_changed,
            linked_members: plan.linked_members,
            share: plan.change_share() * 100.0,
            limit: max_share * 100.0,
        });
    }
    Ok(())
}

/// The plan for `members` at `now`.
pub fn plan_roles(policy: &RolePolicy, members: &[MemberRoles], now: DateTime<Utc>) -> RolePlan {
    // Lowercased managed name → the spelling used in requests and records.
    let managed: HashMap<String, String> = policy
        .managed_roles()
        .into_iter()
        .map(|n| (n.to_lowercase(), n))
        .collect();
    let mut changes = Vec::new();
    let (mut linked, mut changed, mut unlinked, mut in_grace) = (0, 0, 0, 0);
    for member in members {
        let Some(player) = &member.player else {
            unlinked += 1;
            continue;
        };
        linked += 1;
        let Some(desired) = desired_role(policy, player, now, &mut in_grace) else {
            continue;
        };
        let held: BTreeSet<String> = member
            .roles
            .iter()
            .filter_map(|r| managed.get(&r.trim().to_lowercase()).cloned())
            .collect();
        let reason = match (&desired, player.present_characters) {
            (Some(role), n) if n > 0 => format!("guild-sync: in-game rank {role}"),
            _ => "guild-sync: left the guild".to_owned(),
        };
        let before = changes.len();
        if let Some(role) = &desired
            && !held.iter().any(|h| h.eq_ignore_ascii_case(role))
        {
            changes.push(change(member, role, RoleAction::Add, &reason));
        }
        for role in &held {
            if desired
                .as_deref()
                .is_none_or(|d| !d.eq_ignore_ascii_case(role))
            {
                changes.push(change(member, role, RoleAction::Remove, &reason));
            }
        }
        if changes.len() > before {
            changed += 1;
        }
    }
    changes.sort();
    RolePlan {
        fingerprint: fingerprint(&changes),
        changes,
        linked_members: linked,
        members_changed: changed,
        unlinked_members: unlinked,
        in_grace,
    }
}

/// `None`: leave the member alone. `Some(None)`: no managed role. `Some(Some(r))`: exactly `r`.
fn desired_role(
    policy: &RolePolicy,
    player: &PlayerRanks,
    now: DateTime<Utc>,
    in_grace: &mut usize,
) -> Option<Option<String>> {
    if player.present_characters > 0 {
        // Highest rank that has a Discord role; a rank with no role gives no decision, so the
        // member's roles stay as an officer set them.
        let mut levels = player.present_rank_levels.clone();
        levels.sort_unstable_by(|a, b| b.cmp(a));
        let role = levels.iter().find_map(|l| policy.role_for_level(*l))?;
        return Some(Some(role.to_owned()));
    }
    // No character in the guild: a departed player loses the rank roles only after the grace
    // period; a player who never had a character is not a departure at all.
    let left = player.last_departure?;
    if now - left < policy.grace {
        *in_grace += 1;
        return None;
    }
    Some(policy.former_member_role.clone())
}

fn change(member: &MemberRoles, role: &str, action: RoleAction, reason: &str) -> RoleChange {
    RoleChange {
        discord_id: member.discord_id.clone(),
        display_name: member.display_name.clone(),
        role: role.to_owned(),
        action,
        reason: reason.to_owned(),
    }
}

/// Most members named in a plan's audit-channel embed; the others are counted.
pub const EMBED_MEMBERS: usize = 20;

/// The audit-channel embed of a stored plan: the summary, then each changed member (names
/// escaped for Discord markdown, at most [`EMBED_MEMBERS`]) with the roles added (+) and
/// removed (−), and where to approve it.
pub fn render_plan_embed(plan: &RolePlan, plan_id: i64) -> Embed {
    let mut members: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for c in &plan.changes {
        let sign = match c.action {
            RoleAction::Add => '+',
            RoleAction::Remove => '−',
        };
        members
            .entry((c.display_name.as_str(), c.discord_id.as_str()))
            .or_default()
            .push(format!("{sign}{}", escape_markdown(&c.role)));
    }
    let mut description = plan.summary();
    for ((name, id), roles) in members.iter().take(EMBED_MEMBERS) {
        description.push_str(&format!(
            "\n**{}** ({id}): {}",
            escape_markdown(&truncate(name, 64)),
            roles.join(", ")
        ));
    }
    if members.len() > EMBED_MEMBERS {
        description.push_str(&format!(
            "\n…and {} more member(s).",
            members.len() - EMBED_MEMBERS
        ));
    }
    if !plan.changes.is_empty() {
        description.push_str(&format!(
            "\nAn officer can approve plan {plan_id} on the console's Roles page."
        ));
    }
    Embed {
        title: format!("🛡️ Role plan {plan_id}"),
        description: truncate(&description, MAX_DESCRIPTION_CHARS),
        color: if plan.changes.is_empty() {
            COLOR_OK
        } else {
            COLOR_WARNING
        },
        fields: Vec::new(),
    }
}

/// The audit-channel embed of a finished role run (`apply` or `undo`).
pub fn render_run_embed(
    run_id: i64,
    kind: RoleRunKind,
    status: RoleRunStatus,
    applied: usize,
    verified: usize,
    reason: Option<&str>,
) -> Embed {
    let mut description = format!(
        "{applied} change(s) applied, {verified} verified on re-read. Undo with `guild-sync roles undo {run_id}` or the console's Roles page."
    );
    if let Some(reason) = reason {
        description.push_str(&format!("\nStopped: {}", escape_markdown(reason)));
    }
    Embed {
        title: truncate(
            &format!("🛡️ Role {kind} run {run_id}: {status}"),
            MAX_TITLE_CHARS,
        ),
        description: truncate(&description, MAX_DESCRIPTION_CHARS),
        color: if status == RoleRunStatus::Success {
            COLOR_OK
        } else {
            COLOR_CRITICAL
        },
        fields: Vec::new(),
    }
}

/// SHA-256 (hex) of the sorted changes (member, role, action).
pub fn fingerprint(changes: &[RoleChange]) -> String {
    let mut hasher = Sha256::new();
    for c in changes {
        hasher.update(c.discord_id.as_bytes());
        hasher.update([0]);
        hasher.update(c.role.to_lowercase().as_bytes());
        hasher.update([0]);
        hasher.update(c.action.as_str().as_bytes());
        hasher.update([1]);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RolePolicy {
        RolePolicy::new(
            vec![
                (5, "GM".into()),
                (4, "Officer".into()),
                (2, "Member".into()),
            ],
            Some("Former Member".into()),
            7,
        )
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    fn member(id: &str, roles: &[&str], player: Option<PlayerRanks>) -> MemberRoles {
        MemberRoles {
            discord_id: id.into(),
            display_name: format!("m{id}"),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            player,
        }
    }

    fn ranked(levels: &[i32]) -> Option<PlayerRanks> {
        Some(PlayerRanks {
            player_name: "p".into(),
            present_rank_levels: levels.to_vec(),
            present_characters: levels.len(),
            last_departure: None,
        })
    }

    fn departed(days_ago: i64) -> Option<PlayerRanks> {
        Some(PlayerRanks {
            player_name: "p".into(),
            present_rank_levels: vec![],
            present_characters: 0,
            last_departure: Some(now() - Duration::days(days_ago)),
        })
    }

    /// The plan's changes as (role, action).
    fn role_actions(plan: &RolePlan) -> Vec<(&str, RoleAction)> {
        plan.changes
            .iter()
            .map(|c| (c.role.as_str(), c.action))
            .collect()
    }

    #[test]
    fn highest_rank_role_added_and_other_managed_removed_unmanaged_kept() {
        let plan = plan_roles(
            &policy(),
            &[member(
                "1",
                &["Member", "Raider", "member"],
                ranked(&[2, 4]),
            )],
            now(),
        );
        let got = role_actions(&plan);
        assert_eq!(
            got,
            vec![("Member", RoleAction::Remove), ("Officer", RoleAction::Add)]
        );
        assert!(plan.changes.iter().all(|c| c.role != "Raider"));
        assert_eq!(plan.changes[1].reason, "guild-sync: in-game rank Officer");
        assert_eq!(plan.members_changed, 1);
    }

    #[test]
    fn unlinked_member_is_never_touched() {
        let plan = plan_roles(&policy(), &[member("1", &["GM", "Officer"], None)], now());
        assert!(plan.changes.is_empty());
        assert_eq!(plan.unlinked_members, 1);
        assert_eq!(plan.linked_members, 0);
    }

    #[test]
    fn member_already_right_has_no_change() {
        let plan = plan_roles(&policy(), &[member("1", &["officer"], ranked(&[4]))], now());
        assert!(plan.changes.is_empty());
    }

    #[test]
    fn departed_player_keeps_roles_during_grace_then_becomes_former_member() {
        let inside = plan_roles(&policy(), &[member("1", &["Officer"], departed(3))], now());
        assert!(inside.changes.is_empty());
        assert_eq!(inside.in_grace, 1);
        let after = plan_roles(&policy(), &[member("1", &["Officer"], departed(8))], now());
        let got = role_actions(&after);
        assert_eq!(
            got,
            vec![
                ("Former Member", RoleAction::Add),
                ("Officer", RoleAction::Remove)
            ]
        );
    }

    #[test]
    fn rank_without_role_leaves_member_alone() {
        let plan = plan_roles(&policy(), &[member("1", &["GM"], ranked(&[3]))], now());
        assert!(plan.changes.is_empty());
    }

    #[test]
    fn mass_change_guard_and_fingerprint() {
        let members: Vec<MemberRoles> = (1..=10)
            .map(|i| member(&i.to_string(), &[], ranked(&[2])))
            .collect();
        let plan = plan_roles(&policy(), &members, now());
        assert_eq!(plan.members_changed, 10);
        let err = check_mass_change(&plan, DEFAULT_MAX_CHANGE_SHARE).unwrap_err();
        assert!(err.to_string().contains("--allow-mass-change"), "{err}");
        let one = plan_roles(&policy(), &members[..1], now());
        assert_ne!(one.fingerprint, plan.fingerprint);
        let mut small = members.clone();
        for m in small.iter_mut().skip(1) {
            m.roles = vec!["Member".into()];
        }
        let ok = plan_roles(&policy(), &small, now());
        assert!(check_mass_change(&ok, DEFAULT_MAX_CHANGE_SHARE).is_ok());
        assert_eq!(
            ok.fingerprint,
            plan_roles(&policy(), &small, now()).fingerprint
        );
    }

    #[test]
    fn plan_embed_escapes_names_and_bounds_the_member_list() {
        let mut members: Vec<MemberRoles> = (0..30)
            .map(|i| member(&format!("{}", 100 + i), &["Member"], ranked(&[4])))
            .collect();
        members[0].display_name = "**evil**_`@everyone`".into();
        let plan = plan_roles(&policy(), &members, now());
        let embed = render_plan_embed(&plan, 7);
        assert_eq!(embed.title, "🛡️ Role plan 7");
        assert!(
            embed
                .description
                .contains("**\\*\\*evil\\*\\*\\_\\`@everyone\\`** (100): −Member, +Officer"),
            "{}",
            embed.description
        );
        assert!(embed.description.contains("…and 10 more member(s)."));
        assert!(embed.description.contains("approve plan 7"));
        let quiet = render_plan_embed(&plan_roles(&policy(), &[], now()), 8);
        assert_eq!(quiet.color, COLOR_OK);
        assert!(!quiet.description.contains("approve"));
    }

    /// The stored text, the JSON and `parse` agree for every value of the run vocabularies,
    /// and anything else parses to `None` (the service turns that into a decode error).
    #[test]
    fn role_run_vocabularies_read_back_as_themselves() {
        fn round_trip<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
        where
            T: Copy + PartialEq + std::fmt::Debug + Serialize,
        {
            for &v in all {
                assert_eq!(parse(as_str(v)), Some(v));
                assert_eq!(serde_json::to_value(v).unwrap(), as_str(v));
            }
            assert_eq!(parse("Success"), None);
        }
        round_trip(RoleRunKind::ALL, RoleRunKind::as_str, RoleRunKind::parse);
        round_trip(
            RoleRunStatus::ALL,
            RoleRunStatus::as_str,
            RoleRunStatus::parse,
        );
        round_trip(ChangeResult::ALL, ChangeResult::as_str, ChangeResult::parse);
        round_trip(
            &[RoleAction::Add, RoleAction::Remove],
            RoleAction::as_str,
            RoleAction::parse,
        );
        assert_eq!(ChangeResult::NotSent.to_string(), "not_sent");
    }
}
