//! The slash commands guild-sync registers for its guild, and their registration when `serve`
//! starts: read the guild's registered set, and bulk-overwrite it only when it differs from
//! ours. Discord rate-limits command creation per day, and every overwrite makes clients
//! refetch, so an unchanged set sends nothing. The comparison looks only at what we send:
//! Discord adds ids, versions and defaults (`required: false`) to what it returns.

use anyhow::Result;
use serde_json::{Value, json};

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
pub fn definitions(config: &Config) -> Value {
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
    Value::Array(commands)
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
pub fn same_commands(ours: &[Value], registered: &[Value]) -> bool {
    let sorted = |commands: &[Value]| {
        let mut c: Vec<Value> = commands.iter().map(canonical).collect();
        c.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        c
    };
    sorted(ours) == sorted(registered)
}

/// Register the commands for `guild` unless they already are; returns whether it wrote.
pub async fn register(rest: &DiscordRest, app: &str, guild: &str, config: &Config) -> Result<bool> {
    let ours = definitions(config);
    let registered = rest.guild_commands(app, guild).await?;
    if same_commands(
        ours.as_array().expect("definitions are a list"),
        &registered,
    ) {
        return Ok(false);
    }
    rest.overwrite_guild_commands(app, guild, &ours).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_discord_returns_for_our_commands_compares_equal_and_a_change_does_not() {
        let config = Config::defaults();
        let ours = definitions(&config);
        let ours = ours.as_array().unwrap();
        // Discord's answer: ids and versions added, `required: false` dropped, order changed.
        let mut registered: Vec<Value> = ours
            .iter()
            .rev()
            .map(|c| {
                let mut c = c.clone();
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
        assert!(same_commands(ours, &registered));
        registered[0]["description"] = json!("an older description");
        assert!(!same_commands(ours, &registered));
        assert!(!same_commands(ours, &registered[1..]));
        let names: Vec<&str> = ours.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["whois", "link", "unlink", "audit"],
            "no /claim or /roles unconfigured"
        );
    }
}
