//! Connection logic of the browser's sync WebSocket (`use_sync_status_updates`), as plain
//! structs with no I/O: exponential backoff with full jitter and the connection state machine.
//! Time comes in as milliseconds (`f64`, e.g. `Date.now()`) and randomness as a unit in [0, 1),
//! so the same code runs natively in tests and in wasm32 in the browser.

use crate::protocol::close_codes::{is_terminal, FORBIDDEN, UNAUTHENTICATED};

/// Close code the client uses when it closes the socket itself (disabled or dead link).
pub const CLOSE_NORMAL: u16 = 1000;
/// A connection open at least this long counts as good: its close restarts the backoff.
pub const DEFAULT_STABLE_MS: f64 = 5_000.0;
/// Silence limit before the CONNECTED frame says otherwise (25 s heartbeat + 10 s).
pub const DEFAULT_SILENCE_MS: f64 = 35_000.0;

/// Exponential backoff with full jitter: the n-th delay is `unit * min(cap, base * 2^n)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay ceiling of the first retry, in ms.
    pub base_ms: f64,
    /// Largest delay ceiling, in ms.
    pub cap_ms: f64,
    attempt: u32,
}

impl Default for Backoff {
    /// 1 s base, 30 s cap.
    fn default() -> Self {
        Self::new(1_000.0, 30_000.0)
    }
}

impl Backoff {
    /// A backoff starting at `base_ms` and never exceeding `cap_ms`.
    pub fn new(base_ms: f64, cap_ms: f64) -> Self {
        Self {
            base_ms,
            cap_ms,
            attempt: 0,
        }
    }

    /// The next delay in ms for a random `unit` in [0, 1); counts the attempt.
    pub fn next_delay(&mut self, unit: f64) -> f64 {
        let exp = 2f64.powi(self.attempt.min(1_000) as i32);
        let ceiling = (self.base_ms * exp).min(self.cap_ms);
        self.attempt = self.attempt.saturating_add(1);
        unit.clamp(0.0, 1.0) * ceiling
    }

    /// Starts again from `base_ms`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// State of the sync socket.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    /// Not enabled: no socket, no timer.
    Idle,
    /// A socket is being opened; `attempt` = failures in a row before this try.
    Connecting { attempt: u32 },
    /// Connected since `since_ms`.
    Open { since_ms: f64 },
    /// Backing off until `until_ms` before try number `attempt`.
    Waiting { until_ms: f64, attempt: u32 },
    /// Terminal (4401 / 4403): no more retries until enabled again.
    Stopped { code: u16, reason: String },
}

/// What the hook must do after an input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Nothing.
    None,
    /// Open a new WebSocket (with `?since=` from [`ConnectionMachine::since`]).
    Connect,
    /// Close the current socket with `code`; then follow [`ConnectionMachine::next_tick_at`].
    Close { code: u16 },
    /// Call `tick` at `at_ms` (replaces any pending timer).
    Schedule { at_ms: f64 },
}

/// The sync socket's state machine: reconnects with backoff, detects dead links, stops on
/// auth failures and remembers the last `seq` seen so a reconnect misses nothing.
#[derive(Debug, Clone)]
pub struct ConnectionMachine {
    state: ConnState,
    backoff: Backoff,
    stable_ms: f64,
    silence_ms: f64,
    last_frame_ms: f64,
    last_seq: Option<u64>,
}

impl Default for ConnectionMachine {
    /// Idle, default backoff, stable time and silence limit.
    fn default() -> Self {
        Self {
            state: ConnState::Idle,
            backoff: Backoff::default(),
            stable_ms: DEFAULT_STABLE_MS,
            silence_ms: DEFAULT_SILENCE_MS,
            last_frame_ms: 0.0,
            last_seq: None,
        }
    }
}

impl ConnectionMachine {
    /// Starts connecting (also after a terminal stop); no-op when already enabled.
    pub fn enable(&mut self, _now_ms: f64) -> Action {
        match self.state {
            ConnState::Idle | ConnState::Stopped { .. } => self.connect_fresh(),
            _ => Action::None,
        }
    }

    /// Stops everything; closes the socket if one is open or opening.
    pub fn disable(&mut self) -> Action {
        let old = std::mem::replace(&mut self.state, ConnState::Idle);
        self.backoff.reset();
        match old {
            ConnState::Connecting { .. } | ConnState::Open { .. } => CLOSE,
            _ => Action::None,
        }
    }

    /// The socket opened. A socket that opens when none is wanted must be closed.
    pub fn opened(&mut self, now_ms: f64) -> Action {
        match self.state {
            ConnState::Connecting { .. } => {
                self.state = ConnState::Open { since_ms: now_ms };
                self.last_frame_ms = now_ms;
                self.schedule_next()
            }
            ConnState::Open { .. } => Action::None,
            _ => CLOSE,
        }
    }

    /// The socket closed or failed. 4401/4403 stop for good; anything else backs off
    /// (from the base again if the connection had been stable). Stale closes are ignored.
    pub fn closed(&mut self, code: u16, reason: &str, now_ms: f64, unit: f64) -> Action {
        let since_ms = match self.state {
            ConnState::Open { since_ms } => Some(since_ms),
            ConnState::Connecting { .. } => None,
            _ => return Action::None,
        };
        if is_terminal(code) {
            let reason = reason.to_string();
            self.state = ConnState::Stopped { code, reason };
            return Action::None;
        }
        self.back_off(since_ms, now_ms, unit)
    }

    /// Timer callback: starts the next try when the wait is over, and closes an open link
    /// silent for the silence limit (then waits as after a close); else re-arms the timer.
    pub fn tick(&mut self, now_ms: f64, unit: f64) -> Action {
        match self.state {
            ConnState::Waiting { until_ms, attempt } if now_ms >= until_ms => {
                self.state = ConnState::Connecting { attempt };
                Action::Connect
            }
            ConnState::Open { since_ms } if now_ms - self.last_frame_ms >= self.silence_ms => {
                self.back_off(Some(since_ms), now_ms, unit);
                CLOSE
            }
            _ => self.schedule_next(),
        }
    }

    /// Any server frame (events, HEARTBEAT, ...) arrived: the link is alive.
    pub fn frame_received(&mut self, now_ms: f64) -> Action {
        self.last_frame_ms = self.last_frame_ms.max(now_ms);
        Action::None
    }

    /// From the CONNECTED frame: the silence limit becomes `(secs + 10) * 1000` ms.
    pub fn set_heartbeat_interval(&mut self, secs: u64) -> Action {
        self.silence_ms = (secs as f64 + 10.0) * 1_000.0;
        self.schedule_next()
    }

    /// The browser came online: skip the wait (the backoff is kept).
    pub fn online(&mut self, _now_ms: f64) -> Action {
        self.skip_wait()
    }

    /// The tab became visible: skip the wait (the backoff is kept).
    pub fn visible(&mut self, _now_ms: f64) -> Action {
        self.skip_wait()
    }

    /// The user asked to retry: skips the wait; after a terminal stop (e.g. signed in
    /// again meanwhile) starts afresh. No-op when idle, connecting or open.
    pub fn retry_now(&mut self, _now_ms: f64) -> Action {
        match self.state {
            ConnState::Stopped { .. } => self.connect_fresh(),
            _ => self.skip_wait(),
        }
    }

    /// The current state.
    pub fn state(&self) -> &ConnState {
        &self.state
    }

    /// Whether the socket is open.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, ConnState::Open { .. })
    }

    /// Failed tries in a row (0 after a stable connection).
    pub fn attempt(&self) -> u32 {
        self.backoff.attempt()
    }

    /// When `tick` is next due: the end of the wait, or the liveness deadline when open.
    pub fn next_tick_at(&self) -> Option<f64> {
        match self.state {
            ConnState::Waiting { until_ms, .. } => Some(until_ms),
            ConnState::Open { .. } => Some(self.last_frame_ms + self.silence_ms),
            _ => None,
        }
    }

    /// Why the machine stopped: the close code and a sentence for the user.
    pub fn stop_reason(&self) -> Option<(u16, &str)> {
        match &self.state {
            ConnState::Stopped { code, reason } => Some((*code, stop_sentence(*code, reason))),
            _ => None,
        }
    }

    /// Remembers an event's (or CONNECTED/HEARTBEAT's) `seq`; keeps the highest.
    pub fn record_seq(&mut self, seq: u64) {
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
    }

    /// The value to send as `?since=` on (re)connect, if any `seq` was seen.
    pub fn since(&self) -> Option<u64> {
        self.last_seq
    }

    /// Forgets the `seq` (RESYNC_REQUIRED: refetch state, then record the frame's `seq`).
    pub fn reset_seq(&mut self) {
        self.last_seq = None;
    }

    fn connect_fresh(&mut self) -> Action {
        self.backoff.reset();
        self.state = ConnState::Connecting { attempt: 0 };
        Action::Connect
    }

    /// Waits before the next try; a connection open since `since_ms` for at least
    /// `stable_ms` was a good one and restarts the backoff from its base.
    fn back_off(&mut self, since_ms: Option<f64>, now_ms: f64, unit: f64) -> Action {
        if since_ms.is_some_and(|since| now_ms - since >= self.stable_ms) {
            self.backoff.reset();
        }
        let until_ms = now_ms + self.backoff.next_delay(unit);
        let attempt = self.backoff.attempt();
        self.state = ConnState::Waiting { until_ms, attempt };
        at(until_ms)
    }

    fn schedule_next(&self) -> Action {
        self.next_tick_at().map_or(Action::None, at)
    }

    fn skip_wait(&mut self) -> Action {
        match self.state {
            ConnState::Waiting { attempt, .. } => {
                self.state = ConnState::Connecting { attempt };
                Action::Connect
            }
            _ => Action::None,
        }
    }
}

const CLOSE: Action = Action::Close { code: CLOSE_NORMAL };

fn at(at_ms: f64) -> Action {
    Action::Schedule { at_ms }
}

fn stop_sentence(code: u16, reason: &str) -> &str {
    match code {
        UNAUTHENTICATED => "Sign-in required: sign in again to receive live updates",
        FORBIDDEN => "You are not a member of this organization",
        _ => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enabled and open at `t`.
    fn open_at(t: f64) -> ConnectionMachine {
        let mut m = ConnectionMachine::default();
        assert_eq!(m.enable(t), Action::Connect);
        assert_eq!(m.opened(t), at(t + 35_000.0));
        m
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_thirty_second_cap() {
        let mut b = Backoff::default();
        let delays: Vec<f64> = (0..7).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(delays, [1e3, 2e3, 4e3, 8e3, 16e3, 30e3, 30e3]);
        assert_eq!(b.attempt(), 7);
        b.reset();
        assert_eq!((b.attempt(), b.next_delay(1.0)), (0, 1e3));
    }

    #[test]
    fn full_jitter_scales_the_delay_by_the_random_unit() {
        let mut b = Backoff::default();
        assert_eq!(
            [b.next_delay(0.5), b.next_delay(0.25), b.next_delay(0.0)],
            [500.0, 500.0, 0.0]
        );
        assert_eq!(Backoff::new(1e3, 30e3).next_delay(7.0), 1e3);
    }

    #[test]
    fn a_stable_connection_restarts_the_backoff_but_a_flapping_one_keeps_growing() {
        let mut m = open_at(0.0);
        let mut t = 0.0;
        for expected in [1e3, 2e3, 4e3] {
            t += 1_000.0; // open for 1 s only
            assert_eq!(m.closed(1006, "", t, 1.0), at(t + expected));
            t += expected;
            assert_eq!(m.tick(t, 1.0), Action::Connect);
            m.opened(t);
        }
        t += 5_000.0;
        assert_eq!(m.closed(1001, "restart", t, 1.0), at(t + 1e3));
        assert_eq!(m.attempt(), 1);
    }

    #[test]
    fn auth_failures_stop_for_good_until_enabled_again() {
        for (code, sentence) in [
            (
                4401,
                "Sign-in required: sign in again to receive live updates",
            ),
            (4403, "You are not a member of this organization"),
        ] {
            let mut m = open_at(0.0);
            assert_eq!(m.closed(code, "nope", 10.0, 1.0), Action::None);
            assert_eq!(m.stop_reason(), Some((code, sentence)));
            for t in [1e3, 1e5, 1e7] {
                assert_eq!(m.tick(t, 1.0), Action::None);
                assert_eq!(m.online(t), Action::None);
                assert_eq!(m.visible(t), Action::None);
                assert_eq!(m.closed(1006, "", t, 1.0), Action::None);
            }
            assert!(matches!(m.state(), ConnState::Stopped { .. }));
            assert_eq!(m.enable(2e7), Action::Connect);
            assert_eq!((m.stop_reason(), m.attempt()), (None, 0));
        }
    }

    #[test]
    fn a_silent_link_is_closed_after_the_heartbeat_interval_plus_ten_seconds_and_retried() {
        let mut m = open_at(0.0);
        assert_eq!(m.set_heartbeat_interval(5), at(15_000.0));
        assert_eq!(m.tick(14_999.0, 1.0), at(15_000.0));
        assert_eq!(m.tick(15_000.0, 1.0), CLOSE);
        assert_eq!(m.next_tick_at(), Some(16_000.0));
        assert_eq!(m.closed(1000, "", 15_010.0, 1.0), Action::None); // our own close
        assert_eq!(m.tick(16_000.0, 1.0), Action::Connect);
    }

    #[test]
    fn heartbeats_keep_the_link_open() {
        let mut m = open_at(0.0);
        m.set_heartbeat_interval(25);
        for beat in 1..=10 {
            let t = beat as f64 * 25_000.0;
            m.frame_received(t);
            assert_eq!(m.tick(t + 34_999.0, 1.0), at(t + 35_000.0));
        }
        assert!(m.is_connected());
    }

    #[test]
    fn coming_online_or_becoming_visible_skips_the_wait_but_keeps_the_backoff() {
        let mut m = ConnectionMachine::default();
        assert_eq!(m.state(), &ConnState::Idle);
        m.enable(0.0);
        assert_eq!(m.closed(1006, "", 0.0, 1.0), at(1e3));
        assert_eq!(m.tick(999.0, 1.0), at(1e3));
        assert_eq!(m.online(10.0), Action::Connect);
        assert_eq!(m.state(), &ConnState::Connecting { attempt: 1 });
        assert_eq!(m.closed(1006, "", 20.0, 1.0), at(2_020.0));
        assert_eq!(m.visible(30.0), Action::Connect);
        assert_eq!(m.closed(1006, "", 40.0, 1.0), at(4_040.0));
        assert_eq!(m.retry_now(50.0), Action::Connect);
        assert_eq!((m.online(60.0), m.attempt()), (Action::None, 3));
    }

    #[test]
    fn disabling_closes_the_socket_goes_idle_and_ignores_stale_events() {
        let mut m = open_at(0.0);
        assert_eq!(m.disable(), CLOSE);
        assert_eq!(m.state(), &ConnState::Idle);
        assert_eq!(m.closed(1000, "", 10.0, 1.0), Action::None);
        assert_eq!(m.opened(20.0), CLOSE);
        assert_eq!(
            (m.tick(1e6, 1.0), m.retry_now(1e6), m.disable()),
            (Action::None, Action::None, Action::None)
        );
    }

    #[test]
    fn since_is_the_highest_seq_seen_until_a_resync() {
        let mut m = ConnectionMachine::default();
        assert_eq!(m.since(), None);
        for seq in [3, 7, 5] {
            m.record_seq(seq);
        }
        assert_eq!(m.since(), Some(7));
        m.reset_seq();
        assert_eq!(m.since(), None);
        m.record_seq(2);
        assert_eq!(m.since(), Some(2));
    }
}
