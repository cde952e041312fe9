//! Accounts, sessions, tokens, CSRF and throttling, against the real server.

mod common;

use common::{close_code, set_cookie, Auth, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn sign_in_sets_an_http_only_lax_cookie_and_me_lists_the_memberships() {
    let server = TestServer::spawn().await;
    let response = server.login_response("planner", "pfa-demo").await;
    assert_eq!(response.status(), 200);
    let session = set_cookie(&response, "pfa_session").expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    // Beside it, a hint that scripts may read (it grants nothing): the page asks /me only then.
    let hint = set_cookie(&response, "pfa_signed_in").expect("the signed-in hint");
    assert!(
        hint.starts_with("pfa_signed_in=1;") && !hint.contains("HttpOnly"),
        "{hint}"
    );
    let cookie = session.split(';').next().unwrap().to_owned();

    let me: Value = server
        .client
        .get(server.url("/api/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["username"], "planner");
    let orgs: Vec<(&str, &str)> = me["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["organizationId"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        orgs,
        vec![("org-portarthur", "planner"), ("org-rio", "planner")]
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_401() {
    let server = TestServer::spawn().await;
    let wrong = server.login_response("planner", "nope").await;
    let unknown = server.login_response("nobody", "nope").await;
    assert_eq!(
        (wrong.status().as_u16(), unknown.status().as_u16()),
        (401, 401)
    );
    let (a, b): (Value, Value) = (wrong.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!(a, b);
    let me = server
        .client
        .get(server.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn bad_login_bodies_are_refused_with_a_message() {
    let server = TestServer::spawn().await;
    let response = server
        .client
        .post(server.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\": 5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(body["fields"]["body"].is_string(), "{body}");
}

/// Signs in as if from `client`, behind a trusted proxy on loopback that says so.
async fn login_from(server: &TestServer, client: &str, user: &str, password: &str) -> u16 {
    server
        .client
        .post(server.url("/api/auth/login"))
        .header("origin", server.origin())
        .header("x-forwarded-for", client)
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn behind_proxy(adjust: impl FnOnce(&mut pfa_sync::server::config::Config)) -> TestServer {
    TestServer::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        adjust(c);
    })
    .await
}

#[tokio::test]
async fn failed_logins_from_one_address_lock_that_address_not_the_user() {
    let server = behind_proxy(|c| c.login_per_user_addr_per_min = 10).await;
    for _ in 0..10 {
        assert_eq!(
            login_from(&server, "203.0.113.7", "planner", "guess").await,
            401
        );
    }
    assert_eq!(
        login_from(&server, "198.51.100.9", "planner", "pfa-demo").await,
        200,
        "the planner signs in from another address"
    );
    let response = server
        .client
        .post(server.url("/api/auth/login"))
        .header("origin", server.origin())
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"username": "planner", "password": "pfa-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        429,
        "the guessing address waits, right password or not"
    );
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        login_from(&server, "203.0.113.7", "viewer", "pfa-demo").await,
        200,
        "other users of that address are not locked out"
    );
}

#[tokio::test]
async fn successful_logins_are_not_counted() {
    let server = behind_proxy(|c| {
        c.login_per_user_addr_per_min = 3;
        c.login_per_user_per_min = 3;
        c.login_per_addr_per_min = 3;
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            login_from(&server, "203.0.113.7", "planner", "pfa-demo").await,
            200
        );
    }
}

#[tokio::test]
async fn guessing_one_user_from_many_addresses_meets_the_per_user_cap() {
    let server = behind_proxy(|c| {
        c.login_per_user_addr_per_min = 10;
        c.login_per_user_per_min = 5;
    })
    .await;
    for n in 1..=5 {
        let client = format!("203.0.113.{n}");
        assert_eq!(login_from(&server, &client, "admin", "guess").await, 401);
    }
    assert_eq!(
        login_from(&server, "198.51.100.9", "admin", "pfa-demo").await,
        429
    );
    assert_eq!(
        login_from(&server, "198.51.100.9", "viewer", "pfa-demo").await,
        200,
        "other users are not locked out"
    );
}

#[tokio::test]
async fn login_spraying_is_throttled_per_address() {
    let server = TestServer::spawn_with(|c| c.login_per_addr_per_min = 3).await;
    for user in ["a1", "a2", "a3"] {
        assert_eq!(server.login_response(user, "guess").await.status(), 401);
    }
    assert_eq!(server.login_response("a4", "guess").await.status(), 429);
}

#[tokio::test]
async fn logout_revokes_the_session_for_open_sockets_too() {
    let server = TestServer::spawn().await;
    let cookie = server.login("viewer", "pfa-demo").await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Cookie(cookie.clone()), None)
        .await;
    let other_cookie = server.login("viewer", "pfa-demo").await;
    let (mut other, _) = server
        .subscribe("org-rio", &Auth::Cookie(other_cookie.clone()), None)
        .await;

    let response = server
        .client
        .post(server.url("/api/auth/logout"))
        .header("cookie", &cookie)
        .header("origin", server.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for name in ["pfa_session", "pfa_signed_in"] {
        let removal = set_cookie(&response, name).unwrap_or_else(|| panic!("{name} removed"));
        assert!(removal.contains("Max-Age=0"), "{removal}");
    }
    assert_eq!(close_code(&mut socket).await, 4401);
    let me = server
        .client
        .get(server.url("/api/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    let mut again = server
        .ws("org-rio", &Auth::Cookie(cookie), None, None)
        .await
        .unwrap();
    assert_eq!(close_code(&mut again).await, 4401);

    // Another session of the same user is untouched.
    let token = server.token("admin", &[]).await;
    server
        .publish("org-rio", &token, &common::event("SYNC_SUCCESS", "j"))
        .await;
    assert_eq!(common::next_event(&mut other).await["jobId"], "j");
}

#[tokio::test]
async fn state_changing_requests_with_a_session_need_an_allowed_origin() {
    let server = TestServer::spawn().await;
    let cookie = server.login("admin", "pfa-demo").await;
    let post = |origin: Option<&'static str>| {
        let mut request = server
            .client
            .post(server.url("/api/orgs/org-rio/events"))
            .header("cookie", &cookie)
            .json(&common::event("SYNC_SUCCESS", "csrf"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        post(Some("http://evil.example")).await.unwrap().status(),
        403
    );
    assert_eq!(post(None).await.unwrap().status(), 403);
    let own = server
        .client
        .post(server.url("/api/orgs/org-rio/events"))
        .header("cookie", &cookie)
        .header("origin", server.origin())
        .json(&common::event("SYNC_SUCCESS", "csrf"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 202);
    let forged_login = server
        .client
        .post(server.url("/api/auth/login"))
        .header("origin", "http://evil.example")
        .json(&json!({"username": "admin", "password": "pfa-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged_login.status(), 403);
}

#[tokio::test]
async fn bearer_tokens_act_with_the_users_memberships() {
    let server = TestServer::spawn().await;
    let token = server.token("editor", &[]).await;
    let me: Value = server
        .client
        .get(server.url("/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["username"], "editor");
    assert_eq!(me["memberships"][0]["role"], "editor");
    let bad = server
        .client
        .get(server.url("/api/auth/me"))
        .bearer_auth("pfa_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
}

#[tokio::test]
async fn prod_mode_has_no_demo_users() {
    let server = TestServer::spawn_with(|c| c.mode = pfa_sync::server::config::Mode::Prod).await;
    assert_eq!(server.store.user_count().await.unwrap(), 0);
    assert_eq!(
        server.login_response("admin", "pfa-demo").await.status(),
        401
    );
}

#[tokio::test]
async fn the_cli_creates_users_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database_url(&dir).await;
    let bin = env!("CARGO_BIN_EXE_pfa-sync");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };

    let added = run(&[
        "user",
        "add",
        "ana",
        "--password",
        "secret-123",
        "--member",
        "org-rio:planner",
        "--member",
        "org-portarthur:viewer",
        "--database-url",
        &db,
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let again = run(&[
        "user",
        "add",
        "ana",
        "--password",
        "secret-123",
        "--member",
        "org-rio:planner",
        "--database-url",
        &db,
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad_role = run(&[
        "user",
        "add",
        "bo",
        "--password",
        "secret-123",
        "--member",
        "org-rio:owner",
        "--database-url",
        &db,
    ]);
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("viewer, editor, planner or admin"));

    let token = run(&[
        "token",
        "create",
        "--user",
        "ana",
        "--scope",
        "publish",
        "--database-url",
        &db,
    ]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap();
    assert!(
        token.trim().starts_with("pfa_") && token.trim().lines().count() == 1,
        "{token}"
    );
    let missing = run(&["token", "create", "--user", "nobody", "--database-url", &db]);
    assert!(!missing.status.success());
}

/// How long a socket may stay open after losing its authority: the check runs at each
/// heartbeat (500 ms here), plus the close.
const WITHIN_A_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(1500);

async fn closed_within_a_heartbeat(socket: &mut common::Socket, expected: u16, what: &str) {
    let started = std::time::Instant::now();
    assert_eq!(close_code(socket).await, expected, "{what}");
    assert!(
        started.elapsed() < WITHIN_A_HEARTBEAT,
        "{what}: closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn lost_authority_closes_open_sockets_within_a_heartbeat() {
    use pfa_sync::server::accounts_cli;
    let server = TestServer::spawn_with(|c| {
        c.heartbeat = std::time::Duration::from_millis(500);
        c.session_ttl = std::time::Duration::from_secs(3);
    })
    .await;
    let me = |auth: Auth| {
        let server = &server;
        async move {
            let request = server.client.get(server.url("/api/auth/me"));
            let request = match auth {
                Auth::Bearer(t) => request.bearer_auth(t),
                Auth::Cookie(c) => request.header("cookie", c),
                Auth::None => request,
            };
            request.send().await.unwrap().status().as_u16()
        }
    };

    // A revoked token.
    server.user("tess", &["org-rio:viewer"]).await;
    let token = server.token("tess", &[]).await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(token.clone()), None)
        .await;
    let id = accounts_cli::list_tokens(&server.store, "tess")
        .await
        .unwrap()[0]
        .id;
    accounts_cli::revoke_token(&server.store, id).await.unwrap();
    closed_within_a_heartbeat(&mut socket, 4401, "token revoked").await;
    assert_eq!(me(Auth::Bearer(token)).await, 401);

    // A removed user.
    server.user("gone", &["org-rio:planner"]).await;
    let token = server.token("gone", &[]).await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(token.clone()), None)
        .await;
    accounts_cli::remove_user(&server.store, "gone")
        .await
        .unwrap();
    closed_within_a_heartbeat(&mut socket, 4401, "user removed").await;
    assert_eq!(me(Auth::Bearer(token)).await, 401);
    assert_eq!(
        server.login_response("gone", "password-123").await.status(),
        401
    );

    // A removed membership: the other organization's socket stays open.
    server
        .user("mo", &["org-rio:planner", "org-portarthur:viewer"])
        .await;
    let token = server.token("mo", &[]).await;
    let (mut rio, _) = server
        .subscribe("org-rio", &Auth::Bearer(token.clone()), None)
        .await;
    let (mut portarthur, _) = server
        .subscribe("org-portarthur", &Auth::Bearer(token.clone()), None)
        .await;
    accounts_cli::set_role(&server.store, "mo", "org-rio:none")
        .await
        .unwrap();
    closed_within_a_heartbeat(&mut rio, 4403, "membership removed").await;
    let (status, _) = server
        .api("GET", "/api/orgs/org-rio/records", &token, None)
        .await;
    assert_eq!(status, 404);
    assert!(
        common::next_within(&mut portarthur, std::time::Duration::from_millis(1200))
            .await
            .is_some_and(|f| matches!(f, common::Frame::Json(_))),
        "still open in the organization it belongs to (heartbeats arrive)"
    );

    // An expired session (3 s here).
    let cookie = server.login("viewer", "pfa-demo").await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Cookie(cookie.clone()), None)
        .await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut socket).await, 4401, "session expired");
    let after = started.elapsed();
    assert!(
        after < std::time::Duration::from_secs(3) + WITHIN_A_HEARTBEAT,
        "closed {after:?} after sign-in"
    );
    assert_eq!(me(Auth::Cookie(cookie)).await, 401);
}

#[tokio::test]
async fn a_lowered_role_takes_effect_on_the_next_command() {
    use pfa_sync::server::accounts_cli;
    let server = TestServer::spawn().await;
    server.user("lou", &["org-rio:planner"]).await;
    let token = server.token("lou", &[]).await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(token), None)
        .await;
    accounts_cli::set_role(&server.store, "lou", "org-rio:viewer")
        .await
        .unwrap();
    common::send_text(
        &mut socket,
        json!({"type": "PAUSE_SYNC", "jobId": "job-1", "commandId": "c-1"}).to_string(),
    )
    .await;
    let answer = common::next(&mut socket).await.json();
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("viewer role"),
        "{answer}"
    );
}

#[tokio::test]
async fn signing_in_ends_the_session_the_browser_presented() {
    let server = TestServer::spawn().await;
    let first = server.login("viewer", "pfa-demo").await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Cookie(first.clone()), None)
        .await;
    let response = server
        .client
        .post(server.url("/api/auth/login"))
        .header("origin", server.origin())
        .header("cookie", &first)
        .json(&json!({"username": "planner", "password": "pfa-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(close_code(&mut socket).await, 4401);
    let me = server
        .client
        .get(server.url("/api/auth/me"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "the old session is revoked");
}

#[tokio::test]
async fn in_production_behind_an_https_origin_the_session_cookie_is_secure() {
    let server = TestServer::spawn_with(|c| {
        c.mode = pfa_sync::server::config::Mode::Prod;
        c.allowed_origins = vec!["https://pfa.example.com".into()];
    })
    .await;
    server.user("ana", &["org-rio:viewer"]).await;
    let response = server
        .client
        .post(server.url("/api/auth/login"))
        .header("origin", "https://pfa.example.com")
        .json(&json!({"username": "ana", "password": "password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = set_cookie(&response, "pfa_session").expect("a session cookie");
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn a_production_server_off_loopback_without_its_origin_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = pfa_sync::server::config::Config::for_tests(common::database_url(&dir).await);
    config.mode = pfa_sync::server::config::Mode::Prod;
    config.addr = "0.0.0.0:0".parse().unwrap();
    let refused = pfa_sync::server::startup::Application::build(config)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{refused:#}").contains("--allowed-origin"),
        "{refused:#}"
    );
}

#[tokio::test]
async fn the_sign_in_form_posts_and_is_redirected_without_a_credential_in_any_url() {
    let server = TestServer::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |password: &'static str| {
        client
            .post(server.url("/api/auth/login"))
            .header("origin", server.origin())
            .form(&[("username", "planner"), ("password", password)])
            .send()
    };
    let signed_in = post("pfa-demo").await.unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/orgs");
    let cookie = set_cookie(&signed_in, "pfa_session").expect("a session cookie");
    let me = server
        .client
        .get(server.url("/api/auth/me"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let refused = post("wrong-password").await.unwrap();
    assert_eq!(refused.status(), 303);
    assert_eq!(refused.headers()["location"], "/login?error=invalid");
    assert!(set_cookie(&refused, "pfa_session").is_none());

    // A form from another site is refused like any cross-site request with a cookie.
    let forged = client
        .post(server.url("/api/auth/login"))
        .header("origin", "https://evil.example")
        .form(&[("username", "planner"), ("password", "pfa-demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}
