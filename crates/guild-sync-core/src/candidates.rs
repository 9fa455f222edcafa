//! Link candidates for the officer console: the best Discord users for one character, or the
//! best characters for one Discord user, scored with the matcher's own
//! [`fuzzy_match_score`] (character name first, as the matcher calls it), so the console shows
//! the same numbers `match` uses. Unlinked candidates rank before linked ones, each with the
//! reason it was picked.

use serde::Serialize;

use crate::fuzzy::fuzzy_match_score;
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
pub fn rank(
    fixed: Fixed,
    fixed_names: &[(&'static str, &str)],
    candidates: &[Candidate<'_>],
    limit: usize,
) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = candidates
        .iter()
        .filter_map(|c| best_name(fixed, fixed_names, c))
        .collect();
    ranked.sort_by(|a, b| {
        a.linked
            .cmp(&b.linked)
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
    ranked.truncate(limit);
    ranked
}

fn best_name(
    fixed: Fixed,
    fixed_names: &[(&'static str, &str)],
    candidate: &Candidate<'_>,
) -> Option<Ranked> {
    let mut best: Option<(f64, &'static str, &str, &'static str, &str)> = None;
    for &(fixed_kind, fixed_name) in fixed_names {
        for &(kind, name) in &candidate.names {
            if normalize_name(name).is_empty() {
                continue;
            }
            let score = match fixed {
                Fixed::Character => fuzzy_match_score(fixed_name, name),
                Fixed::DiscordUser => fuzzy_match_score(name, fixed_name),
            };
            if score > 0.0 && best.is_none_or(|(s, ..)| score > s) {
                best = Some((score, kind, name, fixed_kind, fixed_name));
            }
        }
    }
    let (score, kind, name, fixed_kind, fixed_name) = best?;
    let kind_words = |k: &str| k.replace('_', " ");
    let mut reason = format!(
        "name similarity {score:.2} between {} {fixed_name:?} and {} {name:?}",
        kind_words(fixed_kind),
        kind_words(kind)
    );
    if candidate.linked {
        reason.push_str("; already linked to a player");
    }
    Some(Ranked {
        id: candidate.id,
        score,
        matched_kind: kind,
        matched_name: name.to_string(),
        linked: candidate.linked,
        reason,
    })
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
}
