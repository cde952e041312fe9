//! `pfa-sync ws-check`: the card's integration script, for real. Against a running server it
//! checks health, connects with a bearer token, publishes events through the publish API and
//! measures publish-to-receive latency, then drops the connection, publishes more and verifies
//! that reconnecting with `since` replays exactly what was missed. One line per check; exit
//! code 1 when any check fails.

use super::config::WsCheckArgs;
use anyhow::{bail, Context};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// Events published while disconnected, for the replay check.
const MISSED: usize = 25;
/// The card's latency target.
const LATENCY_TARGET: Duration = Duration::from_millis(100);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Report {
    failures: usize,
}

impl Report {
    fn line(&mut self, ok: bool, text: String) {
        println!("{} {text}", if ok { "✅" } else { "❌" });
        if !ok {
            self.failures += 1;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn connect(ws_url: &str, token: &str, since: Option<u64>) -> anyhow::Result<(Socket, Value)> {
    let url = match since {
        Some(s) => format!("{ws_url}?since={s}"),
        None => ws_url.to_owned(),
    };
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("WebSocket connect")?;
    let first = next_json(&mut socket, Duration::from_secs(5)).await?;
    if first["type"] != "CONNECTED" {
        bail!("expected CONNECTED, got {first}");
    }
    Ok((socket, first))
}

async fn next_json(socket: &mut Socket, wait: Duration) -> anyhow::Result<Value> {
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .context("timed out waiting for a message")?
            .context("connection closed")??;
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Close(frame) => bail!("closed by the server: {frame:?}"),
            _ => continue,
        }
    }
}

/// Reads until an event of `job_id` arrives (skipping heartbeats and other events).
async fn wait_for_job(socket: &mut Socket, job_id: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let value = next_json(socket, left).await?;
        if value["jobId"] == job_id {
            return Ok(value);
        }
    }
}

pub async fn run(args: WsCheckArgs) -> anyhow::Result<()> {
    let base = url::Url::parse(&args.url).with_context(|| format!("--url {:?}", args.url))?;
    let ws_scheme = if base.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    let host = base.host_str().context("--url needs a host")?;
    let authority = match base.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let http_base = args.url.trim_end_matches('/').to_owned();
    let ws_url = format!("{ws_scheme}://{authority}/api/ws/sync/{}", args.org);
    let publish_url = format!("{http_base}/api/orgs/{}/events", args.org);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let run_id = format!("ws-check-{}", chrono::Utc::now().timestamp_millis());
    let mut report = Report { failures: 0 };

    let health = client.get(format!("{http_base}/health")).send().await;
    match health {
        Ok(r) if r.status().is_success() => {
            report.line(true, format!("server healthy at {http_base}"))
        }
        Ok(r) => report.line(false, format!("health answered {}", r.status())),
        Err(e) => {
            report.line(false, format!("server unreachable at {http_base}: {e}"));
            bail!("1 check failed");
        }
    }

    let started = Instant::now();
    let (mut socket, connected) = match connect(&ws_url, &args.token, None).await {
        Ok(ok) => ok,
        Err(e) => {
            report.line(false, format!("WebSocket connect to {ws_url}: {e:#}"));
            bail!("{} check(s) failed", report.failures);
        }
    };
    report.line(
        true,
        format!(
            "WebSocket connected successfully in {} (seq {}, heartbeat every {} s)",
            ms(started.elapsed()),
            connected["seq"],
            connected["heartbeatIntervalSecs"]
        ),
    );

    let publish = |job_id: String, i: usize| {
        let client = client.clone();
        let url = publish_url.clone();
        let token = args.token.clone();
        async move {
            let body = json!({"type": "SYNC_PROGRESS", "jobId": job_id, "progress": i % 101,
                              "message": format!("ws-check event {i}")});
            let response = client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await?;
            if !response.status().is_success() {
                bail!(
                    "publish answered {}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
            let answer: Value = response.json().await?;
            answer["seq"].as_u64().context("publish answer without seq")
        }
    };

    let mut latencies = Vec::with_capacity(args.events as usize);
    let mut last_seq = 0;
    let mut error = None;
    for i in 0..args.events as usize {
        let job_id = format!("{run_id}-{i}");
        let sent = Instant::now();
        let outcome = async {
            let (seq, received) = tokio::join!(
                publish(job_id.clone(), i),
                wait_for_job(&mut socket, &job_id)
            );
            let (seq, received) = (seq?, received?);
            if received["seq"] != seq {
                bail!("received seq {} for published seq {seq}", received["seq"]);
            }
            Ok(seq)
        }
        .await;
        match outcome {
            Ok(seq) => {
                latencies.push(sent.elapsed());
                last_seq = seq;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    match error {
        Some(e) => report.line(false, format!("publish-to-receive failed after {} events: {e:#}", latencies.len())),
        None => report.line(
            p99 < LATENCY_TARGET,
            format!(
                "Performance: publish-to-receive latency p50 {} p99 {} over {} events (target p99 < {})",
                ms(p50),
                ms(p99),
                latencies.len(),
                ms(LATENCY_TARGET)
            ),
        ),
    }

    // Drop the connection, publish while away, come back with `since`.
    drop(socket);
    let mut missed = Vec::with_capacity(MISSED);
    for i in 0..MISSED {
        match publish(format!("{run_id}-missed-{i}"), i).await {
            Ok(seq) => missed.push(seq),
            Err(e) => {
                report.line(false, format!("publish while disconnected: {e:#}"));
                bail!("{} check(s) failed", report.failures);
            }
        }
    }
    let replay = async {
        let (mut socket, _) = connect(&ws_url, &args.token, Some(last_seq)).await?;
        let mut got = Vec::new();
        while got.len() < MISSED {
            let value = next_json(&mut socket, Duration::from_secs(5)).await?;
            match value["type"].as_str() {
                Some("HEARTBEAT") => continue,
                Some("RESYNC_REQUIRED") => bail!("server asked for a resync: {value}"),
                _ => got.push(value["seq"].as_u64().unwrap_or(0)),
            }
        }
        Ok::<_, anyhow::Error>(got)
    }
    .await;
    match replay {
        Ok(got) if got == missed => report.line(
            true,
            format!("Auto-reconnection verified: {MISSED}/{MISSED} missed events replayed in order after reconnect (since={last_seq})"),
        ),
        Ok(got) => report.line(false, format!("replay mismatch: expected seqs {missed:?}, got {got:?}")),
        Err(e) => report.line(false, format!("replay after reconnect: {e:#}")),
    }

    if report.failures > 0 {
        bail!("{} check(s) failed", report.failures);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
