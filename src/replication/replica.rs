//! The replica side of replication (upstream's `replication.c`: replicaofCommand,
//! connectWithPrimary, syncWithPrimary, readSyncBulkPayload, replicationCron's replica
//! part).

use crate::server::{EventLoop, Server};

/// What a replica keeps about its primary and the link to it.
#[derive(Debug, Default)]
pub struct ReplicaState {}

/// Whether this server is a replica (REPLICAOF host port in force).
pub fn is_replica(_srv: &Server) -> bool {
    false
}

/// The replica's fields of INFO replication (`role:slave` and the master_* fields).
pub fn info_fields(_srv: &Server, _s: &mut String) {}

/// The replica's part of replicationCron.
pub fn cron(_el: &mut EventLoop, _srv: &mut Server) {}

/// `REPLCONF GETACK`, sent by our primary: answers with `REPLCONF ACK <offset>` on the
/// link. Called by the REPLCONF handler (src/replication/primary.rs).
pub fn replconf_getack(_srv: &mut Server, _c: &mut crate::client::Client) {}
