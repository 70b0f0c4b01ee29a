//! MULTI, EXEC, DISCARD, WATCH, UNWATCH, as upstream's `multi.c`.
//!
//! While a client is in MULTI the gate queues every command but the transaction control
//! commands; a command rejected by the gate while queueing (unknown, wrong arity, NOAUTH,
//! ...) flags the transaction so EXEC answers EXECABORT. WATCHed keys are kept in
//! `Server::watched_keys`; every write signals them and flags the watchers DIRTY_CAS, so
//! EXEC answers a null array.

use super::{acl_cat as cat, call, flags as f, CommandDef};
use crate::client::{flags as cflags, Client};
use crate::reply;
use crate::server::Server;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef {
        name: "multi",
        arity: 1,
        flags: f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::NO_MULTI | f::ALLOW_BUSY,
        acl_categories: cat::FAST | cat::TRANSACTION,
        key_specs: &[],
        subcommands: &[],
        proc_: multi_command,
        group: "transactions",
        since: "1.2.0",
        summary: "Starts a transaction.",
        complexity: "O(1)",
        tips: &[],
    },
    CommandDef {
        name: "exec",
        arity: 1,
        flags: f::NOSCRIPT | f::LOADING | f::STALE | f::SKIP_SLOWLOG,
        acl_categories: cat::SLOW | cat::TRANSACTION,
        key_specs: &[],
        subcommands: &[],
        proc_: exec_command,
        group: "transactions",
        since: "1.2.0",
        summary: "Executes all commands in a transaction.",
        complexity: "Depends on commands in the transaction",
        tips: &[],
    },
    CommandDef {
        name: "discard",
        arity: 1,
        flags: f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::ALLOW_BUSY,
        acl_categories: cat::FAST | cat::TRANSACTION,
        key_specs: &[],
        subcommands: &[],
        proc_: discard_command,
        group: "transactions",
        since: "2.0.0",
        summary: "Discards a transaction.",
        complexity: "O(N), when N is the number of queued commands",
        tips: &[],
    },
    CommandDef {
        name: "watch",
        arity: -2,
        flags: f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::NO_MULTI | f::ALLOW_BUSY,
        acl_categories: cat::FAST | cat::TRANSACTION,
        key_specs: &[super::KeySpec::range(super::key_flags::RO, 1, -1, 1)],
        subcommands: &[],
        proc_: watch_command,
        group: "transactions",
        since: "2.2.0",
        summary: "Monitors changes to keys to determine the execution of a transaction.",
        complexity: "O(1) for every key.",
        tips: &[],
    },
    CommandDef {
        name: "unwatch",
        arity: 1,
        flags: f::NOSCRIPT | f::LOADING | f::STALE | f::FAST | f::ALLOW_BUSY,
        acl_categories: cat::FAST | cat::TRANSACTION,
        key_specs: &[],
        subcommands: &[],
        proc_: unwatch_command,
        group: "transactions",
        since: "2.2.0",
        summary: "Forgets about watched keys of a transaction.",
        complexity: "O(1)",
        tips: &[],
    },
];

fn multi_command(_srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::MULTI) {
        c.reply.add_error(reply::ERR_NESTED_MULTI);
        return;
    }
    c.flags |= cflags::MULTI;
    c.reply.add_ok();
}

/// Leaves MULTI state: drops the queue and the DIRTY flags, as `discardTransaction`.
pub fn discard_transaction(srv: &mut Server, c: &mut Client) {
    c.mstate.clear();
    c.mstate_argv_len_sum = 0;
    c.flags &= !(cflags::MULTI | cflags::DIRTY_CAS | cflags::DIRTY_EXEC);
    unwatch_all_keys(srv, c);
    c.watched_keys.clear();
}

fn discard_command(srv: &mut Server, c: &mut Client) {
    if !c.has_flag(cflags::MULTI) {
        c.reply.add_error(reply::ERR_DISCARD_WITHOUT_MULTI);
        return;
    }
    discard_transaction(srv, c);
    c.reply.add_ok();
}

/// Whether a WATCHed key expired since WATCH (upstream treats that as a modification).
fn watched_key_expired(srv: &Server, c: &Client) -> bool {
    c.watched_keys
        .iter()
        .any(|(db, key)| crate::db::key_is_expired(srv, *db, key))
}

fn exec_command(srv: &mut Server, c: &mut Client) {
    if !c.has_flag(cflags::MULTI) {
        c.reply.add_error(reply::ERR_EXEC_WITHOUT_MULTI);
        return;
    }
    if c.has_flag(cflags::DIRTY_EXEC) {
        c.reply.add_error(reply::ERR_EXECABORT);
        discard_transaction(srv, c);
        return;
    }
    if c.has_flag(cflags::DIRTY_CAS) || watched_key_expired(srv, c) {
        c.reply.add_null_array();
        discard_transaction(srv, c);
        return;
    }
    // The transaction runs: WATCH no longer matters.
    unwatch_all_keys(srv, c);
    c.watched_keys.clear();
    let queue = std::mem::take(&mut c.mstate);
    c.mstate_argv_len_sum = 0;
    c.flags &= !cflags::MULTI;
    c.flags |= cflags::IN_EXEC;
    c.reply.add_array_len(queue.len());
    let saved_argv = std::mem::take(&mut c.argv);
    for q in queue {
        c.argv = q.argv;
        c.last_cmd = srv.commands.commands[q.id].full_name_static;
        if let Some(e) = crate::aclsrv::exec_recheck(srv, c, q.id) {
            c.reply.add_error(&e);
            srv.stats.note_error(&c.reply);
            continue;
        }
        call(srv, c, q.id);
    }
    c.argv = saved_argv;
    c.flags &= !(cflags::IN_EXEC | cflags::DIRTY_CAS | cflags::DIRTY_EXEC);
}

fn watch_command(srv: &mut Server, c: &mut Client) {
    if c.has_flag(cflags::MULTI) {
        c.reply.add_error(reply::ERR_WATCH_IN_MULTI);
        return;
    }
    // A client already dirty does not need to watch more.
    if c.has_flag(cflags::DIRTY_CAS) {
        c.reply.add_ok();
        return;
    }
    for key in c.argv[1..].iter() {
        let entry = (c.db, key.clone());
        if c.watched_keys.contains(&entry) {
            continue;
        }
        srv.watched_keys
            .entry(entry.clone())
            .or_default()
            .push(c.slot);
        c.watched_keys.push(entry);
    }
    c.reply.add_ok();
}

fn unwatch_command(srv: &mut Server, c: &mut Client) {
    unwatch_all_keys(srv, c);
    c.watched_keys.clear();
    c.flags &= !cflags::DIRTY_CAS;
    c.reply.add_ok();
}

/// Removes the client from the watch lists of all its keys (the client's own list is left
/// for the caller to clear).
pub fn unwatch_all_keys(srv: &mut Server, c: &Client) {
    for k in &c.watched_keys {
        if let Some(v) = srv.watched_keys.get_mut(k) {
            v.retain(|&s| s != c.slot);
            if v.is_empty() {
                srv.watched_keys.remove(k);
            }
        }
    }
}
