//! The slash commands guild-sync registers for its guild, and their registration when `serve`
//! starts: read the guild's registered set, and bulk-overwrite it only when it differs from
//! ours. Discord rate-limits command creation per day, and every overwrite makes clients
//! refetch, so an unchanged set sends nothing. The comparison looks only at what we send:
//! Discord adds ids, versions and defaults (`required: false`) to what it returns.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use twilight_model::application::command::Command;
use twilight_model::id::Id;
use twilight_model::id::marker::{ApplicationMarker, GuildMarker};

use super::rest::DiscordRest;
use crate::config::Config;

/// Option types (Discord): a subcommand, a string, a user.
const SUB_COMMAND: u8 = 1;
const STRING: u8 = 3;
const USER: u8 = 6;

fn character_option(required: bool, description: &str) -> Value {
    json!({"type": STRING, "name": "character", "description": description,
           "required": required, "autocomplete": true})
}

/// The commands for this configuration: `/claim` only when claims are configured, `/roles`
/// only when role sync is on. Officer commands are visible to everyone by default
/// (`default_member_permissions` unset): guild-sync checks the rank on every use, and a server
/// admin can narrow who sees them under Server Settings → Integrations.
pub fn definitions(config: &Config) -> Vec<Command> {
    let mut commands = vec![
        json!({"type": 1, "name": "whois",
        "description": "A member's player: characters with realm, class and rank, roles, links",
        "options": [
            {"type": USER, "name": "member", "description": "A Discord member", "required": false},
            character_option(false, "A character in the guild"),
        ]}),
        json!({"type": 1, "name": "link",
        "description": "Officers: link a character to a Discord member",
        "options": [
            character_option(true, "The character"),
            {"type": USER, "name": "member", "description": "The Discord member", "required": true},
        ]}),
        json!({"type": 1, "name": "unlink",
               "description": "Officers: remove a character's link",
               "options": [character_option(true, "The linked character")]}),
        json!({"type": 1, "name": "audit", "description": "Open audit issues per type"}),
    ];
    if config.claims_configured() {
        commands.push(json!({"type": 1, "name": "claim",
                             "description": "Link your own characters (a private link to the claim page)"}));
    }
    if crate::role_sync::RoleSyncMode::from_config(config)
        .is_ok_and(|mode| mode != crate::role_sync::RoleSyncMode::Off)
    {
        commands.push(json!({"type": 1, "name": "roles", "description": "Discord rank roles",
                             "options": [{"type": SUB_COMMAND, "name": "plan",
                                          "description": "Officers: what the role sync would change"}]}));
    }
    commands
        .into_iter()
        .map(|mut command| {
            // Fields twilight's `Command` requires that Discord fills in: a command we send has
            // no version yet (Discord ignores it) and no default permissions (everyone).
            command["version"] = json!("1");
            command["default_member_permissions"] = Value::Null;
            serde_json::from_value(command).expect("the command definitions are valid commands")
        })
        .collect()
}

/// A command or option reduced to what we send, with Discord's defaults filled in, so ours and
/// the registered one compare equal when Discord would treat them alike.
fn canonical(item: &Value) -> Value {
    let text = |key: &str| item.get(key).cloned().unwrap_or(Value::Null);
    let flag = |key: &str| item.get(key).and_then(Value::as_bool).unwrap_or(false);
    let options: Vec<Value> = item
        .get("options")
        .and_then(Value::as_array)
        .map(|o| o.iter().map(canonical).collect())
        .unwrap_or_default();
    json!({
        "type": item.get("type").and_then(Value::as_u64).unwrap_or(1),
        "name": text("name"),
        "description": text("description"),
        "required": flag("required"),
        "autocomplete": flag("autocomplete"),
        "default_member_permissions": text("default_member_permissions"),
        "options": options,
    })
}

/// Whether the registered commands already are `ours` (order aside).
pub fn same_commands(ours: &[Command], registered: &[Command]) -> bool {
    let sorted = |commands: &[Command]| -> Result<Vec<Value>> {
        let mut c = Vec::with_capacity(commands.len());
        for command in commands {
            c.push(canonical(&serde_json::to_value(command)?));
        }
        c.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(c)
    };
    // A command that does not serialize cannot be compared: write ours.
    matches!((sorted(ours), sorted(registered)), (Ok(a), Ok(b)) if a == b)
}

/// Register the commands for `guild` unless they already are; returns whether it wrote.
pub async fn register(
    rest: &DiscordRest,
    app: Id<ApplicationMarker>,
    guild: Id<GuildMarker>,
    config: &Config,
) -> Result<bool> {
    let ours = definitions(config);
    let registered = rest.guild_commands(app, guild).await?;
    if same_commands(&ours, &registered) {
        return Ok(false);
    }
    rest.overwrite_guild_commands(app, guild, &ours)
        .await
        .context("the bulk overwrite")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_discord_returns_for_our_commands_compares_equal_and_a_change_does_not() {
        let config = Config::defaults();
        let ours = definitions(&config);
        // Discord's answer: ids and versions added, `required: false` dropped, order changed.
        let registered: Vec<Value> = ours
            .iter()
            .rev()
            .map(|c| {
                let mut c = serde_json::to_value(c).unwrap();
                c["id"] = json!("1300000000000000001");
                c["application_id"] = json!("7000");
                c["version"] = json!("1300000000000000002");
                c["nsfw"] = json!(false);
                for option in c["options"].as_array_mut().into_iter().flatten() {
                    if option["required"] == json!(false) {
                        option.as_object_mut().unwrap().remove("required");
                    }
                }
                c
            })
            .collect();
        let parse = |commands: &[Value]| -> Vec<Command> {
            serde_json::from_value(Value::Array(commands.to_vec())).unwrap()
        };
        assert!(same_commands(&ours, &parse(&registered)));
        let mut changed = registered.clone();
        changed[0]["description"] = json!("an older description");
        assert!(!same_commands(&ours, &parse(&changed)));
        assert!(!same_commands(&ours, &parse(&registered[1..])));
        let names: Vec<&str> = ours.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["whois", "link", "unlink", "audit"],
            "no /claim or /roles unconfigured"
        );
    }
}
