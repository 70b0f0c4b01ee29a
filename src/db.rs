//! The keyspace as commands see it, as upstream's `db.c` and `expire.c`: lookups that apply
//! lazy expiry and count hits and misses, writes that signal WATCHers, and the active
//! expire cycle run from cron and before-sleep.
//!
//! Commands never touch [`KvStore`] directly for writes: they call [`set_key`],
//! [`db_delete`] and friends so that every write marks WATCHed keys dirty and counts in
//! `dirty` (later: keyspace notifications, AOF and replication propagation).

use crate::kvstore::{KvStore, Lookup, LookupMut};
use crate::notify::{self, notify_keyspace_event};
use crate::object::{ObjType, Value, ValueRef};
use crate::server::Server;

/// One numbered database.
pub struct Db {
    pub id: usize,
    pub kv: KvStore,
    /// Average TTL of the keys sampled by the active expire cycle, for INFO keyspace.
    pub avg_ttl: i64,
    /// Keys whose hash has fields with a TTL, for the active field-expiry pass.
    pub volatile_hashes: crate::commands::hash::VolatileKeys,
}

impl Db {
    pub fn new(id: usize) -> Db {
        Db {
            id,
            kv: KvStore::new(),
            avg_ttl: 0,
            volatile_hashes: Default::default(),
        }
    }
}

/// Whether `key` in `db` is logically expired at `now`.
#[inline]
pub fn key_is_expired(srv: &Server, db: usize, key: &[u8]) -> bool {
    // Nothing expires while a dataset loads (an AOF replays what happened when the
    // keys were alive), as upstream.
    if srv.rdb.loading {
        return false;
    }
    match srv.dbs[db].kv.get_expire(key) {
        Some(when) => when <= expiry_clock(srv),
        None => false,
    }
}

/// The clock keys expire against: on a replica, the commands of our primary see every
/// key as alive (the primary decides expiry and sends DEL), as upstream's
/// expireIfNeeded.
#[inline]
fn expiry_clock(srv: &Server) -> i64 {
    if srv.repl.replica.applying {
        i64::MIN
    } else {
        srv.mstime
    }
}

/// Whether an expired key found by a lookup is deleted: not on a replica, which only
/// hides it until its primary's DEL arrives.
#[inline]
fn deletes_expired(srv: &Server) -> bool {
    !crate::replication::replica::is_replica(srv) && !crate::pause::expire_paused(srv)
}

/// Deletes `key` if it is expired (upstream's `expireIfNeeded`); returns true if the key
/// is (now) gone because it had expired.
pub fn expire_if_needed(srv: &mut Server, db: usize, key: &[u8]) -> bool {
    if !key_is_expired(srv, db, key) {
        return false;
    }
    if deletes_expired(srv) {
        delete_expired_key(srv, db, key);
    }
    true
}

/// Deletes a key that expired, with the stats and signals of an expiry, and propagates
/// the deletion as an explicit DEL or UNLINK (upstream's `deleteExpiredKeyAndPropagate`).
/// It does not make the dataset dirty: a read that expires keys propagates only their
/// deletions. A command that deletes a key by setting a time in the past (EXPIRE,
/// SET PXAT, GETEX...) uses [`delete_expired_key_from_overwrite`].
pub fn delete_expired_key(srv: &mut Server, db: usize, key: &[u8]) {
    delete_expired_key_unpropagated(srv, db, key);
    propagate_deletion(srv, db, key, srv.config.lazyfree_lazy_expire);
}

/// [`delete_expired_key`] without propagating the deletion: for a command propagated
/// as is, whose replay deletes the key too (MSETEX with a time in the past).
pub fn delete_expired_key_unpropagated(srv: &mut Server, db: usize, key: &[u8]) {
    if let Some(v) = srv.dbs[db].kv.remove(key) {
        crate::blocked::signal_deleted_key_as_ready(srv, db, key, v.obj_type());
        crate::lazyfree::free_value(v, srv.config.lazyfree_lazy_expire);
    }
    srv.stats.expiredkeys += 1;
    srv.touch_watched_key(db, key);
    // An expiry has no modifying client (upstream's signalModifiedKey(NULL, ...)).
    if srv.tracking.active() {
        crate::tracking::invalidate_key(srv, key, true, 0);
    }
    notify_keyspace_event(srv, notify::NOTIFY_EXPIRED, "expired", key, db);
}

/// A command deletes `key` because the expire time it set is already past: the key goes
/// as an expiry, the dataset is dirty, and the command propagates as the deletion alone
/// (upstream's `deleteExpiredKeyFromOverwriteAndPropagate`).
/// `key_idx` is the key's index in `c.argv`.
pub fn delete_expired_key_from_overwrite(
    srv: &mut Server,
    c: &mut crate::client::Client,
    key_idx: usize,
) {
    let Some(key) = c.argv.get_mut(key_idx).map(std::mem::take) else {
        return;
    };
    delete_expired_key(srv, c.db, &key);
    // Upstream signals this one as modified by the client (BCAST NOLOOP skips it).
    if srv.tracking.active() {
        crate::tracking::invalidate_key(srv, &key, true, c.id);
    }
    c.argv[key_idx] = key;
    srv.dirty += 1;
    c.flags |= crate::client::flags::PREVENT_PROP;
}

/// Queues `DEL key` (or `UNLINK key` when `lazy`) for propagation (upstream's
/// `propagateDeletion`). Free when nothing consumes the stream.
pub fn propagate_deletion(srv: &mut Server, db: usize, key: &[u8], lazy: bool) {
    use crate::propagate::{also_propagate, should_propagate, PROPAGATE_ALL};
    if !should_propagate(srv, PROPAGATE_ALL) {
        return;
    }
    let cmd: &[u8] = if lazy { b"UNLINK" } else { b"DEL" };
    also_propagate(srv, db, vec![cmd.to_vec(), key.to_vec()], PROPAGATE_ALL);
}

/// How a lookup behaves, as upstream's `LOOKUP_*` flags.
#[derive(Clone, Copy)]
struct LookupFlags {
    /// Update the LRU clock (unless the running client asked CLIENT NO-TOUCH).
    touch: bool,
    /// Count a keyspace hit or miss.
    count: bool,
}

/// Every key lookup, in one hash probe (upstream's `lookupKey`): lazy expiry, then the
/// flags' side effects.
fn lookup_key<'a>(
    srv: &'a mut Server,
    db: usize,
    key: &[u8],
    f: LookupFlags,
) -> Option<ValueRef<'a>> {
    let now = expiry_clock(srv);
    let touch = if f.touch { access_touch(srv) } else { None };
    let kv: *mut KvStore = &mut srv.dbs[db].kv;
    // SAFETY: `kv` points into `srv.dbs`, which nothing below resizes or drops while the
    // returned borrow lives: the found path only touches `srv.stats`, and the expired path
    // drops the lookup result before deleting. The raw pointer only works around the
    // borrow checker's conditional-return limitation (one hash probe instead of two).
    let found = match unsafe { (*kv).lookup(key, now, touch) } {
        Lookup::Found(v) => Some(v),
        Lookup::Missing => None,
        Lookup::Expired => {
            if deletes_expired(srv) {
                delete_expired_key(srv, db, key);
            }
            None
        }
    };
    if f.count {
        if found.is_some() {
            srv.stats.keyspace_hits += 1;
        } else {
            srv.stats.keyspace_misses += 1;
            notify_keyspace_event(srv, notify::NOTIFY_KEY_MISS, "keymiss", key, db);
        }
    }
    found
}

/// Looks `key` up for reading: applies lazy expiry, counts a hit or a miss, updates the
/// LRU clock unless the client asked NO-TOUCH.
#[inline]
pub fn lookup_key_read<'a>(srv: &'a mut Server, db: usize, key: &[u8]) -> Option<ValueRef<'a>> {
    lookup_key(
        srv,
        db,
        key,
        LookupFlags {
            touch: true,
            count: true,
        },
    )
}

/// Looks `key` up for reading without touching its access time, still counting a hit or
/// a miss (upstream's `LOOKUP_NOTOUCH`: EXISTS, TYPE, the TTL family, OBJECT).
pub fn lookup_key_read_no_touch<'a>(
    srv: &'a mut Server,
    db: usize,
    key: &[u8],
) -> Option<ValueRef<'a>> {
    lookup_key(
        srv,
        db,
        key,
        LookupFlags {
            touch: false,
            count: true,
        },
    )
}

/// Looks `key` up for writing: applies lazy expiry and touches the key's LRU/LFU field
/// (as upstream's lookupKeyWrite), no hit/miss accounting.
#[inline]
pub fn lookup_key_write<'a>(srv: &'a mut Server, db: usize, key: &[u8]) -> Option<ValueRef<'a>> {
    lookup_key(
        srv,
        db,
        key,
        LookupFlags {
            touch: true,
            count: false,
        },
    )
}

/// The touch of an access to a key (upstream's lookupKey): none while a fork child
/// shares our pages (copy-on-write) or when the running client asked CLIENT NO-TOUCH.
#[inline]
fn access_touch(srv: &Server) -> Option<crate::evict::Touch> {
    if srv.current_client_no_touch || srv.rdb.child_pid.is_some() {
        None
    } else {
        Some(crate::evict::touch(srv))
    }
}

/// Looks `key` up without side effects other than lazy expiry.
pub fn lookup_key_no_touch<'a>(srv: &'a mut Server, db: usize, key: &[u8]) -> Option<ValueRef<'a>> {
    lookup_key(
        srv,
        db,
        key,
        LookupFlags {
            touch: false,
            count: false,
        },
    )
}

/// Looks `key` up for writing and returns its value mutably (collection commands
/// modify their value in place): lazy expiry, no hit/miss accounting. The caller signals
/// the change ([`signal_modified_key`]), counts it in `srv.dirty`, and deletes the key
/// with [`db_delete`] if the collection became empty.
#[inline]
pub fn lookup_key_write_mut<'a>(
    srv: &'a mut Server,
    db: usize,
    key: &[u8],
) -> Option<&'a mut Value> {
    let now = expiry_clock(srv);
    let touch = access_touch(srv);
    let kv: *mut KvStore = &mut srv.dbs[db].kv;
    // SAFETY: as in `lookup_key`: the found path returns the borrow without touching
    // anything else; the expired path drops the lookup result before deleting.
    match unsafe { (*kv).lookup_mut(key, now, touch) } {
        LookupMut::Found(v) => Some(v),
        LookupMut::Missing => None,
        LookupMut::Expired => {
            if deletes_expired(srv) {
                delete_expired_key(srv, db, key);
            }
            None
        }
    }
}

/// Adds a new key (upstream's `dbAdd`; the key must not exist, e.g. a collection
/// created by LPUSH/SADD/HSET/ZADD). Wakes clients blocked on the key. The caller signals
/// the modification and counts it in `dirty`, as for any write.
pub fn db_add(srv: &mut Server, db: usize, key: &[u8], val: Value) {
    track_volatile_hash(srv, db, key, &val);
    let touch = crate::evict::touch(srv);
    let t = val.obj_type();
    srv.dbs[db].kv.insert_touch(key, val, false, touch);
    notify_keyspace_event(srv, notify::NOTIFY_NEW, "new", key, db);
    crate::blocked::signal_key_as_ready(srv, db, key, t);
}

/// Stores `val` at `key` (upstream's `setKey`): signals WATCHers. With `keep_ttl` an
/// existing TTL survives, else it is removed. A list or sorted set stored this way (SORT
/// STORE, ZUNIONSTORE, RENAME...) wakes clients blocked on the key.
pub fn set_key(srv: &mut Server, db: usize, key: &[u8], val: Value, keep_ttl: bool) {
    track_volatile_hash(srv, db, key, &val);
    let touch = crate::evict::touch(srv);
    let t = val.obj_type();
    let is_new = srv.config.notify_keyspace_events & notify::NOTIFY_NEW != 0
        && srv.dbs[db].kv.get(key).is_none();
    // The key table settles the string encoding in the same probe as the insert.
    let (_, old) = srv.dbs[db].kv.insert_touch(key, val, keep_ttl, touch);
    if let Some(old) = old {
        // An overwritten value is a deletion by the server (upstream's dbSetValue).
        crate::lazyfree::free_value(old, srv.config.lazyfree_lazy_server_del);
    }
    if is_new {
        notify_keyspace_event(srv, notify::NOTIFY_NEW, "new", key, db);
    }
    signal_modified_key(srv, db, key);
    if t != ObjType::String {
        crate::blocked::signal_key_as_ready(srv, db, key, t);
    }
}

/// [`set_key`] of a string given as its bytes (SET, MSET, GETSET...), with
/// `Value::from_vec`'s encoding; with `expire_ms` the key gets that absolute expiry (SET ... EX), the encoding
/// chosen knowing the key will have a TTL. The store
/// copies a short string straight into the key's entry (`KvStore::insert_bytes_touch`),
/// without building a boxed `Value` first.
pub fn set_key_bytes(
    srv: &mut Server,
    db: usize,
    key: &[u8],
    val: Vec<u8>,
    keep_ttl: bool,
    expire_ms: Option<i64>,
) {
    let touch = crate::evict::touch(srv);
    let is_new = srv.config.notify_keyspace_events & notify::NOTIFY_NEW != 0
        && srv.dbs[db].kv.get(key).is_none();
    let (keep_ttl, ttl_follows) = match expire_ms {
        Some(_) => (false, true),
        None => (keep_ttl, false),
    };
    let (_, old) = srv.dbs[db]
        .kv
        .insert_bytes_touch(key, val, keep_ttl, ttl_follows, touch);
    if let Some(old) = old {
        // An overwritten value is a deletion by the server (upstream's dbSetValue).
        crate::lazyfree::free_value(old, srv.config.lazyfree_lazy_server_del);
    }
    if is_new {
        notify_keyspace_event(srv, notify::NOTIFY_NEW, "new", key, db);
    }
    if let Some(w) = expire_ms {
        srv.dbs[db].kv.set_expire(key, w);
    }
    signal_modified_key(srv, db, key);
}

/// A hash with fields that have a TTL (stored by RENAME, COPY, MOVE...) joins the active
/// field-expiry pass.
fn track_volatile_hash(srv: &mut Server, db: usize, key: &[u8], val: &Value) {
    if let Value::Hash(h) = val {
        if h.has_volatile() && !srv.dbs[db].volatile_hashes.contains(key) {
            srv.dbs[db].volatile_hashes.insert(key.to_vec());
        }
    }
}

/// Deletes `key`; returns true if it existed. Signals WATCHers. A big value is freed in
/// the background when `lazyfree-lazy-server-del` is set (see [`crate::lazyfree`]).
pub fn db_delete(srv: &mut Server, db: usize, key: &[u8]) -> bool {
    let lazy = srv.config.lazyfree_lazy_server_del;
    db_delete_lazy(srv, db, key, lazy)
}

/// [`db_delete`] choosing whether a big value is freed in the background (DEL follows
/// `lazyfree-lazy-user-del`, UNLINK always).
pub fn db_delete_lazy(srv: &mut Server, db: usize, key: &[u8], lazy: bool) -> bool {
    match srv.dbs[db].kv.remove(key) {
        Some(v) => {
            let t = v.obj_type();
            crate::lazyfree::free_value(v, lazy);
            signal_modified_key(srv, db, key);
            // Wakes XREADGROUP waiters (unblock_on_nokey), as upstream's dbGenericDelete.
            crate::blocked::signal_deleted_key_as_ready(srv, db, key, t);
            true
        }
        None => false,
    }
}

/// Every write to a key goes through here (upstream's `signalModifiedKey`).
#[inline]
pub fn signal_modified_key(srv: &mut Server, db: usize, key: &[u8]) {
    srv.touch_watched_key(db, key);
    if srv.tracking.active() {
        let modifier = srv.tracking.current_id;
        crate::tracking::invalidate_key(srv, key, true, modifier);
    }
}

/// Sets the absolute expiry of an existing key; signals WATCHers.
pub fn set_expire(srv: &mut Server, db: usize, key: &[u8], when_ms: i64) -> bool {
    let ok = srv.dbs[db].kv.set_expire(key, when_ms);
    if ok {
        signal_modified_key(srv, db, key);
    }
    ok
}

/// Empties one database (or all when `db` is None); returns the number of keys removed.
/// With `lazy` the old tables are freed in the background (FLUSHALL ASYNC).
pub fn empty_data(srv: &mut Server, db: Option<usize>, lazy: bool) -> usize {
    let mut removed = 0;
    for d in srv.dbs.iter_mut() {
        if db.is_none_or(|x| x == d.id) {
            removed += d.kv.len();
            crate::lazyfree::free_db(std::mem::take(&mut d.kv), lazy);
            d.avg_ttl = 0;
            d.volatile_hashes.clear();
        }
    }
    srv.touch_all_watched_keys_in_db(db);
    // Client-side caches are not per database: any flush invalidates everything.
    crate::tracking::invalidate_keys_on_flush(srv);
    removed
}

/// Which active expire cycle to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ExpireCycle {
    /// From before-sleep: at most [`ACTIVE_EXPIRE_CYCLE_FAST_DURATION_US`].
    Fast,
    /// From cron: up to [`ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC`]% of the cron period.
    Slow,
}

/// Keys sampled per database per loop, before the effort adjustment.
pub const ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP: usize = 20;
pub const ACTIVE_EXPIRE_CYCLE_FAST_DURATION_US: u64 = 1000;
pub const ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC: u64 = 25;
/// Stop sampling a db when fewer than this percent of sampled keys were expired.
pub const ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE: u64 = 10;

/// Upstream's adaptive active expire cycle: sample keys with a TTL in each db, delete the
/// expired ones, and keep going on a db while more than the acceptable percentage of the
/// sample was stale, within a time budget.
pub fn active_expire_cycle(srv: &mut Server, kind: ExpireCycle) {
    // A replica leaves expiry to its primary, which sends the DELs.
    if !srv.active_expire_enabled
        || crate::replication::replica::is_replica(srv)
        || crate::pause::expire_paused(srv)
    {
        return;
    }
    let effort = srv.config.active_expire_effort.clamp(1, 10) as usize - 1;
    let keys_per_loop =
        ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP + ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP / 4 * effort;
    let acceptable_stale = ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE as usize - effort;
    if kind == ExpireCycle::Fast {
        // As upstream: a fast cycle only runs when the last cycle ran out of time or the
        // stale ratio is above the acceptable one, and not more often than every two fast
        // durations; never when no db has keys with a TTL.
        if !srv.expire_timelimit_exit
            && srv.stats.expired_stale_perc < acceptable_stale as f64 / 100.0
        {
            return;
        }
        let now_us = crate::util::ustime();
        if now_us < srv.expire_last_fast_cycle_us + 2 * ACTIVE_EXPIRE_CYCLE_FAST_DURATION_US as i64
        {
            return;
        }
        if srv
            .dbs
            .iter()
            .all(|d| d.kv.expires_len() == 0 && d.volatile_hashes.is_empty())
        {
            return;
        }
        srv.expire_last_fast_cycle_us = now_us;
    }
    srv.expire_timelimit_exit = false;
    let budget_us = match kind {
        ExpireCycle::Fast => {
            ACTIVE_EXPIRE_CYCLE_FAST_DURATION_US
                + ACTIVE_EXPIRE_CYCLE_FAST_DURATION_US / 4 * effort as u64
        }
        ExpireCycle::Slow => {
            (ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC + 2 * effort as u64) * 1_000_000
                / srv.hz.max(1) as u64
                / 100
        }
    };
    let start = std::time::Instant::now();
    srv.update_cached_time();
    let dbs = srv.dbs.len();
    let mut sampled_total = 0usize;
    let mut expired_total = 0usize;
    for _ in 0..dbs {
        let db = srv.active_expire_db % dbs;
        srv.active_expire_db = (srv.active_expire_db + 1) % dbs;
        // Hash fields with a TTL (Valkey 9): reclaim expired fields of a batch of hashes.
        crate::commands::hash::active_expire_fields(
            srv,
            db,
            keys_per_loop,
            start + std::time::Duration::from_micros(budget_us),
        );
        loop {
            if srv.dbs[db].kv.expires_len() == 0 {
                break;
            }
            let sample = srv.dbs[db].kv.sample_expires(keys_per_loop);
            if sample.is_empty() {
                break;
            }
            let mut expired = 0;
            let mut ttl_sum = 0i64;
            let mut ttl_samples = 0i64;
            for (key, when) in &sample {
                if *when <= srv.mstime {
                    delete_expired_key(srv, db, key);
                    expired += 1;
                } else {
                    ttl_sum += when - srv.mstime;
                    ttl_samples += 1;
                }
            }
            if ttl_samples > 0 {
                let avg = ttl_sum / ttl_samples;
                let d = &mut srv.dbs[db];
                d.avg_ttl = if d.avg_ttl == 0 {
                    avg
                } else {
                    (d.avg_ttl / 50) * 49 + avg / 50
                };
            }
            sampled_total += sample.len();
            expired_total += expired;
            if start.elapsed().as_micros() as u64 > budget_us {
                srv.stats.expired_time_cap_reached_count += 1;
                srv.expire_timelimit_exit = true;
                return;
            }
            if expired * 100 <= sample.len() * acceptable_stale {
                break;
            }
        }
    }
    if sampled_total > 0 {
        let perc = expired_total as f64 / sampled_total as f64;
        srv.stats.expired_stale_perc = perc * 0.05 + srv.stats.expired_stale_perc * 0.95;
    }
}

/// serverCron's database work: the slow expire cycle and incremental rehashing.
pub fn databases_cron(srv: &mut Server) {
    active_expire_cycle(srv, ExpireCycle::Slow);
    // Rehash for at most ~1ms per cron call across dbs, as `databasesCron`.
    let start = std::time::Instant::now();
    for d in srv.dbs.iter_mut() {
        while d.kv.rehash_step(100) {
            if start.elapsed().as_micros() > 1000 {
                return;
            }
        }
    }
}
