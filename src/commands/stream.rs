//! Stream commands, as upstream's `t_stream.c` (XADD, XLEN, XRANGE, XREVRANGE, XDEL,
//! XTRIM, XSETID, XREAD). Consumer groups come later.

use super::{
    acl_cat as cat, flags as f, key_flags as k, BeginSearch, CommandDef, FindKeys, KeySpec,
};
use crate::blocked::{self, BlockType};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_STREAM};
use crate::object::{ObjType, Value, ValueRef};
use crate::reply::{ReplyBuf, ERR_NOT_INTEGER, ERR_NO_SUCH_KEY, ERR_SYNTAX, ERR_WRONGTYPE};
use crate::server::Server;
use crate::types::listpack::LpEntry;
use crate::types::stream::{
    AppendError, Consumer, ConsumerGroup, PendingEntry, Stream, StreamId, TrimStrategy,
};
use crate::util::{eq_ic, parse_i64_strict};

const KS_RW_UPD: &[KeySpec] = &[KeySpec::range(k::RW | k::UPDATE, 1, 0, 1)
    .notes("UPDATE instead of INSERT because of the optional trimming feature")];
const KS_RW_UPD_PLAIN: &[KeySpec] = &[KeySpec::range(k::RW | k::UPDATE, 1, 0, 1)];
const KS_RO: &[KeySpec] = &[KeySpec::range(k::RO, 1, 0, 1)];
const KS_RO_ACC: &[KeySpec] = &[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)];
const KS_RW_DEL: &[KeySpec] = &[KeySpec::range(k::RW | k::DELETE, 1, 0, 1)];
const KS_XREAD: &[KeySpec] = &[KeySpec {
    notes: "",
    flags: k::RO | k::ACCESS,
    begin: BeginSearch::Keyword {
        keyword: "STREAMS",
        startfrom: 1,
    },
    find: FindKeys::Range {
        lastkey: -1,
        keystep: 1,
        limit: 2,
    },
}];
const RANGE_COMPLEXITY: &str = "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).";
const REVRANGE_COMPLEXITY: &str = "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).";

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new("xadd", -5, f::WRITE | f::DENYOOM | f::FAST, cat::WRITE | cat::STREAM | cat::FAST, xadd_command)
        .keys(KS_RW_UPD)
        .doc(
            "stream",
            "5.0.0",
            "Appends a new message to a stream. Creates the key if it doesn't exist.",
            "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.",
        )
        .tips(&["nondeterministic_output"]),
    CommandDef::new("xlen", 2, f::READONLY | f::FAST, cat::READ | cat::STREAM | cat::FAST, xlen_command)
        .keys(KS_RO)
        .doc("stream", "5.0.0", "Returns the number of messages in a stream.", "O(1)"),
    CommandDef::new("xrange", -4, f::READONLY, cat::READ | cat::STREAM | cat::SLOW, xrange_command)
        .keys(KS_RO_ACC)
        .doc(
            "stream",
            "5.0.0",
            "Returns the messages from a stream within a range of IDs.",
            RANGE_COMPLEXITY,
        ),
    CommandDef::new("xrevrange", -4, f::READONLY, cat::READ | cat::STREAM | cat::SLOW, xrevrange_command)
        .keys(KS_RO_ACC)
        .doc(
            "stream",
            "5.0.0",
            "Returns the messages from a stream within a range of IDs in reverse order.",
            REVRANGE_COMPLEXITY,
        ),
    CommandDef::new("xdel", -3, f::WRITE | f::FAST, cat::WRITE | cat::STREAM | cat::FAST, xdel_command)
        .keys(KS_RW_DEL)
        .doc(
            "stream",
            "5.0.0",
            "Returns the number of messages after removing them from a stream.",
            "O(1) for each single item to delete in the stream, regardless of the stream size.",
        ),
    CommandDef::new("xtrim", -4, f::WRITE, cat::WRITE | cat::STREAM | cat::SLOW, xtrim_command)
        .keys(KS_RW_DEL)
        .doc(
            "stream",
            "5.0.0",
            "Deletes messages from the beginning of a stream.",
            "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.",
        )
        .tips(&["nondeterministic_output"]),
    CommandDef::new("xsetid", -3, f::WRITE | f::DENYOOM | f::FAST, cat::WRITE | cat::STREAM | cat::FAST, xsetid_command)
        .keys(KS_RW_UPD_PLAIN)
        .doc("stream", "5.0.0", "An internal command for replicating stream values.", "O(1)"),
    CommandDef::new(
        "xread",
        -4,
        f::READONLY | f::BLOCKING | f::MOVABLE_KEYS,
        cat::READ | cat::STREAM | cat::SLOW | cat::BLOCKING,
        xread_command,
    )
    .keys(KS_XREAD)
    .doc(
        "stream",
        "5.0.0",
        "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
        "",
    ),
    CommandDef::new("xgroup", -2, 0, cat::SLOW, super::container_proc)
        .doc("stream", "5.0.0", "A container for consumer groups commands.", "Depends on subcommand.")
        .subs(&[
            CommandDef::new("create", -5, f::WRITE | f::DENYOOM, cat::WRITE | cat::STREAM | cat::SLOW, xgroup_command)
                .keys(KS_XGROUP_INS)
                .doc("stream", "5.0.0", "Creates a consumer group.", XGROUP_SUB),
            CommandDef::new("createconsumer", 5, f::WRITE | f::DENYOOM, cat::WRITE | cat::STREAM | cat::SLOW, xgroup_command)
                .keys(KS_XGROUP_INS)
                .doc("stream", "6.2.0", "Creates a consumer in a consumer group.", XGROUP_SUB),
            CommandDef::new("delconsumer", 5, f::WRITE, cat::WRITE | cat::STREAM | cat::SLOW, xgroup_command)
                .keys(KS_XGROUP_DEL)
                .doc("stream", "5.0.0", "Deletes a consumer from a consumer group.", XGROUP_SUB),
            CommandDef::new("destroy", 4, f::WRITE, cat::WRITE | cat::STREAM | cat::SLOW, xgroup_command)
                .keys(KS_XGROUP_DEL)
                .doc(
                    "stream",
                    "5.0.0",
                    "Destroys a consumer group.",
                    "O(N) where N is the number of entries in the group's pending entries list (PEL).",
                ),
            CommandDef::new("help", 2, f::LOADING | f::STALE, cat::STREAM | cat::SLOW, xgroup_command)
                .doc("stream", "5.0.0", "Returns helpful text about the different subcommands.", XGROUP_SUB),
            CommandDef::new("setid", -5, f::WRITE, cat::WRITE | cat::STREAM | cat::SLOW, xgroup_command)
                .keys(KS_XGROUP_UPD)
                .doc("stream", "5.0.0", "Sets the last-delivered ID of a consumer group.", XGROUP_SUB),
        ]),
    CommandDef::new("xack", -4, f::WRITE | f::FAST, cat::WRITE | cat::STREAM | cat::FAST, xack_command)
        .keys(KS_RW_UPD_PLAIN)
        .doc(
            "stream",
            "5.0.0",
            "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
            "O(1) for each message ID processed.",
        ),
    CommandDef::new(
        "xreadgroup",
        -7,
        f::WRITE | f::BLOCKING | f::MOVABLE_KEYS,
        cat::WRITE | cat::STREAM | cat::SLOW | cat::BLOCKING,
        xreadgroup_command,
    )
    .keys(KS_XREADGROUP)
    .doc(
        "stream",
        "5.0.0",
        "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
        "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.",
    ),
    CommandDef::new("xpending", -3, f::READONLY, cat::READ | cat::STREAM | cat::SLOW, xpending_command)
        .keys(KS_RO_ACC)
        .doc(
            "stream",
            "5.0.0",
            "Returns the information and entries from a stream consumer group's pending entries list.",
            "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.",
        )
        .tips(&["nondeterministic_output"]),
    CommandDef::new("xclaim", -6, f::WRITE | f::FAST, cat::WRITE | cat::STREAM | cat::FAST, xclaim_command)
        .keys(KS_RW_UPD_PLAIN)
        .doc(
            "stream",
            "5.0.0",
            "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered to a consumer group member.",
            "O(log N) with N being the number of messages in the PEL of the consumer group.",
        )
        .tips(&["nondeterministic_output"]),
    CommandDef::new("xautoclaim", -6, f::WRITE | f::FAST, cat::WRITE | cat::STREAM | cat::FAST, xautoclaim_command)
        .keys(KS_RW_DEL)
        .doc(
            "stream",
            "6.2.0",
            "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to a consumer group member.",
            "O(1) if COUNT is small.",
        )
        .tips(&["nondeterministic_output"]),
    CommandDef::new("xinfo", -2, 0, cat::SLOW, super::container_proc)
        .doc("stream", "5.0.0", "A container for stream introspection commands.", "Depends on subcommand.")
        .subs(&[
            CommandDef::new("consumers", 4, f::READONLY, cat::READ | cat::STREAM | cat::SLOW, xinfo_command)
                .keys(KS_XINFO)
                .doc("stream", "5.0.0", "Returns a list of the consumers in a consumer group.", "O(1)")
                .tips(&["nondeterministic_output"]),
            CommandDef::new("groups", 3, f::READONLY, cat::READ | cat::STREAM | cat::SLOW, xinfo_command)
                .keys(KS_XINFO)
                .doc("stream", "5.0.0", "Returns a list of the consumer groups of a stream.", "O(1)"),
            CommandDef::new("help", 2, f::LOADING | f::STALE, cat::STREAM | cat::SLOW, xinfo_command)
                .doc("stream", "5.0.0", "Returns helpful text about the different subcommands.", "O(1)"),
            CommandDef::new("stream", -3, f::READONLY, cat::READ | cat::STREAM | cat::SLOW, xinfo_command)
                .keys(KS_XINFO)
                .doc("stream", "5.0.0", "Returns information about a stream.", "O(1)"),
        ]),
];

const ERR_INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// Upstream's `string2ull`: string2ll when it succeeds (negative values rejected),
/// else strtoull (leading spaces, a sign, leading zeros; a minus wraps).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = parse_i64_strict(s) {
        return if v < 0 { None } else { Some(v as u64) };
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if i >= s.len() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in &s[i..] {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Upstream's `streamGenericParseIDOrReply`. `seq_given`: Some when `ms-*` is allowed;
/// the returned bool tells whether the sequence was given.
fn parse_id(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_star: bool,
) -> Option<(StreamId, bool)> {
    if arg.len() > 127 {
        return None;
    }
    // C string semantics: the argument ends at a NUL.
    let buf = match arg.iter().position(|&b| b == 0) {
        Some(n) => &arg[..n],
        None => arg,
    };
    if strict && (buf == b"-" || buf == b"+") {
        return None;
    }
    if buf == b"-" {
        return Some((StreamId::MIN, true));
    }
    if buf == b"+" {
        return Some((StreamId::MAX, true));
    }
    match buf.iter().position(|&b| b == b'-') {
        Some(d) => {
            let ms = string2ull(&buf[..d])?;
            let rest = &buf[d + 1..];
            if allow_star && rest == b"*" {
                Some((StreamId::new(ms, 0), false))
            } else {
                Some((StreamId::new(ms, string2ull(rest)?), true))
            }
        }
        None => Some((StreamId::new(string2ull(buf)?, missing_seq), true)),
    }
}

/// The IDs `argv[from..]` (XDEL, XACK), replying the error of the first bad one.
fn parse_id_list(c: &mut Client, from: usize) -> Option<Vec<StreamId>> {
    let mut ids = Vec::with_capacity(c.argv.len().saturating_sub(from).min(1024));
    for j in from..c.argv.len() {
        ids.push(parse_strict_or_reply(c, j, 0)?);
    }
    Some(ids)
}

fn parse_strict_or_reply(c: &mut Client, idx: usize, missing_seq: u64) -> Option<StreamId> {
    match parse_id(&c.argv[idx], missing_seq, true, false) {
        Some((id, _)) => Some(id),
        None => {
            c.reply.add_error(ERR_INVALID_ID);
            None
        }
    }
}

fn get_ll_or_reply(c: &mut Client, idx: usize) -> Option<i64> {
    match parse_i64_strict(&c.argv[idx]) {
        Some(v) => Some(v),
        None => {
            c.reply.add_error(ERR_NOT_INTEGER);
            None
        }
    }
}

fn add_id(r: &mut ReplyBuf, id: StreamId) {
    use std::io::Write;
    // At most 20 + 1 + 20 bytes: formatted on the stack.
    let mut buf = [0u8; 48];
    let mut w = &mut buf[..];
    let _ = write!(w, "{}-{}", id.ms, id.seq);
    let n = 48 - w.len();
    r.add_bulk(&buf[..n]);
}

fn add_lp(r: &mut ReplyBuf, e: LpEntry<'_>) {
    match e {
        LpEntry::Int(v) => r.add_bulk_i64(v),
        LpEntry::Str(s) => r.add_bulk(s),
    }
}

/// Replies with the entries of `[start, end]` (at most `count`, 0 = all) as an array.
fn reply_range(
    r: &mut ReplyBuf,
    s: &Stream,
    start: StreamId,
    end: StreamId,
    count: u64,
    rev: bool,
) {
    let mut body = ReplyBuf::new();
    body.resp = r.resp;
    let mut n: u64 = 0;
    s.range(start, end, rev, |id, e| {
        body.add_array_len(2);
        add_id(&mut body, id);
        body.add_array_len(e.len() * 2);
        for i in 0..e.len() {
            let (f, v) = e.pair(i);
            add_lp(&mut body, f);
            add_lp(&mut body, v);
        }
        n += 1;
        count == 0 || n < count
    });
    r.add_array_len(n as usize);
    r.add_raw(&body.buf);
}

struct TrimArgs {
    id: Option<(StreamId, bool)>,
    no_mkstream: bool,
    strategy: TrimStrategy,
    approx: bool,
    limit: i64,
    /// Index of the MAXLEN/MINID threshold in argv (propagation rewrites `~ n`).
    trim_arg: usize,
}

/// Upstream's `streamParseAddOrTrimArgsOrReply`: returns the args and the ID position.
fn parse_add_trim(srv: &Server, c: &mut Client, xadd: bool) -> Option<(TrimArgs, usize)> {
    let mut a = TrimArgs {
        id: None,
        no_mkstream: false,
        strategy: TrimStrategy::None,
        approx: false,
        limit: 0,
        trim_arg: 0,
    };
    let argc = c.argv.len();
    let mut limit_given = false;
    let mut i = 2;
    while i < argc {
        let more = argc - 1 - i;
        let opt = &c.argv[i];
        if xadd && opt.as_slice() == b"*" {
            break;
        } else if (eq_ic(opt, "maxlen") || eq_ic(opt, "minid")) && more > 0 {
            let maxlen = eq_ic(opt, "maxlen");
            if a.strategy != TrimStrategy::None {
                c.reply.add_error(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                );
                return None;
            }
            a.approx = false;
            let next = c.argv[i + 1].as_slice();
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            a.trim_arg = i + 1;
            if maxlen {
                let v = get_ll_or_reply(c, i + 1)?;
                if v < 0 {
                    c.reply.add_error("ERR The MAXLEN argument must be >= 0.");
                    return None;
                }
                a.strategy = TrimStrategy::MaxLen(v as u64);
            } else {
                let id = parse_strict_or_reply(c, i + 1, 0)?;
                a.strategy = TrimStrategy::MinId(id);
            }
            i += 1;
        } else if eq_ic(opt, "limit") && more > 0 {
            let v = get_ll_or_reply(c, i + 1)?;
            if v < 0 {
                c.reply.add_error("ERR The LIMIT argument must be >= 0.");
                return None;
            }
            a.limit = v;
            limit_given = true;
            i += 1;
        } else if xadd && eq_ic(opt, "nomkstream") {
            a.no_mkstream = true;
        } else if xadd {
            match parse_id(&c.argv[i], 0, true, true) {
                Some(x) => a.id = Some(x),
                None => {
                    c.reply.add_error(ERR_INVALID_ID);
                    return None;
                }
            }
            break;
        } else {
            c.reply.add_error(ERR_SYNTAX);
            return None;
        }
        i += 1;
    }
    if a.limit != 0 && a.strategy == TrimStrategy::None {
        c.reply.add_error(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        );
        return None;
    }
    if !xadd && a.strategy == TrimStrategy::None {
        c.reply
            .add_error("ERR syntax error, XTRIM must be called with a trimming strategy");
        return None;
    }
    if limit_given {
        if !a.approx {
            c.reply
                .add_error("ERR syntax error, LIMIT cannot be used without the special ~ option");
            return None;
        }
    } else if a.approx {
        let l = 100i64.saturating_mul(srv.config.stream_node_max_entries);
        a.limit = if l <= 0 { 10000 } else { l.min(1_000_000) };
    } else {
        a.limit = 0;
    }
    Some((a, i))
}

fn xadd_command(srv: &mut Server, c: &mut Client) {
    let Some((args, idpos)) = parse_add_trim(srv, c, true) else {
        return;
    };
    let field_pos = idpos + 1;
    let argc = c.argv.len();
    if argc < field_pos + 2 || (argc - field_pos) % 2 == 1 {
        c.reply.add_error_arity("xadd");
        return;
    }
    if let Some((id, true)) = args.id {
        if id.is_zero() {
            c.reply
                .add_error("ERR The ID specified in XADD must be greater than 0-0");
            return;
        }
    }
    let db = c.db;
    let (max_bytes, max_entries) = (
        srv.config.stream_node_max_bytes,
        srv.config.stream_node_max_entries,
    );
    let now = srv.mstime.max(0) as u64;
    let propagating_flag = propagating(srv);
    match db::lookup_key_write(srv, db, &c.argv[1]) {
        Some(ValueRef::Stream(_)) => {}
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        None => {
            if args.no_mkstream {
                c.reply.add_null();
                return;
            }
            db::db_add(srv, db, &c.argv[1], Value::Stream(Stream::new()));
        }
    }
    let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &c.argv[1]) else {
        return;
    };
    if s.last_id() == StreamId::MAX {
        c.reply.add_error(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        );
        return;
    }
    let id = match s.append(&c.argv[field_pos..], args.id, now, max_bytes, max_entries) {
        Ok(id) => id,
        Err(AppendError::IdTooSmall) => {
            c.reply.add_error(
                "ERR The ID specified in XADD is equal or smaller than the target stream top item",
            );
            return;
        }
        Err(AppendError::TooLarge) => {
            c.reply.add_error("ERR Elements are too large to be stored");
            return;
        }
    };
    let trimmed = s.trim(args.strategy, args.approx, args.limit);
    // Propagated with the ID it got (`*` / `ms-*` resolved) and an exact trim.
    let rewrite_id = !matches!(args.id, Some((_, true)));
    if (rewrite_id || args.approx) && propagating_flag {
        let mut argv = c.argv.clone();
        if rewrite_id {
            argv[idpos] = id_bytes(id);
        }
        rewrite_approx_trim(&mut argv, &args, s);
        c.propagate_argv = Some(argv);
    }
    add_id(&mut c.reply, id);
    let key = c.argv[1].clone();
    db::signal_modified_key(srv, db, &key);
    notify_keyspace_event(srv, NOTIFY_STREAM, "xadd", &key, db);
    srv.dirty += 1;
    if trimmed > 0 {
        notify_keyspace_event(srv, NOTIFY_STREAM, "xtrim", &key, db);
    }
    blocked::signal_key_as_ready(srv, db, &key, ObjType::Stream);
}

/// `<ms>-<seq>`.
fn id_bytes(id: StreamId) -> Vec<u8> {
    format!("{}-{}", id.ms, id.seq).into_bytes()
}

/// Whether writes are propagated (AOF on): rewrites are built only then.
#[inline]
fn propagating(srv: &Server) -> bool {
    crate::propagate::should_propagate(srv, crate::propagate::PROPAGATE_ALL)
}

/// An approximate trim (`~ n`) propagates as the exact trim it did: `= <length after>`
/// for MAXLEN, `= <first ID after>` for MINID (upstream's streamRewriteApproxSpecifier
/// and streamRewriteTrimArgument), so replicas end with the same entries.
fn rewrite_approx_trim(argv: &mut [Vec<u8>], args: &TrimArgs, s: &Stream) {
    if !args.approx || args.trim_arg < 1 {
        return;
    }
    if let Some(a) = argv.get_mut(args.trim_arg - 1) {
        *a = b"=".to_vec();
    }
    let v = match args.strategy {
        TrimStrategy::MaxLen(_) => s.len().to_string().into_bytes(),
        _ => id_bytes(s.first_id_with_tombstones().unwrap_or(StreamId::MAX)),
    };
    if let Some(a) = argv.get_mut(args.trim_arg) {
        *a = v;
    }
}

/// How a change to a group's PEL is propagated (upstream's streamPropagateXCLAIM): an
/// idempotent `XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID LASTID
/// last` (for a deleted entry, with the NACK as it was, which removes it on replay).
fn xclaim_argv(
    key: &[u8],
    group: &[u8],
    id: StreamId,
    nack: &PendingEntry,
    last_id: StreamId,
) -> Vec<Vec<u8>> {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        nack.consumer.clone(),
        b"0".to_vec(),
        id_bytes(id),
        b"TIME".to_vec(),
        nack.delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        nack.delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        id_bytes(last_id),
    ]
}

/// `XGROUP SETID key group last-id ENTRIESREAD n` (upstream's streamPropagateGroupID).
fn setid_argv(key: &[u8], group: &[u8], g: &ConsumerGroup) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group.to_vec(),
        id_bytes(g.last_id),
        b"ENTRIESREAD".to_vec(),
        g.entries_read.to_string().into_bytes(),
    ]
}

/// Queues the operations a consumer-group command built, in order.
fn propagate_ops(srv: &mut Server, db: usize, ops: Vec<Vec<Vec<u8>>>) {
    for argv in ops {
        crate::propagate::also_propagate(srv, db, argv, crate::propagate::PROPAGATE_ALL);
    }
}

fn xlen_command(srv: &mut Server, c: &mut Client) {
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_long(0),
        Some(ValueRef::Stream(s)) => c.reply.add_long(s.len() as i64),
        Some(_) => c.reply.add_error(ERR_WRONGTYPE),
    }
}

/// Upstream's `streamParseIntervalIDOrReply`.
fn parse_interval(c: &mut Client, idx: usize, missing_seq: u64) -> Option<(StreamId, bool)> {
    let a = &c.argv[idx];
    let exclude = a.len() > 1 && a[0] == b'(';
    let r = if exclude {
        parse_id(&a[1..], missing_seq, true, false)
    } else {
        parse_id(a, missing_seq, false, false)
    };
    match r {
        Some((id, _)) => Some((id, exclude)),
        None => {
            c.reply.add_error(ERR_INVALID_ID);
            None
        }
    }
}

fn xrange_generic(srv: &mut Server, c: &mut Client, rev: bool) {
    let (si, ei) = if rev { (3, 2) } else { (2, 3) };
    let Some((mut start, sx)) = parse_interval(c, si, 0) else {
        return;
    };
    if sx {
        match start.incr() {
            Some(v) => start = v,
            None => {
                c.reply.add_error("ERR invalid start ID for the interval");
                return;
            }
        }
    }
    let Some((mut end, ex)) = parse_interval(c, ei, u64::MAX) else {
        return;
    };
    if ex {
        match end.decr() {
            Some(v) => end = v,
            None => {
                c.reply.add_error("ERR invalid end ID for the interval");
                return;
            }
        }
    }
    let mut count: i64 = -1;
    let mut j = 4;
    while j < c.argv.len() {
        if eq_ic(&c.argv[j], "count") && j + 1 < c.argv.len() {
            let Some(v) = get_ll_or_reply(c, j + 1) else {
                return;
            };
            count = v.max(0);
            j += 1;
        } else {
            c.reply.add_error(ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => c.reply.add_array_len(0),
        Some(ValueRef::Stream(s)) => {
            if count == 0 {
                c.reply.add_null_array();
            } else {
                let n = if count < 0 { 0 } else { count as u64 };
                reply_range(&mut c.reply, s, start, end, n, rev);
            }
        }
        Some(_) => c.reply.add_error(ERR_WRONGTYPE),
    }
}

fn xrange_command(srv: &mut Server, c: &mut Client) {
    xrange_generic(srv, c, false);
}

fn xrevrange_command(srv: &mut Server, c: &mut Client) {
    xrange_generic(srv, c, true);
}

fn xdel_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => {
            c.reply.add_long(0);
            return;
        }
        Some(ValueRef::Stream(_)) => {}
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    }
    let Some(ids) = parse_id_list(c, 2) else {
        return;
    };
    let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &c.argv[1]) else {
        return;
    };
    let deleted = s.delete_ids(&ids);
    if deleted > 0 {
        let key = c.argv[1].clone();
        db::signal_modified_key(srv, db, &key);
        notify_keyspace_event(srv, NOTIFY_STREAM, "xdel", &key, db);
        srv.dirty += deleted;
    }
    c.reply.add_long(deleted as i64);
}

fn xtrim_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let Some((args, _)) = parse_add_trim(srv, c, false) else {
        return;
    };
    let propagating_flag = propagating(srv);
    match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => {
            c.reply.add_long(0);
            return;
        }
        Some(ValueRef::Stream(_)) => {}
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    }
    let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &c.argv[1]) else {
        return;
    };
    let deleted = s.trim(args.strategy, args.approx, args.limit);
    if deleted > 0 && args.approx && propagating_flag {
        let mut argv = c.argv.clone();
        rewrite_approx_trim(&mut argv, &args, s);
        c.propagate_argv = Some(argv);
    }
    if deleted > 0 {
        let key = c.argv[1].clone();
        notify_keyspace_event(srv, NOTIFY_STREAM, "xtrim", &key, db);
        db::signal_modified_key(srv, db, &key);
        srv.dirty += deleted as u64;
    }
    c.reply.add_long(deleted);
}

fn xsetid_command(srv: &mut Server, c: &mut Client) {
    let Some(id) = parse_strict_or_reply(c, 2, 0) else {
        return;
    };
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < c.argv.len() {
        let more = c.argv.len() - 1 - i;
        if eq_ic(&c.argv[i], "entriesadded") && more > 0 {
            let Some(v) = get_ll_or_reply(c, i + 1) else {
                return;
            };
            if v < 0 {
                c.reply.add_error("ERR entries_added must be positive");
                return;
            }
            entries_added = v;
            i += 2;
        } else if eq_ic(&c.argv[i], "maxdeletedid") && more > 0 {
            let Some(v) = parse_strict_or_reply(c, i + 1, 0) else {
                return;
            };
            if id < v {
                c.reply.add_error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                );
                return;
            }
            max_xdel = v;
            i += 2;
        } else {
            c.reply.add_error(ERR_SYNTAX);
            return;
        }
    }
    let db = c.db;
    match db::lookup_key_write(srv, db, &c.argv[1]) {
        None => {
            c.reply.add_error(ERR_NO_SUCH_KEY);
            return;
        }
        Some(ValueRef::Stream(_)) => {}
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    }
    let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &c.argv[1]) else {
        return;
    };
    if id < s.max_deleted_entry_id() {
        c.reply.add_error(
            "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id",
        );
        return;
    }
    if !s.is_empty() {
        let maxid = s.edge_id(false).unwrap_or(StreamId::MIN);
        if id < maxid {
            c.reply.add_error(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
            return;
        }
        if entries_added != -1 && s.len() > entries_added as u64 {
            c.reply.add_error(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
            return;
        }
    }
    s.set_last_id(id);
    if entries_added != -1 {
        s.set_entries_added(entries_added as u64);
    }
    if !max_xdel.is_zero() {
        s.set_max_deleted_entry_id(max_xdel);
    }
    c.reply.add_ok();
    let key = c.argv[1].clone();
    db::signal_modified_key(srv, db, &key);
    notify_keyspace_event(srv, NOTIFY_STREAM, "xsetid", &key, db);
    srv.dirty += 1;
}

/// The options of XREAD and XREADGROUP (upstream's one `xreadCommand` parses both).
struct XreadArgs {
    /// Absolute ms; 0 = block forever; -1 = no BLOCK.
    timeout: i64,
    count: i64,
    /// Index of the first key after STREAMS.
    streams_arg: usize,
    nstreams: usize,
    /// XREADGROUP's GROUP group consumer.
    group: Option<(Vec<u8>, Vec<u8>)>,
    noack: bool,
}

/// Parses XREAD (`xreadgroup` false) or XREADGROUP options, replying the error and
/// returning None when invalid.
fn parse_xread_args(srv: &Server, c: &mut Client, xreadgroup: bool) -> Option<XreadArgs> {
    let argc = c.argv.len();
    let mut a = XreadArgs {
        timeout: -1,
        count: 0,
        streams_arg: 0,
        nstreams: 0,
        group: None,
        noack: false,
    };
    let mut i = 1;
    while i < argc {
        let more = argc - i - 1;
        let o = &c.argv[i];
        if eq_ic(o, "block") && more > 0 {
            i += 1;
            let Some(t) = parse_i64_strict(&c.argv[i]) else {
                c.reply
                    .add_error("ERR timeout is not an integer or out of range");
                return None;
            };
            if t < 0 {
                c.reply.add_error("ERR timeout is negative");
                return None;
            }
            a.timeout = if t > 0 {
                match t.checked_add(srv.mstime) {
                    Some(v) => v,
                    None => {
                        c.reply.add_error("ERR timeout is out of range");
                        return None;
                    }
                }
            } else {
                0
            };
        } else if eq_ic(o, "count") && more > 0 {
            i += 1;
            a.count = get_ll_or_reply(c, i)?.max(0);
        } else if eq_ic(o, "streams") && more > 0 {
            a.streams_arg = i + 1;
            let n = argc - a.streams_arg;
            if !n.is_multiple_of(2) {
                c.reply.add_error(if xreadgroup {
                    "ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified."
                } else {
                    "ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified."
                });
                return None;
            }
            a.nstreams = n / 2;
            break;
        } else if eq_ic(o, "group") && more >= 2 {
            if !xreadgroup {
                c.reply.add_error(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                );
                return None;
            }
            a.group = Some((c.argv[i + 1].clone(), c.argv[i + 2].clone()));
            i += 2;
        } else if eq_ic(o, "noack") {
            if !xreadgroup {
                c.reply.add_error(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                );
                return None;
            }
            a.noack = true;
        } else {
            c.reply.add_error(ERR_SYNTAX);
            return None;
        }
        i += 1;
    }
    if a.streams_arg == 0 {
        c.reply.add_error(ERR_SYNTAX);
        return None;
    }
    Some(a)
}

/// The reply of XREAD/XREADGROUP that served `served` streams: a map (RESP3) or array of
/// `[key, entries]` pairs, whose elements were built in `body`.
fn add_served_streams(c: &mut Client, served: usize, body: &ReplyBuf) {
    if c.reply.resp == 2 {
        c.reply.add_array_len(served);
    } else {
        c.reply.add_map_len(served);
    }
    c.reply.add_raw(&body.buf);
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key... id...
fn xread_command(srv: &mut Server, c: &mut Client) {
    let Some(XreadArgs {
        timeout,
        count,
        streams_arg,
        nstreams,
        ..
    }) = parse_xread_args(srv, c, false)
    else {
        return;
    };
    let db = c.db;
    let mut ids = Vec::with_capacity(nstreams.min(1024));
    for n in 0..nstreams {
        let key_idx = streams_arg + n;
        let id_idx = streams_arg + nstreams + n;
        let last = match db::lookup_key_read(srv, db, &c.argv[key_idx]) {
            None => None,
            Some(ValueRef::Stream(s)) => Some(s.last_id()),
            Some(_) => {
                c.reply.add_error(ERR_WRONGTYPE);
                return;
            }
        };
        let a = c.argv[id_idx].as_slice();
        if a == b"$" {
            ids.push(last.unwrap_or(StreamId::MIN));
            continue;
        }
        if a == b"+" {
            ids.push(last.and_then(|l| l.decr()).unwrap_or(StreamId::MIN));
            continue;
        }
        if a == b">" {
            c.reply.add_error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
            return;
        }
        let Some(id) = parse_strict_or_reply(c, id_idx, 0) else {
            return;
        };
        ids.push(id);
    }
    let mut body = ReplyBuf::new();
    body.resp = c.reply.resp;
    let mut served = 0;
    for (n, gt) in ids.iter().enumerate() {
        let key = &c.argv[streams_arg + n];
        let Some(ValueRef::Stream(s)) = db::lookup_key_read(srv, db, key) else {
            continue;
        };
        if s.is_empty() {
            continue;
        }
        let maxid = s.edge_id(false).unwrap_or(StreamId::MIN);
        if maxid <= *gt {
            continue;
        }
        served += 1;
        let start = gt.incr().unwrap_or(StreamId::MAX);
        if body.resp == 2 {
            body.add_array_len(2);
        }
        body.add_bulk(key);
        reply_range(&mut body, s, start, StreamId::MAX, count as u64, false);
    }
    if served > 0 {
        add_served_streams(c, served, &body);
        return;
    }
    if timeout != -1 {
        if blocked::blocking_denied(c) {
            c.reply.add_null_array();
            return;
        }
        // `$` becomes the ID resolved now, so that the re-execution on new data does
        // not resolve it again (and block forever).
        for (n, id) in ids.iter().enumerate() {
            let idx = streams_arg + nstreams + n;
            if c.argv[idx].as_slice() == b"$" {
                c.argv[idx] = id.to_bytes();
            }
        }
        let keys: Vec<Vec<u8>> = c.argv[streams_arg..streams_arg + nstreams].to_vec();
        blocked::block_for_keys(srv, c, BlockType::Stream, &keys, timeout, false);
        return;
    }
    c.reply.add_null_array();
}

// ---------------------------------------------------------------------------------------
// Consumer groups
// ---------------------------------------------------------------------------------------

const XGROUP_SUB: &str = "O(1)";

const KS_XINFO: &[KeySpec] = &[KeySpec::range(k::RO | k::ACCESS, 2, 0, 1)];
const KS_XGROUP_INS: &[KeySpec] = &[KeySpec::range(k::RW | k::INSERT, 2, 0, 1)];
const KS_XGROUP_DEL: &[KeySpec] = &[KeySpec::range(k::RW | k::DELETE, 2, 0, 1)];
const KS_XGROUP_UPD: &[KeySpec] = &[KeySpec::range(k::RW | k::UPDATE, 2, 0, 1)];
const KS_XREADGROUP: &[KeySpec] = &[KeySpec {
    notes: "",
    flags: k::RO | k::ACCESS,
    begin: BeginSearch::Keyword {
        keyword: "STREAMS",
        startfrom: 4,
    },
    find: FindKeys::Range {
        lastkey: -1,
        keystep: 1,
        limit: 2,
    },
}];

fn subcommand_syntax_error(c: &mut Client) {
    let sub = crate::reply::sanitize(&c.argv[1], 128);
    let cmd = String::from_utf8_lossy(&c.argv[0]).to_ascii_uppercase();
    c.reply.add_error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {cmd} HELP."
    ));
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Creates a consumer if missing (upstream's `streamCreateConsumer` with SCC_DEFAULT):
/// true when created.
fn create_consumer(g: &mut ConsumerGroup, name: &[u8], now: i64) -> bool {
    if g.consumers.contains_key(name) {
        return false;
    }
    g.consumers.insert(
        name.to_vec(),
        Consumer {
            seen_time: now,
            active_time: -1,
            pel: Default::default(),
        },
    );
    true
}

fn xgroup_command(srv: &mut Server, c: &mut Client) {
    let argc = c.argv.len();
    let sub = c.argv[1].to_ascii_lowercase();
    let mut mkstream = false;
    let mut entries_read: i64 = -1;
    let db = c.db;
    let mut exists = false;
    let mut has_group = false;
    if argc >= 4 {
        let create = sub == b"create";
        let setid = sub == b"setid";
        let mut i = 5;
        while i < argc {
            if create && eq_ic(&c.argv[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if (create || setid) && eq_ic(&c.argv[i], "entriesread") && i + 1 < argc {
                let Some(v) = get_ll_or_reply(c, i + 1) else {
                    return;
                };
                if v < 0 && v != -1 {
                    c.reply
                        .add_error("ERR value for ENTRIESREAD must be positive or -1");
                    return;
                }
                entries_read = v;
                i += 2;
            } else {
                subcommand_syntax_error(c);
                return;
            }
        }
        match db::lookup_key_write(srv, db, &c.argv[2]) {
            None => {}
            Some(ValueRef::Stream(s)) => {
                exists = true;
                has_group = s.groups().is_some_and(|g| g.contains_key(&c.argv[3]));
            }
            Some(_) => {
                c.reply.add_error(ERR_WRONGTYPE);
                return;
            }
        }
    }
    if argc >= 4 && !mkstream {
        if !exists {
            c.reply.add_error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
            return;
        }
        if !has_group && (sub == b"setid" || sub == b"createconsumer" || sub == b"delconsumer") {
            let e = format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                lossy(&c.argv[3]),
                lossy(&c.argv[2])
            );
            c.reply.add_error(&e);
            return;
        }
    }
    let key = c.argv.get(2).cloned().unwrap_or_default();
    let now = srv.mstime;
    if argc == 2 && sub == b"help" {
        c.reply.add_help(
            "XGROUP",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        );
    } else if sub == b"create" && (5..=8).contains(&argc) {
        let id = if c.argv[4].as_slice() == b"$" {
            match db::lookup_key_write(srv, db, &key) {
                Some(ValueRef::Stream(s)) => s.last_id(),
                _ => StreamId::MIN,
            }
        } else {
            let Some(id) = parse_strict_or_reply(c, 4, 0) else {
                return;
            };
            id
        };
        if !exists {
            db::db_add(srv, db, &key, Value::Stream(Stream::new()));
            db::signal_modified_key(srv, db, &key);
        }
        let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) else {
            return;
        };
        let groups = s.groups_mut();
        if groups.contains_key(&c.argv[3]) {
            c.reply
                .add_error("BUSYGROUP Consumer Group name already exists");
            return;
        }
        groups.insert(
            c.argv[3].clone(),
            ConsumerGroup {
                last_id: id,
                entries_read,
                ..Default::default()
            },
        );
        c.reply.add_ok();
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-create", &key, db);
    } else if sub == b"setid" && (argc == 5 || argc == 7) {
        let last = match db::lookup_key_write(srv, db, &key) {
            Some(ValueRef::Stream(s)) => s.last_id(),
            _ => return,
        };
        let id = if c.argv[4].as_slice() == b"$" {
            last
        } else {
            match parse_id(&c.argv[4], 0, false, false) {
                Some((id, _)) => id,
                None => {
                    c.reply.add_error(ERR_INVALID_ID);
                    return;
                }
            }
        };
        let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) else {
            return;
        };
        if let Some(g) = s.groups_mut().get_mut(&c.argv[3]) {
            g.last_id = id;
            g.entries_read = entries_read;
        }
        c.reply.add_ok();
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-setid", &key, db);
    } else if sub == b"destroy" && argc == 4 {
        if !has_group {
            c.reply.add_long(0);
            return;
        }
        if let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) {
            s.groups_mut().remove(&c.argv[3]);
        }
        c.reply.add_long(1);
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-destroy", &key, db);
        // Blocked XREADGROUP clients get -NOGROUP when they run again.
        blocked::signal_key_as_ready(srv, db, &key, ObjType::Stream);
    } else if sub == b"createconsumer" && argc == 5 {
        let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) else {
            return;
        };
        let created = s
            .groups_mut()
            .get_mut(&c.argv[3])
            .is_some_and(|g| create_consumer(g, &c.argv[4], now));
        if created {
            srv.dirty += 1;
            notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-createconsumer", &key, db);
        }
        c.reply.add_long(i64::from(created));
    } else if sub == b"delconsumer" && argc == 5 {
        let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) else {
            return;
        };
        let mut pending = None;
        if let Some(g) = s.groups_mut().get_mut(&c.argv[3]) {
            if let Some(cons) = g.consumers.remove(&c.argv[4]) {
                for id in &cons.pel {
                    g.pel.remove(id);
                }
                pending = Some(cons.pel.len());
            }
        }
        if let Some(n) = pending {
            srv.dirty += 1;
            notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-delconsumer", &key, db);
            c.reply.add_long(n as i64);
        } else {
            c.reply.add_long(0);
        }
    } else {
        subcommand_syntax_error(c);
    }
}

fn xack_command(srv: &mut Server, c: &mut Client) {
    let db = c.db;
    let found = match db::lookup_key_read(srv, db, &c.argv[1]) {
        None => false,
        Some(ValueRef::Stream(s)) => s.groups().is_some_and(|g| g.contains_key(&c.argv[2])),
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    };
    if !found {
        c.reply.add_long(0);
        return;
    }
    let Some(ids) = parse_id_list(c, 3) else {
        return;
    };
    let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &c.argv[1]) else {
        return;
    };
    let mut acked = 0u64;
    if let Some(g) = s.groups_mut().get_mut(&c.argv[2]) {
        for id in &ids {
            if let Some(nack) = g.pel.remove(id) {
                if let Some(cons) = g.consumers.get_mut(&nack.consumer) {
                    cons.pel.remove(id);
                }
                acked += 1;
            }
        }
    }
    srv.dirty += acked;
    c.reply.add_long(acked as i64);
}

/// XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id...
fn xreadgroup_command(srv: &mut Server, c: &mut Client) {
    let Some(XreadArgs {
        timeout,
        count,
        streams_arg,
        nstreams,
        group,
        noack,
    }) = parse_xread_args(srv, c, true)
    else {
        return;
    };
    let Some((gname, cname)) = group else {
        c.reply.add_error("ERR Missing GROUP option for XREADGROUP");
        return;
    };
    let db = c.db;
    // None = `>`.
    let mut ids: Vec<Option<StreamId>> = Vec::with_capacity(nstreams.min(1024));
    for n in 0..nstreams {
        let key_idx = streams_arg + n;
        let id_idx = streams_arg + nstreams + n;
        let ok = match db::lookup_key_read(srv, db, &c.argv[key_idx]) {
            None => false,
            Some(ValueRef::Stream(s)) => s.groups().is_some_and(|g| g.contains_key(&gname)),
            Some(_) => {
                c.reply.add_error(ERR_WRONGTYPE);
                return;
            }
        };
        if !ok {
            let e = format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                lossy(&c.argv[key_idx]),
                lossy(&gname)
            );
            c.reply.add_error(&e);
            return;
        }
        let a = c.argv[id_idx].as_slice();
        if a == b"$" {
            c.reply.add_error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            return;
        }
        if a == b">" {
            ids.push(None);
            continue;
        }
        let Some(id) = parse_strict_or_reply(c, id_idx, 0) else {
            return;
        };
        ids.push(Some(id));
    }
    let now = srv.mstime;
    let mut body = ReplyBuf::new();
    body.resp = c.reply.resp;
    let mut served = 0;
    // Propagated as its effects (XGROUP CREATECONSUMER for a NOACK reader, an XCLAIM per
    // delivered entry, XGROUP SETID when the group's last ID moved), never as itself.
    let prop = propagating(srv);
    let mut ops: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut claims: Vec<(StreamId, StreamId)> = Vec::new();
    for (n, gt) in ids.iter().enumerate() {
        let key = c.argv[streams_arg + n].clone();
        let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) else {
            continue;
        };
        let Some(mut g) = s.groups_mut().remove(&gname) else {
            continue;
        };
        let (serve, start, history) = match gt {
            Some(id) => (true, *id, true),
            None => {
                let maxid = s.edge_id(false);
                match maxid {
                    Some(m) if m > g.last_id => (true, g.last_id, false),
                    _ => (false, g.last_id, false),
                }
            }
        };
        let created = create_consumer(&mut g, &cname, now);
        if let Some(cons) = g.consumers.get_mut(&cname) {
            cons.seen_time = now;
        }
        if prop && created && noack {
            ops.push(vec![
                b"XGROUP".to_vec(),
                b"CREATECONSUMER".to_vec(),
                key.clone(),
                gname.clone(),
                cname.clone(),
            ]);
        }
        let last_before = g.last_id;
        if serve {
            served += 1;
            if body.resp == 2 {
                body.add_array_len(2);
            }
            body.add_bulk(&key);
            let start = start.incr().unwrap_or(StreamId::MAX);
            if history {
                reply_history(&mut body, s, &mut g, &cname, start, count as u64, now);
            } else {
                claims.clear();
                reply_new(
                    &mut body,
                    s,
                    &mut g,
                    &cname,
                    start,
                    count as u64,
                    noack,
                    now,
                    prop.then_some(&mut claims),
                );
                for &(id, last) in &claims {
                    if let Some(nack) = g.pel.get(&id) {
                        ops.push(xclaim_argv(&key, &gname, id, nack, last));
                    }
                }
            }
        }
        if prop && g.last_id != last_before {
            ops.push(setid_argv(&key, &gname, &g));
        }
        s.groups_mut().insert(gname.clone(), g);
        if created {
            srv.dirty += 1;
            notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-createconsumer", &key, db);
        }
        if serve {
            srv.dirty += 1;
        }
    }
    if prop {
        c.flags |= crate::client::flags::PREVENT_PROP;
        propagate_ops(srv, db, ops);
    }
    if served > 0 {
        add_served_streams(c, served, &body);
        return;
    }
    if timeout != -1 {
        if blocked::blocking_denied(c) {
            c.reply.add_null_array();
            return;
        }
        let keys: Vec<Vec<u8>> = c.argv[streams_arg..streams_arg + nstreams].to_vec();
        blocked::block_for_keys(srv, c, BlockType::Stream, &keys, timeout, true);
        return;
    }
    c.reply.add_null_array();
}

fn add_entry(r: &mut ReplyBuf, id: StreamId, e: &crate::types::stream::EntryView<'_>) {
    r.add_array_len(2);
    add_id(r, id);
    r.add_array_len(e.len() * 2);
    for i in 0..e.len() {
        let (f, v) = e.pair(i);
        add_lp(r, f);
        add_lp(r, v);
    }
}

/// Serves a consumer's own pending entries from `start` (upstream's
/// `streamReplyWithRangeFromConsumerPEL`).
fn reply_history(
    r: &mut ReplyBuf,
    s: &Stream,
    g: &mut ConsumerGroup,
    cname: &[u8],
    start: StreamId,
    count: u64,
    now: i64,
) {
    let Some(cons) = g.consumers.get(cname) else {
        r.add_array_len(0);
        return;
    };
    let ids: Vec<StreamId> = cons
        .pel
        .range(start..)
        .take(if count == 0 {
            usize::MAX
        } else {
            count as usize
        })
        .copied()
        .collect();
    r.add_array_len(ids.len());
    for id in ids {
        let mut found = false;
        s.range(id, id, false, |id, e| {
            add_entry(r, id, &e);
            found = true;
            false
        });
        if found {
            if let Some(nack) = g.pel.get_mut(&id) {
                nack.delivery_time = now;
                nack.delivery_count += 1;
            }
        } else {
            r.add_array_len(2);
            add_id(r, id);
            r.add_null_array();
        }
    }
}

/// Serves new entries to a group's consumer, moving the group's last ID and filling the
/// PELs (upstream's `streamReplyWithRange` with a group).
#[allow(clippy::too_many_arguments)]
fn reply_new(
    r: &mut ReplyBuf,
    s: &Stream,
    g: &mut ConsumerGroup,
    cname: &[u8],
    start: StreamId,
    count: u64,
    noack: bool,
    now: i64,
    mut claims: Option<&mut Vec<(StreamId, StreamId)>>,
) {
    let mut ids = Vec::new();
    let mut body = ReplyBuf::new();
    body.resp = r.resp;
    s.range(start, StreamId::MAX, false, |id, e| {
        add_entry(&mut body, id, &e);
        ids.push(id);
        count == 0 || (ids.len() as u64) < count
    });
    for &id in &ids {
        if id > g.last_id {
            if g.entries_read != -1
                && g.last_id >= s.first_id()
                && !s.range_has_tombstones(g.last_id, StreamId::MAX)
            {
                g.entries_read += 1;
            } else if s.entries_added() > 0 {
                g.entries_read = s.estimate_distance_from_first_ever_entry(id);
            }
            g.last_id = id;
        }
        if !noack {
            if let Some(old) = g.pel.get(&id).map(|n| n.consumer.clone()) {
                if let Some(oc) = g.consumers.get_mut(&old) {
                    oc.pel.remove(&id);
                }
            }
            g.pel.insert(
                id,
                PendingEntry {
                    delivery_time: now,
                    delivery_count: 1,
                    consumer: cname.to_vec(),
                },
            );
            if let Some(cons) = g.consumers.get_mut(cname) {
                cons.pel.insert(id);
                cons.active_time = now;
            }
            // The entry and the group's last ID at this point, for its XCLAIM.
            if let Some(cl) = claims.as_mut() {
                cl.push((id, g.last_id));
            }
        }
    }
    r.add_array_len(ids.len());
    r.add_raw(&body.buf);
}

/// XPENDING key group [[IDLE ms] start end count [consumer]]
fn xpending_command(srv: &mut Server, c: &mut Client) {
    let argc = c.argv.len();
    let justinfo = argc == 3;
    if argc != 3 && !(6..=9).contains(&argc) {
        c.reply.add_error(ERR_SYNTAX);
        return;
    }
    let mut minidle = 0i64;
    let mut count = 0i64;
    let mut start = StreamId::MIN;
    let mut end = StreamId::MAX;
    let mut consumer: Option<Vec<u8>> = None;
    if argc >= 6 {
        let mut si = 3;
        if eq_ic(&c.argv[3], "idle") {
            let Some(v) = get_ll_or_reply(c, 4) else {
                return;
            };
            minidle = v;
            if argc < 8 {
                c.reply.add_error(ERR_SYNTAX);
                return;
            }
            si += 2;
        }
        let Some(v) = get_ll_or_reply(c, si + 2) else {
            return;
        };
        count = v.max(0);
        let Some((s0, sx)) = parse_interval(c, si, 0) else {
            return;
        };
        start = s0;
        if sx {
            match start.incr() {
                Some(v) => start = v,
                None => {
                    c.reply.add_error("ERR invalid start ID for the interval");
                    return;
                }
            }
        }
        let Some((e0, ex)) = parse_interval(c, si + 1, u64::MAX) else {
            return;
        };
        end = e0;
        if ex {
            match end.decr() {
                Some(v) => end = v,
                None => {
                    c.reply.add_error("ERR invalid end ID for the interval");
                    return;
                }
            }
        }
        if si + 3 < argc {
            consumer = Some(c.argv[si + 3].clone());
        }
    }
    let db = c.db;
    let now = srv.mstime;
    let s = match db::lookup_key_read(srv, db, &c.argv[1]) {
        Some(ValueRef::Stream(s)) => Some(s),
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
        None => None,
    };
    let Some(g) = s.and_then(|s| s.groups()).and_then(|g| g.get(&c.argv[2])) else {
        let e = format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            lossy(&c.argv[1]),
            lossy(&c.argv[2])
        );
        c.reply.add_error(&e);
        return;
    };
    let r = &mut c.reply;
    if justinfo {
        r.add_array_len(4);
        r.add_long(g.pel.len() as i64);
        match (g.pel.keys().next(), g.pel.keys().next_back()) {
            (Some(&a), Some(&b)) => {
                add_id(r, a);
                add_id(r, b);
                let with: Vec<_> = g
                    .consumers
                    .iter()
                    .filter(|(_, v)| !v.pel.is_empty())
                    .collect();
                r.add_array_len(with.len());
                for (name, cons) in with {
                    r.add_array_len(2);
                    r.add_bulk(name);
                    r.add_bulk_i64(cons.pel.len() as i64);
                }
            }
            _ => {
                r.add_null();
                r.add_null();
                r.add_null_array();
            }
        }
        return;
    }
    let idle_ok = |nack: &PendingEntry| minidle == 0 || now - nack.delivery_time >= minidle;
    let cap = count.max(0) as usize;
    let mut out: Vec<(StreamId, &PendingEntry)> = Vec::new();
    match &consumer {
        Some(cn) => {
            let Some(cons) = g.consumers.get(cn) else {
                r.add_array_len(0);
                return;
            };
            if start <= end {
                for id in cons.pel.range(start..=end) {
                    if out.len() >= cap {
                        break;
                    }
                    if let Some(nack) = g.pel.get(id).filter(|n| idle_ok(n)) {
                        out.push((*id, nack));
                    }
                }
            }
        }
        None => {
            if start <= end {
                for (id, nack) in g.pel.range(start..=end) {
                    if out.len() >= cap {
                        break;
                    }
                    if idle_ok(nack) {
                        out.push((*id, nack));
                    }
                }
            }
        }
    }
    r.add_array_len(out.len());
    for (id, nack) in out {
        r.add_array_len(4);
        add_id(r, id);
        r.add_bulk(&nack.consumer);
        r.add_long((now - nack.delivery_time).max(0));
        r.add_long(nack.delivery_count as i64);
    }
}

fn nogroup_error(c: &mut Client) {
    let e = format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        lossy(&c.argv[1]),
        lossy(&c.argv[2])
    );
    c.reply.add_error(&e);
}

/// Whether the key holds a stream with the group; None after replying WRONGTYPE.
fn has_group(srv: &mut Server, c: &mut Client) -> Option<bool> {
    match db::lookup_key_read(srv, c.db, &c.argv[1]) {
        None => Some(false),
        Some(ValueRef::Stream(s)) => Some(s.groups().is_some_and(|g| g.contains_key(&c.argv[2]))),
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            None
        }
    }
}

/// Moves a pending entry to `cname` (creating it in the PEL when missing) and stamps it.
fn claim_nack(
    g: &mut ConsumerGroup,
    id: StreamId,
    cname: &[u8],
    delivery_time: i64,
    retrycount: i64,
    justid: bool,
) {
    let old = g.pel.get(&id).map(|n| n.consumer.clone());
    if let Some(old) = &old {
        if old.as_slice() != cname {
            if let Some(oc) = g.consumers.get_mut(old) {
                oc.pel.remove(&id);
            }
        }
    }
    let nack = g.pel.entry(id).or_insert(PendingEntry {
        delivery_time,
        delivery_count: 1,
        consumer: cname.to_vec(),
    });
    nack.delivery_time = delivery_time;
    if retrycount >= 0 {
        nack.delivery_count = retrycount as u64;
    } else if !justid {
        nack.delivery_count += 1;
    }
    nack.consumer = cname.to_vec();
    if let Some(cons) = g.consumers.get_mut(cname) {
        cons.pel.insert(id);
    }
}

fn add_entry_by_id(r: &mut ReplyBuf, s: &Stream, id: StreamId) {
    s.range(id, id, false, |id, e| {
        add_entry(r, id, &e);
        false
    });
}

/// XCLAIM key group consumer min-idle-time id... [IDLE ms] [TIME ms] [RETRYCOUNT n]
/// [FORCE] [JUSTID] [LASTID id]
fn xclaim_command(srv: &mut Server, c: &mut Client) {
    let Some(found) = has_group(srv, c) else {
        return;
    };
    if !found {
        nogroup_error(c);
        return;
    }
    let Some(minidle) = parse_i64_strict(&c.argv[4]) else {
        c.reply
            .add_error("ERR Invalid min-idle-time argument for XCLAIM");
        return;
    };
    let minidle = minidle.max(0);
    let argc = c.argv.len();
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argc {
        match parse_id(&c.argv[j], 0, true, false) {
            Some((id, _)) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let now = srv.mstime;
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < argc {
        let more = argc - 1 - j;
        let opt = &c.argv[j];
        if eq_ic(opt, "force") {
            force = true;
        } else if eq_ic(opt, "justid") {
            justid = true;
        } else if (eq_ic(opt, "idle") || eq_ic(opt, "time") || eq_ic(opt, "retrycount")) && more > 0
        {
            let which = if eq_ic(opt, "idle") {
                "IDLE"
            } else if eq_ic(opt, "time") {
                "TIME"
            } else {
                "RETRYCOUNT"
            };
            j += 1;
            let Some(v) = parse_i64_strict(&c.argv[j]) else {
                c.reply
                    .add_error(&format!("ERR Invalid {which} option argument for XCLAIM"));
                return;
            };
            match which {
                "IDLE" => deliverytime = now.wrapping_sub(v),
                "TIME" => deliverytime = v,
                _ => retrycount = v,
            }
        } else if eq_ic(opt, "lastid") && more > 0 {
            j += 1;
            let Some(id) = parse_strict_or_reply(c, j, 0) else {
                return;
            };
            last_id = id;
        } else {
            let e = format!(
                "ERR Unrecognized XCLAIM option '{}'",
                crate::reply::sanitize(opt, 128)
            );
            c.reply.add_error(&e);
            return;
        }
        j += 1;
    }
    if deliverytime == -1 || deliverytime < 0 || deliverytime > now {
        deliverytime = now;
    }
    let db = c.db;
    let key = c.argv[1].clone();
    let gname = c.argv[2].clone();
    let cname = c.argv[3].clone();
    let propagating_flag = propagating(srv);
    let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) else {
        return;
    };
    let Some(mut g) = s.groups_mut().remove(&gname) else {
        return;
    };
    let mut dirty = 0u64;
    let mut propagate_last_id = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last_id = true;
        dirty += 1;
    }
    // Propagated as an XCLAIM per claimed or dropped entry, else XGROUP SETID when
    // LASTID moved the group, never as itself.
    let prop = propagating_flag;
    let mut ops: Vec<Vec<Vec<u8>>> = Vec::new();
    let created = create_consumer(&mut g, &cname, now);
    if let Some(cons) = g.consumers.get_mut(&cname) {
        cons.seen_time = now;
    }
    let mut body = ReplyBuf::new();
    body.resp = c.reply.resp;
    let mut n = 0usize;
    for &id in &ids {
        let exists = s.contains(id);
        if !exists {
            if let Some(nack) = g.pel.remove(&id) {
                if prop {
                    ops.push(xclaim_argv(&key, &gname, id, &nack, g.last_id));
                    propagate_last_id = false;
                }
                if let Some(oc) = g.consumers.get_mut(&nack.consumer) {
                    oc.pel.remove(&id);
                }
                dirty += 1;
            }
            continue;
        }
        let fresh = !g.pel.contains_key(&id);
        if fresh && !force {
            continue;
        }
        if !fresh && minidle > 0 {
            let idle = g.pel.get(&id).map_or(0, |n| now - n.delivery_time);
            if idle < minidle {
                continue;
            }
        }
        claim_nack(&mut g, id, &cname, deliverytime, retrycount, justid);
        if justid {
            add_id(&mut body, id);
        } else {
            add_entry_by_id(&mut body, s, id);
        }
        n += 1;
        if let Some(cons) = g.consumers.get_mut(&cname) {
            cons.active_time = now;
        }
        if prop {
            if let Some(nack) = g.pel.get(&id) {
                ops.push(xclaim_argv(&key, &gname, id, nack, g.last_id));
            }
            propagate_last_id = false;
        }
        dirty += 1;
    }
    if prop && propagate_last_id {
        ops.push(setid_argv(&key, &gname, &g));
    }
    s.groups_mut().insert(gname, g);
    if prop {
        c.flags |= crate::client::flags::PREVENT_PROP;
        propagate_ops(srv, db, ops);
    }
    if created {
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-createconsumer", &key, db);
    }
    srv.dirty += dirty;
    c.reply.add_array_len(n);
    c.reply.add_raw(&body.buf);
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]
fn xautoclaim_command(srv: &mut Server, c: &mut Client) {
    let Some(minidle) = parse_i64_strict(&c.argv[4]) else {
        c.reply
            .add_error("ERR Invalid min-idle-time argument for XAUTOCLAIM");
        return;
    };
    let minidle = minidle.max(0);
    let Some((mut start, sx)) = parse_interval(c, 5, 0) else {
        return;
    };
    if sx {
        match start.incr() {
            Some(v) => start = v,
            None => {
                c.reply.add_error("ERR invalid start ID for the interval");
                return;
            }
        }
    }
    let argc = c.argv.len();
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argc {
        let more = argc - 1 - j;
        if eq_ic(&c.argv[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            match parse_i64_strict(&c.argv[j + 1]) {
                Some(v) if (1..=max).contains(&v) => count = v,
                _ => {
                    c.reply.add_error("ERR COUNT must be > 0");
                    return;
                }
            }
            j += 1;
        } else if eq_ic(&c.argv[j], "justid") {
            justid = true;
        } else {
            c.reply.add_error(ERR_SYNTAX);
            return;
        }
        j += 1;
    }
    let Some(found) = has_group(srv, c) else {
        return;
    };
    if !found {
        nogroup_error(c);
        return;
    }
    let now = srv.mstime;
    let db = c.db;
    let key = c.argv[1].clone();
    let gname = c.argv[2].clone();
    let cname = c.argv[3].clone();
    // Propagated as an XCLAIM per claimed or dropped entry, never as itself.
    let prop = propagating(srv);
    let mut ops: Vec<Vec<Vec<u8>>> = Vec::new();
    let Some(Value::Stream(s)) = db::lookup_key_write_mut(srv, db, &key) else {
        return;
    };
    let Some(mut g) = s.groups_mut().remove(&gname) else {
        return;
    };
    let created = create_consumer(&mut g, &cname, now);
    if let Some(cons) = g.consumers.get_mut(&cname) {
        cons.seen_time = now;
    }
    let mut attempts = count.saturating_mul(10);
    let mut body = ReplyBuf::new();
    body.resp = c.reply.resp;
    let mut n = 0usize;
    let mut deleted = Vec::new();
    let mut dirty = 0u64;
    let mut cur = Some(start);
    let mut eof = false;
    loop {
        if attempts == 0 {
            break;
        }
        attempts -= 1;
        if count == 0 {
            break;
        }
        let next = cur.and_then(|cu| g.pel.range(cu..).next().map(|(k, _)| *k));
        let Some(id) = next else {
            eof = true;
            break;
        };
        cur = id.incr();
        if !s.contains(id) {
            if let Some(nack) = g.pel.remove(&id) {
                if prop {
                    ops.push(xclaim_argv(&key, &gname, id, &nack, g.last_id));
                }
                if let Some(oc) = g.consumers.get_mut(&nack.consumer) {
                    oc.pel.remove(&id);
                }
            }
            dirty += 1;
            deleted.push(id);
            count -= 1;
            continue;
        }
        if minidle > 0 {
            let idle = g.pel.get(&id).map_or(0, |n| now - n.delivery_time);
            if idle < minidle {
                continue;
            }
        }
        claim_nack(&mut g, id, &cname, now, -1, justid);
        if justid {
            add_id(&mut body, id);
        } else {
            add_entry_by_id(&mut body, s, id);
        }
        n += 1;
        count -= 1;
        if let Some(cons) = g.consumers.get_mut(&cname) {
            cons.active_time = now;
        }
        if prop {
            if let Some(nack) = g.pel.get(&id) {
                ops.push(xclaim_argv(&key, &gname, id, nack, g.last_id));
            }
        }
        dirty += 1;
    }
    let cursor = if eof {
        StreamId::MIN
    } else {
        cur.and_then(|cu| g.pel.range(cu..).next().map(|(k, _)| *k))
            .unwrap_or(StreamId::MIN)
    };
    s.groups_mut().insert(gname, g);
    if prop {
        c.flags |= crate::client::flags::PREVENT_PROP;
        propagate_ops(srv, db, ops);
    }
    if created {
        srv.dirty += 1;
        notify_keyspace_event(srv, NOTIFY_STREAM, "xgroup-createconsumer", &key, db);
    }
    srv.dirty += dirty;
    let r = &mut c.reply;
    r.add_array_len(3);
    add_id(r, cursor);
    r.add_array_len(n);
    r.add_raw(&body.buf);
    r.add_array_len(deleted.len());
    for id in deleted {
        add_id(r, id);
    }
}

/// A group's lag, or None when it can not be known (upstream's `streamReplyWithCGLag`).
fn group_lag(s: &Stream, g: &ConsumerGroup) -> Option<i64> {
    if s.entries_added() == 0 {
        return Some(0);
    }
    if g.entries_read != -1 && !s.range_has_tombstones(g.last_id, StreamId::MAX) {
        return Some(s.entries_added() as i64 - g.entries_read);
    }
    let er = s.estimate_distance_from_first_ever_entry(g.last_id);
    if er != -1 {
        Some(s.entries_added() as i64 - er)
    } else {
        None
    }
}

fn add_opt_long(r: &mut ReplyBuf, v: Option<i64>) {
    match v {
        Some(v) => r.add_long(v),
        None => r.add_null(),
    }
}

fn xinfo_command(srv: &mut Server, c: &mut Client) {
    if eq_ic(&c.argv[1], "help") {
        c.reply.add_help(
            "XINFO",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        );
        return;
    }
    let now = srv.mstime;
    let s = match db::lookup_key_read(srv, c.db, &c.argv[2]) {
        None => {
            c.reply.add_error(ERR_NO_SUCH_KEY);
            return;
        }
        Some(ValueRef::Stream(s)) => s,
        Some(_) => {
            c.reply.add_error(ERR_WRONGTYPE);
            return;
        }
    };
    let argc = c.argv.len();
    if eq_ic(&c.argv[1], "consumers") && argc == 4 {
        let Some(g) = s.groups().and_then(|g| g.get(&c.argv[3])) else {
            let e = format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                lossy(&c.argv[3]),
                lossy(&c.argv[2])
            );
            c.reply.add_error(&e);
            return;
        };
        let r = &mut c.reply;
        r.add_array_len(g.consumers.len());
        for (name, cons) in &g.consumers {
            let inactive = if cons.active_time != -1 {
                now - cons.active_time
            } else {
                -1
            };
            r.add_map_len(4);
            r.add_bulk(b"name");
            r.add_bulk(name);
            r.add_bulk(b"pending");
            r.add_long(cons.pel.len() as i64);
            r.add_bulk(b"idle");
            r.add_long((now - cons.seen_time).max(0));
            r.add_bulk(b"inactive");
            r.add_long(inactive);
        }
    } else if eq_ic(&c.argv[1], "groups") && argc == 3 {
        let r = &mut c.reply;
        let Some(groups) = s.groups() else {
            r.add_array_len(0);
            return;
        };
        r.add_array_len(groups.len());
        for (name, g) in groups {
            r.add_map_len(6);
            r.add_bulk(b"name");
            r.add_bulk(name);
            r.add_bulk(b"consumers");
            r.add_long(g.consumers.len() as i64);
            r.add_bulk(b"pending");
            r.add_long(g.pel.len() as i64);
            r.add_bulk(b"last-delivered-id");
            add_id(r, g.last_id);
            r.add_bulk(b"entries-read");
            add_opt_long(r, (g.entries_read != -1).then_some(g.entries_read));
            r.add_bulk(b"lag");
            add_opt_long(r, group_lag(s, g));
        }
    } else if eq_ic(&c.argv[1], "stream") {
        let mut full = false;
        let mut count: i64 = 10;
        let optc = argc - 3;
        if optc > 0 {
            if (optc != 1 && optc != 3) || !eq_ic(&c.argv[3], "full") {
                subcommand_syntax_error(c);
                return;
            }
            if optc == 3 {
                if !eq_ic(&c.argv[4], "count") {
                    subcommand_syntax_error(c);
                    return;
                }
                let Some(v) = parse_i64_strict(&c.argv[5]) else {
                    c.reply.add_error(ERR_NOT_INTEGER);
                    return;
                };
                count = if v < 0 { 10 } else { v };
            }
            full = true;
        }
        let r = &mut c.reply;
        r.add_map_len(if full { 9 } else { 10 });
        r.add_bulk(b"length");
        r.add_long(s.len() as i64);
        r.add_bulk(b"radix-tree-keys");
        r.add_long(s.node_count() as i64);
        r.add_bulk(b"radix-tree-nodes");
        r.add_long(s.rax_node_count() as i64);
        r.add_bulk(b"last-generated-id");
        add_id(r, s.last_id());
        r.add_bulk(b"max-deleted-entry-id");
        add_id(r, s.max_deleted_entry_id());
        r.add_bulk(b"entries-added");
        r.add_long(s.entries_added() as i64);
        r.add_bulk(b"recorded-first-entry-id");
        add_id(r, s.first_id());
        if !full {
            r.add_bulk(b"groups");
            r.add_long(s.groups().map_or(0, |g| g.len()) as i64);
            for (label, rev) in [(&b"first-entry"[..], false), (&b"last-entry"[..], true)] {
                r.add_bulk(label);
                let mut emitted = false;
                s.range(StreamId::MIN, StreamId::MAX, rev, |id, e| {
                    add_entry(r, id, &e);
                    emitted = true;
                    false
                });
                if !emitted {
                    r.add_null();
                }
            }
            return;
        }
        r.add_bulk(b"entries");
        reply_range(r, s, StreamId::MIN, StreamId::MAX, count as u64, false);
        r.add_bulk(b"groups");
        let Some(groups) = s.groups() else {
            r.add_array_len(0);
            return;
        };
        let cap = if count == 0 {
            usize::MAX
        } else {
            count as usize
        };
        r.add_array_len(groups.len());
        for (name, g) in groups {
            r.add_map_len(7);
            r.add_bulk(b"name");
            r.add_bulk(name);
            r.add_bulk(b"last-delivered-id");
            add_id(r, g.last_id);
            r.add_bulk(b"entries-read");
            add_opt_long(r, (g.entries_read != -1).then_some(g.entries_read));
            r.add_bulk(b"lag");
            add_opt_long(r, group_lag(s, g));
            r.add_bulk(b"pel-count");
            r.add_long(g.pel.len() as i64);
            r.add_bulk(b"pending");
            r.add_array_len(g.pel.len().min(cap));
            for (id, nack) in g.pel.iter().take(cap) {
                r.add_array_len(4);
                add_id(r, *id);
                r.add_bulk(&nack.consumer);
                r.add_long(nack.delivery_time);
                r.add_long(nack.delivery_count as i64);
            }
            r.add_bulk(b"consumers");
            r.add_array_len(g.consumers.len());
            for (cname, cons) in &g.consumers {
                r.add_map_len(5);
                r.add_bulk(b"name");
                r.add_bulk(cname);
                r.add_bulk(b"seen-time");
                r.add_long(cons.seen_time);
                r.add_bulk(b"active-time");
                r.add_long(cons.active_time);
                r.add_bulk(b"pel-count");
                r.add_long(cons.pel.len() as i64);
                r.add_bulk(b"pending");
                r.add_array_len(cons.pel.len().min(cap));
                for id in cons.pel.iter().take(cap) {
                    let nack = g.pel.get(id);
                    r.add_array_len(3);
                    add_id(r, *id);
                    r.add_long(nack.map_or(0, |n| n.delivery_time));
                    r.add_long(nack.map_or(0, |n| n.delivery_count as i64));
                }
            }
        }
    } else {
        subcommand_syntax_error(c);
    }
}
