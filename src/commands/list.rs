//! List commands, as upstream's `t_list.c`.

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::blocked::{self, BlockType};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_LIST};
use crate::object::{Value, ValueRef};
use crate::reply::{self, ERR_NOT_INTEGER, ERR_SYNTAX, ERR_WRONGTYPE};
use crate::server::Server;
use crate::types::list::{Elem, List, ListOpts};
use crate::util::{eq_ic, parse_i64_strict};

const CAT_W_FAST: u64 = cat::WRITE | cat::LIST | cat::FAST;
const CAT_W_SLOW: u64 = cat::WRITE | cat::LIST | cat::SLOW;
const CAT_R_FAST: u64 = cat::READ | cat::LIST | cat::FAST;
const CAT_R_SLOW: u64 = cat::READ | cat::LIST | cat::SLOW;
const CAT_BLOCK: u64 = cat::WRITE | cat::LIST | cat::SLOW | cat::BLOCKING;
const KS_RW_INS: &[KeySpec] = &[KeySpec::range(k::RW | k::INSERT, 1, 0, 1)];
const KS_RW_ACC_DEL: &[KeySpec] = &[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, 0, 1)];
const KS_RW_DEL: &[KeySpec] = &[KeySpec::range(k::RW | k::DELETE, 1, 0, 1)];
const KS_RO_ACC: &[KeySpec] = &[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)];
const KS_MOVE: &[KeySpec] = &[
    KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, 0, 1),
    KeySpec::range(k::RW | k::INSERT, 2, 0, 1),
];
const PUSH_COMPLEXITY: &str = "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.";
const MPOP_COMPLEXITY: &str =
    "O(N+M) where N is the number of provided keys and M is the number of elements returned.";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("lpush", -3, f::WRITE | f::DENYOOM | f::FAST, CAT_W_FAST, lpush_command)
        .keys(KS_RW_INS)
        .doc(
            "list",
            "1.0.0",
            "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
            PUSH_COMPLEXITY,
        ),
    CommandDef::new("rpush", -3, f::WRITE | f::DENYOOM | f::FAST, CAT_W_FAST, rpush_command)
        .keys(KS_RW_INS)
        .doc(
            "list",
            "1.0.0",
            "Appends one or more elements to a list. Creates the key if it doesn't exist.",
            PUSH_COMPLEXITY,
        ),
    CommandDef::new("lpushx", -3, f::WRITE | f::DENYOOM | f::FAST, CAT_W_FAST, lpushx_command)
        .keys(KS_RW_INS)
        .doc(
            "list",
            "2.2.0",
            "Prepends one or more elements to a list only when the list exists.",
            PUSH_COMPLEXITY,
        ),
    CommandDef::new("rpushx", -3, f::WRITE | f::DENYOOM | f::FAST, CAT_W_FAST, rpushx_command)
        .keys(KS_RW_INS)
        .doc(
            "list",
            "2.2.0",
            "Appends one or more elements to a list only when the list exists.",
            PUSH_COMPLEXITY,
        ),
    CommandDef::new("lpop", -2, f::WRITE | f::FAST, CAT_W_FAST, lpop_command)
        .keys(KS_RW_ACC_DEL)
        .doc(
            "list",
            "1.0.0",
            "Returns and removes one or more elements from the beginning of a list. Deletes the list if the last element was popped.",
            "O(N) where N is the number of elements returned",
        ),
    CommandDef::new("rpop", -2, f::WRITE | f::FAST, CAT_W_FAST, rpop_command)
        .keys(KS_RW_ACC_DEL)
        .doc(
            "list",
            "1.0.0",
            "Returns and removes one or more elements from the end of a list. Deletes the list if the last element was popped.",
            "O(N) where N is the number of elements returned",
        ),
    CommandDef::new("llen", 2, f::READONLY | f::FAST, CAT_R_FAST, llen_command)
        .keys(&[KeySpec::range(k::RO, 1, 0, 1)])
        .doc("list", "1.0.0", "Returns the length of a list.", "O(1)"),
    CommandDef::new("lrange", 4, f::READONLY, CAT_R_SLOW, lrange_command)
        .keys(KS_RO_ACC)
        .doc(
            "list",
            "1.0.0",
            "Returns a range of elements from a list.",
            "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        ),
    CommandDef::new("lindex", 3, f::READONLY, CAT_R_SLOW, lindex_command)
        .keys(KS_RO_ACC)
        .doc(
            "list",
            "1.0.0",
            "Returns an element from a list by its index.",
            "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).",
        ),
    CommandDef::new("lset", 4, f::WRITE | f::DENYOOM, CAT_W_SLOW, lset_command)
        .keys(&[KeySpec::range(k::RW | k::UPDATE, 1, 0, 1)])
        .doc(
            "list",
            "1.0.0",
            "Sets the value of an element in a list by its index.",
            "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        ),
    CommandDef::new("linsert", 5, f::WRITE | f::DENYOOM, CAT_W_SLOW, linsert_command)
        .keys(KS_RW_INS)
        .doc(
            "list",
            "2.2.0",
            "Inserts an element before or after another element in a list.",
            "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        ),
    CommandDef::new("lrem", 4, f::WRITE, CAT_W_SLOW, lrem_command)
        .keys(KS_RW_DEL)
        .doc(
            "list",
            "1.0.0",
            "Removes elements from a list. Deletes the list if the last element was removed.",
            "O(N+M) where N is the length of the list and M is the number of elements removed.",
        ),
    CommandDef::new("ltrim", 4, f::WRITE, CAT_W_SLOW, ltrim_command)
        .keys(KS_RW_DEL)
        .doc(
            "list",
            "1.0.0",
            "Removes elements from both ends of a list. Deletes the list if all elements were trimmed.",
            "O(N) where N is the number of elements to be removed by the operation.",
        ),
    CommandDef::new("lpos", -3, f::READONLY, CAT_R_SLOW, lpos_command)
        .keys(KS_RO_ACC)
        .doc(
            "list",
            "6.0.6",
            "Returns the index of matching elements in a list.",
            "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        ),
    CommandDef::new("lmove", 5, f::WRITE | f::DENYOOM, CAT_W_SLOW, lmove_command)
        .keys(KS_MOVE)
        .doc(
            "list",
            "6.2.0",
            "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
            "O(1)",
        ),
    CommandDef::new("rpoplpush", 3, f::WRITE | f::DENYOOM, CAT_W_SLOW, rpoplpush_command)
        .keys(KS_MOVE)
        .doc(
            "list",
            "1.2.0",
            "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
            "O(1)",
        ),
    CommandDef::new("lmpop", -4, f::WRITE | f::MOVABLE_KEYS, CAT_W_SLOW, lmpop_command)
        .keys(&[KeySpec::keynum(k::RW | k::ACCESS | k::DELETE, 1, 0, 1, 1)])
        .doc(
            "list",
            "7.0.0",
            "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
            MPOP_COMPLEXITY,
        ),
    CommandDef::new("blpop", -3, f::WRITE | f::BLOCKING, CAT_BLOCK, blpop_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, -2, 1)])
        .doc(
            "list",
            "2.0.0",
            "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
            "O(N) where N is the number of provided keys.",
        ),
    CommandDef::new("brpop", -3, f::WRITE | f::BLOCKING, CAT_BLOCK, brpop_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, -2, 1)])
        .doc(
            "list",
            "2.0.0",
            "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
            "O(N) where N is the number of provided keys.",
        ),
    CommandDef::new("blmove", 6, f::WRITE | f::DENYOOM | f::BLOCKING, CAT_BLOCK, blmove_command)
        .keys(KS_MOVE)
        .doc(
            "list",
            "6.2.0",
            "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
            "O(1)",
        ),
    CommandDef::new(
        "brpoplpush",
        4,
        f::WRITE | f::DENYOOM | f::BLOCKING,
        CAT_BLOCK,
        brpoplpush_command,
    )
    .keys(KS_MOVE)
    .doc(
        "list",
        "2.2.0",
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        "O(1)",
    ),
    CommandDef::new(
        "blmpop",
        -5,
        f::WRITE | f::BLOCKING | f::MOVABLE_KEYS,
        CAT_BLOCK,
        blmpop_command,
    )
    .keys(&[KeySpec::keynum(k::RW | k::ACCESS | k::DELETE, 2, 0, 1, 1)])
    .doc(
        "list",
        "7.0.0",
        "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        MPOP_COMPLEXITY,
    ),
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Upstream's `getLongFromObjectOrReply` (with an optional custom message).
fn get_long(c: &mut Client, idx: usize, msg: Option<&str>) -> Option<i64> {
    match c.argv.get(idx).and_then(|a| parse_i64_strict(a)) {
        Some(v) => Some(v),
        None => {
            c.reply.add_error(msg.unwrap_or(ERR_NOT_INTEGER));
            None
        }
    }
}

/// Upstream's `getRangeLongFromObjectOrReply`.
fn get_range_long(
    c: &mut Client,
    idx: usize,
    min: i64,
    max: i64,
    msg: Option<&str>,
) -> Option<i64> {
    let v = get_long(c, idx, msg)?;
    if v < min || v > max {
        match msg {
            Some(m) => c.reply.add_error(m),
            None => c.reply.add_error(&format!(
                "ERR value is out of range, value must between {} and {}",
                min, max
            )),
        }
        return None;
    }
    Some(v)
}

/// Upstream's `getPositiveLongFromObjectOrReply`.
fn get_positive_long(c: &mut Client, idx: usize, msg: Option<&str>) -> Option<i64> {
    get_range_long(
        c,
        idx,
        0,
        i64::MAX,
        Some(msg.unwrap_or("ERR value is out of range, must be positive")),
    )
}

/// LEFT/RIGHT: true for the head.
fn get_position(c: &mut Client, idx: usize) -> Option<bool> {
    let a = c.argv.get(idx)?;
    if eq_ic(a, "right") {
        Some(false)
    } else if eq_ic(a, "left") {
        Some(true)
    } else {
        c.reply.add_error(ERR_SYNTAX);
        None
    }
}

fn fill(srv: &Server) -> ListOpts {
    ListOpts {
        fill: srv.config.list_max_listpack_size,
        depth: srv.config.list_compress_depth,
    }
}

/// The list at `key` for writing: `Err` when the key holds another type (the caller
/// replies WRONGTYPE).
fn list_mut<'a>(srv: &'a mut Server, db: usize, key: &[u8]) -> Result<Option<&'a mut List>, ()> {
    match db::lookup_key_write_mut(srv, db, key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(()),
    }
}

#[inline]
fn add_elem(c: &mut Client, e: Elem<'_>) {
    match e {
        Elem::Str(s) => c.reply.add_bulk(s),
        Elem::Int(n) => c.reply.add_bulk_i64(n),
    }
}

/// Upstream's `addListRangeReply`.
fn reply_range(c: &mut Client, l: &List, start: i64, end: i64, reverse: bool) {
    let llen = l.len() as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let mut end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        c.reply.add_array_len(0);
        return;
    }
    if end >= llen {
        end = llen - 1;
    }
    let mut n = (end - start + 1) as usize;
    c.reply.add_array_len(n);
    let from = if reverse { end } else { start } as usize;
    l.for_each_from(from, reverse, |e| {
        add_elem(c, e);
        n -= 1;
        n > 0
    });
}

/// Upstream's `listElementsRemoved`: notifications, deletion of an emptied list, the
/// shrinking conversion, dirty.
fn elements_removed(srv: &mut Server, db: usize, key: &[u8], head: bool, count: usize) {
    notify_keyspace_event(
        srv,
        NOTIFY_LIST,
        if head { "lpop" } else { "rpop" },
        key,
        db,
    );
    let f = fill(srv);
    let empty = match db::lookup_key_write_mut(srv, db, key) {
        Some(Value::List(l)) => {
            if l.is_empty() {
                true
            } else {
                l.shrink_check(f);
                false
            }
        }
        _ => false,
    };
    if empty {
        db::db_delete(srv, db, key);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
    }
    db::signal_modified_key(srv, db, key);
    srv.dirty += count as u64;
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

fn push_generic(srv: &mut Server, c: &mut Client, head: bool, xx: bool) {
    let db = c.db;
    let fl = fill(srv);
    let add_bytes: usize = c.argv[2..].iter().map(|a| a.len()).sum();
    let add_len = c.argv.len() - 2;
    let len = match list_mut(srv, db, &c.argv[1]) {
        Err(()) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        Ok(Some(l)) => {
            l.grow_check(fl, add_bytes, add_len);
            for v in &c.argv[2..] {
                l.push(v, head);
            }
            l.len()
        }
        Ok(None) => {
            if xx {
                c.reply.add_long(0);
                return;
            }
            let mut l = List::new();
            l.grow_check(fl, add_bytes, add_len);
            for v in &c.argv[2..] {
                l.push(v, head);
            }
            let n = l.len();
            db::db_add(srv, db, &c.argv[1], Value::List(l));
            n
        }
    };
    srv.dirty += add_len as u64;
    db::signal_modified_key(srv, db, &c.argv[1]);
    notify_keyspace_event(
        srv,
        NOTIFY_LIST,
        if head { "lpush" } else { "rpush" },
        &c.argv[1],
        db,
    );
    c.reply.add_long(len as i64);
}

fn lpush_command(srv: &mut Server, c: &mut Client) {
    push_generic(srv, c, true, false)
}

fn rpush_command(srv: &mut Server, c: &mut Client) {
    push_generic(srv, c, false, false)
}

fn lpushx_command(srv: &mut Server, c: &mut Client) {
    push_generic(srv, c, true, true)
}

fn rpushx_command(srv: &mut Server, c: &mut Client) {
    push_generic(srv, c, false, true)
}

fn linsert_command(srv: &mut Server, c: &mut Client) {
    let after = if eq_ic(&c.argv[2], "after") {
        true
    } else if eq_ic(&c.argv[2], "before") {
        false
    } else {
        c.reply.add_error(ERR_SYNTAX);
        return;
    };
    let db = c.db;
    let fl = fill(srv);
    let len = match list_mut(srv, db, &c.argv[1]) {
        Err(()) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        Ok(None) => {
            c.reply.add_long(0);
            return;
        }
        Ok(Some(l)) => {
            l.grow_check(fl, c.argv[4].len(), 1);
            if !l.insert_at_pivot(&c.argv[3], &c.argv[4], after) {
                c.reply.add_long(-1);
                return;
            }
            l.len()
        }
    };
    db::signal_modified_key(srv, db, &c.argv[1]);
    notify_keyspace_event(srv, NOTIFY_LIST, "linsert", &c.argv[1], db);
    srv.dirty += 1;
    c.reply.add_long(len as i64);
}

fn llen_command(srv: &mut Server, c: &mut Client) {
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_long(0),
        Some(ValueRef::List(l)) => c.reply.add_long(l.len() as i64),
        Some(_) => c.reply.add_error(ERR_WRONGTYPE),
    }
}

fn lindex_command(srv: &mut Server, c: &mut Client) {
    let l = match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => {
            c.reply.add_null();
            return;
        }
        Some(ValueRef::List(l)) => l,
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    };
    let Some(index) = get_long(c, 2, None) else {
        return;
    };
    if l.get(index, |e| add_elem(c, e)).is_none() {
        c.reply.add_null();
    }
}

fn lset_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let fl = fill(srv);
    let l = match list_mut(srv, db, &c.argv[1]) {
        Err(()) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        Ok(None) => {
            c.reply.add_error(reply::ERR_NO_SUCH_KEY);
            return;
        }
        Ok(Some(l)) => l,
    };
    let Some(index) = get_long(c, 2, None) else {
        return;
    };
    l.grow_check(fl, c.argv[3].len(), 1);
    // Upstream passes the index through an `int`.
    if !l.set(index as i32 as i64, &c.argv[3]) {
        c.reply.add_error("ERR index out of range");
        return;
    }
    l.shrink_check(fl);
    db::signal_modified_key(srv, db, &c.argv[1]);
    notify_keyspace_event(srv, NOTIFY_LIST, "lset", &c.argv[1], db);
    srv.dirty += 1;
    c.reply.add_ok();
}

fn pop_generic(srv: &mut Server, c: &mut Client, head: bool) {
    let hascount = c.argv.len() == 3;
    if c.argv.len() > 3 {
        c.reply.add_error_arity(if head { "lpop" } else { "rpop" });
        return;
    }
    let mut count = 0;
    if hascount {
        match get_positive_long(c, 2, None) {
            Some(v) => count = v,
            None => return,
        }
    }
    let db = c.db;
    let l = match list_mut(srv, db, &c.argv[1]) {
        Err(()) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        Ok(None) => {
            if hascount {
                c.reply.add_null_array();
            } else {
                c.reply.add_null();
            }
            return;
        }
        Ok(Some(l)) => l,
    };
    if hascount && count == 0 {
        c.reply.add_array_len(0);
        return;
    }
    let removed = if !hascount {
        match l.pop(head) {
            Some((v, _)) => c.reply.add_bulk(&v),
            None => c.reply.add_null(),
        }
        1
    } else {
        let llen = l.len() as i64;
        let rangelen = count.min(llen);
        let (start, end) = if head {
            (0, rangelen - 1)
        } else {
            (-rangelen, -1)
        };
        reply_range(c, l, start, end, !head);
        l.del_range(start, rangelen as usize);
        rangelen as usize
    };
    elements_removed(srv, db, &c.argv[1], head, removed);
}

fn lpop_command(srv: &mut Server, c: &mut Client) {
    pop_generic(srv, c, true)
}

fn rpop_command(srv: &mut Server, c: &mut Client) {
    pop_generic(srv, c, false)
}

fn lrange_command(srv: &mut Server, c: &mut Client) {
    let Some(start) = get_long(c, 2, None) else {
        return;
    };
    let Some(end) = get_long(c, 3, None) else {
        return;
    };
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_array_len(0),
        Some(ValueRef::List(l)) => reply_range(c, l, start, end, false),
        Some(_) => c.reply.add_error(ERR_WRONGTYPE),
    }
}

fn ltrim_command(srv: &mut Server, c: &mut Client) {
    let Some(start) = get_long(c, 2, None) else {
        return;
    };
    let Some(end) = get_long(c, 3, None) else {
        return;
    };
    let db = c.db;
    let fl = fill(srv);
    let (total, empty) = match list_mut(srv, db, &c.argv[1]) {
        Err(()) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        Ok(None) => {
            c.reply.add_ok();
            return;
        }
        Ok(Some(l)) => {
            let llen = l.len() as i64;
            let mut start = if start < 0 { llen + start } else { start };
            let mut end = if end < 0 { llen + end } else { end };
            if start < 0 {
                start = 0;
            }
            let (ltrim, rtrim) = if start > end || start >= llen {
                (llen, 0)
            } else {
                if end >= llen {
                    end = llen - 1;
                }
                (start, llen - end - 1)
            };
            l.del_range(0, ltrim as usize);
            l.del_range(-rtrim, rtrim as usize);
            let empty = l.is_empty();
            if !empty {
                l.shrink_check(fl);
            }
            ((ltrim + rtrim) as u64, empty)
        }
    };
    notify_keyspace_event(srv, NOTIFY_LIST, "ltrim", &c.argv[1], db);
    if empty {
        db::db_delete(srv, db, &c.argv[1]);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &c.argv[1], db);
    }
    if total > 0 {
        db::signal_modified_key(srv, db, &c.argv[1]);
    }
    srv.dirty += total;
    c.reply.add_ok();
}

fn lpos_command(srv: &mut Server, c: &mut Client) {
    let mut rank: i64 = 1;
    let mut count: i64 = -1;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < c.argv.len() {
        let moreargs = j + 1 < c.argv.len();
        let opt = &c.argv[j];
        if eq_ic(opt, "rank") && moreargs {
            j += 1;
            let Some(r) = get_range_long(c, j, -i64::MAX, i64::MAX, None) else {
                return;
            };
            if r == 0 {
                c.reply.add_error(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                );
                return;
            }
            rank = r;
        } else if eq_ic(opt, "count") && moreargs {
            j += 1;
            let Some(v) = get_positive_long(c, j, Some("ERR COUNT can't be negative")) else {
                return;
            };
            count = v;
        } else if eq_ic(opt, "maxlen") && moreargs {
            j += 1;
            let Some(v) = get_positive_long(c, j, Some("ERR MAXLEN can't be negative")) else {
                return;
            };
            maxlen = v;
        } else {
            c.reply.add_error(ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    let reverse = rank < 0;
    let rank = rank.abs();
    let l = match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => {
            if count != -1 {
                c.reply.add_array_len(0);
            } else {
                c.reply.add_null();
            }
            return;
        }
        Some(ValueRef::List(l)) => l,
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    };
    let llen = l.len() as i64;
    let ele = &c.argv[2];
    let mut index: i64 = 0;
    let mut matches: i64 = 0;
    let mut found: Option<i64> = None;
    let mut list: Vec<i64> = Vec::new();
    if llen > 0 {
        let from = if reverse { llen as usize - 1 } else { 0 };
        l.for_each_from(from, reverse, |e| {
            if maxlen != 0 && index >= maxlen {
                return false;
            }
            if e.eq_bytes(ele) {
                matches += 1;
                let mi = if reverse { llen - index - 1 } else { index };
                if matches >= rank {
                    if count != -1 {
                        list.push(mi);
                        if count != 0 && matches - rank + 1 >= count {
                            return false;
                        }
                    } else {
                        found = Some(mi);
                        return false;
                    }
                }
            }
            index += 1;
            true
        });
    }
    if count != -1 {
        c.reply.add_array_len(list.len());
        for v in list {
            c.reply.add_long(v);
        }
    } else {
        match found {
            Some(v) => c.reply.add_long(v),
            None => c.reply.add_null(),
        }
    }
}

fn lrem_command(srv: &mut Server, c: &mut Client) {
    let Some(toremove) = get_range_long(c, 2, -i64::MAX, i64::MAX, None) else {
        return;
    };
    let db = c.db;
    let fl = fill(srv);
    let (removed, empty) = match list_mut(srv, db, &c.argv[1]) {
        Err(()) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        Ok(None) => {
            c.reply.add_long(0);
            return;
        }
        Ok(Some(l)) => {
            let removed = l.remove(&c.argv[3], toremove.unsigned_abs() as usize, toremove < 0);
            let empty = l.is_empty();
            if removed > 0 && !empty {
                l.shrink_check(fl);
            }
            (removed, empty)
        }
    };
    srv.dirty += removed as u64;
    if removed > 0 {
        notify_keyspace_event(srv, NOTIFY_LIST, "lrem", &c.argv[1], db);
        if empty {
            db::db_delete(srv, db, &c.argv[1]);
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &c.argv[1], db);
        }
        db::signal_modified_key(srv, db, &c.argv[1]);
    }
    c.reply.add_long(removed as i64);
}

/// Upstream's `lmoveGenericCommand` on `argv[1]` (source) and `argv[2]` (destination).
fn lmove_generic(srv: &mut Server, c: &mut Client, from_head: bool, to_head: bool) {
    let db = c.db;
    let fl = fill(srv);
    match list_mut(srv, db, &c.argv[1]) {
        Err(()) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        Ok(None) => {
            c.reply.add_null();
            return;
        }
        Ok(Some(l)) if l.is_empty() => {
            c.reply.add_null();
            return;
        }
        Ok(Some(_)) => {}
    }
    let dst_exists = match db::lookup_key_write(srv, db, &c.argv[2]) {
        None => false,
        Some(ValueRef::List(_)) => true,
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    };
    let Some((value, counted)) = (match db::lookup_key_write_mut(srv, db, &c.argv[1]) {
        Some(Value::List(l)) => l.pop(from_head),
        _ => None,
    }) else {
        c.reply.add_null();
        return;
    };
    let add_bytes = if counted { value.len() } else { 0 };
    if dst_exists {
        if let Some(Value::List(d)) = db::lookup_key_write_mut(srv, db, &c.argv[2]) {
            d.grow_check(fl, add_bytes, 1);
            d.push(&value, to_head);
        }
    } else {
        let mut d = List::new();
        d.grow_check(fl, add_bytes, 1);
        d.push(&value, to_head);
        db::db_add(srv, db, &c.argv[2], Value::List(d));
    }
    db::signal_modified_key(srv, db, &c.argv[2]);
    notify_keyspace_event(
        srv,
        NOTIFY_LIST,
        if to_head { "lpush" } else { "rpush" },
        &c.argv[2],
        db,
    );
    c.reply.add_bulk(&value);
    elements_removed(srv, db, &c.argv[1], from_head, 1);
}

fn lmove_command(srv: &mut Server, c: &mut Client) {
    let Some(from) = get_position(c, 3) else {
        return;
    };
    let Some(to) = get_position(c, 4) else { return };
    lmove_generic(srv, c, from, to);
}

fn rpoplpush_command(srv: &mut Server, c: &mut Client) {
    lmove_generic(srv, c, false, true);
}

/// Upstream's `blockingPopGenericCommand`: keys are `argv[first..first+numkeys]`; `count`
/// is None for BLPOP/BRPOP (one element, flat reply) and Some for BLMPOP.
fn blocking_pop(
    srv: &mut Server,
    c: &mut Client,
    first: usize,
    numkeys: usize,
    head: bool,
    timeout_idx: usize,
    count: Option<i64>,
) {
    let timeout = match blocked::get_timeout(srv, &c.argv[timeout_idx]) {
        Ok(t) => t,
        Err(e) => {
            c.reply.add_error(e);
            return;
        }
    };
    if serve_pop(srv, c, first, numkeys, head, count) {
        return;
    }
    if blocked::blocking_denied(c) {
        c.reply.add_null_array();
        return;
    }
    let keys: Vec<Vec<u8>> = c.argv[first..first + numkeys].to_vec();
    blocked::block_for_keys(srv, c, BlockType::List, &keys, timeout, false);
}

/// Pops from the first non-empty list among the keys and replies; false when all are
/// missing (nothing replied). A wrong type replies with an error and returns true.
fn serve_pop(
    srv: &mut Server,
    c: &mut Client,
    first: usize,
    numkeys: usize,
    head: bool,
    count: Option<i64>,
) -> bool {
    let db = c.db;
    for j in first..first + numkeys {
        let l = match list_mut(srv, db, &c.argv[j]) {
            Err(()) => {
                c.reply.add_error(ERR_WRONGTYPE);
                return true;
            }
            Ok(None) => continue,
            Ok(Some(l)) if l.is_empty() => continue,
            Ok(Some(l)) => l,
        };
        let removed = match count {
            Some(count) => {
                let llen = l.len() as i64;
                let rangelen = count.min(llen);
                let (start, end) = if head {
                    (0, rangelen - 1)
                } else {
                    (-rangelen, -1)
                };
                c.reply.add_array_len(2);
                c.reply.add_bulk(&c.argv[j]);
                reply_range(c, l, start, end, !head);
                l.del_range(start, rangelen as usize);
                rangelen as usize
            }
            None => {
                let v = l.pop(head).map(|x| x.0).unwrap_or_default();
                c.reply.add_array_len(2);
                c.reply.add_bulk(&c.argv[j]);
                c.reply.add_bulk(&v);
                1
            }
        };
        // BLPOP/BRPOP propagate as LPOP/RPOP key, LMPOP/BLMPOP as LPOP/RPOP key count
        // (the number popped), as upstream.
        if crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL) {
            let name: &[u8] = if head { b"LPOP" } else { b"RPOP" };
            let mut argv = vec![name.to_vec(), c.argv[j].clone()];
            if count.is_some() {
                argv.push(removed.to_string().into_bytes());
            }
            c.propagate_argv = Some(argv);
        }
        elements_removed(srv, db, &c.argv[j], head, removed);
        return true;
    }
    false
}

fn blpop_command(srv: &mut Server, c: &mut Client) {
    let n = c.argv.len();
    blocking_pop(srv, c, 1, n - 2, true, n - 1, None);
}

fn brpop_command(srv: &mut Server, c: &mut Client) {
    let n = c.argv.len();
    blocking_pop(srv, c, 1, n - 2, false, n - 1, None);
}

fn blmove_generic(srv: &mut Server, c: &mut Client, from: bool, to: bool, timeout: i64) {
    let db = c.db;
    let exists = match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => false,
        Some(ValueRef::List(_)) => true,
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    };
    if exists {
        lmove_generic(srv, c, from, to);
        // Propagated as the non-blocking form: LMOVE src dst from to / RPOPLPUSH src dst.
        if crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL) {
            let mut argv: Vec<Vec<u8>> = if eq_ic(&c.argv[0], "brpoplpush") {
                vec![b"RPOPLPUSH".to_vec()]
            } else {
                vec![b"LMOVE".to_vec()]
            };
            let n = if argv[0] == b"LMOVE" { 5 } else { 3 };
            argv.extend(c.argv.iter().take(n).skip(1).cloned());
            c.propagate_argv = Some(argv);
        }
    } else if blocked::blocking_denied(c) {
        c.reply.add_null();
    } else {
        let keys = vec![c.argv[1].clone()];
        blocked::block_for_keys(srv, c, BlockType::List, &keys, timeout, false);
    }
}

fn get_timeout_or_reply(srv: &Server, c: &mut Client, idx: usize) -> Option<i64> {
    match blocked::get_timeout(srv, &c.argv[idx]) {
        Ok(t) => Some(t),
        Err(e) => {
            c.reply.add_error(e);
            None
        }
    }
}

fn blmove_command(srv: &mut Server, c: &mut Client) {
    let Some(from) = get_position(c, 3) else {
        return;
    };
    let Some(to) = get_position(c, 4) else { return };
    let Some(timeout) = get_timeout_or_reply(srv, c, 5) else {
        return;
    };
    blmove_generic(srv, c, from, to, timeout);
}

fn brpoplpush_command(srv: &mut Server, c: &mut Client) {
    let Some(timeout) = get_timeout_or_reply(srv, c, 3) else {
        return;
    };
    blmove_generic(srv, c, false, true, timeout);
}

/// Upstream's `lmpopGenericCommand`.
fn lmpop_generic(srv: &mut Server, c: &mut Client, numkeys_idx: usize, block: bool) {
    const NUMKEYS_ERR: &str = "ERR numkeys should be greater than 0";
    let Some(numkeys) = get_range_long(c, numkeys_idx, 1, i64::MAX, Some(NUMKEYS_ERR)) else {
        return;
    };
    let argc = c.argv.len();
    let where_idx = (numkeys as u64).saturating_add(numkeys_idx as u64 + 1);
    if where_idx >= argc as u64 {
        c.reply.add_error(ERR_SYNTAX);
        return;
    }
    let where_idx = where_idx as usize;
    let numkeys = numkeys as usize;
    let Some(head) = get_position(c, where_idx) else {
        return;
    };
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < argc {
        let moreargs = j + 1 < argc;
        if count == -1 && eq_ic(&c.argv[j], "count") && moreargs {
            j += 1;
            match get_range_long(
                c,
                j,
                1,
                i64::MAX,
                Some("ERR count should be greater than 0"),
            ) {
                Some(v) => count = v,
                None => return,
            }
        } else {
            c.reply.add_error(ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    if count == -1 {
        count = 1;
    }
    if block {
        blocking_pop(srv, c, numkeys_idx + 1, numkeys, head, 1, Some(count));
    } else if !serve_pop(srv, c, numkeys_idx + 1, numkeys, head, Some(count)) {
        c.reply.add_null_array();
    }
}

fn lmpop_command(srv: &mut Server, c: &mut Client) {
    lmpop_generic(srv, c, 1, false);
}

fn blmpop_command(srv: &mut Server, c: &mut Client) {
    lmpop_generic(srv, c, 2, true);
}
