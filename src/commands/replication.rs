//! Replication commands: REPLICAOF/SLAVEOF, REPLCONF, PSYNC/SYNC, ROLE, WAIT. The
//! handlers live with the role they belong to (src/replication/primary.rs and
//! src/replication/replica.rs); this file is their command table (flags, ACL categories
//! and arities as upstream's src/commands/*.json).

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::replication::primary;

const SYNC_FLAGS: u64 = f::ADMIN | f::NOSCRIPT | f::NO_ASYNC_LOADING | f::NO_MULTI;
const CAT_ADMIN: u64 = cat::ADMIN | cat::SLOW | cat::DANGEROUS;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("sync", 1, SYNC_FLAGS, CAT_ADMIN, primary::sync_command).doc(
        "server",
        "1.0.0",
        "An internal command used in replication.",
        "",
    ),
    CommandDef::new("psync", -3, SYNC_FLAGS, CAT_ADMIN, primary::sync_command).doc(
        "server",
        "2.8.0",
        "An internal command used in replication.",
        "",
    ),
    CommandDef::new(
        "replconf",
        -1,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE | f::ALLOW_BUSY,
        CAT_ADMIN,
        primary::replconf_command,
    )
    .doc(
        "server",
        "3.0.0",
        "An internal command for configuring the replication stream.",
        "O(1)",
    ),
    CommandDef::new(
        "wait",
        3,
        f::BLOCKING,
        cat::SLOW | cat::BLOCKING | cat::CONNECTION,
        primary::wait_command,
    )
    .doc(
        "generic",
        "3.0.0",
        "Blocks until the asynchronous replication of all preceding write commands sent by \
         the connection is completed.",
        "O(1)",
    )
    .tips(&["request_policy:all_shards", "response_policy:agg_min"]),
    CommandDef::new(
        "role",
        1,
        f::NOSCRIPT | f::LOADING | f::STALE | f::FAST,
        cat::ADMIN | cat::FAST | cat::DANGEROUS,
        primary::role_command,
    )
    .doc("server", "2.8.12", "Returns the replication role.", "O(1)"),
    CommandDef::new(
        "replicaof",
        3,
        f::ADMIN | f::NOSCRIPT | f::STALE | f::NO_ASYNC_LOADING,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        crate::replication::replica::replicaof_command,
    )
    .doc(
        "server",
        "5.0.0",
        "Configures a server as replica of another, or promotes it to a primary.",
        "O(1)",
    ),
    CommandDef::new(
        "slaveof",
        3,
        f::ADMIN | f::NOSCRIPT | f::STALE | f::NO_ASYNC_LOADING,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        crate::replication::replica::replicaof_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Sets a server as a replica of another, or promotes it to being a primary.",
        "O(1)",
    ),
];
