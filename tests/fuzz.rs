//! Property tests against the real server: random bodies and query strings to every endpoint
//! that parses client input, and random text on the WebSocket. No input makes the server fail
//! (no 500, no panic) and each gets one of its documented answers.

mod common;

use common::{next, send_text, Auth, Frame, TestServer};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use serde_json::{json, Value};

/// Cases per property: modest, so that `make test` stays quick.
const CASES: u32 = 48;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,24}",
        "[a-zA-Z0-9 -]{1,80}",
        (0usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "username",
                        "password",
                        "drafts",
                        "pfaId",
                        "changes",
                        "reason",
                        "baseVersion",
                        "pfaIds",
                        "type",
                        "jobId",
                        "progress",
                        "data",
                        "notes",
                        "monthlyRate",
                        "forecastStart",
                    ])
                    .prop_map(str::to_owned),
                    "\\PC{0,10}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: JSON of any shape, or bytes that are not JSON at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Runs `property` on `strategy` with a runner of its own, inside this test's runtime.
fn check<S: Strategy>(strategy: S, property: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        runner.run(&strategy, property).unwrap();
    });
}

async fn send(server: &TestServer, method: &str, path: &str, token: &str, body: Vec<u8>) -> u16 {
    server
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("origin", server.origin())
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bodies_get_documented_answers_from_every_endpoint() {
    let server = TestServer::spawn_with(|c| {
        c.login_per_user_addr_per_min = 100_000;
        c.login_per_user_per_min = 100_000;
        c.login_per_addr_per_min = 100_000;
    })
    .await;
    server.seed("org-rio", 20).await;
    let admin = server.token("admin", &["publish"]).await;
    let runtime = tokio::runtime::Handle::current();
    let endpoints: [(&str, &str, &[u16]); 5] = [
        ("POST", "/api/auth/login", &[200, 401, 422]),
        ("PUT", "/api/orgs/org-rio/drafts", &[200, 400, 422]),
        ("POST", "/api/orgs/org-rio/drafts/discard", &[200, 422]),
        ("POST", "/api/orgs/org-rio/drafts/commit", &[202, 422]),
        ("POST", "/api/orgs/org-rio/events", &[202, 400, 422]),
    ];
    for (method, path, answers) in endpoints {
        check(body(), |body| {
            let shown = String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>();
            let status = runtime.block_on(send(&server, method, path, &admin, body));
            prop_assert!(
                answers.contains(&status),
                "{} {} answered {} to {}",
                method,
                path,
                status,
                shown
            );
            Ok(())
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_query_strings_get_documented_answers() {
    let server = TestServer::spawn().await;
    server.seed("org-rio", 20).await;
    let viewer = server.token("viewer", &[]).await;
    let runtime = tokio::runtime::Handle::current();
    let pair = (
        prop::sample::select(vec![
            "q",
            "category",
            "source",
            "dor",
            "discontinued",
            "modified",
            "sort",
            "page",
            "pageSize",
            "other",
        ]),
        prop_oneof![
            text(),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("true".to_owned()),
            Just("-monthlyRate".to_owned()),
        ],
    );
    check(prop::collection::vec(pair, 0..5), |pairs| {
        let path = format!("/api/orgs/org-rio/records {pairs:?}");
        let status = runtime.block_on(async {
            server
                .client
                .get(server.url("/api/orgs/org-rio/records"))
                .query(&pairs)
                .bearer_auth(&viewer)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        prop_assert!(
            [200, 400, 422].contains(&status),
            "{} answered {}",
            path,
            status
        );
        Ok(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_text_on_the_socket_gets_an_answer_and_the_socket_stays_open() {
    let server = TestServer::spawn().await;
    let token = server.token("admin", &["publish"]).await;
    let (socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(token.clone()), None)
        .await;
    let socket = tokio::sync::Mutex::new(socket);
    let runtime = tokio::runtime::Handle::current();
    let message = prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        (
            prop::sample::select(vec![
                "PAUSE_SYNC",
                "RESUME_SYNC",
                "CANCEL_SYNC",
                "RETRY_SYNC",
                "X"
            ]),
            json_value(),
            json_value(),
        )
            .prop_map(|(kind, job, id)| {
                json!({"type": kind, "jobId": job, "commandId": id}).to_string()
            }),
        "\\PC{0,100}",
    ];
    check(message, |text| {
        let answer = runtime.block_on(async {
            let mut socket = socket.lock().await;
            send_text(&mut socket, text.clone()).await;
            loop {
                match next(&mut socket).await {
                    Frame::Json(frame) if frame["type"] == "HEARTBEAT" => continue,
                    other => break other,
                }
            }
        });
        match answer {
            Frame::Json(frame) => prop_assert!(
                frame["type"] == "ERROR" || frame["type"] == "COMMAND_RESULT",
                "{} answered {}",
                text,
                frame
            ),
            other => prop_assert!(false, "{} closed the socket: {:?}", text, other),
        }
        Ok(())
    });
    let mut socket = socket.into_inner();
    server
        .publish(
            "org-rio",
            &token,
            &common::event("SYNC_SUCCESS", "after-fuzz"),
        )
        .await;
    assert_eq!(common::next_event(&mut socket).await["jobId"], "after-fuzz");
}
