//! Brute-force throttling of AUTH / HELLO AUTH (beyond upstream; see docs/security.md).
//!
//! Failed password checks are counted per source IP (the client's address without its
//! port; unix socket clients count as 127.0.0.1). Once an IP reaches
//! `auth-failure-threshold` failures, each one within `auth-failure-window` seconds of the
//! previous one (or of the end of its last lockout), it is locked out: its AUTH attempts are
//! refused without checking the password for 1 s, and every further failed check after a
//! lockout ends doubles the next lockout, up to `auth-lockout-max` seconds. A successful
//! AUTH forgets the IP. The table is bounded ([`MAX_TRACKED`]): when full, the least
//! recently active entry (unlocked ones first) is evicted. A threshold of 0 disables
//! throttling; loopback addresses are exempt while `auth-failure-exempt-loopback` is yes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// The most source IPs tracked at once.
pub const MAX_TRACKED: usize = 10_000;

/// The first lockout, in ms; each further one doubles it.
const BASE_LOCKOUT_MS: i64 = 1000;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Failed checks in the current run.
    failures: u32,
    /// Lockouts so far in the current run (the exponent of the next lockout).
    level: u32,
    /// When the last failed check happened (ms).
    last_failure: i64,
    /// Refused until then (ms), 0 = not locked.
    locked_until: i64,
}

/// The tracking table and the INFO counters.
#[derive(Debug, Default)]
pub struct AuthGuard {
    ips: HashMap<IpAddr, Entry>,
    /// Password checks that failed (throttled attempts excluded).
    pub failures: u64,
    /// Attempts refused because their IP was locked out.
    pub refused: u64,
    /// Times an IP was locked out.
    pub lockouts: u64,
}

/// The throttling settings, copied from the config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub threshold: u32,
    pub window_ms: i64,
    pub max_lockout_ms: i64,
    pub exempt_loopback: bool,
}

/// The source IP of a client address ("ip:port", "[v6]:port" or a unix socket).
pub fn source_ip(addr: &str, unix: bool) -> IpAddr {
    if unix {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        Ok(ip) => ip,
        // Unknown formats share one bucket rather than escaping the count.
        Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

impl AuthGuard {
    fn applies(ip: &IpAddr, l: &Limits) -> bool {
        l.threshold > 0 && !(l.exempt_loopback && ip.is_loopback())
    }

    /// Whether an attempt from `ip` must be refused without checking the password.
    pub fn is_locked(&mut self, ip: IpAddr, now: i64, l: &Limits) -> bool {
        if !Self::applies(&ip, l) {
            return false;
        }
        let locked = self.ips.get(&ip).is_some_and(|e| e.locked_until > now);
        if locked {
            self.refused = self.refused.saturating_add(1);
        }
        locked
    }

    /// Records a successful AUTH from `ip`: its history is forgotten.
    pub fn success(&mut self, ip: IpAddr) {
        self.ips.remove(&ip);
    }

    /// Records a failed password check from `ip`; returns whether it locked the IP out.
    pub fn failure(&mut self, ip: IpAddr, now: i64, l: &Limits) -> bool {
        self.failures = self.failures.saturating_add(1);
        if !Self::applies(&ip, l) {
            return false;
        }
        if !self.ips.contains_key(&ip) && self.ips.len() >= MAX_TRACKED {
            self.evict_one(now);
        }
        let e = self.ips.entry(ip).or_default();
        // A run ends when a whole window passes without failures after the last lockout.
        let quiet_since = e.last_failure.max(e.locked_until);
        if e.failures > 0 && now.saturating_sub(quiet_since) > l.window_ms {
            *e = Entry::default();
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures < l.threshold {
            return false;
        }
        let shift = e.level.min(30);
        let dur = BASE_LOCKOUT_MS
            .saturating_mul(1i64 << shift)
            .min(l.max_lockout_ms.max(0));
        e.level = e.level.saturating_add(1);
        e.locked_until = now.saturating_add(dur);
        self.lockouts = self.lockouts.saturating_add(1);
        true
    }

    /// Removes the least recently active entry, unlocked entries first.
    fn evict_one(&mut self, now: i64) {
        let victim = self
            .ips
            .iter()
            .min_by_key(|(_, e)| (e.locked_until > now, e.last_failure.max(e.locked_until)))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            self.ips.remove(&ip);
        }
    }

    /// IPs currently locked out.
    pub fn locked_ips(&self, now: i64) -> usize {
        self.ips.values().filter(|e| e.locked_until > now).count()
    }

    /// IPs tracked.
    pub fn tracked_ips(&self) -> usize {
        self.ips.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        threshold: 3,
        window_ms: 60_000,
        max_lockout_ms: 5_000,
        exempt_loopback: true,
    };

    #[test]
    fn addresses() {
        assert_eq!(source_ip("10.1.2.3:555", false).to_string(), "10.1.2.3");
        assert_eq!(source_ip("[::1]:555", false).to_string(), "::1");
        assert_eq!(source_ip("::1:555", false).to_string(), "::1");
        assert_eq!(source_ip("/tmp/s.sock:0", true).to_string(), "127.0.0.1");
        assert_eq!(source_ip("garbage", false).to_string(), "0.0.0.0");
    }

    #[test]
    fn lockout_doubles_and_is_bounded() {
        let mut g = AuthGuard::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(!g.failure(ip, 0, &L));
        assert!(!g.failure(ip, 1, &L));
        assert!(g.failure(ip, 2, &L));
        assert!(g.is_locked(ip, 500, &L));
        assert!(!g.is_locked(other, 500, &L));
        assert!(!g.is_locked(ip, 1002, &L));
        assert!(g.failure(ip, 1002, &L));
        assert!(g.is_locked(ip, 3001, &L));
        assert!(!g.is_locked(ip, 3002, &L));
        g.failure(ip, 3002, &L); // 4 s
        g.failure(ip, 7002, &L); // 8 s capped to 5 s
        assert!(!g.is_locked(ip, 12_002, &L));
        assert_eq!(g.lockouts, 4);
        // A quiet window ends the run.
        assert!(!g.failure(ip, 12_002 + 60_001, &L));
        g.success(ip);
        assert_eq!(g.tracked_ips(), 0);
    }

    #[test]
    fn exemptions_and_bound() {
        let mut g = AuthGuard::default();
        let lo: IpAddr = "127.0.0.2".parse().unwrap();
        for i in 0..10 {
            assert!(!g.failure(lo, i, &L));
        }
        assert!(!g.is_locked(lo, 10, &L));
        let off = Limits { threshold: 0, ..L };
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..10 {
            assert!(!g.failure(ip, i, &off));
        }
        for i in 0..(MAX_TRACKED as u32 + 50) {
            g.failure(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 100, &L);
        }
        assert_eq!(g.tracked_ips(), MAX_TRACKED);
    }
}
