//! Bitmap commands, as upstream's `bitops.c`: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
//! BITFIELD and BITFIELD_RO. Bitmaps are plain strings; bit 0 is the most significant bit
//! of the first byte. Writes go through the string's raw buffer (an int or embstr value
//! becomes raw, as upstream's `dbUnshareStringValue`).

use std::borrow::Cow;

use super::{acl_cat as cat, flags as f, key_flags as k, CommandDef, KeySpec};
use crate::client::Client;
use crate::db;
use crate::notify::{notify_keyspace_event, NOTIFY_GENERIC, NOTIFY_STRING};
use crate::object::{Value, ValueRef};
use crate::reply;
use crate::server::Server;
use crate::util::parse_i64_strict;

const ERR_BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const ERR_BIT_VALUE: &str = "ERR bit is not an integer or out of range";
const ERR_BF_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const KS_RO_ACC: &[KeySpec] = &[KeySpec::range(k::RO | k::ACCESS, 1, 0, 1)];

pub static COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "setbit",
        4,
        f::WRITE | f::DENYOOM,
        cat::WRITE | cat::BITMAP | cat::SLOW,
        setbit_command,
    )
    .keys(&[KeySpec::range(k::RW | k::ACCESS | k::UPDATE, 1, 0, 1)])
    .doc(
        "bitmap",
        "2.2.0",
        "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
        "O(1)",
    ),
    CommandDef::new(
        "getbit",
        3,
        f::READONLY | f::FAST,
        cat::READ | cat::BITMAP | cat::FAST,
        getbit_command,
    )
    .keys(KS_RO_ACC)
    .doc("bitmap", "2.2.0", "Returns a bit value by offset.", "O(1)"),
    CommandDef::new(
        "bitcount",
        -2,
        f::READONLY,
        cat::READ | cat::BITMAP | cat::SLOW,
        bitcount_command,
    )
    .keys(KS_RO_ACC)
    .doc(
        "bitmap",
        "2.6.0",
        "Counts the number of set bits (population counting) in a string.",
        "O(N)",
    ),
    CommandDef::new(
        "bitpos",
        -3,
        f::READONLY,
        cat::READ | cat::BITMAP | cat::SLOW,
        bitpos_command,
    )
    .keys(KS_RO_ACC)
    .doc(
        "bitmap",
        "2.8.7",
        "Finds the first set (1) or clear (0) bit in a string.",
        "O(N)",
    ),
    CommandDef::new(
        "bitop",
        -4,
        f::WRITE | f::DENYOOM,
        cat::WRITE | cat::BITMAP | cat::SLOW,
        bitop_command,
    )
    .keys(&[
        KeySpec::range(k::OW | k::UPDATE, 2, 0, 1),
        KeySpec::range(k::RO | k::ACCESS, 3, -1, 1),
    ])
    .doc(
        "bitmap",
        "2.6.0",
        "Performs bitwise operations on multiple strings, and stores the result.",
        "O(N)",
    ),
    CommandDef::new(
        "bitfield",
        -2,
        f::WRITE | f::DENYOOM,
        cat::WRITE | cat::BITMAP | cat::SLOW,
        bitfield_command,
    )
    .keys(&[
        KeySpec::range(k::RW | k::ACCESS | k::UPDATE | k::VARIABLE_FLAGS, 1, 0, 1)
            .notes("This command allows both access and modification of the key"),
    ])
    .doc(
        "bitmap",
        "3.2.0",
        "Performs arbitrary bitfield integer operations on strings.",
        "O(1) for each subcommand specified",
    ),
    CommandDef::new(
        "bitfield_ro",
        -2,
        f::READONLY | f::FAST,
        cat::READ | cat::BITMAP | cat::FAST,
        bitfield_ro_command,
    )
    .keys(KS_RO_ACC)
    .doc(
        "bitmap",
        "6.0.0",
        "Performs arbitrary read-only bitfield integer operations on strings.",
        "O(1) for each subcommand specified",
    ),
];

/// The part of an argument a C string function sees (up to the first NUL), as upstream
/// compares keywords with `strcasecmp`.
fn cstr(a: &[u8]) -> &[u8] {
    match a.iter().position(|&b| b == 0) {
        Some(i) => &a[..i],
        None => a,
    }
}

fn kw(a: &[u8], word: &str) -> bool {
    cstr(a).eq_ignore_ascii_case(word.as_bytes())
}

/// Upstream's `getBitOffsetFromArgument`: a non-negative bit offset whose byte is below
/// `proto-max-bulk-len`; with `hash_bits > 0` a `#N` offset means N * hash_bits.
fn parse_bit_offset(srv: &Server, c: &mut Client, i: usize, hash_bits: i64) -> Option<u64> {
    let a = &c.argv[i];
    let usehash = hash_bits > 0 && a.first() == Some(&b'#');
    let digits = if usehash { &a[1..] } else { &a[..] };
    let mut off = match parse_i64_strict(digits) {
        Some(n) => n,
        None => {
            c.reply.add_error(ERR_BIT_OFFSET);
            return None;
        }
    };
    if usehash {
        // Upstream multiplies without an overflow check (two's complement wrap).
        off = off.wrapping_mul(hash_bits);
    }
    if off < 0 || (off >> 3) >= srv.config.proto_max_bulk_len {
        c.reply.add_error(ERR_BIT_OFFSET);
        return None;
    }
    Some(off as u64)
}

/// The bytes of a string value for reading; an int-encoded one is formatted into `buf`.
fn str_bytes<'a>(v: &ValueRef<'a>, buf: &'a mut [u8; 24]) -> Option<&'a [u8]> {
    match *v {
        ValueRef::Int(n) => Some(reply::fmt_i64(buf, n)),
        ValueRef::Str(b) => Some(b),
        _ => None,
    }
}

/// Turns a stored string into its raw mutable buffer (None for other types).
fn raw_buf(v: &mut Value) -> Option<&mut Vec<u8>> {
    if let Value::Int(n) = *v {
        *v = Value::raw(n.to_string().into_bytes());
    }
    match v {
        Value::Str { bytes, raw } => {
            *raw = true;
            Some(bytes)
        }
        _ => None,
    }
}

/// Upstream's `lookupStringForBitCommand` with the work done inside: runs `f` on the
/// string of `key` grown with zeroes so that bit `maxbit` exists (a new key is created).
/// `f` gets the buffer and whether the key was created or grown. None: wrong type (the
/// error is already replied).
fn with_bit_string<R>(
    srv: &mut Server,
    c: &mut Client,
    maxbit: u64,
    f: impl FnOnce(&mut Vec<u8>, bool, &mut Client) -> R,
) -> Option<R> {
    let db = c.db;
    // maxbit < 8 * proto-max-bulk-len + 64 (checked by the offset parser).
    let need = usize::try_from(maxbit >> 3)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    match db::lookup_key_write_mut(srv, db, &c.argv[1]) {
        Some(v) => match raw_buf(v) {
            Some(b) => {
                let grown = b.len() < need;
                if grown {
                    b.resize(need, 0);
                }
                Some(f(b, grown, c))
            }
            None => {
                c.reply.add_error(reply::ERR_WRONGTYPE);
                None
            }
        },
        None => {
            let mut b = vec![0u8; need];
            let r = f(&mut b, true, c);
            let key = std::mem::take(&mut c.argv[1]);
            db::db_add(srv, db, &key, Value::raw(b));
            c.argv[1] = key;
            Some(r)
        }
    }
}

fn setbit_command(srv: &mut Server, c: &mut Client) {
    let Some(off) = parse_bit_offset(srv, c, 2, 0) else {
        return;
    };
    let on = match parse_i64_strict(&c.argv[3]) {
        Some(v) if (v & !1) == 0 => v as u8,
        _ => {
            c.reply.add_error(ERR_BIT_VALUE);
            return;
        }
    };
    let byte = (off >> 3) as usize;
    let shift = 7 - (off & 7) as u8;
    let r = with_bit_string(srv, c, off, |b, dirty, _| {
        let Some(slot) = b.get_mut(byte) else {
            return (0, false);
        };
        let old = (*slot >> shift) & 1;
        let changed = dirty || old != on;
        if changed {
            *slot = (*slot & !(1 << shift)) | (on << shift);
        }
        (old, changed)
    });
    let Some((old, changed)) = r else { return };
    if changed {
        let db = c.db;
        db::signal_modified_key(srv, db, &c.argv[1]);
        notify_keyspace_event(srv, NOTIFY_STRING, "setbit", &c.argv[1], db);
        srv.dirty += 1;
    }
    c.reply.add_long(old as i64);
}

fn getbit_command(srv: &mut Server, c: &mut Client) {
    let Some(off) = parse_bit_offset(srv, c, 2, 0) else {
        return;
    };
    let Client {
        argv, reply, db, ..
    } = c;
    let Some(v) = db::lookup_key_read(srv, *db, &argv[1]) else {
        reply.add_long(0);
        return;
    };
    let mut t = reply::itoa_buf();
    let Some(s) = str_bytes(&v, &mut t) else {
        reply.add_error(reply::ERR_WRONGTYPE);
        return;
    };
    let bit = usize::try_from(off >> 3)
        .ok()
        .and_then(|i| s.get(i))
        .map_or(0, |&b| (b >> (7 - (off & 7))) & 1);
    reply.add_long(bit as i64);
}

/// Number of set bits, eight bytes at a time.
fn popcount(s: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { popcount_avx2(s) };
        }
    }
    popcount_words(s)
}

#[inline(always)]
fn popcount_words(s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(32);
    let mut n = 0u64;
    for ch in &mut chunks {
        let mut w = [0u64; 4];
        for (i, x) in w.iter_mut().enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(&ch[i * 8..i * 8 + 8]);
            *x = u64::from_ne_bytes(a);
        }
        n += (w[0].count_ones() + w[1].count_ones() + w[2].count_ones() + w[3].count_ones()) as u64;
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(8);
    for ch in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(ch);
        n += u64::from_ne_bytes(a).count_ones() as u64;
    }
    for &b in words.remainder() {
        n += b.count_ones() as u64;
    }
    n
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn popcount_avx2(s: &[u8]) -> u64 {
    popcount_words(s)
}

/// Resolves a BITCOUNT/BITPOS range as upstream: `start`/`end` (end None: to the end of
/// the string) in bytes or bits over a string of `len` bytes. Returns the inclusive bit
/// range, or None when it is empty.
fn resolve_range(len: usize, start: i64, end: Option<i64>, isbit: bool) -> Option<(u64, u64)> {
    let mut tot = len as i64;
    let mut start = start;
    let mut end = end.unwrap_or(tot - 1);
    if isbit {
        tot = tot.saturating_mul(8);
    }
    if start < 0 {
        start = start.saturating_add(tot);
    }
    if end < 0 {
        end = end.saturating_add(tot);
    }
    start = start.max(0);
    end = end.max(0);
    if end >= tot {
        end = tot - 1;
    }
    if start > end {
        return None;
    }
    if isbit {
        Some((start as u64, end as u64))
    } else {
        Some((start as u64 * 8, end as u64 * 8 + 7))
    }
}

/// Set bits in the inclusive bit range [sbit, ebit] of `s` (inside the string).
fn count_bits(s: &[u8], sbit: u64, ebit: u64) -> u64 {
    let (sb, eb) = ((sbit >> 3) as usize, (ebit >> 3) as usize);
    let Some(bytes) = s.get(sb..=eb) else {
        return 0;
    };
    let mut n = popcount(bytes);
    let head = (0xffu16 << (8 - (sbit & 7))) as u8; // bits before sbit in its byte
    let tail = ((1u16 << (7 - (ebit & 7))) - 1) as u8; // bits after ebit in its byte
    n -= (bytes[0] & head).count_ones() as u64;
    n -= (bytes[bytes.len() - 1] & tail).count_ones() as u64;
    n
}

fn parse_bit_byte(c: &mut Client, i: usize) -> Option<bool> {
    let a = &c.argv[i];
    if kw(a, "bit") {
        Some(true)
    } else if kw(a, "byte") {
        Some(false)
    } else {
        c.reply.add_error(reply::ERR_SYNTAX);
        None
    }
}

fn arg_i64(c: &mut Client, i: usize) -> Option<i64> {
    let v = parse_i64_strict(&c.argv[i]);
    if v.is_none() {
        c.reply.add_error(reply::ERR_NOT_INTEGER);
    }
    v
}

/// Parsed `start [end [BYTE|BIT]]` arguments beginning at argv[i].
struct Range {
    start: i64,
    end: Option<i64>,
    isbit: bool,
}

fn parse_range(c: &mut Client, i: usize) -> Option<Option<Range>> {
    let argc = c.argv.len();
    if argc <= i {
        return Some(None);
    }
    if argc > i + 3 {
        c.reply.add_error(reply::ERR_SYNTAX);
        return None;
    }
    let start = arg_i64(c, i)?;
    let isbit = if argc == i + 3 {
        parse_bit_byte(c, i + 2)?
    } else {
        false
    };
    let end = if argc >= i + 2 {
        Some(arg_i64(c, i + 1)?)
    } else {
        None
    };
    Some(Some(Range { start, end, isbit }))
}

fn bitcount_command(srv: &mut Server, c: &mut Client) {
    let Some(range) = parse_range(c, 2) else {
        return;
    };
    let Client {
        argv, reply, db, ..
    } = c;
    let Some(v) = db::lookup_key_read(srv, *db, &argv[1]) else {
        reply.add_long(0);
        return;
    };
    let mut t = reply::itoa_buf();
    let Some(s) = str_bytes(&v, &mut t) else {
        reply.add_error(reply::ERR_WRONGTYPE);
        return;
    };
    let span = match range {
        None if s.is_empty() => None,
        None => Some((0, s.len() as u64 * 8 - 1)),
        Some(r) => {
            if let Some(e) = r.end {
                if r.start < 0 && e < 0 && r.start > e {
                    reply.add_long(0);
                    return;
                }
            }
            resolve_range(s.len(), r.start, r.end, r.isbit)
        }
    };
    let n = span.map_or(0, |(a, b)| count_bits(s, a, b));
    reply.add_long(n as i64);
}

/// Position (relative to the start of `s`) of the first bit equal to `bit`, skipping
/// 32-byte blocks of the other value at a time; None if there is none.
fn find_bit(s: &[u8], bit: bool) -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        if s.len() >= 64 && std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature the function is compiled for.
            return unsafe { find_bit_avx2(s, bit) };
        }
    }
    find_bit_words(s, bit)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn find_bit_avx2(s: &[u8], bit: bool) -> Option<u64> {
    find_bit_words(s, bit)
}

#[inline(always)]
fn find_bit_words(s: &[u8], bit: bool) -> Option<u64> {
    let skip = if bit { 0u64 } else { u64::MAX };
    let word = |ch: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(ch);
        a
    };
    // Whole blocks equal to the skip value (compared in any byte order).
    let skipped = s
        .chunks_exact(32)
        .take_while(|ch| {
            ch.chunks_exact(8)
                .all(|w| u64::from_ne_bytes(word(w)) == skip)
        })
        .count()
        * 32;
    let mut base = skipped as u64 * 8;
    let rest = &s[skipped..];
    let mut words = rest.chunks_exact(8);
    for ch in &mut words {
        let w = u64::from_be_bytes(word(ch));
        if w != skip {
            let x = if bit { w } else { !w };
            return Some(base + x.leading_zeros() as u64);
        }
        base += 64;
    }
    for &b in words.remainder() {
        let x = if bit { b } else { !b };
        if x != 0 {
            return Some(base + x.leading_zeros() as u64);
        }
        base += 8;
    }
    None
}

/// First bit equal to `bit` in the inclusive bit range [sbit, ebit] of `s`.
fn find_bit_in(s: &[u8], bit: bool, sbit: u64, ebit: u64) -> Option<u64> {
    let (sb, eb) = ((sbit >> 3) as usize, (ebit >> 3) as usize);
    let bytes = s.get(sb..=eb)?;
    let want = |b: u8| if bit { b } else { !b };
    let head_mask = 0xffu8 >> (sbit & 7); // bits from sbit on
    let tail_mask = !(((1u16 << (7 - (ebit & 7))) - 1) as u8); // bits up to ebit
    let base = sb as u64 * 8;
    if bytes.len() == 1 {
        let x = want(bytes[0]) & head_mask & tail_mask;
        return (x != 0).then(|| base + x.leading_zeros() as u64);
    }
    let x = want(bytes[0]) & head_mask;
    if x != 0 {
        return Some(base + x.leading_zeros() as u64);
    }
    let mid = &bytes[1..bytes.len() - 1];
    if let Some(p) = find_bit(mid, bit) {
        return Some(base + 8 + p);
    }
    let x = want(bytes[bytes.len() - 1]) & tail_mask;
    (x != 0).then(|| (eb as u64) * 8 + x.leading_zeros() as u64)
}

fn bitpos_command(srv: &mut Server, c: &mut Client) {
    let bit = match parse_i64_strict(&c.argv[2]) {
        None => {
            c.reply.add_error(reply::ERR_NOT_INTEGER);
            return;
        }
        Some(0) => false,
        Some(1) => true,
        Some(_) => {
            c.reply.add_error("ERR The bit argument must be 1 or 0.");
            return;
        }
    };
    let Some(range) = parse_range(c, 3) else {
        return;
    };
    let Client {
        argv, reply, db, ..
    } = c;
    let Some(v) = db::lookup_key_read(srv, *db, &argv[1]) else {
        reply.add_long(if bit { -1 } else { 0 });
        return;
    };
    let mut t = reply::itoa_buf();
    let Some(s) = str_bytes(&v, &mut t) else {
        reply.add_error(reply::ERR_WRONGTYPE);
        return;
    };
    let (span, end_given) = match range {
        None if s.is_empty() => (None, false),
        None => (Some((0, s.len() as u64 * 8 - 1)), false),
        Some(r) => (
            resolve_range(s.len(), r.start, r.end, r.isbit),
            r.end.is_some(),
        ),
    };
    let Some((sbit, ebit)) = span else {
        reply.add_long(-1);
        return;
    };
    let pos = match find_bit_in(s, bit, sbit, ebit) {
        Some(p) => p as i64,
        // No clear bit: past the end of the string counts as zeroes unless an end was given.
        None if !bit && !end_given => ((ebit >> 3) as i64 + 1) * 8,
        None => -1,
    };
    reply.add_long(pos);
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop_command(srv: &mut Server, c: &mut Client) {
    let name = &c.argv[1];
    let op = if kw(name, "and") {
        BitOp::And
    } else if kw(name, "or") {
        BitOp::Or
    } else if kw(name, "xor") {
        BitOp::Xor
    } else if kw(name, "not") {
        BitOp::Not
    } else {
        c.reply.add_error(reply::ERR_SYNTAX);
        return;
    };
    if op == BitOp::Not && c.argv.len() != 4 {
        c.reply
            .add_error("ERR BITOP NOT must be called with a single source key.");
        return;
    }
    let db = c.db;
    let nkeys = c.argv.len() - 3;
    // First pass: expiry, hit/miss accounting, types.
    let mut found = Vec::with_capacity(nkeys);
    for j in 0..nkeys {
        match db::lookup_key_read(srv, db, &c.argv[3 + j]) {
            None => found.push(false),
            Some(ValueRef::Int(_)) | Some(ValueRef::Str(_)) => found.push(true),
            Some(_) => {
                c.reply.add_error(reply::ERR_WRONGTYPE);
                return;
            }
        }
    }
    // Second pass: shared borrows of the values, computing the result.
    let res: Vec<u8> = {
        let kv = &srv.dbs[db].kv;
        let mut srcs: Vec<Cow<'_, [u8]>> = Vec::with_capacity(nkeys);
        for (j, &present) in found.iter().enumerate() {
            let v = if present {
                kv.get(&c.argv[3 + j])
            } else {
                None
            };
            srcs.push(match v {
                Some(ValueRef::Int(n)) => Cow::Owned(n.to_string().into_bytes()),
                Some(ValueRef::Str(b)) => Cow::Borrowed(b),
                _ => Cow::Borrowed(&[][..]),
            });
        }
        let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut res = vec![0u8; maxlen];
        if maxlen > 0 {
            let first = &srcs[0];
            res[..first.len()].copy_from_slice(first);
            match op {
                BitOp::Not => res.iter_mut().for_each(|b| *b = !*b),
                BitOp::And => {
                    for s in &srcs[1..] {
                        let n = s.len();
                        res.iter_mut().zip(s.iter()).for_each(|(r, x)| *r &= x);
                        res[n..].fill(0);
                    }
                }
                BitOp::Or => {
                    for s in &srcs[1..] {
                        res.iter_mut().zip(s.iter()).for_each(|(r, x)| *r |= x);
                    }
                }
                BitOp::Xor => {
                    for s in &srcs[1..] {
                        res.iter_mut().zip(s.iter()).for_each(|(r, x)| *r ^= x);
                    }
                }
            }
        }
        res
    };
    let maxlen = res.len();
    let key = std::mem::take(&mut c.argv[2]);
    if maxlen > 0 {
        db::set_key(srv, db, &key, Value::raw(res), false);
        notify_keyspace_event(srv, NOTIFY_STRING, "set", &key, db);
        srv.dirty += 1;
    } else if db::db_delete(srv, db, &key) {
        notify_keyspace_event(srv, NOTIFY_GENERIC, "del", &key, db);
        srv.dirty += 1;
    }
    c.argv[2] = key;
    c.reply.add_long(maxlen as i64);
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum BfOp {
    Get,
    Set,
    Incrby,
}

#[derive(Clone, Copy)]
struct FieldOp {
    offset: u64,
    value: i64,
    op: BfOp,
    overflow: Overflow,
    bits: u32,
    signed: bool,
}

/// Upstream's `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63`.
fn parse_bf_type(a: &[u8]) -> Option<(bool, u32)> {
    let signed = match a.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return None,
    };
    let n = parse_i64_strict(cstr(&a[1..]))?;
    let max = if signed { 64 } else { 63 };
    (1..=max).contains(&n).then_some((signed, n as u32))
}

/// Reads `bits` (1..=64) bits at bit `offset` of `p`, big-endian; bytes past the end are 0.
fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let byte = (offset >> 3) as usize;
    let mut w: u128 = 0;
    for i in 0..9 {
        let b = byte
            .checked_add(i)
            .and_then(|j| p.get(j))
            .copied()
            .unwrap_or(0);
        w = (w << 8) | b as u128;
    }
    let shift = 72 - (offset & 7) as u32 - bits;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    ((w >> shift) as u64) & mask
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let u = get_unsigned(p, offset, bits);
    if bits < 64 && u & (1u64 << (bits - 1)) != 0 {
        (u | (u64::MAX << bits)) as i64
    } else {
        u as i64
    }
}

/// Writes the low `bits` bits of `value` at bit `offset` of `p` (which holds them).
fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    let byte = (offset >> 3) as usize;
    let shift = 72 - (offset & 7) as u32 - bits;
    let mask: u128 = if bits == 64 {
        u64::MAX as u128
    } else {
        ((1u64 << bits) - 1) as u128
    };
    let mut w: u128 = 0;
    for i in 0..9 {
        let b = p.get(byte + i).copied().unwrap_or(0);
        w = (w << 8) | b as u128;
    }
    w = (w & !(mask << shift)) | (((value as u128) & mask) << shift);
    for i in 0..9 {
        if let Some(slot) = p.get_mut(byte + i) {
            *slot = (w >> (64 - 8 * i as u32)) as u8;
        }
    }
}

/// Upstream's `checkUnsignedBitfieldOverflow`: 0, 1 (overflow) or -1 (underflow), and
/// the value to store instead for WRAP and SAT.
fn check_unsigned(value: u64, incr: i64, bits: u32, ow: Overflow) -> (i32, u64) {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = 0u64.wrapping_sub(value) as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > maxincr) {
        match ow {
            Overflow::Wrap => (1, wrap()),
            Overflow::Sat => (1, max),
            Overflow::Fail => (1, 0),
        }
    } else if incr < 0 && incr < minincr {
        match ow {
            Overflow::Wrap => (-1, wrap()),
            Overflow::Sat => (-1, 0),
            Overflow::Fail => (-1, 0),
        }
    } else {
        (0, 0)
    }
}

/// Upstream's `checkSignedBitfieldOverflow`.
fn check_signed(value: i64, incr: i64, bits: u32, ow: Overflow) -> (i32, i64) {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        match ow {
            Overflow::Wrap => (1, wrap()),
            Overflow::Sat => (1, max),
            Overflow::Fail => (1, 0),
        }
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        match ow {
            Overflow::Wrap => (-1, wrap()),
            Overflow::Sat => (-1, min),
            Overflow::Fail => (-1, 0),
        }
    } else {
        (0, 0)
    }
}

/// Runs a SET or INCRBY on the buffer, replying; returns whether it changed the key.
fn apply_write(b: &mut [u8], op: &FieldOp, dirty: bool, c: &mut Client) -> bool {
    if op.signed {
        let old = get_signed(b, op.offset, op.bits);
        let (ovf, newv, ret) = if op.op == BfOp::Incrby {
            let (o, w) = check_signed(old, op.value, op.bits, op.overflow);
            let n = if o != 0 {
                w
            } else {
                old.wrapping_add(op.value)
            };
            (o, n, n)
        } else {
            let (o, w) = check_signed(op.value, 0, op.bits, op.overflow);
            (o, if o != 0 { w } else { op.value }, old)
        };
        if ovf != 0 && op.overflow == Overflow::Fail {
            c.reply.add_null();
            return false;
        }
        c.reply.add_long(ret);
        set_unsigned(b, op.offset, op.bits, newv as u64);
        dirty || old != newv
    } else {
        let old = get_unsigned(b, op.offset, op.bits);
        let (ovf, newv, ret) = if op.op == BfOp::Incrby {
            let (o, w) = check_unsigned(old, op.value, op.bits, op.overflow);
            let n = if o != 0 {
                w
            } else {
                old.wrapping_add(op.value as u64)
            };
            (o, n, n)
        } else {
            let v = op.value as u64;
            let (o, w) = check_unsigned(v, 0, op.bits, op.overflow);
            (o, if o != 0 { w } else { v }, old)
        };
        if ovf != 0 && op.overflow == Overflow::Fail {
            c.reply.add_null();
            return false;
        }
        c.reply.add_long(ret as i64);
        set_unsigned(b, op.offset, op.bits, newv);
        dirty || old != newv
    }
}

fn reply_get(s: &[u8], op: &FieldOp, c: &mut Client) {
    if op.signed {
        c.reply.add_long(get_signed(s, op.offset, op.bits));
    } else {
        c.reply.add_long(get_unsigned(s, op.offset, op.bits) as i64);
    }
}

fn bitfield_generic(srv: &mut Server, c: &mut Client, ro_cmd: bool) {
    let mut ops: Vec<FieldOp> = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut readonly = true;
    let mut highest: u64 = 0;
    let argc = c.argv.len();
    let mut j = 2;
    while j < argc {
        let rem = argc - j - 1;
        let sub = &c.argv[j];
        let op = if kw(sub, "get") && rem >= 2 {
            BfOp::Get
        } else if kw(sub, "set") && rem >= 3 {
            BfOp::Set
        } else if kw(sub, "incrby") && rem >= 3 {
            BfOp::Incrby
        } else if kw(sub, "overflow") && rem >= 1 {
            let t = &c.argv[j + 1];
            overflow = if kw(t, "wrap") {
                Overflow::Wrap
            } else if kw(t, "sat") {
                Overflow::Sat
            } else if kw(t, "fail") {
                Overflow::Fail
            } else {
                c.reply.add_error("ERR Invalid OVERFLOW type specified");
                return;
            };
            j += 2;
            continue;
        } else {
            c.reply.add_error(reply::ERR_SYNTAX);
            return;
        };
        let Some((signed, bits)) = parse_bf_type(&c.argv[j + 1]) else {
            c.reply.add_error(ERR_BF_TYPE);
            return;
        };
        let Some(offset) = parse_bit_offset(srv, c, j + 2, bits as i64) else {
            return;
        };
        let mut value = 0;
        if op != BfOp::Get {
            readonly = false;
            highest = highest.max(offset + bits as u64 - 1);
            let Some(v) = arg_i64(c, j + 3) else { return };
            value = v;
        }
        ops.push(FieldOp {
            offset,
            value,
            op,
            overflow,
            bits,
            signed,
        });
        j += if op == BfOp::Get { 3 } else { 4 };
    }
    if readonly {
        let Client {
            argv, reply, db, ..
        } = c;
        let v = db::lookup_key_read(srv, *db, &argv[1]);
        let mut t = reply::itoa_buf();
        let s: &[u8] = match &v {
            None => &[],
            Some(v) => match str_bytes(v, &mut t) {
                Some(s) => s,
                None => {
                    reply.add_error(reply::ERR_WRONGTYPE);
                    return;
                }
            },
        };
        reply.add_array_len(ops.len());
        for op in &ops {
            if op.signed {
                reply.add_long(get_signed(s, op.offset, op.bits));
            } else {
                reply.add_long(get_unsigned(s, op.offset, op.bits) as i64);
            }
        }
        return;
    }
    if ro_cmd {
        c.reply
            .add_error("ERR BITFIELD_RO only supports the GET subcommand");
        return;
    }
    let changes = with_bit_string(srv, c, highest, |b, dirty, c| {
        c.reply.add_array_len(ops.len());
        let mut changes = 0u64;
        for op in &ops {
            if op.op == BfOp::Get {
                reply_get(b, op, c);
            } else if apply_write(b, op, dirty, c) {
                changes += 1;
            }
        }
        changes
    });
    if let Some(n) = changes.filter(|&n| n > 0) {
        let db = c.db;
        db::signal_modified_key(srv, db, &c.argv[1]);
        notify_keyspace_event(srv, NOTIFY_STRING, "setbit", &c.argv[1], db);
        srv.dirty += n;
    }
}

fn bitfield_command(srv: &mut Server, c: &mut Client) {
    bitfield_generic(srv, c, false);
}

fn bitfield_ro_command(srv: &mut Server, c: &mut Client) {
    bitfield_generic(srv, c, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_roundtrip() {
        let mut b = vec![0u8; 16];
        for bits in 1..=64u32 {
            for off in [0u64, 1, 7, 8, 13, 63] {
                b.fill(0);
                let v = 0xA5A5_5A5A_F00F_1234u64 & (u64::MAX >> (64 - bits));
                set_unsigned(&mut b, off, bits, v);
                assert_eq!(get_unsigned(&b, off, bits), v, "bits {bits} off {off}");
                assert_eq!(count_bits(&b, 0, 127), v.count_ones() as u64);
            }
        }
        // Bit 0 is the most significant bit of byte 0.
        b.fill(0);
        set_unsigned(&mut b, 7, 5, 23);
        assert_eq!(&b[..2], &[0b0000_0001, 0b0111_0000]);
        assert_eq!(get_signed(&b, 7, 5), -9);
    }

    #[test]
    fn popcount_and_bitpos() {
        let s: Vec<u8> = (0..1000u32).map(|i| (i * 37 % 251) as u8).collect();
        let naive: u64 = s.iter().map(|b| b.count_ones() as u64).sum();
        assert_eq!(popcount(&s), naive);
        assert_eq!(popcount_words(&s), naive);
        let mut z = vec![0u8; 100];
        assert_eq!(find_bit(&z, true), None);
        z[77] = 0x10;
        assert_eq!(find_bit(&z, true), Some(77 * 8 + 3));
        assert_eq!(find_bit_in(&z, true, 77 * 8 + 4, 99 * 8), None);
        assert_eq!(find_bit_in(&z, true, 3, 77 * 8 + 3), Some(77 * 8 + 3));
        let ones = vec![0xffu8; 33];
        assert_eq!(find_bit(&ones, false), None);
        assert_eq!(find_bit_in(&ones, false, 0, 263), None);
    }

    #[test]
    fn overflow_rules() {
        assert_eq!(check_unsigned(255, 1, 8, Overflow::Wrap), (1, 0));
        assert_eq!(check_unsigned(255, 1, 8, Overflow::Sat), (1, 255));
        assert_eq!(check_unsigned(0, -1, 8, Overflow::Sat), (-1, 0));
        assert_eq!(check_unsigned(0, -1, 8, Overflow::Wrap), (-1, 255));
        assert_eq!(check_signed(127, 1, 8, Overflow::Wrap), (1, -128));
        assert_eq!(check_signed(-128, -1, 8, Overflow::Sat), (-1, -128));
        assert_eq!(check_signed(i64::MAX, 1, 64, Overflow::Wrap), (1, i64::MIN));
        assert_eq!(check_signed(5, 3, 64, Overflow::Fail), (0, 0));
    }
}
