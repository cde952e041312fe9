//! The HTTP side of the load: signing in, publishing bench events, saving drafts, committing.

use crate::{histogram::Histogram, subscribers::now_us};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    /// Bearer token of the bench admin, with the publish scope.
    pub token: String,
    /// Round trips of the publish requests (shared by the clones of an `Api`).
    pub publishes: Arc<Histogram>,
}

/// The JSON body of `response`, which `what` must answer with `status`.
async fn expect_json(
    response: reqwest::Response,
    status: u16,
    what: &str,
) -> anyhow::Result<Value> {
    let answered = response.status();
    let body: Value = response.json().await?;
    if answered != status {
        bail!("{what} answered {answered}: {body}");
    }
    Ok(body)
}

/// The session cookie's name (`src/server/auth/mod.rs`).
const SESSION_COOKIE: &str = pfa_sync::server::auth::SESSION_COOKIE;

impl Api {
    pub fn new(client: reqwest::Client, base: String, token: String) -> Self {
        Self {
            client,
            base,
            token,
            publishes: Arc::new(Histogram::new()),
        }
    }

    /// Signs in like a browser and returns the session cookie (`pfa_session=…`).
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/api/auth/login", self.base))
            .header("origin", &self.base)
            .json(&json!({"username": username, "password": password}))
            .send()
            .await?;
        if response.status() != 200 {
            bail!("login of {username}: {}", response.status());
        }
        // The login also sets the script-readable sign-in hint; the order of the two
        // Set-Cookie headers is not fixed, so the session cookie is picked by name.
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(|cookie| cookie.split(';').next().unwrap_or_default())
            .find(|pair| pair.starts_with(&format!("{SESSION_COOKIE}=")))
            .map(str::to_owned)
            .context("no session cookie in the login answer")
    }

    /// Publishes one bench event stamped with this process's clock; returns its seq.
    pub async fn publish(&self, org: &str, job: &str) -> anyhow::Result<u64> {
        let body = json!({
            "type": "SYNC_SUCCESS",
            "jobId": job,
            "pfaId": "PFA-BENCH",
            "message": "bench event",
            "data": {"t": now_us()},
        });
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/api/orgs/{org}/events", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        if response.status() != 202 {
            bail!("publish answered {}", response.status());
        }
        let answer: Value = response.json().await?;
        self.publishes.record(started.elapsed().as_micros() as u64);
        answer["seq"].as_u64().context("publish answer without seq")
    }

    /// `rate` events a second for `duration`, each publish on its own task so a slow answer
    /// does not lower the rate. Returns (events, highest seq).
    pub async fn publish_steady(
        &self,
        org: &str,
        job: &str,
        rate: u32,
        duration: Duration,
    ) -> anyhow::Result<(u64, u64)> {
        let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let head = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..total {
            ticker.tick().await;
            let (api, org, job, head) =
                (self.clone(), org.to_owned(), job.to_owned(), head.clone());
            tasks.spawn(async move {
                let seq = api.publish(&org, &job).await?;
                head.fetch_max(seq, Ordering::Relaxed);
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok((total, head.load(Ordering::Relaxed)))
    }

    /// `count` events as fast as the API answers, from `parallel` keep-alive connections.
    pub async fn publish_burst(
        &self,
        org: &str,
        job: &str,
        count: u64,
        parallel: u64,
    ) -> anyhow::Result<u64> {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..parallel {
            let (api, org, job, next) =
                (self.clone(), org.to_owned(), job.to_owned(), next.clone());
            tasks.spawn(async move {
                let mut head = 0;
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    head = head.max(api.publish(&org, &job).await?);
                }
                anyhow::Ok(head)
            });
        }
        let mut head = 0;
        while let Some(done) = tasks.join_next().await {
            head = head.max(done??);
        }
        Ok(head)
    }

    /// Saves `pfa_ids` as drafts in one request (a notes change); returns the round trip.
    pub async fn save_drafts(
        &self,
        org: &str,
        pfa_ids: &[String],
        note: &str,
    ) -> anyhow::Result<Duration> {
        let drafts: Vec<Value> = pfa_ids
            .iter()
            .map(|id| json!({"pfaId": id, "changes": {"notes": note}}))
            .collect();
        let body = serde_json::to_vec(&json!({ "drafts": drafts }))?;
        let started = Instant::now();
        let response = self
            .client
            .put(format!("{}/api/orgs/{org}/drafts", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        let took = started.elapsed();
        if status != 200 {
            bail!("draft save answered {status}: {text}");
        }
        Ok(took)
    }

    /// Commits every draft of the caller in `org`; returns the job id.
    pub async fn commit(&self, org: &str) -> anyhow::Result<String> {
        let response = self
            .client
            .post(format!("{}/api/orgs/{org}/drafts/commit", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let answer = expect_json(response, 202, "commit").await?;
        answer["job"]["id"]
            .as_str()
            .map(str::to_owned)
            .context("commit answer without job id")
    }

    /// When the job's terminal status was written (`completedAt`, the server's clock), if it
    /// has one; looked up among the organization's newest jobs.
    pub async fn job_completed_at(
        &self,
        org: &str,
        job: &str,
    ) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        let response = self
            .client
            .get(format!("{}/api/orgs/{org}/jobs?limit=10", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let answer = expect_json(response, 200, "job list").await?;
        let completed = answer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["id"] == job)
            .and_then(|j| j["completedAt"].as_str())
            .map(chrono::DateTime::parse_from_rfc3339)
            .transpose()?
            .map(|t| t.to_utc());
        Ok(completed)
    }

    /// Sets the simulator's fault settings (latency per request).
    pub async fn pems_latency(&self, pems: &str, latency_ms: u64) -> anyhow::Result<()> {
        let response = self
            .client
            .put(format!("{pems}/api/pems/_faults"))
            .json(&json!({ "latencyMs": latency_ms }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("simulator faults answered {}", response.status());
        }
        Ok(())
    }
}
