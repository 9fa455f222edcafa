//! `guild-sync match`: run the identity engine once and print what it did.

use anyhow::Result;

use crate::config::Config;
use crate::database::Database;
use crate::identity_engine::{MatchStats, run_matching};

pub async fn run(config: &Config, args: super::StageArgs) -> Result<()> {
    let db = Database::open(config).await?;
    let outcome = super::locked(&db.pool, &args.lock, run_matching(&db.pool)).await;
    db.close().await;
    let stats = outcome?;
    super::print_stats(args.output.json, &human(&stats), &stats)
}

fn human(s: &MatchStats) -> String {
    let b = &s.by_strategy;
    format!(
        "matched {considered} unlinked characters against {users} Discord users: \
         {links} links ({exact} exact name, {guild} guild note, {officer} officer note, \
         {part} display-name part, {fuzzy} fuzzy, {alt} alt note), {players} players created, {attached} Discord users \
         attached, {suggestions} suggestions ({new} new), {skipped} left unlinked \
         ({ties} ties, {conflicts} conflicts)",
        considered = s.characters_considered,
        users = s.discord_users_considered,
        links = s.links_created,
        exact = b.exact_name,
        guild = b.guild_note,
        officer = b.officer_note,
        part = b.display_name_part,
        fuzzy = b.fuzzy_name,
        alt = b.alt_note,
        players = s.players_created,
        attached = s.discord_users_attached,
        suggestions = s.suggestions,
        new = s.suggestions_new,
        skipped = s.skipped,
        ties = s.ties,
        conflicts = s.conflicts,
    )
}
