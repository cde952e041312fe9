//! `pfa-loadgen`: starts the release server and the PEMS simulator on loopback, drives them
//! like real clients (session-cookie WebSockets, bearer-token API calls) and prints one table
//! of figures against the targets of docs/benchmarks.md. The `cluster` group also starts a
//! throwaway PostgreSQL and two instances on it; `--baseline-bin` runs the fan-out rows against
//! another build too. `--quick` runs small sizes to prove the harness works; any lost event
//! fails the run in both modes.

mod api;
mod floor;
mod histogram;
mod procs;
mod report;
mod scenarios;
mod subscribers;

use anyhow::Context;
use clap::Parser;
use pfa_sync::server::store::throwaway::ThrowawayPostgres;
use report::{fanout_row, fanout_summary, kib, median, ms, thousands, Row};
use scenarios::{DraftSave, Fanout, Load, SyncRun, WatchedSync};
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

const ORG: &str = "org-rio";
const SYNC_ORG: &str = "org-portarthur";
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";
/// Sync engine limits of the bench server: the defaults (4 requests in flight, 50 a second per
/// organization) protect a real PEMS and would make a 10,000-record sync last 200 s.
const SYNC_FLAGS: [&str; 2] = ["--sync-concurrency=16", "--pems-rate=20000"];
/// Flags for this build's servers only (a baseline binary may not know them): every
/// subscriber signs in as the one bench user, which the per-user socket limit would refuse.
const OWN_FLAGS: [&str; 1] = ["--ws-max-sockets-per-user=100000"];
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
    /// Only these groups: drafts, fanout, floor, large, sync, burst, cluster, bundle
    /// (repeatable; default all).
    #[arg(long)]
    only: Vec<String>,
    /// Another `pfa-sync` binary (e.g. an older commit's: `make bench BASELINE=<ref>`): the
    /// fanout group's rows are also measured against it, with its own SQLite database and
    /// simulator, and printed beside this build's. Only its `serve`, `pems-sim`, `user add` and
    /// `token create` subcommands are used.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// The baseline's name in the table (e.g. its commit).
    #[arg(long, default_value = "baseline")]
    baseline_label: String,
    /// Extra `pfa-sync serve` flags, e.g. `--server-arg=--ws-outbox-capacity=512`.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Keep the bench folder (the servers' and simulators' logs, the SQLite databases).
    #[arg(long)]
    keep: bool,
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
    /// Subscribers watching the sync of the `burst` group, one measurement each; the first is
    /// the unwatched sync the others are compared with.
    burst_watchers: [usize; 3],
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
    burst_watchers: [0, 100, 1_000],
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
    burst_watchers: [0, 10, 20],
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

/// The SQLite single-instance figures the `cluster` rows are printed beside: taken from the
/// groups that measure them, or measured by the `cluster` group when those did not run.
#[derive(Default)]
struct SingleInstance {
    drafts: Option<Drafts>,
    /// The steady rows at the cluster's size (`Sizes::fanout[1]` subscribers).
    steady: Option<Vec<Fanout>>,
    /// The sync at 0 ms PEMS latency.
    sync: Option<SyncRun>,
}

/// A server the fan-out rows are measured against: this build's, or the baseline's.
struct Target<'a> {
    /// None for this build.
    label: Option<&'a str>,
    server: &'a procs::Proc,
    api: &'a api::Api,
    cookie: &'a str,
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
    let sim = procs::start_simulator(&bin, &dir, "pems-sim").await?;
    let baseline_args: Vec<String> = SYNC_FLAGS
        .iter()
        .map(|f| f.to_string())
        .chain(args.server_args.iter().cloned())
        .collect();
    let server_args: Vec<String> = OWN_FLAGS
        .iter()
        .map(|f| f.to_string())
        .chain(baseline_args.iter().cloned())
        .collect();
    let server = procs::start_server(
        &bin,
        &dir,
        "server",
        &database_url,
        &sim.base(),
        &args.site_root,
        &server_args,
    )
    .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let api = api::Api::new(client.clone(), server.base(), token);
    let cookie = api.login(USER, PASSWORD).await?;
    let mut rows = Vec::new();
    let mut lost_any = false;
    let quick = args.quick;
    let check = |met: bool| met || quick;
    let mut single = SingleInstance::default();

    if wants("drafts") {
        eprintln!("draft save …");
        let drafts = measure_drafts(&api, sizes).await?;
        rows.extend(draft_rows(&drafts, None, quick));
        single.drafts = Some(drafts);
    }

    if wants("fanout") {
        let baseline = match &args.baseline_bin {
            Some(bin) => Some(
                Baseline::start(bin, &dir, &args.site_root, &baseline_args, client.clone())
                    .await
                    .with_context(|| format!("baseline {}", bin.display()))?,
            ),
            None => None,
        };
        let mut targets = vec![Target {
            label: None,
            server: &server,
            api: &api,
            cookie: &cookie,
        }];
        if let Some(b) = &baseline {
            targets.push(Target {
                label: Some(&args.baseline_label),
                server: &b.server,
                api: &b.api,
                cookie: &b.cookie,
            });
        }
        for (i, &subs) in sizes.fanout.iter().enumerate() {
            // Steady and burst of each target, one after the other; the rows of a kind side by
            // side.
            let (mut steady_rows, mut burst_rows) = (Vec::new(), Vec::new());
            for target in &targets {
                let name = |row: String| match target.label {
                    None => row,
                    Some(label) => format!("{row} — baseline `{label}`"),
                };
                eprintln!(
                    "{subs} subscribers{} …",
                    target
                        .label
                        .map(|l| format!(" (baseline {l})"))
                        .unwrap_or_default()
                );
                let pool =
                    subscribers::Pool::connect(target.server.addr, ORG, target.cookie, subs, 256)
                        .await?;
                let steady = Load::Steady {
                    rate: sizes.steady_rate,
                    secs: sizes.steady_secs,
                };
                let runs =
                    measure(target.api, &[target.server], &pool, steady, repeat, ticks).await?;
                lost_any |= any_lost(&rows_lost(&runs));
                let steady_name = name(format!(
                    "{subs} subs × {}/s × {} s",
                    sizes.steady_rate, sizes.steady_secs
                ));
                steady_rows.push(match target.label {
                    // The targets are set at 1,000 subscribers.
                    None => fanout_row(&steady_name, &runs, (i == 1).then_some(4.0), None, quick),
                    Some(_) => Row::new(steady_name, fanout_summary(&runs, "server").text),
                });
                if target.label.is_none() && i == 1 {
                    single.steady = Some(runs);
                }
                let burst = Load::Burst {
                    events: sizes.burst,
                };
                let runs =
                    measure(target.api, &[target.server], &pool, burst, repeat, ticks).await?;
                lost_any |= any_lost(&rows_lost(&runs));
                let burst_name = name(format!("{subs} subs, burst of {}", sizes.burst));
                burst_rows.push(match target.label {
                    None => fanout_row(
                        &burst_name,
                        &runs,
                        None,
                        (i == 1).then_some(500_000.0),
                        quick,
                    ),
                    Some(_) => Row::new(burst_name, fanout_summary(&runs, "server").text),
                });
                pool.stop().await;
            }
            rows.extend(steady_rows);
            rows.extend(burst_rows);
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
        let runs = measure(&api, &[&server], &pool, steady, repeat, ticks).await?;
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
        let runs = measure(&api, &[&server], &pool, burst, repeat, ticks).await?;
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
                sync_text(&run),
            );
            if latency == 0 {
                rows.push(row.target("< 10 s", check(run.secs < 10.0)));
                single.sync = Some(run);
            } else {
                rows.push(row);
            }
        }
    }

    if wants("burst") {
        let ids = pfa_ids(SYNC_ORG, sizes.sync_records);
        let watchers = sizes.burst_watchers;
        let mut runs: [Vec<WatchedSync>; 3] = Default::default();
        // Rounds of the three, so that a slower spell of the machine hits each of them.
        for _ in 0..repeat {
            for (k, &n) in watchers.iter().enumerate() {
                eprintln!("sync of {} records watched by {n} subscribers …", ids.len());
                let pool = match n {
                    0 => None,
                    n => Some(
                        subscribers::Pool::connect(server.addr, SYNC_ORG, &cookie, n, 256).await?,
                    ),
                };
                let watched = scenarios::watched_sync(
                    &api,
                    &server,
                    &sim.base(),
                    SYNC_ORG,
                    &cookie,
                    &ids,
                    0,
                    pool.as_ref(),
                    ticks,
                )
                .await?;
                lost_any |= watched.lost > 0;
                if let Some(pool) = pool {
                    pool.stop().await;
                }
                runs[k].push(watched);
            }
        }
        let unwatched = median(runs[0].iter().map(|w| w.secs));
        for (k, runs) in runs.iter().enumerate() {
            rows.push(burst_row(runs, unwatched, k == watchers.len() - 1, quick));
        }
    }

    if wants("cluster") {
        let (cluster_rows, lost) = cluster(
            &args,
            sizes,
            repeat,
            ticks,
            &bin,
            &dir,
            &server_args,
            &client,
            &api,
            &server,
            &sim,
            &cookie,
            &mut single,
            &mut rows,
        )
        .await?;
        rows.extend(cluster_rows);
        lost_any |= lost;
    }

    if wants("bundle") {
        match scenarios::bundle(&api, &args.site_root).await? {
            Some(b) => rows.push(
                Row::new(
                    "hydrate bundle",
                    format!(
                        "main wasm (every page; all the records page needs) {} raw · {} gzip · \
                         **{} brotli**; {} lazy module(s) (the other pages, the conflict dialog and \
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
                .target("main wasm ≤ 300 KB brotli", check(b.main.brotli <= 300_000)),
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
        "### {}{}\n\n{} · {} · {} run(s) per fan-out row, medians shown · server `{} {}`{}",
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
        match &args.baseline_bin {
            Some(b) if wants("fanout") =>
                format!(" · baseline `{}` `{}`", args.baseline_label, b.display()),
            _ => String::new(),
        },
    );
    let table = report::table(&header, &rows, quick);
    println!("\n{table}");
    if let Some(path) = &args.write {
        report::write_section(path, &table)?;
        eprintln!("written to {}", path.display());
    }
    drop(server);
    drop(sim);
    if args.keep {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(!lost_any)
}

/// The `cluster` group: a throwaway PostgreSQL, a database prepared like the SQLite one, one
/// PEMS simulator and two instances on it; draft saves, fan-out published on B and received on
/// A, and the sync, each beside the single-instance SQLite figure (measured here when its own
/// group did not run; such rows go to `single_rows`). Returns the rows and whether events were
/// lost.
#[allow(clippy::too_many_arguments)]
async fn cluster(
    args: &Args,
    sizes: &Sizes,
    repeat: usize,
    ticks: u64,
    bin: &Path,
    dir: &Path,
    server_args: &[String],
    client: &reqwest::Client,
    sqlite_api: &api::Api,
    sqlite_server: &procs::Proc,
    sqlite_sim: &procs::Proc,
    sqlite_cookie: &str,
    single: &mut SingleInstance,
    single_rows: &mut Vec<Row>,
) -> anyhow::Result<(Vec<Row>, bool)> {
    let quick = args.quick;
    let check = |met: bool| met || quick;
    let mut rows = Vec::new();
    let mut lost_any = false;
    let ids = pfa_ids(SYNC_ORG, sizes.sync_records);

    // The single-instance figures the cluster rows are compared with.
    if single.drafts.is_none() {
        eprintln!("draft save on SQLite, for the comparison …");
        let drafts = measure_drafts(sqlite_api, sizes).await?;
        single_rows.extend(draft_rows(&drafts, None, quick));
        single.drafts = Some(drafts);
    }
    let subs = sizes.fanout[1];
    let steady = Load::Steady {
        rate: sizes.steady_rate,
        secs: sizes.steady_secs,
    };
    let steady_name = format!(
        "{subs} subs × {}/s × {} s",
        sizes.steady_rate, sizes.steady_secs
    );
    if single.steady.is_none() {
        eprintln!("{subs} subscribers on SQLite, for the comparison …");
        let pool =
            subscribers::Pool::connect(sqlite_server.addr, ORG, sqlite_cookie, subs, 256).await?;
        let runs = measure(sqlite_api, &[sqlite_server], &pool, steady, repeat, ticks).await?;
        pool.stop().await;
        lost_any |= any_lost(&rows_lost(&runs));
        single_rows.push(fanout_row(&steady_name, &runs, Some(4.0), None, quick));
        single.steady = Some(runs);
    }
    if single.sync.is_none() {
        eprintln!(
            "sync of {} records on SQLite, for the comparison …",
            ids.len()
        );
        let run = scenarios::sync_commit(
            sqlite_api,
            sqlite_server,
            &sqlite_sim.base(),
            SYNC_ORG,
            sqlite_cookie,
            &ids,
            0,
        )
        .await?;
        single_rows.push(
            Row::new(
                format!("sync {} records, PEMS 0 ms", thousands(run.records as f64)),
                sync_text(&run),
            )
            .target("< 10 s", check(run.secs < 10.0)),
        );
        single.sync = Some(run);
    }

    eprintln!("two instances on a throwaway PostgreSQL …");
    let postgres = tokio::task::spawn_blocking(ThrowawayPostgres::start)
        .await?
        .context("throwaway PostgreSQL (the cluster group needs Debian's postgresql package)")?;
    let database_url = postgres.create_database("pfa_bench").await?;
    let token = prepare_store(&database_url, sizes.sync_records).await?;
    // A simulator of their own: PEMS keys records by organization and id, and the SQLite
    // server's syncs have moved the same records on in its simulator.
    let sim = procs::start_simulator(bin, dir, "pems-sim-cluster").await?;
    let mut instances = Vec::new();
    for name in ["server-a", "server-b"] {
        instances.push(
            procs::start_server(
                bin,
                dir,
                name,
                &database_url,
                &sim.base(),
                &args.site_root,
                server_args,
            )
            .await?,
        );
    }
    let (a, b) = (&instances[0], &instances[1]);
    let api_a = api::Api::new(client.clone(), a.base(), token.clone());
    let api_b = api::Api::new(client.clone(), b.base(), token);
    let cookie = api_a.login(USER, PASSWORD).await?;

    eprintln!("draft save on PostgreSQL …");
    let drafts = measure_drafts(&api_a, sizes).await?;
    rows.extend(draft_rows(&drafts, single.drafts.as_ref(), quick));

    let pool = subscribers::Pool::connect(a.addr, ORG, &cookie, subs, 256).await?;
    let alone = fanout_summary(single.steady.as_deref().unwrap_or_default(), "server");
    // The same load published on A itself: what PostgreSQL costs without crossing instances.
    eprintln!("{subs} subscribers on instance A, published on instance A …");
    let runs = measure(&api_a, &[a, b], &pool, steady, repeat, ticks).await?;
    lost_any |= any_lost(&rows_lost(&runs));
    let same = fanout_summary(&runs, "servers A + B");
    rows.push(Row::new(
        format!("{steady_name}, published and received on instance A (PostgreSQL)"),
        format!(
            "{} · single-instance (SQLite, above) p99 {}: ratio {:.2}",
            same.text,
            ms(alone.p99_us),
            same.p99_us as f64 / alone.p99_us.max(1) as f64
        ),
    ));
    eprintln!("{subs} subscribers on instance A, published on instance B …");
    let runs = measure(&api_b, &[a, b], &pool, steady, repeat, ticks).await?;
    pool.stop().await;
    lost_any |= any_lost(&rows_lost(&runs));
    let cross = fanout_summary(&runs, "servers A + B");
    let ratio = cross.p99_us as f64 / alone.p99_us.max(1) as f64;
    rows.push(
        Row::new(
            format!("{steady_name}, published on instance B, received on instance A (PostgreSQL)"),
            format!(
                "{} · single-instance (SQLite, above) p99 {}: **ratio {ratio:.2}**",
                cross.text,
                ms(alone.p99_us)
            ),
        )
        .target(
            "p99 ≤ 2× single-instance, 0 lost",
            check(ratio <= 2.0 && cross.lost == 0),
        ),
    );

    eprintln!("sync of {} records on PostgreSQL …", ids.len());
    let run = scenarios::sync_commit(&api_a, a, &sim.base(), SYNC_ORG, &cookie, &ids, 0).await?;
    let sqlite_secs = single.sync.as_ref().map_or(0.0, |s| s.secs);
    let ratio = run.secs / sqlite_secs.max(1e-6);
    rows.push(
        Row::new(
            format!(
                "sync {} records, PEMS 0 ms, PostgreSQL (2 instances, committed on A)",
                thousands(run.records as f64)
            ),
            format!(
                "{} · SQLite (above) {:.1} s: **ratio {ratio:.2}**",
                sync_text(&run),
                sqlite_secs
            ),
        )
        .target("≤ 1.5× SQLite", check(ratio <= 1.5)),
    );

    drop(instances);
    drop(sim);
    tokio::task::spawn_blocking(move || drop(postgres)).await?;
    Ok((rows, lost_any))
}

/// The result text of a sync row.
fn sync_text(run: &SyncRun) -> String {
    format!(
        "**{:.1} s** ({} records/s, {} events/s, job {}; the commit answered after {:.2} s)",
        run.secs,
        thousands(run.records as f64 / run.secs),
        thousands(run.events as f64 / run.secs),
        run.status,
        run.commit_secs
    )
}

/// One row of the `burst` group: medians over the runs watched by the same number of
/// subscribers; `last` carries the targets (the largest number of watchers).
fn burst_row(runs: &[WatchedSync], unwatched_secs: f64, last: bool, quick: bool) -> Row {
    let first = &runs[0];
    let secs = median(runs.iter().map(|w| w.secs));
    let lag = median(runs.iter().map(|w| w.last_lag_secs));
    let lag_max = runs.iter().map(|w| w.last_lag_secs).fold(0.0, f64::max);
    let lost: u64 = runs.iter().map(|w| w.lost).sum();
    let slow: u64 = runs.iter().map(|w| w.too_slow).sum();
    let resyncs: u64 = runs.iter().map(|w| w.resyncs).sum();
    let gaps: u64 = runs.iter().map(|w| w.gaps).sum();
    let statuses: Vec<&str> = runs
        .iter()
        .map(|w| w.run.status.as_str())
        .filter(|s| *s != "completed")
        .collect();
    let ratio = secs / unwatched_secs.max(1e-6);
    let spread = if runs.len() > 1 {
        let lo = runs.iter().map(|w| w.secs).fold(f64::MAX, f64::min);
        let hi = runs.iter().map(|w| w.secs).fold(0.0, f64::max);
        format!(" (runs {lo:.1}–{hi:.1} s)")
    } else {
        String::new()
    };
    let name = format!(
        "sync {} records, PEMS 0 ms, watched by {} subscribers",
        thousands(first.run.records as f64),
        thousands(first.watchers as f64)
    );
    let mut result = format!("**{secs:.1} s**{spread}");
    // CPU from the drafts' save to the last terminal event: what the watchers cost, and what
    // of the 2 cores the load generator's reading took.
    let cpu = format!(
        " · CPU server {:.1} s, loadgen {:.1} s",
        median(runs.iter().map(|w| w.server_cpu_secs)),
        median(runs.iter().map(|w| w.loadgen_cpu_secs))
    );
    if first.watchers == 0 {
        result.push_str(" (the measuring socket only)");
        result.push_str(&cpu);
    } else {
        result.push_str(&format!(
            " · **{ratio:.2}×** unwatched · last subscriber had the terminal event **{lag:.2} s** \
             after the job's end (max {lag_max:.2} s) · lost {lost}"
        ));
        if slow > 0 {
            result.push_str(&format!(" · {slow} closed 4008 and replayed"));
        }
        if resyncs > 0 {
            result.push_str(&format!(" · {resyncs} RESYNC_REQUIRED"));
        }
        if gaps > 0 {
            result.push_str(&format!(" · {gaps} coalesced progress seqs skipped"));
        }
        result.push_str(&cpu);
    }
    if !statuses.is_empty() {
        result.push_str(&format!(" · job {}", statuses.join(", ")));
    }
    let row = Row::new(name, result);
    if first.watchers == 0 {
        row
    } else if last {
        row.target(
            "≤ 1.5× unwatched, last terminal event ≤ 1 s after the end, 0 lost",
            (ratio <= 1.5 && lag_max <= 1.0 && lost == 0) || (quick && lost == 0),
        )
    } else {
        row.target("0 lost", lost == 0)
    }
}

struct Drafts {
    one: DraftSave,
    many: DraftSave,
}

async fn measure_drafts(api: &api::Api, sizes: &Sizes) -> anyhow::Result<Drafts> {
    let ids = pfa_ids(ORG, 2000);
    Ok(Drafts {
        one: scenarios::draft_save(api, ORG, &ids, 1, sizes.single_saves).await?,
        many: scenarios::draft_save(api, ORG, &ids, sizes.batch, sizes.batch_saves).await?,
    })
}

/// The two draft-save rows; `beside` (SQLite's) makes them the PostgreSQL rows.
fn draft_rows(drafts: &Drafts, beside: Option<&Drafts>, quick: bool) -> [Row; 2] {
    let store = if beside.is_some() {
        ", PostgreSQL (instance A of 2)"
    } else {
        ""
    };
    let sqlite = |d: Option<&DraftSave>, digits: usize| {
        d.map(|d| {
            format!(
                " · SQLite (above) p50 {:.digits$} ms · p99 {:.digits$} ms",
                d.p50_ms, d.p99_ms
            )
        })
        .unwrap_or_default()
    };
    let (one, many) = (&drafts.one, &drafts.many);
    [
        Row::new(
            format!("draft save, 1 record{store}"),
            format!(
                "p50 {:.2} ms · p99 {:.2} ms ({} saves){}",
                one.p50_ms,
                one.p99_ms,
                one.saves,
                sqlite(beside.map(|b| &b.one), 2)
            ),
        )
        .target("p99 < 5 ms", one.p99_ms < 5.0 || quick),
        Row::new(
            format!("draft save, {} records{store}", many.records),
            format!(
                "p50 {:.1} ms · p99 {:.1} ms ({} saves){}",
                many.p50_ms,
                many.p99_ms,
                many.saves,
                sqlite(beside.map(|b| &b.many), 1)
            ),
        )
        .target("p99 < 100 ms", many.p99_ms < 100.0 || quick),
    ]
}

/// Another build's server (`--baseline-bin`) with its own SQLite database and simulator. The
/// database is prepared through that binary's own commands: its schema may differ from this
/// build's, and the fan-out rows need no records, only the bench user and its token.
struct Baseline {
    server: procs::Proc,
    _sim: procs::Proc,
    api: api::Api,
    cookie: String,
}

impl Baseline {
    async fn start(
        bin: &Path,
        dir: &Path,
        site_root: &Path,
        server_args: &[String],
        client: reqwest::Client,
    ) -> anyhow::Result<Self> {
        let database_url = format!("sqlite://{}", dir.join("baseline.db").display());
        let member = format!("{ORG}:admin");
        procs::run_command(
            bin,
            &[
                "user",
                "add",
                USER,
                "--password",
                PASSWORD,
                "--member",
                &member,
                "--database-url",
                &database_url,
            ],
        )
        .await?;
        let token = procs::run_command(
            bin,
            &[
                "token",
                "create",
                "--user",
                USER,
                "--scope",
                "publish",
                "--database-url",
                &database_url,
            ],
        )
        .await?
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
        let sim = procs::start_simulator(bin, dir, "baseline-pems-sim").await?;
        let server = procs::start_server(
            bin,
            dir,
            "baseline-server",
            &database_url,
            &sim.base(),
            site_root,
            server_args,
        )
        .await?;
        let api = api::Api::new(client, server.base(), token);
        let cookie = api.login(USER, PASSWORD).await?;
        Ok(Self {
            server,
            _sim: sim,
            api,
            cookie,
        })
    }
}

/// Runs one fan-out measurement `repeat` times: published through `api`, received by `pool`,
/// server CPU summed over `servers`.
async fn measure(
    api: &api::Api,
    servers: &[&procs::Proc],
    pool: &subscribers::Pool,
    load: Load,
    repeat: usize,
    ticks: u64,
) -> anyhow::Result<Vec<Fanout>> {
    let mut runs = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        runs.push(scenarios::fanout(api, servers, pool, ORG, load, ticks).await?);
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
    let token = accounts_cli::create_token(&store, USER, &["publish".to_owned()], None).await?;
    Ok(token)
}
