//! Values stored in the keyspace, their types and encodings (Valkey's `object.c`).
//!
//! A string is stored in one of three encodings, as upstream, and OBJECT ENCODING reports
//! the same name for the same value:
//! - `int`: the value is the canonical decimal form of an i64 of at most 20 characters;
//! - `embstr`: a string that fits with its key in upstream's embedded block
//!   ([`embstr_fits`]);
//! - `raw`: longer strings, or any string modified in place (APPEND, SETRANGE).
//!
//! The encoding is what OBJECT ENCODING reports; where the bytes live is the key table's
//! business (`kvstore`: every string stored whole, up to 4 KB, is inline in the key's entry).
//!
//! Collections are [`crate::types`]: each reports its encoding (`listpack`, `quicklist`,
//! `intset`, `hashtable`, `skiplist`) from its own state.

use crate::types::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};

/// Valkey 9 embeds key, value and expiry in one allocation and reports `embstr` while
/// they fit: measured on 9.1.2, a string is `embstr` when
/// `key_len + key_header + value_len + (8 if it has a TTL)` is at most this, where the key
/// header is 1 byte for keys under 32 bytes and 3 bytes otherwise.
pub const EMBED_BUDGET_BYTES: usize = 114;

/// Whether a string created for a key of `key_len` bytes reports `embstr` (else `raw`).
pub fn embstr_fits(key_len: usize, val_len: usize, with_ttl: bool) -> bool {
    let key_header = if key_len < 32 { 1 } else { 3 };
    let ttl = if with_ttl { 8 } else { 0 };
    key_len
        .saturating_add(key_header)
        .saturating_add(val_len)
        .saturating_add(ttl)
        <= EMBED_BUDGET_BYTES
}

/// The type of a value, as reported by TYPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjType {
    String,
    List,
    Set,
    ZSet,
    Hash,
    Stream,
}

impl ObjType {
    pub fn name(self) -> &'static str {
        match self {
            ObjType::String => "string",
            ObjType::List => "list",
            ObjType::Set => "set",
            ObjType::ZSet => "zset",
            ObjType::Hash => "hash",
            ObjType::Stream => "stream",
        }
    }

    /// Parses a SCAN TYPE argument (case-insensitive).
    pub fn from_name(s: &[u8]) -> Option<ObjType> {
        let s = s.to_ascii_lowercase();
        Some(match &s[..] {
            b"string" => ObjType::String,
            b"list" => ObjType::List,
            b"set" => ObjType::Set,
            b"zset" => ObjType::ZSet,
            b"hash" => ObjType::Hash,
            b"stream" => ObjType::Stream,
            _ => return None,
        })
    }
}

/// The encoding of a value, as reported by OBJECT ENCODING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Int,
    EmbStr,
    Raw,
    Listpack,
    Quicklist,
    Intset,
    Hashtable,
    Skiplist,
    Stream,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Int => "int",
            Encoding::EmbStr => "embstr",
            Encoding::Raw => "raw",
            Encoding::Listpack => "listpack",
            Encoding::Quicklist => "quicklist",
            Encoding::Intset => "intset",
            Encoding::Hashtable => "hashtable",
            Encoding::Skiplist => "skiplist",
            Encoding::Stream => "stream",
        }
    }
}

/// An owned value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An int-encoded string.
    Int(i64),
    /// A string; `raw` tells whether it is raw-encoded (else embstr when short enough).
    /// Strings are kept inline in their key's entry when stored whole (`kvstore`); the
    /// others (modified in place, or long) have their buffer behind one box, so a `Value`
    /// stays 16 bytes (a Vec is three words: hence the box).
    #[allow(clippy::box_collection)]
    Str {
        bytes: Box<Vec<u8>>,
        raw: bool,
    },
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
    Stream(Stream),
}

/// A borrowed view of a stored value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Int(i64),
    Str(&'a [u8]),
    List(&'a List),
    Hash(&'a Hash),
    Set(&'a Set),
    ZSet(&'a ZSet),
    Stream(&'a Stream),
}

impl Value {
    /// Settles the encoding of a freshly created string for the key it is stored under
    /// (see [`embstr_fits`]); raw strings stay raw.
    pub fn settle_encoding(&mut self, key_len: usize, with_ttl: bool) {
        if let Value::Str { bytes, raw } = self {
            if !*raw {
                *raw = !embstr_fits(key_len, bytes.len(), with_ttl);
            }
        }
    }

    /// A string value with upstream's encoding choice (`tryObjectEncoding`): int when the
    /// bytes are an i64 in canonical form of at most 20 characters, else a string whose
    /// embstr/raw encoding is settled when it is stored (see [`Value::settle_encoding`]).
    pub fn from_vec(b: Vec<u8>) -> Value {
        if let Some(n) = Value::int_of(&b) {
            return Value::Int(n);
        }
        Value::Str {
            bytes: Box::new(b),
            raw: false,
        }
    }

    /// The integer a string is int-encoded as ([`Value::from_vec`]'s choice): an i64 in
    /// canonical form of at most 20 characters.
    #[inline]
    pub fn int_of(b: &[u8]) -> Option<i64> {
        if b.len() <= 20 {
            crate::util::parse_i64_strict(b)
        } else {
            None
        }
    }

    /// [`Value::from_vec`] of a copy (tests).
    #[cfg(test)]
    pub fn from_bytes(b: &[u8]) -> Value {
        Value::from_vec(b.to_vec())
    }

    /// A raw-encoded string (the result of APPEND/SETRANGE), never int or embstr.
    pub fn raw(b: Vec<u8>) -> Value {
        Value::Str {
            bytes: Box::new(b),
            raw: true,
        }
    }

    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Int(n) => ValueRef::Int(*n),
            Value::Str { bytes, .. } => ValueRef::Str(bytes),
            Value::List(v) => ValueRef::List(v),
            Value::Hash(v) => ValueRef::Hash(v),
            Value::Set(v) => ValueRef::Set(v),
            Value::ZSet(v) => ValueRef::ZSet(v),
            Value::Stream(v) => ValueRef::Stream(v),
        }
    }

    pub fn obj_type(&self) -> ObjType {
        self.as_ref().obj_type()
    }

    pub fn encoding(&self) -> Encoding {
        match self {
            Value::Int(_) => Encoding::Int,
            Value::Str { raw: true, .. } => Encoding::Raw,
            Value::Str { .. } => Encoding::EmbStr,
            Value::List(v) => v.encoding(),
            Value::Hash(v) => v.encoding(),
            Value::Set(v) => v.encoding(),
            Value::ZSet(v) => v.encoding(),
            Value::Stream(v) => v.encoding(),
        }
    }
}

impl<'a> ValueRef<'a> {
    pub fn obj_type(&self) -> ObjType {
        match self {
            ValueRef::Int(_) | ValueRef::Str(_) => ObjType::String,
            ValueRef::List(_) => ObjType::List,
            ValueRef::Hash(_) => ObjType::Hash,
            ValueRef::Set(_) => ObjType::Set,
            ValueRef::ZSet(_) => ObjType::ZSet,
            ValueRef::Stream(_) => ObjType::Stream,
        }
    }

    /// The string bytes of a string value (formatting int-encoded ones).
    // By reference on purpose: a by-value `to_owned` would lose to `ToOwned::to_owned` on
    // `&ValueRef` receivers.
    #[allow(clippy::wrong_self_convention)]
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        match self {
            ValueRef::Int(n) => Some(n.to_string().into_bytes()),
            ValueRef::Str(b) => Some(b.to_vec()),
            _ => None,
        }
    }

    /// Length in bytes of a string value.
    pub fn str_len(&self) -> Option<usize> {
        match self {
            ValueRef::Int(n) => {
                let mut t = crate::reply::itoa_buf();
                Some(crate::reply::fmt_i64(&mut t, *n).len())
            }
            ValueRef::Str(b) => Some(b.len()),
            _ => None,
        }
    }

    #[allow(clippy::wrong_self_convention)]
    pub fn to_owned(&self) -> Value {
        match self {
            ValueRef::Int(n) => Value::Int(*n),
            ValueRef::Str(b) => Value::Str {
                bytes: Box::new(b.to_vec()),
                raw: false,
            },
            ValueRef::List(v) => Value::List((*v).clone()),
            ValueRef::Hash(v) => Value::Hash((*v).clone()),
            ValueRef::Set(v) => Value::Set((*v).clone()),
            ValueRef::ZSet(v) => Value::ZSet((*v).clone()),
            ValueRef::Stream(v) => Value::Stream((*v).clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    /// A value is kept whole in its key's entry: every byte of it is paid by every key
    /// that is not an inline string, so each collection is one pointer (`types::thin`).
    #[test]
    fn value_stays_small() {
        assert_eq!(std::mem::size_of::<super::Value>(), 16);
    }
}
