//! Values to and from their RDB encoding (upstream's `rdbSaveObject` /
#![allow(dead_code)] // until the callers (snapshots, DUMP/RESTORE) are merged
//! `rdbLoadObject`): the server's types on one side, the `rdb` crate's
//! primitives and [`rdb::object::Object`] on the other. Shared by snapshots
//! (`src/rdb.rs`) and DUMP/RESTORE.
//!
//! Saving writes exactly what upstream writes for the same value and encoding:
//! compact encodings (listpack, intset, quicklist nodes, stream nodes) are
//! written as their bytes, compressed quicklist nodes as their LZF data.

use rdb::encoding::{Reader, Writer};
use rdb::object::{Limits, Object};

use crate::config::Config;
use crate::object::{Value, ValueRef};
use std::collections::{BTreeMap, BTreeSet, HashSet};

use rdb::object::ListNode;

use crate::types::hash::{Hash, EXPIRY_NONE};
use crate::types::intset::Intset;
use crate::types::list::{List, ListOpts, LoadNode, RawNode};
use crate::types::listpack::{Listpack, LpEntry};
use crate::types::set::{Set, SetLimits};
use crate::types::stream::{Consumer, ConsumerGroup, PendingEntry, Stream, StreamId};
use crate::types::zset::{cmp_elems, ZSet};

/// Quicklist node containers (upstream's `QUICKLIST_NODE_CONTAINER_*`).
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// The object type byte a value is saved as (upstream's `rdbSaveObjectType`).
pub fn object_type(v: ValueRef) -> u8 {
    match v {
        ValueRef::Int(_) | ValueRef::Str(_) => rdb::TYPE_STRING,
        ValueRef::List(_) => rdb::TYPE_LIST_QUICKLIST_2,
        ValueRef::Set(s) => {
            if s.as_intset().is_some() {
                rdb::TYPE_SET_INTSET
            } else if s.as_listpack().is_some() {
                rdb::TYPE_SET_LISTPACK
            } else {
                rdb::TYPE_SET
            }
        }
        ValueRef::ZSet(z) => {
            if z.as_listpack().is_some() {
                rdb::TYPE_ZSET_LISTPACK
            } else {
                rdb::TYPE_ZSET_2
            }
        }
        ValueRef::Hash(h) => {
            if h.listpack().is_some() {
                rdb::TYPE_HASH_LISTPACK
            } else if h.has_volatile() {
                rdb::TYPE_HASH_2
            } else {
                rdb::TYPE_HASH
            }
        }
        ValueRef::Stream(_) => rdb::TYPE_STREAM_LISTPACKS_3,
    }
}

/// Appends the encoding of `v` (without the type byte) to `w`; `compress` is
/// `rdbcompression` (LZF for strings over 20 bytes).
pub fn write_value(w: &mut Writer, v: ValueRef, compress: bool) {
    match v {
        ValueRef::Int(n) => {
            let mut b = crate::reply::itoa_buf();
            w.string(crate::reply::fmt_i64(&mut b, n), compress);
        }
        ValueRef::Str(s) => w.string(s, compress),
        ValueRef::List(l) => {
            w.len(l.raw_node_count() as u64);
            for n in l.raw_nodes() {
                match n {
                    RawNode::Packed(b) => {
                        w.len(CONTAINER_PACKED);
                        w.string(b, compress);
                    }
                    RawNode::Plain(b) => {
                        w.len(CONTAINER_PLAIN);
                        w.string(b, compress);
                    }
                    RawNode::Lzf { plain, sz, data } => {
                        w.len(if plain {
                            CONTAINER_PLAIN
                        } else {
                            CONTAINER_PACKED
                        });
                        // rdbSaveLzfBlob: the LZF string form with the node's data as is.
                        w.u8((rdb::RDB_ENCVAL << 6) | rdb::RDB_ENC_LZF);
                        w.len(data.len() as u64);
                        w.len(sz as u64);
                        w.bytes(data);
                    }
                }
            }
        }
        ValueRef::Set(s) => {
            if let Some(is) = s.as_intset() {
                w.string(is.as_bytes(), compress);
            } else if let Some(lp) = s.as_listpack() {
                w.string(lp.as_bytes(), compress);
            } else {
                w.len(s.len() as u64);
                let mut buf = crate::reply::itoa_buf();
                for m in s.iter() {
                    match m {
                        crate::types::set::Member::Str(b) => w.string(b, compress),
                        crate::types::set::Member::Int(n) => {
                            w.string(crate::reply::fmt_i64(&mut buf, n), compress)
                        }
                    }
                }
            }
        }
        ValueRef::ZSet(z) => {
            if let Some(lp) = z.as_listpack() {
                w.string(lp.as_bytes(), compress);
            } else {
                // From the highest element down, as upstream (loading then inserts
                // each element at the head of its skiplist).
                w.len(z.len() as u64);
                let mut buf = Vec::new();
                for (m, score) in z.iter_from(0, true) {
                    buf.clear();
                    m.write_to(&mut buf);
                    w.string(&buf, compress);
                    w.double_binary(score);
                }
            }
        }
        ValueRef::Hash(h) => {
            if let Some(lp) = h.listpack() {
                w.string(lp.as_bytes(), compress);
            } else {
                let with_ttl = h.has_volatile();
                w.len(h.len() as u64);
                h.for_each_raw(|f, v, exp| {
                    w.string(f, compress);
                    w.string(v, compress);
                    if with_ttl {
                        w.millis(exp);
                    }
                });
            }
        }
        ValueRef::Stream(s) => write_stream(w, s, compress),
    }
}

/// A stream ID as its 16-byte big-endian key (upstream's rax key).
fn id_key(id: StreamId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.ms.to_be_bytes());
    k[8..].copy_from_slice(&id.seq.to_be_bytes());
    k
}

fn write_stream(w: &mut Writer, s: &Stream, compress: bool) {
    w.len(s.node_count() as u64);
    for (id, lp) in s.nodes() {
        w.string(&id_key(id), compress);
        w.string(lp.as_bytes(), compress);
    }
    w.len(s.len());
    for id in [s.last_id(), s.first_id(), s.max_deleted_entry_id()] {
        w.len(id.ms);
        w.len(id.seq);
    }
    w.len(s.entries_added());
    let Some(groups) = s.groups() else {
        w.len(0);
        return;
    };
    w.len(groups.len() as u64);
    for (name, g) in groups {
        w.string(name, compress);
        w.len(g.last_id.ms);
        w.len(g.last_id.seq);
        // Saved as an unsigned length: -1 (unknown) becomes 2^64-1, as upstream.
        w.len(g.entries_read as u64);
        w.len(g.pel.len() as u64);
        for (id, pe) in &g.pel {
            w.bytes(&id_key(*id));
            w.millis(pe.delivery_time);
            w.len(pe.delivery_count);
        }
        w.len(g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            w.string(cname, compress);
            w.millis(c.seen_time);
            w.millis(c.active_time);
            w.len(c.pel.len() as u64);
            for id in &c.pel {
                w.bytes(&id_key(*id));
            }
        }
    }
}

/// The error [`from_object`] returns for an empty collection: upstream reports the key
/// as empty and `rdbLoad` skips it (RESTORE refuses it as bad data). Callers compare
/// the reason with this to tell it from corruption.
pub const EMPTY_KEY: &str = "empty key";

/// Turns a decoded object into a value, converting encodings by the config's
/// thresholds as upstream does on load (e.g. a listpack hash over
/// `hash-max-listpack-entries` becomes a hashtable). Errors are the reason the
/// object is invalid (duplicate members, bad listpack...); an empty collection is
/// `Err(EMPTY_KEY)`. Hash fields whose TTL has passed are kept (as upstream: the
/// active expiry reclaims them).
pub fn from_object(o: Object, cfg: &Config) -> Result<Value, String> {
    let opts = ListOpts {
        fill: cfg.list_max_listpack_size,
        depth: cfg.list_compress_depth,
    };
    Ok(match o {
        Object::String(b) => Value::from_vec(b.into_owned()),
        Object::ListElems(elems) => {
            if elems.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            let mut l = List::new();
            for e in &elems {
                l.grow_check(opts, e.len(), 1);
                l.push(e, false);
            }
            Value::List(l)
        }
        Object::ListNodes(nodes) => {
            let mut out = Vec::with_capacity(nodes.len());
            for n in nodes {
                match n {
                    ListNode::Plain(b) => {
                        if b.is_empty() {
                            return Err("Quicklist integrity check failed.".into());
                        }
                        out.push(LoadNode::Plain(b.into_owned()));
                    }
                    ListNode::Packed(b) => {
                        let lp = Listpack::from_bytes(b)
                            .ok_or_else(|| "Listpack integrity check failed.".to_string())?;
                        // Empty nodes are skipped, as upstream.
                        if !lp.is_empty() {
                            out.push(LoadNode::Packed(lp));
                        }
                    }
                }
            }
            if out.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            Value::List(List::from_nodes(out, opts))
        }
        Object::SetIntset(b) => {
            let is = Intset::from_bytes(b)
                .ok_or_else(|| "Intset integrity check failed.".to_string())?;
            let mut set = Set::from_intset(is);
            if set.len() > cfg.set_max_intset_entries {
                set.convert_to_dict(0);
            }
            Value::Set(set)
        }
        Object::SetListpack(b) => {
            let lp = Listpack::from_bytes(b)
                .ok_or_else(|| "Set listpack integrity check failed.".to_string())?;
            if lp.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            if has_dups(&lp, 1) {
                return Err("Set listpack integrity check failed.".into());
            }
            let mut set = Set::from_listpack(lp);
            if set.len() > cfg.set_max_listpack_entries {
                set.convert_to_dict(0);
            }
            Value::Set(set)
        }
        Object::SetElems(elems) => {
            if elems.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            let lim = SetLimits::from_config(cfg);
            let max_intset = cfg.set_max_intset_entries.min(1 << 30);
            let mut set = if elems.len() > max_intset {
                Set::new_dict(elems.len())
            } else {
                Set::new_intset()
            };
            for e in &elems {
                if !set.add(e, &lim) {
                    return Err("Duplicate set members detected".into());
                }
            }
            Value::Set(set)
        }
        Object::ZSetListpack(b) => {
            let lp = Listpack::from_bytes(b)
                .ok_or_else(|| "Zset listpack integrity check failed.".to_string())?;
            if lp.len() % 2 != 0 || has_dups(&lp, 2) {
                return Err("Zset listpack integrity check failed.".into());
            }
            if lp.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            let mut it = lp.iter();
            while let (Some(_), Some(score)) = (it.next(), it.next()) {
                if let LpEntry::Str(t) = score {
                    if crate::util::parse_f64(t).is_none_or(|f| f.is_nan()) {
                        return Err("Zset listpack with NAN score detected".into());
                    }
                }
            }
            let n = lp.len() / 2;
            let mut z = ZSet::from_listpack(lp);
            if n > cfg.zset_max_listpack_entries {
                z.convert_to_big(n);
            }
            Value::ZSet(z)
        }
        Object::ZSetElems(elems) => {
            if elems.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            let mut seen = HashSet::with_capacity(elems.len());
            let mut maxlen = 0;
            let mut total: usize = 0;
            for (m, score) in &elems {
                if score.is_nan() {
                    return Err("Zset with NAN score detected".into());
                }
                if !seen.insert(&m[..]) {
                    return Err("Duplicate zset fields detected".into());
                }
                maxlen = maxlen.max(m.len());
                total = total.saturating_add(m.len());
            }
            drop(seen);
            let mut items: Vec<(Vec<u8>, f64)> = elems
                .into_iter()
                .map(|(m, s)| (m.into_owned(), s))
                .collect();
            items.sort_by(|a, b| cmp_elems(a.1, &a.0, b.1, &b.0));
            let small = items.len() <= cfg.zset_max_listpack_entries
                && maxlen <= cfg.zset_max_listpack_value
                && total < LISTPACK_SAFE_BYTES;
            Value::ZSet(ZSet::from_sorted(&items, small))
        }
        Object::HashListpack(b) => {
            let lp = Listpack::from_bytes(b)
                .ok_or_else(|| "Hash listpack integrity check failed.".to_string())?;
            if lp.len() % 2 != 0 || has_dups(&lp, 2) {
                return Err("Hash listpack integrity check failed.".into());
            }
            if lp.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            let n = lp.len() / 2;
            let mut h = Hash::from_listpack(lp);
            if n > cfg.hash_max_listpack_entries {
                h.convert(n);
            }
            Value::Hash(h)
        }
        Object::HashElems(fields) => {
            if fields.is_empty() {
                return Err(EMPTY_KEY.into());
            }
            let maxv = cfg.hash_max_listpack_value;
            let mut total: usize = 0;
            let mut table = fields.len() > cfg.hash_max_listpack_entries;
            for (f, v, exp) in &fields {
                if *exp < EXPIRY_NONE {
                    return Err("Hash field with an invalid expiry".into());
                }
                total = total.saturating_add(f.len()).saturating_add(v.len());
                table |= *exp != EXPIRY_NONE || f.len() > maxv || v.len() > maxv;
            }
            table |= total >= LISTPACK_SAFE_BYTES;
            let mut h = Hash::new();
            if table {
                h.convert(fields.len());
                for (f, v, exp) in &fields {
                    let before = h.len();
                    h.set(f, v, *exp, false, i64::MIN, usize::MAX, usize::MAX);
                    if h.len() == before {
                        return Err("Duplicate hash fields detected".into());
                    }
                }
            } else {
                let mut seen = HashSet::with_capacity(fields.len());
                let mut lp = Listpack::new();
                for (f, v, _) in &fields {
                    if !seen.insert(&f[..]) {
                        return Err("Duplicate hash fields detected".into());
                    }
                    lp.append(f);
                    lp.append(v);
                }
                h = Hash::from_listpack(lp);
            }
            Value::Hash(h)
        }
        Object::Stream(so) => Value::Stream(stream_from(*so)?),
    })
}

/// Upstream's listpack size bound (`lpSafeToAdd`: 1 GiB).
const LISTPACK_SAFE_BYTES: usize = 1 << 30;

/// Whether a listpack of sets (`step` 1) or pairs (`step` 2: keys at even positions)
/// repeats a key. Equal elements have equal encodings (canonical integers are always
/// stored as integers), so entries compare directly. The listpack is walked once:
/// small ones into a stack array compared pairwise, big ones sorted.
fn has_dups(lp: &Listpack, step: usize) -> bool {
    const SMALL: usize = 32;
    let n = lp.len() / step;
    if n <= SMALL {
        let mut keys = [LpEntry::Int(0); SMALL];
        let mut k = 0;
        for e in lp.iter().step_by(step) {
            if k == SMALL {
                break;
            }
            keys[k] = e;
            k += 1;
        }
        let keys = &keys[..k];
        (1..k).any(|i| keys[..i].contains(&keys[i]))
    } else {
        let mut keys: Vec<LpEntry> = lp.iter().step_by(step).collect();
        keys.sort_unstable();
        keys.windows(2).any(|w| w[0] == w[1])
    }
}

fn sid(id: rdb::object::StreamId) -> StreamId {
    StreamId::new(id.0, id.1)
}

/// Builds a stream, checking what upstream checks while loading one.
fn stream_from(so: rdb::object::StreamObject) -> Result<Stream, String> {
    let mut nodes = BTreeMap::new();
    for (id, b) in so.nodes {
        let lp = Listpack::from_bytes(b)
            .ok_or_else(|| "Stream listpack integrity check failed.".to_string())?;
        if lp.is_empty() {
            return Err("Empty listpack inside stream".into());
        }
        if nodes.insert(sid(id), lp).is_some() {
            return Err("Listpack re-added with existing key".into());
        }
    }
    if so.length > 0 && nodes.is_empty() {
        return Err("Stream length inconsistent with rax entries".into());
    }
    let groups = if so.groups.is_empty() {
        None
    } else {
        let mut groups = BTreeMap::new();
        for g in so.groups {
            let mut pel = BTreeMap::new();
            for (id, delivery_time, delivery_count) in g.pel {
                let pe = PendingEntry {
                    delivery_time,
                    delivery_count,
                    consumer: Vec::new(),
                };
                if pel.insert(sid(id), pe).is_some() {
                    return Err("Duplicated global PEL entry loading stream consumer group".into());
                }
            }
            let mut owned = BTreeSet::new();
            let mut consumers = BTreeMap::new();
            for c in g.consumers {
                let mut cpel = BTreeSet::new();
                for id in c.pel {
                    let id = sid(id);
                    let Some(pe) = pel.get_mut(&id) else {
                        return Err("Consumer entry not found in group global PEL".into());
                    };
                    if !owned.insert(id) {
                        return Err(
                            "Duplicated consumer PEL entry loading a stream consumer group".into(),
                        );
                    }
                    pe.consumer = c.name.clone();
                    cpel.insert(id);
                }
                let consumer = Consumer {
                    seen_time: c.seen_time,
                    active_time: c.active_time,
                    pel: cpel,
                };
                if consumers.insert(c.name, consumer).is_some() {
                    return Err("Duplicate stream consumer detected.".into());
                }
            }
            if owned.len() != pel.len() {
                return Err("Stream CG PEL entry without consumer".into());
            }
            let cg = ConsumerGroup {
                last_id: sid(g.last_id),
                entries_read: g.entries_read,
                pel,
                consumers,
            };
            if groups.insert(g.name, cg).is_some() {
                return Err("Duplicated consumer group name".into());
            }
        }
        Some(groups)
    };
    let mut s = Stream::from_parts(
        nodes,
        so.length,
        sid(so.last_id),
        sid(so.first_id),
        sid(so.max_deleted_entry_id),
        so.entries_added,
        groups,
    );
    // Types before 19 do not store the first ID: derive it from the nodes.
    if so.first_id == (0, 0) && so.length > 0 {
        if let Some(first) = s.edge_id(true) {
            s.set_first_id(first);
        }
    }
    Ok(s)
}

/// Decodes a value of type `typ` from `r` and converts it (read_object + from_object).
pub fn read_value(r: &mut Reader, typ: u8, cfg: &Config, lim: &Limits) -> rdb::Result<Value> {
    let start = r.offset();
    let o = rdb::object::read_object(r, typ, lim)?;
    from_object(o, cfg).map_err(|reason| rdb::Error::corrupt(start, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::zset::AddFlags;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Type byte + value, as a DUMP payload without its 10-byte footer.
    fn dumped(v: ValueRef, compress: bool) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(object_type(v));
        write_value(&mut w, v, compress);
        w.into_inner()
    }

    /// Expected bytes: DUMP payloads of the reference (valkey 9.1.2, rdbcompression yes)
    /// without the RDB version and CRC.
    fn check(v: ValueRef, hex: &str) {
        assert_eq!(dumped(v, true), unhex(hex), "{v:?}");
    }

    /// Same with `rdbcompression no` (LZF output of the `lzf` crate differs from
    /// upstream's liblzf on some inputs: that is the codec's concern, not the layout's).
    fn check_raw(v: ValueRef, hex: &str) {
        assert_eq!(dumped(v, false), unhex(hex), "{v:?}");
    }

    fn list(items: &[&[u8]], fill: i32, depth: i32) -> List {
        let opts = ListOpts { fill, depth };
        let mut l = List::new();
        l.grow_check(opts, items.iter().map(|i| i.len()).sum(), items.len());
        for i in items {
            l.push(i, false);
        }
        l
    }

    const SETLIM: SetLimits = SetLimits {
        intset_entries: 512,
        lp_entries: 128,
        lp_value: 64,
    };

    fn set(items: &[&[u8]], lim: &SetLimits) -> Set {
        let mut s = Set::create(items[0], items.len(), lim);
        for i in items {
            s.add(i, lim);
        }
        s
    }

    fn zset(items: &[(f64, &[u8])], max_entries: usize) -> ZSet {
        let mut z = ZSet::create(items.len(), 1, max_entries, 64);
        for (s, m) in items {
            z.add(*s, m, AddFlags::default(), max_entries, 64);
        }
        z
    }

    fn hash(items: &[(&[u8], &[u8])], max_entries: usize) -> Hash {
        let mut h = Hash::new();
        for (f, v) in items {
            h.set(f, v, EXPIRY_NONE, false, 0, max_entries, 64);
        }
        h
    }

    #[test]
    fn strings_as_upstream() {
        check(ValueRef::Int(12345), "00c13930");
        check(ValueRef::Int(3000000000), "000a33303030303030303030");
        check(ValueRef::Str(b"hello"), "000568656c6c6f");
        check(ValueRef::Str(&[b'a'; 100]), "00c3094064016161e05700016161");
    }

    #[test]
    fn lists_as_upstream() {
        let l = list(&[b"a", b"b", b"1", b"2"], -2, 0);
        check(
            ValueRef::List(&l),
            "1201021111000000040081610281620201010201ff",
        );
        let items: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("element-{i:04}-xxxxxxxxxxxxxxxx").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = items.iter().map(|v| &v[..]).collect();
        let l = list(&refs, 4, 0);
        let node = |first: usize| {
            let mut h = String::from("0240838300000004009d");
            for i in first..first + 4 {
                h += &hex(format!("element-{i:04}-xxxxxxxxxxxxxxxx").as_bytes());
                h += if i + 1 < first + 4 { "1e9d" } else { "1eff" };
            }
            h
        };
        let expect: String = std::iter::once("1205".to_string())
            .chain((0..5).map(|n| node(n * 4)))
            .collect();
        check_raw(ValueRef::List(&l), &expect);
        // With list-compress-depth 1 the inner nodes are saved as their LZF data with
        // the node's size: decompressed, the same bytes.
        let lc = list(&refs, 4, 1);
        let saved = dumped(ValueRef::List(&lc), false);
        assert_ne!(saved, unhex(&expect), "inner nodes are compressed");
        let mut r = Reader::new(&saved[1..]);
        let mut w = Writer::new();
        w.u8(rdb::TYPE_LIST_QUICKLIST_2);
        let n = r.len().unwrap();
        w.len(n);
        for _ in 0..n {
            w.len(r.len().unwrap());
            w.string(&r.string(1 << 20).unwrap(), false);
        }
        assert_eq!(w.into_inner(), unhex(&expect));
        let big = vec![b'y'; 5000];
        let l = list(&[b"x", &big, b"z"], -1, 0);
        let expect = format!(
            "1203020a0a0000000100817802ff015388{}020a0a0000000100817a02ff",
            hex(&big)
        );
        check_raw(ValueRef::List(&l), &expect);
    }

    #[test]
    fn sets_as_upstream() {
        check(
            ValueRef::Set(&set(&[b"1", b"2", b"3"], &SETLIM)),
            "0b0e0200000003000000010002000300",
        );
        check(
            ValueRef::Set(&set(&[b"a", b"b", b"c"], &SETLIM)),
            "1410100000000300816102816202816302ff",
        );
        let lim = SetLimits {
            lp_entries: 0,
            ..SETLIM
        };
        check(ValueRef::Set(&set(&[b"abc"], &lim)), "020103616263");
    }

    #[test]
    fn zsets_as_upstream() {
        let items: [(f64, &[u8]); 3] = [(1.0, b"a"), (2.0, b"b"), (1.5, b"c")];
        check(
            ValueRef::ZSet(&zset(&items, 128)),
            "1119190000000600816102010181630283312e35048162020201ff",
        );
        let items: [(f64, &[u8]); 3] = [(1.0, b"a"), (2.0, b"b"), (3.0, b"c")];
        check(
            ValueRef::ZSet(&zset(&items, 0)),
            "050301630000000000000840016200000000000000400161000000000000f03f",
        );
    }

    #[test]
    fn hashes_as_upstream() {
        check(
            ValueRef::Hash(&hash(&[(b"f", b"v"), (b"f2", b"2")], 128)),
            "1013130000000400816602817602826632030201ff",
        );
        check(ValueRef::Hash(&hash(&[(b"f", b"v")], 0)), "040101660176");
        let mut h = hash(&[(b"f", b"v")], 0);
        h.set_expire(b"f", 99999999999999, 0, 0);
        check(ValueRef::Hash(&h), "160101660176ff3f7a10f35a0000");
        let mut h = hash(&[(b"f", b"v"), (b"g", b"w")], 0);
        h.set_expire(b"f", 99999999999999, 0, 0);
        let got = dumped(ValueRef::Hash(&h), true);
        // Field order is the table's: either order is a valid encoding.
        let a = unhex("160201660176ff3f7a10f35a000001670177ffffffffffffffff");
        let b = unhex("160201670177ffffffffffffffff01660176ff3f7a10f35a0000");
        assert!(got == a || got == b, "{got:02x?}");
    }

    #[test]
    fn streams_as_upstream() {
        let mut s = Stream::new();
        s.append(
            &[b"a", b"1"],
            Some((StreamId::new(1, 1), true)),
            0,
            4096,
            100,
        )
        .unwrap();
        s.append(
            &[b"b", b"2"],
            Some((StreamId::new(2, 0), true)),
            0,
            4096,
            100,
        )
        .unwrap();
        s.groups_mut().insert(
            b"g".to_vec(),
            ConsumerGroup {
                entries_read: -1,
                ..Default::default()
            },
        );
        check_raw(
            ValueRef::Stream(&s),
            "150110000000000000000100000000000000012c2c000000110002010001010181610200010201000100010101040100010101dfff02010181620202010601ff0202000101000002010167000081ffffffffffffffff0000",
        );
        let mut s = Stream::new();
        s.append(
            &[b"f", b"v"],
            Some((StreamId::new(5, 5), true)),
            0,
            4096,
            100,
        )
        .unwrap();
        s.delete_ids(&[StreamId::new(5, 5)]);
        check(ValueRef::Stream(&s), "1500000505000005050100");
    }
}

#[cfg(test)]
mod load_tests {
    use std::borrow::Cow;

    use super::*;
    use crate::object::Encoding;
    use rdb::object::{StreamConsumer, StreamGroup, StreamObject};

    fn cfg() -> Config {
        Config::default()
    }

    fn c(b: &[u8]) -> Cow<'_, [u8]> {
        Cow::Borrowed(b)
    }

    fn enc(v: &Value) -> Encoding {
        match v {
            Value::List(l) => l.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Hash(h) => h.encoding(),
            _ => Encoding::Raw,
        }
    }

    #[test]
    fn strings() {
        assert_eq!(
            from_object(Object::String(c(b"12")), &cfg()),
            Ok(Value::Int(12))
        );
        assert!(matches!(
            from_object(Object::String(c(b"012")), &cfg()),
            Ok(Value::Str { .. })
        ));
    }

    #[test]
    fn sets_convert_by_thresholds() {
        let mut cfg = cfg();
        let v = from_object(Object::SetElems(vec![c(b"1"), c(b"2")]), &cfg).unwrap();
        assert_eq!(enc(&v), Encoding::Intset);
        let v = from_object(Object::SetElems(vec![c(b"1"), c(b"a")]), &cfg).unwrap();
        assert_eq!(enc(&v), Encoding::Listpack);
        assert_eq!(
            from_object(Object::SetElems(vec![c(b"a"), c(b"a")]), &cfg),
            Err("Duplicate set members detected".into())
        );
        assert_eq!(
            from_object(Object::SetElems(vec![]), &cfg),
            Err(EMPTY_KEY.into())
        );
        let mut lp = Listpack::new();
        lp.append(b"a");
        lp.append(b"b");
        let v = from_object(Object::SetListpack(lp.as_bytes().to_vec()), &cfg).unwrap();
        assert_eq!(enc(&v), Encoding::Listpack);
        cfg.set_max_listpack_entries = 1;
        let v = from_object(Object::SetListpack(lp.as_bytes().to_vec()), &cfg).unwrap();
        assert_eq!(enc(&v), Encoding::Hashtable);
        lp.append(b"a");
        assert!(from_object(Object::SetListpack(lp.as_bytes().to_vec()), &cfg).is_err());
        assert!(from_object(Object::SetListpack(vec![1, 2, 3]), &cfg).is_err());
        assert!(from_object(Object::SetIntset(vec![2, 0, 0, 0, 0, 0, 0, 0]), &cfg).is_err());
    }

    #[test]
    fn round_trips_through_write_value() {
        // write_value's blob forms adopt back into the same value.
        let cfg = cfg();
        let mut h = Hash::new();
        h.set(b"f", b"v", EXPIRY_NONE, false, 0, 128, 64);
        let lp = h.listpack().unwrap().as_bytes().to_vec();
        let v = from_object(Object::HashListpack(lp), &cfg).unwrap();
        assert_eq!(v, Value::Hash(h));
        let z = ZSet::from_sorted(&[(b"a".to_vec(), 1.0), (b"b".to_vec(), 2.5)], true);
        let lp = z.as_listpack().unwrap().as_bytes().to_vec();
        let v = from_object(Object::ZSetListpack(lp), &cfg).unwrap();
        assert_eq!(v, Value::ZSet(z));
    }

    #[test]
    fn zsets_and_hashes_from_elements() {
        let mut cfg = cfg();
        let v = from_object(
            Object::ZSetElems(vec![(c(b"b"), 2.0), (c(b"a"), 1.0)]),
            &cfg,
        )
        .unwrap();
        assert_eq!(enc(&v), Encoding::Listpack);
        if let Value::ZSet(z) = &v {
            let m: Vec<Vec<u8>> = z.iter_from(0, false).map(|(m, _)| m.to_vec()).collect();
            assert_eq!(m, vec![b"a".to_vec(), b"b".to_vec()]);
        }
        assert!(from_object(Object::ZSetElems(vec![(c(b"a"), f64::NAN)]), &cfg).is_err());
        assert!(from_object(
            Object::ZSetElems(vec![(c(b"a"), 1.0), (c(b"a"), 2.0)]),
            &cfg
        )
        .is_err());
        cfg.zset_max_listpack_entries = 1;
        let v = from_object(
            Object::ZSetElems(vec![(c(b"b"), 2.0), (c(b"a"), 1.0)]),
            &cfg,
        )
        .unwrap();
        assert_eq!(enc(&v), Encoding::Skiplist);

        let v = from_object(Object::HashElems(vec![(c(b"f"), c(b"v"), -1)]), &cfg).unwrap();
        assert_eq!(enc(&v), Encoding::Listpack);
        let v = from_object(Object::HashElems(vec![(c(b"f"), c(b"v"), 5)]), &cfg).unwrap();
        assert_eq!(enc(&v), Encoding::Hashtable);
        if let Value::Hash(h) = &v {
            assert_eq!(h.next_expiry(), Some(5));
        }
        assert!(from_object(
            Object::HashElems(vec![(c(b"f"), c(b"v"), -1), (c(b"f"), c(b"w"), -1)]),
            &cfg
        )
        .is_err());
        assert!(from_object(Object::HashElems(vec![(c(b"f"), c(b"v"), -7)]), &cfg).is_err());
    }

    #[test]
    fn lists_from_nodes() {
        let cfg = cfg();
        let mut lp = Listpack::new();
        lp.append(b"a");
        lp.append(b"b");
        let v = from_object(
            Object::ListNodes(vec![ListNode::Packed(lp.as_bytes().to_vec())]),
            &cfg,
        )
        .unwrap();
        assert_eq!(enc(&v), Encoding::Listpack);
        let v = from_object(
            Object::ListNodes(vec![
                ListNode::Packed(lp.as_bytes().to_vec()),
                ListNode::Plain(c(b"big")),
            ]),
            &cfg,
        )
        .unwrap();
        assert_eq!(enc(&v), Encoding::Quicklist);
        if let Value::List(l) = &v {
            assert_eq!(l.len(), 3);
        }
        assert_eq!(
            from_object(
                Object::ListNodes(vec![ListNode::Packed(Listpack::new().as_bytes().to_vec())]),
                &cfg
            ),
            Err(EMPTY_KEY.into())
        );
        let v = from_object(Object::ListElems(vec![c(b"x"), c(b"y")]), &cfg).unwrap();
        assert_eq!(enc(&v), Encoding::Listpack);
    }

    #[test]
    fn streams_check_groups() {
        let cfg = cfg();
        let mut s = Stream::new();
        s.append(
            &[b"a", b"1"],
            Some((StreamId::new(1, 1), true)),
            0,
            4096,
            100,
        )
        .unwrap();
        let nodes: Vec<_> = s
            .nodes()
            .map(|(id, lp)| ((id.ms, id.seq), lp.as_bytes().to_vec()))
            .collect();
        let mk = |cpel: Vec<(u64, u64)>| StreamObject {
            nodes: nodes.clone(),
            length: 1,
            last_id: (1, 1),
            first_id: (0, 0),
            max_deleted_entry_id: (0, 0),
            entries_added: 1,
            groups: vec![StreamGroup {
                name: b"g".to_vec(),
                last_id: (1, 1),
                entries_read: 1,
                pel: vec![((1, 1), 7, 1)],
                consumers: vec![StreamConsumer {
                    name: b"c".to_vec(),
                    seen_time: 7,
                    active_time: 7,
                    pel: cpel,
                }],
            }],
        };
        let v = from_object(Object::Stream(Box::new(mk(vec![(1, 1)]))), &cfg).unwrap();
        let Value::Stream(st) = &v else { panic!() };
        assert_eq!(st.first_id(), StreamId::new(1, 1));
        let g = &st.groups().unwrap()[&b"g".to_vec()];
        assert_eq!(g.pel[&StreamId::new(1, 1)].consumer, b"c".to_vec());
        assert!(from_object(Object::Stream(Box::new(mk(vec![]))), &cfg).is_err());
        assert!(from_object(Object::Stream(Box::new(mk(vec![(2, 2)]))), &cfg).is_err());
        assert!(from_object(Object::Stream(Box::new(mk(vec![(1, 1), (1, 1)]))), &cfg).is_err());
        // And it saves as it was built.
        let mut w = Writer::new();
        write_value(&mut w, ValueRef::Stream(st), false);
        assert!(!w.into_inner().is_empty());
    }
}
