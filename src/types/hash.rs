//! The hash value type (upstream's `t_hash.c` type layer).
//!
//! Two encodings, as upstream:
//! - `listpack`: field,value pairs in one listpack while the hash has at most
//!   `hash-max-listpack-entries` fields and no field or value longer than
//!   `hash-max-listpack-value` bytes, and no field has a TTL;
//! - `hashtable`: a [`Dict`] whose entries hold `[header varint][field][value][ttl?]` in one
//!   allocation. The header is `field_len << 1 | has_ttl`; the TTL, when present, is the
//!   last 8 bytes (little-endian absolute unix ms).
//!
//! A hash never converts back from `hashtable` to `listpack`.
//!
//! Field expiration (Valkey 9): only `hashtable` hashes have volatile fields. Expired
//! fields are invisible to every read (lookups take `now`), but still count in [`Hash::len`]
//! until reclaimed, as upstream's `hashTypeLength`. They are reclaimed by
//! [`Hash::expire_fields`] (the active field-expiry pass) or when overwritten or deleted.
//! The volatile fields are indexed by expiry time in a sorted set (upstream's `vset`).

use std::collections::BTreeSet;

use crate::object::Encoding;
use crate::reply::ReplyBuf;
use crate::types::dict::{Dict, DictKey};
use crate::types::listpack::{Listpack, LpEntry};
use crate::types::thin::Thin;

/// "No TTL" as upstream's `EXPIRY_NONE`.
pub const EXPIRY_NONE: i64 = -1;

/// Result codes of the field-expiration commands (upstream's `expiryModificationResult`).
pub const EXP_NOT_EXIST: i64 = -2;
pub const EXP_FAILED: i64 = -1;
pub const EXP_FAILED_CONDITION: i64 = 0;
pub const EXP_SUCCESSFUL: i64 = 1;
pub const EXP_EXPIRE_ASAP: i64 = 2;

/// HEXPIRE condition flags.
pub const EXPIRE_NX: u32 = 1;
pub const EXPIRE_XX: u32 = 2;
pub const EXPIRE_GT: u32 = 4;
pub const EXPIRE_LT: u32 = 8;

/// A field or value as stored: bytes, or an integer (listpack int encoding).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HV<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl<'a> HV<'a> {
    fn from_lp(e: LpEntry<'a>) -> HV<'a> {
        match e {
            LpEntry::Int(n) => HV::Int(n),
            LpEntry::Str(s) => HV::Str(s),
        }
    }

    pub fn to_vec(self) -> Vec<u8> {
        match self {
            HV::Str(s) => s.to_vec(),
            HV::Int(n) => n.to_string().into_bytes(),
        }
    }

    /// Length of the string form.
    pub fn str_len(self) -> usize {
        match self {
            HV::Str(s) => s.len(),
            HV::Int(n) => {
                let mut buf = crate::reply::itoa_buf();
                crate::reply::fmt_i64(&mut buf, n).len()
            }
        }
    }

    /// Adds it as a bulk string reply.
    pub fn reply(self, r: &mut ReplyBuf) {
        match self {
            HV::Str(s) => r.add_bulk(s),
            HV::Int(n) => r.add_bulk_i64(n),
        }
    }

    /// Calls `f` with the string form, without allocating.
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            HV::Str(s) => f(s),
            HV::Int(n) => {
                let mut buf = crate::reply::itoa_buf();
                f(crate::reply::fmt_i64(&mut buf, n))
            }
        }
    }
}

/// The dict entry layout of a hashtable-encoded hash.
#[derive(Clone, Copy, Debug)]
pub struct HashEntry;

/// Reads the header varint: (value, bytes used).
#[inline]
fn read_varint(p: &[u8]) -> (usize, usize) {
    let mut v: usize = 0;
    let mut shift = 0;
    for (i, &b) in p.iter().enumerate() {
        v |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (v, i + 1);
        }
        shift += 7;
        if shift > 63 {
            break;
        }
    }
    (v, p.len())
}

#[inline]
fn write_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decoded view of an entry payload.
struct Parts<'a> {
    field: &'a [u8],
    value: &'a [u8],
    expiry: i64,
}

#[inline]
fn parts(p: &[u8]) -> Parts<'_> {
    let (h, n) = read_varint(p);
    let flen = h >> 1;
    let has_ttl = h & 1 == 1;
    let fstart = n.min(p.len());
    let fend = fstart.saturating_add(flen).min(p.len());
    let field = &p[fstart..fend];
    let (vend, expiry) = if has_ttl && p.len() >= fend + 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p[p.len() - 8..]);
        (p.len() - 8, i64::from_le_bytes(b))
    } else {
        (p.len(), EXPIRY_NONE)
    };
    Parts {
        field,
        value: &p[fend..vend.max(fend)],
        expiry,
    }
}

fn make_payload(field: &[u8], value: &[u8], expiry: i64) -> Vec<u8> {
    let has_ttl = expiry != EXPIRY_NONE;
    let mut p = Vec::with_capacity(field.len() + value.len() + 3 + if has_ttl { 8 } else { 0 });
    write_varint(&mut p, (field.len() << 1) | has_ttl as usize);
    p.extend_from_slice(field);
    p.extend_from_slice(value);
    if has_ttl {
        p.extend_from_slice(&expiry.to_le_bytes());
    }
    p
}

impl DictKey for HashEntry {
    #[inline]
    fn key(payload: &[u8]) -> &[u8] {
        let (h, n) = read_varint(payload);
        let start = n.min(payload.len());
        let end = start.saturating_add(h >> 1).min(payload.len());
        &payload[start..end]
    }
}

/// The hashtable encoding: the dict and the index of volatile fields by expiry.
#[derive(Clone, Debug, PartialEq)]
struct Table {
    dict: Dict<HashEntry>,
    /// (expiry, field) of every field with a TTL.
    volatile: BTreeSet<(i64, Box<[u8]>)>,
    /// Bytes allocated by `volatile` (estimate), for MEMORY USAGE.
    volatile_bytes: usize,
}

/// The encodings, owned (`Repr<Listpack, Box<Table>>`) or borrowed.
enum Repr<L, T> {
    Lp(L),
    Ht(T),
}

/// A hash value: one pointer (see [`super::thin`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Hash {
    t: Thin<Listpack, Table>,
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

#[inline]
fn is_expired(expiry: i64, now: i64) -> bool {
    expiry != EXPIRY_NONE && expiry <= now
}

/// Bytes of a BTreeSet entry of the volatile index (an estimate: the boxed field plus the
/// tuple in the tree node).
fn volatile_cost(field: &[u8]) -> usize {
    field.len() + 32
}

/// A uniform random index below `n` (n > 0).
fn rand_below(n: usize) -> usize {
    (crate::util::random_u64() % n.max(1) as u64) as usize
}

impl Hash {
    /// An empty listpack-encoded hash.
    pub fn new() -> Hash {
        Hash::from_own(Repr::Lp(Listpack::new()))
    }

    fn from_own(r: Repr<Listpack, Box<Table>>) -> Hash {
        Hash {
            t: match r {
                Repr::Lp(lp) => Thin::small(lp),
                Repr::Ht(t) => Thin::big(*t),
            },
        }
    }

    fn set_repr(&mut self, r: Repr<Listpack, Box<Table>>) {
        *self = Hash::from_own(r);
    }

    #[inline]
    fn r(&self) -> Repr<&Listpack, &Table> {
        match self.t.get() {
            Ok(lp) => Repr::Lp(lp),
            Err(t) => Repr::Ht(t),
        }
    }

    #[inline]
    fn rm(&mut self) -> Repr<&mut Listpack, &mut Table> {
        match self.t.get_mut() {
            Ok(lp) => Repr::Lp(lp),
            Err(t) => Repr::Ht(t),
        }
    }

    /// Number of fields, including expired fields not reclaimed yet (as upstream).
    pub fn len(&self) -> usize {
        match self.r() {
            Repr::Lp(lp) => lp.len() / 2,
            Repr::Ht(t) => t.dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding OBJECT ENCODING reports.
    pub fn encoding(&self) -> Encoding {
        match self.r() {
            Repr::Lp(_) => Encoding::Listpack,
            Repr::Ht(_) => Encoding::Hashtable,
        }
    }

    /// Bytes allocated for this value's contents (MEMORY USAGE).
    pub fn mem_usage(&self) -> usize {
        match self.r() {
            Repr::Lp(lp) => lp.mem_usage(),
            Repr::Ht(t) => std::mem::size_of::<Table>() + t.dict.mem_usage() + t.volatile_bytes,
        }
    }

    /// The listpack bytes, when listpack-encoded (RDB).
    #[allow(dead_code)]
    pub fn listpack(&self) -> Option<&Listpack> {
        match self.r() {
            Repr::Lp(lp) => Some(lp),
            Repr::Ht(_) => None,
        }
    }

    /// Whether any field has a TTL.
    pub fn has_volatile(&self) -> bool {
        match self.r() {
            Repr::Lp(_) => false,
            Repr::Ht(t) => !t.volatile.is_empty(),
        }
    }

    /// The earliest field expiry, if any field has a TTL.
    #[allow(dead_code)]
    pub fn next_expiry(&self) -> Option<i64> {
        match self.r() {
            Repr::Lp(_) => None,
            Repr::Ht(t) => t.volatile.iter().next().map(|(w, _)| *w),
        }
    }

    fn lp_find(lp: &Listpack, field: &[u8]) -> Option<usize> {
        let first = lp.first()?;
        lp.find(first, field, 1)
    }

    /// Converts to the hashtable encoding (no-op if already there), presized for `hint`
    /// fields.
    pub fn convert(&mut self, hint: usize) {
        let Repr::Lp(lp) = self.r() else {
            return;
        };
        let mut dict: Dict<HashEntry> = Dict::new();
        dict.expand(hint.max(lp.len() / 2));
        let mut it = lp.iter();
        while let Some(f) = it.next() {
            let Some(v) = it.next() else { break };
            let f = HV::from_lp(f);
            let v = HV::from_lp(v);
            f.with_bytes(|fb| {
                v.with_bytes(|vb| {
                    let _ = dict.insert(&make_payload(fb, vb, EXPIRY_NONE));
                })
            });
        }
        self.set_repr(Repr::Ht(Box::new(Table {
            dict,
            volatile: BTreeSet::new(),
            volatile_bytes: 0,
        })));
    }

    /// Upstream's `hashTypeTryConversion` for the field/value arguments about to be
    /// written: convert when there are more pairs than the entries limit or any argument
    /// is longer than the value limit.
    pub fn try_conversion(&mut self, args: &[Vec<u8>], max_entries: usize, max_value: usize) {
        let Repr::Lp(lp) = self.r() else {
            return;
        };
        let new_fields = args.len() / 2;
        if new_fields > max_entries {
            self.convert(new_fields);
            return;
        }
        let mut sum: usize = 0;
        for a in args {
            if a.len() > max_value {
                self.convert(0);
                return;
            }
            sum = sum.saturating_add(a.len());
        }
        // lpSafeToAdd: a listpack never grows past 1 GiB.
        if lp.total_bytes().saturating_add(sum) > (1 << 30) {
            self.convert(0);
        }
    }

    /// The value of `field` (expired fields are invisible).
    pub fn get(&self, field: &[u8], now: i64) -> Option<HV<'_>> {
        match self.r() {
            Repr::Lp(lp) => {
                let fpos = Self::lp_find(lp, field)?;
                let vpos = lp.next(fpos)?;
                Some(HV::from_lp(lp.get(vpos)))
            }
            Repr::Ht(t) => {
                let p = parts(t.dict.get(field)?);
                if is_expired(p.expiry, now) {
                    return None;
                }
                Some(HV::Str(p.value))
            }
        }
    }

    /// The expiry of `field`: None when missing (or expired), else Some(EXPIRY_NONE or ms).
    pub fn get_expiry(&self, field: &[u8], now: i64) -> Option<i64> {
        match self.r() {
            Repr::Lp(lp) => Self::lp_find(lp, field).map(|_| EXPIRY_NONE),
            Repr::Ht(t) => {
                let p = parts(t.dict.get(field)?);
                if is_expired(p.expiry, now) {
                    None
                } else {
                    Some(p.expiry)
                }
            }
        }
    }

    pub fn exists(&self, field: &[u8], now: i64) -> bool {
        self.get_expiry(field, now).is_some()
    }

    fn track(t: &mut Table, field: &[u8], expiry: i64) {
        if expiry != EXPIRY_NONE {
            t.volatile.insert((expiry, field.into()));
            t.volatile_bytes += volatile_cost(field);
        }
    }

    fn untrack(t: &mut Table, field: &[u8], expiry: i64) {
        if expiry != EXPIRY_NONE && t.volatile.remove(&(expiry, Box::<[u8]>::from(field))) {
            t.volatile_bytes = t.volatile_bytes.saturating_sub(volatile_cost(field));
        }
    }

    /// Sets `field` to `value` (upstream's `hashTypeSet`), with the absolute `expiry`
    /// (EXPIRY_NONE for none); `keep_expiry` keeps an existing field's TTL. Returns
    /// (updated: the field existed and was live, expired_overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn set(
        &mut self,
        field: &[u8],
        value: &[u8],
        expiry: i64,
        keep_expiry: bool,
        now: i64,
        max_entries: usize,
        max_value: usize,
    ) -> (bool, bool) {
        if let Repr::Lp(_) = self.r() {
            if expiry != EXPIRY_NONE || field.len() > max_value || value.len() > max_value {
                self.convert(0);
            }
        }
        match self.rm() {
            Repr::Lp(lp) => {
                let mut update = false;
                if let Some(fpos) = Self::lp_find(lp, field) {
                    if let Some(vpos) = lp.next(fpos) {
                        lp.replace(vpos, value);
                        update = true;
                    }
                }
                if !update {
                    lp.append(field);
                    lp.append(value);
                    if lp.len() / 2 > max_entries {
                        self.convert(0);
                    }
                }
                (update, false)
            }
            Repr::Ht(t) => {
                let old = t.dict.get(field).map(|p| parts(p).expiry);
                match old {
                    None => {
                        let _ = t.dict.insert(&make_payload(field, value, expiry));
                        Self::track(t, field, expiry);
                        (false, false)
                    }
                    Some(old_exp) => {
                        let expired = is_expired(old_exp, now);
                        let new_exp = if !expired && keep_expiry {
                            old_exp
                        } else {
                            expiry
                        };
                        t.dict.replace(&make_payload(field, value, new_exp));
                        if old_exp != new_exp {
                            Self::untrack(t, field, old_exp);
                            Self::track(t, field, new_exp);
                        }
                        (!expired, expired)
                    }
                }
            }
        }
    }

    /// Deletes `field`; with `now` = Some, an expired field counts as missing (and is
    /// left for the expiry pass), with None it is deleted like any other.
    pub fn delete(&mut self, field: &[u8], now: Option<i64>) -> bool {
        match self.rm() {
            Repr::Lp(lp) => {
                let Some(fpos) = Self::lp_find(lp, field) else {
                    return false;
                };
                lp.delete_range_pos(fpos, 2);
                true
            }
            Repr::Ht(t) => {
                let Some(p) = t.dict.get(field) else {
                    return false;
                };
                let exp = parts(p).expiry;
                if now.is_some_and(|n| is_expired(exp, n)) {
                    return false;
                }
                t.dict.remove(field);
                Self::untrack(t, field, exp);
                true
            }
        }
    }

    /// Upstream's `hashTypeSetExpire`: sets the absolute expiry `when` of `field` under
    /// the NX/XX/GT/LT `flags`; returns one of the EXP_* codes.
    pub fn set_expire(&mut self, field: &[u8], when: i64, flags: u32, now: i64) -> i64 {
        let time_expired = when <= now;
        if let Repr::Lp(lp) = self.r() {
            if Self::lp_find(lp, field).is_none() {
                return EXP_NOT_EXIST;
            }
            if flags & (EXPIRE_XX | EXPIRE_GT) != 0 {
                return EXP_FAILED_CONDITION;
            }
            if time_expired {
                self.delete(field, None);
                return EXP_EXPIRE_ASAP;
            }
            self.convert(0);
        }
        let Repr::Ht(t) = self.rm() else {
            return EXP_NOT_EXIST;
        };
        let Some(p) = t.dict.get(field) else {
            return EXP_NOT_EXIST;
        };
        let p = parts(p);
        let cur = p.expiry;
        if is_expired(cur, now) {
            return EXP_NOT_EXIST;
        }
        if flags & EXPIRE_NX != 0 && cur != EXPIRY_NONE {
            return EXP_FAILED_CONDITION;
        }
        if flags & EXPIRE_XX != 0 && cur == EXPIRY_NONE {
            return EXP_FAILED_CONDITION;
        }
        if flags & EXPIRE_GT != 0 && (cur == EXPIRY_NONE || when <= cur) {
            return EXP_FAILED_CONDITION;
        }
        if flags & EXPIRE_LT != 0 && cur != EXPIRY_NONE && when >= cur {
            return EXP_FAILED_CONDITION;
        }
        if time_expired {
            t.dict.remove(field);
            Self::untrack(t, field, cur);
            return EXP_EXPIRE_ASAP;
        }
        let payload = make_payload(p.field, p.value, when);
        t.dict.replace(&payload);
        if cur != when {
            Self::untrack(t, field, cur);
            Self::track(t, field, when);
        }
        EXP_SUCCESSFUL
    }

    /// Upstream's `hashTypePersist`: removes the TTL of `field`; EXP_* code.
    pub fn persist(&mut self, field: &[u8], now: i64) -> i64 {
        match self.rm() {
            Repr::Lp(lp) => {
                if Self::lp_find(lp, field).is_some() {
                    EXP_FAILED
                } else {
                    EXP_NOT_EXIST
                }
            }
            Repr::Ht(t) => {
                let Some(p) = t.dict.get(field) else {
                    return EXP_NOT_EXIST;
                };
                let p = parts(p);
                if p.expiry == EXPIRY_NONE {
                    return EXP_FAILED;
                }
                if is_expired(p.expiry, now) {
                    return EXP_NOT_EXIST;
                }
                let exp = p.expiry;
                let payload = make_payload(p.field, p.value, EXPIRY_NONE);
                t.dict.replace(&payload);
                Self::untrack(t, field, exp);
                EXP_SUCCESSFUL
            }
        }
    }

    /// Calls `f(field, value)` for every live field, in storage order.
    pub fn for_each(&self, now: i64, mut f: impl FnMut(HV<'_>, HV<'_>)) {
        match self.r() {
            Repr::Lp(lp) => {
                let mut it = lp.iter();
                while let Some(fe) = it.next() {
                    let Some(ve) = it.next() else { break };
                    f(HV::from_lp(fe), HV::from_lp(ve));
                }
            }
            Repr::Ht(t) => {
                let check = !t.volatile.is_empty();
                for p in t.dict.iter() {
                    let p = parts(p);
                    if check && is_expired(p.expiry, now) {
                        continue;
                    }
                    f(HV::Str(p.field), HV::Str(p.value));
                }
            }
        }
    }

    /// Calls `f(field, value, expiry)` for every field of a hashtable-encoded hash,
    /// expired ones included (RDB saving; EXPIRY_NONE when no TTL). Does nothing for a
    /// listpack (see [`Hash::listpack`]).
    pub fn for_each_raw(&self, mut f: impl FnMut(&[u8], &[u8], i64)) {
        if let Repr::Ht(t) = self.r() {
            for p in t.dict.iter() {
                let p = parts(p);
                f(p.field, p.value, p.expiry);
            }
        }
    }

    /// A hash adopting a listpack of field/value pairs (RDB loading).
    pub fn from_listpack(lp: Listpack) -> Hash {
        Hash::from_own(Repr::Lp(lp))
    }

    /// Number of live fields (O(n) when some field has a TTL).
    pub fn live_len(&self, now: i64) -> usize {
        match self.r() {
            Repr::Ht(t) if !t.volatile.is_empty() => {
                let expired = t.volatile.iter().take_while(|(w, _)| *w <= now).count();
                t.dict.len() - expired.min(t.dict.len())
            }
            _ => self.len(),
        }
    }

    /// One SCAN step over a hashtable (a listpack returns everything with cursor 0).
    pub fn scan(&self, cursor: u64, now: i64, mut f: impl FnMut(HV<'_>, HV<'_>)) -> u64 {
        match self.r() {
            Repr::Lp(_) => {
                self.for_each(now, f);
                0
            }
            Repr::Ht(t) => t.dict.scan(cursor, &mut |p: &[u8]| {
                let p = parts(p);
                if !is_expired(p.expiry, now) {
                    f(HV::Str(p.field), HV::Str(p.value));
                }
            }),
        }
    }

    /// A random live (field, value); None if none was found (all expired, as upstream
    /// gives up after 100 tries).
    pub fn random_pair(&self, now: i64) -> Option<(HV<'_>, HV<'_>)> {
        match self.r() {
            Repr::Lp(lp) => {
                let n = lp.len() / 2;
                if n == 0 {
                    return None;
                }
                let i = rand_below(n) as i64;
                let fpos = lp.seek(i * 2)?;
                let vpos = lp.next(fpos)?;
                Some((HV::from_lp(lp.get(fpos)), HV::from_lp(lp.get(vpos))))
            }
            Repr::Ht(t) => {
                for _ in 0..100 {
                    let node = t.dict.random()?;
                    let p = parts(t.dict.payload(node));
                    if !is_expired(p.expiry, now) {
                        return Some((HV::Str(p.field), HV::Str(p.value)));
                    }
                }
                None
            }
        }
    }

    /// Listpack only: `count` (< len) distinct random pairs in storage order
    /// (upstream's `lpRandomPairsUnique`, selection sampling).
    pub fn lp_random_unique(&self, count: usize, mut f: impl FnMut(HV<'_>, HV<'_>)) {
        let Repr::Lp(lp) = self.r() else {
            return;
        };
        let total = lp.len() / 2;
        let mut needed = count.min(total);
        let mut remaining = total;
        let mut it = lp.iter();
        while needed > 0 {
            let (Some(fe), Some(ve)) = (it.next(), it.next()) else {
                break;
            };
            if rand_below(remaining) < needed {
                f(HV::from_lp(fe), HV::from_lp(ve));
                needed -= 1;
            }
            remaining -= 1;
        }
    }

    /// Whether the hash is listpack-encoded.
    pub fn is_listpack(&self) -> bool {
        matches!(self.r(), Repr::Lp(_))
    }

    /// Active expiry: deletes up to `max` fields whose TTL is at or before `now`;
    /// returns how many were deleted.
    /// The names of the deleted fields are appended to `out` when given (propagation).
    pub fn expire_fields(
        &mut self,
        now: i64,
        max: usize,
        mut out: Option<&mut Vec<Vec<u8>>>,
    ) -> usize {
        let Repr::Ht(t) = self.rm() else {
            return 0;
        };
        let mut n = 0;
        while n < max {
            let Some((when, _)) = t.volatile.first() else {
                break;
            };
            if *when > now {
                break;
            }
            let Some((_, field)) = t.volatile.pop_first() else {
                break;
            };
            t.volatile_bytes = t.volatile_bytes.saturating_sub(volatile_cost(&field));
            t.dict.remove(&field);
            if let Some(out) = out.as_mut() {
                out.push(field.to_vec());
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn set(h: &mut Hash, f: &str, v: &str) -> bool {
        h.set(f.as_bytes(), v.as_bytes(), EXPIRY_NONE, false, NOW, 128, 64)
            .0
    }

    #[test]
    fn payload_roundtrip() {
        for &(f, v, e) in &[
            (&b"a"[..], &b"1"[..], EXPIRY_NONE),
            (b"", b"", 5),
            (&[7u8; 300][..], &b"xyz"[..], 1 << 40),
        ] {
            let p = make_payload(f, v, e);
            let q = parts(&p);
            assert_eq!(q.field, f);
            assert_eq!(q.value, v);
            assert_eq!(q.expiry, e);
            assert_eq!(HashEntry::key(&p), f);
        }
    }

    #[test]
    fn listpack_then_hashtable() {
        let mut h = Hash::new();
        for i in 0..128 {
            assert!(!set(&mut h, &format!("f{i}"), "v"));
        }
        assert_eq!(h.encoding(), Encoding::Listpack);
        assert!(set(&mut h, "f1", "w"));
        assert_eq!(h.get(b"f1", NOW), Some(HV::Str(b"w")));
        set(&mut h, "f128", "v");
        assert_eq!(h.encoding(), Encoding::Hashtable);
        assert_eq!(h.len(), 129);
        assert_eq!(h.get(b"f1", NOW), Some(HV::Str(b"w")));
        assert!(h.delete(b"f1", Some(NOW)));
        assert!(!h.delete(b"f1", Some(NOW)));
        assert_eq!(h.len(), 128);
    }

    #[test]
    fn field_expiry() {
        let mut h = Hash::new();
        set(&mut h, "a", "1");
        set(&mut h, "b", "2");
        assert_eq!(h.set_expire(b"a", NOW + 10, EXPIRE_XX, NOW), 0);
        assert_eq!(h.set_expire(b"a", NOW + 10, 0, NOW), 1);
        assert_eq!(h.encoding(), Encoding::Hashtable);
        assert_eq!(h.get_expiry(b"a", NOW), Some(NOW + 10));
        assert_eq!(h.set_expire(b"a", NOW + 5, EXPIRE_GT, NOW), 0);
        assert_eq!(h.set_expire(b"a", NOW + 5, EXPIRE_LT, NOW), 1);
        assert!(h.has_volatile());
        assert_eq!(h.get(b"a", NOW + 5), None);
        assert_eq!(h.len(), 2);
        assert_eq!(h.live_len(NOW + 5), 1);
        assert_eq!(h.expire_fields(NOW + 5, 10, None), 1);
        assert_eq!(h.len(), 1);
        assert!(!h.has_volatile());
        assert_eq!(h.persist(b"b", NOW), EXP_FAILED);
        assert_eq!(h.set_expire(b"b", NOW, 0, NOW), EXP_EXPIRE_ASAP);
        assert!(h.is_empty());
    }
}
