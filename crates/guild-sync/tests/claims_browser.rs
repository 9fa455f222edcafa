//! Member claims in a real browser: headless Chromium follows the whole redirect flow — the
//! claim page, the fake Discord's authorize page and back, the fake Battle.net's and back —
//! against the service's router and the bundled fake providers on local ports, over a small
//! seeded guild in a fresh database. Three scenarios: a member with 3 guild characters and 2
//! outside it; a claim moving a fuzzy-linked character; a claim against a manual link, which
//! opens `claim_conflict` and moves nothing. Screenshots under `target/screenshots/claim-*`.

mod browser_support;
mod claim_support;
mod common;

use std::time::Duration;

use browser_support::*;
use claim_support::*;
use common::on_a_fresh_db_within;
use fantoccini::Locator;

/// Claim as whoever the fakes log in: the claim page, Discord, Battle.net. Returns the result
/// page's text.
async fn claim_in_browser(client: &fantoccini::Client, base: &str, shots: Option<&str>) -> String {
    open(client, base, "/claim").await;
    if let Some(name) = shots {
        shoot(client, &format!("{name}-start")).await;
    }
    click(client, "#discord-login").await;
    let text = text_of(client, "discord-done").await;
    assert!(text.contains("Logged in with Discord"), "{text}");
    if let Some(name) = shots {
        shoot(client, &format!("{name}-battlenet")).await;
    }
    click(client, "#battlenet-login").await;
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), guild_sync::claims::BATTLENET_CALLBACK_PATH);
    assert!(url.as_str().starts_with(base), "back on guild-sync: {url}");
    if let Some(name) = shots {
        shoot(client, &format!("{name}-result")).await;
    }
    body_text(client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_claim_their_characters_through_both_logins_in_a_real_browser() {
    on_a_fresh_db_within(Duration::from_secs(180), |db| async move {
        let app = start(&db).await;
        let pool = &db.pool;
        let driver = start_driver().await;
        let client = browser(&driver).await;

        // 1. Three guild characters and two outside the guild.
        app.fake.log_in_discord(discord(AELRIC, "aelric"));
        app.fake.log_in_battlenet(aelric_account());
        let text = claim_in_browser(&client, &app.base, Some("claim")).await;
        assert!(
            text.contains("Claimed as @aelric with Battle.net Aelric#1234"),
            "{text}"
        );
        let linked = text_of(&client, "linked").await;
        for name in [
            "Aelric-ravencrest",
            "Brynja-ravencrest",
            "Corvin-ravencrest",
        ] {
            assert!(linked.contains(name), "{linked}");
        }
        let outside = text_of(&client, "outside").await;
        assert!(outside.contains("Faraway-argent-dawn") && outside.contains("Nomad-ravencrest"));
        assert!(!outside.contains("Aelric"));
        let aelric = player_of(pool, AELRIC).await.unwrap();
        let held: Vec<i32> = links(pool)
            .await
            .into_iter()
            .filter(|(_, p, s)| *p == aelric && s == "battlenet_oauth")
            .map(|(c, _, _)| c)
            .collect();
        assert_eq!(held, app.guild.aelric_chars.to_vec());

        // 2. Dagny, fuzzy-linked to Dag, moves to Eve.
        app.fake.log_in_discord(discord(EVE, "eve"));
        app.fake
            .log_in_battlenet(account(5002, "Eve#2002", &[("Dagny", REALM, 1004)]));
        let text = claim_in_browser(&client, &app.base, None).await;
        assert!(text.contains("Dagny-ravencrest"), "{text}");
        assert!(text.contains("moved to you"), "{text}");
        let eve = player_of(pool, EVE).await.unwrap();
        assert!(
            links(pool)
                .await
                .contains(&(app.guild.dagny, eve, "battlenet_oauth".into()))
        );

        // 3. Eluned, linked by hand to Frank: a conflict for an officer, nothing moved.
        let before = links(pool).await;
        app.fake.log_in_discord(discord(GWEN, "gwen"));
        app.fake
            .log_in_battlenet(account(5003, "Gwen#3003", &[("Eluned", REALM, 1005)]));
        let text = claim_in_browser(&client, &app.base, Some("claim-conflict")).await;
        let waiting = text_of(&client, "conflicts").await;
        assert!(
            waiting.contains("Eluned-ravencrest") && waiting.contains("Frank"),
            "{text}"
        );
        assert_eq!(links(pool).await, before, "nothing moved");
        let conflicts: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.audit_issues
             WHERE issue_type = 'claim_conflict' AND resolved_at IS NULL AND wow_character_id = $1",
        )
        .bind(app.guild.eluned)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(conflicts, 1);

        // An officer logs in with Discord and finds the conflict on the Issues page.
        app.fake.log_in_discord(discord(OSRIC, "osric"));
        open(&client, &app.base, "/login").await;
        shoot(&client, "claim-officer-login").await;
        client
            .find(Locator::Id("discord-login"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The "Logged in" page moves on to the console by itself (meta refresh).
        for _ in 0..100 {
            if client.current_url().await.unwrap().path() == "/" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(client.current_url().await.unwrap().path(), "/");
        // The Overview gives the officer the claim link to send members.
        assert_eq!(
            text_of(&client, "claim-url").await,
            format!("{}/claim", app.base)
        );
        shoot(&client, "claim-overview").await;
        open(&client, &app.base, "/issues?type=claim_conflict").await;
        let text = body_text(&client).await;
        assert!(text.contains("Eluned-ravencrest"), "{text}");
        shoot(&client, "claim-issues").await;

        // A refusal page: replaying nothing, just the Battle.net step without Discord.
        client.delete_all_cookies().await.unwrap();
        open(&client, &app.base, "/claim/battlenet").await;
        assert!(
            body_text(&client)
                .await
                .contains("Log in with Discord first")
        );
        shoot(&client, "claim-refused").await;

        client.close().await.unwrap();
    })
    .await;
}
