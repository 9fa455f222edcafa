//! How right the identity engine's links are on a synthetic guild: precision and recall per
//! link source, scored against the generator's [`Truth`](super::synthetic::Truth).
//!
//! A link is right when the character's true owner is the player's owner: the owner of the
//! player's Discord member when it has one (a member nobody owns, such as an impersonator,
//! makes every link to that player wrong), else the owner most of the player's characters
//! belong to. Recall counts right links against the characters that *can* be linked: those
//! whose owner is on Discord or has several characters (alts naming a main).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use anyhow::Result;
use guild_sync_core::matching::{Plan, PlayerRef};
use serde::Serialize;
use sqlx::PgPool;

use super::synthetic::{Guild, Truth};

/// One link, reduced to what scoring needs.
#[derive(Debug, Clone)]
pub struct LinkRecord {
    pub character_owner: usize,
    /// Any key identifying the player within one run.
    pub player: i64,
    /// `None`: the player has no Discord member; `Some(owner)`: the member's true owner.
    pub player_member: Option<Option<usize>>,
    pub source: String,
}

/// Links made and links right, for one source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SourceScore {
    pub links: usize,
    pub right: usize,
}

/// Precision and recall of one run's links.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Quality {
    pub by_source: BTreeMap<String, SourceScore>,
    /// Characters whose owner is on Discord or has several characters.
    pub linkable: usize,
}

impl Quality {
    pub fn links(&self) -> usize {
        self.by_source.values().map(|s| s.links).sum()
    }

    pub fn right(&self) -> usize {
        self.by_source.values().map(|s| s.right).sum()
    }

    /// Right links / links (1.0 with no links: nothing was wrong).
    pub fn precision(&self) -> f64 {
        ratio(self.right(), self.links())
    }

    /// Right links / linkable characters.
    pub fn recall(&self) -> f64 {
        ratio(self.right(), self.linkable)
    }

    /// A table: one line per source, then the total.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:>7} {:>7} {:>10} {:>8}",
            "link source", "links", "right", "precision", "recall"
        );
        for (source, s) in &self.by_source {
            let _ = writeln!(
                out,
                "{:<24} {:>7} {:>7} {:>10.4} {:>8.4}",
                source,
                s.links,
                s.right,
                ratio(s.right, s.links),
                ratio(s.right, self.linkable)
            );
        }
        let _ = writeln!(
            out,
            "{:<24} {:>7} {:>7} {:>10.4} {:>8.4}   ({} linkable characters)",
            "all links",
            self.links(),
            self.right(),
            self.precision(),
            self.recall(),
            self.linkable
        );
        out
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

/// Score `links` against the characters of `truth`.
pub fn score(truth: &Truth, links: &[LinkRecord]) -> Quality {
    let mut characters_of: HashMap<usize, usize> = HashMap::new();
    for c in &truth.characters {
        *characters_of.entry(c.owner).or_default() += 1;
    }
    let on_discord: std::collections::HashSet<usize> =
        truth.members.iter().filter_map(|m| m.owner).collect();
    let linkable = truth
        .characters
        .iter()
        .filter(|c| on_discord.contains(&c.owner) || characters_of[&c.owner] >= 2)
        .count();

    // The owner of each player without a Discord member: the most common among its characters.
    let mut votes: HashMap<i64, BTreeMap<usize, usize>> = HashMap::new();
    for l in links.iter().filter(|l| l.player_member.is_none()) {
        *votes
            .entry(l.player)
            .or_default()
            .entry(l.character_owner)
            .or_default() += 1;
    }
    let majority: HashMap<i64, usize> = votes
        .into_iter()
        .map(|(p, v)| {
            let best = v
                .iter()
                .max_by_key(|&(owner, n)| (*n, std::cmp::Reverse(*owner)))
                .map(|(o, _)| *o)
                .expect("a player with votes");
            (p, best)
        })
        .collect();

    let mut by_source: BTreeMap<String, SourceScore> = BTreeMap::new();
    for l in links {
        let owner = match l.player_member {
            Some(member_owner) => member_owner,
            None => majority.get(&l.player).copied(),
        };
        let s = by_source.entry(l.source.clone()).or_default();
        s.links += 1;
        if owner == Some(l.character_owner) {
            s.right += 1;
        }
    }
    Quality {
        by_source,
        linkable,
    }
}

/// Score a pure plan made from [`Guild::snapshot`] (an empty database: every player is new).
pub fn score_plan(guild: &Guild, plan: &Plan) -> Quality {
    let links: Vec<LinkRecord> = plan
        .links
        .iter()
        .map(|l| {
            let (player, member) = match l.player {
                PlayerRef::New(i) => (
                    i as i64,
                    plan.new_players[i]
                        .discord_user_id
                        .map(|u| guild.member_owner(u)),
                ),
                PlayerRef::Existing(id) => (-id, None),
            };
            LinkRecord {
                character_owner: guild.character_owner(l.character_id),
                player,
                player_member: member,
                source: l.source.as_str().to_string(),
            }
        })
        .collect();
    score(&guild.generated().truth, &links)
}

/// Score the links stored in `pool` after a pipeline run over the guild `truth` describes.
pub async fn score_database(pool: &PgPool, truth: &Truth) -> Result<Quality> {
    let owner_of_character: HashMap<(String, &str), usize> = truth
        .characters
        .iter()
        .map(|c| ((c.name.to_lowercase(), c.realm_slug.as_str()), c.owner))
        .collect();
    let owner_of_member: HashMap<&str, Option<usize>> = truth
        .members
        .iter()
        .map(|m| (m.discord_id.as_str(), m.owner))
        .collect();
    let rows = crate::db::links::links_with_owners(pool).await?;
    let links: Vec<LinkRecord> = rows
        .into_iter()
        .filter_map(|r| {
            let owner = owner_of_character
                .get(&(r.character_name.to_lowercase(), r.realm_slug.as_str()))
                .copied()?;
            Some(LinkRecord {
                character_owner: owner,
                player: i64::from(r.player_id),
                player_member: r
                    .discord_id
                    .map(|d| owner_of_member.get(d.as_str()).copied().flatten()),
                source: r.link_source.to_string(),
            })
        })
        .collect();
    Ok(score(truth, &links))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::synthetic::{Decoys, GuildSize, generate};
    use guild_sync_core::fuzzy::FuzzyIndex;
    use guild_sync_core::matching::{self, FUZZY_SUGGEST_THRESHOLD, Snapshot, snapshot_after};
    use proptest::prelude::*;

    /// The recall of the engine before issue 14 on the plain guild ([`Decoys::None`]) at
    /// 1,000 × 3,000: 964 right links of 986 linkable characters, 0.9777, measured with
    /// `GUILD_SYNC_BENCH_DECOYS=none guild-sync bench --discord 3000` on the old engine (the
    /// issue 14 note). The new engine on the decoy-rich guild must not find fewer.
    const RECALL_BEFORE_ON_THE_PLAIN_GUILD: f64 = 0.9777;

    #[test]
    fn on_the_decoy_rich_guild_at_1000_by_3000_links_are_at_least_99_5_percent_right() {
        let size = GuildSize {
            characters: 1000,
            discord_members: 3000,
        };
        let guild = generate(size, 20_261_125, Decoys::Rich);
        let plan = matching::plan(&guild.snapshot());
        let quality = score_plan(&guild, &plan);
        println!("decoy-rich 1,000 × 3,000:\n{}", quality.render());
        assert!(quality.links() > 500, "{}", quality.render());
        assert!(quality.precision() >= 0.995, "{}", quality.render());
        assert!(
            quality.recall() >= RECALL_BEFORE_ON_THE_PLAIN_GUILD,
            "{}",
            quality.render()
        );
        // Every kind of link the generator plants evidence for is made.
        for source in [
            "exact_name",
            "guild_note",
            "officer_note",
            "display_name_part",
        ] {
            assert!(
                quality.by_source.get(source).is_some_and(|s| s.links > 0),
                "no {source} links:\n{}",
                quality.render()
            );
        }
    }

    #[test]
    fn a_wrong_link_counts_against_precision() {
        let truth = crate::bench::synthetic::Truth {
            characters: (0..4)
                .map(|i| crate::bench::synthetic::TrueCharacter {
                    name: format!("c{i}"),
                    realm_slug: "r".into(),
                    owner: i / 2,
                })
                .collect(),
            members: vec![crate::bench::synthetic::TrueMember {
                discord_id: "1".into(),
                owner: Some(0),
            }],
        };
        let link = |owner, player, member, source: &str| LinkRecord {
            character_owner: owner,
            player,
            player_member: member,
            source: source.into(),
        };
        let q = score(
            &truth,
            &[
                link(0, 1, Some(Some(0)), "exact_name"),
                link(1, 1, Some(Some(0)), "fuzzy_name"),
                link(1, 2, None, "alt_note"),
                link(1, 2, None, "alt_note"),
            ],
        );
        assert_eq!(
            q.by_source["fuzzy_name"],
            SourceScore { links: 1, right: 0 }
        );
        assert_eq!(q.by_source["alt_note"], SourceScore { links: 2, right: 2 });
        assert_eq!(q.precision(), 0.75);
        assert_eq!(q.linkable, 4);
    }

    fn small_guild(seed: u64) -> (crate::bench::synthetic::Guild, Snapshot) {
        let size = GuildSize {
            characters: 90,
            discord_members: 240,
        };
        let guild = generate(size, seed, Decoys::Rich);
        let snapshot = guild.snapshot();
        (guild, snapshot)
    }

    /// 24 cases (each plans a whole guild) unless `PROPTEST_CASES` asks for another number, as
    /// it does for proptest's default configuration.
    fn cases() -> ProptestConfig {
        if std::env::var_os("PROPTEST_CASES").is_some() {
            ProptestConfig::default()
        } else {
            ProptestConfig::with_cases(24)
        }
    }

    proptest! {
        #![proptest_config(cases())]

        #[test]
        fn on_decoy_rich_guilds_the_plan_ignores_row_order(seed in any::<u64>(), turn in 0usize..50) {
            let (_, s) = small_guild(seed);
            let mut shuffled = s.clone();
            shuffled.characters.reverse();
            let n = shuffled.discord_users.len();
            shuffled.discord_users.rotate_left(turn % n.max(1));
            prop_assert_eq!(matching::plan(&s), matching::plan(&shuffled));
        }

        #[test]
        fn on_decoy_rich_guilds_the_pruned_fuzzy_search_equals_scoring_every_pair(seed in any::<u64>()) {
            let (_, s) = small_guild(seed);
            let users = &s.discord_users;
            let entries = matching::name_entries(
                users,
                (0..users.len()).filter(|&i| users[i].has_guild_role),
                &matching::snapshot_realms(&s),
            );
            let index = FuzzyIndex::new(entries.iter().map(|e| std::iter::once(e.text.as_str())));
            for c in &s.characters {
                prop_assert_eq!(
                    index.matches(&c.name, FUZZY_SUGGEST_THRESHOLD).0,
                    index.matches_exhaustive(&c.name, FUZZY_SUGGEST_THRESHOLD)
                );
            }
        }

        #[test]
        fn on_decoy_rich_guilds_a_second_run_changes_nothing(seed in any::<u64>()) {
            let (guild, s) = small_guild(seed);
            let first = matching::plan(&s);
            let second = matching::plan(&snapshot_after(&s, &first));
            prop_assert!(second.links.is_empty(), "{:?}", second.links);
            prop_assert!(second.new_players.is_empty());
            prop_assert!(second.attachments.is_empty());
            let quality = score_plan(&guild, &first);
            prop_assert!(quality.precision() >= 0.97, "seed {}: {:?}", seed, quality);
        }
    }
}
