//! Primitive RDB encodings: lengths, strings (raw, integer, LZF), binary
//! doubles and millisecond times. See the crate docs for the byte layouts.
//!
//! [`Reader`] decodes from a byte slice and never trusts a length: every read
//! is bounded by the bytes left, so a huge announced length on short input is
//! an error and allocates nothing. [`Writer`] appends to a `Vec<u8>`.

use std::borrow::Cow;

use crate::{
    Error, Result, RDB_14BITLEN, RDB_32BITLEN, RDB_64BITLEN, RDB_6BITLEN, RDB_ENCVAL,
    RDB_ENC_INT16, RDB_ENC_INT32, RDB_ENC_INT8, RDB_ENC_LZF,
};

/// A decoded length field: a plain length or the ENCVAL special form (its
/// low 6 bits, one of the `RDB_ENC_*` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    Plain(u64),
    Encoded(u8),
}

/// The largest output one input byte of LZF can produce: a 3-byte back
/// reference expands to at most 264 bytes. A declared decompressed length
/// above `clen * LZF_MAX_RATIO` is impossible and rejected before allocating.
const LZF_MAX_RATIO: u64 = 88;

/// Bounded decoder over a byte slice that tracks its offset.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, offsets counted from its start.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// A reader whose reported offsets start at `base` (e.g. the position of
    /// `buf` in a file).
    pub fn with_base(buf: &'a [u8], base: u64) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// Offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An error at the current offset.
    pub fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::corrupt(self.offset(), reason)
    }

    /// The next `n` bytes, borrowed; an error (and no allocation) if fewer are
    /// left. Takes `u64` so announced lengths need no lossy cast.
    pub fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = self.remaining();
        if n > left as u64 {
            return Err(self.corrupt(format!(
                "unexpected end of data: need {n} bytes, {left} left"
            )));
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.bytes(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// A length field, plain or ENCVAL.
    pub fn len_or_enc(&mut self) -> Result<Len> {
        let start = self.offset();
        let b = self.u8()?;
        match b >> 6 {
            RDB_ENCVAL => Ok(Len::Encoded(b & 0x3f)),
            RDB_6BITLEN => Ok(Len::Plain((b & 0x3f) as u64)),
            RDB_14BITLEN => {
                let lo = self.u8()?;
                Ok(Len::Plain((((b & 0x3f) as u64) << 8) | lo as u64))
            }
            _ => match b {
                RDB_32BITLEN => Ok(Len::Plain(u32::from_be_bytes(self.array()?) as u64)),
                RDB_64BITLEN => Ok(Len::Plain(u64::from_be_bytes(self.array()?))),
                _ => Err(Error::corrupt(
                    start,
                    format!("unknown length encoding 0x{b:02x}"),
                )),
            },
        }
    }

    /// A plain length; the ENCVAL form is an error here.
    pub fn len(&mut self) -> Result<u64> {
        let start = self.offset();
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(e) => Err(Error::corrupt(
                start,
                format!("encoded value (type {e}) where a length was expected"),
            )),
        }
    }

    /// A string in any of its encodings. `max` bounds the length of the
    /// (decompressed) result, e.g. proto-max-bulk-len.
    pub fn string(&mut self, max: u64) -> Result<Cow<'a, [u8]>> {
        let start = self.offset();
        match self.len_or_enc()? {
            Len::Plain(n) => {
                if n > max {
                    return Err(Error::corrupt(
                        start,
                        format!("string length {n} exceeds the maximum {max}"),
                    ));
                }
                Ok(Cow::Borrowed(self.bytes(n)?))
            }
            Len::Encoded(RDB_ENC_INT8) => {
                let v = i8::from_le_bytes(self.array()?);
                Ok(Cow::Owned(v.to_string().into_bytes()))
            }
            Len::Encoded(RDB_ENC_INT16) => {
                let v = i16::from_le_bytes(self.array()?);
                Ok(Cow::Owned(v.to_string().into_bytes()))
            }
            Len::Encoded(RDB_ENC_INT32) => {
                let v = i32::from_le_bytes(self.array()?);
                Ok(Cow::Owned(v.to_string().into_bytes()))
            }
            Len::Encoded(RDB_ENC_LZF) => self.lzf(max).map(Cow::Owned),
            Len::Encoded(e) => Err(Error::corrupt(
                start,
                format!("unknown string encoding {e}"),
            )),
        }
    }

    /// The body of an LZF string (after the 0xC3 byte).
    fn lzf(&mut self, max: u64) -> Result<Vec<u8>> {
        let clen = self.len()?;
        let len_at = self.offset();
        let len = self.len()?;
        if len > max {
            return Err(Error::corrupt(
                len_at,
                format!("LZF string length {len} exceeds the maximum {max}"),
            ));
        }
        if len > clen.saturating_mul(LZF_MAX_RATIO) {
            return Err(Error::corrupt(
                len_at,
                format!("LZF string length {len} impossible for {clen} compressed bytes"),
            ));
        }
        let data_at = self.offset();
        let data = self.bytes(clen)?;
        if clen == 0 {
            // len <= clen * ratio, so len == 0 too.
            return Ok(Vec::new());
        }
        crate::lzf::decompress(data, len as usize)
            .ok_or_else(|| Error::corrupt(data_at, "invalid LZF compressed string or wrong length"))
    }

    /// An 8-byte little-endian IEEE 754 double.
    pub fn double_binary(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// An 8-byte little-endian signed millisecond time.
    pub fn millis(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A 4-byte little-endian signed time in seconds (old EXPIRETIME opcode).
    pub fn seconds(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
}

/// Encoder appending to a `Vec<u8>`.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
    /// Reused output buffer of LZF compression.
    scratch: Vec<u8>,
}

/// The integer form of `s` if it is the canonical decimal text of an integer
/// that fits in 32 bits (as upstream's rdbTryIntegerEncoding: at most 11
/// bytes, and formatting the parsed value gives back exactly `s`).
fn canonical_int(s: &[u8]) -> Option<i64> {
    if s.len() > 11 {
        return None;
    }
    crate::listpack::parse_canonical_i64(s)
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The bytes written so far.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A length in its shortest form.
    pub fn len(&mut self, n: u64) {
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf.push(((n >> 8) as u8) | (RDB_14BITLEN << 6));
            self.buf.push(n as u8);
        } else if n <= u32::MAX as u64 {
            self.buf.push(RDB_32BITLEN);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(RDB_64BITLEN);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    fn encval(enc: u8) -> u8 {
        (RDB_ENCVAL << 6) | enc
    }

    /// A string: integer form when possible, else LZF when `compress`, the
    /// string is over 20 bytes and compression saves at least 4 bytes, else
    /// raw. Same choice as upstream's rdbSaveRawString.
    pub fn string(&mut self, s: &[u8], compress: bool) {
        if let Some(v) = canonical_int(s) {
            if let Ok(b) = i8::try_from(v) {
                self.buf.push(Self::encval(RDB_ENC_INT8));
                self.buf.extend_from_slice(&b.to_le_bytes());
                return;
            }
            if let Ok(b) = i16::try_from(v) {
                self.buf.push(Self::encval(RDB_ENC_INT16));
                self.buf.extend_from_slice(&b.to_le_bytes());
                return;
            }
            if let Ok(b) = i32::try_from(v) {
                self.buf.push(Self::encval(RDB_ENC_INT32));
                self.buf.extend_from_slice(&b.to_le_bytes());
                return;
            }
        }
        if compress && s.len() > 20 && self.lzf(s) {
            return;
        }
        self.len(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    /// Writes `s` LZF-compressed if the compressed form fits in `len - 4`
    /// bytes (upstream gives lzf_compress an output buffer of that size).
    fn lzf(&mut self, s: &[u8]) -> bool {
        if s.len() <= 4 {
            return false;
        }
        let mut c = std::mem::take(&mut self.scratch);
        c.clear();
        let done = crate::lzf::compress(s, &mut c, s.len() - 4).is_some();
        if done {
            self.buf.push(Self::encval(RDB_ENC_LZF));
            self.len(c.len() as u64);
            self.len(s.len() as u64);
            self.buf.extend_from_slice(&c);
        }
        self.scratch = c;
        done
    }

    /// An 8-byte little-endian IEEE 754 double.
    pub fn double_binary(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An 8-byte little-endian signed millisecond time.
    pub fn millis(&mut self, ms: i64) {
        self.buf.extend_from_slice(&ms.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 512 * 1024 * 1024;

    fn enc_len(n: u64) -> Vec<u8> {
        let mut w = Writer::new();
        w.len(n);
        w.into_inner()
    }

    fn enc_str(s: &[u8], compress: bool) -> Vec<u8> {
        let mut w = Writer::new();
        w.string(s, compress);
        w.into_inner()
    }

    /// Every proper prefix of `enc` must fail to decode with `f`, without
    /// panicking.
    fn truncations_fail<T: std::fmt::Debug>(enc: &[u8], f: impl Fn(&mut Reader) -> Result<T>) {
        for cut in 0..enc.len() {
            let mut r = Reader::new(&enc[..cut]);
            match f(&mut r) {
                Err(Error::Corrupt { offset, .. }) => assert!(offset <= cut as u64),
                other => panic!("prefix of {cut}/{} bytes decoded: {other:?}", enc.len()),
            }
        }
    }

    #[test]
    fn length_forms_at_boundaries() {
        let cases: &[(u64, usize)] = &[
            (0, 1),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 5),
            (u32::MAX as u64, 5),
            (u32::MAX as u64 + 1, 9),
            (u64::MAX, 9),
        ];
        for &(n, size) in cases {
            let enc = enc_len(n);
            assert_eq!(enc.len(), size, "size of {n}");
            let mut r = Reader::new(&enc);
            assert_eq!(r.len().unwrap(), n);
            assert!(r.is_empty());
            truncations_fail(&enc, |r| r.len());
        }
        assert_eq!(enc_len(64), [0x40, 0x40]);
        assert_eq!(enc_len(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(enc_len(u32::MAX as u64 + 1), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn bad_length_encodings() {
        for b in 0x82..=0xbfu8 {
            let e = Reader::new(&[b, 0, 0, 0, 0, 0, 0, 0, 0]).len().unwrap_err();
            assert!(matches!(e, Error::Corrupt { offset: 0, .. }));
        }
        // ENCVAL where a plain length is expected.
        assert!(Reader::new(&[0xc0, 1]).len().is_err());
        assert_eq!(
            Reader::new(&[0xc3]).len_or_enc().unwrap(),
            Len::Encoded(RDB_ENC_LZF)
        );
    }

    #[test]
    fn integer_encodings() {
        let cases: &[(&str, usize)] = &[
            ("0", 2),
            ("-128", 2),
            ("127", 2),
            ("-129", 3),
            ("128", 3),
            ("-32768", 3),
            ("32767", 3),
            ("-32769", 5),
            ("32768", 5),
            ("-2147483648", 5),
            ("2147483647", 5),
        ];
        for &(s, size) in cases {
            let enc = enc_str(s.as_bytes(), false);
            assert_eq!(enc.len(), size, "{s}");
            assert_eq!(enc[0] >> 6, RDB_ENCVAL, "{s}");
            let mut r = Reader::new(&enc);
            assert_eq!(&*r.string(MAX).unwrap(), s.as_bytes());
            assert!(r.is_empty());
            truncations_fail(&enc, |r| r.string(MAX).map(Cow::into_owned));
        }
        // Not canonical or too large: raw strings.
        for s in [
            "007",
            "-0",
            "+1",
            " 1",
            "1 ",
            "",
            "2147483648",
            "-2147483649",
            "12345678901",
            "1e3",
            "0x10",
        ] {
            let enc = enc_str(s.as_bytes(), false);
            assert_eq!(enc[0] as usize, s.len(), "{s:?} must stay raw");
            assert_eq!(&enc[1..], s.as_bytes());
            assert_eq!(&*Reader::new(&enc).string(MAX).unwrap(), s.as_bytes());
        }
        assert_eq!(enc_str(b"-123456", false), b"\xc2\xc0\x1d\xfe\xff");
    }

    #[test]
    fn raw_string_round_trip_and_limits() {
        for n in [0usize, 1, 20, 63, 64, 300, 16384] {
            let s: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            for compress in [false, true] {
                let enc = enc_str(&s, compress);
                let mut r = Reader::new(&enc);
                assert_eq!(&*r.string(MAX).unwrap(), &s[..]);
                assert!(r.is_empty());
            }
        }
        let enc = enc_str(&[b'x'; 100], false);
        assert!(Reader::new(&enc).string(99).is_err());
        assert!(Reader::new(&enc).string(100).is_ok());
        truncations_fail(&enc, |r| r.string(MAX).map(Cow::into_owned));
    }

    #[test]
    fn lzf_round_trip() {
        let s = b"abcdefghij".repeat(10);
        let enc = enc_str(&s, true);
        assert_eq!(enc[0], 0xc3);
        assert!(enc.len() < s.len());
        let mut r = Reader::new(&enc);
        assert_eq!(&*r.string(MAX).unwrap(), &s[..]);
        assert!(r.is_empty());
        truncations_fail(&enc, |r| r.string(MAX).map(Cow::into_owned));
        // Not compressed when off, or when 20 bytes or less.
        assert_eq!(enc_str(&s, false)[0..2], [0x40, 100]);
        assert_eq!(enc_str(&[b'a'; 20], true)[0], 20);
        assert_eq!(enc_str(&[b'a'; 21], true)[0], 0xc3);
        // Incompressible data stays raw.
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(enc_str(&noise, true)[0..2], [0x40, 200]);
        // Large round trip.
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let enc = enc_str(&big, true);
        assert_eq!(&*Reader::new(&enc).string(MAX).unwrap(), &big[..]);
        assert!(Reader::new(&enc).string(99_999).is_err());
    }

    #[test]
    fn lzf_from_upstream() {
        // The string part of `DUMP k` from Valkey 9.1.2 for "abcdefghij" x 10.
        let up: &[u8] = b"\xc3\x12@d\nabcdefghija\xe0N\t\x01ijP\x00";
        let up = &up[..up.len() - 2];
        let mut r = Reader::new(up);
        assert_eq!(&*r.string(MAX).unwrap(), &b"abcdefghij".repeat(10)[..]);
        assert!(r.is_empty());
        // Our writer produces the same bytes.
        assert_eq!(enc_str(&b"abcdefghij".repeat(10), true), up);
    }

    #[test]
    fn lzf_corruptions() {
        let s = b"abcdefghij".repeat(10);
        let enc = enc_str(&s, true);
        // Announced length larger or smaller than the data decompresses to.
        let mut bigger = enc.clone();
        bigger[3] = 101; // 14-bit length 100 -> 101 (0x40 0x65)
        assert!(Reader::new(&bigger).string(MAX).is_err());
        let mut smaller = enc.clone();
        smaller[3] = 99;
        assert!(Reader::new(&smaller).string(MAX).is_err());
        // Every single-byte corruption: no panic.
        for i in 0..enc.len() {
            for v in [0u8, 0x1f, 0x20, 0xe0, 0xff] {
                let mut c = enc.clone();
                c[i] = v;
                let _ = Reader::new(&c).string(MAX);
            }
        }
        // Huge decompressed length for a tiny compressed body: rejected
        // before allocating.
        let mut w = Writer::new();
        w.u8(0xc3);
        w.len(2);
        w.len(1 << 40);
        w.bytes(&[0, b'a']);
        let e = Reader::new(&w.buf).string(u64::MAX).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }));
        // Unknown special encoding.
        assert!(Reader::new(&[0xc4, 0, 0, 0, 0]).string(MAX).is_err());
    }

    #[test]
    fn huge_length_few_bytes() {
        let mut w = Writer::new();
        w.len(u64::MAX);
        w.bytes(b"abc");
        let mut r = Reader::new(&w.buf);
        let e = r.string(u64::MAX).unwrap_err();
        match e {
            Error::Corrupt { offset, reason } => {
                assert_eq!(offset, 9);
                assert!(reason.contains("end of data"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let mut r = Reader::new(b"abc");
        assert!(r.bytes(u64::MAX).is_err());
        assert!(r.bytes(4).is_err());
        assert_eq!(r.bytes(3).unwrap(), b"abc");
        assert!(r.u8().is_err());
    }

    #[test]
    fn doubles_and_times() {
        let mut w = Writer::new();
        for v in [
            0.0,
            -0.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ] {
            w.double_binary(v);
        }
        w.double_binary(f64::NAN);
        w.millis(1_700_000_000_123);
        w.millis(-1);
        let enc = w.into_inner();
        assert_eq!(&enc[16..24], &1.5f64.to_le_bytes());
        let mut r = Reader::new(&enc);
        for v in [
            0.0,
            -0.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(r.double_binary().unwrap().to_bits(), f64::to_bits(v));
        }
        assert!(r.double_binary().unwrap().is_nan());
        assert_eq!(r.millis().unwrap(), 1_700_000_000_123);
        assert_eq!(r.millis().unwrap(), -1);
        assert!(r.is_empty());
        truncations_fail(&enc[..8], |r| r.double_binary());
        truncations_fail(&enc[..8], |r| r.millis());
        assert_eq!(Reader::new(&[1, 0, 0, 0]).seconds().unwrap(), 1);
    }

    #[test]
    fn offsets_with_base() {
        let mut r = Reader::with_base(&[0x82], 1000);
        match r.len().unwrap_err() {
            Error::Corrupt { offset, .. } => assert_eq!(offset, 1000),
            other => panic!("{other:?}"),
        }
    }
}
