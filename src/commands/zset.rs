//! Sorted set commands, as upstream's `t_zset.c` (command level). The value type and
//! its encodings are in [`crate::types::zset`].

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::blocked::{self, BlockType};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_ZSET};
use crate::object::{Value, ValueRef};
use crate::reply;
use crate::server::Server;
use crate::types::listpack::LpEntry;
use crate::types::zset::{with_bytes, AddFlags, LexBound, LexRange, RangeSpec, ScoreRange, ZSet};
use crate::util::{eq_ic, parse_i64_strict};

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("bzmpop", -5, f::WRITE | f::BLOCKING | f::MOVABLE_KEYS, cat::WRITE | cat::SORTEDSET | cat::SLOW | cat::BLOCKING, bzmpop_command)
        .keys(&[KeySpec::keynum(k::RW | k::ACCESS | k::DELETE, 2, 0, 1, 1)])
        .doc("sorted-set", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandDef::new("bzpopmax", -3, f::WRITE | f::BLOCKING | f::FAST, cat::WRITE | cat::SORTEDSET | cat::FAST | cat::BLOCKING, bzpopmax_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, -2, 1)])
        .doc("sorted-set", "5.0.0", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandDef::new("bzpopmin", -3, f::WRITE | f::BLOCKING | f::FAST, cat::WRITE | cat::SORTEDSET | cat::FAST | cat::BLOCKING, bzpopmin_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, -2, 1)])
        .doc("sorted-set", "5.0.0", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandDef::new("zadd", -4, f::WRITE | f::DENYOOM | f::FAST, cat::WRITE | cat::SORTEDSET | cat::FAST, zadd_command)
        .keys(&[KeySpec::range(k::RW | k::UPDATE, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", "O(log(N)) for each item added, where N is the number of elements in the sorted set."),
    CommandDef::new("zcard", 2, f::READONLY | f::FAST, cat::READ | cat::SORTEDSET | cat::FAST, zcard_command)
        .keys(&[KeySpec::range(k::RO, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Returns the number of members in a sorted set.", "O(1)"),
    CommandDef::new("zcount", 4, f::READONLY | f::FAST, cat::READ | cat::SORTEDSET | cat::FAST, zcount_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.0.0", "Returns the count of members in a sorted set that have scores within a range.", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandDef::new("zdiff", -3, f::READONLY | f::MOVABLE_KEYS, cat::READ | cat::SORTEDSET | cat::SLOW, zdiff_command)
        .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 1, 0, 1, 1)])
        .doc("sorted-set", "6.2.0", "Returns the difference between multiple sorted sets.", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set."),
    CommandDef::new("zdiffstore", -4, f::WRITE | f::DENYOOM | f::MOVABLE_KEYS, cat::WRITE | cat::SORTEDSET | cat::SLOW, zdiffstore_command)
        .keys(&[KeySpec::range(k::OW | k::UPDATE, 1, 0, 1), KeySpec::keynum(k::RO | k::ACCESS, 2, 0, 1, 1)])
        .doc("sorted-set", "6.2.0", "Stores the difference of multiple sorted sets in a key.", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set."),
    CommandDef::new("zincrby", 4, f::WRITE | f::DENYOOM | f::FAST, cat::WRITE | cat::SORTEDSET | cat::FAST, zincrby_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::UPDATE, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Increments the score of a member in a sorted set.", "O(log(N)) where N is the number of elements in the sorted set."),
    CommandDef::new("zinter", -3, f::READONLY | f::MOVABLE_KEYS, cat::READ | cat::SORTEDSET | cat::SLOW, zinter_command)
        .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 1, 0, 1, 1)])
        .doc("sorted-set", "6.2.0", "Returns the intersect of multiple sorted sets.", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set."),
    CommandDef::new("zintercard", -3, f::READONLY | f::MOVABLE_KEYS, cat::READ | cat::SORTEDSET | cat::SLOW, zintercard_command)
        .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 1, 0, 1, 1)])
        .doc("sorted-set", "7.0.0", "Returns the number of members of the intersect of multiple sorted sets.", "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets."),
    CommandDef::new("zinterstore", -4, f::WRITE | f::DENYOOM | f::MOVABLE_KEYS, cat::WRITE | cat::SORTEDSET | cat::SLOW, zinterstore_command)
        .keys(&[KeySpec::range(k::OW | k::UPDATE, 1, 0, 1), KeySpec::keynum(k::RO | k::ACCESS, 2, 0, 1, 1)])
        .doc("sorted-set", "2.0.0", "Stores the intersect of multiple sorted sets in a key.", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set."),
    CommandDef::new("zlexcount", 4, f::READONLY | f::FAST, cat::READ | cat::SORTEDSET | cat::FAST, zlexcount_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.8.9", "Returns the number of members in a sorted set within a lexicographical range.", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandDef::new("zmpop", -4, f::WRITE | f::MOVABLE_KEYS, cat::WRITE | cat::SORTEDSET | cat::SLOW, zmpop_command)
        .keys(&[KeySpec::keynum(k::RW | k::ACCESS | k::DELETE, 1, 0, 1, 1)])
        .doc("sorted-set", "7.0.0", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandDef::new("zmscore", -3, f::READONLY | f::FAST, cat::READ | cat::SORTEDSET | cat::FAST, zmscore_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "6.2.0", "Returns the score of one or more members in a sorted set.", "O(N) where N is the number of members being requested."),
    CommandDef::new("zpopmax", -2, f::WRITE | f::FAST, cat::WRITE | cat::SORTEDSET | cat::FAST, zpopmax_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, 0, 1)])
        .doc("sorted-set", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandDef::new("zpopmin", -2, f::WRITE | f::FAST, cat::WRITE | cat::SORTEDSET | cat::FAST, zpopmin_command)
        .keys(&[KeySpec::range(k::RW | k::ACCESS | k::DELETE, 1, 0, 1)])
        .doc("sorted-set", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandDef::new("zrandmember", -2, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zrandmember_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "6.2.0", "Returns one or more random members from a sorted set.", "O(N) where N is the number of members returned")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("zrange", -4, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zrange_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    CommandDef::new("zrangebylex", -4, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zrangebylex_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    CommandDef::new("zrangebyscore", -4, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zrangebyscore_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "1.0.5", "Returns members in a sorted set within a range of scores.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    CommandDef::new("zrangestore", -5, f::WRITE | f::DENYOOM, cat::WRITE | cat::SORTEDSET | cat::SLOW, zrangestore_command)
        .keys(&[KeySpec::range(k::OW | k::UPDATE, 1, 0, 1), KeySpec::range(k::RO | k::ACCESS, 2, 0, 1)])
        .doc("sorted-set", "6.2.0", "Stores a range of members from sorted set in a key.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key."),
    CommandDef::new("zrank", -3, f::READONLY | f::FAST, cat::READ | cat::SORTEDSET | cat::FAST, zrank_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores.", "O(log(N))"),
    CommandDef::new("zrem", -3, f::WRITE | f::FAST, cat::WRITE | cat::SORTEDSET | cat::FAST, zrem_command)
        .keys(&[KeySpec::range(k::RW | k::DELETE, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed."),
    CommandDef::new("zremrangebylex", 4, f::WRITE, cat::WRITE | cat::SORTEDSET | cat::SLOW, zremrangebylex_command)
        .keys(&[KeySpec::range(k::RW | k::DELETE, 1, 0, 1)])
        .doc("sorted-set", "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    CommandDef::new("zremrangebyrank", 4, f::WRITE, cat::WRITE | cat::SORTEDSET | cat::SLOW, zremrangebyrank_command)
        .keys(&[KeySpec::range(k::RW | k::DELETE, 1, 0, 1)])
        .doc("sorted-set", "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    CommandDef::new("zremrangebyscore", 4, f::WRITE, cat::WRITE | cat::SORTEDSET | cat::SLOW, zremrangebyscore_command)
        .keys(&[KeySpec::range(k::RW | k::DELETE, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    CommandDef::new("zrevrange", -4, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zrevrange_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes in reverse order.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    CommandDef::new("zrevrangebylex", -4, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zrevrangebylex_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    CommandDef::new("zrevrangebyscore", -4, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zrevrangebyscore_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.2.0", "Returns members in a sorted set within a range of scores in reverse order.", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    CommandDef::new("zrevrank", -3, f::READONLY | f::FAST, cat::READ | cat::SORTEDSET | cat::FAST, zrevrank_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores.", "O(log(N))"),
    CommandDef::new("zscan", -3, f::READONLY, cat::READ | cat::SORTEDSET | cat::SLOW, zscan_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "2.8.0", "Iterates over members and scores of a sorted set.", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.")
        .tips(&["nondeterministic_output"]),
    CommandDef::new("zscore", 3, f::READONLY | f::FAST, cat::READ | cat::SORTEDSET | cat::FAST, zscore_command)
        .keys(&[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)])
        .doc("sorted-set", "1.2.0", "Returns the score of a member in a sorted set.", "O(1)"),
    CommandDef::new("zunion", -3, f::READONLY | f::MOVABLE_KEYS, cat::READ | cat::SORTEDSET | cat::SLOW, zunion_command)
        .keys(&[KeySpec::keynum(k::RO | k::ACCESS, 1, 0, 1, 1)])
        .doc("sorted-set", "6.2.0", "Returns the union of multiple sorted sets.", "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set."),
    CommandDef::new("zunionstore", -4, f::WRITE | f::DENYOOM | f::MOVABLE_KEYS, cat::WRITE | cat::SORTEDSET | cat::SLOW, zunionstore_command)
        .keys(&[KeySpec::range(k::OW | k::UPDATE, 1, 0, 1), KeySpec::keynum(k::RO | k::ACCESS, 2, 0, 1, 1)])
        .doc("sorted-set", "2.0.0", "Stores the union of multiple sorted sets in a key.", "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set."),
];

const ERR_MINMAX_FLOAT: &str = "ERR min or max is not a float";
const ERR_MINMAX_LEX: &str = "ERR min or max not valid string range item";
const ERR_NAN: &str = "ERR resulting score is not a number (NaN)";

// ---------------------------------------------------------------------------------------
// Argument parsing

/// `getDoubleFromObject`: the whole argument is a float (`inf`, `-inf`, `+inf`,
/// `infinity` allowed); no spaces, no NaN, no overflow to infinity or underflow to zero.
pub fn parse_double(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() > 5120 {
        return None;
    }
    let st = std::str::from_utf8(s).ok()?;
    if !st
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = st.parse().ok()?;
    if v.is_nan() {
        return None;
    }
    let body = st.trim_start_matches(['+', '-']);
    if v.is_infinite()
        && !body.eq_ignore_ascii_case("inf")
        && !body.eq_ignore_ascii_case("infinity")
    {
        return None;
    }
    if v == 0.0 {
        let mant = body.split(['e', 'E']).next().unwrap_or("");
        if mant.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return None;
        }
    }
    Some(v)
}

/// `strtod` as `zslParseRange` uses it: the whole string must parse (empty is 0), NaN
/// refused, overflow allowed.
fn parse_range_double(s: &[u8]) -> Option<f64> {
    if s.is_empty() {
        return Some(0.0);
    }
    let st = std::str::from_utf8(s).ok()?;
    if !st
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = st.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// `zslParseRange`.
fn parse_score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let one = |s: &[u8]| -> Option<(f64, bool)> {
        // Upstream parses the bound as a C string: a NUL byte ends it.
        let s = &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())];
        match s.first() {
            Some(b'(') => parse_range_double(&s[1..]).map(|v| (v, true)),
            _ => parse_range_double(s).map(|v| (v, false)),
        }
    };
    let (min, minex) = one(min)?;
    let (max, maxex) = one(max)?;
    Some(ScoreRange {
        min,
        max,
        minex,
        maxex,
    })
}

/// `zsetParseLexRange`.
fn parse_lex_range(min: &[u8], max: &[u8]) -> Option<LexRange> {
    let one = |s: &[u8]| -> Option<LexBound> {
        match s.first() {
            Some(b'+') if s.len() == 1 => Some(LexBound::Max),
            Some(b'-') if s.len() == 1 => Some(LexBound::Min),
            Some(b'(') => Some(LexBound::Excl(s[1..].to_vec())),
            Some(b'[') => Some(LexBound::Incl(s[1..].to_vec())),
            _ => None,
        }
    };
    Some(LexRange {
        min: one(min)?,
        max: one(max)?,
    })
}

/// `getLongFromObjectOrReply`.
fn arg_long(c: &mut Client, i: usize) -> Option<i64> {
    let v = parse_i64_strict(&c.argv[i]);
    if v.is_none() {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
    }
    v
}

/// `getRangeLongFromObjectOrReply` (with `msg` replacing both errors when given).
fn arg_range_long(c: &mut Client, i: usize, min: i64, max: i64, msg: Option<&str>) -> Option<i64> {
    match parse_i64_strict(&c.argv[i]) {
        None => {
            c.reply.add_error(msg.unwrap_or(reply::ERR_NOT_INTEGER));
            None
        }
        Some(v) if v < min || v > max => {
            match msg {
                Some(m) => c.reply.add_error(m),
                None => c.reply.add_error(&format!(
                    "ERR value is out of range, value must between {} and {}",
                    min, max
                )),
            }
            None
        }
        Some(v) => Some(v),
    }
}

/// `getPositiveLongFromObjectOrReply`.
fn arg_positive_long(c: &mut Client, i: usize, msg: Option<&str>) -> Option<i64> {
    arg_range_long(
        c,
        i,
        0,
        i64::MAX,
        Some(msg.unwrap_or("ERR value is out of range, must be positive")),
    )
}

/// Thresholds for the encodings.
#[inline]
fn limits(srv: &Server) -> (usize, usize) {
    (
        srv.config.zset_max_listpack_entries,
        srv.config.zset_max_listpack_value,
    )
}

#[inline]
fn add_member(c: &mut Client, m: LpEntry<'_>) {
    match m {
        LpEntry::Str(b) => c.reply.add_bulk(b),
        LpEntry::Int(v) => c.reply.add_bulk_i64(v),
    }
}

/// One element of a range reply: `[member, score]` pairs nested in RESP3.
#[inline]
fn emit(c: &mut Client, m: LpEntry<'_>, s: f64, withscores: bool) {
    if withscores && c.reply.resp > 2 {
        c.reply.add_array_len(2);
    }
    add_member(c, m);
    if withscores {
        c.reply.add_double(s);
    }
}

/// The array header of a range reply of `n` elements.
#[inline]
fn emit_len(c: &mut Client, n: usize, withscores: bool) {
    if withscores && c.reply.resp == 2 {
        c.reply.add_array_len(n * 2);
    } else {
        c.reply.add_array_len(n);
    }
}

// ---------------------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM

fn zadd_generic(srv: &mut Server, c: &mut Client, mut fl: AddFlags) {
    let argc = c.argv.len();
    let mut ch = false;
    let mut scoreidx = 2;
    while scoreidx < argc {
        let o = &c.argv[scoreidx];
        if eq_ic(o, "nx") {
            fl.nx = true;
        } else if eq_ic(o, "xx") {
            fl.xx = true;
        } else if eq_ic(o, "ch") {
            ch = true;
        } else if eq_ic(o, "incr") {
            fl.incr = true;
        } else if eq_ic(o, "gt") {
            fl.gt = true;
        } else if eq_ic(o, "lt") {
            fl.lt = true;
        } else {
            break;
        }
        scoreidx += 1;
    }
    let elements = argc - scoreidx;
    if elements % 2 == 1 || elements == 0 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let elements = elements / 2;
    if fl.nx && fl.xx {
        c.reply
            .add_error("ERR XX and NX options at the same time are not compatible");
        return;
    }
    if (fl.nx && (fl.gt || fl.lt)) || (fl.gt && fl.lt) {
        c.reply
            .add_error("ERR GT, LT, and/or NX options at the same time are not compatible");
        return;
    }
    if fl.incr && elements > 1 {
        c.reply
            .add_error("ERR INCR option supports a single increment-element pair");
        return;
    }
    let mut scores = Vec::with_capacity(elements);
    let mut maxelelen = 0;
    for j in 0..elements {
        let Some(s) = parse_double(&c.argv[scoreidx + j * 2]) else {
            c.reply.add_error(reply::ERR_NOT_FLOAT);
            return;
        };
        scores.push(s);
        maxelelen = maxelelen.max(c.argv[scoreidx + 1 + j * 2].len());
    }
    let (me, mv) = limits(srv);
    let db = c.db;
    let key = &c.argv[1];
    let mut created = None;
    let z: &mut ZSet = match db::lookup_key_write_mut(srv, db, key) {
        Some(Value::ZSet(z)) => {
            z.maybe_convert(elements, maxelelen, me, mv);
            z
        }
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
        None => {
            if fl.xx {
                if fl.incr {
                    c.reply.add_null();
                } else {
                    c.reply.add_long(0);
                }
                return;
            }
            created.insert(ZSet::create(elements, maxelelen, me, mv))
        }
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut score = 0.0;
    let mut nan = false;
    for (j, &s) in scores.iter().enumerate() {
        let ele = &c.argv[scoreidx + 1 + j * 2];
        match z.add(s, ele, fl, me, mv) {
            None => {
                nan = true;
                break;
            }
            Some(o) => {
                added += o.added as i64;
                updated += o.updated as i64;
                processed += (!o.nop) as i64;
                score = o.newscore;
            }
        }
    }
    if let Some(z) = created {
        if !z.is_empty() {
            db::db_add(srv, db, &c.argv[1], Value::ZSet(z));
        }
    }
    if !nan {
        srv.dirty += (added + updated) as u64;
    }
    if added > 0 || updated > 0 {
        db::signal_modified_key(srv, db, &c.argv[1]);
        notify_keyspace_event(
            srv,
            NOTIFY_ZSET,
            if fl.incr { "zincr" } else { "zadd" },
            &c.argv[1],
            db,
        );
    }
    if nan {
        c.reply.add_error(ERR_NAN);
    } else if fl.incr {
        if processed > 0 {
            c.reply.add_double(score);
        } else {
            c.reply.add_null();
        }
    } else {
        c.reply.add_long(if ch { added + updated } else { added });
    }
}

pub(crate) fn zadd_command(srv: &mut Server, c: &mut Client) {
    zadd_generic(srv, c, AddFlags::default());
}

fn zincrby_command(srv: &mut Server, c: &mut Client) {
    zadd_generic(
        srv,
        c,
        AddFlags {
            incr: true,
            ..Default::default()
        },
    );
}

fn zrem_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let z = match db::lookup_key_write_mut(srv, db, &c.argv[1]) {
        None => {
            c.reply.add_long(0);
            return;
        }
        Some(Value::ZSet(z)) => z,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let mut deleted = 0i64;
    let mut emptied = false;
    for m in &c.argv[2..] {
        if z.remove(m) {
            deleted += 1;
        }
        if z.is_empty() {
            emptied = true;
            break;
        }
    }
    if emptied {
        db::db_delete(srv, db, &c.argv[1]);
    }
    if deleted > 0 {
        notify_keyspace_event(srv, NOTIFY_ZSET, "zrem", &c.argv[1], db);
        if emptied {
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &c.argv[1], db);
        }
        db::signal_modified_key(srv, db, &c.argv[1]);
        srv.dirty += deleted as u64;
    }
    c.reply.add_long(deleted);
}

// ---------------------------------------------------------------------------------------
// ZREMRANGEBY*

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

fn zremrange_generic(srv: &mut Server, c: &mut Client, rt: RangeType) {
    let mut start = 0i64;
    let mut end = 0i64;
    let mut score_range = None;
    let mut lex_range = None;
    let event = match rt {
        RangeType::Score => {
            let Some(r) = parse_score_range(&c.argv[2], &c.argv[3]) else {
                c.reply.add_error(ERR_MINMAX_FLOAT);
                return;
            };
            score_range = Some(r);
            "zremrangebyscore"
        }
        RangeType::Lex => {
            let Some(r) = parse_lex_range(&c.argv[2], &c.argv[3]) else {
                c.reply.add_error(ERR_MINMAX_LEX);
                return;
            };
            lex_range = Some(r);
            "zremrangebylex"
        }
        _ => {
            let Some(s) = arg_long(c, 2) else { return };
            let Some(e) = arg_long(c, 3) else { return };
            start = s;
            end = e;
            "zremrangebyrank"
        }
    };
    let db = c.db;
    let z = match db::lookup_key_write_mut(srv, db, &c.argv[1]) {
        None => {
            c.reply.add_long(0);
            return;
        }
        Some(Value::ZSet(z)) => z,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let deleted = if let Some(r) = &score_range {
        z.delete_range(r)
    } else if let Some(r) = &lex_range {
        z.delete_range(r)
    } else {
        let llen = z.len() as i64;
        if start < 0 {
            start = llen.saturating_add(start);
        }
        if end < 0 {
            end = llen.saturating_add(end);
        }
        if start < 0 {
            start = 0;
        }
        if start > end || start >= llen {
            c.reply.add_long(0);
            return;
        }
        if end >= llen {
            end = llen - 1;
        }
        z.delete_rank_range(start as usize, end as usize)
    };
    let emptied = z.is_empty();
    if emptied {
        db::db_delete(srv, db, &c.argv[1]);
    }
    if deleted > 0 {
        db::signal_modified_key(srv, db, &c.argv[1]);
        notify_keyspace_event(srv, NOTIFY_ZSET, event, &c.argv[1], db);
        if emptied {
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &c.argv[1], db);
        }
        srv.dirty += deleted as u64;
    }
    c.reply.add_long(deleted as i64);
}

fn zremrangebyrank_command(srv: &mut Server, c: &mut Client) {
    zremrange_generic(srv, c, RangeType::Rank);
}

fn zremrangebyscore_command(srv: &mut Server, c: &mut Client) {
    zremrange_generic(srv, c, RangeType::Score);
}

fn zremrangebylex_command(srv: &mut Server, c: &mut Client) {
    zremrange_generic(srv, c, RangeType::Lex);
}

// ---------------------------------------------------------------------------------------
// ZRANGE family

/// Collects a score or lex range walk (`genericZrangebyscoreCommand` and the lex one).
fn collect_range<'a>(
    z: &'a ZSet,
    r: &dyn RangeSpec,
    offset: i64,
    limit: i64,
    rev: bool,
    check_offset: bool,
) -> Vec<(LpEntry<'a>, f64)> {
    let mut out = Vec::new();
    if check_offset && offset > 0 && offset as u64 >= z.len() as u64 {
        return out;
    }
    let Some(start) = z.range_start(r, offset, rev) else {
        return out;
    };
    let mut limit = limit;
    for (m, s) in z.iter_from(start, rev) {
        if limit == 0 {
            break;
        }
        limit -= 1;
        let ok = with_bytes(m, |mb| {
            if rev {
                r.gte_min(s, mb)
            } else {
                r.lte_max(s, mb)
            }
        });
        if !ok {
            break;
        }
        out.push((m, s));
    }
    out
}

/// Stores a range result at `dst` (ZRANGESTORE), replying with its size.
fn store_range(
    srv: &mut Server,
    c: &mut Client,
    dst: &[u8],
    items: Vec<(Vec<u8>, f64)>,
    hint: usize,
) {
    let db = c.db;
    if items.is_empty() {
        if db::db_delete(srv, db, dst) {
            db::signal_modified_key(srv, db, dst);
            notify_keyspace_event(srv, NOTIFY_GENERIC, "del", dst, db);
            srv.dirty += 1;
        }
        c.reply.add_long(0);
        return;
    }
    let (me, mv) = limits(srv);
    let mut z = ZSet::create(hint, 0, me, mv);
    for (m, s) in &items {
        z.add(*s, m, AddFlags::default(), me, mv);
    }
    let n = items.len();
    db::set_key(srv, db, dst, Value::ZSet(z), false);
    notify_keyspace_event(srv, NOTIFY_ZSET, "zrangestore", dst, db);
    srv.dirty += 1;
    c.reply.add_long(n as i64);
}

fn zrange_generic(
    srv: &mut Server,
    c: &mut Client,
    argc_start: usize,
    store: bool,
    mut rt: RangeType,
    mut rev: Option<bool>,
) {
    let argc = c.argv.len();
    let mut withscores = false;
    let mut offset = 0i64;
    let mut limit = -1i64;
    let mut j = argc_start + 3;
    while j < argc {
        let left = argc - j - 1;
        let a = &c.argv[j];
        if !store && eq_ic(a, "withscores") {
            withscores = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            let Some(o) = arg_long(c, j + 1) else { return };
            let Some(l) = arg_long(c, j + 2) else { return };
            offset = o;
            limit = l;
            j += 2;
        } else if rev.is_none() && eq_ic(a, "rev") {
            rev = Some(true);
        } else if rt == RangeType::Auto && eq_ic(a, "bylex") {
            rt = RangeType::Lex;
        } else if rt == RangeType::Auto && eq_ic(a, "byscore") {
            rt = RangeType::Score;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if rt == RangeType::Auto {
        rt = RangeType::Rank;
    }
    if limit != -1 && rt == RangeType::Rank {
        c.reply.add_error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
        return;
    }
    if withscores && rt == RangeType::Lex {
        c.reply
            .add_error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return;
    }
    let (mut minidx, mut maxidx) = (argc_start + 1, argc_start + 2);
    if rev && (rt == RangeType::Score || rt == RangeType::Lex) {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let (mut start, mut end) = (0i64, 0i64);
    let mut score_range = None;
    let mut lex_range = None;
    match rt {
        RangeType::Score => match parse_score_range(&c.argv[minidx], &c.argv[maxidx]) {
            Some(r) => score_range = Some(r),
            None => {
                c.reply.add_error(ERR_MINMAX_FLOAT);
                return;
            }
        },
        RangeType::Lex => match parse_lex_range(&c.argv[minidx], &c.argv[maxidx]) {
            Some(r) => lex_range = Some(r),
            None => {
                c.reply.add_error(ERR_MINMAX_LEX);
                return;
            }
        },
        _ => {
            let Some(s) = arg_long(c, minidx) else { return };
            let Some(e) = arg_long(c, maxidx) else { return };
            start = s;
            end = e;
        }
    }
    let db = c.db;
    let key = &c.argv[argc_start];
    let z = match db::lookup_key_read(srv, db, key) {
        None => {
            if store {
                let dst = c.argv[1].clone();
                store_range(srv, c, &dst, Vec::new(), 0);
            } else {
                c.reply.add_array_len(0);
            }
            return;
        }
        Some(ValueRef::ZSet(z)) => z,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let withscores = withscores || store;
    if rt == RangeType::Rank {
        let llen = z.len() as i64;
        if start < 0 {
            start = llen.saturating_add(start);
        }
        if end < 0 {
            end = llen.saturating_add(end);
        }
        if start < 0 {
            start = 0;
        }
        if start > end || start >= llen {
            if store {
                let dst = c.argv[1].clone();
                store_range(srv, c, &dst, Vec::new(), 0);
            } else {
                c.reply.add_array_len(0);
            }
            return;
        }
        if end >= llen {
            end = llen - 1;
        }
        let n = (end - start + 1) as usize;
        let it = z.iter_from(start as usize, rev).take(n);
        if store {
            let items: Vec<(Vec<u8>, f64)> = it.map(|(m, s)| (m.to_vec(), s)).collect();
            let dst = c.argv[1].clone();
            store_range(srv, c, &dst, items, n);
        } else {
            emit_len(c, n, withscores);
            for (m, s) in it {
                emit(c, m, s, withscores);
            }
        }
        return;
    }
    let items = if let Some(r) = &score_range {
        collect_range(z, r, offset, limit, rev, true)
    } else if let Some(r) = &lex_range {
        collect_range(z, r, offset, limit, rev, false)
    } else {
        Vec::new()
    };
    if store {
        let owned: Vec<(Vec<u8>, f64)> = items.into_iter().map(|(m, s)| (m.to_vec(), s)).collect();
        let dst = c.argv[1].clone();
        store_range(srv, c, &dst, owned, 0);
    } else {
        emit_len(c, items.len(), withscores);
        for (m, s) in items {
            emit(c, m, s, withscores);
        }
    }
}

fn zrange_command(srv: &mut Server, c: &mut Client) {
    zrange_generic(srv, c, 1, false, RangeType::Auto, None);
}

fn zrangestore_command(srv: &mut Server, c: &mut Client) {
    zrange_generic(srv, c, 2, true, RangeType::Auto, None);
}

fn zrevrange_command(srv: &mut Server, c: &mut Client) {
    zrange_generic(srv, c, 1, false, RangeType::Rank, Some(true));
}

fn zrangebyscore_command(srv: &mut Server, c: &mut Client) {
    zrange_generic(srv, c, 1, false, RangeType::Score, Some(false));
}

fn zrevrangebyscore_command(srv: &mut Server, c: &mut Client) {
    zrange_generic(srv, c, 1, false, RangeType::Score, Some(true));
}

fn zrangebylex_command(srv: &mut Server, c: &mut Client) {
    zrange_generic(srv, c, 1, false, RangeType::Lex, Some(false));
}

fn zrevrangebylex_command(srv: &mut Server, c: &mut Client) {
    zrange_generic(srv, c, 1, false, RangeType::Lex, Some(true));
}

// ---------------------------------------------------------------------------------------
// Reads

/// Looks up a zset for reading; replies `missing` (via the closure) or WRONGTYPE.
macro_rules! read_zset {
    ($srv:expr, $c:expr, $key:expr, $missing:expr) => {
        match db::lookup_key_read($srv, $c.db, $key) {
            None => {
                $missing;
                return;
            }
            Some(ValueRef::ZSet(z)) => z,
            Some(_) => {
                $c.reply.add_error(reply::ERR_WRONGTYPE);
                return;
            }
        }
    };
}

fn zcard_command(srv: &mut Server, c: &mut Client) {
    let z = read_zset!(srv, c, &c.argv[1], c.reply.add_long(0));
    c.reply.add_long(z.len() as i64);
}

fn zcount_command(srv: &mut Server, c: &mut Client) {
    let Some(r) = parse_score_range(&c.argv[2], &c.argv[3]) else {
        c.reply.add_error(ERR_MINMAX_FLOAT);
        return;
    };
    let z = read_zset!(srv, c, &c.argv[1], c.reply.add_long(0));
    c.reply.add_long(z.count_in_range(&r) as i64);
}

fn zlexcount_command(srv: &mut Server, c: &mut Client) {
    let Some(r) = parse_lex_range(&c.argv[2], &c.argv[3]) else {
        c.reply.add_error(ERR_MINMAX_LEX);
        return;
    };
    let z = read_zset!(srv, c, &c.argv[1], c.reply.add_long(0));
    c.reply.add_long(z.count_in_range(&r) as i64);
}

fn zscore_command(srv: &mut Server, c: &mut Client) {
    let z = read_zset!(srv, c, &c.argv[1], c.reply.add_null());
    match z.score(&c.argv[2]) {
        Some(s) => c.reply.add_double(s),
        None => c.reply.add_null(),
    }
}

fn zmscore_command(srv: &mut Server, c: &mut Client) {
    let z = match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => None,
        Some(ValueRef::ZSet(z)) => Some(z),
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    c.reply.add_array_len(c.argv.len() - 2);
    for m in &c.argv[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => c.reply.add_double(s),
            None => c.reply.add_null(),
        }
    }
}

fn zrank_generic(srv: &mut Server, c: &mut Client, reverse: bool) {
    if c.argv.len() > 4 {
        c.reply
            .add_error_arity(&String::from_utf8_lossy(&c.argv[0]));
        return;
    }
    let withscore = if c.argv.len() > 3 {
        if eq_ic(&c.argv[3], "withscore") {
            true
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    } else {
        false
    };
    let z = read_zset!(
        srv,
        c,
        &c.argv[1],
        if withscore {
            c.reply.add_null_array()
        } else {
            c.reply.add_null()
        }
    );
    match z.rank(&c.argv[2], reverse) {
        Some((r, s)) => {
            if withscore {
                c.reply.add_array_len(2);
            }
            c.reply.add_long(r as i64);
            if withscore {
                c.reply.add_double(s);
            }
        }
        None => {
            if withscore {
                c.reply.add_null_array();
            } else {
                c.reply.add_null();
            }
        }
    }
}

fn zrank_command(srv: &mut Server, c: &mut Client) {
    zrank_generic(srv, c, false);
}

fn zrevrank_command(srv: &mut Server, c: &mut Client) {
    zrank_generic(srv, c, true);
}

fn zscan_command(srv: &mut Server, c: &mut Client) {
    let Some(mut cursor) = super::keys::parse_scan_cursor(&c.argv[2]) else {
        c.reply.add_error("ERR invalid cursor");
        return;
    };
    let z = match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => {
            c.reply.add_array_len(2);
            c.reply.add_bulk(b"0");
            c.reply.add_array_len(0);
            return;
        }
        Some(ValueRef::ZSet(z)) => z,
        Some(_) => {
            c.reply.add_error(reply::ERR_WRONGTYPE);
            return;
        }
    };
    let Some(opts) = super::keys::parse_scan_opts(c, 3, super::keys::ScanOf::ZSet) else {
        return;
    };
    let (count, noscores) = (opts.count, opts.noscores);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let keep = |m: &[u8]| opts.matches(m);
    if z.as_listpack().is_some() {
        // The listpack is returned whole, with the scores as stored.
        if let Some(lp) = z.as_listpack() {
            let mut it = lp.iter();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                let mb = m.to_vec();
                if !keep(&mb) {
                    continue;
                }
                out.push(mb);
                if !noscores {
                    out.push(s.to_vec());
                }
            }
        }
        cursor = 0;
    } else {
        let mut max_iterations = count.saturating_mul(10);
        loop {
            cursor = z.scan(cursor, &mut |m, s| {
                if !keep(m) {
                    return;
                }
                out.push(m.to_vec());
                if !noscores {
                    out.push(reply::fmt_double_g17(s).into_bytes());
                }
            });
            max_iterations -= 1;
            let got = if noscores { out.len() } else { out.len() / 2 } as i64;
            if cursor == 0 || max_iterations <= 0 || got >= count {
                break;
            }
        }
    }
    c.reply.add_array_len(2);
    c.reply.add_bulk(cursor.to_string().as_bytes());
    c.reply.add_bulk_array(&out);
}

// ---------------------------------------------------------------------------------------
// Pops

/// `genericZpopCommand`: pops from the first existing key of `keys`.
#[allow(clippy::too_many_arguments)]
fn generic_zpop(
    srv: &mut Server,
    c: &mut Client,
    keys: &[Vec<u8>],
    max: bool,
    emitkey: bool,
    count: i64,
    nested: bool,
    nil_when_empty: bool,
) {
    let db = c.db;
    let mut found = None;
    for key in keys {
        match db::lookup_key_write(srv, db, key) {
            None => continue,
            Some(ValueRef::ZSet(_)) => {
                found = Some(key);
                break;
            }
            Some(_) => {
                c.reply.add_error(reply::ERR_WRONGTYPE);
                return;
            }
        }
    }
    let Some(key) = found else {
        if nil_when_empty {
            c.reply.add_null_array();
        } else {
            c.reply.add_array_len(0);
        }
        return;
    };
    if count == 0 {
        c.reply.add_array_len(0);
        return;
    }
    let count_given = count != -1;
    let count = if count == -1 { 1 } else { count };
    // BZPOPMIN/BZPOPMAX propagate as ZPOPMIN/ZPOPMAX key, ZMPOP/BZMPOP as ZPOPMIN/ZPOPMAX
    // key <number popped> (ZPOPMIN/ZPOPMAX themselves as they are).
    let propagate =
        emitkey && crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL);
    let Some(Value::ZSet(z)) = db::lookup_key_write_mut(srv, db, key) else {
        c.reply.add_array_len(0);
        return;
    };
    let llen = z.len();
    let rangelen = (count.max(0) as u64).min(llen as u64) as usize;
    match (nested, emitkey) {
        (false, false) => c.reply.add_array_len(rangelen * 2),
        (true, false) => c.reply.add_array_len(rangelen),
        (false, true) => {
            c.reply.add_array_len(rangelen * 2 + 1);
            c.reply.add_bulk(key);
        }
        (true, true) => {
            c.reply.add_array_len(2);
            c.reply.add_bulk(key);
            c.reply.add_array_len(rangelen);
        }
    }
    for _ in 0..rangelen {
        let Some((m, s)) = z.pop(max) else {
            break;
        };
        if nested {
            c.reply.add_array_len(2);
        }
        c.reply.add_bulk(&m);
        c.reply.add_double(s);
    }
    let emptied = z.is_empty();
    srv.dirty += rangelen as u64;
    if propagate && rangelen > 0 {
        let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        let mut argv = vec![name.to_vec(), key.clone()];
        if count_given {
            argv.push(rangelen.to_string().into_bytes());
        }
        c.propagate_argv = Some(argv);
    }
    notify_keyspace_event(
        srv,
        NOTIFY_ZSET,
        if max { "zpopmax" } else { "zpopmin" },
        key,
        db,
    );
    if emptied {
        db::db_delete(srv, db, key);
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", key, db);
    }
    db::signal_modified_key(srv, db, key);
}

fn zpop_minmax(srv: &mut Server, c: &mut Client, max: bool) {
    if c.argv.len() > 3 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let mut count = -1;
    if c.argv.len() == 3 {
        let Some(n) = arg_positive_long(c, 2, None) else {
            return;
        };
        count = n;
    }
    let nested = c.reply.resp > 2 && count != -1;
    let keys = [c.argv[1].clone()];
    generic_zpop(srv, c, &keys, max, false, count, nested, false);
}

fn zpopmin_command(srv: &mut Server, c: &mut Client) {
    zpop_minmax(srv, c, false);
}

fn zpopmax_command(srv: &mut Server, c: &mut Client) {
    zpop_minmax(srv, c, true);
}

/// `blockingGenericZpopCommand`: serve from the first non-empty key, else block.
#[allow(clippy::too_many_arguments)]
fn blocking_zpop(
    srv: &mut Server,
    c: &mut Client,
    keys: Vec<Vec<u8>>,
    max: bool,
    timeout_idx: usize,
    count: i64,
    nested: bool,
    nil_when_empty: bool,
) {
    let timeout = match blocked::get_timeout(srv, &c.argv[timeout_idx]) {
        Ok(t) => t,
        Err(e) => {
            c.reply.add_error(e);
            return;
        }
    };
    let db = c.db;
    for key in &keys {
        match db::lookup_key_write(srv, db, key) {
            None => continue,
            Some(ValueRef::ZSet(z)) => {
                if z.is_empty() {
                    continue;
                }
            }
            Some(_) => {
                c.reply.add_error(reply::ERR_WRONGTYPE);
                return;
            }
        }
        generic_zpop(
            srv,
            c,
            std::slice::from_ref(key),
            max,
            true,
            count,
            nested,
            nil_when_empty,
        );
        return;
    }
    if blocked::blocking_denied(c) {
        c.reply.add_null_array();
        return;
    }
    blocked::block_for_keys(srv, c, BlockType::ZSet, &keys, timeout, false);
}

fn bzpopmin_command(srv: &mut Server, c: &mut Client) {
    let n = c.argv.len();
    let keys = c.argv[1..n - 1].to_vec();
    blocking_zpop(srv, c, keys, false, n - 1, -1, false, false);
}

fn bzpopmax_command(srv: &mut Server, c: &mut Client) {
    let n = c.argv.len();
    let keys = c.argv[1..n - 1].to_vec();
    blocking_zpop(srv, c, keys, true, n - 1, -1, false, false);
}

/// ZMPOP / BZMPOP argument parsing and dispatch.
fn zmpop_generic(srv: &mut Server, c: &mut Client, numkeys_idx: usize, block: bool) {
    let Some(numkeys) = arg_range_long(
        c,
        numkeys_idx,
        1,
        i64::MAX,
        Some("ERR numkeys should be greater than 0"),
    ) else {
        return;
    };
    let argc = c.argv.len();
    let where_idx = match (numkeys as u64).checked_add(numkeys_idx as u64 + 1) {
        Some(w) if w < argc as u64 => w as usize,
        _ => {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    };
    let max = if eq_ic(&c.argv[where_idx], "min") {
        false
    } else if eq_ic(&c.argv[where_idx], "max") {
        true
    } else {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    };
    let mut count = -1i64;
    let mut j = where_idx + 1;
    while j < argc {
        let more = argc - 1 - j;
        if count == -1 && eq_ic(&c.argv[j], "count") && more > 0 {
            j += 1;
            let Some(n) = arg_range_long(
                c,
                j,
                1,
                i64::MAX,
                Some("ERR count should be greater than 0"),
            ) else {
                return;
            };
            count = n;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    if count == -1 {
        count = 1;
    }
    let keys = c.argv[numkeys_idx + 1..where_idx].to_vec();
    if block {
        blocking_zpop(srv, c, keys, max, 1, count, true, true);
    } else {
        generic_zpop(srv, c, &keys, max, true, count, true, true);
    }
}

fn zmpop_command(srv: &mut Server, c: &mut Client) {
    zmpop_generic(srv, c, 1, false);
}

fn bzmpop_command(srv: &mut Server, c: &mut Client) {
    zmpop_generic(srv, c, 2, true);
}

// ---------------------------------------------------------------------------------------
// ZRANDMEMBER

fn zrandmember_with_count(srv: &mut Server, c: &mut Client, l: i64, withscores: bool) {
    let z = read_zset!(srv, c, &c.argv[1], c.reply.add_array_len(0));
    let size = z.len();
    let (count, uniq) = if l >= 0 {
        (l as u64, true)
    } else {
        (l.unsigned_abs(), false)
    };
    if count == 0 {
        c.reply.add_array_len(0);
        return;
    }
    let resp3 = c.reply.resp > 2;
    // Case 1: repeats allowed (or one element): independent picks, replied as we go.
    if !uniq || count == 1 {
        emit_len(c, count as usize, withscores);
        for _ in 0..count {
            if let Some((m, s)) = z.random() {
                emit(c, m, s, withscores);
            }
            if c.flags & crate::client::flags::CLOSE_ASAP != 0 {
                break;
            }
        }
        return;
    }
    // Case 2: the whole zset, in upstream's iteration order (descending).
    if count >= size as u64 {
        emit_len(c, size, withscores);
        for (m, s) in z.iter_from(0, true) {
            emit(c, m, s, withscores);
        }
        return;
    }
    let count = count as usize;
    emit_len(c, count, withscores);
    let _ = resp3;
    if count * 3 > size || z.as_listpack().is_some() {
        // Cases 2.5 and 3: drop random ranks from the full list down to `count`.
        let mut keep: Vec<usize> = (0..size).collect();
        while keep.len() > count {
            let i = (crate::util::random_u64() % keep.len() as u64) as usize;
            keep.swap_remove(i);
        }
        keep.sort_unstable();
        let mut it = z.iter_from(0, false).enumerate();
        for r in keep {
            for (i, (m, s)) in it.by_ref() {
                if i == r {
                    emit(c, m, s, withscores);
                    break;
                }
            }
        }
    } else {
        // Case 4: random picks until `count` distinct members.
        let mut seen = std::collections::HashSet::new();
        while seen.len() < count {
            let Some((m, s)) = z.random() else { break };
            if seen.insert(m.to_vec()) {
                emit(c, m, s, withscores);
            }
        }
    }
}

fn zrandmember_command(srv: &mut Server, c: &mut Client) {
    let argc = c.argv.len();
    if argc >= 3 {
        let Some(l) = arg_range_long(c, 2, -i64::MAX, i64::MAX, None) else {
            return;
        };
        if argc > 4 || (argc == 4 && !eq_ic(&c.argv[3], "withscores")) {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
        let withscores = argc == 4;
        if withscores && !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
            c.reply.add_error("ERR value is out of range");
            return;
        }
        zrandmember_with_count(srv, c, l, withscores);
        return;
    }
    let z = read_zset!(srv, c, &c.argv[1], c.reply.add_null());
    if let Some((m, _)) = z.random() {
        add_member(c, m);
    }
}

// ---------------------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF (and their STORE forms), ZINTERCARD

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggr {
    Sum,
    Min,
    Max,
}

/// An input of a set operation: a sorted set, a set (scores 1), or a missing key.
#[derive(Clone, Copy)]
enum Src<'a> {
    Missing,
    Z(&'a ZSet),
    S(&'a crate::types::set::Set),
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::Missing => 0,
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
        }
    }

    /// The elements in upstream's iteration order (zsets from the highest).
    fn for_each(&self, f: &mut dyn FnMut(&[u8], f64) -> bool) {
        match self {
            Src::Missing => {}
            Src::Z(z) => {
                for (m, s) in z.iter_from(0, true) {
                    if !with_bytes(m, |mb| f(mb, s)) {
                        return;
                    }
                }
            }
            Src::S(s) => {
                for m in s.iter() {
                    if !f(&m.to_vec(), 1.0) {
                        return;
                    }
                }
            }
        }
    }

    fn find(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Missing => None,
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn same(&self, o: &Src<'_>) -> bool {
        match (self, o) {
            (Src::Z(a), Src::Z(b)) => std::ptr::eq(*a, *b),
            (Src::S(a), Src::S(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

#[inline]
fn aggregate(target: &mut f64, val: f64, a: Aggr) {
    match a {
        Aggr::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggr::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggr::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

fn zset_op_generic(
    srv: &mut Server,
    c: &mut Client,
    dst: Option<Vec<u8>>,
    numkeys_idx: usize,
    op: SetOp,
    card_only: bool,
) {
    let Some(setnum) = arg_long(c, numkeys_idx) else {
        return;
    };
    if setnum < 1 {
        let name = String::from_utf8_lossy(&c.argv[0]).to_ascii_lowercase();
        c.reply.add_error(&format!(
            "ERR at least 1 input key is needed for '{}' command",
            name
        ));
        return;
    }
    let argc = c.argv.len();
    if setnum as u64 > (argc - (numkeys_idx + 1)) as u64 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    }
    let setnum = setnum as usize;
    let db = c.db;
    let first = numkeys_idx + 1;
    // Lookups first (expiry, stats, type checks), then borrow the values.
    for i in 0..setnum {
        match db::lookup_key_read(srv, db, &c.argv[first + i]) {
            None | Some(ValueRef::ZSet(_)) | Some(ValueRef::Set(_)) => {}
            Some(_) => {
                c.reply.add_error(reply::ERR_WRONGTYPE);
                return;
            }
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut aggr = Aggr::Sum;
    let mut withscores = false;
    let mut limit = 0i64;
    let mut j = first + setnum;
    while j < argc {
        let remaining = argc - j;
        let a = &c.argv[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && eq_ic(a, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                match parse_double(&c.argv[j]) {
                    Some(v) => *w = v,
                    None => {
                        c.reply.add_error("ERR weight value is not a float");
                        return;
                    }
                }
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && eq_ic(a, "aggregate") {
            let v = &c.argv[j + 1];
            aggr = if eq_ic(v, "sum") {
                Aggr::Sum
            } else if eq_ic(v, "min") {
                Aggr::Min
            } else if eq_ic(v, "max") {
                Aggr::Max
            } else {
                c.reply.add_error(reply::ERR_SYNTAX);
                return;
            };
            j += 2;
        } else if dst.is_none() && !card_only && eq_ic(a, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq_ic(a, "limit") {
            let Some(l) = arg_positive_long(c, j + 1, Some("ERR LIMIT can't be negative")) else {
                return;
            };
            limit = l;
            j += 2;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        }
    }
    let kv = &srv.dbs[db].kv;
    let mut srcs: Vec<(Src<'_>, f64)> = (0..setnum)
        .map(|i| {
            let s = match kv.get(&c.argv[first + i]) {
                Some(ValueRef::ZSet(z)) => Src::Z(z),
                Some(ValueRef::Set(s)) => Src::S(s),
                _ => Src::Missing,
            };
            (s, weights[i])
        })
        .collect();
    if op != SetOp::Diff {
        srcs.sort_by_key(|(s, _)| s.len());
    }
    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut cardinality = 0u64;
    match op {
        SetOp::Inter => {
            if srcs[0].0.len() > 0 {
                let (s0, w0) = srcs[0];
                s0.for_each(&mut |m, sc| {
                    let mut score = w0 * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    for (sj, wj) in &srcs[1..] {
                        let v = if sj.same(&s0) {
                            sc * wj
                        } else if let Some(v) = sj.find(m) {
                            v * wj
                        } else {
                            return true;
                        };
                        aggregate(&mut score, v, aggr);
                    }
                    if card_only {
                        cardinality += 1;
                        if limit > 0 && cardinality >= limit as u64 {
                            return false;
                        }
                    } else {
                        result.push((m.to_vec(), score));
                    }
                    true
                });
            }
        }
        SetOp::Union => {
            let mut acc: std::collections::HashMap<Vec<u8>, f64> =
                std::collections::HashMap::with_capacity(srcs.last().map_or(0, |s| s.0.len()));
            for (s, w) in &srcs {
                s.for_each(&mut |m, sc| {
                    let mut score = w * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, score, aggr),
                        None => {
                            acc.insert(m.to_vec(), score);
                        }
                    }
                    true
                });
            }
            result = acc.into_iter().collect();
        }
        SetOp::Diff => {
            let s0 = srcs[0].0;
            if s0.len() > 0 && !srcs[1..].iter().any(|(s, _)| s.same(&s0)) {
                s0.for_each(&mut |m, sc| {
                    if !srcs[1..].iter().any(|(s, _)| s.find(m).is_some()) {
                        result.push((m.to_vec(), sc));
                    }
                    true
                });
            }
        }
    }
    if card_only {
        c.reply.add_long(cardinality as i64);
        return;
    }
    result.sort_by(|a, b| crate::types::zset::cmp_elems(a.1, &a.0, b.1, &b.0));
    if let Some(dst) = dst {
        if result.is_empty() {
            if db::db_delete(srv, db, &dst) {
                db::signal_modified_key(srv, db, &dst);
                notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &dst, db);
                srv.dirty += 1;
            }
            c.reply.add_long(0);
            return;
        }
        let (me, mv) = limits(srv);
        let maxelelen = result.iter().map(|x| x.0.len()).max().unwrap_or(0);
        let small = result.len() <= me && maxelelen <= mv;
        let z = ZSet::from_sorted(&result, small);
        let n = result.len();
        db::set_key(srv, db, &dst, Value::ZSet(z), false);
        let ev = match op {
            SetOp::Union => "zunionstore",
            SetOp::Inter => "zinterstore",
            SetOp::Diff => "zdiffstore",
        };
        notify_keyspace_event(srv, NOTIFY_ZSET, ev, &dst, db);
        c.reply.add_long(n as i64);
        srv.dirty += 1;
    } else {
        emit_len(c, result.len(), withscores);
        for (m, s) in &result {
            emit(c, LpEntry::Str(m), *s, withscores);
        }
    }
}

fn zunionstore_command(srv: &mut Server, c: &mut Client) {
    let dst = c.argv[1].clone();
    zset_op_generic(srv, c, Some(dst), 2, SetOp::Union, false);
}

fn zinterstore_command(srv: &mut Server, c: &mut Client) {
    let dst = c.argv[1].clone();
    zset_op_generic(srv, c, Some(dst), 2, SetOp::Inter, false);
}

fn zdiffstore_command(srv: &mut Server, c: &mut Client) {
    let dst = c.argv[1].clone();
    zset_op_generic(srv, c, Some(dst), 2, SetOp::Diff, false);
}

fn zunion_command(srv: &mut Server, c: &mut Client) {
    zset_op_generic(srv, c, None, 1, SetOp::Union, false);
}

fn zinter_command(srv: &mut Server, c: &mut Client) {
    zset_op_generic(srv, c, None, 1, SetOp::Inter, false);
}

fn zintercard_command(srv: &mut Server, c: &mut Client) {
    zset_op_generic(srv, c, None, 1, SetOp::Inter, true);
}

fn zdiff_command(srv: &mut Server, c: &mut Client) {
    zset_op_generic(srv, c, None, 1, SetOp::Diff, false);
}
