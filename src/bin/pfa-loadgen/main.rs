//! `pfa-loadgen`: starts the release server and the PEMS simulator on loopback, drives them
//! like real clients (session-cookie WebSockets, bearer-token API calls) and prints one table
//! of figures against the targets of docs/benchmarks.md. `--quick` runs small sizes to prove
//! the harness works; any lost event fails the run in both modes.

mod api;
mod floor;
mod histogram;
mod procs;
mod report;
mod scenarios;
mod subscribers;

use anyhow::Context;
use clap::Parser;
use report::{fanout_row, kib, thousands, Row};
use scenarios::{Fanout, Load};
use std::{path::PathBuf, process::ExitCode, time::Duration};

const ORG: &str = "org-rio";
const SYNC_ORG: &str = "org-portarthur";
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
/// Sync engine limits of the bench server: the defaults (4 requests in flight, 50 a second per
/// organization) protect a real PEMS and would make a 10,000-record sync last 200 s.
const SYNC_FLAGS: [&str; 2] = ["--sync-concurrency=16", "--pems-rate=20000"];
/// Body bytes of the frame the kernel-floor rows write: about the size of a bench event as
/// the subscribers receive it.
const FLOOR_PAYLOAD: usize = 200;

/// Benchmarks of pfa-sync: fan-out latency, connection memory, reconnect storm, draft save,
/// sync throughput and bundle size.
#[derive(Debug, Parser)]
struct Args {
    /// Small sizes, no targets: proves the harness end to end in well under two minutes.
    #[arg(long)]
    quick: bool,
    /// The `pfa-sync` binary to measure (default: the one next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Site root with `pkg/` (the hydrate bundle), served and measured when present.
    #[arg(long, default_value = "target/site")]
    site_root: PathBuf,
    /// Write the table into this Markdown file (between the bench markers).
    #[arg(long)]
    write: Option<PathBuf>,
    /// Runs of each fan-out measurement; the table shows medians.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Only these groups: drafts, fanout, floor, large, sync, bundle (repeatable; default all).
    #[arg(long)]
    only: Vec<String>,
    /// Extra `pfa-sync serve` flags, e.g. `--server-arg=--ws-outbox-capacity=512`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// A label for the table header (e.g. "before", "after").
    #[arg(long, default_value = "")]
    label: String,
}

/// Scenario sizes of a full and a quick run.
struct Sizes {
    fanout: [usize; 2],
    steady_rate: u32,
    steady_secs: u64,
    burst: u64,
    large: usize,
    large_rate: u32,
    large_secs: u64,
    large_burst: u64,
    storm_missed: u64,
    single_saves: usize,
    batch: usize,
    batch_saves: usize,
    sync_records: usize,
}

const FULL: Sizes = Sizes {
    fanout: [100, 1_000],
    steady_rate: 100,
    steady_secs: 10,
    burst: 2_000,
    large: 10_000,
    large_rate: 10,
    large_secs: 20,
    large_burst: 200,
    storm_missed: 50,
    single_saves: 500,
    batch: 1_000,
    batch_saves: 30,
    sync_records: 10_000,
};

const QUICK: Sizes = Sizes {
    fanout: [10, 50],
    steady_rate: 50,
    steady_secs: 2,
    burst: 200,
    large: 300,
    large_rate: 10,
    large_secs: 2,
    large_burst: 50,
    storm_missed: 20,
    single_saves: 20,
    batch: 100,
    batch_saves: 3,
    sync_records: 100,
};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("pfa-loadgen: events were lost");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pfa-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; Ok(false) when any event was lost.
async fn run(args: Args) -> anyhow::Result<bool> {
    let sizes = if args.quick { &QUICK } else { &FULL };
    let repeat = if args.quick { 1 } else { args.repeat.max(1) };
    let wants = |group: &str| args.only.is_empty() || args.only.iter().any(|g| g == group);
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => procs::sibling_server_binary()?,
    };
    let ticks = procs::clock_ticks();
    let dir = std::env::temp_dir().join(format!("pfa-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database_url = format!("sqlite://{}", dir.join("bench.db").display());
    eprintln!("bench folder (logs, database): {}", dir.display());

    // Data and accounts go in before the server starts, through the library.
    let token = prepare_store(&database_url, sizes.sync_records).await?;
    let sim = procs::start_simulator(&bin, &dir).await?;
    let server_args: Vec<String> = SYNC_FLAGS
        .iter()
        .map(|f| f.to_string())
        .chain(args.server_args.iter().cloned())
        .collect();
    let server = procs::start_server(
        &bin,
        &dir,
        &database_url,
        &sim.base(),
        &args.site_root,
        &server_args,
    )
    .await?;
    let api = api::Api {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?,
        base: server.base(),
        token,
    };
    let cookie = api.login(USER, PASSWORD).await?;
    let mut rows = Vec::new();
    let mut lost_any = false;
    let quick = args.quick;
    let check = |met: bool| met || quick;

    if wants("drafts") {
        eprintln!("draft save …");
        let ids = pfa_ids(ORG, 2000);
        let one = scenarios::draft_save(&api, ORG, &ids, 1, sizes.single_saves).await?;
        let many = scenarios::draft_save(&api, ORG, &ids, sizes.batch, sizes.batch_saves).await?;
        rows.push(
            Row::new(
                "draft save, 1 record",
                format!(
                    "p50 {:.2} ms · p99 {:.2} ms ({} saves)",
                    one.p50_ms, one.p99_ms, one.saves
                ),
            )
            .target("p99 < 5 ms", check(one.p99_ms < 5.0)),
        );
        rows.push(
            Row::new(
                format!("draft save, {} records", many.records),
                format!(
                    "p50 {:.1} ms · p99 {:.1} ms ({} saves)",
                    many.p50_ms, many.p99_ms, many.saves
                ),
            )
            .target("p99 < 100 ms", check(many.p99_ms < 100.0)),
        );
    }

    if wants("fanout") {
        for (i, &subs) in sizes.fanout.iter().enumerate() {
            eprintln!("{subs} subscribers …");
            let pool = subscribers::Pool::connect(server.addr, ORG, &cookie, subs, 256).await?;
            let steady = Load::Steady {
                rate: sizes.steady_rate,
                secs: sizes.steady_secs,
            };
            let runs = measure(&api, &server, &pool, steady, repeat, ticks).await?;
            // The targets are set at 1,000 subscribers.
            let target = (i == 1).then_some(4.0);
            rows.push(fanout_row(
                &format!(
                    "{subs} subs × {}/s × {} s",
                    sizes.steady_rate, sizes.steady_secs
                ),
                &runs,
                target,
                None,
                quick,
            ));
            let burst = Load::Burst {
                events: sizes.burst,
            };
            let runs = measure(&api, &server, &pool, burst, repeat, ticks).await?;
            rows.push(fanout_row(
                &format!("{subs} subs, burst of {}", sizes.burst),
                &runs,
                None,
                (i == 1).then_some(500_000.0),
                quick,
            ));
            lost_any |= any_lost(&rows_lost(&runs));
            pool.stop().await;
        }
    }

    if wants("floor") {
        // The size and rate of the 1,000-subscriber steady row, without the server. (Both
        // ends of 10,000 sockets in one process would pass this machine's hard limit of
        // 20,000 open files.)
        {
            let (sockets, rate) = (sizes.fanout[1], sizes.steady_rate);
            eprintln!("kernel floor, {sockets} sockets …");
            let f = floor::measure(sockets, rate, 5, FLOOR_PAYLOAD, ticks).await?;
            rows.push(Row::new(
                format!(
                    "kernel floor: one `write` of a {}-byte frame to each of {} loopback sockets, {rate}/s × 5 s",
                    f.frame_len,
                    thousands(f.sockets as f64)
                ),
                format!(
                    "writer thread **{:.2} ms CPU/1k** writes ({} writes) · a round (every socket written once) p50 {:.2} ms · p99 {:.2} ms",
                    f.cpu_per_1k_ms,
                    thousands(f.writes as f64),
                    f.round_p50_ms,
                    f.round_p99_ms
                ),
            ));
        }
    }

    if wants("large") {
        let n = sizes.large;
        eprintln!("{n} idle connections …");
        let (pool, idle) = scenarios::idle_connections(&server, ORG, &cookie, n).await?;
        let per = idle.per_connection();
        rows.push(
            Row::new(
                format!("{} idle authenticated connections", thousands(n as f64)),
                format!(
                    "RSS {:.1} MiB → {:.1} MiB: **{} per connection** (connected in {:.1} s)",
                    idle.rss_before as f64 / 1048576.0,
                    idle.rss_after as f64 / 1048576.0,
                    kib(per),
                    idle.connect_secs
                ),
            )
            .target("≤ 16 KiB per connection", check(per <= 16.0 * 1024.0)),
        );
        eprintln!("{n} subscribers steady …");
        let steady = Load::Steady {
            rate: sizes.large_rate,
            secs: sizes.large_secs,
        };
        let runs = measure(&api, &server, &pool, steady, repeat, ticks).await?;
        lost_any |= any_lost(&rows_lost(&runs));
        rows.push(fanout_row(
            &format!(
                "{} subs × {}/s × {} s",
                thousands(n as f64),
                sizes.large_rate,
                sizes.large_secs
            ),
            &runs,
            Some(40.0),
            None,
            quick,
        ));
        let burst = Load::Burst {
            events: sizes.large_burst,
        };
        let runs = measure(&api, &server, &pool, burst, repeat, ticks).await?;
        lost_any |= any_lost(&rows_lost(&runs));
        rows.push(fanout_row(
            &format!(
                "{} subs, burst of {}",
                thousands(n as f64),
                sizes.large_burst
            ),
            &runs,
            None,
            None,
            quick,
        ));

        eprintln!("reconnect storm …");
        let storm =
            scenarios::reconnect_storm(&api, &server, &pool, ORG, sizes.storm_missed, ticks)
                .await?;
        lost_any |= storm.lost > 0;
        rows.push(
            Row::new(
                format!("reconnect storm, {} clients", thousands(storm.clients as f64)),
                format!(
                    "all back and {} missed events replayed in **{:.1} s** · peak server CPU {:.0} % of a core · lost {} · resyncs {}",
                    storm.missed_events, storm.recovered_secs, storm.peak_server_cpu * 100.0, storm.lost, storm.resyncs
                ),
            )
            .target("< 35 s, 0 lost", check(storm.recovered_secs < 35.0 && storm.lost == 0)),
        );
        pool.stop().await;
    }

    if wants("sync") {
        let ids = pfa_ids(SYNC_ORG, sizes.sync_records);
        for latency in [0, 5] {
            eprintln!(
                "sync of {} records at {latency} ms PEMS latency …",
                ids.len()
            );
            let run = scenarios::sync_commit(
                &api,
                &server,
                &sim.base(),
                SYNC_ORG,
                &cookie,
                &ids,
                latency,
            )
            .await?;
            let row = Row::new(
                format!(
                    "sync {} records, PEMS {latency} ms",
                    thousands(run.records as f64)
                ),
                format!(
                    "**{:.1} s** ({} records/s, {} events/s, job {})",
                    run.secs,
                    thousands(run.records as f64 / run.secs),
                    thousands(run.events as f64 / run.secs),
                    run.status
                ),
            );
            rows.push(if latency == 0 {
                row.target("< 10 s", check(run.secs < 10.0))
            } else {
                row
            });
        }
    }

    if wants("bundle") {
        match scenarios::bundle(&api, &args.site_root).await? {
            Some(b) => rows.push(
                Row::new(
                    "hydrate bundle",
                    format!(
                        "main wasm (every page; all the records page needs) {} raw · **{} gzip** · \
                         {} brotli; {} lazy module(s) (the other pages, the conflict dialog and \
                         the chunks they share) {} raw · {} gzip; JS {} raw · {} gzip",
                        kib(b.main.raw as f64),
                        kib(b.main.gzip as f64),
                        kib(b.main.brotli as f64),
                        b.chunk_count,
                        kib(b.chunks.raw as f64),
                        kib(b.chunks.gzip as f64),
                        kib(b.js.raw as f64),
                        kib(b.js.gzip as f64)
                    ),
                )
                .target("wasm ≤ 300 KB gzip", check(b.main.gzip <= 300_000)),
            ),
            None => rows.push(Row::new(
                "hydrate bundle",
                format!(
                    "not built ({} has no pkg/*.wasm): run `cargo leptos build --release --split`",
                    args.site_root.display()
                ),
            )),
        }
    }

    let header = format!(
        "### {}{}\n\n{} · {} · {} run(s) per fan-out row, medians shown · server `{} {}`",
        if quick { "Quick run" } else { "Results" },
        if args.label.is_empty() {
            String::new()
        } else {
            format!(" — {}", args.label)
        },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        procs::machine(),
        repeat,
        bin.display(),
        server_args.join(" "),
    );
    let table = report::table(&header, &rows, quick);
    println!("\n{table}");
    if let Some(path) = &args.write {
        report::write_section(path, &table)?;
        eprintln!("written to {}", path.display());
    }
    drop(server);
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(!lost_any)
}

/// Runs one fan-out measurement `repeat` times.
async fn measure(
    api: &api::Api,
    server: &procs::Proc,
    pool: &subscribers::Pool,
    load: Load,
    repeat: usize,
    ticks: u64,
) -> anyhow::Result<Vec<Fanout>> {
    let mut runs = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        runs.push(scenarios::fanout(api, server, pool, ORG, load, ticks).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(runs)
}

fn rows_lost(runs: &[Fanout]) -> Vec<u64> {
    runs.iter().map(|r| r.lost).collect()
}

fn any_lost(lost: &[u64]) -> bool {
    lost.iter().any(|&l| l > 0)
}

/// The ids of the first `count` deterministic demo records of `org`.
fn pfa_ids(org: &str, count: usize) -> Vec<String> {
    pfa_sync::domain::demo_data::demo_records(org, count)
        .into_iter()
        .map(|r| r.pfa_id)
        .collect()
}

/// Creates the database: records of both orgs, the bench admin, its publish token.
async fn prepare_store(database_url: &str, sync_records: usize) -> anyhow::Result<String> {
    use pfa_sync::{
        domain::demo_data::demo_records,
        server::{accounts_cli, store::Store},
    };
    let store = Store::connect(database_url)
        .await
        .context("bench database")?;
    store.seed_records(&demo_records(ORG, 2000)).await?;
    store
        .seed_records(&demo_records(SYNC_ORG, sync_records.max(1)))
        .await?;
    accounts_cli::add_user(
        &store,
        USER,
        PASSWORD,
        &[format!("{ORG}:admin"), format!("{SYNC_ORG}:admin")],
    )
    .await?;
    let token = accounts_cli::create_token(&store, USER, &["publish".to_owned()]).await?;
    Ok(token)
}
