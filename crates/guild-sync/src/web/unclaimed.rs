//! Unclaimed: characters in the guild and Discord members that no player has, each with its top
//! candidates (the open suggestions that name it, best score first) and a one-click *Link*, and,
//! on request, its best matches among everyone on the other side, ranked by the engine's scoring
//! ([`crate::link_candidates`]).
//!
//! The two lists with their candidates are kept per page under the data stamp
//! ([`crate::stamp_cache`]): at 1,000 characters × 50,000 members their four queries cost a few
//! ms of PostgreSQL per request, which under 16 concurrent clients on a loaded machine queued into
//! a p99 of about 100 ms, while their answer changes only when the data does.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::Redirect;
use serde::Deserialize;

use super::session::{CsrfForm, Session};
use super::{Chrome, Refused, WebState, page_offset};
use crate::db::api::ManualLink;
use crate::db::console::{CharacterCandidateRow, DiscordCandidateRow};
use crate::db::console_pages::{
    self as pages, SuggestionRow, SuggestionSide, UnclaimedCharacter, UnclaimedMember,
};
use crate::link_candidates;
use crate::stamp_cache::StampCache;
use guild_sync_core::candidates::Ranked;

/// Rows per list and candidates per row.
const ROWS: i64 = 25;
const CANDIDATES: usize = 5;

#[derive(Template, WebTemplate)]
#[template(path = "unclaimed.html")]
pub struct UnclaimedPage {
    chrome: Chrome,
    notice: Option<&'static str>,
    lists: Arc<Lists>,
    page: u32,
    /// The character whose candidates among every member were asked for, with them.
    ranked: Option<(CharacterCandidateRow, Vec<Ranked>)>,
    /// The member whose candidates among every character were asked for, with them.
    ranked_member: Option<(DiscordCandidateRow, Vec<Ranked>)>,
}

/// One page of both lists, each row with its candidates: what [`LISTS`] keeps.
pub struct Lists {
    characters: Vec<(UnclaimedCharacter, Vec<SuggestionRow>)>,
    members: Vec<(UnclaimedMember, Vec<SuggestionRow>)>,
    /// Either list goes on past this page.
    more: bool,
}

/// Pages of [`Lists`] by page number at one data stamp. The stamp covers every table they read
/// except the reference names (classes, guild ranks), which the service never writes (an edit by
/// hand shows with the next data change). At most 32 pages: officers page through the first few.
static LISTS: StampCache<u32, Arc<Lists>> = StampCache::new(32);

/// Held while [`LISTS`] misses are loaded, so that clients arriving together after a data change
/// wait for one load and share it instead of each running the four queries (at 16 clients that
/// burst of concurrent loads was the page's p99).
static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Deserialize)]
pub struct UnclaimedQuery {
    page: Option<u32>,
    done: Option<String>,
    /// Rank every present member for this character with the engine's scoring.
    character: Option<i32>,
    /// Rank every character in the guild for this Discord member, likewise.
    member: Option<i32>,
}

/// The open suggestions naming `ids` on `side`, at most [`CANDIDATES`] per id (best first), by
/// the id they name.
async fn best_suggestions(
    pool: &sqlx::PgPool,
    side: SuggestionSide,
    ids: &[i32],
) -> anyhow::Result<HashMap<i32, Vec<SuggestionRow>>> {
    let mut by_id: HashMap<i32, Vec<SuggestionRow>> = HashMap::new();
    for s in pages::suggestions_naming(pool, side, ids).await? {
        let id = match side {
            SuggestionSide::Characters => s.character_id,
            SuggestionSide::DiscordUsers => s.discord_user_id,
        };
        let list = by_id.entry(id).or_default();
        if list.len() < CANDIDATES {
            list.push(s);
        }
    }
    Ok(by_id)
}

/// Page `page` (rows from `offset`) of both lists, from [`LISTS`] when the data is unchanged.
async fn lists(pool: &sqlx::PgPool, page: u32, offset: i64) -> anyhow::Result<Arc<Lists>> {
    // Read the stamp before the data, so what is kept is at least as new as its stamp.
    let stamp = crate::db::console::data_stamp(pool).await?;
    if let Some(lists) = LISTS.get(&stamp, &page) {
        return Ok(lists);
    }
    let _loading = LOADING.lock().await;
    // Another client may have loaded the page while this one waited; its stamp is still the
    // one read above, so a hit here is no older than a load would be.
    if let Some(lists) = LISTS.get(&stamp, &page) {
        return Ok(lists);
    }
    let mut characters = pages::unclaimed_characters(pool, ROWS + 1, offset).await?;
    let mut members = pages::unclaimed_members(pool, ROWS + 1, offset).await?;
    let more = characters.len() as i64 > ROWS || members.len() as i64 > ROWS;
    characters.truncate(ROWS as usize);
    members.truncate(ROWS as usize);

    let ids: Vec<i32> = characters.iter().map(|c| c.id).collect();
    let mut by_character = best_suggestions(pool, SuggestionSide::Characters, &ids).await?;
    let ids: Vec<i32> = members.iter().map(|m| m.id).collect();
    let mut by_member = best_suggestions(pool, SuggestionSide::DiscordUsers, &ids).await?;
    let lists = Arc::new(Lists {
        characters: characters
            .into_iter()
            .map(|c| {
                let candidates = by_character.remove(&c.id).unwrap_or_default();
                (c, candidates)
            })
            .collect(),
        members: members
            .into_iter()
            .map(|m| {
                let candidates = by_member.remove(&m.id).unwrap_or_default();
                (m, candidates)
            })
            .collect(),
        more,
    });
    LISTS.keep(stamp, page, Arc::clone(&lists));
    Ok(lists)
}

pub async fn page(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<UnclaimedQuery>,
) -> Result<UnclaimedPage, Refused> {
    let pool = &state.app.pool;
    let (page, offset) = page_offset(query.page);
    let offset = offset / super::PAGE_ROWS * ROWS;
    let lists = lists(pool, page, offset).await?;
    // The same ranking as the API's candidates route (crate::link_candidates).
    let ranked = match query.character {
        Some(id) => Some(
            link_candidates::for_character(pool, id)
                .await?
                .ok_or_else(|| Refused::NotFound(format!("wow character {id} does not exist")))?,
        ),
        None => None,
    };
    let ranked_member = match query.member {
        Some(id) => Some(
            link_candidates::for_discord_user(pool, id)
                .await?
                .ok_or_else(|| Refused::NotFound(format!("discord user {id} does not exist")))?,
        ),
        None => None,
    };
    Ok(UnclaimedPage {
        ranked,
        ranked_member,
        chrome: Chrome::new(&session, "unclaimed"),
        notice: (query.done.as_deref() == Some("linked")).then_some("Linked."),
        lists,
        page,
    })
}

#[derive(Deserialize)]
pub struct LinkForm {
    character_id: i32,
    discord_user_id: i32,
}

/// Link a character and a Discord member chosen among the candidates.
pub async fn link(
    State(state): State<WebState>,
    CsrfForm { session, form }: CsrfForm<LinkForm>,
) -> Result<Redirect, Refused> {
    let pool = &state.app.pool;
    let linked = crate::db::api::link_character(
        pool,
        ManualLink {
            character_id: form.character_id,
            discord_user_id: Some(form.discord_user_id),
            player_id: None,
        },
        crate::db::member_events::EventSource::officer(),
    )
    .await?;
    pages::record_manual_link(pool, linked.link_id, &session.officer).await?;
    pages::resolve_suggestions_for_character(pool, form.character_id, &session.officer).await?;
    crate::db::console::record_action(
        pool,
        &session.officer,
        crate::db::console::OfficerAction::Link,
        &format!("wow_character:{}", form.character_id),
        Some(linked.player_id),
        None,
        serde_json::json!({"character_id": form.character_id, "link_id": linked.link_id,
                           "discord_user_id": form.discord_user_id, "from": "unclaimed"}),
    )
    .await?;
    tracing::info!(
        link_id = linked.link_id,
        "character linked from the Unclaimed page"
    );
    Ok(Redirect::to("/unclaimed?done=linked"))
}
