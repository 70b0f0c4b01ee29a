//! The keyspace table of one database: keys, their values and their expiry times.
//!
//! This is the low-level store, as Valkey's `kvstore`/`hashtable`: it knows nothing of
//! clients, WATCH, notifications or lazy expiry (that is `db.rs`). Its contract:
//!
//! - `get`/`get_mut` never allocate; the value of a key is reached in one hash lookup.
//! - `scan(cursor)` keeps Valkey's guarantee: an element present in the table for the whole
//!   iteration is returned at least once, even when the table resizes in between calls.
//! - Resizing never stalls the loop: the table grows by incremental rehashing, a bounded
//!   number of buckets per operation and per cron tick.
//!
//! # Layout
//! (Filled in by the compact implementation: see `docs/architecture.md`.)

use crate::object::{Encoding, Value, ValueRef};

/// One database's key table.
pub struct KvStore {
    map: std::collections::HashMap<Box<[u8]>, Slot>,
    expires: usize,
}

struct Slot {
    val: Value,
    /// Absolute unix time in ms, or -1 when the key has no TTL.
    expire: i64,
    lru: u32,
}

impl Default for KvStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KvStore {
    pub fn new() -> Self {
        KvStore {
            map: Default::default(),
            expires: 0,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.expires
    }

    /// The value of `key`, whatever its expiry.
    pub fn get(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        self.map.get(key).map(|s| s.val.as_ref())
    }

    /// Mutable access to the stored value (collections, raw strings).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.map.get_mut(key).map(|s| &mut s.val)
    }

    /// The encoding of the value of `key`.
    pub fn encoding(&self, key: &[u8]) -> Option<Encoding> {
        self.map.get(key).map(|s| s.val.encoding())
    }

    /// The absolute expiry time of `key` in unix ms, if it has one.
    pub fn get_expire(&self, key: &[u8]) -> Option<i64> {
        self.map
            .get(key)
            .and_then(|s| if s.expire >= 0 { Some(s.expire) } else { None })
    }

    /// Sets the expiry of an existing key; returns false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], when_ms: i64) -> bool {
        match self.map.get_mut(key) {
            Some(s) => {
                if s.expire < 0 {
                    self.expires += 1;
                }
                s.expire = when_ms.max(0);
                true
            }
            None => false,
        }
    }

    /// Removes the TTL; returns true if the key had one.
    pub fn remove_expire(&mut self, key: &[u8]) -> bool {
        match self.map.get_mut(key) {
            Some(s) if s.expire >= 0 => {
                s.expire = -1;
                self.expires -= 1;
                true
            }
            _ => false,
        }
    }

    /// The LRU clock of the key (OBJECT IDLETIME) or its LFU data.
    pub fn lru(&self, key: &[u8]) -> Option<u32> {
        self.map.get(key).map(|s| s.lru)
    }

    pub fn set_lru(&mut self, key: &[u8], lru: u32) {
        if let Some(s) = self.map.get_mut(key) {
            s.lru = lru;
        }
    }

    /// Inserts or overwrites. With `keep_ttl` an existing TTL survives; otherwise it is
    /// cleared. Returns true if the key existed.
    pub fn insert(&mut self, key: &[u8], val: Value, keep_ttl: bool, lru: u32) -> bool {
        if let Some(s) = self.map.get_mut(key) {
            s.val = val;
            s.lru = lru;
            if !keep_ttl && s.expire >= 0 {
                s.expire = -1;
                self.expires -= 1;
            }
            return true;
        }
        self.map.insert(
            key.into(),
            Slot {
                val,
                expire: -1,
                lru,
            },
        );
        false
    }

    /// Removes the key and returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        let s = self.map.remove(key)?;
        if s.expire >= 0 {
            self.expires -= 1;
        }
        Some(s.val)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map = Default::default();
        self.expires = 0;
    }

    /// Calls `f` for every key of one step of the scan and returns the next cursor (0 when
    /// the iteration is complete).
    pub fn scan(&self, cursor: u64, f: &mut dyn FnMut(&[u8], ValueRef<'_>)) -> u64 {
        // Placeholder semantics until the compact table lands: one call returns everything.
        let _ = cursor;
        for (k, s) in self.map.iter() {
            f(k, s.val.as_ref());
        }
        0
    }

    /// Calls `f` for every key (KEYS, FLUSH accounting, SAVE).
    pub fn for_each(&self, f: &mut dyn FnMut(&[u8], ValueRef<'_>, Option<i64>)) {
        for (k, s) in self.map.iter() {
            f(
                k,
                s.val.as_ref(),
                if s.expire >= 0 { Some(s.expire) } else { None },
            );
        }
    }

    /// A random key, or None when empty.
    pub fn random_key(&self) -> Option<Vec<u8>> {
        if self.map.is_empty() {
            return None;
        }
        let n = crate::util::random_u64() as usize % self.map.len();
        self.map.keys().nth(n).map(|k| k.to_vec())
    }

    /// Samples up to `count` keys that have a TTL, for the active expire cycle; returns
    /// (key, expire) pairs.
    pub fn sample_expires(&mut self, count: usize) -> Vec<(Vec<u8>, i64)> {
        self.map
            .iter()
            .filter(|(_, s)| s.expire >= 0)
            .take(count)
            .map(|(k, s)| (k.to_vec(), s.expire))
            .collect()
    }

    /// Does a bounded amount of incremental rehashing; returns true if more is left.
    pub fn rehash_step(&mut self, _buckets: usize) -> bool {
        false
    }

    /// Bytes of table overhead (buckets), for MEMORY STATS / INFO.
    pub fn overhead_bytes(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<Box<[u8]>>() + std::mem::size_of::<Slot>())
    }
}
