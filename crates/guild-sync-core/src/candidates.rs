//! Link candidates for the officer console: the best Discord users for one character, or the
//! best characters for one Discord user, scored with the matcher's own
//! [`fuzzy_match_score`] (character name first, as the matcher calls it), so the console shows
//! the same numbers `match` uses. Unlinked candidates rank before linked ones, each with the
//! reason it was picked.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::Serialize;

#[cfg(test)]
use crate::fuzzy::fuzzy_match_score;
use crate::fuzzy::fuzzy_match_score_normalized;
use crate::names::normalize_name;

/// How many candidates the console shows.
pub const MAX_CANDIDATES: usize = 5;

/// One side that could be linked: a Discord user (its names) or a character (its one name).
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub id: i64,
    /// `(which name, the name)`: `username`, `global_name`, `nickname`, or `character`.
    pub names: Vec<(&'static str, &'a str)>,
    /// Already owned by a player (a linked character, a Discord user with a player).
    pub linked: bool,
}

/// A ranked candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub id: i64,
    /// The matcher's name similarity, `0.0..=1.0`.
    pub score: f64,
    /// Which of the candidate's names scored best, and that name.
    pub matched_kind: &'static str,
    pub matched_name: String,
    pub linked: bool,
    /// Why it is listed, for a human.
    pub reason: String,
}

/// Which side the fixed name is on: the matcher scores `(character, discord)` in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    /// The fixed name is a character's; candidates are Discord users.
    Character,
    /// The fixed names are a Discord user's; candidates are characters.
    DiscordUser,
}

/// The best `limit` candidates for the fixed name(s): unlinked first, then by score (highest
/// first), then by id, so equal inputs give equal answers. Candidates whose every name scores 0
/// are left out.
///
/// One name against every present member (50,000 in a big guild) is the console's slowest
/// request, so: every name is normalized once; only the best `limit` so far are kept (a heap);
/// a pair whose upper bounds (`2·min(len)/(len_a + len_b)`, then `2·shared characters/(len_a +
/// len_b)`, which every score respects) cannot beat what it would have to is never scored; and the reason text is written only for the
/// winners. The answer is exactly the exhaustive ranking's (a test compares them).
pub fn rank(
    fixed: Fixed,
    fixed_names: &[(&'static str, &str)],
    candidates: &[Candidate<'_>],
    limit: usize,
) -> Vec<Ranked> {
    if limit == 0 {
        return Vec::new();
    }
    let fixed_norms: Vec<String> = fixed_names.iter().map(|(_, n)| normalize_name(n)).collect();
    let fixed_counts: Vec<[u16; 256]> = fixed_norms.iter().map(|n| byte_counts(n)).collect();
    let mut kept: BinaryHeap<Kept> = BinaryHeap::with_capacity(limit + 1);
    let mut norms: Vec<String> = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        // The one kept that a newcomer must beat, once there are `limit` of them.
        let worst = if kept.len() == limit {
            kept.peek().copied()
        } else {
            None
        };
        if worst.is_some_and(|w| candidate.linked && !w.linked) {
            continue;
        }
        // Below this a score cannot enter the kept set (a tie might, on a smaller id).
        let floor = worst
            .filter(|w| w.linked == candidate.linked)
            .map_or(0.0, |w| w.score);
        norms.clear();
        norms.extend(candidate.names.iter().map(|(_, n)| normalize_name(n)));
        let mut best: Option<(f64, usize, usize)> = None;
        for (fixed_at, fixed_norm) in fixed_norms.iter().enumerate() {
            for (name_at, norm) in norms.iter().enumerate() {
                if norm.is_empty() {
                    continue;
                }
                let (la, lb) = (fixed_norm.len(), norm.len());
                let beat = best.map_or(0.0, |(s, ..)| s);
                let cannot = |bound: f64| bound < floor || bound <= beat || bound == 0.0;
                if cannot(2.0 * la.min(lb) as f64 / (la + lb) as f64) {
                    continue;
                }
                // Matching blocks never hold more of a character than both names have.
                let shared = shared_characters(&fixed_counts[fixed_at], norm);
                if cannot(2.0 * shared as f64 / (la + lb) as f64) {
                    continue;
                }
                let score = match fixed {
                    Fixed::Character => fuzzy_match_score_normalized(fixed_norm, norm),
                    Fixed::DiscordUser => fuzzy_match_score_normalized(norm, fixed_norm),
                };
                if score > beat {
                    best = Some((score, fixed_at, name_at));
                }
            }
        }
        let Some((score, fixed_at, name_at)) = best else {
            continue;
        };
        let entry = Kept {
            linked: candidate.linked,
            score,
            id: candidate.id,
            index,
            fixed_at,
            name_at,
        };
        if worst.is_none_or(|w| entry < w) {
            kept.push(entry);
            if kept.len() > limit {
                kept.pop();
            }
        }
    }
    kept.into_sorted_vec()
        .into_iter()
        .map(|k| ranked(fixed_names[k.fixed_at], &candidates[k.index], k))
        .collect()
}

fn byte_counts(name: &str) -> [u16; 256] {
    let mut counts = [0u16; 256];
    for &b in name.as_bytes() {
        counts[usize::from(b)] = counts[usize::from(b)].saturating_add(1);
    }
    counts
}

/// How many bytes of `name` can be paired with one of `fixed` (the multiset intersection).
fn shared_characters(fixed: &[u16; 256], name: &str) -> usize {
    let mut left = *fixed;
    let mut shared = 0;
    for &b in name.as_bytes() {
        let slot = &mut left[usize::from(b)];
        if *slot > 0 {
            *slot -= 1;
            shared += 1;
        }
    }
    shared
}

/// A candidate kept while ranking, ordered best first (so the heap's top is the worst kept).
#[derive(Debug, Clone, Copy)]
struct Kept {
    linked: bool,
    score: f64,
    id: i64,
    index: usize,
    fixed_at: usize,
    name_at: usize,
}

impl Kept {
    fn cmp_key(&self, other: &Kept) -> Ordering {
        self.linked
            .cmp(&other.linked)
            .then(other.score.total_cmp(&self.score))
            .then(self.id.cmp(&other.id))
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Kept) -> bool {
        self.cmp_key(other) == Ordering::Equal
    }
}
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Kept) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kept {
    fn cmp(&self, other: &Kept) -> Ordering {
        self.cmp_key(other)
    }
}

fn ranked(
    (fixed_kind, fixed_name): (&'static str, &str),
    candidate: &Candidate<'_>,
    kept: Kept,
) -> Ranked {
    let (kind, name) = candidate.names[kept.name_at];
    let score = kept.score;
    let kind_words = |k: &str| k.replace('_', " ");
    let mut reason = format!(
        "name similarity {score:.2} between {} {fixed_name:?} and {} {name:?}",
        kind_words(fixed_kind),
        kind_words(kind)
    );
    if candidate.linked {
        reason.push_str("; already linked to a player");
    }
    Ranked {
        id: candidate.id,
        score,
        matched_kind: kind,
        matched_name: name.to_string(),
        linked: candidate.linked,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user<'a>(id: i64, username: &'a str, linked: bool) -> Candidate<'a> {
        Candidate {
            id,
            names: vec![("username", username)],
            linked,
        }
    }

    #[test]
    fn unlinked_first_then_score_with_the_matchers_own_numbers() {
        let users = [
            user(1, "thrallmaker", true),
            user(2, "thrall", false),
            user(3, "zzzz", false),
            user(4, "thral", false),
            user(5, "thrall", true),
        ];
        let ranked = rank(Fixed::Character, &[("character", "Thrall")], &users, 5);
        let ids: Vec<i64> = ranked.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![2, 4, 5, 1]);
        assert_eq!(ranked[0].score, 1.0);
        assert_eq!(ranked[1].score, fuzzy_match_score("Thrall", "thral"));
        assert!(
            ranked[2].reason.contains("already linked"),
            "{:?}",
            ranked[2]
        );
        assert!(ranked[0].reason.contains("\"thrall\""), "{:?}", ranked[0]);
    }

    #[test]
    fn the_character_name_is_always_scored_first() {
        let chars = [Candidate {
            id: 9,
            names: vec![("character", "Jaina")],
            linked: false,
        }];
        let ranked = rank(Fixed::DiscordUser, &[("username", "jainaprime")], &chars, 5);
        assert_eq!(ranked[0].score, fuzzy_match_score("Jaina", "jainaprime"));
    }

    #[test]
    fn limit_and_nothing_for_names_without_letters() {
        let users: Vec<Candidate> = (0..10).map(|i| user(i, "arthas", false)).collect();
        assert_eq!(
            rank(Fixed::Character, &[("character", "Arthas")], &users, 5).len(),
            5
        );
        let empty = [user(1, "---", false)];
        assert!(rank(Fixed::Character, &[("character", "Arthas")], &empty, 5).is_empty());
    }

    /// The ranking by scoring every pair with [`fuzzy_match_score`], as `rank` did before it
    /// pruned: the reference the pruned ranking must equal.
    fn rank_exhaustive(
        fixed: Fixed,
        fixed_names: &[(&'static str, &str)],
        candidates: &[Candidate<'_>],
        limit: usize,
    ) -> Vec<(i64, f64, &'static str, bool)> {
        let mut all: Vec<(i64, f64, &'static str, bool)> = candidates
            .iter()
            .filter_map(|c| {
                let mut best: Option<(f64, &'static str)> = None;
                for &(_, fixed_name) in fixed_names {
                    for &(kind, name) in &c.names {
                        if normalize_name(name).is_empty() {
                            continue;
                        }
                        let score = match fixed {
                            Fixed::Character => fuzzy_match_score(fixed_name, name),
                            Fixed::DiscordUser => fuzzy_match_score(name, fixed_name),
                        };
                        if score > 0.0 && best.is_none_or(|(s, _)| score > s) {
                            best = Some((score, kind));
                        }
                    }
                }
                best.map(|(score, kind)| (c.id, score, kind, c.linked))
            })
            .collect();
        all.sort_by(|a, b| a.3.cmp(&b.3).then(b.1.total_cmp(&a.1)).then(a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }

    #[test]
    fn the_pruned_ranking_is_the_exhaustive_one() {
        let words = [
            "thrall",
            "thral",
            "jaina",
            "jainaprime",
            "arthas",
            "sylvanas",
            "anduin",
            "garrosh",
            "varian",
            "illidan",
            "tyrande",
            "malfurion",
            "x",
            "zz",
            "---",
            "thrallz",
            "hrall",
        ];
        let mut names: Vec<String> = Vec::new();
        for (i, a) in words.iter().enumerate() {
            for b in words.iter().skip(i % 5).step_by(3) {
                names.push(format!("{a}{b}"));
                names.push(a.to_string());
            }
        }
        let users: Vec<Candidate> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Candidate {
                // Ids out of input order, so ties break on id, not position.
                id: ((i * 7919) % 1000) as i64,
                names: vec![
                    ("username", n.as_str()),
                    ("nickname", &names[(i * 31) % names.len()]),
                ],
                linked: i % 3 == 0,
            })
            .collect();
        for fixed in [Fixed::Character, Fixed::DiscordUser] {
            for query in ["Thrall", "Jaina", "x", "Sylvanasthrall", "---"] {
                for limit in [1, 5, 40] {
                    let fixed_names = [("character", query), ("username", "anduin")];
                    let pruned: Vec<(i64, f64, &'static str, bool)> =
                        rank(fixed, &fixed_names, &users, limit)
                            .into_iter()
                            .map(|r| (r.id, r.score, r.matched_kind, r.linked))
                            .collect();
                    assert_eq!(
                        pruned,
                        rank_exhaustive(fixed, &fixed_names, &users, limit),
                        "{fixed:?} {query} {limit}"
                    );
                }
            }
        }
    }
}
