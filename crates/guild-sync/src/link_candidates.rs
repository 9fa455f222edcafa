//! Link candidates for one side (issue 16): the best Discord users for a character, or the best
//! characters for a Discord user, ranked by the identity engine's own scoring
//! ([`guild_sync_core::candidates`]). One place for the API's candidates route and the console's
//! Unclaimed page, so both show the same names with the same scores.
//!
//! Holds no SQL (that is [`crate::db::console`]); scoring runs off the async runtime, since it
//! compares one name with every present member.
//!
//! The two candidate pools (every guild member, every in-guild character) are cached in the
//! process keyed on the data stamp (database identity + data version, [`console::data_stamp`]):
//! loading 50,000 members per request was most of the route's time, and the stamp changes on
//! every statement that touches the tables the pools read, so a cached pool is never stale.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use guild_sync_core::candidates::{self, Candidate, Fixed, MAX_CANDIDATES, Ranked};
use sqlx::PgPool;

use crate::db::console::{self, CharacterCandidateRow, DiscordCandidateRow};
use crate::stamp_cache::StampCache;

/// One cached pool per kind: the rows and the stamp they were loaded at (or after).
static DISCORD_POOL: StampCache<(), Arc<Vec<DiscordCandidateRow>>> = StampCache::new(1);
static CHARACTER_POOL: StampCache<(), Arc<Vec<CharacterCandidateRow>>> = StampCache::new(1);

/// The pool in `cache` when it was loaded at the current data stamp, else `load`ed and kept.
async fn cached<T>(
    cache: &'static StampCache<(), Arc<Vec<T>>>,
    pool: &PgPool,
    load: impl Future<Output = Result<Vec<T>>>,
) -> Result<Arc<Vec<T>>> {
    let stamp = console::data_stamp(pool).await?;
    if let Some(rows) = cache.get(&stamp, &()) {
        return Ok(rows);
    }
    let rows = Arc::new(load.await?);
    cache.keep(stamp, (), Arc::clone(&rows));
    Ok(rows)
}

/// Every in-guild character with whether it is linked, from the same cache as
/// [`for_discord_user`]'s pool: the Discord commands' autocomplete reads it on every keystroke.
pub async fn characters(pool: &PgPool) -> Result<Arc<Vec<CharacterCandidateRow>>> {
    cached(&CHARACTER_POOL, pool, console::character_candidates(pool)).await
}

/// A Discord user's names as the matcher reads them.
fn user_names(user: &DiscordCandidateRow) -> Vec<(&'static str, &str)> {
    let mut names = vec![("username", user.username.as_str())];
    if let Some(g) = user.global_name.as_deref() {
        names.push(("global_name", g));
    }
    if let Some(d) = user.display_name.as_deref() {
        names.push(("nickname", d));
    }
    names
}

/// The best Discord users for character `id`; `None` when there is no such character.
pub async fn for_character(
    pool: &PgPool,
    id: i32,
) -> Result<Option<(CharacterCandidateRow, Vec<Ranked>)>> {
    let Some(character) = console::candidate_character(pool, id).await? else {
        return Ok(None);
    };
    let users = cached(&DISCORD_POOL, pool, console::discord_candidates(pool)).await?;
    let name = character.character_name.clone();
    let ranked = tokio::task::spawn_blocking(move || {
        let pool: Vec<Candidate> = users
            .iter()
            .map(|u| Candidate {
                id: u.id.into(),
                names: user_names(u),
                linked: u.linked,
            })
            .collect();
        candidates::rank(
            Fixed::Character,
            &[("character", name.as_str())],
            &pool,
            MAX_CANDIDATES,
        )
    })
    .await
    .map_err(|e| anyhow!("candidate ranking panicked: {e}"))?;
    Ok(Some((character, ranked)))
}

/// The best characters for Discord user `id`; `None` when there is no such user.
pub async fn for_discord_user(
    pool: &PgPool,
    id: i32,
) -> Result<Option<(DiscordCandidateRow, Vec<Ranked>)>> {
    let Some(user) = console::candidate_discord_user(pool, id).await? else {
        return Ok(None);
    };
    let characters = cached(&CHARACTER_POOL, pool, console::character_candidates(pool)).await?;
    let ranked = tokio::task::spawn_blocking(move || {
        let pool: Vec<Candidate> = characters
            .iter()
            .map(|c| Candidate {
                id: c.id.into(),
                names: vec![("character", c.character_name.as_str())],
                linked: c.linked,
            })
            .collect();
        let ranked = candidates::rank(
            Fixed::DiscordUser,
            &user_names(&user),
            &pool,
            MAX_CANDIDATES,
        );
        (user, ranked)
    })
    .await
    .map_err(|e| anyhow!("candidate ranking panicked: {e}"))?;
    Ok(Some(ranked))
}
