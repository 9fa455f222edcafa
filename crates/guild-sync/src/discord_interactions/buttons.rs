//! The buttons on the audit report: *Link* and *Not them* on a suggestion, *Candidates* on an
//! orphan (a private list of the top [`CANDIDATES_SHOWN`] with their own *Link* buttons).
//!
//! Order of checks on a press: the `custom_id`'s signature (a forged id is refused before any
//! row is read), then the presser's rank, then whether the issue is still open (a stale button
//! says so and changes nothing). An officer's press acts through the console's own functions
//! (same link rules, same action history) and edits the message: its line says who did what,
//! and that issue's buttons go.

use anyhow::Result;
use twilight_model::application::interaction::Interaction;
use twilight_model::application::interaction::message_component::MessageComponentInteractionData;
use twilight_model::channel::Message;
use twilight_model::channel::message::Component;
use twilight_model::channel::message::component::{ActionRow, Button, ButtonStyle};
use twilight_model::id::Id;
use twilight_model::id::marker::{ChannelMarker, MessageMarker};

use super::custom_id::ButtonId;
use super::{Actor, Interactions, Reply, safe_name};
use crate::db::console::{self, ConsoleError};
use crate::db::interactions as db;

/// Candidates offered by *Candidates*.
pub const CANDIDATES_SHOWN: usize = 3;
/// Characters of a name in a message line or label.
const NAME_CHARS: usize = 48;

/// Answer a button press.
pub async fn press(
    h: &Interactions,
    actor: &Actor,
    interaction: &Interaction,
    data: &MessageComponentInteractionData,
) -> Result<Reply> {
    let custom_id = data.custom_id.as_str();
    let Some(button) = ButtonId::verify(custom_id, &h.key) else {
        tracing::warn!(officer = %actor.officer_name, "a button press with a custom_id guild-sync did not sign");
        return Ok(Reply::private(
            "This button was not made by guild-sync; nothing changed.",
        ));
    };
    if !h.is_officer(actor).await? {
        return Ok(h.refusal());
    }
    let Some(issue) = db::button_issue(&h.pool, button.issue()).await? else {
        return Ok(stale("that audit issue no longer exists"));
    };
    if !issue.open {
        let by = issue
            .resolved_by
            .as_deref()
            .map(|by| format!(" by {}", safe_name(by, NAME_CHARS)))
            .unwrap_or_default();
        return Ok(stale(&format!("it was already handled{by}")));
    }
    let (message, officer) = (interaction.message.as_ref(), &actor.officer_name);
    let who = format!("<@{}>", actor.discord_id);
    match button {
        ButtonId::Link(id) => {
            let pair = pair_label(h, issue.wow_character_id, issue.discord_member_id).await?;
            match console::accept_suggestion(&h.pool, id, officer).await {
                Ok(_) => Ok(updated(message, id, &format!("🔗 {who} linked {pair}."))),
                Err(err) => refused(err),
            }
        }
        ButtonId::NotThem(id) => {
            let pair = pair_label(h, issue.wow_character_id, issue.discord_member_id).await?;
            match console::dismiss_suggestion(&h.pool, id, officer, None).await {
                Ok(()) => Ok(updated(
                    message,
                    id,
                    &format!("🚫 {who} marked {pair} as not the same person."),
                )),
                Err(err) => refused(err),
            }
        }
        ButtonId::Candidates(id) => {
            let report = message.map(|m| m.id.get());
            candidates(h, id, &issue, report).await
        }
        ButtonId::LinkCandidate {
            issue: id,
            character,
            discord_user,
            report,
        } => {
            let pair = pair_label(h, Some(character), Some(discord_user)).await?;
            match db::link_by_officer(&h.pool, character, discord_user, officer, "report button")
                .await
            {
                Ok(_) => {
                    let line = format!("🔗 {who} linked {pair}.");
                    let channel = interaction.channel.as_ref().map(|c| c.id);
                    if let (Some(channel), Some(report)) =
                        (channel, report.and_then(Id::new_checked))
                    {
                        edit_report(h, channel, report, id, &line).await;
                    }
                    Ok(updated(message, id, &line))
                }
                Err(err) => refused(err),
            }
        }
    }
}

/// Say on the report message too what a press on its private candidate list did, and take
/// that issue's buttons off it: the list is seen by the presser only, the report by everyone.
/// The message is read first, so other lines added since stay. A failure (the report deleted,
/// no Read Message History) is logged: the link is made and the presser's list says so.
async fn edit_report(
    h: &Interactions,
    channel: Id<ChannelMarker>,
    report: Id<MessageMarker>,
    issue: i32,
    line: &str,
) {
    let edited = async {
        let message = h.rest.message(channel, report).await?;
        let (content, components) = edited(Some(&message), issue, line);
        h.rest
            .edit_message(channel, report, &content, &components)
            .await
    };
    if let Err(err) = edited.await {
        tracing::warn!(error = %format!("{err:#}"), "cannot edit the report after a candidate's link");
    }
}

fn stale(why: &str) -> Reply {
    Reply::private(format!("Nothing changed: {why}."))
}

/// A refusal by the link rules (already linked meanwhile, a row gone) is stale too.
fn refused(err: ConsoleError) -> Result<Reply> {
    match err {
        ConsoleError::NotFound(m) | ConsoleError::Conflict(m) | ConsoleError::Invalid(m) => {
            Ok(stale(&safe_name(&m, 300)))
        }
        ConsoleError::Database(e) => Err(e),
    }
}

/// `**Name**-realm ↔ **user**` for the message line.
async fn pair_label(
    h: &Interactions,
    character: Option<i32>,
    discord_user: Option<i32>,
) -> Result<String> {
    let character = match character {
        Some(id) => console::candidate_character(&h.pool, id).await?.map(|c| {
            format!(
                "**{}**-{}",
                safe_name(&c.character_name, NAME_CHARS),
                safe_name(&c.realm_slug, NAME_CHARS)
            )
        }),
        None => None,
    };
    let user = match discord_user {
        Some(id) => console::candidate_discord_user(&h.pool, id)
            .await?
            .map(|u| format!("**{}**", safe_name(&u.username, NAME_CHARS))),
        None => None,
    };
    Ok(format!(
        "{} ↔ {}",
        character.as_deref().unwrap_or("a character"),
        user.as_deref().unwrap_or("a member")
    ))
}

/// The message the button is on, with `line` added and issue `issue`'s buttons removed.
fn updated(message: Option<&Message>, issue: i32, line: &str) -> Reply {
    let (content, components) = edited(message, issue, line);
    Reply::Update {
        content,
        components,
    }
}

/// `message`'s content with `line` added, and its components without issue `issue`'s buttons.
fn edited(message: Option<&Message>, issue: i32, line: &str) -> (String, Vec<Component>) {
    let (content, rows) = message
        .map(|m| (m.content.as_str(), m.components.as_slice()))
        .unwrap_or_default();
    let content = if content.is_empty() {
        line.to_owned()
    } else {
        format!("{content}\n{line}")
    };
    (content, without_issue(rows, issue))
}

/// Action rows without the buttons acting on `issue` (by their custom id's issue; ours only,
/// so the check needs no key), and without rows left empty.
fn without_issue(rows: &[Component], issue: i32) -> Vec<Component> {
    rows.iter()
        .filter_map(|row| {
            let Component::ActionRow(row) = row else {
                return None;
            };
            let kept: Vec<Component> = row
                .components
                .iter()
                .filter(|component| {
                    let Component::Button(button) = component else {
                        return true;
                    };
                    button
                        .custom_id
                        .as_deref()
                        .and_then(issue_of_custom_id)
                        .is_none_or(|of| of != issue)
                })
                .cloned()
                .collect();
            (!kept.is_empty()).then_some(Component::ActionRow(ActionRow {
                components: kept,
                id: None,
            }))
        })
        .collect()
}

/// The issue id in a custom id (`act.issue…`), unverified: only to tidy the message.
fn issue_of_custom_id(custom_id: &str) -> Option<i32> {
    let args = custom_id.split('.').nth(1)?;
    args.split('-').next()?.parse().ok()
}

/// *Candidates*: the orphan's best [`CANDIDATES_SHOWN`] matches, privately, each with *Link*.
async fn candidates(
    h: &Interactions,
    id: i32,
    issue: &db::ButtonIssue,
    report: Option<u64>,
) -> Result<Reply> {
    // (character, discord user) of each candidate, with its label.
    let picks: Vec<(i32, i32, String, f64)> = match (
        issue.issue_type.as_str(),
        issue.wow_character_id,
        issue.discord_member_id,
    ) {
        ("orphan_wow", Some(character), _) => {
            let Some((_, ranked)) =
                crate::link_candidates::for_character(&h.pool, character).await?
            else {
                return Ok(stale("the character no longer exists"));
            };
            ranked
                .into_iter()
                .take(CANDIDATES_SHOWN)
                .map(|r| (character, r.id as i32, r.matched_name, r.score))
                .collect()
        }
        ("orphan_discord", _, Some(user)) => {
            let Some((_, ranked)) = crate::link_candidates::for_discord_user(&h.pool, user).await?
            else {
                return Ok(stale("the member no longer exists"));
            };
            ranked
                .into_iter()
                .take(CANDIDATES_SHOWN)
                .map(|r| (r.id as i32, user, r.matched_name, r.score))
                .collect()
        }
        _ => return Ok(stale("that issue has no candidates")),
    };
    if picks.is_empty() {
        return Ok(Reply::private(
            "No candidates score high enough; link by hand with /link.",
        ));
    }
    let mut lines = vec!["**Candidates**".to_owned()];
    let mut buttons = Vec::new();
    for (n, (character, discord_user, name, score)) in picks.iter().enumerate() {
        lines.push(format!(
            "{}. **{}** — similarity {:.2}",
            n + 1,
            safe_name(name, NAME_CHARS),
            score
        ));
        let label = guild_sync_core::report::truncate(
            &format!("Link {}", guild_sync_core::text::one_line(name)),
            guild_sync_core::report::MAX_BUTTON_LABEL_CHARS,
        );
        let custom_id = ButtonId::LinkCandidate {
            issue: id,
            character: *character,
            discord_user: *discord_user,
            report,
        }
        .sign(&h.key);
        buttons.push(Component::Button(Button {
            custom_id: Some(custom_id),
            disabled: false,
            emoji: None,
            id: None,
            label: Some(label),
            sku_id: None,
            style: ButtonStyle::Success,
            url: None,
        }));
    }
    Ok(Reply::Message {
        content: lines.join("\n"),
        embeds: Vec::new(),
        components: vec![Component::ActionRow(ActionRow {
            components: buttons,
            id: None,
        })],
        private: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pressed_issues_buttons_leave_the_message_and_empty_rows_go() {
        let rows: Vec<Component> = serde_json::from_value(json!([
            {"type": 1, "components": [
                {"type": 2, "style": 3, "label": "a", "custom_id": "sl.7.aaaa"},
                {"type": 2, "style": 4, "label": "b", "custom_id": "sn.7.bbbb"},
                {"type": 2, "style": 3, "label": "c", "custom_id": "sl.8.cccc"},
                {"type": 2, "style": 4, "label": "d", "custom_id": "sn.8.dddd"}]},
            {"type": 1, "components": [
                {"type": 2, "style": 3, "label": "e", "custom_id": "ol.7-1-2.eeee"}]},
            {"type": 1, "components": [
                {"type": 2, "style": 2, "label": "f", "custom_id": "oc.77.ffff"}]},
        ]))
        .unwrap();
        let left = serde_json::to_value(without_issue(&rows, 7)).unwrap();
        assert_eq!(left.as_array().unwrap().len(), 2);
        assert_eq!(left[0]["components"].as_array().unwrap().len(), 2);
        assert_eq!(left[0]["components"][0]["custom_id"], "sl.8.cccc");
        assert_eq!(left[1]["components"][0]["custom_id"], "oc.77.ffff");
    }
}
