//! The console session as an officer credential (issue 16), over real TCP through the service's
//! own server (so the peer address is known) on a fresh PostgreSQL database per test:
//! - the JSON API accepts the session cookie as well as the bearer token; a change made by
//!   session needs the session's CSRF token, and records the officer who logged in, as a
//!   console form does;
//! - login attempts are rate limited per client IP: too many wrong tokens get a 429 page, and
//!   then even the right token is not compared, while another address still logs in.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use guild_sync::config::{Config, Secret};
use guild_sync::testing::{free_local_port, noop_state, seed};
use guild_sync::web::login::LOGIN_BURST;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "console-session-token-0123456789";

/// The console a test drives: the service's own server over the test's database.
struct Console {
    base: String,
    pool: PgPool,
}

/// The frame of these tests: [`common::on_a_fresh_db`] with the service's router served on it
/// by the service's own server, stopped when the test ends. The frame, not the test, holds the
/// database and the server's stop guard, so neither ends before the test does.
async fn on_a_console<F, Fut>(test: F)
where
    F: FnOnce(Console) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    common::on_a_fresh_db(|db| async move {
        let config = Config {
            guild_sync_admin_token: Some(Secret::new(TOKEN)),
            ..Config::defaults()
        };
        let state = noop_state(db.pool.clone(), config.clone());
        guild_sync::install_crypto_provider();
        let (listener, base) = free_local_port().await;
        let router = guild_sync::service::router(state, &config);
        let stop = CancellationToken::new();
        tokio::spawn(guild_sync::service::http::serve(
            listener,
            router,
            stop.clone(),
        ));
        let _stop = stop.drop_guard();
        test(Console {
            base,
            pool: db.pool.clone(),
        })
        .await
    })
    .await
}

/// A client that does not follow redirects, sending from `from`.
fn client(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from)
        .build()
        .unwrap()
}

fn localhost() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// The value of the first `name="csrf"` field in `html`.
fn csrf_in(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with a CSRF token")
        .to_string()
}

/// `name=value` of the cookie `name` set by `response`.
fn cookie_set(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// The login form's pre-login cookie and CSRF token.
async fn login_form(http: &reqwest::Client, base: &str) -> (String, String) {
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let pre = cookie_set(&page, "guild_sync_login").expect("the pre-login cookie");
    (pre, csrf_in(&page.text().await.unwrap()))
}

/// POST the login form with `token` and `name`.
async fn try_login(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> reqwest::Response {
    let (pre, csrf) = login_form(http, base).await;
    http.post(format!("{base}/login"))
        .header("Cookie", pre)
        .form(&[("csrf", csrf.as_str()), ("token", token), ("name", name)])
        .send()
        .await
        .unwrap()
}

/// Log in as `name`; returns the session cookie and its CSRF token.
async fn login(http: &reqwest::Client, base: &str, name: &str) -> (String, String) {
    let done = try_login(http, base, TOKEN, name).await;
    assert_eq!(done.status(), 303);
    let session = cookie_set(&done, "guild_sync_session").expect("a session cookie");
    let page = http
        .get(format!("{base}/issues"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    (session, csrf_in(&page.text().await.unwrap()))
}

async fn issue(pool: &PgPool, summary: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO guild_identity.audit_issues (issue_type, severity, summary, issue_hash)
         VALUES ('orphan_wow', 'warning', $1, md5($1)) RETURNING id",
    )
    .bind(summary)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn resolved_by(pool: &PgPool, id: i32) -> Option<String> {
    sqlx::query_scalar("SELECT resolved_by FROM guild_identity.audit_issues WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, body)
}

#[tokio::test]
async fn the_json_api_accepts_a_console_session_and_records_its_officer() {
    on_a_console(|app| async move {
        let base = &app.base;
        let http = client(localhost());
        let first = issue(&app.pool, "Thrall has no Discord account").await;
        let second = issue(&app.pool, "Jaina has no Discord account").await;
        let (session, csrf) = login(&http, base, "Jaina ✨").await;

        // A read needs only the session.
        let (status, body) = json_of(
            http.get(format!("{base}/api/audit/issues"))
                .header("Cookie", &session)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 2, "{body}");

        // No session, a tampered one, or a wrong bearer token next to a good session: 401.
        let resolve = format!("{base}/api/audit/issues/{first}/resolve");
        let anonymous = http.get(format!("{base}/api/audit/issues")).send().await;
        assert_eq!(anonymous.unwrap().status(), 401);
        let tampered = http
            .get(format!("{base}/api/audit/issues"))
            .header("Cookie", format!("{session}x"))
            .send()
            .await
            .unwrap();
        assert_eq!(tampered.status(), 401);
        let wrong_bearer = http
            .get(format!("{base}/api/audit/issues"))
            .header("Cookie", &session)
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_bearer.status(), 401);

        // A change by session without its CSRF token, or with another's: 403, nothing changed.
        for token in [None, Some("0".repeat(64))] {
            let mut request = http
                .post(&resolve)
                .header("Cookie", &session)
                .json(&json!({"note": "forged"}));
            if let Some(token) = token {
                request = request.header("X-CSRF-Token", token);
            }
            let (status, body) = json_of(request.send().await.unwrap()).await;
            assert_eq!(status, 403, "{body}");
            assert!(body["error"].as_str().unwrap().contains("CSRF"), "{body}");
            assert_eq!(resolved_by(&app.pool, first).await, None);
        }

        // With it: done, and recorded as the officer who logged in.
        let (status, body) = json_of(
            http.post(&resolve)
                .header("Cookie", &session)
                .header("X-CSRF-Token", &csrf)
                .json(&json!({"note": "talked to them"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            resolved_by(&app.pool, first).await.as_deref(),
            Some("Jaina ✨ (console)")
        );

        // A console form records the same officer.
        let form = http
            .post(format!("{base}/issues/{second}/resolve"))
            .header("Cookie", &session)
            .form(&[("csrf", csrf.as_str()), ("note", "by form")])
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), 303);
        assert_eq!(
            resolved_by(&app.pool, second).await.as_deref(),
            Some("Jaina ✨ (console)")
        );

        // Both show in the action history, read by bearer token.
        let (status, body) = json_of(
            http.get(format!("{base}/api/audit/actions"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let officers: Vec<&str> = body["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["officer"].as_str().unwrap())
            .collect();
        assert_eq!(officers, ["Jaina ✨ (console)", "Jaina ✨ (console)"]);

        // A login without a name acts as "officer (console)"; a bearer token as "admin token".
        let (anonymous_session, anonymous_csrf) = login(&http, base, "  ").await;
        let reopen = http
            .post(format!("{base}/api/audit/issues/{first}/reopen"))
            .header("Cookie", &anonymous_session)
            .header("X-CSRF-Token", &anonymous_csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(reopen.status(), 200);
        let (_, body) = json_of(
            http.get(format!("{base}/api/audit/actions"))
                .header("Cookie", &anonymous_session)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(body["actions"][0]["officer"], "officer (console)", "{body}");
        assert_eq!(body["actions"][0]["action"], "reopen_issue", "{body}");
    })
    .await;
}

#[tokio::test]
async fn too_many_wrong_tokens_from_one_address_get_429() {
    on_a_console(|app| async move {
        let base = &app.base;
        let guesser = client(localhost());

        for attempt in 1..=LOGIN_BURST {
            let wrong = try_login(&guesser, base, "guess", "").await;
            assert_eq!(wrong.status(), 401, "attempt {attempt}");
        }
        let limited = try_login(&guesser, base, "guess", "").await;
        assert_eq!(limited.status(), 429);
        let wait: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        let html = limited.text().await.unwrap();
        assert!(html.contains("too many login attempts"), "{html}");

        // Over the limit, even the right token is not compared: no session.
        let right = try_login(&guesser, base, TOKEN, "").await;
        assert_eq!(right.status(), 429);
        assert!(cookie_set(&right, "guild_sync_session").is_none());

        // Another address has its own budget.
        let colleague = client(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        let ok = try_login(&colleague, base, TOKEN, "").await;
        assert_eq!(ok.status(), 303);
        assert!(cookie_set(&ok, "guild_sync_session").is_some());
    })
    .await;
}

/// Every console page and form with bad paging, bad parameters and unknown ids: a 4xx page (or
/// the page clamped to its bounds), never a 500.
#[tokio::test]
async fn console_pages_refuse_bad_parameters_and_unknown_ids_never_500() {
    on_a_console(|app| async move {
        let base = &app.base;
        let http = client(localhost());
        let (session, csrf) = login(&http, base, "").await;
        let big = "99999999999999999999";

        let gets: Vec<(String, u16)> = vec![
            // Pages are clamped to 1..=10,000: out of range is the first or an empty page.
            ("/players?page=0".into(), 200),
            ("/players?page=10001".into(), 200),
            ("/issues?page=0&state=all".into(), 200),
            ("/review?page=0".into(), 200),
            ("/unclaimed?page=0".into(), 200),
            ("/runs?page=0".into(), 200),
            // Not a number, or past u32: 400.
            ("/players?page=abc".into(), 400),
            (format!("/players?page={big}"), 400),
            ("/issues?page=-1".into(), 400),
            ("/unclaimed?character=x".into(), 400),
            ("/unclaimed?member=1.5".into(), 400),
            ("/players/abc".into(), 400),
            (format!("/players/{big}"), 400),
            // Unknown ids: 404.
            ("/players/999999".into(), 404),
            ("/unclaimed?character=999999".into(), 404),
            ("/unclaimed?member=999999".into(), 404),
        ];
        for (path, expected) in gets {
            let answer = http
                .get(format!("{base}{path}"))
                .header("Cookie", &session)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), expected, "GET {path}");
        }

        type Post<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);
        let posts: Vec<Post> = vec![
            ("/review/999999/link", vec![], 404),
            ("/review/999999/dismiss", vec![], 404),
            ("/issues/999999/resolve", vec![("note", "x")], 404),
            ("/players/999999/main", vec![("character_id", "1")], 404),
            ("/players/1/unlink", vec![("link_id", "999999")], 404),
            (
                "/unclaimed/link",
                vec![("character_id", "999999"), ("discord_user_id", "999999")],
                404,
            ),
            ("/trigger/nonsense", vec![], 404),
            // Missing or malformed fields: 4xx from the form parser, not 500.
            ("/unclaimed/link", vec![("character_id", "x")], 422),
            ("/players/1/main", vec![], 422),
            ("/review/abc/link", vec![], 400),
        ];
        for (path, mut fields, expected) in posts {
            fields.push(("csrf", csrf.as_str()));
            let answer = http
                .post(format!("{base}{path}"))
                .header("Cookie", &session)
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), expected, "POST {path} {fields:?}");
        }
    })
    .await;
}

/// An unlink form on one player's page that names another player's link (a stale page, a forged
/// form) is refused and that link stays: a wrong unlink is as bad as a wrong link.
#[tokio::test]
async fn unlinking_another_players_link_from_a_players_page_is_refused() {
    on_a_console(|app| async move {
        let base = &app.base;
        let http = client(localhost());
        let (session, csrf) = login(&http, base, "").await;
        let mut players = Vec::new();
        for name in ["Thrall", "Jaina"] {
            let character = seed::character(&app.pool, name, "stormrage").await;
            let player = seed::player(&app.pool, name, None).await;
            seed::link(&app.pool, player, character).await;
            let link: i32 = sqlx::query_scalar(
                "SELECT id FROM guild_identity.player_characters WHERE player_id = $1",
            )
            .bind(player)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            players.push((player, link));
        }
        let [(thrall, thrall_link), (jaina, jaina_link)] = players[..] else {
            unreachable!()
        };
        let links = || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM guild_identity.player_characters")
                .fetch_one(&app.pool)
                .await
                .unwrap()
        };
        let unlink = |player: i32, link: i32| {
            http.post(format!("{base}/players/{player}/unlink"))
                .header("Cookie", &session)
                .form(&[("csrf", csrf.clone()), ("link_id", link.to_string())])
                .send()
        };

        let refused = unlink(thrall, jaina_link).await.unwrap();
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
        assert_eq!(links().await, 2, "Jaina's link is untouched");

        let done = unlink(jaina, jaina_link).await.unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert_eq!(links().await, 1);
        let left: i32 = sqlx::query_scalar("SELECT id FROM guild_identity.player_characters")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(left, thrall_link);
    })
    .await;
}

/// The Unclaimed page keeps its lists per data stamp (speed, issue 16 §3): a page read twice
/// must still follow every change to what it lists, made after the first read and not through
/// the console (a new suggestion, a member leaving, a character getting a player).
#[tokio::test]
async fn the_unclaimed_page_follows_changes_made_after_it_was_cached() {
    on_a_console(|app| async move {
        let base = &app.base;
        let http = client(localhost());
        let (session, _) = login(&http, base, "").await;
        let pool = &app.pool;
        let character = seed::character(pool, "Thrall", "stormrage").await;
        let (first, second) = (
            seed::discord_user(pool, "1001", "gothrall").await,
            seed::discord_user(pool, "1002", "warchief").await,
        );
        let suggest = |member: i32| async move {
            sqlx::query(
                "INSERT INTO guild_identity.audit_issues
                   (issue_type, severity, wow_character_id, discord_member_id, summary, details,
                    issue_hash)
                 VALUES ('auto_link_suggestion', 'info', $1, $2, 'suggestion', '{\"score\": 0.8}',
                         md5($2::text))",
            )
            .bind(character)
            .bind(member)
            .execute(pool)
            .await
            .unwrap();
        };
        suggest(first).await;
        let unclaimed = || async {
            let page = http
                .get(format!("{base}/unclaimed"))
                .header("Cookie", &session)
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), 200);
            page.text().await.unwrap()
        };
        let character_card = format!("id=\"character-{character}\"");
        let links_to = |member: i32| format!("name=\"discord_user_id\" value=\"{member}\"");

        let page = unclaimed().await;
        assert!(page.contains(&character_card), "{page}");
        assert!(page.contains(&links_to(first)));
        assert!(!page.contains(&links_to(second)));
        assert_eq!(unclaimed().await, page, "unchanged data, the same page");

        suggest(second).await;
        let page = unclaimed().await;
        assert!(
            page.contains(&links_to(second)),
            "a new suggestion shows: {page}"
        );
        assert!(page.contains(&format!("id=\"member-{second}\"")));

        sqlx::query("UPDATE guild_identity.discord_users SET is_present = false WHERE id = $1")
            .bind(second)
            .execute(pool)
            .await
            .unwrap();
        let page = unclaimed().await;
        assert!(!page.contains(&format!("id=\"member-{second}\"")), "{page}");

        let player = seed::player(pool, "Thrall", None).await;
        seed::link(pool, player, character).await;
        let page = unclaimed().await;
        assert!(
            !page.contains(&character_card),
            "a linked character leaves: {page}"
        );
    })
    .await;
}

/// A hand-built `multipart/form-data` body of `fields` (name, value) in order, and its content
/// type: reqwest is built here without its multipart feature.
fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    const BOUNDARY: &str = "guild-sync-test-boundary";
    let mut body = String::new();
    for (name, value) in fields {
        let filename = if *name == "file" {
            "; filename=\"PATTSync.lua\""
        } else {
            ""
        };
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Every console form (each handler takes its fields through `CsrfForm`/`CsrfMultipart`) refuses
/// a post without the session's CSRF token, with a wrong one, or (the upload) with the token
/// after the file: 403, and nothing changes. The same forms with the token are accepted.
#[tokio::test]
async fn every_console_form_refuses_a_post_without_its_csrf_token() {
    on_a_console(|app| async move {
        let base = &app.base;
        let pool = &app.pool;
        let http = client(localhost());
        let (session, csrf) = login(&http, base, "").await;
        let (_, other_csrf) = login(&http, base, "someone else").await;

        let open_issue = issue(pool, "Thrall has no Discord account").await;
        let character = seed::character(pool, "Jaina", "stormrage").await;
        let member = seed::discord_user(pool, "200000000000000001", "jaina").await;
        let suggestion: i32 = sqlx::query_scalar(
            "INSERT INTO guild_identity.audit_issues
                 (issue_type, severity, summary, issue_hash, wow_character_id, discord_member_id)
             VALUES ('auto_link_suggestion', 'info', 'Jaina may be jaina', 'sugg', $1, $2)
             RETURNING id",
        )
        .bind(character)
        .bind(member)
        .fetch_one(pool)
        .await
        .unwrap();
        let alt = seed::character(pool, "Thrall", "stormrage").await;
        let player = seed::player(pool, "Thrall", None).await;
        seed::link(pool, player, alt).await;
        let link: i32 = sqlx::query_scalar(
            "SELECT id FROM guild_identity.player_characters WHERE player_id = $1",
        )
        .bind(player)
        .fetch_one(pool)
        .await
        .unwrap();
        let (character, member, alt) = (character.to_string(), member.to_string(), alt.to_string());
        let link = link.to_string();

        let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
            (format!("/review/{suggestion}/link"), vec![]),
            (format!("/review/{suggestion}/dismiss"), vec![]),
            (format!("/issues/{open_issue}/resolve"), vec![("note", "x")]),
            (
                "/unclaimed/link".into(),
                vec![("character_id", &character), ("discord_user_id", &member)],
            ),
            (
                format!("/players/{player}/unlink"),
                vec![("link_id", &link)],
            ),
            (
                format!("/players/{player}/main"),
                vec![("character_id", &alt)],
            ),
            ("/trigger/discord".into(), vec![]),
            ("/roles/plans/1/approve".into(), vec![]),
            ("/roles/runs/1/undo".into(), vec![]),
            ("/logout".into(), vec![]),
        ];
        let state = || async {
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT (SELECT version FROM guild_identity.data_version),
                        (SELECT count(*) FROM guild_identity.sync_log)",
            )
            .fetch_one(pool)
            .await
            .unwrap()
        };
        let before = state().await;
        for (path, fields) in &forms {
            let wrong = vec![("csrf", other_csrf.as_str())];
            for token in [vec![], vec![("csrf", "")], wrong] {
                let mut sent = fields.clone();
                sent.extend(token);
                let refused = http
                    .post(format!("{base}{path}"))
                    .header("Cookie", &session)
                    .form(&sent)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(refused.status(), 403, "POST {path} {sent:?}");
                assert!(refused.headers().get("set-cookie").is_none(), "POST {path}");
                let page = refused.text().await.unwrap();
                assert!(page.contains("CSRF token missing or wrong"), "{page}");
            }
        }
        let lua = "PATTSyncDB = {}";
        for fields in [
            vec![("file", lua)],
            vec![("csrf", other_csrf.as_str()), ("file", lua)],
            vec![("file", lua), ("csrf", csrf.as_str())],
        ] {
            let (content_type, body) = multipart(&fields);
            let refused = http
                .post(format!("{base}/upload"))
                .header("Cookie", &session)
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), 403, "upload {fields:?}");
        }
        assert_eq!(state().await, before, "a refused form changed something");

        // With the session's token the same forms do their work.
        for (path, fields) in [
            (format!("/issues/{open_issue}/resolve"), vec![("note", "x")]),
            (format!("/review/{suggestion}/dismiss"), vec![]),
            (
                format!("/players/{player}/unlink"),
                vec![("link_id", &link)],
            ),
        ] {
            let mut sent = fields;
            sent.push(("csrf", &csrf));
            let done = http
                .post(format!("{base}{path}"))
                .header("Cookie", &session)
                .form(&sent)
                .send()
                .await
                .unwrap();
            assert_eq!(done.status(), 303, "POST {path}");
        }
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM guild_identity.audit_issues WHERE resolved_at IS NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(open, 0);
        let links: i64 =
            sqlx::query_scalar("SELECT count(*) FROM guild_identity.player_characters")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(links, 0);
    })
    .await;
}
