//! SORT and SORT_RO, as upstream's `sort.c`: sort a list, set or sorted set numerically
//! or lexicographically (ALPHA), by the element itself or by external keys (BY pattern,
//! `->field` for hash fields, or a constant pattern meaning "don't sort"), with LIMIT,
//! GET patterns (`#` is the element) and STORE (into a list).
//!
//! BY (with a `*`) and GET patterns are refused to users without read access to all
//! keys, as upstream (see `full_key_access`); the cluster-mode slot rule comes with
//! cluster mode.

use super::{
    acl_cat as cat, flags as f, key_flags as k, BeginSearch, CommandDef, FindKeys, KeySpec,
};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_LIST};
use crate::object::{Value, ValueRef};
use crate::reply;
use crate::server::Server;
use crate::util::{eq_ic, parse_i64_strict};

const SORT_COMPLEXITY: &str = "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).";

const BY_GET_SPEC: KeySpec = KeySpec {
    notes: "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort",
    flags: k::RO | k::ACCESS,
    begin: BeginSearch::Unknown,
    find: FindKeys::Unknown,
};

const STORE_SPEC: KeySpec = KeySpec {
    notes: "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array",
    flags: k::OW | k::UPDATE,
    begin: BeginSearch::Unknown,
    find: FindKeys::Unknown,
};

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "sort",
        -2,
        f::WRITE | f::DENYOOM | f::MOVABLE_KEYS,
        cat::WRITE | cat::SET | cat::SORTEDSET | cat::LIST | cat::SLOW | cat::DANGEROUS,
        sort_command,
    )
    .keys(&[
        KeySpec::range(k::RO | k::ACCESS, 1, 0, 1),
        BY_GET_SPEC,
        STORE_SPEC,
    ])
    .doc(
        "generic",
        "1.0.0",
        "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        SORT_COMPLEXITY,
    ),
    CommandDef::new(
        "sort_ro",
        -2,
        f::READONLY | f::MOVABLE_KEYS,
        cat::READ | cat::SET | cat::SORTEDSET | cat::LIST | cat::SLOW | cat::DANGEROUS,
        sort_ro_command,
    )
    .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1), BY_GET_SPEC])
    .doc(
        "generic",
        "7.0.0",
        "Returns the sorted elements of a list, a set, or a sorted set.",
        SORT_COMPLEXITY,
    ),
];

/// The argument index of the STORE key of a SORT (the last STORE wins), skipping the
/// arguments of LIMIT, GET and BY as upstream's `sortGetKeys`.
pub fn store_key_index(name: &str, argv: &[Vec<u8>]) -> Option<usize> {
    if name != "sort" {
        return None;
    }
    let mut found = None;
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        let skip = if eq_ic(a, "limit") {
            2
        } else if eq_ic(a, "get") || eq_ic(a, "by") {
            1
        } else if eq_ic(a, "store") {
            if i + 1 < argv.len() {
                found = Some(i + 1);
            }
            1
        } else {
            0
        };
        i += skip + 1;
    }
    found
}

fn sort_command(srv: &mut Server, c: &mut Client) {
    sort_generic(srv, c, false);
}

fn sort_ro_command(srv: &mut Server, c: &mut Client) {
    sort_generic(srv, c, true);
}

/// A score as SORT reads it: a float in full (no spaces, not NaN, not out of range;
/// `inf` spelled out is fine).
fn parse_score(b: &[u8]) -> Option<f64> {
    // Upstream parses the C string: a NUL byte ends the number.
    let b = &b[..b.iter().position(|&x| x == 0).unwrap_or(b.len())];
    let v = crate::util::parse_f64(b)?;
    if v.is_infinite() && !b.to_ascii_lowercase().windows(3).any(|w| w == b"inf") {
        return None;
    }
    Some(v)
}

/// What a pattern designates for one element (upstream's `lookupKeyByPattern`): the
/// element itself for `#`, else the string at the key with the first `*` replaced by the
/// element, or the hash field after `->`. None when there is no `*`, no such key, or the
/// key has another type.
fn lookup_by_pattern(srv: &mut Server, db: usize, pat: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    if pat == b"#" {
        return Some(elem.to_vec());
    }
    let star = pat.iter().position(|&b| b == b'*')?;
    // A `->` after the star, followed by at least one byte, names a hash field.
    let after = &pat[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (post, field) = match arrow {
        Some(i) => (&after[..i], Some(&after[i + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(star + elem.len() + post.len());
    key.extend_from_slice(&pat[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(post);
    let now = srv.mstime;
    let v = db::lookup_key_read(srv, db, &key)?;
    match (field, v) {
        (None, ValueRef::Int(n)) => Some(n.to_string().into_bytes()),
        (None, ValueRef::Str(s)) => Some(s.to_vec()),
        (Some(f), ValueRef::Hash(h)) => adapt::hash_field(h, f, now),
        _ => None,
    }
}

/// Upstream's rule for BY and GET patterns: the user must be able to run this command
/// through a selector with read access to all keys (`~*`, `allkeys` or `%R~*`). Even
/// `GET #` and patterns matching the user's own key patterns are refused otherwise.
fn full_key_access(srv: &mut Server, c: &Client) -> bool {
    match srv.commands.lookup(&c.argv) {
        Ok(id) => crate::aclsrv::full_key_read_access(srv, c, id, &c.argv),
        Err(_) => false,
    }
}

struct Item {
    elem: Vec<u8>,
    score: f64,
    cmp: Option<Vec<u8>>,
}

fn sort_generic(srv: &mut Server, c: &mut Client, readonly: bool) {
    let argc = c.argv.len();
    let mut desc = false;
    let mut alpha = false;
    let mut limit_start: i64 = 0;
    let mut limit_count: i64 = -1;
    let mut dontsort = false;
    let mut sortby: Option<usize> = None;
    let mut storekey: Option<usize> = None;
    let mut gets: Vec<usize> = Vec::new();
    // Whether the user may read every key (BY/GET patterns name keys the command
    // does not declare), computed on first need.
    let mut full_access: Option<bool> = None;
    let mut j = 2;
    while j < argc {
        let left = argc - j - 1;
        let a = &c.argv[j];
        if eq_ic(a, "asc") {
            desc = false;
        } else if eq_ic(a, "desc") {
            desc = true;
        } else if eq_ic(a, "alpha") {
            alpha = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            match (
                parse_i64_strict(&c.argv[j + 1]),
                parse_i64_strict(&c.argv[j + 2]),
            ) {
                (Some(s), Some(n)) => {
                    limit_start = s;
                    limit_count = n;
                }
                _ => {
                    c.reply.add_error(reply::ERR_NOT_INTEGER);
                    return;
                }
            }
            j += 2;
        } else if !readonly && eq_ic(a, "store") && left >= 1 {
            storekey = Some(j + 1);
            j += 1;
        } else if eq_ic(a, "by") && left >= 1 {
            sortby = Some(j + 1);
            // A pattern without '*' is constant: nothing to sort by.
            if !c.argv[j + 1].contains(&b'*') {
                dontsort = true;
            } else if !*full_access.get_or_insert_with(|| full_key_access(srv, c)) {
                c.reply
                    .add_error("ERR BY option of SORT denied due to insufficient ACL permissions.");
                return;
            }
            j += 1;
        } else if eq_ic(a, "get") && left >= 1 {
            if !*full_access.get_or_insert_with(|| full_key_access(srv, c)) {
                c.reply.add_error(
                    "ERR GET option of SORT denied due to insufficient ACL permissions.",
                );
                return;
            }
            gets.push(j + 1);
            j += 1;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }

    let db = c.db;
    let kind = match db::lookup_key_read(srv, db, &c.argv[1]) {
        None => Kind::Missing,
        Some(ValueRef::Set(_)) => Kind::Set,
        Some(ValueRef::List(_)) => Kind::List,
        Some(ValueRef::ZSet(_)) => Kind::ZSet,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    // A set has no order of its own: with STORE its "unsorted" output is sorted
    // lexicographically so that the result is deterministic.
    if dontsort && kind == Kind::Set && storekey.is_some() {
        dontsort = false;
        alpha = true;
        sortby = None;
    }
    // Upstream converts a sorted set to its skiplist encoding for SORT.
    if kind == Kind::ZSet {
        if let Some(Value::ZSet(z)) = db::lookup_key_write_mut(srv, db, &c.argv[1]) {
            adapt::zset_to_skiplist(z);
        }
    }
    let len = match srv.dbs[db].kv.get(&c.argv[1]) {
        Some(ValueRef::Set(s)) => s.len(),
        Some(ValueRef::List(l)) => l.len(),
        Some(ValueRef::ZSet(z)) => z.len(),
        _ => 0,
    } as i64;

    // LIMIT, clamped to the object.
    let mut start = limit_start.max(0).min(len);
    let count = limit_count.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }

    // Load the elements; ordered types with nothing to sort load only the range.
    let mut items: Vec<Vec<u8>> = Vec::new();
    let ordered = matches!(kind, Kind::List | Kind::ZSet);
    match srv.dbs[db].kv.get(&c.argv[1]) {
        Some(ValueRef::Set(s)) => {
            items.reserve(s.len());
            items.extend(s.iter().map(|m| m.to_vec()));
        }
        Some(ValueRef::List(l)) => {
            if dontsort {
                if end >= start {
                    let n = (end - start + 1) as usize;
                    items = adapt::list_range(l, start as usize, n, desc);
                }
            } else {
                items = adapt::list_range(l, 0, l.len(), false);
            }
        }
        Some(ValueRef::ZSet(z)) => {
            if dontsort {
                if end >= start {
                    let n = (end - start + 1) as usize;
                    items = adapt::zset_range(z, start as usize, n, desc);
                }
            } else {
                items = adapt::zset_members(z);
            }
        }
        _ => {}
    }
    if ordered && dontsort {
        end -= start;
        start = 0;
    }

    let mut vector: Vec<Item> = items
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            cmp: None,
        })
        .collect();

    let mut conversion_error = false;
    if !dontsort {
        let by_pat = sortby.map(|i| c.argv[i].clone());
        for it in vector.iter_mut() {
            let byval = match &by_pat {
                Some(p) => match lookup_by_pattern(srv, db, p, &it.elem) {
                    Some(v) => v,
                    None => continue,
                },
                None => {
                    if !alpha {
                        match parse_score(&it.elem) {
                            Some(s) => it.score = s,
                            None => conversion_error = true,
                        }
                    }
                    continue;
                }
            };
            if alpha {
                it.cmp = Some(byval);
            } else {
                match parse_score(&byval) {
                    Some(s) => it.score = s,
                    None => conversion_error = true,
                }
            }
        }
        let bypattern = by_pat.is_some();
        vector.sort_by(|a, b| {
            let ord = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.elem.cmp(&b.elem))
            } else if bypattern {
                match (&a.cmp, &b.cmp) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.elem.cmp(&b.elem)
            };
            if desc {
                ord.reverse()
            } else {
                ord
            }
        });
    }

    let range_len = if end >= start {
        (end - start + 1) as usize
    } else {
        0
    };
    let outputlen = if gets.is_empty() {
        range_len
    } else {
        gets.len() * range_len
    };
    if conversion_error {
        c.reply
            .add_error("ERR One or more scores can't be converted into double");
        return;
    }
    let slice: &[Item] = if range_len > 0 {
        vector.get(start as usize..=end as usize).unwrap_or(&[])
    } else {
        &[]
    };
    let get_pats: Vec<Vec<u8>> = gets.iter().map(|&i| c.argv[i].clone()).collect();
    match storekey {
        None => {
            c.reply.add_array_len(outputlen);
            for it in slice {
                if get_pats.is_empty() {
                    c.reply.add_bulk(&it.elem);
                }
                for p in &get_pats {
                    match lookup_by_pattern(srv, db, p, &it.elem) {
                        Some(v) => c.reply.add_bulk(&v),
                        None => c.reply.add_null(),
                    }
                }
            }
        }
        Some(si) => {
            let mut out: Vec<Vec<u8>> = Vec::with_capacity(outputlen);
            for it in slice {
                if get_pats.is_empty() {
                    out.push(it.elem.clone());
                }
                for p in &get_pats {
                    out.push(lookup_by_pattern(srv, db, p, &it.elem).unwrap_or_default());
                }
            }
            let key = &c.argv[si];
            if outputlen > 0 {
                let list = adapt::build_list(srv, &out);
                db::set_key(srv, db, key, Value::List(list), false);
                notify_keyspace_event(srv, NOTIFY_LIST, "sortstore", key, db);
                srv.dirty += outputlen as u64;
            } else if db::db_delete(srv, db, key) {
                notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
                srv.dirty += 1;
            }
            c.reply.add_long(outputlen as i64);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Missing,
    Set,
    List,
    ZSet,
}

/// The few operations SORT needs from lists, sorted sets and hashes, kept here so that
/// they follow those types' APIs in one place.
mod adapt {
    use crate::server::Server;
    use crate::types::{
        hash::Hash,
        list::{List, ListOpts},
        zset::ZSet,
    };

    /// `n` elements from index `from` (from the tail end when `rev`: index `from` counts
    /// from the tail and the walk goes to the head).
    pub fn list_range(l: &List, from: usize, n: usize, rev: bool) -> Vec<Vec<u8>> {
        let len = l.len();
        if n == 0 || from >= len {
            return Vec::new();
        }
        let start = if rev { len - 1 - from } else { from };
        let mut out = Vec::with_capacity(n.min(len));
        l.for_each_from(start, rev, |e| {
            out.push(e.to_vec());
            out.len() < n
        });
        out
    }

    /// Members of a sorted set by rank, `n` from rank `from` (reverse ranks when `rev`).
    pub fn zset_range(z: &ZSet, from: usize, n: usize, rev: bool) -> Vec<Vec<u8>> {
        z.iter_from(from, rev)
            .take(n)
            .map(|(m, _)| m.to_vec())
            .collect()
    }

    /// Every member of a sorted set.
    pub fn zset_members(z: &ZSet) -> Vec<Vec<u8>> {
        zset_range(z, 0, z.len(), false)
    }

    pub fn zset_to_skiplist(z: &mut ZSet) {
        z.convert_to_big(z.len());
    }

    /// A field of a hash (expired fields are absent).
    pub fn hash_field(h: &Hash, field: &[u8], now: i64) -> Option<Vec<u8>> {
        h.get(field, now).map(|v| v.to_vec())
    }

    /// The list SORT ... STORE creates, with the encoding upstream settles on.
    pub fn build_list(srv: &Server, items: &[Vec<u8>]) -> List {
        let opts = ListOpts {
            fill: srv.config.list_max_listpack_size,
            depth: srv.config.list_compress_depth,
        };
        let mut l = List::new();
        // Upstream cannot predict the result's size: it builds a quicklist and converts
        // it back at the end if one listpack node can hold it.
        // An announced size no node can hold forces the quicklist encoding.
        l.grow_check(opts, usize::MAX, 0);
        for it in items {
            l.push(it, false);
        }
        l.convert_auto(opts);
        l
    }
}
