//! What a member's claim (`/claim`, issue 17) does to the links: the pure decision between the
//! characters a Battle.net account holds and the links guild-sync already has. The service
//! loads the account's characters matched to the guild's (by Blizzard id, else name and realm)
//! with their current links, calls [`plan_claim`], and writes the plan in one transaction.
//!
//! The rules: a claim is the strongest evidence there is, so it beats every link the engine
//! made; an officer's manual link is a decision, so a claim never overrides it (a conflict for
//! an officer instead); claiming again refreshes the set, so characters a claim linked that
//! are no longer on the account are unlinked. Which Battle.net account belongs to whom is
//! decided before this (a second Discord account claiming one is refused whole).

use crate::matching::StoredLinkSource;

/// One character on the claimed account, with what guild-sync knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCharacter {
    /// `wow_characters.id` of the guild character it matched; `None`: not in the guild.
    pub character_id: Option<i32>,
    /// The character's current link, if it has one.
    pub link: Option<CurrentLink>,
}

/// A character's link as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentLink {
    pub player_id: i32,
    pub source: StoredLinkSource,
}

/// What one claim changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimPlan {
    /// Unlinked guild characters to link to the claimant.
    pub link: Vec<i32>,
    /// Characters to move from another player's automatic (or older claimed) link:
    /// `(character_id, from_player_id)`.
    pub moves: Vec<(i32, i32)>,
    /// The claimant's own links the claim now stands behind (turned into claimed links).
    pub refresh: Vec<i32>,
    /// The claimant's links that stay as they are: an officer already linked them by hand.
    pub keep: Vec<i32>,
    /// Characters an officer linked by hand to another player: `(character_id, player_id)`.
    pub conflicts: Vec<(i32, i32)>,
    /// The claimant's claimed links to characters no longer on the account.
    pub unlink: Vec<i32>,
    /// How many of the account's characters are not in the guild.
    pub outside_guild: usize,
}

impl ClaimPlan {
    /// Every guild character the claimant holds once the plan is written.
    pub fn claimed(&self) -> impl Iterator<Item = i32> + '_ {
        self.link
            .iter()
            .copied()
            .chain(self.moves.iter().map(|(c, _)| *c))
            .chain(self.refresh.iter().copied())
            .chain(self.keep.iter().copied())
    }
}

/// Decide a claim by `claimant` (a player id) of `account`, given `claimed_before`: the
/// characters now linked to the claimant with source `battlenet_oauth`.
pub fn plan_claim(
    claimant: i32,
    account: &[AccountCharacter],
    claimed_before: &[i32],
) -> ClaimPlan {
    let mut plan = ClaimPlan::default();
    let mut seen = std::collections::HashSet::new();
    for ch in account {
        let Some(id) = ch.character_id else {
            plan.outside_guild += 1;
            continue;
        };
        // Two account entries can match one row (a rename the roster has not seen yet).
        if !seen.insert(id) {
            continue;
        }
        match ch.link {
            None => plan.link.push(id),
            Some(link) if link.player_id == claimant => {
                if link.source == StoredLinkSource::Manual {
                    plan.keep.push(id);
                } else {
                    plan.refresh.push(id);
                }
            }
            Some(link) if link.source == StoredLinkSource::Manual => {
                plan.conflicts.push((id, link.player_id));
            }
            Some(link) => plan.moves.push((id, link.player_id)),
        }
    }
    plan.unlink = claimed_before
        .iter()
        .copied()
        .filter(|id| !seen.contains(id))
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::LinkSource;

    fn at(id: i32, link: Option<(i32, StoredLinkSource)>) -> AccountCharacter {
        AccountCharacter {
            character_id: Some(id),
            link: link.map(|(player_id, source)| CurrentLink { player_id, source }),
        }
    }

    const CLAIMANT: i32 = 7;

    #[test]
    fn a_claim_links_the_unlinked_moves_the_automatic_and_leaves_the_manual() {
        let fuzzy = StoredLinkSource::Engine(LinkSource::FuzzyName);
        let account = [
            at(1, None),
            at(2, Some((3, fuzzy))),
            at(3, Some((4, StoredLinkSource::Manual))),
            at(
                4,
                Some((CLAIMANT, StoredLinkSource::Engine(LinkSource::ExactName))),
            ),
            at(5, Some((CLAIMANT, StoredLinkSource::Manual))),
            at(6, Some((5, StoredLinkSource::BattlenetOauth))),
            AccountCharacter {
                character_id: None,
                link: None,
            },
        ];
        let plan = plan_claim(CLAIMANT, &account, &[]);
        assert_eq!(plan.link, vec![1]);
        assert_eq!(plan.moves, vec![(2, 3), (6, 5)]);
        assert_eq!(plan.conflicts, vec![(3, 4)]);
        assert_eq!(plan.refresh, vec![4]);
        assert_eq!(plan.keep, vec![5]);
        assert_eq!(plan.outside_guild, 1);
        assert!(plan.unlink.is_empty());
        let mut claimed: Vec<i32> = plan.claimed().collect();
        claimed.sort_unstable();
        assert_eq!(claimed, vec![1, 2, 4, 5, 6]);
    }

    #[test]
    fn claiming_again_unlinks_what_left_the_account_and_nothing_else() {
        let claimed = StoredLinkSource::BattlenetOauth;
        let account = [at(1, Some((CLAIMANT, claimed)))];
        let plan = plan_claim(CLAIMANT, &account, &[1, 2]);
        assert_eq!(plan.refresh, vec![1]);
        assert_eq!(plan.unlink, vec![2]);
        assert!(plan.link.is_empty() && plan.moves.is_empty());
    }

    #[test]
    fn the_same_character_twice_on_an_account_counts_once() {
        let plan = plan_claim(CLAIMANT, &[at(1, None), at(1, None)], &[]);
        assert_eq!(plan.link, vec![1]);
    }

    #[test]
    fn a_claim_of_an_empty_account_unlinks_every_claimed_link() {
        let plan = plan_claim(CLAIMANT, &[], &[4, 5]);
        assert_eq!(plan.unlink, vec![4, 5]);
        assert_eq!(plan.claimed().count(), 0);
    }
}
