//! The slash commands: `/whois`, `/link`, `/unlink`, `/audit`, `/claim`, `/roles plan`, and the
//! character autocomplete. Each returns the [`Reply`] to send; the handler in the parent module
//! decides between answering at once and deferring. Officer commands check the rank first.

use anyhow::Result;
use guild_sync_core::fuzzy::fuzzy_match_score_normalized;
use guild_sync_core::integrity::IssueType;
use guild_sync_core::names::normalize_name;
use guild_sync_core::report::{MAX_DESCRIPTION_CHARS, emoji, truncate, type_title};
use twilight_model::application::command::{CommandOptionChoice, CommandOptionChoiceValue};
use twilight_model::application::interaction::application_command::{
    CommandData, CommandOptionValue,
};
use twilight_model::channel::message::Embed;

use super::{Actor, Interactions, Reply, safe_name};
use crate::db::console::ConsoleError;
use crate::db::interactions::{self as db, WhoisKey};
use crate::role_sync::{self, RoleSyncMode};

/// Discord: at most 25 autocomplete choices, names of at most 100 characters.
pub const MAX_CHOICES: usize = 25;
const MAX_CHOICE_CHARS: usize = 100;
/// A character name matches by score only from this fuzzy similarity up; below it the choices
/// are noise. Low, because a query is a few typed letters: a name merely containing them scores
/// only query length / name length ("thr" in "Zthrall": 0.43).
const MIN_CHOICE_SCORE: f64 = 0.3;
/// Characters listed by `/whois` before `…and N more`.
const MAX_WHOIS_CHARACTERS: usize = 25;
/// Characters of a name in a message line.
const NAME_CHARS: usize = 64;

/// The value of top-level option `name` as text: a string as typed or picked, a user as their
/// id.
fn option(data: &CommandData, name: &str) -> Option<String> {
    match &data.options.iter().find(|o| o.name == name)?.value {
        CommandOptionValue::String(text) | CommandOptionValue::Focused(text, _) => {
            Some(text.clone())
        }
        CommandOptionValue::User(id) => Some(id.to_string()),
        _ => None,
    }
}

/// Whether a command's answer is for the asker only (it shows them something personal or is
/// a lookup), rather than an officer's action the channel should see.
pub fn is_private(data: &CommandData) -> bool {
    matches!(data.name.as_str(), "whois" | "claim" | "roles")
}

/// Run the command in `data`.
pub async fn run(h: &Interactions, actor: &Actor, data: &CommandData) -> Result<Reply> {
    match data.name.as_str() {
        "whois" => whois(h, data).await,
        "link" => link(h, actor, data).await,
        "unlink" => unlink(h, actor, data).await,
        "audit" => audit(h).await,
        "claim" => Ok(claim(h)),
        "roles" => roles_plan(h, actor).await,
        other => Ok(Reply::private(format!(
            "guild-sync has no /{} command.",
            safe_name(other, 32)
        ))),
    }
}

/// A character option's id: autocomplete puts the id in the value.
fn character_id(data: &CommandData) -> Option<i32> {
    option(data, "character")?.trim().parse().ok()
}

const PICK_A_CHARACTER: &str = "Pick a character from the list the command offers.";

async fn whois(h: &Interactions, data: &CommandData) -> Result<Reply> {
    let member = option(data, "member");
    let key = match (&member, option(data, "character")) {
        (Some(member), _) => WhoisKey::Member(member.as_str()),
        (None, Some(_)) => match character_id(data) {
            Some(id) => WhoisKey::Character(id),
            None => return Ok(Reply::private(PICK_A_CHARACTER)),
        },
        (None, None) => return Ok(Reply::private("Name a member or a character.")),
    };
    let Some((player, characters)) = db::whois(&h.pool, key).await? else {
        return Ok(Reply::private(
            "No player has that member or character yet.",
        ));
    };
    let mut lines = Vec::new();
    match (&player.discord_username, &player.discord_id) {
        (Some(username), Some(id)) => {
            let shown = player.discord_display_name.as_deref().unwrap_or(username);
            let gone = if player.discord_present == Some(false) {
                " — left the server"
            } else {
                ""
            };
            lines.push(format!(
                "Discord: <@{id}> **{}** (@{}){gone}",
                safe_name(shown, NAME_CHARS),
                safe_name(username, NAME_CHARS)
            ));
            let roles = player.discord_roles.clone().unwrap_or_default();
            if !roles.is_empty() {
                let roles: Vec<String> = roles.iter().map(|r| safe_name(r, NAME_CHARS)).collect();
                lines.push(format!("Roles: {}", roles.join(", ")));
            }
        }
        _ => lines.push("Discord: none linked".to_owned()),
    }
    lines.push(format!("**Characters ({})**", characters.len()));
    for c in characters.iter().take(MAX_WHOIS_CHARACTERS) {
        let card = &c.card;
        let mut about: Vec<String> = [&card.class_name, &card.rank_name]
            .into_iter()
            .flatten()
            .map(|s| safe_name(s, NAME_CHARS))
            .collect();
        if let Some(level) = card.level {
            about.push(format!("level {level}"));
        }
        if !c.in_guild {
            about.push("left the guild".to_owned());
        }
        lines.push(format!(
            "{}**{}**-{} — {} · link: {} ({})",
            if c.is_main { "★ " } else { "• " },
            safe_name(&card.character_name, NAME_CHARS),
            safe_name(&card.realm_slug, NAME_CHARS),
            about.join(", "),
            c.link_source,
            c.confidence
        ));
    }
    if characters.len() > MAX_WHOIS_CHARACTERS {
        lines.push(format!(
            "…and {} more",
            characters.len() - MAX_WHOIS_CHARACTERS
        ));
    }
    let embed = Embed {
        title: Some(truncate(
            &format!(
                "🔎 {}",
                guild_sync_core::text::one_line(&player.player_name)
            ),
            256,
        )),
        description: Some(truncate(&lines.join("\n"), MAX_DESCRIPTION_CHARS)),
        color: Some(guild_sync_core::report::COLOR_INFO),
        kind: "rich".to_owned(),
        author: None,
        fields: Vec::new(),
        flags: None,
        footer: None,
        image: None,
        provider: None,
        thumbnail: None,
        timestamp: None,
        url: None,
        video: None,
    };
    Ok(Reply::Message {
        content: String::new(),
        embeds: vec![embed],
        components: Vec::new(),
        private: true,
    })
}

/// A refused link or unlink, told privately; a database failure stays an error.
fn refused(err: ConsoleError) -> Result<Reply> {
    match err {
        ConsoleError::NotFound(m) | ConsoleError::Conflict(m) | ConsoleError::Invalid(m) => {
            Ok(Reply::private(format!("Nothing changed: {m}.")))
        }
        ConsoleError::Database(e) => Err(e),
    }
}

/// `Name-realm`, safe in a message, of character `id`.
async fn character_label(h: &Interactions, id: i32) -> Result<Option<String>> {
    Ok(crate::db::console::candidate_character(&h.pool, id)
        .await?
        .map(|c| {
            format!(
                "**{}**-{}",
                safe_name(&c.character_name, NAME_CHARS),
                safe_name(&c.realm_slug, NAME_CHARS)
            )
        }))
}

async fn link(h: &Interactions, actor: &Actor, data: &CommandData) -> Result<Reply> {
    if !h.is_officer(actor).await? {
        return Ok(h.refusal());
    }
    let (Some(character), Some(member)) = (character_id(data), option(data, "member")) else {
        return Ok(Reply::private(PICK_A_CHARACTER));
    };
    let Some(label) = character_label(h, character).await? else {
        return Ok(Reply::private(PICK_A_CHARACTER));
    };
    let Some(user) = db::member_by_snowflake(&h.pool, &member).await? else {
        return Ok(Reply::private(format!(
            "guild-sync has not seen <@{member}> yet; the next Discord sync will add them."
        )));
    };
    match db::link_by_officer(&h.pool, character, user.id, &actor.officer_name, "/link").await {
        Ok(linked) => {
            tracing::info!(character, player = linked.player_id, officer = %actor.officer_name, "linked on Discord");
            Ok(Reply::public(format!(
                "🔗 <@{}> linked {label} to <@{member}>.",
                actor.discord_id
            )))
        }
        Err(err) => refused(err),
    }
}

async fn unlink(h: &Interactions, actor: &Actor, data: &CommandData) -> Result<Reply> {
    if !h.is_officer(actor).await? {
        return Ok(h.refusal());
    }
    let Some(character) = character_id(data) else {
        return Ok(Reply::private(PICK_A_CHARACTER));
    };
    let Some(label) = character_label(h, character).await? else {
        return Ok(Reply::private(PICK_A_CHARACTER));
    };
    match db::unlink_by_officer(&h.pool, character, &actor.officer_name).await {
        Ok(_) => Ok(Reply::public(format!(
            "✂️ <@{}> unlinked {label}.",
            actor.discord_id
        ))),
        Err(err) => refused(err),
    }
}

async fn audit(h: &Interactions) -> Result<Reply> {
    let counts = crate::db::audit_issues::open_counts_by_type(&h.pool).await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let mut lines = vec![format!("**{total} open audit issues**")];
    for t in IssueType::ALL {
        if let Some((_, n)) = counts.iter().find(|(name, _)| name == t.as_str()) {
            lines.push(format!("{} {}: {n}", emoji(t), type_title(t)));
        }
    }
    if let Some(url) = h.public_url("/issues") {
        lines.push(format!("Review them in the console: {url}"));
    }
    Ok(Reply::public(lines.join("\n")))
}

fn claim(h: &Interactions) -> Reply {
    match h.public_url("/claim") {
        Some(url) if h.config.claims_configured() => Reply::private(format!(
            "Link your Battle.net characters to your Discord account here: {url}"
        )),
        _ => Reply::private("Claims are not set up on this server."),
    }
}

async fn roles_plan(h: &Interactions, actor: &Actor) -> Result<Reply> {
    if RoleSyncMode::from_config(&h.config)? == RoleSyncMode::Off {
        return Ok(Reply::private("Role sync is off (GUILD_SYNC_ROLE_SYNC)."));
    }
    if !h.is_officer(actor).await? {
        return Ok(h.refusal());
    }
    let stored = role_sync::plan_and_store(&h.pool, &h.config).await?;
    let mut text = format!(
        "**Role plan {}**\n{}",
        stored.plan_id,
        safe_name(&stored.summary, 1500)
    );
    if let Some(url) = h.public_url("/roles") {
        text.push_str(&format!("\nReview and approve it in the console: {url}"));
    }
    Ok(Reply::private(text))
}

/// The choices for the focused `character` option: by prefix, then by fuzzy score. `/unlink`
/// offers only linked characters.
pub async fn autocomplete(
    h: &Interactions,
    data: &CommandData,
) -> Result<Vec<CommandOptionChoice>> {
    let focused = data
        .options
        .iter()
        .find(|o| matches!(o.value, CommandOptionValue::Focused(..)));
    let Some(CommandOptionValue::Focused(query, _)) =
        focused.filter(|o| o.name == "character").map(|o| &o.value)
    else {
        return Ok(Vec::new());
    };
    let query = query.clone();
    let only_linked = data.name == "unlink";
    let pool = crate::link_candidates::characters(&h.pool).await?;
    // Scoring every character (5,000 in 0.2 s in a debug build) stays off the async runtime,
    // which also carries the gateway and the other interactions.
    tokio::task::spawn_blocking(move || {
        let characters: Vec<_> = pool.iter().filter(|c| !only_linked || c.linked).collect();
        let names: Vec<&str> = characters
            .iter()
            .map(|c| c.character_name.as_str())
            .collect();
        rank_choices(&query, &names)
            .into_iter()
            .map(|i| {
                let c = characters[i];
                let name = format!(
                    "{}-{}{}",
                    guild_sync_core::text::one_line(&c.character_name),
                    c.realm_slug,
                    if c.linked { " (linked)" } else { "" }
                );
                CommandOptionChoice {
                    name: truncate(&name, MAX_CHOICE_CHARS),
                    name_localizations: None,
                    value: CommandOptionChoiceValue::String(c.id.to_string()),
                }
            })
            .collect()
    })
    .await
    .map_err(|e| anyhow::anyhow!("autocomplete ranking panicked: {e}"))
}

/// Indexes of `names` to offer for `query`, at most [`MAX_CHOICES`]: names starting with the
/// query (normalized, so accents and case do not matter) alphabetically, then the rest scoring
/// at least [`MIN_CHOICE_SCORE`] best first. An empty query lists names alphabetically.
pub fn rank_choices(query: &str, names: &[&str]) -> Vec<usize> {
    let query = normalize_name(query);
    let normalized: Vec<String> = names.iter().map(|n| normalize_name(n)).collect();
    let mut prefixed: Vec<usize> = (0..names.len())
        .filter(|&i| normalized[i].starts_with(&query))
        .collect();
    prefixed.sort_by(|&a, &b| normalized[a].cmp(&normalized[b]).then(a.cmp(&b)));
    prefixed.truncate(MAX_CHOICES);
    if prefixed.len() < MAX_CHOICES && !query.is_empty() {
        let mut scored: Vec<(f64, usize)> = (0..names.len())
            .filter(|&i| !normalized[i].starts_with(&query))
            .map(|i| (fuzzy_match_score_normalized(&normalized[i], &query), i))
            .filter(|(score, _)| *score >= MIN_CHOICE_SCORE)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        prefixed.extend(
            scored
                .into_iter()
                .take(MAX_CHOICES - prefixed.len())
                .map(|(_, i)| i),
        );
    }
    prefixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_come_by_prefix_then_by_fuzzy_score_and_stop_at_25() {
        let names = ["Thrall", "Jaina", "Thralldor", "Thrál", "Zthrall", "Anduin"];
        let picked: Vec<&str> = rank_choices("thr", &names)
            .into_iter()
            .map(|i| names[i])
            .collect();
        // Prefix matches alphabetically (accents folded), then "Zthrall" by score.
        assert_eq!(picked, ["Thrál", "Thrall", "Thralldor", "Zthrall"]);
        assert_eq!(rank_choices("", &names).len(), names.len());
        assert!(rank_choices("qqqq", &names).is_empty());

        let many: Vec<String> = (0..60).map(|i| format!("Alt{i:02}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let picked = rank_choices("al", &many);
        assert_eq!(picked.len(), MAX_CHOICES);
        assert_eq!(many[picked[0]], "Alt00");
    }
}
