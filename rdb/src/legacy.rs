//! Legacy encodings: zipmap hashes (9), ziplist lists (10), ziplist zsets
//! (12), ziplist hashes (13) and quicklists of ziplists (14), converted as
//! upstream's rdbLoadObject does: to element lists or to listpacks.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::encoding::Reader;
use crate::listpack::{Builder, Entry};
use crate::object::{cap, parse_double_text, wrap, Limits, ListNode, Object};
use crate::{ziplist, Error, Result};

/// Converts a ziplist of pairs to a listpack, refusing duplicate keys (even
/// entries) and an odd count (upstream ziplistPairsConvertAndValidateIntegrity).
fn pairs_to_listpack(zl: &[u8]) -> Result<Vec<u8>> {
    let mut b = Builder::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut i = 0usize;
    ziplist::walk(zl, |e| {
        if i.is_multiple_of(2) && !seen.insert(e.to_bytes()) {
            return Err(Error::corrupt(0, "duplicate field in ziplist"));
        }
        i += 1;
        b.append_entry(e);
        Ok(())
    })?;
    if i % 2 == 1 {
        return Err(Error::corrupt(0, "ziplist of pairs has an odd count"));
    }
    Ok(b.finish())
}

/// Types handled here; anything else is unknown.
pub(crate) fn read_legacy<'a>(
    r: &mut Reader<'a>,
    typ: u8,
    lim: &Limits,
    at: u64,
) -> Result<Object<'a>> {
    match typ {
        crate::TYPE_HASH_ZIPMAP => {
            let blob = r.string(lim.max_string)?;
            let mut b = Builder::new();
            let mut seen: HashSet<&[u8]> = HashSet::new();
            ziplist::walk_zipmap(&blob, |k, v| {
                if !seen.insert(k) {
                    return Err(Error::corrupt(0, "duplicate field"));
                }
                b.append(k);
                b.append(v);
                Ok(())
            })
            .map_err(|e| wrap(at, "Zipmap integrity check failed.", e))?;
            Ok(Object::HashListpack(b.finish()))
        }
        crate::TYPE_LIST_ZIPLIST => {
            let blob = r.string(lim.max_string)?;
            let mut v: Vec<Cow<'a, [u8]>> = Vec::new();
            ziplist::walk(&blob, |e| {
                v.push(Cow::Owned(e.to_bytes()));
                Ok(())
            })
            .map_err(|e| wrap(at, "List ziplist integrity check failed.", e))?;
            Ok(Object::ListElems(v))
        }
        crate::TYPE_ZSET_ZIPLIST => {
            let blob = r.string(lim.max_string)?;
            let lp = pairs_to_listpack(&blob)
                .map_err(|e| wrap(at, "Zset ziplist integrity check failed.", e))?;
            for (i, e) in crate::listpack::iter(&lp).enumerate() {
                if let (1, Entry::Str(s)) = (i % 2, e?) {
                    if parse_double_text(s).is_none_or(|v| v.is_nan()) {
                        return Err(Error::corrupt(at, "Zset ziplist with NAN score detected"));
                    }
                }
            }
            Ok(Object::ZSetListpack(lp))
        }
        crate::TYPE_HASH_ZIPLIST => {
            let blob = r.string(lim.max_string)?;
            let lp = pairs_to_listpack(&blob)
                .map_err(|e| wrap(at, "Hash ziplist integrity check failed.", e))?;
            Ok(Object::HashListpack(lp))
        }
        crate::TYPE_LIST_QUICKLIST => {
            let n = r.len()?;
            let mut nodes = Vec::with_capacity(cap(n, r));
            for _ in 0..n {
                let z_at = r.offset();
                let blob = r.string(lim.max_string)?;
                if blob.is_empty() {
                    return Err(Error::corrupt(z_at, "Quicklist node is empty"));
                }
                let mut b = Builder::new();
                ziplist::walk(&blob, |e| {
                    b.append_entry(e);
                    Ok(())
                })
                .map_err(|e| wrap(z_at, "Ziplist integrity check failed.", e))?;
                if !b.is_empty() {
                    nodes.push(ListNode::Packed(b.finish()));
                }
            }
            Ok(Object::ListNodes(nodes))
        }
        _ => Err(Error::corrupt(
            at,
            format!("Unknown RDB encoding type {typ}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Writer;
    use crate::object::read_object;

    fn one(typ: u8, body: &[u8]) -> Result<Object<'_>> {
        let mut r = Reader::new(body);
        let o = read_object(&mut r, typ, &Limits::default())?;
        assert!(r.is_empty());
        Ok(o)
    }

    fn lp_elems(lp: &[u8]) -> Vec<Vec<u8>> {
        crate::listpack::iter(lp)
            .map(|e| e.unwrap().to_bytes())
            .collect()
    }

    #[test]
    fn legacy_types() {
        let mut w = Writer::new();
        w.string(&ziplist::build(&[b"a", b"17", b"b", b"-3"]), false);
        match one(crate::TYPE_LIST_ZIPLIST, &w.buf).unwrap() {
            Object::ListElems(v) => assert_eq!(v, [&b"a"[..], b"17", b"b", b"-3"]),
            o => panic!("{o:?}"),
        }
        match one(crate::TYPE_HASH_ZIPLIST, &w.buf).unwrap() {
            Object::HashListpack(lp) => assert_eq!(lp_elems(&lp), [&b"a"[..], b"17", b"b", b"-3"]),
            o => panic!("{o:?}"),
        }
        match one(crate::TYPE_ZSET_ZIPLIST, &w.buf).unwrap() {
            Object::ZSetListpack(lp) => assert_eq!(lp_elems(&lp).len(), 4),
            o => panic!("{o:?}"),
        }
        let mut w = Writer::new();
        w.string(&ziplist::build(&[b"a", b"1", b"a", b"2"]), false);
        assert!(one(crate::TYPE_HASH_ZIPLIST, &w.buf).is_err());
        let mut w = Writer::new();
        w.string(&ziplist::build(&[b"a", b"nan"]), false);
        assert!(one(crate::TYPE_ZSET_ZIPLIST, &w.buf).is_err());
        // Quicklist of ziplists, an empty one skipped.
        let mut w = Writer::new();
        w.len(2);
        w.string(&ziplist::build(&[b"x", b"y"]), false);
        w.string(&ziplist::build(&[]), false);
        match one(crate::TYPE_LIST_QUICKLIST, &w.buf).unwrap() {
            Object::ListNodes(n) => {
                assert_eq!(n.len(), 1);
                let ListNode::Packed(lp) = &n[0] else {
                    panic!()
                };
                assert_eq!(lp_elems(lp), [b"x", b"y"]);
            }
            o => panic!("{o:?}"),
        }
        // Zipmap.
        let zm = [1u8, 1, b'k', 2, 0, b'v', b'w', 0xFF];
        let mut w = Writer::new();
        w.string(&zm, false);
        match one(crate::TYPE_HASH_ZIPMAP, &w.buf).unwrap() {
            Object::HashListpack(lp) => assert_eq!(lp_elems(&lp), [&b"k"[..], b"vw"]),
            o => panic!("{o:?}"),
        }
        // Linked list (type 1).
        let mut w = Writer::new();
        w.len(2);
        w.string(b"p", false);
        w.string(b"12", false);
        assert_eq!(
            one(crate::TYPE_LIST, &w.buf).unwrap(),
            Object::ListElems(vec![Cow::Borrowed(b"p"), Cow::Owned(b"12".to_vec())])
        );
    }
}
