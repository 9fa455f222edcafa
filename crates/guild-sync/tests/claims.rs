//! Member claims (issue 17) over HTTP: the service's real router on a local port, Discord and
//! Battle.net as the bundled fake providers (real wire shapes, PKCE and client auth checked),
//! every test in a fresh database. The same flows in Chromium are in `claims_browser.rs`.

mod claim_support;
mod common;

use claim_support::*;
use common::{CapturedLog, on_a_fresh_db};
use guild_sync::claims::state::{Purpose, StateSigner};
use reqwest::StatusCode;
use sqlx::PgPool;

async fn open_conflicts(pool: &PgPool) -> Vec<(Option<i32>, Option<i32>, String)> {
    sqlx::query_as(
        "SELECT wow_character_id, player_id, summary FROM guild_identity.audit_issues
         WHERE issue_type = 'claim_conflict' AND resolved_at IS NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_claim_links_the_guild_characters_on_the_account_and_lists_the_others() {
    on_a_fresh_db(|db| async move {
        let app = start_as_aelric(&db).await;
        let mut browser = Browser::default();
        let page = claim(&app, &mut browser).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for name in ["Aelric", "Brynja", "Corvin", "Faraway", "Nomad"] {
            assert!(page.body.contains(name), "{name} missing: {}", page.body);
        }
        let outside = &page.body[page.body.find("id=\"outside\"").unwrap()..];
        assert!(outside.contains("Faraway") && outside.contains("Nomad"));
        assert!(!outside.contains("Aelric<"), "{outside}");

        let pool = &db.pool;
        let player = player_of(pool, AELRIC)
            .await
            .expect("a player for the claimant");
        let rows: Vec<(i32, String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT character_id, link_source, confidence, evidence
             FROM guild_identity.player_characters WHERE player_id = $1 ORDER BY character_id",
        )
        .bind(player)
        .fetch_all(pool)
        .await
        .unwrap();
        let ids: Vec<i32> = rows.iter().map(|r| r.0).collect();
        assert_eq!(ids, app.guild.aelric_chars.to_vec());
        for (_, source, confidence, evidence) in &rows {
            assert_eq!(source, "battlenet_oauth");
            assert_eq!(confidence, "confirmed");
            assert_eq!(evidence["battletag"], "Aelric#1234");
            assert!(evidence["claimed_at"].is_string());
        }
        let (battletag, account, claimed, main): (Option<String>, Option<i64>, bool, Option<i32>) =
            sqlx::query_as(
                "SELECT battletag, battlenet_account_id, claimed_at IS NOT NULL, main_character_id
                 FROM guild_identity.players WHERE id = $1",
            )
            .bind(player)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(battletag.as_deref(), Some("Aelric#1234"));
        assert_eq!(account, Some(5001));
        assert!(claimed);
        assert_eq!(
            main,
            Some(app.guild.aelric_chars[0]),
            "the highest level becomes main"
        );
        let actions: Vec<(String, String)> = sqlx::query_as(
            "SELECT officer, action FROM guild_identity.officer_actions WHERE player_id = $1",
        )
        .bind(player)
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(actions.len(), 3);
        assert!(
            actions
                .iter()
                .all(|(who, what)| who == "claim" && what == "claim_link")
        );
        assert!(
            !browser.cookies.contains_key("guild_sync_claim"),
            "the claim cookie is cleared"
        );
    })
    .await;
}

#[tokio::test]
async fn a_claim_moves_a_fuzzy_linked_character_and_records_the_move() {
    on_a_fresh_db(|db| async move {
        let app = start(&db).await;
        app.fake.log_in_discord(discord(EVE, "eve"));
        app.fake
            .log_in_battlenet(account(5002, "Eve#2002", &[("Dagny", REALM, 1004)]));
        let page = claim(&app, &mut Browser::default()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("moved to you"), "{}", page.body);
        let eve = player_of(&db.pool, EVE).await.unwrap();
        let link = links(&db.pool).await;
        assert!(link.contains(&(app.guild.dagny, eve, "battlenet_oauth".into())), "{link:?}");
        let moved: (String, serde_json::Value) = sqlx::query_as(
            "SELECT officer, details FROM guild_identity.officer_actions WHERE action = 'claim_move'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(moved.0, "claim");
        assert_eq!(moved.1["from_player_id"], app.guild.dag_player);
        assert_eq!(moved.1["character_id"], app.guild.dagny);
        let dag_main: Option<i32> =
            sqlx::query_scalar("SELECT main_character_id FROM guild_identity.players WHERE id = $1")
                .bind(app.guild.dag_player)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_ne!(dag_main, Some(app.guild.dagny));
    })
    .await;
}

#[tokio::test]
async fn a_claim_never_overrides_a_manual_link_and_the_conflict_resolves_when_an_officer_decides() {
    on_a_fresh_db(|db| async move {
        let app = start(&db).await;
        let before = links(&db.pool).await;
        app.fake.log_in_discord(discord(GWEN, "gwen"));
        app.fake
            .log_in_battlenet(account(5003, "Gwen#3003", &[("Eluned", REALM, 1005)]));
        let page = claim(&app, &mut Browser::default()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Waiting for an officer"), "{}", page.body);
        assert!(page.body.contains("Frank"), "{}", page.body);
        assert_eq!(links(&db.pool).await, before, "nothing moved");
        let conflicts = open_conflicts(&db.pool).await;
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        let (character, other, summary) = &conflicts[0];
        assert_eq!(*character, Some(app.guild.eluned));
        assert_eq!(*other, Some(app.guild.frank_player));
        assert!(summary.contains("@gwen") && summary.contains("Frank"), "{summary}");

        // The same claim again keeps one open issue.
        claim(&app, &mut Browser::default()).await;
        assert_eq!(open_conflicts(&db.pool).await.len(), 1);

        // The report has a section for it.
        let report = guild_sync::reporter::render_text_report(&db.pool, true).await.unwrap();
        assert!(report.contains("Claims that conflict"), "{report}");

        // An officer moves Eluned to Gwen's player: the next check resolves the conflict.
        let gwen = player_of(&db.pool, GWEN).await.unwrap();
        sqlx::query("UPDATE guild_identity.player_characters SET player_id = $1 WHERE character_id = $2")
            .bind(gwen)
            .bind(app.guild.eluned)
            .execute(&db.pool)
            .await
            .unwrap();
        guild_sync::integrity_checker::check(&db.pool, 30).await.unwrap();
        assert!(open_conflicts(&db.pool).await.is_empty());
        let resolved_by: Option<String> = sqlx::query_scalar(
            "SELECT resolved_by FROM guild_identity.audit_issues WHERE issue_type = 'claim_conflict'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(resolved_by.as_deref(), Some("auto"));
    })
    .await;
}

#[tokio::test]
async fn claiming_again_unlinks_what_left_the_account_and_a_second_discord_account_links_nothing() {
    on_a_fresh_db(|db| async move {
        let app = start_as_aelric(&db).await;
        claim(&app, &mut Browser::default()).await;
        let aelric = player_of(&db.pool, AELRIC).await.unwrap();

        // Corvin moved to another account: claiming again unlinks it, keeps the rest.
        app.fake.log_in_battlenet(account(
            5001,
            "Aelric#1234",
            &[("Aelric", REALM, 1001), ("Brynja", REALM, 1002)],
        ));
        let page = claim(&app, &mut Browser::default()).await;
        assert!(
            page.body.contains("No longer on your account"),
            "{}",
            page.body
        );
        let held: Vec<i32> = links(&db.pool)
            .await
            .into_iter()
            .filter(|(_, p, _)| *p == aelric)
            .map(|(c, _, _)| c)
            .collect();
        assert_eq!(held, app.guild.aelric_chars[..2].to_vec());

        // Eve logs in to Discord, then with Aelric's Battle.net account: refused, nothing linked.
        let before = links(&db.pool).await;
        app.fake.log_in_discord(discord(EVE, "eve"));
        let page = claim(&app, &mut Browser::default()).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
        assert!(page.body.contains("already claimed"), "{}", page.body);
        assert_eq!(links(&db.pool).await, before);
        let conflicts = open_conflicts(&db.pool).await;
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].0, None);
        assert_eq!(conflicts[0].1, Some(aelric));
        let eve_account: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT battlenet_account_id FROM guild_identity.players p
             JOIN guild_identity.discord_users du ON du.id = p.discord_user_id
             WHERE du.discord_id = $1",
        )
        .bind(EVE)
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        assert_eq!(eve_account.flatten(), None);
    })
    .await;
}

#[tokio::test]
async fn a_second_match_after_claims_changes_nothing() {
    on_a_fresh_db(|db| async move {
        let app = start(&db).await;
        guild_sync::identity_engine::run_matching(&db.pool)
            .await
            .unwrap();
        for (user, name, bnet) in [
            (AELRIC, "aelric", aelric_account()),
            (
                EVE,
                "eve",
                account(5002, "Eve#2002", &[("Dagny", REALM, 1004)]),
            ),
        ] {
            app.fake.log_in_discord(discord(user, name));
            app.fake.log_in_battlenet(bnet);
            claim(&app, &mut Browser::default()).await;
        }
        let after_claims = links(&db.pool).await;
        assert!(
            after_claims
                .iter()
                .filter(|l| l.2 == "battlenet_oauth")
                .count()
                == 4
        );
        guild_sync::identity_engine::run_matching(&db.pool)
            .await
            .unwrap();
        assert_eq!(links(&db.pool).await, after_claims);
        guild_sync::identity_engine::run_matching(&db.pool)
            .await
            .unwrap();
        assert_eq!(links(&db.pool).await, after_claims);
    })
    .await;
}

/// Start a claim up to the Discord callback, unvisited.
async fn discord_callback_url(app: &ClaimApp, browser: &mut Browser) -> String {
    browser
        .follow(
            &format!("{}/claim/discord", app.base),
            Some(guild_sync::claims::DISCORD_CALLBACK_PATH),
        )
        .await
        .err()
        .expect("the fake Discord sends the browser back")
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

fn state_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn tampered_expired_replayed_and_foreign_states_are_refused_and_link_nothing() {
    on_a_fresh_db(|db| async move {
        let app = start_as_aelric(&db).await;
        let before = links(&db.pool).await;

        // Tampered: one character of the state changed.
        let mut browser = Browser::default();
        let callback = discord_callback_url(&app, &mut browser).await;
        let state = state_of(&callback);
        let flipped = format!(
            "{}{}",
            &state[..state.len() - 1],
            if state.ends_with('0') { '1' } else { '0' }
        );
        let page = browser
            .open(&with_param(&callback, "state", &flipped))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("not valid here"), "{}", page.body);

        // Another browser (no binding cookie) presenting a genuine callback.
        let mut thief = Browser::default();
        let page = thief.open(&callback).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("another browser"), "{}", page.body);

        // Expired: a genuine state issued 11 minutes ago for this browser.
        let binding = browser.cookies["guild_sync_claim"].clone();
        let signer = StateSigner::new(SIGNING_SECRET.as_bytes());
        let old = chrono::Utc::now().timestamp() - 11 * 60;
        let expired = signer.issue(Purpose::Claim, &binding, old);
        let page = browser
            .open(&with_param(&callback, "state", &expired))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("expired"), "{}", page.body);

        // Replayed: the genuine callback works once, then never again.
        let page = browser.open(&callback).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let after_discord = browser.cookies["guild_sync_claim"].clone();
        browser.cookies.insert("guild_sync_claim".into(), binding);
        let page = browser.open(&callback).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("already used"), "{}", page.body);
        browser
            .cookies
            .insert("guild_sync_claim".into(), after_discord);

        // A Battle.net state replayed at its callback.
        let bnet_callback = browser
            .follow(
                &format!("{}/claim/battlenet", app.base),
                Some(guild_sync::claims::BATTLENET_CALLBACK_PATH),
            )
            .await
            .err()
            .unwrap();
        let page = browser.open(&bnet_callback).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let linked = links(&db.pool).await;
        assert_ne!(linked, before, "the genuine claim went through");
        sqlx::query(
            "DELETE FROM guild_identity.player_characters WHERE link_source = 'battlenet_oauth'",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let page = browser.open(&bnet_callback).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert_eq!(links(&db.pool).await, before, "the replay linked nothing");

        // A Discord-step state at the Battle.net callback (or the other way) is refused.
        let mut browser = Browser::default();
        let callback = discord_callback_url(&app, &mut browser).await;
        let wrong = with_param(
            &format!(
                "{}{}?code=x&state=y",
                app.base,
                guild_sync::claims::BATTLENET_CALLBACK_PATH
            ),
            "state",
            &state_of(&callback),
        );
        let page = browser.open(&wrong).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert_eq!(links(&db.pool).await, before);
    })
    .await;
}

#[tokio::test]
async fn battle_net_failures_and_members_not_on_the_server_get_a_clear_page_and_nothing_linked() {
    on_a_fresh_db(|db| async move {
        let app = start(&db).await;
        let before = links(&db.pool).await;
        app.fake.log_in_discord(discord(AELRIC, "aelric"));
        app.fake.log_in_battlenet(aelric_account());
        for (status, text) in [
            (403, "did not let guild-sync read your characters"),
            (500, "Try again"),
        ] {
            app.fake.fail_profile(Some(status));
            let page = claim(&app, &mut Browser::default()).await;
            assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.body);
            assert!(
                page.body.contains(&format!("answered {status}")),
                "{}",
                page.body
            );
            assert!(page.body.contains(text), "{}", page.body);
            assert!(page.body.contains("Nothing was linked"), "{}", page.body);
            assert_eq!(links(&db.pool).await, before);
        }
        app.fake.fail_profile(None);

        for (id, name) in [(STRANGER, "stranger"), ("200000000000000999", "unknown")] {
            app.fake.log_in_discord(discord(id, name));
            let page = Browser::default()
                .open(&format!("{}/claim/discord", app.base))
                .await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
            assert!(
                page.body.contains("not a member of the guild"),
                "{}",
                page.body
            );
            assert!(!page.body.contains("battlenet-login"));
        }
        // Straight to the Battle.net step without the Discord one.
        let page = Browser::default()
            .open(&format!("{}/claim/battlenet", app.base))
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(
            page.body.contains("Log in with Discord first"),
            "{}",
            page.body
        );
        // The member cancelled at Discord.
        let page = Browser::default()
            .open(&format!(
                "{}/oauth/discord/callback?error=access_denied&state=x",
                app.base
            ))
            .await;
        assert!(page.body.contains("you did not allow it"), "{}", page.body);
        assert_eq!(links(&db.pool).await, before);
    })
    .await;
}

#[tokio::test]
async fn names_from_battle_net_are_escaped_on_the_page_and_names_out_of_bounds_are_refused() {
    on_a_fresh_db(|db| async move {
        let app = start(&db).await;
        app.fake.log_in_discord(discord(AELRIC, "aelric"));
        let long = "X".repeat(100);
        let hostile_tag = "<img src=x onerror=alert(1)>#1234";
        app.fake.log_in_battlenet(account(
            5001,
            hostile_tag,
            &[
                ("Aelric", REALM, 1001),
                ("<b>Evil</b>", "argent-dawn", 9101),
                (long.as_str(), REALM, 9102),
                ("Tab\tName", REALM, 9103),
            ],
        ));
        let page = claim(&app, &mut Browser::default()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            !page.body.contains("<img") && !page.body.contains("<b>Evil"),
            "{}",
            page.body
        );
        assert!(
            page.body
                .contains("<bdi>&#60;img src=x onerror=alert(1)&#62;#1234</bdi>"),
            "{}",
            page.body
        );
        let outside = &page.body[page.body.find("id=\"outside\"").unwrap()..];
        assert!(
            outside.contains("<bdi>&#60;b&#62;Evil&#60;/b&#62;</bdi>-argent-dawn"),
            "{outside}"
        );
        // Names no character can have are skipped: neither shown nor matched.
        assert!(
            !outside.contains(&long) && !outside.contains("Name-"),
            "{outside}"
        );
        let aelric = player_of(&db.pool, AELRIC).await.unwrap();
        let battletag: Option<String> =
            sqlx::query_scalar("SELECT battletag FROM guild_identity.players WHERE id = $1")
                .bind(aelric)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(
            battletag.as_deref(),
            Some(hostile_tag),
            "stored as sent, escaped when shown"
        );

        // A BattleTag with a line break (into a report) or past the bound: refused.
        let before = links(&db.pool).await;
        for tag in [
            "Gwen#3003\n**everyone**".to_string(),
            format!("{}#1", "G".repeat(70)),
        ] {
            app.fake.log_in_discord(discord(GWEN, "gwen"));
            app.fake
                .log_in_battlenet(account(5003, &tag, &[("Eluned", REALM, 1005)]));
            let page = claim(&app, &mut Browser::default()).await;
            assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.body);
            assert!(
                page.body.contains("BattleTag out of bounds"),
                "{}",
                page.body
            );
            assert_eq!(links(&db.pool).await, before);
            assert!(open_conflicts(&db.pool).await.is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn officers_log_in_with_discord_and_their_actions_name_their_discord_account() {
    on_a_fresh_db(|db| async move {
        let app = start(&db).await;
        // A member below the officer rank stays out.
        app.fake.log_in_discord(discord(FRANK, "frank"));
        let mut member = Browser::default();
        let page = member.open(&format!("{}/login/discord", app.base)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(page.body.contains("Not an officer"));
        assert!(!member.cookies.contains_key("guild_sync_session"));

        app.fake.log_in_discord(discord(OSRIC, "osric"));
        let mut officer = Browser::default();
        let login = officer.open(&format!("{}/login", app.base)).await;
        assert!(login.body.contains("/login/discord"), "{}", login.body);
        let page = officer.open(&format!("{}/login/discord", app.base)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("Logged in with Discord as @osric"),
            "{}",
            page.body
        );
        let page = officer.open(&format!("{}/issues", app.base)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.url.ends_with("/issues"),
            "the session opens the console"
        );
        assert!(
            page.body.contains("claim-link"),
            "the console links to /claim"
        );
        let overview = officer.open(&format!("{}/", app.base)).await;
        assert!(
            overview
                .body
                .contains(&format!("id=\"claim-url\">{}/claim</code>", app.base)),
            "the Overview shows the claim link to send members: {}",
            overview.body
        );

        // An action through the session is recorded under the Discord identity.
        let csrf = page
            .body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let character = app.guild.aelric_chars[2];
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/unclaimed/link", app.base))
            .header(
                reqwest::header::COOKIE,
                format!(
                    "guild_sync_session={}",
                    officer.cookies["guild_sync_session"]
                ),
            )
            .form(&[
                ("csrf", csrf.as_str()),
                ("character_id", &character.to_string()),
                (
                    "discord_user_id",
                    &player_discord_user(&db.pool, AELRIC).await.to_string(),
                ),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_redirection(),
            "{:?}",
            response.text().await
        );
        let who: String = sqlx::query_scalar(
            "SELECT officer FROM guild_identity.officer_actions ORDER BY id DESC LIMIT 1",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(who, format!("osric (discord {OSRIC})"));
    })
    .await;
}

async fn player_discord_user(pool: &PgPool, discord_id: &str) -> i32 {
    sqlx::query_scalar("SELECT id FROM guild_identity.discord_users WHERE discord_id = $1")
        .bind(discord_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn no_secret_or_token_reaches_the_log() {
    let captured = CapturedLog::default();
    let subscriber = captured.subscriber(tracing::Level::TRACE);
    // Global, not per thread: a callsite another test's thread saw first would otherwise be
    // cached as uninteresting. The other tests of this binary log into the buffer too, which
    // only widens what is checked.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    on_a_fresh_db(|db| async move {
        let app = start_as_aelric(&db).await;
        claim(&app, &mut Browser::default()).await;
        app.fake.fail_profile(Some(500));
        claim(&app, &mut Browser::default()).await;
        app.fake.log_in_discord(discord(OSRIC, "osric"));
        Browser::default()
            .open(&format!("{}/login/discord", app.base))
            .await;

        let log = captured.text();
        assert!(log.contains("claim written"), "the log was captured: {log}");
        assert!(log.contains("officer logged in to the console with Discord"));
        let mut secrets = app.fake.secrets_seen();
        secrets.push(SIGNING_SECRET.to_string());
        secrets.push(ADMIN_TOKEN.to_string());
        assert!(secrets.iter().any(|s| s.starts_with("fake-access-token-")));
        for secret in secrets {
            assert!(!log.contains(&secret), "{secret} is in the log:\n{log}");
        }
        assert!(!log.contains("fake-refresh-"), "{log}");
    })
    .await;
}
