//! Login throttling per username and per client address (governor's keyed GCRA limiters).

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

#[derive(Clone)]
pub struct LoginThrottle {
    per_user: Arc<DefaultKeyedRateLimiter<String>>,
    per_addr: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl LoginThrottle {
    /// `per_user` and `per_addr` attempts a minute, each also the burst allowed at once.
    pub fn new(per_user: u32, per_addr: u32) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("max(1) is non-zero"));
        Self {
            per_user: Arc::new(RateLimiter::keyed(quota(per_user))),
            per_addr: Arc::new(RateLimiter::keyed(quota(per_addr))),
        }
    }

    /// Counts one attempt; `Err(wait)` when the user or the address is over its quota.
    pub fn check(&self, username: &str, addr: IpAddr) -> Result<(), Duration> {
        let clock = governor::clock::DefaultClock::default();
        self.per_addr
            .check_key(&addr)
            .map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        self.per_user
            .check_key(&username.to_lowercase())
            .map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        Ok(())
    }

    /// Drops idle keys so the maps stay small.
    pub fn shrink(&self) {
        self.per_user.retain_recent();
        self.per_addr.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_quota_stops_guessing_from_any_address() {
        let t = LoginThrottle::new(3, 100);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.check("alice", a).is_ok());
        assert!(t.check("Alice", b).is_ok());
        assert!(t.check("alice", a).is_ok());
        let wait = t.check("alice", b).unwrap_err();
        assert!(wait > Duration::ZERO);
        assert!(t.check("bob", a).is_ok(), "other users are not affected");
    }

    #[test]
    fn the_address_quota_stops_spraying_many_users() {
        let t = LoginThrottle::new(100, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(t.check("u1", a).is_ok());
        assert!(t.check("u2", a).is_ok());
        assert!(t.check("u3", a).is_err());
    }
}
