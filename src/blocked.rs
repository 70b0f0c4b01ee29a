//! Blocking operations (upstream's `blocked.c`): clients blocked on keys by BLPOP,
//! BLMOVE, BZPOPMIN... and served first-come first-served when the keys get data.
//!
//! (Placeholder API: the framework is being written for issue 3.)

#![allow(dead_code)]

use crate::client::Client;
use crate::object::ObjType;
use crate::server::Server;

/// What a client blocks for (upstream's `BLOCKED_LIST`, `BLOCKED_ZSET`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    List,
    ZSet,
    Stream,
}

/// Parses a blocking command's timeout argument (seconds, fractional allowed, 0 = block
/// forever) into an absolute unix time in ms (0 = no timeout), with upstream's errors.
pub fn get_timeout(srv: &Server, arg: &[u8]) -> Result<i64, &'static str> {
    let _ = (srv, arg);
    Ok(0)
}

/// Whether the client may not block (inside MULTI/EXEC or a script): the command then
/// replies as if the timeout had expired.
pub fn blocking_denied(c: &Client) -> bool {
    let _ = c;
    true
}

/// Blocks the running client on `keys` of its db until one of them gets data of `btype`
/// (or is deleted, with `unblock_on_nokey`), or `timeout_ms` (absolute, 0 = never)
/// passes. When a key is ready the client's command is executed again from the start.
pub fn block_for_keys(
    srv: &mut Server,
    c: &mut Client,
    btype: BlockType,
    keys: &[Vec<u8>],
    timeout_ms: i64,
    unblock_on_nokey: bool,
) {
    let _ = (srv, btype, keys, timeout_ms, unblock_on_nokey);
    c.reply.add_null_array();
}

/// Called when `key` is created or replaced with a value of type `t`: if clients are
/// blocked on it, queues it to serve them after the current command.
#[inline]
pub fn signal_key_as_ready(srv: &mut Server, db: usize, key: &[u8], t: ObjType) {
    let _ = (srv, db, key, t);
}
