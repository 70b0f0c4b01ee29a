//! Whole files: the header and version check, the record stream
//! ([`Loader`]) and the checksummed writer ([`FileWriter`]).
//!
//! Header rules (as upstream's `rdbIsVersionAccepted`): the first 9 bytes are
//! `REDIS0` or `VALKEY` followed by decimal digits (read like C's `atoi`).
//! Version 0 is refused, a `VALKEY` magic with a version <= 79 and a `REDIS`
//! magic with a version > 79 are refused; in strict mode versions newer than
//! [`crate::RDB_VERSION`] and the foreign range 12..=79 are refused too.
//! In a file with the `REDIS` magic, bytes 22..=243 in a type position are
//! refused ("foreign type or opcode").

use std::borrow::Cow;
use std::io::Write;

use crate::encoding::{Reader, Writer};
use crate::object::{read_object, Limits, Object};
use crate::{Error, Result};

/// How strictly the version is checked (`rdb-version-check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    /// Foreign versions 12..=79 and versions newer than ours are refused.
    Strict,
    /// Any version is tried (types are still checked).
    Relaxed,
}

/// One record of a file, in order.
#[derive(Debug)]
pub enum Record<'a> {
    /// An AUX field (valkey-ver, redis-bits, ctime, used-mem, aof-base, repl-id...).
    Aux(Cow<'a, [u8]>, Cow<'a, [u8]>),
    /// SELECTDB.
    SelectDb(u64),
    /// RESIZEDB: (db size, expires size) hints, not trusted for allocation.
    ResizeDb(u64, u64),
    /// A function library (FUNCTION2): its source code.
    Function(Cow<'a, [u8]>),
    /// A key with its value and the modifiers that preceded it.
    Key(KeyRecord<'a>),
}

/// A key and what applies to it.
#[derive(Debug)]
pub struct KeyRecord<'a> {
    pub key: Cow<'a, [u8]>,
    /// The object type byte (`TYPE_*`).
    pub typ: u8,
    pub value: Object<'a>,
    /// Absolute unix time in ms, from EXPIRETIME_MS or EXPIRETIME.
    pub expire_ms: Option<i64>,
    /// IDLE opcode: LRU idle seconds.
    pub lru_idle: Option<u64>,
    /// FREQ opcode: LFU counter.
    pub lfu_freq: Option<u8>,
    /// Offset of the record's first byte (for error messages).
    pub offset: u64,
}

/// Parses the 9-byte header: returns the version, or the error upstream logs.
/// `check` applies the strict rules; the magic rules always apply.
pub fn parse_header(buf: &[u8], check: VersionCheck) -> Result<u32> {
    let Some(head) = buf.get(..9) else {
        return Err(Error::corrupt(
            buf.len() as u64,
            "Unexpected EOF reading RDB file",
        ));
    };
    let (valkey, redis) = match head.get(..6) {
        Some(b"REDIS0") => (false, true),
        Some(b"VALKEY") => (true, false),
        _ => {
            return Err(Error::corrupt(
                0,
                "Wrong signature trying to load DB from file",
            ))
        }
    };
    // atoi over the last 3 bytes: leading digits only.
    let mut ver: u32 = 0;
    for &b in head.get(6..9).unwrap_or(&[]) {
        if !b.is_ascii_digit() {
            break;
        }
        ver = ver * 10 + (b - b'0') as u32;
    }
    let refused = ver < 1
        || (valkey && ver <= crate::RDB_FOREIGN_VERSION_MAX)
        || (redis && ver > crate::RDB_FOREIGN_VERSION_MAX)
        || (check == VersionCheck::Strict
            && (ver > crate::RDB_VERSION || crate::is_foreign_version(ver)));
    if refused {
        return Err(Error::corrupt(
            0,
            format!("Can't handle RDB format version {ver}"),
        ));
    }
    Ok(ver)
}

/// Reads a whole RDB file held in memory, record by record.
pub struct Loader<'a> {
    r: Reader<'a>,
    buf: &'a [u8],
    version: u32,
    lim: Limits,
    redis_magic: bool,
    verify_checksum: bool,
    done: bool,
}

impl<'a> Loader<'a> {
    /// Parses the header. Errors: bad magic ("Wrong signature trying to load DB
    /// from file"), unsupported version ("Can't handle RDB format version N").
    pub fn new(buf: &'a [u8], check: VersionCheck, lim: Limits) -> Result<Loader<'a>> {
        let version = parse_header(buf, check)?;
        let mut r = Reader::new(buf);
        r.bytes(9)?;
        Ok(Loader {
            r,
            buf,
            version,
            lim,
            redis_magic: buf.starts_with(b"REDIS"),
            verify_checksum: true,
            done: false,
        })
    }

    /// Whether a non-zero checksum footer is verified (`rdbchecksum`; on by
    /// default). A zero footer is never checked (saved with checksum off).
    pub fn set_verify_checksum(&mut self, on: bool) {
        self.verify_checksum = on;
    }

    /// The file's RDB version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.r.offset()
    }

    /// The next record; `None` after the EOF opcode once the checksum footer
    /// (when present and non-zero, for versions >= 5) has been verified.
    pub fn next_record(&mut self) -> Result<Option<Record<'a>>> {
        if self.done {
            return Ok(None);
        }
        let mut expire_ms = None;
        let mut lru_idle = None;
        let mut lfu_freq = None;
        loop {
            let at = self.r.offset();
            let typ = self.r.u8()?;
            if self.redis_magic
                && (crate::FOREIGN_TYPE_MIN..=crate::FOREIGN_TYPE_MAX).contains(&typ)
            {
                return Err(Error::corrupt(
                    at,
                    format!(
                        "Can't handle foreign type or opcode {typ} in RDB with version {}",
                        self.version
                    ),
                ));
            }
            match typ {
                crate::OPCODE_EXPIRETIME => {
                    expire_ms = Some(self.r.seconds()? as i64 * 1000);
                }
                crate::OPCODE_EXPIRETIME_MS => {
                    expire_ms = Some(self.r.millis()?);
                }
                crate::OPCODE_FREQ => {
                    lfu_freq = Some(self.r.u8()?);
                }
                crate::OPCODE_IDLE => {
                    lru_idle = Some(self.r.len()?);
                }
                crate::OPCODE_EOF => {
                    self.finish_eof()?;
                    return Ok(None);
                }
                crate::OPCODE_SELECTDB => {
                    return Ok(Some(Record::SelectDb(self.r.len()?)));
                }
                crate::OPCODE_RESIZEDB => {
                    let size = self.r.len()?;
                    let expires = self.r.len()?;
                    return Ok(Some(Record::ResizeDb(size, expires)));
                }
                crate::OPCODE_SLOT_INFO => {
                    // Slot id, slot size, expires slot size: size hints only.
                    self.r.len()?;
                    self.r.len()?;
                    self.r.len()?;
                }
                crate::OPCODE_SLOT_IMPORT => {
                    return Err(Error::corrupt(
                        at,
                        "Slot import state is not supported in this RDB loader",
                    ));
                }
                crate::OPCODE_AUX => {
                    let k = self.r.string(self.lim.max_string)?;
                    let v = self.r.string(self.lim.max_string)?;
                    return Ok(Some(Record::Aux(k, v)));
                }
                crate::OPCODE_MODULE_AUX => {
                    let id = self.r.len()?;
                    return Err(Error::corrupt(
                        at,
                        format!(
                            "The RDB file contains AUX module data I can't load: no matching module '{}'",
                            module_name(id)
                        ),
                    ));
                }
                crate::OPCODE_FUNCTION_PRE_GA => {
                    return Err(Error::corrupt(
                        at,
                        "Pre-release function format not supported.",
                    ));
                }
                crate::OPCODE_FUNCTION2 => {
                    let code = self.r.string(self.lim.max_string).map_err(|e| match e {
                        Error::Corrupt { offset, reason } => Error::Corrupt {
                            offset,
                            reason: format!("Failed loading library payload: {reason}"),
                        },
                        other => other,
                    })?;
                    return Ok(Some(Record::Function(code)));
                }
                _ => {
                    let key = self.r.string(self.lim.max_string)?;
                    let value = read_object(&mut self.r, typ, &self.lim)?;
                    return Ok(Some(Record::Key(KeyRecord {
                        key,
                        typ,
                        value,
                        expire_ms,
                        lru_idle,
                        lfu_freq,
                        offset: at,
                    })));
                }
            }
        }
    }

    /// After the EOF opcode: the checksum footer for versions >= 5.
    fn finish_eof(&mut self) -> Result<()> {
        self.done = true;
        if self.version < 5 {
            return Ok(());
        }
        let covered = self.r.offset() as usize;
        let at = self.r.offset();
        let footer = self.r.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(footer);
        let stored = u64::from_le_bytes(a);
        if stored == 0 || !self.verify_checksum {
            return Ok(());
        }
        let expected = crate::crc64(self.buf.get(..covered).unwrap_or(&[]));
        if stored != expected {
            return Err(Error::corrupt(
                at,
                format!(
                    "Wrong RDB checksum expected: ({expected:x}) but got ({stored:x}). RDB CRC error"
                ),
            ));
        }
        Ok(())
    }
}

/// The 9-character name a module type ID encodes (upstream's
/// moduleTypeNameByID: 54 bits of 6-bit symbols, then 10 bits of version).
pub fn module_name(id: u64) -> String {
    const SET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = id >> 10;
    let mut name = [b'A'; 9];
    for j in (0..9).rev() {
        name[j] = SET[(id & 63) as usize];
        id >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// Size at which [`FileWriter::maybe_flush`] hands the buffer to `out`.
pub const FLUSH_CHUNK: usize = 64 * 1024;

/// Writes a file: header, records, EOF and the CRC-64 footer, flushing to `out`
/// in chunks and keeping the checksum as it goes.
pub struct FileWriter<W: Write> {
    /// Records are encoded here; call [`FileWriter::maybe_flush`] between keys.
    pub w: Writer,
    /// Compress AUX values and keys with LZF as upstream does for strings over
    /// 20 bytes (`rdbcompression`); off by default.
    pub compress: bool,
    out: W,
    crc: u64,
    written: u64,
    checksum: bool,
}

impl<W: Write> FileWriter<W> {
    /// Starts a file of `version` (writes the magic).
    pub fn new(out: W, version: u32, checksum: bool) -> FileWriter<W> {
        let mut w = Writer::new();
        w.buf.reserve(FLUSH_CHUNK + 1024);
        w.bytes(&crate::header(version));
        FileWriter {
            w,
            compress: false,
            out,
            crc: 0,
            written: 0,
            checksum,
        }
    }

    /// An AUX field.
    pub fn aux(&mut self, key: &[u8], val: &[u8]) {
        self.w.u8(crate::OPCODE_AUX);
        self.w.string(key, self.compress);
        self.w.string(val, self.compress);
    }

    /// A function library (FUNCTION2) with its source code.
    pub fn function(&mut self, code: &[u8]) {
        self.w.u8(crate::OPCODE_FUNCTION2);
        self.w.string(code, self.compress);
    }

    /// SELECTDB and RESIZEDB for a db.
    pub fn select_db(&mut self, db: u64, size: u64, expires: u64) {
        self.w.u8(crate::OPCODE_SELECTDB);
        self.w.len(db);
        self.w.u8(crate::OPCODE_RESIZEDB);
        self.w.len(size);
        self.w.len(expires);
    }

    /// The prefix of a key record: EXPIRETIME_MS, IDLE, FREQ when given, then
    /// the type byte and the key. The caller then encodes the value into `self.w`.
    pub fn key_prefix(
        &mut self,
        typ: u8,
        key: &[u8],
        expire_ms: Option<i64>,
        lru_idle: Option<u64>,
        lfu_freq: Option<u8>,
    ) {
        if let Some(ms) = expire_ms {
            self.w.u8(crate::OPCODE_EXPIRETIME_MS);
            self.w.millis(ms);
        }
        if let Some(idle) = lru_idle {
            self.w.u8(crate::OPCODE_IDLE);
            self.w.len(idle);
        }
        if let Some(freq) = lfu_freq {
            self.w.u8(crate::OPCODE_FREQ);
            self.w.u8(freq);
        }
        self.w.u8(typ);
        self.w.string(key, self.compress);
    }

    /// Writes the buffer out when it holds 64 KiB or more.
    pub fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.w.buf.len() >= FLUSH_CHUNK {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> std::io::Result<()> {
        if self.w.buf.is_empty() {
            return Ok(());
        }
        if self.checksum {
            self.crc = crate::crc64::update(self.crc, &self.w.buf);
        }
        self.out.write_all(&self.w.buf)?;
        self.written += self.w.buf.len() as u64;
        self.w.buf.clear();
        Ok(())
    }

    /// Bytes handed to `out` so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// EOF opcode and footer; flushes and returns `out`.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.w.u8(crate::OPCODE_EOF);
        self.flush_buf()?;
        let crc = if self.checksum { self.crc } else { 0 };
        self.out.write_all(&crc.to_le_bytes())?;
        self.written += 8;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Limits;

    fn sample(version: u32, checksum: bool) -> Vec<u8> {
        let mut fw = FileWriter::new(Vec::new(), version, checksum);
        fw.aux(b"valkey-ver", b"9.1.2");
        fw.aux(b"redis-bits", b"64");
        fw.select_db(0, 2, 1);
        fw.key_prefix(
            crate::TYPE_STRING,
            b"k1",
            Some(1_700_000_000_123),
            None,
            None,
        );
        fw.w.string(b"hello", false);
        fw.key_prefix(crate::TYPE_STRING, b"k2", None, Some(42), Some(7));
        fw.w.string(b"12345", false);
        fw.maybe_flush().unwrap();
        fw.select_db(3, 1, 0);
        fw.key_prefix(crate::TYPE_STRING, b"big", None, None, None);
        fw.w.string(&vec![b'x'; 70_000], false);
        fw.maybe_flush().unwrap();
        fw.finish().unwrap()
    }

    fn load_all(buf: &[u8]) -> Result<Vec<String>> {
        let mut l = Loader::new(buf, VersionCheck::Strict, Limits::default())?;
        let mut out = Vec::new();
        while let Some(rec) = l.next_record()? {
            out.push(match rec {
                Record::Aux(k, v) => format!(
                    "aux {}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                ),
                Record::SelectDb(n) => format!("select {n}"),
                Record::ResizeDb(a, b) => format!("resize {a} {b}"),
                Record::Function(f) => format!("func {}", f.len()),
                Record::Key(k) => format!(
                    "key {} {:?} {:?} {:?} {}",
                    String::from_utf8_lossy(&k.key),
                    k.expire_ms,
                    k.lru_idle,
                    k.lfu_freq,
                    match k.value {
                        Object::String(s) => s.len(),
                        _ => usize::MAX,
                    }
                ),
            });
        }
        assert!(l.next_record()?.is_none());
        Ok(out)
    }

    #[test]
    fn round_trip() {
        let buf = sample(80, true);
        assert!(buf.starts_with(b"VALKEY080"));
        let recs = load_all(&buf).unwrap();
        assert_eq!(
            recs,
            [
                "aux valkey-ver=9.1.2",
                "aux redis-bits=64",
                "select 0",
                "resize 2 1",
                "key k1 Some(1700000000123) None None 5",
                "key k2 None Some(42) Some(7) 5",
                "select 3",
                "resize 1 0",
                "key big None None None 70000",
            ]
        );
        // The footer is the CRC of everything before it.
        let n = buf.len();
        let crc = u64::from_le_bytes(buf[n - 8..].try_into().unwrap());
        assert_eq!(crc, crate::crc64(&buf[..n - 8]));
        // Checksum off: zero footer, still loads.
        let buf0 = sample(80, false);
        assert_eq!(&buf0[buf0.len() - 8..], &[0u8; 8]);
        assert_eq!(load_all(&buf0).unwrap(), recs);
        // Old REDIS magic.
        let b11 = sample(11, true);
        assert!(b11.starts_with(b"REDIS0011"));
        assert_eq!(load_all(&b11).unwrap(), recs);
    }

    #[test]
    fn writer_flushes_in_chunks() {
        let mut fw = FileWriter::new(Vec::new(), 80, true);
        fw.key_prefix(crate::TYPE_STRING, b"k", None, None, None);
        fw.w.string(&vec![b'y'; FLUSH_CHUNK], false);
        assert_eq!(fw.written(), 0);
        fw.maybe_flush().unwrap();
        assert!(fw.written() > FLUSH_CHUNK as u64);
        assert!(fw.w.buf.is_empty());
        let out = fw.finish().unwrap();
        assert_eq!(out.len() as u64, FLUSH_CHUNK as u64 + 9 + 1 + 2 + 5 + 1 + 8);
        load_all(&out).unwrap();
    }

    #[test]
    fn truncations_and_bad_checksum() {
        let buf = sample(80, true);
        let n = buf.len();
        let cuts = (0..200)
            .chain(n - 200..n)
            .chain((200..n - 200).step_by(997));
        for cut in cuts {
            assert!(load_all(&buf[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = buf.clone();
        bad[n - 1] ^= 1;
        match load_all(&bad) {
            Err(Error::Corrupt { reason, offset }) => {
                assert!(reason.starts_with("Wrong RDB checksum"), "{reason}");
                assert_eq!(offset, n as u64 - 8);
            }
            other => panic!("{other:?}"),
        }
        // A flipped payload byte is caught by the checksum or the decoder.
        for i in (9..200).chain(n - 100..n - 8) {
            let mut b = buf.clone();
            b[i] ^= 0x20;
            let _ = load_all(&b).expect_err("corruption undetected");
        }
    }

    #[test]
    fn headers() {
        let strict = |h: &[u8]| parse_header(h, VersionCheck::Strict);
        let relaxed = |h: &[u8]| parse_header(h, VersionCheck::Relaxed);
        assert_eq!(strict(b"VALKEY080").unwrap(), 80);
        assert_eq!(strict(b"REDIS0011").unwrap(), 11);
        assert_eq!(strict(b"REDIS0001").unwrap(), 1);
        let reason = |r: Result<u32>| match r {
            Err(Error::Corrupt { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(strict(b"REDIS0012")),
            "Can't handle RDB format version 12"
        );
        assert_eq!(relaxed(b"REDIS0012").unwrap(), 12);
        assert_eq!(relaxed(b"REDIS0079").unwrap(), 79);
        assert!(strict(b"VALKEY081").is_err());
        assert_eq!(relaxed(b"VALKEY081").unwrap(), 81);
        assert!(relaxed(b"VALKEY011").is_err());
        assert!(relaxed(b"REDIS0080").is_err());
        assert!(relaxed(b"REDIS0000").is_err());
        assert_eq!(
            reason(strict(b"RODIS0011")),
            "Wrong signature trying to load DB from file"
        );
        assert!(strict(b"VALKEY08").is_err());
    }

    #[test]
    fn opcodes() {
        let mut f = crate::header(11).to_vec();
        // Foreign type in a REDIS file.
        f.push(crate::TYPE_HASH_2);
        let e = Loader::new(&f, VersionCheck::Strict, Limits::default())
            .unwrap()
            .next_record()
            .unwrap_err();
        assert!(e.to_string().contains("foreign type or opcode 22"), "{e}");
        // FUNCTION2, SLOT_INFO, MODULE_AUX in a VALKEY file.
        let mut w = Writer::new();
        w.bytes(&crate::header(80));
        w.u8(crate::OPCODE_FUNCTION2);
        w.string(b"#!lua name=x\\nreturn 1", false);
        w.u8(crate::OPCODE_SLOT_INFO);
        w.len(5);
        w.len(10);
        w.len(1);
        w.u8(crate::OPCODE_EXPIRETIME);
        w.bytes(&100i32.to_le_bytes());
        w.u8(crate::TYPE_STRING);
        w.string(b"k", false);
        w.string(b"v", false);
        w.u8(crate::OPCODE_MODULE_AUX);
        w.len(12345 << 10);
        let buf = w.into_inner();
        let mut l = Loader::new(&buf, VersionCheck::Strict, Limits::default()).unwrap();
        assert!(matches!(
            l.next_record().unwrap(),
            Some(Record::Function(_))
        ));
        match l.next_record().unwrap() {
            Some(Record::Key(k)) => assert_eq!(k.expire_ms, Some(100_000)),
            other => panic!("{other:?}"),
        }
        let e = l.next_record().unwrap_err();
        assert!(e.to_string().contains("AUX module data"), "{e}");
        // Version < 5: no footer.
        let mut v4 = crate::header(4).to_vec();
        v4.push(crate::OPCODE_EOF);
        assert!(load_all(&v4).unwrap().is_empty());
        // Unknown type.
        let mut u = crate::header(80).to_vec();
        u.extend_from_slice(&[8, 1, b'k']);
        assert!(load_all(&u).is_err());
    }
}
