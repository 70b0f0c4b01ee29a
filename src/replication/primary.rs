//! The primary side of replication (upstream's `replication.c`: syncCommand,
//! replconfCommand, the backlog, replicationFeedReplicas, the full sync by a forked child).

use crate::server::{EventLoop, Server};

/// What a primary keeps for its replicas.
#[derive(Debug, Default)]
pub struct PrimaryState {}

/// Feeds one operation to the backlog and the replicas (see
/// [`super::feed_replicas`]).
pub fn feed(_srv: &mut Server, _dbid: Option<usize>, _argv: &[Vec<u8>]) {}

/// Feeds bytes of a primary's stream as received, to the backlog and sub-replicas of a
/// replica (upstream's `replicationFeedStreamFromPrimaryStream`): a chained replica's
/// stream is its primary's, byte for byte, so offsets agree along the chain.
pub fn feed_raw(_srv: &mut Server, _bytes: &[u8]) {}

/// Whether a backlog or a replica consumes the stream.
pub fn has_consumers(_srv: &Server) -> bool {
    false
}

/// The primary's fields of INFO replication (after `role:`).
pub fn info_fields(srv: &Server, s: &mut String) {
    use std::fmt::Write;
    let r = &srv.repl;
    let _ = write!(
        s,
        "connected_slaves:0\r\nreplicas_waiting_psync:0\r\n\
         master_failover_state:no-failover\r\nmaster_replid:{}\r\n\
         master_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\n\
         repl_backlog_active:0\r\nrepl_backlog_size:{}\r\n\
         repl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
        r.replid, r.replid2, r.master_repl_offset, r.second_replid_offset, 10485760
    );
}

/// The primary's part of replicationCron.
pub fn cron(_el: &mut EventLoop, _srv: &mut Server) {}
