//! Processing of bus messages (upstream's `clusterProcessPacket`, `clusterSendPing`,
//! `clusterProcessGossipSection`, `clusterCron`): MEET and the handshake, PING/PONG and
//! gossip, PFAIL/FAIL failure detection, epochs and their collisions, UPDATE, FAIL,
//! PUBLISH. Work item D of docs/cluster-plan.md.
