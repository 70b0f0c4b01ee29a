//! Listpack format checks, iteration and a small builder (upstream
//! `listpack.c`).
//!
//! ```text
//! <total bytes: u32 LE> <element count: u16 LE, 65535 = unknown> <entries> 0xFF
//! entry = <encoding+data> <backlen: 1..=5 bytes, size of encoding+data>
//!   0xxxxxxx                      7-bit unsigned integer
//!   10xxxxxx <len bytes>          string, 6-bit length
//!   110xxxxx yyyyyyyy             13-bit signed integer
//!   1110xxxx yyyyyyyy <bytes>     string, 12-bit length
//!   11110000 <u32 LE len> <bytes> string, 32-bit length
//!   0xF1 <2 bytes> / 0xF2 <3> / 0xF3 <4> / 0xF4 <8>   signed LE integers
//! backlen: the entry size in 7-bit groups, read backwards from the entry's
//! last byte; every byte but the first read has its high bit set.
//! ```
//! Every function here is bounds-checked: hostile input gives an error, never a
//! panic or an out-of-bounds read.

use std::collections::HashSet;

use crate::{Error, Result};

/// Header size: total bytes and element count.
pub const HDR_SIZE: usize = 6;
/// The terminator byte.
pub const EOF: u8 = 0xFF;
/// Element count meaning "count them".
pub const NUMELE_UNKNOWN: u16 = u16::MAX;
/// Encoding bytes of the multi-byte forms.
pub const ENC_32BIT_STR: u8 = 0xF0;
pub const ENC_16BIT_INT: u8 = 0xF1;
pub const ENC_24BIT_INT: u8 = 0xF2;
pub const ENC_32BIT_INT: u8 = 0xF3;
pub const ENC_64BIT_INT: u8 = 0xF4;

/// One decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Entry<'_> {
    /// The entry as bytes (integers as their decimal text).
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            Entry::Str(s) => s.to_vec(),
            Entry::Int(v) => v.to_string().into_bytes(),
        }
    }

    /// The entry as an integer: integer encodings, and strings that are the
    /// canonical text of an i64 (upstream's lpGetIntegerIfValid).
    pub fn as_int(self) -> Option<i64> {
        match self {
            Entry::Int(v) => Some(v),
            Entry::Str(s) => parse_canonical_i64(s),
        }
    }
}

/// `s` as an i64 if it is its canonical decimal text (upstream's string2ll: no
/// sign '+', no leading zeros, no "-0", no spaces, at most 20 bytes). Shared by the
/// listpack and RDB encoders and the server (`util::parse_i64_strict`).
pub fn parse_canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// Size of the backlen field for an entry of `l` bytes.
pub fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

/// Header checks (upstream's non-deep lpValidateIntegrity): at least header
/// plus terminator, total bytes equal to the buffer size, last byte 0xFF.
/// Returns the header element count.
pub fn validate_header(lp: &[u8]) -> Result<u16> {
    if lp.len() < HDR_SIZE + 1 {
        return Err(Error::corrupt(0, "listpack shorter than its header"));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err(Error::corrupt(
            0,
            format!("listpack total bytes {total} but {} given", lp.len()),
        ));
    }
    if lp[lp.len() - 1] != EOF {
        return Err(Error::corrupt(
            lp.len() as u64 - 1,
            "listpack not terminated by 0xFF",
        ));
    }
    Ok(u16::from_le_bytes([lp[4], lp[5]]))
}

/// Decodes the entry at `p` (`p < end`, `end` = offset of the terminator),
/// checking its encoding, data and backlen lie before `end`. Returns the
/// entry and the offset of the next one.
pub fn entry_at(lp: &[u8], p: usize, end: usize) -> Result<(Entry<'_>, usize)> {
    let bad = |why: &str| Error::corrupt(p as u64, format!("listpack entry: {why}"));
    let area = lp.get(..end).ok_or_else(|| bad("out of range"))?;
    let b = *area.get(p).ok_or_else(|| bad("out of range"))?;
    let byte = |i: usize| -> Result<u8> {
        p.checked_add(i)
            .and_then(|j| area.get(j).copied())
            .ok_or_else(|| bad("encoding runs past the end"))
    };
    let le = |n: usize| -> Result<u64> {
        let mut v = 0u64;
        for i in 0..n {
            v |= (byte(1 + i)? as u64) << (8 * i);
        }
        Ok(v)
    };
    let (entry, l): (Entry, usize) = if b & 0x80 == 0 {
        (Entry::Int((b & 0x7f) as i64), 1)
    } else if b & 0xC0 == 0x80 {
        let n = (b & 0x3f) as usize;
        (Entry::Str(&[]), 1 + n)
    } else if b & 0xE0 == 0xC0 {
        let u = (((b & 0x1f) as i64) << 8) | byte(1)? as i64;
        let v = if u >= 1 << 12 { u - (1 << 13) } else { u };
        (Entry::Int(v), 2)
    } else if b & 0xF0 == 0xE0 {
        let n = (((b & 0x0f) as usize) << 8) | byte(1)? as usize;
        (Entry::Str(&[]), 2 + n)
    } else {
        match b {
            0xF0 => {
                let n = le(4)? as usize;
                (
                    Entry::Str(&[]),
                    5usize.checked_add(n).ok_or_else(|| bad("length"))?,
                )
            }
            0xF1 => (Entry::Int(le(2)? as u16 as i16 as i64), 3),
            0xF2 => {
                let u = le(3)? as i64;
                (Entry::Int(if u >= 1 << 23 { u - (1 << 24) } else { u }), 4)
            }
            0xF3 => (Entry::Int(le(4)? as u32 as i32 as i64), 5),
            0xF4 => (Entry::Int(le(8)? as i64), 9),
            _ => return Err(bad("invalid encoding byte")),
        }
    };
    let bl = backlen_size(l);
    let next = p
        .checked_add(l)
        .and_then(|x| x.checked_add(bl))
        .ok_or_else(|| bad("length overflow"))?;
    if next > end {
        return Err(bad("entry runs past the end"));
    }
    let entry = match entry {
        Entry::Str(_) => {
            let hdr = match b {
                0xF0 => 5,
                _ if b & 0xC0 == 0x80 => 1,
                _ => 2,
            };
            Entry::Str(&area[p + hdr..p + l])
        }
        e => e,
    };
    // The backlen, read backwards from its last byte, must give back l.
    let mut v: u64 = 0;
    let mut q = next - 1;
    for i in 0..bl {
        let c = area[q];
        v |= ((c & 127) as u64) << (7 * i);
        let last = i + 1 == bl;
        if (c & 128 == 0) != last {
            return Err(bad("malformed backlen"));
        }
        q = q.wrapping_sub(1);
    }
    if v != l as u64 {
        return Err(bad("backlen does not match the entry size"));
    }
    Ok((entry, next))
}

/// Iterator over the entries of a listpack whose header was checked with
/// [`validate_header`]; each step checks the entry it decodes.
pub struct Iter<'a> {
    lp: &'a [u8],
    pos: usize,
    end: usize,
    failed: bool,
}

/// Entries of `lp` (the header must have been validated).
pub fn iter(lp: &[u8]) -> Iter<'_> {
    Iter {
        lp,
        pos: HDR_SIZE,
        end: lp.len().saturating_sub(1),
        failed: false,
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Entry<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        match entry_at(self.lp, self.pos, self.end) {
            Ok((e, next)) => {
                self.pos = next;
                Some(Ok(e))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Validates a listpack (upstream lpValidateIntegrity). Without `deep` only
/// the header is checked and its element count returned (65535 = unknown);
/// with `deep` every entry is walked and the real count returned, which must
/// match the header's unless that is 65535.
pub fn validate(lp: &[u8], deep: bool) -> Result<usize> {
    let numele = validate_header(lp)?;
    if !deep {
        return Ok(numele as usize);
    }
    let mut count = 0usize;
    for e in iter(lp) {
        e?;
        count += 1;
    }
    if numele != NUMELE_UNKNOWN && numele as usize != count {
        return Err(Error::corrupt(
            4,
            format!("listpack header count {numele} but {count} entries"),
        ));
    }
    Ok(count)
}

/// [`validate`] plus, when `deep`, duplicate detection as upstream's
/// lpValidateIntegrityAndDups: with `pairs` the even entries (field names,
/// members) must be unique and the count even; without it every entry.
pub fn validate_dups(lp: &[u8], deep: bool, pairs: bool) -> Result<usize> {
    if !deep {
        return validate(lp, false);
    }
    let count = validate(lp, true)?;
    let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(count.min(1024));
    for (i, e) in iter(lp).enumerate() {
        let e = e?;
        if pairs && i % 2 == 1 {
            continue;
        }
        if !seen.insert(e.to_bytes()) {
            return Err(Error::corrupt(0, "listpack has duplicate elements"));
        }
    }
    if pairs && count % 2 == 1 {
        return Err(Error::corrupt(0, "listpack of pairs has an odd count"));
    }
    Ok(count)
}

/// An element encoded and ready to be written: header (encoding byte(s) or the whole
/// integer), string data, backlen.
pub struct Encoded<'a> {
    head: [u8; 9],
    head_len: usize,
    data: &'a [u8],
    back: [u8; 5],
    back_len: usize,
}

impl Encoded<'_> {
    #[inline]
    pub fn size(&self) -> usize {
        self.head_len + self.data.len() + self.back_len
    }

    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        let h = self.head_len;
        let d = self.data.len();
        out[..h].copy_from_slice(&self.head[..h]);
        out[h..h + d].copy_from_slice(self.data);
        out[h + d..h + d + self.back_len].copy_from_slice(&self.back[..self.back_len]);
    }
}

/// Writes the backlen of an entry whose encoding+data is `l` bytes: most significant
/// 7-bit group first; every byte but the first has the high bit set.
fn encode_backlen(l: usize, out: &mut [u8; 5]) -> usize {
    let n = backlen_size(l);
    for (i, b) in out.iter_mut().take(n).enumerate() {
        let shift = 7 * (n - 1 - i);
        let g = ((l as u64 >> shift) & 127) as u8;
        *b = if i == 0 { g } else { g | 128 };
    }
    n
}

fn encode_int(v: i64, head: &mut [u8; 9]) -> usize {
    if (0..=127).contains(&v) {
        head[0] = v as u8;
        1
    } else if (-4096..=4095).contains(&v) {
        let u = (v as u64) & 0x1FFF;
        head[0] = 0xC0 | (u >> 8) as u8;
        head[1] = u as u8;
        2
    } else {
        let (enc, n) = if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
            (ENC_16BIT_INT, 2)
        } else if (-8388608..=8388607).contains(&v) {
            (ENC_24BIT_INT, 3)
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            (ENC_32BIT_INT, 4)
        } else {
            (ENC_64BIT_INT, 8)
        };
        head[0] = enc;
        head[1..1 + n].copy_from_slice(&v.to_le_bytes()[..n]);
        1 + n
    }
}

#[inline]
pub fn encode(ele: &[u8]) -> Encoded<'_> {
    let mut head = [0u8; 9];
    let (head_len, data) = match parse_canonical_i64(ele) {
        Some(v) => (encode_int(v, &mut head), &[][..]),
        None => {
            let n = ele.len();
            let hl = if n < 64 {
                head[0] = 0x80 | n as u8;
                1
            } else if n < 4096 {
                head[0] = 0xE0 | (n >> 8) as u8;
                head[1] = n as u8;
                2
            } else {
                head[0] = ENC_32BIT_STR;
                head[1..5].copy_from_slice(&(n as u32).to_le_bytes());
                5
            };
            (hl, ele)
        }
    };
    let mut back = [0u8; 5];
    let back_len = encode_backlen(head_len + data.len(), &mut back);
    Encoded {
        head,
        head_len,
        data,
        back,
        back_len,
    }
}

#[inline]
pub fn encode_i64(v: i64) -> Encoded<'static> {
    let mut head = [0u8; 9];
    let head_len = encode_int(v, &mut head);
    let mut back = [0u8; 5];
    let back_len = encode_backlen(head_len, &mut back);
    Encoded {
        head,
        head_len,
        data: &[],
        back,
        back_len,
    }
}

/// Builds a listpack by appending, encoding as upstream's lpAppend (strings
/// that are canonical integers get an integer encoding).
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; HDR_SIZE]);
        Builder { buf, count: 0 }
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the listpack if finished now.
    pub fn total_bytes(&self) -> usize {
        self.buf.len() + 1
    }

    fn push(&mut self, e: &Encoded) {
        let at = self.buf.len();
        self.buf.resize(at + e.size(), 0);
        e.write(&mut self.buf[at..]);
        self.count += 1;
    }

    /// Appends an entry (an integer encoding when `s` is a canonical i64).
    pub fn append(&mut self, s: &[u8]) {
        self.push(&encode(s));
    }

    /// Appends an integer entry in its smallest encoding.
    pub fn append_int(&mut self, v: i64) {
        self.push(&encode_i64(v));
    }

    /// Appends a decoded entry as is.
    pub fn append_entry(&mut self, e: Entry) {
        match e {
            Entry::Int(v) => self.append_int(v),
            Entry::Str(s) => self.append(s),
        }
    }

    /// The finished listpack bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < NUMELE_UNKNOWN as usize {
            self.count as u16
        } else {
            NUMELE_UNKNOWN
        };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf.shrink_to_fit();
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        for s in [
            &b"a"[..],
            b"12",
            b"-5000",
            b"300000",
            b"-8388608",
            b"2147483647",
            b"1099511627776",
            b"007",
            &[b'q'; 100],
            &[b'w'; 5000],
        ] {
            b.append(s);
        }
        b.append_int(-1);
        b.finish()
    }

    #[test]
    fn build_and_walk() {
        let lp = sample();
        assert_eq!(validate(&lp, true).unwrap(), 11);
        assert_eq!(validate(&lp, false).unwrap(), 11);
        let got: Vec<Vec<u8>> = iter(&lp).map(|e| e.unwrap().to_bytes()).collect();
        assert_eq!(got[0], b"a");
        assert_eq!(got[2], b"-5000");
        assert_eq!(got[4], b"-8388608");
        assert_eq!(got[6], b"1099511627776");
        assert_eq!(got[7], b"007");
        assert_eq!(got[9].len(), 5000);
        assert_eq!(got[10], b"-1");
        let ints: Vec<Option<i64>> = iter(&lp).map(|e| e.unwrap().as_int()).collect();
        assert_eq!(ints[1], Some(12));
        assert_eq!(ints[7], None);
    }

    #[test]
    fn corruption_never_panics() {
        let lp = sample();
        for n in 0..lp.len() {
            assert!(validate(&lp[..n], true).is_err());
        }
        let mut b = lp.clone();
        b[4] = 5;
        assert!(validate(&b, true).is_err());
        assert!(validate(&b, false).is_ok());
        b[4] = 0xff;
        b[5] = 0xff;
        assert_eq!(validate(&b, true).unwrap(), 11);
        for i in 0..lp.len().min(300) {
            for v in [0u8, 1, 0x7f, 0x80, 0xC0, 0xE0, 0xF0, 0xF4, 0xF5, 0xFF] {
                let mut b = lp.clone();
                b[i] = v;
                let _ = validate(&b, true);
                let _ = validate_dups(&b, true, true);
            }
        }
    }

    #[test]
    fn duplicates() {
        let mut b = Builder::new();
        b.append(b"f");
        b.append(b"1");
        b.append(b"g");
        b.append(b"1");
        let lp = b.finish();
        assert!(validate_dups(&lp, true, true).is_ok());
        assert!(validate_dups(&lp, true, false).is_err());
        assert!(validate_dups(&lp, false, false).is_ok());
        let mut b = Builder::new();
        b.append(b"f");
        b.append(b"1");
        b.append(b"f");
        let lp = b.finish();
        assert!(validate_dups(&lp, true, true).is_err());
    }
}
