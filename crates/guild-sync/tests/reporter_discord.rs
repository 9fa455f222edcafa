//! The reporter and the Discord sender against a real PostgreSQL and fake Discord endpoints
//! (wiremock speaking Discord's wire format): what is sent, when issues count as notified,
//! Discord's message limits, 429 handling, webhooks, and the text rendering.

mod common;

use std::time::Duration;

use guild_sync::config::Secret;
use guild_sync::discord_interactions::custom_id::ButtonId;
use guild_sync::discord_sender::{DiscordSender, MAX_ATTEMPTS};
use guild_sync::reporter::{render_text_report, send_new_issues_report, send_sync_summary};
use guild_sync_core::report::{
    MAX_DESCRIPTION_CHARS, MAX_EMBEDS_PER_MESSAGE, MAX_MESSAGE_CHARS, MAX_TITLE_CHARS, discord_len,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{on_a_fresh_db, on_a_fresh_db_within, within};

/// Check and report runs write thousands of rows on a shared machine.
const TWO_MINUTES: Duration = Duration::from_secs(120);

const CHANNEL: &str = "123456789012345678";
const CHANNEL_PATH: &str = "/channels/123456789012345678/messages";
const TOKEN: &str = "bot-token-do-not-log";

fn channel_sender(server: &MockServer) -> DiscordSender {
    DiscordSender::channel(&server.uri(), CHANNEL, Secret::new(TOKEN)).unwrap()
}

/// A Discord that accepts every message like the real API (200 with the created message).
async fn accepting_discord() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHANNEL_PATH))
        .and(header("authorization", format!("Bot {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1", "channel_id": CHANNEL})),
        )
        .mount(&server)
        .await;
    server
}

/// `n` issues spread over all seven types (`g % 7`), each with its own character, Discord user
/// and player, created a minute apart so the order is fixed.
async fn seed_issues(pool: &PgPool, first: i32, n: i32) {
    sqlx::query(
        "WITH g AS (SELECT generate_series($1, $1 + $2 - 1) AS g),
         wc AS (INSERT INTO guild_identity.wow_characters (character_name, realm_slug)
                SELECT 'Char' || g, 'area-52' FROM g RETURNING id, character_name),
         du AS (INSERT INTO guild_identity.discord_users (discord_id, username, display_name)
                SELECT (5000 + g)::text, 'user' || g, 'User ' || g FROM g RETURNING id, username),
         p AS (INSERT INTO guild_identity.players (display_name, discord_user_id)
               SELECT 'Player' || g, du.id FROM g JOIN du ON du.username = 'user' || g
               RETURNING id, display_name)
         INSERT INTO guild_identity.audit_issues
             (issue_type, severity, wow_character_id, discord_member_id, player_id, summary,
              details, issue_hash, created_at)
         SELECT t.name, t.sev, wc.id, du.id, p.id, 'Issue number ' || g,
                jsonb_build_object('reason', 'reason number ' || g), 'hash-' || g,
                '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 minute'
         FROM g
         JOIN wc ON wc.character_name = 'Char' || g
         JOIN du ON du.username = 'user' || g
         JOIN p ON p.display_name = 'Player' || g
         JOIN (VALUES (0, 'rank_mismatch', 'critical'), (1, 'duplicate_discord', 'critical'),
                      (2, 'orphan_discord', 'warning'), (3, 'orphan_wow', 'warning'),
                      (4, 'no_guild_role', 'warning'), (5, 'auto_link_suggestion', 'info'),
                      (6, 'stale_character', 'info')) AS t (k, name, sev) ON t.k = g % 7",
    )
    .bind(first)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

async fn notified(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE notified_at IS NOT NULL),
                count(*) FILTER (WHERE notified_at IS NULL)
         FROM guild_identity.audit_issues",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn assert_within_discord_limits(message: &Value) {
    let embeds = message["embeds"].as_array().unwrap();
    assert!(!embeds.is_empty() && embeds.len() <= MAX_EMBEDS_PER_MESSAGE);
    let mut total = 0;
    for embed in embeds {
        let title = embed["title"].as_str().unwrap();
        let description = embed["description"].as_str().unwrap();
        assert!(discord_len(title) <= MAX_TITLE_CHARS);
        assert!(discord_len(description) <= MAX_DESCRIPTION_CHARS);
        total += discord_len(title) + discord_len(description);
        for field in embed["fields"].as_array().into_iter().flatten() {
            total += discord_len(field["name"].as_str().unwrap())
                + discord_len(field["value"].as_str().unwrap());
        }
    }
    assert!(total <= MAX_MESSAGE_CHARS, "{total} characters");
}

#[tokio::test]
async fn test_only_new_issues_trigger_report() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let discord = accepting_discord().await;
        let sender = channel_sender(&discord);
        seed_issues(&db.pool, 1, 3).await;

        let first = send_new_issues_report(&db.pool, &sender, false)
            .await
            .unwrap();
        assert_eq!(
            (first.issues, first.messages_sent, first.issues_notified),
            (3, 1, 3)
        );

        let nothing_new = send_new_issues_report(&db.pool, &sender, false)
            .await
            .unwrap();
        assert_eq!((nothing_new.issues, nothing_new.messages_sent), (0, 0));
        assert_eq!(bodies(&discord).await.len(), 1, "no new issues → no report");

        seed_issues(&db.pool, 100, 1).await;
        let one_new = send_new_issues_report(&db.pool, &sender, false)
            .await
            .unwrap();
        assert_eq!((one_new.issues, one_new.messages_sent), (1, 1));
        let sent = bodies(&discord).await;
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[1]["embeds"][0]["description"]
                .as_str()
                .unwrap()
                .lines()
                .next(),
            Some("**1 new issue**")
        );

        // --full resends every unresolved issue, notified or not.
        let full = send_new_issues_report(&db.pool, &sender, true)
            .await
            .unwrap();
        assert_eq!(full.issues, 4);
    })
    .await;
}

#[tokio::test]
async fn a_report_of_200_issues_respects_every_discord_limit() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let discord = accepting_discord().await;
        seed_issues(&db.pool, 1, 200).await;

        let stats = send_new_issues_report(&db.pool, &channel_sender(&discord), false)
            .await
            .unwrap();

        let sent = bodies(&discord).await;
        assert_eq!(stats.messages_sent as usize, sent.len());
        assert!(sent.len() > 1, "200 issues need more than one message");
        for message in &sent {
            assert_within_discord_limits(message);
        }
        let embeds: Vec<&Value> = sent
            .iter()
            .flat_map(|m| m["embeds"].as_array().unwrap())
            .collect();
        assert_eq!(embeds.len(), 8, "a header and one embed per type");
        assert_eq!(notified(&db.pool).await, (200, 0));
        // Sent as the bot, suggestion and orphan lines carry buttons signed with this
        // database's key; the MACs differ per database (and ids per seeding plan), so the
        // snapshot shows both masked.
        let key = guild_sync::discord_interactions::custom_id::button_key(&db.pool)
            .await
            .unwrap();
        let mut sent = sent;
        let mut buttons = 0;
        for message in &mut sent {
            for row in message["components"].as_array_mut().into_iter().flatten() {
                for button in row["components"].as_array_mut().unwrap() {
                    let id = button["custom_id"].as_str().unwrap();
                    assert!(ButtonId::verify(id, &key).is_some(), "{id}");
                    let (act, _) = id.split_once('.').unwrap();
                    button["custom_id"] = json!(format!("{act}.<issue>.<mac>"));
                    buttons += 1;
                }
            }
        }
        assert!(buttons > 0, "the report carries buttons");
        insta::assert_json_snapshot!("report_200_issues", sent);
    })
    .await;
}

#[tokio::test]
async fn a_send_that_fails_leaves_the_issues_unnotified() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let discord = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(500)
                    .set_body_json(json!({"message": "500: Internal Server Error", "code": 0})),
            )
            .mount(&discord)
            .await;
        seed_issues(&db.pool, 1, 30).await;

        let err = send_new_issues_report(&db.pool, &channel_sender(&discord), false)
            .await
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("500"), "{message}");
        assert!(!message.contains(TOKEN), "{message}");
        assert_eq!(notified(&db.pool).await, (0, 30));
        let status: String = sqlx::query_scalar(
            "SELECT status FROM guild_identity.sync_log WHERE source = 'report'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(status, "error");
    })
    .await;
}

#[tokio::test]
async fn only_the_messages_discord_accepted_mark_their_issues_notified() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        let discord = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&discord)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&discord)
            .await;
        seed_issues(&db.pool, 1, 200).await;

        send_new_issues_report(&db.pool, &channel_sender(&discord), false)
            .await
            .unwrap_err();

        let first = &bodies(&discord).await[0];
        let types_in_first: Vec<&str> = first["embeds"].as_array().unwrap()[1..]
            .iter()
            .map(|e| e["title"].as_str().unwrap())
            .collect();
        let (done, pending) = notified(&db.pool).await;
        assert!(
            done > 0 && pending > 0,
            "{done} notified, {pending} pending ({types_in_first:?})"
        );
        // The next report picks up exactly the ones that were not sent.
        let discord_ok = accepting_discord().await;
        let retry = send_new_issues_report(&db.pool, &channel_sender(&discord_ok), false)
            .await
            .unwrap();
        assert_eq!(retry.issues as i64, pending);
        assert_eq!(notified(&db.pool).await, (200, 0));
    })
    .await;
}

#[tokio::test]
async fn the_sender_posts_to_a_channel_as_the_bot() {
    within(TWO_MINUTES, async {
        let discord = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(CHANNEL_PATH))
            .and(header("authorization", format!("Bot {TOKEN}").as_str()))
            .and(body_partial_json(json!({"embeds": [{"title": "hello"}]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
            .expect(1)
            .mount(&discord)
            .await;
        channel_sender(&discord)
            .send(&json!({"embeds": [{"title": "hello", "description": "d"}]}))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_sender_posts_to_a_webhook_and_waits_for_the_message() {
    within(TWO_MINUTES, async {
        let discord = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/webhooks/42/secret-webhook-token"))
            .and(query_param("wait", "true"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
            .expect(1)
            .mount(&discord)
            .await;
        let url = format!("{}/api/webhooks/42/secret-webhook-token", discord.uri());
        let sender = DiscordSender::webhook(Secret::new(url)).unwrap();
        sender
            .send(&json!({"embeds": [{"title": "t"}]}))
            .await
            .unwrap();
        let requests = discord.received_requests().await.unwrap();
        assert!(requests[0].headers.get("authorization").is_none());

        // A failure names neither the URL nor its token.
        let refusing = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(json!({"message": "Unknown Webhook", "code": 10015})),
            )
            .mount(&refusing)
            .await;
        let url = format!("{}/api/webhooks/42/secret-webhook-token", refusing.uri());
        let err = DiscordSender::webhook(Secret::new(url))
            .unwrap()
            .send(&json!({"embeds": []}))
            .await
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("Unknown Webhook"), "{message}");
        assert!(!message.contains("secret-webhook-token"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn the_sender_waits_out_a_429_from_the_header_or_the_body() {
    let limited = [
        ResponseTemplate::new(429).insert_header("retry-after", "0.05"),
        ResponseTemplate::new(429).set_body_json(
            json!({"message": "You are being rate limited.", "retry_after": 0.05, "global": false}),
        ),
    ];
    within(TWO_MINUTES, async {
        for response in limited {
            let discord = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .up_to_n_times(1)
                .with_priority(1)
                .mount(&discord)
                .await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1"})))
                .mount(&discord)
                .await;
            channel_sender(&discord)
                .send(&json!({"embeds": [{"title": "t"}]}))
                .await
                .unwrap();
            assert_eq!(discord.received_requests().await.unwrap().len(), 2);
        }
    })
    .await;
}

#[tokio::test]
async fn the_sender_gives_up_after_a_bounded_number_of_429s() {
    within(TWO_MINUTES, async {
        let discord = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0.01"))
            .mount(&discord)
            .await;
        let err = channel_sender(&discord)
            .send(&json!({"embeds": [{"title": "t"}]}))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("429"), "{err:#}");
        assert_eq!(
            discord.received_requests().await.unwrap().len(),
            MAX_ATTEMPTS as usize
        );
    })
    .await;
}

#[tokio::test]
async fn a_sync_summary_is_sent_only_when_something_notable_happened() {
    within(TWO_MINUTES, async {
        let discord = accepting_discord().await;
        let sender = channel_sender(&discord);
        let quiet = json!({"characters_found": 1000, "characters_new": 0, "characters_removed": 0});
        let busy = json!({"characters_found": 1000, "characters_new": 3, "characters_removed": 1});
        assert!(
            !send_sync_summary(&sender, "blizzard", &quiet, Duration::from_secs(2))
                .await
                .unwrap()
        );
        assert!(
            send_sync_summary(&sender, "blizzard", &busy, Duration::from_secs(2))
                .await
                .unwrap()
        );
        let sent = bodies(&discord).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["embeds"][0]["title"], "🔄 Sync summary: blizzard");
        assert_within_discord_limits(&sent[0]);
    })
    .await;
}

#[tokio::test]
async fn the_text_report_lists_every_issue_with_current_names() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        seed_issues(&db.pool, 1, 30).await;
        // A renamed character shows under its current name; a deleted one falls back to the
        // summary the checker wrote.
        sqlx::query("UPDATE guild_identity.wow_characters SET character_name = 'Renamed' WHERE character_name = 'Char3'")
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM guild_identity.wow_characters WHERE character_name = 'Char10'")
            .execute(&db.pool)
            .await
            .unwrap();
        let text = render_text_report(&db.pool, false).await.unwrap();
        assert!(text.contains("Renamed-area-52 — reason number 3"), "{text}");
        assert!(text.contains("• Issue number 10"), "{text}");
        insta::assert_snapshot!("text_report_30_issues", text);
        // Printing marks nothing notified.
        assert_eq!(notified(&db.pool).await, (0, 30));
    })
    .await;
}

#[tokio::test]
async fn the_report_command_prints_with_stdout_and_refuses_without_a_destination() {
    on_a_fresh_db_within(TWO_MINUTES, |db| async move {
        seed_issues(&db.pool, 1, 2).await;
        let binary = env!("CARGO_BIN_EXE_guild-sync");
        let printed = tokio::process::Command::new(binary)
            .args(["report", "--stdout"])
            .env("DATABASE_URL", db.url())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&printed.stdout);
        assert!(
            printed.status.success(),
            "{}",
            String::from_utf8_lossy(&printed.stderr)
        );
        assert!(
            stdout.contains("Guild audit report — 2 new issues"),
            "{stdout}"
        );

        let refused = tokio::process::Command::new(binary)
            .arg("report")
            .env("DATABASE_URL", db.url())
            .env_remove("DISCORD_BOT_TOKEN")
            .env_remove("DISCORD_AUDIT_CHANNEL_ID")
            .env_remove("DISCORD_WEBHOOK_URL")
            .current_dir(std::env::temp_dir())
            .output()
            .await
            .unwrap();
        assert_eq!(refused.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("no Discord destination configured"),
            "{stderr}"
        );

        let discord = accepting_discord().await;
        let sent = tokio::process::Command::new(binary)
            .args(["report", "--json"])
            .env("DATABASE_URL", db.url())
            .env("DISCORD_BOT_TOKEN", TOKEN)
            .env("DISCORD_AUDIT_CHANNEL_ID", CHANNEL)
            .env("DISCORD_API_URL", discord.uri())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&sent.stdout);
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
        assert!(!stdout.contains(TOKEN));
        let stats: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(stats["issues_notified"], 2);
        assert_eq!(bodies(&discord).await.len(), 1);
    })
    .await;
}

/// Names reach officers in two forms. Stored names may predate the parse-boundary cleaning, so
/// the report itself must be safe: no escape or bell characters on the terminal, one line per
/// issue whatever newline a `global_name` holds, and no clickable link in the embed.
#[tokio::test]
async fn control_characters_and_links_in_names_are_neutralised_in_text_and_embeds() {
    on_a_fresh_db(|db| async move {
        seed_issues(&db.pool, 1, 7).await;
        // user2's issue is the orphan_discord one, titled by the Discord display name.
        sqlx::query(
            "UPDATE guild_identity.discord_users SET display_name = $1 WHERE username = 'user2'",
        )
        .bind("\u{1b}[2J\u{7}Boss\nFAKE LINE https://evil.example/login")
        .execute(&db.pool)
        .await
        .unwrap();

        let printed = tokio::process::Command::new(env!("CARGO_BIN_EXE_guild-sync"))
            .args(["report", "--stdout"])
            .env("DATABASE_URL", db.url())
            .output()
            .await
            .unwrap();
        assert!(
            printed.status.success(),
            "{}",
            String::from_utf8_lossy(&printed.stderr)
        );
        let stdout = String::from_utf8(printed.stdout).unwrap();
        assert!(
            !stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{stdout:?}"
        );
        let boss: Vec<&str> = stdout.lines().filter(|l| l.contains("Boss")).collect();
        assert_eq!(boss.len(), 1, "{stdout}");
        assert!(boss[0].contains("FAKE LINE"), "{stdout}");
        assert!(
            !stdout.lines().any(|l| l.trim_start().starts_with("FAKE")),
            "{stdout}"
        );

        let discord = accepting_discord().await;
        send_new_issues_report(&db.pool, &channel_sender(&discord), false)
            .await
            .unwrap();
        let sent = bodies(&discord).await;
        let descriptions: Vec<&str> = sent
            .iter()
            .flat_map(|m| m["embeds"].as_array().unwrap())
            .filter_map(|e| e["description"].as_str())
            .filter(|d| d.contains("Boss"))
            .collect();
        assert_eq!(descriptions.len(), 1);
        let line = descriptions[0]
            .lines()
            .find(|l| l.contains("Boss"))
            .unwrap();
        assert!(line.contains("FAKE LINE"), "{}", descriptions[0]);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(!line.contains("https://"), "{line}");
    })
    .await;
}
