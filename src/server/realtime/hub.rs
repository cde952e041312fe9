//! The per-organization hub: it delivers committed events of the log to the organization's
//! sockets, in seq order, once each. Events reach it from this process's own commits (at once,
//! after the commit) and, with several instances on PostgreSQL, from the log itself when a
//! NOTIFY says that another instance committed some (`listener.rs`). Each organization's
//! sequencer delivers seq `n + 1` after `n` and nothing twice; whatever arrives ahead of a gap
//! waits while the gap is filled from the log, where every committed event is.
//!
//! Fan-out: an organization's subscribers are split over a few shard tasks (one per core).
//! A shard owns its list of sockets (subscribe and unsubscribe are messages in the same
//! channel as the frames, so a new subscriber gets exactly the events delivered after its
//! head) and writes each batch of frames it has received to each socket with one `writev`
//! (`Outbox::deliver`). While a shard is busy writing, the next events queue in its channel
//! and go out together on its next pass: a burst costs one write per socket per pass, not
//! one per event, and no socket's task is woken unless its socket is full.

use super::outbox::{Frame, Outbox, Pushed};
use crate::{
    protocol::events::SyncEvent,
    server::store::{
        events::{Committed, Retention},
        Store,
    },
};
use anyhow::Context;
use std::time::Duration;
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, Weak,
    },
};
use tokio::sync::{mpsc, oneshot};

/// Events delivered between two prunes of an organization's log.
const PRUNE_EVERY: u64 = 256;
/// Events read from the log per query when a gap is filled or an instance catches up.
const FILL_PAGE: u32 = 1000;
/// How long a gap may stay open before it is read from the log (see [`Hub::spawn_fill`]).
const GAP_GRACE: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    retention: Retention,
    /// Publishes waiting for the publisher task (see [`run_publisher`]).
    publishes: mpsc::Sender<PublishOp>,
    outbox_capacity: usize,
    orgs: Mutex<HashMap<String, Arc<OrgChannel>>>,
    connections: Mutex<HashMap<u64, ConnectionEntry>>,
    /// Open sockets per user id, held by [`SocketSlot`]s.
    user_sockets: Mutex<HashMap<i64, usize>>,
    next_id: AtomicU64,
}

/// One of a user's sockets on this instance, counted until dropped.
pub struct SocketSlot {
    hub: Hub,
    user_id: i64,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = self
            .hub
            .inner
            .user_sockets
            .lock()
            .expect("user sockets lock");
        if let Some(count) = counts.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

/// Frames a shard takes from its channel per pass.
const SHARD_BATCH: usize = 256;

struct OrgChannel {
    org: String,
    /// Held across "take what is next in seq order, hand it to the shards", and by a new
    /// subscriber to read the head it starts after: every socket sees the log's order.
    sequencer: Mutex<Sequencer>,
    /// Set once the head has been read from the store (the first subscription waits for it).
    ready: tokio::sync::OnceCell<()>,
    shards: Vec<mpsc::UnboundedSender<ShardMsg>>,
    subscribers: AtomicUsize,
    since_prune: AtomicU64,
    /// Latest delivered seq, readable without the sequencer's lock.
    latest: AtomicU64,
}

/// An organization's delivery order.
#[derive(Default)]
struct Sequencer {
    /// The last seq handed to the shards; None until the head is read.
    delivered: Option<u64>,
    /// Events that came ahead of a gap (or before the head was read), by seq.
    pending: BTreeMap<u64, Frame>,
    /// A task is reading the log for this organization.
    filling: bool,
    /// More may be in the log than the running fill has seen (a NOTIFY, a reconnect).
    wanted: bool,
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
            org: org.to_owned(),
            sequencer: Mutex::default(),
            ready: tokio::sync::OnceCell::new(),
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

    fn frame(event: &Committed) -> Frame {
        Frame::event(
            event.seq,
            event.job_id.as_str().into(),
            event.coalescible,
            event.payload.clone(),
        )
    }

    /// Takes committed events of this organization (in any order, possibly seen before);
    /// delivers what is next in seq order. True when a gap is left for the log to fill.
    fn offer<'a>(&self, events: impl IntoIterator<Item = &'a Committed>) -> bool {
        let mut sequencer = self.sequencer.lock().expect("sequencer lock");
        for event in events {
            if sequencer.delivered.is_none_or(|d| event.seq > d) {
                sequencer
                    .pending
                    .entry(event.seq)
                    .or_insert_with(|| Self::frame(event));
            }
        }
        self.drain(&mut sequencer)
    }

    /// Hands the shards every pending event that follows the delivered one; true when events
    /// wait behind a gap and no fill is running yet (the caller starts one).
    fn drain(&self, sequencer: &mut Sequencer) -> bool {
        let Some(mut delivered) = sequencer.delivered else {
            return false;
        };
        let before = delivered;
        while let Some(frame) = sequencer.pending.remove(&(delivered + 1)) {
            delivered += 1;
            for shard in &self.shards {
                let _ = shard.send(ShardMsg::Frame(frame.clone()));
            }
        }
        sequencer.delivered = Some(delivered);
        self.latest.store(delivered, Ordering::Relaxed);
        self.since_prune
            .fetch_add(delivered - before, Ordering::Relaxed);
        if !sequencer.pending.is_empty() && !sequencer.filling {
            sequencer.filling = true;
            return true;
        }
        false
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
const BURST_GATHER: Duration = Duration::from_millis(3);

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

/// Publishes appended in one statement at most.
const PUBLISH_BATCH: usize = 256;
/// Publishes that may wait for the publisher; more wait to enqueue.
const PUBLISH_QUEUE: usize = 1024;

/// A publish waiting for its seq.
struct PublishOp {
    org: String,
    event: SyncEvent,
    done: oneshot::Sender<anyhow::Result<u64>>,
}

/// Group commit for the publish API: takes every publish that queued while the previous batch
/// was appended and appends them together (on SQLite one statement per organization, which
/// commits by itself; otherwise one transaction), delivers them, and answers each caller with
/// its seq. A burst of publishes costs a few appends instead of one each, and at a steady rate
/// each batch is one publish that waits for nothing. When a batch fails, its publishes are
/// appended one by one, so a publish fails alone. Ends when the hub is gone.
async fn run_publisher(hub: Weak<Inner>, mut queued: mpsc::Receiver<PublishOp>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queued.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let Some(inner) = hub.upgrade() else {
            return;
        };
        let hub = Hub { inner };
        let store = &hub.inner.store;
        let ops = std::mem::take(&mut batch);
        if ops.len() > 1 {
            let events = ops
                .iter()
                .map(|op| (op.org.clone(), op.event.clone()))
                .collect();
            match store.append_events(events).await {
                Ok(committed) => {
                    hub.deliver(&committed);
                    let mut seqs = seqs_by_org(&committed);
                    for op in ops {
                        let seq = seqs
                            .get_mut(op.org.as_str())
                            .and_then(VecDeque::pop_front)
                            .context("an appended publish has no seq");
                        let _ = op.done.send(seq);
                    }
                    continue;
                }
                Err(e) => tracing::warn!(
                    publishes = ops.len(),
                    "appending publishes together failed, appending them one by one: {e:#}"
                ),
            }
        }
        for op in ops {
            let appended = store.append_events(vec![(op.org, op.event)]).await;
            let seq = appended.and_then(|committed| {
                hub.deliver(&committed);
                committed.first().map(|c| c.seq).context("nothing appended")
            });
            let _ = op.done.send(seq);
        }
    }
}

/// The seqs of committed events by organization, in the order of their appends.
fn seqs_by_org(committed: &[Committed]) -> HashMap<&str, VecDeque<u64>> {
    let mut seqs: HashMap<&str, VecDeque<u64>> = HashMap::new();
    for c in committed {
        seqs.entry(c.org.as_str()).or_default().push_back(c.seq);
    }
    seqs
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
    /// The hub of `store`, with its publisher task (which ends with the last handle).
    pub fn new(store: Store, retention: Retention, outbox_capacity: usize) -> Self {
        let (publishes, queued) = mpsc::channel(PUBLISH_QUEUE);
        let inner = Arc::new(Inner {
            store,
            retention,
            publishes,
            outbox_capacity,
            orgs: Mutex::default(),
            connections: Mutex::default(),
            user_sockets: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(run_publisher(Arc::downgrade(&inner), queued));
        Self { inner }
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

    /// The channel of `org`, once its head has been read from the store.
    async fn ready_channel(&self, org: &str) -> anyhow::Result<Arc<OrgChannel>> {
        let channel = self.channel(org);
        channel
            .ready
            .get_or_try_init(|| async {
                let head = self.inner.store.latest_seq(org).await?;
                let fill = {
                    let mut sequencer = channel.sequencer.lock().expect("sequencer lock");
                    sequencer.delivered = Some(head);
                    sequencer.pending = sequencer.pending.split_off(&(head + 1));
                    channel.drain(&mut sequencer)
                };
                if fill {
                    self.spawn_fill(channel.clone(), Duration::ZERO);
                }
                anyhow::Ok(())
            })
            .await?;
        Ok(channel)
    }

    /// Delivers events this process has committed (in commit order) to their organizations'
    /// subscribers. An organization nobody here subscribes to is skipped: a first subscriber
    /// starts from the stored head.
    pub fn deliver(&self, committed: &[Committed]) {
        let mut start = 0;
        while start < committed.len() {
            let org = &committed[start].org;
            let end = committed[start..]
                .iter()
                .position(|c| &c.org != org)
                .map_or(committed.len(), |n| start + n);
            if let Some(channel) = self.channel_if_exists(org) {
                if channel.offer(&committed[start..end]) {
                    self.spawn_fill(channel.clone(), GAP_GRACE);
                }
                self.maybe_prune(&channel);
            }
            start = end;
        }
    }

    /// Another instance committed events of `org` up to `head` (a NOTIFY): read from the log
    /// what this one has not delivered yet.
    pub fn catch_up_to(&self, org: &str, head: u64) {
        if self
            .channel_if_exists(org)
            .is_some_and(|c| c.latest.load(Ordering::Relaxed) < head)
        {
            self.catch_up(Some(org));
        }
    }

    /// Reads from the log what `org` (every organization with `None`, after a lost listener
    /// connection) has committed and this instance has not delivered yet.
    pub fn catch_up(&self, org: Option<&str>) {
        let channels: Vec<Arc<OrgChannel>> = match org {
            Some(org) => self.channel_if_exists(org).into_iter().collect(),
            None => self
                .inner
                .orgs
                .lock()
                .expect("orgs lock")
                .values()
                .cloned()
                .collect(),
        };
        for channel in channels {
            let start = {
                let mut sequencer = channel.sequencer.lock().expect("sequencer lock");
                sequencer.wanted = true;
                !std::mem::replace(&mut sequencer.filling, true)
            };
            if start {
                self.spawn_fill(channel, Duration::ZERO);
            }
        }
    }

    /// Reads the log after the delivered seq until it has nothing more, offering what it reads,
    /// while events wait behind a gap or a catch-up is wanted. It first waits `grace`: a gap
    /// left by this process's own commits (two committers delivering in the other order than
    /// they committed) is closed by the later one at once, and then nothing is read.
    fn spawn_fill(&self, channel: Arc<OrgChannel>, grace: Duration) {
        let hub = self.clone();
        tokio::spawn(async move {
            if !grace.is_zero() {
                tokio::time::sleep(grace).await;
                let mut sequencer = channel.sequencer.lock().expect("sequencer lock");
                if sequencer.pending.is_empty() && !sequencer.wanted {
                    sequencer.filling = false;
                    return;
                }
            }
            tracing::debug!(
                org = channel.org,
                "reading the event log to fill a gap or catch up"
            );
            let mut idle_reads = 0u32;
            loop {
                let after = {
                    let mut sequencer = channel.sequencer.lock().expect("sequencer lock");
                    sequencer.wanted = false;
                    sequencer.delivered
                };
                let Some(after) = after else {
                    // The head is not read yet: the first subscription reads it and drains.
                    channel.sequencer.lock().expect("sequencer lock").filling = false;
                    return;
                };
                let page = match hub
                    .inner
                    .store
                    .committed_after(&channel.org, after, FILL_PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(org = channel.org, "cannot read the event log: {e:#}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if let Some(first) = page.first() {
                    if first.seq > after + 1 {
                        // Pruned before this process delivered them: they cannot be sent.
                        tracing::warn!(
                            org = channel.org,
                            from = after + 1,
                            to = first.seq - 1,
                            "events pruned before delivery; subscribers will resync"
                        );
                        let mut sequencer = channel.sequencer.lock().expect("sequencer lock");
                        sequencer.delivered = Some(first.seq - 1);
                    }
                }
                let full = page.len() == FILL_PAGE as usize;
                channel.offer(&page);
                hub.maybe_prune(&channel);
                if full {
                    continue;
                }
                {
                    let mut sequencer = channel.sequencer.lock().expect("sequencer lock");
                    if sequencer.wanted {
                        continue;
                    }
                    if sequencer.pending.is_empty() {
                        sequencer.filling = false;
                        return;
                    }
                    // What waits behind the gap was committed after the gap's events, so they
                    // are in the log; a read that did not see them raced their commit.
                    idle_reads += 1;
                    if idle_reads > 100 {
                        let next = *sequencer.pending.keys().next().expect("not empty");
                        tracing::error!(
                            org = channel.org,
                            missing = next - 1,
                            "events missing from the log; delivering what follows"
                        );
                        sequencer.delivered = Some(next - 1);
                        channel.drain(&mut sequencer);
                        continue;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    /// Appends `event` to the log of `org` and delivers it: the publish API, where the event
    /// is the whole state change. Publishes that arrive while the previous ones are being
    /// appended are appended together (see [`run_publisher`]). Returns the event as sent.
    #[tracing::instrument(skip(self, event), fields(kind = event.kind.as_str(), job = %event.job_id))]
    pub async fn publish(&self, org: &str, event: SyncEvent) -> anyhow::Result<SyncEvent> {
        let mut sent = event.clone();
        let (done, answer) = oneshot::channel();
        let op = PublishOp {
            org: org.to_owned(),
            event,
            done,
        };
        if self.inner.publishes.send(op).await.is_err() {
            anyhow::bail!("the publisher has stopped");
        }
        let seq = answer
            .await
            .context("the publisher stopped before answering")??;
        sent.seq = Some(seq);
        sent.organization_id = Some(org.to_owned());
        Ok(sent)
    }

    fn maybe_prune(&self, channel: &Arc<OrgChannel>) {
        if channel.since_prune.load(Ordering::Relaxed) >= PRUNE_EVERY {
            channel.since_prune.store(0, Ordering::Relaxed);
            let (hub, org) = (self.clone(), channel.org.clone());
            tokio::spawn(async move { hub.prune(&org).await });
        }
    }

    async fn prune(&self, org: &str) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        match self
            .inner
            .store
            .prune_events(org, self.inner.retention, now_ms)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(org, removed = n, "event log pruned"),
            Err(e) => tracing::warn!(org, "event log prune failed: {e:#}"),
        }
    }

    /// Prunes every organization's log (the periodic age-based sweep).
    pub async fn prune_all(&self) {
        match self.inner.store.orgs_with_events().await {
            Ok(orgs) => {
                for org in orgs {
                    self.prune(&org).await;
                }
            }
            Err(e) => tracing::warn!("event log prune failed: {e:#}"),
        }
    }

    /// Subscribes a connection's `outbox`; events delivered after `head` go to it.
    pub async fn subscribe(
        &self,
        org: &str,
        session: Option<String>,
        outbox: Arc<Outbox>,
    ) -> anyhow::Result<Subscription> {
        let channel = self.ready_channel(org).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let head = {
            let sequencer = channel.sequencer.lock().expect("sequencer lock");
            // Under the sequencer's lock: the shard sees this after every frame up to `head`.
            let _ = channel.shard(id).send(ShardMsg::Add(id, outbox.clone()));
            sequencer.delivered.unwrap_or(0)
        };
        channel.subscribers.fetch_add(1, Ordering::Relaxed);
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
                oldest_seq: oldest.unwrap_or(head + 1),
            },
        })
    }

    /// Counts a socket of `user_id` unless the user has `max` open here already.
    pub fn claim_socket(&self, user_id: i64, max: usize) -> Option<SocketSlot> {
        let mut counts = self.inner.user_sockets.lock().expect("user sockets lock");
        let count = counts.entry(user_id).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            hub: self.clone(),
            user_id,
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

    /// The organization's latest delivered seq as far as this process knows (0 before any).
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
    use crate::{protocol::events::SyncEventType, server::store::testing::for_each_store};

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

    // Publishes sent at once are appended in batches; each caller gets the seq of its own
    // event, and each organization's seqs run without gap.
    for_each_store!(
        concurrent_publishes_each_get_the_seq_of_their_own_event,
        |store| {
            let retention = Retention {
                max_events: 10_000,
                max_age_ms: 3_600_000,
            };
            let hub = Hub::new(store.clone(), retention, 64);
            let mut publishes = tokio::task::JoinSet::new();
            for n in 0..600 {
                let (hub, org) = (hub.clone(), ["org-rio", "org-portarthur"][n % 2]);
                publishes.spawn(async move {
                    let job = format!("job-{n}");
                    let event = SyncEvent::new(SyncEventType::SyncProgress, job.clone());
                    let sent = hub.publish(org, event).await.unwrap();
                    (org, job, sent.seq.unwrap())
                });
            }
            let mut seqs: HashMap<&str, Vec<u64>> = HashMap::new();
            while let Some(done) = publishes.join_next().await {
                let (org, job, seq) = done.unwrap();
                let logged = store
                    .events_between(org, seq - 1, seq, 1, usize::MAX)
                    .await
                    .unwrap();
                assert_eq!(logged.len(), 1, "{org} {seq}");
                assert!(
                    logged[0].payload.contains(&format!("\"jobId\":\"{job}\"")),
                    "{org} seq {seq} is {job}'s: {}",
                    logged[0].payload
                );
                seqs.entry(org).or_default().push(seq);
            }
            for (org, mut seqs) in seqs {
                seqs.sort_unstable();
                assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "{org}");
            }
        }
    );
}
