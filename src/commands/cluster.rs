//! CLUSTER and the client-side cluster commands ASKING, READONLY and READWRITE
//! (docs/cluster-plan.md 5.2-5.4).
//!
//! Built (work items B and C of the plan): KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT;
//! ADDSLOTS*/DELSLOTS*, FLUSHSLOTS, SETSLOT, BUMPEPOCH, SET-CONFIG-EPOCH, SAVECONFIG, RESET
//! and FORGET with their local effects on the node table and nodes.conf (no bus
//! announcement yet); MYID, MYSHARDID, NODES, SLOTS, SHARDS, INFO, LINKS (empty),
//! REPLICAS/SLAVES and HELP. Item E: REPLICATE, FAILOVER and COUNT-FAILURE-REPORTS (the
//! work is in src/cluster/failover.rs). The atomic slot migration subcommands are still
//! `unknown subcommand`.

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::{flags as cflags, Client};
use crate::cluster::node::{nflags, Node, NodeTable};
use crate::cluster::slot::{key_hash_slot, SlotBitmap, CLUSTER_SLOTS};
use crate::cluster::{ClusterState, NodeId, MYSELF};
use crate::reply;
use crate::server::Server;

const ERR_DISABLED: &str = "ERR This instance has cluster support disabled";

/// Flags and ACL categories of the slot-changing subcommands.
const ADMIN_FLAGS: u64 = f::ADMIN | f::STALE | f::NO_ASYNC_LOADING;
const ADMIN_CATS: u64 = cat::ADMIN | cat::SLOW | cat::DANGEROUS;

static CLUSTER_SUBCOMMANDS: &[CommandDef] = &[
    CommandDef::new("addslots", -3, ADMIN_FLAGS, ADMIN_CATS, addslots_command).doc(
        "cluster",
        "3.0.0",
        "Assigns new hash slots to a node.",
        "O(N) where N is the total number of hash slot arguments",
    ),
    CommandDef::new(
        "addslotsrange",
        -4,
        ADMIN_FLAGS,
        ADMIN_CATS,
        addslots_command,
    )
    .doc(
        "cluster",
        "7.0.0",
        "Assigns new hash slot ranges to a node.",
        "O(N) where N is the total number of the slots between the start slot and end slot \
         arguments.",
    ),
    CommandDef::new(
        "countkeysinslot",
        3,
        f::STALE,
        cat::SLOW,
        countkeysinslot_command,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Returns the number of keys in a hash slot.",
        "O(1)",
    ),
    CommandDef::new("delslots", -3, ADMIN_FLAGS, ADMIN_CATS, addslots_command).doc(
        "cluster",
        "3.0.0",
        "Sets hash slots as unbound for a node.",
        "O(N) where N is the total number of hash slot arguments",
    ),
    CommandDef::new(
        "delslotsrange",
        -4,
        ADMIN_FLAGS,
        ADMIN_CATS,
        addslots_command,
    )
    .doc(
        "cluster",
        "7.0.0",
        "Sets hash slot ranges as unbound for a node.",
        "O(N) where N is the total number of the slots between the start slot and end slot \
         arguments.",
    ),
    CommandDef::new(
        "getkeysinslot",
        4,
        f::STALE,
        cat::SLOW,
        getkeysinslot_command,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Returns the key names in a hash slot.",
        "O(N) where N is the number of requested keys",
    )
    .tips(&["nondeterministic_output"]),
    CommandDef::new("keyslot", 3, f::STALE, cat::SLOW, keyslot_command).doc(
        "cluster",
        "3.0.0",
        "Returns the hash slot for a key.",
        "O(N) where N is the number of bytes in the key",
    ),
    CommandDef::new("bumpepoch", 2, ADMIN_FLAGS, ADMIN_CATS, bumpepoch_command)
        .doc("cluster", "3.0.0", "Advances the cluster config epoch.", "O(1)")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("count-failure-reports", 3, f::ADMIN | f::STALE, ADMIN_CATS, count_failure_reports_command)
        .doc("cluster", "3.0.0", "Returns the number of active failure reports for a node. No new reports are created once the node is marked as failed.", "O(N) where N is the number of failure reports")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("failover", -2, ADMIN_FLAGS, ADMIN_CATS, failover_command)
        .doc("cluster", "3.0.0", "Forces a replica to perform a manual failover of its primary.", "O(1)"),
    CommandDef::new("flushslots", 2, ADMIN_FLAGS, ADMIN_CATS, flushslots_command)
        .doc("cluster", "3.0.0", "Deletes all slots information from a node.", "O(1)"),
    CommandDef::new("forget", 3, ADMIN_FLAGS, ADMIN_CATS, forget_command)
        .doc("cluster", "3.0.0", "Removes a node from the nodes table.", "O(1)"),
    CommandDef::new("help", 2, f::LOADING | f::STALE, cat::SLOW, help_command)
        .doc("cluster", "5.0.0", "Returns helpful text about the different subcommands.", "O(1)"),
    CommandDef::new("info", 2, f::LOADING | f::STALE, cat::SLOW, info_command)
        .doc("cluster", "3.0.0", "Returns information about the state of a node.", "O(1)")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("links", 2, f::STALE, cat::SLOW, links_command)
        .doc("cluster", "7.0.0", "Returns a list of all TCP links to and from peer nodes.", "O(N) where N is the total number of Cluster nodes")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("meet", -4, ADMIN_FLAGS, ADMIN_CATS, meet_command)
        .doc("cluster", "3.0.0", "Forces a node to handshake with another node.", "O(1)"),
    CommandDef::new("myid", 2, f::LOADING | f::STALE, cat::SLOW, myid_command)
        .doc("cluster", "3.0.0", "Returns the ID of a node.", "O(1)"),
    CommandDef::new("myshardid", 2, f::LOADING | f::STALE, cat::SLOW, myshardid_command)
        .doc("cluster", "7.2.0", "Returns the shard ID of a node.", "O(1)")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("nodes", 2, f::LOADING | f::STALE, cat::SLOW, nodes_command)
        .doc("cluster", "3.0.0", "Returns the cluster configuration for a node.", "O(N) where N is the total number of Cluster nodes")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("replicas", 3, f::ADMIN | f::STALE, ADMIN_CATS, replicas_command)
        .doc("cluster", "5.0.0", "Lists the replica nodes of a primary node.", "O(N) where N is the number of replicas.")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("replicate", -3, ADMIN_FLAGS, ADMIN_CATS, replicate_command)
        .doc("cluster", "3.0.0", "Configures a node as replica of a primary node or detaches a replica from its primary.", "O(1)"),
    CommandDef::new("reset", -2, f::ADMIN | f::NOSCRIPT | f::STALE, ADMIN_CATS, reset_command)
        .doc("cluster", "3.0.0", "Resets a node.", "O(N) where N is the number of known nodes. The command may execute a FLUSHALL as a side effect."),
    CommandDef::new("saveconfig", 2, ADMIN_FLAGS, ADMIN_CATS, saveconfig_command)
        .doc("cluster", "3.0.0", "Forces a node to save the cluster configuration to disk.", "O(1)"),
    CommandDef::new("set-config-epoch", 3, ADMIN_FLAGS, ADMIN_CATS, set_config_epoch_command)
        .doc("cluster", "3.0.0", "Sets the configuration epoch for a new node.", "O(1)"),
    CommandDef::new("setslot", -4, ADMIN_FLAGS, ADMIN_CATS, setslot_command)
        .doc("cluster", "3.0.0", "Binds a hash slot to a node.", "O(1)"),
    CommandDef::new("shards", 2, f::LOADING | f::STALE, cat::SLOW, shards_command)
        .doc("cluster", "7.0.0", "Returns the mapping of cluster slots to shards.", "O(N) where N is the total number of cluster nodes")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("slaves", 3, f::ADMIN | f::STALE, ADMIN_CATS, replicas_command)
        .doc("cluster", "3.0.0", "Lists the replica nodes of a primary node.", "O(N) where N is the number of replicas.")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("slots", 2, f::LOADING | f::STALE, cat::SLOW, slots_command)
        .doc("cluster", "3.0.0", "Returns the mapping of cluster slots to nodes.", "O(N) where N is the total number of Cluster nodes")
        .tips(&["nondeterministic_output"]),
];

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("cluster", -2, 0, cat::SLOW, super::container_proc)
        .doc(
            "cluster",
            "3.0.0",
            "A container for Cluster commands.",
            "Depends on subcommand.",
        )
        .subs(CLUSTER_SUBCOMMANDS),
    CommandDef::new(
        "asking",
        1,
        f::FAST,
        cat::FAST | cat::CONNECTION,
        asking_command,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Signals that a cluster client is following an -ASK redirect.",
        "O(1)",
    ),
    CommandDef::new(
        "readonly",
        1,
        f::LOADING | f::STALE | f::FAST,
        cat::FAST | cat::CONNECTION,
        readonly_command,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Enables read-only queries for a connection to a Valkey replica node.",
        "O(1)",
    ),
    CommandDef::new(
        "readwrite",
        1,
        f::LOADING | f::STALE | f::FAST,
        cat::FAST | cat::CONNECTION,
        readwrite_command,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Enables read-write queries for a connection to a Valkey replica node.",
        "O(1)",
    ),
];

/// The cluster state, or the "disabled" error replied (standalone mode).
fn enabled(srv: &mut Server, c: &mut Client) -> bool {
    if srv.cluster.is_none() {
        c.reply.add_error(ERR_DISABLED);
        return false;
    }
    true
}

/// An integer argument (upstream's getLongLongFromObjectOrReply).
fn int_arg(c: &mut Client, i: usize) -> Option<i64> {
    let v = crate::util::parse_i64_strict(&c.argv[i]);
    if v.is_none() {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
    }
    v
}

/// A slot argument of ADDSLOTS and friends (upstream's getSlotOrReply).
fn slot_arg(c: &mut Client, i: usize) -> Option<u16> {
    match crate::util::parse_i64_strict(&c.argv[i]) {
        Some(s) if (0..CLUSTER_SLOTS as i64).contains(&s) => Some(s as u16),
        _ => {
            c.reply.add_error("ERR Invalid or out of range slot");
            None
        }
    }
}

/// CLUSTER KEYSLOT key: works in standalone mode too, as upstream.
fn keyslot_command(_srv: &mut Server, c: &mut Client) {
    let slot = key_hash_slot(&c.argv[2]);
    c.reply.add_long(slot as i64);
}

/// CLUSTER COUNTKEYSINSLOT slot: the keys of the slot in the current database.
fn countkeysinslot_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let Some(slot) = int_arg(c, 2) else {
        return;
    };
    if !(0..CLUSTER_SLOTS as i64).contains(&slot) {
        c.reply.add_error("ERR Invalid slot");
        return;
    }
    let n = srv.dbs[c.db].kv.count_keys_in_slot(slot as u16);
    c.reply.add_long(n as i64);
}

/// CLUSTER GETKEYSINSLOT slot count: at most `count` keys of the slot.
fn getkeysinslot_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let Some(slot) = int_arg(c, 2) else {
        return;
    };
    let Some(max) = int_arg(c, 3) else {
        return;
    };
    if !(0..CLUSTER_SLOTS as i64).contains(&slot) || max < 0 {
        c.reply.add_error("ERR Invalid slot or number of keys");
        return;
    }
    let kv = &srv.dbs[c.db].kv;
    let n = kv.count_keys_in_slot(slot as u16).min(max as usize);
    c.reply.add_array_len(n);
    kv.keys_in_slot(slot as u16, n, &mut |k| c.reply.add_bulk(k));
}

/// CLUSTER ADDSLOTS / DELSLOTS slot..., ADDSLOTSRANGE / DELSLOTSRANGE start end ...: every
/// argument is checked (range, busy or unassigned, repeated) before any slot changes.
/// Only this node's slot bitmap changes for now: no bus announcement, no nodes.conf.
fn addslots_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let sub = c.argv[1].to_ascii_lowercase();
    let del = sub.starts_with(b"del");
    let range = sub.ends_with(b"range");
    if range && c.argv.len() % 2 == 1 {
        let name = if del {
            "cluster|delslotsrange"
        } else {
            "cluster|addslotsrange"
        };
        c.reply.add_error(&reply::err_arity(name));
        return;
    }
    let Some(st) = srv.cluster.as_deref_mut() else {
        return;
    };
    let mut seen = SlotBitmap::new();
    let mut check = |c: &mut Client, s: u16| -> bool {
        let owned = st.nodes.owner[s as usize].is_some();
        if del && !owned {
            c.reply
                .add_error(&format!("ERR Slot {} is already unassigned", s));
            return false;
        }
        if !del && owned {
            c.reply
                .add_error(&format!("ERR Slot {} is already busy", s));
            return false;
        }
        if !seen.set(s) {
            c.reply
                .add_error(&format!("ERR Slot {} specified multiple times", s));
            return false;
        }
        true
    };
    let mut i = 2;
    while i < c.argv.len() {
        if range {
            let Some(start) = slot_arg(c, i) else {
                return;
            };
            let Some(end) = slot_arg(c, i + 1) else {
                return;
            };
            if start > end {
                c.reply.add_error(&format!(
                    "ERR start slot number {} is greater than end slot number {}",
                    start, end
                ));
                return;
            }
            for s in start..=end {
                if !check(c, s) {
                    return;
                }
            }
            i += 2;
        } else {
            let Some(s) = slot_arg(c, i) else {
                return;
            };
            if !check(c, s) {
                return;
            }
            i += 1;
        }
    }
    for s in 0..CLUSTER_SLOTS as u16 {
        if seen.test(s) {
            if del {
                st.nodes.del_slot(s);
            } else {
                // Now the real owner: an import of the slot is over.
                st.nodes.importing.remove(&s);
                st.nodes.add_slot(s, MYSELF);
            }
        }
    }
    st.save_config_or_die();
    c.reply.add_ok();
    // After the reply: pushes to the running client follow it, as upstream.
    crate::cluster::remove_channels_in_dropped_slots(srv, Some(c));
}

/// ASKING: the next command may touch a slot this node imports.
fn asking_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    c.flags |= cflags::ASKING;
    c.reply.add_ok();
}

/// READONLY: reads of the primary's slots are served on this replica. Accepted in
/// standalone mode too, as upstream.
fn readonly_command(_srv: &mut Server, c: &mut Client) {
    c.flags |= cflags::READONLY;
    c.reply.add_ok();
}

/// READWRITE: back to redirecting every command of a replica to the primary.
fn readwrite_command(_srv: &mut Server, c: &mut Client) {
    c.flags &= !cflags::READONLY;
    c.reply.add_ok();
}

/// The cluster state (only called after [`enabled`]).
fn state(srv: &mut Server) -> &mut ClusterState {
    srv.cluster.as_deref_mut().expect("cluster mode")
}

const HELP: &[&str] = &[
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port[,hostname]> <flags> <primary> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, primary and replicas IP addresses, ports and ids",
    "SLOT-STATS",
    "    Return an array of slot usage statistics for slots assigned to the current node.",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FAILOVER [FORCE|TAKEOVER]",
    "    Promote current replica node to being a master.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "REPLICATE <node-id>",
    "    Configure current node as replica to <node-id>.",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "MIGRATESLOTS SLOTSRANGE start-slot end-slot [start-slot end-slot ...] NODE node-id [SLOTSRANGE start-slot end-slot [start-slot end-slot ...] NODE node-id ...]",
    "    Migrate the specified slot ranges from this node to the specified node.",
    "CANCELSLOTMIGRATIONS ALL",
    "    Cancel all migrations.",
    "GETSLOTMIGRATIONS",
    "    Get information about ongoing and recently finished slot imports and exports.",
];

/// CLUSTER HELP (works in standalone mode too).
fn help_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_help("cluster", HELP);
}

/// CLUSTER MYID.
fn myid_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let name = state(srv).nodes.myself().name.clone();
    c.reply.add_bulk(name.as_bytes());
}

/// CLUSTER MYSHARDID.
fn myshardid_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let id = state(srv).nodes.myself().shard_id.clone();
    c.reply.add_bulk(id.as_bytes());
}

/// The client is connected over IPv6 (its address has more than one ':').
fn client_v6(c: &Client) -> bool {
    c.addr.matches(':').count() > 1
}

/// CLUSTER NODES: one line per node, each ending with `\n`.
fn nodes_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let text = state(srv).nodes.nodes_text(client_v6(c));
    c.reply.add_verbatim(text.as_bytes(), "txt");
}

/// CLUSTER INFO.
fn info_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let full = srv.config.cluster_require_full_coverage;
    let st = state(srv);
    let (ok, size) = st.update_state(full);
    let t = &st.nodes;
    let (mut slots_pfail, mut slots_fail) = (0, 0);
    for o in t.owner.iter().flatten() {
        if let Some(n) = t.get(*o) {
            if n.flags & nflags::FAIL != 0 {
                slots_fail += 1;
            } else if n.flags & nflags::PFAIL != 0 {
                slots_pfail += 1;
            }
        }
    }
    let assigned = t.slots_assigned();
    let count = |mask: u16, voting: bool| {
        t.iter()
            .filter(|(_, n)| {
                n.flags & mask != 0 && (!voting || n.is_primary() && n.slots.count() > 0)
            })
            .count()
    };
    let me = t.myself();
    let s = format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{}\r\ncluster_slots_ok:{}\r\n\
         cluster_slots_pfail:{}\r\ncluster_slots_fail:{}\r\ncluster_nodes_pfail:{}\r\n\
         cluster_nodes_fail:{}\r\ncluster_voting_nodes_pfail:{}\r\n\
         cluster_voting_nodes_fail:{}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\n\
         cluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n{}\
         cluster_stats_bytes_sent:{}\r\ncluster_stats_bytes_received:{}\r\n\
         cluster_stats_pubsub_bytes_sent:{}\r\ncluster_stats_pubsub_bytes_received:{}\r\n\
         cluster_stats_module_bytes_sent:{}\r\ncluster_stats_module_bytes_received:{}\r\n\
         total_cluster_links_buffer_limit_exceeded:{}\r\n",
        if ok { "ok" } else { "fail" },
        assigned,
        assigned - slots_pfail - slots_fail,
        slots_pfail,
        slots_fail,
        count(nflags::PFAIL, false),
        count(nflags::FAIL, false),
        count(nflags::PFAIL, true),
        count(nflags::FAIL, true),
        t.len(),
        size,
        t.current_epoch,
        t.node_epoch(me),
        message_counters(&st.bus.stats),
        st.bus.stats.bytes_sent,
        st.bus.stats.bytes_received,
        st.bus.stats.pubsub_bytes_sent,
        st.bus.stats.pubsub_bytes_received,
        st.bus.stats.module_bytes_sent,
        st.bus.stats.module_bytes_received,
        st.bus.stats.buffer_limit_exceeded,
    );
    c.reply.add_verbatim(s.as_bytes(), "txt");
}

/// The `cluster_stats_messages_*` lines: one per type with a nonzero count, then the
/// totals.
fn message_counters(s: &crate::cluster::link::Stats) -> String {
    const NAMES: [&str; 11] = [
        "ping",
        "pong",
        "meet",
        "fail",
        "publish",
        "publishshard",
        "auth-req",
        "auth-ack",
        "update",
        "mfstart",
        "module",
    ];
    let mut out = String::new();
    for (i, n) in NAMES.iter().enumerate() {
        if s.sent[i] > 0 {
            out.push_str(&format!(
                "cluster_stats_messages_{}_sent:{}\r\n",
                n, s.sent[i]
            ));
        }
    }
    out.push_str(&format!(
        "cluster_stats_messages_sent:{}\r\n",
        s.sent.iter().sum::<u64>()
    ));
    for (i, n) in NAMES.iter().enumerate() {
        if s.received[i] > 0 {
            out.push_str(&format!(
                "cluster_stats_messages_{}_received:{}\r\n",
                n, s.received[i]
            ));
        }
    }
    out.push_str(&format!(
        "cluster_stats_messages_received:{}\r\n",
        s.received.iter().sum::<u64>()
    ));
    out
}

/// CLUSTER MEET ip port [cport].
fn meet_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    if c.argv.len() > 5 {
        let sub = String::from_utf8_lossy(&c.argv[1]).into_owned();
        c.reply.add_error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
            sub
        ));
        return;
    }
    let parse = |b: &[u8]| -> Option<i64> { std::str::from_utf8(b).ok()?.parse().ok() };
    let Some(port) = parse(&c.argv[3]) else {
        let a = String::from_utf8_lossy(&c.argv[3]).into_owned();
        c.reply
            .add_error(&format!("ERR Invalid base port specified: {}", a));
        return;
    };
    let cport = if c.argv.len() == 5 {
        match parse(&c.argv[4]) {
            Some(p) => p,
            None => {
                let a = String::from_utf8_lossy(&c.argv[4]).into_owned();
                c.reply
                    .add_error(&format!("ERR Invalid bus port specified: {}", a));
                return;
            }
        }
    } else {
        port.saturating_add(10000)
    };
    if !(1..=65535).contains(&port) {
        c.reply.add_error("ERR Port number is out of range");
        return;
    }
    if !(1..=65535).contains(&cport) {
        c.reply
            .add_error("ERR Cluster bus port number is out of range");
        return;
    }
    let ip = String::from_utf8_lossy(&c.argv[2]).into_owned();
    if crate::cluster::gossip::start_handshake(srv, &ip, port as u16, cport as u16).is_err() {
        let p = String::from_utf8_lossy(&c.argv[3]).into_owned();
        c.reply
            .add_error(&format!("ERR Invalid node address specified: {}:{}", ip, p));
        return;
    }
    log::info!(
        "Cluster meet {}:{} (user request from '{}').",
        ip,
        port,
        c.addr
    );
    c.reply.add_ok();
}

/// One node of CLUSTER SLOTS: endpoint, port, id, metadata map.
fn add_slots_node(c: &mut Client, n: &Node, ty: u8) {
    c.reply.add_array_len(4);
    let ip = n.client_ip(client_v6(c)).to_string();
    match ty {
        1 => c
            .reply
            .add_bulk(crate::cluster::preferred_endpoint(n, ty, client_v6(c)).as_bytes()),
        2 => c.reply.add_null(),
        _ => c.reply.add_bulk(ip.as_bytes()),
    }
    c.reply.add_long(n.client_port() as i64);
    c.reply.add_bulk(n.name.as_bytes());
    let mut meta: Vec<(&[u8], &[u8])> = Vec::new();
    if ty != 0 {
        meta.push((b"ip", ip.as_bytes()));
    }
    if ty != 1 && !n.hostname.is_empty() {
        meta.push((b"hostname", n.hostname.as_bytes()));
    }
    if !n.availability_zone.is_empty() {
        meta.push((b"availability-zone", n.availability_zone.as_bytes()));
    }
    c.reply.add_map_len(meta.len());
    for (k, v) in meta {
        c.reply.add_bulk(k);
        c.reply.add_bulk(v);
    }
}

/// Whether a replica is listed by CLUSTER SLOTS (not failing, offset known).
fn slots_visible(n: &Node) -> bool {
    n.flags & nflags::FAIL == 0 && n.repl_offset != 0
}

/// CLUSTER SLOTS: one entry per run of slots with the same owner.
fn slots_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let ty = crate::cluster::endpoint_type(&srv.config);
    let st = srv.cluster.as_deref().expect("cluster mode");
    let t = &st.nodes;
    let mut runs: Vec<(u16, u16, NodeId)> = Vec::new();
    for s in 0..CLUSTER_SLOTS {
        let Some(o) = t.owner[s] else {
            continue;
        };
        match runs.last_mut() {
            Some(r) if r.2 == o && r.1 as usize + 1 == s => r.1 = s as u16,
            _ => runs.push((s as u16, s as u16, o)),
        }
    }
    c.reply.add_array_len(runs.len());
    for (a, b, o) in runs {
        let Some(n) = t.get(o) else {
            c.reply.add_array_len(2);
            c.reply.add_long(a as i64);
            c.reply.add_long(b as i64);
            continue;
        };
        let reps: Vec<&Node> = n
            .replicas
            .iter()
            .filter_map(|r| t.get(*r))
            .filter(|r| slots_visible(r))
            .collect();
        c.reply.add_array_len(3 + reps.len());
        c.reply.add_long(a as i64);
        c.reply.add_long(b as i64);
        add_slots_node(c, n, ty);
        for r in reps {
            add_slots_node(c, r, ty);
        }
    }
}

/// One node of CLUSTER SHARDS.
fn add_shard_node(c: &mut Client, t: &NodeTable, id: NodeId, n: &Node, my_offset: i64, ty: u8) {
    let mut fields: Vec<(&str, Result<Vec<u8>, i64>)> = vec![("id", Ok(n.name.clone().into()))];
    if n.client_port() != 0 {
        fields.push(("port", Err(n.client_port() as i64)));
    }
    if n.tls_port != 0 {
        fields.push(("tls-port", Err(n.tls_port as i64)));
    }
    let ip = n.client_ip(client_v6(c)).to_string();
    fields.push(("ip", Ok(ip.into())));
    let ep = crate::cluster::preferred_endpoint(n, ty, client_v6(c));
    fields.push(("endpoint", Ok(ep.into())));
    if !n.hostname.is_empty() {
        fields.push(("hostname", Ok(n.hostname.clone().into())));
    }
    let role = if n.is_replica() { "replica" } else { "master" };
    fields.push(("role", Ok(role.into())));
    let off = if id == MYSELF {
        my_offset
    } else {
        n.repl_offset
    };
    fields.push(("replication-offset", Err(off)));
    let health = if n.flags & nflags::FAIL != 0 {
        "fail"
    } else if n.is_replica() && off == 0 {
        "loading"
    } else {
        "online"
    };
    fields.push(("health", Ok(health.into())));
    if !n.availability_zone.is_empty() {
        fields.push(("availability-zone", Ok(n.availability_zone.clone().into())));
    }
    let _ = t;
    c.reply.add_map_len(fields.len());
    for (k, v) in fields {
        c.reply.add_bulk(k.as_bytes());
        match v {
            Ok(b) => c.reply.add_bulk(&b),
            Err(i) => c.reply.add_long(i),
        }
    }
}

/// CLUSTER SHARDS: one entry per shard id (slots, nodes, id).
fn shards_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let my_offset = srv.repl.master_repl_offset;
    let ty = crate::cluster::endpoint_type(&srv.config);
    let st = srv.cluster.as_deref().expect("cluster mode");
    let t = &st.nodes;
    let mut shards: Vec<(String, Vec<NodeId>)> = Vec::new();
    for (id, n) in t.iter() {
        if n.flags & nflags::HANDSHAKE != 0 {
            continue;
        }
        match shards.iter_mut().find(|(s, _)| *s == n.shard_id) {
            Some((_, v)) => v.push(id),
            None => shards.push((n.shard_id.clone(), vec![id])),
        }
    }
    c.reply.add_array_len(shards.len());
    for (sid, ids) in shards {
        c.reply.add_map_len(3);
        c.reply.add_bulk(b"slots");
        let primary = ids
            .iter()
            .filter_map(|i| t.get(*i))
            .find(|n| n.is_primary());
        let ranges = primary.map(|p| p.slots.ranges()).unwrap_or_default();
        c.reply.add_array_len(ranges.len() * 2);
        for (a, b) in ranges {
            c.reply.add_long(a as i64);
            c.reply.add_long(b as i64);
        }
        c.reply.add_bulk(b"nodes");
        c.reply.add_array_len(ids.len());
        for id in &ids {
            if let Some(n) = t.get(*id) {
                add_shard_node(c, t, *id, n, my_offset, ty);
            }
        }
        c.reply.add_bulk(b"id");
        c.reply.add_bulk(sid.as_bytes());
    }
}

/// CLUSTER LINKS: no bus links yet.
fn links_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let links = crate::cluster::link::describe(srv);
    c.reply.add_array_len(links.len());
    for (dir, node, ctime, events, alloc, used) in links {
        c.reply.add_map_len(6);
        c.reply.add_bulk(b"direction");
        c.reply.add_bulk(dir.as_bytes());
        c.reply.add_bulk(b"node");
        c.reply.add_bulk(node.as_bytes());
        c.reply.add_bulk(b"create-time");
        c.reply.add_long(ctime);
        c.reply.add_bulk(b"events");
        c.reply.add_bulk(events.as_bytes());
        c.reply.add_bulk(b"send-buffer-allocated");
        c.reply.add_long(alloc as i64);
        c.reply.add_bulk(b"send-buffer-used");
        c.reply.add_long(used as i64);
    }
}

/// CLUSTER REPLICAS / SLAVES node-id.
fn replicas_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let st = srv.cluster.as_deref().expect("cluster mode");
    let t = &st.nodes;
    let Some(id) = t.lookup(&c.argv[2]) else {
        let name = String::from_utf8_lossy(&c.argv[2]).into_owned();
        c.reply.add_error(&format!("ERR Unknown node {}", name));
        return;
    };
    let n = t.get(id).expect("node");
    if n.is_replica() {
        c.reply.add_error("ERR The specified node is not a master");
        return;
    }
    c.reply.add_array_len(n.replicas.len());
    for r in &n.replicas {
        if let Some(rn) = t.get(*r) {
            let v6 = client_v6(c);
            c.reply.add_bulk(t.node_line(*r, rn, false, v6).as_bytes());
        }
    }
}

/// CLUSTER COUNT-FAILURE-REPORTS node-id: the valid failure reports about the node.
fn count_failure_reports_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let Some(id) = state(srv).nodes.lookup(&c.argv[2]) else {
        let name = String::from_utf8_lossy(&c.argv[2]).into_owned();
        c.reply.add_error(&format!("ERR Unknown node {}", name));
        return;
    };
    let n = crate::cluster::failover::count_failure_reports(srv, id);
    c.reply.add_long(n as i64);
}

fn subcommand_syntax_error(c: &mut Client) {
    let sub = String::from_utf8_lossy(&c.argv[1]).into_owned();
    c.reply.add_error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
        sub
    ));
}

/// CLUSTER REPLICATE node-id | NO ONE (docs/cluster-plan.md 4.1).
fn replicate_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    if c.argv.len() == 4 {
        if !(c.argv[2].eq_ignore_ascii_case(b"no") && c.argv[3].eq_ignore_ascii_case(b"one")) {
            subcommand_syntax_error(c);
            return;
        }
        // Detach: a replica becomes an empty primary without slots.
        if state(srv).nodes.myself().is_replica() {
            crate::cluster::failover::detach_replica(srv);
            crate::db::empty_data(srv, None, false);
        }
        c.reply.add_ok();
        return;
    }
    if c.argv.len() != 3 {
        subcommand_syntax_error(c);
        return;
    }
    let has_keys = db_has_keys(srv);
    let st = state(srv);
    let Some(id) = st.nodes.lookup(&c.argv[2]) else {
        let name = String::from_utf8_lossy(&c.argv[2]).into_owned();
        c.reply.add_error(&format!("ERR Unknown node {}", name));
        return;
    };
    if id == MYSELF {
        c.reply.add_error("ERR Can't replicate myself");
        return;
    }
    if st.nodes.get(id).is_some_and(|n| n.is_replica()) {
        c.reply
            .add_error("ERR I can only replicate a master, not a replica.");
        return;
    }
    let me = st.nodes.myself();
    if me.is_primary() && (me.slots.count() != 0 || has_keys) {
        c.reply
            .add_error("ERR To set a master the node must be empty and without assigned slots.");
        return;
    }
    if me.is_replica() && me.replicaof == Some(id) {
        c.reply.add_ok();
        return;
    }
    crate::cluster::failover::set_primary(srv, id, true);
    crate::cluster::gossip::broadcast_pong(srv, crate::cluster::gossip::PongTarget::All);
    c.reply.add_ok();
}

/// CLUSTER FAILOVER [FORCE|TAKEOVER] (docs/cluster-plan.md 4.4).
fn failover_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let (mut force, mut takeover) = (false, false);
    match c.argv.len() {
        2 => {}
        3 if c.argv[2].eq_ignore_ascii_case(b"force") => force = true,
        3 if c.argv[2].eq_ignore_ascii_case(b"takeover") => {
            force = true;
            takeover = true;
        }
        _ => {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    }
    let who = format!(
        "id={} addr={} laddr={} fd={} name=*redacted* user=*redacted* lib-name= lib-ver=",
        c.id, c.addr, c.laddr, c.fd
    );
    match crate::cluster::failover::manual_failover(srv, force, takeover, &who) {
        Ok(()) => c.reply.add_ok(),
        Err(e) => c.reply.add_error(e),
    }
}

/// CLUSTER BUMPEPOCH: a new configEpoch without consensus, unless mine is already the
/// only largest one.
fn bumpepoch_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let st = state(srv);
    let max = st.nodes.max_epoch();
    let mine = st.nodes.myself().config_epoch;
    let bumped = mine == 0 || mine != max;
    if bumped {
        st.nodes.current_epoch += 1;
        let e = st.nodes.current_epoch;
        st.nodes.myself_mut().config_epoch = e;
        log::info!("New configEpoch set to {}", e);
        st.save_config_or_die();
    }
    let e = st.nodes.myself().config_epoch;
    c.reply.add_status(&format!(
        "{} {}",
        if bumped { "BUMPED" } else { "STILL" },
        e
    ));
}

/// CLUSTER SET-CONFIG-EPOCH epoch: only on a node that knows no other node.
fn set_config_epoch_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let Some(e) = int_arg(c, 2) else {
        return;
    };
    let st = state(srv);
    if e < 0 {
        c.reply
            .add_error(&format!("ERR Invalid config epoch specified: {}", e));
    } else if st.nodes.len() > 1 {
        c.reply.add_error(
            "ERR The user can assign a config epoch only when the node does not know any other \
             node.",
        );
    } else if st.nodes.myself().config_epoch != 0 {
        c.reply
            .add_error("ERR Node config epoch is already non-zero");
    } else {
        st.nodes.myself_mut().config_epoch = e as u64;
        log::info!("configEpoch set to {} via CLUSTER SET-CONFIG-EPOCH", e);
        if st.nodes.current_epoch < e as u64 {
            st.nodes.current_epoch = e as u64;
        }
        st.save_config_or_die();
        c.reply.add_ok();
    }
}

/// CLUSTER SAVECONFIG.
fn saveconfig_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    match state(srv).save_config() {
        Ok(()) => c.reply.add_ok(),
        Err(e) => c.reply.add_error(&format!(
            "ERR error saving the cluster node config: {}",
            crate::cluster::config_file::strerror(&e)
        )),
    }
}

/// Whether the first database holds keys (upstream checks db 0).
fn db_has_keys(srv: &Server) -> bool {
    srv.dbs.first().is_some_and(|d| !d.kv.is_empty())
}

/// CLUSTER FLUSHSLOTS: this node gives up all its slots (with an empty keyspace only).
fn flushslots_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    if db_has_keys(srv) {
        c.reply
            .add_error("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.");
        return;
    }
    let st = state(srv);
    for s in 0..CLUSTER_SLOTS as u16 {
        if st.nodes.owner[s as usize] == Some(MYSELF) {
            st.nodes.del_slot(s);
        }
    }
    st.save_config_or_die();
    c.reply.add_ok();
    // After the reply: pushes to the running client follow it, as upstream.
    crate::cluster::remove_channels_in_dropped_slots(srv, Some(c));
}

/// The keys of slot `s` in the first database.
fn keys_in_slot(srv: &Server, s: u16) -> usize {
    srv.dbs.first().map_or(0, |d| d.kv.count_keys_in_slot(s))
}

/// The default `TIMEOUT` of CLUSTER SETSLOT on a primary with replicas (upstream's
/// `CLUSTER_OPERATION_TIMEOUT`, ms).
const SETSLOT_TIMEOUT_MS: i64 = 2000;

/// CLUSTER SETSLOT slot IMPORTING id | MIGRATING id | STABLE | NODE id [TIMEOUT ms].
///
/// On a primary with online replicas (version 8.0 and later) the command is first sent to
/// them through the replication stream and the client blocks until they all acknowledged
/// it (as WAIT does, src/replication/primary.rs); then it runs again here and applies
/// (upstream's replication of SETSLOT, Valkey 8.0). `TIMEOUT` bounds the wait (default
/// 2 s, 0 = forever); past it the reply is `-NOREPLICAS` and nothing changes here. The
/// replica applies what its primary sends.
fn setslot_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let from_primary = c.has_flag(cflags::PRIMARY);
    let me_replica = state(srv).nodes.myself().is_replica();
    if me_replica && !from_primary {
        c.reply
            .add_error("ERR Please use SETSLOT only with masters.");
        return;
    }
    let Some(slot) = slot_arg(c, 2) else {
        return;
    };
    let argc = c.argv.len();
    let action = c.argv[3].to_ascii_lowercase();
    let t = &state(srv).nodes;
    let owner = t.owner[slot as usize];
    let name = |c: &Client| String::from_utf8_lossy(&c.argv[4]).into_owned();
    let mut target = None;
    let optpos;
    match action.as_slice() {
        b"migrating" | b"importing" if argc >= 5 => {
            let mig = action[0] == b'm';
            if mig && !me_replica && owner != Some(MYSELF) {
                c.reply
                    .add_error(&format!("ERR I'm not the owner of hash slot {}", slot));
                return;
            }
            if !mig && owner == Some(MYSELF) {
                c.reply
                    .add_error(&format!("ERR I'm already the owner of hash slot {}", slot));
                return;
            }
            let Some(id) = t.lookup(&c.argv[4]) else {
                c.reply
                    .add_error(&format!("ERR I don't know about node {}", name(c)));
                return;
            };
            if id == MYSELF {
                c.reply.add_error("ERR Target node is myself");
                return;
            }
            if t.get(id).is_some_and(|n| n.is_replica()) {
                c.reply.add_error("ERR Target node is not a master");
                return;
            }
            target = Some(id);
            optpos = 5;
        }
        b"stable" => optpos = 4,
        b"node" if argc >= 5 => {
            let Some(id) = t.lookup(&c.argv[4]) else {
                c.reply.add_error(&format!("ERR Unknown node {}", name(c)));
                return;
            };
            if t.get(id).is_some_and(|n| n.is_replica()) {
                c.reply.add_error("ERR Target node is not a master");
                return;
            }
            if owner == Some(MYSELF) && id != MYSELF && keys_in_slot(srv, slot) != 0 {
                c.reply.add_error(&format!(
                    "ERR Can't assign hashslot {} to a different node while I still hold keys \
                     for this hash slot.",
                    slot
                ));
                return;
            }
            target = Some(id);
            optpos = 5;
        }
        _ => {
            c.reply.add_error(
                "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP",
            );
            return;
        }
    };
    // The absolute deadline (ms, 0 = none) as getTimeoutFromObjectOrReply in ms.
    let now = srv.mstime;
    let mut deadline = now + SETSLOT_TIMEOUT_MS;
    let mut i = optpos;
    while i < argc {
        if c.argv[i].eq_ignore_ascii_case(b"timeout") {
            if i + 1 >= argc {
                c.reply.add_error("ERR Missing timeout value");
                return;
            }
            match crate::util::parse_i64_strict(&c.argv[i + 1]) {
                None => {
                    c.reply
                        .add_error("ERR timeout is not an integer or out of range");
                    return;
                }
                Some(t) if t < 0 => {
                    c.reply.add_error("ERR timeout is negative");
                    return;
                }
                Some(0) => deadline = 0,
                Some(t) => match t.checked_add(now) {
                    Some(d) => deadline = d,
                    None => {
                        c.reply.add_error("ERR timeout is out of range");
                        return;
                    }
                },
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    // A primary with replicas sends the command to them first and applies it once they
    // all acknowledged it (the re-execution has REPLICATION_DONE).
    let done = c.flags & cflags::REPLICATION_DONE != 0;
    c.flags &= !cflags::REPLICATION_DONE;
    if !me_replica && !done && !state(srv).nodes.myself().replicas.is_empty() {
        let eligible = crate::replication::primary::setslot_eligible_replicas(srv);
        if eligible > 0 && c.has_flag(cflags::IN_EXEC | cflags::DENY_BLOCKING) {
            // Inside MULTI/EXEC the client can not block: the replicas get the command
            // and it applies here at once (9.1.2 fails an assertion and exits here).
            crate::propagate::also_propagate(
                srv,
                c.db,
                c.argv.clone(),
                crate::propagate::PROPAGATE_REPL,
            );
        } else if eligible > 0 {
            crate::propagate::also_propagate(
                srv,
                c.db,
                c.argv.clone(),
                crate::propagate::PROPAGATE_REPL,
            );
            let offset = srv.repl.master_repl_offset + 1;
            crate::replication::primary::block_for_replica_ack(srv, c, offset, eligible, deadline);
            return;
        }
    }
    let nkeys = keys_in_slot(srv, slot);
    let allow_migration =
        srv.config.get("cluster-allow-replica-migration").as_deref() != Some("no");
    let st = state(srv);
    let node_desc = |st: &ClusterState, id: NodeId| {
        st.nodes
            .get(id)
            .map_or((String::new(), String::new(), String::new()), |n| {
                (n.name.clone(), n.human_nodename.clone(), n.shard_id.clone())
            })
    };
    let mut new_primary = None;
    match action.as_slice() {
        b"migrating" => {
            let id = target.expect("target");
            let (nm, hn, _) = node_desc(st, id);
            log::info!("Migrating slot {} to node {} ({})", slot, nm, hn);
            st.nodes.migrating.insert(slot, id);
        }
        b"importing" => {
            let id = target.expect("target");
            let (nm, hn, _) = node_desc(st, id);
            log::info!("Importing slot {} from node {} ({})", slot, nm, hn);
            st.nodes.importing.insert(slot, id);
        }
        b"stable" => {
            log::info!("Marking slot {} stable", slot);
            st.nodes.migrating.remove(&slot);
            st.nodes.importing.remove(&slot);
        }
        _ => {
            let id = target.expect("target");
            let (nm, hn, shard) = node_desc(st, id);
            log::info!(
                "Assigning slot {} to node {} ({}) in shard {}",
                slot,
                nm,
                hn,
                shard
            );
            if nkeys == 0 {
                st.nodes.migrating.remove(&slot);
            }
            let me = st.nodes.myself();
            let my_primary = if me.is_replica() {
                me.replicaof
            } else {
                Some(MYSELF)
            };
            let slot_was_mine = owner.is_some() && owner == my_primary;
            st.nodes.del_slot(slot);
            st.nodes.add_slot(slot, id);
            let shard_is_empty = my_primary
                .and_then(|p| st.nodes.get(p))
                .is_some_and(|p| p.slots.count() == 0);
            if slot_was_mine && shard_is_empty && id != MYSELF {
                if allow_migration {
                    log::info!(
                        "Lost my last slot during slot migration. Reconfiguring myself as a \
                         replica of {} ({}) in shard {}",
                        nm,
                        hn,
                        shard
                    );
                    new_primary = Some(id);
                } else if !me_replica {
                    log::info!(
                        "My last slot was migrated to node {} ({}) in shard {}. I am now an \
                         empty primary.",
                        nm,
                        hn,
                        shard
                    );
                }
            }
            let mine = st.nodes.myself().replicaof;
            if (id == MYSELF || Some(id) == mine) && st.nodes.importing.remove(&slot).is_some() {
                // Only the primary ends an import with a new configEpoch, without
                // consensus, as upstream.
                if id == MYSELF && st.nodes.bump_epoch_without_consensus().is_some() {
                    log::info!("ConfigEpoch updated after importing slot {}", slot);
                }
            }
        }
    }
    if let Some(p) = new_primary {
        // A full sync: the new shard has another replication history.
        crate::cluster::failover::set_primary(srv, p, true);
    }
    // Without fsync, as upstream (a reshard sends five SETSLOTs per slot).
    state(srv).save_config_or_die_with(false);
    c.reply.add_ok();
    // After the reply: pushes to the running client follow it, as upstream.
    crate::cluster::remove_channels_in_dropped_slots(srv, Some(c));
}

/// CLUSTER FORGET node-id.
fn forget_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let st = state(srv);
    let Some(id) = st.nodes.lookup(&c.argv[2]) else {
        let name = String::from_utf8_lossy(&c.argv[2]).into_owned();
        if crate::cluster::gossip::is_blacklisted(srv, &name) {
            c.reply.add_ok();
            return;
        }
        c.reply.add_error(&format!("ERR Unknown node {}", name));
        return;
    };
    if id == MYSELF {
        c.reply
            .add_error("ERR I tried hard but I can't forget myself...");
        return;
    }
    let me = st.nodes.myself();
    if me.is_replica() && me.replicaof == Some(id) {
        c.reply.add_error("ERR Can't forget my master!");
        return;
    }
    let name = st.nodes.get(id).map(|n| n.name.clone()).unwrap_or_default();
    let ttl = srv
        .config
        .get("cluster-blacklist-ttl")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(60);
    crate::cluster::gossip::blacklist_add(srv, &name, ttl.saturating_mul(1000));
    crate::cluster::gossip::del_node(srv, id);
    state(srv).save_config_or_die();
    c.reply.add_ok();
    // After the reply: pushes to the running client follow it, as upstream.
    crate::cluster::remove_channels_in_dropped_slots(srv, Some(c));
}

/// CLUSTER RESET [HARD|SOFT]: slot states closed, slots released, other nodes forgotten;
/// HARD also zeroes the epochs and draws a new name and shard id.
fn reset_command(srv: &mut Server, c: &mut Client) {
    if !enabled(srv, c) {
        return;
    }
    let hard = match c.argv.len() {
        2 => false,
        3 if c.argv[2].eq_ignore_ascii_case(b"hard") => true,
        3 if c.argv[2].eq_ignore_ascii_case(b"soft") => false,
        3 => {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        _ => {
            let sub = String::from_utf8_lossy(&c.argv[1]).into_owned();
            c.reply.add_error(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
                sub
            ));
            return;
        }
    };
    if state(srv).nodes.myself().is_primary() && db_has_keys(srv) {
        c.reply
            .add_error("ERR CLUSTER RESET can't be called with master nodes containing keys");
        return;
    }
    // A replica turns into an empty primary first (upstream's clusterReset).
    if state(srv).nodes.myself().is_replica() {
        crate::cluster::failover::detach_replica(srv);
        crate::db::empty_data(srv, None, false);
    }
    crate::cluster::failover::reset_manual_failover(srv);
    let others: Vec<NodeId> = state(srv)
        .nodes
        .iter()
        .map(|(i, _)| i)
        .filter(|i| *i != MYSELF)
        .collect();
    for id in others {
        crate::cluster::gossip::del_node(srv, id);
    }
    state(srv).failover = Default::default();
    let st = state(srv);
    st.bus.blacklist.clear();
    let t = &mut st.nodes;
    t.migrating.clear();
    t.importing.clear();
    for s in 0..CLUSTER_SLOTS as u16 {
        t.del_slot(s);
    }
    let me = t.myself_mut();
    me.flags = nflags::MYSELF | nflags::PRIMARY;
    me.replicaof = None;
    me.replicas.clear();
    if hard {
        t.current_epoch = 0;
        t.last_vote_epoch = 0;
        let me = t.myself_mut();
        me.config_epoch = 0;
        let old = std::mem::replace(&mut me.name, crate::util::random_hex40());
        me.shard_id = crate::util::random_hex40();
        let new = me.name.clone();
        t.by_name.remove(&old);
        t.by_name.insert(new.clone(), MYSELF);
        log::info!("Node hard reset, now I'm {}", new);
    }
    st.save_config_or_die();
    c.reply.add_ok();
    // After the reply: pushes to the running client follow it, as upstream.
    crate::cluster::remove_channels_in_dropped_slots(srv, Some(c));
}
