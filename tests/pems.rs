//! The PEMS simulator on a real port, driven through the real client and its fault API.

use pfa_sync::server::sync::pems::{
    client::{PemsClient, PemsError},
    simulator::{self, RunningSimulator},
    wire::{BatchItem, WriteRequest},
};
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::{CancellationToken, DropGuard};

const ORG: &str = "RIO";

struct Pems {
    running: RunningSimulator,
    client: PemsClient,
    http: reqwest::Client,
    _stop: DropGuard,
}

impl Pems {
    async fn start() -> Self {
        let token = CancellationToken::new();
        let running = simulator::spawn("127.0.0.1:0".parse().unwrap(), token.clone())
            .await
            .unwrap();
        let client = PemsClient::new(&running.base_url, Duration::from_secs(5)).unwrap();
        Self {
            running,
            client,
            http: reqwest::Client::new(),
            _stop: token.drop_guard(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    async fn put_faults(&self, faults: Value) -> reqwest::Response {
        let url = self.url("/api/pems/_faults");
        self.http.put(url).json(&faults).send().await.unwrap()
    }
}

fn changes(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn write_req(pfa_id: &str, version: i64, fields: Value) -> WriteRequest {
    WriteRequest {
        pfa_id: pfa_id.into(),
        organization_code: ORG.into(),
        changes: changes(fields),
        version,
        modified_by: "planner@rio".into(),
        change_reason: Some("forecast moved".into()),
    }
}

#[tokio::test]
async fn an_accepted_write_bumps_the_version_and_is_readable() {
    let pems = Pems::start().await;
    let ok = pems
        .client
        .write(
            &write_req("PFA-001", 3, json!({ "monthlyRate": 1200 })),
            "k-1",
        )
        .await
        .unwrap();
    assert!(ok.success);
    assert_eq!((ok.pfa_id.as_str(), ok.new_version), ("PFA-001", 4));
    let record = pems.client.read(ORG, "PFA-001").await.unwrap();
    assert_eq!(record.version, 4);
    assert_eq!(record.fields["monthlyRate"], 1200);
    assert_eq!(record.modified_by, "planner@rio");
    pems.client.health().await.unwrap();
}

#[tokio::test]
async fn a_stale_write_after_a_remote_edit_is_a_conflict_with_current_values() {
    let pems = Pems::start().await;
    let base = json!({ "monthlyRate": 100, "notes": "a" });
    pems.client
        .write(&write_req("PFA-002", 1, base), "k-1")
        .await
        .unwrap();
    let edit = json!({ "organizationCode": ORG, "pfaId": "PFA-002", "changes": {
        "monthlyRate": 150, "equipment": "crane" } });
    let url = pems.url("/api/pems/_faults/remote-edit");
    let remote: Value = pems
        .http
        .post(url)
        .json(&edit)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (remote["version"].as_i64(), &remote["modifiedBy"]),
        (Some(3), &json!("pems-user"))
    );

    let stale = write_req("PFA-002", 2, json!({ "monthlyRate": 130, "notes": "b" }));
    let err = pems.client.write(&stale, "k-2").await.unwrap_err();
    let PemsError::Conflict {
        current_version,
        expected_version,
        conflicting_fields,
        changed_fields,
        current_values,
    } = &err
    else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!((*current_version, *expected_version), (3, 2));
    assert_eq!(conflicting_fields, &["monthlyRate"]);
    assert_eq!(changed_fields, &["equipment", "monthlyRate"]);
    assert_eq!(
        current_values,
        &changes(json!({ "monthlyRate": 150, "equipment": "crane" }))
    );
    assert_eq!(err.error_code(), "PEMS_VERSION_CONFLICT");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_retried_write_with_the_same_idempotency_key_is_applied_once() {
    let pems = Pems::start().await;
    let req = write_req("PFA-003", 7, json!({ "notes": "once" }));
    let first = pems.client.write(&req, "job-1/PFA-003").await.unwrap();
    let again = pems.client.write(&req, "job-1/PFA-003").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(pems.running.sim.accepted_writes(ORG, "PFA-003"), 1);
    assert_eq!(pems.running.sim.record(ORG, "PFA-003").unwrap().version, 8);
    let url = pems.url("/api/pems/_stats");
    let stats: Value = pems
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        json!({ "writes": 1, "byRecord": { "RIO/PFA-003": 1 }, "requests": 2 })
    );
}

#[tokio::test]
async fn fail_next_answers_503_twice_then_the_write_succeeds() {
    let pems = Pems::start().await;
    assert_eq!(
        pems.put_faults(json!({ "failNext": [503, 503] }))
            .await
            .status(),
        200
    );
    let req = write_req("PFA-004", 1, json!({ "notes": "x" }));
    for _ in 0..2 {
        let err = pems.client.write(&req, "k").await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.error_code(), "PEMS_UNAVAILABLE");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert!(err
            .to_string()
            .starts_with("PEMS API returned 503 Service Unavailable"));
    }
    assert_eq!(pems.client.write(&req, "k").await.unwrap().new_version, 2);
    assert_eq!(pems.running.sim.stats().requests, 3);
}

#[tokio::test]
async fn an_injected_400_is_rejected_and_not_retryable() {
    let pems = Pems::start().await;
    pems.put_faults(json!({ "errorRate": 1.0, "errorStatus": 400 }))
        .await;
    let err = pems
        .client
        .write(&write_req("PFA-005", 1, json!({ "notes": "x" })), "k")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PemsError::Rejected { status: 400, code, .. } if code == "INVALID_REQUEST")
    );
    assert_eq!(err.error_code(), "PEMS_INVALID_REQUEST");
    assert!(!err.is_retryable());
    assert_eq!(pems.running.sim.total_accepted_writes(), 0);
}

#[tokio::test]
async fn latency_beyond_the_client_timeout_is_a_retryable_timeout() {
    let pems = Pems::start().await;
    pems.put_faults(json!({ "latencyMs": 400 })).await;
    let impatient = PemsClient::new(&pems.running.base_url, Duration::from_millis(100)).unwrap();
    let err = impatient
        .write(&write_req("PFA-006", 1, json!({ "notes": "x" })), "k")
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), "PEMS_TIMEOUT");
    assert!(err.is_retryable());
    assert_eq!(err.status(), None);
    let read = impatient.read(ORG, "PFA-006").await.unwrap_err();
    assert_eq!(read.error_code(), "PEMS_TIMEOUT");
}

#[tokio::test]
async fn an_outage_answers_503_to_everything_until_it_ends() {
    let pems = Pems::start().await;
    let view: Value = pems
        .put_faults(json!({ "outageMs": 600 }))
        .await
        .json()
        .await
        .unwrap();
    assert!(view["outageRemainingMs"].as_u64().unwrap() > 0);
    let health = pems.client.health().await.unwrap_err();
    assert_eq!(health.error_code(), "PEMS_UNAVAILABLE");
    assert_eq!(health.retry_after(), Some(Duration::from_secs(1)));
    let req = write_req("PFA-007", 1, json!({ "notes": "x" }));
    let write = pems.client.write(&req, "k").await.unwrap_err();
    assert_eq!(write.error_code(), "PEMS_UNAVAILABLE");

    if let Some(left) = pems.running.sim.outage_remaining() {
        tokio::time::sleep(left + Duration::from_millis(10)).await;
    }
    pems.client.health().await.unwrap();
    assert_eq!(pems.client.write(&req, "k").await.unwrap().new_version, 2);
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = PemsClient::new(&format!("http://{addr}"), Duration::from_secs(2)).unwrap();
    let err = client.health().await.unwrap_err();
    assert_eq!(err.error_code(), "PEMS_UNREACHABLE");
    assert!(err.is_retryable());
    assert!(err.to_string().starts_with("PEMS API unreachable"), "{err}");
}

#[tokio::test]
async fn reading_an_unknown_record_is_not_found() {
    let pems = Pems::start().await;
    let err = pems.client.read(ORG, "PFA-404").await.unwrap_err();
    assert_eq!(
        (err.error_code(), err.is_retryable()),
        ("PEMS_NOT_FOUND", false)
    );
}

#[tokio::test]
async fn a_batch_answers_each_item_as_the_single_put_would() {
    let pems = Pems::start().await;
    pems.running
        .sim
        .remote_edit(ORG, "PFA-B2", changes(json!({ "notes": "pems" })), 1);
    pems.put_faults(json!({ "failNext": [500] })).await;
    let item = |pfa: &str, version, key: &str| BatchItem {
        request: write_req(pfa, version, json!({ "notes": "batch" })),
        idempotency_key: Some(key.into()),
    };
    let items = [
        item("PFA-B1", 1, "b1"),
        item("PFA-B2", 1, "b2"),
        item("PFA-B3", 4, "b3"),
    ];
    let outcomes = pems.client.write_batch(ORG, &items).await.unwrap();
    let codes: Vec<_> = outcomes
        .iter()
        .map(|o| {
            (
                o.pfa_id.as_str(),
                o.result.as_ref().map_err(|e| e.error_code()),
            )
        })
        .map(|(pfa, r)| (pfa, r.map(|ok| ok.new_version)))
        .collect();
    assert_eq!(
        codes,
        [
            ("PFA-B1", Err("PEMS_SERVER_ERROR")),
            ("PFA-B2", Err("PEMS_VERSION_CONFLICT")),
            ("PFA-B3", Ok(5)),
        ]
    );
    let again = pems.client.write_batch(ORG, &items[2..]).await.unwrap();
    assert_eq!(again[0].result.as_ref().unwrap().new_version, 5);
    assert_eq!(pems.running.sim.accepted_writes(ORG, "PFA-B3"), 1);
}

#[tokio::test]
async fn the_fault_api_refuses_bad_settings_with_422_and_keeps_the_old_ones() {
    let pems = Pems::start().await;
    pems.put_faults(json!({ "latencyMs": 5 })).await;
    let bad = [
        json!({ "errorRate": 1.5 }),
        json!({ "errorStatus": 418 }),
        json!({ "failNext": [503, 200] }),
        json!({ "latencyMs": -1 }),
        json!({ "latency": 5 }),
    ];
    for faults in bad {
        let response = pems.put_faults(faults.clone()).await;
        assert_eq!(response.status(), 422, "{faults}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "INVALID_FAULTS");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(pems.running.sim.faults().latency_ms, 5);
    let url = pems.url("/api/pems/_faults");
    let reset: Value = pems
        .http
        .delete(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&reset["latencyMs"], &reset["errorStatus"]),
        (&json!(0), &json!(503))
    );
}

#[tokio::test]
async fn pems_sim_command_prints_its_address_and_answers_health() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pfa-sync"))
        .args(["pems-sim", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the simulator prints its address")
        .unwrap()
        .unwrap();
    let base_url = line
        .strip_prefix("PEMS simulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(!base_url.ends_with(":0"), "{base_url}");
    let client = PemsClient::new(base_url, Duration::from_secs(5)).unwrap();
    client.health().await.unwrap();
    child.kill().await.unwrap();
}
