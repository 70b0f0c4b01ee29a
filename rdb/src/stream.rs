//! Stream node checks (upstream `t_stream.c`, streamValidateListpackIntegrity).
//!
//! A stream is a radix tree of nodes keyed by a master ID (16 bytes: ms then
//! seq, both u64 big endian); each node is a listpack:
//!
//! ```text
//! master entry: <count> <deleted> <num master fields> <field>... 0
//! then per entry: <flags> <ms - master ms> <seq - master seq>
//!                 [<num fields> <field> <value>... unless flags has SAMEFIELDS (2)]
//!                 [<value>... with SAMEFIELDS: one per master field]
//!                 <lp-count: number of listpack entries of this entry>
//! ```
//! flags: 1 = deleted, 2 = same fields as the master entry.

use crate::listpack::{self, Entry};
use crate::{Error, Result};

/// Entry flag: the entry uses the master entry's fields.
pub const FLAG_SAMEFIELDS: i64 = 2;

/// Decodes a 16-byte node key / PEL ID.
pub fn decode_id(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != 16 {
        return None;
    }
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..]);
    Some((u64::from_be_bytes(ms), u64::from_be_bytes(seq)))
}

/// Validates a stream node listpack: the header always; with `deep` the
/// whole structure (master entry, then each entry's flags, ID deltas, fields,
/// values and lp-count), which must end exactly at the terminator. Returns
/// whether the listpack has at least one entry.
pub fn validate_node(lp: &[u8], deep: bool) -> Result<bool> {
    let numele = listpack::validate_header(lp)?;
    let non_empty = lp.len() > listpack::HDR_SIZE + 1;
    if !deep {
        let _ = numele;
        return Ok(non_empty);
    }
    let mut it = listpack::iter(lp);
    let mut next = |what: &str| -> Result<Entry> {
        match it.next() {
            Some(e) => e,
            None => Err(Error::corrupt(0, format!("stream node ends before {what}"))),
        }
    };
    let int = |e: Entry, what: &str| -> Result<i64> {
        e.as_int()
            .ok_or_else(|| Error::corrupt(0, format!("stream node {what} is not an integer")))
    };
    let count = int(next("the entry count")?, "entry count")?;
    let deleted = int(next("the deleted count")?, "deleted count")?;
    let master_fields = int(next("the master fields")?, "master field count")?;
    for _ in 0..master_fields.max(0) {
        next("a master field")?;
    }
    if int(next("the master terminator")?, "master terminator")? != 0 {
        return Err(Error::corrupt(0, "stream master entry not terminated by 0"));
    }
    let entries = count
        .checked_add(deleted)
        .ok_or_else(|| Error::corrupt(0, "stream entry count overflow"))?;
    for _ in 0..entries.max(0) {
        let flags = int(next("entry flags")?, "entry flags")?;
        int(next("the entry ms")?, "entry ms")?;
        int(next("the entry seq")?, "entry seq")?;
        let mut fields = master_fields;
        let mut extra: i64 = 3;
        if flags & FLAG_SAMEFIELDS == 0 {
            fields = int(next("the field count")?, "field count")?;
            for _ in 0..fields.max(0) {
                next("a field")?;
            }
            extra = extra
                .checked_add(fields)
                .and_then(|x| x.checked_add(1))
                .ok_or_else(|| Error::corrupt(0, "stream field count overflow"))?;
        }
        for _ in 0..fields.max(0) {
            next("a value")?;
        }
        let lp_count = int(next("the lp-count")?, "lp-count")?;
        if Some(lp_count) != fields.checked_add(extra) {
            return Err(Error::corrupt(0, "stream entry lp-count mismatch"));
        }
    }
    if it.next().is_some() {
        return Err(Error::corrupt(0, "stream node has trailing entries"));
    }
    Ok(non_empty)
}

/// A small valid node (two entries) for tests.
#[cfg(test)]
pub(crate) fn tests_node() -> Vec<u8> {
    tests::node()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listpack::Builder;

    pub(crate) fn node() -> Vec<u8> {
        let mut b = Builder::new();
        for v in [2, 0, 1] {
            b.append_int(v);
        }
        b.append(b"f");
        b.append_int(0);
        // entry 1: same fields
        for v in [FLAG_SAMEFIELDS, 0, 0] {
            b.append_int(v);
        }
        b.append(b"v1");
        b.append_int(4);
        // entry 2: own fields
        for v in [0, 1, 0, 2] {
            b.append_int(v);
        }
        b.append(b"a");
        b.append(b"1");
        b.append(b"b");
        b.append(b"2");
        b.append_int(8);
        b.finish()
    }

    #[test]
    fn node_checks() {
        let lp = node();
        assert!(validate_node(&lp, true).unwrap());
        for n in 0..lp.len() {
            assert!(validate_node(&lp[..n], true).is_err());
        }
        for i in 0..lp.len() {
            for v in [0u8, 1, 2, 3, 0x7f, 0x81, 0xC0, 0xF1, 0xFF] {
                let mut b = lp.clone();
                b[i] = v;
                let _ = validate_node(&b, true);
            }
        }
        assert_eq!(
            decode_id(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]),
            Some((1, 2))
        );
    }
}
