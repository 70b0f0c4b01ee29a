//! Blocking operations (upstream's `blocked.c` and the client timeout table of
//! `timeout.c`): clients blocked on keys by BLPOP, BLMOVE, BZPOPMIN... and served
//! first-come first-served when the keys get data.
//!
//! # Design (Valkey 7+)
//! A blocking command that finds no data calls [`block_for_keys`]: the client keeps its
//! argv, is flagged BLOCKED and queued, per `(db, key)`, in `Blocked::blocking_keys` (FIFO
//! by a global sequence number). Its further input is read but not run.
//!
//! Writes that give a key data of a blocking type call [`signal_key_as_ready`], which only
//! queues the key in `ready_keys` if someone waits on it. After every top-level command
//! (networking, after EXEC as a whole) and in before-sleep,
//! [`handle_clients_blocked_on_keys`] walks the ready keys; for each waiter, in order,
//! whose key now holds the type it waits for, the client is unblocked and its whole
//! command runs again through the gate ([`crate::commands::process_command`]). It may
//! serve itself, block again (keeping its original timeout), or fail. Serving a BLMOVE
//! can make its destination ready: the loop runs until no ready key is left. Clients
//! unblocked this way get their pipelined input processed from before-sleep.
//!
//! Timeouts live in an ordered set of `(deadline, client id, slot)`; before-sleep replies
//! to expired clients as upstream's `replyToBlockedClientTimedOut` (a null array) and a
//! one-shot time event wakes the loop at the earliest deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::client::{flags as cflags, BlockState, Client};
use crate::object::ObjType;
use crate::server::{EventLoop, Server};

/// What a client blocks for (upstream's `BLOCKED_LIST`, `BLOCKED_ZSET`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    List,
    ZSet,
    // Streams arrive in a later issue; the variant keeps the API stable.
    #[allow(dead_code)]
    Stream,
}

impl BlockType {
    fn index(self) -> usize {
        match self {
            BlockType::List => 0,
            BlockType::ZSet => 1,
            BlockType::Stream => 2,
        }
    }

    /// The block type a value of type `t` satisfies, as `getBlockedTypeByType`.
    fn of(t: ObjType) -> Option<BlockType> {
        match t {
            ObjType::List => Some(BlockType::List),
            ObjType::ZSet => Some(BlockType::ZSet),
            ObjType::Stream => Some(BlockType::Stream),
            _ => None,
        }
    }
}

/// The clients waiting on one key.
#[derive(Default, Debug)]
pub struct KeyWaiters {
    /// Block sequence number -> (slot, client id), so iteration is FIFO and removal
    /// O(log n).
    pub clients: BTreeMap<u64, (usize, u64)>,
    /// How many of them want to be woken when the key is deleted (`unblock_on_nokey`).
    pub nokey: usize,
}

/// Server-wide blocking state (upstream's `db->blocking_keys`, `server.ready_keys`,
/// `server.clients_timeout_table`, `server.unblocked_clients` and counters).
#[derive(Default, Debug)]
pub struct Blocked {
    /// Per db: key -> waiters.
    pub blocking_keys: Vec<HashMap<Vec<u8>, KeyWaiters>>,
    /// Keys signalled as ready, in signal order, without duplicates.
    pub ready_keys: Vec<(usize, Vec<u8>)>,
    ready_set: HashSet<(usize, Vec<u8>)>,
    /// (deadline ms, client id, slot) of blocked clients with a timeout.
    pub timeouts: BTreeSet<(i64, u64, usize)>,
    /// Clients unblocked whose pending input must be processed (slot, id).
    pub unblocked: Vec<(usize, u64)>,
    /// Number of blocked clients, in total and per block type.
    pub blocked_clients: usize,
    by_type: [usize; 3],
    #[allow(dead_code)]
    next_seq: u64,
    in_handling: bool,
    /// The pending one-shot timer waking the loop for the earliest timeout: (id, when).
    timer: Option<(u64, i64)>,
}

impl Blocked {
    /// Number of keys with waiters (`total_blocking_keys`).
    pub fn total_blocking_keys(&self) -> usize {
        self.blocking_keys.iter().map(|m| m.len()).sum()
    }

    /// Number of keys with a waiter that wants key deletions
    /// (`total_blocking_keys_on_nokey`).
    pub fn total_blocking_keys_on_nokey(&self) -> usize {
        self.blocking_keys
            .iter()
            .map(|m| m.values().filter(|w| w.nokey > 0).count())
            .sum()
    }

    #[allow(dead_code)]
    fn db_map(&mut self, db: usize) -> &mut HashMap<Vec<u8>, KeyWaiters> {
        if self.blocking_keys.len() <= db {
            self.blocking_keys.resize_with(db + 1, HashMap::new);
        }
        &mut self.blocking_keys[db]
    }
}

/// Parses a blocking command's timeout argument (seconds, fractional allowed, 0 = block
/// forever) into an absolute unix time in ms (0 = no timeout), with upstream's errors
/// (`getTimeoutFromObjectOrReply` with seconds).
// Called by the blocking list and sorted set commands.
#[allow(dead_code)]
pub fn get_timeout(srv: &Server, arg: &[u8]) -> Result<i64, &'static str> {
    // Upstream reads the timeout with strtold (`getLongDoubleFromObject`): hex floats,
    // "inf", the extended exponent range. The value is then scaled to ms in f64, which
    // only differs from long double in the last ulp of the product.
    let Some(n) = crate::ld::parse(arg) else {
        return Err("ERR timeout is not a float or out of range");
    };
    let ms = match n {
        crate::ld::Num::Inf if arg.first() == Some(&b'-') => f64::NEG_INFINITY,
        crate::ld::Num::Inf => f64::INFINITY,
        crate::ld::Num::Finite(x) => {
            let ms = if x.m == 0 {
                0.0
            } else {
                // m * 2^e: overflows to inf, underflows to 0 (handled below).
                (x.m as f64) * 2f64.powi(x.e.clamp(-20_000, 20_000) as i32) * 1000.0
            };
            if ms == 0.0 && x.m != 0 && !x.neg {
                // A positive value too small for f64: ceil(tiny) is still 1 ms.
                1.0
            } else if x.neg {
                -ms
            } else {
                ms
            }
        }
    };
    if ms > i64::MAX as f64 {
        return Err("ERR timeout is out of range");
    }
    // `as` saturates (-inf becomes i64::MIN, still negative).
    let ms = ms.ceil() as i64;
    if ms < 0 {
        return Err("ERR timeout is negative");
    }
    if ms == 0 {
        return Ok(0);
    }
    ms.checked_add(srv.mstime)
        .ok_or("ERR timeout is out of range")
}

/// Whether the client may not block (inside MULTI/EXEC or a script): the command then
/// replies as if the timeout had expired.
// Called by the blocking list and sorted set commands.
#[allow(dead_code)]
pub fn blocking_denied(c: &Client) -> bool {
    c.has_flag(cflags::IN_EXEC | cflags::DENY_BLOCKING)
}

/// Blocks the running client on `keys` of its db until one of them gets data of `btype`
/// (or is deleted, with `unblock_on_nokey`), or `timeout_ms` (absolute, 0 = never)
/// passes. When a key is ready the client's command is executed again from the start.
/// A command that blocks again while being re-executed keeps its original timeout.
// Called by the blocking list and sorted set commands.
#[allow(dead_code)]
pub fn block_for_keys(
    srv: &mut Server,
    c: &mut Client,
    btype: BlockType,
    keys: &[Vec<u8>],
    timeout_ms: i64,
    unblock_on_nokey: bool,
) {
    let reexecuting = c.has_flag(cflags::REEXECUTING);
    let bs = c.bstate.get_or_insert_with(Default::default);
    if !reexecuting {
        bs.timeout = timeout_ms;
    }
    bs.btype = btype;
    bs.db = c.db;
    bs.unblock_on_nokey = unblock_on_nokey;
    let (slot, id, db) = (c.slot, c.id, c.db);
    let b = &mut srv.blocked;
    for key in keys {
        if bs.keys.iter().any(|(k, _)| k == key) {
            continue;
        }
        let seq = b.next_seq;
        b.next_seq += 1;
        let w = b.db_map(db).entry(key.clone()).or_default();
        w.clients.insert(seq, (slot, id));
        if unblock_on_nokey {
            w.nokey += 1;
        }
        bs.keys.push((key.clone(), seq));
    }
    c.flags |= cflags::BLOCKED | cflags::PENDING_COMMAND;
    b.blocked_clients += 1;
    b.by_type[btype.index()] += 1;
    if bs.timeout != 0 {
        b.timeouts.insert((bs.timeout, id, slot));
    }
}

/// Called when `key` is created or replaced with a value of type `t`: if clients are
/// blocked on it, queues it to serve them after the current command.
#[inline]
pub fn signal_key_as_ready(srv: &mut Server, db: usize, key: &[u8], t: ObjType) {
    signal_ready_logic(srv, db, key, t, false);
}

/// Called when `key` (of type `t`) is deleted or overwritten with another type: wakes the
/// clients that asked for it (`unblock_on_nokey`, as XREADGROUP does).
#[allow(dead_code)]
#[inline]
pub fn signal_deleted_key_as_ready(srv: &mut Server, db: usize, key: &[u8], t: ObjType) {
    signal_ready_logic(srv, db, key, t, true);
}

#[inline]
fn signal_ready_logic(srv: &mut Server, db: usize, key: &[u8], t: ObjType, deleted: bool) {
    let Some(bt) = BlockType::of(t) else {
        return;
    };
    let b = &mut srv.blocked;
    if b.by_type[bt.index()] == 0 {
        return;
    }
    let Some(w) = b.blocking_keys.get(db).and_then(|m| m.get(key)) else {
        return;
    };
    if deleted && w.nokey == 0 {
        return;
    }
    let entry = (db, key.to_vec());
    if b.ready_set.contains(&entry) {
        return;
    }
    b.ready_set.insert(entry.clone());
    b.ready_keys.push(entry);
}

/// After SWAPDB: every key of `db` that clients wait on and that now holds data of a
/// blocking type is signalled ready (upstream's `scanDatabaseForReadyKeys`).
pub fn scan_database_for_ready_keys(srv: &mut Server, db: usize) {
    let Some(map) = srv.blocked.blocking_keys.get(db) else {
        return;
    };
    if map.is_empty() {
        return;
    }
    let keys: Vec<Vec<u8>> = map.keys().cloned().collect();
    for key in keys {
        if let Some(t) = key_type_no_effects(srv, db, &key) {
            signal_key_as_ready(srv, db, &key, t);
        }
    }
}

/// Removes the client from every key it waits on (`unblockClientWaitingData`).
fn release_keys(b: &mut Blocked, c: &mut Client) {
    let Some(bs) = c.bstate.as_deref_mut() else {
        return;
    };
    let db = bs.db;
    for (key, seq) in bs.keys.drain(..) {
        let Some(map) = b.blocking_keys.get_mut(db) else {
            continue;
        };
        let Some(w) = map.get_mut(key.as_slice()) else {
            continue;
        };
        w.clients.remove(&seq);
        if bs.unblock_on_nokey {
            w.nokey = w.nokey.saturating_sub(1);
        }
        if w.clients.is_empty() {
            map.remove(key.as_slice());
        }
    }
}

/// Unblocks a client (upstream's `unblockClient`): leaves every queue and the timeout
/// table, clears BLOCKED. Unless a command is pending re-execution the client is reset
/// for its next command. With `queue`, its pending input is processed in before-sleep.
pub fn unblock_client(srv: &mut Server, c: &mut Client, queue: bool) {
    if !c.has_flag(cflags::BLOCKED) {
        return;
    }
    let b = &mut srv.blocked;
    release_keys(b, c);
    if let Some(bs) = c.bstate.as_deref_mut() {
        if bs.timeout != 0 {
            b.timeouts.remove(&(bs.timeout, c.id, c.slot));
        }
        b.by_type[bs.btype.index()] = b.by_type[bs.btype.index()].saturating_sub(1);
        bs.unblock_on_nokey = false;
    }
    b.blocked_clients = b.blocked_clients.saturating_sub(1);
    c.flags &= !cflags::BLOCKED;
    if !c.has_flag(cflags::PENDING_COMMAND) {
        crate::networking::reset_client(c);
    }
    if queue {
        queue_for_reprocessing(srv, c);
    }
}

/// Schedules the client's pending input to be processed in before-sleep.
fn queue_for_reprocessing(srv: &mut Server, c: &mut Client) {
    if !c.has_flag(cflags::UNBLOCKED) {
        c.flags |= cflags::UNBLOCKED;
        srv.blocked.unblocked.push((c.slot, c.id));
    }
}

/// Accounts for a blocked command that ends without being re-executed (timeout or
/// CLIENT UNBLOCK), as `updateStatsOnUnblock`.
fn update_stats_on_unblock(srv: &mut Server, c: &mut Client, rejected: bool, reply_before: usize) {
    let usec = c
        .bstate
        .as_deref_mut()
        .map_or(0, |bs| std::mem::take(&mut bs.duration_us));
    if let Ok(id) = srv.commands.lookup(&c.argv) {
        let st = &mut srv.commands.stats[id];
        st.calls += 1;
        st.usec += usec;
        if rejected {
            st.rejected_calls += 1;
        }
        if srv.config.latency_tracking {
            srv.latency.commands.record(id, usec);
        }
        let reply_bytes = c.reply.buf.len().saturating_sub(reply_before);
        crate::commands::log_unblocked(srv, c, id, usec, reply_bytes);
    }
    c.commands_processed += 1;
    srv.stats.numcommands += 1;
}

/// Replies to a blocked client as on timeout and unblocks it (`unblockClientOnTimeout`).
pub fn unblock_client_on_timeout(srv: &mut Server, c: &mut Client) {
    let before = c.reply.buf.len();
    match crate::replication::primary::take_waiter(srv, c) {
        // Lists, sorted sets and streams all answer a null array.
        None => c.reply.add_null_array(),
        // WAIT: the replicas that acknowledged so far.
        Some(Ok(acks)) => c.reply.add_long(acks),
        // CLUSTER SETSLOT waiting for its replicas.
        Some(Err(e)) => {
            c.reply.add_error(e);
            srv.stats.note_error(&c.reply);
        }
    }
    update_stats_on_unblock(srv, c, false, before);
    c.flags &= !cflags::PENDING_COMMAND;
    unblock_client(srv, c, true);
    schedule_write(srv, c);
}

/// Replies `err` to a blocked client as on timeout (no rejected call) and unblocks it:
/// a CLUSTER SETSLOT whose replicas did not acknowledge it in time (`-NOREPLICAS`).
pub fn unblock_client_on_timeout_error(srv: &mut Server, c: &mut Client, err: &str) {
    let before = c.reply.buf.len();
    c.reply.add_error(err);
    srv.stats.note_error(&c.reply);
    update_stats_on_unblock(srv, c, false, before);
    c.flags &= !cflags::PENDING_COMMAND;
    unblock_client(srv, c, true);
    schedule_write(srv, c);
}

/// Unblocks the client in `slot` and runs its pending command again (a CLUSTER SETSLOT
/// its replicas acknowledged), as for a key that got ready. The wait counts as a call of
/// its own, as upstream's `unblockClientWaitingReplicas` does.
pub fn unblock_and_reexecute(srv: &mut Server, slot: usize) {
    let Some(mut c) = crate::networking::take_client(srv, slot) else {
        return;
    };
    let before = c.reply.buf.len();
    update_stats_on_unblock(srv, &mut c, false, before);
    crate::networking::put_client(srv, c);
    unblock_client_on_key(srv, slot);
}

/// Replies `err` to a blocked client and unblocks it (`unblockClientOnError`).
pub fn unblock_client_on_error(srv: &mut Server, c: &mut Client, err: &str) {
    let before = c.reply.buf.len();
    c.reply.add_error(err);
    srv.stats.note_error(&c.reply);
    update_stats_on_unblock(srv, c, true, before);
    // A client waiting for replicas (WAIT, CLUSTER SETSLOT) leaves their queue, which
    // counts the call once more (upstream's unblockClientWaitingReplicas).
    if c.bstate.is_none() && crate::replication::primary::take_waiter(srv, c).is_some() {
        let at = c.reply.buf.len();
        update_stats_on_unblock(srv, c, false, at);
    }
    c.flags &= !cflags::PENDING_COMMAND;
    unblock_client(srv, c, true);
    schedule_write(srv, c);
}

fn schedule_write(srv: &mut Server, c: &mut Client) {
    if c.has_pending_replies() && !c.pending_write {
        c.pending_write = true;
        srv.clients_pending_write.push(c.slot);
    }
}

/// The type of `key` without side effects (no expiry deletion, stats or LRU update):
/// `lookupKeyReadWithFlags(..., LOOKUP_NOEFFECTS)`.
fn key_type_no_effects(srv: &Server, db: usize, key: &[u8]) -> Option<ObjType> {
    if db >= srv.dbs.len() || crate::db::key_is_expired(srv, db, key) {
        return None;
    }
    srv.dbs[db].kv.get(key).map(|v| v.obj_type())
}

/// Serves the clients blocked on keys that were signalled ready, as upstream's
/// `handleClientsBlockedOnKeys`. Runs after each top-level command and in before-sleep;
/// re-entrant calls (from a re-executed command) return at once.
pub fn handle_clients_blocked_on_keys(srv: &mut Server) {
    if srv.blocked.in_handling || srv.blocked.ready_keys.is_empty() {
        return;
    }
    srv.blocked.in_handling = true;
    while !srv.blocked.ready_keys.is_empty() {
        let list = std::mem::take(&mut srv.blocked.ready_keys);
        for entry in list {
            // Forget it first so serving may signal the same key again.
            srv.blocked.ready_set.remove(&entry);
            serve_key(srv, entry.0, &entry.1);
        }
    }
    srv.blocked.in_handling = false;
}

/// Serves the waiters of one ready key in FIFO order (`handleClientsBlockedOnKey`).
fn serve_key(srv: &mut Server, db: usize, key: &[u8]) {
    let Some(w) = srv.blocked.blocking_keys.get(db).and_then(|m| m.get(key)) else {
        return;
    };
    // Snapshot: serving one waiter changes the queue (and a waiter re-blocking goes to
    // its tail, which must not be visited again in this pass).
    let snapshot: Vec<(u64, usize, u64)> = w
        .clients
        .iter()
        .map(|(&s, &(slot, id))| (s, slot, id))
        .collect();
    for (seq, slot, id) in snapshot {
        let still_waiting = srv
            .blocked
            .blocking_keys
            .get(db)
            .and_then(|m| m.get(key))
            .is_some_and(|w| w.clients.contains_key(&seq));
        if !still_waiting {
            continue;
        }
        let t = key_type_no_effects(srv, db, key);
        let Some(Some(c)) = srv.clients.get(slot) else {
            continue;
        };
        if c.id != id {
            continue;
        }
        let Some(bs) = c.bstate.as_deref() else {
            continue;
        };
        let satisfied = t.and_then(BlockType::of) == Some(bs.btype) || bs.unblock_on_nokey;
        if satisfied {
            unblock_client_on_key(srv, slot);
        }
    }
}

/// Unblocks the client in `slot` because a key it waits on is ready and runs its command
/// again through the gate (`unblockClientOnKey`).
fn unblock_client_on_key(srv: &mut Server, slot: usize) {
    let Some(mut c) = crate::networking::take_client(srv, slot) else {
        return;
    };
    unblock_client(srv, &mut c, false);
    if c.has_flag(cflags::PENDING_COMMAND) {
        c.flags &= !cflags::PENDING_COMMAND;
        c.flags |= cflags::REEXECUTING;
        crate::commands::process_command(srv, &mut c);
        c.flags &= !cflags::REEXECUTING;
        if !c.has_flag(cflags::BLOCKED) {
            crate::networking::reset_client(&mut c);
            queue_for_reprocessing(srv, &mut c);
        }
    }
    schedule_write(srv, &mut c);
    crate::networking::put_client(srv, c);
}

/// Removes a client that is going away from every blocking structure, without a reply.
pub fn forget_client(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::BLOCKED) {
        c.flags &= !cflags::PENDING_COMMAND;
        unblock_client(srv, c, false);
    }
    c.flags &= !cflags::UNBLOCKED;
}

/// Replies to and unblocks the clients whose timeout passed (`handleBlockedClientsTimeout`).
pub fn handle_blocked_clients_timeout(srv: &mut Server) {
    if srv.blocked.timeouts.is_empty() {
        return;
    }
    let now = crate::util::mstime();
    while let Some(&(deadline, id, slot)) = srv.blocked.timeouts.first() {
        if deadline >= now {
            break;
        }
        srv.blocked.timeouts.pop_first();
        let Some(mut c) = crate::networking::take_client(srv, slot) else {
            continue;
        };
        let current = c.id == id
            && c.has_flag(cflags::BLOCKED)
            && c.bstate.as_deref().is_some_and(|b| b.timeout == deadline);
        if current {
            unblock_client_on_timeout(srv, &mut c);
        }
        crate::networking::put_client(srv, c);
    }
}

/// The one-shot timer that wakes the loop for the earliest blocked-client deadline;
/// before-sleep then handles the timeouts.
fn timeout_timer(_: &mut EventLoop, srv: &mut Server, id: u64) -> i64 {
    if srv.blocked.timer.is_some_and(|(tid, _)| tid == id) {
        srv.blocked.timer = None;
    }
    ae::NOMORE
}

/// Before-sleep work (`blockedBeforeSleep`): timeouts, ready keys, then the pending input
/// of unblocked clients; finally makes sure the loop wakes for the next deadline.
pub fn blocked_before_sleep(el: &mut EventLoop, srv: &mut Server) {
    handle_blocked_clients_timeout(srv);
    handle_clients_blocked_on_keys(srv);
    if !srv.blocked.unblocked.is_empty() {
        crate::networking::process_unblocked_clients(el, srv);
    }
    if let Some(&(deadline, _, _)) = srv.blocked.timeouts.first() {
        let earlier = srv.blocked.timer.is_none_or(|(_, at)| deadline < at);
        if earlier {
            let now = crate::util::mstime();
            // Fire just after the deadline: a client times out once `deadline < now`.
            let ms = (deadline - now + 1).max(1) as u64;
            let tid = el.create_time_event(ms, timeout_timer);
            srv.blocked.timer = Some((tid, deadline));
        }
    }
}

/// Takes the queue of unblocked clients whose pending input must be processed.
pub fn take_unblocked(srv: &mut Server) -> Vec<(usize, u64)> {
    std::mem::take(&mut srv.blocked.unblocked)
}

impl Default for BlockState {
    fn default() -> Self {
        BlockState {
            btype: BlockType::List,
            timeout: 0,
            db: 0,
            keys: Vec::new(),
            unblock_on_nokey: false,
            duration_us: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv() -> Server {
        let mut s = Server::new(crate::config::Config::default());
        s.mstime = 1_000_000;
        s
    }

    #[test]
    fn timeout_parsing() {
        let s = srv();
        assert_eq!(get_timeout(&s, b"0"), Ok(0));
        assert_eq!(get_timeout(&s, b"0.1"), Ok(1_000_100));
        assert_eq!(get_timeout(&s, b"1e3"), Ok(2_000_000));
        assert_eq!(get_timeout(&s, b"0.0001"), Ok(1_000_001));
        assert_eq!(get_timeout(&s, b"-0.0001"), Ok(0));
        assert_eq!(get_timeout(&s, b"-1"), Err("ERR timeout is negative"));
        assert_eq!(get_timeout(&s, b"-inf"), Err("ERR timeout is negative"));
        assert_eq!(get_timeout(&s, b"inf"), Err("ERR timeout is out of range"));
        assert_eq!(
            get_timeout(&s, b"1e300"),
            Err("ERR timeout is out of range")
        );
        assert_eq!(
            get_timeout(&s, b"9223372036854775"),
            Err("ERR timeout is out of range")
        );
        for bad in [&b"abc"[..], b"", b" 1", b"1 ", b"nan", b"1x"] {
            assert_eq!(
                get_timeout(&s, bad),
                Err("ERR timeout is not a float or out of range")
            );
        }
    }

    fn fake_client(s: &mut Server) -> Box<Client> {
        let (a, _b) = mio::net::UnixStream::pair().expect("socketpair");
        let id = s.next_client_id;
        s.next_client_id += 1;
        let slot = s.clients.vacant_entry().key();
        let c = Client::new(
            id,
            slot,
            crate::client::Conn::Unix(a),
            String::new(),
            String::new(),
            0,
        );
        s.clients.insert(None);
        Box::new(c)
    }

    #[test]
    fn block_signal_and_forget() {
        let mut s = srv();
        let mut c1 = fake_client(&mut s);
        let mut c2 = fake_client(&mut s);
        let keys = vec![b"a".to_vec(), b"b".to_vec(), b"a".to_vec()];
        block_for_keys(&mut s, &mut c1, BlockType::List, &keys, 5000, false);
        block_for_keys(&mut s, &mut c2, BlockType::ZSet, &keys[1..2], 0, false);
        assert!(c1.has_flag(cflags::BLOCKED | cflags::PENDING_COMMAND));
        assert_eq!(c1.bstate.as_ref().map(|b| b.keys.len()), Some(2));
        assert_eq!(s.blocked.blocked_clients, 2);
        assert_eq!(s.blocked.total_blocking_keys(), 2);
        assert_eq!(s.blocked.timeouts.len(), 1);
        // FIFO on b: c1 then c2.
        let order: Vec<u64> = s.blocked.blocking_keys[0][&b"b"[..]]
            .clients
            .values()
            .map(|&(_, id)| id)
            .collect();
        assert_eq!(order, vec![c1.id, c2.id]);
        // Only types someone blocks for, only keys someone waits on, once.
        signal_key_as_ready(&mut s, 0, b"a", ObjType::Set);
        signal_key_as_ready(&mut s, 0, b"zz", ObjType::List);
        signal_key_as_ready(&mut s, 1, b"a", ObjType::List);
        assert!(s.blocked.ready_keys.is_empty());
        signal_key_as_ready(&mut s, 0, b"a", ObjType::List);
        signal_key_as_ready(&mut s, 0, b"a", ObjType::List);
        signal_key_as_ready(&mut s, 0, b"b", ObjType::ZSet);
        assert_eq!(
            s.blocked.ready_keys,
            vec![(0, b"a".to_vec()), (0, b"b".to_vec())]
        );
        // The deleted-key signal only matters to unblock_on_nokey waiters.
        s.blocked.ready_keys.clear();
        s.blocked.ready_set.clear();
        signal_deleted_key_as_ready(&mut s, 0, b"a", ObjType::List);
        assert!(s.blocked.ready_keys.is_empty());
        forget_client(&mut s, &mut c1);
        assert!(!c1.has_flag(cflags::BLOCKED));
        assert_eq!(s.blocked.blocked_clients, 1);
        assert_eq!(s.blocked.total_blocking_keys(), 1);
        assert!(s.blocked.timeouts.is_empty());
        forget_client(&mut s, &mut c2);
        assert_eq!(s.blocked.blocked_clients, 0);
        assert_eq!(s.blocked.total_blocking_keys(), 0);
        assert_eq!(s.blocked.by_type, [0, 0, 0]);
    }

    #[test]
    fn reexecution_keeps_the_timeout() {
        let mut s = srv();
        let mut c = fake_client(&mut s);
        let keys = vec![b"k".to_vec()];
        block_for_keys(&mut s, &mut c, BlockType::List, &keys, 1234, false);
        unblock_client(&mut s, &mut c, false);
        c.flags &= !cflags::PENDING_COMMAND;
        c.flags |= cflags::REEXECUTING;
        block_for_keys(&mut s, &mut c, BlockType::List, &keys, 9999, false);
        assert_eq!(c.bstate.as_ref().map(|b| b.timeout), Some(1234));
        assert_eq!(s.blocked.timeouts.len(), 1);
        assert!(s.blocked.timeouts.contains(&(1234, c.id, c.slot)));
    }

    #[test]
    fn signal_is_noop_without_waiters() {
        let mut s = srv();
        signal_key_as_ready(&mut s, 0, b"k", ObjType::List);
        assert!(s.blocked.ready_keys.is_empty());
    }
}
