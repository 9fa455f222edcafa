//! What the claim tests share: a small guild seeded for the three claim scenarios (a member
//! with 3 guild characters and 2 outside it, a fuzzy-linked character, a manual link), the
//! service with Discord and Battle.net pointed at the bundled fake providers, and a minimal
//! cookie-keeping HTTP client that follows redirects like a browser (for the refusal tests,
//! which need to stop at a callback and change it).

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use guild_sync::claims::fake_providers::{
    FakeBattlenetAccount, FakeCharacter, FakeDiscordUser, FakeProviders,
};
use guild_sync::config::{Config, Secret};
use guild_sync::testing::TestDb;
use reqwest::StatusCode;
use sqlx::PgPool;

pub const REALM: &str = "ravencrest";
pub const ADMIN_TOKEN: &str = "claims-admin-token-0123456789";
/// Configured, so tests can forge states (expired ones) the service accepts as genuine.
pub const SIGNING_SECRET: &str = "claims-test-signing-secret-0123456789abcdef";

pub const AELRIC: &str = "200000000000000001";
pub const DAG: &str = "200000000000000002";
pub const FRANK: &str = "200000000000000003";
pub const STRANGER: &str = "200000000000000004";
pub const OSRIC: &str = "200000000000000005";
pub const EVE: &str = "200000000000000006";
pub const GWEN: &str = "200000000000000007";

/// The seeded guild's ids.
pub struct Guild {
    pub aelric_chars: [i32; 3],
    pub dagny: i32,
    pub eluned: i32,
    pub dag_player: i32,
    pub frank_player: i32,
}

async fn character(pool: &PgPool, name: &str, blizzard_id: i64, level: i32, rank: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.wow_characters
             (character_name, realm_slug, blizzard_id, level, guild_rank_id)
         VALUES ($1, $2, $3, $4, (SELECT id FROM common.guild_ranks WHERE name = $5))
         RETURNING id",
    )
    .bind(name)
    .bind(REALM)
    .bind(blizzard_id)
    .bind(level)
    .bind(rank)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn discord_user(pool: &PgPool, discord_id: &str, username: &str, present: bool) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users
             (discord_id, username, display_name, highest_guild_role, all_guild_roles, is_present)
         VALUES ($1, $2, $2, 'Member', '{Member}', $3) RETURNING id",
    )
    .bind(discord_id)
    .bind(username)
    .bind(present)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn player_with(pool: &PgPool, name: &str, discord: i32, character: i32, source: &str) -> i32 {
    let player = guild_sync::testing::seed::player(pool, name, Some(discord)).await;
    let confidence = if source == "manual" {
        "confirmed"
    } else {
        "medium"
    };
    sqlx::query(
        "INSERT INTO guild_identity.player_characters (player_id, character_id, link_source, confidence)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(player)
    .bind(character)
    .bind(source)
    .bind(confidence)
    .execute(pool)
    .await
    .unwrap();
    player
}

/// The guild: Aelric's three characters unlinked; Dagny fuzzy-linked to Dag; Eluned linked by
/// hand to Frank; Osric an officer; Eve and Gwen members without players; a stranger who left
/// the server.
pub async fn seed(pool: &PgPool) -> Guild {
    let aelric_chars = [
        character(pool, "Aelric", 1001, 80, "Member").await,
        character(pool, "Brynja", 1002, 70, "Member").await,
        character(pool, "Corvin", 1003, 60, "Member").await,
    ];
    let dagny = character(pool, "Dagny", 1004, 80, "Member").await;
    let eluned = character(pool, "Eluned", 1005, 75, "Member").await;
    let osric = character(pool, "Osric", 1006, 80, "Officer").await;
    discord_user(pool, AELRIC, "aelric", true).await;
    let dag = discord_user(pool, DAG, "dag", true).await;
    let frank = discord_user(pool, FRANK, "frank", true).await;
    discord_user(pool, STRANGER, "stranger", false).await;
    let osric_user = discord_user(pool, OSRIC, "osric", true).await;
    discord_user(pool, EVE, "eve", true).await;
    discord_user(pool, GWEN, "gwen", true).await;
    let dag_player = player_with(pool, "Dag", dag, dagny, "fuzzy_name").await;
    let frank_player = player_with(pool, "Frank", frank, eluned, "manual").await;
    player_with(pool, "Osric", osric_user, osric, "manual").await;
    Guild {
        aelric_chars,
        dagny,
        eluned,
        dag_player,
        frank_player,
    }
}

pub fn discord(id: &str, username: &str) -> FakeDiscordUser {
    FakeDiscordUser {
        id: id.to_string(),
        username: username.to_string(),
        global_name: None,
    }
}

pub fn account(id: i64, battletag: &str, chars: &[(&str, &str, i64)]) -> FakeBattlenetAccount {
    FakeBattlenetAccount {
        id,
        battletag: battletag.to_string(),
        characters: chars
            .iter()
            .map(|(name, realm, blizzard_id)| FakeCharacter {
                id: *blizzard_id,
                name: name.to_string(),
                realm_slug: realm.to_string(),
                level: 70,
            })
            .collect(),
    }
}

/// Aelric's account: three guild characters and two outside the guild.
pub fn aelric_account() -> FakeBattlenetAccount {
    account(
        5001,
        "Aelric#1234",
        &[
            ("Aelric", REALM, 1001),
            ("Brynja", REALM, 1002),
            ("Corvin", REALM, 1003),
            ("Faraway", "argent-dawn", 9001),
            ("Nomad", REALM, 9002),
        ],
    )
}

/// The service over a seeded guild with the fake providers, at `base`.
pub struct ClaimApp {
    pub base: String,
    pub fake: FakeProviders,
    pub guild: Guild,
    pub config: Config,
}

/// Seed the guild and serve the console and API with claims pointed at fresh fakes.
pub async fn start(db: &TestDb) -> ClaimApp {
    let guild = seed(&db.pool).await;
    let fake = FakeProviders::start().await.unwrap();
    let (listener, base) = guild_sync::testing::free_local_port().await;
    let mut config = Config::defaults();
    config.guild_sync_admin_token = Some(Secret::new(ADMIN_TOKEN));
    config.guild_sync_public_url = Some(base.clone());
    config.guild_sync_signing_secret = Some(Secret::new(SIGNING_SECRET));
    fake.configure(&mut config);
    guild_sync::testing::serve_console_on(listener, db.pool.clone(), &config);
    ClaimApp {
        base,
        fake,
        guild,
        config,
    }
}

/// [`start`], with the fakes logging in Aelric and his account ([`aelric_account`]).
pub async fn start_as_aelric(db: &TestDb) -> ClaimApp {
    let app = start(db).await;
    app.fake.log_in_discord(discord(AELRIC, "aelric"));
    app.fake.log_in_battlenet(aelric_account());
    app
}

/// A browser stand-in: keeps cookies per name, follows redirects by hand.
pub struct Browser {
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

/// A page the browser ended on.
pub struct Page {
    pub status: StatusCode,
    pub url: String,
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// One GET, keeping the cookies it sets; the redirect target if any.
    pub async fn get_once(&mut self, url: &str) -> (Page, Option<String>) {
        let response = self
            .client
            .get(url)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let status = response.status();
        let next = response.headers().get(reqwest::header::LOCATION).map(|l| {
            let current = reqwest::Url::parse(url).unwrap();
            current.join(l.to_str().unwrap()).unwrap().to_string()
        });
        let body = response.text().await.unwrap();
        (
            Page {
                status,
                url: url.to_string(),
                body,
            },
            next,
        )
    }

    /// GET and follow redirects until a page, or until the next URL's path is `stop_at`
    /// (returned unvisited as `Err`).
    pub async fn follow(&mut self, url: &str, stop_at: Option<&str>) -> Result<Page, String> {
        let mut url = url.to_string();
        for _ in 0..10 {
            let (page, next) = self.get_once(&url).await;
            let Some(next) = next else {
                return Ok(page);
            };
            if stop_at.is_some_and(|path| reqwest::Url::parse(&next).unwrap().path() == path) {
                return Err(next);
            }
            url = next;
        }
        panic!("more than 10 redirects from {url}");
    }

    /// GET and follow redirects to the page.
    pub async fn open(&mut self, url: &str) -> Page {
        self.follow(url, None).await.unwrap()
    }
}

/// The whole claim as a member's browser makes it: Discord, then Battle.net. Returns the
/// result page.
pub async fn claim(app: &ClaimApp, browser: &mut Browser) -> Page {
    let page = browser.open(&format!("{}/claim/discord", app.base)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("battlenet-login"), "{}", page.body);
    browser.open(&format!("{}/claim/battlenet", app.base)).await
}

/// `(character_id, player_id, link_source)` of every link, ordered.
pub async fn links(pool: &PgPool) -> Vec<(i32, i32, String)> {
    sqlx::query_as(
        "SELECT character_id, player_id, link_source FROM guild_identity.player_characters
         ORDER BY character_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The player holding Discord account `discord_id`.
pub async fn player_of(pool: &PgPool, discord_id: &str) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT p.id FROM guild_identity.players p
         JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
         WHERE du.discord_id = $1",
    )
    .bind(discord_id)
    .fetch_optional(pool)
    .await
    .unwrap()
}
