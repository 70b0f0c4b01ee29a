//! Replicas and failover (upstream's `clusterSetPrimary`, `clusterHandleReplicaFailover`,
//! `clusterSendFailoverAuthIfNeeded`, manual failover, replica migration). Work item E of
//! docs/cluster-plan.md.
//!
//! Failure detection lives here too (PFAIL/FAIL, failure reports, FAIL messages): it is what
//! starts an election. Item D (src/cluster/gossip.rs) calls these hooks from its message
//! processing and its cron; item E fills the bodies.

use super::bus::{Message, Name};
use super::NodeId;
use crate::server::Server;

/// A gossip entry from the known node `reporter` about the known node `node`, with the
/// flags the reporter sees (upstream's failure reports: only a primary's reports count).
pub fn on_gossip_flags(srv: &mut Server, reporter: NodeId, node: NodeId, flags: u16) {
    let _ = (srv, reporter, node, flags);
}

/// A FAIL message from the known node `sender` about the node named `failing`.
pub fn on_fail(srv: &mut Server, sender: NodeId, failing: &Name) {
    let _ = (srv, sender, failing);
}

/// A FAILOVER_AUTH_REQUEST from the known node `sender`.
pub fn on_auth_request(srv: &mut Server, sender: NodeId, msg: &Message) {
    let _ = (srv, sender, msg);
}

/// A FAILOVER_AUTH_ACK from the known node `sender`.
pub fn on_auth_ack(srv: &mut Server, sender: NodeId, msg: &Message) {
    let _ = (srv, sender, msg);
}

/// An MFSTART from the known node `sender` (one of this primary's replicas).
pub fn on_mfstart(srv: &mut Server, sender: NodeId, msg: &Message) {
    let _ = (srv, sender, msg);
}

/// Any valid message from the known node `sender` after its header was processed: the
/// replica side reads its primary's offset and the `PAUSED` mflag here during a manual
/// failover; a node that answers again may lose its FAIL flag
/// (`clearNodeFailureIfNeeded`).
pub fn on_message(srv: &mut Server, sender: NodeId, msg: &Message) {
    let _ = (srv, sender, msg);
}

/// Every 100 ms from the cluster cron, after the link upkeep: PFAIL marking on ping
/// timeouts, FAIL promotion, the replica's election and manual failover state, replica
/// migration, orphaned-primary checks.
pub fn cron(srv: &mut Server) {
    let _ = srv;
}

/// From before-sleep: deferred election steps and state updates.
pub fn before_sleep(srv: &mut Server) {
    let _ = srv;
}
