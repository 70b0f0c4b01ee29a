//! CLUSTER and the client-side cluster commands ASKING, READONLY and READWRITE
//! (docs/cluster-plan.md 5.2-5.4).
//!
//! Built so far (work item B of the plan): KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT, and
//! ADDSLOTS, ADDSLOTSRANGE, DELSLOTS, DELSLOTSRANGE with their local effect only (this
//! node's slot bitmap in `srv.cluster`: the first piece of item C, which adds the node
//! table, nodes.conf and the bus announcements). Every other subcommand of upstream
//! (INFO, NODES, SLOTS, SHARDS, MYID, MEET, SETSLOT, HELP...) is still answered
//! `unknown subcommand`; each one is an entry of [`CLUSTER_SUBCOMMANDS`] and a handler
//! below when it comes.

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::{flags as cflags, Client};
use crate::cluster::slot::{key_hash_slot, SlotBitmap, CLUSTER_SLOTS};
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
        let owned = st.myslots.test(s);
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
                st.myslots.clear(s);
            } else {
                st.myslots.set(s);
            }
        }
    }
    c.reply.add_ok();
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
