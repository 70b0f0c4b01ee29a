//! HyperLogLog commands, as upstream's `hyperloglog.c` (the representation is in
//! `crate::hyperloglog`). HLLs are plain strings in the keyspace.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::db;
use crate::hyperloglog as hll;
use crate::notify::{notify_keyspace_event, NOTIFY_STRING};
use crate::object::{Value, ValueRef};
use crate::reply::{self, ReplyBuf};
use crate::server::Server;
use crate::util::eq_ic;

const ERR_NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const ERR_INVALID: &str = "INVALIDOBJ Corrupted HLL object detected";
const CAT_HLL_ADMIN: u64 = cat::HYPERLOGLOG | cat::ADMIN | cat::SLOW | cat::DANGEROUS;

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "pfadd",
        -2,
        f::WRITE | f::DENYOOM | f::FAST,
        cat::WRITE | cat::HYPERLOGLOG | cat::FAST,
        pfadd_command,
    )
    .keys(&[KeySpec::range(k::RW | k::INSERT, 1, 0, 1)])
    .doc(
        "hyperloglog",
        "2.8.9",
        "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
        "O(1) to add every element.",
    ),
    CommandDef::new(
        "pfcount",
        -2,
        f::READONLY,
        cat::READ | cat::HYPERLOGLOG | cat::SLOW,
        pfcount_command,
    )
    .keys(&[KeySpec::range(k::RW | k::ACCESS, 1, -1, 1).notes(
        "RW because it may change the internal representation of the key, and propagate to replicas",
    )])
    .doc(
        "hyperloglog",
        "2.8.9",
        "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
        "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.",
    ),
    CommandDef::new(
        "pfmerge",
        -2,
        f::WRITE | f::DENYOOM,
        cat::WRITE | cat::HYPERLOGLOG | cat::SLOW,
        pfmerge_command,
    )
    .keys(&[
        KeySpec::range(k::RW | k::ACCESS | k::INSERT, 1, 0, 1),
        KeySpec::range(k::RO | k::ACCESS, 2, -1, 1),
    ])
    .doc(
        "hyperloglog",
        "2.8.9",
        "Merges one or more HyperLogLog values into a single key.",
        "O(N) to merge N HyperLogLogs, but with high constant times.",
    ),
    CommandDef::new(
        "pfdebug",
        3,
        f::WRITE | f::DENYOOM | f::ADMIN,
        cat::WRITE | CAT_HLL_ADMIN,
        pfdebug_command,
    )
    .keys(&[KeySpec::range(k::RW | k::ACCESS, 2, 0, 1)])
    .doc(
        "hyperloglog",
        "2.8.9",
        "Internal commands for debugging HyperLogLog values.",
        "N/A",
    ),
    CommandDef::new("pfselftest", 1, f::ADMIN, CAT_HLL_ADMIN, pfselftest_command).doc(
        "hyperloglog",
        "2.8.9",
        "An internal command for testing HyperLogLog values.",
        "N/A",
    ),
];

/// Upstream's `isHLLObjectOrReply`: the HLL bytes of a value, or an error reply.
fn hll_bytes<'a>(r: &mut ReplyBuf, v: &ValueRef<'a>) -> Option<&'a [u8]> {
    match *v {
        ValueRef::Str(b) if hll::is_hll(b) => Some(b),
        ValueRef::Str(_) | ValueRef::Int(_) => {
            r.add_error(ERR_NOT_HLL);
            None
        }
        _ => {
            r.add_error(reply::ERR_WRONGTYPE);
            None
        }
    }
}

/// The stored HLL string of an existing key, made raw-encoded as upstream's
/// `dbUnshareStringValue` does (the caller validated it with [`hll_bytes`]).
fn hll_mut<'a>(srv: &'a mut Server, db: usize, key: &[u8]) -> Option<&'a mut Vec<u8>> {
    match db::lookup_key_write_mut(srv, db, key)? {
        Value::Str { bytes, raw } => {
            *raw = true;
            Some(bytes)
        }
        _ => None,
    }
}

fn raw_value(bytes: Vec<u8>) -> Value {
    Value::raw(bytes)
}

fn pfadd_command(srv: &mut Server, c: &mut Client) {
    let max_bytes = srv.config.hll_sparse_max_bytes;
    let db = c.db;
    let key = &c.argv[1];
    let exists = match db::lookup_key_write(srv, db, key) {
        None => false,
        Some(v) => {
            if hll_bytes(&mut c.reply, &v).is_none() {
                return;
            }
            true
        }
    };
    let mut updated: u64 = 0;
    if !exists {
        let mut s = hll::new_sparse();
        for e in &c.argv[2..] {
            if let Ok(true) = hll::add(&mut s, e, max_bytes) {
                updated += 1;
            }
        }
        updated += 1;
        hll::invalidate_cache(&mut s);
        db::db_add(srv, db, key, raw_value(s));
    } else {
        let Some(s) = hll_mut(srv, db, key) else {
            c.reply.add_error(ERR_NOT_HLL);
            return;
        };
        for e in &c.argv[2..] {
            match hll::add(s, e, max_bytes) {
                Ok(true) => updated += 1,
                Ok(false) => {}
                Err(_) => {
                    c.reply.add_error(ERR_INVALID);
                    return;
                }
            }
        }
        if updated > 0 {
            hll::invalidate_cache(s);
        }
    }
    if updated > 0 {
        db::signal_modified_key(srv, db, key);
        notify_keyspace_event(srv, NOTIFY_STRING, "pfadd", key, db);
        srv.dirty += updated;
    }
    c.reply.add_long(if updated > 0 { 1 } else { 0 });
}

fn pfcount_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    if c.argv.len() > 2 {
        // The cardinality of the union of several HLLs.
        let mut max = [0u8; hll::REGISTERS];
        for key in &c.argv[1..] {
            let Some(v) = db::lookup_key_read(srv, db, key) else {
                continue;
            };
            let Some(b) = hll_bytes(&mut c.reply, &v) else {
                return;
            };
            if hll::merge_into(&mut max, b).is_err() {
                c.reply.add_error(ERR_INVALID);
                return;
            }
        }
        c.reply.add_long(hll::count_raw(&max) as i64);
        return;
    }
    let key = &c.argv[1];
    match db::lookup_key_read(srv, db, key) {
        None => {
            c.reply.add_long(0);
            return;
        }
        Some(v) => {
            if hll_bytes(&mut c.reply, &v).is_none() {
                return;
            }
        }
    }
    let Some(s) = hll_mut(srv, db, key) else {
        c.reply.add_error(ERR_NOT_HLL);
        return;
    };
    if let Some(card) = hll::cached_card(s) {
        c.reply.add_long(card as i64);
        return;
    }
    let Ok(card) = hll::count(s) else {
        c.reply.add_error(ERR_INVALID);
        return;
    };
    hll::set_cached_card(s, card);
    // The cache is part of the string: the key changed, and is propagated.
    db::signal_modified_key(srv, db, key);
    srv.dirty += 1;
    c.reply.add_long(card as i64);
}

fn pfmerge_command(srv: &mut Server, c: &mut Client) {
    let max_bytes = srv.config.hll_sparse_max_bytes;
    let db = c.db;
    let mut max = [0u8; hll::REGISTERS];
    let mut use_dense = false;
    for key in &c.argv[1..] {
        let Some(v) = db::lookup_key_read(srv, db, key) else {
            continue;
        };
        let Some(b) = hll_bytes(&mut c.reply, &v) else {
            return;
        };
        if b[4] == hll::ENC_DENSE {
            use_dense = true;
        }
        if hll::merge_into(&mut max, b).is_err() {
            c.reply.add_error(ERR_INVALID);
            return;
        }
    }
    let key = &c.argv[1];
    if db::lookup_key_write(srv, db, key).is_none() {
        db::db_add(srv, db, key, raw_value(hll::new_sparse()));
    }
    let Some(s) = hll_mut(srv, db, key) else {
        c.reply.add_error(ERR_NOT_HLL);
        return;
    };
    if use_dense {
        if hll::to_dense(s).is_err() {
            c.reply.add_error(ERR_INVALID);
            return;
        }
        hll::dense_compress(&mut s[hll::HDR..], &max);
    } else {
        for (j, &m) in max.iter().enumerate() {
            if m != 0 {
                // As upstream, a corrupted destination is not reported here.
                let _ = hll::set_register(s, j, m, max_bytes);
            }
        }
    }
    hll::invalidate_cache(s);
    db::signal_modified_key(srv, db, key);
    notify_keyspace_event(srv, NOTIFY_STRING, "pfadd", key, db);
    srv.dirty += 1;
    c.reply.add_ok();
}

fn pfselftest_command(srv: &mut Server, c: &mut Client) {
    let max_bytes = srv.config.hll_sparse_max_bytes;
    let mut x = (srv.mstime as u64) ^ 0x9e37_79b9_7f4a_7c15 | 1;
    let rand = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    match hll::selftest(max_bytes, rand) {
        Ok(()) => c.reply.add_ok(),
        Err(e) => c.reply.add_error(&e),
    }
}

fn pfdebug_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let sub = &c.argv[1];
    if eq_ic(sub, "simd") {
        if !eq_ic(&c.argv[2], "on") && !eq_ic(&c.argv[2], "off") {
            // Upstream replies with the error and then the status too.
            c.reply.add_error("Argument must be ON or OFF");
        }
        // No SIMD code paths here.
        c.reply.add_status("disabled");
        return;
    }
    let key = &c.argv[2];
    match db::lookup_key_write(srv, db, key) {
        None => {
            c.reply.add_error("The specified key does not exist");
            return;
        }
        Some(v) => {
            if hll_bytes(&mut c.reply, &v).is_none() {
                return;
            }
        }
    }
    let Some(s) = hll_mut(srv, db, key) else {
        c.reply.add_error(ERR_NOT_HLL);
        return;
    };
    if eq_ic(sub, "getreg") {
        let was_sparse = s[4] == hll::ENC_SPARSE;
        if hll::to_dense(s).is_err() {
            c.reply.add_error(ERR_INVALID);
            return;
        }
        c.reply.add_array_len(hll::REGISTERS);
        for i in 0..hll::REGISTERS {
            c.reply.add_long(hll::dense_get(&s[hll::HDR..], i) as i64);
        }
        if was_sparse {
            srv.dirty += 1;
        }
    } else if eq_ic(sub, "decode") {
        if s[4] != hll::ENC_SPARSE {
            c.reply.add_error("ERR HLL encoding is not sparse");
            return;
        }
        let d = hll::decode(s);
        c.reply.add_bulk(d.as_bytes());
    } else if eq_ic(sub, "encoding") {
        c.reply.add_status(if s[4] == hll::ENC_DENSE {
            "dense"
        } else {
            "sparse"
        });
    } else if eq_ic(sub, "todense") {
        let was_sparse = s[4] == hll::ENC_SPARSE;
        if hll::to_dense(s).is_err() {
            c.reply.add_error(ERR_INVALID);
            return;
        }
        if was_sparse {
            srv.dirty += 1;
        }
        c.reply.add_long(was_sparse as i64);
    } else {
        let msg = format!(
            "ERR Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        );
        c.reply.add_error(&msg);
    }
}
