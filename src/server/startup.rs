//! Builds the application (store, PEMS, router, listener) and runs it until shutdown.

use super::{
    accept,
    auth::{
        self,
        throttle::{LoginThrottle, Quotas},
    },
    config::{Config, Mode},
    http,
    realtime::{self, hub::Hub},
    shutdown,
    state::{AppState, PemsEndpoint, StartedAt},
    store::{events::Retention, ServingLock, Store},
    sync::{
        engine::Engine,
        pems::{client::PemsClient, simulator},
    },
};
use crate::app::{shell, shell_with_mode, App};
use anyhow::Context;
use axum::{extract::DefaultBodyLimit, Router};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::{net::SocketAddr, sync::Arc, time::Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{compression::CompressionLayer, limit::RequestBodyLimitLayer, trace::TraceLayer};

/// A built, bound, not yet running server. Tests build one on port 0 and read its address.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// The SQLite file's serving lock, held until the server stops.
    _serving: Option<ServingLock>,
}

impl Application {
    /// Opens the store (running migrations), starts the PEMS simulator when no PEMS URL is
    /// configured, and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.check()?;
        let shutdown = CancellationToken::new();
        let store = Store::connect(&config.database_url).await?;
        let serving = store.lock_for_serving()?;
        if config.mode == Mode::Dev {
            auth::demo::ensure_demo_users(&store)
                .await
                .context("cannot create the demo users")?;
            if config.demo_data {
                seed_demo_records(&store)
                    .await
                    .context("cannot load the demo records")?;
            }
        }

        let pems_url = match &config.pems_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let sim =
                    simulator::spawn(([127, 0, 0, 1], 0).into(), shutdown.child_token()).await?;
                tracing::info!("built-in PEMS simulator listening on {}", sim.base_url);
                sim.base_url
            }
        };

        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let addr = listener.local_addr()?;

        let leptos_options = LeptosOptions::builder()
            .output_name("pfa-sync")
            .site_root(config.site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();

        let retention = Retention {
            max_events: config.event_log_max_events,
            max_age_ms: config.event_log_max_age.as_millis() as i64,
        };
        let hub = Hub::new(store.clone(), retention, config.ws_outbox_capacity);
        let login_throttle = LoginThrottle::new(
            store.clone(),
            Quotas {
                per_user_addr: config.login_per_user_addr_per_min,
                per_user: config.login_per_user_per_min,
                per_addr: config.login_per_addr_per_min,
            },
        );
        spawn_housekeeping(hub.clone(), login_throttle.clone(), shutdown.clone());
        let pems_client = PemsClient::new(&pems_url, config.pems_timeout)?;
        let engine = Engine::new(
            store.clone(),
            hub.clone(),
            pems_client,
            config.sync.clone(),
            shutdown.clone(),
        );
        realtime::listener::spawn(&store, hub.clone(), engine.clone(), shutdown.clone());
        engine.recover().await.context("cannot resume sync jobs")?;

        let state = AppState {
            leptos_options,
            store,
            config: Arc::new(config),
            started: StartedAt(Instant::now()),
            shutdown,
            pems: PemsEndpoint(pems_url.into()),
            hub,
            login_throttle,
            engine,
        };
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
            _serving: serving,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token shuts the server down as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until SIGINT/SIGTERM or the shutdown token, then lets in-flight requests finish
    /// within the configured grace period.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            _serving,
        } = self;
        let token = state.shutdown.clone();
        tracing::info!("pfa-sync listening on http://{}", listener.local_addr()?);
        tokio::spawn(shutdown::cancel_on_signal(token.clone()));

        let limits = accept::Limits {
            max_connections: state.config.max_connections,
            header_timeout: state.config.header_timeout,
        };
        let mut server = tokio::spawn(accept::serve(listener, router, limits, token.clone()));
        let outcome = tokio::select! {
            finished = &mut server => finished,
            _ = token.cancelled() => {
                match tokio::time::timeout(state.config.shutdown_grace, &mut server).await {
                    Ok(finished) => finished,
                    Err(_) => {
                        tracing::warn!("grace period over; dropping the remaining connections");
                        server.abort();
                        Ok(Ok(()))
                    }
                }
            }
        };
        // The runners finish the PEMS requests they have sent, record them and release their
        // jobs, which another instance then takes over at once; only then does the store close.
        if !state.engine.stopped(state.config.shutdown_grace).await {
            tracing::warn!("sync jobs still running at the end of the grace period");
        }
        state.store.close().await;
        tracing::info!("pfa-sync stopped");
        outcome
            .context("server task panicked")?
            .context("server failed")
    }
}

/// Every route with its middleware: request tracing, compression (gzip, brotli), body limit.
fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let body_limit = state.config.body_limit;
    let api = Router::new()
        .merge(auth::routes::routes())
        .merge(http::api_routes())
        .merge(realtime::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::csrf::guard,
        ));
    Router::new()
        .merge(http::routes())
        .merge(api)
        .leptos_routes(&state, routes, {
            let options = state.leptos_options.clone();
            let dev = state.config.mode == Mode::Dev;
            move || shell_with_mode(options.clone(), dev)
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// How long a sync command's answer is kept for repeats (a day).
const COMMAND_ANSWERS_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Periodic upkeep: age-based pruning of the event log and of command answers, forgetting
/// idle throttle keys and old sessions.
fn spawn_housekeeping(hub: Hub, throttle: LoginThrottle, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = every.tick() => {
                    hub.prune_all().await;
                    if let Err(e) = hub.store().prune_commands(COMMAND_ANSWERS_KEPT_MS).await {
                        tracing::warn!("cannot prune command answers: {e:#}");
                    }
                    if let Err(e) = throttle.shrink().await {
                        tracing::warn!("cannot prune login throttling: {e:#}");
                    }
                    // Sessions that expired or were revoked over a day ago are deleted.
                    let day_ago = chrono::Utc::now() - chrono::Duration::days(1);
                    if let Err(e) = hub.store().purge_sessions(day_ago).await {
                        tracing::warn!("cannot purge old sessions: {e:#}");
                    }
                }
            }
        }
    });
}

/// Loads the deterministic demo records of each organization that has none yet.
async fn seed_demo_records(store: &Store) -> anyhow::Result<()> {
    for org in ["org-rio", "org-portarthur"] {
        if store.record_count(org).await? == 0 {
            let records = crate::domain::demo_data::demo_records(
                org,
                crate::domain::demo_data::demo_count(org),
            );
            let inserted = store.seed_records(&records).await?;
            tracing::info!(org, inserted, "demo records loaded");
        }
    }
    Ok(())
}
