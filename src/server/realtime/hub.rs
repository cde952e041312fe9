//! The per-organization hub: one publish assigns the next `seq`, appends the event to the
//! persisted log, encodes it once as a WebSocket frame and hands it to the organization's
//! fan-out shards without waiting for any subscriber. The publish/subscribe seam for a
//! multi-instance backend is here.
//!
//! Fan-out: an organization's subscribers are split over a few shard tasks (one per core).
//! A shard owns its list of sockets (subscribe and unsubscribe are messages in the same
//! channel as the frames, so a new subscriber gets exactly the events published after its
//! head) and writes each batch of frames it has received to each socket with one `writev`
//! (`Outbox::deliver`). While a shard is busy writing, the next events queue in its channel
//! and go out together on its next pass: a burst costs one write per socket per pass, not
//! one per event, and no socket's task is woken unless its socket is full.

use super::outbox::{Frame, Outbox, Pushed};
use crate::{
    protocol::events::SyncEvent,
    server::store::{events::Retention, Store},
};
use anyhow::Context;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};
use tokio::sync::mpsc;

/// Publishes between two prunes of an organization's log.
const PRUNE_EVERY: u32 = 256;

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    retention: Retention,
    outbox_capacity: usize,
    orgs: Mutex<HashMap<String, Arc<OrgChannel>>>,
    connections: Mutex<HashMap<u64, ConnectionEntry>>,
    next_id: AtomicU64,
}

/// Frames a shard takes from its channel per pass.
const SHARD_BATCH: usize = 256;

struct OrgChannel {
    /// Held across "assign seq, append, fan out" so every subscriber sees the log's order.
    /// `None` until the head has been read from the store.
    head: tokio::sync::Mutex<Option<u64>>,
    shards: Vec<mpsc::UnboundedSender<ShardMsg>>,
    subscribers: AtomicUsize,
    since_prune: AtomicU64,
    /// Latest published seq, readable without waiting for a publish in progress.
    latest: AtomicU64,
}

enum ShardMsg {
    Frame(Frame),
    Add(u64, Arc<Outbox>),
    Remove(u64),
}

impl OrgChannel {
    fn new(org: &str) -> Self {
        let shards = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .clamp(1, 16);
        Self {
            head: tokio::sync::Mutex::new(None),
            shards: (0..shards)
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(run_shard(org.to_owned(), rx));
                    tx
                })
                .collect(),
            subscribers: AtomicUsize::new(0),
            since_prune: AtomicU64::new(0),
            latest: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: u64) -> &mpsc::UnboundedSender<ShardMsg> {
        &self.shards[(id % self.shards.len() as u64) as usize]
    }
}

/// One shard of an organization's subscribers: writes every frame to every socket it owns,
/// batching what arrived while it was writing. Ends when the organization's channel is gone.
async fn run_shard(org: String, mut rx: mpsc::UnboundedReceiver<ShardMsg>) {
    let mut sockets: Vec<(u64, Arc<Outbox>)> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut messages = Vec::with_capacity(SHARD_BATCH);
    let mut frames: Vec<Frame> = Vec::with_capacity(SHARD_BATCH);
    // Whether the last pass wrote more than one frame: events come faster than passes.
    let mut bursting = false;
    while rx.recv_many(&mut messages, SHARD_BATCH).await > 0 {
        if bursting {
            gather(&mut rx, &mut messages).await;
        }
        let mut written = 0;
        for message in messages.drain(..) {
            match message {
                ShardMsg::Frame(frame) => {
                    written += 1;
                    frames.push(frame)
                }
                // Frames received before a subscription or an unsubscription are written
                // first: a new subscriber's stream starts after its head.
                ShardMsg::Add(id, outbox) => {
                    write_all(&org, &sockets, &mut frames);
                    index.insert(id, sockets.len());
                    sockets.push((id, outbox));
                }
                ShardMsg::Remove(id) => {
                    write_all(&org, &sockets, &mut frames);
                    if let Some(at) = index.remove(&id) {
                        sockets.swap_remove(at);
                        if let Some((moved, _)) = sockets.get(at) {
                            index.insert(*moved, at);
                        }
                    }
                }
            }
        }
        write_all(&org, &sockets, &mut frames);
        bursting = written > 1;
    }
}

/// During a burst, how long a shard waits for more frames before a pass, so that each socket
/// gets one write for several events instead of one per event (a write costs about the same
/// whatever it carries). Only while events come faster than passes: at a steady rate every
/// pass carries one frame and nothing waits.
const BURST_GATHER: std::time::Duration = std::time::Duration::from_millis(3);

/// Adds to `messages` what arrives within [`BURST_GATHER`] (up to a full batch).
async fn gather(rx: &mut mpsc::UnboundedReceiver<ShardMsg>, messages: &mut Vec<ShardMsg>) {
    let deadline = tokio::time::sleep(BURST_GATHER);
    tokio::pin!(deadline);
    while messages.len() < SHARD_BATCH {
        let room = SHARD_BATCH - messages.len();
        tokio::select! {
            biased;
            got = rx.recv_many(messages, room) => if got == 0 { return },
            _ = &mut deadline => return,
        }
    }
}

fn write_all(org: &str, sockets: &[(u64, Arc<Outbox>)], frames: &mut Vec<Frame>) {
    if frames.is_empty() {
        return;
    }
    for (id, outbox) in sockets {
        if outbox.deliver(frames) == Pushed::Overflowed {
            tracing::warn!(
                connection = id,
                org,
                "subscriber too slow; closing with 4008"
            );
        }
    }
    frames.clear();
}

struct ConnectionEntry {
    session: Option<String>,
    outbox: Arc<Outbox>,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    pub id: u64,
    /// The organization's latest seq when the subscription started: the live stream continues
    /// after it, a replay covers what comes up to it.
    pub head: u64,
    pub outbox: Arc<Outbox>,
    org: String,
    hub: Hub,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(channel) = self.hub.channel_if_exists(&self.org) {
            let _ = channel.shard(self.id).send(ShardMsg::Remove(self.id));
            channel.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        self.hub
            .inner
            .connections
            .lock()
            .expect("connections lock")
            .remove(&self.id);
    }
}

/// What a reconnecting client with `since` gets.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplayPlan {
    /// Nothing missed.
    UpToDate,
    /// Events `since < seq <= head` are all in the log.
    Replay,
    /// Part of the gap is no longer kept (or `since` is from another log).
    ResyncRequired { oldest_seq: u64 },
}

impl Hub {
    pub fn new(store: Store, retention: Retention, outbox_capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                retention,
                outbox_capacity,
                orgs: Mutex::default(),
                connections: Mutex::default(),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    fn channel(&self, org: &str) -> Arc<OrgChannel> {
        let mut orgs = self.inner.orgs.lock().expect("orgs lock");
        orgs.entry(org.to_owned())
            .or_insert_with(|| Arc::new(OrgChannel::new(org)))
            .clone()
    }

    fn channel_if_exists(&self, org: &str) -> Option<Arc<OrgChannel>> {
        self.inner.orgs.lock().expect("orgs lock").get(org).cloned()
    }

    async fn load_head(&self, org: &str, slot: &mut Option<u64>) -> anyhow::Result<u64> {
        if let Some(head) = *slot {
            return Ok(head);
        }
        let head = self.inner.store.latest_seq(org).await?;
        *slot = Some(head);
        if let Some(channel) = self.channel_if_exists(org) {
            channel.latest.fetch_max(head, Ordering::Relaxed);
        }
        Ok(head)
    }

    /// Publishes `event` to `org`: assigns `seq` and `organizationId`, logs it, fans it out.
    /// Returns the event as sent.
    #[tracing::instrument(skip(self, event), fields(kind = event.kind.as_str(), job = %event.job_id))]
    pub async fn publish(&self, org: &str, mut event: SyncEvent) -> anyhow::Result<SyncEvent> {
        let channel = self.channel(org);
        let mut head_slot = channel.head.lock().await;
        let head = self.load_head(org, &mut head_slot).await?;
        let seq = head + 1;
        event.seq = Some(seq);
        event.organization_id = Some(org.to_owned());
        let text = serde_json::to_string(&event).context("serialize event")?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.inner
            .store
            .append_event(org, seq, event.kind.as_str(), &event.job_id, &text, now_ms)
            .await
            .context("append to the event log")?;
        *head_slot = Some(seq);
        channel.latest.store(seq, Ordering::Relaxed);

        let frame = Frame::event(
            seq,
            event.job_id.as_str().into(),
            event.kind.is_coalescible(),
            text,
        );
        for shard in &channel.shards {
            let _ = shard.send(ShardMsg::Frame(frame.clone()));
        }
        drop(head_slot);

        if channel.since_prune.fetch_add(1, Ordering::Relaxed) + 1 >= u64::from(PRUNE_EVERY) {
            channel.since_prune.store(0, Ordering::Relaxed);
            let (hub, org) = (self.clone(), org.to_owned());
            tokio::spawn(async move { hub.prune(&org, seq).await });
        }
        Ok(event)
    }

    async fn prune(&self, org: &str, head: u64) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        match self
            .inner
            .store
            .prune_events(org, head, self.inner.retention, now_ms)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(org, removed = n, "event log pruned"),
            Err(e) => tracing::warn!(org, "event log prune failed: {e:#}"),
        }
    }

    /// Prunes every organization seen since start (the periodic age-based sweep).
    pub async fn prune_all(&self) {
        let orgs: Vec<(String, Arc<OrgChannel>)> = self
            .inner
            .orgs
            .lock()
            .expect("orgs lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (org, channel) in orgs {
            let head = *channel.head.lock().await;
            if let Some(head) = head {
                self.prune(&org, head).await;
            }
        }
    }

    /// Subscribes a connection's `outbox`; events published after `head` go to it.
    pub async fn subscribe(
        &self,
        org: &str,
        session: Option<String>,
        outbox: Arc<Outbox>,
    ) -> anyhow::Result<Subscription> {
        let channel = self.channel(org);
        let mut head_slot = channel.head.lock().await;
        let head = self.load_head(org, &mut head_slot).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // Under the publish lock: the shard sees this after every frame up to `head`.
        let _ = channel.shard(id).send(ShardMsg::Add(id, outbox.clone()));
        channel.subscribers.fetch_add(1, Ordering::Relaxed);
        drop(head_slot);
        self.inner
            .connections
            .lock()
            .expect("connections lock")
            .insert(
                id,
                ConnectionEntry {
                    session,
                    outbox: outbox.clone(),
                },
            );
        Ok(Subscription {
            id,
            head,
            outbox,
            org: org.to_owned(),
            hub: self.clone(),
        })
    }

    /// Decides how to serve a client that last saw `since` when the org's head is `head`.
    pub async fn replay_plan(
        &self,
        org: &str,
        since: u64,
        head: u64,
    ) -> anyhow::Result<ReplayPlan> {
        if since == head {
            return Ok(ReplayPlan::UpToDate);
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let oldest = self
            .inner
            .store
            .oldest_retained_seq(org, head, self.inner.retention, now_ms)
            .await?;
        Ok(match oldest {
            Some(oldest) if since < head && since + 1 >= oldest => ReplayPlan::Replay,
            oldest => ReplayPlan::ResyncRequired {
                oldest_seq: oldest.unwrap_or(0),
            },
        })
    }

    /// A connection's outbox over `writer`, with the configured capacity.
    pub fn new_outbox(&self, writer: super::outbox::Writer) -> Outbox {
        Outbox::new(writer, self.inner.outbox_capacity)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Closes every socket of a signed-out session with 4401; returns how many.
    pub fn disconnect_session(&self, id_hash: &str) -> usize {
        let connections = self.inner.connections.lock().expect("connections lock");
        let mut closed = 0;
        for entry in connections
            .values()
            .filter(|c| c.session.as_deref() == Some(id_hash))
        {
            entry
                .outbox
                .close(crate::protocol::close_codes::UNAUTHENTICATED, "signed out");
            closed += 1;
        }
        closed
    }

    /// The organization's latest published seq as far as this process knows (0 before any).
    pub fn latest_seq(&self, org: &str) -> u64 {
        self.channel_if_exists(org)
            .map(|c| c.latest.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Live subscribers of an organization.
    pub fn subscriber_count(&self, org: &str) -> usize {
        self.channel_if_exists(org)
            .map(|c| c.subscribers.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Live subscribers of every organization.
    pub fn connection_count(&self) -> usize {
        self.inner
            .connections
            .lock()
            .expect("connections lock")
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(
        count: u64,
    ) -> (
        mpsc::UnboundedSender<ShardMsg>,
        mpsc::UnboundedReceiver<ShardMsg>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        for id in 0..count {
            tx.send(ShardMsg::Remove(id)).unwrap();
        }
        (tx, rx)
    }

    #[tokio::test]
    async fn a_burst_pass_takes_what_is_queued_up_to_a_full_batch_in_order() {
        let (_tx, mut rx) = queued(SHARD_BATCH as u64 + 44);
        let mut messages = Vec::new();
        gather(&mut rx, &mut messages).await;
        let ids: Vec<u64> = messages
            .iter()
            .map(|m| match m {
                ShardMsg::Remove(id) => *id,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ids, (0..SHARD_BATCH as u64).collect::<Vec<_>>());
        assert_eq!(rx.len(), 44, "the rest waits for the next pass");
    }

    #[tokio::test]
    async fn a_burst_pass_waits_the_gather_window_for_more_frames_then_goes() {
        let (_tx, mut rx) = queued(3);
        let mut messages = Vec::new();
        let started = std::time::Instant::now();
        gather(&mut rx, &mut messages).await;
        assert_eq!(messages.len(), 3);
        assert!(started.elapsed() >= BURST_GATHER);
    }

    #[tokio::test]
    async fn a_burst_pass_ends_when_the_channel_is_gone() {
        let (tx, mut rx) = queued(2);
        drop(tx);
        let mut messages = Vec::new();
        gather(&mut rx, &mut messages).await;
        assert_eq!(messages.len(), 2);
    }
}
