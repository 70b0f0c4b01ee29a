//! The sorted set value (upstream's `t_zset.c`, type level): a listpack of
//! `member, score` pairs ordered by (score, member) while small ("listpack"), else a
//! member index plus an ordered index (reported "skiplist", as upstream).
//!
//! The large encoding keeps every element in **one** allocation: a [`Dict`] node whose
//! payload is `[score: f64 LE, 8 bytes][member bytes]`. The ordered index is a counted
//! B+tree ([`tree`]) of those node handles (stable until removed), compared by the score
//! and member read from the payload; it gives rank, select and range searches in
//! O(log n) like upstream's skiplist, for ~10 bytes per element instead of ~40.
//!
//! Encoding changes follow upstream exactly: creation from size hints
//! (`zsetTypeCreate`), conversion when an add would exceed `zset-max-listpack-entries` or
//! `zset-max-listpack-value`, and conversion back to a listpack for small results of the
//! store commands (`zsetConvertToListpackIfNeeded`).

use std::cmp::Ordering;

use crate::object::Encoding;
use crate::types::dict::{Dict, DictKey, Node};
use crate::types::listpack::{Listpack, LpEntry};
use crate::types::thin::Thin;

#[path = "zset_tree.rs"]
mod tree;

use tree::Tree;

/// The key of a member-index payload: the member after the 8 score bytes.
pub struct MemberKey;

impl DictKey for MemberKey {
    #[inline]
    fn key(payload: &[u8]) -> &[u8] {
        payload.get(8..).unwrap_or(&[])
    }
}

#[inline]
fn pl_score(p: &[u8]) -> f64 {
    let mut b = [0u8; 8];
    if let Some(s) = p.get(..8) {
        b.copy_from_slice(s);
    }
    f64::from_le_bytes(b)
}

#[inline]
fn pl_member(p: &[u8]) -> &[u8] {
    p.get(8..).unwrap_or(&[])
}

/// Orders (score, member) pairs as upstream's skiplist does: by score, then by member
/// bytes. Scores are never NaN; -0 and 0 compare equal.
#[inline]
pub fn cmp_elems(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    match s1.partial_cmp(&s2) {
        Some(Ordering::Equal) | None => m1.cmp(m2),
        Some(o) => o,
    }
}

/// Calls `f` with the bytes of a listpack entry (integers formatted in a stack buffer).
#[inline]
pub fn with_bytes<R>(e: LpEntry<'_>, f: impl FnOnce(&[u8]) -> R) -> R {
    match e {
        LpEntry::Str(s) => f(s),
        LpEntry::Int(v) => {
            let mut b = crate::reply::itoa_buf();
            f(crate::reply::fmt_i64(&mut b, v))
        }
    }
}

/// The score held by a listpack entry (upstream's `zzlGetScore`).
#[inline]
fn lp_score(e: LpEntry<'_>) -> f64 {
    match e {
        LpEntry::Int(v) => v as f64,
        LpEntry::Str(s) => std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0),
    }
}

/// Upstream's `double2ll`: the i64 a double is exactly equal to, within +-LLONG_MAX/2.
#[inline]
pub fn double2ll(d: f64) -> Option<i64> {
    const LIM: f64 = (i64::MAX / 2) as f64;
    if !(-LIM..=LIM).contains(&d) {
        return None;
    }
    let l = d as i64;
    if l as f64 == d {
        Some(l)
    } else {
        None
    }
}

/// Appends the listpack form of a score (an integer when exact, else `d2string`).
fn score_entry(score: f64, buf: &mut Vec<u8>) {
    buf.clear();
    if let Some(l) = double2ll(score) {
        let mut b = crate::reply::itoa_buf();
        buf.extend_from_slice(crate::reply::fmt_i64(&mut b, l));
    } else {
        buf.extend_from_slice(crate::reply::fmt_double_d2string(score).as_bytes());
    }
}

/// A range over scores (`zrangespec`).
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

/// One end of a lexicographic range (`-`, `+`, `(x`, `[x`).
#[derive(Clone, Debug)]
pub enum LexBound {
    Min,
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

/// A lexicographic range (`zlexrangespec`).
#[derive(Clone, Debug)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

/// What range searches need from a range: upstream's `ValueGteMin` / `ValueLteMax` and
/// the always-empty test.
pub trait RangeSpec {
    fn gte_min(&self, score: f64, member: &[u8]) -> bool;
    fn lte_max(&self, score: f64, member: &[u8]) -> bool;
    fn always_empty(&self) -> bool;
}

impl RangeSpec for ScoreRange {
    #[inline]
    fn gte_min(&self, s: f64, _: &[u8]) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }
    #[inline]
    fn lte_max(&self, s: f64, _: &[u8]) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }
    fn always_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

impl LexBound {
    fn is_ex(&self) -> bool {
        !matches!(self, LexBound::Incl(_))
    }
}

/// `sdscmplex`: compares a value with a bound, `-` below and `+` above everything.
fn cmp_lex(v: &[u8], b: &LexBound) -> Ordering {
    match b {
        LexBound::Min => Ordering::Greater,
        LexBound::Max => Ordering::Less,
        LexBound::Incl(x) | LexBound::Excl(x) => v.cmp(x),
    }
}

impl RangeSpec for LexRange {
    #[inline]
    fn gte_min(&self, _: f64, m: &[u8]) -> bool {
        let c = cmp_lex(m, &self.min);
        if self.min.is_ex() {
            c == Ordering::Greater
        } else {
            c != Ordering::Less
        }
    }
    #[inline]
    fn lte_max(&self, _: f64, m: &[u8]) -> bool {
        let c = cmp_lex(m, &self.max);
        if self.max.is_ex() {
            c == Ordering::Less
        } else {
            c != Ordering::Greater
        }
    }
    fn always_empty(&self) -> bool {
        use LexBound::*;
        let c = match (&self.min, &self.max) {
            (Min, Min) | (Max, Max) => Ordering::Equal,
            (Min, _) | (_, Max) => Ordering::Less,
            (Max, _) | (_, Min) => Ordering::Greater,
            (Incl(a) | Excl(a), Incl(b) | Excl(b)) => a.cmp(b),
        };
        c == Ordering::Greater || (c == Ordering::Equal && (self.min.is_ex() || self.max.is_ex()))
    }
}

/// ZADD's input flags.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddFlags {
    pub incr: bool,
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

/// What an add did (upstream's `ZADD_OUT_*`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AddOut {
    pub added: bool,
    pub updated: bool,
    pub nop: bool,
    pub newscore: f64,
}

/// The score ZADD gives a member already at `cur` (upstream's zsetAdd, the same for both
/// encodings): `Some(None)` when it stays as it is (NX, or LT/GT refuse the new score),
/// None when INCR makes it NaN.
#[inline]
fn existing_score(f: AddFlags, score: f64, cur: f64) -> Option<Option<f64>> {
    if f.nx {
        return Some(None);
    }
    let mut score = score;
    if f.incr {
        score += cur;
        if score.is_nan() {
            return None;
        }
    }
    if (f.lt && score >= cur) || (f.gt && score <= cur) {
        return Some(None);
    }
    Some(Some(score))
}

/// The large encoding: member index and ordered index over the same nodes.
pub struct Big {
    dict: Dict<MemberKey>,
    tree: Tree<Node>,
}

impl Big {
    fn new(cap: usize) -> Big {
        let mut dict = Dict::new();
        if cap > 0 {
            dict.expand(cap);
        }
        Big {
            dict,
            tree: Tree::default(),
        }
    }

    #[inline]
    fn elem(&self, n: Node) -> (f64, &[u8]) {
        let p = self.dict.payload(n);
        (pl_score(p), pl_member(p))
    }

    /// Adds a member known to be absent.
    fn insert_new(&mut self, score: f64, member: &[u8]) {
        let Big { dict, tree } = self;
        if let Ok(node) = dict.insert_parts(&[&score.to_le_bytes(), member]) {
            let d = &*dict;
            tree.insert(node, &|x| {
                let p = d.payload(x);
                cmp_elems(pl_score(p), pl_member(p), score, member)
            });
        }
    }

    /// Unlinks a live node from the ordered index (before freeing it or rescoring it).
    fn tree_remove(&mut self, node: Node) {
        let Big { dict, tree } = self;
        let d = &*dict;
        let p = d.payload(node);
        let (s, m) = (pl_score(p), pl_member(p));
        tree.remove(&|x| {
            let q = d.payload(x);
            cmp_elems(pl_score(q), pl_member(q), s, m)
        });
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        let Some(node) = self.dict.find(member) else {
            return false;
        };
        self.tree_remove(node);
        self.dict.remove_node(node, |_| {});
        true
    }

    fn remove_node(&mut self, node: Node) {
        self.tree_remove(node);
        self.dict.remove_node(node, |_| {});
    }

    fn update_score(&mut self, node: Node, score: f64) {
        self.tree_remove(node);
        let p = self.dict.payload_mut(node);
        if let Some(s) = p.get_mut(..8) {
            s.copy_from_slice(&score.to_le_bytes());
        }
        let Big { dict, tree } = self;
        let d = &*dict;
        let m = pl_member(d.payload(node));
        tree.insert(node, &|x| {
            let q = d.payload(x);
            cmp_elems(pl_score(q), pl_member(q), score, m)
        });
    }

    fn rank_of(&self, node: Node) -> Option<usize> {
        let (s, m) = self.elem(node);
        let d = &self.dict;
        self.tree.rank(&|x| {
            let q = d.payload(x);
            cmp_elems(pl_score(q), pl_member(q), s, m)
        })
    }

    /// Count of leading elements for which `pred(score, member)` holds.
    fn partition(&self, pred: &dyn Fn(f64, &[u8]) -> bool) -> usize {
        let d = &self.dict;
        self.tree.partition_point(&|x| {
            let q = d.payload(x);
            pred(pl_score(q), pl_member(q))
        })
    }

    fn at(&self, rank: usize) -> Option<(f64, &[u8])> {
        self.tree.get(rank).map(|n| self.elem(n))
    }
}

/// The encodings, owned (`ZRepr<Listpack, Box<Big>>`) or borrowed.
enum ZRepr<L, B> {
    Listpack(L),
    Skiplist(B),
}

/// A sorted set value: one pointer (see [`super::thin`]).
pub struct ZSet {
    t: Thin<Listpack, Big>,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::from_listpack(Listpack::new())
    }
}

impl Clone for ZSet {
    fn clone(&self) -> Self {
        match self.r() {
            ZRepr::Listpack(lp) => ZSet::from_listpack(lp.clone()),
            ZRepr::Skiplist(b) => {
                let mut nb = Big::new(b.dict.len());
                for (m, s) in self.iter_from(0, true) {
                    with_bytes(m, |m| nb.insert_new(s, m));
                }
                ZSet::from_own(ZRepr::Skiplist(Box::new(nb)))
            }
        }
    }
}

impl ZSet {
    /// A sorted set adopting a listpack of member/score pairs (RDB loading).
    pub fn from_listpack(lp: Listpack) -> ZSet {
        ZSet::from_own(ZRepr::Listpack(lp))
    }

    fn from_own(r: ZRepr<Listpack, Box<Big>>) -> ZSet {
        ZSet {
            t: match r {
                ZRepr::Listpack(lp) => Thin::small(lp),
                ZRepr::Skiplist(b) => Thin::big(*b),
            },
        }
    }

    fn set_repr(&mut self, r: ZRepr<Listpack, Box<Big>>) {
        *self = ZSet::from_own(r);
    }

    #[inline]
    fn r(&self) -> ZRepr<&Listpack, &Big> {
        match self.t.get() {
            Ok(lp) => ZRepr::Listpack(lp),
            Err(b) => ZRepr::Skiplist(b),
        }
    }

    #[inline]
    fn rm(&mut self) -> ZRepr<&mut Listpack, &mut Big> {
        match self.t.get_mut() {
            Ok(lp) => ZRepr::Listpack(lp),
            Err(b) => ZRepr::Skiplist(b),
        }
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for (m, s) in self.iter_from(0, false) {
            l.entry(&(String::from_utf8_lossy(&m.to_vec()).into_owned(), s));
        }
        l.finish()
    }
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.encoding() == other.encoding()
            && self.len() == other.len()
            && self.iter_from(0, false).zip(other.iter_from(0, false)).all(
                |((m1, s1), (m2, s2))| s1.to_bits() == s2.to_bits() && m1.to_vec() == m2.to_vec(),
            )
    }
}

/// Iterator over (member, score) from a rank, in either direction.
pub struct Iter<'a> {
    inner: IterInner<'a>,
}

enum IterInner<'a> {
    Lp {
        lp: &'a Listpack,
        pos: Option<usize>,
        rev: bool,
    },
    Tree {
        big: &'a Big,
        cur: tree::Cursor<'a, Node>,
    },
}

impl<'a> Iterator for Iter<'a> {
    type Item = (LpEntry<'a>, f64);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            IterInner::Lp { lp, pos, rev } => {
                let ep = (*pos)?;
                let sp = lp.next(ep)?;
                let item = (lp.get(ep), lp_score(lp.get(sp)));
                *pos = if *rev {
                    lp.prev(ep).and_then(|s| lp.prev(s))
                } else {
                    lp.next(sp)
                };
                Some(item)
            }
            IterInner::Tree { big, cur } => {
                let n = cur.next()?;
                let p = big.dict.payload(n);
                Some((LpEntry::Str(pl_member(p)), pl_score(p)))
            }
        }
    }
}

impl ZSet {
    /// An empty listpack-encoded zset.
    pub fn new() -> ZSet {
        ZSet::default()
    }

    /// `zsetTypeCreate`: listpack when the hints fit the thresholds, else the large
    /// encoding pre-sized for `size_hint` elements.
    pub fn create(
        size_hint: usize,
        val_len_hint: usize,
        max_entries: usize,
        max_value: usize,
    ) -> ZSet {
        if size_hint <= max_entries && val_len_hint <= max_value {
            ZSet::new()
        } else {
            ZSet::from_own(ZRepr::Skiplist(Box::new(Big::new(size_hint))))
        }
    }

    /// `zsetTypeMaybeConvert`.
    pub fn maybe_convert(
        &mut self,
        size_hint: usize,
        val_len_hint: usize,
        max_entries: usize,
        max_value: usize,
    ) {
        if matches!(self.r(), ZRepr::Listpack(_))
            && (size_hint > max_entries || val_len_hint > max_value)
        {
            self.convert_to_big(size_hint);
        }
    }

    /// Converts a listpack to the large encoding, pre-sized for `cap` elements.
    pub fn convert_to_big(&mut self, cap: usize) {
        let ZRepr::Listpack(lp) = self.rm() else {
            return;
        };
        let mut big = Big::new(cap.max(lp.len() / 2));
        let mut it = lp.iter();
        while let (Some(m), Some(s)) = (it.next(), it.next()) {
            let score = lp_score(s);
            with_bytes(m, |m| big.insert_new(score, m));
        }
        self.set_repr(ZRepr::Skiplist(Box::new(big)));
    }

    /// Converts the large encoding to a listpack.
    #[allow(dead_code)] // For RDB loading/DEBUG; tests use it today.
    pub fn convert_to_listpack(&mut self) {
        if matches!(self.r(), ZRepr::Listpack(_)) {
            return;
        }
        let mut lp = Listpack::new();
        let mut sbuf = Vec::new();
        for (m, s) in self.iter_from(0, false) {
            with_bytes(m, |m| lp.append(m));
            score_entry(s, &mut sbuf);
            lp.append(&sbuf);
        }
        self.set_repr(ZRepr::Listpack(lp));
    }

    pub fn len(&self) -> usize {
        match self.r() {
            ZRepr::Listpack(lp) => lp.len() / 2,
            ZRepr::Skiplist(b) => b.dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding OBJECT ENCODING reports.
    pub fn encoding(&self) -> Encoding {
        match self.r() {
            ZRepr::Listpack(_) => Encoding::Listpack,
            ZRepr::Skiplist(_) => Encoding::Skiplist,
        }
    }

    /// Bytes allocated for this value's contents (MEMORY USAGE).
    pub fn mem_usage(&self) -> usize {
        match self.r() {
            ZRepr::Listpack(lp) => lp.mem_usage(),
            ZRepr::Skiplist(b) => {
                std::mem::size_of::<Big>() + b.dict.mem_usage() + b.tree.mem_usage()
            }
        }
    }

    /// The listpack, when listpack-encoded (RDB).
    #[allow(dead_code)]
    pub fn as_listpack(&self) -> Option<&Listpack> {
        match self.r() {
            ZRepr::Listpack(lp) => Some(lp),
            ZRepr::Skiplist(_) => None,
        }
    }

    /// Position of `member`'s entry in a listpack, with its score.
    fn lp_find(lp: &Listpack, member: &[u8]) -> Option<(usize, f64)> {
        let first = lp.first()?;
        let ep = lp.find(first, member, 1)?;
        let sp = lp.next(ep)?;
        Some((ep, lp_score(lp.get(sp))))
    }

    /// Inserts a pair into a listpack at its sorted place (`zzlInsert`).
    fn lp_insert(lp: &mut Listpack, member: &[u8], score: f64) {
        let mut sbuf = Vec::with_capacity(24);
        score_entry(score, &mut sbuf);
        let mut p = lp.first();
        while let Some(ep) = p {
            let Some(sp) = lp.next(ep) else {
                break;
            };
            let s = lp_score(lp.get(sp));
            let before = s > score || (s == score && with_bytes(lp.get(ep), |m| m > member));
            if before {
                let np = lp.insert(ep, member, false);
                lp.insert(np, &sbuf, true);
                return;
            }
            p = lp.next(sp);
        }
        lp.append(member);
        lp.append(&sbuf);
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self.r() {
            ZRepr::Listpack(lp) => Self::lp_find(lp, member).map(|x| x.1),
            ZRepr::Skiplist(b) => b.dict.get(member).map(pl_score),
        }
    }

    /// `zsetAdd`: None when the resulting score is NaN (nothing changed).
    pub fn add(
        &mut self,
        score: f64,
        member: &[u8],
        f: AddFlags,
        max_entries: usize,
        max_value: usize,
    ) -> Option<AddOut> {
        if score.is_nan() {
            return None;
        }
        let mut out = AddOut::default();
        if let ZRepr::Listpack(lp) = self.rm() {
            if let Some((ep, cur)) = Self::lp_find(lp, member) {
                let Some(score) = existing_score(f, score, cur)? else {
                    out.nop = true;
                    return Some(out);
                };
                out.newscore = score;
                if score != cur {
                    lp.delete_range_pos(ep, 2);
                    Self::lp_insert(lp, member, score);
                    out.updated = true;
                }
                return Some(out);
            } else if !f.xx {
                let n = lp.len() / 2;
                if n + 1 > max_entries || member.len() > max_value || !lp.safe_to_add(member.len())
                {
                    self.convert_to_big(n + 1);
                } else {
                    Self::lp_insert(lp, member, score);
                    out.newscore = score;
                    out.added = true;
                    return Some(out);
                }
            } else {
                out.nop = true;
                return Some(out);
            }
        }
        let ZRepr::Skiplist(b) = self.rm() else {
            return None;
        };
        if let Some(node) = b.dict.find(member) {
            let cur = pl_score(b.dict.payload(node));
            let Some(score) = existing_score(f, score, cur)? else {
                out.nop = true;
                return Some(out);
            };
            out.newscore = score;
            if score != cur {
                b.update_score(node, score);
                out.updated = true;
            }
            Some(out)
        } else if !f.xx {
            b.insert_new(score, member);
            out.added = true;
            out.newscore = score;
            Some(out)
        } else {
            out.nop = true;
            Some(out)
        }
    }

    /// Removes `member`; returns whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.rm() {
            ZRepr::Listpack(lp) => match Self::lp_find(lp, member) {
                Some((ep, _)) => {
                    lp.delete_range_pos(ep, 2);
                    true
                }
                None => false,
            },
            ZRepr::Skiplist(b) => b.remove(member),
        }
    }

    /// 0-based rank of `member` (from the top with `reverse`) and its score.
    pub fn rank(&self, member: &[u8], reverse: bool) -> Option<(usize, f64)> {
        let len = self.len();
        let (r, s) = match self.r() {
            ZRepr::Listpack(lp) => {
                let mut it = lp.iter();
                let mut r = 0usize;
                loop {
                    let (m, s) = (it.next()?, it.next()?);
                    if m.eq_bytes(member) {
                        break (r, lp_score(s));
                    }
                    r += 1;
                }
            }
            ZRepr::Skiplist(b) => {
                let node = b.dict.find(member)?;
                (b.rank_of(node)?, pl_score(b.dict.payload(node)))
            }
        };
        Some((if reverse { len - 1 - r } else { r }, s))
    }

    /// Iterates (member, score) from `rank`: ascending, or descending with `rev` (where
    /// rank 0 is the highest element).
    pub fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_> {
        let len = self.len();
        let inner = match self.r() {
            ZRepr::Listpack(lp) => {
                let pos = if rank >= len {
                    None
                } else if rev {
                    lp.seek(-2 - 2 * rank as i64)
                } else {
                    lp.seek(2 * rank as i64)
                };
                IterInner::Lp { lp, pos, rev }
            }
            ZRepr::Skiplist(b) => {
                let r = if rev {
                    len.saturating_sub(1).saturating_sub(rank)
                } else {
                    rank
                };
                let cur = if rank >= len {
                    b.tree.iter_from(len, false)
                } else {
                    b.tree.iter_from(r, rev)
                };
                IterInner::Tree { big: b, cur }
            }
        };
        Iter { inner }
    }

    /// The first (or last) element.
    fn edge(&self, last: bool) -> Option<(Vec<u8>, f64)> {
        self.iter_from(0, last).next().map(|(m, s)| (m.to_vec(), s))
    }

    /// Removes and returns the lowest (or highest with `max`) element.
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        let (m, s) = self.edge(max)?;
        self.remove(&m);
        Some((m, s))
    }

    /// A random element (ZRANDMEMBER).
    pub fn random(&self) -> Option<(LpEntry<'_>, f64)> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        match self.r() {
            ZRepr::Listpack(_) => {
                let i = (crate::util::random_u64() % len as u64) as usize;
                self.iter_from(i, false).next()
            }
            ZRepr::Skiplist(b) => {
                let n = b.dict.random()?;
                let p = b.dict.payload(n);
                Some((LpEntry::Str(pl_member(p)), pl_score(p)))
            }
        }
    }

    /// Listpack: index of the first element in range scanning forward (`zzlFirstInRange`)
    /// or, with `rev`, the reverse rank of the last one (`zzlLastInRange`).
    fn lp_edge_in_range(lp: &Listpack, r: &dyn RangeSpec, rev: bool) -> Option<usize> {
        if r.always_empty() {
            return None;
        }
        let n = lp.len() / 2;
        if n == 0 {
            return None;
        }
        let last_ok = {
            let p = lp.seek(-2)?;
            let s = lp_score(lp.get(lp.next(p)?));
            with_bytes(lp.get(p), |m| r.gte_min(s, m))
        };
        let first_ok = {
            let p = lp.first()?;
            let s = lp_score(lp.get(lp.next(p)?));
            with_bytes(lp.get(p), |m| r.lte_max(s, m))
        };
        if !last_ok || !first_ok {
            return None;
        }
        let mut i = 0usize;
        let mut pos = if rev { lp.seek(-2) } else { lp.first() };
        while let Some(ep) = pos {
            let sp = lp.next(ep)?;
            let s = lp_score(lp.get(sp));
            let hit = with_bytes(lp.get(ep), |m| {
                if rev {
                    if r.lte_max(s, m) {
                        Some(r.gte_min(s, m))
                    } else {
                        None
                    }
                } else if r.gte_min(s, m) {
                    Some(r.lte_max(s, m))
                } else {
                    None
                }
            });
            match hit {
                Some(true) => return Some(i),
                Some(false) => return None,
                None => {}
            }
            i += 1;
            pos = if rev {
                lp.prev(ep).and_then(|x| lp.prev(x))
            } else {
                lp.next(sp)
            };
        }
        None
    }

    /// Skiplist: `zsl[Lex]NthInRange`: the ascending rank of the n-th element in range
    /// (negative n: from the last one in range).
    fn big_nth_in_range(b: &Big, r: &dyn RangeSpec, n: i64) -> Option<usize> {
        if r.always_empty() {
            return None;
        }
        let len = b.tree.len();
        let (ls, lm) = b.at(len.checked_sub(1)?)?;
        if !r.gte_min(ls, lm) {
            return None;
        }
        let (fs, fm) = b.at(0)?;
        if !r.lte_max(fs, fm) {
            return None;
        }
        if n >= 0 {
            let start = b.partition(&|s, m| !r.gte_min(s, m));
            let k = start.checked_add(usize::try_from(n).ok()?)?;
            if k >= len {
                return None;
            }
            let (s, m) = b.at(k)?;
            r.lte_max(s, m).then_some(k)
        } else {
            let back = usize::try_from(n.checked_neg()?).ok()?;
            let end = b.partition(&|s, m| r.lte_max(s, m));
            if end < back {
                return None;
            }
            let k = end - back;
            let (s, m) = b.at(k)?;
            r.gte_min(s, m).then_some(k)
        }
    }

    /// Where a ZRANGEBYSCORE/BYLEX walk starts: the rank, in the walk's direction, of the
    /// element after skipping `offset`, as upstream finds it for each encoding.
    pub fn range_start(&self, r: &dyn RangeSpec, offset: i64, rev: bool) -> Option<usize> {
        let len = self.len();
        match self.r() {
            ZRepr::Listpack(lp) => {
                let i = Self::lp_edge_in_range(lp, r, rev)?;
                let off = usize::try_from(offset).ok()?;
                let k = i.checked_add(off)?;
                (k < len).then_some(k)
            }
            ZRepr::Skiplist(b) => {
                if rev {
                    let n = offset.wrapping_neg().wrapping_sub(1);
                    let k = Self::big_nth_in_range(b, r, n)?;
                    Some(len - 1 - k)
                } else {
                    Self::big_nth_in_range(b, r, offset)
                }
            }
        }
    }

    /// Number of elements in range (ZCOUNT, ZLEXCOUNT).
    pub fn count_in_range(&self, r: &dyn RangeSpec) -> usize {
        match self.r() {
            ZRepr::Listpack(lp) => {
                let Some(i) = Self::lp_edge_in_range(lp, r, false) else {
                    return 0;
                };
                self.iter_from(i, false)
                    .take_while(|(m, s)| with_bytes(*m, |m| r.lte_max(*s, m)))
                    .count()
            }
            ZRepr::Skiplist(b) => {
                let Some(first) = Self::big_nth_in_range(b, r, 0) else {
                    return 0;
                };
                match Self::big_nth_in_range(b, r, -1) {
                    Some(last) => last + 1 - first,
                    None => b.tree.len() - first + 1,
                }
            }
        }
    }

    /// Deletes the elements in range (ZREMRANGEBYSCORE/BYLEX); returns how many.
    pub fn delete_range(&mut self, r: &dyn RangeSpec) -> usize {
        match self.rm() {
            ZRepr::Listpack(lp) => {
                let Some(i) = Self::lp_edge_in_range(lp, r, false) else {
                    return 0;
                };
                let mut n = 0usize;
                let mut pos = lp.seek(2 * i as i64);
                while let Some(ep) = pos {
                    let Some(sp) = lp.next(ep) else {
                        break;
                    };
                    let s = lp_score(lp.get(sp));
                    if !with_bytes(lp.get(ep), |m| r.lte_max(s, m)) {
                        break;
                    }
                    lp.delete_range_pos(ep, 2);
                    n += 1;
                    pos = if lp.as_bytes().get(ep) == Some(&0xFF) {
                        None
                    } else {
                        Some(ep)
                    };
                }
                n
            }
            ZRepr::Skiplist(b) => {
                let start = b.partition(&|s, m| !r.gte_min(s, m));
                let nodes: Vec<Node> = b
                    .tree
                    .iter_from(start, false)
                    .take_while(|&x| {
                        let (s, m) = b.elem(x);
                        r.lte_max(s, m)
                    })
                    .collect();
                for &x in &nodes {
                    b.remove_node(x);
                }
                nodes.len()
            }
        }
    }

    /// Deletes the elements of ascending ranks `start..=end` (valid, sanitized);
    /// returns how many.
    pub fn delete_rank_range(&mut self, start: usize, end: usize) -> usize {
        let num = end + 1 - start;
        match self.rm() {
            ZRepr::Listpack(lp) => lp.delete_range(2 * start as i64, 2 * num) / 2,
            ZRepr::Skiplist(b) => {
                let nodes: Vec<Node> = b.tree.iter_from(start, false).take(num).collect();
                for &x in &nodes {
                    b.remove_node(x);
                }
                nodes.len()
            }
        }
    }

    /// Builds a zset from elements sorted by (score, member), unique: a listpack when
    /// `small`, else the large encoding.
    pub fn from_sorted(items: &[(Vec<u8>, f64)], small: bool) -> ZSet {
        if small {
            let mut lp = Listpack::new();
            let mut sbuf = Vec::new();
            for (m, s) in items {
                lp.append(m);
                score_entry(*s, &mut sbuf);
                lp.append(&sbuf);
            }
            ZSet::from_own(ZRepr::Listpack(lp))
        } else {
            let mut b = Big::new(items.len());
            for (m, s) in items {
                b.insert_new(*s, m);
            }
            ZSet::from_own(ZRepr::Skiplist(Box::new(b)))
        }
    }

    /// ZSCAN over the large encoding: one step of the member index's cursor, calling `f`
    /// with (member, score) of each element met.
    pub fn scan(&self, cursor: u64, f: &mut dyn FnMut(&[u8], f64)) -> u64 {
        match self.r() {
            ZRepr::Listpack(_) => 0,
            ZRepr::Skiplist(b) => b.dict.scan(cursor, &mut |p| f(pl_member(p), pl_score(p))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(z: &ZSet) -> Vec<(Vec<u8>, f64)> {
        z.iter_from(0, false)
            .map(|(m, s)| (m.to_vec(), s))
            .collect()
    }

    #[test]
    fn both_encodings_agree() {
        let mut a = ZSet::new();
        let mut b = ZSet::create(1000, 0, 0, 64);
        assert_eq!(b.encoding(), Encoding::Skiplist);
        let mut seed = 7u64;
        for i in 0..3000u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = format!("m{}", seed % 500);
            let s = ((seed >> 33) % 50) as f64 - 25.0;
            if i % 5 == 4 {
                assert_eq!(a.remove(m.as_bytes()), b.remove(m.as_bytes()));
            } else {
                let f = AddFlags {
                    incr: i % 3 == 0,
                    ..Default::default()
                };
                let x = a.add(s, m.as_bytes(), f, usize::MAX, usize::MAX).unwrap();
                let y = b.add(s, m.as_bytes(), f, 0, 0).unwrap();
                assert_eq!((x.added, x.updated), (y.added, y.updated));
            }
            if i % 101 == 0 {
                assert_eq!(members(&a), members(&b));
                for (r, (m, _)) in members(&a).iter().enumerate() {
                    assert_eq!(a.rank(m, false).map(|x| x.0), Some(r));
                    assert_eq!(b.rank(m, false).map(|x| x.0), Some(r));
                }
            }
        }
        assert_eq!(a.encoding(), Encoding::Listpack);
        let range = ScoreRange {
            min: -3.0,
            max: 7.0,
            minex: true,
            maxex: false,
        };
        assert_eq!(a.count_in_range(&range), b.count_in_range(&range));
        assert_eq!(
            a.range_start(&range, 2, false),
            b.range_start(&range, 2, false)
        );
        assert_eq!(
            a.range_start(&range, 2, true),
            b.range_start(&range, 2, true)
        );
        let c = b.clone();
        assert_eq!(members(&c), members(&b));
        assert_eq!(a.delete_range(&range), b.delete_range(&range));
        assert_eq!(members(&a), members(&b));
        let n = a.len();
        assert_eq!(a.delete_rank_range(1, n / 2), b.delete_rank_range(1, n / 2));
        assert_eq!(members(&a), members(&b));
        b.convert_to_listpack();
        assert_eq!(a, b);
    }

    #[test]
    fn listpack_scores() {
        let mut z = ZSet::new();
        z.add(-0.0, b"a", AddFlags::default(), 128, 64);
        z.add(1.5, b"b", AddFlags::default(), 128, 64);
        assert_eq!(z.score(b"a").map(|s| s.is_sign_negative()), Some(false));
        assert_eq!(z.score(b"b"), Some(1.5));
        assert_eq!(double2ll(1e19), None);
        assert_eq!(double2ll(-0.0), Some(0));
    }
}
