//! One subscribed WebSocket: CONNECTED, the replay, then live events, heartbeats and commands.
//! A send task (this function) and a receive task; when one ends, the other is stopped.

use super::{
    commands::CommandDesk,
    hub::{Hub, ReplayPlan},
    outbox::Frame,
};
use crate::{
    domain::role::Role,
    protocol::{
        close_codes,
        frames::{ClientCommand, ControlFrame},
    },
};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{stream::SplitSink, SinkExt, StreamExt};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events read from the log per replay query.
const REPLAY_PAGE: u32 = 500;
/// Queued events written with one flush: a burst costs one socket write per batch, not per
/// event (about 10 KiB of frames).
const MAX_BATCH: usize = 32;

pub struct Params {
    pub hub: Hub,
    pub commands: CommandDesk,
    pub engine: crate::server::sync::engine::Engine,
    pub org: String,
    pub username: String,
    pub role: Role,
    pub session: Option<String>,
    pub since: Option<u64>,
    pub heartbeat: Duration,
    pub shutdown: CancellationToken,
}

/// What the receive task asks the send task to do.
enum Outgoing {
    Frame(ControlFrame),
    Close(u16, &'static str),
}

type Sink = SplitSink<WebSocket, Message>;

struct Sender {
    sink: Sink,
    /// A write that takes longer than this means the peer is gone.
    write_timeout: Duration,
}

impl Sender {
    async fn send(&mut self, message: Message) -> Result<(), ()> {
        match tokio::time::timeout(self.write_timeout, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Writes `frames` with a single flush, all within the write timeout.
    async fn send_batch(&mut self, frames: impl Iterator<Item = Frame>) -> Result<(), ()> {
        let sink = &mut self.sink;
        let write = async move {
            for frame in frames {
                sink.feed(Message::Text(frame.text)).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn control(&mut self, frame: &ControlFrame) -> Result<(), ()> {
        let text = serde_json::to_string(frame).expect("control frames serialize");
        self.send(Message::Text(text.into())).await
    }

    async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = self.send(Message::Close(Some(frame))).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.sink.close()).await;
    }
}

/// Closes a socket that may not subscribe (4401 / 4403) before any event.
pub async fn refuse(socket: WebSocket, code: u16, reason: &'static str) {
    let (sink, _stream) = socket.split();
    Sender {
        sink,
        write_timeout: Duration::from_secs(5),
    }
    .close(code, reason)
    .await;
}

pub async fn serve(socket: WebSocket, p: Params) {
    let (sink, mut stream) = socket.split();
    let mut out = Sender {
        sink,
        write_timeout: p.heartbeat * 2,
    };

    let subscription = match p.hub.subscribe(&p.org, p.session.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(org = p.org, "subscribe failed: {e:#}");
            out.close(1011, "internal error").await;
            return;
        }
    };
    tracing::debug!(
        connection = subscription.id,
        org = p.org,
        user = p.username,
        "socket subscribed"
    );

    let connected = ControlFrame::Connected {
        organization_id: p.org.clone(),
        seq: subscription.head,
        heartbeat_interval_secs: p.heartbeat.as_secs().max(1),
        replaying_since: p.since.filter(|s| *s != subscription.head),
        user: p.username.clone(),
        role: p.role.as_str().to_owned(),
    };
    if out.control(&connected).await.is_err() {
        return;
    }
    if let Some(since) = p.since {
        if replay(&mut out, &p, since, subscription.head)
            .await
            .is_err()
        {
            return;
        }
    }

    // Milliseconds since `start` of the last inbound message (any kind, pongs included).
    let start = Instant::now();
    let last_seen = Arc::new(AtomicU64::new(0));
    let (to_sender, mut from_receiver) = mpsc::channel::<Outgoing>(32);
    let receiver = tokio::spawn({
        let (last_seen, commands, engine, org, role, username) = (
            last_seen.clone(),
            p.commands.clone(),
            p.engine.clone(),
            p.org.clone(),
            p.role,
            p.username.clone(),
        );
        async move {
            while let Some(message) = stream.next().await {
                last_seen.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                let reply = match message {
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
                            commands
                                .handle(&engine, &org, role, &username, command)
                                .await,
                        ),
                        Err(error) => Outgoing::Frame(error.to_frame()),
                    },
                    Ok(Message::Binary(_)) => Outgoing::Frame(ControlFrame::Error {
                        code: "UNSUPPORTED_MESSAGE".into(),
                        message: "binary messages are not supported; send JSON text".into(),
                    }),
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
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
                if to_sender.send(reply).await.is_err() || closing {
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
    let mut batch = Vec::new();
    // Created once: every socket waits on the same token, and a new waiter per loop turn
    // showed in the profile (registering on the token's shared list).
    let shutdown = p.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                out.close(close_codes::GOING_AWAY, "server shutting down").await;
                break;
            }
            outgoing = from_receiver.recv() => match outgoing {
                Some(Outgoing::Frame(frame)) => {
                    if out.control(&frame).await.is_err() { break; }
                }
                Some(Outgoing::Close(code, reason)) => {
                    out.close(code, reason).await;
                    break;
                }
                None => break,
            },
            close = subscription.outbox.next_batch(&mut batch, MAX_BATCH) => match close {
                None => {
                    if out.send_batch(batch.drain(..)).await.is_err() { break; }
                }
                Some((code, reason)) => {
                    out.close(code, reason).await;
                    break;
                }
            },
            _ = ticker.tick() => {
                let seen = last_seen.load(Ordering::Relaxed);
                if let Some(pinged) = last_ping {
                    if seen < pinged {
                        tracing::info!(connection = subscription.id, "peer stopped answering; dropping it");
                        break;
                    }
                }
                let heartbeat = ControlFrame::Heartbeat { timestamp: chrono::Utc::now(), seq: p.hub.latest_seq(&p.org) };
                last_ping = Some(start.elapsed().as_millis() as u64);
                if out.control(&heartbeat).await.is_err()
                    || out.send(Message::Ping(Default::default())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    receiver.abort();
    tracing::debug!(connection = subscription.id, "socket closed");
}

/// Sends what the client missed since `since`, up to `head`, or RESYNC_REQUIRED.
async fn replay(out: &mut Sender, p: &Params, since: u64, head: u64) -> Result<(), ()> {
    let plan = p.hub.replay_plan(&p.org, since, head).await.map_err(|e| {
        tracing::error!("replay plan failed: {e:#}");
    })?;
    match plan {
        ReplayPlan::UpToDate => Ok(()),
        ReplayPlan::ResyncRequired { oldest_seq } => {
            out.control(&ControlFrame::ResyncRequired {
                since,
                oldest_seq,
                seq: head,
                message: format!(
                    "events after {since} are no longer all kept (oldest kept: {oldest_seq}); refetch, then continue from {head}"
                ),
            })
            .await
        }
        ReplayPlan::Replay => {
            let mut after = since;
            while after < head {
                let page = p
                    .hub
                    .store()
                    .events_between(&p.org, after, head, REPLAY_PAGE)
                    .await
                    .map_err(|e| tracing::error!("replay read failed: {e:#}"))?;
                // Pruned between the plan and this read: the gap can no longer be filled.
                if page.first().map(|e| e.seq) != Some(after + 1) {
                    return out
                        .control(&ControlFrame::ResyncRequired {
                            since: after,
                            oldest_seq: page.first().map(|e| e.seq).unwrap_or(0),
                            seq: head,
                            message: format!("events after {after} were pruned during the replay; refetch, then continue from {head}"),
                        })
                        .await;
                }
                let Some(last) = page.last() else { break };
                after = last.seq;
                for event in page {
                    out.send(Message::Text(event.payload.into())).await?;
                }
            }
            Ok(())
        }
    }
}
