//! The officer console in a real browser: Debian's chromium driven through chromedriver
//! (fantoccini), against the real service router on a random port over the demo's sample
//! guild in a fresh database. chromedriver missing is a failure, not a skip: `.ci/run`
//! installs it.
//!
//! Every page is saved as a screenshot at 1,280 and 375 px under `target/screenshots/`.

mod common;
mod role_support;

mod browser_support;

use std::path::Path;
use std::time::Duration;

use browser_support::*;
use fantoccini::Locator;
use guild_sync::config::{Config, Secret};
use guild_sync::testing::{TestDb, serve_console};
use sqlx::PgPool;

use common::on_a_fresh_db_within;

const TOKEN: &str = "console-officer-token-0123456789";
const XSS_NAME: &str = "<img src=x onerror=alert(1)>";

/// The demo's sample guild, a Discord member whose name is markup, and the console and API
/// serving it. Returns the base URL.
async fn serve(db: &TestDb, config: &Config) -> String {
    guild_sync::demo::run_stages(&db.pool, config)
        .await
        .expect("the demo stages run");
    serve_console(db.pool.clone(), config).await
}

async fn add_markup_member(pool: &PgPool) -> i32 {
    let user: i32 = sqlx::query_scalar(
        "INSERT INTO guild_identity.discord_users (discord_id, username, display_name, highest_guild_role)
         VALUES ('99999999999', $1, $1, 'Member') RETURNING id",
    )
    .bind(XSS_NAME)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO guild_identity.players (display_name, discord_user_id) VALUES ($1, $2) RETURNING id",
    )
    .bind(XSS_NAME)
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn open_suggestion(pool: &PgPool) -> Option<(i32, i32, i32)> {
    sqlx::query_as(
        "SELECT id, wow_character_id, discord_member_id FROM guild_identity.audit_issues
         WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL ORDER BY id LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_clears_the_queue_in_a_real_browser() {
    on_a_fresh_db_within(Duration::from_secs(240), |db| async move {
        let mut config = Config::defaults();
        config.guild_sync_admin_token = Some(Secret::new(TOKEN));
        let base = serve(&db, &config).await;
        let markup_player = add_markup_member(&db.pool).await;
        let pool = &db.pool;
        let driver = start_driver().await;
        let client = browser(&driver).await;

        // Log in: any page sends an anonymous visitor to the login form.
        open(&client, &base, "/review").await;
        assert!(client.current_url().await.unwrap().path().ends_with("/login"));
        shoot(&client, "login").await;
        client.find(Locator::Id("token")).await.unwrap().send_keys("wrong").await.unwrap();
        click(&client, "#login").await;
        assert!(body_text(&client).await.contains("not the admin token"));
        client.find(Locator::Id("token")).await.unwrap().send_keys(TOKEN).await.unwrap();
        click(&client, "#login").await;
        assert_eq!(client.current_url().await.unwrap().path(), "/");
        assert!(body_text(&client).await.contains("Open issues"));
        // Issue 19: the demo's first syncs are the baseline (no joins); this week holds the
        // engine's links.
        let week = text_of(&client, "this-week").await;
        assert!(week.contains("linked") && !week.contains("joined_guild"), "{week}");
        assert!(week.contains("linked to"), "the latest events, described: {week}");
        shoot(&client, "overview").await;
        // Claims are not configured: no claim link to hand out.
        assert!(client.find(Locator::Id("member-claims")).await.is_err());

        // The session cookie: HttpOnly, SameSite=Strict, not Secure on plain http.
        let cookies = client.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|c| c.name() == "guild_sync_session")
            .expect("a session cookie after login");
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
        assert_ne!(session.secure(), Some(true));
        assert_eq!(session.path(), Some("/"));
        let session_cookie = format!("{}={}", session.name(), session.value());

        // Accept a suggestion; the player's page shows the link as an officer's.
        let (accepted, character, _) = open_suggestion(pool)
            .await
            .expect("the demo leaves suggestions to review");
        open(&client, &base, "/review").await;
        shoot(&client, "review").await;
        client
            .find(Locator::Id(&format!("suggestion-{accepted}")))
            .await
            .expect("the first open suggestion is shown");
        click(&client, "#accept").await;
        assert!(body_text(&client).await.contains("Linked."));
        let player: i32 = sqlx::query_scalar(
            "SELECT player_id FROM guild_identity.player_characters WHERE character_id = $1",
        )
        .bind(character)
        .fetch_one(pool)
        .await
        .expect("the accepted character is linked");
        open(&client, &base, &format!("/players/{player}")).await;
        let text = body_text(&client).await;
        assert!(
            text.contains(&format!("accepted by an officer (officer (console)) from suggestion {accepted}")),
            "{text}"
        );
        assert!(text.contains("manual") && text.contains("confirmed"), "{text}");
        assert!(text.contains("accept_suggestion"), "the action history: {text}");
        // Issue 19: the timeline shows the officer's link, and where history starts: the demo's
        // first sync is the baseline, not a join.
        let timeline = text_of(&client, "timeline").await;
        let lines: Vec<&str> = timeline.lines().collect();
        assert!(lines[0].starts_with("linked") && lines[0].contains("officer"), "{timeline}");
        assert!(!timeline.contains("joined the guild as"), "{timeline}");
        let start = text_of(&client, "timeline-start").await;
        assert!(start.starts_with("History starts at the first sync on"), "{start}");
        shoot(&client, "player").await;

        // Dismiss one; matching again does not bring it back.
        let (dismissed, character, member) = open_suggestion(pool)
            .await
            .expect("a second suggestion to dismiss");
        open(&client, &base, "/review").await;
        client
            .find(Locator::Id(&format!("suggestion-{dismissed}")))
            .await
            .unwrap();
        click(&client, "#dismiss").await;
        assert!(body_text(&client).await.contains("will not be suggested again"));
        guild_sync::identity_engine::run_matching(pool).await.unwrap();
        let back: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.audit_issues
             WHERE issue_type = 'auto_link_suggestion' AND resolved_at IS NULL
               AND wow_character_id = $1 AND discord_member_id = $2",
        )
        .bind(character)
        .bind(member)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(back, 0, "a dismissed pair was suggested again");
        open(&client, &base, "/review").await;
        assert!(
            client
                .find(Locator::Id(&format!("suggestion-{dismissed}")))
                .await
                .is_err()
        );

        // Resolve an issue with a note.
        open(&client, &base, "/issues").await;
        shoot(&client, "issues").await;
        let first = client
            .find(Locator::Css("ul.issues li.card"))
            .await
            .expect("open issues are listed");
        let issue: i32 = first.attr("id").await.unwrap().unwrap()["issue-".len()..]
            .parse()
            .unwrap();
        first
            .find(Locator::Css("input[name=note]"))
            .await
            .unwrap()
            .send_keys("talked to them — fine ✓")
            .await
            .unwrap();
        submit(
            &client,
            first.find(Locator::Css("button[type=submit]")).await.unwrap(),
        )
        .await;
        assert!(body_text(&client).await.contains("Issue resolved."));
        let (by, note): (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT resolved_by, resolution_note FROM guild_identity.audit_issues WHERE id = $1",
        )
        .bind(issue)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(by.as_deref(), Some("officer (console)"));
        assert_eq!(note.as_deref(), Some("talked to them — fine ✓"));

        // Link an unclaimed character from its candidates.
        open(&client, &base, "/unclaimed").await;
        shoot(&client, "unclaimed").await;
        let find = client.find(Locator::Css("a.find-candidates")).await.expect("an unclaimed character");
        find.click().await.unwrap();
        client.wait().for_element(Locator::Id("ranked")).await.unwrap();
        shoot(&client, "unclaimed-ranked").await;
        let button = client
            .find(Locator::Css("button.link-candidate"))
            .await
            .expect("an unclaimed character with a candidate");
        let form = client
            .find(Locator::Css("form:has(button.link-candidate)"))
            .await
            .unwrap();
        let character = id_field(&form, "character_id").await;
        submit(&client, button).await;
        assert!(body_text(&client).await.contains("Linked."));
        let evidence: serde_json::Value = sqlx::query_scalar(
            "SELECT evidence FROM guild_identity.player_characters WHERE character_id = $1",
        )
        .bind(character)
        .fetch_one(pool)
        .await
        .expect("the unclaimed character is linked");
        assert_eq!(evidence["accepted_by"], "officer (console)");

        // Link an unclaimed Discord member from its ranked candidates among every character.
        open(&client, &base, "/unclaimed").await;
        click(&client, "a.find-member-candidates").await;
        client.wait().for_element(Locator::Id("ranked-member")).await.unwrap();
        shoot(&client, "unclaimed-member-ranked").await;
        let form = client
            .find(Locator::Css("form:has(button.link-member-candidate)"))
            .await
            .expect("an unclaimed member with a ranked character");
        let (character, member) = (
            id_field(&form, "character_id").await,
            id_field(&form, "discord_user_id").await,
        );
        let button = form.find(Locator::Css("button.link-member-candidate")).await.unwrap();
        submit(&client, button).await;
        assert!(body_text(&client).await.contains("Linked."));
        let owner: Option<i32> = sqlx::query_scalar(
            "SELECT p.discord_user_id FROM guild_identity.player_characters pc
             JOIN guild_identity.players p ON p.id = pc.player_id WHERE pc.character_id = $1",
        )
        .bind(character)
        .fetch_one(pool)
        .await
        .expect("the chosen character is linked");
        assert_eq!(owner, Some(member), "linked to the member whose candidates were shown");

        // Upload an addon file through the same path as the API's upload.
        open(&client, &base, "/upload").await;
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/addon/PATTSync.lua");
        client
            .find(Locator::Id("file"))
            .await
            .unwrap()
            .send_keys(&sample.display().to_string())
            .await
            .unwrap();
        click(&client, "#upload").await;
        let started = client.find(Locator::Id("upload-started")).await.unwrap();
        assert!(started.text().await.unwrap().contains("Accepted: run"));
        let run: i64 = client.current_url().await.unwrap().query_pairs()
            .find(|(k, _)| k == "run")
            .map(|(_, v)| v.parse().unwrap())
            .expect("the run id in the address");
        let status = loop {
            let status: String =
                sqlx::query_scalar("SELECT status FROM guild_identity.sync_log WHERE id = $1")
                    .bind(run)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            if status != "running" {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status, "success");
        open(&client, &base, "/upload").await;
        shoot(&client, "upload").await;
        open(&client, &base, "/runs").await;
        let runs = body_text(&client).await;
        assert!(runs.contains("pipeline:addon"));
        // Issue 21: the addon stage's run shows its load/plan/apply split.
        let split = client.find(Locator::Css(".took .split")).await.unwrap().text().await.unwrap();
        assert!(
            split.starts_with("load ") && split.contains(" · plan ") && split.contains(" · apply "),
            "{split}"
        );
        shoot(&client, "runs").await;

        // A member named with markup shows as text and runs nothing.
        open(&client, &base, "/players?q=onerror").await;
        assert!(body_text(&client).await.contains(XSS_NAME));
        shoot(&client, "players").await;
        open(&client, &base, &format!("/players/{markup_player}")).await;
        assert!(body_text(&client).await.contains(XSS_NAME));
        assert!(client.find_all(Locator::Css("img")).await.unwrap().is_empty());
        assert!(client.get_alert_text().await.is_err(), "an alert opened");

        // A form posted without its CSRF token (or with another's) is refused.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let open_issue: i32 = sqlx::query_scalar(
            "SELECT id FROM guild_identity.audit_issues WHERE resolved_at IS NULL ORDER BY id LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        for form in [vec![("note", "forged")], vec![("note", "forged"), ("csrf", "0123")]] {
            let refused = http
                .post(format!("{base}/issues/{open_issue}/resolve"))
                .header("Cookie", &session_cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 403);
        }
        let still_open: bool = sqlx::query_scalar(
            "SELECT resolved_at IS NULL FROM guild_identity.audit_issues WHERE id = $1",
        )
        .bind(open_issue)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(still_open, "a forged form changed something");

        // Log out: the session is gone.
        open(&client, &base, "/").await;
        click(&client, ".logout button").await;
        assert!(client.current_url().await.unwrap().path().ends_with("/login"));
        open(&client, &base, "/runs").await;
        assert!(client.current_url().await.unwrap().path().ends_with("/login"));

        client.close().await.unwrap();
    })
    .await;
}

/// The headers and cookie attributes, over plain HTTP: CSP without inline script, never framed,
/// a Referrer-Policy; `Secure` cookies when the public URL is https.
#[tokio::test]
async fn headers_and_a_secure_cookie_behind_https() {
    common::on_a_fresh_db(|db| async move {
        let mut config = Config::defaults();
        config.guild_sync_admin_token = Some(Secret::new(TOKEN));
        config.guild_sync_public_url = Some("https://guild.example".into());
        let base = serve_console(db.pool.clone(), &config).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();

        let anonymous = http.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(anonymous.status(), 303);
        assert_eq!(anonymous.headers()["location"], "/login");

        let login = http.get(format!("{base}/login")).send().await.unwrap();
        assert_eq!(login.status(), 200);
        let headers = login.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(headers.contains_key("referrer-policy"));
        let pre = headers["set-cookie"].to_str().unwrap().to_string();
        assert!(
            pre.contains("Secure") && pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
            "{pre}"
        );
        let html = login.text().await.unwrap();
        assert!(!html.contains("<script"), "the console has no script");
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the login form's CSRF token")
            .to_string();
        let pre_cookie = pre.split(';').next().unwrap().to_string();

        // Without the token: refused, and no session.
        let forged = http
            .post(format!("{base}/login"))
            .header("Cookie", &pre_cookie)
            .form(&[("token", TOKEN)])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
        assert!(forged.headers().get("set-cookie").is_none());

        let ok = http
            .post(format!("{base}/login"))
            .header("Cookie", &pre_cookie)
            .form(&[("token", TOKEN), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 303);
        let session = ok
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("guild_sync_session="))
            .expect("a session cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(
                session.contains(attribute),
                "{attribute} missing: {session}"
            );
        }
        // A tampered cookie is not a session.
        let value = session.split(';').next().unwrap();
        let tampered = format!("{}x", value);
        let page = http
            .get(format!("{base}/runs"))
            .header("Cookie", &tampered)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 303);
        let page = http
            .get(format!("{base}/runs"))
            .header("Cookie", value)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["x-frame-options"], "DENY");
    })
    .await;
}

/// The id in `form`'s input `name`.
async fn id_field(form: &fantoccini::elements::Element, name: &str) -> i32 {
    form.find(Locator::Css(&format!("input[name={name}]")))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap()
}

/// Both promoted members (200 and 201) hold exactly `roles` on the fake Discord.
fn assert_linked_roles(fake: &role_support::FakeDiscord, roles: &[&str], why: &str) {
    for member in ["200", "201"] {
        assert_eq!(fake.roles_of(member), roles, "member {member}: {why}");
    }
}

/// The Roles page in a real browser against the stateful fake Discord: the plan with its
/// changes per member (a name that is markup shown as text), *Approve* applying that exact
/// plan (two of eleven members: over the 10 % guard, which the approval lifts), the run listed
/// with its changes, and *Undo* restoring the roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_approves_the_role_plan_and_undoes_it_in_a_real_browser() {
    role_support::on_a_guild_within(
        Duration::from_secs(240),
        11,
        &[0, 1],
        |db, fake| async move {
            sqlx::query(
            "UPDATE guild_identity.discord_users SET display_name = $1 WHERE discord_id = '201'",
        )
        .bind(XSS_NAME)
        .execute(&db.pool)
        .await
        .unwrap();
            let mut config = fake.config();
            config.guild_sync_admin_token = Some(Secret::new(TOKEN));
            config.guild_sync_role_sync = "plan".into();
            let stored = guild_sync::role_sync::plan_and_store(&db.pool, &config)
                .await
                .unwrap();
            let base = serve_console(db.pool.clone(), &config).await;
            let driver = start_driver().await;
            let client = browser(&driver).await;

            open(&client, &base, "/roles").await;
            client
                .find(Locator::Id("token"))
                .await
                .unwrap()
                .send_keys(TOKEN)
                .await
                .unwrap();
            click(&client, "#login").await;
            open(&client, &base, "/roles").await;
            let text = body_text(&client).await;
            assert!(text.contains(&format!("Plan {}", stored.plan_id)), "{text}");
            assert!(text.contains("Guards hold"), "{text}");
            assert!(
                text.contains(XSS_NAME),
                "the markup name is shown as text: {text}"
            );
            assert!(
                client
                    .find_all(Locator::Css("img"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            let row = text_of(&client, "member-200").await;
            assert!(row.contains("+Officer") && row.contains("−Member"), "{row}");
            assert!(
                client.find(Locator::Id("member-300")).await.is_err(),
                "the unlinked member is not in the plan"
            );
            shoot(&client, "roles-plan").await;

            click(&client, "#approve").await;
            let notice = text_of(&client, "notice").await;
            assert!(notice.contains("Plan approved and applied"), "{notice}");
            assert_linked_roles(&fake, &["1002", "1006"], "Officer added, Raider kept");
            assert_eq!(fake.roles_of("300"), vec!["1002"]);
            assert_eq!(fake.writes().len(), 4);
            let text = body_text(&client).await;
            assert!(text.contains("Applied by run"), "{text}");
            assert!(text.contains("verified"), "{text}");
            shoot(&client, "roles-applied").await;

            let undo = client
                .find(Locator::Css("button[id^=undo-]"))
                .await
                .expect("an Undo button for the run");
            submit(&client, undo).await;
            let notice = text_of(&client, "notice").await;
            assert!(notice.contains("Undone"), "{notice}");
            assert_linked_roles(&fake, &["1004", "1006"], "undo restores the roles");
            assert!(
                client
                    .find(Locator::Css("button[id^=undo-]"))
                    .await
                    .is_err(),
                "an undone run offers no second undo"
            );
            shoot(&client, "roles-undone").await;
            assert!(client.get_alert_text().await.is_err(), "an alert opened");
            client.close().await.unwrap();
        },
    )
    .await;
}
