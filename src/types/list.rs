//! The list value type (upstream's `t_list.c` list API and `quicklist.c`).
//!
//! A small list is one [`Listpack`] (OBJECT ENCODING `listpack`); a large one is a
//! quicklist (`quicklist`): a deque of nodes, each a listpack filled up to the limit set by
//! `list-max-listpack-size` (negative: a byte limit per node, -1 = 4KB ... -5 = 64KB;
//! positive: a number of entries per node, with an 8KB safety limit), or a "plain" node
//! holding one element too large for a listpack node. Conversions follow upstream:
//! listpack -> quicklist before an addition would exceed one node's limit, quicklist ->
//! listpack when the list has a single packed node under half the limit (hysteresis).
//! Node filling, splitting and merging follow `quicklist.c` so that encodings change at
//! the same moments as upstream's.
//!
//! `list-compress-depth` D > 0 (taken by a quicklist when it is created, as upstream):
//! every node but the D nodes at each end is kept LZF-compressed when that saves enough
//! (listpacks of at least 48 bytes, at least 8 bytes saved; plain nodes too). A node is
//! decompressed when an operation modifies it and compressed again afterwards; readers
//! decompress into a temporary copy. The window is re-checked after every change that
//! adds or removes nodes or touches an inner node.

use std::collections::VecDeque;

use crate::object::Encoding;
use crate::types::listpack::{Listpack, LpEntry};
use crate::types::thin::Thin;

/// Node byte limits for negative fill values (-1 .. -5).
const OPT_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Byte limit of a multi-element node when the fill is a count.
const SIZE_SAFETY_LIMIT: usize = 8192;
/// Over-estimate of an entry's overhead when deciding whether it fits a node.
const SIZE_ESTIMATE_OVERHEAD: usize = 8;
/// Bounds of a quicklist's own fill (16 bits, signed).
const FILL_MAX: i32 = (1 << 15) - 1;
/// Bounds of a quicklist's compress depth (16 bits).
const COMPRESS_MAX: i32 = (1 << 16) - 1;
/// Smallest node worth compressing.
const MIN_COMPRESS_BYTES: usize = 48;
/// Compression must save more than this many bytes to be kept.
const MIN_COMPRESS_IMPROVE: usize = 8;
/// Header of a compressed node: uncompressed size (u32), count (u32), plain flag (u8).
const LZF_HDR: usize = 9;
/// Nodes just outside each end's window checked after a change: no operation pushes more
/// than two nodes out of a window at once.
const WINDOW_BAND: usize = 2;

/// The list settings an operation takes from the server's config.
#[derive(Clone, Copy, Debug)]
pub struct ListOpts {
    /// `list-max-listpack-size`.
    pub fill: i32,
    /// `list-compress-depth`.
    pub depth: i32,
}

/// An element read from a list: listpacks store canonical integers as integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> Elem<'a> {
    #[inline]
    fn from_lp(e: LpEntry<'a>) -> Elem<'a> {
        match e {
            LpEntry::Int(n) => Elem::Int(n),
            LpEntry::Str(s) => Elem::Str(s),
        }
    }

    /// Whether the element equals the string `s` (as upstream's `lpCompare`).
    pub fn eq_bytes(&self, s: &[u8]) -> bool {
        match self {
            Elem::Str(b) => *b == s,
            Elem::Int(n) => {
                let mut buf = crate::reply::itoa_buf();
                crate::reply::fmt_i64(&mut buf, *n) == s
            }
        }
    }

    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Elem::Str(b) => b.to_vec(),
            Elem::Int(n) => n.to_string().into_bytes(),
        }
    }
}

/// `(byte limit, count limit)` of a node for `fill` (`usize::MAX` / `u32::MAX` = none).
fn node_limit(fill: i32) -> (usize, usize) {
    if fill >= 0 {
        (usize::MAX, if fill == 0 { 1 } else { fill as usize })
    } else {
        (neg_fill_limit(fill), u32::MAX as usize)
    }
}

fn neg_fill_limit(fill: i32) -> usize {
    let off = (fill.unsigned_abs() as usize - 1).min(OPT_LEVEL.len() - 1);
    OPT_LEVEL[off]
}

/// Whether a node of `new_sz` bytes and `new_count` entries would exceed the limit.
fn exceeds_limit(fill: i32, new_sz: usize, new_count: usize) -> bool {
    let (sz_limit, count_limit) = node_limit(fill);
    if sz_limit != usize::MAX {
        new_sz > sz_limit
    } else {
        new_sz > SIZE_SAFETY_LIMIT || new_count > count_limit
    }
}

/// Whether an element of `sz` bytes gets a plain node of its own.
fn is_large(sz: usize, fill: i32) -> bool {
    if fill >= 0 {
        sz > SIZE_SAFETY_LIMIT
    } else {
        sz > neg_fill_limit(fill)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Packed(Listpack),
    Plain(Box<[u8]>),
    /// A compressed packed or plain node: [`LZF_HDR`] bytes of header, then the LZF data
    /// of the listpack's bytes or of the element.
    Lzf(Box<[u8]>),
}

fn hdr_u32(b: &[u8], at: usize) -> usize {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    }
}

impl Node {
    fn count(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.len(),
            Node::Plain(_) => 1,
            Node::Lzf(b) => hdr_u32(b, 4),
        }
    }

    /// Uncompressed size in bytes.
    fn sz(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.total_bytes(),
            Node::Plain(b) => b.len(),
            Node::Lzf(b) => hdr_u32(b, 0),
        }
    }

    fn is_plain(&self) -> bool {
        match self {
            Node::Plain(_) => true,
            Node::Lzf(b) => b.get(8) == Some(&1),
            Node::Packed(_) => false,
        }
    }

    #[cfg(test)]
    fn is_compressed(&self) -> bool {
        matches!(self, Node::Lzf(_))
    }

    /// Upstream's `__quicklistCompressNode`: compresses the node if it is big enough and
    /// compression saves enough. Returns whether the node is compressed.
    fn compress(&mut self) -> bool {
        let (count, plain) = (self.count() as u32, self.is_plain());
        let raw: &[u8] = match self {
            Node::Lzf(_) => return true,
            Node::Packed(lp) => lp.as_bytes(),
            Node::Plain(b) => b,
        };
        let sz = raw.len();
        if sz < MIN_COMPRESS_BYTES || sz > u32::MAX as usize {
            return false;
        }
        let mut buf = Vec::with_capacity(LZF_HDR + sz);
        buf.extend_from_slice(&(sz as u32).to_le_bytes());
        buf.extend_from_slice(&count.to_le_bytes());
        buf.push(plain as u8);
        match rdb::lzf::compress(raw, &mut buf, sz) {
            Some(n) if n + MIN_COMPRESS_IMPROVE < sz => {}
            _ => return false,
        }
        *self = Node::Lzf(buf.into_boxed_slice());
        true
    }

    /// The uncompressed node of a compressed one.
    fn decompressed(b: &[u8]) -> Node {
        let sz = hdr_u32(b, 0);
        let raw = b
            .get(LZF_HDR..)
            .and_then(|d| rdb::lzf::decompress(d, sz))
            .expect("quicklist node decompresses");
        if b.get(8) == Some(&1) {
            Node::Plain(raw.into_boxed_slice())
        } else {
            Node::Packed(Listpack::from_bytes(raw).expect("quicklist node is a listpack"))
        }
    }

    /// Decompresses the node in place (upstream's `__quicklistDecompressNode`).
    fn decompress(&mut self) {
        if let Node::Lzf(b) = self {
            *self = Node::decompressed(b);
        }
    }

    fn single(v: &[u8], fill: i32) -> Node {
        if is_large(v.len(), fill) {
            Node::Plain(v.into())
        } else {
            let mut lp = Listpack::new();
            lp.append(v);
            Node::Packed(lp)
        }
    }

    /// Element `offset` of an uncompressed node.
    fn elem(&self, offset: usize) -> Option<Elem<'_>> {
        match self {
            Node::Plain(b) => (offset == 0).then_some(Elem::Str(b)),
            Node::Packed(lp) => {
                let p = lp.seek(offset as i64)?;
                Some(Elem::from_lp(lp.get(p)))
            }
            Node::Lzf(_) => None,
        }
    }

    fn mem_usage(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.mem_usage(),
            Node::Plain(b) | Node::Lzf(b) => usable(b.as_ptr()),
        }
    }
}

fn allow_insert(node: Option<&Node>, fill: i32, sz: usize) -> bool {
    match node {
        Some(n) if !n.is_plain() && !is_large(sz, fill) => {
            let new_sz = n
                .sz()
                .saturating_add(sz)
                .saturating_add(SIZE_ESTIMATE_OVERHEAD);
            !exceeds_limit(fill, new_sz, n.count() + 1)
        }
        _ => false,
    }
}

fn allow_merge(a: Option<&Node>, b: Option<&Node>, fill: i32) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if !a.is_plain() && !b.is_plain() => {
            let merged = (a.sz() + b.sz()).saturating_sub(7);
            !exceeds_limit(fill, merged, a.count() + b.count())
        }
        _ => false,
    }
}

fn push_elem(lp: &mut Listpack, e: Elem<'_>, head: bool) {
    let mut buf = crate::reply::itoa_buf();
    let b: &[u8] = match e {
        Elem::Str(s) => s,
        Elem::Int(n) => crate::reply::fmt_i64(&mut buf, n),
    };
    if head {
        lp.prepend(b);
    } else {
        lp.append(b);
    }
}

/// A copy of the listpack without the entries outside `[start, start+count)`.
fn lp_slice(lp: &Listpack, start: usize, count: usize) -> Listpack {
    let mut out = Listpack::new();
    let mut p = lp.seek(start as i64);
    let mut left = count;
    while let (Some(pos), true) = (p, left > 0) {
        push_elem(&mut out, Elem::from_lp(lp.get(pos)), false);
        p = lp.next(pos);
        left -= 1;
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
struct Quicklist {
    nodes: VecDeque<Node>,
    count: usize,
    fill: i32,
    /// Compress depth (0 = no compression).
    depth: usize,
}

impl Quicklist {
    fn new(fill: i32, depth: i32) -> Quicklist {
        Quicklist {
            nodes: VecDeque::new(),
            count: 0,
            fill: fill.clamp(-5, FILL_MAX),
            depth: depth.clamp(0, COMPRESS_MAX) as usize,
        }
    }

    /// Decompresses node `ni` in place before it is modified.
    fn raw_at(&mut self, ni: usize) {
        if let Some(n) = self.nodes.get_mut(ni) {
            n.decompress();
        }
    }

    /// Whether node `ni` is among the `depth` nodes at either end.
    #[cfg(test)]
    fn in_window(&self, ni: usize) -> bool {
        ni < self.depth || ni + self.depth >= self.nodes.len()
    }

    /// Restores the compression invariant after a change (upstream's
    /// `__quicklistCompress`): the nodes in the window at each end uncompressed, the
    /// nodes just outside it and the touched nodes `lo..=hi` compressed when possible.
    fn fix(&mut self, lo: usize, hi: usize) {
        let d = self.depth;
        if d == 0 {
            return;
        }
        let len = self.nodes.len();
        for i in (0..d.min(len)).chain(len.saturating_sub(d)..len) {
            self.nodes[i].decompress();
        }
        if len <= 2 * d {
            return;
        }
        let inner = d..len - d;
        let head_band = d..(d + WINDOW_BAND).min(inner.end);
        let tail_band = (inner.end.saturating_sub(WINDOW_BAND)).max(d)..inner.end;
        let touched = lo.max(d)..hi.saturating_add(1).min(inner.end);
        for i in head_band.chain(tail_band).chain(touched) {
            self.nodes[i].compress();
        }
    }

    fn push(&mut self, v: &[u8], head: bool) {
        let fill = self.fill;
        self.count += 1;
        if is_large(v.len(), fill) {
            let n = Node::Plain(v.into());
            if head {
                self.nodes.push_front(n)
            } else {
                self.nodes.push_back(n)
            }
            self.fix(1, 0);
            return;
        }
        if self.depth > 0 {
            let end = if head {
                0
            } else {
                self.nodes.len().saturating_sub(1)
            };
            self.raw_at(end);
        }
        let end = if head {
            self.nodes.front_mut()
        } else {
            self.nodes.back_mut()
        };
        if allow_insert(end.as_deref(), fill, v.len()) {
            if let Some(Node::Packed(lp)) = end {
                if head {
                    lp.prepend(v)
                } else {
                    lp.append(v)
                }
                return;
            }
        }
        let n = Node::single(v, fill);
        if head {
            self.nodes.push_front(n)
        } else {
            self.nodes.push_back(n)
        }
        self.fix(1, 0);
    }

    fn pop(&mut self, head: bool) -> Option<(Vec<u8>, bool)> {
        let idx = if head {
            0
        } else {
            self.nodes.len().checked_sub(1)?
        };
        self.raw_at(idx);
        let node = self.nodes.get_mut(idx)?;
        let out = match node {
            Node::Plain(b) => {
                let v = b.to_vec();
                self.nodes.remove(idx);
                self.count -= 1;
                self.fix(1, 0);
                return Some((v, true));
            }
            Node::Lzf(_) => return None,
            Node::Packed(lp) => {
                let p = if head { lp.first() } else { lp.last() }?;
                let out = match lp.get(p) {
                    LpEntry::Int(n) => (n.to_string().into_bytes(), false),
                    LpEntry::Str(s) => (s.to_vec(), true),
                };
                lp.delete(p);
                out
            }
        };
        if node.count() == 0 {
            self.nodes.remove(idx);
            self.fix(1, 0);
        }
        self.count -= 1;
        Some(out)
    }

    /// The node index and offset in it of element `index` (negative from the tail).
    fn locate(&self, index: i64) -> Option<(usize, usize)> {
        let i = if index < 0 {
            (self.count as i64).checked_add(index)?
        } else {
            index
        };
        if i < 0 || i as u64 >= self.count as u64 {
            return None;
        }
        let i = i as usize;
        if i <= (self.count - 1) / 2 {
            let mut acc = 0;
            for (ni, n) in self.nodes.iter().enumerate() {
                if acc + n.count() > i {
                    return Some((ni, i - acc));
                }
                acc += n.count();
            }
        } else {
            let mut acc = self.count;
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                acc -= n.count();
                if acc <= i {
                    return Some((ni, i - acc));
                }
            }
        }
        None
    }

    /// Merges node `a` with node `a + 1` into `a`.
    fn merge_at(&mut self, a: usize) {
        self.raw_at(a);
        self.raw_at(a + 1);
        let Some(b) = self.nodes.remove(a + 1) else {
            return;
        };
        if let (Some(Node::Packed(la)), Node::Packed(lb)) = (self.nodes.get_mut(a), b) {
            if la.len() >= lb.len() {
                let mut p = lb.first();
                while let Some(pos) = p {
                    push_elem(la, Elem::from_lp(lb.get(pos)), false);
                    p = lb.next(pos);
                }
            } else {
                let mut lb = lb;
                let mut p = la.last();
                while let Some(pos) = p {
                    push_elem(&mut lb, Elem::from_lp(la.get(pos)), true);
                    p = la.prev(pos);
                }
                *la = lb;
            }
        }
    }

    fn allow_merge_at(&self, a: usize, b: usize) -> bool {
        allow_merge(self.nodes.get(a), self.nodes.get(b), self.fill)
    }

    /// Upstream's `_quicklistMergeNodes` around node `c`; returns the center's new index.
    fn merge_around(&mut self, mut c: usize) -> usize {
        if c >= 2 && self.allow_merge_at(c - 1, c - 2) {
            self.merge_at(c - 2);
            c -= 1;
        }
        if self.allow_merge_at(c + 1, c + 2) {
            self.merge_at(c + 1);
        }
        let target = if c >= 1 && self.allow_merge_at(c, c - 1) {
            self.merge_at(c - 1);
            c - 1
        } else {
            c
        };
        if self.allow_merge_at(target, target + 1) {
            self.merge_at(target);
        }
        target
    }

    /// Splits node `ni` at `offset`: with `after`, the node keeps `[0, offset]` and the
    /// returned node has the rest; else the returned node has `[0, offset)` and the node
    /// keeps the rest.
    fn split(&mut self, ni: usize, offset: usize, after: bool) -> Node {
        self.raw_at(ni);
        let Some(Node::Packed(lp)) = self.nodes.get_mut(ni) else {
            return Node::Packed(Listpack::new());
        };
        let n = lp.len();
        let (keep, give) = if after {
            ((0, offset + 1), (offset + 1, n.saturating_sub(offset + 1)))
        } else {
            ((offset, n - offset), (0, offset))
        };
        let new = lp_slice(lp, give.0, give.1);
        *lp = lp_slice(lp, keep.0, keep.1);
        Node::Packed(new)
    }

    /// Upstream's `_quicklistInsert`: inserts `v` before/after element `offset` of node
    /// `ni`.
    fn insert(&mut self, ni: usize, offset: usize, v: &[u8], after: bool) {
        self.insert_inner(ni, offset, v, after);
        self.fix(ni.saturating_sub(2), ni + 3);
    }

    fn insert_inner(&mut self, ni: usize, offset: usize, v: &[u8], after: bool) {
        let fill = self.fill;
        let sz = v.len();
        let Some(node) = self.nodes.get(ni) else {
            return;
        };
        let cnt = node.count();
        let full = !allow_insert(Some(node), fill, sz);
        let at_tail = after && offset + 1 == cnt;
        let at_head = !after && offset == 0;
        let avail_next = at_tail && allow_insert(self.nodes.get(ni + 1), fill, sz);
        let avail_prev = at_head && ni > 0 && allow_insert(self.nodes.get(ni - 1), fill, sz);
        let plain = node.is_plain();
        self.count += 1;
        if is_large(sz, fill) {
            let pos = if after { ni + 1 } else { ni };
            if plain || at_tail || at_head {
                self.nodes.insert(pos, Node::Plain(v.into()));
            } else {
                let new = self.split(ni, offset, after);
                if after {
                    self.nodes.insert(ni + 1, Node::Plain(v.into()));
                    self.nodes.insert(ni + 2, new);
                } else {
                    self.nodes.insert(ni, new);
                    self.nodes.insert(ni + 1, Node::Plain(v.into()));
                }
            }
            return;
        }
        if !full {
            self.raw_at(ni);
            if let Some(Node::Packed(lp)) = self.nodes.get_mut(ni) {
                if let Some(p) = lp.seek(offset as i64) {
                    lp.insert(p, v, after);
                }
            }
        } else if at_tail && avail_next {
            self.raw_at(ni + 1);
            if let Some(Node::Packed(lp)) = self.nodes.get_mut(ni + 1) {
                lp.prepend(v);
            }
        } else if at_head && avail_prev {
            self.raw_at(ni - 1);
            if let Some(Node::Packed(lp)) = self.nodes.get_mut(ni - 1) {
                lp.append(v);
            }
        } else if at_tail || at_head {
            let n = Node::single(v, fill);
            self.nodes.insert(if after { ni + 1 } else { ni }, n);
        } else {
            let mut new = self.split(ni, offset, after);
            if let Node::Packed(lp) = &mut new {
                if after {
                    lp.prepend(v)
                } else {
                    lp.append(v)
                }
            }
            let center = if after {
                self.nodes.insert(ni + 1, new);
                ni
            } else {
                self.nodes.insert(ni, new);
                ni + 1
            };
            self.merge_around(center);
        }
    }

    /// Removes the whole node `ni`.
    fn del_node(&mut self, ni: usize) {
        if let Some(n) = self.nodes.remove(ni) {
            self.count -= n.count();
        }
    }

    /// Deletes element `offset` of node `ni`; removes the node when it empties. Returns
    /// whether the node is gone.
    fn del_index(&mut self, ni: usize, offset: usize) -> bool {
        self.raw_at(ni);
        let gone = match self.nodes.get_mut(ni) {
            Some(Node::Packed(lp)) => {
                if let Some(p) = lp.seek(offset as i64) {
                    lp.delete(p);
                    self.count -= 1;
                }
                lp.is_empty()
            }
            Some(Node::Plain(_)) => {
                self.del_node(ni);
                return true;
            }
            Some(Node::Lzf(_)) | None => return false,
        };
        if gone {
            self.nodes.remove(ni);
        }
        gone
    }

    /// Upstream's `quicklistReplaceEntry` for element `offset` of node `ni`.
    fn replace(&mut self, ni: usize, offset: usize, v: &[u8]) {
        self.raw_at(ni);
        self.replace_inner(ni, offset, v);
        self.fix(ni.saturating_sub(2), ni + 3);
    }

    fn replace_inner(&mut self, ni: usize, offset: usize, v: &[u8]) {
        let fill = self.fill;
        let sz = v.len();
        let Some(node) = self.nodes.get_mut(ni) else {
            return;
        };
        if let Node::Packed(lp) = node {
            // Valkey 9.1 replaces in place whenever the element is not large, even past
            // the node's limit (measured on the reference).
            if !is_large(sz, fill) {
                if let Some(p) = lp.seek(offset as i64) {
                    lp.replace(p, v);
                    return;
                }
            }
        } else if let Node::Plain(b) = node {
            if is_large(sz, fill) {
                *b = v.into();
            } else {
                self.insert(ni, 0, v, true);
                // The new element went after the plain node (in it a new node or the
                // next one), so the plain node is still at `ni`.
                self.del_node(ni);
            }
            return;
        }
        // The node is full or the element is large: put the element in a node of its own
        // after the replaced one, splitting the node after it.
        let cnt = self.nodes[ni].count();
        let split = (offset + 1 != cnt).then(|| self.split(ni, offset, true));
        self.nodes.insert(ni + 1, Node::single(v, fill));
        if let Some(s) = split {
            self.nodes.insert(ni + 2, s);
        }
        self.count += 1;
        if self.nodes[ni].count() == 1 {
            self.del_node(ni);
        } else {
            let last = self.nodes[ni].count() - 1;
            self.del_index(ni, last);
            self.merge_around(ni + 1);
        }
    }

    /// Upstream's `quicklistDelRange`.
    fn del_range(&mut self, start: i64, count: usize) {
        if count == 0 {
            return;
        }
        let Some((mut ni, mut offset)) = self.locate(start) else {
            return;
        };
        let mut extent = if start >= 0 {
            count.min(self.count - start as usize)
        } else {
            count.min(start.unsigned_abs() as usize)
        };
        let first = ni;
        while extent > 0 {
            let Some(node) = self.nodes.get_mut(ni) else {
                break;
            };
            let ncount = node.count();
            let del = if offset == 0 && extent >= ncount {
                ncount
            } else {
                (ncount - offset).min(extent)
            };
            if del < ncount {
                node.decompress();
            }
            match node {
                Node::Packed(lp) if del < ncount => {
                    lp.delete_range(offset as i64, del);
                    self.count -= del;
                    ni += 1;
                }
                _ => self.del_node(ni),
            }
            extent -= del;
            offset = 0;
        }
        self.fix(first.saturating_sub(1), first + 1);
    }

    #[inline]
    fn for_each(&self, from: usize, reverse: bool, mut f: impl FnMut(Elem<'_>) -> bool) {
        let Some((mut ni, offset)) = self.locate(from as i64) else {
            return;
        };
        let mut offset = Some(offset);
        let mut tmp;
        loop {
            let Some(mut node) = self.nodes.get(ni) else {
                return;
            };
            if let Node::Lzf(b) = node {
                tmp = Node::decompressed(b);
                node = &tmp;
            }
            match node {
                Node::Lzf(_) => return,
                Node::Plain(b) => {
                    if !f(Elem::Str(b)) {
                        return;
                    }
                }
                Node::Packed(lp) => {
                    let mut p = match offset {
                        Some(o) => lp.seek(o as i64),
                        None if reverse => lp.last(),
                        None => lp.first(),
                    };
                    while let Some(pos) = p {
                        if !f(Elem::from_lp(lp.get(pos))) {
                            return;
                        }
                        p = if reverse { lp.prev(pos) } else { lp.next(pos) };
                    }
                }
            }
            offset = None;
            if reverse {
                if ni == 0 {
                    return;
                }
                ni -= 1;
            } else {
                ni += 1;
            }
        }
    }

    /// LREM: removes up to `limit` (0 = all) elements equal to `v`, from the tail when
    /// `reverse`.
    fn remove(&mut self, v: &[u8], limit: usize, reverse: bool) -> usize {
        let mut removed = 0;
        let mut ni = if reverse { self.nodes.len() } else { 0 };
        loop {
            if reverse {
                if ni == 0 {
                    break;
                }
                ni -= 1;
            } else if ni >= self.nodes.len() {
                break;
            }
            let mut node_gone = false;
            let mut done = false;
            let mut emptied = false;
            // A compressed node is searched uncompressed; when nothing is removed from it,
            // its compressed form is put back as it was.
            let saved = match &self.nodes[ni] {
                Node::Lzf(b) => {
                    let raw = Node::decompressed(b);
                    Some(std::mem::replace(&mut self.nodes[ni], raw))
                }
                _ => None,
            };
            let before = removed;
            match &mut self.nodes[ni] {
                Node::Lzf(_) => {}
                Node::Plain(b) => {
                    if &b[..] == v {
                        node_gone = true;
                        removed += 1;
                        done = limit != 0 && removed == limit;
                    }
                }
                Node::Packed(lp) => {
                    let mut p = if reverse { lp.last() } else { lp.first() };
                    while let Some(pos) = p {
                        if Elem::from_lp(lp.get(pos)).eq_bytes(v) {
                            let next = lp.delete(pos);
                            removed += 1;
                            self.count -= 1;
                            if limit != 0 && removed == limit {
                                done = true;
                                break;
                            }
                            p = if reverse {
                                match next {
                                    Some(n) => lp.prev(n),
                                    None => lp.last(),
                                }
                            } else {
                                next
                            };
                        } else {
                            p = if reverse { lp.prev(pos) } else { lp.next(pos) };
                        }
                    }
                    emptied = lp.is_empty();
                }
            }
            if node_gone {
                self.del_node(ni);
            } else if emptied {
                self.nodes.remove(ni);
            } else {
                if let Some(orig) = saved {
                    if removed == before {
                        self.nodes[ni] = orig;
                    } else {
                        self.nodes[ni].compress();
                    }
                }
                if !reverse {
                    ni += 1;
                }
            }
            if done {
                break;
            }
        }
        self.fix(1, 0);
        removed
    }

    fn mem_usage(&self) -> usize {
        let mut total = self.nodes.capacity() * std::mem::size_of::<Node>();
        for n in &self.nodes {
            total += n.mem_usage();
        }
        total + std::mem::size_of::<Quicklist>()
    }

    /// [`Quicklist::mem_usage`] measuring at most `samples` nodes from the head and
    /// extrapolating to the others, as upstream's MEMORY USAGE does for quicklists.
    fn mem_usage_sampled(&self, samples: usize) -> usize {
        let n = self.nodes.len();
        let take = samples.clamp(1, n.max(1));
        if take >= n {
            return self.mem_usage();
        }
        let sum: usize = self.nodes.iter().take(take).map(|x| x.mem_usage()).sum();
        let base =
            self.nodes.capacity() * std::mem::size_of::<Node>() + std::mem::size_of::<Quicklist>();
        base + (sum as f64 / take as f64 * n as f64) as usize
    }
}

fn usable(p: *const u8) -> usize {
    // SAFETY: `p` is the start of a live heap allocation (a non-empty boxed slice).
    unsafe { crate::zmalloc::usable_size(p) }
}

/// A quicklist node as RDB saves it (see [`List::raw_nodes`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RawNode<'a> {
    /// The listpack's bytes.
    Packed(&'a [u8]),
    /// The element of a plain node.
    Plain(&'a [u8]),
    /// An LZF-compressed node: whether it is plain, its uncompressed size and the LZF data.
    Lzf {
        plain: bool,
        sz: usize,
        data: &'a [u8],
    },
}

impl Node {
    fn raw(&self) -> RawNode<'_> {
        match self {
            Node::Packed(lp) => RawNode::Packed(lp.as_bytes()),
            Node::Plain(b) => RawNode::Plain(b),
            Node::Lzf(b) => RawNode::Lzf {
                plain: self.is_plain(),
                sz: self.sz(),
                data: b.get(LZF_HDR..).unwrap_or_default(),
            },
        }
    }
}

/// A node handed to [`List::from_nodes`] (RDB loading).
#[derive(Debug)]
pub enum LoadNode {
    /// A validated, non-empty listpack.
    Packed(Listpack),
    /// One element stored alone.
    Plain(Vec<u8>),
}

/// The encodings, owned (`Repr<Listpack, Box<Quicklist>>`) or borrowed.
enum Repr<L, Q> {
    Lp(L),
    Ql(Q),
}

/// A list value: one pointer (see [`super::thin`]).
#[derive(Clone, Debug, PartialEq)]
pub struct List {
    t: Thin<Listpack, Quicklist>,
}

impl Default for List {
    fn default() -> Self {
        List::new()
    }
}

impl List {
    /// An empty listpack-encoded list.
    pub fn new() -> List {
        List::from_own(Repr::Lp(Listpack::new()))
    }

    fn from_own(r: Repr<Listpack, Box<Quicklist>>) -> List {
        List {
            t: match r {
                Repr::Lp(lp) => Thin::small(lp),
                Repr::Ql(q) => Thin::big(*q),
            },
        }
    }

    fn set_repr(&mut self, r: Repr<Listpack, Box<Quicklist>>) {
        *self = List::from_own(r);
    }

    #[inline]
    fn r(&self) -> Repr<&Listpack, &Quicklist> {
        match self.t.get() {
            Ok(lp) => Repr::Lp(lp),
            Err(q) => Repr::Ql(q),
        }
    }

    #[inline]
    fn rm(&mut self) -> Repr<&mut Listpack, &mut Quicklist> {
        match self.t.get_mut() {
            Ok(lp) => Repr::Lp(lp),
            Err(q) => Repr::Ql(q),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self.r() {
            Repr::Lp(lp) => lp.len(),
            Repr::Ql(q) => q.count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding OBJECT ENCODING reports.
    pub fn encoding(&self) -> Encoding {
        match self.r() {
            Repr::Lp(_) => Encoding::Listpack,
            Repr::Ql(_) => Encoding::Quicklist,
        }
    }

    /// Bytes allocated for this value's contents, as the allocator reports them.
    #[allow(dead_code)] // Exact figure; MEMORY USAGE samples (below).
    pub fn mem_usage(&self) -> usize {
        match self.r() {
            Repr::Lp(lp) => lp.mem_usage(),
            Repr::Ql(q) => q.mem_usage(),
        }
    }

    /// MEMORY USAGE: the bytes of the contents, a quicklist measured on at most
    /// `samples` nodes.
    pub fn mem_usage_sampled(&self, samples: usize) -> usize {
        match self.r() {
            Repr::Lp(lp) => lp.mem_usage(),
            Repr::Ql(q) => q.mem_usage_sampled(samples),
        }
    }

    /// Number of nodes as RDB saves them (a listpack-encoded list is one node).
    pub fn raw_node_count(&self) -> usize {
        match self.r() {
            Repr::Lp(_) => 1,
            Repr::Ql(q) => q.nodes.len(),
        }
    }

    /// The nodes as RDB saves them, head to tail (compressed nodes stay compressed).
    pub fn raw_nodes(&self) -> impl Iterator<Item = RawNode<'_>> {
        let (lp, nodes) = match self.r() {
            Repr::Lp(lp) => (Some(lp), None),
            Repr::Ql(q) => (None, Some(&q.nodes)),
        };
        lp.into_iter()
            .map(|lp| RawNode::Packed(lp.as_bytes()))
            .chain(nodes.into_iter().flatten().map(Node::raw))
    }

    /// A quicklist of the given nodes (upstream's `quicklistAppendListpack` /
    /// `quicklistAppendPlainNode` while loading), compressed by `opts.depth`, then
    /// converted to a listpack when a single node fits (`listTypeTryConversion`, auto).
    pub fn from_nodes(nodes: Vec<LoadNode>, opts: ListOpts) -> List {
        let mut q = Quicklist::new(opts.fill, opts.depth);
        for n in nodes {
            let n = match n {
                LoadNode::Packed(lp) => Node::Packed(lp),
                LoadNode::Plain(b) => Node::Plain(b.into_boxed_slice()),
            };
            q.count = q.count.saturating_add(n.count());
            q.nodes.push_back(n);
        }
        let last = q.nodes.len().saturating_sub(1);
        q.fix(0, last);
        let mut l = List::from_own(Repr::Ql(Box::new(q)));
        l.convert_auto(opts);
        l
    }

    /// Upstream's `listTypeTryConversionAppend`: before adding `add_len` elements whose
    /// strings total `add_bytes`, converts a listpack that would exceed one node's limit
    /// to a quicklist.
    pub fn grow_check(&mut self, opts: ListOpts, add_bytes: usize, add_len: usize) {
        let fill = opts.fill;
        if let Repr::Lp(lp) = self.rm() {
            if exceeds_limit(
                fill,
                lp.total_bytes().saturating_add(add_bytes),
                lp.len().saturating_add(add_len),
            ) {
                let mut q = Quicklist::new(fill, opts.depth);
                let lp = std::mem::take(lp);
                if !lp.is_empty() {
                    q.count = lp.len();
                    q.nodes.push_back(Node::Packed(lp));
                }
                self.set_repr(Repr::Ql(Box::new(q)));
            }
        }
    }

    /// Upstream's `listTypeTryConversion(LIST_CONV_SHRINKING)`: a quicklist of one packed
    /// node under half the limit goes back to a listpack.
    pub fn shrink_check(&mut self, opts: ListOpts) {
        self.try_convert_quicklist(opts.fill, true);
    }

    /// Upstream's `listTypeTryConversion(LIST_CONV_AUTO)` on a quicklist (SORT ... STORE
    /// builds a quicklist, then keeps it only if one node cannot hold it).
    pub fn convert_auto(&mut self, opts: ListOpts) {
        self.try_convert_quicklist(opts.fill, false);
    }

    fn try_convert_quicklist(&mut self, fill: i32, shrinking: bool) {
        if let Repr::Ql(q) = self.rm() {
            if q.nodes.len() != 1 {
                return;
            }
            q.raw_at(0);
            let (mut sz_limit, mut count_limit) = node_limit(fill);
            if shrinking {
                sz_limit /= 2;
                count_limit /= 2;
            }
            let Some(Node::Packed(lp)) = q.nodes.front() else {
                return;
            };
            if lp.total_bytes() > sz_limit || q.count > count_limit {
                return;
            }
            if let Some(Node::Packed(lp)) = q.nodes.pop_front() {
                self.set_repr(Repr::Lp(lp));
            }
        }
    }

    /// Pushes `v` at the head or the tail (call [`List::grow_check`] first).
    pub fn push(&mut self, v: &[u8], head: bool) {
        match self.rm() {
            Repr::Lp(lp) => {
                if head {
                    lp.prepend(v)
                } else {
                    lp.append(v)
                }
            }
            Repr::Ql(q) => q.push(v, head),
        }
    }

    /// Pops from the head or the tail. The flag tells whether upstream would hold the
    /// value as a string (it counts toward a destination's conversion check in LMOVE):
    /// always from a listpack, and for non-integers from a quicklist.
    pub fn pop(&mut self, head: bool) -> Option<(Vec<u8>, bool)> {
        match self.rm() {
            Repr::Lp(lp) => {
                let p = if head { lp.first() } else { lp.last() }?;
                let v = Elem::from_lp(lp.get(p)).to_vec();
                lp.delete(p);
                Some((v, true))
            }
            Repr::Ql(q) => q.pop(head),
        }
    }

    /// Calls `f` on the element at `index` (negative: from the tail); None when out of
    /// range.
    pub fn get<R>(&self, index: i64, f: impl FnOnce(Elem<'_>) -> R) -> Option<R> {
        match self.r() {
            Repr::Lp(lp) => lp.seek(index).map(|p| f(Elem::from_lp(lp.get(p)))),
            Repr::Ql(q) => {
                let (ni, off) = q.locate(index)?;
                match q.nodes.get(ni)? {
                    Node::Lzf(b) => Node::decompressed(b).elem(off).map(f),
                    n => n.elem(off).map(f),
                }
            }
        }
    }

    /// DEBUG OBJECT's quicklist fields: `(nodes, fill, compress depth, total
    /// uncompressed bytes)`; None for a listpack.
    pub fn quicklist_info(&self) -> Option<(usize, i32, usize, usize)> {
        match self.r() {
            Repr::Lp(_) => None,
            Repr::Ql(q) => {
                let sz = q.nodes.iter().map(Node::sz).sum();
                Some((q.nodes.len(), q.fill, q.depth, sz))
            }
        }
    }

    /// Calls `f` on the elements from index `from` (0-based, in range) towards the tail,
    /// or towards the head with `reverse`, until it returns false.
    #[inline]
    pub fn for_each_from(&self, from: usize, reverse: bool, mut f: impl FnMut(Elem<'_>) -> bool) {
        match self.r() {
            Repr::Lp(lp) => {
                let mut p = lp.seek(from as i64);
                while let Some(pos) = p {
                    if !f(Elem::from_lp(lp.get(pos))) {
                        return;
                    }
                    p = if reverse { lp.prev(pos) } else { lp.next(pos) };
                }
            }
            Repr::Ql(q) => q.for_each(from, reverse, f),
        }
    }

    /// Replaces the element at `index`; false when out of range.
    pub fn set(&mut self, index: i64, v: &[u8]) -> bool {
        match self.rm() {
            Repr::Lp(lp) => match lp.seek(index) {
                Some(p) => {
                    lp.replace(p, v);
                    true
                }
                None => false,
            },
            Repr::Ql(q) => match q.locate(index) {
                Some((ni, off)) => {
                    q.replace(ni, off, v);
                    true
                }
                None => false,
            },
        }
    }

    /// LINSERT: inserts `v` before or after the first element equal to `pivot`; false
    /// when there is none.
    pub fn insert_at_pivot(&mut self, pivot: &[u8], v: &[u8], after: bool) -> bool {
        match self.rm() {
            Repr::Lp(lp) => {
                let mut p = lp.first();
                while let Some(pos) = p {
                    if Elem::from_lp(lp.get(pos)).eq_bytes(pivot) {
                        lp.insert(pos, v, after);
                        return true;
                    }
                    p = lp.next(pos);
                }
                false
            }
            Repr::Ql(q) => {
                let mut found = None;
                let mut tmp;
                'outer: for (ni, mut n) in q.nodes.iter().enumerate() {
                    if let Node::Lzf(b) = n {
                        tmp = Node::decompressed(b);
                        n = &tmp;
                    }
                    match n {
                        Node::Lzf(_) => {}
                        Node::Plain(b) => {
                            if &b[..] == pivot {
                                found = Some((ni, 0));
                                break 'outer;
                            }
                        }
                        Node::Packed(lp) => {
                            let mut p = lp.first();
                            let mut off = 0;
                            while let Some(pos) = p {
                                if Elem::from_lp(lp.get(pos)).eq_bytes(pivot) {
                                    found = Some((ni, off));
                                    break 'outer;
                                }
                                off += 1;
                                p = lp.next(pos);
                            }
                        }
                    }
                }
                match found {
                    Some((ni, off)) => {
                        q.insert(ni, off, v, after);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// LREM: removes up to `limit` (0 = all) elements equal to `v`, scanning from the
    /// tail when `reverse`; returns how many.
    pub fn remove(&mut self, v: &[u8], limit: usize, reverse: bool) -> usize {
        match self.rm() {
            Repr::Lp(lp) => {
                let mut removed = 0;
                let mut p = if reverse { lp.last() } else { lp.first() };
                while let Some(pos) = p {
                    if Elem::from_lp(lp.get(pos)).eq_bytes(v) {
                        let next = lp.delete(pos);
                        removed += 1;
                        if limit != 0 && removed == limit {
                            break;
                        }
                        p = if reverse {
                            match next {
                                Some(n) => lp.prev(n),
                                None => lp.last(),
                            }
                        } else {
                            next
                        };
                    } else {
                        p = if reverse { lp.prev(pos) } else { lp.next(pos) };
                    }
                }
                removed
            }
            Repr::Ql(q) => q.remove(v, limit, reverse),
        }
    }

    /// Deletes `count` elements from index `start` (negative: from the tail).
    pub fn del_range(&mut self, start: i64, count: usize) {
        if count == 0 {
            return;
        }
        match self.rm() {
            Repr::Lp(lp) => {
                lp.delete_range(start, count);
            }
            Repr::Ql(q) => q.del_range(start, count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(l: &List) -> Vec<Vec<u8>> {
        let mut out = vec![];
        if !l.is_empty() {
            l.for_each_from(0, false, |e| {
                out.push(e.to_vec());
                true
            });
        }
        out
    }

    #[test]
    fn value_size() {
        assert!(std::mem::size_of::<List>() <= 32);
    }

    /// Nodes in the window at each end are uncompressed; every other node is compressed
    /// unless compressing it would not be kept.
    fn check_compression(l: &List) {
        let Repr::Ql(q) = l.r() else {
            return;
        };
        for (i, n) in q.nodes.iter().enumerate() {
            if q.depth == 0 || q.in_window(i) {
                assert!(
                    !n.is_compressed(),
                    "node {i} of {} compressed",
                    q.nodes.len()
                );
            } else if !n.is_compressed() {
                assert!(
                    !n.clone().compress(),
                    "node {i} of {} left raw",
                    q.nodes.len()
                );
            }
        }
    }

    #[test]
    fn node_compression_round_trip() {
        let mut lp = Listpack::new();
        for i in 0..200 {
            lp.append(format!("element-{}", i % 7).as_bytes());
            lp.append(i.to_string().as_bytes());
        }
        let packed = Node::Packed(lp);
        let mut n = packed.clone();
        assert!(n.compress());
        assert!(n.is_compressed());
        assert!(n.mem_usage() < packed.mem_usage());
        assert_eq!((n.count(), n.sz(), n.is_plain()), (400, packed.sz(), false));
        n.decompress();
        assert_eq!(n, packed);

        let plain = Node::Plain(vec![b'a'; 10000].into_boxed_slice());
        let mut n = plain.clone();
        assert!(n.compress());
        assert_eq!((n.count(), n.sz(), n.is_plain()), (1, 10000, true));
        n.decompress();
        assert_eq!(n, plain);

        // Too small, or not saving enough: left as is.
        let mut small = Listpack::new();
        small.append(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let mut n = Node::Packed(small);
        assert!(n.sz() < MIN_COMPRESS_BYTES && !n.compress());
        let mut x = 88172645463325252u64;
        let noise: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let mut n = Node::Plain(noise.into_boxed_slice());
        assert!(!n.compress() && !n.is_compressed());
    }

    #[test]
    fn compressed_list_reads_and_writes() {
        let opts = ListOpts { fill: -2, depth: 1 };
        let mut l = List::new();
        for i in 0..5000 {
            let v = format!("item:{i}");
            l.grow_check(opts, v.len(), 1);
            l.push(v.as_bytes(), false);
        }
        check_compression(&l);
        let Repr::Ql(q) = l.r() else {
            panic!("not a quicklist")
        };
        let n = q.nodes.len();
        assert!(n > 4);
        assert_eq!(q.nodes.iter().filter(|n| n.is_compressed()).count(), n - 2);
        let (nodes, fill, depth, sz) = l.quicklist_info().unwrap();
        assert_eq!((nodes, fill, depth), (n, -2, 1));
        assert!(sz > l.mem_usage());
        assert_eq!(l.get(2500, |e| e.to_vec()).unwrap(), b"item:2500");
        assert!(l.set(2500, b"changed"));
        assert!(l.insert_at_pivot(b"item:3000", b"new", true));
        assert_eq!(l.remove(b"item:10", 0, false), 1);
        l.del_range(100, 3);
        check_compression(&l);
        assert_eq!(l.get(2496, |e| e.to_vec()).unwrap(), b"changed");
        assert_eq!(l.get(2997, |e| e.to_vec()).unwrap(), b"new");
        // A list created before a depth change keeps its depth (as upstream).
        let mut l2 = l.clone();
        l2.push(b"x", true);
        l2.shrink_check(ListOpts { fill: -2, depth: 0 });
        check_compression(&l2);
    }

    #[test]
    fn quicklist_ops_match_model() {
        for (fill, depth) in [
            (-1, 0),
            (4, 0),
            (1, 0),
            (3, 0),
            (-1, 1),
            (4, 1),
            (1, 2),
            (3, 2),
            (-2, 1),
            (2, 3),
        ] {
            let opts = ListOpts { fill, depth };
            let mut l = List::new();
            let mut model: std::collections::VecDeque<Vec<u8>> = Default::default();
            let mut seed = 7u64;
            let mut rnd = |n: u64| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) % n
            };
            for i in 0..3000u64 {
                let op = rnd(10);
                let v: Vec<u8> = match rnd(4) {
                    0 => format!("{}", rnd(300)).into_bytes(),
                    1 => vec![b'x'; 9000],
                    _ => format!("v{}", rnd(50))
                        .into_bytes()
                        .repeat(1 + rnd(40) as usize),
                };
                l.grow_check(opts, v.len(), 1);
                match op {
                    0..=2 => {
                        l.push(&v, op == 0);
                        if op == 0 {
                            model.push_front(v)
                        } else {
                            model.push_back(v)
                        }
                    }
                    3 => {
                        let h = rnd(2) == 0;
                        let a = l.pop(h).map(|x| x.0);
                        let b = if h {
                            model.pop_front()
                        } else {
                            model.pop_back()
                        };
                        assert_eq!(a, b);
                    }
                    4 if !model.is_empty() => {
                        let idx = rnd(model.len() as u64) as usize;
                        assert!(l.set(idx as i64, &v));
                        model[idx] = v;
                    }
                    5 if !model.is_empty() => {
                        let idx = rnd(model.len() as u64) as usize;
                        let pivot = model[idx].clone();
                        let first = model.iter().position(|x| *x == pivot).unwrap();
                        let after = rnd(2) == 0;
                        assert!(l.insert_at_pivot(&pivot, &v, after));
                        model.insert(if after { first + 1 } else { first }, v);
                    }
                    6 if !model.is_empty() => {
                        let idx = rnd(model.len() as u64) as usize;
                        let target = model[idx].clone();
                        let limit = rnd(3) as usize;
                        let rev = rnd(2) == 0;
                        let n = l.remove(&target, limit, rev);
                        let mut removed = 0;
                        if rev {
                            let mut i = model.len();
                            while i > 0 && (limit == 0 || removed < limit) {
                                i -= 1;
                                if model[i] == target {
                                    model.remove(i);
                                    removed += 1;
                                }
                            }
                        } else {
                            let mut i = 0;
                            while i < model.len() && (limit == 0 || removed < limit) {
                                if model[i] == target {
                                    model.remove(i);
                                    removed += 1;
                                } else {
                                    i += 1;
                                }
                            }
                        }
                        assert_eq!(n, removed);
                    }
                    7 if model.len() > 2 && i % 5 == 0 => {
                        let start = rnd(model.len() as u64) as usize;
                        let cnt = rnd(4) as usize;
                        l.del_range(start as i64, cnt);
                        for _ in 0..cnt.min(model.len() - start) {
                            model.remove(start);
                        }
                    }
                    _ => {}
                }
                assert_eq!(l.len(), model.len());
                check_compression(&l);
                if i % 50 == 0 {
                    assert_eq!(collect(&l), model.iter().cloned().collect::<Vec<_>>());
                    for (k, m) in model.iter().enumerate() {
                        assert_eq!(l.get(k as i64, |e| e.to_vec()).unwrap(), *m);
                    }
                }
                l.shrink_check(opts);
            }
        }
    }
}
