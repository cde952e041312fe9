//! A connection's outbound side: the socket's write half and its bounded queue.
//!
//! Events are written by whoever has them first. A fan-out shard writes a frame straight to the
//! socket when nothing is queued before it (one `writev` for everything the shard has for this
//! socket, no task wake-up); whatever the kernel does not take is queued, and the connection's
//! task finishes it when the socket is writable again. Every write happens under the queue's
//! lock, so frames never interleave.
//!
//! Backpressure rules of the event queue:
//! - below half capacity everything is queued in order;
//! - from half capacity on ("pressure") a SYNC_PROGRESS replaces the queued progress of the
//!   same job (latest wins, moved to the back so `seq` stays increasing);
//! - when full, anything that cannot be coalesced closes the connection with 4008: terminal
//!   events and conflicts are never dropped silently (the client replays them with `since`).
//!
//! Control frames (CONNECTED, the replay, heartbeats, command results, pongs) have their own
//! queue, written before events. Until the connection is made live (after CONNECTED and the
//! replay) events are only queued.

use crate::protocol::close_codes;
use axum::body::Bytes;
use std::{
    collections::VecDeque,
    io::IoSlice,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};
use tokio::{io::AsyncWrite, sync::Notify};
use tokio_tungstenite::tungstenite::protocol::frame::{
    coding::{CloseCode, Data, OpCode},
    CloseFrame, Frame as WsFrame,
};

/// Frames handed to one `writev`.
const MAX_SLICES: usize = 64;

/// The write half of a socket.
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// One WebSocket frame as it goes on the wire (server frames are not masked, so an event is
/// encoded once and the same bytes go to every subscriber).
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub job_id: Arc<str>,
    pub coalescible: bool,
    pub wire: Bytes,
}

impl Frame {
    /// A text frame carrying the event `text`.
    pub fn event(seq: u64, job_id: Arc<str>, coalescible: bool, text: impl Into<Bytes>) -> Self {
        Self {
            seq,
            job_id,
            coalescible,
            wire: encode(WsFrame::message(text, OpCode::Data(Data::Text), true)),
        }
    }

    /// A text frame that is not an event (CONNECTED, HEARTBEAT, replayed events...).
    pub fn text(text: impl Into<Bytes>) -> Self {
        Self::raw(encode(WsFrame::message(
            text,
            OpCode::Data(Data::Text),
            true,
        )))
    }

    /// Bytes already framed (pongs and close replies written by the frame reader).
    pub fn raw(wire: Bytes) -> Self {
        Self {
            seq: 0,
            job_id: Arc::from(""),
            coalescible: false,
            wire,
        }
    }

    pub fn ping() -> Self {
        Self::raw(encode(WsFrame::ping(Bytes::new())))
    }

    pub fn close(code: u16, reason: &str) -> Self {
        Self::raw(encode(WsFrame::close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        }))))
    }
}

/// Whether `wire` is exactly one pong frame as the server writes it (unmasked, FIN set; a
/// control frame's payload has at most 125 bytes).
fn is_pong(wire: &[u8]) -> bool {
    match wire {
        [first, second, payload @ ..] => {
            *first == 0x80 | 0x0A && *second & 0x80 == 0 && usize::from(*second) == payload.len()
        }
        _ => false,
    }
}

fn encode(frame: WsFrame) -> Bytes {
    let mut wire = Vec::with_capacity(frame.len());
    frame.format(&mut wire).expect("a frame formats into a Vec");
    Bytes::from(wire)
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Written to the socket at once.
    Written,
    Queued,
    /// Replaced an older progress of the same job.
    Coalesced,
    /// The queue was full: the connection is being closed.
    Overflowed,
    /// The connection is already closing; nothing was queued.
    Closed,
}

/// The socket failed or timed out: the peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

struct State {
    writer: Writer,
    /// The frame being written and how many of its bytes are out: always finished first, so
    /// the byte stream stays valid whatever comes after it.
    in_flight: Option<(Frame, usize)>,
    control: VecDeque<Frame>,
    events: VecDeque<Frame>,
    live: bool,
    close: Option<(u16, &'static str)>,
    broken: bool,
    coalesced: u64,
}

pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

impl Outbox {
    pub fn new(writer: Writer, capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                writer,
                in_flight: None,
                control: VecDeque::new(),
                events: VecDeque::new(),
                live: false,
                close: None,
                broken: false,
                coalesced: 0,
            }),
            notify: Notify::new(),
            capacity: capacity.max(2),
        }
    }

    /// Queues an event without waiting and, when nothing is queued before it on a live
    /// connection, writes it at once (publishers never block on a slow reader).
    pub fn push(&self, frame: Frame) -> Pushed {
        self.deliver(std::slice::from_ref(&frame))
    }

    /// [`push`](Self::push) for several events in order, written with one `writev` when the
    /// socket takes them. Returns what happened to the last one that was not written
    /// (`Written` when all were).
    pub fn deliver(&self, frames: &[Frame]) -> Pushed {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_some() || st.broken {
            return Pushed::Closed;
        }
        // Only a socket with nothing pending is written here: otherwise the connection's
        // task may be waiting for it to become writable, and its waker must stay registered.
        let idle = st.is_empty() && st.events.is_empty();
        let mut outcome = Pushed::Written;
        for frame in frames {
            outcome = st.enqueue(frame.clone(), self.capacity);
            if outcome == Pushed::Overflowed {
                break;
            }
        }
        if outcome != Pushed::Overflowed && st.live && idle {
            // Inline write: a waker is only needed if the kernel refuses bytes, and then the
            // connection's task (notified below) registers its own.
            let mut cx = Context::from_waker(Waker::noop());
            let _ = st.write_some(&mut cx);
            if st.broken {
                outcome = Pushed::Closed;
            } else if st.is_empty() {
                return Pushed::Written;
            }
        }
        drop(st);
        self.notify.notify_one();
        outcome
    }

    /// Queues a control frame; the connection's task writes it on its next flush.
    pub fn send_control(&self, frame: Frame) {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_none() && !st.broken {
            st.control.push_back(frame);
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Queues a pong written by the frame reader in place of one still queued: RFC 6455
    /// (5.5.3) lets an endpoint answer only the latest ping, so a client that pings and never
    /// reads has at most one pong waiting.
    pub fn send_pong(&self, frame: Frame) {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_none() && !st.broken {
            match st.control.iter_mut().find(|f| is_pong(&f.wire)) {
                Some(queued) => *queued = frame,
                None => st.control.push_back(frame),
            }
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Lets queued and future events go out (after CONNECTED and the replay).
    pub fn set_live(&self) {
        self.state.lock().expect("outbox lock").live = true;
        self.notify.notify_one();
    }

    /// Asks the connection to close (sign-out, shutdown, too slow); queued frames are dropped.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_none() {
            st.control.clear();
            st.events.clear();
            st.close = Some((code, reason));
        }
        drop(st);
        self.notify.notify_one();
    }

    /// The close request, if any.
    pub fn closing(&self) -> Option<(u16, &'static str)> {
        self.state.lock().expect("outbox lock").close
    }

    /// Completes when something may need writing (a frame the inline write could not finish,
    /// a control frame, a close request).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Writes everything that may go out now, waiting for the socket as needed, each wait
    /// bounded by `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), Gone> {
        self.drive(timeout, |st, cx| st.write_some(cx)).await
    }

    /// Finishes the frame in flight, sends the close frame and shuts the write side down.
    pub async fn finish(&self, code: u16, reason: &str, timeout: Duration) {
        {
            let mut st = self.state.lock().expect("outbox lock");
            st.control.clear();
            st.events.clear();
            st.live = true;
            st.control.push_back(Frame::close(code, reason));
            if st.close.is_none() {
                st.close = Some((code, "closed"));
            }
        }
        if self
            .drive(timeout, |st, cx| st.write_some_closing(cx))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(
                timeout,
                std::future::poll_fn(|cx| {
                    let mut st = self.state.lock().expect("outbox lock");
                    st.writer.as_mut().poll_shutdown(cx)
                }),
            )
            .await;
        }
    }

    /// Runs `step` until it reports nothing left, waiting at most `timeout` for the socket
    /// each time it refuses bytes. The common case (the kernel takes it all) sets no timer.
    async fn drive(
        &self,
        timeout: Duration,
        step: impl Fn(&mut State, &mut Context<'_>) -> Poll<()>,
    ) -> Result<(), Gone> {
        let poll = |cx: &mut Context<'_>| {
            let mut st = self.state.lock().expect("outbox lock");
            let done = step(&mut st, cx);
            if st.broken {
                Poll::Ready(Err(Gone))
            } else {
                done.map(Ok)
            }
        };
        if let Poll::Ready(result) = poll(&mut Context::from_waker(Waker::noop())) {
            return result;
        }
        match tokio::time::timeout(timeout, std::future::poll_fn(poll)).await {
            Ok(result) => result,
            Err(_) => Err(Gone),
        }
    }

    pub fn len(&self) -> usize {
        let st = self.state.lock().expect("outbox lock");
        st.events.len() + st.control.len() + usize::from(st.in_flight.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Progress frames replaced so far.
    pub fn coalesced(&self) -> u64 {
        self.state.lock().expect("outbox lock").coalesced
    }
}

impl State {
    fn enqueue(&mut self, frame: Frame, capacity: usize) -> Pushed {
        let under_pressure = self.events.len() >= capacity / 2;
        if frame.coalescible && under_pressure {
            if let Some(pos) = self
                .events
                .iter()
                .position(|f| f.coalescible && f.job_id == frame.job_id)
            {
                self.events.remove(pos);
                self.events.push_back(frame);
                self.coalesced += 1;
                return Pushed::Coalesced;
            }
        }
        if self.events.len() >= capacity {
            self.events.clear();
            self.control.clear();
            self.close = Some((
                close_codes::TOO_SLOW,
                "too slow: reconnect with since to replay",
            ));
            return Pushed::Overflowed;
        }
        self.events.push_back(frame);
        Pushed::Queued
    }

    /// Nothing left that may go out now.
    fn is_empty(&self) -> bool {
        self.in_flight.is_none()
            && self.control.is_empty()
            && (!self.live || self.events.is_empty())
    }

    /// Writes what may go out: the frame in flight, control frames, then (when live) events.
    /// `Ready` when all is written or the socket broke; `Pending` when the kernel refused
    /// bytes (the waker of `cx` is registered).
    fn write_some(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.broken || self.is_empty() {
                return Poll::Ready(());
            }
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_SLICES);
            if let Some((frame, done)) = &self.in_flight {
                slices.push(IoSlice::new(&frame.wire[*done..]));
            }
            let events = if self.live { self.events.len() } else { 0 };
            for frame in self.control.iter().chain(self.events.iter().take(events)) {
                if slices.len() == MAX_SLICES {
                    break;
                }
                slices.push(IoSlice::new(&frame.wire));
            }
            let written = match self.writer.as_mut().poll_write_vectored(cx, &slices) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.broken = true;
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => n,
            };
            drop(slices);
            self.consume(written);
        }
    }

    /// Like `write_some`, for the close: only the frame in flight and the control queue
    /// (which then holds just the close frame).
    fn write_some_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.events.clear();
        self.write_some(cx)
    }

    /// Marks `n` written bytes as sent, in the order `write_some` laid them out.
    fn consume(&mut self, mut n: usize) {
        if let Some((frame, done)) = &mut self.in_flight {
            let left = frame.wire.len() - *done;
            if n < left {
                *done += n;
                return;
            }
            n -= left;
            self.in_flight = None;
        }
        while n > 0 {
            let frame = match self.control.pop_front() {
                Some(f) => f,
                None => self.events.pop_front().expect("written bytes were queued"),
            };
            if n < frame.wire.len() {
                self.in_flight = Some((frame, n));
                return;
            }
            n -= frame.wire.len();
        }
    }
}

/// The write side handed to the frame reader (tungstenite), which writes pongs and close
/// replies: they go through the control queue so they never cut into an event.
pub struct ControlWriter(pub Arc<Outbox>);

impl AsyncWrite for ControlWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let frame = Frame::raw(Bytes::copy_from_slice(buf));
        if is_pong(buf) {
            self.0.send_pong(frame);
        } else {
            self.0.send_control(frame);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(seq: u64, job: &str, progress: bool) -> Frame {
        Frame::event(seq, job.into(), progress, format!("{seq}"))
    }

    /// An outbox over one end of an in-memory pipe of `buffer` bytes; the other end is read
    /// back as the payloads of the frames written.
    fn pipe(capacity: usize, buffer: usize) -> (Arc<Outbox>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(buffer);
        (Arc::new(Outbox::new(Box::pin(ours), capacity)), theirs)
    }

    /// Reads whole text frames (unmasked, payload < 126 bytes) until `n` have come.
    async fn read_frames(peer: &mut tokio::io::DuplexStream, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let mut head = [0u8; 2];
            peer.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[1] & 0x7f);
            assert!(len < 126, "short test frames only");
            let mut payload = vec![0u8; len];
            peer.read_exact(&mut payload).await.unwrap();
            match head[0] & 0x0f {
                0x1 => out.push(String::from_utf8(payload).unwrap()),
                0x8 => out.push(format!(
                    "close {}",
                    u16::from_be_bytes([payload[0], payload[1]])
                )),
                op => out.push(format!("op {op}")),
            }
        }
        out
    }

    fn seqs(texts: &[String]) -> Vec<u64> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn a_live_socket_gets_events_written_at_once_without_the_task() {
        let (outbox, mut peer) = pipe(8, 4096);
        outbox.set_live();
        for seq in 1..=3 {
            assert_eq!(outbox.push(frame(seq, "j", true)), Pushed::Written);
        }
        assert!(outbox.is_empty());
        assert_eq!(seqs(&read_frames(&mut peer, 3).await), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn before_live_events_wait_behind_connected_and_the_replay() {
        let (outbox, mut peer) = pipe(8, 4096);
        assert_eq!(outbox.push(frame(3, "j", false)), Pushed::Queued);
        outbox.send_control(Frame::text("1"));
        outbox.send_control(Frame::text("2"));
        outbox.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(outbox.len(), 1, "the live event is held");
        outbox.set_live();
        outbox.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(seqs(&read_frames(&mut peer, 3).await), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn what_the_kernel_refuses_is_queued_and_finished_by_flush_in_order() {
        // A pipe of 10 bytes takes three 3-byte frames and one byte of the fourth.
        let (outbox, mut peer) = pipe(64, 10);
        outbox.set_live();
        let pushed: Vec<Pushed> = (1..=9).map(|s| outbox.push(frame(s, "j", false))).collect();
        assert_eq!(&pushed[..3], &[Pushed::Written; 3]);
        assert!(pushed[3..].iter().all(|p| *p == Pushed::Queued));
        let reader = tokio::spawn(async move { read_frames(&mut peer, 9).await });
        outbox.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(seqs(&reader.await.unwrap()), (1..=9).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn under_pressure_progress_of_a_job_is_replaced_by_the_latest() {
        let (outbox, mut peer) = pipe(8, 4096);
        outbox.push(frame(1, "a", true));
        outbox.push(frame(2, "b", false));
        outbox.push(frame(3, "b", true));
        outbox.push(frame(4, "c", false));
        assert_eq!(outbox.push(frame(5, "a", true)), Pushed::Coalesced);
        assert_eq!(outbox.push(frame(6, "b", true)), Pushed::Coalesced);
        assert_eq!(outbox.coalesced(), 2);
        outbox.set_live();
        outbox.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            seqs(&read_frames(&mut peer, 4).await),
            vec![2, 4, 5, 6],
            "seq stays increasing"
        );
    }

    #[tokio::test]
    async fn a_full_queue_closes_with_4008_instead_of_dropping_terminal_events() {
        let (outbox, _peer) = pipe(4, 4096);
        for seq in 1..=4 {
            assert_eq!(outbox.push(frame(seq, "j", false)), Pushed::Queued);
        }
        assert_eq!(outbox.push(frame(5, "j", false)), Pushed::Overflowed);
        assert_eq!(outbox.push(frame(6, "j", false)), Pushed::Closed);
        assert_eq!(outbox.closing().map(|c| c.0), Some(4008));
    }

    #[tokio::test]
    async fn a_full_queue_still_takes_progress_that_replaces_its_own() {
        let (outbox, mut peer) = pipe(4, 4096);
        outbox.push(frame(1, "j", true));
        for seq in 2..=4 {
            outbox.push(frame(seq, "k", false));
        }
        assert_eq!(outbox.push(frame(5, "j", true)), Pushed::Coalesced);
        outbox.set_live();
        outbox.flush(Duration::from_secs(1)).await.unwrap();
        assert_eq!(seqs(&read_frames(&mut peer, 4).await), vec![2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn close_drops_queued_frames_but_finishes_the_frame_in_flight() {
        // 10 bytes: three frames and one byte of the fourth go out; the rest is queued.
        let (outbox, mut peer) = pipe(64, 10);
        outbox.set_live();
        for seq in 1..=6 {
            outbox.push(frame(seq, "j", false));
        }
        outbox.close(4401, "signed out");
        assert_eq!(outbox.closing(), Some((4401, "signed out")));
        let reader = tokio::spawn(async move { read_frames(&mut peer, 5).await });
        outbox
            .finish(4401, "signed out", Duration::from_secs(1))
            .await;
        assert_eq!(
            reader.await.unwrap(),
            vec!["1", "2", "3", "4", "close 4401"],
            "the partly written frame 4 is completed, 5 and 6 are dropped"
        );
    }

    #[tokio::test]
    async fn a_peer_that_never_reads_makes_flush_fail_after_the_timeout() {
        let (outbox, _peer) = pipe(64, 4);
        outbox.send_control(Frame::text("a long control frame"));
        let started = std::time::Instant::now();
        assert_eq!(outbox.flush(Duration::from_millis(100)).await, Err(Gone));
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_peer_that_reads_a_trickle_makes_flush_fail_after_the_timeout_all_the_same() {
        let (outbox, mut peer) = pipe(64, 4);
        for n in 0..50 {
            outbox.send_control(Frame::text(format!("control frame {n}")));
        }
        let trickle = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            while peer.read_exact(&mut byte).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let started = std::time::Instant::now();
        assert_eq!(outbox.flush(Duration::from_millis(200)).await, Err(Gone));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
        trickle.abort();
    }

    #[tokio::test]
    async fn a_pong_replaces_the_pong_still_queued() {
        let (outbox, _peer) = pipe(64, 4);
        let pong = |payload: &'static [u8]| encode(WsFrame::pong(Bytes::from_static(payload)));
        assert!(is_pong(&pong(b"1")) && is_pong(&pong(b"")));
        assert!(!is_pong(&Frame::ping().wire) && !is_pong(&Frame::text("x").wire));
        let mut reader = ControlWriter(outbox.clone());
        for n in 0..10_000u32 {
            let wire = encode(WsFrame::pong(Bytes::from(n.to_string())));
            tokio::io::AsyncWriteExt::write_all(&mut reader, &wire)
                .await
                .unwrap();
        }
        outbox.send_control(Frame::text("after"));
        tokio::io::AsyncWriteExt::write_all(&mut reader, &pong(b"last"))
            .await
            .unwrap();
        let queued = outbox.state.lock().unwrap().control.clone();
        assert_eq!(queued.len(), 2, "one pong and the text frame");
        assert_eq!(&queued[0].wire[..], &pong(b"last")[..], "the latest answer");
    }

    #[tokio::test]
    async fn a_closed_peer_breaks_the_outbox() {
        let (outbox, peer) = pipe(64, 4096);
        drop(peer);
        outbox.set_live();
        assert_eq!(outbox.push(frame(1, "j", false)), Pushed::Closed);
        assert_eq!(outbox.flush(Duration::from_secs(1)).await, Err(Gone));
    }

    #[tokio::test]
    async fn a_waiting_task_is_notified_when_an_inline_write_is_refused() {
        let (outbox, _peer) = pipe(64, 3);
        outbox.set_live();
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.notified().await }
        });
        tokio::task::yield_now().await;
        assert_eq!(outbox.push(frame(1, "j", false)), Pushed::Written);
        assert_eq!(outbox.push(frame(2, "j", false)), Pushed::Queued);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("notified")
            .unwrap();
    }
}
