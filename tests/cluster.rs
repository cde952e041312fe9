//! Several `pfa-sync serve` processes on one PostgreSQL database (a new database of the test
//! binary's throwaway cluster per test), with one PEMS simulator process: events cross
//! instances in seq order, replay works on either, a killed instance's job is finished by the
//! other (a stopping one hands it over at once), commands reach a job wherever it runs, a
//! sign-out closes the session's sockets on every instance, and a lost LISTEN connection loses
//! nothing.

mod common;

use common::{
    close_code, next_event,
    procs::{
        call, cli_token, commit_notes, free_port, pems_latency, pems_stats, start_server,
        start_simulator, subscribe, subscribe_with, wait_healthy, Killed, FAST_SYNC,
    },
    send_text, set_cookie, Socket,
};
use pfa_sync::server::store::throwaway::ThrowawayPostgres;
use reqwest::Method;
use serde_json::{json, Value};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

const ORG: &str = "org-rio";

struct Instance {
    process: Killed,
    base: String,
}

struct Cluster {
    db: String,
    pems: String,
    _sim: Killed,
    instances: Vec<Instance>,
    client: reqwest::Client,
}

impl Cluster {
    /// `n` instances started at once on an empty database (dev mode: demo users and records
    /// created by whichever instance gets there first), each with `extra` arguments.
    async fn start(n: usize, extra: &[&str]) -> Self {
        let db = ThrowawayPostgres::shared()
            .unwrap()
            .fresh_database()
            .await
            .unwrap();
        let (sim, pems) = start_simulator();
        let instances: Vec<Instance> = (0..n)
            .map(|_| {
                let port = free_port();
                // Outboxes that never fill: a test socket that falls behind a 2,000-record job
                // would otherwise have progress coalesced (a gap the protocol allows), and these
                // tests check every seq.
                let args: Vec<&str> = extra
                    .iter()
                    .copied()
                    .chain(["--ws-outbox-capacity", "100000"])
                    .collect();
                Instance {
                    process: start_server(port, &db, &pems, &args),
                    base: format!("http://127.0.0.1:{port}"),
                }
            })
            .collect();
        let client = reqwest::Client::new();
        for instance in &instances {
            wait_healthy(&client, &instance.base).await;
        }
        Self {
            db,
            pems,
            _sim: sim,
            instances,
            client,
        }
    }

    fn base(&self, i: usize) -> &str {
        &self.instances[i].base
    }

    async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(
            &self.client,
            method,
            format!("{}{path}", self.base(i)),
            token,
            body,
        )
        .await
    }

    async fn publish(&self, i: usize, token: &str, n: usize) -> u64 {
        let body =
            json!({"type": "SYNC_PROGRESS", "jobId": format!("job-{i}-{n}"), "progress": 50});
        let (status, answer) = self
            .call(
                i,
                Method::POST,
                &format!("/api/orgs/{ORG}/events"),
                token,
                Some(body),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        answer["seq"].as_u64().unwrap()
    }

    async fn instance_id(&self, i: usize) -> String {
        let (_, health) = self.call(i, Method::GET, "/health", "", None).await;
        assert_eq!(health["store"], "postgres");
        health["instance"].as_str().unwrap().to_owned()
    }

    /// The instance that runs `job`, once one does (whichever claimed it first).
    async fn runner(&self, job: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(runner) = self.runner_of(job).await {
                return runner;
            }
            assert!(Instant::now() < deadline, "nobody runs the job");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The instance whose runner holds `job`'s lease, if any.
    async fn runner_of(&self, job: &str) -> Option<usize> {
        let pool = sqlx::PgPool::connect(&self.db).await.unwrap();
        let owner: Option<String> = sqlx::query_scalar("SELECT owner FROM sync_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        let owner = owner?;
        for i in 0..self.instances.len() {
            if owner.starts_with(&format!("{}/", self.instance_id(i).await)) {
                return Some(i);
            }
        }
        None
    }

    /// Saves a draft of each of the first `n` records and commits them on instance `i`.
    async fn commit(&self, i: usize, token: &str, n: usize, note: &str) -> String {
        commit_notes(&self.client, self.base(i), token, ORG, n, note).await
    }

    async fn job(&self, i: usize, token: &str, job: &str) -> Value {
        self.call(
            i,
            Method::GET,
            &format!("/api/orgs/{ORG}/jobs/{job}"),
            token,
            None,
        )
        .await
        .1
    }

    async fn pems_stats(&self) -> Value {
        pems_stats(&self.client, &self.pems).await
    }

    async fn pems_latency(&self, ms: u64) {
        pems_latency(&self.client, &self.pems, ms).await
    }
}

/// Reads events (skipping heartbeats) until `until` accepts one; asserts that their seqs follow
/// `after` without a gap and returns them.
async fn read_until(
    socket: &mut Socket,
    after: u64,
    within: Duration,
    until: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut expected = after + 1;
    loop {
        assert!(
            Instant::now() < deadline,
            "gave up after {} events",
            seen.len()
        );
        let event = next_event(socket).await;
        assert_eq!(
            event["seq"].as_u64(),
            Some(expected),
            "in seq order, no gap: {event}"
        );
        expected += 1;
        let done = until(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn is_terminal(job: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| {
        e["jobId"] == job
            && e["pfaId"].is_null()
            && matches!(e["type"].as_str(), Some("SYNC_SUCCESS" | "SYNC_FAILED"))
    }
}

#[tokio::test]
async fn events_published_on_either_instance_reach_subscribers_of_both_in_seq_order() {
    let cluster = Cluster::start(2, &[]).await;
    // The demo users were created once, by whichever instance got there first.
    let token = cli_token(&cluster.db, "admin", &["publish"]);
    let (mut on_a, connected_a) = subscribe(cluster.base(0), ORG, &token, None).await;
    let (mut on_b, connected_b) = subscribe(cluster.base(1), ORG, &token, None).await;
    let head = connected_a["seq"].as_u64().unwrap();
    assert_eq!(connected_b["seq"].as_u64(), Some(head));

    // Both instances publish at once.
    tokio::join!(
        async {
            for n in 0..50 {
                cluster.publish(0, &token, n).await;
            }
        },
        async {
            for n in 0..50 {
                cluster.publish(1, &token, n).await;
            }
        }
    );
    let last = head + 100;
    let seen_a = read_until(&mut on_a, head, Duration::from_secs(20), |e| {
        e["seq"] == last
    })
    .await;
    let seen_b = read_until(&mut on_b, head, Duration::from_secs(20), |e| {
        e["seq"] == last
    })
    .await;
    assert_eq!(
        seen_a, seen_b,
        "the same events, in the same order, on both"
    );
    for i in 0..2 {
        let from = seen_a
            .iter()
            .filter(|e| {
                e["jobId"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("job-{i}-"))
            })
            .count();
        assert_eq!(from, 50, "50 events of instance {i}");
    }

    // Replay from the middle on either instance gives the same events.
    for i in 0..2 {
        let (mut socket, connected) =
            subscribe(cluster.base(i), ORG, &token, Some(head + 40)).await;
        assert_eq!(connected["seq"].as_u64(), Some(last));
        let replayed = read_until(&mut socket, head + 40, Duration::from_secs(10), |e| {
            e["seq"] == last
        })
        .await;
        assert_eq!(replayed[..], seen_a[40..]);
    }
}

#[tokio::test]
async fn the_listener_losing_its_connection_loses_no_event() {
    let cluster = Cluster::start(2, &[]).await;
    let token = cli_token(&cluster.db, "admin", &["publish"]);
    let (mut on_a, connected) = subscribe(cluster.base(0), ORG, &token, None).await;
    let head = connected["seq"].as_u64().unwrap();
    let pool = sqlx::PgPool::connect(&cluster.db).await.unwrap();
    let publishing = async {
        for n in 0..120 {
            cluster.publish(1, &token, n).await;
            if n % 40 == 20 {
                // Every instance's LISTEN connection is cut from the server side.
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = current_database() AND query LIKE 'LISTEN%'",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                assert!(killed.len() >= 2 && killed.iter().all(|k| *k), "{killed:?}");
            }
        }
    };
    let last = head + 120;
    let (_, seen) = tokio::join!(
        publishing,
        read_until(&mut on_a, head, Duration::from_secs(30), |e| e["seq"]
            == last)
    );
    assert_eq!(seen.len(), 120);
    pool.close().await;
}

#[tokio::test]
async fn a_job_of_a_killed_instance_is_finished_by_the_other_writing_each_record_once() {
    const RECORDS: usize = 2000;
    let mut cluster = Cluster::start(2, &FAST_SYNC).await;
    cluster.pems_latency(15).await;
    let token = cli_token(&cluster.db, "planner", &[]);
    // Which instance runs the job is up to the race between the committing instance and the
    // other's claimer: the test follows the job from whichever instance does not.
    let job = cluster.commit(1, &token, RECORDS, "takeover").await;
    let runner = cluster.runner(&job).await;
    let survivor = 1 - runner;
    let (mut socket, connected) = subscribe(cluster.base(survivor), ORG, &token, Some(0)).await;
    let head = connected["seq"].as_u64().unwrap();
    assert!(head < 200, "subscribed early: {connected}");

    // Kill the runner once a few hundred records are through.
    loop {
        let detail = cluster.job(survivor, &token, &job).await;
        if detail["job"]["synced"].as_i64().unwrap_or(0) >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.instances[runner].process.kill();
    let killed_at = Instant::now();
    let at_kill = cluster.pems_stats().await["writes"].as_u64().unwrap();
    assert!(at_kill < RECORDS as u64, "killed mid-job: {at_kill} writes");

    let events = read_until(&mut socket, 0, Duration::from_secs(120), is_terminal(&job)).await;
    let took_over_in = killed_at.elapsed();
    let terminal = events.last().unwrap();
    assert_eq!(terminal["type"], "SYNC_SUCCESS", "{terminal}");
    assert_eq!(terminal["data"]["synced"], RECORDS, "{terminal}");
    let mut per_record: HashMap<&str, usize> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e["type"] == "SYNC_SUCCESS" && !e["pfaId"].is_null())
    {
        *per_record.entry(e["pfaId"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(per_record.len(), RECORDS, "every record's SYNC_SUCCESS");
    assert!(per_record.values().all(|n| *n == 1), "each once");
    let started = events
        .iter()
        .filter(|e| e["type"] == "SYNC_STARTED" && e["jobId"] == job.as_str())
        .count();
    assert_eq!(
        started, 1,
        "one SYNC_STARTED: the job was taken over, not started again"
    );

    let stats = cluster.pems_stats().await;
    assert_eq!(
        stats["writes"], RECORDS,
        "PEMS applied each write once: {stats}"
    );
    let detail = cluster.job(survivor, &token, &job).await;
    assert_eq!(
        (
            detail["job"]["status"].clone(),
            detail["job"]["synced"].clone()
        ),
        (json!("completed"), json!(RECORDS))
    );
    eprintln!("killed after {at_kill} PEMS writes; the job finished {took_over_in:?} later");
}

#[tokio::test]
async fn commands_reach_the_job_wherever_it_runs_and_are_answered_once() {
    let cluster = Cluster::start(2, &["--sync-concurrency", "1", "--pems-rate", "1000"]).await;
    cluster.pems_latency(40).await;
    let token = cli_token(&cluster.db, "planner", &[]);
    let job = cluster.commit(0, &token, 60, "commands").await;
    let runner = cluster.runner(&job).await;
    let other = 1 - runner;
    let (mut socket, _) = subscribe(cluster.base(other), ORG, &token, None).await;
    let command =
        |kind: &str, id: &str| json!({"type": kind, "jobId": job, "commandId": id}).to_string();

    send_text(&mut socket, command("PAUSE_SYNC", "pause-1")).await;
    let answer = loop {
        let frame = next_event(&mut socket).await;
        if frame["type"] == "COMMAND_RESULT" {
            break frame;
        }
    };
    assert_eq!(answer["ok"], true, "{answer}");
    // The runner on the other instance stops sending: the count settles.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = cluster.job(runner, &token, &job).await["job"]["synced"].clone();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let detail = cluster.job(runner, &token, &job).await;
    assert_eq!(detail["job"]["status"], "paused");
    assert_eq!(
        detail["job"]["synced"], settled,
        "nothing synced while paused"
    );
    assert!(settled.as_i64().unwrap() < 60);

    // The same command again, on the instance that runs the job: the first answer, no change.
    let (mut on_runner, _) = subscribe(cluster.base(runner), ORG, &token, None).await;
    send_text(&mut on_runner, command("PAUSE_SYNC", "pause-1")).await;
    let again = loop {
        let frame = next_event(&mut on_runner).await;
        if frame["type"] == "COMMAND_RESULT" {
            break frame;
        }
    };
    assert_eq!(again, answer);

    send_text(&mut socket, command("RESUME_SYNC", "resume-1")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let detail = cluster.job(other, &token, &job).await;
        if detail["job"]["status"] == "completed" {
            assert_eq!(detail["job"]["synced"], 60);
            break;
        }
        assert!(Instant::now() < deadline, "never completed: {detail}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The COMMAND_RESULT that answers the next command (other frames are skipped).
async fn command_result(socket: &mut Socket) -> Value {
    loop {
        let frame = next_event(socket).await;
        if frame["type"] == "COMMAND_RESULT" {
            return frame;
        }
    }
}

#[tokio::test]
async fn a_cancel_sent_to_the_other_instance_stops_the_job_once_and_gives_the_rest_back_as_drafts()
{
    let cluster = Cluster::start(2, &["--sync-concurrency", "1", "--pems-rate", "1000"]).await;
    cluster.pems_latency(40).await;
    let token = cli_token(&cluster.db, "planner", &[]);
    let job = cluster.commit(0, &token, 60, "cancel").await;
    let runner = cluster.runner(&job).await;
    let other = 1 - runner;
    let (mut socket, connected) = subscribe(cluster.base(other), ORG, &token, None).await;
    let head = connected["seq"].as_u64().unwrap();
    send_text(
        &mut socket,
        json!({"type": "CANCEL_SYNC", "jobId": job, "commandId": "cancel-1"}).to_string(),
    )
    .await;
    let answer = command_result(&mut socket).await;
    assert_eq!(answer["ok"], true, "{answer}");

    let (mut watcher, _) = subscribe(cluster.base(runner), ORG, &token, Some(head)).await;
    let events = read_until(
        &mut watcher,
        head,
        Duration::from_secs(20),
        is_terminal(&job),
    )
    .await;
    let terminal = events.last().unwrap();
    assert_eq!(
        (
            terminal["type"].as_str(),
            terminal["data"]["jobStatus"].as_str()
        ),
        (Some("SYNC_FAILED"), Some("cancelled"))
    );
    let detail = cluster.job(other, &token, &job).await;
    assert_eq!(detail["job"]["status"], "cancelled");
    assert!(
        detail["job"]["completedAt"].is_string(),
        "{}",
        detail["job"]
    );
    let synced = detail["job"]["synced"].as_u64().unwrap();
    assert!(synced < 60);
    // The records not synced are the planner's drafts again; none is lost, none is doubled.
    let (_, drafts) = cluster
        .call(
            other,
            Method::GET,
            &format!("/api/orgs/{ORG}/drafts"),
            &token,
            None,
        )
        .await;
    assert_eq!(
        drafts["items"].as_array().unwrap().len() as u64,
        60 - synced
    );
    // No record was written to PEMS after the cancellation's end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cluster.pems_stats().await["writes"].as_u64().unwrap(),
        synced
    );
}

#[tokio::test]
async fn signing_out_on_one_instance_closes_the_sessions_sockets_on_every_instance() {
    let cluster = Cluster::start(2, &[]).await;
    let login = cluster
        .client
        .post(format!("{}/api/auth/login", cluster.base(0)))
        .header("origin", cluster.base(0))
        .json(&json!({"username": "planner", "password": "pfa-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = set_cookie(&login, "pfa_session").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    // The session made on a opens a socket on b.
    let (mut on_b, _) = subscribe_with(
        cluster.base(1),
        ORG,
        &[("cookie", &cookie), ("origin", cluster.base(1))],
        None,
    )
    .await;
    let out = cluster
        .client
        .post(format!("{}/api/auth/logout", cluster.base(0)))
        .header("origin", cluster.base(0))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(close_code(&mut on_b).await, 4401);
}

#[tokio::test]
async fn a_stopping_instance_hands_its_job_over_at_once() {
    // A lease far longer than the test: only a released job can move this fast.
    let mut cluster = Cluster::start(
        2,
        &[
            "--sync-concurrency",
            "2",
            "--pems-rate",
            "1000",
            "--job-lease-secs",
            "120",
        ],
    )
    .await;
    cluster.pems_latency(20).await;
    let token = cli_token(&cluster.db, "planner", &[]);
    let job = cluster.commit(0, &token, 200, "handover").await;
    let runner = cluster.runner(&job).await;
    let survivor = 1 - runner;
    loop {
        if cluster.job(survivor, &token, &job).await["job"]["synced"]
            .as_i64()
            .unwrap_or(0)
            >= 20
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = Instant::now();
    assert!(
        cluster.instances[runner]
            .process
            .terminate(Duration::from_secs(15)),
        "stops within the grace period"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let detail = cluster.job(survivor, &token, &job).await;
        if detail["job"]["status"] == "completed" {
            assert_eq!(detail["job"]["synced"], 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not taken over: {}",
            detail["job"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = cluster.pems_stats().await;
    assert_eq!(stats["writes"], 200, "{stats}");
    eprintln!(
        "stopped and finished elsewhere {:?} after the SIGTERM",
        stopping.elapsed()
    );
}
