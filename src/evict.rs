//! The `maxmemory` directive, as upstream's `evict.c`: the per-key LRU clock and LFU
//! counter, the eviction pool of the approximated LRU/LFU/TTL policies, and
//! [`perform_evictions`], which frees keys until the memory used (minus what is not
//! counted, see [`not_counted_memory`]) is back under `maxmemory`.
//!
//! # When eviction runs
//! - Before every command when `maxmemory` is set ([`oom_check`], from
//!   `commands::process_command`, in upstream's place in the gate): one bounded slice of
//!   evictions. If nothing can be freed (policy `noeviction`, or no evictable key left) a
//!   command flagged `denyoom`, and an EXEC with such a command queued, is refused with
//!   [`ERR_OOM`]. Inside MULTI, Valkey 9.1 queues the other commands (measured: GET and
//!   PING answer +QUEUED; older servers refused everything queued while out of memory).
//! - A slice lasts at most the time `maxmemory-eviction-tenacity` allows
//!   ([`time_limit_us`]: 500 us at the default of 10). When a slice runs out of time while
//!   memory is still over the limit, the eviction continues in a time event that runs one
//!   slice per loop turn ([`before_sleep`] installs it, since commands can not reach the
//!   event loop), so clients are served between slices: never one long stall. CONFIG SET
//!   maxmemory below the current usage starts that time event too.
//! - Nothing is evicted while loading a dataset, nor on a replica with
//!   `replica-ignore-maxmemory yes` (the default): a replica mirrors its primary, whose
//!   evictions arrive as DELs.
//!
//! # The per-key field
//! Every key entry has 24 bits of metadata (src/kvstore.rs, `meta` bits 0..24), the
//! `lru` field of upstream's objects:
//!
//! ```text
//! LRU policies and noeviction/random/ttl:   24 bits: LRU clock (seconds, wraps at 2^24)
//! LFU policies:                              16 bits: last decrement time (minutes, wraps)
//!                                            8 bits: logarithmic access counter
//! ```
//!
//! A key read or written through the keyspace API is "touched" ([`Touch::access`]): the
//! clock is set, or the LFU counter is decayed by the minutes elapsed (one per
//! `lfu-decay-time`) and then incremented with probability `1 / ((c - 5) *
//! lfu-log-factor + 1)`. New keys start at the clock, or at counter `LFU_INIT_VAL` (5)
//! so that they are not evicted before they had a chance to be read. No touching while a
//! fork child is alive (copy-on-write), for CLIENT NO-TOUCH clients (except TOUCH), nor
//! by lookups upstream flags NOTOUCH (OBJECT, TYPE, EXISTS, TTL...).
//!
//! # The eviction pool
//! Upstream's approximation: each round samples `maxmemory-samples` keys per database
//! (keys with a TTL only, for the volatile policies) and merges them into a pool of the
//! [`EVPOOL_SIZE`] best candidates seen so far, kept sorted by a score ("idle": idle
//! ms for LRU, 255 minus the decayed counter for LFU, u64::MAX minus the expire time for
//! volatile-ttl). The best candidate that still exists is evicted; the others stay in the
//! pool for the next round, which is what makes the approximation good with few samples.

use std::time::Instant;

use crate::server::{EventLoop, Server};

/// Candidates kept across eviction rounds (`EVPOOL_SIZE`).
pub const EVPOOL_SIZE: usize = 16;
/// The LFU counter of a new key (`LFU_INIT_VAL`).
pub const LFU_INIT_VAL: u32 = 5;
/// Keys longer than this are not kept in a pool entry's reusable buffer
/// (`EVPOOL_CACHED_SDS_SIZE`).
const EVPOOL_CACHED_KEY_SIZE: usize = 255;
/// Checks of the time limit (and of lazily freed memory) happen every this many keys.
const EVICT_CHECK_EVERY: u64 = 16;

/// The error of a `denyoom` command that eviction could not make room for.
pub const ERR_OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// `maxmemory-policy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    NoEviction,
}

impl Policy {
    pub fn from_name(name: &str) -> Policy {
        match name {
            "volatile-lru" => Policy::VolatileLru,
            "volatile-lfu" => Policy::VolatileLfu,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            "allkeys-lru" => Policy::AllkeysLru,
            "allkeys-lfu" => Policy::AllkeysLfu,
            "allkeys-random" => Policy::AllkeysRandom,
            _ => Policy::NoEviction,
        }
    }

    /// `MAXMEMORY_FLAG_LFU`: the per-key field holds LFU data.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::VolatileLfu | Policy::AllkeysLfu)
    }

    /// `MAXMEMORY_FLAG_LRU`.
    pub fn is_lru(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::AllkeysLru)
    }

    /// `MAXMEMORY_FLAG_ALLKEYS`: every key is a candidate, not only keys with a TTL.
    pub fn all_keys(self) -> bool {
        matches!(
            self,
            Policy::AllkeysLru | Policy::AllkeysLfu | Policy::AllkeysRandom
        )
    }

    /// Whether candidates go through the eviction pool (every policy but the random ones).
    fn uses_pool(self) -> bool {
        self.is_lru() || self.is_lfu() || self == Policy::VolatileTtl
    }
}

/// The outcome of [`perform_evictions`] (`EVICT_OK`, `EVICT_RUNNING`, `EVICT_FAIL`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EvictResult {
    /// Under the limit, or eviction is not allowed now.
    Ok,
    /// Over the limit; the time event keeps evicting.
    Running,
    /// Over the limit and nothing can be evicted: deny commands that use memory.
    Fail,
}

/// One candidate of the pool; `live` false is upstream's NULL key.
#[derive(Default)]
struct PoolEntry {
    idle: u64,
    key: Vec<u8>,
    db: usize,
    live: bool,
}

/// Eviction state kept in the server (`srv.evict`).
pub struct EvictState {
    /// `maxmemory-policy`, parsed once per configuration change.
    pub policy: Policy,
    /// `maxmemory-eviction-tenacity`.
    tenacity: i64,
    /// `replica-ignore-maxmemory`.
    replica_ignore_maxmemory: bool,
    /// The pool, sorted by ascending `idle` over its live prefix.
    pool: Vec<PoolEntry>,
    /// Where the random policies look next (upstream's static `next_db`).
    next_db: usize,
    /// `isEvictionProcRunning`: eviction continues in a time event.
    proc_running: bool,
    /// The id of that time event once [`before_sleep`] created it.
    timer: Option<u64>,
    /// The key being evicted (kept to reuse its buffer).
    scratch: Vec<u8>,
}

impl EvictState {
    pub fn new(config: &crate::config::Config) -> EvictState {
        let mut s = EvictState {
            policy: Policy::NoEviction,
            tenacity: 10,
            replica_ignore_maxmemory: true,
            pool: (0..EVPOOL_SIZE)
                .map(|_| PoolEntry {
                    key: Vec::with_capacity(EVPOOL_CACHED_KEY_SIZE),
                    ..Default::default()
                })
                .collect(),
            next_db: 0,
            proc_running: false,
            timer: None,
            scratch: Vec::new(),
        };
        s.configure(config);
        s
    }

    fn configure(&mut self, config: &crate::config::Config) {
        self.policy = Policy::from_name(&config.maxmemory_policy);
        self.tenacity = config
            .get("maxmemory-eviction-tenacity")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        self.replica_ignore_maxmemory =
            config.get("replica-ignore-maxmemory").as_deref() != Some("no");
    }
}

/// Refreshes the cached configuration (startup and CONFIG SET).
pub fn apply_config(srv: &mut Server) {
    let Server { evict, config, .. } = srv;
    evict.configure(config);
}

// ---------------------------------------------------------------------------------------
// LRU clock and LFU counter

/// The LFU clock: unix minutes, 16 bits (`LFUGetTimeInMinutes`).
#[inline]
pub fn lfu_time_minutes(unixtime: i64) -> u32 {
    ((unixtime / 60) & 65535) as u32
}

/// Minutes since `ldt`, assuming the 16-bit clock wrapped at most once
/// (`LFUTimeElapsed`).
#[inline]
fn lfu_time_elapsed(ldt: u32, now: u32) -> u32 {
    if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    }
}

/// The counter of LFU data `data` after the decay due at minute `now`: one per
/// `decay_time` minutes elapsed (`LFUDecrAndReturn`). The field itself is not changed.
#[inline]
pub fn lfu_decr_and_return(data: u32, now: u32, decay_time: u32) -> u32 {
    let ldt = (data >> 8) & 0xffff;
    let counter = data & 255;
    // A decay time of 0 means no decay.
    let periods = lfu_time_elapsed(ldt, now)
        .checked_div(decay_time)
        .unwrap_or(0);
    counter.saturating_sub(periods)
}

/// Increments a logarithmic counter with probability `1 / ((counter - LFU_INIT_VAL) *
/// log_factor + 1)`, saturating at 255 (`LFULogIncr`).
#[inline]
pub fn lfu_log_incr(counter: u32, log_factor: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let r = (crate::util::random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let p = 1.0 / (base * log_factor as f64 + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// How a key's 24-bit field changes when the key is created, accessed or overwritten:
/// the clocks of the moment and the LFU parameters.
#[derive(Clone, Copy, Debug)]
pub struct Touch {
    lfu: bool,
    /// The LRU clock.
    clock: u32,
    /// The LFU minutes clock.
    minutes: u32,
    decay_time: u32,
    log_factor: u32,
}

impl Touch {
    /// The field of a new key (`initObjectLRUOrLFU`).
    #[inline]
    pub fn init(self) -> u32 {
        if self.lfu {
            (self.minutes << 8) | LFU_INIT_VAL
        } else {
            self.clock
        }
    }

    /// The field after an access (`updateLFU`, or the LRU clock).
    #[inline]
    pub fn access(self, old: u32) -> u32 {
        if self.lfu {
            let c = lfu_decr_and_return(old, self.minutes, self.decay_time);
            (self.minutes << 8) | lfu_log_incr(c, self.log_factor)
        } else {
            self.clock
        }
    }

    /// The field when a key's value is replaced. Upstream's `dbSetValue` keeps the old
    /// field, which the lookup that found the key (lookupKeyWrite) has just touched: the
    /// LFU counter is kept (our writers looked the key up the same way); the LRU clock
    /// is set, which is what the touch did.
    #[inline]
    pub fn overwrite(self, old: u32) -> u32 {
        if self.lfu {
            old
        } else {
            self.clock
        }
    }
}

/// The [`Touch`] of the current moment and configuration.
#[inline]
pub fn touch(srv: &Server) -> Touch {
    Touch {
        lfu: srv.evict.policy.is_lfu(),
        clock: srv.lruclock,
        minutes: lfu_time_minutes(srv.unixtime),
        decay_time: srv.config.lfu_decay_time.max(0) as u32,
        log_factor: srv.config.lfu_log_factor.max(0) as u32,
    }
}

/// The decayed LFU counter of a key's field now (OBJECT FREQ, DEBUG OBJECT).
pub fn lfu_freq(srv: &Server, data: u32) -> u32 {
    lfu_decr_and_return(
        data,
        lfu_time_minutes(srv.unixtime),
        srv.config.lfu_decay_time.max(0) as u32,
    )
}

// ---------------------------------------------------------------------------------------
// Memory state

/// Memory that does not count against `maxmemory` (`freeMemoryGetNotCountedMemory`): the
/// replicas' output buffers and the AOF buffer. Counting them would make a feedback loop:
/// each eviction queues a DEL into them, which would require evicting more. INFO's
/// `mem_not_counted_for_evict` is this figure.
///
/// Upstream shares one buffer between the backlog and the replicas and leaves out only
/// what exceeds the backlog; here each replica has its own output buffer and the backlog
/// is a ring of its own, so the replicas' buffers are the part left out. The backlog is
/// counted, as upstream: it grows with the history (src/replication/primary.rs) and stops
/// at `repl-backlog-size`.
pub fn not_counted_memory(srv: &Server) -> usize {
    // Read live: the per-type client totals of src/memory.rs are refreshed when a client
    // is served, and a replica's buffer grows with every write while it is not (counting
    // the stale figure evicted everything under a flood and then refused writes).
    let mut overhead = 0;
    for &(slot, id) in &srv.repl.primary.replicas {
        if let Some(Some(c)) = srv.clients.get(slot) {
            if c.id == id {
                overhead += crate::zmalloc::vec_usable(&c.reply.buf);
            }
        }
    }
    if srv.aof.state != crate::aof::AofState::Off {
        overhead += crate::zmalloc::vec_usable(&srv.aof.buf);
    }
    overhead
}

/// The bytes to free to be back under `maxmemory`, or None when under it
/// (`getMaxmemoryState`).
fn bytes_to_free(srv: &Server) -> Option<usize> {
    let max = srv.config.maxmemory as usize;
    if max == 0 {
        return None;
    }
    let reported = crate::zmalloc::used_memory();
    if reported <= max {
        return None;
    }
    let used = reported.saturating_sub(not_counted_memory(srv));
    if used <= max {
        None
    } else {
        Some(used - max)
    }
}

/// Whether evicting is allowed now (`isSafeToPerformEvictions`).
fn safe_to_evict(srv: &Server) -> bool {
    // Nor while CLIENT PAUSE holds evictions (upstream's PAUSE_ACTION_EVICT).
    if srv.rdb.loading || crate::pause::expire_paused(srv) {
        return false;
    }
    !(srv.evict.replica_ignore_maxmemory && crate::replication::replica::is_replica(srv))
}

/// The time one eviction slice may take, from `maxmemory-eviction-tenacity`
/// (`evictionTimeLimitUs`): 50 us per step up to 10, then 15% more per step, no limit at
/// 100.
pub fn time_limit_us(tenacity: i64) -> u64 {
    let t = tenacity.clamp(0, 100);
    if t <= 10 {
        50 * t as u64
    } else if t < 100 {
        (500.0 * 1.15f64.powf(t as f64 - 10.0)) as u64
    } else {
        u64::MAX
    }
}

// ---------------------------------------------------------------------------------------
// The pool

/// Inserts a candidate into the pool, sorted by ascending `idle`; a candidate no better
/// than every entry of a full pool is dropped, and a full pool drops its worst entry
/// (`evictionPoolPopulate`). Entries move with their buffers, so key bytes are copied
/// into a recycled allocation.
fn pool_insert(pool: &mut [PoolEntry], idle: u64, key: &[u8], db: usize) {
    let n = pool.len();
    let mut k = 0;
    while k < n && pool[k].live && pool[k].idle < idle {
        k += 1;
    }
    if k == 0 && pool[n - 1].live {
        return;
    }
    if k < n && !pool[k].live {
        // An empty slot: take it.
    } else if !pool[n - 1].live {
        // Room on the right: shift [k..] right by one, the empty last slot comes to k.
        pool[k..].rotate_right(1);
    } else {
        // Full: drop the worst (leftmost) entry, shifting [..k] left.
        k -= 1;
        pool[..=k].rotate_left(1);
    }
    let e = &mut pool[k];
    if key.len() > EVPOOL_CACHED_KEY_SIZE {
        e.key = key.to_vec();
    } else {
        if e.key.capacity() > EVPOOL_CACHED_KEY_SIZE {
            e.key = Vec::with_capacity(EVPOOL_CACHED_KEY_SIZE);
        }
        e.key.clear();
        e.key.extend_from_slice(key);
    }
    e.idle = idle;
    e.db = db;
    e.live = true;
}

/// Samples keys of db `db` into the pool; returns the number sampled.
fn pool_populate(srv: &mut Server, db: usize, samples: usize) -> usize {
    let policy = srv.evict.policy;
    let t = touch(srv);
    let Server { evict, dbs, .. } = srv;
    let pool = &mut evict.pool;
    dbs[db]
        .kv
        .sample_keys(samples, !policy.all_keys(), &mut |key, meta, expire| {
            let idle = if policy.is_lru() {
                crate::server::estimate_idle_time_ms(t.clock, meta)
            } else if policy.is_lfu() {
                255 - lfu_decr_and_return(meta, t.minutes, t.decay_time) as u64
            } else {
                // volatile-ttl: the sooner the expire, the better.
                u64::MAX - expire.unwrap_or(0).max(0) as u64
            };
            pool_insert(pool, idle, key, db);
        })
}

/// Picks the next key to evict into `out`; returns its db, or None when no key can be
/// evicted under the policy.
fn select_key(srv: &mut Server, out: &mut Vec<u8>) -> Option<usize> {
    let policy = srv.evict.policy;
    let all = policy.all_keys();
    let ndb = srv.dbs.len();
    if policy.uses_pool() {
        let samples = (srv.config.maxmemory_samples as usize).max(1);
        loop {
            let mut total_keys = 0;
            for db in 0..ndb {
                let kv = &srv.dbs[db].kv;
                let keys = if all { kv.len() } else { kv.expires_len() };
                if keys == 0 {
                    continue;
                }
                total_keys += keys;
                pool_populate(srv, db, samples);
            }
            if total_keys == 0 {
                return None;
            }
            // From the best candidate down; entries whose key is gone are ghosts.
            let Server { evict, dbs, .. } = srv;
            for e in evict.pool.iter_mut().rev() {
                if !e.live {
                    continue;
                }
                e.live = false;
                e.idle = 0;
                let kv = &dbs[e.db].kv;
                let exists = if all {
                    kv.get(&e.key).is_some()
                } else {
                    kv.get_expire(&e.key).is_some()
                };
                if exists {
                    out.clear();
                    out.extend_from_slice(&e.key);
                    return Some(e.db);
                }
            }
        }
    }
    // The random policies: one random key, visiting the dbs in turn.
    for _ in 0..ndb {
        srv.evict.next_db = srv.evict.next_db.wrapping_add(1);
        let db = srv.evict.next_db % ndb;
        if srv.dbs[db].kv.random_key_into(!all, out) {
            return Some(db);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Eviction

/// Evicts `key` of `db`: deletes it (in the background when `lazyfree-lazy-eviction`
/// and the value is big), signals WATCHers, fires the `evicted` keyspace event and
/// propagates DEL (or UNLINK) as one execution unit. Returns the bytes the deletion
/// freed in this thread (may be negative when a table resize allocates).
fn evict_key(srv: &mut Server, db: usize, key: &[u8]) -> i64 {
    let lazy = srv.config.lazyfree_lazy_eviction;
    crate::propagate::enter_unit(srv);
    let before = crate::zmalloc::used_memory() as i64;
    let t0 = (srv.config.latency_monitor_threshold > 0).then(Instant::now);
    crate::db::db_delete_lazy(srv, db, key, lazy);
    if let Some(t0) = t0 {
        add_latency_sample(srv, "eviction-del", t0);
    }
    let freed = before - crate::zmalloc::used_memory() as i64;
    srv.stats.evictedkeys += 1;
    crate::notify::notify_keyspace_event(srv, crate::notify::NOTIFY_EVICTED, "evicted", key, db);
    crate::db::propagate_deletion(srv, db, key, lazy);
    crate::propagate::exit_unit(srv);
    freed
}

fn add_latency_sample(srv: &mut Server, event: &'static str, start: Instant) {
    let threshold = srv.config.latency_monitor_threshold;
    if threshold > 0 {
        let ms = start.elapsed().as_millis() as u64;
        if ms >= threshold as u64 {
            srv.latency
                .add_sample(event, ms, crate::util::mstime() / 1000);
        }
    }
}

/// Brings memory back under `maxmemory` by evicting keys, for at most one time slice
/// (`performEvictions`). Called before commands; see the module documentation.
pub fn perform_evictions(srv: &mut Server) -> EvictResult {
    if !safe_to_evict(srv) {
        // Not an eviction at all: no metrics either.
        return EvictResult::Ok;
    }
    let result = match bytes_to_free(srv) {
        None => EvictResult::Ok,
        Some(_) if srv.evict.policy == Policy::NoEviction => EvictResult::Fail,
        Some(to_free) => evict_slice(srv, to_free),
    };
    // total/current_eviction_exceeded_time: how long memory stayed over the limit.
    match result {
        EvictResult::Running | EvictResult::Fail => {
            if srv.stats.eviction_exceeded_since.is_none() {
                srv.stats.eviction_exceeded_since = Some(Instant::now());
            }
        }
        EvictResult::Ok => {
            if let Some(since) = srv.stats.eviction_exceeded_since.take() {
                srv.stats.total_eviction_exceeded_us += since.elapsed().as_micros() as u64;
            }
        }
    }
    result
}

fn evict_slice(srv: &mut Server, to_free: usize) -> EvictResult {
    let limit_us = time_limit_us(srv.evict.tenacity);
    let start = Instant::now();
    let lazy = srv.config.lazyfree_lazy_eviction;
    let mut freed: i64 = 0;
    let mut keys_freed: u64 = 0;
    let mut key = std::mem::take(&mut srv.evict.scratch);
    let mut cant_free = false;
    while freed < to_free as i64 {
        let Some(db) = select_key(srv, &mut key) else {
            cant_free = true;
            break;
        };
        freed += evict_key(srv, db, &key);
        keys_freed += 1;
        if keys_freed.is_multiple_of(EVICT_CHECK_EVERY) {
            // Values freed by the lazyfree thread do not show in `freed`: look at the
            // real figure from time to time.
            if lazy && bytes_to_free(srv).is_none() {
                break;
            }
            if start.elapsed().as_micros() as u64 > limit_us {
                // Out of time: the time event goes on from here.
                start_eviction_time_proc(srv);
                break;
            }
        }
    }
    let mut result = if cant_free {
        EvictResult::Fail
    } else if srv.evict.proc_running {
        EvictResult::Running
    } else {
        EvictResult::Ok
    };
    if key.capacity() <= 4096 {
        srv.evict.scratch = key;
    }
    if result == EvictResult::Fail {
        // Nothing left to evict; values being freed in the background may still bring
        // memory down: wait for them a little, within the slice.
        let t0 = Instant::now();
        while crate::lazyfree::pending_objects() > 0
            && (start.elapsed().as_micros() as u64) < limit_us
        {
            if bytes_to_free(srv).is_none() {
                result = EvictResult::Ok;
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(limit_us.min(1000)));
        }
        add_latency_sample(srv, "eviction-lazyfree", t0);
    }
    add_latency_sample(srv, "eviction-cycle", start);
    result
}

/// Continues eviction in a time event (`startEvictionTimeProc`); [`before_sleep`]
/// creates it.
pub fn start_eviction_time_proc(srv: &mut Server) {
    srv.evict.proc_running = true;
}

/// The eviction time event: one slice per loop turn until memory is under the limit or
/// nothing is left to evict (`evictionTimeProc`).
fn eviction_time_proc(_el: &mut EventLoop, srv: &mut Server, _id: u64) -> i64 {
    srv.update_cached_time();
    if perform_evictions(srv) == EvictResult::Running {
        return 0;
    }
    srv.evict.proc_running = false;
    srv.evict.timer = None;
    ae::NOMORE
}

/// Before-sleep: installs the eviction time event when a slice asked for it.
pub fn before_sleep(el: &mut EventLoop, srv: &mut Server) {
    if srv.evict.proc_running && srv.evict.timer.is_none() {
        srv.evict.timer = Some(el.create_time_event(0, eviction_time_proc));
    }
}

/// The maxmemory step of the command gate: runs an eviction slice and tells whether the
/// command must be refused with [`ERR_OOM`]. `denyoom` is the command's flag (or, for
/// EXEC, whether a queued command has it).
pub fn oom_check(srv: &mut Server, denyoom: bool) -> bool {
    if srv.config.maxmemory == 0 {
        return false;
    }
    let out_of_memory = perform_evictions(srv) == EvictResult::Fail;
    out_of_memory && denyoom
}

/// How long memory has been over the limit, in us (INFO's
/// current_eviction_exceeded_time, and part of total_eviction_exceeded_time).
pub fn current_exceeded_us(srv: &Server) -> u64 {
    srv.stats
        .eviction_exceeded_since
        .map(|s| s.elapsed().as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Vec<PoolEntry> {
        (0..EVPOOL_SIZE).map(|_| PoolEntry::default()).collect()
    }

    fn live(p: &[PoolEntry]) -> Vec<u64> {
        p.iter().take_while(|e| e.live).map(|e| e.idle).collect()
    }

    #[test]
    fn pool_keeps_the_best_sorted() {
        let mut p = pool();
        for i in [5u64, 1, 9, 3, 7] {
            pool_insert(&mut p, i, format!("k{i}").as_bytes(), 0);
        }
        assert_eq!(live(&p), vec![1, 3, 5, 7, 9]);
        for i in 100..130u64 {
            pool_insert(&mut p, i, b"x", 0);
        }
        // Full: the 16 highest scores remain, ascending.
        assert_eq!(live(&p), (114..130).collect::<Vec<_>>());
        // Worse than everything in a full pool: dropped.
        pool_insert(&mut p, 2, b"y", 0);
        assert_eq!(live(&p)[0], 114);
        // Better than the worst: the worst goes.
        pool_insert(&mut p, 120, b"z", 1);
        assert_eq!(live(&p)[0], 115);
        assert_eq!(live(&p).len(), EVPOOL_SIZE);
        let z = p.iter().find(|e| e.key == b"z").unwrap();
        assert_eq!((z.idle, z.db), (120, 1));
        // Long keys are copied, short ones go to the recycled buffers.
        let long = vec![b'l'; 1000];
        pool_insert(&mut p, 1000, &long, 0);
        assert_eq!(p[EVPOOL_SIZE - 1].key, long);
    }

    #[test]
    fn pool_after_removal_from_the_right() {
        let mut p = pool();
        for i in 0..EVPOOL_SIZE as u64 {
            pool_insert(&mut p, i * 10, b"k", 0);
        }
        // Evict the best two, as select_key does.
        p[EVPOOL_SIZE - 1].live = false;
        p[EVPOOL_SIZE - 2].live = false;
        pool_insert(&mut p, 55, b"m", 0);
        let l = live(&p);
        assert_eq!(l.len(), EVPOOL_SIZE - 1);
        assert!(l.windows(2).all(|w| w[0] <= w[1]));
        assert!(l.contains(&55));
    }

    #[test]
    fn lfu_counter() {
        // Decay: one per decay_time minutes elapsed, never below 0, none with 0.
        let now = 1000;
        assert_eq!(lfu_decr_and_return((now << 8) | 10, now, 1), 10);
        assert_eq!(lfu_decr_and_return(((now - 3) << 8) | 10, now, 1), 7);
        assert_eq!(lfu_decr_and_return(((now - 3) << 8) | 2, now, 1), 0);
        assert_eq!(lfu_decr_and_return(((now - 30) << 8) | 10, now, 10), 7);
        assert_eq!(lfu_decr_and_return(((now - 300) << 8) | 10, now, 0), 10);
        // The 16-bit clock wraps.
        assert_eq!(lfu_decr_and_return((65534 << 8) | 10, 2, 1), 7);
        // Below LFU_INIT_VAL the increment is certain; at 255 it saturates.
        for c in 0..=LFU_INIT_VAL {
            assert_eq!(lfu_log_incr(c, 10), c + 1);
        }
        assert_eq!(lfu_log_incr(255, 0), 255);
        // Far above, with the default factor, it is rare: 1 / (100 * 10 + 1).
        let n = (0..10_000).filter(|_| lfu_log_incr(105, 10) == 106).count();
        assert!(n < 40, "{n}");
    }

    #[test]
    fn touch_fields() {
        let t = Touch {
            lfu: false,
            clock: 1234,
            minutes: 77,
            decay_time: 1,
            log_factor: 10,
        };
        assert_eq!(t.init(), 1234);
        assert_eq!(t.access(5), 1234);
        assert_eq!(t.overwrite(5), 1234);
        let t = Touch { lfu: true, ..t };
        assert_eq!(t.init(), (77 << 8) | LFU_INIT_VAL);
        assert_eq!(t.access((77 << 8) | 1), (77 << 8) | 2);
        assert_eq!(t.overwrite((70 << 8) | 9), (70 << 8) | 9);
    }

    #[test]
    fn tenacity_time_limits() {
        assert_eq!(time_limit_us(0), 0);
        assert_eq!(time_limit_us(10), 500);
        assert_eq!(time_limit_us(11), 575);
        assert!(time_limit_us(99) > 100_000_000);
        assert_eq!(time_limit_us(100), u64::MAX);
    }

    #[test]
    fn policies() {
        for (n, all, lru, lfu) in [
            ("allkeys-lru", true, true, false),
            ("volatile-lfu", false, false, true),
            ("volatile-ttl", false, false, false),
            ("allkeys-random", true, false, false),
            ("noeviction", false, false, false),
        ] {
            let p = Policy::from_name(n);
            assert_eq!(
                (p.all_keys(), p.is_lru(), p.is_lfu()),
                (all, lru, lfu),
                "{n}"
            );
        }
        assert!(Policy::VolatileTtl.uses_pool());
        assert!(!Policy::VolatileRandom.uses_pool());
    }
}
