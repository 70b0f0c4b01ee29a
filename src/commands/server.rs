//! Server commands: INFO, CONFIG, COMMAND, DEBUG, DBSIZE, FLUSHDB, FLUSHALL, TIME,
//! SHUTDOWN.

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::Client;
use crate::server::Server;

/// The version valkey-rs reports as `valkey_version` (the upstream release it mirrors).
pub const VALKEY_VERSION: &str = "9.1.2";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "dbsize",
        1,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        dbsize_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Returns the number of keys in the database.",
        "O(1)",
    )
    .tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
    CommandDef::new(
        "flushall",
        -1,
        f::WRITE,
        cat::KEYSPACE | cat::WRITE | cat::SLOW | cat::DANGEROUS,
        flushall_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Removes all keys from all databases.",
        "O(N)",
    )
    .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
];

pub fn version_line() -> String {
    format!("valkey-rs server v={} bits=64 rust", VALKEY_VERSION)
}

/// Last work before exit (SHUTDOWN, SIGTERM): later, the final save and AOF flush.
pub fn prepare_for_shutdown(srv: &mut Server) {
    for l in &srv.listeners {
        if let crate::networking::Listener::Unix(_, path) = l {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn dbsize_command(srv: &mut Server, c: &mut Client) {
    c.reply.add_long(srv.dbs[c.db].kv.len() as i64);
}

fn flushall_command(srv: &mut Server, c: &mut Client) {
    let n = crate::db::empty_data(srv, None);
    srv.dirty += n as u64 + 1;
    c.reply.add_ok();
}
