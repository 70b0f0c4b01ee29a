//! Whole files: the header and version check, the record stream
#![allow(dead_code)] // skeleton: the helpers filling it in remove this
//! ([`Loader`]) and the checksummed writer ([`FileWriter`]).

use std::borrow::Cow;
use std::io::Write;

use crate::encoding::{Reader, Writer};
use crate::object::{Limits, Object};
use crate::Result;

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

/// Reads a whole RDB file held in memory, record by record.
pub struct Loader<'a> {
    r: Reader<'a>,
    buf: &'a [u8],
    version: u32,
    lim: Limits,
}

impl<'a> Loader<'a> {
    /// Parses the header. Errors: bad magic ("Wrong signature trying to load DB
    /// from file"), unsupported version ("Can't handle RDB format version N").
    pub fn new(buf: &'a [u8], check: VersionCheck, lim: Limits) -> Result<Loader<'a>> {
        let _ = (buf, check, lim);
        todo!("rdb::file::Loader::new")
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
        let _ = (&self.buf, &self.lim);
        todo!("rdb::file::Loader::next_record")
    }
}

/// Writes a file: header, records, EOF and the CRC-64 footer, flushing to `out`
/// in chunks and keeping the checksum as it goes.
pub struct FileWriter<W: Write> {
    /// Records are encoded here; call [`FileWriter::maybe_flush`] between keys.
    pub w: Writer,
    out: W,
    crc: u64,
    written: u64,
    checksum: bool,
}

impl<W: Write> FileWriter<W> {
    /// Starts a file of `version` (writes the magic).
    pub fn new(out: W, version: u32, checksum: bool) -> FileWriter<W> {
        let _ = (out, version, checksum);
        todo!("rdb::file::FileWriter::new")
    }

    /// An AUX field.
    pub fn aux(&mut self, key: &[u8], val: &[u8]) {
        let _ = (key, val);
        todo!()
    }

    /// SELECTDB and RESIZEDB for a db.
    pub fn select_db(&mut self, db: u64, size: u64, expires: u64) {
        let _ = (db, size, expires);
        todo!()
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
        let _ = (typ, key, expire_ms, lru_idle, lfu_freq);
        todo!()
    }

    /// Writes the buffer out when it holds 64 KiB or more.
    pub fn maybe_flush(&mut self) -> std::io::Result<()> {
        todo!()
    }

    /// Bytes handed to `out` so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// EOF opcode and footer; flushes and returns `out`.
    pub fn finish(self) -> std::io::Result<W> {
        let _ = (self.crc, self.checksum);
        todo!()
    }
}
