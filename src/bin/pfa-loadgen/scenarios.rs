//! The measured scenarios. Each returns figures; `report` turns them into the table.

use crate::{
    api::Api,
    histogram::Summary,
    procs::{cpu_time, rss_bytes, CpuSampler, Proc},
    subscribers::{now_us, Ctl, Pool},
};
use anyhow::Context;
use futures::StreamExt;
use std::{
    path::Path,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// How events are published in a fan-out measurement.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    Steady { rate: u32, secs: u64 },
    Burst { events: u64 },
}

#[derive(Debug, Clone, Default)]
pub struct Fanout {
    pub latency: Summary,
    /// Round trips of the publish requests.
    pub publish: Summary,
    pub deliveries_per_sec: f64,
    pub server_cpu_ms_per_1k: f64,
    pub loadgen_cpu_ms_per_1k: f64,
    pub lost: u64,
    /// Subscribers closed with 4008 that caught up with `since`.
    pub too_slow: u64,
}

/// Publishes `load` to the pool's org through `api` and measures what the pool receives. The
/// pool may be connected to another instance than the one `api` publishes to: the latency is
/// still publish-to-receive on this process's clock. Server CPU is the sum over `servers`.
pub async fn fanout(
    api: &Api,
    servers: &[&Proc],
    pool: &Pool,
    org: &str,
    load: Load,
    ticks: u64,
) -> anyhow::Result<Fanout> {
    pool.reset(true);
    api.publishes.reset();
    let servers_cpu = || -> Duration { servers.iter().map(|s| cpu_time(s.pid(), ticks)).sum() };
    let (server_cpu0, own_cpu0) = (servers_cpu(), cpu_time(std::process::id(), ticks));
    let started_us = now_us();
    let (events, head) = match load {
        Load::Steady { rate, secs } => {
            api.publish_steady(org, "bench-steady", rate, Duration::from_secs(secs))
                .await?
        }
        Load::Burst { events } => (
            events,
            api.publish_burst(org, "bench-burst", events, 4).await?,
        ),
    };
    let complete = pool.wait_all_at(head, Duration::from_secs(120)).await;
    let server_cpu = servers_cpu().saturating_sub(server_cpu0);
    let own_cpu = cpu_time(std::process::id(), ticks) - own_cpu0;
    let s = &pool.shared;
    let deliveries = pool.received();
    let expected = events * pool.len() as u64;
    let span_us = s
        .last_delivery_us
        .load(Ordering::Relaxed)
        .saturating_sub(started_us)
        .max(1);
    let per_1k = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / (deliveries.max(1) as f64 / 1000.0);
    let lost = expected.saturating_sub(deliveries) + s.gaps.load(Ordering::Relaxed);
    if !complete || lost > 0 {
        eprintln!("  lost {lost} of {expected} deliveries");
    }
    Ok(Fanout {
        latency: s.hist.summary(),
        publish: api.publishes.summary(),
        deliveries_per_sec: deliveries as f64 / (span_us as f64 / 1e6),
        server_cpu_ms_per_1k: per_1k(server_cpu),
        loadgen_cpu_ms_per_1k: per_1k(own_cpu),
        lost,
        too_slow: s.too_slow.load(Ordering::Relaxed),
    })
}

#[derive(Debug, Clone, Default)]
pub struct Idle {
    pub connections: usize,
    pub connect_secs: f64,
    pub rss_before: u64,
    pub rss_after: u64,
}

impl Idle {
    pub fn per_connection(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.connections.max(1) as f64
    }
}

/// Opens `n` idle authenticated subscribers and reads the server's RSS before and after.
pub async fn idle_connections(
    server: &Proc,
    org: &str,
    cookie: &str,
    n: usize,
) -> anyhow::Result<(Pool, Idle)> {
    let rss_before = rss_bytes(server.pid());
    let started = Instant::now();
    let pool = Pool::connect(server.addr, org, cookie, n, 256).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    // Let allocations made during the handshakes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_bytes(server.pid());
    Ok((
        pool,
        Idle {
            connections: n,
            connect_secs,
            rss_before,
            rss_after,
        },
    ))
}

#[derive(Debug, Clone, Default)]
pub struct Storm {
    pub clients: usize,
    pub missed_events: u64,
    pub recovered_secs: f64,
    pub peak_server_cpu: f64,
    pub lost: u64,
    pub resyncs: u64,
}

/// Cuts every subscriber at once, publishes `missed` events meanwhile, then lets them all
/// reconnect with `since` (full jitter below 1 s, like the browser) and replay.
pub async fn reconnect_storm(
    api: &Api,
    server: &Proc,
    pool: &Pool,
    org: &str,
    missed: u64,
    ticks: u64,
) -> anyhow::Result<Storm> {
    pool.reset(false);
    pool.command(Ctl::Cut);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pool.shared.connected.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let head = api.publish_burst(org, "bench-storm", missed, 4).await?;
    let sampler = CpuSampler::start(server.pid(), ticks, Duration::from_millis(250));
    let started = Instant::now();
    pool.command(Ctl::Reconnect { jitter_ms: 1000 });
    pool.wait_connected(pool.len(), Duration::from_secs(120))
        .await
        .context("reconnect storm")?;
    let complete = pool.wait_all_at(head, Duration::from_secs(120)).await;
    let recovered_secs = started.elapsed().as_secs_f64();
    pool.command(Ctl::Live);
    let peak_server_cpu = sampler.peak().await;
    let s = &pool.shared;
    let expected = missed * pool.len() as u64;
    let lost = expected.saturating_sub(pool.received()) + s.gaps.load(Ordering::Relaxed);
    if !complete || lost > 0 {
        eprintln!("  storm: lost {lost} of {expected} replayed deliveries");
    }
    Ok(Storm {
        clients: pool.len(),
        missed_events: missed,
        recovered_secs,
        peak_server_cpu,
        lost,
        resyncs: s.resyncs.load(Ordering::Relaxed),
    })
}

#[derive(Debug, Clone, Default)]
pub struct DraftSave {
    pub records: usize,
    pub saves: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Saves the same `records` drafts `saves` times, one request after the other.
pub async fn draft_save(
    api: &Api,
    org: &str,
    pfa_ids: &[String],
    records: usize,
    saves: usize,
) -> anyhow::Result<DraftSave> {
    let mut took = Vec::with_capacity(saves);
    for i in 0..saves + saves / 10 {
        let start = (i * records) % pfa_ids.len().saturating_sub(records).max(1);
        let ids = &pfa_ids[start..start + records];
        let t = api
            .save_drafts(org, ids, &format!("bench note {i}"))
            .await?;
        // The first tenth warms the caches and the connection pool.
        if i >= saves / 10 {
            took.push(t.as_secs_f64() * 1000.0);
        }
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    Ok(DraftSave {
        records,
        saves,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    })
}

#[derive(Debug, Clone, Default)]
pub struct SyncRun {
    pub records: usize,
    pub secs: f64,
    pub events: u64,
    pub status: String,
    pub job: String,
    /// From the commit request to its answer (the job is created then, and may have started).
    pub commit_secs: f64,
    /// Records the job wrote (`data.synced` of its terminal event).
    pub synced: u64,
    /// When the commit was sent (wall clock and `now_us`) and the terminal event arrived
    /// (`now_us`).
    pub committed_at: chrono::DateTime<chrono::Utc>,
    pub committed_us: u64,
    pub ended_us: u64,
}

/// Saves `pfa_ids` as drafts, commits them and follows the job on the socket until its
/// job-level terminal event.
pub async fn sync_commit(
    api: &Api,
    server: &Proc,
    pems: &str,
    org: &str,
    cookie: &str,
    pfa_ids: &[String],
    pems_latency_ms: u64,
) -> anyhow::Result<SyncRun> {
    api.pems_latency(pems, pems_latency_ms).await?;
    for chunk in pfa_ids.chunks(5000) {
        api.save_drafts(org, chunk, &format!("sync bench {pems_latency_ms} ms"))
            .await?;
    }
    let mut request = format!("ws://{}/api/ws/sync/{org}", server.addr).into_client_request()?;
    request.headers_mut().insert("cookie", cookie.parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let started = Instant::now();
    let (committed_at, committed_us) = (chrono::Utc::now(), now_us());
    let job = api.commit(org).await?;
    let commit_secs = started.elapsed().as_secs_f64();
    let job_key = format!(r#""jobId":"{job}""#);
    let mut events = 0u64;
    let (status, synced) = loop {
        let message = tokio::time::timeout(Duration::from_secs(600), ws.next())
            .await
            .context("no sync event for 600 s")?
            .context("socket ended")??;
        let Message::Text(text) = message else {
            continue;
        };
        if !text.contains(&job_key) {
            continue;
        }
        events += 1;
        let terminal = (text.starts_with(r#"{"type":"SYNC_SUCCESS""#)
            || text.starts_with(r#"{"type":"SYNC_FAILED""#))
            && !text.contains(r#""pfaId""#);
        if terminal {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            let status = v["data"]["jobStatus"].as_str().unwrap_or("?").to_owned();
            break (status, v["data"]["synced"].as_u64().unwrap_or(0));
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let ended_us = now_us();
    let _ = ws.close(None).await;
    api.pems_latency(pems, 0).await?;
    Ok(SyncRun {
        records: pfa_ids.len(),
        secs,
        events,
        status,
        job,
        commit_secs,
        synced,
        committed_at,
        committed_us,
        ended_us,
    })
}

#[derive(Debug, Clone, Default)]
pub struct WatchedSync {
    pub watchers: usize,
    pub run: SyncRun,
    /// From the commit request to the job's end: its `completedAt` (the server writes it with
    /// the terminal status, just before the terminal event) as the jobs API reports it.
    pub secs: f64,
    /// From the job's end to the moment the last subscriber of the pool had the terminal event.
    pub last_lag_secs: f64,
    /// Events of the job that subscribers of the pool did not get: per subscriber, the
    /// record-level `SYNC_SUCCESS` events short of the job's `synced`, plus the terminal event
    /// if it never came.
    pub lost: u64,
    /// Subscribers closed with 4008 (too slow) that caught up with `since`.
    pub too_slow: u64,
    pub resyncs: u64,
    /// Seqs skipped between two received events: the server coalesces a slow socket's queued
    /// `SYNC_PROGRESS`, which is not a loss (losses are counted from the job's own events).
    pub gaps: u64,
    /// CPU seconds of the server and of the load generator from the drafts' save to the last
    /// subscriber's terminal event.
    pub server_cpu_secs: f64,
    pub loadgen_cpu_secs: f64,
}

/// A sync (`sync_commit`) while `pool` (when given) watches the same organization: how long the
/// job takes, when the last subscriber had its terminal event, and what subscribers missed.
#[allow(clippy::too_many_arguments)]
pub async fn watched_sync(
    api: &Api,
    server: &Proc,
    pems: &str,
    org: &str,
    cookie: &str,
    pfa_ids: &[String],
    pems_latency_ms: u64,
    pool: Option<&Pool>,
    ticks: u64,
) -> anyhow::Result<WatchedSync> {
    if let Some(pool) = pool {
        pool.watch_jobs();
    }
    let (server_cpu0, own_cpu0) = (
        cpu_time(server.pid(), ticks),
        cpu_time(std::process::id(), ticks),
    );
    let run = sync_commit(api, server, pems, org, cookie, pfa_ids, pems_latency_ms).await?;
    if let Some(pool) = pool {
        // The terminal event is the job's last (its status change is written after every
        // record event), so a subscriber that has it has had all it will get.
        pool.wait_all_ended(Duration::from_secs(300)).await;
        pool.shared.watch_jobs.store(false, Ordering::Relaxed);
    }
    let server_cpu = cpu_time(server.pid(), ticks).saturating_sub(server_cpu0);
    let own_cpu = cpu_time(std::process::id(), ticks).saturating_sub(own_cpu0);
    // The job's end on this process's clock (`now_us`): its completedAt, else (no such field)
    // the measuring socket's terminal event.
    let ended_us = match api.job_completed_at(org, &run.job).await? {
        Some(at) => {
            let after_commit = (at - run.committed_at).num_microseconds().unwrap_or(0);
            run.committed_us.saturating_add_signed(after_commit)
        }
        None => run.ended_us,
    };
    let mut watched = WatchedSync {
        secs: ended_us.saturating_sub(run.committed_us) as f64 / 1e6,
        server_cpu_secs: server_cpu.as_secs_f64(),
        loadgen_cpu_secs: own_cpu.as_secs_f64(),
        ..WatchedSync::default()
    };
    if let Some(pool) = pool {
        let s = &pool.shared;
        let last_end = s
            .slots
            .iter()
            .map(|slot| slot.job_end_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let lost = s
            .slots
            .iter()
            .map(|slot| {
                let records = slot.job_records.load(Ordering::Relaxed);
                let ended = slot.job_end_us.load(Ordering::Relaxed) > 0;
                run.synced.saturating_sub(records) + u64::from(!ended)
            })
            .sum::<u64>();
        if lost > 0 {
            eprintln!(
                "  lost {lost} of {} job events",
                (run.synced + 1) * pool.len() as u64
            );
        }
        watched = WatchedSync {
            watchers: pool.len(),
            last_lag_secs: last_end.saturating_sub(ended_us) as f64 / 1e6,
            lost,
            too_slow: s.too_slow.load(Ordering::Relaxed),
            resyncs: s.resyncs.load(Ordering::Relaxed),
            gaps: s.gaps.load(Ordering::Relaxed),
            ..watched
        };
    }
    Ok(WatchedSync { run, ..watched })
}

/// Bytes of one file of the bundle: on disk, and as the server sends it compressed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    pub raw: u64,
    pub gzip: u64,
    pub brotli: u64,
}

impl std::ops::AddAssign for Sizes {
    fn add_assign(&mut self, other: Self) {
        self.raw += other.raw;
        self.gzip += other.gzip;
        self.brotli += other.brotli;
    }
}

#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// The module every page loads and hydrates with (`pkg/<name>.wasm` beside `<name>.js`).
    pub main: Sizes,
    /// The lazy modules split off by `cargo leptos build --split` (pages, the conflict
    /// dialog, and the chunks they share), loaded on demand.
    pub chunks: Sizes,
    pub chunk_count: usize,
    /// Every JavaScript file of `pkg/` (the wasm-bindgen glue and the split loader).
    pub js: Sizes,
}

/// The files of `pkg/`: the main wasm module is the one with a JavaScript file of the same
/// name (wasm-bindgen's glue); any other wasm module is lazy (a route, a `#[lazy]` function,
/// or a chunk they share).
#[derive(Debug, PartialEq)]
struct PkgFiles {
    main: String,
    chunks: Vec<String>,
    js: Vec<String>,
}

impl PkgFiles {
    fn of(names: &[String]) -> Option<Self> {
        let wasm = || names.iter().filter(|n| n.ends_with(".wasm"));
        let main = wasm()
            .find(|n| {
                let glue = format!("{}.js", n.trim_end_matches(".wasm"));
                names.contains(&glue)
            })?
            .clone();
        let mut chunks: Vec<String> = wasm().filter(|n| **n != main).cloned().collect();
        let mut js: Vec<String> = names
            .iter()
            .filter(|n| n.ends_with(".js"))
            .cloned()
            .collect();
        chunks.sort();
        js.sort();
        Some(Self { main, chunks, js })
    }
}

/// Sizes of the hydrate bundle in `site_root/pkg`: raw on disk, and as the server sends it
/// compressed. None when the site was not built.
pub async fn bundle(api: &Api, site_root: &Path) -> anyhow::Result<Option<Bundle>> {
    let pkg = site_root.join("pkg");
    let Ok(entries) = std::fs::read_dir(&pkg) else {
        return Ok(None);
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let Some(files) = PkgFiles::of(&names) else {
        return Ok(None);
    };
    let sizes = |file: String| {
        let api = api.clone();
        let raw = std::fs::metadata(pkg.join(&file)).map(|m| m.len());
        async move {
            let served = |encoding: &'static str| {
                let (api, file) = (api.clone(), file.clone());
                async move {
                    let response = api
                        .client
                        .get(format!("{}/pkg/{file}", api.base))
                        .header("accept-encoding", encoding)
                        .send()
                        .await?
                        .error_for_status()?;
                    anyhow::Ok(response.bytes().await?.len() as u64)
                }
            };
            anyhow::Ok(Sizes {
                raw: raw?,
                gzip: served("gzip").await?,
                brotli: served("br").await?,
            })
        }
    };
    let mut bundle = Bundle {
        main: sizes(files.main).await?,
        chunk_count: files.chunks.len(),
        ..Bundle::default()
    };
    for chunk in files.chunks {
        bundle.chunks += sizes(chunk).await?;
    }
    for js in files.js {
        bundle.js += sizes(js).await?;
    }
    Ok(Some(bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_main_module_is_the_one_with_glue_and_the_others_are_lazy_routes() {
        let files = PkgFiles::of(&names(&[
            "split_b.wasm",
            "pfa-sync.js",
            "__wasm_split_manifest.json",
            "pfa-sync.wasm",
            "split_a.wasm",
            "__wasm_split.______________________.js",
        ]))
        .unwrap();
        assert_eq!(files.main, "pfa-sync.wasm");
        assert_eq!(files.chunks, ["split_a.wasm", "split_b.wasm"]);
        assert_eq!(
            files.js,
            ["__wasm_split.______________________.js", "pfa-sync.js"]
        );

        let unsplit = PkgFiles::of(&names(&["pfa-sync.wasm", "pfa-sync.js"])).unwrap();
        assert!(unsplit.chunks.is_empty());
        assert_eq!(PkgFiles::of(&names(&["pfa-sync.wasm"])), None);
        assert_eq!(PkgFiles::of(&[]), None);
    }
}
