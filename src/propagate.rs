//! Command propagation to the AOF (and, with replication, to replicas): upstream's
//! `alsoPropagate`, `propagatePendingCommands` and `postExecutionUnitOperations` in
//! `server.c`.
//!
//! A write is propagated as its *effect*: after a command runs, [`crate::commands::call`]
//! queues the client's argv (or the rewrite the handler left in
//! [`crate::client::Client::propagate_argv`]) when the command made the dataset dirty.
//! Handlers and the keyspace add further operations with [`also_propagate`] (a lazily
//! expired key's DEL, the SREMs of an SPOP, ...). The queue is flushed when the
//! outermost execution unit ends (a top-level command, an EXEC, an expiry done by
//! cron): a single operation is fed as is, several are wrapped in MULTI/EXEC so they
//! apply atomically, as upstream.
//!
//! Nothing is queued (no argv is copied) when nobody consumes the stream
//! ([`should_propagate`]), so writes cost nothing extra with the AOF off.
//!
//! The rewrites, as upstream 9.1 (each checked against the reference's AOF by
//! `tests/propagation.rs`, which also replays every stream with DEBUG LOADAOF):
//! - relative or seconds times become absolute ms: SET/SETEX/PSETEX `EX|PX|EXAT` ->
//!   `SET k v PXAT ms` (other options dropped; GET dropped when no expiry), MSETEX
//!   in place, EXPIRE/PEXPIRE/EXPIREAT -> `PEXPIREAT` (flags kept), GETEX -> PEXPIREAT
//!   or PERSIST, RESTORE ttl -> `... ABSTTL`, HEXPIRE family -> HPEXPIREAT, HGETEX ->
//!   HPEXPIREAT/HPERSIST of the fields changed, HSETEX -> `PXAT`;
//! - a time already past deletes: DEL/UNLINK (`lazyfree-lazy-expire`) for keys, HDEL
//!   for hash fields ([`crate::db::delete_expired_key_from_overwrite`]);
//! - results instead of computations: INCRBYFLOAT -> `SET k v KEEPTTL`, HINCRBYFLOAT ->
//!   HSET, GETDEL/DELIFEQ -> DEL, GETSET -> SET, GEOADD -> ZADD, SPOP -> SREM (batches
//!   of 1024) or DEL/UNLINK of the whole set;
//! - blocking and multi-key pops as their plain form: BLPOP/BRPOP/LMPOP/BLMPOP ->
//!   LPOP/RPOP (with the count popped for the MPOPs), BLMOVE -> LMOVE, BRPOPLPUSH ->
//!   RPOPLPUSH, BZPOP* / ZMPOP / BZMPOP -> ZPOPMIN/ZPOPMAX;
//! - streams: XADD with its resolved ID and `~` trims as the exact `=` trim done, XTRIM
//!   `~` likewise, XREADGROUP/XCLAIM/XAUTOCLAIM as idempotent XCLAIMs + XGROUP SETID /
//!   CREATECONSUMER;
//! - expiry: lazy and active expiry add DEL/UNLINK (active field expiry HDEL, then the
//!   key's UNLINK in one unit); expiring keys never makes the dataset dirty, so a read
//!   propagates only the deletions; SCAN/KEYS/RANDOMKEY do not wrap them in MULTI;
//! - FLUSHDB/FLUSHALL are always propagated, PUBLISH only to replicas, EXEC never itself.

use crate::server::Server;

/// Targets of an operation (upstream's `PROPAGATE_AOF` / `PROPAGATE_REPL`).
pub const PROPAGATE_AOF: u8 = 1;
pub const PROPAGATE_REPL: u8 = 2;
pub const PROPAGATE_ALL: u8 = PROPAGATE_AOF | PROPAGATE_REPL;

/// One operation to feed: a command (argv) applying to a database.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub dbid: usize,
    pub argv: Vec<Vec<u8>>,
    pub target: u8,
}

/// The propagation state of the server.
#[derive(Debug, Default)]
pub struct Propagation {
    /// Operations of the running execution unit, in order.
    pub ops: Vec<Op>,
    /// Depth of nested `call`s (EXEC's commands, re-executed blocked commands...):
    /// the queue is flushed when it returns to 0.
    pub nesting: u32,
}

/// Whether any consumer wants operations for `target`: the AOF is on, or a replication
/// backlog or replicas exist.
pub fn should_propagate(srv: &Server, target: u8) -> bool {
    (target & PROPAGATE_AOF != 0 && crate::aof::enabled(srv))
        || (target & PROPAGATE_REPL != 0 && crate::replication::has_stream_consumers(srv))
}

/// Queues an operation (upstream's `alsoPropagate`). Outside any execution unit (cron
/// work such as active expiry) it is fed at once.
pub fn also_propagate(srv: &mut Server, dbid: usize, argv: Vec<Vec<u8>>, target: u8) {
    if !should_propagate(srv, target) {
        return;
    }
    srv.propagation.ops.push(Op { dbid, argv, target });
    if srv.propagation.nesting == 0 {
        propagate_pending(srv);
    }
}

/// Opens an execution unit outside any command (cron work whose operations must apply
/// atomically, e.g. a hash's expired fields then the emptied key): operations queue
/// until [`exit_unit`].
pub fn enter_unit(srv: &mut Server) {
    srv.propagation.nesting += 1;
}

/// Closes a unit opened by [`enter_unit`]; at the outermost level its operations are
/// fed (wrapped in MULTI/EXEC when several).
pub fn exit_unit(srv: &mut Server) {
    srv.propagation.nesting = srv.propagation.nesting.saturating_sub(1);
    if srv.propagation.nesting == 0 {
        propagate_pending(srv);
    }
}

/// Feeds the queued operations (upstream's `propagatePendingCommands`): one operation as
/// is, several wrapped in MULTI/EXEC.
pub fn propagate_pending(srv: &mut Server) {
    propagate_pending_as(srv, true);
}

/// [`propagate_pending`]; `transaction` false feeds several operations without
/// MULTI/EXEC (upstream: a command touching arbitrary keys run directly, like SCAN or
/// KEYS expiring keys on the way, as active expiry does).
pub fn propagate_pending_as(srv: &mut Server, transaction: bool) {
    if srv.propagation.ops.is_empty() {
        return;
    }
    let ops = std::mem::take(&mut srv.propagation.ops);
    let wrap = transaction && ops.len() > 1;
    // MULTI and EXEC apply to no database (upstream feeds them with dbid -1): they go
    // to whatever db the stream has selected, so the first op's SELECT, if any, follows
    // the MULTI, as upstream writes it.
    if wrap {
        propagate_marker(srv, b"MULTI");
    }
    for op in &ops {
        propagate_now(srv, op.dbid, &op.argv, op.target);
    }
    if wrap {
        propagate_marker(srv, b"EXEC");
    }
    // Keep the allocation for the next unit.
    let mut ops = ops;
    ops.clear();
    if srv.propagation.ops.is_empty() {
        srv.propagation.ops = ops;
    }
}

/// Feeds one operation to its consumers (upstream's `propagateNow`).
fn propagate_now(srv: &mut Server, dbid: usize, argv: &[Vec<u8>], target: u8) {
    if target & PROPAGATE_AOF != 0 && crate::aof::enabled(srv) {
        crate::aof::feed(srv, dbid, argv);
    }
    // Called whenever the op targets replicas (it was queued because some consumer
    // exists): without a backlog or replica the offset still advances, as upstream.
    if target & PROPAGATE_REPL != 0 {
        crate::replication::feed_replicas(srv, Some(dbid), argv);
    }
}

/// Feeds MULTI or EXEC around a unit. They apply to no database (upstream feeds them
/// with dbid -1): each stream keeps whatever database it has selected, and one that has
/// none yet gets its SELECT from the first operation, after the MULTI.
fn propagate_marker(srv: &mut Server, name: &[u8]) {
    let argv = [name.to_vec()];
    if crate::aof::enabled(srv) {
        crate::aof::feed_no_db(srv, &argv);
    }
    crate::replication::feed_replicas(srv, None, &argv);
}
