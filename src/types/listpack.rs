//! Valkey's listpack, byte for byte (upstream `listpack.c`), so a value can be dumped to
//! RDB as is and loaded back without conversion.
//!
//! Layout: a 6-byte header (total bytes as u32 LE, element count as u16 LE where 65535
//! means "unknown, count by walking"), the entries, and a 0xFF terminator. Each entry is
//! an encoding byte (with inline length or value bits), its data, and a "backlen": the
//! size of encoding+data written as a varint that is read backwards, so the list can be
//! walked in both directions.
//!
//! Entry encodings (first byte):
//! - `0xxxxxxx` 7-bit unsigned int (0..=127), 1 byte
//! - `10xxxxxx` string of up to 63 bytes
//! - `110xxxxx yyyyyyyy` 13-bit signed int (-4096..=4095)
//! - `1110xxxx yyyyyyyy` string of up to 4095 bytes
//! - `0xF0` + u32 LE length: longer string
//! - `0xF1`/`0xF2`/`0xF3`/`0xF4`: 16/24/32/64-bit signed int, little endian
//!
//! A string that is a canonical i64 (`string2ll` rules) is stored int-encoded, with the
//! smallest encoding that holds it, as upstream.
//!
//! Positions are byte offsets into the buffer. Any mutation invalidates every position
//! held by the caller, except the one the mutating method returns.

// Part of the API is used only by the type modules and RDB being written in parallel.
#![allow(dead_code)]

use crate::util::parse_i64_strict;
// The entry encoder and the format constants are the rdb crate's (one implementation
// of the byte format, shared with RDB loading).
use super::thin::RawBuf;
use rdb::listpack::{
    backlen_size, encode, encode_i64, Encoded, ENC_16BIT_INT, ENC_24BIT_INT, ENC_32BIT_INT,
    ENC_32BIT_STR, ENC_64BIT_INT, EOF, HDR_SIZE, NUMELE_UNKNOWN,
};
/// Upstream's LISTPACK_MAX_SAFETY_SIZE: a listpack never grows past 1GB.
pub const MAX_SAFETY_SIZE: usize = 1 << 30;

/// One element read from a listpack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LpEntry<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl LpEntry<'_> {
    /// The element as bytes (integers in decimal).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            LpEntry::Int(v) => v.to_string().into_bytes(),
            LpEntry::Str(s) => s.to_vec(),
        }
    }

    /// Appends the element's bytes to `out` (integers in decimal).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match *self {
            LpEntry::Int(v) => {
                let mut b = crate::reply::itoa_buf();
                out.extend_from_slice(crate::reply::fmt_i64(&mut b, v));
            }
            LpEntry::Str(s) => out.extend_from_slice(s),
        }
    }

    /// Equality with a client string, as upstream's `lpCompare`: a string entry compares
    /// bytes, an int entry equals a string that parses (string2ll) to the same value.
    pub fn eq_bytes(&self, s: &[u8]) -> bool {
        match *self {
            LpEntry::Str(e) => e == s,
            LpEntry::Int(v) => parse_i64_strict(s) == Some(v),
        }
    }

    /// Length of the element as a string (integers: decimal digits).
    pub fn len(&self) -> usize {
        match *self {
            LpEntry::Int(v) => {
                let mut b = crate::reply::itoa_buf();
                crate::reply::fmt_i64(&mut b, v).len()
            }
            LpEntry::Str(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, LpEntry::Str(s) if s.is_empty())
    }

    /// The value when the entry is int-encoded.
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            LpEntry::Int(v) => Some(v),
            LpEntry::Str(_) => None,
        }
    }
}

/// A listpack. See the module documentation.
///
/// One pointer to the listpack's bytes (see [`super::thin`]): the length is the header's
/// total, the capacity the block's usable size.
#[repr(transparent)]
pub struct Listpack {
    b: RawBuf,
}

// SAFETY: transparent over a RawBuf whose first u32 (the total bytes) is at least 7.
unsafe impl super::thin::Small for Listpack {}

impl Clone for Listpack {
    fn clone(&self) -> Self {
        Listpack {
            b: RawBuf::copy_of(self.buf()),
        }
    }
}

impl PartialEq for Listpack {
    fn eq(&self, o: &Self) -> bool {
        self.buf() == o.buf()
    }
}

impl Eq for Listpack {}

impl Default for Listpack {
    fn default() -> Self {
        Listpack::new()
    }
}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for e in self.iter() {
            match e {
                LpEntry::Int(v) => l.entry(&v),
                LpEntry::Str(s) => l.entry(&String::from_utf8_lossy(s)),
            };
        }
        l.finish()
    }
}

impl Listpack {
    /// An empty listpack (7 bytes).
    pub fn new() -> Self {
        Listpack {
            b: RawBuf::copy_of(&[7, 0, 0, 0, 0, 0, EOF]),
        }
    }

    /// Takes a listpack from its serialized bytes (RDB), after validating every entry:
    /// header total matches, entries in bounds with consistent backlens, count matches
    /// unless unknown (65535), terminator. None if anything is off.
    pub fn from_bytes(buf: Vec<u8>) -> Option<Listpack> {
        // One implementation of the format checks: the rdb crate's full walk
        // (header, every entry's encoding and backlen, the header count).
        rdb::listpack::validate(&buf, true).ok()?;
        let mut buf = buf;
        buf.shrink_to_fit();
        Some(Listpack {
            b: RawBuf::from_vec(buf),
        })
    }

    /// The serialized bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        let n = self.total_bytes();
        self.b.into_vec(n)
    }

    /// Size in bytes (the header's total).
    #[inline]
    pub fn total_bytes(&self) -> usize {
        self.b.head_u32() as usize
    }

    /// The bytes.
    #[inline]
    fn buf(&self) -> &[u8] {
        // SAFETY: the header's total is the initialized length.
        unsafe { self.b.slice(self.total_bytes()) }
    }

    #[inline]
    fn buf_mut(&mut self) -> &mut [u8] {
        let n = self.total_bytes();
        // SAFETY: as `buf`.
        unsafe { self.b.slice_mut(n) }
    }

    /// Number of elements (walks the entries when the header says "unknown", as upstream).
    pub fn len(&self) -> usize {
        let n = u16::from_le_bytes([self.buf()[4], self.buf()[5]]);
        if n != NUMELE_UNKNOWN {
            return n as usize;
        }
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.buf()[HDR_SIZE] == EOF
    }

    /// Usable size of the allocation (MEMORY USAGE).
    pub fn mem_usage(&self) -> usize {
        self.b.cap()
    }

    /// Makes room for a total size of at least `total` bytes, growing geometrically
    /// (stream nodes append many small entries).
    pub fn reserve_total(&mut self, total: usize) {
        let cap = self.b.cap();
        if cap < total {
            self.b.realloc(total.max(cap.saturating_mul(2)));
        }
    }

    /// Releases spare capacity (a stream node that is full).
    pub fn shrink_to_fit(&mut self) {
        let n = self.total_bytes();
        self.b.realloc(n);
    }

    /// Bytes an element would take once encoded (with its backlen).
    pub fn entry_size_for(ele: &[u8]) -> usize {
        encode(ele).size()
    }

    /// Whether `extra` more bytes keep the listpack under upstream's 1GB safety limit.
    pub fn safe_to_add(&self, extra: usize) -> bool {
        self.total_bytes().saturating_add(extra) <= MAX_SAFETY_SIZE
    }

    #[inline]
    fn eof_pos(&self) -> usize {
        self.total_bytes() - 1
    }

    /// encoding+data size of the entry at `p`.
    #[inline]
    fn entry_len(&self, p: usize) -> usize {
        let b = self.buf()[p];
        if b < 0x80 {
            1
        } else if b & 0xC0 == 0x80 {
            1 + (b & 0x3F) as usize
        } else if b & 0xE0 == 0xC0 {
            2
        } else if b & 0xF0 == 0xE0 {
            2 + (((b & 0x0F) as usize) << 8 | self.buf()[p + 1] as usize)
        } else {
            match b {
                ENC_32BIT_STR => {
                    let s = &self.buf()[p + 1..p + 5];
                    5 + u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize
                }
                ENC_16BIT_INT => 3,
                ENC_24BIT_INT => 4,
                ENC_32BIT_INT => 5,
                ENC_64BIT_INT => 9,
                _ => 0, // EOF (or impossible in a validated buffer)
            }
        }
    }

    /// Total size (with backlen) of the entry at `p`.
    #[inline]
    fn entry_total(&self, p: usize) -> usize {
        let l = self.entry_len(p);
        l + backlen_size(l)
    }

    /// Position of the first entry.
    pub fn first(&self) -> Option<usize> {
        if self.buf()[HDR_SIZE] == EOF {
            None
        } else {
            Some(HDR_SIZE)
        }
    }

    /// Position of the last entry.
    pub fn last(&self) -> Option<usize> {
        self.prev(self.eof_pos())
    }

    /// Position of the entry after `pos`.
    #[inline]
    pub fn next(&self, pos: usize) -> Option<usize> {
        if self.buf()[pos] == EOF {
            return None;
        }
        let n = pos + self.entry_total(pos);
        if self.buf()[n] == EOF {
            None
        } else {
            Some(n)
        }
    }

    /// Position of the entry before `pos` (`pos` may be the terminator's position).
    #[inline]
    pub fn prev(&self, pos: usize) -> Option<usize> {
        if pos <= HDR_SIZE {
            return None;
        }
        let mut q = pos - 1;
        let mut v: usize = 0;
        let mut shift = 0;
        loop {
            let b = self.buf()[q];
            v |= ((b & 127) as usize) << shift;
            if b & 128 == 0 {
                break;
            }
            shift += 7;
            q -= 1;
        }
        Some(pos - v - backlen_size(v))
    }

    /// The element at `pos`.
    #[inline]
    pub fn get(&self, pos: usize) -> LpEntry<'_> {
        let b = self.buf();
        let e = b[pos];
        if e < 0x80 {
            LpEntry::Int(e as i64)
        } else if e & 0xC0 == 0x80 {
            let n = (e & 0x3F) as usize;
            LpEntry::Str(&b[pos + 1..pos + 1 + n])
        } else if e & 0xE0 == 0xC0 {
            let u = ((e & 0x1F) as i64) << 8 | b[pos + 1] as i64;
            LpEntry::Int(if u >= 1 << 12 { u - (1 << 13) } else { u })
        } else if e & 0xF0 == 0xE0 {
            let n = ((e & 0x0F) as usize) << 8 | b[pos + 1] as usize;
            LpEntry::Str(&b[pos + 2..pos + 2 + n])
        } else {
            let rd = |n: usize| -> i64 {
                let mut a = [0u8; 8];
                a[..n].copy_from_slice(&b[pos + 1..pos + 1 + n]);
                let u = u64::from_le_bytes(a);
                // Sign-extend from n bytes.
                let sh = 64 - 8 * n as u32;
                ((u << sh) as i64) >> sh
            };
            match e {
                ENC_32BIT_STR => {
                    let n = rd(4) as u32 as usize;
                    LpEntry::Str(&b[pos + 5..pos + 5 + n])
                }
                ENC_16BIT_INT => LpEntry::Int(rd(2)),
                ENC_24BIT_INT => LpEntry::Int(rd(3)),
                ENC_32BIT_INT => LpEntry::Int(rd(4)),
                ENC_64BIT_INT => LpEntry::Int(rd(8)),
                _ => LpEntry::Str(&[]),
            }
        }
    }

    /// Position of the element at `index` (negative: from the tail, -1 = last).
    pub fn seek(&self, index: i64) -> Option<usize> {
        let n = u16::from_le_bytes([self.buf()[4], self.buf()[5]]);
        let (forward, steps) = if n != NUMELE_UNKNOWN {
            let len = n as i64;
            let idx = if index < 0 { len + index } else { index };
            if idx < 0 || idx >= len {
                return None;
            }
            if idx > len / 2 {
                (false, (len - 1 - idx) as usize)
            } else {
                (true, idx as usize)
            }
        } else if index < 0 {
            (false, (-(index + 1)) as usize)
        } else {
            (true, index as usize)
        };
        if forward {
            let mut p = self.first()?;
            for _ in 0..steps {
                p = self.next(p)?;
            }
            Some(p)
        } else {
            let mut p = self.last()?;
            for _ in 0..steps {
                p = self.prev(p)?;
            }
            Some(p)
        }
    }

    /// Iterates the elements (double-ended).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            lp: self,
            front: HDR_SIZE,
            back: self.eof_pos(),
        }
    }

    /// Iterates the elements from the one at `pos` to the end.
    pub fn iter_from(&self, pos: usize) -> Iter<'_> {
        Iter {
            lp: self,
            front: pos,
            back: self.eof_pos(),
        }
    }

    fn set_count(&mut self, n: usize) {
        let v = if n >= NUMELE_UNKNOWN as usize {
            NUMELE_UNKNOWN
        } else {
            n as u16
        };
        self.buf_mut()[4..6].copy_from_slice(&v.to_le_bytes());
    }

    /// Adds `delta` (+1/-1 or more) to the header count, keeping "unknown" unknown.
    fn add_count(&mut self, delta: isize) {
        let n = u16::from_le_bytes([self.buf()[4], self.buf()[5]]);
        if n != NUMELE_UNKNOWN {
            self.set_count((n as isize + delta).max(0) as usize);
        }
    }

    fn set_total(&mut self, n: usize) {
        // SAFETY: the block holds at least the header.
        unsafe { self.b.slice_mut(4) }.copy_from_slice(&(n as u32).to_le_bytes());
    }

    /// Replaces `old` bytes at `at` with the encoded entry (or nothing): one memmove.
    fn splice(&mut self, at: usize, old: usize, new: Option<&Encoded>) {
        let new_size = new.map_or(0, |e| e.size());
        let len = self.total_bytes();
        let new_len = len + new_size - old;
        if new_size > old {
            self.b.reserve(new_len);
            // SAFETY: the block now holds new_len > len bytes, len initialized: the
            // rest is zeroed first.
            unsafe {
                std::ptr::write_bytes(self.b.ptr().add(len), 0, new_len - len);
                self.b.slice_mut(new_len)
            }
            .copy_within(at + old..len, at + new_size);
        } else if new_size < old {
            // SAFETY: len bytes are initialized.
            unsafe { self.b.slice_mut(len) }.copy_within(at + old..len, at + new_size);
        }
        if let Some(e) = new {
            // SAFETY: new_len bytes are initialized after the move above (the new
            // entry's room is written now).
            e.write(&mut unsafe { self.b.slice_mut(new_len) }[at..at + new_size]);
        }
        self.set_total(new_len);
        if new_size < old {
            let cap = self.b.cap();
            if cap - new_len > 64.max(new_len / 8) {
                self.b.realloc(new_len);
            }
        }
    }

    fn insert_encoded(&mut self, at: usize, e: &Encoded) -> usize {
        self.splice(at, 0, Some(e));
        self.add_count(1);
        at
    }

    /// Appends an element at the tail.
    pub fn append(&mut self, ele: &[u8]) {
        let at = self.eof_pos();
        self.insert_encoded(at, &encode(ele));
    }

    /// Appends an integer element at the tail.
    pub fn append_int(&mut self, v: i64) {
        let at = self.eof_pos();
        self.insert_encoded(at, &encode_i64(v));
    }

    /// Inserts an element at the head.
    pub fn prepend(&mut self, ele: &[u8]) {
        self.insert_encoded(HDR_SIZE, &encode(ele));
    }

    /// Inserts an element before (or after) the entry at `pos`; returns the new entry's
    /// position. `pos` may be the terminator's position (`total_bytes() - 1`) with
    /// `after == false` to append.
    pub fn insert(&mut self, pos: usize, ele: &[u8], after: bool) -> usize {
        let at = if after && self.buf()[pos] != EOF {
            pos + self.entry_total(pos)
        } else {
            pos
        };
        self.insert_encoded(at, &encode(ele))
    }

    /// Replaces the element at `pos`; returns its (unchanged) position.
    pub fn replace(&mut self, pos: usize, ele: &[u8]) -> usize {
        let old = self.entry_total(pos);
        self.splice(pos, old, Some(&encode(ele)));
        pos
    }

    /// Replaces the element at `pos` with an integer; returns its position.
    pub fn replace_int(&mut self, pos: usize, v: i64) -> usize {
        let old = self.entry_total(pos);
        self.splice(pos, old, Some(&encode_i64(v)));
        pos
    }

    /// Deletes the element at `pos`; returns the position of the following element.
    pub fn delete(&mut self, pos: usize) -> Option<usize> {
        let old = self.entry_total(pos);
        self.splice(pos, old, None);
        self.add_count(-1);
        if self.buf()[pos] == EOF {
            None
        } else {
            Some(pos)
        }
    }

    /// Deletes `count` elements starting at `pos` (fewer if the end comes first), with one
    /// memmove; returns how many were deleted.
    pub fn delete_range_pos(&mut self, pos: usize, count: usize) -> usize {
        let mut end = pos;
        let mut n = 0;
        while n < count && self.buf()[end] != EOF {
            end += self.entry_total(end);
            n += 1;
        }
        if n > 0 {
            self.splice(pos, end - pos, None);
            self.add_count(-(n as isize));
        }
        n
    }

    /// Deletes `count` elements starting at `index` (negative: from the tail); returns how
    /// many were deleted.
    pub fn delete_range(&mut self, index: i64, count: usize) -> usize {
        match self.seek(index) {
            Some(p) if count > 0 => self.delete_range_pos(p, count),
            _ => 0,
        }
    }

    /// Finds the first element equal (as [`LpEntry::eq_bytes`]) to `ele`, starting at
    /// `pos` and comparing every (skip+1)-th element (skip = 1 walks the fields of
    /// field/value pairs).
    pub fn find(&self, pos: usize, ele: &[u8], skip: usize) -> Option<usize> {
        let as_int = parse_i64_strict(ele);
        let b = self.buf();
        let end = self.eof_pos();
        let mut p = pos;
        let mut skipcnt = 0;
        while p < end {
            let l = self.entry_len(p);
            if skipcnt == 0 {
                let e = b[p];
                let hit = if e & 0xC0 == 0x80 {
                    // 6-bit string: the common case, compared inline.
                    let n = (e & 0x3F) as usize;
                    n == ele.len() && &b[p + 1..p + 1 + n] == ele
                } else {
                    match self.get(p) {
                        LpEntry::Str(s) => s == ele,
                        LpEntry::Int(v) => as_int == Some(v),
                    }
                };
                if hit {
                    return Some(p);
                }
                skipcnt = skip;
            } else {
                skipcnt -= 1;
            }
            p += l + backlen_size(l);
        }
        None
    }
}

/// Usable size of a Vec's allocation (0 when it has none).
pub(crate) fn vec_usable(v: &Vec<u8>) -> usize {
    crate::zmalloc::vec_usable(v)
}

/// Double-ended iterator over a listpack's elements.
pub struct Iter<'a> {
    lp: &'a Listpack,
    /// Position of the next element from the front.
    front: usize,
    /// Position just after the next element from the back.
    back: usize,
}

impl<'a> Iter<'a> {
    /// Position of the element the next call to `next()` returns.
    pub fn pos(&self) -> usize {
        self.front
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = LpEntry<'a>;

    #[inline]
    fn next(&mut self) -> Option<LpEntry<'a>> {
        if self.front >= self.back {
            return None;
        }
        let p = self.front;
        self.front += self.lp.entry_total(p);
        Some(self.lp.get(p))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    #[inline]
    fn next_back(&mut self) -> Option<LpEntry<'a>> {
        if self.back <= self.front {
            return None;
        }
        let p = self.lp.prev(self.back)?;
        self.back = p;
        Some(self.lp.get(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elems(lp: &Listpack) -> Vec<Vec<u8>> {
        lp.iter().map(|e| e.to_vec()).collect()
    }

    fn check(lp: &Listpack) {
        let v = lp.as_bytes().to_vec();
        let back = Listpack::from_bytes(v).expect("valid listpack");
        assert_eq!(&back, lp);
        let fwd: Vec<_> = lp.iter().collect();
        let mut rev: Vec<_> = lp.iter().rev().collect();
        rev.reverse();
        assert_eq!(fwd, rev);
        assert_eq!(fwd.len(), lp.len());
    }

    #[test]
    fn upstream_fixture_list() {
        // From Valkey 9.1.2: RPUSH l a 1 127 128 -4096 4095 -32768 32767 8388607 -8388609
        // 2147483647 9223372036854775807 -9223372036854775808 "" hello-world-xyz; DUMP l
        // (RDB type 18, one packed quicklist node): the node's listpack bytes.
        let up: &[u8] = b"W\x00\x00\x00\x0f\x00\x81a\x02\x01\x01\x7f\x01\xc0\x80\x02\xd0\x00\x02\xcf\xff\x02\xf1\x00\x80\x03\xf1\xff\x7f\x03\xf2\xff\xff\x7f\x04\xf3\xff\xff\x7f\xff\x05\xf3\xff\xff\xff\x7f\x05\xf4\xff\xff\xff\xff\xff\xff\xff\x7f\t\xf4\x00\x00\x00\x00\x00\x00\x00\x80\t\x80\x01\x8fhello-world-xyz\x10\xff";
        let items: &[&[u8]] = &[
            b"a",
            b"1",
            b"127",
            b"128",
            b"-4096",
            b"4095",
            b"-32768",
            b"32767",
            b"8388607",
            b"-8388609",
            b"2147483647",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"",
            b"hello-world-xyz",
        ];
        let mut lp = Listpack::new();
        for i in items {
            lp.append(i);
        }
        assert_eq!(lp.as_bytes(), up);
        let parsed = Listpack::from_bytes(up.to_vec()).unwrap();
        let got = elems(&parsed);
        assert_eq!(got, items.iter().map(|i| i.to_vec()).collect::<Vec<_>>());
        check(&lp);
    }

    #[test]
    fn upstream_fixture_hash() {
        // From Valkey 9.1.2: HSET h f1 v1 f2 300; DUMP h (RDB type 16, hash listpack).
        let up: &[u8] = b"\x16\x00\x00\x00\x04\x00\x82f1\x03\x82v1\x03\x82f2\x03\xc1,\x02\xff";
        let mut lp = Listpack::new();
        for i in [&b"f1"[..], b"v1", b"f2", b"300"] {
            lp.append(i);
        }
        assert_eq!(lp.as_bytes(), up);
        let f = lp.find(lp.first().unwrap(), b"f2", 1).unwrap();
        assert_eq!(lp.get(lp.next(f).unwrap()), LpEntry::Int(300));
        // "v1" is a value, not a field: skip=1 must not find it.
        assert_eq!(lp.find(lp.first().unwrap(), b"v1", 1), None);
        assert!(lp.find(lp.first().unwrap(), b"v1", 0).is_some());
    }

    #[test]
    fn encoding_boundaries() {
        let ints: &[i64] = &[
            0,
            127,
            128,
            -1,
            -4096,
            -4097,
            4095,
            4096,
            i16::MIN as i64,
            i16::MIN as i64 - 1,
            i16::MAX as i64,
            i16::MAX as i64 + 1,
            -8388608,
            -8388609,
            8388607,
            8388608,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
            i32::MAX as i64,
            i32::MAX as i64 + 1,
            i64::MIN,
            i64::MAX,
        ];
        let sizes: &[usize] = &[
            0, 1, 63, 64, 126, 127, 128, 4095, 4096, 16380, 16381, 16382, 16383, 70000,
        ];
        let mut lp = Listpack::new();
        let mut want: Vec<Vec<u8>> = Vec::new();
        for &v in ints {
            let s = v.to_string().into_bytes();
            lp.append(&s);
            want.push(s);
            lp.append_int(v);
            want.push(v.to_string().into_bytes());
        }
        for &n in sizes {
            let s: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            lp.append(&s);
            want.push(s);
        }
        // Non-canonical numbers stay strings.
        for s in [&b"01"[..], b"-0", b"+1", b" 1", b"9223372036854775808"] {
            lp.append(s);
            want.push(s.to_vec());
        }
        assert_eq!(elems(&lp), want);
        for (i, &v) in ints.iter().enumerate() {
            assert_eq!(lp.get(lp.seek(2 * i as i64).unwrap()), LpEntry::Int(v));
        }
        assert_eq!(
            lp.seek(-1).map(|p| lp.get(p)),
            Some(LpEntry::Str(b"9223372036854775808"))
        );
        check(&lp);
        // Entry sizes.
        assert_eq!(Listpack::entry_size_for(b"127"), 2);
        assert_eq!(Listpack::entry_size_for(b"128"), 3);
        assert_eq!(Listpack::entry_size_for(b"-4097"), 4);
        assert_eq!(Listpack::entry_size_for(&[b'x'; 63]), 65);
        assert_eq!(Listpack::entry_size_for(&[b'x'; 64]), 67);
        assert_eq!(Listpack::entry_size_for(&[b'x'; 4095]), 4097 + 2);
        assert_eq!(Listpack::entry_size_for(&[b'x'; 4096]), 4101 + 2);
    }

    #[test]
    fn insert_delete_replace() {
        let mut lp = Listpack::new();
        assert!(lp.is_empty());
        assert_eq!(lp.first(), None);
        assert_eq!(lp.last(), None);
        assert_eq!(lp.seek(0), None);
        assert_eq!(lp.seek(-1), None);
        for i in 0..10 {
            lp.append(format!("e{i}").as_bytes());
        }
        lp.prepend(b"head");
        let p = lp.seek(5).unwrap(); // e4
        assert_eq!(lp.get(p), LpEntry::Str(b"e4"));
        let q = lp.insert(p, b"before-e4", false);
        assert_eq!(lp.get(q), LpEntry::Str(b"before-e4"));
        let p = lp.seek(6).unwrap();
        let q = lp.insert(p, b"12345", true);
        assert_eq!(lp.get(q), LpEntry::Int(12345));
        assert_eq!(lp.get(lp.prev(q).unwrap()), LpEntry::Str(b"e4"));
        let q = lp.replace(q, &[b'z'; 300]);
        assert_eq!(lp.get(q), LpEntry::Str(&[b'z'; 300]));
        let q = lp.replace(q, b"x");
        assert_eq!(lp.get(q), LpEntry::Str(b"x"));
        let q = lp.replace_int(q, -70000);
        assert_eq!(lp.get(q), LpEntry::Int(-70000));
        check(&lp);
        let n = lp.delete(q).unwrap();
        assert_eq!(lp.get(n), LpEntry::Str(b"e5"));
        assert_eq!(lp.len(), 12);
        assert_eq!(lp.delete_range(-3, 10), 3);
        assert_eq!(lp.get(lp.last().unwrap()), LpEntry::Str(b"e6"));
        assert_eq!(lp.delete_range(0, 2), 2);
        assert_eq!(lp.get(lp.first().unwrap()), LpEntry::Str(b"e1"));
        assert_eq!(
            elems(&lp),
            vec![
                b"e1".to_vec(),
                b"e2".to_vec(),
                b"e3".to_vec(),
                b"before-e4".to_vec(),
                b"e4".to_vec(),
                b"e5".to_vec(),
                b"e6".to_vec()
            ]
        );
        check(&lp);
        assert_eq!(lp.get(lp.seek(-7).unwrap()), LpEntry::Str(b"e1"));
        assert_eq!(lp.seek(-8), None);
        assert_eq!(lp.seek(7), None);
        let last = lp.last().unwrap();
        assert_eq!(lp.delete(last), None);
        while let Some(p) = lp.first() {
            lp.delete(p);
        }
        assert_eq!(lp, Listpack::new());
        assert_eq!(lp.len(), 0);
    }

    #[test]
    fn find_with_skip_and_ints() {
        let mut lp = Listpack::new();
        for (f, v) in [("a", "1"), ("10", "b"), ("c", "10"), ("d", "x")] {
            lp.append(f.as_bytes());
            lp.append(v.as_bytes());
        }
        let first = lp.first().unwrap();
        assert_eq!(lp.find(first, b"10", 1), lp.seek(2));
        assert_eq!(lp.find(first, b"10", 0), lp.seek(2));
        let from = lp.seek(3).unwrap();
        assert_eq!(lp.find(from, b"10", 1), lp.seek(5));
        assert_eq!(lp.find(first, b"010", 0), None);
        assert_eq!(lp.find(first, b"d", 1), lp.seek(6));
        assert_eq!(lp.find(first, b"x", 1), None);
        assert!(LpEntry::Int(10).eq_bytes(b"10"));
        assert!(!LpEntry::Int(10).eq_bytes(b"10.0"));
        // A string entry holding digits (possible from RDB) compares bytes.
        assert!(LpEntry::Str(b"10").eq_bytes(b"10"));
        assert_eq!(LpEntry::Int(-123).len(), 4);
        let mut out = Vec::new();
        LpEntry::Int(i64::MIN).write_to(&mut out);
        assert_eq!(out, b"-9223372036854775808");
    }

    #[test]
    fn unknown_count() {
        let mut lp = Listpack::new();
        for i in 0..65536 {
            lp.append_int(i % 100);
        }
        assert_eq!(&lp.as_bytes()[4..6], &[0xFF, 0xFF]);
        assert_eq!(lp.len(), 65536);
        assert_eq!(lp.get(lp.seek(-1).unwrap()), LpEntry::Int(35));
        assert_eq!(lp.get(lp.seek(65535).unwrap()), LpEntry::Int(35));
        assert_eq!(lp.seek(65536), None);
        lp.delete(lp.first().unwrap());
        assert_eq!(lp.len(), 65535);
        check(&lp);
        assert!(lp.safe_to_add(100));
        assert!(!lp.safe_to_add(MAX_SAFETY_SIZE));
    }

    #[test]
    fn memory_tight() {
        let mut lp = Listpack::new();
        for i in 0..1000 {
            lp.append(format!("member{i:04}").as_bytes());
        }
        // 10-byte members: 12 bytes per entry.
        assert_eq!(lp.total_bytes(), 7 + 12 * 1000);
        // Little slack beyond what the allocator's size class of the bytes needs.
        let class = crate::zmalloc::usable_for;
        assert!(lp.mem_usage() <= class(lp.total_bytes() + 63));
        for _ in 0..900 {
            lp.delete(lp.first().unwrap());
        }
        assert!(lp.mem_usage() <= class(lp.total_bytes() + 199));
    }

    #[test]
    fn from_bytes_rejects_corruption() {
        let mut lp = Listpack::new();
        for s in [
            &b"a"[..],
            b"12",
            b"-5000",
            b"300000",
            &[b'q'; 100],
            &[b'w'; 5000],
        ] {
            lp.append(s);
        }
        let good = lp.as_bytes().to_vec();
        assert!(Listpack::from_bytes(good.clone()).is_some());
        // Truncations.
        for n in 0..good.len() {
            assert!(Listpack::from_bytes(good[..n].to_vec()).is_none());
        }
        // Wrong count.
        let mut b = good.clone();
        b[4] = 5;
        assert!(Listpack::from_bytes(b).is_none());
        // Unknown count is fine.
        let mut b = good.clone();
        b[4] = 0xFF;
        b[5] = 0xFF;
        assert_eq!(Listpack::from_bytes(b).unwrap().len(), 6);
        // Random mutations: None or a walkable listpack, never a panic.
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut small_lp = Listpack::new();
        for s in [
            &b"a"[..],
            b"12",
            b"-5000",
            b"300000",
            b"1099511627776",
            &[b'q'; 70],
        ] {
            small_lp.append(s);
        }
        let small = small_lp.as_bytes().to_vec();
        for round in 0..6000 {
            let mut b = if round % 4 == 0 {
                good.clone()
            } else {
                small.clone()
            };
            for _ in 0..(1 + rnd() % 3) {
                let i = (rnd() as usize) % b.len();
                b[i] = rnd() as u8;
            }
            if let Some(lp) = Listpack::from_bytes(b) {
                let n = lp.iter().count();
                assert_eq!(lp.iter().rev().count(), n);
                for e in lp.iter() {
                    let _ = e.to_vec();
                }
            }
        }
        // An unknown encoding byte.
        let mut x = Listpack::new().into_bytes();
        x.splice(6..6, [0xF5, 1]);
        x[0] = 9;
        x[4] = 1;
        assert!(Listpack::from_bytes(x).is_none());
    }
}
