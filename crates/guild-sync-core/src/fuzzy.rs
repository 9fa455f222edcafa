//! Fuzzy name scoring with exact parity to Python's `difflib.SequenceMatcher(None, a, b).ratio()`,
//! and an index that finds every Discord name scoring at least a threshold against a character
//! name without scoring every pair.
//!
//! The index prunes with exact upper bounds on the score (length, shared-character multiset,
//! longest common subsequence), so it returns exactly what the exhaustive comparison returns —
//! [`FuzzyIndex::matches_exhaustive`] is that comparison, kept for tests and the benchmark.
//! Nothing here decides what a score means; the thresholds live in [`crate::matching`].

use crate::names::normalize_name;

/// Python's `SequenceMatcher` starts treating popular characters of `b` as junk ("autojunk") when
/// `b` has at least this many characters. Names never do, but parity demands it.
const AUTOJUNK_MIN_LEN: usize = 200;

/// The similarity of two names in `0.0..=1.0`: 1.0 when equal after [`normalize_name`]; when one
/// contains the other, shorter length / longer length; otherwise exactly Python's
/// `difflib.SequenceMatcher(None, a, b).ratio()` on the normalized names.
///
/// Not symmetric in general (difflib's tie-breaking depends on the order): the matcher always
/// passes the character name as `a` and the Discord name as `b`.
pub fn fuzzy_match_score(a: &str, b: &str) -> f64 {
    score_normalized(normalize_name(a).as_bytes(), normalize_name(b).as_bytes())
}

/// [`fuzzy_match_score`] on names already passed through [`normalize_name`], for callers that
/// score one name against many and normalize each once. Same function, same scores.
pub fn fuzzy_match_score_normalized(a: &str, b: &str) -> f64 {
    score_normalized(a.as_bytes(), b.as_bytes())
}

/// [`fuzzy_match_score`] on names already normalized. [`normalize_name`] yields ASCII, so bytes
/// are characters and lengths agree with Python's `len`.
fn score_normalized(a: &[u8], b: &[u8]) -> f64 {
    if a == b {
        return 1.0;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if contains(long, short) {
        return short.len() as f64 / long.len() as f64;
    }
    sequence_matcher_ratio(a, b)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `difflib.SequenceMatcher(None, a, b).ratio()`: `2 * M / (len(a) + len(b))` where `M` is the
/// total size of the matching blocks difflib finds (longest match first, then recursively left
/// and right of it), `1.0` for two empty sequences.
pub fn sequence_matcher_ratio(a: &[u8], b: &[u8]) -> f64 {
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    2.0 * matched_characters(a, b) as f64 / total as f64
}

/// Sum of the sizes of difflib's matching blocks (`get_matching_blocks`).
fn matched_characters(a: &[u8], b: &[u8]) -> usize {
    let b2j = b_to_j(b);
    let mut scratch = Scratch::new(b.len());
    let mut matched = 0;
    let mut queue = vec![(0, a.len(), 0, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = find_longest_match(a, b, &b2j, &mut scratch, alo, ahi, blo, bhi);
        if k > 0 {
            matched += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    matched
}

/// difflib's `b2j`: for every byte, its positions in `b` (ascending), with autojunk applied —
/// a byte occurring more than `len(b) / 100 + 1` times in a `b` of 200+ bytes is dropped.
fn b_to_j(b: &[u8]) -> Vec<Vec<usize>> {
    let mut b2j = vec![Vec::new(); 256];
    for (j, &c) in b.iter().enumerate() {
        b2j[usize::from(c)].push(j);
    }
    if b.len() >= AUTOJUNK_MIN_LEN {
        let ntest = b.len() / 100 + 1;
        for positions in &mut b2j {
            if positions.len() > ntest {
                positions.clear();
            }
        }
    }
    b2j
}

/// Reusable `j2len` maps for [`find_longest_match`] (indexed by `j + 1`, reset after use).
struct Scratch {
    prev: Vec<usize>,
    cur: Vec<usize>,
    prev_touched: Vec<usize>,
    cur_touched: Vec<usize>,
}

impl Scratch {
    fn new(lb: usize) -> Self {
        Scratch {
            prev: vec![0; lb + 1],
            cur: vec![0; lb + 1],
            prev_touched: Vec::new(),
            cur_touched: Vec::new(),
        }
    }
}

/// difflib's `find_longest_match` with no junk function: the longest block `a[i..i+k] ==
/// b[j..j+k]` in the given ranges, the earliest in `a` (then in `b`) among equals, then extended
/// over popular (autojunked) bytes exactly as difflib does.
#[allow(clippy::too_many_arguments)]
fn find_longest_match(
    a: &[u8],
    b: &[u8],
    b2j: &[Vec<usize>],
    s: &mut Scratch,
    alo: usize,
    ahi: usize,
    blo: usize,
    bhi: usize,
) -> (usize, usize, usize) {
    let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0);
    for i in alo..ahi {
        for &j in &b2j[usize::from(a[i])] {
            if j < blo {
                continue;
            }
            if j >= bhi {
                break;
            }
            let k = s.prev[j] + 1;
            s.cur[j + 1] = k;
            s.cur_touched.push(j + 1);
            if k > bestsize {
                (besti, bestj, bestsize) = (i + 1 - k, j + 1 - k, k);
            }
        }
        for t in s.prev_touched.drain(..) {
            s.prev[t] = 0;
        }
        std::mem::swap(&mut s.prev, &mut s.cur);
        std::mem::swap(&mut s.prev_touched, &mut s.cur_touched);
    }
    for t in s.prev_touched.drain(..) {
        s.prev[t] = 0;
    }
    // With no junk function `bjunk` is empty, so difflib's first two extension loops run over
    // every equal neighbour (autojunked "popular" bytes included) and its junk loops never do.
    while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
        besti -= 1;
        bestj -= 1;
        bestsize += 1;
    }
    while besti + bestsize < ahi
        && bestj + bestsize < bhi
        && a[besti + bestsize] == b[bestj + bestsize]
    {
        bestsize += 1;
    }
    (besti, bestj, bestsize)
}

/// Buckets of the shared-characters bound: a byte counts in bucket `byte % 32`. Letters get a
/// bucket each; digits and punctuation share with letters, which can only raise the bound, so it
/// stays an upper bound.
const BUCKETS: usize = 32;

/// A name prepared for bound checks.
#[derive(Debug, Clone)]
struct Prepared {
    norm: Box<[u8]>,
    counts: [u8; BUCKETS],
    /// A count overflowed `u8`; the multiset bound would be wrong, so it is skipped.
    saturated: bool,
}

impl Prepared {
    fn new(name: &str) -> Self {
        let norm = normalize_name(name).into_bytes().into_boxed_slice();
        let mut counts = [0u8; BUCKETS];
        let mut saturated = false;
        for &c in norm.iter() {
            let slot = &mut counts[usize::from(c) % BUCKETS];
            match slot.checked_add(1) {
                Some(n) => *slot = n,
                None => saturated = true,
            }
        }
        Prepared {
            norm,
            counts,
            saturated,
        }
    }
}

/// A character name prepared as the `a` side of many comparisons.
struct Query {
    name: Prepared,
    /// Bit-parallel LCS match masks (bit `i` of `masks[c]` set when `a[i] == c`); only for
    /// names of at most 64 bytes.
    masks: Option<Box<[u64; 256]>>,
}

impl Query {
    fn new(name: &str) -> Self {
        let name = Prepared::new(name);
        let masks = (name.norm.len() <= 64).then(|| {
            let mut masks = Box::new([0u64; 256]);
            for (i, &c) in name.norm.iter().enumerate() {
                masks[usize::from(c)] |= 1 << i;
            }
            masks
        });
        Query { name, masks }
    }

    /// Length of the longest common subsequence with `b` (Allison–Dix / Hyyrö bit-vector
    /// algorithm, one word operation per byte of `b`). Any set of difflib matching blocks is a
    /// common subsequence, so this bounds `M` from above.
    fn lcs(&self, masks: &[u64; 256], b: &[u8]) -> u32 {
        let len = self.name.norm.len();
        let mut v = u64::MAX;
        for &c in b {
            let u = v & masks[usize::from(c)];
            v = v.wrapping_add(u) | (v - u);
        }
        let live = if len == 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        len as u32 - (v & live).count_ones()
    }
}

/// `2 * bound / total` as the score is computed, so `score <= this` holds in floating point
/// too (division is monotone in the numerator).
fn ratio_bound(bound: usize, total: usize) -> f64 {
    if total == 0 {
        1.0
    } else {
        2.0 * bound as f64 / total as f64
    }
}

fn shared_characters(a: &[u8; BUCKETS], b: &[u8; BUCKETS]) -> usize {
    a.iter()
        .zip(b)
        .map(|(x, y)| usize::from(*x.min(y)))
        .sum::<usize>()
}

/// One length bucket of the index.
#[derive(Debug, Default, Clone)]
struct LengthBucket {
    names: Vec<Prepared>,
    /// Which entry of the index each name belongs to.
    owners: Vec<usize>,
}

/// Every name of a set of entries (e.g. a Discord user's username and display name), indexed
/// for [`FuzzyIndex::matches`].
#[derive(Debug, Clone, Default)]
pub struct FuzzyIndex {
    /// Names bucketed by normalized length, so the length bound skips whole buckets.
    by_length: Vec<LengthBucket>,
    entries: usize,
}

/// What scoring did for one query: how many name pairs each stage decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Pairs never looked at because their lengths alone rule them out.
    pub by_length: u64,
    pub by_shared_characters: u64,
    pub by_common_subsequence: u64,
    /// Pairs scored in full.
    pub scored: u64,
}

impl FuzzyIndex {
    /// Index `entries`, each with its names (empty names are skipped).
    pub fn new<'a, I, N>(entries: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: IntoIterator<Item = &'a str>,
    {
        let mut index = FuzzyIndex::default();
        for (owner, names) in entries.into_iter().enumerate() {
            index.entries = owner + 1;
            for name in names {
                let prepared = Prepared::new(name);
                if prepared.norm.is_empty() {
                    continue;
                }
                let len = prepared.norm.len();
                if index.by_length.len() <= len {
                    index.by_length.resize_with(len + 1, LengthBucket::default);
                }
                index.by_length[len].names.push(prepared);
                index.by_length[len].owners.push(owner);
            }
        }
        index
    }

    /// Number of entries indexed.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Every entry whose best name scores at least `threshold` against `name` (as `a`), with
    /// that best score, in entry order. Identical to [`FuzzyIndex::matches_exhaustive`].
    pub fn matches(&self, name: &str, threshold: f64) -> (Vec<(usize, f64)>, PruneCounts) {
        self.search(name, threshold, Side::A)
    }

    /// [`FuzzyIndex::matches`] the other way round: the indexed names are `a` and `name` is `b`
    /// (an index of character names asked about one Discord name). The scores differ on
    /// difflib's ties, not the bounds, so the same pruning holds.
    pub fn matches_as_b(&self, name: &str, threshold: f64) -> Vec<(usize, f64)> {
        self.search(name, threshold, Side::B).0
    }

    fn search(&self, name: &str, threshold: f64, side: Side) -> (Vec<(usize, f64)>, PruneCounts) {
        let query = Query::new(name);
        let la = query.name.norm.len();
        let mut counts = PruneCounts::default();
        let mut found = Vec::new();
        if la == 0 {
            return (found, counts);
        }
        for (lb, bucket) in self.by_length.iter().enumerate() {
            if bucket.names.is_empty() {
                continue;
            }
            if ratio_bound(la.min(lb), la + lb) < threshold {
                counts.by_length += bucket.names.len() as u64;
                continue;
            }
            for (candidate, &owner) in bucket.names.iter().zip(&bucket.owners) {
                if !query.name.saturated
                    && !candidate.saturated
                    && ratio_bound(
                        shared_characters(&query.name.counts, &candidate.counts),
                        la + lb,
                    ) < threshold
                {
                    counts.by_shared_characters += 1;
                    continue;
                }
                if let Some(masks) = &query.masks
                    && ratio_bound(query.lcs(masks, &candidate.norm) as usize, la + lb) < threshold
                {
                    counts.by_common_subsequence += 1;
                    continue;
                }
                counts.scored += 1;
                let score = match side {
                    Side::A => score_normalized(&query.name.norm, &candidate.norm),
                    Side::B => score_normalized(&candidate.norm, &query.name.norm),
                };
                if score >= threshold {
                    found.push((owner, score));
                }
            }
        }
        (best_per_owner(found), counts)
    }

    /// [`FuzzyIndex::matches`] by scoring every name: the reference the pruned search must equal.
    pub fn matches_exhaustive(&self, name: &str, threshold: f64) -> Vec<(usize, f64)> {
        let norm = normalize_name(name).into_bytes();
        if norm.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        for bucket in &self.by_length {
            for (candidate, &owner) in bucket.names.iter().zip(&bucket.owners) {
                let score = score_normalized(&norm, &candidate.norm);
                if score >= threshold {
                    found.push((owner, score));
                }
            }
        }
        best_per_owner(found)
    }
}

/// Which argument of [`fuzzy_match_score`] the query name is.
#[derive(Debug, Clone, Copy)]
enum Side {
    A,
    B,
}

/// Keep each owner's best score; sort by owner.
fn best_per_owner(mut found: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
    found.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.total_cmp(&x.1)));
    found.dedup_by_key(|x| x.0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scores_follow_the_equal_contained_and_difflib_rules() {
        for (a, b, expected) in [
            ("Thrall", "thrall", 1.0),
            ("Zatañña", "zatanna", 1.0),
            ("Ærthas", "AERTHAS", 1.0),
            ("Bob", "Bobby", 3.0 / 5.0),
            ("Bobby", "bob", 3.0 / 5.0),
            ("", "bob", 0.0),
            ("", "", 1.0),
            // difflib: "abcd" vs "bcde" -> one block "bcd" -> 2*3/8
            ("abcd", "bcde", 0.75),
            // difflib: "thrall" vs "thrail" -> "thra" + "l" -> 2*5/12
            ("thrall", "thrail", 10.0 / 12.0),
        ] {
            assert_eq!(fuzzy_match_score(a, b), expected, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn difflib_ties_make_the_ratio_depend_on_argument_order() {
        // The classic asymmetric pair from the difflib documentation's discussion of ties.
        let forward = sequence_matcher_ratio(b"tide", b"diet");
        let backward = sequence_matcher_ratio(b"diet", b"tide");
        assert_eq!(forward, 0.25);
        assert_eq!(backward, 0.5);
    }

    #[test]
    fn the_search_as_b_scores_the_indexed_name_first() {
        let index = FuzzyIndex::new([std::iter::once("diet")]);
        assert_eq!(index.matches("tide", 0.2).0, [(0, 0.25)]);
        assert_eq!(index.matches_as_b("tide", 0.2), [(0, 0.5)]);
    }

    #[test]
    fn autojunk_applies_to_long_second_sequences_as_in_difflib() {
        // Python: SequenceMatcher(None, "a"*5 + "b", "a"*250 + "b").ratio() == 12/257: "a" is
        // popular, so only "b" is found, then the block is extended back over the "a"s.
        let a = format!("{}b", "a".repeat(5));
        let b = format!("{}b", "a".repeat(250));
        assert_eq!(
            sequence_matcher_ratio(a.as_bytes(), b.as_bytes()),
            12.0 / 257.0
        );
    }

    #[test]
    fn the_lcs_bound_is_the_longest_common_subsequence() {
        for (a, b, lcs) in [
            ("abcde", "ace", 3),
            ("thrall", "thrail", 5),
            ("abc", "xyz", 0),
            ("", "abc", 0),
        ] {
            let q = Query::new(a);
            let masks = q.masks.as_ref().expect("short name");
            assert_eq!(q.lcs(masks, b.as_bytes()), lcs, "{a} vs {b}");
        }
    }

    fn name() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-eñéø]{0,9}").expect("valid regex")
    }

    proptest! {
        #[test]
        fn the_pruned_search_returns_exactly_what_scoring_every_pair_returns(
            query in name(),
            entries in proptest::collection::vec((name(), proptest::option::of(name())), 0..40),
            threshold in prop_oneof![Just(0.70), Just(0.85), 0.0f64..1.0],
        ) {
            let index = FuzzyIndex::new(entries.iter().map(|(u, d)| {
                std::iter::once(u.as_str()).chain(d.as_deref())
            }));
            let (pruned, _) = index.matches(&query, threshold);
            prop_assert_eq!(pruned, index.matches_exhaustive(&query, threshold));
        }

        #[test]
        fn the_search_as_b_returns_exactly_what_scoring_every_pair_that_way_returns(
            query in name(),
            names in proptest::collection::vec(name(), 0..40),
            threshold in prop_oneof![Just(0.70), Just(0.85), 0.0f64..1.0],
        ) {
            let index = FuzzyIndex::new(names.iter().map(|n| std::iter::once(n.as_str())));
            let every_pair: Vec<(usize, f64)> = names
                .iter()
                .map(|n| fuzzy_match_score(n, &query))
                .enumerate()
                .filter(|&(_, score)| !normalize_name(&query).is_empty() && score >= threshold)
                .filter(|&(i, _)| !normalize_name(&names[i]).is_empty())
                .collect();
            prop_assert_eq!(index.matches_as_b(&query, threshold), every_pair);
        }
    }
}
