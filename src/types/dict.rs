//! A chained hash table of byte payloads, as upstream's `dict.c`: the hashtable encoding
//! of hashes and sets, and the member index of sorted sets.
//!
//! # Layout
//!
//! Two power-of-two arrays of bucket heads (`ht[0]`, and `ht[1]` only while rehashing);
//! a bucket head points at the first node of its chain, or is null. Every element is
//! **one heap allocation** (a *node*, aligned to 8):
//!
//! ```text
//! offset  size  field
//! 0       8     next: the next node of the bucket chain, or null
//! 8       1     len: payload length when under 255, else 255 and:
//! 9       0/4   the payload length (u32, unaligned)
//! 9 or 13 len   payload bytes
//! ```
//!
//! What the payload holds is the user's choice; [`DictKey::key`] says which part of it is
//! the key (e.g. the whole payload for a set member, the field of a `field+value` pair
//! for a hash). A 15-byte set member is a 24-byte node (24 usable bytes with glibc, the
//! class of upstream's sds of the same member), plus 4 to 8 bytes of bucket per element
//! (load factor 2 to 1).
//!
//! # Behaviour
//!
//! - The table grows when it holds two elements per bucket (to load factor 1) and
//!   shrinks when less than 1/8 full, by *incremental* rehashing: every insert, remove and [`Dict::find_mut`] moves
//!   one bucket (as upstream's `_dictRehashStep`); [`Dict::rehash_step`] does more on
//!   request. Rehashing moves links, never nodes.
//! - [`Node`] is a handle to one element, stable until that element is removed or
//!   replaced (resizes do not move it).
//! - [`Dict::scan`] is upstream's reverse-binary cursor: an element present for the whole
//!   iteration is returned at least once, even when the table resizes between calls.
//! - Keys are hashed with the process-wide seeded hash of the keyspace
//!   ([`crate::kvstore::hash_bytes`] with [`crate::kvstore::global_seed`]).
//!
//! # Node handles
//!
//! The `Node` methods ([`Dict::payload`], [`Dict::payload_mut`], [`Dict::remove_node`])
//! trust their caller: the node must belong to *this* dict and still be live (not removed,
//! not replaced, not cleared). That is checked by `debug_assert` only where cheap; passing
//! another dict's node or a stale one is a bug of the caller with undefined results.
#![allow(dead_code)]

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crate::kvstore::{global_seed, hash_bytes};

/// Where the key is inside a payload.
pub trait DictKey {
    /// The key part of `payload` (it must be a pure function of the payload).
    fn key(payload: &[u8]) -> &[u8];
}

/// The whole payload is the key (set members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WholeKey;

impl DictKey for WholeKey {
    #[inline]
    fn key(payload: &[u8]) -> &[u8] {
        payload
    }
}

/// A handle to one element of a [`Dict`]: stable until that element is removed or
/// replaced (see the module's `# Node handles`). A clone of a dict has other handles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Node(NonNull<u8>);

// SAFETY: a Node is an inert address; it is only dereferenced through the `Dict` that
// owns the node, under that dict's `&`/`&mut` borrow.
unsafe impl Send for Node {}
// SAFETY: as above.
unsafe impl Sync for Node {}

// ---------------------------------------------------------------------------------------
// Nodes (raw)

const OFF_LEN: usize = 8;
/// The one-byte length that says a u32 length follows.
const LEN_LONG: u8 = u8::MAX;

/// Bytes before the payload of a node of `payload_len` bytes.
#[inline]
fn header(payload_len: usize) -> usize {
    if payload_len < LEN_LONG as usize {
        OFF_LEN + 1
    } else {
        OFF_LEN + 5
    }
}

#[cfg(test)]
thread_local! {
    /// Live nodes of this thread, to check for leaks in tests.
    static LIVE: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn live_add(_d: isize) {
    #[cfg(test)]
    LIVE.with(|c| c.set(c.get() + _d));
}

#[inline]
fn layout(payload_len: usize) -> Layout {
    Layout::from_size_align(header(payload_len) + payload_len, 8).expect("dict node layout")
}

#[inline]
fn usable(p: *mut u8) -> usize {
    // SAFETY: `p` is a live allocation of the global allocator.
    unsafe { crate::zmalloc::usable_size(p) }
}

/// Invariant of every function below taking a node pointer: it points at a live node.
#[inline]
fn next(p: *mut u8) -> *mut u8 {
    // SAFETY: live node; `next` is the aligned pointer at offset 0.
    unsafe { ptr::read(p as *const *mut u8) }
}

#[inline]
fn set_next(p: *mut u8, n: *mut u8) {
    // SAFETY: as `next`.
    unsafe { ptr::write(p as *mut *mut u8, n) }
}

#[inline]
fn plen(p: *mut u8) -> usize {
    // SAFETY: live node; the length byte is at offset 8, the long length after it.
    unsafe {
        match *p.add(OFF_LEN) {
            LEN_LONG => ptr::read_unaligned(p.add(OFF_LEN + 1) as *const u32) as usize,
            n => n as usize,
        }
    }
}

/// The payload of a live node; the caller bounds the lifetime by the node's.
#[inline]
unsafe fn payload<'a>(p: *mut u8) -> &'a [u8] {
    let n = plen(p);
    // SAFETY: the payload bytes follow the header inside the allocation.
    unsafe { std::slice::from_raw_parts(p.add(header(n)), n) }
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
/// Shrink when `used * MIN_FILL <= size` (less than 1/8 full).
const MIN_FILL: usize = 8;

/// False while a fork child (BGSAVE) shares our pages, as upstream's `dict_can_resize`:
/// tables then grow only when over `FORCE_RESIZE_RATIO` times full and shrink only when
/// that much too big, so copy-on-write stays small. Set by `rdb::update_resize_policy`.
pub static RESIZE_ALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
/// How far past the limits a table resizes even while resizing is not allowed.
const FORCE_RESIZE_RATIO: usize = 4;

#[inline]
fn resize_allowed() -> bool {
    RESIZE_ALLOWED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Grow when there are `MAX_LOAD` elements per bucket on average. Chains of two are cheap
/// (one more node compared on a hit, on average half a node) and halve the bucket memory
/// of a load factor of 1: a table oscillates between loads 1 and 2, about 5.3 bytes of
/// bucket per element, where upstream's hashtable spends 10 to 20.
const MAX_LOAD: usize = 2;
/// `rehash_idx` when not rehashing.
const NOT_REHASHING: usize = usize::MAX;

/// A place holding a pointer to a node: a bucket head or a previous node's `next`.
type Link = *mut *mut u8;

/// A chained hash table of payloads keyed by `K::key(payload)` (see the module doc).
pub struct Dict<K: DictKey> {
    ht: [Table; 2],
    /// The next bucket of `ht[0]` to move to `ht[1]`, or `NOT_REHASHING`.
    rehash_idx: usize,
    /// Sum of the usable sizes of the live nodes.
    node_bytes: usize,
    _k: PhantomData<fn() -> K>,
}

// SAFETY: a Dict exclusively owns its nodes (plain bytes), like a Box<[u8]> each.
unsafe impl<K: DictKey> Send for Dict<K> {}
// SAFETY: `&Dict` only reads the nodes; there is no interior mutability.
unsafe impl<K: DictKey> Sync for Dict<K> {}

impl<K: DictKey> Default for Dict<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: DictKey> Drop for Dict<K> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<K: DictKey> std::fmt::Debug for Dict<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dict").field("len", &self.len()).finish()
    }
}

impl<K: DictKey> Clone for Dict<K> {
    /// A deep copy with the same table shape (the nodes are new: their handles differ).
    fn clone(&self) -> Self {
        let mut d = Dict {
            ht: [Table::empty(), Table::empty()],
            rehash_idx: self.rehash_idx,
            node_bytes: 0,
            _k: PhantomData,
        };
        for t in 0..2 {
            let src = &self.ht[t];
            let mut dst = Table::with_size(src.size());
            for (slot, &head) in dst.b.iter_mut().zip(src.b.iter()) {
                let mut link: Link = slot;
                let mut p = head;
                while !p.is_null() {
                    // SAFETY: `p` is a live node of `self`.
                    let n = d.alloc_node(&[unsafe { payload(p) }]);
                    // SAFETY: `link` is the bucket slot or the `next` of the node just
                    // appended to this chain of `dst`.
                    unsafe { *link = n };
                    link = n as Link;
                    p = next(p);
                }
            }
            dst.used = src.used;
            d.ht[t] = dst;
        }
        d
    }
}

impl<K: DictKey> PartialEq for Dict<K> {
    /// The same set of payloads.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|p| other.get(K::key(p)) == Some(p))
    }
}

impl<K: DictKey> Dict<K> {
    pub fn new() -> Self {
        Dict {
            ht: [Table::empty(), Table::empty()],
            rehash_idx: NOT_REHASHING,
            node_bytes: 0,
            _k: PhantomData,
        }
    }

    /// An empty dict with buckets for `n` elements.
    pub fn with_capacity(n: usize) -> Self {
        let mut d = Self::new();
        d.expand(n);
        d
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.ht[0].used + self.ht[1].used
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an incremental rehash is in progress.
    #[inline]
    pub fn is_rehashing(&self) -> bool {
        self.rehash_idx != NOT_REHASHING
    }

    /// Bucket counts of the main table and of the rehash target (0 when not rehashing).
    pub fn buckets(&self) -> (usize, usize) {
        (self.ht[0].size(), self.ht[1].size())
    }

    #[inline]
    fn hash(key: &[u8]) -> usize {
        hash_bytes(global_seed(), key) as usize
    }

    // -- nodes ------------------------------------------------------------------------

    /// Allocates a node whose payload is the concatenation of `parts`; `next` is null.
    fn alloc_node(&mut self, parts: &[&[u8]]) -> *mut u8 {
        let len: usize = parts.iter().map(|x| x.len()).sum();
        let len32 = u32::try_from(len).expect("dict payload over 4 GiB");
        let lay = layout(len);
        // SAFETY: the size is non-zero (>= the header).
        let p = unsafe { alloc::alloc(lay) };
        if p.is_null() {
            alloc::handle_alloc_error(lay);
        }
        // SAFETY: every write stays inside the header + len bytes just allocated; `p` is
        // 8-aligned, so `next` (offset 0) is aligned; the long length is written unaligned.
        unsafe {
            ptr::write(p as *mut *mut u8, ptr::null_mut());
            let mut o = header(len);
            if o == OFF_LEN + 1 {
                *p.add(OFF_LEN) = len as u8;
            } else {
                *p.add(OFF_LEN) = LEN_LONG;
                ptr::write_unaligned(p.add(OFF_LEN + 1) as *mut u32, len32);
            }
            for part in parts {
                ptr::copy_nonoverlapping(part.as_ptr(), p.add(o), part.len());
                o += part.len();
            }
        }
        live_add(1);
        self.node_bytes += usable(p);
        p
    }

    /// Frees a node that is no longer linked anywhere.
    fn free_node(&mut self, p: *mut u8) {
        self.node_bytes -= usable(p);
        live_add(-1);
        // SAFETY: allocated by `alloc_node` with this layout (same payload length).
        unsafe { alloc::dealloc(p, layout(plen(p))) }
    }

    // -- lookup -----------------------------------------------------------------------

    /// The node of `key`, without rehashing.
    fn find_ptr(&self, key: &[u8]) -> *mut u8 {
        if self.is_empty() {
            return ptr::null_mut();
        }
        let h = Self::hash(key);
        for t in 0..2 {
            let tab = &self.ht[t];
            let idx = h & tab.mask();
            // Buckets of ht[0] below rehash_idx are already moved (empty).
            if !(t == 0 && self.is_rehashing() && idx < self.rehash_idx) {
                let mut p = tab.b[idx];
                while !p.is_null() {
                    // SAFETY: linked nodes are live while `self` is borrowed.
                    if K::key(unsafe { payload(p) }) == key {
                        return p;
                    }
                    p = next(p);
                }
            }
            if !self.is_rehashing() {
                break;
            }
        }
        ptr::null_mut()
    }

    /// The link pointing at the node of `key` (or at `node` itself when given; `key` is
    /// then its key), and the index of the table holding it.
    fn find_link(&mut self, key: &[u8], node: Option<*mut u8>) -> Option<(Link, usize)> {
        if self.is_empty() {
            return None;
        }
        let h = Self::hash(key);
        let rehash = self.rehash_idx;
        for t in 0..2 {
            let tab = &mut self.ht[t];
            let idx = h & tab.mask();
            if !(t == 0 && rehash != NOT_REHASHING && idx < rehash) {
                let mut link: Link = &mut tab.b[idx];
                // SAFETY: `link` is a bucket slot of this table (borrowed mutably through
                // `self`) or the `next` field of a live node of its chain.
                unsafe {
                    while !(*link).is_null() {
                        let p = *link;
                        let hit = match node {
                            Some(n) => p == n,
                            None => K::key(payload(p)) == key,
                        };
                        if hit {
                            return Some((link, t));
                        }
                        link = p as Link;
                    }
                }
            }
            if rehash == NOT_REHASHING {
                break;
            }
        }
        None
    }

    /// The payload of the element with `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let p = self.find_ptr(key);
        // SAFETY: a found node lives as long as the shared borrow of self.
        (!p.is_null()).then(|| unsafe { payload(p) })
    }

    /// Whether an element has `key`.
    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        !self.find_ptr(key).is_null()
    }

    /// The node of `key` (read path: no rehash step).
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<Node> {
        NonNull::new(self.find_ptr(key)).map(Node)
    }

    /// The node of `key`, doing one rehash step first (the write path, e.g. before
    /// [`Dict::payload_mut`]).
    #[inline]
    pub fn find_mut(&mut self, key: &[u8]) -> Option<Node> {
        self.rehash_if_rehashing();
        self.find(key)
    }

    /// The payload of a node of this dict (see the module's `# Node handles`).
    #[inline]
    pub fn payload(&self, node: Node) -> &[u8] {
        debug_assert!(!self.is_empty());
        // SAFETY: by the caller's contract the node is a live node of this dict, which
        // lives as long as the shared borrow of self.
        unsafe { payload(node.0.as_ptr()) }
    }

    /// The payload of a node of this dict, mutable in place (same length). The key part
    /// must not be changed. See the module's `# Node handles`.
    #[inline]
    pub fn payload_mut(&mut self, node: Node) -> &mut [u8] {
        debug_assert!(!self.is_empty());
        let p = node.0.as_ptr();
        // SAFETY: by the caller's contract the node is a live node of this dict; the
        // mutable borrow of self keeps any other access to it away meanwhile.
        let n = plen(p);
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts_mut(p.add(header(n)), n) }
    }

    // -- insert / replace / remove ---------------------------------------------------

    /// Links a fresh node (whose key is not present) into the table.
    fn link_new(&mut self, p: *mut u8) -> Node {
        self.expand_if_needed();
        // SAFETY: `p` is a live node owned by us.
        let h = Self::hash(K::key(unsafe { payload(p) }));
        let t = if self.is_rehashing() { 1 } else { 0 };
        let tab = &mut self.ht[t];
        let idx = h & tab.mask();
        set_next(p, tab.b[idx]);
        tab.b[idx] = p;
        tab.used += 1;
        // SAFETY: allocation pointers are non-null.
        Node(unsafe { NonNull::new_unchecked(p) })
    }

    /// Inserts `payload` if its key is absent; else returns the existing node, changing
    /// nothing.
    pub fn insert(&mut self, payload: &[u8]) -> Result<Node, Node> {
        self.insert_parts(&[payload])
    }

    /// [`Dict::insert`] of the concatenation of `parts`.
    pub fn insert_parts(&mut self, parts: &[&[u8]]) -> Result<Node, Node> {
        self.rehash_if_rehashing();
        if let [one] = parts {
            if let Some(n) = self.find(K::key(one)) {
                return Err(n);
            }
            let p = self.alloc_node(parts);
            return Ok(self.link_new(p));
        }
        let p = self.alloc_node(parts);
        // SAFETY: `p` is a live node owned by us, not linked yet.
        if let Some(n) = self.find(K::key(unsafe { payload(p) })) {
            self.free_node(p);
            return Err(n);
        }
        Ok(self.link_new(p))
    }

    /// Inserts `payload`, or replaces the element with its key (the old node is freed
    /// and the new one takes its place in the chain). Returns the new node and whether
    /// the key existed.
    pub fn replace(&mut self, payload: &[u8]) -> (Node, bool) {
        self.replace_parts(&[payload])
    }

    /// [`Dict::replace`] of the concatenation of `parts`.
    pub fn replace_parts(&mut self, parts: &[&[u8]]) -> (Node, bool) {
        self.rehash_if_rehashing();
        let p = self.alloc_node(parts);
        // SAFETY: `p` is a live node owned by us, not linked yet. The key borrow is of
        // the node itself, which is not freed before the lookup ends.
        let key = unsafe { payload(p) };
        match self.find_link(K::key(key), None) {
            Some((link, _)) => {
                // SAFETY: `link` points at the live old node; the new one takes its place
                // with the old `next`, and the old one is then unlinked from everything.
                let old = unsafe { *link };
                set_next(p, next(old));
                unsafe { *link = p };
                self.free_node(old);
                // SAFETY: allocation pointers are non-null.
                (Node(unsafe { NonNull::new_unchecked(p) }), true)
            }
            None => (self.link_new(p), false),
        }
    }

    /// Unlinks the node at `link` (in table `t`), hands its payload to `f`, frees it.
    fn unlink(&mut self, link: Link, t: usize, f: impl FnOnce(&[u8])) {
        // SAFETY: `link` came from `find_link` just before and points at a live node;
        // pointing it at the node's successor unlinks the node.
        let p = unsafe { *link };
        unsafe { *link = next(p) };
        self.ht[t].used -= 1;
        // SAFETY: the node is live until freed below.
        f(unsafe { payload(p) });
        self.free_node(p);
        self.shrink_if_needed();
    }

    /// Removes the element with `key`; returns whether it existed.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        self.remove_with(key, |_| {})
    }

    /// Removes the element with `key`, handing its payload to `f` before freeing it;
    /// returns whether it existed (`f` is only called then).
    pub fn remove_with(&mut self, key: &[u8], f: impl FnOnce(&[u8])) -> bool {
        self.rehash_if_rehashing();
        match self.find_link(key, None) {
            Some((link, t)) => {
                self.unlink(link, t, f);
                true
            }
            None => false,
        }
    }

    /// Removes a node of this dict (see the module's `# Node handles`), handing its
    /// payload to `f` before freeing it (e.g. SPOP after [`Dict::random`]).
    pub fn remove_node(&mut self, node: Node, f: impl FnOnce(&[u8])) {
        self.rehash_if_rehashing();
        let p = node.0.as_ptr();
        // SAFETY: by the caller's contract `p` is a live node of this dict. The key is
        // read from it during the lookup only (the node is not freed meanwhile).
        let key = K::key(unsafe { payload(p) });
        let found = self.find_link(key, Some(p));
        debug_assert!(found.is_some(), "node not in this dict");
        if let Some((link, t)) = found {
            self.unlink(link, t, f);
        }
    }

    /// Removes every element (the buckets too).
    pub fn clear(&mut self) {
        for t in 0..2 {
            let mut tab = std::mem::replace(&mut self.ht[t], Table::empty());
            for slot in tab.b.iter_mut() {
                let mut p = *slot;
                while !p.is_null() {
                    let n = next(p);
                    self.free_node(p);
                    p = n;
                }
            }
        }
        self.rehash_idx = NOT_REHASHING;
        debug_assert_eq!(self.node_bytes, 0);
    }

    // -- iteration --------------------------------------------------------------------

    /// The payloads, in table order.
    pub fn iter(&self) -> Iter<'_, K> {
        Iter(self.nodes())
    }

    /// The nodes, in table order.
    pub fn nodes(&self) -> Nodes<'_, K> {
        Nodes {
            d: self,
            t: 0,
            i: 0,
            p: ptr::null_mut(),
            left: self.len(),
        }
    }

    fn emit_chain(mut p: *mut u8, f: &mut dyn FnMut(&[u8])) {
        while !p.is_null() {
            // SAFETY: linked nodes live while the dict is borrowed.
            f(unsafe { payload(p) });
            p = next(p);
        }
    }

    /// Calls `f` for the payloads of one step of the scan (one bucket of the smaller
    /// table, and the buckets it expands to in the larger one while rehashing) and
    /// returns the next cursor (0 when complete). The cursor is incremented on its
    /// reversed bits, as upstream's `dictScan`.
    pub fn scan(&self, cursor: u64, f: &mut dyn FnMut(&[u8])) -> u64 {
        if self.is_empty() {
            return 0;
        }
        #[inline]
        fn next_cursor(v: u64, mask: u64) -> u64 {
            // Set the bits above the mask so the increment carries into the reversed
            // bits that address the table.
            (v | !mask).reverse_bits().wrapping_add(1).reverse_bits()
        }
        let mut v = cursor;
        if !self.is_rehashing() {
            let t = &self.ht[0];
            let m0 = t.mask() as u64;
            Self::emit_chain(t.b[(v & m0) as usize], f);
            v = next_cursor(v, m0);
        } else {
            let (s, l) = if self.ht[0].size() <= self.ht[1].size() {
                (&self.ht[0], &self.ht[1])
            } else {
                (&self.ht[1], &self.ht[0])
            };
            let m0 = s.mask() as u64;
            let m1 = l.mask() as u64;
            Self::emit_chain(s.b[(v & m0) as usize], f);
            // Every bucket of the larger table that the smaller one's bucket expands to.
            loop {
                Self::emit_chain(l.b[(v & m1) as usize], f);
                v = next_cursor(v, m1);
                if v & (m0 ^ m1) == 0 {
                    break;
                }
            }
        }
        v
    }

    /// A random element: a random non-empty bucket (of both tables while rehashing),
    /// then a random node of its chain, as upstream's `dictGetRandomKey`.
    pub fn random(&self) -> Option<Node> {
        if self.is_empty() {
            return None;
        }
        let s0 = self.ht[0].size();
        let start = if self.is_rehashing() {
            self.rehash_idx
        } else {
            0
        };
        let span = s0 + self.ht[1].size() - start;
        let at = |i: usize| -> *mut u8 {
            let i = start + i;
            if i < s0 {
                self.ht[0].b[i]
            } else {
                self.ht[1].b[i - s0]
            }
        };
        let mut head = ptr::null_mut();
        for _ in 0..1000 {
            head = at(crate::util::random_u64() as usize % span);
            if !head.is_null() {
                break;
            }
        }
        if head.is_null() {
            // Very sparse (mid shrink): walk from a random place.
            let first = crate::util::random_u64() as usize % span;
            head = (0..span)
                .map(|i| at((first + i) % span))
                .find(|p| !p.is_null())?;
        }
        let mut n = 0;
        let mut p = head;
        while !p.is_null() {
            n += 1;
            p = next(p);
        }
        let mut p = head;
        for _ in 0..crate::util::random_u64() as usize % n {
            p = next(p);
        }
        NonNull::new(p).map(Node)
    }

    // -- resizing ---------------------------------------------------------------------

    /// Makes room for `n` elements without rehashing on the way (pre-sizing, e.g. when
    /// converting from a listpack). Does nothing while rehashing or if the table is big
    /// enough. `n` must be a real element count, not a number from a client.
    pub fn expand(&mut self, n: usize) {
        if self.is_rehashing()
            || n <= self.ht[0].size().saturating_mul(MAX_LOAD)
            || n > isize::MAX as usize / 16
        {
            return;
        }
        self.resize(n.div_ceil(MAX_LOAD));
    }

    /// Starts a resize to the smallest power of two holding `n` elements (at least 4).
    fn resize(&mut self, n: usize) {
        let size = n
            .max(INITIAL_SIZE)
            .checked_next_power_of_two()
            .unwrap_or(1 << 62);
        if self.is_rehashing() || size == self.ht[0].size() {
            return;
        }
        if self.ht[0].size() == 0 {
            self.ht[0] = Table::with_size(size);
            return;
        }
        self.ht[1] = Table::with_size(size);
        self.rehash_idx = 0;
    }

    fn expand_if_needed(&mut self) {
        if self.is_rehashing() {
            return;
        }
        let (used, size) = (self.ht[0].used, self.ht[0].size());
        if size == 0 {
            self.resize(INITIAL_SIZE);
        } else if used >= size.saturating_mul(MAX_LOAD)
            && (resize_allowed() || used >= size.saturating_mul(MAX_LOAD * FORCE_RESIZE_RATIO))
        {
            self.resize(size + 1);
        }
    }

    fn shrink_if_needed(&mut self) {
        if self.is_rehashing() {
            return;
        }
        let (used, size) = (self.ht[0].used, self.ht[0].size());
        if used == 0 {
            // Give the buckets back entirely, as an emptied upstream dict.
            self.ht[0] = Table::empty();
        } else if size > INITIAL_SIZE
            && used * MIN_FILL <= size
            && (resize_allowed() || used * MIN_FILL * FORCE_RESIZE_RATIO <= size)
        {
            self.resize(used);
        }
    }

    #[inline]
    fn rehash_if_rehashing(&mut self) {
        if self.is_rehashing() {
            self.rehash(1);
        }
    }

    /// Moves up to `n` non-empty buckets of ht[0] to ht[1], visiting at most `10 * n`
    /// empty ones; returns true if rehashing is still in progress.
    fn rehash(&mut self, n: usize) -> bool {
        if !self.is_rehashing() {
            return false;
        }
        let mut idx = self.rehash_idx;
        let mut empty_visits = n.saturating_mul(10);
        let shrinking = self.ht[1].size() < self.ht[0].size();
        let m1 = self.ht[1].mask();
        let mut n = n;
        while n > 0 && self.ht[0].used > 0 {
            while self.ht[0].b[idx].is_null() {
                idx += 1;
                empty_visits -= 1;
                if empty_visits == 0 {
                    self.rehash_idx = idx;
                    return true;
                }
            }
            let mut p = std::mem::replace(&mut self.ht[0].b[idx], ptr::null_mut());
            while !p.is_null() {
                let nx = next(p);
                let to = if shrinking {
                    // The low bits of the hash are the old bucket index.
                    idx & m1
                } else {
                    // SAFETY: live node.
                    Self::hash(K::key(unsafe { payload(p) })) & m1
                };
                set_next(p, self.ht[1].b[to]);
                self.ht[1].b[to] = p;
                self.ht[0].used -= 1;
                self.ht[1].used += 1;
                p = nx;
            }
            idx += 1;
            n -= 1;
        }
        if self.ht[0].used == 0 {
            self.ht.swap(0, 1);
            self.ht[1] = Table::empty();
            self.rehash_idx = NOT_REHASHING;
            return false;
        }
        self.rehash_idx = idx;
        true
    }

    /// Does up to `buckets` buckets of incremental rehashing; returns true if more is
    /// left. (Completing it is `while d.rehash_step(100) {}`.)
    pub fn rehash_step(&mut self, buckets: usize) -> bool {
        self.rehash(buckets.max(1))
    }

    /// Bytes allocated: the bucket arrays and the usable size of every node.
    pub fn mem_usage(&self) -> usize {
        (self.ht[0].size() + self.ht[1].size()) * std::mem::size_of::<*mut u8>() + self.node_bytes
    }
}

/// Iterator over the nodes of a [`Dict`].
pub struct Nodes<'a, K: DictKey> {
    d: &'a Dict<K>,
    t: usize,
    i: usize,
    p: *mut u8,
    left: usize,
}

impl<K: DictKey> Iterator for Nodes<'_, K> {
    type Item = Node;

    #[inline]
    fn next(&mut self) -> Option<Node> {
        while self.p.is_null() {
            if self.left == 0 {
                return None;
            }
            let tab = &self.d.ht[self.t];
            if self.i < tab.size() {
                self.p = tab.b[self.i];
                self.i += 1;
            } else if self.t == 0 {
                self.t = 1;
                self.i = 0;
            } else {
                return None;
            }
        }
        let p = self.p;
        self.p = next(p);
        self.left -= 1;
        NonNull::new(p).map(Node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<K: DictKey> ExactSizeIterator for Nodes<'_, K> {}

/// Iterator over the payloads of a [`Dict`].
pub struct Iter<'a, K: DictKey>(Nodes<'a, K>);

impl<'a, K: DictKey> Iterator for Iter<'a, K> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        // SAFETY: the node is live while the dict is borrowed for 'a.
        self.0.next().map(|n| unsafe { payload(n.0.as_ptr()) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<K: DictKey> ExactSizeIterator for Iter<'_, K> {}

impl<'a, K: DictKey> IntoIterator for &'a Dict<K> {
    type Item = &'a [u8];
    type IntoIter = Iter<'a, K>;

    fn into_iter(self) -> Iter<'a, K> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn live() -> isize {
        LIVE.with(|c| c.get())
    }

    /// `[klen u8][key][value]`, as a hash might store field/value pairs.
    struct PairKey;

    impl DictKey for PairKey {
        fn key(p: &[u8]) -> &[u8] {
            &p[1..1 + p[0] as usize]
        }
    }

    fn pair(k: &[u8], v: &[u8]) -> Vec<u8> {
        let mut p = vec![k.len() as u8];
        p.extend_from_slice(k);
        p.extend_from_slice(v);
        p
    }

    impl<K: DictKey> Dict<K> {
        /// Checks every structural invariant; returns the number of nodes seen.
        fn check(&self) -> usize {
            let mut n = 0;
            let mut bytes = 0;
            for t in 0..2 {
                let tab = &self.ht[t];
                assert!(tab.size() == 0 || tab.size().is_power_of_two());
                let mut used = 0;
                for (i, &head) in tab.b.iter().enumerate() {
                    if t == 0 && self.is_rehashing() && i < self.rehash_idx {
                        assert!(head.is_null(), "moved bucket not empty");
                    }
                    let mut p = head;
                    while !p.is_null() {
                        let k = K::key(unsafe { payload(p) });
                        assert_eq!(Self::hash(k) & tab.mask(), i, "wrong bucket");
                        bytes += usable(p);
                        used += 1;
                        p = next(p);
                    }
                }
                assert_eq!(used, tab.used);
                n += used;
            }
            if !self.is_rehashing() {
                assert_eq!(self.ht[1].size(), 0);
            }
            assert_eq!(bytes, self.node_bytes);
            assert_eq!(n, self.len());
            n
        }
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn small_sizes() {
        assert!(std::mem::size_of::<Dict<WholeKey>>() <= 64);
        assert_eq!(std::mem::size_of::<Option<Node>>(), 8);
    }

    #[test]
    fn model_random_ops() {
        let base = live();
        {
            let mut d: Dict<PairKey> = Dict::new();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut rnd = rng(0x1234_5678_9abc_def1);
            let mut saw_rehash = false;
            let mut sizes = HashSet::new();
            for round in 0..80_000u64 {
                // Phases: grow to ~5000 keys, then shrink, then grow again.
                let shrinking = (round / 20_000) % 2 == 1;
                let key = format!("k{}", rnd() % if shrinking { 300 } else { 6000 }).into_bytes();
                let val = format!("v{}", rnd() % 1000).into_bytes();
                match rnd() % 8 {
                    0 | 1 => {
                        let r = d.insert(&pair(&key, &val));
                        match model.get(&key) {
                            Some(old) => {
                                let n = r.unwrap_err();
                                assert_eq!(d.payload(n), &pair(&key, old)[..]);
                            }
                            None => {
                                let n = r.unwrap();
                                assert_eq!(d.payload(n), &pair(&key, &val)[..]);
                                model.insert(key, val);
                            }
                        }
                    }
                    2 => {
                        let before = d.len();
                        let (n, existed) = d.replace_parts(&[&[key.len() as u8], &key, &val]);
                        assert_eq!(existed, model.contains_key(&key));
                        assert_eq!(d.len(), before + !existed as usize);
                        assert_eq!(d.payload(n), &pair(&key, &val)[..]);
                        model.insert(key, val);
                    }
                    3 => {
                        let r = d.insert_parts(&[&[key.len() as u8], &key, &val]);
                        assert_eq!(r.is_ok(), !model.contains_key(&key));
                        model.entry(key).or_insert(val);
                    }
                    4 | 5 if shrinking || rnd().is_multiple_of(3) => {
                        let mut got = None;
                        let had = d.remove_with(&key, |p| got = Some(p.to_vec()));
                        let want = model.remove(&key);
                        assert_eq!(had, want.is_some());
                        assert_eq!(got, want.map(|v| pair(&key, &v)));
                    }
                    6 => {
                        if let Some(n) = d.find_mut(&key) {
                            let p = d.payload_mut(n);
                            let last = p.len() - 1;
                            p[last] = b'X';
                            let v = model.get_mut(&key).unwrap();
                            *v.last_mut().unwrap() = b'X';
                        } else {
                            assert!(!model.contains_key(&key));
                        }
                    }
                    _ => {
                        let got = d.get(&key).map(|p| p.to_vec());
                        assert_eq!(got, model.get(&key).map(|v| pair(&key, v)));
                        assert_eq!(d.contains(&key), model.contains_key(&key));
                    }
                }
                saw_rehash |= d.is_rehashing();
                sizes.insert(d.buckets().0);
                if round % 997 == 0 {
                    assert_eq!(d.check(), model.len());
                }
            }
            assert!(saw_rehash);
            assert!(sizes.len() > 8, "{sizes:?}");
            assert_eq!(d.check(), model.len());
            let all: HashMap<Vec<u8>, Vec<u8>> = d
                .iter()
                .map(|p| (PairKey::key(p).to_vec(), p[1 + p[0] as usize..].to_vec()))
                .collect();
            assert_eq!(all, model);
            assert_eq!(d.iter().len(), model.len());
            assert_eq!(d.nodes().count(), model.len());
            for k in model.keys() {
                assert!(d.remove(k));
                assert!(!d.remove(k));
            }
            while d.rehash_step(100) {}
            assert!(d.is_empty());
            assert_eq!(d.buckets(), (0, 0));
            assert_eq!(d.mem_usage(), 0);
            d.check();
        }
        assert_eq!(live(), base, "leak");
    }

    #[test]
    fn nodes_are_stable_across_resizes() {
        let mut d: Dict<WholeKey> = Dict::new();
        let nodes: Vec<(Node, Vec<u8>)> = (0..2000)
            .map(|i| {
                let m = format!("m{i}").into_bytes();
                (d.insert(&m).unwrap(), m)
            })
            .collect();
        for i in 2000..20_000 {
            d.insert(format!("x{i}").as_bytes()).unwrap();
        }
        for i in 2000..20_000 {
            assert!(d.remove(format!("x{i}").as_bytes()));
        }
        for (n, m) in &nodes {
            assert_eq!(d.payload(*n), &m[..]);
            assert_eq!(d.find(m), Some(*n));
        }
        // remove_node, then the rest by key.
        for (n, m) in nodes.iter().step_by(2) {
            let mut got = Vec::new();
            d.remove_node(*n, |p| got = p.to_vec());
            assert_eq!(&got, m);
        }
        assert_eq!(d.check(), 1000);
    }

    #[test]
    fn replace_keeps_len_and_payload_mut_is_visible() {
        let base = live();
        let mut d: Dict<PairKey> = Dict::with_capacity(100);
        // Room for 100 at up to MAX_LOAD per bucket.
        assert_eq!(d.buckets(), (64, 0));
        let a = d.insert(&pair(b"f", b"one")).unwrap();
        assert_eq!(d.insert(&pair(b"f", b"two")), Err(a));
        assert_eq!(d.get(b"f"), Some(&pair(b"f", b"one")[..]));
        let (b, existed) = d.replace(&pair(b"f", b"three"));
        assert!(existed);
        assert_eq!(d.len(), 1);
        assert_eq!(d.payload(b), &pair(b"f", b"three")[..]);
        d.payload_mut(b)[2..].copy_from_slice(b"THREE");
        assert_eq!(d.get(b"f"), Some(&pair(b"f", b"THREE")[..]));
        let (_, existed) = d.replace(&pair(b"g", b""));
        assert!(!existed);
        assert_eq!(d.len(), 2);
        d.check();
        drop(d);
        assert_eq!(live(), base, "leak");
    }

    #[test]
    fn clone_eq_drop_clear() {
        let base = live();
        let mut d: Dict<WholeKey> = Dict::new();
        for i in 0..1000 {
            d.insert(format!("m{i}").as_bytes()).unwrap();
        }
        // Clone mid-rehash too.
        for i in 1000..1030 {
            d.insert(format!("m{i}").as_bytes()).unwrap();
        }
        assert!(d.is_rehashing());
        let c = d.clone();
        assert_eq!(live(), base + 2060);
        assert_eq!(c.check(), 1030);
        assert_eq!(c, d);
        // Usable sizes may differ slightly (reused chunks), not the shape.
        assert_eq!(c.buckets(), d.buckets());
        assert!(c.mem_usage().abs_diff(d.mem_usage()) < d.mem_usage() / 100);
        assert_ne!(c.find(b"m5"), d.find(b"m5"));
        let mut e = c.clone();
        e.remove(b"m5");
        assert_ne!(e, d);
        e.insert(b"other").unwrap();
        assert_ne!(e, d);
        assert_eq!(format!("{e:?}"), "Dict { len: 1030 }");
        drop(c);
        e.clear();
        assert!(e.is_empty());
        assert_eq!(e.mem_usage(), 0);
        assert!(e.random().is_none());
        assert_eq!(e.iter().count(), 0);
        e.insert(b"again").unwrap();
        assert_eq!(e.get(b"again"), Some(&b"again"[..]));
        drop(e);
        drop(d);
        assert_eq!(live(), base, "leak");
        let empty: Dict<WholeKey> = Dict::default();
        assert_eq!(empty.clone(), empty);
    }

    #[test]
    fn random_hits_everything() {
        let mut d: Dict<WholeKey> = Dict::new();
        assert!(d.random().is_none());
        for i in 0..50 {
            d.insert(format!("k{i}").as_bytes()).unwrap();
        }
        let mut seen = HashSet::new();
        for _ in 0..5000 {
            let n = d.random().unwrap();
            seen.insert(d.payload(n).to_vec());
        }
        assert_eq!(seen.len(), 50);
        // Mid-rehash and sparse.
        for i in 0..5000 {
            d.insert(format!("x{i}").as_bytes()).unwrap();
        }
        for i in 0..5000 {
            d.remove(format!("x{i}").as_bytes());
            if i % 97 == 0 {
                let n = d.random().unwrap();
                assert!(d.contains(d.payload(n)));
            }
        }
        for _ in 0..1000 {
            let n = d.random().unwrap();
            assert!(d.contains(d.payload(n)));
        }
    }

    fn full_scan<K: DictKey>(d: &Dict<K>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut c = 0;
        loop {
            c = d.scan(c, &mut |p| out.push(p.to_vec()));
            if c == 0 {
                return out;
            }
        }
    }

    #[test]
    fn scan_full_no_duplicates_when_stable() {
        let mut d: Dict<WholeKey> = Dict::new();
        assert!(full_scan(&d).is_empty());
        for i in 0..3000 {
            d.insert(format!("k{i}").as_bytes()).unwrap();
        }
        for stage in 0..2 {
            let got = full_scan(&d);
            let set: HashSet<_> = got.iter().cloned().collect();
            assert_eq!(set.len(), 3000, "stage {stage}");
            if !d.is_rehashing() {
                assert_eq!(got.len(), 3000, "no duplicates without resize");
            }
            while d.rehash_step(100) {}
        }
    }

    /// SCAN's guarantee: an element present for the whole iteration is returned at
    /// least once, even across grows and shrinks between the calls.
    #[test]
    fn scan_guarantee_across_resizes() {
        let mut rnd = rng(0x9e37_79b9_7f4a_7c15);
        let mut resized_trials = 0;
        for trial in 0..30 {
            let mut d: Dict<WholeKey> = Dict::new();
            let n = 200 + (rnd() % 3000) as usize;
            for i in 0..n {
                d.insert(format!("stable:{i}").as_bytes()).unwrap();
            }
            let mut extra: Vec<Vec<u8>> = Vec::new();
            let mut seen = HashSet::new();
            let mut cursor = 0u64;
            let mut grows = true;
            let mut sizes = HashSet::new();
            loop {
                for _ in 0..1 + rnd() % 20 {
                    cursor = d.scan(cursor, &mut |p| {
                        seen.insert(p.to_vec());
                    });
                    if cursor == 0 {
                        break;
                    }
                }
                if cursor == 0 {
                    break;
                }
                if rnd().is_multiple_of(8) {
                    grows = !grows;
                }
                for _ in 0..(rnd() % 400) {
                    if grows || extra.is_empty() {
                        let k = format!("extra:{}", rnd()).into_bytes();
                        if d.insert(&k).is_ok() {
                            extra.push(k);
                        }
                    } else {
                        let i = (rnd() as usize) % extra.len();
                        assert!(d.remove(&extra.swap_remove(i)));
                    }
                }
                if rnd().is_multiple_of(4) {
                    d.rehash_step((rnd() % 50) as usize);
                }
                sizes.insert(d.buckets());
            }
            for i in 0..n {
                assert!(
                    seen.contains(format!("stable:{i}").as_bytes()),
                    "trial {trial}: stable:{i} missed"
                );
            }
            d.check();
            if sizes.len() > 1 {
                resized_trials += 1;
            }
        }
        assert!(resized_trials >= 20, "only {resized_trials} of 30 resized");
    }

    #[test]
    fn scan_across_shrink() {
        for trial in 0..10u64 {
            let mut d: Dict<WholeKey> = Dict::new();
            for i in 0..20_000 {
                d.insert(format!("x{i}").as_bytes()).unwrap();
            }
            for i in 0..100 {
                d.insert(format!("s{i}").as_bytes()).unwrap();
            }
            while d.rehash_step(100) {}
            let mut seen = HashSet::new();
            let mut cursor = 0;
            let mut step = 0;
            loop {
                cursor = d.scan(cursor, &mut |p| {
                    seen.insert(p.to_vec());
                });
                if cursor == 0 {
                    break;
                }
                step += 1;
                if step == 50 + trial * 300 {
                    for i in 0..20_000 {
                        d.remove(format!("x{i}").as_bytes());
                    }
                }
            }
            for i in 0..100 {
                assert!(seen.contains(format!("s{i}").as_bytes()));
            }
        }
    }

    /// Bytes per element for 100k 10-byte members (about 24 for the node + 8 of bucket).
    #[test]
    fn mem_usage_per_member() {
        let n = 100_000;
        let mut d: Dict<WholeKey> = Dict::new();
        for i in 0..n {
            d.insert(format!("m{:09}", i).as_bytes()).unwrap();
        }
        while d.rehash_step(100) {}
        let per = d.mem_usage() as f64 / n as f64;
        println!(
            "dict: {n} 10-byte members: {per:.2} bytes/member (buckets {:?})",
            d.buckets()
        );
        assert_eq!(d.check(), n);
        let t = std::time::Instant::now();
        let mut hits = 0;
        for i in 0..n {
            hits += d.contains(format!("m{:09}", i).as_bytes()) as usize;
        }
        assert_eq!(hits, n);
        println!(
            "dict: lookups (with format!) {:.0} ns/op",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        // One node (24 usable bytes with libc malloc, jemalloc's 32-byte class) plus 4 to 8
        // bytes of bucket (load 1 to 2).
        let node = crate::zmalloc::usable_for(24) as f64;
        assert!((node + 2.0..=node + 12.0).contains(&per), "{per}");
        let mut d2: Dict<WholeKey> = Dict::with_capacity(n);
        for i in 0..n {
            d2.insert(format!("m{:09}", i).as_bytes()).unwrap();
        }
        assert!(!d2.is_rehashing());
        assert_eq!(d2.buckets(), d.buckets());
        assert!(d2.mem_usage().abs_diff(d.mem_usage()) < d.mem_usage() / 100);
    }
}
