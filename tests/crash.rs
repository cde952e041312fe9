//! Crash safety: a server killed with SIGKILL in the middle of a sync job resumes it after a
//! restart, and PEMS (a separate simulator process that survives) sees every record written
//! exactly once; so do writes PEMS accepted whose batch never reached the database.

mod common;

use common::{
    next_event,
    procs::{
        call, cli_token, commit_notes, free_port, pems_latency, pems_stats, start_server,
        start_simulator, subscribe, wait_healthy, wait_job, FAST_SYNC,
    },
    TestServer,
};
use pfa_sync::server::sync::pems::{faults::Faults, simulator};
use serde_json::{json, Value};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// The server's sync settings in these tests: brisk retries, a short lease (on PostgreSQL a
/// restarted server is a new instance and waits for the killed one's lease to run out).
const SYNC: [&str; 8] = [
    "--sync-concurrency",
    "2",
    "--pems-rate",
    "1000",
    "--retry-base-ms",
    "20",
    "--job-lease-secs",
    "3",
];

#[tokio::test]
async fn a_job_interrupted_by_sigkill_finishes_after_restart_writing_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database_url(&dir).await;
    let client = reqwest::Client::new();
    let (_sim, pems) = start_simulator();
    pems_latency(&client, &pems, 80).await;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(port, &db, &pems, &SYNC);
    wait_healthy(&client, &base).await;
    let token = cli_token(&db, "planner", &[]);

    let job = commit_notes(&client, &base, &token, "org-rio", 30, "crash test").await;
    // Kill it hard once a few records are through.
    let wait = Duration::from_secs(60);
    let started = |d: &Value| d["job"]["synced"].as_i64().unwrap_or(0) >= 5;
    wait_job(&client, &base, &token, "org-rio", &job, wait, started).await;
    server.kill();
    let at_kill = pems_stats(&client, &pems).await;
    assert!(
        at_kill["writes"].as_u64().unwrap() < 30,
        "killed mid-job: {at_kill}"
    );

    let _server = start_server(port, &db, &pems, &SYNC);
    wait_healthy(&client, &base).await;
    let completed = |d: &Value| d["job"]["status"] == "completed";
    let detail = wait_job(&client, &base, &token, "org-rio", &job, wait, completed).await;
    assert_eq!(detail["job"]["synced"], 30);

    let stats = pems_stats(&client, &pems).await;
    assert_eq!(stats["writes"], 30, "{stats}");
    for n in 1..=30 {
        assert_eq!(
            stats["byRecord"][format!("RIO/PFA-{n:05}")],
            1,
            "PFA-{n:05} written exactly once: {stats}"
        );
    }
    for n in [1, 15, 30] {
        let (_, record) = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/api/orgs/org-rio/records/PFA-{n:05}"),
            &token,
            None,
        )
        .await;
        assert_eq!(
            (record["notes"].clone(), record["version"].clone()),
            (json!(format!("crash test {n}")), json!(2))
        );
    }
}

/// Polls the job through the API until `done` accepts it (at most 20 s).
async fn wait_for_job(
    server: &TestServer,
    token: &str,
    job: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, detail) = server
            .api("GET", &format!("/api/orgs/org-rio/jobs/{job}"), token, None)
            .await;
        if done(&detail) {
            return detail;
        }
        assert!(Instant::now() < deadline, "job never got there: {detail}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn writes_pems_accepted_while_their_batch_could_not_commit_are_recorded_once_after_restart() {
    // PEMS outlives the server (its own task here) and answers slowly enough that every write
    // is still on its way when the database goes away.
    let stop_pems = tokio_util::sync::CancellationToken::new();
    let pems = simulator::spawn("127.0.0.1:0".parse().unwrap(), stop_pems.clone())
        .await
        .unwrap();
    let slow = Faults {
        latency_ms: 300,
        ..Faults::default()
    };
    pems.sim.set_faults(slow).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = common::database_url(&dir).await;
    let configure = |c: &mut pfa_sync::server::config::Config| {
        c.database_url = db.clone();
        c.pems_url = Some(pems.base_url.clone());
        c.sync.concurrency_per_org = 8;
        c.sync.rate_per_org = 1000;
        c.sync.retry_cap = Duration::from_millis(50);
        c.sync.lease = Duration::from_secs(3);
    };

    let first = TestServer::spawn_with(configure).await;
    first.seed("org-rio", 8).await;
    let planner = first.token("planner", &[]).await;
    let drafts: Vec<Value> = (1..=8)
        .map(
            |n| json!({"pfaId": format!("PFA-{n:05}"), "changes": {"notes": format!("batch {n}")}}),
        )
        .collect();
    let (status, body) = first
        .api(
            "PUT",
            "/api/orgs/org-rio/drafts",
            &planner,
            Some(json!({ "drafts": drafts })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = first
        .api("POST", "/api/orgs/org-rio/drafts/commit", &planner, None)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();

    // All 8 writes are in flight at PEMS; then the database fails under the writer, as a
    // crash between PEMS's answers and the batch that records them would.
    wait_for_job(&first, &planner, &job, |d| {
        d["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i["status"] == "in_flight"))
    })
    .await;
    first.store.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pems.sim.total_accepted_writes() < 8 {
        assert!(
            Instant::now() < deadline,
            "PEMS never accepted the writes: {:?}",
            pems.sim.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.shutdown.cancel();
    let _ = first.task.await;
    pems.sim.reset_faults();

    let second = TestServer::spawn_with(configure).await;
    let detail = wait_for_job(&second, &planner, &job, |d| {
        d["job"]["status"] == "completed"
    })
    .await;
    assert_eq!(detail["job"]["synced"], 8, "{detail}");
    assert_eq!(
        pems.sim.total_accepted_writes(),
        8,
        "{:?}",
        pems.sim.stats()
    );
    for n in 1..=8 {
        let pfa = format!("PFA-{n:05}");
        assert_eq!(
            pems.sim.accepted_writes("RIO", &pfa),
            1,
            "{pfa} written once"
        );
        let (_, record) = second
            .api(
                "GET",
                &format!("/api/orgs/org-rio/records/{pfa}"),
                &planner,
                None,
            )
            .await;
        assert_eq!(
            (record["notes"].clone(), record["version"].clone()),
            (json!(format!("batch {n}")), json!(2))
        );
        let (_, history) = second
            .api(
                "GET",
                &format!("/api/orgs/org-rio/records/{pfa}/history"),
                &planner,
                None,
            )
            .await;
        let synced = history["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["kind"] == "sync")
            .count();
        assert_eq!(synced, 1, "one history row for {pfa}: {history}");
    }
    let attempts: Vec<i64> = detail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["attempts"].as_i64().unwrap())
        .collect();
    assert_eq!(
        attempts, [2; 8],
        "each sent again after the restart, under the same key"
    );
    stop_pems.cancel();
}

#[tokio::test]
async fn sigkill_at_several_points_of_a_job_leaves_one_event_per_synced_record_in_the_log() {
    const RECORDS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let db = common::database_url(&dir).await;
    let client = reqwest::Client::new();
    let (_sim, pems) = start_simulator();
    pems_latency(&client, &pems, 5).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(port, &db, &pems, &FAST_SYNC);
    wait_healthy(&client, &base).await;
    let token = cli_token(&db, "planner", &[]);
    let job = commit_notes(&client, &base, &token, "org-rio", RECORDS, "kill").await;

    // Killed hard three times, at different points of the job, restarted each time.
    for at in [300, 900, 1500] {
        let reached = move |d: &Value| d["job"]["synced"].as_i64().unwrap_or(0) >= at;
        wait_job(
            &client,
            &base,
            &token,
            "org-rio",
            &job,
            Duration::from_secs(60),
            reached,
        )
        .await;
        server.kill();
        server = start_server(port, &db, &pems, &FAST_SYNC);
        wait_healthy(&client, &base).await;
    }
    let completed = |d: &Value| d["job"]["status"] == "completed";
    let detail = wait_job(
        &client,
        &base,
        &token,
        "org-rio",
        &job,
        Duration::from_secs(120),
        completed,
    )
    .await;
    assert_eq!(detail["job"]["synced"], RECORDS);

    // The whole log, replayed from the start: one SYNC_SUCCESS per record, one start, one end.
    let (mut socket, connected) = subscribe(&base, "org-rio", &token, Some(0)).await;
    let head = connected["seq"].as_u64().unwrap();
    let mut per_record: HashMap<String, usize> = HashMap::new();
    let (mut started, mut finished) = (0, 0);
    for seq in 1..=head {
        let event = next_event(&mut socket).await;
        assert_eq!(
            event["seq"].as_u64(),
            Some(seq),
            "no gap in the log: {event}"
        );
        match (event["type"].as_str(), event["pfaId"].as_str()) {
            (Some("SYNC_SUCCESS"), Some(pfa)) => {
                *per_record.entry(pfa.to_owned()).or_default() += 1
            }
            (Some("SYNC_SUCCESS"), None) => finished += 1,
            (Some("SYNC_STARTED"), None) => started += 1,
            _ => {}
        }
    }
    assert_eq!(
        per_record.len(),
        RECORDS,
        "every synced record has its event"
    );
    assert!(per_record.values().all(|n| *n == 1), "and only one");
    assert_eq!((started, finished), (1, 1));
    let stats = pems_stats(&client, &pems).await;
    assert_eq!(stats["writes"], RECORDS, "each record written to PEMS once");
}
