//! Failed logins per client address: the first [`FREE_FAILURES`] cost nothing, then each
//! further failure locks the address out for twice as long as the one before (1 s, 2 s, 4 s,
//! … up to [`MAX_LOCKOUT`]), answered 429 with `Retry-After`. A success clears the address.
//! IPv6 clients are counted per /64, the block one subscriber usually holds. The peer address
//! is the TCP one: `X-Forwarded-For` is not trusted (any client can send it), so behind a
//! proxy every client shares the proxy's count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures allowed before the lock-outs start.
pub const FREE_FAILURES: u32 = 5;
/// The longest lock-out.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// An address's count is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Addresses tracked before stale ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Instant,
}

#[derive(Default)]
pub struct Throttle {
    by_client: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// `Err(wait)` while `client` is locked out.
    pub fn check(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        match self.map().get(&key(client)) {
            Some(f) if f.locked_until > now => Err(f.locked_until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure; returns the lock-out it starts, if any.
    pub fn failed(&self, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let mut map = self.map();
        if map.len() >= SWEEP_AT {
            map.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        }
        let f = map.entry(key(client)).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: now,
        });
        if now.saturating_duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let over = f.count.checked_sub(FREE_FAILURES)?;
        let lockout = Duration::from_secs(1u64 << over.min(20)).min(MAX_LOCKOUT);
        f.locked_until = now + lockout;
        Some(lockout)
    }

    pub fn succeeded(&self, client: Option<IpAddr>) {
        self.map().remove(&key(client));
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The address counted for `client`: IPv4 as is, IPv6 by its /64; an unknown peer (a
/// router called without a server, in tests) counts as one client.
fn key(client: Option<IpAddr>) -> IpAddr {
    match client {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Some(v4) => v4,
        None => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_are_free_then_lockouts_double() {
        let t = Throttle::default();
        let a: Option<IpAddr> = Some("203.0.113.7".parse().unwrap());
        let b: Option<IpAddr> = Some("203.0.113.8".parse().unwrap());
        let now = Instant::now();
        for _ in 1..FREE_FAILURES {
            assert_eq!(t.failed(a, now), None);
            assert!(t.check(a, now).is_ok());
        }
        assert_eq!(t.failed(a, now), Some(Duration::from_secs(1)));
        assert_eq!(t.check(a, now), Err(Duration::from_secs(1)));
        assert!(t.check(b, now).is_ok(), "per address");
        let later = now + Duration::from_secs(1);
        assert!(t.check(a, later).is_ok());
        assert_eq!(t.failed(a, later), Some(Duration::from_secs(2)));
        for _ in 0..40 {
            t.failed(a, later);
        }
        assert_eq!(t.check(a, later), Err(MAX_LOCKOUT));
        t.succeeded(a);
        assert!(t.check(a, later).is_ok(), "a success clears the address");
    }

    #[test]
    fn ipv6_counts_per_64_and_a_quiet_hour_forgets() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..=FREE_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            t.failed(Some(ip), now);
        }
        let other_host: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(t.check(Some(other_host), now).is_err(), "same /64");
        let other_net: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.check(Some(other_net), now).is_ok());
        let hour = now + FORGET_AFTER;
        assert_eq!(t.failed(Some(other_host), hour), None, "counting restarts");
    }
}
