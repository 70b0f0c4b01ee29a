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
//!
//! [`ClusterState`] is, for now, only this node's own slots: no other node is known (the
//! node table, nodes.conf and the bus are work items C and D of the plan), so a slot is
//! either served here or unassigned, and MOVED/ASK are only reachable from the unit tests
//! of [`redirect`].

// Skeleton: the modules are filled in by parallel work; remove this once every
// module is used by the server.
#![allow(dead_code)]

pub mod bus;
pub mod redirect;
pub mod slot;

use crate::client::{flags as cflags, Client};
use crate::commands::flags as cmdf;
use crate::server::Server;
use redirect::{Query, SlotView};
use slot::{SlotBitmap, CLUSTER_SLOTS};

/// A node of the node table (an index, not a pointer). `NodeId(0)` is this node until the
/// table exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub u32);

/// This node.
pub const MYSELF: NodeId = NodeId(0);

/// The cluster state owned by the server (`srv.cluster`, only in cluster mode).
#[derive(Default)]
pub struct ClusterState {
    /// The slots this node serves (CLUSTER ADDSLOTS/ADDSLOTSRANGE/DELSLOTS/DELSLOTSRANGE).
    pub myslots: SlotBitmap,
}

impl ClusterState {
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    /// `cluster_state:ok`: this node serves at least one slot and, with
    /// `cluster-require-full-coverage`, every slot. (Upstream also waits
    /// `CLUSTER_WRITABLE_DELAY` after startup and needs a majority of reachable primaries:
    /// with one node, that is this node.)
    pub fn state_ok(&self, require_full_coverage: bool) -> bool {
        let n = self.myslots.count();
        n > 0 && (n == CLUSTER_SLOTS || !require_full_coverage)
    }
}

/// The slot view of a node alone: its own slots, nothing migrating or importing.
struct LocalView<'a> {
    st: &'a ClusterState,
    ok: bool,
    port: u16,
}

impl SlotView for LocalView<'_> {
    fn myself(&self) -> NodeId {
        MYSELF
    }
    fn my_primary(&self) -> Option<NodeId> {
        None
    }
    fn owner(&self, slot: u16) -> Option<NodeId> {
        self.st.myslots.test(slot).then_some(MYSELF)
    }
    fn migrating_to(&self, _slot: u16) -> Option<NodeId> {
        None
    }
    fn importing_from(&self, _slot: u16) -> Option<NodeId> {
        None
    }
    fn cluster_ok(&self) -> bool {
        self.ok
    }
    fn endpoint(&self, _node: NodeId) -> (String, u16) {
        (String::new(), self.port)
    }
}

/// Step 7 of `process_command` (upstream's processCommand around `getNodeByQuery`): the
/// error to reply when command `id` (with the client's argv, or the queued commands for
/// EXEC) must not run on this node. Called only in cluster mode.
pub fn check_redirect(srv: &Server, c: &Client, id: usize) -> Option<String> {
    let st = srv.cluster.as_deref()?;
    let cmds = &srv.commands.commands;
    let def = cmds[id].def;
    let is_exec = def.name == "exec";
    if is_exec {
        if !c.has_flag(cflags::MULTI) {
            return None;
        }
    } else if def.key_specs.is_empty() && def.flags & cmdf::MOVABLE_KEYS == 0 {
        return None;
    }
    let mut flags = def.flags;
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut refs = Vec::new();
    if is_exec {
        for q in &c.mstate {
            let d = cmds[q.id].def;
            refs.clear();
            if crate::commands::server::get_keys_into(d, &q.argv, &mut refs).is_some() {
                keys.extend(refs.iter().map(|k| q.argv[k.pos].as_slice()));
            }
            flags |= d.flags & (cmdf::WRITE | cmdf::PUBSUB);
        }
    } else {
        // A spec that does not fit the arguments: the command reports the error.
        crate::commands::server::get_keys_into(def, &c.argv, &mut refs)?;
        keys.extend(refs.iter().map(|k| c.argv[k.pos].as_slice()));
    }
    let view = LocalView {
        st,
        ok: st.state_ok(srv.config.cluster_require_full_coverage),
        port: srv.config.port,
    };
    let q = Query {
        keys: &keys,
        is_write: flags & cmdf::WRITE != 0,
        cmd_asking: def.flags & cmdf::ASKING != 0,
        is_migrate: def.name == "migrate",
        is_pubsubshard: flags & cmdf::PUBSUB != 0,
        asking: c.has_flag(cflags::ASKING),
        readonly: c.has_flag(cflags::READONLY),
        allow_reads_when_down: srv.config.cluster_allow_reads_when_down,
        allow_pubsubshard_when_down: srv.config.cluster_allow_pubsubshard_when_down,
    };
    let db = c.db;
    let mut exists =
        |k: &[u8]| srv.dbs[db].kv.get(k).is_some() && !crate::db::key_is_expired(srv, db, k);
    redirect::get_node_by_query(&view, &q, &mut exists).error_text(&view)
}
