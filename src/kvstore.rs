//! The keyspace table of one database: keys, their values and their expiry times.
//!
//! This is the low-level store, as Valkey's `kvstore`/`dict`: it knows nothing of
//! clients, WATCH, notifications or lazy expiry (that is `db.rs`). Its contract:
//!
//! - `get`/`get_mut` never allocate (except `get_mut` the first time it is called on an
//!   inline value, which moves the value into a box); the value of a key is reached in one
//!   hash lookup.
//! - `scan(cursor)` keeps Valkey's guarantee: an element present in the table for the whole
//!   iteration is returned at least once, even when the table resizes in between calls.
//! - Resizing never stalls the loop: the table grows (and shrinks when less than 1/8 full)
//!   by incremental rehashing, a bounded number of buckets per operation and per cron tick.
//!
//! # Layout
//!
//! The table is a chained hash table as upstream's `dict.c`: two power-of-two arrays of
//! bucket heads (`ht[0]`, and `ht[1]` only while rehashing), where a bucket head is a
//! pointer to the first entry of its chain, or null.
//!
//! Every key is **one heap allocation** (an *entry*, aligned to 8) holding the chain link,
//! the metadata, the key bytes and, for `int` and `embstr` strings, the value itself:
//!
//! ```text
//! offset  size      field
//! 0       8         next: pointer to the next entry of the bucket chain, or null
//! 8       4         meta: bits 0..24 LRU clock / LFU data, bits 24..32 flags:
//!                     bit 24 EXPIRE    the expire block below is present
//!                     bit 25 KEY_LONG  the key length is 8 bytes (else 1 byte)
//!                     bits 26..28      value kind: 0 int, 1 inline string, 2 boxed
//!                     bit 28 RAW       an inline string reports `raw` (else `embstr`)
//!                     bit 29 VLEN_LONG an inline string's length is 4 bytes (else 1)
//! 12      0 or 16   expire block, only with EXPIRE: expire time (i64 unix ms), then the
//!                   position of this entry in the TTL index (u64)
//! ..      1 or 8    key length (u8, or u64 with KEY_LONG: keys longer than 255 bytes)
//! ..      klen      key bytes
//! ..      value:    int:    8 bytes (i64)
//!                   inline string: 1 byte length (u8), or 4 (u32) with VLEN_LONG,
//!                           + the bytes: every string up to [`INLINE_STR_MAX`] bytes
//!                           that was stored whole (SET, RESTORE, ...), embstr or raw
//!                   boxed:  8 bytes, a `*mut Value` from `Box::into_raw` (strings
//!                           modified in place or longer than INLINE_STR_MAX, and
//!                           every other kind of value)
//! ```
//!
//! Fields after `meta` are unaligned and read with `read_unaligned`. The entry size is a
//! function of its contents, so it is never stored: [`Entry::size`] recomputes it for the
//! deallocation layout. Adding or removing a TTL, overwriting a value or boxing an inline
//! value reallocates the entry; the link that pointed to it (a bucket head or the `next`
//! field of the previous entry of its chain) and its TTL index slot are then updated.
//!
//! Keeping strings inline matches upstream 9's embedding of key and value in one block
//! (a 100-byte value is one 144-byte chunk, as upstream's; boxed it was three blocks,
//! 40% more), and a GET reaches the bytes without two more cache misses.
//!
//! For "key:N" keys (up to 10 bytes) with a 10 byte embstr value an entry is
//! 8 + 4 + 1 + 10 + 1 + 10 = 34 bytes, which glibc serves from a 48 byte chunk (40 usable
//! bytes); with the 8 bytes per key of a table at load factor ~1 that is about 48 bytes per
//! key (see the `memory_per_key` test).
//!
//! The **TTL index** is a vector of pointers to the entries that have an expire; each such
//! entry stores its position in it, so that removal is O(1) (swap-remove). It plays the
//! role of upstream's `expires` dict for the active expire cycle: [`KvStore::sample_expires`]
//! walks it from a rotating cursor in O(count).
//!
//! Keys are hashed with a seeded multiply-fold hash (in the spirit of wyhash), with a seed
//! taken from the OS random source at startup, so clients cannot precompute colliding keys.

use std::alloc::{self, Layout};
use std::ptr;

use crate::evict::Touch;
use crate::object::{Encoding, Value, ValueRef};

/// Strings up to this length that are stored whole live inline in the key's entry.
pub const INLINE_STR_MAX: usize = 4096;

// ---------------------------------------------------------------------------------------
// Hashing

const K0: u64 = 0x2d35_8dcc_aa6c_78a5;
const K1: u64 = 0x8bb8_4b93_962e_acc9;
const K2: u64 = 0x4b33_a62e_d433_d4a3;

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline]
fn rd8(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

#[inline]
fn rd4(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a) as u64
}

/// A seeded 64-bit hash of `key` (multiply-fold rounds over 16-byte blocks, wyhash-like).
#[inline]
pub fn hash_bytes(seed: u64, key: &[u8]) -> u64 {
    let len = key.len();
    let mut h = seed ^ K0;
    let (a, b) = if len <= 16 {
        if len >= 4 {
            // Two overlapping reads of 4 bytes from each end cover 4..=16 bytes.
            let q = (len >> 3) << 2;
            (
                (rd4(key, 0) << 32) | rd4(key, q),
                (rd4(key, len - 4) << 32) | rd4(key, len - 4 - q),
            )
        } else if len > 0 {
            (
                ((key[0] as u64) << 16) | ((key[len >> 1] as u64) << 8) | key[len - 1] as u64,
                0,
            )
        } else {
            (0, 0)
        }
    } else {
        let mut i = 0;
        while len - i > 16 {
            h = fold_mul(rd8(key, i) ^ K1, rd8(key, i + 8) ^ h);
            i += 16;
        }
        (rd8(key, len - 16), rd8(key, len - 8))
    };
    fold_mul(K2 ^ len as u64, fold_mul(a ^ K1, b ^ h))
}

/// The process-wide hash seed, from the OS random source (falling back to the PRNG).
pub(crate) fn global_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        let mut b = [0u8; 8];
        match crate::util::os_random(&mut b) {
            Ok(()) => u64::from_le_bytes(b) ^ crate::util::random_u64(),
            Err(_) => crate::util::random_u64(),
        }
    })
}

// ---------------------------------------------------------------------------------------
// Entries

const OFF_META: usize = 8;
/// Bytes of a value kept whole in an entry.
const VALUE_SIZE: usize = std::mem::size_of::<Value>();

#[inline]
fn align8(o: usize) -> usize {
    (o + 7) & !7
}
const OFF_BODY: usize = 12;
const EXPIRE_BLOCK: usize = 16;

const LRU_MASK: u32 = 0x00ff_ffff;
const F_EXPIRE: u32 = 1 << 24;
const F_KEY_LONG: u32 = 1 << 25;
const KIND_SHIFT: u32 = 26;
const KIND_MASK: u32 = 3 << KIND_SHIFT;
const KIND_INT: u32 = 0;
const KIND_EMB: u32 = 1;
const KIND_BOX: u32 = 2;
const F_RAW: u32 = 1 << 28;
const F_VLEN_LONG: u32 = 1 << 29;
/// The bits of `meta` that describe the value field (they move with it).
const VALUE_BITS: u32 = KIND_MASK | F_RAW | F_VLEN_LONG;

/// A value given to `insert_with`: a `Value`, or a string as its bytes (settled and
/// int-encoded there, as `Value::from_vec`).
enum NewVal {
    Value(Value),
    Bytes(Vec<u8>),
}

/// A value as it will be stored in an entry.
enum Stored<'a> {
    Int(i64),
    /// An inline string (at most [`INLINE_STR_MAX`] bytes) and whether it reports `raw`.
    Emb(&'a [u8], bool),
    /// A value kept whole in the entry (16 bytes at an 8-aligned offset).
    Boxed(Value),
    /// The value field of another entry, copied byte for byte (ownership of a boxed value
    /// moves with it), with its `VALUE_BITS` of meta.
    Moved {
        bits: u32,
        field: &'a [u8],
    },
}

impl Stored<'_> {
    /// The `VALUE_BITS` of meta for this value.
    fn bits(&self) -> u32 {
        match self {
            Stored::Int(_) => KIND_INT << KIND_SHIFT,
            Stored::Emb(b, raw) => {
                let mut m = KIND_EMB << KIND_SHIFT;
                if *raw {
                    m |= F_RAW;
                }
                if b.len() > u8::MAX as usize {
                    m |= F_VLEN_LONG;
                }
                m
            }
            Stored::Boxed(_) => KIND_BOX << KIND_SHIFT,
            Stored::Moved { bits, .. } => *bits,
        }
    }

    fn size(&self) -> usize {
        match self {
            Stored::Int(_) => 8,
            Stored::Emb(b, _) if b.len() > u8::MAX as usize => 4 + b.len(),
            Stored::Emb(b, _) => 1 + b.len(),
            Stored::Boxed(_) => VALUE_SIZE,
            Stored::Moved { field, .. } => field.len(),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Live entries plus live boxed values of this thread, to check for leaks in tests.
    static LIVE: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn live_add(_d: isize) {
    #[cfg(test)]
    LIVE.with(|c| c.set(c.get() + _d));
}

/// A pointer to a live entry allocation (see the module's `# Layout`).
///
/// Invariant: an `Entry` is only used while its allocation is live, i.e. while it is linked
/// in the table (or being built/freed by the function holding it). All accessors rely on
/// it; the table never hands entries out of this module.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Entry(*mut u8);

impl Entry {
    /// Allocates an entry for `key` holding `val`, with the given metadata and optional
    /// (expire, ttl index position). `next` is null.
    fn alloc(key: &[u8], val: Stored<'_>, lru: u32, expire: Option<(i64, usize)>) -> Entry {
        let long = key.len() > u8::MAX as usize;
        let mut meta = (lru & LRU_MASK) | (val.bits() & VALUE_BITS);
        if long {
            meta |= F_KEY_LONG;
        }
        if expire.is_some() {
            meta |= F_EXPIRE;
        }
        let key_end = OFF_BODY
            + if expire.is_some() { EXPIRE_BLOCK } else { 0 }
            + if long { 8 } else { 1 }
            + key.len();
        let val_off = if (val.bits() & KIND_MASK) >> KIND_SHIFT == KIND_BOX {
            align8(key_end)
        } else {
            key_end
        };
        let size = val_off + val.size();
        let layout = Layout::from_size_align(size, 8).expect("entry layout");
        // SAFETY: size is non-zero (>= OFF_BODY).
        let p = unsafe { alloc::alloc(layout) };
        if p.is_null() {
            alloc::handle_alloc_error(layout);
        }
        live_add(1);
        // SAFETY: every write below stays inside the `size` bytes just allocated, in the
        // order of the layout used to compute `size`; `p` is 8-aligned so the `next` field
        // at offset 0 is aligned, every other field is written unaligned.
        unsafe {
            ptr::write(p as *mut *mut u8, ptr::null_mut());
            ptr::write_unaligned(p.add(OFF_META) as *mut u32, meta);
            let mut o = OFF_BODY;
            if let Some((when, pos)) = expire {
                ptr::write_unaligned(p.add(o) as *mut i64, when);
                ptr::write_unaligned(p.add(o + 8) as *mut u64, pos as u64);
                o += EXPIRE_BLOCK;
            }
            if long {
                ptr::write_unaligned(p.add(o) as *mut u64, key.len() as u64);
                o += 8;
            } else {
                *p.add(o) = key.len() as u8;
                o += 1;
            }
            ptr::copy_nonoverlapping(key.as_ptr(), p.add(o), key.len());
            o += key.len();
            debug_assert_eq!(o, key_end);
            o = val_off;
            match val {
                Stored::Int(n) => ptr::write_unaligned(p.add(o) as *mut i64, n),
                Stored::Emb(b, _) => {
                    debug_assert!(b.len() <= INLINE_STR_MAX);
                    let h = if b.len() > u8::MAX as usize {
                        ptr::write_unaligned(p.add(o) as *mut u32, b.len() as u32);
                        4
                    } else {
                        *p.add(o) = b.len() as u8;
                        1
                    };
                    ptr::copy_nonoverlapping(b.as_ptr(), p.add(o + h), b.len());
                }
                Stored::Boxed(v) => ptr::write(p.add(o) as *mut Value, v),
                Stored::Moved { field, .. } => {
                    ptr::copy_nonoverlapping(field.as_ptr(), p.add(o), field.len())
                }
            }
        }
        Entry(p)
    }

    #[inline]
    fn next(self) -> *mut u8 {
        // SAFETY: live entry (type invariant); offset 0 is an aligned pointer field.
        unsafe { ptr::read(self.0 as *const *mut u8) }
    }

    #[inline]
    fn set_next(self, n: *mut u8) {
        // SAFETY: as `next`.
        unsafe { ptr::write(self.0 as *mut *mut u8, n) }
    }

    /// The address of the `next` field, to be used as a chain link.
    #[inline]
    fn next_link(self) -> *mut *mut u8 {
        self.0 as *mut *mut u8
    }

    #[inline]
    fn meta(self) -> u32 {
        // SAFETY: live entry; meta is at a fixed offset inside every entry.
        unsafe { ptr::read_unaligned(self.0.add(OFF_META) as *const u32) }
    }

    #[inline]
    fn set_meta(self, m: u32) {
        // SAFETY: as `meta`.
        unsafe { ptr::write_unaligned(self.0.add(OFF_META) as *mut u32, m) }
    }

    /// Updates the LRU/LFU field for an access.
    #[inline]
    fn touch(self, t: Touch) {
        let m = self.meta();
        self.set_meta((m & !LRU_MASK) | (t.access(m & LRU_MASK) & LRU_MASK));
    }

    #[inline]
    fn kind(self) -> u32 {
        (self.meta() & KIND_MASK) >> KIND_SHIFT
    }

    #[inline]
    fn has_expire(self) -> bool {
        self.meta() & F_EXPIRE != 0
    }

    #[inline]
    fn expire(self) -> Option<i64> {
        if self.has_expire() {
            // SAFETY: with F_EXPIRE the expire block is present at OFF_BODY.
            Some(unsafe { ptr::read_unaligned(self.0.add(OFF_BODY) as *const i64) })
        } else {
            None
        }
    }

    /// Overwrites the expire time; the entry must have an expire block.
    #[inline]
    fn set_expire_time(self, when: i64) {
        debug_assert!(self.has_expire());
        // SAFETY: callers only call this on entries with the expire block.
        unsafe { ptr::write_unaligned(self.0.add(OFF_BODY) as *mut i64, when) }
    }

    #[inline]
    fn ttl_pos(self) -> usize {
        debug_assert!(self.has_expire());
        // SAFETY: callers only call this on entries with the expire block.
        unsafe { ptr::read_unaligned(self.0.add(OFF_BODY + 8) as *const u64) as usize }
    }

    #[inline]
    fn set_ttl_pos(self, pos: usize) {
        debug_assert!(self.has_expire());
        // SAFETY: callers only call this on entries with the expire block.
        unsafe { ptr::write_unaligned(self.0.add(OFF_BODY + 8) as *mut u64, pos as u64) }
    }

    /// (offset of the key bytes, key length).
    #[inline]
    fn key_pos(self) -> (usize, usize) {
        let meta = self.meta();
        let o = OFF_BODY
            + if meta & F_EXPIRE != 0 {
                EXPIRE_BLOCK
            } else {
                0
            };
        // SAFETY: the key length field follows the (optional) expire block.
        unsafe {
            if meta & F_KEY_LONG != 0 {
                (
                    o + 8,
                    ptr::read_unaligned(self.0.add(o) as *const u64) as usize,
                )
            } else {
                (o + 1, *self.0.add(o) as usize)
            }
        }
    }

    /// The key bytes. The caller picks a lifetime no longer than the entry lives.
    #[inline]
    unsafe fn key<'a>(self) -> &'a [u8] {
        let (o, n) = self.key_pos();
        // SAFETY: the key bytes are inside the allocation; the caller bounds the lifetime.
        unsafe { std::slice::from_raw_parts(self.0.add(o), n) }
    }

    #[inline]
    fn value_off(self) -> usize {
        let (o, n) = self.key_pos();
        if self.kind() == KIND_BOX {
            align8(o + n)
        } else {
            o + n
        }
    }

    /// Total allocated size, recomputed from the contents (the layout of `alloc`).
    fn size(self) -> usize {
        let o = self.value_off();
        o + match self.kind() {
            KIND_EMB => {
                let (h, n) = self.inline_str_pos(o);
                h + n
            }
            KIND_BOX => VALUE_SIZE,
            _ => 8,
        }
    }

    /// (header length, string length) of the inline string whose field starts at `o`.
    #[inline]
    fn inline_str_pos(self, o: usize) -> (usize, usize) {
        // SAFETY: an inline string's length (u8, or u32 with VLEN_LONG) starts its field.
        unsafe {
            if self.meta() & F_VLEN_LONG != 0 {
                (4, ptr::read_unaligned(self.0.add(o) as *const u32) as usize)
            } else {
                (1, *self.0.add(o) as usize)
            }
        }
    }

    /// A copy of the value with its encoding (an inline string keeps its raw flag).
    fn owned_value(self) -> Value {
        if self.kind() == KIND_BOX {
            // SAFETY: the box is live as long as the entry, and only read here.
            return unsafe { (*self.boxed_ptr()).clone() };
        }
        // SAFETY: the entry is live; the copy is made before anything can change it.
        match unsafe { self.value_ref() } {
            ValueRef::Str(b) => Value::Str {
                bytes: Box::new(b.to_vec()),
                raw: self.meta() & F_RAW != 0,
            },
            v => v.to_owned(),
        }
    }

    /// The value kept whole in the entry (kind KIND_BOX), at an aligned offset.
    #[inline]
    fn boxed_ptr(self) -> *mut Value {
        debug_assert_eq!(self.kind(), KIND_BOX);
        // SAFETY: such entries hold a Value at the (8-aligned) value offset.
        unsafe { self.0.add(self.value_off()) as *mut Value }
    }

    /// The value. The caller picks a lifetime no longer than the entry lives (and during
    /// which the boxed value is not mutated).
    #[inline]
    unsafe fn value_ref<'a>(self) -> ValueRef<'a> {
        let o = self.value_off();
        // SAFETY: the value field at `o` is of the entry's kind; the caller bounds 'a.
        unsafe {
            match self.kind() {
                KIND_INT => ValueRef::Int(ptr::read_unaligned(self.0.add(o) as *const i64)),
                KIND_EMB => {
                    let (h, n) = self.inline_str_pos(o);
                    ValueRef::Str(std::slice::from_raw_parts(self.0.add(o + h), n))
                }
                _ => (*self.boxed_ptr()).as_ref(),
            }
        }
    }

    fn encoding(self) -> Encoding {
        match self.kind() {
            KIND_INT => Encoding::Int,
            KIND_EMB if self.meta() & F_RAW != 0 => Encoding::Raw,
            KIND_EMB => Encoding::EmbStr,
            // SAFETY: the box is live as long as the entry.
            _ => unsafe { (*self.boxed_ptr()).encoding() },
        }
    }

    /// Frees the entry, dropping its boxed value if any.
    fn free(self) {
        if self.kind() == KIND_BOX {
            // SAFETY: the value is owned by this entry only and dropped once.
            unsafe { ptr::drop_in_place(self.boxed_ptr()) };
        }
        self.dealloc();
    }

    /// Frees the entry, returning its value.
    fn into_value(self) -> Value {
        // SAFETY: the entry is live until dealloc below; the value is copied out first.
        let v = match self.kind() {
            // SAFETY: the value is moved out once; the block is released without
            // dropping it.
            KIND_BOX => unsafe { ptr::read(self.boxed_ptr()) },
            _ => self.owned_value(),
        };
        self.dealloc();
        v
    }

    /// Releases the allocation only (a boxed value must have been moved out or dropped).
    fn dealloc(self) {
        let layout = Layout::from_size_align(self.size(), 8).expect("entry layout");
        live_add(-1);
        // SAFETY: allocated by `Entry::alloc` with this exact layout (size recomputed
        // from the same contents).
        unsafe { alloc::dealloc(self.0, layout) }
    }

    /// Builds a copy of this entry with the value `val` (or, when None, this entry's value
    /// field moved byte for byte: the old entry must then be released with `dealloc`, not
    /// `free`), the LRU `lru` and the expire block `expire`. `next` is copied.
    fn rebuild(self, val: Option<Stored<'_>>, lru: u32, expire: Option<(i64, usize)>) -> Entry {
        // SAFETY: the key and value field are read from the live old entry, and copied
        // into the new one before the caller releases the old one.
        let key = unsafe { self.key() };
        let e = match val {
            Some(v) => Entry::alloc(key, v, lru, expire),
            None => {
                let o = self.value_off();
                let field = unsafe { std::slice::from_raw_parts(self.0.add(o), self.size() - o) };
                Entry::alloc(
                    key,
                    Stored::Moved {
                        bits: self.meta() & VALUE_BITS,
                        field,
                    },
                    lru,
                    expire,
                )
            }
        };
        e.set_next(self.next());
        e
    }
}

// ---------------------------------------------------------------------------------------
// Tables

/// One bucket array: `b.len()` is 0 or a power of two.
struct Table {
    b: Box<[*mut u8]>,
    used: usize,
}

impl Table {
    fn empty() -> Table {
        Table {
            b: Box::new([]),
            used: 0,
        }
    }

    fn with_size(n: usize) -> Table {
        Table {
            b: vec![ptr::null_mut(); n].into_boxed_slice(),
            used: 0,
        }
    }

    #[inline]
    fn size(&self) -> usize {
        self.b.len()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.b.len().wrapping_sub(1)
    }
}

const INITIAL_SIZE: usize = 4;
/// Shrink when `used * MIN_FILL <= size` (less than 1/8 full), as `HASHTABLE_MIN_FILL`.
const MIN_FILL: usize = 8;
/// Grow past this load even when resizing is not allowed, as `dict_force_resize_ratio`.
const FORCE_RESIZE_RATIO: usize = 4;

/// The outcome of [`KvStore::lookup`].
pub enum Lookup<'a> {
    Missing,
    Expired,
    Found(ValueRef<'a>),
}

/// The result of [`KvStore::lookup_mut`].
pub enum LookupMut<'a> {
    Missing,
    Expired,
    Found(&'a mut Value),
}

/// One database's key table.
pub struct KvStore {
    ht: [Table; 2],
    /// The next bucket of `ht[0]` to move to `ht[1]`, while rehashing.
    rehash_idx: Option<usize>,
    seed: u64,
    /// Entries that have an expire; each stores its position here.
    ttl: Vec<*mut u8>,
    /// Where the next `sample_expires` starts in `ttl`.
    ttl_cursor: usize,
    /// False while a child process shares our pages (avoid copy-on-write), as
    /// `dict_can_resize`; the table still grows past `FORCE_RESIZE_RATIO`.
    resize_allowed: bool,
    /// Cluster mode: the keys of each hash slot (upstream keeps one dict per slot).
    slots: Option<Box<SlotKeys>>,
}

/// Set once at startup in cluster mode: every [`KvStore`] made afterwards keeps a
/// [`SlotKeys`] index.
static SLOT_INDEX: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every [`KvStore`] created from now on keep a per-slot key index (cluster mode).
pub fn enable_slot_index() {
    SLOT_INDEX.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The keys of each of the 16384 hash slots, for CLUSTER COUNTKEYSINSLOT and
/// GETKEYSINSLOT in O(keys in the slot). The names are a second copy of the keys: the
/// cost of cluster mode until the table itself is split per slot.
pub struct SlotKeys {
    keys: Vec<std::collections::HashSet<Box<[u8]>>>,
}

impl SlotKeys {
    fn new() -> Box<SlotKeys> {
        let n = crate::cluster::slot::CLUSTER_SLOTS;
        Box::new(SlotKeys {
            keys: (0..n).map(|_| Default::default()).collect(),
        })
    }

    fn add(&mut self, key: &[u8]) {
        let s = crate::cluster::slot::key_hash_slot(key) as usize;
        self.keys[s].insert(key.into());
    }

    fn remove(&mut self, key: &[u8]) {
        let s = crate::cluster::slot::key_hash_slot(key) as usize;
        self.keys[s].remove(key);
    }
}

// SAFETY: a KvStore exclusively owns every entry and boxed value it points to (like a
// Box), so moving it to another thread moves that ownership; the values it owns are Send
// (checked below).
unsafe impl Send for KvStore {}

const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Value>();
};

impl Default for KvStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KvStore {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The visitor of [`KvStore::for_each`]: key, value, expire time.
pub type ForEachFn<'f> = dyn FnMut(&[u8], ValueRef<'_>, Option<i64>) + 'f;

/// At most this many keys per [`KvStore::sample_keys`] call (`maxmemory-samples` is at
/// most 64).
const SAMPLE_MAX: usize = 64;

/// The visitor of [`KvStore::sample_keys`]: key, LRU/LFU data, expire time.
pub type SampleFn<'f> = dyn FnMut(&[u8], u32, Option<i64>) + 'f;

/// The visitor of [`KvStore::for_each_meta`]: key, value, expire time, LRU/LFU data.
pub type ForEachMetaFn<'f> = dyn FnMut(&[u8], ValueRef<'_>, Option<i64>, u32) + 'f;

/// Asks the CPU to bring `p`'s cache line in (a hint: no effect on null or elsewhere).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A place holding a pointer to an entry: a bucket head or a previous entry's `next`.
type Link = *mut *mut u8;

impl KvStore {
    pub fn new() -> Self {
        KvStore {
            ht: [Table::empty(), Table::empty()],
            rehash_idx: None,
            seed: global_seed() ^ crate::util::random_u64(),
            ttl: Vec::new(),
            ttl_cursor: 0,
            resize_allowed: true,
            slots: SLOT_INDEX
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(SlotKeys::new),
        }
    }

    /// The number of keys in hash `slot` (cluster mode; 0 without the slot index).
    pub fn count_keys_in_slot(&self, slot: u16) -> usize {
        self.slots
            .as_ref()
            .and_then(|s| s.keys.get(slot as usize))
            .map_or(0, |k| k.len())
    }

    /// Calls `f` for at most `max` keys of hash `slot` (cluster mode).
    pub fn keys_in_slot(&self, slot: u16, max: usize, f: &mut dyn FnMut(&[u8])) {
        if let Some(k) = self.slots.as_ref().and_then(|s| s.keys.get(slot as usize)) {
            k.iter().take(max).for_each(|key| f(key));
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.ht[0].used + self.ht[1].used
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.ttl.len()
    }

    /// Whether an incremental rehash is in progress.
    pub fn is_rehashing(&self) -> bool {
        self.rehash_idx.is_some()
    }

    /// Number of buckets of the main table (and of the rehash target).
    pub fn buckets(&self) -> (usize, usize) {
        (self.ht[0].size(), self.ht[1].size())
    }

    /// Allows or forbids resizing (forbidden while a fork child is alive, as
    /// `dictSetResizeEnabled`); the table still grows when more than 4 times over full.
    pub fn set_resize_allowed(&mut self, allowed: bool) {
        self.resize_allowed = allowed;
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        hash_bytes(self.seed, key)
    }

    /// The entry of `key`, read-only.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<Entry> {
        if self.is_empty() {
            return None;
        }
        let h = self.hash(key) as usize;
        for t in 0..2 {
            let tab = &self.ht[t];
            if tab.size() == 0 {
                break;
            }
            let idx = h & tab.mask();
            // Buckets of ht[0] below rehash_idx are already empty.
            if t == 0 && matches!(self.rehash_idx, Some(r) if idx < r) {
                continue;
            }
            let mut p = tab.b[idx];
            while !p.is_null() {
                let e = Entry(p);
                // SAFETY: linked entries are live; the key is only compared here.
                if unsafe { e.key() } == key {
                    return Some(e);
                }
                p = e.next();
            }
            if self.rehash_idx.is_none() {
                break;
            }
        }
        None
    }

    /// The link pointing at the entry of `key`, and the table holding it.
    fn find_link(&mut self, key: &[u8]) -> Option<(Link, usize)> {
        if self.is_empty() {
            return None;
        }
        let h = self.hash(key) as usize;
        let rehash = self.rehash_idx;
        for t in 0..2 {
            let tab = &mut self.ht[t];
            if tab.size() == 0 {
                break;
            }
            let idx = h & tab.mask();
            if !(t == 0 && matches!(rehash, Some(r) if idx < r)) {
                let mut link: Link = &mut tab.b[idx];
                // SAFETY: `link` is either a bucket slot of this table (borrowed mutably
                // through `self`) or the `next` field of a live entry of its chain.
                unsafe {
                    while !(*link).is_null() {
                        let e = Entry(*link);
                        if e.key() == key {
                            return Some((link, t));
                        }
                        link = e.next_link();
                    }
                }
            }
            if rehash.is_none() {
                break;
            }
        }
        None
    }

    /// Replaces the entry at `link` with `new` (which already has the right `next`) and
    /// points its TTL index slot at it.
    fn relink(&mut self, link: Link, new: Entry) {
        // SAFETY: `link` came from `find_link` on this table, with no structural change
        // since (entries are only replaced, never moved between links).
        unsafe { *link = new.0 };
        if new.has_expire() {
            self.ttl[new.ttl_pos()] = new.0;
        }
    }

    /// Removes position `pos` from the TTL index, fixing the position of the entry moved
    /// into its place.
    fn ttl_remove(&mut self, pos: usize) {
        self.ttl.swap_remove(pos);
        if let Some(&p) = self.ttl.get(pos) {
            Entry(p).set_ttl_pos(pos);
        }
        let cap = self.ttl.capacity();
        if cap > 64 && self.ttl.len() < cap / 4 {
            self.ttl.shrink_to(cap / 2);
        }
    }

    /// The value of `key`, whatever its expiry.
    pub fn get(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        // SAFETY: the entry lives at least as long as the shared borrow of self.
        self.find(key).map(|e| unsafe { e.value_ref() })
    }

    /// A copy of the value of `key` with its encoding (COPY), without moving an inline
    /// value into a box as [`KvStore::get_mut`] would.
    pub fn get_owned(&self, key: &[u8]) -> Option<Value> {
        Some(self.find(key)?.owned_value())
    }

    /// Mutable access to the stored value (collections, raw strings). An `int` or string
    /// value kept inline in the entry is first moved into a box (the value and its
    /// reported encoding are unchanged; it just costs the box from then on).
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.rehash_if_rehashing(1);
        let (link, _) = self.find_link(key)?;
        // SAFETY: link points at a live entry.
        let e = Entry(unsafe { *link });
        let b = if e.kind() == KIND_BOX {
            e.boxed_ptr()
        } else {
            // The value is copied out before the old entry is released.
            let v = e.owned_value();
            let exp = e.expire().map(|w| (w, e.ttl_pos()));
            let new = e.rebuild(Some(Stored::Boxed(v)), e.meta() & LRU_MASK, exp);
            self.relink(link, new);
            e.free();
            new.boxed_ptr()
        };
        // SAFETY: the box is owned by the entry, which lives as long as the table; the
        // returned borrow holds `self` mutably so nothing else can touch it meanwhile.
        Some(unsafe { &mut *b })
    }

    /// The string of `key` as a raw-encoded, mutable buffer (APPEND, SETRANGE): converts an
    /// int/embstr value in place. None if the key does not exist or is not a string.
    pub fn get_str_raw_mut(&mut self, key: &[u8]) -> Option<&mut Vec<u8>> {
        let v = self.get_mut(key)?;
        if let Value::Int(n) = *v {
            *v = Value::raw(n.to_string().into_bytes());
        }
        match v {
            Value::Str { bytes, raw } => {
                *raw = true;
                Some(bytes)
            }
            _ => None,
        }
    }

    /// The encoding of the value of `key`.
    pub fn encoding(&self, key: &[u8]) -> Option<Encoding> {
        self.find(key).map(|e| e.encoding())
    }

    /// The absolute expiry time of `key` in unix ms, if it has one.
    pub fn get_expire(&self, key: &[u8]) -> Option<i64> {
        self.find(key).and_then(|e| e.expire())
    }

    /// Sets the expiry of an existing key; returns false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], when_ms: i64) -> bool {
        let when = when_ms.max(0);
        let Some((link, _)) = self.find_link(key) else {
            return false;
        };
        // SAFETY: link points at a live entry.
        let e = Entry(unsafe { *link });
        if e.has_expire() {
            e.set_expire_time(when);
            return true;
        }
        let pos = self.ttl.len();
        self.ttl.push(ptr::null_mut());
        let new = e.rebuild(None, e.meta() & LRU_MASK, Some((when, pos)));
        self.relink(link, new);
        e.dealloc();
        true
    }

    /// Removes the TTL; returns true if the key had one.
    pub fn remove_expire(&mut self, key: &[u8]) -> bool {
        let Some((link, _)) = self.find_link(key) else {
            return false;
        };
        // SAFETY: link points at a live entry.
        let e = Entry(unsafe { *link });
        if !e.has_expire() {
            return false;
        }
        let pos = e.ttl_pos();
        let new = e.rebuild(None, e.meta() & LRU_MASK, None);
        self.relink(link, new);
        e.dealloc();
        self.ttl_remove(pos);
        true
    }

    /// The read path of every command in one hash probe: `Expired` when the key has a TTL
    /// at or before `now_ms` (the caller deletes it), else the value, with the LRU/LFU
    /// field touched when `touch` is given (None: NO-TOUCH).
    #[inline]
    pub fn lookup(&mut self, key: &[u8], now_ms: i64, touch: Option<Touch>) -> Lookup<'_> {
        let Some(e) = self.find(key) else {
            return Lookup::Missing;
        };
        if let Some(when) = e.expire() {
            if when <= now_ms {
                return Lookup::Expired;
            }
        }
        if let Some(t) = touch {
            e.touch(t);
        }
        // SAFETY: the entry lives as long as the borrow of self returned with it.
        Lookup::Found(unsafe { e.value_ref() })
    }

    /// The write path of collection commands in one hash probe: as [`KvStore::lookup`]
    /// but the value is returned mutably (see [`KvStore::get_mut`]; collections are always
    /// boxed, so this never reallocates for them).
    pub fn lookup_mut(&mut self, key: &[u8], now_ms: i64, touch: Option<Touch>) -> LookupMut<'_> {
        if let Some(e) = self.find(key) {
            if let Some(when) = e.expire() {
                if when <= now_ms {
                    return LookupMut::Expired;
                }
            }
            if let Some(t) = touch {
                e.touch(t);
            }
            if e.kind() == KIND_BOX {
                // SAFETY: the box is owned by the live entry; the borrow of self returned
                // with it keeps anything else from touching the table meanwhile.
                return LookupMut::Found(unsafe { &mut *e.boxed_ptr() });
            }
        } else {
            return LookupMut::Missing;
        }
        match self.get_mut(key) {
            Some(v) => LookupMut::Found(v),
            None => LookupMut::Missing,
        }
    }

    /// Overwrites an int-encoded value in place (INCR and friends), keeping its TTL and its
    /// LRU/LFU field (the lookup that found the key touched it). Returns false, changing
    /// nothing, if the key is missing or its value is not stored as an int.
    #[inline]
    pub fn update_int_in_place(&mut self, key: &[u8], n: i64) -> bool {
        let Some(e) = self.find(key) else {
            return false;
        };
        if e.kind() != KIND_INT {
            return false;
        }
        // SAFETY: int entries store an i64 at the value offset; `&mut self` gives
        // exclusive access to the entry.
        unsafe { ptr::write_unaligned(e.0.add(e.value_off()) as *mut i64, n) };
        true
    }

    /// The LRU clock of the key (OBJECT IDLETIME) or its LFU data (24 bits).
    pub fn lru(&self, key: &[u8]) -> Option<u32> {
        self.find(key).map(|e| e.meta() & LRU_MASK)
    }

    /// Sets the 24-bit LRU clock / LFU data of the key (higher bits are ignored).
    pub fn set_lru(&mut self, key: &[u8], lru: u32) {
        if let Some(e) = self.find(key) {
            // `&mut self` gives exclusive access to the entry.
            e.set_meta((e.meta() & !LRU_MASK) | (lru & LRU_MASK));
        }
    }

    /// Inserts or overwrites. With `keep_ttl` an existing TTL survives; otherwise it is
    /// cleared. The LRU/LFU field is set to `lru`. Returns true if the key existed.
    pub fn insert(&mut self, key: &[u8], val: Value, keep_ttl: bool, lru: u32) -> bool {
        self.insert_with(key, NewVal::Value(val), keep_ttl, false, lru, |_| lru)
            .0
    }

    /// [`KvStore::insert`] handing back the value it replaced when that value was stored
    /// out of line (collections, long strings), so the caller can free it lazily
    /// (`lazyfree-lazy-server-del`); inline values are freed with their entry.
    #[allow(dead_code)]
    pub fn insert_take_old(
        &mut self,
        key: &[u8],
        val: Value,
        keep_ttl: bool,
        lru: u32,
    ) -> (bool, Option<Value>) {
        self.insert_with(key, NewVal::Value(val), keep_ttl, false, lru, |_| lru)
    }

    /// [`KvStore::insert_take_old`] for writes by commands: a new key's LRU/LFU field is
    /// [`Touch::init`], an overwritten one's [`Touch::overwrite`] of the old field.
    #[inline]
    pub fn insert_touch(
        &mut self,
        key: &[u8],
        val: Value,
        keep_ttl: bool,
        t: Touch,
    ) -> (bool, Option<Value>) {
        self.insert_with(key, NewVal::Value(val), keep_ttl, false, t.init(), |old| {
            t.overwrite(old)
        })
    }

    /// [`KvStore::insert_touch`] of a string given as its bytes (SET, MSET, GETSET...):
    /// the same int/embstr/raw choice as `Value::from_vec` then
    /// `Value::settle_encoding`, but a string that goes inline into the entry is copied
    /// straight from `bytes` (no `Value` box is built and dropped); only a string kept out
    /// of line is boxed. `ttl_follows` settles the encoding as for a key with a TTL (the
    /// caller sets one right after, as SET EX).
    #[inline]
    pub fn insert_bytes_touch(
        &mut self,
        key: &[u8],
        bytes: Vec<u8>,
        keep_ttl: bool,
        ttl_follows: bool,
        t: Touch,
    ) -> (bool, Option<Value>) {
        self.insert_with(
            key,
            NewVal::Bytes(bytes),
            keep_ttl,
            ttl_follows,
            t.init(),
            |old| t.overwrite(old),
        )
    }

    fn insert_with(
        &mut self,
        key: &[u8],
        val: NewVal,
        keep_ttl: bool,
        ttl_follows: bool,
        lru_new: u32,
        lru_over: impl FnOnce(u32) -> u32,
    ) -> (bool, Option<Value>) {
        self.rehash_if_rehashing(1);
        let found = self.find_link(key);
        // A fresh string reports embstr or raw by whether it fits with its key and TTL.
        // SAFETY (closure): a link from `find_link` points at a live entry.
        let with_ttl = ttl_follows
            || (keep_ttl && found.is_some_and(|(link, _)| Entry(unsafe { *link }).has_expire()));
        // Owners of what `stored` borrows (one of them is set).
        let arg: Vec<u8>;
        let mut owned: Value;
        let stored = match val {
            NewVal::Bytes(b) => match Value::int_of(&b) {
                Some(n) => Stored::Int(n),
                None => {
                    let raw = !crate::object::embstr_fits(key.len(), b.len(), with_ttl);
                    if b.len() <= INLINE_STR_MAX {
                        arg = b;
                        Stored::Emb(&arg, raw)
                    } else {
                        Stored::Boxed(Value::Str {
                            bytes: Box::new(b),
                            raw,
                        })
                    }
                }
            },
            NewVal::Value(v) => {
                owned = v;
                owned.settle_encoding(key.len(), with_ttl);
                match owned {
                    Value::Int(n) => Stored::Int(n),
                    Value::Str { ref bytes, raw } if bytes.len() <= INLINE_STR_MAX => {
                        Stored::Emb(bytes, raw)
                    }
                    other => Stored::Boxed(other),
                }
            }
        };
        if let Some((link, _)) = found {
            // SAFETY: link points at a live entry (nothing changed the table since).
            let old = Entry(unsafe { *link });
            let exp = old.expire().map(|w| (w, old.ttl_pos()));
            let lru = lru_over(old.meta() & LRU_MASK);
            let new = old.rebuild(Some(stored), lru, if keep_ttl { exp } else { None });
            // SAFETY: as in `relink`.
            unsafe { *link = new.0 };
            if let Some((_, pos)) = exp {
                if keep_ttl {
                    self.ttl[pos] = new.0;
                } else {
                    self.ttl_remove(pos);
                }
            }
            if old.kind() == KIND_BOX {
                return (true, Some(old.into_value()));
            }
            old.free();
            return (true, None);
        }
        self.expand_if_needed();
        let e = Entry::alloc(key, stored, lru_new, None);
        let t = if self.rehash_idx.is_some() { 1 } else { 0 };
        let h = self.hash(key) as usize;
        let tab = &mut self.ht[t];
        let idx = h & tab.mask();
        e.set_next(tab.b[idx]);
        tab.b[idx] = e.0;
        tab.used += 1;
        if let Some(sk) = &mut self.slots {
            sk.add(key);
        }
        (false, None)
    }

    /// Removes the key and returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value> {
        self.rehash_if_rehashing(1);
        let (link, t) = self.find_link(key)?;
        // SAFETY: link points at a live entry; pointing the link at its successor unlinks
        // it and keeps the chain intact.
        let e = Entry(unsafe { *link });
        unsafe { *link = e.next() };
        self.ht[t].used -= 1;
        if e.has_expire() {
            self.ttl_remove(e.ttl_pos());
        }
        if let Some(sk) = &mut self.slots {
            sk.remove(key);
        }
        let v = e.into_value();
        self.shrink_if_needed();
        Some(v)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        for t in 0..2 {
            for slot in self.ht[t].b.iter_mut() {
                let mut p = std::mem::replace(slot, ptr::null_mut());
                while !p.is_null() {
                    let e = Entry(p);
                    p = e.next();
                    e.free();
                }
            }
            self.ht[t] = Table::empty();
        }
        self.rehash_idx = None;
        self.ttl = Vec::new();
        self.ttl_cursor = 0;
        if let Some(sk) = &mut self.slots {
            sk.keys.iter_mut().for_each(|k| *k = Default::default());
        }
    }

    fn emit_chain(&self, mut p: *mut u8, f: &mut dyn FnMut(&[u8], ValueRef<'_>)) {
        while !p.is_null() {
            let e = Entry(p);
            // SAFETY: linked entries live while `self` is borrowed.
            unsafe { f(e.key(), e.value_ref()) };
            p = e.next();
        }
    }

    /// Calls `f` for every key of one step of the scan (one bucket of the main table, and
    /// the buckets it expands to in the larger table while rehashing) and returns the next
    /// cursor (0 when the iteration is complete). The cursor is incremented on its
    /// reversed bits, as upstream's `dictScan`, so that elements present during the whole
    /// iteration are returned at least once across table resizes.
    pub fn scan(&self, cursor: u64, f: &mut dyn FnMut(&[u8], ValueRef<'_>)) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let mut v = cursor;
        #[inline]
        fn next_cursor(v: u64, mask: u64) -> u64 {
            // Set the bits above the mask so the increment carries into the reversed
            // bits that address the table.
            (v | !mask).reverse_bits().wrapping_add(1).reverse_bits()
        }
        if self.rehash_idx.is_none() {
            let t = &self.ht[0];
            let m0 = t.mask() as u64;
            self.emit_chain(t.b[(v & m0) as usize], f);
            v = next_cursor(v, m0);
        } else {
            let (s, l) = if self.ht[0].size() <= self.ht[1].size() {
                (&self.ht[0], &self.ht[1])
            } else {
                (&self.ht[1], &self.ht[0])
            };
            let m0 = s.mask() as u64;
            let m1 = l.mask() as u64;
            self.emit_chain(s.b[(v & m0) as usize], f);
            // Then every bucket of the larger table that the smaller one's bucket expands
            // to: the ones whose low bits equal the cursor's.
            loop {
                self.emit_chain(l.b[(v & m1) as usize], f);
                v = next_cursor(v, m1);
                if v & (m0 ^ m1) == 0 {
                    break;
                }
            }
        }
        v
    }

    /// Calls `f` for every key (KEYS, FLUSH accounting, SAVE).
    pub fn for_each(&self, f: &mut ForEachFn<'_>) {
        for t in &self.ht {
            for &head in t.b.iter() {
                let mut p = head;
                while !p.is_null() {
                    let e = Entry(p);
                    // SAFETY: linked entries live while `self` is borrowed.
                    unsafe { f(e.key(), e.value_ref(), e.expire()) };
                    p = e.next();
                }
            }
        }
    }

    /// Calls `f` for every key with its expire time and its 24-bit LRU clock / LFU data
    /// (SAVE writes IDLE / FREQ from it).
    pub fn for_each_meta(&self, f: &mut ForEachMetaFn<'_>) {
        for t in &self.ht {
            let b = &t.b;
            for i in 0..b.len() {
                // Walking the table is a chain of cache misses (bucket, entry, boxed
                // value): prefetch the entries a few buckets ahead, and the boxed
                // values of those nearer, as upstream's iterator prefetches.
                if let Some(&h) = b.get(i + 16) {
                    prefetch(h);
                }
                if let Some(&h) = b.get(i + 8) {
                    if !h.is_null() {
                        let e = Entry(h);
                        if e.kind() == KIND_BOX {
                            prefetch(e.boxed_ptr() as *const u8);
                        }
                    }
                }
                let mut p = b[i];
                while !p.is_null() {
                    let e = Entry(p);
                    // SAFETY: linked entries live while `self` is borrowed.
                    unsafe { f(e.key(), e.value_ref(), e.expire(), e.meta() & LRU_MASK) };
                    p = e.next();
                }
            }
        }
    }

    /// A random non-empty bucket head (in O(1) expected while the table is at least 1/8
    /// full, which shrinking maintains).
    fn random_bucket(&self) -> *mut u8 {
        let s0 = self.ht[0].size();
        let start = self.rehash_idx.unwrap_or(0);
        let span = match self.rehash_idx {
            Some(r) => s0 + self.ht[1].size() - r,
            None => s0,
        };
        let at = |i: usize| -> *mut u8 {
            let i = start + i;
            if i < s0 {
                self.ht[0].b[i]
            } else {
                self.ht[1].b[i - s0]
            }
        };
        for _ in 0..1000 {
            let p = at(crate::util::random_u64() as usize % span);
            if !p.is_null() {
                return p;
            }
        }
        // Very sparse table (e.g. mid shrink): walk from a random place.
        let first = crate::util::random_u64() as usize % span;
        for i in 0..span {
            let p = at((first + i) % span);
            if !p.is_null() {
                return p;
            }
        }
        ptr::null_mut()
    }

    /// A random key, or None when empty: a random non-empty bucket, then a random element of
    /// its chain, as `dictGetRandomKey`.
    pub fn random_key(&self) -> Option<Vec<u8>> {
        let p = self.random_entry();
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is a live entry of the table.
        Some(unsafe { Entry(p).key() }.to_vec())
    }

    /// A random entry (null when empty): a random non-empty bucket, then a random element
    /// of its chain.
    fn random_entry(&self) -> *mut u8 {
        if self.is_empty() {
            return ptr::null_mut();
        }
        let head = self.random_bucket();
        let mut n = 0;
        let mut p = head;
        while !p.is_null() {
            n += 1;
            p = Entry(p).next();
        }
        if n == 0 {
            return ptr::null_mut();
        }
        let mut p = head;
        for _ in 0..crate::util::random_u64() as usize % n {
            p = Entry(p).next();
        }
        p
    }

    /// A random key into `out` (only among keys with a TTL when `volatile`); false when
    /// there is none. For the random eviction policies.
    pub fn random_key_into(&self, volatile: bool, out: &mut Vec<u8>) -> bool {
        let p = if volatile {
            if self.ttl.is_empty() {
                return false;
            }
            self.ttl[crate::util::random_u64() as usize % self.ttl.len()]
        } else {
            let p = self.random_entry();
            if p.is_null() {
                return false;
            }
            p
        };
        out.clear();
        // SAFETY: `p` is a live entry (a chain member or a TTL index slot).
        out.extend_from_slice(unsafe { Entry(p).key() });
        true
    }

    /// Calls `f(key, lru_field, expire)` for up to `count` sampled keys and returns how
    /// many were visited, for the eviction pool (upstream's `dictGetSomeKeys`). With
    /// `volatile` the keys come from random slots of the TTL index; otherwise from
    /// consecutive buckets starting at a random one (both tables while rehashing),
    /// jumping elsewhere after a run of empty buckets, for at most `10 * count` buckets.
    /// A key may be visited twice.
    pub fn sample_keys(&self, count: usize, volatile: bool, f: &mut SampleFn<'_>) -> usize {
        let visit = |f: &mut SampleFn<'_>, e: Entry| {
            // SAFETY: linked entries and TTL index slots are live while `self` is borrowed.
            f(unsafe { e.key() }, e.meta() & LRU_MASK, e.expire())
        };
        // Each sampled entry is a cache miss: the entries are gathered (and prefetched)
        // first, then visited, so that the misses overlap instead of adding up.
        let mut heads = [ptr::null_mut::<u8>(); SAMPLE_MAX];
        let count = count.min(SAMPLE_MAX);
        if volatile {
            let n = self.ttl.len();
            let count = count.min(n);
            for h in heads.iter_mut().take(count) {
                *h = self.ttl[crate::util::random_u64() as usize % n];
                prefetch(*h);
            }
            for &h in &heads[..count] {
                visit(f, Entry(h));
            }
            return count;
        }
        let count = count.min(self.len());
        if count == 0 {
            return 0;
        }
        // Chain heads of consecutive buckets from a random one (each holds at least one
        // entry), until `count` of them.
        let tables = if self.rehash_idx.is_some() { 2 } else { 1 };
        // The larger table's mask (an empty table's mask wraps to usize::MAX).
        let mask = self.ht[0].size().max(self.ht[1].size()) - 1;
        let mut i = crate::util::random_u64() as usize & mask;
        let mut nheads = 0;
        let mut empty_run = 0;
        let mut steps = count * 10;
        while nheads < count && steps > 0 {
            steps -= 1;
            for t in 0..tables {
                let tab = &self.ht[t];
                // Buckets of ht[0] below rehash_idx were moved already.
                if t == 0 && self.rehash_idx.is_some_and(|r| i < r) {
                    continue;
                }
                if i >= tab.size() || nheads == count {
                    continue;
                }
                let p = tab.b[i];
                if p.is_null() {
                    empty_run += 1;
                    if empty_run >= 5 && empty_run > count {
                        i = crate::util::random_u64() as usize & mask;
                        empty_run = 0;
                    }
                    continue;
                }
                empty_run = 0;
                prefetch(p);
                heads[nheads] = p;
                nheads += 1;
            }
            i = (i + 1) & mask;
        }
        // Then the chains, in order, until `count` entries.
        let mut got = 0;
        for &h in &heads[..nheads] {
            let mut p = h;
            while !p.is_null() && got < count {
                let e = Entry(p);
                visit(f, e);
                got += 1;
                p = e.next();
            }
        }
        got
    }

    /// Samples up to `count` keys that have a TTL, for the active expire cycle; returns
    /// (key, expire) pairs. Walks the TTL index from a rotating cursor, so successive calls
    /// cover every key with a TTL; O(count).
    pub fn sample_expires(&mut self, count: usize) -> Vec<(Vec<u8>, i64)> {
        let n = self.ttl.len().min(count);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if self.ttl_cursor >= self.ttl.len() {
                self.ttl_cursor = 0;
            }
            let e = Entry(self.ttl[self.ttl_cursor]);
            self.ttl_cursor += 1;
            // SAFETY: TTL index entries are live entries with an expire block.
            out.push((unsafe { e.key() }.to_vec(), e.expire().unwrap_or(0)));
        }
        out
    }

    // -- resizing -----------------------------------------------------------------------

    /// Starts a resize to the smallest power of two holding `n` elements (at least 4).
    fn resize(&mut self, n: usize) {
        let size = n
            .max(INITIAL_SIZE)
            .checked_next_power_of_two()
            .unwrap_or(1 << 62);
        if self.rehash_idx.is_some() || size == self.ht[0].size() {
            return;
        }
        if self.ht[0].size() == 0 {
            self.ht[0] = Table::with_size(size);
            return;
        }
        self.ht[1] = Table::with_size(size);
        self.rehash_idx = Some(0);
    }

    /// Grows the table to hold `n` keys without rehashing (`dictExpand`, used with the
    /// RESIZEDB hint when loading). Does nothing while rehashing or if already big enough.
    pub fn expand(&mut self, n: usize) {
        if self.rehash_idx.is_none() && n > self.ht[0].size() {
            self.resize(n);
        }
    }

    fn expand_if_needed(&mut self) {
        if self.rehash_idx.is_some() {
            return;
        }
        let (used, size) = (self.ht[0].used, self.ht[0].size());
        if size == 0 {
            self.resize(INITIAL_SIZE);
        } else if (self.resize_allowed && used >= size) || used / size > FORCE_RESIZE_RATIO {
            self.resize(used + 1);
        }
    }

    fn shrink_if_needed(&mut self) {
        if self.rehash_idx.is_some() {
            return;
        }
        let (used, size) = (self.ht[0].used, self.ht[0].size());
        if size > INITIAL_SIZE
            && ((self.resize_allowed && used * MIN_FILL <= size)
                || used * MIN_FILL * FORCE_RESIZE_RATIO <= size)
        {
            self.resize(used);
        }
    }

    #[inline]
    fn rehash_if_rehashing(&mut self, n: usize) {
        if self.rehash_idx.is_some() {
            self.rehash(n);
        }
    }

    /// Moves up to `n` non-empty buckets of ht[0] to ht[1], visiting at most `10 * n` empty
    /// ones; returns true if rehashing is still in progress.
    fn rehash(&mut self, n: usize) -> bool {
        let Some(mut idx) = self.rehash_idx else {
            return false;
        };
        if !self.resize_allowed {
            // Only rehash when the table is far off its ideal size, as `dictRehash`.
            let (s0, s1) = (self.ht[0].size(), self.ht[1].size());
            let (big, small) = (s0.max(s1), s0.min(s1).max(1));
            if big / small < FORCE_RESIZE_RATIO {
                return true;
            }
        }
        let mut empty_visits = n.saturating_mul(10);
        let shrinking = self.ht[1].size() < self.ht[0].size();
        let m1 = self.ht[1].mask();
        let mut n = n;
        while n > 0 && self.ht[0].used > 0 {
            while self.ht[0].b[idx].is_null() {
                idx += 1;
                empty_visits -= 1;
                if empty_visits == 0 {
                    self.rehash_idx = Some(idx);
                    return true;
                }
            }
            let mut p = std::mem::replace(&mut self.ht[0].b[idx], ptr::null_mut());
            while !p.is_null() {
                let e = Entry(p);
                p = e.next();
                let to = if shrinking {
                    // The low bits of the hash are the old bucket index.
                    idx & m1
                } else {
                    // SAFETY: live entry.
                    self.hash(unsafe { e.key() }) as usize & m1
                };
                e.set_next(self.ht[1].b[to]);
                self.ht[1].b[to] = e.0;
                self.ht[0].used -= 1;
                self.ht[1].used += 1;
            }
            idx += 1;
            n -= 1;
        }
        if self.ht[0].used == 0 {
            self.ht.swap(0, 1);
            self.ht[1] = Table::empty();
            self.rehash_idx = None;
            return false;
        }
        self.rehash_idx = Some(idx);
        true
    }

    /// Does a bounded amount of incremental rehashing (`buckets` non-empty buckets), or
    /// starts a pending resize; returns true if more is left.
    pub fn rehash_step(&mut self, buckets: usize) -> bool {
        let n = buckets.max(1);
        if self.rehash(n) {
            return true;
        }
        // Not (or no longer) rehashing: start a pending shrink or grow.
        self.shrink_if_needed();
        self.expand_if_needed_cron();
        self.rehash(n)
    }

    /// The cron's growth check (a table can be over full after resizing was forbidden).
    fn expand_if_needed_cron(&mut self) {
        let (used, size) = (self.ht[0].used, self.ht[0].size());
        if self.rehash_idx.is_none() && size > 0 && self.resize_allowed && used > size {
            self.resize(used + 1);
        }
    }

    /// Bytes of table overhead (bucket arrays and the TTL index), for MEMORY STATS / INFO.
    pub fn overhead_bytes(&self) -> usize {
        let p = std::mem::size_of::<*mut u8>();
        (self.ht[0].size() + self.ht[1].size() + self.ttl.capacity()) * p
    }

    /// Bytes allocated for `key`'s entry (and the box of a boxed value, with the bytes of
    /// a string stored out of line, but not a collection's contents), as the allocator
    /// reports them, for MEMORY USAGE.
    pub fn entry_memory(&self, key: &[u8]) -> Option<usize> {
        let e = self.find(key)?;
        // SAFETY: entries are live blocks of the global allocator.
        let mut n = unsafe { crate::zmalloc::usable_size(e.0) };
        if e.kind() == KIND_BOX {
            // SAFETY: the entry's value is live and owned by the table.
            if let Value::Str { bytes, .. } = unsafe { &*e.boxed_ptr() } {
                // SAFETY: the string's box is a live block of the global allocator.
                n +=
                    unsafe { crate::zmalloc::usable_size(&**bytes as *const Vec<u8> as *const u8) };
                n += crate::zmalloc::vec_usable(bytes);
            }
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn live() -> isize {
        LIVE.with(|c| c.get())
    }

    impl KvStore {
        /// Checks every structural invariant; returns the number of entries seen.
        fn check(&self) -> usize {
            let mut n = 0;
            let mut with_ttl = 0;
            for t in 0..2 {
                let tab = &self.ht[t];
                assert!(tab.size() == 0 || tab.size().is_power_of_two());
                let mut used = 0;
                for (i, &head) in tab.b.iter().enumerate() {
                    if t == 0 {
                        if let Some(r) = self.rehash_idx {
                            if i < r {
                                assert!(head.is_null(), "moved bucket not empty");
                            }
                        }
                    }
                    let mut p = head;
                    while !p.is_null() {
                        let e = Entry(p);
                        let k = unsafe { e.key() };
                        assert_eq!(self.hash(k) as usize & tab.mask(), i, "wrong bucket");
                        if e.has_expire() {
                            with_ttl += 1;
                            assert_eq!(self.ttl[e.ttl_pos()], p, "ttl index slot");
                        }
                        used += 1;
                        p = e.next();
                    }
                }
                assert_eq!(used, tab.used);
                n += used;
            }
            if self.rehash_idx.is_none() {
                assert_eq!(self.ht[1].size(), 0);
            }
            assert_eq!(with_ttl, self.ttl.len());
            n
        }

        /// Sum of the usable sizes of every allocation of the table.
        fn allocated(&self) -> usize {
            let us = |p: *mut u8| unsafe { crate::zmalloc::usable_size(p) };
            let mut n = 0;
            for t in &self.ht {
                if t.size() > 0 {
                    n += us(t.b.as_ptr() as *mut u8);
                }
            }
            if self.ttl.capacity() > 0 {
                n += us(self.ttl.as_ptr() as *mut u8);
            }
            self.for_each(&mut |k, _, _| {
                n += self.entry_memory(k).unwrap();
            });
            n
        }
    }

    fn s(b: &[u8]) -> Value {
        Value::from_bytes(b)
    }

    #[test]
    fn hash_spreads() {
        let seed = 12345;
        let mut seen = HashSet::new();
        for i in 0..100_000u32 {
            assert!(seen.insert(hash_bytes(seed, format!("key:{i}").as_bytes())));
        }
        // Every length path, and the seed matters.
        for len in 0..70 {
            let k = vec![7u8; len];
            assert_ne!(hash_bytes(1, &k), hash_bytes(2, &k));
        }
        assert_ne!(hash_bytes(1, b"abc"), hash_bytes(1, b"abd"));
        assert_ne!(hash_bytes(1, b""), hash_bytes(1, b"\0"));
    }

    #[test]
    fn update_int_in_place_keeps_ttl_and_refuses_other_kinds() {
        let mut kv = KvStore::new();
        kv.insert(b"n", Value::Int(5), false, 3);
        kv.set_expire(b"n", 12345);
        assert!(kv.update_int_in_place(b"n", -7));
        assert_eq!(kv.get(b"n"), Some(ValueRef::Int(-7)));
        assert_eq!(kv.get_expire(b"n"), Some(12345));
        assert_eq!(kv.lru(b"n"), Some(3), "the field is kept");
        kv.insert(b"s", Value::from_bytes(b"abc"), false, 0);
        assert!(!kv.update_int_in_place(b"s", 1));
        assert_eq!(kv.get(b"s"), Some(ValueRef::Str(b"abc")));
        assert!(!kv.update_int_in_place(b"missing", 1));
        assert!(kv.get(b"missing").is_none());
        kv.check();
    }

    /// A string inserted as its bytes is stored as the same `Value::from_vec` then
    /// settled: same value, encoding and entry layout, for ints, embstr/raw edges, long
    /// strings, keys with a TTL kept or set right after.
    #[test]
    fn insert_bytes_matches_from_vec() {
        let base = live();
        {
            let (mut a, mut b) = (KvStore::new(), KvStore::new());
            let long_key = [b'k'; 40];
            let vals: Vec<Vec<u8>> = vec![
                b"".to_vec(),
                b"0".to_vec(),
                b"-12".to_vec(),
                b"012".to_vec(),
                b"9223372036854775807".to_vec(),
                b"9223372036854775808".to_vec(),
                b"-9223372036854775808".to_vec(),
                b"abc".to_vec(),
                vec![b'x'; 60],
                vec![b'x'; 70],
                vec![b'x'; 110],
                vec![b'x'; 111],
                vec![b'x'; 112],
                vec![b'x'; 300],
                vec![b'x'; INLINE_STR_MAX],
                vec![b'x'; INLINE_STR_MAX + 1],
            ];
            for key in [&b"k"[..], &long_key[..]] {
                for v in &vals {
                    for (keep_ttl, ttl_follows, has_ttl) in [
                        (false, false, false),
                        (true, false, true),
                        (false, true, false),
                        (true, false, false),
                    ] {
                        for kv in [&mut a, &mut b] {
                            kv.remove(key);
                            kv.insert(key, Value::Int(1), false, 0);
                            if has_ttl {
                                kv.set_expire(key, 1 << 40);
                            }
                        }
                        let mut val = Value::from_vec(v.clone());
                        if ttl_follows {
                            val.settle_encoding(key.len(), true);
                        }
                        let nv = NewVal::Value(val);
                        a.insert_with(key, nv, keep_ttl, false, 5, |_| 5);
                        let nv = NewVal::Bytes(v.clone());
                        b.insert_with(key, nv, keep_ttl, ttl_follows, 5, |_| 5);
                        let what = (key.len(), v.len(), keep_ttl, ttl_follows, has_ttl);
                        assert_eq!(a.get(key), b.get(key), "{what:?}");
                        assert_eq!(a.encoding(key), b.encoding(key), "{what:?}");
                        // Same layout (the allocator may round either block up).
                        let shape =
                            |kv: &KvStore| kv.find(key).map(|e| (e.size(), e.meta() & VALUE_BITS));
                        assert_eq!(shape(&a), shape(&b), "{what:?}");
                        assert_eq!(a.get_expire(key), b.get_expire(key), "{what:?}");
                    }
                }
            }
            a.check();
            b.check();
        }
        assert_eq!(live(), base);
    }

    #[test]
    fn basic_values_and_encodings() {
        let base = live();
        {
            let mut kv = KvStore::new();
            assert!(kv.get(b"a").is_none());
            assert!(!kv.insert(b"a", s(b"12345"), false, 7));
            assert!(!kv.insert(b"b", s(b"hello"), false, 8));
            let long = vec![b'x'; 100];
            assert!(!kv.insert(b"c", s(&long), false, 9));
            assert!(!kv.insert(b"d", Value::raw(b"r".to_vec()), false, 9));
            let bigkey = vec![b'k'; 1000];
            assert!(!kv.insert(&bigkey, s(b"v"), false, 1));
            assert!(!kv.insert(b"", s(b""), false, 1));
            assert_eq!(kv.len(), 6);
            assert_eq!(kv.get(b"a"), Some(ValueRef::Int(12345)));
            assert_eq!(kv.get(b"b"), Some(ValueRef::Str(b"hello")));
            assert_eq!(kv.get(b"c"), Some(ValueRef::Str(&long)));
            assert_eq!(kv.get(b"d"), Some(ValueRef::Str(b"r")));
            assert_eq!(kv.get(&bigkey), Some(ValueRef::Str(b"v")));
            assert_eq!(kv.get(b""), Some(ValueRef::Str(b"")));
            assert_eq!(kv.encoding(b"a"), Some(Encoding::Int));
            assert_eq!(kv.encoding(b"b"), Some(Encoding::EmbStr));
            assert_eq!(kv.encoding(b"c"), Some(Encoding::EmbStr)); // Reported by the flag settled in db::set_key.
            assert_eq!(kv.encoding(b"d"), Some(Encoding::Raw));
            assert_eq!(kv.lru(b"a"), Some(7));
            kv.set_lru(b"a", 0xffff_ffff);
            assert_eq!(kv.lru(b"a"), Some(LRU_MASK));
            assert_eq!(kv.get(b"a"), Some(ValueRef::Int(12345)));
            // Overwrite with every kind.
            assert!(kv.insert(b"a", s(&long), false, 3));
            assert_eq!(kv.get(b"a"), Some(ValueRef::Str(&long)));
            assert!(kv.insert(b"c", s(b"-5"), false, 3));
            assert_eq!(kv.get(b"c"), Some(ValueRef::Int(-5)));
            assert_eq!(kv.remove(b"c"), Some(Value::Int(-5)));
            assert_eq!(kv.remove(b"c"), None);
            assert_eq!(kv.remove(b"a"), Some(s(&long)));
            assert_eq!(
                kv.remove(b"b"),
                Some(Value::Str {
                    bytes: Box::new(b"hello".to_vec()),
                    raw: false
                })
            );
            assert_eq!(kv.len(), 3);
            kv.check();
        }
        assert_eq!(live(), base, "leak");
    }

    #[test]
    fn expires_and_ttl_index() {
        let base = live();
        {
            let mut kv = KvStore::new();
            for i in 0..100 {
                kv.insert(format!("k{i}").as_bytes(), s(b"v"), false, i);
            }
            assert!(!kv.set_expire(b"nokey", 5));
            for i in (0..100).step_by(2) {
                assert!(kv.set_expire(format!("k{i}").as_bytes(), 1000 + i as i64));
            }
            assert_eq!(kv.expires_len(), 50);
            kv.check();
            assert_eq!(kv.get_expire(b"k4"), Some(1004));
            assert_eq!(kv.get_expire(b"k5"), None);
            assert_eq!(kv.lru(b"k4"), Some(4), "lru survives the realloc");
            assert!(kv.set_expire(b"k4", -3));
            assert_eq!(kv.get_expire(b"k4"), Some(0));
            assert!(kv.remove_expire(b"k4"));
            assert!(!kv.remove_expire(b"k4"));
            assert!(!kv.remove_expire(b"k5"));
            assert_eq!(kv.expires_len(), 49);
            kv.check();
            // keep_ttl
            kv.insert(b"k6", s(b"new"), true, 1);
            assert_eq!(kv.get_expire(b"k6"), Some(1006));
            assert_eq!(kv.get(b"k6"), Some(ValueRef::Str(b"new")));
            kv.insert(b"k8", s(b"new"), false, 1);
            assert_eq!(kv.get_expire(b"k8"), None);
            assert_eq!(kv.expires_len(), 48);
            kv.check();
            // Sampling covers every TTL key over successive calls, only them.
            let mut seen = HashSet::new();
            for _ in 0..10 {
                for (k, w) in kv.sample_expires(5) {
                    assert_eq!(kv.get_expire(&k), Some(w));
                    seen.insert(k);
                }
            }
            assert_eq!(seen.len(), 48);
            assert_eq!(kv.sample_expires(1000).len(), 48);
            kv.remove(b"k10");
            assert_eq!(kv.expires_len(), 47);
            kv.check();
            let mut ttls = 0;
            kv.for_each(&mut |_, _, e| ttls += e.is_some() as usize);
            assert_eq!(ttls, 47);
        }
        assert_eq!(live(), base, "leak");
    }

    #[test]
    fn get_mut_boxes_inline_values() {
        let base = live();
        {
            let mut kv = KvStore::new();
            kv.insert(b"i", s(b"42"), false, 5);
            kv.insert(b"e", s(b"abc"), false, 6);
            kv.set_expire(b"e", 99);
            assert_eq!(kv.get_mut(b"i"), Some(&mut Value::Int(42)));
            assert_eq!(kv.encoding(b"i"), Some(Encoding::Int));
            if let Some(Value::Int(n)) = kv.get_mut(b"i") {
                *n += 1;
            }
            assert_eq!(kv.get(b"i"), Some(ValueRef::Int(43)));
            assert_eq!(kv.lru(b"i"), Some(5));
            kv.get_str_raw_mut(b"e").unwrap().extend_from_slice(b"def");
            assert_eq!(kv.get(b"e"), Some(ValueRef::Str(b"abcdef")));
            assert_eq!(kv.encoding(b"e"), Some(Encoding::Raw));
            assert_eq!(kv.get_expire(b"e"), Some(99));
            assert_eq!(kv.lru(b"e"), Some(6));
            kv.get_str_raw_mut(b"i").unwrap().push(b'0');
            assert_eq!(kv.get(b"i"), Some(ValueRef::Str(b"430")));
            assert!(kv.get_mut(b"zz").is_none());
            assert!(kv.get_str_raw_mut(b"zz").is_none());
            kv.check();
            kv.insert(b"e", s(b"x"), true, 1);
            assert_eq!(kv.encoding(b"e"), Some(Encoding::EmbStr));
            assert_eq!(kv.get_expire(b"e"), Some(99));
            kv.check();
        }
        assert_eq!(live(), base, "leak");
    }

    /// Random operations against a HashMap model, checking invariants through grows,
    /// shrinks and rehashes.
    #[test]
    fn model_random_ops() {
        let base = live();
        {
            let mut kv = KvStore::new();
            let mut model: HashMap<Vec<u8>, (Value, Option<i64>)> = HashMap::new();
            let mut rng = 0x1234_5678_9abc_def1u64;
            let mut rnd = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut saw_rehash = false;
            for round in 0..60_000u64 {
                // Phases: grow to ~5000 keys, then shrink, then grow again.
                let range = if (round / 20_000) % 2 == 1 { 300 } else { 6000 };
                let key = format!("key:{}", rnd() % range).into_bytes();
                match rnd() % 10 {
                    0..=3 => {
                        let v = match rnd() % 3 {
                            0 => Value::Int(rnd() as i64),
                            1 => s(format!("v{}", rnd()).as_bytes()),
                            _ => Value::raw(vec![b'r'; (rnd() % 60) as usize]),
                        };
                        let keep = rnd() % 2 == 0;
                        let existed = kv.insert(&key, v.clone(), keep, 0);
                        let old = model.get(&key).and_then(|x| x.1);
                        assert_eq!(existed, model.contains_key(&key));
                        model.insert(key, (v, if keep { old } else { None }));
                    }
                    4..=5 if (round / 20_000) % 2 == 1 || rnd() % 3 == 0 => {
                        let got = kv.remove(&key);
                        assert_eq!(got, model.remove(&key).map(|x| x.0));
                    }
                    6 => {
                        let w = (rnd() % 1000) as i64;
                        let ok = kv.set_expire(&key, w);
                        assert_eq!(ok, model.contains_key(&key));
                        if let Some(x) = model.get_mut(&key) {
                            x.1 = Some(w);
                        }
                    }
                    7 => {
                        let had = kv.remove_expire(&key);
                        let m = model.get_mut(&key).map(|x| x.1.take().is_some());
                        assert_eq!(had, m.unwrap_or(false));
                    }
                    8 => {
                        if let Some(v) = kv.get_mut(&key) {
                            if let Value::Int(n) = v {
                                *n = n.wrapping_add(1);
                            }
                            let nv = v.clone();
                            model.get_mut(&key).unwrap().0 = nv;
                        } else {
                            assert!(!model.contains_key(&key));
                        }
                    }
                    _ => {
                        let got = kv.get(&key).map(|v| v.to_owned().as_ref().to_bytes());
                        let want = model.get(&key).map(|x| x.0.as_ref().to_bytes());
                        assert_eq!(got, want);
                        assert_eq!(kv.get_expire(&key), model.get(&key).and_then(|x| x.1));
                    }
                }
                saw_rehash |= kv.is_rehashing();
                if round % 997 == 0 {
                    assert_eq!(kv.check(), model.len());
                    assert_eq!(kv.len(), model.len());
                    let nt = model.values().filter(|x| x.1.is_some()).count();
                    assert_eq!(kv.expires_len(), nt);
                }
                if round % 5000 == 0 {
                    while kv.rehash_step(10) {}
                }
            }
            assert!(saw_rehash);
            assert_eq!(kv.check(), model.len());
            for (k, (v, e)) in &model {
                assert_eq!(kv.get(k).map(|x| x.to_bytes()), Some(v.as_ref().to_bytes()));
                assert_eq!(kv.get_expire(k), *e);
            }
            // Shrink everything away.
            let keys: Vec<_> = model.keys().cloned().collect();
            for k in &keys {
                assert!(kv.remove(k).is_some());
            }
            while kv.rehash_step(100) {}
            assert!(kv.is_empty());
            assert_eq!(kv.buckets().0, INITIAL_SIZE);
            kv.check();
        }
        assert_eq!(live(), base, "leak");
    }

    #[test]
    fn grow_shrink_and_clear() {
        let base = live();
        let mut kv = KvStore::new();
        for i in 0..10_000 {
            kv.insert(format!("key:{i}").as_bytes(), Value::Int(i), false, 0);
            if i % 3 == 0 {
                kv.set_expire(format!("key:{i}").as_bytes(), i);
            }
        }
        while kv.rehash_step(100) {}
        assert_eq!(kv.buckets(), (16384, 0));
        for i in 0..9_900 {
            kv.remove(format!("key:{i}").as_bytes());
        }
        while kv.rehash_step(100) {}
        kv.check();
        assert!(kv.buckets().0 <= 1024, "{:?}", kv.buckets());
        assert_eq!(kv.len(), 100);
        kv.clear();
        assert_eq!(kv.len(), 0);
        assert_eq!(kv.expires_len(), 0);
        assert_eq!(live(), base);
        kv.insert(b"again", s(b"x"), false, 0);
        assert_eq!(kv.get(b"again"), Some(ValueRef::Str(b"x")));
        drop(kv);
        assert_eq!(live(), base, "leak on drop");
    }

    #[test]
    fn resize_forbidden_grows_only_when_far_over() {
        let mut kv = KvStore::new();
        kv.set_resize_allowed(false);
        for i in 0..100 {
            kv.insert(format!("{i}").as_bytes(), Value::Int(i), false, 0);
        }
        kv.check();
        assert!(kv.buckets().0 < 100);
        kv.set_resize_allowed(true);
        while kv.rehash_step(100) {}
        assert!(kv.buckets().0 >= 128);
        kv.check();
    }

    #[test]
    fn random_key_is_fair_enough() {
        let mut kv = KvStore::new();
        assert!(kv.random_key().is_none());
        for i in 0..50 {
            kv.insert(format!("k{i}").as_bytes(), Value::Int(i), false, 0);
        }
        let mut seen = HashSet::new();
        for _ in 0..5000 {
            let k = kv.random_key().unwrap();
            assert!(kv.get(&k).is_some());
            seen.insert(k);
        }
        assert_eq!(seen.len(), 50);
        // Mid-rehash and sparse.
        for i in 0..5000 {
            kv.insert(format!("x{i}").as_bytes(), Value::Int(i), false, 0);
        }
        for i in 0..5000 {
            kv.remove(format!("x{i}").as_bytes());
        }
        for _ in 0..1000 {
            assert!(kv.get(&kv.random_key().unwrap()).is_some());
        }
    }

    #[test]
    fn sampling_for_eviction() {
        let mut kv = KvStore::new();
        let mut out = Vec::new();
        let mut none = |_: &[u8], _: u32, _: Option<i64>| panic!("nothing to sample");
        assert_eq!(kv.sample_keys(5, false, &mut none), 0);
        assert_eq!(kv.sample_keys(5, true, &mut none), 0);
        assert!(!kv.random_key_into(false, &mut out));
        // One key: found whatever the table size (also right after the first insert).
        kv.insert(b"only", Value::Int(1), false, 42);
        let mut got = Vec::new();
        assert_eq!(
            kv.sample_keys(5, false, &mut |k, m, e| got.push((k.to_vec(), m, e))),
            1
        );
        assert_eq!(got, vec![(b"only".to_vec(), 42, None)]);
        assert!(!kv.random_key_into(true, &mut out), "no key has a TTL");
        // Many keys, some with a TTL; sampling also works mid-rehash and when sparse.
        for i in 0..2000 {
            kv.insert(format!("k{i}").as_bytes(), Value::Int(i), false, i as u32);
            if i % 4 == 0 {
                kv.set_expire(format!("k{i}").as_bytes(), 1000 + i);
            }
        }
        for round in 0..3 {
            let mut seen = HashSet::new();
            for _ in 0..500 {
                let n = kv.sample_keys(5, false, &mut |k, m, _| {
                    assert_eq!(kv.lru(k), Some(m));
                    seen.insert(k.to_vec());
                });
                assert!((1..=5).contains(&n));
                let n = kv.sample_keys(5, true, &mut |k, _, e| {
                    assert_eq!(kv.get_expire(k), e);
                    assert!(e.is_some());
                });
                assert_eq!(n, 5);
                assert!(kv.random_key_into(true, &mut out));
                assert!(kv.get_expire(&out).is_some());
                assert!(kv.random_key_into(false, &mut out));
                assert!(kv.get(&out).is_some());
            }
            // Sampling spreads over the table.
            assert!(seen.len() > kv.len() / 4, "round {round}: {}", seen.len());
            // Next round: sparse (after mass removal) and then mid-rehash.
            for i in 0..2000 {
                if i % 10 != 0 {
                    kv.remove(format!("k{i}").as_bytes());
                }
            }
            for i in 0..2000 {
                kv.insert(format!("k{i}").as_bytes(), Value::Int(i), false, i as u32);
                if i % 4 == 0 {
                    kv.set_expire(format!("k{i}").as_bytes(), 1000 + i);
                }
            }
        }
        kv.check();
    }

    fn full_scan(kv: &KvStore) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut c = 0;
        loop {
            c = kv.scan(c, &mut |k, _| out.push(k.to_vec()));
            if c == 0 {
                break;
            }
        }
        out
    }

    #[test]
    fn scan_full_no_duplicates_when_stable() {
        let mut kv = KvStore::new();
        assert!(full_scan(&kv).is_empty());
        for i in 0..3000 {
            kv.insert(format!("k{i}").as_bytes(), Value::Int(i), false, 0);
        }
        // Mid-rehash too: both tables are covered.
        for stage in 0..2 {
            let got = full_scan(&kv);
            let set: HashSet<_> = got.iter().cloned().collect();
            assert_eq!(set.len(), 3000, "stage {stage}");
            if !kv.is_rehashing() {
                assert_eq!(got.len(), 3000, "no duplicates without resize");
            }
            while kv.rehash_step(100) {}
        }
    }

    /// Valkey's SCAN guarantee: an element present for the whole iteration is returned
    /// at least once, even across grows and shrinks between the calls.
    #[test]
    fn scan_guarantee_across_resizes() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut resized_trials = 0;
        for trial in 0..30 {
            let mut kv = KvStore::new();
            let n = 200 + (rnd() % 3000) as usize;
            for i in 0..n {
                kv.insert(
                    format!("stable:{i}").as_bytes(),
                    Value::Int(i as i64),
                    false,
                    0,
                );
            }
            let mut extra: Vec<Vec<u8>> = Vec::new();
            let mut seen = HashSet::new();
            let mut cursor = 0u64;
            let mut grows = true;
            let mut sizes = HashSet::new();
            loop {
                let count = 1 + (rnd() % 20) as usize;
                for _ in 0..count {
                    cursor = kv.scan(cursor, &mut |k, _| {
                        seen.insert(k.to_vec());
                    });
                    if cursor == 0 {
                        break;
                    }
                }
                if cursor == 0 {
                    break;
                }
                // Churn other keys: long runs of inserts then deletes force grows and
                // shrinks (the shrinks need extra keys well above the stable ones).
                if rnd() % 8 == 0 {
                    grows = !grows;
                }
                for _ in 0..(rnd() % 400) {
                    if grows || extra.is_empty() {
                        let k = format!("extra:{}", rnd()).into_bytes();
                        kv.insert(&k, Value::Int(0), false, 0);
                        extra.push(k);
                    } else {
                        let i = (rnd() as usize) % extra.len();
                        let k = extra.swap_remove(i);
                        kv.remove(&k);
                    }
                }
                if rnd() % 4 == 0 {
                    kv.rehash_step((rnd() % 50) as usize);
                }
                sizes.insert(kv.buckets());
            }
            for i in 0..n {
                assert!(
                    seen.contains(format!("stable:{i}").as_bytes()),
                    "trial {trial}: stable:{i} missed"
                );
            }
            kv.check();
            if sizes.len() > 1 {
                resized_trials += 1;
            }
        }
        // The hash seed is random, so a short scan may finish before any resize; the
        // guarantee must have been exercised across resizes in most trials.
        assert!(
            resized_trials >= 20,
            "only {resized_trials} of 30 trials resized"
        );
    }

    #[test]
    fn scan_across_shrink() {
        // Many extra keys deleted mid-scan so the table shrinks (incrementally) under it.
        for trial in 0..10u64 {
            let mut kv = KvStore::new();
            for i in 0..20_000 {
                kv.insert(format!("x{i}").as_bytes(), Value::Int(0), false, 0);
            }
            for i in 0..100 {
                kv.insert(format!("s{i}").as_bytes(), Value::Int(0), false, 0);
            }
            while kv.rehash_step(100) {}
            let mut seen = HashSet::new();
            let mut cursor = 0;
            let mut step = 0;
            loop {
                cursor = kv.scan(cursor, &mut |k, _| {
                    seen.insert(k.to_vec());
                });
                if cursor == 0 {
                    break;
                }
                step += 1;
                if step == 50 + trial * 300 {
                    for i in 0..20_000 {
                        kv.remove(format!("x{i}").as_bytes());
                    }
                }
            }
            for i in 0..100 {
                assert!(seen.contains(format!("s{i}").as_bytes()));
            }
        }
    }

    /// Bytes per key for 1,000,000 "key:N" keys with 10-byte values, counting the usable
    /// size of every allocation (entries, bucket arrays). Run with
    /// `cargo test --release memory_per_key -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn memory_per_key() {
        let before = crate::zmalloc::used_memory();
        let mut kv = KvStore::new();
        let n = 1_000_000;
        for i in 0..n {
            kv.insert(format!("key:{i}").as_bytes(), s(b"valuevalue"), false, 0);
        }
        let after = crate::zmalloc::used_memory();
        let own = kv.allocated();
        println!(
            "{} keys: {:.2} bytes/key (own accounting: {} bytes; buckets {:?}, rehashing {}); \
             zmalloc delta {:.2} bytes/key",
            n,
            own as f64 / n as f64,
            own,
            kv.buckets(),
            kv.is_rehashing(),
            after.saturating_sub(before) as f64 / n as f64
        );
        let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("key:{i}").into_bytes()).collect();
        let t = std::time::Instant::now();
        let mut hits = 0;
        for k in &keys {
            hits += kv.get(k).is_some() as usize;
        }
        assert_eq!(hits, n);
        println!(
            "lookups: {:.0} ns/op",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        assert!(own as f64 / (n as f64) <= 58.0);
    }
}
