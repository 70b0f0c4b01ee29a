//! Set commands, as upstream's `t_set.c`: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER,
//! SCARD, SPOP, SRANDMEMBER, SMOVE, SINTER, SINTERCARD, SINTERSTORE, SUNION,
//! SUNIONSTORE, SDIFF, SDIFFSTORE and SSCAN.
//!
//! Replies list members in the set's iteration order, as upstream: ascending for an
//! intset, insertion order for a listpack. SUNION/SDIFF build their result in a
//! temporary set that starts as an intset, exactly as upstream, so that their order
//! matches too.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::{flags as cflags, Client};
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_SET};
use crate::object::{Value, ValueRef};
use crate::reply;
use crate::server::Server;
use crate::types::set::{Member, Set, SetLimits};
use crate::util::{eq_ic, parse_i64_strict, random_u64};

const TIP_NONDET: &[&str] = &["nondeterministic_output"];
const TIP_NONDET_ORDER: &[&str] = &["nondeterministic_output_order"];
const INTER_COMPLEXITY: &str =
    "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.";
const UNION_COMPLEXITY: &str = "O(N) where N is the total number of elements in all given sets.";

/// Key spec: the one key at `idx`.
const fn one(flags: u32, idx: i32) -> KeySpec {
    KeySpec::range(flags, idx, 0, 1)
}

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "sadd",
        -3,
        f::WRITE | f::DENYOOM | f::FAST,
        cat::WRITE | cat::SET | cat::FAST,
        sadd_command,
    )
    .keys(&[one(k::RW | k::INSERT, 1)])
    .doc(
        "set",
        "1.0.0",
        "Adds one or more members to a set. Creates the key if it doesn't exist.",
        "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
    ),
    CommandDef::new(
        "srem",
        -3,
        f::WRITE | f::FAST,
        cat::WRITE | cat::SET | cat::FAST,
        srem_command,
    )
    .keys(&[one(k::RW | k::DELETE, 1)])
    .doc(
        "set",
        "1.0.0",
        "Removes one or more members from a set. Deletes the set if the last member was removed.",
        "O(N) where N is the number of members to be removed.",
    ),
    CommandDef::new(
        "smembers",
        2,
        f::READONLY,
        cat::READ | cat::SET | cat::SLOW,
        smembers_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "set",
        "1.0.0",
        "Returns all members of a set.",
        "O(N) where N is the set cardinality.",
    )
    .tips(TIP_NONDET_ORDER),
    CommandDef::new(
        "sismember",
        3,
        f::READONLY | f::FAST,
        cat::READ | cat::SET | cat::FAST,
        sismember_command,
    )
    .keys(&[one(k::RO, 1)])
    .doc(
        "set",
        "1.0.0",
        "Determines whether a member belongs to a set.",
        "O(1)",
    ),
    CommandDef::new(
        "smismember",
        -3,
        f::READONLY | f::FAST,
        cat::READ | cat::SET | cat::FAST,
        smismember_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "set",
        "6.2.0",
        "Determines whether multiple members belong to a set.",
        "O(N) where N is the number of elements being checked for membership",
    ),
    CommandDef::new(
        "scard",
        2,
        f::READONLY | f::FAST,
        cat::READ | cat::SET | cat::FAST,
        scard_command,
    )
    .keys(&[one(k::RO, 1)])
    .doc("set", "1.0.0", "Returns the number of members in a set.", "O(1)"),
    CommandDef::new(
        "spop",
        -2,
        f::WRITE | f::FAST,
        cat::WRITE | cat::SET | cat::FAST,
        spop_command,
    )
    .keys(&[one(k::RW | k::ACCESS | k::DELETE, 1)])
    .doc(
        "set",
        "1.0.0",
        "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
        "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.",
    )
    .tips(TIP_NONDET),
    CommandDef::new(
        "srandmember",
        -2,
        f::READONLY,
        cat::READ | cat::SET | cat::SLOW,
        srandmember_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "set",
        "1.0.0",
        "Gets one or multiple random members from a set.",
        "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.",
    )
    .tips(TIP_NONDET),
    CommandDef::new(
        "smove",
        4,
        f::WRITE | f::FAST,
        cat::WRITE | cat::SET | cat::FAST,
        smove_command,
    )
    .keys(&[
        one(k::RW | k::ACCESS | k::DELETE, 1),
        one(k::RW | k::INSERT, 2),
    ])
    .doc(
        "set",
        "1.0.0",
        "Moves a member from one set to another.",
        "O(1)",
    ),
    CommandDef::new(
        "sinter",
        -2,
        f::READONLY,
        cat::READ | cat::SET | cat::SLOW,
        sinter_command,
    )
    .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, -1, 1)])
    .doc(
        "set",
        "1.0.0",
        "Returns the intersect of multiple sets.",
        INTER_COMPLEXITY,
    )
    .tips(TIP_NONDET_ORDER),
    CommandDef::new(
        "sintercard",
        -3,
        f::READONLY | f::MOVABLE_KEYS,
        cat::READ | cat::SET | cat::SLOW,
        sintercard_command,
    )
    .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 1, 0, 1, 1)])
    .doc(
        "set",
        "7.0.0",
        "Returns the number of members of the intersect of multiple sets.",
        INTER_COMPLEXITY,
    ),
    CommandDef::new(
        "sinterstore",
        -3,
        f::WRITE | f::DENYOOM,
        cat::WRITE | cat::SET | cat::SLOW,
        sinterstore_command,
    )
    .keys(&[
        one(k::OW | k::UPDATE, 1),
        KeySpec::range(k::RO | k::ACCESS, 2, -1, 1),
    ])
    .doc(
        "set",
        "1.0.0",
        "Stores the intersect of multiple sets in a key.",
        INTER_COMPLEXITY,
    ),
    CommandDef::new(
        "sunion",
        -2,
        f::READONLY,
        cat::READ | cat::SET | cat::SLOW,
        sunion_command,
    )
    .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, -1, 1)])
    .doc(
        "set",
        "1.0.0",
        "Returns the union of multiple sets.",
        UNION_COMPLEXITY,
    )
    .tips(TIP_NONDET_ORDER),
    CommandDef::new(
        "sunionstore",
        -3,
        f::WRITE | f::DENYOOM,
        cat::WRITE | cat::SET | cat::SLOW,
        sunionstore_command,
    )
    .keys(&[
        one(k::OW | k::UPDATE, 1),
        KeySpec::range(k::RO | k::ACCESS, 2, -1, 1),
    ])
    .doc(
        "set",
        "1.0.0",
        "Stores the union of multiple sets in a key.",
        UNION_COMPLEXITY,
    ),
    CommandDef::new(
        "sdiff",
        -2,
        f::READONLY,
        cat::READ | cat::SET | cat::SLOW,
        sdiff_command,
    )
    .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, -1, 1)])
    .doc(
        "set",
        "1.0.0",
        "Returns the difference of multiple sets.",
        UNION_COMPLEXITY,
    )
    .tips(TIP_NONDET_ORDER),
    CommandDef::new(
        "sdiffstore",
        -3,
        f::WRITE | f::DENYOOM,
        cat::WRITE | cat::SET | cat::SLOW,
        sdiffstore_command,
    )
    .keys(&[
        one(k::OW | k::UPDATE, 1),
        KeySpec::range(k::RO | k::ACCESS, 2, -1, 1),
    ])
    .doc(
        "set",
        "1.0.0",
        "Stores the difference of multiple sets in a key.",
        UNION_COMPLEXITY,
    ),
    CommandDef::new(
        "sscan",
        -3,
        f::READONLY,
        cat::READ | cat::SET | cat::SLOW,
        sscan_command,
    )
    .keys(&[one(k::RO | k::ACCESS, 1)])
    .doc(
        "set",
        "2.8.0",
        "Iterates over members of a set.",
        "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
    )
    .tips(TIP_NONDET),
];

/// Stop producing a reply past this many pending bytes (a client asking SRANDMEMBER for
/// -2^63 members would otherwise make the server produce output until it runs out of
/// memory); the connection is closed as upstream does when the output limit is hit.
const REPLY_HARD_LIMIT: usize = 1 << 30;

fn reply_member(c: &mut Client, m: Member<'_>) {
    match m {
        Member::Int(n) => c.reply.add_bulk_i64(n),
        Member::Str(s) => c.reply.add_bulk(s),
    }
}

/// An empty set reply (`*0` / `~0`).
fn reply_empty_set(c: &mut Client) {
    c.reply.add_set_len(0);
}

/// The set stored at `key` without side effects (after a lookup that applied them).
fn peek_set<'a>(srv: &'a Server, db: usize, key: &[u8]) -> Option<&'a Set> {
    match srv.dbs[db].kv.get(key) {
        Some(ValueRef::Set(s)) => Some(s),
        _ => None,
    }
}

/// Reads `key` (expiry, stats): Ok(true) if it holds a set, Ok(false) if missing, Err
/// after replying WRONGTYPE.
fn read_set_key(srv: &mut Server, c: &mut Client, idx: usize) -> Result<bool, ()> {
    match db::lookup_key_read(srv, c.db, &c.argv[idx]) {
        None => Ok(false),
        Some(ValueRef::Set(_)) => Ok(true),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            Err(())
        }
    }
}

/// Writes: as [`read_set_key`] with a write lookup.
fn write_set_key(srv: &mut Server, c: &mut Client, idx: usize) -> Result<bool, ()> {
    match db::lookup_key_write(srv, c.db, &c.argv[idx]) {
        None => Ok(false),
        Some(ValueRef::Set(_)) => Ok(true),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            Err(())
        }
    }
}

fn set_mut<'a>(srv: &'a mut Server, db: usize, key: &[u8]) -> Option<&'a mut Set> {
    match db::lookup_key_write_mut(srv, db, key) {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    }
}

fn sadd_command(srv: &mut Server, c: &mut Client) {
    let lim = SetLimits::from_config(&srv.config);
    let db = c.db;
    let argv = &c.argv;
    let hint = argv.len() - 2;
    let mut added = 0i64;
    match db::lookup_key_write_mut(srv, db, &argv[1]) {
        Some(Value::Set(s)) => {
            s.maybe_convert(hint, &lim);
            for m in &argv[2..] {
                added += s.add(m, &lim) as i64;
            }
        }
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
        None => {
            let mut s = Set::create(&argv[2], hint, &lim);
            for m in &argv[2..] {
                added += s.add(m, &lim) as i64;
            }
            db::db_add(srv, db, &argv[1], Value::Set(s));
        }
    }
    if added > 0 {
        db::signal_modified_key(srv, db, &argv[1]);
        notify_keyspace_event(srv, NOTIFY_SET, "sadd", &argv[1], db);
    }
    srv.dirty += added as u64;
    c.reply.add_long(added);
}

fn srem_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let argv = &c.argv;
    let mut deleted = 0i64;
    let mut emptied = false;
    match db::lookup_key_write_mut(srv, db, &argv[1]) {
        None => {
            c.reply.add_long(0);
            return;
        }
        Some(Value::Set(s)) => {
            for m in &argv[2..] {
                if s.remove(m) {
                    deleted += 1;
                    if s.is_empty() {
                        emptied = true;
                        break;
                    }
                }
            }
        }
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    }
    if emptied {
        db::db_delete(srv, db, &argv[1]);
    }
    if deleted > 0 {
        db::signal_modified_key(srv, db, &argv[1]);
        notify_keyspace_event(srv, NOTIFY_SET, "srem", &argv[1], db);
        if emptied {
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &argv[1], db);
        }
        srv.dirty += deleted as u64;
    }
    c.reply.add_long(deleted);
}

fn smove_command(srv: &mut Server, c: &mut Client) {
    let lim = SetLimits::from_config(&srv.config);
    let db = c.db;
    let src_is_set =
        db::lookup_key_write(srv, db, &c.argv[1]).map(|v| matches!(v, ValueRef::Set(_)));
    let dst_is_set =
        db::lookup_key_write(srv, db, &c.argv[2]).map(|v| matches!(v, ValueRef::Set(_)));
    let Some(src_ok) = src_is_set else {
        c.reply.add_long(0);
        return;
    };
    if !src_ok || dst_is_set == Some(false) {
        c.reply.add_error(reply::ERR_WRONGTYPE);
        return;
    }
    let argv = &c.argv;
    let ele = &argv[3];
    if argv[1] == argv[2] {
        let is = peek_set(srv, db, &argv[1]).is_some_and(|s| s.contains(ele));
        c.reply.add_long(is as i64);
        return;
    }
    let (removed, emptied) = match set_mut(srv, db, &argv[1]) {
        Some(s) => {
            let r = s.remove(ele);
            (r, s.is_empty())
        }
        None => (false, false),
    };
    if !removed {
        c.reply.add_long(0);
        return;
    }
    notify_keyspace_event(srv, NOTIFY_SET, "srem", &argv[1], db);
    if emptied {
        db::db_delete(srv, db, &argv[1]);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &argv[1], db);
    }
    if dst_is_set.is_none() {
        db::db_add(srv, db, &argv[2], Value::Set(Set::create(ele, 1, &lim)));
    }
    db::signal_modified_key(srv, db, &argv[1]);
    srv.dirty += 1;
    let added = set_mut(srv, db, &argv[2]).is_some_and(|s| s.add(ele, &lim));
    if added {
        srv.dirty += 1;
        db::signal_modified_key(srv, db, &argv[2]);
        notify_keyspace_event(srv, NOTIFY_SET, "sadd", &argv[2], db);
    }
    c.reply.add_long(1);
}

fn sismember_command(srv: &mut Server, c: &mut Client) {
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_long(0),
        Some(ValueRef::Set(s)) => c.reply.add_long(s.contains(&c.argv[2]) as i64),
        Some(_) => c.reply.add_error(reply::ERR_WRONGTYPE),
    }
}

fn smismember_command(srv: &mut Server, c: &mut Client) {
    let set = match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => None,
        Some(ValueRef::Set(s)) => Some(s),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    c.reply.add_array_len(c.argv.len() - 2);
    for m in &c.argv[2..] {
        let is = set.is_some_and(|s| s.contains(m));
        c.reply.add_long(is as i64);
    }
}

fn scard_command(srv: &mut Server, c: &mut Client) {
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_long(0),
        Some(ValueRef::Set(s)) => c.reply.add_long(s.len() as i64),
        Some(_) => c.reply.add_error(reply::ERR_WRONGTYPE),
    }
}

fn smembers_command(srv: &mut Server, c: &mut Client) {
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => reply_empty_set(c),
        Some(ValueRef::Set(s)) => {
            c.reply.add_set_len(s.len());
            for m in s.iter() {
                reply_member(c, m);
            }
        }
        Some(_) => c.reply.add_error(reply::ERR_WRONGTYPE),
    }
}

/// Parses a count as `getRangeLongFromObjectOrReply(min..=max)`, replying on error.
fn parse_count(c: &mut Client, idx: usize, min: i64, max: i64, msg: Option<&str>) -> Option<i64> {
    match parse_i64_strict(&c.argv[idx]) {
        None => {
            c.reply.add_error(msg.unwrap_or(reply::ERR_NOT_INTEGER));
            None
        }
        Some(v) if v < min || v > max => {
            match msg {
                Some(m) => c.reply.add_error(m),
                None => c.reply.add_error(&format!(
                    "ERR value is out of range, value must between {min} and {max}"
                )),
            }
            None
        }
        Some(v) => Some(v),
    }
}

/// Picks `k` distinct positions in `0..n`, ascending (selection sampling).
fn sample_sorted_indexes(n: usize, k: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(k.min(n));
    let mut need = k.min(n);
    for i in 0..n {
        if need == 0 {
            break;
        }
        let left = (n - i) as u64;
        if random_u64() % left < need as u64 {
            out.push(i);
            need -= 1;
        }
    }
    out
}

/// How much bigger than the remainder a set must be for SPOP to pop one by one rather
/// than rebuild the remainder (upstream's SPOP_MOVE_STRATEGY_MUL).
const SPOP_MOVE_STRATEGY_MUL: usize = 5;

fn spop_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len() == 3 {
        spop_with_count(srv, c);
        return;
    }
    if c.argv.len() > 3 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let db = c.db;
    let argv = &c.argv;
    let (ele, emptied) = match db::lookup_key_write_mut(srv, db, &argv[1]) {
        None => {
            c.reply.add_null();
            return;
        }
        Some(Value::Set(s)) => {
            let Some(e) = s.pop_random() else {
                c.reply.add_null();
                return;
            };
            (e, s.is_empty())
        }
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    notify_keyspace_event(srv, NOTIFY_SET, "spop", &argv[1], db);
    // Propagated as SREM key member.
    if crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL) {
        c.propagate_argv = Some(vec![b"SREM".to_vec(), argv[1].clone(), ele.to_vec()]);
    }
    c.reply.add_bulk(&ele);
    if emptied {
        db::db_delete(srv, db, &argv[1]);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &argv[1], db);
    }
    db::signal_modified_key(srv, db, &argv[1]);
    srv.dirty += 1;
}

fn spop_with_count(srv: &mut Server, c: &mut Client) {
    let Some(count) = parse_count(
        c,
        2,
        0,
        i64::MAX,
        Some("ERR value is out of range, must be positive"),
    ) else {
        return;
    };
    let count = count as u64 as usize;
    let db = c.db;
    let lim = SetLimits::from_config(&srv.config);
    match write_set_key(srv, c, 1) {
        Err(()) => return,
        Ok(false) => {
            reply_empty_set(c);
            return;
        }
        Ok(true) => {}
    }
    if count == 0 {
        reply_empty_set(c);
        return;
    }
    let argv = &c.argv;
    let key = &argv[1];
    let size = peek_set(srv, db, key).map_or(0, |s| s.len());
    notify_keyspace_event(srv, NOTIFY_SET, "spop", key, db);
    srv.dirty += count.min(size) as u64;

    if count >= size {
        // The whole set, in the order SUNION of it would give.
        if let Some(s) = peek_set(srv, db, key) {
            let u = union_diff(&[Some(s)], false, false, &lim);
            c.reply.add_set_len(u.len());
            for m in u.iter() {
                match m {
                    Member::Int(n) => c.reply.add_bulk_i64(n),
                    Member::Str(s) => c.reply.add_bulk(s),
                }
            }
        }
        db::db_delete(srv, db, key);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
        db::signal_modified_key(srv, db, key);
        // Propagated as the deletion of the key.
        if crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL) {
            let del: &[u8] = if srv.config.lazyfree_lazy_server_del {
                b"UNLINK"
            } else {
                b"DEL"
            };
            c.propagate_argv = Some(vec![del.to_vec(), c.argv[1].clone()]);
        }
        return;
    }

    // The popped members are propagated as SREMs of up to SPOP_PROPAGATE_BATCH members.
    let propagating = crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL);
    let mut popped: Vec<Vec<u8>> = Vec::new();
    let remaining = size - count;
    c.reply.add_set_len(count);
    let Some(set) = set_mut(srv, db, key) else {
        return;
    };
    let reply = &mut c.reply;
    let popped_ref = &mut popped;
    let mut emit = |m: Member<'_>| {
        match m {
            Member::Int(n) => reply.add_bulk_i64(n),
            Member::Str(s) => reply.add_bulk(s),
        }
        if propagating {
            popped_ref.push(match m {
                Member::Int(n) => n.to_string().into_bytes(),
                Member::Str(s) => s.to_vec(),
            });
        }
    };
    if remaining.saturating_mul(SPOP_MOVE_STRATEGY_MUL) > count {
        if set.encoding() == crate::object::Encoding::Listpack {
            let idx = sample_sorted_indexes(size, count);
            set.listpack_remove_sorted_indexes(&idx, &mut emit);
        } else {
            for _ in 0..count {
                if let Some(e) = set.pop_random() {
                    emit(Member::Str(&e));
                }
            }
        }
    } else {
        // Rebuild the remainder and hand the rest of the old set to the client.
        let mut newset: Option<Set> = None;
        if set.encoding() == crate::object::Encoding::Listpack {
            let keep = sample_sorted_indexes(size, remaining);
            let mut ns = Set::new_listpack();
            let mut want = keep.iter().peekable();
            for (i, m) in set.iter().enumerate() {
                if want.peek().is_some_and(|&&w| w == i) {
                    want.next();
                    ns.add_member(m, &lim);
                } else {
                    emit(m);
                }
            }
            newset = Some(ns);
        } else {
            for _ in 0..remaining {
                let Some(m) = set.random() else { break };
                let owned = match m {
                    Member::Int(n) => OwnedMember::Int(n),
                    Member::Str(s) => OwnedMember::Str(s.to_vec()),
                };
                let ns = newset.get_or_insert_with(|| match owned {
                    OwnedMember::Int(_) => Set::new_intset(),
                    OwnedMember::Str(_) => Set::new_listpack(),
                });
                ns.add_member(owned.as_member(), &lim);
                set.remove_member(owned.as_member());
            }
            for m in set.iter() {
                emit(m);
            }
        }
        if let Some(ns) = newset {
            *set = ns;
        }
    }
    db::signal_modified_key(srv, db, key);
    if propagating {
        let key = c.argv[1].clone();
        for chunk in popped.chunks(SPOP_PROPAGATE_BATCH) {
            let mut argv = Vec::with_capacity(chunk.len() + 2);
            argv.push(b"SREM".to_vec());
            argv.push(key.clone());
            argv.extend(chunk.iter().cloned());
            crate::propagate::also_propagate(srv, db, argv, crate::propagate::PROPAGATE_ALL);
        }
        c.flags |= crate::client::flags::PREVENT_PROP;
    }
}

/// Members per SREM when SPOP with a count is propagated (upstream's batch of 1024).
const SPOP_PROPAGATE_BATCH: usize = 1024;

enum OwnedMember {
    Int(i64),
    Str(Vec<u8>),
}

impl OwnedMember {
    fn as_member(&self) -> Member<'_> {
        match self {
            OwnedMember::Int(n) => Member::Int(*n),
            OwnedMember::Str(s) => Member::Str(s),
        }
    }
}

/// How much bigger than the request a set must be for SRANDMEMBER to sample rather than
/// copy and subtract (upstream's SRANDMEMBER_SUB_STRATEGY_MUL).
const SRANDMEMBER_SUB_STRATEGY_MUL: usize = 3;

fn srandmember_command(srv: &mut Server, c: &mut Client) {
    if c.argv.len() == 3 {
        srandmember_with_count(srv, c);
        return;
    }
    if c.argv.len() > 3 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_null(),
        Some(ValueRef::Set(s)) => match s.random() {
            Some(m) => reply_member(c, m),
            None => c.reply.add_null(),
        },
        Some(_) => c.reply.add_error(reply::ERR_WRONGTYPE),
    }
}

fn srandmember_with_count(srv: &mut Server, c: &mut Client) {
    let Some(l) = parse_count(c, 2, -i64::MAX, i64::MAX, None) else {
        return;
    };
    let (count, uniq) = (l.unsigned_abs() as usize, l >= 0);
    let set = match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => {
            c.reply.add_array_len(0);
            return;
        }
        Some(ValueRef::Set(s)) => s,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let size = set.len();
    if count == 0 {
        c.reply.add_array_len(0);
        return;
    }
    // Repeats allowed (or one member): independent draws, no auxiliary structure, no
    // allocation sized by the count.
    if !uniq || count == 1 {
        c.reply.add_array_len(count);
        for _ in 0..count {
            if let Some(m) = set.random() {
                reply_member(c, m);
            }
            if c.has_flag(cflags::CLOSE_ASAP) || c.reply.pending() > REPLY_HARD_LIMIT {
                c.flags |= cflags::CLOSE_ASAP;
                break;
            }
        }
        return;
    }
    // The whole set.
    if count >= size {
        c.reply.add_array_len(size);
        for m in set.iter() {
            reply_member(c, m);
        }
        return;
    }
    // From here count < size: bounded by the set.
    if set.encoding() == crate::object::Encoding::Listpack {
        let idx = sample_sorted_indexes(size, count);
        c.reply.add_array_len(count);
        let mut want = idx.iter().peekable();
        for (i, m) in set.iter().enumerate() {
            if want.peek().is_none() {
                break;
            }
            if want.peek().is_some_and(|&&w| w == i) {
                want.next();
                reply_member(c, m);
            }
        }
        return;
    }
    let picked: Vec<Vec<u8>> = if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
        // Copy everything, then drop random members down to the count.
        let mut all: Vec<Vec<u8>> = set.iter().map(|m| m.to_vec()).collect();
        while all.len() > count {
            let i = (random_u64() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        all
    } else {
        let mut seen: std::collections::HashSet<Vec<u8>> =
            std::collections::HashSet::with_capacity(count);
        while seen.len() < count {
            if let Some(m) = set.random() {
                seen.insert(m.to_vec());
            }
        }
        seen.into_iter().collect()
    };
    c.reply.add_array_len(picked.len());
    for m in &picked {
        c.reply.add_bulk(m);
    }
}

/// The result of SUNION (`diff == false`) or SDIFF of `sets` (None: missing key), built
/// as upstream: in a temporary set that starts as an intset, except for a reply (not
/// `store`) involving a listpack or hashtable set, built in a hashtable.
fn union_diff(sets: &[Option<&Set>], diff: bool, store: bool, lim: &SetLimits) -> Set {
    let all_intsets = sets
        .iter()
        .flatten()
        .all(|s| s.encoding() == crate::object::Encoding::Intset);
    let mut dst = if store || all_intsets {
        Set::new_intset()
    } else {
        Set::new_dict(0)
    };
    if !diff {
        for s in sets.iter().flatten() {
            for m in s.iter() {
                dst.add_member(m, lim);
            }
        }
        return dst;
    }
    let Some(first) = sets.first().copied().flatten() else {
        return dst;
    };
    let sameset = sets[1..]
        .iter()
        .any(|s| s.is_some_and(|s| std::ptr::eq(s, first)));
    if sameset {
        return dst;
    }
    let mut algo_one: u64 = 0;
    let mut algo_two: u64 = 0;
    for s in sets.iter().flatten() {
        algo_one += first.len() as u64;
        algo_two += s.len() as u64;
    }
    algo_one /= 2;
    if algo_one <= algo_two {
        // Algorithm 1: every member of the first set against the others, the biggest
        // first.
        let mut others: Vec<Option<&Set>> = sets[1..].to_vec();
        others.sort_by(|a, b| b.map_or(0, |s| s.len()).cmp(&a.map_or(0, |s| s.len())));
        for m in first.iter() {
            if !others.iter().flatten().any(|s| s.contains_member(m)) {
                dst.add_member(m, lim);
            }
        }
    } else {
        // Algorithm 2: add the first set, remove the others.
        let mut card: usize = 0;
        for (j, s) in sets.iter().enumerate() {
            let Some(s) = s else { continue };
            for m in s.iter() {
                if j == 0 {
                    card += dst.add_member(m, lim) as usize;
                } else {
                    card -= dst.remove_member(m) as usize;
                }
            }
            if card == 0 {
                break;
            }
        }
    }
    dst
}

/// Looks every key of `keys` (argument indexes) up for reading; Err after WRONGTYPE.
fn read_all(srv: &mut Server, c: &mut Client, keys: std::ops::Range<usize>) -> Result<usize, ()> {
    let mut missing = 0;
    for i in keys {
        if !read_set_key(srv, c, i)? {
            missing += 1;
        }
    }
    Ok(missing)
}

/// Stores `dst` at `dstkey` (or deletes the key if the result is empty) and replies the
/// cardinality, as the STORE variants do.
fn store_result(srv: &mut Server, c: &mut Client, dstkey_idx: usize, dst: Set, event: &str) {
    let db = c.db;
    let key = &c.argv[dstkey_idx];
    if !dst.is_empty() {
        let n = dst.len();
        db::set_key(srv, db, key, Value::Set(dst), false);
        c.reply.add_long(n as i64);
        notify_keyspace_event(srv, NOTIFY_SET, event, key, db);
        srv.dirty += 1;
    } else {
        c.reply.add_long(0);
        if db::db_delete(srv, db, key) {
            srv.dirty += 1;
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
        }
    }
}

fn sunion_diff_generic(srv: &mut Server, c: &mut Client, first: usize, store: bool, diff: bool) {
    let lim = SetLimits::from_config(&srv.config);
    let keys = first..c.argv.len();
    if read_all(srv, c, keys.clone()).is_err() {
        return;
    }
    let db = c.db;
    let sets: Vec<Option<&Set>> = c.argv[keys].iter().map(|k| peek_set(srv, db, k)).collect();
    let dst = union_diff(&sets, diff, store, &lim);
    if !store {
        c.reply.add_set_len(dst.len());
        for m in dst.iter() {
            reply_member(c, m);
        }
        return;
    }
    store_result(
        srv,
        c,
        1,
        dst,
        if diff { "sdiffstore" } else { "sunionstore" },
    );
}

fn sunion_command(srv: &mut Server, c: &mut Client) {
    sunion_diff_generic(srv, c, 1, false, false);
}

fn sunionstore_command(srv: &mut Server, c: &mut Client) {
    sunion_diff_generic(srv, c, 2, true, false);
}

fn sdiff_command(srv: &mut Server, c: &mut Client) {
    sunion_diff_generic(srv, c, 1, false, true);
}

fn sdiffstore_command(srv: &mut Server, c: &mut Client) {
    sunion_diff_generic(srv, c, 2, true, true);
}

/// What SINTER does with the intersection.
#[derive(Clone, Copy, PartialEq)]
enum InterMode {
    Reply,
    Store,
    /// SINTERCARD, stopping at the limit (0: none).
    Card(u64),
}

fn sinter_generic(srv: &mut Server, c: &mut Client, keys: std::ops::Range<usize>, mode: InterMode) {
    let lim = SetLimits::from_config(&srv.config);
    let Ok(missing) = read_all(srv, c, keys.clone()) else {
        return;
    };
    let db = c.db;
    if missing > 0 {
        match mode {
            InterMode::Store => {
                let key = &c.argv[1];
                if db::db_delete(srv, db, key) {
                    notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
                    srv.dirty += 1;
                }
                c.reply.add_long(0);
            }
            InterMode::Card(_) => c.reply.add_long(0),
            InterMode::Reply => reply_empty_set(c),
        }
        return;
    }
    let mut sets: Vec<&Set> = c.argv[keys]
        .iter()
        .filter_map(|k| peek_set(srv, db, k))
        .collect();
    sets.sort_by_key(|s| s.len());
    let Some((&first, rest)) = sets.split_first() else {
        reply_empty_set(c);
        return;
    };
    let in_all = |m: Member<'_>| {
        rest.iter()
            .all(|s| std::ptr::eq(*s, first) || s.contains_member(m))
    };
    match mode {
        InterMode::Card(limit) => {
            let mut card: u64 = 0;
            for m in first.iter() {
                if in_all(m) {
                    card += 1;
                    if limit != 0 && card >= limit {
                        break;
                    }
                }
            }
            c.reply.add_long(card as i64);
        }
        InterMode::Reply => {
            let found: Vec<Member<'_>> = first.iter().filter(|&m| in_all(m)).collect();
            c.reply.add_set_len(found.len());
            for m in found {
                reply_member(c, m);
            }
        }
        InterMode::Store => {
            let mut dst = match first.encoding() {
                crate::object::Encoding::Intset => Set::new_intset(),
                _ => Set::new_listpack(),
            };
            let from_dict = first.is_dict();
            let mut only_integers = true;
            for m in first.iter() {
                if !in_all(m) {
                    continue;
                }
                let mut m = m;
                if let Member::Str(s) = m {
                    if only_integers {
                        match parse_i64_strict(s) {
                            Some(v) if from_dict => {
                                if !dst.is_dict() {
                                    m = Member::Int(v);
                                }
                            }
                            _ => only_integers = false,
                        }
                    }
                }
                dst.add_member(m, &lim);
            }
            drop(sets);
            if !dst.is_empty() && only_integers {
                dst.maybe_convert_to_intset(&lim);
            }
            store_result(srv, c, 1, dst, "sinterstore");
        }
    }
}

fn sinter_command(srv: &mut Server, c: &mut Client) {
    let n = c.argv.len();
    sinter_generic(srv, c, 1..n, InterMode::Reply);
}

fn sinterstore_command(srv: &mut Server, c: &mut Client) {
    let n = c.argv.len();
    sinter_generic(srv, c, 2..n, InterMode::Store);
}

fn sintercard_command(srv: &mut Server, c: &mut Client) {
    let Some(numkeys) = parse_count(
        c,
        1,
        1,
        i64::MAX,
        Some("ERR numkeys should be greater than 0"),
    ) else {
        return;
    };
    let argc = c.argv.len();
    if numkeys > (argc - 2) as i64 {
        c.reply
            .add_error("ERR Number of keys can't be greater than number of args");
        return;
    }
    let numkeys = numkeys as usize;
    let mut limit: u64 = 0;
    let mut j = 2 + numkeys;
    while j < argc {
        let more = argc - 1 - j;
        if eq_ic(&c.argv[j], "limit") && more > 0 {
            j += 1;
            let Some(l) = parse_count(c, j, 0, i64::MAX, Some("ERR LIMIT can't be negative"))
            else {
                return;
            };
            limit = l as u64;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    sinter_generic(srv, c, 2..2 + numkeys, InterMode::Card(limit));
}

fn sscan_command(srv: &mut Server, c: &mut Client) {
    let Some(mut cursor) = super::keys::parse_scan_cursor(&c.argv[2]) else {
        c.reply.add_error("ERR invalid cursor");
        return;
    };
    match read_set_key(srv, c, 1) {
        Err(()) => return,
        Ok(false) => {
            c.reply.add_array_len(2);
            c.reply.add_bulk(b"0");
            c.reply.add_array_len(0);
            return;
        }
        Ok(true) => {}
    }
    let Some(opts) = super::keys::parse_scan_opts(c, 3, super::keys::ScanOf::Set) else {
        return;
    };
    let count = opts.count;
    let Some(set) = peek_set(srv, c.db, &c.argv[1]) else {
        return;
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    let matches = |m: &[u8]| opts.matches(m);
    if set.is_dict() {
        let mut sampled: i64 = 0;
        let mut max_iterations = count.saturating_mul(10);
        loop {
            cursor = set
                .dict_scan(cursor, &mut |m| {
                    sampled += 1;
                    if matches(m) {
                        out.push(m.to_vec());
                    }
                })
                .unwrap_or(0);
            if cursor == 0 || max_iterations == 0 || sampled >= count {
                break;
            }
            max_iterations -= 1;
        }
    } else {
        cursor = 0;
        for m in set.iter() {
            let b = m.to_vec();
            if matches(&b) {
                out.push(b);
            }
        }
    }
    c.reply.add_array_len(2);
    c.reply.add_bulk(cursor.to_string().as_bytes());
    c.reply.add_bulk_array(&out);
}
