//! Fan-out across instances. On PostgreSQL every event append NOTIFYs (delivered at commit, in
//! commit order); each instance LISTENs and, for an organization it has subscribers of, reads
//! from the log what it has not delivered yet (`Hub::catch_up`), so its sockets get the other
//! instances' events in seq order, gaps filled from the log. The listener's connection is
//! replaced when it is lost (a restart of PostgreSQL, `pg_terminate_backend`), and every
//! organization then catches up from the log: notifications sent meanwhile are lost, events
//! never. The same connection hears job status changes (`JOBS_CHANNEL`): a command applied on
//! one instance wakes the job's runner on the instance that runs it; and sign-outs
//! (`SESSIONS_CHANNEL`): every instance closes the session's sockets with 4401.

use super::hub::Hub;
use crate::server::{
    store::{
        accounts::SESSIONS_CHANNEL,
        events::{parse_notification, NOTIFY_CHANNEL},
        sync::JOBS_CHANNEL,
        Store,
    },
    sync::engine::Engine,
};
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest wait between two attempts to connect the listener.
const RECONNECT_CAP: Duration = Duration::from_secs(5);

/// Starts the listener when the store is PostgreSQL (SQLite has one instance: nothing to hear).
pub fn spawn(store: &Store, hub: Hub, engine: Engine, shutdown: CancellationToken) {
    let Some(pool) = store.postgres_pool().cloned() else {
        return;
    };
    let me = store.instance().to_owned();
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(100);
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener
                    .listen_all([NOTIFY_CHANNEL, JOBS_CHANNEL, SESSIONS_CHANNEL])
                    .await?;
                anyhow::Ok(listener)
            };
            let mut listener = tokio::select! {
                _ = shutdown.cancelled() => return,
                listening = listening => match listening {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::warn!("cannot LISTEN for events of other instances: {e:#}; retrying in {wait:?}");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                        wait = (wait * 2).min(RECONNECT_CAP);
                        continue;
                    }
                },
            };
            tracing::debug!("listening for events of other instances");
            // Whatever was committed while nobody listened is in the log.
            hub.catch_up(None);
            wait = Duration::from_millis(100);
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    received = listener.try_recv() => received,
                };
                match received {
                    Ok(Some(notification)) if notification.channel() == JOBS_CHANNEL => {
                        engine.wake(notification.payload());
                    }
                    Ok(Some(notification)) if notification.channel() == SESSIONS_CHANNEL => {
                        hub.disconnect_session(notification.payload());
                    }
                    Ok(Some(notification)) => match parse_notification(notification.payload()) {
                        Some((_, _, instance)) if instance == me => {}
                        Some((org, head, _)) => hub.catch_up_to(org, head),
                        None => tracing::warn!(
                            payload = notification.payload(),
                            "unexpected notification"
                        ),
                    },
                    Ok(None) => {
                        tracing::warn!("the LISTEN connection was lost; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("the LISTEN connection failed: {e:#}; reconnecting");
                        break;
                    }
                }
            }
        }
    });
}
