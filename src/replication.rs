//! Replication, interoperable with upstream Valkey (upstream's `replication.c`).
//!
//! The state every role shares lives here: the replication ID and offset, the previous ID
//! kept after a failover (PSYNC2), and the backlog. The two roles live in their own files:
//! - [`primary`]: what a primary does for its replicas: SYNC/PSYNC, the full sync (an RDB
//!   made by a forked child, sent from disk or diskless with the EOF marker), the backlog
//!   for partial resyncs, feeding the command stream ([`feed_replicas`]), REPLCONF from
//!   replicas (listening-port, capa, version, ACK), WAIT, and the replicas' part of INFO.
//! - [`replica`]: what a replica does: REPLICAOF/SLAVEOF and the `replicaof` directive, the
//!   non-blocking handshake in the event loop, receiving and loading the RDB, applying the
//!   primary's stream through `process_command` as the primary client, REPLCONF ACK and
//!   GETACK, and the replica's part of INFO.
//!
//! The byte stream is the same as upstream's: a replica's offset counts exactly the bytes
//! its primary fed after the offset of `+FULLRESYNC`, so both can be compared with INFO.
//! The format and the protocol are described in `docs/replication.md`.

// Skeleton of issue 9: the roles fill these in; remove when every item is used.
#![allow(dead_code)]

pub mod primary;
pub mod replica;

use crate::server::{EventLoop, Server};

/// The ID every node starts with before it ever had a primary: 40 zeros, as upstream's
/// `replid2` before a failover.
pub const NULL_REPLID: &str = "0000000000000000000000000000000000000000";

/// The replication state shared by both roles (upstream's `server.replid`,
/// `server.replid2`, `server.primary_repl_offset`, `server.second_replid_offset`,
/// `server.repl_backlog`).
#[derive(Debug)]
pub struct Repl {
    /// The current replication ID (40 hex characters), new at start and on promotion.
    pub replid: String,
    /// The previous ID, valid up to `second_replid_offset` (PSYNC2 after a failover).
    pub replid2: String,
    /// Bytes of stream produced (as a primary) or applied (as a replica) under `replid`.
    pub master_repl_offset: i64,
    /// The offset up to which `replid2` is accepted; -1 when there is none.
    pub second_replid_offset: i64,
    /// The database the stream last SELECTed (upstream's `repl-stream-db`); -1 forces a
    /// SELECT before the next command fed.
    pub stream_db: i64,
    /// The primary side's state (replicas, backlog, full syncs).
    pub primary: primary::PrimaryState,
    /// The replica side's state (link to the primary, handshake, transfer).
    pub replica: replica::ReplicaState,
}

impl Repl {
    pub fn new() -> Repl {
        Repl {
            replid: random_replid(),
            replid2: NULL_REPLID.to_string(),
            master_repl_offset: 0,
            second_replid_offset: -1,
            stream_db: -1,
            primary: primary::PrimaryState::default(),
            replica: replica::ReplicaState::default(),
        }
    }
}

impl Default for Repl {
    fn default() -> Self {
        Repl::new()
    }
}

/// A new random replication ID: 40 lowercase hex characters.
pub fn random_replid() -> String {
    crate::util::random_hex40()
}

/// Upstream's `changeReplicationId`: a fresh ID (on promotion, or when the dataset no
/// longer follows the old history).
pub fn change_replication_id(srv: &mut Server) {
    srv.repl.replid = random_replid();
}

/// Upstream's `shiftReplicationId`: the current ID becomes the previous one, valid up to
/// the current offset + 1, and a new ID starts (a replica promoted to primary).
pub fn shift_replication_id(srv: &mut Server) {
    let r = &mut srv.repl;
    r.replid2 = std::mem::replace(&mut r.replid, random_replid());
    r.second_replid_offset = r.master_repl_offset + 1;
}

/// Upstream's `clearReplicationId2`.
pub fn clear_replication_id2(srv: &mut Server) {
    srv.repl.replid2 = NULL_REPLID.to_string();
    srv.repl.second_replid_offset = -1;
}

/// Feeds one operation of the command stream to the backlog and the replicas (the
/// propagation queue calls this for ops targeted at replicas), emitting a SELECT first
/// when `dbid` differs from the stream's database. `None` (MULTI, EXEC, PING) applies to
/// no database and never SELECTs.
pub fn feed_replicas(srv: &mut Server, dbid: Option<usize>, argv: &[Vec<u8>]) {
    // A replica's own replicas get its primary's stream as received (feed_raw), never
    // the effects of the commands it applies (upstream: only a top-level primary feeds).
    if replica::is_replica(srv) {
        return;
    }
    primary::feed(srv, dbid, argv);
}

/// Whether anything consumes the replication stream: a backlog or a replica.
pub fn has_stream_consumers(srv: &Server) -> bool {
    primary::has_consumers(srv)
}

/// The `# Replication` section of INFO.
pub fn info(srv: &Server, s: &mut String) {
    if replica::is_replica(srv) {
        replica::info_fields(srv, s);
    } else {
        s.push_str("role:master\r\n");
    }
    primary::info_fields(srv, s);
}

/// The replication state a snapshot records (aux fields `repl-stream-db`, `repl-id`,
/// `repl-offset`, upstream's `rdbPopulateSaveInfo`), or None when there is none. A
/// replica records its primary's (or cached primary's) position; a primary its own
/// (src/replication/primary.rs).
pub fn save_info(srv: &Server) -> Option<(i64, String, i64)> {
    if replica::is_replica(srv) {
        return replica::save_info(srv);
    }
    primary::save_info(srv)
}

/// before-sleep work of replication (full syncs to start or finish, WAIT).
pub fn before_sleep(el: &mut EventLoop, srv: &mut Server) {
    replica::before_sleep(el, srv);
    primary::before_sleep(el, srv);
}

/// Called by serverCron once per second (`replicationCron`).
pub fn cron(el: &mut EventLoop, srv: &mut Server) {
    replica::cron(el, srv);
    primary::cron(el, srv);
}
