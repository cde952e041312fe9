//! The one cloneable state every handler draws from.

use super::{auth::throttle::LoginThrottle, config::Config, realtime::hub::Hub, store::Store};
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::{sync::Arc, time::Instant};
use tokio_util::sync::CancellationToken;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub config: Arc<Config>,
    pub started: StartedAt,
    pub shutdown: CancellationToken,
    pub pems: PemsEndpoint,
    pub hub: Hub,
    pub login_throttle: LoginThrottle,
    pub engine: super::sync::engine::Engine,
}

/// When the server started, for `uptimeSeconds`.
#[derive(Clone, Copy)]
pub struct StartedAt(pub Instant);

/// Base URL of the PEMS the sync engine writes to (the simulator's when none was configured).
#[derive(Clone, Debug)]
pub struct PemsEndpoint(pub Arc<str>);
