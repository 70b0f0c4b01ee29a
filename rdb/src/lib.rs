//! Valkey's RDB snapshot format: constants, checksum and the primitive
//! encodings every object type is built from.
//!
//! The reference is upstream Valkey 9.1.2 (`src/rdb.h`, `src/rdb.c`,
//! `src/crc64.c`, `src/lzf_*.c`). This crate is the foundation: the object
//! encoders/decoders, file header/aux/footer handling and the server
//! integration build on it.
//!
//! # File layout, byte by byte
//!
//! ```text
//! magic+version   9 bytes ASCII: "REDIS" + 4 decimal digits for versions <= 11
//!                 ("REDIS0011"), "VALKEY" + 3 decimal digits for versions >= 80
//!                 ("VALKEY080", what 9.1.2 writes). Versions 12..=79 are "foreign"
//!                 (non-OSS Redis formats) and are refused unless
//!                 rdb-version-check is relaxed.
//! then a sequence of records, each starting with one type byte:
//!   0xFA AUX            <string key> <string value>   (valkey-ver, redis-bits,
//!                                                      ctime, used-mem, aof-base,
//!                                                      repl-id, repl-offset, ...)
//!   0xF5 FUNCTION2      <string: library source code>
//!   0xFE SELECTDB       <length: db number>
//!   0xFB RESIZEDB       <length: db size> <length: expires size>
//!   0xFC EXPIRETIME_MS  <8 bytes LE: unix time in ms>   applies to the next key
//!   0xFD EXPIRETIME     <4 bytes LE: unix time in s>    (old, load only)
//!   0xF8 IDLE           <length: LRU idle seconds>     applies to the next key
//!   0xF9 FREQ           <1 byte: LFU counter>          applies to the next key
//!   0xF7 MODULE_AUX     <length: module id> ...        (module aux data)
//!   <object type 0..=23> <string key> <value in that type's encoding>
//!   0xFF EOF
//! footer          8 bytes LE: CRC-64/Jones of every preceding byte, magic
//!                 included ([`crc64`]); all zero when rdbchecksum is off.
//! ```
//!
//! A DUMP payload is `<object type> <value>` followed by the RDB version as a
//! 2-byte little-endian integer and the 8-byte LE CRC-64 of everything before
//! it (no magic, no key).
//!
//! # Lengths ([`encoding::Reader::len`])
//!
//! The two most significant bits of the first byte select the form:
//!
//! ```text
//! 00xxxxxx                 6-bit length (0..=63)
//! 01xxxxxx yyyyyyyy        14-bit length, big endian (64..=16383)
//! 10000000 <4 bytes BE>    32-bit length
//! 10000001 <8 bytes BE>    64-bit length
//! 11xxxxxx                 ENCVAL: a specially encoded string, xxxxxx is
//!                          RDB_ENC_INT8 (0), RDB_ENC_INT16 (1), RDB_ENC_INT32 (2)
//!                          or RDB_ENC_LZF (3)
//! ```
//! The writer always uses the shortest form. `10xxxxxx` other than 0x80/0x81
//! is corrupt.
//!
//! # Strings ([`encoding::Reader::string`])
//!
//! ```text
//! <length n> <n raw bytes>
//! 0xC0 <1 byte>            integer, i8, stored as its decimal text
//! 0xC1 <2 bytes LE>        integer, i16
//! 0xC2 <4 bytes LE>        integer, i32
//! 0xC3 <length clen> <length len> <clen bytes>   LZF-compressed, len bytes
//!                          once decompressed
//! ```
//! The writer uses an integer form only for strings of at most 11 bytes that
//! are the canonical decimal text of an integer fitting in 32 bits (so "007",
//! "-0" and "+1" stay raw strings), and LZF (when compression is on) only for
//! strings over 20 bytes whose compressed form is at least 4 bytes shorter.
//!
//! # Numbers
//!
//! Binary doubles (ZSET_2 scores) are 8 bytes IEEE
//! 754 little endian; millisecond times are 8 bytes LE signed.
//!
//! # Object types
//!
//! See the `TYPE_*` constants: 0 string, 1 list (linked list, old), 2 set,
//! 3 zset (scores as text), 4 hash, 5 zset with binary scores, 6/7 module,
//! 9 zipmap hash, 10 ziplist list, 11 intset, 12 ziplist zset, 13 ziplist
//! hash, 14 quicklist of ziplists, 15 stream (v1), 16 listpack hash,
//! 17 listpack zset, 18 quicklist of listpacks, 19 stream v2, 20 listpack
//! set, 21 stream v3, 22 hash with field expiry (RDB 80), 23 path hash
//! (RDB 81, newer than 9.1.2). Types 22..=243 are foreign when loading a file
//! of a foreign/old version.

pub mod crc64;
pub mod crypt;
pub mod encoding;
pub mod file;
pub mod intset;
mod legacy;
pub mod listpack;
pub mod lzf;
pub mod object;
pub mod stream;
pub mod ziplist;

pub use crc64::crc64;

/// The RDB version 9.1.2 writes (header `VALKEY080`).
pub const RDB_VERSION: u32 = 80;
/// The last version that uses the `REDIS` magic (Redis OSS 7.2 / Valkey 7.x, 8.x).
pub const RDB_LAST_REDIS_VERSION: u32 = 11;
/// First version of the reserved "foreign" range (non-OSS Redis formats).
pub const RDB_FOREIGN_VERSION_MIN: u32 = 12;
/// Last version of the reserved "foreign" range.
pub const RDB_FOREIGN_VERSION_MAX: u32 = 79;

/// Whether `ver` is in the reserved foreign range 12..=79.
pub fn is_foreign_version(ver: u32) -> bool {
    (RDB_FOREIGN_VERSION_MIN..=RDB_FOREIGN_VERSION_MAX).contains(&ver)
}

/// The 9-byte header for version `ver`: `REDIS00nn` up to 11 (4 digits),
/// `VALKEYnnn` above the foreign range (3 digits).
pub fn header(ver: u32) -> [u8; 9] {
    let s = if ver > RDB_FOREIGN_VERSION_MAX {
        format!("VALKEY{ver:03}")
    } else {
        format!("REDIS{ver:04}")
    };
    let mut out = [0u8; 9];
    out.copy_from_slice(&s.as_bytes()[..9]);
    out
}

// Length encoding (two most significant bits of the first byte).
pub const RDB_6BITLEN: u8 = 0;
pub const RDB_14BITLEN: u8 = 1;
pub const RDB_32BITLEN: u8 = 0x80;
pub const RDB_64BITLEN: u8 = 0x81;
pub const RDB_ENCVAL: u8 = 3;

// Special string encodings (low 6 bits after ENCVAL).
pub const RDB_ENC_INT8: u8 = 0;
pub const RDB_ENC_INT16: u8 = 1;
pub const RDB_ENC_INT32: u8 = 2;
pub const RDB_ENC_LZF: u8 = 3;

// Object types.
pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;
/// Hash with field-level expiration (RDB 80, Valkey 9.0).
pub const TYPE_HASH_2: u8 = 22;
/// Path hash (RDB 81, Valkey 9.2; not written by 9.1.2).
pub const TYPE_PATH_HASH: u8 = 23;
/// Types in this range may mean something else in foreign formats.
pub const FOREIGN_TYPE_MIN: u8 = 22;
pub const FOREIGN_TYPE_MAX: u8 = 243;

/// Whether `t` is an object type code (as opposed to an opcode).
pub fn is_object_type(t: u8) -> bool {
    t <= 7 || (9..=TYPE_PATH_HASH).contains(&t)
}

// Opcodes: special record types counting down from 255.
pub const OPCODE_UPDATE: u8 = 242;
pub const OPCODE_SLOT_IMPORT: u8 = 243;
pub const OPCODE_SLOT_INFO: u8 = 244;
pub const OPCODE_FUNCTION2: u8 = 245;
pub const OPCODE_FUNCTION_PRE_GA: u8 = 246;
pub const OPCODE_MODULE_AUX: u8 = 247;
pub const OPCODE_IDLE: u8 = 248;
pub const OPCODE_FREQ: u8 = 249;
pub const OPCODE_AUX: u8 = 250;
pub const OPCODE_RESIZEDB: u8 = 251;
pub const OPCODE_EXPIRETIME_MS: u8 = 252;
pub const OPCODE_EXPIRETIME: u8 = 253;
pub const OPCODE_SELECTDB: u8 = 254;
pub const OPCODE_EOF: u8 = 255;

/// Errors of encoding and decoding.
#[derive(Debug)]
pub enum Error {
    /// The input is not a valid RDB encoding; `offset` is the byte offset (in
    /// the buffer or file being decoded) where the problem was detected.
    Corrupt { offset: u64, reason: String },
    /// Reading or writing the underlying file failed.
    Io(std::io::Error),
}

impl Error {
    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(offset: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            offset,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Corrupt { offset, reason } => {
                write!(f, "corrupt RDB data at offset {offset}: {reason}")
            }
            Error::Io(e) => write!(f, "RDB I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Corrupt { .. } => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e)
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(&header(80), b"VALKEY080");
        assert_eq!(&header(81), b"VALKEY081");
        assert_eq!(&header(11), b"REDIS0011");
        assert_eq!(&header(9), b"REDIS0009");
        assert!(is_foreign_version(12) && is_foreign_version(79));
        assert!(!is_foreign_version(11) && !is_foreign_version(80));
    }

    #[test]
    fn object_types() {
        assert!(is_object_type(TYPE_STRING) && is_object_type(TYPE_MODULE_2));
        assert!(!is_object_type(8));
        assert!(is_object_type(TYPE_HASH_2));
        assert!(!is_object_type(OPCODE_FUNCTION2) && !is_object_type(OPCODE_EOF));
    }
}
