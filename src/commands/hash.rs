//! Hash commands, as upstream's `t_hash.c`, including Valkey 9's hash field expiration
//! (HEXPIRE family, HTTL family, HPERSIST, HGETEX, HSETEX, HGETDEL) and the active
//! field-expiry pass run from the active expire cycle.

use std::collections::HashSet;

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_HASH};
use crate::object::{Value, ValueRef};
use crate::reply::{self, ReplyBuf};
use crate::server::Server;
use crate::types::hash::{Hash, EXPIRY_NONE, EXP_EXPIRE_ASAP, EXP_SUCCESSFUL, HV};
use crate::util::{eq_ic, parse_i64_strict};

use crate::ld;

const W_FAST: u64 = f::WRITE | f::DENYOOM | f::FAST;
const CAT_W_FAST: u64 = cat::WRITE | cat::HASH | cat::FAST;
const CAT_R_FAST: u64 = cat::READ | cat::HASH | cat::FAST;
const CAT_R_SLOW: u64 = cat::READ | cat::HASH | cat::SLOW;
const KS_RW_UPD: &[KeySpec] = &[KeySpec::range(k::RW | k::UPDATE, 1, 0, 1)];
const KS_RW_ACC_UPD: &[KeySpec] = &[KeySpec::range(k::RW | k::ACCESS | k::UPDATE, 1, 0, 1)];
const KS_RO_ACC: &[KeySpec] = &[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)];
const KS_RO: &[KeySpec] = &[KeySpec::range(k::RO, 1, 0, 1)];
const FIELDS_N: &str = "O(N) where N is the number of specified fields.";
const ERR_NUMFIELDS: &str =
    "ERR numfields should be greater than 0 and match the provided number of fields";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("hset", -4, W_FAST, CAT_W_FAST, hset_command)
        .keys(KS_RW_UPD)
        .doc(
            "hash",
            "2.0.0",
            "Creates or modifies the value of a field in a hash.",
            "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
        ),
    CommandDef::new("hsetnx", 4, W_FAST, CAT_W_FAST, hsetnx_command)
        .keys(&[KeySpec::range(k::RW | k::INSERT, 1, 0, 1)])
        .doc("hash", "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist.", "O(1)"),
    CommandDef::new("hmset", -4, W_FAST, CAT_W_FAST, hset_command)
        .keys(KS_RW_UPD)
        .doc("hash", "2.0.0", "Sets the values of multiple fields.", "O(N) where N is the number of fields being set."),
    CommandDef::new("hget", 3, f::READONLY | f::FAST, CAT_R_FAST, hget_command)
        .keys(KS_RO_ACC)
        .doc("hash", "2.0.0", "Returns the value of a field in a hash.", "O(1)"),
    CommandDef::new("hmget", -3, f::READONLY | f::FAST, CAT_R_FAST, hmget_command)
        .keys(KS_RO_ACC)
        .doc("hash", "2.0.0", "Returns the values of all fields in a hash.", "O(N) where N is the number of fields being requested."),
    CommandDef::new("hgetall", 2, f::READONLY, CAT_R_SLOW, hgetall_command)
        .keys(KS_RO_ACC)
        .doc("hash", "2.0.0", "Returns all fields and values in a hash.", "O(N) where N is the size of the hash.")
        .tips(&["nondeterministic_output_order"]),
    CommandDef::new("hdel", -3, f::WRITE | f::FAST, CAT_W_FAST, hdel_command)
        .keys(&[KeySpec::range(k::RW | k::DELETE, 1, 0, 1)])
        .doc(
            "hash",
            "2.0.0",
            "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
            "O(N) where N is the number of fields to be removed.",
        ),
    CommandDef::new("hlen", 2, f::READONLY | f::FAST, CAT_R_FAST, hlen_command)
        .keys(KS_RO)
        .doc("hash", "2.0.0", "Returns the number of fields in a hash.", "O(1)"),
    CommandDef::new("hstrlen", 3, f::READONLY | f::FAST, CAT_R_FAST, hstrlen_command)
        .keys(KS_RO)
        .doc("hash", "3.2.0", "Returns the length of the value of a field.", "O(1)"),
    CommandDef::new("hexists", 3, f::READONLY | f::FAST, CAT_R_FAST, hexists_command)
        .keys(KS_RO)
        .doc("hash", "2.0.0", "Determines whether a field exists in a hash.", "O(1)"),
    CommandDef::new("hkeys", 2, f::READONLY, CAT_R_SLOW, hkeys_command)
        .keys(KS_RO_ACC)
        .doc("hash", "2.0.0", "Returns all fields in a hash.", "O(N) where N is the size of the hash.")
        .tips(&["nondeterministic_output_order"]),
    CommandDef::new("hvals", 2, f::READONLY, CAT_R_SLOW, hvals_command)
        .keys(KS_RO_ACC)
        .doc("hash", "2.0.0", "Returns all values in a hash.", "O(N) where N is the size of the hash.")
        .tips(&["nondeterministic_output_order"]),
    CommandDef::new("hincrby", 4, W_FAST, CAT_W_FAST, hincrby_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "hash",
            "2.0.0",
            "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("hincrbyfloat", 4, W_FAST, CAT_W_FAST, hincrbyfloat_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "hash",
            "2.6.0",
            "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
            "O(1)",
        ),
    CommandDef::new("hrandfield", -2, f::READONLY, CAT_R_SLOW, hrandfield_command)
        .keys(KS_RO_ACC)
        .doc("hash", "6.2.0", "Returns one or more random fields from a hash.", "O(N) where N is the number of fields returned")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("hscan", -3, f::READONLY, CAT_R_SLOW, hscan_command)
        .keys(KS_RO_ACC)
        .doc(
            "hash",
            "2.8.0",
            "Iterates over fields and values of a hash.",
            "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        )
        .tips(&["nondeterministic_output"]),
    CommandDef::new("hexpire", -6, f::WRITE | f::FAST, CAT_W_FAST, hexpire_command)
        .keys(KS_RW_UPD)
        .doc("hash", "9.0.0", "Sets expiry time on hash fields.", FIELDS_N),
    CommandDef::new("hpexpire", -6, f::WRITE | f::FAST, CAT_W_FAST, hpexpire_command)
        .keys(KS_RW_UPD)
        .doc("hash", "9.0.0", "Sets expiry time on hash object.", FIELDS_N),
    CommandDef::new("hexpireat", -6, f::WRITE | f::FAST, CAT_W_FAST, hexpireat_command)
        .keys(KS_RW_UPD)
        .doc("hash", "9.0.0", "Sets expiry time on hash fields.", FIELDS_N),
    CommandDef::new("hpexpireat", -6, f::WRITE | f::FAST, CAT_W_FAST, hpexpireat_command)
        .keys(KS_RW_UPD)
        .doc("hash", "9.0.0", "Sets expiration time on hash field.", FIELDS_N),
    CommandDef::new("httl", -5, f::READONLY | f::FAST, CAT_R_FAST, httl_command)
        .keys(KS_RO_ACC)
        .doc(
            "hash",
            "9.0.0",
            "Returns the remaining time to live (in seconds) of a hash key's field(s) that have an associated expiration.",
            FIELDS_N,
        ),
    CommandDef::new("hpttl", -5, f::READONLY | f::FAST, CAT_R_FAST, hpttl_command)
        .keys(KS_RO_ACC)
        .doc(
            "hash",
            "9.0.0",
            "Returns the remaining time to live in milliseconds of a hash key's field(s) that have an associated expiration.",
            FIELDS_N,
        ),
    CommandDef::new("hexpiretime", -5, f::READONLY | f::FAST, CAT_R_FAST, hexpiretime_command)
        .keys(KS_RO_ACC)
        .doc(
            "hash",
            "9.0.0",
            "Returns Unix timestamps in seconds since the epoch at which the given key's field(s) will expire.",
            FIELDS_N,
        ),
    CommandDef::new("hpexpiretime", -5, f::READONLY | f::FAST, CAT_R_FAST, hpexpiretime_command)
        .keys(KS_RO_ACC)
        .doc(
            "hash",
            "9.0.0",
            "Returns the Unix timestamp in milliseconds since Unix epoch at which the given key's field(s) will expire.",
            FIELDS_N,
        ),
    CommandDef::new("hpersist", -5, f::WRITE | f::FAST, CAT_W_FAST, hpersist_command)
        .keys(KS_RW_UPD)
        .doc("hash", "9.0.0", "Remove the existing expiration on a hash key's field(s).", FIELDS_N),
    CommandDef::new("hgetex", -5, f::WRITE | f::FAST, CAT_W_FAST, hgetex_command)
        .keys(KS_RW_ACC_UPD)
        .doc(
            "hash",
            "9.0.0",
            "Gets the value of one or more fields of a given hash key, and optionally sets their expiration time or time-to-live (TTL).",
            FIELDS_N,
        ),
    CommandDef::new("hsetex", -6, W_FAST, CAT_W_FAST, hsetex_command)
        .keys(&[KeySpec::range(k::RW | k::INSERT, 1, 0, 1)])
        .doc(
            "hash",
            "9.0.0",
            "Sets the value of one or more fields of a given hash key, and optionally sets their expiration time.",
            FIELDS_N,
        ),
    CommandDef::new("hgetdel", -5, f::WRITE | f::FAST, CAT_W_FAST, hgetdel_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, 0, 1)])
        .doc(
            "hash",
            "9.1.0",
            "Returns the values of one or more fields and deletes them from a hash.",
            "O(N) where N is the number of fields to be retrieved and deleted.",
        ),
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Looks the key up for reading: Ok(None) missing, Ok(Some) a hash, Err after replying
/// WRONGTYPE.
fn read_hash<'a>(
    srv: &'a mut Server,
    c: &mut Client,
    key_idx: usize,
) -> Result<Option<&'a Hash>, ()> {
    match db::lookup_key_read(srv, c.db, &c.argv[key_idx]) {
        None => Ok(None),
        Some(ValueRef::Hash(h)) => Ok(Some(h)),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            Err(())
        }
    }
}

/// Looks the key up for writing: Ok(None) missing, Ok(Some) a hash, Err after replying
/// WRONGTYPE.
fn write_hash<'a>(srv: &'a mut Server, c: &mut Client) -> Result<Option<&'a mut Hash>, ()> {
    match db::lookup_key_write_mut(srv, c.db, &c.argv[1]) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            Err(())
        }
    }
}

/// Upstream's `hashTypeLookupWriteOrCreate`: the hash at argv[1], created empty when
/// missing; None after replying WRONGTYPE.
fn write_or_create<'a>(srv: &'a mut Server, c: &mut Client) -> Option<&'a mut Hash> {
    let db = c.db;
    let exists = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => false,
        Some(ValueRef::Hash(_)) => true,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return None;
        }
    };
    if !exists {
        db::db_add(srv, db, &c.argv[1], Value::Hash(Hash::new()));
    }
    match db::lookup_key_write_mut(srv, db, &c.argv[1]) {
        Some(Value::Hash(h)) => Some(h),
        _ => None,
    }
}

/// After a write: registers the key for the active field-expiry pass if the hash now has
/// volatile fields.
fn track_volatile(srv: &mut Server, db: usize, key: &[u8]) {
    let vol = matches!(
        srv.dbs[db].kv.get(key),
        Some(ValueRef::Hash(h)) if h.has_volatile()
    );
    if vol && !srv.dbs[db].volatile_hashes.contains(key) {
        srv.dbs[db].volatile_hashes.insert(key.to_vec());
    }
}

/// Deletes the key if its hash became empty, with the `del` event; returns true if it did.
fn delete_if_empty(srv: &mut Server, db: usize, key: &[u8]) -> bool {
    let empty = matches!(
        srv.dbs[db].kv.get(key),
        Some(ValueRef::Hash(h)) if h.is_empty()
    );
    if empty {
        db::db_delete(srv, db, key);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
    }
    empty
}

fn cfg_limits(srv: &Server) -> (usize, usize) {
    (
        srv.config.hash_max_listpack_entries,
        srv.config.hash_max_listpack_value,
    )
}

fn reply_opt(r: &mut ReplyBuf, v: Option<HV<'_>>) {
    match v {
        Some(v) => v.reply(r),
        None => r.add_null(),
    }
}

/// Converts an expire argument to an absolute unix time in ms (upstream's
/// `convertExpireArgumentToUnixTime` for hash fields): negative or overflowing values are
/// refused with "invalid expire time".
fn expire_to_unix(c: &mut Client, arg_idx: usize, basetime: i64, seconds: bool) -> Option<i64> {
    let Some(v) = parse_i64_strict(&c.argv[arg_idx]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return None;
    };
    let ms = if seconds {
        v.checked_mul(1000)
    } else {
        Some(v)
    };
    match ms.filter(|_| v >= 0).and_then(|m| m.checked_add(basetime)) {
        Some(w) => Some(w),
        None => {
            let name = String::from_utf8_lossy(&c.argv[0]).to_ascii_lowercase();
            c.reply
                .add_error(&format!("ERR invalid expire time in '{}' command", name));
            None
        }
    }
}

/// Finds the FIELDS keyword from `start` (never as the last argument), as upstream's
/// loops do; returns its index.
fn find_fields(argv: &[Vec<u8>], start: usize) -> Option<usize> {
    (start..argv.len().saturating_sub(1)).find(|&i| eq_ic(&argv[i], "fields"))
}

// ---------------------------------------------------------------------------------------
// Basic commands
// ---------------------------------------------------------------------------------------

fn hset_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len() % 2 == 1 {
        let name = String::from_utf8_lossy(&c.argv[0]).to_ascii_lowercase();
        c.reply.add_error_arity(&name);
        return;
    }
    let db = c.db;
    let now = srv.mstime;
    let (max_e, max_v) = cfg_limits(srv);
    let Some(h) = write_or_create(srv, c) else {
        return;
    };
    h.try_conversion(&c.argv[2..], max_e, max_v);
    let mut created = 0;
    let mut expired_overwritten = 0;
    for pair in c.argv[2..].chunks_exact(2) {
        let (upd, exp) = h.set(&pair[0], &pair[1], EXPIRY_NONE, false, now, max_e, max_v);
        if !upd {
            created += 1;
        }
        if exp {
            expired_overwritten += 1;
        }
    }
    let key = &c.argv[1];
    db::signal_modified_key(srv, db, key);
    if expired_overwritten > 0 {
        notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", key, db);
    }
    notify_keyspace_event(srv, NOTIFY_HASH, "hset", key, db);
    srv.dirty += ((c.argv.len() - 2) / 2) as u64;
    if c.argv[0]
        .get(1)
        .is_some_and(|b| b.eq_ignore_ascii_case(&b's'))
    {
        c.reply.add_long(created);
    } else {
        c.reply.add_ok();
    }
}

fn hsetnx_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let now = srv.mstime;
    let (max_e, max_v) = cfg_limits(srv);
    let Some(h) = write_or_create(srv, c) else {
        return;
    };
    if h.exists(&c.argv[2], now) {
        c.reply.add_long(0);
        return;
    }
    h.try_conversion(&c.argv[2..4], max_e, max_v);
    let (_, exp) = h.set(
        &c.argv[2],
        &c.argv[3],
        EXPIRY_NONE,
        false,
        now,
        max_e,
        max_v,
    );
    let key = &c.argv[1];
    db::signal_modified_key(srv, db, key);
    if exp {
        notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", key, db);
    }
    notify_keyspace_event(srv, NOTIFY_HASH, "hset", key, db);
    srv.dirty += 1;
    c.reply.add_long(1);
}

fn hget_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    match read_hash(srv, c, 1) {
        Err(()) => {}
        Ok(None) => c.reply.add_null(),
        Ok(Some(h)) => reply_opt(&mut c.reply, h.get(&c.argv[2], now)),
    }
}

fn hmget_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    let Ok(h) = read_hash(srv, c, 1) else {
        return;
    };
    c.reply.add_array_len(c.argv.len() - 2);
    for field in &c.argv[2..] {
        reply_opt(&mut c.reply, h.and_then(|h| h.get(field, now)));
    }
}

fn hdel_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let now = srv.mstime;
    let h = match write_hash(srv, c) {
        Err(()) => return,
        Ok(None) => {
            c.reply.add_long(0);
            return;
        }
        Ok(Some(h)) => h,
    };
    let mut deleted = 0i64;
    let mut removed = false;
    for field in &c.argv[2..] {
        if h.delete(field, Some(now)) {
            deleted += 1;
            if h.is_empty() {
                removed = true;
                break;
            }
        }
    }
    if deleted > 0 {
        let key = &c.argv[1];
        if removed {
            db::db_delete(srv, db, key);
        }
        db::signal_modified_key(srv, db, key);
        notify_keyspace_event(srv, NOTIFY_HASH, "hdel", key, db);
        if removed {
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
        }
        srv.dirty += deleted as u64;
    }
    c.reply.add_long(deleted);
}

fn hlen_command(srv: &mut Server, c: &mut Client) {
    match read_hash(srv, c, 1) {
        Err(()) => {}
        Ok(None) => c.reply.add_long(0),
        Ok(Some(h)) => c.reply.add_long(h.len() as i64),
    }
}

fn hstrlen_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    match read_hash(srv, c, 1) {
        Err(()) => {}
        Ok(None) => c.reply.add_long(0),
        Ok(Some(h)) => {
            let n = h.get(&c.argv[2], now).map_or(0, |v| v.str_len());
            c.reply.add_long(n as i64);
        }
    }
}

fn hexists_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    match read_hash(srv, c, 1) {
        Err(()) => {}
        Ok(None) => c.reply.add_long(0),
        Ok(Some(h)) => c.reply.add_long(h.exists(&c.argv[2], now) as i64),
    }
}

const WANT_FIELD: u8 = 1;
const WANT_VALUE: u8 = 2;

fn getall_generic(srv: &mut Server, c: &mut Client, what: u8) {
    let now = srv.mstime;
    let both = what == WANT_FIELD | WANT_VALUE;
    let h = match read_hash(srv, c, 1) {
        Err(()) => return,
        Ok(None) => {
            if both {
                c.reply.add_map_len(0);
            } else {
                c.reply.add_array_len(0);
            }
            return;
        }
        Ok(Some(h)) => h,
    };
    let n = h.live_len(now);
    if both {
        c.reply.add_map_len(n);
    } else {
        c.reply.add_array_len(n);
    }
    let r = &mut c.reply;
    h.for_each(now, |fv, vv| {
        if what & WANT_FIELD != 0 {
            fv.reply(r);
        }
        if what & WANT_VALUE != 0 {
            vv.reply(r);
        }
    });
}

fn hgetall_command(srv: &mut Server, c: &mut Client) {
    getall_generic(srv, c, WANT_FIELD | WANT_VALUE);
}

fn hkeys_command(srv: &mut Server, c: &mut Client) {
    getall_generic(srv, c, WANT_FIELD);
}

fn hvals_command(srv: &mut Server, c: &mut Client) {
    getall_generic(srv, c, WANT_VALUE);
}

fn hincrby_command(srv: &mut Server, c: &mut Client) {
    let Some(incr) = parse_i64_strict(&c.argv[3]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return;
    };
    let db = c.db;
    let now = srv.mstime;
    let (max_e, max_v) = cfg_limits(srv);
    let Some(h) = write_or_create(srv, c) else {
        return;
    };
    let field = &c.argv[2];
    let (old, expiry) = match h.get(field, now) {
        None => (0, EXPIRY_NONE),
        Some(v) => {
            let n = match v {
                HV::Int(n) => Some(n),
                HV::Str(s) => parse_i64_strict(s),
            };
            let Some(n) = n else {
                c.reply.add_error("ERR hash value is not an integer");
                return;
            };
            (n, h.get_expiry(field, now).unwrap_or(EXPIRY_NONE))
        }
    };
    let Some(new) = old.checked_add(incr) else {
        c.reply.add_error(reply::ERR_INCR_OVERFLOW);
        return;
    };
    let mut buf = reply::itoa_buf();
    let s = reply::fmt_i64(&mut buf, new);
    let (_, exp) = h.set(field, s, expiry, false, now, max_e, max_v);
    let key = &c.argv[1];
    db::signal_modified_key(srv, db, key);
    if exp {
        notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", key, db);
    }
    notify_keyspace_event(srv, NOTIFY_HASH, "hincrby", key, db);
    srv.dirty += 1;
    c.reply.add_long(new);
}

fn hincrbyfloat_command(srv: &mut Server, c: &mut Client) {
    let incr = match ld::parse(&c.argv[3]) {
        Some(ld::Num::Finite(x)) => x,
        Some(ld::Num::Inf) => {
            c.reply.add_error("ERR value is NaN or Infinity");
            return;
        }
        None => {
            c.reply.add_error(reply::ERR_NOT_FLOAT);
            return;
        }
    };
    let db = c.db;
    let now = srv.mstime;
    let (max_e, max_v) = cfg_limits(srv);
    let Some(h) = write_or_create(srv, c) else {
        return;
    };
    let field = &c.argv[2];
    let (old, expiry) = match h.get(field, now) {
        None => (ld::Ld::from_i64(0), EXPIRY_NONE),
        Some(v) => {
            let parsed = match v {
                HV::Int(n) => Some(ld::Ld::from_i64(n)),
                HV::Str(s) => match ld::parse(s) {
                    Some(ld::Num::Finite(x)) => Some(x),
                    // strtold accepts "inf": the sum is then refused below.
                    Some(ld::Num::Inf) => {
                        c.reply
                            .add_error("ERR increment would produce NaN or Infinity");
                        return;
                    }
                    None => None,
                },
            };
            let Some(x) = parsed else {
                c.reply.add_error("ERR hash value is not a float");
                return;
            };
            (x, h.get_expiry(field, now).unwrap_or(EXPIRY_NONE))
        }
    };
    let Some(sum) = old.add(incr) else {
        c.reply
            .add_error("ERR increment would produce NaN or Infinity");
        return;
    };
    let s = sum.format_human();
    let (_, exp) = h.set(field, s.as_bytes(), expiry, false, now, max_e, max_v);
    // Propagated as HSET key field <result>.
    if propagating(srv) {
        c.propagate_argv = Some(vec![
            b"HSET".to_vec(),
            c.argv[1].clone(),
            c.argv[2].clone(),
            s.as_bytes().to_vec(),
        ]);
    }
    let key = &c.argv[1];
    db::signal_modified_key(srv, db, key);
    if exp {
        notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", key, db);
    }
    notify_keyspace_event(srv, NOTIFY_HASH, "hincrbyfloat", key, db);
    srv.dirty += 1;
    c.reply.add_bulk(s.as_bytes());
}

// ---------------------------------------------------------------------------------------
// HRANDFIELD, HSCAN
// ---------------------------------------------------------------------------------------

/// Random replies stop growing past this many bytes (upstream stops when the client hits
/// its output buffer limit).
const RANDOM_REPLY_LIMIT: usize = 512 << 20;

fn hrandfield_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    if c.argv.len() >= 3 {
        let l = match parse_i64_strict(&c.argv[2]) {
            None => {
                c.reply.add_error(reply::ERR_NOT_INTEGER);
                return;
            }
            Some(i64::MIN) => {
                c.reply.add_error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
                return;
            }
            Some(l) => l,
        };
        let withvalues = c.argv.len() == 4;
        if c.argv.len() > 4 || (withvalues && !eq_ic(&c.argv[3], "withvalues")) {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            c.reply.add_error("ERR value is out of range");
            return;
        }
        hrandfield_with_count(srv, c, l, withvalues, now);
        return;
    }
    match read_hash(srv, c, 1) {
        Err(()) => {}
        Ok(None) => c.reply.add_null(),
        Ok(Some(h)) => reply_opt(&mut c.reply, h.random_pair(now).map(|(f, _)| f)),
    }
}

fn hrandfield_with_count(srv: &mut Server, c: &mut Client, l: i64, withvalues: bool, now: i64) {
    let h = match read_hash(srv, c, 1) {
        Err(()) => return,
        Ok(None) => {
            c.reply.add_array_len(0);
            return;
        }
        Ok(Some(h)) => h,
    };
    let count = l.unsigned_abs();
    if count == 0 {
        c.reply.add_array_len(0);
        return;
    }
    let resp3 = c.reply.resp > 2;
    let mut body = ReplyBuf::new();
    body.resp = c.reply.resp;
    let mut n: u64 = 0;
    let emit = |body: &mut ReplyBuf, fv: HV<'_>, vv: HV<'_>| {
        if withvalues && resp3 {
            body.add_array_len(2);
        }
        fv.reply(body);
        if withvalues {
            vv.reply(body);
        }
    };
    let size = h.len() as u64;
    if l < 0 || count == 1 {
        // With repetitions (or one element).
        let mut left = count;
        while left > 0 {
            let Some((fv, vv)) = h.random_pair(now) else {
                break;
            };
            emit(&mut body, fv, vv);
            n += 1;
            left -= 1;
            if body.buf.len() > RANDOM_REPLY_LIMIT {
                break;
            }
        }
    } else if count >= size {
        h.for_each(now, |fv, vv| {
            emit(&mut body, fv, vv);
            n += 1;
        });
    } else if h.is_listpack() {
        h.lp_random_unique(count as usize, |fv, vv| {
            emit(&mut body, fv, vv);
            n += 1;
        });
    } else if count.saturating_mul(3) > size {
        // Copy everything live, then drop random elements down to `count`.
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        h.for_each(now, |fv, vv| all.push((fv.to_vec(), vv.to_vec())));
        while all.len() as u64 > count {
            let i = (crate::util::random_u64() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        for (fv, vv) in &all {
            emit(&mut body, HV::Str(fv), HV::Str(vv));
            n += 1;
        }
    } else {
        // Sample with rejection of duplicates.
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut tries = count.saturating_mul(10);
        while (seen.len() as u64) < count && tries > 0 {
            tries -= 1;
            let Some((fv, vv)) = h.random_pair(now) else {
                break;
            };
            if !seen.insert(fv.to_vec()) {
                continue;
            }
            emit(&mut body, fv, vv);
            n += 1;
        }
    }
    let len = if withvalues && !resp3 { n * 2 } else { n };
    c.reply.add_array_len(len as usize);
    c.reply.add_raw(&body.buf);
}

fn hscan_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    let Some(mut cursor) = super::keys::parse_scan_cursor(&c.argv[2]) else {
        c.reply.add_error("ERR invalid cursor");
        return;
    };
    let h = match read_hash(srv, c, 1) {
        Err(()) => return,
        Ok(None) => {
            c.reply.add_array_len(2);
            c.reply.add_bulk(b"0");
            c.reply.add_array_len(0);
            return;
        }
        Ok(Some(h)) => h,
    };
    let Some(opts) = super::keys::parse_scan_opts(c, 3, super::keys::ScanOf::Hash) else {
        return;
    };
    let (count, novalues) = (opts.count, opts.novalues);
    let mut items: Vec<Vec<u8>> = Vec::new();
    let mut collect = |fv: HV<'_>, vv: HV<'_>| {
        let keep = fv.with_bytes(|fb| opts.matches(fb));
        if keep {
            items.push(fv.to_vec());
            if !novalues {
                items.push(vv.to_vec());
            }
        }
    };
    if h.is_listpack() {
        h.scan(0, now, &mut collect);
        cursor = 0;
    } else {
        let mut max_iterations = count.saturating_mul(10);
        let mut sampled: i64 = 0;
        loop {
            cursor = h.scan(cursor, now, |fv, vv| {
                sampled += 1;
                collect(fv, vv);
            });
            if cursor == 0 || max_iterations == 0 || sampled >= count {
                break;
            }
            max_iterations -= 1;
        }
    }
    c.reply.add_array_len(2);
    c.reply.add_bulk(cursor.to_string().as_bytes());
    c.reply.add_bulk_array(&items);
}

// ---------------------------------------------------------------------------------------
// Field expiration
// ---------------------------------------------------------------------------------------

fn hexpire_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    hexpire_generic(srv, c, now, true);
}

fn hpexpire_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    hexpire_generic(srv, c, now, false);
}

fn hexpireat_command(srv: &mut Server, c: &mut Client) {
    hexpire_generic(srv, c, 0, true);
}

fn hpexpireat_command(srv: &mut Server, c: &mut Client) {
    hexpire_generic(srv, c, 0, false);
}

fn hexpire_generic(srv: &mut Server, c: &mut Client, basetime: i64, seconds: bool) {
    let db = c.db;
    let now = srv.mstime;
    let mut flags = 0u32;
    let mut num_fields: i64 = 0;
    let mut fields_at = c.argv.len();
    if let Some(fi) = find_fields(&c.argv, 3) {
        let Some(f) = super::keys::parse_expire_flags(c, 3, fi) else {
            return;
        };
        flags = f;
        let Some(n) = parse_i64_strict(&c.argv[fi + 1]) else {
            c.reply.add_error(reply::ERR_NOT_INTEGER);
            return;
        };
        num_fields = n;
        fields_at = fi + 2;
    }
    if num_fields == 0 || num_fields != (c.argv.len() - fields_at) as i64 {
        c.reply.add_error(ERR_NUMFIELDS);
        return;
    }
    let Some(when) = expire_to_unix(c, 2, basetime, seconds) else {
        return;
    };
    let prop = propagating(srv);
    let h = match write_hash(srv, c) {
        Err(()) => return,
        Ok(h) => h,
    };
    c.reply.add_array_len(num_fields as usize);
    let Some(h) = h else {
        for _ in fields_at..c.argv.len() {
            c.reply.add_long(-2);
        }
        return;
    };
    let mut expired = 0u64;
    let mut updated = 0u64;
    let mut deleted: Vec<Vec<u8>> = Vec::new();
    for field in &c.argv[fields_at..] {
        let r = h.set_expire(field, when, flags, now);
        if r == EXP_SUCCESSFUL {
            updated += 1;
        } else if r == EXP_EXPIRE_ASAP {
            expired += 1;
            if prop {
                deleted.push(field.clone());
            }
        }
        c.reply.add_long(r);
    }
    if prop && expired + updated > 0 {
        // Fields whose time is already past go as HDEL; otherwise the command goes as
        // HPEXPIREAT with the absolute time (flags and fields kept).
        c.propagate_argv = Some(if expired > 0 {
            hdel_argv(&c.argv[1], deleted)
        } else {
            let mut argv = c.argv.clone();
            argv[0] = b"HPEXPIREAT".to_vec();
            argv[2] = when.to_string().into_bytes();
            argv
        });
    }
    if expired + updated > 0 {
        let key = &c.argv[1];
        if expired > 0 {
            notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", key, db);
        } else {
            notify_keyspace_event(srv, NOTIFY_HASH, "hexpire", key, db);
        }
        srv.dirty += expired + updated;
        db::signal_modified_key(srv, db, key);
        if !delete_if_empty(srv, db, key) {
            track_volatile(srv, db, key);
        }
    }
}

/// Whether writes are propagated (AOF on): rewrites are built only then.
#[inline]
fn propagating(srv: &Server) -> bool {
    crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL)
}

/// `HDEL key field...`, how deleted (expired) fields are propagated.
fn hdel_argv(key: &[u8], fields: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut argv = Vec::with_capacity(fields.len() + 2);
    argv.push(b"HDEL".to_vec());
    argv.push(key.to_vec());
    argv.extend(fields);
    argv
}

/// `<cmd> key <time> FIELDS n field...` (HPEXPIREAT / HPERSIST without a time).
fn fields_argv(cmd: &[u8], key: &[u8], when: Option<i64>, fields: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut argv = Vec::with_capacity(fields.len() + 5);
    argv.push(cmd.to_vec());
    argv.push(key.to_vec());
    if let Some(w) = when {
        argv.push(w.to_string().into_bytes());
    }
    argv.push(b"FIELDS".to_vec());
    argv.push(fields.len().to_string().into_bytes());
    argv.extend(fields);
    argv
}

/// Parses `key FIELDS numfields field...` at argv[2] (HTTL family, HPERSIST, HGETDEL);
/// `mismatch` is the error for a count that does not match.
fn parse_fields_at_2(c: &mut Client, mismatch: &str) -> Option<usize> {
    if !eq_ic(&c.argv[2], "fields") {
        c.reply.add_error(reply::ERR_SYNTAX);
        return None;
    }
    let Some(n) = parse_i64_strict(&c.argv[3]) else {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
        return None;
    };
    if n == 0 || n != (c.argv.len() - 4) as i64 {
        c.reply.add_error(mismatch);
        return None;
    }
    Some(n as usize)
}

fn httl_generic(srv: &mut Server, c: &mut Client, basetime: i64, ms: bool) {
    let Some(n) = parse_fields_at_2(c, reply::ERR_SYNTAX) else {
        return;
    };
    let now = srv.mstime;
    let Ok(h) = read_hash(srv, c, 1) else {
        return;
    };
    c.reply.add_array_len(n);
    for field in &c.argv[4..] {
        match h.and_then(|h| h.get_expiry(field, now)) {
            None => c.reply.add_long(-2),
            Some(EXPIRY_NONE) => c.reply.add_long(-1),
            Some(w) => {
                let r = (w - basetime).max(0);
                // Rounded to the nearest second without overflowing near i64::MAX.
                let secs = r / 1000 + i64::from(r % 1000 >= 500);
                c.reply.add_long(if ms { r } else { secs });
            }
        }
    }
}

fn httl_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    httl_generic(srv, c, now, false);
}

fn hpttl_command(srv: &mut Server, c: &mut Client) {
    let now = srv.mstime;
    httl_generic(srv, c, now, true);
}

fn hexpiretime_command(srv: &mut Server, c: &mut Client) {
    httl_generic(srv, c, 0, false);
}

fn hpexpiretime_command(srv: &mut Server, c: &mut Client) {
    httl_generic(srv, c, 0, true);
}

fn hpersist_command(srv: &mut Server, c: &mut Client) {
    let Some(n) = parse_fields_at_2(c, ERR_NUMFIELDS) else {
        return;
    };
    let db = c.db;
    let now = srv.mstime;
    let h = match write_hash(srv, c) {
        Err(()) => return,
        Ok(h) => h,
    };
    c.reply.add_array_len(n);
    let Some(h) = h else {
        for _ in 0..n {
            c.reply.add_long(-2);
        }
        return;
    };
    let mut changes = 0u64;
    for field in &c.argv[4..] {
        let r = h.persist(field, now);
        if r == EXP_SUCCESSFUL {
            changes += 1;
        }
        c.reply.add_long(r);
    }
    if changes > 0 {
        srv.dirty += changes;
        let key = &c.argv[1];
        notify_keyspace_event(srv, NOTIFY_HASH, "hpersist", key, db);
        db::signal_modified_key(srv, db, key);
    }
}

// Option flags of HSETEX / HGETEX (upstream's ARGS_*).
const A_NX: u32 = 1;
const A_XX: u32 = 2;
const A_FNX: u32 = 4;
const A_FXX: u32 = 8;
const A_EX: u32 = 16;
const A_PX: u32 = 32;
const A_EXAT: u32 = 64;
const A_PXAT: u32 = 128;
const A_KEEPTTL: u32 = 256;
const A_PERSIST: u32 = 512;
const A_ANY_EXP: u32 = A_EX | A_PX | A_EXAT | A_PXAT;

/// Parses the options of HSETEX (`set` = true) or HGETEX in argv[2..end] (upstream's
/// `parseExtendedStringArgumentsOrReply` with COMMAND_HSET / COMMAND_HGET). Returns
/// (flags, index of the expire argument) or None after replying a syntax error.
fn parse_ext_args(c: &mut Client, end: usize, set: bool) -> Option<(u32, Option<usize>)> {
    let mut flags = 0u32;
    let mut expire_at = None;
    let mut j = 2;
    while j < end {
        let opt = &c.argv[j];
        let has_next = j + 1 < end;
        let exp_opt = |name: &str, me: u32| -> bool {
            eq_ic(opt, name) && flags & (A_KEEPTTL | A_PERSIST | (A_ANY_EXP & !me)) == 0 && has_next
        };
        if set && eq_ic(opt, "nx") && flags & A_XX == 0 {
            flags |= A_NX;
        } else if set && eq_ic(opt, "xx") && flags & A_NX == 0 {
            flags |= A_XX;
        } else if set && eq_ic(opt, "fnx") && flags & A_FXX == 0 {
            flags |= A_FNX;
        } else if set && eq_ic(opt, "fxx") && flags & A_FNX == 0 {
            flags |= A_FXX;
        } else if set && eq_ic(opt, "keepttl") && flags & (A_PERSIST | A_ANY_EXP) == 0 {
            flags |= A_KEEPTTL;
        } else if !set && eq_ic(opt, "persist") && flags & (A_KEEPTTL | A_ANY_EXP) == 0 {
            flags |= A_PERSIST;
        } else if exp_opt("ex", A_EX) {
            flags |= A_EX;
            expire_at = Some(j + 1);
            j += 1;
        } else if exp_opt("px", A_PX) {
            flags |= A_PX;
            expire_at = Some(j + 1);
            j += 1;
        } else if exp_opt("exat", A_EXAT) {
            flags |= A_EXAT;
            expire_at = Some(j + 1);
            j += 1;
        } else if exp_opt("pxat", A_PXAT) {
            flags |= A_PXAT;
            expire_at = Some(j + 1);
            j += 1;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return None;
        }
        j += 1;
    }
    Some((flags, expire_at))
}

/// The absolute expiry of HSETEX/HGETEX options; None after replying an error.
fn ext_when(c: &mut Client, flags: u32, expire_at: Option<usize>, now: i64) -> Option<Option<i64>> {
    let Some(idx) = expire_at else {
        return Some(None);
    };
    let basetime = if flags & (A_EXAT | A_PXAT) != 0 {
        0
    } else {
        now
    };
    let seconds = flags & (A_EX | A_EXAT) != 0;
    expire_to_unix(c, idx, basetime, seconds).map(Some)
}

fn hsetex_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let now = srv.mstime;
    let (max_e, max_v) = cfg_limits(srv);
    let mut flags = 0;
    let mut expire_at = None;
    let mut num_fields: i64 = 0;
    let mut fields_at = c.argv.len();
    if let Some(fi) = find_fields(&c.argv, 1) {
        let Some((fl, ea)) = parse_ext_args(c, fi, true) else {
            return;
        };
        flags = fl;
        expire_at = ea;
        let Some(n) = parse_i64_strict(&c.argv[fi + 1]) else {
            c.reply.add_error(reply::ERR_NOT_INTEGER);
            return;
        };
        num_fields = n;
        fields_at = fi + 2;
    }
    if num_fields <= 0
        || num_fields > i64::MAX / 2
        || num_fields * 2 != (c.argv.len() - fields_at) as i64
    {
        c.reply.add_error(ERR_NUMFIELDS);
        return;
    }
    let exists = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => false,
        Some(ValueRef::Hash(_)) => true,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    if (flags & A_NX != 0 && exists) || (flags & A_XX != 0 && !exists) {
        c.reply.add_long(0);
        return;
    }
    let keep = flags & A_KEEPTTL != 0;
    let mut when = EXPIRY_NONE;
    let mut set_expired = false;
    if !keep {
        let Some(w) = ext_when(c, flags, expire_at, now) else {
            return;
        };
        if let Some(w) = w {
            when = w;
            set_expired = w <= now;
        }
    }
    if flags & (A_FNX | A_FXX) != 0 {
        if exists {
            if let Some(Value::Hash(h)) = db::lookup_key_write_mut(srv, db, &c.argv[1]) {
                for pair in c.argv[fields_at..].chunks_exact(2) {
                    let e = h.exists(&pair[0], now);
                    if (flags & A_FNX != 0 && e) || (flags & A_FXX != 0 && !e) {
                        c.reply.add_long(0);
                        return;
                    }
                }
            }
        } else if flags & A_FXX != 0 {
            c.reply.add_long(0);
            return;
        }
    }
    let prop = propagating(srv);
    let Some(h) = write_or_create(srv, c) else {
        return;
    };
    if !set_expired && when == EXPIRY_NONE {
        h.try_conversion(&c.argv[fields_at..], max_e, max_v);
    }
    let mut changes = 0u64;
    let mut expired_overwritten = 0u64;
    let mut deleted: Vec<Vec<u8>> = Vec::new();
    for pair in c.argv[fields_at..].chunks_exact(2) {
        if set_expired {
            if h.delete(&pair[0], None) {
                changes += 1;
                if prop {
                    deleted.push(pair[0].clone());
                }
            }
        } else {
            let (_, exp) = h.set(&pair[0], &pair[1], when, keep, now, max_e, max_v);
            changes += 1;
            if exp {
                expired_overwritten += 1;
            }
        }
    }
    if prop && changes > 0 {
        // A time already past deletes the fields (HDEL); a time goes as PXAT with the
        // absolute time (the other options dropped), as upstream.
        if set_expired {
            c.propagate_argv = Some(hdel_argv(&c.argv[1], deleted));
        } else if when != EXPIRY_NONE {
            let mut argv = Vec::with_capacity(c.argv.len() - fields_at + 6);
            argv.push(b"HSETEX".to_vec());
            argv.push(c.argv[1].clone());
            argv.push(b"PXAT".to_vec());
            argv.push(when.to_string().into_bytes());
            argv.push(b"FIELDS".to_vec());
            argv.push(num_fields.to_string().into_bytes());
            argv.extend(c.argv[fields_at..].iter().cloned());
            c.propagate_argv = Some(argv);
        }
    }
    let key = &c.argv[1];
    if changes > 0 {
        if expired_overwritten > 0 {
            notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", key, db);
        }
        db::signal_modified_key(srv, db, key);
        srv.dirty += changes;
    }
    notify_keyspace_event(srv, NOTIFY_HASH, "hset", key, db);
    if expire_at.is_some() && !keep {
        notify_keyspace_event(srv, NOTIFY_HASH, "hexpire", key, db);
    }
    if set_expired {
        notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", key, db);
    }
    if !delete_if_empty(srv, db, key) {
        track_volatile(srv, db, key);
    }
    c.reply.add_long(1);
}

fn hgetex_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let now = srv.mstime;
    let mut flags = 0;
    let mut expire_at = None;
    let mut num_fields: i64 = -1;
    let mut fields_at = c.argv.len();
    if let Some(fi) = find_fields(&c.argv, 1) {
        let Some((fl, ea)) = parse_ext_args(c, fi, false) else {
            return;
        };
        flags = fl;
        expire_at = ea;
        let Some(n) = parse_i64_strict(&c.argv[fi + 1]) else {
            c.reply.add_error(reply::ERR_NOT_INTEGER);
            return;
        };
        num_fields = n;
        fields_at = fi + 2;
    }
    if num_fields == 0 || num_fields != (c.argv.len() - fields_at) as i64 {
        c.reply.add_error(ERR_NUMFIELDS);
        return;
    }
    let exists = match read_hash(srv, c, 1) {
        Err(()) => return,
        Ok(h) => h.is_some(),
    };
    let persist = flags & A_PERSIST != 0;
    let mut set_expiry = false;
    let mut set_expired = false;
    let mut when = EXPIRY_NONE;
    if !persist {
        let Some(w) = ext_when(c, flags, expire_at, now) else {
            return;
        };
        if let Some(w) = w {
            when = w;
            if w <= now {
                set_expired = true;
            } else {
                set_expiry = true;
            }
        }
    }
    c.reply.add_array_len(num_fields as usize);
    let mut changes = 0u64;
    let prop = propagating(srv);
    let mut changed_fields: Vec<Vec<u8>> = Vec::new();
    let h = if exists {
        match db::lookup_key_write_mut(srv, db, &c.argv[1]) {
            Some(Value::Hash(h)) => Some(h),
            _ => None,
        }
    } else {
        None
    };
    match h {
        None => {
            for _ in fields_at..c.argv.len() {
                c.reply.add_null();
            }
        }
        Some(h) => {
            for field in &c.argv[fields_at..] {
                reply_opt(&mut c.reply, h.get(field, now));
                let changed = if set_expired {
                    h.delete(field, Some(now))
                } else if set_expiry {
                    h.set_expire(field, when, 0, now) == EXP_SUCCESSFUL
                } else if persist {
                    h.persist(field, now) == EXP_SUCCESSFUL
                } else {
                    false
                };
                if changed {
                    changes += 1;
                    if prop {
                        changed_fields.push(field.clone());
                    }
                }
            }
        }
    }
    if prop && changes > 0 {
        // The fields changed: HDEL (time past), HPEXPIREAT (absolute time), HPERSIST.
        let key = &c.argv[1];
        c.propagate_argv = Some(if set_expired {
            hdel_argv(key, changed_fields)
        } else if set_expiry {
            fields_argv(b"HPEXPIREAT", key, Some(when), changed_fields)
        } else {
            fields_argv(b"HPERSIST", key, None, changed_fields)
        });
    }
    if changes > 0 {
        let key = &c.argv[1];
        let ev = if set_expired {
            "hexpired"
        } else if set_expiry {
            "hexpire"
        } else {
            "hpersist"
        };
        notify_keyspace_event(srv, NOTIFY_HASH, ev, key, db);
        srv.dirty += changes;
        db::signal_modified_key(srv, db, key);
        if !delete_if_empty(srv, db, key) {
            track_volatile(srv, db, key);
        }
    }
}

fn hgetdel_command(srv: &mut Server, c: &mut Client) {
    let Some(n) = parse_fields_at_2(c, ERR_NUMFIELDS) else {
        return;
    };
    let db = c.db;
    let now = srv.mstime;
    let h = match write_hash(srv, c) {
        Err(()) => return,
        Ok(h) => h,
    };
    c.reply.add_array_len(n);
    let Some(h) = h else {
        for _ in 0..n {
            c.reply.add_null();
        }
        return;
    };
    let mut deleted = 0u64;
    for field in &c.argv[4..] {
        reply_opt(&mut c.reply, h.get(field, now));
        if h.delete(field, Some(now)) {
            deleted += 1;
        }
    }
    if deleted > 0 {
        let key = &c.argv[1];
        db::signal_modified_key(srv, db, key);
        notify_keyspace_event(srv, NOTIFY_HASH, "hgetdel", key, db);
        srv.dirty += deleted;
        delete_if_empty(srv, db, key);
    }
}

// ---------------------------------------------------------------------------------------
// Active field expiry
// ---------------------------------------------------------------------------------------

/// Keys (of one db) whose hash has fields with a TTL, visited round-robin by the active
/// field-expiry pass. Entries can be stale (key deleted or renamed): the pass drops them.
#[derive(Default)]
pub struct VolatileKeys {
    keys: std::collections::BTreeSet<Vec<u8>>,
    cursor: Vec<u8>,
}

impl VolatileKeys {
    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains(key)
    }
    pub fn insert(&mut self, key: Vec<u8>) {
        self.keys.insert(key);
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// Keys registered (INFO keyspace `keys_with_volatile_items`; a key deleted by other
    /// means stays counted until the expiry pass visits it).
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn clear(&mut self) {
        self.keys.clear();
        self.cursor.clear();
    }
    /// Up to `n` keys after the cursor, wrapping around; advances the cursor.
    fn next_batch(&mut self, n: usize) -> Vec<Vec<u8>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut out: Vec<Vec<u8>> = self
            .keys
            .range::<[u8], _>((Excluded(&self.cursor[..]), Unbounded))
            .take(n)
            .cloned()
            .collect();
        if out.len() < n {
            for k in self.keys.iter() {
                if out.len() >= n || out.contains(k) {
                    break;
                }
                out.push(k.clone());
            }
        }
        if let Some(last) = out.last() {
            self.cursor = last.clone();
        }
        out
    }
}

/// Fields reclaimed per key per visit.
const FIELDS_PER_KEY: usize = 1000;

/// The active field-expiry pass for one db (called by the active expire cycle): visits up
/// to `keys` hashes with volatile fields and deletes their expired fields, deleting the
/// key when its last field goes. Stops at `deadline`. Returns the fields reclaimed.
pub fn active_expire_fields(
    srv: &mut Server,
    db: usize,
    keys: usize,
    deadline: std::time::Instant,
) -> usize {
    if srv.dbs[db].volatile_hashes.is_empty() {
        return 0;
    }
    let now = srv.mstime;
    let batch = srv.dbs[db].volatile_hashes.next_batch(keys);
    let mut total = 0;
    let prop = propagating(srv);
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for key in batch {
        fields.clear();
        let out = if prop { Some(&mut fields) } else { None };
        let (n, empty, still) = match srv.dbs[db].kv.get_mut(&key) {
            Some(Value::Hash(h)) => {
                let n = h.expire_fields(now, FIELDS_PER_KEY, out);
                (n, h.is_empty(), h.has_volatile())
            }
            _ => (0, false, false),
        };
        if n > 0 && prop {
            // The key's expired fields as one HDEL, then its deletion when emptied, in
            // one unit (MULTI/EXEC), as upstream.
            crate::propagate::enter_unit(srv);
            let argv = hdel_argv(&key, std::mem::take(&mut fields));
            crate::propagate::also_propagate(srv, db, argv, crate::propagate::PROPAGATE_ALL);
            if empty {
                let lazy = srv.config.lazyfree_lazy_expire;
                db::propagate_deletion(srv, db, &key, lazy);
            }
            crate::propagate::exit_unit(srv);
        }
        if n > 0 {
            total += n;
            srv.dirty += n as u64;
            srv.stats.expired_fields += n as u64;
            notify_keyspace_event(srv, NOTIFY_HASH, "hexpired", &key, db);
            if empty {
                db::db_delete(srv, db, &key);
                notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &key, db);
            } else {
                db::signal_modified_key(srv, db, &key);
            }
        }
        if empty || !still {
            srv.dbs[db].volatile_hashes.keys.remove(&key);
        }
        if std::time::Instant::now() > deadline {
            break;
        }
    }
    total
}
