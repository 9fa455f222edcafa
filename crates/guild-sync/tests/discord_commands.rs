//! Slash commands and report buttons end to end (issue 20): the real twilight shard connected
//! to the fake gateway (`gateway_support`), which delivers INTERACTION_CREATE payloads in
//! Discord's shapes (application command, autocomplete, message component); a wiremock Discord
//! REST that keeps the registered commands and records every callback, edit and follow-up; a
//! real PostgreSQL per test.

mod common;
mod gateway_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use guild_sync::config::{Config, Secret};
use guild_sync::discord_gateway::{self, GatewayHandle};
use guild_sync::discord_interactions::{DEFER_AFTER, EPHEMERAL, Interactions};
use guild_sync::discord_sender::DiscordSender;
use guild_sync::reporter::send_new_issues_report;
use guild_sync::testing::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use common::on_a_fresh_db;
use gateway_support::{Dispatch, GUILD, start_live_gateway};

const APP: &str = "7000";
const CHANNEL: &str = "9001";
const COMMANDS_PATH: &str = "/applications/7000/guilds/4242/commands";
/// The API base under the fake's root: twilight-http builds its paths under `/api/v10`.
const API: &str = "/api/v10";

/// The guild's registered commands, as Discord keeps them: what the last PUT sent, with ids.
struct RegisteredCommands(Arc<Mutex<Value>>);

impl Respond for RegisteredCommands {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut registered = self.0.lock().unwrap();
        if request.method == wiremock::http::Method::PUT {
            let mut sent: Value = serde_json::from_slice(&request.body).unwrap();
            for (n, command) in sent.as_array_mut().unwrap().iter_mut().enumerate() {
                command["id"] = json!(format!("13000000000000000{n:02}"));
                command["application_id"] = json!(APP);
                command["guild_id"] = json!(GUILD);
                command["version"] = json!("1300000000000000100");
                command["default_member_permissions"] = Value::Null;
                command["nsfw"] = json!(false);
            }
            *registered = sent;
        }
        ResponseTemplate::new(200).set_body_json(registered.clone())
    }
}

/// Discord's REST as the commands use it.
async fn fake_discord() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{API}/applications/@me")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": APP, "name": "guild-sync", "icon": null, "description": "",
            "summary": "", "type": null, "bot_public": false,
            "bot_require_code_grant": false, "verify_key": "a1b2c3", "flags": 0,
            "hook": true, "is_monetized": false, "redirect_uris": [],
            "interactions_endpoint_url": null, "team": null,
            "owner": {"id": "5001", "username": "thrall", "global_name": null,
                      "avatar": null, "discriminator": "0", "public_flags": 0}
        })))
        .mount(&server)
        .await;
    let registered = Arc::new(Mutex::new(json!([])));
    Mock::given(path(format!("{API}{COMMANDS_PATH}")))
        .respond_with(RegisteredCommands(registered))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/v10/interactions/\d+/[^/]+/callback$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(
            r"^/api/v10/webhooks/7000/[^/]+/messages/@original$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "8001"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/api/v10/webhooks/7000/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "8002"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/channels/{CHANNEL}/messages")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "8000", "channel_id": CHANNEL})),
        )
        .mount(&server)
        .await;
    server
}

fn config(discord: &MockServer) -> Config {
    let mut config = Config::defaults();
    config.discord_bot_token = Some(Secret::new("bot-token"));
    config.discord_guild_id = Some(GUILD.into());
    config.discord_api_url = format!("{}{API}", discord.uri());
    config.discord_audit_channel_id = Some(CHANNEL.into());
    config.guild_sync_public_url = Some("https://guild.example".into());
    config
}

/// Requests the fake received, `(method path, body)` with the path under [`API`], those whose
/// path starts with `prefix`.
async fn received(discord: &MockServer, prefix: &str) -> Vec<(String, Value)> {
    discord
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            let path = r.url.path().strip_prefix(API)?.to_owned();
            path.starts_with(prefix).then(|| {
                let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                (format!("{} {path}", r.method), body)
            })
        })
        .collect()
}

/// Wait (by polling the fake, not by timing) until `n` requests under `prefix` arrived.
async fn wait_for(discord: &MockServer, prefix: &str, n: usize) -> Vec<(String, Value)> {
    loop {
        let seen = received(discord, prefix).await;
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The callback body of interaction `id` (waits for it).
async fn callback(discord: &MockServer, id: &str) -> Value {
    let prefix = format!("/interactions/{id}/");
    wait_for(discord, &prefix, 1).await.remove(0).1
}

/// A member object as Discord sends it in an interaction.
fn member(id: &str, username: &str) -> Value {
    json!({
        "user": {"id": id, "username": username, "global_name": null, "avatar": null,
                 "discriminator": "0", "public_flags": 0},
        "roles": [], "nick": null, "avatar": null, "premium_since": null,
        "joined_at": "2025-02-03T04:05:06.000000+00:00", "pending": false, "flags": 0,
        "permissions": "2248473465835073", "communication_disabled_until": null,
        "deaf": false, "mute": false
    })
}

/// An INTERACTION_CREATE payload of `kind` (2 command, 3 component, 4 autocomplete).
fn interaction(kind: u8, id: &str, by: Value, data: Value, message: Option<Value>) -> Dispatch {
    let mut payload = json!({
        "id": id, "application_id": APP, "type": kind, "data": data,
        "guild_id": GUILD, "channel_id": CHANNEL,
        "channel": {"id": CHANNEL, "type": 0, "guild_id": GUILD, "name": "audit"},
        "guild": {"id": GUILD, "locale": "en-US", "features": []},
        "member": by, "token": format!("token-{id}"), "version": 1,
        "app_permissions": "2248473465835073", "locale": "en-GB", "guild_locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": {"0": GUILD}, "context": 0,
        "attachment_size_limit": 10485760
    });
    if let Some(message) = message {
        payload["message"] = message;
    }
    ("INTERACTION_CREATE".into(), payload)
}

/// A slash command's `data`.
fn command(name: &str, options: Value) -> Value {
    json!({"id": "1300000000000000001", "name": name, "type": 1, "guild_id": GUILD,
           "options": options})
}

/// A user option with its `resolved` entry, as Discord sends a USER option.
fn with_user(mut data: Value, id: &str, username: &str) -> Value {
    data["resolved"] = json!({
        "users": {id: {"id": id, "username": username, "global_name": null, "avatar": null,
                       "discriminator": "0", "public_flags": 0}},
        "members": {id: {"roles": [], "nick": null, "avatar": null, "premium_since": null,
                         "joined_at": "2025-02-03T04:05:06.000000+00:00", "pending": false,
                         "flags": 0, "permissions": "0", "communication_disabled_until": null}}
    });
    data
}

/// A message of the bot's as Discord sends it with a component interaction.
fn bot_message(id: &str, content: &str, embeds: Value, components: &Value, flags: u64) -> Value {
    json!({
        "id": id, "channel_id": CHANNEL, "type": 0, "content": content,
        "author": {"id": APP, "username": "guild-sync", "bot": true, "discriminator": "0",
                   "avatar": null, "global_name": null},
        "embeds": embeds, "components": components,
        "timestamp": "2026-12-02T06:00:00.000000+00:00", "edited_timestamp": null,
        "flags": flags, "tts": false, "mention_everyone": false, "mentions": [],
        "mention_roles": [], "attachments": [], "pinned": false
    })
}

/// The report message a button is on: what the reporter sent, and what Discord adds (each
/// embed's `type`, ids, timestamps).
fn report_message(sent: &Value) -> Value {
    let mut embeds = sent["embeds"].clone();
    for embed in embeds.as_array_mut().into_iter().flatten() {
        embed["type"] = json!("rich");
    }
    bot_message("8000", "", embeds, &sent["components"], 0)
}

fn press(custom_id: &str) -> Value {
    json!({"custom_id": custom_id, "component_type": 2})
}

/// The guild as the tests see it: `thrall` (5001) an officer by Discord role, `jaina` (5002) a
/// member without a player, `peon` (5003) a plain member; Thrall's player has a main and an alt.
struct Seeded {
    thrall_main: i32,
    jaina_character: i32,
    jaina_user: i32,
}

async fn seed(pool: &PgPool) -> Seeded {
    let user = |id: &str, name: &str, role: &str| {
        sqlx::query_scalar::<_, i32>(
            "INSERT INTO guild_identity.discord_users
                 (discord_id, username, display_name, all_guild_roles, highest_guild_role)
             VALUES ($1, $2, $2, ARRAY[$3], $3) RETURNING id",
        )
        .bind(id.to_owned())
        .bind(name.to_owned())
        .bind(role.to_owned())
        .fetch_one(pool)
    };
    let thrall_user = user("5001", "thrall", "Officer").await.unwrap();
    let jaina_user = user("5002", "jaina", "Member").await.unwrap();
    user("5003", "peon", "Member").await.unwrap();
    let character = |name: &str, class: &str, rank: &str, level: i32| {
        sqlx::query_scalar::<_, i32>(
            "INSERT INTO guild_identity.wow_characters
                 (character_name, realm_slug, class_id, guild_rank_id, level)
             SELECT $1, 'stormrage', c.id, r.id, $4
             FROM guild_identity.classes c, common.guild_ranks r
             WHERE c.name = $2 AND r.name = $3 RETURNING id",
        )
        .bind(name.to_owned())
        .bind(class.to_owned())
        .bind(rank.to_owned())
        .bind(level)
        .fetch_one(pool)
    };
    let thrall_main = character("Thrall", "Shaman", "Officer", 80).await.unwrap();
    let thrall_alt = character("Thrallbank", "Warrior", "Member", 12)
        .await
        .unwrap();
    let jaina_character = character("Jaina", "Mage", "Member", 80).await.unwrap();
    let player = guild_sync::testing::seed::player(pool, "Thrall", Some(thrall_user)).await;
    guild_sync::testing::seed::link(pool, player, thrall_main).await;
    guild_sync::testing::seed::link(pool, player, thrall_alt).await;
    sqlx::query("UPDATE guild_identity.players SET main_character_id = $2 WHERE id = $1")
        .bind(player)
        .bind(thrall_main)
        .execute(pool)
        .await
        .unwrap();
    Seeded {
        thrall_main,
        jaina_character,
        jaina_user,
    }
}

/// `thrall` (5001), an officer by Discord role, as the member acting.
fn officer() -> Value {
    member("5001", "thrall")
}

/// `peon` (5003), a plain member, as the member acting.
fn peon() -> Value {
    member("5003", "peon")
}

/// `/link character:{character} member:jaina`.
fn link_to_jaina(character: i32) -> Value {
    with_user(
        command(
            "link",
            json!([
                {"type": 3, "name": "character", "value": character.to_string()},
                {"type": 6, "name": "member", "value": "5002"}
            ]),
        ),
        "5002",
        "jaina",
    )
}

/// Every button in a message's `components` rows.
fn buttons(components: &Value) -> impl Iterator<Item = &Value> {
    components
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().unwrap())
}

/// One test's world: a real database with [`seed`]'s guild, the fake Discord REST, and the
/// commands registered and connected to the fake gateway.
struct Scene {
    db: TestDb,
    discord: MockServer,
    seeded: Seeded,
    config: Config,
    live: mpsc::UnboundedSender<Dispatch>,
    gateway: GatewayHandle,
}

impl Scene {
    /// Start on `db` with [`config`] as `configure` leaves it.
    async fn start(db: TestDb, configure: impl FnOnce(&mut Config)) -> Scene {
        guild_sync::install_crypto_provider();
        let discord = fake_discord().await;
        let seeded = seed(&db.pool).await;
        let mut config = config(&discord);
        configure(&mut config);
        let interactions = Interactions::start(db.pool.clone(), &config).await.unwrap();
        let guild_create = json!({"id": GUILD, "name": "Guild", "roles": [], "members": []});
        let (url, _seen, live) = start_live_gateway(vec![("GUILD_CREATE", guild_create)]).await;
        let mut connected = config.clone();
        connected.discord_gateway_url = Some(url);
        let gateway = discord_gateway::spawn_with_interactions(
            db.pool.clone(),
            &connected,
            &CancellationToken::new(),
            Some(interactions),
        )
        .await
        .unwrap();
        Scene {
            db,
            discord,
            seeded,
            config,
            live,
            gateway,
        }
    }

    fn deliver(&self, dispatch: Dispatch) {
        self.live.send(dispatch).unwrap();
    }

    /// Deliver slash command `data` as interaction `id` by `by`; the callback it got.
    async fn command(&self, id: &str, by: Value, data: Value) -> Value {
        self.deliver(interaction(2, id, by, data, None));
        callback(&self.discord, id).await
    }

    /// Deliver a press of button `custom_id` on `message` as interaction `id` by `by`; the
    /// callback it got.
    async fn press(&self, id: &str, by: Value, custom_id: &str, message: &Value) -> Value {
        self.deliver(interaction(
            3,
            id,
            by,
            press(custom_id),
            Some(message.clone()),
        ));
        callback(&self.discord, id).await
    }

    /// The real reporter sends the new-issues report as the bot; the message body it sent.
    async fn send_report(&self) -> Value {
        let sender = DiscordSender::from_config(&self.config).unwrap().unwrap();
        send_new_issues_report(&self.db.pool, &sender, false)
            .await
            .unwrap();
        wait_for(&self.discord, "/channels/", 1).await.remove(0).1
    }

    /// Run `lock` (a `SELECT … FOR UPDATE` of row `$1`) in a transaction of its own, as a
    /// running sync would hold the row; the row stays held until the transaction commits.
    async fn hold(
        &self,
        lock: &'static str,
        row: i32,
    ) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut holder = self.db.pool.begin().await.unwrap();
        sqlx::query(lock)
            .bind(row)
            .execute(&mut *holder)
            .await
            .unwrap();
        holder
    }

    /// Hold Jaina's character row, so a link of her waits until the transaction commits.
    async fn hold_jaina(&self) -> sqlx::Transaction<'static, sqlx::Postgres> {
        self.hold(
            "SELECT 1 FROM guild_identity.wow_characters WHERE id = $1 FOR UPDATE",
            self.seeded.jaina_character,
        )
        .await
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.gateway.shutdown().await;
    }
}

#[tokio::test]
async fn commands_are_registered_once_then_not_again_when_nothing_changed() {
    on_a_fresh_db(|db| async move {
        guild_sync::install_crypto_provider();
        let discord = fake_discord().await;
        let mut config = config(&discord);

        Interactions::start(db.pool.clone(), &config).await.unwrap();
        let first = received(&discord, "/").await;
        let calls: Vec<&str> = first.iter().map(|(call, _)| call.as_str()).collect();
        assert_eq!(
            calls,
            [
                "GET /applications/@me",
                "GET /applications/7000/guilds/4242/commands",
                "PUT /applications/7000/guilds/4242/commands"
            ],
            "no DISCORD_APPLICATION_ID: asked from Discord; an empty set: written"
        );
        let names: Vec<&str> = first[2]
            .1
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["whois", "link", "unlink", "audit"]);

        // Started again, with the id configured: read, compared equal, nothing written.
        config.discord_application_id = Some(APP.into());
        Interactions::start(db.pool.clone(), &config).await.unwrap();
        let second = received(&discord, "/").await;
        assert_eq!(second.len(), 4, "{second:?}");
        assert_eq!(second[3].0, "GET /applications/7000/guilds/4242/commands");

        // Role sync turned on: /roles joins the set, so it is written once more.
        config.guild_sync_role_sync = "plan".into();
        Interactions::start(db.pool.clone(), &config).await.unwrap();
        let third = received(&discord, "/").await;
        assert_eq!(third.len(), 6);
        assert_eq!(third[5].0, "PUT /applications/7000/guilds/4242/commands");
        assert!(
            third[5]
                .1
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == "roles")
        );
    })
    .await
}

#[tokio::test]
async fn whois_shows_a_players_alts_and_the_character_autocomplete_ranks_by_prefix() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;

        // Autocomplete while typing "thr" into /whois character.
        scene.deliver(interaction(
            4,
            "101",
            peon(),
            command(
                "whois",
                json!([{"type": 3, "name": "character", "value": "thr", "focused": true}]),
            ),
            None,
        ));
        let answer = callback(&scene.discord, "101").await;
        assert_eq!(answer["type"], 8);
        let choices = answer["data"]["choices"].as_array().unwrap();
        let names: Vec<&str> = choices
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["Thrall-stormrage (linked)", "Thrallbank-stormrage (linked)"]
        );
        assert_eq!(choices[0]["value"], scene.seeded.thrall_main.to_string());

        // /whois member:thrall — anyone may ask; the answer is private.
        let whois_thrall = with_user(
            command(
                "whois",
                json!([{"type": 6, "name": "member", "value": "5001"}]),
            ),
            "5001",
            "thrall",
        );
        let answer = scene.command("102", peon(), whois_thrall).await;
        assert_eq!(answer["type"], 4);
        assert_eq!(answer["data"]["flags"], EPHEMERAL);
        let embed = &answer["data"]["embeds"][0];
        assert_eq!(embed["title"], "🔎 Thrall");
        let text = embed["description"].as_str().unwrap();
        assert!(
            text.contains("Discord: <@5001> **thrall** (@thrall)"),
            "{text}"
        );
        assert!(text.contains("Roles: Officer"), "{text}");
        assert!(text.contains("**Characters (2)**"), "{text}");
        assert!(
            text.contains(
                "★ **Thrall**-stormrage — Shaman, Officer, level 80 · link: manual (confirmed)"
            ),
            "{text}"
        );
        assert!(
            text.contains("• **Thrallbank**-stormrage — Warrior, Member, level 12"),
            "{text}"
        );

        // By character (the autocomplete's value), the same player.
        let whois_main = command(
            "whois",
            json!([{"type": 3, "name": "character", "value": scene.seeded.thrall_main.to_string()}]),
        );
        assert_eq!(
            scene.command("103", peon(), whois_main).await["data"]["embeds"][0]["title"],
            "🔎 Thrall"
        );
        scene.stop().await;
    })
    .await
}

#[tokio::test]
async fn an_officer_links_with_the_console_rules_and_a_non_officer_is_refused_privately() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;
        let seeded = &scene.seeded;

        let refusal = scene
            .command("201", peon(), link_to_jaina(seeded.jaina_character))
            .await;
        assert_eq!(refusal["type"], 4);
        assert_eq!(refusal["data"]["flags"], EPHEMERAL);
        assert!(
            refusal["data"]["content"]
                .as_str()
                .unwrap()
                .starts_with("Only officers")
        );
        assert_eq!(
            scene
                .count("SELECT count(*) FROM guild_identity.player_characters")
                .await,
            2
        );

        let done = scene
            .command("202", officer(), link_to_jaina(seeded.jaina_character))
            .await;
        assert_eq!(done["type"], 4);
        assert!(
            done["data"].get("flags").is_none(),
            "an officer's action is public"
        );
        assert_eq!(
            done["data"]["content"],
            "🔗 <@5001> linked **Jaina**-stormrage to <@5002>."
        );
        assert_eq!(done["data"]["allowed_mentions"], json!({"parse": []}));
        let (player_user, source): (Option<i32>, String) = sqlx::query_as(
            "SELECT p.discord_user_id, pc.link_source FROM guild_identity.player_characters pc
             JOIN guild_identity.players p ON p.id = pc.player_id WHERE pc.character_id = $1",
        )
        .bind(seeded.jaina_character)
        .fetch_one(&scene.db.pool)
        .await
        .unwrap();
        assert_eq!(
            (player_user, source.as_str()),
            (Some(seeded.jaina_user), "manual")
        );
        let (acted_by, action): (String, String) =
            sqlx::query_as("SELECT officer, action FROM guild_identity.officer_actions")
                .fetch_one(&scene.db.pool)
                .await
                .unwrap();
        assert_eq!(
            (acted_by.as_str(), action.as_str()),
            ("thrall (Discord 5001)", "link")
        );

        // The console's rule: a linked character must be unlinked first.
        let conflict = scene
            .command("203", officer(), link_to_jaina(seeded.thrall_main))
            .await;
        assert_eq!(conflict["data"]["flags"], EPHEMERAL);
        assert!(
            conflict["data"]["content"]
                .as_str()
                .unwrap()
                .contains("unlink it first"),
            "{conflict}"
        );

        // /unlink by the officer.
        let unlink = command(
            "unlink",
            json!([{"type": 3, "name": "character", "value": seeded.jaina_character.to_string()}]),
        );
        assert_eq!(
            scene.command("204", officer(), unlink).await["data"]["content"],
            "✂️ <@5001> unlinked **Jaina**-stormrage."
        );
        assert_eq!(
            scene
                .count(
                    "SELECT count(*) FROM guild_identity.officer_actions WHERE action = 'unlink'"
                )
                .await,
            1
        );
        scene.stop().await;
    })
    .await
}

/// A suggestion (Jaina ↔ jaina) and an orphan character, as the integrity checker files them.
async fn seed_report_issues(pool: &PgPool, seeded: &Seeded) -> (i32, i32) {
    let suggestion: i32 = sqlx::query_scalar(
        "INSERT INTO guild_identity.audit_issues
             (issue_type, severity, wow_character_id, discord_member_id, summary, details, issue_hash)
         VALUES ('auto_link_suggestion', 'info', $1, $2, 'Jaina ↔ jaina',
                 '{\"reason\": \"similar names\", \"score\": 0.9}', 'hash-s') RETURNING id",
    )
    .bind(seeded.jaina_character)
    .bind(seeded.jaina_user)
    .fetch_one(pool)
    .await
    .unwrap();
    let orphan: i32 = sqlx::query_scalar(
        "INSERT INTO guild_identity.audit_issues
             (issue_type, severity, wow_character_id, summary, details, issue_hash)
         VALUES ('orphan_wow', 'warning', $1, 'Jaina has no player',
                 '{\"reason\": \"no player\"}', 'hash-o') RETURNING id",
    )
    .bind(seeded.jaina_character)
    .fetch_one(pool)
    .await
    .unwrap();
    (suggestion, orphan)
}

/// The buttons of a sent message by label prefix → custom id.
fn button(message: &Value, label_prefix: &str) -> String {
    buttons(&message["components"])
        .find(|b| b["label"].as_str().unwrap().starts_with(label_prefix))
        .unwrap_or_else(|| panic!("no {label_prefix:?} button in {message}"))["custom_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_link_button_on_a_sent_report_acts_once_and_refuses_stale_forged_and_non_officer_presses()
 {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;
        let (suggestion, orphan) = seed_report_issues(&scene.db.pool, &scene.seeded).await;

        // The real reporter sends the report as the bot.
        let sent = scene.send_report().await;
        let link = button(&sent, "Link Jaina");
        let not_them = button(&sent, "Not them: Jaina");
        let candidates = button(&sent, "Candidates: Jaina");
        assert!(link.starts_with(&format!("sl.{suggestion}.")), "{link}");
        let message = report_message(&sent);

        // A non-officer's press: a private refusal, nothing changes.
        let refusal = scene.press("301", peon(), &link, &message).await;
        assert_eq!(
            (refusal["type"].clone(), refusal["data"]["flags"].clone()),
            (json!(4), json!(EPHEMERAL))
        );
        assert!(
            refusal["data"]["content"]
                .as_str()
                .unwrap()
                .starts_with("Only officers")
        );

        // A forged id: the suggestion's MAC on another issue id.
        let (_, mac) = link.rsplit_once('.').unwrap();
        let forged = format!("sl.{orphan}.{mac}");
        let refusal = scene.press("302", officer(), &forged, &message).await;
        assert_eq!(refusal["data"]["flags"], EPHEMERAL);
        assert_eq!(
            refusal["data"]["content"],
            "This button was not made by guild-sync; nothing changed."
        );
        assert_eq!(
            scene
                .count("SELECT count(*) FROM guild_identity.officer_actions")
                .await,
            0
        );

        // The officer's press: linked, the message says who did what, the pair's buttons go.
        let update = scene.press("303", officer(), &link, &message).await;
        assert_eq!(update["type"], 7);
        assert_eq!(
            update["data"]["content"],
            "🔗 <@5001> linked **Jaina**-stormrage ↔ **jaina**."
        );
        assert!(
            update["data"].get("embeds").is_none(),
            "the report's embeds stay as they are"
        );
        let left: Vec<&str> = buttons(&update["data"]["components"])
            .map(|b| b["custom_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            left,
            [candidates.as_str()],
            "only the orphan's button is left"
        );
        let (resolved_by, acted_by): (String, String) = sqlx::query_as(
            "SELECT ai.resolved_by, oa.officer FROM guild_identity.audit_issues ai
             JOIN guild_identity.officer_actions oa ON oa.target = 'audit_issue:' || ai.id
             WHERE ai.id = $1 AND oa.action = 'accept_suggestion'",
        )
        .bind(suggestion)
        .fetch_one(&scene.db.pool)
        .await
        .unwrap();
        assert_eq!(
            (resolved_by.as_str(), acted_by.as_str()),
            ("thrall (Discord 5001)", "thrall (Discord 5001)")
        );

        // Stale: Not them on the same (now resolved) suggestion says so and changes nothing.
        let stale = scene.press("304", officer(), &not_them, &message).await;
        assert_eq!(
            (stale["type"].clone(), stale["data"]["flags"].clone()),
            (json!(4), json!(EPHEMERAL))
        );
        assert_eq!(
            stale["data"]["content"],
            "Nothing changed: it was already handled by thrall (Discord 5001)."
        );
        assert_eq!(
            scene
                .count("SELECT count(*) FROM guild_identity.dismissed_suggestions")
                .await,
            0
        );
        assert_eq!(
            scene
                .count("SELECT count(*) FROM guild_identity.officer_actions")
                .await,
            1
        );
        scene.stop().await;
    })
    .await
}

#[tokio::test]
async fn candidates_on_an_orphan_list_the_best_three_with_link_buttons_that_link() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;
        let seeded = &scene.seeded;
        let (_, orphan) = seed_report_issues(&scene.db.pool, seeded).await;
        let sent = scene.send_report().await;
        // The report as Discord keeps it, read before the bot edits it.
        let report_path = format!("{API}/channels/{CHANNEL}/messages/8000");
        for verb in ["GET", "PATCH"] {
            Mock::given(method(verb))
                .and(path(report_path.clone()))
                .respond_with(ResponseTemplate::new(200).set_body_json(report_message(&sent)))
                .mount(&scene.discord)
                .await;
        }

        let list = scene
            .press(
                "401",
                officer(),
                &button(&sent, "Candidates: Jaina"),
                &report_message(&sent),
            )
            .await;
        assert_eq!(
            (list["type"].clone(), list["data"]["flags"].clone()),
            (json!(4), json!(EPHEMERAL))
        );
        let content = list["data"]["content"].as_str().unwrap();
        assert!(
            content.starts_with("**Candidates**\n1. **jaina** — similarity 1.00"),
            "{content}"
        );
        let shown: Vec<&Value> = buttons(&list["data"]["components"]).collect();
        assert!(!shown.is_empty() && shown.len() <= 3, "{shown:?}");
        assert_eq!(shown[0]["label"], "Link jaina");
        let link = shown[0]["custom_id"].as_str().unwrap();
        assert_eq!(
            link.rsplit_once('.').unwrap().0,
            format!(
                "ol.{orphan}-{}-{}-8000",
                seeded.jaina_character, seeded.jaina_user
            ),
            "the report message's id rides along"
        );

        // Pressed on the private list: the list is edited to say what was done.
        let private_list = bot_message(
            "8003",
            content,
            json!([]),
            &list["data"]["components"],
            EPHEMERAL,
        );
        let update = scene.press("402", officer(), link, &private_list).await;
        assert_eq!(update["type"], 7);
        assert!(
            update["data"]["content"]
                .as_str()
                .unwrap()
                .ends_with("🔗 <@5001> linked **Jaina**-stormrage ↔ **jaina**.")
        );
        assert_eq!(update["data"]["components"], json!([]));

        // …and the report everyone sees says it too: the orphan's Candidates button goes, the
        // suggestion's buttons stay.
        let edits: Vec<Value> = wait_for(
            &scene.discord,
            &format!("/channels/{CHANNEL}/messages/8000"),
            2,
        )
        .await
        .into_iter()
        .filter(|(call, _)| call.starts_with("PATCH "))
        .map(|(_, body)| body)
        .collect();
        assert_eq!(edits.len(), 1, "{edits:?}");
        assert_eq!(
            edits[0]["content"],
            "🔗 <@5001> linked **Jaina**-stormrage ↔ **jaina**."
        );
        assert_eq!(edits[0]["allowed_mentions"], json!({"parse": []}));
        assert!(edits[0].get("embeds").is_none(), "the report's embeds stay");
        let labels: Vec<&str> = buttons(&edits[0]["components"])
            .map(|b| b["label"].as_str().unwrap())
            .collect();
        let before: Vec<&str> = buttons(&sent["components"])
            .map(|b| b["label"].as_str().unwrap())
            .filter(|label| !label.starts_with("Candidates"))
            .collect();
        assert!(
            !before.is_empty(),
            "the suggestion's buttons were on the report"
        );
        assert_eq!(labels, before);
        assert_eq!(
            scene
                .count("SELECT count(*) FROM guild_identity.officer_actions WHERE action = 'link'")
                .await,
            1
        );
        scene.stop().await;
    })
    .await
}

#[tokio::test]
async fn work_longer_than_two_seconds_is_deferred_then_the_original_is_edited() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;

        // Another transaction holds Jaina's row (as a running sync would), so the link waits.
        let holder = scene.hold_jaina().await;
        let started = std::time::Instant::now();
        let deferred = scene
            .command(
                "501",
                officer(),
                link_to_jaina(scene.seeded.jaina_character),
            )
            .await;
        assert!(
            started.elapsed() >= DEFER_AFTER,
            "deferred only after {DEFER_AFTER:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "inside Discord's 3 s"
        );
        assert_eq!(
            deferred,
            json!({"type": 5}),
            "a public command defers publicly"
        );
        assert!(
            received(&scene.discord, "/webhooks/").await.is_empty(),
            "still working"
        );

        holder.commit().await.unwrap();
        let edits = wait_for(&scene.discord, "/webhooks/", 1).await;
        assert_eq!(
            edits[0].0,
            "PATCH /webhooks/7000/token-501/messages/@original"
        );
        assert_eq!(
            edits[0].1["content"],
            "🔗 <@5001> linked **Jaina**-stormrage to <@5002>."
        );
        assert_eq!(
            received(&scene.discord, "/interactions/").await.len(),
            1,
            "one callback only"
        );
        scene.stop().await;
    })
    .await
}

/// Stopping the listener (as the service's shutdown does) waits for the answers in progress: a
/// link an officer started is written and answered, not cut off by the database closing.
#[tokio::test]
async fn stopping_waits_for_an_answer_in_progress_to_be_given() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;
        // Jaina's row is held (as a running sync would), so the link is still working when the
        // listener is told to stop.
        let holder = scene.hold_jaina().await;
        let jaina = scene.seeded.jaina_character;
        let deferred = scene.command("601", officer(), link_to_jaina(jaina)).await;
        assert_eq!(deferred, json!({"type": 5}), "still working");

        let Scene {
            db: _db,
            discord,
            gateway,
            ..
        } = scene;
        let stopping = tokio::spawn(gateway.shutdown());
        holder.commit().await.unwrap();
        stopping.await.unwrap();

        // Stopped: the answer had been given by then.
        let edits = received(&discord, "/webhooks/").await;
        assert_eq!(edits.len(), 1, "{edits:?}");
        assert_eq!(
            edits[0].1["content"],
            "🔗 <@5001> linked **Jaina**-stormrage to <@5002>."
        );
    })
    .await
}

#[tokio::test]
async fn audit_counts_open_issues_claim_links_privately_and_roles_plan_is_for_officers() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |config| config.guild_sync_role_sync = "plan".into()).await;
        seed_report_issues(&scene.db.pool, &scene.seeded).await;

        let audit = scene.command("601", peon(), command("audit", json!([]))).await;
        assert_eq!(audit["type"], 4);
        assert_eq!(
            audit["data"]["content"],
            "**2 open audit issues**\n🧙 Characters without a player: 1\n🔗 Suggested links to confirm: 1\n\
             Review them in the console: https://guild.example/issues"
        );

        // Claims need the OAuth2 and Battle.net clients too: not configured here.
        let claim = scene.command("602", peon(), command("claim", json!([]))).await;
        assert_eq!(claim["data"]["flags"], EPHEMERAL);
        assert_eq!(claim["data"]["content"], "Claims are not set up on this server.");

        let roles = command("roles", json!([{"type": 1, "name": "plan", "options": []}]));
        let refused = scene.command("603", peon(), roles.clone()).await;
        assert_eq!(refused["data"]["flags"], EPHEMERAL);
        assert!(refused["data"]["content"].as_str().unwrap().starts_with("Only officers"));
        let plan = scene.command("604", officer(), roles).await;
        assert_eq!(plan["data"]["flags"], EPHEMERAL);
        let text = plan["data"]["content"].as_str().unwrap();
        assert!(text.starts_with("**Role plan "), "{text}");
        assert!(text.ends_with("Review and approve it in the console: https://guild.example/roles"), "{text}");
        scene.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_slow_button_press_is_deferred_then_edits_the_report_message() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;
        let (suggestion, _) = seed_report_issues(&scene.db.pool, &scene.seeded).await;
        let sent = scene.send_report().await;

        // The suggestion's row is held elsewhere, so accepting it waits past the 2 s.
        let holder = scene
            .hold(
                "SELECT 1 FROM guild_identity.audit_issues WHERE id = $1 FOR UPDATE",
                suggestion,
            )
            .await;
        assert_eq!(
            scene
                .press(
                    "701",
                    officer(),
                    &button(&sent, "Link Jaina"),
                    &report_message(&sent)
                )
                .await,
            json!({"type": 6}),
            "deferred update"
        );
        holder.commit().await.unwrap();
        let edits = wait_for(&scene.discord, "/webhooks/", 1).await;
        assert_eq!(
            edits[0].0,
            "PATCH /webhooks/7000/token-701/messages/@original"
        );
        assert_eq!(
            edits[0].1["content"],
            "🔗 <@5001> linked **Jaina**-stormrage ↔ **jaina**."
        );
        assert_eq!(
            edits[0].1["components"].as_array().unwrap().len(),
            1,
            "the orphan's row stays"
        );
        scene.stop().await;
    })
    .await
}

#[tokio::test]
async fn serve_registers_the_commands_and_answers_them_over_its_gateway() {
    on_a_fresh_db(|db| async move {
        guild_sync::install_crypto_provider();
        let discord = fake_discord().await;
        let guild_create = json!({"id": GUILD, "name": "Guild", "roles": [], "members": []});
        let (url, _seen, live) = start_live_gateway(vec![("GUILD_CREATE", guild_create)]).await;
        let mut config = config(&discord);
        config.discord_gateway_url = Some(url);
        config.database_url = Some(Secret::new(db.url()));
        config.guild_sync_bind = "127.0.0.1:0".into();
        let database = guild_sync::database::Database::open(&config).await.unwrap();
        let shutdown = CancellationToken::new();
        let service = tokio::spawn({
            let (config, shutdown) = (config.clone(), shutdown.clone());
            async move { guild_sync::service::run(&config, database, shutdown).await }
        });

        let registered = wait_for(&discord, COMMANDS_PATH, 2).await;
        assert_eq!(registered[1].0, format!("PUT {COMMANDS_PATH}"));
        live.send(interaction(
            2,
            "801",
            peon(),
            command("audit", json!([])),
            None,
        ))
        .unwrap();
        let audit = callback(&discord, "801").await;
        assert_eq!(audit["type"], 4);
        assert!(
            audit["data"]["content"]
                .as_str()
                .unwrap()
                .starts_with("**0 open audit issues**")
        );

        shutdown.cancel();
        service.await.unwrap().unwrap();
    })
    .await
}

#[tokio::test]
async fn claim_is_registered_and_links_privately_to_the_claim_page_when_claims_are_configured() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |config| {
            config.discord_client_id = Some("7000".into());
            config.discord_client_secret = Some(Secret::new("oauth-secret"));
            config.blizzard_client_id = Some("bnet".into());
            config.blizzard_client_secret = Some(Secret::new("bnet-secret"));
            config.guild_sync_public_url = Some("https://guild.example/".into());
        })
        .await;
        let put = wait_for(&scene.discord, COMMANDS_PATH, 2).await.remove(1).1;
        assert!(put.as_array().unwrap().iter().any(|c| c["name"] == "claim"), "{put}");

        let claim = scene.command("901", peon(), command("claim", json!([]))).await;
        assert_eq!(claim["type"], 4);
        assert_eq!(claim["data"]["flags"], EPHEMERAL);
        assert_eq!(
            claim["data"]["content"],
            "Link your Battle.net characters to your Discord account here: https://guild.example/claim"
        );
        scene.stop().await;
    })
    .await
}

#[tokio::test]
async fn a_rate_limited_callback_is_sent_again_and_answers() {
    on_a_fresh_db(|db| async move {
        let scene = Scene::start(db, |_| {}).await;
        // Discord's 429, once, ahead of the fake's 204 for the callback.
        Mock::given(method("POST"))
            .and(path_regex(r"^/api/v10/interactions/\d+/[^/]+/callback$"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .insert_header("x-ratelimit-scope", "user")
                    .set_body_json(json!({"message": "You are being rate limited.",
                                          "retry_after": 0.05, "global": false})),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&scene.discord)
            .await;

        scene.deliver(interaction(
            2,
            "1001",
            peon(),
            command("audit", json!([])),
            None,
        ));
        let calls = wait_for(&scene.discord, "/interactions/1001/", 2).await;
        assert_eq!(calls.len(), 2, "refused once, then sent again: {calls:?}");
        assert_eq!(calls[0].1, calls[1].1, "the same answer both times");
        assert_eq!(calls[1].1["type"], 4);
        assert!(
            calls[1].1["data"]["content"]
                .as_str()
                .unwrap()
                .starts_with("**0 open audit issues**")
        );
        scene.stop().await;
    })
    .await
}
