//! Generic key commands, as upstream's `db.c`, `expire.c` and `object.c` command
//! handlers: DEL, UNLINK, EXISTS, TYPE, the EXPIRE and TTL families, PERSIST, TOUCH, KEYS,
//! SCAN, RANDOMKEY, RENAME(NX), COPY, MOVE, SWAPDB and OBJECT.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC};
use crate::object::{ObjType, Value};
use crate::reply;
use crate::server::Server;
use crate::util::{eq_ic, parse_i64_strict};
use acl::glob::Pattern;

const TIPS_MULTI_SUM: &[&str] = &["request_policy:multi_shard", "response_policy:agg_sum"];
const TIP_NONDET: &[&str] = &["nondeterministic_output"];

/// Key spec: the one key at `idx`.
const fn one(flags: u32, idx: i32) -> KeySpec {
    KeySpec::range(flags, idx, 0, 1)
}

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("del", -2, f::WRITE, cat::KEYSPACE | cat::WRITE | cat::SLOW, del_command)
        .keys(&[KeySpec::range(k::RM | k::DELETE, 1, -1, 1)])
        .doc(
            "generic",
            "1.0.0",
            "Deletes one or more keys.",
            "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).",
        )
        .tips(TIPS_MULTI_SUM),
    CommandDef::new(
        "unlink",
        -2,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        del_command,
    )
    .keys(&[KeySpec::range(k::RM | k::DELETE, 1, -1, 1)])
    .doc(
        "generic",
        "4.0.0",
        "Asynchronously deletes one or more keys.",
        "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.",
    )
    .tips(TIPS_MULTI_SUM),
    CommandDef::new(
        "exists",
        -2,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        exists_command,
    )
    .keys(&[KeySpec::range(k::RO, 1, -1, 1)])
    .doc(
        "generic",
        "1.0.0",
        "Determines whether one or more keys exist.",
        "O(N) where N is the number of keys to check.",
    )
    .tips(TIPS_MULTI_SUM),
    CommandDef::new(
        "type",
        2,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        type_command,
    )
    .keys(&[one(k::RO, 1)])
    .doc(
        "generic",
        "1.0.0",
        "Determines the type of value stored at a key.",
        "O(1)",
    ),
    CommandDef::new(
        "expire",
        -3,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        expire_command,
    )
    .keys(&[one(k::RW | k::UPDATE, 1)])
    .doc(
        "generic",
        "1.0.0",
        "Sets the expiration time of a key in seconds.",
        "O(1)",
    ),
    CommandDef::new(
        "pexpire",
        -3,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        pexpire_command,
    )
    .keys(&[one(k::RW | k::UPDATE, 1)])
    .doc(
        "generic",
        "2.6.0",
        "Sets the expiration time of a key in milliseconds.",
        "O(1)",
    ),
    CommandDef::new(
        "expireat",
        -3,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        expireat_command,
    )
    .keys(&[one(k::RW | k::UPDATE, 1)])
    .doc(
        "generic",
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
        "O(1)",
    ),
    CommandDef::new(
        "pexpireat",
        -3,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        pexpireat_command,
    )
    .keys(&[one(k::RW | k::UPDATE, 1)])
    .doc(
        "generic",
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        "O(1)",
    ),
    CommandDef::new(
        "ttl",
        2,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        ttl_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "generic",
        "1.0.0",
        "Returns the expiration time in seconds of a key.",
        "O(1)",
    )
    .tips(TIP_NONDET),
    CommandDef::new(
        "pttl",
        2,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        pttl_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "generic",
        "2.6.0",
        "Returns the expiration time in milliseconds of a key.",
        "O(1)",
    )
    .tips(TIP_NONDET),
    CommandDef::new(
        "expiretime",
        2,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        expiretime_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp.",
        "O(1)",
    ),
    CommandDef::new(
        "pexpiretime",
        2,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        pexpiretime_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        "O(1)",
    ),
    CommandDef::new(
        "persist",
        2,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        persist_command,
    )
    .keys(&[one(k::RW | k::UPDATE, 1)])
    .doc(
        "generic",
        "2.2.0",
        "Removes the expiration time of a key.",
        "O(1)",
    ),
    CommandDef::new(
        "touch",
        -2,
        f::READONLY | f::FAST,
        cat::KEYSPACE | cat::READ | cat::FAST,
        touch_command,
    )
    .keys(&[KeySpec::range(k::RO, 1, -1, 1)])
    .doc(
        "generic",
        "3.2.1",
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        "O(N) where N is the number of keys that will be touched.",
    )
    .tips(TIPS_MULTI_SUM),
    CommandDef::new(
        "keys",
        2,
        f::READONLY,
        cat::KEYSPACE | cat::READ | cat::SLOW | cat::DANGEROUS,
        keys_command,
    )
    .doc(
        "generic",
        "1.0.0",
        "Returns all key names that match a pattern.",
        "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
    )
    .tips(&["request_policy:all_shards", "nondeterministic_output_order"]),
    CommandDef::new(
        "scan",
        -2,
        f::READONLY,
        cat::KEYSPACE | cat::READ | cat::SLOW,
        scan_command,
    )
    .doc(
        "generic",
        "2.8.0",
        "Iterates over the key names in the database.",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
    )
    .tips(&[
        "nondeterministic_output",
        "request_policy:special",
        "response_policy:special",
    ]),
    CommandDef::new(
        "randomkey",
        1,
        f::READONLY,
        cat::KEYSPACE | cat::READ | cat::SLOW,
        randomkey_command,
    )
    .doc(
        "generic",
        "1.0.0",
        "Returns a random key name from the database.",
        "O(1)",
    )
    .tips(&[
        "request_policy:all_shards",
        "response_policy:special",
        "nondeterministic_output",
    ]),
    CommandDef::new(
        "rename",
        3,
        f::WRITE,
        cat::KEYSPACE | cat::WRITE | cat::SLOW,
        rename_command,
    )
    .keys(&[
        one(k::RW | k::ACCESS | k::DELETE, 1),
        one(k::OW | k::UPDATE, 2),
    ])
    .doc(
        "generic",
        "1.0.0",
        "Renames a key and overwrites the destination.",
        "O(1)",
    ),
    CommandDef::new(
        "renamenx",
        3,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        renamenx_command,
    )
    .keys(&[
        one(k::RW | k::ACCESS | k::DELETE, 1),
        one(k::OW | k::INSERT, 2),
    ])
    .doc(
        "generic",
        "1.0.0",
        "Renames a key only when the target key name doesn't exist.",
        "O(1)",
    ),
    CommandDef::new(
        "copy",
        -3,
        f::WRITE | f::DENYOOM,
        cat::KEYSPACE | cat::WRITE | cat::SLOW,
        copy_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1), one(k::OW | k::UPDATE, 2)])
    .doc(
        "generic",
        "6.2.0",
        "Copies the value of a key to a new key.",
        "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
    ),
    CommandDef::new(
        "move",
        3,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST,
        move_command,
    )
    .keys(&[one(k::RW | k::ACCESS | k::UPDATE, 1)])
    .doc("generic", "1.0.0", "Moves a key to another database.", "O(1)"),
    CommandDef::new(
        "swapdb",
        3,
        f::WRITE | f::FAST,
        cat::KEYSPACE | cat::WRITE | cat::FAST | cat::DANGEROUS,
        swapdb_command,
    )
    .doc(
        "server",
        "4.0.0",
        "Swaps two databases.",
        "O(N) where N is the count of clients watching or blocking on keys from both databases.",
    ),
    CommandDef::new("object", -2, 0, cat::SLOW, super::container_proc)
        .doc(
            "generic",
            "2.2.3",
            "A container for object introspection commands.",
            "Depends on subcommand.",
        )
        .subs(&[
            CommandDef::new(
                "encoding",
                3,
                f::READONLY,
                cat::KEYSPACE | cat::READ | cat::SLOW,
                object_encoding_command,
            )
            .keys(&[one(k::RO, 2)])
            .doc(
                "generic",
                "2.2.3",
                "Returns the internal encoding of an object.",
                "O(1)",
            )
            .tips(TIP_NONDET),
            CommandDef::new(
                "freq",
                3,
                f::READONLY,
                cat::KEYSPACE | cat::READ | cat::SLOW,
                object_freq_command,
            )
            .keys(&[one(k::RO, 2)])
            .doc(
                "generic",
                "4.0.0",
                "Returns the logarithmic access frequency counter of an object.",
                "O(1)",
            )
            .tips(TIP_NONDET),
            CommandDef::new(
                "help",
                2,
                f::LOADING | f::STALE,
                cat::KEYSPACE | cat::SLOW,
                object_help_command,
            )
            .doc(
                "generic",
                "6.2.0",
                "Returns helpful text about the different subcommands.",
                "O(1)",
            ),
            CommandDef::new(
                "idletime",
                3,
                f::READONLY,
                cat::KEYSPACE | cat::READ | cat::SLOW,
                object_idletime_command,
            )
            .keys(&[one(k::RO, 2)])
            .doc(
                "generic",
                "2.2.3",
                "Returns the time since the last access to an object.",
                "O(1)",
            )
            .tips(TIP_NONDET),
            CommandDef::new(
                "refcount",
                3,
                f::READONLY,
                cat::KEYSPACE | cat::READ | cat::SLOW,
                object_refcount_command,
            )
            .keys(&[one(k::RO, 2)])
            .doc(
                "generic",
                "2.2.3",
                "Returns the reference count of a value of a key.",
                "O(1)",
            )
            .tips(TIP_NONDET),
        ]),
    CommandDef::new(
        "dump",
        2,
        f::READONLY,
        cat::KEYSPACE | cat::READ | cat::SLOW,
        dump_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "generic",
        "2.6.0",
        "Returns a serialized representation of the value stored at a key.",
        "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).",
    )
    .tips(TIP_NONDET),
    CommandDef::new(
        "restore",
        -4,
        f::WRITE | f::DENYOOM,
        cat::KEYSPACE | cat::WRITE | cat::SLOW | cat::DANGEROUS,
        restore_command,
    )
    .keys(&[one(k::OW | k::UPDATE, 1)])
    .doc(
        "generic",
        "2.6.0",
        "Creates a key from the serialized representation of a value.",
        "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).",
    ),
];

const ERR_SAME_OBJECT: &str = "ERR source and destination objects are the same";
const ERR_LRU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
const ERR_LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

/// Parses an argument as a C `int` (`getIntFromObjectOrReply`).
fn parse_int(arg: &[u8]) -> Option<i32> {
    parse_i64_strict(arg).and_then(|v| i32::try_from(v).ok())
}

/// Parses a SCAN cursor as upstream's `string2ull`: a strict integer (not negative), or
/// else whatever `strtoull` accepts in full (leading spaces, a sign, leading zeros; a
/// `-` wraps around), up to the first NUL byte.
pub(crate) fn parse_scan_cursor(arg: &[u8]) -> Option<u64> {
    let s = match arg.iter().position(|&b| b == 0) {
        Some(n) => &arg[..n],
        None => arg,
    };
    if let Some(v) = parse_i64_strict(s) {
        return if v < 0 { None } else { Some(v as u64) };
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

fn db_index_ok(srv: &Server, id: i32) -> Option<usize> {
    usize::try_from(id).ok().filter(|&i| i < srv.dbs.len())
}

/// DEL and UNLINK (upstream's `delGenericCommand`): UNLINK always frees big values in
/// the background, DEL when `lazyfree-lazy-user-del` is set.
fn del_command(srv: &mut Server, c: &mut Client) {
    let lazy = srv.config.lazyfree_lazy_user_del || eq_ic(&c.argv[0], "unlink");
    let mut n = 0;
    for key in c.argv[1..].iter() {
        if db::expire_if_needed(srv, c.db, key) {
            continue;
        }
        if db::db_delete_lazy(srv, c.db, key, lazy) {
            srv.dirty += 1;
            n += 1;
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, c.db);
        }
    }
    c.reply.add_long(n);
}

fn exists_command(srv: &mut Server, c: &mut Client) {
    let mut n = 0;
    for key in c.argv[1..].iter() {
        if db::lookup_key_read_no_touch(srv, c.db, key).is_some() {
            n += 1;
        }
    }
    c.reply.add_long(n);
}

fn type_command(srv: &mut Server, c: &mut Client) {
    let name = if db::lookup_key_read_no_touch(srv, c.db, &c.argv[1]).is_some() {
        srv.dbs[c.db]
            .kv
            .get(&c.argv[1])
            .map(|v| v.obj_type().name())
            .unwrap_or("none")
    } else {
        "none"
    };
    c.reply.add_status(name);
}

fn touch_command(srv: &mut Server, c: &mut Client) {
    let mut n = 0;
    for key in c.argv[1..].iter() {
        if db::lookup_key_read(srv, c.db, key).is_some() {
            n += 1;
        }
    }
    c.reply.add_long(n);
}

/* ---------------------------------------------------------------- expire */

pub(crate) use crate::types::hash::{EXPIRE_GT, EXPIRE_LT, EXPIRE_NX, EXPIRE_XX};

/// Parses the NX|XX|GT|LT options of the EXPIRE and HEXPIRE families in
/// `argv[from..to]` (flags as [`EXPIRE_NX`]...), replying the error and returning None
/// on an unknown or incompatible option.
pub(crate) fn parse_expire_flags(c: &mut Client, from: usize, to: usize) -> Option<u32> {
    let mut flags = 0u32;
    for opt in c.argv.get(from..to).unwrap_or(&[]) {
        if eq_ic(opt, "nx") {
            flags |= EXPIRE_NX;
        } else if eq_ic(opt, "xx") {
            flags |= EXPIRE_XX;
        } else if eq_ic(opt, "gt") {
            flags |= EXPIRE_GT;
        } else if eq_ic(opt, "lt") {
            flags |= EXPIRE_LT;
        } else {
            c.reply.add_error(&format!(
                "ERR Unsupported option {}",
                reply::sanitize(opt, opt.len())
            ));
            return None;
        }
    }
    if flags & EXPIRE_NX != 0 && flags & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT) != 0 {
        c.reply
            .add_error("ERR NX and XX, GT or LT options at the same time are not compatible");
        return None;
    }
    if flags & EXPIRE_GT != 0 && flags & EXPIRE_LT != 0 {
        c.reply
            .add_error("ERR GT and LT options at the same time are not compatible");
        return None;
    }
    Some(flags)
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `basetime` is now for the relative forms and 0
/// for the absolute ones; `seconds` tells the unit of the argument.
fn expire_generic(srv: &mut Server, c: &mut Client, basetime: i64, seconds: bool) {
    let Some(flags) = parse_expire_flags(c, 3, c.argv.len()) else {
        return;
    };
    let Some(mut when) = parse_i64_strict(&c.argv[2]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    let invalid = |c: &mut Client| {
        let name = String::from_utf8_lossy(&c.argv[0]).to_ascii_lowercase();
        c.reply
            .add_error(&format!("ERR invalid expire time in '{}' command", name));
    };
    if seconds {
        match when.checked_mul(1000) {
            Some(v) => when = v,
            None => return invalid(c),
        }
    }
    match when.checked_add(basetime) {
        Some(v) => when = v.max(0),
        None => return invalid(c),
    }
    let key = &c.argv[1];
    if db::lookup_key_write(srv, c.db, key).is_none() {
        c.reply.add_long(0);
        return;
    }
    if flags != 0 {
        let current = srv.dbs[c.db].kv.get_expire(key);
        let refuse = (flags & EXPIRE_NX != 0 && current.is_some())
            || (flags & EXPIRE_XX != 0 && current.is_none())
            || (flags & EXPIRE_GT != 0 && current.is_none_or(|cur| when <= cur))
            || (flags & EXPIRE_LT != 0 && current.is_some_and(|cur| when >= cur));
        if refuse {
            c.reply.add_long(0);
            return;
        }
    }
    if when <= srv.mstime {
        // Already in the past: the key goes now, as an expiry (propagated as DEL).
        db::delete_expired_key_from_overwrite(srv, c, 1);
    } else {
        db::set_expire(srv, c.db, key, when);
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_GENERIC, "expire", key, c.db);
        // Propagated as PEXPIREAT with the absolute time (the flags kept).
        if crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL) {
            let mut argv = c.argv.clone();
            argv[0] = b"PEXPIREAT".to_vec();
            argv[2] = when.to_string().into_bytes();
            c.propagate_argv = Some(argv);
        }
    }
    c.reply.add_long(1);
}

fn expire_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    expire_generic(srv, c, now, true);
}

fn pexpire_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    expire_generic(srv, c, now, false);
}

fn expireat_command(srv: &mut Server, c: &mut Client) {
    expire_generic(srv, c, 0, true);
}

fn pexpireat_command(srv: &mut Server, c: &mut Client) {
    expire_generic(srv, c, 0, false);
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME.
fn ttl_generic(srv: &mut Server, c: &mut Client, ms: bool, absolute: bool) {
    let key = &c.argv[1];
    if db::lookup_key_read_no_touch(srv, c.db, key).is_none() {
        c.reply.add_long(-2);
        return;
    }
    match srv.dbs[c.db].kv.get_expire(key) {
        None => c.reply.add_long(-1),
        Some(when) => {
            let ttl = if absolute {
                when
            } else {
                when.saturating_sub(srv.mstime)
            }
            .max(0);
            // Rounded to seconds as upstream's `(ttl + 500) / 1000`, which its compiler
            // evaluates without overflow for TTLs near i64::MAX.
            c.reply.add_long(if ms {
                ttl
            } else {
                ((ttl as i128 + 500) / 1000) as i64
            });
        }
    }
}

fn ttl_command(srv: &mut Server, c: &mut Client) {
    ttl_generic(srv, c, false, false);
}

fn pttl_command(srv: &mut Server, c: &mut Client) {
    ttl_generic(srv, c, true, false);
}

fn expiretime_command(srv: &mut Server, c: &mut Client) {
    ttl_generic(srv, c, false, true);
}

fn pexpiretime_command(srv: &mut Server, c: &mut Client) {
    ttl_generic(srv, c, true, true);
}

fn persist_command(srv: &mut Server, c: &mut Client) {
    let key = &c.argv[1];
    if db::lookup_key_write(srv, c.db, key).is_some() && srv.dbs[c.db].kv.remove_expire(key) {
        db::signal_modified_key(srv, c.db, key);
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_GENERIC, "persist", key, c.db);
        c.reply.add_long(1);
    } else {
        c.reply.add_long(0);
    }
}

/* ---------------------------------------------------------------- iteration */

fn keys_command(srv: &mut Server, c: &mut Client) {
    let pat = &c.argv[1];
    let allkeys = pat.as_slice() == b"*";
    let pattern = if allkeys {
        None
    } else {
        Some(Pattern::new(pat, false))
    };
    let now = srv.mstime;
    let mut out: Vec<Vec<u8>> = Vec::new();
    srv.dbs[c.db].kv.for_each(&mut |key, _, expire| {
        if pattern.as_ref().is_none_or(|p| p.matches(key)) && expire.is_none_or(|w| w > now) {
            out.push(key.to_vec());
        }
    });
    c.reply.add_bulk_array(&out);
}

/// What a SCAN-family command iterates: the options each accepts differ.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanOf {
    Keys,
    Hash,
    Set,
    ZSet,
}

/// The options of SCAN, HSCAN, SSCAN and ZSCAN.
pub(crate) struct ScanOpts {
    pub count: i64,
    /// None for no MATCH or `MATCH *`.
    pub pattern: Option<Pattern>,
    /// SCAN's TYPE.
    pub type_filter: Option<ObjType>,
    /// HSCAN's NOVALUES.
    pub novalues: bool,
    /// ZSCAN's NOSCORES.
    pub noscores: bool,
}

impl ScanOpts {
    pub fn matches(&self, item: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.matches(item))
    }
}

/// Parses the options from `argv[first..]` as upstream's `scanGenericCommand` does for
/// every command of the family, replying the error and returning None when invalid.
pub(crate) fn parse_scan_opts(c: &mut Client, first: usize, of: ScanOf) -> Option<ScanOpts> {
    let mut o = ScanOpts {
        count: 10,
        pattern: None,
        type_filter: None,
        novalues: false,
        noscores: false,
    };
    let argv = &c.argv;
    let mut i = first;
    while i < argv.len() {
        let left = argv.len() - i;
        let opt = &argv[i];
        if eq_ic(opt, "count") && left >= 2 {
            match parse_i64_strict(&argv[i + 1]) {
                None => {
                    c.reply.add_error(reply::ERR_NOT_INTEGER);
                    return None;
                }
                Some(n) if n < 1 => {
                    c.reply.add_error(reply::ERR_SYNTAX);
                    return None;
                }
                Some(n) => o.count = n,
            }
            i += 2;
        } else if eq_ic(opt, "match") && left >= 2 {
            let p = &argv[i + 1];
            o.pattern = (p.as_slice() != b"*").then(|| Pattern::new(p, false));
            i += 2;
        } else if eq_ic(opt, "type") && of == ScanOf::Keys && left >= 2 {
            match ObjType::from_name(&argv[i + 1]) {
                Some(t) => o.type_filter = Some(t),
                None => {
                    let name = &argv[i + 1];
                    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                    c.reply.add_error(&format!(
                        "ERR unknown type name '{}'",
                        reply::sanitize(&name[..end], end)
                    ));
                    return None;
                }
            }
            i += 2;
        } else if eq_ic(opt, "novalues") {
            if of != ScanOf::Hash {
                c.reply
                    .add_error("ERR NOVALUES option can only be used in HSCAN");
                return None;
            }
            o.novalues = true;
            i += 1;
        } else if eq_ic(opt, "noscores") {
            if of != ScanOf::ZSet {
                c.reply
                    .add_error("ERR NOSCORES option can only be used in ZSCAN");
                return None;
            }
            o.noscores = true;
            i += 1;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return None;
        }
    }
    Some(o)
}

fn scan_command(srv: &mut Server, c: &mut Client) {
    let Some(mut cursor) = parse_scan_cursor(&c.argv[1]) else {
        c.reply.add_error("ERR invalid cursor");
        return;
    };
    let Some(opts) = parse_scan_opts(c, 2, ScanOf::Keys) else {
        return;
    };
    let ScanOpts {
        count,
        pattern,
        type_filter,
        ..
    } = opts;

    // Visit buckets until COUNT keys were sampled, at most 10*COUNT steps, as upstream.
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    let mut sampled: i64 = 0;
    let mut max_iterations = count.saturating_mul(10);
    let kv = &srv.dbs[c.db].kv;
    loop {
        cursor = kv.scan(cursor, &mut |key, val| {
            sampled += 1;
            if type_filter.is_some_and(|t| t != val.obj_type()) {
                return;
            }
            if pattern.as_ref().is_some_and(|p| !p.matches(key)) {
                return;
            }
            candidates.push(key.to_vec());
        });
        if cursor == 0 || max_iterations == 0 || sampled >= count {
            break;
        }
        max_iterations -= 1;
    }
    // Expired keys are deleted on the way and left out.
    candidates.retain(|key| !db::expire_if_needed(srv, c.db, key));

    c.reply.add_array_len(2);
    let mut buf = reply::itoa_buf();
    let mut n = cursor;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    c.reply.add_bulk(&buf[i..]);
    c.reply.add_bulk_array(&candidates);
}

fn randomkey_command(srv: &mut Server, c: &mut Client) {
    // Expired keys met on the way are deleted, as upstream; after a bounded number of
    // tries the first live key found by a full walk is returned.
    for _ in 0..100 {
        let Some(key) = srv.dbs[c.db].kv.random_key() else {
            c.reply.add_null();
            return;
        };
        if !db::expire_if_needed(srv, c.db, &key) {
            c.reply.add_bulk(&key);
            return;
        }
    }
    let now = srv.mstime;
    let mut found: Option<Vec<u8>> = None;
    srv.dbs[c.db].kv.for_each(&mut |key, _, expire| {
        if found.is_none() && expire.is_none_or(|w| w > now) {
            found = Some(key.to_vec());
        }
    });
    match found {
        Some(k) => c.reply.add_bulk(&k),
        None => c.reply.add_null(),
    }
}

/* ---------------------------------------------------------------- rename, copy, move */

/// Removes `key` from `db` and returns its value, TTL and LRU, signalling the change.
fn take_key(srv: &mut Server, db: usize, key: &[u8]) -> Option<(Value, Option<i64>, u32)> {
    let kv = &mut srv.dbs[db].kv;
    let expire = kv.get_expire(key);
    let lru = kv.lru(key)?;
    let val = kv.remove(key)?;
    db::signal_modified_key(srv, db, key);
    Some((val, expire, lru))
}

/// Stores a value taken by [`take_key`] at `key` in `db`, with its TTL and LRU.
fn put_key(srv: &mut Server, db: usize, key: &[u8], val: Value, expire: Option<i64>, lru: u32) {
    db::set_key(srv, db, key, val, false);
    srv.dbs[db].kv.set_lru(key, lru);
    if let Some(when) = expire {
        db::set_expire(srv, db, key, when);
    }
}

fn rename_generic(srv: &mut Server, c: &mut Client, nx: bool) {
    let (src, dst) = (&c.argv[1], &c.argv[2]);
    if db::lookup_key_write(srv, c.db, src).is_none() {
        c.reply.add_error(reply::ERR_NO_SUCH_KEY);
        return;
    }
    if src == dst {
        if nx {
            c.reply.add_long(0);
        } else {
            c.reply.add_ok();
        }
        return;
    }
    if db::lookup_key_write(srv, c.db, dst).is_some() {
        if nx {
            c.reply.add_long(0);
            return;
        }
        db::db_delete(srv, c.db, dst);
    }
    if let Some((val, expire, lru)) = take_key(srv, c.db, src) {
        put_key(srv, c.db, dst, val, expire, lru);
    }
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_GENERIC, "rename_from", src, c.db);
    notify_keyspace_event(srv, NOTIFY_GENERIC, "rename_to", dst, c.db);
    if nx {
        c.reply.add_long(1);
    } else {
        c.reply.add_ok();
    }
}

fn rename_command(srv: &mut Server, c: &mut Client) {
    rename_generic(srv, c, false);
}

fn renamenx_command(srv: &mut Server, c: &mut Client) {
    rename_generic(srv, c, true);
}

fn move_command(srv: &mut Server, c: &mut Client) {
    let Some(id) = parse_int(&c.argv[2]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    let Some(dst) = db_index_ok(srv, id) else {
        c.reply.add_error(reply::ERR_DB_INDEX);
        return;
    };
    if dst == c.db {
        c.reply.add_error(ERR_SAME_OBJECT);
        return;
    }
    let key = &c.argv[1];
    if db::lookup_key_write(srv, c.db, key).is_none() {
        c.reply.add_long(0);
        return;
    }
    if db::lookup_key_write(srv, dst, key).is_some() {
        c.reply.add_long(0);
        return;
    }
    if let Some((val, expire, lru)) = take_key(srv, c.db, key) {
        put_key(srv, dst, key, val, expire, lru);
    }
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_GENERIC, "move_from", key, c.db);
    notify_keyspace_event(srv, NOTIFY_GENERIC, "move_to", key, dst);
    c.reply.add_long(1);
}

fn copy_command(srv: &mut Server, c: &mut Client) {
    let mut dst = c.db;
    let mut replace = false;
    let mut j = 3;
    while j < c.argv.len() {
        let additional = c.argv.len() - j - 1;
        if eq_ic(&c.argv[j], "replace") {
            replace = true;
        } else if eq_ic(&c.argv[j], "db") && additional >= 1 {
            let Some(id) = parse_int(&c.argv[j + 1]) else {
                c.reply.add_error(reply::ERR_NOT_INTEGER);
                return;
            };
            let Some(d) = db_index_ok(srv, id) else {
                c.reply.add_error(reply::ERR_DB_INDEX);
                return;
            };
            dst = d;
            j += 1;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    let (key, newkey) = (&c.argv[1], &c.argv[2]);
    if dst == c.db && key == newkey {
        c.reply.add_error(ERR_SAME_OBJECT);
        return;
    }
    if db::lookup_key_read(srv, c.db, key).is_none() {
        c.reply.add_long(0);
        return;
    }
    let expire = srv.dbs[c.db].kv.get_expire(key);
    let Some(val) = srv.dbs[c.db].kv.get_owned(key) else {
        c.reply.add_long(0);
        return;
    };
    if db::lookup_key_write(srv, dst, newkey).is_some() {
        if !replace {
            c.reply.add_long(0);
            return;
        }
        db::db_delete(srv, dst, newkey);
    }
    db::set_key(srv, dst, newkey, val, false);
    if let Some(when) = expire {
        db::set_expire(srv, dst, newkey, when);
    }
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_GENERIC, "copy_to", newkey, dst);
    c.reply.add_long(1);
}

fn swapdb_command(srv: &mut Server, c: &mut Client) {
    if srv.config.cluster_enabled {
        c.reply
            .add_error("ERR SWAPDB is not allowed in cluster mode");
        return;
    }
    let Some(id1) = parse_int(&c.argv[1]) else {
        c.reply.add_error("ERR invalid first DB index");
        return;
    };
    let Some(id2) = parse_int(&c.argv[2]) else {
        c.reply.add_error("ERR invalid second DB index");
        return;
    };
    let (Some(a), Some(b)) = (db_index_ok(srv, id1), db_index_ok(srv, id2)) else {
        c.reply.add_error(reply::ERR_DB_INDEX);
        return;
    };
    if a != b {
        // WATCHed keys of either db that exist in either of them now see another value
        // (or none): their transactions must fail.
        let watched: Vec<(usize, Vec<u8>)> = srv
            .watched_keys
            .keys()
            .filter(|(d, _)| *d == a || *d == b)
            .cloned()
            .collect();
        for (d, key) in watched {
            let other = if d == a { b } else { a };
            if srv.dbs[d].kv.get(&key).is_some() || srv.dbs[other].kv.get(&key).is_some() {
                srv.touch_watched_key(d, &key);
            }
        }
        srv.dbs.swap(a, b);
        srv.dbs[a].id = a;
        srv.dbs[b].id = b;
        // Clients blocked in either db may now find their keys.
        crate::blocked::scan_database_for_ready_keys(srv, a);
        crate::blocked::scan_database_for_ready_keys(srv, b);
    }
    srv.dirty += 1;
    c.reply.add_ok();
}

/* ---------------------------------------------------------------- object */

/// The key of an OBJECT subcommand, looked up without touching it; replies null if
/// missing.
fn object_lookup(srv: &mut Server, c: &mut Client) -> bool {
    if db::lookup_key_read_no_touch(srv, c.db, &c.argv[2]).is_some() {
        true
    } else {
        c.reply.add_null();
        false
    }
}

fn object_encoding_command(srv: &mut Server, c: &mut Client) {
    if !object_lookup(srv, c) {
        return;
    }
    match srv.dbs[c.db].kv.encoding(&c.argv[2]) {
        Some(e) => c.reply.add_bulk(e.name().as_bytes()),
        None => c.reply.add_null(),
    }
}

fn object_freq_command(srv: &mut Server, c: &mut Client) {
    if !object_lookup(srv, c) {
        return;
    }
    if !srv.evict.policy.is_lfu() {
        c.reply.add_error(ERR_LFU_NOT_SELECTED);
        return;
    }
    let data = srv.dbs[c.db].kv.lru(&c.argv[2]).unwrap_or(0);
    c.reply.add_long(crate::evict::lfu_freq(srv, data) as i64);
}

fn object_idletime_command(srv: &mut Server, c: &mut Client) {
    if !object_lookup(srv, c) {
        return;
    }
    if srv.evict.policy.is_lfu() {
        c.reply.add_error(ERR_LRU_NOT_SELECTED);
        return;
    }
    let lru = srv.dbs[c.db].kv.lru(&c.argv[2]).unwrap_or(srv.lruclock);
    let idle = crate::server::estimate_idle_time_ms(srv.lruclock, lru) / 1000;
    c.reply.add_long(idle as i64);
}

fn object_refcount_command(srv: &mut Server, c: &mut Client) {
    if !object_lookup(srv, c) {
        return;
    }
    // Values are never shared between keys (upstream 9 embeds the key in the value).
    c.reply.add_long(1);
}

fn object_help_command(_srv: &mut Server, c: &mut Client) {
    c.reply.add_help(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// DUMP, RESTORE (upstream's cluster.c)
// ---------------------------------------------------------------------------------------

const ERR_DUMP_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const ERR_BAD_DATA: &str = "ERR Bad data format";

/// The DUMP payload of a value: type byte, value encoding, RDB version (2 bytes LE)
/// and the CRC-64 of all that (8 bytes LE).
pub fn create_dump_payload(v: crate::object::ValueRef<'_>, compress: bool) -> Vec<u8> {
    let mut w = rdb::encoding::Writer::new();
    w.u8(crate::rdb::value::object_type(v));
    crate::rdb::value::write_value(&mut w, v, compress);
    let mut out = w.into_inner();
    out.extend_from_slice(&(rdb::RDB_VERSION as u16).to_le_bytes());
    let crc = rdb::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Upstream's `verifyDumpPayload`: the footer's RDB version must be accepted
/// (`rdbIsVersionAccepted` without a magic: 1..=our version minus the foreign range,
/// any version >= 1 with `rdb-version-check relaxed`) and the CRC-64 must match.
/// Returns the payload's RDB version.
fn verify_dump_payload(p: &[u8], relaxed: bool) -> Option<u16> {
    let body_len = p.len().checked_sub(10)?;
    let ver = u16::from_le_bytes([p[body_len], p[body_len + 1]]);
    let v = ver as u32;
    let accepted = v >= 1 && (relaxed || (v <= rdb::RDB_VERSION && !rdb::is_foreign_version(v)));
    if !accepted {
        return None;
    }
    let crc = rdb::crc64(&p[..body_len + 2]);
    let mut want = [0u8; 8];
    want.copy_from_slice(&p[body_len + 2..]);
    (crc == u64::from_le_bytes(want)).then_some(ver)
}

fn dump_command(srv: &mut Server, c: &mut Client) {
    let compress = srv.config.rdbcompression;
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_null(),
        Some(v) => {
            let payload = create_dump_payload(v, compress);
            c.reply.add_bulk(&payload);
        }
    }
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub(crate) fn restore_command(srv: &mut Server, c: &mut Client) {
    let mut replace = false;
    let mut absttl = false;
    let mut lru_idle: i64 = -1;
    let mut lfu_freq: i64 = -1;
    let argc = c.argv.len();
    let mut j = 4;
    while j < argc {
        let more = argc - j - 1;
        let a = &c.argv[j];
        if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "absttl") {
            absttl = true;
        } else if eq_ic(a, "idletime") && more >= 1 && lfu_freq == -1 {
            let Some(n) = parse_i64_strict(&c.argv[j + 1]) else {
                c.reply.add_error(reply::ERR_NOT_INTEGER);
                return;
            };
            if n < 0 {
                c.reply
                    .add_error("ERR Invalid IDLETIME value, must be >= 0");
                return;
            }
            lru_idle = n;
            j += 1;
        } else if eq_ic(a, "freq") && more >= 1 && lru_idle == -1 {
            let Some(n) = parse_i64_strict(&c.argv[j + 1]) else {
                c.reply.add_error(reply::ERR_NOT_INTEGER);
                return;
            };
            if !(0..=255).contains(&n) {
                c.reply
                    .add_error("ERR Invalid FREQ value, must be >= 0 and <= 255");
                return;
            }
            lfu_freq = n;
            j += 1;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }

    let dbid = c.db;
    if !replace && db::lookup_key_write(srv, dbid, &c.argv[1]).is_some() {
        c.reply.add_error("BUSYKEY Target key name already exists.");
        return;
    }
    let Some(mut ttl) = parse_i64_strict(&c.argv[2]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    if ttl < 0 {
        c.reply.add_error("ERR Invalid TTL value, must be >= 0");
        return;
    }
    let relaxed = srv
        .config
        .get("rdb-version-check")
        .is_some_and(|v| v == "relaxed");
    let payload = &c.argv[3];
    let Some(ver) = verify_dump_payload(payload, relaxed) else {
        c.reply.add_error(ERR_DUMP_PAYLOAD);
        return;
    };
    let Some(&typ) = payload.first() else {
        c.reply.add_error(ERR_BAD_DATA);
        return;
    };
    if !rdb::is_object_type(typ) {
        c.reply.add_error(ERR_BAD_DATA);
        return;
    }
    if rdb::is_foreign_version(ver as u32) && typ >= rdb::FOREIGN_TYPE_MIN {
        c.reply
            .add_error(&format!("ERR Unsupported foreign data type: {}", typ));
        return;
    }
    let deep = match srv.config.sanitize_dump_payload {
        crate::config::SanitizeDump::No => false,
        crate::config::SanitizeDump::Yes => true,
        // No client is a primary's link yet (replication comes later).
        crate::config::SanitizeDump::Clients => true,
    };
    let lim = rdb::object::Limits {
        max_string: srv.config.proto_max_bulk_len.max(0) as u64,
        deep,
    };
    // The value is decoded from the bytes after the type byte; like upstream the
    // reader may run into the 10-byte footer, which then fails as bad data.
    let mut r = rdb::encoding::Reader::new(&payload[1..]);
    let val = match crate::rdb::value::read_value(&mut r, typ, &srv.config, &lim) {
        Ok(v) => v,
        Err(_) => {
            c.reply.add_error(ERR_BAD_DATA);
            return;
        }
    };

    let key = c.argv[1].clone();
    let deleted = replace && db::db_delete(srv, dbid, &key);
    if ttl != 0 && !absttl {
        ttl = ttl.saturating_add(srv.mstime);
    }
    if ttl != 0 && ttl <= srv.mstime {
        if deleted {
            db::signal_modified_key(srv, dbid, &key);
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &key, dbid);
            srv.dirty += 1;
            // Propagated as the deletion of the replaced key.
            if crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL) {
                let del: &[u8] = if srv.config.lazyfree_lazy_server_del {
                    b"UNLINK"
                } else {
                    b"DEL"
                };
                c.propagate_argv = Some(vec![del.to_vec(), key.clone()]);
            }
        }
        c.reply.add_ok();
        return;
    }
    // A relative TTL is propagated as an absolute one (`... ABSTTL` appended).
    if ttl != 0
        && !absttl
        && crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL)
    {
        let mut argv = c.argv.clone();
        argv[2] = ttl.to_string().into_bytes();
        argv.push(b"ABSTTL".to_vec());
        c.propagate_argv = Some(argv);
    }
    db::db_add(srv, dbid, &key, val);
    if ttl != 0 {
        db::set_expire(srv, dbid, &key, ttl);
    }
    if lfu_freq >= 0 && srv.evict.policy.is_lfu() {
        // FREQ sets the LFU counter, under an LFU policy only (objectSetLRUOrLFU).
        let minutes = crate::evict::lfu_time_minutes(srv.unixtime);
        srv.dbs[dbid]
            .kv
            .set_lru(&key, (minutes << 8) | lfu_freq.clamp(0, 255) as u32);
    }
    if lru_idle >= 0 && !srv.evict.policy.is_lfu() {
        // IDLETIME sets the LRU clock back, under a non-LFU policy.
        let clock = srv.lruclock as i64;
        let idle = lru_idle.saturating_mul(1000) / crate::server::LRU_CLOCK_RESOLUTION;
        let mut abs = clock.saturating_sub(idle);
        if abs < 0 {
            let max = crate::server::LRU_CLOCK_MAX as i64;
            abs = (clock + max / 2) % max;
        }
        srv.dbs[dbid].kv.set_lru(&key, abs as u32);
    }
    db::signal_modified_key(srv, dbid, &key);
    notify_keyspace_event(srv, NOTIFY_GENERIC, "restore", &key, dbid);
    c.reply.add_ok();
    srv.dirty += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_cursor_parsing() {
        assert_eq!(parse_scan_cursor(b"0"), Some(0));
        assert_eq!(parse_scan_cursor(b"123"), Some(123));
        assert_eq!(parse_scan_cursor(b"-1"), None);
        assert_eq!(parse_scan_cursor(b"abc"), None);
        assert_eq!(parse_scan_cursor(b""), None);
        assert_eq!(parse_scan_cursor(b"01"), Some(1));
        assert_eq!(parse_scan_cursor(b"+1"), Some(1));
        assert_eq!(parse_scan_cursor(b" 1"), Some(1));
        assert_eq!(parse_scan_cursor(b"1 "), None);
        assert_eq!(parse_scan_cursor(b"-01"), Some(u64::MAX));
        assert_eq!(parse_scan_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_scan_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_scan_cursor(b"5\0junk"), Some(5));
        assert_eq!(parse_scan_cursor(b"+"), None);
    }

    #[test]
    fn int_args() {
        assert_eq!(parse_int(b"15"), Some(15));
        assert_eq!(parse_int(b"99999999999"), None);
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"x"), None);
    }
}
