//! The live Battle.net client against a local fake Battle.net (wiremock) speaking the real wire
//! formats: the token flow and its renewal, roster parsing, 404 profiles, 429 with
//! `Retry-After`, 5xx retries, accented names, and a whole live sync into PostgreSQL.

mod blizzard_support;
mod common;

use std::time::Duration;

use blizzard_support::{REALM, member, profile_json, roster_json};
use guild_sync::blizzard_client::{BlizzardClient, BlizzardSettings, ProfileFetch};
use guild_sync::config::{Config, Secret};
use guild_sync::db_sync::{self, BlizzardInput};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{on_a_fresh_db, within_a_minute};

const ROSTER_PATH: &str = "/data/wow/guild/senjin/pull-all-the-things/roster";

fn settings(server: &MockServer) -> BlizzardSettings {
    BlizzardSettings {
        api_base: server.uri(),
        oauth_url: format!("{}/oauth/token", server.uri()),
        client_id: "client".into(),
        client_secret: Secret::new("s3cret"),
        region: "eu".into(),
        locale: "en_US".into(),
        realm_slug: REALM.into(),
        guild_slug: "pull-all-the-things".into(),
        requests_per_second: 1000,
        hourly_budget: 36_000,
        max_retries: 3,
        base_backoff: Duration::from_millis(20),
    }
}

/// A token endpoint handing out `token` valid for `expires_in` seconds.
async fn token_endpoint(server: &MockServer, token: &str, expires_in: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        // base64("client:s3cret")
        .and(header("authorization", "Basic Y2xpZW50OnMzY3JldA=="))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in}),
        ))
        .mount(server)
        .await;
}

fn profile_route(name_in_path: &str) -> String {
    format!("/profile/wow/character/{REALM}/{name_in_path}")
}

async fn requests_to(server: &MockServer, route: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == route)
        .count()
}

#[tokio::test]
async fn the_roster_is_fetched_with_a_token_namespace_and_locale_and_parsed() {
    within_a_minute(async {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok", 3600).await;
        Mock::given(method("GET"))
            .and(path(ROSTER_PATH))
            .and(query_param("namespace", "profile-eu"))
            .and(query_param("locale", "en_US"))
            .and(header("authorization", "Bearer tok"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(roster_json(&[member(1, "Moonfire"), member(2, "Zatañña")])),
            )
            .mount(&server)
            .await;
        let client = BlizzardClient::new(settings(&server)).unwrap();
        let roster = client.roster().await.unwrap();
        assert_eq!(roster.guild.name, "Pull All The Things");
        assert_eq!(roster.guild.realm.name.as_deref(), Some("Sen'jin"));
        let names: Vec<_> = roster
            .members
            .iter()
            .map(|m| m.character.name.as_str())
            .collect();
        assert_eq!(names, ["Moonfire", "Zatañña"]);
        assert_eq!(
            roster.members[0]
                .character
                .playable_class
                .as_ref()
                .unwrap()
                .id,
            Some(11)
        );
        // One token for the whole run.
        assert_eq!(requests_to(&server, "/oauth/token").await, 1);
    })
    .await;
}

#[tokio::test]
async fn the_token_is_reused_until_near_expiry_then_renewed() {
    within_a_minute(async {
        for (expires_in, tokens_expected) in [(3600, 1), (0, 3)] {
            let server = MockServer::start().await;
            token_endpoint(&server, "tok", expires_in).await;
            Mock::given(method("GET"))
                .and(path(profile_route("moonfire")))
                .and(header("authorization", "Bearer tok"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(profile_json(&member(1, "Moonfire"))),
                )
                .mount(&server)
                .await;
            let client = BlizzardClient::new(settings(&server)).unwrap();
            for _ in 0..3 {
                assert!(matches!(
                    client.profile(REALM, "Moonfire").await,
                    ProfileFetch::Found(_)
                ));
            }
            assert_eq!(
                requests_to(&server, "/oauth/token").await,
                tokens_expected,
                "expires_in {expires_in}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_retries() {
    within_a_minute(async {
        let server = MockServer::start().await;
        // The first token handed out is already revoked server-side; the second works.
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "revoked", "expires_in": 3600})),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        token_endpoint(&server, "fresh", 3600).await;
        Mock::given(method("GET"))
            .and(header("authorization", "Bearer revoked"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(profile_route("moonfire")))
            .and(header("authorization", "Bearer fresh"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(profile_json(&member(1, "Moonfire"))),
            )
            .mount(&server)
            .await;
        let client = BlizzardClient::new(settings(&server)).unwrap();
        assert!(matches!(
            client.profile(REALM, "Moonfire").await,
            ProfileFetch::Found(_)
        ));
        assert!(matches!(
            client.profile(REALM, "Moonfire").await,
            ProfileFetch::Found(_)
        ));
        assert_eq!(requests_to(&server, "/oauth/token").await, 2);
    })
    .await;
}

#[tokio::test]
async fn a_rejected_client_secret_is_a_clear_error() {
    within_a_minute(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
            )
            .mount(&server)
            .await;
        let err = BlizzardClient::new(settings(&server))
            .unwrap()
            .roster()
            .await
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("BLIZZARD_CLIENT_SECRET"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn a_404_profile_is_not_found_not_a_failure() {
    within_a_minute(async {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok", 3600).await;
        Mock::given(method("GET"))
            .and(path(profile_route("ghost")))
            .respond_with(ResponseTemplate::new(404).set_body_json(
                json!({"code": 404, "type": "BLZWEBAPI00000404", "detail": "Not Found"}),
            ))
            .mount(&server)
            .await;
        let client = BlizzardClient::new(settings(&server)).unwrap();
        assert_eq!(client.profile(REALM, "Ghost").await, ProfileFetch::NotFound);
        assert_eq!(requests_to(&server, &profile_route("ghost")).await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_delay() {
    within_a_minute(async {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok", 3600).await;
        Mock::given(method("GET"))
            .and(path(profile_route("moonfire")))
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(profile_route("moonfire")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(profile_json(&member(1, "Moonfire"))),
            )
            .mount(&server)
            .await;
        let client = BlizzardClient::new(settings(&server)).unwrap();
        let fetched = client.profile(REALM, "Moonfire").await;
        assert!(matches!(fetched, ProfileFetch::Found(_)), "{fetched:?}");
        let hits: Vec<_> = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == profile_route("moonfire"))
            .collect();
        assert_eq!(hits.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_500_that_succeeds_on_retry_is_fetched_and_a_persistent_one_gives_up_after_3_retries() {
    within_a_minute(async {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok", 3600).await;
        Mock::given(method("GET"))
            .and(path(profile_route("flaky")))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(profile_route("flaky")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(profile_json(&member(1, "Flaky"))),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(profile_route("broken")))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let client = BlizzardClient::new(settings(&server)).unwrap();
        assert!(matches!(
            client.profile(REALM, "Flaky").await,
            ProfileFetch::Found(_)
        ));
        assert_eq!(requests_to(&server, &profile_route("flaky")).await, 2);
        let broken = client.profile(REALM, "Broken").await;
        assert!(
            matches!(&broken, ProfileFetch::Failed(why) if why.contains("503")),
            "{broken:?}"
        );
        assert_eq!(requests_to(&server, &profile_route("broken")).await, 4);
    })
    .await;
}

#[tokio::test]
async fn an_accented_name_is_lowercased_and_percent_encoded() {
    within_a_minute(async {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok", 3600).await;
        Mock::given(method("GET"))
            .and(path(profile_route("zata%C3%B1%C3%B1a")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(profile_json(&member(7, "Zatañña"))),
            )
            .mount(&server)
            .await;
        let client = BlizzardClient::new(settings(&server)).unwrap();
        match client.profile(REALM, "Zatañña").await {
            ProfileFetch::Found(profile) => assert_eq!(profile.fields.name, "Zatañña"),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_live_sync_writes_the_guild_and_keeps_404_and_failed_characters() {
    on_a_fresh_db(|db| async move {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok", 3600).await;
        let members = [member(1, "Moonfire"), member(2, "Zatañña"), member(3, "Ghost"), member(4, "Broken")];
        Mock::given(method("GET"))
            .and(path(ROSTER_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(roster_json(&members)))
            .mount(&server)
            .await;
        for (m, route) in [(&members[0], "moonfire"), (&members[1], "zata%C3%B1%C3%B1a")] {
            Mock::given(method("GET"))
                .and(path(profile_route(route)))
                .respond_with(ResponseTemplate::new(200).set_body_json(profile_json(m)))
                .mount(&server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path(profile_route("ghost")))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(profile_route("broken")))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;

        let mut config = Config::defaults();
        config.blizzard_client_id = Some("client".into());
        config.blizzard_client_secret = Some(Secret::new("s3cret"));
        config.blizzard_api_url = Some(server.uri());
        config.blizzard_oauth_url = format!("{}/oauth/token", server.uri());
        config.guild_realm_slug = Some(REALM.into());
        config.guild_name_slug = Some("pull-all-the-things".into());
        config.blizzard_requests_per_second = 1000;
        let guard = guild_sync::config::RemovalGuard::from_config(&config, false);
        let stats = db_sync::run(&db.pool, &config, BlizzardInput::Live, guard, false)
            .await
            .unwrap();
        assert_eq!(
            (stats.found, stats.new, stats.profiles_fetched, stats.profiles_not_found, stats.profiles_failed),
            (4, 4, 2, 1, 1)
        );
        let in_guild: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.wow_characters WHERE removed_at IS NULL AND class_id IS NOT NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(in_guild, 4);
        let status: String =
            sqlx::query_scalar("SELECT status FROM guild_identity.sync_log WHERE source = 'blizzard'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(status, "partial");
    })
    .await;
}

#[test]
fn missing_live_settings_are_named() {
    let err = BlizzardSettings::from_config(&Config::defaults()).unwrap_err();
    let message = err.to_string();
    for name in [
        "BLIZZARD_CLIENT_ID",
        "BLIZZARD_CLIENT_SECRET",
        "GUILD_REALM_SLUG",
        "GUILD_NAME_SLUG",
    ] {
        assert!(message.contains(name), "{message}");
    }
}

/// A Battle.net that allows `limit` requests in any one-second window and answers 429 (without
/// `Retry-After`) beyond it: a limit below the client's configured rate, as with a client id
/// shared by two services.
struct LimitedServer {
    limit: usize,
    recent: std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>,
    refused: std::sync::atomic::AtomicUsize,
}

impl wiremock::Respond for LimitedServer {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let now = std::time::Instant::now();
        let mut recent = self.recent.lock().unwrap();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        if recent.len() >= self.limit {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return ResponseTemplate::new(429);
        }
        recent.push_back(now);
        let name = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("x")
            .to_string();
        ResponseTemplate::new(200).set_body_json(profile_json(&member(1, &name)))
    }
}

/// At a server limit of 20 requests/s, 78 of 300 profiles used to fail: every request kept
/// going at the configured rate and ran out of retries. The client now halves its pace while it
/// keeps seeing 429s, so every profile arrives.
#[tokio::test]
async fn a_client_that_keeps_seeing_429s_slows_down_until_every_profile_arrives() {
    within_a_minute(async {
        let server = MockServer::start().await;
        token_endpoint(&server, "tok", 3600).await;
        let limited = std::sync::Arc::new(LimitedServer {
            limit: 20,
            recent: Default::default(),
            refused: Default::default(),
        });
        Mock::given(method("GET"))
            .and(wiremock::matchers::path_regex(r"^/profile/wow/character/"))
            .respond_with(ArcResponder(limited.clone()))
            .mount(&server)
            .await;
        // The production rate and backoff, as in the failing run.
        let mut settings = settings(&server);
        settings.requests_per_second = 100;
        settings.base_backoff = guild_sync::blizzard_client::BASE_BACKOFF;
        let client = BlizzardClient::new(settings).unwrap();
        let members: Vec<_> = (0..150).map(|i| member(i, &format!("Char{i}"))).collect();
        let roster =
            guild_sync::blizzard_client::parse_roster(roster_json(&members).to_string().as_bytes())
                .unwrap();
        let profiles = client.profiles(&roster, || {}).await;
        let failed: Vec<_> = profiles
            .iter()
            .filter(|p| !matches!(p, ProfileFetch::Found(_)))
            .collect();
        assert!(
            failed.is_empty(),
            "{} of 150 failed: {:?}",
            failed.len(),
            failed.first()
        );
        assert!(
            limited.refused.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "the server did refuse requests"
        );
        let pace = client.adaptive_pace().expect("the client slowed down");
        assert!(pace < 100.0, "{pace} requests/s");
    })
    .await;
}

struct ArcResponder(std::sync::Arc<LimitedServer>);

impl wiremock::Respond for ArcResponder {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        self.0.respond(request)
    }
}
