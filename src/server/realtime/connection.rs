//! One subscribed WebSocket: CONNECTED, the replay, then live events, heartbeats and commands.
//!
//! Live events are written by the hub's fan-out shards straight into the socket's outbox
//! (outbox.rs). This task writes what they could not finish, the control frames, and the
//! close; a second task reads and decodes what the client sends (tungstenite), and when one
//! ends, the other is stopped.

use super::{
    commands,
    hub::{Hub, ReplayPlan, SocketSlot},
    outbox::{ControlWriter, Frame, Outbox},
    upgrade::Io,
};
use crate::{
    domain::role::Role,
    protocol::{
        close_codes,
        frames::{ClientCommand, ControlFrame},
    },
    server::{
        accept::ConnectionPlace,
        store::accounts::{Credential, Standing},
    },
};
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::{
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::sync::mpsc;
use tokio_tungstenite::{
    tungstenite::{
        protocol::{Role as WsRole, WebSocketConfig},
        Message,
    },
    WebSocketStream,
};
use tokio_util::sync::CancellationToken;

/// Events read from the log per replay query, and the payload bytes a page stops at: one page
/// is in memory at a time (a published event has at most 16 KiB).
const REPLAY_PAGE: u32 = 500;
const REPLAY_PAGE_BYTES: usize = 256 * 1024;
/// Initial read buffer of a socket. Clients send only small commands, and tungstenite grows
/// the buffer for a larger message; its 128 KiB default, allocated per socket up front, was
/// most of a connection's memory (docs/benchmarks.md).
const READ_BUFFER: usize = 4 * 1024;
/// How long a closing socket waits for its close frame to go out and for the client's reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

pub struct Params {
    pub hub: Hub,
    pub engine: crate::server::sync::engine::Engine,
    pub org: String,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub session: Option<String>,
    /// Checked again at every heartbeat: a revoked or expired credential, a removed user or
    /// a removed membership closes the socket (4401 / 4403).
    pub credential: Credential,
    pub since: Option<u64>,
    pub heartbeat: Duration,
    pub shutdown: CancellationToken,
    /// Counts this socket against its user's limit while it is open.
    pub slot: SocketSlot,
    /// Keeps the connection's place among the server's `--max-connections`.
    pub place: Option<ConnectionPlace>,
}

/// What the receive task asks the send task to do.
enum Outgoing {
    Frame(ControlFrame),
    Close(u16, &'static str),
}

fn control(frame: &ControlFrame) -> Frame {
    Frame::text(serde_json::to_string(frame).expect("control frames serialize"))
}

/// The frame reader's settings: inbound messages are limited at 64 KiB by the connection
/// (close 1009); the transport limit above it only protects memory from absurd frames.
fn reader_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(4 * close_codes::MAX_INBOUND_MESSAGE))
        .max_frame_size(Some(4 * close_codes::MAX_INBOUND_MESSAGE))
}

/// The pings and pongs a client may send: [`close_codes::CONTROL_FRAMES_PER_SEC`] a second
/// on average, [`close_codes::CONTROL_FRAMES_BURST`] at once. Each one costs the server a
/// read and, for a ping, a pong; a client over the budget is closed with 1008.
fn control_budget() -> DefaultDirectRateLimiter {
    let per_sec = NonZeroU32::new(close_codes::CONTROL_FRAMES_PER_SEC).expect("not zero");
    let burst = NonZeroU32::new(close_codes::CONTROL_FRAMES_BURST).expect("not zero");
    RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst))
}

/// Closes a socket that may not subscribe (4401 / 4403) before any event.
pub async fn refuse(io: Io, code: u16, reason: &'static str) {
    let (mut read, write) = tokio::io::split(io);
    let outbox = Outbox::new(Box::pin(write), 2);
    outbox.finish(code, reason, Duration::from_secs(5)).await;
    // Give the client time to read the close frame and answer before the socket is dropped
    // (dropping it with unread input would reset the connection).
    let mut sink = tokio::io::sink();
    let _ = tokio::time::timeout(CLOSE_WAIT, tokio::io::copy(&mut read, &mut sink)).await;
}

pub async fn serve(io: Io, p: Params) {
    let (read, write) = tokio::io::split(io);
    let outbox = Arc::new(p.hub.new_outbox(Box::pin(write)));
    let write_timeout = p.heartbeat * 2;

    let subscription = match p
        .hub
        .subscribe(&p.org, p.session.clone(), outbox.clone())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(org = p.org, "subscribe failed: {e:#}");
            outbox.finish(1011, "internal error", CLOSE_WAIT).await;
            return;
        }
    };
    tracing::debug!(
        connection = subscription.id,
        org = p.org,
        user = p.username,
        "socket subscribed"
    );

    outbox.send_control(control(&ControlFrame::Connected {
        organization_id: p.org.clone(),
        seq: subscription.head,
        heartbeat_interval_secs: p.heartbeat.as_secs().max(1),
        replaying_since: p.since.filter(|s| *s != subscription.head),
        user: p.username.clone(),
        role: p.role.as_str().to_owned(),
    }));
    if outbox.flush(write_timeout).await.is_err() {
        return;
    }
    if let Some(since) = p.since {
        if replay(&outbox, &p, since, subscription.head, write_timeout)
            .await
            .is_err()
        {
            return;
        }
    }
    outbox.set_live();

    // Milliseconds since `start` of the last inbound message (any kind, pongs included).
    let start = Instant::now();
    let last_seen = Arc::new(AtomicU64::new(0));
    let (to_sender, mut from_receiver) = mpsc::channel::<Outgoing>(32);
    // Pongs and close replies that tungstenite writes go through the outbox's control queue.
    let mut stream = WebSocketStream::from_raw_socket(
        tokio::io::join(read, ControlWriter(outbox.clone())),
        WsRole::Server,
        Some(reader_config()),
    )
    .await;
    let mut receiver = tokio::spawn({
        let (last_seen, engine, org, user_id, username) = (
            last_seen.clone(),
            p.engine.clone(),
            p.org.clone(),
            p.user_id,
            p.username.clone(),
        );
        async move {
            let control_budget = control_budget();
            while let Some(message) = stream.next().await {
                last_seen.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                let reply = match message {
                    Ok(Message::Ping(_) | Message::Pong(_)) if control_budget.check().is_err() => {
                        Outgoing::Close(close_codes::POLICY_VIOLATION, "too many control frames")
                    }
                    Ok(Message::Text(text)) if text.len() > close_codes::MAX_INBOUND_MESSAGE => {
                        Outgoing::Close(close_codes::MESSAGE_TOO_BIG, "message over 64 KiB")
                    }
                    Ok(Message::Binary(bytes))
                        if bytes.len() > close_codes::MAX_INBOUND_MESSAGE =>
                    {
                        Outgoing::Close(close_codes::MESSAGE_TOO_BIG, "message over 64 KiB")
                    }
                    Ok(Message::Text(text)) => match ClientCommand::parse(&text) {
                        Ok(command) => Outgoing::Frame(
                            commands::handle(&engine, &org, (user_id, &username), command).await,
                        ),
                        Err(error) => Outgoing::Frame(error.to_frame()),
                    },
                    Ok(Message::Binary(_)) => Outgoing::Frame(ControlFrame::Error {
                        code: "UNSUPPORTED_MESSAGE".into(),
                        message: "binary messages are not supported; send JSON text".into(),
                    }),
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                    Ok(Message::Close(_)) => break,
                    Err(e) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") {
                            Outgoing::Close(close_codes::MESSAGE_TOO_BIG, "message over 64 KiB")
                        } else {
                            tracing::debug!("socket read error: {text}");
                            break;
                        }
                    }
                };
                let closing = matches!(reply, Outgoing::Close(..));
                if to_sender.send(reply).await.is_err() {
                    break;
                }
                if closing {
                    // Read on (and discard) until the client answers the close: a socket
                    // closed with input still unread is reset, and a reset can take the
                    // close frame with it before the client reads it.
                    let _ = tokio::time::timeout(CLOSE_WAIT, async {
                        while let Some(Ok(message)) = stream.next().await {
                            if message.is_close() {
                                break;
                            }
                        }
                    })
                    .await;
                    break;
                }
            }
        }
    });

    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + p.heartbeat, p.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Time (ms since start) of the previous ping: the peer must have spoken since then.
    let mut last_ping: Option<u64> = None;
    // Created once: every socket waits on the same token, and a new waiter per loop turn
    // showed in the profile (registering on the token's shared list).
    let shutdown = p.shutdown.cancelled();
    tokio::pin!(shutdown);
    let mut peer_closed = false;
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => outbox.close(close_codes::GOING_AWAY, "server shutting down"),
            outgoing = from_receiver.recv() => match outgoing {
                Some(Outgoing::Frame(frame)) => outbox.send_control(control(&frame)),
                Some(Outgoing::Close(code, reason)) => outbox.close(code, reason),
                None => peer_closed = true,
            },
            _ = outbox.notified() => {}
            _ = ticker.tick() => {
                let seen = last_seen.load(Ordering::Relaxed);
                if let Some(pinged) = last_ping {
                    if seen < pinged {
                        tracing::info!(connection = subscription.id, "peer stopped answering; dropping it");
                        break;
                    }
                }
                match p.hub.store().standing(&p.credential, p.user_id, &p.org).await {
                    Ok(Standing::Member(_)) => {}
                    Ok(Standing::SignedOut) => outbox.close(
                        close_codes::UNAUTHENTICATED,
                        "signed out: the session or token was revoked or expired",
                    ),
                    Ok(Standing::NotMember) => outbox.close(
                        close_codes::FORBIDDEN,
                        "no longer a member of this organization",
                    ),
                    // The socket stays; the next heartbeat checks again.
                    Err(e) => tracing::warn!("cannot check the socket's credential: {e:#}"),
                }
                last_ping = Some(start.elapsed().as_millis() as u64);
                outbox.send_control(control(&ControlFrame::Heartbeat {
                    timestamp: chrono::Utc::now(),
                    seq: p.hub.latest_seq(&p.org),
                }));
                outbox.send_control(Frame::ping());
            }
        }
        if let Some((code, reason)) = outbox.closing() {
            outbox.finish(code, reason, CLOSE_WAIT).await;
            // The client answers the close; its reader ends on that (or on the timeout).
            let _ = tokio::time::timeout(CLOSE_WAIT, &mut receiver).await;
            break;
        }
        // After the client's close only its reply (queued by the reader) is still written.
        let flushed = outbox
            .flush(if peer_closed {
                CLOSE_WAIT
            } else {
                write_timeout
            })
            .await;
        if flushed.is_err() || peer_closed {
            break;
        }
    }
    receiver.abort();
    tracing::debug!(connection = subscription.id, "socket closed");
}

/// Sends what the client missed since `since`, up to `head`, or RESYNC_REQUIRED.
async fn replay(
    outbox: &Outbox,
    p: &Params,
    since: u64,
    head: u64,
    timeout: Duration,
) -> Result<(), ()> {
    let plan = p.hub.replay_plan(&p.org, since, head).await.map_err(|e| {
        tracing::error!("replay plan failed: {e:#}");
    })?;
    let resync = |since: u64, oldest_seq: u64, message: String| {
        control(&ControlFrame::ResyncRequired {
            since,
            oldest_seq,
            seq: head,
            message,
        })
    };
    match plan {
        ReplayPlan::UpToDate => Ok(()),
        ReplayPlan::ResyncRequired { oldest_seq } => {
            outbox.send_control(resync(since, oldest_seq, format!(
                "events after {since} are no longer all kept (oldest kept: {oldest_seq}); refetch, then continue from {head}"
            )));
            outbox.flush(timeout).await.map_err(drop)
        }
        ReplayPlan::Replay => {
            let mut after = since;
            while after < head {
                let page = p
                    .hub
                    .store()
                    .events_between(&p.org, after, head, REPLAY_PAGE, REPLAY_PAGE_BYTES)
                    .await
                    .map_err(|e| tracing::error!("replay read failed: {e:#}"))?;
                // Pruned between the plan and this read: the gap can no longer be filled.
                if page.first().map(|e| e.seq) != Some(after + 1) {
                    let oldest = page.first().map(|e| e.seq).unwrap_or(0);
                    outbox.send_control(resync(after, oldest, format!(
                        "events after {after} were pruned during the replay; refetch, then continue from {head}"
                    )));
                    return outbox.flush(timeout).await.map_err(drop);
                }
                let Some(last) = page.last() else { break };
                after = last.seq;
                for event in page {
                    outbox.send_control(Frame::text(event.payload));
                }
                // One page in memory at a time.
                outbox.flush(timeout).await.map_err(drop)?;
            }
            Ok(())
        }
    }
}
