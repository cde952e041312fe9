//! Login throttling per username and per client address, kept in the database (GCRA, one row
//! per key, `Store::throttle`): every instance counts against the same quotas.

use crate::server::store::Store;
use std::{net::IpAddr, time::Duration};

#[derive(Clone)]
pub struct LoginThrottle {
    store: Store,
    per_user: u32,
    per_addr: u32,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl LoginThrottle {
    /// `per_user` and `per_addr` attempts a minute, each also the burst allowed at once.
    pub fn new(store: Store, per_user: u32, per_addr: u32) -> Self {
        Self {
            store,
            per_user,
            per_addr,
        }
    }

    /// Counts one attempt; `Ok(Err(wait))` when the user or the address is over its quota.
    pub async fn check(
        &self,
        username: &str,
        addr: IpAddr,
    ) -> anyhow::Result<Result<(), Duration>> {
        let now = now_ms();
        let wait = |ms: i64| Duration::from_millis(ms as u64);
        if let Err(ms) = self
            .store
            .throttle(&format!("addr:{addr}"), self.per_addr, now)
            .await?
        {
            return Ok(Err(wait(ms)));
        }
        let user = format!("user:{}", username.to_lowercase());
        if let Err(ms) = self.store.throttle(&user, self.per_user, now).await? {
            return Ok(Err(wait(ms)));
        }
        Ok(Ok(()))
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

    for_each_store!(the_user_quota_stops_guessing_from_any_address, |store| {
        let t = LoginThrottle::new(store.clone(), 3, 100);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.check("alice", a).await.unwrap().is_ok());
        assert!(t.check("Alice", b).await.unwrap().is_ok());
        assert!(t.check("alice", a).await.unwrap().is_ok());
        let wait = t.check("alice", b).await.unwrap().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(
            t.check("bob", a).await.unwrap().is_ok(),
            "other users are not affected"
        );
        // Another instance on the same database sees the same quota.
        let other = LoginThrottle::new(store, 3, 100);
        assert!(other.check("alice", a).await.unwrap().is_err());
    });

    for_each_store!(the_address_quota_stops_spraying_many_users, |store| {
        let t = LoginThrottle::new(store, 100, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(t.check("u1", a).await.unwrap().is_ok());
        assert!(t.check("u2", a).await.unwrap().is_ok());
        assert!(t.check("u3", a).await.unwrap().is_err());
    });

    for_each_store!(
        a_quota_comes_back_with_time_and_idle_keys_are_forgotten,
        |store| {
            let now = now_ms();
            assert!(store.throttle("k", 60, now).await.unwrap().is_ok());
            for _ in 0..59 {
                store.throttle("k", 60, now).await.unwrap().unwrap();
            }
            assert_eq!(store.throttle("k", 60, now).await.unwrap(), Err(1000));
            assert!(
                store.throttle("k", 60, now + 1000).await.unwrap().is_ok(),
                "one a second"
            );
            assert_eq!(store.prune_throttle(now + 120_000).await.unwrap(), 1);
        }
    );
}
