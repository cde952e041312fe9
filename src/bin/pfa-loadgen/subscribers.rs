//! A pool of WebSocket subscribers of one organization, authenticated with a session cookie
//! like a browser. Each checks that seqs arrive in order without gaps, records the
//! publish-to-receive latency of bench events (the publisher puts its clock in `data.t`), and
//! follows the pool's commands: stay live, cut the link, reconnect with `since`, stop.
//!
//! Frames are read with tokio-tungstenite (which fills its read buffer in bulk) and looked at
//! without a JSON parse: only `seq` and `t` are needed. While a sync job is watched
//! ([`Pool::watch_jobs`]), each subscriber also counts the record-level `SYNC_SUCCESS` events it
//! got and notes when the job-level terminal event arrived.

use crate::histogram::Histogram;
use futures::StreamExt;
use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpSocket, sync::watch, task::JoinHandle};
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, protocol::WebSocketConfig, Message,
};

/// Source addresses the clients connect from, so 10,000+ sockets (and their TIME_WAITs) never
/// run short of ephemeral ports.
const SOURCE_IPS: u8 = 16;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds on this process's clock: what the publisher writes and the receiver reads.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    Live,
    /// Drop the connection (no close frame) and wait.
    Cut,
    /// Reconnect with `since` after a random delay below `jitter_ms` (the browser's full jitter).
    Reconnect {
        jitter_ms: u64,
    },
    Stop,
}

#[derive(Default)]
pub struct Slot {
    pub last_seq: AtomicU64,
    pub received: AtomicU64,
    /// Record-level `SYNC_SUCCESS` events received while jobs are watched.
    pub job_records: AtomicU64,
    /// When (`now_us`) a job-level terminal event arrived while jobs are watched; 0 = not yet.
    pub job_end_us: AtomicU64,
}

pub struct Shared {
    server: SocketAddr,
    org: String,
    cookie: String,
    pub hist: Histogram,
    pub record_latency: AtomicBool,
    /// Count sync events per slot (`Slot::job_records`, `Slot::job_end_us`).
    pub watch_jobs: AtomicBool,
    pub slots: Vec<Slot>,
    pub connected: AtomicUsize,
    /// Events missing between two received seqs.
    pub gaps: AtomicU64,
    pub duplicates: AtomicU64,
    /// Closed with 4008 (too slow) and reconnected with `since`.
    pub too_slow: AtomicU64,
    pub resyncs: AtomicU64,
    /// Connections that failed or ended unexpectedly (retried).
    pub failures: AtomicU64,
    pub last_delivery_us: AtomicU64,
    handshakes: tokio::sync::Semaphore,
}

pub struct Pool {
    pub shared: Arc<Shared>,
    ctl: watch::Sender<Ctl>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Opens `n` subscribers (at most `parallel` handshakes at once) and waits until all are
    /// connected.
    pub async fn connect(
        server: SocketAddr,
        org: &str,
        cookie: &str,
        n: usize,
        parallel: usize,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            server,
            org: org.to_owned(),
            cookie: cookie.to_owned(),
            hist: Histogram::new(),
            record_latency: AtomicBool::new(false),
            watch_jobs: AtomicBool::new(false),
            slots: (0..n).map(|_| Slot::default()).collect(),
            connected: AtomicUsize::new(0),
            gaps: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            too_slow: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            handshakes: tokio::sync::Semaphore::new(parallel.max(1)),
        });
        let (ctl, rx) = watch::channel(Ctl::Live);
        let tasks = (0..n)
            .map(|i| tokio::spawn(subscriber(i, shared.clone(), rx.clone())))
            .collect();
        let pool = Self { shared, ctl, tasks };
        pool.wait_connected(n, Duration::from_secs(120)).await?;
        Ok(pool)
    }

    pub fn len(&self) -> usize {
        self.shared.slots.len()
    }

    pub async fn wait_connected(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while self.shared.connected.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                anyhow::bail!(
                    "only {} of {n} subscribers connected within {within:?}",
                    self.shared.connected.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Waits until every subscriber has seen `seq`; false on timeout.
    pub async fn wait_all_at(&self, seq: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let behind = self
                .shared
                .slots
                .iter()
                .filter(|s| s.last_seq.load(Ordering::Relaxed) < seq)
                .count();
            if behind == 0 {
                return true;
            }
            if Instant::now() > deadline {
                eprintln!("  {behind} subscribers never reached seq {seq}");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Zeroes the counters of a new measurement.
    pub fn reset(&self, record_latency: bool) {
        let s = &self.shared;
        s.hist.reset();
        for slot in &s.slots {
            slot.received.store(0, Ordering::Relaxed);
            slot.job_records.store(0, Ordering::Relaxed);
            slot.job_end_us.store(0, Ordering::Relaxed);
        }
        for c in [&s.gaps, &s.duplicates, &s.too_slow, &s.resyncs, &s.failures] {
            c.store(0, Ordering::Relaxed);
        }
        s.last_delivery_us.store(0, Ordering::Relaxed);
        s.record_latency.store(record_latency, Ordering::Relaxed);
        s.watch_jobs.store(false, Ordering::Relaxed);
    }

    /// Zeroes the counters and counts sync events from now on: the record-level
    /// `SYNC_SUCCESS` events each subscriber gets and when its job-level terminal event comes.
    /// Every sync event of the organization counts, so only one job may run meanwhile.
    pub fn watch_jobs(&self) {
        self.reset(false);
        self.shared.watch_jobs.store(true, Ordering::Relaxed);
    }

    /// Waits until every subscriber has had a job-level terminal event; false on timeout.
    pub async fn wait_all_ended(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let waiting = self
                .shared
                .slots
                .iter()
                .filter(|s| s.job_end_us.load(Ordering::Relaxed) == 0)
                .count();
            if waiting == 0 {
                return true;
            }
            if Instant::now() > deadline {
                eprintln!("  {waiting} subscribers never got the job's terminal event");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn received(&self) -> u64 {
        self.shared
            .slots
            .iter()
            .map(|s| s.received.load(Ordering::Relaxed))
            .sum()
    }

    pub fn command(&self, ctl: Ctl) {
        let _ = self.ctl.send(ctl);
    }

    pub async fn stop(self) {
        self.command(Ctl::Stop);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// The number after `key` in `text` (`"seq":42` -> 42).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(shared: &Shared, index: usize, since: Option<u64>) -> anyhow::Result<Ws> {
    let _permit = shared.handshakes.acquire().await?;
    let ip = Ipv4Addr::new(127, 0, 0, 2 + (index % usize::from(SOURCE_IPS)) as u8);
    let socket = TcpSocket::new_v4()?;
    socket.bind((ip, 0).into())?;
    let stream = socket.connect(shared.server).await?;
    stream.set_nodelay(true)?;
    let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
    let mut request = format!("ws://{}/api/ws/sync/{}{query}", shared.server, shared.org)
        .into_client_request()?;
    request
        .headers_mut()
        .insert("cookie", shared.cookie.parse()?);
    // tungstenite zeroes the free part of its read buffer before each read: 8 KiB (about 30
    // bench frames) reads in bulk without that memset dominating the profile, as 64 KiB did.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// What a connection's read loop ended with.
enum Ended {
    Reconnect,
    Stop,
}

async fn subscriber(index: usize, shared: Arc<Shared>, mut ctl: watch::Receiver<Ctl>) {
    let slot = &shared.slots[index];
    let mut since: Option<u64> = None;
    let mut attempts = 0u32;
    loop {
        let ws = match open(&shared, index, since).await {
            Ok(ws) => ws,
            Err(e) => {
                attempts += 1;
                shared.failures.fetch_add(1, Ordering::Relaxed);
                if attempts > 20 {
                    eprintln!("subscriber {index}: giving up: {e:#}");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts))).await;
                continue;
            }
        };
        attempts = 0;
        match live(&shared, slot, ws, &mut ctl, since.is_none()).await {
            Ended::Stop => return,
            Ended::Reconnect => {}
        }
        if *ctl.borrow() == Ctl::Cut {
            // Wait for the order to come back.
            loop {
                if ctl.changed().await.is_err() {
                    return;
                }
                let order = *ctl.borrow_and_update();
                match order {
                    Ctl::Stop => return,
                    Ctl::Reconnect { jitter_ms } => {
                        let wait = rand::random::<u64>() % jitter_ms.max(1);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        break;
                    }
                    Ctl::Live | Ctl::Cut => {}
                }
            }
        }
        since = Some(slot.last_seq.load(Ordering::Relaxed));
    }
}

async fn live(
    shared: &Shared,
    slot: &Slot,
    mut ws: Ws,
    ctl: &mut watch::Receiver<Ctl>,
    first: bool,
) -> Ended {
    let mut counted = false;
    let ended = 'conn: loop {
        // One control future per change (not per frame): 10,000 tasks share this channel.
        let changed = {
            let changed = ctl.changed();
            tokio::pin!(changed);
            loop {
                tokio::select! {
                    changed = &mut changed => break changed,
                    message = ws.next() => {
                        if let Some(ended) = frame(shared, slot, message, first, &mut counted) {
                            break 'conn ended;
                        }
                    }
                }
            }
        };
        if changed.is_err() {
            break Ended::Stop;
        }
        let order = *ctl.borrow_and_update();
        match order {
            Ctl::Cut => break Ended::Reconnect,
            Ctl::Stop => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                break Ended::Stop;
            }
            Ctl::Live | Ctl::Reconnect { .. } => {}
        }
    };
    if counted {
        shared.connected.fetch_sub(1, Ordering::Relaxed);
    }
    ended
}

/// Handles one read; `Some` when the connection is over.
fn frame(
    shared: &Shared,
    slot: &Slot,
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    first: bool,
    counted: &mut bool,
) -> Option<Ended> {
    match message {
        Some(Ok(Message::Text(text))) => {
            let text = text.as_str();
            if text.starts_with(r#"{"type":"SYNC_"#) {
                delivered(shared, slot, text);
            } else if text.starts_with(r#"{"type":"CONNECTED""#) {
                if first {
                    let head = number_after(text, r#""seq":"#).unwrap_or(0);
                    slot.last_seq.store(head, Ordering::Relaxed);
                }
                *counted = true;
                shared.connected.fetch_add(1, Ordering::Relaxed);
            } else if text.starts_with(r#"{"type":"RESYNC_REQUIRED""#) {
                shared.resyncs.fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = number_after(text, r#""seq":"#) {
                    slot.last_seq.store(seq, Ordering::Relaxed);
                }
            }
            None
        }
        Some(Ok(Message::Close(frame))) => {
            if frame.as_ref().map(|f| u16::from(f.code)) == Some(4008) {
                shared.too_slow.fetch_add(1, Ordering::Relaxed);
            } else {
                eprintln!("subscriber closed by the server: {frame:?}");
                shared.failures.fetch_add(1, Ordering::Relaxed);
            }
            Some(Ended::Reconnect)
        }
        // Pings are answered by tungstenite on the next read.
        Some(Ok(_)) => None,
        Some(Err(_)) | None => {
            shared.failures.fetch_add(1, Ordering::Relaxed);
            Some(Ended::Reconnect)
        }
    }
}

fn delivered(shared: &Shared, slot: &Slot, text: &str) {
    let Some(seq) = number_after(text, r#""seq":"#) else {
        return;
    };
    let last = slot.last_seq.load(Ordering::Relaxed);
    if seq <= last {
        shared.duplicates.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if seq != last + 1 {
        shared.gaps.fetch_add(seq - last - 1, Ordering::Relaxed);
    }
    slot.last_seq.store(seq, Ordering::Relaxed);
    slot.received.fetch_add(1, Ordering::Relaxed);
    let now = now_us();
    if shared.watch_jobs.load(Ordering::Relaxed) {
        match sync_event(text) {
            SyncEvent::RecordSynced => {
                slot.job_records.fetch_add(1, Ordering::Relaxed);
            }
            SyncEvent::JobEnded => {
                let _ =
                    slot.job_end_us
                        .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
            SyncEvent::Other => {}
        }
    }
    if shared.record_latency.load(Ordering::Relaxed) {
        if let Some(sent) = number_after(text, r#""t":"#) {
            shared.hist.record(now.saturating_sub(sent));
        }
    }
    shared.last_delivery_us.fetch_max(now, Ordering::Relaxed);
}

#[derive(Debug, PartialEq, Eq)]
enum SyncEvent {
    RecordSynced,
    JobEnded,
    Other,
}

/// What a sync event frame reports: record-level events carry `pfaId`, job-level ones never do
/// (docs/protocol.md); a job ends with `SYNC_SUCCESS` or `SYNC_FAILED` without one.
fn sync_event(text: &str) -> SyncEvent {
    let success = text.starts_with(r#"{"type":"SYNC_SUCCESS""#);
    let failed = text.starts_with(r#"{"type":"SYNC_FAILED""#);
    if !success && !failed {
        return SyncEvent::Other;
    }
    match (text.contains(r#""pfaId""#), success) {
        (true, true) => SyncEvent::RecordSynced,
        (true, false) => SyncEvent::Other,
        (false, _) => SyncEvent::JobEnded,
    }
}

#[cfg(test)]
mod tests {
    use super::{number_after, sync_event, SyncEvent};

    #[test]
    fn sync_events_are_told_apart_by_type_and_pfa_id() {
        let record =
            r#"{"type":"SYNC_SUCCESS","jobId":"j","pfaId":"PFA-1","data":{"version":2},"seq":7}"#;
        let end = r#"{"type":"SYNC_SUCCESS","jobId":"j","data":{"jobStatus":"completed"},"seq":8}"#;
        let failed_end =
            r#"{"type":"SYNC_FAILED","jobId":"j","data":{"jobStatus":"cancelled"},"seq":9}"#;
        let record_failed = r#"{"type":"SYNC_FAILED","jobId":"j","pfaId":"PFA-1","seq":10}"#;
        let progress = r#"{"type":"SYNC_PROGRESS","jobId":"j","progress":50,"seq":11}"#;
        assert_eq!(sync_event(record), SyncEvent::RecordSynced);
        assert_eq!(sync_event(end), SyncEvent::JobEnded);
        assert_eq!(sync_event(failed_end), SyncEvent::JobEnded);
        assert_eq!(sync_event(record_failed), SyncEvent::Other);
        assert_eq!(sync_event(progress), SyncEvent::Other);
    }

    #[test]
    fn numbers_are_read_after_their_key() {
        let frame =
            r#"{"type":"SYNC_SUCCESS","jobId":"b","timestamp":"x","data":{"t":123},"seq":42}"#;
        assert_eq!(number_after(frame, r#""seq":"#), Some(42));
        assert_eq!(number_after(frame, r#""t":"#), Some(123));
        assert_eq!(number_after(frame, r#""u":"#), None);
    }
}
