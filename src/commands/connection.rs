//! Connection commands: PING, ECHO, SELECT, QUIT (and HELLO, AUTH, CLIENT, RESET).

use super::{acl_cat as cat, flags as f, CommandDef};
use crate::client::{flags as cflags, Client};
use crate::reply;
use crate::server::Server;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "ping",
        -1,
        f::FAST | f::SENTINEL,
        cat::FAST | cat::CONNECTION,
        ping_command,
    )
    .doc(
        "connection",
        "1.0.0",
        "Returns the server's liveliness response.",
        "O(1)",
    )
    .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    CommandDef::new(
        "echo",
        2,
        f::FAST,
        cat::FAST | cat::CONNECTION,
        echo_command,
    )
    .doc("connection", "1.0.0", "Returns the given string.", "O(1)"),
    CommandDef::new(
        "select",
        2,
        f::LOADING | f::STALE | f::FAST,
        cat::FAST | cat::CONNECTION,
        select_command,
    )
    .doc(
        "connection",
        "1.0.0",
        "Changes the selected database.",
        "O(1)",
    ),
    CommandDef::new(
        "quit",
        -1,
        f::ALLOW_BUSY | f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::NO_AUTH,
        cat::FAST | cat::CONNECTION,
        quit_command,
    )
    .doc("connection", "1.0.0", "Closes the connection.", "O(1)"),
];

fn ping_command(_srv: &mut Server, c: &mut Client) {
    if c.argv.len() > 2 {
        c.reply.add_error_arity("ping");
        return;
    }
    if c.argv.len() == 1 {
        c.reply.add_status("PONG");
    } else {
        let a = c.argv[1].clone();
        c.reply.add_bulk(&a);
    }
}

fn echo_command(_srv: &mut Server, c: &mut Client) {
    let Client { argv, reply, .. } = c;
    reply.add_bulk(&argv[1]);
}

fn select_command(srv: &mut Server, c: &mut Client) {
    let Some(id) = crate::util::parse_i64_strict(&c.argv[1]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    if id < 0 || id as usize >= srv.dbs.len() {
        c.reply.add_error(reply::ERR_DB_INDEX);
        return;
    }
    c.db = id as usize;
    c.reply.add_ok();
}

fn quit_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_ok();
    c.flags |= cflags::CLOSE_AFTER_REPLY;
}
