//! The authenticated per-org WebSocket, against the real server: auth and isolation, replay,
//! retention, heartbeat, backpressure, limits and shutdown.

mod common;

use common::{
    close_code, event, next, next_event, next_within, send_text, Auth, Frame, TestServer,
};
use serde_json::{json, Value};
use std::time::Duration;

const CARD_EXAMPLES: [&str; 5] = [
    include_str!("../src/protocol/fixtures/sync_started.json"),
    include_str!("../src/protocol/fixtures/sync_progress.json"),
    include_str!("../src/protocol/fixtures/sync_success.json"),
    include_str!("../src/protocol/fixtures/sync_conflict.json"),
    include_str!("../src/protocol/fixtures/sync_failed.json"),
];

async fn admin_token(server: &TestServer) -> String {
    server.token("admin", &[]).await
}

#[tokio::test]
async fn every_card_example_reaches_subscribers_with_the_same_fields() {
    let server = TestServer::spawn().await;
    let token = admin_token(&server).await;
    let (mut socket, connected) = server
        .subscribe("org-rio", &Auth::Bearer(token.clone()), None)
        .await;
    assert_eq!(connected["organizationId"], "org-rio");
    assert_eq!(connected["seq"], 0);
    for (i, raw) in CARD_EXAMPLES.iter().enumerate() {
        let original: Value = serde_json::from_str(raw).unwrap();
        let (status, answer) = server.publish("org-rio", &token, &original).await;
        assert_eq!(status, 202, "{answer}");
        let received = next_event(&mut socket).await;
        for (field, value) in original.as_object().unwrap() {
            if field == "timestamp" {
                let sent = chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap();
                let got = received[field].as_str().unwrap();
                assert_eq!(chrono::DateTime::parse_from_rfc3339(got).unwrap(), sent);
                assert!(
                    got.ends_with('Z') && got.contains('.'),
                    "UTC with microseconds: {got}"
                );
            } else {
                assert_eq!(&received[field], value, "field {field}");
            }
        }
        assert_eq!(received["seq"], i as u64 + 1);
        assert_eq!(received["organizationId"], "org-rio");
    }
}

#[tokio::test]
async fn a_socket_without_sign_in_closes_with_4401_before_any_event() {
    let server = TestServer::spawn().await;
    let mut socket = server.ws("org-rio", &Auth::None, None, None).await.unwrap();
    assert!(matches!(next(&mut socket).await, Frame::Close(4401, _)));
    let mut socket = server
        .ws(
            "org-rio",
            &Auth::Bearer("pfa_not-a-token".into()),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(matches!(next(&mut socket).await, Frame::Close(4401, _)));
}

#[tokio::test]
async fn a_non_member_closes_with_4403_before_any_event() {
    let server = TestServer::spawn().await;
    let cookie = server.login("viewer", "pfa-demo").await; // member of org-rio only
    let mut socket = server
        .ws("org-portarthur", &Auth::Cookie(cookie.clone()), None, None)
        .await
        .unwrap();
    assert!(matches!(next(&mut socket).await, Frame::Close(4403, _)));
    let mut socket = server
        .ws("org-nowhere", &Auth::Cookie(cookie), None, None)
        .await
        .unwrap();
    assert!(matches!(next(&mut socket).await, Frame::Close(4403, _)));
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_own_origin_accepted() {
    let server = TestServer::spawn().await;
    let cookie = Auth::Cookie(server.login("viewer", "pfa-demo").await);
    let refused = server
        .ws("org-rio", &cookie, None, Some("http://evil.example"))
        .await;
    assert_eq!(refused.err(), Some(403));
    let own = server.origin();
    let mut socket = server
        .ws("org-rio", &cookie, None, Some(&own))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await.json()["type"], "CONNECTED");
}

#[tokio::test]
async fn a_viewer_of_one_org_receives_nothing_of_another_while_both_publish() {
    let server = TestServer::spawn().await;
    server.user("rio-viewer", &["org-rio:viewer"]).await;
    server.user("pa-viewer", &["org-portarthur:viewer"]).await;
    let token = admin_token(&server).await; // admin of both orgs
    let (mut rio, _) = server
        .subscribe(
            "org-rio",
            &Auth::Bearer(server.token("rio-viewer", &[]).await),
            None,
        )
        .await;
    let (mut pa, _) = server
        .subscribe(
            "org-portarthur",
            &Auth::Bearer(server.token("pa-viewer", &[]).await),
            None,
        )
        .await;

    for i in 0..50 {
        let (a, _) = server
            .publish(
                "org-rio",
                &token,
                &event("SYNC_SUCCESS", &format!("rio-{i}")),
            )
            .await;
        let (b, _) = server
            .publish(
                "org-portarthur",
                &token,
                &event("SYNC_SUCCESS", &format!("pa-{i}")),
            )
            .await;
        assert_eq!((a, b), (202, 202));
    }
    for (socket, org, prefix) in [
        (&mut rio, "org-rio", "rio-"),
        (&mut pa, "org-portarthur", "pa-"),
    ] {
        for i in 0..50 {
            let e = next_event(socket).await;
            assert_eq!(e["organizationId"], org);
            assert_eq!(e["jobId"], format!("{prefix}{i}"));
        }
        assert!(
            next_within(socket, Duration::from_millis(300))
                .await
                .is_none(),
            "nothing else arrives"
        );
    }
}

#[tokio::test]
async fn a_thousand_events_missed_while_disconnected_are_replayed_in_order_once() {
    let server = TestServer::spawn().await;
    let token = admin_token(&server).await;
    let auth = Auth::Bearer(token.clone());
    let (mut socket, _) = server.subscribe("org-rio", &auth, None).await;
    server
        .publish("org-rio", &token, &event("SYNC_STARTED", "before"))
        .await;
    let last_seen = next_event(&mut socket).await["seq"].as_u64().unwrap();
    drop(socket);

    for i in 0..1000 {
        let kind = ["SYNC_PROGRESS", "SYNC_SUCCESS", "SYNC_FAILED"][i % 3];
        let (status, _) = server
            .publish("org-rio", &token, &event(kind, &format!("missed-{i}")))
            .await;
        assert_eq!(status, 202);
    }
    let (mut socket, connected) = server.subscribe("org-rio", &auth, Some(last_seen)).await;
    assert_eq!(connected["replayingSince"], last_seen);
    assert_eq!(connected["seq"], last_seen + 1000);
    for i in 0..1000u64 {
        let e = next_event(&mut socket).await;
        assert_eq!(
            e["seq"],
            last_seen + 1 + i,
            "in order, no gap, no duplicate"
        );
        assert_eq!(e["jobId"], format!("missed-{i}"));
    }
    // Then live, with nothing replayed twice.
    server
        .publish("org-rio", &token, &event("SYNC_SUCCESS", "live"))
        .await;
    let live = next_event(&mut socket).await;
    assert_eq!(
        (live["jobId"].as_str(), live["seq"].as_u64()),
        (Some("live"), Some(last_seen + 1001))
    );
}

#[tokio::test]
async fn a_gap_older_than_the_log_keeps_gets_resync_required_then_live_events() {
    let server = TestServer::spawn_with(|c| c.event_log_max_events = 10).await;
    let token = admin_token(&server).await;
    for i in 0..30 {
        server
            .publish("org-rio", &token, &event("SYNC_SUCCESS", &format!("e{i}")))
            .await;
    }
    let auth = Auth::Bearer(token.clone());
    let (mut socket, _) = server.subscribe("org-rio", &auth, Some(1)).await;
    let resync = next(&mut socket).await.json();
    assert_eq!(resync["type"], "RESYNC_REQUIRED", "{resync}");
    assert_eq!(
        (
            resync["since"].as_u64(),
            resync["oldestSeq"].as_u64(),
            resync["seq"].as_u64()
        ),
        (Some(1), Some(21), Some(30))
    );
    server
        .publish("org-rio", &token, &event("SYNC_SUCCESS", "after"))
        .await;
    assert_eq!(next_event(&mut socket).await["seq"], 31);

    // Within retention the same log replays; a since from the future asks for a resync.
    let (mut socket, _) = server.subscribe("org-rio", &auth, Some(25)).await;
    assert_eq!(next_event(&mut socket).await["seq"], 26);
    let (mut socket, _) = server.subscribe("org-rio", &auth, Some(500)).await;
    assert_eq!(next(&mut socket).await.json()["type"], "RESYNC_REQUIRED");
}

#[tokio::test]
async fn heartbeats_arrive_every_interval() {
    let server = TestServer::spawn_with(|c| c.heartbeat = Duration::from_secs(1)).await;
    let (mut socket, connected) = server
        .subscribe("org-rio", &Auth::Bearer(admin_token(&server).await), None)
        .await;
    assert_eq!(connected["heartbeatIntervalSecs"], 1);
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let frame = next(&mut socket).await.json();
        assert_eq!(frame["type"], "HEARTBEAT", "{frame}");
        assert_eq!(frame["seq"], 0);
    }
    assert!(started.elapsed() < Duration::from_millis(3500));
}

#[tokio::test]
async fn a_peer_that_stops_answering_is_dropped_within_two_intervals() {
    let server = TestServer::spawn_with(|c| c.heartbeat = Duration::from_secs(1)).await;
    let (socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(admin_token(&server).await), None)
        .await;
    assert_eq!(server.hub.subscriber_count("org-rio"), 1);
    // The client stops reading, so it never answers the server's pings.
    let stopped = std::time::Instant::now();
    while server.hub.subscriber_count("org-rio") > 0 {
        assert!(
            stopped.elapsed() < Duration::from_millis(2600),
            "still subscribed after two intervals"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(socket);
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_connected() {
    let server = TestServer::spawn_with(|c| c.heartbeat = Duration::from_secs(1)).await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(admin_token(&server).await), None)
        .await;
    for _ in 0..4 {
        assert_eq!(next(&mut socket).await.json()["type"], "HEARTBEAT");
    }
    assert_eq!(server.hub.subscriber_count("org-rio"), 1);
}

/// Publishes `count` big events of `kind` for `job` (15 KiB each, near the 16 KiB limit of a
/// published event, to fill socket buffers).
async fn publish_big(
    server: &TestServer,
    token: &str,
    kind: &str,
    job: &str,
    count: usize,
) -> Vec<u64> {
    let padding = "x".repeat(15 * 1024);
    let mut seqs = Vec::with_capacity(count);
    for i in 0..count {
        let mut body = event(kind, job);
        body["progress"] = json!(i % 101);
        body["data"] = json!({ "padding": padding });
        let (status, answer) = server.publish("org-rio", token, &body).await;
        assert_eq!(status, 202);
        seqs.push(answer["seq"].as_u64().unwrap());
    }
    seqs
}

#[tokio::test]
async fn a_reader_that_stops_reading_gets_coalesced_progress_then_4008_while_fast_readers_are_unaffected(
) {
    let server = TestServer::spawn_with(|c| c.ws_outbox_capacity = 16).await;
    let token = admin_token(&server).await;
    let auth = Auth::Bearer(token.clone());
    let (mut slow, _) = server.subscribe("org-rio", &auth, None).await;
    let (mut fast, _) = server.subscribe("org-rio", &auth, None).await;

    // The fast reader reads everything as it comes, until the test's final marker.
    let fast_reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            match next(&mut fast).await {
                Frame::Json(e) if e["type"] == "HEARTBEAT" => continue,
                Frame::Json(e) => {
                    let done = e["jobId"] == "done";
                    seen.push(e);
                    if done {
                        return seen;
                    }
                }
                other => panic!("fast reader was closed: {other:?}"),
            }
        }
    });

    // Phase 1: the slow reader does not read while 1,200 progress events of one job come.
    let progress = publish_big(&server, &token, "SYNC_PROGRESS", "job-a", 1200).await;
    let (_, checkpoint) = server
        .publish("org-rio", &token, &event("SYNC_SUCCESS", "checkpoint"))
        .await;
    let mut slow_progress = Vec::new();
    loop {
        let e = next_event(&mut slow).await;
        if e["jobId"] == "checkpoint" {
            assert_eq!(e["seq"], checkpoint["seq"]);
            break;
        }
        slow_progress.push(e["seq"].as_u64().unwrap());
    }
    assert!(
        slow_progress.len() < progress.len(),
        "progress was coalesced: got all {}",
        progress.len()
    );
    assert_eq!(
        slow_progress.last(),
        progress.last(),
        "the latest progress wins"
    );
    assert!(
        slow_progress.windows(2).all(|w| w[0] < w[1]),
        "seq stays increasing"
    );

    // Phase 2: terminal events cannot be coalesced; the queue fills and the reader is closed.
    let successes = publish_big(&server, &token, "SYNC_SUCCESS", "job-b", 1200).await;
    let mut received = Vec::new();
    let code = loop {
        match next(&mut slow).await {
            Frame::Json(e) if e["type"] == "HEARTBEAT" => {}
            Frame::Json(e) => received.push(e["seq"].as_u64().unwrap()),
            Frame::Close(code, _) => break code,
            Frame::Ended => break 1006,
        }
    };
    assert_eq!(code, 4008);
    assert!(received.len() < successes.len());
    // It resumes with `since` and gets every terminal event it missed.
    let last = received
        .last()
        .copied()
        .unwrap_or(checkpoint["seq"].as_u64().unwrap());
    let (mut resumed, _) = server.subscribe("org-rio", &auth, Some(last)).await;
    for expected in successes.iter().filter(|s| **s > last) {
        assert_eq!(next_event(&mut resumed).await["seq"], *expected);
    }

    server
        .publish("org-rio", &token, &event("SYNC_SUCCESS", "done"))
        .await;
    let seen = fast_reader.await.unwrap();
    let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let terminal: Vec<u64> = seen
        .iter()
        .filter(|e| e["type"] == "SYNC_SUCCESS")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        terminal.len(),
        successes.len() + 2,
        "every terminal event reached the fast reader"
    );
    assert!(seqs.contains(progress.last().unwrap()));
}

#[tokio::test]
async fn a_message_over_64_kib_closes_with_1009() {
    let server = TestServer::spawn().await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(admin_token(&server).await), None)
        .await;
    send_text(&mut socket, "x".repeat(64 * 1024 + 1)).await;
    assert_eq!(close_code(&mut socket).await, 1009);
}

#[tokio::test]
async fn a_client_that_floods_pings_is_closed_with_1008_while_health_stays_fast() {
    use futures::{FutureExt, SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::spawn().await;
    let viewer = Auth::Bearer(server.token("viewer", &[]).await);
    let (mut socket, _) = server.subscribe("org-rio", &viewer, None).await;
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let health = tokio::spawn({
        let (client, url, flooding) = (
            server.client.clone(),
            server.url("/health"),
            flooding.clone(),
        );
        async move {
            let mut slowest = Duration::ZERO;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let status = client.get(&url).send().await.unwrap().status();
                assert_eq!(status, 200);
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            slowest
        }
    });
    // Pings in batches, without reading, except to notice the server's close.
    let (mut sent, mut code) = (0u32, None);
    'flood: while sent < 1_000_000 {
        for _ in 0..100 {
            if socket
                .feed(Message::Ping(Default::default()))
                .await
                .is_err()
            {
                break 'flood;
            }
            sent += 1;
        }
        if socket.flush().await.is_err() {
            break;
        }
        // The server runs on this test's runtime: let it read what was sent.
        tokio::task::yield_now().await;
        while let Some(message) = socket.next().now_or_never() {
            match message {
                Some(Ok(Message::Close(Some(close)))) => {
                    code = Some(u16::from(close.code));
                    break 'flood;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => break 'flood,
            }
        }
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(code, Some(1008), "after {sent} pings");
    assert!(sent < 10_000, "closed early: {sent} pings");
    let slowest = health.await.unwrap();
    assert!(
        slowest < Duration::from_millis(100),
        "/health took {slowest:?}"
    );
}

#[tokio::test]
async fn a_client_that_pings_now_and_then_stays_connected() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::spawn().await;
    let token = admin_token(&server).await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(token.clone()), None)
        .await;
    // The whole burst at once, then more at the sustained rate.
    for n in 0..60 {
        socket
            .send(Message::Ping(Default::default()))
            .await
            .unwrap();
        if n >= 45 {
            tokio::time::sleep(Duration::from_millis(110)).await;
        }
    }
    server
        .publish("org-rio", &token, &event("SYNC_SUCCESS", "still-here"))
        .await;
    assert_eq!(next_event(&mut socket).await["jobId"], "still-here");
}

#[tokio::test]
async fn a_user_gets_at_most_the_configured_sockets_and_the_next_is_closed_with_4429() {
    let server = TestServer::spawn().await;
    let viewer = Auth::Bearer(server.token("viewer", &[]).await);
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(server.subscribe("org-rio", &viewer, None).await.0);
    }
    for _ in 0..10 {
        let mut refused = server
            .ws("org-rio", &viewer, None, None)
            .await
            .expect("upgraded");
        assert_eq!(close_code(&mut refused).await, 4429);
    }
    let planner = Auth::Bearer(server.token("planner", &[]).await);
    server.subscribe("org-rio", &planner, None).await;
    // Closing one makes room for one.
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..100 {
        let mut socket = server
            .ws("org-rio", &viewer, None, None)
            .await
            .expect("upgraded");
        match next(&mut socket).await {
            Frame::Json(connected) if connected["type"] == "CONNECTED" => {
                reopened = Some(socket);
                break;
            }
            Frame::Close(4429, _) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(reopened.is_some(), "a closed socket frees its place");
}

#[tokio::test]
async fn malformed_input_gets_an_error_frame_and_the_socket_stays_open() {
    let server = TestServer::spawn().await;
    let token = admin_token(&server).await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(token.clone()), None)
        .await;
    send_text(&mut socket, "{not json".into()).await;
    let error = next(&mut socket).await.json();
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("ERROR"), Some("MALFORMED_MESSAGE"))
    );
    send_text(&mut socket, json!({"type": "DROP_EVERYTHING"}).to_string()).await;
    assert_eq!(next(&mut socket).await.json()["code"], "UNKNOWN_COMMAND");
    send_text(&mut socket, json!({"type": "PAUSE_SYNC"}).to_string()).await;
    assert_eq!(next(&mut socket).await.json()["code"], "INVALID_COMMAND");

    server
        .publish("org-rio", &token, &event("SYNC_SUCCESS", "still-open"))
        .await;
    assert_eq!(next_event(&mut socket).await["jobId"], "still-open");
}

#[tokio::test]
async fn commands_are_role_checked_and_answered_once_per_command_id() {
    let server = TestServer::spawn().await;
    let viewer = Auth::Bearer(server.token("viewer", &[]).await);
    let (mut socket, _) = server.subscribe("org-rio", &viewer, None).await;
    let command = json!({"type": "PAUSE_SYNC", "jobId": "job-1", "commandId": "c-1"}).to_string();
    send_text(&mut socket, command.clone()).await;
    let result = next(&mut socket).await.json();
    assert_eq!(
        (result["type"].as_str(), result["ok"].as_bool()),
        (Some("COMMAND_RESULT"), Some(false))
    );
    assert!(
        result["message"].as_str().unwrap().contains("planner"),
        "{result}"
    );

    let planner = Auth::Bearer(server.token("planner", &[]).await);
    let (mut socket, _) = server.subscribe("org-rio", &planner, None).await;
    let command =
        json!({"type": "CANCEL_SYNC", "jobId": "job-unknown", "commandId": "c-2"}).to_string();
    send_text(&mut socket, command.clone()).await;
    let first = next(&mut socket).await.json();
    assert_eq!(first["commandId"], "c-2");
    assert!(
        first["message"].as_str().unwrap().contains("no sync job"),
        "{first}"
    );
    send_text(&mut socket, command).await;
    assert_eq!(
        next(&mut socket).await.json(),
        first,
        "a repeated commandId gets the same answer"
    );
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_1001() {
    let server = TestServer::spawn().await;
    let (mut socket, _) = server
        .subscribe("org-rio", &Auth::Bearer(admin_token(&server).await), None)
        .await;
    server.shutdown.cancel();
    assert_eq!(close_code(&mut socket).await, 1001);
    let stopped = tokio::time::timeout(Duration::from_secs(15), server.task).await;
    assert!(stopped.expect("server stops").unwrap().is_ok());
}
