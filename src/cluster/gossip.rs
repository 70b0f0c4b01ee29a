//! Processing of bus messages (upstream's `clusterProcessPacket`, `clusterSendPing`,
//! `clusterProcessGossipSection`, `clusterCron`): MEET and the handshake, PING/PONG and
//! gossip, PFAIL/FAIL failure detection, epochs and their collisions, UPDATE, FAIL,
//! PUBLISH. Work item D of docs/cluster-plan.md.
//!
//! The interface item E (src/cluster/failover.rs) sends through; item D fills the bodies.

use super::bus::{Body, Header, Message};
use super::NodeId;
use crate::server::Server;

/// A header of type-independent fields filled from myself's state (sender, epochs, slots
/// or the primary's, replicaof, ports, flags, state, offset).
pub fn header(srv: &Server) -> Header {
    let _ = srv;
    Header::new([b'0'; super::bus::NAME_LEN])
}

/// Queues `body` (with [`header`]) on the outbound link of `node`, if it has one.
pub fn send(srv: &mut Server, node: NodeId, body: Body) {
    let _ = (srv, node, body);
}

/// Queues `body` on the outbound link of every node that has one and is not in handshake.
pub fn broadcast(srv: &mut Server, body: Body) {
    let _ = (srv, body);
}

/// Queues a prebuilt message (custom header) on the outbound link of `node`.
pub fn send_message(srv: &mut Server, node: NodeId, msg: Message) {
    let _ = (srv, node, msg);
}

/// Which nodes a PONG broadcast reaches (upstream's `CLUSTER_BROADCAST_ALL` /
/// `CLUSTER_BROADCAST_LOCAL_REPLICAS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PongTarget {
    All,
    LocalReplicas,
}

/// Sends a PONG with full gossip and extensions to the target set (used after a failover to
/// announce the new configuration).
pub fn broadcast_pong(srv: &mut Server, target: PongTarget) {
    let _ = (srv, target);
}
