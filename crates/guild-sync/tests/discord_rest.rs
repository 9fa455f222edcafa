//! The live member sync against a fake Discord REST API (wiremock on a local port, reached by
//! the real twilight-http client through `DISCORD_API_URL`): paging, the bot token, and a fetch
//! that fails part-way.

mod common;

use guild_sync::config::{Config, RemovalGuard, Secret};
use guild_sync::db::discord_users;
use guild_sync::discord_sync::{self, DiscordInput};
use guild_sync::testing::TestDb;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{last_run_of, on_a_fresh_db};

const GUILD: &str = "4242";
const MEMBERS_PATH: &str = "/api/v10/guilds/4242/members";

fn config(server: &MockServer) -> Config {
    let mut config = Config::defaults();
    config.discord_bot_token = Some(Secret::new("test-token"));
    config.discord_guild_id = Some(GUILD.into());
    config.discord_api_url = format!("{}/api/v10", server.uri());
    config
}

fn guard() -> RemovalGuard {
    RemovalGuard {
        max_fraction: 0.5,
        allow_mass_removal: false,
    }
}

/// A member as Discord's REST API returns it (with the fields guild-sync ignores).
fn api_member(id: u64) -> Value {
    json!({
        "user": {"id": id.to_string(), "username": format!("user{id}"), "global_name": null,
                 "avatar": null, "discriminator": "0", "public_flags": 0},
        "nick": if id.is_multiple_of(2) { Value::from(format!("Nick{id}")) } else { Value::Null },
        "roles": if id.is_multiple_of(3) { json!(["77"]) } else { json!([]) },
        "joined_at": "2023-01-02T03:04:05.678000+00:00",
        "deaf": false, "mute": false, "flags": 0, "pending": false, "premium_since": null
    })
}

async fn mount_roles(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v10/guilds/4242/roles"))
        .and(header("authorization", "Bot test-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "4242", "name": "@everyone", "position": 0, "color": 0, "permissions": "0"},
            {"id": "77", "name": "member", "position": 3, "color": 0, "permissions": "0"}
        ])))
        .mount(server)
        .await;
}

/// A fake Discord answering the guild's roles (and the crypto provider its client needs).
async fn discord_server() -> MockServer {
    guild_sync::install_crypto_provider();
    let server = MockServer::start().await;
    mount_roles(&server).await;
    server
}

/// A live member sync of the test database against `server`.
async fn live_sync(
    db: &TestDb,
    server: &MockServer,
) -> anyhow::Result<discord_sync::DiscordSyncStats> {
    discord_sync::run(&db.pool, &config(server), DiscordInput::Live, guard()).await
}

/// The request for the second page of members (the first page ends at id 100999).
fn page_two() -> wiremock::MockBuilder {
    Mock::given(method("GET"))
        .and(path(MEMBERS_PATH))
        .and(query_param("after", "100999"))
}

/// Discord's answer to a request it failed on.
fn server_error() -> ResponseTemplate {
    ResponseTemplate::new(500)
        .set_body_json(json!({"message": "500: Internal Server Error", "code": 0}))
}

/// Serve `ids` as Discord does: 1,000 per page, ascending, continuing `after` the last id.
async fn mount_member_pages(server: &MockServer, ids: &[u64]) {
    let pages: Vec<&[u64]> = ids.chunks(1000).collect();
    for (n, page) in pages.iter().enumerate() {
        let body: Vec<Value> = page.iter().copied().map(api_member).collect();
        let mock = Mock::given(method("GET"))
            .and(path(MEMBERS_PATH))
            .and(query_param("limit", "1000"))
            .and(header("authorization", "Bot test-token"));
        let mock = if n == 0 {
            mock.and(query_param_is_missing("after"))
        } else {
            mock.and(query_param(
                "after",
                pages[n - 1].last().unwrap().to_string(),
            ))
        };
        mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(1)
            .mount(server)
            .await;
    }
    if ids.len().is_multiple_of(1000) {
        // A full last page: Discord answers the next request with an empty page.
        Mock::given(method("GET"))
            .and(path(MEMBERS_PATH))
            .and(query_param("after", ids.last().unwrap().to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(1)
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn a_live_sync_fetches_every_page_of_members() {
    on_a_fresh_db(|db| async move {
        let server = discord_server().await;
        let ids: Vec<u64> = (100_000..102_500).collect();
        mount_member_pages(&server, &ids).await;

        let stats = live_sync(&db, &server).await.unwrap();
        assert_eq!((stats.found, stats.new), (2500, 2500));
        let rows = discord_users::all(&db.pool).await.unwrap();
        assert_eq!(rows.len(), 2500);
        let row = discord_users::get(&db.pool, "102499")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.display_name.as_deref(), Some("user102499"));
        let row = discord_users::get(&db.pool, "101001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.all_guild_roles, vec!["Member"], "role 77 is 'member'");
        server.verify().await;
    })
    .await
}

#[tokio::test]
async fn a_list_ending_on_a_full_page_asks_for_one_more() {
    on_a_fresh_db(|db| async move {
        let server = discord_server().await;
        let ids: Vec<u64> = (500_000..502_000).collect();
        mount_member_pages(&server, &ids).await;
        let stats = live_sync(&db, &server).await.unwrap();
        assert_eq!(stats.found, 2000);
        server.verify().await;
    })
    .await
}

#[tokio::test]
async fn a_fetch_failing_on_page_two_marks_nobody_departed() {
    on_a_fresh_db(|db| async move {
        guild_sync::install_crypto_provider();
        // Members already known, all of whom sit on pages after the first.
        let known: Vec<Value> = (101_500..101_510).map(api_member).collect();
        discord_sync::run(
            &db.pool,
            &Config::defaults(),
            DiscordInput::Snapshot(
                serde_json::from_value(json!({"roles": [], "members": known})).unwrap(),
            ),
            guard(),
        )
        .await
        .unwrap();

        let server = discord_server().await;
        let first: Vec<Value> = (100_000..101_000).map(api_member).collect();
        Mock::given(method("GET"))
            .and(path(MEMBERS_PATH))
            .and(query_param_is_missing("after"))
            .respond_with(ResponseTemplate::new(200).set_body_json(first))
            .mount(&server)
            .await;
        page_two().respond_with(server_error()).mount(&server).await;

        let err = live_sync(&db, &server).await.unwrap_err();
        assert!(format!("{err:#}").contains("page 2"), "{err:#}");

        let rows = discord_users::all(&db.pool).await.unwrap();
        assert_eq!(rows.len(), 10, "nothing from the partial fetch is written");
        assert!(
            rows.iter().all(|r| r.is_present),
            "nobody is marked departed"
        );
        let (status, error) = last_run_of(&db.pool, "discord").await;
        assert_eq!(status, "error");
        assert!(error.unwrap().contains("page 2"));
    })
    .await
}

#[tokio::test]
async fn a_malformed_api_url_or_missing_token_is_a_clear_error() {
    on_a_fresh_db(|db| async move {
        let cases = [
            (None, "http://127.0.0.1:1/api/v10", "DISCORD_BOT_TOKEN"),
            (Some("t"), "http://127.0.0.1:1/v9", "/api/v10"),
            (Some("t"), "ftp://127.0.0.1/api/v10", "scheme"),
        ];
        for (token, url, expected) in cases {
            let mut config = Config::defaults();
            config.discord_bot_token = token.map(Secret::new);
            config.discord_guild_id = Some(GUILD.into());
            config.discord_api_url = url.into();
            let err = discord_sync::run(&db.pool, &config, DiscordInput::Live, guard())
                .await
                .unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{url}: {err:#}");
        }
    })
    .await
}

/// One 500 on page 2 used to fail the whole sync; it is retried with backoff like the
/// Battle.net client's requests, and so is a 429 carrying Discord's `retry_after`.
#[tokio::test]
async fn a_500_and_a_429_on_page_two_are_retried_and_the_sync_completes() {
    on_a_fresh_db(|db| async move {
        let server = discord_server().await;
        let ids: Vec<u64> = (100_000..101_500).collect();
        page_two()
            .respond_with(server_error())
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        page_two()
            .respond_with(ResponseTemplate::new(429).set_body_json(
                json!({"message": "You are being rate limited.", "retry_after": 0.05, "global": false}),
            ))
            .up_to_n_times(1)
            .with_priority(2)
            .mount(&server)
            .await;
        mount_member_pages(&server, &ids).await;

        let stats = live_sync(&db, &server)
            .await
            .expect("the sync completes after the retries");
        assert_eq!((stats.found, stats.new), (1500, 1500));
        let page_two_requests = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.query().is_some_and(|q| q.contains("after=100999")))
            .count();
        assert_eq!(page_two_requests, 3, "a 500, a 429, then the page");
    })
    .await
}
