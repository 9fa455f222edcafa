//! Integrity findings: the issue types, their severities and the issue hash that identifies one
//! cause across runs. (Issue 6 extends this with the findings themselves.)

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
}
