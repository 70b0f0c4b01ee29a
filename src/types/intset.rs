//! Valkey's intset, byte for byte (upstream `intset.c`), so it can be dumped to RDB as
//! is: a u32 LE encoding (2, 4 or 8 = bytes per value), a u32 LE length, then the values
//! sorted ascending, little endian, all in the encoding. Adding a value that does not fit
//! upgrades every value to the wider encoding (never downgraded).

// Part of the API is used only by the set type and RDB being written in parallel.
#![allow(dead_code)]

use super::thin::RawBuf;

const HDR: usize = 8;

/// An intset. See the module documentation.
///
/// One pointer to the intset's bytes (see [`super::thin`]): the length follows from the
/// header, the capacity is the block's usable size.
#[repr(transparent)]
pub struct Intset {
    b: RawBuf,
}

// SAFETY: transparent over a RawBuf whose first u32 (the encoding) is 2, 4 or 8.
unsafe impl super::thin::Small for Intset {}

impl Clone for Intset {
    fn clone(&self) -> Self {
        Intset {
            b: RawBuf::copy_of(self.buf()),
        }
    }
}

impl PartialEq for Intset {
    fn eq(&self, o: &Self) -> bool {
        self.buf() == o.buf()
    }
}

impl Eq for Intset {}

impl Default for Intset {
    fn default() -> Self {
        Intset::new()
    }
}

impl std::fmt::Debug for Intset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Smallest encoding (bytes per value) holding `v`.
#[inline]
fn value_encoding(v: i64) -> usize {
    if v < i32::MIN as i64 || v > i32::MAX as i64 {
        8
    } else if v < i16::MIN as i64 || v > i16::MAX as i64 {
        4
    } else {
        2
    }
}

impl Intset {
    /// An empty intset (16-bit encoding, 8 bytes).
    pub fn new() -> Self {
        Intset {
            b: RawBuf::copy_of(&[2, 0, 0, 0, 0, 0, 0, 0]),
        }
    }

    /// Takes an intset from its serialized bytes (RDB), validating as upstream's deep
    /// check: valid encoding, size matches the length, not empty, strictly increasing.
    pub fn from_bytes(buf: Vec<u8>) -> Option<Intset> {
        rdb::intset::validate(&buf, true).ok()?;
        let mut buf = buf;
        buf.shrink_to_fit();
        Some(Intset {
            b: RawBuf::from_vec(buf),
        })
    }

    /// The bytes (header and values).
    #[inline]
    fn buf(&self) -> &[u8] {
        // SAFETY: the header's encoding and length give the initialized size.
        unsafe { self.b.slice(self.blob_len()) }
    }

    /// The bytes, mutable, as if `n` bytes long (the block must hold them, initialized).
    #[inline]
    fn buf_mut(&mut self, n: usize) -> &mut [u8] {
        debug_assert!(n <= self.b.cap());
        // SAFETY: callers pass a length the block holds, initialized.
        unsafe { self.b.slice_mut(n) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        let n = self.blob_len();
        self.b.into_vec(n)
    }

    /// Bytes per value: 2, 4 or 8.
    #[inline]
    pub fn encoding(&self) -> usize {
        self.b.head_u32() as usize
    }

    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: the header is 8 bytes.
        let h = unsafe { self.b.slice(HDR) };
        u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Serialized size (intsetBlobLen).
    #[inline]
    pub fn blob_len(&self) -> usize {
        HDR + self.encoding() * self.len()
    }

    /// Usable size of the allocation (MEMORY USAGE).
    pub fn mem_usage(&self) -> usize {
        self.b.cap()
    }

    fn set_len(&mut self, n: usize) {
        self.buf_mut(HDR)[4..8].copy_from_slice(&(n as u32).to_le_bytes());
    }

    /// Value at `i` (must be < len).
    #[inline]
    fn get_unchecked_idx(&self, i: usize) -> i64 {
        let enc = self.encoding();
        let p = HDR + i * enc;
        let b = self.buf();
        match enc {
            2 => i16::from_le_bytes([b[p], b[p + 1]]) as i64,
            4 => i32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]) as i64,
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[p..p + 8]);
                i64::from_le_bytes(a)
            }
        }
    }

    #[inline]
    fn put(&mut self, i: usize, v: i64, enc: usize) {
        let p = HDR + i * enc;
        self.buf_mut(p + enc)[p..p + enc].copy_from_slice(&v.to_le_bytes()[..enc]);
    }

    /// The value at `idx` (sorted order).
    pub fn get(&self, idx: usize) -> Option<i64> {
        if idx < self.len() {
            Some(self.get_unchecked_idx(idx))
        } else {
            None
        }
    }

    /// Binary search: Ok(index) if present, Err(insertion index) if not.
    pub fn search(&self, v: i64) -> Result<usize, usize> {
        let n = self.len();
        if n == 0 {
            return Err(0);
        }
        // Fast paths for values past either end (common when adding in order).
        if v > self.get_unchecked_idx(n - 1) {
            return Err(n);
        }
        if v < self.get_unchecked_idx(0) {
            return Err(0);
        }
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let cur = self.get_unchecked_idx(mid);
            if cur == v {
                return Ok(mid);
            }
            if cur < v {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Err(lo)
    }

    pub fn contains(&self, v: i64) -> bool {
        value_encoding(v) <= self.encoding() && self.search(v).is_ok()
    }

    /// Adds `v`; false if it was already present.
    pub fn add(&mut self, v: i64) -> bool {
        let venc = value_encoding(v);
        let enc = self.encoding();
        let n = self.len();
        if venc > enc {
            self.upgrade_and_add(v, venc);
            return true;
        }
        let idx = match self.search(v) {
            Ok(_) => return false,
            Err(i) => i,
        };
        let old_len = self.blob_len();
        self.b.reserve(old_len + enc);
        let at = HDR + idx * enc;
        // SAFETY: the block holds old_len + enc bytes, old_len initialized; the move
        // fills the rest.
        unsafe {
            std::ptr::copy(
                self.b.ptr().add(at),
                self.b.ptr().add(at + enc),
                old_len - at,
            )
        };
        self.put(idx, v, enc);
        self.set_len(n + 1);
        true
    }

    /// Widens every value to `venc` and adds `v`, which is out of the old range, so it
    /// goes first (negative) or last (positive).
    fn upgrade_and_add(&mut self, v: i64, venc: usize) {
        let n = self.len();
        let old = self.encoding();
        let prepend = usize::from(v < 0);
        let new_len = HDR + (n + 1) * venc;
        let old_len = self.blob_len();
        self.b.reserve(new_len);
        // SAFETY: the block holds new_len bytes; the tail is zeroed before use.
        unsafe { std::ptr::write_bytes(self.b.ptr().add(old_len), 0, new_len - old_len) };
        // Back to front so no value is overwritten before it is read.
        for i in (0..n).rev() {
            let p = HDR + i * old;
            let b = self.buf_mut(new_len);
            let x = match old {
                2 => i16::from_le_bytes([b[p], b[p + 1]]) as i64,
                _ => i32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]) as i64,
            };
            self.put(i + prepend, x, venc);
        }
        if prepend == 1 {
            self.put(0, v, venc);
        } else {
            self.put(n, v, venc);
        }
        self.buf_mut(HDR)[0..4].copy_from_slice(&(venc as u32).to_le_bytes());
        self.set_len(n + 1);
    }

    /// Removes `v`; false if it was not present.
    pub fn remove(&mut self, v: i64) -> bool {
        if value_encoding(v) > self.encoding() {
            return false;
        }
        let idx = match self.search(v) {
            Ok(i) => i,
            Err(_) => return false,
        };
        let enc = self.encoding();
        let n = self.len();
        let at = HDR + idx * enc;
        let len = self.blob_len();
        self.buf_mut(len).copy_within(at + enc..len, at);
        self.set_len(n - 1);
        let l = len - enc;
        if self.b.cap() - l > 64.max(l / 8) {
            self.b.realloc(l);
        }
        true
    }

    /// A random member (None when empty).
    pub fn random(&self) -> Option<i64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        Some(self.get_unchecked_idx((crate::util::random_u64() % n as u64) as usize))
    }

    pub fn min(&self) -> Option<i64> {
        self.get(0)
    }

    pub fn max(&self) -> Option<i64> {
        self.len().checked_sub(1).map(|i| self.get_unchecked_idx(i))
    }

    /// The values in ascending order (double-ended, exact size).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            is: self,
            front: 0,
            back: self.len(),
        }
    }
}

/// Iterator over an intset's values.
pub struct Iter<'a> {
    is: &'a Intset,
    front: usize,
    back: usize,
}

impl Iterator for Iter<'_> {
    type Item = i64;

    #[inline]
    fn next(&mut self) -> Option<i64> {
        if self.front >= self.back {
            return None;
        }
        let v = self.is.get_unchecked_idx(self.front);
        self.front += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<i64> {
        if self.back <= self.front {
            return None;
        }
        self.back -= 1;
        Some(self.is.get_unchecked_idx(self.back))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_fixture() {
        // From Valkey 9.1.2: SADD s 3 1 -2 70000; DUMP s (RDB type 11, intset): the
        // intset bytes (upgraded to 32-bit by 70000).
        let up: &[u8] =
            b"\x04\x00\x00\x00\x04\x00\x00\x00\xfe\xff\xff\xff\x01\x00\x00\x00\x03\x00\x00\x00p\x11\x01\x00";
        let mut is = Intset::new();
        for v in [3, 1, -2, 70000] {
            assert!(is.add(v));
        }
        assert_eq!(is.as_bytes(), up);
        assert_eq!(Intset::from_bytes(up.to_vec()).unwrap(), is);
    }

    #[test]
    fn add_remove_upgrade() {
        let mut is = Intset::new();
        assert_eq!(is.as_bytes(), &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(is.is_empty());
        assert_eq!(is.random(), None);
        assert_eq!(is.max(), None);
        for v in [5, 1, 3, -7, 32767, -32768] {
            assert!(is.add(v));
        }
        assert!(!is.add(3));
        assert_eq!(is.encoding(), 2);
        assert_eq!(
            is.iter().collect::<Vec<_>>(),
            vec![-32768, -7, 1, 3, 5, 32767]
        );
        assert!(is.add(-32769));
        assert_eq!(is.encoding(), 4);
        assert!(is.add(i32::MAX as i64));
        assert_eq!(is.encoding(), 4);
        assert!(is.add(i64::MAX));
        assert_eq!(is.encoding(), 8);
        assert!(is.add(i64::MIN));
        let want = vec![
            i64::MIN,
            -32769,
            -32768,
            -7,
            1,
            3,
            5,
            32767,
            i32::MAX as i64,
            i64::MAX,
        ];
        assert_eq!(is.iter().collect::<Vec<_>>(), want);
        let mut rev = is.iter().rev().collect::<Vec<_>>();
        rev.reverse();
        assert_eq!(rev, want);
        assert_eq!(is.len(), 10);
        assert_eq!(is.blob_len(), 8 + 80);
        assert_eq!(is.min(), Some(i64::MIN));
        assert_eq!(is.max(), Some(i64::MAX));
        assert_eq!(is.get(4), Some(1));
        assert_eq!(is.get(10), None);
        assert_eq!(is.search(2), Err(5));
        assert!(is.contains(-7) && !is.contains(-8));
        assert!(is.remove(-7));
        assert!(!is.remove(-7));
        assert!(!is.remove(1 << 40));
        assert!(is.remove(i64::MIN));
        assert_eq!(is.encoding(), 8); // never downgraded
        assert!(want.contains(&is.random().unwrap()));
        assert_eq!(Intset::from_bytes(is.as_bytes().to_vec()).unwrap(), is);
        // Upgrade with a positive value appends.
        let mut is = Intset::new();
        is.add(-1);
        is.add(1 << 20);
        assert_eq!(is.iter().collect::<Vec<_>>(), vec![-1, 1 << 20]);
    }

    #[test]
    fn many_random() {
        let mut is = Intset::new();
        let mut model = std::collections::BTreeSet::new();
        let mut s = 12345u64;
        for _ in 0..5000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = match s % 3 {
                0 => (s >> 8) as i64 % 1000,
                1 => (s >> 8) as i64 % 100000,
                _ => (s >> 2) as i64,
            };
            if s.is_multiple_of(4) {
                assert_eq!(is.remove(v), model.remove(&v));
            } else {
                assert_eq!(is.add(v), model.insert(v));
            }
        }
        assert_eq!(
            is.iter().collect::<Vec<_>>(),
            model.into_iter().collect::<Vec<_>>()
        );
        assert!(is.mem_usage() >= is.blob_len());
    }

    #[test]
    fn from_bytes_validation() {
        assert!(Intset::from_bytes(vec![]).is_none());
        assert!(Intset::from_bytes(Intset::new().into_bytes()).is_none()); // empty
        assert!(Intset::from_bytes(vec![3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]).is_none());
        assert!(Intset::from_bytes(vec![2, 0, 0, 0, 1, 0, 0, 0, 1, 0]).is_some());
        assert!(Intset::from_bytes(vec![2, 0, 0, 0, 2, 0, 0, 0, 1, 0]).is_none());
        assert!(Intset::from_bytes(vec![2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0]).is_none());
        assert!(Intset::from_bytes(vec![2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0]).is_none());
        assert!(Intset::from_bytes(vec![2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0]).is_some());
        assert!(Intset::from_bytes(vec![2, 0, 0, 0, 255, 255, 255, 255, 1, 0]).is_none());
    }
}
