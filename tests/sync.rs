//! Drafts, commit and the sync engine against the built-in PEMS simulator, end to end:
//! HTTP API in, sync events out of the WebSocket, PEMS faults driven through its API.

mod common;

use common::{next, send_text, Auth, Socket, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const ORG: &str = "org-rio";

async fn server() -> TestServer {
    server_with(|_| {}).await
}

async fn server_with(adjust: impl FnOnce(&mut pfa_sync::server::config::Config)) -> TestServer {
    let server = TestServer::spawn_with(|c| {
        c.sync.retry_base = Duration::from_millis(10);
        c.sync.retry_cap = Duration::from_millis(40);
        c.sync.rate_per_org = 1000;
        c.sync.progress_interval = Duration::from_millis(20);
        adjust(c);
    })
    .await;
    server.seed(ORG, 20).await;
    server
}

fn pfa(n: usize) -> String {
    format!("PFA-{n:05}")
}

async fn record(server: &TestServer, token: &str, n: usize) -> Value {
    let (status, body) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/records/{}", pfa(n)),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn save(server: &TestServer, token: &str, drafts: Value) -> (u16, Value) {
    server
        .api(
            "PUT",
            &format!("/api/orgs/{ORG}/drafts"),
            token,
            Some(json!({ "drafts": drafts })),
        )
        .await
}

async fn commit(server: &TestServer, token: &str) -> String {
    let (status, body) = server
        .api(
            "POST",
            &format!("/api/orgs/{ORG}/drafts/commit"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["job"]["id"].as_str().unwrap().to_owned()
}

/// Reads events until the job-level terminal event of `job`; returns every event of the job.
async fn until_job_ends(socket: &mut Socket, job: &str) -> Vec<Value> {
    until_jobs_end(socket, &[job]).await.remove(0)
}

/// Reads events until every job in `jobs` has had its job-level terminal event (in any
/// order, so a job that finishes first is not missed); returns each job's events.
async fn until_jobs_end(socket: &mut Socket, jobs: &[&str]) -> Vec<Vec<Value>> {
    let mut seen: Vec<Vec<Value>> = vec![Vec::new(); jobs.len()];
    let mut open = jobs.len();
    while open > 0 {
        let e = tokio::time::timeout(Duration::from_secs(20), common::next_event(socket))
            .await
            .expect("jobs end in time");
        let Some(i) = jobs.iter().position(|j| e["jobId"] == *j) else {
            continue;
        };
        let terminal = e["pfaId"].is_null()
            && matches!(e["type"].as_str(), Some("SYNC_SUCCESS" | "SYNC_FAILED"));
        seen[i].push(e);
        if terminal {
            open -= 1;
        }
    }
    seen
}

/// Saves one draft of record `n` as `token` and commits it while watching the socket; answers
/// the job id and the job's events up to its terminal one.
async fn sync_one(
    server: &TestServer,
    token: &str,
    n: usize,
    changes: Value,
) -> (String, Vec<Value>) {
    let (status, body) = save(
        server,
        token,
        json!([{ "pfaId": pfa(n), "changes": changes }]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (mut socket, _) = server
        .subscribe(ORG, &Auth::Bearer(token.to_owned()), None)
        .await;
    let job_id = commit(server, token).await;
    let events = until_job_ends(&mut socket, &job_id).await;
    (job_id, events)
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

async fn job(server: &TestServer, token: &str, job: &str) -> Value {
    server
        .api("GET", &format!("/api/orgs/{ORG}/jobs/{job}"), token, None)
        .await
        .1
}

#[tokio::test]
async fn a_committed_draft_is_synced_with_live_events_a_new_version_and_a_history_row() {
    let server = server().await;
    let planner = server.token("planner", &[]).await;
    let before = record(&server, &planner, 1).await;
    let (status, body) = save(&server, &planner, json!([{ "pfaId": pfa(1), "changes": { "forecastStart": "2026-03-02" }, "reason": "crane arrives later" }])).await;
    assert_eq!(status, 200, "{body}");
    let drafted = record(&server, &planner, 1).await;
    assert_eq!(drafted["draft"]["changes"]["forecastStart"], "2026-03-02");

    let (mut socket, _) = server
        .subscribe(ORG, &Auth::Bearer(server.token("viewer", &[]).await), None)
        .await;
    let job_id = commit(&server, &planner).await;
    let events = until_job_ends(&mut socket, &job_id).await;
    assert_eq!(events[0]["type"], "SYNC_STARTED");
    assert!(events[0]["pfaId"].is_null());
    let success = of_type(&events, "SYNC_SUCCESS");
    assert_eq!(success[0]["pfaId"], pfa(1));
    assert_eq!(
        success[0]["message"],
        format!("Successfully synced {}", pfa(1))
    );
    let progress = of_type(&events, "SYNC_PROGRESS");
    assert_eq!(progress.last().unwrap()["progress"], 100);
    assert_eq!(progress.last().unwrap()["message"], "Synced 1 of 1 records");
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "completed");

    let after = record(&server, &planner, 1).await;
    assert_eq!(after["forecastStart"], "2026-03-02");
    assert_eq!(after["version"], before["version"].as_i64().unwrap() + 1);
    assert!(after["draft"].is_null(), "the draft became the job");
    let (_, history) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/records/{}/history", pfa(1)),
            &planner,
            None,
        )
        .await;
    let newest = &history["versions"][0];
    assert_eq!(newest["version"], 2);
    assert_eq!(newest["changedBy"], "planner");
    assert_eq!(newest["reason"], "crane arrives later");
    assert_eq!(newest["changes"]["forecastStart"]["to"], "2026-03-02");
    assert_eq!(
        job(&server, &planner, &job_id).await["job"]["status"],
        "completed"
    );
}

async fn remote_edit(server: &TestServer, n: usize, changes: Value) {
    let (status, body) = server
        .pems_call("POST", "/api/pems/_faults/remote-edit", Some(json!({"organizationCode": "RIO", "pfaId": pfa(n), "changes": changes, "baseVersion": 1})))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_overlapping_remote_edit_is_a_conflict_resolved_each_of_the_three_ways() {
    let server = server().await;
    let planner = server.token("planner", &[]).await;
    for n in 1..=3 {
        remote_edit(&server, n, json!({"forecastStart": "2026-05-15"})).await;
    }
    save(&server, &planner, json!((1..=3).map(|n| json!({"pfaId": pfa(n), "changes": {"forecastStart": "2026-04-01", "notes": "mine"}})).collect::<Vec<_>>())).await;
    let (mut socket, _) = server
        .subscribe(ORG, &Auth::Bearer(planner.clone()), None)
        .await;
    let job_id = commit(&server, &planner).await;
    let events = until_job_ends(&mut socket, &job_id).await;
    let conflicts = of_type(&events, "SYNC_CONFLICT");
    assert_eq!(conflicts.len(), 3);
    let data = &conflicts[0]["data"];
    assert_eq!(
        (
            data["field"].as_str(),
            data["localValue"].as_str(),
            data["remoteValue"].as_str()
        ),
        (
            Some("forecastStart"),
            Some("2026-04-01"),
            Some("2026-05-15")
        )
    );
    assert_eq!(
        conflicts[0]["message"],
        "Conflict detected in forecastStart field"
    );
    assert_eq!(
        events.last().unwrap()["data"]["jobStatus"],
        "completed_with_conflicts"
    );
    // The local record now shows PEMS's value and version.
    assert_eq!(
        record(&server, &planner, 1).await["forecastStart"],
        "2026-05-15"
    );

    let id_of = |n: usize| {
        conflicts.iter().find(|c| c["pfaId"] == pfa(n)).unwrap()["data"]["conflictId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let resolve = |id: String, body: Value| {
        let (server, planner) = (&server, planner.clone());
        async move {
            server
                .api(
                    "POST",
                    &format!("/api/orgs/{ORG}/conflicts/{id}/resolve"),
                    &planner,
                    Some(body),
                )
                .await
        }
    };
    let (s1, r1) = resolve(id_of(1), json!({"resolution": "use_local"})).await;
    let (s2, r2) = resolve(id_of(2), json!({"resolution": "use_pems"})).await;
    let (s3, r3) = resolve(
        id_of(3),
        json!({"resolution": "merge", "values": {"forecastStart": "2026-04-20"}}),
    )
    .await;
    assert_eq!((s1, s2, s3), (200, 200, 200), "{r1} {r2} {r3}");
    let resolution_jobs: Vec<&str> = [&r1, &r2, &r3]
        .iter()
        .map(|r| r["job"]["id"].as_str().unwrap())
        .collect();
    until_jobs_end(&mut socket, &resolution_jobs).await;
    let (one, two, three) = (
        record(&server, &planner, 1).await,
        record(&server, &planner, 2).await,
        record(&server, &planner, 3).await,
    );
    assert_eq!(
        (
            one["forecastStart"].as_str(),
            one["notes"].as_str(),
            one["version"].as_i64()
        ),
        (Some("2026-04-01"), Some("mine"), Some(3))
    );
    assert_eq!(
        (two["forecastStart"].as_str(), two["notes"].as_str()),
        (Some("2026-05-15"), Some("mine")),
        "PEMS's date, the other field still synced"
    );
    assert_eq!(three["forecastStart"], "2026-04-20");
    let again = resolve(id_of(1), json!({"resolution": "use_local"})).await;
    assert_eq!(again.0, 409, "a conflict is resolved once");
    let (_, open) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/conflicts?status=open"),
            &planner,
            None,
        )
        .await;
    assert_eq!(open["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_non_overlapping_remote_edit_merges_silently() {
    let server = server().await;
    let planner = server.token("planner", &[]).await;
    remote_edit(&server, 4, json!({"notes": "changed in PEMS"})).await;
    let (_, events) = sync_one(&server, &planner, 4, json!({ "equipment": "CR-9999" })).await;
    assert!(of_type(&events, "SYNC_CONFLICT").is_empty());
    assert_eq!(of_type(&events, "SYNC_SUCCESS")[0]["pfaId"], pfa(4));
    let merged = record(&server, &planner, 4).await;
    assert_eq!(
        (
            merged["notes"].as_str(),
            merged["equipment"].as_str(),
            merged["version"].as_i64()
        ),
        (Some("changed in PEMS"), Some("CR-9999"), Some(3))
    );
}

async fn set_faults(server: &TestServer, faults: Value) {
    let (status, body) = server
        .pems_call("PUT", "/api/pems/_faults", Some(faults))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn two_503s_are_retried_then_the_write_succeeds() {
    let server = server().await;
    let planner = server.token("planner", &[]).await;
    set_faults(&server, json!({"failNext": [503, 503]})).await;
    let (job_id, events) =
        sync_one(&server, &planner, 5, json!({ "notes": "third time lucky" })).await;
    assert!(of_type(&events, "SYNC_FAILED").is_empty(), "{events:?}");
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "completed");
    let detail = job(&server, &planner, &job_id).await;
    assert_eq!(detail["job"]["retries"], 2);
    assert_eq!(detail["items"][0]["attempts"], 3);
    // The live events carry the retries too, so a dashboard needs no refetch to show them.
    let last_progress = of_type(&events, "SYNC_PROGRESS")
        .pop()
        .expect("progress events");
    assert_eq!(last_progress["data"]["retries"], 2, "{last_progress}");
}

#[tokio::test]
async fn an_outage_is_waited_out_as_long_as_pems_retry_after_asks() {
    // Backoff alone would spend both attempts within 40 ms; PEMS's Retry-After (the outage's
    // remaining second) makes the engine wait until the outage is over.
    let server = server_with(|c| {
        c.sync.max_attempts = 2;
        c.sync.retry_cap = Duration::from_secs(5);
    })
    .await;
    let planner = server.token("planner", &[]).await;
    set_faults(&server, json!({"outageMs": 800})).await;
    let started = std::time::Instant::now();
    let (job_id, events) =
        sync_one(&server, &planner, 7, json!({ "notes": "after the outage" })).await;
    assert!(of_type(&events, "SYNC_FAILED").is_empty(), "{events:?}");
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "completed");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    let detail = job(&server, &planner, &job_id).await;
    assert_eq!(detail["job"]["retries"], 1);
    assert_eq!(detail["items"][0]["attempts"], 2);
}

#[tokio::test]
async fn a_503_that_never_ends_fails_retryable_after_the_configured_attempts() {
    let server = server().await;
    let planner = server.token("planner", &[]).await;
    set_faults(&server, json!({"errorRate": 1.0, "errorStatus": 503})).await;
    let (_, events) = sync_one(&server, &planner, 6, json!({ "notes": "never" })).await;
    let failed = of_type(&events, "SYNC_FAILED");
    assert_eq!(failed[0]["pfaId"], pfa(6));
    assert_eq!(failed[0]["data"]["errorCode"], "PEMS_UNAVAILABLE");
    assert_eq!(failed[0]["data"]["retryable"], true);
    assert_eq!(failed[0]["data"]["attempts"], 3);
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "failed");
    assert_eq!(
        record(&server, &planner, 6).await["version"],
        1,
        "nothing written"
    );
}

#[tokio::test]
async fn a_400_fails_at_once_and_is_not_retryable() {
    let server = server().await;
    let planner = server.token("planner", &[]).await;
    set_faults(&server, json!({"errorRate": 1.0, "errorStatus": 400})).await;
    let (job_id, events) = sync_one(&server, &planner, 7, json!({ "notes": "bad" })).await;
    let failed = of_type(&events, "SYNC_FAILED");
    assert_eq!(
        (
            failed[0]["data"]["retryable"].as_bool(),
            failed[0]["data"]["attempts"].as_i64()
        ),
        (Some(false), Some(1))
    );
    assert_eq!(failed[0]["data"]["errorCode"], "PEMS_INVALID_REQUEST");
    assert_eq!(job(&server, &planner, &job_id).await["job"]["retries"], 0);
}

async fn command(socket: &mut Socket, kind: &str, job: &str, id: &str) -> Value {
    send_text(
        socket,
        json!({"type": kind, "jobId": job, "commandId": id}).to_string(),
    )
    .await;
    loop {
        let frame = next(socket).await.json();
        if frame["type"] == "COMMAND_RESULT" && frame["commandId"] == id {
            return frame;
        }
    }
}

/// The next ERROR frame, past the events before it.
async fn next_error(socket: &mut Socket) -> Value {
    loop {
        let frame = next(socket).await.json();
        if frame["type"] == "ERROR" {
            return frame;
        }
    }
}

async fn wait_status(server: &TestServer, token: &str, job_id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let detail = job(server, token, job_id).await;
        if detail["job"]["status"] == status {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "job {job_id} never became {status}: {}",
        job(server, token, job_id).await
    );
}

#[tokio::test]
async fn pause_resume_cancel_and_retry_work_through_the_socket() {
    let server = server_with(|c| c.sync.concurrency_per_org = 1).await;
    let planner = server.token("planner", &[]).await;
    set_faults(&server, json!({"latencyMs": 100})).await;
    let drafts: Vec<Value> = (1..=8)
        .map(|n| json!({"pfaId": pfa(n), "changes": {"notes": format!("n{n}")}}))
        .collect();
    save(&server, &planner, json!(drafts)).await;
    let (mut socket, _) = server
        .subscribe(ORG, &Auth::Bearer(planner.clone()), None)
        .await;
    let job_id = commit(&server, &planner).await;

    let paused = command(&mut socket, "PAUSE_SYNC", &job_id, "p-1").await;
    assert_eq!(paused["ok"], true, "{paused}");
    let detail = wait_status(&server, &planner, &job_id, "paused").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let synced_while_paused = job(&server, &planner, &job_id).await["job"]["synced"]
        .as_i64()
        .unwrap();
    assert!(synced_while_paused < 8, "paused before the end: {detail}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        job(&server, &planner, &job_id).await["job"]["synced"],
        synced_while_paused,
        "nothing runs while paused"
    );
    assert_eq!(
        command(&mut socket, "PAUSE_SYNC", &job_id, "p-1").await,
        paused,
        "same commandId, same answer"
    );

    assert_eq!(
        command(&mut socket, "RESUME_SYNC", &job_id, "r-1").await["ok"],
        true
    );
    let events = until_job_ends(&mut socket, &job_id).await;
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "completed");

    // Cancel: what did not sync goes back to the planner's drafts.
    save(
        &server,
        &planner,
        json!((9..=14)
            .map(|n| json!({"pfaId": pfa(n), "changes": {"notes": "cancel me"}}))
            .collect::<Vec<_>>()),
    )
    .await;
    let second = commit(&server, &planner).await;
    assert_eq!(
        command(&mut socket, "CANCEL_SYNC", &second, "c-1").await["ok"],
        true
    );
    let events = until_job_ends(&mut socket, &second).await;
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "cancelled");
    let detail = job(&server, &planner, &second).await;
    let unsynced = 6 - detail["job"]["synced"].as_i64().unwrap();
    assert!(unsynced > 0);
    let (_, drafts) = server
        .api("GET", &format!("/api/orgs/{ORG}/drafts"), &planner, None)
        .await;
    assert_eq!(
        drafts["items"].as_array().unwrap().len() as i64,
        unsynced,
        "no draft lost"
    );
    assert_eq!(
        command(&mut socket, "RESUME_SYNC", &second, "r-2").await["ok"],
        false,
        "a cancelled job stays cancelled"
    );

    // Retry: a job failed by PEMS runs again once PEMS is fixed.
    set_faults(&server, json!({"errorRate": 1.0, "errorStatus": 400})).await;
    let third = commit(&server, &planner).await;
    let events = until_job_ends(&mut socket, &third).await;
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "failed");
    set_faults(&server, json!({})).await;
    assert_eq!(
        command(&mut socket, "RETRY_SYNC", &third, "t-1").await["ok"],
        true
    );
    let events = until_job_ends(&mut socket, &third).await;
    assert_eq!(events.last().unwrap()["data"]["jobStatus"], "completed");

    // Viewers cannot send commands.
    let viewer = server.token("viewer", &[]).await;
    let (mut watching, _) = server.subscribe(ORG, &Auth::Bearer(viewer), None).await;
    assert_eq!(
        command(&mut watching, "PAUSE_SYNC", &third, "v-1").await["ok"],
        false
    );
}

#[tokio::test]
async fn a_command_id_belongs_to_its_sender_command_and_job_and_a_refusal_is_not_kept() {
    let server = server_with(|c| c.sync.concurrency_per_org = 1).await;
    let planner = server.token("planner", &[]).await;
    let viewer = server.token("viewer", &[]).await;
    set_faults(&server, json!({"latencyMs": 100})).await;
    let drafts: Vec<Value> = (1..=8)
        .map(|n| json!({"pfaId": pfa(n), "changes": {"notes": format!("k{n}")}}))
        .collect();
    save(&server, &planner, json!(drafts)).await;
    let (mut planning, _) = server
        .subscribe(ORG, &Auth::Bearer(planner.clone()), None)
        .await;
    let (mut watching, _) = server
        .subscribe(ORG, &Auth::Bearer(viewer.clone()), None)
        .await;
    let job_id = commit(&server, &planner).await;

    let refused = command(&mut watching, "PAUSE_SYNC", &job_id, "c-1").await;
    assert_eq!(refused["ok"], false, "{refused}");
    let paused = command(&mut planning, "PAUSE_SYNC", &job_id, "c-1").await;
    assert_eq!(
        paused["ok"], true,
        "the viewer's refusal is not the planner's answer: {paused}"
    );
    wait_status(&server, &planner, &job_id, "paused").await;
    let resumed = command(&mut planning, "RESUME_SYNC", &job_id, "c-1").await;
    assert_eq!(
        (resumed["ok"].as_bool(), resumed["message"].as_str()),
        (
            Some(true),
            Some(format!("resume job {job_id}: now running").as_str())
        ),
        "the same id with another command is another command"
    );
    assert_eq!(
        command(&mut planning, "PAUSE_SYNC", &job_id, "c-1").await,
        paused,
        "a repeat of the same command gets its first answer"
    );
    let events = until_job_ends(&mut planning, &job_id).await;
    assert_eq!(
        events.last().unwrap()["data"]["jobStatus"],
        "completed",
        "the repeated pause changed nothing"
    );
    assert_eq!(server.store.command_answers_kept().await.unwrap(), 2);

    // A command is audited under who sent it, not under the job's owner.
    let admin = server.token("admin", &[]).await;
    let (mut administering, _) = server
        .subscribe(ORG, &Auth::Bearer(admin.clone()), None)
        .await;
    save(
        &server,
        &planner,
        json!([{"pfaId": pfa(9), "changes": {"notes": "a"}},
                                   {"pfaId": pfa(10), "changes": {"notes": "b"}}]),
    )
    .await;
    let second = commit(&server, &planner).await;
    let cancelled = command(&mut administering, "CANCEL_SYNC", &second, "c-1").await;
    assert_eq!(cancelled["ok"], true, "{cancelled}");
    let (_, audit) = server
        .api("GET", &format!("/api/orgs/{ORG}/audit"), &admin, None)
        .await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "sync.cancel")
        .unwrap_or_else(|| panic!("no sync.cancel in {audit}"));
    assert_eq!(
        (&entry["username"], &entry["target"]),
        (&json!("admin"), &json!(second))
    );

    // Refused before they reach the store: ids longer than the protocol allows.
    let long_job = "j".repeat(60_000);
    for n in 0..2_000 {
        send_text(
            &mut watching,
            json!({"type": "PAUSE_SYNC", "jobId": long_job, "commandId": format!("x-{n}")})
                .to_string(),
        )
        .await;
        assert_eq!(next_error(&mut watching).await["code"], "INVALID_COMMAND");
    }
    let long_id = json!({"type": "PAUSE_SYNC", "jobId": job_id, "commandId": "c".repeat(129)});
    send_text(&mut planning, long_id.to_string()).await;
    assert_eq!(next_error(&mut planning).await["code"], "INVALID_COMMAND");
    assert_eq!(server.store.command_answers_kept().await.unwrap(), 3);
}

#[tokio::test]
async fn an_admin_rolls_a_record_back_to_an_older_version() {
    let server = server().await;
    let admin = server.token("admin", &[]).await;
    let planner = server.token("planner", &[]).await;
    let original = record(&server, &admin, 8).await;
    save(
        &server,
        &planner,
        json!([{ "pfaId": pfa(8), "changes": { "notes": "temporary", "equipment": "TMP-1" } }]),
    )
    .await;
    let (mut socket, _) = server
        .subscribe(ORG, &Auth::Bearer(admin.clone()), None)
        .await;
    let job_id = commit(&server, &planner).await;
    until_job_ends(&mut socket, &job_id).await;

    let path = format!("/api/orgs/{ORG}/records/{}/rollback", pfa(8));
    assert_eq!(
        server
            .api(
                "POST",
                &path,
                &admin,
                Some(json!({"version": 1, "reason": "too short"}))
            )
            .await
            .0,
        422
    );
    assert_eq!(
        server
            .api(
                "POST",
                &path,
                &planner,
                Some(json!({"version": 1, "reason": "planner wants it back"}))
            )
            .await
            .0,
        403
    );
    let (status, body) = server
        .api(
            "POST",
            &path,
            &admin,
            Some(json!({"version": 1, "reason": "restore the approved plan"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    until_job_ends(&mut socket, body["job"]["id"].as_str().unwrap()).await;
    let restored = record(&server, &admin, 8).await;
    assert_eq!(
        (restored["notes"].clone(), restored["equipment"].clone()),
        (original["notes"].clone(), original["equipment"].clone())
    );
    assert_eq!(restored["version"], 3);
    let (_, history) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/records/{}/history", pfa(8)),
            &admin,
            None,
        )
        .await;
    assert_eq!(history["versions"][0]["kind"], "rollback");
    let (_, audit) = server
        .api("GET", &format!("/api/orgs/{ORG}/audit"), &admin, None)
        .await;
    let actions: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["username"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("planner", "drafts.save"),
        ("planner", "drafts.commit"),
        ("admin", "record.rollback"),
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} missing from the audit trail: {actions:?}"
        );
    }
    assert!(history["versions"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("restore the approved plan"));
}

#[tokio::test]
async fn roles_are_enforced_on_every_route() {
    let server = server().await;
    server.user("pa-only", &["org-portarthur:admin"]).await;
    let (viewer, editor, planner, stranger) = (
        server.token("viewer", &[]).await,
        server.token("editor", &[]).await,
        server.token("planner", &[]).await,
        server.token("pa-only", &[]).await,
    );
    let draft = json!([{ "pfaId": pfa(1), "changes": { "notes": "x" } }]);
    assert_eq!(
        save(&server, &viewer, draft.clone()).await.0,
        403,
        "viewer cannot save"
    );
    assert_eq!(
        save(&server, &editor, draft.clone()).await.0,
        200,
        "editor can save"
    );
    assert_eq!(
        server
            .api(
                "POST",
                &format!("/api/orgs/{ORG}/drafts/commit"),
                &editor,
                None
            )
            .await
            .0,
        403,
        "editor cannot commit"
    );
    for path in ["records", "jobs", "conflicts", "drafts"] {
        assert_eq!(
            server
                .api("GET", &format!("/api/orgs/{ORG}/{path}"), &stranger, None)
                .await
                .0,
            404,
            "{path}: non-member"
        );
        assert_eq!(
            server
                .api("GET", &format!("/api/orgs/{ORG}/{path}"), &viewer, None)
                .await
                .0,
            200,
            "{path}: viewer reads"
        );
    }
    assert_eq!(
        server
            .api("GET", &format!("/api/orgs/{ORG}/audit"), &planner, None)
            .await
            .0,
        403
    );
    assert_eq!(
        server
            .api(
                "GET",
                &format!("/api/orgs/{ORG}/records"),
                "pfa_nobody",
                None
            )
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn invalid_deltas_get_422_with_field_messages_and_nothing_is_stored() {
    let server = server().await;
    let editor = server.token("editor", &[]).await;
    let (status, body) = save(
        &server,
        &editor,
        json!([
            { "pfaId": pfa(1), "changes": { "notes": "fine" } },
            { "pfaId": pfa(2), "changes": { "forecastStart": "2027-01-01", "forecastEnd": "2026-01-01" } },
            { "pfaId": pfa(3), "changes": { "monthlyRate": -5 } },
            { "pfaId": pfa(4), "changes": { "pfaId": "PFA-X", "version": 9 } },
            { "pfaId": pfa(5), "changes": { "forecastStart": 20260101 } },
            { "pfaId": pfa(6), "changes": { "notes": "x" }, "baseVersion": 0 },
            { "pfaId": pfa(7), "changes": { "notes": "x" }, "baseVersion": 2 },
            { "pfaId": "PFA-99999", "changes": { "notes": "x" } }
        ]),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let f = &body["fields"];
    assert!(f[pfa(2)]["forecastEnd"]
        .as_str()
        .unwrap()
        .contains("before"));
    assert!(f[pfa(3)]["monthlyRate"]
        .as_str()
        .unwrap()
        .contains("negative"));
    assert!(f[pfa(4)]["pfaId"].is_string() && f[pfa(4)]["version"].is_string());
    assert!(f[pfa(5)]["forecastStart"]
        .as_str()
        .unwrap()
        .contains("date"));
    assert!(f["PFA-99999"]["pfaId"].is_string());
    for n in [6, 7] {
        assert_eq!(
            f[pfa(n)]["baseVersion"],
            "must be from 1 to the record's version, 1",
            "a base version above the record's would skip the conflict check: {f}"
        );
    }
    assert!(f[pfa(1)].is_null(), "valid drafts are not flagged");
    let (_, drafts) = server
        .api("GET", &format!("/api/orgs/{ORG}/drafts"), &editor, None)
        .await;
    assert_eq!(
        drafts["items"].as_array().unwrap().len(),
        0,
        "nothing half-saved"
    );
}

#[tokio::test]
async fn oversized_selections_reasons_and_pages_get_422_and_repeated_ids_count_once() {
    let server = server().await;
    let planner = server.token("planner", &[]).await;
    let commit_with = |body: Value| {
        let (server, planner) = (&server, &planner);
        async move {
            server
                .api(
                    "POST",
                    &format!("/api/orgs/{ORG}/drafts/commit"),
                    planner,
                    Some(body),
                )
                .await
        }
    };
    let (status, body) = commit_with(json!({"reason": "r".repeat(1001)})).await;
    assert_eq!(
        (status, &body["fields"]["reason"]),
        (422, &json!("at most 1000 characters"))
    );
    let many: Vec<String> = (0..5001).map(pfa).collect();
    let (status, body) = commit_with(json!({ "pfaIds": many })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"]["pfaIds"].as_str().unwrap().contains("5000"));
    let (status, body) = server
        .api(
            "POST",
            &format!("/api/orgs/{ORG}/drafts/discard"),
            &planner,
            Some(json!({ "pfaIds": many })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = save(
        &server,
        &planner,
        json!([{ "pfaId": pfa(1), "changes": { "notes": "x" }, "reason": "r".repeat(1001) }]),
    )
    .await;
    assert_eq!(status, 422, "{body}");

    save(
        &server,
        &planner,
        json!([{ "pfaId": pfa(1), "changes": { "notes": "once" } }]),
    )
    .await;
    let repeated: Vec<String> = std::iter::repeat_n(pfa(1), 5000).collect();
    let (status, body) =
        commit_with(json!({ "pfaIds": repeated, "reason": "r".repeat(1000) })).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"]["total"], 1, "a repeated id is one record");

    let (status, body) = server
        .api(
            "GET",
            &format!(
                "/api/orgs/{ORG}/records?page={}&pageSize=5000",
                i64::MAX / 2
            ),
            &planner,
            None,
        )
        .await;
    assert_eq!(
        (status, body["fields"]["page"].is_string()),
        (422, true),
        "{body}"
    );
}

#[tokio::test]
async fn records_are_listed_with_filters_search_sorting_and_the_callers_drafts() {
    let server = server().await;
    let editor = server.token("editor", &[]).await;
    save(
        &server,
        &editor,
        json!([{ "pfaId": pfa(3), "changes": { "notes": "look here" } }]),
    )
    .await;
    let (status, page) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/records?pageSize=5&page=2"),
            &editor,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 20);
    assert_eq!(page["items"][0]["pfaId"], pfa(6));
    let (_, modified) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/records?modified=true"),
            &editor,
            None,
        )
        .await;
    assert_eq!(
        modified["items"][0]["draft"]["changes"]["notes"],
        "look here"
    );
    let (_, found) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/records?q={}", pfa(17)),
            &editor,
            None,
        )
        .await;
    assert_eq!(found["total"], 1);
    let (_, sorted) = server
        .api(
            "GET",
            &format!("/api/orgs/{ORG}/records?sort=-pfaId&pageSize=1"),
            &editor,
            None,
        )
        .await;
    assert_eq!(sorted["items"][0]["pfaId"], pfa(20));
    assert_eq!(
        server
            .api(
                "GET",
                &format!("/api/orgs/{ORG}/records?sort=price"),
                &editor,
                None
            )
            .await
            .0,
        422
    );
}
