//! Generic key commands, as upstream's `db.c` and `expire.c` command handlers.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::db;
use crate::server::Server;

pub static COMMANDS: &[CommandDef] = &[CommandDef::new(
    "del",
    -2,
    f::WRITE,
    cat::KEYSPACE | cat::WRITE | cat::SLOW,
    del_command,
)
.keys(&[KeySpec::range(k::RM | k::DELETE, 1, -1, 1)])
.doc("generic", "1.0.0", "Deletes one or more keys.", "O(N)")
.tips(&["request_policy:multi_shard", "response_policy:agg_sum"])];

fn del_command(srv: &mut Server, c: &mut Client) {
    let mut n = 0;
    for key in c.argv[1..].iter() {
        db::expire_if_needed(srv, c.db, key);
        if db::db_delete(srv, c.db, key) {
            srv.dirty += 1;
            n += 1;
        }
    }
    c.reply.add_long(n);
}
