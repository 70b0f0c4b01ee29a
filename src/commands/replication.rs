//! Replication commands: REPLICAOF/SLAVEOF, REPLCONF, PSYNC/SYNC, ROLE, WAIT. The
//! handlers live with the role they belong to (src/replication/primary.rs and
//! src/replication/replica.rs); this file is their command table.

use super::{acl_cat as cat, flags as f, CommandDef};

pub static COMMANDS: &[CommandDef] = &[
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
