//! Ziplist and zipmap parsers (legacy encodings, upstream `ziplist.c` and
//! `zipmap.c`), only for loading old files: their contents are converted.
//!
//! Ziplist:
//! ```text
//! <zlbytes: u32 LE> <zltail: u32 LE, offset of the last entry> <zllen: u16 LE,
//! 65535 = count them> <entries> 0xFF
//! entry = <prevlen: 1 byte < 254, or 0xFE + u32 LE> <encoding> <data>
//!   00pppppp                         string, 6-bit length
//!   01pppppp qqqqqqqq                string, 14-bit length (big endian)
//!   10000000 <u32 BE>                string, 32-bit length
//!   0xC0 i16 / 0xD0 i32 / 0xE0 i64 / 0xF0 i24 / 0xFE i8   (little endian)
//!   0xF1..=0xFD                      immediate 0..=12
//! ```
//! Zipmap:
//! ```text
//! <zmlen: 1 byte, count if < 254> then per pair:
//!   <len: 1 byte < 254, or 0xFE + u32 LE> <key>
//!   <len> <free: 1 byte> <value> <free unused bytes>
//! 0xFF
//! ```

use crate::listpack::Entry;
use crate::{Error, Result};

const ZL_HEADER: usize = 10;
const ZL_END: u8 = 0xFF;
const ZL_BIGLEN: u8 = 0xFE;

fn bad(at: usize, why: impl Into<String>) -> Error {
    Error::corrupt(at as u64, why.into())
}

fn get(zl: &[u8], from: usize, n: usize) -> Result<&[u8]> {
    from.checked_add(n)
        .and_then(|end| zl.get(from..end))
        .ok_or_else(|| bad(from, "ziplist entry runs past the end"))
}

/// Walks a ziplist, checking the header, every entry (prevlen equal to the
/// previous entry's size, encoding, bounds), the tail offset and the count
/// (as upstream's deep ziplistValidateIntegrity); calls `f` on each entry.
/// Returns the number of entries.
pub fn walk<'a>(zl: &'a [u8], mut f: impl FnMut(Entry<'a>) -> Result<()>) -> Result<usize> {
    if zl.len() < ZL_HEADER + 1 {
        return Err(bad(0, "ziplist shorter than its header"));
    }
    let zlbytes = u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize;
    let tail = u32::from_le_bytes([zl[4], zl[5], zl[6], zl[7]]) as usize;
    let zllen = u16::from_le_bytes([zl[8], zl[9]]);
    if zlbytes != zl.len() {
        return Err(bad(0, "ziplist size does not match its header"));
    }
    if zl[zl.len() - 1] != ZL_END {
        return Err(bad(zl.len() - 1, "ziplist not terminated by 0xFF"));
    }
    if tail > zl.len() - 1 {
        return Err(bad(4, "ziplist tail offset out of range"));
    }
    let end = zl.len() - 1;
    let mut p = ZL_HEADER;
    let mut prev_size = 0usize;
    let mut last = ZL_HEADER;
    let mut count = 0usize;
    while p < end {
        let start = p;
        // prevlen
        let b = zl[p];
        let prevlen = if b < ZL_BIGLEN {
            p += 1;
            b as usize
        } else {
            let s = get(zl, p + 1, 4)?;
            p += 5;
            u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize
        };
        if prevlen != prev_size {
            return Err(bad(
                start,
                "ziplist prevlen does not match the previous entry",
            ));
        }
        let enc = *zl.get(p).ok_or_else(|| bad(p, "ziplist entry truncated"))?;
        let entry = match enc >> 6 {
            0 => {
                let n = (enc & 0x3f) as usize;
                let s = get(zl, p + 1, n)?;
                p += 1 + n;
                Entry::Str(s)
            }
            1 => {
                let lo = get(zl, p + 1, 1)?[0] as usize;
                let n = (((enc & 0x3f) as usize) << 8) | lo;
                let s = get(zl, p + 2, n)?;
                p += 2 + n;
                Entry::Str(s)
            }
            2 => {
                if enc != 0x80 {
                    return Err(bad(p, "ziplist invalid string encoding"));
                }
                let l = get(zl, p + 1, 4)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                let s = get(zl, p + 5, n)?;
                p = p + 5 + n;
                Entry::Str(s)
            }
            _ => {
                let (v, n) = match enc {
                    0xC0 => {
                        let s = get(zl, p + 1, 2)?;
                        (i16::from_le_bytes([s[0], s[1]]) as i64, 2)
                    }
                    0xD0 => {
                        let s = get(zl, p + 1, 4)?;
                        (i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64, 4)
                    }
                    0xE0 => {
                        let s = get(zl, p + 1, 8)?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(s);
                        (i64::from_le_bytes(a), 8)
                    }
                    0xF0 => {
                        let s = get(zl, p + 1, 3)?;
                        let u = (s[0] as i64) | ((s[1] as i64) << 8) | ((s[2] as i64) << 16);
                        (if u >= 1 << 23 { u - (1 << 24) } else { u }, 3)
                    }
                    0xFE => (get(zl, p + 1, 1)?[0] as i8 as i64, 1),
                    0xF1..=0xFD => (((enc & 0x0f) as i64) - 1, 0),
                    _ => return Err(bad(p, "ziplist invalid encoding byte")),
                };
                p += 1 + n;
                Entry::Int(v)
            }
        };
        if p > end {
            return Err(bad(start, "ziplist entry runs past the end"));
        }
        f(entry)?;
        prev_size = p - start;
        last = start;
        count += 1;
    }
    if last != tail {
        return Err(bad(
            4,
            "ziplist tail offset does not point at the last entry",
        ));
    }
    if zllen != u16::MAX && zllen as usize != count {
        return Err(bad(8, "ziplist header count does not match its entries"));
    }
    Ok(count)
}

/// Walks a zipmap (upstream's zipmapValidateIntegrity), calling `f` on each
/// (key, value). A zipmap must not be empty. Returns the pair count.
pub fn walk_zipmap<'a>(
    zm: &'a [u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]) -> Result<()>,
) -> Result<usize> {
    if zm.len() < 2 {
        return Err(bad(0, "zipmap too short"));
    }
    let zmlen = zm[0];
    let end = zm.len() - 1;
    if zm[end] != ZL_END {
        return Err(bad(end, "zipmap not terminated by 0xFF"));
    }
    let len_at = |p: &mut usize| -> Result<usize> {
        let b = *zm.get(*p).ok_or_else(|| bad(*p, "zipmap truncated"))?;
        if b < ZL_BIGLEN {
            *p += 1;
            Ok(b as usize)
        } else if b == ZL_BIGLEN {
            let s = get(zm, *p + 1, 4)?;
            let len = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
            // An overlong form for a short length is how CVE-2026-25243 made
            // upstream's validator and iterator disagree: refuse it.
            if len < ZL_BIGLEN as usize {
                return Err(bad(*p, "zipmap overlong length encoding"));
            }
            *p += 5;
            Ok(len)
        } else {
            Err(bad(*p, "zipmap unexpected end marker"))
        }
    };
    let mut p = 1usize;
    let mut count = 0usize;
    while p < end {
        let kl = len_at(&mut p)?;
        let key = get(zm, p, kl)?;
        p += kl;
        let vl = len_at(&mut p)?;
        let free = get(zm, p, 1)?[0] as usize;
        p += 1;
        let val = get(zm, p, vl)?;
        p = p
            .checked_add(vl)
            .and_then(|x| x.checked_add(free))
            .ok_or_else(|| bad(p, "zipmap length overflow"))?;
        if p > end {
            return Err(bad(p, "zipmap entry runs past the end"));
        }
        f(key, val)?;
        count += 1;
    }
    if zmlen < 254 && zmlen as usize != count {
        return Err(bad(0, "zipmap count does not match its entries"));
    }
    if count == 0 {
        return Err(bad(0, "empty zipmap"));
    }
    Ok(count)
}

/// Builds a ziplist from entries (for tests and tools).
pub fn build(entries: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0u8; ZL_HEADER];
    let mut prev = 0usize;
    let mut last = ZL_HEADER;
    for e in entries {
        let start = out.len();
        last = start;
        if prev < 254 {
            out.push(prev as u8);
        } else {
            out.push(ZL_BIGLEN);
            out.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match crate::listpack::parse_canonical_i64(e) {
            Some(v @ 0..=12) => out.push(0xF1 + v as u8),
            Some(v) if i8::try_from(v).is_ok() => {
                out.push(0xFE);
                out.push(v as i8 as u8);
            }
            Some(v) if i16::try_from(v).is_ok() => {
                out.push(0xC0);
                out.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                out.push(0xF0);
                out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            Some(v) if i32::try_from(v).is_ok() => {
                out.push(0xD0);
                out.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                out.push(0xE0);
                out.extend_from_slice(&v.to_le_bytes());
            }
            None => {
                let n = e.len();
                if n < 64 {
                    out.push(n as u8);
                } else if n < 16384 {
                    out.push(0x40 | (n >> 8) as u8);
                    out.push(n as u8);
                } else {
                    out.push(0x80);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
                out.extend_from_slice(e);
            }
        }
        prev = out.len() - start;
    }
    out.push(ZL_END);
    let total = out.len() as u32;
    out[0..4].copy_from_slice(&total.to_le_bytes());
    out[4..8].copy_from_slice(&(last as u32).to_le_bytes());
    out[8..10].copy_from_slice(&(entries.len().min(65535) as u16).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ziplist_round_trip_and_corruption() {
        let big = vec![b'z'; 300];
        let items: Vec<&[u8]> = vec![
            b"a",
            b"5",
            b"-7",
            b"200",
            b"40000",
            b"5000000",
            b"3000000000",
            b"",
            &big,
            b"x",
        ];
        let zl = build(&items);
        let mut got = Vec::new();
        let n = walk(&zl, |e| {
            got.push(e.to_bytes());
            Ok(())
        })
        .unwrap();
        assert_eq!(n, items.len());
        assert_eq!(got, items.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
        for cut in 0..zl.len() {
            assert!(walk(&zl[..cut], |_| Ok(())).is_err());
        }
        for i in 0..zl.len() {
            for v in [0u8, 1, 0x3f, 0x40, 0x80, 0xC0, 0xF0, 0xFE, 0xFF] {
                let mut b = zl.clone();
                b[i] = v;
                let _ = walk(&b, |_| Ok(()));
            }
        }
        let empty = build(&[]);
        assert_eq!(walk(&empty, |_| Ok(())).unwrap(), 0);
    }

    #[test]
    fn zipmap() {
        let zm = [
            2u8, 1, b'a', 1, 0, b'1', 2, b'b', b'c', 3, 2, b'x', b'y', b'z', 0, 0, 0xFF,
        ];
        let mut got = Vec::new();
        assert_eq!(
            walk_zipmap(&zm, |k, v| {
                got.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap(),
            2
        );
        assert_eq!(got[1], (b"bc".to_vec(), b"xyz".to_vec()));
        for cut in 0..zm.len() {
            assert!(walk_zipmap(&zm[..cut], |_, _| Ok(())).is_err());
        }
        assert!(walk_zipmap(&[0, 0xFF], |_, _| Ok(())).is_err());
    }
}
