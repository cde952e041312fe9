//! A connection's bounded outbound queue with backpressure rules:
//! - below half capacity everything is queued in order;
//! - from half capacity on ("pressure") a SYNC_PROGRESS replaces the queued progress of the
//!   same job (latest wins, moved to the back so `seq` stays increasing);
//! - when full, anything that cannot be coalesced closes the connection with 4008: terminal
//!   events and conflicts are never dropped silently (the client replays them with `since`).

use crate::protocol::close_codes;
use axum::extract::ws::Utf8Bytes;
use std::{collections::VecDeque, sync::Mutex};
use tokio::sync::Notify;

/// One event, serialized once and shared by every subscriber.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub job_id: std::sync::Arc<str>,
    pub coalescible: bool,
    pub text: Utf8Bytes,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Replaced an older progress of the same job.
    Coalesced,
    /// The queue was full: the connection is being closed.
    Overflowed,
    /// The connection is already closing; nothing was queued.
    Closed,
}

/// What the sender gets next.
#[derive(Debug, Clone)]
pub enum Next {
    Frame(Frame),
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Frame>,
    close: Option<(u16, &'static str)>,
    coalesced: u64,
}

pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity: capacity.max(2),
        }
    }

    /// Queues a frame without waiting (publishers never block on a slow reader).
    pub fn push(&self, frame: Frame) -> Pushed {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_some() {
            return Pushed::Closed;
        }
        let under_pressure = st.queue.len() >= self.capacity / 2;
        if frame.coalescible && under_pressure {
            if let Some(pos) = st
                .queue
                .iter()
                .position(|f| f.coalescible && f.job_id == frame.job_id)
            {
                st.queue.remove(pos);
                st.queue.push_back(frame);
                st.coalesced += 1;
                drop(st);
                self.notify.notify_one();
                return Pushed::Coalesced;
            }
        }
        if st.queue.len() >= self.capacity {
            st.queue.clear();
            st.close = Some((
                close_codes::TOO_SLOW,
                "too slow: reconnect with since to replay",
            ));
            drop(st);
            self.notify.notify_one();
            return Pushed::Overflowed;
        }
        st.queue.push_back(frame);
        drop(st);
        self.notify.notify_one();
        Pushed::Queued
    }

    /// Asks the sender to close the socket (sign-out, shutdown); queued frames are dropped.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_none() {
            st.queue.clear();
            st.close = Some((code, reason));
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Waits for the next frame or the close request.
    pub async fn next(&self) -> Next {
        loop {
            {
                let mut st = self.state.lock().expect("outbox lock");
                if let Some((code, reason)) = st.close {
                    return Next::Close(code, reason);
                }
                if let Some(frame) = st.queue.pop_front() {
                    return Next::Frame(frame);
                }
            }
            self.notify.notified().await;
        }
    }

    /// Waits for queued frames and moves up to `max` of them into `batch` (in order), so the
    /// sender writes them with one flush; `Some` is the close request, which wins over frames.
    pub async fn next_batch(
        &self,
        batch: &mut Vec<Frame>,
        max: usize,
    ) -> Option<(u16, &'static str)> {
        loop {
            {
                let mut st = self.state.lock().expect("outbox lock");
                if let Some(close) = st.close {
                    return Some(close);
                }
                if !st.queue.is_empty() {
                    let n = st.queue.len().min(max.max(1));
                    batch.extend(st.queue.drain(..n));
                    return None;
                }
            }
            self.notify.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("outbox lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Progress frames replaced so far.
    pub fn coalesced(&self) -> u64 {
        self.state.lock().expect("outbox lock").coalesced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, job: &str, progress: bool) -> Frame {
        Frame {
            seq,
            job_id: job.into(),
            coalescible: progress,
            text: format!("{seq}").into(),
        }
    }

    async fn drain(outbox: &Outbox) -> Vec<u64> {
        let mut seqs = vec![];
        while !outbox.is_empty() {
            if let Next::Frame(f) = outbox.next().await {
                seqs.push(f.seq);
            }
        }
        seqs
    }

    #[tokio::test]
    async fn below_pressure_everything_is_queued_in_order() {
        let outbox = Outbox::new(8);
        for seq in 1..=3 {
            assert_eq!(outbox.push(frame(seq, "j", true)), Pushed::Queued);
        }
        assert_eq!(drain(&outbox).await, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn under_pressure_progress_of_a_job_is_replaced_by_the_latest() {
        let outbox = Outbox::new(8);
        outbox.push(frame(1, "a", true));
        outbox.push(frame(2, "b", false));
        outbox.push(frame(3, "b", true));
        outbox.push(frame(4, "c", false));
        assert_eq!(outbox.push(frame(5, "a", true)), Pushed::Coalesced);
        assert_eq!(outbox.push(frame(6, "b", true)), Pushed::Coalesced);
        assert_eq!(
            drain(&outbox).await,
            vec![2, 4, 5, 6],
            "seq stays increasing"
        );
        assert_eq!(outbox.coalesced(), 2);
    }

    #[tokio::test]
    async fn a_full_queue_closes_with_4008_instead_of_dropping_terminal_events() {
        let outbox = Outbox::new(4);
        for seq in 1..=4 {
            assert_eq!(outbox.push(frame(seq, "j", false)), Pushed::Queued);
        }
        assert_eq!(outbox.push(frame(5, "j", false)), Pushed::Overflowed);
        assert_eq!(outbox.push(frame(6, "j", false)), Pushed::Closed);
        assert!(matches!(outbox.next().await, Next::Close(4008, _)));
    }

    #[tokio::test]
    async fn a_full_queue_still_takes_progress_that_replaces_its_own() {
        let outbox = Outbox::new(4);
        outbox.push(frame(1, "j", true));
        for seq in 2..=4 {
            outbox.push(frame(seq, "k", false));
        }
        assert_eq!(outbox.push(frame(5, "j", true)), Pushed::Coalesced);
        assert_eq!(drain(&outbox).await, vec![2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn close_wins_over_queued_frames() {
        let outbox = Outbox::new(4);
        outbox.push(frame(1, "j", false));
        outbox.close(4401, "signed out");
        assert!(matches!(
            outbox.next().await,
            Next::Close(4401, "signed out")
        ));
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_in_order_up_to_its_size() {
        let outbox = Outbox::new(8);
        for seq in 1..=5 {
            outbox.push(frame(seq, "j", false));
        }
        let mut batch = Vec::new();
        assert_eq!(outbox.next_batch(&mut batch, 3).await, None);
        assert_eq!(
            batch.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        batch.clear();
        assert_eq!(outbox.next_batch(&mut batch, 3).await, None);
        assert_eq!(batch.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![4, 5]);
        outbox.push(frame(6, "j", false));
        outbox.close(4401, "signed out");
        assert_eq!(
            outbox.next_batch(&mut batch, 3).await,
            Some((4401, "signed out"))
        );
    }

    #[tokio::test]
    async fn a_waiting_sender_wakes_on_push() {
        let outbox = std::sync::Arc::new(Outbox::new(4));
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.next().await }
        });
        tokio::task::yield_now().await;
        outbox.push(frame(9, "j", false));
        assert!(matches!(waiter.await.unwrap(), Next::Frame(f) if f.seq == 9));
    }
}
