//! Server commands: INFO, COMMAND, DEBUG, DBSIZE, FLUSHDB, FLUSHALL, TIME, LASTSAVE,
//! SHUTDOWN.

use std::fmt::Write as _;

use super::{acl_cat as cat, flags as f, key_flags, BeginSearch, CommandDef, FindKeys, KeySpec};
use crate::client::{flags as cflags, Client};
use crate::reply::{self, ReplyBuf};
use crate::server::Server;
use crate::util::eq_ic;

/// The version valkey-rs reports as `valkey_version` (the upstream release it mirrors).
pub const VALKEY_VERSION: &str = "9.1.2";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "info",
        -1,
        f::LOADING | f::STALE,
        cat::SLOW | cat::DANGEROUS,
        info_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Returns information and statistics about the server.",
        "O(1)",
    )
    .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),

    CommandDef::new(
        "command",
        -1,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_command,
    )
    .doc(
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
        "O(N) where N is the total number of commands",
    )
    .tips(&["nondeterministic_output_order"])
    .subs(COMMAND_SUBCOMMANDS),
    CommandDef::new(
        "lolwut",
        -1,
        f::READONLY | f::FAST,
        cat::READ | cat::FAST,
        crate::lolwut::lolwut_command,
    )
    .doc(
        "server",
        "5.0.0",
        "Displays computer art and the server version.",
        "",
    ),
    CommandDef::new(
        "monitor",
        1,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        crate::monitor::monitor_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Listens for all requests received by the server in real-time.",
        "",
    ),
    CommandDef::new(
        "debug",
        -2,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE | f::PROTECTED,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        debug_command,
    )
    .doc(
        "server",
        "1.0.0",
        "A container for debugging commands.",
        "Depends on subcommand.",
    ),
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
        "flushdb",
        -1,
        f::WRITE,
        cat::KEYSPACE | cat::WRITE | cat::SLOW | cat::DANGEROUS,
        flushdb_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Removes all keys from the current database.",
        "O(N) where N is the number of keys in the selected database",
    )
    .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
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
        "O(N) where N is the total number of keys in all databases",
    )
    .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    CommandDef::new(
        "time",
        1,
        f::LOADING | f::STALE | f::FAST,
        cat::FAST,
        time_command,
    )
    .doc(
        "server",
        "2.6.0",
        "Returns the server time.",
        "O(1)",
    )
    .tips(&["nondeterministic_output"]),
    CommandDef::new(
        "lastsave",
        1,
        f::LOADING | f::STALE | f::FAST,
        cat::ADMIN | cat::FAST | cat::DANGEROUS,
        lastsave_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Returns the Unix timestamp of the last successful save to disk.",
        "O(1)",
    )
    .tips(&["nondeterministic_output"]),
    CommandDef::new(
        "save",
        1,
        f::ADMIN | f::NOSCRIPT | f::NO_ASYNC_LOADING | f::NO_MULTI,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        crate::rdb::save_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Synchronously saves the database(s) to disk.",
        "O(N) where N is the total number of keys in all databases",
    ),
    CommandDef::new(
        "bgsave",
        -1,
        f::ADMIN | f::NOSCRIPT | f::NO_ASYNC_LOADING,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        crate::rdb::bgsave_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Asynchronously saves the database(s) to disk.",
        "O(1)",
    ),
    CommandDef::new(
        "bgrewriteaof",
        1,
        f::NO_ASYNC_LOADING | f::ADMIN | f::NOSCRIPT,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        crate::aof::bgrewriteaof_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Asynchronously rewrites the append-only file to disk.",
        "O(1)",
    ),
    CommandDef::new(
        "shutdown",
        -1,
        f::ADMIN | f::NOSCRIPT | f::LOADING | f::STALE | f::NO_MULTI | f::ALLOW_BUSY,
        cat::ADMIN | cat::SLOW | cat::DANGEROUS,
        shutdown_command,
    )
    .doc(
        "server",
        "1.0.0",
        "Synchronously saves the database(s) to disk and shuts down the server.",
        "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)",
    ),
];

static COMMAND_SUBCOMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "count",
        2,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_count_command,
    )
    .doc("server", "2.8.13", "Returns a count of commands.", "O(1)"),
    CommandDef::new(
        "docs",
        -2,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_docs_command,
    )
    .doc(
        "server",
        "7.0.0",
        "Returns documentary information about one, multiple or all commands.",
        "O(N) where N is the number of commands to look up",
    )
    .tips(&["nondeterministic_output_order"]),
    CommandDef::new(
        "getkeys",
        -3,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_getkeys_command,
    )
    .doc(
        "server",
        "2.8.13",
        "Extracts the key names from an arbitrary command.",
        "O(N) where N is the number of arguments to the command",
    ),
    CommandDef::new(
        "getkeysandflags",
        -3,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_getkeysandflags_command,
    )
    .doc(
        "server",
        "7.0.0",
        "Extracts the key names and access flags for an arbitrary command.",
        "O(N) where N is the number of arguments to the command",
    ),
    CommandDef::new(
        "help",
        2,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_help_command,
    )
    .doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
    ),
    CommandDef::new(
        "info",
        -2,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_info_command,
    )
    .doc(
        "server",
        "2.8.13",
        "Returns information about one, multiple or all commands.",
        "O(N) where N is the number of commands to look up",
    )
    .tips(&["nondeterministic_output_order"]),
    CommandDef::new(
        "list",
        -2,
        f::LOADING | f::STALE,
        cat::SLOW | cat::CONNECTION,
        command_list_command,
    )
    .doc(
        "server",
        "7.0.0",
        "Returns a list of command names.",
        "O(N) where N is the total number of commands",
    )
    .tips(&["nondeterministic_output_order"]),
];

pub fn version_line() -> String {
    format!("valkey-rs server v={} bits=64 rust", VALKEY_VERSION)
}

const COMMAND_HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full command.",
];

const DEBUG_HELP: &[&str] = &[
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "OBJECT <key> [fast]",
    "    Show low level info about `key` and associated value.",
    "    Some fields of the default behavior may be time consuming to fetch,",
    "    and `fast` can be passed to avoid fetching them.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
];

// ---------------------------------------------------------------------------------------
// DBSIZE, FLUSHDB, FLUSHALL, TIME, LASTSAVE, SHUTDOWN
// ---------------------------------------------------------------------------------------

fn dbsize_command(srv: &mut Server, c: &mut Client) {
    c.reply.add_long(srv.dbs[c.db].kv.len() as i64);
}

/// Parses the optional ASYNC|SYNC argument of FLUSHDB / FLUSHALL: whether to free in the
/// background (default `lazyfree-lazy-user-flush`), None after a syntax error reply.
fn flush_lazy(srv: &Server, c: &mut Client) -> Option<bool> {
    flush_mode(srv, c, 1, reply::ERR_SYNTAX)
}

/// The optional ASYNC|SYNC argument at `at` (the last one) of a FLUSH-like command
/// (FLUSHDB, FLUSHALL, SCRIPT FLUSH, FUNCTION FLUSH): whether to free in the background,
/// `lazyfree-lazy-user-flush` without it; None after replying `err`.
pub(crate) fn flush_mode(srv: &Server, c: &mut Client, at: usize, err: &str) -> Option<bool> {
    match c.argv.len().checked_sub(at) {
        Some(0) => Some(srv.config.lazyfree_lazy_user_flush),
        Some(1) if eq_ic(&c.argv[at], "async") => Some(true),
        Some(1) if eq_ic(&c.argv[at], "sync") => Some(false),
        _ => {
            c.reply.add_error(err);
            None
        }
    }
}

fn flushdb_command(srv: &mut Server, c: &mut Client) {
    let Some(lazy) = flush_lazy(srv, c) else {
        return;
    };
    let n = crate::db::empty_data(srv, Some(c.db), lazy);
    srv.dirty += n as u64;
    // Propagated even when the db was already empty, as upstream.
    c.flags |= crate::client::flags::FORCE_PROP;
    c.reply.add_ok();
}

fn flushall_command(srv: &mut Server, c: &mut Client) {
    let Some(lazy) = flush_lazy(srv, c) else {
        return;
    };
    let n = crate::db::empty_data(srv, None, lazy);
    srv.dirty += n as u64;
    // The snapshot being written is stale now; with save points the empty dataset is
    // saved right away (upstream's flushAllDataAndResetRDB).
    crate::rdb::kill_child(srv);
    if !srv.config.save.is_empty() {
        let name = srv.config.dbfilename.clone();
        crate::rdb::rdb_save(srv, &name);
    }
    srv.dirty += 1;
    c.flags |= crate::client::flags::FORCE_PROP;
    c.reply.add_ok();
}

fn time_command(_srv: &mut Server, c: &mut Client) {
    let us = crate::util::ustime();
    c.reply.add_array_len(2);
    c.reply.add_bulk_i64(us / 1_000_000);
    c.reply.add_bulk_i64(us % 1_000_000);
}

fn lastsave_command(srv: &mut Server, c: &mut Client) {
    c.reply.add_long(srv.rdb.lastsave);
}

fn shutdown_command(srv: &mut Server, c: &mut Client) {
    let mut flags = 0;
    let mut abort = false;
    for a in &c.argv[1..] {
        if eq_ic(a, "nosave") {
            flags |= crate::ops::SHUTDOWN_NOSAVE;
        } else if eq_ic(a, "save") {
            flags |= crate::ops::SHUTDOWN_SAVE;
        } else if eq_ic(a, "now") {
            flags |= crate::ops::SHUTDOWN_NOW;
        } else if eq_ic(a, "force") {
            flags |= crate::ops::SHUTDOWN_FORCE;
        } else if eq_ic(a, "abort") {
            abort = true;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    }
    let both = crate::ops::SHUTDOWN_SAVE | crate::ops::SHUTDOWN_NOSAVE;
    if (abort && flags != 0) || flags & both == both {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    if abort {
        if crate::ops::abort_shutdown(srv) {
            c.reply.add_ok();
        } else {
            c.reply.add_error("ERR No shutdown in progress.");
        }
        return;
    }
    // A busy script: only SHUTDOWN NOSAVE (upstream's shutdownCommand).
    if flags & crate::ops::SHUTDOWN_NOSAVE == 0 && crate::busy::script_busy(srv) {
        c.reply.add_error(crate::busy::busy_error(srv));
        return;
    }
    let who = crate::ops::client_short_info(srv, c);
    match crate::ops::prepare_for_shutdown(srv, Some(who), flags) {
        crate::ops::Shutdown::Done => {
            // No reply: the connection closes with the server (as upstream).
            srv.ops.exit_now = true;
            c.flags |= cflags::CLOSE_AFTER_REPLY;
        }
        // Blocked (without keys, as WAIT) until the shutdown ends: an error reply if it
        // fails or is aborted.
        crate::ops::Shutdown::Waiting => {
            c.bstate = None;
            c.flags |= cflags::BLOCKED;
            srv.blocked.blocked_clients += 1;
            srv.ops.waiters.push((c.slot, c.id));
        }
        crate::ops::Shutdown::Failed => c
            .reply
            .add_error("ERR Errors trying to SHUTDOWN. Check logs."),
    }
}

// ---------------------------------------------------------------------------------------
// COMMAND
// ---------------------------------------------------------------------------------------

/// The command flags COMMAND INFO shows: the defined ones plus `movablekeys` when the key
/// specs can not be expressed as one legacy first/last/step range.
fn effective_flags(def: &CommandDef) -> u64 {
    let (_, movable) = legacy_range(def);
    if movable {
        def.flags | f::MOVABLE_KEYS
    } else {
        def.flags
    }
}

/// ACL categories with the implicit ones upstream derives from the flags.
pub fn effective_acl_categories(def: &CommandDef) -> u64 {
    let mut cats = def.acl_categories;
    if def.flags & f::WRITE != 0 {
        cats |= cat::WRITE;
    }
    if def.flags & f::READONLY != 0 && cats & cat::SCRIPTING == 0 {
        cats |= cat::READ;
    }
    if def.flags & f::ADMIN != 0 {
        cats |= cat::ADMIN | cat::DANGEROUS;
    }
    if def.flags & f::PUBSUB != 0 {
        cats |= cat::PUBSUB;
    }
    if def.flags & f::FAST != 0 {
        cats |= cat::FAST;
    }
    if def.flags & f::BLOCKING != 0 {
        cats |= cat::BLOCKING;
    }
    if cats & cat::FAST == 0 {
        cats |= cat::SLOW;
    }
    cats
}

/// The legacy (first, last, step) triple derived from the key specs, and whether the keys
/// are movable (specs the triple can not describe), as upstream's
/// `populateCommandLegacyRangeSpec`.
fn legacy_range(def: &CommandDef) -> ((i64, i64, i64), bool) {
    let specs = def.key_specs;
    if specs.is_empty() {
        return ((0, 0, 0), false);
    }
    let range_of = |s: &KeySpec| match (s.begin, s.find) {
        (
            BeginSearch::Index(pos),
            FindKeys::Range {
                lastkey, keystep, ..
            },
        ) => Some((pos, lastkey, keystep)),
        _ => None,
    };
    if specs.len() == 1 {
        if let Some((pos, lastkey, step)) = range_of(&specs[0]) {
            let last = if lastkey >= 0 { pos + lastkey } else { lastkey };
            let movable = specs[0].flags & key_flags::INCOMPLETE != 0;
            return ((pos as i64, last as i64, step as i64), movable);
        }
    }
    let mut movable = false;
    let mut first = i32::MAX;
    let mut last: i32 = 0;
    let mut prev_last: i32 = 0;
    for s in specs {
        let Some((pos, lastkey, step)) = range_of(s) else {
            movable = true;
            continue;
        };
        if step != 1 || (prev_last != 0 && prev_last != pos - 1) {
            movable = true;
            continue;
        }
        if s.flags & key_flags::INCOMPLETE != 0 {
            movable = true;
        }
        first = first.min(pos);
        let abs = if lastkey >= 0 { lastkey + pos } else { lastkey };
        // Unsigned comparison, so a negative (relative to the end) index wins.
        if (abs as u32) > (last as u32) {
            last = abs;
        }
        prev_last = last;
    }
    if first == i32::MAX {
        return ((0, 0, 0), true);
    }
    ((first as i64, last as i64, 1), movable)
}

fn add_flag_set(r: &mut ReplyBuf, names: &[&str]) {
    r.add_set_len(names.len());
    for n in names {
        r.add_status(n);
    }
}

/// `{type: <kind>, spec: {` with `fields` entries to follow: one begin_search or
/// find_keys map of COMMAND INFO.
fn add_spec_header(r: &mut ReplyBuf, kind: &str, fields: usize) {
    r.add_map_len(2);
    r.add_bulk(b"type");
    r.add_bulk(kind.as_bytes());
    r.add_bulk(b"spec");
    r.add_map_len(fields);
}

/// A begin_search or find_keys map whose spec fields are all integers.
fn add_spec(r: &mut ReplyBuf, kind: &str, fields: &[(&str, i32)]) {
    add_spec_header(r, kind, fields.len());
    for (name, v) in fields {
        r.add_bulk(name.as_bytes());
        r.add_long(*v as i64);
    }
}

fn add_key_spec(r: &mut ReplyBuf, ks: &KeySpec) {
    if ks.notes.is_empty() {
        r.add_map_len(3);
    } else {
        r.add_map_len(4);
        r.add_bulk(b"notes");
        r.add_bulk(ks.notes.as_bytes());
    }
    r.add_bulk(b"flags");
    let names: Vec<&str> = key_flags::NAMES
        .iter()
        .filter(|(b, _)| ks.flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    add_flag_set(r, &names);
    r.add_bulk(b"begin_search");
    match ks.begin {
        BeginSearch::Unknown => add_spec(r, "unknown", &[]),
        BeginSearch::Index(pos) => add_spec(r, "index", &[("index", pos)]),
        BeginSearch::Keyword { keyword, startfrom } => {
            add_spec_header(r, "keyword", 2);
            r.add_bulk(b"keyword");
            r.add_bulk(keyword.as_bytes());
            r.add_bulk(b"startfrom");
            r.add_long(startfrom as i64);
        }
    }
    r.add_bulk(b"find_keys");
    match ks.find {
        FindKeys::Unknown => add_spec(r, "unknown", &[]),
        FindKeys::Range {
            lastkey,
            keystep,
            limit,
        } => add_spec(
            r,
            "range",
            &[("lastkey", lastkey), ("keystep", keystep), ("limit", limit)],
        ),
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            keystep,
        } => add_spec(
            r,
            "keynum",
            &[
                ("keynumidx", keynumidx),
                ("firstkey", firstkey),
                ("keystep", keystep),
            ],
        ),
    }
}

/// One command's COMMAND INFO entry (10 elements), as `addReplyCommandInfo`.
fn add_command_info(r: &mut ReplyBuf, full_name: &str, def: &CommandDef) {
    let ((first, last, step), _) = legacy_range(def);
    let flags = effective_flags(def);
    let cats = effective_acl_categories(def);
    r.add_array_len(10);
    r.add_bulk(full_name.as_bytes());
    r.add_long(def.arity as i64);
    let names: Vec<&str> = f::NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    add_flag_set(r, &names);
    r.add_long(first);
    r.add_long(last);
    r.add_long(step);
    let cat_names: Vec<String> = cat::NAMES
        .iter()
        .filter(|(b, _)| cats & b != 0)
        .map(|(_, n)| format!("@{}", n))
        .collect();
    r.add_set_len(cat_names.len());
    for n in &cat_names {
        r.add_status(n);
    }
    r.add_set_len(def.tips.len());
    for t in def.tips {
        r.add_bulk(t.as_bytes());
    }
    // Key specs are a set in RESP3, as upstream.
    r.add_set_len(def.key_specs.len());
    for ks in def.key_specs {
        add_key_spec(r, ks);
    }
    r.add_array_len(def.subcommands.len());
    for sub in def.subcommands {
        let full = format!("{}|{}", def.name, sub.name);
        add_command_info(r, &full, sub);
    }
}

/// One command's COMMAND DOCS entry, as `addReplyCommandDocs` (no argument tree yet).
/// Copies RESP3 bytes (bulk strings, simple strings, integers, arrays, sets and maps)
/// as RESP2: a map of n pairs becomes an array of 2n elements, a set an array.
fn resp3_to_resp2(mut src: &[u8], out: &mut Vec<u8>) {
    while let Some(nl) = src.iter().position(|&b| b == b'\n') {
        let line = &src[..nl + 1];
        let body = &line[1..line.len().saturating_sub(2)];
        let n: usize = std::str::from_utf8(body)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        match line[0] {
            b'%' => out.extend_from_slice(format!("*{}\r\n", n * 2).as_bytes()),
            b'~' => out.extend_from_slice(format!("*{}\r\n", n).as_bytes()),
            b'$' => {
                let end = (nl + 1 + n + 2).min(src.len());
                out.extend_from_slice(&src[..end]);
                src = &src[end..];
                continue;
            }
            _ => out.extend_from_slice(line),
        }
        src = &src[nl + 1..];
    }
}

fn add_command_docs(r: &mut ReplyBuf, full_name: &str, def: &CommandDef) {
    let extra = super::docs_data::EXTRA
        .binary_search_by(|e| e.0.cmp(full_name))
        .ok()
        .map(|i| &super::docs_data::EXTRA[i]);
    let n = 3
        + usize::from(!def.complexity.is_empty())
        + extra.map_or(0, |e| e.1)
        + usize::from(!def.subcommands.is_empty());
    r.add_map_len(n);
    r.add_bulk(b"summary");
    r.add_bulk(def.summary.as_bytes());
    r.add_bulk(b"since");
    r.add_bulk(def.since.as_bytes());
    r.add_bulk(b"group");
    r.add_bulk(def.group.as_bytes());
    if !def.complexity.is_empty() {
        r.add_bulk(b"complexity");
        r.add_bulk(def.complexity.as_bytes());
    }
    if let Some(e) = extra {
        if r.resp >= 3 {
            r.add_raw(e.2);
        } else {
            let mut v = Vec::with_capacity(e.2.len());
            resp3_to_resp2(e.2, &mut v);
            r.add_raw(&v);
        }
    }
    if !def.subcommands.is_empty() {
        r.add_bulk(b"subcommands");
        r.add_map_len(def.subcommands.len());
        for sub in def.subcommands {
            let name = format!("{}|{}", def.name, sub.name);
            r.add_bulk(name.as_bytes());
            add_command_docs(r, &name, sub);
        }
    }
}

fn command_command(srv: &mut Server, c: &mut Client) {
    let r = &mut c.reply;
    let top: Vec<&super::Command> = srv.commands.top_level().collect();
    r.add_array_len(top.len());
    for cmd in top {
        add_command_info(r, &cmd.full_name, cmd.def);
    }
}

fn command_count_command(srv: &mut Server, c: &mut Client) {
    c.reply.add_long(srv.commands.top_level().count() as i64);
}

fn command_help_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_help("command", COMMAND_HELP);
}

fn command_info_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len() == 2 {
        command_command(srv, c);
        return;
    }
    let Client { argv, reply, .. } = c;
    reply.add_array_len(argv.len() - 2);
    for name in &argv[2..] {
        match srv.commands.lookup_full(name) {
            Some(id) => {
                let cmd = &srv.commands.commands[id];
                add_command_info(reply, &cmd.full_name, cmd.def);
            }
            None => reply.add_null(),
        }
    }
}

fn command_docs_command(srv: &mut Server, c: &mut Client) {
    let Client { argv, reply, .. } = c;
    let ids: Vec<usize> = if argv.len() == 2 {
        srv.commands.top_level().map(|c| c.id).collect()
    } else {
        argv[2..]
            .iter()
            .filter_map(|n| srv.commands.lookup_full(n))
            .collect()
    };
    reply.add_map_len(ids.len());
    for id in ids {
        let cmd = &srv.commands.commands[id];
        reply.add_bulk(cmd.full_name.as_bytes());
        add_command_docs(reply, &cmd.full_name, cmd.def);
    }
}

fn command_list_command(srv: &mut Server, c: &mut Client) {
    enum Filter {
        None,
        Module,
        AclCat(Option<u64>),
        Pattern(Vec<u8>),
    }
    let filter = match c.argv.len() {
        2 => Filter::None,
        5 if eq_ic(&c.argv[2], "filterby") => {
            let v = &c.argv[4];
            if eq_ic(&c.argv[3], "module") {
                Filter::Module
            } else if eq_ic(&c.argv[3], "aclcat") {
                Filter::AclCat(
                    cat::NAMES
                        .iter()
                        .find(|(_, n)| eq_ic(v, n))
                        .map(|(b, _)| *b),
                )
            } else if eq_ic(&c.argv[3], "pattern") {
                Filter::Pattern(v.clone())
            } else {
                c.reply.add_error(reply::ERR_SYNTAX);
                return;
            }
        }
        _ => {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    };
    let names: Vec<&str> = srv
        .commands
        .commands
        .iter()
        .filter(|cmd| !srv.commands.is_disabled(cmd.id))
        .filter(|cmd| match &filter {
            Filter::None => true,
            Filter::Module => false,
            Filter::AclCat(None) => false,
            Filter::AclCat(Some(b)) => effective_acl_categories(cmd.def) & b != 0,
            Filter::Pattern(p) => acl::glob::string_match(p, cmd.full_name.as_bytes(), true),
        })
        .map(|cmd| cmd.full_name.as_str())
        .collect();
    c.reply.add_bulk_array(&names);
}

/// A key found by [`get_keys`]: its argument index and the flags of its spec.
pub struct KeyRef {
    pub pos: usize,
    pub flags: u32,
}

/// Extracts the keys of `argv` (the full command, argv[0] = name) from the key specs of
/// `def`, as upstream's `getKeysUsingKeySpecs`. Returns None when a spec can not be
/// applied to the arguments (bad key count).
pub fn get_keys(def: &CommandDef, argv: &[Vec<u8>]) -> Option<Vec<KeyRef>> {
    let mut keys = Vec::new();
    get_keys_into(def, argv, &mut keys)?;
    Some(keys)
}

/// [`get_keys`] appending to a caller's buffer (the ACL gate reuses one).
pub fn get_keys_into(def: &CommandDef, argv: &[Vec<u8>], keys: &mut Vec<KeyRef>) -> Option<()> {
    if def.name == "migrate" {
        return super::migrate::get_keys(def, argv, keys);
    }
    let argc = argv.len() as i64;
    for spec in def.key_specs {
        let first: i64 = match spec.begin {
            BeginSearch::Unknown => {
                // Only SORT's STORE key can be found (upstream's `sortGetKeys`).
                if spec.flags & super::key_flags::OW != 0 {
                    if let Some(pos) = super::sort::store_key_index(def.name, argv) {
                        keys.push(KeyRef {
                            pos,
                            flags: spec.flags,
                        });
                    }
                }
                continue;
            }
            BeginSearch::Index(pos) => pos as i64,
            BeginSearch::Keyword { keyword, startfrom } => {
                let start = if startfrom > 0 {
                    startfrom as i64
                } else {
                    argc + startfrom as i64
                };
                let end = if startfrom > 0 { argc - 1 } else { 0 };
                let mut found = 0;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if eq_ic(&argv[i as usize], keyword) {
                        found = i + 1;
                        break;
                    }
                    i += if start <= end { 1 } else { -1 };
                }
                if found == 0 {
                    continue;
                }
                found
            }
        };
        let (first, last, step) = match spec.find {
            FindKeys::Unknown => continue,
            FindKeys::Range {
                lastkey,
                keystep,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + lastkey as i64
                } else if limit <= 1 {
                    argc + lastkey as i64
                } else {
                    first + ((argc - first) / limit as i64 + lastkey as i64)
                };
                (first, last, keystep as i64)
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                let idx = first + keynumidx as i64;
                if idx >= argc || idx < 0 {
                    return None;
                }
                let n = crate::util::parse_i64_strict(&argv[idx as usize])?;
                if n < 0 {
                    return None;
                }
                let f0 = first + firstkey as i64;
                let step = keystep as i64;
                let last = f0.checked_add((n - 1).checked_mul(step)?)?;
                (f0, last, step)
            }
        };
        if step <= 0 {
            continue;
        }
        let mut i = first;
        while i <= last {
            if i >= argc || i < first {
                // A variable-arity command with too few arguments: the command itself
                // reports the error.
                if def.arity < 0 {
                    break;
                }
                return None;
            }
            keys.push(KeyRef {
                pos: i as usize,
                flags: spec.flags,
            });
            i += step;
        }
    }
    Some(())
}

fn getkeys_common(srv: &mut Server, c: &mut Client, with_flags: bool) {
    let args = &c.argv[2..];
    let Ok(id) = srv.commands.lookup(args) else {
        c.reply.add_error("ERR Invalid command specified");
        return;
    };
    let def = srv.commands.commands[id].def;
    // Channels (SSUBSCRIBE's not_key specs) are not keys.
    if def
        .key_specs
        .iter()
        .all(|ks| ks.flags & key_flags::NOT_KEY != 0)
    {
        c.reply.add_error("ERR The command has no key arguments");
        return;
    }
    let argc = args.len() as i64;
    if (def.arity > 0 && def.arity as i64 != argc) || argc < -(def.arity as i64) {
        c.reply
            .add_error("ERR Invalid number of arguments specified for command");
        return;
    }
    let keys = match get_keys(def, args) {
        Some(k) if !k.is_empty() => k,
        _ => {
            if def.flags & f::NO_MANDATORY_KEYS != 0 {
                c.reply.add_array_len(0);
            } else {
                c.reply
                    .add_error("ERR Invalid arguments specified for command");
            }
            return;
        }
    };
    let Client { argv, reply, .. } = c;
    reply.add_array_len(keys.len());
    for k in keys {
        let key = &argv[2 + k.pos];
        if with_flags {
            reply.add_array_len(2);
            reply.add_bulk(key);
            let names: Vec<&str> = key_flags::NAMES
                .iter()
                .filter(|(b, _)| k.flags & b != 0)
                .map(|(_, n)| *n)
                .collect();
            add_flag_set(reply, &names);
        } else {
            reply.add_bulk(key);
        }
    }
}

fn command_getkeys_command(srv: &mut Server, c: &mut Client) {
    getkeys_common(srv, c, false);
}

fn command_getkeysandflags_command(srv: &mut Server, c: &mut Client) {
    getkeys_common(srv, c, true);
}

// ---------------------------------------------------------------------------------------
// DEBUG
// ---------------------------------------------------------------------------------------

/// `strtod`-like: the longest float prefix, 0 when there is none.
fn strtod_lenient(s: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(s);
    let t = s.trim_start();
    let mut end = 0;
    let mut best = 0.0;
    for (i, _) in t.char_indices().chain(std::iter::once((t.len(), ' '))) {
        if let Ok(v) = t[..i].parse::<f64>() {
            best = v;
            end = i;
        }
    }
    let _ = end;
    best
}

/// `atoi`-like: the leading integer, 0 when there is none.
fn atoi_lenient(s: &[u8]) -> i64 {
    let mut it = s.iter().skip_while(|b| b.is_ascii_whitespace()).peekable();
    let neg = match it.peek() {
        Some(b'-') => {
            it.next();
            true
        }
        Some(b'+') => {
            it.next();
            false
        }
        _ => false,
    };
    let mut n: i64 = 0;
    for &b in it {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -n
    } else {
        n
    }
}

/// The RDB serialized length of a value (`rdbSavedObjectLen`): its encoding as a
/// snapshot writes it, LZF included when `rdbcompression` is on.
fn serialized_len(v: crate::object::ValueRef<'_>, compress: bool) -> usize {
    let mut w = rdb::encoding::Writer::new();
    crate::rdb::value::write_value(&mut w, v, compress);
    w.buf.len()
}

fn debug_command(srv: &mut Server, c: &mut Client) {
    let argc = c.argv.len();
    let sub = c.argv[1].clone();
    let reloads = ["reload", "loadaof", "rs-busy"]
        .iter()
        .any(|s| eq_ic(&sub, s));
    if eq_ic(&sub, "help") && argc == 2 {
        c.reply.add_help("debug", DEBUG_HELP);
    } else if reloads && crate::busy::serving(srv) {
        // DEBUG runs while loading (flagged `loading`), but never a load or busy loop
        // inside another (src/busy.rs).
        c.reply.add_error(crate::busy::ERR_LOADING);
    } else if eq_ic(&sub, "rs-busy") && (argc == 3 || argc == 4) {
        // Ours (no upstream counterpart): a busy "script" for tests, src/busy.rs.
        crate::busy::debug_busy(srv, c);
    } else if eq_ic(&sub, "sleep") && argc == 3 {
        let secs = strtod_lenient(&c.argv[2]);
        if let Ok(d) = std::time::Duration::try_from_secs_f64(secs) {
            std::thread::sleep(d);
        }
        c.reply.add_ok();
    } else if eq_ic(&sub, "set-active-expire") && argc == 3 {
        srv.active_expire_enabled = atoi_lenient(&c.argv[2]) != 0;
        c.reply.add_ok();
    } else if eq_ic(&sub, "object") && (argc == 3 || argc == 4) {
        let fast = argc == 4 && eq_ic(&c.argv[3], "fast");
        let key = c.argv[2].clone();
        let dbid = c.db;
        let compress = srv.config.rdbcompression;
        let Some(v) = crate::db::lookup_key_no_touch(srv, dbid, &key) else {
            c.reply.add_error(reply::ERR_NO_SUCH_KEY);
            return;
        };
        let addr = match v {
            crate::object::ValueRef::Str(b) => b.as_ptr() as usize,
            _ => 0,
        };
        let (ql, llen) = match v {
            crate::object::ValueRef::List(l) => (l.quicklist_info(), l.len()),
            _ => (None, 0),
        };
        let slen = serialized_len(v, compress);
        let db = &srv.dbs[dbid];
        let enc = db.kv.encoding(&key).map(|e| e.name()).unwrap_or("raw");
        let lru = db.kv.lru(&key).unwrap_or(0);
        let mut s = format!("Value at:{:#x} refcount:1 encoding:{}", addr, enc);
        if !fast {
            let _ = write!(s, " serializedlength:{}", slen);
        }
        if srv.evict.policy.is_lfu() {
            let freq = crate::evict::lfu_freq(srv, lru);
            let _ = write!(s, " lfu_freq:{} lfu_access_time_minutes:{}", freq, lru >> 8);
        } else {
            let idle = crate::server::estimate_idle_time_ms(srv.lruclock, lru) / 1000;
            let _ = write!(s, " lru:{} lru_seconds_idle:{}", lru, idle);
        }
        if let Some((nodes, fill, depth, sz)) = ql {
            let avg = llen as f64 / nodes as f64;
            let _ = write!(
                s,
                " ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{} ql_compressed:{}",
                nodes,
                avg,
                fill,
                (depth != 0) as u8
            );
            if !fast {
                let _ = write!(s, " ql_uncompressed_size:{}", sz);
            }
        }
        c.reply.add_status(&s);
    } else if eq_ic(&sub, "reload") {
        crate::rdb::debug_reload(srv, c);
    } else if eq_ic(&sub, "loadaof") {
        crate::aof::debug_loadaof(srv, c);
    } else if eq_ic(&sub, "populate") && (3..=5).contains(&argc) {
        debug_populate(srv, c);
    } else if eq_ic(&sub, "digest") && argc == 2 {
        let d = crate::debug::dataset_digest(srv);
        c.reply.add_status(&crate::debug::hex(&d));
    } else if eq_ic(&sub, "digest-value") {
        c.reply.add_array_len(argc - 2);
        for key in &c.argv[2..] {
            let d = crate::debug::value_digest(srv, c.db, key);
            c.reply.add_status(&crate::debug::hex(&d));
        }
    } else {
        let e = format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            reply::sanitize(&sub, 128)
        );
        c.reply.add_error(&e);
    }
}

fn debug_populate(srv: &mut Server, c: &mut Client) {
    const ERR_POSITIVE: &str = "ERR value is out of range, must be positive";
    let Some(count) = crate::util::parse_i64_strict(&c.argv[2]).filter(|&n| n >= 0) else {
        c.reply.add_error(ERR_POSITIVE);
        return;
    };
    let prefix = c.argv.get(3).cloned().unwrap_or_else(|| b"key".to_vec());
    let size = match c.argv.get(4) {
        None => 0,
        Some(a) => match crate::util::parse_i64_strict(a).filter(|&n| n >= 0) {
            Some(n) => n as usize,
            None => {
                c.reply.add_error(ERR_POSITIVE);
                return;
            }
        },
    };
    let dbid = c.db;
    for j in 0..count {
        let mut key = prefix.clone();
        let _ = write!(VecWriter(&mut key), ":{}", j);
        if crate::db::lookup_key_write(srv, dbid, &key).is_some() {
            continue;
        }
        let text = format!("value:{}", j);
        let val = if size == 0 {
            text.into_bytes()
        } else {
            let mut v = vec![0u8; size];
            let n = size.min(text.len());
            v[..n].copy_from_slice(&text.as_bytes()[..n]);
            v
        };
        crate::db::set_key_bytes(srv, dbid, &key, val, false, None);
    }
    c.reply.add_ok();
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// INFO
// ---------------------------------------------------------------------------------------

/// Sections in output order: (name, header, in "default").
const INFO_SECTIONS: &[(&str, &str, bool)] = &[
    ("server", "Server", true),
    ("tls", "TLS", false),
    ("clients", "Clients", true),
    ("memory", "Memory", true),
    ("persistence", "Persistence", true),
    ("stats", "Stats", true),
    ("replication", "Replication", true),
    ("cpu", "CPU", true),
    ("modules", "Modules", true),
    ("commandstats", "Commandstats", false),
    ("errorstats", "Errorstats", true),
    ("latencystats", "Latencystats", false),
    ("cluster", "Cluster", true),
    // Cluster mode is issue 13: the section is empty, as upstream's without cluster mode.
    ("cluster_info", "Cluster Info", false),
    // No scripting engine yet (Lua is not built): zero engines.
    ("scripting_engines", "Scripting Engines", false),
    ("keyspace", "Keyspace", true),
];

/// User and system CPU seconds of this process (and of its children).
fn cpu_times() -> (f64, f64, f64, f64) {
    let mut self_ru: RUsage = unsafe { std::mem::zeroed() };
    let mut child_ru: RUsage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the zeroed structs we own.
    unsafe {
        getrusage(0, &mut self_ru);
        getrusage(-1, &mut child_ru);
    }
    let t = |tv: &[i64; 2]| tv[0] as f64 + tv[1] as f64 / 1e6;
    (
        t(&self_ru.utime),
        t(&self_ru.stime),
        t(&child_ru.utime),
        t(&child_ru.stime),
    )
}

/// The prefix of `struct rusage` (Linux x86_64 / aarch64 layout) plus room for the rest.
#[repr(C)]
struct RUsage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut RUsage) -> i32;
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn info_section(srv: &Server, c: &Client, name: &str, s: &mut String) {
    let now_ms = crate::util::mstime();
    let uptime = (now_ms - srv.start_time_ms).max(0) / 1000;
    match name {
        "server" => {
            let os = format!(
                "{} {} {}",
                read_trimmed("/proc/sys/kernel/ostype"),
                read_trimmed("/proc/sys/kernel/osrelease"),
                std::env::consts::ARCH
            );
            let _ = write!(
                s,
                "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:{}\r\n\
                 valkey_release_stage:ga\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\n\
                 redis_build_id:0000000000000000\r\nserver_mode:{}\r\nos:{}\r\n\
                 arch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\n\
                 multiplexing_api:epoll\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\n\
                 process_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\n\
                 uptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\n\
                 clients_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\n\
                 io_threads_active:0\r\navailability_zone:{}\r\n",
                VALKEY_VERSION,
                if srv.config.cluster_enabled {
                    "cluster"
                } else {
                    "standalone"
                },
                os,
                std::process::id(),
                srv.run_id,
                srv.config.port,
                crate::util::ustime(),
                uptime,
                uptime / 86400,
                srv.hz,
                srv.config.hz,
                srv.hz,
                srv.lruclock,
                srv.executable,
                srv.config_file.as_deref().unwrap_or(""),
                srv.config.get("availability-zone").unwrap_or_default()
            );
            let mut binds = String::new();
            if srv.config.bind.is_empty() {
                binds.push_str("bind=*,bind=-::*,");
            }
            for b in &srv.config.bind {
                let _ = write!(binds, "bind={},", b);
            }
            let _ = write!(
                s,
                "listener0:name=tcp,{}port={}\r\n",
                binds, srv.config.port
            );
            if let Some(p) = &srv.config.unixsocket {
                let _ = write!(s, "listener1:name=unix,bind={}\r\n", p);
            }
        }
        "tls" => s.push_str(
            "tls_server_cert_serial:none\r\ntls_server_cert_expires_in_seconds:0\r\n\
             tls_client_cert_serial:none\r\ntls_client_cert_expires_in_seconds:0\r\n\
             tls_ca_cert_serial:none\r\ntls_ca_cert_expires_in_seconds:0\r\n",
        ),
        "clients" => {
            let paused = crate::pause::info_fields(srv);
            let mut watching = usize::from(!c.watched_keys.is_empty());
            let mut max_in = c.query_buf.len();
            let mut max_out = c.reply.pending();
            for (_, o) in srv.clients.iter() {
                if let Some(cl) = o.as_deref() {
                    watching += usize::from(!cl.watched_keys.is_empty());
                    max_in = max_in.max(cl.query_buf.len());
                    max_out = max_out.max(cl.reply.pending());
                }
            }
            let _ = write!(
                s,
                "connected_clients:{}\r\ncluster_connections:{}\r\nmaxclients:{}\r\n\
                 client_recent_max_input_buffer:{}\r\nclient_recent_max_output_buffer:{}\r\n\
                 blocked_clients:{}\r\ntracking_clients:{}\r\npubsub_clients:{}\r\n\
                 watching_clients:{}\r\nclients_in_timeout_table:{}\r\ntotal_watched_keys:{}\r\n\
                 total_blocking_keys:{}\r\ntotal_blocking_keys_on_nokey:{}\r\n\
                 paused_reason:{}\r\npaused_actions:{}\r\npaused_timeout_milliseconds:{}\r\n",
                srv.connected_clients(),
                crate::cluster::link::count(srv),
                srv.config.maxclients,
                max_in,
                max_out,
                srv.blocked.blocked_clients,
                srv.tracking.tracking_clients(),
                srv.pubsub.clients,
                watching,
                srv.blocked.timeouts.len(),
                srv.watched_keys.len(),
                srv.blocked.total_blocking_keys(),
                srv.blocked.total_blocking_keys_on_nokey(),
                paused.0,
                paused.1,
                paused.2,
            );
        }
        "memory" => crate::memory::info_memory(srv, s),
        "persistence" => crate::rdb::info_persistence(srv, s),
        "stats" => {
            let st = &srv.stats;
            let ops = st.inst[4].get();
            let _ = write!(
                s,
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                 instantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\n\
                 total_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:{}\r\n\
                 total_net_repl_output_bytes:{}\r\ntotal_net_cluster_slot_import_bytes:0\r\n\
                 total_net_cluster_slot_export_bytes:0\r\ninstantaneous_input_kbps:{:.2}\r\n\
                 instantaneous_output_kbps:{:.2}\r\ninstantaneous_input_repl_kbps:{:.2}\r\n\
                 instantaneous_output_repl_kbps:{:.2}\r\nrejected_connections:{}\r\n\
                 sync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\n\
                 expired_fields:{}\r\nexpired_stale_perc:{:.2}\r\n\
                 expired_keys_with_volatile_items_stale_perc:0.00\r\n\
                 expired_time_cap_reached_count:{}\r\nexpire_cycle_cpu_milliseconds:0\r\n\
                 evicted_keys:{}\r\nevicted_clients:{}\r\nevicted_scripts:{}\r\n\
                 total_eviction_exceeded_time:{}\r\ncurrent_eviction_exceeded_time:{}\r\n\
                 keyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\n\
                 pubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:{}\r\n\
                 total_forks:{}\r\nmigrate_cached_sockets:{}\r\nslave_expires_tracked_keys:0\r\n\
                 active_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\n\
                 active_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\n\
                 current_active_defrag_time:0\r\ntracking_total_keys:{}\r\n\
                 tracking_total_items:{}\r\ntracking_total_prefixes:{}\r\n\
                 unexpected_error_replies:{}\r\ntotal_error_replies:{}\r\n\
                 dump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\n\
                 total_writes_processed:{}\r\nio_threaded_reads_processed:0\r\n\
                 io_threaded_writes_processed:0\r\nio_threaded_freed_objects:0\r\n\
                 io_threaded_accept_processed:0\r\nio_threaded_poll_processed:0\r\n\
                 io_threaded_total_prefetch_batches:0\r\n\
                 io_threaded_total_prefetch_entries:0\r\n\
                 client_query_buffer_limit_disconnections:{}\r\n\
                 client_output_buffer_limit_disconnections:{}\r\nreply_buffer_shrinks:0\r\n\
                 reply_buffer_expands:0\r\neventloop_cycles:{}\r\neventloop_duration_sum:0\r\n\
                 eventloop_duration_cmd_sum:0\r\ninstantaneous_eventloop_cycles_per_sec:0\r\n\
                 instantaneous_eventloop_duration_usec:0\r\nacl_access_denied_auth:0\r\n\
                 acl_access_denied_cmd:0\r\nacl_access_denied_key:0\r\n\
                 acl_access_denied_channel:0\r\nacl_access_denied_tls_cert:0\r\n\
                 acl_access_denied_db:0\r\n",
                st.numconnections,
                st.numcommands,
                // As upstream, the totals include the replication traffic.
                st.net_input_bytes + st.net_repl_input_bytes,
                st.net_output_bytes + st.net_repl_output_bytes,
                st.net_repl_input_bytes,
                st.net_repl_output_bytes,
                st.inst[0].get() as f64 / 1024.0,
                st.inst[1].get() as f64 / 1024.0,
                st.inst[2].get() as f64 / 1024.0,
                st.inst[3].get() as f64 / 1024.0,
                st.rejected_conn,
                srv.repl.primary.stat_sync_full,
                srv.repl.primary.stat_sync_partial_ok,
                srv.repl.primary.stat_sync_partial_err,
                st.expiredkeys,
                st.expired_fields,
                st.expired_stale_perc,
                st.expired_time_cap_reached_count,
                st.evictedkeys,
                srv.mem.stat_evicted_clients,
                srv.scripting.cache.evicted,
                (st.total_eviction_exceeded_us + crate::evict::current_exceeded_us(srv)) / 1000,
                crate::evict::current_exceeded_us(srv) / 1000,
                st.keyspace_hits,
                st.keyspace_misses,
                srv.pubsub.channels.len(),
                srv.pubsub.patterns.len(),
                srv.pubsub.shard_channels.len(),
                srv.rdb.stat_fork_time_us,
                srv.rdb.stat_total_forks,
                srv.migrate_sockets.count(),
                srv.tracking.total_keys(),
                srv.tracking.total_items(),
                srv.tracking.total_prefixes(),
                st.unexpected_error_replies,
                st.total_error_replies,
                st.total_reads_processed,
                st.total_writes_processed,
                st.client_qbuf_limit_disconnections,
                st.client_outbuf_limit_disconnections,
                srv.cronloops
            );
            // Beyond upstream: AUTH brute-force throttling (docs/security.md).
            let g = &srv.authguard;
            let _ = write!(
                s,
                "auth_failures:{}\r\nauth_throttled:{}\r\nauth_lockouts:{}\r\n\
                 auth_locked_ips:{}\r\nauth_tracked_ips:{}\r\n",
                g.failures,
                g.refused,
                g.lockouts,
                g.locked_ips(srv.mstime),
                g.tracked_ips()
            );
        }
        "replication" => crate::replication::info(srv, s),
        "cpu" => {
            let (u, sy, cu, csy) = cpu_times();
            let _ = write!(
                s,
                "used_cpu_sys:{sy:.6}\r\nused_cpu_user:{u:.6}\r\n\
                 used_cpu_sys_children:{csy:.6}\r\nused_cpu_user_children:{cu:.6}\r\n\
                 used_cpu_sys_main_thread:{sy:.6}\r\nused_cpu_user_main_thread:{u:.6}\r\n\
                 used_active_time_main_thread:{:.6}\r\n",
                u + sy
            );
        }
        "commandstats" => {
            for cmd in &srv.commands.commands {
                let st = &srv.commands.stats[cmd.id];
                if st.calls == 0 && st.failed_calls == 0 && st.rejected_calls == 0 {
                    continue;
                }
                let per = if st.calls == 0 {
                    0.0
                } else {
                    st.usec as f64 / st.calls as f64
                };
                let _ = write!(
                    s,
                    "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},\
                     failed_calls={}\r\n",
                    cmd.full_name, st.calls, st.usec, per, st.rejected_calls, st.failed_calls
                );
            }
        }
        "latencystats" if srv.config.latency_tracking => {
            let pcts = &srv.config.latency_tracking_info_percentiles;
            for cmd in &srv.commands.commands {
                let Some(h) = srv.latency.commands.get(cmd.id) else {
                    continue;
                };
                let _ = write!(s, "latency_percentiles_usec_{}:", cmd.full_name);
                for (j, p) in pcts.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    let v = h.value_at_percentile(*p) as f64 / 1000.0;
                    let _ = write!(s, "p{}={:.3}", crate::config::fmt_percentile(*p), v);
                }
                s.push_str("\r\n");
            }
        }
        "errorstats" => {
            let mut codes: Vec<(&String, &u64)> = srv.stats.errors.iter().collect();
            codes.sort();
            for (code, n) in codes {
                let _ = write!(s, "errorstat_{}:count={}\r\n", code, n);
            }
        }
        "cluster" => {
            let on = srv.config.cluster_enabled as u8;
            let _ = write!(s, "cluster_enabled:{}\r\n", on);
        }
        "cluster_info" => {}
        "scripting_engines" => s.push_str(
            "engines_count:0\r\nengines_total_used_memory:0\r\n\
             engines_total_memory_overhead:0\r\n",
        ),
        "keyspace" => {
            for db in &srv.dbs {
                let keys = db.kv.len();
                if keys == 0 {
                    continue;
                }
                let _ = write!(
                    s,
                    "db{}:keys={},expires={},avg_ttl={},keys_with_volatile_items={}\r\n",
                    db.id,
                    keys,
                    db.kv.expires_len(),
                    db.avg_ttl,
                    db.volatile_hashes.len()
                );
            }
        }
        _ => {}
    }
}

/// The text of INFO for the given section arguments (empty: "default").
pub fn gen_info(srv: &Server, c: &Client, args: &[Vec<u8>]) -> String {
    let mut want: Vec<&str> = Vec::new();
    let (mut all, mut default) = (false, args.is_empty());
    for a in args {
        if eq_ic(a, "all") || eq_ic(a, "everything") {
            all = true;
        } else if eq_ic(a, "default") {
            default = true;
        } else if let Some((n, _, _)) = INFO_SECTIONS.iter().find(|(n, _, _)| eq_ic(a, n)) {
            want.push(n);
        }
    }
    let mut out = String::with_capacity(4096);
    for (name, header, in_default) in INFO_SECTIONS {
        if !(all || (default && *in_default) || want.contains(name)) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {}\r\n", header);
        info_section(srv, c, name, &mut out);
    }
    out
}

fn info_command(srv: &mut Server, c: &mut Client) {
    let text = gen_info(srv, c, &c.argv[1..]);
    c.reply.add_verbatim(text.as_bytes(), "txt");
}
