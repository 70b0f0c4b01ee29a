//! Cluster mode (issue 13): Valkey's cluster bus, the node table and nodes.conf,
//! key slots and redirections, failover. The research behind it is
//! docs/cluster-plan.md; the bus layout is docs/cluster-bus.md.
//!
//! | file | upstream | what |
//! |---|---|---|
//! | [`bus`] | `cluster_legacy.h` | the bus wire codec: header, gossip, extensions, every message type; validation of every field |
//! | [`slot`] | `cluster.c` `keyHashSlot`, `crc16.c` | CRC16 (XMODEM), the key slot with hash tags, the 16384-bit slot bitmap |
//! | [`redirect`] | `cluster.c` `getNodeByQuery`, `clusterRedirectClient` | MOVED / ASK / CROSSSLOT / TRYAGAIN / CLUSTERDOWN, called from `process_command` |
//!
//! The commands are in src/commands/cluster.rs.

// Skeleton: the modules are filled in by parallel work; remove this once every
// module is used by the server.
#![allow(dead_code)]

pub mod bus;
pub mod redirect;
pub mod slot;
