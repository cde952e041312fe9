//! The publish API: who may publish, and what is refused.

mod common;

use common::{event, next_event, Auth, TestServer};
use serde_json::json;

#[tokio::test]
async fn admins_publish_and_members_receive() {
    let server = TestServer::spawn().await;
    let (mut socket, _) = server
        .subscribe(
            "org-rio",
            &Auth::Bearer(server.token("viewer", &[]).await),
            None,
        )
        .await;
    let (status, answer) = server
        .publish(
            "org-rio",
            &server.token("admin", &[]).await,
            &event("SYNC_STARTED", "j1"),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        (answer["seq"].as_u64(), answer["organizationId"].as_str()),
        (Some(1), Some("org-rio"))
    );
    assert_eq!(next_event(&mut socket).await["jobId"], "j1");
}

#[tokio::test]
async fn a_non_admin_is_refused_with_403_unless_the_token_has_the_publish_scope() {
    let server = TestServer::spawn().await;
    let (status, body) = server
        .publish(
            "org-rio",
            &server.token("planner", &[]).await,
            &event("SYNC_SUCCESS", "j"),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = server
        .publish(
            "org-rio",
            &server.token("viewer", &["publish"]).await,
            &event("SYNC_SUCCESS", "j"),
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn non_members_get_404_and_strangers_401() {
    let server = TestServer::spawn().await;
    let viewer = server.token("viewer", &["publish"]).await; // member of org-rio only
    assert_eq!(
        server
            .publish("org-portarthur", &viewer, &event("SYNC_SUCCESS", "j"))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .publish("org-nowhere", &viewer, &event("SYNC_SUCCESS", "j"))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .publish("org-rio", "pfa_forged", &event("SYNC_SUCCESS", "j"))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn bad_payloads_get_422_with_every_field_error() {
    let server = TestServer::spawn().await;
    let token = server.token("admin", &[]).await;
    let (status, body) = server
        .publish(
            "org-rio",
            &token,
            &json!({"type": "SYNC_SOMETIMES", "progress": 150, "seq": 3}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "VALIDATION_FAILED");
    for field in ["type", "jobId", "progress", "seq"] {
        assert!(body["fields"][field].is_string(), "{field}: {body}");
    }
    let response = server
        .client
        .post(server.url("/api/orgs/org-rio/events"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"type\":")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let big = json!({"type": "SYNC_PROGRESS", "jobId": "j", "progress": 1,
                     "data": {"blob": "x".repeat(16 * 1024)}});
    let (status, body) = server.publish("org-rio", &token, &big).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["fields"]["body"]
            .as_str()
            .unwrap()
            .contains("at most 16384"),
        "{body}"
    );
    // Nothing was published by the refused requests.
    assert_eq!(server.store.latest_seq("org-rio").await.unwrap(), 0);
}
