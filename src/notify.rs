//! Keyspace notifications (upstream's `notify.c`).
//!
//! Commands call [`notify_keyspace_event`] with the event class and name upstream uses
//! for the same change (e.g. `NOTIFY_LIST, "lpush"`), and the
//! messages are published to `__keyspace@<db>__:<key>` / `__keyevent@<db>__:<event>`.

#![allow(dead_code)] // The classes are used as commands gain their notifications.

pub const NOTIFY_KEYSPACE: u32 = 1 << 0; // K
pub const NOTIFY_KEYEVENT: u32 = 1 << 1; // E
pub const NOTIFY_GENERIC: u32 = 1 << 2; // g
pub const NOTIFY_STRING: u32 = 1 << 3; // $
pub const NOTIFY_LIST: u32 = 1 << 4; // l
pub const NOTIFY_SET: u32 = 1 << 5; // s
pub const NOTIFY_HASH: u32 = 1 << 6; // h
pub const NOTIFY_ZSET: u32 = 1 << 7; // z
pub const NOTIFY_EXPIRED: u32 = 1 << 8; // x
pub const NOTIFY_EVICTED: u32 = 1 << 9; // e
pub const NOTIFY_STREAM: u32 = 1 << 10; // t
pub const NOTIFY_KEY_MISS: u32 = 1 << 11; // m
pub const NOTIFY_MODULE: u32 = 1 << 12; // d
pub const NOTIFY_NEW: u32 = 1 << 13; // n

use crate::server::Server;

/// Publishes a keyspace event for `key` in `db` if `notify-keyspace-events` enables its
/// class: `__keyspace@<db>__:<key>` with the event name as message (K) and
/// `__keyevent@<db>__:<event>` with the key as message (E), as upstream's
/// `notifyKeyspaceEvent`.
#[inline]
pub fn notify_keyspace_event(srv: &mut Server, class: u32, event: &str, key: &[u8], db: usize) {
    let flags = srv.config.notify_keyspace_events;
    if flags & class == 0 {
        return;
    }
    publish_event(srv, flags, event, key, db);
}

#[cold]
fn publish_event(srv: &mut Server, flags: u32, event: &str, key: &[u8], db: usize) {
    use crate::pubsub::{publish, Kind};
    let dbs = db.to_string();
    if flags & NOTIFY_KEYSPACE != 0 {
        let mut chan = Vec::with_capacity(16 + dbs.len() + key.len());
        chan.extend_from_slice(b"__keyspace@");
        chan.extend_from_slice(dbs.as_bytes());
        chan.extend_from_slice(b"__:");
        chan.extend_from_slice(key);
        publish(srv, &chan, event.as_bytes(), Kind::Global);
    }
    if flags & NOTIFY_KEYEVENT != 0 {
        let mut chan = Vec::with_capacity(16 + dbs.len() + event.len());
        chan.extend_from_slice(b"__keyevent@");
        chan.extend_from_slice(dbs.as_bytes());
        chan.extend_from_slice(b"__:");
        chan.extend_from_slice(event.as_bytes());
        publish(srv, &chan, key, Kind::Global);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_config_bits() {
        use crate::config::notify as cfg;
        assert_eq!(NOTIFY_KEYSPACE, cfg::KEYSPACE);
        assert_eq!(NOTIFY_KEYEVENT, cfg::KEYEVENT);
        assert_eq!(NOTIFY_GENERIC, cfg::GENERIC);
        assert_eq!(NOTIFY_STRING, cfg::STRING);
        assert_eq!(NOTIFY_LIST, cfg::LIST);
        assert_eq!(NOTIFY_SET, cfg::SET);
        assert_eq!(NOTIFY_HASH, cfg::HASH);
        assert_eq!(NOTIFY_ZSET, cfg::ZSET);
        assert_eq!(NOTIFY_EXPIRED, cfg::EXPIRED);
        assert_eq!(NOTIFY_EVICTED, cfg::EVICTED);
        assert_eq!(NOTIFY_STREAM, cfg::STREAM);
        assert_eq!(NOTIFY_KEY_MISS, cfg::KEY_MISS);
        assert_eq!(NOTIFY_MODULE, cfg::MODULE);
        assert_eq!(NOTIFY_NEW, cfg::NEW);
    }
}
