//! The Battle.net roster decisions of db_sync, free of I/O: resolving class, spec and rank
//! references against the reference tables ([`ReferenceCache`]), and deciding what a roster does
//! to the stored characters ([`plan_roster`]): which rows are updated, inserted, removed,
//! returned, renamed, and which departed rows must step aside for a rename; and merging what the
//! roster and a member's profile say into the columns that member writes ([`member_columns`]).
//!
//! Nothing here knows about HTTP, files or SQL; the service crate loads rows into these types,
//! calls the plan, and applies it in one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use thiserror::Error;

/// The reference tables, indexed the ways a roster refers to them. Built once per sync run.
#[derive(Debug, Clone, Default)]
pub struct ReferenceCache {
    class_by_blizzard_id: HashMap<i64, i32>,
    class_by_name: HashMap<String, i32>,
    spec_by_blizzard_id: HashMap<i64, i32>,
    /// (lowercased spec name, class id) → spec id; spec names repeat across classes ("Holy").
    spec_by_name: HashMap<(String, i32), i32>,
    rank_by_index: HashMap<i64, i32>,
}

/// One class reference row: (id, Blizzard class id, name).
pub type ClassRef<'a> = (i32, i32, &'a str);
/// One spec reference row: (id, class id, Blizzard spec id, name).
pub type SpecRef<'a> = (i32, i32, Option<i32>, &'a str);
/// One rank reference row: (id, in-game rank index).
pub type RankRef = (i32, Option<i32>);

/// How a reference resolved: found, absent from the input (not a warning), or given but unknown
/// (NULL plus a counted warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Found(i32),
    Absent,
    Unknown,
}

impl Resolved {
    /// The id to store.
    pub fn id(self) -> Option<i32> {
        match self {
            Resolved::Found(id) => Some(id),
            _ => None,
        }
    }
}

impl ReferenceCache {
    /// Index the reference rows.
    pub fn new<'a>(
        classes: impl IntoIterator<Item = ClassRef<'a>>,
        specs: impl IntoIterator<Item = SpecRef<'a>>,
        ranks: impl IntoIterator<Item = RankRef>,
    ) -> Self {
        let mut cache = ReferenceCache::default();
        for (id, blizzard_id, name) in classes {
            cache.class_by_blizzard_id.insert(blizzard_id.into(), id);
            cache.class_by_name.insert(name.to_lowercase(), id);
        }
        for (id, class_id, blizzard_id, name) in specs {
            if let Some(blizzard_id) = blizzard_id {
                cache.spec_by_blizzard_id.insert(blizzard_id.into(), id);
            }
            cache
                .spec_by_name
                .insert((name.to_lowercase(), class_id), id);
        }
        for (id, index) in ranks {
            if let Some(index) = index {
                cache.rank_by_index.insert(index.into(), id);
            }
        }
        cache
    }

    /// A class by Blizzard class id (what the roster gives), else by name (what profiles and the
    /// requirements' `classes_by_name` use).
    pub fn class(&self, blizzard_id: Option<i64>, name: Option<&str>) -> Resolved {
        if blizzard_id.is_none() && name.is_none() {
            return Resolved::Absent;
        }
        blizzard_id
            .and_then(|id| self.class_by_blizzard_id.get(&id))
            .or_else(|| name.and_then(|n| self.class_by_name.get(&n.trim().to_lowercase())))
            .map_or(Resolved::Unknown, |&id| Resolved::Found(id))
    }

    /// A spec by Blizzard spec id, else by (name, class).
    pub fn spec(
        &self,
        blizzard_id: Option<i64>,
        name: Option<&str>,
        class_id: Option<i32>,
    ) -> Resolved {
        if blizzard_id.is_none() && name.is_none() {
            return Resolved::Absent;
        }
        blizzard_id
            .and_then(|id| self.spec_by_blizzard_id.get(&id))
            .or_else(|| {
                let class_id = class_id?;
                self.spec_by_name
                    .get(&(name?.trim().to_lowercase(), class_id))
            })
            .map_or(Resolved::Unknown, |&id| Resolved::Found(id))
    }

    /// A guild rank by in-game rank index (0 = Guild Leader).
    pub fn rank(&self, index: Option<i64>) -> Resolved {
        match index {
            None => Resolved::Absent,
            Some(index) => self
                .rank_by_index
                .get(&index)
                .map_or(Resolved::Unknown, |&id| Resolved::Found(id)),
        }
    }
}

/// The case-insensitive identity of a character row: lowercase (name, realm slug), as the
/// database's unique index sees it.
pub fn name_key(name: &str, realm_slug: &str) -> (String, String) {
    (name.to_lowercase(), realm_slug.to_lowercase())
}

/// A stored character, as much as the plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingCharacter {
    pub id: i32,
    pub blizzard_id: Option<i64>,
    pub name: String,
    pub realm_slug: String,
    /// `removed_at IS NOT NULL`.
    pub departed: bool,
}

/// A roster member, as much as the plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingKey {
    pub blizzard_id: Option<i64>,
    pub name: String,
    pub realm_slug: String,
}

/// What happens to one roster member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    /// A new row.
    Insert,
    /// Update row `id` in place.
    Update {
        id: i32,
        /// The row was departed and comes back.
        returned: bool,
        /// Its lowercase (name, realm) changes: a rename or realm transfer.
        renamed: bool,
    },
    /// A duplicate of an earlier member of the same roster (same Blizzard id or name + realm);
    /// ignored.
    Duplicate,
}

/// What a roster does to the stored characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterPlan {
    /// One action per incoming member, in input order.
    pub actions: Vec<MemberAction>,
    /// In-guild rows absent from the roster: they get `removed_at`.
    pub removals: Vec<i32>,
    /// Rows not in the roster whose (name, realm) a roster member now takes (a rename, a realm
    /// transfer, or a new character reusing a deleted one's name). They keep their data and
    /// links but step aside to the name [`displaced_name`] gives them, since the database holds
    /// one row per (name, realm).
    pub displaced: Vec<i32>,
    /// Rows whose (name, realm) changes; applied in two steps so that swaps cannot collide.
    pub renamed: Vec<i32>,
    /// In-guild rows before the sync (the base of the mass-removal guard).
    pub present_before: usize,
}

impl RosterPlan {
    /// Members that become new rows.
    pub fn inserts(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, MemberAction::Insert))
            .count()
    }

    /// Departed rows that come back.
    pub fn returns(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, MemberAction::Update { returned: true, .. }))
            .count()
    }

    /// Duplicate roster entries that were ignored.
    pub fn duplicates(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, MemberAction::Duplicate))
            .count()
    }
}

/// The name a displaced row takes: `#` cannot occur in a WoW character name, so it collides with
/// no real character, and the row id makes it unique. The original name stays readable.
pub fn displaced_name(name: &str, id: i32) -> String {
    format!("{name}#{id}")
}

/// Why a roster is refused without changing anything.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RosterRefusal {
    #[error("the roster is empty; refusing to mark the whole guild departed")]
    Empty,
}

/// Decide what `incoming` does to `existing`.
///
/// A member matches the row with its Blizzard id first; else the row with its lowercase
/// (name, realm), unless that row belongs to a different Blizzard character (a deleted
/// character's name reused). Each row matches at most one member; later duplicates in the
/// roster are ignored. The result does not depend on the order of `existing`.
pub fn plan_roster(
    existing: &[ExistingCharacter],
    incoming: &[IncomingKey],
) -> Result<RosterPlan, RosterRefusal> {
    if incoming.is_empty() {
        return Err(RosterRefusal::Empty);
    }
    let by_blizzard: HashMap<i64, &ExistingCharacter> = existing
        .iter()
        .filter_map(|row| row.blizzard_id.map(|b| (b, row)))
        .collect();
    let by_key: HashMap<(String, String), &ExistingCharacter> = existing
        .iter()
        .map(|row| (name_key(&row.name, &row.realm_slug), row))
        .collect();

    // Blizzard-id matches first, for every member, so a name match can never steal a row that
    // a later member owns by id.
    let mut claimed: HashSet<i32> = HashSet::new();
    let mut seen_ids: HashSet<i64> = HashSet::new();
    let mut seen_keys: HashSet<(String, String)> = HashSet::new();
    let mut matched: Vec<Option<&ExistingCharacter>> = vec![None; incoming.len()];
    let mut duplicate = vec![false; incoming.len()];
    for (i, member) in incoming.iter().enumerate() {
        let key = name_key(&member.name, &member.realm_slug);
        let dup_id = member.blizzard_id.is_some_and(|b| !seen_ids.insert(b));
        let dup_key = !seen_keys.insert(key);
        if dup_id || dup_key {
            duplicate[i] = true;
            continue;
        }
        if let Some(row) = member.blizzard_id.and_then(|b| by_blizzard.get(&b)) {
            claimed.insert(row.id);
            matched[i] = Some(row);
        }
    }
    for (i, member) in incoming.iter().enumerate() {
        if duplicate[i] || matched[i].is_some() {
            continue;
        }
        let key = name_key(&member.name, &member.realm_slug);
        if let Some(row) = by_key.get(&key)
            && !claimed.contains(&row.id)
            && (row.blizzard_id.is_none() || row.blizzard_id == member.blizzard_id)
        {
            claimed.insert(row.id);
            matched[i] = Some(row);
        }
    }

    let mut plan = RosterPlan {
        present_before: existing.iter().filter(|r| !r.departed).count(),
        ..RosterPlan::default()
    };
    let mut target_keys: HashSet<(String, String)> = HashSet::new();
    for (i, member) in incoming.iter().enumerate() {
        if duplicate[i] {
            plan.actions.push(MemberAction::Duplicate);
            continue;
        }
        let key = name_key(&member.name, &member.realm_slug);
        let action = match matched[i] {
            None => MemberAction::Insert,
            Some(row) => {
                let renamed = name_key(&row.name, &row.realm_slug) != key;
                if renamed {
                    plan.renamed.push(row.id);
                }
                MemberAction::Update {
                    id: row.id,
                    returned: row.departed,
                    renamed,
                }
            }
        };
        target_keys.insert(key);
        plan.actions.push(action);
    }

    let mut unclaimed: Vec<&ExistingCharacter> = existing
        .iter()
        .filter(|r| !claimed.contains(&r.id))
        .collect();
    unclaimed.sort_by_key(|r| r.id);
    for row in unclaimed {
        if !row.departed {
            plan.removals.push(row.id);
        }
        if target_keys.contains(&name_key(&row.name, &row.realm_slug)) {
            plan.displaced.push(row.id);
        }
    }
    plan.renamed.sort_unstable();
    Ok(plan)
}

/// A reference as Battle.net gives it: an id, a name, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Named<'a> {
    pub id: Option<i64>,
    pub name: Option<&'a str>,
}

/// What a fetched character profile says (the fields the columns use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileFacts<'a> {
    pub class: Option<Named<'a>>,
    pub active_spec: Option<Named<'a>>,
    pub realm_name: Option<&'a str>,
    pub level: Option<i32>,
    pub item_level: Option<i32>,
    pub achievement_points: Option<i32>,
    /// Milliseconds since the Unix epoch.
    pub last_login_ms: Option<i64>,
}

/// One roster member, with its profile when it was fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberFacts<'a> {
    pub blizzard_id: i64,
    pub name: &'a str,
    pub realm_slug: &'a str,
    pub realm_name: Option<&'a str>,
    pub class: Option<Named<'a>>,
    pub level: Option<i32>,
    /// In-game rank index, 0 = Guild Leader.
    pub rank_index: i64,
    /// `None` when the profile was not found or could not be fetched: the profile-derived
    /// columns then keep what is stored.
    pub profile: Option<ProfileFacts<'a>>,
}

/// The guild's own realm: members on it whose entries carry no realm name get its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeRealm<'a> {
    pub slug: &'a str,
    pub name: Option<&'a str>,
}

/// The `wow_characters` columns one member writes, with how each reference resolved (an
/// [`Resolved::Unknown`] is stored as NULL and is the caller's to count and warn about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberColumns {
    pub character_name: String,
    /// Lowercased.
    pub realm_slug: String,
    pub realm_name: Option<String>,
    pub blizzard_id: i64,
    pub class: Resolved,
    pub spec: Resolved,
    pub rank: Resolved,
    pub level: Option<i32>,
    pub item_level: Option<i32>,
    pub achievement_points: Option<i32>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub profile_fetched: bool,
}

/// Merge a member's roster entry and profile into its columns. The roster's class id wins
/// (it is what the roster is keyed on), the profile's class name is preferred over the roster's;
/// the spec exists only in profiles and is looked up within the resolved class; realm name and
/// level come from the profile, then the roster entry, then (realm name only) the home realm.
pub fn member_columns(
    cache: &ReferenceCache,
    home: HomeRealm<'_>,
    member: &MemberFacts<'_>,
) -> MemberColumns {
    let profile = member.profile.as_ref();
    let class_blizzard_id = member
        .class
        .and_then(|c| c.id)
        .or_else(|| profile?.class?.id);
    let class_name = profile
        .and_then(|p| p.class?.name)
        .or_else(|| member.class?.name);
    let class = cache.class(class_blizzard_id, class_name);
    let spec = match profile.and_then(|p| p.active_spec) {
        Some(spec) => cache.spec(spec.id, spec.name, class.id()),
        None => Resolved::Absent,
    };
    let realm_name = profile
        .and_then(|p| p.realm_name)
        .or(member.realm_name)
        .or_else(|| {
            member
                .realm_slug
                .eq_ignore_ascii_case(home.slug)
                .then_some(home.name)
                .flatten()
        });
    MemberColumns {
        character_name: member.name.to_owned(),
        realm_slug: member.realm_slug.to_lowercase(),
        realm_name: realm_name.map(str::to_owned),
        blizzard_id: member.blizzard_id,
        class,
        spec,
        rank: cache.rank(Some(member.rank_index)),
        level: profile.and_then(|p| p.level).or(member.level),
        item_level: profile.and_then(|p| p.item_level),
        achievement_points: profile.and_then(|p| p.achievement_points),
        last_login_at: profile
            .and_then(|p| p.last_login_ms)
            .and_then(DateTime::from_timestamp_millis),
        profile_fetched: profile.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns_cache() -> ReferenceCache {
        ReferenceCache::new(
            [(1, 11, "Druid"), (2, 2, "Paladin")],
            [(10, 1, Some(102), "Balance"), (20, 2, Some(65), "Holy")],
            [(5, Some(0)), (3, Some(2))],
        )
    }

    fn roster_only<'a>(name: &'a str, realm_slug: &'a str) -> MemberFacts<'a> {
        MemberFacts {
            blizzard_id: 77,
            name,
            realm_slug,
            realm_name: None,
            class: Some(Named {
                id: Some(11),
                name: None,
            }),
            level: Some(70),
            rank_index: 2,
            profile: None,
        }
    }

    const HOME: HomeRealm<'static> = HomeRealm {
        slug: "senjin",
        name: Some("Sen'jin"),
    };

    #[test]
    fn a_member_without_a_profile_writes_its_roster_columns_only() {
        let cols = member_columns(&columns_cache(), HOME, &roster_only("Zoë", "Senjin"));
        assert_eq!(cols.character_name, "Zoë");
        assert_eq!(cols.realm_slug, "senjin");
        assert_eq!(
            cols.realm_name.as_deref(),
            Some("Sen'jin"),
            "the home realm's name"
        );
        assert_eq!(
            (cols.class, cols.spec, cols.rank),
            (Resolved::Found(1), Resolved::Absent, Resolved::Found(3))
        );
        assert_eq!(cols.level, Some(70));
        assert_eq!((cols.item_level, cols.last_login_at), (None, None));
        assert!(!cols.profile_fetched);
    }

    #[test]
    fn a_profile_adds_its_spec_and_figures_and_overrides_realm_name_and_level() {
        let mut member = roster_only("Aeri", "area-52");
        member.class = None;
        member.rank_index = 9;
        member.profile = Some(ProfileFacts {
            class: Some(Named {
                id: None,
                name: Some("paladin"),
            }),
            active_spec: Some(Named {
                id: None,
                name: Some("Holy"),
            }),
            realm_name: Some("Area 52"),
            level: Some(80),
            item_level: Some(610),
            achievement_points: Some(12_345),
            last_login_ms: Some(1_700_000_000_000),
        });
        let cols = member_columns(&columns_cache(), HOME, &member);
        assert_eq!(
            (cols.class, cols.spec, cols.rank),
            (Resolved::Found(2), Resolved::Found(20), Resolved::Unknown),
            "class by profile name, spec by name within it, rank index 9 unmapped"
        );
        assert_eq!(cols.realm_name.as_deref(), Some("Area 52"));
        assert_eq!((cols.level, cols.item_level), (Some(80), Some(610)));
        assert_eq!(cols.achievement_points, Some(12_345));
        assert_eq!(
            cols.last_login_at.map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
        assert!(cols.profile_fetched);
    }

    #[test]
    fn an_unknown_class_is_unknown_and_a_realm_away_from_home_has_no_guessed_name() {
        let mut member = roster_only("X", "area-52");
        member.class = Some(Named {
            id: Some(99),
            name: None,
        });
        let cols = member_columns(&columns_cache(), HOME, &member);
        assert_eq!(cols.class, Resolved::Unknown);
        assert_eq!(cols.realm_name, None);
    }
    use proptest::prelude::*;

    fn row(
        id: i32,
        blizzard_id: Option<i64>,
        name: &str,
        realm: &str,
        departed: bool,
    ) -> ExistingCharacter {
        ExistingCharacter {
            id,
            blizzard_id,
            name: name.into(),
            realm_slug: realm.into(),
            departed,
        }
    }

    fn member(blizzard_id: i64, name: &str, realm: &str) -> IncomingKey {
        IncomingKey {
            blizzard_id: Some(blizzard_id),
            name: name.into(),
            realm_slug: realm.into(),
        }
    }

    fn update(id: i32, returned: bool, renamed: bool) -> MemberAction {
        MemberAction::Update {
            id,
            returned,
            renamed,
        }
    }

    #[test]
    fn an_empty_roster_is_refused() {
        assert_eq!(
            plan_roster(&[row(1, Some(1), "A", "r", false)], &[]),
            Err(RosterRefusal::Empty)
        );
    }

    #[test]
    fn plans_match_by_blizzard_id_then_by_name() {
        struct Case {
            name: &'static str,
            existing: Vec<ExistingCharacter>,
            incoming: Vec<IncomingKey>,
            actions: Vec<MemberAction>,
            removals: Vec<i32>,
            displaced: Vec<i32>,
        }
        let cases = vec![
            Case {
                name: "unchanged member updates its row",
                existing: vec![row(1, Some(10), "Arthas", "area-52", false)],
                incoming: vec![member(10, "Arthas", "area-52")],
                actions: vec![update(1, false, false)],
                removals: vec![],
                displaced: vec![],
            },
            Case {
                name: "name match is case-insensitive and adopts a missing blizzard id",
                existing: vec![row(1, None, "arthas", "Area-52", false)],
                incoming: vec![member(10, "Arthas", "area-52")],
                actions: vec![update(1, false, false)],
                removals: vec![],
                displaced: vec![],
            },
            Case {
                name: "new member is inserted and absent member removed",
                existing: vec![row(1, Some(10), "Arthas", "area-52", false)],
                incoming: vec![member(11, "Jaina", "area-52")],
                actions: vec![MemberAction::Insert],
                removals: vec![1],
                displaced: vec![],
            },
            Case {
                name: "departed member returns",
                existing: vec![row(1, Some(10), "Arthas", "area-52", true)],
                incoming: vec![member(10, "Arthas", "area-52")],
                actions: vec![update(1, true, false)],
                removals: vec![],
                displaced: vec![],
            },
            Case {
                name: "rename keeps the row",
                existing: vec![row(1, Some(10), "Arthas", "area-52", false)],
                incoming: vec![member(10, "Lichking", "area-52")],
                actions: vec![update(1, false, true)],
                removals: vec![],
                displaced: vec![],
            },
            Case {
                name: "realm transfer onto a departed row's name displaces that row",
                existing: vec![
                    row(1, Some(10), "Arthas", "area-52", false),
                    row(2, Some(20), "Arthas", "stormrage", true),
                ],
                incoming: vec![member(10, "Arthas", "stormrage")],
                actions: vec![update(1, false, true)],
                removals: vec![],
                displaced: vec![2],
            },
            Case {
                name: "a new character reusing a deleted one's name does not take its row",
                existing: vec![row(2, Some(20), "Arthas", "area-52", true)],
                incoming: vec![member(30, "Arthas", "area-52")],
                actions: vec![MemberAction::Insert],
                removals: vec![],
                displaced: vec![2],
            },
            Case {
                name: "two characters swapping names both keep their rows",
                existing: vec![
                    row(1, Some(10), "Alpha", "r", false),
                    row(2, Some(20), "Beta", "r", false),
                ],
                incoming: vec![member(10, "Beta", "r"), member(20, "Alpha", "r")],
                actions: vec![update(1, false, true), update(2, false, true)],
                removals: vec![],
                displaced: vec![],
            },
            Case {
                name: "a duplicate roster entry is ignored",
                existing: vec![],
                incoming: vec![member(10, "Alpha", "r"), member(10, "Alpha", "r")],
                actions: vec![MemberAction::Insert, MemberAction::Duplicate],
                removals: vec![],
                displaced: vec![],
            },
            Case {
                name: "a name match never steals a row another member owns by id",
                existing: vec![row(1, Some(10), "Alpha", "r", false)],
                incoming: vec![member(99, "Alpha", "r"), member(10, "Gamma", "r")],
                actions: vec![MemberAction::Insert, update(1, false, true)],
                removals: vec![],
                displaced: vec![],
            },
        ];
        for case in cases {
            let plan = plan_roster(&case.existing, &case.incoming).unwrap();
            assert_eq!(plan.actions, case.actions, "{}", case.name);
            assert_eq!(plan.removals, case.removals, "{}", case.name);
            assert_eq!(plan.displaced, case.displaced, "{}", case.name);
        }
    }

    #[test]
    fn references_resolve_by_blizzard_id_or_name_and_unknowns_are_flagged() {
        let cache = ReferenceCache::new(
            [(1, 11, "Druid"), (2, 1, "Warrior")],
            [(5, 1, Some(102), "Balance"), (6, 2, None, "Arms")],
            [(40, Some(0)), (41, None)],
        );
        assert_eq!(cache.class(Some(11), None), Resolved::Found(1));
        assert_eq!(cache.class(None, Some("druid")), Resolved::Found(1));
        assert_eq!(cache.class(Some(99), None), Resolved::Unknown);
        assert_eq!(cache.class(None, None), Resolved::Absent);
        assert_eq!(cache.spec(Some(102), None, None), Resolved::Found(5));
        assert_eq!(cache.spec(None, Some("Arms"), Some(2)), Resolved::Found(6));
        assert_eq!(cache.spec(None, Some("Arms"), Some(1)), Resolved::Unknown);
        assert_eq!(cache.spec(None, None, Some(1)), Resolved::Absent);
        assert_eq!(cache.rank(Some(0)), Resolved::Found(40));
        assert_eq!(cache.rank(Some(7)), Resolved::Unknown);
    }

    proptest! {
        /// Whatever the stored rows, every row ends in at most one role, no two members share a
        /// row, and the plan does not depend on the order rows were loaded in.
        #[test]
        fn plans_are_consistent_and_order_independent(
            rows in proptest::collection::vec((0i64..8, 0usize..6, any::<bool>(), any::<bool>()), 0..8),
            members in proptest::collection::vec((0i64..8, 0usize..6), 1..8),
        ) {
            const NAMES: [&str; 6] = ["A", "B", "C", "a", "D", "E"];
            // The database holds unique Blizzard ids and unique lowercase names.
            let mut ids = HashSet::new();
            let mut names = HashSet::new();
            let existing: Vec<ExistingCharacter> = rows.iter().enumerate()
                .filter(|(_, (b, n, has_id, _))| {
                    let name_free = !names.contains(&NAMES[*n].to_lowercase());
                    let id_free = !*has_id || !ids.contains(b);
                    if name_free && id_free {
                        names.insert(NAMES[*n].to_lowercase());
                        if *has_id { ids.insert(*b); }
                    }
                    name_free && id_free
                })
                .map(|(i, (b, n, has_id, departed))| row(i as i32 + 1, has_id.then_some(*b), NAMES[*n], "r", *departed))
                .collect();
            let incoming: Vec<IncomingKey> = members.iter().map(|(b, n)| member(*b, NAMES[*n], "r")).collect();
            let plan = plan_roster(&existing, &incoming).unwrap();
            let mut reversed = existing.clone();
            reversed.reverse();
            prop_assert_eq!(&plan_roster(&reversed, &incoming).unwrap(), &plan);
            let updated: Vec<i32> = plan.actions.iter().filter_map(|a| match a { MemberAction::Update { id, .. } => Some(*id), _ => None }).collect();
            let unique: HashSet<i32> = updated.iter().copied().collect();
            prop_assert_eq!(unique.len(), updated.len());
            for id in plan.removals.iter().chain(&plan.displaced) {
                prop_assert!(!unique.contains(id));
            }
        }
    }
}
