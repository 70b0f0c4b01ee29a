//! String commands, as upstream's `t_string.c`.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_STRING};
use crate::object::{ObjType, Value, ValueRef};
use crate::reply;
use crate::server::Server;
use crate::util::{eq_ic, parse_i64_strict};

use crate::ld;

const W_FAST: u64 = f::WRITE | f::DENYOOM | f::FAST;
const W_SLOW: u64 = f::WRITE | f::DENYOOM;
const CAT_W_FAST: u64 = cat::WRITE | cat::STRING | cat::FAST;
const CAT_W_SLOW: u64 = cat::WRITE | cat::STRING | cat::SLOW;
const CAT_R_FAST: u64 = cat::READ | cat::STRING | cat::FAST;
const CAT_R_SLOW: u64 = cat::READ | cat::STRING | cat::SLOW;
const KS_RW_ACC_UPD: &[KeySpec] = &[KeySpec::range(k::RW | k::ACCESS | k::UPDATE, 1, 0, 1)];
const KS_RO_ACC: &[KeySpec] = &[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)];
const KS_OW_UPD: &[KeySpec] = &[KeySpec::range(k::OW | k::UPDATE, 1, 0, 1)];
const RANGE_COMPLEXITY: &str = "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("get", 2, f::READONLY | f::FAST, CAT_R_FAST, get_command)
        .keys(KS_RO_ACC)
        .doc("string", "1.0.0", "Returns the string value of a key.", "O(1)"),
    CommandDef::new("set", -3, W_SLOW, CAT_W_SLOW, set_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::UPDATE | k::VARIABLE_FLAGS, 1, 0, 1)
            .notes("RW and ACCESS due to the optional `GET` argument")])
        .doc(
            "string",
            "1.0.0",
            "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("setnx", 3, W_FAST, CAT_W_FAST, setnx_command)
        .keys(&[KeySpec::range(k::OW | k::INSERT, 1, 0, 1)])
        .doc("string", "1.0.0", "Sets the string value of a key only when the key doesn't exist.", "O(1)"),
    CommandDef::new("setex", 4, W_SLOW, CAT_W_SLOW, setex_command)
        .keys(KS_OW_UPD)
        .doc(
            "string",
            "2.0.0",
            "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("psetex", 4, W_SLOW, CAT_W_SLOW, psetex_command)
        .keys(KS_OW_UPD)
        .doc(
            "string",
            "2.6.0",
            "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("getex", -2, f::WRITE | f::FAST, CAT_W_FAST, getex_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::UPDATE, 1, 0, 1)
            .notes("RW and UPDATE because it changes the TTL")])
        .doc("string", "6.2.0", "Returns the string value of a key after setting its expiration time.", "O(1)"),
    CommandDef::new("getdel", 2, f::WRITE | f::FAST, CAT_W_FAST, getdel_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, 0, 1)])
        .doc("string", "6.2.0", "Returns the string value of a key after deleting the key.", "O(1)"),
    CommandDef::new("getset", 3, W_FAST, CAT_W_FAST, getset_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "string",
            "1.0.0",
            "Returns the previous string value of a key after setting it to a new value.",
            "O(1)",
        ),
    CommandDef::new("delifeq", 3, f::WRITE | f::FAST, CAT_W_FAST, delifeq_command)
        .keys(&[KeySpec::range(k::RM | k::DELETE, 1, 0, 1)])
        .doc("string", "9.0.0", "Delete key if value matches string.", "O(1)"),
    CommandDef::new("mget", -2, f::READONLY | f::FAST, CAT_R_FAST, mget_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, -1, 1)])
        .doc(
            "string",
            "1.0.0",
            "Atomically returns the string values of one or more keys.",
            "O(N) where N is the number of keys to retrieve.",
        )
        .tips(&["request_policy:multi_shard"]),
    CommandDef::new("mset", -3, W_SLOW, CAT_W_SLOW, mset_command)
        .keys(&[KeySpec::range(k::OW | k::UPDATE, 1, -1, 2)])
        .doc(
            "string",
            "1.0.1",
            "Atomically creates or modifies the string values of one or more keys.",
            "O(N) where N is the number of keys to set.",
        )
        .tips(&["request_policy:multi_shard", "response_policy:all_succeeded"]),
    CommandDef::new("msetnx", -3, W_SLOW, CAT_W_SLOW, msetnx_command)
        .keys(&[KeySpec::range(k::OW | k::INSERT, 1, -1, 2)])
        .doc(
            "string",
            "1.0.1",
            "Atomically modifies the string values of one or more keys only when all keys don't exist.",
            "O(N) where N is the number of keys to set.",
        ),
    CommandDef::new("msetex", -4, W_SLOW | f::MOVABLE_KEYS, CAT_W_SLOW, msetex_command)
        .keys(&[KeySpec::keynum(k::OW | k::UPDATE, 1, 0, 1, 2)])
        .doc(
            "string",
            "9.1.0",
            "Atomically creates or modifies the string values of one or more keys, and optionally set their expiration.",
            "O(N) where N is the number of keys to set.",
        )
        .tips(&["request_policy:multi_shard", "response_policy:all_succeeded"]),
    CommandDef::new("append", 3, W_FAST, CAT_W_FAST, append_command)
        .keys(&[KeySpec::range(k::RW | k::INSERT, 1, 0, 1)])
        .doc(
            "string",
            "2.0.0",
            "Appends a string to the value of a key. Creates the key if it doesn't exist.",
            "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by the server will double the free space available on every reallocation.",
        ),
    CommandDef::new("strlen", 2, f::READONLY | f::FAST, CAT_R_FAST, strlen_command)
        .keys(&[KeySpec::range(k::RO, 1, 0, 1)])
        .doc("string", "2.2.0", "Returns the length of a string value.", "O(1)"),
    CommandDef::new("incr", 2, W_FAST, CAT_W_FAST, incr_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "string",
            "1.0.0",
            "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("decr", 2, W_FAST, CAT_W_FAST, decr_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "string",
            "1.0.0",
            "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("incrby", 3, W_FAST, CAT_W_FAST, incrby_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "string",
            "1.0.0",
            "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("decrby", 3, W_FAST, CAT_W_FAST, decrby_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "string",
            "1.0.0",
            "Decrements the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("incrbyfloat", 3, W_FAST, CAT_W_FAST, incrbyfloat_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "string",
            "2.6.0",
            "Increments the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("getrange", 4, f::READONLY, CAT_R_SLOW, getrange_command)
        .keys(KS_RO_ACC)
        .doc("string", "2.4.0", "Returns a substring of the string stored at a key.", RANGE_COMPLEXITY),
    CommandDef::new("substr", 4, f::READONLY, CAT_R_SLOW, getrange_command)
        .keys(KS_RO_ACC)
        .doc("string", "1.0.0", "Returns a substring from a string value.", RANGE_COMPLEXITY),
    CommandDef::new("setrange", 4, W_SLOW, CAT_W_SLOW, setrange_command)
        .keys(&[KeySpec::range(k::RW | k::UPDATE, 1, 0, 1)])
        .doc(
            "string",
            "2.2.0",
            "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
            "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.",
        ),
    CommandDef::new("lcs", -3, f::READONLY, CAT_R_SLOW, lcs_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 1, 1)])
        .doc(
            "string",
            "7.0.0",
            "Finds the longest common substring.",
            "O(N*M) where N and M are the lengths of s1 and s2, respectively",
        ),
];

/// Adds the string value to the reply (null when absent).
pub fn add_reply_string_value(c: &mut Client, v: Option<ValueRef<'_>>) -> bool {
    match v {
        None => c.reply.add_null(),
        Some(ValueRef::Int(n)) => c.reply.add_bulk_i64(n),
        Some(ValueRef::Str(b)) => c.reply.add_bulk(b),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return false;
        }
    }
    true
}

fn is_string(v: &ValueRef<'_>) -> bool {
    v.obj_type() == ObjType::String
}

/// Upstream's `getGenericCommand`: replies with the value, null, or WRONGTYPE (false).
fn get_generic(srv: &mut Server, c: &mut Client) -> bool {
    let v = db::lookup_key_read(srv, c.db, &c.argv[1]);
    if v.as_ref().is_some_and(|v| !is_string(v)) {
        c.reply.add_error(reply::ERR_WRONGTYPE);
        return false;
    }
    add_reply_string_value(c, v)
}

fn get_command(srv: &mut Server, c: &mut Client) {
    get_generic(srv, c);
}

/// `getLongLongFromObject` on an argument.
fn arg_i64(c: &mut Client, i: usize) -> Option<i64> {
    let v = parse_i64_strict(&c.argv[i]);
    if v.is_none() {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
    }
    v
}

fn err_expire(c: &mut Client, cmd: &str) {
    c.reply
        .add_error(&format!("ERR invalid expire time in '{}' command", cmd));
}

// Option flags of SET / GETEX / MSETEX.
const O_NX: u32 = 1 << 0;
const O_XX: u32 = 1 << 1;
const O_EX: u32 = 1 << 2;
const O_PX: u32 = 1 << 3;
const O_KEEPTTL: u32 = 1 << 4;
const O_GET: u32 = 1 << 5;
const O_EXAT: u32 = 1 << 6;
const O_PXAT: u32 = 1 << 7;
const O_PERSIST: u32 = 1 << 8;
const O_IFEQ: u32 = 1 << 9;
const O_EXPIRES: u32 = O_EX | O_PX | O_EXAT | O_PXAT;

#[derive(PartialEq, Clone, Copy)]
enum OptKind {
    Get,
    Set,
    MSet,
}

#[derive(Default)]
struct ExtOpts {
    flags: u32,
    /// Index of the expire argument.
    expire: Option<usize>,
    /// Index of the IFEQ comparison value.
    ifeq: Option<usize>,
}

/// Upstream's extended argument parser for SET, GETEX and MSETEX: same acceptance rules
/// (repeated compatible options are fine, conflicting ones are a syntax error).
fn parse_ext_opts(c: &mut Client, kind: OptKind, start: usize) -> Option<ExtOpts> {
    let mut o = ExtOpts::default();
    let argc = c.argv.len();
    let mut j = start;
    let is_set = kind != OptKind::Get;
    while j < argc {
        let a = &c.argv[j];
        let has_next = j + 1 < argc;
        let fl = o.flags;
        if eq_ic(a, "nx") && is_set && fl & (O_XX | O_IFEQ) == 0 {
            o.flags |= O_NX;
        } else if eq_ic(a, "xx") && is_set && fl & (O_NX | O_IFEQ) == 0 {
            o.flags |= O_XX;
        } else if eq_ic(a, "ifeq")
            && kind == OptKind::Set
            && has_next
            && fl & (O_NX | O_XX | O_IFEQ) == 0
        {
            o.flags |= O_IFEQ;
            o.ifeq = Some(j + 1);
            j += 1;
        } else if eq_ic(a, "get") && kind == OptKind::Set {
            o.flags |= O_GET;
        } else if eq_ic(a, "keepttl") && is_set && fl & (O_PERSIST | O_EXPIRES) == 0 {
            o.flags |= O_KEEPTTL;
        } else if eq_ic(a, "persist") && kind == OptKind::Get && fl & (O_EXPIRES | O_KEEPTTL) == 0 {
            o.flags |= O_PERSIST;
        } else if let Some(which) = [
            ("ex", O_EX),
            ("px", O_PX),
            ("exat", O_EXAT),
            ("pxat", O_PXAT),
        ]
        .iter()
        .find(|(n, _)| eq_ic(a, n))
        .map(|(_, w)| *w)
        .filter(|w| has_next && fl & (O_KEEPTTL | O_PERSIST | (O_EXPIRES & !w)) == 0)
        {
            o.flags |= which;
            o.expire = Some(j + 1);
            j += 1;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return None;
        }
        j += 1;
    }
    Some(o)
}

/// Upstream's `getExpireMillisecondsOrReply`: the absolute expire time in ms.
/// The absolute expiry asked by the option at `expire` (None: no expiry option), or Err
/// after replying the error.
fn expire_opt_ms(
    srv: &Server,
    c: &mut Client,
    expire: Option<usize>,
    flags: u32,
    cmd: &str,
) -> Result<Option<i64>, ()> {
    match expire {
        None => Ok(None),
        Some(i) => expire_ms(srv, c, i, flags, cmd).map(Some).ok_or(()),
    }
}

fn expire_ms(srv: &Server, c: &mut Client, idx: usize, flags: u32, cmd: &str) -> Option<i64> {
    let v = arg_i64(c, idx)?;
    let seconds = flags & (O_EX | O_EXAT) != 0;
    if v <= 0 || (seconds && v > i64::MAX / 1000) {
        err_expire(c, cmd);
        return None;
    }
    let mut ms = if seconds { v * 1000 } else { v };
    if flags & (O_EX | O_PX) != 0 {
        // Upstream adds in signed arithmetic and then checks for a wrap to <= 0.
        ms = ms.wrapping_add(srv.mstime);
    }
    if ms <= 0 {
        err_expire(c, cmd);
        return None;
    }
    Some(ms)
}

/// Whether the effects of writes are being propagated (AOF on): rewrites are built only then.
#[inline]
fn propagating(srv: &Server) -> bool {
    crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL)
}

/// Takes argument `i` (the value being stored) out of argv: `call` kept a copy of a
/// write's argv when it may be propagated, and rewrites are built before this.
#[inline]
fn take_arg(_srv: &Server, c: &mut Client, i: usize) -> Vec<u8> {
    std::mem::take(&mut c.argv[i])
}

/// Whether a computed absolute expire time has already passed.
fn already_expired(srv: &Server, when: i64) -> bool {
    when <= srv.mstime
}

/// Compares a stored string value with an argument, as `compareStringObjects`.
fn value_equals(v: &ValueRef<'_>, other: &[u8]) -> bool {
    match v {
        ValueRef::Str(b) => *b == other,
        ValueRef::Int(n) => {
            let mut t = reply::itoa_buf();
            reply::fmt_i64(&mut t, *n) == other
        }
        _ => false,
    }
}

/// Reply used when a conditional SET does nothing.
#[derive(Clone, Copy)]
enum Abort {
    Null,
    Zero,
}

/// Upstream's `setGenericCommand`.
#[allow(clippy::too_many_arguments)]
fn set_generic(
    srv: &mut Server,
    c: &mut Client,
    flags: u32,
    val_idx: usize,
    expire: Option<usize>,
    ifeq: Option<usize>,
    ok_one: bool,
    abort: Abort,
    cmd: &str,
) {
    let Ok(when) = expire_opt_ms(srv, c, expire, flags, cmd) else {
        return;
    };
    let get = flags & O_GET != 0;
    if get && !get_generic(srv, c) {
        return;
    }
    let db = c.db;
    let abort_reply = |c: &mut Client| {
        if !get {
            match abort {
                Abort::Null => c.reply.add_null(),
                Abort::Zero => c.reply.add_long(0),
            }
        }
    };
    let found;
    {
        let existing = db::lookup_key_write(srv, db, &c.argv[1]);
        found = existing.is_some();
        if flags & O_IFEQ != 0 {
            match existing {
                Some(v) => {
                    if !get && !is_string(&v) {
                        c.reply.add_error(reply::ERR_WRONGTYPE);
                        return;
                    }
                    let cmp = ifeq.map(|i| c.argv[i].as_slice()).unwrap_or_default();
                    if !value_equals(&v, cmp) {
                        abort_reply(c);
                        return;
                    }
                }
                None => {
                    abort_reply(c);
                    return;
                }
            }
        }
    }
    if (flags & O_NX != 0 && found) || (flags & O_XX != 0 && !found) {
        abort_reply(c);
        return;
    }
    if let Some(w) = when {
        if already_expired(srv, w) {
            if found {
                db::delete_expired_key_from_overwrite(srv, c, 1);
            }
            if !get {
                c.reply.add_ok();
            }
            return;
        }
    }
    if propagating(srv) {
        // Upstream's rewrites: a relative or seconds expiry becomes `SET key value PXAT
        // ms` (other options dropped); without an expiry GET is left out.
        if let (Some(w), false) = (when, flags & O_PXAT != 0) {
            c.propagate_argv = Some(vec![
                b"SET".to_vec(),
                c.argv[1].clone(),
                c.argv[val_idx].clone(),
                b"PXAT".to_vec(),
                w.to_string().into_bytes(),
            ]);
        } else if get && when.is_none() {
            let argv = c
                .argv
                .iter()
                .enumerate()
                .filter(|(j, a)| *j < 3 || !eq_ic(a, "get"))
                .map(|(_, a)| a.clone())
                .collect();
            c.propagate_argv = Some(argv);
        }
    }
    let val = take_arg(srv, c, val_idx);
    db::set_key_bytes(srv, db, &c.argv[1], val, flags & O_KEEPTTL != 0, when);
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_STRING, "set", &c.argv[1], db);
    if when.is_some() {
        notify_keyspace_event(srv, NOTIFY_GENERIC, "expire", &c.argv[1], db);
    }
    if !get {
        if ok_one {
            c.reply.add_long(1);
        } else {
            c.reply.add_ok();
        }
    }
}

fn set_command(srv: &mut Server, c: &mut Client) {
    let Some(o) = parse_ext_opts(c, OptKind::Set, 3) else {
        return;
    };
    set_generic(
        srv,
        c,
        o.flags,
        2,
        o.expire,
        o.ifeq,
        false,
        Abort::Null,
        "set",
    );
}

fn setnx_command(srv: &mut Server, c: &mut Client) {
    set_generic(srv, c, O_NX, 2, None, None, true, Abort::Zero, "setnx");
}

fn setex_command(srv: &mut Server, c: &mut Client) {
    set_generic(srv, c, O_EX, 3, Some(2), None, false, Abort::Null, "setex");
}

fn psetex_command(srv: &mut Server, c: &mut Client) {
    set_generic(srv, c, O_PX, 3, Some(2), None, false, Abort::Null, "psetex");
}

fn getex_command(srv: &mut Server, c: &mut Client) {
    let Some(o) = parse_ext_opts(c, OptKind::Get, 2) else {
        return;
    };
    let Ok(when) = expire_opt_ms(srv, c, o.expire, o.flags, "getex") else {
        return;
    };
    let db = c.db;
    if !get_generic(srv, c) {
        return;
    }
    // A missing key replied null; nothing else to do.
    if srv.dbs[db].kv.get(&c.argv[1]).is_none() {
        return;
    }
    let key = &c.argv[1];
    match when {
        Some(w) if o.flags & (O_EXAT | O_PXAT) != 0 && already_expired(srv, w) => {
            db::delete_expired_key_from_overwrite(srv, c, 1);
        }
        Some(w) => {
            db::set_expire(srv, db, key, w);
            srv.dirty += 1;
            notify_keyspace_event(srv, NOTIFY_GENERIC, "expire", key, db);
            // Propagated as PEXPIREAT with the absolute time.
            if propagating(srv) {
                c.propagate_argv = Some(vec![
                    b"PEXPIREAT".to_vec(),
                    c.argv[1].clone(),
                    w.to_string().into_bytes(),
                ]);
            }
        }
        None => {
            if o.flags & O_PERSIST != 0 && srv.dbs[db].kv.remove_expire(key) {
                db::signal_modified_key(srv, db, key);
                srv.dirty += 1;
                notify_keyspace_event(srv, NOTIFY_GENERIC, "persist", key, db);
                if propagating(srv) {
                    c.propagate_argv = Some(vec![b"PERSIST".to_vec(), c.argv[1].clone()]);
                }
            }
        }
    }
}

fn getdel_command(srv: &mut Server, c: &mut Client) {
    if !get_generic(srv, c) {
        return;
    }
    if db::db_delete(srv, c.db, &c.argv[1]) {
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &c.argv[1], c.db);
        // Propagated as DEL.
        if propagating(srv) {
            c.propagate_argv = Some(vec![b"DEL".to_vec(), c.argv[1].clone()]);
        }
    }
}

fn getset_command(srv: &mut Server, c: &mut Client) {
    if !get_generic(srv, c) {
        return;
    }
    if propagating(srv) {
        // Propagated as SET.
        c.propagate_argv = Some(vec![b"SET".to_vec(), c.argv[1].clone(), c.argv[2].clone()]);
    }
    let val = take_arg(srv, c, 2);
    db::set_key_bytes(srv, c.db, &c.argv[1], val, false, None);
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_STRING, "set", &c.argv[1], c.db);
}

fn delifeq_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let matched = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => {
            c.reply.add_long(0);
            return;
        }
        Some(v) if !is_string(&v) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
        Some(v) => value_equals(&v, &c.argv[2]),
    };
    if !matched {
        c.reply.add_long(0);
        return;
    }
    db::db_delete(srv, db, &c.argv[1]);
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &c.argv[1], db);
    // Propagated as DEL.
    if propagating(srv) {
        c.propagate_argv = Some(vec![b"DEL".to_vec(), c.argv[1].clone()]);
    }
    c.reply.add_long(1);
}

fn mget_command(srv: &mut Server, c: &mut Client) {
    let Client {
        argv, reply, db, ..
    } = c;
    reply.add_array_len(argv.len() - 1);
    for key in &argv[1..] {
        match db::lookup_key_read(srv, *db, key) {
            Some(ValueRef::Int(n)) => reply.add_bulk_i64(n),
            Some(v @ ValueRef::Str(b)) if is_string(&v) => reply.add_bulk(b),
            _ => reply.add_null(),
        }
    }
}

fn mset_generic(srv: &mut Server, c: &mut Client, nx: bool) {
    if c.argv.len().is_multiple_of(2) {
        let name = if nx { "msetnx" } else { "mset" };
        c.reply.add_error_arity(name);
        return;
    }
    let db = c.db;
    if nx {
        let mut j = 1;
        while j < c.argv.len() {
            if db::lookup_key_write(srv, db, &c.argv[j]).is_some() {
                c.reply.add_long(0);
                return;
            }
            j += 2;
        }
    }
    let mut j = 1;
    while j + 1 < c.argv.len() {
        let val = take_arg(srv, c, j + 1);
        db::set_key_bytes(srv, db, &c.argv[j], val, false, None);
        notify_keyspace_event(srv, NOTIFY_STRING, "set", &c.argv[j], db);
        j += 2;
    }
    srv.dirty += ((c.argv.len() - 1) / 2) as u64;
    if nx {
        c.reply.add_long(1);
    } else {
        c.reply.add_ok();
    }
}

fn mset_command(srv: &mut Server, c: &mut Client) {
    mset_generic(srv, c, false);
}

fn msetnx_command(srv: &mut Server, c: &mut Client) {
    mset_generic(srv, c, true);
}

/// MSETEX numkeys key value [key value ...] [NX|XX] [EX|PX|EXAT|PXAT|KEEPTTL]
fn msetex_command(srv: &mut Server, c: &mut Client) {
    let numkeys = match parse_i64_strict(&c.argv[1]) {
        Some(n) if n >= 1 && n <= i32::MAX as i64 => n as usize,
        _ => {
            c.reply
                .add_error("ERR invalid numkeys value or out of range");
            return;
        }
    };
    let opts_start = match numkeys.checked_mul(2).and_then(|n| n.checked_add(2)) {
        Some(s) if s <= c.argv.len() => s,
        _ => {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    };
    let Some(o) = parse_ext_opts(c, OptKind::MSet, opts_start) else {
        return;
    };
    let Ok(when) = expire_opt_ms(srv, c, o.expire, o.flags, "msetex") else {
        return;
    };
    let db = c.db;
    if o.flags & (O_NX | O_XX) != 0 {
        let want_exist = o.flags & O_XX != 0;
        for i in 0..numkeys {
            let key = &c.argv[2 + 2 * i];
            if db::lookup_key_write(srv, db, key).is_some() != want_exist {
                c.reply.add_long(0);
                return;
            }
        }
    }
    let expired = when.is_some_and(|w| already_expired(srv, w));
    // A relative or seconds expiry is propagated as `PXAT <ms>` in its place.
    if let (Some(w), Some(i), false) = (when, o.expire, expired) {
        if o.flags & O_PXAT == 0 && i >= 1 && propagating(srv) {
            let mut argv = c.argv.clone();
            argv[i - 1] = b"PXAT".to_vec();
            argv[i] = w.to_string().into_bytes();
            c.propagate_argv = Some(argv);
        }
    }
    for i in 0..numkeys {
        let ki = 2 + 2 * i;
        if expired {
            // Propagated as is: its replay deletes the keys too.
            if db::lookup_key_write(srv, db, &c.argv[ki]).is_some() {
                db::delete_expired_key_unpropagated(srv, db, &c.argv[ki]);
                srv.dirty += 1;
            }
            continue;
        }
        let val = take_arg(srv, c, ki + 1);
        let keep_ttl = o.flags & O_KEEPTTL != 0;
        db::set_key_bytes(srv, db, &c.argv[ki], val, keep_ttl, when);
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_STRING, "set", &c.argv[ki], db);
        if when.is_some() {
            notify_keyspace_event(srv, NOTIFY_GENERIC, "expire", &c.argv[ki], db);
        }
    }
    c.reply.add_long(1);
}

/// Upstream's `checkStringLength`.
fn check_string_length(srv: &Server, c: &mut Client, size: u64, append: u64) -> bool {
    match size.checked_add(append) {
        Some(t) if t <= srv.config.proto_max_bulk_len.max(0) as u64 => true,
        _ => {
            c.reply.add_error(reply::ERR_STRING_TOO_LONG);
            false
        }
    }
}

fn append_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let old = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => None,
        Some(v) if !is_string(&v) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
        Some(v) => Some(v.str_len().unwrap_or(0)),
    };
    let total = match old {
        None => {
            let val = take_arg(srv, c, 2);
            let len = val.len();
            db::set_key_bytes(srv, db, &c.argv[1], val, true, None);
            len
        }
        Some(olen) => {
            if !check_string_length(srv, c, olen as u64, c.argv[2].len() as u64) {
                return;
            }
            let total = append_raw(srv, db, &c.argv[1], &c.argv[2]);
            db::signal_modified_key(srv, db, &c.argv[1]);
            total
        }
    };
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_STRING, "append", &c.argv[1], db);
    c.reply.add_long(total as i64);
}

fn append_raw(srv: &mut Server, db: usize, key: &[u8], extra: &[u8]) -> usize {
    match srv.dbs[db].kv.get_str_raw_mut(key) {
        Some(b) => {
            b.extend_from_slice(extra);
            b.len()
        }
        None => 0,
    }
}

fn strlen_command(srv: &mut Server, c: &mut Client) {
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_long(0),
        Some(v) if !is_string(&v) => c.reply.add_error(reply::ERR_WRONGTYPE),
        Some(v) => c.reply.add_long(v.str_len().unwrap_or(0) as i64),
    }
}

/// Upstream's `incrDecrCommand`.
fn incr_decr(srv: &mut Server, c: &mut Client, incr: i64) {
    let db = c.db;
    let old = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => 0,
        Some(ValueRef::Int(n)) => n,
        Some(ValueRef::Str(b)) => match parse_i64_strict(b) {
            Some(n) => n,
            None => {
                c.reply.add_error(reply::ERR_NOT_INTEGER);
                return;
            }
        },
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let Some(new) = old.checked_add(incr) else {
        c.reply.add_error(reply::ERR_INCR_OVERFLOW);
        return;
    };
    // The common case rewrites the 8 bytes of an int-encoded value where they are.
    if srv.dbs[db].kv.update_int_in_place(&c.argv[1], new) {
        db::signal_modified_key(srv, db, &c.argv[1]);
    } else {
        db::set_key(srv, db, &c.argv[1], Value::Int(new), true);
    }
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_STRING, "incrby", &c.argv[1], db);
    c.reply.add_long(new);
}

fn incr_command(srv: &mut Server, c: &mut Client) {
    incr_decr(srv, c, 1);
}

fn decr_command(srv: &mut Server, c: &mut Client) {
    incr_decr(srv, c, -1);
}

fn incrby_command(srv: &mut Server, c: &mut Client) {
    let Some(n) = arg_i64(c, 2) else { return };
    incr_decr(srv, c, n);
}

fn decrby_command(srv: &mut Server, c: &mut Client) {
    let Some(n) = arg_i64(c, 2) else { return };
    if n == i64::MIN {
        c.reply.add_error("ERR decrement would overflow");
        return;
    }
    incr_decr(srv, c, -n);
}

fn incrbyfloat_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let old = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => Some(ld::Num::Finite(ld::Ld::from_i64(0))),
        Some(ValueRef::Int(n)) => Some(ld::Num::Finite(ld::Ld::from_i64(n))),
        Some(ValueRef::Str(b)) => ld::parse(b),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let (Some(old), Some(incr)) = (old, ld::parse(&c.argv[2])) else {
        c.reply.add_error(reply::ERR_NOT_FLOAT);
        return;
    };
    let sum = match (old, incr) {
        (ld::Num::Finite(a), ld::Num::Finite(b)) => a.add(b),
        _ => None,
    };
    let Some(sum) = sum else {
        c.reply
            .add_error("ERR increment would produce NaN or Infinity");
        return;
    };
    let s = sum.format_human().into_bytes();
    c.reply.add_bulk(&s);
    // Propagated as `SET key <result> KEEPTTL` (no float rounding differences on replay).
    if propagating(srv) {
        c.propagate_argv = Some(vec![
            b"SET".to_vec(),
            c.argv[1].clone(),
            s.clone(),
            b"KEEPTTL".to_vec(),
        ]);
    }
    db::set_key(
        srv,
        db,
        &c.argv[1],
        Value::Str {
            bytes: Box::new(s),
            raw: false,
        },
        true,
    );
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_STRING, "incrbyfloat", &c.argv[1], db);
}

fn getrange_command(srv: &mut Server, c: &mut Client) {
    let Some(mut start) = arg_i64(c, 2) else {
        return;
    };
    let Some(mut end) = arg_i64(c, 3) else { return };
    let Client {
        argv, reply, db, ..
    } = c;
    let v = match db::lookup_key_read(srv, *db, &argv[1]) {
        None => {
            reply.add_bulk(b"");
            return;
        }
        Some(v) if !is_string(&v) => {
            reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
        Some(v) => v,
    };
    let mut t = reply::itoa_buf();
    let s: &[u8] = match v {
        ValueRef::Int(n) => reply::fmt_i64(&mut t, n),
        ValueRef::Str(b) => b,
        _ => {
            reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        reply.add_bulk(b"");
        return;
    }
    if start < 0 {
        start = start.saturating_add(len);
    }
    if end < 0 {
        end = end.saturating_add(len);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        reply.add_bulk(b"");
    } else {
        reply.add_bulk(&s[start as usize..=end as usize]);
    }
}

fn setrange_command(srv: &mut Server, c: &mut Client) {
    let Some(offset) = arg_i64(c, 2) else { return };
    if offset < 0 {
        c.reply.add_error("ERR offset is out of range");
        return;
    }
    let offset = offset as u64;
    let db = c.db;
    let vlen = c.argv[3].len() as u64;
    let exists = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => false,
        Some(v) if !is_string(&v) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
        Some(v) => {
            if vlen == 0 {
                let l = v.str_len().unwrap_or(0) as i64;
                c.reply.add_long(l);
                return;
            }
            true
        }
    };
    if !exists && vlen == 0 {
        c.reply.add_long(0);
        return;
    }
    if !check_string_length(srv, c, offset, vlen) {
        return;
    }
    // Bounded by proto-max-bulk-len just above.
    let offset = offset as usize;
    let end = offset + vlen as usize;
    if !exists {
        db::set_key(srv, db, &c.argv[1], Value::raw(Vec::new()), true);
    }
    let total = match srv.dbs[db].kv.get_str_raw_mut(&c.argv[1]) {
        Some(b) => {
            if b.len() < end {
                b.resize(end, 0);
            }
            b[offset..end].copy_from_slice(&c.argv[3]);
            b.len()
        }
        None => 0,
    };
    db::signal_modified_key(srv, db, &c.argv[1]);
    srv.dirty += 1;
    notify_keyspace_event(srv, NOTIFY_STRING, "setrange", &c.argv[1], db);
    c.reply.add_long(total as i64);
}

fn lcs_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let mut strs: [Option<Vec<u8>>; 2] = [None, None];
    let mut wrong = false;
    for (i, s) in strs.iter_mut().enumerate() {
        match db::lookup_key_read(srv, db, &c.argv[1 + i]) {
            None => *s = Some(Vec::new()),
            Some(v) if !is_string(&v) => wrong = true,
            Some(v) => *s = v.to_bytes(),
        }
    }
    if wrong {
        c.reply
            .add_error("ERR The specified keys must contain string values");
        return;
    }
    let a = strs[0].take().unwrap_or_default();
    let b = strs[1].take().unwrap_or_default();
    let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
    let mut minmatchlen: i64 = 0;
    let mut j = 3;
    while j < c.argv.len() {
        let opt = &c.argv[j];
        let more = j + 1 < c.argv.len();
        if eq_ic(opt, "idx") {
            getidx = true;
        } else if eq_ic(opt, "len") {
            getlen = true;
        } else if eq_ic(opt, "withmatchlen") {
            withmatchlen = true;
        } else if eq_ic(opt, "minmatchlen") && more {
            let Some(n) = arg_i64(c, j + 1) else { return };
            minmatchlen = n.max(0);
            j += 1;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    if getlen && getidx {
        c.reply
            .add_error("ERR If you want both the length and indexes, please just use IDX.");
        return;
    }
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        c.reply.add_error("ERR String too long for LCS");
        return;
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).checked_mul(blen as u64 + 1);
    let bytes = cells.and_then(|n| n.checked_mul(4));
    let Some(bytes) = bytes.filter(|&n| n < usize::MAX as u64) else {
        c.reply
            .add_error("ERR Insufficient memory, failed allocating transient memory for LCS");
        return;
    };
    if bytes > srv.config.proto_max_bulk_len.max(0) as u64 {
        c.reply.add_error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
        return;
    }
    let mut tbl: Vec<u32> = Vec::new();
    if tbl.try_reserve_exact((bytes / 4) as usize).is_err() {
        c.reply
            .add_error("ERR Insufficient memory, failed allocating transient memory for LCS");
        return;
    }
    tbl.resize((bytes / 4) as usize, 0);
    let w = blen + 1;
    for i in 1..=alen {
        for jj in 1..=blen {
            tbl[i * w + jj] = if a[i - 1] == b[jj - 1] {
                tbl[(i - 1) * w + jj - 1] + 1
            } else {
                tbl[(i - 1) * w + jj].max(tbl[i * w + jj - 1])
            };
        }
    }
    let total = tbl[alen * w + blen];
    let computelcs = getidx || !getlen;
    let mut result = if computelcs {
        vec![0u8; total as usize]
    } else {
        Vec::new()
    };
    let mut ranges: Vec<[u32; 5]> = Vec::new();
    let (mut i, mut jj) = (alen, blen);
    let mut idx = total as usize;
    let unset = alen;
    let (mut as_, mut ae, mut bs, mut be) = (unset, 0usize, 0usize, 0usize);
    while computelcs && i > 0 && jj > 0 {
        let mut emit = false;
        if a[i - 1] == b[jj - 1] {
            result[idx - 1] = a[i - 1];
            if as_ == unset {
                as_ = i - 1;
                ae = i - 1;
                bs = jj - 1;
                be = jj - 1;
            } else if as_ == i && bs == jj {
                as_ -= 1;
                bs -= 1;
            } else {
                emit = true;
            }
            if as_ == 0 || bs == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            jj -= 1;
        } else {
            let l1 = tbl[(i - 1) * w + jj];
            let l2 = tbl[i * w + jj - 1];
            if l1 > l2 {
                i -= 1;
            } else {
                jj -= 1;
            }
            if as_ != unset {
                emit = true;
            }
        }
        let match_len = (ae as u64).wrapping_sub(as_ as u64).wrapping_add(1) as u32;
        if emit {
            if (minmatchlen == 0 || match_len as i64 >= minmatchlen) && getidx {
                ranges.push([as_ as u32, ae as u32, bs as u32, be as u32, match_len]);
            }
            as_ = unset;
        }
    }
    drop(tbl);
    let r = &mut c.reply;
    if getidx {
        r.add_map_len(2);
        r.add_bulk(b"matches");
        r.add_array_len(ranges.len());
        for m in &ranges {
            r.add_array_len(2 + withmatchlen as usize);
            r.add_array_len(2);
            r.add_long(m[0] as i64);
            r.add_long(m[1] as i64);
            r.add_array_len(2);
            r.add_long(m[2] as i64);
            r.add_long(m[3] as i64);
            if withmatchlen {
                r.add_long(m[4] as i64);
            }
        }
        r.add_bulk(b"len");
        r.add_long(total as i64);
    } else if getlen {
        r.add_long(total as i64);
    } else {
        r.add_bulk(&result);
    }
}
