//! Login throttling, kept in the database (GCRA, one row per key, `Store::throttle`) so every
//! instance counts against the same quotas. Failed sign-ins are counted, not attempts, under
//! three keys: the username from one client address, the username from anywhere (a higher
//! cap, so that guessing from elsewhere does not lock its owner out at once) and the address
//! whatever the username (spraying many users). A sign-in is refused while any of its keys is
//! over its quota, with the right password too.

use crate::server::store::Store;
use std::{net::IpAddr, time::Duration};

/// Failed sign-ins a minute allowed per key; each is also the burst allowed at once.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    pub per_user_addr: u32,
    pub per_user: u32,
    pub per_addr: u32,
}

#[derive(Clone)]
pub struct LoginThrottle {
    store: Store,
    quotas: Quotas,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl LoginThrottle {
    pub fn new(store: Store, quotas: Quotas) -> Self {
        Self { store, quotas }
    }

    fn keys(&self, username: &str, addr: IpAddr) -> [(String, u32); 3] {
        let user = username.to_lowercase();
        let q = self.quotas;
        [
            (format!("user-addr:{addr}:{user}"), q.per_user_addr),
            (format!("user:{user}"), q.per_user),
            (format!("addr:{addr}"), q.per_addr),
        ]
    }

    /// `Err(wait)` when a sign-in of `username` from `addr` is over a quota now. Counts
    /// nothing: only [`LoginThrottle::failed`] does.
    pub async fn check(
        &self,
        username: &str,
        addr: IpAddr,
    ) -> anyhow::Result<Result<(), Duration>> {
        let now = now_ms();
        for (key, per_minute) in self.keys(username, addr) {
            if let Err(ms) = self.store.throttle_peek(&key, per_minute, now).await? {
                return Ok(Err(Duration::from_millis(ms as u64)));
            }
        }
        Ok(Ok(()))
    }

    /// Counts a failed sign-in of `username` from `addr` against every quota it falls under.
    pub async fn failed(&self, username: &str, addr: IpAddr) -> anyhow::Result<()> {
        let now = now_ms();
        for (key, per_minute) in self.keys(username, addr) {
            // Over the quota already (failures that raced the check): nothing more to count.
            let _ = self.store.throttle(&key, per_minute, now).await?;
        }
        Ok(())
    }

    /// Drops idle keys so the table stays small.
    pub async fn shrink(&self) -> anyhow::Result<()> {
        self.store.prune_throttle(now_ms()).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::testing::for_each_store;

    fn quotas(per_user_addr: u32, per_user: u32, per_addr: u32) -> Quotas {
        Quotas {
            per_user_addr,
            per_user,
            per_addr,
        }
    }

    async fn fail_times(t: &LoginThrottle, user: &str, addr: IpAddr, times: usize) {
        for _ in 0..times {
            t.failed(user, addr).await.unwrap();
        }
    }

    for_each_store!(
        failures_from_one_address_do_not_lock_the_user_out_elsewhere,
        |store| {
            let t = LoginThrottle::new(store.clone(), quotas(3, 10, 100));
            let x: IpAddr = "10.0.0.1".parse().unwrap();
            let y: IpAddr = "10.0.0.2".parse().unwrap();
            fail_times(&t, "alice", x, 2).await;
            assert!(
                t.check("Alice", x).await.unwrap().is_ok(),
                "checks count nothing"
            );
            assert!(t.check("alice", x).await.unwrap().is_ok());
            fail_times(&t, "Alice", x, 1).await;
            let wait = t.check("alice", x).await.unwrap().unwrap_err();
            assert!(
                wait > Duration::ZERO && wait <= Duration::from_secs(20),
                "{wait:?}"
            );
            assert!(
                t.check("alice", y).await.unwrap().is_ok(),
                "another address"
            );
            assert!(t.check("bob", x).await.unwrap().is_ok(), "another user");
            // Another instance on the same database sees the same quota.
            let other = LoginThrottle::new(store, quotas(3, 10, 100));
            assert!(other.check("alice", x).await.unwrap().is_err());
        }
    );

    for_each_store!(the_user_cap_stops_guessing_from_many_addresses, |store| {
        let t = LoginThrottle::new(store, quotas(3, 5, 100));
        for n in 1..=5 {
            let addr: IpAddr = format!("10.0.1.{n}").parse().unwrap();
            assert!(t.check("alice", addr).await.unwrap().is_ok());
            t.failed("alice", addr).await.unwrap();
        }
        let fresh: IpAddr = "10.0.2.1".parse().unwrap();
        assert!(t.check("alice", fresh).await.unwrap().is_err());
        assert!(t.check("bob", fresh).await.unwrap().is_ok());
    });

    for_each_store!(the_address_quota_stops_spraying_many_users, |store| {
        let t = LoginThrottle::new(store, quotas(100, 100, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        fail_times(&t, "u1", a, 1).await;
        fail_times(&t, "u2", a, 1).await;
        assert!(t.check("u3", a).await.unwrap().is_err());
    });

    for_each_store!(
        a_quota_comes_back_with_time_and_idle_keys_are_forgotten,
        |store| {
            let now = now_ms();
            assert!(store.throttle("k", 60, now).await.unwrap().is_ok());
            for _ in 0..59 {
                assert_eq!(store.throttle_peek("k", 60, now).await.unwrap(), Ok(()));
                store.throttle("k", 60, now).await.unwrap().unwrap();
            }
            assert_eq!(store.throttle_peek("k", 60, now).await.unwrap(), Err(1000));
            assert_eq!(store.throttle("k", 60, now).await.unwrap(), Err(1000));
            assert_eq!(
                store.throttle_peek("k", 60, now + 1000).await.unwrap(),
                Ok(())
            );
            assert!(
                store.throttle("k", 60, now + 1000).await.unwrap().is_ok(),
                "one a second"
            );
            assert_eq!(
                store.throttle_peek("unknown", 60, now).await.unwrap(),
                Ok(())
            );
            assert_eq!(store.prune_throttle(now + 120_000).await.unwrap(), 1);
        }
    );
}
