//! Object values: decoding every object type the reference loads into an
//! intermediate form ([`Object`]) the server turns into its own types, and the
//! per-type layouts the server's encoder follows (see `docs/rdb.md`).
//!
//! Compact encodings (listpack, intset) are returned as their validated bytes so
//! the server can adopt them without re-encoding, as upstream does. Legacy
//! encodings (linked list, ziplist, zipmap, quicklist of ziplists) are
//! converted: to element lists, or to listpack nodes.
//!
//! Strings borrow from the input when they are stored raw (`Cow::Borrowed`), so
//! loading a big collection does not allocate twice.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::encoding::Reader;
use crate::{intset, listpack, stream, Error, Result};

/// Limits and checks applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest string accepted (`proto-max-bulk-len`).
    pub max_string: u64,
    /// Deep-check listpacks, intsets and streams (`sanitize-dump-payload`):
    /// every entry is walked, duplicates in sets/hashes/zsets are refused, and
    /// stream consumer PELs must match the group PEL. Without it only the
    /// headers and total sizes are checked (the server still never reads out of
    /// bounds: its types validate structure in `from_bytes`).
    pub deep: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string: 512 * 1024 * 1024,
            deep: false,
        }
    }
}

/// One quicklist node of a list.
#[derive(Debug, Clone, PartialEq)]
pub enum ListNode<'a> {
    /// A listpack of elements (`QUICKLIST_NODE_CONTAINER_PACKED`), validated.
    Packed(Vec<u8>),
    /// One big element stored alone (`QUICKLIST_NODE_CONTAINER_PLAIN`).
    Plain(Cow<'a, [u8]>),
}

/// A stream ID as stored (ms, seq).
pub type StreamId = (u64, u64);

/// A decoded stream (types 15, 19, 21).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamObject {
    /// (master ID of the node, the node's listpack), in ID order; validated.
    pub nodes: Vec<(StreamId, Vec<u8>)>,
    pub length: u64,
    pub last_id: StreamId,
    /// Zero for type 15 (unknown: the server derives it).
    pub first_id: StreamId,
    pub max_deleted_entry_id: StreamId,
    /// For type 15: `length` (upstream's assumption).
    pub entries_added: u64,
    pub groups: Vec<StreamGroup>,
}

/// A consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamGroup {
    pub name: Vec<u8>,
    pub last_id: StreamId,
    /// -1 (`SCG_INVALID_ENTRIES_READ`) when unknown (types before 21).
    pub entries_read: i64,
    /// The group PEL: (id, delivery time ms, delivery count), in ID order.
    pub pel: Vec<(StreamId, i64, u64)>,
    pub consumers: Vec<StreamConsumer>,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamConsumer {
    pub name: Vec<u8>,
    pub seen_time: i64,
    /// = seen_time for types before 21.
    pub active_time: i64,
    /// IDs of its pending entries; each is in the group PEL (checked).
    pub pel: Vec<StreamId>,
}

/// A hash field: (field, value, expire ms or -1 for none).
pub type HashField<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>, i64);

/// A decoded value, by the form it was stored in.
#[derive(Debug, Clone, PartialEq)]
pub enum Object<'a> {
    /// Type 0 (any string form).
    String(Cow<'a, [u8]>),
    /// Type 1 (linked list) and type 10 (ziplist): the elements in order.
    ListElems(Vec<Cow<'a, [u8]>>),
    /// Types 14 (ziplist nodes, converted) and 18: the quicklist nodes.
    ListNodes(Vec<ListNode<'a>>),
    /// Type 11: intset bytes, validated.
    SetIntset(Vec<u8>),
    /// Type 20: listpack bytes, validated.
    SetListpack(Vec<u8>),
    /// Type 2: the members.
    SetElems(Vec<Cow<'a, [u8]>>),
    /// Type 17 (and 12, converted): listpack of member/score pairs, validated.
    ZSetListpack(Vec<u8>),
    /// Types 3 and 5: (member, score).
    ZSetElems(Vec<(Cow<'a, [u8]>, f64)>),
    /// Type 16 (and 13 and 9, converted): listpack of field/value pairs, validated.
    HashListpack(Vec<u8>),
    /// Type 4 and type 22: (field, value, expire ms or -1 for none).
    HashElems(Vec<HashField<'a>>),
    /// Types 15, 19, 21.
    Stream(Box<StreamObject>),
}

/// Quicklist node containers (type 18).
pub const QUICKLIST_NODE_CONTAINER_PLAIN: u64 = 1;
pub const QUICKLIST_NODE_CONTAINER_PACKED: u64 = 2;

/// Decodes the value of an object of type `typ` (the type byte already read).
/// Unknown, module and foreign types are `Error::Corrupt`.
///
/// Empty values (a quicklist whose nodes are all empty, an empty listpack) are
/// returned as such: upstream skips such keys while loading, the caller
/// decides.
pub fn read_object<'a>(r: &mut Reader<'a>, typ: u8, lim: &Limits) -> Result<Object<'a>> {
    let at = r.offset();
    match typ {
        crate::TYPE_STRING => Ok(Object::String(r.string(lim.max_string)?)),
        crate::TYPE_LIST => {
            let n = r.len()?;
            let mut v = Vec::with_capacity(cap(n, r));
            for _ in 0..n {
                v.push(r.string(lim.max_string)?);
            }
            Ok(Object::ListElems(v))
        }
        crate::TYPE_SET => {
            let n = r.len()?;
            let mut v = Vec::with_capacity(cap(n, r));
            let mut seen = HashSet::with_capacity(if lim.deep { cap(n, r) } else { 0 });
            for _ in 0..n {
                let el_at = r.offset();
                let el = r.string(lim.max_string)?;
                if lim.deep && !seen.insert(el.clone()) {
                    return Err(Error::corrupt(el_at, "Duplicate set members detected"));
                }
                v.push(el);
            }
            Ok(Object::SetElems(v))
        }
        crate::TYPE_ZSET | crate::TYPE_ZSET_2 => {
            let n = r.len()?;
            let mut v = Vec::with_capacity(cap(n, r));
            let mut seen = HashSet::with_capacity(if lim.deep { cap(n, r) } else { 0 });
            for _ in 0..n {
                let el_at = r.offset();
                let el = r.string(lim.max_string)?;
                let sc_at = r.offset();
                let score = if typ == crate::TYPE_ZSET_2 {
                    r.double_binary()?
                } else {
                    read_text_double(r)?
                };
                if score.is_nan() {
                    return Err(Error::corrupt(sc_at, "Zset with NAN score detected"));
                }
                if lim.deep && !seen.insert(el.clone()) {
                    return Err(Error::corrupt(el_at, "Duplicate zset fields detected"));
                }
                v.push((el, score));
            }
            Ok(Object::ZSetElems(v))
        }
        crate::TYPE_HASH | crate::TYPE_HASH_2 => {
            let n = r.len()?;
            let mut v = Vec::with_capacity(cap(n, r));
            let mut seen = HashSet::with_capacity(if lim.deep { cap(n, r) } else { 0 });
            for _ in 0..n {
                let f_at = r.offset();
                let f = r.string(lim.max_string)?;
                let val = r.string(lim.max_string)?;
                let mut exp = -1;
                if typ == crate::TYPE_HASH_2 {
                    let e_at = r.offset();
                    exp = r.millis()?;
                    if exp < -1 {
                        return Err(Error::corrupt(
                            e_at,
                            format!("Hash field expire time {exp} invalid"),
                        ));
                    }
                }
                if lim.deep && !seen.insert(f.clone()) {
                    return Err(Error::corrupt(f_at, "Duplicate hash fields detected"));
                }
                v.push((f, val, exp));
            }
            Ok(Object::HashElems(v))
        }
        crate::TYPE_LIST_QUICKLIST_2 => read_quicklist2(r, lim),
        crate::TYPE_SET_INTSET => {
            let blob = r.string(lim.max_string)?;
            intset::validate(&blob, lim.deep)
                .map_err(|e| wrap(at, "Intset integrity check failed.", e))?;
            Ok(Object::SetIntset(blob.into_owned()))
        }
        crate::TYPE_SET_LISTPACK => {
            let blob = r.string(lim.max_string)?;
            listpack::validate_dups(&blob, lim.deep, false)
                .map_err(|e| wrap(at, "Set listpack integrity check failed.", e))?;
            Ok(Object::SetListpack(blob.into_owned()))
        }
        crate::TYPE_HASH_LISTPACK => {
            let blob = r.string(lim.max_string)?;
            let n = listpack::validate_dups(&blob, lim.deep, true)
                .map_err(|e| wrap(at, "Hash listpack integrity check failed.", e))?;
            if n != listpack::NUMELE_UNKNOWN as usize && n % 2 == 1 {
                return Err(Error::corrupt(
                    at,
                    "Hash listpack integrity check failed. (odd element count)",
                ));
            }
            Ok(Object::HashListpack(blob.into_owned()))
        }
        crate::TYPE_ZSET_LISTPACK => {
            let blob = r.string(lim.max_string)?;
            let n = listpack::validate_dups(&blob, lim.deep, true)
                .map_err(|e| wrap(at, "Zset listpack integrity check failed.", e))?;
            if n != listpack::NUMELE_UNKNOWN as usize && n % 2 == 1 {
                return Err(Error::corrupt(
                    at,
                    "Zset listpack integrity check failed. (odd element count)",
                ));
            }
            validate_zset_scores(&blob)
                .map_err(|e| wrap(at, "Zset listpack with NAN score detected", e))?;
            Ok(Object::ZSetListpack(blob.into_owned()))
        }
        crate::TYPE_STREAM_LISTPACKS
        | crate::TYPE_STREAM_LISTPACKS_2
        | crate::TYPE_STREAM_LISTPACKS_3 => read_stream(r, typ, lim),
        crate::TYPE_MODULE_PRE_GA => Err(Error::corrupt(
            at,
            "Pre-release module format not supported",
        )),
        crate::TYPE_MODULE_2 => {
            let id = r.len()?;
            Err(Error::corrupt(
                at,
                format!(
                    "The RDB file contains module data I can't load: no matching module type '{}'",
                    crate::file::module_name(id)
                ),
            ))
        }
        _ => crate::legacy::read_legacy(r, typ, lim, at),
    }
}

/// Preallocation for `n` announced elements: never more than the bytes left
/// (every element takes at least one byte), so a huge count on short input
/// allocates nothing big.
pub(crate) fn cap(n: u64, r: &Reader) -> usize {
    n.min(r.remaining() as u64).min(1 << 20) as usize
}

/// An error from a format validator (offsets inside the blob) reported at the
/// blob's offset in the input with upstream's message.
pub(crate) fn wrap(at: u64, msg: &str, e: Error) -> Error {
    match e {
        Error::Corrupt { offset, reason } => {
            Error::corrupt(at, format!("{msg} ({reason} at byte {offset} of the blob)"))
        }
        other => other,
    }
}

/// A double stored as text (ZSET type 3): a length byte, 253 = NaN, 254 =
/// +inf, 255 = -inf, else that many bytes of text (upstream rdbLoadDoubleValue).
pub fn read_text_double(r: &mut Reader) -> Result<f64> {
    let at = r.offset();
    let n = r.u8()?;
    match n {
        255 => Ok(f64::NEG_INFINITY),
        254 => Ok(f64::INFINITY),
        253 => Ok(f64::NAN),
        _ => {
            let b = r.bytes(n as u64)?;
            parse_double_text(b)
                .ok_or_else(|| Error::corrupt(at, "invalid double text in zset score"))
        }
    }
}

/// Parses a double as strtod would for the texts RDB writers produce
/// ("%.17g", "inf", "-inf", "nan").
pub fn parse_double_text(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim_start();
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" | "-nan" | "+nan" => return Some(f64::NAN),
        _ => {}
    }
    s.parse::<f64>().ok()
}

/// Upstream zzlValidateScores: every score of a zset listpack (odd entries)
/// must be a number and not NaN.
fn validate_zset_scores(lp: &[u8]) -> Result<()> {
    for (i, e) in listpack::iter(lp).enumerate() {
        let e = e?;
        if i % 2 == 1 {
            if let listpack::Entry::Str(s) = e {
                match parse_double_text(s) {
                    Some(v) if !v.is_nan() => {}
                    _ => return Err(Error::corrupt(0, "zset score is not a number")),
                }
            }
        }
    }
    Ok(())
}

fn read_quicklist2<'a>(r: &mut Reader<'a>, lim: &Limits) -> Result<Object<'a>> {
    let n = r.len()?;
    let mut nodes = Vec::with_capacity(cap(n, r));
    for _ in 0..n {
        let c_at = r.offset();
        let container = r.len()?;
        if container != QUICKLIST_NODE_CONTAINER_PACKED
            && container != QUICKLIST_NODE_CONTAINER_PLAIN
        {
            return Err(Error::corrupt(c_at, "Quicklist integrity check failed."));
        }
        let at = r.offset();
        let data = r.string(lim.max_string)?;
        if data.is_empty() {
            return Err(Error::corrupt(at, "Quicklist node is empty"));
        }
        if container == QUICKLIST_NODE_CONTAINER_PLAIN {
            nodes.push(ListNode::Plain(data));
            continue;
        }
        let count = listpack::validate(&data, lim.deep)
            .map_err(|e| wrap(at, "Listpack integrity check failed.", e))?;
        // Upstream silently skips empty nodes.
        if count == 0 {
            continue;
        }
        nodes.push(ListNode::Packed(data.into_owned()));
    }
    Ok(Object::ListNodes(nodes))
}

/// A stream ID stored as two lengths (ms, seq).
fn read_id(r: &mut Reader) -> Result<StreamId> {
    Ok((r.len()?, r.len()?))
}

/// A 16-byte big-endian raw ID (PEL entries).
fn read_raw_id(r: &mut Reader) -> Result<StreamId> {
    let at = r.offset();
    let b = r.bytes(16)?;
    stream::decode_id(b).ok_or_else(|| Error::corrupt(at, "bad stream ID"))
}

fn read_stream<'a>(r: &mut Reader<'a>, typ: u8, lim: &Limits) -> Result<Object<'a>> {
    let mut s = StreamObject::default();
    let n = r.len()?;
    let mut sorted = true;
    for _ in 0..n {
        let k_at = r.offset();
        let key = r.string(lim.max_string)?;
        let id = stream::decode_id(&key).ok_or_else(|| {
            Error::corrupt(k_at, "Stream node key entry is not the size of a stream ID")
        })?;
        let at = r.offset();
        let lp = r.string(lim.max_string)?;
        let non_empty = stream::validate_node(&lp, lim.deep)
            .map_err(|e| wrap(at, "Stream listpack integrity check failed.", e))?;
        if !non_empty {
            return Err(Error::corrupt(at, "Empty listpack inside stream"));
        }
        if let Some(last) = s.nodes.last().map(|n| n.0) {
            if id == last {
                return Err(Error::corrupt(k_at, "Listpack re-added with existing key"));
            }
            if id < last {
                sorted = false;
            }
        }
        s.nodes.push((id, lp.into_owned()));
    }
    if !sorted {
        s.nodes.sort_by_key(|a| a.0);
        if s.nodes.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Error::corrupt(
                r.offset(),
                "Listpack re-added with existing key",
            ));
        }
    }
    s.length = r.len()?;
    s.last_id = read_id(r)?;
    if typ >= crate::TYPE_STREAM_LISTPACKS_2 {
        s.first_id = read_id(r)?;
        s.max_deleted_entry_id = read_id(r)?;
        s.entries_added = r.len()?;
    } else {
        s.entries_added = s.length;
    }
    if s.length > 0 && s.nodes.is_empty() {
        return Err(Error::corrupt(
            r.offset(),
            "Stream length inconsistent with rax entries",
        ));
    }
    let ngroups = r.len()?;
    for _ in 0..ngroups {
        let g_at = r.offset();
        let name = r.string(lim.max_string)?.into_owned();
        if s.groups.iter().any(|g| g.name == name) {
            return Err(Error::corrupt(g_at, "Duplicated consumer group name"));
        }
        let mut g = StreamGroup {
            name,
            last_id: read_id(r)?,
            entries_read: -1,
            ..Default::default()
        };
        if typ >= crate::TYPE_STREAM_LISTPACKS_2 {
            g.entries_read = r.len()? as i64;
        }
        let npel = r.len()?;
        let mut pel_sorted = true;
        g.pel.reserve(cap(npel, r) / 16);
        for _ in 0..npel {
            let p_at = r.offset();
            let id = read_raw_id(r)?;
            let time = r.millis()?;
            let count = r.len()?;
            if let Some(&(last, _, _)) = g.pel.last() {
                if id == last {
                    return Err(Error::corrupt(
                        p_at,
                        "Duplicated global PEL entry loading stream consumer group",
                    ));
                }
                if id < last {
                    pel_sorted = false;
                }
            }
            g.pel.push((id, time, count));
        }
        if !pel_sorted {
            g.pel.sort_by_key(|a| a.0);
            if g.pel.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(Error::corrupt(
                    r.offset(),
                    "Duplicated global PEL entry loading stream consumer group",
                ));
            }
        }
        // Owner of each group PEL entry (index of the consumer), to refuse
        // NACKs shared by two consumers.
        let mut owner: Vec<u32> = vec![u32::MAX; g.pel.len()];
        let ncons = r.len()?;
        for ci in 0..ncons {
            let c_at = r.offset();
            let cname = r.string(lim.max_string)?.into_owned();
            if g.consumers.iter().any(|c| c.name == cname) {
                return Err(Error::corrupt(c_at, "Duplicate stream consumer detected."));
            }
            let seen_time = r.millis()?;
            let active_time = if typ >= crate::TYPE_STREAM_LISTPACKS_3 {
                r.millis()?
            } else {
                seen_time
            };
            let mut c = StreamConsumer {
                name: cname,
                seen_time,
                active_time,
                pel: Vec::new(),
            };
            let np = r.len()?;
            c.pel.reserve(cap(np, r) / 16);
            for _ in 0..np {
                let p_at = r.offset();
                let id = read_raw_id(r)?;
                let idx = g.pel.binary_search_by(|e| e.0.cmp(&id)).map_err(|_| {
                    Error::corrupt(p_at, "Consumer entry not found in group global PEL")
                })?;
                let ci32 = u32::try_from(ci).unwrap_or(u32::MAX - 1);
                match owner.get(idx).copied() {
                    Some(u32::MAX) => owner[idx] = ci32,
                    Some(o) if o == ci32 => {
                        return Err(Error::corrupt(
                            p_at,
                            "Duplicated consumer PEL entry  loading a stream consumer group",
                        ))
                    }
                    _ => {
                        return Err(Error::corrupt(
                            p_at,
                            "NACK already assigned to a different consumer, shared NACKs across consumers are not valid",
                        ))
                    }
                }
                c.pel.push(id);
            }
            g.consumers.push(c);
        }
        if lim.deep && owner.contains(&u32::MAX) {
            return Err(Error::corrupt(
                r.offset(),
                "Stream CG PEL entry without consumer",
            ));
        }
        s.groups.push(g);
    }
    Ok(Object::Stream(Box::new(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{Loader, Record, VersionCheck};
    use crate::listpack::Entry;

    const FIXTURE: &[u8] = include_bytes!("../tests/fixtures/types.rdb");

    fn lp_elems(lp: &[u8]) -> Vec<String> {
        listpack::iter(lp)
            .map(|e| String::from_utf8(e.unwrap().to_bytes()).unwrap())
            .collect()
    }

    fn s(c: &[u8]) -> String {
        String::from_utf8_lossy(c).into_owned()
    }

    type Loaded<'a> = Vec<(u64, String, u8, Object<'a>, Option<i64>)>;

    fn load(buf: &[u8], deep: bool) -> Result<Loaded<'_>> {
        let lim = Limits {
            deep,
            ..Limits::default()
        };
        let mut l = Loader::new(buf, VersionCheck::Strict, lim)?;
        let mut db = 0;
        let mut out = Vec::new();
        while let Some(rec) = l.next_record()? {
            match rec {
                Record::SelectDb(n) => db = n,
                Record::Key(k) => out.push((db, s(&k.key), k.typ, k.value, k.expire_ms)),
                _ => {}
            }
        }
        Ok(out)
    }

    #[test]
    fn reference_fixture() {
        for deep in [false, true] {
            let keys = load(FIXTURE, deep).unwrap();
            assert_eq!(keys.len(), 16);
            let get = |name: &str| {
                keys.iter()
                    .find(|k| k.1 == name)
                    .unwrap_or_else(|| panic!("{name}"))
            };
            assert_eq!(get("str").3, Object::String(Cow::Borrowed(b"hello")));
            assert_eq!(get("int").3, Object::String(Cow::Borrowed(b"12345")));
            assert_eq!(get("big").3, Object::String(Cow::Owned(b"ab".repeat(40))));
            assert!(get("ttl").4.is_some());
            assert_eq!(get("indb2").0, 2);
            match &get("list").3 {
                Object::ListNodes(n) => {
                    assert_eq!(n.len(), 1);
                    let ListNode::Packed(lp) = &n[0] else {
                        panic!()
                    };
                    assert_eq!(lp_elems(lp), ["a", "b", "1", "2", "300000"]);
                }
                o => panic!("{o:?}"),
            }
            match &get("qlist").3 {
                Object::ListNodes(n) => {
                    let all: Vec<String> = n
                        .iter()
                        .flat_map(|x| match x {
                            ListNode::Packed(lp) => lp_elems(lp),
                            ListNode::Plain(p) => vec![s(p)],
                        })
                        .collect();
                    assert_eq!(n.len(), 3);
                    assert_eq!(all, ["a", "b", "c", "d", "e"]);
                }
                o => panic!("{o:?}"),
            }
            match &get("iset").3 {
                Object::SetIntset(is) => {
                    assert_eq!(intset::values(is).collect::<Vec<_>>(), [-5, 1, 2, 3])
                }
                o => panic!("{o:?}"),
            }
            match &get("lset").3 {
                Object::SetListpack(lp) => assert_eq!(lp_elems(lp), ["a", "b", "c"]),
                o => panic!("{o:?}"),
            }
            match &get("hset").3 {
                Object::SetElems(v) => {
                    let mut m: Vec<String> = v.iter().map(|x| s(x)).collect();
                    m.sort();
                    assert_eq!(m, ["x", "y", "z"]);
                }
                o => panic!("{o:?}"),
            }
            match &get("lz").3 {
                Object::ZSetListpack(lp) => {
                    assert_eq!(lp_elems(lp), ["c", "-inf", "a", "1", "b", "2.5"])
                }
                o => panic!("{o:?}"),
            }
            match &get("sz").3 {
                Object::ZSetElems(v) => {
                    let mut m: Vec<(String, f64)> = v.iter().map(|(a, b)| (s(a), *b)).collect();
                    m.sort_by(|a, b| a.0.cmp(&b.0));
                    assert_eq!(
                        m,
                        [
                            ("a".to_string(), 1.0),
                            ("b".to_string(), 2.5),
                            ("c".to_string(), f64::INFINITY)
                        ]
                    );
                }
                o => panic!("{o:?}"),
            }
            match &get("lh").3 {
                Object::HashListpack(lp) => assert_eq!(lp_elems(lp), ["f1", "v1", "f2", "2"]),
                o => panic!("{o:?}"),
            }
            assert_eq!(get("th").2, crate::TYPE_HASH);
            match &get("eh").3 {
                Object::HashElems(v) => {
                    assert_eq!(get("eh").2, crate::TYPE_HASH_2);
                    let mut m: Vec<(String, String, bool)> =
                        v.iter().map(|(f, x, e)| (s(f), s(x), *e > 0)).collect();
                    m.sort();
                    assert_eq!(
                        m,
                        [
                            ("f1".into(), "v1".into(), true),
                            ("f2".into(), "v2".into(), false)
                        ]
                    );
                    assert!(v.iter().any(|x| x.2 == -1));
                }
                o => panic!("{o:?}"),
            }
            match &get("st").3 {
                Object::Stream(st) => {
                    assert_eq!(st.length, 3);
                    assert_eq!(st.last_id, (2, 1));
                    assert_eq!(st.first_id, (1, 1));
                    assert_eq!(st.entries_added, 3);
                    assert_eq!(st.nodes.len(), 1);
                    assert_eq!(st.nodes[0].0, (1, 1));
                    stream::validate_node(&st.nodes[0].1, true).unwrap();
                    assert_eq!(st.groups.len(), 1);
                    let g = &st.groups[0];
                    assert_eq!(g.name, b"g1");
                    assert_eq!(g.last_id, (1, 2));
                    assert_eq!(g.entries_read, 2);
                    assert_eq!(
                        g.pel.iter().map(|p| p.0).collect::<Vec<_>>(),
                        [(1, 1), (1, 2)]
                    );
                    assert!(g.pel.iter().all(|p| p.2 == 1));
                    assert_eq!(g.consumers.len(), 2);
                    let alice = g.consumers.iter().find(|c| c.name == b"alice").unwrap();
                    assert_eq!(alice.pel, [(1, 1), (1, 2)]);
                    let bob = g.consumers.iter().find(|c| c.name == b"bob").unwrap();
                    assert!(bob.pel.is_empty());
                }
                o => panic!("{o:?}"),
            }
            let _ = Entry::Int(0);
        }
    }

    #[test]
    fn fixture_truncations_and_corruptions_never_panic() {
        for cut in 0..FIXTURE.len() {
            assert!(load(&FIXTURE[..cut], true).is_err(), "cut {cut}");
        }
        // Without the checksum, corruptions reach the decoders.
        let mut nock = FIXTURE.to_vec();
        let n = nock.len();
        nock[n - 8..].fill(0);
        for i in 9..n - 8 {
            for v in [
                0u8, 1, 2, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xc3, 0xfe, 0xff,
            ] {
                let mut b = nock.clone();
                b[i] = v;
                let _ = load(&b, true);
                let _ = load(&b, false);
            }
        }
    }

    fn one(typ: u8, body: &[u8], deep: bool) -> Result<Object<'_>> {
        let lim = Limits {
            deep,
            ..Limits::default()
        };
        let mut r = Reader::new(body);
        let o = read_object(&mut r, typ, &lim)?;
        assert!(r.is_empty());
        Ok(o)
    }

    #[test]
    fn crafted_values() {
        use crate::encoding::Writer;
        // Duplicate set member.
        let mut w = Writer::new();
        w.len(2);
        w.string(b"a", false);
        w.string(b"a", false);
        // Found by the deep check; otherwise left to the server (its insert fails).
        assert!(one(crate::TYPE_SET, &w.buf, true).is_err());
        assert!(one(crate::TYPE_SET, &w.buf, false).is_ok());
        // Zset text scores incl. specials.
        let mut w = Writer::new();
        w.len(3);
        for (m, sc) in [
            (&b"a"[..], &[254u8][..]),
            (b"b", &[255]),
            (b"c", b"\x041.25"),
        ] {
            w.string(m, false);
            w.bytes(sc);
        }
        match one(crate::TYPE_ZSET, &w.buf, false).unwrap() {
            Object::ZSetElems(v) => assert_eq!(
                v.iter().map(|x| x.1).collect::<Vec<_>>(),
                [f64::INFINITY, f64::NEG_INFINITY, 1.25]
            ),
            o => panic!("{o:?}"),
        }
        let mut w = Writer::new();
        w.len(1);
        w.string(b"a", false);
        w.u8(253);
        assert!(one(crate::TYPE_ZSET, &w.buf, false).is_err());
        // A huge announced count on short input allocates nothing and fails.
        for t in [1u8, 2, 3, 4, 5, 18, 21, 22] {
            let mut w = Writer::new();
            w.len(u64::MAX);
            assert!(one(t, &w.buf, false).is_err());
        }
        // Quicklist: bad container, empty node skipped.
        let mut w = Writer::new();
        w.len(1);
        w.len(3);
        w.string(b"x", false);
        assert!(one(crate::TYPE_LIST_QUICKLIST_2, &w.buf, false).is_err());
        let mut w = Writer::new();
        w.len(2);
        w.len(2);
        w.string(&listpack::Builder::new().finish(), false);
        w.len(1);
        w.string(b"plain", false);
        assert_eq!(
            one(crate::TYPE_LIST_QUICKLIST_2, &w.buf, true).unwrap(),
            Object::ListNodes(vec![ListNode::Plain(Cow::Borrowed(b"plain"))])
        );
        // Hash listpack with duplicate fields: refused when deep.
        let mut b = listpack::Builder::new();
        for x in [&b"f"[..], b"1", b"f", b"2"] {
            b.append(x);
        }
        let mut w = Writer::new();
        w.string(&b.finish(), false);
        assert!(one(crate::TYPE_HASH_LISTPACK, &w.buf, true).is_err());
        assert!(one(crate::TYPE_HASH_LISTPACK, &w.buf, false).is_ok());
        // Zset listpack with a NaN score: always refused.
        let mut b = listpack::Builder::new();
        b.append(b"m");
        b.append(b"nan");
        let mut w = Writer::new();
        w.string(&b.finish(), false);
        assert!(one(crate::TYPE_ZSET_LISTPACK, &w.buf, false).is_err());
        // Unknown and module types.
        assert!(one(8, &[], false).is_err());
        assert!(one(crate::TYPE_MODULE_2, &[5], false).is_err());
    }

    /// A stream with one group whose PEL entry is claimed by two consumers.
    #[test]
    fn stream_shared_nack_refused() {
        use crate::encoding::Writer;
        let build = |second_claims: bool, deep: bool| {
            let mut w = Writer::new();
            w.len(1);
            let mut key = Vec::new();
            key.extend_from_slice(&1u64.to_be_bytes());
            key.extend_from_slice(&1u64.to_be_bytes());
            w.string(&key, false);
            w.string(&super::stream::tests_node(), false);
            w.len(2); // length
            for v in [1, 2, 1, 1, 0, 0, 2] {
                w.len(v); // last id, first id, max deleted, entries added
            }
            w.len(1); // groups
            w.string(b"g", false);
            w.len(1);
            w.len(2);
            w.len(2); // entries read
            w.len(1); // pel
            w.bytes(&key);
            w.millis(5);
            w.len(1);
            w.len(2); // consumers
            for (name, claims) in [(&b"a"[..], true), (b"b", second_claims)] {
                w.string(name, false);
                w.millis(1);
                w.millis(1);
                if claims {
                    w.len(1);
                    w.bytes(&key);
                } else {
                    w.len(0);
                }
            }
            let buf = w.into_inner();
            one(crate::TYPE_STREAM_LISTPACKS_3, &buf, deep).map(|_| ())
        };
        assert!(build(false, true).is_ok());
        assert!(build(true, false).is_err());
    }
}
