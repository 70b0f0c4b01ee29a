//! Replication commands: REPLICAOF/SLAVEOF, REPLCONF, PSYNC/SYNC, ROLE, WAIT. The
//! handlers live with the role they belong to (src/replication/primary.rs and
//! src/replication/replica.rs); this file is their command table.

use super::CommandDef;

pub static COMMANDS: &[CommandDef] = &[];
