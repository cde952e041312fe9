//! WebSocket close codes of `/api/ws/sync/{orgId}` and what a client does with each.

/// The server is going away (shutdown or restart): reconnect with jitter and `since`.
pub const GOING_AWAY: u16 = 1001;
/// Control frames (pings, pongs) faster than [`CONTROL_FRAMES_PER_SEC`] allows: fix the
/// client; reconnecting is allowed.
pub const POLICY_VIOLATION: u16 = 1008;
/// A message over the inbound limit: fix the client; reconnecting is allowed.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The client could not keep up with its outbound queue: reconnect with `since` to replay.
pub const TOO_SLOW: u16 = 4008;
/// Not signed in (or signed out meanwhile): terminal, sign in again.
pub const UNAUTHENTICATED: u16 = 4401;
/// Signed in but not a member of the organization: terminal.
pub const FORBIDDEN: u16 = 4403;
/// The user has as many sockets open on this server as it allows (`--ws-max-sockets-per-user`):
/// reconnect later, with backoff; closing another tab makes room.
pub const TOO_MANY_SOCKETS: u16 = 4429;

/// Largest inbound message the server accepts, in bytes.
pub const MAX_INBOUND_MESSAGE: usize = 64 * 1024;

/// Inbound control frames (pings and pongs) a socket may send per second, on average...
pub const CONTROL_FRAMES_PER_SEC: u32 = 10;
/// ...and at once.
pub const CONTROL_FRAMES_BURST: u32 = 50;

/// Whether a client should stop reconnecting after this close code.
pub fn is_terminal(code: u16) -> bool {
    matches!(code, UNAUTHENTICATED | FORBIDDEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_auth_failures_are_terminal() {
        assert!(is_terminal(UNAUTHENTICATED) && is_terminal(FORBIDDEN));
        for code in [
            GOING_AWAY,
            POLICY_VIOLATION,
            MESSAGE_TOO_BIG,
            TOO_SLOW,
            TOO_MANY_SOCKETS,
            1000,
            1006,
        ] {
            assert!(!is_terminal(code));
        }
    }
}
